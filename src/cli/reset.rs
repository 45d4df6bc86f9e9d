//! `kubewright reset`: tear the whole cluster down (the built-in `reset` playbook), behind a
//! confirmation that names the cluster.

use std::process::ExitCode;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use super::ui::{GoalArgs, run_goal};
use crate::report::Reporter;
use kubewright::goal::Goal;

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
--confirm must name the cluster. --dry-run shows the plan and stops.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// The cluster's name (`cluster.name`): the confirmation, for runs without a terminal
    #[arg(long, value_name = "CLUSTER")]
    confirm: Option<String>,
    /// Ignore the journal of an unfinished earlier reset and start over
    #[arg(long)]
    restart: bool,
    /// Show the plan and stop: nothing changed, no lock taken, no confirmation needed
    #[arg(long)]
    dry_run: bool,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let run = GoalArgs {
        confirm: args.confirm.as_deref(),
        restart: args.restart,
        dry_run: args.dry_run,
        ..GoalArgs::new(&args.connect)
    };
    run_goal(&inv, &kubewright::render::Templates::builtin(), Goal::Reset, &run, out)
}
