//! apt-get, apt-mark, apt-cache, dpkg-query, and curl for the repository's signing key.
//!
//! The simulated pkgs.k8s.io has one repository per minor (1.29 to 1.33), as the real one
//! does (kubeadm-behaviour.md §8): a host sees the versions of the minor its sources list
//! names, after an `apt-get update` that found the repository's signing key.

use std::fmt::Write as _;
use std::os::unix::fs::symlink;
use std::path::Path;

use base64::Engine;

use super::Outcome;
use super::host::{HostState, Package, Unit, with_host};

/// Minor → newest patch the simulated repository offers.
pub const OFFERED: &[(u32, u32)] = &[(29, 15), (30, 14), (31, 13), (32, 9), (33, 5)];
const KUBE_PACKAGES: &[&str] = &["kubeadm", "kubelet", "kubectl", "cri-tools", "kubernetes-cni"];
/// Debian 12's containerd, from the distribution's own repository.
pub const DEBIAN_CONTAINERD: &str = "1.6.20~ds1-1+b1";
/// Debian 12's conntrack (packages.debian.org/bookworm/conntrack).
const DEBIAN_CONNTRACK: &str = "1:1.4.7-1+b2";
const SIM: &str = "/opt/kubewright-sim/kubewright-node-sim";
const APT_LISTS: &str =
    "Reading package lists... Done\nBuilding dependency tree... Done\nReading state information... Done\n";

/// Where apt reads its sources and keeps its lists: the defaults, or what `-o
/// Dir::Etc::sourcelist=FILE`, `-o Dir::Etc::sourceparts=DIR|-` and `-o Dir::State::Lists=DIR`
/// say (how a repository other than the configured one is queried without touching it).
#[derive(Default)]
struct AptConfig {
    sourcelist: Option<String>,
    sourceparts: Option<String>,
    lists: Option<String>,
}

impl AptConfig {
    fn from_args(args: &[String]) -> Self {
        let mut c = AptConfig::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let setting = match a.strip_prefix("-o") {
                Some("") => it.next().map(String::as_str),
                Some(joined) => Some(joined),
                None => None,
            };
            let Some((key, value)) = setting.and_then(|s| s.split_once('=')) else { continue };
            match key {
                "Dir::Etc::sourcelist" => c.sourcelist = Some(value.to_string()),
                "Dir::Etc::sourceparts" => c.sourceparts = Some(value.to_string()),
                "Dir::State::Lists" => c.lists = Some(value.to_string()),
                _ => {}
            }
        }
        c
    }

    /// The sources files, in apt's order.
    fn source_files(&self) -> Vec<std::path::PathBuf> {
        let parts = self.sourceparts.as_deref().unwrap_or("/etc/apt/sources.list.d");
        let mut files: Vec<std::path::PathBuf> = if parts == "-" {
            Vec::new()
        } else {
            std::fs::read_dir(parts).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default()
        };
        files.sort();
        files.push(self.sourcelist.as_deref().unwrap_or("/etc/apt/sources.list").into());
        files
    }

    /// Where the record of the last update of a separate lists directory is kept.
    fn updated_record(&self) -> Option<std::path::PathBuf> {
        self.lists.as_ref().map(|d| Path::new(d).join("kubewright-sim-updated"))
    }
}

/// Words that are not `-o KEY=VALUE` settings.
fn without_settings(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "-o" {
            it.next();
        } else if !a.starts_with("-o") {
            out.push(a.clone());
        }
    }
    out
}

/// The Kubernetes repository the host's sources list names: (URL, minor, keyring).
fn kube_repo(cfg: &AptConfig) -> Option<(String, u32, String)> {
    for f in cfg.source_files() {
        let Ok(text) = std::fs::read_to_string(&f) else { continue };
        for line in text.lines().map(str::trim).filter(|l| l.starts_with("deb ")) {
            let Some(idx) = line.find("/core:/stable:/v1.") else { continue };
            let rest = &line[idx + "/core:/stable:/v1.".len()..];
            let minor: u32 = rest.split('/').next()?.parse().ok()?;
            let url = line.split_whitespace().find(|w| w.starts_with("http"))?.trim_end_matches('/').to_string();
            let keyring = line
                .split("signed-by=")
                .nth(1)
                .map(|k| k.split([']', ' ']).next().unwrap_or("").to_string())
                .unwrap_or_default();
            return Some((url, minor, keyring));
        }
    }
    None
}

fn sources_fingerprint(cfg: &AptConfig) -> String {
    let mut s = String::new();
    for p in cfg.source_files() {
        if cfg.sourcelist.is_none() && p == Path::new("/etc/apt/sources.list") {
            continue;
        }
        s.push_str(&std::fs::read_to_string(p).unwrap_or_default());
    }
    s
}

/// Whether the lists apt reads are from an update of the sources as they are now.
fn updated(state: &HostState, cfg: &AptConfig) -> bool {
    let now = sources_fingerprint(cfg);
    match cfg.updated_record() {
        Some(record) => std::fs::read_to_string(record).is_ok_and(|r| r == now),
        None => state.apt_updated_sources.as_deref() == Some(now.as_str()),
    }
}

fn deb(minor: u32, patch: u32) -> String {
    format!("1.{minor}.{patch}-1.1")
}

/// Versions of `name` the host can install now, newest first.
fn candidates(state: &HostState, cfg: &AptConfig, name: &str) -> Vec<String> {
    if name == "containerd" {
        return vec![DEBIAN_CONTAINERD.to_string()];
    }
    if name == "conntrack" {
        return vec![DEBIAN_CONNTRACK.to_string()];
    }
    if !KUBE_PACKAGES.contains(&name) {
        return Vec::new();
    }
    let Some((_, minor, _)) = kube_repo(cfg) else { return Vec::new() };
    if !updated(state, cfg) {
        return Vec::new();
    }
    let Some(&(_, newest)) = OFFERED.iter().find(|(m, _)| *m == minor) else { return Vec::new() };
    match name {
        "cri-tools" => vec![deb(minor, 0)],
        "kubernetes-cni" => vec![if minor >= 31 { "1.5.1-1.1".into() } else { "1.4.0-1.1".into() }],
        _ => (0..=newest).rev().map(|p| deb(minor, p)).collect(),
    }
}

pub fn apt_get(args: &[String]) -> anyhow::Result<Outcome> {
    let verb = args.iter().find(|a| !a.starts_with('-')).map(String::as_str);
    match verb {
        Some("update") => update(&AptConfig::from_args(args)),
        Some("install") => install(args),
        Some(other) => {
            Ok(Outcome::fail(100, format!("E: Invalid operation {other} (the simulator knows update and install)\n")))
        }
        None => Ok(Outcome::fail(100, "E: No operation given\n")),
    }
}

fn update(cfg: &AptConfig) -> anyhow::Result<Outcome> {
    if let Some(lists) = &cfg.lists
        && !Path::new(lists).join("partial").is_dir()
    {
        return Ok(Outcome::fail(
            100,
            format!("E: List directory {lists}/partial is missing. - Acquire (2: No such file or directory)\n"),
        ));
    }
    with_host(|s| {
        let mut out = String::from("Hit:1 http://deb.debian.org/debian bookworm InRelease\n");
        if let Some((url, minor, keyring)) = kube_repo(cfg) {
            let cdn =
                url.replace("https://pkgs.k8s.io", "https://prod-cdn.packages.k8s.io/repositories/isv:/kubernetes");
            if !OFFERED.iter().any(|(m, _)| *m == minor) {
                return Ok(Outcome {
                    code: 100,
                    stdout: out,
                    stderr: format!(
                        "E: Failed to fetch {url}/InRelease  404  Not Found\nE: The repository '{url}  InRelease' does not have a Release file.\n"
                    ),
                });
            }
            let key_ok = std::fs::read(&keyring).is_ok_and(|k| k == repository_keyring());
            if !key_ok {
                // apt's wording when the keyring signed-by names is missing, empty or holds
                // another key: the key ID is the fingerprint's last 16 digits.
                return Ok(Outcome {
                    code: 100,
                    stdout: format!("{out}Get:2 {cdn}  InRelease [1,186 B]\n"),
                    stderr: format!(
                        "W: GPG error: {cdn}  InRelease: The following signatures couldn't be verified because the public key is not available: NO_PUBKEY {}\nE: The repository '{url}  InRelease' is not signed.\n",
                        &REPOSITORY_KEY_FINGERPRINT[24..]
                    ),
                });
            }
            let _ = writeln!(out, "Get:2 {cdn}  InRelease [1,186 B]\nGet:3 {cdn}  Packages [4,451 B]");
        }
        out.push_str("Reading package lists... Done\n");
        match cfg.updated_record() {
            Some(record) => std::fs::write(record, sources_fingerprint(cfg))?,
            None => s.apt_updated_sources = Some(sources_fingerprint(cfg)),
        }
        Ok(Outcome::ok(out))
    })
}

fn install(args: &[String]) -> anyhow::Result<Outcome> {
    let allow_held = args.iter().any(|a| a == "--allow-change-held-packages");
    let allow_downgrades = args.iter().any(|a| a == "--allow-downgrades");
    let assume_yes = args.iter().any(|a| a == "-y" || a == "--yes" || a == "--assume-yes" || a == "-qy" || a == "-yq");
    let requests: Vec<(String, Option<String>)> = args
        .iter()
        .filter(|a| !a.starts_with('-') && *a != "install")
        .map(|a| match a.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (a.to_string(), None),
        })
        .collect();
    if !assume_yes {
        return Ok(Outcome::fail(1, "E: the simulator only runs non-interactive installs (-y)\n"));
    }
    with_host(|s| {
        // Resolve every request (and dependency) first: apt changes nothing if one fails.
        let mut plan: Vec<(String, String)> = Vec::new();
        for (name, version) in &requests {
            let available = candidates(s, &AptConfig::default(), name);
            if available.is_empty() {
                return Ok(Outcome {
                    code: 100,
                    stdout: APT_LISTS.into(),
                    stderr: format!("E: Unable to locate package {name}\n"),
                });
            }
            let v = match version {
                Some(v) if available.contains(v) => v.clone(),
                Some(v) => {
                    return Ok(Outcome {
                        code: 100,
                        stdout: APT_LISTS.into(),
                        stderr: format!("E: Version '{v}' for '{name}' was not found\n"),
                    });
                }
                None => available[0].clone(),
            };
            // kubeadm depends on cri-tools up to 1.31 only (kubernetes/release package metadata: 1.32s
            // packages dropped it), so a 1.32 node has crictl only if it installs cri-tools.
            let minor = v.split('.').nth(1).and_then(|m| m.parse::<u32>().ok()).unwrap_or(0);
            plan.push((name.clone(), v));
            let dep = match name.as_str() {
                "kubeadm" if minor < 32 => Some("cri-tools"),
                "kubelet" => Some("kubernetes-cni"),
                _ => None,
            };
            if let Some(dep) = dep
                && !s.packages.contains_key(dep)
                && !plan.iter().any(|(n, _)| n == dep)
                && let Some(v) = candidates(s, &AptConfig::default(), dep).first()
            {
                plan.push((dep.to_string(), v.clone()));
            }
        }
        let changing: Vec<&(String, String)> =
            plan.iter().filter(|(n, v)| s.packages.get(n).map(|p| &p.version) != Some(v)).collect();
        let held: Vec<&str> = changing
            .iter()
            .filter(|(n, _)| s.packages.get(n).is_some_and(|p| p.held))
            .map(|(n, _)| n.as_str())
            .collect();
        let mut out = String::from(APT_LISTS);
        let upgraded: Vec<&str> =
            changing.iter().filter(|(n, _)| s.packages.contains_key(n)).map(|(n, _)| n.as_str()).collect();
        let new: Vec<&str> =
            changing.iter().filter(|(n, _)| !s.packages.contains_key(n)).map(|(n, _)| n.as_str()).collect();
        let downgraded: Vec<&str> = changing
            .iter()
            .filter(|(n, v)| s.packages.get(n).is_some_and(|p| version_lt(v, &p.version)))
            .map(|(n, _)| n.as_str())
            .collect();
        if !held.is_empty() {
            let _ = writeln!(out, "The following held packages will be changed:\n  {}", held.join(" "));
        }
        if !upgraded.is_empty() {
            let _ = writeln!(out, "The following packages will be upgraded:\n  {}", upgraded.join(" "));
        }
        if !new.is_empty() {
            let _ = writeln!(out, "The following NEW packages will be installed:\n  {}", new.join(" "));
        }
        let _ = writeln!(
            out,
            "{} upgraded, {} newly installed, 0 to remove and 0 not upgraded.",
            upgraded.len(),
            new.len()
        );
        if !held.is_empty() && !allow_held {
            // apt-private/private-install.cc
            return Ok(Outcome {
                code: 100,
                stdout: out,
                stderr: "E: Held packages were changed and -y was used without --allow-change-held-packages.\n".into(),
            });
        }
        if !downgraded.is_empty() && !allow_downgrades {
            return Ok(Outcome {
                code: 100,
                stdout: out,
                stderr: "E: Packages were downgraded and -y was used without --allow-downgrades.\n".into(),
            });
        }
        // apt-private/private-download.cc CheckFreeSpace: the archives to fetch must fit in
        // Dir::Cache::Archives (a directory it cannot stat is an error there too).
        let need: u64 = changing.iter().map(|(n, _)| download_size(n)).sum();
        if need > 0 {
            let _ = writeln!(out, "Need to get {} kB of archives.", need / 1000);
            match nix::sys::statvfs::statvfs(ARCHIVES) {
                Ok(fs) if fs.blocks_free().saturating_mul(fs.fragment_size()) >= need => {}
                Ok(_) => {
                    return Ok(Outcome {
                        code: 100,
                        stdout: out,
                        stderr: format!("E: You don't have enough free space in {ARCHIVES}.\n"),
                    });
                }
                Err(e) => {
                    return Ok(Outcome {
                        code: 100,
                        stdout: out,
                        stderr: format!(
                            "E: Couldn't determine free space in {ARCHIVES} - statvfs ({}: {})\n",
                            e as i32,
                            e.desc()
                        ),
                    });
                }
            }
        }
        for (name, version) in &changing {
            match s.packages.get(name) {
                Some(old) => {
                    let _ = writeln!(out, "Unpacking {name} ({version}) over ({}) ...", old.version);
                }
                None => {
                    let _ = writeln!(out, "Unpacking {name} ({version}) ...");
                }
            }
        }
        for (name, version) in &changing {
            let held = s.packages.get(name).is_some_and(|p| p.held);
            s.packages.insert(name.clone(), Package { version: version.clone(), held });
            install_files(s, name)?;
            let _ = writeln!(out, "Setting up {name} ({version}) ...");
        }
        Ok(Outcome::ok(out))
    })
}

/// Where apt downloads the archives it installs (Dir::Cache::Archives).
const ARCHIVES: &str = "/var/cache/apt/archives/";

/// About what each package's archive weighs on pkgs.k8s.io and Debian (amd64), in bytes.
fn download_size(package: &str) -> u64 {
    match package {
        "kubeadm" => 10_400_000,
        "kubelet" => 15_200_000,
        "kubectl" => 10_600_000,
        "cri-tools" => 20_100_000,
        "kubernetes-cni" => 36_900_000,
        _ => 25_000_000,
    }
}

/// The binaries and units a package brings. Installing kubelet enables it but does not
/// start it (on a real host it crash-loops until kubeadm writes its configuration).
fn install_files(s: &mut HostState, name: &str) -> anyhow::Result<()> {
    // The package's files replace whatever the host had at that path (the machine may
    // have real binaries there; a host sees only its own overlay).
    let link = |target: &str| -> anyhow::Result<()> {
        let p = Path::new(target);
        if std::fs::read_link(p).is_ok_and(|t| t == Path::new(SIM)) {
            return Ok(());
        }
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if p.symlink_metadata().is_ok() {
            std::fs::remove_file(p)?;
        }
        symlink(SIM, p)?;
        Ok(())
    };
    match name {
        "kubeadm" => link("/usr/bin/kubeadm")?,
        "kubectl" => link("/usr/bin/kubectl")?,
        "kubelet" => {
            link("/usr/bin/kubelet")?;
            s.units.entry("kubelet".into()).or_insert(Unit { enabled: true, active: false, starts: 0 });
        }
        "cri-tools" => link("/usr/bin/crictl")?,
        "conntrack" => link("/usr/sbin/conntrack")?,
        "kubernetes-cni" => {
            for plugin in ["bridge", "host-local", "loopback", "portmap"] {
                link(&format!("/opt/cni/bin/{plugin}"))?;
            }
        }
        "containerd" => {
            link("/usr/bin/containerd")?;
            let unit = s.units.entry("containerd".into()).or_insert(Unit { enabled: true, active: false, starts: 0 });
            if !unit.active {
                unit.active = true;
                unit.starts += 1;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Debian version order for the versions the simulator offers (`1.31.4-1.1`).
fn version_lt(a: &str, b: &str) -> bool {
    let key = |v: &str| -> Vec<u64> { v.split(|c: char| !c.is_ascii_digit()).filter_map(|p| p.parse().ok()).collect() };
    key(a) < key(b)
}

pub fn apt_mark(args: &[String]) -> anyhow::Result<Outcome> {
    let words = without_settings(args);
    let Some((verb, names)) = words.split_first() else {
        return Ok(Outcome::fail(100, "E: No operation given\n"));
    };
    with_host(|s| {
        let mut out = String::new();
        match verb.as_str() {
            "showhold" => {
                for (n, p) in &s.packages {
                    if p.held {
                        let _ = writeln!(out, "{n}");
                    }
                }
            }
            "hold" | "unhold" => {
                for n in names {
                    let Some(p) = s.packages.get_mut(n) else {
                        return Ok(Outcome {
                            code: 100,
                            stdout: out,
                            stderr: format!("E: Unable to locate package {n}\n"),
                        });
                    };
                    // apt cmdline/apt-mark.cc wording.
                    let line = match (verb.as_str(), p.held) {
                        ("hold", true) => format!("{n} was already set on hold."),
                        ("hold", false) => format!("{n} set on hold."),
                        ("unhold", true) => format!("Canceled hold on {n}."),
                        _ => format!("{n} was already not on hold."),
                    };
                    p.held = verb == "hold";
                    let _ = writeln!(out, "{line}");
                }
            }
            other => return Ok(Outcome::fail(100, format!("E: Invalid operation {other}\n"))),
        }
        Ok(Outcome::ok(out))
    })
}

pub fn apt_cache(args: &[String]) -> anyhow::Result<Outcome> {
    let cfg = AptConfig::from_args(args);
    let words = without_settings(args);
    let Some((verb, names)) = words.split_first() else {
        return Ok(Outcome::fail(100, "E: No operation given\n"));
    };
    if verb != "madison" {
        return Ok(Outcome::fail(100, format!("E: the simulator's apt-cache knows madison, not {verb}\n")));
    }
    with_host(|s| {
        let mut out = String::new();
        let url = kube_repo(&cfg).map(|(u, _, _)| u).unwrap_or_default();
        for name in names {
            let source = if name == "containerd" || name == "conntrack" {
                "http://deb.debian.org/debian bookworm/main amd64 Packages".to_string()
            } else {
                format!("{url}  Packages")
            };
            for v in candidates(s, &cfg, name) {
                // apt-private/private-show.cc: setw(10) name | setw(10) version | source
                let _ = writeln!(out, "{name:>10} | {v:>10} | {source}");
            }
        }
        if out.is_empty() {
            return Ok(Outcome {
                code: 0,
                stdout: String::new(),
                stderr: names.iter().map(|n| format!("N: Unable to locate package {n}\n")).collect(),
            });
        }
        Ok(Outcome::ok(out))
    })
}

pub fn dpkg_query(args: &[String]) -> anyhow::Result<Outcome> {
    let mut format = "${binary:Package}\t${Version}\n".to_string();
    let mut names = Vec::new();
    let mut show = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "-W" || a == "--show" {
            show = true;
        } else if let Some(f) = a.strip_prefix("-f=").or_else(|| a.strip_prefix("--showformat=")) {
            format = f.to_string();
        } else if a == "-f" || a == "--showformat" {
            i += 1;
            format = args.get(i).cloned().unwrap_or_default();
        } else if !a.starts_with('-') {
            names.push(a.clone());
        }
        i += 1;
    }
    if !show {
        return Ok(Outcome::fail(2, "dpkg-query: the simulator knows -W/--show\n"));
    }
    let format = format.replace("\\n", "\n").replace("\\t", "\t");
    with_host(|s| {
        let mut out = Outcome::ok("");
        for n in &names {
            match s.packages.get(n) {
                Some(p) => {
                    let status = if p.held { "hold ok installed" } else { "install ok installed" };
                    let abbrev = if p.held { "hi " } else { "ii " };
                    out.stdout.push_str(
                        &format
                            .replace("${binary:Package}", n)
                            .replace("${Package}", n)
                            .replace("${Version}", &p.version)
                            .replace("${Status}", status)
                            .replace("${db:Status-Abbrev}", abbrev),
                    );
                }
                None => {
                    out.stderr.push_str(&format!("dpkg-query: no packages found matching {n}\n"));
                    out.code = 1;
                }
            }
        }
        Ok(out)
    })
}

/// The test bed's repository signing key, served as every minor's `Release.key`: a real
/// OpenPGP key (ed25519, made for the bed with `gpg --quick-gen-key`), so that `gpg
/// --show-keys` and `gpg --dearmor` on the hosts (the real gpg) read it as they read
/// pkgs.k8s.io's. The simulated repositories count as signed by it: `apt-get update` wants it,
/// and only it, in the keyring the sources list names.
pub const REPOSITORY_KEY: &str = include_str!("repository-key.asc");
/// [`REPOSITORY_KEY`]'s fingerprint, which the bed's inventory pins
/// (`cluster.packages.keyFingerprint`).
pub const REPOSITORY_KEY_FINGERPRINT: &str = "F13CF3E5AE9D6FC9A77660286D31BBAB50177F58";

/// [`REPOSITORY_KEY`] as `gpg --dearmor` writes it: the armor's base64 body, decoded (RFC 4880
/// §6.2: headers end at the first empty line, the body at the `=` checksum line).
pub fn repository_keyring() -> Vec<u8> {
    let body: String = REPOSITORY_KEY
        .lines()
        .skip_while(|l| !l.trim().is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with('=') && !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default()
}

/// curl, for the one download an install makes: the repository's signing key. The hosts
/// have no route out; anything else fails the way curl does when it cannot resolve a host.
/// `--proto =LIST` limits the schemes as curl's does (a URL of another scheme fails before
/// any connection, with curl 7.88's text, Debian 12's curl).
pub fn curl(args: &[String]) -> anyhow::Result<Outcome> {
    let mut output_file = None;
    let mut silent = false;
    let mut show_error = false;
    let mut url = None;
    let mut protocols: Option<Vec<String>> = None;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "-o" || a == "--output" {
            i += 1;
            output_file = args.get(i).cloned();
        } else if a == "--proto" || a.starts_with("--proto=") {
            let spec = match a.strip_prefix("--proto=") {
                Some(spec) => Some(spec.to_string()),
                None => {
                    i += 1;
                    args.get(i).cloned()
                }
            };
            // Only the `=a,b` form (exactly these) is modelled.
            if let Some(only) = spec.as_deref().and_then(|s| s.strip_prefix('=')) {
                protocols = Some(only.split(',').map(|p| p.trim().to_ascii_lowercase()).collect());
            }
        } else if let Some(flags) = a.strip_prefix('-').filter(|f| !f.starts_with('-')) {
            silent |= flags.contains('s');
            show_error |= flags.contains('S');
        } else if !a.starts_with('-') {
            url = Some(a.clone());
        }
        i += 1;
    }
    let Some(url) = url else { return Ok(Outcome::fail(2, "curl: no URL specified!\n")) };
    let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
    if protocols.as_ref().is_some_and(|p| !p.contains(&scheme)) {
        let msg = if !silent || show_error {
            format!("curl: (1) Protocol \"{scheme}\" not supported or disabled in libcurl\n")
        } else {
            String::new()
        };
        return Ok(Outcome::fail(1, msg));
    }
    let host = url.split("://").nth(1).and_then(|r| r.split('/').next()).unwrap_or("").to_string();
    let served = host == "pkgs.k8s.io" && url.contains("/core:/stable:/v1.") && url.ends_with("/deb/Release.key");
    if !served {
        let msg =
            if !silent || show_error { format!("curl: (6) Could not resolve host: {host}\n") } else { String::new() };
        return Ok(Outcome::fail(6, msg));
    }
    match output_file {
        Some(f) => {
            std::fs::write(&f, REPOSITORY_KEY)?;
            Ok(Outcome::ok(""))
        }
        None => Ok(Outcome::ok(REPOSITORY_KEY)),
    }
}
