//! What the API server and etcd would hold, shared by every host of a bed: nodes, their
//! versions and conditions, cordons, pods and disruption budgets, bootstrap tokens,
//! uploaded certificates, the kubeadm-config, and an event log tests assert on.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::CLUSTER_STATE_DIR;
use super::host::write_atomic;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Node {
    pub control_plane: bool,
    /// The kubelet's version as it last registered (`v1.31.4`).
    pub kubelet_version: String,
    pub kubelet_running: bool,
    pub unschedulable: bool,
    pub address: String,
    pub labels: BTreeMap<String, String>,
    /// `key[=value]:Effect`
    pub taints: Vec<String>,
    pub created_unix: i64,
    /// `kubectl annotate`'s (the registration's own are added when shown).
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub id: String,
    pub secret: String,
    pub expires_unix: i64,
}

/// The `kubeadm-certs` Secret: the shared CA material, encrypted with the certificate key
/// (here: kept with the key's hash, which is what decides success or "message authentication failed").
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadedCerts {
    pub key_sha256: String,
    pub expires_unix: i64,
    pub files: BTreeMap<String, String>,
}

/// A pod of a workload (static and DaemonSet pods are derived, not stored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    /// `ReplicaSet` (from a Deployment), or empty for a bare pod.
    pub owner: String,
    pub labels: BTreeMap<String, String>,
    pub empty_dir: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub namespace: String,
    pub name: String,
    pub selector: BTreeMap<String, String>,
    pub min_available: Option<u32>,
    pub max_unavailable: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub at_unix: i64,
    pub what: String,
    pub node: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Cluster {
    pub initialized: bool,
    pub cluster_name: String,
    /// The control plane's version (`v1.31.4`), as in ClusterConfiguration.
    pub kubernetes_version: String,
    /// host:port clients use (controlPlaneEndpoint, or the first control plane's address).
    pub endpoint: String,
    /// Addresses of the API servers that are running (endpoint reachability).
    pub apiservers: Vec<String>,
    pub cluster_config_yaml: String,
    pub ca_pin: String,
    pub nodes: BTreeMap<String, Node>,
    pub tokens: Vec<Token>,
    pub uploaded_certs: Option<UploadedCerts>,
    pub etcd_members: Vec<String>,
    pub cni_applied: bool,
    /// Manifests applied with kubectl: "kind/namespace/name" → content hash.
    pub applied: BTreeMap<String, String>,
    #[serde(default)]
    pub pods: Vec<Pod>,
    #[serde(default)]
    pub budgets: Vec<Budget>,
    pub events: Vec<Event>,
    /// Added to the real clock everywhere in the simulator (to age certificates in tests).
    pub clock_offset_seconds: i64,
    /// Which restore of etcd the members' data comes from (`--initial-cluster-token`; empty:
    /// the cluster `kubeadm init` made). A member whose data directory holds another one is no
    /// part of this cluster (etcd refuses it: cluster ID mismatch).
    #[serde(default)]
    pub etcd_generation: String,
    /// An etcd restore under way: the members `snapshot restore` recreated, until a quorum of
    /// them runs from the restored data.
    #[serde(default)]
    pub pending_restore: Option<PendingRestore>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingRestore {
    pub token: String,
    pub members: Vec<String>,
}

impl Cluster {
    pub fn event(&mut self, what: &str, node: &str) {
        let at_unix = now_unix_with(self.clock_offset_seconds);
        self.events.push(Event { at_unix, what: what.to_string(), node: node.to_string() });
    }

    /// Ready: the kubelet runs with its configuration, the pod network is applied, the node's
    /// host is up (a crashed or cut-off node stops posting status), and its kubelet reaches an
    /// API server through the endpoint, as that node resolves it.
    pub fn node_ready(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|n| n.kubelet_running && self.cni_applied)
            && host_up(name)
            && super::reach::dial(self, name, &self.endpoint).is_ok()
    }
}

/// Where every host's files can be read (read-only), by host name.
pub const PEERS_DIR: &str = "/var/lib/kubewright-sim-peers";

/// Whether a peer host is up and reachable (always true outside a bed).
pub fn host_up(name: &str) -> bool {
    let status = std::path::Path::new(PEERS_DIR).join(name).join("status");
    std::fs::read_to_string(status).map(|s| s.trim() == "up").unwrap_or(true)
}

/// Is an API server serving at `addr` (`host:port`), as this host dials it? See
/// [`super::reach`].
pub fn apiserver_up(c: &Cluster, addr: &str) -> bool {
    super::reach::dial(c, &super::reach::own_name(), addr).is_ok()
}

pub fn state_dir() -> PathBuf {
    std::env::var_os("KUBEWRIGHT_SIM_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(CLUSTER_STATE_DIR))
}

/// Run `f` on the cluster state under the cluster lock, saving it afterwards.
pub fn with_cluster<R>(f: impl FnOnce(&mut Cluster) -> anyhow::Result<R>) -> anyhow::Result<R> {
    with_cluster_in(&state_dir(), f)
}

/// [`with_cluster`] on the state in `dir` (the harness, outside the hosts).
pub fn with_cluster_in<R>(
    dir: &std::path::Path,
    f: impl FnOnce(&mut Cluster) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    std::fs::create_dir_all(dir)?;
    let lock = File::create(dir.join("cluster.lock")).context("cannot open the cluster lock")?;
    lock.lock().context("cannot lock the cluster state")?;
    let path = dir.join("cluster.json");
    let mut state: Cluster = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).context("cluster.json is damaged")?,
        Err(_) => Cluster::default(),
    };
    let result = f(&mut state)?;
    write_atomic(&path, &serde_json::to_vec_pretty(&state)?)?;
    Ok(result)
}

/// The cluster state without locking (for read-only commands).
pub fn read_cluster() -> Cluster {
    std::fs::read_to_string(state_dir().join("cluster.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn now_unix_with(offset: i64) -> i64 {
    let real =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    real + offset
}

/// The simulator's clock: real time plus the bed's offset.
pub fn now_unix() -> i64 {
    now_unix_with(read_cluster().clock_offset_seconds)
}
