//! The command line's side of a run: shows the plan and the progress, asks the question, and
//! prints how the run ended. Every subcommand that runs a goal goes through [`run_goal`]; what
//! happens in between is the library's (`kubewright::run`).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::inputs::ConnectArgs;
use crate::report::progress::Progress;
use crate::report::{Reporter, UserError};
use kubewright::goal::{Confirmation, Goal};
use kubewright::inventory::Inventory;
use kubewright::plan::{Plan, render_text};
use kubewright::render::Templates;
use kubewright::run::{self, Request, RunEnv, RunError, RunOptions, Ui};

/// How long a question waits for its answer: the cluster lock is held meanwhile, and a run
/// nobody answers (a terminal left open) must not keep the timer's renewal out all night.
pub const QUESTION_TIMEOUT: Duration = Duration::from_secs(10 * 60);

/// What exits a run that Ctrl-C or SIGTERM stopped (128 + SIGINT, as shells do).
const EXIT_INTERRUPTED: u8 = 130;

/// How the command line wants a goal run.
pub struct GoalArgs<'a> {
    pub connect: &'a ConnectArgs,
    pub concurrency: usize,
    /// Change the hosts without asking.
    pub yes: bool,
    /// The cluster's name, for goals that need it as confirmation (`--confirm`).
    pub confirm: Option<&'a str>,
    /// Ignore the journal of an unfinished earlier run.
    pub restart: bool,
    /// Show the plan and stop: nothing changed, no lock taken.
    pub dry_run: bool,
    /// With `dry_run`: exit 2 when the plan has work (`plan --detailed-exitcode`).
    pub detailed_exitcode: bool,
    /// With `dry_run`: plan without contacting any host (every host assumed fresh).
    pub offline: bool,
    /// With `dry_run`: show every file's content and diff.
    pub diffs: bool,
}

impl<'a> GoalArgs<'a> {
    pub fn new(connect: &'a ConnectArgs) -> Self {
        GoalArgs {
            connect,
            concurrency: kubewright::exec::engine::DEFAULT_CONCURRENCY,
            yes: false,
            confirm: None,
            restart: false,
            dry_run: false,
            detailed_exitcode: false,
            offline: false,
            diffs: false,
        }
    }
}

/// Plan `goal` and, unless it is a dry run, run it: the plan shown, the question asked, the
/// progress and the result printed.
pub fn run_goal(
    inv: &Inventory,
    templates: &Templates,
    goal: Goal,
    args: &GoalArgs<'_>,
    out: &Reporter,
) -> anyhow::Result<ExitCode> {
    let name = &inv.cluster.name;
    if let (Some(given), Confirmation::ClusterName { .. }) = (args.confirm, goal.confirmation(inv))
        && given != name
    {
        return Err(UserError::new(
            format!("--confirm {given} does not name this cluster ({name})"),
            "nothing was changed; give the cluster's name (cluster.name in the inventory)",
        )
        .into());
    }
    let options = RunOptions {
        transport: args.connect.transport(inv),
        accept_new_host_keys: args.connect.accept_new_host_keys,
        concurrency: args.concurrency,
    };
    let env = RunEnv::resolve(name, options)?;
    let confirmation = goal.confirmation(inv);
    let req = Request { inventory: inv, goal, templates, restart: args.restart };
    // Nobody can answer the question: refused before any host is touched (and the lock
    // taken); a run that would have asked `yes` shows its plan first, as the question would.
    let answered = args.yes || args.confirm.is_some();
    if !args.dry_run && !answered && !std::io::stdin().is_terminal() {
        match confirmation {
            Confirmation::None => {}
            Confirmation::ClusterName { doing, .. } => {
                return Err(UserError::new(
                    format!("{doing} needs its name as confirmation"),
                    format!("nothing was changed; pass --confirm {name}"),
                )
                .into());
            }
            Confirmation::Yes { .. } => {
                let plan = run::preview(&req, &env, &|line| out.detail(line))?;
                if plan.nothing_to_do() {
                    out.result(&format!("{}\n", nothing_to_do_text(&plan)), &kubewright::outcome::RunReport::default());
                    return Ok(ExitCode::SUCCESS);
                }
                out.block(&render_text(&plan, false));
                plan.check_executable()?;
                return Err(UserError::new(
                    "this run changes hosts and there is no terminal to confirm on",
                    "review the plan printed above (or `kubewright plan`), then run again with --yes",
                )
                .into());
            }
        }
    }
    if args.dry_run {
        let plan = if args.offline {
            run::preview_offline(&req, &env)?
        } else {
            run::preview(&req, &env, &|line| out.detail(line))?
        };
        out.result(&render_text(&plan, args.diffs), &plan);
        return Ok(plan_exit(&plan, args.detailed_exitcode));
    }
    let progress = Progress::new(out.json(), out.interactive(), out.color(), inv.hosts.iter().map(|h| h.name.as_str()));
    let ui = CliUi { out, progress, yes: args.yes, confirm: args.confirm };
    let outcome = run::apply(&req, &env, &ui);
    ui.progress.finish();
    let outcome = outcome?;
    let journal = outcome.journal.display().to_string();
    let Some(report) = &outcome.report else {
        out.result(&format!("{}\n", nothing_to_do_text(&outcome.plan)), &kubewright::outcome::RunReport::default());
        return Ok(ExitCode::SUCCESS);
    };
    let mut text = kubewright::outcome::summary_text(report, &journal);
    let incomplete = !report.left_out().is_empty();
    match &outcome.result {
        Some((result, json)) => {
            text.push_str(result);
            out.result(&text, json);
        }
        None => out.result(&text, report),
    }
    Ok(if report.interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else if report.completed() && !incomplete {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What a run with nothing to do says.
fn nothing_to_do_text(plan: &Plan) -> String {
    match plan.upgrade.as_ref().map(|u| u.hops.is_empty()) {
        Some(true) => plan.notes.last().cloned().unwrap_or_default(),
        _ => "nothing to do: every host is already as the plan wants it".into(),
    }
}

/// A plan's exit code: 1 when it cannot run (refused, hosts blocked), 2 with
/// `--detailed-exitcode` when it would change something (checks and waits alone do not
/// count), else 0.
pub fn plan_exit(plan: &Plan, detailed_exitcode: bool) -> ExitCode {
    if !plan.refusals.is_empty() || plan.summary.blocked > 0 {
        ExitCode::FAILURE
    } else if detailed_exitcode && plan.summary.has_changes() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

struct CliUi<'a> {
    out: &'a Reporter,
    progress: Progress,
    yes: bool,
    confirm: Option<&'a str>,
}

impl Ui for CliUi<'_> {
    fn event(&self, event: kubewright::outcome::Event) {
        self.progress.event(event)
    }

    fn note(&self, text: &str) {
        self.progress.note(text)
    }

    fn detail(&self, text: &str) {
        // Printed straight to stderr: the live lines step aside, or it would land among them.
        self.progress.suspend(|| self.out.detail(text))
    }

    fn show_plan(&self, plan: &Plan) {
        // Text on stderr (stdout is the result); under -o json the plan is an event of its own.
        match self.out.json() {
            true => self.progress.plan(plan),
            false => self.out.block(&render_text(plan, false)),
        }
    }

    fn confirm(
        &self,
        plan: &Plan,
        confirmation: &Confirmation,
        cancelled: &dyn Fn() -> bool,
    ) -> Result<bool, RunError> {
        let _ = plan;
        match confirmation {
            Confirmation::None => Ok(true),
            Confirmation::Yes { .. } if self.yes => Ok(true),
            Confirmation::Yes { question } => {
                if !std::io::stdin().is_terminal() {
                    return Err(RunError::Input {
                        message: "this run changes hosts and there is no terminal to confirm on".into(),
                        help: "review the plan printed above (or `kubewright plan`), then run again with --yes".into(),
                    });
                }
                Ok(ask(question, cancelled)? == "yes")
            }
            Confirmation::ClusterName { doing, question } => {
                let name = &plan.cluster;
                if self.confirm.is_some() {
                    // Checked against the cluster's name before anything was contacted.
                    return Ok(true);
                }
                if !std::io::stdin().is_terminal() {
                    return Err(RunError::Input {
                        message: format!("{doing} needs its name as confirmation"),
                        help: format!("nothing was changed; pass --confirm {name}"),
                    });
                }
                Ok(ask(question, cancelled)? == *name)
            }
        }
    }
}

/// `question` on stderr, the answer from stdin (trimmed), waited for at most
/// [`QUESTION_TIMEOUT`]; Ctrl-C meanwhile ends the wait.
fn ask(question: &str, cancelled: &dyn Fn() -> bool) -> Result<String, RunError> {
    use std::io::Write;
    let mut stderr = std::io::stderr().lock();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
    drop(stderr);
    let (tx, rx) = std::sync::mpsc::channel();
    // A thread of its own: a read from a terminal cannot be given up on, the wait for it can.
    std::thread::spawn(move || {
        let mut answer = String::new();
        let _ = tx.send(std::io::stdin().read_line(&mut answer).map(|_| answer));
    });
    let asked = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Ok(answer)) => return Ok(answer.trim().to_string()),
            Ok(Err(e)) => {
                return Err(RunError::Input {
                    message: format!("cannot read the answer from standard input: {e}"),
                    help: "answer on a terminal, or give the answer as a flag (--yes, --confirm NAME); nothing was changed".into(),
                });
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(RunError::Input {
                    message: "standard input closed before an answer came".into(),
                    help: "answer on a terminal, or give the answer as a flag (--yes, --confirm NAME); nothing was changed".into(),
                });
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if cancelled() {
                    return Err(RunError::Interrupted);
                }
                if asked.elapsed() >= QUESTION_TIMEOUT {
                    return Err(RunError::Input {
                        message: format!(
                            "no answer within {} minutes; the cluster lock was released and nothing was changed",
                            QUESTION_TIMEOUT.as_secs() / 60
                        ),
                        help: "run the same command again when you can answer, or pass --yes after reviewing the plan (`kubewright plan`)".into(),
                    });
                }
            }
        }
    }
}
