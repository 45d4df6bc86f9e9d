//! The cluster lock on the test bed: one run at a time, refusals name the holder, only the
//! holder releases (on every control plane), runs starting at once have exactly one winner,
//! a dead run of this machine is taken over by exactly one run, and nothing else is (another
//! "bastion" of the same name, a live run), the heartbeat decides what `lock break` removes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kubewright::exec::lock::{self, BreakOutcome, Holder, LockError, LockState, ProcessIdentity};
use kubewright::ssh::Target;
use kubewright::ssh::openssh::OpensshTransport;
use kubewright_testbed::Testbed;

mod common;
use common::{bed_command, command_on, output_text};

const CONTROL_PLANES: [&str; 3] = ["cp1", "cp2", "cp3"];

fn target(bed: &Testbed, host: &str) -> Target {
    Target {
        name: host.to_string(),
        address: bed.host(host).ip.to_string(),
        port: 22,
        user: "root".into(),
        identity_file: Some(bed.client_key_path()),
        fallback_identity_files: Vec::new(),
        sudo: false,
        known_hosts: Some(bed.known_hosts_path()),
        bastion: None,
        connect_timeout: Duration::from_secs(5),
        server_alive_interval: Duration::from_secs(15),
        accept_new_host_keys: false,
        given: kubewright::inventory::SshGiven { user: true, port: true, sudo: true },
        ssh_config: Default::default(),
    }
}

/// Connections of one run (or one bastion) to the three control planes.
async fn connect(bed: &Testbed, control: &std::path::Path) -> Vec<OpensshTransport> {
    let mut cps = Vec::new();
    for h in CONTROL_PLANES {
        cps.push(OpensshTransport::connect(target(bed, h), control, None).await.unwrap());
    }
    cps
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

/// A run of this process (alive, on this machine).
fn live(run_id: &str) -> Holder {
    Holder::this_process(run_id, &format!("kubewright apply ({run_id})"), now())
}

/// A run of this machine that died: this machine, boot and pid namespace, its process gone.
fn dead(run_id: &str) -> Holder {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Holder { pid, ..live(run_id) }
}

/// A run on another bastion: nothing here can tell whether it lives.
fn elsewhere(run_id: &str, started_at: u64) -> Holder {
    Holder {
        run_id: run_id.into(),
        by: "admin@bastion2".into(),
        pid: 4242,
        started_at: kubewright::exec::rfc3339(started_at),
        command: format!("kubewright upgrade ({run_id})"),
        process: Some(ProcessIdentity {
            machine: Some("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into()),
            boot_id: "6a1c7f0e-0000-4000-8000-000000000000".into(),
            pid_ns: "pid:[4026531836]".into(),
            start_ticks: 1234,
            uid: 0,
        }),
    }
}

fn holder_on(states: &[(String, Result<Option<LockState>, LockError>)], host: &str) -> Option<String> {
    let (_, state) = states.iter().find(|(h, _)| h == host).unwrap();
    state.as_ref().unwrap().as_ref().map(|s| s.holder.as_ref().map_or("?".into(), |h| h.run_id.clone()))
}

fn held_by(states: &[(String, Result<Option<LockState>, LockError>)]) -> Vec<Option<String>> {
    CONTROL_PLANES.iter().map(|h| holder_on(states, h)).collect()
}

#[track_caller]
fn assert_refused_by(err: &LockError, winner: &Holder) {
    match err {
        LockError::Held { holder, .. } => {
            assert_eq!(holder.holder.as_ref().map(|h| h.run_id.as_str()), Some(winner.run_id.as_str()), "{err}")
        }
        other => panic!("not refused by {}: {other}", winner.run_id),
    }
    assert!(err.to_string().contains(&format!("locked by another run: {winner}")), "{err}");
}

fn all_ok(results: &[(String, Result<(), LockError>)]) -> bool {
    results.iter().all(|(_, r)| r.is_ok())
}

#[test]
fn one_run_at_a_time_and_only_the_holder_releases() {
    let Some((bed, _state)) = common::bed(3, 3) else { return };
    let control = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let cps = connect(&bed, control.path()).await;
        let (a, b) = (live("run-a"), live("run-b"));
        assert!(lock::acquire(&cps, &a).await.unwrap().is_empty());
        // Taking it again in the same run is fine; another run is refused, naming the holder
        // and its heartbeat.
        lock::acquire(&cps, &a).await.unwrap();
        let err = lock::acquire(&cps, &b).await.unwrap_err();
        assert_refused_by(&err, &a);
        assert!(err.to_string().contains(", heartbeat ") && err.to_string().contains("(lock on cp1)"), "{err}");
        assert!(err.hint().contains("kubewright lock break"));
        // Another run cannot release it (it hears the lock is not its own), nor refresh it.
        let released = lock::release(&cps, &b).await;
        assert!(released.iter().all(|(_, r)| matches!(r, Err(LockError::Lost { now: Some(now), .. }) if now.holder.as_ref().unwrap().run_id == "run-a")), "{released:?}");
        assert!(lock::refresh(&cps, &b).await.iter().all(|(_, r)| matches!(r, Err(LockError::Lost { .. }))));
        assert_eq!(held_by(&lock::status(&cps).await), [Some("run-a".into()), Some("run-a".into()), Some("run-a".into())]);
        assert!(all_ok(&lock::release(&cps, &a).await));
        assert_eq!(held_by(&lock::status(&cps).await), [None, None, None]);
        // Released twice: nothing left to do, fine.
        assert!(all_ok(&lock::release(&cps, &a).await));

        // All or nothing: a lock left on cp3 alone refuses the run and releases cp1 and cp2.
        let other = elsewhere("run-d", now());
        lock::acquire(&cps[2..], &other).await.unwrap();
        assert_refused_by(&lock::acquire(&cps, &live("run-e")).await.unwrap_err(), &other);
        assert_eq!(held_by(&lock::status(&cps).await), [None, None, Some("run-d".into())]);
        assert!(all_ok(&lock::release(&cps, &other).await));

        // A run of this machine that is gone (it died, or lost cp1 before releasing there) left
        // its lock: the next run takes it over and says whose it was. One whose process still
        // runs here is refused, and so is one of another bastion.
        let gone = dead("run-dead");
        lock::acquire(&cps[..1], &gone).await.unwrap();
        let g = live("run-g");
        let taken_over = lock::acquire(&cps, &g).await.unwrap();
        assert_eq!(taken_over, [("cp1".to_string(), gone)]);
        assert!(all_ok(&lock::release(&cps, &g).await));
        for holder in [live("run-alive"), elsewhere("run-far", now() - 86_400)] {
            lock::acquire(&cps[..1], &holder).await.unwrap();
            assert_refused_by(&lock::acquire(&cps, &live("run-h")).await.unwrap_err(), &holder);
            assert!(all_ok(&lock::release(&cps, &holder).await));
        }

        // An older kubewright that died between its `mkdir` and writing its holder: a lock
        // nobody can name refuses every run; nobody's release removes it.
        assert!(bed.exec("cp2", &format!("mkdir -p {}", lock::LOCK_DIR)).unwrap().status.success());
        let err = lock::acquire(&cps, &live("run-i")).await.unwrap_err();
        assert!(err.to_string().contains("locked by another run: an unreadable lock (it has no holder.json)"), "{err}");
        assert_eq!(held_by(&lock::status(&cps).await), [None, Some("?".into()), None]);
        assert!(bed.exec("cp2", &format!("rmdir {}", lock::LOCK_DIR)).unwrap().status.success());

        // The release goes to every control plane, even when the first one fails.
        let j = live("run-j");
        lock::acquire(&cps, &j).await.unwrap();
        let mutex = "/var/lib/kubewright/lock.mutex";
        assert!(bed.exec("cp1", &format!("rm {mutex} && mkdir {mutex}")).unwrap().status.success());
        let released = lock::release(&cps, &j).await;
        assert!(matches!(&released[0], (h, Err(LockError::Failed { .. })) if h == "cp1"), "{released:?}");
        assert!(released[0].1.as_ref().unwrap_err().to_string().contains("cannot release the cluster lock on cp1"));
        assert!(released[1..].iter().all(|(_, r)| r.is_ok()), "{released:?}");
        assert!(bed.exec("cp1", &format!("rmdir {mutex}")).unwrap().status.success());
        assert_eq!(held_by(&lock::status(&cps).await), [Some("run-j".into()), None, None]);
        assert!(all_ok(&lock::release(&cps, &j).await));

        // A break removes only the lock that was read: one released and taken by another run
        // in between is kept.
        let (k, l) = (elsewhere("run-k", now()), elsewhere("run-l", now()));
        lock::acquire(&cps, &k).await.unwrap();
        let seen: Vec<(String, LockState)> =
            lock::status(&cps).await.into_iter().map(|(h, s)| (h, s.unwrap().unwrap())).collect();
        assert!(all_ok(&lock::release(&cps[..1], &k).await));
        lock::acquire(&cps[..1], &l).await.unwrap();
        let broken = lock::break_lock(&cps, &seen).await;
        assert!(matches!(&broken[0], (h, Ok(BreakOutcome::Changed(Some(now)))) if h == "cp1" && now.holder.as_ref().unwrap().run_id == "run-l"), "{broken:?}");
        assert!(broken[1..].iter().all(|(_, r)| matches!(r, Ok(BreakOutcome::Removed))), "{broken:?}");
        assert_eq!(held_by(&lock::status(&cps).await), [Some("run-l".into()), None, None]);
        assert!(matches!(&lock::refresh(&cps[1..2], &k).await[0].1, Err(LockError::Lost { now: None, .. })));
        assert!(all_ok(&lock::release(&cps, &l).await));

        // Nothing is left beside the lock: no half-made lock directory, no lock moved aside.
        for host in CONTROL_PLANES {
            let o = bed.exec(host, "ls -A /var/lib/kubewright").unwrap();
            assert_eq!(String::from_utf8_lossy(&o.stdout), "lock.mutex\n", "{host}");
        }
        for t in cps {
            t.close().await;
        }
    });
}

#[test]
fn runs_taking_the_lock_at_once_have_exactly_one_winner() {
    let Some((bed, _state)) = common::bed(3, 3) else { return };
    let control = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        // Eight runs, each with its own connections as separate processes would have.
        let mut contenders = Vec::new();
        for _ in 0..8 {
            contenders.push(Arc::new(connect(&bed, control.path()).await));
        }
        let race = |runs: Vec<(Arc<Vec<OpensshTransport>>, Holder)>| async move {
            let start = Arc::new(tokio::sync::Barrier::new(runs.len()));
            let tasks: Vec<_> = runs
                .into_iter()
                .map(|(cps, holder)| {
                    let start = start.clone();
                    tokio::spawn(async move {
                        start.wait().await;
                        let result = lock::acquire(&cps[..], &holder).await;
                        (holder, result)
                    })
                })
                .collect();
            let mut results = Vec::new();
            for t in tasks {
                results.push(t.await.unwrap());
            }
            let winners: Vec<&(Holder, _)> = results.iter().filter(|(_, r)| r.is_ok()).collect();
            assert_eq!(winners.len(), 1, "{results:?}");
            let winner = winners[0].0.clone();
            for (_, r) in &results {
                if let Err(e) = r {
                    assert_refused_by(e, &winner);
                }
            }
            let taken_over = winners[0].1.as_ref().unwrap().len();
            (winner, taken_over)
        };
        let first = contenders[0].clone();
        for round in 0..20 {
            let runs =
                contenders.iter().enumerate().map(|(i, c)| (c.clone(), live(&format!("r{round}-{i}")))).collect();
            let (winner, taken_over) = race(runs).await;
            assert_eq!(taken_over, 0);
            let w = Some(winner.run_id.clone());
            assert_eq!(held_by(&lock::status(&first[..]).await), [w.clone(), w.clone(), w]);
            assert!(all_ok(&lock::release(&first[..], &winner).await));
        }
        // A dead run's lock on every control plane, two runs taking it over at once: one does.
        for round in 0..10 {
            lock::acquire(&first[..], &dead(&format!("dead-{round}"))).await.unwrap();
            let runs =
                contenders[..2].iter().enumerate().map(|(i, c)| (c.clone(), live(&format!("t{round}-{i}")))).collect();
            let (winner, taken_over) = race(runs).await;
            assert_eq!(taken_over, 3);
            let w = Some(winner.run_id.clone());
            assert_eq!(held_by(&lock::status(&first[..]).await), [w.clone(), w.clone(), w]);
            assert!(all_ok(&lock::release(&first[..], &winner).await));
        }
        for host in CONTROL_PLANES {
            let o = bed.exec(host, "ls -A /var/lib/kubewright").unwrap();
            assert_eq!(String::from_utf8_lossy(&o.stdout), "lock.mutex\n", "{host}");
        }
    });
}

fn kubewright(inventory: &str, args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    command_on(inventory, state.path(), args).output().unwrap()
}

#[test]
fn the_heartbeat_decides_what_lock_break_removes() {
    let Some((bed, _state)) = common::bed(3, 3) else { return };
    let inv = bed.inventory_path().display().to_string();
    let control = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cps = rt.block_on(connect(&bed, control.path()));
    // A run of another bastion, taken three days ago (a long upgrade), alive: it refreshes.
    let upgrade = elsewhere("run-u", now() - 3 * 86_400);
    rt.block_on(lock::acquire(&cps, &upgrade)).unwrap();
    let heartbeats = |cps: &[OpensshTransport]| -> Vec<u64> {
        rt.block_on(lock::status(cps)).into_iter().map(|(_, s)| s.unwrap().unwrap().heartbeat_at.unwrap()).collect()
    };
    let before = heartbeats(&cps);
    std::thread::sleep(Duration::from_millis(1100)); // heartbeats are stamped by the second
    assert!(all_ok(&rt.block_on(lock::refresh(&cps, &upgrade))));
    let after = heartbeats(&cps);
    assert!(after.iter().zip(&before).all(|(a, b)| a > b), "{before:?} -> {after:?}");

    let status = kubewright(&inv, &["lock", "status"]);
    let text = String::from_utf8_lossy(&status.stdout).into_owned();
    for host in CONTROL_PLANES {
        let line = format!("{host}: locked by {upgrade}, heartbeat ");
        assert!(text.lines().any(|l| l.starts_with(&line) && l.ends_with("s ago")), "{text}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&kubewright(&inv, &["lock", "status", "-o", "json"]).stdout).unwrap();
    let cp1 = &json["control_planes"][0];
    assert_eq!(cp1["holder"]["run_id"], "run-u", "{json}");
    assert_eq!(cp1["holder"]["process"]["start_ticks"], 1234, "{json}");
    assert!(cp1["heartbeat_age_s"].as_u64().unwrap() < 60 && cp1["host_now"].as_u64().unwrap() > 0, "{json}");

    // Taken long ago, refreshed seconds ago: kept, with the reason.
    assert_eq!(kubewright(&inv, &["lock", "break"]).status.code(), Some(2), "--yes is required");
    let kept = kubewright(&inv, &["lock", "break", "--yes", "--older-than", "1m"]);
    let err = output_text(&kept);
    assert_eq!(kept.status.code(), Some(2), "{err}");
    assert!(err.contains("the lock on cp1 may belong to a live run") && err.contains("younger than 1m"), "{err}");
    assert!(err.contains("--force") && err.contains("no lock was broken"), "{err}");
    assert_eq!(
        held_by(&rt.block_on(lock::status(&cps))),
        [Some("run-u".into()), Some("run-u".into()), Some("run-u".into())]
    );

    // While a run works, keep_alive refreshes its lock quietly; a control plane where it was
    // lost, or refreshes failing on a majority, are trouble (the run then stops new work).
    let troubles = || -> Vec<Vec<String>> {
        let mut seen = Vec::new();
        let alive = lock::keep_alive(&cps, &upgrade, Duration::from_millis(250), |failures| {
            seen.push(failures.iter().map(|(h, _)| h.clone()).collect());
        });
        let _ = rt.block_on(async { tokio::time::timeout(Duration::from_secs(2), alive).await });
        seen
    };
    let before = heartbeats(&cps);
    assert_eq!(troubles(), Vec::<Vec<String>>::new());
    let after = heartbeats(&cps);
    assert!(after.iter().zip(&before).all(|(a, b)| a > b), "{before:?} -> {after:?}");
    let mutex = "/var/lib/kubewright/lock.mutex";
    assert!(bed.exec("cp1", &format!("rm {mutex} && mkdir {mutex}")).unwrap().status.success());
    assert_eq!(troubles(), Vec::<Vec<String>>::new(), "one control plane of three failing is no majority");
    assert!(bed.exec("cp2", &format!("rm {mutex} && mkdir {mutex}")).unwrap().status.success());
    let majority = troubles();
    assert!(!majority.is_empty() && majority.iter().all(|t| t == &["cp1", "cp2"]), "{majority:?}");
    for host in ["cp1", "cp2"] {
        assert!(bed.exec(host, &format!("rmdir {mutex}")).unwrap().status.success());
    }
    assert!(bed.exec("cp3", &format!("mv {0} {0}.aside", lock::LOCK_DIR)).unwrap().status.success());
    let lost = troubles();
    assert!(!lost.is_empty() && lost.iter().all(|t| t == &["cp3"]), "{lost:?}");
    assert!(bed.exec("cp3", &format!("mv {0}.aside {0}", lock::LOCK_DIR)).unwrap().status.success());
    // (A refresh cut short by the end of keep_alive may still land on a host: the next lock is
    // another run's.)
    assert!(all_ok(&rt.block_on(lock::release(&cps, &upgrade))));

    // A run whose heartbeats stopped ten minutes ago (by each host's own clock): broken.
    let stopped = elsewhere("run-s", now() - 3 * 86_400);
    rt.block_on(lock::acquire(&cps, &stopped)).unwrap();
    for host in CONTROL_PLANES {
        let stale = format!("echo $(( $(date +%s) - 600 )) > {}/heartbeat", lock::LOCK_DIR);
        assert!(bed.exec(host, &stale).unwrap().status.success());
    }
    assert!(String::from_utf8_lossy(&kubewright(&inv, &["lock", "status"]).stdout).contains("heartbeat 10m"));
    let broken = kubewright(&inv, &["lock", "break", "--yes", "--older-than", "1m", "-o", "json"]);
    assert!(broken.status.success(), "{}", output_text(&broken));
    let json: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    assert_eq!(json["broken"].as_array().unwrap().len(), 3, "{json}");
    assert_eq!(json["broken"][0]["holder"]["run_id"], "run-s", "{json}");
    assert_eq!(held_by(&rt.block_on(lock::status(&cps))), [None, None, None]);
    // The run, had it lived, hears its lock is gone: a distinct error, not a failure to reach.
    let refreshed = rt.block_on(lock::refresh(&cps, &stopped));
    assert!(refreshed.iter().all(|(_, r)| matches!(r, Err(LockError::Lost { now: None, .. }))), "{refreshed:?}");
    assert!(refreshed[0].1.as_ref().unwrap_err().to_string().contains("is no longer this run's"));

    // A lock of an older kubewright (no heartbeat) goes by its start time: 1h by default.
    let old_format = |started: u64| {
        let holder = serde_json::json!({
            "run_id": "run-o", "by": "ops@bastion2", "pid": 77,
            "started_at": kubewright::exec::rfc3339(started), "command": "kubewright upgrade"
        });
        let write = format!("mkdir -p {0} && echo '{holder}' > {0}/holder.json", lock::LOCK_DIR);
        assert!(bed.exec("cp2", &write).unwrap().status.success());
    };
    old_format(now() - 600);
    let text = String::from_utf8_lossy(&kubewright(&inv, &["lock", "status"]).stdout).into_owned();
    assert!(
        text.contains("cp2: locked by `kubewright upgrade` by ops@bastion2 (pid 77) since ")
            && text.contains(", no heartbeat (an older kubewright's lock)"),
        "{text}"
    );
    let kept = kubewright(&inv, &["lock", "break", "--yes"]);
    assert_eq!(kept.status.code(), Some(2));
    assert!(
        output_text(&kept).contains("was taken 10m") && output_text(&kept).contains("less than 1h"),
        "{}",
        output_text(&kept)
    );
    assert!(kubewright(&inv, &["lock", "break", "--yes", "--older-than", "5m"]).status.success());
    assert_eq!(held_by(&rt.block_on(lock::status(&cps))), [None, None, None]);

    // A live run of this machine is kept whatever its age; --force breaks it.
    let here = Holder::this_process("run-here", "kubewright certs renew", now() - 86_400);
    rt.block_on(lock::acquire(&cps, &here)).unwrap();
    for host in CONTROL_PLANES {
        let stale = format!("echo $(( $(date +%s) - 86400 )) > {}/heartbeat", lock::LOCK_DIR);
        assert!(bed.exec(host, &stale).unwrap().status.success());
    }
    let status = String::from_utf8_lossy(&kubewright(&inv, &["lock", "status"]).stdout).into_owned();
    assert!(
        status.contains(&format!("; its process {} is still running on this machine", std::process::id())),
        "{status}"
    );
    let kept = kubewright(&inv, &["lock", "break", "--yes"]);
    assert_eq!(kept.status.code(), Some(2));
    assert!(output_text(&kept).contains("is still running on this machine"), "{}", output_text(&kept));
    let forced = kubewright(&inv, &["lock", "break", "--yes", "--force"]);
    assert!(
        String::from_utf8_lossy(&forced.stdout).contains("cp3: removed the lock of `kubewright certs renew`"),
        "{}",
        output_text(&forced)
    );
    assert_eq!(
        String::from_utf8_lossy(&kubewright(&inv, &["lock", "status"]).stdout),
        "cp1: free\ncp2: free\ncp3: free\n"
    );
    assert!(kubewright(&inv, &["lock", "break", "--yes"]).status.success(), "nothing to break");
    rt.block_on(async {
        for t in cps {
            t.close().await;
        }
    });
}

const SLOW: &str = "name: slow\nsteps:\n  - action: shell\n    hosts: control-plane[0]\n    commands: [\"echo started > /tmp/slow; sleep 60\"]\n";
const QUICK: &str = "name: quick\nsteps:\n  - action: shell\n    hosts: control-plane[0]\n    commands: [\"echo quick >> /tmp/quick\"]\n";

/// Where the lock takeover must not reach, and where it must: another "bastion" with this
/// machine's hostname (a clone, a container: another pid namespace) cannot take over a live
/// run's lock; a run of the timer's unit (no `$USER`) that died is taken over by an admin's run.
#[test]
fn only_a_dead_run_of_this_machine_is_taken_over_whoever_ran_it() {
    let Some((bed, _state)) = common::bed(3, 3) else { return };
    let inv = bed.inventory_path().display().to_string();
    let (slow, quick) = (bed.dir().join("slow.yaml"), bed.dir().join("quick.yaml"));
    std::fs::write(&slow, SLOW).unwrap();
    std::fs::write(&quick, QUICK).unwrap();
    let (slow, quick) = (slow.display().to_string(), quick.display().to_string());
    let quick_runs =
        || String::from_utf8_lossy(&bed.exec("cp1", "cat /tmp/quick 2>/dev/null").unwrap().stdout).lines().count();

    // This test process holds the lock, alive.
    let control = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cps = rt.block_on(connect(&bed, control.path()));
    let first = live("first-bastion");
    rt.block_on(lock::acquire(&cps, &first)).unwrap();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let state = tempfile::tempdir().unwrap();
    let second = Command::new("unshare")
        .args([
            "--uts",
            "--pid",
            "--fork",
            "--mount-proc",
            "sh",
            "-c",
            "echo \"$1\" > /proc/sys/kernel/hostname && shift && exec \"$@\"",
            "sh",
        ])
        .arg(&hostname)
        .arg(env!("CARGO_BIN_EXE_kubewright"))
        .args(["apply", "--yes", "-i", &inv, "--playbook", &quick])
        .env("NO_COLOR", "1")
        .env("KUBEWRIGHT_STATE_DIR", state.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = output_text(&second);
    assert_eq!(second.status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("locked by another run: {first}")), "{text}");
    assert_eq!(quick_runs(), 0, "{text}");
    assert!(
        rt.block_on(lock::status(&cps)).iter().all(|(_, s)| s
            .as_ref()
            .unwrap()
            .as_ref()
            .unwrap()
            .holder
            .as_ref()
            .unwrap()
            .run_id
            == "first-bastion")
    );
    assert!(all_ok(&rt.block_on(lock::release(&cps, &first))));

    // The timer's unit has no $USER: its run dies (SIGKILL) in the middle of a step...
    let timer_state = tempfile::tempdir().unwrap();
    let mut timer = command_on(&inv, timer_state.path(), &["apply", "--yes", "--playbook", &slow])
        .env_remove("USER")
        .env_remove("HOME")
        .env("KUBEWRIGHT_TRANSPORT", "russh")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !bed.exec("cp1", "test -e /tmp/slow").unwrap().status.success() {
        assert!(std::time::Instant::now() < deadline, "the timer's run never reached its step");
        std::thread::sleep(Duration::from_millis(100));
    }
    timer.kill().unwrap();
    timer.wait().unwrap();
    // ...its command still runs on cp1, so an admin's run is refused until it is gone...
    let admin_state = tempfile::tempdir().unwrap();
    let admin_run = || {
        bed_command(&bed, admin_state.path(), &["apply", "--yes", "--playbook", &quick])
            .env("USER", "root")
            .output()
            .unwrap()
    };
    common::a_command_left_running_refuses_the_next_run(&bed, "cp1", "sleep 60", admin_run);
    // ...and then an admin's run from a shell (with $USER) takes its lock over.
    let admin = admin_run();
    let text = output_text(&admin);
    assert!(admin.status.success(), "{text}");
    assert!(
        text.contains("was left by `kubewright apply --playbook FILE (playbook `slow`)`")
            && text.contains("taken over"),
        "{text}"
    );
    assert_eq!(quick_runs(), 1, "{text}");
    assert!(rt.block_on(lock::status(&cps)).iter().all(|(_, s)| s.as_ref().unwrap().is_none()));
    rt.block_on(async {
        for t in cps {
            t.close().await;
        }
    });
}

/// Snapshots on the first control plane (`etcd-<second>.db`) and PKI backups on each.
fn backups(bed: &Testbed, host: &str, pattern: &str) -> usize {
    let o = bed.exec(host, &format!("ls /var/lib/kubewright/backups/{pattern} 2>/dev/null | wc -l")).unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// Two runs of `args` started at the same instant, each from its own state directory: one runs,
/// the other is refused naming it. Returns the winner's output.
fn race(inventory: &str, args: &[&str]) -> Output {
    let (state_a, state_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let spawn = |state: &tempfile::TempDir| common::Background::spawn(&mut command_on(inventory, state.path(), args));
    let (a, b) = (spawn(&state_a), spawn(&state_b));
    let (pid_a, pid_b) = (a.id(), b.id());
    let (a, b) = (a.wait_with_output(), b.wait_with_output());
    let (winner, winner_pid, loser) = match (a.status.code(), b.status.code()) {
        (Some(0), Some(1)) => (a, pid_a, b),
        (Some(1), Some(0)) => (b, pid_b, a),
        codes => panic!("not exactly one run ({codes:?}):\n--- a\n{}\n--- b\n{}", output_text(&a), output_text(&b)),
    };
    let text = output_text(&loser);
    assert!(
        text.contains("locked by another run: `kubewright ") && text.contains(&format!("(pid {winner_pid})")),
        "{text}"
    );
    winner
}

#[test]
fn of_two_commands_started_at_once_exactly_one_runs() {
    let Some((bed, _state)) = common::installed(3, 3) else { return };
    // Keep every backup, so that each one made is counted.
    let inv =
        common::inventory_variant(&bed, "keep.yaml", "cluster:\n", "cluster:\n  certificates:\n    keepBackups: 100\n");
    // The lock is the first thing a run takes (before its facts): two runs started at once
    // contest it while both are still starting, each round.
    let control = tempfile::tempdir().unwrap();
    let rt = runtime();
    let cps = rt.block_on(connect(&bed, control.path()));
    // Ten rounds of whole commands (about 6 s each): the lock's own race runs twenty times in
    // `runs_taking_the_lock_at_once_have_exactly_one_winner`, in-process and cheaply.
    for round in 0..10 {
        // Snapshots are named by the second: each round makes its own.
        while backups(&bed, "cp1", &format!("etcd-{}.db", time_stamp(now()))) > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        // Every fourth round starts from the lock of a run of this machine that died: exactly
        // one of the two takes it over.
        if round % 4 == 0 {
            rt.block_on(lock::acquire(&cps, &dead(&format!("died-{round}")))).unwrap();
        }
        let before = backups(&bed, "cp1", "etcd-2*.db");
        let winner = race(&inv, &["etcd", "snapshot"]);
        assert_eq!(backups(&bed, "cp1", "etcd-2*.db"), before + 1, "round {round}: {}", output_text(&winner));
        if round % 4 == 0 {
            assert!(output_text(&winner).contains("taken over"), "{}", output_text(&winner));
        }
        assert!(rt.block_on(lock::status(&cps)).iter().all(|(_, s)| s.as_ref().unwrap().is_none()), "round {round}");
    }
    for _ in 0..2 {
        let before: Vec<usize> = CONTROL_PLANES.iter().map(|h| backups(&bed, h, "pki-2*.tar.gz")).collect();
        let winner = race(&inv, &["certs", "renew", "--force", "--yes"]);
        let after: Vec<usize> = CONTROL_PLANES.iter().map(|h| backups(&bed, h, "pki-2*.tar.gz")).collect();
        assert_eq!(after, before.iter().map(|n| n + 1).collect::<Vec<_>>(), "one renewal: {}", output_text(&winner));
    }
    rt.block_on(async {
        for t in cps {
            t.close().await;
        }
    });
}

/// `20261122T050000Z`, as the snapshot script names its files.
fn time_stamp(secs: u64) -> String {
    kubewright::exec::rfc3339(secs).replace(['-', ':'], "")
}
