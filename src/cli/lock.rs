//! `kubewright lock status|break`: see who holds the cluster lock, remove a dead run's lock.

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::{Reporter, UserError};
use kubewright::exec::lock;
use kubewright::ssh::{Connector, Target};

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
        after_help = "Example:\n  kubewright lock break -i inv.yaml --yes\n\nOnly when no kubewright run is active for this cluster: breaking a live run's lock lets two runs change the cluster at once."
    )]
    Break {
        #[command(flatten)]
        inventory: InventoryArg,
        #[command(flatten)]
        connect: ConnectArgs,
        /// Confirm (required: breaking a live run's lock is dangerous)
        #[arg(long)]
        yes: bool,
    },
}

pub fn exec(cmd: LockCommand, out: &Reporter) -> anyhow::Result<ExitCode> {
    let (inventory, connect, breaking) = match &cmd {
        LockCommand::Status { inventory, connect } => (inventory, connect, false),
        LockCommand::Break { inventory, connect, yes } => {
            if !yes {
                return Err(UserError::new("`lock break` changes the cluster")
                    .help("check no kubewright run is active for this cluster, then add --yes")
                    .into());
            }
            (inventory, connect, true)
        }
    };
    let inv = load_inventory(inventory, out)?;
    let connector = Connector::new(connect.transport(&inv))?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut transports = Vec::new();
        for h in inv.control_planes() {
            let t = connector
                .connect(Target::from_inventory(&inv, h, connect.accept_new_host_keys))
                .await
                .map_err(|e| anyhow::Error::new(UserError::new(e.to_string()).help(e.hint())))?;
            transports.push(t);
        }
        let result = if breaking {
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
