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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
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

/// `--path 1.31.13,1.32.9`: the releases given, checked as [`path`] would choose them (one per
/// minor, each after the last, the first after `current`, the last the target's).
pub fn given_path(current: Version, target: Target, given: &[Version]) -> Result<Vec<Version>, Refusal> {
    let mut previous = current;
    for (n, hop) in given.iter().enumerate() {
        if *hop <= previous {
            return Err(refuse(
                format!("--path: {hop} does not come after {previous}"),
                "list the releases in order, each newer than the one before and than the cluster's",
            ));
        }
        let same_minor_ok = n == 0 && hop.minor == current.minor;
        if hop.major != previous.major || (hop.minor != previous.minor + 1 && !same_minor_ok) {
            return Err(refuse(
                format!("--path: {previous} to {hop} skips a minor or changes the major version"),
                "kubeadm upgrades one minor at a time: give one release of each minor in between",
            ));
        }
        previous = *hop;
    }
    let reaches = match target {
        Target::Exact(v) => given.last().is_some_and(|l| *l == v),
        Target::Minor { major, minor } => given.last().is_some_and(|l| l.major == major && l.minor == minor),
    };
    if !given.is_empty() && !reaches {
        return Err(refuse(
            format!("--path ends at {previous}, not at the target"),
            "end the path with the release --to names (or leave --to out)",
        ));
    }
    Ok(given.to_vec())
}

/// Word that starts each minor's section in [`releases_script`]'s output.
const RELEASES_SECTION: &str = "=== kubewright minor ";

/// On the first control plane: what the package repository of each minor in `minors` offers
/// (`apt-cache madison kubeadm` against a sources list naming only that minor's repository,
/// with lists in a temporary directory: the host's own apt setup is not touched).
pub fn releases_script(mirror: &str, keyring: &str, minors: &[u32]) -> crate::script::Script {
    const SCRIPT: &str = r#"set -eu
mirror=$1 keyring=$2
shift 2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
trap 'exit 143' HUP INT TERM
mkdir -p "$d/lists/partial"
for m in "$@"; do
  printf 'deb [signed-by=%s] %s/core:/stable:/v1.%s/deb/ /
' "$keyring" "$mirror" "$m" > "$d/sources.list"
  echo "=== kubewright minor $m"
  if apt-get update -q -o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$d/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= > "$d/update.log" 2>&1; then
    apt-cache madison -o "Dir::Etc::sourcelist=$d/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$d/lists" -o Dir::Cache::pkgcache= -o Dir::Cache::srcpkgcache= kubeadm
  else
    echo "!!! $(grep -E '^(E|W):' "$d/update.log" | tail -n 1)"
  fi
done"#;
    let mut words = vec!["sh".to_string(), "-c".into(), SCRIPT.into(), "sh".into(), mirror.into(), keyring.into()];
    words.extend(minors.iter().map(u32::to_string));
    crate::script::Script::new().cmd(words)
}

/// What each minor's repository offers (minor → releases, newest first), and why the
/// repositories that could not be read could not.
pub type Offered = (BTreeMap<u32, Vec<Version>>, Vec<String>);

/// [`releases_script`]'s output: minor → releases offered, newest first; a minor whose
/// repository could not be read maps to an empty list and its error.
pub fn parse_releases(text: &str) -> Offered {
    let mut offered: BTreeMap<u32, Vec<Version>> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut minor = None;
    let mut section = String::new();
    let mut flush = |minor: Option<u32>, section: &mut String| {
        if let Some(m) = minor {
            offered.insert(m, parse_madison(section));
        }
        section.clear();
    };
    for line in text.lines() {
        if let Some(m) = line.strip_prefix(RELEASES_SECTION) {
            flush(minor, &mut section);
            minor = m.trim().parse().ok();
        } else if let Some(e) = line.strip_prefix("!!! ") {
            errors.push(format!("the repository of 1.{} cannot be read: {e}", minor.unwrap_or(0)));
        } else {
            section.push_str(line);
            section.push('\n');
        }
    }
    flush(minor, &mut section);
    (offered, errors)
}

/// The etcd members (control planes) whose health check failed: an upgrade restarts each
/// member in turn, so one already down would leave the cluster without quorum.
pub fn etcd_refusal(unhealthy: &[(String, String)], members: usize) -> Option<Refusal> {
    if unhealthy.is_empty() {
        return None;
    }
    let names: Vec<String> = unhealthy.iter().map(|(host, why)| format!("{host} ({why})")).collect();
    Some(refuse(
        format!("etcd is not healthy on {} of {members} control plane(s): {}", unhealthy.len(), names.join(", ")),
        "an upgrade restarts each etcd member in turn, and with one already down the next restart loses quorum: bring the member back (`crictl ps -a --label io.kubernetes.container.name=etcd`, its logs) first",
    ))
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

/// Everything that stops the upgrade before it starts: nodes not Ready, kubelets newer than the
/// target, and kubelets the first hop would leave out of the skew window (every node moves at
/// each hop, so the first hop's API server is the furthest a kubelet ever lags behind).
pub fn refusals(nodes: &BTreeMap<String, NodeView>, hops: &[Version]) -> Vec<Refusal> {
    let mut out = Vec::new();
    let not_ready: Vec<&str> = nodes.iter().filter(|(_, n)| !n.ready).map(|(name, _)| name.as_str()).collect();
    if !not_ready.is_empty() {
        out.push(refuse(
            format!("node(s) {} are not Ready", not_ready.join(", ")),
            "an upgrade drains nodes one batch at a time and needs the rest to carry the load: fix them first (`kubectl describe node`)",
        ));
    }
    let (Some(first), Some(last)) = (hops.first().copied(), hops.last().copied()) else { return out };
    for (name, node) in nodes {
        let Some(kubelet) = node.kubelet() else {
            out.push(refuse(format!("node {name} reports kubelet `{}`", node.kubelet_version), "check the node"));
            continue;
        };
        if kubelet > last {
            out.push(refuse(
                format!("node {name}'s kubelet {kubelet} is newer than the target {last}"),
                "a kubelet must never be newer than the API server: upgrade to at least its version",
            ));
        } else if first.minor.saturating_sub(kubelet.minor) > kubelet_window(first) {
            out.push(refuse(
                format!(
                    "node {name}'s kubelet {kubelet} would be more than {} minors behind the API server at {first}",
                    kubelet_window(first)
                ),
                format!(
                    "upgrade that node's kubelet to at least 1.{} first (it lags behind the control plane)",
                    first.minor.saturating_sub(kubelet_window(first))
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
        NodeView { kubelet_version: kubelet.into(), ready, unschedulable: false, cordoned_by_kubewright: false }
    }

    #[test]
    fn not_ready_nodes_and_kubelets_out_of_the_window_refuse_the_upgrade() {
        let hops = [v("1.32.3")];
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
        assert!(found[1].contains("w1's kubelet 1.28.15 would be more than 3 minors behind the API server at 1.32.3; upgrade that node's kubelet to at least 1.29 first"), "{found:#?}");
        assert!(found[2].contains("w2's kubelet 1.33.0 is newer than the target 1.32.3"), "{found:#?}");
        assert_eq!(kubelet_window(v("1.28.0")), 1);
    }

    #[test]
    fn each_minors_repository_answer_is_read_and_a_failed_one_named() {
        let out = "=== kubewright minor 31\n   kubeadm | 1.31.13-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n   kubeadm | 1.31.12-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n=== kubewright minor 34\n!!! E: The repository 'https://pkgs.k8s.io/core:/stable:/v1.34/deb  InRelease' does not have a Release file.\n";
        let (offered, errors) = parse_releases(out);
        assert_eq!(offered[&31], [v("1.31.13"), v("1.31.12")]);
        assert!(offered[&34].is_empty());
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("the repository of 1.34 cannot be read: E: The repository"), "{errors:?}");
        let script = releases_script("https://pkgs.k8s.io", "/etc/apt/keyrings/k.gpg", &[31, 32]).to_shell();
        assert!(script.trim_end().ends_with("sh https://pkgs.k8s.io /etc/apt/keyrings/k.gpg 31 32"), "{script}");
    }

    #[test]
    fn a_given_path_must_go_one_minor_at_a_time_to_the_target() {
        let to: Target = "1.32".parse().unwrap();
        assert_eq!(given_path(v("1.30.4"), to, &[v("1.31.2"), v("1.32.0")]).unwrap(), [v("1.31.2"), v("1.32.0")]);
        assert_eq!(given_path(v("1.30.4"), to, &[v("1.30.8"), v("1.31.2"), v("1.32.0")]).unwrap().len(), 3);
        let skip = given_path(v("1.30.4"), to, &[v("1.32.0")]).unwrap_err();
        assert!(skip.reason.contains("skips a minor"), "{skip}");
        let back = given_path(v("1.30.4"), to, &[v("1.30.2")]).unwrap_err();
        assert!(back.reason.contains("does not come after 1.30.4"), "{back}");
        let short = given_path(v("1.30.4"), to, &[v("1.31.2")]).unwrap_err();
        assert!(short.reason.contains("not at the target"), "{short}");
    }

    #[test]
    fn an_unhealthy_etcd_member_refuses_the_upgrade() {
        assert_eq!(etcd_refusal(&[], 3), None);
        let r = etcd_refusal(&[("cp2".into(), "context deadline exceeded".into())], 3).unwrap();
        assert!(r.reason.contains("1 of 3 control plane(s): cp2 (context deadline exceeded)"), "{r}");
        assert!(r.fix.contains("quorum"), "{r}");
    }
}
