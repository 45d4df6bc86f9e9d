//! Command-line definitions (clap derive) and dispatch. Each subcommand lives in its own
//! file with its `Args` and an `exec` that loads inputs, calls the library and reports.

mod apply;
mod certs;
mod completions;
mod etcd;
mod generate;
mod inputs;
mod inventory;
mod lock;
mod plan;
mod remove_node;
mod render;
mod reset;
mod run;
mod ui;
mod upgrade;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::report::Reporter;

const EXIT_CODES: &str = "\
Exit codes:
  0  success (with `plan --detailed-exitcode`: no changes)
  1  failure: a command failed, a host could not be reached, a check did not pass
  2  invalid input: inventory, playbook, template or command line
     (with `plan --detailed-exitcode`: the plan has changes; errors then exit 1)
  130 interrupted (Ctrl-C or SIGTERM); the journal has what finished
`certs check` exits 0 ok, 1 warning, 2 critical, 3 a host could not be read.";

#[derive(Parser)]
#[command(
    name = "kubewright",
    version,
    about = "Bootstrap, renew and upgrade kubeadm Kubernetes clusters over SSH",
    long_about = "kubewright reads an inventory of hosts, renders kubeadm, containerd, sysctl and flannel \
                  configuration from templates, shows you a plan of every change, and applies it over SSH.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args)]
pub struct GlobalArgs {
    /// Output format: `text` for people, `json` for scripts and CI
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// More detail (-v, -vv)
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// When to colour text output (`NO_COLOR` set in the environment, or `TERM=dumb`, means never)
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
pub enum Command {
    /// Check an inventory, or make one from kubespray's or Vagrant's
    #[command(subcommand)]
    Inventory(inventory::InventoryCommand),
    /// Write the files kubewright would put on each host into a directory
    Render(render::Args),
    /// Show what `apply` would do, step by step and host by host
    Plan(plan::Args),
    /// Show the plan, confirm, and run it on the hosts (lock, journal, resume)
    Apply(apply::Args),
    /// Upgrade the cluster to a later Kubernetes release, node by node (checked, snapshotted, resumable)
    Upgrade(upgrade::Args),
    /// Run one command on many hosts over SSH, output grouped per host
    Run(run::Args),
    /// Check and renew the cluster's certificates
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// Take a node out of the cluster: drain, etcd member, kubeadm reset, Node object (also when it is dead)
    RemoveNode(remove_node::Args),
    /// Tear the whole cluster down (kubeadm reset on every node), behind a confirmation naming it
    Reset(reset::Args),
    /// Back up etcd (snapshot and PKI, copied to the state directory)
    #[command(subcommand)]
    Etcd(etcd::EtcdCommand),
    /// See or break the cluster lock (one run per cluster at a time)
    #[command(subcommand)]
    Lock(lock::LockCommand),
    /// Print a shell completion script
    Completions(completions::Args),
    /// Generate the manual pages (for packagers: packaging/build-deb runs it)
    // Hidden: people read the pages this writes, not this command's help.
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
}

pub fn run(cli: Cli, out: &Reporter) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Inventory(cmd) => inventory::exec(cmd, out),
        Command::Render(args) => render::exec(args, out),
        Command::Plan(args) => plan::exec(args, out),
        Command::Apply(args) => apply::exec(args, out),
        Command::Run(args) => run::exec(args, out),
        Command::Upgrade(args) => upgrade::exec(args, out),
        Command::Lock(cmd) => lock::exec(cmd, out),
        Command::Certs(cmd) => certs::exec(cmd, out),
        Command::Etcd(cmd) => etcd::exec(cmd, out),
        Command::RemoveNode(args) => remove_node::exec(args, out),
        Command::Reset(args) => reset::exec(args, out),
        Command::Completions(args) => completions::exec(args),
        Command::Generate(cmd) => generate::exec(cmd),
    }
}
