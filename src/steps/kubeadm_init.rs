//! `kubeadm-init`: bootstrap the first control plane and fetch its admin kubeconfig.

use super::{Step, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{FileKind, KUBEADM_INIT_CONFIG};
use crate::script::Script;

pub struct KubeadmInit;

impl Step for KubeadmInit {
    fn id(&self) -> &'static str {
        "kubeadm-init"
    }

    fn title(&self) -> &'static str {
        "Initialize the first control plane"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if facts.joined {
            return Decision::Skip { reason: "control plane already initialized".into() };
        }
        let mut actions = file_actions(cx, host, facts, |k| *k == FileKind::KubeadmInit);
        actions.push(Action::Run {
            description: format!(
                "run kubeadm init for Kubernetes {} behind {} and upload the control-plane certificates (encrypted, for 2 hours) for the other control planes",
                cx.inventory.cluster.kubernetes_version, cx.inventory.cluster.control_plane_endpoint
            ),
            commands: Script::new().cmd(["kubeadm", "init", "--config", KUBEADM_INIT_CONFIG, "--upload-certs"]),
        });
        actions.push(Action::Fetch {
            remote: "/etc/kubernetes/admin.conf".into(),
            local: format!("{}/admin.conf", cx.state_dir),
            mode: "0600".into(),
        });
        Decision::Add { actions }
    }
}
