//! The executor through hosts in memory (`exec::memory`): what each host is sent and in which
//! order, for every rollout, a failure, a rollback, secrets, a lost lock and an abort. No
//! network, no root; the whole file runs in a few seconds.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kubewright::exec::engine::{Engine, RunSecrets, StopSignal};
use kubewright::exec::journal::{self, Journal};
use kubewright::exec::memory::{MemoryHosts, Reply, target};
use kubewright::goal::Goal;
use kubewright::inventory::MaxUnavailable;
use kubewright::outcome::{Event, HostStatus, RunReport};
use kubewright::plan::{Action, Decision, HostPlan, Plan, PlannedStep, Summary};
use kubewright::playbook::Rollout;
use kubewright::redact::Redactor;
use kubewright::script::Script;

mod common;

fn run(description: &str, words: &[&str]) -> Action {
    Action::Run { description: description.into(), commands: Script::new().cmd(words.iter().copied()) }
}

fn step(id: &str, rollout: Rollout, hosts: &[(&str, Vec<Action>)]) -> PlannedStep {
    PlannedStep {
        id: id.into(),
        title: id.into(),
        rollout,
        command_timeout_s: 600,
        hop: None,
        key: format!("key-{id}"),
        secret_env: Vec::new(),
        hosts: hosts
            .iter()
            .map(|(h, actions)| HostPlan {
                host: h.to_string(),
                decision: Decision::Change { actions: actions.clone() },
            })
            .collect(),
    }
}

fn plan(steps: Vec<PlannedStep>) -> Plan {
    Plan {
        schema_version: kubewright::plan::PLAN_SCHEMA_VERSION,
        cluster: "test".into(),
        goal: Goal::Converge,
        playbook: "test".into(),
        kubernetes_version: "1.31.4".parse().unwrap(),
        assumed_fresh: false,
        command_timeout_s: 600,
        notes: Vec::new(),
        refusals: Vec::new(),
        node_ips: Vec::new(),
        upgrade: None,
        steps,
        summary: Summary::default(),
    }
}

/// What a run left: its report, its events, and the journal's path.
struct Ran {
    report: RunReport,
    events: Vec<Event>,
    journal: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

fn execute(hosts: &MemoryHosts, plan: &Plan, secrets: RunSecrets, stop: &StopSignal) -> Ran {
    let dir = tempfile::tempdir().unwrap();
    let journal_path = journal::path_in(dir.path());
    let journal = Mutex::new(Journal::start(&journal_path, "run-1", "test", "kubewright apply").unwrap());
    let events = Mutex::new(Vec::new());
    let on_event = |e: Event| events.lock().unwrap().push(e);
    let names: Vec<String> = plan
        .steps
        .iter()
        .flat_map(|s| s.hosts.iter().map(|h| h.host.clone()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let targets = names.iter().map(|h| (h.clone(), target(h))).collect();
    let redactor = Redactor::new(secrets.env.values().cloned().chain([secrets.bootstrap_token.clone()]));
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let report = rt.block_on(async {
        let engine = Engine::new(hosts, targets, 64, "run-1", &redactor, &on_event, stop).with_secrets(secrets);
        let report = engine.execute(plan, &journal).await;
        engine.close().await;
        report
    });
    Ran { report, events: events.into_inner().unwrap(), journal: journal_path, _dir: dir }
}

fn status<'a>(report: &'a RunReport, step: &str, host: &str) -> &'a HostStatus {
    let s = report.steps.iter().find(|s| s.id == step).unwrap_or_else(|| panic!("no step {step}: {report:?}"));
    &s.hosts.iter().find(|(h, _)| h == host).unwrap_or_else(|| panic!("no {host} in {step}")).1
}

#[test]
fn a_host_step_is_one_round_trip_and_its_commands_run_in_order() {
    let hosts = MemoryHosts::new(|_, _| Reply::ok());
    let commands = vec![run("one", &["echo", "one"]), run("two", &["echo", "two"]), run("three", &["echo", "three"])];
    let p = plan(vec![step("three", Rollout::Parallel, &[("w1", commands.clone()), ("w2", commands)])]);
    let ran = execute(&hosts, &p, RunSecrets::default(), &StopSignal::default());
    assert!(ran.report.completed(), "{:?}", ran.report);
    let w1: Vec<String> = hosts.transcript().into_iter().filter(|l| l.starts_with("w1:")).collect();
    assert_eq!(w1, ["w1: echo one", "w1: echo two", "w1: echo three"]);
    assert_eq!(hosts.round_trips(), 2, "one script per host for the whole step");
    // Each part of the batch is announced as it starts (from the script's own markers).
    let announced: Vec<&str> = ran
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Operation { host, what, .. } if host == "w1" => Some(what.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(announced, ["one", "two", "three"]);
    let journal = std::fs::read_to_string(&ran.journal).unwrap();
    assert!(
        journal.contains(r#""event":"host-done","run":"run-1","step":"three","host":"w1","key":"key-three""#),
        "{journal}"
    );
}

/// Times at which each host's command started and ended.
type Timeline = Arc<Mutex<Vec<(String, Instant, Instant)>>>;

fn timed(slow: &'static str, slow_ms: u64, fast_ms: u64) -> (MemoryHosts, Timeline) {
    let timeline: Timeline = Arc::default();
    let t = timeline.clone();
    let hosts = MemoryHosts::new(move |host, _| {
        let took = Duration::from_millis(if host == slow { slow_ms } else { fast_ms });
        let start = Instant::now();
        t.lock().unwrap().push((host.to_string(), start, start + took));
        Reply::ok().after(took)
    });
    (hosts, timeline)
}

#[test]
fn serial_runs_one_host_at_a_time_in_order() {
    let (hosts, timeline) = timed("w2", 60, 20);
    let each = |h: &'static str| (h, vec![run("work", &["work"])]);
    let p = plan(vec![step("serial", Rollout::Serial, &[each("w1"), each("w2"), each("w3")])]);
    let ran = execute(&hosts, &p, RunSecrets::default(), &StopSignal::default());
    assert!(ran.report.completed());
    assert_eq!(hosts.most_at_once(), 1);
    let order: Vec<String> = timeline.lock().unwrap().iter().map(|(h, _, _)| h.clone()).collect();
    assert_eq!(order, ["w1", "w2", "w3"]);
}

#[test]
fn a_batch_is_a_sliding_window_not_waves() {
    // Batches of 2: w1 is slow. With waves, w3 would wait for w1; in a window it starts as
    // soon as w2 is done, and never more than 2 run at once.
    let (hosts, timeline) = timed("w1", 600, 50);
    let each = |h: &'static str| (h, vec![run("work", &["work"])]);
    let p = plan(vec![step(
        "batches",
        Rollout::Batch(MaxUnavailable::Count(2)),
        &[each("w1"), each("w2"), each("w3"), each("w4"), each("w5")],
    )]);
    let ran = execute(&hosts, &p, RunSecrets::default(), &StopSignal::default());
    assert!(ran.report.completed());
    assert_eq!(hosts.most_at_once(), 2);
    let timeline = timeline.lock().unwrap();
    let (_, _, w1_end) = timeline.iter().find(|(h, _, _)| h == "w1").unwrap();
    let started_meanwhile: Vec<&str> =
        timeline.iter().filter(|(h, start, _)| h != "w1" && start < w1_end).map(|(h, _, _)| h.as_str()).collect();
    assert_eq!(started_meanwhile, ["w2", "w3", "w4", "w5"], "the others went on beside the slow host");
}

#[test]
fn a_failure_stops_new_work_names_the_command_and_skips_later_steps() {
    let hosts = MemoryHosts::new(|host, words| match (host, words.first().map(String::as_str)) {
        ("w2", Some("kubeadm")) => Reply::fail(3, "preflight\nsomething broke"),
        _ => Reply::ok(),
    });
    let each = |h: &'static str| (h, vec![run("prepare", &["true"]), run("join", &["kubeadm", "join"])]);
    let p = plan(vec![
        step("join", Rollout::Serial, &[each("w1"), each("w2"), each("w3")]),
        step("after", Rollout::Parallel, &[("w1", vec![run("x", &["x"])])]),
    ]);
    let ran = execute(&hosts, &p, RunSecrets::default(), &StopSignal::default());
    let report = &ran.report;
    assert_eq!(status(report, "join", "w1"), &HostStatus::Done);
    let HostStatus::Failed { failure } = status(report, "join", "w2") else { panic!("{report:?}") };
    assert_eq!((failure.command.as_deref(), failure.exit_code), (Some("join"), Some(3)), "the failing part is named");
    assert_eq!(failure.stderr_tail, ["preflight", "something broke"], "markers are not output");
    assert!(matches!(status(report, "join", "w3"), HostStatus::NotStarted { .. }));
    assert_eq!(report.steps_not_run, ["after"]);
    assert!(!hosts.transcript().iter().any(|l| l.starts_with("w3:")), "{:?}", hosts.transcript());
    let journal = std::fs::read_to_string(&ran.journal).unwrap();
    assert!(journal.contains(r#""host":"w1""#) && !journal.contains(r#""host":"w2""#), "only finished work: {journal}");
}

#[test]
fn a_failed_host_is_put_back_by_its_rollback_and_only_then() {
    let hosts = MemoryHosts::new(|host, words| match (host, words.first().map(String::as_str)) {
        ("cp2", Some("kubeadm")) => Reply::fail(1, "renewal failed"),
        _ => Reply::ok(),
    });
    let actions = vec![
        run("back up", &["tar", "czf", "backup"]),
        run("renew", &["kubeadm", "certs", "renew", "all"]),
        Action::Rollback {
            description: "restore the backup".into(),
            commands: Script::new().cmd(["tar", "xzf", "backup"]),
        },
    ];
    let p = plan(vec![step("renew", Rollout::Serial, &[("cp1", actions.clone()), ("cp2", actions)])]);
    let ran = execute(&hosts, &p, RunSecrets::default(), &StopSignal::default());
    let HostStatus::Failed { failure } = status(&ran.report, "renew", "cp2") else { panic!("{:?}", ran.report) };
    assert!(failure.message.ends_with("the host was put back as it was before the step"), "{}", failure.message);
    assert_eq!(
        hosts.transcript(),
        [
            "cp1: tar czf backup",
            "cp1: kubeadm certs renew all",
            "cp2: tar czf backup",
            "cp2: kubeadm certs renew all",
            "cp2: tar xzf backup"
        ],
        "cp1's rollback never ran"
    );
}

#[test]
fn secrets_reach_commands_on_stdin_and_never_the_transcript_or_output() {
    let hosts = MemoryHosts::new(|_, words| Reply::stdout(&format!("got {}\n", words.join(" "))));
    let mut s =
        step("login", Rollout::Parallel, &[("cp1", vec![run("log in", &["login", "--token-from-env", "TOKEN"])])]);
    s.secret_env = vec!["TOKEN".into()];
    let secrets =
        RunSecrets { env: BTreeMap::from([("TOKEN".to_string(), "tok-123456".to_string())]), ..Default::default() };
    let ran = execute(&hosts, &plan(vec![s]), secrets, &StopSignal::default());
    assert!(ran.report.completed());
    let transcript = hosts.transcript();
    assert_eq!(transcript, ["cp1: (secrets on stdin: TOKEN)", "cp1: login --token-from-env TOKEN"]);
    assert!(!format!("{:?}", ran.events).contains("tok-123456"));
}

#[test]
fn kubeadms_secret_file_is_written_read_and_removed_by_one_script_with_the_runs_values() {
    let inv = common::inventory("example.yaml", &[]);
    let facts = kubewright::facts::ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()));
    let mut install = common::plan_of(&inv, &Goal::Converge, &facts);
    install.steps.retain(|s| s.id == "kubeadm-init");
    let ca = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ca.crt")).unwrap();
    let hosts =
        MemoryHosts::new(move |_, words| match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["cat", "/etc/kubernetes/pki/ca.crt"] => Reply::stdout(&ca),
            ["cat", "/etc/kubernetes/admin.conf"] => Reply::stdout("apiVersion: v1\nkind: Config\nclusters: []\n"),
            _ => Reply::ok(),
        });
    let secrets = RunSecrets {
        bootstrap_token: "abcdef.0123456789abcdef".into(),
        certificate_key: "f".repeat(64),
        env: BTreeMap::new(),
    };
    let ran = execute(&hosts, &install, secrets, &StopSignal::default());
    assert!(ran.report.completed(), "{:?}", ran.report);
    let transcript = hosts.transcript();
    let at = |line: &str| {
        transcript.iter().position(|l| l == line).unwrap_or_else(|| panic!("{line} not in {transcript:#?}"))
    };
    let written = at("cp1: write /etc/kubewright/kubeadm-init.yaml (0600, from stdin, removed after use)");
    let init = at("cp1: kubeadm init --config /etc/kubewright/kubeadm-init.yaml --upload-certs");
    let removed = at("cp1: remove /etc/kubewright/kubeadm-init.yaml");
    assert!(written < init && init < removed, "{transcript:#?}");
    assert_eq!(hosts.round_trips(), 1, "written, used and removed by one script");
    let config = String::from_utf8(hosts.file("cp1", "/etc/kubewright/kubeadm-init.yaml").unwrap()).unwrap();
    assert!(config.contains("abcdef.0123456789abcdef") && !config.contains("<bootstrap-token>"), "{config}");
    assert!(transcript.contains(&"cp1: read /etc/kubernetes/pki/ca.crt".to_string()), "the CA is pinned for the joins");
}

#[test]
fn losing_the_lock_stops_new_work_after_the_running_host() {
    let stop = Arc::new(StopSignal::default());
    let s = stop.clone();
    let hosts = MemoryHosts::new(move |host, _| {
        if host == "w1" {
            s.request_because("the cluster lock could not be kept".into());
        }
        Reply::ok()
    });
    let each = |h: &'static str| (h, vec![run("work", &["work"])]);
    let p = plan(vec![
        step("one", Rollout::Serial, &[each("w1"), each("w2")]),
        step("two", Rollout::Parallel, &[each("w1")]),
    ]);
    let ran = execute(&hosts, &p, RunSecrets::default(), &stop);
    assert_eq!(status(&ran.report, "one", "w1"), &HostStatus::Done, "the running host finishes");
    assert_eq!(
        status(&ran.report, "one", "w2"),
        &HostStatus::NotStarted { reason: "the run stopped: the cluster lock could not be kept".into() }
    );
    assert_eq!(ran.report.steps_not_run, ["two"]);
    assert_eq!(stop.reason().as_deref(), Some("the cluster lock could not be kept"));
    // Not Ctrl-C: a job must not read exit 130 (its own signal) into the run's own stop.
    assert!(!ran.report.interrupted && !ran.report.completed(), "{:?}", ran.report);
    assert_eq!(ran.report.stopped_because.as_deref(), Some("the cluster lock could not be kept"));
}

#[test]
fn after_the_run_stopped_itself_the_first_signal_still_only_stops_new_work() {
    let stop = StopSignal::default();
    stop.request_because("the cluster lock could not be kept".into());
    assert!(stop.requested() && !stop.signalled());
    stop.request();
    assert!(stop.signalled() && !stop.was_aborted(), "the first Ctrl-C lets running commands finish");
    stop.request();
    assert!(stop.was_aborted(), "the second abandons them");
}

#[test]
fn an_abort_abandons_running_commands_and_then_stops_them_on_their_hosts() {
    let stop = Arc::new(StopSignal::default());
    let s = stop.clone();
    let hosts = MemoryHosts::new(move |_, words| {
        if words.first().map(String::as_str) == Some("kubeadm") {
            // Ctrl-C twice while kubeadm runs.
            s.request();
            s.request();
            return Reply::ok().after(Duration::from_secs(5));
        }
        Reply::ok()
    });
    let p = plan(vec![step(
        "upgrade",
        Rollout::Serial,
        &[("cp1", vec![run("upgrade", &["kubeadm", "upgrade", "apply"])])],
    )]);
    let dir = tempfile::tempdir().unwrap();
    let journal = Mutex::new(Journal::start(&journal::path_in(dir.path()), "run-9", "test", "x").unwrap());
    let redactor = Redactor::default();
    let quiet = |_: Event| {};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = Instant::now();
    let (report, unknown) = rt.block_on(async {
        let targets = BTreeMap::from([("cp1".to_string(), target("cp1"))]);
        let engine = Engine::new(&hosts, targets, 8, "run-9", &redactor, &quiet, &stop);
        let report = engine.execute(&p, &journal).await;
        let unknown = engine.stop_remote_commands().await;
        (report, unknown)
    });
    assert!(started.elapsed() < Duration::from_secs(4), "the abort does not wait for the command");
    assert!(report.interrupted && matches!(status(&report, "upgrade", "cp1"), HostStatus::Interrupted));
    assert!(unknown.is_empty(), "{unknown:?}");
    let last = hosts.transcript().pop().unwrap();
    assert!(
        last == "cp1: stop the commands of run run-9 (TERM, KILL after 10s)",
        "the run's commands are stopped on the host: {last}"
    );
}
