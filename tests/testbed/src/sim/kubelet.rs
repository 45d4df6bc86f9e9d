//! The kubelet's credentials: what it presents to the API server, and how it gets new ones.
//!
//! A kubelet posts its node's status only while the API server accepts its client certificate
//! (`/etc/kubernetes/kubelet.conf`: embedded, or kubeadm's `kubelet-client-current.pem` after
//! `[kubelet-finalize]`): valid now and signed by the cluster CA, as the API server's x509
//! authenticator checks (k8s.io/apiserver pkg/authentication/request/x509/x509.go), and only
//! while the API server's own certificate is valid to it (client-go verifies the chain and
//! dates). Without either, the node goes NotReady.
//!
//! At its start, a kubelet whose certificate is not valid (expired, missing) and that has a
//! bootstrap kubeconfig (`/etc/kubernetes/bootstrap-kubelet.conf`, kubeadm's drop-in always
//! passes `--bootstrap-kubeconfig`) makes its TLS bootstrap, as the real one does
//! (k8s.io/kubernetes pkg/kubelet/certificate/bootstrap/bootstrap.go `LoadClientConfig`: a
//! kubeconfig whose certificate has expired is not used): with a valid bootstrap token it gets
//! a certificate from the cluster's signer (the controller manager's, auto-approved by kubeadm's
//! `kubeadm:node-autoapprove-bootstrap` binding), writes it as `kubelet-client-<time>.pem` with
//! `kubelet-client-current.pem` pointing at it, and a kubelet.conf that names that file.
//! What is not modelled: the rotation a running kubelet makes at 70-90 % of its certificate's
//! life (a test's clock jump past expiry leaves the certificate on disk expired, as for a
//! kubelet that was down or without an API server all that time).

use std::path::{Path, PathBuf};

use super::cluster::{Cluster, PEERS_DIR, now_unix};
use super::pki::{self, Leaf};
use super::reach::host_file;

/// Where kubeadm's kubelet.conf points after `[kubelet-finalize]` (a symlink to the newest).
pub const CLIENT_CURRENT: &str = "/var/lib/kubelet/pki/kubelet-client-current.pem";
pub const KUBECONFIG: &str = "/etc/kubernetes/kubelet.conf";
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// The kubelet's self-signed serving certificate and key (without `serverTLSBootstrap`).
const SERVING_CERT: &str = "/var/lib/kubelet/pki/kubelet.crt";
const SERVING_KEY: &str = "/var/lib/kubelet/pki/kubelet.key";

/// `path` of `host` followed through symlinks within that host's files (a symlink's absolute
/// target is the host's, not this machine's). Outside a bed: this machine's file.
fn host_file_following(host: &str, path: &str) -> Option<String> {
    let peers = Path::new(PEERS_DIR);
    if !peers.exists() {
        return std::fs::read_to_string(path).ok();
    }
    let root = peers.join(host).join("upper");
    let mut at = PathBuf::from(path);
    for _ in 0..8 {
        let on_machine = root.join(at.strip_prefix("/").unwrap_or(&at));
        match std::fs::read_link(&on_machine) {
            Ok(target) if target.is_absolute() => at = target,
            Ok(target) => at = at.parent().unwrap_or(Path::new("/")).join(target),
            Err(_) => return std::fs::read_to_string(on_machine).ok(),
        }
    }
    None
}

/// The client certificate (PEM) `host`'s kubelet presents: kubelet.conf's embedded one, or the
/// file it names.
pub fn client_certificate(host: &str) -> Option<String> {
    let conf = host_file(host, KUBECONFIG)?;
    if let Some(pem) = pki::kubeconfig_client_cert(&conf) {
        return Some(pem);
    }
    let file = conf.lines().find_map(|l| l.trim().strip_prefix("client-certificate:"))?.trim().trim_matches('"');
    let text = host_file_following(host, file)?;
    super::certs::split_cert_and_key(&text).map(|(cert, _)| cert.to_string()).or(Some(text))
}

/// Why the API server would refuse `pem` as a client certificate of the cluster (the CA in the
/// cluster's shared files), or Ok.
fn accepted(pem: &str) -> Result<(), String> {
    let ca = std::fs::read_to_string(super::cluster::state_dir().join("ca.crt"))
        .map_err(|_| "the cluster CA is not published".to_string())?;
    pki::check_client_certificate(pem, &ca, now_unix())
}

/// Whether `node`'s kubelet gets through to the API server with what it presents, or why not
/// (as the kubelet's log says it).
pub fn authorized(node: &str) -> Result<(), String> {
    if !Path::new(PEERS_DIR).exists() {
        // Outside a bed (unit tests): trust the recorded state.
        return Ok(());
    }
    let pem = client_certificate(node).ok_or_else(|| format!("no client certificate in {KUBECONFIG}"))?;
    accepted(&pem).map_err(|e| format!("Unauthorized: {e}"))?;
    api_certificate_valid()
}

/// Some API server serves a certificate that is valid now (the kubelet verifies it, dates
/// included); a server that has not said when its certificate ends is taken as valid.
fn api_certificate_valid() -> Result<(), String> {
    let peers = Path::new(PEERS_DIR);
    let now = now_unix();
    let served: Vec<super::apiserver::PodStatus> = std::fs::read_dir(peers)
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("sim").join(super::apiserver::POD_FILE)).ok())
                .filter_map(|t| serde_json::from_str::<super::apiserver::PodStatus>(&t).ok())
                .filter(|p| p.running)
                .collect()
        })
        .unwrap_or_default();
    if served.is_empty() || served.iter().any(|p| p.serving_not_after == 0 || p.serving_not_after > now) {
        return Ok(());
    }
    Err("tls: failed to verify certificate: x509: certificate has expired or is not yet valid".into())
}

/// The kubelet on this host (node `node`) starts: without a valid client certificate, the TLS
/// bootstrap with `bootstrap-kubelet.conf` where that can succeed. What it did, for its log.
pub fn on_start(c: &Cluster, node: &str) -> anyhow::Result<Option<String>> {
    // Without serverTLSBootstrap the kubelet makes its serving certificate when there is none
    // (an expired one stays: k/k cmd/kubelet/app/server.go `InitializeTLS` generates one only
    // when `certutil.CanReadCertAndKey` finds none).
    if !Path::new(SERVING_CERT).exists() || !Path::new(SERVING_KEY).exists() {
        write_self_signed_serving(node, now_unix())?;
    }
    let own = std::fs::read_to_string(KUBECONFIG).ok();
    let current = own.as_deref().and_then(|conf| {
        pki::kubeconfig_client_cert(conf).or_else(|| {
            let file = conf.lines().find_map(|l| l.trim().strip_prefix("client-certificate:"))?.trim().to_string();
            std::fs::read_to_string(file).ok()
        })
    });
    if current.as_deref().is_some_and(|pem| accepted(pem).is_ok()) {
        return Ok(None);
    }
    let Ok(bootstrap) = std::fs::read_to_string(BOOTSTRAP_KUBECONFIG) else {
        return Ok(Some(format!("no valid client certificate in {KUBECONFIG} and no {BOOTSTRAP_KUBECONFIG}")));
    };
    let token = bootstrap
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().trim_matches(|c| c == '"' || c == '\''));
    let known = token.and_then(|t| t.split_once('.')).is_some_and(|(id, secret)| {
        c.tokens.iter().any(|t| t.id == id && t.secret == secret && t.expires_unix > now_unix())
    });
    if !known {
        return Ok(Some(format!("the bootstrap token in {BOOTSTRAP_KUBECONFIG} is not valid: Unauthorized")));
    }
    let server = bootstrap
        .lines()
        .find_map(|l| l.trim().strip_prefix("server:"))
        .map(|s| s.trim().trim_matches(|c| c == '"' || c == '\'').trim_start_matches("https://").to_string())
        .unwrap_or_else(|| c.endpoint.clone());
    if let Err(e) = super::reach::dial(c, node, &server) {
        return Ok(Some(format!("the TLS bootstrap cannot reach the API server: {e}")));
    }
    // The controller manager signs (and kubeadm's binding auto-approves) the request: one that
    // reaches the API server with its own kubeconfig's certificate must run somewhere.
    let signer = c.nodes.iter().filter(|(_, n)| n.control_plane).any(|(name, _)| {
        host_file(name, "/etc/kubernetes/controller-manager.conf")
            .and_then(|t| pki::kubeconfig_client_cert(&t))
            .is_some_and(|pem| accepted(&pem).is_ok())
    });
    if !signer {
        return Ok(Some(
            "the certificate signing request stays pending: no kube-controller-manager reaches the API server (its controller-manager.conf certificate is not valid on any control plane)".into(),
        ));
    }
    let ca = super::kubeadm::ca_for_signing()?;
    let server = format!("https://{server}");
    write_client_identity(&ca, node, &c.cluster_name, &server, now_unix())?;
    Ok(Some("the TLS bootstrap got a new client certificate".into()))
}

/// The kubelet's client certificate from the cluster's signer (one year, as the controller
/// manager's `--cluster-signing-duration`), as `kubelet-client-<time>.pem` with
/// `kubelet-client-current.pem` pointing at it, and a kubelet.conf that names that file.
pub fn write_client_identity(
    ca: &pki::Pair,
    node: &str,
    cluster_name: &str,
    server: &str,
    now: i64,
) -> anyhow::Result<()> {
    let client = pki::new_leaf(
        ca,
        &Leaf {
            cn: &format!("system:node:{node}"),
            orgs: &["system:nodes"],
            dns: vec![],
            ips: vec![],
            server: false,
            client: true,
            ecdsa: true,
        },
        now,
    )?;
    let stamp = time::OffsetDateTime::from_unix_timestamp(now)
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02}-{:02}-{:02}-{:02}",
                t.year(),
                t.month() as u8,
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default();
    let file = format!("/var/lib/kubelet/pki/kubelet-client-{stamp}.pem");
    pki::write(Path::new(&file), &format!("{}{}", client.cert, client.key), 0o600)?;
    let current = Path::new(CLIENT_CURRENT);
    let _ = std::fs::remove_file(current);
    std::os::unix::fs::symlink(&file, current)?;
    let user = format!("system:node:{node}");
    pki::write(
        Path::new(KUBECONFIG),
        &format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: {server}\n  name: {cluster_name}\ncontexts:\n- context:\n    cluster: {cluster_name}\n    user: {user}\n  name: {user}@{cluster_name}\ncurrent-context: {user}@{cluster_name}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    client-certificate: {CLIENT_CURRENT}\n    client-key: {CLIENT_CURRENT}\n",
            pki::b64(&ca.cert)
        ),
        0o600,
    )
}

/// The kubelet's self-signed serving certificate: a CA of its own (`NODE-ca@TIME`) and a leaf
/// for the node's name (`NODE@TIME`), for one year, as `cert.GenerateSelfSignedCertKey` makes.
pub fn write_self_signed_serving(node: &str, now: i64) -> anyhow::Result<()> {
    let serving_ca = pki::new_ca(&format!("{node}-ca@{now}"), now)?;
    let serving = pki::new_leaf(
        &serving_ca,
        &Leaf {
            cn: &format!("{node}@{now}"),
            orgs: &[],
            dns: vec![node.to_string()],
            ips: vec![],
            server: true,
            client: false,
            ecdsa: false,
        },
        now,
    )?;
    pki::write(Path::new(SERVING_CERT), &serving.cert, 0o644)?;
    pki::write(Path::new(SERVING_KEY), &serving.key, 0o600)
}
