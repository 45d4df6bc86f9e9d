//! Scripts as a host's `sh` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use kubewright::script::{
    RUN_SESSIONS_DIR, Script, in_own_session, quote, run_commands_left, stop_run_commands, time_limited_script,
};

mod common;

#[test]
fn files_removed_on_exit_go_when_the_script_fails_too() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("it's secret.yaml");
    let other = dir.path().join("other secret");
    for (last, code) in [("true", 0), ("false", 1)] {
        std::fs::write(&secret, "token").unwrap();
        std::fs::write(&other, "key").unwrap();
        let script = Script::new()
            .remove_on_exit(secret.to_str().unwrap())
            .remove_on_exit(other.to_str().unwrap())
            .cmd(["cat", secret.to_str().unwrap()])
            .cmd([last]);
        let out = std::process::Command::new("sh").arg("-c").arg(script.to_shell()).output().unwrap();
        assert_eq!(out.status.code(), Some(code));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "token");
        assert!(!secret.exists() && !other.exists(), "both removed after `{last}`");
    }
}

#[test]
fn a_script_its_time_limit_stops_still_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("join.yaml");
    std::fs::write(&secret, "token").unwrap();
    let script = Script::new().remove_on_exit(secret.to_str().unwrap()).cmd(["sleep", "30"]);
    let limited = kubewright::script::time_limited_script(&script, kubewright::duration::Duration::from_secs(1));
    let started = std::time::Instant::now();
    let out = std::process::Command::new("sh").arg("-c").arg(limited.to_shell()).output().unwrap();
    assert_eq!(out.status.code(), Some(kubewright::script::TIMEOUT_EXIT_CODE), "{out:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "stopped by TERM, not by the KILL after the grace");
    assert!(!secret.exists(), "the EXIT trap ran although TERM stopped the script");
}

/// dash runs no EXIT trap when an untrapped signal ends it, and a time limit ends a command
/// with TERM: every hand-written script with an EXIT trap must trap the signals too.
#[test]
fn every_exit_trap_in_the_sources_is_followed_by_the_signal_trap() {
    let mut scripts_checked = 0;
    let mut missing = Vec::new();
    for file in common::rust_sources() {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (n, line) in lines.iter().enumerate() {
            let line = line.trim();
            if line.starts_with("trap ") && line.ends_with(" EXIT") && line != "trap - EXIT" {
                scripts_checked += 1;
                if lines.get(n + 1).map(|l| l.trim()) != Some(kubewright::script::EXIT_ON_SIGNAL) {
                    missing.push(format!("{}:{}", file.display(), n + 1));
                }
            }
        }
    }
    assert!(scripts_checked >= 5, "the scan found the scripts ({scripts_checked})");
    assert!(missing.is_empty(), "EXIT traps without `{}` after them: {missing:?}", kubewright::script::EXIT_ON_SIGNAL);
}

/// A run-session script with its directory in `dir` instead of the host's /run, run here.
fn run_here(script: &Script, dir: &std::path::Path) -> std::process::Command {
    let shell = script.to_shell().replace(
        &format!("RUN_SESSIONS_DIR={RUN_SESSIONS_DIR}"),
        &format!("RUN_SESSIONS_DIR={}", quote(dir.to_str().unwrap())),
    );
    let mut command = std::process::Command::new("sh");
    command.arg("-c").arg(shell).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    command
}

/// The pids of `sleep SECONDS` processes.
fn sleeping(seconds: &str) -> Vec<String> {
    let wanted = format!("sleep\0{seconds}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| {
            let pid = e.ok()?.file_name().into_string().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            (cmdline == wanted.as_bytes()).then_some(pid)
        })
        .collect()
}

/// Issue 18: a stopped run's command under `timeout` (which moves itself and the command
/// into a process group of their own) is stopped with its whole session; a command of the
/// run that starts after the stop does not run.
#[test]
fn a_stop_ends_the_whole_session_of_a_command_under_timeout_and_bars_late_starters() {
    let dir = tempfile::tempdir().unwrap();
    let run = format!("test-{}", std::process::id());
    // A duration no other test sleeps, to find the process by.
    let seconds = format!("60.{}", std::process::id());
    let sleeper = Script::new().cmd(["sleep", seconds.as_str()]);
    let limited = time_limited_script(&sleeper, kubewright::duration::Duration::from_secs(120));
    let mut command = run_here(&in_own_session(&limited, &run), dir.path()).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sleeping(&seconds).is_empty() {
        assert!(std::time::Instant::now() < deadline, "the command never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let left = |run: &str| {
        let out = run_here(&run_commands_left(run), dir.path()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(left(&run).lines().any(|l| l.ends_with(&format!(" sleep {seconds} "))), "{}", left(&run));
    assert_eq!(left("another-run"), "", "another run's commands are not this run's");
    let stop = run_here(&stop_run_commands(&run, 5), dir.path()).output().unwrap();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert_eq!(sleeping(&seconds), Vec::<String>::new(), "the command under timeout is gone");
    assert_eq!(left(&run), "");
    let status = command.wait().unwrap();
    assert!(!status.success(), "the stopped command failed: {status:?}");

    let late = Script::new().cmd(["echo", "late starter ran"]);
    let out = run_here(&in_own_session(&late, &run), dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("was stopped on this host"));
}

/// A command's standard input and exit code pass through its session wrapper.
#[test]
fn a_command_in_its_own_session_keeps_its_input_and_exit_code() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let script = Script::new().cmd(["sh", "-c", "cat; exit 7"]);
    let mut child =
        run_here(&in_own_session(&script, "test-io"), dir.path()).stdin(std::process::Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"to the command\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "to the command\n");
    assert_eq!(std::fs::read_dir(dir.path().join("test-io")).unwrap().count(), 0, "its record removed");
}

/// Runs `script` after kubewright's etcd functions with `bin` first in PATH (fake `crictl` and
/// `ctr` there print what they were asked), where no etcd tool exists on the host itself.
fn with_etcd_tools(bin: &std::path::Path, script: &str) -> std::process::Output {
    let path = format!("{}:/usr/bin:/bin", bin.display());
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{}{}{script}", kubewright::etcd::ETCD_CLIENT, kubewright::etcd::ETCDUTL_ANYWHERE))
        .env("PATH", path)
        .output()
        .unwrap()
}

fn fake(bin: &std::path::Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let path = bin.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn etcd_is_reached_through_its_container_and_never_from_the_hosts_path() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path();
    // No crictl: etcd cannot be asked here (exit 3, the probes' "not checked").
    let o = with_etcd_tools(bin, "etcdctl_as healthcheck-client endpoint health");
    assert_eq!(o.status.code(), Some(kubewright::etcd::CRICTL_MISSING), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("crictl is not installed on this control plane"));

    // The etcd container by the kubelet's labels; etcdctl with kubeadm's certificates in it.
    fake(
        bin,
        "crictl",
        r#"case "$1" in
  ps) echo "$@" > "$(dirname "$0")/ps-args"; cat "$(dirname "$0")/containers" 2>/dev/null ;;
  exec) shift; printf '%s\n' "$@" ;;
esac"#,
    );
    std::fs::write(bin.join("containers"), "abc123\n").unwrap();
    let o = with_etcd_tools(bin, "etcdctl_as server member list");
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().collect::<Vec<_>>(),
        [
            "abc123",
            "etcdctl",
            "--endpoints=https://127.0.0.1:2379",
            "--cacert=/etc/kubernetes/pki/etcd/ca.crt",
            "--cert=/etc/kubernetes/pki/etcd/server.crt",
            "--key=/etc/kubernetes/pki/etcd/server.key",
            "member",
            "list"
        ]
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("ps-args")).unwrap().trim(),
        "ps -q --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=etcd"
    );
    // The offline tool where the member runs: in its container, etcdutl where the image has
    // it (3.6)...
    let status = "etcdutl_at registry.k8s.io/etcd:3.6.4-0 /var/lib/etcd snapshot status /var/lib/etcd/s.db";
    let o = with_etcd_tools(bin, status);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().take(3).collect::<Vec<_>>(),
        ["abc123", "etcdutl", "snapshot"]
    );
    // ... and etcdctl, which still has the offline commands, in the 3.5 images without it.
    fake(
        bin,
        "crictl",
        r#"case "$1" in
  ps) cat "$(dirname "$0")/containers" 2>/dev/null ;;
  exec) shift; if [ "$2" = etcdutl ]; then echo 'exec: "etcdutl": executable file not found in $PATH' >&2; exit 1; fi; printf '%s\n' "$@" ;;
esac"#,
    );
    let o = with_etcd_tools(bin, status);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().take(3).collect::<Vec<_>>(),
        ["abc123", "etcdctl", "snapshot"]
    );

    // No etcd container runs: etcdctl fails saying so; etcdutl runs from the member's image
    // in a one-off container that sees the data directory alone.
    std::fs::write(bin.join("containers"), "").unwrap();
    let o = with_etcd_tools(bin, "etcdctl_as server member list");
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no etcd container runs on this control plane"), "{o:?}");
    // (The image's etcdutl is probed in a one-off container first: this image has it.)
    fake(bin, "ctr", r#"printf '%s\n' "$@""#);
    let o = with_etcd_tools(
        bin,
        "etcdutl_at registry.k8s.io/etcd:3.5.15-0 /var/lib/etcd snapshot status /var/lib/etcd/s.db",
    );
    assert!(o.status.success(), "{o:?}");
    let words: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect();
    assert_eq!(
        words[..6],
        ["-n", "k8s.io", "run", "--rm", "--mount", "type=bind,src=/var/lib/etcd,dst=/var/lib/etcd,options=rbind:rw"]
    );
    assert_eq!(words[6], "registry.k8s.io/etcd:3.5.15-0");
    assert!(words[7].starts_with("kubewright-etcdutl-"));
    assert_eq!(words[8..], ["etcdutl", "snapshot", "status", "/var/lib/etcd/s.db"]);
    // A failing one-off container says where to look.
    fake(bin, "ctr", r#"echo 'ctr: image "registry.k8s.io/etcd:3.5.15-0": not found' >&2; exit 1"#);
    let o = with_etcd_tools(
        bin,
        "etcdutl_at registry.k8s.io/etcd:3.5.15-0 /var/lib/etcd snapshot status /var/lib/etcd/s.db",
    );
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(": not found") && err.contains("is the image on this host (crictl images)?"), "{err}");
}

/// The facts script is one shell: a check that finds a tool missing (no openssl for the
/// key-pair check, no `ip`, no `ss`) must not end it, or every later section is lost there.
#[test]
fn the_facts_script_prints_every_section_on_a_host_without_its_tools() {
    // A PATH with only `sh`: every other program is missing.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("/bin/sh", bin.path().join("sh")).unwrap();
    let script = kubewright::facts::gather::script(&["/etc/kubewright/none.conf".to_string()]);
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(script.to_shell())
        .env("PATH", bin.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let last = "@@kubewright-fact file /etc/kubewright/none.conf@@";
    assert!(text.contains("@@kubewright-fact key-pairs@@") && text.contains(last), "{text}");
}
