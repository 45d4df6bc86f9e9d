//! `kubewright upgrade`: the cluster to a later Kubernetes release, one minor at a time, every
//! node at each hop: the first control plane (`kubeadm upgrade apply`), the others one at a time
//! (`kubeadm upgrade node`), the pod network, then the workers in batches of
//! `upgrade.maxUnavailable`. Checked before anything changes (path, skew, readiness, etcd,
//! kubeadm-config drift, the lock); etcd snapshot and PKI backup first; journaled per node per
//! hop, so a re-run continues where a stopped one ended.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::process::ExitCode;

use super::apply::{Finished, HostTiming, Planned, Planner, RunCx, RunOptions, lower_for_apply};
use super::inputs::{ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_templates};
use crate::report::{Failure, Reporter, UserError};
use kubewright::exec::engine::{HostStatus, Job, RunReport};
use kubewright::inventory::Inventory;
use kubewright::playbook::{HostSelector, Playbook, Rollout, StepSpec};
use kubewright::render::{RemoteFile, Templates};
use kubewright::ssh::Transport;
use kubewright::upgrade::{Refusal, Target};
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
the cluster lock. An etcd snapshot and a PKI backup are taken first and copied to the state
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
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Show the upgrade's plan (path, refusals, every hop) and stop: nothing changes
    #[arg(long)]
    dry_run: bool,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let mut inv = load_inventory(&args.inventory, out)?;
    inv.cluster.upgrade.keep_cordoned = args.keep_cordoned;
    inv.cluster.upgrade.skip_blocked = args.skip_blocked;
    let templates = load_templates(&args.templates)?;
    let target = args.to.unwrap_or(Target::Exact(inv.cluster.kubernetes_version));
    let files = super::plan::host_files(&inv, &templates)?;
    let mut planner = UpgradePlanner::new(&inv, &templates, files);
    planner.target = target;
    planner.path = args.path;
    planner.accept_drift = args.accept_drift;
    let preview = args.dry_run.then_some(super::apply::Preview { detailed_exitcode: false });
    let options = RunOptions {
        connect: args.connect,
        yes: args.yes,
        restart: args.restart,
        concurrency: args.concurrency,
        preview,
    };
    super::apply::run(&inv, &planner, &options, out)
}

/// The name the upgrade's journal and lock holder carry.
pub const UPGRADE: &str = "upgrade";

pub struct UpgradePlanner<'a> {
    pub inv: &'a Inventory,
    pub templates: &'a Templates,
    /// The files of the inventory as it is (what the facts read).
    pub files: BTreeMap<String, Vec<RemoteFile>>,
    pub target: Target,
    /// `--path`; empty: ask the repository.
    pub path: Vec<Version>,
    pub accept_drift: bool,
    pub secret_env: BTreeMap<String, String>,
    /// The cluster's version and the path, once planned (for the report).
    pub planned: RefCell<Option<(Version, Vec<Version>)>>,
}

impl<'a> UpgradePlanner<'a> {
    /// To the inventory's version, the path asked of the repository, drift refused.
    pub fn new(inv: &'a Inventory, templates: &'a Templates, files: BTreeMap<String, Vec<RemoteFile>>) -> Self {
        UpgradePlanner {
            inv,
            templates,
            files,
            target: Target::Exact(inv.cluster.kubernetes_version),
            path: Vec::new(),
            accept_drift: false,
            secret_env: BTreeMap::new(),
            planned: RefCell::new(None),
        }
    }
}

/// Why an upgrade is due, from the facts: the cluster runs an older release than the inventory
/// names, or nodes lag behind the cluster's (an upgrade that did not finish). None: not due.
pub fn upgrade_due(facts: &kubewright::facts::ClusterFacts, inv: &Inventory) -> Option<String> {
    let view = facts.cluster.as_ref()?;
    let running = view.kubeadm_config.as_deref().and_then(kubewright::kube::cluster_version)?;
    let wanted = inv.cluster.kubernetes_version;
    if running < wanted {
        return Some(format!("the cluster runs {running} and the inventory says {wanted}"));
    }
    // Only the inventory's nodes: others are not kubewright's to upgrade.
    let lagging: Vec<&str> = view
        .nodes
        .iter()
        .filter(|(name, _)| inv.host(name).is_some())
        .filter(|(_, n)| n.kubelet().is_some_and(|k| k < running))
        .map(|(name, _)| name.as_str())
        .collect();
    (running == wanted && !lagging.is_empty()).then(|| {
        format!("node(s) {} are behind the cluster's {running} (an upgrade did not finish)", lagging.join(", "))
    })
}

fn refused(refusals: &[Refusal]) -> anyhow::Error {
    let list: Vec<String> = refusals.iter().map(|r| format!("{}: {}", r.reason, r.fix)).collect();
    Failure::new(
        format!("the upgrade is refused; nothing was changed:\n  {}", list.join("\n  ")),
        "fix what is named (each line says how), then run the upgrade again",
    )
    .into()
}

impl UpgradePlanner<'_> {
    /// The cluster's version, as its kubeadm-config has it.
    fn current<'c>(&self, cx: &RunCx<'c, '_>) -> anyhow::Result<(Version, &'c kubewright::facts::ClusterView)> {
        let first = &self.inv.first_control_plane().name;
        let view = cx.facts.cluster.as_ref().ok_or_else(|| {
            UserError::new(
                format!(
                    "the cluster cannot be read from {first}: it is not installed, or its API server does not answer"
                ),
                "install it with `kubewright apply` first; `kubewright plan` shows what the hosts have",
            )
        })?;
        let version = view.kubeadm_config.as_deref().and_then(kubewright::kube::cluster_version).ok_or_else(|| {
            Failure::new(
                format!("the cluster's kubeadm-config (read on {}) names no kubernetesVersion", view.answered_by),
                "check it with `kubectl -n kube-system get configmap kubeadm-config -o yaml` on a control plane",
            )
        })?;
        Ok((version, view))
    }

    /// What the repository of each minor from the cluster's to the target's offers.
    /// Each minor's repository that could not be read is named in the second list.
    fn offered(&self, cx: &RunCx<'_, '_>, current: Version) -> anyhow::Result<kubewright::upgrade::Offered> {
        let last = match self.target {
            Target::Exact(v) => v.minor,
            Target::Minor { minor, .. } => minor,
        };
        let minors: Vec<u32> = (current.minor..=last.max(current.minor)).collect();
        let first = &self.inv.first_control_plane().name;
        let script = kubewright::upgrade::releases_script(
            &self.inv.cluster.packages.mirror,
            "/etc/apt/keyrings/kubernetes-apt-keyring.gpg",
            &minors,
        );
        let answer = cx.runtime.block_on(async {
            let session = cx.engine.session(first).await?;
            session.run(&script).await
        });
        let out = answer.map_err(|e| {
            Failure::new(format!("cannot ask {first} which releases the repository offers: {e}"), e.hint())
        })?;
        if !out.success() {
            return Err(Failure::new(
                format!("asking the repository on {first} failed: {}", out.stderr.trim()),
                "run `apt-get update` on that host to see why, or give the releases with --path",
            )
            .into());
        }
        Ok(kubewright::upgrade::parse_releases(&out.stdout))
    }

    /// Everything that refuses the upgrade, before anything changes.
    fn refusals(
        &self,
        cx: &RunCx<'_, '_>,
        view: &kubewright::facts::ClusterView,
        current: Version,
        hops: &[Version],
    ) -> Vec<Refusal> {
        let mut refusals = kubewright::upgrade::refusals(&view.nodes, hops);
        let absent: Vec<&str> =
            self.inv.hosts.iter().filter(|h| !view.nodes.contains_key(&h.name)).map(|h| h.name.as_str()).collect();
        if !absent.is_empty() {
            refusals.push(Refusal {
                reason: format!("inventory host(s) {} are not nodes of the cluster", absent.join(", ")),
                fix: "join them first (`kubewright apply` at the cluster's version), or take them out of the inventory"
                    .into(),
            });
        }
        if !self.accept_drift {
            let at_current = self.inv.at_version(current);
            let expected = kubewright::kube::expected_kubeadm_config(&at_current);
            let drift = view
                .kubeadm_config
                .as_deref()
                .map(|yaml| kubewright::kube::kubeadm_config_drift(&expected, yaml).unwrap_or_else(|e| vec![e]))
                .unwrap_or_default();
            if !drift.is_empty() {
                refusals.push(Refusal {
                    reason: format!("the cluster's kubeadm-config differs from the inventory: {}", drift.join("; ")),
                    fix: "set the inventory to what the cluster has, or pass --accept-drift to upgrade it as it is"
                        .into(),
                });
            }
        }
        // Each control plane's own etcd member, as it answered with the facts.
        let control_planes: Vec<String> = self.inv.control_planes().map(|h| h.name.clone()).collect();
        let unhealthy: Vec<(String, String)> = control_planes
            .iter()
            .filter_map(|cp| match &cx.facts.hosts.get(cp)?.etcd_health {
                Some(kubewright::facts::EtcdHealth::Unhealthy { why }) => Some((cp.clone(), why.clone())),
                _ => None,
            })
            .collect();
        refusals.extend(kubewright::upgrade::etcd_refusal(&unhealthy, control_planes.len()));
        refusals
    }

    /// The steps of one hop; the first hop starts with the snapshot.
    fn hop_playbook(&self, hop: Version, first_hop: bool) -> Playbook {
        let step = |action: &str, hosts: HostSelector, rollout: Rollout| {
            StepSpec::builtin(format!("{action}@{hop}"), action, hosts, rollout)
        };
        let mut steps = Vec::new();
        if first_hop {
            steps.push(step("etcd-snapshot", HostSelector::FirstControlPlane, Rollout::Serial));
        }
        steps.push(step(
            "upgrade-control-plane",
            HostSelector::Role(kubewright::inventory::Role::ControlPlane),
            Rollout::Serial,
        ));
        steps.push(step("apply-cni", HostSelector::FirstControlPlane, Rollout::Serial));
        steps.push(step(
            "upgrade-worker",
            HostSelector::Role(kubewright::inventory::Role::Worker),
            Rollout::Batch(self.inv.cluster.upgrade.max_unavailable),
        ));
        Playbook { name: UPGRADE.into(), description: format!("upgrade to {hop}"), steps }
    }
}

impl Planner for UpgradePlanner<'_> {
    fn name(&self) -> &str {
        UPGRADE
    }

    fn files(&self) -> &BTreeMap<String, Vec<RemoteFile>> {
        &self.files
    }

    fn secret_env(&self) -> &BTreeMap<String, String> {
        &self.secret_env
    }

    fn plan(&self, cx: &RunCx<'_, '_>) -> anyhow::Result<Planned> {
        let (current, view) = self.current(cx)?;
        // A repository that cannot be read matters only when the path needs it (the path then
        // says so); otherwise it is a note in the plan.
        let mut repository_notes = Vec::new();
        let hops = if self.path.is_empty() {
            let (offered, notes) = self.offered(cx, current)?;
            repository_notes = notes;
            kubewright::upgrade::path(current, self.target, &offered)
        } else {
            kubewright::upgrade::given_path(current, self.target, &self.path)
        }
        .map_err(|r| refused(&[r]))?;
        let mut hops = hops;
        // Nodes behind the control plane's version: an earlier upgrade did not finish (a
        // blocked drain, a stop); they are brought to it first.
        let lagging = view
            .nodes
            .iter()
            .any(|(name, n)| self.inv.host(name).is_some() && n.kubelet().is_some_and(|k| k < current));
        if lagging && hops.first() != Some(&current) {
            hops.insert(0, current);
        }
        *self.planned.borrow_mut() = Some((current, hops.clone()));
        if hops.is_empty() {
            let text = format!("cluster {} already runs {current}: nothing to upgrade", self.inv.cluster.name);
            return Ok(Planned {
                text: String::new(),
                job: Ok(Job { playbook: UPGRADE.into(), steps: Vec::new() }),
                nothing_to_do: true,
                nothing_to_do_text: Some(text),
            });
        }
        let refusals = self.refusals(cx, view, current, &hops);
        if !refusals.is_empty() {
            return Err(refused(&refusals));
        }
        let path: Vec<String> = std::iter::once(current).chain(hops.iter().copied()).map(|v| v.to_string()).collect();
        let mut text = format!(
            "Upgrade of cluster {}: {} ({} hop(s), one minor at a time; every node at each hop)\n",
            self.inv.cluster.name,
            path.join(" -> "),
            hops.len()
        );
        for note in &repository_notes {
            text.push_str(&format!("note: {note}\n"));
        }
        text.push_str("kubeadm upgrade renews each control plane's certificates (its default), so they are good for a year afterwards.\n");
        if self.inv.control_planes().count() < 3 {
            text.push_str(
                "With fewer than 3 control planes, the API server is unavailable while each etcd member restarts.\n",
            );
        }
        let mut job = Job { playbook: UPGRADE.into(), steps: Vec::new() };
        let state_text = cx.state.display().to_string();
        for (n, hop) in hops.iter().enumerate() {
            let inv = self.inv.at_version(*hop);
            let files = super::plan::host_files(&inv, self.templates)?;
            let playbook = self.hop_playbook(*hop, n == 0);
            let plan = kubewright::plan::plan(&kubewright::plan::PlanInput {
                inventory: &inv,
                playbook: &playbook,
                facts: cx.facts,
                files: &files,
                state_dir: &state_text,
            })?;
            text.push_str(&format!("\nHop {} of {}: to {hop}\n", n + 1, hops.len()));
            text.push_str(&kubewright::plan::render_text(&plan, false));
            match lower_for_apply(&plan, &playbook, &files, &self.secret_env) {
                Ok(hop_job) => job.steps.extend(hop_job.steps),
                Err(e) => return Ok(Planned { text, job: Err(e), nothing_to_do: false, nothing_to_do_text: None }),
            }
        }
        Ok(Planned { text, job: Ok(job), nothing_to_do: false, nothing_to_do_text: None })
    }

    fn report(&self, cx: &RunCx<'_, '_>, run: &RunReport, hosts: &BTreeMap<String, HostTiming>) -> Option<Finished> {
        let (current, hops) = self.planned.borrow().clone()?;
        let before = cx.facts.cluster.as_ref().map(|c| c.nodes.clone()).unwrap_or_default();
        let first = &self.inv.first_control_plane().name;
        // The versions now, as the API server has them.
        let after = cx
            .runtime
            .block_on(async {
                let session = cx.engine.session(first).await.ok()?;
                let out = session.run(&kubewright::exec::wait::nodes_probe()).await.ok()?;
                kubewright::kube::parse_node_list(&out.stdout).ok()
            })
            .unwrap_or_default();
        let mut left_out = Vec::new();
        for step in &run.steps {
            for (host, status) in &step.hosts {
                if let HostStatus::Blocked { failure } = status {
                    left_out.push(serde_json::json!({"node": host, "step": step.id, "why": failure.message}));
                }
            }
        }
        let mut nodes = Vec::new();
        let mut text = format!(
            "\nUpgrade {}: {}\nNODE                 FROM         TO           TIME     DRAINS\n",
            if left_out.is_empty() && run.completed() { "done" } else { "not finished" },
            std::iter::once(current)
                .chain(hops.iter().copied())
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(" -> ")
        );
        for h in &self.inv.hosts {
            let from = before.get(&h.name).map(|n| n.kubelet_version.clone()).unwrap_or_default();
            let to = after.get(&h.name).map(|n| n.kubelet_version.clone()).unwrap_or_else(|| "?".into());
            let timing = hosts.get(&h.name).cloned().unwrap_or_default();
            text.push_str(&format!(
                "{:<20} {:<12} {:<12} {:>6.1}s  {}\n",
                h.name, from, to, timing.seconds, timing.drains
            ));
            nodes.push(serde_json::json!({
                "node": h.name, "from": from, "to": to, "seconds": timing.seconds, "drains": timing.drains,
                "cordoned": after.get(&h.name).is_some_and(|n| n.unschedulable),
            }));
        }
        for l in &left_out {
            text.push_str(&format!(
                "left out: {} ({})\n",
                l["node"].as_str().unwrap_or_default(),
                l["why"].as_str().unwrap_or_default()
            ));
        }
        let json = serde_json::json!({
            "from": current.to_string(),
            "path": hops.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "nodes": nodes,
            "left_out": left_out,
            "run": run,
        });
        Some(Finished { text, json, incomplete: !left_out.is_empty() })
    }
}
