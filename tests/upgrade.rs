//! `kubewright upgrade` on the test bed: 1.30 to 1.32 on three control planes and four workers,
//! two workers at a time; the refusals; a drain a budget blocks; a worker losing sshd
//! mid-upgrade; Ctrl-C mid-batch; the no-op.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Output, Stdio};

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::output_text;


fn command(bed: &Testbed, state: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubewright"));
    c.args(args)
        .arg("-i")
        .arg(bed.inventory_path())
        .env("NO_COLOR", "1")
        .env("KUBEWRIGHT_STATE_DIR", state)
        .stdin(Stdio::null());
    c
}

fn kubewright(bed: &Testbed, state: &std::path::Path, args: &[&str]) -> Output {
    command(bed, state, args).output().unwrap()
}

/// A cluster of `control_planes` + `workers` installed at `version`, with `upgrade:` settings
/// put into the inventory.
fn installed(control_planes: usize, workers: usize, version: &str, upgrade: &str) -> Option<(Testbed, tempfile::TempDir)> {
    let mut opts = TestbedOptions::new(control_planes + workers);
    opts.control_planes = control_planes;
    opts.kubernetes_version = version.into();
    let bed = Testbed::up_or_skip(opts)?;
    let inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    let edited = inventory.replacen("cluster:\n", &format!("cluster:\n  upgrade:\n{upgrade}"), 1);
    std::fs::write(bed.inventory_path(), edited).unwrap();
    let state = tempfile::tempdir().unwrap();
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));
    Some((bed, state))
}

fn kubelet_versions(bed: &Testbed) -> Vec<(String, String)> {
    bed.cluster_state().nodes.iter().map(|(n, node)| (n.clone(), node.kubelet_version.clone())).collect()
}

/// The most nodes cordoned at one time, from the simulator's event log (drains cordon).
fn most_cordoned_at_once(bed: &Testbed, among: &[&str]) -> usize {
    let mut cordoned = std::collections::BTreeSet::new();
    let mut most = 0;
    for e in &bed.cluster_state().events {
        if !among.contains(&e.node.as_str()) {
            continue;
        }
        match e.what.as_str() {
            "cordon" => {
                cordoned.insert(e.node.clone());
            }
            "uncordon" => {
                cordoned.remove(&e.node);
            }
            _ => {}
        }
        most = most.max(cordoned.len());
    }
    most
}

/// The upgrade's report: the last JSON value on stdout, after the run's events.
fn json(o: &Output) -> serde_json::Value {
    common::json_events(o).pop().unwrap_or_else(|| panic!("no JSON: {}", output_text(o)))
}

#[test]
fn three_control_planes_and_four_workers_go_from_1_30_to_1_32_two_workers_at_a_time() {
    let Some((bed, state)) = installed(3, 4, "1.30.4", "    maxUnavailable: 2\n") else { return };
    let started_events = bed.cluster_state().events.len();

    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes", "-o", "json"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    // The path: each minor's newest patch in the simulated repository.
    let report = json(&o);
    assert_eq!(report["from"], "1.30.4", "{report}");
    assert_eq!(report["path"], serde_json::json!(["1.31.13", "1.32.9"]), "{report}");
    for (node, version) in kubelet_versions(&bed) {
        assert_eq!(version, "v1.32.9", "{node}");
    }
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 7);
    assert!(nodes.iter().all(|n| n["from"] == "v1.30.4" && n["to"] == "v1.32.9" && n["cordoned"] == false), "{report}");
    assert!(nodes.iter().all(|n| n["drains"] == 2), "one drain per node per hop: {report}");
    assert_eq!(bed.cluster_state().kubernetes_version, "v1.32.9");

    // Control planes one at a time: cp1 applies, then cp2 and cp3 follow, at each hop.
    let events = bed.cluster_state().events[started_events..].to_vec();
    let upgrades: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.what.starts_with("upgrade-"))
        .map(|e| (e.what.clone(), e.node.clone()))
        .collect();
    let control_plane_order: Vec<&str> =
        upgrades.iter().filter(|(_, n)| n.starts_with("cp")).map(|(w, n)| if w.starts_with("upgrade-apply") { "apply" } else { n.as_str() }).collect();
    assert_eq!(control_plane_order, ["apply", "cp2", "cp3", "apply", "cp2", "cp3"], "{upgrades:?}");
    // Serial: each control plane's kubelet is back at the new version before the next starts.
    let control_plane_steps: Vec<String> = events
        .iter()
        .filter(|e| e.node.starts_with("cp") && (e.what.starts_with("upgrade-") || e.what == "kubelet-start"))
        .map(|e| format!("{} {}", e.what.split(' ').next().unwrap_or_default(), e.node))
        .collect();
    let one_hop = ["upgrade-apply cp1", "kubelet-start cp1", "upgrade-node cp2", "kubelet-start cp2", "upgrade-node cp3", "kubelet-start cp3"];
    assert_eq!(control_plane_steps, [one_hop, one_hop].concat(), "{events:?}");
    // At most two workers cordoned at any time, and none left so.
    assert_eq!(most_cordoned_at_once(&bed, &["w1", "w2", "w3", "w4"]), 2);
    assert!(bed.cluster_state().nodes.values().all(|n| !n.unschedulable));

    // The snapshot and the PKI backup, on the bastion.
    let cluster_dir = std::fs::read_dir(state.path()).unwrap().flatten().next().unwrap().path();
    let snapshot = cluster_dir.join("backups/cp1/etcd-snapshot.db");
    assert!(snapshot.is_file(), "no snapshot in {}", cluster_dir.display());
    assert!(std::fs::read(&snapshot).unwrap().starts_with(b"KUBEWRIGHT-SIM-ETCD-SNAPSHOT"));
    assert!(cluster_dir.join("backups/cp1/pki.tar.gz").is_file());

    // The same target again: nothing to do, nothing touched.
    let before = bed.cluster_state().events.len();
    let again = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(output_text(&again).contains("already runs 1.32.9: nothing to upgrade"), "{}", output_text(&again));
    assert_eq!(bed.cluster_state().events.len(), before);
}
