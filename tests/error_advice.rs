//! Every error a user sees says what to do: one row per error kind, run through the binary,
//! checking the error's text and its `help:` line.
//!
//! Two tables: errors found before any host is contacted (files, flags, imports), and errors
//! the hosts cause (keys, logins, the lock, a failing command), on the test bed. The same
//! guarantee for inventory and playbook diagnostics is a property of the loader fuzz
//! (`tests/loader_fuzz.rs`: every error has `expected:` or `help:`), and each step failure
//! carries a hint by type (`HostFailure::hint`), checked in `install_faults`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::output_text;

/// One error: how to cause it, and what its message and its advice must say.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    code: i32,
    error: &'static str,
    help: &'static str,
}

const fn case(
    name: &'static str,
    args: &'static [&'static str],
    code: i32,
    error: &'static str,
    help: &'static str,
) -> Case {
    Case { name, args, env: &[], code, error, help }
}

/// The exit code, the error's fragment, and a `help:` line holding the advice's fragment.
#[track_caller]
fn assert_advised(name: &str, o: &Output, code: i32, error: &str, help: &str) {
    let text = output_text(o);
    assert_eq!(o.status.code(), Some(code), "{name}: exit code\n{text}");
    assert!(text.contains(error), "{name}: no `{error}` in:\n{text}");
    let helps: Vec<&str> = text.lines().filter_map(|l| l.trim_start().strip_prefix("help: ")).collect();
    assert!(helps.iter().any(|h| h.contains(help)), "{name}: no help line containing `{help}` in:\n{text}");
}

const INVENTORY: &str = "\
cluster:
  name: adv
  kubernetesVersion: 1.31.4
ssh:
  user: root
hosts:
  - name: cp1
    address: 10.0.0.11
    roles: [control-plane]
";

const OFFLINE: &[Case] = &[
    case(
        "unreadable inventory",
        &["plan", "--offline", "-i", "missing.yaml"],
        2,
        "cannot read inventory `missing.yaml`",
        "pass an inventory with `-i FILE`",
    ),
    case("invalid inventory", &["plan", "--offline", "-i", "bad.yaml"], 2, "Bad_Host", "kubewright inventory validate"),
    case(
        "templates not a directory",
        &["plan", "--offline", "-i", "inv.yaml", "--templates", "inv.yaml"],
        2,
        "cannot read `inv.yaml`",
        "--templates takes a readable directory",
    ),
    case(
        "templates directory without templates",
        &["plan", "--offline", "-i", "inv.yaml", "--templates", "no-templates"],
        2,
        "has no `*.j2` files",
        "copy the templates to override",
    ),
    case(
        "unknown template",
        &["plan", "--offline", "-i", "inv.yaml", "--templates", "typo-templates"],
        2,
        "unknown template override `kubeadm-initt.yaml.j2`",
        "template names are:",
    ),
    case(
        "broken template",
        &["plan", "--offline", "-i", "inv.yaml", "--templates", "broken-templates"],
        2,
        "failed to render",
        "strict undefined-variable checks",
    ),
    case(
        "unreadable playbook",
        &["plan", "--offline", "-i", "inv.yaml", "--playbook", "missing-playbook.yaml"],
        2,
        "cannot read playbook `missing-playbook.yaml`",
        "give a readable playbook file",
    ),
    case(
        "playbook without steps",
        &["plan", "--offline", "-i", "inv.yaml", "--playbook", "no-steps.yaml"],
        2,
        "the playbook has no steps",
        "list its steps under `steps:`",
    ),
    case(
        "playbook naming an unknown host",
        &["plan", "--offline", "-i", "inv.yaml", "--playbook", "unknown-host.yaml"],
        2,
        "no host named `cp2`",
        "did you mean `cp1`?",
    ),
    case(
        "secret not set",
        &["apply", "--yes", "-i", "inv.yaml", "--playbook", "secret.yaml"],
        2,
        "the playbook's secretEnv needs $KW_ADVICE_SECRET set",
        "export them in the environment",
    ),
    Case {
        env: &[("KW_ADVICE_SECRET", "two\nlines")],
        ..case(
            "secret with a line break",
            &["apply", "--yes", "-i", "inv.yaml", "--playbook", "secret.yaml"],
            2,
            "the secret $KW_ADVICE_SECRET holds a line break",
            "give a single-line value",
        )
    },
    Case {
        env: &[("KW_ADVICE_SECRET", "ab")],
        ..case(
            "secret too short to redact",
            &["apply", "--yes", "-i", "inv.yaml", "--playbook", "secret.yaml"],
            2,
            "is shorter than 4 characters",
            "use a real secret",
        )
    },
    case(
        "reset confirmed with another name",
        &["reset", "-i", "inv.yaml", "--confirm", "prod"],
        2,
        "--confirm prod does not name this cluster (adv)",
        "give the cluster's name",
    ),
    case("reset without a confirmation", &["reset", "-i", "inv.yaml"], 2, "needs its name", "pass --confirm adv"),
    case(
        "restore of a missing snapshot",
        &["etcd", "restore", "-i", "inv.yaml", "--confirm", "adv", "missing.db"],
        2,
        "cannot read the snapshot missing.db",
        "`etcdctl snapshot save`",
    ),
    case(
        "restore of an empty snapshot",
        &["etcd", "restore", "-i", "inv.yaml", "--confirm", "adv", "empty.db"],
        2,
        "the snapshot empty.db is empty",
        "give another snapshot",
    ),
    case("lock break without --yes", &["lock", "break", "-i", "inv.yaml"], 2, "changes the cluster", "then add --yes"),
    case(
        "removing an unknown node",
        &["remove-node", "-i", "inv.yaml", "cp2"],
        2,
        "no host named `cp2` in the inventory",
        "did you mean `cp1`?",
    ),
    case(
        "rendering an unknown host",
        &["render", "-i", "inv.yaml", "--host", "cpx", "--out", "out"],
        2,
        "cpx",
        "did you mean `cp1`?",
    ),
    case(
        "rendering into a file",
        &["render", "-i", "inv.yaml", "--out", "inv.yaml/out"],
        2,
        "cannot write",
        "--out must name a directory",
    ),
    case(
        "run with a zero timeout",
        &["run", "-i", "inv.yaml", "--timeout", "0s", "--", "true"],
        2,
        "would stop every command at once",
        "give a duration like 90s",
    ),
    case("run without a command", &["run", "-i", "inv.yaml"], 2, "no command given", "put the command after `--`"),
    case(
        "run on an unknown host",
        &["run", "-i", "inv.yaml", "--hosts", "cpx", "--", "true"],
        2,
        "cpx",
        "did you mean `cp1`?",
    ),
    case(
        "run on an empty group",
        &["run", "-i", "inv.yaml", "--hosts", "worker", "--", "true"],
        2,
        "`--hosts worker` selects no host",
        "the inventory has no host in that group",
    ),
    case(
        "run on a closed port",
        &["run", "-i", "closed.yaml", "--", "true"],
        1,
        "cannot connect to 127.0.0.1",
        "check the address, the port and that sshd runs",
    ),
    case(
        "plan on a closed port",
        &["plan", "-i", "closed.yaml"],
        1,
        "cannot read the facts of 1 host(s)",
        "or plan with --offline to assume fresh hosts",
    ),
    case(
        "CAs made twice",
        &["certs", "init-ca", "-i", "made.yaml"],
        2,
        "already holds the cluster's CAs",
        "pass --force to make new ones",
    ),
    Case {
        env: &[("KUBEWRIGHT_STATE_DIR", "inv.yaml")],
        ..case(
            "CAs into an unwritable state directory",
            &["certs", "init-ca", "-i", "inv.yaml"],
            2,
            "cannot write",
            "the state directory must be writable",
        )
    },
    case(
        "unreadable CA in the state directory",
        &["plan", "--offline", "-i", "unreadable-ca.yaml"],
        2,
        "cannot read",
        "make its files readable by this user",
    ),
    case(
        "a timer without a calendar",
        &["certs", "schedule", "-i", "inv.yaml", "--print", "--calendar", ""],
        2,
        "is not a calendar expression",
        "OnCalendar=",
    ),
    case(
        "critical longer than warn",
        &["certs", "check", "-i", "inv.yaml", "--warn", "10d", "--critical", "20d"],
        2,
        "--critical 20d is longer than --warn 10d",
        "it must be the shorter of the two",
    ),
    case(
        "a textfile where node_exporter cannot look",
        &["certs", "check", "-i", "inv.yaml", "--prometheus-textfile", "no-such-dir/certs.prom"],
        2,
        "the directory of --prometheus-textfile, no-such-dir, does not exist",
        "--collector.textfile.directory",
    ),
    case(
        "kubespray: not an inventory",
        &[
            "inventory",
            "from-kubespray",
            "words.ini",
            "--name",
            "adv",
            "--kubernetes-version",
            "1.31.4",
            "--reader",
            "builtin",
        ],
        2,
        "words.ini:1: `some` is not a key=value host variable",
        "write host variables as key=value",
    ),
    case(
        "kubespray: no control plane",
        &["inventory", "from-kubespray", "no-cp.ini", "--name", "adv", "--kubernetes-version", "1.31.4"],
        2,
        "no host is in kube_control_plane",
        "put the control planes in kube_control_plane",
    ),
    case(
        "kubespray: unreadable",
        &["inventory", "from-kubespray", "missing.ini", "--name", "adv", "--kubernetes-version", "1.31.4"],
        2,
        "cannot read `missing.ini`",
        "give kubespray's inventory file (inventory/<cluster>/inventory.ini or hosts.yaml) or its directory",
    ),
    case(
        "kubespray: a name kubewright refuses",
        &["inventory", "from-kubespray", "cluster.ini", "--name", "Bad_Name", "--kubernetes-version", "1.31.4"],
        2,
        "the imported inventory is not valid",
        "check --name",
    ),
    case(
        "vagrant: not ssh-config output",
        &["inventory", "from-vagrant", "words.txt"],
        2,
        "before any `Host` line",
        "pipe in `vagrant ssh-config`",
    ),
    case(
        "vagrant: no control plane",
        &["inventory", "from-vagrant", "no-cp.txt", "--known-hosts", "kh"],
        2,
        "no control plane: no machine matches --control-planes `cp*`",
        "--control-planes GLOB",
    ),
    case(
        "vagrant: a bad network",
        &["inventory", "from-vagrant", "no-cp.txt", "--network", "10.0"],
        2,
        "is not the first three octets of a network",
        "KW_NETWORK",
    ),
];

/// The files the offline cases name, in one directory.
fn offline_files(dir: &Path) {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("inv.yaml", INVENTORY);
    write("bad.yaml", &INVENTORY.replace("name: cp1", "name: Bad_Host"));
    write("closed.yaml", &INVENTORY.replace("address: 10.0.0.11", "address: 127.0.0.1\n    ssh:\n      port: 1"));
    write("made.yaml", &INVENTORY.replace("name: adv", "name: made"));
    write("state/made/pki/ca.crt", "already here\n");
    write("unreadable-ca.yaml", &INVENTORY.replace("name: adv", "name: unreadable"));
    std::fs::create_dir_all(dir.join("state/unreadable/pki/ca.crt")).unwrap();
    std::fs::create_dir_all(dir.join("no-templates")).unwrap();
    write("typo-templates/kubeadm-initt.yaml.j2", "x\n");
    write("broken-templates/kubeadm-init.yaml.j2", "{{ no_such_value }}\n");
    write("no-steps.yaml", "name: empty\nsteps: []\n");
    write("unknown-host.yaml", "name: typo\nsteps:\n  - action: shell\n    hosts: [cp2]\n    commands: [\"true\"]\n");
    write(
        "secret.yaml",
        "name: secret\nsteps:\n  - action: shell\n    hosts: all\n    secretEnv: [KW_ADVICE_SECRET]\n    commands: [\"true\"]\n",
    );
    write("empty.db", "");
    write("words.ini", "just some words\n");
    write("no-cp.ini", "[kube_node]\nw1 ansible_host=10.0.0.21\n");
    write("cluster.ini", "[kube_control_plane]\ncp1 ansible_host=10.0.0.11\n[kube_node]\nw1 ansible_host=10.0.0.21\n");
    write("words.txt", "HostName 127.0.0.1\n");
    write("no-cp.txt", "Host w1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n");
}

#[test]
fn errors_before_any_host_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    offline_files(dir.path());
    for c in OFFLINE {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubewright"));
        cmd.args(c.args)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .env("KUBEWRIGHT_STATE_DIR", dir.path().join("state"))
            .env_remove("KUBEWRIGHT_INVENTORY")
            .env_remove("KW_ADVICE_SECRET")
            .stdin(Stdio::null());
        for (k, v) in c.env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        assert_advised(c.name, &o, c.code, c.error, c.help);
    }
}

#[test]
fn json_errors_carry_the_same_advice() {
    let dir = tempfile::tempdir().unwrap();
    offline_files(dir.path());
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["run", "-i", "inv.yaml", "--timeout", "0s", "-o", "json", "--", "true"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let help = doc["error"]["help"][0].as_str().unwrap();
    assert!(help.contains("give a duration like 90s"), "{doc}");
}

const ONE_COMMAND: &str = "name: one\nsteps:\n  - action: shell\n    hosts: all\n    commands: [\"true\"]\n";

#[test]
fn errors_the_hosts_cause_say_what_to_do() {
    let Some((bed, state)) = common::bed(2, 1) else { return };
    let run = |args: &[&str], inventory: Option<&str>| -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kubewright"));
        c.args(args)
            .arg("-i")
            .arg(inventory.map(str::to_string).unwrap_or_else(|| bed.inventory_path().display().to_string()))
            .env("NO_COLOR", "1")
            .env("KUBEWRIGHT_STATE_DIR", state.path())
            .stdin(Stdio::null());
        c.output().unwrap()
    };
    let dir = bed.dir().to_path_buf();
    let playbook = |name: &str, text: &str| -> String {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let kh = bed.known_hosts_path().display().to_string();

    // The host keys: unknown, then changed.
    std::fs::write(dir.join("empty_known_hosts"), "").unwrap();
    let unknown =
        common::inventory_variant(&bed, "unknown-keys.yaml", &kh, &dir.join("empty_known_hosts").display().to_string());
    let o = run(&["plan"], Some(&unknown));
    assert_advised("unknown host key", &o, 1, "is not trusted", "run once with --accept-new-host-keys");

    let changed = common::impostor_inventory(&bed, &[]);
    let o = run(&["plan"], Some(&changed));
    assert_advised("changed host key", &o, 1, "CHANGED", "do not connect until you know why the key changed");

    // Logging in: a key the hosts do not know, and a user whose sudo asks for a password.
    let client_key = bed.client_key_path().display().to_string();
    let stranger = common::inventory_variant(
        &bed,
        "stranger.yaml",
        &client_key,
        &bed.dir().join("impostor").display().to_string(),
    );
    let o = run(&["plan"], Some(&stranger));
    assert_advised("unknown client key", &o, 1, "cannot log in as root", "authorized_keys");
    let password = common::inventory_variant(&bed, "password.yaml", "user: root", "user: kwpass");
    let o = run(&["plan"], Some(&password));
    assert_advised("sudo asks a password", &o, 1, "`sudo -n` needs a password for user kwpass", "NOPASSWD");

    // A host whose sshd is down.
    bed.kill_sshd("w1").unwrap();
    let o = run(&["plan"], None);
    assert_advised("sshd down", &o, 1, "w1: cannot connect", "check the address, the port and that sshd runs");
    bed.start_sshd("w1").unwrap();
    bed.wait_ssh("w1", std::time::Duration::from_secs(10)).unwrap();

    // Confirmation without a terminal.
    let one = playbook("one.yaml", ONE_COMMAND);
    let o = run(&["apply", "--playbook", &one], None);
    assert_advised("no terminal", &o, 2, "there is no terminal to confirm on", "then run again with --yes");

    // Another run's lock.
    bed.exec(
        "cp1",
        r#"mkdir -p /var/lib/kubewright/lock && echo '{"run_id":"other","by":"ops@bastion2","pid":77,"started_at":"2026-11-22T01:00:00Z","command":"kubewright upgrade"}' > /var/lib/kubewright/lock/holder.json"#,
    )
    .unwrap();
    let o = run(&["apply", "--yes", "--playbook", &one], None);
    assert_advised("lock held", &o, 1, "the cluster is locked by another run", "kubewright lock break");
    // Breaking a lock taken a moment ago.
    bed.exec(
        "cp1",
        r#"echo "{\"run_id\":\"other\",\"by\":\"ops@bastion2\",\"pid\":77,\"started_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"command\":\"kubewright upgrade\"}" > /var/lib/kubewright/lock/holder.json"#,
    )
    .unwrap();
    let o = run(&["lock", "break", "--yes"], None);
    assert_advised("breaking a fresh lock", &o, 2, "may belong to a live run", "if you know it is dead, add --force");
    bed.exec("cp1", "rm -rf /var/lib/kubewright/lock").unwrap();

    // A command that fails on a host.
    let failing = playbook(
        "failing.yaml",
        "name: failing\nsteps:\n  - action: shell\n    hosts: all\n    commands: [\"test $(hostname) != w1 || exit 3\"]\n",
    );
    let o = run(&["apply", "--yes", "--playbook", &failing], None);
    assert_advised("a command fails", &o, 1, "w1", "fix the cause on the host");

    // An unfinished run of another playbook (here: the one that just failed).
    let o = run(&["apply", "--yes", "--playbook", &one], None);
    assert_advised(
        "another playbook unfinished",
        &o,
        2,
        "an earlier run of playbook `failing` did not finish",
        "or pass --restart to abandon it",
    );
    let o = run(&["apply", "--yes", "--restart", "--playbook", &one], None);
    assert!(o.status.success(), "{}", output_text(&o));

    // Day-2 commands on a cluster that is not installed.
    let o = run(&["upgrade", "--to", "1.32"], None);
    assert_advised(
        "upgrade before install",
        &o,
        1,
        "the cluster cannot be read from cp1",
        "install it with `kubewright apply` first",
    );
    let o = run(&["etcd", "snapshot"], None);
    assert_advised("snapshot before install", &o, 1, "cp1 runs no etcd member", "fix these on the hosts");
    assert!(output_text(&o).contains("install the cluster first"), "{}", output_text(&o));
    // A report, not an error: nothing to check on a control plane is critical, and says why.
    let o = run(&["certs", "check"], None);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    assert!(output_text(&o).contains("cp1: no kubeadm certificate in /etc/kubernetes/pki: this control plane is not initialized (install it with `kubewright apply`)"), "{}", output_text(&o));
}
