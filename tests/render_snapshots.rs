//! Snapshots of every rendered file for the bundled inventories, both kubeadm config APIs
//! (v1beta3 below 1.31, v1beta4 from 1.31) and both containerd config versions.
//! Review changes with `cargo insta review`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

mod common;

use common::{inventory, render};

/// All files of the given hosts, each under a header with its path and mode.
fn dump(inv: &kubewright::inventory::Inventory, hosts: &[&str]) -> String {
    let mut out = String::new();
    for host in hosts {
        for f in render(inv, host) {
            out.push_str(&format!(
                "==> {host}:{} ({:04o} {}{}) <==\n",
                f.path,
                f.mode,
                f.owner,
                if f.transient { ", transient" } else { "" }
            ));
            out.push_str(&f.content);
            out.push('\n');
        }
    }
    out
}

#[test]
fn example_ha_v1beta4() {
    let inv = inventory("example.yaml", &[]);
    insta::assert_snapshot!(dump(&inv, &["cp1", "cp2", "worker2"]));
}

#[test]
fn example_ha_v1beta3() {
    let inv = inventory("example.yaml", &[("kubernetesVersion: 1.31.4", "kubernetesVersion: 1.30.8")]);
    insta::assert_snapshot!(dump(&inv, &["cp1", "cp2", "worker2"]));
}

#[test]
fn single_node_v1beta3() {
    let inv = inventory("single.yaml", &[]);
    insta::assert_snapshot!(dump(&inv, &["node1"]));
}

#[test]
fn single_node_v1beta4_containerd_2() {
    let inv = inventory(
        "single.yaml",
        &[("kubernetesVersion: 1.30.8", "kubernetesVersion: 1.33.2\n  containerd:\n    version: 2.0.4")],
    );
    insta::assert_snapshot!(dump(&inv, &["node1"]));
}

#[test]
fn vagrant_v1beta4() {
    let inv = inventory("vagrant.yaml", &[]);
    insta::assert_snapshot!(dump(&inv, &["cp1", "worker1"]));
}
