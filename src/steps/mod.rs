//! The built-in steps a playbook can order. A step decides; it never acts: from the
//! inventory, the host's facts and the rendered files it returns a [`Decision`] listing
//! the [`crate::plan::Action`]s that would bring the host to the goal, or why none are needed.
//!
//! One file per step, named after its id; [`lookup`] is the only registry.

mod apply_cni;
mod configure_containerd;
pub mod endpoint_name;
mod etcd_restore;
mod etcd_snapshot;
mod install_packages;
mod join;
mod kubeadm_init;
mod kubelet_certificates;
mod local_api_proxy;
mod preflight;
mod prepare_host;
mod remove_node;
mod renew_certificates;
mod reset_node;
mod restart_static_pods;
mod shell;
mod upgrade_node;
mod wait_ready;

use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, FileChange, FileWrite, PlanCx, file_write, write_file_action};
use crate::render::FileKind;
use crate::script::Script;

/// Where the Kubernetes package repository's signing key is kept on a host.
pub const APT_KEYRING: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";

/// One kind of change a playbook can order. Implementations are pure.
pub trait Step: Sync {
    /// The id used in playbooks, the journal and JSON (`prepare-host`).
    fn id(&self) -> &'static str;
    /// A short title for the plan ("Prepare hosts").
    fn title(&self) -> &'static str;
    /// What this step would do on `host`.
    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision;
    /// An unfinished earlier run's word that this step finished on a host is enough to skip
    /// it there: its effect is not something the facts can see (a renewal that was forced, a
    /// snapshot, a restore's stage, your own commands). Steps whose decision reads the facts
    /// (the default) are planned from them alone, so a host changed since is done again.
    fn resumes_from_journal(&self) -> bool {
        false
    }
}

static STEPS: &[&dyn Step] = &[
    &preflight::Preflight,
    &prepare_host::PrepareHost,
    &install_packages::InstallPackages,
    &configure_containerd::ConfigureContainerd,
    &kubeadm_init::KubeadmInit,
    &join::JoinControlPlane,
    &join::JoinWorker,
    &local_api_proxy::LocalApiProxy,
    &apply_cni::ApplyCni,
    &wait_ready::WaitReady,
    &renew_certificates::RenewCertificates,
    &restart_static_pods::RestartStaticPods,
    &kubelet_certificates::KubeletBootstrapToken,
    &kubelet_certificates::RecoverKubeletCertificates,
    &etcd_snapshot::EtcdSnapshot,
    &etcd_restore::EtcdRestoreStage,
    &etcd_restore::EtcdRestoreStop,
    &etcd_restore::EtcdRestoreData,
    &etcd_restore::EtcdRestoreStart,
    &etcd_restore::RestartKubelet,
    &upgrade_node::UpgradeControlPlane,
    &upgrade_node::UpgradeWorker,
    &remove_node::RemoveNode,
    &reset_node::ResetNode,
    &shell::Shell,
];

pub fn lookup(id: &str) -> Option<&'static dyn Step> {
    STEPS.iter().copied().find(|s| s.id() == id)
}

pub fn ids() -> Vec<&'static str> {
    STEPS.iter().map(|s| s.id()).collect()
}

/// Write actions for the host's rendered files of the given kinds that differ from the host.
fn file_actions(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts, wanted: impl Fn(&FileKind) -> bool) -> Vec<Action> {
    cx.files_of(host).iter().filter(|f| wanted(&f.kind)).filter_map(|f| write_file_action(f, facts)).collect()
}

/// Add when everything the actions write or install is new, Change otherwise.
fn add_or_change(actions: Vec<Action>) -> Decision {
    let all_new = actions.iter().all(|a| match a {
        Action::WriteFile(f) => f.change == FileChange::New,
        Action::Packages { changes, .. } => changes.iter().all(|c| c.from.is_none()),
        _ => true,
    });
    if all_new { Decision::Add { actions } } else { Decision::Change { actions } }
}

/// `commands` reading the host's transient file of `kind` (a kubeadm configuration holding
/// this run's secrets), written, used and removed by one trapped script; None when no such
/// file is rendered for the host (Err names it). The file is always written: it never stays on
/// the host between runs.
fn run_with_transient_file(
    cx: &PlanCx<'_>,
    host: &Host,
    facts: &HostFacts,
    kind: FileKind,
    description: String,
    commands: Script,
) -> Result<Action, String> {
    let rendered = cx
        .files_of(host)
        .iter()
        .find(|f| f.kind == kind)
        .ok_or_else(|| format!("no {kind:?} file is rendered for {}: a template is missing", host.name))?;
    let file = file_write(rendered, facts).unwrap_or_else(|| FileWrite {
        path: rendered.path.clone(),
        mode: format!("{:04o}", rendered.mode),
        owner: rendered.owner.clone(),
        change: FileChange::Unchanged,
        diff: None,
        sensitive: rendered.sensitive,
        transient: rendered.transient,
        content: rendered.content.clone(),
    });
    Ok(Action::RunWithFile { file, description, commands })
}

/// The kubelet version `host` registered with, as the API server last said; the inventory's
/// release where the cluster was not read (its API down, or not yet a node).
fn kubelet_version(cx: &PlanCx<'_>, host: &Host) -> String {
    cx.facts
        .cluster
        .as_ref()
        .and_then(|c| c.nodes.get(&host.name))
        .map_or_else(|| format!("v{}", cx.inventory.cluster.kubernetes_version), |n| n.kubelet_version.clone())
}

/// Wait until this control plane's own API server answers `/readyz` (through the admin
/// kubeconfig's credentials, at the address nodes reach it on).
fn apiserver_ready(cx: &PlanCx<'_>, host: &Host) -> Action {
    let authority = endpoint_name::api_authority(host);
    Action::Probe {
        description: format!("the API server on {authority} is ready"),
        commands: crate::kube::readyz_probe(crate::kube::ADMIN_KUBECONFIG, &format!("https://{authority}"), None),
        timeout_s: cx.ready_timeout_s(),
    }
}

/// On a node that joined: start its kubelet if it is not running (stopped by hand, or failed
/// after a reboot); a node without it goes NotReady and its pods are evicted.
fn start_stopped_kubelet(facts: &HostFacts) -> Option<Action> {
    (facts.joined && !facts.active_services.contains("kubelet")).then(|| Action::Run {
        description: "start the kubelet: the node joined but its kubelet is not running".into(),
        commands: Script::new().cmd(["systemctl", "enable", "--now", "kubelet"]),
    })
}
