//! `kubewright inventory from-vagrant`: an inventory from what `vagrant ssh-config` prints,
//! for the test clusters `vagrant/Vagrantfile` brings up.
//!
//! `vagrant ssh-config` knows how to reach each machine (address, port, user, key) but not its
//! private-network address, which is what the kubelet and flannel must use (the first NIC is
//! the same NAT address on every VM): that comes from the Vagrantfile's convention, control
//! planes at `<network>.11`, `.12`, ..., workers at `<network>.21`, `.22`, ... Machines named
//! `cp<N>` are control planes, the others workers.

use std::fmt::Write as _;

/// One `Host` block of `vagrant ssh-config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshEntry {
    pub name: String,
    pub host_name: String,
    pub port: u16,
    pub user: String,
    /// The first `IdentityFile` (Vagrant lists the machine's own key first, then its insecure
    /// fallbacks).
    pub identity_file: Option<String>,
}

/// What the importer was told beyond `vagrant ssh-config`.
pub struct ImportOptions<'a> {
    pub cluster: &'a str,
    pub kubernetes_version: &'a str,
    /// The private network's first three octets (`192.168.56`).
    pub network: &'a str,
    /// flannel's interface on the private network (`eth1` on Debian and Ubuntu boxes).
    pub interface: &'a str,
    /// Where kubewright keeps the machines' host keys (Vagrant's own config disables checking).
    pub known_hosts: &'a str,
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
            entries.push(SshEntry {
                name: value,
                host_name: String::new(),
                port: 22,
                user: "vagrant".into(),
                identity_file: None,
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
            "identityfile" if entry.identity_file.is_none() => entry.identity_file = Some(value),
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

fn is_control_plane(name: &str) -> bool {
    name.strip_prefix("cp").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The inventory, as YAML (the loader then checks it like any other).
pub fn inventory(entries: &[SshEntry], o: &ImportOptions<'_>) -> Result<String, String> {
    let (mut cps, mut workers) = (0u32, 0u32);
    // Without workers the control planes run the workloads too.
    let all_control_planes = entries.iter().all(|e| is_control_plane(&e.name));
    let mut hosts = String::new();
    for e in entries {
        let (role, index) = if is_control_plane(&e.name) {
            cps += 1;
            (if all_control_planes { "control-plane, worker" } else { "control-plane" }, 10 + cps)
        } else {
            workers += 1;
            ("worker", 20 + workers)
        };
        if index > 254 || (role.starts_with("control-plane") && cps > 9) {
            return Err(format!("too many machines for the address convention at `{}`", e.name));
        }
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let _ = writeln!(hosts, "  - name: {}", quote(&e.name));
        let _ = writeln!(hosts, "    address: {}", quote(&e.host_name));
        let _ = writeln!(hosts, "    internalAddress: {}.{index}", o.network);
        let _ = writeln!(hosts, "    roles: [{role}]");
        let _ = writeln!(hosts, "    ssh:");
        let _ = writeln!(hosts, "      user: {}", quote(&e.user));
        let _ = writeln!(hosts, "      port: {}", e.port);
        if let Some(key) = &e.identity_file {
            let _ = writeln!(hosts, "      identityFile: {}", quote(key));
        }
    }
    if cps == 0 {
        return Err("no control plane: name at least one machine `cp1` (the Vagrantfile does)".into());
    }
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let load_balancer = if cps > 1 { "  loadBalancer:\n    type: local\n" } else { "" };
    Ok(format!(
        "# Made by `kubewright inventory from-vagrant` from `vagrant ssh-config`.\n\
         cluster:\n  name: {name}\n  kubernetesVersion: {version}\n{load_balancer}  cni:\n    flannel:\n      interface: {iface}\n\
         ssh:\n  become: true\n  knownHosts: {known}\n\
         hosts:\n{hosts}",
        name = quote(o.cluster),
        version = quote(o.kubernetes_version),
        iface = quote(o.interface),
        known = quote(o.known_hosts),
    ))
}

#[cfg(test)]
mod tests {
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
}
