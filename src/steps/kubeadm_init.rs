//! `kubeadm-init`: bootstrap the first control plane, fetch its admin kubeconfig, and make
//! the credentials the joining nodes of this run use.
//!
//! On a cluster that already exists, nodes still waiting to join need a fresh bootstrap token
//! and the control-plane certificates uploaded again under this run's certificate key (the
//! upload expires after two hours): both come from one transient kubeadm configuration,
//! never from the command line.

use super::{Step, file_actions, run_with_transient_file, start_stopped_kubelet};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{FileKind, KUBEADM_INIT_CONFIG, KUBEADM_JOIN_CREDENTIALS};
use crate::script::Script;

/// Where kubeadm keeps the cluster CA certificate on a control plane.
pub const CLUSTER_CA: &str = "/etc/kubernetes/pki/ca.crt";

pub struct KubeadmInit;

impl Step for KubeadmInit {
    fn id(&self) -> &'static str {
        "kubeadm-init"
    }

    fn title(&self) -> &'static str {
        "Initialize the first control plane"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let first = cx.inventory.first_control_plane();
        if host.name != first.name {
            return Decision::Blocked {
                problems: vec![format!("kubeadm-init runs on the first control plane ({}) only", first.name)],
            };
        }
        let joined = |h: &Host| cx.facts.host(&h.name).is_some_and(|f| f.joined);
        if !facts.joined {
            let members: Vec<&str> = cx
                .inventory
                .hosts
                .iter()
                .filter(|h| h.name != host.name && joined(h))
                .map(|h| h.name.as_str())
                .collect();
            if !members.is_empty() {
                return Decision::Blocked {
                    problems: vec![format!(
                        "is the first control plane but not part of the cluster, while {} already are: kubeadm init here would start a second cluster; list a control plane of the running cluster first in the inventory",
                        members.join(", ")
                    )],
                };
            }
            // The bastion's own CAs (`certs init-ca`), if it made them: kubeadm uses the CAs it
            // finds in place and makes the rest.
            let mut actions = file_actions(cx, host, facts, |k| *k == FileKind::ClusterCa);
            let init = run_with_transient_file(
                cx,
                host,
                facts,
                FileKind::KubeadmInit,
                format!(
                    "run kubeadm init for Kubernetes {} behind {} and upload the control-plane certificates (encrypted, for 2 hours) for the other control planes",
                    cx.inventory.cluster.kubernetes_version, cx.inventory.cluster.control_plane_endpoint
                ),
                Script::new().remove_on_exit(KUBEADM_INIT_CONFIG).cmd([
                    "kubeadm",
                    "init",
                    "--config",
                    KUBEADM_INIT_CONFIG,
                    "--upload-certs",
                ]),
            );
            match init {
                Ok(action) => actions.push(action),
                Err(problem) => return Decision::Blocked { problems: vec![problem] },
            }
            actions.push(fetch_admin_kubeconfig(cx));
            actions.push(Action::PinCa { remote: CLUSTER_CA.into() });
            return Decision::Add { actions };
        }
        // The cluster exists: what kubeadm keeps of its configuration must be what the
        // inventory says, or every later step works against a cluster the inventory does not
        // describe.
        if let Some(config) = cx.facts.cluster.as_ref().and_then(|c| c.kubeadm_config.as_deref()) {
            match crate::kube::kubeadm_config_drift(&crate::kube::expected_kubeadm_config(cx.inventory), config) {
                Ok(drift) if drift.is_empty() => {}
                Ok(drift) => {
                    return Decision::Blocked {
                        problems: drift
                            .into_iter()
                            .map(|d| format!("kubeadm-config: {d} (kubeadm cannot change this after init: set the inventory to what the cluster has; a newer kubernetesVersion is an upgrade, which `kubewright apply` and `kubewright upgrade` run)"))
                            .collect(),
                    };
                }
                Err(why) => return Decision::Blocked { problems: vec![why] },
            }
        }
        let waiting: Vec<&str> = cx.inventory.hosts.iter().filter(|h| !joined(h)).map(|h| h.name.as_str()).collect();
        // Its API server is a static pod: nothing serves (nor can hand out join credentials)
        // until the kubelet runs.
        let mut actions: Vec<Action> = start_stopped_kubelet(facts).into_iter().collect();
        // A bastion that never ran the init (another admin's, or its state lost) gets its copy.
        if !cx.facts.bastion_kubeconfig && !cx.facts.assumed_fresh && facts.admin_conf {
            actions.push(fetch_admin_kubeconfig(cx));
        }
        if waiting.is_empty() {
            return match actions.is_empty() {
                false => Decision::Change { actions },
                true => Decision::Skip { reason: "control plane already initialized".into() },
            };
        }
        let credentials = run_with_transient_file(
            cx,
            host,
            facts,
            FileKind::KubeadmJoinCredentials,
            format!(
                "create a bootstrap token and upload the control-plane certificates again (both for 2 hours) for {} to join",
                match waiting.len() {
                    n if n > 5 => format!("{} and {} more", waiting[..5].join(", "), n - 5),
                    _ => waiting.join(", "),
                }
            ),
            Script::new()
                .remove_on_exit(KUBEADM_JOIN_CREDENTIALS)
                // Both print the secret they just stored: it must not reach the output.
                .redirect(["kubeadm", "token", "create", "--config", KUBEADM_JOIN_CREDENTIALS], "/dev/null")
                .redirect(
                    [
                        "kubeadm",
                        "init",
                        "phase",
                        "upload-certs",
                        "--upload-certs",
                        "--config",
                        KUBEADM_JOIN_CREDENTIALS,
                    ],
                    "/dev/null",
                ),
        );
        match credentials {
            Ok(action) => actions.push(action),
            Err(problem) => return Decision::Blocked { problems: vec![problem] },
        }
        actions.push(Action::PinCa { remote: CLUSTER_CA.into() });
        Decision::Change { actions }
    }
}

/// The admin kubeconfig, to the bastion's state directory (0600).
fn fetch_admin_kubeconfig(cx: &PlanCx<'_>) -> Action {
    Action::Fetch {
        remote: "/etc/kubernetes/admin.conf".into(),
        local: format!("{}/admin.conf", cx.state_dir),
        mode: "0600".into(),
        kubeconfig_server: super::endpoint_name::bastion_kubeconfig_server(cx.inventory),
        keep: None,
    }
}
