//! systemctl, sysctl, modprobe, swapoff/swapon.

use std::collections::BTreeMap;
use std::path::Path;

use super::Outcome;
use super::host::{loaded_modules, state_dir, with_host, write_atomic};

/// Rewrite /proc/swaps' stand-in in place: the host sees it through a bind mount of this
/// very inode, so it must not be replaced by a rename.
fn write_swaps(active: bool) -> anyhow::Result<()> {
    let mut text = format!("{}\n", super::PROC_SWAPS_HEADER);
    if active {
        text.push_str(super::PROC_SWAPS_ACTIVE);
        text.push('\n');
    }
    std::fs::write(state_dir().join("proc-swaps"), text)?;
    Ok(())
}

/// `systemctl` for the units the packages install (containerd, kubelet).
pub fn systemctl(args: &[String]) -> anyhow::Result<Outcome> {
    // `--quiet`: is-active/is-enabled answer by exit status only (systemctl(1)).
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !matches!(*a, "-q" | "--quiet" | "--no-pager" | "--no-block"))
        .collect();
    let Some((&verb, rest)) = args.split_first() else {
        return Ok(Outcome::fail(1, "systemctl: no verb given (the simulator does not list units)\n"));
    };
    if verb == "daemon-reload" {
        return with_host(|s| {
            s.daemon_reloads += 1;
            Ok(Outcome::ok(""))
        });
    }
    let now = rest.contains(&"--now");
    let units: Vec<String> =
        rest.iter().filter(|a| !a.starts_with("--")).map(|u| u.trim_end_matches(".service").to_string()).collect();
    if units.is_empty() {
        return Ok(Outcome::fail(1, "Too few arguments.\n"));
    }
    let result = with_host(|s| {
        // A unit systemd has not seen yet is known once a package installed its unit file.
        for unit in &units {
            if !s.units.contains_key(unit) && unit_file_exists(unit) {
                s.units.insert(unit.clone(), Default::default());
            }
        }
        let mut out = String::new();
        let mut code = 0;
        for unit in &units {
            let Some(u) = s.units.get_mut(unit) else {
                // systemd's wording (src/systemctl): "Unit %s not found."
                let msg = match verb {
                    "is-active" => {
                        if !quiet {
                            out.push_str("inactive\n");
                        }
                        code = 3;
                        continue;
                    }
                    "is-enabled" => {
                        return Ok(Outcome::fail(
                            1,
                            format!("Failed to get unit file state for {unit}.service: No such file or directory\n"),
                        ));
                    }
                    "enable" | "disable" => {
                        format!("Failed to {verb} unit: Unit file {unit}.service does not exist.\n")
                    }
                    _ => format!("Failed to {verb} {unit}.service: Unit {unit}.service not found.\n"),
                };
                return Ok(Outcome::fail(if verb == "status" { 4 } else { 5 }, msg));
            };
            match verb {
                "start" => {
                    if !u.active {
                        u.active = true;
                        u.starts += 1;
                    }
                }
                "restart" => {
                    u.active = true;
                    u.starts += 1;
                }
                "stop" => u.active = false,
                "enable" => {
                    u.enabled = true;
                    if now && !u.active {
                        u.active = true;
                        u.starts += 1;
                    }
                }
                "disable" => {
                    u.enabled = false;
                    if now {
                        u.active = false;
                    }
                }
                "is-active" => {
                    out.push_str(if u.active { "active\n" } else { "inactive\n" });
                    if !u.active {
                        code = 3;
                    }
                }
                "is-enabled" => {
                    out.push_str(if u.enabled { "enabled\n" } else { "disabled\n" });
                    if !u.enabled {
                        code = 1;
                    }
                }
                "status" => {
                    let state = if u.active { "active (running)" } else { "inactive (dead)" };
                    out.push_str(&format!(
                        "● {unit}.service\n     Loaded: loaded (/lib/systemd/system/{unit}.service; {}; preset: enabled)\n     Active: {state}\n",
                        if u.enabled { "enabled" } else { "disabled" }
                    ));
                    if !u.active {
                        code = 3;
                    }
                }
                other => return Ok(Outcome::fail(1, format!("Unknown command verb '{other}'.\n"))),
            }
        }
        if quiet && matches!(verb, "is-active" | "is-enabled") {
            out.clear();
        }
        Ok(Outcome { code, stdout: out, stderr: String::new() })
    })?;
    // enable/disable change what starts at boot, not what runs, unless with --now (a package
    // upgrade's postinst enabling a running kubelet does not restart it).
    if units.iter().any(|u| u == "kubelet")
        && (matches!(verb, "start" | "restart" | "stop") || (now && matches!(verb, "enable" | "disable")))
        && result.code == 0
    {
        let active = with_host(|s| Ok(s.units.get("kubelet").is_some_and(|u| u.active)))?;
        super::kubectl::kubelet_changed(active)?;
    }
    Ok(result)
}

/// Whether a package installed `unit`'s file where systemd looks (systemd.unit(5) search path).
fn unit_file_exists(unit: &str) -> bool {
    ["/etc/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"]
        .iter()
        .any(|d| Path::new(d).join(format!("{unit}.service")).is_file())
}

/// Files `sysctl --system` reads, in procps-ng's order; later files win.
const SYSCTL_DIRS: &[&str] =
    &["/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d"];

pub fn sysctl(args: &[String]) -> anyhow::Result<Outcome> {
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let value_only = args.iter().any(|a| a == "-n" || a == "--values");
    let rest: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !matches!(*a, "-q" | "--quiet" | "-n" | "--values" | "-e"))
        .collect();
    match rest.first().copied() {
        Some("--system") => {
            // Same name in several directories: the first directory wins (procps-ng).
            let mut files: BTreeMap<String, std::path::PathBuf> = BTreeMap::new();
            for dir in SYSCTL_DIRS {
                if let Ok(entries) = std::fs::read_dir(dir) {
                    for e in entries.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if name.ends_with(".conf") {
                            files.entry(name).or_insert(e.path());
                        }
                    }
                }
            }
            let mut list: Vec<std::path::PathBuf> = files.into_values().collect();
            list.push("/etc/sysctl.conf".into());
            let mut out = Outcome::ok("");
            for f in list.iter().filter(|f| f.exists()) {
                if !quiet {
                    out.stdout.push_str(&format!("* Applying {} ...\n", f.display()));
                }
                apply_file(f, quiet, &mut out)?;
            }
            Ok(out)
        }
        Some("-p") | Some("--load") => {
            let file = rest.get(1).copied().unwrap_or("/etc/sysctl.conf");
            let mut out = Outcome::ok("");
            if !Path::new(file).exists() {
                return Ok(Outcome::fail(255, format!("sysctl: cannot open \"{file}\": No such file or directory\n")));
            }
            apply_file(Path::new(file), quiet, &mut out)?;
            Ok(out)
        }
        Some("-w") | Some("--write") => {
            let mut out = Outcome::ok("");
            for kv in &rest[1..] {
                let Some((k, v)) = kv.split_once('=') else {
                    return Ok(Outcome::fail(255, format!("sysctl: \"{kv}\" must be of the form name=value\n")));
                };
                set(k.trim(), v.trim(), quiet, &mut out)?;
            }
            Ok(out)
        }
        Some(_) => {
            let mut out = Outcome::ok("");
            for key in &rest {
                if let Some((k, v)) = key.split_once('=') {
                    set(k.trim(), v.trim(), quiet, &mut out)?;
                    continue;
                }
                match get(key) {
                    Some(v) if value_only => out.stdout.push_str(&format!("{v}\n")),
                    Some(v) => out.stdout.push_str(&format!("{key} = {v}\n")),
                    None => {
                        out.stderr.push_str(&format!(
                            "sysctl: cannot stat /proc/sys/{}: No such file or directory\n",
                            key.replace('.', "/")
                        ));
                        out.code = 255;
                    }
                }
            }
            Ok(out)
        }
        None => Ok(Outcome::fail(255, "sysctl: no variables specified\n")),
    }
}

fn apply_file(path: &Path, quiet: bool, out: &mut Outcome) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path)?;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let (ignore_errors, line) = match line.strip_prefix('-') {
            Some(l) => (true, l),
            None => (false, line),
        };
        if let Some((k, v)) = line.split_once('=') {
            let before = out.code;
            set(k.trim(), v.trim(), quiet, out)?;
            if ignore_errors {
                out.code = before;
            }
        }
    }
    Ok(())
}

/// The value a key has on this host: recorded by the simulator, else the namespace's own.
fn get(key: &str) -> Option<String> {
    let recorded = with_host(|s| Ok(s.sysctls.get(key).cloned())).ok().flatten();
    recorded.or_else(|| {
        std::fs::read_to_string(Path::new("/proc/sys").join(key.replace('.', "/"))).ok().map(|v| v.trim().to_string())
    })
}

fn set(key: &str, value: &str, quiet: bool, out: &mut Outcome) -> anyhow::Result<()> {
    let proc_path = Path::new("/proc/sys").join(key.replace('.', "/"));
    // net.bridge.* exist only once br_netfilter is loaded (kubeadm's famous preflight error).
    if key.starts_with("net.bridge.") && !loaded_modules().contains("br_netfilter") {
        out.stderr.push_str(&format!("sysctl: cannot stat {}: No such file or directory\n", proc_path.display()));
        out.code = 255;
        return Ok(());
    }
    // net.* is per network namespace: apply it for real where the namespace has the file.
    // Nothing else is written to the kernel: /proc/sys is read-only in a host anyway.
    if key.starts_with("net.") && proc_path.exists() && std::fs::write(&proc_path, value).is_err() {
        // Not writable in this namespace: record it like the rest.
    }
    with_host(|s| {
        s.sysctls.insert(key.to_string(), value.to_string());
        Ok(())
    })?;
    if !quiet {
        out.stdout.push_str(&format!("{key} = {value}\n"));
    }
    Ok(())
}

pub fn modprobe(args: &[String]) -> anyhow::Result<Outcome> {
    let names: Vec<&str> = args.iter().map(String::as_str).filter(|a| !a.starts_with('-')).collect();
    let remove = args.iter().any(|a| a == "-r" || a == "--remove");
    let Some(&name) = names.first() else {
        return Ok(Outcome::fail(1, "modprobe: ERROR: missing parameters. See -h.\n"));
    };
    let known =
        ["overlay", "br_netfilter", "ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_sh", "nf_conntrack", "bridge", "vxlan"];
    if !known.contains(&name) && !loaded_modules().contains(name) {
        return Ok(Outcome::fail(
            1,
            format!("modprobe: FATAL: Module {name} not found in directory /lib/modules/{}\n", kernel_release()),
        ));
    }
    let path = state_dir().join("proc-modules");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines: Vec<String> =
        text.lines().map(str::to_string).filter(|l| l.split_whitespace().next() != Some(name)).collect();
    if !remove {
        lines.insert(0, format!("{name} 32768 0 - Live 0x0000000000000000"));
        if name == "br_netfilter" && !lines.iter().any(|l| l.starts_with("bridge ")) {
            lines.insert(1, "bridge 311296 1 br_netfilter, Live 0x0000000000000000".into());
        }
    }
    write_atomic(&path, (lines.join("\n") + "\n").as_bytes())?;
    Ok(Outcome::ok(""))
}

/// `lsmod`: the modules this host has loaded (kmod's format).
pub fn lsmod() -> anyhow::Result<Outcome> {
    let text = std::fs::read_to_string(state_dir().join("proc-modules")).unwrap_or_default();
    let mut out = String::from("Module                  Size  Used by\n");
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 4 {
            let users = if f[3] == "-" { String::new() } else { f[3].trim_end_matches(',').to_string() };
            out.push_str(format!("{:<19} {:>8}  {} {}", f[0], f[1], f[2], users).trim_end());
            out.push('\n');
        }
    }
    Ok(Outcome::ok(out))
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

pub fn swapoff(args: &[String]) -> anyhow::Result<Outcome> {
    if !args.iter().any(|a| a == "-a" || a == "--all") {
        return Ok(Outcome::fail(1, "swapoff: only -a is simulated\n"));
    }
    write_swaps(false)?;
    Ok(Outcome::ok(""))
}

/// `swapon -a` turns on the swap entries of /etc/fstab that are not commented out.
pub fn swapon(args: &[String]) -> anyhow::Result<Outcome> {
    if args.iter().any(|a| a == "--show" || a == "-s") {
        let swaps = std::fs::read_to_string(state_dir().join("proc-swaps")).unwrap_or_default();
        let active = swaps.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
        return Ok(Outcome::ok(if active > 0 {
            "NAME      TYPE      SIZE USED PRIO\n/dev/vda3 partition   2G   0B   -2\n"
        } else {
            ""
        }));
    }
    let fstab = std::fs::read_to_string("/etc/fstab").unwrap_or_default();
    let has_swap =
        fstab.lines().any(|l| !l.trim_start().starts_with('#') && l.split_whitespace().nth(2) == Some("swap"));
    if has_swap {
        write_swaps(true)?;
    }
    Ok(Outcome::ok(""))
}
