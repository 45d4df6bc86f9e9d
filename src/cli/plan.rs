//! `kubewright plan`: what apply would do, per step and host, with file diffs.

use std::path::PathBuf;
use std::process::ExitCode;

use super::inputs::{ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_playbook, load_templates};
use super::ui::{GoalArgs, run_goal};
use crate::report::Reporter;
use kubewright::goal::Goal;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright plan -i inv.yaml
  kubewright plan --offline -i inventories/example.yaml
  kubewright plan -i inv.yaml --diff
  kubewright plan --offline -i inv.yaml --output json > plan.json
  kubewright plan --offline -i inv.yaml --detailed-exitcode   # 0 no changes, 2 changes, 1 error

A plan in which preflight blocks a host (marked x), or that is refused, is printed and exits 1.

Without `--offline`, plan reads every host's facts first (one read-only command per host: OS,
swap, modules, packages, and the current content of every file kubewright manages), so the
diffs are against what is there; it takes no lock and changes nothing. When the inventory names
a newer release than the cluster runs, the plan is the upgrade's (it asks the package
repository on the first control plane). `--offline` plans without contacting any host: every
host is assumed fresh, so the plan shows everything an install does. The JSON plan's schema is
described in docs/plan-json.md.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    templates: TemplatesArg,
    /// Plan without contacting the hosts, assuming every host is fresh
    #[arg(long)]
    offline: bool,
    #[command(flatten)]
    connect: ConnectArgs,
    /// How many hosts to read facts from at once
    #[arg(long, default_value_t = kubewright::exec::engine::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    /// A playbook file instead of the built-in one
    #[arg(long, value_name = "FILE")]
    playbook: Option<PathBuf>,
    /// The built-in playbook to plan
    #[arg(long, value_name = "NAME", default_value = "install", conflicts_with = "playbook")]
    builtin: String,
    /// Show the content and diff of every file
    #[arg(long)]
    diff: bool,
    /// Exit 0 when nothing would change, 2 when something would, 1 on error
    #[arg(long)]
    detailed_exitcode: bool,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    if args.detailed_exitcode {
        out.set_detailed_exitcode();
    }
    let inv = load_inventory(&args.inventory, out)?;
    let templates = load_templates(&args.templates)?;
    let goal = match &args.playbook {
        Some(file) => Goal::Playbook { playbook: load_playbook(Some(file), "")? },
        None => Goal::builtin(&args.builtin, &inv)?,
    };
    out.detail(&format!(
        "goal: {}; templates: {}",
        goal.command(),
        args.templates
            .templates
            .as_ref()
            .map(|d| format!("built-in, overridden from {}", d.display()))
            .unwrap_or_else(|| "built-in".into())
    ));
    let run = GoalArgs {
        concurrency: args.concurrency,
        dry_run: true,
        offline: args.offline,
        diffs: args.diff,
        detailed_exitcode: args.detailed_exitcode,
        ..GoalArgs::new(&args.connect)
    };
    run_goal(&inv, &templates, goal, &run, out)
}
