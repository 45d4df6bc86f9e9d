//! `kubewright reset`: tear the whole cluster down (the built-in `reset` playbook), behind a
//! confirmation that names the cluster.

use std::process::ExitCode;

use super::apply::{Confirmation, RunOptions};
use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::Reporter;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright reset -i inv.yaml                      # shows the plan, then asks for the cluster's name
  kubewright reset -i inv.yaml --confirm prod -o json

Workers first, then the other control planes one at a time, the first control plane last: on
each, `kubeadm reset --force`, /etc/cni/net.d removed, the iptables filter, nat and mangle
tables flushed, and what kubewright wrote (/etc/kubewright, its sysctl and module files, its
/etc/hosts line) removed. Packages, containerd and the backups in /var/lib/kubewright/backups
stay; so does the bastion's state directory (remove it yourself). Without a terminal,
--confirm must name the cluster.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// The cluster's name (`cluster.name`): the confirmation, for runs without a terminal
    #[arg(long, value_name = "CLUSTER")]
    confirm: Option<String>,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let playbook = kubewright::playbook::Playbook::builtin("reset")?;
    let templates = kubewright::render::Templates::builtin();
    let options = RunOptions { connect: args.connect, yes: true, restart: false, concurrency: 64, preview: None };
    let confirmation = Confirmation {
        given: args.confirm.as_deref(),
        doing: format!("tearing down cluster {}", inv.cluster.name),
        question: format!("This destroys cluster {}. Type its name to go on: ", inv.cluster.name),
    };
    super::apply::run_playbook_confirmed(&inv, &templates, &playbook, options, &confirmation, out)
}
