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
    ("openssl", "openssl"),
    ("crictl", "cri-tools"),
    ("kubeadm", "kubeadm"),
    ("kubectl", "kubectl"),
    ("kubelet", "kubelet"),
];

/// The package that ships `tool`, if kubewright knows the tool.
fn package_of(tool: &str) -> Option<&'static str> {
    TOOLS.iter().find(|(t, _)| *t == tool).map(|(_, p)| *p)
}

/// The known programs a script runs: words of it that name one (`modprobe`,
/// `/usr/sbin/modprobe`, `$(crictl ps ...)`; a path counts by its last component, so
/// `/var/lib/kubelet/config.yaml` names nothing). A program the script skips its work
/// without (`command -v iptables ... exit 0`) is not needed. A program that only a message
/// names is counted too: the table lists programs a kubeadm host has or kubewright installs,
/// so such a word asks for nothing a host lacks in practice.
fn tools_named(text: &str) -> BTreeSet<&'static str> {
    let words: Vec<&str> = text
        .split(|c: char| {
            c.is_whitespace()
                || matches!(c, ';' | '|' | '&' | '(' | ')' | '$' | '`' | '"' | '\'' | '=' | '<' | '>' | '{' | '}')
        })
        .filter(|w| !w.is_empty())
        .collect();
    // `if ! command -v iptables ...; then exit 0; fi`, `command -v openssl ... || exit 0`.
    let optional: BTreeSet<&str> = text
        .lines()
        .filter_map(|line| {
            let (_, after) = line.split_once("command -v ")?;
            let name = after.split_whitespace().next()?;
            after.contains("exit 0").then_some(name)
        })
        .collect();
    words
        .iter()
        .map(|w| w.rsplit('/').next().unwrap_or(w))
        .filter(|w| !optional.contains(w))
        .filter_map(|word| TOOLS.iter().find(|(t, _)| *t == word).map(|(t, _)| *t))
        .collect()
}

/// The host an action runs on (a `Via` runs on another), and the programs it needs there.
fn needs<'a>(host: &'a str, action: &'a Action) -> (&'a str, BTreeSet<&'static str>) {
    let tools = match action {
        Action::Via { on, action } => return (on, needs(on, action).1),
        Action::Probe { commands, .. } => tools_named(&commands.to_shell()),
        // The node list, and the local etcd member through its container.
        Action::Wait { etcd: true, .. } => BTreeSet::from(["kubectl", "crictl"]),
        Action::Wait { .. } | Action::Drain { .. } => BTreeSet::from(["kubectl"]),
        // apt itself: the packages it installs are what it brings, not what it needs.
        Action::Packages { hold, .. } if hold.is_empty() => BTreeSet::from(["apt-get"]),
        Action::Packages { .. } => BTreeSet::from(["apt-get", "apt-mark"]),
        other => other.commands().map(|script| tools_named(&script.to_shell())).unwrap_or_default(),
    };
    (host, tools)
}

/// Blocks each host whose plan runs a program a host lacks (its own, or the one a `Via`
/// action runs on for it) that no earlier action of the plan installs there: on the host's
/// `preflight` step when the plan has one, else on the first step that needs the program.
/// Facts assumed (offline) or recorded without programs say nothing of them: nothing is
/// blocked there.
pub fn require(plan: &mut Plan, facts: &ClusterFacts) {
    if facts.assumed_fresh {
        return;
    }
    // Programs the plan's packages bring so far, per host.
    let mut installed: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    // Per host to block: the first step needing a missing program, and per host lacking them,
    // which programs.
    type Lacking = BTreeMap<String, BTreeSet<&'static str>>;
    let mut blocked: BTreeMap<String, (usize, Lacking)> = BTreeMap::new();
    for (index, step) in plan.steps.iter().enumerate() {
        for hp in &step.hosts {
            for action in hp.decision.actions() {
                let (on, tools) = needs(&hp.host, action);
                let Some(has) = facts.host(on).and_then(|f| f.tools.as_ref()) else { continue };
                let brought = installed.entry(on.to_string()).or_default();
                for tool in tools {
                    if !has.contains(tool) && !brought.contains(tool) {
                        let (_, lacking) = blocked.entry(hp.host.clone()).or_insert_with(|| (index, BTreeMap::new()));
                        lacking.entry(on.to_string()).or_default().insert(tool);
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
    let preflight = plan.steps.iter().position(|s| s.id == "preflight");
    for (host, (first_needing, lacking)) in blocked {
        let problems: Vec<String> = lacking.iter().map(|(on, tools)| lacking_problem(&host, on, tools)).collect();
        let at = preflight.filter(|&i| plan.steps[i].hosts.iter().any(|h| h.host == host)).unwrap_or(first_needing);
        let Some(hp) = plan.steps[at].hosts.iter_mut().find(|h| h.host == host) else { continue };
        match &mut hp.decision {
            Decision::Blocked { problems: already } => already.extend(problems),
            other => {
                plan.summary.uncount(other);
                *other = Decision::Blocked { problems };
                plan.summary.blocked += 1;
            }
        }
    }
}

/// "`on` has no `modprobe` (package kmod) ...", for `host`'s plan.
fn lacking_problem(host: &str, on: &str, tools: &BTreeSet<&'static str>) -> String {
    let listed: Vec<String> =
        tools.iter().map(|t| format!("`{t}` (package {})", package_of(t).unwrap_or("?"))).collect();
    let packages: BTreeSet<&str> = tools.iter().filter_map(|t| package_of(t)).collect();
    let whose = if on == host { String::new() } else { format!(" for {host}") };
    format!(
        "{on} has no {}, which this plan runs there{whose}: install {} (apt-get install {}) and plan again",
        listed.join(", "),
        if packages.len() == 1 { "it" } else { "them" },
        packages.into_iter().collect::<Vec<_>>().join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_as_words_and_last_path_components_not_inside_other_names() {
        let text = "set -eu\n/usr/sbin/modprobe overlay\nid=$(crictl ps -q)\necho 'install kmod' >&2\nkubeadm-config kubeadm.yaml /var/lib/kubelet/config.yaml\n";
        assert_eq!(tools_named(text), BTreeSet::from(["modprobe", "crictl"]));
    }

    #[test]
    fn a_program_the_script_does_without_is_not_needed_one_it_only_names_in_its_error_is() {
        let text =
            "if ! command -v iptables >/dev/null 2>&1; then exit 0; fi\niptables -P INPUT ACCEPT\ntar -czf x pki\n";
        assert_eq!(tools_named(text), BTreeSet::from(["tar"]));
        let text = "if ! command -v crictl >/dev/null 2>&1; then echo 'no crictl' >&2; return 3; fi\ncrictl ps\n";
        assert_eq!(tools_named(text), BTreeSet::from(["crictl"]));
    }
}
