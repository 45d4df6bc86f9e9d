//! `preflight`: checks on every host before anything changes, decided from the gathered facts
//! (kubeadm's own preflight runs later, inside `kubeadm init/join`; these catch at plan time
//! what would make it fail, on every host at once). Offline, the checks are only listed.

use super::Step;
use crate::facts::HostFacts;
use crate::inventory::{Host, Inventory};
use crate::plan::{Action, Decision, PlanCx};

pub struct Preflight;

/// The distributions kubewright installs on (apt, pkgs.k8s.io).
const SUPPORTED_OS: &[&str] = &["debian", "ubuntu"];
/// kubeadm's preflight minimums for a control plane (cmd/kubeadm/app/preflight/checks.go:
/// NumCPUCheck 2, MemCheck 1700 MB).
const CONTROL_PLANE_CPUS: u32 = 2;
const CONTROL_PLANE_MEMORY_MB: u64 = 1700;
/// How far a host's clock may be from the bastion's. Certificates are valid from the moment
/// kubeadm signs them: a node whose clock is behind sees them as not yet valid.
const MAX_CLOCK_SKEW_S: i64 = 30;

/// kubeadm's port checks; a worker's local API proxy (`loadBalancer.type: local`) also needs
/// the API server's port.
fn required_ports(inv: &Inventory, host: &Host) -> Vec<u16> {
    match (host.is_control_plane(), inv.cluster.load_balancer.is_local()) {
        (true, _) => vec![6443, 2379, 2380, 10250, 10257, 10259],
        (false, true) => vec![inv.cluster.control_plane_endpoint.port, 10250],
        (false, false) => vec![10250],
    }
}

impl Step for Preflight {
    fn id(&self) -> &'static str {
        "preflight"
    }

    fn title(&self) -> &'static str {
        "Check the hosts before changing anything"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if facts.joined {
            return certificates(cx, facts);
        }
        if cx.facts.assumed_fresh {
            return listed_checks(cx.inventory, host);
        }
        let mut problems = Vec::new();
        if !SUPPORTED_OS.contains(&facts.os_id.as_str()) {
            let os = if facts.os_id.is_empty() {
                "unknown".to_string()
            } else {
                format!("{} {}", facts.os_id, facts.os_version)
            };
            problems.push(format!("unsupported OS `{os}`: kubewright installs on Debian or Ubuntu (apt)"));
        }
        // Unique across the cluster: kubeadm and the CNI tell nodes apart by these.
        let others = || cx.facts.hosts.iter().filter(|(name, _)| **name != host.name);
        if !facts.hostname.is_empty()
            && let Some((other, _)) = others().find(|(_, f)| f.hostname == facts.hostname)
        {
            problems.push(format!("hostname `{}` is also {other}'s: give every host its own", facts.hostname));
        }
        for mac in &facts.macs {
            if let Some((other, _)) = others().find(|(_, f)| f.macs.contains(mac)) {
                problems.push(format!("MAC address {mac} is also on {other} (a cloned VM?): give it a new one"));
            }
        }
        if !facts.product_uuid.is_empty()
            && let Some((other, _)) = others().find(|(_, f)| f.product_uuid == facts.product_uuid)
        {
            problems.push(format!("product_uuid {} is also {other}'s (a cloned VM?)", facts.product_uuid));
        }
        // The kubelet refuses a --node-ip the host does not have, and etcd and the API server
        // advertise it: the classic NAT (Vagrant) mistake is an address only the bastion sees.
        if let Some(std::net::IpAddr::V4(ip)) = host.node_ip()
            && !facts.ipv4_addresses.is_empty()
            && !facts.ipv4_addresses.contains(&ip)
        {
            let have: Vec<String> =
                facts.ipv4_addresses.iter().filter(|a| !a.is_loopback()).map(|a| a.to_string()).collect();
            problems.push(format!(
                "node IP {ip} is not an address of this host (it has {}): set `internalAddress` to the address other nodes reach it at",
                have.join(", ")
            ));
        }
        if host.is_control_plane() {
            if facts.cpus != 0 && facts.cpus < CONTROL_PLANE_CPUS {
                problems.push(format!("{} CPU(s); a control plane needs at least {CONTROL_PLANE_CPUS}", facts.cpus));
            }
            if facts.memory_mb != 0 && facts.memory_mb < CONTROL_PLANE_MEMORY_MB {
                problems.push(format!(
                    "{} MB of memory; a control plane needs at least {CONTROL_PLANE_MEMORY_MB} MB",
                    facts.memory_mb
                ));
            }
        }
        if let Some(skew) = facts.clock_skew_s
            && skew.abs() > MAX_CLOCK_SKEW_S
        {
            let way = if skew > 0 { "ahead of" } else { "behind" };
            problems.push(format!(
                "clock {}s {way} the bastion's: certificates would look not yet valid or expired; sync time (chrony, systemd-timesyncd)",
                skew.abs()
            ));
        }
        let busy: Vec<String> = required_ports(cx.inventory, host)
            .into_iter()
            .filter(|p| facts.listening_ports.contains(p))
            .map(|p| p.to_string())
            .collect();
        if !busy.is_empty() {
            problems.push(format!(
                "port(s) {} already in use: stop what listens there (`ss -ltnp`) or use another host",
                busy.join(", ")
            ));
        }
        if !problems.is_empty() {
            return Decision::Blocked { problems };
        }
        let mut checks = vec![Action::Note {
            text: format!(
                "{} {} {}, {} CPUs, {} MB, clock in sync, hostname/MACs/product_uuid unique, ports free",
                facts.os_id, facts.os_version, facts.arch, facts.cpus, facts.memory_mb
            ),
        }];
        // Not blocking, but the usual cause of pods that cannot reach each other.
        for firewall in &facts.active_firewalls {
            checks.push(Action::Note {
                text: format!(
                    "warning: {firewall} is active; its rules can drop pod and service traffic (CoreDNS \"no route to host\"): open the cluster's ports or stop it"
                ),
            });
        }
        Decision::Verify { actions: checks }
    }
}

/// Offline: what the checks are, not their results.
fn listed_checks(inv: &Inventory, host: &Host) -> Decision {
    let ports: Vec<String> = required_ports(inv, host).iter().map(u16::to_string).collect();
    let mut checks = vec![
        "supported OS (Debian or Ubuntu with apt) and unique hostname, MAC and product_uuid".to_string(),
        "at least 2 CPUs and 1700 MB of memory on control planes; clock within 30s of the bastion's".to_string(),
        "no firewalld or REJECT-all iptables service in the way of pod traffic".to_string(),
    ];
    checks.push(format!("ports {} free", ports.join(", ")));
    Decision::Verify { actions: checks.into_iter().map(|text| Action::Note { text }).collect() }
}

/// A node of the cluster: nothing to check before changing it, but certificates close to
/// expiry are worth saying (the host's clock decides, as it does for the host's TLS).
fn certificates(cx: &PlanCx<'_>, facts: &HostFacts) -> Decision {
    let Some((path, cert)) = facts.certificates.iter().min_by_key(|(path, c)| (c.not_after, *path)) else {
        return Decision::Skip { reason: "already a node of the cluster".into() };
    };
    let file = path.rsplit('/').next().unwrap_or(path);
    let left = cert.not_after - facts.host_time as i64;
    let renew_before = cx.inventory.cluster.certificates.renew_before;
    if left <= 0 {
        return Decision::Verify {
            actions: vec![Action::Note {
                text: format!(
                    "warning: {file} expired {} days ago: the node cannot reach the API server with it; renew the certificates (`kubeadm certs renew all` on a control plane)",
                    -left / 86_400
                ),
            }],
        };
    }
    if left as u64 <= renew_before.seconds {
        return Decision::Verify {
            actions: vec![Action::Note {
                text: format!(
                    "warning: {file} expires in {} days (certificates.renewBefore is {renew_before}): renew the certificates",
                    left / 86_400
                ),
            }],
        };
    }
    Decision::Skip {
        reason: format!(
            "already a node of the cluster; certificates valid for {} more days (first to expire: {file})",
            left / 86_400
        ),
    }
}
