//! `kubewright plan`: what apply would do, per step and host, with file diffs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use super::inputs::{
    ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_playbook, load_templates, state_dir,
};
use crate::report::{Failure, Reporter, UserError};
use kubewright::facts::ClusterFacts;
use kubewright::plan::{PlanInput, plan, render_text};
use kubewright::render::Secrets;
use kubewright::ssh::Target;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright plan -i inv.yaml
  kubewright plan --offline -i inventories/example.yaml
  kubewright plan -i inv.yaml --diff
  kubewright plan --offline -i inv.yaml --output json > plan.json
  kubewright plan --offline -i inv.yaml --detailed-exitcode   # 0 no changes, 2 changes, 1 error

A plan in which preflight blocks a host (marked x) is printed and exits 1.

Without `--offline`, plan reads every host's facts first (one read-only command per host: OS,
swap, modules, packages, and the current content of every file kubewright manages), so the
diffs are against what is there. `--offline` plans without contacting any host: every host is
assumed fresh, so the plan shows everything an install does. The JSON plan's schema is described in docs/plan-json.md.")]
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
    #[arg(long, default_value_t = 64)]
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
    // The plan never sees real secrets: files are rendered with placeholders.
    let files = host_files(&inv, &templates)?;
    let mut facts = if args.offline {
        ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()))
    } else {
        gather_facts(&inv, &files, &args.connect, args.concurrency, out)?
    };
    // The inventory names a newer release than the cluster runs, or nodes lag behind it: apply
    // would upgrade, so the plan shown is the upgrade's (it asks the repository on the first
    // control plane).
    if args.playbook.is_none()
        && args.builtin == "install"
        && let Some(why) = super::upgrade::upgrade_due(&facts, &inv)
    {
        out.detail(&format!("{why}: planning the upgrade to {}", inv.cluster.kubernetes_version));
        let planner = super::upgrade::UpgradePlanner::new(&inv, &templates, files);
        let preview = super::apply::Preview { detailed_exitcode: args.detailed_exitcode };
        let options = super::apply::RunOptions {
            connect: args.connect,
            yes: false,
            restart: false,
            concurrency: args.concurrency,
            preview: Some(preview),
        };
        return super::apply::run(&inv, &planner, &options, out);
    }
    let state_path = state_dir(&inv.cluster.name);
    facts.bastion_kubeconfig = bastion_has_kubeconfig(&state_path);
    let state = state_path.display().to_string();
    let plan =
        plan(&PlanInput { inventory: &inv, playbook: &playbook, facts: &facts, files: &files, state_dir: &state })?;
    out.result(&render_text(&plan, args.diff), &plan);
    // Hosts failing preflight: the plan is shown, but it cannot be applied.
    Ok(if plan.summary.blocked > 0 {
        ExitCode::FAILURE
    } else if args.detailed_exitcode && plan.summary.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The bastion's own fact: its state directory holds the cluster's admin kubeconfig.
pub fn bastion_has_kubeconfig(state_dir: &std::path::Path) -> bool {
    state_dir.join("admin.conf").is_file()
}

/// Read every host's facts over SSH; all unreachable hosts are reported at once.
pub fn gather_facts(
    inv: &kubewright::inventory::Inventory,
    files: &BTreeMap<String, Vec<kubewright::render::RemoteFile>>,
    connect: &ConnectArgs,
    concurrency: usize,
    out: &Reporter,
) -> anyhow::Result<ClusterFacts> {
    let targets: Vec<Target> =
        inv.hosts.iter().map(|h| Target::from_inventory(inv, h, connect.accept_new_host_keys)).collect();
    let paths = managed_paths(files);
    let connector = connect.connector(inv)?;
    let runtime = super::inputs::runtime()?;
    let started = std::time::Instant::now();
    let gathered = runtime.block_on(kubewright::exec::facts::gather(&connector, targets, &paths, concurrency));
    out.detail(&format!("facts of {} hosts read in {:.1}s", inv.hosts.len(), started.elapsed().as_secs_f64()));
    gathered.map_err(facts_error)
}

/// The paths of the files kubewright manages, per host (whose content the facts include). Not
/// the cluster CAs: they are only ever written before `kubeadm init`, and their keys are not
/// read back from the hosts.
pub fn managed_paths(files: &BTreeMap<String, Vec<kubewright::render::RemoteFile>>) -> BTreeMap<String, Vec<String>> {
    files
        .iter()
        .map(|(host, fs)| {
            let paths = fs.iter().filter(|f| f.kind != kubewright::render::FileKind::ClusterCa).map(|f| f.path.clone());
            (host.clone(), paths.collect())
        })
        .collect()
}

/// Every host's files, rendered with placeholders, plus on the first control plane the CAs the
/// bastion made with `certs init-ca`, if it did.
pub fn host_files(
    inv: &kubewright::inventory::Inventory,
    templates: &kubewright::render::Templates,
) -> anyhow::Result<BTreeMap<String, Vec<kubewright::render::RemoteFile>>> {
    let mut files = BTreeMap::new();
    for host in &inv.hosts {
        files.insert(host.name.clone(), templates.render_host(inv, host, &Secrets::placeholders())?);
    }
    let pki = state_dir(&inv.cluster.name).join("pki");
    let mut found = BTreeMap::new();
    for name in kubewright::render::CLUSTER_CA_FILES {
        match std::fs::read_to_string(pki.join(name)) {
            Ok(content) => {
                found.insert(name.to_string(), content);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(UserError::new(format!("cannot read {}: {e}", pki.join(name).display()), "the state directory's pki/ holds the CAs `certs init-ca` made: make its files readable by this user; no host was contacted")
                    .into());
            }
        }
    }
    if !found.is_empty() {
        files
            .entry(inv.first_control_plane().name.clone())
            .or_default()
            .extend(kubewright::render::cluster_ca_files(&found));
    }
    Ok(files)
}

/// All hosts whose facts could not be read, as one error.
pub fn facts_error(failures: Vec<kubewright::exec::facts::FactsFailure>) -> anyhow::Error {
    let message = failures.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("\n");
    let mut hints: Vec<String> = failures.iter().map(|f| f.hint.clone()).collect();
    hints.dedup();
    anyhow::Error::new(Failure::new(
        format!("cannot read the facts of {} host(s); nothing was planned:\n{message}", failures.len()),
        format!("{}; or plan with --offline to assume fresh hosts", hints.join("; ")),
    ))
}
