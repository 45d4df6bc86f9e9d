//! `kubewright inventory validate`.

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{InventoryArg, load_inventory};
use crate::report::Reporter;

#[derive(Subcommand)]
pub enum InventoryCommand {
    /// Check an inventory and report every problem at once
    #[command(after_help = "\
Examples:
  kubewright inventory validate -i inventories/example.yaml
  kubewright inventory validate -i inv.yaml --output json | jq .diagnostics

Exit codes: 0 valid (warnings may be printed), 2 invalid.")]
    Validate {
        #[command(flatten)]
        inventory: InventoryArg,
    },
}

pub fn exec(cmd: InventoryCommand, out: &Reporter) -> anyhow::Result<ExitCode> {
    match cmd {
        InventoryCommand::Validate { inventory } => {
            let inv = load_inventory(&inventory, out)?;
            let control_planes = inv.control_planes().count();
            out.result(
                &format!(
                    "inventory `{}` is valid: cluster {}, Kubernetes {}, {} host{} ({} control plane{}, {} worker{})",
                    inventory.inventory.display(),
                    inv.cluster.name,
                    inv.cluster.kubernetes_version,
                    inv.hosts.len(),
                    if inv.hosts.len() == 1 { "" } else { "s" },
                    control_planes,
                    if control_planes == 1 { "" } else { "s" },
                    inv.hosts.iter().filter(|h| h.is_worker()).count(),
                    if inv.hosts.iter().filter(|h| h.is_worker()).count() == 1 { "" } else { "s" },
                ),
                &serde_json::json!({ "valid": true, "file": inventory.inventory.display().to_string(), "inventory": inv }),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
