//! `wait-ready`: every node of the inventory Ready at the expected version, and the cluster's
//! kubeadm-config what the inventory says.

use super::Step;
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};

pub struct WaitReady;

impl Step for WaitReady {
    fn id(&self) -> &'static str {
        "wait-ready"
    }

    fn title(&self) -> &'static str {
        "Wait for every node to be Ready and check the cluster's configuration"
    }

    fn plan(&self, cx: &PlanCx<'_>, _host: &Host, _facts: &HostFacts) -> Decision {
        let inv = cx.inventory;
        Decision::Verify {
            actions: vec![
                Action::Wait {
                    description: format!(
                        "all {} nodes are Ready at v{}",
                        inv.hosts.len(),
                        inv.cluster.kubernetes_version
                    ),
                    nodes: inv.hosts.iter().map(|h| h.name.clone()).collect(),
                    version: format!("v{}", inv.cluster.kubernetes_version),
                    etcd: false,
                    timeout_s: cx.ready_timeout_s(),
                },
                Action::VerifyKubeadmConfig { expected: crate::kube::expected_kubeadm_config(inv) },
            ],
        }
    }
}
