//! The cluster lock on the test bed: one run at a time, refusals name the holder, only the
//! holder releases, an explicit break removes a dead run's lock.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::Command;
use std::time::Duration;

use kubewright::exec::lock::{self, Holder, LockError};
use kubewright::ssh::Target;
use kubewright::ssh::openssh::OpensshTransport;
use kubewright_testbed::{Testbed, TestbedOptions};

fn target(bed: &Testbed, host: &str) -> Target {
    Target {
        name: host.to_string(),
        address: bed.host(host).ip.to_string(),
        port: 22,
        user: "root".into(),
        identity_file: Some(bed.client_key_path()),
        sudo: false,
        known_hosts: Some(bed.known_hosts_path()),
        bastion: None,
        connect_timeout: Duration::from_secs(5),
        server_alive_interval: Duration::from_secs(15),
        accept_new_host_keys: false,
    }
}

fn holder(run_id: &str) -> Holder {
    Holder {
        run_id: run_id.into(),
        by: "admin@bastion".into(),
        pid: 4242,
        started_at: "2026-11-22T05:00:00Z".into(),
        command: format!("kubewright apply ({run_id})"),
    }
}

#[test]
fn one_run_at_a_time() {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 3;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let control = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut cps = Vec::new();
        for h in ["cp1", "cp2", "cp3"] {
            cps.push(OpensshTransport::connect(target(&bed, h), control.path()).await.unwrap());
        }
        lock::acquire(&cps, &holder("run-a")).await.unwrap();
        // Taking it again in the same run is fine; another run is refused, naming the holder.
        lock::acquire(&cps, &holder("run-a")).await.unwrap();
        let err = lock::acquire(&cps, &holder("run-b")).await.unwrap_err();
        assert!(matches!(&err, LockError::Held { holder, .. } if holder.run_id == "run-a"), "{err}");
        assert!(
            err.to_string()
                .contains("`kubewright apply (run-a)` by admin@bastion (pid 4242) since 2026-11-22T05:00:00Z"),
            "{err}"
        );
        assert!(err.hint().contains("kubewright lock break"));
        // Another run cannot release it.
        assert!(lock::release(&cps, &holder("run-b")).await.iter().all(|(_, r)| r.is_ok()));
        assert!(lock::acquire(&cps, &holder("run-c")).await.is_err());
        assert!(lock::release(&cps, &holder("run-a")).await.iter().all(|(_, r)| r.is_ok()));

        // All or nothing: a lock left on cp3 alone refuses the run and releases cp1 and cp2.
        lock::acquire(&cps[2..], &holder("run-d")).await.unwrap();
        assert!(lock::acquire(&cps, &holder("run-e")).await.is_err());
        let states = lock::status(&cps).await;
        let held: Vec<&str> =
            states.iter().filter(|(_, s)| matches!(s, Ok(Some(_)))).map(|(h, _)| h.as_str()).collect();
        assert_eq!(held, ["cp3"]);

        // A run of this machine that is gone (it died, or lost cp1 before releasing there)
        // left its lock: the next run takes it over and says whose it was. One whose process
        // still runs here is refused.
        let here = |run_id: &str, pid: u32| Holder { by: lock::local_identity(), pid, ..holder(run_id) };
        let dead_pid = {
            let mut child = Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            pid
        };
        lock::acquire(&cps[..1], &here("run-dead", dead_pid)).await.unwrap();
        assert!(lock::release(&cps[2..], &holder("run-d")).await.iter().all(|(_, r)| r.is_ok()));
        let taken_over = lock::acquire(&cps, &holder("run-g")).await.unwrap();
        assert_eq!(taken_over.len(), 1, "{taken_over:?}");
        assert_eq!((taken_over[0].0.as_str(), taken_over[0].1.run_id.as_str()), ("cp1", "run-dead"));
        assert!(lock::release(&cps, &holder("run-g")).await.iter().all(|(_, r)| r.is_ok()));
        lock::acquire(&cps[..1], &here("run-alive", std::process::id())).await.unwrap();
        let err = lock::acquire(&cps, &holder("run-h")).await.unwrap_err();
        assert!(matches!(&err, LockError::Held { holder, .. } if holder.run_id == "run-alive"), "{err}");
        assert!(lock::release(&cps, &here("run-alive", std::process::id())).await.iter().all(|(_, r)| r.is_ok()));
        lock::acquire(&cps[2..], &holder("run-d")).await.unwrap();
        for t in cps {
            t.close().await;
        }
    });

    // The CLI shows and breaks it.
    let kw = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kubewright")).args(args).env("NO_COLOR", "1").output().unwrap()
    };
    let inv = bed.inventory_path().display().to_string();
    let inv3 = bed.dir().join("three.yaml");
    std::fs::write(&inv3, std::fs::read_to_string(&inv).unwrap().replace("roles: [worker]", "roles: [control-plane]"))
        .unwrap();
    let inv3 = inv3.display().to_string();
    let status = kw(&["lock", "status", "-i", &inv3]);
    assert_eq!(
        String::from_utf8_lossy(&status.stdout),
        "cp1: free\ncp2: free\ncp3: locked by `kubewright apply (run-d)` by admin@bastion (pid 4242) since 2026-11-22T05:00:00Z\n"
    );
    assert_eq!(kw(&["lock", "break", "-i", &inv3]).status.code(), Some(2), "--yes is required");
    let broken = kw(&["lock", "break", "-i", &inv3, "--yes"]);
    assert!(String::from_utf8_lossy(&broken.stdout).contains("cp3: removed the lock of `kubewright apply (run-d)`"));
    assert_eq!(
        String::from_utf8_lossy(&kw(&["lock", "status", "-i", &inv3]).stdout),
        "cp1: free\ncp2: free\ncp3: free\n"
    );

    // A lock taken a minute ago may be a live run elsewhere: kept unless --force.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let fresh = serde_json::json!({
        "run_id": "run-f", "by": "ops@bastion2", "pid": 77,
        "started_at": kubewright::exec::rfc3339(now - 60), "command": "kubewright upgrade"
    });
    let take = format!("mkdir -p {0} && echo '{fresh}' > {0}/holder.json", lock::LOCK_DIR);
    assert!(bed.exec("cp2", &take).unwrap().status.success());
    let kept = kw(&["lock", "break", "-i", &inv3, "--yes"]);
    assert_eq!(kept.status.code(), Some(2));
    let err = String::from_utf8_lossy(&kept.stderr);
    assert!(err.contains("the lock on cp2 may belong to a live run") && err.contains(": it was taken 6"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(bed.exec("cp2", &format!("test -d {}", lock::LOCK_DIR)).unwrap().status.success(), "kept");
    assert!(kw(&["lock", "break", "-i", &inv3, "--yes", "--older-than", "30s"]).status.success());
    assert!(!bed.exec("cp2", &format!("test -d {}", lock::LOCK_DIR)).unwrap().status.success(), "broken");
    assert!(bed.exec("cp2", &take).unwrap().status.success());
    assert!(kw(&["lock", "break", "-i", &inv3, "--yes", "--force"]).status.success());
    assert!(!bed.exec("cp2", &format!("test -d {}", lock::LOCK_DIR)).unwrap().status.success(), "forced");
}
