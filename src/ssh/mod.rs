//! Running scripts on hosts over SSH. One small trait, [`Transport`], and its backends.
//! This is an I/O edge: the pure core never imports it.
//!
//! A step's commands reach a host as one `sh` script (one round trip), through `sudo -n` when
//! the inventory says `become`. Host keys are checked against known_hosts; an unknown or
//! changed key is refused with its fingerprint and the line to add.

pub mod config;
pub mod connector;
#[cfg(feature = "russh")]
pub mod known_hosts;
pub mod openssh;
#[cfg(feature = "russh")]
pub mod russh;

use std::path::PathBuf;
use std::time::Duration;

use crate::inventory::{Host, Inventory, SshGiven};
pub use connector::{Connect, Connector, Session, TransportKind};

use crate::script::{Script, quote};

/// Where and how to reach one host, resolved from the inventory.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub user: String,
    pub identity_file: Option<PathBuf>,
    /// Keys offered after `identity_file`, in order, when the server refuses the ones before.
    pub fallback_identity_files: Vec<PathBuf>,
    pub sudo: bool,
    pub known_hosts: Option<PathBuf>,
    /// The jump host, if any.
    pub bastion: Option<Jump>,
    pub connect_timeout: Duration,
    /// A silent connection is probed this often; three unanswered probes end it.
    pub server_alive_interval: Duration,
    /// Trust a host key seen for the first time (and record it), instead of refusing.
    pub accept_new_host_keys: bool,
    /// Which of `user`, `port` and `sudo` the inventory gives: [`config::resolve`] replaces
    /// the others with what ssh_config says, when the connector reads it.
    pub given: SshGiven,
    /// What ssh_config says for this host (empty until the connector has read it).
    pub ssh_config: config::HostConfig,
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

impl Target {
    pub fn from_inventory(inv: &Inventory, host: &Host, accept_new_host_keys: bool) -> Target {
        Target {
            name: host.name.clone(),
            address: host.address.clone(),
            port: host.ssh.port,
            user: host.ssh.user.clone(),
            identity_file: host.ssh.identity_file.as_deref().map(expand_home),
            fallback_identity_files: host.ssh.fallback_identity_files.iter().map(|f| expand_home(f)).collect(),
            sudo: host.ssh.sudo,
            known_hosts: inv.ssh.known_hosts.as_deref().map(expand_home),
            bastion: inv.ssh.bastion.as_ref().map(|b| Jump {
                host: b.host.clone(),
                user: b.user.clone(),
                port: b.port,
                identity_file: b
                    .identity_file
                    .as_deref()
                    .map(expand_home)
                    .or_else(|| host.ssh.identity_file.as_deref().map(expand_home)),
            }),
            connect_timeout: Duration::from_secs(inv.ssh.connect_timeout.seconds.max(1)),
            server_alive_interval: Duration::from_secs(inv.ssh.server_alive_interval.seconds.max(1)),
            accept_new_host_keys,
            given: host.ssh.given,
            ssh_config: config::HostConfig::default(),
        }
    }

    /// Where the connection goes: ssh_config's `HostName` for this host, else its address.
    pub fn host_name(&self) -> &str {
        self.ssh_config.hostname.as_deref().unwrap_or(&self.address)
    }

    /// The command line the remote login shell runs for `script`.
    pub fn wrap(&self, script: &Script) -> String {
        self.wrap_shell(&script.to_shell())
    }

    /// The command line that runs the shell text `sh_text` under `sh -c`, through `sudo -n`
    /// when this host needs it.
    pub fn wrap_shell(&self, sh_text: &str) -> String {
        let sh = format!("sh -c {}", quote(sh_text));
        if self.sudo { format!("sudo -n {sh}") } else { sh }
    }
}

/// A jump host (ProxyJump).
#[derive(Debug, Clone)]
pub struct Jump {
    pub host: String,
    pub user: String,
    pub port: u16,
    pub identity_file: Option<PathBuf>,
}

/// What a script did on a host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Output {
    /// None when the remote process was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("{host}: cannot connect to {addr}: {detail}")]
    Connect { host: String, addr: String, detail: String },
    #[error("{host}: the host key of {addr} is not trusted: {detail}")]
    HostKey { host: String, addr: String, detail: String, changed: bool },
    #[error("{host}: cannot log in as {user}: {detail}")]
    Auth { host: String, user: String, detail: String },
    #[error("{host}: `sudo -n` needs a password for user {user}")]
    SudoPassword { host: String, user: String },
    #[error("{host}: the connection failed while running a command: {detail}")]
    Exec { host: String, detail: String },
    /// ssh_config cannot be read for the host, or says what the transport cannot do.
    #[error("{host}: {detail}")]
    Config { host: String, detail: String },
    /// A transfer's command ran to its end on the host and failed (a write refused, a file
    /// missing): nothing of it is still under way there.
    #[error("{host}: {detail}")]
    Failed { host: String, detail: String },
}

impl TransportError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            TransportError::Connect { .. } => {
                "check the address, the port and that sshd runs; `ssh -v` to the same host shows more".into()
            }
            TransportError::HostKey { changed, .. } => {
                if *changed {
                    "do not connect until you know why the key changed (reinstalled host, or an attack); then replace its line in known_hosts".into()
                } else {
                    "add the line above to your known_hosts after checking the fingerprint, or run once with --accept-new-host-keys".into()
                }
            }
            TransportError::Auth { user, .. } => format!(
                "check the host's identityFile in the inventory (or the agent's keys) and that its public key is in ~{user}/.ssh/authorized_keys on the host"
            ),
            TransportError::SudoPassword { user, .. } => {
                format!(
                    "give {user} passwordless sudo (e.g. `{user} ALL=(ALL) NOPASSWD:ALL` in /etc/sudoers.d/), or connect as root"
                )
            }
            TransportError::Config { .. } => {
                "fix what the message names in ssh_config (`ssh -G ADDRESS` shows what ssh makes of it for the host), or set the value in the inventory's `ssh` section, which wins over ssh_config".into()
            }
            TransportError::Exec { .. } => "the host may have rebooted or its link dropped; re-run to retry".into(),
            TransportError::Failed { .. } => {
                "the host answered, but refused: fix what the message names (a full disk, a missing file, permissions), then run again".into()
            }
        }
    }
}

/// Which of a remote command's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

/// One authenticated session to one host.
#[allow(async_fn_in_trait)]
pub trait Transport: Send + Sync {
    fn target(&self) -> &Target;
    /// Run `script` (under `sh -c`, through `sudo -n` if the host needs it).
    async fn run(&self, script: &Script) -> Result<Output, TransportError> {
        self.run_streaming(script, &mut |_, _| {}).await
    }
    /// Run `script`, handing each line of its output to `on_line` as it arrives (for long
    /// commands whose progress the admin watches); the whole output is returned as well.
    async fn run_streaming(
        &self,
        script: &Script,
        on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<Output, TransportError>;
    /// Run `script` with `input` on its standard input.
    async fn run_with_input(&self, script: &Script, input: &[u8]) -> Result<Output, TransportError>;
    /// Write `data` to `path` atomically: a temporary file in the same directory, fsynced,
    /// given `mode` and `owner`, then renamed over `path`. An interrupted upload leaves the
    /// old file as it was.
    async fn upload(&self, path: &str, data: &[u8], mode: u32, owner: &str) -> Result<(), TransportError> {
        let script = Script::new().cmd(["sh", "-c", upload_script(path, mode, owner).as_str()]);
        let out = self.run_with_input(&script, data).await.map_err(|e| match e {
            TransportError::Exec { host, detail } => {
                TransportError::Exec { host, detail: format!("upload of {path} interrupted: {detail}") }
            }
            other => other,
        })?;
        upload_result(self.target(), path, out)
    }
    /// Read a file.
    async fn download(&self, path: &str) -> Result<Vec<u8>, TransportError>;
    /// Send the bastion's file `source` to `path`, atomically as [`Transport::upload`] does;
    /// the host refuses it (nothing replaced) unless its SHA-256 is `sha256`, so a file that
    /// changed since it was planned never lands. In pieces, from the file: a snapshot of
    /// gigabytes is never held in memory (no default: a wrapper that forgot to forward it would
    /// read the whole file), and the bastion reads it once per host, hashing it never.
    async fn upload_file(
        &self,
        path: &str,
        source: &std::path::Path,
        sha256: &str,
        mode: u32,
        owner: &str,
    ) -> Result<(), TransportError>;
    /// Copy the host's file `path` into the local file `dest` (created, or truncated), in
    /// pieces, as [`Transport::upload_file`] sends one.
    async fn download_to(&self, path: &str, dest: &std::path::Path) -> Result<(), TransportError>;
}

/// What an upload's script said, as an error when it failed.
pub fn upload_result(target: &Target, path: &str, out: Output) -> Result<(), TransportError> {
    if !out.success() {
        return Err(TransportError::Failed {
            host: target.name.clone(),
            detail: format!("writing {path} failed ({:?}): {}", out.code, out.stderr.trim()),
        });
    }
    Ok(())
}

/// Implements [`Transport`] for a wrapper of a session by handing every call to the session.
macro_rules! forward_transport {
    ($($wrapper:tt)*) => {
        impl<T: Transport> Transport for $($wrapper)* {
            fn target(&self) -> &Target {
                (**self).target()
            }

            async fn run_streaming(
                &self,
                script: &Script,
                on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
            ) -> Result<Output, TransportError> {
                (**self).run_streaming(script, on_line).await
            }

            async fn run_with_input(&self, script: &Script, input: &[u8]) -> Result<Output, TransportError> {
                (**self).run_with_input(script, input).await
            }

            async fn upload(&self, path: &str, data: &[u8], mode: u32, owner: &str) -> Result<(), TransportError> {
                (**self).upload(path, data, mode, owner).await
            }

            async fn download(&self, path: &str) -> Result<Vec<u8>, TransportError> {
                (**self).download(path).await
            }

            async fn upload_file(
                &self,
                path: &str,
                source: &std::path::Path,
                sha256: &str,
                mode: u32,
                owner: &str,
            ) -> Result<(), TransportError> {
                (**self).upload_file(path, source, sha256, mode, owner).await
            }

            async fn download_to(&self, path: &str, dest: &std::path::Path) -> Result<(), TransportError> {
                (**self).download_to(path, dest).await
            }
        }
    };
}

// A borrowed session is a session: lets the lock and the executor share one connection.
forward_transport!(&T);
// A shared session is a session: the executor's sessions are shared by its hosts' work, the
// lock and its heartbeat.
forward_transport!(std::sync::Arc<T>);

/// Refuse an output that is sudo asking for a password (`sudo -n` exits 1 with this text).
pub fn refuse_sudo_prompt(target: &Target, out: Output) -> Result<Output, TransportError> {
    if target.sudo && out.code == Some(1) && out.stderr.contains("sudo: a password is required") {
        return Err(TransportError::SudoPassword { host: target.name.clone(), user: target.user.clone() });
    }
    Ok(out)
}

/// The remote side of an atomic upload, reading the content on stdin. A fixed script: the
/// only values in it (directory, path, mode, owner) are quoted.
///
/// Directories that do not exist yet are made 0755, as root's umask (022) makes them, whatever
/// the host's umask: a file's own mode says who may read it, and a missing `/etc/kubernetes`
/// made 0700 before `kubeadm init` would stay closed to everyone but root. The temporary file
/// is private (umask 077, and mktemp makes it 0600) until it has its mode, owner and name.
pub fn upload_script(path: &str, mode: u32, owner: &str) -> String {
    let dir = path.rsplit_once('/').map(|(d, _)| if d.is_empty() { "/" } else { d }).unwrap_or(".");
    format!(
        "set -eu\numask 022\nmkdir -p {dir}\numask 077\ntmp=$(mktemp {tmpl})\ntrap 'rm -f \"$tmp\"' EXIT\ntrap 'exit 1' HUP INT TERM\n\
         cat > \"$tmp\"\nsync \"$tmp\"\nchmod {mode:o} \"$tmp\"\nchown {owner} \"$tmp\"\nmv -f \"$tmp\" {path}\nsync {dir}\n",
        dir = quote(dir),
        tmpl = quote(&format!("{dir}/.kubewright-upload.XXXXXX")),
        owner = quote(owner),
        path = quote(path),
    )
}

/// [`upload_script`], refusing (before anything is replaced) content whose SHA-256 is not
/// `sha256`.
pub fn upload_script_checked(path: &str, mode: u32, owner: &str, sha256: &str) -> String {
    let check = format!(
        "sum=$(sha256sum \"$tmp\")\nif [ \"${{sum%% *}}\" != {sha} ]; then echo 'what arrived is not the file planned (another SHA-256): it changed on the bastion since; nothing was replaced' >&2; exit 1; fi\n",
        sha = quote(sha256),
    );
    upload_script(path, mode, owner).replacen("sync \"$tmp\"\n", &format!("sync \"$tmp\"\n{check}"), 1)
}

/// Why a host whose sshd signs only with `ssh-rsa` cannot be reached, and what to do.
pub const SHA1_RSA_REFUSED: &str = "`ssh-rsa` signs with SHA-1, which kubewright refuses as OpenSSH has since 8.8: \
     give the host an ed25519 host key (`ssh-keygen -A` makes the missing ones) or let its sshd sign with \
     rsa-sha2-512 (OpenSSH 7.2 and later do unless HostKeyAlgorithms says otherwise)";
