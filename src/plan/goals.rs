//! The playbooks kubewright builds from a goal's inputs rather than reads from `playbooks/`:
//! each needs a value only the goal has (the snapshot, the node, the hop's release).

use crate::inventory::{MaxUnavailable, Role};
use crate::playbook::{HostSelector, Playbook, Rollout, SnapshotInput, StepSpec};
use crate::version::Version;

/// The restore's steps, each on every control plane before the next (the last one on every
/// node): the order Kubernetes' procedure needs.
pub fn restore_playbook(snapshot: &SnapshotInput) -> Playbook {
    let control_planes = || HostSelector::Role(Role::ControlPlane);
    let mut steps: Vec<StepSpec> =
        ["etcd-restore-stage", "etcd-restore-stop", "etcd-restore-data", "etcd-restore-start"]
            .into_iter()
            .map(|action| StepSpec {
                snapshot: Some(snapshot.clone()),
                ..StepSpec::builtin(action, action, control_planes(), Rollout::Parallel)
            })
            .collect();
    steps.push(StepSpec::builtin("restart-kubelet", "restart-kubelet", HostSelector::All, Rollout::Parallel));
    Playbook {
        name: "etcd-restore".into(),
        description: format!("restore etcd on every control plane from {}", snapshot.local),
        steps,
    }
}

/// One node out of the cluster.
pub fn remove_node_playbook(node: &str) -> Playbook {
    Playbook {
        name: "remove-node".into(),
        description: format!("remove {node} from the cluster"),
        steps: vec![StepSpec::builtin(
            "remove-node",
            "remove-node",
            HostSelector::Names(vec![node.to_string()]),
            Rollout::Serial,
        )],
    }
}

/// The steps of one upgrade hop, ids suffixed with the hop's release; the first hop starts
/// with the snapshot.
pub fn hop_playbook(hop: Version, first_hop: bool, max_unavailable: MaxUnavailable) -> Playbook {
    let step = |action: &str, hosts: HostSelector, rollout: Rollout| {
        StepSpec::builtin(format!("{action}@{hop}"), action, hosts, rollout)
    };
    let mut steps = Vec::new();
    if first_hop {
        steps.push(step("etcd-snapshot", HostSelector::FirstControlPlane, Rollout::Serial));
    }
    steps.push(step("upgrade-control-plane", HostSelector::Role(Role::ControlPlane), Rollout::Serial));
    steps.push(step("apply-cni", HostSelector::FirstControlPlane, Rollout::Serial));
    steps.push(step("upgrade-worker", HostSelector::Role(Role::Worker), Rollout::Batch(max_unavailable)));
    Playbook { name: super::upgrade::UPGRADE.into(), description: format!("upgrade to {hop}"), steps }
}
