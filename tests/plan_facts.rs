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
    let mut opts = TestbedOptions::new(7);
    opts.control_planes = 2;
    // w2 built without kmod: no modprobe (its own dpkg removes the package once it is up).
    opts.without_kmod = vec!["w2".into()];
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let inv = bed.inventory_path().display().to_string();
    let sh = |host: &str, script: &str| {
        let o = bed.exec(host, script).unwrap();
        assert!(o.status.success(), "{host}: {script}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // One problem per host, each the way a real machine would show it:
    // cp1: something already on the API server's port.
    // (A second sshd of the host's own: a fresh Debian image has no python or netcat.)
    sh("cp1", "/usr/sbin/sshd -p 6443 -f /run/kubewright-testbed/sshd_config -o PidFile=/run/sshd-6443.pid");
    // cp2: one CPU and 1 GiB (what nproc and /proc/meminfo say on a small VM).
    sh("cp2", "printf '#!/bin/sh\\necho 1\\n' > /usr/local/bin/nproc && chmod +x /usr/local/bin/nproc");
    sh("cp2", "printf 'MemTotal:        1048576 kB\\n' > /run/meminfo && mount --bind /run/meminfo /proc/meminfo");
    // w1 and w2: the same hostname (a cloned VM); w2 also built without kmod (see above).
    sh("w2", "hostname w1");
    sh("w2", "! command -v modprobe");
    // w3: not Debian or Ubuntu.
    sh("w3", "printf 'ID=alpine\\nVERSION_ID=3.20.3\\n' > /etc/os-release");
    // w4: a clock two minutes ahead.
    sh(
        "w4",
        "printf '#!/bin/sh\\nexec /usr/bin/date -d \"@$(( $(/usr/bin/date +%%s) + 120 ))\" \"$@\"\\n' > /usr/local/bin/date && chmod +x /usr/local/bin/date",
    );
    // w5: w4's MAC address on an interface of its own (on its real one the bridge would lose
    // track of both hosts, as on a real network).
    let w4_mac = sh("w4", "cat /sys/class/net/eth0/address").trim().to_string();
    sh("w5", &format!("ip link add clone0 type veth peer name clone1 && ip link set dev clone0 address {w4_mac}"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sh("cp1", "ss -Hltn").contains(":6443") {
        assert!(std::time::Instant::now() < deadline, "the listener did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // w1 also: an internalAddress it does not have (a NAT address only the bastion sees).
    let text = std::fs::read_to_string(&inv).unwrap();
    let w1 = format!("  - name: w1\n    address: {}\n", bed.host("w1").ip);
    assert!(text.contains(&w1), "{text}");
    let inv = bed.dir().join("preflight.yaml");
    std::fs::write(&inv, text.replace(&w1, &format!("{w1}    internalAddress: 192.0.2.10\n"))).unwrap();
    let inv = inv.display().to_string();

    let o = kubewright("openssh", &["plan", "-i", &inv, "-o", "json"]);
    assert_eq!(o.status.code(), Some(1), "a blocked plan exits 1");
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc.get("error").is_none(), "{doc}");
    let plan = valid(doc);
    let preflight = plan["steps"].as_array().unwrap().iter().find(|s| s["id"] == "preflight").unwrap();
    let decision =
        |host: &str| preflight["hosts"].as_array().unwrap().iter().find(|h| h["host"] == host).unwrap().clone();
    let problems = |host: &str| {
        let d = decision(host);
        assert_eq!(d["decision"], "blocked", "{d}");
        d["problems"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect::<Vec<_>>().join("; ")
    };
    assert!(problems("cp1").contains("port(s) 6443 already in use"), "{}", problems("cp1"));
    assert!(problems("cp2").contains("1 CPU(s); a control plane needs at least 2"), "{}", problems("cp2"));
    assert!(
        problems("cp2").contains("1024 MB of memory; a control plane needs at least 1700 MB"),
        "{}",
        problems("cp2")
    );
    assert!(problems("w2").contains("hostname `w1` is also w1's"), "{}", problems("w2"));
    // Named with its package; kubeadm and crictl, which the plan installs, are not demanded.
    assert!(
        problems("w2").contains(
            "w2 has no `modprobe` (package kmod), which this plan runs there: install it (apt-get install kmod)"
        ),
        "{}",
        problems("w2")
    );
    assert!(!problems("w2").contains("kubeadm") && !problems("w2").contains("crictl"), "{}", problems("w2"));
    assert!(problems("w3").contains("unsupported OS `alpine 3.20.3`"), "{}", problems("w3"));
    // 120 s ahead, less the moment the answer took to arrive (a loaded machine: a second or two).
    let skew: Option<u32> = problems("w4")
        .split("clock ")
        .nth(1)
        .and_then(|rest| rest.split_once("s ahead of the bastion's"))
        .and_then(|(n, _)| n.parse().ok());
    assert!(skew.is_some_and(|s| (110..=121).contains(&s)), "{}", problems("w4"));
    assert!(problems("w5").contains(&format!("MAC address {w4_mac} is also on w4")), "{}", problems("w5"));
    // w1 shares its hostname with w2 and w4 its MAC with w5: every host is blocked.
    assert_eq!(plan["summary"]["blocked"], 7);
    assert!(problems("w1").contains("hostname `w1` is also w2's"), "{}", problems("w1"));
    assert!(problems("w1").contains("node IP 192.0.2.10 is not an address of this host"), "{}", problems("w1"));

    // apply lists every problem, exits 1, and touches nothing anywhere.
    let state = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["apply", "--yes", "-i", &inv])
        .env("KUBEWRIGHT_STATE_DIR", state.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("problem(s) block the plan; nothing was changed"), "{err}");
    for host in [
        "cp1: port(s) 6443",
        "cp2: 1 CPU(s)",
        "w2: hostname `w1`",
        "w3: unsupported OS",
        "w4: clock",
        "w5: MAC address",
    ] {
        assert!(err.contains(host), "{host} missing from:\n{err}");
    }
    for host in ["cp1", "cp2", "w1", "w2", "w3", "w4", "w5"] {
        assert!(!bed.exec(host, "test -e /etc/modules-load.d/kubewright.conf").unwrap().status.success(), "{host}");
        assert!(!bed.exec(host, "test -e /var/lib/kubewright/lock").unwrap().status.success(), "{host}");
    }
}

on_both_transports!(plans_against_what_the_hosts_have);
