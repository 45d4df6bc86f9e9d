//! The test bed itself: hosts are isolated from each other and from the machine, SSH is
//! strict about host keys, every fault does what it says, and nothing is left behind, even
//! when the test that made a bed panics or is killed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubewright_testbed::faults::{Fault, FaultAction};
use kubewright_testbed::{Testbed, TestbedOptions};

fn bed(n: usize) -> Option<Testbed> {
    Testbed::up_or_skip(TestbedOptions::new(n))
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[track_caller]
fn ok(o: Output) -> String {
    assert!(o.status.success(), "command failed ({}): {}", o.status, text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn hosts_are_separate_machines() {
    let Some(bed) = bed(2) else { return };
    assert_eq!(ok(bed.ssh("cp1", "root", "hostname").unwrap()).trim(), "cp1");
    assert_eq!(ok(bed.ssh("w1", "root", "cat /etc/hostname").unwrap()).trim(), "w1");

    // A file written on one host is invisible on the other and on the machine.
    ok(bed
        .ssh(
            "cp1",
            "root",
            "mkdir -p /etc/kubernetes && echo secret > /etc/kubernetes/probe && echo x > /usr/local/bin/probe",
        )
        .unwrap());
    let other = bed.ssh("w1", "root", "cat /etc/kubernetes/probe").unwrap();
    assert!(!other.status.success(), "{}", text(&other));
    assert!(!std::path::Path::new("/etc/kubernetes/probe").exists());
    assert!(!std::path::Path::new("/usr/local/bin/probe").exists());
    // ...and kept in the bed's per-host files.
    assert!(bed.host_dir("cp1").join("upper/etc/kubernetes/probe").exists());

    // Kernel settings: read-only outside the host's network namespace.
    let kernel = bed.ssh("cp1", "root", "echo 1 > /proc/sys/kernel/sysrq").unwrap();
    assert!(!kernel.status.success(), "a host changed a kernel setting: {}", text(&kernel));
    ok(bed.ssh("cp1", "root", "echo 1 > /proc/sys/net/ipv4/ip_forward").unwrap());
    assert_eq!(ok(bed.ssh("w1", "root", "cat /proc/sys/net/ipv4/ip_forward").unwrap()).trim(), "0");

    // Own PID namespace: the host's PID 1 is its init, not the machine's.
    let ps = ok(bed.ssh("cp1", "root", "cat /proc/1/cmdline | tr '\\0' ' '").unwrap());
    assert!(ps.contains("__init"), "{ps}");
    // Hosts reach each other by name.
    ok(bed.exec("w1", "getent hosts cp1").unwrap());

    // Host keys of the three types cloud images have, each host its own.
    for kind in ["ed25519", "ecdsa", "rsa"] {
        let keys = ["cp1", "w1"].map(|h| bed.host_public_key(h, kind).unwrap());
        assert_ne!(keys[0], keys[1], "cp1 and w1 share their {kind} host key");
        let scan = Command::new("ssh-keyscan").args(["-T", "5", "-t", kind, &bed.host("cp1").ip.to_string()]).output();
        let scanned = ok(scan.unwrap());
        assert!(scanned.contains(&keys[0]), "cp1 presents another {kind} key: {scanned}");
    }
}

#[test]
fn sudo_users_and_clean_shells() {
    let Some(bed) = bed(1) else { return };
    assert_eq!(ok(bed.ssh("cp1", "kwadmin", "sudo -n id -u").unwrap()).trim(), "0");
    let asks = bed.ssh("cp1", "kwpass", "sudo -n id -u").unwrap();
    assert!(!asks.status.success());
    assert!(text(&asks).contains("sudo: a password is required"), "{}", text(&asks));
    // /root is a fresh home with Debian's dotfiles, not the machine's.
    let started = Instant::now();
    ok(bed.ssh("cp1", "root", "true").unwrap());
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn host_keys_are_checked_strictly() {
    let Some(bed) = bed(1) else { return };
    let ip = bed.host("cp1").ip.to_string();
    let ssh = |known_hosts: &std::path::Path| {
        Command::new("ssh")
            .args(["-i"])
            .arg(bed.client_key_path())
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "ConnectTimeout=5",
            ])
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg(format!("root@{ip}"))
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(ssh(&bed.known_hosts_path()).status.success());

    let unknown = bed.dir().join("empty_known_hosts");
    std::fs::write(&unknown, "").unwrap();
    let o = ssh(&unknown);
    assert!(!o.status.success());
    assert!(text(&o).contains("Host key verification failed"), "{}", text(&o));

    // Another key for the same address: a changed host key is refused loudly.
    let other = bed.dir().join("other_key");
    let _ = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&other).status();
    let pubkey = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let changed = bed.dir().join("changed_known_hosts");
    let fields: Vec<&str> = pubkey.split_whitespace().take(2).collect();
    std::fs::write(&changed, format!("{ip} {}\n", fields.join(" "))).unwrap();
    let o = ssh(&changed);
    assert!(!o.status.success());
    assert!(text(&o).contains("REMOTE HOST IDENTIFICATION HAS CHANGED"), "{}", text(&o));
}

#[test]
fn link_cut_and_heal() {
    let Some(bed) = bed(1) else { return };
    bed.link_down("cp1").unwrap();
    let started = Instant::now();
    let o = Command::new("ssh")
        .arg("-F")
        .arg(bed.ssh_config_path())
        .args(["-o", "ConnectTimeout=2", "cp1", "true"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(started.elapsed() >= Duration::from_secs(2), "a cut link must time out, not refuse");
    // The host itself keeps running.
    ok(bed.exec("cp1", "hostname").unwrap());
    bed.link_up("cp1").unwrap();
    ok(bed.ssh("cp1", "root", "true").unwrap());
}

#[test]
fn sshd_killed_refuses_new_connections_but_keeps_sessions() {
    let Some(bed) = bed(1) else { return };
    let session = Command::new("ssh")
        .arg("-F")
        .arg(bed.ssh_config_path())
        .args(["cp1", "sleep 2; echo still-here"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    bed.kill_sshd("cp1").unwrap();
    let o = bed.ssh("cp1", "root", "true").unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("Connection refused"), "{}", text(&o));
    let out = session.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "still-here");
    bed.start_sshd("cp1").unwrap();
    ok(bed.ssh("cp1", "root", "true").unwrap());
}

/// The median time of a TCP connect to the host's sshd: one round trip.
fn connect_rtt(bed: &Testbed, host: &str) -> Duration {
    let addr = std::net::SocketAddr::from((bed.host(host).ip, 22));
    let mut samples: Vec<Duration> = (0..7)
        .map(|_| {
            let started = Instant::now();
            let _s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[3]
}

#[test]
fn latency_delays_both_directions() {
    let Some(mut bed) = bed(1) else { return };
    let base = connect_rtt(&bed, "cp1");
    bed.add_latency("cp1", 20).unwrap();
    let slow = connect_rtt(&bed, "cp1");
    // 20 ms each way: a round trip takes at least 40 ms more.
    assert!(slow >= base + Duration::from_millis(38), "base {base:?}, with latency {slow:?}");
    ok(bed.ssh("cp1", "root", "true").unwrap());
    bed.clear_latency("cp1").unwrap();
    let healed = connect_rtt(&bed, "cp1");
    assert!(healed < Duration::from_millis(20), "latency removed: {healed:?}");
}

#[test]
fn crash_kills_processes_and_boot_keeps_files() {
    let Some(mut bed) = bed(1) else { return };
    ok(bed.ssh("cp1", "root", "echo kept > /etc/kept; mkdir -p /etc/kubernetes && echo kept > /etc/kubernetes/admin.conf; nohup sleep 1000 >/dev/null 2>&1 &").unwrap());
    bed.crash("cp1").unwrap();
    assert!(bed.host_pid1("cp1").is_none());
    assert!(bed.exec("cp1", "true").is_err(), "a crashed host runs nothing");
    bed.boot("cp1").unwrap();
    assert_eq!(ok(bed.ssh("cp1", "root", "cat /etc/kept /etc/kubernetes/admin.conf").unwrap()), "kept\nkept\n");
    assert_eq!(ok(bed.ssh("cp1", "root", "pgrep -c sleep || true").unwrap()).trim(), "0");
}

#[test]
fn simulator_command_faults() {
    let Some(bed) = bed(1) else { return };
    bed.add_fault(
        "cp1",
        Fault {
            command_prefix: "apt-mark showhold".into(),
            action: FaultAction::Fail { code: 42, stderr: "E: injected\n".into() },
            fired: false,
        },
    )
    .unwrap();
    let o = bed.ssh("cp1", "root", "apt-mark showhold").unwrap();
    assert_eq!(o.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&o.stderr), "E: injected\n");
    bed.clear_faults("cp1").unwrap();
    ok(bed.ssh("cp1", "root", "apt-mark showhold").unwrap());

    bed.add_fault(
        "cp1",
        Fault {
            command_prefix: "dpkg-query -W".into(),
            action: FaultAction::FailOnce { code: 1, stderr: "dpkg: lock\n".into() },
            fired: false,
        },
    )
    .unwrap();
    assert_eq!(bed.ssh("cp1", "root", "dpkg-query -W foo").unwrap().status.code(), Some(1));
    let second = bed.ssh("cp1", "root", "dpkg-query -W foo").unwrap();
    assert!(text(&second).contains("no packages found matching foo"), "second run behaves normally: {}", text(&second));

    bed.add_fault(
        "cp1",
        Fault {
            command_prefix: "systemctl daemon-reload".into(),
            action: FaultAction::Hang { seconds: 2 },
            fired: false,
        },
    )
    .unwrap();
    let started = Instant::now();
    ok(bed.ssh("cp1", "root", "systemctl daemon-reload").unwrap());
    assert!(started.elapsed() >= Duration::from_secs(2));
}

/// A child process runs one of these scenarios (selected by environment) and reports
/// the bed's directory; the parent checks what it left.
#[test]
fn scenario_child() {
    let Ok(scenario) = std::env::var("KUBEWRIGHT_TESTBED_SCENARIO") else { return };
    let bed = Testbed::up(TestbedOptions::new(2)).unwrap();
    println!("BED {}", bed.dir().display());
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    match scenario.as_str() {
        "panic" => panic!("a test failing with a bed up"),
        _ => std::thread::sleep(Duration::from_secs(600)),
    }
}

// The child is returned to the caller, which waits for it (or kills and waits).
#[allow(clippy::zombie_processes)]
fn spawn_scenario(name: &str) -> (std::process::Child, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["scenario_child", "--exact", "--nocapture", "--test-threads=1"])
        .env("KUBEWRIGHT_TESTBED_SCENARIO", name)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        use std::io::BufRead;
        if reader.read_line(&mut line).unwrap() == 0 {
            let status = child.wait();
            panic!("scenario {name} printed no bed ({status:?})");
        }
        // The harness prints `test scenario_child ... ` without a newline before our line.
        if let Some(dir) = line.split("BED ").nth(1) {
            return (child, dir.trim().to_string());
        }
    }
}

fn netns_of(dir: &str) -> Vec<String> {
    let state = std::fs::read_to_string(format!("{dir}/testbed.json")).unwrap_or_default();
    let list =
        String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|ns| state.contains(&format!("\"{ns}\"")))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_panicking_test_leaves_nothing() {
    if kubewright_testbed::bed::missing_prerequisites().is_empty() {
        let (child, dir) = spawn_scenario("panic");
        let state = std::fs::read_to_string(format!("{dir}/testbed.json")).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "the scenario test must fail");
        assert!(!std::path::Path::new(&dir).exists(), "the bed directory was removed");
        let list =
            String::from_utf8_lossy(&Command::new("ip").args(["netns", "list"]).output().unwrap().stdout).into_owned();
        for ns in list.lines().filter_map(|l| l.split_whitespace().next()) {
            assert!(!state.contains(&format!("\"{ns}\"")), "namespace {ns} left behind");
        }
    } else {
        bed(1);
    }
}

#[test]
fn a_killed_test_is_cleaned_up_by_the_next_bed() {
    if !kubewright_testbed::bed::missing_prerequisites().is_empty() {
        bed(1);
        return;
    }
    let (mut child, dir) = spawn_scenario("sleep");
    assert_eq!(netns_of(&dir).len(), 2);
    child.kill().unwrap();
    child.wait().unwrap();
    // No Drop ran: the namespaces are still there until the next bed reaps them.
    let _next = Testbed::up(TestbedOptions::new(1)).unwrap();
    assert!(netns_of(&dir).is_empty(), "stale namespaces left: {:?}", netns_of(&dir));
    assert!(!std::path::Path::new(&dir).exists());
}
