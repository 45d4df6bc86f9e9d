//! What a client-go client (kubectl) does before its first request: read the kubeconfig's
//! credentials, open TLS to the server with the cluster's CA and its client certificate, and
//! ask (`GET /api`, kubectl's discovery). The simulated kubectl does this against the bed's
//! real TLS API server ([`super::apiserver`]) before it answers from the cluster state, so an
//! expired, untrusted or foreign certificate, on either side, fails as it fails the real one:
//! the server's refusal in Go's crypto/x509 words (`Unable to connect to the server: tls: failed
//! to verify certificate: x509: ...`), the client's as the API server's 401 (`error: You must be
//! logged in to the server (Unauthorized)`).

use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A kubeconfig's current context, as client-go reads it.
#[derive(Debug, Default)]
pub struct Credentials {
    /// `https://host:port` (the `server:` of the context's cluster).
    pub server: String,
    pub ca_pem: Option<Vec<u8>>,
    pub tls_server_name: Option<String>,
    pub insecure: bool,
    pub client_cert_pem: Option<Vec<u8>>,
    pub client_key_pem: Option<Vec<u8>>,
    pub token: Option<String>,
}

/// The kubeconfig at `path`, or why it cannot be used (kubectl's own words where it has them).
pub fn credentials(path: &Path) -> Result<Credentials, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("error: stat {}: {e}", path.display()))?;
    let doc: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(|e| format!("error: error loading config file \"{}\": {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("/"));
    let current = doc["current-context"].as_str().unwrap_or_default();
    let named = |list: &str, name: &str| {
        doc[list].as_array().into_iter().flatten().find(|e| e["name"].as_str() == Some(name)).cloned()
    };
    let context = named("contexts", current).map(|c| c["context"].clone()).unwrap_or_default();
    let cluster = context["cluster"].as_str().and_then(|n| named("clusters", n)).map(|c| c["cluster"].clone());
    let user = context["user"].as_str().and_then(|n| named("users", n)).map(|u| u["user"].clone());
    let cluster = cluster.unwrap_or_default();
    let user = user.unwrap_or_default();
    let data = |v: &serde_json::Value, inline: &str, file: &str| -> Result<Option<Vec<u8>>, String> {
        if let Some(b64) = v[inline].as_str() {
            return base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(Some)
                .map_err(|e| format!("error: {inline} in {}: {e}", path.display()));
        }
        match v[file].as_str() {
            Some(f) => {
                let f = base.join(f);
                std::fs::read(&f).map(Some).map_err(|e| format!("error: unable to read {file} {}: {e}", f.display()))
            }
            None => Ok(None),
        }
    };
    Ok(Credentials {
        server: cluster["server"].as_str().unwrap_or_default().to_string(),
        ca_pem: data(&cluster, "certificate-authority-data", "certificate-authority")?,
        tls_server_name: cluster["tls-server-name"].as_str().map(str::to_string),
        insecure: cluster["insecure-skip-tls-verify"].as_bool().unwrap_or(false),
        client_cert_pem: data(&user, "client-certificate-data", "client-certificate")?,
        client_key_pem: data(&user, "client-key-data", "client-key")?,
        token: user["token"].as_str().map(str::to_string),
    })
}

/// Go's time format in x509 validity errors.
fn go_time(t: rustls::pki_types::UnixTime) -> String {
    super::pki::go_time(t.as_secs() as i64)
}

/// A failed handshake as Go's crypto/tls and crypto/x509 say it.
fn go_tls_error(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let x509 = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::ExpiredContext { time, not_after } => format!(
                "x509: certificate has expired or is not yet valid: current time {} is after {}",
                go_time(*time),
                go_time(*not_after)
            ),
            C::NotValidYetContext { time, not_before } => format!(
                "x509: certificate has expired or is not yet valid: current time {} is before {}",
                go_time(*time),
                go_time(*not_before)
            ),
            C::Expired | C::NotValidYet => "x509: certificate has expired or is not yet valid".into(),
            C::UnknownIssuer | C::BadSignature => "x509: certificate signed by unknown authority".into(),
            C::NotValidForNameContext { expected, presented } => {
                format!("x509: certificate is valid for {}, not {}", presented.join(", "), server_name_text(expected))
            }
            other => format!("x509: {other:?}"),
        },
        other => return format!("remote error: {other}"),
    };
    format!("tls: failed to verify certificate: {x509}")
}

fn server_name_text(name: &ServerName<'_>) -> String {
    match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => IpAddr::from(*ip).to_string(),
        _ => String::new(),
    }
}

/// How a request ended before any answer: kubectl's whole error text.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No TLS session (the server's certificate refused, the connection failed).
    Connect(String),
    /// The API server's 401.
    Unauthorized,
}

/// `GET /api` at `dial` (`ip:port`, where the server's address is reached) with `creds`: Ok
/// with the HTTP status, or how it was refused.
pub fn discover(creds: &Credentials, dial: &str) -> Result<u16, Refusal> {
    #[allow(deprecated)] // ring: see the API server's own configuration
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let authority = creds.server.trim_start_matches("https://").split('/').next().unwrap_or_default().to_string();
    // `host:port`, `[v6]:port`, or either without its port.
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => authority.rsplit_once(':').map_or(authority.as_str(), |(h, _)| h),
    };
    let name_text = creds.tls_server_name.clone().unwrap_or_else(|| host.to_string());
    let name = ServerName::try_from(name_text.clone()).map_err(|e| Refusal::Connect(format!("{name_text}: {e}")))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Refusal::Connect(e.to_string()))?;
    let builder = if creds.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(super::api_proxy::AnyServer(provider.clone())))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &creds.ca_pem {
            for c in CertificateDer::pem_slice_iter(pem).flatten() {
                let _ = roots.add(c);
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&creds.client_cert_pem, &creds.client_key_pem) {
        (Some(cert), Some(key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert).flatten().collect();
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|e| Refusal::Connect(format!("tls: failed to find any PEM data in key input: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Refusal::Connect(format!("tls: private key does not match public key: {e}")))?
        }
        _ => builder.with_no_client_auth(),
    };
    let addr: std::net::SocketAddr =
        dial.parse().map_err(|_| Refusal::Connect(format!("dial tcp {dial}: bad address")))?;
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| Refusal::Connect(format!("dial tcp {authority}: connect: {}", go_errno(&e))))?;
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(15)));
    let connection = rustls::ClientConnection::new(Arc::new(config), name.to_owned())
        .map_err(|e| Refusal::Connect(e.to_string()))?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    let auth = creds.token.as_ref().map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let request = format!(
        "GET /api?timeout=32s HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nUser-Agent: kubectl\r\n{auth}Connection: close\r\n\r\n"
    );
    if let Err(e) = tls.write_all(request.as_bytes()).and_then(|()| tls.flush()) {
        return Err(Refusal::Connect(match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            Some(tls_error) => go_tls_error(tls_error),
            None => format!("read tcp {authority}: {e}"),
        }));
    }
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 200 {
        match tls.read(&mut byte) {
            Ok(0) => break,
            Ok(_) => head.push(byte[0]),
            Err(e) => {
                return Err(Refusal::Connect(match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                    Some(tls_error) => go_tls_error(tls_error),
                    None => format!("read tcp {authority}: {e}"),
                }));
            }
        }
    }
    let status: u16 =
        String::from_utf8_lossy(&head).split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    match status {
        401 => Err(Refusal::Unauthorized),
        0 => Err(Refusal::Connect(format!("read tcp {authority}: connection reset by peer"))),
        code => Ok(code),
    }
}

/// Go's text for a failed connect (`connection refused`, `no route to host`).
fn go_errno(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// The kubeconfig kubectl reads: `--kubeconfig`, else `$KUBECONFIG`'s first file, else
/// `~/.kube/config`.
pub fn kubeconfig_path(flag: Option<&str>) -> Option<PathBuf> {
    flag.map(PathBuf::from)
        .or_else(|| std::env::var("KUBECONFIG").ok().and_then(|k| k.split(':').next().map(PathBuf::from)))
        .or_else(|| std::env::var("HOME").ok().map(|h| Path::new(&h).join(".kube/config")))
}
