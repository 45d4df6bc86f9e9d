//! Scripts as a host's `sh` runs them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use kubewright::script::Script;

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
