//! `join-control-plane` and `join-worker`: `kubeadm join` with a pinned CA hash.

use super::{Step, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{FileKind, KUBEADM_JOIN_CONFIG};
use crate::script::Script;

pub struct JoinControlPlane;
pub struct JoinWorker;

fn join(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts, what: &str) -> Vec<Action> {
    let mut actions = file_actions(cx, host, facts, |k| *k == FileKind::KubeadmJoin);
    actions.push(Action::Run {
        description: format!("run kubeadm join {what} through {}", cx.inventory.cluster.control_plane_endpoint),
        commands: Script::new().cmd(["kubeadm", "join", "--config", KUBEADM_JOIN_CONFIG]),
    });
    actions
}

impl Step for JoinControlPlane {
    fn id(&self) -> &'static str {
        "join-control-plane"
    }

    fn title(&self) -> &'static str {
        "Join the other control planes"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if facts.joined {
            return Decision::Skip { reason: "already a node of the cluster".into() };
        }
        let mut actions =
            join(cx, host, facts, "as a control plane (certificates downloaded with the certificate key)");
        actions.push(Action::Wait {
            description: format!("node {} is Ready and its etcd member healthy", host.name),
            timeout_s: 600,
        });
        Decision::Add { actions }
    }
}

impl Step for JoinWorker {
    fn id(&self) -> &'static str {
        "join-worker"
    }

    fn title(&self) -> &'static str {
        "Join the workers"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if host.is_control_plane() {
            return Decision::Skip {
                reason: "a control plane that also runs workloads: it joins as a control plane".into(),
            };
        }
        if facts.joined {
            return Decision::Skip { reason: "already a node of the cluster".into() };
        }
        Decision::Add { actions: join(cx, host, facts, "as a worker") }
    }
}
