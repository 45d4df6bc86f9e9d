//! A host's PID 1: mount the host's view of the filesystem, start sshd, reap orphans.
//!
//! Runs inside fresh mount, UTS and PID namespaces (made by `unshare`) in the host's
//! network namespace. Order matters: everything taken from the bed directory is bound
//! before `/tmp` (where the bed directory usually lives) is covered by a tmpfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The machine's SMBIOS UUID, which each host replaces with its own.
const PRODUCT_UUID: &str = "/sys/class/dmi/id/product_uuid";

#[derive(Debug, Serialize, Deserialize)]
pub struct InitConfig {
    pub hostname: String,
    pub host_dir: PathBuf,
    pub bed_dir: PathBuf,
}

/// Directories an orchestrator fills, which every host must see empty at first: shadowed
/// by an empty directory if the machine itself has them.
const START_EMPTY: &[&str] = &["/etc/kubernetes", "/etc/containerd", "/etc/cni", "/var/lib/kubelet", "/var/lib/etcd"];

fn mount(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("mount").args(args).output().context("cannot run mount")?;
    if !out.status.success() {
        bail!("mount {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn bind(from: &Path, to: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {to}"))?;
    mount(&["--bind", &from.to_string_lossy(), to])
}

pub fn run_init(config: &Path) -> anyhow::Result<()> {
    let cfg: InitConfig = serde_json::from_str(&std::fs::read_to_string(config)?)?;
    let hd = &cfg.host_dir;
    mount(&["--make-rprivate", "/"])?;
    // Which of the orchestrator's directories the machine itself has (and a host must not
    // see): decided on the real file system, before the overlays show the host's own files.
    let shadowed: Vec<&str> = START_EMPTY
        .iter()
        .copied()
        .filter(|dir| std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false))
        .collect();
    let out = Command::new("hostname").arg(&cfg.hostname).output()?;
    if !out.status.success() {
        bail!("cannot set the hostname: {}", String::from_utf8_lossy(&out.stderr));
    }
    for d in ["etc", "var", "usr", "opt"] {
        let opts = format!(
            "lowerdir=/{d},upperdir={},workdir={}",
            hd.join("upper").join(d).display(),
            hd.join("work").join(d).display()
        );
        mount(&["-t", "overlay", "overlay", "-o", &opts, &format!("/{d}")])?;
    }
    bind(&hd.join("usr-local-bin"), "/usr/local/bin")?;
    bind(&hd.join("usr-local-sbin"), "/usr/local/sbin")?;
    bind(&cfg.bed_dir.join("bin"), "/opt/kubewright-sim")?;
    mount(&["-o", "remount,bind,ro", "/opt/kubewright-sim"])?;
    bind(&hd.join("sim"), "/var/lib/kubewright-sim")?;
    bind(&cfg.bed_dir.join("cluster"), "/var/lib/kubewright-sim-cluster")?;
    // Read-only view of every host's files, for what the cluster would observe of its peers
    // (is a control plane's API server up: its manifest, its kubelet, the host itself).
    bind(&cfg.bed_dir.join("hosts"), "/var/lib/kubewright-sim-peers")?;
    mount(&["-o", "remount,bind,ro", "/var/lib/kubewright-sim-peers"])?;
    // Each gets its own (initially empty) directory, kept across reboots like the rest.
    for dir in shadowed {
        let own = hd.join("empty").join(dir.trim_start_matches('/').replace('/', "-"));
        std::fs::create_dir_all(&own)?;
        bind(&own, dir)?;
    }
    bind(&hd.join("root"), "/root")?;
    bind(&hd.join("home"), "/home")?;
    // Kernel settings stay the machine's: /proc/sys is read-only, except the per-namespace net.
    mount(&["--bind", "/proc/sys/net", "/proc/sys/net"])?;
    mount(&["--rbind", "/proc/sys", "/proc/sys"])?;
    mount(&["-o", "remount,bind,ro", "/proc/sys"])?;
    // The kernel's swap list is the machine's: show the host's own, kept by the simulator's
    // swapoff. (Loaded modules are the simulator's `lsmod`: this kernel may have no
    // /proc/modules to mount over.)
    mount(&["--bind", &hd.join("sim/proc-swaps").to_string_lossy(), "/proc/swaps"])?;
    if std::path::Path::new(PRODUCT_UUID).exists() {
        mount(&["--bind", &hd.join("sim/product_uuid").to_string_lossy(), PRODUCT_UUID])?;
    }
    mount(&["-t", "tmpfs", "-o", "mode=0755", "tmpfs", "/run"])?;
    std::fs::create_dir_all("/run/sshd")?;
    bind(&hd.join("sshd"), "/run/kubewright-testbed")?;
    mount(&["-t", "tmpfs", "-o", "mode=1777", "tmpfs", "/tmp"])?;

    let booted = std::time::Instant::now();
    let start_sshd = || -> anyhow::Result<nix::unistd::Pid> {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f", "/run/kubewright-testbed/sshd_config"])
            .spawn()
            .context("cannot start sshd")?;
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        eprintln!("host {}: sshd started (pid {pid})", cfg.hostname);
        Ok(pid)
    };
    let mut sshd_pid = start_sshd()?;
    // PID 1 adopts every orphan of the host; reap them all, forever.
    loop {
        match nix::sys::wait::waitpid(None, None) {
            Ok(status) => {
                if status.pid() == Some(sshd_pid) {
                    eprintln!("host {}: sshd exited ({status:?})", cfg.hostname);
                    // Right after a crash the dead host's listening socket can linger a
                    // moment in the (surviving) network namespace, and sshd fails to bind
                    // (exit 255): retry while booting. An sshd a test killed (SIGTERM: it exits
                    // 0) is a fault, and stays dead however soon after the boot it came.
                    let failed_to_start = matches!(status, nix::sys::wait::WaitStatus::Exited(_, code) if code != 0);
                    if failed_to_start && booted.elapsed() < std::time::Duration::from_secs(15) {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        sshd_pid = start_sshd()?;
                    }
                }
            }
            Err(nix::errno::Errno::ECHILD) => std::thread::sleep(std::time::Duration::from_millis(200)),
            Err(_) => {}
        }
    }
}
