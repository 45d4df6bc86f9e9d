//! What the admin's ssh_config says about a host, and how it combines with the inventory.
//!
//! Precedence, per setting: the inventory, then ssh_config, then kubewright's default (user
//! root, port 22, `become` when the user is not root, OpenSSH's own key and known_hosts files).
//! ssh_config is `$HOME/.ssh/config` and then `/etc/ssh/ssh_config`, the order ssh reads them in.
//! kubewright follows `$HOME` (as the russh transport does for keys and known_hosts; the passwd
//! entry's home when HOME is unset): ssh itself reads the passwd entry's home whatever `$HOME`
//! says (ssh.c builds the path from `pw->pw_dir`), so the openssh transport hands ssh a file of
//! the run's that includes those two (`-F`).
//!
//! `ssh -G` is the authority where an `ssh` binary exists: it prints the configuration after
//! evaluating `Host`, `Match` (including `Match exec`, whose commands it runs) and `Include`
//! (ssh(1), `-G`). It is run once per host, without connecting. Without `ssh` (the russh
//! transport on a machine without OpenSSH's client) the files are read by the `ssh2-config`
//! crate, and what only ssh can evaluate (`Match`) is refused, never skipped.
//!
//! `ssh -G` prints defaults and configured values alike. To tell them apart the probe's file
//! ends with a `Host *` block of sentinel values: ssh keeps the first value it obtains for a
//! setting (ssh_config(5)), so a sentinel shows only where nothing before it set the setting
//! (`IdentityFile` accumulates: the sentinel is then last, and removed).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Target;

/// The user the probe's last block gives: shown by `ssh -G` only when no ssh_config sets one.
const UNSET_USER: &str = "kubewright.unset";
/// The file the probe's last block gives for `IdentityFile` and `UserKnownHostsFile`.
const UNSET_FILE: &str = "/nonexistent/kubewright.unset";
/// How long `ssh -G` may take: it does not connect, but a `Match exec` runs a command.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

/// What ssh_config says for one host; None (or empty) where it says nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostConfig {
    /// `HostName`, when it is not the name given.
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// `IdentityFile`, in order (`~` expanded from `$HOME`).
    pub identity_files: Vec<PathBuf>,
    /// `ProxyJump`, as written (`[user@]host[:port]`, possibly several hops).
    pub proxy_jump: Option<String>,
    pub user_known_hosts: Vec<PathBuf>,
    /// Settings the russh transport cannot honour, as `Keyword value`.
    pub beyond_russh: Vec<String>,
    /// Who read it: `ssh -G`, or the ssh_config parser.
    pub read_by: &'static str,
}

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Inventory,
    SshConfig,
    Default,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Inventory => "inventory",
            Origin::SshConfig => "ssh_config",
            Origin::Default => "default",
        }
    }
}

/// Where each of a target's login settings came from (for `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origins {
    pub user: Origin,
    pub port: Origin,
    pub hostname: Origin,
    pub identity: Origin,
    pub known_hosts: Origin,
    pub sudo: Origin,
}

/// Parse `ssh -G` output (one `keyword value` per line, keywords in lower case) of the probe
/// whose last block holds the sentinels. `destination` is the name ssh was given.
pub fn parse_ssh_g(text: &str, destination: &str, home: Option<&Path>) -> Result<HostConfig, String> {
    let mut c = HostConfig { read_by: "ssh -G", ..HostConfig::default() };
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once(' ') else { continue };
        let value = value.trim();
        match key {
            // ssh lower-cases the name it is given; HostName keeps its case.
            "hostname" if !value.eq_ignore_ascii_case(destination) => c.hostname = Some(value.to_string()),
            "user" if value != UNSET_USER => c.user = Some(value.to_string()),
            "port" => {
                let port: u16 = value.parse().map_err(|_| format!("`ssh -G` printed the port `{value}`"))?;
                if port != 22 {
                    c.port = Some(port);
                }
            }
            "identityfile" if value != UNSET_FILE => c.identity_files.push(expand_tilde(value, home)),
            "proxyjump" if value != "none" => c.proxy_jump = Some(value.to_string()),
            "userknownhostsfile" => {
                // ssh prints the list on one line, separated by spaces.
                let files: Vec<&str> = value.split_whitespace().collect();
                if files != [UNSET_FILE] {
                    c.user_known_hosts =
                        files.into_iter().filter(|f| *f != UNSET_FILE).map(|f| expand_tilde(f, home)).collect();
                }
            }
            "proxycommand" | "hostkeyalias" | "certificatefile" | "knownhostscommand" | "pkcs11provider"
                if value != "none" =>
            {
                c.beyond_russh.push(format!("{} {value}", keyword(key)));
            }
            "globalknownhostsfile" if value != "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2" => {
                c.beyond_russh.push(format!("{} {value}", keyword(key)));
            }
            _ => {}
        }
    }
    Ok(c)
}

/// ssh_config's spelling of a keyword `ssh -G` prints in lower case (for messages).
fn keyword(lower: &str) -> &str {
    match lower {
        "proxycommand" => "ProxyCommand",
        "hostkeyalias" => "HostKeyAlias",
        "certificatefile" => "CertificateFile",
        "knownhostscommand" => "KnownHostsCommand",
        "pkcs11provider" => "PKCS11Provider",
        "globalknownhostsfile" => "GlobalKnownHostsFile",
        other => other,
    }
}

fn expand_tilde(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// The run's ssh_config for ssh (`-F`): the admin's, then the system's, as ssh reads them
/// without `-F`. Paths are quoted (ssh_config(5) allows double quotes around arguments).
pub fn run_config(home: Option<&Path>) -> String {
    let mut c = String::from("# kubewright: the ssh configuration of this run (ssh reads no other with -F)\n");
    if let Some(home) = home {
        c.push_str(&format!("Include \"{}\"\n", home.join(".ssh/config").to_string_lossy().replace('"', "")));
    }
    c.push_str("Include /etc/ssh/ssh_config\n");
    c
}

/// [`run_config`] with the sentinels last (see the module's documentation).
pub fn probe_config(home: Option<&Path>) -> String {
    format!(
        "{}\n# Shown by ssh -G only where nothing above sets them.\nHost *\n  User {UNSET_USER}\n  IdentityFile {UNSET_FILE}\n  UserKnownHostsFile {UNSET_FILE}\n",
        run_config(home)
    )
}

/// Apply the precedence (inventory, ssh_config, default) to `target`: its user, port and
/// `sudo` become the effective ones, and `ssh_config` is kept for what the transports read
/// from it. Returns where each setting came from.
pub fn resolve(target: &mut Target, config: HostConfig) -> Origins {
    let given = target.given;
    let user = match (&config.user, given.user) {
        (_, true) => Origin::Inventory,
        (Some(user), false) => {
            target.user = user.clone();
            Origin::SshConfig
        }
        (None, false) => Origin::Default,
    };
    let port = match (config.port, given.port) {
        (_, true) => Origin::Inventory,
        (Some(port), false) => {
            target.port = port;
            Origin::SshConfig
        }
        (None, false) => Origin::Default,
    };
    // Become follows the user who logs in, wherever that user came from.
    let sudo = if given.sudo {
        Origin::Inventory
    } else {
        target.sudo = target.user != "root";
        Origin::Default
    };
    let pick = |inventory: bool, configured: bool| match (inventory, configured) {
        (true, _) => Origin::Inventory,
        (false, true) => Origin::SshConfig,
        (false, false) => Origin::Default,
    };
    let origins = Origins {
        user,
        port,
        hostname: pick(false, config.hostname.is_some()),
        identity: pick(target.identity_file.is_some(), !config.identity_files.is_empty()),
        known_hosts: pick(target.known_hosts.is_some(), !config.user_known_hosts.is_empty()),
        sudo,
    };
    target.ssh_config = config;
    origins
}

/// One line for `-v`: how a host is reached and where each setting came from.
pub fn describe(target: &Target, origins: &Origins) -> String {
    let c = &target.ssh_config;
    let host = c.hostname.as_deref().unwrap_or(&target.address);
    let identity = match (&target.identity_file, c.identity_files.as_slice()) {
        (Some(file), _) => file.display().to_string(),
        (None, []) => "ssh's defaults".to_string(),
        (None, files) => files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(", "),
    };
    let known_hosts = match (&target.known_hosts, c.user_known_hosts.as_slice()) {
        (Some(file), _) => file.display().to_string(),
        (None, []) => "~/.ssh/known_hosts".to_string(),
        (None, files) => files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>().join(" "),
    };
    let become_why = match (origins.sudo, target.sudo) {
        (Origin::Inventory, _) => "inventory",
        (_, true) => "default: the user is not root",
        (_, false) => "default: the user is root",
    };
    let mut line = format!(
        "{}: ssh {}@{}:{} (user: {}, port: {}, host: {}); identity {} ({}); known_hosts {} ({}); become {} ({}); ssh_config read by {}",
        target.name,
        target.user,
        host,
        target.port,
        origins.user.as_str(),
        origins.port.as_str(),
        if origins.hostname == Origin::SshConfig { "ssh_config HostName" } else { "inventory address" },
        identity,
        origins.identity.as_str(),
        known_hosts,
        origins.known_hosts.as_str(),
        if target.sudo { "sudo" } else { "no" },
        become_why,
        if c.read_by.is_empty() { "nobody" } else { c.read_by },
    );
    if let Some(jump) = &c.proxy_jump
        && target.bastion.is_none()
    {
        line.push_str(&format!("; ProxyJump {jump} (ssh_config)"));
    }
    line
}

/// A jump host from a `ProxyJump` value: `[user@]host[:port]` or `ssh://[user@]host[:port]`;
/// `ssh -G` prints a numeric host in brackets, `root@[10.0.0.1]` (readconf.c,
/// dump_client_config). None for several hops (`a,b`), which the russh transport refuses.
pub fn parse_jump(spec: &str) -> Option<(Option<String>, String, Option<u16>)> {
    if spec.contains(',') {
        return None;
    }
    let spec = spec.strip_prefix("ssh://").unwrap_or(spec);
    let (user, rest) = match spec.rsplit_once('@') {
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, spec),
    };
    // `[v6]:port`, `[v6]`, `host:port`, `host`.
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host, Some(port)),
            _ => (rest, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    (!host.is_empty()).then(|| (user, host.to_string(), port))
}

/// The home whose `.ssh/config` is the admin's: `$HOME`, else the passwd entry's (a job started
/// without HOME, where ssh would read that one).
pub fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.dir))
}

/// Reads ssh_config for a run's hosts: owns the run's `-F` files.
pub struct ConfigReader {
    dir: tempfile::TempDir,
    home: Option<PathBuf>,
}

impl ConfigReader {
    pub fn new() -> std::io::Result<ConfigReader> {
        let dir = tempfile::Builder::new().prefix("kubewright-ssh-config-").tempdir()?;
        let home = home();
        std::fs::write(dir.path().join("config"), run_config(home.as_deref()))?;
        std::fs::write(dir.path().join("probe"), probe_config(home.as_deref()))?;
        Ok(ConfigReader { dir, home })
    }

    /// The file the openssh transport gives ssh with `-F`.
    pub fn run_config_file(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    /// What ssh_config says for `destination` (the inventory's address): from `ssh -G`, or,
    /// when there is no `ssh` and `parser_fallback` allows it, from the files themselves.
    pub async fn read(&self, destination: &str, parser_fallback: bool) -> Result<HostConfig, String> {
        let mut command = tokio::process::Command::new("ssh");
        command
            .arg("-G")
            .arg("-F")
            .arg(self.dir.path().join("probe"))
            .arg("--")
            .arg(destination)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(PROBE_TIMEOUT, command.output()).await {
            Err(_) => {
                return Err(format!(
                    "`ssh -G {destination}` did not finish within {}s (a `Match exec` command that hangs?)",
                    PROBE_TIMEOUT.as_secs()
                ));
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound && parser_fallback => {
                return self.parse_files(destination);
            }
            Ok(Err(e)) => return Err(format!("cannot run `ssh -G {destination}`: {e}")),
            Ok(Ok(out)) => out,
        };
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let said: Vec<&str> =
                said.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("Pseudo-terminal")).collect();
            return Err(format!("`ssh -G {destination}` refused the ssh configuration: {}", said.join("; ")));
        }
        parse_ssh_g(&String::from_utf8_lossy(&out.stdout), destination, self.home.as_deref())
    }

    #[cfg(feature = "russh")]
    fn parse_files(&self, destination: &str) -> Result<HostConfig, String> {
        let mut files: Vec<PathBuf> = self.home.iter().map(|h| h.join(".ssh/config")).collect();
        files.push(PathBuf::from("/etc/ssh/ssh_config"));
        let mut merged =
            HostConfig { read_by: "kubewright's ssh_config parser (no `ssh` binary)", ..Default::default() };
        for file in files.iter().filter(|f| f.exists()) {
            let c = parse_file(file, destination, self.home.as_deref())?;
            // The first obtained value wins, file after file (ssh_config(5)).
            merged.hostname = merged.hostname.or(c.hostname);
            merged.user = merged.user.or(c.user);
            merged.port = merged.port.or(c.port);
            merged.identity_files.extend(c.identity_files);
            merged.proxy_jump = merged.proxy_jump.or(c.proxy_jump);
            if merged.user_known_hosts.is_empty() {
                merged.user_known_hosts = c.user_known_hosts;
            }
            merged.beyond_russh.extend(c.beyond_russh);
        }
        Ok(merged)
    }

    #[cfg(not(feature = "russh"))]
    fn parse_files(&self, destination: &str) -> Result<HostConfig, String> {
        Err(format!("cannot run `ssh -G {destination}`: no `ssh` binary"))
    }
}

/// One ssh_config file read by `ssh2-config` for `destination`. Strict: a keyword it does not
/// know (`Match` above all, whose block would otherwise be read as part of the block before
/// it) is an error, not a line skipped.
#[cfg(feature = "russh")]
fn parse_file(file: &Path, destination: &str, home: Option<&Path>) -> Result<HostConfig, String> {
    use ssh2_config::{ParseRule, SshConfig, SshParserError};
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let mut config = SshConfig::default();
    if let Some(home) = home {
        config = config.home_dir(home);
    }
    let parsed = config.parse(&mut text.as_bytes(), ParseRule::ALLOW_UNSUPPORTED_FIELDS).map_err(|e| match e {
        SshParserError::UnknownField(field, _) if field.eq_ignore_ascii_case("match") => format!(
            "{} has a `Match` block, which only ssh can evaluate: install OpenSSH's client (`ssh -G` is then asked), or use --transport openssh",
            file.display()
        ),
        e => format!("{} cannot be read without an `ssh` binary: {e}", file.display()),
    })?;
    let p = parsed.query(destination);
    let unsupported =
        |key: &str| p.unsupported_fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.join(" "));
    let mut c = HostConfig {
        hostname: p.host_name.clone().filter(|h| !h.eq_ignore_ascii_case(destination)),
        user: p.user.clone(),
        port: p.port.filter(|p| *p != 22),
        identity_files: p.identity_file.clone().unwrap_or_default(),
        proxy_jump: p.proxy_jump.as_ref().map(|hops| hops.join(",")).filter(|j| j != "none"),
        user_known_hosts: unsupported("userknownhostsfile")
            .map(|v| v.split_whitespace().map(|f| expand_tilde(f, home)).collect())
            .unwrap_or_default(),
        beyond_russh: Vec::new(),
        read_by: "kubewright's ssh_config parser (no `ssh` binary)",
    };
    if let Some(cert) = &p.certificate_file {
        c.beyond_russh.push(format!("CertificateFile {}", cert.display()));
    }
    for key in [
        "ProxyCommand",
        "HostKeyAlias",
        "KnownHostsCommand",
        "PKCS11Provider",
        "GlobalKnownHostsFile",
        "CanonicalizeHostname",
    ] {
        if let Some(value) = unsupported(key)
            && !value.eq_ignore_ascii_case("none")
            && !value.eq_ignore_ascii_case("no")
        {
            c.beyond_russh.push(format!("{key} {value}"));
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::SshGiven;

    const G: &str = "user kwadmin\nhostname 10.1.2.3\nport 2200\ncanonicalizehostname false\nidentitiesonly no\n\
        identityfile ~/.ssh/k1\nidentityfile /tmp/with space/k2\nidentityfile /nonexistent/kubewright.unset\n\
        globalknownhostsfile /etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2\n\
        userknownhostsfile /nonexistent/kubewright.unset\n";

    #[test]
    fn ssh_g_output_keeps_what_ssh_config_sets_and_drops_the_sentinels() {
        let c = parse_ssh_g(G, "10.1.2.3", Some(Path::new("/home/a"))).unwrap();
        assert_eq!(c.user.as_deref(), Some("kwadmin"));
        assert_eq!(c.port, Some(2200));
        assert_eq!(c.hostname, None, "the name given is not a HostName");
        assert_eq!(c.identity_files, [PathBuf::from("/home/a/.ssh/k1"), PathBuf::from("/tmp/with space/k2")]);
        assert!(c.user_known_hosts.is_empty());
        assert!(c.beyond_russh.is_empty());
        assert_eq!(c.read_by, "ssh -G");
    }

    #[test]
    fn ssh_g_output_of_an_unconfigured_host_is_all_defaults() {
        let text = "user kubewright.unset\nhostname w1\nport 22\nidentityfile /nonexistent/kubewright.unset\n\
            userknownhostsfile /nonexistent/kubewright.unset\nproxyjump none\n";
        let c = parse_ssh_g(text, "W1", None).unwrap();
        assert_eq!(c, HostConfig { read_by: "ssh -G", ..Default::default() });
    }

    #[test]
    fn ssh_g_output_names_what_russh_cannot_honour() {
        let text = "hostname db.internal\nproxycommand nc %h %p\nproxyjump ops@jump:2222\n\
            userknownhostsfile ~/.ssh/kh /etc/kh2\nglobalknownhostsfile /etc/other\nport x\n";
        let err = parse_ssh_g(text, "db", None).unwrap_err();
        assert!(err.contains("port `x`"), "{err}");
        let c = parse_ssh_g(&text.replace("port x\n", ""), "db", Some(Path::new("/h"))).unwrap();
        assert_eq!(c.hostname.as_deref(), Some("db.internal"));
        assert_eq!(c.proxy_jump.as_deref(), Some("ops@jump:2222"));
        assert_eq!(c.user_known_hosts, [PathBuf::from("/h/.ssh/kh"), PathBuf::from("/etc/kh2")]);
        assert_eq!(c.beyond_russh, ["ProxyCommand nc %h %p", "GlobalKnownHostsFile /etc/other"]);
    }

    fn target(given: SshGiven) -> Target {
        Target { address: "10.1.2.3".into(), given, ..crate::exec::memory::target("cp1") }
    }

    fn configured() -> HostConfig {
        HostConfig { user: Some("kwadmin".into()), port: Some(2200), read_by: "ssh -G", ..Default::default() }
    }

    #[test]
    fn ssh_config_fills_what_the_inventory_leaves_out_and_become_follows_the_user() {
        let mut t = target(SshGiven::default());
        let o = resolve(&mut t, configured());
        assert_eq!((t.user.as_str(), t.port, t.sudo), ("kwadmin", 2200, true));
        assert_eq!((o.user, o.port, o.sudo), (Origin::SshConfig, Origin::SshConfig, Origin::Default));
        let line = describe(&t, &o);
        assert!(line.starts_with("cp1: ssh kwadmin@10.1.2.3:2200 (user: ssh_config, port: ssh_config"), "{line}");
        assert!(line.contains("become sudo (default: the user is not root)"), "{line}");
    }

    #[test]
    fn the_inventory_wins_over_ssh_config() {
        let mut t = target(SshGiven { user: true, port: true, sudo: true });
        t.identity_file = Some("/k".into());
        let config = HostConfig { identity_files: vec!["/other".into()], ..configured() };
        let o = resolve(&mut t, config);
        assert_eq!((t.user.as_str(), t.port, t.sudo), ("root", 22, false));
        assert_eq!(
            (o.user, o.port, o.sudo, o.identity),
            (Origin::Inventory, Origin::Inventory, Origin::Inventory, Origin::Inventory)
        );
    }

    #[test]
    fn without_ssh_config_kubewright_defaults_apply() {
        let mut t = target(SshGiven::default());
        let o = resolve(&mut t, HostConfig { read_by: "ssh -G", ..Default::default() });
        assert_eq!((t.user.as_str(), t.port, t.sudo), ("root", 22, false));
        assert_eq!(
            (o.user, o.port, o.identity, o.known_hosts),
            (Origin::Default, Origin::Default, Origin::Default, Origin::Default)
        );
        assert!(describe(&t, &o).contains("become no (default: the user is root)"));
    }

    #[test]
    fn an_explicit_become_stays_whoever_logs_in() {
        let mut t = target(SshGiven { sudo: true, ..Default::default() });
        resolve(&mut t, configured());
        assert_eq!((t.user.as_str(), t.sudo), ("kwadmin", false), "become: false in the inventory");
    }

    #[test]
    fn jump_specs() {
        assert_eq!(parse_jump("jump"), Some((None, "jump".into(), None)));
        assert_eq!(parse_jump("ops@jump:2222"), Some((Some("ops".into()), "jump".into(), Some(2222))));
        assert_eq!(parse_jump("ssh://ops@[fd00::1]:22"), Some((Some("ops".into()), "fd00::1".into(), Some(22))));
        // `ssh -G` prints the jump host in brackets, an IPv4 address too (OpenSSH 9.2).
        assert_eq!(parse_jump("root@[10.0.0.1]"), Some((Some("root".into()), "10.0.0.1".into(), None)));
        assert_eq!(parse_jump("a,b"), None);
        assert_eq!(parse_jump("jump:x"), None);
    }

    #[test]
    fn the_probe_reads_the_admins_file_then_the_systems_then_the_sentinels() {
        let text = probe_config(Some(Path::new("/home/a b")));
        let inc = text.find("Include \"/home/a b/.ssh/config\"").unwrap();
        let sys = text.find("Include /etc/ssh/ssh_config").unwrap();
        let sentinel = text.find("User kubewright.unset").unwrap();
        assert!(inc < sys && sys < sentinel, "{text}");
        assert!(!run_config(None).contains(".ssh/config"));
    }

    #[cfg(feature = "russh")]
    #[test]
    fn the_parser_reads_hosts_and_refuses_match_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(
            &file,
            "Host 10.1.2.3\n  User kwadmin\n  Port 2200\n  IdentityFile ~/.ssh/k1\n  UserKnownHostsFile ~/kh\n  ProxyCommand nc %h %p\n",
        )
        .unwrap();
        let c = parse_file(&file, "10.1.2.3", Some(Path::new("/h"))).unwrap();
        assert_eq!((c.user.as_deref(), c.port), (Some("kwadmin"), Some(2200)));
        assert_eq!(c.identity_files, [PathBuf::from("/h/.ssh/k1")]);
        assert_eq!(c.user_known_hosts, [PathBuf::from("/h/kh")]);
        assert_eq!(c.beyond_russh, ["ProxyCommand nc %h %p"]);
        let other = parse_file(&file, "10.9.9.9", Some(Path::new("/h"))).unwrap();
        assert_eq!((other.user, other.port), (None, None));

        std::fs::write(&file, "Host a\n  User x\nMatch host b exec \"true\"\n  User y\n").unwrap();
        let err = parse_file(&file, "b", None).unwrap_err();
        assert!(err.contains("has a `Match` block, which only ssh can evaluate"), "{err}");
    }
}
