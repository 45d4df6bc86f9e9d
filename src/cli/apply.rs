//! `kubewright apply`: show the plan, confirm, take the cluster lock, run the plan's steps on
//! the hosts through the executor, journal each finished step, and resume an interrupted run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;

use super::inputs::{
    ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_playbook, load_templates, state_dir,
};
use crate::report::progress::Progress;
use crate::report::{Failure, Reporter, UserError};
use kubewright::exec::engine::{Engine, HostStatus, RunReport, StopSignal};
use kubewright::exec::journal::{self, Journal};
use kubewright::exec::lock::{self, Holder};
use kubewright::exec::lower::{NotExecutable, lower};
use kubewright::plan::{Decision, PlanInput, plan, render_text};
use kubewright::redact::Redactor;

use kubewright::ssh::Target;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright apply -i inv.yaml --playbook restart-kubelet.yaml
  kubewright apply -i inv.yaml --playbook maintenance.yaml --yes -o json
  kubewright apply -i inv.yaml --playbook maintenance.yaml --restart --yes

apply prints the plan and asks before changing anything; --yes answers for you, and without a
terminal apply changes nothing unless --yes is given. It holds the cluster lock while it runs.
Each host's finished step is recorded in the journal (in the cluster's state directory): after
a failure, Ctrl-C or a lost connection, the next apply of the same playbook continues with what
is left and says so; --restart starts from the beginning. Ctrl-C once: no new work starts and
running commands finish; twice: running commands are abandoned. Exit codes: 0 done, 1 a host
failed, 2 bad input, 130 interrupted.

The built-in `install` playbook takes bare hosts to a Ready cluster and, run again, changes
only what differs from the inventory (new nodes join, changed files are rewritten). Playbooks
of `shell` steps run your own commands (see docs/playbooks.md).")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    templates: TemplatesArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// A playbook file instead of the built-in one
    #[arg(long, value_name = "FILE")]
    playbook: Option<PathBuf>,
    /// The built-in playbook to apply
    #[arg(long, value_name = "NAME", default_value = "install", conflicts_with = "playbook")]
    builtin: String,
    /// Change the hosts without asking (required when there is no terminal)
    #[arg(long)]
    yes: bool,
    /// Ignore the journal of an unfinished earlier run and start from the first step
    #[arg(long)]
    restart: bool,
    /// How many hosts at once within a parallel step
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
}

/// How long an unfinished run is resumed; an older one is started over.
const RESUME_WITHIN_S: u64 = 7 * 86_400;

/// What apply exits with when Ctrl-C or SIGTERM stopped it (128 + SIGINT, as shells do).
const EXIT_INTERRUPTED: u8 = 130;

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let templates = load_templates(&args.templates)?;
    let playbook = load_playbook(args.playbook.as_deref(), &args.builtin)?;
    let options = RunOptions {
        connect: args.connect,
        yes: args.yes,
        restart: args.restart,
        concurrency: args.concurrency,
        preview: None,
    };
    if args.playbook.is_none() && args.builtin == "install" {
        // The install, or the upgrade when the inventory's kubernetesVersion went up.
        let files = super::plan::host_files(&inv, &templates)?;
        let upgrade = super::upgrade::UpgradePlanner::new(&inv, &templates, files.clone());
        let install = PlaybookPlanner {
            inv: &inv,
            playbook: &playbook,
            files,
            secret_env: BTreeMap::new(),
            may_be_unreachable: None,
        };
        let planner = InstallOrUpgrade { install, upgrade, upgrading: std::cell::Cell::new(false) };
        return run(&inv, &planner, &options, out);
    }
    run_playbook(&inv, &templates, &playbook, &options, out)
}

/// `apply`'s built-in install, which becomes the upgrade (to the inventory's version) when the
/// cluster runs an older release than the inventory names.
struct InstallOrUpgrade<'a> {
    install: PlaybookPlanner<'a>,
    upgrade: super::upgrade::UpgradePlanner<'a>,
    upgrading: std::cell::Cell<bool>,
}

impl Planner for InstallOrUpgrade<'_> {
    fn name(&self) -> &str {
        if self.upgrading.get() { self.upgrade.name() } else { self.install.name() }
    }

    fn files(&self) -> &BTreeMap<String, Vec<kubewright::render::RemoteFile>> {
        self.install.files()
    }

    fn secret_env(&self) -> &BTreeMap<String, String> {
        self.install.secret_env()
    }

    fn plan(&self, cx: &RunCx<'_, '_>) -> anyhow::Result<Planned> {
        let Some(why) = super::upgrade::upgrade_due(cx.facts, self.install.inv) else {
            return self.install.plan(cx);
        };
        self.upgrading.set(true);
        let mut planned = self.upgrade.plan(cx)?;
        planned.text.insert_str(
            0,
            &format!(
                "{}: this apply is the upgrade (`kubewright upgrade -i INV` does the same, with its options).\n",
                capitalized(&why)
            ),
        );
        Ok(planned)
    }

    fn report(&self, cx: &RunCx<'_, '_>, run: &RunReport, hosts: &BTreeMap<String, HostTiming>) -> Option<Finished> {
        if self.upgrading.get() { self.upgrade.report(cx, run, hosts) } else { None }
    }
}

/// How a playbook run goes, beyond the inventory and the playbook.
#[derive(Clone)]
pub struct RunOptions {
    pub connect: ConnectArgs,
    /// Change the hosts without asking.
    pub yes: bool,
    /// Ignore the journal of an unfinished earlier run.
    pub restart: bool,
    pub concurrency: usize,
    /// Show the plan (on stdout) and stop: `kubewright plan` of a run only `run` can plan.
    pub preview: Option<Preview>,
}

/// How a preview ends.
#[derive(Clone, Copy)]
pub struct Preview {
    /// Exit 2 when the plan has work (`plan --detailed-exitcode`).
    pub detailed_exitcode: bool,
}

/// The command that continues an unfinished run of `playbook`.
fn finishing_command(playbook: &str) -> String {
    match playbook {
        "install" => "run `kubewright apply` again".into(),
        "upgrade" => "run `kubewright upgrade` again".into(),
        "certs-renew" => "run `kubewright certs renew` again".into(),
        "etcd-snapshot" => "run `kubewright etcd snapshot` again".into(),
        "etcd-restore" => "run `kubewright etcd restore FILE` again with the same snapshot".into(),
        "remove-node" => "run `kubewright remove-node NAME` again".into(),
        "reset" => "run `kubewright reset` again".into(),
        other => format!("run `kubewright apply --playbook FILE` again with playbook `{other}`"),
    }
}

/// The confirmation a run that destroys or rolls back the cluster needs: the cluster's name,
/// given (`--confirm`) or typed at a terminal after the plan was shown.
pub struct Confirmation<'a> {
    /// `--confirm`'s value.
    pub given: Option<&'a str>,
    /// What needs it ("tearing down cluster prod").
    pub doing: String,
    /// Asked at a terminal.
    pub question: String,
}

/// [`run_playbook`] once `confirmation` names the cluster; nothing is changed otherwise.
pub fn run_playbook_confirmed(
    inv: &kubewright::inventory::Inventory,
    templates: &kubewright::render::Templates,
    playbook: &kubewright::playbook::Playbook,
    options: RunOptions,
    confirmation: &Confirmation<'_>,
    out: &Reporter,
) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let name = &inv.cluster.name;
    match confirmation.given {
        Some(given) if given != name => {
            return Err(UserError::new(
                format!("--confirm {given} does not name this cluster ({name})"),
                "nothing was changed; give the cluster's name (cluster.name in the inventory)",
            )
            .into());
        }
        Some(_) => {}
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(UserError::new(
                    format!("{} needs its name as confirmation", confirmation.doing),
                    format!("nothing was changed; pass --confirm {name}"),
                )
                .into());
            }
            // The plan first, then the question.
            let preview = RunOptions { preview: Some(Preview { detailed_exitcode: false }), ..options.clone() };
            let code = run_playbook(inv, templates, playbook, &preview, out)?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            if ask(&confirmation.question)? != *name {
                return Err(UserError::new(
                    "not confirmed; nothing was changed",
                    format!("type the cluster's name ({name}) at the question, or pass --confirm {name}"),
                )
                .into());
            }
        }
    }
    run_playbook(inv, templates, playbook, &RunOptions { yes: true, ..options }, out)
}

/// Plan `playbook` against the hosts' facts, show it, confirm, take the lock and run it,
/// journaling every finished host step (what `apply` and `certs renew` do).
pub fn run_playbook(
    inv: &kubewright::inventory::Inventory,
    templates: &kubewright::render::Templates,
    playbook: &kubewright::playbook::Playbook,
    args: &RunOptions,
    out: &Reporter,
) -> anyhow::Result<ExitCode> {
    // Secrets come from the bastion's environment; every one is checked before any host is touched.
    let mut secret_env = BTreeMap::new();
    let mut missing = BTreeSet::new();
    for name in playbook.steps.iter().flat_map(|s| &s.secret_env) {
        match std::env::var(name) {
            Ok(v) if v.contains('\n') => {
                return Err(UserError::new(
                    format!("the secret ${name} holds a line break"),
                    "secrets reach commands one per line; give a single-line value",
                )
                .into());
            }
            Ok(v) if Redactor::too_short(&v) => {
                return Err(UserError::new(
                    format!("the secret ${name} is shorter than 4 characters"),
                    "so short a value cannot be redacted from output safely; use a real secret",
                )
                .into());
            }
            Ok(v) => {
                secret_env.insert(name.clone(), v);
            }
            Err(_) => {
                missing.insert(name.clone());
            }
        }
    }
    if !missing.is_empty() {
        let list: Vec<&str> = missing.iter().map(String::as_str).collect();
        return Err(UserError::new(
            format!("the playbook's secretEnv needs ${} set", list.join(", $")),
            "export them in the environment that runs kubewright (e.g. from your secret store)",
        )
        .into());
    }
    let files = super::plan::host_files(inv, templates)?;
    let planner = PlaybookPlanner { inv, playbook, files, secret_env, may_be_unreachable: None };
    run(inv, &planner, args, out)
}

/// What a run plans: the journal's name for it, the plan from the facts, and the result it
/// reports when done.
pub trait Planner {
    /// The playbook's name (journal and lock).
    fn name(&self) -> &str;
    /// The files kubewright manages on each host (read with the facts).
    fn files(&self) -> &BTreeMap<String, Vec<kubewright::render::RemoteFile>>;
    /// The values of the playbook's `secretEnv` variables.
    fn secret_env(&self) -> &BTreeMap<String, String>;
    /// The plan against the facts just gathered (`cx` can ask the hosts more).
    fn plan(&self, cx: &RunCx<'_, '_>) -> anyhow::Result<Planned>;
    /// A host whose facts may fail to be read (it is planned as unreachable instead).
    fn may_be_unreachable(&self) -> Option<&str> {
        None
    }
    /// The result printed when the run ends; None: the per-host summary.
    fn report(&self, _cx: &RunCx<'_, '_>, _run: &RunReport, _hosts: &BTreeMap<String, HostTiming>) -> Option<Finished> {
        None
    }
}

/// What a planner sees: the facts and the run's sessions.
pub struct RunCx<'r, 'e> {
    pub facts: &'r kubewright::facts::ClusterFacts,
    pub state: &'r std::path::Path,
    pub engine: &'r Engine<'e>,
    pub runtime: &'r tokio::runtime::Runtime,
}

/// A plan as shown and as run.
pub struct Planned {
    /// Shown on stderr before confirming (text output only).
    pub text: String,
    /// The job, or why the plan cannot run (shown after the plan's text).
    pub job: anyhow::Result<kubewright::exec::engine::Job>,
    /// Every host skips: the run ends without the lock.
    pub nothing_to_do: bool,
    /// Said instead of the usual line when there is nothing to do.
    pub nothing_to_do_text: Option<String>,
}

/// A planner's own result: text for people, JSON for scripts.
pub struct Finished {
    pub text: String,
    pub json: serde_json::Value,
    /// Hosts were left out (the run went on without them): exit 1 although nothing failed.
    pub incomplete: bool,
}

/// What a run did on one host, from its events.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct HostTiming {
    /// Seconds of the host steps that ran (not skipped).
    pub seconds: f64,
    pub drains: u32,
}

/// A playbook's plan, lowered.
pub(super) struct PlaybookPlanner<'a> {
    pub inv: &'a kubewright::inventory::Inventory,
    pub playbook: &'a kubewright::playbook::Playbook,
    pub files: BTreeMap<String, Vec<kubewright::render::RemoteFile>>,
    pub secret_env: BTreeMap<String, String>,
    /// See [`Planner::may_be_unreachable`].
    pub may_be_unreachable: Option<String>,
}

impl Planner for PlaybookPlanner<'_> {
    fn name(&self) -> &str {
        &self.playbook.name
    }

    fn files(&self) -> &BTreeMap<String, Vec<kubewright::render::RemoteFile>> {
        &self.files
    }

    fn secret_env(&self) -> &BTreeMap<String, String> {
        &self.secret_env
    }

    fn may_be_unreachable(&self) -> Option<&str> {
        self.may_be_unreachable.as_deref()
    }

    fn plan(&self, cx: &RunCx<'_, '_>) -> anyhow::Result<Planned> {
        let state_text = cx.state.display().to_string();
        let plan = plan(&PlanInput {
            inventory: self.inv,
            playbook: self.playbook,
            facts: cx.facts,
            files: &self.files,
            state_dir: &state_text,
        })?;
        let job = lower_for_apply(&plan, self.playbook, &self.files, &self.secret_env);
        let nothing_to_do =
            plan.steps.iter().flat_map(|s| &s.hosts).all(|h| matches!(h.decision, Decision::Skip { .. }));
        Ok(Planned { text: render_text(&plan, false), job, nothing_to_do, nothing_to_do_text: None })
    }
}

/// `lower`, its refusals worded for a person: a failed preflight check is the hosts' state
/// (exit 1), an action this version cannot run is a limit of the input (exit 2). Either way
/// nothing has changed.
pub fn lower_for_apply(
    plan: &kubewright::plan::Plan,
    playbook: &kubewright::playbook::Playbook,
    files: &BTreeMap<String, Vec<kubewright::render::RemoteFile>>,
    secret_env: &BTreeMap<String, String>,
) -> anyhow::Result<kubewright::exec::engine::Job> {
    lower(plan, playbook, files, secret_env).map_err(|e| -> anyhow::Error {
        match &e {
            NotExecutable::Blocked { .. } => {
                Failure::new(e.to_string(), "fix these on the hosts (the plan marks them with x), then run the same command again")
                    .into()
            }
            NotExecutable::Action { .. } => UserError::new(e.to_string(), "`kubewright plan` shows what it would do; the playbook or templates ask for something this version cannot run")
                .into(),
        }
    })
}

/// Gather the facts, plan with `planner`, show the plan, confirm, take the lock and run it,
/// journaling every finished host step.
pub fn run(
    inv: &kubewright::inventory::Inventory,
    planner: &dyn Planner,
    args: &RunOptions,
    out: &Reporter,
) -> anyhow::Result<ExitCode> {
    // This run's join credentials: made here, kept in memory, sent to hosts only inside the
    // files kubeadm reads (over stdin, removed after use), redacted from everything shown.
    let join = JoinSecrets::generate().map_err(|e| {
        UserError::new(
            format!("cannot read random bytes from /dev/urandom for the bootstrap token: {e}"),
            "kubewright needs the kernel's random source on the bastion",
        )
    })?;
    let redactor = Redactor::new(
        planner.secret_env().values().cloned().chain([join.bootstrap_token.clone(), join.certificate_key.clone()]),
    );
    let files = planner.files();

    // One session per host for the whole run: facts first, then the steps.
    let targets: BTreeMap<String, Target> = inv
        .hosts
        .iter()
        .map(|h| (h.name.clone(), Target::from_inventory(inv, h, args.connect.accept_new_host_keys)))
        .collect();
    let progress = Progress::new(out.json(), out.interactive());
    let connector = args.connect.connector(inv)?;
    let stop = StopSignal::default();
    let timings: Mutex<BTreeMap<String, HostTiming>> = Mutex::new(BTreeMap::new());
    let on_event = |e: kubewright::exec::engine::Event| {
        record_timing(&timings, &e);
        progress.event(e)
    };
    let engine = Engine::new(&connector, targets, args.concurrency, &redactor, &on_event, &stop)
        .with_join_secrets(join.bootstrap_token, join.certificate_key);
    let runtime = super::inputs::runtime()?;
    // What is on the hosts now, so that the plan shown (and run) is against it.
    let paths = super::plan::managed_paths(files);
    let (mut facts, failures) = runtime.block_on(engine.gather_facts_partial(&paths));
    // A host the planner allows to be down (the node `remove-node` takes out) is planned as
    // unreachable; any other failure stops the run before anything changes.
    let (tolerated, fatal): (Vec<_>, Vec<_>) =
        failures.into_iter().partition(|f| planner.may_be_unreachable() == Some(f.host.as_str()));
    if !fatal.is_empty() {
        runtime.block_on(engine.close());
        return Err(super::plan::facts_error(fatal));
    }
    for f in tolerated {
        facts.hosts.insert(f.host.clone(), kubewright::facts::HostFacts::fresh());
        facts.unreachable.insert(f.host, f.message);
    }
    let state = state_dir(&inv.cluster.name);
    facts.bastion_kubeconfig = super::plan::bastion_has_kubeconfig(&state);
    let cx = RunCx { facts: &facts, state: &state, engine: &engine, runtime: &runtime };
    let planned = match planner.plan(&cx) {
        Ok(p) => p,
        Err(e) => {
            runtime.block_on(engine.close());
            return Err(e);
        }
    };
    // Show the plan, then confirm.
    if !out.json() && args.preview.is_none() {
        eprint_block(&redactor.redact(&planned.text));
    }
    if let Some(preview) = args.preview {
        runtime.block_on(engine.close());
        let text = redactor.redact(&planned.text);
        out.result(&text, &serde_json::json!({ "plan_text": text, "nothing_to_do": planned.nothing_to_do }));
        planned.job?;
        return Ok(if preview.detailed_exitcode && !planned.nothing_to_do {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        });
    }
    let job = match &planned.job {
        Ok(job) => job,
        Err(_) => {
            runtime.block_on(engine.close());
            return planned.job.map(|_| ExitCode::FAILURE);
        }
    };
    // Nothing to change and nothing to check (a renewal when no certificate is close): done,
    // without asking and without the lock, so that a daily job costs one read of the facts.
    if planned.nothing_to_do {
        runtime.block_on(engine.close());
        // An unfinished earlier run of this playbook has nothing left to do either: closed, so
        // that a later run does not skip hosts on the word of an old journal.
        let journal_path = journal::path_in(&state);
        if let Some(u) = journal::unfinished(&journal_path)?.filter(|u| u.playbook == planner.name()) {
            let mut closing = Journal::start(&journal_path, &run_id(), planner.name())?;
            closing.abandon(&u)?;
            closing.finish()?;
            progress.note(&format!("the unfinished run of `{}` has nothing left to do: closed", u.playbook));
        }
        let report =
            RunReport { steps: Vec::new(), steps_not_run: Vec::new(), failures: Vec::new(), interrupted: false };
        let text = planned
            .nothing_to_do_text
            .clone()
            .unwrap_or_else(|| "nothing to do: every host is already as the plan wants it".into());
        out.result(&format!("{text}\n"), &report);
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(UserError::new(
                "this run changes hosts and there is no terminal to confirm on",
                "review the plan printed above (or `kubewright plan`), then run again with --yes",
            )
            .into());
        }
        if !confirm(&format!("Apply this plan to cluster {}? Type yes: ", inv.cluster.name))? {
            return Err(UserError::new(
                "not confirmed; nothing was changed",
                "type `yes` at the question to apply the plan, or pass --yes after reviewing it",
            )
            .into());
        }
    }

    // The journal: resume an unfinished run of this playbook, unless --restart.
    let journal_path = journal::path_in(&state);
    // A run that stopped before finishing any host step (e.g. refused by the lock) left
    // nothing to resume.
    let earlier = journal::unfinished(&journal_path)?.filter(|u| !u.done.is_empty());
    // A resume trusts what the journal says was done; after a week the hosts may have moved
    // on (a renewal done months ago is due again), so an older run is started over.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let stale = earlier
        .as_ref()
        .and_then(|u| kubewright::exec::parse_rfc3339(&u.started_at))
        .is_some_and(|started| now.saturating_sub(started) > RESUME_WITHIN_S);
    if let (Some(u), true, false) = (&earlier, stale, args.restart) {
        progress.note(&format!(
            "the unfinished run of `{}` started {} is more than a week old: starting over, from what the hosts are now",
            u.playbook, u.started_at
        ));
    }
    let restart = args.restart || stale;
    let mut done = BTreeSet::new();
    if let Some(u) = &earlier
        && !restart
    {
        if u.playbook != planner.name() {
            return Err(UserError::new(
                format!(
                    "an earlier run of playbook `{}` did not finish (journal {})",
                    u.playbook,
                    journal_path.display()
                ),
                format!("{} to finish it, or pass --restart to abandon it", finishing_command(&u.playbook)),
            )
            .into());
        }
        done = u.done.clone();
        progress.note(&format!(
            "resuming the unfinished run of `{}`: {} host steps already done are skipped (--restart to start over)",
            u.playbook,
            done.len()
        ));
    }
    let run_id = run_id();
    let mut journal = Journal::start(&journal_path, &run_id, planner.name())?;
    if let (Some(u), true) = (&earlier, restart) {
        journal.abandon(u)?;
        if args.restart {
            progress.note("--restart: the unfinished earlier run is abandoned; starting from the first step");
        }
    }

    // The lock on every control plane that answered (a dead one being removed cannot hold it).
    let control_planes: Vec<String> =
        inv.control_planes().filter(|h| !facts.unreachable.contains_key(&h.name)).map(|h| h.name.clone()).collect();
    let holder = Holder::this_process(
        &run_id,
        &redactor.redact(&format!("kubewright apply ({})", planner.name())),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    );

    let journal = Mutex::new(journal);
    let outcome = runtime.block_on(async {
        let signals = watch_signals(&stop, &progress);
        tokio::pin!(signals);
        let work = async {
            // The lock, on every control plane, before anything changes.
            let mut sessions = Vec::new();
            for cp in &control_planes {
                sessions.push(engine.session(cp).await.map_err(|e| Failure::new(e.to_string(), e.hint()))?);
            }
            let cps: Vec<&kubewright::ssh::Session> = sessions.iter().map(|s| s.as_ref()).collect();
            let taken_over = lock::acquire(&cps, &holder).await.map_err(|e| Failure::new(e.to_string(), e.hint()))?;
            for (host, dead) in taken_over {
                progress.note(&format!("the cluster lock on {host} was left by {dead}, which is no longer running on this machine: taken over"));
            }
            // The heartbeat, while the run works: a lost lock stops new work.
            let report = tokio::select! {
                report = engine.execute(job, &done, &journal) => report,
                never = lock::keep_alive(&cps, &holder, lock::HEARTBEAT_INTERVAL, |failures| {
                    if !stop.requested() {
                        progress.note(&lock::in_doubt(failures));
                        stop.request();
                    }
                }) => match never {},
            };
            // Released whatever happened, so that the next run (or the resume) can start.
            let released = lock::release(&cps, &holder).await;
            anyhow::Ok((report, released))
        };
        tokio::select! {
            result = work => result,
            () = &mut signals => unreachable_signals(),
        }
    });
    progress.finish();
    let finished = match &outcome {
        Ok((report, _)) => {
            let timings = timings.lock().map(|t| t.clone()).unwrap_or_default();
            let cx = RunCx { facts: &facts, state: &state, engine: &engine, runtime: &runtime };
            planner.report(&cx, report, &timings)
        }
        Err(_) => None,
    };
    runtime.block_on(engine.close());
    let (report, released) = outcome?;
    if report.completed() {
        journal.lock().map_err(|_| anyhow::anyhow!("the journal lock was poisoned"))?.finish()?;
    }
    for (host, e) in released.iter().filter_map(|(h, r)| r.as_ref().err().map(|e| (h, e))) {
        progress
            .note(&format!("warning: the cluster lock could not be released on {host}: {e}; the next run from this machine takes it over (this process will be gone), or `kubewright lock break` removes it"));
    }
    let mut incomplete = false;
    match finished {
        Some(f) => {
            let mut text = summary_text(&report, &journal_path);
            text.push_str(&f.text);
            out.result(&text, &f.json);
            incomplete = f.incomplete;
        }
        None => out.result(&summary_text(&report, &journal_path), &report),
    }
    Ok(if report.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if report.completed() && !incomplete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// A host's time and drains, from the engine's events (a worker's drain runs on a control
/// plane but is the worker's).
fn record_timing(timings: &Mutex<BTreeMap<String, HostTiming>>, event: &kubewright::exec::engine::Event) {
    use kubewright::exec::engine::Event;
    let Ok(mut t) = timings.lock() else { return };
    match event {
        Event::HostFinished { host, seconds, .. } => t.entry(host.clone()).or_default().seconds += seconds,
        Event::Operation { host, what, .. } if what.starts_with("cordon and drain ") => {
            t.entry(host.clone()).or_default().drains += 1;
        }
        _ => {}
    }
}

/// Ctrl-C and SIGTERM ask the run to stop; never returns.
async fn watch_signals(stop: &StopSignal, progress: &Progress) {
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
        let first = !stop.requested();
        stop.request();
        progress.note(if first {
            "stopping: no new work starts; running commands finish (Ctrl-C again to abandon them)"
        } else {
            "abandoning running commands"
        });
    }
}

fn unreachable_signals() -> anyhow::Result<(RunReport, lock::PerHost<()>)> {
    Err(anyhow::anyhow!("the signal watcher ended"))
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{:x}-{}", nanos, std::process::id())
}

fn eprint_block(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

fn confirm(question: &str) -> anyhow::Result<bool> {
    Ok(ask(question)? == "yes")
}

/// `question` on stderr, the answer from stdin (trimmed).
pub fn ask(question: &str) -> anyhow::Result<String> {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| {
        UserError::new(
            format!("cannot read the answer from standard input: {e}"),
            "answer on a terminal, or give the answer as a flag (--yes, --confirm NAME); nothing was changed",
        )
    })?;
    Ok(answer.trim().to_string())
}

/// The per-host summary: what failed (host, step, command, exit code, stderr tail), what did
/// not run, and what to do next.
fn summary_text(report: &RunReport, journal: &std::path::Path) -> String {
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
                    text.push_str(&format!(
                        "left out: {} in step `{}`: {}\n  help: {}\n",
                        failure.host, failure.step, failure.message, failure.hint
                    ));
                }
            }
        }
    }
    for f in &report.failures {
        text.push_str(&format!("error: {} failed in step `{}`: {}\n", f.host, f.step, f.message));
        if let Some(c) = &f.command {
            text.push_str(&format!("  command: {c}\n"));
        }
        if let Some(code) = f.exit_code {
            text.push_str(&format!("  exit code: {code}\n"));
        }
        if !f.stderr_tail.is_empty() {
            text.push_str("  stderr (last lines):\n");
            for l in &f.stderr_tail {
                text.push_str(&format!("    {l}\n"));
            }
        }
        text.push_str(&format!("  help: {}\n", f.hint));
    }
    if !report.steps_not_run.is_empty() {
        text.push_str(&format!("steps not run: {}\n", report.steps_not_run.join(", ")));
    }
    text.push_str(&format!(
        "{done} host steps done, {skipped} skipped, {} failed, {not_started} not started\n",
        report.failures.len()
    ));
    if report.interrupted {
        text.push_str(&format!(
            "interrupted; the journal ({}) has what finished: the same command again continues\n",
            journal.display()
        ));
    } else if !report.completed() {
        text.push_str(&format!("the same command again continues from the journal ({})\n", journal.display()));
    }
    text
}

/// The bootstrap token and certificate key of one run.
struct JoinSecrets {
    bootstrap_token: String,
    certificate_key: String,
}

impl JoinSecrets {
    /// A token `[a-z0-9]{6}.[a-z0-9]{16}` (kubeadm's format) and a 32-byte AES key in hex, both
    /// from the kernel's random source.
    fn generate() -> std::io::Result<Self> {
        use std::io::Read;
        let mut random = std::fs::File::open("/dev/urandom")?;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut token = String::with_capacity(23);
        let mut byte = [0u8; 1];
        while token.len() < 23 {
            if token.len() == 6 {
                token.push('.');
                continue;
            }
            random.read_exact(&mut byte)?;
            // 252 = 7 x 36: bytes above it would favour the first letters.
            if byte[0] < 252 {
                token.push(char::from(ALPHABET[usize::from(byte[0] % 36)]));
            }
        }
        let mut key = [0u8; 32];
        random.read_exact(&mut key)?;
        let certificate_key = kubewright::pki::hex_lower(&key);
        Ok(JoinSecrets { bootstrap_token: token, certificate_key })
    }
}
