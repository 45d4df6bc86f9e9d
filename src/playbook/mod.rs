//! Playbooks: ordered lists of built-in steps, each with the hosts it runs on and how.
//!
//! A playbook only orders and parameterises; the logic (predicates, commands, health
//! gates) is Rust code in [`crate::steps`]. Built-in playbooks are embedded in the binary;
//! `--playbook FILE` loads another one, checked the same way.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Location, did_you_mean};
use crate::inventory::{Host, Inventory, MaxUnavailable, Role};
use crate::source_map::{FieldPath, SourceMap};

const BUILTIN: &[(&str, &str)] = &[
    ("install", include_str!("../../playbooks/install.yaml")),
    ("certs-renew", include_str!("../../playbooks/certs-renew.yaml")),
    ("etcd-snapshot", include_str!("../../playbooks/etcd-snapshot.yaml")),
    ("reset", include_str!("../../playbooks/reset.yaml")),
];

/// Which hosts a step runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "value")]
pub enum HostSelector {
    All,
    Role(Role),
    /// The first control plane in inventory order (`control-plane[0]`).
    FirstControlPlane,
    /// Every control plane but the first (`control-plane[1:]`).
    OtherControlPlanes,
    Names(Vec<String>),
}

impl HostSelector {
    /// `all`, `control-plane`, `worker`, `control-plane[0]` or `control-plane[1:]`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "all" => HostSelector::All,
            "control-plane" => HostSelector::Role(Role::ControlPlane),
            "worker" => HostSelector::Role(Role::Worker),
            "control-plane[0]" => HostSelector::FirstControlPlane,
            "control-plane[1:]" => HostSelector::OtherControlPlanes,
            _ => return None,
        })
    }

    /// A selector as a person types it: a keyword, or host names separated by commas.
    pub fn from_arg(s: &str) -> Self {
        Self::parse(s).unwrap_or_else(|| HostSelector::Names(s.split(',').map(|n| n.trim().to_string()).collect()))
    }

    /// The selected hosts in inventory order; a name the inventory does not have is an error
    /// that suggests the closest one.
    pub fn resolve<'a>(&self, inv: &'a Inventory) -> Result<Vec<&'a Host>, UnknownHost> {
        if let HostSelector::Names(names) = self
            && let Some(missing) = names.iter().find(|n| inv.host(n).is_none())
        {
            let known: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
            let suggestion = did_you_mean(missing, known.iter().copied()).map(str::to_string);
            return Err(UnknownHost { name: missing.clone(), suggestion, known: known.join(", ") });
        }
        Ok(self.select(inv))
    }

    /// The selected hosts, in inventory order.
    pub fn select<'a>(&self, inv: &'a Inventory) -> Vec<&'a Host> {
        let first = inv.first_control_plane();
        inv.hosts
            .iter()
            .filter(|h| match self {
                HostSelector::All => true,
                HostSelector::Role(role) => h.roles.contains(role),
                HostSelector::FirstControlPlane => std::ptr::eq(*h, first),
                HostSelector::OtherControlPlanes => h.is_control_plane() && !std::ptr::eq(*h, first),
                HostSelector::Names(names) => names.contains(&h.name),
            })
            .collect()
    }
}

/// A host name that is not in the inventory.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no host named `{name}` in the inventory")]
pub struct UnknownHost {
    pub name: String,
    pub suggestion: Option<String>,
    /// The inventory's host names, comma-separated.
    pub known: String,
}

impl UnknownHost {
    pub fn hint(&self) -> String {
        match &self.suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => format!("hosts are: {}", self.known),
        }
    }
}

impl fmt::Display for HostSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSelector::All => f.write_str("all"),
            HostSelector::Role(r) => f.write_str(r.as_str()),
            HostSelector::FirstControlPlane => f.write_str("control-plane[0]"),
            HostSelector::OtherControlPlanes => f.write_str("control-plane[1:]"),
            HostSelector::Names(n) => f.write_str(&n.join(", ")),
        }
    }
}

/// How the hosts of a step are worked through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "size")]
pub enum Rollout {
    /// All at once, bounded by `--concurrency`.
    Parallel,
    /// One host at a time; the next starts only when the previous one finished healthy.
    Serial,
    /// At most this many hosts at a time.
    Batch(MaxUnavailable),
}

impl fmt::Display for Rollout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rollout::Parallel => f.write_str("parallel"),
            Rollout::Serial => f.write_str("one host at a time"),
            Rollout::Batch(m) => write!(f, "batches of {m}"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepSpec {
    /// The step's id in plans and the journal: `id` when given, else the action.
    pub id: String,
    /// The built-in step this runs (`prepare-host`, `kubeadm-init`, ..., or `shell`).
    pub action: String,
    pub hosts: HostSelector,
    pub rollout: Rollout,
    /// The playbook's own commands (`shell` steps only), run in order, stopping at a failure.
    pub commands: Vec<String>,
    /// Stop each command after this long (`shell` steps).
    pub timeout: Option<crate::duration::Duration>,
    /// Names of environment variables on the bastion whose values the commands get as
    /// environment variables (through stdin, never on a command line), redacted in all output.
    pub secret_env: Vec<String>,
    /// The etcd snapshot the `etcd-restore-*` steps put back: given by `kubewright etcd
    /// restore FILE`, never by a playbook file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotInput>,
}

/// An etcd snapshot on the bastion, as a restore plans with it.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInput {
    /// Its path on the bastion.
    pub local: String,
    /// Its SHA-256 (lowercase hex): what is sent, checked again on each host.
    pub sha256: String,
}

impl StepSpec {
    /// A step of a playbook kubewright builds itself (an upgrade's hop, a removal, a restore).
    pub fn builtin(id: impl Into<String>, action: &str, hosts: HostSelector, rollout: Rollout) -> Self {
        StepSpec {
            id: id.into(),
            action: action.into(),
            hosts,
            rollout,
            commands: Vec::new(),
            timeout: None,
            secret_env: Vec::new(),
            snapshot: None,
        }
    }
}

/// The action of a step that runs the playbook's own commands.
pub const SHELL_ACTION: &str = "shell";

#[derive(Debug, Clone, Serialize)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    pub steps: Vec<StepSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlaybook {
    name: String,
    #[serde(default)]
    description: String,
    steps: Vec<RawStep>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    action: String,
    id: Option<String>,
    hosts: HostsField,
    rollout: Option<String>,
    batch: Option<String>,
    #[serde(default)]
    commands: Vec<String>,
    timeout: Option<String>,
    #[serde(default, rename = "secretEnv")]
    secret_env: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum HostsField {
    One(String),
    Names(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
#[error("playbook `{file}` is invalid")]
pub struct PlaybookError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl Playbook {
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    /// A playbook compiled into the binary.
    pub fn builtin(name: &str) -> Result<Playbook, PlaybookError> {
        match BUILTIN.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Playbook::parse(&format!("<built-in playbook {n}>"), text),
            None => {
                let mut d = Diagnostic::error("", format!("no built-in playbook named `{name}`"))
                    .expected(format!("one of {}", Self::builtin_names().join(", ")));
                if let Some(s) = did_you_mean(name, Self::builtin_names()) {
                    d = d.hint(format!("did you mean `{s}`?"));
                }
                Err(PlaybookError { file: name.to_string(), diagnostics: vec![d] })
            }
        }
    }

    /// Parse and check a playbook: structure, known actions, selectors and rollouts.
    pub fn parse(file: &str, text: &str) -> Result<Playbook, PlaybookError> {
        let fail = |mut diagnostics: Vec<Diagnostic>| {
            for d in &mut diagnostics {
                d.file = file.to_string();
            }
            PlaybookError { file: file.to_string(), diagnostics }
        };
        let raw: RawPlaybook = serde_saphyr::from_str(text).map_err(|e| {
            let mut d = Diagnostic::error("", e.without_snippet().to_string().lines().next().unwrap_or("invalid YAML").to_string())
                .hint("a playbook is a mapping with `name`, `description` and `steps` (each with `action`, `hosts` and optionally `rollout`)");
            d.location = e.location().map(|l| Location { line: l.line() as usize, column: l.column() as usize });
            fail(vec![d])
        })?;
        let map = SourceMap::build(text);
        let mut diags = Vec::new();
        let mut steps = Vec::new();
        for (i, step) in raw.steps.into_iter().enumerate() {
            let path = FieldPath::root().key("steps").index(i);
            let mut report = |field: &str, d: Diagnostic| {
                let p = path.key(field);
                let mut d = d;
                d.location = map.value_location(&p);
                d.path = p.to_string();
                diags.push(d);
            };
            if crate::steps::lookup(&step.action).is_none() {
                let mut d = Diagnostic::error("", format!("unknown action `{}`", step.action))
                    .expected(format!("one of {}", crate::steps::ids().join(", ")));
                if let Some(s) = did_you_mean(&step.action, crate::steps::ids()) {
                    d = d.hint(format!("did you mean `{s}`?"));
                }
                report("action", d);
            }
            let hosts = match step.hosts {
                HostsField::One(s) => HostSelector::parse(&s).unwrap_or_else(|| {
                    report("hosts", Diagnostic::error("", format!("unknown host selector `{s}`")).expected("`all`, `control-plane`, `worker`, `control-plane[0]`, `control-plane[1:]` or a list of host names"));
                    HostSelector::All
                }),
                HostsField::Names(names) => HostSelector::Names(names),
            };
            let rollout = match (step.rollout.as_deref(), step.batch.as_deref()) {
                (None | Some("parallel"), None) => Rollout::Parallel,
                (Some("serial"), None) => Rollout::Serial,
                (None | Some("batch"), Some(b)) => match b.strip_suffix('%') {
                    Some(p) => p
                        .parse()
                        .ok()
                        .filter(|p| (1..=100).contains(p))
                        .map(|p| Rollout::Batch(MaxUnavailable::Percent(p))),
                    None => b.parse().ok().filter(|n| *n >= 1).map(|n| Rollout::Batch(MaxUnavailable::Count(n))),
                }
                .unwrap_or_else(|| {
                    report(
                        "batch",
                        Diagnostic::error("", format!("invalid batch size `{b}`"))
                            .expected("a count of at least 1 or a percentage like `20%`"),
                    );
                    Rollout::Parallel
                }),
                (Some(other), _) => {
                    report(
                        "rollout",
                        Diagnostic::error("", format!("invalid rollout `{other}`"))
                            .expected("`parallel`, `serial`, or `batch` with a `batch: N` or `batch: N%` size"),
                    );
                    Rollout::Parallel
                }
            };
            let shell = step.action == SHELL_ACTION;
            if shell && step.commands.is_empty() {
                report(
                    "commands",
                    Diagnostic::error("", "a `shell` step needs `commands`")
                        .hint("list the commands to run, e.g. `commands: [\"systemctl restart kubelet\"]`"),
                );
            }
            for (field, given) in [
                ("commands", !step.commands.is_empty()),
                ("timeout", step.timeout.is_some()),
                ("secretEnv", !step.secret_env.is_empty()),
            ] {
                if given && !shell {
                    report(
                        field,
                        Diagnostic::error("", format!("`{field}` belongs to `shell` steps"))
                            .hint(format!("built-in actions like `{}` bring their own commands", step.action)),
                    );
                }
            }
            let timeout = step.timeout.as_deref().and_then(|t| match t.parse::<crate::duration::Duration>() {
                Ok(d) if d.seconds > 0 => Some(d),
                _ => {
                    report(
                        "timeout",
                        Diagnostic::error("", format!("invalid timeout `{t}`"))
                            .expected("a duration like 90s, 5m or 1h"),
                    );
                    None
                }
            });
            for name in &step.secret_env {
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !valid {
                    report(
                        "secretEnv",
                        Diagnostic::error("", format!("`{name}` is not an environment variable name"))
                            .expected("letters, digits and `_`, not starting with a digit"),
                    );
                }
            }
            let id = step.id.unwrap_or_else(|| step.action.clone());
            if !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') || id.is_empty() {
                report(
                    "id",
                    Diagnostic::error("", format!("invalid step id `{id}`"))
                        .expected("lowercase letters, digits and `-` (it names the step in the journal)"),
                );
            } else if steps.iter().any(|s: &StepSpec| s.id == id) {
                report(
                    "id",
                    Diagnostic::error("", format!("two steps have the id `{id}`"))
                        .hint("give the later one its own `id:` (the journal records finished steps by id)"),
                );
            }
            steps.push(StepSpec {
                id,
                action: step.action,
                hosts,
                rollout,
                commands: step.commands,
                timeout,
                secret_env: step.secret_env,
                snapshot: None,
            });
        }
        if steps.is_empty() {
            diags.push(
                Diagnostic::error("steps", "the playbook has no steps")
                    .hint("list its steps under `steps:`; playbooks/install.yaml is an example"),
            );
        }
        if !diags.is_empty() {
            return Err(fail(diags));
        }
        Ok(Playbook { name: raw.name, description: raw.description, steps })
    }
}
