//! `kubewright inventory from-kubespray`: an inventory from a kubespray one, with a warning for
//! each thing that does not map.
//!
//! Two readers end in the same [`AnsibleView`] (groups, and each host's variables after
//! Ansible's precedence): `ansible-inventory --list`'s JSON ([`ansible::parse_list`]), the
//! authority on any format Ansible reads, and the built-in reader ([`read_builtin`]: INI as
//! Ansible's `ini` plugin reads it, YAML as its `yaml` plugin does, with the `group_vars/` and
//! `host_vars/` files beside the inventory) for machines without Ansible. Both declare
//! `k8s_cluster` as kubespray's playbooks do at run time ([`source::KUBESPRAY_GROUPS_INI`]).
//!
//! [`inventory`] maps the view. Groups: `kube_control_plane` (control planes; the first is the
//! one `kubeadm init` runs on, as in kubespray), `kube_node` (workers; both groups: both
//! roles), `etcd` (kubewright runs etcd stacked on the control planes), `bastion`; the
//! pre-2.16 names `kube-master` and `kube-node` too (their hosts in the new groups, as
//! kubespray's legacy_groups playbook put them, so the new names' group_vars apply). Host
//! variables: `ansible_host` (where SSH connects), `ip` (the node IP), `ansible_user`,
//! `ansible_port`,
//! `ansible_ssh_private_key_file` (and Ansible's older spellings), `ansible_become`,
//! `flannel_interface`. Cluster variables: `kube_version`, `kube_pods_subnet`,
//! `kube_service_addresses`, `kube_network_node_prefix`, `cluster_name` / `dns_domain` (the DNS
//! domain: kubespray's `dns_domain` defaults to `cluster_name`), `flannel_backend_type`,
//! `loadbalancer_apiserver`, `loadbalancer_apiserver_localhost`, `kube_network_plugin` (a
//! warning unless flannel). A value that is a Jinja template (`{{ ... }}`) is not resolved: it
//! counts as not set, and says so. Pure: reading files and running `ansible-inventory` is the
//! caller's.

pub mod ansible;
pub mod ini;
pub mod source;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};

use serde_json::Value;

pub use source::{AnsibleView, Source, VarFiles, Vars};

/// A problem with a kubespray inventory: where (file, and line when known), what, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubesprayError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
    pub help: String,
}

impl KubesprayError {
    pub fn new(file: &str, line: Option<usize>, message: impl Into<String>, help: impl Into<String>) -> Self {
        KubesprayError { file: file.to_string(), line, message: message.into(), help: help.into() }
    }
}

impl fmt::Display for KubesprayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for KubesprayError {}

/// One inventory file for the built-in reader: its name in messages and its text.
#[derive(Debug, Clone)]
pub struct InventoryFile {
    pub path: String,
    pub text: String,
}

/// The built-in reader: `files` (one inventory file, or several merged in order; INI or YAML,
/// told by the content) with the `group_vars/`/`host_vars/` files beside them, to what Ansible
/// would make of them. Every file must read.
pub fn read_builtin(files: &[InventoryFile], vars: &VarFiles) -> Result<AnsibleView, KubesprayError> {
    let mut source = Source::default();
    for f in files {
        source.merge(parse_file(f)?);
    }
    finish(source, files, vars)
}

/// The built-in reader on the files of an inventory directory: as Ansible does with a
/// directory, a file that is no inventory (kubespray's `artifacts/admin.conf` beside it, say)
/// is skipped with a message (returned), as long as one file reads.
pub fn read_builtin_dir(
    files: &[InventoryFile],
    vars: &VarFiles,
) -> Result<(AnsibleView, Vec<String>), KubesprayError> {
    let mut source = Source::default();
    let mut skipped = Vec::new();
    let mut first_error = None;
    let mut read = 0;
    for f in files {
        match parse_file(f) {
            Ok(parsed) => {
                source.merge(parsed);
                read += 1;
            }
            Err(e) => {
                skipped.push(format!("{e}: not read as an inventory, skipped (as Ansible skips it in a directory)"));
                first_error.get_or_insert(e);
            }
        }
    }
    if read == 0
        && let Some(e) = first_error
    {
        return Err(e);
    }
    Ok((finish(source, files, vars)?, skipped))
}

fn parse_file(f: &InventoryFile) -> Result<Source, KubesprayError> {
    if looks_like_yaml(&f.text) { source::parse_yaml(&f.path, &f.text) } else { ini::parse(&f.path, &f.text) }
}

fn finish(mut source: Source, files: &[InventoryFile], vars: &VarFiles) -> Result<AnsibleView, KubesprayError> {
    source::add_kubespray_groups(&mut source);
    let name = files.first().map_or("inventory", |f| f.path.as_str());
    source::resolve(source, vars, name)
}

/// A YAML inventory's first meaningful line is a top-level `group:` key (usually `all:`) or a
/// document start; an INI file's is a host or a `[section]`.
fn looks_like_yaml(text: &str) -> bool {
    text.lines()
        .map(str::trim_end)
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#') && !l.trim_start().starts_with(';'))
        .is_some_and(|l| {
            l == "---" || (l.ends_with(':') && !l.starts_with('[') && !l.contains(' ')) || l.starts_with("all:")
        })
}

/// What the importer made: the inventory's YAML, warnings (what does not map), notes (where a
/// value came from), and the full list of unmapped cluster-wide variables (for `-v`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Imported {
    pub yaml: String,
    pub warnings: Vec<String>,
    pub notes: Vec<String>,
    pub unmapped: Vec<String>,
}

/// What [`inventory`] needs besides the view.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions<'a> {
    /// The inventory's name in messages.
    pub source: &'a str,
    /// The cluster's name (kubewright's; kubespray's `cluster_name` is its DNS domain).
    pub cluster: &'a str,
    /// `--kubernetes-version`: required when the inventory does not set `kube_version`.
    pub kubernetes_version: Option<&'a str>,
    /// Which reader made the view, for the inventory's header comment.
    pub reader: &'a str,
}

const CONTROL_PLANE_GROUPS: &[&str] = &["kube_control_plane", "kube-master"];
const NODE_GROUPS: &[&str] = &["kube_node", "kube-node"];
/// Host variables kubewright takes over (Ansible's older `ansible_ssh_*` spellings included).
const HOST_VARS: &[&str] = &[
    "ansible_host",
    "ansible_ssh_host",
    "ip",
    "access_ip",
    "ansible_user",
    "ansible_ssh_user",
    "ansible_port",
    "ansible_ssh_port",
    "ansible_ssh_private_key_file",
    "ansible_private_key_file",
    "ansible_become",
    "flannel_interface",
];
/// Cluster-wide variables kubewright reads (from the first control plane that has them).
const CLUSTER_VARS: &[&str] = &[
    "kube_version",
    "kube_pods_subnet",
    "kube_service_addresses",
    "kube_network_node_prefix",
    "cluster_name",
    "dns_domain",
    "flannel_backend_type",
    "kube_network_plugin",
    "loadbalancer_apiserver",
    "loadbalancer_apiserver_localhost",
    "apiserver_loadbalancer_domain_name",
    "kube_apiserver_port",
];

/// A variable as kubewright can use it.
#[derive(Debug, Clone, PartialEq)]
enum Lookup {
    Missing,
    /// A Jinja template (`{{ ... }}` or `{% ... %}`): only Ansible can tell its value.
    Template(String),
    Text(String),
    /// A list or mapping where one value is expected.
    Structured(Value),
}

fn lookup(vars: &Vars, key: &str) -> Lookup {
    lookup_within(vars, key, 0)
}

/// A template that only names another variable (`"{{ cluster_name }}"`, kubespray's
/// `dns_domain`) is that variable's value; anything more (filters, expressions) is left to
/// Ansible.
fn lookup_within(vars: &Vars, key: &str, depth: usize) -> Lookup {
    match vars.get(key) {
        None | Some(Value::Null) => Lookup::Missing,
        Some(Value::String(s)) if s.contains("{{") || s.contains("{%") => {
            let inner = s.trim().strip_prefix("{{").and_then(|r| r.strip_suffix("}}")).map(str::trim);
            match inner {
                Some(name)
                    if depth < 8
                        && !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && vars.contains_key(name) =>
                {
                    match lookup_within(vars, name, depth + 1) {
                        Lookup::Missing => Lookup::Template(s.clone()),
                        found => found,
                    }
                }
                _ => Lookup::Template(s.clone()),
            }
        }
        Some(Value::String(s)) => Lookup::Text(s.clone()),
        Some(Value::Number(n)) => Lookup::Text(n.to_string()),
        Some(Value::Bool(b)) => Lookup::Text(b.to_string()),
        Some(other) => Lookup::Structured(other.clone()),
    }
}

/// Ansible's `boolean()`: yes/no, on/off, true/false, 1/0, y/n, t/f, any case.
fn ansible_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => Some(true),
        "n" | "no" | "off" | "0" | "false" | "f" | "0.0" => Some(false),
        _ => None,
    }
}

/// A value for the YAML written (JSON strings are YAML strings).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// Collects warnings and notes while the inventory is mapped.
#[derive(Default)]
struct Report {
    warnings: Vec<String>,
    notes: Vec<String>,
}

impl Report {
    /// The text of `key` on `host`: a template or a structure is warned about and counts as not set.
    fn text(&mut self, host: &str, vars: &Vars, key: &str) -> Option<String> {
        match lookup(vars, key) {
            Lookup::Text(t) => Some(t),
            Lookup::Missing => None,
            Lookup::Template(t) => {
                self.warnings
                    .push(format!("{host}: {key} is a template, `{t}`, which kubewright does not resolve: left out"));
                None
            }
            Lookup::Structured(v) => {
                self.warnings.push(format!("{host}: {key} is `{v}`, not a single value: left out"));
                None
            }
        }
    }
}

/// The kubewright inventory for `view`, as YAML, with what did not map.
pub fn inventory(view: &AnsibleView, options: &ImportOptions<'_>) -> Result<Imported, KubesprayError> {
    let fail = |message: String, help: &str| KubesprayError::new(options.source, None, message, help);
    let mut report = Report::default();
    let members = |groups: &[&str]| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for g in groups {
            for h in view.members(g) {
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
        out
    };
    for g in ["kube-master", "kube-node"] {
        if !view.members(g).is_empty() {
            report.warnings.push(format!("the group `{g}` is kubespray's name before 2.16: read as its new name"));
        }
    }
    let control_plane_list = members(CONTROL_PLANE_GROUPS);
    let control_planes: BTreeSet<&String> = control_plane_list.iter().collect();
    let worker_list = members(NODE_GROUPS);
    let workers: BTreeSet<&String> = worker_list.iter().collect();
    let etcd_list = view.members("etcd");
    let etcd: BTreeSet<&String> = etcd_list.iter().collect();
    let bastions = view.members("bastion");
    let bastion_set: BTreeSet<&String> = bastions.iter().collect();
    let mut nodes: Vec<String> = control_plane_list.clone();
    nodes.extend(worker_list.iter().filter(|w| !control_planes.contains(w)).cloned());
    nodes.retain(|n| !bastion_set.contains(n));
    let node_set: BTreeSet<&String> = nodes.iter().collect();
    for host in view.hosts.keys().filter(|h| !node_set.contains(h) && !bastion_set.contains(h)) {
        if etcd.contains(host) {
            report.warnings.push(format!(
                "{host}: an etcd-only host: kubewright runs etcd on the control planes (stacked); left out"
            ));
        } else {
            report.warnings.push(format!("{host}: in neither kube_control_plane nor kube_node; left out"));
        }
    }
    let Some(first) = nodes.iter().find(|n| control_planes.contains(n)).cloned() else {
        return Err(fail(
            "no host is in kube_control_plane: kubewright needs at least one control plane".into(),
            "put the control planes in kube_control_plane and the workers in kube_node",
        ));
    };
    let empty = Vars::new();
    let vars_of = |h: &str| view.hosts.get(h).unwrap_or(&empty);

    // Cluster-wide variables: the first control plane's, with a warning where hosts disagree.
    let mut cluster: BTreeMap<&str, Value> = BTreeMap::new();
    for key in CLUSTER_VARS {
        let values: Vec<(&String, &Value)> =
            nodes.iter().filter_map(|n| vars_of(n).get(*key).filter(|v| !v.is_null()).map(|v| (n, v))).collect();
        let Some(chosen) = vars_of(&first).get(*key).filter(|v| !v.is_null()).or(values.first().map(|(_, v)| *v))
        else {
            continue;
        };
        let differing: Vec<String> =
            values.iter().filter(|(_, v)| *v != chosen).map(|(n, v)| format!("{v} on {n}")).collect();
        if !differing.is_empty() {
            report.warnings.push(format!(
                "the hosts disagree on {key} ({}): kubewright uses {chosen}, the first control plane's",
                differing.join(", ")
            ));
        }
        cluster.insert(key, chosen.clone());
    }
    // The first control plane's variables, with the chosen cluster-wide values (a template
    // naming another variable is looked up here).
    let mut cluster_vars: Vars = vars_of(&first).clone();
    cluster_vars.extend(cluster.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let mut text = |key: &str| report.text("cluster", &cluster_vars, key);

    let kube_version = text("kube_version").map(|v| v.trim_start_matches('v').to_string());
    let kubernetes_version = match (options.kubernetes_version, kube_version) {
        (Some(flag), Some(found)) if flag.trim_start_matches('v') != found => {
            report.notes.push(format!("--kubernetes-version {flag} is used; the inventory's kube_version is {found}"));
            flag.to_string()
        }
        (Some(flag), _) => flag.to_string(),
        (None, Some(found)) => {
            report.notes.push(format!("Kubernetes {found}: the inventory's kube_version"));
            found
        }
        (None, None) => {
            let why = match lookup(&cluster_vars, "kube_version") {
                Lookup::Template(t) => format!("kube_version is a template, `{t}`, which kubewright does not resolve"),
                _ => "kube_version is not set in the inventory or its group_vars (kubespray then takes its role default: the newest version that kubespray release knows)".into(),
            };
            return Err(fail(
                why,
                "pass --kubernetes-version VERSION, the version the cluster runs (`kubectl version`)",
            ));
        }
    };
    let mut text = |key: &str| report.text("cluster", &cluster_vars, key);
    let pod_subnet = text("kube_pods_subnet");
    let service_subnet = text("kube_service_addresses");
    let node_prefix = text("kube_network_node_prefix");
    let dns_domain = text("dns_domain").or_else(|| text("cluster_name"));
    let backend = text("flannel_backend_type");
    let plugin = text("kube_network_plugin");
    let lb_localhost = text("loadbalancer_apiserver_localhost");
    let lb_domain = text("apiserver_loadbalancer_domain_name");
    let apiserver_port = text("kube_apiserver_port");
    let backend = backend.and_then(|b| match b.as_str() {
        "vxlan" | "host-gw" => Some(b),
        other => {
            report.warnings.push(format!(
                "flannel_backend_type is `{other}`: kubewright's flannel runs vxlan or host-gw; left at vxlan"
            ));
            None
        }
    });
    match plugin.as_deref() {
        Some("flannel") => {}
        Some(other) => report.warnings.push(format!(
            "kube_network_plugin is `{other}`: kubewright installs flannel; a cluster running {other} keeps it only if you do not let kubewright install the CNI on it"
        )),
        None => report.warnings.push(
            "kube_network_plugin is not set: kubespray's default is calico (roles/kubespray_defaults/defaults/main/main.yml); kubewright installs flannel".into(),
        ),
    }

    // The API endpoint: kubespray's kube_apiserver_endpoint takes an external
    // loadbalancer_apiserver first, else the localhost proxy on every non-control-plane node
    // (loadbalancer_apiserver_localhost, which defaults to true when there is no external one).
    let mut endpoint: Option<String> = None;
    let mut local = false;
    match cluster.get("loadbalancer_apiserver") {
        Some(Value::Object(lb)) => {
            let address = lb.get("address").and_then(|a| match a {
                Value::String(s) if !s.contains("{{") => Some(s.clone()),
                _ => None,
            });
            let port = match lb.get("port") {
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::String(s)) if !s.contains("{{") => Some(s.clone()),
                _ => None,
            }
            .or(apiserver_port.clone())
            .unwrap_or_else(|| "6443".into());
            match address {
                Some(a) => {
                    let host = if a.contains(':') { format!("[{a}]") } else { a.clone() };
                    endpoint = Some(format!("{host}:{port}"));
                    if let Some(name) = &lb_domain {
                        report.warnings.push(format!(
                            "apiserver_loadbalancer_domain_name is {name}: kubespray writes `{a} {name}` into every node's /etc/hosts and uses the name; kubewright uses {host}:{port} (set controlPlaneEndpoint to {name}:{port} if that name resolves on every node)"
                        ));
                    }
                    if lb_localhost.as_deref().and_then(ansible_bool) == Some(true) {
                        report.notes.push(
                            "loadbalancer_apiserver and loadbalancer_apiserver_localhost are both set: the external load balancer is the endpoint, as in kubespray".into(),
                        );
                    }
                }
                None => report.warnings.push(
                    "loadbalancer_apiserver has no literal `address`: left out; set controlPlaneEndpoint yourself".into(),
                ),
            }
        }
        Some(other) => report.warnings.push(format!(
            "loadbalancer_apiserver is `{other}`, not a mapping with `address` and `port`: left out"
        )),
        None => match lb_localhost.as_deref().map(|v| (v, ansible_bool(v))) {
            Some((_, Some(true))) => local = true,
            Some((_, Some(false))) => report.notes.push(
                "loadbalancer_apiserver_localhost is false and there is no loadbalancer_apiserver: the API endpoint is the first control plane, as in kubespray".into(),
            ),
            Some((v, None)) => {
                report.warnings.push(format!("loadbalancer_apiserver_localhost is `{v}`, not a boolean: left out"))
            }
            None => {
                if control_planes.len() > 1 {
                    local = true;
                    report.warnings.push("several control planes: set `controlPlaneEndpoint` to your load balancer, or keep `loadBalancer: {type: local}` (written here, as kubespray's default localhost proxy)".into());
                }
            }
        },
    }

    // Hosts.
    let interfaces: BTreeSet<Option<String>> = nodes
        .iter()
        .map(|n| lookup(vars_of(n), "flannel_interface"))
        .map(|l| match l {
            Lookup::Text(t) => Some(t),
            _ => None,
        })
        .collect();
    let shared_interface = match interfaces.iter().collect::<Vec<_>>().as_slice() {
        [Some(one)] => Some(one.clone()),
        _ => None,
    };
    let mut hosts_yaml = String::new();
    for name in &nodes {
        let vars = vars_of(name);
        let cp = control_planes.contains(name);
        let worker = workers.contains(name);
        if cp && !etcd.contains(name) {
            report.warnings.push(format!(
                "{name}: a control plane not in the etcd group: kubewright runs an etcd member on every control plane"
            ));
        }
        let roles = match (cp, worker) {
            (true, true) => "[control-plane, worker]",
            (true, false) => "[control-plane]",
            _ => "[worker]",
        };
        let mut either = |a: &str, b: &str| -> Option<String> {
            let first = report.text(name, vars, a);
            let second = report.text(name, vars, b);
            if let (Some(x), Some(y)) = (&first, &second)
                && x != y
            {
                report.warnings.push(format!("{name}: {a} is {x} and {b} is {y}: kubewright uses {a}"));
            }
            first.or(second)
        };
        let address = either("ansible_host", "ansible_ssh_host").unwrap_or_else(|| name.clone());
        let user = either("ansible_user", "ansible_ssh_user");
        let port = either("ansible_port", "ansible_ssh_port");
        let key = either("ansible_ssh_private_key_file", "ansible_private_key_file");
        let ip = report.text(name, vars, "ip");
        let access_ip = report.text(name, vars, "access_ip");
        let sudo = report.text(name, vars, "ansible_become").and_then(|b| match ansible_bool(&b) {
            Some(v) => Some(v),
            None => {
                report.warnings.push(format!("{name}: ansible_become is `{b}`, not a boolean: left out"));
                None
            }
        });
        let interface = report.text(name, vars, "flannel_interface");
        let _ = writeln!(hosts_yaml, "  - name: {}", quote(name));
        let _ = writeln!(hosts_yaml, "    address: {}", quote(&address));
        if let Some(ip) = ip.as_deref().filter(|ip| *ip != address) {
            let _ = writeln!(hosts_yaml, "    internalAddress: {}", quote(ip));
        }
        if let (Some(access), Some(ip)) = (&access_ip, &ip)
            && access != ip
        {
            report
                .warnings
                .push(format!("{name}: access_ip {access} differs from ip {ip}: kubewright uses ip as the node IP"));
        }
        let _ = writeln!(hosts_yaml, "    roles: {roles}");
        if shared_interface.is_none()
            && let Some(i) = &interface
        {
            let _ = writeln!(hosts_yaml, "    flannelInterface: {}", quote(i));
        }
        let ssh: Vec<String> = [
            user.map(|u| format!("user: {}", quote(&u))),
            port.map(|p| format!("port: {}", quote(&p))),
            key.map(|k| format!("identityFile: {}", quote(&k))),
            sudo.map(|b| format!("become: {b}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !ssh.is_empty() {
            let _ = writeln!(hosts_yaml, "    ssh:");
            for line in ssh {
                let _ = writeln!(hosts_yaml, "      {line}");
            }
        }
    }

    // Variables kubewright does not read: one line for those every node shares (group_vars, in
    // practice), one per host for the rest.
    let unmapped = |vars: &Vars| -> Vec<String> {
        vars.keys()
            .filter(|k| !HOST_VARS.contains(&k.as_str()) && !CLUSTER_VARS.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    let shared: Vec<String> = unmapped(vars_of(&first))
        .into_iter()
        .filter(|k| nodes.iter().all(|n| vars_of(n).get(k) == vars_of(&first).get(k)))
        .collect();
    for name in &nodes {
        let own: Vec<String> = unmapped(vars_of(name)).into_iter().filter(|k| !shared.contains(k)).collect();
        if !own.is_empty() {
            report.warnings.push(format!("{name}: not carried over: {}", own.join(", ")));
        }
    }
    if !shared.is_empty() {
        const SHOWN: usize = 8;
        let more = shared.len().saturating_sub(SHOWN);
        report.warnings.push(format!(
            "{} variable{} the same on every host not carried over (kubewright has no equivalent): {}{}",
            shared.len(),
            if shared.len() == 1 { "" } else { "s" },
            shared.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", "),
            if more > 0 { format!(", and {more} more (-v lists them)") } else { String::new() }
        ));
    }

    let mut ssh = String::new();
    if let Some(b) = bastions.first() {
        let vars = vars_of(b);
        let host = report.text(b, vars, "ansible_host").unwrap_or_else(|| b.clone());
        let _ = write!(ssh, "ssh:\n  bastion:\n    host: {}\n", quote(&host));
        if let Some(u) = report.text(b, vars, "ansible_user").or_else(|| report.text(b, vars, "ansible_ssh_user")) {
            let _ = writeln!(ssh, "    user: {}", quote(&u));
        }
        if let Some(p) = report.text(b, vars, "ansible_port").or_else(|| report.text(b, vars, "ansible_ssh_port")) {
            let _ = writeln!(ssh, "    port: {}", quote(&p));
        }
    }

    let mut cluster_yaml =
        format!("cluster:\n  name: {}\n  kubernetesVersion: {}\n", quote(options.cluster), quote(&kubernetes_version));
    if let Some(e) = &endpoint {
        let _ = writeln!(cluster_yaml, "  controlPlaneEndpoint: {}", quote(e));
    }
    if local {
        cluster_yaml.push_str("  loadBalancer:\n    type: local\n");
    }
    let network: Vec<String> = [
        pod_subnet.map(|v| format!("podSubnet: {}", quote(&v))),
        service_subnet.map(|v| format!("serviceSubnet: {}", quote(&v))),
        node_prefix.map(|v| format!("nodeCidrMaskSize: {}", quote(&v))),
        dns_domain.map(|v| format!("dnsDomain: {}", quote(&v))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !network.is_empty() {
        cluster_yaml.push_str("  network:\n");
        for line in network {
            let _ = writeln!(cluster_yaml, "    {line}");
        }
    }
    let flannel: Vec<String> = [
        backend.map(|v| format!("backend: {}", quote(&v))),
        shared_interface.map(|v| format!("interface: {}", quote(&v))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !flannel.is_empty() {
        cluster_yaml.push_str("  cni:\n    flannel:\n");
        for line in flannel {
            let _ = writeln!(cluster_yaml, "      {line}");
        }
    }
    let yaml = format!(
        "# Made by `kubewright inventory from-kubespray` from {} (read by {}); review the warnings it printed.\n{cluster_yaml}{ssh}hosts:\n{hosts_yaml}",
        options.source, options.reader
    );
    Ok(Imported { yaml, warnings: report.warnings, notes: report.notes, unmapped: shared })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn import(ini: &str, version: Option<&str>) -> Result<Imported, KubesprayError> {
        let view = read_builtin(&[InventoryFile { path: "inv.ini".into(), text: ini.into() }], &VarFiles::default())?;
        inventory(
            &view,
            &ImportOptions { source: "inv.ini", cluster: "c", kubernetes_version: version, reader: "test" },
        )
    }

    #[test]
    fn kube_version_is_read_and_a_template_or_nothing_needs_the_flag() {
        let base = "[kube_control_plane]\ncp1\n[etcd:children]\nkube_control_plane\n";
        let got = import(&format!("{base}[all:vars]\nkube_version=v1.31.4\n"), None).unwrap();
        assert!(got.yaml.contains("kubernetesVersion: \"1.31.4\""), "{}", got.yaml);
        let e = import(base, None).unwrap_err();
        assert!(e.message.contains("kube_version is not set"), "{e}");
        assert!(e.help.contains("--kubernetes-version"));
        let e = import(&format!("{base}[all:vars]\nkube_version={{{{ x }}}}\n"), None).unwrap_err();
        assert!(e.message.contains("a template"), "{e}");
        let got = import(&format!("{base}[all:vars]\nkube_version=1.30.1\n"), Some("1.31.4")).unwrap();
        assert!(got.yaml.contains("\"1.31.4\"") && got.notes[0].contains("kube_version is 1.30.1"), "{got:?}");
    }

    #[test]
    fn cluster_variables_map_and_the_first_control_plane_wins_a_disagreement() {
        let got = import(
            "[kube_control_plane]\ncp1 kube_pods_subnet=10.1.0.0/16\n[kube_node]\nw1 kube_pods_subnet=10.2.0.0/16\n\
             [etcd:children]\nkube_control_plane\n[all:vars]\nkube_service_addresses=10.96.0.0/12\nkube_network_node_prefix=25\n\
             cluster_name=k8s.example\nflannel_backend_type=host-gw\nkube_network_plugin=flannel\nansible_become=yes\n\
             loadbalancer_apiserver={'address': '10.0.0.5', 'port': 8443}\nflannel_interface=eth1\n",
            Some("1.31.4"),
        )
        .unwrap();
        for want in [
            "podSubnet: \"10.1.0.0/16\"",
            "serviceSubnet: \"10.96.0.0/12\"",
            "nodeCidrMaskSize: \"25\"",
            "dnsDomain: \"k8s.example\"",
            "backend: \"host-gw\"",
            "interface: \"eth1\"",
            "controlPlaneEndpoint: \"10.0.0.5:8443\"",
            "become: true",
        ] {
            assert!(got.yaml.contains(want), "{want}:\n{}", got.yaml);
        }
        assert!(!got.yaml.contains("loadBalancer"), "an external load balancer");
        assert!(got.warnings.iter().any(|w| w.contains("disagree on kube_pods_subnet")), "{:?}", got.warnings);
        assert!(!got.warnings.iter().any(|w| w.contains("kube_network_plugin")), "{:?}", got.warnings);
    }

    #[test]
    fn the_load_balancer_follows_kubespray() {
        let base = "[kube_control_plane]\ncp1\ncp2\n[etcd:children]\nkube_control_plane\n[all:vars]\nkube_network_plugin=calico\n";
        let got = import(base, Some("1.31.4")).unwrap();
        assert!(got.yaml.contains("type: local"), "the default localhost proxy with two control planes");
        assert!(got.warnings.iter().any(|w| w.contains("kube_network_plugin is `calico`")), "{:?}", got.warnings);
        let got = import(&format!("{base}loadbalancer_apiserver_localhost=false\n"), Some("1.31.4")).unwrap();
        assert!(!got.yaml.contains("loadBalancer") && !got.yaml.contains("controlPlaneEndpoint"), "{}", got.yaml);
        let one = "[kube_control_plane]\ncp1\n[etcd:children]\nkube_control_plane\n[all:vars]\nloadbalancer_apiserver_localhost=True\n";
        assert!(import(one, Some("1.31.4")).unwrap().yaml.contains("type: local"), "asked for explicitly");
        let got = import(&format!("{base}loadbalancer_apiserver_localhost={{{{ x }}}}\n"), Some("1.31.4")).unwrap();
        assert!(got.warnings.iter().any(|w| w.contains("is a template")), "{:?}", got.warnings);
    }

    #[test]
    fn shared_unmapped_variables_are_one_warning_and_host_ones_one_each() {
        let got = import(
            "[kube_control_plane]\ncp1 etcd_member_name=etcd1\n[kube_node]\nw1\n[etcd:children]\nkube_control_plane\n\
             [all:vars]\nbin_dir=/usr/local/bin\n",
            Some("1.31.4"),
        )
        .unwrap();
        assert!(got.warnings.contains(&"cp1: not carried over: etcd_member_name".to_string()), "{:?}", got.warnings);
        assert!(
            got.warnings.iter().any(|w| w.starts_with("1 variable the same on every host") && w.ends_with("bin_dir"))
        );
        assert_eq!(got.unmapped, ["bin_dir"]);
    }

    #[test]
    fn a_template_naming_one_variable_is_that_variable() {
        let base =
            "[kube_control_plane]\ncp1\n[etcd:children]\nkube_control_plane\n[all:vars]\ncluster_name=lab.local\n";
        let got =
            import(&format!("{base}dns_domain={{{{ cluster_name }}}}\nkube_version={{{{ v }}}}\nv=1.31.4\n"), None)
                .unwrap();
        assert!(got.yaml.contains("dnsDomain: \"lab.local\""), "{}", got.yaml);
        assert!(got.yaml.contains("kubernetesVersion: \"1.31.4\""), "{}", got.yaml);
        let e = import(&format!("{base}kube_version={{{{ v | default('1') }}}}\n"), None).unwrap_err();
        assert!(e.message.contains("a template"), "{e}");
    }

    #[test]
    fn yaml_or_ini_is_told_by_the_content() {
        assert!(looks_like_yaml("# c\nall:\n  hosts:\n"));
        assert!(looks_like_yaml("---\nall:\n"));
        assert!(!looks_like_yaml("[all]\nnode1\n"));
        assert!(!looks_like_yaml("node1 ansible_host=1.2.3.4\n"));
    }
}
