//! The executor: runs a [`Plan`] step by step, as it is.
//!
//! Within a step, hosts run in a sliding window: all at once up to the concurrency
//! (`parallel`), one at a time (`serial`), or at most a batch's size at once (a new host starts
//! as soon as one finishes). A failing host stops new work: hosts already running finish,
//! nothing else starts, and the run ends after that step. Every finished (step, host) is
//! journaled before the next starts. Every command runs under its host's own time limit and in
//! a session of its own there, so an aborted run can stop it. Everything it reports passes
//! through the run's [`Redactor`].
//!
//! The engine is generic over [`Connect`], so its behaviour (rollouts, stop-on-failure,
//! rollback) is tested with hosts in memory (`exec::memory`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::stream::{self, StreamExt};
use tokio::sync::{Notify, OnceCell};

use super::journal::Journal;
use super::{for_each_host, within_backstop};
use crate::duration::Duration;
use crate::outcome::{Event, HostFailure, HostStatus, HostTiming, OperationKind, RunReport, StepReport};
use crate::plan::{Action, FileWrite, HostPlan, Plan, PlannedStep};
use crate::playbook::Rollout;
use crate::redact::Redactor;
use crate::render::Secrets;
use crate::script::{REMOTE_KILL_GRACE_SECS, Script};
use crate::ssh::{Connect, OutputStream, Target, Transport, TransportError};

/// How often a wait asks again.
const WAIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest one attempt of a wait may take (a healthy `kubectl get` or `etcdctl endpoint
/// health` answers in about a second; etcdctl gives up after 5 s of its own).
const ATTEMPT_LIMIT_S: u64 = 30;

/// The longest a read-only check of the engine's own may take (the kubeadm-config, the
/// renewed certificates, the budgets behind a blocked drain, a drain's mark).
const CHECK_LIMIT: Duration = Duration::from_secs(60);

/// How many hosts at once within a parallel step, unless `--concurrency` says otherwise.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// Markers a batched script writes on stderr: the part starting, and the part that failed.
const PART_STARTED: &str = "KUBEWRIGHT-PART-STARTED:";
const PART_FAILED: &str = "KUBEWRIGHT-PART-FAILED:";

/// Exports `NAME=value` lines read from stdin, then runs the rest of the script: secrets never
/// appear on a command line (where `ps` on the host would show them).
const SECRET_PRELUDE: &str =
    "while IFS= read -r kubewright_secret; do export \"$kubewright_secret\"; done; unset kubewright_secret";

/// Writes `$1` (mode `$2`, owner `$3`) from stdin and runs the script `$4`, removing the file
/// whatever happens: a file of this run's secrets never outlives the command that reads it.
const WITH_SECRET_FILE: &str = r#"set -eu
f=$1 mode=$2 owner=$3 commands=$4
d=${f%/*}
if [ -n "$d" ] && [ ! -d "$d" ]; then install -d -m 0755 "$d"; fi
trap 'rm -f -- "$f"' EXIT
trap 'exit 143' HUP INT TERM
umask 077
cat > "$f"
chmod "$mode" "$f"
chown "$owner" "$f"
sh -c "$commands""#;

/// Several commands as one script, so that a host step costs one round trip: each part runs in
/// order, each under its own time `limit` (the step's limit is per command, however many the
/// step batches), and the first failing one ends the script with its exit code, after naming
/// itself on stderr (the engine turns the markers back into progress and the failing command).
pub fn batch(parts: &[(String, Script)], limit: Duration) -> Script {
    let mut text = String::new();
    for (n, (_, script)) in parts.iter().enumerate() {
        // Each part in its own `sh -eu`: errexit holds inside it, which it would not in a
        // compound list on the left of `||`.
        text.push_str(&format!(
            "printf '%s\\n' {PART_STARTED}{n} >&2\nsh -euc {} || {{ kubewright_rc=$?; printf '%s\\n' {PART_FAILED}{n} >&2; exit \"$kubewright_rc\"; }}\n",
            crate::script::quote(&crate::script::time_limited_script(script, limit).to_shell())
        ));
    }
    Script::new().cmd(["sh", "-c", text.as_str()])
}

/// A marker in a line of stderr: (part index, started or failed, the text before it).
fn part_marker(line: &str) -> Option<(usize, bool, &str)> {
    for (marker, started) in [(PART_STARTED, true), (PART_FAILED, false)] {
        if let Some((before, n)) = line.rsplit_once(marker)
            && let Ok(n) = n.trim().parse()
        {
            return Some((n, started, before));
        }
    }
    None
}

/// How a run stops early: the first request lets running hosts finish, the second abandons
/// them (and the run then stops their commands on the hosts).
#[derive(Default)]
pub struct StopSignal {
    requested: AtomicBool,
    /// Asked by Ctrl-C or SIGTERM (not by the run itself): the run was interrupted.
    signalled: AtomicBool,
    aborted: AtomicBool,
    abort_now: Notify,
    why: Mutex<Option<String>>,
}

impl StopSignal {
    /// Ctrl-C or SIGTERM: the first stops new work, the second abandons running commands.
    pub fn request(&self) {
        if self.signalled.swap(true, Ordering::SeqCst) {
            self.aborted.store(true, Ordering::SeqCst);
            self.abort_now.notify_waiters();
        }
        self.requested.store(true, Ordering::SeqCst);
    }

    /// Stop new work for a reason of the run's own (the cluster lock was lost).
    pub fn request_because(&self, why: String) {
        if let Ok(mut w) = self.why.lock() {
            w.get_or_insert(why);
        }
        self.requested.store(true, Ordering::SeqCst);
    }

    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    /// Ctrl-C or SIGTERM asked the run to stop (exit 130), as opposed to the run's own reason.
    pub fn signalled(&self) -> bool {
        self.signalled.load(Ordering::SeqCst)
    }

    /// Running commands were abandoned (a second request).
    pub fn was_aborted(&self) -> bool {
        self.aborted.load(Ordering::SeqCst)
    }

    /// Why the run stopped by itself, if it did.
    pub fn reason(&self) -> Option<String> {
        self.why.lock().ok().and_then(|w| w.clone())
    }

    async fn aborted(&self) {
        loop {
            let notified = self.abort_now.notified();
            if self.aborted.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

/// How many stderr lines a failure keeps.
const STDERR_TAIL_LINES: usize = 10;

/// The values a run's commands get that no plan holds: the bootstrap token and certificate key
/// of its joins, and the playbook's `secretEnv` variables.
#[derive(Default)]
pub struct RunSecrets {
    pub bootstrap_token: String,
    pub certificate_key: String,
    pub env: BTreeMap<String, String>,
}

type SessionCell<S> = Arc<OnceCell<Result<Arc<S>, TransportError>>>;

/// Runs plans over one connector; a host's session is opened once and reused by every step.
pub struct Engine<'a, C: Connect> {
    connector: &'a C,
    targets: BTreeMap<String, Target>,
    sessions: HashMap<String, SessionCell<C::Session>>,
    concurrency: usize,
    redactor: &'a Redactor,
    events: &'a (dyn Fn(Event) + Sync),
    stop: &'a StopSignal,
    /// Names this run's commands on the hosts (their sessions).
    run_id: String,
    /// The values placeholders in files are completed with; a CA pin is learned mid-run.
    secrets: Mutex<Secrets>,
    secret_env: BTreeMap<String, String>,
    /// Hosts whose connection failed while a command of this run ran there: it may still run.
    unknown: Mutex<BTreeSet<String>>,
    timings: Mutex<BTreeMap<String, HostTiming>>,
}

/// One piece of a host's work, compiled from its actions.
enum Work<'p> {
    /// Commands run as one script, on this host or (`on`) another's session; `file`, a
    /// transient file of secrets the commands read.
    Commands { on: Option<&'p str>, parts: Vec<(String, Script)>, file: Option<&'p FileWrite>, rollback: bool },
    /// An action that is not a command, on this host or another's.
    One { on: Option<&'p str>, action: &'p Action },
}

impl<'a, C: Connect> Engine<'a, C> {
    pub fn new(
        connector: &'a C,
        targets: BTreeMap<String, Target>,
        concurrency: usize,
        run_id: &str,
        redactor: &'a Redactor,
        events: &'a (dyn Fn(Event) + Sync),
        stop: &'a StopSignal,
    ) -> Self {
        let sessions = targets.keys().map(|h| (h.clone(), SessionCell::default())).collect();
        Engine {
            connector,
            targets,
            sessions,
            concurrency: concurrency.max(1),
            redactor,
            events,
            stop,
            run_id: run_id.to_string(),
            secrets: Mutex::new(Secrets::placeholders()),
            secret_env: BTreeMap::new(),
            unknown: Mutex::new(BTreeSet::new()),
            timings: Mutex::new(BTreeMap::new()),
        }
    }

    /// The values this run's commands get (the caller redacts them).
    pub fn with_secrets(mut self, secrets: RunSecrets) -> Self {
        if let Ok(mut s) = self.secrets.lock() {
            s.bootstrap_token = secrets.bootstrap_token;
            s.certificate_key = secrets.certificate_key;
        }
        self.secret_env = secrets.env;
        self
    }

    /// The host's session, opened on first use.
    /// Per host connected to since the last call, how and with which settings (for `-v`).
    pub fn connection_settings(&self) -> Vec<(String, String)> {
        self.connector.take_settings()
    }

    pub async fn session(&self, host: &str) -> Result<Arc<C::Session>, TransportError> {
        let not_known = || TransportError::Connect {
            host: host.to_string(),
            addr: String::new(),
            detail: "not in the inventory".into(),
        };
        let cell = self.sessions.get(host).ok_or_else(not_known)?;
        let target = self.targets.get(host).cloned().ok_or_else(not_known)?;
        cell.get_or_init(|| async move { self.connector.connect(target).await.map(Arc::new) }).await.clone()
    }

    /// Every host's facts over its session (opened here and kept for the run): `paths` are
    /// the files kubewright manages on each host. The facts of the hosts that answered, and
    /// the failures of those that did not.
    pub async fn gather_facts(
        &self,
        paths: &BTreeMap<String, Vec<String>>,
    ) -> (crate::facts::ClusterFacts, Vec<super::facts::FactsFailure>) {
        let items: Vec<(String, String)> = self.targets.keys().map(|h| (h.clone(), h.clone())).collect();
        let outcomes = for_each_host(items, self.concurrency, |host| async move {
            let session = self.session(&host).await.map_err(|e| super::facts::FactsFailure {
                host: host.clone(),
                message: e.to_string(),
                hint: e.hint(),
            })?;
            super::facts::read_host(session.as_ref(), &host, paths.get(&host).map(Vec::as_slice).unwrap_or_default())
                .await
        })
        .await;
        super::facts::collect_partial(outcomes)
    }

    /// The node list as `host`'s API server has it now (None when it does not answer).
    pub async fn node_list(&self, host: &str) -> Option<BTreeMap<String, crate::facts::NodeView>> {
        let session = self.session(host).await.ok()?;
        let out = super::run_limited(session.as_ref(), &super::wait::nodes_probe(), CHECK_LIMIT).await.ok()?;
        crate::kube::parse_node_list(&out.stdout).ok()
    }

    /// The hosts whose session is open.
    fn open_hosts(&self) -> Vec<String> {
        self.sessions
            .iter()
            .filter(|(_, cell)| matches!(cell.get(), Some(Ok(_))))
            .map(|(host, _)| host.clone())
            .collect()
    }

    /// Hosts whose connection failed while a command of this run ran there.
    pub fn unknown_hosts(&self) -> BTreeSet<String> {
        self.unknown.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// After an abort: stop every command this run still has on the hosts (TERM to every
    /// process of its session, KILL as long after as a timed-out command gets) and wait until
    /// they are gone. The hosts where that could not be made sure are returned with why (a
    /// command may still run there).
    pub async fn stop_remote_commands(&self) -> BTreeMap<String, String> {
        let hosts: Vec<(String, String)> = self.open_hosts().into_iter().map(|h| (h.clone(), h)).collect();
        let script = crate::script::stop_run_commands(&self.run_id, REMOTE_KILL_GRACE_SECS);
        let limit = Duration::from_secs(REMOTE_KILL_GRACE_SECS + 20);
        let outcomes = for_each_host(hosts, self.concurrency, |host| {
            let script = &script;
            async move {
                let session = self.session(&host).await.map_err(|e| e.to_string())?;
                match super::run_limited(session.as_ref(), script, limit).await {
                    Ok(out) if out.success() => Ok(()),
                    Ok(out) => Err(format!("its commands could not be stopped: {}", out.stderr.trim())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        let mut unknown = BTreeMap::new();
        for o in outcomes {
            match o.result {
                Ok(()) => {
                    if let Ok(mut u) = self.unknown.lock() {
                        u.remove(&o.host);
                    }
                }
                Err(why) => {
                    unknown.insert(o.host, why);
                }
            }
        }
        for host in self.unknown_hosts() {
            unknown.entry(host).or_insert_with(|| "its connection failed while a command ran".into());
        }
        unknown
    }

    /// What commands of another run (`run_id`, one whose process is gone) still run on
    /// `hosts`: each host where some do, with their processes (`PID COMMAND LINE`), or where
    /// that cannot be told, with why.
    pub async fn commands_left_by(
        &self,
        run_id: &str,
        hosts: Vec<String>,
    ) -> BTreeMap<String, Result<Vec<String>, String>> {
        let script = crate::script::run_commands_left(run_id);
        let items: Vec<(String, String)> = hosts.into_iter().map(|h| (h.clone(), h)).collect();
        let outcomes = for_each_host(items, self.concurrency, |host| {
            let script = &script;
            async move {
                let session = self.session(&host).await.map_err(|e| e.to_string())?;
                match super::run_limited(session.as_ref(), script, CHECK_LIMIT).await {
                    Ok(out) if out.success() => Ok(out.stdout.lines().map(str::to_string).collect::<Vec<_>>()),
                    Ok(out) => Err(format!("its processes could not be listed: {}", out.stderr.trim())),
                    Err(e) => Err(e.to_string()),
                }
            }
        })
        .await;
        outcomes
            .into_iter()
            .filter(|o| o.result.as_ref().map_or(true, |left| !left.is_empty()))
            .map(|o| (o.host, o.result))
            .collect()
    }

    /// Close every open session.
    pub async fn close(self) {
        for (_, cell) in self.sessions {
            if let Some(Ok(session)) = Arc::into_inner(cell).and_then(OnceCell::into_inner)
                && let Some(session) = Arc::into_inner(session)
            {
                self.connector.close(session).await;
            }
        }
    }

    /// Run the plan; each newly finished (step, host) is appended to `journal` with the step's
    /// key. The plan must be executable ([`Plan::check_executable`]).
    pub async fn execute(&self, plan: &Plan, journal: &Mutex<Journal>) -> RunReport {
        let mut report = RunReport::default();
        for (index, step) in plan.steps.iter().enumerate() {
            if !report.failures.is_empty() || self.stop.requested() {
                report.steps_not_run = plan.steps[index..].iter().map(|s| s.id.clone()).collect();
                break;
            }
            let step_report = self.run_step(step, journal).await;
            for (_, status) in &step_report.hosts {
                match status {
                    HostStatus::Failed { failure } => report.failures.push(failure.clone()),
                    HostStatus::Interrupted => report.interrupted = true,
                    _ => {}
                }
            }
            report.steps.push(step_report);
        }
        // A stop of the run's own (the lock in doubt) is a failure to finish, not Ctrl-C: exit 1
        // and the reason, so that a job does not read it as its own signal.
        report.interrupted |= self.stop.signalled();
        report.stopped_because = self.stop.reason();
        report.hosts = self.timings.lock().map(|t| t.clone()).unwrap_or_default();
        report
    }

    fn emit(&self, event: Event) {
        if let Ok(mut t) = self.timings.lock() {
            HostTiming::record(&mut t, &event);
        }
        (self.events)(event)
    }

    async fn run_step(&self, step: &PlannedStep, journal: &Mutex<Journal>) -> StepReport {
        self.emit(Event::StepStarted {
            step: step.id.clone(),
            title: step.title.clone(),
            hosts: step.hosts.len(),
            rollout: step.rollout.to_string(),
        });
        let mut statuses: BTreeMap<String, HostStatus> = BTreeMap::new();
        let mut pending = Vec::new();
        for hp in &step.hosts {
            match &hp.decision {
                crate::plan::Decision::Skip { reason } => {
                    let status = HostStatus::Skipped { reason: reason.clone() };
                    self.emit(Event::HostFinished {
                        step: step.id.clone(),
                        host: hp.host.clone(),
                        seconds: 0.0,
                        status: status.clone(),
                    });
                    statuses.insert(hp.host.clone(), status);
                }
                _ => pending.push(hp),
            }
        }
        // A sliding window: a host starts when a place is free, so one slow host never holds
        // up a whole batch; after a failure (or a stop) no new host starts.
        let window = match step.rollout {
            Rollout::Parallel => self.concurrency,
            Rollout::Serial => 1,
            Rollout::Batch(m) => m.batch_size(step.hosts.len()).min(self.concurrency),
        }
        .max(1);
        let failed = AtomicBool::new(false);
        let outcomes: Vec<(String, HostStatus)> = stream::iter(pending.iter().copied())
            .map(|hp| {
                let failed = &failed;
                async move { (hp.host.clone(), self.run_pending_host(step, hp, failed, journal).await) }
            })
            .buffer_unordered(window)
            .collect()
            .await;
        statuses.extend(outcomes);
        let count = |f: fn(&HostStatus) -> bool| statuses.values().filter(|s| f(s)).count();
        self.emit(Event::StepFinished {
            step: step.id.clone(),
            done: count(|s| matches!(s, HostStatus::Done)),
            skipped: count(|s| matches!(s, HostStatus::Skipped { .. } | HostStatus::Blocked { .. })),
            failed: count(|s| matches!(s, HostStatus::Failed { .. })),
            not_started: count(|s| matches!(s, HostStatus::NotStarted { .. } | HostStatus::Interrupted)),
        });
        let hosts = step.hosts.iter().filter_map(|h| statuses.remove(&h.host).map(|s| (h.host.clone(), s))).collect();
        StepReport { id: step.id.clone(), hosts }
    }

    /// One host of a step, when its place in the window comes: started unless the run is
    /// stopping, journaled when done.
    async fn run_pending_host(
        &self,
        step: &PlannedStep,
        hp: &HostPlan,
        failed: &AtomicBool,
        journal: &Mutex<Journal>,
    ) -> HostStatus {
        if failed.load(Ordering::SeqCst) || self.stop.requested() {
            let reason = match (self.stop.requested(), self.stop.reason()) {
                (true, Some(why)) if !self.stop.signalled() => format!("the run stopped: {why}"),
                (true, _) => "the run was interrupted".to_string(),
                (false, _) => "another host failed".to_string(),
            };
            return HostStatus::NotStarted { reason };
        }
        let started = Instant::now();
        self.emit(Event::HostStarted { step: step.id.clone(), host: hp.host.clone() });
        let mut status = tokio::select! {
            result = self.run_host(step, hp) => match result {
                Ok(()) => HostStatus::Done,
                Err(failure) if failure.skip_host => HostStatus::Blocked { failure },
                Err(failure) => HostStatus::Failed { failure },
            },
            () = self.stop.aborted() => HostStatus::Interrupted,
        };
        if status == HostStatus::Done
            && let Err(e) = journal
                .lock()
                .map_err(|_| "the journal is unavailable (poisoned lock)".to_string())
                .and_then(|mut j| j.host_done(&step.id, &hp.host, &step.key).map_err(|e| e.to_string()))
        {
            status = HostStatus::Failed {
                failure: self.failure(
                    &step.id,
                    &hp.host,
                    None,
                    e,
                    "the bastion's state directory must be writable; check disk space and permissions".into(),
                ),
            };
        }
        if matches!(status, HostStatus::Failed { .. }) {
            failed.store(true, Ordering::SeqCst);
        }
        self.emit(Event::HostFinished {
            step: step.id.clone(),
            host: hp.host.clone(),
            seconds: started.elapsed().as_secs_f64(),
            status: status.clone(),
        });
        status
    }

    async fn run_host(&self, step: &PlannedStep, hp: &HostPlan) -> Result<(), HostFailure> {
        let (work, rollback) = compile(hp.decision.actions());
        match self.run_work(step, &hp.host, &work).await {
            Err(mut failure) if !rollback.is_empty() => {
                // Put the host back as it was before the step; say how that went.
                self.emit(Event::Operation {
                    step: step.id.clone(),
                    host: hp.host.clone(),
                    kind: OperationKind::Rollback,
                    what: "the step failed: undoing it".into(),
                });
                match self.run_work(step, &hp.host, &rollback).await {
                    Ok(()) => failure.message.push_str("; the host was put back as it was before the step"),
                    Err(undo) => failure.message.push_str(&format!(
                        "; putting the host back failed too ({}: {}): restore it by hand",
                        undo.command.as_deref().unwrap_or("?"),
                        undo.message
                    )),
                }
                Err(failure)
            }
            other => other,
        }
    }

    async fn run_work(&self, step: &PlannedStep, host: &str, work: &[Work<'_>]) -> Result<(), HostFailure> {
        let limit = Duration::from_secs(step.command_timeout_s);
        for item in work {
            let on = match item {
                Work::Commands { on, .. } | Work::One { on, .. } => on.unwrap_or(host),
            };
            let session = self.session(on).await.map_err(|e| {
                let what = (on != host).then(|| format!("connect to {on}"));
                self.failure(&step.id, host, what.as_deref(), e.to_string(), e.hint())
            })?;
            match item {
                Work::Commands { parts, file, rollback, .. } => {
                    self.run_commands(step, host, on, session.as_ref(), parts, *file, *rollback, limit).await?
                }
                Work::One { action, .. } => {
                    self.run_action(&step.id, host, on, session.as_ref(), action, limit).await?
                }
            }
        }
        Ok(())
    }

    /// Commands as one script on `session` (the host's own, or `on`'s): under the step's time
    /// limit, in a session of their own on the host, with the step's secrets (or a transient
    /// file of them) on stdin.
    #[allow(clippy::too_many_arguments)]
    async fn run_commands(
        &self,
        step: &PlannedStep,
        host: &str,
        on: &str,
        session: &C::Session,
        parts: &[(String, Script)],
        file: Option<&FileWrite>,
        rollback: bool,
        limit: Duration,
    ) -> Result<(), HostFailure> {
        let step_id = step.id.as_str();
        let descriptions: Vec<&str> = parts.iter().map(|(d, _)| d.as_str()).collect();
        let what = self.redactor.redact(&descriptions.join("; "));
        let batched = parts.len() > 1;
        let mut script = match parts {
            [(_, one)] => crate::script::time_limited_script(one, limit),
            _ => batch(parts, limit),
        };
        let mut input: Option<Vec<u8>> = None;
        if let Some(f) = file {
            let content = self
                .complete(f.content.as_bytes())
                .map_err(|message| self.failure(step_id, host, Some(&f.path), message, "run apply again: the step that makes the value (kubeadm-init on the first control plane) runs on every apply that still has nodes to join".into()))?;
            script = Script::new().cmd([
                "sh",
                "-c",
                WITH_SECRET_FILE,
                "sh",
                f.path.as_str(),
                f.mode.as_str(),
                f.owner.as_str(),
                &script.to_shell(),
            ]);
            input = Some(content);
        } else if !step.secret_env.is_empty() {
            let values: String = step
                .secret_env
                .iter()
                .map(|name| format!("{name}={}\n", self.secret_env.get(name).map(String::as_str).unwrap_or_default()))
                .collect();
            script = Script::new().cmd(["sh", "-c", &format!("{SECRET_PRELUDE}\n{}", script.to_shell())]);
            input = Some(values.into_bytes());
        }
        let script = crate::script::in_own_session(&script, &self.run_id);
        if !batched {
            self.emit(Event::Operation {
                step: step_id.into(),
                host: host.into(),
                kind: if rollback { OperationKind::Rollback } else { OperationKind::Command },
                what: what.clone(),
            });
        }
        let mut on_line = |stream: OutputStream, line: &str| {
            let mut line = line;
            if stream == OutputStream::Stderr
                && batched
                && let Some((n, started, before)) = part_marker(line)
            {
                if started && let Some((part, _)) = parts.get(n) {
                    self.emit(Event::Operation {
                        step: step_id.into(),
                        host: host.into(),
                        kind: if rollback { OperationKind::Rollback } else { OperationKind::Command },
                        what: self.redactor.redact(part),
                    });
                }
                if before.is_empty() {
                    return;
                }
                line = before;
            }
            self.emit(Event::Output {
                step: step_id.into(),
                host: host.into(),
                stream: if stream == OutputStream::Stderr { "stderr" } else { "stdout" },
                line: self.redactor.redact(line),
            })
        };
        let command = async {
            match &input {
                Some(input) => {
                    let out = session.run_with_input(&script, input).await?;
                    for line in out.stdout.lines() {
                        on_line(OutputStream::Stdout, line);
                    }
                    for line in out.stderr.lines() {
                        on_line(OutputStream::Stderr, line);
                    }
                    Ok(out)
                }
                None => session.run_streaming(&script, &mut on_line).await,
            }
        };
        let out = match within_backstop(host, limit, parts.len() as u64, command).await {
            Ok(out) => out,
            Err(e) => {
                self.note_cut_off(on, &e);
                return Err(self.failure(step_id, host, Some(&what), e.to_string(), e.hint()));
            }
        };
        if out.success() {
            return Ok(());
        }
        let timed_out = out.code == Some(super::TIMEOUT_EXIT_CODE);
        // The failing part, named by its marker; markers are not the command's output.
        let mut failed_part = None;
        let mut lines: Vec<&str> = Vec::new();
        for line in out.stderr.lines() {
            match part_marker(line).filter(|_| batched) {
                Some((n, started, before)) => {
                    if !started {
                        failed_part = parts.get(n).map(|(d, _)| d);
                    }
                    if !before.is_empty() {
                        lines.push(before);
                    }
                }
                None => lines.push(line),
            }
        }
        let what = failed_part.map_or(what, |p| self.redactor.redact(p));
        let tail =
            lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].iter().map(|l| self.redactor.redact(l)).collect();
        let message = match (timed_out, out.code) {
            (true, _) => format!("timed out after {limit}"),
            (false, Some(code)) => format!("exited with {code}"),
            (false, None) => "killed by a signal".to_string(),
        };
        Err(HostFailure {
            host: host.into(),
            step: step_id.into(),
            command: Some(what),
            exit_code: out.code,
            stderr_tail: tail,
            message,
            hint: if timed_out {
                "the host stopped the command at its time limit: find what it waits for on the host (its stderr is above); if it only needs longer, raise `cluster.timeouts.command` (or the playbook step's `timeout`); then run the same command again: it continues with this step".into()
            } else {
                "fix the cause on the host (its stderr is above), then run the same command again: it continues with this step".into()
            },
            skip_host: false,
        })
    }

    /// An action that is not a command, on `session`.
    /// One action on `session`, the host's own or `on`'s (a forwarded action).
    async fn run_action(
        &self,
        step: &str,
        host: &str,
        on: &str,
        session: &C::Session,
        action: &Action,
        limit: Duration,
    ) -> Result<(), HostFailure> {
        let transport_failure =
            |e: TransportError, command: Option<&str>| self.failure(step, host, command, e.to_string(), e.hint());
        // For what changes a host: cut off, it may still be under way there.
        let change_failure = |e: TransportError, command: Option<&str>| {
            self.note_cut_off(on, &e);
            transport_failure(e, command)
        };
        let operation = |kind: OperationKind| {
            self.emit(Event::Operation {
                step: step.into(),
                host: host.into(),
                kind,
                what: self.redactor.redact(&action.summary()),
            })
        };
        let bastion_unwritable = "the bastion's state directory must be writable; check disk space and permissions";
        match action {
            Action::WriteFile(f) => {
                operation(OperationKind::Write);
                let mode = f.mode_bits().map_err(|m| {
                    self.failure(step, host, Some(&f.path), m, "report this: the plan holds a bad mode".into())
                })?;
                let content = match f.sensitive {
                    // Rendered with placeholders: the run's secrets go in at write time.
                    true => self.complete(f.content.as_bytes()).map_err(|message| {
                        self.failure(step, host, Some(&f.path), message, "run apply again: the step that makes the value (kubeadm-init on the first control plane) runs on every apply that still has nodes to join".into())
                    })?,
                    false => f.content.clone().into_bytes(),
                };
                within_backstop(host, limit, 1, session.upload(&f.path, &content, mode, &f.owner))
                    .await
                    .map_err(|e| change_failure(e, Some(&f.path)))?;
            }
            Action::Fetch { remote, local, mode, kubeconfig_server, keep } => {
                operation(OperationKind::Fetch);
                let local = std::path::Path::new(local);
                let mode = u32::from_str_radix(mode, 8).unwrap_or(0o600);
                let unwritable = |e: std::io::Error| {
                    self.failure(
                        step,
                        host,
                        Some(remote),
                        format!("cannot write {}: {e}", local.display()),
                        bastion_unwritable.into(),
                    )
                };
                // Into a private file beside the target, in pieces (a snapshot of gigabytes is
                // never held in memory), renamed over it only once complete.
                let tmp = super::private_file_beside(local).map_err(unwritable)?;
                within_backstop(host, limit, 1, session.download_to(remote, tmp.path()))
                    .await
                    .map_err(|e| transport_failure(e, Some(remote)))?;
                if let Some(k) = kubeconfig_server {
                    let text = std::fs::read_to_string(tmp.path()).map_err(unwritable)?;
                    let pointed = crate::kubeconfig::point_at(&text, k).map_err(|message| {
                        self.failure(
                            step,
                            host,
                            Some(remote),
                            message,
                            "the file kubeadm wrote is not the kubeconfig kubewright expects; look at it on the host"
                                .into(),
                        )
                    })?;
                    std::fs::write(tmp.path(), pointed).map_err(unwritable)?;
                }
                if let Some(keep) = keep {
                    super::rotate_copies(local, *keep).map_err(|e| {
                        self.failure(
                            step,
                            host,
                            Some(remote),
                            format!("cannot keep the earlier copies of {}: {e}", local.display()),
                            bastion_unwritable.into(),
                        )
                    })?;
                }
                super::persist(tmp, local, mode).map_err(unwritable)?;
            }
            Action::Upload { local, remote, mode, sha256 } => {
                operation(OperationKind::Send);
                let mode = u32::from_str_radix(mode, 8).unwrap_or(0o600);
                // Streamed; the host checks it is the file planned (its SHA-256) before it lands.
                within_backstop(
                    host,
                    limit,
                    1,
                    session.upload_file(remote, std::path::Path::new(local), sha256, mode, "root:root"),
                )
                .await
                .map_err(|e| change_failure(e, Some(remote)))?;
            }
            Action::PinCa { remote } => {
                operation(OperationKind::ReadCa);
                let pem = within_backstop(host, CHECK_LIMIT, 1, session.download(remote))
                    .await
                    .map_err(|e| transport_failure(e, Some(remote)))?;
                let pin = crate::pki::ca_pin(&pem).map_err(|e| {
                    self.failure(step, host, Some(remote), format!("{remote} is not a usable CA certificate: {e}"), "the first control plane's PKI is damaged; compare it with the other control planes before going on".into())
                })?;
                if let Ok(mut s) = self.secrets.lock() {
                    s.ca_cert_hashes = vec![pin];
                }
            }
            Action::VerifyCertificates { after } => {
                operation(OperationKind::Check);
                let out = super::run_limited(session, &crate::facts::gather::certificates_script(), CHECK_LIMIT)
                    .await
                    .map_err(|e| transport_failure(e, Some("read the certificates")))?;
                let problems = crate::facts::gather::parse_certificates(&out.stdout)
                    .map(|certs| crate::certs::renewal_problems(&certs, *after))
                    .unwrap_or_else(|e| vec![e]);
                if !problems.is_empty() {
                    return Err(self.failure(step, host, Some("verify the certificates"), format!("the certificates are not renewed as they should be: {}", problems.join("; ")), "look at /etc/kubernetes/pki on the host; the backup of the previous certificates is in /var/lib/kubewright/backups".into()));
                }
            }
            Action::VerifyKubeadmConfig { expected } => {
                operation(OperationKind::Check);
                let out = super::run_limited(session, &super::wait::kubeadm_config_probe(), CHECK_LIMIT)
                    .await
                    .map_err(|e| transport_failure(e, Some("kubectl get configmap kubeadm-config")))?;
                let verdict = if out.success() {
                    crate::kube::parse_kubeadm_config(&out.stdout)
                        .and_then(|yaml| crate::kube::kubeadm_config_drift(expected, &yaml))
                } else {
                    Err(format!("kubectl could not read it: {}", out.stderr.trim()))
                };
                match verdict {
                    Ok(drift) if drift.is_empty() => {}
                    Ok(drift) => return Err(self.failure(step, host, Some("kubeadm-config"), format!("the cluster's kubeadm-config differs from the inventory: {}", drift.join("; ")), "kubeadm cannot change these after init: set the inventory back to what the cluster has (for kubernetesVersion, `kubewright upgrade -i INV` goes to the inventory's version)".into())),
                    Err(why) => return Err(self.failure(step, host, Some("kubeadm-config"), format!("the cluster's kubeadm-config cannot be checked: {why}"), "check the API server with `kubectl get configmap -n kube-system kubeadm-config` on the control plane".into())),
                }
            }
            Action::Probe { description, commands, timeout_s } => {
                operation(OperationKind::Wait);
                self.probe(step, host, session, description, commands, std::time::Duration::from_secs(*timeout_s))
                    .await?;
            }
            Action::Wait { nodes, version, etcd, timeout_s, .. } => {
                operation(OperationKind::Wait);
                self.wait(step, host, session, nodes, version, *etcd, std::time::Duration::from_secs(*timeout_s))
                    .await?;
            }
            Action::Drain { node, grace_period_s, timeout_s, skip_when_blocked, mark } => {
                operation(OperationKind::Drain);
                if *mark {
                    let out = super::run_limited(session, &crate::kube::mark_cordoned_command(node), CHECK_LIMIT)
                        .await
                        .map_err(|e| change_failure(e, Some("kubectl annotate")))?;
                    if !out.success() {
                        return Err(self.failure(step, host, Some("kubectl annotate"), format!("cannot mark {node} as cordoned by kubewright: {}", out.stderr.trim()), "check the API server answers (`kubectl get nodes` on the control plane), then run the same command again".into()));
                    }
                }
                self.drain(step, host, on, session, node, *grace_period_s, *timeout_s, *skip_when_blocked).await?;
            }
            // Compiled away: commands are run by `run_commands`, notes run nothing, and a
            // forwarded action is run over the other host's session.
            Action::Run { .. }
            | Action::RunWithFile { .. }
            | Action::Packages { .. }
            | Action::Rollback { .. }
            | Action::Note { .. }
            | Action::Via { .. } => {}
        }
        Ok(())
    }

    /// A command of this run that changes `on` was cut off by `e`: unless it never started (no
    /// connection, no login), it may still be running there, and the run cannot say it is
    /// over (the lock is kept). Reads are not recorded: one left running changes nothing.
    fn note_cut_off(&self, on: &str, e: &TransportError) {
        if matches!(e, TransportError::Exec { .. })
            && let Ok(mut u) = self.unknown.lock()
        {
            u.insert(on.to_string());
        }
    }

    /// `content` with this run's values in place of the placeholders it was rendered with.
    fn complete(&self, content: &[u8]) -> Result<Vec<u8>, String> {
        let secrets =
            self.secrets.lock().map_err(|_| "the run's secrets are unavailable (poisoned lock)".to_string())?;
        let placeholders = Secrets::placeholders();
        let mut text = String::from_utf8_lossy(content).into_owned();
        let pairs = [
            (&placeholders.bootstrap_token, &secrets.bootstrap_token, "the bootstrap token"),
            (&placeholders.certificate_key, &secrets.certificate_key, "the certificate key"),
            (&placeholders.ca_cert_hashes[0], &secrets.ca_cert_hashes[0], "the cluster CA's hash"),
        ];
        for (placeholder, value, what) in pairs {
            if !text.contains(placeholder.as_str()) {
                continue;
            }
            if value == placeholder {
                return Err(format!("{what} is not known in this run, so the file cannot be completed"));
            }
            text = text.replace(placeholder.as_str(), value);
        }
        Ok(text.into_bytes())
    }

    /// Poll the node list (and the local etcd) from `session` until the nodes are Ready.
    #[allow(clippy::too_many_arguments)]
    async fn wait(
        &self,
        step: &str,
        host: &str,
        session: &C::Session,
        nodes: &[String],
        version: &str,
        etcd: bool,
        timeout: std::time::Duration,
    ) -> Result<(), HostFailure> {
        use super::wait::{CRICTL_MISSING, etcd_probe, judge_etcd, judge_nodes, nodes_probe};
        let started = Instant::now();
        let mut etcd_unchecked_noted = false;
        loop {
            let mut verdict = match attempt(session, &nodes_probe(), started, timeout).await {
                Ok(out) => judge_nodes(&out, nodes, version),
                Err(why) => Err(why),
            };
            if verdict.is_ok() && etcd {
                verdict = match attempt(session, &etcd_probe(), started, timeout).await {
                    Ok(out) if out.code == Some(CRICTL_MISSING) => {
                        if !etcd_unchecked_noted {
                            etcd_unchecked_noted = true;
                            self.emit(Event::Output {
                                step: step.into(),
                                host: host.into(),
                                stream: "stderr",
                                line: "etcd health not checked: crictl is not installed on this host (etcd is reached through its container)".into(),
                            });
                        }
                        Ok(())
                    }
                    Ok(out) => judge_etcd(&out),
                    Err(why) => Err(why),
                };
            }
            let why = match verdict {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            // A first Ctrl-C lets the running host finish its step, its waits included: a wait
            // cut short would report a failure that is not one and undo the step.
            if started.elapsed() >= timeout {
                let message = format!("still not ready after {}s: {why}", timeout.as_secs());
                return Err(self.failure(step, host, Some(&format!("wait until {}", nodes.join(", "))), message, "look at the nodes with `kubectl get nodes` and the kubelet's log (`journalctl -u kubelet`) on the nodes named; run the same command again once they are Ready (a wait lasts `cluster.timeouts.ready`)".into()));
            }
            tokio::time::sleep(WAIT_INTERVAL.min(timeout.saturating_sub(started.elapsed()))).await;
        }
    }

    /// Run `script` from `session` until it succeeds.
    async fn probe(
        &self,
        step: &str,
        host: &str,
        session: &C::Session,
        description: &str,
        script: &Script,
        timeout: std::time::Duration,
    ) -> Result<(), HostFailure> {
        let started = Instant::now();
        loop {
            let why = match attempt(session, script, started, timeout).await {
                Ok(out) if out.success() => return Ok(()),
                Ok(out) => {
                    let text = if out.stderr.trim().is_empty() { &out.stdout } else { &out.stderr };
                    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string()
                }
                Err(why) => why,
            };
            if started.elapsed() >= timeout {
                let message = format!("not yet after {}s ({description}): {why}", timeout.as_secs());
                return Err(self.failure(
                    step,
                    host,
                    Some(&script.to_string()),
                    message,
                    "run the command on the host to see why it fails; run the same command again once it succeeds (a wait lasts `cluster.timeouts.ready`)"
                        .into(),
                ));
            }
            tokio::time::sleep(WAIT_INTERVAL.min(timeout.saturating_sub(started.elapsed()))).await;
        }
    }

    /// `kubectl drain` from `session`; when it fails, the pods it could not evict and the
    /// budgets that allow no disruption now are named.
    #[allow(clippy::too_many_arguments)]
    async fn drain(
        &self,
        step: &str,
        host: &str,
        on: &str,
        session: &C::Session,
        node: &str,
        grace_period_s: u64,
        timeout_s: u64,
        skip_when_blocked: bool,
    ) -> Result<(), HostFailure> {
        let script = crate::kube::drain_command(node, grace_period_s, timeout_s);
        let command = script.to_shell();
        let mut on_line = |stream: OutputStream, line: &str| {
            self.emit(Event::Output {
                step: step.into(),
                host: host.into(),
                stream: if stream == OutputStream::Stderr { "stderr" } else { "stdout" },
                line: self.redactor.redact(line),
            })
        };
        // kubectl gives up at its own --timeout; the host stops it a minute after that, and a
        // dead link is given up on after the backstop.
        let limit = Duration::from_secs(timeout_s + 60);
        let limited = crate::script::in_own_session(&crate::script::time_limited_script(&script, limit), &self.run_id);
        let out =
            within_backstop(host, limit, 1, session.run_streaming(&limited, &mut on_line)).await.map_err(|e| {
                self.note_cut_off(on, &e);
                self.failure(step, host, Some(&command), e.to_string(), e.hint())
            })?;
        if out.success() {
            return Ok(());
        }
        let pods = crate::kube::pods_not_evicted(&out.stderr);
        let budgets = match super::run_limited(session, &crate::kube::budgets_probe(), CHECK_LIMIT).await {
            Ok(b) if b.success() => crate::kube::exhausted_budgets(&b.stdout),
            _ => Vec::new(),
        };
        let last = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim();
        let message = if pods.is_empty() {
            format!("the drain of {node} failed: {last}")
        } else if budgets.is_empty() {
            format!("the drain of {node} could not evict {}: {last}", pods.join(", "))
        } else {
            format!(
                "the drain of {node} was blocked: {} not evicted; disruption budget(s) allowing no disruption now: {}",
                pods.join(", "),
                budgets.join(", ")
            )
        };
        let mut failure = self.failure(step, host, Some(&command), message, "scale the workload up or relax its PodDisruptionBudget, then run again (it continues with this node); `kubewright upgrade --skip-blocked` goes on with the other nodes and lists this one, --keep-cordoned leaves it cordoned".into());
        failure.exit_code = out.code;
        let lines: Vec<&str> = out.stderr.lines().collect();
        failure.stderr_tail =
            lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].iter().map(|l| self.redactor.redact(l)).collect();
        failure.skip_host = skip_when_blocked && !pods.is_empty();
        Err(failure)
    }

    fn failure(&self, step: &str, host: &str, command: Option<&str>, message: String, hint: String) -> HostFailure {
        HostFailure {
            host: host.to_string(),
            step: step.to_string(),
            command: command.map(|c| self.redactor.redact(c)),
            exit_code: None,
            stderr_tail: Vec::new(),
            message: self.redactor.redact(&message),
            hint,
            skip_host: false,
        }
    }
}

/// One attempt of a wait that started at `started` and may take `timeout`: stopped on the host
/// at [`ATTEMPT_LIMIT_S`] or when the wait's time is up, whichever comes first. Err says why
/// it gave no answer.
async fn attempt<T: Transport>(
    session: &T,
    script: &Script,
    started: Instant,
    timeout: std::time::Duration,
) -> Result<crate::ssh::Output, String> {
    // Rounded up: an attempt may use all that is left, so the wait ends with it.
    let left = timeout.saturating_sub(started.elapsed()).as_millis().div_ceil(1000) as u64;
    let limit = Duration::from_secs(left.clamp(1, ATTEMPT_LIMIT_S));
    match super::run_limited(session, script, limit).await {
        Ok(out) if out.code == Some(super::TIMEOUT_EXIT_CODE) => {
            Err(format!("the check gave no answer within {limit} and was stopped"))
        }
        Ok(out) => Ok(out),
        Err(e) => Err(e.to_string()),
    }
}

/// A host's actions as the engine runs them: consecutive commands for the same host become
/// one script (one round trip), a command reading a transient file of secrets goes with it,
/// notes run nothing, and rollbacks are set apart (run only if something fails).
fn compile(actions: &[Action]) -> (Vec<Work<'_>>, Vec<Work<'_>>) {
    let (mut work, mut rollback) = (Vec::new(), Vec::new());
    for action in actions {
        let (on, inner) = match action {
            Action::Via { on, action } => (Some(on.as_str()), action.as_ref()),
            other => (None, other),
        };
        let target = if matches!(inner, Action::Rollback { .. }) { &mut rollback } else { &mut work };
        match inner {
            Action::Note { .. } => {}
            Action::RunWithFile { file, description, commands } => target.push(Work::Commands {
                on,
                parts: vec![(description.clone(), commands.clone())],
                file: Some(file),
                rollback: false,
            }),
            Action::Run { .. } | Action::Packages { .. } | Action::Rollback { .. } => {
                let part = (inner.summary(), inner.commands().unwrap_or_default());
                let is_rollback = matches!(inner, Action::Rollback { .. });
                match target.last_mut() {
                    Some(Work::Commands { on: last_on, parts, file: None, rollback: r })
                        if *last_on == on && *r == is_rollback =>
                    {
                        parts.push(part)
                    }
                    _ => target.push(Work::Commands { on, parts: vec![part], file: None, rollback: is_rollback }),
                }
            }
            _ => target.push(Work::One { on, action: inner }),
        }
    }
    (work, rollback)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_locally(script: &Script) -> std::process::Output {
        std::process::Command::new("sh").arg("-c").arg(script.to_shell()).output().unwrap()
    }

    #[test]
    fn a_batch_runs_parts_in_order_and_names_the_one_that_failed() {
        let part = |d: &str, words: &[&str]| (d.to_string(), Script::new().cmd(words.iter().copied()));
        let script = batch(
            &[
                part("first", &["echo", "one"]),
                ("second".into(), Script::new().cmd(["false"]).cmd(["echo", "not reached: errexit"])),
                part("third", &["echo", "three"]),
            ],
            Duration::from_secs(60),
        );
        let out = run_locally(&script);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let markers: Vec<_> = stderr.lines().filter_map(part_marker).map(|(n, started, _)| (n, started)).collect();
        assert_eq!(markers, [(0, true), (1, true), (1, false)]);
    }

    /// The step's time limit holds for each command it batches, not for all of them together
    /// (a step of apt-get, `kubeadm upgrade plan` and `kubeadm upgrade apply` gets the limit
    /// for each); a part over the limit ends the batch with timeout's exit code.
    #[test]
    fn each_part_of_a_batch_has_the_whole_time_limit() {
        let sleep = |d: &str, s: &str| (d.to_string(), Script::new().cmd(["sleep", s]));
        let three = [sleep("a", "0.6"), sleep("b", "0.6"), sleep("c", "0.6")];
        let out = run_locally(&batch(&three, Duration::from_secs(1)));
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

        let over = [sleep("a", "0.1"), sleep("b", "5")];
        let started = Instant::now();
        let out = run_locally(&batch(&over, Duration::from_secs(1)));
        assert_eq!(out.status.code(), Some(crate::script::TIMEOUT_EXIT_CODE));
        assert!(started.elapsed() < std::time::Duration::from_secs(4), "{:?}", started.elapsed());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.lines().filter_map(part_marker).any(|m| (m.0, m.1) == (1, false)), "{stderr}");
    }

    #[test]
    fn a_marker_after_unterminated_output_is_still_found() {
        assert_eq!(part_marker("no newlineKUBEWRIGHT-PART-FAILED:2"), Some((2, false, "no newline")));
        assert_eq!(part_marker("ordinary line"), None);
    }

    #[test]
    fn a_secret_file_is_written_read_and_removed_by_one_script() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/creds.yaml");
        let me = format!("{}:{}", users_id("-u"), users_id("-g"));
        let script = Script::new().cmd([
            "sh",
            "-c",
            WITH_SECRET_FILE,
            "sh",
            file.to_str().unwrap(),
            "0600",
            me.as_str(),
            &Script::new().cmd(["cat", file.to_str().unwrap()]).to_shell(),
        ]);
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script.to_shell())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"token: abc\n").unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "token: abc\n", "the command read it");
        assert!(!file.exists(), "and it is gone");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o755);
    }

    fn users_id(flag: &str) -> String {
        let out = std::process::Command::new("id").arg(flag).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}
