//! The `kubewright` binary: parse the command line, run the command, report, exit.

mod cli;
mod report;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    let reporter = report::Reporter::new(&cli.global);
    if cli.global.verbose >= 2 {
        // -vv: the library's tracing logs (connections, timings) on stderr.
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
    match cli::run(cli, &reporter) {
        Ok(code) => code,
        Err(err) => reporter.fatal(&err),
    }
}
