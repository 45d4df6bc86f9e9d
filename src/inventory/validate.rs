//! Raw inventory → validated [`Inventory`], collecting every problem on the way.
//!
//! Each field is checked on its own (syntax, range), then the whole is checked for
//! consistency (duplicates, roles, subnet overlaps and sizes, quorum). A field that fails
//! gets a placeholder so the later checks still run and report their own problems.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use super::checks::*;
use super::raw::*;
use super::*;
use crate::diag::Diagnostic;
use crate::duration::Duration;
use crate::source_map::FieldPath;
use crate::version::{MAX_SUPPORTED_MINOR, MIN_SUPPORTED_MINOR, Version};

const DEFAULT_POD_SUBNET: &str = "10.244.0.0/16";
const DEFAULT_SERVICE_SUBNET: &str = "10.96.0.0/12";
/// flannel v0.24.2 and its CNI plugin, as in the operator notes' manifest (seed 002 L2536, L2557).
const DEFAULT_FLANNEL_VERSION: &str = "v0.24.2";
const DEFAULT_FLANNEL_CNI_PLUGIN_VERSION: &str = "v1.4.0-flannel1";
/// haproxy's 2.8 LTS branch (supported until 2028); pin a patch release with
/// `loadBalancer.image` to run the same build on every node.
const DEFAULT_LOAD_BALANCER_IMAGE: &str = "docker.io/library/haproxy:2.8-alpine";
/// The port API servers serve on (kubeadm's default bindPort, which kubewright keeps).
const API_SERVER_PORT: u16 = 6443;
/// kubelet's default `maxPods`; a node's pod range must hold at least this many addresses.
const KUBELET_MAX_PODS: u32 = 110;

struct Ctx<'a> {
    out: &'a mut Vec<Finding>,
}

impl Ctx<'_> {
    fn push(&mut self, path: &FieldPath, diagnostic: Diagnostic) {
        self.out.push(Finding { path: path.clone(), at_key: false, diagnostic });
    }

    fn missing(&mut self, path: &FieldPath, expected: &str, hint: &str) {
        let field = path.last_key().unwrap_or("value").to_string();
        self.push(
            path,
            Diagnostic::error("", format!("missing required field `{field}`")).expected(expected).hint(hint),
        );
    }

    /// A scalar that must pass `check`; reports and returns None when it does not.
    fn text(
        &mut self,
        value: Option<&Scalar>,
        path: &FieldPath,
        check: fn(&str) -> bool,
        expected: &str,
    ) -> Option<String> {
        let value = value?;
        if check(&value.0) {
            Some(value.0.clone())
        } else {
            self.push(
                path,
                Diagnostic::error("", format!("invalid value `{}`", printable(&value.0))).expected(expected),
            );
            None
        }
    }

    fn parse<T: FromStr>(&mut self, value: Option<&Scalar>, path: &FieldPath, expected: &str) -> Option<T> {
        let value = value?;
        match value.0.parse() {
            Ok(v) => Some(v),
            Err(_) => {
                self.push(
                    path,
                    Diagnostic::error("", format!("invalid value `{}`", printable(&value.0))).expected(expected),
                );
                None
            }
        }
    }

    fn boolean(&mut self, value: Option<&Scalar>, path: &FieldPath, default: bool) -> bool {
        match value.map(|v| v.0.as_str()) {
            None => default,
            Some("true") => true,
            Some("false") => false,
            Some(other) => {
                self.push(
                    path,
                    Diagnostic::error("", format!("invalid value `{}`", printable(other)))
                        .expected("`true` or `false`"),
                );
                default
            }
        }
    }

    /// One of a fixed set of words (`openssh`/`russh`, `vxlan`/`host-gw`); the default when absent.
    fn one_of<T: Copy>(
        &mut self,
        value: Option<&Scalar>,
        path: &FieldPath,
        what: &str,
        options: &[(&str, T)],
        expected: &str,
    ) -> T {
        let default = options[0].1;
        let Some(value) = value else { return default };
        match options.iter().find(|(word, _)| *word == value.0) {
            Some((_, v)) => *v,
            None => {
                self.push(
                    path,
                    Diagnostic::error("", format!("unknown {what} `{}`", printable(&value.0))).expected(expected),
                );
                default
            }
        }
    }

    fn port(&mut self, value: Option<&Scalar>, path: &FieldPath) -> Option<u16> {
        let value = value?;
        match value.0.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => {
                self.push(
                    path,
                    Diagnostic::error("", format!("invalid port `{}`", printable(&value.0)))
                        .expected("a TCP port from 1 to 65535"),
                );
                None
            }
        }
    }

    /// `identityFile`: one key or a list, tried in order: (the first, the rest); None when
    /// absent or when no item is valid (each bad one reported).
    fn identity_files(&mut self, value: Option<&OneOrMany>, path: &FieldPath) -> Option<(String, Vec<String>)> {
        let value = value?;
        if value.items.is_empty() {
            self.push(
                path,
                Diagnostic::error("", "the identity file list is empty")
                    .expected("a path to a private key file, or a list of them")
                    .hint("remove `identityFile` to use the agent and ~/.ssh/id_*, or list at least one key"),
            );
            return None;
        }
        let mut files = Vec::new();
        for (i, item) in value.items.iter().enumerate() {
            let item_path = if value.is_list { path.index(i) } else { path.clone() };
            if let Some(file) = self.text(Some(item), &item_path, is_local_path, "a path to a private key file") {
                files.push(file);
            }
        }
        let mut files = files.into_iter();
        let first = files.next()?;
        Some((first, files.collect()))
    }

    fn duration(&mut self, value: Option<&Scalar>, path: &FieldPath, default: Duration) -> Duration {
        self.parse(value, path, "a duration like `90s`, `5m`, `1h30m` or `30d`").unwrap_or(default)
    }

    /// A duration that must be longer than zero (a time limit: zero would fail everything).
    fn positive_duration(&mut self, value: Option<&Scalar>, path: &FieldPath, default: Duration) -> Duration {
        let expected = "a duration longer than zero, like `90s`, `5m` or `1h`";
        match self.parse::<Duration>(value, path, expected) {
            Some(d) if d.seconds == 0 => {
                let given = value.map(|v| printable(&v.0)).unwrap_or_default();
                self.push(path, Diagnostic::error("", format!("invalid value `{given}`")).expected(expected));
                default
            }
            Some(d) => d,
            None => default,
        }
    }
}

/// Make a value safe to print inside backticks: control characters become escapes.
fn printable(s: &str) -> String {
    let escaped: String = s.chars().flat_map(char::escape_default).collect();
    if escaped.chars().count() > 80 { format!("{}...", escaped.chars().take(77).collect::<String>()) } else { escaped }
}

pub(crate) fn validate(raw: RawInventory, out: &mut Vec<Finding>) -> Option<Inventory> {
    let mut cx = Ctx { out };
    let root = FieldPath::root();

    let raw_cluster = match raw.cluster {
        Some(c) => c,
        None => {
            cx.missing(
                &root.key("cluster"),
                "a mapping with at least `name` and `kubernetesVersion`",
                "add a `cluster:` section; see inventories/example.yaml",
            );
            // Placeholders keep the missing-field messages below from repeating this one.
            RawCluster {
                name: Some(Scalar("missing".into())),
                kubernetes_version: Some(Scalar(format!("1.{MIN_SUPPORTED_MINOR}.0"))),
                ..RawCluster::default()
            }
        }
    };
    let raw_hosts = match raw.hosts {
        Some(h) if !h.is_empty() => h,
        Some(_) => {
            cx.push(
                &root.key("hosts"),
                Diagnostic::error("", "the host list is empty")
                    .expected("at least one host with the `control-plane` role")
                    .hint("list the machines of the cluster under `hosts:`"),
            );
            Vec::new()
        }
        None => {
            cx.missing(
                &root.key("hosts"),
                "a list of hosts",
                "list the machines of the cluster under `hosts:`; see inventories/example.yaml",
            );
            Vec::new()
        }
    };

    let ssh_path = root.key("ssh");
    let raw_ssh = raw.ssh.unwrap_or_default();
    let (ssh_defaults, host_ssh_defaults) = ssh_section(&mut cx, raw_ssh, &ssh_path);

    let hosts: Vec<Host> = raw_hosts
        .into_iter()
        .enumerate()
        .map(|(i, h)| host(&mut cx, h, &root.key("hosts").index(i), &host_ssh_defaults))
        .collect();

    let cluster = cluster(&mut cx, raw_cluster, &root.key("cluster"), &hosts);
    cross_checks(&mut cx, &cluster, &hosts);
    if hosts.is_empty() {
        return None;
    }
    Some(Inventory { cluster, ssh: ssh_defaults, hosts })
}

fn ssh_section(cx: &mut Ctx<'_>, raw: RawSsh, path: &FieldPath) -> (SshDefaults, HostSsh) {
    let user = cx
        .text(raw.user.as_ref(), &path.key("user"), is_unix_user, "a POSIX user name like `root` or `ubuntu`")
        .unwrap_or_else(|| "root".into());
    let port = cx.port(raw.port.as_ref(), &path.key("port")).unwrap_or(22);
    let (identity_file, fallback_identity_files) =
        match cx.identity_files(raw.identity_file.as_ref(), &path.key("identityFile")) {
            Some((first, rest)) => (Some(first), rest),
            None => (None, Vec::new()),
        };
    let sudo = cx.boolean(raw.sudo.as_ref(), &path.key("become"), user != "root");
    let known_hosts =
        cx.text(raw.known_hosts.as_ref(), &path.key("knownHosts"), is_local_path, "a path to a known_hosts file");
    let transport = cx.one_of(
        raw.transport.as_ref(),
        &path.key("transport"),
        "transport",
        &[("openssh", TransportKind::Openssh), ("russh", TransportKind::Russh)],
        "`openssh` (system ssh, honours ~/.ssh/config) or `russh` (built in)",
    );
    let connect_timeout =
        cx.duration(raw.connect_timeout.as_ref(), &path.key("connectTimeout"), Duration::from_secs(10));
    let server_alive_interval =
        cx.duration(raw.server_alive_interval.as_ref(), &path.key("serverAliveInterval"), Duration::from_secs(15));
    let bastion = raw.bastion.and_then(|b| {
        let bpath = path.key("bastion");
        let host = match b.host.as_ref() {
            Some(_) => cx.text(b.host.as_ref(), &bpath.key("host"), is_address, "an IP address or host name"),
            None => {
                cx.missing(
                    &bpath.key("host"),
                    "the bastion's IP address or host name",
                    "set `ssh.bastion.host`, or remove `ssh.bastion`",
                );
                None
            }
        }?;
        Some(Bastion {
            host,
            user: cx
                .text(b.user.as_ref(), &bpath.key("user"), is_unix_user, "a POSIX user name")
                .unwrap_or_else(|| user.clone()),
            port: cx.port(b.port.as_ref(), &bpath.key("port")).unwrap_or(22),
            identity_file: cx.text(
                b.identity_file.as_ref(),
                &bpath.key("identityFile"),
                is_local_path,
                "a path to a private key file",
            ),
        })
    });
    (
        SshDefaults { transport, known_hosts, connect_timeout, server_alive_interval, bastion },
        HostSsh {
            user,
            port,
            identity_file,
            fallback_identity_files,
            sudo,
            given: SshGiven { user: raw.user.is_some(), port: raw.port.is_some(), sudo: raw.sudo.is_some() },
        },
    )
}

fn host(cx: &mut Ctx<'_>, raw: RawHost, path: &FieldPath, ssh: &HostSsh) -> Host {
    let name = match raw.name.as_ref() {
        None => {
            cx.missing(
                &path.key("name"),
                "the Kubernetes node name of this host",
                "add `name: <node-name>` (lowercase letters, digits, `-`, `.`)",
            );
            format!("<host {}>", path.0.len())
        }
        Some(n) if is_dns_subdomain(&n.0) => n.0.clone(),
        Some(n) => {
            let suggestion = suggest_dns_subdomain(&n.0);
            let mut d = Diagnostic::error("", format!("`{}` is not a valid Kubernetes node name", printable(&n.0)))
                .expected("an RFC 1123 subdomain: lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at most 253 characters");
            if is_dns_subdomain(&suggestion) {
                d = d.hint(format!("rename the host to `{suggestion}`"));
            }
            cx.push(&path.key("name"), d);
            n.0.clone()
        }
    };
    let address = match raw.address.as_ref() {
        None => {
            cx.missing(
                &path.key("address"),
                "the IP address or host name SSH connects to",
                "add `address: <ip-or-hostname>`",
            );
            String::new()
        }
        Some(_) => cx
            .text(raw.address.as_ref(), &path.key("address"), is_address, "an IP address or an RFC 1123 host name")
            .unwrap_or_default(),
    };
    let (internal_address, internal_interface) = internal_address(cx, raw.internal_address.as_ref(), path);

    let mut roles = BTreeSet::new();
    match raw.roles {
        None => cx.missing(
            &path.key("roles"),
            "a list with `control-plane`, `worker` or both",
            "add `roles: [worker]` or `roles: [control-plane]`",
        ),
        Some(list) => {
            if list.is_empty() {
                cx.push(
                    &path.key("roles"),
                    Diagnostic::error("", "the role list is empty").expected("`control-plane`, `worker` or both"),
                );
            }
            for (i, role) in list.iter().enumerate() {
                let role_path = path.key("roles").index(i);
                let parsed = match role.0.as_str() {
                    "control-plane" => Role::ControlPlane,
                    "worker" => Role::Worker,
                    other => {
                        let mut d = Diagnostic::error("", format!("unknown role `{}`", printable(other)))
                            .expected("`control-plane` or `worker`");
                        if let Some(s) = crate::diag::did_you_mean(other, ["control-plane", "worker"]) {
                            d = d.hint(format!("did you mean `{s}`?"));
                        } else if other == "master" {
                            d = d.hint("Kubernetes renamed `master` to `control-plane` in 1.20; use `control-plane`");
                        }
                        cx.push(&role_path, d);
                        continue;
                    }
                };
                if !roles.insert(parsed) {
                    cx.push(&role_path, Diagnostic::warning("", format!("role `{}` is listed twice", role.0)));
                }
            }
        }
    }

    let mut labels = BTreeMap::new();
    for (key, value) in raw.labels.unwrap_or_default() {
        let lpath = path.key("labels").key(key.clone());
        if !is_label_key(&key) {
            cx.push(&lpath, Diagnostic::error("", format!("invalid label key `{}`", printable(&key))).expected("`[prefix/]name`: an optional DNS subdomain prefix and a name of at most 63 characters from `A-Za-z0-9-_.`"));
            continue;
        }
        if is_restricted_label(&key) {
            cx.push(&lpath, Diagnostic::error("", format!("the kubelet may not set label `{key}` on its own node"))
                .expected("a label outside the `kubernetes.io` and `k8s.io` namespaces, or under `node.kubernetes.io/`")
                .hint("the NodeRestriction admission plugin rejects it; use e.g. `node.kubernetes.io/role` or your own prefix"));
            continue;
        }
        if !is_label_value(&value.0) {
            cx.push(
                &lpath,
                Diagnostic::error("", format!("invalid label value `{}`", printable(&value.0))).expected(
                    "empty, or at most 63 characters from `A-Za-z0-9-_.` starting and ending with a letter or digit",
                ),
            );
            continue;
        }
        labels.insert(key, value.0);
    }

    let mut taints = Vec::new();
    for (i, raw_taint) in raw.taints.unwrap_or_default().iter().enumerate() {
        match parse_taint(&raw_taint.0) {
            Some(t) => taints.push(t),
            None => cx.push(
                &path.key("taints").index(i),
                Diagnostic::error("", format!("invalid taint `{}`", printable(&raw_taint.0)))
                    .expected("`key[=value]:Effect` with Effect one of NoSchedule, PreferNoSchedule, NoExecute")
                    .hint("for example `dedicated=gpu:NoSchedule`"),
            ),
        }
    }

    let host_ssh = match raw.ssh {
        None => ssh.clone(),
        Some(o) => {
            let spath = path.key("ssh");
            let user = cx
                .text(o.user.as_ref(), &spath.key("user"), is_unix_user, "a POSIX user name")
                .unwrap_or_else(|| ssh.user.clone());
            // A host's own keys replace the inventory's, the whole list.
            let (identity_file, fallback_identity_files) =
                match cx.identity_files(o.identity_file.as_ref(), &spath.key("identityFile")) {
                    Some((first, rest)) => (Some(first), rest),
                    None => (ssh.identity_file.clone(), ssh.fallback_identity_files.clone()),
                };
            HostSsh {
                port: cx.port(o.port.as_ref(), &spath.key("port")).unwrap_or(ssh.port),
                identity_file,
                fallback_identity_files,
                sudo: cx.boolean(
                    o.sudo.as_ref(),
                    &spath.key("become"),
                    if o.user.is_some() { user != "root" } else { ssh.sudo },
                ),
                given: SshGiven {
                    user: o.user.is_some() || ssh.given.user,
                    port: o.port.is_some() || ssh.given.port,
                    // A host's own user makes the section's `become` not apply to it.
                    sudo: o.sudo.is_some() || (o.user.is_none() && ssh.given.sudo),
                },
                user,
            }
        }
    };

    let sysctls = sysctl_map(cx, raw.sysctls.unwrap_or_default(), &path.key("sysctls"));
    let flannel_interface = cx.text(
        raw.flannel_interface.as_ref(),
        &path.key("flannelInterface"),
        is_interface_name,
        "a network interface name such as `eth1` (at most 15 characters)",
    );

    Host {
        name,
        address,
        internal_address,
        internal_interface,
        roles,
        labels,
        taints,
        ssh: host_ssh,
        sysctls,
        flannel_interface,
    }
}

/// `internalAddress`: an IP, or `{interface: NAME}` (the address is read from the host when
/// the plan is made): (the IP, the interface).
fn internal_address(
    cx: &mut Ctx<'_>,
    raw: Option<&RawInternalAddress>,
    host_path: &FieldPath,
) -> (Option<IpAddr>, Option<String>) {
    let path = host_path.key("internalAddress");
    match raw {
        None => (None, None),
        Some(RawInternalAddress::Literal(value)) => (
            cx.parse::<IpAddr>(
                Some(value),
                &path,
                "an IP address (the node's cluster-facing address), or `{interface: NAME}` to read it from the host",
            ),
            None,
        ),
        Some(RawInternalAddress::Of(of)) => match of.interface.as_ref() {
            None => {
                cx.missing(
                    &path.key("interface"),
                    "the network interface whose IPv4 address is the node IP",
                    "write `internalAddress: {interface: eth1}`, or give the address itself",
                );
                (None, None)
            }
            Some(_) => (
                None,
                cx.text(
                    of.interface.as_ref(),
                    &path.key("interface"),
                    is_interface_name,
                    "a network interface name such as `eth1` (at most 15 characters)",
                ),
            ),
        },
    }
}

fn parse_taint(s: &str) -> Option<Taint> {
    let (kv, effect) = s.rsplit_once(':')?;
    let effect = match effect {
        "NoSchedule" => TaintEffect::NoSchedule,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        "NoExecute" => TaintEffect::NoExecute,
        _ => return None,
    };
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    if !is_label_key(key) || !value.is_none_or(is_label_value) {
        return None;
    }
    Some(Taint { key: key.to_string(), value: value.map(str::to_string), effect })
}

fn sysctl_map(cx: &mut Ctx<'_>, raw: BTreeMap<String, Scalar>, path: &FieldPath) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (key, value) in raw {
        let kpath = path.key(key.clone());
        if !is_sysctl_key(&key) {
            cx.push(
                &kpath,
                Diagnostic::error("", format!("invalid sysctl key `{}`", printable(&key)))
                    .expected("a dotted kernel parameter such as `net.core.somaxconn`"),
            );
        } else if !is_sysctl_value(&value.0) {
            cx.push(
                &kpath,
                Diagnostic::error("", format!("invalid sysctl value `{}`", printable(&value.0)))
                    .expected("a number or words (letters, digits, spaces and `._:,/-`), on one line"),
            );
        } else {
            out.insert(key, value.0);
        }
    }
    out
}

/// The `cluster:` section, one part of it at a time (each function below is one key of it).
fn cluster(cx: &mut Ctx<'_>, raw: RawCluster, path: &FieldPath, hosts: &[Host]) -> Cluster {
    let name = cluster_name(cx, raw.name.as_ref(), path);
    let version = kubernetes_version(cx, raw.kubernetes_version.as_ref(), &path.key("kubernetesVersion"));
    let network = network(cx, raw.network.unwrap_or_default(), &path.key("network"));
    let (load_balancer, endpoint) = load_balancer(
        cx,
        raw.load_balancer.unwrap_or_default(),
        raw.control_plane_endpoint.as_ref(),
        name.as_deref(),
        path,
        hosts,
    );
    let flannel = flannel(cx, raw.cni.and_then(|c| c.flannel).unwrap_or_default(), &path.key("cni").key("flannel"));
    let containerd = containerd(cx, raw.containerd.unwrap_or_default(), &path.key("containerd"), version);
    let packages = packages(cx, raw.packages.unwrap_or_default(), &path.key("packages"));
    let sysctls = sysctls(cx, raw.sysctls.unwrap_or_default(), &path.key("sysctls"));
    let certificates = certificates(cx, raw.certificates.unwrap_or_default(), &path.key("certificates"));
    let upgrade = upgrade(cx, raw.upgrade.unwrap_or_default(), &path.key("upgrade"));
    let timeouts = timeouts(cx, raw.timeouts.unwrap_or_default(), &path.key("timeouts"));
    // Invalid or missing fields were reported above; placeholders let the checks go on.
    Cluster {
        name: name.unwrap_or_default(),
        kubernetes_version: version.unwrap_or(Version { major: 1, minor: MIN_SUPPORTED_MINOR, patch: 0 }),
        control_plane_endpoint: endpoint.unwrap_or(Endpoint { host: String::new(), port: 6443, explicit: false }),
        load_balancer,
        network,
        flannel,
        containerd,
        packages,
        sysctls,
        certificates,
        upgrade,
        timeouts,
    }
}

/// `cluster.name`.
fn cluster_name(cx: &mut Ctx<'_>, name: Option<&Scalar>, path: &FieldPath) -> Option<String> {
    match name {
        None => {
            cx.missing(
                &path.key("name"),
                "a short cluster name",
                "add `name: <cluster-name>` (lowercase letters, digits and `-`)",
            );
            None
        }
        Some(_) => cx.text(
            name,
            &path.key("name"),
            is_dns_label,
            "an RFC 1123 label: lowercase letters, digits and `-`, at most 63 characters",
        ),
    }
}

/// `cluster.network`.
fn network(cx: &mut Ctx<'_>, net: RawNetwork, path: &FieldPath) -> Network {
    let cidr = |cx: &mut Ctx<'_>, v: Option<&Scalar>, p: &FieldPath, default: &str| -> Ipv4Net {
        let fallback = default.parse().unwrap_or_default();
        let Some(v) = v else { return fallback };
        match v.0.parse::<Ipv4Net>() {
            Ok(n) if n.network() == n.addr() => n,
            Ok(n) => {
                cx.push(
                    p,
                    Diagnostic::error("", format!("`{}` has host bits set", v.0))
                        .expected("a network address")
                        .hint(format!("use `{}`", n.trunc())),
                );
                n.trunc()
            }
            Err(_) => {
                let hint = if v.0.contains(':') {
                    "kubewright supports IPv4 clusters only"
                } else {
                    "write it as ADDRESS/PREFIX, e.g. `10.244.0.0/16`"
                };
                cx.push(
                    p,
                    Diagnostic::error("", format!("invalid IPv4 CIDR `{}`", printable(&v.0)))
                        .expected("an IPv4 network in CIDR notation")
                        .hint(hint),
                );
                fallback
            }
        }
    };
    let pod_subnet = cidr(cx, net.pod_subnet.as_ref(), &path.key("podSubnet"), DEFAULT_POD_SUBNET);
    let service_subnet = cidr(cx, net.service_subnet.as_ref(), &path.key("serviceSubnet"), DEFAULT_SERVICE_SUBNET);
    let node_cidr_mask_size = match net.node_cidr_mask_size.as_ref() {
        None => 24.max(pod_subnet.prefix_len()),
        Some(v) => match v.0.parse::<u8>() {
            Ok(m) if (pod_subnet.prefix_len()..=28).contains(&m) => m,
            _ => {
                cx.push(
                    &path.key("nodeCidrMaskSize"),
                    Diagnostic::error("", format!("invalid node CIDR mask size `{}`", printable(&v.0)))
                        .expected(format!("a prefix length from {} (the pod subnet's) to 28", pod_subnet.prefix_len())),
                );
                24.max(pod_subnet.prefix_len())
            }
        },
    };
    let dns_domain = cx
        .text(
            net.dns_domain.as_ref(),
            &path.key("dnsDomain"),
            is_dns_subdomain,
            "an RFC 1123 domain such as `cluster.local`",
        )
        .unwrap_or_else(|| "cluster.local".into());
    Network { pod_subnet, service_subnet, node_cidr_mask_size, dns_domain }
}

/// `cluster.loadBalancer` and `cluster.controlPlaneEndpoint`, which depends on it.
fn load_balancer(
    cx: &mut Ctx<'_>,
    lb: RawLoadBalancer,
    control_plane_endpoint: Option<&Scalar>,
    name: Option<&str>,
    path: &FieldPath,
    hosts: &[Host],
) -> (LoadBalancer, Option<Endpoint>) {
    let lb_path = path.key("loadBalancer");
    let local = cx.one_of(
        lb.kind.as_ref(),
        &lb_path.key("type"),
        "load balancer type",
        &[("external", false), ("local", true)],
        "`external` (a load balancer or VIP you run, given as controlPlaneEndpoint) or `local` (an haproxy on every worker)",
    );
    let load_balancer = if local {
        let image = cx
            .text(
                lb.image.as_ref(),
                &lb_path.key("image"),
                is_image_reference,
                "an image reference such as `docker.io/library/haproxy:2.8-alpine`",
            )
            .unwrap_or_else(|| DEFAULT_LOAD_BALANCER_IMAGE.into());
        LoadBalancer::Local { image }
    } else {
        if lb.image.is_some() {
            cx.push(
                &lb_path.key("image"),
                Diagnostic::error("", "`image` is set but the load balancer is external")
                    .hint("set `type: local` for kubewright's haproxy on every worker, or remove `image`"),
            );
        }
        LoadBalancer::External
    };
    let endpoint_path = path.key("controlPlaneEndpoint");
    let endpoint = match (&load_balancer, control_plane_endpoint) {
        // The name every node resolves through its own /etc/hosts entry.
        (LoadBalancer::Local { .. }, None) => {
            name.map(|n| Endpoint { host: format!("api.{n}.internal"), port: API_SERVER_PORT, explicit: false })
        }
        (LoadBalancer::Local { .. }, Some(_)) => {
            let given = endpoint(cx, control_plane_endpoint, &endpoint_path, hosts);
            match given {
                Some(e) if e.host.parse::<IpAddr>().is_ok() || e.port != API_SERVER_PORT => {
                    cx.push(
                        &endpoint_path,
                        Diagnostic::error("", format!("with `loadBalancer.type: local` the endpoint must be a DNS name on port {API_SERVER_PORT}, not `{e}`"))
                            .expected(format!("a name such as `api.example.internal:{API_SERVER_PORT}`"))
                            .hint("kubewright maps the name on every node (a control plane to itself, a worker to its local haproxy), so it cannot be an address; leave it out for `api.<cluster name>.internal`"),
                    );
                    None
                }
                other => other,
            }
        }
        (LoadBalancer::External, value) => endpoint(cx, value, &endpoint_path, hosts),
    };
    (load_balancer, endpoint)
}

/// `cluster.cni.flannel`.
fn flannel(cx: &mut Ctx<'_>, fl: RawFlannel, path: &FieldPath) -> Flannel {
    let backend = cx.one_of(
        fl.backend.as_ref(),
        &path.key("backend"),
        "flannel backend",
        &[("vxlan", FlannelBackend::Vxlan), ("host-gw", FlannelBackend::HostGw)],
        "`vxlan` or `host-gw` (host-gw needs all nodes on one L2 segment)",
    );
    Flannel {
        backend,
        interface: cx.text(
            fl.interface.as_ref(),
            &path.key("interface"),
            is_interface_name,
            "a network interface name such as `eth1`",
        ),
        version: cx
            .text(fl.version.as_ref(), &path.key("version"), is_image_tag, "an image tag such as `v0.24.2`")
            .unwrap_or_else(|| DEFAULT_FLANNEL_VERSION.into()),
        cni_plugin_version: cx
            .text(
                fl.cni_plugin_version.as_ref(),
                &path.key("cniPluginVersion"),
                is_image_tag,
                "an image tag such as `v1.4.0-flannel1`",
            )
            .unwrap_or_else(|| DEFAULT_FLANNEL_CNI_PLUGIN_VERSION.into()),
    }
}

/// `cluster.containerd` (its sandbox image defaults to the release's pause image).
fn containerd(cx: &mut Ctx<'_>, ct: RawContainerd, path: &FieldPath, version: Option<Version>) -> Containerd {
    let containerd_version = match ct.version.as_ref() {
        None => (1, 7),
        Some(v) => match parse_major_minor(&v.0) {
            Some((major, minor)) if major == 1 || major == 2 => (major, minor),
            _ => {
                cx.push(
                    &path.key("version"),
                    Diagnostic::error("", format!("unsupported containerd version `{}`", printable(&v.0)))
                        .expected("a 1.x or 2.x version such as `1.7` or `2.0.4`"),
                );
                (1, 7)
            }
        },
    };
    let sandbox_image = cx
        .text(
            ct.sandbox_image.as_ref(),
            &path.key("sandboxImage"),
            is_image_reference,
            "an image reference such as `registry.k8s.io/pause:3.10`",
        )
        .or_else(|| version.map(|v| v.pause_image()))
        .unwrap_or_default();
    let mut registry_mirrors = BTreeMap::new();
    for (registry, mirrors) in ct.registry_mirrors.unwrap_or_default() {
        let rpath = path.key("registryMirrors").key(registry.clone());
        let registry_ok = is_hostname(registry.split(':').next().unwrap_or(""))
            && registry.split(':').nth(1).is_none_or(|p| p.parse::<u16>().is_ok());
        if !registry_ok {
            cx.push(
                &rpath,
                Diagnostic::error("", format!("invalid registry host `{}`", printable(&registry))).expected(
                    "a registry host name, optionally with a port, such as `docker.io` or `registry.local:5000`",
                ),
            );
            continue;
        }
        if mirrors.is_empty() {
            cx.push(&rpath, Diagnostic::error("", "no mirror URLs listed").expected("one or more `https://` URLs"));
            continue;
        }
        let urls: Vec<String> = mirrors
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                cx.text(
                    Some(m),
                    &rpath.index(i),
                    is_safe_url,
                    "an `http://` or `https://` URL without quotes, spaces or backslashes",
                )
            })
            .collect();
        registry_mirrors.insert(registry, urls);
    }
    let containerd = Containerd {
        version: containerd_version,
        sandbox_image,
        systemd_cgroup: cx.boolean(ct.systemd_cgroup.as_ref(), &path.key("systemdCgroup"), true),
        registry_mirrors,
    };
    if !containerd.systemd_cgroup {
        cx.push(&path.key("systemdCgroup"), Diagnostic::warning("", "containerd will use the cgroupfs driver while the kubelet uses systemd")
            .hint("mixing cgroup drivers makes nodes unstable under resource pressure; keep `systemdCgroup: true` on systemd hosts"));
    }
    containerd
}

/// `cluster.packages`.
fn packages(cx: &mut Ctx<'_>, pk: RawPackages, path: &FieldPath) -> Packages {
    let key_fingerprint = match pk.key_fingerprint.as_ref() {
        None => Some(super::PKGS_K8S_IO_KEY_FINGERPRINT.to_string()),
        Some(v) if v.0 == "none" => None,
        Some(v) => {
            let digits: String = v.0.chars().filter(|c| *c != ' ').collect();
            if digits.len() == 40 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
                Some(digits.to_ascii_uppercase())
            } else {
                cx.push(
                    &path.key("keyFingerprint"),
                    Diagnostic::error("", format!("invalid key fingerprint `{}`", printable(&v.0))).expected(
                        "the signing key's fingerprint: 40 hex digits, spaces allowed as `gpg --show-keys` prints them; or `none` to trust the key the mirror serves over https",
                    ),
                );
                Some(super::PKGS_K8S_IO_KEY_FINGERPRINT.to_string())
            }
        }
    };
    let mirror = cx
        .text(
            pk.mirror.as_ref(),
            &path.key("mirror"),
            is_safe_url,
            "an `https://` base URL of a pkgs.k8s.io mirror (`http://` only with `keyFingerprint` pinned)",
        )
        .map(|m| m.trim_end_matches('/').to_string())
        .unwrap_or_else(|| "https://pkgs.k8s.io".into());
    // Over http, whoever is on the path can serve both a key and packages it signed: the key
    // must then be pinned (apt checks the signed Release file against it).
    if mirror.starts_with("http://") && key_fingerprint.is_none() {
        cx.push(
            &path.key("mirror"),
            Diagnostic::error("", "an `http://` mirror with `keyFingerprint: none`: anyone between the hosts and the mirror could hand them a signing key of their own, and packages signed with it")
                .expected("an `https://` mirror")
                .hint("or pin the repository's key with `cluster.packages.keyFingerprint` (the fingerprint `gpg --show-keys Release.key` prints)"),
        );
    }
    Packages {
        mirror,
        key_fingerprint,
        manage_repository: cx.boolean(pk.manage_repository.as_ref(), &path.key("manageRepository"), true),
        containerd_package: cx
            .text(
                pk.containerd_package.as_ref(),
                &path.key("containerdPackage"),
                is_package_name,
                "a Debian package name such as `containerd` or `containerd.io`",
            )
            .unwrap_or_else(|| "containerd".into()),
    }
}

/// `cluster.sysctls`.
fn sysctls(cx: &mut Ctx<'_>, sy: RawSysctls, path: &FieldPath) -> Sysctls {
    Sysctls {
        tuning: cx.boolean(sy.tuning.as_ref(), &path.key("tuning"), false),
        extra: sysctl_map(cx, sy.extra.unwrap_or_default(), &path.key("extra")),
    }
}

/// `cluster.certificates`.
fn certificates(cx: &mut Ctx<'_>, raw_certs: RawCertificates, path: &FieldPath) -> Certificates {
    let p = path.key("renewBefore");
    let renew_before = cx.duration(raw_certs.renew_before.as_ref(), &p, Duration::from_secs(30 * 86_400));
    let keep_path = path.key("keepBackups");
    let keep_backups = match raw_certs.keep_backups.as_ref() {
        None => 5,
        Some(v) => match v.0.parse::<u32>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                cx.push(
                    &keep_path,
                    Diagnostic::error("", format!("invalid number of backups `{}`", printable(&v.0)))
                        .expected("a count from 1 to 100"),
                );
                5
            }
        },
    };
    if renew_before.seconds >= 365 * 86_400 || renew_before.seconds == 0 {
        cx.push(
            &p,
            Diagnostic::error("", format!("renewal threshold `{renew_before}` is outside the life of a certificate"))
                .expected("more than 0 and less than 365d (kubeadm issues 1-year leaf certificates)"),
        );
    }
    let ca_key_type = cx.one_of(
        raw_certs.ca_key_type.as_ref(),
        &path.key("caKeyType"),
        "CA key type",
        &[("ecdsa-p256", crate::pki::KeyType::EcdsaP256), ("ecdsa-p384", crate::pki::KeyType::EcdsaP384)],
        "`ecdsa-p256` or `ecdsa-p384` (the CAs kubewright makes; for RSA CAs, make them yourself and put them in the state directory's pki/)",
    );
    let validity_path = path.key("caValidity");
    let ca_validity = cx.duration(raw_certs.ca_validity.as_ref(), &validity_path, Duration::from_secs(3650 * 86_400));
    if ca_validity.seconds < 2 * 365 * 86_400 {
        cx.push(
            &validity_path,
            Diagnostic::error(
                "",
                format!("a CA valid for `{ca_validity}` would expire before the certificates it signs"),
            )
            .expected("at least 730d (kubeadm signs leaves for a year); 3650d is kubeadm's own"),
        );
    }
    Certificates { renew_before, keep_backups, ca_key_type, ca_validity }
}

/// `cluster.upgrade`.
fn upgrade(cx: &mut Ctx<'_>, up: RawUpgrade, path: &FieldPath) -> Upgrade {
    let max_unavailable = match up.max_unavailable.as_ref() {
        None => MaxUnavailable::Count(1),
        Some(v) => match parse_max_unavailable(&v.0) {
            Some(m) => m,
            None => {
                cx.push(
                    &path.key("maxUnavailable"),
                    Diagnostic::error("", format!("invalid value `{}`", printable(&v.0)))
                        .expected("a count of at least 1 (`2`) or a percentage from 1% to 100% (`20%`)"),
                );
                MaxUnavailable::Count(1)
            }
        },
    };
    Upgrade {
        max_unavailable,
        drain_timeout: cx.duration(up.drain_timeout.as_ref(), &path.key("drainTimeout"), Duration::from_secs(300)),
        drain_grace_period: cx.duration(
            up.drain_grace_period.as_ref(),
            &path.key("drainGracePeriod"),
            Duration::from_secs(120),
        ),
        keep_cordoned: false,
        skip_blocked: false,
    }
}

/// `cluster.timeouts`.
fn timeouts(cx: &mut Ctx<'_>, timeouts: RawTimeouts, path: &FieldPath) -> Timeouts {
    Timeouts {
        command: cx.positive_duration(timeouts.command.as_ref(), &path.key("command"), Duration::from_secs(30 * 60)),
        ready: cx.positive_duration(timeouts.ready.as_ref(), &path.key("ready"), Duration::from_secs(10 * 60)),
    }
}

fn is_package_name(s: &str) -> bool {
    s.len() >= 2
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        && s.as_bytes()[0].is_ascii_alphanumeric()
}

fn parse_major_minor(s: &str) -> Option<(u32, u32)> {
    let mut parts = s.strip_prefix('v').unwrap_or(s).split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some((major, minor)),
        Some(patch) if patch.parse::<u32>().is_ok() && parts.next().is_none() => Some((major, minor)),
        Some(_) => None,
    }
}

fn parse_max_unavailable(s: &str) -> Option<MaxUnavailable> {
    match s.strip_suffix('%') {
        Some(p) => p.parse::<u8>().ok().filter(|p| (1..=100).contains(p)).map(MaxUnavailable::Percent),
        None => s.parse::<u32>().ok().filter(|n| *n >= 1).map(MaxUnavailable::Count),
    }
}

fn kubernetes_version(cx: &mut Ctx<'_>, value: Option<&Scalar>, path: &FieldPath) -> Option<Version> {
    let Some(value) = value else {
        cx.missing(
            path,
            "a Kubernetes version such as `1.31.4`",
            "add `kubernetesVersion: 1.31.4` (kubeadm, kubelet and kubectl are installed at exactly this version)",
        );
        return None;
    };
    let supported = format!("1.{MIN_SUPPORTED_MINOR}.0 to 1.{MAX_SUPPORTED_MINOR}.x");
    let version: Version = match value.0.parse() {
        Ok(v) => v,
        Err(_) => {
            let hint = if value.0.matches('.').count() == 1 {
                format!("give the patch release too, e.g. `{}.0`", value.0.trim_start_matches('v'))
            } else {
                "write MAJOR.MINOR.PATCH, e.g. `1.31.4`".into()
            };
            cx.push(
                path,
                Diagnostic::error("", format!("invalid Kubernetes version `{}`", printable(&value.0)))
                    .expected(format!("an exact release from {supported}"))
                    .hint(hint),
            );
            return None;
        }
    };
    if !version.is_supported_kubernetes() {
        let hint = if version.major == 1 && version.minor < MIN_SUPPORTED_MINOR {
            format!(
                "kubeadm {}.{} is past end of life; install 1.{MIN_SUPPORTED_MINOR} or newer, or upgrade the cluster with the kubeadm it was built with first",
                version.major, version.minor
            )
        } else {
            format!("kubewright knows kubeadm up to 1.{MAX_SUPPORTED_MINOR}; use a newer kubewright for later releases")
        };
        cx.push(
            path,
            Diagnostic::error("", format!("Kubernetes {version} is not supported"))
                .expected(format!("a release from {supported}"))
                .hint(hint),
        );
        return None;
    }
    Some(version)
}

/// The endpoint when the inventory names none: the first control plane's node IP (its
/// interface's placeholder until that is read), else its SSH address.
pub(crate) fn default_endpoint_host(first_control_plane: &Host) -> String {
    first_control_plane.node_address().unwrap_or_else(|| first_control_plane.address.clone())
}

fn endpoint(cx: &mut Ctx<'_>, value: Option<&Scalar>, path: &FieldPath, hosts: &[Host]) -> Option<Endpoint> {
    let Some(value) = value else {
        // Default: the first control plane's node IP (or address) on the API server port.
        let first = hosts.iter().find(|h| h.is_control_plane())?;
        return Some(Endpoint { host: default_endpoint_host(first), port: 6443, explicit: false });
    };
    let expected = "HOST:PORT with an IP address or DNS name, e.g. `10.0.0.100:6443` or `k8s-api.example.com:6443`";
    let (host, port) = match value.0.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') || h.starts_with('[') => {
            (h.trim_start_matches('[').trim_end_matches(']'), Some(p))
        }
        _ => (value.0.as_str(), None),
    };
    let port = match port {
        None => Some(6443),
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p > 0 => Some(p),
            _ => None,
        },
    };
    match (is_address(host), port) {
        (true, Some(port)) => Some(Endpoint { host: host.to_string(), port, explicit: true }),
        _ => {
            cx.push(
                path,
                Diagnostic::error("", format!("invalid control-plane endpoint `{}`", printable(&value.0)))
                    .expected(expected),
            );
            None
        }
    }
}

/// Checks that need the whole inventory: uniqueness, roles, quorum and address plans.
fn cross_checks(cx: &mut Ctx<'_>, cluster: &Cluster, hosts: &[Host]) {
    let hosts_path = FieldPath::root().key("hosts");

    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ssh_targets: HashMap<(String, u16), usize> = HashMap::new();
    let mut node_ips: HashMap<IpAddr, usize> = HashMap::new();
    for (i, h) in hosts.iter().enumerate() {
        let hpath = hosts_path.index(i);
        if let Some(first) = names.insert(&h.name, i) {
            cx.push(
                &hpath.key("name"),
                Diagnostic::error("", format!("duplicate host name `{}` (also hosts[{first}])", h.name))
                    .hint("node names must be unique in a cluster; rename one of the hosts"),
            );
        }
        if h.address.is_empty() {
            continue;
        }
        if let Some(first) = ssh_targets.insert((h.address.to_ascii_lowercase(), h.ssh.port), i) {
            cx.push(
                &hpath.key("address"),
                Diagnostic::error(
                    "",
                    format!("duplicate address `{}:{}` (also hosts[{first}])", h.address, h.ssh.port),
                )
                .hint("two hosts cannot share one SSH endpoint; give each its own address or port"),
            );
        }
        if let Some(ip) = h.node_ip()
            && let Some(first) = node_ips.insert(ip, i)
        {
            let field = if h.internal_address.is_some() { "internalAddress" } else { "address" };
            cx.push(&hpath.key(field), Diagnostic::error("", format!("duplicate node IP `{ip}` (also hosts[{first}])")).hint("every node needs its own IP; behind NAT (Vagrant, port forwards) set `internalAddress` to the node's private IP"));
        }
    }

    let control_planes: Vec<(usize, &Host)> = hosts.iter().enumerate().filter(|(_, h)| h.is_control_plane()).collect();
    if !hosts.is_empty() && control_planes.is_empty() && hosts.iter().all(|h| !h.roles.is_empty()) {
        cx.push(
            &hosts_path,
            Diagnostic::error("", "no host has the `control-plane` role")
                .expected("at least one control plane; 1, 3 or 5 for etcd quorum")
                .hint("add `control-plane` to the roles of the host that should run `kubeadm init`"),
        );
    }
    if control_planes.len() > 1 && control_planes.len().is_multiple_of(2) {
        cx.push(
            &hosts_path,
            Diagnostic::warning(
                "",
                format!(
                    "{} control planes: an even etcd member count tolerates no more failures than {}",
                    control_planes.len(),
                    control_planes.len() - 1
                ),
            )
            .hint(format!(
                "etcd needs a majority ({} of {}); use {} or {} control planes",
                control_planes.len() / 2 + 1,
                control_planes.len(),
                control_planes.len() - 1,
                control_planes.len() + 1
            )),
        );
    }
    for (i, h) in &control_planes {
        if h.node_ip().is_none() && h.internal_interface.is_none() && !h.address.is_empty() {
            cx.push(&hosts_path.index(*i).key("internalAddress"), Diagnostic::error("", format!("control plane `{}` has no IP address", h.name))
                .expected("an IP in `address` or `internalAddress`")
                .hint("the API server and etcd advertise an IP; set `internalAddress` to the node's cluster-facing IP"));
        }
    }

    let net = &cluster.network;
    let net_path = FieldPath::root().key("cluster").key("network");
    if net.pod_subnet.contains(&net.service_subnet.network()) || net.service_subnet.contains(&net.pod_subnet.network())
    {
        cx.push(
            &net_path.key("serviceSubnet"),
            Diagnostic::error(
                "",
                format!("service subnet {} overlaps pod subnet {}", net.service_subnet, net.pod_subnet),
            )
            .hint("pods and services need disjoint ranges, e.g. pods 10.244.0.0/16 and services 10.96.0.0/12"),
        );
    }
    if net.service_subnet.prefix_len() < 12 {
        cx.push(
            &net_path.key("serviceSubnet"),
            Diagnostic::error("", format!("service subnet {} is too large", net.service_subnet))
                .expected("a prefix of /12 or longer (kube-apiserver refuses larger IPv4 service ranges)"),
        );
    }
    for (i, h) in hosts.iter().enumerate() {
        let ips = [h.address.parse::<IpAddr>().ok(), h.internal_address];
        for ip in ips.into_iter().flatten() {
            let IpAddr::V4(v4) = ip else { continue };
            for (subnet, field) in [(net.pod_subnet, "podSubnet"), (net.service_subnet, "serviceSubnet")] {
                if subnet.contains(&v4) {
                    cx.push(
                        &hosts_path.index(i),
                        Diagnostic::error(
                            "",
                            format!("host `{}` address {v4} lies inside the {field} {subnet}", h.name),
                        )
                        .hint(format!("choose a `cluster.network.{field}` that does not overlap the hosts' network")),
                    );
                }
            }
        }
    }
    let node_ranges: u128 = 1u128 << (net.node_cidr_mask_size - net.pod_subnet.prefix_len()).min(64);
    if (hosts.len() as u128) > node_ranges {
        cx.push(&net_path.key("podSubnet"), Diagnostic::error("", format!("pod subnet {} holds {node_ranges} node range{} of /{} but the inventory has {} hosts", net.pod_subnet, if node_ranges == 1 { "" } else { "s" }, net.node_cidr_mask_size, hosts.len()))
            .hint("use a larger pod subnet or a longer `nodeCidrMaskSize`; the controller manager cannot give the extra nodes a pod range"));
    }
    let pods_per_node = (1u32 << (32 - net.node_cidr_mask_size as u32)).saturating_sub(2);
    if pods_per_node < KUBELET_MAX_PODS {
        cx.push(&net_path.key("nodeCidrMaskSize"), Diagnostic::warning("", format!("a /{} node range has {pods_per_node} pod addresses, fewer than the kubelet's default of {KUBELET_MAX_PODS} pods", net.node_cidr_mask_size))
            .hint("use a mask of /25 or shorter so that every node can run 110 pods"));
    }
    if cluster.flannel.backend == FlannelBackend::HostGw && hosts.len() > 1 {
        cx.push(
            &FieldPath::root().key("cluster").key("cni").key("flannel").key("backend"),
            Diagnostic::warning("", "the host-gw backend routes pod traffic directly between nodes")
                .hint("it works only when all nodes share one L2 segment; use `vxlan` across routers"),
        );
    }
    if control_planes.len() > 1
        && !cluster.load_balancer.is_local()
        && !cluster.control_plane_endpoint.explicit
        && !cluster.control_plane_endpoint.host.is_empty()
    {
        cx.push(&FieldPath::root().key("cluster").key("controlPlaneEndpoint"), Diagnostic::warning("", format!("{} control planes but no `controlPlaneEndpoint`: the API endpoint defaults to `{}`", control_planes.len(), cluster.control_plane_endpoint))
            .hint("if that node goes down the cluster loses its API endpoint, and it cannot be changed after `kubeadm init`; point it at a load balancer or VIP, or set `loadBalancer: {type: local}`"));
    }
}
