//! The plan: what `apply` will do, per step and per host, and why. It is the product:
//! `plan` prints it, `apply` executes the same value, and `--output json` serialises it.
//!
//! [`plan`] is a pure function of the inventory, the playbook, the facts and the rendered
//! files: the same inputs give the same plan, byte for byte.

mod text;

use std::collections::BTreeMap;

use serde::Serialize;

pub use text::render_text;

use crate::facts::{ClusterFacts, HostFacts};
use crate::inventory::{Host, Inventory};
use crate::playbook::{Playbook, Rollout};
use crate::render::RemoteFile;
use crate::script::Script;
use crate::steps;
use crate::version::Version;

/// Schema version of the JSON plan; bumped on any incompatible change (docs/plan-json.md).
pub const PLAN_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub schema_version: u32,
    pub cluster: String,
    pub kubernetes_version: Version,
    pub playbook: String,
    /// True when no facts were gathered and every host was assumed fresh.
    pub assumed_fresh: bool,
    /// The inventory's `cluster.timeouts.command`: each command is stopped on its host after
    /// this long, unless its step says otherwise.
    pub command_timeout_s: u64,
    pub steps: Vec<PlannedStep>,
    pub summary: Summary,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlannedStep {
    /// The step id, as in playbooks and the journal (`prepare-host`).
    pub id: String,
    pub title: String,
    pub rollout: Rollout,
    /// Each of the step's commands is stopped on its host after this long: the playbook
    /// step's `timeout`, else the inventory's `cluster.timeouts.command`.
    pub command_timeout_s: u64,
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
}

/// How a managed file compares with what is on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileChange {
    New,
    Changed,
    Unchanged,
}

/// One effect on a host. Describing it (plan) and executing it (apply) read the same value.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    WriteFile {
        path: String,
        mode: String,
        owner: String,
        change: FileChange,
        /// Unified diff from the current content (or from nothing); `null` when sensitive.
        diff: Option<String>,
        sensitive: bool,
        /// Removed right after the step's command has used it.
        transient: bool,
    },
    Run {
        description: String,
        commands: Script,
    },
    /// A package moves from one version to another (`None`: not installed).
    Package {
        name: String,
        from: Option<String>,
        to: String,
        hold: bool,
    },
    /// A read-only check.
    Check {
        description: String,
    },
    /// Copy a file from the host to the bastion.
    Fetch {
        remote: String,
        local: String,
        mode: String,
        /// For a kubeconfig whose server name only the nodes resolve: the address the bastion
        /// uses instead, keeping the name for the certificate check (`tls-server-name`).
        #[serde(skip_serializing_if = "Option::is_none")]
        kubeconfig_server: Option<KubeconfigServer>,
        /// Keep this many earlier copies beside it (`FILE.1` newest); None: replace it.
        #[serde(skip_serializing_if = "Option::is_none")]
        keep: Option<u32>,
    },
    /// Copy a file from the bastion to the host, atomically, root's with `mode`. `sha256` is
    /// the file's content when planned: a file that changed since is not sent.
    Upload {
        local: String,
        remote: String,
        mode: String,
        sha256: String,
    },
    /// Read the host's certificates again and fail unless every one kubeadm renews now
    /// expires after `after` (seconds since the epoch) and is signed by its CA on disk.
    VerifyCertificates {
        after: i64,
    },
    /// Run only if an action before it in the step fails, to put the host back as it was.
    Rollback {
        description: String,
        commands: Script,
    },
    /// Read the cluster CA certificate at `remote`: the nodes joining later in the run pin
    /// the hash of its public key (kubeadm's `caCertHashes`).
    PinCa {
        remote: String,
    },
    /// Read the cluster's kubeadm-config and fail where a field the inventory decides differs
    /// (dotted field path → value, as kubeadm stores it).
    VerifyKubeadmConfig {
        expected: BTreeMap<String, String>,
    },
    /// Run `commands` every few seconds until they succeed, or fail after the timeout.
    Probe {
        description: String,
        commands: Script,
        timeout_s: u64,
    },
    /// Wait until every node in `nodes` is Ready with a kubelet at `version` (and, with
    /// `etcd`, the host's etcd member answers healthy), or fail after the timeout.
    Wait {
        description: String,
        nodes: Vec<String>,
        version: String,
        etcd: bool,
        timeout_s: u64,
    },
    /// Cordon `node` and evict its pods (DaemonSet pods stay; disruption budgets hold).
    Drain {
        node: String,
        grace_period_s: u64,
        timeout_s: u64,
        /// A drain the budgets block leaves the node out and the run goes on (`--skip-blocked`).
        skip_when_blocked: bool,
    },
    /// `action` for this host, carried out from host `on` (where the admin kubeconfig is).
    Via {
        on: String,
        action: Box<Action>,
    },
}

/// Where a fetched kubeconfig points on the bastion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubeconfigServer {
    /// `https://10.0.0.11:6443`
    pub server: String,
    /// The name the API server's certificate carries (the control-plane endpoint's).
    pub tls_server_name: String,
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
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("playbook step {index} uses unknown action `{action}`")]
    UnknownAction { index: usize, action: String },
    #[error("playbook step `{step}`: {source}")]
    UnknownHost { step: String, source: crate::playbook::UnknownHost },
    #[error("no facts for host `{host}`")]
    MissingFacts { host: String },
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
        }
    }
}

/// Everything a plan is computed from.
pub struct PlanInput<'a> {
    pub inventory: &'a Inventory,
    pub playbook: &'a Playbook,
    pub facts: &'a ClusterFacts,
    /// Files rendered for each host (with secret placeholders), by host name.
    pub files: &'a BTreeMap<String, Vec<RemoteFile>>,
    /// The bastion directory for this cluster's state (kubeconfig, journal, backups).
    pub state_dir: &'a str,
}

/// What a step sees while planning one host.
pub struct PlanCx<'a> {
    /// The playbook's entry for the step being planned (its own commands, for `shell`).
    pub step: &'a crate::playbook::StepSpec,
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

/// Compute the plan for the input's playbook over its inventory.
pub fn plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    let PlanInput { inventory, playbook, facts, files, state_dir } = *input;
    let mut planned = Vec::with_capacity(playbook.steps.len());
    let mut summary = Summary::default();
    for (index, spec) in playbook.steps.iter().enumerate() {
        let step = steps::lookup(&spec.action)
            .ok_or_else(|| PlanError::UnknownAction { index, action: spec.action.clone() })?;
        let selected = spec
            .hosts
            .resolve(inventory)
            .map_err(|source| PlanError::UnknownHost { step: spec.action.clone(), source })?;
        let cx = PlanCx { step: spec, inventory, facts, files, state_dir };
        let mut hosts = Vec::new();
        for host in selected {
            let host_facts: &HostFacts =
                facts.host(&host.name).ok_or_else(|| PlanError::MissingFacts { host: host.name.clone() })?;
            let decision = step.plan(&cx, host, host_facts);
            match decision {
                Decision::Skip { .. } => summary.unchanged += 1,
                Decision::Add { .. } => summary.add += 1,
                Decision::Change { .. } => summary.change += 1,
                Decision::Verify { .. } => {}
                Decision::Blocked { .. } => summary.blocked += 1,
            }
            hosts.push(HostPlan { host: host.name.clone(), decision });
        }
        planned.push(PlannedStep {
            id: spec.id.clone(),
            title: step.title().to_string(),
            rollout: spec.rollout,
            command_timeout_s: spec.timeout.unwrap_or(inventory.cluster.timeouts.command).seconds,
            hosts,
        });
    }
    Ok(Plan {
        schema_version: PLAN_SCHEMA_VERSION,
        cluster: inventory.cluster.name.clone(),
        kubernetes_version: inventory.cluster.kubernetes_version,
        playbook: playbook.name.clone(),
        assumed_fresh: facts.assumed_fresh,
        command_timeout_s: inventory.cluster.timeouts.command.seconds,
        steps: planned,
        summary,
    })
}

/// The action that brings `file` to its rendered content, or None when it already is.
pub fn write_file_action(file: &RemoteFile, facts: &HostFacts) -> Option<Action> {
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
    Some(Action::WriteFile {
        path: file.path.clone(),
        mode: format!("{:04o}", file.mode),
        owner: file.owner.clone(),
        change,
        diff,
        sensitive: file.sensitive,
        transient: file.transient,
    })
}
