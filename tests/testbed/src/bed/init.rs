//! A host's PID 1: mount the host's view of the filesystem, start sshd, reap orphans, and
//! play the kubelet for the static pods the bed really runs (etcd, the kube-apiserver).
//!
//! Runs inside fresh mount, UTS and PID namespaces (made by `unshare`) in the host's
//! network namespace. The host's file system is put together beside the machine's (an overlay
//! of the cached Debian root, the bed's binds, /proc, /sys, /dev, /run, /tmp), then the init
//! pivots into it and lets the machine's root go.

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
    /// The cached Debian root (see `image`), the lower layer of the host's file system.
    pub root_dir: PathBuf,
}

fn mount(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("mount").args(args).output().context("cannot run mount")?;
    if !out.status.success() {
        bail!("mount {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

fn bind(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("cannot create {}", to.display()))?;
    mount(&["--bind", &from.to_string_lossy(), &to.to_string_lossy()])
}

/// Where the new root is put together (inside the host's directory, seen by this mount
/// namespace only), and where the machine's root goes while it is let go.
const NEW_ROOT: &str = "merged";
const OLD_ROOT: &str = ".kubewright-old-root";

pub fn run_init(config: &Path) -> anyhow::Result<()> {
    let cfg: InitConfig = serde_json::from_str(&std::fs::read_to_string(config)?)?;
    let hd = &cfg.host_dir;
    mount(&["--make-rprivate", "/"])?;
    let out = Command::new("hostname").arg(&cfg.hostname).output()?;
    if !out.status.success() {
        bail!("cannot set the hostname: {}", String::from_utf8_lossy(&out.stderr));
    }
    // The host's whole file system: the cached Debian root, with the host's own changes above
    // it (kept across reboots, and where the simulator reads a peer's files from).
    let new = hd.join(NEW_ROOT);
    std::fs::create_dir_all(&new)?;
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        cfg.root_dir.display(),
        hd.join("upper").display(),
        hd.join("work").display()
    );
    mount(&["-t", "overlay", "overlay", "-o", &opts, &new.to_string_lossy()])?;
    let at = |p: &str| new.join(p.trim_start_matches('/'));
    bind(&hd.join("usr-local-bin"), &at("/usr/local/bin"))?;
    bind(&hd.join("usr-local-sbin"), &at("/usr/local/sbin"))?;
    bind(&cfg.bed_dir.join("bin"), &at("/opt/kubewright-sim"))?;
    mount(&["-o", "remount,bind,ro", &at("/opt/kubewright-sim").to_string_lossy()])?;
    bind(&hd.join("sim"), &at("/var/lib/kubewright-sim"))?;
    bind(&cfg.bed_dir.join("cluster"), &at("/var/lib/kubewright-sim-cluster"))?;
    // Read-only view of every host's files, for what the cluster would observe of its peers
    // (is a control plane's API server up: its manifest, its kubelet, the host itself).
    bind(&cfg.bed_dir.join("hosts"), &at("/var/lib/kubewright-sim-peers"))?;
    mount(&["-o", "remount,bind,ro", &at("/var/lib/kubewright-sim-peers").to_string_lossy()])?;
    bind(&hd.join("root"), &at("/root"))?;
    bind(&hd.join("home"), &at("/home"))?;
    // This PID namespace's own /proc (unshare mounted one on the machine's root, which goes).
    mount(&["-t", "proc", "proc", &at("/proc").to_string_lossy()])?;
    // Kernel settings stay the machine's: /proc/sys is read-only, except the per-namespace net.
    let sys = at("/proc/sys");
    let sys = sys.to_string_lossy();
    let net = format!("{sys}/net");
    mount(&["--bind", &net, &net])?;
    mount(&["--rbind", &sys, &sys])?;
    mount(&["-o", "remount,bind,ro", &sys])?;
    // The kernel's swap list is the machine's: show the host's own, kept by the simulator's
    // swapoff. (Loaded modules are the simulator's `lsmod`: this kernel may have no
    // /proc/modules to mount over.)
    mount(&["--bind", &hd.join("sim/proc-swaps").to_string_lossy(), &at("/proc/swaps").to_string_lossy()])?;
    mount(&["--rbind", "/sys", &at("/sys").to_string_lossy()])?;
    if Path::new(PRODUCT_UUID).exists() {
        mount(&["--bind", &hd.join("sim/product_uuid").to_string_lossy(), &at(PRODUCT_UUID).to_string_lossy()])?;
    }
    mount(&["--rbind", "/dev", &at("/dev").to_string_lossy()])?;
    mount(&["-t", "tmpfs", "-o", "mode=0755", "tmpfs", &at("/run").to_string_lossy()])?;
    std::fs::create_dir_all(at("/run/sshd"))?;
    bind(&hd.join("sshd"), &at("/run/kubewright-testbed"))?;
    mount(&["-t", "tmpfs", "-o", "mode=1777", "tmpfs", &at("/tmp").to_string_lossy()])?;

    // Become the new root: pivot_root(8) moves every process of this mount namespace whose
    // root was the machine's (this one), then the machine's root is let go of entirely, so
    // nothing of this machine's /usr or /etc is reachable from the host.
    std::fs::create_dir_all(at(OLD_ROOT))?;
    let out =
        Command::new("pivot_root").args([".", OLD_ROOT]).current_dir(&new).output().context("cannot run pivot_root")?;
    if !out.status.success() {
        bail!("pivot_root into {} failed: {}", new.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    std::env::set_current_dir("/")?;
    let old = format!("/{OLD_ROOT}");
    let out = Command::new("umount").args(["-l", &old]).output().context("cannot run umount")?;
    if !out.status.success() {
        bail!("cannot let go of the machine's root: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let _ = std::fs::remove_dir(&old);

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
    // The kubelet's part for the static pods that are real programs: etcd (and its probe) and
    // the local API proxy's haproxy.
    let mut etcd_pod = crate::sim::pod::PodRunner::boot(&crate::sim::etcd::POD);
    let mut api_proxy_pod = crate::sim::pod::PodRunner::boot(&crate::sim::api_proxy::POD);
    std::thread::spawn(crate::sim::etcd::probe_forever);
    // The kube-apiserver static pod: a TLS server on a thread of the init (issue 22).
    let mut apiserver_pod = crate::sim::apiserver::PodRunner::boot(&cfg.hostname);
    // PID 1 adopts every orphan of the host; reap them all, forever.
    loop {
        match nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => {
                etcd_pod.reconcile();
                api_proxy_pod.reconcile();
                apiserver_pod.reconcile();
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Ok(status) => {
                if let Some(pid) = status.pid() {
                    etcd_pod.reaped(pid.as_raw(), &format!("{status:?}"));
                    api_proxy_pod.reaped(pid.as_raw(), &format!("{status:?}"));
                }
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
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    }
}
