//! What a host finds when it dials an API server address, the way the real network would
//! answer: a name resolves through that host's own `/etc/hosts` (the bed has no DNS),
//! `127.0.0.1` is the host itself (its own API server, or the real haproxy of its local API
//! proxy, [`super::api_proxy`]), a node's address is that node's API server, and any other address (a load
//! balancer, a VIP) serves while some control plane does.
//!
//! Hosts are seen through the bed's read-only view of every host's files ([`PEERS_DIR`]), so
//! the same rules decide for this host and for a peer (whether a kubelet elsewhere can post
//! its node's status).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::cluster::{Cluster, PEERS_DIR, host_up};

/// The name this host runs under.
pub fn own_name() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// A file of `host` as that host sees it: its own overlay's copy (files a host never wrote
/// are the Debian root's, which know nothing of the bed). Outside a bed: this machine's file.
pub fn host_file(host: &str, path: &str) -> Option<String> {
    let peers = Path::new(PEERS_DIR);
    if !peers.exists() {
        return std::fs::read_to_string(path).ok();
    }
    std::fs::read_to_string(peers.join(host).join("upper").join(path.trim_start_matches('/'))).ok()
}

fn host_dir(host: &str) -> PathBuf {
    Path::new(PEERS_DIR).join(host)
}

/// The address `/etc/hosts` of `host` gives `name` (the first line naming it).
fn resolve(host: &str, name: &str) -> Option<String> {
    let text = host_file(host, "/etc/hosts")?;
    text.lines().find_map(|line| {
        let data = line.split('#').next().unwrap_or("");
        let mut fields = data.split_whitespace();
        let ip = fields.next()?;
        fields.any(|n| n.eq_ignore_ascii_case(name)).then(|| ip.to_string())
    })
}

pub fn kubelet_active(host: &str) -> bool {
    let peer = host_dir(host);
    if !peer.exists() {
        return true;
    }
    std::fs::read_to_string(peer.join("sim/host.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<super::host::HostState>(&t).ok())
        .is_some_and(|h| h.units.get("kubelet").is_some_and(|u| u.active))
}

/// A control plane's API server runs: its host is up, its kubelet active, its static pod
/// manifest in place, and the etcd member it talks to (kubeadm's `--etcd-servers` is the local
/// one) serves: the real etcd's `/health`, a quorum read, passes there.
pub fn apiserver_serving(c: &Cluster, node: &str) -> bool {
    if !c.nodes.get(node).is_some_and(|n| n.control_plane) {
        return false;
    }
    let peer = host_dir(node);
    if !peer.exists() {
        // Outside a bed (unit tests): trust the recorded state.
        return true;
    }
    host_up(node)
        && kubelet_active(node)
        && peer.join("upper/etc/kubernetes/manifests/kube-apiserver.yaml").exists()
        && super::etcd::member_serving(node)
}

/// How many `server` lines the configuration of `host`'s local API proxy has (the hostPath
/// volume ending in `.cfg` of its haproxy manifest), if it runs one.
fn configured_servers(host: &str) -> Option<usize> {
    let manifests = host_dir(host).join("upper/etc/kubernetes/manifests");
    let manifest = std::fs::read_to_string(super::api_proxy::manifest_in(&manifests)?).ok()?;
    let config_path = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path:"))
        .map(|p| p.trim().trim_matches('"').to_string())
        .find(|p| p.ends_with(".cfg"))?;
    let config = host_file(host, &config_path)?;
    Some(config.lines().filter(|l| l.split_whitespace().next() == Some("server")).count())
}

/// What `viewer` finds at its own `addr` (`127.0.0.1:PORT`) when no API server of its own
/// listens there: its local API proxy, the real haproxy ([`super::api_proxy`]). The host
/// itself asks through the network; a peer (judging whether that host's kubelet reaches the
/// API) goes by what the proxy's health checks last concluded, from its log. Outside a bed
/// (unit tests) no proxy runs: refused.
fn through_local_proxy(viewer: &str, addr: &str) -> Result<(), String> {
    let refused = || format!("dial tcp {addr}: connect: connection refused");
    if !Path::new(PEERS_DIR).exists() || !host_up(viewer) || !kubelet_active(viewer) {
        return Err(refused());
    }
    if viewer == own_name() {
        let port = addr.rsplit_once(':').map_or("443", |(_, p)| p);
        return super::api_proxy::request_readyz(&format!("127.0.0.1:{port}")).map(|_| ());
    }
    let configured = configured_servers(viewer).ok_or_else(refused)?;
    match super::api_proxy::servers_left(&host_dir(viewer).join("sim"), configured) {
        None => Err(refused()),
        // haproxy accepts, then finds no server up and closes the connection.
        Some(0) => Err(format!("read tcp 127.0.0.1:51234->{addr}: read: connection reset by peer")),
        Some(_) => Ok(()),
    }
}

/// The IP `viewer` dials for `addr` (`host:port`), or Go's lookup error.
pub fn resolve_address(viewer: &str, addr: &str) -> Result<String, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    match host.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_string()),
        Err(_) => {
            resolve(viewer, host).ok_or_else(|| format!("dial tcp: lookup {host} on 127.0.0.53:53: no such host"))
        }
    }
}

/// What dialing `addr` (`host:port`) from `viewer` ends with: Ok when an API server answers,
/// else the dial error as Go prints it.
pub fn dial(c: &Cluster, viewer: &str, addr: &str) -> Result<(), String> {
    let refused = || format!("dial tcp {addr}: connect: connection refused");
    let ip = resolve_address(viewer, addr)?;
    if !c.initialized {
        return Err(refused());
    }
    if ip == "127.0.0.1" {
        if apiserver_serving(c, viewer) {
            return Ok(());
        }
        return through_local_proxy(viewer, addr);
    }
    if dial_address(c, viewer, &format!("{ip}:6443")) { Ok(()) } else { Err(refused()) }
}

/// An API server answers at an IP address: the host's own when the address is a node's or a
/// bed host's, else (a load balancer or VIP) any control plane's.
fn dial_address(c: &Cluster, viewer: &str, addr: &str) -> bool {
    let ip = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let owner =
        c.nodes.iter().find(|(_, n)| n.address == ip).map(|(name, _)| name.clone()).or_else(|| bed_host_at(viewer, ip));
    match owner {
        Some(name) => apiserver_serving(c, &name),
        None => c.nodes.keys().any(|name| apiserver_serving(c, name)),
    }
}

/// The bed host with address `ip`, from the lines the bed wrote in `viewer`'s /etc/hosts.
fn bed_host_at(viewer: &str, ip: &str) -> Option<String> {
    let text = host_file(viewer, "/etc/hosts")?;
    text.lines().filter(|l| !l.contains('#')).find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next() == Some(ip)).then(|| f.find(|n| host_dir(n).exists()).map(str::to_string)).flatten()
    })
}

/// The `ip:port` a client on `viewer` really connects to for `addr`, where an API server
/// listens (whether or not its etcd serves: the real one listens, answers `/readyz` with 500
/// and times requests out): `127.0.0.1` is the host's own API server (the real one binds
/// every address; here it listens on its advertise address) or its local proxy; a node's
/// address is that node's; any other address (a load balancer, a VIP) is forwarded to a
/// control plane whose API server listens, as the balancer would. None: nothing listens.
pub fn dial_target(c: &Cluster, viewer: &str, addr: &str) -> Option<String> {
    let ip = resolve_address(viewer, addr).ok()?;
    let port = addr.rsplit_once(':').map_or("443", |(_, p)| p);
    let listening_at = |node: &str| -> Option<String> {
        if !host_up(node) {
            return None;
        }
        let status = std::fs::read_to_string(host_dir(node).join("sim").join(super::apiserver::POD_FILE)).ok()?;
        let status: super::apiserver::PodStatus = serde_json::from_str(&status).ok()?;
        (status.running && !status.address.is_empty()).then_some(status.address)
    };
    if ip == "127.0.0.1" {
        return listening_at(viewer).or_else(|| {
            super::api_proxy::manifest_in(&host_dir(viewer).join("upper/etc/kubernetes/manifests"))
                .map(|_| format!("127.0.0.1:{port}"))
        });
    }
    let owner = c
        .nodes
        .iter()
        .find(|(_, n)| n.address == ip)
        .map(|(name, _)| name.clone())
        .or_else(|| bed_host_at(viewer, &ip));
    match owner {
        Some(node) => listening_at(&node).map(|_| match ip.contains(':') {
            true => format!("[{ip}]:{port}"),
            false => format!("{ip}:{port}"),
        }),
        None => c.nodes.iter().filter(|(_, n)| n.control_plane).find_map(|(name, _)| listening_at(name)),
    }
}
