//! The upgrade path and the checks that refuse an upgrade, before anything changes (issue 7's
//! planning core; the rolling execution builds on it). Pure: from what the package repository
//! offers, the cluster's nodes and its version.
//!
//! Rules (kubeadm-behaviour.md §9, from the version-skew policy and kubeadm's `upgrade apply`
//! policy): the control plane moves one minor at a time, never down; each hop's kubeadm is that
//! hop's release; a kubelet must never be newer than the API server and, from 1.29, at most
//! three minors older (one up to 1.28), so kubelets that would fall out of that window must be
//! upgraded first.

use std::collections::BTreeMap;

use crate::facts::NodeView;
use crate::version::Version;

/// What to upgrade to: the newest patch of a minor (`--to 1.32`) or an exact release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Minor { major: u32, minor: u32 },
    Exact(Version),
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.strip_prefix('v').unwrap_or(s);
        if text.matches('.').count() == 1 {
            let (major, minor) = text.split_once('.').ok_or_else(|| format!("`{s}` is not MAJOR.MINOR"))?;
            return Ok(Target::Minor {
                major: major.parse().map_err(|_| format!("`{s}`: the major version is not a number"))?,
                minor: minor.parse().map_err(|_| format!("`{s}`: the minor version is not a number"))?,
            });
        }
        text.parse::<Version>().map(Target::Exact).map_err(|_| format!("`{s}` is not a version such as 1.32 or 1.32.3"))
    }
}

impl Target {
    fn minor(self) -> (u32, u32) {
        match self {
            Target::Minor { major, minor } => (major, minor),
            Target::Exact(v) => (v.major, v.minor),
        }
    }
}

/// The upstream versions of `apt-cache madison kubeadm` (`1.31.4-1.1` → 1.31.4), newest first.
pub fn parse_madison(text: &str) -> Vec<Version> {
    let mut versions: Vec<Version> = text
        .lines()
        .filter_map(|l| l.split('|').nth(1))
        .filter_map(|v| v.trim().split('-').next()?.parse().ok())
        .collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    versions.dedup();
    versions
}

/// Why an upgrade cannot go ahead, with what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}; {fix}")]
pub struct Refusal {
    pub reason: String,
    pub fix: String,
}

fn refuse(reason: impl Into<String>, fix: impl Into<String>) -> Refusal {
    Refusal { reason: reason.into(), fix: fix.into() }
}

/// The releases to go through from `current` to `target`, one per minor, each the newest
/// patch the repository offers for its minor (the last the exact one asked for, if one was).
/// `available` holds what the repository of each minor offers, by minor. Empty: already there.
pub fn path(
    current: Version,
    target: Target,
    available: &BTreeMap<u32, Vec<Version>>,
) -> Result<Vec<Version>, Refusal> {
    let (major, minor) = target.minor();
    if major != current.major {
        return Err(refuse(
            format!("{current} to {major}.{minor} changes the major version"),
            "kubewright upgrades within Kubernetes 1.x",
        ));
    }
    let goal_is_older = match target {
        Target::Exact(v) => v < current,
        Target::Minor { minor, .. } => minor < current.minor,
    };
    if goal_is_older {
        return Err(refuse(
            format!("the cluster runs {current}: going back is a downgrade"),
            "kubeadm does not downgrade a control plane; restore an etcd snapshot of the older version instead",
        ));
    }
    let mut hops = Vec::new();
    for m in current.minor..=minor {
        // kubeadm goes from any patch of a minor to the next minor: a newer patch of the
        // current minor is a hop only when it is the goal.
        if m == current.minor && m != minor {
            continue;
        }
        let offered = available.get(&m).map(Vec::as_slice).unwrap_or_default();
        let pick = match target {
            Target::Exact(v) if m == minor => offered.iter().copied().find(|o| *o == v).ok_or_else(|| {
                refuse(
                    format!("the repository of 1.{m} does not offer {v} (it has {})", list(offered)),
                    "pick a release it offers, or check the package mirror",
                )
            })?,
            _ => *offered.iter().max().ok_or_else(|| {
                refuse(
                    format!("the repository of 1.{m} offers no kubeadm"),
                    "check the package mirror (packages.mirror)",
                )
            })?,
        };
        if m == current.minor && pick <= current {
            continue;
        }
        hops.push(pick);
    }
    Ok(hops)
}

fn list(versions: &[Version]) -> String {
    if versions.is_empty() {
        return "none".into();
    }
    versions.iter().map(Version::to_string).collect::<Vec<_>>().join(", ")
}

/// How many minors a kubelet may be older than the API server of `api` (the policy's window).
pub fn kubelet_window(api: Version) -> u32 {
    if api.minor <= 28 { 1 } else { 3 }
}

/// Everything that stops the upgrade before it starts: nodes not Ready, and kubelets that the
/// first hop (or a later one, while the workers wait for the control planes) would leave out of
/// the skew window or behind.
pub fn refusals(nodes: &BTreeMap<String, NodeView>, hops: &[Version]) -> Vec<Refusal> {
    let mut out = Vec::new();
    let not_ready: Vec<&str> = nodes.iter().filter(|(_, n)| !n.ready).map(|(name, _)| name.as_str()).collect();
    if !not_ready.is_empty() {
        out.push(refuse(
            format!("node(s) {} are not Ready", not_ready.join(", ")),
            "an upgrade drains nodes one batch at a time and needs the rest to carry the load: fix them first (`kubectl describe node`)",
        ));
    }
    // The control plane goes through every hop before the workers follow; the workers'
    // kubelets must stay within the window of the last hop's API server meanwhile.
    let Some(last) = hops.last().copied() else { return out };
    for (name, node) in nodes {
        let Ok(kubelet) = node.kubelet_version.trim_start_matches('v').parse::<Version>() else {
            out.push(refuse(format!("node {name} reports kubelet `{}`", node.kubelet_version), "check the node"));
            continue;
        };
        if kubelet > last {
            out.push(refuse(
                format!("node {name}'s kubelet {kubelet} is newer than the target {last}"),
                "a kubelet must never be newer than the API server: upgrade to at least its version",
            ));
        } else if last.minor.saturating_sub(kubelet.minor) > kubelet_window(last) {
            out.push(refuse(
                format!(
                    "node {name}'s kubelet {kubelet} would be more than {} minors behind the API server at {last}",
                    kubelet_window(last)
                ),
                format!(
                    "upgrade in shorter steps (--to 1.{}) so the kubelets follow",
                    kubelet.minor + kubelet_window(last)
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    const MADISON_131: &str = "   kubeadm | 1.31.4-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n   kubeadm | 1.31.3-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n";

    fn repos() -> BTreeMap<u32, Vec<Version>> {
        BTreeMap::from([
            (30, vec![v("1.30.8"), v("1.30.4")]),
            (31, parse_madison(MADISON_131)),
            (32, vec![v("1.32.3"), v("1.32.0")]),
        ])
    }

    #[test]
    fn madison_lines_give_upstream_versions_newest_first() {
        assert_eq!(parse_madison(MADISON_131), [v("1.31.4"), v("1.31.3")]);
        assert!(parse_madison("N: Unable to locate package kubeadm\n").is_empty());
    }

    #[test]
    fn the_path_goes_minor_by_minor_on_each_minors_newest_patch() {
        let to_132: Target = "1.32".parse().unwrap();
        assert_eq!(path(v("1.30.4"), to_132, &repos()).unwrap(), [v("1.31.4"), v("1.32.3")]);
        assert_eq!(path(v("1.30.4"), "1.30".parse().unwrap(), &repos()).unwrap(), [v("1.30.8")], "a patch upgrade");
        assert_eq!(path(v("1.30.8"), "1.32.0".parse().unwrap(), &repos()).unwrap(), [v("1.31.4"), v("1.32.0")]);
        assert_eq!(path(v("1.32.3"), to_132, &repos()).unwrap(), Vec::<Version>::new(), "already there: nothing to do");
        assert_eq!(path(v("1.31.4"), "v1.31".parse().unwrap(), &repos()).unwrap(), Vec::<Version>::new());
    }

    #[test]
    fn downgrades_missing_releases_and_empty_repositories_are_refused_with_the_fix() {
        let down = path(v("1.32.3"), "1.31".parse().unwrap(), &repos()).unwrap_err();
        assert!(down.reason.contains("downgrade"), "{down}");
        let missing = path(v("1.31.4"), "1.32.9".parse().unwrap(), &repos()).unwrap_err();
        assert_eq!(missing.reason, "the repository of 1.32 does not offer 1.32.9 (it has 1.32.3, 1.32.0)");
        let empty = path(v("1.32.3"), "1.33".parse().unwrap(), &repos()).unwrap_err();
        assert!(empty.reason.contains("1.33 offers no kubeadm") && empty.fix.contains("packages.mirror"), "{empty}");
        assert!("two".parse::<Target>().is_err() && "1.x".parse::<Target>().is_err());
    }

    fn node(kubelet: &str, ready: bool) -> NodeView {
        NodeView { kubelet_version: kubelet.into(), ready, unschedulable: false }
    }

    #[test]
    fn not_ready_nodes_and_kubelets_out_of_the_window_refuse_the_upgrade() {
        let hops = [v("1.31.4"), v("1.32.3")];
        let fine =
            BTreeMap::from([("cp1".to_string(), node("v1.30.8", true)), ("w1".to_string(), node("v1.29.10", true))]);
        assert_eq!(refusals(&fine, &hops), Vec::<Refusal>::new(), "1.29 is three minors behind 1.32: allowed");
        let bad = BTreeMap::from([
            ("w1".to_string(), node("v1.28.15", true)),
            ("w2".to_string(), node("v1.33.0", true)),
            ("w3".to_string(), node("v1.31.4", false)),
        ]);
        let found: Vec<String> = refusals(&bad, &hops).into_iter().map(|r| r.to_string()).collect();
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(found[0].starts_with("node(s) w3 are not Ready"), "{found:#?}");
        assert!(found[1].contains("w1's kubelet 1.28.15 would be more than 3 minors behind the API server at 1.32.3; upgrade in shorter steps (--to 1.31)"), "{found:#?}");
        assert!(found[2].contains("w2's kubelet 1.33.0 is newer than the target 1.32.3"), "{found:#?}");
        assert_eq!(kubelet_window(v("1.28.0")), 1);
    }
}
