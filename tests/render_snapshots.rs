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

/// The example inventory with `loadBalancer.type: local` instead of its VIP.
fn local_load_balancer() -> kubewright::inventory::Inventory {
    inventory("example.yaml", &[("  controlPlaneEndpoint: 10.20.0.100:6443\n", "  loadBalancer:\n    type: local\n")])
}

#[test]
fn example_local_load_balancer() {
    insta::assert_snapshot!(dump(&local_load_balancer(), &["cp1", "worker2"]));
}

/// haproxy itself accepts the worker's proxy configuration, and the static pod carries its hash
/// (the kubelet restarts the proxy only when its manifest changes).
#[test]
fn the_api_proxy_config_is_valid_haproxy_and_the_manifest_carries_its_hash() {
    use sha2::Digest;
    let files = render(&local_load_balancer(), "worker2");
    let config = common::file(&files, "/etc/kubewright/api-proxy.cfg");
    let manifest = common::file(&files, "/etc/kubernetes/manifests/kubewright-api-proxy.yaml");
    let hash = kubewright::pki::hex_lower(&sha2::Sha256::digest(config.content.as_bytes()));
    assert!(manifest.content.contains(&format!("kubewright.io/config-sha256: \"{hash}\"")), "{}", manifest.content);
    assert!(
        render(&local_load_balancer(), "cp1").iter().all(|f| !f.path.contains("api-proxy")),
        "control planes run no proxy"
    );

    if !common::tool_available("haproxy", "-v", "haproxy", "check the proxy configuration with haproxy -c") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("api-proxy.cfg");
    std::fs::write(&path, &config.content).unwrap();
    let o = std::process::Command::new("haproxy").arg("-c").arg("-f").arg(&path).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// The install's step that trusts the package repository's signing key, as a fresh host runs
/// it (issue 18, run-safety review item 8): pinned by default (the downloaded key's fingerprint
/// checked before it reaches the keyring), pinned over an `http://` mirror, and unpinned (the
/// key over https only).
#[test]
fn the_repository_signing_key_step() {
    use kubewright::facts::ClusterFacts;
    use kubewright::plan::Action;
    let trust_step = |replacements: &[(&str, &str)]| {
        let inv = inventory("single.yaml", replacements);
        let facts = ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()));
        let plan = common::plan_of(&inv, &kubewright::goal::Goal::Converge, &facts);
        let step = plan.steps.iter().find(|s| s.id == "install-packages").unwrap();
        step.hosts[0]
            .decision
            .actions()
            .iter()
            .find_map(|a| match a {
                Action::Run { description, commands } if description.starts_with("trust the signing key") => {
                    Some(format!("# {description}\n{}", commands.to_shell()))
                }
                _ => None,
            })
            .unwrap()
    };
    let packages = |fields: &str| format!("kubernetesVersion: 1.30.8\n  packages:\n{fields}");
    let http = packages(
        "    mirror: http://apt.internal/k8s\n    keyFingerprint: de15 b144 86cd 377b 9e87  6e1a 2346 54da 9a29 6436\n",
    );
    let unpinned = packages("    keyFingerprint: none\n");
    insta::assert_snapshot!(
        [
            trust_step(&[]),
            trust_step(&[("kubernetesVersion: 1.30.8", http.as_str())]),
            trust_step(&[("kubernetesVersion: 1.30.8", unpinned.as_str())]),
        ]
        .join("\n")
    );
}
