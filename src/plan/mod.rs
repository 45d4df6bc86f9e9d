//! The plan: what a run will do, per step and per host, and why. It is the product: `plan`
//! prints it, every job executes the same value, and `--output json` serialises it.
//!
//! [`plan`] is a pure function of the inventory, the [`Goal`], the facts, the templates and
//! what the bastion holds (and, for a resumed run, its journal): the same inputs give the same
//! plan, byte for byte. Every goal gives the one [`Plan`] type: an install's steps, an
//! upgrade's hops, a restore's stages, with the notes and refusals a reader needs before
//! confirming.

mod action;
mod goals;
mod node_ips;
mod text;
mod tools;
mod upgrade;

use std::collections::BTreeMap;

use serde::Serialize;

pub use action::{Action, FileChange, FileWrite, KubeconfigServer, PackageChange};
pub use goals::{hop_playbook, remove_node_playbook, restore_playbook};
pub use node_ips::{NodeIp, Resolved as ResolvedNodeIps, resolve as resolve_node_ips};
pub use text::render_text;
pub use tools::TOOLS;
pub use upgrade::{UPGRADE, due as upgrade_due, releases_to_ask};

use crate::facts::{ClusterFacts, HostFacts};
use crate::goal::Goal;
use crate::inventory::{Host, Inventory};
use crate::playbook::{Playbook, Rollout, StepSpec};
use crate::render::{RemoteFile, RenderError, Templates};
use crate::steps;
use crate::upgrade::Refusal;
use crate::version::Version;

/// Schema version of the JSON plan; bumped on any incompatible change (docs/plan-json.md).
pub const PLAN_SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub schema_version: u32,
    pub cluster: String,
    /// What was asked.
    pub goal: Goal,
    /// The run's name in the journal and the lock: the playbook's (`install`, `upgrade`,
    /// `certs-renew`, ...).
    pub playbook: String,
    /// The release the cluster runs once the plan is done.
    pub kubernetes_version: Version,
    /// True when no facts were gathered and every host was assumed fresh.
    pub assumed_fresh: bool,
    /// The inventory's `cluster.timeouts.command`: each command is stopped on its host after
    /// this long, unless its step says otherwise.
    pub command_timeout_s: u64,
    /// What to know before confirming, one line each (the path of an upgrade, why an install
    /// became one, what a repository could not say).
    pub notes: Vec<String>,
    /// Why the goal cannot be reached from here, each with what to do; a plan with refusals
    /// has no steps and changes nothing.
    pub refusals: Vec<Refusal>,
    /// The node IPs the inventory gives as an interface (`internalAddress: {interface: eth1}`),
    /// with the address read on each host (none offline).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub node_ips: Vec<NodeIp>,
    /// An upgrade's path: the release the cluster runs and each hop, one minor at a time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradePath>,
    pub steps: Vec<PlannedStep>,
    pub summary: Summary,
}

/// The releases an upgrade goes through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradePath {
    pub from: Version,
    pub hops: Vec<Version>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// The step id, as in playbooks and the journal (`prepare-host`, `upgrade-worker@1.32.9`).
    pub id: String,
    pub title: String,
    pub rollout: Rollout,
    /// Each of the step's commands is stopped on its host after this long: the playbook
    /// step's `timeout`, else the inventory's `cluster.timeouts.command`.
    pub command_timeout_s: u64,
    /// The upgrade hop the step belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop: Option<Version>,
    /// What the journal knows this step's work by: a hash of the step as the goal asks for it
    /// (its action, commands, inputs, hop). An earlier run's finished step with another key
    /// was another plan, and is not taken as done.
    pub key: String,
    /// The bastion environment variables whose values the step's commands get on stdin.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<String>,
    pub hosts: Vec<HostPlan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostPlan {
    pub host: String,
    #[serde(flatten)]
    pub decision: Decision,
}

/// What a step will do on one host.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "decision", rename_all = "kebab-case")]
pub enum Decision {
    /// Nothing to do, and why ("kubeadm 1.31.4 installed and held").
    Skip { reason: String },
    /// Read-only checks; changes nothing.
    Verify { actions: Vec<Action> },
    /// Creates what is not there yet (files, packages, a node joining).
    Add { actions: Vec<Action> },
    /// Changes what is there.
    Change { actions: Vec<Action> },
    /// The host fails a preflight check: `apply` changes nothing anywhere until it is fixed.
    Blocked { problems: Vec<String> },
}

impl Decision {
    pub fn actions(&self) -> &[Action] {
        match self {
            Decision::Skip { .. } | Decision::Blocked { .. } => &[],
            Decision::Verify { actions } | Decision::Add { actions } | Decision::Change { actions } => actions,
        }
    }

    fn actions_mut(&mut self) -> Option<&mut Vec<Action>> {
        match self {
            Decision::Skip { .. } | Decision::Blocked { .. } => None,
            Decision::Verify { actions } | Decision::Add { actions } | Decision::Change { actions } => Some(actions),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub unchanged: usize,
    /// Hosts a preflight check blocks.
    pub blocked: usize,
}

impl Summary {
    pub fn has_changes(&self) -> bool {
        self.add + self.change > 0
    }

    fn uncount(&mut self, decision: &Decision) {
        match decision {
            Decision::Skip { .. } => self.unchanged = self.unchanged.saturating_sub(1),
            Decision::Add { .. } => self.add = self.add.saturating_sub(1),
            Decision::Change { .. } => self.change = self.change.saturating_sub(1),
            Decision::Verify { .. } => {}
            Decision::Blocked { .. } => self.blocked = self.blocked.saturating_sub(1),
        }
    }

    fn count(&mut self, decision: &Decision) {
        match decision {
            Decision::Skip { .. } => self.unchanged += 1,
            Decision::Add { .. } => self.add += 1,
            Decision::Change { .. } => self.change += 1,
            Decision::Verify { .. } => {}
            Decision::Blocked { .. } => self.blocked += 1,
        }
    }
}

impl Plan {
    /// Every host skips every step (and nothing is refused): running it would change nothing.
    pub fn nothing_to_do(&self) -> bool {
        self.refusals.is_empty()
            && self.steps.iter().flat_map(|s| &s.hosts).all(|h| matches!(h.decision, Decision::Skip { .. }))
    }

    /// Why the plan cannot be executed as it is: its refusals, the problems of blocked hosts,
    /// an action the executor cannot carry out. Nothing has changed when this says no.
    pub fn check_executable(&self) -> Result<(), NotExecutable> {
        if !self.refusals.is_empty() {
            return Err(NotExecutable::Refused { goal: self.playbook.clone(), refusals: self.refusals.clone() });
        }
        let blocked: Vec<String> = self
            .steps
            .iter()
            .flat_map(|step| &step.hosts)
            .flat_map(|hp| match &hp.decision {
                Decision::Blocked { problems } => problems.iter().map(|p| format!("{}: {p}", hp.host)).collect(),
                _ => Vec::new(),
            })
            .collect();
        if !blocked.is_empty() {
            return Err(NotExecutable::Blocked { problems: blocked });
        }
        for step in &self.steps {
            for hp in &step.hosts {
                for action in hp.decision.actions() {
                    executable(action).map_err(|what| NotExecutable::Action {
                        step: step.id.clone(),
                        host: hp.host.clone(),
                        what,
                    })?;
                }
            }
        }
        Ok(())
    }
}

fn executable(action: &Action) -> Result<(), String> {
    match action {
        Action::WriteFile(f) => f.mode_bits().map(drop),
        Action::RunWithFile { file, .. } => file.mode_bits().map(drop),
        Action::Fetch { mode, .. } | Action::Upload { mode, .. } => {
            u32::from_str_radix(mode, 8).map(drop).map_err(|_| format!("the mode {mode} is not an octal file mode"))
        }
        // Files are the host's own: a file write from elsewhere is not a thing.
        Action::Via { on, action } => match action.as_ref() {
            Action::WriteFile(_) | Action::RunWithFile { .. } | Action::Via { .. } | Action::Upload { .. } => {
                Err(format!("it writes or forwards from {on}, which only commands, waits and drains can"))
            }
            inner => executable(inner),
        },
        _ => Ok(()),
    }
}

/// Why a plan cannot be executed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotExecutable {
    /// The goal cannot be reached from the cluster as it is (an upgrade's refusals).
    #[error("the {goal} is refused; nothing was changed:\n  {}", refusals.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Refused { goal: String, refusals: Vec<Refusal> },
    /// Hosts fail the checks of preflight (or a step finds it cannot go ahead there): every
    /// problem, `host: problem`.
    #[error("{} problem(s) block the plan; nothing was changed:\n  {}", problems.len(), problems.join("\n  "))]
    Blocked { problems: Vec<String> },
    /// An action that cannot be carried out as planned.
    #[error("step `{step}` on {host}: {what}")]
    Action { step: String, host: String, what: String },
}

impl NotExecutable {
    pub fn hint(&self) -> String {
        match self {
            NotExecutable::Refused { refusals, .. } => match refusals.as_slice() {
                [one] => one.fix.clone(),
                _ => "fix what is named (each line says how), then run the same command again".into(),
            },
            NotExecutable::Blocked { .. } => {
                "fix these on the hosts (the plan marks them with x), then run the same command again".into()
            }
            NotExecutable::Action { .. } => "`kubewright plan` shows what it would do; the playbook or templates ask for something this version cannot run".into(),
        }
    }

    /// The input asked for what cannot run (exit 2), rather than the hosts' state (exit 1).
    pub fn is_input(&self) -> bool {
        matches!(self, NotExecutable::Action { .. })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("playbook step {index} uses unknown action `{action}`")]
    UnknownAction { index: usize, action: String },
    #[error("playbook step `{step}`: {source}")]
    UnknownHost { step: String, source: crate::playbook::UnknownHost },
    #[error("no facts for host `{host}`")]
    MissingFacts { host: String },
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Playbook(#[from] crate::playbook::PlaybookError),
}

impl PlanError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            PlanError::UnknownAction { .. } => {
                format!("the actions this version has: {}", steps::ids().join(", "))
            }
            PlanError::UnknownHost { source, .. } => source.hint(),
            // The facts are gathered from every host before planning: a host missing from
            // them is kubewright's bug, not the user's.
            PlanError::MissingFacts { .. } => {
                "kubewright gathered no facts from this host; run again with -vv, and report it if it repeats".into()
            }
            PlanError::Render(e) => e.hint(),
            PlanError::Playbook(_) => "the built-in playbooks are part of kubewright: report this".into(),
        }
    }

    /// The input named what does not exist (exit 2).
    pub fn is_input(&self) -> bool {
        matches!(self, PlanError::UnknownAction { .. } | PlanError::UnknownHost { .. } | PlanError::Render(_))
    }
}

/// What the bastion holds that a plan depends on.
#[derive(Debug, Clone, Default)]
pub struct Bastion {
    /// The directory of this cluster's state (kubeconfig, journal, backups).
    pub state_dir: String,
    /// The CAs `certs init-ca` made, by file name under `pki/` (certificate and key PEM).
    pub cluster_cas: BTreeMap<String, String>,
}

/// What an unfinished earlier run of the same playbook finished: (step id, host) → the
/// step's key then.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resume {
    pub done: BTreeMap<(String, String), String>,
}

/// Everything a plan is computed from.
pub struct PlanInput<'a> {
    pub inventory: &'a Inventory,
    pub goal: &'a Goal,
    pub facts: &'a ClusterFacts,
    pub templates: &'a Templates,
    pub bastion: &'a Bastion,
    /// The journal of an unfinished earlier run being continued.
    pub resume: Option<&'a Resume>,
}

/// What a step sees while planning one host.
pub struct PlanCx<'a> {
    /// The playbook's entry for the step being planned (its own commands, for `shell`).
    pub step: &'a StepSpec,
    pub inventory: &'a Inventory,
    pub facts: &'a ClusterFacts,
    pub files: &'a BTreeMap<String, Vec<RemoteFile>>,
    pub state_dir: &'a str,
}

impl PlanCx<'_> {
    /// How long each wait of a step may take (the inventory's `cluster.timeouts.ready`).
    pub fn ready_timeout_s(&self) -> u64 {
        self.inventory.cluster.timeouts.ready.seconds
    }

    pub fn files_of(&self, host: &Host) -> &[RemoteFile] {
        self.files.get(&host.name).map(Vec::as_slice).unwrap_or_default()
    }
}

/// The plan for the input's goal.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    // Everything below plans from the node IPs the hosts have.
    let resolved = node_ips::resolve(input.inventory, input.facts);
    let input = &PlanInput { inventory: &resolved.inventory, ..*input };
    let inv = input.inventory;
    input.goal.check(inv).map_err(|source| PlanError::UnknownHost { step: input.goal.kind().into(), source })?;
    let mut plan = Plan {
        schema_version: PLAN_SCHEMA_VERSION,
        cluster: inv.cluster.name.clone(),
        goal: input.goal.clone(),
        playbook: String::new(),
        kubernetes_version: inv.cluster.kubernetes_version,
        assumed_fresh: input.facts.assumed_fresh,
        command_timeout_s: inv.cluster.timeouts.command.seconds,
        notes: Vec::new(),
        refusals: Vec::new(),
        node_ips: resolved.node_ips.clone(),
        upgrade: None,
        steps: Vec::new(),
        summary: Summary::default(),
    };
    match input.goal {
        Goal::Converge => match upgrade::due(input.facts, inv) {
            Some(why) => {
                plan.notes.push(format!(
                    "{}: this apply is the upgrade (`kubewright upgrade -i INV` does the same, with its options)",
                    capitalized(&why)
                ));
                upgrade::plan(input, &crate::goal::UpgradeGoal::to_inventory(inv), &mut plan)?;
            }
            None => add_playbook(input, inv, &Playbook::builtin("install")?, None, &mut plan)?,
        },
        Goal::Playbook { playbook } => add_playbook(input, inv, playbook, None, &mut plan)?,
        Goal::Upgrade(goal) => upgrade::plan(input, goal, &mut plan)?,
        Goal::RenewCertificates(renew) => {
            let mut inv = inv.clone();
            inv.cluster.certificates.renew_before = match renew {
                crate::goal::RenewGoal::Always => crate::duration::Duration::from_secs(u64::MAX),
                crate::goal::RenewGoal::ExpiringWithin { within } => *within,
            };
            add_playbook(input, &inv, &Playbook::builtin("certs-renew")?, None, &mut plan)?;
        }
        Goal::Snapshot => add_playbook(input, inv, &Playbook::builtin("etcd-snapshot")?, None, &mut plan)?,
        Goal::Restore { snapshot } => add_playbook(input, inv, &restore_playbook(snapshot), None, &mut plan)?,
        Goal::RemoveNode { node } => add_playbook(input, inv, &remove_node_playbook(node), None, &mut plan)?,
        Goal::Reset => add_playbook(input, inv, &Playbook::builtin("reset")?, None, &mut plan)?,
    }
    let mut refusals = resolved.refusals;
    if refusals.is_empty() && !input.facts.assumed_fresh {
        refusals.extend(node_ips::placeholders_in(&plan));
    }
    if !refusals.is_empty() {
        // A node IP that cannot be read: what was planned from a placeholder must not run.
        plan.refusals.extend(refusals);
        plan.steps.clear();
        plan.summary = Summary::default();
    }
    tools::require(&mut plan, input.facts);
    Ok(plan)
}

/// Plan `playbook` over `inv` (the goal's inventory: at an upgrade's hop, at its version) and
/// append its steps to `plan`, `hop` naming the upgrade hop they belong to.
fn add_playbook(
    input: &PlanInput<'_>,
    inv: &Inventory,
    playbook: &Playbook,
    hop: Option<Version>,
    plan: &mut Plan,
) -> Result<(), PlanError> {
    let files = crate::render::host_files(inv, input.templates, &input.bastion.cluster_cas)?;
    let facts = input.facts;
    plan.playbook = playbook.name.clone();
    for (index, spec) in playbook.steps.iter().enumerate() {
        let step = steps::lookup(&spec.action)
            .ok_or_else(|| PlanError::UnknownAction { index, action: spec.action.clone() })?;
        let selected =
            spec.hosts.resolve(inv).map_err(|source| PlanError::UnknownHost { step: spec.action.clone(), source })?;
        let cx = PlanCx { step: spec, inventory: inv, facts, files: &files, state_dir: &input.bastion.state_dir };
        let key = step_key(&playbook.name, spec);
        let mut hosts = Vec::new();
        for host in selected {
            let host_facts: &HostFacts =
                facts.host(&host.name).ok_or_else(|| PlanError::MissingFacts { host: host.name.clone() })?;
            let mut decision = step.plan(&cx, host, host_facts);
            let finished_earlier =
                input.resume.and_then(|r| r.done.get(&(spec.id.clone(), host.name.clone()))).map(|k| *k == key);
            resume(step, &mut decision, finished_earlier);
            plan.summary.count(&decision);
            hosts.push(HostPlan { host: host.name.clone(), decision });
        }
        plan.steps.push(PlannedStep {
            id: spec.id.clone(),
            title: step.title().to_string(),
            rollout: spec.rollout,
            command_timeout_s: spec.timeout.unwrap_or(inv.cluster.timeouts.command).seconds,
            hop,
            key,
            secret_env: spec.secret_env.clone(),
            hosts,
        });
    }
    Ok(())
}

/// What the journal of an unfinished run changes in a fresh decision: `finished_earlier` is
/// Some(true) when that run finished this step on this host with the same key, Some(false)
/// when it finished it under another plan. Steps whose decision reads the facts (an install's,
/// an upgrade's node steps) trust the facts over the journal: a host re-imaged since the
/// journal says "joined" is joined again, and the plan says why. Steps the facts cannot judge
/// (a renewal that was forced, a snapshot, your own commands) are skipped on the journal's
/// word, but only for the same plan.
fn resume(step: &dyn steps::Step, decision: &mut Decision, finished_earlier: Option<bool>) {
    let pending = matches!(decision, Decision::Add { .. } | Decision::Change { .. } | Decision::Verify { .. });
    match finished_earlier {
        Some(true) if pending && step.resumes_from_journal() => {
            *decision = Decision::Skip { reason: "finished by an earlier run (journal)".into() };
        }
        Some(true) if pending && !matches!(decision, Decision::Verify { .. }) => {
            if let Some(actions) = decision.actions_mut() {
                actions.insert(
                    0,
                    Action::Note {
                        text: "the unfinished earlier run finished this step here, but the host's facts say it is not done (changed or re-imaged since?): it is planned again".into(),
                    },
                );
            }
        }
        Some(false) if pending && step.resumes_from_journal() => {
            if let Some(actions) = decision.actions_mut() {
                actions.insert(
                    0,
                    Action::Note {
                        text: "the unfinished earlier run finished this step here with another plan (the step changed since): it runs again".into(),
                    },
                );
            }
        }
        _ => {}
    }
}

/// The journal's key of a step: the playbook's name and the step as the goal asks for it.
fn step_key(playbook: &str, spec: &StepSpec) -> String {
    let text = serde_json::to_string(&(playbook, spec)).unwrap_or_default();
    crate::pki::sha256_hex(text.as_bytes())[..16].to_string()
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The action that brings `file` to its rendered content, or None when it already is.
pub fn write_file_action(file: &RemoteFile, facts: &HostFacts) -> Option<Action> {
    file_write(file, facts).map(Action::WriteFile)
}

/// `file` as a write, or None when the host already has it.
pub fn file_write(file: &RemoteFile, facts: &HostFacts) -> Option<FileWrite> {
    let current = facts.files.get(&file.path);
    let change = match current {
        None => FileChange::New,
        Some(c) if *c == file.content => return None,
        Some(_) => FileChange::Changed,
    };
    let diff = (!file.sensitive).then(|| {
        let old = current.map(String::as_str).unwrap_or("");
        similar::TextDiff::from_lines(old, &file.content)
            .unified_diff()
            .context_radius(3)
            .header(if current.is_some() { &file.path } else { "/dev/null" }, &file.path)
            .to_string()
    });
    Some(FileWrite {
        path: file.path.clone(),
        mode: format!("{:04o}", file.mode),
        owner: file.owner.clone(),
        change,
        diff,
        sensitive: file.sensitive,
        transient: file.transient,
        content: file.content.clone(),
    })
}
