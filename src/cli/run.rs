//! `kubewright run`: one command on many hosts; hosts with identical results are shown once
//! under their folded names (like `clush -b`), or each on its own with `--no-group`.

use std::process::ExitCode;

use kubewright::duration::Duration;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::{Reporter, UserError};
use kubewright::exec::{TIMEOUT_EXIT_CODE, for_each_host, run_in_order, time_limited};
use kubewright::playbook::HostSelector;
use kubewright::script::Script;
use kubewright::ssh::{OutputStream, Target, Transport};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright run -i inv.yaml -- systemctl is-active kubelet
  kubewright run -i inv.yaml --hosts worker --shell 'df -h / | tail -1'
  kubewright run -i inv.yaml --hosts cp1,cp2 -o json -- kubeadm version -o short
  kubewright run -i inv.yaml --shell 'apt-get update' --shell 'apt-get -y upgrade'
  kubewright run -i inv.yaml --hosts cp1 --stream -- kubeadm upgrade apply -y v1.31.4

The words after `--` are one command, each word passed as one argument (quoted for the remote
shell). `--shell` runs a shell snippet instead; given several times, the snippets run in order
over the same connection and a host stops at its first failing one. `--stream` prints lines
as they arrive (`host: line`; with `-o json` one object per line, then the result) and ends
with each host's status instead of its output. Hosts whose output and status are identical are
shown once, under their names folded (`== cp[1-3], worker[01-17] (exit 0) ==`); `--no-group`
shows every host on its own (JSON output is always per host). Commands run as root
through `sudo -n` when the user who logs in (the inventory's, else ssh_config's, else root) is
not root, unless the inventory's `become` says otherwise (`-v` shows which, per host). Exit
code 1 when any host failed or exited non-zero.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    /// Which hosts: all, control-plane, worker, control-plane[0], or names separated by commas
    #[arg(long, default_value = "all")]
    hosts: String,
    /// How many hosts at once
    #[arg(long, default_value_t = kubewright::exec::engine::DEFAULT_CONCURRENCY)]
    concurrency: usize,
    #[command(flatten)]
    connect: ConnectArgs,
    /// Stop each command after this long (e.g. 90s, 5m): the host's `timeout` sends TERM, then
    /// KILL 10 s later, and the host counts as failed
    #[arg(long, value_name = "DURATION")]
    timeout: Option<Duration>,
    /// Print each line of output as it arrives, prefixed with the host (for long commands)
    #[arg(long)]
    stream: bool,
    /// Show every host's result on its own instead of grouping hosts with identical results
    #[arg(long)]
    no_group: bool,
    /// A shell snippet to run instead of a command (repeat to run several in order)
    #[arg(long, conflicts_with = "command")]
    shell: Vec<String>,
    /// The command and its arguments
    #[arg(last = true)]
    command: Vec<String>,
}

#[derive(serde::Serialize)]
struct HostResult {
    host: String,
    /// Of the last command run.
    exit_code: Option<i32>,
    /// How many of the commands ran (all of them unless one failed).
    commands_run: usize,
    /// The last command was stopped by `--timeout` (`timeout` exits 124).
    timed_out: bool,
    stdout: String,
    stderr: String,
    error: Option<String>,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    if args.timeout.is_some_and(|t| t.seconds == 0) {
        return Err(UserError::new(
            "`--timeout 0s` would stop every command at once",
            "give a duration like 90s or 5m, or leave --timeout out to wait for as long as commands take",
        )
        .into());
    }
    let limited = |words: Vec<&str>| time_limited(words, args.timeout);
    let scripts: Vec<Script> = match (args.shell.is_empty(), args.command.is_empty()) {
        (false, _) => args.shell.iter().map(|snippet| limited(vec!["sh", "-c", snippet.as_str()])).collect(),
        (true, false) => vec![limited(args.command.iter().map(String::as_str).collect())],
        (true, true) => {
            return Err(
                UserError::new("no command given", "put the command after `--`, or use --shell 'SNIPPET'").into()
            );
        }
    };
    let total = scripts.len();
    let targets: Vec<(String, Target)> = HostSelector::from_arg(&args.hosts)
        .resolve(&inv)
        .map_err(|e| UserError::new(e.to_string(), e.hint()))?
        .into_iter()
        .map(|h| (h.name.clone(), Target::from_inventory(&inv, h, args.connect.accept_new_host_keys)))
        .collect();
    if targets.is_empty() {
        return Err(UserError::new(
            format!("`--hosts {}` selects no host", args.hosts),
            "the inventory has no host in that group: give `all`, `control-plane`, `worker` or host names separated by commas",
        ).into());
    }
    let connector = args.connect.connector(&inv)?;
    let runtime = super::inputs::runtime()?;
    let outcomes = runtime.block_on(for_each_host(targets, args.concurrency, |target| {
        let (scripts, connector, stream) = (&scripts, &connector, args.stream.then_some(out));
        async move {
            let t = connector.connect(target).await?;
            let host = t.target().name.clone();
            let mut print = |from, line: &str| {
                if let Some(out) = stream {
                    out.live_line(&host, from == OutputStream::Stderr, line)
                }
            };
            let result = run_in_order(&t, scripts, &mut print, args.timeout).await;
            t.close().await;
            result
        }
    }));
    for (_, line) in connector.take_settings() {
        out.detail(&line);
    }
    let results: Vec<HostResult> = outcomes
        .into_iter()
        .map(|o| match o.result {
            Ok((r, commands_run)) => HostResult {
                host: o.host,
                exit_code: r.code,
                commands_run,
                timed_out: args.timeout.is_some() && r.code == Some(TIMEOUT_EXIT_CODE),
                stdout: r.stdout,
                stderr: r.stderr,
                error: None,
            },
            Err(e) => HostResult {
                host: o.host,
                exit_code: None,
                commands_run: 0,
                timed_out: false,
                stdout: String::new(),
                stderr: String::new(),
                error: Some(format!("{e}\n  help: {}", e.hint())),
            },
        })
        .collect();
    let failed = results.iter().filter(|r| r.error.is_some() || r.exit_code != Some(0)).count();
    out.result(
        &render_text(&results, failed, total, !args.stream, !args.no_group, args.timeout),
        &serde_json::json!({ "hosts": results, "ok": results.len() - failed, "failed": failed }),
    );
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// A header per host with its exit status, then its stdout and its stderr lines marked (the
/// output only when it was not already streamed). With `group`, hosts whose header and output
/// would be identical share one header naming them all.
fn render_text(
    results: &[HostResult],
    failed: usize,
    total: usize,
    with_output: bool,
    group: bool,
    timeout: Option<Duration>,
) -> String {
    let timeout_text = timeout.map(|t| t.to_string()).unwrap_or_default();
    let shown: Vec<(&str, String)> = results
        .iter()
        .map(|r| {
            let mut status = match (&r.error, r.exit_code) {
                (Some(_), _) => "failed".to_string(),
                (None, Some(_)) if r.timed_out => format!("timed out after {}", timeout_text),
                (None, Some(c)) => format!("exit {c}"),
                (None, None) => "killed by a signal".to_string(),
            };
            if r.error.is_none() && r.commands_run < total {
                status.push_str(&format!(" at command {} of {total}; the rest not run", r.commands_run));
            }
            let mut body = String::new();
            if with_output {
                body.push_str(&r.stdout);
                for line in r.stderr.lines() {
                    body.push_str(&format!("stderr: {line}\n"));
                }
            }
            if let Some(e) = &r.error {
                body.push_str(&format!("error: {e}\n"));
            }
            (r.host.as_str(), format!("({status}) ==\n{body}"))
        })
        .collect();
    let groups = if group {
        kubewright::hostlist::group_by_identical(shown, |(_, text)| text.clone())
    } else {
        shown.into_iter().map(|one| vec![one]).collect()
    };
    let mut text = String::new();
    for members in groups {
        let names: Vec<&str> = members.iter().map(|(host, _)| *host).collect();
        let Some((_, rest)) = members.first() else { continue };
        text.push_str(&format!("== {} {rest}", kubewright::hostlist::fold(&names)));
    }
    text.push_str(&format!("{} hosts: {} ok, {failed} failed\n", results.len(), results.len() - failed));
    text
}
