//! `kubewright plan`: what apply would do, per step and host, with file diffs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use super::inputs::{InventoryArg, TemplatesArg, load_inventory, load_playbook, load_templates, state_dir};
use crate::report::Reporter;
use kubewright::facts::ClusterFacts;
use kubewright::plan::{PlanInput, plan, render_text};
use kubewright::render::Secrets;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright plan --offline -i inventories/example.yaml
  kubewright plan --offline -i inv.yaml --diff
  kubewright plan --offline -i inv.yaml --output json > plan.json
  kubewright plan --offline -i inv.yaml --detailed-exitcode   # 0 no changes, 2 changes, 1 error

`--offline` plans without contacting any host: every host is assumed fresh, so the plan shows
everything an install does. The JSON plan's schema is described in docs/plan-json.md.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    templates: TemplatesArg,
    /// Plan without contacting the hosts, assuming every host is fresh (required in this version:
    /// fact gathering over SSH is not part of this build yet)
    #[arg(long, required = true)]
    offline: bool,
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
    let playbook = load_playbook(args.playbook.as_deref(), &args.builtin)?;
    out.detail(&format!(
        "playbook: {} ({} steps); templates: {}",
        args.playbook
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("built-in `{}`", args.builtin)),
        playbook.steps.len(),
        args.templates
            .templates
            .as_ref()
            .map(|d| format!("built-in, overridden from {}", d.display()))
            .unwrap_or_else(|| "built-in".into())
    ));
    let facts = ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()));
    // The plan never sees real secrets: files are rendered with placeholders.
    let secrets = Secrets::placeholders();
    let mut files = BTreeMap::new();
    for host in &inv.hosts {
        files.insert(host.name.clone(), templates.render_host(&inv, host, &secrets)?);
    }
    let state = state_dir(&inv.cluster.name).display().to_string();
    let plan =
        plan(&PlanInput { inventory: &inv, playbook: &playbook, facts: &facts, files: &files, state_dir: &state })?;
    out.result(&render_text(&plan, args.diff), &plan);
    Ok(if args.detailed_exitcode && plan.summary.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
