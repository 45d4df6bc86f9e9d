//! Scripts as a host's `sh` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use kubewright::script::Script;

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
