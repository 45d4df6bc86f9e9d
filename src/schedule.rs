//! The unattended certificate renewal: a systemd service and timer (and a cron line) for the
//! bastion that run `kubewright certs renew --if-expiring-within ... --yes --output json`.
//! Pure: the caller decides where they go.

use crate::duration::Duration;

/// What the scheduled job runs and how often.
pub struct Schedule<'a> {
    pub cluster: &'a str,
    /// The kubewright binary, absolute.
    pub binary: &'a str,
    /// The inventory, absolute.
    pub inventory: &'a str,
    /// The state directory the job must share with interactive runs (journal, lock, backups).
    pub state_dir: &'a str,
    pub within: Duration,
    /// systemd's `OnCalendar=` (`daily`, `Mon *-*-* 03:00`).
    pub on_calendar: &'a str,
}

impl Schedule<'_> {
    pub fn unit_name(&self) -> String {
        format!("kubewright-certs-renew-{}", self.cluster)
    }

    fn arguments(&self) -> Vec<String> {
        vec![
            self.binary.to_string(),
            "certs".into(),
            "renew".into(),
            "-i".into(),
            self.inventory.to_string(),
            "--if-expiring-within".into(),
            self.within.to_string(),
            "--yes".into(),
            "--output".into(),
            "json".into(),
        ]
    }

    pub fn service(&self) -> String {
        let exec: Vec<String> = self.arguments().iter().map(|a| systemd_word(a)).collect();
        format!(
            "# Written by `kubewright certs schedule` for cluster {cluster}.\n\
             [Unit]\n\
             Description=Renew the certificates of Kubernetes cluster {cluster} when they are close to expiry (kubewright)\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             # The same state directory as interactive runs: one journal, one lock, one set of backups.\n\
             Environment={env}\n\
             ExecStart={exec}\n\
             # A renewal restarts control planes one at a time; give it time, then stop it cleanly.\n\
             TimeoutStartSec=2h\n\
             KillSignal=SIGINT\n\
             Nice=10\n",
            cluster = self.cluster,
            env = systemd_word(&format!("KUBEWRIGHT_STATE_DIR={}", self.state_dir)),
            exec = exec.join(" "),
        )
    }

    pub fn timer(&self) -> String {
        format!(
            "# Written by `kubewright certs schedule` for cluster {cluster}.\n\
             [Unit]\n\
             Description=Check the certificates of Kubernetes cluster {cluster} and renew them when close to expiry (kubewright)\n\
             \n\
             [Timer]\n\
             OnCalendar={calendar}\n\
             # Spread the clusters of one bastion; catch up on a run missed while it was off.\n\
             RandomizedDelaySec=1h\n\
             Persistent=true\n\
             Unit={unit}.service\n\
             \n\
             [Install]\n\
             WantedBy=timers.target\n",
            cluster = self.cluster,
            calendar = self.on_calendar,
            unit = self.unit_name(),
        )
    }

    /// A crontab line for bastions without systemd, once a day at a time of its own: cron
    /// has no randomized delay, so the minute and hour come from the cluster's name.
    pub fn cron_line(&self) -> String {
        let hash = self.cluster.bytes().fold(2_166_136_261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16_777_619));
        let (minute, hour) = (hash % 60, 1 + (hash / 60) % 5);
        let mut command = vec![crate::script::quote(&format!("KUBEWRIGHT_STATE_DIR={}", self.state_dir))];
        command.extend(self.arguments().iter().map(|a| crate::script::quote(a)));
        // `%` ends a crontab command (the rest is its stdin): escape it.
        let command = command.join(" ").replace('%', "\\%");
        format!(
            "{minute} {hour} * * * {command} >> {} 2>&1",
            crate::script::quote(&format!("{}/certs-renew.log", self.state_dir)).replace('%', "\\%")
        )
    }
}

/// One word of an `ExecStart=` line: double-quoted, with systemd's escapes (`\`, `"`), and `%`
/// (specifiers) and `$` (variables) doubled.
fn systemd_word(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%").replace('$', "$$");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule<'a>(inventory: &'a str) -> Schedule<'a> {
        Schedule {
            cluster: "prod",
            binary: "/usr/local/bin/kubewright",
            inventory,
            state_dir: "/var/lib/kubewright",
            within: Duration::from_secs(30 * 86_400),
            on_calendar: "daily",
        }
    }

    #[test]
    fn hostile_paths_stay_one_word_in_units_and_cron() {
        let s = schedule("/srv/inv 100% $HOME \"x\".yaml");
        assert!(s.service().contains(r#""/srv/inv 100%% $$HOME \"x\".yaml""#), "{}", s.service());
        let cron = s.cron_line();
        assert!(cron.contains(r#"'/srv/inv 100\% $HOME "x".yaml'"#), "{cron}");
        let fields: Vec<u32> = cron.split(' ').take(2).map(|f| f.parse().unwrap()).collect();
        assert!(fields[0] < 60 && (1..=5).contains(&fields[1]), "a night-time minute and hour: {cron}");
    }
}
