//! `kubewright plan` without `--offline` reads every host's facts over SSH (one read-only
//! command per host) and plans against them: files already right are not rewritten, changed
//! ones show a diff, an unreachable host stops the plan with its name. Once per transport.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Output};

use kubewright_testbed::{Testbed, TestbedOptions, on_both_transports};

const MODULES: &str = "/etc/modules-load.d/kubewright.conf";

fn kubewright(transport: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(args)
        .env("NO_COLOR", "1")
        .env("KUBEWRIGHT_TRANSPORT", transport)
        .output()
        .unwrap()
}

/// The write-file action for `path` in step `step` on `host`, if the plan has one.
fn write_action(plan: &serde_json::Value, step: &str, host: &str, path: &str) -> Option<serde_json::Value> {
    let step = plan["steps"].as_array().unwrap().iter().find(|s| s["id"] == step)?;
    let host = step["hosts"].as_array().unwrap().iter().find(|h| h["host"] == host)?;
    host["actions"].as_array()?.iter().find(|a| a["kind"] == "write-file" && a["path"] == path).cloned()
}

fn plan_json(transport: &str, inventory: &str) -> serde_json::Value {
    let o = kubewright(transport, &["plan", "-i", inventory, "-o", "json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    valid(serde_json::from_slice(&o.stdout).unwrap())
}

/// The plan, after checking it against docs/plan.schema.json.
fn valid(plan: serde_json::Value) -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/plan.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap();
    let errors: Vec<String> = validator.iter_errors(&plan).map(|e| format!("{e} at {}", e.instance_path())).collect();
    assert!(errors.is_empty(), "{errors:?}");
    plan
}

fn plans_against_what_the_hosts_have(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    let inv = bed.inventory_path().display().to_string();
    let plan = plan_json(transport, &inv);
    assert_eq!(plan["assumed_fresh"], false);
    assert_eq!(write_action(&plan, "prepare-host", "cp1", MODULES).unwrap()["change"], "new");

    // cp1 gets exactly the rendered file: nothing to write there any more; w1 still needs it.
    let out = tempfile::tempdir().unwrap();
    let o = kubewright(transport, &["render", "-i", &inv, "--out", out.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rendered = std::fs::read_to_string(out.path().join("cp1").join(MODULES.trim_start_matches('/'))).unwrap();
    let write = format!("mkdir -p /etc/modules-load.d && cat > {MODULES} <<'EOF'\n{rendered}EOF");
    assert!(bed.exec("cp1", &write).unwrap().status.success());
    let plan = plan_json(transport, &inv);
    assert_eq!(write_action(&plan, "prepare-host", "cp1", MODULES), None, "an identical file is not rewritten");
    assert_eq!(write_action(&plan, "prepare-host", "w1", MODULES).unwrap()["change"], "new");

    // Edited by hand: a change, with the diff against what is there.
    assert!(bed.exec("cp1", &format!("echo vxlan >> {MODULES}")).unwrap().status.success());
    let plan = plan_json(transport, &inv);
    let action = write_action(&plan, "prepare-host", "cp1", MODULES).unwrap();
    assert_eq!(action["change"], "changed");
    assert!(action["diff"].as_str().unwrap().contains("-vxlan"), "{action}");

    // An unreachable host: no plan, and the error names it.
    let quick = bed.dir().join("quick.yaml");
    let text = std::fs::read_to_string(bed.inventory_path()).unwrap();
    std::fs::write(&quick, text.replace("ssh:\n", "ssh:\n  connectTimeout: 2s\n")).unwrap();
    bed.link_down("w1").unwrap();
    let o = kubewright(transport, &["plan", "-i", quick.to_str().unwrap()]);
    bed.link_up("w1").unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cannot read the facts of 1 host(s); nothing was planned"), "{err}");
    assert!(err.contains("w1: cannot connect"), "{err}");
    assert!(err.contains("--offline"), "{err}");
    assert!(o.stdout.is_empty(), "no plan is printed");
}

#[test]
fn preflight_problems_block_every_host_at_once_and_apply_changes_nothing() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(3)) else { return };
    let inv = bed.inventory_path().display().to_string();
    // cp1: something already on the API server's port; w2: a clone of w1's hostname.
    let listen = "nohup python3 -c 'import socket,time; s=socket.socket(); s.bind((\"0.0.0.0\", 6443)); s.listen(); time.sleep(600)' >/dev/null 2>&1 &";
    assert!(bed.exec("cp1", listen).unwrap().status.success());
    assert!(bed.exec("w2", "hostname w1").unwrap().status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !String::from_utf8_lossy(&bed.exec("cp1", "ss -Hltn").unwrap().stdout).contains(":6443") {
        assert!(std::time::Instant::now() < deadline, "the listener did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let o = kubewright("openssh", &["plan", "-i", &inv, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "a blocked plan exits 1");
    let plan = valid(serde_json::from_slice(&o.stdout).unwrap());
    let preflight = plan["steps"].as_array().unwrap().iter().find(|s| s["id"] == "preflight").unwrap();
    let decision =
        |host: &str| preflight["hosts"].as_array().unwrap().iter().find(|h| h["host"] == host).unwrap().clone();
    assert_eq!(decision("cp1")["decision"], "blocked");
    assert!(decision("cp1")["problems"][0].as_str().unwrap().contains("port(s) 6443 already in use"));
    assert_eq!(decision("w2")["decision"], "blocked");
    assert!(
        decision("w2")["problems"][0].as_str().unwrap().contains("hostname `w1` is also w1's"),
        "{}",
        decision("w2")
    );
    assert_eq!(plan["summary"]["blocked"], 3, "w1 shares its hostname with w2 too");

    // apply lists every problem, exits 1, and touches nothing.
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["apply", "--yes", "-i", &inv])
        .env("KUBEWRIGHT_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("problem(s) block the plan; nothing was changed"), "{err}");
    assert!(err.contains("cp1: port(s) 6443") && err.contains("w2: hostname `w1`"), "{err}");
    assert!(!bed.exec("cp1", "test -e /etc/modules-load.d/kubewright.conf").unwrap().status.success());
    assert!(!bed.exec("cp1", "test -e /var/lib/kubewright/lock").unwrap().status.success());
}

on_both_transports!(plans_against_what_the_hosts_have);
