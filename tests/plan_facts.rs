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
    serde_json::from_slice(&o.stdout).unwrap()
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

on_both_transports!(plans_against_what_the_hosts_have);
