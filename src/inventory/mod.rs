//! The inventory: which hosts make up the cluster, how to reach them, and how the cluster
//! is configured. Loading it parses the YAML, checks every field, and reports every problem
//! at once with its `file:line:column`, field path, expectation and a hint.

pub mod checks;
pub mod kubespray;
mod raw;
pub mod vagrant;
mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::diag::{Diagnostic, Location};
use crate::duration::Duration;
use crate::source_map::{FieldPath, Segment, SourceMap};
use crate::version::Version;

/// A validated inventory. Every string in it has passed the checks in [`checks`].
#[derive(Debug, Clone, Serialize)]
pub struct Inventory {
    pub cluster: Cluster,
    pub ssh: SshDefaults,
    /// In inventory order: the first control plane here is the one `kubeadm init` runs on.
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    pub kubernetes_version: Version,
    pub control_plane_endpoint: Endpoint,
    pub load_balancer: LoadBalancer,
    pub network: Network,
    pub flannel: Flannel,
    pub containerd: Containerd,
    pub packages: Packages,
    pub sysctls: Sysctls,
    pub certificates: Certificates,
    pub upgrade: Upgrade,
    pub timeouts: Timeouts,
}

/// Where clients reach the API server: a load balancer or VIP, or the first control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// False when the inventory left it out and it defaults to the first control plane.
    pub explicit: bool,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// How the control-plane endpoint reaches the API servers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum LoadBalancer {
    /// The endpoint is a load balancer, VIP or DNS name the admin runs (or the first control
    /// plane when none is given).
    External,
    /// The endpoint is a name kubewright maps on every node (`/etc/hosts`): a control plane to
    /// itself, a worker to `127.0.0.1`, where an haproxy static pod forwards to every control
    /// plane that answers `/readyz`.
    Local { image: String },
}

impl LoadBalancer {
    pub fn is_local(&self) -> bool {
        matches!(self, LoadBalancer::Local { .. })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Network {
    pub pod_subnet: Ipv4Net,
    pub service_subnet: Ipv4Net,
    /// The prefix length of the pod range each node gets (`--node-cidr-mask-size`).
    pub node_cidr_mask_size: u8,
    pub dns_domain: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlannelBackend {
    Vxlan,
    HostGw,
}

impl FlannelBackend {
    /// The `Backend.Type` value of flannel's net-conf.json.
    pub fn net_conf_type(self) -> &'static str {
        match self {
            FlannelBackend::Vxlan => "vxlan",
            FlannelBackend::HostGw => "host-gw",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Flannel {
    pub backend: FlannelBackend,
    /// The interface flanneld binds to (`--iface`); per-host values override it.
    pub interface: Option<String>,
    pub version: String,
    pub cni_plugin_version: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Containerd {
    /// Major and minor version of the containerd the hosts run: 1.x reads config version 2,
    /// 2.x reads config version 3.
    pub version: (u32, u32),
    pub sandbox_image: String,
    pub systemd_cgroup: bool,
    /// Registry host → mirror URLs, tried in order.
    pub registry_mirrors: BTreeMap<String, Vec<String>>,
}

impl Containerd {
    pub fn config_version(&self) -> u32 {
        if self.version.0 >= 2 { 3 } else { 2 }
    }
}

/// The fingerprint of the key pkgs.k8s.io signs its repositories with (`isv:kubernetes OBS
/// Project`, rsa2048 of 2022-08-25; the same key for every minor's repository, re-signed
/// rather than replaced when it expired in 2024): `gpg --show-keys` of the v1.26 and v1.27
/// `Release.key` in kubernetes/kubernetes#128609, and kubernetes/release#3818 on its renewal.
pub const PKGS_K8S_IO_KEY_FINGERPRINT: &str = "DE15B14486CD377B9E876E1A234654DA9A296436";

#[derive(Debug, Clone, Serialize)]
pub struct Packages {
    /// Base URL of the Kubernetes package repository (`https://pkgs.k8s.io` or a mirror).
    pub mirror: String,
    /// The fingerprint (40 upper-case hex digits) the repository's signing key must have before
    /// it is trusted; None when pinning is off (`keyFingerprint: none`: then the key comes over
    /// https only).
    pub key_fingerprint: Option<String>,
    /// Write the apt source for the Kubernetes repository; off when hosts have their own.
    pub manage_repository: bool,
    pub containerd_package: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Sysctls {
    /// Apply the tuning set from the operator notes (inotify, buffers, backlogs).
    pub tuning: bool,
    pub extra: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Certificates {
    /// Renew when a certificate expires within this time.
    pub renew_before: Duration,
    /// Backups of the PKI kept on each control plane and on the bastion (`certs renew`).
    pub keep_backups: u32,
    /// The key type and lifetime of the CAs `certs init-ca` makes.
    pub ca_key_type: crate::pki::KeyType,
    pub ca_validity: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MaxUnavailable {
    Count(u32),
    Percent(u8),
}

impl MaxUnavailable {
    /// How many of `workers` may be drained at once: at least one, at most all.
    pub fn batch_size(self, workers: usize) -> usize {
        let n = match self {
            MaxUnavailable::Count(n) => n as usize,
            MaxUnavailable::Percent(p) => workers * p as usize / 100,
        };
        n.clamp(1, workers.max(1))
    }
}

impl fmt::Display for MaxUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaxUnavailable::Count(n) => write!(f, "{n}"),
            MaxUnavailable::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// How long work on a host may take before kubewright calls it failed. Nothing kubewright
/// starts runs unbounded: an unattended renewal must not hang with the cluster lock held.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Timeouts {
    /// Each command of a step, stopped by the host itself (coreutils `timeout`) after this long.
    pub command: Duration,
    /// Each wait: an API server ready, nodes Ready, an etcd member healthy, containers stopped.
    pub ready: Duration,
}

#[derive(Debug, Clone, Serialize)]
pub struct Upgrade {
    pub max_unavailable: MaxUnavailable,
    pub drain_timeout: Duration,
    pub drain_grace_period: Duration,
    /// Leave a node whose upgrade failed (or whose drain was blocked) cordoned; set by
    /// `kubewright upgrade --keep-cordoned`, never by the inventory.
    pub keep_cordoned: bool,
    /// A drain that disruption budgets block leaves that node out and the upgrade goes on;
    /// set by `kubewright upgrade --skip-blocked`, never by the inventory.
    pub skip_blocked: bool,
}

/// Which SSH implementation carries a run (inventory `ssh.transport`, or `--transport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    /// The system `ssh` (honours ~/.ssh/config, the agent, certificates)
    Openssh,
    /// In-process SSH (one task per host; ssh_config read through `ssh -G`, or parsed without ssh)
    Russh,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportKind::Openssh => "openssh",
            TransportKind::Russh => "russh",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SshDefaults {
    pub transport: TransportKind,
    pub known_hosts: Option<String>,
    pub connect_timeout: Duration,
    /// How long a connection may be silent before the server is asked to answer; three
    /// unanswered questions and the host counts as lost (ssh's ServerAliveInterval, with
    /// ServerAliveCountMax 3).
    pub server_alive_interval: Duration,
    pub bastion: Option<Bastion>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bastion {
    pub host: String,
    pub user: String,
    pub port: u16,
    pub identity_file: Option<String>,
}

/// How to log in to one host, with the inventory's defaults already applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostSsh {
    pub user: String,
    pub port: u16,
    /// The first private key offered (`identityFile`, or its list's first).
    pub identity_file: Option<String>,
    /// The keys after it, offered in order when the server refuses the ones before
    /// (`identityFile: [a, b, c]`: Vagrant lists a machine's own key, then its insecure
    /// ed25519 and RSA keys, and an old box accepts only the RSA one).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fallback_identity_files: Vec<String>,
    /// Run privileged commands through `sudo -n` (for non-root users).
    pub sudo: bool,
    /// Which of these the inventory itself gives. The others are kubewright's defaults (root,
    /// 22, become when not root), which the host's ssh_config overrides when it says otherwise
    /// (`ssh::config`).
    pub given: SshGiven,
}

/// What an inventory sets for a host's login (its `ssh` section or the host's own), as
/// opposed to what kubewright assumes when it is silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SshGiven {
    pub user: bool,
    pub port: bool,
    /// `become`, set for this host (by the host, or by the `ssh` section when the host does
    /// not name a user of its own).
    pub sudo: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    ControlPlane,
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ControlPlane => "control-plane",
            Role::Worker => "worker",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Taint {
    pub key: String,
    pub value: Option<String>,
    pub effect: TaintEffect,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    /// The Kubernetes node name (RFC 1123 subdomain).
    pub name: String,
    /// Where SSH connects: an IP address or a host name.
    pub address: String,
    /// The node's cluster-facing IP, when it differs from `address` (NAT, Vagrant): given in
    /// the inventory, or found on [`Host::internal_interface`] when the plan is made.
    pub internal_address: Option<IpAddr>,
    /// `internalAddress: {interface: NAME}`: the node IP is this interface's IPv4 address on
    /// the host, read with its facts (`plan::node_ips` fills `internal_address` from them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub internal_interface: Option<String>,
    pub roles: BTreeSet<Role>,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub ssh: HostSsh,
    /// Extra sysctls for this host, on top of the cluster's.
    pub sysctls: BTreeMap<String, String>,
    /// Overrides the cluster's flannel interface on this host.
    pub flannel_interface: Option<String>,
}

impl Host {
    pub fn is_control_plane(&self) -> bool {
        self.roles.contains(&Role::ControlPlane)
    }

    pub fn is_worker(&self) -> bool {
        self.roles.contains(&Role::Worker)
    }

    /// The IP the kubelet registers and the API server advertises: the internal address,
    /// else the SSH address when it is an IP. None means "let kubeadm detect it", or, for a
    /// host whose node IP is an interface's ([`Host::internal_interface`]), that it has not
    /// been read yet: never the SSH address then (behind NAT that is the bastion's view).
    pub fn node_ip(&self) -> Option<IpAddr> {
        match (&self.internal_interface, self.internal_address) {
            (_, Some(ip)) => Some(ip),
            (Some(_), None) => None,
            (None, None) => self.address.parse().ok(),
        }
    }

    /// The node IP as the files and commands kubewright renders say it: the IP, or for an
    /// interface's address not read yet (`plan --offline`, `render`) a placeholder naming the
    /// interface, `<IPv4 of eth1>`, so that no address is made up. None: kubeadm detects it.
    pub fn node_address(&self) -> Option<String> {
        match (&self.internal_interface, self.node_ip()) {
            (_, Some(ip)) => Some(ip.to_string()),
            (Some(interface), None) => Some(interface_placeholder(interface)),
            (None, None) => None,
        }
    }

    /// The node IP is an interface's address that has not been read from the host.
    pub fn node_ip_unresolved(&self) -> bool {
        self.internal_interface.is_some() && self.internal_address.is_none()
    }
}

/// What rendered files say in place of an interface's IPv4 address not read yet.
pub fn interface_placeholder(interface: &str) -> String {
    format!("<IPv4 of {interface}>")
}

impl Inventory {
    /// This inventory at another Kubernetes release (an upgrade's hop): the version, and the
    /// defaults that follow it (the sandbox image is kubeadm's pause of that release unless the
    /// inventory names one).
    pub fn at_version(&self, version: crate::version::Version) -> Inventory {
        let mut inv = self.clone();
        if inv.cluster.containerd.sandbox_image == self.cluster.kubernetes_version.pause_image() {
            inv.cluster.containerd.sandbox_image = version.pause_image();
        }
        inv.cluster.kubernetes_version = version;
        inv
    }

    pub fn control_planes(&self) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(|h| h.is_control_plane())
    }

    /// The host `kubeadm init` runs on. Validation guarantees there is one.
    pub fn first_control_plane(&self) -> &Host {
        self.control_planes().next().unwrap_or(&self.hosts[0])
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// This inventory with the node IPs read from the hosts (`found`: host name → the IPv4
    /// address of its `internalAddress.interface`), and the control-plane endpoint that
    /// follows from them when the inventory names none (the first control plane's node IP).
    /// Hosts not in `found` keep their placeholder.
    pub fn with_node_ips(&self, found: &BTreeMap<String, IpAddr>) -> Inventory {
        let mut inv = self.clone();
        for host in &mut inv.hosts {
            if host.internal_interface.is_some()
                && let Some(ip) = found.get(&host.name)
            {
                host.internal_address = Some(*ip);
            }
        }
        let endpoint = &mut inv.cluster.control_plane_endpoint;
        if !endpoint.explicit
            && !inv.cluster.load_balancer.is_local()
            && let Some(first) = inv.hosts.iter().find(|h| h.is_control_plane())
        {
            endpoint.host = validate::default_endpoint_host(first);
        }
        inv
    }
}

/// An inventory that loaded, with the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub inventory: Inventory,
    pub warnings: Vec<Diagnostic>,
}

/// The inventory could not be used: every problem found, errors first.
#[derive(Debug, thiserror::Error)]
#[error("inventory `{file}` is invalid ({} error{})", self.error_count(), if self.error_count() == 1 { "" } else { "s" })]
pub struct InventoryError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl InventoryError {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }
}

/// A diagnostic still addressed by field path; the loader turns it into `file:line:col`.
pub(crate) struct Finding {
    pub path: FieldPath,
    /// Point at the key (unknown fields) rather than the value.
    pub at_key: bool,
    pub diagnostic: Diagnostic,
}

/// Parse and validate an inventory. `file` is only used in messages.
pub fn load(file: &str, text: &str) -> Result<Loaded, InventoryError> {
    let fail = |diagnostics| InventoryError { file: file.to_string(), diagnostics };

    let mut unknown: Vec<FieldPath> = Vec::new();
    let parsed = serde_saphyr::with_deserializer_from_str(text, |de| {
        serde_ignored::deserialize(de, |path| unknown.push(ignored_path(&path)))
    });
    let raw: raw::RawInventory = match parsed {
        Ok(Some(raw)) => raw,
        // An empty document deserializes to nothing: report the missing sections below.
        Ok(None) => raw::RawInventory::default(),
        Err(err) => {
            let location = err.location().map(|l| Location { line: l.line() as usize, column: l.column() as usize });
            let path = location.and_then(|at| SourceMap::build(text).path_at(at)).unwrap_or_default();
            let mut d = Diagnostic::error(path, yaml_error_message(&err)).hint(
                "fix the YAML at the position shown; an inventory is a mapping with `cluster`, `ssh` and `hosts`",
            );
            d.file = file.to_string();
            d.location = location;
            return Err(fail(vec![d]));
        }
    };

    let mut findings: Vec<Finding> = unknown.into_iter().map(unknown_field).collect();
    let inventory = validate::validate(raw, &mut findings);

    let map = SourceMap::build(text);
    let mut diagnostics: Vec<Diagnostic> = findings
        .into_iter()
        .map(|f| {
            let mut d = f.diagnostic;
            d.file = file.to_string();
            d.location = if f.at_key { map.key_location(&f.path) } else { map.value_location(&f.path) };
            d.path = f.path.to_string();
            d
        })
        .collect();
    diagnostics.sort_by_key(|d| (d.severity, d.location));

    match inventory {
        Some(inventory) if !diagnostics.iter().any(Diagnostic::is_error) => {
            Ok(Loaded { inventory, warnings: diagnostics })
        }
        _ => Err(fail(diagnostics)),
    }
}

fn yaml_error_message(err: &serde_saphyr::Error) -> String {
    // The library's message carries its own snippet and position; ours come separately.
    let text = err.without_snippet().to_string();
    let first = text.lines().next().unwrap_or("invalid YAML").trim();
    let mut message = first.strip_prefix("error: ").unwrap_or(first).to_string();
    if let Some(cut) = message.rfind(" at line ") {
        message.truncate(cut);
    }
    // Keys are never allowed twice: say so without pointing at the library's options.
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        message = format!("duplicate key `{key}`: a key may appear only once in a mapping");
    }
    message
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> FieldPath {
    use serde_ignored::Path;
    match path {
        Path::Root => FieldPath::root(),
        Path::Seq { parent, index } => ignored_path(parent).index(*index),
        Path::Map { parent, key } => ignored_path(parent).key(key.clone()),
        Path::Some { parent } | Path::NewtypeStruct { parent } | Path::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn unknown_field(path: FieldPath) -> Finding {
    let key = path.last_key().unwrap_or_default().to_string();
    let parent_pattern: String = path
        .parent()
        .0
        .iter()
        .enumerate()
        .map(|(i, seg)| match seg {
            Segment::Key(k) if i == 0 => k.clone(),
            Segment::Key(k) => format!(".{k}"),
            Segment::Index(_) => "[]".to_string(),
        })
        .collect();
    let fields = raw::fields_at(&parent_pattern);
    let mut diagnostic = Diagnostic::error("", format!("unknown field `{key}`"));
    if fields.is_empty() {
        diagnostic = diagnostic.hint("nothing here takes fields: remove it, or check its indentation");
    } else {
        diagnostic = diagnostic
            .expected(format!("one of {}", fields.iter().map(|f| format!("`{f}`")).collect::<Vec<_>>().join(", ")));
    }
    if let Some(suggestion) = crate::diag::did_you_mean(&key, fields.iter().copied()) {
        diagnostic = diagnostic.hint(format!("did you mean `{suggestion}`?"));
    }
    Finding { path, at_key: true, diagnostic }
}
