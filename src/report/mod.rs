//! Everything the binary prints goes through here: results on stdout (text or JSON),
//! diagnostics and errors on stderr, and the exit code of a failure. Text passes through
//! [`terminal_safe`] before it is printed (and coloured), JSON through [`json_safe`]: what hosts
//! send can carry escape sequences a terminal would act on.
#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod progress;

use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::cli::{ColorChoice, GlobalArgs, OutputFormat};
use kubewright::diag::{Diagnostic, Severity};
use kubewright::exec::journal::JournalError;
use kubewright::exec::lock::LockError;
use kubewright::inventory::InventoryError;
use kubewright::plan::PlanError;
use kubewright::playbook::PlaybookError;
use kubewright::render::RenderError;
use kubewright::run::RunError;
use kubewright::ssh::TransportError;
use kubewright::terminal::{json_safe, terminal_safe};

/// An error in what the user gave us (a file, a flag): exit code 2, with the next thing
/// to try as a `help:` line.
#[derive(Debug)]
pub struct UserError {
    pub message: String,
    pub help: String,
}

impl UserError {
    /// Every error a user sees says what to do about it: `help` is not optional.
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        UserError { message: message.into(), help: help.into() }
    }
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UserError {}

/// What to do about one error of a chain, for the kinds kubewright makes.
fn advice(cause: &(dyn std::error::Error + 'static)) -> Option<String> {
    if let Some(e) = cause.downcast_ref::<UserError>() {
        return Some(e.help.clone());
    }
    if let Some(e) = cause.downcast_ref::<Failure>() {
        return Some(e.help.clone());
    }
    if cause.is::<InventoryError>() || cause.is::<PlaybookError>() {
        // Each diagnostic printed above has its own help line; this is the way to re-check.
        return Some("fix what is listed above; `kubewright inventory validate -i FILE` re-checks an inventory without connecting".into());
    }
    if let Some(e) = cause.downcast_ref::<PlanError>() {
        return Some(e.hint());
    }
    if let Some(e) = cause.downcast_ref::<RenderError>() {
        return Some(e.hint());
    }
    if let Some(e) = cause.downcast_ref::<TransportError>() {
        return Some(e.hint());
    }
    if let Some(e) = cause.downcast_ref::<LockError>() {
        return Some(e.hint());
    }
    if let Some(e) = cause.downcast_ref::<JournalError>() {
        return Some(e.hint());
    }
    if let Some(e) = cause.downcast_ref::<RunError>() {
        return Some(e.hint());
    }
    if let Some(e) = cause.downcast_ref::<kubewright::plan::NotExecutable>() {
        return Some(e.hint());
    }
    None
}

/// A failure while acting (a host unreachable, the lock held): exit code 1, with what to do.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub help: String,
}

impl Failure {
    pub fn new(message: impl Into<String>, help: impl Into<String>) -> Self {
        Failure { message: message.into(), help: help.into() }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// `TERM=dumb`: a terminal (an editor's shell buffer, say) that shows text as it comes and acts
/// on no escape sequence: neither colour nor lines redrawn in place.
fn dumb_terminal() -> bool {
    std::env::var_os("TERM").is_some_and(|t| t == "dumb")
}

pub struct Reporter {
    format: OutputFormat,
    color: bool,
    quiet: bool,
    verbose: u8,
    detailed_exitcode: AtomicBool,
}

impl Reporter {
    pub fn new(args: &GlobalArgs) -> Self {
        let color = match args.color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
                    && !dumb_terminal()
            }
        };
        Reporter {
            format: args.output,
            color,
            quiet: args.quiet,
            verbose: args.verbose,
            detailed_exitcode: AtomicBool::new(false),
        }
    }

    /// Under `--detailed-exitcode` every error exits 1 (2 means "changes pending").
    pub fn set_detailed_exitcode(&self) {
        self.detailed_exitcode.store(true, Ordering::Relaxed);
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    /// A warning line on stderr (dropped with `--quiet`).
    pub fn warning(&self, text: &str) {
        if !self.quiet {
            eprintln!("{}: {}", self.paint("1;33", "warning"), terminal_safe(text));
        }
    }

    /// A note on stderr: where something came from, which way was taken (dropped with `--quiet`).
    pub fn note(&self, text: &str) {
        if !self.quiet {
            eprintln!("{}: {}", self.paint("1;36", "note"), terminal_safe(text));
        }
    }

    /// Print diagnostics on stderr; warnings are dropped with `--quiet`.
    pub fn diagnostics(&self, diags: &[Diagnostic]) {
        for d in diags {
            if self.quiet && d.severity == Severity::Warning {
                continue;
            }
            let text = terminal_safe(&d.to_string()).into_owned();
            let text = match d.severity {
                Severity::Error => text.replacen(": error: ", &format!(": {}: ", self.paint("1;31", "error")), 1),
                Severity::Warning => text.replacen(": warning: ", &format!(": {}: ", self.paint("1;33", "warning")), 1),
            };
            eprintln!("{}", text.replace("\n  help:", &format!("\n  {}:", self.paint("1;36", "help"))));
        }
    }

    pub fn json(&self) -> bool {
        self.format == OutputFormat::Json
    }

    /// Whether live progress lines may be drawn: stderr is a terminal that can move its cursor
    /// (not `TERM=dumb`) and output is for people.
    pub fn interactive(&self) -> bool {
        self.format == OutputFormat::Text && !self.quiet && std::io::stderr().is_terminal() && !dumb_terminal()
    }

    /// Whether what goes to stderr may be coloured (`--color`, `NO_COLOR`, a terminal).
    pub fn color(&self) -> bool {
        self.color
    }

    /// Extra detail for `-v`, on stderr so that stdout stays the result.
    pub fn detail(&self, text: &str) {
        if self.verbose > 0 {
            for line in text.lines() {
                eprintln!("{} {}", self.paint("2", "::"), terminal_safe(line));
            }
        }
    }

    /// Print a command's result: `text` for people, `json` under `--output json`.
    pub fn result<T: Serialize>(&self, text: &str, json: &T) {
        match self.format {
            OutputFormat::Text => {
                print!("{}", terminal_safe(text));
                if !text.ends_with('\n') {
                    println!();
                }
            }
            OutputFormat::Json => match serde_json::to_string_pretty(json) {
                Ok(s) => println!("{}", json_safe(&s)),
                Err(e) => eprintln!("error: cannot serialise the result as JSON: {e}"),
            },
        }
    }

    /// A block of text for people on stderr (the plan before its question), so that stdout
    /// stays the result.
    pub fn block(&self, text: &str) {
        use std::io::Write;
        // The plan carries what hosts said (facts, file contents): never a terminal's commands.
        let _ = std::io::stderr().lock().write_all(kubewright::terminal::terminal_safe(text).as_bytes());
    }

    /// A line of a host's output as it arrives: `host: line` (`host stderr: line`) for people,
    /// under `--output json` one compact object per line, so that tools can follow a run live.
    pub fn live_line(&self, host: &str, stderr: bool, line: &str) {
        use std::io::Write;
        let text = match self.format {
            OutputFormat::Text if stderr => {
                format!("{host} {}: {}", self.paint("33", "stderr"), terminal_safe(line))
            }
            OutputFormat::Text => format!("{host}: {}", terminal_safe(line)),
            OutputFormat::Json => json_safe(
                &serde_json::json!({
                    "event": "output",
                    "host": host,
                    "stream": if stderr { "stderr" } else { "stdout" },
                    "line": line,
                })
                .to_string(),
            )
            .into_owned(),
        };
        // One write per line, so that lines from hosts running at once never interleave.
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }

    /// Report a failed command and choose its exit code.
    pub fn fatal(&self, err: &anyhow::Error) -> ExitCode {
        let diagnostics: Vec<Diagnostic> = err
            .chain()
            .find_map(|c| {
                c.downcast_ref::<InventoryError>()
                    .map(|e| e.diagnostics.clone())
                    .or_else(|| c.downcast_ref::<PlaybookError>().map(|e| e.diagnostics.clone()))
            })
            .unwrap_or_default();
        // A playbook that names a host or action the inventory/registry lacks is bad input too.
        let is_input = err.chain().any(|c| {
            c.is::<UserError>()
                || c.is::<InventoryError>()
                || c.is::<PlaybookError>()
                || c.is::<RenderError>()
                || c.downcast_ref::<PlanError>().is_some_and(PlanError::is_input)
                || c.downcast_ref::<RunError>().is_some_and(RunError::is_input)
        });
        let interrupted = err.chain().any(|c| matches!(c.downcast_ref::<RunError>(), Some(RunError::Interrupted)));
        let code: u8 = if interrupted {
            130
        } else if self.detailed_exitcode.load(Ordering::Relaxed) {
            1
        } else if is_input {
            2
        } else {
            1
        };

        let mut messages = err.chain().map(ToString::to_string);
        let headline = messages.next().unwrap_or_else(|| "unknown error".into());
        let causes: Vec<String> = messages.collect();
        let mut helps: Vec<String> = err.chain().filter_map(advice).collect();
        helps.dedup();
        if helps.is_empty() {
            // Every error kubewright makes carries advice (tests/error_advice.rs holds one per
            // kind); one without is a gap to report, and the user still gets a next step.
            helps
                .push("run again with -vv to see what led here; please report this error, it carries no advice".into());
        }

        self.diagnostics(&diagnostics);
        eprintln!("{}: {}", self.paint("1;31", "error"), terminal_safe(&headline));
        if !causes.is_empty() {
            eprintln!("\nCaused by:");
            for c in &causes {
                eprintln!("    {}", terminal_safe(c));
            }
        }
        for h in &helps {
            eprintln!("{}: {}", self.paint("1;36", "help"), terminal_safe(h));
        }
        if self.format == OutputFormat::Json {
            let doc = serde_json::json!({
                "error": { "message": headline, "causes": causes, "help": helps, "diagnostics": diagnostics, "exit_code": code }
            });
            println!("{}", json_safe(&serde_json::to_string_pretty(&doc).unwrap_or_default()));
        }
        ExitCode::from(code)
    }
}
