//! The unattended certificate renewal: a systemd service and timer (and a cron line) for the
//! bastion that run `kubewright certs renew --if-expiring-within ... --yes --output json`.
//! Pure: the caller decides where they go, and who the job runs as.
//!
//! The job gets the environment an interactive run has (review item 11): the user who scheduled
//! it (`User=`: systemd then also sets `$USER`, which names the lock's holder), that user's HOME
//! (russh's `~/.ssh/...` and the inventory's `~/` paths expand against it; unset, they stay
//! literal), the cluster's state directory as its working directory, and the same
//! `KUBEWRIGHT_STATE_DIR` as the runs it must share a journal and backups with.

use crate::duration::Duration;

/// What the scheduled job runs, as whom, and how often. Paths are absolute.
pub struct Schedule<'a> {
    pub cluster: &'a str,
    /// The kubewright binary.
    pub binary: &'a str,
    pub inventory: &'a str,
    /// The directory interactive runs keep cluster state in (`KUBEWRIGHT_STATE_DIR`, or its
    /// default): each cluster's state directory is `<state_root>/<cluster>`.
    pub state_root: &'a str,
    /// The account the job runs as, by name, and its home directory (from the user database).
    pub user: &'a str,
    pub home: &'a str,
    pub within: Duration,
    /// systemd's `OnCalendar=` (`daily`, `Mon *-*-* 03:00`).
    pub on_calendar: &'a str,
}

impl Schedule<'_> {
    pub fn unit_name(&self) -> String {
        format!("kubewright-certs-renew-{}", self.cluster)
    }

    /// The cluster's state directory (journal, backups, the cron line's log): the job's working
    /// directory. The same join as the binary's `state_dir`.
    pub fn state_dir(&self) -> String {
        format!("{}/{}", self.state_root.trim_end_matches('/'), self.cluster)
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

    /// What neither a unit file nor a crontab line can carry. systemd.exec(5) rejects
    /// non-printable characters in environment values; `WorkingDirectory=` takes its path as
    /// written, unquoted, and refuses one that is relative or has `.` or `..` (systemd's
    /// `config_parse_working_directory`: specifiers, then `path_simplify_and_warn`); a newline
    /// ends a unit's line and a crontab entry.
    pub fn check(&self) -> Result<(), String> {
        let values = [
            ("kubewright binary", self.binary),
            ("inventory", self.inventory),
            ("state directory", self.state_root),
            ("user name", self.user),
            ("home directory", self.home),
        ];
        for (what, value) in values {
            if let Some(c) = value.chars().find(|c| c.is_control()) {
                return Err(format!("the {what} `{}` holds the control character {c:?}", value.escape_debug()));
            }
        }
        let dir = self.state_dir();
        if !dir.starts_with('/') || dir.split('/').any(|c| c == "." || c == "..") {
            return Err(format!(
                "the state directory `{dir}` is not an absolute path without `.` and `..`, as WorkingDirectory= needs"
            ));
        }
        if self.user.starts_with(' ') || self.user.ends_with(' ') || self.user.contains([':', '/']) {
            return Err(format!("systemd refuses the user name `{}` in User=", self.user));
        }
        Ok(())
    }

    /// The service, for values [`check`](Self::check) accepts.
    pub fn service(&self) -> Result<String, String> {
        self.check()?;
        let exec: Vec<String> = self.arguments().iter().map(|a| exec_word(a)).collect();
        Ok(format!(
            "# Written by `kubewright certs schedule` for cluster {cluster}.\n\
             [Unit]\n\
             Description=Renew the certificates of Kubernetes cluster {cluster} when they are close to expiry (kubewright)\n\
             Wants=network-online.target\n\
             After=network-online.target\n\
             \n\
             [Service]\n\
             Type=oneshot\n\
             # As the user who scheduled it, with that user's HOME (~/.ssh, the inventory's ~/ paths),\n\
             # in the cluster's state directory, sharing it with interactive runs: one journal, one\n\
             # set of backups, and the lock's holder named alike ($USER comes from User=).\n\
             User={user}\n\
             WorkingDirectory={dir}\n\
             Environment={home}\n\
             Environment={state}\n\
             ExecStart={exec}\n\
             # A renewal restarts control planes one at a time; give it time, then stop it cleanly:\n\
             # SIGINT to kubewright alone, as a first Ctrl-C (the running host finishes, nothing new\n\
             # starts, the lock is released). Its ssh connections must outlive that signal, so not to\n\
             # the whole group (KillMode=mixed); whatever is left after 10 minutes is killed.\n\
             TimeoutStartSec=2h\n\
             KillSignal=SIGINT\n\
             KillMode=mixed\n\
             TimeoutStopSec=10min\n\
             Nice=10\n",
            cluster = self.cluster,
            user = self.user.replace('%', "%%"),
            dir = self.state_dir().replace('%', "%%"),
            home = environment_word(&format!("HOME={}", self.home)),
            state = environment_word(&format!("KUBEWRIGHT_STATE_DIR={}", self.state_root)),
            exec = exec.join(" "),
        ))
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

    /// A line for the user's own crontab (`crontab -e` as [`user`](Self::user)), for bastions
    /// without systemd, once a day at a time of its own: cron has no randomized delay, so the
    /// minute and hour come from the cluster's name. cron starts it in HOME with `sh`; it moves
    /// to the state directory and sets HOME itself, as the unit does.
    pub fn cron_line(&self) -> Result<String, String> {
        self.check()?;
        let hash = self.cluster.bytes().fold(2_166_136_261u32, |h, b| (h ^ u32::from(b)).wrapping_mul(16_777_619));
        let (minute, hour) = (hash % 60, 1 + (hash / 60) % 5);
        let quote = crate::script::quote;
        let dir = self.state_dir();
        // An assignment's name stays outside the quotes, or sh takes the word for a command.
        let mut command = vec![
            "cd".to_string(),
            quote(&dir),
            "&&".into(),
            format!("HOME={}", quote(self.home)),
            format!("KUBEWRIGHT_STATE_DIR={}", quote(self.state_root)),
        ];
        command.extend(self.arguments().iter().map(|a| quote(a)));
        command.extend([">>".into(), quote(&format!("{dir}/certs-renew.log")), "2>&1".into()]);
        // `%` ends a crontab command (the rest is its stdin): escape it.
        Ok(format!("{minute} {hour} * * * {}", command.join(" ").replace('%', "\\%")))
    }
}

/// One word of an `ExecStart=` line: double-quoted, with systemd.syntax(7)'s escapes (`\`, `"`),
/// `%` doubled (specifiers) and `$` doubled (systemd.service(5): variables are expanded there).
fn exec_word(s: &str) -> String {
    environment_word(s).replace('$', "$$")
}

/// One assignment of an `Environment=` line: quoted as a whole (systemd.exec(5): "put quotes
/// around the whole assignment"), with systemd.syntax(7)'s escapes and `%` doubled; `$` has no
/// special meaning there, so it stays single.
fn environment_word(s: &str) -> String {
    let escaped = s.replace('\\', "\\\\").replace('"', "\\\"").replace('%', "%%");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule<'a>(inventory: &'a str, state_root: &'a str) -> Schedule<'a> {
        Schedule {
            cluster: "prod",
            binary: "/usr/local/bin/kubewright",
            inventory,
            state_root,
            user: "ops",
            home: "/home/ops",
            within: Duration::from_secs(30 * 86_400),
            on_calendar: "daily",
        }
    }

    #[test]
    fn hostile_paths_stay_one_word_in_units_and_cron() {
        let s = schedule("/srv/inv 100% $HOME \"x\".yaml", "/srv/state $X\\ 5%");
        let service = s.service().unwrap();
        assert!(service.contains(r#""/srv/inv 100%% $$HOME \"x\".yaml""#), "{service}");
        assert!(service.contains("\nEnvironment=\"KUBEWRIGHT_STATE_DIR=/srv/state $X\\\\ 5%%\"\n"), "{service}");
        assert!(service.contains("\nWorkingDirectory=/srv/state $X\\ 5%%/prod\n"), "{service}");
        let cron = s.cron_line().unwrap();
        assert!(cron.contains(r#"'/srv/inv 100\% $HOME "x".yaml'"#), "{cron}");
        assert!(cron.contains(r"KUBEWRIGHT_STATE_DIR='/srv/state $X\ 5\%' "), "{cron}");
        let fields: Vec<u32> = cron.split(' ').take(2).map(|f| f.parse().unwrap()).collect();
        assert!(fields[0] < 60 && (1..=5).contains(&fields[1]), "a night-time minute and hour: {cron}");
    }

    /// Stopping the service is a first Ctrl-C to kubewright alone: its ssh connections (the
    /// openssh transport's masters are its children) outlive the signal, so the running host
    /// finishes and the lock is released, instead of every host's state left unknown.
    #[test]
    fn a_stopped_renewal_is_interrupted_like_a_first_ctrl_c_not_killed() {
        let service = schedule("/srv/inv.yaml", "/srv/state").service().unwrap();
        for line in ["KillSignal=SIGINT", "KillMode=mixed", "TimeoutStopSec=10min"] {
            assert!(service.lines().any(|l| l == line), "{line}: {service}");
        }
    }

    #[test]
    fn what_a_unit_cannot_carry_is_refused() {
        for (inventory, root) in [("/srv/a\nb.yaml", "/srv"), ("/srv/inv.yaml", "srv"), ("/srv/inv.yaml", "/srv/../x")]
        {
            let s = schedule(inventory, root);
            assert!(s.service().is_err() && s.cron_line().is_err(), "{inventory:?} {root:?}");
        }
        assert!(schedule("/srv/inv.yaml", "/").service().unwrap().contains("\nWorkingDirectory=/prod\n"));
    }
}
