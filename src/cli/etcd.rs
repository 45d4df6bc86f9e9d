//! `kubewright etcd snapshot`: the cluster's etcd backup, as the upgrade takes one before its
//! first hop (the built-in `etcd-snapshot` playbook through apply's executor: the lock keeps it
//! from running during an upgrade or a renewal). `kubewright etcd restore FILE`: the cluster
//! back to a snapshot, on every control plane (the `etcd-restore-*` steps).

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use super::ui::{GoalArgs, run_goal};
use crate::report::{Reporter, UserError};
use kubewright::goal::Goal;
use kubewright::playbook::SnapshotInput;

#[derive(Subcommand)]
pub enum EtcdCommand {
    /// Snapshot etcd (checked with `snapshot status`) and back up the PKI on the first control plane; copy both to the state directory
    #[command(after_help = "\
Examples:
  kubewright etcd snapshot -i inv.yaml
  kubewright etcd snapshot -i inv.yaml -o json

On the first control plane, in its etcd container (`crictl exec`: a kubeadm host has no etcd
tools of its own): `etcdctl snapshot save` (with the etcd server's certificate, as kubeadm's
backup documentation does) into etcd's data directory and `snapshot status` on it (etcdutl
where the image has it, etcdctl in the 3.5 images); the snapshot is then moved to
/var/lib/kubewright/backups, beside a tarball of /etc/kubernetes/pki and the kubeconfigs; both are copied to
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
from it beside etcd's live data (`snapshot restore` in the member's container, or in a one-off
container of its image where it does not run, with the new membership of all the control
planes) while the cluster still runs. Then the API servers, controllers, schedulers and
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
    let templates = kubewright::render::Templates::builtin();
    match cmd {
        EtcdCommand::Snapshot { inventory, connect } => {
            let inv = load_inventory(&inventory, out)?;
            run_goal(&inv, &templates, Goal::Snapshot, &GoalArgs::new(&connect), out)
        }
        EtcdCommand::Restore { inventory, connect, file, confirm, restart, dry_run } => {
            let inv = load_inventory(&inventory, out)?;
            let snapshot = snapshot_input(&file)?;
            let run = GoalArgs { confirm: confirm.as_deref(), restart, dry_run, ..GoalArgs::new(&connect) };
            run_goal(&inv, &templates, Goal::Restore { snapshot }, &run, out)
        }
    }
}

/// The snapshot on the bastion as the restore plans with it: readable, not empty, its hash
/// (read once, in pieces: a database of gigabytes is never held whole).
fn snapshot_input(file: &std::path::Path) -> anyhow::Result<SnapshotInput> {
    let unreadable = |e: std::io::Error| {
        UserError::new(
            format!("cannot read the snapshot {}: {e}", file.display()),
            "give the path of a file `etcdctl snapshot save` (or `kubewright etcd snapshot`) made; nothing was changed",
        )
    };
    let (size, sha256) = kubewright::exec::sha256_file(file).map_err(unreadable)?;
    if size == 0 {
        return Err(UserError::new(
            format!("the snapshot {} is empty", file.display()),
            "a failed save leaves an empty or `.part` file; give another snapshot; nothing was changed",
        )
        .into());
    }
    let local = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    Ok(SnapshotInput { local: local.display().to_string(), sha256 })
}
