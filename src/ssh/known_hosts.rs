//! OpenSSH's known_hosts format, read fully (sshd(8), "SSH_KNOWN_HOSTS FILE FORMAT"): pattern
//! lists with `*`, `?` and `!` negation, `[host]:port` names, hashed names (`|1|salt|hmac`),
//! `@cert-authority` and `@revoked` markers. The russh transport checks host keys with it;
//! the openssh transport leaves that to `ssh` itself.
//!
//! Kept stricter than `ssh` in one place: a host with known keys, none of which is the one it
//! presents, counts as changed even when the presented key is of a type not recorded for it
//! (ssh would call that new). The transport asks for the recorded types first, so a host that
//! still has its recorded key always presents it.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use russh::keys::{Algorithm, Certificate, HashAlg, PublicKey};

/// The name a host is recorded under: `host` on port 22, `[host]:port` otherwise.
pub fn lookup_name(host: &str, port: u16) -> String {
    if port == 22 { host.to_ascii_lowercase() } else { format!("[{}]:{port}", host.to_ascii_lowercase()) }
}

/// The known_hosts line that trusts `key` for `name`.
pub fn line_for(name: &str, key: &PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    format!("{name} {}", key.to_openssh().unwrap_or_default().trim_end())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    CertAuthority,
    Revoked,
}

#[derive(Debug, Clone)]
enum Names {
    /// `|1|base64(salt)|base64(HMAC-SHA1(salt, name))`
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns; `negated` ones exclude.
    Patterns(Vec<(bool, String)>),
}

#[derive(Debug, Clone)]
struct Entry {
    marker: Marker,
    names: Names,
    key: PublicKey,
    /// Where the line is, for messages.
    origin: String,
}

/// A line that could not be read; `ssh` skips such lines, and so does this parser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub origin: String,
    pub reason: String,
}

/// Every entry of one or more known_hosts files.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// What known_hosts says about the key a host presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Trusted,
    /// Listed under `@revoked` (the key itself or the CA that signed its certificate).
    Revoked {
        origin: String,
    },
    /// The host is known, with other keys (where they are recorded).
    Changed {
        recorded_at: Vec<String>,
    },
    /// Nothing is recorded for the host.
    Unknown,
    /// A certificate from a trusted CA that is not valid for this host now.
    BadCertificate {
        reason: String,
    },
}

/// The key a host presented: a plain key or an OpenSSH host certificate.
pub enum Presented<'a> {
    Key(&'a PublicKey),
    Certificate(&'a Certificate),
}

impl KnownHosts {
    /// Parse the text of one file; `path` is for messages only.
    pub fn parse(text: &str, path: &Path) -> (KnownHosts, Vec<Skipped>) {
        let mut known = KnownHosts::default();
        let mut skipped = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let origin = format!("{}:{}", path.display(), n + 1);
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Ok((marker, names, key)) => known.entries.push(Entry { marker, names, key, origin }),
                Err(reason) => skipped.push(Skipped { origin, reason }),
            }
        }
        (known, skipped)
    }

    /// Read the files that exist among `paths` (a missing file is an empty one).
    pub fn load(paths: &[PathBuf]) -> std::io::Result<(KnownHosts, Vec<Skipped>)> {
        let mut all = KnownHosts::default();
        let mut skipped = Vec::new();
        for path in paths {
            let text = match std::fs::read_to_string(path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let (known, s) = KnownHosts::parse(&text, path);
            all.entries.extend(known.entries);
            skipped.extend(s);
        }
        Ok((all, skipped))
    }

    /// Trust `key` for `name` from now on (after it was appended to a file).
    pub fn add(&mut self, name: &str, key: PublicKey, origin: String) {
        self.entries.push(Entry {
            marker: Marker::None,
            names: Names::Patterns(vec![(false, name.to_string())]),
            key,
            origin,
        });
    }

    /// The key types recorded for `name`, to ask the host for those first.
    pub fn recorded_algorithms(&self, name: &str) -> Vec<Algorithm> {
        let mut algs = Vec::new();
        for e in self.entries.iter().filter(|e| e.marker == Marker::None && e.names.matches(name)) {
            let alg = e.key.algorithm();
            if !algs.contains(&alg) {
                algs.push(alg);
            }
        }
        algs
    }

    /// Whether a `@cert-authority` line covers `name` (then the host may present a certificate).
    pub fn has_cert_authority_for(&self, name: &str) -> bool {
        self.entries.iter().any(|e| e.marker == Marker::CertAuthority && e.names.matches(name))
    }

    /// Check the key `name` presented, at unix time `now` (for certificates).
    pub fn check(&self, name: &str, presented: &Presented, now: u64) -> Verdict {
        let plain_key = match presented {
            Presented::Key(k) => k.key_data().clone(),
            Presented::Certificate(c) => c.public_key().clone(),
        };
        // @revoked applies whatever the host name.
        for e in self.entries.iter().filter(|e| e.marker == Marker::Revoked) {
            let signer_revoked =
                matches!(presented, Presented::Certificate(c) if c.signature_key() == e.key.key_data());
            if e.key.key_data() == &plain_key || signer_revoked {
                return Verdict::Revoked { origin: e.origin.clone() };
            }
        }
        let for_host: Vec<&Entry> = self.entries.iter().filter(|e| e.names.matches(name)).collect();
        if let Presented::Certificate(cert) = presented {
            let cas: Vec<_> = for_host
                .iter()
                .filter(|e| e.marker == Marker::CertAuthority)
                .map(|e| e.key.fingerprint(HashAlg::Sha256))
                .collect();
            if !cas.is_empty() {
                return match check_certificate(cert, name, &cas, now) {
                    Ok(()) => Verdict::Trusted,
                    Err(reason) => Verdict::BadCertificate { reason },
                };
            }
        }
        let plain: Vec<&&Entry> = for_host.iter().filter(|e| e.marker == Marker::None).collect();
        if plain.iter().any(|e| e.key.key_data() == &plain_key) {
            return Verdict::Trusted;
        }
        if plain.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed { recorded_at: plain.iter().map(|e| e.origin.clone()).collect() }
        }
    }
}

/// A host certificate is good for `name` when a trusted CA signed it, it is valid now, it is
/// a host certificate, and its principals (if it lists any: ssh accepts none) include the host.
fn check_certificate(
    cert: &Certificate,
    name: &str,
    cas: &[russh::keys::ssh_key::Fingerprint],
    now: u64,
) -> Result<(), String> {
    if cert.cert_type() != russh::keys::ssh_key::certificate::CertType::Host {
        return Err("it is a user certificate, not a host certificate".into());
    }
    cert.validate_at(now, cas).map_err(|_| {
        if now < cert.valid_after() || now >= cert.valid_before() {
            "it is outside its validity period".to_string()
        } else {
            "it is not signed by a @cert-authority listed for this host".to_string()
        }
    })?;
    if !cert.critical_options().is_empty() {
        return Err("it carries critical options, which host certificates must not".into());
    }
    // The principal is the bare host name, without the `[...]:port` wrapping.
    let host = name.strip_prefix('[').and_then(|rest| rest.split_once("]:")).map_or(name, |(h, _)| h);
    let principals = cert.valid_principals();
    if !principals.is_empty() && !principals.iter().any(|p| p.eq_ignore_ascii_case(host)) {
        return Err(format!("its principals ({}) do not include {host}", principals.join(", ")));
    }
    Ok(())
}

fn parse_line(line: &str) -> Result<(Marker, Names, PublicKey), String> {
    let mut fields = line.split_whitespace();
    let mut first = fields.next().ok_or("empty line")?;
    let marker = match first {
        "@cert-authority" => Marker::CertAuthority,
        "@revoked" => Marker::Revoked,
        m if m.starts_with('@') => return Err(format!("unknown marker {m}")),
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next().ok_or("a marker without host names")?;
    }
    let names = parse_names(first)?;
    let key_type = fields.next().ok_or("no key type")?;
    let key_b64 = fields.next().ok_or("no key")?;
    let key = PublicKey::from_openssh(&format!("{key_type} {key_b64}")).map_err(|e| format!("unreadable key: {e}"))?;
    Ok((marker, names, key))
}

fn parse_names(field: &str) -> Result<Names, String> {
    if let Some(hashed) = field.strip_prefix("|1|") {
        let (salt, hash) = hashed.split_once('|').ok_or("a hashed name without its hash")?;
        let b64 = base64::engine::general_purpose::STANDARD;
        let salt = b64.decode(salt).map_err(|e| format!("bad salt in hashed name: {e}"))?;
        let hash = b64.decode(hash).map_err(|e| format!("bad hash in hashed name: {e}"))?;
        return Ok(Names::Hashed { salt, hash });
    }
    let patterns = field
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('!') {
            Some(neg) => (true, neg.to_ascii_lowercase()),
            None => (false, p.to_ascii_lowercase()),
        })
        .collect();
    Ok(Names::Patterns(patterns))
}

impl Names {
    fn matches(&self, name: &str) -> bool {
        match self {
            Names::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                ring::hmac::verify(&key, name.as_bytes(), hash).is_ok()
            }
            Names::Patterns(patterns) => {
                let mut matched = false;
                for (negated, pattern) in patterns {
                    if wildcard_match(pattern.as_bytes(), name.as_bytes()) {
                        if *negated {
                            return false;
                        }
                        matched = true;
                    }
                }
                matched
            }
        }
    }
}

/// `*` matches any run of characters, `?` exactly one (OpenSSH's match_pattern).
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((bp, bt)) => {
                    p = bp + 1;
                    t = bt + 1;
                    backtrack = Some((bp, bt + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    // Two ed25519 keys (public halves only).
    const KEY_A: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID6CRulG+H0hrznWCxncYBzF8RyYJFyDzgvBA6GUaKRz";
    const KEY_B: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID7gQCDrfjcLgLVnOeSGvTTb9BUoyFSrFgZd3rTjnptd";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    fn known(text: &str) -> KnownHosts {
        let (k, skipped) = KnownHosts::parse(text, Path::new("kh"));
        assert!(skipped.is_empty(), "{skipped:?}");
        k
    }

    fn check(k: &KnownHosts, name: &str, presented: &str) -> Verdict {
        k.check(name, &Presented::Key(&key(presented)), 0)
    }

    #[test]
    fn names_on_other_ports_are_bracketed() {
        assert_eq!(lookup_name("Node1.Example", 22), "node1.example");
        assert_eq!(lookup_name("10.0.0.5", 2222), "[10.0.0.5]:2222");
    }

    #[test]
    fn a_plain_entry_trusts_its_key_and_calls_another_key_changed() {
        let k = known(&format!("cp1,10.0.0.5 {KEY_A}\n"));
        assert_eq!(check(&k, "10.0.0.5", KEY_A), Verdict::Trusted);
        assert_eq!(check(&k, "cp1", KEY_B), Verdict::Changed { recorded_at: vec!["kh:1".into()] });
        assert_eq!(check(&k, "cp2", KEY_A), Verdict::Unknown);
    }

    #[test]
    fn wildcards_and_negation_follow_ssh() {
        let k = known(&format!("*.prod.example,!bad.prod.example {KEY_A}\n[10.0.0.?]:2222 {KEY_A}\n"));
        assert_eq!(check(&k, "cp1.prod.example", KEY_A), Verdict::Trusted);
        assert_eq!(check(&k, "bad.prod.example", KEY_A), Verdict::Unknown);
        assert_eq!(check(&k, "[10.0.0.7]:2222", KEY_A), Verdict::Trusted);
        assert_eq!(check(&k, "[10.0.0.17]:2222", KEY_A), Verdict::Unknown);
        assert_eq!(check(&k, "10.0.0.7", KEY_A), Verdict::Unknown);
        assert!(wildcard_match(b"a*b*c", b"aXXbYbZc"));
        assert!(!wildcard_match(b"a*b", b"aXXbY"));
    }

    #[test]
    fn hashed_names_match_their_host_only() {
        // `ssh-keygen -H` output for "[10.0.0.5]:2222" with this salt (HMAC-SHA1 computed here).
        let salt = b"0123456789abcdefghij";
        let key_ring = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&key_ring, b"[10.0.0.5]:2222");
        let b64 = base64::engine::general_purpose::STANDARD;
        let line = format!("|1|{}|{} {KEY_A}\n", b64.encode(salt), b64.encode(tag.as_ref()));
        let k = known(&line);
        assert_eq!(check(&k, "[10.0.0.5]:2222", KEY_A), Verdict::Trusted);
        assert_eq!(check(&k, "[10.0.0.5]:2222", KEY_B), Verdict::Changed { recorded_at: vec!["kh:1".into()] });
        assert_eq!(check(&k, "10.0.0.5", KEY_A), Verdict::Unknown);
    }

    #[test]
    fn revoked_keys_are_refused_for_every_host() {
        let k = known(&format!("cp1 {KEY_A}\n@revoked * {KEY_A}\n"));
        assert_eq!(check(&k, "cp1", KEY_A), Verdict::Revoked { origin: "kh:2".into() });
    }

    #[test]
    fn bad_lines_are_skipped_and_reported() {
        let (k, skipped) = KnownHosts::parse(
            &format!("# comment\n\ncp1 ssh-ed25519 !!!\n@bogus cp2 {KEY_A}\ncp3 {KEY_B}\n"),
            Path::new("kh"),
        );
        assert_eq!(skipped.iter().map(|s| s.origin.as_str()).collect::<Vec<_>>(), ["kh:3", "kh:4"]);
        assert_eq!(check(&k, "cp3", KEY_B), Verdict::Trusted);
    }

    #[test]
    fn the_line_to_add_is_name_type_key() {
        assert_eq!(line_for("[10.0.0.5]:2222", &key(&format!("{KEY_A} comment"))), format!("[10.0.0.5]:2222 {KEY_A}"));
    }

    #[test]
    fn recorded_types_come_back_for_the_host() {
        let k = known(&format!("cp1 {KEY_A}\ncp1 {KEY_B}\n"));
        assert_eq!(k.recorded_algorithms("cp1"), [Algorithm::Ed25519]);
        assert!(k.recorded_algorithms("cp2").is_empty());
    }

    /// A host certificate made by `ssh-keygen` (openssh-client, a test prerequisite).
    fn host_certificate(dir: &Path) -> (String, Certificate) {
        let keygen = |args: &[&str]| {
            let o = std::process::Command::new("ssh-keygen").args(args).current_dir(dir).output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        };
        keygen(&["-q", "-t", "ed25519", "-N", "", "-f", "ca"]);
        keygen(&["-q", "-t", "ed25519", "-N", "", "-f", "host"]);
        keygen(&["-q", "-s", "ca", "-I", "cp1", "-h", "-n", "cp1,10.0.0.5", "-V", "20200101:20400101", "host.pub"]);
        let ca = std::fs::read_to_string(dir.join("ca.pub")).unwrap();
        let cert = Certificate::from_openssh(&std::fs::read_to_string(dir.join("host-cert.pub")).unwrap()).unwrap();
        (ca.split_whitespace().take(2).collect::<Vec<_>>().join(" "), cert)
    }

    #[test]
    fn host_certificates_need_a_listed_ca_a_principal_and_validity() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, cert) = host_certificate(dir.path());
        let in_2030 = 1_900_000_000;
        let k = known(&format!("@cert-authority *.example,cp1,[10.0.0.5]:2222,cp9 {ca}\n"));
        let presented = Presented::Certificate(&cert);
        assert!(k.has_cert_authority_for("cp1") && !k.has_cert_authority_for("cp2"));
        assert_eq!(k.check("cp1", &presented, in_2030), Verdict::Trusted);
        // The principal is the host without the port wrapping.
        assert_eq!(k.check("[10.0.0.5]:2222", &presented, in_2030), Verdict::Trusted);
        assert!(
            matches!(k.check("cp9", &presented, in_2030), Verdict::BadCertificate { reason } if reason.contains("do not include cp9"))
        );
        assert!(
            matches!(k.check("cp1", &presented, 4_000_000_000), Verdict::BadCertificate { reason } if reason.contains("validity"))
        );
        // Another CA's certificate is not trusted, and a revoked CA revokes what it signed.
        let other = known(&format!("@cert-authority cp1 {KEY_A}\n"));
        assert!(
            matches!(other.check("cp1", &presented, in_2030), Verdict::BadCertificate { reason } if reason.contains("not signed"))
        );
        let revoked = known(&format!("@cert-authority cp1 {ca}\n@revoked * {ca}\n"));
        assert_eq!(revoked.check("cp1", &presented, in_2030), Verdict::Revoked { origin: "kh:2".into() });
    }
}
