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
    let mut cmd = super::Cli::command();
    clap_complete::generate(args.shell, &mut cmd, "kubewright", &mut std::io::stdout());
    Ok(ExitCode::SUCCESS)
}
