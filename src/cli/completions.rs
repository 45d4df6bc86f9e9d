//! `kubewright completions SHELL`.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright completions bash > /etc/bash_completion.d/kubewright
  kubewright completions zsh > \"${fpath[1]}/_kubewright\"")]
pub struct Args {
    /// The shell to generate completions for
    shell: Shell,
}

pub fn exec(args: Args) -> anyhow::Result<ExitCode> {
    let mut cmd = offered(super::Cli::command());
    clap_complete::generate(args.shell, &mut cmd, "kubewright", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}

/// The command line as completions offer it: what `--help` shows. clap_complete completes
/// hidden subcommands too (clap-rs/clap#1335), and `generate` is for packaging. clap cannot
/// remove a subcommand, so the root is put together again, unbuilt, from `root`'s: its abouts,
/// version and settings, its options and its visible subcommands; building it then adds the
/// help and version flags and the `help` subcommand as it does for `root`.
fn offered(root: clap::Command) -> clap::Command {
    let mut offered = clap::Command::new("kubewright")
        .propagate_version(root.is_propagate_version_set())
        .subcommand_required(root.is_subcommand_required_set())
        .arg_required_else_help(root.is_arg_required_else_help_set())
        .disable_help_subcommand(root.is_disable_help_subcommand_set())
        .args(root.get_arguments().cloned())
        .subcommands(root.get_subcommands().filter(|s| !s.is_hide_set()).cloned());
    if let Some(about) = root.get_about() {
        offered = offered.about(about.clone());
    }
    // A long about is what makes `-h` say "(see more with '--help')".
    if let Some(about) = root.get_long_about() {
        offered = offered.long_about(about.clone());
    }
    if root.get_version().is_some() {
        offered = offered.version(env!("CARGO_PKG_VERSION"));
    }
    offered
}
