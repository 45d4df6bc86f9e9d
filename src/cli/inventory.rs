//! `kubewright inventory validate`.

use std::process::ExitCode;

use clap::Subcommand;

use super::inputs::{InventoryArg, KubesprayReader, load_inventory, read_kubespray};
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
    /// Write a kubewright inventory from a kubespray one, warning about what does not map
    #[command(
        name = "from-kubespray",
        after_help = "\
Examples:
  kubewright inventory from-kubespray inventory/mycluster/inventory.ini --name prod > prod.yaml
  kubewright inventory from-kubespray inventory/mycluster --name prod --kubernetes-version 1.31.4
  kubewright inventory from-kubespray .vagrant/provisioners/ansible/inventory/vagrant_ansible_inventory --name lab

Reading: with `ansible-inventory` on the PATH (ansible-core, which every kubespray user has),
the inventory is read as Ansible reads it, `ansible-inventory -i FILE --list`: any format,
host ranges, and the group_vars/ and host_vars/ beside it. Without it, kubewright's built-in
reader takes INI (hosts before any [group], ranges such as worker[01:20] and [a:c], quoted
values, :vars, :children) and YAML inventories with their group_vars/ and host_vars/ files, with
Ansible's precedence. A note says which reader was used; --reader picks one. If
ansible-inventory fails, that is the error: run it yourself to see why, or pass --reader builtin.
Both readers put kube_control_plane, kube_node and calico_rr into k8s_cluster, as kubespray's
playbooks do when they run, so that group_vars/k8s_cluster/ applies.

Mapping: the groups kube_control_plane (the first is where `kubeadm init` runs), kube_node
(kube-master and kube-node from before kubespray 2.16), etcd and bastion; the host variables
ansible_host, ip (node IP), ansible_user, ansible_port, ansible_ssh_private_key_file,
ansible_become and flannel_interface; the cluster variables kube_version (so
--kubernetes-version is needed only without it), kube_pods_subnet, kube_service_addresses,
kube_network_node_prefix, cluster_name (kubespray's DNS domain), flannel_backend_type,
loadbalancer_apiserver (controlPlaneEndpoint) and loadbalancer_apiserver_localhost
(loadBalancer: local). A value that is a Jinja template ({{ ... }}) is not resolved and counts
as not set. A kube_network_plugin other than flannel, every other variable, etcd-only hosts
and hosts in no Kubernetes group are named in warnings on stderr. The result is checked like
any inventory before it is printed.

Exit codes: 0 written (warnings may be printed), 2 the inventory cannot be read or mapped."
    )]
    FromKubespray {
        /// The kubespray inventory: a file (inventory.ini, hosts.yaml), its directory, or `-` (standard input, built-in reader)
        #[arg(value_name = "FILE")]
        input: std::path::PathBuf,
        /// The cluster's name
        #[arg(long)]
        name: String,
        /// The Kubernetes version the cluster runs [default: the inventory's kube_version]
        #[arg(long, value_name = "VERSION")]
        kubernetes_version: Option<String>,
        /// Which reader: ansible (`ansible-inventory`), builtin, or auto (ansible when on the PATH)
        #[arg(long, value_name = "READER", value_enum, default_value_t = KubesprayReader::Auto)]
        reader: KubesprayReader,
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
        InventoryCommand::FromKubespray { input, name, kubernetes_version, reader } => {
            use kubewright::inventory::kubespray;
            let source =
                if input.as_os_str() == "-" { "standard input".to_string() } else { input.display().to_string() };
            let read = read_kubespray(&input, reader)?;
            out.note(&format!("{source}: read by {}", read.reader));
            for n in &read.notes {
                out.note(n);
            }
            for w in &read.warnings {
                out.warning(w);
            }
            let options = kubespray::ImportOptions {
                source: &source,
                cluster: &name,
                kubernetes_version: kubernetes_version.as_deref(),
                reader: &read.reader,
            };
            let imported =
                kubespray::inventory(&read.view, &options).map_err(|e| UserError::new(e.to_string(), e.help))?;
            for n in &imported.notes {
                out.note(&format!("{source}: {n}"));
            }
            for w in &imported.warnings {
                out.warning(&format!("{source}: {w}"));
            }
            if !imported.unmapped.is_empty() {
                out.detail(&format!("not carried over (the same on every host): {}", imported.unmapped.join(", ")));
            }
            check_imported(&imported.yaml, out)?;
            out.result(
                &imported.yaml,
                &serde_json::json!({
                    "inventory": imported.yaml,
                    "reader": read.reader,
                    "warnings": read.warnings.iter().chain(&imported.warnings).collect::<Vec<_>>(),
                    "notes": imported.notes,
                }),
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
        // What the inventory leaves out is ssh_config's to say, found when connecting: not
        // shown as kubewright's default, which may not be what is used.
        let (login, left) = match (h.ssh.given.user, h.ssh.given.port) {
            (true, true) => (format!("{}@{}:{}", h.ssh.user, h.address, h.ssh.port), None),
            (true, false) => (format!("{}@{}", h.ssh.user, h.address), Some("port: ssh_config's, else 22")),
            (false, true) => (format!("{}:{}", h.address, h.ssh.port), Some("user: ssh_config's, else root")),
            (false, false) => (h.address.clone(), Some("user and port: ssh_config's, else root and 22")),
        };
        let sudo = match (h.ssh.given.sudo || h.ssh.given.user, h.ssh.sudo) {
            (true, true) => Some("sudo"),
            (true, false) => None,
            (false, _) => Some("sudo unless the user is root"),
        };
        let notes: Vec<&str> = sudo.into_iter().chain(left).collect();
        let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
        lines.push(format!(
            "host {}: ssh {login}{notes}, node IP {}, roles {}",
            h.name,
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
