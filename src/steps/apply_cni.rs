//! `apply-cni`: apply the flannel manifest from the first control plane.
//!
//! The manifest on the host is not proof it was applied (the apply can fail, or the run stop,
//! after the file was written): a record of the applied manifest's hash, written only after
//! `kubectl apply` succeeded, is (see [`crate::facts::HostFacts::applied`]).

use super::{Step, add_or_change, file_actions};
use crate::facts::APPLIED_DIR;
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{FLANNEL_MANIFEST, FileKind};
use crate::script::Script;

pub struct ApplyCni;

/// The record of the flannel manifest last applied.
const FLANNEL_RECORD: &str = "flannel";

impl Step for ApplyCni {
    fn id(&self) -> &'static str {
        "apply-cni"
    }

    fn title(&self) -> &'static str {
        "Install the pod network (flannel)"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let mut actions = file_actions(cx, host, facts, |k| *k == FileKind::FlannelManifest);
        let Some(manifest) = cx.files_of(host).iter().find(|f| f.kind == FileKind::FlannelManifest) else {
            return Decision::Blocked { problems: vec!["no flannel manifest is rendered for this host".into()] };
        };
        let hash = crate::pki::sha256_hex(manifest.content.as_bytes());
        if actions.is_empty() && facts.applied.get(FLANNEL_RECORD) == Some(&hash) {
            return Decision::Skip { reason: "flannel manifest unchanged and applied".into() };
        }
        let flannel = &cx.inventory.cluster.flannel;
        actions.push(Action::Run {
            description: format!(
                "apply flannel {} ({} backend, pod network {})",
                flannel.version,
                flannel.backend.net_conf_type(),
                cx.inventory.cluster.network.pod_subnet
            ),
            commands: Script::new()
                .cmd(["kubectl", "--kubeconfig", "/etc/kubernetes/admin.conf", "apply", "-f", FLANNEL_MANIFEST])
                .cmd(["install", "-d", "-m", "0755", APPLIED_DIR])
                .redirect(["echo", hash.as_str()], format!("{APPLIED_DIR}/{FLANNEL_RECORD}")),
        });
        add_or_change(actions)
    }
}
