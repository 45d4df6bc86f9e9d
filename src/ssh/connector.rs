//! One way to connect whichever transport the run uses: [`Connector`] opens a [`Session`],
//! which is either backend behind the one [`Transport`] interface.

use std::path::PathBuf;

use super::openssh::OpensshTransport;
#[cfg(feature = "russh")]
use super::russh::{RusshConnector, RusshTransport};
use super::{Output, OutputStream, Target, Transport, TransportError};
use crate::script::Script;

pub use crate::inventory::TransportKind;

/// Opens sessions for one run, and owns what the run's sessions share.
pub enum Connector {
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
        Ok(match kind {
            TransportKind::Openssh => {
                Connector::Openssh { control_dir: tempfile::Builder::new().prefix("kubewright-ssh-").tempdir()? }
            }
            #[cfg(feature = "russh")]
            TransportKind::Russh => Connector::Russh(Box::default()),
            #[cfg(not(feature = "russh"))]
            TransportKind::Russh => {
                return Err(std::io::Error::other(
                    "this kubewright was built without the russh transport (cargo feature `russh`); use --transport openssh",
                ));
            }
        })
    }

    pub async fn connect(&self, target: Target) -> Result<Session, TransportError> {
        let (host, started) = (target.name.clone(), std::time::Instant::now());
        tracing::debug!(host, address = %target.address, port = target.port, via_bastion = target.bastion.is_some(), "connecting");
        let session = self.open(target).await;
        match &session {
            Ok(_) => tracing::debug!(host, ms = started.elapsed().as_millis() as u64, "connected"),
            Err(e) => tracing::debug!(host, ms = started.elapsed().as_millis() as u64, error = %e, "connection failed"),
        }
        session
    }

    async fn open(&self, target: Target) -> Result<Session, TransportError> {
        match self {
            Connector::Openssh { control_dir } => {
                OpensshTransport::connect(target, control_dir.path()).await.map(Session::Openssh)
            }
            #[cfg(feature = "russh")]
            Connector::Russh(c) => c.connect(target).await.map(Session::Russh),
        }
    }

    /// The openssh control directory (for tests that check no master outlives a run).
    pub fn control_dir(&self) -> Option<PathBuf> {
        match self {
            Connector::Openssh { control_dir } => Some(control_dir.path().to_path_buf()),
            #[cfg(feature = "russh")]
            Connector::Russh(_) => None,
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
}

impl Connect for Connector {
    type Session = Session;

    async fn connect(&self, target: Target) -> Result<Session, TransportError> {
        Connector::connect(self, target).await
    }

    async fn close(&self, session: Session) {
        session.close().await
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
