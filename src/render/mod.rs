//! Renders the files kubewright writes on each host from the inventory and templates.
//!
//! Templates are embedded in the binary and can be replaced one by one from a directory
//! (`--templates DIR`). They produce configuration files only, never shell: commands are
//! built with [`crate::script::Script`]. Every inventory value reaches a template through a
//! quoting filter (`yaml`, `toml`, `json`), on top of the inventory's own syntax checks.

mod sysctl;

pub use sysctl::values as sysctl_values;

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;
use serde_json::json;

use crate::inventory::{Host, Inventory, LoadBalancer, Role, TaintEffect};

/// Templates built into the binary: name → text.
const BUILTIN: &[(&str, &str)] = &[
    ("kubeadm-init.yaml.j2", include_str!("../../templates/kubeadm-init.yaml.j2")),
    ("kubeadm-join.yaml.j2", include_str!("../../templates/kubeadm-join.yaml.j2")),
    ("kubeadm-join-credentials.yaml.j2", include_str!("../../templates/kubeadm-join-credentials.yaml.j2")),
    ("kubeadm-macros.j2", include_str!("../../templates/kubeadm-macros.j2")),
    ("containerd-config.toml.j2", include_str!("../../templates/containerd-config.toml.j2")),
    ("containerd-hosts.toml.j2", include_str!("../../templates/containerd-hosts.toml.j2")),
    ("sysctl.conf.j2", include_str!("../../templates/sysctl.conf.j2")),
    ("modules-load.conf.j2", include_str!("../../templates/modules-load.conf.j2")),
    ("crictl.yaml.j2", include_str!("../../templates/crictl.yaml.j2")),
    ("kubernetes.list.j2", include_str!("../../templates/kubernetes.list.j2")),
    ("kube-flannel.yaml.j2", include_str!("../../templates/kube-flannel.yaml.j2")),
    ("api-proxy.cfg.j2", include_str!("../../templates/api-proxy.cfg.j2")),
    ("api-proxy.yaml.j2", include_str!("../../templates/api-proxy.yaml.j2")),
    ("bootstrap-kubelet.conf.j2", include_str!("../../templates/bootstrap-kubelet.conf.j2")),
];

/// Where kubewright keeps the files it hands to kubeadm and kubectl on a host.
pub const STATE_DIR: &str = "/etc/kubewright";
pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-kubewright.conf";
pub const KUBEADM_INIT_CONFIG: &str = "/etc/kubewright/kubeadm-init.yaml";
pub const KUBEADM_JOIN_CONFIG: &str = "/etc/kubewright/kubeadm-join.yaml";
pub const KUBEADM_JOIN_CREDENTIALS: &str = "/etc/kubewright/kubeadm-join-credentials.yaml";
pub const FLANNEL_MANIFEST: &str = "/etc/kubewright/kube-flannel.yaml";
/// The kubelet's bootstrap kubeconfig (kubeadm's path), written only while a kubelet whose
/// client certificate expired gets a new one.
pub const BOOTSTRAP_KUBECONFIG: &str = "/etc/kubernetes/bootstrap-kubelet.conf";
/// The local API proxy of a worker (`loadBalancer.type: local`): its haproxy configuration
/// and the static pod the kubelet runs it as.
pub const API_PROXY_CONFIG: &str = "/etc/kubewright/api-proxy.cfg";
pub const API_PROXY_MANIFEST: &str = "/etc/kubernetes/manifests/kubewright-api-proxy.yaml";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("unknown template override `{name}`")]
    UnknownOverride { name: String, known: Vec<String> },
    #[error("template `{name}` failed to render: {detail}")]
    Template { name: String, detail: String },
}

impl RenderError {
    /// What to do about it.
    pub fn hint(&self) -> String {
        match self {
            RenderError::UnknownOverride { known, .. } => format!("template names are: {}", known.join(", ")),
            RenderError::Template { .. } => {
                "fix the template; it is rendered with strict undefined-variable checks (`kubewright render` shows the output)".into()
            }
        }
    }

    fn template(err: minijinja::Error) -> Self {
        let name = err.name().unwrap_or("?").to_string();
        let line = err.line().map(|l| format!(" (line {l})")).unwrap_or_default();
        let what = err.detail().map(str::to_string).unwrap_or_else(|| err.kind().to_string());
        RenderError::Template { name, detail: format!("{what}{line}") }
    }
}

/// What a rendered file is for; steps pick the files they own by kind.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", content = "registry", rename_all = "kebab-case")]
pub enum FileKind {
    ModulesLoad,
    Sysctl,
    AptSource,
    ContainerdConfig,
    ContainerdHosts(String),
    Crictl,
    KubeadmInit,
    KubeadmJoin,
    KubeadmJoinCredentials,
    FlannelManifest,
    ApiProxyConfig,
    ApiProxyManifest,
    /// The kubelet's bootstrap kubeconfig with the run's token ([`BOOTSTRAP_KUBECONFIG`]).
    BootstrapKubeconfig,
    /// A cluster CA (or the service-account key pair) made on the bastion (`certs init-ca`),
    /// put in place before `kubeadm init`.
    ClusterCa,
}

/// The CA files `certs init-ca` makes, relative to the bastion's `<state dir>/pki`, and where
/// kubeadm looks for them (`/etc/kubernetes/pki/...`, the same relative path).
pub const CLUSTER_CA_FILES: &[&str] =
    &["ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "front-proxy-ca.crt", "front-proxy-ca.key", "sa.key", "sa.pub"];

/// Every host's files, rendered with placeholders for the run's secrets, plus on the first
/// control plane the CAs the bastion made with `certs init-ca` (`cluster_cas`: file name under
/// `pki/` → content), if it did.
pub fn host_files(
    inv: &Inventory,
    templates: &Templates,
    cluster_cas: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, Vec<RemoteFile>>, RenderError> {
    let mut files = BTreeMap::new();
    for host in &inv.hosts {
        files.insert(host.name.clone(), templates.render_host(inv, host, &Secrets::placeholders())?);
    }
    if !cluster_cas.is_empty() {
        files.entry(inv.first_control_plane().name.clone()).or_default().extend(cluster_ca_files(cluster_cas));
    }
    Ok(files)
}

/// The paths of the files kubewright manages, per host (whose content the facts include). Not
/// the cluster CAs: they are only ever written before `kubeadm init`, and their keys are not
/// read back from the hosts.
pub fn managed_paths(files: &BTreeMap<String, Vec<RemoteFile>>) -> BTreeMap<String, Vec<String>> {
    files
        .iter()
        .map(|(host, fs)| {
            let paths = fs.iter().filter(|f| f.kind != FileKind::ClusterCa).map(|f| f.path.clone());
            (host.clone(), paths.collect())
        })
        .collect()
}

/// The bastion's CA files (`pki/` of the state directory: name → content) as the files the
/// first control plane gets; keys are private (0600, never shown).
pub fn cluster_ca_files(found: &BTreeMap<String, String>) -> Vec<RemoteFile> {
    CLUSTER_CA_FILES
        .iter()
        .filter_map(|name| {
            let content = found.get(*name)?;
            let private = name.ends_with(".key");
            Some(RemoteFile {
                kind: FileKind::ClusterCa,
                path: format!("/etc/kubernetes/pki/{name}"),
                mode: if private { 0o600 } else { 0o644 },
                owner: "root:root".into(),
                content: content.clone(),
                sensitive: private,
                transient: false,
            })
        })
        .collect()
}

/// A file as it must exist on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteFile {
    pub kind: FileKind,
    pub path: String,
    pub mode: u32,
    pub owner: String,
    pub content: String,
    /// Holds secrets at run time (tokens, keys): never shown in diffs or logs.
    pub sensitive: bool,
    /// Written for one command and removed right after it, so secrets do not stay on disk.
    pub transient: bool,
}

/// Values only known at run time. The planner renders with [`Secrets::placeholders`]; the
/// executor renders again with the real values right before writing the file.
#[derive(Clone, Serialize)]
pub struct Secrets {
    pub bootstrap_token: String,
    pub certificate_key: String,
    pub ca_cert_hashes: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(<redacted>)")
    }
}

impl Secrets {
    pub fn placeholders() -> Self {
        Secrets {
            bootstrap_token: "<bootstrap-token>".into(),
            certificate_key: "<certificate-key>".into(),
            ca_cert_hashes: vec!["<ca-cert-hash>".into()],
        }
    }
}

/// A loaded template set.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// The built-in templates, with `overrides` (name → text) replacing some of them.
    /// An override with a name kubewright does not know is an error (likely a typo).
    pub fn new(overrides: BTreeMap<String, String>) -> Result<Self, RenderError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build().unwrap_or_default(),
        );
        env.add_filter("yaml", filter_json);
        env.add_filter("json", filter_json);
        env.add_filter("toml", filter_toml);
        for (name, text) in BUILTIN {
            env.add_template(name, text).map_err(RenderError::template)?;
        }
        for (name, text) in overrides {
            if !BUILTIN.iter().any(|(n, _)| *n == name) {
                return Err(RenderError::UnknownOverride { name, known: Self::names() });
            }
            env.add_template_owned(name, text).map_err(RenderError::template)?;
        }
        Ok(Templates { env })
    }

    pub fn builtin() -> Self {
        // The built-in set is compiled in and covered by tests: it always loads.
        match Self::new(BTreeMap::new()) {
            Ok(t) => t,
            Err(e) => unreachable!("built-in templates do not load: {e}"),
        }
    }

    pub fn names() -> Vec<String> {
        BUILTIN.iter().map(|(n, _)| n.to_string()).collect()
    }

    fn render(&self, name: &str, ctx: &serde_json::Value) -> Result<String, RenderError> {
        let tmpl = self.env.get_template(name).map_err(RenderError::template)?;
        let mut out = tmpl.render(Value::from(minijinja::value::Serde(ctx))).map_err(RenderError::template)?;
        if !out.ends_with('\n') {
            out.push('\n');
        }
        Ok(out)
    }

    /// Every file kubewright manages on `host`, in a stable order.
    pub fn render_host(&self, inv: &Inventory, host: &Host, secrets: &Secrets) -> Result<Vec<RemoteFile>, RenderError> {
        let ctx = context(inv, host, secrets);
        let file = |kind, path: &str, mode, content, secret: bool| RemoteFile {
            kind,
            path: path.to_string(),
            mode,
            owner: "root:root".into(),
            content,
            sensitive: secret,
            transient: secret,
        };
        let mut files = vec![
            file(
                FileKind::ModulesLoad,
                "/etc/modules-load.d/kubewright.conf",
                0o644,
                self.render("modules-load.conf.j2", &ctx)?,
                false,
            ),
            file(FileKind::Sysctl, SYSCTL_FILE, 0o644, self.render("sysctl.conf.j2", &ctx)?, false),
        ];
        if inv.cluster.packages.manage_repository {
            files.push(file(
                FileKind::AptSource,
                "/etc/apt/sources.list.d/kubernetes.list",
                0o644,
                self.render("kubernetes.list.j2", &ctx)?,
                false,
            ));
        }
        files.push(file(
            FileKind::ContainerdConfig,
            "/etc/containerd/config.toml",
            0o644,
            self.render("containerd-config.toml.j2", &ctx)?,
            false,
        ));
        for (registry, mirrors) in &inv.cluster.containerd.registry_mirrors {
            let mut reg_ctx = ctx.clone();
            reg_ctx["registry"] = json!({
                "name": registry,
                "server": registry_server(registry),
                "mirrors": mirrors,
            });
            let path = format!("/etc/containerd/certs.d/{registry}/hosts.toml");
            files.push(file(
                FileKind::ContainerdHosts(registry.clone()),
                &path,
                0o644,
                self.render("containerd-hosts.toml.j2", &reg_ctx)?,
                false,
            ));
        }
        files.push(file(FileKind::Crictl, "/etc/crictl.yaml", 0o644, self.render("crictl.yaml.j2", &ctx)?, false));
        if std::ptr::eq(host, inv.first_control_plane()) {
            files.push(file(
                FileKind::KubeadmInit,
                KUBEADM_INIT_CONFIG,
                0o600,
                self.render("kubeadm-init.yaml.j2", &ctx)?,
                true,
            ));
            files.push(file(
                FileKind::KubeadmJoinCredentials,
                KUBEADM_JOIN_CREDENTIALS,
                0o600,
                self.render("kubeadm-join-credentials.yaml.j2", &ctx)?,
                true,
            ));
            files.push(file(
                FileKind::FlannelManifest,
                FLANNEL_MANIFEST,
                0o644,
                self.render("kube-flannel.yaml.j2", &ctx)?,
                false,
            ));
        } else {
            files.push(file(
                FileKind::KubeadmJoin,
                KUBEADM_JOIN_CONFIG,
                0o600,
                self.render("kubeadm-join.yaml.j2", &ctx)?,
                true,
            ));
        }
        files.push(file(
            FileKind::BootstrapKubeconfig,
            BOOTSTRAP_KUBECONFIG,
            0o600,
            self.render("bootstrap-kubelet.conf.j2", &ctx)?,
            true,
        ));
        // Control planes reach their own API server; only workers need the proxy.
        if let LoadBalancer::Local { image } = &inv.cluster.load_balancer
            && !host.is_control_plane()
        {
            let mut proxy_ctx = ctx.clone();
            proxy_ctx["api_proxy"] = json!({
                "port": inv.cluster.control_plane_endpoint.port,
                "image": image,
                "config_path": API_PROXY_CONFIG,
                "control_planes": inv.control_planes().map(|cp| json!({
                    "name": cp.name,
                    "address": cp.node_address().unwrap_or_else(|| cp.address.clone()),
                })).collect::<Vec<_>>(),
            });
            let config = self.render("api-proxy.cfg.j2", &proxy_ctx)?;
            proxy_ctx["api_proxy"]["config_sha256"] = json!(crate::pki::sha256_hex(config.as_bytes()));
            let manifest = self.render("api-proxy.yaml.j2", &proxy_ctx)?;
            files.push(file(FileKind::ApiProxyConfig, API_PROXY_CONFIG, 0o644, config, false));
            files.push(file(FileKind::ApiProxyManifest, API_PROXY_MANIFEST, 0o644, manifest, false));
        }
        Ok(files)
    }
}

/// The upstream server of a registry in containerd's hosts.toml (containerd docs/hosts.md:
/// Docker Hub's API lives at registry-1.docker.io).
fn registry_server(registry: &str) -> String {
    match registry {
        "docker.io" => "https://registry-1.docker.io".into(),
        other => format!("https://{other}"),
    }
}

fn context(inv: &Inventory, host: &Host, secrets: &Secrets) -> serde_json::Value {
    let c = &inv.cluster;
    let version = c.kubernetes_version;

    let mut kubelet_args = BTreeMap::new();
    if let Some(ip) = host.node_address() {
        kubelet_args.insert("node-ip".to_string(), ip);
    }
    if !host.labels.is_empty() {
        let labels: Vec<String> = host.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        kubelet_args.insert("node-labels".to_string(), labels.join(","));
    }

    let user_taints: Vec<serde_json::Value> = host.taints.iter().map(taint_json).collect();
    // kubeadm: `taints: null` means "default" (the control-plane taint on control planes,
    // none on workers); a list replaces the default, so keep the control-plane taint in it.
    let taints = match (host.is_control_plane(), host.is_worker(), user_taints.is_empty()) {
        (_, _, true) if !host.is_control_plane() || !host.is_worker() => serde_json::Value::Null,
        (true, false, false) => {
            let mut all =
                vec![json!({"key": "node-role.kubernetes.io/control-plane", "value": null, "effect": "NoSchedule"})];
            all.extend(user_taints);
            serde_json::Value::Array(all)
        }
        _ => serde_json::Value::Array(user_taints),
    };

    let mut interfaces: Vec<String> = inv.hosts.iter().filter_map(|h| h.flannel_interface.clone()).collect();
    interfaces.extend(c.flannel.interface.clone());
    // A node IP read from an interface names the network the nodes share: flannel goes there
    // too unless told otherwise (without --iface it takes the default route's, the NAT one
    // on a Vagrant machine).
    interfaces.extend(inv.hosts.iter().filter_map(|h| h.internal_interface.clone()));
    let mut seen = std::collections::BTreeSet::new();
    interfaces.retain(|i| seen.insert(i.clone()));

    json!({
        "cluster": {
            "name": c.name,
            "kubernetes_version": version.to_string(),
            "kubernetes_minor": version.minor_channel(),
            "control_plane_endpoint": c.control_plane_endpoint.to_string(),
            "network": {
                "pod_subnet": c.network.pod_subnet.to_string(),
                "service_subnet": c.network.service_subnet.to_string(),
                "node_cidr_mask_size": c.network.node_cidr_mask_size,
                "dns_domain": c.network.dns_domain,
            },
        },
        "kubeadm": {
            "api_version": version.kubeadm_api().api_version(),
            // kubewright joins every node right after init; a short-lived token limits exposure.
            "token_ttl": "2h0m0s",
            "cgroup_driver": if c.containerd.systemd_cgroup { "systemd" } else { "cgroupfs" },
        },
        "host": {
            "name": host.name,
            "node_ip": host.node_address(),
            "is_control_plane": host.roles.contains(&Role::ControlPlane),
            "kubelet_args": kubelet_args,
            "taints": taints,
        },
        "secrets": secrets,
        "containerd": {
            "config_version": c.containerd.config_version(),
            "sandbox_image": c.containerd.sandbox_image,
            "systemd_cgroup": c.containerd.systemd_cgroup,
        },
        "flannel": {
            "backend": c.flannel.backend.net_conf_type(),
            "version": c.flannel.version,
            "cni_plugin_version": c.flannel.cni_plugin_version,
            "interfaces": interfaces,
        },
        "packages": {
            "repository_url": format!("{}/core:/stable:/{}/deb/", c.packages.mirror, version.minor_channel()),
        },
        "sysctl_sections": sysctl::sections(c, host),
    })
}

fn taint_json(t: &crate::inventory::Taint) -> serde_json::Value {
    let effect = match t.effect {
        TaintEffect::NoSchedule => "NoSchedule",
        TaintEffect::PreferNoSchedule => "PreferNoSchedule",
        TaintEffect::NoExecute => "NoExecute",
    };
    json!({"key": t.key, "value": t.value, "effect": effect})
}

/// `yaml`/`json` filter: a JSON literal, which is also a valid YAML flow scalar. Strings
/// become double-quoted with escapes, so no value can start a new key or document.
fn filter_json(value: Value) -> Result<String, minijinja::Error> {
    serde_json::to_string(&value)
        .map_err(|e| minijinja::Error::new(minijinja::ErrorKind::BadSerialization, e.to_string()))
}

/// `toml` filter: a TOML basic string, boolean or integer.
fn filter_toml(value: Value) -> Result<String, minijinja::Error> {
    if value.kind() == minijinja::value::ValueKind::Bool {
        return Ok(value.is_true().to_string());
    }
    if value.kind() == minijinja::value::ValueKind::Number {
        return Ok(value.to_string());
    }
    let Some(s) = value.as_str() else {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("toml filter: cannot write {} as a TOML value", value.kind()),
        ));
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_filter_escapes_hostile_strings() {
        let out = filter_toml(Value::from("a\"]\n[evil]\\")).unwrap();
        assert_eq!(out, r#""a\"]\n[evil]\\""#);
        assert_eq!(filter_toml(Value::from(true)).unwrap(), "true");
        assert_eq!(filter_toml(Value::from(3)).unwrap(), "3");
    }

    #[test]
    fn yaml_filter_quotes_strings() {
        assert_eq!(filter_json(Value::from("x\nkind: Evil")).unwrap(), r#""x\nkind: Evil""#);
    }

    #[test]
    fn unknown_override_is_an_error() {
        let overrides = BTreeMap::from([("kubeadm-inti.yaml.j2".to_string(), String::new())]);
        assert!(matches!(Templates::new(overrides), Err(RenderError::UnknownOverride { .. })));
    }
}
