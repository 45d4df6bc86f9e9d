//! `kubewright etcd snapshot`: the cluster's etcd backup, as the upgrade takes one before its
//! first hop (the built-in `etcd-snapshot` playbook through apply's executor: the lock keeps it
//! from running during an upgrade or a renewal). `kubewright etcd restore FILE`: the cluster
//! back to a snapshot, on every control plane (the `etcd-restore-*` steps).

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::{Reporter, UserError};
use kubewright::playbook::{HostSelector, Playbook, Rollout, SnapshotInput, StepSpec};

#[derive(Subcommand)]
pub enum EtcdCommand {
    /// Snapshot etcd (checked with `snapshot status`) and back up the PKI on the first control plane; copy both to the state directory
    #[command(after_help = "\
Examples:
  kubewright etcd snapshot -i inv.yaml
  kubewright etcd snapshot -i inv.yaml -o json

On the first control plane: `etcdctl snapshot save` (with the etcd server's certificate, as
kubeadm's backup documentation does) into /var/lib/kubewright/backups, `etcdctl snapshot
status` on it, and a tarball of /etc/kubernetes/pki and the kubeconfigs; both are copied to
<state dir>/backups/<host>/ (etcd-snapshot.db, pki.tar.gz, 0600). certificates.keepBackups
copies of each are kept on the host and on the bastion (the newest beside as FILE.1, ...).
It changes nothing in the cluster, so it runs without asking; it holds the cluster lock.")]
    Snapshot {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Restore every control plane's etcd member from a snapshot: the cluster goes back to the state it holds
    #[command(after_help = "\
Examples:
  kubewright etcd restore -i inv.yaml ~/.local/state/kubewright/prod/backups/cp1/etcd-snapshot.db
  kubewright etcd restore -i inv.yaml snapshot.db --dry-run      # the plan only
  kubewright etcd restore -i inv.yaml snapshot.db --confirm prod -o json

The procedure of Kubernetes' \"Operating etcd clusters\" for kubeadm's stacked etcd, on every
control plane of the inventory: the snapshot is sent (0600) and checked, and each member restored
from it beside etcd's live data (`etcdutl snapshot restore`, with the new membership of all the
control planes) while the cluster still runs. Then the API servers, controllers, schedulers and
etcd members stop (their manifests parked in /etc/kubewright/restore/manifests), the restored
data replaces each member's (the old stays as <data-dir>/member.before-restore-TIME), etcd
starts, then the rest of the control plane, and every kubelet restarts.

Everything written to the cluster after the snapshot is lost. The API is down from the stop to
the start. Every control plane must be reachable (a dead one: remove it from the inventory first,
and replace it afterwards). Without a terminal --confirm must name the cluster. A run that stopped
half-way is continued by the same command (--restart starts over).")]
    Restore {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
        /// The snapshot (`etcdctl snapshot save`; `kubewright etcd snapshot` keeps them in <state dir>/backups/<host>/)
        file: std::path::PathBuf,
        /// The cluster's name (`cluster.name`): the confirmation, for runs without a terminal
        #[arg(long, value_name = "CLUSTER")]
        confirm: Option<String>,
        /// Ignore the journal of an unfinished earlier restore and start over
        #[arg(long)]
        restart: bool,
        /// Show the plan and stop (no confirmation needed, nothing changed)
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn exec(cmd: EtcdCommand, out: &Reporter) -> anyhow::Result<ExitCode> {
    match cmd {
        EtcdCommand::Snapshot { inventory, connect } => {
            let inv = load_inventory(&inventory, out)?;
            let playbook = kubewright::playbook::Playbook::builtin("etcd-snapshot")?;
            // A backup: nothing in the cluster changes, nothing to confirm.
            let options =
                super::apply::RunOptions { connect, yes: true, restart: false, concurrency: 1, preview: None };
            super::apply::run_playbook(&inv, &kubewright::render::Templates::builtin(), &playbook, &options, out)
        }
        EtcdCommand::Restore { inventory, connect, file, confirm, restart, dry_run } => {
            let inv = load_inventory(&inventory, out)?;
            let snapshot = snapshot_input(&file)?;
            let playbook = restore_playbook(&snapshot);
            let templates = kubewright::render::Templates::builtin();
            let preview = dry_run.then_some(super::apply::Preview { detailed_exitcode: false });
            let options = super::apply::RunOptions { connect, yes: true, restart, concurrency: 64, preview };
            if dry_run {
                return super::apply::run_playbook(&inv, &templates, &playbook, &options, out);
            }
            let confirmation = super::apply::Confirmation {
                given: confirm.as_deref(),
                doing: format!("rolling cluster {} back to {}", inv.cluster.name, file.display()),
                question: format!(
                    "Everything written to cluster {} since the snapshot is lost. Type its name to go on: ",
                    inv.cluster.name
                ),
            };
            super::apply::run_playbook_confirmed(&inv, &templates, &playbook, options, &confirmation, out)
        }
    }
}

/// The snapshot on the bastion as the restore plans with it: readable, not empty, its hash.
fn snapshot_input(file: &std::path::Path) -> anyhow::Result<SnapshotInput> {
    let content = std::fs::read(file).map_err(|e| {
        UserError::new(
            format!("cannot read the snapshot {}: {e}", file.display()),
            "give the path of a file `etcdctl snapshot save` (or `kubewright etcd snapshot`) made; nothing was changed",
        )
    })?;
    if content.is_empty() {
        return Err(UserError::new(
            format!("the snapshot {} is empty", file.display()),
            "a failed save leaves an empty or `.part` file; give another snapshot; nothing was changed",
        )
        .into());
    }
    let local = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    Ok(SnapshotInput { local: local.display().to_string(), sha256: kubewright::pki::sha256_hex(&content) })
}

/// The restore's steps, each on every control plane before the next (the last one on every
/// node): the order the procedure needs.
fn restore_playbook(snapshot: &SnapshotInput) -> Playbook {
    let control_planes = || HostSelector::Role(kubewright::inventory::Role::ControlPlane);
    let mut steps: Vec<StepSpec> =
        ["etcd-restore-stage", "etcd-restore-stop", "etcd-restore-data", "etcd-restore-start"]
            .into_iter()
            .map(|action| StepSpec {
                snapshot: Some(snapshot.clone()),
                ..StepSpec::builtin(action, action, control_planes(), Rollout::Parallel)
            })
            .collect();
    steps.push(StepSpec::builtin("restart-kubelet", "restart-kubelet", HostSelector::All, Rollout::Parallel));
    Playbook {
        name: "etcd-restore".into(),
        description: format!("restore etcd on every control plane from {}", snapshot.local),
        steps,
    }
}
