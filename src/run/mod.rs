//! A run: what every job that changes hosts does, in one order, for every [`Goal`].
//!
//! 1. Resolve the run's environment once ([`RunEnv`]: state directory, clock, run id).
//! 2. A goal that usually finds nothing to do (the daily renewal) first looks without the
//!    lock: facts, plan; nothing to do ends the run there.
//! 3. Take the cluster lock on every control plane, and keep it fresh (a heartbeat).
//! 4. Under the lock: read the journal, the facts (everything the goal needs, the package
//!    repository's releases included), and [`plan`](crate::plan::plan) once, purely.
//! 5. Show the plan, confirm (a bounded question), open the journal, execute the plan as it
//!    is, and release the lock only when no command of the run can still be running.
//!
//! This is an I/O edge: the decisions are the planner's; the CLI only asks and shows (through
//! [`Ui`]).

pub mod env;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

pub use env::{RunEnv, RunOptions, state_dir_for};

use crate::exec::engine::{Engine, RunSecrets, StopSignal};
use crate::exec::facts::FactsFailure;
use crate::exec::journal::{self, Journal, JournalError};
use crate::exec::lock::{self, Holder, LockError};
use crate::facts::ClusterFacts;
use crate::goal::{Confirmation, Goal};
use crate::inventory::Inventory;
use crate::outcome::{Event, RunReport};
use crate::plan::{Bastion, NotExecutable, Plan, PlanError, PlanInput, Resume};
use crate::redact::Redactor;
use crate::render::Templates;
use crate::ssh::{Connect, Connector, Target, TransportError};

/// How long an unfinished run is resumed; an older one is started over: what its journal says
/// was done may no longer be so (a renewal done months ago is due again).
pub const RESUME_WITHIN_S: u64 = 7 * 86_400;

/// What the run shows and asks: the CLI's side of a run.
pub trait Ui: Sync {
    /// Progress as it happens.
    fn event(&self, event: Event);
    /// A line for people (what the run decided on its own: a resume, a lock taken over).
    fn note(&self, text: &str);
    /// A line for `-v` only (how each host was reached, and from which settings).
    fn detail(&self, _text: &str) {}
    /// The plan about to run, before the question.
    fn show_plan(&self, plan: &Plan);
    /// Asked once the plan is shown, under the lock: Ok(true) to go on. `cancelled` turns true
    /// when the run is interrupted while asking (Ctrl-C). A question nobody answers must give
    /// up after a bound of its own: the lock is held meanwhile.
    fn confirm(&self, plan: &Plan, confirmation: &Confirmation, cancelled: &dyn Fn() -> bool)
    -> Result<bool, RunError>;
}

/// What goes wrong in a run before or around its hosts' work (a host's own failure is in the
/// [`RunReport`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// What the user gave cannot work (exit 2).
    #[error("{message}")]
    Input { message: String, help: String },
    /// The run could not go on (exit 1).
    #[error("{message}")]
    Failed { message: String, help: String },
    #[error("cannot read the facts of {} host(s); nothing was planned:\n{}", .0.len(), .0.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("\n"))]
    Facts(Vec<FactsFailure>),
    #[error(transparent)]
    Lock(Box<LockError>),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    NotExecutable(#[from] NotExecutable),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Ctrl-C or SIGTERM before anything changed (at the question).
    #[error("interrupted before anything changed")]
    Interrupted,
}

impl From<LockError> for RunError {
    fn from(e: LockError) -> Self {
        RunError::Lock(Box::new(e))
    }
}

impl RunError {
    pub fn hint(&self) -> String {
        match self {
            RunError::Input { help, .. } | RunError::Failed { help, .. } => help.clone(),
            RunError::Facts(failures) => {
                let mut hints: Vec<String> = failures.iter().map(|f| f.hint.clone()).collect();
                hints.dedup();
                format!("{}; or plan with --offline to assume fresh hosts", hints.join("; "))
            }
            RunError::Lock(e) => e.hint(),
            RunError::Plan(e) => e.hint(),
            RunError::NotExecutable(e) => e.hint(),
            RunError::Journal(e) => e.hint(),
            RunError::Transport(e) => e.hint(),
            RunError::Interrupted => "nothing was changed; run the same command again when you are ready".into(),
        }
    }

    /// Bad input (exit 2) rather than a failure while acting (exit 1).
    pub fn is_input(&self) -> bool {
        match self {
            RunError::Input { .. } => true,
            RunError::Plan(e) => e.is_input(),
            RunError::NotExecutable(e) => e.is_input(),
            _ => false,
        }
    }
}

/// What a run is asked to do.
pub struct Request<'a> {
    pub inventory: &'a Inventory,
    pub goal: Goal,
    pub templates: &'a Templates,
    /// Ignore the journal of an unfinished earlier run and start from the first step.
    pub restart: bool,
}

/// How a run ended.
pub struct Outcome {
    /// The plan that ran (or was found to have nothing to do).
    pub plan: Plan,
    /// What happened on the hosts; None when nothing was to be done.
    pub report: Option<RunReport>,
    /// The journal's path.
    pub journal: std::path::PathBuf,
    /// An upgrade's result (text, JSON): each node's release before and after.
    pub result: Option<(String, serde_json::Value)>,
}

/// What was read before planning: the facts and the bastion's state.
struct Look {
    facts: ClusterFacts,
    bastion: Bastion,
}

/// What the goal names must be in the inventory: checked before any host is contacted.
fn check_goal(req: &Request<'_>) -> Result<(), RunError> {
    req.goal
        .check(req.inventory)
        .map_err(|source| RunError::Plan(PlanError::UnknownHost { step: req.goal.kind().into(), source }))
}

/// The facts and the plan, without the lock: `kubewright plan`, `--dry-run`. `detail` gets
/// the lines for `-v`.
pub fn preview(req: &Request<'_>, env: &RunEnv, detail: &dyn Fn(&str)) -> Result<Plan, RunError> {
    check_goal(req)?;
    let connector = env.connector()?;
    let runtime = env::runtime()?;
    let redactor = Redactor::default();
    let stop = StopSignal::default();
    let quiet = |_: Event| {};
    let engine = engine(req.inventory, env, &connector, &redactor, &quiet, &stop);
    let look = runtime.block_on(look(&engine, req, env));
    runtime.block_on(engine.close());
    for (_, line) in connector.take_settings() {
        detail(&line);
    }
    let look = look?;
    plan(req, &look, None)
}

/// The plan against hosts assumed fresh (`plan --offline`): no host is contacted.
pub fn preview_offline(req: &Request<'_>, env: &RunEnv) -> Result<Plan, RunError> {
    let facts = ClusterFacts::assume_fresh(req.inventory.hosts.iter().map(|h| h.name.as_str()));
    let bastion = bastion(env)?;
    plan(req, &Look { facts, bastion }, None)
}

fn plan(req: &Request<'_>, look: &Look, resume: Option<&Resume>) -> Result<Plan, RunError> {
    Ok(crate::plan::plan(&PlanInput {
        inventory: req.inventory,
        goal: &req.goal,
        facts: &look.facts,
        templates: req.templates,
        bastion: &look.bastion,
        resume,
    })?)
}

fn engine<'a>(
    inv: &Inventory,
    env: &'a RunEnv,
    connector: &'a Connector,
    redactor: &'a Redactor,
    events: &'a (dyn Fn(Event) + Sync),
    stop: &'a StopSignal,
) -> Engine<'a, Connector> {
    let targets: BTreeMap<String, Target> =
        inv.hosts.iter().map(|h| (h.name.clone(), Target::from_inventory(inv, h, env.accept_new_host_keys))).collect();
    Engine::new(connector, targets, env.concurrency, &env.run_id, redactor, events, stop)
}

/// For `-v`: how the hosts connected to so far were reached, from which settings.
fn show_settings<C: Connect>(engine: &Engine<'_, C>, ui: &dyn Ui) {
    for (_, line) in engine.connection_settings() {
        ui.detail(&line);
    }
}

/// What the bastion holds for this cluster: the CAs of `certs init-ca`.
fn bastion(env: &RunEnv) -> Result<Bastion, RunError> {
    let pki = env.state_dir.join("pki");
    let mut cluster_cas = BTreeMap::new();
    for name in crate::render::CLUSTER_CA_FILES {
        match std::fs::read_to_string(pki.join(name)) {
            Ok(content) => {
                cluster_cas.insert(name.to_string(), content);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(RunError::Input {
                    message: format!("cannot read {}: {e}", pki.join(name).display()),
                    help: "the state directory's pki/ holds the CAs `certs init-ca` made: make its files readable by this user; no host was contacted".into(),
                });
            }
        }
    }
    Ok(Bastion { state_dir: env.state_dir.display().to_string(), cluster_cas })
}

/// Everything the goal's plan needs: every host's facts (a host the goal allows to be down is
/// planned as unreachable), the bastion's state, and for an upgrade what the package repository
/// offers.
async fn look<C: Connect>(engine: &Engine<'_, C>, req: &Request<'_>, env: &RunEnv) -> Result<Look, RunError> {
    let inv = req.inventory;
    let bastion = bastion(env)?;
    let files = crate::render::host_files(inv, req.templates, &bastion.cluster_cas).map_err(PlanError::from)?;
    let paths = crate::render::managed_paths(&files);
    let (mut facts, failures) = engine.gather_facts(&paths).await;
    let (tolerated, fatal): (Vec<_>, Vec<_>) =
        failures.into_iter().partition(|f| req.goal.may_be_unreachable() == Some(f.host.as_str()));
    if !fatal.is_empty() {
        return Err(RunError::Facts(fatal));
    }
    for f in tolerated {
        facts.hosts.insert(f.host.clone(), crate::facts::HostFacts::fresh());
        facts.unreachable.insert(f.host, f.message);
    }
    facts.bastion_kubeconfig = env.state_dir.join("admin.conf").is_file();
    if let Some(minors) = crate::plan::releases_to_ask(inv, &req.goal, &facts) {
        let first = &inv.first_control_plane().name;
        let session = engine.session(first).await?;
        let releases =
            crate::exec::facts::read_releases(session.as_ref(), first, &inv.cluster.packages.mirror, &minors)
                .await
                .map_err(|f| RunError::Failed { message: f.message, help: f.hint })?;
        facts.releases = Some(releases);
    }
    Ok(Look { facts, bastion })
}

/// The values of the goal's `secretEnv` variables, from the bastion's environment; every one
/// is checked before any host is touched.
fn secret_env(goal: &Goal) -> Result<BTreeMap<String, String>, RunError> {
    let mut values = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for name in goal.secret_env() {
        match std::env::var(&name) {
            Ok(v) if v.contains('\n') => {
                return Err(RunError::Input {
                    message: format!("the secret ${name} holds a line break"),
                    help: "secrets reach commands one per line; give a single-line value".into(),
                });
            }
            Ok(v) if Redactor::too_short(&v) => {
                return Err(RunError::Input {
                    message: format!("the secret ${name} is shorter than 4 characters"),
                    help: "so short a value cannot be redacted from output safely; use a real secret".into(),
                });
            }
            Ok(v) => {
                values.insert(name, v);
            }
            Err(_) => {
                missing.insert(name);
            }
        }
    }
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(String::as_str).collect();
        return Err(RunError::Input {
            message: format!("the playbook's secretEnv needs ${} set", list.join(", $")),
            help: "export them in the environment that runs kubewright (e.g. from your secret store)".into(),
        });
    }
    Ok(values)
}

/// The bootstrap token and certificate key of one run: a token `[a-z0-9]{6}.[a-z0-9]{16}`
/// (kubeadm's format) and a 32-byte AES key in hex, both from the kernel's random source, kept
/// in memory and redacted from everything shown.
fn join_secrets() -> Result<(String, String), RunError> {
    use std::io::Read;
    let unavailable = |e: std::io::Error| RunError::Input {
        message: format!("cannot read random bytes from /dev/urandom for the bootstrap token: {e}"),
        help: "kubewright needs the kernel's random source on the bastion".into(),
    };
    let mut random = std::fs::File::open("/dev/urandom").map_err(unavailable)?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut token = String::with_capacity(23);
    let mut byte = [0u8; 1];
    while token.len() < 23 {
        if token.len() == 6 {
            token.push('.');
            continue;
        }
        random.read_exact(&mut byte).map_err(unavailable)?;
        // 252 = 7 x 36: bytes above it would favour the first letters.
        if byte[0] < 252 {
            token.push(char::from(ALPHABET[usize::from(byte[0] % 36)]));
        }
    }
    let mut key = [0u8; 32];
    random.read_exact(&mut key).map_err(unavailable)?;
    Ok((token, crate::pki::hex_lower(&key)))
}

/// Run the request's goal: look (when the goal does), lock, facts, plan, confirm, execute.
pub fn apply(req: &Request<'_>, env: &RunEnv, ui: &dyn Ui) -> Result<Outcome, RunError> {
    check_goal(req)?;
    let secret_env = secret_env(&req.goal)?;
    let (bootstrap_token, certificate_key) = join_secrets()?;
    let redactor =
        Redactor::new(secret_env.values().cloned().chain([bootstrap_token.clone(), certificate_key.clone()]));
    let connector = env.connector()?;
    let runtime = env::runtime()?;
    let stop = std::sync::Arc::new(StopSignal::default());
    let on_event = |e: Event| ui.event(e);
    let engine = engine(req.inventory, env, &connector, &redactor, &on_event, &stop).with_secrets(RunSecrets {
        bootstrap_token,
        certificate_key,
        env: secret_env,
    });
    let journal_path = journal::path_in(&env.state_dir);
    let (said, heard) = tokio::sync::mpsc::unbounded_channel();
    let result = runtime.block_on(async {
        watch_signals(stop.clone(), said);
        tokio::select! {
            result = run(req, env, ui, &engine, &stop, &redactor, &journal_path) => result,
            never = say_signals(heard, ui) => match never {},
        }
    });
    runtime.block_on(engine.close());
    result
}

async fn run<C: Connect>(
    req: &Request<'_>,
    env: &RunEnv,
    ui: &dyn Ui,
    engine: &Engine<'_, C>,
    stop: &StopSignal,
    redactor: &Redactor,
    journal_path: &std::path::Path,
) -> Result<Outcome, RunError> {
    // The daily renewal: most days nothing is due, and such a run neither takes the lock nor is
    // refused by another run's.
    if req.goal.looks_before_locking() {
        let first = look(engine, req, env).await;
        show_settings(engine, ui);
        let plan = plan(req, &first?, None)?;
        if plan.nothing_to_do() {
            return nothing_to_do(req, env, ui, engine, redactor, plan, journal_path).await;
        }
    }
    let holder = holder(req, env, redactor);
    let control_planes = lock_sessions(engine, req).await?;
    for dead in lock::dead_holders(&control_planes).await {
        nothing_left_by(engine, req, &dead).await?;
    }
    let taken_over = lock::acquire(&control_planes, &holder).await?;
    for (host, dead) in taken_over {
        ui.note(&format!(
            "the cluster lock on {host} was left by {dead}, which is no longer running on this machine: taken over"
        ));
    }
    let result = under_lock(req, env, ui, engine, stop, journal_path, &control_planes, &holder).await;
    // The lock is released only when no command of this run can still be running anywhere.
    let unknown = match stop.was_aborted() {
        true => engine.stop_remote_commands().await,
        false => engine
            .unknown_hosts()
            .into_iter()
            .map(|h| (h, "its connection failed while a command ran".to_string()))
            .collect(),
    };
    if unknown.is_empty() {
        release(&control_planes, &holder, ui).await;
    } else {
        let hosts: Vec<String> = unknown.iter().map(|(h, why)| format!("{h} ({why})")).collect();
        ui.note(&format!(
            "warning: the cluster lock is kept: a command of this run may still be running on {}; check there (`ps -ef`); the same command run again takes the lock over once this process is gone and none of its commands runs there, or `kubewright lock break` removes it",
            hosts.join(", ")
        ));
    }
    result
}

/// Nothing to do: an unfinished earlier run of this playbook has nothing left either, and is
/// closed, but only under the lock (a live run's journal is never written by another run).
async fn nothing_to_do<C: Connect>(
    req: &Request<'_>,
    env: &RunEnv,
    ui: &dyn Ui,
    engine: &Engine<'_, C>,
    redactor: &Redactor,
    plan: Plan,
    journal_path: &std::path::Path,
) -> Result<Outcome, RunError> {
    if let Some(u) = journal::unfinished(journal_path)?.filter(|u| u.playbook == plan.playbook) {
        let holder = holder(req, env, redactor);
        let control_planes = lock_sessions(engine, req).await?;
        match lock::acquire(&control_planes, &holder).await {
            Ok(_) => {
                let closed = close_unfinished(journal_path, env, req, &plan, &u);
                release(&control_planes, &holder, ui).await;
                closed?;
                ui.note(&format!("the unfinished run of `{}` has nothing left to do: closed", u.playbook));
            }
            // Another run works on the cluster: it owns the journal now.
            Err(LockError::Held { .. }) => {}
            Err(e) => {
                ui.note(&format!("warning: the unfinished run of `{}` was left open: {e} ({})", u.playbook, e.hint()))
            }
        }
    }
    Ok(Outcome { plan, report: None, journal: journal_path.to_path_buf(), result: None })
}

/// A lock left by a run of this machine whose process is gone is taken over only once none of
/// that run's commands still runs on any host: a run that lost a host mid-command keeps its
/// lock and exits, and its kubeadm may still be at work there; starting another beside it is
/// what the lock is for. Hosts that cannot be asked refuse the takeover too.
async fn nothing_left_by<C: Connect>(engine: &Engine<'_, C>, req: &Request<'_>, dead: &Holder) -> Result<(), RunError> {
    let hosts: Vec<String> = req
        .inventory
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .filter(|h| req.goal.may_be_unreachable() != Some(h.as_str()))
        .collect();
    let left = engine.commands_left_by(&dead.run_id, hosts).await;
    if left.is_empty() {
        return Ok(());
    }
    let each: Vec<String> = left
        .iter()
        .map(|(host, what)| match what {
            Ok(processes) => format!("{host}: {}", processes.join("; ")),
            Err(why) => format!("{host}: cannot tell ({why})"),
        })
        .collect();
    Err(RunError::Failed {
        message: format!(
            "the cluster lock was left by {dead}, whose process is gone, but its commands may still run: {}; nothing was changed",
            each.join(" | ")
        ),
        help: "let them finish (or stop them on the host), then run the same command again: it takes the lock over once none is left; `kubewright lock status` shows the lock".into(),
    })
}

/// Close an unfinished earlier run of `plan`'s playbook that has nothing left to do.
fn close_unfinished(
    journal_path: &std::path::Path,
    env: &RunEnv,
    req: &Request<'_>,
    plan: &Plan,
    unfinished: &journal::Unfinished,
) -> Result<(), JournalError> {
    let mut closing = Journal::start(journal_path, &env.run_id, &plan.playbook, &req.goal.command())?;
    closing.abandon(unfinished)?;
    closing.finish()
}

/// Release this run's lock everywhere; say where that failed. A control plane where another
/// run holds it now is not this run's to release, and is not a failure of the release.
async fn release<S: crate::ssh::Transport>(control_planes: &[std::sync::Arc<S>], holder: &Holder, ui: &dyn Ui) {
    let failed: Vec<String> = lock::release(control_planes, holder)
        .await
        .into_iter()
        .filter_map(|(host, r)| match r {
            Ok(()) | Err(LockError::Lost { .. }) => None,
            Err(e) => Some(format!("{host}: {e}")),
        })
        .collect();
    if !failed.is_empty() {
        ui.note(&format!("warning: the cluster lock could not be released on {}; the next run from this machine takes it over (this process will be gone), or `kubewright lock break` removes it", failed.join("; ")));
    }
}

/// Who this run is, as the lock records it.
fn holder(req: &Request<'_>, env: &RunEnv, redactor: &Redactor) -> Holder {
    let command = redactor.redact(&req.goal.command());
    Holder::this_process(&env.run_id, &command, env.now)
}

/// A session to every control plane the lock is taken on: all of them, but the one the goal
/// allows to be down when it is (a dead control plane being removed cannot hold it).
async fn lock_sessions<C: Connect>(
    engine: &Engine<'_, C>,
    req: &Request<'_>,
) -> Result<Vec<std::sync::Arc<C::Session>>, RunError> {
    let mut sessions = Vec::new();
    for cp in req.inventory.control_planes() {
        match engine.session(&cp.name).await {
            Ok(s) => sessions.push(s),
            Err(_) if req.goal.may_be_unreachable() == Some(cp.name.as_str()) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(sessions)
}

/// Everything between taking the lock and releasing it.
#[allow(clippy::too_many_arguments)]
async fn under_lock<C: Connect>(
    req: &Request<'_>,
    env: &RunEnv,
    ui: &dyn Ui,
    engine: &Engine<'_, C>,
    stop: &StopSignal,
    journal_path: &std::path::Path,
    control_planes: &[std::sync::Arc<C::Session>],
    holder: &Holder,
) -> Result<Outcome, RunError> {
    // What an unfinished earlier run left, read under the lock: no other run writes it now.
    let earlier = journal::unfinished(journal_path)?.filter(|u| !u.done.is_empty());
    let stale = earlier
        .as_ref()
        .and_then(|u| crate::exec::parse_rfc3339(&u.started_at))
        .is_some_and(|started| env.now.saturating_sub(started) > RESUME_WITHIN_S);
    if let (Some(u), true, false) = (&earlier, stale, req.restart) {
        ui.note(&format!(
            "the unfinished run of `{}` started {} is more than a week old: starting over, from what the hosts are now",
            u.playbook, u.started_at
        ));
    }
    let restart = req.restart || stale;
    let look = look(engine, req, env).await;
    show_settings(engine, ui);
    let look = look?;
    let first_plan = plan(req, &look, None)?;
    let mut resume = None;
    if let Some(u) = &earlier
        && !restart
    {
        if u.playbook != first_plan.playbook {
            let command =
                if u.command.is_empty() { format!("the `{}` run", u.playbook) } else { format!("`{}`", u.command) };
            return Err(RunError::Input {
                message: format!(
                    "an earlier run of playbook `{}` did not finish (journal {})",
                    u.playbook,
                    journal_path.display()
                ),
                help: format!("run {command} again to finish it, or pass --restart to abandon it"),
            });
        }
        resume = Some(Resume { done: u.done.clone() });
    }
    let plan = match &resume {
        Some(r) => plan(req, &look, Some(r))?,
        None => first_plan,
    };
    ui.show_plan(&plan);
    plan.check_executable()?;
    if plan.nothing_to_do() {
        if let Some(u) = journal::unfinished(journal_path)?.filter(|u| u.playbook == plan.playbook) {
            close_unfinished(journal_path, env, req, &plan, &u)?;
            ui.note(&format!("the unfinished run of `{}` has nothing left to do: closed", u.playbook));
        }
        return Ok(Outcome { plan, report: None, journal: journal_path.to_path_buf(), result: None });
    }
    if let Some(u) = &earlier
        && resume.is_some()
    {
        let skipped = plan
            .steps
            .iter()
            .flat_map(|s| s.hosts.iter().map(move |h| (s, h)))
            .filter(|(s, h)| {
                // Done by the earlier run and skipped now (not planned again on the facts' word).
                u.done.get(&(s.id.clone(), h.host.clone())) == Some(&s.key)
                    && matches!(h.decision, crate::plan::Decision::Skip { .. })
            })
            .count();
        ui.note(&format!(
            "resuming the unfinished run of `{}`: {skipped} host steps already done are skipped (--restart to start over)",
            u.playbook
        ));
    }
    let confirmation = req.goal.confirmation(req.inventory);
    if confirmation != Confirmation::None {
        // The heartbeat runs with the plan; the question may outlast a stale heartbeat, so it
        // starts from a fresh one and the lock is checked again once it is answered.
        still_holding(control_planes, holder).await?;
        if !ui.confirm(&plan, &confirmation, &|| stop.requested())? {
            if stop.requested() {
                return Err(RunError::Interrupted);
            }
            return Err(RunError::Input {
                message: "not confirmed; nothing was changed".into(),
                help: "answer the question to apply the plan, or pass --yes (--confirm NAME) after reviewing it".into(),
            });
        }
    }
    still_holding(control_planes, holder).await?;
    let mut journal = Journal::start(journal_path, &env.run_id, &plan.playbook, &req.goal.command())?;
    if let (Some(u), true) = (&earlier, restart) {
        journal.abandon(u)?;
        if req.restart {
            ui.note("--restart: the unfinished earlier run is abandoned; starting from the first step");
        }
    }
    let journal = Mutex::new(journal);
    let heartbeat = heartbeat(control_planes, holder, stop);
    let report = tokio::select! {
        report = engine.execute(&plan, &journal) => report,
        never = heartbeat => match never {},
    };
    if report.completed() {
        journal.lock().map_err(|_| JournalError::poisoned(journal_path))?.finish()?;
    }
    let result = match &plan.upgrade {
        Some(_) => {
            let first = &req.inventory.first_control_plane().name;
            let before = look.facts.cluster.as_ref().map(|c| c.nodes.clone()).unwrap_or_default();
            let after = engine.node_list(first).await.unwrap_or_default();
            let hosts: Vec<String> = req.inventory.hosts.iter().map(|h| h.name.clone()).collect();
            crate::outcome::upgrade_result(&plan, &report, &hosts, &before, &after)
        }
        None => None,
    };
    Ok(Outcome { plan, report: Some(report), journal: journal_path.to_path_buf(), result })
}

/// Refresh the lock now; an error unless it is still provably this run's (the facts and the
/// question can take minutes, during which another bastion may break a lock it saw as stale).
async fn still_holding<S: crate::ssh::Transport>(
    control_planes: &[std::sync::Arc<S>],
    holder: &Holder,
) -> Result<(), RunError> {
    let failures: Vec<(String, LockError)> =
        lock::refresh(control_planes, holder).await.into_iter().filter_map(|(h, r)| r.err().map(|e| (h, e))).collect();
    if !lock::in_doubt_after(&failures, control_planes.len()) {
        return Ok(());
    }
    let each: Vec<String> = failures.iter().map(|(_, e)| e.to_string()).collect();
    Err(RunError::Failed {
        message: format!(
            "the cluster lock is no longer provably this run's ({}); nothing was changed",
            each.join("; ")
        ),
        help: "see `kubewright lock status`: if another run holds it, let it finish; then run the same command again"
            .into(),
    })
}

/// Keep the lock fresh while the run works: every [`lock::HEARTBEAT_INTERVAL`], stamped with
/// each control plane's own clock. A run whose lock was taken or broken, or that cannot refresh
/// it on a majority of the control planes, no longer provably holds the cluster: it starts no
/// new work, and says why. Never returns.
async fn heartbeat<S: crate::ssh::Transport>(
    control_planes: &[std::sync::Arc<S>],
    holder: &Holder,
    stop: &StopSignal,
) -> std::convert::Infallible {
    lock::keep_alive(control_planes, holder, lock::HEARTBEAT_INTERVAL, |failures| {
        stop.request_because(lock::in_doubt(failures))
    })
    .await
}

/// Ctrl-C and SIGTERM ask the run to stop (the first: no new work; the second: running
/// commands are stopped on their hosts). A task of its own, so that a signal also reaches a run
/// that is waiting for an answer at the question; each one is said through `said`.
fn watch_signals(stop: std::sync::Arc<StopSignal>, said: tokio::sync::mpsc::UnboundedSender<&'static str>) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            let term_recv = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = term_recv => {}
            }
            // The run may have stopped itself already (the lock in doubt): the first signal
            // still only stops new work.
            let first = !stop.signalled();
            stop.request();
            let _ = said.send(if first {
                "stopping: no new work starts; running commands finish (Ctrl-C again to stop them)"
            } else {
                "stopping the running commands on their hosts"
            });
        }
    });
}

/// Say what the signal watcher saw; never returns.
async fn say_signals(
    mut said: tokio::sync::mpsc::UnboundedReceiver<&'static str>,
    ui: &dyn Ui,
) -> std::convert::Infallible {
    while let Some(text) = said.recv().await {
        ui.note(text);
    }
    std::future::pending().await
}
