//! The kube-apiserver static pod as a real TLS server (issue 22, first milestone).
//!
//! While a control plane's `kube-apiserver.yaml` is in place and its kubelet active, the
//! host's init runs this server in its network namespace, on the manifest's
//! `--advertise-address` and `--secure-port`, with rustls (ring) and hyper. It serves the
//! `--tls-cert-file`/`--tls-private-key-file` and follows them when they change, as the real
//! server does (k8s.io/apiserver `SecureServingOptions.ApplyTo`:
//! `dynamiccertificates.NewDynamicServingContentFromFiles`); it trusts the `--client-ca-file`
//! as it was when the pod started (the real one follows that file too; the bed never changes
//! it under a running server). A changed manifest, or one moved out and back, is a new
//! container: what a restart changes on a real control plane is what components read only at
//! their start (the controller manager's and scheduler's kubeconfigs, the API server's etcd and
//! kubelet client certificates; kubernetes/kubeadm#2752).
//!
//! Authentication is the real server's union (k8s.io/apiserver pkg/authentication, kubeadm's
//! flags): x509 client certificates asked for but not required in the handshake (Go's
//! `tls.RequestClientCert`, k8s.io/apiserver pkg/server/secure_serving.go) and verified
//! afterwards against the client CA with the validity period checked (pkg/authentication/
//! request/x509/x509.go), bootstrap tokens (`--enable-bootstrap-token-auth`,
//! plugin/pkg/auth/authenticator/token/bootstrap), and anonymous requests, which only a
//! request without credentials becomes (`union.NewFailOnError` in pkg/kubeapiserver/
//! authenticator/config.go: a bad certificate or token is a 401, never anonymous).
//! Authorization is the part of kubeadm's RBAC and the Node authorizer these endpoints need
//! (see [`allowed`]).
//!
//! Its answers come from the simulator's cluster state (one truth: what the simulated kubectl
//! prints is what this server serves), read from etcd per request; it serves only while its
//! own etcd member does ([`super::etcd::member_serving`]), as kubeadm's
//! `--etcd-servers=https://127.0.0.1:2379` makes it.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use serde_json::{Value, json};

use super::cluster::Cluster;

/// The kube-apiserver static pod's manifest.
pub const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// What the runner last did (the served certificate's serial among it), in the host's
/// simulator state.
pub const POD_FILE: &str = "kube-apiserver-pod.json";
/// The server's log, beside etcd's.
const LOG_FILE: &str = "kube-apiserver.log";
/// A fault (`Testbed::orphan_apiserver_on_next_stop`): when this file is in the host's
/// simulator state, the next stop loses the server instead of stopping it. The runtime believes
/// the container gone (a containerd-shim that lost its process, as after a runtime crash), the
/// process keeps its port and its certificate, and the new container cannot bind until the
/// orphan is killed (`Testbed::kill_orphaned_apiserver`: [`KILL_ORPHAN_FILE`]).
pub const ORPHAN_ON_NEXT_STOP_FILE: &str = "kube-apiserver-orphan-on-next-stop";
pub const KILL_ORPHAN_FILE: &str = "kube-apiserver-kill-orphan";

/// The API server pod as the runner last left it.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct PodStatus {
    /// Whether it listens.
    pub running: bool,
    /// Its container (the manifest's content and change time).
    pub container: String,
    /// `host:port` it listens on.
    pub address: String,
    /// The serial of the serving certificate it presents (hex, as `openssl x509 -serial` prints
    /// it): its file's, as last loaded.
    pub serving_serial: String,
    /// The serving certificate's `notAfter` (unix seconds).
    #[serde(default)]
    pub serving_not_after: i64,
    /// When it started (unix seconds, real clock).
    pub started_unix: i64,
}

/// The API server pod's state on this host.
pub fn pod_status() -> PodStatus {
    std::fs::read_to_string(super::host::state_dir().join(POD_FILE))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A line in the server's log (`kube-apiserver.log` in the host's simulator state).
fn log(state_dir: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(state_dir.join(LOG_FILE)) {
        let _ = writeln!(f, "{} {line}", now_unix());
    }
}

/// A running server: its container, and how to stop it.
struct Running {
    container: String,
    served: Arc<ServedCertificate>,
    status: PodStatus,
    /// `status` changed since it was saved.
    status_changed: bool,
    stop: tokio::sync::watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
}

/// The kubelet's part for the kube-apiserver static pod, driven by the host's init with the
/// etcd runner: start the server while the manifest is in place and the kubelet active, stop
/// it (closing its listener and connections) when either goes, and start a new one when the
/// manifest changes. A server that cannot start (a certificate missing or unreadable, its
/// address not on this host) is tried again after a back-off, as the kubelet restarts a
/// crashing container (1 s doubling to 8 s here; 10 s to 5 min there).
pub struct PodRunner {
    node: String,
    state_dir: PathBuf,
    running: Option<Running>,
    /// Servers the runtime lost track of, still serving ([`ORPHAN_ON_NEXT_STOP_FILE`]).
    orphans: Vec<Running>,
    failed: Option<(String, Instant, Duration)>,
}

impl PodRunner {
    /// A runner on a host that just booted (`node`: its name): nothing runs yet.
    pub fn boot(node: &str) -> Self {
        let runner = PodRunner {
            node: node.to_string(),
            state_dir: super::host::state_dir(),
            running: None,
            orphans: Vec::new(),
            failed: None,
        };
        runner.save(&PodStatus::default());
        runner
    }

    pub fn reconcile(&mut self) {
        // The serving certificate follows its files, in every server still running (an orphan
        // too: it is the same program).
        for running in self.running.iter_mut().chain(self.orphans.iter_mut()) {
            match running.served.reload_if_changed() {
                Ok(None) => {}
                Ok(Some((serial, not_after))) => {
                    log(
                        &self.state_dir,
                        &format!(
                            "kube-apiserver (container {}) now serves certificate serial {serial}",
                            running.container
                        ),
                    );
                    running.status.serving_serial = serial;
                    running.status.serving_not_after = not_after;
                    running.status_changed = true;
                }
                Err(e) => log(
                    &self.state_dir,
                    &format!("kube-apiserver keeps its certificate: the changed files do not load: {e:#}"),
                ),
            }
        }
        if let Some(running) = self.running.as_mut().filter(|r| r.status_changed) {
            running.status_changed = false;
            let status = running.status.clone();
            self.save(&status);
        }
        if std::fs::remove_file(self.state_dir.join(KILL_ORPHAN_FILE)).is_ok() {
            for orphan in self.orphans.drain(..) {
                let _ = orphan.stop.send(true);
                let _ = orphan.thread.join();
                log(&self.state_dir, &format!("killed the orphaned kube-apiserver (container {})", orphan.container));
            }
        }
        let pod = super::pod::static_pod(Path::new(MANIFEST), &self.state_dir);
        let container = pod.as_ref().map(|(_, c)| c.clone());
        if let Some(running) = &self.running {
            if container.as_deref() == Some(running.container.as_str()) {
                return;
            }
            self.stop();
        }
        let Some((manifest, container)) = pod else { return };
        if let Some((failed, at, backoff)) = &self.failed
            && *failed == container
            && at.elapsed() < *backoff
        {
            return;
        }
        match self.start(&String::from_utf8_lossy(&manifest), &container) {
            Ok(running) => {
                self.failed = None;
                self.running = Some(running);
            }
            Err(e) => {
                log(&self.state_dir, &format!("kube-apiserver (container {container}) cannot start: {e:#}"));
                let backoff = match &self.failed {
                    Some((c, _, b)) if *c == container => (*b * 2).min(Duration::from_secs(8)),
                    _ => Duration::from_secs(1),
                };
                self.failed = Some((container, Instant::now(), backoff));
            }
        }
    }

    fn stop(&mut self) {
        if let Some(running) = self.running.take() {
            if std::fs::remove_file(self.state_dir.join(ORPHAN_ON_NEXT_STOP_FILE)).is_ok() {
                log(
                    &self.state_dir,
                    &format!(
                        "the runtime lost kube-apiserver (container {}): its process keeps serving",
                        running.container
                    ),
                );
                self.orphans.push(running);
                self.save(&PodStatus::default());
                return;
            }
            let _ = running.stop.send(true);
            let _ = running.thread.join();
            log(&self.state_dir, &format!("stopped kube-apiserver (container {})", running.container));
            self.save(&PodStatus::default());
        }
    }

    /// Load what the manifest names, bind, and serve on a thread of its own.
    fn start(&self, manifest: &str, container: &str) -> anyhow::Result<Running> {
        let flags = super::etcd::manifest_flags(manifest);
        let flag = |name: &str| {
            flags
                .iter()
                .find_map(|f| f.strip_prefix(&format!("--{name}=")).map(str::to_string))
                .with_context(|| format!("the manifest has no --{name}"))
        };
        let advertise = flag("advertise-address")?;
        let port: u16 = flag("secure-port").ok().and_then(|p| p.parse().ok()).unwrap_or(6443);
        let client_ca_file = flag("client-ca-file")?;
        // ring, kubewright's own backend (no aws-lc in the workspace: tests/supply_chain.rs).
        // Deprecated in rustls 0.23.48 for lacking post-quantum key exchange, which a test
        // bed's loopback traffic does not need (Go 1.24's kubectl falls back to X25519).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let served = Arc::new(ServedCertificate::load(
            provider.clone(),
            PathBuf::from(flag("tls-cert-file")?),
            PathBuf::from(flag("tls-private-key-file")?),
        )?);
        let (serial, not_after) = served.identity();
        let mut roots = rustls::RootCertStore::empty();
        for ca in
            CertificateDer::pem_file_iter(&client_ca_file).with_context(|| format!("cannot read {client_ca_file}"))?
        {
            roots.add(ca.with_context(|| format!("cannot parse {client_ca_file}"))?)?;
        }
        let clients = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .context("cannot build the client certificate verifier")?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(RequestClientCert(clients.clone())))
            .with_cert_resolver(served.clone());
        // HTTP/1.1 only (the real server offers h2 too; Go clients fall back to 1.1).
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        let image_version = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("image:"))
            .and_then(|i| i.trim().rsplit_once(':').map(|(_, tag)| tag.to_string()))
            .unwrap_or_default();
        let addr: SocketAddr = format!("{advertise}:{port}").parse().context("bad --advertise-address")?;
        // Bound here, so an address the host does not have fails the start (and is retried).
        let listener = std::net::TcpListener::bind(addr).with_context(|| format!("cannot listen on {addr}"))?;
        listener.set_nonblocking(true)?;
        let server = Arc::new(Server {
            node: self.node.clone(),
            address: addr.to_string(),
            version: image_version,
            clients,
            state_dir: self.state_dir.clone(),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let thread = std::thread::Builder::new()
            .name("kube-apiserver".into())
            .spawn(move || serve(listener, acceptor, server, stopped))
            .context("cannot start the server's thread")?;
        let status = PodStatus {
            running: true,
            container: container.to_string(),
            address: addr.to_string(),
            serving_serial: serial.clone(),
            serving_not_after: not_after,
            started_unix: now_unix(),
        };
        self.save(&status);
        log(
            &self.state_dir,
            &format!("started kube-apiserver (container {container}) on {addr}, serving certificate serial {serial}"),
        );
        Ok(Running { container: container.to_string(), served, status, status_changed: false, stop, thread })
    }

    fn save(&self, status: &PodStatus) {
        if let Ok(bytes) = serde_json::to_vec(status) {
            let _ = super::host::write_atomic(&self.state_dir.join(POD_FILE), &bytes);
        }
    }
}

/// The serving certificate and key as the server loaded them: at its start, and again whenever
/// the files change (k8s.io/apiserver `SecureServingOptions.ApplyTo`:
/// `dynamiccertificates.NewDynamicServingContentFromFiles`, which watches them).
#[derive(Debug)]
struct ServedCertificate {
    provider: Arc<rustls::crypto::CryptoProvider>,
    cert_file: PathBuf,
    key_file: PathBuf,
    current: std::sync::RwLock<(Arc<rustls::sign::CertifiedKey>, String, i64)>,
    /// The files' change times and sizes when last looked at.
    seen: std::sync::Mutex<Option<FilesStamp>>,
}

type FilesStamp = [(std::time::SystemTime, u64); 2];

impl ServedCertificate {
    fn load(
        provider: Arc<rustls::crypto::CryptoProvider>,
        cert_file: PathBuf,
        key_file: PathBuf,
    ) -> anyhow::Result<Self> {
        let seen = std::sync::Mutex::new(files_stamp(&cert_file, &key_file));
        let current = std::sync::RwLock::new(Self::read(&provider, &cert_file, &key_file)?);
        Ok(ServedCertificate { provider, cert_file, key_file, current, seen })
    }

    /// The certified key, its serial (hex, as `openssl x509 -serial` prints it) and `notAfter`.
    fn read(
        provider: &rustls::crypto::CryptoProvider,
        cert_file: &Path,
        key_file: &Path,
    ) -> anyhow::Result<(Arc<rustls::sign::CertifiedKey>, String, i64)> {
        let (cert_name, key_name) = (cert_file.display(), key_file.display());
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
            .with_context(|| format!("cannot read {cert_name}"))?
            .collect::<Result<_, _>>()
            .with_context(|| format!("cannot parse {cert_name}"))?;
        let serving = certs.first().with_context(|| format!("no certificate in {cert_name}"))?;
        let (serial, not_after) = x509_parser::parse_x509_certificate(serving)
            .map(|(_, c)| {
                (c.raw_serial_as_string().replace(':', "").to_uppercase(), c.validity().not_after.timestamp())
            })
            .unwrap_or_default();
        let key = PrivateKeyDer::from_pem_file(key_file).with_context(|| format!("cannot read {key_name}"))?;
        let certified = rustls::sign::CertifiedKey::from_der(certs, key, provider)
            .with_context(|| format!("{cert_name} and {key_name} do not make a serving certificate"))?;
        Ok((Arc::new(certified), serial, not_after))
    }

    fn identity(&self) -> (String, i64) {
        let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        (current.1.clone(), current.2)
    }

    /// Load the files again if they changed since last looked at, as the real server's
    /// `DynamicFileServingContent` does on a file event: the new serial and `notAfter`, or None
    /// (unchanged). A pair that does not load leaves the certificate served as it was.
    fn reload_if_changed(&self) -> anyhow::Result<Option<(String, i64)>> {
        let stamp = files_stamp(&self.cert_file, &self.key_file);
        {
            let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *seen == stamp {
                return Ok(None);
            }
            *seen = stamp;
        }
        let fresh = Self::read(&self.provider, &self.cert_file, &self.key_file)?;
        let mut current = self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if current.1 == fresh.1 {
            return Ok(None);
        }
        let identity = (fresh.1.clone(), fresh.2);
        *current = fresh;
        Ok(Some(identity))
    }
}

/// When each file last changed and its size (None: one cannot be read).
fn files_stamp(cert_file: &Path, key_file: &Path) -> Option<FilesStamp> {
    let stamp = |f: &Path| std::fs::metadata(f).ok().map(|m| (m.modified().unwrap_or(std::time::UNIX_EPOCH), m.len()));
    Some([stamp(cert_file)?, stamp(key_file)?])
}

impl rustls::server::ResolvesServerCert for ServedCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).0.clone())
    }
}

/// Go's `tls.RequestClientCert` with the client CA's names in the request (the real server
/// sets `ClientCAs`, so clients see which CA it trusts): any certificate, or none, passes the
/// handshake, which still checks that the client holds the certificate's key; the
/// certificate itself is verified per request, where a bad one is a 401.
#[derive(Debug)]
struct RequestClientCert(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.0.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// What a started server knows (loaded once, at its start).
struct Server {
    node: String,
    address: String,
    /// The image's tag: the version this container runs.
    version: String,
    clients: Arc<dyn ClientCertVerifier>,
    state_dir: PathBuf,
}

/// The server's thread: a current-thread runtime (small: one per control plane of up to 200
/// hosts) accepting until told to stop; dropping it closes the listener and every
/// connection. Requests run on its blocking pool, since they read etcd through etcdctl.
fn serve(
    listener: std::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    server: Arc<Server>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let Ok(rt) =
        tokio::runtime::Builder::new_current_thread().enable_io().enable_time().max_blocking_threads(4).build()
    else {
        log(&server.state_dir, "kube-apiserver: cannot build its runtime");
        return;
    };
    rt.block_on(async {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else { return };
        loop {
            tokio::select! {
                _ = stopped.changed() => break,
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    let acceptor = acceptor.clone();
                    let server = server.clone();
                    tokio::spawn(async move { connection(tcp, acceptor, server).await });
                }
            }
        }
    });
    rt.shutdown_timeout(Duration::from_secs(1));
}

async fn connection(tcp: tokio::net::TcpStream, acceptor: tokio_rustls::TlsAcceptor, server: Arc<Server>) {
    // A client that does not trust the serving certificate aborts here, in its own TLS stack.
    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else { return };
    let peer: Vec<CertificateDer<'static>> = tls.get_ref().1.peer_certificates().map(<[_]>::to_vec).unwrap_or_default();
    let peer = Arc::new(peer);
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let server = server.clone();
        let peer = peer.clone();
        async move {
            let (parts, _body) = req.into_parts();
            let answer = tokio::task::spawn_blocking(move || server.handle(&parts, &peer)).await;
            Ok::<_, std::convert::Infallible>(answer.unwrap_or_else(|_| {
                status_response(
                    500,
                    "InternalError",
                    "an error on the server (\"\") has prevented the request from succeeding",
                    "{}",
                )
            }))
        }
    });
    let io = hyper_util::rt::TokioIo::new(tls);
    // The timer makes hyper's header read timeout (30 s) effective: a client that connects
    // and sends nothing does not hold a task forever.
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(io, service)
        .await;
}

/// Who a request is, as the authenticators found.
#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    name: String,
    groups: Vec<String>,
}

impl User {
    fn anonymous() -> Self {
        User { name: "system:anonymous".into(), groups: vec!["system:unauthenticated".into()] }
    }
    fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a request asks, as the real server's RequestInfo has it (k8s.io/apiserver
/// pkg/endpoints/request/requestinfo.go): a resource request (verb, resource, namespace,
/// name) or a non-resource path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Path(String),
    Resource { verb: &'static str, resource: String, namespace: Option<String>, name: Option<String> },
}

fn target(path: &str) -> Target {
    let parts: Vec<&str> = path.trim_matches('/').split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["api", "v1", "namespaces", ns, resource] => Target::Resource {
            verb: "list",
            resource: resource.to_string(),
            namespace: Some(ns.to_string()),
            name: None,
        },
        ["api", "v1", "namespaces", ns, resource, name] => Target::Resource {
            verb: "get",
            resource: resource.to_string(),
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
        },
        ["api", "v1", "namespaces", name] => Target::Resource {
            verb: "get",
            resource: "namespaces".into(),
            namespace: None,
            name: Some(name.to_string()),
        },
        ["api", "v1", resource] => {
            Target::Resource { verb: "list", resource: resource.to_string(), namespace: None, name: None }
        }
        ["api", "v1", resource, name] => Target::Resource {
            verb: "get",
            resource: resource.to_string(),
            namespace: None,
            name: Some(name.to_string()),
        },
        _ => Target::Path(path.to_string()),
    }
}

/// Authorization as kubeadm's cluster has it for what this server serves
/// (plugin/pkg/auth/authorizer/rbac/bootstrappolicy/policy.go, kubeadm's phases/bootstraptoken
/// and the Node authorizer's rules):
/// - `system:masters` (super-admin.conf, and admin.conf before 1.29) and
///   `kubeadm:cluster-admins` (admin.conf from 1.29, bound to cluster-admin): everything;
/// - everyone, anonymous too: `get` of `/healthz`, `/livez`, `/readyz`, `/version`
///   (`system:public-info-viewer`, bound to system:authenticated and system:unauthenticated),
///   and the `cluster-info` ConfigMap in kube-public (kubeadm's `kubeadm:bootstrap-signer-
///   clusterinfo` Role, bound to the user system:anonymous);
/// - every authenticated user: discovery, `/api`, `/api/*`, `/apis`, `/apis/*`, `/openapi/*`
///   (`system:discovery`, bound to system:authenticated only since 1.14);
/// - nodes (`system:nodes`) and the controller manager and scheduler: get and list nodes and
///   pods, and the kubeadm-config ConfigMap (`kubeadm:nodes-kubeadm-config`);
/// - bootstrap tokens of kubeadm's group: `get` of a node (`kubeadm:get-nodes`, for joins) and
///   the kubeadm-config ConfigMap.
fn allowed(user: &User, t: &Target) -> bool {
    if user.in_group("system:masters") || user.in_group("kubeadm:cluster-admins") {
        return true;
    }
    let authenticated = user.in_group("system:authenticated");
    match t {
        Target::Path(p) => {
            matches!(p.as_str(), "/healthz" | "/livez" | "/readyz" | "/version" | "/version/")
                || (authenticated
                    && (matches!(p.as_str(), "/api" | "/apis" | "/openapi")
                        || ["/api/", "/apis/", "/openapi/"].iter().any(|prefix| p.starts_with(prefix))))
        }
        Target::Resource { verb, resource, namespace, name } => {
            let configmap = |ns: &str, n: &str| {
                resource == "configmaps"
                    && *verb == "get"
                    && namespace.as_deref() == Some(ns)
                    && name.as_deref() == Some(n)
            };
            if configmap("kube-public", "cluster-info") {
                return true;
            }
            let reader = user.in_group("system:nodes")
                || user.name == "system:kube-controller-manager"
                || user.name == "system:kube-scheduler";
            if reader && (matches!(resource.as_str(), "nodes" | "pods") || configmap("kube-system", "kubeadm-config")) {
                return true;
            }
            user.in_group("system:bootstrappers:kubeadm:default-node-token")
                && ((resource == "nodes" && *verb == "get") || configmap("kube-system", "kubeadm-config"))
        }
    }
}

/// The Forbidden Status (k8s.io/apiserver pkg/endpoints/handlers/responsewriters/errors.go
/// `forbiddenMessage`, apimachinery's `NewForbidden`).
fn forbidden(user: &User, t: &Target) -> Response<Full<Bytes>> {
    match t {
        Target::Path(p) => status_response(
            403,
            "Forbidden",
            &format!("forbidden: User \"{}\" cannot get path \"{p}\"", user.name),
            "{}",
        ),
        Target::Resource { verb, resource, namespace, name } => {
            let scope = match namespace {
                Some(ns) => format!("in the namespace \"{ns}\""),
                None => "at the cluster scope".into(),
            };
            let why = format!("User \"{}\" cannot {verb} resource \"{resource}\" in API group \"\" {scope}", user.name);
            let message = match name {
                Some(n) => format!("{resource} \"{n}\" is forbidden: {why}"),
                None => format!("{resource} is forbidden: {why}"),
            };
            status_response(403, "Forbidden", &message, &details(resource, name.as_deref()))
        }
    }
}

/// A `metav1.Status` failure as the server sends it, in Go's field order (serde_json's maps
/// sort their keys): `details` (already JSON, in `StatusDetails`' order: name, group, kind)
/// where the error has them.
fn status_text(code: u16, reason: &str, message: &str, details: Option<&str>) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into());
    let details = details.map(|d| format!(",\"details\":{d}")).unwrap_or_default();
    format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":{},\"reason\":{}{details},\"code\":{code}}}",
        quote(message),
        quote(reason)
    )
}

fn status_response(code: u16, reason: &str, message: &str, details: &str) -> Response<Full<Bytes>> {
    response(code, "application/json", status_text(code, reason, message, Some(details)).into_bytes())
}

/// The 401 (k8s.io/apiserver pkg/endpoints/filters/authentication.go `Unauthorized`):
/// `NewUnauthorized("Unauthorized")`, a Status without details.
fn unauthorized() -> Response<Full<Bytes>> {
    response(401, "application/json", status_text(401, "Unauthorized", "Unauthorized", None).into_bytes())
}

/// StatusDetails of a resource (and object) as JSON, in Go's order.
fn details(resource: &str, name: Option<&str>) -> String {
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    match name {
        Some(n) => format!("{{\"name\":{},\"kind\":{}}}", quote(n), quote(resource)),
        None => format!("{{\"kind\":{}}}", quote(resource)),
    }
}

fn json_response(code: u16, body: &Value) -> Response<Full<Bytes>> {
    let text = serde_json::to_vec(body).unwrap_or_default();
    response(code, "application/json", text)
}

fn response(code: u16, content_type: &str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_str(content_type)
            .unwrap_or(hyper::header::HeaderValue::from_static("application/json")),
    );
    h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-cache, private"));
    h.insert("x-content-type-options", hyper::header::HeaderValue::from_static("nosniff"));
    r
}

/// The etcd outage answer for an API request: the request waits for etcd until the server's
/// request timeout (`--request-timeout`, 1m0s) and gets the timeout filter's 504
/// (k8s.io/apiserver pkg/endpoints/handlers/finisher/finisher.go, `NewTimeoutError`); here at
/// once, to keep tests short.
fn etcd_timeout() -> Response<Full<Bytes>> {
    status_response(
        504,
        "Timeout",
        "Timeout: request did not complete within requested timeout - context deadline exceeded",
        "{}",
    )
}

/// The health checks a kubeadm API server installs, in its order (ping, log, etcd, then the
/// readiness-only ones and the post-start hooks; abridged: the real list has some thirty
/// hooks). `etcd` is in all three endpoints (`AddHealthChecks`), `etcd-readiness` in readyz
/// only (k8s.io/apiserver pkg/server/options/etcd.go `addEtcdHealthEndpoint`).
fn health(name: &str, etcd_ok: bool, verbose: bool) -> Response<Full<Bytes>> {
    let mut checks: Vec<(&str, bool)> = vec![("ping", true), ("log", true), ("etcd", etcd_ok)];
    if name == "readyz" {
        checks.push(("etcd-readiness", etcd_ok));
        checks.push(("informer-sync", true));
    }
    checks.extend([
        ("poststarthook/start-apiserver-admission-initializer", true),
        ("poststarthook/generic-apiserver-start-informers", true),
        ("poststarthook/priority-and-fairness-config-consumer", true),
        ("poststarthook/start-apiextensions-informers", true),
        ("poststarthook/start-apiextensions-controllers", true),
        ("poststarthook/crd-informer-synced", true),
        ("poststarthook/rbac/bootstrap-roles", true),
        ("poststarthook/bootstrap-controller", true),
        ("poststarthook/apiservice-registration-controller", true),
    ]);
    if name == "readyz" {
        checks.push(("shutdown", true));
    }
    // k8s.io/apiserver pkg/server/healthz/healthz.go `handleRootHealth`: the failing checks'
    // reasons are withheld (the endpoint is public); a failure is http.Error's 500 with a
    // newline.
    let mut text = String::new();
    for (check, ok) in &checks {
        if *ok {
            text.push_str(&format!("[+]{check} ok\n"));
        } else {
            text.push_str(&format!("[-]{check} failed: reason withheld\n"));
        }
    }
    if !etcd_ok {
        text.push_str(&format!("{name} check failed\n"));
        return response(500, "text/plain; charset=utf-8", text.into_bytes());
    }
    if verbose {
        text.push_str(&format!("{name} check passed\n"));
        return response(200, "text/plain; charset=utf-8", text.into_bytes());
    }
    response(200, "text/plain; charset=utf-8", b"ok".to_vec())
}

/// The Go version each minor's kube-apiserver was built with (its release notes' dependencies).
fn go_version(minor: u32) -> &'static str {
    match minor {
        ..=28 => "go1.20.13",
        29 => "go1.21.13",
        30 | 31 => "go1.22.12",
        32 => "go1.23.6",
        _ => "go1.24.4",
    }
}

/// `metadata` of an object: a uid and resourceVersion derived from its key (stable across
/// reads; the real ones come from etcd's revisions).
fn meta_ids(key: &str) -> (String, String) {
    use sha2::Digest;
    let h = sha2::Sha256::digest(key.as_bytes());
    let x = hex::encode(&h[..16]);
    let uid = format!("{}-{}-{}-{}-{}", &x[..8], &x[8..12], &x[12..16], &x[16..20], &x[20..32]);
    let rv = u32::from_be_bytes([h[16], h[17], h[18], h[19]]) % 1_000_000 + 1000;
    (uid, rv.to_string())
}

/// Whether the client asked for a server-side Table (`kubectl get`'s human-readable output
/// sends `application/json;as=Table;v=v1;g=meta.k8s.io,...`, kubectl pkg/cmd/get/get.go
/// `transformRequests`).
fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|a| {
        let params: Vec<&str> = a.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io") && params.contains(&"v=v1")
    })
}

/// The server-side printer's columns (pkg/printers/internalversion/printers.go
/// `nodeColumnDefinitions`, `podColumnDefinitions`), with their descriptions as the server
/// sends them (the `wide` ones have priority 1).
fn columns(resource: &str) -> Value {
    let col = |name: &str, format: &str, description: &str, priority: u32| json!({"name": name, "type": "string", "format": format, "description": description, "priority": priority});
    let name = col(
        "Name",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        0,
    );
    let age = col(
        "Age",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        0,
    );
    match resource {
        "nodes" => json!([
            name,
            col("Status", "", "The status of the node", 0),
            col("Roles", "", "The roles of the node", 0),
            age,
            col("Version", "", "Kubelet Version reported by the node.", 0),
            col("Internal-IP", "", "List of internal IPs in the node.", 1),
            col("External-IP", "", "List of external IPs in the node.", 1),
            col(
                "OS-Image",
                "",
                "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
                1
            ),
            col(
                "Kernel-Version",
                "",
                "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
                1
            ),
            col(
                "Container-Runtime",
                "",
                "Container Runtime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
                1
            ),
        ]),
        _ => json!([
            name,
            col("Ready", "", "The aggregate readiness state of this pod for accepting traffic.", 0),
            col("Status", "", "The aggregate status of the containers in this pod.", 0),
            col(
                "Restarts",
                "",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0
            ),
            age,
            col(
                "IP",
                "",
                "IP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                1
            ),
            col(
                "Node",
                "",
                "NodeName is a request to schedule this pod onto a specific node. If it is non-empty, the scheduler simply schedules this pod onto that node, assuming that it fits resource requirements.",
                1
            ),
            col(
                "Nominated Node",
                "",
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also empty nominatedNodeName when, for example, this pod is scheduled to another node. Scheduling framework plugins may also set this field to a value.",
                1
            ),
            col(
                "Readiness Gates",
                "",
                "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
                1
            ),
        ]),
    }
}

/// A row's object as `includeObject=Metadata` (the default) sends it.
fn partial_metadata(object: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": object["metadata"].clone()})
}

fn table(resource: &str, rows: Vec<Value>, rv: &str) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns(resource),
        "rows": rows,
    })
}

impl Server {
    /// Authenticate, authorize and answer one request.
    fn handle(&self, req: &hyper::http::request::Parts, peer: &[CertificateDer<'static>]) -> Response<Full<Bytes>> {
        let path = req.uri.path().to_string();
        let query = req.uri.query().unwrap_or("").to_string();
        let user = match self.authenticate(req, peer) {
            Ok(u) => u,
            Err(why) => {
                log(&self.state_dir, &format!("Unable to authenticate the request: {why} ({} {path})", req.method));
                return unauthorized();
            }
        };
        let t = target(&path);
        if !allowed(&user, &t) {
            return forbidden(&user, &t);
        }
        if req.method != hyper::Method::GET {
            return status_response(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
                "{}",
            );
        }
        let etcd_ok = super::etcd::member_serving(&self.node);
        let verbose = query.split('&').any(|p| p == "verbose" || p.starts_with("verbose="));
        match path.trim_end_matches('/') {
            "/healthz" => return health("healthz", etcd_ok, verbose),
            "/livez" => return health("livez", etcd_ok, verbose),
            "/readyz" => return health("readyz", etcd_ok, verbose),
            "/version" => return json_response(200, &self.version_info()),
            // Legacy discovery, served as application/json whatever the Accept asks: kubectl
            // 1.30+ asks for the aggregated `apidiscovery.k8s.io/v2` first and falls back to
            // these when the answer is not of that type (client-go discovery/aggregated_discovery.go).
            "/api" => {
                return json_response(
                    200,
                    &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": self.address}]}),
                );
            }
            "/api/v1" => return json_response(200, &core_resources()),
            "/apis" => return json_response(200, &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
            _ => {}
        }
        let Target::Resource { resource, namespace, name, .. } = &t else { return not_found() };
        if !etcd_ok {
            return etcd_timeout();
        }
        let Some(cluster) = super::cluster::read_cluster_live() else { return etcd_timeout() };
        let accept = req.headers.get(hyper::header::ACCEPT).and_then(|a| a.to_str().ok()).unwrap_or("");
        let as_table = wants_table(accept);
        match (resource.as_str(), namespace, name) {
            ("nodes", None, None) => nodes(&cluster, None, as_table),
            ("nodes", None, Some(n)) => nodes(&cluster, Some(n), as_table),
            ("pods", ns, None) => {
                let node = query.split('&').find_map(|p| {
                    let p = p.replace("%3D", "=").replace("%3d", "=");
                    p.strip_prefix("fieldSelector=spec.nodeName=").map(str::to_string)
                });
                pods(&cluster, ns.as_deref(), node.as_deref(), as_table)
            }
            _ => not_found(),
        }
    }

    /// The x509 authenticator, then the bearer token one: the first that succeeds names the
    /// user (`union.New`); when none does, any failure is a 401 and only a request that
    /// carried no credentials at all is anonymous (`union.NewFailOnError` with the anonymous
    /// authenticator).
    fn authenticate(
        &self,
        req: &hyper::http::request::Parts,
        peer: &[CertificateDer<'static>],
    ) -> Result<User, String> {
        let mut errors = Vec::new();
        if let Some((leaf, intermediates)) = peer.split_first() {
            // pkg/authentication/request/x509: chains to the client CA, within every
            // certificate's validity period, with client authentication among its usages.
            match self.clients.verify_client_cert(leaf, intermediates, UnixTime::now()) {
                Ok(_) => match client_cert_user(leaf) {
                    Some(user) => return Ok(user),
                    None => errors.push("cannot read the client certificate".to_string()),
                },
                Err(e) => errors.push(format!("verifying certificate failed: {e}")),
            }
        }
        if let Some(auth) = req.headers.get(hyper::header::AUTHORIZATION) {
            let token = auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer ")).map(str::trim).unwrap_or("");
            // pkg/authentication/request/bearertoken: a token no authenticator accepts is
            // "invalid bearer token", an error, not an anonymous request.
            match bootstrap_token_user(token) {
                Some(user) => return Ok(user),
                None => errors.push("invalid bearer token".to_string()),
            }
        }
        if errors.is_empty() { Ok(User::anonymous()) } else { Err(errors.join(", ")) }
    }

    fn version_info(&self) -> Value {
        let v = if self.version.is_empty() {
            super::cluster::read_bed_state().kubernetes_version
        } else {
            self.version.clone()
        };
        let minor: u32 = v.trim_start_matches('v').split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
        json!({
            "major": "1",
            "minor": minor.to_string(),
            "gitVersion": v,
            "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": go_version(minor),
            "compiler": "gc",
            "platform": "linux/amd64",
        })
    }
}

fn not_found() -> Response<Full<Bytes>> {
    status_response(404, "NotFound", "the server could not find the requested resource", "{}")
}

/// The user a verified client certificate names: its CN, and its O's as groups
/// (pkg/authentication/request/x509 `CommonNameUserConversion`).
fn client_cert_user(leaf: &CertificateDer<'_>) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?.to_string();
    let mut groups: Vec<String> =
        subject.iter_organization().filter_map(|o| o.as_str().ok().map(str::to_string)).collect();
    groups.push("system:authenticated".into());
    Some(User { name, groups })
}

/// A bootstrap token (`ID.SECRET`) matched against the bootstrap-token Secrets, not expired
/// on the simulator's clock (plugin/pkg/auth/authenticator/token/bootstrap/bootstrap.go: user
/// `system:bootstrap:ID`, groups `system:bootstrappers` and kubeadm's
/// `system:bootstrappers:kubeadm:default-node-token`).
fn bootstrap_token_user(token: &str) -> Option<User> {
    let (id, secret) = token.split_once('.')?;
    let cluster = super::cluster::read_cluster_live().unwrap_or_else(super::cluster::read_cluster);
    let now = super::cluster::now_unix();
    cluster.tokens.iter().find(|t| t.id == id && t.secret == secret && t.expires_unix > now)?;
    Some(User {
        name: format!("system:bootstrap:{id}"),
        groups: vec![
            "system:bootstrappers".into(),
            "system:bootstrappers:kubeadm:default-node-token".into(),
            "system:authenticated".into(),
        ],
    })
}

/// `/api/v1`'s resources: those this server serves (kubectl maps names and short names
/// through them; a resource it does not list is `the server doesn't have a resource type`).
fn core_resources() -> Value {
    let r = |name: &str, kind: &str, namespaced: bool, short: &[&str], verbs: &[&str]| {
        let mut v = json!({"name": name, "singularName": kind.to_lowercase(), "namespaced": namespaced, "kind": kind, "verbs": verbs});
        if !short.is_empty() {
            v["shortNames"] = json!(short);
        }
        v
    };
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            r("nodes", "Node", false, &["no"], &["get", "list"]),
            r("pods", "Pod", true, &["po"], &["get", "list"]),
        ],
    })
}

fn nodes(c: &Cluster, only: Option<&str>, as_table: bool) -> Response<Full<Bytes>> {
    let names: Vec<&String> = c.nodes.keys().filter(|n| only.is_none_or(|o| o == n.as_str())).collect();
    if let Some(o) = only
        && names.is_empty()
    {
        return status_response(404, "NotFound", &format!("nodes \"{o}\" not found"), &details("nodes", Some(o)));
    }
    let objects: Vec<Value> = names
        .iter()
        .map(|n| {
            let mut v = super::kubectl::node_json(c, n);
            let (uid, rv) = meta_ids(&format!("/registry/minions/{n}"));
            v["metadata"]["uid"] = json!(uid);
            v["metadata"]["resourceVersion"] = json!(rv);
            v
        })
        .collect();
    let (_, list_rv) = meta_ids(&format!("nodes{}", objects.len()));
    if as_table {
        let rows = names
            .iter()
            .zip(&objects)
            .map(|(n, o)| {
                let node = &c.nodes[*n];
                let roles: Vec<&str> = o["metadata"]["labels"]
                    .as_object()
                    .map(|l| l.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).collect())
                    .unwrap_or_default();
                // pkg/printers/internalversion/printers.go `findNodeRoles`.
                let roles = if roles.is_empty() { "<none>".to_string() } else { roles.join(",") };
                let info = &o["status"]["nodeInfo"];
                json!({
                    "cells": [
                        n,
                        super::kubectl::status(c, n),
                        roles,
                        super::kubectl::age(node.created_unix),
                        node.kubelet_version,
                        node.address,
                        "<none>",
                        info["osImage"],
                        info["kernelVersion"],
                        info["containerRuntimeVersion"],
                    ],
                    "object": partial_metadata(o),
                })
            })
            .collect();
        return json_response(200, &table("nodes", rows, &list_rv));
    }
    match only {
        Some(_) => json_response(200, &objects[0]),
        None => {
            // List items carry no kind or apiVersion; the list does.
            let items: Vec<Value> = objects
                .into_iter()
                .map(|mut o| {
                    if let Some(m) = o.as_object_mut() {
                        m.remove("kind");
                        m.remove("apiVersion");
                    }
                    o
                })
                .collect();
            json_response(
                200,
                &json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {"resourceVersion": list_rv}, "items": items}),
            )
        }
    }
}

fn pods(c: &Cluster, namespace: Option<&str>, node: Option<&str>, as_table: bool) -> Response<Full<Bytes>> {
    let pods: Vec<&super::cluster::Pod> = c
        .pods
        .iter()
        .filter(|p| namespace.is_none_or(|ns| ns == p.namespace) && node.is_none_or(|n| n == p.node))
        .collect();
    let objects: Vec<Value> = pods
        .iter()
        .map(|p| {
            let (uid, rv) = meta_ids(&format!("/registry/pods/{}/{}", p.namespace, p.name));
            let created = time::OffsetDateTime::from_unix_timestamp(c.nodes.get(&p.node).map_or(0, |n| n.created_unix))
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
            json!({
                "metadata": {"name": p.name, "namespace": p.namespace, "uid": uid, "resourceVersion": rv, "creationTimestamp": created, "labels": p.labels},
                "spec": {"nodeName": p.node},
                "status": {"phase": "Running"},
            })
        })
        .collect();
    let (_, list_rv) = meta_ids(&format!("pods{}", objects.len()));
    if as_table {
        let rows = pods
            .iter()
            .zip(&objects)
            .map(|(p, o)| {
                let age = super::kubectl::age(c.nodes.get(&p.node).map_or(0, |n| n.created_unix));
                json!({
                    "cells": [p.name, "1/1", "Running", "0", age, "<none>", p.node, "<none>", "<none>"],
                    "object": partial_metadata(o),
                })
            })
            .collect();
        return json_response(200, &table("pods", rows, &list_rv));
    }
    json_response(
        200,
        &json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": list_rv}, "items": objects}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str, groups: &[&str]) -> User {
        User { name: name.into(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    #[test]
    fn anonymous_requests_reach_only_the_public_paths() {
        let anon = User::anonymous();
        for p in ["/version", "/healthz", "/livez", "/readyz"] {
            assert!(allowed(&anon, &target(p)), "{p}");
        }
        assert!(!allowed(&anon, &target("/api")));
        assert!(!allowed(&anon, &target("/api/v1/nodes")));
        let authenticated = user("someone", &["system:authenticated"]);
        assert!(allowed(&authenticated, &target("/api")));
        assert!(allowed(&authenticated, &target("/api/v1")));
        assert!(!allowed(&authenticated, &target("/api/v1/nodes")));
        let admin = user("kubernetes-admin", &["kubeadm:cluster-admins", "system:authenticated"]);
        assert!(allowed(&admin, &target("/api/v1/nodes")));
        let token = user(
            "system:bootstrap:abcdef",
            &["system:bootstrappers:kubeadm:default-node-token", "system:authenticated"],
        );
        assert!(allowed(&token, &target("/api/v1/nodes/cp1")));
        assert!(!allowed(&token, &target("/api/v1/nodes")));
    }

    #[test]
    fn forbidden_messages_are_the_real_servers() {
        let anon = User::anonymous();
        let body = |r: Response<Full<Bytes>>| {
            use http_body_util::BodyExt as _;
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let bytes = rt.block_on(r.into_body().collect()).unwrap().to_bytes();
            serde_json::from_slice::<Value>(&bytes).unwrap()
        };
        let b = body(forbidden(&anon, &target("/api/v1/nodes")));
        assert_eq!(
            b["message"],
            "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
        );
        assert_eq!(b["code"], 403);
        let b = body(forbidden(&anon, &target("/api")));
        assert_eq!(b["message"], "forbidden: User \"system:anonymous\" cannot get path \"/api\"");
        assert_eq!(
            status_text(401, "Unauthorized", "Unauthorized", None),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }

    #[test]
    fn kubectl_get_asks_for_a_table() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }
}
