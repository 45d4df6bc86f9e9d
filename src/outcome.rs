//! What a run did: the events it emits while it works, the report it ends with, and the texts
//! both become. Pure data and text: the executor fills them, `report` prints them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::facts::NodeView;
use crate::plan::Plan;

/// What went wrong on a host: where, which command, its exit code and last lines of stderr.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HostFailure {
    pub host: String,
    pub step: String,
    /// The command or file (redacted).
    pub command: Option<String>,
    pub exit_code: Option<i32>,
    /// The last lines the command wrote to stderr (redacted).
    pub stderr_tail: Vec<String>,
    pub message: String,
    pub hint: String,
    /// The host is left out and the run goes on (a drain blocked by disruption budgets, with
    /// `--skip-blocked`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skip_host: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum HostStatus {
    Done,
    Skipped {
        reason: String,
    },
    Failed {
        failure: HostFailure,
    },
    /// Left as it was because something outside the run blocked it (a drain held up by
    /// disruption budgets, with `--skip-blocked`); the run went on without it.
    Blocked {
        failure: HostFailure,
    },
    /// Not started because the run was stopping (a failure elsewhere, or Ctrl-C).
    NotStarted {
        reason: String,
    },
    /// Abandoned while running (a second Ctrl-C).
    Interrupted,
}

/// What a host is doing, by kind, so that reports count what they need (drains) without
/// reading the words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OperationKind {
    Command,
    Write,
    Fetch,
    Send,
    ReadCa,
    Check,
    Wait,
    Drain,
    Rollback,
}

/// Progress of a run, for the terminal or the JSON event stream.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Event {
    StepStarted {
        step: String,
        title: String,
        hosts: usize,
        rollout: String,
    },
    HostStarted {
        step: String,
        host: String,
    },
    /// The host starts an operation (its description, redacted).
    Operation {
        step: String,
        host: String,
        kind: OperationKind,
        what: String,
    },
    Output {
        step: String,
        host: String,
        stream: &'static str,
        line: String,
    },
    HostFinished {
        step: String,
        host: String,
        seconds: f64,
        #[serde(flatten)]
        status: HostStatus,
    },
    StepFinished {
        step: String,
        done: usize,
        skipped: usize,
        failed: usize,
        not_started: usize,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub id: String,
    pub hosts: Vec<(String, HostStatus)>,
}

/// What a run did on one host, from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostTiming {
    /// Seconds of the host steps that ran (not skipped).
    pub seconds: f64,
    pub drains: u32,
}

impl HostTiming {
    /// Count `event` into the timings (a worker's drain runs on a control plane but is the
    /// worker's: the event names the host whose step it is).
    pub fn record(timings: &mut BTreeMap<String, HostTiming>, event: &Event) {
        match event {
            Event::HostFinished { host, seconds, .. } => timings.entry(host.clone()).or_default().seconds += seconds,
            Event::Operation { host, kind: OperationKind::Drain, .. } => {
                timings.entry(host.clone()).or_default().drains += 1;
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub steps: Vec<StepReport>,
    /// Steps never reached because the run stopped first.
    pub steps_not_run: Vec<String>,
    pub failures: Vec<HostFailure>,
    /// Ctrl-C or SIGTERM stopped the run (exit 130).
    pub interrupted: bool,
    /// Why the run stopped by itself before its end, if it did (the cluster lock in doubt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_because: Option<String>,
    /// Each host's time and drains.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostTiming>,
}

impl RunReport {
    pub fn completed(&self) -> bool {
        self.failures.is_empty() && !self.interrupted && self.stopped_because.is_none() && self.steps_not_run.is_empty()
    }

    /// Hosts left out because something outside the run blocked them (`--skip-blocked`).
    pub fn left_out(&self) -> Vec<(&str, &HostFailure)> {
        self.steps
            .iter()
            .flat_map(|s| &s.hosts)
            .filter_map(|(host, status)| match status {
                HostStatus::Blocked { failure } => Some((host.as_str(), failure)),
                _ => None,
            })
            .collect()
    }
}

/// The per-host summary: what failed (host, step, command, exit code, stderr tail), what did
/// not run, and what to do next (`again`: the command that continues; `journal`: where the
/// journal is).
pub fn summary_text(report: &RunReport, journal: &str) -> String {
    let mut text = String::new();
    let (mut done, mut skipped, mut not_started) = (0, 0, 0);
    for step in &report.steps {
        for (_, status) in &step.hosts {
            match status {
                HostStatus::Done => done += 1,
                HostStatus::Skipped { .. } => skipped += 1,
                HostStatus::NotStarted { .. } | HostStatus::Interrupted => not_started += 1,
                HostStatus::Failed { .. } => {}
                HostStatus::Blocked { failure } => {
                    skipped += 1;
                    let _ = writeln!(
                        text,
                        "left out: {} in step `{}`: {}\n  help: {}",
                        failure.host, failure.step, failure.message, failure.hint
                    );
                }
            }
        }
    }
    for f in &report.failures {
        let _ = writeln!(text, "error: {} failed in step `{}`: {}", f.host, f.step, f.message);
        if let Some(c) = &f.command {
            let _ = writeln!(text, "  command: {c}");
        }
        if let Some(code) = f.exit_code {
            let _ = writeln!(text, "  exit code: {code}");
        }
        if !f.stderr_tail.is_empty() {
            text.push_str("  stderr (last lines):\n");
            for l in &f.stderr_tail {
                let _ = writeln!(text, "    {l}");
            }
        }
        let _ = writeln!(text, "  help: {}", f.hint);
    }
    if !report.steps_not_run.is_empty() {
        let _ = writeln!(text, "steps not run: {}", report.steps_not_run.join(", "));
    }
    let _ = writeln!(
        text,
        "{done} host steps done, {skipped} skipped, {} failed, {not_started} not started",
        report.failures.len()
    );
    if report.interrupted {
        if let Some(why) = &report.stopped_because {
            let _ = writeln!(text, "the run stopped: {why}");
        }
        let _ =
            writeln!(text, "interrupted; the journal ({journal}) has what finished: the same command again continues");
    } else if let Some(why) = &report.stopped_because {
        let _ = writeln!(
            text,
            "the run stopped: {why}; the journal ({journal}) has what finished: the same command again continues"
        );
    } else if !report.completed() {
        let _ = writeln!(text, "the same command again continues from the journal ({journal})");
    }
    text
}

/// An upgrade's result: each node's release before and after, its time and drains, and the
/// nodes left out. `before` and `after` are the node lists the API server gave before the run
/// and after it.
pub fn upgrade_result(
    plan: &Plan,
    run: &RunReport,
    hosts: &[String],
    before: &BTreeMap<String, NodeView>,
    after: &BTreeMap<String, NodeView>,
) -> Option<(String, serde_json::Value)> {
    let path = plan.upgrade.as_ref()?;
    let left_out: Vec<serde_json::Value> = run
        .left_out()
        .into_iter()
        .map(|(host, f)| serde_json::json!({"node": host, "step": f.step, "why": f.message}))
        .collect();
    let releases: Vec<String> =
        std::iter::once(path.from).chain(path.hops.iter().copied()).map(|v| v.to_string()).collect();
    let mut text = format!(
        "\nUpgrade {}: {}\nNODE                 FROM         TO           TIME     DRAINS\n",
        if left_out.is_empty() && run.completed() { "done" } else { "not finished" },
        releases.join(" -> ")
    );
    let mut nodes = Vec::new();
    for name in hosts {
        let from = before.get(name).map(|n| n.kubelet_version.clone()).unwrap_or_default();
        let to = after.get(name).map(|n| n.kubelet_version.clone()).unwrap_or_else(|| "?".into());
        let timing = run.hosts.get(name).cloned().unwrap_or_default();
        let _ = writeln!(text, "{:<20} {:<12} {:<12} {:>6.1}s  {}", name, from, to, timing.seconds, timing.drains);
        nodes.push(serde_json::json!({
            "node": name, "from": from, "to": to, "seconds": timing.seconds, "drains": timing.drains,
            "cordoned": after.get(name).is_some_and(|n| n.unschedulable),
        }));
    }
    for (host, f) in run.left_out() {
        let _ = writeln!(text, "left out: {host} ({})", f.message);
    }
    let json = serde_json::json!({
        "from": path.from.to_string(),
        "path": path.hops.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "nodes": nodes,
        "left_out": left_out,
        "run": run,
    });
    Some((text, json))
}
