//! Cells of the fault matrix (docs/reliability.md) that install_faults.rs, certs.rs, upgrade.rs
//! and the transport tests do not already hold: SIGTERM to kubewright mid-install, a disk that
//! fills while a file is written, kubeadm failing mid-upgrade on the first control plane. Each cell: the exit code and message name what happened
//! (host and step for a host's fault), no half-written file is left, the lock is free and the
//! journal resumable, and the next run converges (its plan then has nothing to do).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kubewright_testbed::faults::{Fault, FaultAction};
use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{bed_command, on_bed as kubewright, output_text};

fn bed() -> Option<(Testbed, tempfile::TempDir)> {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 2;
    Some((Testbed::up_or_skip(opts)?, tempfile::tempdir().unwrap()))
}

/// The lock is free on every control plane, and the next apply converges.
fn converges(bed: &Testbed, state: &std::path::Path) {
    let o = kubewright(bed, state, &["lock", "status"]);
    let text = output_text(&o);
    assert!(text.contains("cp1: free") && text.contains("cp2: free"), "{text}");
    let o = kubewright(bed, state, &["apply", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert_eq!(cluster.nodes.keys().collect::<Vec<_>>(), ["cp1", "cp2", "w1"]);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
    let o = kubewright(bed, state, &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "converged: {}", output_text(&o));
}

#[test]
fn sigterm_mid_install_lets_running_commands_finish_and_the_next_apply_resumes() {
    let Some((bed, state)) = bed() else { return };
    // kubeadm init held 3 s, so that the signal lands while it runs.
    let hold = Fault { command_prefix: "kubeadm init".into(), action: FaultAction::Hang { seconds: 3 }, fired: false };
    bed.add_fault("cp1", hold).unwrap();
    let child = bed_command(&bed, state.path(), &["apply", "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bed.exec("cp1", "pgrep -f '^kubeadm init' >/dev/null").unwrap().status.success() {
        assert!(Instant::now() < deadline, "kubeadm init never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let o = child.wait_with_output().unwrap();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(130), "{text}");
    assert!(text.contains("interrupted; the journal (") && text.contains("the same command again continues"), "{text}");
    // The running command finished (cp1 initialised); nothing after it started.
    let cluster = bed.cluster_state();
    assert!(cluster.initialized, "{text}");
    assert!(!cluster.nodes.contains_key("w1"), "{text}");
    bed.clear_faults("cp1").unwrap();
    converges(&bed, state.path());
}

#[test]
fn a_disk_that_fills_while_a_file_is_written_leaves_no_partial_file() {
    let Some((bed, state)) = bed() else { return };
    // w1's /etc/containerd is a 16 KiB file system, already full.
    let fill = "mkdir -p /etc/containerd && mount -t tmpfs -o size=16k tmpfs /etc/containerd && (dd if=/dev/zero of=/etc/containerd/filler bs=1k count=64 2>/dev/null; true)";
    assert!(bed.exec("w1", fill).unwrap().status.success());
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-o", "json"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let report = common::json_events(&o).pop().unwrap();
    assert_eq!(
        (report["failures"][0]["host"].as_str(), report["failures"][0]["step"].as_str()),
        (Some("w1"), Some("configure-containerd")),
        "{report}"
    );
    let message = report["failures"][0].to_string();
    assert!(message.contains("No space left on device"), "{message}");
    let o = bed.exec("w1", "ls -A /etc/containerd").unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "filler", "no half-written or temporary file");
    // The other hosts finished the step; the disk gets space again.
    assert!(bed.exec("w1", "umount /etc/containerd").unwrap().status.success());
    converges(&bed, state.path());
}

#[test]
fn kubeadm_failing_mid_upgrade_stops_the_upgrade_uncordons_and_the_next_run_finishes_it() {
    let Some((bed, state)) = bed() else { return };
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));
    // kubeadm's own words when a static pod does not come back (it rolls its manifests back).
    let fails = Fault {
        command_prefix: "kubeadm upgrade apply".into(),
        action: FaultAction::FailOnce {
            code: 1,
            stderr: "[upgrade/apply] FATAL: couldn't upgrade control plane. kubeadm has tried to recover everything into the earlier state. Errors faced: timed out waiting for the condition\n".into(),
        },
        fired: false,
    };
    bed.add_fault("cp1", fails).unwrap();
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes", "-o", "json"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let report = common::json_events(&o).pop().unwrap();
    let failure = &report["run"]["failures"][0];
    assert_eq!(failure["host"], "cp1", "{report}");
    assert_eq!(failure["step"], "upgrade-control-plane@1.32.9", "{report}");
    assert!(failure["stderr_tail"].to_string().contains("couldn't upgrade control plane"), "{failure}");
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| !n.unschedulable), "no node left cordoned: {:?}", cluster.nodes);
    assert!(cluster.nodes.values().all(|n| n.kubelet_version == "v1.31.4"), "nothing moved: {:?}", cluster.nodes);
    let o = kubewright(&bed, state.path(), &["lock", "status"]);
    assert!(output_text(&o).contains("cp1: free"), "{}", output_text(&o));

    // kubeadm behaves again: the same command finishes the upgrade.
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| n.kubelet_version == "v1.32.9" && !n.unschedulable), "{:?}", cluster.nodes);
}
