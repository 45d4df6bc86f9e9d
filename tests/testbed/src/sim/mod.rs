//! The node simulator: one binary answering as kubeadm, kubectl, kubelet, systemctl, sysctl,
//! modprobe, lsmod, swapoff, swapon and crictl, chosen by the name it runs under. etcdctl and
//! etcdutl answer only inside the etcd container (`crictl exec`), as on a kubeadm host. apt,
//! dpkg, gpg and curl on the hosts are Debian's own (see `bed::image`); what is installed is
//! what dpkg's database says ([`host::dpkg_packages`]).
//!
//! Host state lives in `/var/lib/kubewright-sim/host.json`; cluster state (what the API
//! server and etcd would hold) in `/var/lib/kubewright-sim-cluster/`, shared by the bed's
//! hosts and locked with `flock`. Outputs, errors and exit codes follow the real tools as
//! recorded in ../shared/reference/kubeadm-behaviour.md (section numbers in comments).

pub mod api_proxy;
pub mod apiserver;
mod apt;
mod certs;
mod client;
pub mod cluster;
pub mod etcd;
pub mod host;
mod kubeadm;
mod kubectl;
pub mod kubelet;
mod pki;
pub mod pod;
pub mod reach;
pub mod runtime;
mod system;
mod upgrade;

pub use apt::{
    DEBIAN_CONTAINERD, OFFERED, REPOSITORY_KEY, REPOSITORY_KEY_FINGERPRINT, REPOSITORY_SECRET_KEY, repository_keyring,
};
pub use pki::{RSA_POOL_NAME, client_certificate, new_rsa_pem};
pub use runtime::{WORKLOADS_FILE, Workload};

use std::io::Write;
use std::process::ExitCode;

use crate::faults::{self, FaultAction};

/// Where the simulator keeps this host's state (bound in by the host's init).
pub const HOST_STATE_DIR: &str = "/var/lib/kubewright-sim";
/// Where the cluster's state lives (the same directory on every host of a bed).
pub const CLUSTER_STATE_DIR: &str = "/var/lib/kubewright-sim-cluster";

/// `/proc/swaps` as the kernel prints it: the header, and the swap a fresh host has on.
pub const PROC_SWAPS_HEADER: &str = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority";
pub const PROC_SWAPS_ACTIVE: &str = "/dev/vda3                               partition\t2097148\t\t0\t\t-2";

/// What a simulated command produced.
pub struct Outcome {
    pub code: u8,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    pub fn ok(stdout: impl Into<String>) -> Self {
        Outcome { code: 0, stdout: stdout.into(), stderr: String::new() }
    }
    pub fn fail(code: u8, stderr: impl Into<String>) -> Self {
        Outcome { code, stdout: String::new(), stderr: stderr.into() }
    }
    pub fn with_stderr(mut self, stderr: impl Into<String>) -> Self {
        self.stderr.push_str(&stderr.into());
        self
    }
}

/// `kubewright-node-sim __expire-certs SECONDS`, run in a host by `Testbed::expire_certs`.
pub const EXPIRE_CERTS_ARG: &str = "__expire-certs";

/// The client certificate embedded in the kubeconfig `path` (on this machine) signed again to
/// have expired `ago` seconds ago, by the cluster CA in the bed's shared files `cluster_dir`.
pub fn expire_kubeconfig_with_ca(
    path: &std::path::Path,
    cluster_dir: &std::path::Path,
    ago: i64,
) -> anyhow::Result<()> {
    certs::expire_kubeconfig_on_machine(path, cluster_dir, ago)
}

pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let tool = args.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()).unwrap_or_default();
    let rest = &args[1.min(args.len())..];
    let command_line =
        std::iter::once(tool.as_str()).chain(rest.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
    if let [marker, root, program, args @ ..] = rest
        && marker == runtime::CONTAINER_ARG
    {
        let e = runtime::enter_container(std::path::Path::new(root), program, args);
        return finish(Outcome::fail(128, format!("{e:#}\n")));
    }
    if let [marker, ago] = rest
        && marker == EXPIRE_CERTS_ARG
    {
        let outcome = match ago.parse::<i64>() {
            Ok(ago) => certs::expire_all(ago)
                .unwrap_or_else(|e| Outcome::fail(1, format!("kubewright-node-sim: expire-certs: {e:#}\n"))),
            Err(_) => {
                Outcome::fail(2, format!("kubewright-node-sim: expire-certs: {ago} is not a number of seconds\n"))
            }
        };
        return finish(outcome);
    }
    if let Some(outcome) = injected_fault(&command_line) {
        return finish(outcome);
    }
    if !SIMULATED.contains(&tool.as_str()) {
        return pass_through(&tool, rest);
    }
    let outcome = match dispatch(&tool, rest) {
        Ok(o) => o,
        Err(e) => Outcome::fail(1, format!("kubewright-node-sim ({tool}): internal error: {e:#}\n")),
    };
    finish(outcome)
}

/// The tools the simulator answers as. Any other name is a real tool the bed linked here only
/// to inject a fault into it (`Testbed::add_fault`): past the fault, the real one runs.
pub const SIMULATED: &[&str] =
    &["systemctl", "sysctl", "modprobe", "lsmod", "swapoff", "swapon", "kubeadm", "kubectl", "kubelet", "crictl"];

/// Run the real `tool` (the next one in PATH that is not this binary) in this process's
/// place, as it was invoked.
fn pass_through(tool: &str, args: &[String]) -> ExitCode {
    use std::os::unix::process::CommandExt;
    let me = std::env::current_exe().and_then(std::fs::canonicalize).ok();
    let path = std::env::var_os("PATH").unwrap_or_default();
    let real =
        std::env::split_paths(&path).map(|d| d.join(tool)).find(|p| p.is_file() && std::fs::canonicalize(p).ok() != me);
    let Some(real) = real else {
        return finish(Outcome::fail(127, format!("{tool}: command not found\n")));
    };
    let err = std::process::Command::new(&real).arg0(tool).args(args).exec();
    finish(Outcome::fail(126, format!("kubewright-node-sim: cannot run {}: {err}\n", real.display())))
}

fn dispatch(tool: &str, args: &[String]) -> anyhow::Result<Outcome> {
    Ok(match tool {
        "systemctl" => system::systemctl(args)?,
        "sysctl" => system::sysctl(args)?,
        "modprobe" => system::modprobe(args)?,
        "lsmod" => system::lsmod()?,
        "swapoff" => system::swapoff(args)?,
        "swapon" => system::swapon(args)?,
        "kubeadm" => kubeadm::kubeadm(args)?,
        "kubectl" => kubectl::kubectl(args)?,
        "kubelet" => kubectl::kubelet(args)?,
        "crictl" => runtime::crictl(args)?,
        other => Outcome::fail(127, format!("{other}: command not found\n")),
    })
}

fn finish(o: Outcome) -> ExitCode {
    let _ = std::io::stdout().write_all(o.stdout.as_bytes());
    let _ = std::io::stderr().write_all(o.stderr.as_bytes());
    ExitCode::from(o.code)
}

/// A fault the test bed injected for this command line, if any (see [`crate::faults`]).
pub(crate) fn injected_fault(command_line: &str) -> Option<Outcome> {
    let dir = std::path::Path::new(HOST_STATE_DIR);
    let mut all = faults::load(dir);
    let i = all.iter().position(|f| command_line.starts_with(&f.command_prefix) && !f.fired)?;
    match all[i].action.clone() {
        FaultAction::Fail { code, stderr } => Some(Outcome::fail(code.clamp(0, 255) as u8, stderr)),
        FaultAction::FailOnce { code, stderr } => {
            all[i].fired = true;
            let _ = faults::save(dir, &all);
            Some(Outcome::fail(code.clamp(0, 255) as u8, stderr))
        }
        FaultAction::Hang { seconds: 0 } => {
            // Held until the harness takes the fault away (`clear_faults`), then run as usual: a
            // test catches a run in the act for as long as it needs, and lets it go on.
            let held = all.swap_remove(i);
            while faults::load(dir).contains(&held) {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            None
        }
        FaultAction::Hang { seconds } => {
            std::thread::sleep(std::time::Duration::from_secs(seconds));
            None
        }
    }
}
