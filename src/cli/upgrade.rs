//! `kubewright upgrade`: the cluster to a later Kubernetes release, one minor at a time, every
//! node at each hop (the plan and its refusals are the library's: `kubewright::plan`).

use std::process::ExitCode;

use super::inputs::{ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_templates};
use super::ui::{GoalArgs, run_goal};
use crate::report::Reporter;
use kubewright::goal::{Goal, UpgradeGoal};
use kubewright::upgrade::Target;
use kubewright::version::Version;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright upgrade -i inv.yaml --to 1.32
  kubewright upgrade -i inv.yaml --to 1.32.3 --yes -o json
  kubewright upgrade -i inv.yaml --to 1.32 --path 1.31.13,1.32.3 --skip-blocked

Goes one minor at a time (kubeadm's rule), each hop's release the newest patch of its minor in
the package repository (asked on the first control plane), or --path. At each hop: the first
control plane (`kubeadm upgrade apply`, which renews its certificates, as kubeadm does by
default), the others one at a time (`kubeadm upgrade node`), the pod network, then the workers,
upgrade.maxUnavailable at a time: cordon, drain (evictions: PodDisruptionBudgets hold), kubeadm,
kubelet and kubectl, restart, wait Ready at the new version, uncordon.

Refused before anything changes: a downgrade, a kubelet that would fall out of the version-skew
window, nodes not Ready, inventory hosts not in the cluster, an unhealthy etcd member, a
kubeadm-config that drifted from the inventory (--accept-drift goes ahead), another run holding
the cluster lock (taken before the facts are read). An etcd snapshot and a PKI backup are taken first and copied to the state
directory. A drain the budgets block names the pods and budgets, uncordons the node (unless
--keep-cordoned) and stops the run, or with --skip-blocked goes on and lists the node at the end
(exit 1). Interrupted or failed runs continue from the journal. Exit codes as for apply.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    templates: TemplatesArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// The release to reach: MINOR (`1.32`: its newest patch) or exact (`1.32.3`) [default: the inventory's kubernetesVersion]
    #[arg(long, value_name = "VERSION")]
    to: Option<Target>,
    /// The releases to go through, one per minor, comma-separated (instead of asking the repository)
    #[arg(long, value_name = "V1,V2", value_delimiter = ',')]
    path: Vec<Version>,
    /// Change the hosts without asking (required when there is no terminal)
    #[arg(long)]
    yes: bool,
    /// Ignore the journal of an unfinished earlier run and start from the first step
    #[arg(long)]
    restart: bool,
    /// Go ahead although the cluster's kubeadm-config differs from the inventory
    #[arg(long)]
    accept_drift: bool,
    /// Leave a node whose upgrade failed or whose drain was blocked cordoned
    #[arg(long)]
    keep_cordoned: bool,
    /// A drain that disruption budgets block leaves that node out; the others go on
    #[arg(long)]
    skip_blocked: bool,
    /// How many hosts at once within a parallel step
    #[arg(long, default_value_t = kubewright::exec::engine::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// Show the upgrade's plan (path, refusals, every hop) and stop: nothing changes
    #[arg(long)]
    dry_run: bool,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let templates = load_templates(&args.templates)?;
    let goal = Goal::Upgrade(UpgradeGoal {
        to: args.to.unwrap_or(Target::Exact(inv.cluster.kubernetes_version)),
        path: args.path,
        accept_drift: args.accept_drift,
        keep_cordoned: args.keep_cordoned,
        skip_blocked: args.skip_blocked,
    });
    let run = GoalArgs {
        concurrency: args.concurrency,
        yes: args.yes,
        restart: args.restart,
        dry_run: args.dry_run,
        ..GoalArgs::new(&args.connect)
    };
    run_goal(&inv, &templates, goal, &run, out)
}
