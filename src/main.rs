//! The `kubewright` binary: parse the command line, run the command, report, exit.

mod cli;
mod report;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let reporter = report::Reporter::new(&cli.global);
    match cli::run(cli, &reporter) {
        Ok(code) => code,
        Err(err) => reporter.fatal(&err),
    }
}
