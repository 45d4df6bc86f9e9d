//! The programs a plan runs on each host, and the packages that ship them. A host built from
//! a minimal image may lack one (no kmod: no `modprobe`); a plan that would run it there, and
//! installs no package bringing it first, is blocked before anything changes, naming the
//! program and its package, instead of failing half-way with exit 127.

use std::collections::{BTreeMap, BTreeSet};

use super::{Action, Decision, Plan};
use crate::facts::ClusterFacts;

/// The programs kubewright's steps run, with the Debian/Ubuntu package that ships each.
/// coreutils, dash and util-linux are Essential (never missing on a Debian system); the
/// simulator bed and `facts` ask about exactly these names.
pub const TOOLS: &[(&str, &str)] = &[
    ("apt-get", "apt"),
    ("apt-mark", "apt"),
    ("apt-cache", "apt"),
    ("dpkg-query", "dpkg"),
    ("curl", "curl"),
    ("gpg", "gpg"),
    ("modprobe", "kmod"),
    ("lsmod", "kmod"),
    ("sysctl", "procps"),
    ("swapoff", "mount"),
    ("systemctl", "systemd"),
    ("iptables", "iptables"),
    ("tar", "tar"),
    ("crictl", "cri-tools"),
    ("kubeadm", "kubeadm"),
    ("kubectl", "kubectl"),
    ("kubelet", "kubelet"),
];

/// The package that ships `tool`, if kubewright knows the tool.
fn package_of(tool: &str) -> Option<&'static str> {
    TOOLS.iter().find(|(t, _)| *t == tool).map(|(_, p)| *p)
}

/// The known programs an action's commands name (as words: `/usr/sbin/modprobe`, `modprobe`,
/// `$(crictl ps ...)`). A name that only appears in a message (`install kmod`) is a package,
/// not a program; a program a message names is one the command runs anyway.
fn tools_named(text: &str) -> BTreeSet<&'static str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .filter_map(|word| TOOLS.iter().find(|(t, _)| *t == word).map(|(t, _)| *t))
        .collect()
}

/// The host an action runs on (a `Via` runs on another), and the programs it needs there.
fn needs(host: &str, action: &Action) -> Vec<(String, BTreeSet<&'static str>)> {
    match action {
        Action::Via { on, action } => needs(on, action).into_iter().map(|(_, t)| (on.clone(), t)).collect(),
        Action::Probe { commands, .. } => vec![(host.to_string(), tools_named(&commands.to_shell()))],
        // The node list, and the local etcd member through its container.
        Action::Wait { etcd, .. } => {
            let mut tools = BTreeSet::from(["kubectl"]);
            if *etcd {
                tools.insert("crictl");
            }
            vec![(host.to_string(), tools)]
        }
        Action::Drain { .. } => vec![(host.to_string(), BTreeSet::from(["kubectl"]))],
        // apt itself: the packages it installs are what it brings, not what it needs.
        Action::Packages { hold, .. } => {
            let mut tools = BTreeSet::from(["apt-get"]);
            if !hold.is_empty() {
                tools.insert("apt-mark");
            }
            vec![(host.to_string(), tools)]
        }
        other => match other.commands() {
            Some(script) => vec![(host.to_string(), tools_named(&script.to_shell()))],
            None => Vec::new(),
        },
    }
}

/// Blocks each host whose plan runs a program the host lacks and no earlier action of the
/// plan installs there: on its `preflight` step when the plan has one, else on the first step
/// that needs the program. Facts assumed (offline) or recorded without programs say nothing
/// of them: nothing is blocked there.
pub fn require(plan: &mut Plan, facts: &ClusterFacts) {
    if facts.assumed_fresh {
        return;
    }
    // Per host: programs the plan's packages bring so far, and what is missing where first.
    let mut installed: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    let mut missing: BTreeMap<String, (usize, BTreeSet<&'static str>)> = BTreeMap::new();
    for (index, step) in plan.steps.iter().enumerate() {
        for hp in &step.hosts {
            for action in hp.decision.actions() {
                for (host, tools) in needs(&hp.host, action) {
                    let Some(has) = facts.host(&host).and_then(|f| f.tools.as_ref()) else { continue };
                    let brought = installed.entry(host.clone()).or_default();
                    for tool in tools {
                        if !has.contains(tool) && !brought.contains(tool) {
                            missing.entry(host.clone()).or_insert_with(|| (index, BTreeSet::new())).1.insert(tool);
                        }
                    }
                    if let Action::Packages { changes, .. } = action {
                        for change in changes {
                            brought.extend(TOOLS.iter().filter(|(_, p)| *p == change.name).map(|(t, _)| *t));
                        }
                    }
                }
            }
        }
    }
    let preflight = plan.steps.iter().position(|s| s.id == "preflight");
    for (host, (first_needing, tools)) in missing {
        let listed: Vec<String> =
            tools.iter().map(|t| format!("`{t}` (package {})", package_of(t).unwrap_or("?"))).collect();
        let packages: BTreeSet<&str> = tools.iter().filter_map(|t| package_of(t)).collect();
        let problem = format!(
            "{host} has no {}, which this plan runs there: install {} (apt-get install {}) and plan again",
            listed.join(", "),
            if packages.len() == 1 { "it" } else { "them" },
            packages.into_iter().collect::<Vec<_>>().join(" ")
        );
        let at = preflight.filter(|&i| plan.steps[i].hosts.iter().any(|h| h.host == host)).unwrap_or(first_needing);
        let Some(hp) = plan.steps[at].hosts.iter_mut().find(|h| h.host == host) else { continue };
        match &mut hp.decision {
            Decision::Blocked { problems } => problems.push(problem),
            other => {
                plan.summary.uncount(other);
                *other = Decision::Blocked { problems: vec![problem] };
                plan.summary.blocked += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_as_words_in_paths_and_substitutions_not_inside_other_names() {
        let text = "set -eu\n/usr/sbin/modprobe overlay\nid=$(crictl ps -q)\necho 'install kmod' >&2\nkubeadm-config kubeadm.yaml\n";
        assert_eq!(tools_named(text), BTreeSet::from(["modprobe", "crictl"]));
    }
}
