//! `kubewright inventory from-kubespray`: an inventory from a kubespray one (Ansible INI or
//! YAML), with a warning for each thing that does not map.
//!
//! Groups: `kube_control_plane` (control planes), `kube_node` (workers; both groups: both roles),
//! `etcd` (kubewright runs etcd stacked on the control planes), `bastion`; the pre-2.16 names
//! `kube-master` and `kube-node` too. Host variables: `ansible_host` (where SSH connects),
//! `ip` (the node IP), `ansible_user`, `ansible_port`, `ansible_ssh_private_key_file`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One host as kubespray's inventory describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubesprayHost {
    pub name: String,
    pub vars: BTreeMap<String, String>,
    pub groups: Vec<String>,
}

/// What the importer read, and what it could not carry over.
#[derive(Debug, Default)]
pub struct Imported {
    pub yaml: String,
    pub warnings: Vec<String>,
}

const CONTROL_PLANE_GROUPS: &[&str] = &["kube_control_plane", "kube-master"];
const NODE_GROUPS: &[&str] = &["kube_node", "kube-node"];
/// Host variables kubewright takes over; any other is named in a warning.
const MAPPED_VARS: &[&str] =
    &["ansible_host", "ip", "ansible_user", "ansible_port", "ansible_ssh_private_key_file", "access_ip"];

/// Hosts of an Ansible INI inventory: `[group]` sections of `host key=value ...` lines;
/// `[group:children]` sections name groups whose hosts belong to `group` too.
pub fn parse_ini(text: &str) -> Result<Vec<KubesprayHost>, String> {
    let mut hosts: BTreeMap<String, KubesprayHost> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut group_vars: Vec<(String, String, String)> = Vec::new();
    let mut section: Option<(String, &str)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(['#', ';']).next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(match name.split_once(':') {
                Some((group, kind)) if kind == "children" || kind == "vars" => {
                    (group.to_string(), if kind == "children" { "children" } else { "vars" })
                }
                Some((_, kind)) => return Err(format!("line {}: unknown section kind `:{kind}`", n + 1)),
                None => (name.to_string(), "hosts"),
            });
            continue;
        }
        let Some((group, kind)) = &section else {
            return Err(format!("line {}: `{line}` is outside any [group] section", n + 1));
        };
        match *kind {
            "children" => children.entry(group.clone()).or_default().push(line.to_string()),
            "vars" => {
                let Some((k, v)) = line.split_once('=') else {
                    return Err(format!("line {}: `{line}` is not key=value", n + 1));
                };
                group_vars.push((group.clone(), k.trim().to_string(), v.trim().trim_matches(['"', '\'']).to_string()));
            }
            _ => {
                let mut words = shell_words(line).into_iter();
                let Some(name) = words.next() else { continue };
                let host = hosts.entry(name.clone()).or_insert_with(|| {
                    order.push(name.clone());
                    KubesprayHost { name: name.clone(), ..Default::default() }
                });
                for w in words {
                    let Some((k, v)) = w.split_once('=') else {
                        return Err(format!("line {}: `{w}` is not key=value", n + 1));
                    };
                    host.vars.insert(k.to_string(), v.to_string());
                }
                if !host.groups.contains(group) {
                    host.groups.push(group.clone());
                }
            }
        }
    }
    // `[k8s_cluster:children]`-style groups of groups: one level is what kubespray writes.
    for (parent, kids) in &children {
        for host in hosts.values_mut() {
            if kids.iter().any(|k| host.groups.contains(k)) && !host.groups.contains(parent) {
                host.groups.push(parent.clone());
            }
        }
    }
    // `[group:vars]`: the group's hosts get them unless they set their own.
    for (group, k, v) in group_vars {
        for host in hosts.values_mut().filter(|h| group == "all" || h.groups.contains(&group)) {
            host.vars.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Ok(order.into_iter().filter_map(|n| hosts.remove(&n)).collect())
}

/// `key=value` words, with `'...'` and `"..."` quoting as Ansible's INI parser takes it.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => quote = Some(c),
            (None, c) if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            (None, c) => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Hosts of a YAML inventory (`all: {hosts: {...}, children: {group: {hosts: {...}}}}`).
pub fn parse_yaml(text: &str) -> Result<Vec<KubesprayHost>, String> {
    let doc: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    let all = doc.get("all").ok_or("no `all` group at the top: is this a kubespray hosts.yaml?")?;
    let mut hosts: BTreeMap<String, KubesprayHost> = BTreeMap::new();
    let mut order = Vec::new();
    fn walk(
        group: &str,
        node: &serde_json::Value,
        hosts: &mut BTreeMap<String, KubesprayHost>,
        order: &mut Vec<String>,
        parents: &[String],
    ) {
        let mut lineage = parents.to_vec();
        lineage.push(group.to_string());
        if let Some(map) = node.get("hosts").and_then(|h| h.as_object()) {
            for (name, vars) in map {
                let host = hosts.entry(name.clone()).or_insert_with(|| {
                    order.push(name.clone());
                    KubesprayHost { name: name.clone(), ..Default::default() }
                });
                for (k, v) in vars.as_object().into_iter().flatten() {
                    let text = match v {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    host.vars.insert(k.clone(), text);
                }
                for g in &lineage {
                    if !host.groups.contains(g) {
                        host.groups.push(g.clone());
                    }
                }
            }
        }
        if let Some(kids) = node.get("children").and_then(|c| c.as_object()) {
            for (name, child) in kids {
                walk(name, child, hosts, order, &lineage);
            }
        }
    }
    walk("all", all, &mut hosts, &mut order, &[]);
    // A group listed under k8s_cluster's children with no hosts of its own names the hosts of
    // the group of that name elsewhere: the walk above already put them in it.
    Ok(order.into_iter().filter_map(|n| hosts.remove(&n)).collect())
}

/// The kubewright inventory for `hosts`, as YAML, and the warnings.
pub fn inventory(hosts: &[KubesprayHost], cluster: &str, kubernetes_version: &str) -> Result<Imported, String> {
    let mut warnings = Vec::new();
    let in_any = |h: &KubesprayHost, groups: &[&str]| h.groups.iter().any(|g| groups.contains(&g.as_str()));
    let legacy: std::collections::BTreeSet<&str> = hosts
        .iter()
        .flat_map(|h| &h.groups)
        .map(String::as_str)
        .filter(|g| matches!(*g, "kube-master" | "kube-node"))
        .collect();
    for g in legacy {
        warnings.push(format!("the group `{g}` is kubespray's name before 2.16: read as its new name"));
    }
    let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
    let mut out = String::new();
    let mut control_planes = 0;
    let bastion = hosts.iter().find(|h| h.groups.iter().any(|g| g == "bastion"));
    for h in hosts.iter().filter(|h| !h.groups.iter().any(|g| g == "bastion")) {
        let cp = in_any(h, CONTROL_PLANE_GROUPS);
        let worker = in_any(h, NODE_GROUPS);
        if !cp && !worker {
            if h.groups.iter().any(|g| g == "etcd") {
                warnings.push(format!(
                    "{}: an etcd-only host: kubewright runs etcd on the control planes (stacked); left out",
                    h.name
                ));
            } else {
                warnings.push(format!("{}: in neither kube_control_plane nor kube_node; left out", h.name));
            }
            continue;
        }
        if cp && !h.groups.iter().any(|g| g == "etcd") {
            warnings.push(format!(
                "{}: a control plane not in the etcd group: kubewright runs an etcd member on every control plane",
                h.name
            ));
        }
        control_planes += usize::from(cp);
        let roles = match (cp, worker) {
            (true, true) => "[control-plane, worker]",
            (true, false) => "[control-plane]",
            _ => "[worker]",
        };
        let v = |k: &str| h.vars.get(k).map(String::as_str);
        let address = v("ansible_host").unwrap_or(&h.name);
        let _ = writeln!(out, "  - name: {}", quote(&h.name));
        let _ = writeln!(out, "    address: {}", quote(address));
        if let Some(ip) = v("ip").filter(|ip| *ip != address) {
            let _ = writeln!(out, "    internalAddress: {}", quote(ip));
        }
        if let (Some(access), Some(ip)) = (v("access_ip"), v("ip"))
            && access != ip
        {
            warnings.push(format!(
                "{}: access_ip {access} differs from ip {ip}: kubewright uses ip as the node IP",
                h.name
            ));
        }
        let _ = writeln!(out, "    roles: {roles}");
        let ssh: Vec<String> = [
            v("ansible_user").map(|u| format!("user: {}", quote(u))),
            v("ansible_port").map(|p| format!("port: {}", quote(p))),
            v("ansible_ssh_private_key_file").map(|k| format!("identityFile: {}", quote(k))),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !ssh.is_empty() {
            let _ = writeln!(out, "    ssh:");
            for line in ssh {
                let _ = writeln!(out, "      {line}");
            }
        }
        let unmapped: Vec<&str> = h.vars.keys().map(String::as_str).filter(|k| !MAPPED_VARS.contains(k)).collect();
        if !unmapped.is_empty() {
            warnings.push(format!("{}: not carried over: {}", h.name, unmapped.join(", ")));
        }
    }
    if control_planes == 0 {
        return Err("no host is in kube_control_plane: kubewright needs at least one control plane".into());
    }
    let mut ssh = String::new();
    if let Some(b) = bastion {
        let v = |k: &str| b.vars.get(k).map(String::as_str);
        let _ = write!(ssh, "ssh:\n  bastion:\n    host: {}\n", quote(v("ansible_host").unwrap_or(&b.name)));
        if let Some(u) = v("ansible_user") {
            let _ = writeln!(ssh, "    user: {}", quote(u));
        }
        if let Some(p) = v("ansible_port") {
            let _ = writeln!(ssh, "    port: {}", quote(p));
        }
    }
    if control_planes > 1 {
        warnings.push("several control planes: set `controlPlaneEndpoint` to your load balancer, or keep `loadBalancer: {type: local}` (written here, as kubespray's default localhost proxy)".into());
    }
    let load_balancer = if control_planes > 1 { "  loadBalancer:\n    type: local\n" } else { "" };
    let yaml = format!(
        "# Made by `kubewright inventory from-kubespray`; review the warnings it printed.\ncluster:\n  name: {}\n  kubernetesVersion: {}\n{load_balancer}{ssh}hosts:\n{out}",
        quote(cluster),
        quote(kubernetes_version),
    );
    Ok(Imported { yaml, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_words_keep_quoted_values_and_children_groups_apply() {
        assert_eq!(
            shell_words("n1 ansible_host=1.2.3.4 x='a b' y=\"c d\""),
            ["n1", "ansible_host=1.2.3.4", "x=a b", "y=c d"]
        );
        let hosts =
            parse_ini("[kube_node]\nw1\n[k8s_cluster:children]\nkube_node\n[k8s_cluster:vars]\nansible_user=ops\n")
                .unwrap();
        assert_eq!(hosts[0].groups, ["kube_node", "k8s_cluster"]);
        assert_eq!(hosts[0].vars["ansible_user"], "ops", "group vars apply to the group's hosts");
        assert!(parse_ini("w1\n").unwrap_err().contains("outside any [group]"));
        assert!(parse_ini("[all]\nw1 nonsense\n").unwrap_err().contains("not key=value"));
    }
}
