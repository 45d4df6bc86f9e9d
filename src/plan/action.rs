//! [`Action`]: one effect on a host. The one type the plan describes and the executor runs:
//! what an action's commands are ([`Action::commands`]) is what the plan prints and what the
//! host runs, so a description can never say something else than what happens.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::script::Script;

/// How a managed file compares with what is on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileChange {
    New,
    Changed,
    Unchanged,
}

/// A file brought to its rendered content.
#[derive(Debug, Clone, Serialize)]
pub struct FileWrite {
    pub path: String,
    /// Octal, `0644`.
    pub mode: String,
    pub owner: String,
    pub change: FileChange,
    /// Unified diff from the current content (or from nothing); `null` when sensitive.
    pub diff: Option<String>,
    /// Holds secrets at run time: rendered here with placeholders (`<bootstrap-token>`), which
    /// the executor completes with the run's values as it writes the file.
    pub sensitive: bool,
    /// Removed right after the command that reads it (see [`Action::RunWithFile`]).
    pub transient: bool,
    /// What is written (secrets as placeholders). Not in the JSON plan: the diff says it.
    #[serde(skip)]
    pub content: String,
}

impl FileWrite {
    /// The file's mode as a number; the planner only makes valid octal modes.
    pub fn mode_bits(&self) -> Result<u32, String> {
        u32::from_str_radix(&self.mode, 8)
            .map_err(|_| format!("the mode {} of {} is not an octal file mode", self.mode, self.path))
    }
}

/// A package moved to a version (`from` None: not installed before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    pub name: String,
    pub from: Option<String>,
    /// The release (`1.31.4`), or `repository version` when not pinned.
    pub to: String,
    /// The package version installed (`1.31.4-1.1`); None: whatever the repository has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<String>,
}

/// One effect on a host. Describing it (plan) and executing it (apply) read the same value.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Action {
    WriteFile(FileWrite),
    Run {
        description: String,
        commands: Script,
    },
    /// A command that reads a file holding this run's secrets (a kubeadm configuration with
    /// the bootstrap token): one script writes the file from standard input, runs `commands`
    /// and removes it, whatever happens (trapped): the secret is never on the host between two
    /// commands.
    RunWithFile {
        file: FileWrite,
        description: String,
        commands: Script,
    },
    /// Packages installed or moved with apt (`apt-get update` first when `update_index`), and
    /// held where named.
    Packages {
        changes: Vec<PackageChange>,
        update_index: bool,
        hold: Vec<String>,
    },
    /// Said in the plan, runs nothing: a check decided when planning, from the facts just read
    /// (a warning, what preflight verified, why something is skipped).
    Note {
        text: String,
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
    /// Copy a file from the bastion to the host, atomically, root's with `mode`, streamed.
    /// `sha256` is the file's content when planned: the host refuses a file that changed since.
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
    /// Cordon `node` and evict its pods (DaemonSet pods stay; disruption budgets hold). With
    /// `mark`, the node is first annotated as cordoned by kubewright, so that a later run
    /// tells this cordon from an admin's.
    Drain {
        node: String,
        grace_period_s: u64,
        timeout_s: u64,
        /// A drain the budgets block leaves the node out and the run goes on (`--skip-blocked`).
        skip_when_blocked: bool,
        #[serde(default)]
        mark: bool,
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

impl Action {
    /// The commands this action runs as one script on its host, when it is one that does
    /// (`Run`, `RunWithFile`, `Packages`, `Rollback`): exactly the lines the plan shows.
    pub fn commands(&self) -> Option<Script> {
        match self {
            Action::Run { commands, .. } | Action::RunWithFile { commands, .. } | Action::Rollback { commands, .. } => {
                Some(commands.clone())
            }
            Action::Packages { changes, update_index, hold } => Some(apt_script(changes, *update_index, hold)),
            _ => None,
        }
    }

    /// What the action does, in a few words (progress lines, failures).
    pub fn summary(&self) -> String {
        match self {
            Action::WriteFile(f) => format!("write {}", f.path),
            Action::Run { description, .. }
            | Action::RunWithFile { description, .. }
            | Action::Rollback { description, .. } => description.clone(),
            Action::Packages { changes, .. } => {
                let names: Vec<String> = changes.iter().map(|c| format!("{} {}", c.name, c.to)).collect();
                format!("install {}", names.join(", "))
            }
            Action::Note { text } => text.clone(),
            Action::Fetch { remote, local, .. } => format!("fetch {remote} to {local}"),
            Action::Upload { local, remote, .. } => format!("send {local} to {remote}"),
            Action::VerifyCertificates { .. } => "check the renewed certificates".into(),
            Action::PinCa { remote } => format!("read the cluster CA {remote}"),
            Action::VerifyKubeadmConfig { .. } => "check the cluster's kubeadm-config".into(),
            Action::Probe { description, .. } | Action::Wait { description, .. } => format!("wait until {description}"),
            Action::Drain { node, .. } => format!("cordon and drain {node}"),
            Action::Via { action, .. } => action.summary(),
        }
    }
}

/// `apt-get update` (when asked), the install of every change at its pinned version, and the
/// holds. `--allow-change-held-packages`: the Kubernetes packages are held, and moving them is
/// the point.
fn apt_script(changes: &[PackageChange], update_index: bool, hold: &[String]) -> Script {
    let mut script = Script::new();
    if update_index {
        script = script.cmd(["apt-get", "update", "-q"]);
    }
    if !changes.is_empty() {
        let mut install: Vec<String> =
            ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--allow-change-held-packages"]
                .map(String::from)
                .to_vec();
        install.extend(changes.iter().map(|c| match &c.pin {
            Some(pin) => format!("{}={pin}", c.name),
            None => c.name.clone(),
        }));
        script = script.cmd(install);
    }
    if !hold.is_empty() {
        let mut words = vec!["apt-mark".to_string(), "hold".into()];
        words.extend(hold.iter().cloned());
        script = script.cmd(words);
    }
    script
}
