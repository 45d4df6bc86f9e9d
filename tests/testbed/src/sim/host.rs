//! This host's simulated state: packages, systemd units, sysctls, modules, swap.
//! Read and written under an exclusive `flock`, so concurrent commands on one host
//! serialise like dpkg's lock would make them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::HOST_STATE_DIR;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    /// The Debian version, e.g. `1.31.4-1.1`.
    pub version: String,
    pub held: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub enabled: bool,
    pub active: bool,
    /// How many times it was (re)started: tests assert "restarted only when needed".
    pub starts: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HostState {
    /// Read from dpkg's database on every call (see [`with_host`]).
    pub packages: BTreeMap<String, Package>,
    pub units: BTreeMap<String, Unit>,
    /// Kernel parameters applied with sysctl (net.* are also applied for real in the namespace).
    pub sysctls: BTreeMap<String, String>,
    pub daemon_reloads: u32,
    /// The node name this host registered with (set by kubeadm init/join).
    pub node_name: Option<String>,
}

/// A host booted: systemd starts the enabled units, nothing else runs.
pub fn boot_units(dir: &Path) -> anyhow::Result<()> {
    let path = dir.join("host.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(()) };
    let lock = File::create(dir.join("host.lock"))?;
    lock.lock()?;
    let mut state: HostState = serde_json::from_str(&text)?;
    for unit in state.units.values_mut() {
        if unit.enabled && !unit.active {
            unit.starts += 1;
        }
        unit.active = unit.enabled;
    }
    write_atomic(&path, &serde_json::to_vec_pretty(&state)?)
}

pub fn state_dir() -> PathBuf {
    std::env::var_os("KUBEWRIGHT_SIM_HOST_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(HOST_STATE_DIR))
}

/// Run `f` on this host's state, saving it afterwards, under the host lock.
pub fn with_host<R>(f: impl FnOnce(&mut HostState) -> anyhow::Result<R>) -> anyhow::Result<R> {
    let dir = state_dir();
    std::fs::create_dir_all(&dir)?;
    let lock = File::create(dir.join("host.lock")).context("cannot open the host lock")?;
    lock.lock().context("cannot lock the host state")?;
    let path = dir.join("host.json");
    let mut state: HostState = match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).context("host.json is damaged")?,
        Err(_) => HostState::default(),
    };
    // On a host, what is installed is what its real dpkg says.
    if std::env::var_os("KUBEWRIGHT_SIM_HOST_DIR").is_none()
        && let Ok(status) = std::fs::read_to_string(DPKG_STATUS)
    {
        state.packages = dpkg_packages(&status);
    }
    let result = f(&mut state)?;
    write_atomic(&path, &serde_json::to_vec_pretty(&state)?)?;
    Ok(result)
}

/// dpkg's database of installed packages.
const DPKG_STATUS: &str = "/var/lib/dpkg/status";
/// The packages the simulator asks about (the rest of dpkg's database is the Debian root's).
const WATCHED_PACKAGES: &[&str] = &["kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni", "containerd"];

/// The watched packages dpkg's status file lists as installed (`Status: install|hold ok
/// installed`), with their versions and holds.
pub fn dpkg_packages(status: &str) -> BTreeMap<String, Package> {
    let mut out = BTreeMap::new();
    for stanza in status.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(':')).map(str::trim))
        };
        let (Some(name), Some(version), Some(state)) = (field("Package"), field("Version"), field("Status")) else {
            continue;
        };
        if !WATCHED_PACKAGES.contains(&name) || !state.ends_with(" ok installed") {
            continue;
        }
        out.insert(name.to_string(), Package { version: version.to_string(), held: state.starts_with("hold ") });
    }
    out
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The kernel modules the host shows in /proc/modules (a file the simulator keeps).
pub fn loaded_modules() -> BTreeSet<String> {
    std::fs::read_to_string(state_dir().join("proc-modules"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}
