//! The executor: runs a [`Job`] (a plan lowered to commands and files) step by step.
//!
//! Within a step, hosts run in parallel up to the concurrency, one at a time (`serial`), or
//! in batches; a step starts only when the previous one finished everywhere. A failing host
//! stops new work: hosts already running finish, nothing else starts, and the run ends after
//! that step. Every finished (step, host) is journaled before the next starts, so a later
//! run continues where this one stopped. Everything it reports passes through the run's
//! [`Redactor`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::{Notify, OnceCell};

use super::journal::Journal;
use super::{REMOTE_KILL_GRACE_SECS, for_each_host};
use crate::duration::Duration;
use crate::playbook::Rollout;
use crate::redact::Redactor;
use crate::render::Secrets;
use crate::script::Script;
use crate::ssh::{Connector, OutputStream, Session, Target, Transport, TransportError};

/// A plan lowered to what runs on the hosts.
#[derive(Debug, Clone)]
pub struct Job {
    pub playbook: String,
    pub steps: Vec<JobStep>,
}

#[derive(Debug, Clone)]
pub struct JobStep {
    pub id: String,
    pub title: String,
    pub rollout: Rollout,
    pub hosts: Vec<HostWork>,
}

#[derive(Debug, Clone)]
pub struct HostWork {
    pub host: String,
    /// Nothing to do, and why (the plan's Skip).
    pub skip: Option<String>,
    /// Runs even when the journal has it finished: it makes something this run needs (the
    /// credentials of this run's joins), which an earlier run's work cannot provide.
    pub every_run: bool,
    pub ops: Vec<Op>,
    /// Run when an op fails, to put the host back as it was before the step (the plan's
    /// `rollback` actions).
    pub rollback: Vec<Op>,
}

/// One thing done on a host.
#[derive(Debug, Clone)]
pub enum Op {
    /// A script; `input` goes to its stdin (how secrets reach a command: never on a command
    /// line); `limit` is the time limit of each of its commands (see
    /// [`crate::script::time_limited`]). A script made by [`batch`] from several commands
    /// (`parts`, their descriptions) reports on stderr which part runs and which failed.
    Run { description: String, script: Script, input: Option<Vec<u8>>, limit: Duration, parts: Vec<String> },
    /// An atomic file write. With `complete`, the content was rendered with placeholders
    /// (`<bootstrap-token>`) that get this run's values right before it is written.
    Upload { path: String, content: Vec<u8>, mode: u32, owner: String, complete: bool },
    /// Copy a host's file to the bastion (atomically, with `mode`); a kubeconfig gets the
    /// bastion's server address when `kubeconfig_server` says so.
    Fetch {
        remote: String,
        local: PathBuf,
        mode: u32,
        kubeconfig_server: Option<crate::plan::KubeconfigServer>,
        /// Earlier copies kept beside it (`FILE.1` the newest); None: replaced.
        keep: Option<u32>,
    },
    /// Read the host's certificates again: every one kubeadm renews must expire after `after`
    /// and be signed by its CA on disk.
    VerifyCertificates { after: i64 },
    /// Read the cluster's kubeadm-config through the host's admin kubeconfig; fail where a
    /// field differs from `expected`.
    VerifyKubeadmConfig { expected: BTreeMap<String, String> },
    /// Run `script` every few seconds until it succeeds; fail after `timeout` with its last
    /// error.
    Probe { description: String, script: Script, timeout: std::time::Duration },
    /// Read the cluster CA certificate at `remote`: later uploads pin its public key.
    PinCa { remote: String },
    /// Poll until every node in `nodes` is Ready with a kubelet at `version` (and with `etcd`
    /// the host's etcd member healthy), as seen from this host; fail after `timeout`.
    Wait { description: String, nodes: Vec<String>, version: String, etcd: bool, timeout: std::time::Duration },
    /// Cordon and drain `node` through this host's admin kubeconfig (evictions, so disruption
    /// budgets hold). A drain the budgets block names the pods and budgets; with
    /// `skip_when_blocked` the host is left out and the run goes on.
    Drain { node: String, grace_period_s: u64, timeout_s: u64, skip_when_blocked: bool },
    /// `op` for this host, carried out over `host`'s session (a worker's drain and wait run on a
    /// control plane, where the admin kubeconfig is).
    Via { host: String, op: Box<Op> },
}

/// How often a wait asks again.
const WAIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The longest one attempt of a wait may take (a healthy `kubectl get` or `etcdctl endpoint
/// health` answers in about a second; etcdctl gives up after 5 s of its own).
const ATTEMPT_LIMIT_S: u64 = 30;

/// One attempt of a wait that started at `started` and may take `timeout`: stopped on the host
/// at [`ATTEMPT_LIMIT_S`] or when the wait's time is up, whichever comes first. Err says why
/// it gave no answer.
async fn attempt(
    session: &Session,
    script: &Script,
    started: Instant,
    timeout: std::time::Duration,
) -> Result<crate::ssh::Output, String> {
    // Rounded up: an attempt may use all that is left, so the wait ends with it.
    let left = timeout.saturating_sub(started.elapsed()).as_millis().div_ceil(1000) as u64;
    let limit = crate::duration::Duration::from_secs(left.clamp(1, ATTEMPT_LIMIT_S));
    match super::run_limited(session, script, limit).await {
        Ok(out) if out.code == Some(super::TIMEOUT_EXIT_CODE) => {
            Err(format!("the check gave no answer within {limit} and was stopped"))
        }
        Ok(out) => Ok(out),
        Err(e) => Err(e.to_string()),
    }
}

/// Markers a batched script writes on stderr: the part starting, and the part that failed.
const PART_STARTED: &str = "KUBEWRIGHT-PART-STARTED:";
const PART_FAILED: &str = "KUBEWRIGHT-PART-FAILED:";

/// Several commands as one script, so that a host step costs one round trip: each part runs in
/// order and the first failing one ends the script with its exit code, after naming itself
/// on stderr (the engine turns the markers back into progress and the failing command).
pub fn batch(parts: Vec<(String, Script)>) -> (Script, Vec<String>) {
    let mut text = String::new();
    for (n, (_, script)) in parts.iter().enumerate() {
        // Each part in its own `sh -eu`: errexit holds inside it, which it would not in a
        // compound list on the left of `||`.
        text.push_str(&format!(
            "printf '%s\\n' {PART_STARTED}{n} >&2\nsh -euc {} || {{ kubewright_rc=$?; printf '%s\\n' {PART_FAILED}{n} >&2; exit \"$kubewright_rc\"; }}\n",
            crate::script::quote(&script.to_shell())
        ));
    }
    (Script::new().cmd(["sh", "-c", text.as_str()]), parts.into_iter().map(|(d, _)| d).collect())
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
/// them.
#[derive(Default)]
pub struct StopSignal {
    requested: AtomicBool,
    aborted: AtomicBool,
    abort_now: Notify,
}

impl StopSignal {
    /// Ctrl-C or SIGTERM: the first stops new work, the second abandons running commands.
    pub fn request(&self) {
        if self.requested.swap(true, Ordering::SeqCst) {
            self.aborted.store(true, Ordering::SeqCst);
            self.abort_now.notify_waiters();
        }
    }

    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
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

/// How many stderr lines a failure keeps.
const STDERR_TAIL_LINES: usize = 10;

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

#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub steps: Vec<StepReport>,
    /// Steps never reached because the run stopped first.
    pub steps_not_run: Vec<String>,
    pub failures: Vec<HostFailure>,
    pub interrupted: bool,
}

impl RunReport {
    pub fn completed(&self) -> bool {
        self.failures.is_empty() && !self.interrupted && self.steps_not_run.is_empty()
    }
}

type SessionCell = Arc<OnceCell<Result<Arc<Session>, TransportError>>>;

/// Runs jobs over one connector; a host's session is opened once and reused by every step.
pub struct Engine<'a> {
    connector: &'a Connector,
    targets: BTreeMap<String, Target>,
    sessions: HashMap<String, SessionCell>,
    concurrency: usize,
    redactor: &'a Redactor,
    events: &'a (dyn Fn(Event) + Sync),
    stop: &'a StopSignal,
    /// The values placeholders in files are completed with; a CA pin is learned mid-run.
    secrets: Mutex<Secrets>,
}

impl<'a> Engine<'a> {
    pub fn new(
        connector: &'a Connector,
        targets: BTreeMap<String, Target>,
        concurrency: usize,
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
            secrets: Mutex::new(Secrets::placeholders()),
        }
    }

    /// The bootstrap token and certificate key this run's joins use (made on the bastion,
    /// kept in memory; the caller redacts them).
    pub fn with_join_secrets(self, bootstrap_token: String, certificate_key: String) -> Self {
        if let Ok(mut s) = self.secrets.lock() {
            s.bootstrap_token = bootstrap_token;
            s.certificate_key = certificate_key;
        }
        self
    }

    /// The host's session, opened on first use.
    pub async fn session(&self, host: &str) -> Result<Arc<Session>, TransportError> {
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
    /// the files kubewright manages on each host.
    pub async fn gather_facts(
        &self,
        paths: &BTreeMap<String, Vec<String>>,
    ) -> Result<crate::facts::ClusterFacts, Vec<super::facts::FactsFailure>> {
        match self.gather_facts_partial(paths).await {
            (facts, failures) if failures.is_empty() => Ok(facts),
            (_, failures) => Err(failures),
        }
    }

    /// [`Engine::gather_facts`], keeping the facts of the hosts that answered beside the
    /// failures of those that did not.
    pub async fn gather_facts_partial(
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

    /// Close every open session.
    pub async fn close(self) {
        for (_, cell) in self.sessions {
            if let Some(Ok(session)) = Arc::into_inner(cell).and_then(OnceCell::into_inner)
                && let Some(session) = Arc::into_inner(session)
            {
                session.close().await;
            }
        }
    }

    /// Run the job; (step, host) pairs in `done` were finished by an earlier run and are
    /// skipped. Each newly finished pair is appended to `journal`.
    pub async fn execute(&self, job: &Job, done: &BTreeSet<(String, String)>, journal: &Mutex<Journal>) -> RunReport {
        let mut report =
            RunReport { steps: Vec::new(), steps_not_run: Vec::new(), failures: Vec::new(), interrupted: false };
        for (index, step) in job.steps.iter().enumerate() {
            if !report.failures.is_empty() || self.stop.requested() {
                report.steps_not_run = job.steps[index..].iter().map(|s| s.id.clone()).collect();
                break;
            }
            let step_report = self.run_step(step, done, journal).await;
            for (_, status) in &step_report.hosts {
                match status {
                    HostStatus::Failed { failure } => report.failures.push(failure.clone()),
                    HostStatus::Interrupted => report.interrupted = true,
                    _ => {}
                }
            }
            report.steps.push(step_report);
        }
        report.interrupted |= self.stop.requested();
        report
    }

    async fn run_step(
        &self,
        step: &JobStep,
        done: &BTreeSet<(String, String)>,
        journal: &Mutex<Journal>,
    ) -> StepReport {
        let emit = |e: Event| (self.events)(e);
        emit(Event::StepStarted {
            step: step.id.clone(),
            title: step.title.clone(),
            hosts: step.hosts.len(),
            rollout: step.rollout.to_string(),
        });
        let mut statuses: BTreeMap<String, HostStatus> = BTreeMap::new();
        let mut pending = Vec::new();
        for work in &step.hosts {
            let skip = if !work.every_run && done.contains(&(step.id.clone(), work.host.clone())) {
                Some("finished by an earlier run (journal)".to_string())
            } else {
                work.skip.clone()
            };
            match skip {
                Some(reason) => {
                    let status = HostStatus::Skipped { reason };
                    emit(Event::HostFinished {
                        step: step.id.clone(),
                        host: work.host.clone(),
                        seconds: 0.0,
                        status: status.clone(),
                    });
                    statuses.insert(work.host.clone(), status);
                }
                None => pending.push(work),
            }
        }
        let (group_size, window) = match step.rollout {
            Rollout::Parallel => (pending.len().max(1), self.concurrency),
            Rollout::Serial => (1, 1),
            Rollout::Batch(m) => {
                let size = m.batch_size(step.hosts.len());
                (size, size.min(self.concurrency))
            }
        };
        let failed = AtomicBool::new(false);
        for group in pending.chunks(group_size) {
            let items: Vec<(String, &HostWork)> = group.iter().map(|w| (w.host.clone(), *w)).collect();
            let outcomes = for_each_host(items, window, |work| {
                let failed = &failed;
                async move {
                    if failed.load(Ordering::SeqCst) || self.stop.requested() {
                        let reason =
                            if self.stop.requested() { "the run was interrupted" } else { "another host failed" };
                        return Ok(HostStatus::NotStarted { reason: reason.into() });
                    }
                    let started = Instant::now();
                    emit(Event::HostStarted { step: step.id.clone(), host: work.host.clone() });
                    let status = tokio::select! {
                        result = self.run_host(&step.id, work) => match result {
                            Ok(()) => HostStatus::Done,
                            Err(failure) if failure.skip_host => HostStatus::Blocked { failure },
                            Err(failure) => HostStatus::Failed { failure },
                        },
                        () = self.stop.aborted() => HostStatus::Interrupted,
                    };
                    match &status {
                        HostStatus::Done => {
                            if let Err(e) = journal
                                .lock()
                                .map_err(|_| "poisoned".to_string())
                                .and_then(|mut j| j.host_done(&step.id, &work.host).map_err(|e| e.to_string()))
                            {
                                failed.store(true, Ordering::SeqCst);
                                let failure = self.failure(
                                    &step.id,
                                    &work.host,
                                    None,
                                    e.to_string(),
                                    "the bastion's state directory must be writable; check disk space and permissions"
                                        .into(),
                                );
                                let status = HostStatus::Failed { failure };
                                emit(Event::HostFinished {
                                    step: step.id.clone(),
                                    host: work.host.clone(),
                                    seconds: started.elapsed().as_secs_f64(),
                                    status: status.clone(),
                                });
                                return Ok(status);
                            }
                        }
                        HostStatus::Failed { .. } => failed.store(true, Ordering::SeqCst),
                        _ => {}
                    }
                    emit(Event::HostFinished {
                        step: step.id.clone(),
                        host: work.host.clone(),
                        seconds: started.elapsed().as_secs_f64(),
                        status: status.clone(),
                    });
                    Ok::<_, std::convert::Infallible>(status)
                }
            })
            .await;
            for o in outcomes {
                let Ok(status) = o.result;
                statuses.insert(o.host, status);
            }
        }
        // Hosts of later groups that never started.
        for work in &pending {
            statuses
                .entry(work.host.clone())
                .or_insert_with(|| HostStatus::NotStarted { reason: "the run stopped".into() });
        }
        let count = |f: fn(&HostStatus) -> bool| statuses.values().filter(|s| f(s)).count();
        emit(Event::StepFinished {
            step: step.id.clone(),
            done: count(|s| matches!(s, HostStatus::Done)),
            skipped: count(|s| matches!(s, HostStatus::Skipped { .. } | HostStatus::Blocked { .. })),
            failed: count(|s| matches!(s, HostStatus::Failed { .. })),
            not_started: count(|s| matches!(s, HostStatus::NotStarted { .. } | HostStatus::Interrupted)),
        });
        let hosts = step.hosts.iter().filter_map(|w| statuses.remove(&w.host).map(|s| (w.host.clone(), s))).collect();
        StepReport { id: step.id.clone(), hosts }
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
        session: &Session,
        nodes: &[String],
        version: &str,
        etcd: bool,
        timeout: std::time::Duration,
    ) -> Result<(), HostFailure> {
        use super::wait::{ETCDCTL_MISSING, etcd_probe, judge_etcd, judge_nodes, nodes_probe};
        let started = Instant::now();
        let mut etcd_unchecked_noted = false;
        loop {
            let mut verdict = match attempt(session, &nodes_probe(), started, timeout).await {
                Ok(out) => judge_nodes(&out, nodes, version),
                Err(why) => Err(why),
            };
            if verdict.is_ok() && etcd {
                verdict = match attempt(session, &etcd_probe(), started, timeout).await {
                    Ok(out) if out.code == Some(ETCDCTL_MISSING) => {
                        if !etcd_unchecked_noted {
                            etcd_unchecked_noted = true;
                            (self.events)(Event::Output {
                                step: step.into(),
                                host: host.into(),
                                stream: "stderr",
                                line: "etcd health not checked: etcdctl is not installed on this host".into(),
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
            if started.elapsed() >= timeout || self.stop.requested() {
                let message = if self.stop.requested() {
                    format!("stopped while waiting: {why}")
                } else {
                    format!("still not ready after {}s: {why}", timeout.as_secs())
                };
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
        session: &Session,
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
            if started.elapsed() >= timeout || self.stop.requested() {
                let message = if self.stop.requested() {
                    format!("stopped while waiting until {description}: {why}")
                } else {
                    format!("not yet after {}s ({description}): {why}", timeout.as_secs())
                };
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
        session: &Session,
        node: &str,
        grace_period_s: u64,
        timeout_s: u64,
        skip_when_blocked: bool,
    ) -> Result<(), HostFailure> {
        let script = crate::kube::drain_command(node, grace_period_s, timeout_s);
        let command = script.to_shell();
        // kubectl gives up at its own --timeout; a dead link never answers.
        let backstop = std::time::Duration::from_secs(timeout_s + REMOTE_KILL_GRACE_SECS + 60);
        let mut on_line = |stream: OutputStream, line: &str| {
            (self.events)(Event::Output {
                step: step.into(),
                host: host.into(),
                stream: if stream == OutputStream::Stderr { "stderr" } else { "stdout" },
                line: self.redactor.redact(line),
            })
        };
        let out = tokio::time::timeout(backstop, session.run_streaming(&script, &mut on_line))
            .await
            .unwrap_or_else(|_| {
                Err(TransportError::Exec {
                    host: host.into(),
                    detail: format!("no answer within {}s; the link may be down", backstop.as_secs()),
                })
            })
            .map_err(|e| self.failure(step, host, Some(&command), e.to_string(), e.hint()))?;
        if out.success() {
            return Ok(());
        }
        let pods = crate::kube::pods_not_evicted(&out.stderr);
        let budgets = match session.run(&crate::kube::budgets_probe()).await {
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

    async fn run_host(&self, step: &str, work: &HostWork) -> Result<(), HostFailure> {
        let result = self.run_ops(step, &work.host, &work.ops).await;
        match result {
            Err(mut failure) if !work.rollback.is_empty() => {
                // Put the host back as it was before the step; say how that went.
                (self.events)(Event::Operation {
                    step: step.into(),
                    host: work.host.clone(),
                    what: "the step failed: undoing it".into(),
                });
                match self.run_ops(step, &work.host, &work.rollback).await {
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

    async fn run_ops(&self, step: &str, host: &str, ops: &[Op]) -> Result<(), HostFailure> {
        let transport_failure =
            |e: TransportError, command: Option<&str>| self.failure(step, host, command, e.to_string(), e.hint());
        // Work carried out entirely from other hosts (a dead node's removal) needs no session of its own.
        let own_session = match ops.iter().all(|op| matches!(op, Op::Via { .. })) {
            true => None,
            false => Some(self.session(host).await.map_err(|e| transport_failure(e, None))?),
        };
        for op in ops {
            let (session, op) = match op {
                Op::Via { host: other, op } => (
                    self.session(other)
                        .await
                        .map_err(|e| transport_failure(e, Some(&format!("connect to {other}"))))?,
                    op.as_ref(),
                ),
                _ => match &own_session {
                    Some(own) => (own.clone(), op),
                    // Not reached: the session is opened above whenever an op needs it.
                    None => {
                        return Err(self.failure(
                            step,
                            host,
                            None,
                            "no session to this host".into(),
                            "run again".into(),
                        ));
                    }
                },
            };
            let session = &session;
            let operation =
                |what: String| (self.events)(Event::Operation { step: step.into(), host: host.into(), what });
            match op {
                Op::Upload { path, content, mode, owner, complete } => {
                    operation(format!("write {path}"));
                    let completed;
                    let content = if *complete {
                        completed = self.complete(content).map_err(|message| {
                            self.failure(step, host, Some(path), message, "run apply again: the step that makes the value (kubeadm-init on the first control plane) runs on every apply that still has nodes to join".into())
                        })?;
                        &completed
                    } else {
                        content
                    };
                    session.upload(path, content, *mode, owner).await.map_err(|e| transport_failure(e, Some(path)))?;
                }
                Op::Fetch { remote, local, mode, kubeconfig_server, keep } => {
                    operation(format!("fetch {remote} to {}", local.display()));
                    let mut content = session.download(remote).await.map_err(|e| transport_failure(e, Some(remote)))?;
                    if let Some(k) = kubeconfig_server {
                        content = crate::kubeconfig::point_at(&String::from_utf8_lossy(&content), k)
                            .map_err(|message| {
                                self.failure(step, host, Some(remote), message, "the file kubeadm wrote is not the kubeconfig kubewright expects; look at it on the host".into())
                            })?
                            .into_bytes();
                    }
                    if let Some(keep) = keep {
                        super::rotate_copies(local, *keep).map_err(|e| {
                            self.failure(
                                step,
                                host,
                                Some(remote),
                                format!("cannot keep the earlier copies of {}: {e}", local.display()),
                                "the bastion's state directory must be writable; check disk space and permissions"
                                    .into(),
                            )
                        })?;
                    }
                    super::write_file_atomically(local, &content, *mode).map_err(|e| {
                        self.failure(
                            step,
                            host,
                            Some(remote),
                            format!("cannot write {}: {e}", local.display()),
                            "the bastion's state directory must be writable; check disk space and permissions".into(),
                        )
                    })?;
                }
                Op::PinCa { remote } => {
                    operation(format!("read the cluster CA {remote}"));
                    let pem = session.download(remote).await.map_err(|e| transport_failure(e, Some(remote)))?;
                    let pin = crate::pki::ca_pin(&pem).map_err(|e| {
                        self.failure(
                            step,
                            host,
                            Some(remote),
                            format!("{remote} is not a usable CA certificate: {e}"),
                            "the first control plane's PKI is damaged; compare it with the other control planes before going on".into(),
                        )
                    })?;
                    if let Ok(mut s) = self.secrets.lock() {
                        s.ca_cert_hashes = vec![pin];
                    }
                }
                Op::VerifyCertificates { after } => {
                    operation("check the renewed certificates".into());
                    let out = session
                        .run(&crate::facts::gather::certificates_script())
                        .await
                        .map_err(|e| transport_failure(e, Some("read the certificates")))?;
                    let problems = crate::facts::gather::parse_certificates(&out.stdout)
                        .map(|certs| crate::certs::renewal_problems(&certs, *after))
                        .unwrap_or_else(|e| vec![e]);
                    if !problems.is_empty() {
                        return Err(self.failure(step, host, Some("verify the certificates"), format!("the certificates are not renewed as they should be: {}", problems.join("; ")), "look at /etc/kubernetes/pki on the host; the backup of the previous certificates is in /var/lib/kubewright/backups".into()));
                    }
                }
                Op::VerifyKubeadmConfig { expected } => {
                    operation("check the cluster's kubeadm-config".into());
                    let out = session
                        .run(&super::wait::kubeadm_config_probe())
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
                Op::Probe { description, script, timeout } => {
                    operation(format!("wait until {description}"));
                    self.probe(step, host, session, description, script, *timeout).await?;
                }
                Op::Wait { description, nodes, version, etcd, timeout } => {
                    operation(format!("wait until {description}"));
                    self.wait(step, host, session, nodes, version, *etcd, *timeout).await?;
                }
                Op::Drain { node, grace_period_s, timeout_s, skip_when_blocked } => {
                    operation(format!("cordon and drain {node}"));
                    self.drain(step, host, session, node, *grace_period_s, *timeout_s, *skip_when_blocked).await?;
                }
                // Resolved above: the inner op runs over the other host's session.
                Op::Via { .. } => {}
                Op::Run { description, script, input, limit, parts } => {
                    let what = self.redactor.redact(description);
                    if parts.is_empty() {
                        (self.events)(Event::Operation { step: step.into(), host: host.into(), what: what.clone() });
                    }
                    let mut on_line = |stream: OutputStream, line: &str| {
                        let mut line = line;
                        if stream == OutputStream::Stderr
                            && !parts.is_empty()
                            && let Some((n, started, before)) = part_marker(line)
                        {
                            if started && let Some(part) = parts.get(n) {
                                (self.events)(Event::Operation {
                                    step: step.into(),
                                    host: host.into(),
                                    what: self.redactor.redact(part),
                                });
                            }
                            if before.is_empty() {
                                return;
                            }
                            line = before;
                        }
                        (self.events)(Event::Output {
                            step: step.into(),
                            host: host.into(),
                            stream: if stream == OutputStream::Stderr { "stderr" } else { "stdout" },
                            line: self.redactor.redact(line),
                        })
                    };
                    let command = async {
                        match input {
                            Some(input) => {
                                let out = session.run_with_input(script, input).await?;
                                for line in out.stdout.lines() {
                                    on_line(OutputStream::Stdout, line);
                                }
                                for line in out.stderr.lines() {
                                    on_line(OutputStream::Stderr, line);
                                }
                                Ok(out)
                            }
                            None => session.run_streaming(script, &mut on_line).await,
                        }
                    };
                    let out = super::within_backstop(host, *limit, parts.len() as u64, command)
                        .await
                        .map_err(|e| transport_failure(e, Some(&what)))?;
                    if !out.success() {
                        let timed_out = out.code == Some(super::TIMEOUT_EXIT_CODE);
                        // The failing part, named by its marker; markers are not the command's output.
                        let mut failed_part = None;
                        let mut lines: Vec<&str> = Vec::new();
                        for line in out.stderr.lines() {
                            match part_marker(line).filter(|_| !parts.is_empty()) {
                                Some((n, started, before)) => {
                                    if !started {
                                        failed_part = parts.get(n);
                                    }
                                    if !before.is_empty() {
                                        lines.push(before);
                                    }
                                }
                                None => lines.push(line),
                            }
                        }
                        let what = failed_part.map_or(what, |p| self.redactor.redact(p));
                        let tail = lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..]
                            .iter()
                            .map(|l| self.redactor.redact(l))
                            .collect();
                        let message = match (timed_out, out.code) {
                            (true, _) => format!("timed out after {limit}"),
                            (false, Some(code)) => format!("exited with {code}"),
                            (false, None) => "killed by a signal".to_string(),
                        };
                        return Err(HostFailure {
                            host: host.into(),
                            step: step.into(),
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
                        });
                    }
                }
            }
        }
        Ok(())
    }
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
        let (script, parts) = batch(vec![
            part("first", &["echo", "one"]),
            ("second".into(), Script::new().cmd(["false"]).cmd(["echo", "not reached: errexit"])),
            part("third", &["echo", "three"]),
        ]);
        assert_eq!(parts, ["first", "second", "third"]);
        let out = run_locally(&script);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let markers: Vec<_> = stderr.lines().filter_map(part_marker).map(|(n, started, _)| (n, started)).collect();
        assert_eq!(markers, [(0, true), (1, true), (1, false)]);
    }

    #[test]
    fn a_marker_after_unterminated_output_is_still_found() {
        assert_eq!(part_marker("no newlineKUBEWRIGHT-PART-FAILED:2"), Some((2, false, "no newline")));
        assert_eq!(part_marker("ordinary line"), None);
    }
}
