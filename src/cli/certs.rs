//! `kubewright certs check`: every certificate of the cluster, read in one command per host
//! and parsed on the bastion; exit codes for monitoring; a Prometheus textfile.

use std::os::unix::fs::DirBuilderExt;
use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory, runtime, state_dir};
use super::ui::{GoalArgs, run_goal};
use crate::report::{Failure, Reporter, UserError};
use kubewright::certs::{Thresholds, render_prometheus, render_text, report};
use kubewright::duration::Duration;
use kubewright::goal::{Goal, RenewGoal};
use kubewright::ssh::Target;

#[derive(Subcommand)]
pub enum CertsCommand {
    /// Report every certificate on every node, sorted by expiry; exit 0 ok, 1 warning, 2 critical, 3 unreachable
    #[command(after_help = "\
Examples:
  kubewright certs check -i inv.yaml
  kubewright certs check -i inv.yaml --warn 30d --critical 7d -o json
  kubewright certs check -i inv.yaml --prometheus-textfile /var/lib/node_exporter/textfile/kubewright.prom

Reads, on every node in one read-only command, kubeadm's PKI and kubeconfigs and the
kubelet's certificates (certificates only: private keys stay on the hosts; each key is compared
with its certificate there), and the bastion's admin kubeconfig. Flags certificates not signed
by the CA on disk, an API server certificate missing the endpoint or the node's IP, a key that
does not match, a kubelet that does not rotate its certificate, and an API server running for
close to a year (its in-memory loopback certificate lasts one).

Exit codes (the Nagios convention): 0 every certificate has more than --warn left; 1 one has
less (warning); 2 one has less than --critical, has expired or is broken (critical); 3 a host
could not be read (the others are still reported).")]
    Check {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
        /// Warn when a certificate has less than this left (default: the inventory's certificates.renewBefore)
        #[arg(long, value_name = "DURATION")]
        warn: Option<Duration>,
        /// Critical when a certificate has less than this left
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        critical: Duration,
        /// Also write the report as Prometheus metrics to FILE (atomically, in a directory that exists), for node_exporter's textfile collector
        #[arg(long, value_name = "FILE")]
        prometheus_textfile: Option<std::path::PathBuf>,
        /// How many hosts to read at once
        #[arg(long, default_value_t = kubewright::exec::engine::DEFAULT_CONCURRENCY)]
        concurrency: usize,
    },
    /// Print or install a systemd timer (and a cron line) that runs `certs renew` daily, unattended
    #[command(after_help = "\
Examples:
  kubewright certs schedule -i /etc/kubewright/prod.yaml --print
  sudo kubewright certs schedule -i /etc/kubewright/prod.yaml --install
  kubewright certs schedule -i ~/prod.yaml --print      # as the user the job should run as

The job runs `kubewright certs renew --if-expiring-within WITHIN --yes --output json` with this
binary, this inventory and this state directory (absolute paths), as the user running this
command (User=, with that user's HOME from the user database, so ~/.ssh and the inventory's ~/
paths resolve as in an interactive run), in the cluster's state directory (WorkingDirectory=),
so it shares the journal and the backups with interactive runs. That directory must belong to
the user; --install makes it (0700) when it does not exist. --install writes the service and the
timer into --unit-dir, then runs `systemctl daemon-reload` and `systemctl enable --now
NAME.timer`: the timer is enabled and started, and starts the service when it fires (--no-enable:
only write the files). The timer has a randomized delay of up to an hour and Persistent=true (a
run missed while the bastion was off happens at the next boot). The cron line, for that user's
crontab, runs once a day at a time derived from the cluster's name, in the state directory with
the same HOME, appending to <state dir>/certs-renew.log. The SSH key must be usable without a
prompt (the inventory's identityFile, unencrypted, or an agent the job can reach).")]
    Schedule {
        #[command(flatten)]
        inventory: InventoryArg,
        /// Print the units and the cron line
        #[arg(long, required_unless_present = "install")]
        print: bool,
        /// Write the service and timer into --unit-dir, then reload systemd and enable and start the timer
        #[arg(long)]
        install: bool,
        /// With --install: only write the files (no `systemctl daemon-reload`, no `systemctl enable --now`)
        #[arg(long, requires = "install")]
        no_enable: bool,
        /// Where --install writes the units
        #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
        unit_dir: std::path::PathBuf,
        /// systemd calendar expression of the timer
        #[arg(long, value_name = "CALENDAR", default_value = "daily")]
        calendar: String,
        /// Renew when a certificate has less than this left (default: certificates.renewBefore)
        #[arg(long, value_name = "DURATION")]
        within: Option<Duration>,
    },
    /// Make the cluster's CAs (and service-account keys) on the bastion, for the install to use
    #[command(
        name = "init-ca",
        after_help = "\
Example:
  kubewright certs init-ca -i inv.yaml && kubewright apply -i inv.yaml

Writes ca, etcd/ca and front-proxy-ca (certificate and key) and sa.key/sa.pub into the
cluster's state directory (pki/, 0700; keys 0600), with the inventory's certificates.caKeyType
and caValidity. The install puts them on the first control plane before `kubeadm init`, which
uses CAs it finds in place; the other control planes receive them with the uploaded
certificates. So the bastion holds the roots, and a lost cluster can be rebuilt with the same
trust. Existing CAs are never overwritten without --force (a new CA on a running cluster makes
every certificate and kubeconfig invalid: kubewright only ever uploads them before the init)."
    )]
    InitCa {
        #[command(flatten)]
        inventory: InventoryArg,
        /// Replace CAs that exist already
        #[arg(long)]
        force: bool,
    },
    /// Renew the control planes' certificates, one at a time, when they are close to expiry
    #[command(after_help = "\
Examples:
  kubewright certs renew -i inv.yaml
  kubewright certs renew -i inv.yaml --if-expiring-within 30d --yes -o json   # daily, from cron
  kubewright certs renew -i inv.yaml --force --yes

Does nothing (exit 0, without taking the lock) when every control plane's first certificate to
expire has more than --if-expiring-within left (default: the inventory's
certificates.renewBefore): safe to run daily. Otherwise, one control plane at a time: back up
/etc/kubernetes/pki and the kubeconfigs (on the host and, keeping certificates.keepBackups
copies, in the bastion's state directory), `kubeadm certs renew all`, restart the static pods,
wait for the API server's /readyz and the node Ready with its etcd member healthy, check every
renewed certificate, refresh /root/.kube/config and the bastion's admin kubeconfig. On a
failure the backup is restored on that node and the run stops; the next run continues with it.
Holds the cluster lock, like apply and upgrade. Exit codes: 0 done or nothing to do, 1 a host
failed, 2 bad input, 130 interrupted. --dry-run shows the plan and stops.")]
    Renew {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
        /// Renew when the first certificate to expire has less than this left (default: certificates.renewBefore)
        #[arg(long, value_name = "DURATION", conflicts_with = "force")]
        if_expiring_within: Option<Duration>,
        /// Renew whatever is left (this also restarts every control plane's static pods)
        #[arg(long)]
        force: bool,
        /// Change the hosts without asking (required when there is no terminal)
        #[arg(long)]
        yes: bool,
        /// Ignore the journal of an unfinished earlier renewal and start over
        #[arg(long)]
        restart: bool,
        /// Show the plan and stop: nothing changed, no lock taken
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn exec(cmd: CertsCommand, out: &Reporter) -> anyhow::Result<ExitCode> {
    match cmd {
        CertsCommand::InitCa { inventory, force } => {
            let inv = load_inventory(&inventory, out)?;
            let pki = state_dir(&inv.cluster.name).join("pki");
            if pki.join("ca.crt").exists() && !force {
                return Err(UserError::new(format!("{} already holds the cluster's CAs", pki.display()), "they are never replaced by accident: a cluster initialized with them would lose its trust; pass --force to make new ones")
                    .into());
            }
            let c = &inv.cluster.certificates;
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
            let mut written = Vec::new();
            let unwritable = |path: &std::path::Path, e: std::io::Error| {
                UserError::new(
                    format!("cannot write {}: {e}", path.display()),
                    "the state directory must be writable by this user (KUBEWRIGHT_STATE_DIR moves it); nothing was sent to any host",
                )
            };
            let mut write = |name: &str, content: &str, mode: u32| -> anyhow::Result<()> {
                let path = pki.join(name);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .and_then(|()| {
                            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                        })
                        .map_err(|e| unwritable(dir, e))?;
                }
                kubewright::exec::write_file_atomically(&path, content.as_bytes(), mode)
                    .map_err(|e| unwritable(&path, e))?;
                written.push(path.display().to_string());
                Ok(())
            };
            let files = kubewright::pki::cluster_ca_set(c.ca_key_type, c.ca_validity.seconds, now).map_err(|e| {
                Failure::new(e, "key generation failed on the bastion; run again, and if it repeats, report it with the message above")
            })?;
            for f in &files {
                write(&f.name, &f.content, f.mode)?;
            }
            let cluster_ca = files.first().map(|f| f.content.clone()).unwrap_or_default();
            let pin = kubewright::pki::ca_pin(cluster_ca.as_bytes()).unwrap_or_default();
            let text = format!(
                "made the CAs of cluster {} in {} ({:?}, valid for {}); the cluster CA's pin is {pin}\nthe next install puts them on {} before kubeadm init\n",
                inv.cluster.name,
                pki.display(),
                c.ca_key_type,
                c.ca_validity,
                inv.first_control_plane().name
            );
            out.result(
                &text,
                &serde_json::json!({"dir": pki.display().to_string(), "files": written, "ca_cert_hash": pin}),
            );
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Schedule { inventory, print, install, no_enable, unit_dir, calendar, within } => {
            let inv = load_inventory(&inventory, out)?;
            if calendar.is_empty() || calendar.contains(['\n', '\r']) {
                return Err(UserError::new(
                    format!("`{calendar}` is not a calendar expression"),
                    "give a systemd OnCalendar= value such as `daily` or `Mon *-*-* 03:00` (see systemd.time(7))",
                )
                .into());
            }
            let absolute = |p: &std::path::Path, what: &str| -> anyhow::Result<String> {
                std::path::absolute(p).map(|p| p.display().to_string()).map_err(|e| {
                    UserError::new(
                        format!("cannot make the {what} path {} absolute: {e}", p.display()),
                        "the unit needs absolute paths: run from a directory that exists, or give absolute paths",
                    )
                    .into()
                })
            };
            let own_path = std::env::current_exe().map_err(|e| {
                Failure::new(
                    format!("cannot find kubewright's own path for the unit: {e}"),
                    "run kubewright by its installed path (e.g. /usr/local/bin/kubewright certs schedule ...)",
                )
            })?;
            let binary = absolute(&own_path, "kubewright")?;
            let inventory_path = absolute(&inventory.inventory, "inventory")?;
            let me = running_user()?;
            // The cluster's name is one path component, so the state root (what the job's
            // KUBEWRIGHT_STATE_DIR must be) is its state directory's parent. Resolved when it
            // exists: WorkingDirectory= takes no `..`, and the unit should not depend on a link.
            let state = state_dir(&inv.cluster.name);
            let root = state.parent().unwrap_or(std::path::Path::new("/"));
            let root = match root.canonicalize() {
                Ok(real) => real.display().to_string(),
                Err(_) => absolute(root, "state directory")?,
            };
            let schedule = kubewright::schedule::Schedule {
                cluster: &inv.cluster.name,
                binary: &binary,
                inventory: &inventory_path,
                state_root: &root,
                user: &me.name,
                home: &me.home,
                within: within.unwrap_or(inv.cluster.certificates.renew_before),
                on_calendar: &calendar,
            };
            let state = std::path::PathBuf::from(schedule.state_dir());
            let state_exists = owned_by(&state, &me)?;
            let unusable = |e: String| {
                UserError::new(
                    format!("cannot schedule the renewal: {e}"),
                    "give kubewright, the inventory and KUBEWRIGHT_STATE_DIR paths of printable characters, absolute and without `..`",
                )
            };
            let (service, cron) = (schedule.service().map_err(unusable)?, schedule.cron_line().map_err(unusable)?);
            let (name, timer) = (schedule.unit_name(), schedule.timer());
            let mut text = String::new();
            let mut systemctl = Vec::new();
            if install {
                if !state_exists {
                    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&state).map_err(|e| {
                        Failure::new(
                            format!("cannot make the state directory {}: {e}", state.display()),
                            "make it yourself (owned by the user the job runs as, mode 0700), or set KUBEWRIGHT_STATE_DIR",
                        )
                    })?;
                    text.push_str(&format!("made the state directory {} (0700)\n", state.display()));
                }
                for (file, content) in [(format!("{name}.service"), &service), (format!("{name}.timer"), &timer)] {
                    let path = unit_dir.join(&file);
                    kubewright::exec::write_file_atomically(&path, content.as_bytes(), 0o644).map_err(|e| {
                        UserError::new(
                            format!("cannot write {}: {e}", path.display()),
                            "--install writes into /etc/systemd/system: run it as root, or pass --unit-dir",
                        )
                    })?;
                    text.push_str(&format!("wrote {}\n", path.display()));
                }
                let enable = ["enable", "--now", &format!("{name}.timer")].map(String::from);
                if no_enable {
                    text.push_str(&format!(
                        "not enabled (--no-enable): run systemctl daemon-reload && systemctl enable --now {name}.timer\n"
                    ));
                } else {
                    for args in [vec!["daemon-reload".to_string()], enable.to_vec()] {
                        run_systemctl(&args, &name)?;
                        text.push_str(&format!("ran systemctl {}\n", args.join(" ")));
                        systemctl.push(args.join(" "));
                    }
                    text.push_str(&format!(
                        "the timer is enabled and started; it runs {name}.service as {} (`systemctl list-timers {name}.timer`: when)\n",
                        me.name
                    ));
                }
            }
            if print {
                text.push_str(&format!(
                    "# {name}.service\n{service}\n# {name}.timer\n{timer}\n# crontab line for {}'s crontab (for bastions without systemd)\n{cron}\n",
                    me.name
                ));
            }
            let json = serde_json::json!({
                "unit": name, "service": service, "timer": timer, "cron": cron,
                "user": me.name, "home": me.home, "state_dir": state.display().to_string(),
                "installed_in": install.then(|| unit_dir.display().to_string()),
                "enabled": install && !no_enable, "systemctl": systemctl,
            });
            out.result(&text, &json);
            Ok(ExitCode::SUCCESS)
        }
        CertsCommand::Renew { inventory, connect, if_expiring_within, force, yes, restart, dry_run } => {
            let inv = load_inventory(&inventory, out)?;
            let goal = Goal::RenewCertificates(match (force, if_expiring_within) {
                (true, _) => RenewGoal::Always,
                (false, within) => {
                    RenewGoal::ExpiringWithin { within: within.unwrap_or(inv.cluster.certificates.renew_before) }
                }
            });
            let run = GoalArgs { yes, restart, dry_run, ..GoalArgs::new(&connect) };
            run_goal(&inv, &kubewright::render::Templates::builtin(), goal, &run, out)
        }
        CertsCommand::Check { inventory, connect, warn, critical, prometheus_textfile, concurrency } => {
            let inv = load_inventory(&inventory, out)?;
            let warn = warn.unwrap_or(inv.cluster.certificates.renew_before);
            if critical.seconds > warn.seconds {
                return Err(UserError::new(format!("--critical {critical} is longer than --warn {warn}"), "a certificate is critical when it has less than --critical left: it must be the shorter of the two")
                    .into());
            }
            // A directory made on the fly for a mistyped path is one node_exporter never reads.
            if let Some(dir) = prometheus_textfile.as_deref().and_then(std::path::Path::parent)
                && !dir.as_os_str().is_empty()
                && !dir.is_dir()
            {
                return Err(UserError::new(
                    format!("the directory of --prometheus-textfile, {}, does not exist", dir.display()),
                    "give a file in the directory node_exporter's --collector.textfile.directory names; no host was contacted",
                )
                .into());
            }
            let targets: Vec<Target> =
                inv.hosts.iter().map(|h| Target::from_inventory(&inv, h, connect.accept_new_host_keys)).collect();
            let connector = connect.connector(&inv)?;
            let runtime = runtime()?;
            let no_files = std::collections::BTreeMap::new();
            let (facts, failures) =
                runtime.block_on(kubewright::exec::facts::gather_partial(&connector, targets, &no_files, concurrency));
            for (_, line) in connector.take_settings() {
                out.detail(&line);
            }
            let bastion_admin = std::fs::read_to_string(state_dir(&inv.cluster.name).join("admin.conf"))
                .ok()
                .and_then(|text| kubewright::kubeconfig::client_certificate(&text));
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
            let unreachable = failures.iter().map(|f| format!("{}: {}", f.host, f.message)).collect();
            let thresholds = Thresholds { warn_s: warn.seconds as i64, critical_s: critical.seconds as i64 };
            let report = report(&inv, &facts, bastion_admin.as_ref(), unreachable, now, thresholds);
            if let Some(path) = &prometheus_textfile {
                kubewright::exec::write_file_atomically(path, render_prometheus(&report).as_bytes(), 0o644).map_err(
                    |e| {
                        UserError::new(
                            format!("cannot write {}: {e}", path.display()),
                            "the textfile collector's directory must be writable by this user",
                        )
                    },
                )?;
            }
            out.result(&render_text(&report), &report);
            Ok(ExitCode::from(report.exit_code()))
        }
    }
}

/// Who runs `certs schedule`: the scheduled job's User= and HOME.
struct Account {
    uid: u32,
    name: String,
    home: String,
}

/// The effective user, from the user database (as systemd resolves User=), not from `$USER`
/// or `$HOME`, which `sudo` may have kept from the user who called it.
fn running_user() -> anyhow::Result<Account> {
    let uid = nix::unistd::geteuid();
    let help = "the unit names its user: run kubewright as an account the user database (getent passwd) knows";
    let entry = nix::unistd::User::from_uid(uid)
        .map_err(|e| Failure::new(format!("cannot look up uid {uid} in the user database: {e}"), help))?
        .ok_or_else(|| Failure::new(format!("uid {uid} has no entry in the user database"), help))?;
    Ok(Account { uid: uid.as_raw(), name: entry.name, home: entry.dir.display().to_string() })
}

/// Whether the state directory exists; an error when it is not `me`'s. The job runs as `me`
/// and writes there (journal, backups, log), following whatever links its owner puts in it.
fn owned_by(dir: &std::path::Path, me: &Account) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(Failure::new(
                format!("cannot read the state directory {}: {e}", dir.display()),
                "check its permissions, or set KUBEWRIGHT_STATE_DIR to a directory of the user the job runs as",
            )
            .into());
        }
    };
    if !meta.is_dir() {
        return Err(UserError::new(
            format!("the state directory {} is not a directory", dir.display()),
            "move it away, or set KUBEWRIGHT_STATE_DIR to another directory",
        )
        .into());
    }
    if meta.uid() != me.uid {
        let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(meta.uid()))
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {}", meta.uid()), |u| u.name);
        return Err(UserError::new(
            format!(
                "the state directory {} is owned by {owner}, not by {}, who would run the scheduled renewal",
                dir.display(),
                me.name
            ),
            format!(
                "schedule it as {owner} (with --print, and have root install the units), or set KUBEWRIGHT_STATE_DIR \
                 to a directory {} owns",
                me.name
            ),
        )
        .into());
    }
    Ok(true)
}

fn run_systemctl(args: &[String], unit: &str) -> anyhow::Result<()> {
    let shown = format!("systemctl {}", args.join(" "));
    let help = format!(
        "the units are written; run `systemctl daemon-reload && systemctl enable --now {unit}.timer` where systemd \
         runs (as root), or pass --no-enable to only write them"
    );
    let o = std::process::Command::new("systemctl")
        .args(args)
        .output()
        .map_err(|e| Failure::new(format!("cannot run `{shown}`: {e}"), help.clone()))?;
    if !o.status.success() {
        let stderr = String::from_utf8_lossy(&o.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(Failure::new(format!("`{shown}` failed ({}): {}", o.status, tail.join("\n")), help).into());
    }
    Ok(())
}
