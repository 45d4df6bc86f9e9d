//! Node IPs read from the hosts: a host whose inventory says `internalAddress: {interface:
//! eth1}` gets the IPv4 address its facts show on that interface, before anything is planned
//! from it (kubeadm's advertiseAddress and the kubelet's node-ip, the local API proxies'
//! backends, `/etc/hosts`, the default control-plane endpoint). A missing interface, or one
//! without an IPv4 address, refuses the plan, naming host and interface: nothing changes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::facts::ClusterFacts;
use crate::inventory::Inventory;
use crate::upgrade::Refusal;

/// A node IP given as an interface, and what the host has there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeIp {
    pub host: String,
    pub interface: String,
    /// The interface's (first) IPv4 address; None when it was not read: `plan --offline`, a
    /// host the goal allows to be unreachable, or a refusal says why.
    pub address: Option<String>,
}

/// The inventory with the node IPs found, what was found for each interface-addressed host
/// (inventory order), and why the plan cannot go on.
pub struct Resolved {
    pub inventory: Inventory,
    pub node_ips: Vec<NodeIp>,
    pub refusals: Vec<Refusal>,
}

/// Read each interface-addressed host's node IP from `facts`. Offline (facts assumed) nothing
/// is read and the inventory keeps its placeholders.
pub fn resolve(inv: &Inventory, facts: &ClusterFacts) -> Resolved {
    let mut found: BTreeMap<String, IpAddr> = BTreeMap::new();
    let mut node_ips = Vec::new();
    let mut refusals = Vec::new();
    for host in &inv.hosts {
        let Some(interface) = &host.internal_interface else { continue };
        let mut node_ip = NodeIp { host: host.name.clone(), interface: interface.clone(), address: None };
        let host_facts = facts.host(&host.name);
        match host_facts {
            _ if facts.assumed_fresh || facts.unreachable.contains_key(&host.name) => {}
            // Every host's facts are gathered before planning; the planner reports a gap.
            None => {}
            Some(f) => match read(&host.name, interface, f.interfaces.as_ref()) {
                Ok(ip) => {
                    found.insert(host.name.clone(), IpAddr::V4(ip));
                    node_ip.address = Some(ip.to_string());
                }
                Err(refusal) => refusals.push(refusal),
            },
        }
        node_ips.push(node_ip);
    }
    let inventory = inv.with_node_ips(&found);
    refusals.extend(shared_addresses(&inventory));
    Resolved { inventory, node_ips, refusals }
}

/// A node IP not read (its host is unreachable, and the goal allows that) that the plan's
/// steps still use: they would write `<IPv4 of eth1>` where an address belongs.
pub fn placeholders_in(plan: &super::Plan) -> Vec<Refusal> {
    let unread: Vec<&NodeIp> = plan.node_ips.iter().filter(|n| n.address.is_none()).collect();
    if unread.is_empty() {
        return Vec::new();
    }
    // Debug, not the JSON form: it holds the files' contents, the sensitive ones included.
    let steps = format!("{:?}", plan.steps);
    unread
        .into_iter()
        .filter(|n| steps.contains(&crate::inventory::interface_placeholder(&n.interface)))
        .map(|n| Refusal {
            reason: format!(
                "the plan needs the node IP of {}, the IPv4 address of `{}` there, which could not be read",
                n.host, n.interface
            ),
            fix: format!(
                "bring {} back so that its facts can be read, or give its address in the inventory (`internalAddress: 192.168.56.11`)",
                n.host
            ),
        })
        .collect()
}

/// The first IPv4 address of `interface` in a host's interfaces, or why there is none.
fn read(
    host: &str,
    interface: &str,
    interfaces: Option<&BTreeMap<String, Vec<std::net::Ipv4Addr>>>,
) -> Result<std::net::Ipv4Addr, Refusal> {
    let fix_interface = format!(
        "set `internalAddress: {{interface: NAME}}` of {host} to the interface on the network the nodes share, or give its address (`internalAddress: 192.168.56.11`)"
    );
    let Some(interfaces) = interfaces else {
        return Err(Refusal {
            reason: format!(
                "the node IP of {host} is the IPv4 address of `{interface}`, but its interfaces could not be read (`ip -o link` printed nothing)"
            ),
            fix: format!("install iproute2 on {host} (`ip`), or give its address (`internalAddress: 192.168.56.11`)"),
        });
    };
    let Some(addresses) = interfaces.get(interface) else {
        let names: Vec<&str> = interfaces.keys().map(String::as_str).collect();
        return Err(Refusal {
            reason: format!("{host} has no interface `{interface}` (it has {})", names.join(", ")),
            fix: fix_interface,
        });
    };
    addresses.first().copied().ok_or_else(|| Refusal {
        reason: format!(
            "interface `{interface}` of {host} has no IPv4 address (down, or not configured? `ip addr show {interface}` there)"
        ),
        fix: format!("bring `{interface}` up with its address on {host}; or {fix_interface}"),
    })
}

/// Node IPs read from interfaces that another node also has: the classic case is Vagrant's
/// NAT interface, the same 10.0.2.15 on every machine.
fn shared_addresses(inv: &Inventory) -> Vec<Refusal> {
    let mut by_ip: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for host in &inv.hosts {
        if let Some(ip) = host.node_ip() {
            by_ip.entry(ip).or_default().push(&host.name);
        }
    }
    by_ip
        .into_iter()
        .filter(|(_, hosts)| hosts.len() > 1)
        .filter(|(_, hosts)| hosts.iter().any(|h| inv.host(h).is_some_and(|h| h.internal_interface.is_some())))
        .map(|(ip, hosts)| Refusal {
            reason: format!("{} all have the node IP {ip}", hosts.join(", ")),
            fix: "every node needs an address of its own: name the interface of the network the nodes share (on a Vagrant machine the first, NAT, interface has the same address everywhere: the private network is usually eth1)".into(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::facts::HostFacts;

    fn inventory(interfaces: &[&str]) -> Inventory {
        let hosts: String = interfaces
            .iter()
            .enumerate()
            .map(|(i, interface)| {
                let role = if i == 0 { "control-plane" } else { "worker" };
                format!(
                    "  - {{name: n{i}, address: 127.0.0.1, internalAddress: {{interface: {interface}}}, roles: [{role}], ssh: {{port: {}}}}}\n",
                    2222 + i
                )
            })
            .collect();
        let text = format!("cluster: {{name: c, kubernetesVersion: 1.31.4}}\nhosts:\n{hosts}");
        crate::inventory::load("inv.yaml", &text).unwrap().inventory
    }

    fn facts(hosts: &[&[(&str, &[&str])]]) -> ClusterFacts {
        let mut facts = ClusterFacts::assume_fresh(std::iter::empty());
        facts.assumed_fresh = false;
        for (i, interfaces) in hosts.iter().enumerate() {
            let mut f = HostFacts::fresh();
            f.interfaces = Some(
                interfaces
                    .iter()
                    .map(|(n, ips)| (n.to_string(), ips.iter().map(|a| a.parse().unwrap()).collect()))
                    .collect(),
            );
            facts.hosts.insert(format!("n{i}"), f);
        }
        facts
    }

    #[test]
    fn each_host_gets_its_interface_address_and_the_endpoint_follows() {
        let inv = inventory(&["eth1", "eth1"]);
        assert_eq!(inv.hosts[0].node_address().as_deref(), Some("<IPv4 of eth1>"), "not read yet: no address made up");
        assert_eq!(inv.cluster.control_plane_endpoint.host, "<IPv4 of eth1>");
        let r = resolve(
            &inv,
            &facts(&[
                &[("lo", &["127.0.0.1"]), ("eth0", &["10.0.2.15"]), ("eth1", &["192.168.56.11", "192.168.56.99"])],
                &[("eth0", &["10.0.2.15"]), ("eth1", &["192.168.56.21"])],
            ]),
        );
        assert!(r.refusals.is_empty(), "{:?}", r.refusals);
        let ips: Vec<Option<String>> = r.inventory.hosts.iter().map(|h| h.node_ip().map(|ip| ip.to_string())).collect();
        assert_eq!(ips, [Some("192.168.56.11".into()), Some("192.168.56.21".into())]);
        assert_eq!(r.inventory.cluster.control_plane_endpoint.to_string(), "192.168.56.11:6443");
        assert_eq!(
            r.node_ips[1],
            NodeIp { host: "n1".into(), interface: "eth1".into(), address: Some("192.168.56.21".into()) }
        );
    }

    #[test]
    fn a_missing_interface_or_address_refuses_naming_host_and_interface() {
        let r = resolve(
            &inventory(&["eth1", "eth1"]),
            &facts(&[&[("lo", &["127.0.0.1"]), ("eth0", &["10.0.2.15"])], &[("eth1", &[])]]),
        );
        let reasons: Vec<&str> = r.refusals.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "n0 has no interface `eth1` (it has eth0, lo)",
                "interface `eth1` of n1 has no IPv4 address (down, or not configured? `ip addr show eth1` there)"
            ]
        );
        let mut no_ip = facts(&[&[], &[]]);
        no_ip.hosts.values_mut().for_each(|f| f.interfaces = None);
        assert!(resolve(&inventory(&["eth1", "eth1"]), &no_ip).refusals[0].fix.contains("install iproute2 on n0"));
    }

    #[test]
    fn the_nat_interface_shared_by_every_machine_is_refused() {
        let r =
            resolve(&inventory(&["eth0", "eth0"]), &facts(&[&[("eth0", &["10.0.2.15"])], &[("eth0", &["10.0.2.15"])]]));
        assert_eq!(r.refusals.len(), 1);
        assert_eq!(r.refusals[0].reason, "n0, n1 all have the node IP 10.0.2.15");
    }

    #[test]
    fn offline_and_unreachable_hosts_are_not_read() {
        let inv = inventory(&["eth1"]);
        let offline = resolve(&inv, &ClusterFacts::assume_fresh(["n0"]));
        assert!(offline.refusals.is_empty());
        assert_eq!(offline.node_ips[0].address, None);
        assert_eq!(offline.inventory.hosts[0].node_address().as_deref(), Some("<IPv4 of eth1>"));
        let mut down = facts(&[&[]]);
        down.unreachable.insert("n0".into(), "no route".into());
        assert!(resolve(&inv, &down).refusals.is_empty());
    }

    #[test]
    fn a_plan_that_would_write_an_unread_address_is_refused() {
        let inv = inventory(&["eth1", "eth1"]);
        let mut facts = facts(&[&[("eth1", &["192.168.56.11"])], &[]]);
        facts.unreachable.insert("n1".into(), "no route to host".into());
        let plan = crate::plan::plan(&crate::plan::PlanInput {
            inventory: &inv,
            goal: &crate::goal::Goal::Converge,
            facts: &facts,
            templates: &crate::render::Templates::builtin(),
            bastion: &crate::plan::Bastion::default(),
            resume: None,
        })
        .unwrap();
        let reasons: Vec<&str> = plan.refusals.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(
            reasons,
            ["the plan needs the node IP of n1, the IPv4 address of `eth1` there, which could not be read"]
        );
        assert!(plan.steps.is_empty(), "a refused plan has no steps");
    }
}
