//! `kubewright remove-node NAME`: one node out of the cluster in the safe order (the
//! `remove-node` step), also when the node is already dead.

use std::process::ExitCode;

use super::inputs::{ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_templates};
use super::ui::{GoalArgs, run_goal};
use crate::report::Reporter;
use kubewright::goal::Goal;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright remove-node -i inv.yaml w3
  kubewright remove-node -i inv.yaml cp3 --yes -o json

In this order: drain the node (from the first control plane; disruption budgets hold), remove
its etcd member if it is a control plane, `kubeadm reset --force` on it (and its CNI
configuration), delete its Node object. A node that cannot be reached is still removed from the
cluster: the drain and the reset are skipped, and the plan says so. The first control plane
cannot be removed this way (list another one first). Afterwards take the node out of the
inventory and run `kubewright apply`, so the API proxies and endpoint names forget it.
--dry-run shows the plan and stops.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    templates: TemplatesArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// The node to remove (its inventory name)
    name: String,
    /// Change the hosts without asking (required when there is no terminal)
    #[arg(long)]
    yes: bool,
    /// Show the plan and stop: nothing changed, no lock taken
    #[arg(long)]
    dry_run: bool,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let templates = load_templates(&args.templates)?;
    let goal = Goal::RemoveNode { node: args.name.clone() };
    let run = GoalArgs { yes: args.yes, dry_run: args.dry_run, ..GoalArgs::new(&args.connect) };
    run_goal(&inv, &templates, goal, &run, out)
}
