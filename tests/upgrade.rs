//! `kubewright upgrade` on the test bed: 1.30 to 1.32 on three control planes and four workers,
//! two workers at a time; the refusals; a drain a budget blocks; a worker losing sshd
//! mid-upgrade; Ctrl-C mid-batch; the no-op.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::Output;

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{bed_command as command, on_bed as kubewright, output_text};

/// A cluster of `control_planes` + `workers` installed at `version`, with `upgrade:` settings
/// put into the inventory.
fn installed(
    control_planes: usize,
    workers: usize,
    version: &str,
    upgrade: &str,
) -> Option<(Testbed, tempfile::TempDir)> {
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
    // As on a kubeadm host, no etcd tool was ever on a PATH: the snapshot before the first hop
    // and every etcd health gate went through etcd's container. kubeadm 1.32 no longer brings
    // cri-tools, kubewright does, at the new minor.
    assert!(state.path().join(bed.cluster_state().cluster_name).join("backups/cp1/etcd-snapshot.db").is_file());
    for host in ["cp1", "cp2", "cp3", "w1", "w2", "w3", "w4"] {
        let o = bed
            .exec(host, "! command -v etcdctl && ! command -v etcdutl && dpkg-query -W -f='${Version}' cri-tools")
            .unwrap();
        assert!(o.status.success(), "{host}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stdout).starts_with("1.32."), "{host}: {o:?}");
    }
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 7);
    assert!(nodes.iter().all(|n| n["from"] == "v1.30.4" && n["to"] == "v1.32.9" && n["cordoned"] == false), "{report}");
    assert!(nodes.iter().all(|n| n["drains"] == 2), "one drain per node per hop: {report}");
    assert_eq!(bed.cluster_state().kubernetes_version, "v1.32.9");

    // Control planes one at a time: cp1 applies, then cp2 and cp3 follow, at each hop.
    let events = bed.cluster_state().events[started_events..].to_vec();
    let upgrades: Vec<(String, String)> =
        events.iter().filter(|e| e.what.starts_with("upgrade-")).map(|e| (e.what.clone(), e.node.clone())).collect();
    let control_plane_order: Vec<&str> = upgrades
        .iter()
        .filter(|(_, n)| n.starts_with("cp"))
        .map(|(w, n)| if w.starts_with("upgrade-apply") { "apply" } else { n.as_str() })
        .collect();
    assert_eq!(control_plane_order, ["apply", "cp2", "cp3", "apply", "cp2", "cp3"], "{upgrades:?}");
    // Serial: each control plane's kubelet is back at the new version before the next starts.
    let control_plane_steps: Vec<String> = events
        .iter()
        .filter(|e| e.node.starts_with("cp") && (e.what.starts_with("upgrade-") || e.what == "kubelet-start"))
        .map(|e| format!("{} {}", e.what.split(' ').next().unwrap_or_default(), e.node))
        .collect();
    let one_hop = [
        "upgrade-apply cp1",
        "kubelet-start cp1",
        "upgrade-node cp2",
        "kubelet-start cp2",
        "upgrade-node cp3",
        "kubelet-start cp3",
    ];
    assert_eq!(control_plane_steps, [one_hop, one_hop].concat(), "{events:?}");
    // At most two workers cordoned at any time, and none left so.
    assert_eq!(most_cordoned_at_once(&bed, &["w1", "w2", "w3", "w4"]), 2);
    assert!(bed.cluster_state().nodes.values().all(|n| !n.unschedulable));

    // The snapshot and the PKI backup, on the bastion.
    let cluster_dir = std::fs::read_dir(state.path()).unwrap().flatten().next().unwrap().path();
    let snapshot = cluster_dir.join("backups/cp1/etcd-snapshot.db");
    assert!(snapshot.is_file(), "no snapshot in {}", cluster_dir.display());
    common::assert_real_snapshot(&snapshot);
    assert!(cluster_dir.join("backups/cp1/pki.tar.gz").is_file());

    // The inventory at the new release: the install plan finds nothing to change (the apt
    // source, containerd's sandbox image and the packages all moved with the upgrade).
    let inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    std::fs::write(
        bed.inventory_path(),
        inventory.replacen("kubernetesVersion: 1.30.4", "kubernetesVersion: 1.32.9", 1),
    )
    .unwrap();
    let plan = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode", "--diff"]);
    assert_eq!(plan.status.code(), Some(0), "{}", output_text(&plan));

    // The same target again: nothing to do, nothing touched.
    let before = bed.cluster_state().events.len();
    let again = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(output_text(&again).contains("already runs 1.32.9: nothing to upgrade"), "{}", output_text(&again));
    assert_eq!(bed.cluster_state().events.len(), before);
}

fn events_now(bed: &Testbed) -> usize {
    bed.cluster_state().events.len()
}

#[test]
fn what_the_upgrade_refuses_changes_nothing() {
    let Some((bed, state)) = installed(1, 2, "1.31.4", "    maxUnavailable: 1\n") else { return };
    // Each refusal: exit 1, the reason, and not one event in the simulator's log.
    let refused = |args: &[&str], wanted: &[&str]| {
        let before = events_now(&bed);
        let o = kubewright(&bed, state.path(), args);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{text}");
        assert!(text.contains("nothing was changed"), "{text}");
        for w in wanted {
            assert!(text.contains(w), "{w}: {text}");
        }
        assert_eq!(events_now(&bed), before, "a refused upgrade touched the cluster: {text}");
    };
    refused(
        &["upgrade", "--to", "1.30", "--yes"],
        &["the cluster runs 1.31.4: going back is a downgrade", "etcd snapshot"],
    );
    refused(
        &["upgrade", "--to", "1.32.99", "--yes"],
        &["the repository of 1.32 does not offer 1.32.99 (it has 1.32.9,"],
    );
    refused(&["upgrade", "--path", "1.33.1", "--to", "1.33.1", "--yes"], &["skips a minor"]);

    // A node NotReady: the others would carry its load while it is down.
    assert!(bed.exec("w2", "systemctl stop kubelet").unwrap().status.success());
    refused(&["upgrade", "--to", "1.32", "--yes"], &["node(s) w2 are not Ready"]);
    assert!(bed.exec("w2", "systemctl start kubelet").unwrap().status.success());

    // etcd not answering healthy on the control plane.
    use kubewright_testbed::faults::{Fault, FaultAction};
    let unhealthy = "https://127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n";
    let action = FaultAction::Fail { code: 1, stderr: unhealthy.into() };
    bed.add_fault("cp1", Fault { command_prefix: "etcdctl".into(), action, fired: false }).unwrap();
    refused(&["upgrade", "--to", "1.32", "--yes"], &["etcd is not healthy on 1 of 1 control plane(s): cp1", "quorum"]);
    bed.clear_faults("cp1").unwrap();

    // A kubelet upgraded by hand past the target: it must never be newer than the API server.
    let by_hand = "sed -i 's/v1.31/v1.32/' /etc/apt/sources.list.d/kubernetes.list && apt-get update -q && apt-get install -y --allow-change-held-packages kubelet=1.32.9-1.1 && systemctl restart kubelet";
    let o = bed.exec("w1", by_hand).unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    refused(&["upgrade", "--to", "1.31.13", "--yes"], &["node w1's kubelet 1.32.9 is newer than the target 1.31.13"]);

    // The kubeadm-config differs from the inventory: the diff, and the way past it.
    let inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    let drifted = inventory.replacen("serviceSubnet: 10.96.0.0/12", "serviceSubnet: 10.100.0.0/16", 1);
    std::fs::write(bed.inventory_path(), &drifted).unwrap();
    refused(
        &["upgrade", "--to", "1.32", "--yes"],
        &["networking.serviceSubnet: the cluster has 10.96.0.0/12, the inventory says 10.100.0.0/16", "--accept-drift"],
    );
    // Past the drift with --accept-drift, the lock another run holds refuses it.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let holder = serde_json::json!({
        "run_id": "run-x", "by": "ops@bastion2", "pid": 77,
        "started_at": kubewright::exec::rfc3339(now - 60), "command": "kubewright certs renew"
    });
    let dir = kubewright::exec::lock::LOCK_DIR;
    assert!(
        bed.exec("cp1", &format!("mkdir -p {dir} && echo '{holder}' > {dir}/holder.json")).unwrap().status.success()
    );
    let locked = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes", "--accept-drift"]);
    let text = output_text(&locked);
    assert_eq!(locked.status.code(), Some(1), "{text}");
    assert!(text.contains("kubewright certs renew") && text.contains("ops@bastion2"), "{text}");
    assert!(bed.exec("cp1", &format!("rm -rf {dir}")).unwrap().status.success());
    std::fs::write(bed.inventory_path(), &inventory).unwrap();

    assert!(kubelet_versions(&bed).iter().all(|(n, v)| v == if n == "w1" { "v1.32.9" } else { "v1.31.4" }));

    // The inventory's kubernetesVersion raised: plan shows the upgrade (exit 2: changes),
    // `upgrade --dry-run` too, without changing anything; apply runs it.
    std::fs::write(
        bed.inventory_path(),
        inventory.replacen("kubernetesVersion: 1.31.4", "kubernetesVersion: 1.32.9", 1),
    )
    .unwrap();
    let before = events_now(&bed);
    let plan = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(2), "{}", output_text(&plan));
    assert!(output_text(&plan).contains(": 1.31.4 -> 1.32.9 (1 hop(s)"), "{}", output_text(&plan));
    assert!(output_text(&plan).contains("Hop 1 of 1: to 1.32.9"), "{}", output_text(&plan));
    let dry = kubewright(&bed, state.path(), &["upgrade", "--dry-run"]);
    assert!(dry.status.success() && output_text(&dry).contains("[upgrade-worker@1.32.9]"), "{}", output_text(&dry));
    assert_eq!(events_now(&bed), before, "plan and --dry-run change nothing");
    let o = kubewright(&bed, state.path(), &["apply", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(output_text(&o).contains("this apply is the upgrade"), "{}", output_text(&o));
    assert!(kubelet_versions(&bed).iter().all(|(_, v)| v == "v1.32.9"), "{:?}", kubelet_versions(&bed));
    let plan = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", output_text(&plan));
}

const WEB_WITH_BUDGET: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  template:\n    metadata:\n      labels:\n        app: web\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web-pdb\n  namespace: shop\nspec:\n  minAvailable: MIN\n  selector:\n    matchLabels:\n      app: web\n";

fn apply_workload(bed: &Testbed, min_available: u32) {
    let manifest = WEB_WITH_BUDGET.replace("MIN", &min_available.to_string());
    let put = format!(
        "cat > /tmp/web.yaml <<'EOF'\n{manifest}EOF\nkubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /tmp/web.yaml"
    );
    let o = bed.exec("cp1", &put).unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
}

#[test]
fn a_drain_a_budget_blocks_names_it_uncordons_and_stops_or_is_skipped() {
    let Some((bed, state)) = installed(1, 2, "1.31.4", "    maxUnavailable: 1\n    drainTimeout: 3s\n") else { return };
    // Two replicas, one per worker, and a budget that keeps both: no worker can be drained.
    apply_workload(&bed, 2);

    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("error: w1 failed in step `upgrade-worker@1.32.9`: the drain of w1 was blocked: shop/web-"),
        "{text}"
    );
    assert!(text.contains("disruption budget(s) allowing no disruption now: shop/web-pdb"), "{text}");
    assert!(text.contains("the host was put back as it was before the step"), "{text}");
    let nodes = bed.cluster_state().nodes;
    assert!(!nodes["w1"].unschedulable, "uncordoned after the blocked drain");
    assert_eq!(nodes["w1"].kubelet_version, "v1.31.4");
    assert_eq!(nodes["w2"].kubelet_version, "v1.31.4", "the run stopped before w2");
    assert_eq!(nodes["cp1"].kubelet_version, "v1.32.9");

    // --skip-blocked: both workers are left out, listed, and the run says so (exit 1).
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes", "--skip-blocked", "--keep-cordoned"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("left out: w1 (the drain of w1 was blocked") && text.contains("left out: w2 ("), "{text}");
    // --keep-cordoned: left as the blocked drain left them.
    assert!(bed.cluster_state().nodes["w1"].unschedulable && bed.cluster_state().nodes["w2"].unschedulable);

    // The budget relaxed: the upgrade finishes, every node uncordoned.
    assert!(bed.exec("cp1", "kubectl --kubeconfig /etc/kubernetes/admin.conf uncordon w1 && kubectl --kubeconfig /etc/kubernetes/admin.conf uncordon w2").unwrap().status.success());
    apply_workload(&bed, 1);
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(kubelet_versions(&bed).iter().all(|(_, v)| v == "v1.32.9"), "{:?}", kubelet_versions(&bed));
    assert!(bed.cluster_state().nodes.values().all(|n| !n.unschedulable));
}

/// Wait until the simulator's log has `what` for `node`.
fn wait_for_event(bed: &Testbed, what: &str, node: &str, since: usize) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !bed.cluster_state().events[since..].iter().any(|e| e.what.starts_with(what) && e.node == node) {
        assert!(std::time::Instant::now() < deadline, "no `{what}` on {node} within 120s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_worker_losing_sshd_or_the_run_its_ctrl_c_mid_upgrade_is_finished_by_the_next_run() {
    use kubewright_testbed::faults::{Fault, FaultAction};
    let Some((bed, state)) = installed(1, 3, "1.31.4", "    maxUnavailable: 1\n") else { return };

    // sshd killed on w1 while its kubeadm runs (held up by a fault so the kill lands there).
    let hang = Fault {
        command_prefix: "kubeadm upgrade node".into(),
        action: FaultAction::Hang { seconds: 30 },
        fired: false,
    };
    bed.add_fault("w1", hang).unwrap();
    let since = events_now(&bed);
    let child = common::Background::spawn(&mut command(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]));
    wait_for_event(&bed, "drain", "w1", since);
    // Caught in the act: kubeadm runs (a fixed pause was too short on a loaded machine).
    common::wait_for_command(&bed, "w1", "kubeadm upgrade node", std::time::Duration::from_secs(60));
    // Every sshd of the host, the session running kubeadm with it.
    assert!(bed.exec("w1", "pkill -x sshd; rm -f /run/sshd.pid").unwrap().status.success());
    let o = child.wait_with_output();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("error: w1 failed in step `upgrade-worker@1.32.9`"), "{text}");
    // Put back in service from the control plane although w1 itself was unreachable.
    assert!(!bed.cluster_state().nodes["w1"].unschedulable, "{text}");
    bed.start_sshd("w1").unwrap();
    bed.clear_faults("w1").unwrap();
    bed.wait_ssh("w1", std::time::Duration::from_secs(20)).unwrap();
    // Its kubeadm still runs there (held up): the next run does not start another beside it.
    common::a_command_left_running_refuses_the_next_run(&bed, "w1", "kubeadm upgrade node", || {
        kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"])
    });

    // Ctrl-C while w2 (the next batch) runs its kubeadm (held up 5 s so the signal lands
    // there): w2 finishes, w3 does not start.
    let hold =
        Fault { command_prefix: "kubeadm upgrade node".into(), action: FaultAction::Hang { seconds: 5 }, fired: false };
    bed.add_fault("w2", hold).unwrap();
    let since = events_now(&bed);
    let child = common::Background::spawn(&mut command(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]));
    wait_for_event(&bed, "drain", "w1", since);
    wait_for_event(&bed, "drain", "w2", since);
    child.signal("-INT");
    let o = child.wait_with_output();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(130), "{text}");
    let nodes = bed.cluster_state().nodes;
    assert_eq!(nodes["w1"].kubelet_version, "v1.32.9", "the half-done node was finished: {text}");
    assert_eq!(nodes["w2"].kubelet_version, "v1.32.9", "the running host finished: {text}");
    assert_eq!(nodes["w3"].kubelet_version, "v1.31.4", "nothing new started: {text}");
    assert!(nodes.values().all(|n| !n.unschedulable), "{text}");

    // The next run finishes w3 only: apply, with the inventory at the release the control plane
    // has, sees the node behind it and runs the upgrade.
    bed.clear_faults("w2").unwrap();
    let inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    std::fs::write(
        bed.inventory_path(),
        inventory.replacen("kubernetesVersion: 1.31.4", "kubernetesVersion: 1.32.9", 1),
    )
    .unwrap();
    let since = events_now(&bed);
    let o = kubewright(&bed, state.path(), &["apply", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(
        output_text(&o).contains(
            "Node(s) w3 are behind the cluster's 1.32.9 (an upgrade did not finish): this apply is the upgrade"
        ),
        "{}",
        output_text(&o)
    );
    assert!(kubelet_versions(&bed).iter().all(|(_, v)| v == "v1.32.9"));
    let drained: Vec<String> =
        bed.cluster_state().events[since..].iter().filter(|e| e.what == "drain").map(|e| e.node.clone()).collect();
    assert_eq!(drained, ["w3"], "finished nodes are not upgraded again");
}

/// Issue 18: a node an admin cordoned before the upgrade is upgraded and stays cordoned; the
/// others are uncordoned as usual (kubewright marks the cordons it makes).
#[test]
fn a_node_an_admin_cordoned_stays_cordoned_after_the_upgrade() {
    let Some((bed, state)) = installed(1, 2, "1.31.4", "    maxUnavailable: 1\n") else { return };
    let cordon = bed.exec("cp1", "kubectl --kubeconfig /etc/kubernetes/admin.conf cordon w1").unwrap();
    assert!(cordon.status.success(), "{cordon:?}");
    let plan = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--dry-run"]);
    assert!(
        output_text(&plan).contains("w1 was cordoned before this run (not by kubewright): it stays cordoned"),
        "{}",
        output_text(&plan)
    );
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes", "-o", "json"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    let nodes = bed.cluster_state().nodes;
    assert!(nodes.values().all(|n| n.kubelet_version == "v1.32.9"), "{nodes:?}");
    assert!(nodes["w1"].unschedulable, "the admin's cordon is kept: {text}");
    assert!(!nodes["w2"].unschedulable && !nodes["cp1"].unschedulable, "{nodes:?}");
    assert!(
        nodes.values().all(|n| !n.annotations.contains_key("kubewright.io/cordoned")),
        "no mark is left: {nodes:?}"
    );
    let report = json(&o);
    let w1 = report["nodes"].as_array().unwrap().iter().find(|n| n["node"] == "w1").unwrap().clone();
    assert_eq!(w1["cordoned"], true, "{report}");
}

/// Issue 18: Ctrl-C twice while `kubeadm upgrade apply` hangs: the run exits 130, and only after
/// kubeadm was stopped on the host (its process group, in a session of its own there) is the
/// lock released; the next run finishes the upgrade. Before, the second Ctrl-C only dropped the
/// local future: kubeadm went on running behind a released lock.
#[test]
fn ctrl_c_twice_during_a_hung_kubeadm_upgrade_apply_stops_it_on_the_host_and_the_next_run_finishes() {
    use kubewright_testbed::faults::{Fault, FaultAction};
    let Some((bed, state)) = installed(1, 1, "1.31.4", "    maxUnavailable: 1\n") else { return };
    let hang = Fault {
        command_prefix: "kubeadm upgrade apply".into(),
        action: FaultAction::Hang { seconds: 300 },
        fired: false,
    };
    bed.add_fault("cp1", hang).unwrap();
    let running =
        |bed: &Testbed| bed.exec("cp1", "pgrep -f '^kubeadm upgrade apply' >/dev/null").unwrap().status.success();
    let child = common::Background::spawn(&mut command(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]));
    common::wait_for_command(&bed, "cp1", "kubeadm upgrade apply", std::time::Duration::from_secs(180));
    for _ in 0..2 {
        child.signal("-INT");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let started = std::time::Instant::now();
    let o = child.wait_with_output();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(130), "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "the abort is bounded: {text}");
    assert!(!running(&bed), "no kubeadm of the run is left on the host: {text}");
    let status = kubewright(&bed, state.path(), &["lock", "status"]);
    assert!(output_text(&status).contains("cp1: free"), "released once nothing runs: {}", output_text(&status));
    bed.clear_faults("cp1").unwrap();
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(kubelet_versions(&bed).iter().all(|(_, v)| v == "v1.32.9"), "{:?}", kubelet_versions(&bed));
}
