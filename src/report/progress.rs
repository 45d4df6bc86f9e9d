//! A run's progress as it happens: indicatif bars on a terminal (an overall bar for the step,
//! one line per active host with what it is doing), plain timestamped lines otherwise, and
//! one JSON object per line under `--output json`. Hosts' output and errors reach a terminal
//! only through [`terminal_safe`] (JSON through [`json_safe`]).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use kubewright::outcome::{Event, HostStatus};
use kubewright::terminal::{json_safe, terminal_safe};

enum Mode {
    Json,
    Plain,
    Bars { multi: MultiProgress, step: Option<ProgressBar>, hosts: HashMap<String, ProgressBar> },
}

pub struct Progress {
    mode: Mutex<Mode>,
}

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    kubewright::exec::rfc3339(secs)
}

impl Progress {
    /// `json`: events on stdout; `bars`: stderr is a terminal and the user did not ask for
    /// plain output.
    pub fn new(json: bool, bars: bool) -> Progress {
        let mode = if json {
            Mode::Json
        } else if bars {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                step: None,
                hosts: HashMap::new(),
            }
        } else {
            Mode::Plain
        };
        Progress { mode: Mutex::new(mode) }
    }

    /// A line for people, above the bars when there are any.
    pub fn note(&self, text: &str) {
        let Ok(mode) = self.mode.lock() else { return };
        match &*mode {
            Mode::Json => {
                let line = serde_json::json!({ "event": "note", "message": text }).to_string();
                let _ = writeln!(std::io::stdout().lock(), "{}", json_safe(&line));
            }
            Mode::Plain => eprintln!("{} {}", now(), terminal_safe(text)),
            Mode::Bars { multi, .. } => {
                let _ = multi.println(terminal_safe(text));
            }
        }
    }

    /// The plan a run is about to execute, as one JSON event (`{"event": "plan", "plan": ...}`),
    /// so that a CI job reads what it ran as data.
    pub fn plan(&self, plan: &kubewright::plan::Plan) {
        if let Ok(Mode::Json) = self.mode.lock().as_deref() {
            let line = serde_json::json!({ "event": "plan", "plan": plan }).to_string();
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }

    pub fn event(&self, event: Event) {
        let Ok(mut mode) = self.mode.lock() else { return };
        match &mut *mode {
            Mode::Json => {
                if let Ok(line) = serde_json::to_string(&event) {
                    // One write per event: hosts running at once never interleave.
                    let _ = writeln!(std::io::stdout().lock(), "{}", json_safe(&line));
                }
            }
            Mode::Plain => {
                if let Some(line) = plain_line(&event) {
                    let _ = writeln!(std::io::stderr().lock(), "{} {}", now(), terminal_safe(&line));
                }
            }
            Mode::Bars { multi, step, hosts } => bars(multi, step, hosts, event),
        }
    }

    /// Remove the bars (before the summary is printed).
    pub fn finish(&self) {
        if let Ok(mut mode) = self.mode.lock()
            && let Mode::Bars { multi, step, hosts } = &mut *mode
        {
            for (_, bar) in hosts.drain() {
                bar.finish_and_clear();
            }
            if let Some(bar) = step.take() {
                bar.finish_and_clear();
            }
            let _ = multi.clear();
        }
    }
}

/// `text` as a bar or a line above the bars may show it.
fn shown(text: impl AsRef<str>) -> String {
    terminal_safe(text.as_ref()).into_owned()
}

fn status_text(status: &HostStatus, seconds: f64) -> String {
    match status {
        HostStatus::Done => format!("done ({seconds:.1}s)"),
        HostStatus::Skipped { reason } => format!("skipped: {reason}"),
        HostStatus::Failed { failure } => format!("FAILED: {}", failure.message),
        HostStatus::Blocked { failure } => format!("left out: {}", failure.message),
        HostStatus::NotStarted { reason } => format!("not started: {reason}"),
        HostStatus::Interrupted => "interrupted".into(),
    }
}

fn plain_line(event: &Event) -> Option<String> {
    Some(match event {
        Event::StepStarted { step, title, hosts, rollout } => {
            format!("step {step}: {title} ({hosts} hosts, {rollout})")
        }
        Event::HostStarted { step, host } => format!("{step} {host}: started"),
        Event::Operation { step, host, what, .. } => format!("{step} {host}: {what}"),
        Event::Output { host, stream, line, .. } if *stream == "stderr" => format!("  {host} stderr: {line}"),
        Event::Output { host, line, .. } => format!("  {host}: {line}"),
        Event::HostFinished { step, host, seconds, status } => {
            format!("{step} {host}: {}", status_text(status, *seconds))
        }
        Event::StepFinished { step, done, skipped, failed, not_started } => {
            format!("step {step}: {done} done, {skipped} skipped, {failed} failed, {not_started} not started")
        }
    })
}

fn bars(multi: &MultiProgress, step: &mut Option<ProgressBar>, hosts: &mut HashMap<String, ProgressBar>, event: Event) {
    match event {
        Event::StepStarted { step: id, title, hosts: n, .. } => {
            if let Some(old) = step.take() {
                old.finish_and_clear();
            }
            let bar = multi.add(ProgressBar::new(n as u64));
            bar.set_style(
                ProgressStyle::with_template("{prefix:.bold} [{elapsed_precise}] {wide_bar} {pos}/{len} hosts")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.set_prefix(shown(format!("{id}: {title}")));
            bar.enable_steady_tick(Duration::from_millis(200));
            *step = Some(bar);
        }
        Event::HostStarted { host, .. } => {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {prefix} {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(shown(&host));
            bar.enable_steady_tick(Duration::from_millis(120));
            hosts.insert(host, bar);
        }
        Event::Operation { host, what, .. } => {
            if let Some(bar) = hosts.get(&host) {
                bar.set_message(shown(what));
            }
        }
        Event::Output { host, line, .. } => {
            if let Some(bar) = hosts.get(&host) {
                bar.set_message(shown(line));
            }
        }
        Event::HostFinished { step: id, host, seconds, status } => {
            if let Some(bar) = hosts.remove(&host) {
                bar.finish_and_clear();
            }
            if let Some(bar) = step.as_ref() {
                bar.inc(1);
            }
            if !matches!(status, HostStatus::Done | HostStatus::Skipped { .. }) {
                let _ = multi.println(shown(format!("{id} {host}: {}", status_text(&status, seconds))));
            }
        }
        Event::StepFinished { step: id, done, skipped, failed, not_started } => {
            if let Some(bar) = step.take() {
                bar.finish_and_clear();
            }
            let _ = multi.println(shown(format!(
                "step {id}: {done} done, {skipped} skipped, {failed} failed, {not_started} not started"
            )));
        }
    }
}
