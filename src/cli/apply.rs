//! `kubewright apply`: the inventory's cluster converged (the built-in install, which becomes
//! the upgrade when the inventory names a newer release), or a playbook run.

use std::path::PathBuf;
use std::process::ExitCode;

use super::inputs::{ConnectArgs, InventoryArg, TemplatesArg, load_inventory, load_playbook, load_templates};
use super::ui::{GoalArgs, run_goal};
use crate::report::Reporter;
use kubewright::goal::Goal;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright apply -i inv.yaml --playbook restart-kubelet.yaml
  kubewright apply -i inv.yaml --playbook maintenance.yaml --yes -o json
  kubewright apply -i inv.yaml --playbook maintenance.yaml --restart --yes

apply takes the cluster lock, reads the hosts' facts, prints the plan and asks before changing
anything; --yes answers for you, and without a terminal apply changes nothing unless --yes is
given. A question not answered within 10 minutes gives up (and releases the lock). Each host's
finished step is recorded in the journal (in the cluster's state directory): after a failure,
Ctrl-C or a lost connection, the next apply of the same playbook continues with what is left
and says so; --restart starts from the beginning. Ctrl-C once: no new work starts and running
commands finish; twice: running commands are stopped on their hosts. Exit codes: 0 done, 1 a
host failed, 2 bad input, 130 interrupted.

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
    #[arg(long, default_value_t = kubewright::exec::engine::DEFAULT_CONCURRENCY)]
    concurrency: usize,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let templates = load_templates(&args.templates)?;
    let goal = match &args.playbook {
        Some(file) => Goal::Playbook { playbook: load_playbook(Some(file), "")? },
        None => Goal::builtin(&args.builtin, &inv)?,
    };
    let run = GoalArgs {
        concurrency: args.concurrency,
        yes: args.yes,
        restart: args.restart,
        ..GoalArgs::new(&args.connect)
    };
    run_goal(&inv, &templates, goal, &run, out)
}
