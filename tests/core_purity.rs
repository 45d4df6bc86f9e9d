//! The core modules are pure: no network, no filesystem, no environment, no clock. All I/O
//! lives in the binary (`src/main.rs`, `src/cli`, `src/report`). This keeps the planner a
//! function of its inputs, so the same inputs give the same plan.

#![allow(clippy::unwrap_used)] // test helper: a panic is a failed test

use std::path::Path;

mod common;

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::env",
    "SystemTime::now",
    "Instant::now",
    "tokio::",
    "openssh::",
    "russh::",
    "std::net::TcpStream",
    "std::process",
    // The I/O edge itself: the core may not reach it through the crate either.
    "crate::exec",
    "crate::ssh",
];
const IO_EDGE: &[&str] = &["main.rs", "cli", "report", "ssh", "exec"];

#[test]
fn core_modules_do_no_io() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = common::rust_sources();
    let mut offenders = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        if IO_EDGE.contains(&top.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                if code.contains(word) {
                    offenders.push(format!("src/{}:{}: {word}", rel.display(), n + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "I/O in the pure core:\n{}", offenders.join("\n"));
}
