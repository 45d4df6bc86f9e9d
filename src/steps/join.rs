//! `join-control-plane` and `join-worker`: `kubeadm join` with a pinned CA hash.

use super::{Step, endpoint_name, run_with_transient_file, start_stopped_kubelet};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{FileKind, KUBEADM_JOIN_CONFIG};
use crate::script::Script;

pub struct JoinControlPlane;
pub struct JoinWorker;

/// `kubeadm join` from its transient configuration (the run's token and certificate key).
fn join(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts, what: &str) -> Result<Action, String> {
    run_with_transient_file(
        cx,
        host,
        facts,
        FileKind::KubeadmJoin,
        format!("run kubeadm join {what} through {}", cx.inventory.cluster.control_plane_endpoint),
        Script::new().remove_on_exit(KUBEADM_JOIN_CONFIG).cmd(["kubeadm", "join", "--config", KUBEADM_JOIN_CONFIG]),
    )
}

impl Step for JoinControlPlane {
    fn id(&self) -> &'static str {
        "join-control-plane"
    }

    fn title(&self) -> &'static str {
        "Join the other control planes"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if !host.is_control_plane() {
            return Decision::Blocked {
                problems: vec!["join-control-plane runs on control planes only: this host is a worker".into()],
            };
        }
        if host.name == cx.inventory.first_control_plane().name {
            return Decision::Skip { reason: "the first control plane bootstraps the cluster (kubeadm-init)".into() };
        }
        // Once it serves, a control plane resolves the endpoint's name to itself.
        let map_to_self = match endpoint_name::map_to(cx.inventory, host, facts, &endpoint_name::api_address(host)) {
            Ok(m) => m,
            Err(problem) => return Decision::Blocked { problems: vec![problem] },
        };
        if facts.joined {
            let actions: Vec<Action> = start_stopped_kubelet(facts).into_iter().chain(map_to_self).collect();
            return match actions.is_empty() {
                true => Decision::Skip { reason: "already a node of the cluster".into() },
                false => Decision::Change { actions },
            };
        }
        let mut actions =
            match join(cx, host, facts, "as a control plane (certificates downloaded with the certificate key)") {
                Ok(join) => vec![join],
                Err(problem) => return Decision::Blocked { problems: vec![problem] },
            };
        // The next control plane joins only once this one serves: etcd keeps quorum only if
        // members are added one at a time, each healthy before the next.
        actions.push(Action::Wait {
            description: format!("node {} is Ready and its etcd member healthy", host.name),
            nodes: vec![host.name.clone()],
            version: format!("v{}", cx.inventory.cluster.kubernetes_version),
            etcd: true,
            timeout_s: cx.ready_timeout_s(),
        });
        actions.extend(map_to_self);
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
        if let Some(start) = start_stopped_kubelet(facts) {
            return Decision::Change { actions: vec![start] };
        }
        if facts.joined {
            return Decision::Skip { reason: "already a node of the cluster".into() };
        }
        match join(cx, host, facts, "as a worker") {
            Ok(join) => Decision::Add { actions: vec![join] },
            Err(problem) => Decision::Blocked { problems: vec![problem] },
        }
    }
}
