//! Secrets never reach an output: every text kubewright prints, logs or records passes through
//! a [`Redactor`] that knows the run's secret values and replaces each with `<redacted>`.

/// What a secret shows as.
pub const REDACTED: &str = "<redacted>";

/// The secret values of one run (bootstrap token, certificate key, passwords...).
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    secrets: Vec<String>,
}

/// Values this short would redact ordinary words; a secret is never this short.
const MIN_SECRET_LEN: usize = 4;

impl Redactor {
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| s.len() >= MIN_SECRET_LEN).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor { secrets }
    }

    /// `text` with every secret value replaced.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), REDACTED);
            }
        }
        out
    }

    /// Whether a secret value is too short to be redacted safely.
    pub fn too_short(value: &str) -> bool {
        value.len() < MIN_SECRET_LEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_of_every_secret_is_replaced() {
        let r = Redactor::new(["abcdef.0123456789abcdef".to_string(), "hunter22".to_string()]);
        assert_eq!(
            r.redact("kubeadm join --token abcdef.0123456789abcdef x; pw=hunter22 hunter22"),
            "kubeadm join --token <redacted> x; pw=<redacted> <redacted>"
        );
    }

    #[test]
    fn a_secret_containing_another_is_replaced_whole() {
        let r = Redactor::new(["pass".to_string(), "password123".to_string()]);
        assert_eq!(r.redact("password123 pass"), "<redacted> <redacted>");
    }
}
