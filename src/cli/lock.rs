//! `kubewright lock status|break`: see who holds the cluster lock, remove a dead run's lock.

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::{Reporter, UserError};
use kubewright::exec::lock;
use kubewright::ssh::Target;

#[derive(Subcommand)]
pub enum LockCommand {
    /// Show who holds the cluster lock on each control plane
    #[command(after_help = "Example:\n  kubewright lock status -i inv.yaml")]
    Status {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
    },
    /// Remove the cluster lock whoever holds it (for a run that died)
    #[command(
        after_help = "Example:\n  kubewright lock break -i inv.yaml --yes\n\nOnly when no kubewright run is active for this cluster: breaking a live run's lock lets two runs change the cluster at once. A lock whose run is still alive on this machine, or that is younger than --older-than, is kept unless --force is given."
    )]
    Break {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
        /// Confirm (required: breaking a live run's lock is dangerous)
        #[arg(long)]
        yes: bool,
        /// Only break a lock at least this old (a younger one may belong to a live run elsewhere)
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        older_than: kubewright::duration::Duration,
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
            (inventory, connect, Some((older_than.seconds, *force)))
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
        let result = if let Some((older_than, force)) = breaking {
            if !force {
                let now =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                for (host, state) in lock::status(&transports).await {
                    if let Ok(Some(holder)) = state
                        && let Some(why) = lock::looks_alive(&holder, now, older_than)
                    {
                        return Err(UserError::new(format!(
                            "the lock on {host} may belong to a live run ({holder}): {why}"
                        ), "wait for that run, or if you know it is dead, add --force")
                        .into());
                    }
                }
            }
            let broken = lock::break_lock(&transports).await?;
            let text = if broken.is_empty() {
                "the cluster was not locked\n".to_string()
            } else {
                broken.iter().map(|(h, holder)| format!("{h}: removed the lock of {holder}\n")).collect()
            };
            out.result(&text, &serde_json::json!({ "broken": broken.iter().map(|(h, holder)| serde_json::json!({"host": h, "holder": holder})).collect::<Vec<_>>() }));
            Ok(ExitCode::SUCCESS)
        } else {
            let states = lock::status(&transports).await;
            let mut text = String::new();
            let mut json = Vec::new();
            for (host, state) in &states {
                match state {
                    Ok(Some(holder)) => {
                        text.push_str(&format!("{host}: locked by {holder}\n"));
                        json.push(serde_json::json!({"host": host, "holder": holder}));
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
            Ok(ExitCode::SUCCESS)
        };
        for t in transports {
            t.close().await;
        }
        result
    })
}
