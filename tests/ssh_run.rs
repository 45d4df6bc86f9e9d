//! `kubewright run` against real sshd hosts (the test bed): output grouped per host and hosts
//! with identical results grouped, exit codes, JSON,
//! sudo, strict host keys, unreachable hosts, and no SSH master left after the run. Every test
//! runs once per transport.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Output};

use kubewright_testbed::{Testbed, TestbedOptions, on_both_transports};

mod common;

/// The binary, on the given transport.
fn kubewright_cmd(transport: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubewright"));
    cmd.env("NO_COLOR", "1").env("KUBEWRIGHT_TRANSPORT", transport);
    cmd
}

fn kubewright(transport: &str, args: &[&str]) -> Output {
    kubewright_cmd(transport).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The bed's inventory with `from` replaced by `to`, written next to it.
fn inv(bed: &Testbed) -> String {
    bed.inventory_path().display().to_string()
}

fn runs_on_every_host_and_groups_output(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(3)) else { return };
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "--", "hostname"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        stdout(&o),
        "== cp1 (exit 0) ==\ncp1\n== w1 (exit 0) ==\nw1\n== w2 (exit 0) ==\nw2\n3 hosts: 3 ok, 0 failed\n"
    );

    // Hosts with identical results share one header, their names folded (as `clush -b`);
    // `--no-group` shows each on its own.
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "--shell", "echo same; test $(hostname) != w2"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o), "== cp1, w1 (exit 0) ==\nsame\n== w2 (exit 1) ==\nsame\n3 hosts: 2 ok, 1 failed\n");
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "--no-group", "--", "echo", "same"]);
    assert_eq!(
        stdout(&o),
        "== cp1 (exit 0) ==\nsame\n== w1 (exit 0) ==\nsame\n== w2 (exit 0) ==\nsame\n3 hosts: 3 ok, 0 failed\n"
    );
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "--hosts", "worker", "--", "echo", "same"]);
    assert_eq!(stdout(&o), "== w[1-2] (exit 0) ==\nsame\n2 hosts: 2 ok, 0 failed\n");

    // Words stay words: a hostile argument is one argument, not shell.
    let o = kubewright(
        transport,
        &["run", "-i", &inv(&bed), "--hosts", "cp1", "--", "echo", "a; touch /tmp/pwned", "$(id)"],
    );
    assert!(stdout(&o).contains("a; touch /tmp/pwned $(id)\n"), "{}", stdout(&o));
    assert!(!bed.exec("cp1", "test -e /tmp/pwned").unwrap().status.success());
}

fn exit_codes_stderr_and_json(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    let o = kubewright(
        transport,
        &["run", "-i", &inv(&bed), "--hosts", "worker", "--shell", "echo out; echo err >&2; exit 3"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "== w1 (exit 3) ==\nout\nstderr: err\n1 hosts: 0 ok, 1 failed\n");
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "-o", "json", "--shell", "test $(hostname) = cp1"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["ok"], 1);
    assert_eq!(doc["failed"], 1);
    assert_eq!(doc["hosts"][1]["host"], "w1");
    assert_eq!(doc["hosts"][1]["exit_code"], 1);
    // A program the host does not have: the shell's 127 and its message, not a lost link
    // (the openssh crate reports 127 as "remote command not found").
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "--hosts", "worker", "--shell", "no-such-tool --version"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.starts_with("== w1 (exit 127) ==\n") && out.contains("no-such-tool: not found"), "{out}");
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "--hosts", "worker", "--", "sh", "-c", "exit 127"]);
    assert_eq!(stdout(&o), "== w1 (exit 127) ==\n1 hosts: 0 ok, 1 failed\n", "{}", String::from_utf8_lossy(&o.stderr));
}

fn several_commands_run_in_order_and_stop_at_the_first_failure(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    let snippets = ["echo one > /tmp/order", "test $(hostname) = cp1", "echo two >> /tmp/order"];
    let inventory = inv(&bed);
    let mut args = vec!["run", "-i", inventory.as_str()];
    for s in snippets {
        args.extend(["--shell", s]);
    }
    let o = kubewright(transport, &args);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        "== cp1 (exit 0) ==\n== w1 (exit 1 at command 2 of 3; the rest not run) ==\n2 hosts: 1 ok, 1 failed\n"
    );
    assert_eq!(bed.exec("cp1", "cat /tmp/order").unwrap().stdout, b"one\ntwo\n");
    assert_eq!(bed.exec("w1", "cat /tmp/order").unwrap().stdout, b"one\n");
}

fn streamed_lines_arrive_while_the_command_still_runs(transport: &str) {
    use std::io::BufRead;
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    // The command waits for a file the test creates only after seeing the first line: the run
    // can only finish if that line was printed before the command ended.
    let snippet = "echo started; while ! test -e /tmp/go; do sleep 0.1; done; echo warn >&2; echo done";
    let mut child = kubewright_cmd(transport)
        .args(["run", "-i", &inv(&bed), "--stream", "--shell", snippet])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "cp1: started");
    assert!(bed.exec("cp1", "touch /tmp/go").unwrap().status.success());
    let mut rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    // stdout and stderr travel on separate channels: their relative order is not kept.
    rest[..2].sort();
    assert_eq!(rest, ["cp1 stderr: warn", "cp1: done", "== cp1 (exit 0) ==", "1 hosts: 1 ok, 0 failed"]);

    // JSON: one object per line, then the result.
    let o = kubewright(transport, &["run", "-i", &inv(&bed), "-o", "json", "--stream", "--shell", "echo a; echo b"]);
    let text = stdout(&o);
    let mut values = serde_json::Deserializer::from_str(&text).into_iter::<serde_json::Value>();
    let first = values.next().unwrap().unwrap();
    assert_eq!(first, serde_json::json!({"event": "output", "host": "cp1", "stream": "stdout", "line": "a"}));
    assert_eq!(values.next().unwrap().unwrap()["line"], "b");
    assert_eq!(values.next().unwrap().unwrap()["ok"], 1);
}

fn a_timeout_stops_the_command_on_the_host(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    let o = kubewright(
        transport,
        &[
            "run",
            "-i",
            &inv(&bed),
            "--timeout",
            "2s",
            "--shell",
            "if [ $(hostname) = w1 ]; then echo $$ > /tmp/hung.pid; sleep 600; fi; echo fine",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "== cp1 (exit 0) ==\nfine\n== w1 (timed out after 2s) ==\n2 hosts: 1 ok, 1 failed\n");
    // Killed there, not merely abandoned: the shell that waited is gone.
    let pid = String::from_utf8(bed.exec("w1", "cat /tmp/hung.pid").unwrap().stdout).unwrap();
    assert!(!bed.exec("w1", &format!("kill -0 {}", pid.trim())).unwrap().status.success());
    // The kill reaches the command's process group a moment after the run ends.
    assert!(
        common::eventually(std::time::Duration::from_secs(5), || {
            !bed.exec("w1", "pgrep -x sleep").unwrap().status.success()
        }),
        "the command's children live on"
    );

    let o = kubewright(transport, &["run", "-i", &inv(&bed), "--timeout", "0s", "--", "true"]);
    assert_eq!(o.status.code(), Some(2), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("would stop every command at once"));
}

fn become_uses_sudo_and_explains_a_password_prompt(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    let sudo = common::inventory_variant(&bed, "sudo.yaml", "user: root", "user: kwadmin");
    let o = kubewright(transport, &["run", "-i", &sudo, "--", "id", "-u"]);
    assert_eq!(stdout(&o), "== cp1 (exit 0) ==\n0\n1 hosts: 1 ok, 0 failed\n");
    let pass = common::inventory_variant(&bed, "pass.yaml", "user: root", "user: kwpass");
    let o = kubewright(transport, &["run", "-i", &pass, "--", "id", "-u"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("error: cp1: `sudo -n` needs a password for user kwpass"), "{}", stdout(&o));
    assert!(stdout(&o).contains("NOPASSWD"), "{}", stdout(&o));
}

fn host_keys_are_strict_by_default(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    let ip = bed.host("cp1").ip.to_string();
    let empty = bed.dir().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let kh = bed.known_hosts_path().display().to_string();
    let unknown = common::inventory_variant(
        &bed,
        "unknown.yaml",
        &format!("knownHosts: {kh}"),
        &format!("knownHosts: {}", empty.display()),
    );
    let o = kubewright(transport, &["run", "-i", &unknown, "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("the host key of {ip}:22 is not trusted: it is not in known_hosts; it presents SHA256:")),
        "{out}"
    );
    assert!(out.contains(&format!("    {ip} ssh-ed25519 AAAA")), "the line to add: {out}");
    assert!(out.contains("--accept-new-host-keys"), "{out}");

    // With the flag the key is recorded, and the next run trusts it without the flag.
    let o = kubewright(transport, &["run", "-i", &unknown, "--accept-new-host-keys", "--", "true"]);
    assert!(o.status.success(), "{}", stdout(&o));
    assert!(Command::new("ssh-keygen").args(["-F", &ip, "-f"]).arg(&empty).output().unwrap().status.success());
    assert!(kubewright(transport, &["run", "-i", &unknown, "--", "true"]).status.success());

    // A changed key is refused even with the flag.
    let pubkey = common::fresh_public_key(&bed.dir().join("other"));
    let changed = bed.dir().join("changed_known_hosts");
    std::fs::write(&changed, format!("{ip} {pubkey}\n")).unwrap();
    let changed_inv = common::inventory_variant(
        &bed,
        "changed.yaml",
        &format!("knownHosts: {kh}"),
        &format!("knownHosts: {}", changed.display()),
    );
    let o = kubewright(transport, &["run", "-i", &changed_inv, "--accept-new-host-keys", "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("its key CHANGED since it was recorded"), "{}", stdout(&o));

    // An unreadable line is skipped (as ssh does); russh, which reads the file itself, names it.
    let garbled = bed.dir().join("garbled_known_hosts");
    std::fs::write(&garbled, format!("{ip} ssh-ed25519 not-base64!!\n")).unwrap();
    let garbled_inv = common::inventory_variant(
        &bed,
        "garbled.yaml",
        &format!("knownHosts: {kh}"),
        &format!("knownHosts: {}", garbled.display()),
    );
    let o = kubewright(transport, &["run", "-i", &garbled_inv, "--", "true"]);
    assert_eq!(o.status.code(), Some(1));
    if transport == "russh" {
        assert!(stdout(&o).contains("known_hosts lines that could not be read were skipped: "), "{}", stdout(&o));
    }
}

fn unreachable_hosts_fail_alone_and_no_master_outlives_the_run(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    let quick = common::inventory_variant(&bed, "quick.yaml", "ssh:\n", "ssh:\n  connectTimeout: 2s\n");
    bed.link_down("w1").unwrap();
    // A temporary directory of this run's own, so that other tests' runs are not counted.
    let tmp = tempfile::tempdir().unwrap();
    let o = kubewright_cmd(transport)
        .args(["run", "-i", &quick, "--", "hostname"])
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("== cp1 (exit 0) ==\ncp1\n"), "the reachable host still ran: {out}");
    assert!(out.contains("== w1 (failed) ==\nerror: w1: cannot connect to "), "{out}");
    bed.link_up("w1").unwrap();
    // Every master connection ended with the run, and its control directory is gone.
    let left = Command::new("pgrep").arg("-f").arg(tmp.path()).output().unwrap();
    assert!(left.stdout.is_empty(), "ssh masters left: {}", String::from_utf8_lossy(&left.stdout));
    let entries: Vec<_> = tmp.path().read_dir().unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(entries.is_empty(), "left in the run's TMPDIR: {entries:?}");
}

fn reaches_hosts_through_the_bastion(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(3)) else { return };
    let bastion = bed.host("cp1").ip.to_string();
    let via = common::inventory_variant(
        &bed,
        "bastion.yaml",
        "ssh:\n",
        &format!("ssh:\n  bastion:\n    host: {bastion}\n    user: root\n"),
    );
    // Make w1 unreachable from the machine except through cp1: drop the machine's traffic
    // to it inside w1's namespace (cp1's traffic still passes).
    let machine = bastion.rsplit_once('.').map(|(net, _)| format!("{net}.1")).unwrap();
    // (This machine's iptables in w1's network namespace: a fresh host has none of its own.)
    let blocked = Command::new("ip")
        .args(["netns", "exec", &bed.host("w1").netns, "iptables-legacy", "-A", "INPUT", "-s", &machine])
        .args(["-p", "tcp", "--dport", "22", "-j", "DROP"])
        .output()
        .unwrap();
    assert!(blocked.status.success(), "{}", String::from_utf8_lossy(&blocked.stderr));
    let direct = kubewright(
        transport,
        &[
            "run",
            "-i",
            &common::inventory_variant(&bed, "direct.yaml", "ssh:\n", "ssh:\n  connectTimeout: 2s\n"),
            "--hosts",
            "w1",
            "--",
            "hostname",
        ],
    );
    assert_eq!(direct.status.code(), Some(1), "w1 must not be reachable directly");
    let o = kubewright(transport, &["run", "-i", &via, "--hosts", "w1,w2", "--", "hostname"]);
    assert!(o.status.success(), "{}{}", stdout(&o), String::from_utf8_lossy(&o.stderr));
    assert_eq!(stdout(&o), "== w1 (exit 0) ==\nw1\n== w2 (exit 0) ==\nw2\n2 hosts: 2 ok, 0 failed\n");

    // Issue 18 (run-safety review, item 13): a host key refused through the bastion names the
    // host it belongs to, with that host's own key and line. w1's key is read through the
    // bastion: from here w1's address is unreachable (or could be another machine).
    let w1 = bed.host("w1").ip.to_string();
    let recorded = std::fs::read_to_string(bed.known_hosts_path()).unwrap();
    let via_known_hosts = |name: &str, edit: &dyn Fn(&str) -> Option<String>| {
        let path = bed.dir().join(format!("{name}_known_hosts"));
        std::fs::write(&path, recorded.lines().filter_map(|l| edit(l).map(|l| l + "\n")).collect::<String>()).unwrap();
        let text = std::fs::read_to_string(&via).unwrap();
        let inventory = bed.dir().join(format!("{name}.yaml"));
        let kh = bed.known_hosts_path().display().to_string();
        std::fs::write(&inventory, text.replace(&kh, &path.display().to_string())).unwrap();
        inventory.display().to_string()
    };
    let without = |ip: &str| {
        let prefix = format!("{ip} ");
        move |l: &str| (!l.starts_with(&prefix)).then(|| l.to_string())
    };
    let o =
        kubewright(transport, &["run", "-i", &via_known_hosts("no_w1", &without(&w1)), "--hosts", "w1", "--", "true"]);
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "error: w1: the host key of {w1}:22 is not trusted: it is not in known_hosts; it presents SHA256:"
        )),
        "{out}"
    );
    assert!(out.contains(&format!("\n    {w1} {}\n", bed.host_public_key("w1", "ed25519").unwrap())), "{out}");

    // The bastion's key unknown, then changed: the bastion is named, with its own line, and
    // the host behind it is not blamed.
    let bastion_line = format!("\n    {bastion} {}\n", bed.host_public_key("cp1", "ed25519").unwrap());
    let impostor = common::fresh_public_key(&bed.dir().join("impostor"));
    let replaced = |l: &str| {
        Some(if l.starts_with(&format!("{bastion} ")) { format!("{bastion} {impostor}") } else { l.to_string() })
    };
    for (name, edit, what) in [
        ("no_bastion", &without(&bastion) as &dyn Fn(&str) -> Option<String>, "it is not in known_hosts"),
        ("changed_bastion", &replaced, "its key CHANGED since it was recorded"),
    ] {
        let o = kubewright(transport, &["run", "-i", &via_known_hosts(name, edit), "--hosts", "w1", "--", "true"]);
        assert_eq!(o.status.code(), Some(1));
        let out = stdout(&o);
        let named =
            format!("== w1 (failed) ==\nerror: bastion {bastion}: the host key of {bastion}:22 is not trusted: {what}");
        assert!(out.contains(&named), "{name}: {out}");
        assert!(out.contains(&bastion_line), "{name}: {out}");
    }
}

fn logs_in_with_agent_keys_and_explains_a_refused_key(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    let key_line = format!("  identityFile: {}\n", bed.client_key_path().display());
    let no_key = common::inventory_variant(&bed, "agent.yaml", &key_line, "");
    // A home without keys, so only the agent can offer one.
    let home = tempfile::tempdir().unwrap();
    let agent_dir = tempfile::tempdir().unwrap();
    let socket = agent_dir.path().join("agent.sock");
    let mut agent =
        Command::new("ssh-agent").arg("-D").arg("-a").arg(&socket).stdout(std::process::Stdio::null()).spawn().unwrap();
    // The socket appears when the agent binds it, a moment before it listens: retry.
    let mut added = None;
    for _ in 0..100 {
        let o = Command::new("ssh-add").arg(bed.client_key_path()).env("SSH_AUTH_SOCK", &socket).output().unwrap();
        let ok = o.status.success();
        added = Some(o);
        if ok {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = added.unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let o = kubewright_cmd(transport)
        .args(["run", "-i", &no_key, "--", "hostname"])
        .env("HOME", home.path())
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(
        stdout(&o),
        "== cp1 (exit 0) ==\ncp1\n1 hosts: 1 ok, 0 failed\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A key the host does not accept: the error says which user and what to check.
    let stranger = bed.dir().join("stranger");
    Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&stranger).status().unwrap();
    let wrong =
        common::inventory_variant(&bed, "wrong.yaml", &key_line, &format!("  identityFile: {}\n", stranger.display()));
    let o =
        kubewright_cmd(transport).args(["run", "-i", &wrong, "--", "true"]).env("HOME", home.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("error: cp1: cannot log in as root: "), "{out}");
    assert!(out.contains("authorized_keys"), "{out}");
}

/// Issue 18 (run-safety review, item 7 and "Supply chain"): a host recorded in known_hosts by
/// its RSA key only is asked for an RSA key signed with SHA-2 and reached, on both transports
/// (russh asked for `ssh-rsa`, got the host's ed25519 key and called it changed), logging in
/// with an RSA key (signed with SHA-2: this sshd, as OpenSSH's since 8.8, takes no SHA-1); an
/// old sshd that signs with `ssh-rsa` (SHA-1) only is refused by both, saying so.
#[test]
fn a_host_known_by_its_rsa_key_only_is_reached_and_sha1_rsa_is_refused() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    let ip = bed.host("cp1").ip.to_string();
    let rsa = bed.host_public_key("cp1", "rsa").unwrap();
    let rsa_known_hosts = bed.dir().join("rsa_known_hosts");
    std::fs::write(&rsa_known_hosts, format!("{ip} {rsa}\n[{ip}]:2222 {rsa}\n")).unwrap();
    let rsa_login = bed.dir().join("id_rsa");
    let made =
        Command::new("ssh-keygen").args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"]).arg(&rsa_login).status();
    assert!(made.unwrap().success());
    let login_key = std::fs::read_to_string(rsa_login.with_extension("pub")).unwrap();
    let authorized = bed.exec("cp1", &format!("echo '{}' >> /root/.ssh/authorized_keys", login_key.trim())).unwrap();
    assert!(authorized.status.success());
    let known_by_rsa = bed.dir().join("rsa.yaml");
    let text = std::fs::read_to_string(bed.inventory_path())
        .unwrap()
        .replace(&bed.known_hosts_path().display().to_string(), &rsa_known_hosts.display().to_string())
        .replace(&bed.client_key_path().display().to_string(), &rsa_login.display().to_string());
    std::fs::write(&known_by_rsa, text).unwrap();
    let known_by_rsa = known_by_rsa.display().to_string();
    for transport in ["openssh", "russh"] {
        let o = kubewright(transport, &["run", "-i", &known_by_rsa, "--", "hostname"]);
        assert_eq!(stdout(&o), "== cp1 (exit 0) ==\ncp1\n1 hosts: 1 ok, 0 failed\n", "{transport}");
    }

    // The same host key behind a second sshd that offers it with SHA-1 signatures only.
    let old = bed
        .exec(
            "cp1",
            "/usr/sbin/sshd -f /run/kubewright-testbed/sshd_config -o Port=2222 -o PidFile=/run/sshd-2222.pid \
             -o HostKeyAlgorithms=ssh-rsa",
        )
        .unwrap();
    assert!(old.status.success(), "{}", String::from_utf8_lossy(&old.stderr));
    let sha1_only = bed.dir().join("sha1.yaml");
    let text = std::fs::read_to_string(&known_by_rsa).unwrap().replace("ssh:\n", "ssh:\n  port: 2222\n");
    std::fs::write(&sha1_only, text).unwrap();
    for transport in ["openssh", "russh"] {
        let o = kubewright(transport, &["run", "-i", &sha1_only.display().to_string(), "--", "hostname"]);
        assert_eq!(o.status.code(), Some(1), "{transport}: {}", stdout(&o));
        let out = stdout(&o);
        assert!(out.contains(&format!("error: cp1: cannot connect to {ip}:2222: ")), "{transport}: {out}");
        assert!(out.contains("`ssh-rsa` signs with SHA-1"), "{transport}: {out}");
        assert!(!out.contains("not trusted"), "not a question of trust: {out}");
    }
}

/// Issue 18 (run-safety review, item 16): what a host prints reaches the terminal without the
/// sequences a terminal would act on (a window title, a screen clear, a clipboard write, the
/// cursor moved up, a carriage return), grouped or streamed, on stdout or stderr.
#[test]
fn escape_sequences_a_host_prints_never_reach_the_terminal() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    let clean = |o: &Output| {
        let all = [o.stdout.as_slice(), o.stderr.as_slice()].concat();
        assert!(!all.iter().any(|&b| b == 0x1b || b == b'\r' || b == 0x07), "{:?}", common::output_text(o));
    };
    for transport in ["openssh", "russh"] {
        let o = kubewright(transport, &["run", "-i", &inv(&bed), "--", "printf", r"\033]0;owned\007\033[2Jhi\n"]);
        assert_eq!(stdout(&o), "== cp1 (exit 0) ==\nhi\n1 hosts: 1 ok, 0 failed\n", "{transport}");
        clean(&o);

        let snippet = r"printf '\033]52;c;Y3VybCBldmlsIHwgc2g=\007out\n'; printf '\033[1A\033[2Kerr\r\n' >&2; exit 1";
        let o = kubewright(transport, &["run", "-i", &inv(&bed), "--shell", snippet]);
        assert_eq!(stdout(&o), "== cp1 (exit 1) ==\nout\nstderr: err\n1 hosts: 0 ok, 1 failed\n", "{transport}");
        clean(&o);
        let o = kubewright(transport, &["run", "-i", &inv(&bed), "--stream", "--shell", snippet]);
        let mut lines: Vec<&str> = std::str::from_utf8(&o.stdout).unwrap().lines().collect();
        // stdout and stderr travel on separate channels: their relative order is not kept.
        lines[..2].sort();
        assert_eq!(lines, ["cp1 stderr: err", "cp1: out", "== cp1 (exit 1) ==", "1 hosts: 0 ok, 1 failed"]);
        clean(&o);
    }
}

#[test]
fn the_inventory_chooses_the_transport_unless_the_command_line_does() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    // A PATH without `ssh`: only the in-process transport can reach the host (it then reads
    // ssh_config itself, as `ssh -G` is not there to ask). A PATH whose `ssh` fails would make
    // the russh transport refuse: `ssh -G` failing is ssh refusing the configuration.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let russh = common::inventory_variant(&bed, "russh.yaml", "ssh:\n", "ssh:\n  transport: russh\n");
    let run = |inventory: &str, extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kubewright"))
            .args(["run", "-i", inventory])
            .args(extra)
            .args(["--", "true"])
            .env("PATH", &path)
            .env_remove("KUBEWRIGHT_TRANSPORT")
            .output()
            .unwrap()
    };
    assert!(run(&russh, &[]).status.success(), "ssh.transport: russh needs no ssh binary");
    assert_eq!(run(&russh, &["--transport", "openssh"]).status.code(), Some(1), "the flag wins");
    assert_eq!(run(&inv(&bed), &[]).status.code(), Some(1), "openssh is the default");
}

/// Issue 20: an inventory without `ssh.user` leaves the user to ~/.ssh/config (`$HOME`'s, set
/// for the kubewright process only), which `ssh -G` reads on both transports; `become` then
/// follows the user who logs in, and `-v` says where each setting came from.
fn ssh_config_gives_the_user_the_inventory_leaves_out(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(3)) else { return };
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    let cp1 = bed.host("cp1").ip.to_string();
    std::fs::write(home.path().join(".ssh/config"), format!("Host {cp1}\n  User kwadmin\n")).unwrap();
    let with_home = |inventory: &str, args: &[&str]| {
        let mut cmd = kubewright_cmd(transport);
        cmd.args(["run", "-i", inventory]).args(args).env("HOME", home.path());
        cmd.output().unwrap()
    };

    // Without `become` in the inventory either: sudo where the user is not root.
    let no_user = common::inventory_variant(&bed, "no-user.yaml", "  user: root\n", "");
    let o = with_home(&no_user, &["-v", "--shell", "echo ${SUDO_USER:-direct} $(id -un)"]);
    assert_eq!(
        stdout(&o),
        "== cp1 (exit 0) ==\nkwadmin root\n== w[1-2] (exit 0) ==\ndirect root\n3 hosts: 3 ok, 0 failed\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    let line = format!(
        ":: cp1: ssh kwadmin@{cp1}:22 (user: ssh_config, port: default, host: inventory address); identity {} (inventory)",
        bed.client_key_path().display()
    );
    assert!(stderr.contains(&line), "{stderr}");
    assert!(stderr.contains("become sudo (default: the user is not root); ssh_config read by ssh -G"), "{stderr}");
    let w1 = bed.host("w1").ip.to_string();
    assert!(stderr.contains(&format!(":: w1: ssh root@{w1}:22 (user: default, port: default")), "{stderr}");

    // The issue's check: with `become: false`, `whoami` says who logged in.
    let no_become = common::inventory_variant(&bed, "no-user-no-become.yaml", "  user: root\n", "  become: false\n");
    let o = with_home(&no_become, &["--", "whoami"]);
    assert_eq!(
        stdout(&o),
        "== cp1 (exit 0) ==\nkwadmin\n== w[1-2] (exit 0) ==\nroot\n3 hosts: 3 ok, 0 failed\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // The inventory's user wins over ssh_config's.
    let o = with_home(&inv(&bed), &["--hosts", "cp1", "--", "whoami"]);
    assert_eq!(stdout(&o), "== cp1 (exit 0) ==\nroot\n1 hosts: 1 ok, 0 failed\n");

    // What russh cannot honour is refused, naming the host and the setting; ssh does it.
    let w2 = bed.host("w2").ip.to_string();
    std::fs::write(
        home.path().join(".ssh/config"),
        format!("Host {w2}\n  ProxyCommand ssh -F {} -W %h:%p cp1\n", bed.ssh_config_path().display()),
    )
    .unwrap();
    let o = with_home(&no_user, &["--hosts", "w2", "--", "hostname"]);
    if transport == "russh" {
        assert_eq!(o.status.code(), Some(1));
        let out = stdout(&o);
        assert!(
            out.contains("error: w2: ssh_config sets `ProxyCommand ssh -F ")
                && out.contains(&format!(
                    "-W %h:%p cp1` for {w2}, which the russh transport cannot honour: use --transport openssh"
                )),
            "{out}"
        );
    } else {
        assert_eq!(
            stdout(&o),
            "== w2 (exit 0) ==\nw2\n1 hosts: 1 ok, 0 failed\n",
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // ProxyJump: w2 is reached through cp1 (w2's sshd sees cp1's address), the jump host's key
    // and known_hosts from its own ssh_config block, on both transports.
    std::fs::write(
        home.path().join(".ssh/config"),
        format!(
            "Host {w2}\n  ProxyJump root@{cp1}\nHost {cp1}\n  IdentityFile {}\n  UserKnownHostsFile {}\n  BatchMode yes\n",
            bed.client_key_path().display(),
            bed.known_hosts_path().display()
        ),
    )
    .unwrap();
    let o = with_home(&no_user, &["-v", "--hosts", "w2", "--shell", "echo ${SSH_CONNECTION%% *}"]);
    assert_eq!(
        stdout(&o),
        format!("== w2 (exit 0) ==\n{cp1}\n1 hosts: 1 ok, 0 failed\n"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains(&format!("; ProxyJump root@[{cp1}] (ssh_config)")), "{stderr}");

    // Without an `ssh` binary the russh transport reads the files itself (this machine's
    // /etc/ssh/ssh_config too); a `Match` block, which only ssh can evaluate, is refused.
    if transport == "russh" {
        let empty = tempfile::tempdir().unwrap();
        let without_ssh = |inventory: &str| {
            let mut cmd = kubewright_cmd(transport);
            cmd.args(["run", "-i", inventory, "--", "whoami"]).env("HOME", home.path()).env("PATH", empty.path());
            cmd.output().unwrap()
        };
        let config = home.path().join(".ssh/config");
        std::fs::write(&config, format!("Host {cp1}\n  User kwadmin\n")).unwrap();
        let o = without_ssh(&no_become);
        assert_eq!(
            stdout(&o),
            "== cp1 (exit 0) ==\nkwadmin\n== w[1-2] (exit 0) ==\nroot\n3 hosts: 3 ok, 0 failed\n",
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::write(&config, format!("Match host {cp1}\n  User kwadmin\n")).unwrap();
        let o = without_ssh(&no_become);
        assert_eq!(o.status.code(), Some(1));
        let out = stdout(&o);
        assert!(
            out.contains(&format!(
                "== cp1 (failed) ==\nerror: cp1: {} has a `Match` block, which only ssh can evaluate",
                config.display()
            )),
            "{out}"
        );
    }
}

on_both_transports!(
    ssh_config_gives_the_user_the_inventory_leaves_out,
    runs_on_every_host_and_groups_output,
    exit_codes_stderr_and_json,
    several_commands_run_in_order_and_stop_at_the_first_failure,
    streamed_lines_arrive_while_the_command_still_runs,
    a_timeout_stops_the_command_on_the_host,
    become_uses_sudo_and_explains_a_password_prompt,
    host_keys_are_strict_by_default,
    unreachable_hosts_fail_alone_and_no_master_outlives_the_run,
    reaches_hosts_through_the_bastion,
    logs_in_with_agent_keys_and_explains_a_refused_key,
);
