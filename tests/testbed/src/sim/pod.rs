//! The kubelet's part for the static pods that are real programs (etcd, the local API proxy's
//! haproxy), driven by the host's init every few hundred milliseconds: start the program while
//! its manifest is in place and the kubelet active, stop it when either goes (the simulated
//! kubelet still takes its static pods down when it stops: issue 23), restart it with a new
//! container when the manifest changes, and restart a program that exited after a back-off, as
//! the kubelet's CrashLoopBackOff does (10 s doubling to 5 min there; 1 s doubling to 8 s here,
//! to keep tests short). The program's output goes to a log in the host's simulator state, as a
//! container's does on a real node.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// One kind of process pod.
pub struct PodKind {
    /// The program, for the runner's own log lines (`started etcd pid 12`).
    pub program: &'static str,
    /// Its manifest on this host, if there is one.
    pub manifest: fn() -> Option<PathBuf>,
    /// The command its container runs, from the manifest's text.
    pub command: fn(&str) -> anyhow::Result<Command>,
    /// Where its output goes, in the host's simulator state.
    pub log_file: &'static str,
    /// What the runner last did, in the host's simulator state (peers read it too).
    pub status_file: &'static str,
}

/// A process pod as the runner last left it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PodStatus {
    /// The running program's pid (in the host's PID namespace), none while it is not running.
    pub pid: Option<i32>,
    /// Which manifest it runs from: a changed or moved-back manifest is a new container.
    pub manifest: String,
    /// When it started (unix seconds, real clock).
    pub started_unix: i64,
    /// Restarts of this manifest's container after it exited (the kubelet's restart count).
    pub restarts: u32,
    /// The length of its log when it started: what it printed since then is from this run.
    #[serde(default)]
    pub log_offset: u64,
}

/// The status `kind` left in the simulator state directory `dir` (this host's or a peer's).
pub fn read_status(dir: &Path, kind: &PodKind) -> PodStatus {
    std::fs::read_to_string(dir.join(kind.status_file))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// A static pod's manifest and its container's identity, while the manifest is in place and
/// the kubelet active: the content and the manifest's inode change time, so a changed
/// manifest, or one moved out and back (kubeadm's way to restart a static pod), is a new
/// container (as `crictl ps` shows it, [`super::runtime`]). Most hosts have no control plane:
/// a missing manifest costs one failed open.
pub(crate) fn static_pod(manifest: &Path, state_dir: &Path) -> Option<(Vec<u8>, String)> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let text = std::fs::read(manifest).ok().filter(|_| kubelet_active(state_dir))?;
    let changed = std::fs::metadata(manifest).map(|md| (md.ctime(), md.ctime_nsec())).unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(&text);
    h.update(format!("{changed:?}"));
    let fingerprint = hex::encode(&h.finalize()[..12]);
    Some((text, fingerprint))
}

pub(crate) fn kubelet_active(state_dir: &Path) -> bool {
    std::fs::read_to_string(state_dir.join("host.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<super::host::HostState>(&t).ok())
        .is_some_and(|h| h.units.get("kubelet").is_some_and(|u| u.active))
}

/// The runner of one process pod on this host.
pub struct PodRunner {
    kind: &'static PodKind,
    state_dir: PathBuf,
    running: Option<(i32, String, Instant)>,
    stopping: Option<(i32, Instant)>,
    exited_at: Option<Instant>,
    backoff: Duration,
    restarts: u32,
    last_manifest: String,
    log_offset: u64,
}

impl PodRunner {
    /// A runner on a host that just booted: nothing of an earlier boot runs.
    pub fn boot(kind: &'static PodKind) -> Self {
        let runner = PodRunner {
            kind,
            state_dir: super::host::state_dir(),
            running: None,
            stopping: None,
            exited_at: None,
            backoff: Duration::from_secs(1),
            restarts: 0,
            last_manifest: String::new(),
            log_offset: 0,
        };
        runner.save();
        runner
    }

    /// A child of the init exited (`how`: its wait status): forget it if it was this program.
    pub fn reaped(&mut self, pid: i32, how: &str) {
        let program = self.kind.program;
        if self.stopping.is_some_and(|(p, _)| p == pid) {
            self.stopping = None;
            self.note(&format!("{program} pid {pid} stopped: {how}"));
        }
        if self.running.as_ref().is_some_and(|(p, _, _)| *p == pid) {
            self.note(&format!(
                "{program} pid {pid} exited on its own: {how}; restarting after a back-off of {:?}",
                self.backoff
            ));
            self.running = None;
            self.exited_at = Some(Instant::now());
            self.save();
        }
    }

    pub fn reconcile(&mut self) {
        let program = self.kind.program;
        let pod = (self.kind.manifest)().and_then(|m| static_pod(&m, &self.state_dir));
        let fingerprint = pod.as_ref().map(|(_, f)| f.clone());
        if let Some((pid, _)) = self.stopping {
            // The kubelet's grace period is the pod's (30 s); these programs stop in well
            // under one.
            if self.stopping.is_some_and(|(_, at)| at.elapsed() > Duration::from_secs(10)) {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            return;
        }
        if let Some((pid, running_from, _)) = &self.running {
            if fingerprint.as_deref() != Some(running_from.as_str()) {
                let pid = *pid;
                let why =
                    if fingerprint.is_some() { "its manifest changed" } else { "its manifest or the kubelet went" };
                self.note(&format!("stopping {program} pid {pid} (SIGTERM): {why}"));
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
                self.stopping = Some((pid, Instant::now()));
                self.running = None;
                self.exited_at = None;
                self.save();
            }
            return;
        }
        let Some((manifest, fingerprint)) = pod else { return };
        if fingerprint != self.last_manifest {
            self.restarts = 0;
            self.backoff = Duration::from_secs(1);
            self.exited_at = None;
        } else if let Some(at) = self.exited_at {
            if at.elapsed() < self.backoff {
                return;
            }
            self.restarts += 1;
            self.backoff = (self.backoff * 2).min(Duration::from_secs(8));
        }
        self.last_manifest = fingerprint.clone();
        let log = self.state_dir.join(self.kind.log_file);
        let spawned = (self.kind.command)(&String::from_utf8_lossy(&manifest)).and_then(|mut command| {
            let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
            self.log_offset = out.metadata()?.len();
            let err = out.try_clone()?;
            let program = command.get_program().to_string_lossy().into_owned();
            command.stdout(out).stderr(err).spawn().with_context(|| format!("cannot run {program}"))
        });
        match spawned {
            Ok(child) => {
                self.note(&format!(
                    "started {program} pid {} (container {fingerprint}, restart {})",
                    child.id(),
                    self.restarts
                ));
                self.running = Some((child.id() as i32, fingerprint, Instant::now()));
                self.exited_at = None;
            }
            Err(e) => {
                self.note(&format!("cannot start {program}: {e:#}"));
                let _ = writeln!(std::io::stderr(), "{program} static pod: cannot start it: {e:#}");
                self.exited_at = Some(Instant::now());
            }
        }
        self.save();
    }

    /// A line of the kubelet's own in the program's log, so a test that finds it not running
    /// can tell a stop from a crash.
    fn note(&self, line: &str) {
        let log = self.state_dir.join(self.kind.log_file);
        if let Ok(mut log) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(log, "kubelet (testbed) {}: {line}", now_ms());
        }
    }

    fn save(&self) {
        let status = PodStatus {
            pid: self.running.as_ref().map(|(p, _, _)| *p),
            manifest: self.last_manifest.clone(),
            started_unix: self.running.as_ref().map_or(0, |(_, _, at)| {
                let started = std::time::SystemTime::now() - at.elapsed();
                started.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
            }),
            restarts: self.restarts,
            log_offset: self.log_offset,
        };
        if let Ok(bytes) = serde_json::to_vec(&status) {
            let _ = super::host::write_atomic(&self.state_dir.join(self.kind.status_file), &bytes);
        }
    }
}
