//! The core modules are pure: no network, no filesystem, no environment, no clock, no hidden
//! state. All I/O lives in the edges (`ssh`, `exec`, `run`) and the binary (`src/main.rs`,
//! `src/cli`, `src/report`). This keeps the planner a function of its inputs, so the same
//! inputs give the same plan. And the CLI holds no decisions: its files call the library, not
//! each other.

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
    "crate::run",
];
/// Planning is a function, not a conversation: no state that changes behind a `&`.
const FORBIDDEN_IN_PLANNING: &[&str] = &["Cell<", "RefCell", "thread_local", "static mut"];
const PLANNING: &[&str] = &["plan", "steps", "goal.rs", "upgrade.rs"];
const IO_EDGE: &[&str] = &["main.rs", "cli", "report", "ssh", "exec", "run"];

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
            let planning = PLANNING.contains(&top.as_str());
            for word in FORBIDDEN.iter().chain(if planning { FORBIDDEN_IN_PLANNING } else { &[] }) {
                if code.contains(word) {
                    offenders.push(format!("src/{}:{}: {word}", rel.display(), n + 1));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "I/O in the pure core:\n{}", offenders.join("\n"));
}

/// A CLI file parses, loads, calls the library and shows: it may use the shared input loaders
/// (`inputs`) and the run's presentation (`ui`), never another subcommand's file.
#[test]
fn no_cli_file_uses_another_cli_files_logic() {
    let cli = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cli");
    // The shared loaders, the run's presentation, and the clap root's own types.
    let shared = ["inputs", "ui", "Cli", "GlobalArgs", "OutputFormat", "ColorChoice"];
    let mut offenders = Vec::new();
    for entry in std::fs::read_dir(&cli).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "mod" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for used in code.match_indices("super::").map(|(i, _)| &code[i + "super::".len()..]) {
                let module: String =
                    used.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '{').collect();
                let modules: Vec<&str> = if let Some(list) = module.strip_prefix('{') {
                    let rest = &used[1..];
                    let inner = rest.split('}').next().unwrap_or("");
                    let _ = list;
                    inner.split(',').map(|m| m.trim().split("::").next().unwrap_or("")).collect()
                } else {
                    vec![module.as_str()]
                };
                for m in modules {
                    if !m.is_empty() && !shared.contains(&m) && m != "super" {
                        offenders.push(format!("src/cli/{name}.rs:{}: super::{m}", n + 1));
                    }
                }
            }
        }
    }
    assert!(offenders.is_empty(), "CLI files using each other's logic:\n{}", offenders.join("\n"));
}
