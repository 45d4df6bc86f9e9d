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
            out.detail(&resolved_settings(&inv));
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

/// The settings after defaults, for `-v`: what the inventory means, not only what it says.
fn resolved_settings(inv: &kubewright::inventory::Inventory) -> String {
    let c = &inv.cluster;
    let mut lines = vec![
        format!("kubeadm config API: {}", c.kubernetes_version.kubeadm_api().api_version()),
        format!(
            "control-plane endpoint: {} ({})",
            c.control_plane_endpoint,
            if c.control_plane_endpoint.explicit { "from the inventory" } else { "default: first control plane" }
        ),
        format!(
            "pods {} (/{} per node), services {}, DNS domain {}",
            c.network.pod_subnet, c.network.node_cidr_mask_size, c.network.service_subnet, c.network.dns_domain
        ),
        format!(
            "containerd {}.{} (config version {}), sandbox image {}, SystemdCgroup {}",
            c.containerd.version.0,
            c.containerd.version.1,
            c.containerd.config_version(),
            c.containerd.sandbox_image,
            c.containerd.systemd_cgroup
        ),
        format!("flannel {} ({})", c.flannel.version, c.flannel.backend.net_conf_type()),
        format!(
            "upgrades: maxUnavailable {}, drain timeout {}, grace period {}; renew certificates {} before expiry",
            c.upgrade.max_unavailable,
            c.upgrade.drain_timeout,
            c.upgrade.drain_grace_period,
            c.certificates.renew_before
        ),
    ];
    for h in &inv.hosts {
        let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
        lines.push(format!(
            "host {}: ssh {}@{}:{}{}, node IP {}, roles {}",
            h.name,
            h.ssh.user,
            h.address,
            h.ssh.port,
            if h.ssh.sudo { " (sudo)" } else { "" },
            h.node_ip().map(|ip| ip.to_string()).unwrap_or_else(|| "detected by kubeadm".into()),
            roles.join(", ")
        ));
    }
    lines.join("\n")
}
