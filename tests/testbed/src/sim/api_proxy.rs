//! The local API proxy (kubewright's `loadBalancer.type: local`, issue 19): a worker's haproxy
//! static pod is the real haproxy of this machine's Debian package, run by the host's init as
//! the kubelet runs a static pod ([`super::pod`]), with the manifest's command and the
//! configuration kubewright rendered (the hostPath volume, at the path the container mounts
//! it). Its health checks of the control planes' API servers (`GET /readyz` over TLS) and its
//! forwarding are haproxy's own.
//!
//! A host reaches its own proxy through the network ([`request_readyz`]); a peer judging that
//! host's kubelet sees the proxy the way an operator would from outside: through its log
//! ([`servers_left`]), where haproxy says which servers its checks took down or brought back.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

use super::pod::{PodKind, PodStatus};

/// Where a host finds the haproxy image's program and the libraries it links beyond glibc
/// (the bed's read-only bin directory; glibc is the host's own, Debian 12's as on this machine).
pub const IMAGE_DIR: &str = "/opt/kubewright-sim/haproxy";
const MANIFESTS: &str = "/etc/kubernetes/manifests";

/// The proxy's static pod: whichever manifest runs an haproxy image.
pub static POD: PodKind = PodKind {
    program: "haproxy",
    manifest: || manifest_in(Path::new(MANIFESTS)),
    command,
    log_file: "api-proxy.log",
    status_file: "api-proxy-pod.json",
};

/// The first manifest (by name) in `dir` whose container image is haproxy's.
pub fn manifest_in(dir: &Path) -> Option<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    paths.into_iter().find(|p| {
        std::fs::read_to_string(p).is_ok_and(|text| {
            text.lines().any(|l| l.trim_start().strip_prefix("image:").is_some_and(|i| i.contains("haproxy")))
        })
    })
}

/// The container's command (`command` then `args`), its hostPath volumes put where the
/// container mounts them: the program is the image's haproxy, its files the host's.
fn command(manifest: &str) -> anyhow::Result<Command> {
    let pod: Value = serde_saphyr::from_str(manifest).context("the manifest is not valid YAML")?;
    let container = &pod["spec"]["containers"][0];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
    };
    let mut argv = strings(&container["command"]);
    argv.extend(strings(&container["args"]));
    let volumes = pod["spec"]["volumes"].as_array().cloned().unwrap_or_default();
    let host_path = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"].as_str() == Some(name))
            .and_then(|v| v["hostPath"]["path"].as_str().map(str::to_string))
    };
    let mounts: Vec<(String, String)> = container["volumeMounts"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|m| Some((m["mountPath"].as_str()?.to_string(), host_path(m["name"].as_str()?)?)))
                .collect()
        })
        .unwrap_or_default();
    for arg in &mut argv {
        if let Some((inside, outside)) =
            mounts.iter().find(|(inside, _)| arg == inside || arg.starts_with(&format!("{inside}/")))
        {
            *arg = format!("{outside}{}", &arg[inside.len()..]);
        }
    }
    match argv.first().map(String::as_str) {
        Some("haproxy") | Some("/usr/local/sbin/haproxy") | Some("/usr/sbin/haproxy") => {}
        Some(other) => bail!("exec: \"{other}\": executable file not found in $PATH: the haproxy image runs haproxy"),
        None => bail!("the container has no command, and the simulated haproxy image no default one"),
    }
    let image = Path::new(IMAGE_DIR);
    let mut cmd = Command::new(image.join("haproxy"));
    cmd.args(&argv[1..]).env("LD_LIBRARY_PATH", image.join("lib"));
    Ok(cmd)
}

/// This machine's haproxy (`KUBEWRIGHT_TESTBED_HAPROXY`, else Debian's /usr/sbin/haproxy), if
/// it is installed: the bed's hosts run it.
pub fn machine_haproxy() -> Option<PathBuf> {
    let path = std::env::var_os("KUBEWRIGHT_TESTBED_HAPROXY")
        .map_or_else(|| PathBuf::from("/usr/sbin/haproxy"), PathBuf::from);
    path.is_file().then_some(path)
}

/// This host's proxy pod, as the runner left it.
pub fn pod_status() -> PodStatus {
    super::pod::read_status(&super::host::state_dir(), &POD)
}

/// How many servers the proxy whose simulator state is `state_dir` (this host's or a peer's)
/// has for its backend, as its health checks last concluded: None when it does not run. haproxy
/// starts with every server up, and says each change in its log ("Server control-planes/cp1 is
/// DOWN, reason: ... 1 active and 0 backup servers left."; "... is UP, ... 2 active and 0
/// backup servers online."): the last such line of this run tells.
pub fn servers_left(state_dir: &Path, configured: usize) -> Option<usize> {
    let status = super::pod::read_status(state_dir, &POD);
    status.pid?;
    let log = std::fs::read(state_dir.join(POD.log_file)).unwrap_or_default();
    let from = usize::try_from(status.log_offset).unwrap_or(usize::MAX).min(log.len());
    let this_run = String::from_utf8_lossy(&log[from..]);
    let last = this_run
        .lines()
        .filter(|l| l.starts_with("Server ") && (l.contains(" is DOWN") || l.contains(" is UP")))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.windows(3).position(|w| w[1] == "active" && w[2] == "and")?;
            words[at].parse::<usize>().ok()
        })
        .next_back();
    Some(last.unwrap_or(configured))
}

/// `GET /readyz` through the proxy listening at `addr` (`127.0.0.1:PORT`) on this host, over
/// TLS (the server's certificate is not checked: this asks whether an API server answers
/// behind the proxy, not whether the client would trust it): Ok with the HTTP status line, or
/// how the connection ended, as Go prints it.
pub fn request_readyz(addr: &str) -> Result<String, String> {
    let socket: std::net::SocketAddr = addr.parse().map_err(|_| format!("dial tcp {addr}: bad address"))?;
    let tcp = std::net::TcpStream::connect_timeout(&socket, Duration::from_secs(5))
        .map_err(|e| format!("dial tcp {addr}: connect: {}", go_error(&e)))?;
    // haproxy tries a dead server 3 times, 5 s each at most, before it gives up on the client.
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(20)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(20)));
    let local = tcp.local_addr().map_or_else(|_| "127.0.0.1".to_string(), |a| a.to_string());
    let ended = |e: &std::io::Error| format!("read tcp {local}->{addr}: read: {}", go_error(e));
    #[allow(deprecated)] // ring: see the API server's own configuration
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    // The handshake happens on the first write: a proxy with no server left closes it there.
    tls.write_all(b"GET /readyz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").map_err(|e| ended(&e))?;
    let mut head = [0u8; 64];
    let n = tls.read(&mut head).map_err(|e| ended(&e))?;
    if n == 0 {
        return Err(ended(&std::io::ErrorKind::ConnectionReset.into()));
    }
    Ok(String::from_utf8_lossy(&head[..n]).lines().next().unwrap_or_default().to_string())
}

fn go_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof => "connection reset by peer".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => e.to_string(),
    }
}

/// A verifier that takes any server certificate, its signatures still checked by the provider
/// (haproxy's `verify none` checks, kubectl's `insecure-skip-tls-verify`).
#[derive(Debug)]
pub(crate) struct AnyServer(pub(crate) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: kubewright-api-proxy
spec:
  containers:
    - name: haproxy
      image: "haproxy:2.8"
      command: ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
      volumeMounts:
        - name: config
          mountPath: /usr/local/etc/haproxy/haproxy.cfg
          readOnly: true
  volumes:
    - name: config
      hostPath:
        path: "/etc/kubewright/api-proxy.cfg"
        type: File
"#;

    #[test]
    fn the_command_is_the_images_haproxy_with_the_hosts_configuration() {
        let cmd = command(MANIFEST).expect("a command");
        assert_eq!(cmd.get_program(), Path::new(IMAGE_DIR).join("haproxy"));
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(args, ["-W", "-db", "-f", "/etc/kubewright/api-proxy.cfg"]);
        let other = MANIFEST.replace("[\"haproxy\",", "[\"nginx\",");
        let err = command(&other).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("\"nginx\": executable file not found"), "{err}");
    }

    #[test]
    fn the_servers_left_are_the_last_state_change_of_this_run() {
        let dir = std::env::temp_dir().join(format!("kw-api-proxy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let earlier =
            "Server control-planes/cp1 is DOWN, reason: Layer4 timeout. 0 active and 0 backup servers left.\n";
        let status = |pid: Option<i32>| {
            let s = PodStatus { pid, log_offset: earlier.len() as u64, ..Default::default() };
            std::fs::write(dir.join(POD.status_file), serde_json::to_vec(&s).expect("json")).expect("write status");
        };
        let log = |text: &str| std::fs::write(dir.join(POD.log_file), format!("{earlier}{text}")).expect("write log");
        status(None);
        log("");
        assert_eq!(servers_left(&dir, 2), None, "not running");
        status(Some(7));
        assert_eq!(servers_left(&dir, 2), Some(2), "a new run starts with every server up");
        log(concat!(
            "[WARNING]  (9) : Server control-planes/cp1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.\n",
            "Server control-planes/cp1 is DOWN, reason: Layer4 connection problem, info: \"Connection refused\", check duration: 0ms. 1 active and 0 backup servers left. 0 sessions active, 0 requeued, 0 remaining in queue.\n",
            "Server control-planes/cp2 is DOWN, reason: Layer7 wrong status, code: 500. 0 active and 0 backup servers left.\n",
            "backend control-planes has no server available!\n",
        ));
        assert_eq!(servers_left(&dir, 2), Some(0));
        log(
            "Server control-planes/cp2 is UP, reason: Layer7 check passed, code: 200. 1 active and 0 backup servers online.\n",
        );
        assert_eq!(servers_left(&dir, 2), Some(1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
