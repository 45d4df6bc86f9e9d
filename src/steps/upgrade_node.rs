//! `upgrade-control-plane` and `upgrade-worker`: one node to the inventory's Kubernetes
//! version, one minor at a time (`kubewright upgrade` plans one inventory per hop, so each
//! hop's steps see that hop's version and repository).
//!
//! Per node, in kubeadm's documented order (kubeadm-behaviour.md §5): the repository of the
//! hop's minor, the kubeadm package, `kubeadm upgrade apply` on the first control plane
//! (`upgrade node` elsewhere), drain, containerd's configuration (the sandbox image follows the
//! release), kubelet and kubectl, restart, wait Ready at the new
//! version (control planes: their etcd member healthy, then their API server ready), uncordon.
//! Every command is safe to run again, so a node half done by an interrupted run is finished by
//! the next. A worker's drain, wait and uncordon run on the first control plane, where the admin
//! kubeconfig is, and so does a control plane's uncordon (also when that control plane is lost).
//! If anything fails the node is uncordoned (unless `--keep-cordoned`) and the run stops; a drain
//! blocked by disruption budgets leaves the node out with `--skip-blocked`. A node an admin had
//! cordoned before the run is upgraded and left cordoned: kubewright marks the cordons it makes
//! (an annotation), so a resumed run still lifts its own.

use super::Step;
use super::install_packages::{companion_changes, install_held, repository_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;
use crate::version::Version;

pub struct UpgradeControlPlane;
pub struct UpgradeWorker;

/// Why the node needs nothing at this hop, or None when it does.
fn already_there(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Option<String> {
    let target = cx.inventory.cluster.kubernetes_version;
    let node = cx.facts.cluster.as_ref().and_then(|c| c.nodes.get(&host.name))?;
    let kubelet = node.kubelet()?;
    let packages_there =
        super::install_packages::KUBE_PACKAGES.iter().all(|p| facts.packages.get(*p).is_some_and(|v| *v >= target));
    (kubelet >= target && packages_there).then(|| format!("kubelet and packages at {kubelet} already"))
}

/// The node's own part: repository, kubeadm, kubeadm's upgrade, then the kubelet.
fn upgrade_kubeadm(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts, kubeadm_upgrade: Action) -> Vec<Action> {
    let target = cx.inventory.cluster.kubernetes_version;
    let mut actions = repository_actions(cx, host, facts);
    let mut kubeadm = install_held(facts, &["kubeadm"], target);
    if let Action::Packages { changes, .. } = &mut kubeadm {
        changes.extend(companion_changes(facts, target));
    }
    actions.push(kubeadm);
    actions.push(kubeadm_upgrade);
    actions
}

/// The node drained: containerd's configuration at the new release (its sandbox image follows
/// kubeadm's pause version), then the kubelet and kubectl.
fn upgrade_kubelet(cx: &PlanCx<'_>, host: &Host, target: Version, facts: &HostFacts) -> Vec<Action> {
    let mut actions = super::file_actions(cx, host, facts, |k| *k == crate::render::FileKind::ContainerdConfig);
    if !actions.is_empty() {
        actions.push(Action::Run {
            description: format!("restart containerd with the sandbox image of {target}"),
            commands: Script::new().cmd(["systemctl", "restart", "containerd"]),
        });
    }
    actions.push(install_held(facts, &["kubelet", "kubectl"], target));
    actions.push(Action::Run {
        description: format!("restart the kubelet at {target}"),
        commands: Script::new().cmd(["systemctl", "daemon-reload"]).cmd(["systemctl", "restart", "kubelet"]),
    });
    actions
}

/// How the node was before this run: cordoned by someone (an admin, for maintenance of their
/// own) stays cordoned after it; a cordon left by an earlier run of kubewright's (its mark) is
/// lifted like the one this run makes.
fn cordoned_by_admin(cx: &PlanCx<'_>, host: &Host) -> bool {
    cx.facts
        .cluster
        .as_ref()
        .and_then(|c| c.nodes.get(&host.name))
        .is_some_and(|n| n.unschedulable && !n.cordoned_by_kubewright)
}

fn drain(cx: &PlanCx<'_>, host: &Host) -> Action {
    let up = &cx.inventory.cluster.upgrade;
    Action::Drain {
        node: host.name.clone(),
        grace_period_s: up.drain_grace_period.seconds,
        timeout_s: up.drain_timeout.seconds,
        skip_when_blocked: up.skip_blocked,
        mark: !cordoned_by_admin(cx, host),
    }
}

/// The uncordon after the node's upgrade, and the one that puts it back in service if the
/// upgrade fails (none with `--keep-cordoned`); neither for a node an admin had cordoned.
/// `via` says where kubectl runs (the first control plane: it answers for a node that is lost).
fn uncordon(cx: &PlanCx<'_>, host: &Host, via: impl Fn(Action) -> Action) -> Vec<Action> {
    if cordoned_by_admin(cx, host) {
        return vec![Action::Note {
            text: format!("{} was cordoned before this run (not by kubewright): it stays cordoned", host.name),
        }];
    }
    let mut actions = vec![via(Action::Run {
        description: format!("uncordon {}", host.name),
        commands: crate::kube::uncordon_command(&host.name),
    })];
    if !cx.inventory.cluster.upgrade.keep_cordoned {
        actions.push(via(Action::Rollback {
            description: format!("uncordon {} (--keep-cordoned leaves it cordoned)", host.name),
            commands: crate::kube::uncordon_command(&host.name),
        }));
    }
    actions
}

/// `action` carried out from the first control plane, unless `host` is that one.
fn from_first_control_plane(cx: &PlanCx<'_>, host: &Host) -> impl Fn(Action) -> Action {
    let first = cx.inventory.first_control_plane().name.clone();
    let own = first == host.name;
    move |action| if own { action } else { Action::Via { on: first.clone(), action: Box::new(action) } }
}

impl Step for UpgradeControlPlane {
    fn id(&self) -> &'static str {
        "upgrade-control-plane"
    }

    fn title(&self) -> &'static str {
        "Upgrade the control planes"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if !host.is_control_plane() {
            return Decision::Blocked { problems: vec!["not a control plane: upgrade-worker upgrades it".into()] };
        }
        if let Some(reason) = already_there(cx, host, facts) {
            return Decision::Skip { reason };
        }
        let target = cx.inventory.cluster.kubernetes_version;
        let first = std::ptr::eq(host, cx.inventory.first_control_plane());
        let mut actions = Vec::new();
        let kubeadm_upgrade = if first {
            Action::Run {
                description: format!(
                    "upgrade the cluster's control plane to {target} (kubeadm upgrade apply, which also renews this node's certificates)"
                ),
                commands: Script::new().cmd(["kubeadm", "upgrade", "plan", &format!("v{target}")]).cmd([
                    "kubeadm",
                    "upgrade",
                    "apply",
                    &format!("v{target}"),
                    "--yes",
                ]),
            }
        } else {
            Action::Run {
                description: format!(
                    "upgrade this control plane's static pods to {target} (kubeadm upgrade node, which also renews its certificates)"
                ),
                commands: Script::new().cmd(["kubeadm", "upgrade", "node"]),
            }
        };
        actions.extend(upgrade_kubeadm(cx, host, facts, kubeadm_upgrade));
        actions.push(drain(cx, host));
        actions.extend(upgrade_kubelet(cx, host, target, facts));
        actions.push(Action::Wait {
            description: format!("node {} is Ready at {target} and its etcd member healthy", host.name),
            nodes: vec![host.name.clone()],
            version: format!("v{target}"),
            etcd: true,
            timeout_s: cx.ready_timeout_s(),
        });
        // The uncordon goes right after the wait; its rollback last, after everything it covers.
        let (rollback, uncordon): (Vec<Action>, Vec<Action>) =
            uncordon(cx, host, from_first_control_plane(cx, host)).into_iter().partition(is_rollback);
        actions.extend(uncordon);
        actions.push(super::apiserver_ready(cx, host));
        actions.extend(rollback);
        Decision::Change { actions }
    }
}

impl Step for UpgradeWorker {
    fn id(&self) -> &'static str {
        "upgrade-worker"
    }

    fn title(&self) -> &'static str {
        "Upgrade the workers"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if host.is_control_plane() {
            return Decision::Skip { reason: "a control plane: upgrade-control-plane upgraded it".into() };
        }
        if let Some(reason) = already_there(cx, host, facts) {
            return Decision::Skip { reason };
        }
        let target = cx.inventory.cluster.kubernetes_version;
        let via = from_first_control_plane(cx, host);
        let mut actions = vec![via(drain(cx, host))];
        actions.extend(upgrade_kubeadm(
            cx,
            host,
            facts,
            Action::Run {
                description: format!("upgrade this node's kubelet configuration to {target} (kubeadm upgrade node)"),
                commands: Script::new().cmd(["kubeadm", "upgrade", "node"]),
            },
        ));
        actions.extend(upgrade_kubelet(cx, host, target, facts));
        actions.push(via(Action::Wait {
            description: format!("node {} is Ready at {target}", host.name),
            nodes: vec![host.name.clone()],
            version: format!("v{target}"),
            etcd: false,
            timeout_s: cx.ready_timeout_s(),
        }));
        actions.extend(uncordon(cx, host, via));
        Decision::Change { actions }
    }
}

/// A rollback, carried out here or from another host.
fn is_rollback(action: &Action) -> bool {
    match action {
        Action::Rollback { .. } => true,
        Action::Via { action, .. } => is_rollback(action),
        _ => false,
    }
}
