//! `kubewright etcd snapshot`: the cluster's etcd backup, as the upgrade takes one before its
//! first hop (the built-in `etcd-snapshot` playbook through apply's executor: the lock keeps it
//! from running during an upgrade or a renewal).

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::Reporter;

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
    }
}
