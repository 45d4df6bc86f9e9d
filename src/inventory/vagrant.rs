//! `kubewright inventory from-vagrant`: an inventory from what `vagrant ssh-config` prints, for
//! any Vagrantfile's machines.
//!
//! `vagrant ssh-config` knows how to reach each machine (address, port, user, keys) but not
//! its address on the network the nodes share, which is what the kubelet and flannel must use
//! (the first NIC is the same NAT address on every VirtualBox VM). By default each node IP is
//! read on the machine itself when a plan is made, the IPv4 address of `--interface`
//! (`internalAddress: {interface: eth1}`); `--network` instead follows vagrant/Vagrantfile's
//! convention, control planes at `<network>.11`, `.12`, ..., workers at `<network>.21`, ...
//!
//! Which machines are control planes is a glob on their names (`--control-planes`, default
//! `cp*`, the Vagrantfile's `cp1`...); the others are workers, or only those matching
//! `--workers` when given (the rest are left out, with a warning). A machine matching both is
//! a control plane: `--workers` narrows "the others", it never takes a control plane away.

use std::fmt::Write as _;

/// One `Host` block of `vagrant ssh-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshEntry {
    pub name: String,
    pub host_name: String,
    pub port: u16,
    pub user: String,
    /// Every `IdentityFile`, in order: Vagrant lists the machine's own key, or its insecure
    /// keys (ed25519, then RSA since Vagrant 2.3.7), and ssh tries them in that order. An old
    /// box accepts only the RSA one.
    pub identity_files: Vec<String>,
    /// `ProxyCommand` (vagrant-libvirt on a remote host, some providers): the inventory has no
    /// equivalent, so its presence is warned about.
    pub proxy_command: Option<String>,
    /// `HostKeyAlgorithms +ssh-rsa` or `PubkeyAcceptedKeyTypes +ssh-rsa`: the machine's ssh
    /// config lets SHA-1 RSA signatures through, which kubewright does not.
    pub allows_ssh_rsa: bool,
}

/// Where each machine's node IP comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeIps {
    /// Read on each machine when the plan is made: the IPv4 address of the interface.
    FromInterface,
    /// vagrant/Vagrantfile's convention on this network (its first three octets, `192.168.56`).
    Convention { network: String },
}

/// What the importer was told beyond `vagrant ssh-config`.
pub struct ImportOptions<'a> {
    pub cluster: &'a str,
    pub kubernetes_version: &'a str,
    /// Globs on the machine names (`k8s-cp-*`): the control planes.
    pub control_planes: &'a [String],
    /// Globs on the machine names: which of the others are workers; empty: all of them.
    pub workers: &'a [String],
    pub node_ips: NodeIps,
    /// The interface of the network the nodes share (`eth1` on Debian and Ubuntu boxes): the
    /// node IP's with [`NodeIps::FromInterface`], and flannel's.
    pub interface: &'a str,
    /// Where kubewright keeps the machines' host keys (Vagrant's own config disables checking).
    pub known_hosts: &'a str,
}

/// The inventory as YAML (the loader then checks it like any other) and what the user should
/// know about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub yaml: String,
    /// The machines in the inventory, in its order.
    pub hosts: Vec<String>,
    pub warnings: Vec<String>,
}

/// A keyword and its value on an ssh_config line (`Port 2222`, `IdentityFile "/a b/key"`).
fn keyword(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (key, rest) = line.split_once(|c: char| c.is_whitespace() || c == '=')?;
    let value = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '=').trim();
    let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// The `Host` blocks of `vagrant ssh-config`, in order; `Err` names the line that is wrong.
pub fn parse_ssh_config(text: &str) -> Result<Vec<SshEntry>, String> {
    let mut entries: Vec<SshEntry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some((key, value)) = keyword(line) else { continue };
        let at = |what: &str| format!("line {}: {what}", n + 1);
        if key == "host" {
            if value.is_empty() {
                return Err(at("`Host` without a machine name"));
            }
            entries.push(SshEntry {
                name: value,
                host_name: String::new(),
                port: 22,
                user: "vagrant".into(),
                identity_files: Vec::new(),
                proxy_command: None,
                allows_ssh_rsa: false,
            });
            continue;
        }
        let Some(entry) = entries.last_mut() else {
            return Err(at(&format!("`{key}` before any `Host` line: is this `vagrant ssh-config` output?")));
        };
        match key.as_str() {
            "hostname" => entry.host_name = value,
            "port" => entry.port = value.parse().map_err(|_| at(&format!("`{value}` is not a port")))?,
            "user" => entry.user = value,
            // An empty value is what Vagrant 0.9 printed for a missing key (hashicorp/vagrant#626).
            "identityfile" if !value.is_empty() => entry.identity_files.push(value),
            "proxycommand" => entry.proxy_command = Some(value),
            "hostkeyalgorithms" | "pubkeyacceptedkeytypes" | "pubkeyacceptedalgorithms" => {
                entry.allows_ssh_rsa |= value.split(',').any(|a| a.trim_start_matches(['+', '^']) == "ssh-rsa");
            }
            _ => {}
        }
    }
    if entries.is_empty() {
        return Err("no `Host` blocks: run `vagrant up` first, then pipe `vagrant ssh-config` in".into());
    }
    if let Some(e) = entries.iter().find(|e| e.host_name.is_empty()) {
        return Err(format!("machine `{}` has no HostName (is it running? `vagrant status`)", e.name));
    }
    Ok(entries)
}

/// Whether `name` matches the shell-style `pattern`: `*` any run of characters, `?` one,
/// `[abc]`, `[a-z]` and `[!a-z]` (or `[^a-z]`) one of a set. Linear in practice: one
/// backtracking point (the last `*`), as every other token takes exactly one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let tokens = glob_tokens(pattern);
    let name: Vec<char> = name.chars().collect();
    let (mut t, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match tokens.get(t) {
            Some(GlobToken::Star) => {
                star = Some((t, n));
                t += 1;
            }
            Some(token) if token.takes(name[n]) => {
                t += 1;
                n += 1;
            }
            _ => match star {
                // Let the last `*` take one more character and try again from there.
                Some((star_t, star_n)) => {
                    t = star_t + 1;
                    n = star_n + 1;
                    star = Some((star_t, star_n + 1));
                }
                None => return false,
            },
        }
    }
    tokens[t..].iter().all(|token| matches!(token, GlobToken::Star))
}

enum GlobToken {
    Star,
    Any,
    Char(char),
    /// `[...]`: (single characters and ranges, negated).
    Set(Vec<(char, char)>, bool),
}

impl GlobToken {
    /// Whether this one-character token matches `c`.
    fn takes(&self, c: char) -> bool {
        match self {
            GlobToken::Star => false,
            GlobToken::Any => true,
            GlobToken::Char(want) => *want == c,
            GlobToken::Set(ranges, negated) => ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated,
        }
    }
}

fn glob_tokens(pattern: &str) -> Vec<GlobToken> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => tokens.push(GlobToken::Star),
            '?' => tokens.push(GlobToken::Any),
            '[' => match glob_set(&chars[i + 1..]) {
                Some((set, used)) => {
                    tokens.push(set);
                    i += used;
                }
                // No closing `]`: the `[` is itself.
                None => tokens.push(GlobToken::Char('[')),
            },
            c => tokens.push(GlobToken::Char(c)),
        }
        i += 1;
    }
    tokens
}

/// The set a `[...]` stands for (`text`: what follows the `[`) and how many characters of
/// `text` it took, its `]` included; None without a closing `]`. A `]` first is a member.
fn glob_set(text: &[char]) -> Option<(GlobToken, usize)> {
    let negated = matches!(text.first(), Some('!' | '^'));
    let start = usize::from(negated);
    let end = start + 1 + text.get(start + 1..)?.iter().position(|c| *c == ']')?;
    let members = text.get(start..end)?;
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < members.len() {
        if i + 2 < members.len() && members[i + 1] == '-' {
            ranges.push((members[i], members[i + 2]));
            i += 3;
        } else {
            ranges.push((members[i], members[i]));
            i += 1;
        }
    }
    Some((GlobToken::Set(ranges, negated), end + 1))
}

fn matches_any(globs: &[String], name: &str) -> bool {
    globs.iter().any(|g| glob_match(g, name))
}

fn globs_text(globs: &[String]) -> String {
    globs.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(", ")
}

/// Which machines are control planes and which workers, in `vagrant ssh-config` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection<'a> {
    pub control_planes: Vec<&'a SshEntry>,
    pub workers: Vec<&'a SshEntry>,
    /// Machines matching neither the control planes' globs nor the workers'.
    pub left_out: Vec<&'a str>,
}

/// The machines matching `control_planes` are control planes (also when they match `workers`);
/// of the others, those matching `workers` (all when it is empty) are workers. At least one
/// control plane must match: the error names the globs and the machines seen.
pub fn select<'a>(
    entries: &'a [SshEntry],
    control_planes: &[String],
    workers: &[String],
) -> Result<Selection<'a>, String> {
    let mut selection = Selection { control_planes: Vec::new(), workers: Vec::new(), left_out: Vec::new() };
    for e in entries {
        if matches_any(control_planes, &e.name) {
            selection.control_planes.push(e);
        } else if workers.is_empty() || matches_any(workers, &e.name) {
            selection.workers.push(e);
        } else {
            selection.left_out.push(&e.name);
        }
    }
    if selection.control_planes.is_empty() {
        let seen: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        return Err(format!(
            "no control plane: no machine matches --control-planes {} (the machines are {})",
            globs_text(control_planes),
            seen.join(", ")
        ));
    }
    Ok(selection)
}

/// The inventory for `entries`, as YAML, with warnings for what it leaves out or cannot carry.
pub fn inventory(entries: &[SshEntry], o: &ImportOptions<'_>) -> Result<Imported, String> {
    let selection = select(entries, o.control_planes, o.workers)?;
    let mut warnings = Vec::new();
    if !selection.left_out.is_empty() {
        warnings.push(format!(
            "left out, matching neither --control-planes {} nor --workers {}: {}",
            globs_text(o.control_planes),
            globs_text(o.workers),
            selection.left_out.join(", ")
        ));
    }
    for glob in o.control_planes.iter().chain(o.workers) {
        if !entries.iter().any(|e| glob_match(glob, &e.name)) {
            warnings.push(format!("`{glob}` matches no machine"));
        }
    }
    let chosen = || selection.control_planes.iter().chain(&selection.workers);
    for e in chosen().filter(|e| e.proxy_command.is_some()) {
        warnings.push(format!(
            "`{}` is reached through a ProxyCommand (`{}`), which an inventory cannot say: kubewright connects to {}:{} directly (with the openssh transport, a `Host {}` block in ~/.ssh/config can add it)",
            e.name,
            e.proxy_command.as_deref().unwrap_or_default(),
            e.host_name,
            e.port,
            e.host_name
        ));
    }
    let sha1: Vec<&str> = chosen().filter(|e| e.allows_ssh_rsa).map(|e| e.name.as_str()).collect();
    if !sha1.is_empty() {
        warnings.push(format!(
            "the ssh-config of {} allows `ssh-rsa` (RSA with SHA-1) signatures, which kubewright refuses, as OpenSSH does since 8.8: RSA keys still work, signed with rsa-sha2-256/512 (sshd 7.2 and later); a box whose sshd is older cannot be reached",
            sha1.join(", ")
        ));
    }

    // Without workers the control planes run the workloads too.
    let cp_role = if selection.workers.is_empty() { "control-plane, worker" } else { "control-plane" };
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut hosts = String::new();
    let mut names = Vec::new();
    // Inventory order is `vagrant ssh-config`'s (the Vagrantfile's): the first control plane
    // there is the one `kubeadm init` runs on.
    for e in entries {
        let cp_index = selection.control_planes.iter().position(|c| c.name == e.name);
        let worker_index = selection.workers.iter().position(|w| w.name == e.name);
        let (role, internal_address) = match (cp_index, worker_index) {
            (Some(i), _) => (cp_role, node_ip(&o.node_ips, o.interface, 11 + i, 9, &e.name)?),
            (None, Some(i)) => ("worker", node_ip(&o.node_ips, o.interface, 21 + i, 79, &e.name)?),
            (None, None) => continue,
        };
        names.push(e.name.clone());
        let _ = writeln!(hosts, "  - name: {}", quote(&e.name));
        let _ = writeln!(hosts, "    address: {}", quote(&e.host_name));
        let _ = writeln!(hosts, "    internalAddress: {internal_address}");
        let _ = writeln!(hosts, "    roles: [{role}]");
        let _ = writeln!(hosts, "    ssh:");
        let _ = writeln!(hosts, "      user: {}", quote(&e.user));
        let _ = writeln!(hosts, "      port: {}", e.port);
        match e.identity_files.as_slice() {
            [] => {}
            [one] => {
                let _ = writeln!(hosts, "      identityFile: {}", quote(one));
            }
            several => {
                let _ = writeln!(hosts, "      identityFile:");
                for key in several {
                    let _ = writeln!(hosts, "        - {}", quote(key));
                }
            }
        }
    }
    let load_balancer = if selection.control_planes.len() > 1 { "  loadBalancer:\n    type: local\n" } else { "" };
    let yaml = format!(
        "# Made by `kubewright inventory from-vagrant` from `vagrant ssh-config`.\n\
         cluster:\n  name: {name}\n  kubernetesVersion: {version}\n{load_balancer}  cni:\n    flannel:\n      interface: {iface}\n\
         ssh:\n  become: true\n  knownHosts: {known}\n\
         hosts:\n{hosts}",
        name = quote(o.cluster),
        version = quote(o.kubernetes_version),
        iface = quote(o.interface),
        known = quote(o.known_hosts),
    );
    Ok(Imported { yaml, hosts: names, warnings })
}

/// A machine's `internalAddress` value: `{interface: NAME}`, or the convention's address at
/// `index` (`<network>.<index>`), of which a role has `room`.
fn node_ip(node_ips: &NodeIps, interface: &str, index: usize, room: usize, name: &str) -> Result<String, String> {
    match node_ips {
        NodeIps::FromInterface => {
            Ok(format!("{{interface: {}}}", serde_json::to_string(interface).unwrap_or_default()))
        }
        NodeIps::Convention { network } => {
            let first = if room == 9 { 11 } else { 21 };
            if index >= first + room {
                return Err(format!(
                    "too many machines for the --network convention at `{name}` (it has room for {room}): leave --network out to read each node IP from --interface"
                ));
            }
            Ok(format!("{network}.{index}"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keywords_take_quotes_equals_and_case() {
        assert_eq!(keyword("  IdentityFile \"/a b/key\""), Some(("identityfile".into(), "/a b/key".into())));
        assert_eq!(keyword("Port=2200"), Some(("port".into(), "2200".into())));
        assert_eq!(keyword("# comment"), None);
    }

    #[test]
    fn lines_outside_a_host_block_and_stopped_machines_are_errors() {
        assert!(parse_ssh_config("  Port 22\n").unwrap_err().contains("before any `Host`"));
        assert!(parse_ssh_config("").unwrap_err().contains("vagrant up"));
        assert!(parse_ssh_config("Host cp1\n  User vagrant\n").unwrap_err().contains("no HostName"));
        assert!(parse_ssh_config("Host cp1\n  HostName 127.0.0.1\n  Port x\n").unwrap_err().starts_with("line 3:"));
    }

    /// What Vagrant's template (templates/commands/ssh_config/config.erb) prints: a blank line
    /// before each IdentityFile (its loop tag does not trim), a path with a space quoted.
    const TEMPLATE_OUTPUT: &str = "Host k8s-cp-1\n  HostName 127.0.0.1\n  User vagrant\n  Port 2222\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  PasswordAuthentication no\n\n  IdentityFile \"/home/a b/.vagrant.d/insecure_private_keys/vagrant.key.ed25519\"\n\n  IdentityFile \"/home/a b/.vagrant.d/insecure_private_keys/vagrant.key.rsa\"\n  IdentitiesOnly yes\n  PreferredAuthentications gssapi-keyex,gssapi-with-mic,publickey,keyboard-interactive\n  LogLevel FATAL\n  ProxyCommand ssh -W %h:%p jump\n\nHost k8s-worker-1\n  HostName 192.168.121.9\n  User ubuntu\n  Port 22\n  IdentityFile /k\n  HostKeyAlgorithms +ssh-rsa\n";

    #[test]
    fn every_identity_file_is_kept_in_order_with_the_quirks_around_it() {
        let entries = parse_ssh_config(TEMPLATE_OUTPUT).unwrap();
        assert_eq!(
            entries[0].identity_files,
            [
                "/home/a b/.vagrant.d/insecure_private_keys/vagrant.key.ed25519",
                "/home/a b/.vagrant.d/insecure_private_keys/vagrant.key.rsa"
            ]
        );
        assert_eq!((entries[0].port, entries[0].proxy_command.as_deref()), (2222, Some("ssh -W %h:%p jump")));
        assert_eq!((entries[1].user.as_str(), entries[1].port, entries[1].allows_ssh_rsa), ("ubuntu", 22, true));
        assert!(!entries[0].allows_ssh_rsa);
        assert!(parse_ssh_config("Host a\n  HostName h\n  IdentityFile \n").unwrap()[0].identity_files.is_empty());
    }

    #[test]
    fn globs_are_the_shells() {
        assert!(glob_match("k8s-cp-*", "k8s-cp-1"));
        assert!(!glob_match("k8s-cp-*", "k8s-worker-1"));
        assert!(glob_match("cp*", "cp1") && glob_match("cp*", "cp"));
        assert!(glob_match("node-?", "node-1") && !glob_match("node-?", "node-10"));
        assert!(glob_match("*master*", "k8s-master-a"));
        assert!(glob_match("cp[1-3]", "cp2") && !glob_match("cp[1-3]", "cp4"));
        assert!(glob_match("cp[!1]", "cp2") && !glob_match("cp[^1]", "cp1"));
        assert!(glob_match("a[]]b", "a]b"), "a `]` first is a member");
        assert!(glob_match("a[b", "a[b"), "an unclosed `[` is itself");
        assert!(!glob_match("cp*", "k8s-cp-1"), "anchored at both ends");
        assert!(glob_match("*", "") && !glob_match("?", ""));
        assert!(!glob_match(&"a*".repeat(30), &"a".repeat(29)), "no exponential backtracking");
    }

    fn machines(names: &[&str]) -> Vec<SshEntry> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| SshEntry {
                name: n.to_string(),
                host_name: "127.0.0.1".into(),
                port: 2222 + i as u16,
                user: "vagrant".into(),
                identity_files: Vec::new(),
                proxy_command: None,
                allows_ssh_rsa: false,
            })
            .collect()
    }

    fn names<'a>(entries: &[&'a SshEntry]) -> Vec<&'a str> {
        entries.iter().map(|e| e.name.as_str()).collect()
    }

    #[test]
    fn control_planes_by_glob_the_rest_workers_unless_narrowed() {
        let all = machines(&["master", "node-1", "node-2", "bastion"]);
        let globs = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let s = select(&all, &globs(&["master"]), &[]).unwrap();
        assert_eq!(
            (names(&s.control_planes), names(&s.workers)),
            (vec!["master"], vec!["node-1", "node-2", "bastion"])
        );
        let s = select(&all, &globs(&["master"]), &globs(&["node-*"])).unwrap();
        assert_eq!((names(&s.workers), s.left_out), (vec!["node-1", "node-2"], vec!["bastion"]));
        // Matching both: a control plane (--workers narrows the others).
        let s = select(&all, &globs(&["master"]), &globs(&["*"])).unwrap();
        assert_eq!((names(&s.control_planes), names(&s.workers).len()), (vec!["master"], 3));
        // Repeated globs add up.
        let s = select(&all, &globs(&["master", "node-1"]), &[]).unwrap();
        assert_eq!(names(&s.control_planes), ["master", "node-1"]);
        assert_eq!(
            select(&all, &globs(&["cp*"]), &[]).unwrap_err(),
            "no control plane: no machine matches --control-planes `cp*` (the machines are master, node-1, node-2, bastion)"
        );
    }

    fn options<'a>(control_planes: &'a [String], workers: &'a [String], node_ips: NodeIps) -> ImportOptions<'a> {
        ImportOptions {
            cluster: "c",
            kubernetes_version: "1.31.4",
            control_planes,
            workers,
            node_ips,
            interface: "eth1",
            known_hosts: "/kh",
        }
    }

    #[test]
    fn the_inventory_reads_node_ips_from_the_interface_unless_a_network_is_given() {
        let all = machines(&["cp1", "w1", "db"]);
        let cps = vec!["cp*".to_string()];
        let workers = vec!["w*".to_string(), "nope*".to_string()];
        let imported = inventory(&all, &options(&cps, &workers, NodeIps::FromInterface)).unwrap();
        let inv = crate::inventory::load("imported", &imported.yaml).unwrap().inventory;
        assert_eq!(inv.hosts.len(), 2);
        assert!(
            inv.hosts.iter().all(|h| h.internal_interface.as_deref() == Some("eth1") && h.internal_address.is_none())
        );
        assert_eq!(
            imported.warnings,
            [
                "left out, matching neither --control-planes `cp*` nor --workers `w*`, `nope*`: db",
                "`nope*` matches no machine"
            ]
        );
        let by_convention =
            inventory(&all, &options(&cps, &[], NodeIps::Convention { network: "10.1.2".into() })).unwrap();
        let inv = crate::inventory::load("imported", &by_convention.yaml).unwrap().inventory;
        let ips: Vec<String> = inv.hosts.iter().map(|h| h.internal_address.unwrap().to_string()).collect();
        assert_eq!(ips, ["10.1.2.11", "10.1.2.21", "10.1.2.22"]);
        assert!(by_convention.warnings.is_empty());
    }

    #[test]
    fn only_control_planes_run_the_workloads_too() {
        let all = machines(&["cp1", "cp2", "cp3"]);
        let imported = inventory(&all, &options(&["cp*".to_string()], &[], NodeIps::FromInterface)).unwrap();
        let inv = crate::inventory::load("imported", &imported.yaml).unwrap().inventory;
        assert!(inv.hosts.iter().all(|h| h.is_control_plane() && h.is_worker()));
        assert!(inv.cluster.load_balancer.is_local());
    }
}
