//! The in-process transport (russh): no `ssh` binary, one async session per host, keys from the
//! inventory's identity file, the agent (`SSH_AUTH_SOCK`) or `~/.ssh/id_*`, host keys checked by
//! [`super::known_hosts`]. A bastion is reached once per run and every host's session runs
//! inside a `direct-tcpip` channel of that one connection (so a run never storms the bastion's
//! sshd, whose MaxStartups drops unauthenticated connections beyond 10).
//!
//! ssh_config is read for it as for the openssh transport (`super::config`, from `ssh -G`
//! where there is an `ssh`): HostName, User, Port, IdentityFile, ProxyJump (one hop) and
//! UserKnownHostsFile, where the inventory does not set them. What it cannot do (ProxyCommand,
//! certificates, several hops; `Match` without `ssh -G`) is refused by the connector, naming
//! the host and the setting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::{Algorithm, HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use russh::{ChannelMsg, Disconnect};
use tokio::sync::OnceCell;

use super::known_hosts::{self, KnownHosts, Presented, Verdict};
use super::{Jump, Output, OutputStream, Target, Transport, TransportError, refuse_sudo_prompt};
use crate::script::Script;

/// What a run shares between its hosts: known_hosts (read once), loaded keys, the bastion
/// connection.
pub struct RusshConnector {
    /// By the files read: hosts whose ssh_config names other known_hosts files have their own.
    known: Mutex<HashMap<Vec<PathBuf>, Arc<Mutex<KnownHosts>>>>,
    /// known_hosts lines that could not be read (skipped, as ssh does; named when a key is refused).
    skipped: Mutex<Vec<known_hosts::Skipped>>,
    keys: Mutex<HashMap<PathBuf, Arc<PrivateKey>>>,
    /// Serialises appends to known_hosts (`--accept-new-host-keys`).
    record_lock: Arc<Mutex<()>>,
    bastion: OnceCell<Result<Arc<Handle<HostKeyCheck>>, TransportError>>,
}

pub struct RusshTransport {
    target: Target,
    session: Handle<HostKeyCheck>,
}

/// Unanswered keepalive probes before a host counts as lost (ssh's ServerAliveCountMax).
const KEEPALIVE_MAX: usize = 3;

impl Default for RusshConnector {
    fn default() -> Self {
        Self::new()
    }
}

impl RusshConnector {
    pub fn new() -> Self {
        RusshConnector {
            known: Mutex::new(HashMap::new()),
            skipped: Mutex::new(Vec::new()),
            keys: Mutex::new(HashMap::new()),
            record_lock: Arc::new(Mutex::new(())),
            bastion: OnceCell::new(),
        }
    }

    /// Connect and authenticate to `target`.
    pub async fn connect(&self, target: Target) -> Result<RusshTransport, TransportError> {
        let session = self.open(&target).await?;
        Ok(RusshTransport { target, session })
    }

    async fn open(&self, target: &Target) -> Result<Handle<HostKeyCheck>, TransportError> {
        let known = self.known_hosts(target)?;
        let name = known_hosts::lookup_name(target.host_name(), target.port);
        let check = HostKeyCheck::new(name.clone(), known.clone(), target, self.record_lock.clone());
        let config = client_config(&known, &name, target.server_alive_interval);
        let connect_error = |detail: String| TransportError::Connect {
            host: target.name.clone(),
            addr: format!("{}:{}", target.host_name(), target.port),
            detail,
        };
        let verdict = check.problem.clone();
        // The bastion's connection has limits of its own (it is opened as a host is).
        let bastion = match &target.bastion {
            Some(jump) => Some((jump, self.bastion(target, jump).await?)),
            None => None,
        };
        let handshake = async {
            match &bastion {
                None => client::connect(config, (target.host_name(), target.port), check).await,
                Some((jump, bastion)) => {
                    let channel = bastion
                        .channel_open_direct_tcpip(target.host_name(), u32::from(target.port), "127.0.0.1", 0)
                        .await
                        .map_err(|e| connect_error(format!("the bastion {} could not reach it: {e}", jump.host)))?;
                    client::connect_stream(config, channel.into_stream(), check).await
                }
            }
            .map_err(|e| self.host_key_error(target, &verdict).unwrap_or_else(|| connect_error(describe(&e))))
        };
        // As OpenSSH's ConnectTimeout: the limit covers the connection, the protocol handshake
        // and the key exchange. Authentication has a limit of its own, so that a slow link
        // (several round trips each) is not mistaken for a dead host.
        let limit = target.connect_timeout;
        let mut session = tokio::time::timeout(limit, handshake).await.map_err(|_| {
            connect_error(format!("no SSH handshake within the connect timeout ({}s)", limit.as_secs()))
        })??;
        let auth_error = |detail| TransportError::Auth { host: target.name.clone(), user: target.user.clone(), detail };
        let identities: Vec<PathBuf> =
            target.identity_file.iter().chain(&target.fallback_identity_files).cloned().collect();
        tokio::time::timeout(
            limit,
            self.authenticate(&mut session, &target.name, &target.user, &identities, &target.ssh_config.identity_files),
        )
        .await
        .map_err(|_| auth_error(format!("no answer to the login within {}s", limit.as_secs())))?
        .map_err(auth_error)?;
        Ok(session)
    }

    /// The one connection to the bastion, opened by the first host that needs it.
    async fn bastion(&self, target: &Target, jump: &Jump) -> Result<Arc<Handle<HostKeyCheck>>, TransportError> {
        self.bastion
            .get_or_init(|| async {
                let as_target = Target {
                    name: format!("bastion {}", jump.host),
                    address: jump.host.clone(),
                    port: jump.port,
                    user: jump.user.clone(),
                    identity_file: jump.identity_file.clone(),
                    fallback_identity_files: Vec::new(),
                    sudo: false,
                    known_hosts: target.known_hosts.clone(),
                    bastion: None,
                    connect_timeout: target.connect_timeout,
                    server_alive_interval: target.server_alive_interval,
                    accept_new_host_keys: target.accept_new_host_keys,
                    given: crate::inventory::SshGiven { user: true, port: true, sudo: true },
                    ssh_config: super::config::HostConfig::default(),
                };
                let bastion = Box::pin(self.open(&as_target)).await?;
                start_interactive_mode(&bastion).await;
                Ok(Arc::new(bastion))
            })
            .await
            .clone()
    }

    fn host_key_error(&self, target: &Target, verdict: &Arc<Mutex<Option<HostKeyProblem>>>) -> Option<TransportError> {
        let problem = verdict.lock().ok()?.take()?;
        let mut detail = problem.detail;
        if let Ok(skipped) = self.skipped.lock()
            && !skipped.is_empty()
        {
            let lines: Vec<String> = skipped.iter().map(|s| format!("{} ({})", s.origin, s.reason)).collect();
            detail.push_str(&format!(
                "\n    (known_hosts lines that could not be read were skipped: {})",
                lines.join(", ")
            ));
        }
        Some(TransportError::HostKey {
            host: target.name.clone(),
            addr: format!("{}:{}", target.host_name(), target.port),
            detail,
            changed: problem.changed,
        })
    }

    /// known_hosts of this run: the inventory's file, or ssh_config's for the host, or the
    /// user's and the system's; each list read once.
    fn known_hosts(&self, target: &Target) -> Result<Arc<Mutex<KnownHosts>>, TransportError> {
        let files = known_hosts_files(target);
        let mut cached = self.known.lock().map_err(|_| poisoned(target))?;
        if let Some(known) = cached.get(&files) {
            return Ok(known.clone());
        }
        let (known, skipped) = KnownHosts::load(&files).map_err(|e| TransportError::HostKey {
            host: target.name.clone(),
            addr: format!("{}:{}", target.host_name(), target.port),
            detail: format!("known_hosts cannot be read: {e}"),
            changed: false,
        })?;
        for line in &skipped {
            tracing::warn!(at = %line.origin, reason = %line.reason, "known_hosts line skipped");
        }
        if let Ok(mut s) = self.skipped.lock() {
            s.extend(skipped);
        }
        let known = Arc::new(Mutex::new(known));
        cached.insert(files, known.clone());
        Ok(known)
    }

    /// Public-key authentication: the inventory's identity files in order (through the agent
    /// when a file is encrypted), else ssh_config's `IdentityFile`s (`configured`) or
    /// `~/.ssh/id_{ed25519,ecdsa,rsa}`, and every agent key. Of several files, a missing one
    /// is skipped, as ssh does; all of the inventory's missing is an error.
    async fn authenticate(
        &self,
        session: &mut Handle<HostKeyCheck>,
        host: &str,
        user: &str,
        identities: &[PathBuf],
        configured: &[PathBuf],
    ) -> Result<(), String> {
        let (mut tried, mut sha1_only) = (Vec::new(), Vec::new());
        let explicit = !identities.is_empty();
        // ssh_config's files are tried as ssh tries them: one that does not exist is skipped.
        let files: Vec<PathBuf> = if explicit {
            identities.to_vec()
        } else if !configured.is_empty() {
            configured.to_vec()
        } else {
            default_identity_files()
        };
        let mut encrypted = Vec::new();
        let mut missing = Vec::new();
        for path in &files {
            match self.load_key(path) {
                Ok(key) => {
                    let hash = match key.algorithm() {
                        Algorithm::Rsa { .. } => match rsa_login_hash(session).await {
                            Some(hash) => Some(hash),
                            None => {
                                sha1_only.push(path.display().to_string());
                                continue;
                            }
                        },
                        _ => None,
                    };
                    let result = session
                        .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
                        .await
                        .map_err(|e| format!("{host}: {e}"))?;
                    if result.success() {
                        return Ok(());
                    }
                    tried.push(path.display().to_string());
                }
                Err(KeyProblem::Encrypted) => encrypted.push(path.clone()),
                Err(KeyProblem::Missing) => missing.push(path.display().to_string()),
                Err(KeyProblem::Unreadable(e)) => return Err(format!("cannot read the key {}: {e}", path.display())),
            }
        }
        if explicit && missing.len() == files.len() {
            return Err(match missing.as_slice() {
                [one] => format!("the identity file {one} does not exist"),
                all => format!("none of the identity files exists: {}", all.join(", ")),
            });
        }
        // The agent: all its keys, or only the encrypted identity files'.
        let wanted: Option<Vec<PublicKey>> = explicit.then(|| {
            encrypted
                .iter()
                .filter_map(|p| PublicKey::read_openssh_file(PathBuf::from(format!("{}.pub", p.display()))).ok())
                .collect()
        });
        if (!explicit || !encrypted.is_empty())
            && let Ok(mut agent) = russh::keys::agent::client::AgentClient::connect_env().await
        {
            let identities = agent.request_identities().await.unwrap_or_default();
            for id in identities {
                let russh::keys::agent::AgentIdentity::PublicKey { key, .. } = id else { continue };
                if wanted.as_ref().is_some_and(|w| !w.iter().any(|k| k.key_data() == key.key_data())) {
                    continue;
                }
                let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
                let hash = match key.algorithm() {
                    Algorithm::Rsa { .. } => match rsa_login_hash(session).await {
                        Some(hash) => Some(hash),
                        None => {
                            sha1_only.push(format!("agent key {fingerprint}"));
                            continue;
                        }
                    },
                    _ => None,
                };
                match session.authenticate_publickey_with(user, key, hash, &mut agent).await {
                    Ok(result) if result.success() => return Ok(()),
                    _ => tried.push(format!("agent key {fingerprint}")),
                }
            }
        }
        let mut detail = match (tried.is_empty(), sha1_only.is_empty()) {
            (true, true) => "no key to offer (no identity file in the inventory, no agent, no ~/.ssh/id_*)".to_string(),
            (true, false) => "no key could be offered".to_string(),
            (false, _) => format!("the server accepted none of: {}", tried.join(", ")),
        };
        if !sha1_only.is_empty() {
            detail.push_str(&format!(
                "; not offered: {} (RSA), since the server lists no rsa-sha2-512 or rsa-sha2-256 in server-sig-algs \
                 and an `ssh-rsa` signature is SHA-1, which kubewright refuses as OpenSSH has since 8.8: \
                 use an ed25519 key, or update the server's sshd",
                sha1_only.join(", ")
            ));
        }
        if !encrypted.is_empty() {
            let list: Vec<String> = encrypted.iter().map(|p| p.display().to_string()).collect();
            detail
                .push_str(&format!("; {} is encrypted and its key is not in the agent (ssh-add it)", list.join(", ")));
        }
        Err(detail)
    }

    fn load_key(&self, path: &Path) -> Result<Arc<PrivateKey>, KeyProblem> {
        if let Some(key) = self.keys.lock().ok().and_then(|k| k.get(path).cloned()) {
            return Ok(key);
        }
        if !path.exists() {
            return Err(KeyProblem::Missing);
        }
        let key = match russh::keys::load_secret_key(path, None) {
            Ok(key) => Arc::new(key),
            Err(russh::keys::Error::KeyIsEncrypted) => return Err(KeyProblem::Encrypted),
            Err(e) => return Err(KeyProblem::Unreadable(e.to_string())),
        };
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(path.to_path_buf(), key.clone());
        }
        Ok(key)
    }
}

/// The hash an RSA login key may sign with on this connection: the best SHA-2 one the
/// server lists in `server-sig-algs` (RFC 8308), or None, and the key is not offered.
async fn rsa_login_hash(session: &Handle<HostKeyCheck>) -> Option<HashAlg> {
    sha2_rsa_hash(session.best_supported_rsa_hash().await.ok().flatten())
}

/// From what russh reads in `server-sig-algs` (None: no list, or no RSA in it; `Some(None)`:
/// `ssh-rsa` only), the SHA-2 hash to sign with, or None. Without one the signature would be
/// `ssh-rsa` (SHA-1), which OpenSSH's ssh stopped making in 8.8: its key_sig_algorithm
/// (sshconnect2.c) then falls back to the key's own name, `ssh-rsa`, which the default
/// PubkeyAcceptedAlgorithms no longer lists, and the key is skipped.
fn sha2_rsa_hash(server_best: Option<Option<HashAlg>>) -> Option<HashAlg> {
    server_best.flatten()
}

/// Make the bastion's sshd send without delay. sshd turns Nagle's algorithm off on a
/// connection only when a session starts on it (`ssh_packet_set_interactive`, called from
/// `do_exec`), and a connection that only carries `direct-tcpip` channels never starts one: the
/// small packets a command's end produces (exit-status, eof, close) then wait for the client's
/// delayed ACK, ~40 ms per command (measured here: 50 commands through a bastion took 2.4 s,
/// 0.40 s direct, 0.52 s after this). A bastion that refuses sessions only keeps the delay.
async fn start_interactive_mode(bastion: &Handle<HostKeyCheck>) {
    let started = async {
        let mut channel = bastion.channel_open_session().await.ok()?;
        channel.exec(true, "true").await.ok()?;
        while channel.wait().await.is_some() {}
        Some(())
    };
    // A ForceCommand that never ends must not hold the run up.
    let _ = tokio::time::timeout(Duration::from_secs(3), started).await;
}

enum KeyProblem {
    Missing,
    Encrypted,
    Unreadable(String),
}

fn poisoned(target: &Target) -> TransportError {
    TransportError::Exec { host: target.name.clone(), detail: "an earlier connection attempt panicked".into() }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME").map(PathBuf::from)
}

fn default_identity_files() -> Vec<PathBuf> {
    let Some(home) = home() else { return Vec::new() };
    ["id_ed25519", "id_ecdsa", "id_rsa"].iter().map(|f| home.join(".ssh").join(f)).collect()
}

fn known_hosts_files(target: &Target) -> Vec<PathBuf> {
    match &target.known_hosts {
        Some(path) => vec![path.clone()],
        // ssh_config's UserKnownHostsFile replaces the user's file, not the system's.
        None if !target.ssh_config.user_known_hosts.is_empty() => {
            let mut files = target.ssh_config.user_known_hosts.clone();
            files.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
            files
        }
        None => {
            let mut files: Vec<PathBuf> = home().map(|h| h.join(".ssh/known_hosts")).into_iter().collect();
            files.push(PathBuf::from("/etc/ssh/ssh_known_hosts"));
            files
        }
    }
}

/// Where `--accept-new-host-keys` records keys: the inventory's file, else ssh_config's first,
/// else the user's (as ssh records in the first UserKnownHostsFile).
fn record_file(target: &Target) -> Option<PathBuf> {
    target
        .known_hosts
        .clone()
        .or_else(|| target.ssh_config.user_known_hosts.first().cloned())
        .or_else(|| home().map(|h| h.join(".ssh/known_hosts")))
}

/// Client settings: keepalive, Nagle off, and the host-key algorithms of
/// [`host_key_algorithms`], with certificates only when a CA is trusted for the host.
fn client_config(known: &Arc<Mutex<KnownHosts>>, name: &str, keepalive: Duration) -> Arc<client::Config> {
    let mut config = client::Config {
        keepalive_interval: Some(keepalive),
        keepalive_max: KEEPALIVE_MAX,
        // Without it every small packet waits for the peer's delayed ACK (~40 ms), on the
        // direct connection and, through a bastion, on the tunnel's carrier as well.
        nodelay: true,
        ..Default::default()
    };
    let (recorded, with_ca) = match known.lock() {
        Ok(k) => (k.recorded_algorithms(name), k.has_cert_authority_for(name)),
        Err(_) => (Vec::new(), false),
    };
    let keys = host_key_algorithms(&recorded);
    if with_ca {
        config.preferred.host_key_certificates = keys.clone().into();
    }
    config.preferred.key = keys.into();
    Arc::new(config)
}

/// The host-key algorithms asked for, most wanted first: russh's defaults without `ssh-rsa`
/// (RSA signatures over SHA-1, which OpenSSH stopped offering and accepting in 8.8; its
/// default list, KEX_DEFAULT_PK_ALG in myproposal.h, ends with rsa-sha2-512,rsa-sha2-256),
/// and, as ssh's order_hostkeyalgs (sshconnect2.c) does, those whose key type known_hosts
/// records for the host moved to the front in that order. A recorded RSA key (its type reads
/// as `ssh-rsa` whatever it signs with) thus asks for rsa-sha2-512, then rsa-sha2-256: asking
/// for `ssh-rsa` would get no RSA key from OpenSSH >= 8.8, which would present its ed25519 key
/// instead, and that key would look like a changed one.
fn host_key_algorithms(recorded: &[Algorithm]) -> Vec<Algorithm> {
    let accepted: Vec<Algorithm> =
        client::Config::default().preferred.key.iter().filter(|a| !is_sha1_rsa(a)).cloned().collect();
    let is_rsa = |a: &Algorithm| matches!(a, Algorithm::Rsa { .. });
    let is_recorded = |a: &Algorithm| recorded.iter().any(|r| r == a || (is_rsa(r) && is_rsa(a)));
    let (mut keys, others): (Vec<Algorithm>, Vec<Algorithm>) = accepted.into_iter().partition(|a| is_recorded(a));
    keys.extend(others);
    keys
}

/// `ssh-rsa`: RSA with SHA-1 (RFC 8332 names the SHA-2 ones rsa-sha2-256 and rsa-sha2-512).
fn is_sha1_rsa(a: &Algorithm) -> bool {
    matches!(a, Algorithm::Rsa { hash: None })
}

fn describe(e: &russh::Error) -> String {
    match e {
        russh::Error::IO(io) => io.to_string(),
        russh::Error::Disconnect | russh::Error::HUP => "the server closed the connection during the handshake".into(),
        russh::Error::NoCommonAlgo { kind: russh::AlgorithmKind::Key, ours, theirs } => {
            let mut text = format!(
                "no host-key algorithm in common: the host offers {}, kubewright accepts {}",
                theirs.join(","),
                ours.join(",")
            );
            if theirs.iter().any(|a| a == "ssh-rsa") {
                text.push_str(&format!("; {}", super::SHA1_RSA_REFUSED));
            }
            text
        }
        other => other.to_string(),
    }
}

struct HostKeyProblem {
    detail: String,
    changed: bool,
}

/// The russh handler: checks the host key against known_hosts, and records a new one when
/// the run was started with `--accept-new-host-keys`.
pub struct HostKeyCheck {
    name: String,
    known: Arc<Mutex<KnownHosts>>,
    record_to: Option<PathBuf>,
    record_lock: Arc<Mutex<()>>,
    problem: Arc<Mutex<Option<HostKeyProblem>>>,
}

impl HostKeyCheck {
    fn new(name: String, known: Arc<Mutex<KnownHosts>>, target: &Target, record_lock: Arc<Mutex<()>>) -> Self {
        HostKeyCheck {
            name,
            known,
            record_to: if target.accept_new_host_keys { record_file(target) } else { None },
            record_lock,
            problem: Arc::new(Mutex::new(None)),
        }
    }

    fn refuse(&self, detail: String, changed: bool) -> bool {
        if let Ok(mut p) = self.problem.lock() {
            *p = Some(HostKeyProblem { detail, changed });
        }
        false
    }

    fn record(&self, key: &PublicKey) -> Result<String, String> {
        use std::io::Write;
        let path = self.record_to.as_ref().ok_or("nowhere to record it")?;
        let _guard = self.record_lock.lock().map_err(|_| "poisoned lock")?;
        if let Some(dir) = path.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        }
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writeln!(file, "{}", known_hosts::line_for(&self.name, key)).map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        Ok(path.display().to_string())
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(&mut self, server_key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let plain = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => PublicKey::new(cert.public_key().clone(), ""),
        };
        let presented = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => Presented::Key(key),
            PublicKeyOrCertificate::Certificate(cert) => Presented::Certificate(cert),
        };
        let verdict = match self.known.lock() {
            Ok(known) => known.check(&self.name, &presented, now),
            Err(_) => return Ok(self.refuse("known_hosts could not be consulted".into(), false)),
        };
        let fingerprint = plain.fingerprint(HashAlg::Sha256);
        let line = known_hosts::line_for(&self.name, &plain);
        Ok(match verdict {
            Verdict::Trusted => true,
            Verdict::Unknown if self.record_to.is_some() => match self.record(&plain) {
                Ok(origin) => {
                    if let Ok(mut known) = self.known.lock() {
                        known.add(&self.name, plain.clone(), origin);
                    }
                    true
                }
                Err(e) => self.refuse(format!("it is new and could not be recorded: {e}"), false),
            },
            Verdict::Unknown => self.refuse(
                format!("it is not in known_hosts; it presents {fingerprint}; the known_hosts line is:\n    {line}"),
                false,
            ),
            Verdict::Changed { recorded_at } => self.refuse(
                format!(
                    "its key CHANGED since it was recorded ({}); it now presents {fingerprint}; the new line would be:\n    {line}",
                    recorded_at.join(", ")
                ),
                true,
            ),
            Verdict::Revoked { origin } => {
                self.refuse(format!("it presents {fingerprint}, which is marked @revoked at {origin}"), true)
            }
            Verdict::BadCertificate { reason } => {
                self.refuse(format!("its host certificate is refused: {reason}"), false)
            }
        })
    }
}

/// Lines of one output stream, split as they arrive; the raw bytes are kept whole.
#[derive(Default)]
struct LineSplitter {
    all: Vec<u8>,
    /// Where the current, unfinished line starts in `all`.
    line_start: usize,
}

impl LineSplitter {
    fn feed(&mut self, data: &[u8], stream: OutputStream, on_line: &mut (dyn FnMut(OutputStream, &str) + Send)) {
        // Only the new bytes can end a line: a long line arriving in many pieces is scanned once.
        let mut scan_from = self.all.len();
        self.all.extend_from_slice(data);
        while let Some(offset) = self.all[scan_from..].iter().position(|&b| b == b'\n') {
            let newline = scan_from + offset;
            on_line(stream, &String::from_utf8_lossy(&self.all[self.line_start..newline]));
            self.line_start = newline + 1;
            scan_from = newline + 1;
        }
    }

    fn finish(&mut self, stream: OutputStream, on_line: &mut (dyn FnMut(OutputStream, &str) + Send)) -> Vec<u8> {
        if self.line_start < self.all.len() {
            on_line(stream, &String::from_utf8_lossy(&self.all[self.line_start..]));
        }
        std::mem::take(&mut self.all)
    }
}

/// What a command returned, before text conversion (a download needs the exact bytes).
struct RawOutput {
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl RusshTransport {
    pub async fn close(self) {
        let _ = self.session.disconnect(Disconnect::ByApplication, "", "en").await;
    }

    fn exec_error(&self, detail: impl std::fmt::Display) -> TransportError {
        TransportError::Exec { host: self.target.name.clone(), detail: detail.to_string() }
    }

    /// What the host answered with a failure (the command ran to its end), or a local file
    /// error of a transfer.
    fn refused(&self, detail: impl std::fmt::Display) -> TransportError {
        TransportError::Failed { host: self.target.name.clone(), detail: detail.to_string() }
    }

    /// Run a remote command line, `input` on its stdin (then EOF), lines to `on_line`.
    async fn exec(
        &self,
        command: &str,
        input: &[u8],
        on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<RawOutput, TransportError> {
        self.exec_io(command, input, !input.is_empty(), None, on_line).await
    }

    /// [`RusshTransport::exec`] with stdin read from `input` (`has_input`: there is some) in
    /// pieces as the channel's window allows, and stdout written to `stdout_to` as it arrives
    /// when given (a file downloaded: never held whole, never split into lines).
    async fn exec_io<R: tokio::io::AsyncRead + Unpin>(
        &self,
        command: &str,
        input: R,
        has_input: bool,
        mut stdout_to: Option<&mut tokio::fs::File>,
        on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<RawOutput, TransportError> {
        use tokio::io::AsyncWriteExt;
        let channel = self.session.channel_open_session().await.map_err(|e| self.exec_error(e))?;
        channel.exec(true, command).await.map_err(|e| self.exec_error(e))?;
        let (mut read, write) = channel.split();
        // Stdin is written while output is read: a command may answer before it has read all.
        let send = async {
            if has_input {
                write.data(input).await?;
            }
            write.eof().await
        };
        let receive = async {
            let mut local_error = None;
            let (mut stdout, mut stderr) = (LineSplitter::default(), LineSplitter::default());
            let mut code = None;
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => match stdout_to.as_mut() {
                        Some(file) => {
                            if local_error.is_none()
                                && let Err(e) = file.write_all(&data).await
                            {
                                local_error = Some(e);
                            }
                        }
                        None => stdout.feed(&data, OutputStream::Stdout, on_line),
                    },
                    ChannelMsg::ExtendedData { data, ext: 1 } => stderr.feed(&data, OutputStream::Stderr, on_line),
                    ChannelMsg::ExitStatus { exit_status } => code = Some(exit_status as i32),
                    _ => {}
                }
            }
            let raw = RawOutput {
                code,
                stdout: stdout.finish(OutputStream::Stdout, on_line),
                stderr: stderr.finish(OutputStream::Stderr, on_line),
            };
            (raw, local_error)
        };
        // The output ends when the channel closes; a write still waiting for window space
        // then never finishes (a dead connection does not wake it), so it is dropped.
        tokio::pin!(send, receive);
        let mut sent = None;
        let (raw, local_error) = loop {
            tokio::select! {
                result = &mut send, if sent.is_none() => sent = Some(result),
                received = &mut receive => break received,
            }
        };
        // A command that exits without reading its input closes the channel first; what it
        // said counts, not the write that failed.
        if raw.code.is_none() {
            match sent {
                Some(Err(e)) => return Err(self.exec_error(e)),
                None if has_input => {
                    return Err(self.exec_error("the connection closed while its input was being sent"));
                }
                _ => {}
            }
        }
        if raw.code.is_none() && self.session.is_closed() {
            return Err(self.exec_error("the connection closed before the command finished"));
        }
        if let Some(e) = local_error {
            return Err(self.exec_error(format!("cannot write what arrived: {e}")));
        }
        Ok(raw)
    }

    fn text(&self, raw: RawOutput) -> Result<Output, TransportError> {
        refuse_sudo_prompt(
            &self.target,
            Output {
                code: raw.code,
                stdout: String::from_utf8_lossy(&raw.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&raw.stderr).into_owned(),
            },
        )
    }
}

impl Transport for RusshTransport {
    fn target(&self) -> &Target {
        &self.target
    }

    async fn run_streaming(
        &self,
        script: &Script,
        on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<Output, TransportError> {
        let raw = self.exec(&self.target.wrap(script), &[], on_line).await?;
        self.text(raw)
    }

    async fn run_with_input(&self, script: &Script, input: &[u8]) -> Result<Output, TransportError> {
        let raw = self.exec(&self.target.wrap(script), input, &mut |_, _| {}).await?;
        self.text(raw)
    }

    async fn upload_file(
        &self,
        path: &str,
        source: &std::path::Path,
        sha256: &str,
        mode: u32,
        owner: &str,
    ) -> Result<(), TransportError> {
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| self.refused(format!("cannot read {}: {e}", source.display())))?;
        let script =
            Script::new().cmd(["sh", "-c", crate::ssh::upload_script_checked(path, mode, owner, sha256).as_str()]);
        let raw =
            self.exec_io(&self.target.wrap(&script), file, true, None, &mut |_, _| {}).await.map_err(|e| match e {
                TransportError::Exec { host, detail } => {
                    TransportError::Exec { host, detail: format!("upload of {path} interrupted: {detail}") }
                }
                other => other,
            })?;
        crate::ssh::upload_result(&self.target, path, self.text(raw)?)
    }

    async fn download_to(&self, path: &str, dest: &std::path::Path) -> Result<(), TransportError> {
        let command = self.target.wrap_shell(&format!("cat {}", crate::script::quote(path)));
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| self.refused(format!("cannot write {}: {e}", dest.display())))?;
        let raw = self.exec_io(&command, tokio::io::empty(), false, Some(&mut file), &mut |_, _| {}).await?;
        if raw.code != Some(0) {
            let out = self.text(raw)?;
            return Err(self.refused(format!("reading {path} failed: {}", out.stderr.trim())));
        }
        file.sync_all().await.map_err(|e| self.refused(format!("cannot write {}: {e}", dest.display())))
    }

    async fn download(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        let command = self.target.wrap_shell(&format!("cat {}", crate::script::quote(path)));
        let raw = self.exec(&command, &[], &mut |_, _| {}).await?;
        if raw.code != Some(0) {
            let out = self.text(raw)?;
            return Err(self.refused(format!("reading {path} failed: {}", out.stderr.trim())));
        }
        Ok(raw.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(algorithms: &[Algorithm]) -> Vec<String> {
        algorithms.iter().map(ToString::to_string).collect()
    }

    /// Issue 18 (run-safety review, item 7): known_hosts with only the host's RSA key.
    #[test]
    fn issue_18_a_recorded_rsa_key_asks_for_sha2_signatures_first_and_sha1_is_never_offered() {
        let (known, _) = KnownHosts::parse(&format!("10.0.0.5 {RSA_HOST_KEY}\n"), Path::new("kh"));
        assert_eq!(
            names(&host_key_algorithms(&known.recorded_algorithms("10.0.0.5"))),
            [
                "rsa-sha2-512",
                "rsa-sha2-256",
                "ssh-ed25519",
                "ecdsa-sha2-nistp256",
                "ecdsa-sha2-nistp384",
                "ecdsa-sha2-nistp521"
            ]
        );
        // Nothing recorded, or another type: ed25519 first, and still no ssh-rsa anywhere.
        for recorded in [vec![], vec![Algorithm::Ed25519]] {
            let offered = names(&host_key_algorithms(&recorded));
            assert_eq!(offered.first().map(String::as_str), Some("ssh-ed25519"));
            assert!(!offered.iter().any(|a| a == "ssh-rsa"), "{offered:?}");
        }
    }

    #[test]
    fn issue_18_rsa_login_keys_sign_with_sha2_or_are_not_offered() {
        assert_eq!(sha2_rsa_hash(Some(Some(HashAlg::Sha512))), Some(HashAlg::Sha512));
        assert_eq!(sha2_rsa_hash(Some(Some(HashAlg::Sha256))), Some(HashAlg::Sha256));
        // Only ssh-rsa listed, or no list at all: SHA-1 would be the signature; no key.
        assert_eq!(sha2_rsa_hash(Some(None)), None);
        assert_eq!(sha2_rsa_hash(None), None);
    }

    #[test]
    fn issue_18_the_client_offers_no_compression() {
        let known = Arc::new(Mutex::new(KnownHosts::default()));
        let config = client_config(&known, "10.0.0.5", Duration::from_secs(5));
        let offered: Vec<&str> = config.preferred.compression.iter().map(AsRef::as_ref).collect();
        assert_eq!(offered, ["none"]);
    }

    /// A 2048-bit RSA public key, as `ssh-keygen -t rsa` makes them.
    const RSA_HOST_KEY: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCZW3L7mxTD4msa6TJc03WnoTq5HxrH7P3GC8FI63/uyecBXN2BNC0OhiNPJhP9UWLfN76jlai8X6QWvRln/02R8Fw8G3DCL8o9UsdUXJFZEDnlG6LTs6p9v8YHfjTZD7q/fTBrrcuqdFX9ulSsTbQYKVgFDh3xapA3W4qPmN4mkbxoDkINXnNB/yEVRK50gko22cK1bSy5mIK2RmAh1SbjzZJ4vThHCuuE4CSW7Ha3hZ7W1PdnaL1/oJIPLZwZcxRMIHm9IRfN+V9F4g9FxfNSTjy5yzSdAQLfHsqAvEb1Wkf+pAblXQMlfTyWxdBV/KxVvAsz1xBy0pfrPoayaWI9";

    #[test]
    fn lines_split_across_pieces_arrive_whole_and_the_bytes_are_kept() {
        let mut lines = Vec::new();
        let mut on_line = |_: OutputStream, l: &str| lines.push(l.to_string());
        let mut split = LineSplitter::default();
        for piece in [&b"fir"[..], b"st\nsec", b"ond\n\nthi", b"rd"] {
            split.feed(piece, OutputStream::Stdout, &mut on_line);
        }
        let all = split.finish(OutputStream::Stdout, &mut on_line);
        assert_eq!(lines, ["first", "second", "", "third"]);
        assert_eq!(all, b"first\nsecond\n\nthird");
    }
}
