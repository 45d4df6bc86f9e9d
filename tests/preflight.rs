//! Preflight decided from facts (pure: facts are built here, no host needed): each problem
//! blocks its host with a message saying what to do, all hosts are judged at once, warnings
//! do not block. The same checks on real hosts: tests/plan_facts.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::collections::{BTreeMap, BTreeSet};

use kubewright::facts::{ClusterFacts, HostFacts};
use kubewright::goal::Goal;
use kubewright::plan::Decision;

mod common;

/// A host that passes every check (example.yaml: cp1..cp3 control planes, worker1, worker2).
fn healthy(n: u8) -> HostFacts {
    let mut f = HostFacts::fresh();
    f.os_id = "ubuntu".into();
    f.os_version = "24.04".into();
    f.arch = "x86_64".into();
    f.hostname = format!("host{n}");
    f.macs = BTreeSet::from([format!("52:54:00:00:00:{n:02x}")]);
    f.product_uuid = format!("UUID-{n}");
    f.cpus = 2;
    f.memory_mb = 4096;
    f.listening_ports = BTreeSet::from([22]);
    f.clock_skew_s = Some(1);
    f
}

/// The preflight decision per host for these facts.
fn preflight(change: impl Fn(&str, &mut HostFacts)) -> BTreeMap<String, Decision> {
    let inv = common::inventory("example.yaml", &[]);
    let mut hosts = BTreeMap::new();
    for (n, h) in inv.hosts.iter().enumerate() {
        let mut f = healthy(n as u8);
        change(&h.name, &mut f);
        hosts.insert(h.name.clone(), f);
    }
    let facts = ClusterFacts { hosts, assumed_fresh: false, ..ClusterFacts::default() };
    let plan = common::plan_of(&inv, &Goal::Converge, &facts);
    plan.steps[0].hosts.iter().map(|h| (h.host.clone(), h.decision.clone())).collect()
}

fn problems(d: &Decision) -> Vec<String> {
    match d {
        Decision::Blocked { problems } => problems.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn healthy_hosts_pass_and_a_firewall_is_only_a_warning() {
    let decisions = preflight(|name, f| {
        if name == "worker1" {
            f.active_firewalls.insert("firewalld".into());
        }
    });
    for (host, d) in &decisions {
        assert!(matches!(d, Decision::Verify { .. }), "{host}: {d:?}");
    }
    let w1 = format!("{:?}", decisions["worker1"]);
    assert!(w1.contains("warning: firewalld is active"), "{w1}");
}

#[test]
fn each_problem_blocks_its_host_and_says_what_to_do() {
    let decisions = preflight(|name, f| match name {
        "cp1" => {
            f.os_id = "centos".into();
            f.os_version = "9".into();
        }
        "cp2" => {
            f.cpus = 1;
            f.memory_mb = 1024;
        }
        "cp3" => f.clock_skew_s = Some(-300),
        "worker1" => {
            f.listening_ports.insert(10250);
            f.macs = BTreeSet::from(["52:54:00:00:00:00".into()]); // cp1's
        }
        "worker2" => f.cpus = 1,
        _ => {}
    });
    let cp1 = problems(&decisions["cp1"]);
    assert!(cp1.iter().any(|p| p.contains("unsupported OS `centos 9`")), "{cp1:?}");
    assert!(cp1.iter().any(|p| p.contains("MAC address 52:54:00:00:00:00 is also on worker1")), "{cp1:?}");
    let cp2 = problems(&decisions["cp2"]);
    assert!(cp2.iter().any(|p| p.contains("1 CPU(s); a control plane needs at least 2")), "{cp2:?}");
    assert!(cp2.iter().any(|p| p.contains("1024 MB of memory; a control plane needs at least 1700 MB")), "{cp2:?}");
    let cp3 = problems(&decisions["cp3"]);
    assert!(cp3.iter().any(|p| p.contains("clock 300s behind the bastion's") && p.contains("sync time")), "{cp3:?}");
    let w1 = problems(&decisions["worker1"]);
    assert!(w1.iter().any(|p| p.contains("port(s) 10250 already in use")), "{w1:?}");
    // A worker needs less than a control plane: worker2 is fine with 1 CPU.
    assert!(matches!(decisions["worker2"], Decision::Verify { .. }), "{:?}", decisions["worker2"]);
}

#[test]
fn a_joined_host_is_not_checked_again() {
    let decisions = preflight(|name, f| {
        if name == "worker2" {
            f.joined = true;
            f.listening_ports.insert(10250); // its own kubelet
        }
    });
    assert!(matches!(&decisions["worker2"], Decision::Skip { reason } if reason.contains("already a node")));
}

#[test]
fn a_program_the_plan_runs_that_no_package_of_the_plan_brings_blocks_its_host() {
    // A fresh cloud image's programs; kubeadm, kubelet, kubectl and crictl come with the
    // packages the plan installs, so they are not demanded up front.
    let image: BTreeSet<String> = [
        "apt-get",
        "apt-mark",
        "apt-cache",
        "dpkg-query",
        "curl",
        "gpg",
        "modprobe",
        "lsmod",
        "sysctl",
        "swapoff",
        "systemctl",
        "iptables",
        "tar",
    ]
    .map(String::from)
    .into();
    let decisions = preflight(|name, f| {
        let mut tools = image.clone();
        if name == "worker1" {
            // Built without kmod.
            tools.remove("modprobe");
            tools.remove("lsmod");
        }
        f.tools = Some(tools);
    });
    for (host, d) in decisions.iter().filter(|(h, _)| *h != "worker1") {
        assert!(matches!(d, Decision::Verify { .. }), "{host}: {d:?}");
    }
    let w1 = problems(&decisions["worker1"]);
    assert_eq!(w1.len(), 1, "{w1:?}");
    assert!(
        w1[0].contains("worker1 has no `modprobe` (package kmod)") && w1[0].contains("apt-get install kmod"),
        "{w1:?}"
    );
}

#[test]
fn a_program_missing_where_a_step_runs_for_another_host_blocks_that_host_naming_both() {
    // remove-node drains and deletes the node from the first control plane: there is kubectl.
    let inv = common::inventory("example.yaml", &[]);
    let all: BTreeSet<String> = kubewright::plan::TOOLS.iter().map(|(t, _)| t.to_string()).collect();
    let mut hosts = BTreeMap::new();
    for (n, h) in inv.hosts.iter().enumerate() {
        let mut f = healthy(n as u8);
        f.joined = true;
        f.tools = Some(all.clone());
        if h.name == "cp1" {
            f.tools.as_mut().unwrap().remove("kubectl");
        }
        hosts.insert(h.name.clone(), f);
    }
    let node = |name: &str| {
        let view = kubewright::facts::NodeView {
            kubelet_version: "v1.31.4".into(),
            ready: true,
            unschedulable: false,
            cordoned_by_kubewright: false,
        };
        (name.to_string(), view)
    };
    let cluster = kubewright::facts::ClusterView {
        answered_by: "cp1".into(),
        nodes: inv.hosts.iter().map(|h| node(&h.name)).collect(),
        kubeadm_config: None,
    };
    let facts = ClusterFacts { hosts, assumed_fresh: false, cluster: Some(cluster), ..ClusterFacts::default() };
    let plan = common::plan_of(&inv, &Goal::RemoveNode { node: "worker1".into() }, &facts);
    let blocked: Vec<String> = plan
        .steps
        .iter()
        .flat_map(|s| &s.hosts)
        .filter(|h| h.host == "worker1")
        .flat_map(|h| problems(&h.decision))
        .collect();
    assert!(
        blocked
            .iter()
            .any(|p| p.contains("cp1 has no `kubectl` (package kubectl), which this plan runs there for worker1")),
        "{blocked:?}"
    );
}
