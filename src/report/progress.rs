//! A run's progress as it happens: on a terminal, live lines drawn with indicatif (the step with
//! a spinner, its hosts' count and elapsed time; under it one line per host at work, with a
//! spinner, its elapsed time and what it is doing, then one line per host that has finished)
//! which collapse into one summary line per step when the step ends, so that the scrollback
//! holds the plan, one line per step and the result; plain timestamped lines otherwise, and
//! one JSON object per line under `--output json`. Hosts' output and errors reach a terminal
//! only through [`terminal_safe`] (JSON through [`json_safe`]).

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use kubewright::outcome::{Event, HostStatus};
use kubewright::terminal::{json_safe, terminal_safe};

enum Mode {
    Json,
    Plain,
    // Boxed: a run is in one mode from start to end, and the others need no room.
    Lines(Box<Lines>),
}

pub struct Progress {
    mode: Mutex<Mode>,
}

fn now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    kubewright::exec::rfc3339(secs)
}

/// Where the lines of the running step go, and how they look.
struct Lines {
    multi: MultiProgress,
    color: bool,
    /// The longest host name of the inventory: host lines keep their columns.
    name_width: usize,
    step: Option<StepLines>,
}

/// The live lines of the step that runs.
struct StepLines {
    id: String,
    started: Instant,
    /// The step's own line: spinner, name, hosts finished of all, elapsed time, title.
    line: ProgressBar,
    /// The hosts at work, in the order they started, each with what it is doing: above the
    /// finished ones, so that on a screen too short for every host they are the lines shown.
    running: Vec<HostLine>,
    /// A line per finished host (done, skipped, failed ...), in the order they finished.
    finished: Vec<ProgressBar>,
    failed: Vec<String>,
    left_out: Vec<String>,
    /// The hosts done (a step done on one host names it rather than saying "1 hosts").
    hosts_done: Vec<String>,
    /// Whether any host started: a step every host skipped took no time worth showing.
    ran: bool,
}

struct HostLine {
    host: String,
    bar: ProgressBar,
    /// The operation it is at (the last `Operation` event).
    what: String,
}

impl Progress {
    /// `json`: events on stdout; `live`: stderr is a terminal that can redraw lines and the
    /// user did not ask for plain output; `color`: the lines may be coloured; `hosts`: the
    /// inventory's host names (their longest sets the host lines' columns).
    pub fn new<'a>(json: bool, live: bool, color: bool, hosts: impl IntoIterator<Item = &'a str>) -> Progress {
        let mode = if json {
            Mode::Json
        } else if live {
            Mode::Lines(Box::new(Lines {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                color,
                name_width: hosts.into_iter().map(|h| h.chars().count()).max().unwrap_or(0),
                step: None,
            }))
        } else {
            Mode::Plain
        };
        Progress { mode: Mutex::new(mode) }
    }

    /// A line for people, above the live lines when there are any.
    pub fn note(&self, text: &str) {
        let Ok(mode) = self.mode.lock() else { return };
        match &*mode {
            Mode::Json => {
                let line = serde_json::json!({ "event": "note", "message": text }).to_string();
                let _ = writeln!(std::io::stdout().lock(), "{}", json_safe(&line));
            }
            Mode::Plain => eprintln!("{} {}", now(), terminal_safe(text)),
            Mode::Lines(lines) => {
                let _ = lines.multi.println(terminal_safe(text));
            }
        }
    }

    /// Run `print`, which writes to the terminal itself, with the live lines out of its way
    /// (taken off the screen, drawn again below what it printed).
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        match self.mode.lock().as_deref() {
            Ok(Mode::Lines(lines)) => lines.multi.suspend(print),
            _ => print(),
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
            Mode::Lines(lines) => lines.event(event),
        }
    }

    /// Take the live lines off the screen (before the run's result is printed).
    pub fn finish(&self) {
        if let Ok(mut mode) = self.mode.lock()
            && let Mode::Lines(lines) = &mut *mode
        {
            if let Some(step) = lines.step.take() {
                step.clear(&lines.multi);
            }
            let _ = lines.multi.clear();
        }
    }
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

/// `text` as a live line may show it: on one line (a failure's message can hold several, and a
/// line that became two would throw out the count of lines to redraw), without anything a
/// terminal acts on.
fn shown(text: impl AsRef<str>) -> String {
    terminal_safe(text.as_ref()).replace(['\n', '\t'], " ")
}

/// A duration as the lines show it: `0.8s`, `12.3s`, `2m05s`, `1h02m`.
fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, secs % 3600 / 60)
    }
}

/// Spinner frames; the last one is what a finished spinner shows (never, here: a finished line
/// gets a style of its own).
const SPINNER: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏", " "];

/// How often spinners turn and elapsed times change.
const TICK: Duration = Duration::from_millis(100);

/// A new line, drawn nowhere until it is added to the `MultiProgress`: a bar made for stderr
/// draws itself there as soon as its prefix or message is set, below the lines the
/// `MultiProgress` knows of, and those are then left on the screen when it redraws.
fn unseen(len: Option<u64>) -> ProgressBar {
    ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden())
}

/// A live line's style: `template` with `{secs}`, the line's elapsed time as [`duration_text`]
/// writes it (indicatif's own `{elapsed}` rounds to whole seconds).
fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .tick_strings(SPINNER)
        .with_key("secs", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = w.write_str(&duration_text(state.elapsed()));
        })
}

impl Lines {
    /// `text` in the SGR colour `code` when colour is on.
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn padded(&self, host: &str) -> String {
        format!("{:<width$}", shown(host), width = self.name_width)
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::StepStarted { step: id, title, hosts, .. } => {
                if let Some(old) = self.step.take() {
                    old.clear(&self.multi);
                }
                let line = unseen(Some(hosts as u64));
                line.set_style(style("{spinner} {prefix}  {pos}/{len} hosts  {secs}  {wide_msg}"));
                line.set_prefix(self.paint("1", &shown(&id)));
                line.set_message(shown(&title));
                let line = self.multi.add(line);
                line.enable_steady_tick(TICK);
                self.step = Some(StepLines {
                    id,
                    started: Instant::now(),
                    line,
                    running: Vec::new(),
                    finished: Vec::new(),
                    failed: Vec::new(),
                    left_out: Vec::new(),
                    hosts_done: Vec::new(),
                    ran: false,
                });
            }
            Event::HostStarted { host, .. } => {
                let prefix = self.padded(&host);
                let Some(step) = self.step.as_mut() else { return };
                let bar = unseen(None);
                bar.set_style(style("  {spinner} {prefix} {secs:>6}  {wide_msg}"));
                bar.set_prefix(prefix);
                // Above the finished hosts' lines, below the hosts started before it.
                let bar = match step.finished.first() {
                    Some(first) => self.multi.insert_before(first, bar),
                    None => self.multi.add(bar),
                };
                bar.enable_steady_tick(TICK);
                step.running.push(HostLine { host, bar, what: String::new() });
                step.ran = true;
            }
            Event::Operation { host, what, .. } => {
                if let Some(line) = self.running(&host) {
                    line.what = shown(what);
                    line.bar.set_message(line.what.clone());
                }
            }
            Event::Output { host, line, .. } => {
                // The host's last line after what it is doing: the line shows the command is
                // alive; truncated at the screen's edge, never wrapped or interpreted.
                let said = self.paint("2", &shown(line));
                if let Some(at) = self.running(&host) {
                    at.bar.set_message(if at.what.is_empty() { said } else { format!("{}  {said}", at.what) });
                }
            }
            Event::HostFinished { host, seconds, status, .. } => {
                let (mark, text) = match &status {
                    HostStatus::Done => (self.paint("32", "✔"), "done".to_string()),
                    HostStatus::Skipped { reason } => (self.paint("2", "–"), format!("skipped: {reason}")),
                    HostStatus::Failed { failure } => (self.paint("1;31", "✘"), format!("failed: {}", failure.message)),
                    HostStatus::Blocked { failure } => {
                        (self.paint("33", "!"), format!("left out: {}", failure.message))
                    }
                    HostStatus::NotStarted { reason } => (self.paint("2", "–"), format!("not started: {reason}")),
                    HostStatus::Interrupted => (self.paint("33", "!"), "interrupted".to_string()),
                };
                let ran = matches!(status, HostStatus::Done | HostStatus::Failed { .. } | HostStatus::Interrupted);
                let time = if ran { duration_text(Duration::from_secs_f64(seconds.max(0.0))) } else { String::new() };
                let text = format!("  {mark} {} {time:>6}  {}", self.padded(&host), shown(text));
                let Some(step) = self.step.as_mut() else { return };
                if let Some(i) = step.running.iter().position(|l| l.host == host) {
                    let line = step.running.remove(i);
                    line.bar.finish_and_clear();
                    self.multi.remove(&line.bar);
                }
                match status {
                    HostStatus::Done => step.hosts_done.push(host),
                    HostStatus::Failed { .. } => step.failed.push(host),
                    HostStatus::Blocked { .. } => step.left_out.push(host),
                    _ => {}
                }
                let done = unseen(None);
                done.set_style(
                    ProgressStyle::with_template("{wide_msg}").unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                let done = self.multi.add(done);
                done.finish_with_message(text);
                step.finished.push(done);
                step.line.inc(1);
            }
            Event::StepFinished { done, skipped, failed, not_started, .. } => {
                let Some(step) = self.step.take() else { return };
                let counts = Counts { done, skipped, failed, not_started };
                let summary = self.summary(&step, &counts);
                step.clear(&self.multi);
                let _ = self.multi.println(summary);
            }
        }
    }

    fn running(&mut self, host: &str) -> Option<&mut HostLine> {
        self.step.as_mut()?.running.iter_mut().find(|l| l.host == host)
    }

    /// What a finished step leaves on the screen: `✔ install-packages  5 hosts  9.7s`,
    /// `✘ join-worker  3 done, 1 failed (w2)  6.1s`, `– local-api-proxy  4 skipped`,
    /// `– join-control-plane  no hosts`.
    fn summary(&self, step: &StepLines, counts: &Counts) -> String {
        let Counts { done, skipped, failed, not_started } = *counts;
        let total = done + skipped + failed + not_started;
        let mark = if failed > 0 {
            self.paint("1;31", "✘")
        } else if not_started > 0 || !step.left_out.is_empty() {
            self.paint("33", "!")
        } else if done > 0 {
            self.paint("32", "✔")
        } else {
            self.paint("2", "–")
        };
        let id = self.paint("1", &shown(&step.id));
        if total == 0 {
            return format!("{mark} {id}  no hosts");
        }
        let what = if done == total {
            match step.hosts_done.as_slice() {
                [one] if total == 1 => shown(one),
                _ => format!("{total} hosts"),
            }
        } else {
            let mut parts = Vec::new();
            if done > 0 {
                parts.push(format!("{done} done"));
            }
            // The event counts the hosts left out among the skipped ones.
            let left_out = step.left_out.len().min(skipped);
            if skipped > left_out {
                parts.push(format!("{} skipped", skipped - left_out));
            }
            if left_out > 0 {
                parts.push(format!("{left_out} left out ({})", names(&step.left_out)));
            }
            if failed > 0 {
                parts.push(self.paint("31", &format!("{failed} failed ({})", names(&step.failed))));
            }
            if not_started > 0 {
                parts.push(format!("{not_started} not started"));
            }
            parts.join(", ")
        };
        if step.ran {
            format!("{mark} {id}  {what}  {}", duration_text(step.started.elapsed()))
        } else {
            format!("{mark} {id}  {what}")
        }
    }
}

/// How a step's hosts ended, from its `StepFinished` event.
struct Counts {
    done: usize,
    skipped: usize,
    failed: usize,
    not_started: usize,
}

/// Host names for a summary line: the first five, then how many more.
fn names(hosts: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = hosts.iter().take(SHOWN).map(shown).collect::<Vec<_>>().join(", ");
    if hosts.len() > SHOWN {
        text.push_str(&format!(" and {} more", hosts.len() - SHOWN));
    }
    text
}

impl StepLines {
    /// Take every line of the step off the screen.
    fn clear(self, multi: &MultiProgress) {
        let bars = self.running.into_iter().map(|l| l.bar).chain(self.finished).chain([self.line]);
        for bar in bars {
            bar.finish_and_clear();
            multi.remove(&bar);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kubewright::outcome::HostFailure;

    fn lines() -> Lines {
        Lines {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
            color: false,
            name_width: 3,
            step: None,
        }
    }

    fn step(lines: &mut Lines, id: &str, hosts: usize) {
        lines.event(Event::StepStarted { step: id.into(), title: "T".into(), hosts, rollout: "parallel".into() });
    }

    fn finished(lines: &mut Lines, host: &str, status: HostStatus) {
        // A skipped host never starts: it is finished when its step starts.
        if !matches!(status, HostStatus::Skipped { .. }) {
            lines.event(Event::HostStarted { step: "s".into(), host: host.into() });
        }
        lines.event(Event::HostFinished { step: "s".into(), host: host.into(), seconds: 1.0, status });
    }

    fn summary(lines: &Lines, done: usize, skipped: usize, failed: usize, not_started: usize) -> String {
        let step = lines.step.as_ref().unwrap();
        let text = lines.summary(step, &Counts { done, skipped, failed, not_started });
        // The step's time, when a host ran, is whatever the test took: cut off.
        match step.ran {
            true => text.rsplit_once("  ").map_or(text.clone(), |(head, _)| head.to_string()),
            false => text,
        }
    }

    fn failure(host: &str) -> HostFailure {
        HostFailure {
            host: host.into(),
            step: "s".into(),
            command: None,
            exit_code: None,
            stderr_tail: Vec::new(),
            message: "boom".into(),
            hint: String::new(),
            skip_host: false,
        }
    }

    #[test]
    fn a_summary_counts_and_names_the_hosts() {
        let mut l = lines();
        step(&mut l, "join-worker", 4);
        for h in ["w1", "w2", "w3"] {
            finished(&mut l, h, HostStatus::Done);
        }
        assert_eq!(summary(&l, 3, 0, 0, 0), "✔ join-worker  3 hosts");
        finished(&mut l, "w4", HostStatus::Failed { failure: failure("w4") });
        assert_eq!(summary(&l, 3, 0, 1, 0), "✘ join-worker  3 done, 1 failed (w4)");
        assert_eq!(summary(&l, 3, 0, 1, 2), "✘ join-worker  3 done, 1 failed (w4), 2 not started");

        let mut l = lines();
        step(&mut l, "kubeadm-init", 1);
        finished(&mut l, "cp1", HostStatus::Done);
        assert_eq!(summary(&l, 1, 0, 0, 0), "✔ kubeadm-init  cp1", "one host is named");

        let mut l = lines();
        step(&mut l, "local-api-proxy", 2);
        finished(&mut l, "w1", HostStatus::Skipped { reason: "r".into() });
        finished(&mut l, "w2", HostStatus::Blocked { failure: failure("w2") });
        assert_eq!(summary(&l, 0, 2, 0, 0), "! local-api-proxy  1 skipped, 1 left out (w2)");
        let mut l = lines();
        step(&mut l, "local-api-proxy", 2);
        finished(&mut l, "w1", HostStatus::Skipped { reason: "r".into() });
        finished(&mut l, "w2", HostStatus::Skipped { reason: "r".into() });
        let all_skipped =
            l.summary(l.step.as_ref().unwrap(), &Counts { done: 0, skipped: 2, failed: 0, not_started: 0 });
        assert_eq!(all_skipped, "– local-api-proxy  2 skipped", "no time: no host ran");

        let mut l = lines();
        step(&mut l, "join-control-plane", 0);
        assert_eq!(
            l.summary(l.step.as_ref().unwrap(), &Counts { done: 0, skipped: 0, failed: 0, not_started: 0 }),
            "– join-control-plane  no hosts"
        );
    }

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration_text(Duration::from_millis(830)), "0.8s");
        assert_eq!(duration_text(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(duration_text(Duration::from_secs(125)), "2m05s");
        assert_eq!(duration_text(Duration::from_secs(3720)), "1h02m");
    }

    #[test]
    fn a_live_line_is_one_line_of_text() {
        assert_eq!(shown("a\u{1b}[2J\u{1b}[1Ab\nc\td\r"), "ab c d");
    }

    #[test]
    fn names_stop_at_five() {
        let hosts: Vec<String> = (1..=7).map(|i| format!("w{i}")).collect();
        assert_eq!(names(&hosts), "w1, w2, w3, w4, w5 and 2 more");
    }
}
