//! What the user asked for, and nothing else: the [`Goal`] of a run. Every job that changes
//! hosts is a goal; the planner turns a goal, the inventory and the facts into the one
//! [`crate::plan::Plan`] type every job shares, and the run module executes it.
//!
//! A goal knows what only it can know: its name in the journal and the lock, the command that
//! continues it, how it is confirmed, and which host may be unreachable. How it is planned
//! lives in [`crate::plan`].

use serde::{Serialize, Serializer};

use crate::duration::Duration;
use crate::inventory::Inventory;
use crate::playbook::{Playbook, SnapshotInput};
use crate::upgrade::Target;
use crate::version::Version;

/// What a run is for.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Goal {
    /// The built-in install: bare hosts to the inventory's cluster, or, run again, only what
    /// differs (new nodes join, changed files are rewritten). When the cluster runs an older
    /// release than the inventory names, this goal is the upgrade to it.
    Converge,
    /// A playbook of the user's (`apply --playbook FILE`).
    Playbook {
        #[serde(rename = "name", serialize_with = "playbook_name")]
        playbook: Playbook,
    },
    /// The cluster to a later release, one minor at a time.
    Upgrade(UpgradeGoal),
    /// The control planes' certificates renewed when they are close to expiry (or forced).
    RenewCertificates(RenewGoal),
    /// An etcd snapshot and a PKI backup, copied to the bastion.
    Snapshot,
    /// The cluster back to an etcd snapshot.
    Restore { snapshot: SnapshotInput },
    /// One node out of the cluster (also when it is dead).
    RemoveNode { node: String },
    /// The whole cluster torn down.
    Reset,
}

fn playbook_name<S: Serializer>(p: &Playbook, s: S) -> Result<S::Ok, S::Error> {
    p.name.serialize(s)
}

/// `kubewright upgrade`'s options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UpgradeGoal {
    /// The release to reach.
    #[serde(serialize_with = "target_text")]
    pub to: Target,
    /// The releases to go through (`--path`); empty: the newest patch of each minor the
    /// repository offers.
    pub path: Vec<Version>,
    /// Go ahead although the cluster's kubeadm-config differs from the inventory.
    pub accept_drift: bool,
    /// Leave a node whose upgrade failed or whose drain was blocked cordoned.
    pub keep_cordoned: bool,
    /// A drain that disruption budgets block leaves that node out; the others go on.
    pub skip_blocked: bool,
}

fn target_text<S: Serializer>(t: &Target, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Target::Exact(v) => v.to_string().serialize(s),
        Target::Minor { major, minor } => format!("{major}.{minor}").serialize(s),
    }
}

impl UpgradeGoal {
    /// To the inventory's release, the path asked of the repository, drift refused.
    pub fn to_inventory(inv: &Inventory) -> Self {
        UpgradeGoal {
            to: Target::Exact(inv.cluster.kubernetes_version),
            path: Vec::new(),
            accept_drift: false,
            keep_cordoned: false,
            skip_blocked: false,
        }
    }
}

/// When `certs renew` renews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "when", rename_all = "kebab-case")]
pub enum RenewGoal {
    /// When a control plane's first certificate to expire has less than this left (the
    /// inventory's `certificates.renewBefore` unless `--if-expiring-within`).
    ExpiringWithin {
        #[serde(serialize_with = "duration_text")]
        within: Duration,
    },
    /// Whatever is left (`--force`).
    Always,
}

fn duration_text<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    d.to_string().serialize(s)
}

/// How a run is confirmed before it changes anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// Nothing in the cluster changes (a backup): no question.
    None,
    /// `yes` (or `--yes`).
    Yes { question: String },
    /// The cluster's name (or `--confirm NAME`): the run destroys or rolls back the cluster.
    ClusterName {
        /// What needs it ("tearing down cluster prod").
        doing: String,
        question: String,
    },
}

impl Goal {
    /// The built-in playbook `name` as a goal (`apply --builtin NAME`): the built-in jobs
    /// are their own goals, so `apply --builtin reset` asks for the cluster's name as
    /// `reset` does.
    pub fn builtin(name: &str, inv: &Inventory) -> Result<Goal, crate::playbook::PlaybookError> {
        Ok(match name {
            "install" => Goal::Converge,
            "certs-renew" => {
                Goal::RenewCertificates(RenewGoal::ExpiringWithin { within: inv.cluster.certificates.renew_before })
            }
            "etcd-snapshot" => Goal::Snapshot,
            "reset" => Goal::Reset,
            other => Goal::Playbook { playbook: Playbook::builtin(other)? },
        })
    }

    /// The goal's kind, as JSON names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Goal::Converge => "converge",
            Goal::Playbook { .. } => "playbook",
            Goal::Upgrade(_) => "upgrade",
            Goal::RenewCertificates(_) => "renew-certificates",
            Goal::Snapshot => "snapshot",
            Goal::Restore { .. } => "restore",
            Goal::RemoveNode { .. } => "remove-node",
            Goal::Reset => "reset",
        }
    }

    /// The command that runs this goal again (and so continues an unfinished run of it).
    pub fn command(&self) -> String {
        match self {
            Goal::Converge => "kubewright apply".into(),
            Goal::Playbook { playbook } => format!("kubewright apply --playbook FILE (playbook `{}`)", playbook.name),
            Goal::Upgrade(_) => "kubewright upgrade".into(),
            Goal::RenewCertificates(RenewGoal::Always) => "kubewright certs renew --force".into(),
            Goal::RenewCertificates(_) => "kubewright certs renew".into(),
            Goal::Snapshot => "kubewright etcd snapshot".into(),
            Goal::Restore { snapshot } => format!("kubewright etcd restore {}", snapshot.local),
            Goal::RemoveNode { node } => format!("kubewright remove-node {node}"),
            Goal::Reset => "kubewright reset".into(),
        }
    }

    /// How the run is confirmed once its plan is shown.
    pub fn confirmation(&self, inv: &Inventory) -> Confirmation {
        let name = &inv.cluster.name;
        match self {
            Goal::Snapshot => Confirmation::None,
            Goal::Restore { snapshot } => Confirmation::ClusterName {
                doing: format!("rolling cluster {name} back to {}", snapshot.local),
                question: format!(
                    "Everything written to cluster {name} since the snapshot is lost. Type its name to go on: "
                ),
            },
            Goal::Reset => Confirmation::ClusterName {
                doing: format!("tearing down cluster {name}"),
                question: format!("This destroys cluster {name}. Type its name to go on: "),
            },
            _ => Confirmation::Yes { question: format!("Apply this plan to cluster {name}? Type yes: ") },
        }
    }

    /// A look at the facts without the lock comes first: most runs of this goal find nothing
    /// to do (the daily renewal), and such a run must not take the lock (nor be refused by
    /// another run's).
    pub fn looks_before_locking(&self) -> bool {
        matches!(self, Goal::RenewCertificates(_))
    }

    /// The host whose facts may fail to be read (it is planned as unreachable instead).
    pub fn may_be_unreachable(&self) -> Option<&str> {
        match self {
            Goal::RemoveNode { node } => Some(node),
            _ => None,
        }
    }

    /// What the goal names that the inventory must have (the node to remove), checked before
    /// any host is contacted.
    pub fn check(&self, inv: &Inventory) -> Result<(), crate::playbook::UnknownHost> {
        match self {
            Goal::RemoveNode { node } => {
                crate::playbook::HostSelector::Names(vec![node.clone()]).resolve(inv).map(drop)
            }
            _ => Ok(()),
        }
    }

    /// The `secretEnv` variables the goal's commands read from the bastion's environment.
    pub fn secret_env(&self) -> Vec<String> {
        let mut names: Vec<String> = match self {
            Goal::Playbook { playbook } => playbook.steps.iter().flat_map(|s| s.secret_env.iter().cloned()).collect(),
            _ => Vec::new(),
        };
        names.sort();
        names.dedup();
        names
    }
}
