//! `kubewright remove-node NAME`: one node out of the cluster in the safe order (the
//! `remove-node` step), also when the node is already dead.

use std::collections::BTreeMap;
use std::process::ExitCode;

use super::apply::{PlaybookPlanner, RunOptions};
use super::inputs::{ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_templates};
use crate::report::{Reporter, UserError};
use kubewright::playbook::{HostSelector, Playbook, Rollout, StepSpec};

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
inventory and run `kubewright apply`, so the API proxies and endpoint names forget it.")]
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
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    if inv.host(&args.name).is_none() {
        let known: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        let hint = match kubewright::diag::did_you_mean(&args.name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("hosts are: {}", known.join(", ")),
        };
        return Err(UserError::new(format!("no host named `{}` in the inventory", args.name), hint).into());
    }
    let templates = load_templates(&args.templates)?;
    let playbook = Playbook {
        name: "remove-node".into(),
        description: format!("remove {} from the cluster", args.name),
        steps: vec![StepSpec::builtin(
            "remove-node",
            "remove-node",
            HostSelector::Names(vec![args.name.clone()]),
            Rollout::Serial,
        )],
    };
    let planner = PlaybookPlanner {
        inv: &inv,
        playbook: &playbook,
        files: super::plan::host_files(&inv, &templates)?,
        secret_env: BTreeMap::new(),
        may_be_unreachable: Some(args.name.clone()),
    };
    let options = RunOptions { connect: args.connect, yes: args.yes, restart: false, concurrency: 64, preview: None };
    super::apply::run(&inv, &planner, &options, out)
}
