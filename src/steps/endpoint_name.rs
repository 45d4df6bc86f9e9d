//! The control-plane endpoint's name under `loadBalancer.type: local`: every node resolves it
//! through a line of its own `/etc/hosts`, and what it maps to moves as the node joins.
//!
//! - A node that has not joined maps it to the first control plane: `kubeadm join` fetches the
//!   cluster's configuration and bootstraps the kubelet through the endpoint, before anything
//!   on the node could serve it.
//! - A control plane maps it to itself once it serves (the first one from the start).
//! - A worker maps it to `127.0.0.1` once its local API proxy answers there
//!   (`local-api-proxy`): the proxy is a static pod, which only runs after the join.

use crate::facts::{HOSTS_MARK, HostFacts};
use crate::inventory::{Host, Inventory, LoadBalancer};
use crate::plan::{Action, KubeconfigServer};
use crate::script::Script;

/// Where the local API proxy listens on a worker.
pub const LOCAL_PROXY_ADDRESS: &str = "127.0.0.1";

/// Rewrites the host's kubewright line for the name (`$2`) to the address (`$1`): every other
/// line stays as it is. Replaced by rename when /etc/hosts can be (a bind-mounted one cannot).
const MAP_NAME: &str = r#"set -eu; tmp=$(mktemp /etc/.hosts.kubewright.XXXXXX); { grep -v -F -e " $2 $3" /etc/hosts || true; printf '%s %s %s\n' "$1" "$2" "$3"; } > "$tmp"; chmod 0644 "$tmp"; mv -f "$tmp" /etc/hosts 2>/dev/null || { cat "$tmp" > /etc/hosts; rm -f "$tmp"; }"#;

/// The endpoint's name when kubewright maps it on the nodes.
pub fn local_name(inv: &Inventory) -> Option<&str> {
    matches!(inv.cluster.load_balancer, LoadBalancer::Local { .. })
        .then_some(inv.cluster.control_plane_endpoint.host.as_str())
}

/// The address a control plane serves the API on, as nodes reach it.
pub fn api_address(host: &Host) -> String {
    host.node_address().unwrap_or_else(|| host.address.clone())
}

/// An address as the host part of `host:port`: an IPv6 address in brackets.
pub fn bracketed(address: &str) -> String {
    if address.contains(':') { format!("[{address}]") } else { address.to_string() }
}

/// `host`'s own API server as `address:6443`: a URL's authority, and what `openssl s_client
/// -connect` takes.
pub fn api_authority(host: &Host) -> String {
    format!("{}:6443", bracketed(&api_address(host)))
}

/// What a node not yet joined resolves the name to: the first control plane.
pub fn bootstrap_address(inv: &Inventory) -> String {
    api_address(inv.first_control_plane())
}

/// The action that makes `host` resolve the endpoint's name to `address`; None when it already
/// does. A line kubewright did not write that maps the name elsewhere is a problem: it comes
/// first, so the resolver would keep using it.
pub fn map_to(inv: &Inventory, host: &Host, facts: &HostFacts, address: &str) -> Result<Option<Action>, String> {
    let Some(name) = local_name(inv) else { return Ok(None) };
    let current = facts.etc_hosts.get(&name.to_ascii_lowercase());
    match current {
        Some(entry) if entry.ip == address => Ok(None),
        Some(entry) if !entry.managed => Err(format!(
            "/etc/hosts maps {name} to {} on a line kubewright did not write; remove that line (kubewright maps the name on every node)",
            entry.ip
        )),
        _ => {
            let whom = if address == LOCAL_PROXY_ADDRESS {
                "the local API proxy".to_string()
            } else if let Some(cp) = inv.control_planes().find(|cp| api_address(cp) == address) {
                if cp.name == host.name {
                    "this control plane".to_string()
                } else {
                    format!("control plane {}", cp.name)
                }
            } else {
                address.to_string()
            };
            let was = current.map(|e| format!(" (was {})", e.ip)).unwrap_or_default();
            Ok(Some(Action::Run {
                description: format!("resolve {name} to {address}, {whom}, in /etc/hosts{was}"),
                commands: Script::new().cmd(["sh", "-c", MAP_NAME, "sh", address, name, HOSTS_MARK]),
            }))
        }
    }
}

/// The server the bastion's admin kubeconfig uses: the first control plane, with the
/// endpoint's name for the certificate check, when only the nodes resolve that name. The
/// bastion reaches it at its SSH address, unless that is a loopback address: a port forwarded
/// for SSH alone (VirtualBox's `127.0.0.1:2222`) leads nowhere on 6443, so the node IP (the
/// machine's private network, which the Vagrant host shares) is the one that serves the API.
pub fn bastion_kubeconfig_server(inv: &Inventory) -> Option<KubeconfigServer> {
    let name = local_name(inv)?;
    let first = inv.first_control_plane();
    let forwarded = first.address.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let address = match first.node_ip() {
        Some(node_ip) if forwarded => node_ip.to_string(),
        _ => first.address.clone(),
    };
    Some(KubeconfigServer {
        server: format!("https://{}:{}", bracketed(&address), inv.cluster.control_plane_endpoint.port),
        tls_server_name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn inventory(first: &str) -> Inventory {
        let text = format!(
            "cluster: {{name: c, kubernetesVersion: 1.31.4, controlPlaneEndpoint: api.c.internal, loadBalancer: {{type: local}}}}\nhosts:\n  - {{name: cp1, {first}, roles: [control-plane]}}\n  - {{name: cp2, address: 192.168.56.12, roles: [control-plane]}}\n"
        );
        crate::inventory::load("inv.yaml", &text).unwrap().inventory
    }

    #[test]
    fn the_bastion_reaches_the_api_at_the_ssh_address_unless_that_is_a_forwarded_loopback_port() {
        let server = |first: &str| bastion_kubeconfig_server(&inventory(first)).unwrap();
        let direct = server("address: 10.0.0.11, internalAddress: 172.16.0.11");
        assert_eq!(
            (direct.server.as_str(), direct.tls_server_name.as_str()),
            ("https://10.0.0.11:6443", "api.c.internal")
        );
        let virtualbox = server("address: 127.0.0.1, ssh: {port: 2222}, internalAddress: 192.168.56.11");
        assert_eq!(virtualbox.server, "https://192.168.56.11:6443");
        let v6 = server("address: '::1', ssh: {port: 2222}, internalAddress: 'fd00::11'");
        assert_eq!(v6.server, "https://[fd00::11]:6443");
        // No node IP known (kubeadm detects it): the SSH address is all there is.
        assert_eq!(server("address: 127.0.0.1").server, "https://127.0.0.1:6443");
    }

    #[test]
    fn a_control_planes_own_api_server_is_its_node_address_and_6443_bracketed_when_ipv6() {
        let authority = |first: &str| api_authority(inventory(first).first_control_plane());
        assert_eq!(authority("address: 10.0.0.11, internalAddress: 172.16.0.11"), "172.16.0.11:6443");
        assert_eq!(authority("address: 10.0.0.11"), "10.0.0.11:6443");
        assert_eq!(authority("address: 10.0.0.11, internalAddress: 'fd00::11'"), "[fd00::11]:6443");
    }
}
