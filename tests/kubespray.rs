//! `inventory from-kubespray` on kubespray inventories in both forms: INI (groups, children,
//! group vars, a bastion, an etcd-only host, quoted values) and YAML (the pre-2.16 group names,
//! a node IP beside the SSH address); what does not map is warned about, the rest loads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::Command;

mod common;

fn import(fixture: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "from-kubespray"])
        .arg(format!("{}/tests/fixtures/kubespray/{fixture}", env!("CARGO_MANIFEST_DIR")))
        .args(extra)
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `inventory from-kubespray FILE` for a cluster `x`.
fn import_file(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "from-kubespray", "--name", "x", "--kubernetes-version", "1.31.4"])
        .arg(path)
        .output()
        .unwrap()
}

fn load(o: &std::process::Output) -> kubewright::inventory::Inventory {
    common::printed_inventory(o)
}

#[test]
fn an_ini_inventory_maps_groups_hosts_vars_and_the_bastion() {
    let o = import("inventory.ini", &["--name", "prod", "--kubernetes-version", "1.31.4"]);
    let inv = load(&o);
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(
        names,
        ["node1", "node2", "node3", "node4", "node5"],
        "the bastion and the etcd-only host are not nodes"
    );
    assert_eq!(inv.control_planes().count(), 3);
    let node3 = inv.host("node3").unwrap();
    assert!(node3.is_control_plane() && node3.is_worker(), "in both groups: both roles");
    assert_eq!((node3.address.as_str(), node3.ssh.port), ("95.54.0.14", 2222));
    assert_eq!(node3.internal_address.unwrap().to_string(), "10.3.0.3");
    assert_eq!(inv.host("node4").unwrap().ssh.user, "ops", "[k8s_cluster:vars] applies to the group's hosts");
    assert_eq!(inv.host("node5").unwrap().ssh.identity_file.as_deref(), Some("/home/ops/.ssh/k8s key"));
    let bastion = inv.ssh.bastion.as_ref().expect("the bastion group");
    assert_eq!((bastion.host.as_str(), bastion.user.as_str()), ("203.0.113.7", "jump"));
    assert!(inv.cluster.load_balancer.is_local());
    let warnings = String::from_utf8_lossy(&o.stderr);
    assert!(warnings.contains("node1: not carried over: etcd_member_name"), "{warnings}");
    assert!(
        warnings.contains("etcd4: an etcd-only host: kubewright runs etcd on the control planes (stacked); left out"),
        "{warnings}"
    );
}

#[test]
fn a_yaml_inventory_with_the_old_group_names_loads_with_warnings() {
    let o = import("hosts.yaml", &["--name", "lab", "--kubernetes-version", "1.30.8"]);
    let inv = load(&o);
    assert_eq!(inv.control_planes().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["master1"]);
    let worker = inv.host("worker1").unwrap();
    assert!(worker.is_worker() && !worker.is_control_plane());
    assert_eq!((worker.address.as_str(), worker.ssh.user.as_str()), ("10.0.0.21", "ubuntu"));
    assert_eq!(worker.internal_address.unwrap().to_string(), "192.168.10.21");
    assert_eq!(inv.host("master1").unwrap().internal_address, None, "ip equal to the SSH address");
    let warnings = String::from_utf8_lossy(&o.stderr);
    assert!(warnings.contains("the group `kube-master` is kubespray's name before 2.16"), "{warnings}");
    assert!(warnings.contains("worker1: access_ip 10.0.0.21 differs from ip 192.168.10.21"), "{warnings}");
    assert!(warnings.contains("worker1: not carried over: node_labels"), "{warnings}");
}

#[test]
fn an_inventory_without_control_planes_or_with_bad_names_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workers.ini");
    std::fs::write(&path, "[kube_node]\nw1 ansible_host=10.0.0.21\n").unwrap();
    let o = import_file(&path);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::output_text(&o).contains("no host is in kube_control_plane"), "{}", common::output_text(&o));
    std::fs::write(&path, "[kube_control_plane]\nNode_1 ansible_host=10.0.0.11\n").unwrap();
    let o = import_file(&path);
    assert_eq!(o.status.code(), Some(2), "a name Kubernetes refuses is caught by the inventory checks");
    assert!(common::output_text(&o).contains("the imported inventory is not valid"), "{}", common::output_text(&o));
}
