//! Facts: what is on the hosts now. Gathered read-only over SSH (one batched command per
//! host) or, for `plan --offline`, assumed: every host fresh.
//!
//! Facts are plain data: the planner reads them and never changes them.

pub mod gather;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::version::Version;

/// What one host looks like now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostFacts {
    /// Current content of each file kubewright manages that exists on the host.
    pub files: BTreeMap<String, String>,
    /// Installed versions of kubeadm, kubelet and kubectl.
    pub packages: BTreeMap<String, Version>,
    pub containerd_installed: bool,
    pub swap_active: bool,
    pub swap_in_fstab: bool,
    pub modules: BTreeSet<String>,
    /// `/etc/kubernetes/kubelet.conf` exists: the node has joined a cluster.
    pub joined: bool,
    /// Packages on hold (`apt-mark hold`).
    #[serde(default)]
    pub held: BTreeSet<String>,
    /// Which of the packages facts ask dpkg about (`facts::gather::PACKAGES`) are installed.
    #[serde(default)]
    pub installed: BTreeSet<String>,
    /// Which of the programs kubewright's steps run (`plan::TOOLS`) the host has; None where
    /// not asked (facts recorded by an older kubewright).
    #[serde(default)]
    pub tools: Option<BTreeSet<String>>,
    /// `/etc/kubernetes/admin.conf` exists (a control plane that was initialised or joined).
    #[serde(default)]
    pub admin_conf: bool,
    /// The Kubernetes repository's signing key is installed (non-empty keyring).
    #[serde(default)]
    pub apt_keyring: bool,
    /// os-release(5) `ID` and `VERSION_ID` (`debian`, `12`); empty when unknown.
    #[serde(default)]
    pub os_id: String,
    #[serde(default)]
    pub os_version: String,
    /// `uname -m`.
    #[serde(default)]
    pub arch: String,
    #[serde(default)]
    pub hostname: String,
    /// MAC addresses of the host's network interfaces (loopback excluded).
    #[serde(default)]
    pub macs: BTreeSet<String>,
    /// The IPv4 addresses of the host's interfaces (`ip -o -4 addr`); empty when unknown.
    #[serde(default)]
    pub ipv4_addresses: BTreeSet<std::net::Ipv4Addr>,
    /// Every network interface of the host (loopback included) with its IPv4 addresses, in
    /// the order `ip -o -4 addr` lists them (an interface's primary address first); None where
    /// not read (no `ip`, or facts recorded by an older kubewright). A node IP given as
    /// `internalAddress: {interface: NAME}` is read here.
    #[serde(default)]
    pub interfaces: Option<BTreeMap<String, Vec<std::net::Ipv4Addr>>>,
    /// SMBIOS product_uuid; empty where the machine has none.
    #[serde(default)]
    pub product_uuid: String,
    /// Online CPUs (`nproc`) and total memory in MiB (`/proc/meminfo`); 0 when unknown.
    #[serde(default)]
    pub cpus: u32,
    #[serde(default)]
    pub memory_mb: u64,
    /// TCP ports something listens on (`ss -ltn`).
    #[serde(default)]
    pub listening_ports: BTreeSet<u16>,
    /// Firewall services that are active (`firewalld`, `iptables`, `nftables`, `ufw`).
    #[serde(default)]
    pub active_firewalls: BTreeSet<String>,
    /// Which of containerd and the kubelet are running (`systemctl is-active`).
    #[serde(default)]
    pub active_services: BTreeSet<String>,
    /// The host's clock (`date +%s`) when the facts were read.
    #[serde(default)]
    pub host_time: u64,
    /// Host clock minus the bastion's, in seconds, measured when the facts arrived (None:
    /// not measured).
    #[serde(default)]
    pub clock_skew_s: Option<i64>,
    /// What `/etc/hosts` maps each name to (lower-cased), as the resolver reads it.
    #[serde(default)]
    pub etc_hosts: BTreeMap<String, HostsEntry>,
    /// The live value of each key kubewright's sysctl file sets (whitespace collapsed, as the
    /// file writes it); a key the kernel does not have is absent.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// The certificates kubeadm and the kubelet keep, by path (for a kubeconfig: its embedded
    /// client certificate).
    #[serde(default)]
    pub certificates: BTreeMap<String, crate::pki::Certificate>,
    /// Files where kubeadm and the kubelet keep certificates that are not one (a DER file, an
    /// empty one, garbage), by path, with why: reported as broken, never a reason the host's
    /// facts cannot be read.
    #[serde(default)]
    pub unreadable_certificates: BTreeMap<String, String>,
    /// The CA certificates (paths) whose private key is on the host.
    #[serde(default)]
    pub ca_keys: BTreeSet<String>,
    /// When the running kube-apiserver started (Unix time); None when none runs (or no crictl).
    #[serde(default)]
    pub apiserver_started: Option<i64>,
    /// The serials of the certificate the local kube-apiserver presents and of its file (the
    /// manifest's `--tls-cert-file`); None where no API server manifest is, or no openssl. A
    /// server that did not answer has an empty `served`.
    #[serde(default)]
    pub apiserver_certificate: Option<ServedCertificate>,
    /// `rotateCertificates` of the kubelet's configuration; None when not set or not read.
    #[serde(default)]
    pub kubelet_rotation: Option<bool>,
    /// The kubelet's serving certificate is not its self-signed `kubelet.crt`: its
    /// configuration sets `serverTLSBootstrap: true` or a `tlsCertFile`.
    #[serde(default)]
    pub kubelet_serving_configured: bool,
    /// A renewal renewed this control plane's files after they had expired and its static pods
    /// have not restarted since (`/var/lib/kubewright/restart-pending`).
    #[serde(default)]
    pub restart_pending: bool,
    /// The local etcd member's answer to `etcdctl endpoint health`; None where not asked (no
    /// member, no etcdctl).
    #[serde(default)]
    pub etcd_health: Option<EtcdHealth>,
    /// The local etcd member, from its static pod manifest; None on hosts without one.
    #[serde(default)]
    pub etcd_member: Option<EtcdMember>,
    /// What kubewright applied to the cluster from this host, by record name: the SHA-256 of
    /// the manifest, written only once `kubectl apply` succeeded (see [`APPLIED_DIR`]).
    #[serde(default)]
    pub applied: BTreeMap<String, String>,
}

/// What the local etcd member answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum EtcdHealth {
    Healthy,
    /// With the first line etcdctl printed.
    Unhealthy {
        why: String,
    },
}

/// A control plane's etcd member, as its manifest's command sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EtcdMember {
    /// `--name` (kubeadm: the node's name).
    pub name: String,
    /// `--initial-advertise-peer-urls` (`https://10.0.0.11:2380`).
    pub peer_url: String,
    /// `--data-dir` (kubeadm: `etcd.local.dataDir`, `/var/lib/etcd` by default).
    pub data_dir: String,
    /// The manifest is parked in [`PARKED_MANIFESTS`] by a restore that has not finished.
    pub parked: bool,
    /// The etcd image the manifest runs (`registry.k8s.io/etcd:3.5.15-0`): where `etcdutl`
    /// comes from when the member itself does not run. Empty in facts of older kubewrights.
    #[serde(default)]
    pub image: String,
}

/// Where `kubewright etcd restore` keeps the control plane's static pod manifests while the
/// components are stopped (outside the kubelet's manifest directory).
pub const PARKED_MANIFESTS: &str = "/etc/kubewright/restore/manifests";

/// Where a host keeps the records of manifests applied from it, one file per manifest.
pub const APPLIED_DIR: &str = "/etc/kubewright/applied";

/// Ends the `/etc/hosts` lines kubewright writes (and only those it removes).
pub const HOSTS_MARK: &str = "# kubewright";

/// The first `/etc/hosts` line that names a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostsEntry {
    pub ip: String,
    /// The line is kubewright's (ends with [`HOSTS_MARK`]).
    pub managed: bool,
}

impl HostFacts {
    /// A host nothing was done to: no packages, no files, swap possibly on. The offline
    /// plan assumes this for every host, so it shows every change an install can make.
    pub fn fresh() -> Self {
        HostFacts {
            files: BTreeMap::new(),
            packages: BTreeMap::new(),
            containerd_installed: false,
            swap_active: true,
            swap_in_fstab: true,
            modules: BTreeSet::new(),
            joined: false,
            held: BTreeSet::new(),
            installed: BTreeSet::new(),
            tools: None,
            admin_conf: false,
            apt_keyring: false,
            os_id: String::new(),
            os_version: String::new(),
            arch: String::new(),
            hostname: String::new(),
            macs: BTreeSet::new(),
            ipv4_addresses: BTreeSet::new(),
            interfaces: None,
            product_uuid: String::new(),
            cpus: 0,
            memory_mb: 0,
            listening_ports: BTreeSet::new(),
            active_firewalls: BTreeSet::new(),
            active_services: BTreeSet::new(),
            host_time: 0,
            clock_skew_s: None,
            etc_hosts: BTreeMap::new(),
            sysctls: BTreeMap::new(),
            certificates: BTreeMap::new(),
            unreadable_certificates: BTreeMap::new(),
            applied: BTreeMap::new(),
            ca_keys: BTreeSet::new(),
            apiserver_started: None,
            apiserver_certificate: None,
            kubelet_rotation: None,
            kubelet_serving_configured: false,
            restart_pending: false,
            etcd_member: None,
            etcd_health: None,
        }
    }
}

/// Where a renewal of certificates that had expired marks a control plane whose files it
/// renewed and whose static pods have yet to restart (`restart-static-pods` removes it).
pub const RESTART_PENDING: &str = "/var/lib/kubewright/restart-pending";

/// The certificate a server presents and the one on disk, by serial (as `openssl x509
/// -serial` prints them): a server that did not restart since its file was renewed still
/// presents the old one (components read their certificates when they start).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedCertificate {
    pub served: String,
    pub file: String,
}

impl ServedCertificate {
    /// The server presents an older (or another) certificate than its file.
    pub fn stale(&self) -> bool {
        !self.served.is_empty() && self.served != self.file
    }
}

/// Facts for every host of an inventory, by host name, and of the cluster they form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ClusterFacts {
    pub hosts: BTreeMap<String, HostFacts>,
    /// True when nothing was gathered and every host is assumed fresh.
    pub assumed_fresh: bool,
    /// The bastion has the cluster's admin kubeconfig in its state directory.
    #[serde(default)]
    pub bastion_kubeconfig: bool,
    /// What the API server says, asked through the first control plane that answers; None
    /// when no control plane was initialized or none answered.
    #[serde(default)]
    pub cluster: Option<ClusterView>,
    /// Hosts that could not be read, and why, when the run allows it (the node `remove-node`
    /// takes out may be dead); their `hosts` entry is a fresh host's.
    #[serde(default)]
    pub unreachable: BTreeMap<String, String>,
    /// What the package repository of each minor offers, as the first control plane's apt
    /// reads it; None where the goal did not need it (only an upgrade asks).
    #[serde(default)]
    pub releases: Option<Releases>,
}

/// The releases each minor's package repository offers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Releases {
    /// Minor → releases offered, newest first (empty: none, or unreadable).
    pub offered: BTreeMap<u32, Vec<Version>>,
    /// Why each repository that could not be read could not.
    pub unreadable: Vec<String>,
}

/// The cluster as its API server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// The control plane that answered.
    pub answered_by: String,
    pub nodes: BTreeMap<String, NodeView>,
    /// The ClusterConfiguration kubeadm keeps in the `kubeadm-config` ConfigMap (YAML).
    pub kubeadm_config: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// `v1.31.4`, as the kubelet registered.
    pub kubelet_version: String,
    pub ready: bool,
    pub unschedulable: bool,
    /// Cordoned by a drain of kubewright's (its annotation), not by an admin.
    #[serde(default)]
    pub cordoned_by_kubewright: bool,
}

impl NodeView {
    /// The kubelet's version as a release (`v1.31.4` → 1.31.4); None when it reports something else.
    pub fn kubelet(&self) -> Option<crate::version::Version> {
        self.kubelet_version.trim_start_matches('v').parse().ok()
    }
}

impl ClusterFacts {
    pub fn assume_fresh<'a>(host_names: impl IntoIterator<Item = &'a str>) -> Self {
        ClusterFacts {
            hosts: host_names.into_iter().map(|n| (n.to_string(), HostFacts::fresh())).collect(),
            assumed_fresh: true,
            bastion_kubeconfig: false,
            cluster: None,
            unreachable: BTreeMap::new(),
            releases: None,
        }
    }

    pub fn host(&self, name: &str) -> Option<&HostFacts> {
        self.hosts.get(name)
    }
}
