//! The install playbook with a fault in the middle of each phase: a command that fails, the
//! host's sshd killed (the session running the command with it), or the link cut while the
//! command runs. Each cell: apply stops with the host and step named, and once the fault is
//! gone the next apply converges to the whole cluster (then nothing is left to do).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kubewright_testbed::faults::{Fault, FaultAction};
use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{json_events, output_text};

/// What goes wrong while `command` (a prefix of the simulated command line) runs on the host.
#[derive(Clone, Copy)]
enum Trouble {
    /// It fails once, with kubeadm's (or apt's) words.
    FailsOnce(&'static str),
    /// Every sshd of the host dies while it runs (the session's processes with it).
    SshdKilled,
    /// The host's link goes down while it runs (the command itself goes on).
    LinkCut,
}

struct Cell {
    step: &'static str,
    host: &'static str,
    command: &'static str,
    fault: Trouble,
    transport: &'static str,
}

fn kubewright(bed: &Testbed, state: &std::path::Path, transport: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubewright"));
    c.args(args)
        .arg("-i")
        .arg(bed.inventory_path())
        .env("NO_COLOR", "1")
        .env("KUBEWRIGHT_TRANSPORT", transport)
        .env("KUBEWRIGHT_STATE_DIR", state)
        .stdin(Stdio::null());
    c
}

fn apply(bed: &Testbed, state: &std::path::Path, transport: &str) -> Output {
    kubewright(bed, state, transport, &["apply", "--yes", "-o", "json"]).output().unwrap()
}

fn run(cell: Cell) {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 2;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let state = tempfile::tempdir().unwrap();
    let action = match cell.fault {
        Trouble::FailsOnce(stderr) => FaultAction::FailOnce { code: 1, stderr: format!("{stderr}\n") },
        // Long enough to be caught in the act; then the command runs as it would have.
        Trouble::SshdKilled => FaultAction::Hang { seconds: 30 },
        Trouble::LinkCut => FaultAction::Hang { seconds: 3 },
    };
    bed.add_fault(cell.host, Fault { command_prefix: cell.command.into(), action, fired: false }).unwrap();

    let first = match cell.fault {
        Trouble::FailsOnce(_) => apply(&bed, state.path(), cell.transport),
        Trouble::SshdKilled | Trouble::LinkCut => {
            let child = common::Background::spawn(&mut kubewright(
                &bed,
                state.path(),
                cell.transport,
                &["apply", "--yes", "-o", "json"],
            ));
            common::wait_for_command(&bed, cell.host, cell.command, Duration::from_secs(60));
            match cell.fault {
                Trouble::SshdKilled => {
                    bed.exec(cell.host, "pkill -x sshd; rm -f /run/sshd.pid").unwrap();
                }
                _ => bed.link_down(cell.host).unwrap(),
            }
            child.wait_with_output()
        }
    };
    assert_eq!(first.status.code(), Some(1), "{}", output_text(&first));
    let report = json_events(&first).pop().unwrap();
    assert_eq!(report["failures"][0]["host"], cell.host, "{report}");
    assert_eq!(report["failures"][0]["step"], cell.step, "{report}");
    let failure = &report["failures"][0];
    assert!(
        !failure["message"].as_str().unwrap().is_empty() && !failure["hint"].as_str().unwrap().is_empty(),
        "{failure}"
    );

    // The fault is gone: the host is back and the commands behave.
    bed.clear_faults(cell.host).unwrap();
    match cell.fault {
        Trouble::SshdKilled => bed.start_sshd(cell.host).unwrap(),
        Trouble::LinkCut => bed.link_up(cell.host).unwrap(),
        Trouble::FailsOnce(_) => {}
    }
    bed.wait_ssh(cell.host, Duration::from_secs(20)).unwrap();
    match cell.fault {
        // The lost run's command is still held up there: the next run does not start another.
        Trouble::SshdKilled => {
            common::a_command_left_running_refuses_the_next_run(&bed, cell.host, cell.command, || {
                apply(&bed, state.path(), cell.transport)
            })
        }
        Trouble::LinkCut => common::wait_until_gone(&bed, cell.host, cell.command, Duration::from_secs(30)),
        Trouble::FailsOnce(_) => {}
    }
    let again = apply(&bed, state.path(), cell.transport);
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
    let cluster = bed.cluster_state();
    assert_eq!(cluster.nodes.keys().collect::<Vec<_>>(), ["cp1", "cp2", "w1"]);
    assert_eq!(bed.etcd_members().unwrap().names, ["cp1", "cp2"]);
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "{:?}", cluster.nodes);
    let admin = state.path().join(format!("{}/admin.conf", cluster.cluster_name));
    assert!(admin.is_file(), "the bastion has the admin kubeconfig");
    let plan = kubewright(&bed, state.path(), cell.transport, &["plan", "--detailed-exitcode"]).output().unwrap();
    assert_eq!(plan.status.code(), Some(0), "converged:\n{}", output_text(&plan));
}

#[test]
fn packages_fail_to_install() {
    run(Cell {
        step: "install-packages",
        host: "w1",
        command: "apt-get install",
        fault: Trouble::FailsOnce(
            "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (unattended-upgr)",
        ),
        transport: "openssh",
    });
}

#[test]
fn sshd_dies_while_containerd_restarts() {
    run(Cell {
        step: "configure-containerd",
        host: "cp2",
        command: "systemctl restart containerd",
        fault: Trouble::SshdKilled,
        transport: "russh",
    });
}

#[test]
fn kubeadm_init_fails() {
    run(Cell {
        step: "kubeadm-init",
        host: "cp1",
        command: "kubeadm init",
        fault: Trouble::FailsOnce(
            "error execution phase wait-control-plane: could not initialize a Kubernetes cluster\nTo see the stack trace of this error execute with --v=5 or higher",
        ),
        transport: "openssh",
    });
}

#[test]
fn sshd_dies_during_kubeadm_init() {
    run(Cell {
        step: "kubeadm-init",
        host: "cp1",
        command: "kubeadm init",
        fault: Trouble::SshdKilled,
        transport: "openssh",
    });
}

/// kubeadm init finishes on the host but its answer is lost: the next apply finds the cluster,
/// fetches the admin kubeconfig the first never got, and joins the rest.
#[test]
fn the_link_is_cut_during_kubeadm_init() {
    run(Cell {
        step: "kubeadm-init",
        host: "cp1",
        command: "kubeadm init",
        fault: Trouble::LinkCut,
        transport: "russh",
    });
}

#[test]
fn the_pod_network_fails_to_apply() {
    run(Cell {
        step: "apply-cni",
        host: "cp1",
        command: "kubectl --kubeconfig /etc/kubernetes/admin.conf apply",
        fault: Trouble::FailsOnce(
            "error: error validating \"/etc/kubewright/kube-flannel.yaml\": error validating data: failed to download openapi: the server was unable to return a response in the time allotted",
        ),
        transport: "russh",
    });
}

/// The control plane joins on the host while kubewright has lost it; the next apply finds it
/// joined and goes on.
#[test]
fn the_link_is_cut_during_a_control_plane_join() {
    run(Cell {
        step: "join-control-plane",
        host: "cp2",
        command: "kubeadm join",
        fault: Trouble::LinkCut,
        transport: "openssh",
    });
}

#[test]
fn sshd_dies_during_a_worker_join() {
    run(Cell {
        step: "join-worker",
        host: "w1",
        command: "kubeadm join",
        fault: Trouble::SshdKilled,
        transport: "russh",
    });
}

#[test]
fn a_worker_join_fails() {
    run(Cell {
        step: "join-worker",
        host: "w1",
        command: "kubeadm join",
        fault: Trouble::FailsOnce("error execution phase kubelet-start: timed out waiting for the condition"),
        transport: "openssh",
    });
}

/// Issue 18 (run-safety review item 8): the repository's signing key is checked against its
/// pinned fingerprint on the host before it reaches the keyring. The bed's mirror serves the
/// bed's own key; an inventory that pins pkgs.k8s.io's (the default) is refused at that step,
/// both fingerprints named and nothing written to the keyrings; the bed's pin installs.
#[test]
fn issue_18_a_signing_key_other_than_the_pinned_one_never_reaches_the_keyring() {
    let Some((bed, state)) = common::bed(1, 1) else { return };
    let served = kubewright_testbed::sim::REPOSITORY_KEY_FINGERPRINT;
    // Only the pin goes: the bed's mirror stays (plain http, which a pinned key allows).
    let pinned = format!("    keyFingerprint: {served}\n");
    let default_pin = common::inventory_variant(&bed, "default-pin.yaml", &pinned, "");
    let o = common::command_on(&default_pin, state.path(), &["apply", "--yes", "-o", "json"]).output().unwrap();
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    let report = json_events(&o).pop().unwrap();
    let failure = &report["failures"][0];
    assert_eq!(
        (failure["host"].as_str(), failure["step"].as_str()),
        (Some("cp1"), Some("install-packages")),
        "{report}"
    );
    let official = kubewright::inventory::PKGS_K8S_IO_KEY_FINGERPRINT;
    assert!(text.contains(&format!("has fingerprint {served}, not the pinned {official}")), "{text}");
    let keyrings = bed.exec("cp1", "ls -A /etc/apt/keyrings").unwrap();
    assert_eq!(String::from_utf8_lossy(&keyrings.stdout), "", "no keyring, no download left");

    let o = common::on_bed(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let keyring = bed.host_dir("cp1").join("upper/etc/apt/keyrings/kubernetes-apt-keyring.gpg");
    assert_eq!(std::fs::read(keyring).unwrap(), kubewright_testbed::sim::repository_keyring(), "the bed's key");
}
