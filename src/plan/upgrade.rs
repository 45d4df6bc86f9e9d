//! An upgrade's plan: the path minor by minor (from what each minor's repository offers, read
//! with the facts, or `--path`), everything that refuses it before anything changes, and one
//! set of steps per hop, each planned from the inventory at that hop's release.
//!
//! Every hop's steps are planned from the facts read before the first: each node's commands
//! are safe to repeat, so a later hop's plan for a node an earlier hop just moved is still
//! right, and a node half done by an interrupted run is finished by the next.

use super::{Plan, PlanError, PlanInput, UpgradePath, add_playbook, hop_playbook};
use crate::facts::{ClusterFacts, EtcdHealth};
use crate::goal::{Goal, UpgradeGoal};
use crate::inventory::Inventory;
use crate::upgrade::{Refusal, Target};
use crate::version::Version;

/// The name an upgrade's journal and lock holder carry.
pub const UPGRADE: &str = "upgrade";

/// Why an upgrade is due, from the facts: the cluster runs an older release than the inventory
/// names, or nodes lag behind the cluster's (an upgrade that did not finish). None: not due.
pub fn due(facts: &ClusterFacts, inv: &Inventory) -> Option<String> {
    let view = facts.cluster.as_ref()?;
    let running = view.kubeadm_config.as_deref().and_then(crate::kube::cluster_version)?;
    let wanted = inv.cluster.kubernetes_version;
    if running < wanted {
        return Some(format!("the cluster runs {running} and the inventory says {wanted}"));
    }
    // Only the inventory's nodes: others are not kubewright's to upgrade.
    let lagging: Vec<&str> = view
        .nodes
        .iter()
        .filter(|(name, _)| inv.host(name).is_some())
        .filter(|(_, n)| n.kubelet().is_some_and(|k| k < running))
        .map(|(name, _)| name.as_str())
        .collect();
    (running == wanted && !lagging.is_empty()).then(|| {
        format!("node(s) {} are behind the cluster's {running} (an upgrade did not finish)", lagging.join(", "))
    })
}

/// The minors whose package repository the facts must include for this goal (read on the
/// first control plane), or None when the plan does not need them.
pub fn releases_to_ask(inv: &Inventory, goal: &Goal, facts: &ClusterFacts) -> Option<Vec<u32>> {
    let target = match goal {
        Goal::Upgrade(g) if g.path.is_empty() => g.to,
        Goal::Converge if due(facts, inv).is_some() => Target::Exact(inv.cluster.kubernetes_version),
        _ => return None,
    };
    let current = facts.cluster.as_ref()?.kubeadm_config.as_deref().and_then(crate::kube::cluster_version)?;
    let last = match target {
        Target::Exact(v) => v.minor,
        Target::Minor { minor, .. } => minor,
    };
    Some((current.minor..=last.max(current.minor)).collect())
}

fn refuse(reason: impl Into<String>, fix: impl Into<String>) -> Refusal {
    Refusal { reason: reason.into(), fix: fix.into() }
}

/// Plan the upgrade `goal` into `plan`: its path, notes and refusals, then each hop's steps.
pub(super) fn plan(input: &PlanInput<'_>, goal: &UpgradeGoal, plan: &mut Plan) -> Result<(), PlanError> {
    plan.playbook = UPGRADE.into();
    let mut inv = input.inventory.clone();
    inv.cluster.upgrade.keep_cordoned = goal.keep_cordoned;
    inv.cluster.upgrade.skip_blocked = goal.skip_blocked;
    let first = inv.first_control_plane().name.clone();
    let Some(view) = input.facts.cluster.as_ref() else {
        // An API server cannot answer without its etcd: say so rather than "not installed".
        let unhealthy = unhealthy_members(&inv, input.facts);
        if !unhealthy.is_empty() {
            let names: Vec<String> = unhealthy.iter().map(|(host, why)| format!("{host} ({why})")).collect();
            plan.refusals.push(refuse(
                format!(
                    "the cluster cannot be read from {first}, and etcd is not healthy on {}: without a quorum of its members the API servers cannot answer",
                    names.join(", ")
                ),
                "bring the etcd members back (`crictl ps -a --label io.kubernetes.container.name=etcd` and its logs on each control plane), or restore a snapshot with `kubewright etcd restore`",
            ));
            return Ok(());
        }
        plan.refusals.push(refuse(
            format!("the cluster cannot be read from {first}: it is not installed, or its API server does not answer"),
            "install it with `kubewright apply` first; `kubewright plan` shows what the hosts have",
        ));
        return Ok(());
    };
    let Some(current) = view.kubeadm_config.as_deref().and_then(crate::kube::cluster_version) else {
        plan.refusals.push(refuse(
            format!("the cluster's kubeadm-config (read on {}) names no kubernetesVersion", view.answered_by),
            "check it with `kubectl -n kube-system get configmap kubeadm-config -o yaml` on a control plane",
        ));
        return Ok(());
    };
    plan.kubernetes_version = current;
    let hops = if goal.path.is_empty() {
        match &input.facts.releases {
            Some(releases) => {
                // A repository that cannot be read matters only when the path needs it (the
                // path then says so); otherwise it is a note.
                plan.notes.extend(releases.unreadable.iter().map(|r| format!("Note: {r}")));
                crate::upgrade::path(current, goal.to, &releases.offered)
            }
            None => Err(refuse(
                "the package repository was not asked which releases it offers (no facts were read)",
                "plan against the hosts (without --offline), or give the releases with --path",
            )),
        }
    } else {
        crate::upgrade::given_path(current, goal.to, &goal.path)
    };
    let mut hops = match hops {
        Ok(hops) => hops,
        Err(refusal) => {
            plan.refusals.push(refusal);
            return Ok(());
        }
    };
    // Nodes behind the control plane's version: an earlier upgrade did not finish (a blocked
    // drain, a stop); they are brought to it first.
    let lagging =
        view.nodes.iter().any(|(name, n)| inv.host(name).is_some() && n.kubelet().is_some_and(|k| k < current));
    if lagging && hops.first() != Some(&current) {
        hops.insert(0, current);
    }
    plan.upgrade = Some(UpgradePath { from: current, hops: hops.clone() });
    let Some(last) = hops.last().copied() else {
        plan.notes.push(format!("Cluster {} already runs {current}: nothing to upgrade", inv.cluster.name));
        return Ok(());
    };
    plan.refusals = refusals(input, &inv, goal, current, &hops);
    if !plan.refusals.is_empty() {
        return Ok(());
    }
    let path: Vec<String> = std::iter::once(current).chain(hops.iter().copied()).map(|v| v.to_string()).collect();
    plan.notes.insert(
        0,
        format!(
            "Upgrade of cluster {}: {} ({} hop(s), one minor at a time; every node at each hop)",
            inv.cluster.name,
            path.join(" -> "),
            hops.len()
        ),
    );
    plan.notes.push(
        "kubeadm upgrade renews each control plane's certificates (its default), so they are good for a year afterwards."
            .into(),
    );
    if inv.control_planes().count() < 3 {
        plan.notes.push(
            "with fewer than 3 control planes, the API server is unavailable while each etcd member restarts".into(),
        );
    }
    for (n, hop) in hops.iter().enumerate() {
        let at_hop = inv.at_version(*hop);
        let playbook = hop_playbook(*hop, n == 0, at_hop.cluster.upgrade.max_unavailable);
        add_playbook(input, &at_hop, &playbook, Some(*hop), plan)?;
    }
    plan.kubernetes_version = last;
    Ok(())
}

/// Everything that refuses the upgrade, before anything changes.
fn refusals(
    input: &PlanInput<'_>,
    inv: &Inventory,
    goal: &UpgradeGoal,
    current: Version,
    hops: &[Version],
) -> Vec<Refusal> {
    let Some(view) = input.facts.cluster.as_ref() else { return Vec::new() };
    let mut refusals = crate::upgrade::refusals(&view.nodes, hops);
    let absent: Vec<&str> =
        inv.hosts.iter().filter(|h| !view.nodes.contains_key(&h.name)).map(|h| h.name.as_str()).collect();
    if !absent.is_empty() {
        refusals.push(refuse(
            format!("inventory host(s) {} are not nodes of the cluster", absent.join(", ")),
            "join them first (`kubewright apply` at the cluster's version), or take them out of the inventory",
        ));
    }
    if !goal.accept_drift {
        let expected = crate::kube::expected_kubeadm_config(&inv.at_version(current));
        let drift = view
            .kubeadm_config
            .as_deref()
            .map(|yaml| crate::kube::kubeadm_config_drift(&expected, yaml).unwrap_or_else(|e| vec![e]))
            .unwrap_or_default();
        if !drift.is_empty() {
            refusals.push(refuse(
                format!("the cluster's kubeadm-config differs from the inventory: {}", drift.join("; ")),
                "set the inventory to what the cluster has, or pass --accept-drift to upgrade it as it is",
            ));
        }
    }
    let unhealthy = unhealthy_members(inv, input.facts);
    refusals.extend(crate::upgrade::etcd_refusal(&unhealthy, inv.control_planes().count()));
    refusals
}

/// Each control plane whose own etcd member answered unhealthy with the facts, and why.
fn unhealthy_members(inv: &Inventory, facts: &ClusterFacts) -> Vec<(String, String)> {
    inv.control_planes()
        .filter_map(|cp| match &facts.hosts.get(&cp.name)?.etcd_health {
            Some(EtcdHealth::Unhealthy { why }) => Some((cp.name.clone(), why.clone())),
            _ => None,
        })
        .collect()
}
