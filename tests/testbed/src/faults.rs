//! Per-command faults the simulator obeys: the harness writes them, the simulator reads
//! them before running a command. Stored as `faults.json` in the host's simulator state.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a matching command does instead of its normal work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultAction {
    /// Exit with `code`, printing `stderr`.
    Fail { code: i32, stderr: String },
    /// Sleep this long, then run normally; with `seconds` 0, until the fault is cleared
    /// (`Testbed::clear_faults`), then run normally.
    Hang { seconds: u64 },
    /// Fail the first time, then behave normally.
    FailOnce { code: i32, stderr: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Matches when the command line (`kubeadm init --config ...`) starts with this.
    pub command_prefix: String,
    pub action: FaultAction,
    /// For `FailOnce`: set once it has fired.
    #[serde(default)]
    pub fired: bool,
}

pub const FAULTS_FILE: &str = "faults.json";

pub fn load(dir: &Path) -> Vec<Fault> {
    std::fs::read_to_string(dir.join(FAULTS_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

pub fn save(dir: &Path, faults: &[Fault]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FAULTS_FILE}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(faults)?)?;
    std::fs::rename(tmp, dir.join(FAULTS_FILE))
}
