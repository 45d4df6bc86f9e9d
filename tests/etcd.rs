//! `kubewright etcd snapshot` on the test bed: the snapshot and the PKI backup on the bastion,
//! rotated, and the copies kept on the first control plane pruned to `keepBackups`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{on_bed as kubewright, output_text};

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
    let snapshot = std::fs::read(backups.join("etcd-snapshot.db")).unwrap();
    assert!(snapshot.starts_with(b"KUBEWRIGHT-SIM-ETCD-SNAPSHOT"), "the simulator's snapshot format");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(backups.join("etcd-snapshot.db")).unwrap().permissions().mode() & 0o777, 0o600);

    // On the host: the two newest snapshots, the link to this run's, nothing half written.
    let listed = bed.exec("cp1", "cd /var/lib/kubewright/backups && ls etcd-2*.db | wc -l && ls *.part 2>/dev/null | wc -l && readlink etcd-latest.db").unwrap();
    let text = String::from_utf8_lossy(&listed.stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["2", "0"], "{text}");
    assert!(lines[2].starts_with("/var/lib/kubewright/backups/etcd-2"), "{text}");
}
