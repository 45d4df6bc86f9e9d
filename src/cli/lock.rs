//! `kubewright lock status|break`: see who holds the cluster lock, remove a dead run's lock.

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::{Failure, Reporter, UserError};
use kubewright::exec::lock::{self, BreakOutcome, Here, Liveness, LockState};
use kubewright::ssh::Target;

#[derive(Subcommand)]
pub enum LockCommand {
    /// Show who holds the cluster lock on each control plane, and how long ago its run's heartbeat was
    #[command(
        after_help = "Examples:\n  kubewright lock status -i inv.yaml\n  kubewright lock status -i inv.yaml -o json\n\nA live run refreshes its lock's heartbeat every 30s with each control plane's own clock; the age shown is that host's clock against itself. A lock without a heartbeat was taken by an older kubewright."
    )]
    Status {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Remove the cluster lock of a run that died
    #[command(
        after_help = "Example:\n  kubewright lock break -i inv.yaml --yes\n\nOnly when no kubewright run is active for this cluster: breaking a live run's lock lets two runs change the cluster at once. Unless --force is given, every lock is kept if one of them belongs to a run still alive on this machine, has a heartbeat younger than --older-than (default 5m: ten missed heartbeats), or, taken by an older kubewright without heartbeats, was taken less than --older-than ago (default 1h). Only the lock that was read is removed: one taken by another run meanwhile is kept."
    )]
    Break {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
        /// Confirm (required: breaking a live run's lock is dangerous)
        #[arg(long)]
        yes: bool,
        /// Only break a lock whose heartbeat (without one: whose start) is at least this old [default: 5m; 1h without a heartbeat]
        #[arg(long, value_name = "DURATION")]
        older_than: Option<kubewright::duration::Duration>,
        /// Break it even if it looks alive
        #[arg(long)]
        force: bool,
    },
}

pub fn exec(cmd: LockCommand, out: &Reporter) -> anyhow::Result<ExitCode> {
    let (inventory, connect, breaking) = match &cmd {
        LockCommand::Status { inventory, connect } => (inventory, connect, None),
        LockCommand::Break { inventory, connect, yes, older_than, force } => {
            if !yes {
                return Err(UserError::new(
                    "`lock break` changes the cluster",
                    "check no kubewright run is active for this cluster, then add --yes",
                )
                .into());
            }
            let older_than = older_than.map(|d| std::time::Duration::from_secs(d.seconds));
            (inventory, connect, Some((older_than, *force)))
        }
    };
    let inv = load_inventory(inventory, out)?;
    let connector = connect.connector(&inv)?;
    let runtime = super::inputs::runtime()?;
    runtime.block_on(async {
        let mut transports = Vec::new();
        for h in inv.control_planes() {
            let t = connector
                .connect(Target::from_inventory(&inv, h, connect.accept_new_host_keys))
                .await
                .map_err(|e| anyhow::Error::new(UserError::new(e.to_string(), e.hint())))?;
            transports.push(t);
        }
        for (_, line) in connector.take_settings() {
            out.detail(&line);
        }
        let states = lock::status(&transports).await;
        let here = Here::now();
        let result = match breaking {
            Some((older_than, force)) => break_locks(&transports, states, older_than, force, &here, out).await,
            None => {
                show(&states, &here, out);
                Ok(ExitCode::SUCCESS)
            }
        };
        for t in transports {
            t.close().await;
        }
        result
    })
}

/// What this machine knows of a holder's process, for `lock status`.
fn on_this_machine(state: &LockState, here: &Here) -> Option<(&'static str, String)> {
    match here.liveness(state.holder.as_ref()?) {
        Liveness::Alive(why) => Some(("alive", why)),
        Liveness::Gone(why) => Some(("gone", format!("{why} (the next run from here takes its lock over)"))),
        Liveness::Unknown(_) => None,
    }
}

fn show(states: &lock::PerHost<Option<LockState>>, here: &Here, out: &Reporter) {
    let mut text = String::new();
    let mut json = Vec::new();
    for (host, state) in states {
        match state {
            Ok(Some(state)) => {
                let known = on_this_machine(state, here);
                text.push_str(&format!("{host}: locked by {state}"));
                if let Some((_, why)) = &known {
                    text.push_str(&format!("; {why}"));
                }
                text.push('\n');
                json.push(serde_json::json!({
                    "host": host,
                    "holder": state.holder,
                    "unreadable": state.unreadable,
                    "heartbeat_at": state.heartbeat_at,
                    "heartbeat_age_s": state.heartbeat_age_s,
                    "host_now": state.host_now,
                    "this_machine": known.map(|(word, _)| word),
                }));
            }
            Ok(None) => {
                text.push_str(&format!("{host}: free\n"));
                json.push(serde_json::json!({"host": host, "holder": null}));
            }
            Err(e) => {
                text.push_str(&format!("{host}: unknown ({e})\n"));
                json.push(serde_json::json!({"host": host, "error": e.to_string()}));
            }
        }
    }
    out.result(&text, &serde_json::json!({ "control_planes": json }));
}

async fn break_locks<T: kubewright::ssh::Transport>(
    transports: &[T],
    states: lock::PerHost<Option<LockState>>,
    older_than: Option<std::time::Duration>,
    force: bool,
    here: &Here,
    out: &Reporter,
) -> anyhow::Result<ExitCode> {
    let mut seen = Vec::new();
    for (host, state) in states {
        match state {
            Ok(Some(state)) => seen.push((host, state)),
            Ok(None) => {}
            Err(e) => {
                return Err(Failure::new(format!("{e}; no lock was broken"), e.hint()).into());
            }
        }
    }
    if !force {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let kept: Vec<String> = seen
            .iter()
            .filter_map(|(host, state)| {
                lock::may_break(state, older_than, now, here)
                    .err()
                    .map(|why| format!("the lock on {host} may belong to a live run ({state}): {why}"))
            })
            .collect();
        if !kept.is_empty() {
            return Err(UserError::new(
                format!("{}; no lock was broken", kept.join("; ")),
                "wait for that run, or if you know it is dead, add --force (or a smaller --older-than)",
            )
            .into());
        }
    }
    let mut text = String::new();
    let mut broken = Vec::new();
    let mut kept = Vec::new();
    for (host, outcome) in lock::break_lock(transports, &seen).await {
        let Some((_, was)) = seen.iter().find(|(h, _)| *h == host) else { continue };
        match outcome {
            Ok(BreakOutcome::Removed) => {
                text.push_str(&format!("{host}: removed the lock of {was}\n"));
                broken.push(serde_json::json!({"host": host, "holder": was.holder, "unreadable": was.unreadable}));
            }
            Ok(BreakOutcome::Changed(None)) => text.push_str(&format!("{host}: already released by its run\n")),
            Ok(BreakOutcome::Changed(Some(now))) => {
                let why = format!("the lock changed since it was read: it is now {now}");
                text.push_str(&format!("{host}: kept: {why}\n"));
                kept.push(serde_json::json!({"host": host, "reason": why, "holder": now.holder}));
            }
            Err(e) => {
                text.push_str(&format!("{host}: not broken: {e}\n"));
                kept.push(serde_json::json!({"host": host, "reason": e.to_string(), "error": true}));
            }
        }
    }
    if seen.is_empty() {
        text.push_str("the cluster was not locked\n");
    }
    let complete = kept.is_empty();
    out.result(&text, &serde_json::json!({ "broken": broken, "kept": kept }));
    Ok(if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
