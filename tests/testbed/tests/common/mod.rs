//! Running a script on a bed host over SSH, as root, and what it printed.
#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it

use std::process::Output;

use kubewright_testbed::Testbed;

/// stdout, then stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `script`'s stdout; the test fails when the script does.
#[track_caller]
pub fn ok(bed: &Testbed, host: &str, script: &str) -> String {
    let o = bed.ssh(host, "root", script).unwrap();
    assert!(o.status.success(), "`{script}` on {host} failed ({}):\n{}", o.status, text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `script`'s exit code (-1 for a signal) and all it printed; the test fails when it passes.
#[track_caller]
pub fn fails_with_code(bed: &Testbed, host: &str, script: &str) -> (i32, String) {
    let o = bed.ssh(host, "root", script).unwrap();
    assert!(!o.status.success(), "`{script}` on {host} should fail:\n{}", text(&o));
    (o.status.code().unwrap_or(-1), text(&o))
}

/// All a failing `script` printed; the test fails when it passes.
#[track_caller]
pub fn fails(bed: &Testbed, host: &str, script: &str) -> String {
    fails_with_code(bed, host, script).1
}
