//! The journal: one JSON line per event, appended and fsynced, in the cluster's state
//! directory. A run that stops (crash, Ctrl-C, lost network) leaves it open; the next `apply`
//! of the same playbook reads which hosts finished which steps and continues from there.
//!
//! Lines: `run-started` (playbook, run id, the command that continues it), `host-done` (step,
//! host, the step's key in the plan), `run-finished` (the playbook completed, or `--restart`
//! abandoned the earlier run). Only what follows the last `run-finished` counts. A torn last
//! line (a crash mid-write) is ignored. The journal is read under the cluster lock and given
//! to the planner, which decides what it skips ([`crate::plan::Resume`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum Entry {
    RunStarted {
        run: String,
        playbook: String,
        /// The command that continues this run (`kubewright upgrade`).
        #[serde(default)]
        command: String,
        at: String,
    },
    HostDone {
        run: String,
        step: String,
        host: String,
        /// The step's key in the plan that ran it (empty in journals of older versions:
        /// never equal to a plan's).
        #[serde(default)]
        key: String,
        at: String,
    },
    RunFinished {
        run: String,
        at: String,
        outcome: String,
    },
}

/// What an unfinished earlier run left: its playbook and the (step, host) pairs it finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unfinished {
    pub playbook: String,
    /// The command that continues it.
    pub command: String,
    pub runs: Vec<String>,
    /// (step, host) → the step's key when it finished.
    pub done: BTreeMap<(String, String), String>,
    /// When its first run started (RFC 3339).
    pub started_at: String,
}

pub struct Journal {
    path: PathBuf,
    file: std::fs::File,
    run: String,
    playbook: String,
    command: String,
}

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {source}")]
pub struct JournalError {
    pub path: String,
    #[source]
    pub source: std::io::Error,
}

impl JournalError {
    /// The journal's writer panicked elsewhere in this run.
    pub fn poisoned(path: &Path) -> JournalError {
        JournalError {
            path: path.display().to_string(),
            source: std::io::Error::other("its writer failed (poisoned lock)"),
        }
    }

    pub fn hint(&self) -> String {
        "the cluster's state directory must be readable and writable by this user (KUBEWRIGHT_STATE_DIR moves it); the hosts were not changed by this failure".into()
    }
}

/// The journal's file in a cluster's state directory.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join("journal.jsonl")
}

/// Read what the last unfinished run left, if any.
pub fn unfinished(path: &Path) -> Result<Option<Unfinished>, JournalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(JournalError { path: path.display().to_string(), source }),
    };
    let mut open: Option<Unfinished> = None;
    for line in text.lines() {
        let Ok(entry) = serde_json::from_str::<Entry>(line) else { continue };
        match entry {
            Entry::RunStarted { run, playbook, command, at } => {
                let u = open.get_or_insert_with(|| Unfinished {
                    playbook: playbook.clone(),
                    command: command.clone(),
                    started_at: at.clone(),
                    ..Default::default()
                });
                if u.playbook != playbook {
                    *u = Unfinished { playbook, command, started_at: at, ..Default::default() };
                }
                u.runs.push(run);
            }
            Entry::HostDone { step, host, key, .. } => {
                if let Some(u) = open.as_mut() {
                    u.done.insert((step, host), key);
                }
            }
            Entry::RunFinished { .. } => open = None,
        }
    }
    Ok(open)
}

fn now() -> String {
    // RFC 3339 in UTC without a date crate: the journal only needs a readable, sortable time.
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    crate::exec::rfc3339(secs)
}

/// Whether the file's last byte is not a newline (an interrupted append).
fn ends_torn(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(false);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] != b'\n')
}

impl Journal {
    /// Open (create) the journal for appending, the state directory 0700, and record a new run
    /// of `playbook`, which `command` continues. The file is never opened through a symlink.
    pub fn start(path: &Path, run: &str, playbook: &str, command: &str) -> Result<Journal, JournalError> {
        let err = |source| JournalError { path: path.display().to_string(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
        }
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(err)?;
        // A crash mid-write can leave a torn last line: end it, so that it does not swallow
        // the next entry.
        if ends_torn(&mut file).map_err(err)? {
            file.write_all(b"\n").map_err(err)?;
        }
        let mut journal = Journal {
            path: path.to_path_buf(),
            file,
            run: run.to_string(),
            playbook: playbook.to_string(),
            command: command.to_string(),
        };
        journal.append(&Entry::RunStarted {
            run: run.to_string(),
            playbook: playbook.to_string(),
            command: command.to_string(),
            at: now(),
        })?;
        Ok(journal)
    }

    /// Mark an earlier unfinished run as abandoned (`--restart`).
    pub fn abandon(&mut self, earlier: &Unfinished) -> Result<(), JournalError> {
        for run in &earlier.runs {
            self.append(&Entry::RunFinished { run: run.clone(), at: now(), outcome: "abandoned".into() })?;
        }
        // The abandon line closed this run's own start too: start it again, as what it is.
        self.append(&Entry::RunStarted {
            run: self.run.clone(),
            playbook: self.playbook.clone(),
            command: self.command.clone(),
            at: now(),
        })
    }

    /// `host` finished `step` (whose key in the plan is `key`).
    pub fn host_done(&mut self, step: &str, host: &str, key: &str) -> Result<(), JournalError> {
        self.append(&Entry::HostDone {
            run: self.run.clone(),
            step: step.to_string(),
            host: host.to_string(),
            key: key.to_string(),
            at: now(),
        })
    }

    /// The playbook completed: the next apply starts from the beginning.
    pub fn finish(&mut self) -> Result<(), JournalError> {
        self.append(&Entry::RunFinished { run: self.run.clone(), at: now(), outcome: "completed".into() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, entry: &Entry) -> Result<(), JournalError> {
        let err = |source| JournalError { path: self.path.display().to_string(), source };
        let mut line = serde_json::to_string(entry).map_err(|e| err(std::io::Error::other(e)))?;
        line.push('\n');
        // One write per line, then fsync: a crash leaves at most a torn last line.
        self.file.write_all(line.as_bytes()).map_err(err)?;
        self.file.sync_data().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unfinished_run_is_found_and_a_finished_one_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert_eq!(unfinished(&path).unwrap(), None);
        let mut j = Journal::start(&path, "r1", "install", "kubewright apply").unwrap();
        j.host_done("prepare-host", "cp1", "k1").unwrap();
        j.host_done("prepare-host", "w1", "k1").unwrap();
        drop(j);
        // A crash mid-write leaves a torn line; it is ignored.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"event\":\"host-do").unwrap();
        let u = unfinished(&path).unwrap().unwrap();
        assert_eq!(u.playbook, "install");
        assert_eq!(u.done.len(), 2);
        // The resumed run adds to it, then completes.
        let mut j = Journal::start(&path, "r2", "install", "kubewright apply").unwrap();
        j.host_done("install-packages", "cp1", "k2").unwrap();
        assert_eq!(unfinished(&path).unwrap().unwrap().done.len(), 3);
        assert_eq!(unfinished(&path).unwrap().unwrap().runs, ["r1", "r2"]);
        j.finish().unwrap();
        assert_eq!(unfinished(&path).unwrap(), None);
    }

    #[test]
    fn a_journal_that_is_a_symbolic_link_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, "").unwrap();
        std::os::unix::fs::symlink(&target, path_in(dir.path())).unwrap();
        let err = Journal::start(&path_in(dir.path()), "r1", "install", "kubewright apply").err().unwrap();
        assert!(err.to_string().contains("journal.jsonl"), "{err}");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "", "nothing written through the link");
    }

    #[test]
    fn restart_abandons_the_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let mut j = Journal::start(&path, "r1", "install", "kubewright apply").unwrap();
        j.host_done("prepare-host", "cp1", "k1").unwrap();
        let earlier = unfinished(&path).unwrap().unwrap();
        let mut j2 = Journal::start(&path, "r2", "install", "kubewright apply").unwrap();
        j2.abandon(&earlier).unwrap();
        let now = unfinished(&path).unwrap().unwrap();
        assert!(now.done.is_empty());
        assert_eq!(now.runs, ["r2"]);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
    }

    /// A run that abandons another playbook's stale run goes on as its own playbook: were it
    /// filed under the other's, a failure of it would have every later run of its own command
    /// refused for an unfinished run of a playbook it never ran.
    #[test]
    fn a_run_that_abandons_another_playbooks_run_is_journalled_as_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        let mut install = Journal::start(&path, "r1", "install", "kubewright apply").unwrap();
        install.host_done("prepare-host", "cp1", "k1").unwrap();
        let earlier = unfinished(&path).unwrap().unwrap();
        let mut renewal = Journal::start(&path, "r2", "renew-certificates", "kubewright certs renew").unwrap();
        renewal.abandon(&earlier).unwrap();
        let now = unfinished(&path).unwrap().unwrap();
        assert_eq!(
            (now.playbook.as_str(), now.command.as_str(), now.runs.as_slice()),
            ("renew-certificates", "kubewright certs renew", ["r2".to_string()].as_slice())
        );
    }
}
