//! One run per cluster: a lock held on every control plane while a run changes anything.
//!
//! Taking it is `mkdir` of a directory on each control plane (atomic), with the holder's
//! description inside. A second run finds the directory and is refused with who holds it.
//! Only the holder releases it (its run id must match); `break_lock` removes it regardless,
//! for a holder that died. A run of this machine whose process is gone left its lock behind
//! (it died, or lost a control plane before releasing it there): the next run takes it over.

use serde::{Deserialize, Serialize};

use crate::ssh::{Transport, TransportError};

pub const LOCK_DIR: &str = "/var/lib/kubewright/lock";

/// `user@machine` of this process, as a holder names where it runs.
pub fn local_identity() -> String {
    format!(
        "{}@{}",
        std::env::var("USER").unwrap_or_else(|_| "?".into()),
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    )
}

/// Why a lock may not be broken without `--force`, if it may not: its run is alive on this
/// machine, or it is younger than `min_age_s` (a run elsewhere may well be alive).
pub fn looks_alive(holder: &Holder, now: u64, min_age_s: u64) -> Option<String> {
    if holder.by == local_identity() && std::path::Path::new(&format!("/proc/{}", holder.pid)).exists() {
        return Some(format!("its process {} is still running on this machine", holder.pid));
    }
    match crate::exec::parse_rfc3339(&holder.started_at) {
        Some(started) if now.saturating_sub(started) < min_age_s => {
            Some(format!("it was taken {}s ago", now.saturating_sub(started)))
        }
        Some(_) => None,
        None => Some(format!("its start time `{}` cannot be read", holder.started_at)),
    }
}

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    /// `user@machine` the run came from.
    pub by: String,
    pub pid: u32,
    /// RFC 3339, the holder's clock.
    pub started_at: String,
    pub command: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` by {} (pid {}) since {}", self.command, self.by, self.pid, self.started_at)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the cluster is locked by another run: {holder} (lock on {host})")]
    Held { host: String, holder: Holder },
    #[error("cannot take the cluster lock on {host}: {detail}")]
    Failed { host: String, detail: String },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

impl LockError {
    pub fn hint(&self) -> String {
        match self {
            LockError::Held { .. } => {
                "wait for that run to finish; if it died, check no kubewright is running for this cluster and run `kubewright lock break`".into()
            }
            LockError::Failed { .. } => "every control plane must be reachable to take the lock; fix its connection and retry".into(),
            LockError::Transport(e) => e.hint(),
        }
    }
}

/// The fixed scripts of the lock; the only values in them are quoted.
fn acquire_script() -> crate::script::Script {
    // mkdir is atomic: exactly one run creates the directory.
    crate::script::Script::new().cmd(["sh", "-c", &format!(
        "mkdir -p /var/lib/kubewright && if mkdir {LOCK_DIR} 2>/dev/null; then cat > {LOCK_DIR}/holder.json && echo ACQUIRED; else cat {LOCK_DIR}/holder.json 2>/dev/null || true; echo; echo HELD; fi"
    )])
}

/// Replaces the holder with the one on stdin if the lock is still `$1`'s (compare and swap:
/// two runs taking over the same dead lock cannot both win).
fn take_over_script(dead_run_id: &str) -> crate::script::Script {
    crate::script::Script::new().cmd([
        "sh",
        "-c",
        &format!(
            "if grep -qF \"$1\" {LOCK_DIR}/holder.json 2>/dev/null && cat > {LOCK_DIR}/holder.json.new && mv {LOCK_DIR}/holder.json.new {LOCK_DIR}/holder.json; then echo ACQUIRED; else echo CHANGED; fi"
        ),
        "sh",
        dead_run_id,
    ])
}

/// A holder that ran on this machine and whose process is gone: a run that died, or lost the
/// connection to a control plane before it could release the lock there. Nothing of it is
/// alive, so the next run may take its lock over.
fn died_here(holder: &Holder) -> bool {
    holder.pid != 0 && holder.by == local_identity() && !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
}

/// Take the lock on every control plane, or none: on refusal, what was taken is released. A
/// lock left by a run of this machine that is gone is taken over; those are returned (host,
/// dead holder) so the caller can say so.
pub async fn acquire<T: Transport>(control_planes: &[T], holder: &Holder) -> Result<Vec<(String, Holder)>, LockError> {
    let info = serde_json::to_vec(holder).unwrap_or_default();
    let mut taken: Vec<&T> = Vec::new();
    let mut taken_over = Vec::new();
    for t in control_planes {
        let host = t.target().name.clone();
        let result = async {
            let out = t.run_with_input(&acquire_script(), &info).await?;
            let text = out.stdout.trim_end().to_string();
            if text.ends_with("ACQUIRED") {
                return Ok(None);
            }
            if text.ends_with("HELD") {
                let json = text.trim_end_matches("HELD").trim();
                let other: Holder = serde_json::from_str(json).unwrap_or(Holder {
                    run_id: String::new(),
                    by: "an unknown holder (unreadable lock)".into(),
                    pid: 0,
                    started_at: "?".into(),
                    command: "?".into(),
                });
                if other.run_id == holder.run_id {
                    return Ok(None);
                }
                return Ok(Some(other));
            }
            Err(LockError::Failed {
                host: host.clone(),
                detail: format!("unexpected answer ({:?}): {}", out.code, out.stderr.trim()),
            })
        }
        .await;
        let result = match result {
            Ok(Some(other)) if died_here(&other) => {
                match t.run_with_input(&take_over_script(&other.run_id), &info).await {
                    Ok(out) if out.stdout.trim_end().ends_with("ACQUIRED") => {
                        taken_over.push((host.clone(), other));
                        Ok(None)
                    }
                    // Someone else took it meanwhile: refused as if it had been theirs all along.
                    Ok(_) => Ok(Some(other)),
                    Err(e) => Err(e.into()),
                }
            }
            other => other,
        };
        match result {
            Ok(None) => taken.push(t),
            Ok(Some(other)) => {
                release_all(&taken, holder).await;
                return Err(LockError::Held { host, holder: other });
            }
            Err(e) => {
                release_all(&taken, holder).await;
                return Err(e);
            }
        }
    }
    Ok(taken_over)
}

async fn release_all<T: Transport>(hosts: &[&T], holder: &Holder) {
    for t in hosts {
        let _ = release_one(*t, holder).await;
    }
}

async fn release_one<T: Transport>(t: &T, holder: &Holder) -> Result<(), TransportError> {
    // Only the holder's own lock is removed (its run id is in holder.json).
    let script = crate::script::Script::new().cmd([
        "sh",
        "-c",
        &format!(
            "if grep -qF {} {LOCK_DIR}/holder.json 2>/dev/null; then rm -rf {LOCK_DIR}; fi",
            crate::script::quote(&holder.run_id)
        ),
    ]);
    t.run(&script).await.map(|_| ())
}

/// Release the lock this run holds, on every control plane (each one's result).
pub async fn release<T: Transport>(control_planes: &[T], holder: &Holder) -> Vec<(String, Result<(), LockError>)> {
    let mut out = Vec::new();
    for t in control_planes {
        out.push((t.target().name.clone(), release_one(t, holder).await.map_err(LockError::from)));
    }
    out
}

/// How often a live run refreshes its lock.
pub const HEARTBEAT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

impl Holder {
    /// This process, for run `run_id` running `command`, started at `started_at`.
    pub fn this_process(run_id: &str, command: &str, started_at: u64) -> Holder {
        Holder {
            run_id: run_id.into(),
            by: local_identity(),
            pid: std::process::id(),
            started_at: crate::exec::rfc3339(started_at),
            command: command.into(),
        }
    }
}

/// Refresh the lock's heartbeat on every control plane, if it is still this run's.
pub async fn refresh<T: Transport>(control_planes: &[T], holder: &Holder) -> Vec<(String, Result<(), LockError>)> {
    let script = crate::script::Script::new().cmd([
        "sh",
        "-c",
        &format!("if grep -qF \"$1\" {LOCK_DIR}/holder.json 2>/dev/null; then date +%s > {LOCK_DIR}/heartbeat; else echo LOST; fi"),
        "sh",
        holder.run_id.as_str(),
    ]);
    let mut out = Vec::new();
    for t in control_planes {
        let host = t.target().name.clone();
        let r = match t.run(&script).await {
            Ok(o) if o.stdout.trim() == "LOST" => {
                Err(LockError::Failed { host: host.clone(), detail: "the lock is no longer this run's".into() })
            }
            Ok(_) => Ok(()),
            Err(e) => Err(e.into()),
        };
        out.push((host, r));
    }
    out
}

/// Who holds the lock on each control plane (None: free).
pub async fn status<T: Transport>(control_planes: &[T]) -> Vec<(String, Result<Option<Holder>, TransportError>)> {
    let mut out = Vec::new();
    let script =
        crate::script::Script::new().cmd(["sh", "-c", &format!("cat {LOCK_DIR}/holder.json 2>/dev/null || true")]);
    for t in control_planes {
        let r = t.run(&script).await.map(|o| serde_json::from_str(o.stdout.trim()).ok());
        out.push((t.target().name.clone(), r));
    }
    out
}

/// Remove the lock whoever holds it; returns the holders that were removed.
pub async fn break_lock<T: Transport>(control_planes: &[T]) -> Result<Vec<(String, Holder)>, TransportError> {
    let mut broken = Vec::new();
    for (host, h) in status(control_planes).await {
        if let Some(holder) = h? {
            broken.push((host, holder));
        }
    }
    let script = crate::script::Script::new().cmd(["rm", "-rf", LOCK_DIR]);
    for t in control_planes {
        t.run(&script).await?;
    }
    Ok(broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(by: String, pid: u32, started_at: &str) -> Holder {
        Holder { run_id: "r".into(), by, pid, started_at: started_at.into(), command: "kubewright apply".into() }
    }

    #[test]
    fn a_lock_looks_alive_while_its_process_runs_here_or_while_it_is_young() {
        let now = 1_795_000_000;
        let old = crate::exec::rfc3339(now - 7200);
        let alive_here = holder(local_identity(), std::process::id(), &old);
        assert!(looks_alive(&alive_here, now, 3600).unwrap().contains("still running on this machine"));
        assert_eq!(looks_alive(&holder("ops@elsewhere".into(), 1, &old), now, 3600), None);
        let young = holder("ops@elsewhere".into(), 1, &crate::exec::rfc3339(now - 60));
        assert!(looks_alive(&young, now, 3600).unwrap().contains("taken 60s ago"));
        assert!(looks_alive(&holder("x@y".into(), 1, "yesterday"), now, 3600).unwrap().contains("cannot be read"));
    }
}
