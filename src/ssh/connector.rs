//! One way to connect whichever transport the run uses: [`Connector`] opens a [`Session`],
//! which is either backend behind the one [`Transport`] interface.

use std::path::PathBuf;
use std::sync::Mutex;

use super::config::{self, ConfigReader};
use super::openssh::OpensshTransport;
#[cfg(feature = "russh")]
use super::russh::{RusshConnector, RusshTransport};
use super::{Jump, Output, OutputStream, Target, Transport, TransportError};
use crate::script::Script;

pub use crate::inventory::TransportKind;

/// Opens sessions for one run, and owns what the run's sessions share.
pub struct Connector {
    backend: Backend,
    /// The run's ssh_config files, read for every host before it is connected to.
    config: ConfigReader,
    /// Per host, how it was reached and where each setting came from (for `-v`).
    settings: Mutex<Vec<(String, String)>>,
    /// The jump host ssh_config gave the first host that has one (russh: one per run).
    jump: Mutex<Option<(String, String)>>,
}

enum Backend {
    /// Masters live in `control_dir`, private to the run and removed with it.
    Openssh { control_dir: tempfile::TempDir },
    #[cfg(feature = "russh")]
    Russh(Box<RusshConnector>),
}

/// One host's open session.
pub enum Session {
    Openssh(OpensshTransport),
    #[cfg(feature = "russh")]
    Russh(RusshTransport),
}

impl Connector {
    pub fn new(kind: TransportKind) -> std::io::Result<Connector> {
        let backend = match kind {
            TransportKind::Openssh => {
                Backend::Openssh { control_dir: tempfile::Builder::new().prefix("kubewright-ssh-").tempdir()? }
            }
            #[cfg(feature = "russh")]
            TransportKind::Russh => Backend::Russh(Box::default()),
            #[cfg(not(feature = "russh"))]
            TransportKind::Russh => {
                return Err(std::io::Error::other(
                    "this kubewright was built without the russh transport (cargo feature `russh`); use --transport openssh",
                ));
            }
        };
        Ok(Connector {
            backend,
            config: ConfigReader::new()?,
            settings: Mutex::new(Vec::new()),
            jump: Mutex::new(None),
        })
    }

    pub async fn connect(&self, target: Target) -> Result<Session, TransportError> {
        let (host, started) = (target.name.clone(), std::time::Instant::now());
        let target = self.with_ssh_config(target).await?;
        tracing::debug!(host, address = %target.host_name(), port = target.port, user = %target.user, via_bastion = target.bastion.is_some(), "connecting");
        let session = self.open(target).await;
        match &session {
            Ok(_) => tracing::debug!(host, ms = started.elapsed().as_millis() as u64, "connected"),
            Err(e) => tracing::debug!(host, ms = started.elapsed().as_millis() as u64, error = %e, "connection failed"),
        }
        session
    }

    /// `target` with what ssh_config says for it where the inventory is silent (see
    /// [`config`](super::config)); refused when the russh transport cannot honour it.
    async fn with_ssh_config(&self, mut target: Target) -> Result<Target, TransportError> {
        let russh = !matches!(self.backend, Backend::Openssh { .. });
        let config_error = |host: &str, detail: String| TransportError::Config { host: host.to_string(), detail };
        let read = self.config.read(&target.address, russh).await.map_err(|e| config_error(&target.name, e))?;
        let origins = config::resolve(&mut target, read);
        let line = config::describe(&target, &origins);
        tracing::debug!(host = %target.name, "{line}");
        if let Ok(mut settings) = self.settings.lock() {
            settings.push((target.name.clone(), line));
        }
        if russh {
            self.russh_settings(&mut target).await?;
        }
        Ok(target)
    }

    /// What the russh transport takes from ssh_config beyond user and port: the jump host,
    /// and a refusal of what it cannot do (ssh would do it: never skipped silently).
    async fn russh_settings(&self, target: &mut Target) -> Result<(), TransportError> {
        let refuse = |detail: String| TransportError::Config { host: target.name.clone(), detail };
        // The inventory's bastion replaces ssh_config's ProxyCommand, as on the openssh
        // transport (the run's ProxyCommand for it comes first).
        let inventory_bastion = target.bastion.is_some();
        let mut beyond =
            target.ssh_config.beyond_russh.iter().filter(|s| !(inventory_bastion && s.starts_with("ProxyCommand ")));
        if let Some(setting) = beyond.next() {
            return Err(refuse(format!(
                "ssh_config sets `{setting}` for {}, which the russh transport cannot honour: use --transport openssh, or leave it out for this host",
                target.address
            )));
        }
        let Some(spec) = target.ssh_config.proxy_jump.clone() else { return Ok(()) };
        if inventory_bastion {
            return Ok(());
        }
        let Some((user, host, port)) = config::parse_jump(&spec) else {
            return Err(refuse(format!(
                "ssh_config sets `ProxyJump {spec}` for {}: the russh transport takes one jump host `[user@]host[:port]`; use --transport openssh for several hops",
                target.address
            )));
        };
        // The jump host's own ssh_config, as ssh reads it for `-J`.
        let own = self.config.read(&host, true).await.map_err(&refuse)?;
        if let Some(setting) = own.beyond_russh.first() {
            return Err(refuse(format!(
                "ssh_config sets `{setting}` for the jump host {host}, which the russh transport cannot honour: use --transport openssh"
            )));
        }
        let jump = Jump {
            host: own.hostname.clone().unwrap_or(host),
            user: user.or(own.user).unwrap_or_else(|| "root".into()),
            port: port.or(own.port).unwrap_or(22),
            identity_file: own.identity_files.first().cloned().or_else(|| target.identity_file.clone()),
        };
        // The russh connector opens one connection to a bastion and carries every host behind
        // it: a second, other jump host would silently be replaced by the first.
        let key = format!("{}@{}:{}", jump.user, jump.host, jump.port);
        if let Ok(mut first) = self.jump.lock() {
            match &*first {
                Some((other_host, other)) if *other != key => {
                    return Err(refuse(format!(
                        "ssh_config gives {} the jump host {key}, and {other_host} {other}: the russh transport reaches a run's hosts through one jump host; use --transport openssh",
                        target.address
                    )));
                }
                Some(_) => {}
                None => *first = Some((target.name.clone(), key)),
            }
        }
        target.bastion = Some(jump);
        Ok(())
    }

    /// Per host, how it was reached and where each setting came from, once; for `-v`.
    pub fn take_settings(&self) -> Vec<(String, String)> {
        let mut settings = self.settings.lock().map(|mut s| std::mem::take(&mut *s)).unwrap_or_default();
        settings.sort();
        settings.dedup();
        settings
    }

    async fn open(&self, target: Target) -> Result<Session, TransportError> {
        match &self.backend {
            Backend::Openssh { control_dir } => {
                OpensshTransport::connect(target, control_dir.path(), Some(&self.config.run_config_file()))
                    .await
                    .map(Session::Openssh)
            }
            #[cfg(feature = "russh")]
            Backend::Russh(c) => c.connect(target).await.map(Session::Russh),
        }
    }

    /// The openssh control directory (for tests that check no master outlives a run).
    pub fn control_dir(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Openssh { control_dir } => Some(control_dir.path().to_path_buf()),
            #[cfg(feature = "russh")]
            Backend::Russh(_) => None,
        }
    }
}

/// Opens sessions for a run: the system `ssh`, russh, or (in tests) hosts in memory. The
/// executor is generic over it, so what it does can be tested without a network.
#[allow(async_fn_in_trait)]
pub trait Connect: Sync {
    type Session: Transport;
    async fn connect(&self, target: Target) -> Result<Self::Session, TransportError>;
    /// Close a session (openssh: stop its master).
    async fn close(&self, session: Self::Session);
    /// Per host connected to since the last call, how and with which settings (for `-v`).
    fn take_settings(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}

impl Connect for Connector {
    type Session = Session;

    async fn connect(&self, target: Target) -> Result<Session, TransportError> {
        Connector::connect(self, target).await
    }

    async fn close(&self, session: Session) {
        session.close().await
    }

    fn take_settings(&self) -> Vec<(String, String)> {
        Connector::take_settings(self)
    }
}

impl Session {
    /// Close the connection (for openssh: stop its master).
    pub async fn close(self) {
        match self {
            Session::Openssh(t) => t.close().await,
            #[cfg(feature = "russh")]
            Session::Russh(t) => t.close().await,
        }
    }
}

/// Dispatch to the backend (the trait's async methods make it unusable as `dyn`).
macro_rules! each_backend {
    ($self:ident, $t:ident => $body:expr) => {
        match $self {
            Session::Openssh($t) => $body,
            #[cfg(feature = "russh")]
            Session::Russh($t) => $body,
        }
    };
}

impl Transport for Session {
    fn target(&self) -> &Target {
        each_backend!(self, t => t.target())
    }

    async fn run_streaming(
        &self,
        script: &Script,
        on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<Output, TransportError> {
        each_backend!(self, t => t.run_streaming(script, on_line).await)
    }

    async fn run_with_input(&self, script: &Script, input: &[u8]) -> Result<Output, TransportError> {
        each_backend!(self, t => t.run_with_input(script, input).await)
    }

    async fn upload(&self, path: &str, data: &[u8], mode: u32, owner: &str) -> Result<(), TransportError> {
        each_backend!(self, t => t.upload(path, data, mode, owner).await)
    }

    async fn download(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        each_backend!(self, t => t.download(path).await)
    }

    async fn upload_file(
        &self,
        path: &str,
        source: &std::path::Path,
        sha256: &str,
        mode: u32,
        owner: &str,
    ) -> Result<(), TransportError> {
        each_backend!(self, t => t.upload_file(path, source, sha256, mode, owner).await)
    }

    async fn download_to(&self, path: &str, dest: &std::path::Path) -> Result<(), TransportError> {
        each_backend!(self, t => t.download_to(path, dest).await)
    }
}
