//! A run's environment, resolved once at its start: where the cluster's state lives on the
//! bastion, what time it is, who this run is, how it connects. Nothing after this reads the
//! environment or the clock to decide.

use std::path::{Path, PathBuf};

use super::RunError;
use crate::exec::engine::DEFAULT_CONCURRENCY;
use crate::ssh::{Connector, TransportKind};

/// How a command that reaches hosts connects and fans out (from the command line).
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub transport: TransportKind,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions { transport: TransportKind::Openssh, accept_new_host_keys: false, concurrency: DEFAULT_CONCURRENCY }
    }
}

/// Everything a run takes from outside itself, read once.
#[derive(Debug, Clone)]
pub struct RunEnv {
    /// The cluster's directory on the bastion: admin kubeconfig, journal, backups, CAs.
    pub state_dir: PathBuf,
    /// When the run started (Unix seconds, the bastion's clock).
    pub now: u64,
    /// This run's id: in the journal, the lock, and its commands' sessions on the hosts.
    pub run_id: String,
    pub transport: TransportKind,
    pub accept_new_host_keys: bool,
    pub concurrency: usize,
}

impl RunEnv {
    /// The environment of a run on `cluster`. The state directory, when it exists, must be
    /// this user's: a root job (the renewal timer) following another user's symlinks there
    /// would write wherever they point.
    pub fn resolve(cluster: &str, options: RunOptions) -> Result<RunEnv, RunError> {
        let state_dir = state_dir_for(cluster);
        check_owner(&state_dir)?;
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(RunEnv {
            state_dir,
            now: since_epoch.as_secs(),
            run_id: format!("{:x}-{}", since_epoch.as_nanos(), std::process::id()),
            transport: options.transport,
            accept_new_host_keys: options.accept_new_host_keys,
            concurrency: options.concurrency.max(1),
        })
    }

    /// A connector of the run's transport.
    pub fn connector(&self) -> Result<Connector, RunError> {
        connector(self.transport)
    }
}

/// A connector of `transport`, or why it cannot be set up.
pub fn connector(transport: TransportKind) -> Result<Connector, RunError> {
    Connector::new(transport).map_err(|e| RunError::Failed {
        message: format!("cannot set up the {transport} transport: {e}"),
        help: match transport {
            TransportKind::Openssh => {
                "ssh's control sockets go in $TMPDIR (or /tmp): make it writable, or point TMPDIR elsewhere".into()
            }
            TransportKind::Russh => "use --transport openssh, or a kubewright built with the `russh` feature".into(),
        },
    })
}

/// Refuse a state directory that is a symbolic link or that another user owns: a run (the
/// renewal timer's, as root) would write where its owner's links point.
fn check_owner(dir: &Path) -> Result<(), RunError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else { return Ok(()) };
    if meta.file_type().is_symlink() {
        return Err(RunError::Input {
            message: format!("the state directory {} is a symbolic link", dir.display()),
            help:
                "kubewright never follows a link there: make it a directory of this user's, or set KUBEWRIGHT_STATE_DIR"
                    .into(),
        });
    }
    let me = nix::unistd::geteuid();
    if meta.uid() != me.as_raw() {
        let name = |uid: u32| {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map_or_else(|| format!("uid {uid}"), |u| u.name)
        };
        return Err(RunError::Input {
            message: format!(
                "the state directory {} belongs to {}, not to {}, who runs kubewright",
                dir.display(),
                name(meta.uid()),
                name(me.as_raw())
            ),
            help: "run kubewright as that user, or give this user a state directory of its own (KUBEWRIGHT_STATE_DIR); nothing was changed".into(),
        });
    }
    Ok(())
}

/// The bastion directory for a cluster's state: `$KUBEWRIGHT_STATE_DIR/<cluster>`, else
/// `$XDG_STATE_HOME/kubewright/<cluster>`, else `~/.local/state/kubewright/<cluster>`.
pub fn state_dir_for(cluster: &str) -> PathBuf {
    let base = std::env::var_os("KUBEWRIGHT_STATE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(|| PathBuf::from("."))
            .join("kubewright")
    });
    base.join(cluster)
}

/// The async runtime the SSH sessions run on.
pub fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| RunError::Failed {
        message: format!("cannot start kubewright's worker threads: {e}"),
        help:
            "the bastion is out of threads or memory (see `ulimit -u`); free some and run again; no host was contacted"
                .into(),
    })
}
