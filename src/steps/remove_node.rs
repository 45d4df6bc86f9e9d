//! `remove-node`: take one node out of the cluster in the safe order (`kubewright remove-node`):
//! drain it (from the first control plane), remove its etcd member if it is a control plane,
//! `kubeadm reset` on it, delete its Node object. A node that cannot be reached (dead, or its
//! sshd gone) is still removed from the cluster: what needs the node itself is skipped, and the
//! plan says so. A control plane whose removal would leave etcd without a quorum is refused.

use super::Step;
use crate::facts::{EtcdHealth, HostFacts};
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;

pub struct RemoveNode;

/// `$1`: the member's name (the node's). Removes it from etcd through the local member; a name
/// that is no member (already removed) is not an error. etcd refuses to remove a voting member
/// while its leader has not been connected to a quorum of the others for 5 s ("etcdserver:
/// unhealthy cluster": mayRemoveMember in etcdserver/server.go, HealthInterval), as right after
/// a member (re)started: that is retried every 5 s for a minute, as kubeadm retries its own
/// member removal.
const REMOVE_MEMBER: &str = r#"set -eu
name=$1
etcd() { etcdctl_as server "$@"; }
members=$(etcd member list)
id=$(awk -F', ' -v n="$name" '$3 == n { print $1 }' <<MEMBERS
$members
MEMBERS
)
if [ -z "$id" ]; then echo "$name is not an etcd member (already removed)"; exit 0; fi
tries=0
until out=$(etcd member remove "$id" 2>&1); do
  case $out in
    *"member not found"*) echo "$name is not an etcd member (already removed)"; exit 0 ;;
    *"unhealthy cluster"*) ;;
    *) printf '%s\n' "$out" >&2; exit 1 ;;
  esac
  tries=$((tries + 1))
  if [ "$tries" -ge 12 ]; then
    printf '%s\n' "$out" >&2
    echo "etcd kept refusing to remove $name's member for a minute: its other members are not all connected (etcdctl endpoint health --cluster on this control plane)" >&2
    exit 1
  fi
  sleep 5
done
printf '%s\n' "$out""#;

/// Why removing `host`'s etcd member would leave etcd without a quorum, if it would: the
/// members left (every other control plane) need a majority that answered healthy with the
/// facts (one that could not be reached or was not asked counts as down).
fn quorum_lost_without(cx: &PlanCx<'_>, host: &Host) -> Option<String> {
    let others: Vec<&Host> = cx.inventory.control_planes().filter(|h| h.name != host.name).collect();
    let health = |h: &Host| cx.facts.hosts.get(&h.name).and_then(|f| f.etcd_health.clone());
    let healthy = others.iter().filter(|h| health(h) == Some(EtcdHealth::Healthy)).count();
    let quorum = others.len() / 2 + 1;
    if others.is_empty() || healthy >= quorum {
        return None;
    }
    let down: Vec<String> = others
        .iter()
        .filter(|h| health(h) != Some(EtcdHealth::Healthy))
        .map(|h| match (health(h), cx.facts.unreachable.get(&h.name)) {
            (Some(EtcdHealth::Unhealthy { why }), _) => format!("{} ({why})", h.name),
            (_, Some(why)) => format!("{} (cannot be reached: {why})", h.name),
            _ => format!("{} (its etcd health is unknown: no etcd manifest or no crictl)", h.name),
        })
        .collect();
    Some(format!(
        "removing {}'s etcd member would leave {} member(s) of which only {healthy} answer healthy, fewer than the {quorum} etcd needs for a quorum: {} down; bring them back first (`crictl ps -a --label io.kubernetes.container.name=etcd` and its logs there)",
        host.name,
        others.len(),
        down.join(", ")
    ))
}

impl Step for RemoveNode {
    fn id(&self) -> &'static str {
        "remove-node"
    }

    fn title(&self) -> &'static str {
        "Remove a node from the cluster"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let first = cx.inventory.first_control_plane();
        if std::ptr::eq(host, first) {
            let fix = match cx.inventory.control_planes().find(|h| !std::ptr::eq(*h, first)) {
                Some(other) => format!(
                    "list another control plane ({}) first in the inventory, then remove {}",
                    other.name, host.name
                ),
                None => "it is the only control plane: kubeadm reset on every node tears the cluster down".into(),
            };
            return Decision::Blocked {
                problems: vec![format!(
                    "{} is the first control plane, from which kubewright runs the cluster's commands: {fix}",
                    host.name
                )],
            };
        }
        if host.is_control_plane()
            && let Some(problem) = quorum_lost_without(cx, host)
        {
            return Decision::Blocked { problems: vec![problem] };
        }
        let unreachable = cx.facts.unreachable.get(&host.name);
        let in_cluster = cx.facts.cluster.as_ref().is_some_and(|c| c.nodes.contains_key(&host.name));
        if !in_cluster && !facts.joined && unreachable.is_none() {
            return Decision::Skip { reason: "not a node of the cluster and nothing of kubeadm's on it".into() };
        }
        let via = |action: Action| Action::Via { on: first.name.clone(), action: Box::new(action) };
        let mut actions = Vec::new();
        match unreachable {
            Some(why) => actions.push(Action::Note {
                text: format!(
                    "{} cannot be reached ({why}): its pods are not drained (their controllers recreate them elsewhere once the node is deleted) and kubeadm reset is skipped: run `kubeadm reset -f` there if it comes back",
                    host.name
                ),
            }),
            None if in_cluster => {
                let up = &cx.inventory.cluster.upgrade;
                actions.push(via(Action::Drain {
                    node: host.name.clone(),
                    grace_period_s: up.drain_grace_period.seconds,
                    timeout_s: up.drain_timeout.seconds,
                    skip_when_blocked: false,
                    // The node leaves the cluster: nothing will lift this cordon.
                    mark: false,
                }));
            }
            None => {}
        }
        if host.is_control_plane() {
            actions.push(via(Action::Run {
                description: format!(
                    "remove {}'s etcd member first, so that etcd counts its quorum without it",
                    host.name
                ),
                commands: Script::new().cmd([
                    "sh",
                    "-c",
                    &format!("{}{REMOVE_MEMBER}", crate::etcd::ETCD_CLIENT),
                    "sh",
                    &host.name,
                ]),
            }));
        }
        if unreachable.is_none() && facts.joined {
            actions.push(Action::Run {
                description: "undo kubeadm's init or join here (kubeadm reset) and remove the pod network's configuration"
                    .into(),
                commands: Script::new().cmd(["kubeadm", "reset", "--force"]).cmd(["rm", "-rf", "/etc/cni/net.d"]),
            });
        }
        if in_cluster {
            actions.push(via(Action::Run {
                description: format!("delete the Node object {}", host.name),
                commands: Script::new().cmd([
                    "kubectl",
                    "--kubeconfig",
                    crate::kube::ADMIN_KUBECONFIG,
                    "delete",
                    "node",
                    &host.name,
                    "--ignore-not-found",
                ]),
            }));
        }
        Decision::Change { actions }
    }
}
