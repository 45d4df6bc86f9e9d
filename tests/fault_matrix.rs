//! Cells of the fault matrix (docs/reliability.md) that install_faults.rs, certs.rs, upgrade.rs
//! and the transport tests do not already hold. Install: SIGTERM mid-run, a disk that fills
//! while a file is written, 2 s more per round trip. Upgrade: kubeadm failing (on the first
//! control plane, on a worker), a link cut while a worker upgrades, a full disk where etcd is
//! snapshotted and under apt, 2 s more per round trip. Certificate renewal: a control plane
//! lost (sshd dead, link cut), Ctrl-C, SIGTERM, a full disk, a changed host key, a command
//! hanging past its limit, 2 s more per round trip. etcd restore: a control plane lost while
//! staging and after every control plane stopped (sshd dead, link cut each time), a full disk
//! where the snapshot is uploaded, a health check hanging past the wait's limit. Each cell: the
//! exit code and message name what happened (host and step for a host's fault), no half-written
//! file is left, the lock is free (or taken over by the next run, where the connection died)
//! and the journal resumable, and the next run converges (its plan then has nothing to do).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::time::{Duration, Instant};

use kubewright_testbed::Testbed;
use kubewright_testbed::faults::{Fault, FaultAction};

mod common;
use common::{bed_command, command_on, on_bed as kubewright, output_text};

/// A run that ended with exit 1, its first failure on `host` in `step`: its output and that
/// failure (an upgrade's report holds the run's under `run`).
fn failed_at(o: &std::process::Output, host: &str, step: &str) -> (String, serde_json::Value) {
    let text = output_text(o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let report = common::json_events(o).pop().unwrap();
    let run = report.get("run").unwrap_or(&report);
    let failure = run["failures"][0].clone();
    assert_eq!((failure["host"].as_str(), failure["step"].as_str()), (Some(host), Some(step)), "{report}");
    (text, failure)
}

/// What happens to a host while its command runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loss {
    /// Every sshd of the host dies (the session's processes with it).
    Sshd,
    /// The host's link goes down (the command itself goes on).
    Link,
}

/// Start kubewright with `args` on `inventory`, wait until `command` runs on `host`, take the
/// host away as `loss` says, and return what kubewright printed when it ended (the host back
/// afterwards, and `command` no longer running there: a run of `args` while it still runs is
/// refused).
fn with_host_lost_during(
    bed: &Testbed,
    state: &std::path::Path,
    inventory: &str,
    args: &[&str],
    host: &str,
    command: &str,
    loss: Loss,
) -> std::process::Output {
    // Long enough to be caught in the act; then the command runs as it would have.
    let seconds = if loss == Loss::Sshd { 30 } else { 3 };
    let hold = Fault { command_prefix: command.into(), action: FaultAction::Hang { seconds }, fired: false };
    bed.add_fault(host, hold).unwrap();
    let child = common::Background::spawn(&mut command_on(inventory, state, args));
    common::wait_for_command(bed, host, command, Duration::from_secs(60));
    match loss {
        Loss::Sshd => {
            bed.exec(host, "pkill -x sshd; rm -f /run/sshd.pid").unwrap();
        }
        Loss::Link => bed.link_down(host).unwrap(),
    }
    let o = child.wait_with_output();
    bed.clear_faults(host).unwrap();
    match loss {
        Loss::Sshd => bed.start_sshd(host).unwrap(),
        Loss::Link => bed.link_up(host).unwrap(),
    }
    bed.wait_ssh(host, Duration::from_secs(20)).unwrap();
    // A command that changes the host runs in a session of its own there and outlives its
    // sshd: the run keeps the lock, and the next run does not start another beside it. (A
    // read, a probe, goes with its connection, and the lock with the run.)
    let kept = output_text(&o).contains("the cluster lock is kept");
    match loss {
        Loss::Sshd if kept => common::a_command_left_running_refuses_the_next_run(bed, host, command, || {
            kubewright_with(inventory, state, args)
        }),
        Loss::Sshd => common::wait_until_gone(bed, host, command, Duration::from_secs(5)),
        Loss::Link => {
            common::wait_until_gone(bed, host, command, Duration::from_secs(30));
            // The rest of the lost command went on while the link was cut, and what reaches
            // out (apt fetching from the bed's mirror) waits for the network until it is back;
            // a static pod restart waits for its new containers: the next run's lock takeover
            // rightly waits for those too.
            for rest in ["apt-get", "/usr/lib/apt/methods/"] {
                common::wait_until_gone(bed, host, rest, Duration::from_secs(60));
            }
            // (The restart is an `sh -c` whose script names its parking directory; the bracket
            // keeps pgrep from finding the shell that runs it.)
            let restarting =
                || bed.exec(host, "pgrep -f '[m]anifests.kubewright-restart' >/dev/null").unwrap().status.success();
            assert!(
                common::eventually(Duration::from_secs(90), || !restarting()),
                "a static pod restart still runs on {host} after 90 s"
            );
        }
    }
    o
}

/// [`common::command_on`] run to its end.
fn kubewright_with(inventory: &str, state: &std::path::Path, args: &[&str]) -> std::process::Output {
    command_on(inventory, state, args).output().unwrap()
}

/// The bed's inventory with `cluster.timeouts` set (short limits, so a hang is seen in seconds).
fn with_timeouts(bed: &Testbed, command: &str, ready: &str) -> String {
    let timeouts = format!("  timeouts: {{command: {command}, ready: {ready}}}\n  network:\n");
    common::inventory_variant(bed, "short-timeouts.yaml", "  network:\n", &timeouts)
}

/// `kubewright etcd snapshot` on the bed: the cluster's name and where the snapshot landed.
fn snapshot_taken(bed: &Testbed, state: &std::path::Path) -> (String, std::path::PathBuf) {
    let o = kubewright(bed, state, &["etcd", "snapshot"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let name = bed.cluster_state().cluster_name;
    (name.clone(), state.join(name).join("backups/cp1/etcd-snapshot.db"))
}

/// The real etcd runs from the restored data: every control plane kept its old data aside,
/// and the members are the control planes, none left a learner.
fn assert_restored(bed: &Testbed) {
    let cluster = bed.cluster_state();
    let control_planes: Vec<String> =
        cluster.nodes.iter().filter(|(_, n)| n.control_plane).map(|(name, _)| name.clone()).collect();
    let members = bed.etcd_members().unwrap();
    assert_eq!((members.names, members.learners), (control_planes.clone(), 0));
    for cp in &control_planes {
        let o = bed.exec(cp, "ls -d /var/lib/etcd/member.before-restore-* | wc -l").unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "1", "{cp}: the data from before the restore kept");
    }
}

/// The bed's own inventory, for the helpers that take one.
fn bed_inventory(bed: &Testbed) -> String {
    bed.inventory_path().display().to_string()
}

/// No process whose command line starts with `command` runs on `host` or in its containers.
#[track_caller]
fn assert_not_running(bed: &Testbed, host: &str, command: &str) {
    let pattern = kubewright::script::quote(&common::command_pattern(command));
    let o = bed.exec(host, &format!("pgrep -af {pattern}")).unwrap();
    assert!(!o.status.success(), "{host} still runs: {}", String::from_utf8_lossy(&o.stdout));
}

/// `dir` on `host` becomes a 16 KiB file system, already full (a `filler` file in it).
fn fill_disk(bed: &Testbed, host: &str, dir: &str) {
    let fill = format!(
        "mkdir -p {dir} && mount -t tmpfs -o size=16k tmpfs {dir} && (dd if=/dev/zero of={dir}/filler bs=1k count=64 2>/dev/null; true)"
    );
    assert!(bed.exec(host, &fill).unwrap().status.success(), "{host}: {dir} filled");
}

/// Nothing but the filler is in `dir` on `host`: no half-written or temporary file.
#[track_caller]
fn assert_only_filler(bed: &Testbed, host: &str, dir: &str, what: &str) {
    let o = bed.exec(host, &format!("ls -A {dir}")).unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "filler", "{what}");
}

/// The full file system at `dir` on `host` goes: the disk has space again.
fn free_disk(bed: &Testbed, host: &str, dir: &str) {
    assert!(bed.exec(host, &format!("umount {dir}")).unwrap().status.success(), "{host}: umount {dir}");
}

/// `lock status` says the lock is free on both control planes.
#[track_caller]
fn assert_lock_free(bed: &Testbed, state: &std::path::Path) {
    assert_lock_free_on(bed, state, &["cp1", "cp2"]);
}

/// The run said it keeps the lock because a command may still run on `host`, and `lock status`
/// shows it held on both control planes.
#[track_caller]
fn assert_lock_kept_for(bed: &Testbed, state: &std::path::Path, text: &str, host: &str) {
    assert!(
        text.contains("the cluster lock is kept: a command of this run may still be running on")
            && text.contains(&format!("{host} (")),
        "{text}"
    );
    let o = kubewright(bed, state, &["lock", "status"]);
    let status = output_text(&o);
    assert!(["cp1", "cp2"].iter().all(|cp| status.contains(&format!("{cp}: locked by"))), "{status}");
}

/// `lock status` says the lock is free on each of `control_planes`.
#[track_caller]
fn assert_lock_free_on(bed: &Testbed, state: &std::path::Path, control_planes: &[&str]) {
    let o = kubewright(bed, state, &["lock", "status"]);
    let text = output_text(&o);
    assert!(control_planes.iter().all(|cp| text.contains(&format!("{cp}: free"))), "{text}");
}

/// The lock is free on every control plane, and the next apply converges.
fn converges(bed: &Testbed, state: &std::path::Path) {
    assert_lock_free(bed, state);
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
    let Some((bed, state)) = common::bed(3, 2) else { return };
    // kubeadm init held 3 s, so that the signal lands while it runs.
    let hold = Fault { command_prefix: "kubeadm init".into(), action: FaultAction::Hang { seconds: 3 }, fired: false };
    bed.add_fault("cp1", hold).unwrap();
    let child = common::Background::spawn(&mut bed_command(&bed, state.path(), &["apply", "--yes"]));
    common::wait_for_command(&bed, "cp1", "kubeadm init", Duration::from_secs(60));
    child.signal("-TERM");
    let o = child.wait_with_output();
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
    let Some((bed, state)) = common::bed(3, 2) else { return };
    // w1's /etc/containerd is a 16 KiB file system, already full.
    fill_disk(&bed, "w1", "/etc/containerd");
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-o", "json"]);
    let (_, failure) = failed_at(&o, "w1", "configure-containerd");
    let message = failure.to_string();
    assert!(message.contains("No space left on device"), "{message}");
    assert_only_filler(&bed, "w1", "/etc/containerd", "no half-written or temporary file");
    // The other hosts finished the step; the disk gets space again.
    free_disk(&bed, "w1", "/etc/containerd");
    converges(&bed, state.path());
}

#[test]
fn kubeadm_failing_mid_upgrade_stops_the_upgrade_uncordons_and_the_next_run_finishes_it() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
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
    let (_, failure) = failed_at(&o, "cp1", "upgrade-control-plane@1.32.9");
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

#[test]
fn sshd_dying_during_a_certificate_renewal_stops_it_there_and_the_next_run_finishes() {
    renewal_losing_cp2(Loss::Sshd);
}

#[test]
fn a_link_cut_during_a_certificate_renewal_stops_it_there_and_the_next_run_finishes() {
    renewal_losing_cp2(Loss::Link);
}

fn renewal_losing_cp2(loss: Loss) {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let args = ["certs", "renew", "--force", "--yes", "-o", "json"];
    let o = with_host_lost_during(&bed, state.path(), &bed_inventory(&bed), &args, "cp2", "kubeadm certs renew", loss);
    let (text, _) = failed_at(&o, "cp2", "renew-certificates");
    // The command on cp2 may still run there (its connection died with it): the lock is kept
    // on every control plane and the host named, for the next run from this machine to take
    // over once this one is gone.
    assert_lock_kept_for(&bed, state.path(), &text, "cp2");
    // The same command continues: cp1 is not renewed twice, cp2 is.
    let o = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("finished by an earlier run") && text.contains("taken over"), "{text}");
    let o = kubewright(&bed, state.path(), &["lock", "status"]);
    assert!(output_text(&o).contains("cp2: free"), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
    let o = kubewright(&bed, state.path(), &["certs", "check"]);
    assert!(o.status.success(), "{}", output_text(&o));
}

#[test]
fn sshd_dying_while_a_restore_stages_stops_nothing_and_the_same_command_continues() {
    restore_losing_cp2_while_staging(Loss::Sshd);
}

#[test]
fn a_link_cut_while_a_restore_stages_stops_nothing_and_the_same_command_continues() {
    restore_losing_cp2_while_staging(Loss::Link);
}

fn restore_losing_cp2_while_staging(loss: Loss) {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let (name, snapshot) = snapshot_taken(&bed, state.path());
    let args = ["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name, "-o", "json"];
    let o =
        with_host_lost_during(&bed, state.path(), &bed_inventory(&bed), &args, "cp2", "etcdctl snapshot restore", loss);
    let _ = failed_at(&o, "cp2", "etcd-restore-stage");
    for cp in ["cp1", "cp2"] {
        let o = bed.exec(cp, "ls /etc/kubernetes/manifests | wc -l").unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "4", "{cp}: nothing was stopped");
    }
    assert!(kubewright(&bed, state.path(), &["plan"]).status.success(), "the cluster answers");
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("resuming the unfinished run of `etcd-restore`"), "{text}");
    let cluster = bed.cluster_state();
    assert_restored(&bed);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
}

#[test]
fn a_bad_link_two_seconds_slower_per_round_trip_slows_the_install_but_it_completes() {
    let Some((mut bed, state)) = common::bed(2, 1) else { return };
    // 1 s each way: every round trip to w1 (TCP, SSH, each command) takes 2 s longer. On
    // russh, whose connect timeout (10 s) once covered the login too: six round trips of
    // handshake and authentication ran past it, and w1 was called unreachable. (The system
    // ssh, whose ConnectTimeout stops at the key exchange, passes the same cell: 92 s.)
    bed.add_latency("w1", 1000).unwrap();
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "--transport", "russh"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)) && cluster.nodes.len() == 2, "{:?}", cluster.nodes);
    // Converged (asked over a good link: the question is the install's, not the plan's).
    bed.clear_latency("w1").unwrap();
    let o = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode", "--transport", "russh"]);
    assert_eq!(o.status.code(), Some(0), "converged: {}", output_text(&o));
}

/// kubeadm's words when `kubeadm upgrade node` cannot read the kubelet's configuration.
const UPGRADE_NODE_FAILS: &str = "error execution phase kubelet-config: failed to download kubelet configuration from the cluster: Get \"https://10.0.0.11:6443/api/v1/namespaces/kube-system/configmaps/kubelet-config\": dial tcp 10.0.0.11:6443: connect: connection refused\nTo see the stack trace of this error execute with --v=5 or higher\n";

#[test]
fn a_worker_failing_kubeadm_upgrade_node_is_uncordoned_and_the_next_run_finishes_it() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let fails = Fault {
        command_prefix: "kubeadm upgrade node".into(),
        action: FaultAction::FailOnce { code: 1, stderr: UPGRADE_NODE_FAILS.into() },
        fired: false,
    };
    bed.add_fault("w1", fails).unwrap();
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes", "-o", "json"]);
    let (_, failure) = failed_at(&o, "w1", "upgrade-worker@1.32.9");
    assert!(failure["stderr_tail"].to_string().contains("error execution phase kubelet-config"), "{failure}");
    // The control planes went on; w1 is schedulable again, its kubelet not moved.
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| !n.unschedulable), "no node left cordoned: {:?}", cluster.nodes);
    assert_eq!(cluster.nodes["w1"].kubelet_version, "v1.31.4", "{:?}", cluster.nodes);
    assert!(["cp1", "cp2"].iter().all(|cp| cluster.nodes[*cp].kubelet_version == "v1.32.9"), "{:?}", cluster.nodes);
    assert_lock_free(&bed, state.path());

    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| n.kubelet_version == "v1.32.9" && !n.unschedulable), "{:?}", cluster.nodes);
}

#[test]
fn a_link_cut_while_a_worker_upgrades_stops_there_uncordons_it_and_the_next_run_finishes() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let args = ["upgrade", "--to", "1.32", "--yes", "-o", "json"];
    let o = with_host_lost_during(
        &bed,
        state.path(),
        &bed_inventory(&bed),
        &args,
        "w1",
        "kubeadm upgrade node",
        Loss::Link,
    );
    let (text, _) = failed_at(&o, "w1", "upgrade-worker@1.32.9");
    // w1 was drained, then lost: uncordoned from the first control plane all the same.
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| !n.unschedulable), "no node left cordoned: {:?}", cluster.nodes);
    // kubeadm may still run on w1: the lock stays until a run from here takes it over.
    assert_lock_kept_for(&bed, state.path(), &text, "w1");
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| n.kubelet_version == "v1.32.9" && !n.unschedulable), "{:?}", cluster.nodes);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
}

#[test]
fn a_control_plane_lost_after_the_restore_stopped_them_all_is_taken_up_by_the_same_command() {
    restore_losing_cp2_after_the_stop(Loss::Sshd);
}

#[test]
fn a_link_cut_after_the_restore_stopped_every_control_plane_is_taken_up_by_the_same_command() {
    restore_losing_cp2_after_the_stop(Loss::Link);
}

fn restore_losing_cp2_after_the_stop(loss: Loss) {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let (name, snapshot) = snapshot_taken(&bed, state.path());
    let args = ["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name, "-o", "json"];
    // The start step's health probe (the facts ask etcd with other flags): by then every
    // control plane is stopped and has the restored data.
    let probe = "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health";
    // cp1's own start waits for a quorum that cp2's lost member denies it: a short wait.
    let limited = with_timeouts(&bed, "30m", "20s");
    let o = with_host_lost_during(&bed, state.path(), &limited, &args, "cp2", probe, loss);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("the same command again"), "{text}");
    let report = common::json_events(&o).pop().unwrap();
    let failed: Vec<(String, String)> = report["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["host"].as_str().unwrap().to_string(), f["step"].as_str().unwrap().to_string()))
        .collect();
    let at = |host: &str| (host.to_string(), "etcd-restore-start".to_string());
    assert!(failed.contains(&at("cp2")), "{report}");
    // With only cp2's sshd gone its member still runs and counts: cp1 finishes. With its link
    // cut, two members and one cut off have no quorum, and cp1's API server stops serving as
    // well, unless cp1 finished before the cut.
    if loss == Loss::Sshd {
        assert!(!failed.contains(&at("cp1")), "{report}");
    }
    // cp2's API server is still parked; its etcd runs on the restored data.
    let o = bed.exec("cp2", "ls /etc/kubewright/restore/manifests").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>(),
        ["kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"]
    );
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("resuming the unfinished run of `etcd-restore`"), "{text}");
    let cluster = bed.cluster_state();
    assert_restored(&bed);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
    for cp in ["cp1", "cp2"] {
        let o = bed
            .exec(cp, "ls /etc/kubernetes/manifests | wc -l; ls -A /etc/kubewright/restore/manifests | wc -l")
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).split_whitespace().collect::<Vec<_>>(), ["4", "0"], "{cp}");
    }
    let o = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "converged: {}", output_text(&o));
}

#[test]
fn ctrl_c_during_a_certificate_renewal_finishes_the_running_host_and_the_same_command_continues() {
    renewal_interrupted_by("-INT");
}

#[test]
fn sigterm_during_a_certificate_renewal_finishes_the_running_host_and_the_same_command_continues() {
    renewal_interrupted_by("-TERM");
}

fn renewal_interrupted_by(signal: &str) {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    // cp1's renewal held 3 s, so that Ctrl-C lands while it runs; cp2 waits its turn.
    let hold =
        Fault { command_prefix: "kubeadm certs renew".into(), action: FaultAction::Hang { seconds: 3 }, fired: false };
    bed.add_fault("cp1", hold).unwrap();
    let before = bed.exec("cp2", "openssl x509 -noout -enddate -in /etc/kubernetes/pki/apiserver.crt").unwrap().stdout;
    assert!(String::from_utf8_lossy(&before).starts_with("notAfter="), "{}", String::from_utf8_lossy(&before));
    let child =
        common::Background::spawn(&mut bed_command(&bed, state.path(), &["certs", "renew", "--force", "--yes"]));
    common::wait_for_command(&bed, "cp1", "kubeadm certs renew", Duration::from_secs(60));
    child.signal(signal);
    let o = child.wait_with_output();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(130), "{text}");
    assert!(text.contains("the same command again continues"), "{text}");
    bed.clear_faults("cp1").unwrap();
    // cp2 was not started; the lock is free (the connections lived).
    let after = bed.exec("cp2", "openssl x509 -noout -enddate -in /etc/kubernetes/pki/apiserver.crt").unwrap().stdout;
    assert_eq!(before, after, "cp2 renewed after Ctrl-C: {text}");
    assert_lock_free(&bed, state.path());
    let o = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("resuming the unfinished run of `certs-renew`"), "{text}");
    let o = kubewright(&bed, state.path(), &["certs", "check"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
}

#[test]
fn a_full_disk_during_a_certificate_renewal_stops_before_renewing_and_leaves_no_partial_backup() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    // cp2's backup directory is a 16 KiB file system, already full.
    fill_disk(&bed, "cp2", "/var/lib/kubewright/backups");
    let cert = "openssl x509 -noout -enddate -in /etc/kubernetes/pki/apiserver.crt";
    let before = bed.exec("cp2", cert).unwrap().stdout;
    let o = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes", "-o", "json"]);
    let (_, failure) = failed_at(&o, "cp2", "renew-certificates");
    assert!(failure.to_string().contains("No space left on device"), "{failure}");
    assert_only_filler(&bed, "cp2", "/var/lib/kubewright/backups", "no partial backup");
    // No backup, no renewal: cp2's certificates are as they were.
    assert_eq!(bed.exec("cp2", cert).unwrap().stdout, before);
    assert_lock_free(&bed, state.path());
    free_disk(&bed, "cp2", "/var/lib/kubewright/backups");
    let o = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("resuming the unfinished run of `certs-renew`"), "{text}");
    assert_ne!(bed.exec("cp2", cert).unwrap().stdout, before, "cp2 renewed");
    let o = kubewright(&bed, state.path(), &["certs", "check"]);
    assert!(o.status.success(), "{}", output_text(&o));
}

#[test]
fn a_changed_host_key_stops_a_renewal_before_it_touches_any_host() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let impostor = common::impostor_inventory(&bed, &["cp2"]);
    let cert = "openssl x509 -noout -enddate -in /etc/kubernetes/pki/apiserver.crt";
    let before: Vec<Vec<u8>> = ["cp1", "cp2"].iter().map(|cp| bed.exec(cp, cert).unwrap().stdout).collect();
    let o = kubewright_with(&impostor, state.path(), &["certs", "renew", "--force", "--yes", "--accept-new-host-keys"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("cp2: the host key of") && text.contains("its key CHANGED"), "{text}");
    assert!(text.contains("do not connect until you know why the key changed"), "{text}");
    let after: Vec<Vec<u8>> = ["cp1", "cp2"].iter().map(|cp| bed.exec(cp, cert).unwrap().stdout).collect();
    assert_eq!(before, after, "no control plane renewed");
    assert_lock_free(&bed, state.path());
    // With the real key back, the renewal runs.
    let o = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_ne!(bed.exec("cp2", cert).unwrap().stdout, before[1], "cp2 renewed");
}

#[test]
fn a_full_disk_where_a_restore_uploads_its_snapshot_stops_nothing_and_leaves_no_partial_file() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let (name, snapshot) = snapshot_taken(&bed, state.path());
    // cp2's directory for the snapshot is a 16 KiB file system, already full.
    fill_disk(&bed, "cp2", "/var/lib/kubewright/restore");
    let args = ["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name, "-o", "json"];
    let o = kubewright(&bed, state.path(), &args);
    let (_, failure) = failed_at(&o, "cp2", "etcd-restore-stage");
    assert!(failure.to_string().contains("No space left on device"), "{failure}");
    assert_only_filler(&bed, "cp2", "/var/lib/kubewright/restore", "no partial snapshot");
    for cp in ["cp1", "cp2"] {
        let o = bed.exec(cp, "ls /etc/kubernetes/manifests | wc -l").unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "4", "{cp}: nothing was stopped");
    }
    assert_lock_free(&bed, state.path());
    free_disk(&bed, "cp2", "/var/lib/kubewright/restore");
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    let cluster = bed.cluster_state();
    assert_restored(&bed);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
}

#[test]
fn a_static_pod_restart_that_hangs_is_stopped_at_its_limit_puts_the_manifests_back_and_the_next_renewal_finishes() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let limited = with_timeouts(&bed, "10s", "1m");
    // cp1's runtime never answers while the static pods restart: the wait for their containers
    // to stop hangs, in the renewal and again in its rollback (the restart lists the API
    // server's first; the facts' etcd health asks for etcd's).
    let hang = Fault {
        command_prefix:
            "crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=kube-apiserver"
                .into(),
        action: FaultAction::Hang { seconds: 0 },
        fired: false,
    };
    bed.add_fault("cp1", hang).unwrap();
    let cert = "openssl x509 -noout -enddate -in /etc/kubernetes/pki/apiserver.crt";
    let before: Vec<Vec<u8>> = ["cp1", "cp2"].iter().map(|cp| bed.exec(cp, cert).unwrap().stdout).collect();
    let started = Instant::now();
    let o = kubewright_with(&limited, state.path(), &["certs", "renew", "--force", "--yes", "-o", "json"]);
    let (text, failure) = failed_at(&o, "cp1", "renew-certificates");
    assert!(started.elapsed() < Duration::from_secs(120), "stopped at the limit, not hung: {text}");
    // The rollback's own restart hangs the same way: stopped too, and said.
    let message = failure["message"].as_str().unwrap();
    assert!(message.starts_with("timed out after 10s; putting the host back failed too"), "{failure}");
    assert!(failure["hint"].as_str().unwrap().contains("cluster.timeouts.command"), "{failure}");
    // The host stopped the script, whose trap put the manifests back; the rollback put the
    // old certificates back; nothing of it still runs, and cp2 was not touched.
    bed.clear_faults("cp1").unwrap();
    assert_not_running(&bed, "cp1", "crictl");
    let o = bed
        .exec("cp1", "ls /etc/kubernetes/manifests; ls -d /etc/kubernetes/manifests.kubewright-restart 2>&1")
        .unwrap();
    let listed = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    for manifest in ["etcd.yaml", "kube-apiserver.yaml", "kube-controller-manager.yaml", "kube-scheduler.yaml"] {
        assert!(listed.contains(manifest), "{manifest} not back: {listed}");
    }
    assert!(listed.contains("No such file"), "the restart's directory is gone: {listed}");
    let after: Vec<Vec<u8>> = ["cp1", "cp2"].iter().map(|cp| bed.exec(cp, cert).unwrap().stdout).collect();
    assert_eq!(before, after, "cp1 has its backup back, cp2 is untouched: {text}");
    assert_lock_free(&bed, state.path());
    // The runtime answers again: the same command renews both.
    let o = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    for (cp, before) in ["cp1", "cp2"].iter().zip(&before) {
        assert_ne!(&bed.exec(cp, cert).unwrap().stdout, before, "{cp} renewed");
    }
    let o = kubewright(&bed, state.path(), &["certs", "check"]);
    assert!(o.status.success(), "{}", output_text(&o));
}

#[test]
fn an_etcd_health_check_that_hangs_after_the_restore_stopped_everything_gives_up_at_its_limit_and_the_same_command_continues()
 {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let (name, snapshot) = snapshot_taken(&bed, state.path());
    let limited = with_timeouts(&bed, "30m", "20s");
    // cp1's restored member is asked whether it is healthy, and etcdctl never answers (the
    // facts' own etcdctl call, with its dial and command timeouts, is another command line).
    let probe = "etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt --key=/etc/kubernetes/pki/etcd/healthcheck-client.key endpoint health";
    bed.add_fault(
        "cp1",
        Fault { command_prefix: probe.into(), action: FaultAction::Hang { seconds: 0 }, fired: false },
    )
    .unwrap();
    let started = Instant::now();
    let args = ["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name, "-o", "json"];
    let o = kubewright_with(&limited, state.path(), &args);
    let (text, failure) = failed_at(&o, "cp1", "etcd-restore-start");
    assert!(started.elapsed() < Duration::from_secs(150), "gave up at the limit: {text}");
    let message = failure["message"].as_str().unwrap();
    // The hanging check is stopped at what is left of the 20 s (the real member's container
    // takes a moment to start after the restore, and the checks before it answer "not yet").
    assert!(message.starts_with("not yet after 20s") && message.contains("gave no answer within"), "{failure}");
    assert!(failure["hint"].as_str().unwrap().contains("cluster.timeouts.ready"), "{failure}");
    bed.clear_faults("cp1").unwrap();
    assert_not_running(&bed, "cp1", "etcdctl");
    // cp1's API server stays parked: it starts only on a member that answers healthy.
    let o = bed.exec("cp1", "test -f /etc/kubernetes/manifests/kube-apiserver.yaml").unwrap();
    assert!(!o.status.success(), "cp1: the API server came back on a member not known healthy");
    assert_lock_free(&bed, state.path());
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    let cluster = bed.cluster_state();
    assert_restored(&bed);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
    let o = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "converged: {}", output_text(&o));
}

#[test]
fn a_full_disk_where_the_upgrade_snapshots_etcd_stops_it_before_any_node_and_leaves_no_partial_snapshot() {
    // The snapshot script's trap removes the `.part` etcdctl left.
    upgrade_stopped_by_a_full_disk(
        "/var/lib/kubewright/backups",
        "etcd-snapshot@1.32.9",
        "No space left on device",
        &[],
        |_| {},
    );
}

#[test]
fn a_full_disk_under_apt_stops_the_upgrade_before_the_first_drain_and_the_same_command_finishes_it() {
    // apt fails the download before dpkg changes anything. (apt's free-space check counts
    // whole blocks, apt-private-download.cc: the bed's packages are a few hundred bytes, so it
    // is the write that fails here; kubeadm's real 10 MB package trips the check first, "You
    // don't have enough free space in /var/cache/apt/archives/.".) apt's own lock and download
    // directory stay, as they do on any host that ran apt.
    let error = "Error writing to file - write (28: No space left on device)";
    upgrade_stopped_by_a_full_disk(
        "/var/cache/apt/archives",
        "upgrade-control-plane@1.32.9",
        error,
        &["lock", "partial"],
        |bed| {
            let o = bed.exec("cp1", "dpkg-query -W -f='${Version}' kubeadm").unwrap();
            assert!(String::from_utf8_lossy(&o.stdout).starts_with("1.31.4"), "{}", String::from_utf8_lossy(&o.stdout));
        },
    );
}

/// cp1's `dir` full: the upgrade fails at `step` with `error`, leaves nothing in `dir` but the
/// filler and what the tool always keeps there (`kept`), moves and cordons no node (`also`
/// checks more while the disk is full); with space again the same command finishes it.
fn upgrade_stopped_by_a_full_disk(dir: &str, step: &str, error: &str, kept: &[&str], also: impl Fn(&Testbed)) {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    fill_disk(&bed, "cp1", dir);
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes", "-o", "json"]);
    let (_, failure) = failed_at(&o, "cp1", step);
    assert!(failure["stderr_tail"].to_string().contains(error), "{failure}");
    let o = bed.exec("cp1", &format!("ls -A {dir}")).unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter(|f| !kept.contains(f))
        .map(str::to_string)
        .collect();
    assert_eq!(left, ["filler"], "no partial file in {dir}");
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| n.kubelet_version == "v1.31.4" && !n.unschedulable), "{:?}", cluster.nodes);
    also(&bed);
    assert_lock_free(&bed, state.path());
    free_disk(&bed, "cp1", dir);
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| n.kubelet_version == "v1.32.9" && !n.unschedulable), "{:?}", cluster.nodes);
}

#[test]
fn a_bad_link_two_seconds_slower_per_round_trip_slows_a_renewal_but_it_completes() {
    let Some((mut bed, state)) = common::installed(2, 1) else { return };
    let cert = "openssl x509 -noout -enddate -in /etc/kubernetes/pki/apiserver.crt";
    let before = bed.exec("cp1", cert).unwrap().stdout;
    // 1 s each way to the only control plane, on the system ssh (the install's cell runs russh):
    // every command of the renewal, its waits' attempts and the backup's fetch pay it.
    bed.add_latency("cp1", 1000).unwrap();
    let o = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes", "--transport", "openssh"]);
    let text = output_text(&o);
    bed.clear_latency("cp1").unwrap();
    assert!(o.status.success(), "{text}");
    assert_ne!(bed.exec("cp1", cert).unwrap().stdout, before, "cp1 renewed: {text}");
    assert_lock_free_on(&bed, state.path(), &["cp1"]);
    let o = kubewright(&bed, state.path(), &["certs", "check"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
}

#[test]
fn a_bad_link_two_seconds_slower_per_round_trip_slows_an_upgrade_but_it_completes() {
    let Some((mut bed, state)) = common::installed(2, 1) else { return };
    // 1 s each way to the worker: its package and kubeadm commands pay it, its drain and wait
    // run on the control plane over a good link.
    bed.add_latency("w1", 1000).unwrap();
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    let text = output_text(&o);
    bed.clear_latency("w1").unwrap();
    assert!(o.status.success(), "{text}");
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.values().all(|n| n.kubelet_version == "v1.32.9" && !n.unschedulable), "{:?}", cluster.nodes);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
    assert_lock_free_on(&bed, state.path(), &["cp1"]);
}

/// The lock's holder for the cells below: this test's own process, alive on this machine, so no
/// run can take its lock over.
type HeldLock = (
    tokio::runtime::Runtime,
    kubewright::ssh::Connector,
    Vec<kubewright::ssh::Session>,
    kubewright::exec::lock::Holder,
);

fn hold_the_lock(bed: &Testbed, hosts: &[&str]) -> HeldLock {
    use kubewright::exec::lock;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let inv = kubewright::inventory::load("bed.yaml", &std::fs::read_to_string(bed.inventory_path()).unwrap())
        .unwrap()
        .inventory;
    let connector = kubewright::ssh::Connector::new(kubewright::ssh::TransportKind::Openssh).unwrap();
    let holder = lock::Holder::this_process("admin-run", "kubewright upgrade (another admin)", 0);
    let sessions = rt.block_on(async {
        let mut sessions = Vec::new();
        for h in hosts {
            let host = inv.host(h).unwrap();
            sessions.push(connector.connect(kubewright::ssh::Target::from_inventory(&inv, host, false)).await.unwrap());
        }
        lock::acquire(&sessions, &holder).await.unwrap();
        sessions
    });
    (rt, connector, sessions, holder)
}

/// Issue 18 (the lock and host-key rows of the matrix, for every job): a live run's lock
/// refuses upgrade, renewal, restore, removal and reset, and a changed host key refuses them
/// too, each before it changes anything anywhere, with the journal untouched.
#[test]
fn a_held_lock_or_a_changed_host_key_refuses_every_job_before_it_changes_anything() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let (name, snapshot) = snapshot_taken(&bed, state.path());
    let snapshot = snapshot.to_str().unwrap().to_string();
    let journal = || {
        std::fs::read_dir(state.path())
            .unwrap()
            .flatten()
            .next()
            .and_then(|d| std::fs::read_to_string(d.path().join("journal.jsonl")).ok())
    };
    let jobs: Vec<Vec<&str>> = vec![
        vec!["upgrade", "--to", "1.32", "--yes"],
        vec!["certs", "renew", "--force", "--yes"],
        vec!["etcd", "restore", &snapshot, "--confirm", &name],
        vec!["remove-node", "w1", "--yes"],
        vec!["reset", "--confirm", &name],
        vec!["apply", "--yes"],
    ];
    let events = bed.cluster_state().events.len();
    let journal_before = journal();
    let (rt, _connector, sessions, holder) = hold_the_lock(&bed, &["cp1", "cp2"]);
    for job in &jobs {
        let o = kubewright(&bed, state.path(), job);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{job:?}: {text}");
        assert!(text.contains("locked by another run: `kubewright upgrade (another admin)`"), "{job:?}: {text}");
    }
    assert_eq!(bed.cluster_state().events.len(), events, "nothing happened in the cluster");
    assert_eq!(journal(), journal_before, "a refused run writes nothing into the journal");
    rt.block_on(async {
        assert!(kubewright::exec::lock::release(&sessions, &holder).await.iter().all(|(_, r)| r.is_ok()));
        for s in sessions {
            s.close().await;
        }
    });
    let impostor = common::impostor_inventory(&bed, &["cp2"]);
    for job in &jobs {
        let o = kubewright_with(&impostor, state.path(), job);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(1), "{job:?}: {text}");
        assert!(text.contains("cp2: the host key of") && text.contains("its key CHANGED"), "{job:?}: {text}");
    }
    assert_eq!(bed.cluster_state().events.len(), events, "nothing happened in the cluster");
    assert_eq!(journal(), journal_before);
    assert_lock_free(&bed, state.path());
}

/// Issue 18 (the SIGTERM row): SIGTERM during an upgrade lets the running node finish, starts
/// nothing new, and the same command finishes the rest.
#[test]
fn sigterm_during_an_upgrade_finishes_the_running_node_and_the_same_command_continues() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let hold =
        Fault { command_prefix: "kubeadm upgrade node".into(), action: FaultAction::Hang { seconds: 3 }, fired: false };
    bed.add_fault("cp2", hold).unwrap();
    let child = common::Background::spawn(&mut bed_command(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]));
    common::wait_for_command(&bed, "cp2", "kubeadm upgrade node", Duration::from_secs(180));
    child.signal("-TERM");
    let o = child.wait_with_output();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(130), "{text}");
    let nodes = bed.cluster_state().nodes;
    assert_eq!(nodes["cp2"].kubelet_version, "v1.32.9", "the running node finished: {text}");
    assert_eq!(nodes["w1"].kubelet_version, "v1.31.4", "nothing new started: {text}");
    assert!(nodes.values().all(|n| !n.unschedulable), "{nodes:?}");
    assert_lock_free(&bed, state.path());
    bed.clear_faults("cp2").unwrap();
    let o = kubewright(&bed, state.path(), &["upgrade", "--to", "1.32", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(bed.cluster_state().nodes.values().all(|n| n.kubelet_version == "v1.32.9"));
}

/// Issue 18 (the SIGTERM row): SIGTERM once every control plane is stopped for a restore: the
/// step that runs finishes everywhere, and the same command continues from there.
#[test]
fn sigterm_during_a_restore_finishes_the_running_step_and_the_same_command_continues() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let (name, snapshot) = snapshot_taken(&bed, state.path());
    let hold = Fault {
        command_prefix: "crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=kube-apiserver".into(),
        action: FaultAction::Hang { seconds: 4 },
        fired: false,
    };
    bed.add_fault("cp2", hold).unwrap();
    let child = common::Background::spawn(&mut bed_command(
        &bed,
        state.path(),
        &["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name],
    ));
    let parked = |cp: &str| {
        bed.exec(cp, "test -f /etc/kubewright/restore/manifests/kube-apiserver.yaml").unwrap().status.success()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while !parked("cp1") {
        assert!(Instant::now() < deadline, "the restore never stopped cp1");
        std::thread::sleep(Duration::from_millis(100));
    }
    child.signal("-TERM");
    let o = child.wait_with_output();
    assert_eq!(o.status.code(), Some(130), "{}", output_text(&o));
    assert!(["cp1", "cp2"].iter().all(|cp| parked(cp)), "the step that ran finished everywhere");
    assert_lock_free(&bed, state.path());
    bed.clear_faults("cp2").unwrap();
    let o = kubewright(&bed, state.path(), &["etcd", "restore", snapshot.to_str().unwrap(), "--confirm", &name]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("resuming the unfinished run of `etcd-restore`"), "{text}");
    assert!(!["cp1", "cp2"].iter().any(|cp| parked(cp)), "every manifest back");
}
