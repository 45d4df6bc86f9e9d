//! What every host boots from and installs from, built once and shared by every bed:
//!
//! - the **root**: a Debian 12 root made by `debootstrap --variant=minbase bookworm` plus what
//!   a Debian 12 genericcloud image has that kubewright touches (docs/testbed.md lists it and
//!   its source), with the tools that would act on this machine's kernel diverted to the
//!   simulator (`dpkg-divert --rename`: present exactly when their package is installed);
//! - the **archive**: the signed apt repositories the bed serves over HTTP, laid out like
//!   pkgs.k8s.io (one flat repository per minor) and a stand-in for Debian's archive holding
//!   the real Debian packages the Kubernetes packages depend on, and containerd.
//!
//! Both live in [`CACHE_DIR`] under a name derived from everything that goes into them, so a
//! change of package list or payload builds anew and an unchanged one is reused between runs.
//! Builds take an exclusive `flock`: beds coming up at once build each once.

use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sha2::Digest;

use crate::sim::{DEBIAN_CONTAINERD, OFFERED, REPOSITORY_KEY, REPOSITORY_SECRET_KEY};

/// Where the root and the archive are kept between runs.
pub const CACHE_DIR: &str = "/var/cache/kubewright-testbed";
/// The simulator as every host sees it (the bed binds its copy there).
pub const SIM: &str = "/opt/kubewright-sim/kubewright-node-sim";

/// Installed on top of debootstrap's minbase: what a Debian 12 genericcloud image has that
/// kubewright or the bed uses (docs/testbed.md). No systemd: systemctl stays simulated.
/// man-db and bash-completion are the image's too (the cloud team's `EXTRAS` class, in every
/// bookworm image): tests/package.rs reads kubewright's man page and completes its commands
/// in this root, as an admin would on such a host.
pub const ROOT_PACKAGES: &[&str] = &[
    "openssh-server",
    "sudo",
    "kmod",
    "curl",
    "gpg",
    "ca-certificates",
    "iproute2",
    "procps",
    "man-db",
    "bash-completion",
];

/// Real Debian packages the bed's archive serves: what the Kubernetes packages of the offered
/// versions depend on beyond the root (kubelet's Depends), and containerd's runc.
pub const ARCHIVE_PACKAGES: &[&str] = &["conntrack", "socat", "ebtables", "ethtool", "iptables", "runc"];

/// Binaries that would act on this machine's kernel: diverted to the simulator when their
/// package installs them (kmod: modprobe, lsmod; procps: sysctl; mount: swapon, swapoff).
pub const DIVERTED: &[(&str, &str)] = &[
    ("kmod", "/sbin/modprobe"),
    ("kmod", "/sbin/lsmod"),
    ("kmod", "/bin/lsmod"),
    ("procps", "/sbin/sysctl"),
    ("mount", "/sbin/swapon"),
    ("mount", "/sbin/swapoff"),
];

/// Where the bed's key is trusted for the Debian archive's stand-in (docs/testbed.md).
pub const ARCHIVE_KEYRING: &str = "/usr/share/keyrings/kubewright-testbed-archive.gpg";

const ROOT_SCRIPT: &str = r#"set -eu
t=$1 mirror=$2 include=$3 archive=$4 diverted=$5 keyring=$6
export DEBIAN_FRONTEND=noninteractive LC_ALL=C
r=$t/root
debootstrap --variant=minbase --include="$include" bookworm "$r" "$mirror"
# No init runs in a host: package scripts must not try to start services.
printf '#!/bin/sh\nexit 101\n' > "$r/usr/sbin/policy-rc.d"
chmod 0755 "$r/usr/sbin/policy-rc.d"
# The real Debian packages the bed's archive serves, at the versions this root would install.
chroot "$r" apt-get update -q
chroot "$r" apt-get install -y -q --download-only --no-install-recommends $archive
mkdir -p "$t/debs"
mv "$r"/var/cache/apt/archives/*.deb "$t/debs/"
chroot "$r" apt-get clean
# A fresh image has no package lists: hosts start with `apt-get update`, as on a real one.
rm -rf "$r/var/lib/apt/lists"
mkdir -p "$r/var/lib/apt/lists/partial"
# Hosts reach only the bed: Debian's archive is the bed's stand-in, signed with its key.
install -m 0644 "$keyring" "$r/usr/share/keyrings/kubewright-testbed-archive.gpg"
echo "deb [signed-by=/usr/share/keyrings/kubewright-testbed-archive.gpg] http://deb.debian.org/debian bookworm main" > "$r/etc/apt/sources.list"
# Each host gets its own host keys (a cloud image makes them at first boot), and no resolver.
rm -f "$r"/etc/ssh/ssh_host_*
: > "$r/etc/resolv.conf"
# systemd is not installed (no init runs here), but a cloud image always has systemctl where
# systemd puts it: package scripts, which apt runs with PATH=/usr/sbin:/usr/bin:/sbin:/bin
# (DPkg::Path), must find it.
ln -s /opt/kubewright-sim/kubewright-node-sim "$r/usr/bin/systemctl"
for f in $diverted; do
  chroot "$r" dpkg-divert --quiet --local --rename --divert "$f.distrib" --add "$f"
  ln -s /opt/kubewright-sim/kubewright-node-sim "$r$f"
done
"#;

fn sha(parts: &[&[u8]]) -> String {
    let mut h = sha2::Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    hex::encode(&h.finalize()[..8])
}

/// The Debian mirror this machine's apt uses (deb822 `URIs:` or a one-line `deb` entry naming
/// bookworm), or `$KUBEWRIGHT_TESTBED_DEBIAN_MIRROR`, else deb.debian.org.
fn debian_mirror() -> String {
    if let Ok(m) = std::env::var("KUBEWRIGHT_TESTBED_DEBIAN_MIRROR") {
        return m;
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(d) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = d.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else { continue };
        let deb822 = f.extension().is_some_and(|e| e == "sources");
        for line in text.lines().map(str::trim) {
            let uri = if deb822 {
                line.strip_prefix("URIs:").map(str::trim).and_then(|u| u.split_whitespace().next())
            } else if line.starts_with("deb ") && line.contains(" bookworm") {
                line.split_whitespace().find(|w| w.starts_with("http"))
            } else {
                None
            };
            if let Some(uri) = uri
                && uri.trim_end_matches('/').ends_with("/debian")
            {
                return uri.trim_end_matches('/').to_string();
            }
        }
    }
    "http://deb.debian.org/debian".into()
}

/// Build `name` in the cache with `make` (given a fresh directory to fill), unless it is there.
fn cached(name: &str, make: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<PathBuf> {
    let cache = Path::new(CACHE_DIR);
    let done = cache.join(name);
    if done.join(".complete").exists() {
        return Ok(done);
    }
    fs::create_dir_all(cache).with_context(|| format!("cannot create the test bed cache {CACHE_DIR}"))?;
    let lock = fs::File::create(cache.join("lock")).context("cannot open the test bed cache lock")?;
    lock.lock().context("cannot lock the test bed cache")?;
    // Another bed may have built it while this one waited.
    if done.join(".complete").exists() {
        return Ok(done);
    }
    let building = cache.join(format!("{name}.building"));
    if building.exists() {
        remove_tree(&building)?;
    }
    if done.exists() {
        remove_tree(&done)?;
    }
    fs::create_dir_all(&building)?;
    if let Err(e) = make(&building) {
        let log = building.join("build.log");
        let _ = remove_tree(&building);
        return Err(e.context(format!("building {} failed (its log was {})", done.display(), log.display())));
    }
    fs::write(building.join(".complete"), "")?;
    fs::rename(&building, &done).with_context(|| format!("cannot move {} into place", building.display()))?;
    Ok(done)
}

/// How many RSA 2048 keys the pool holds: an install of three control planes takes about 40
/// (every kubeadm leaf and kubeconfig, and the service-account key), renewals and upgrades
/// more; a bed that uses them up generates the rest (`sim::pki`).
const RSA_POOL_KEYS: usize = 256;

/// The machine's pool of RSA 2048 keys (PKCS#1 PEM, one after another) that every bed's
/// simulated kubeadm takes its leaf keys from: made once, on every core (about 38 s of CPU, some
/// 19 s on 2 cores), where generating them in each install cost a tenth of the bed's CPU time.
pub fn rsa_key_pool() -> anyhow::Result<PathBuf> {
    let dir = cached(&format!("rsa-2048-pool-{RSA_POOL_KEYS}"), |dir| {
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let per_thread = RSA_POOL_KEYS.div_ceil(threads);
        let parts: Vec<anyhow::Result<String>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let n = per_thread.min(RSA_POOL_KEYS.saturating_sub(t * per_thread));
                    scope.spawn(move || (0..n).map(|_| crate::sim::new_rsa_pem()).collect::<anyhow::Result<String>>())
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a key thread panicked"))))
                .collect()
        });
        let mut keys = String::new();
        for part in parts {
            keys.push_str(&part?);
        }
        fs::write(dir.join("keys.pem"), keys)?;
        Ok(())
    })?;
    Ok(dir.join("keys.pem"))
}

/// Remove a tree that may hold files debootstrap made read-only or immutable to us: `rm -rf`
/// handles what `remove_dir_all` trips on (directories without write permission).
fn remove_tree(p: &Path) -> anyhow::Result<()> {
    super::run(Command::new("rm").arg("-rf").arg("--one-file-system").arg(p))?;
    Ok(())
}

/// The bed's key as `gpg --dearmor` writes it (what apt's signed-by wants).
fn dearmored_key() -> anyhow::Result<Vec<u8>> {
    let k = crate::sim::repository_keyring();
    if k.is_empty() {
        bail!("the bed's repository key (tests/testbed/src/sim/repository-key.asc) is not valid ASCII armor");
    }
    Ok(k)
}

/// The cached Debian root (its `root/` is the hosts' lower layer; `debs/` the real packages
/// the archive serves).
pub fn root() -> anyhow::Result<PathBuf> {
    let mirror = debian_mirror();
    let diverted: Vec<&str> = DIVERTED.iter().map(|(_, f)| *f).collect();
    let key = sha(&[
        ROOT_SCRIPT.as_bytes(),
        ROOT_PACKAGES.join(",").as_bytes(),
        ARCHIVE_PACKAGES.join(" ").as_bytes(),
        diverted.join(" ").as_bytes(),
        REPOSITORY_KEY.as_bytes(),
    ]);
    cached(&format!("root-{key}"), |dir| {
        if !super::tool_exists("debootstrap") {
            bail!("debootstrap is not installed: apt-get install debootstrap (.ci/run installs it)");
        }
        let keyring = dir.join("archive.gpg");
        fs::write(&keyring, dearmored_key()?)?;
        let log = fs::File::create(dir.join("build.log"))?;
        let status = Command::new("bash")
            .args(["-c", ROOT_SCRIPT, "bash"])
            .arg(dir)
            .args([&mirror, &ROOT_PACKAGES.join(","), &ARCHIVE_PACKAGES.join(" "), &diverted.join(" ")])
            .arg(&keyring)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()
            .context("cannot run bash")?;
        if !status.success() {
            let log = fs::read_to_string(dir.join("build.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            bail!(
                "making the Debian root from {mirror} failed ({status}); the end of its log:\n{}\n(set KUBEWRIGHT_TESTBED_DEBIAN_MIRROR to another Debian mirror if this one is unreachable)",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        Ok(())
    })
}

/// One package the bed builds: control fields, files (path → content or symlink target), and
/// its maintainer scripts.
struct Deb {
    name: &'static str,
    version: String,
    depends: Vec<String>,
    description: &'static str,
    links: Vec<(&'static str, &'static str)>,
    files: Vec<(&'static str, String)>,
    postinst: Option<&'static str>,
}

impl Deb {
    fn new(name: &'static str, version: impl Into<String>, description: &'static str) -> Self {
        Deb {
            name,
            version: version.into(),
            depends: Vec::new(),
            description,
            links: Vec::new(),
            files: Vec::new(),
            postinst: None,
        }
    }

    fn build(&self, out_dir: &Path, stage: &Path) -> anyhow::Result<()> {
        if stage.exists() {
            fs::remove_dir_all(stage)?;
        }
        fs::create_dir_all(stage.join("DEBIAN"))?;
        let mut control = format!(
            "Package: {}\nVersion: {}\nArchitecture: amd64\nMaintainer: Kubernetes Authors <dev@kubernetes.io>\nInstalled-Size: 1\n",
            self.name, self.version
        );
        if !self.depends.is_empty() {
            let _ = writeln!(control, "Depends: {}", self.depends.join(", "));
        }
        let _ = writeln!(
            control,
            "Section: admin\nPriority: optional\nHomepage: https://kubernetes.io\nDescription: {}\n The kubewright test bed's stand-in: its programs run the node simulator.",
            self.description
        );
        fs::write(stage.join("DEBIAN/control"), control)?;
        if let Some(script) = self.postinst {
            let p = stage.join("DEBIAN/postinst");
            fs::write(&p, script)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755))?;
        }
        for (path, target) in &self.links {
            let p = stage.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().context("a package path has no parent")?)?;
            symlink(target, &p)?;
        }
        for (path, text) in &self.files {
            let p = stage.join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().context("a package path has no parent")?)?;
            fs::write(&p, text)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o644))?;
        }
        let deb = out_dir.join(format!("{}_{}_amd64.deb", self.name, self.version));
        // gzip -1: these are a few symlinks, and the archive builds ~200 of them.
        super::run(
            Command::new("dpkg-deb").args(["--root-owner-group", "-Zgzip", "-z1", "--build"]).arg(stage).arg(&deb),
        )?;
        Ok(())
    }
}

fn unit(description: &str, exec: &str) -> String {
    format!(
        "[Unit]\nDescription={description}\n\n[Service]\nExecStart={exec}\nRestart=always\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

/// Enable the unit, as the packages' `%systemd_post` / dh_installsystemd do (kubelet is
/// enabled, not started: it crash-loops until kubeadm configures it).
const KUBELET_POSTINST: &str =
    "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then systemctl enable kubelet >/dev/null 2>&1 || true; fi\n";
/// Debian's containerd starts on install (dh_installsystemd's default).
const CONTAINERD_POSTINST: &str = "#!/bin/sh\nset -e\nif [ \"$1\" = configure ]; then systemctl enable containerd >/dev/null 2>&1 || true; systemctl start containerd >/dev/null 2>&1 || true; fi\n";

/// kubelet of 1.`minor`.`patch` was built before kubernetes/release#3722 (merged 2024-08-22,
/// first in 1.29.9, 1.30.5, 1.31.1) dropped socat and ebtables from its Depends.
fn kubelet_has_socat(minor: u32, patch: u32) -> bool {
    match minor {
        ..=28 => true,
        29 => patch <= 8,
        30 => patch <= 4,
        31 => patch == 0,
        _ => false,
    }
}

fn cri_tools_version(minor: u32) -> String {
    format!("1.{minor}.0-1.1")
}

fn cni_version(minor: u32) -> &'static str {
    if minor >= 31 { "1.5.1-1.1" } else { "1.4.0-1.1" }
}

/// The packages of one minor's repository, with the Depends of the published packages
/// (kubernetes/release cmd/krel/templates/latest/metadata.yaml and kubelet.spec; see
/// docs/testbed.md).
fn minor_packages(minor: u32, newest: u32) -> Vec<Deb> {
    let mut debs = Vec::new();
    for patch in 0..=newest {
        let v = format!("1.{minor}.{patch}-1.1");
        let mut kubeadm = Deb::new("kubeadm", &v, "Command-line utility for administering a Kubernetes cluster");
        kubeadm.links.push(("/usr/bin/kubeadm", SIM));
        kubeadm.depends = match minor {
            // metadata.yaml ">= 1.28.0 < 1.30.0"
            ..=29 => vec![
                "kubelet (>= 1.19.0)".into(),
                "kubectl (>= 1.19.0)".into(),
                "kubernetes-cni (>= 1.2.0)".into(),
                "cri-tools (>= 1.28.0)".into(),
            ],
            // ">= 1.30.0 < 1.32.0"
            30 | 31 => vec!["cri-tools (>= 1.30.0)".into()],
            // ">= 1.32.0": none
            _ => Vec::new(),
        };
        debs.push(kubeadm);

        let mut kubelet = Deb::new("kubelet", &v, "Node agent for Kubernetes clusters");
        kubelet.links.push(("/usr/bin/kubelet", SIM));
        kubelet.files.push(("/lib/systemd/system/kubelet.service", unit("kubelet", "/usr/bin/kubelet")));
        kubelet.files.push(("/etc/default/kubelet", "KUBELET_EXTRA_ARGS=\n".into()));
        kubelet.postinst = Some(KUBELET_POSTINST);
        // kubelet.spec before kubernetes/release#4518 (iptables a hard Requires) and #4106
        // (conntrack, iproute2, ethtool dropped, after every release offered here).
        kubelet.depends = vec![
            "iptables (>= 1.4.21)".into(),
            "kubernetes-cni (>= 1.2.0)".into(),
            "iproute2".into(),
            "util-linux".into(),
            "mount".into(),
            "ethtool".into(),
            "conntrack".into(),
        ];
        if kubelet_has_socat(minor, patch) {
            kubelet.depends.extend(["socat".into(), "ebtables".into()]);
        }
        debs.push(kubelet);

        // The simulator, not upstream kubectl: the bed's API server is simulated, and a real
        // kubectl has nothing to talk to.
        let mut kubectl = Deb::new("kubectl", &v, "Command-line utility for interacting with a Kubernetes cluster");
        kubectl.links.push(("/usr/bin/kubectl", SIM));
        debs.push(kubectl);
    }
    let mut cri = Deb::new(
        "cri-tools",
        cri_tools_version(minor),
        "Command-line utility for interacting with a container runtime",
    );
    cri.links.push(("/usr/bin/crictl", SIM));
    debs.push(cri);
    let mut cni = Deb::new(
        "kubernetes-cni",
        cni_version(minor),
        "Binaries required to provision kubernetes container networking",
    );
    for plugin in ["/opt/cni/bin/bridge", "/opt/cni/bin/host-local", "/opt/cni/bin/loopback", "/opt/cni/bin/portmap"] {
        cni.links.push((plugin, SIM));
    }
    debs.push(cni);
    debs
}

/// `apt-ftparchive release` of `dir` into `dir`/Release, then InRelease and Release.gpg signed
/// with the bed's key (in `gnupg`).
fn sign_release(dir: &Path, gnupg: &Path, fields: &[(&str, String)]) -> anyhow::Result<()> {
    let mut cmd = Command::new("apt-ftparchive");
    for (k, v) in fields {
        cmd.arg("-o").arg(format!("APT::FTPArchive::Release::{k}={v}"));
    }
    let out = super::run(cmd.args(["release", "."]).current_dir(dir))?;
    fs::write(dir.join("Release"), &out.stdout)?;
    for args in [["--clearsign", "-o", "InRelease"], ["--detach-sign", "-o", "Release.gpg"]] {
        super::run(
            Command::new("gpg")
                .env("GNUPGHOME", gnupg)
                .args(["--batch", "--yes", "--armor", "--digest-algo", "SHA256"])
                .args(args)
                .arg("Release")
                .current_dir(dir),
        )?;
    }
    Ok(())
}

fn index_packages(dir: &Path, scan: &str, into: &Path) -> anyhow::Result<()> {
    let out = super::run(Command::new("apt-ftparchive").args(["packages", scan]).current_dir(dir))?;
    fs::create_dir_all(into)?;
    fs::write(into.join("Packages"), &out.stdout)?;
    let mut gz = fs::File::create(into.join("Packages.gz"))?;
    let zipped = super::run(Command::new("gzip").args(["-9n", "-c"]).arg(into.join("Packages")))?;
    gz.write_all(&zipped.stdout)?;
    Ok(())
}

/// Version of the archive's layout and payloads: bump when [`archive`]'s output changes in a way
/// its inputs below do not show.
const ARCHIVE_FORMAT: &str = "1";

/// The cached archive the bed serves (the directory is the HTTP root): Debian's stand-in under
/// `debian/`, and `core:/stable:/v1.XX/deb/` per offered minor.
pub fn archive(root: &Path) -> anyhow::Result<PathBuf> {
    let offered = format!("{OFFERED:?}");
    let root_name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let key = sha(&[
        ARCHIVE_FORMAT.as_bytes(),
        offered.as_bytes(),
        root_name.as_bytes(),
        REPOSITORY_KEY.as_bytes(),
        REPOSITORY_SECRET_KEY.as_bytes(),
    ]);
    cached(&format!("archive-{key}"), |dir| {
        for tool in ["dpkg-deb", "apt-ftparchive", "gpg", "gzip"] {
            if !super::tool_exists(tool) {
                bail!("`{tool}` is not installed: apt-get install dpkg-dev apt-utils gnupg (.ci/run installs them)");
            }
        }
        let gnupg = dir.join(".gnupg");
        fs::create_dir_all(&gnupg)?;
        fs::set_permissions(&gnupg, fs::Permissions::from_mode(0o700))?;
        let secret = gnupg.join("secret.asc");
        fs::write(&secret, REPOSITORY_SECRET_KEY)?;
        super::run(Command::new("gpg").env("GNUPGHOME", &gnupg).args(["--batch", "--import"]).arg(&secret))?;
        let stage = dir.join(".stage");

        // Debian's archive, as far as the hosts need it.
        let debian = dir.join("debian");
        let pool = debian.join("pool/main");
        fs::create_dir_all(&pool)?;
        for e in fs::read_dir(root.join("debs")).context("the cached root has no debs/ directory")? {
            let e = e?;
            fs::copy(e.path(), pool.join(e.file_name()))?;
        }
        let mut containerd = Deb::new("containerd", DEBIAN_CONTAINERD, "daemon to control runC");
        containerd.depends = vec!["runc (>= 1.0.0~rc2~)".into()];
        for bin in ["/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/containerd-shim-runc-v2"] {
            containerd.links.push((bin, SIM));
        }
        containerd.files.push((
            "/lib/systemd/system/containerd.service",
            unit("containerd container runtime", "/usr/bin/containerd"),
        ));
        containerd.postinst = Some(CONTAINERD_POSTINST);
        containerd.build(&pool, &stage)?;
        let dists = debian.join("dists/bookworm");
        index_packages(&debian, "pool", &dists.join("main/binary-amd64"))?;
        sign_release(
            &dists,
            &gnupg,
            &[
                ("Origin", "Debian".into()),
                ("Label", "Debian".into()),
                ("Suite", "stable".into()),
                ("Codename", "bookworm".into()),
                ("Components", "main".into()),
                ("Architectures", "amd64".into()),
            ],
        )?;

        // pkgs.k8s.io: one flat repository per minor.
        for &(minor, newest) in OFFERED {
            let repo = dir.join(format!("core:/stable:/v1.{minor}/deb"));
            let debs = repo.join("amd64");
            fs::create_dir_all(&debs)?;
            for deb in minor_packages(minor, newest) {
                deb.build(&debs, &stage)?;
            }
            index_packages(&repo, "amd64", &repo)?;
            let channel = format!("isv:kubernetes:core:stable:v1.{minor}");
            sign_release(
                &repo,
                &gnupg,
                &[
                    ("Origin", format!("obs://build.opensuse.org/{channel}/deb")),
                    ("Label", channel),
                    ("Architectures", "amd64".into()),
                ],
            )?;
            fs::write(repo.join("Release.key"), REPOSITORY_KEY)?;
        }
        let _ = fs::remove_dir_all(&stage);
        remove_tree(&gnupg)?;
        Ok(())
    })
}
