//! `kubewright apply` running playbooks through the executor on the test bed: steps in order,
//! rollouts, the journal and resume, the lock, Ctrl-C, failures named by host and step, and
//! secrets that appear nowhere. Scenarios that touch the network run once per transport.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubewright_testbed::{Testbed, TestbedOptions, on_both_transports};

struct Fixture {
    bed: Testbed,
    /// The bastion's state directory of this test (journal), private to it.
    state: tempfile::TempDir,
    transport: &'static str,
}

impl Fixture {
    fn new(hosts: usize, transport: &'static str) -> Option<Fixture> {
        let bed = Testbed::up_or_skip(TestbedOptions::new(hosts))?;
        Some(Fixture { bed, state: tempfile::tempdir().unwrap(), transport })
    }

    fn playbook(&self, name: &str, text: &str) -> PathBuf {
        let path = self.bed.dir().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn cmd(&self, playbook: &Path, extra: &[&str]) -> Command {
        self.cmd_on(&self.bed.inventory_path(), playbook, extra)
    }

    fn cmd_on(&self, inventory: &Path, playbook: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubewright"));
        cmd.args(["apply", "-i"])
            .arg(inventory)
            .arg("--playbook")
            .arg(playbook)
            .args(extra)
            .env("NO_COLOR", "1")
            .env("KUBEWRIGHT_TRANSPORT", self.transport)
            .env("KUBEWRIGHT_STATE_DIR", self.state.path())
            .stdin(Stdio::null());
        cmd
    }

    fn apply(&self, playbook: &Path, extra: &[&str]) -> Output {
        self.cmd(playbook, extra).output().unwrap()
    }

    fn sh(&self, host: &str, script: &str) -> String {
        String::from_utf8_lossy(&self.bed.exec(host, script).unwrap().stdout).into_owned()
    }
}

mod common;
use common::{json_events as events, output_text as text};

const THREE_STEPS: &str = r#"
name: maintenance
steps:
  - action: shell
    id: first
    hosts: all
    commands: ["echo first >> /tmp/log"]
  - action: shell
    id: second
    hosts: all
    commands: ["echo second >> /tmp/log", "test ! -e /tmp/break"]
  - action: shell
    id: third
    hosts: all
    commands: ["echo third >> /tmp/log"]
"#;

fn a_failure_stops_the_run_and_the_next_apply_continues(transport: &'static str) {
    let Some(f) = Fixture::new(3, transport) else { return };
    let pb = f.playbook("pb.yaml", THREE_STEPS);
    f.sh("w1", "touch /tmp/break; echo oops-on-stderr >&2");
    let o = f.apply(&pb, &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    // The error names host, step, command, exit code and the stderr tail.
    assert!(out.contains("error: w1 failed in step `second`: exited with 1"), "{out}");
    assert!(out.contains("command: test ! -e /tmp/break"), "{out}");
    assert!(out.contains("exit code: 1"), "{out}");
    assert!(out.contains("steps not run: third"), "{out}");
    // The other hosts finished the step; nobody started the third.
    assert_eq!(f.sh("cp1", "cat /tmp/log"), "first\nsecond\n");
    assert_eq!(f.sh("w1", "cat /tmp/log"), "first\nsecond\n");

    // Fixed: the next apply says it resumes and runs only what is left.
    f.sh("w1", "rm /tmp/break");
    let o = f.apply(&pb, &["--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("resuming the unfinished run of `maintenance`: 5 host steps already done"),
        "{}",
        text(&o)
    );
    assert_eq!(f.sh("cp1", "cat /tmp/log"), "first\nsecond\nthird\n");
    assert_eq!(f.sh("w1", "cat /tmp/log"), "first\nsecond\nsecond\nthird\n");

    // The same is said to JSON consumers, as a note event.
    f.sh("w1", "touch /tmp/break");
    let o = f.apply(&pb, &["--yes", "--restart", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    f.sh("w1", "rm /tmp/break");
    let o = f.apply(&pb, &["--yes", "-o", "json"]);
    let notes: Vec<String> = events(&o)
        .iter()
        .filter(|e| e["event"] == "note")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    assert!(notes.iter().any(|n| n.starts_with("resuming the unfinished run")), "{notes:?}");
    f.sh("cp1", "rm /tmp/log");
    f.sh("w1", "rm /tmp/log");

    // Completed: the next apply starts from the beginning again.
    let o = f.apply(&pb, &["--yes"]);
    assert!(o.status.success() && !text(&o).contains("resuming"), "{}", text(&o));
    assert_eq!(f.sh("cp1", "cat /tmp/log"), "first\nsecond\nthird\n");
    // The lock was released each time.
    assert_eq!(f.sh("cp1", "ls /var/lib/kubewright"), "lock.mutex\n", "only the lock's mutex stays");
}

fn restart_ignores_the_journal(transport: &'static str) {
    let Some(f) = Fixture::new(1, transport) else { return };
    let pb = f.playbook("pb.yaml", THREE_STEPS);
    f.sh("cp1", "touch /tmp/break");
    assert_eq!(f.apply(&pb, &["--yes"]).status.code(), Some(1));
    f.sh("cp1", "rm /tmp/break");
    let o = f.apply(&pb, &["--yes", "--restart"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("--restart: the unfinished earlier run is abandoned"), "{}", text(&o));
    assert_eq!(f.sh("cp1", "cat /tmp/log"), "first\nsecond\nfirst\nsecond\nthird\n");
}

/// An unfinished run more than a week old is not resumed: what its journal says was done may
/// no longer be so. The run starts over, and says why.
#[test]
fn a_week_old_unfinished_run_is_started_over() {
    let Some(f) = Fixture::new(1, "russh") else { return };
    let pb = f.playbook("pb.yaml", THREE_STEPS);
    f.sh("cp1", "touch /tmp/break");
    assert_eq!(f.apply(&pb, &["--yes"]).status.code(), Some(1));
    f.sh("cp1", "rm /tmp/break");
    // Age the journal: its run started eight days ago.
    let journal = walk(f.state.path()).into_iter().find(|p| p.ends_with("journal.jsonl")).unwrap();
    let eight_days_ago =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() - 8 * 86_400;
    let text_before = std::fs::read_to_string(&journal).unwrap();
    let started: serde_json::Value = serde_json::from_str(text_before.lines().next().unwrap()).unwrap();
    let aged = text_before.replacen(started["at"].as_str().unwrap(), &kubewright::exec::rfc3339(eight_days_ago), 1);
    std::fs::write(&journal, aged).unwrap();
    let o = f.apply(&pb, &["--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("is more than a week old: starting over"), "{}", text(&o));
    assert_eq!(f.sh("cp1", "cat /tmp/log"), "first\nsecond\nfirst\nsecond\nthird\n", "the first step ran again");
}

/// The largest number of hosts running a step at once, from the JSON events.
fn max_running(evs: &[serde_json::Value], step: &str) -> usize {
    let (mut running, mut max) = (0usize, 0usize);
    for e in evs.iter().filter(|e| e["step"] == step) {
        match e["event"].as_str() {
            Some("host-started") => {
                running += 1;
                max = max.max(running);
            }
            Some("host-finished") if e["status"] != "skipped" => running -= 1,
            _ => {}
        }
    }
    max
}

#[test]
fn rollouts_bound_how_many_hosts_run_at_once() {
    let Some(f) = Fixture::new(5, "russh") else { return };
    let pb = f.playbook(
        "rollout.yaml",
        r#"
name: rollout
steps:
  - action: shell
    id: together
    hosts: all
    commands: ["sleep 0.3"]
  - action: shell
    id: in-pairs
    hosts: all
    batch: 2
    commands: ["sleep 0.3"]
  - action: shell
    id: one-by-one
    hosts: worker
    rollout: serial
    commands: ["sleep 0.2; test $(hostname) != w2"]
"#,
    );
    let o = f.apply(&pb, &["--yes", "-o", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let evs = events(&o);
    assert_eq!(max_running(&evs, "together"), 5);
    assert_eq!(max_running(&evs, "in-pairs"), 2);
    assert_eq!(max_running(&evs, "one-by-one"), 1);
    // Serial: w2 failed, so w3 and w4 never started.
    let started: Vec<&str> = evs
        .iter()
        .filter(|e| e["step"] == "one-by-one" && e["event"] == "host-started")
        .map(|e| e["host"].as_str().unwrap())
        .collect();
    assert_eq!(started, ["w1", "w2"]);
    let report = evs.last().unwrap();
    assert_eq!(report["failures"][0]["host"], "w2");
    assert_eq!(report["failures"][0]["step"], "one-by-one");
    let last_step = &report["steps"][2]["hosts"];
    assert_eq!(last_step[3][1]["status"], "not-started", "{last_step}");
}

fn secrets_reach_commands_and_no_output(transport: &'static str) {
    let Some(f) = Fixture::new(2, transport) else { return };
    let secret = "s3cr3t-Value-9c1f";
    let pb = f.playbook(
        "secret.yaml",
        r#"
name: secret
steps:
  - action: shell
    hosts: all
    secretEnv: [DB_PASSWORD]
    commands:
      - "for p in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $p; echo; done > /tmp/cmdlines"
      - "echo \"$DB_PASSWORD\" > /tmp/received; echo the password is $DB_PASSWORD; echo $DB_PASSWORD >&2"
      - "test $(hostname) = cp1 || { echo bad $DB_PASSWORD >&2; exit 4; }"
"#,
    );
    let mut all = String::new();
    for format in ["text", "json"] {
        let o = f.cmd(&pb, &["--yes", "-o", format, "-v"]).env("DB_PASSWORD", secret).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        all.push_str(&text(&o));
    }
    // The commands got it...
    assert_eq!(f.sh("cp1", "cat /tmp/received"), format!("{secret}\n"));
    // ...never on a command line on the host...
    assert!(!f.sh("w1", "cat /tmp/cmdlines").contains(secret));
    // ...and it is nowhere in what kubewright printed or wrote on the bastion.
    assert!(all.contains("the password is <redacted>"), "{all}");
    assert!(all.contains("bad <redacted>"), "the failure's stderr tail: {all}");
    assert!(!all.contains(secret), "{all}");
    for entry in walk(f.state.path()) {
        assert!(!std::fs::read_to_string(&entry).unwrap_or_default().contains(secret), "{}", entry.display());
    }
    // A missing secret is refused before any host is touched.
    f.sh("cp1", "rm /tmp/received");
    let o = f.cmd(&pb, &["--yes"]).env_remove("DB_PASSWORD").output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("the playbook's secretEnv needs $DB_PASSWORD set"), "{}", text(&o));
    assert_eq!(f.sh("cp1", "test -e /tmp/received && echo present"), "");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_held_lock_refuses_the_run_and_changes_nothing() {
    let Some(f) = Fixture::new(2, "openssh") else { return };
    let pb = f.playbook("pb.yaml", THREE_STEPS);
    f.sh(
        "cp1",
        r#"mkdir -p /var/lib/kubewright/lock && echo '{"run_id":"other","by":"ops@bastion2","pid":77,"started_at":"2026-11-22T01:00:00Z","command":"kubewright upgrade"}' > /var/lib/kubewright/lock/holder.json"#,
    );
    let o = f.apply(&pb, &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("locked by another run: `kubewright upgrade` by ops@bastion2 (pid 77)"), "{}", text(&o));
    assert!(text(&o).contains("kubewright lock break"), "{}", text(&o));
    assert_eq!(f.sh("w1", "cat /tmp/log 2>/dev/null"), "");
    // The refused run finished nothing, so it leaves nothing to resume: another playbook runs.
    f.sh("cp1", "rm -rf /var/lib/kubewright/lock");
    let other =
        f.playbook("other.yaml", "name: other\nsteps:\n  - action: shell\n    hosts: all\n    commands: [\"true\"]\n");
    let o = f.apply(&other, &["--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("resuming"), "{}", text(&o));
}

#[test]
fn without_a_terminal_apply_needs_yes_and_refuses_a_step_on_the_wrong_host() {
    let Some(f) = Fixture::new(2, "openssh") else { return };
    let pb = f.playbook("pb.yaml", THREE_STEPS);
    let o = f.apply(&pb, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("there is no terminal to confirm on"), "{}", text(&o));
    assert!(text(&o).contains("--yes"), "{}", text(&o));
    // A playbook that would bootstrap a cluster on a worker: refused before anything runs.
    let wrong = f.playbook(
        "wrong.yaml",
        "name: wrong\nsteps:\n  - action: shell\n    hosts: all\n    commands: [\"echo ran >> /tmp/log\"]\n  - action: kubeadm-init\n    hosts: worker\n",
    );
    let o = f.apply(&wrong, &["--yes"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("w1: kubeadm-init runs on the first control plane (cp1) only"), "{}", text(&o));
    for host in ["cp1", "w1"] {
        assert_eq!(f.sh(host, "cat /tmp/log 2>/dev/null"), "", "nothing ran on {host}");
    }
}

fn ctrl_c_lets_running_commands_finish_and_starts_nothing_new(transport: &'static str) {
    let Some(f) = Fixture::new(2, transport) else { return };
    let pb = f.playbook(
        "slow.yaml",
        r#"
name: slow
steps:
  - action: shell
    id: slow
    hosts: all
    commands: ["echo started > /tmp/slow; sleep 2; echo finished >> /tmp/slow"]
  - action: shell
    id: next
    hosts: all
    commands: ["touch /tmp/next"]
"#,
    );
    let child = common::Background::spawn(&mut f.cmd(&pb, &["--yes"]));
    // Interrupt once both hosts are inside the slow command.
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.sh("w1", "cat /tmp/slow 2>/dev/null").is_empty() || f.sh("cp1", "cat /tmp/slow 2>/dev/null").is_empty() {
        assert!(Instant::now() < deadline, "the slow step never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.signal("-INT");
    let o = child.wait_with_output();
    assert_eq!(o.status.code(), Some(130), "{}", text(&o));
    assert!(text(&o).contains("stopping: no new work starts"), "{}", text(&o));
    assert!(text(&o).contains("interrupted; the journal"), "{}", text(&o));
    // The running commands finished; the next step never started; the lock is gone.
    assert_eq!(f.sh("w1", "cat /tmp/slow"), "started\nfinished\n");
    assert_eq!(f.sh("w1", "test -e /tmp/next && echo ran"), "");
    assert_eq!(f.sh("cp1", "ls /var/lib/kubewright"), "lock.mutex\n", "only the lock's mutex stays");
    // The next apply continues with the step that did not run.
    let o = f.apply(&pb, &["--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 host steps already done"), "{}", text(&o));
    assert_eq!(f.sh("w1", "cat /tmp/slow; test -e /tmp/next && echo ran"), "started\nfinished\nran\n");
}

fn a_link_cut_mid_step_fails_that_host_by_name(transport: &'static str) {
    let Some(f) = Fixture::new(2, transport) else { return };
    let quick = f.bed.dir().join("quick.yaml");
    let inv = std::fs::read_to_string(f.bed.inventory_path()).unwrap();
    std::fs::write(&quick, inv.replace("ssh:\n", "ssh:\n  connectTimeout: 2s\n")).unwrap();
    let pb = f.playbook(
        "cut.yaml",
        r#"
name: cut
steps:
  - action: shell
    id: long
    hosts: all
    timeout: 3s
    commands: ["echo started > /tmp/long; sleep 1; echo done >> /tmp/long"]
"#,
    );
    let child = common::Background::spawn(&mut f.cmd_on(&quick, &pb, &["--yes"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.sh("w1", "cat /tmp/long 2>/dev/null").is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    f.bed.link_down("w1").unwrap();
    let o = child.wait_with_output();
    f.bed.link_up("w1").unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("error: w1 failed in step `long`"), "{out}");
    assert!(!out.contains("error: cp1"), "{out}");
}

fn sshd_killed_mid_step_fails_that_host_and_a_rerun_finishes(transport: &'static str) {
    let Some(f) = Fixture::new(2, transport) else { return };
    let pb = f.playbook(
        "killed.yaml",
        r#"
name: killed
steps:
  - action: shell
    id: long
    hosts: all
    commands: ["if ! test -e /tmp/long; then echo started > /tmp/long; sleep 2; fi; echo done >> /tmp/long"]
"#,
    );
    let child = common::Background::spawn(&mut f.cmd(&pb, &["--yes"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    while f.sh("w1", "cat /tmp/long 2>/dev/null").is_empty() {
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Every sshd on w1, the listener and the session carrying the command.
    f.sh("w1", "pkill -x sshd; rm -f /run/sshd.pid");
    let o = child.wait_with_output();
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("error: w1 failed in step `long`"), "{out}");
    assert!(out.contains("help: "), "{out}");
    f.bed.start_sshd("w1").unwrap();
    f.bed.wait_ssh("w1", Duration::from_secs(10)).unwrap();
    let o = f.apply(&pb, &["--yes"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("1 host steps already done"), "cp1 finished in the first run: {}", text(&o));
}

on_both_transports!(
    a_failure_stops_the_run_and_the_next_apply_continues,
    restart_ignores_the_journal,
    secrets_reach_commands_and_no_output,
    ctrl_c_lets_running_commands_finish_and_starts_nothing_new,
    a_link_cut_mid_step_fails_that_host_by_name,
    sshd_killed_mid_step_fails_that_host_and_a_rerun_finishes,
);
