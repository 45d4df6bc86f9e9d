//! `apply-cni`: apply the flannel manifest from the first control plane.

use super::{Step, add_or_change, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{FLANNEL_MANIFEST, FileKind};
use crate::script::Script;

pub struct ApplyCni;

impl Step for ApplyCni {
    fn id(&self) -> &'static str {
        "apply-cni"
    }

    fn title(&self) -> &'static str {
        "Install the pod network (flannel)"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let mut actions = file_actions(cx, host, facts, |k| *k == FileKind::FlannelManifest);
        if actions.is_empty() {
            return Decision::Skip { reason: "flannel manifest unchanged".into() };
        }
        let flannel = &cx.inventory.cluster.flannel;
        actions.push(Action::Run {
            description: format!(
                "apply flannel {} ({} backend, pod network {})",
                flannel.version,
                flannel.backend.net_conf_type(),
                cx.inventory.cluster.network.pod_subnet
            ),
            commands: Script::new().cmd([
                "kubectl",
                "--kubeconfig",
                "/etc/kubernetes/admin.conf",
                "apply",
                "-f",
                FLANNEL_MANIFEST,
            ]),
        });
        add_or_change(actions)
    }
}
