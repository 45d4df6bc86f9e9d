//! `kubewright inventory validate`.

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{InventoryArg, load_inventory};
use crate::report::{Reporter, UserError};

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
    /// Write a kubewright inventory from a kubespray one (INI or YAML), warning about what does not map
    #[command(
        name = "from-kubespray",
        after_help = "\
Example:
  kubewright inventory from-kubespray inventory/mycluster/hosts.yaml --name prod --kubernetes-version 1.31.4 > prod.yaml

Reads the groups kube_control_plane, kube_node (kube-master and kube-node from before kubespray
2.16), etcd and bastion, and the host variables ansible_host (SSH address), ip (node IP),
ansible_user, ansible_port and ansible_ssh_private_key_file, also from [group:vars]. Every
other variable, etcd-only hosts (kubewright runs etcd on the control planes) and hosts in no
Kubernetes group are named in warnings on stderr. The form is told by the content (a YAML
mapping with `all`, else INI). The result is checked like any inventory before it is printed."
    )]
    FromKubespray {
        /// The kubespray inventory (`hosts.yaml` or `inventory.ini`; `-`: standard input)
        #[arg(value_name = "FILE")]
        input: std::path::PathBuf,
        /// The cluster's name
        #[arg(long)]
        name: String,
        #[arg(long, value_name = "VERSION")]
        kubernetes_version: String,
    },
    /// Write an inventory for the machines `vagrant ssh-config` describes (any Vagrantfile)
    #[command(
        name = "from-vagrant",
        after_help = "\
Examples (see vagrant/README.md):
  cd vagrant && vagrant up && vagrant ssh-config | kubewright inventory from-vagrant > inv.yaml
  vagrant ssh-config | kubewright inventory from-vagrant --control-planes 'k8s-cp-*' > inv.yaml
  vagrant ssh-config | kubewright inventory from-vagrant --control-planes master --workers 'node-*' > inv.yaml
  kubewright apply -i inv.yaml --yes --accept-new-host-keys

Machines whose names match --control-planes (a shell glob, repeatable; default cp*, the names
vagrant/Vagrantfile gives) become control planes, the others workers; --workers (repeatable)
keeps only the matching ones of the others, and names the rest in a warning. A machine matching
both is a control plane. Without workers the control planes run the workloads too.

`vagrant ssh-config` gives how to reach each machine (a VirtualBox port forward such as
127.0.0.1:2222, or a libvirt address on port 22), its user and every IdentityFile (kept in
order, all tried), but not the network the nodes share. Each node IP is read on the machine
when a plan is made: the IPv4 address of --interface (`internalAddress: {interface: eth1}`),
which flannel uses too. --network A.B.C instead writes vagrant/Vagrantfile's addresses,
A.B.C.11.. for control planes and A.B.C.21.. for workers. Vagrant turns host-key checking off;
kubewright keeps the machines' keys in --known-hosts (learned on the first run with
--accept-new-host-keys). With more than one control plane the inventory uses the local load
balancer. The result is checked like any inventory before it is printed."
    )]
    FromVagrant {
        /// `vagrant ssh-config` output (`-`: standard input)
        #[arg(value_name = "FILE", default_value = "-")]
        input: std::path::PathBuf,
        /// The cluster's name
        #[arg(long, default_value = "vagrant")]
        name: String,
        #[arg(long, value_name = "VERSION", default_value = "1.31.4")]
        kubernetes_version: String,
        /// The machines that become control planes: a glob on their names (repeatable)
        #[arg(long = "control-planes", value_name = "GLOB", default_value = "cp*")]
        control_planes: Vec<String>,
        /// Only the other machines matching this glob become workers (repeatable; default: all the others)
        #[arg(long = "workers", value_name = "GLOB")]
        workers: Vec<String>,
        /// Node IPs by vagrant/Vagrantfile's convention on this network (its KW_NETWORK), instead of reading them from --interface
        #[arg(long, value_name = "A.B.C")]
        network: Option<String>,
        /// The interface of the network the nodes share, in the machines: each node IP is its IPv4 address, and flannel uses it
        #[arg(long, value_name = "NAME", default_value = "eth1")]
        interface: String,
        /// Where kubewright keeps the machines' host keys (default: .vagrant/kubewright_known_hosts here)
        #[arg(long, value_name = "FILE")]
        known_hosts: Option<std::path::PathBuf>,
    },
}

pub fn exec(cmd: InventoryCommand, out: &Reporter) -> anyhow::Result<ExitCode> {
    match cmd {
        InventoryCommand::FromKubespray { input, name, kubernetes_version } => {
            let (source, text) = read_input(&input)?;
            let yaml_form = text.lines().any(|l| l.trim_end() == "all:");
            let hosts = if yaml_form {
                kubewright::inventory::kubespray::parse_yaml(&text)
            } else {
                kubewright::inventory::kubespray::parse_ini(&text)
            }
            .map_err(|e| {
                UserError::new(
                    format!("{source}: {e}"),
                    "give a kubespray inventory: INI with [group] sections, or YAML with `all:` (inventory/<cluster>/hosts.yaml)",
                )
            })?;
            let imported =
                kubewright::inventory::kubespray::inventory(&hosts, &name, &kubernetes_version).map_err(|e| {
                    UserError::new(
                        format!("{source}: {e}"),
                        "put the control planes in kube_control_plane and the workers in kube_node",
                    )
                })?;
            for w in &imported.warnings {
                out.warning(&format!("{source}: {w}"));
            }
            check_imported(&imported.yaml, out)?;
            out.result(
                &imported.yaml,
                &serde_json::json!({ "inventory": imported.yaml, "warnings": imported.warnings }),
            );
            Ok(ExitCode::SUCCESS)
        }
        InventoryCommand::FromVagrant {
            input,
            name,
            kubernetes_version,
            control_planes,
            workers,
            network,
            interface,
            known_hosts,
        } => {
            let (source, text) = read_input(&input)?;
            let node_ips = match network {
                None => kubewright::inventory::vagrant::NodeIps::FromInterface,
                Some(network) => {
                    let octets = network.split('.').filter(|o| o.parse::<u8>().is_ok()).count();
                    if octets != 3 || network.split('.').count() != 3 {
                        return Err(UserError::new(
                            format!("`{network}` is not the first three octets of a network"),
                            "give it as the Vagrantfile's KW_NETWORK, e.g. 192.168.56, or leave --network out to read each node IP from --interface",
                        )
                        .into());
                    }
                    kubewright::inventory::vagrant::NodeIps::Convention { network }
                }
            };
            let known_hosts = match known_hosts {
                Some(p) => p,
                None => std::env::current_dir()
                    .map_err(|e| {
                        UserError::new(
                            format!("cannot read the current directory: {e}"),
                            "run from the Vagrantfile's directory, or pass --known-hosts FILE",
                        )
                    })?
                    .join(".vagrant/kubewright_known_hosts"),
            };
            let known_hosts = known_hosts.display().to_string();
            let entries = kubewright::inventory::vagrant::parse_ssh_config(&text).map_err(|e| {
                UserError::new(
                    format!("{source}: {e}"),
                    "pipe in `vagrant ssh-config`, run in the directory of the Vagrantfile",
                )
            })?;
            let options = kubewright::inventory::vagrant::ImportOptions {
                cluster: &name,
                kubernetes_version: &kubernetes_version,
                control_planes: &control_planes,
                workers: &workers,
                node_ips,
                interface: &interface,
                known_hosts: &known_hosts,
            };
            let imported = kubewright::inventory::vagrant::inventory(&entries, &options).map_err(|e| {
                UserError::new(
                    format!("{source}: {e}"),
                    "name the control-plane machines with --control-planes GLOB (repeatable), e.g. --control-planes 'k8s-cp-*'",
                )
            })?;
            for w in &imported.warnings {
                out.warning(&format!("{source}: {w}"));
            }
            check_imported(&imported.yaml, out)?;
            out.result(
                &imported.yaml,
                &serde_json::json!({ "inventory": imported.yaml, "hosts": imported.hosts, "warnings": imported.warnings }),
            );
            Ok(ExitCode::SUCCESS)
        }
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

/// A file's text, or standard input's for `-`, with the name to use in messages.
fn read_input(input: &std::path::Path) -> anyhow::Result<(String, String)> {
    use std::io::Read;
    let mut text = String::new();
    let source = if input.as_os_str() == "-" { "standard input".to_string() } else { input.display().to_string() };
    let read = if input.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(input).map(|t| text = t)
    };
    read.map_err(|e| {
        UserError::new(format!("cannot read {source}: {e}"), "give a readable file, or `-` to read standard input")
    })?;
    Ok((source, text))
}

/// What an importer writes must load: every value is checked as in any inventory.
fn check_imported(yaml: &str, out: &Reporter) -> anyhow::Result<()> {
    if let Err(e) = kubewright::inventory::load("imported", yaml) {
        out.diagnostics(&e.diagnostics);
        return Err(UserError::new(
            "the imported inventory is not valid (see above)",
            "check --name, --kubernetes-version and the source's host names and addresses",
        )
        .into());
    }
    Ok(())
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
            match (&h.internal_interface, h.node_ip()) {
                (_, Some(ip)) => ip.to_string(),
                (Some(interface), None) => format!("the IPv4 address of {interface} (read from the host at plan time)"),
                (None, None) => "detected by kubeadm".into(),
            },
            roles.join(", ")
        ));
    }
    lines.join("\n")
}
