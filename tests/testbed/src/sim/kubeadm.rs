//! kubeadm: version, init, join, token create. Texts follow kubeadm-behaviour.md (§ numbers
//! below) and the k/k files it cites; version differences inside 1.29–1.33 are kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use serde_json::Value;

use super::Outcome;
use super::cluster::{Cluster, Node, Token, UploadedCerts, now_unix, read_cluster, with_cluster};
use super::host::{HostState, with_host};
use super::pki::{self, Leaf, Pair};

pub const PKI: &str = "/etc/kubernetes/pki";
const CRI_SOCKET: &str = "unix:///var/run/containerd/containerd.sock";

/// A Kubernetes version as kubeadm handles it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct V {
    pub minor: u32,
    pub patch: u32,
}

impl V {
    pub fn parse(s: &str) -> Option<V> {
        let s = s.trim().trim_start_matches('v');
        let s = s.split('-').next()?;
        let mut it = s.split('.');
        if it.next()? != "1" {
            return None;
        }
        Some(V { minor: it.next()?.parse().ok()?, patch: it.next()?.parse().ok()? })
    }
}

impl std::fmt::Display for V {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "v1.{}.{}", self.minor, self.patch)
    }
}

/// The version of an installed package (kubeadm, kubelet, kubectl) on this host.
pub fn installed(state: &HostState, package: &str) -> Option<V> {
    state.packages.get(package).and_then(|p| V::parse(&p.version))
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let eq = format!("{name}=");
    args.iter().enumerate().find_map(
        |(i, a)| {
            if a == name { args.get(i + 1).map(String::as_str) } else { a.strip_prefix(&eq) }
        },
    )
}

fn flags<'a>(args: &'a [String], name: &str) -> Vec<&'a str> {
    let eq = format!("{name}=");
    let mut out = Vec::new();
    for (i, a) in args.iter().enumerate() {
        if a == name {
            if let Some(v) = args.get(i + 1) {
                out.push(v.as_str());
            }
        } else if let Some(v) = a.strip_prefix(&eq) {
            out.push(v);
        }
    }
    out
}

fn has(args: &[String], name: &str) -> bool {
    args.iter().any(|a| a == name || a.starts_with(&format!("{name}=")))
}

/// kubeadm's generic error tail (k/k cmd/kubeadm/app/util/error.go).
fn fatal(msg: &str) -> Outcome {
    Outcome::fail(1, format!("{msg}\nTo see the stack trace of this error execute with --v=5 or higher\n"))
}

pub fn kubeadm(args: &[String]) -> anyhow::Result<Outcome> {
    let version = with_host(|s| Ok(installed(s, "kubeadm")))?.context("kubeadm is not installed on this host")?;
    match args.first().map(String::as_str) {
        Some("version") => Ok(version_cmd(version, args)),
        Some("init") if args.get(1).is_some_and(|a| a == "phase") => init_phase(version, &args[2..]),
        Some("init") => init(version, &args[1..]),
        Some("join") => join(version, &args[1..]),
        Some("token") => token(version, &args[1..]),
        Some("certs") => super::certs::certs(version, &args[1..]),
        Some("upgrade") => super::upgrade::upgrade(version, &args[1..]),
        Some("reset") => reset(&args[1..]),
        Some(other) => Ok(Outcome::fail(
            1,
            format!("unknown command \"{other}\" for \"kubeadm\"\nRun 'kubeadm --help' for usage.\n"),
        )),
        None => Ok(Outcome::fail(1, "kubeadm: a command is required\n")),
    }
}

fn version_cmd(v: V, args: &[String]) -> Outcome {
    match flag(args, "-o").or_else(|| flag(args, "--output")) {
        Some("short") => Outcome::ok(format!("{v}\n")),
        Some("json") => Outcome::ok(format!(
            "{{\n  \"clientVersion\": {{\n    \"major\": \"1\",\n    \"minor\": \"{}\",\n    \"gitVersion\": \"{v}\",\n    \"gitTreeState\": \"clean\",\n    \"goVersion\": \"go1.23.6\",\n    \"compiler\": \"gc\",\n    \"platform\": \"linux/amd64\"\n  }}\n}}\n",
            v.minor
        )),
        _ => Outcome::ok(format!(
            "kubeadm version: &version.Info{{Major:\"1\", Minor:\"{}\", GitVersion:\"{v}\", GitCommit:\"0000000000000000000000000000000000000000\", GitTreeState:\"clean\", BuildDate:\"2025-01-01T00:00:00Z\", GoVersion:\"go1.23.6\", Compiler:\"gc\", Platform:\"linux/amd64\"}}\n",
            v.minor
        )),
    }
}

/// Fields each kind accepts, for kubeadm's strict decoding (unknown fields are errors).
/// From k/k cmd/kubeadm/app/apis/kubeadm/{v1beta3,v1beta4}/types.go.
fn known_fields(kind: &str, path: &str, v1beta4: bool) -> Option<&'static [&'static str]> {
    Some(match (kind, path) {
        ("InitConfiguration", "") if v1beta4 => &[
            "apiVersion",
            "kind",
            "bootstrapTokens",
            "dryRun",
            "nodeRegistration",
            "localAPIEndpoint",
            "certificateKey",
            "skipPhases",
            "patches",
            "timeouts",
        ],
        ("InitConfiguration", "") => &[
            "apiVersion",
            "kind",
            "bootstrapTokens",
            "nodeRegistration",
            "localAPIEndpoint",
            "certificateKey",
            "skipPhases",
            "patches",
        ],
        ("ClusterConfiguration", "") if v1beta4 => &[
            "apiVersion",
            "kind",
            "etcd",
            "networking",
            "kubernetesVersion",
            "controlPlaneEndpoint",
            "apiServer",
            "controllerManager",
            "scheduler",
            "dns",
            "proxy",
            "certificatesDir",
            "imageRepository",
            "featureGates",
            "clusterName",
            "encryptionAlgorithm",
            "certificateValidityPeriod",
            "caCertificateValidityPeriod",
        ],
        ("ClusterConfiguration", "") => &[
            "apiVersion",
            "kind",
            "etcd",
            "networking",
            "kubernetesVersion",
            "controlPlaneEndpoint",
            "apiServer",
            "controllerManager",
            "scheduler",
            "dns",
            "certificatesDir",
            "imageRepository",
            "featureGates",
            "clusterName",
        ],
        ("JoinConfiguration", "") if v1beta4 => &[
            "apiVersion",
            "kind",
            "dryRun",
            "nodeRegistration",
            "caCertPath",
            "discovery",
            "controlPlane",
            "skipPhases",
            "patches",
            "timeouts",
        ],
        ("JoinConfiguration", "") => &[
            "apiVersion",
            "kind",
            "nodeRegistration",
            "caCertPath",
            "discovery",
            "controlPlane",
            "skipPhases",
            "patches",
        ],
        (_, "nodeRegistration") if v1beta4 => &[
            "name",
            "criSocket",
            "taints",
            "kubeletExtraArgs",
            "ignorePreflightErrors",
            "imagePullPolicy",
            "imagePullSerial",
        ],
        (_, "nodeRegistration") => {
            &["name", "criSocket", "taints", "kubeletExtraArgs", "ignorePreflightErrors", "imagePullPolicy"]
        }
        (_, "localAPIEndpoint") | (_, "controlPlane.localAPIEndpoint") => &["advertiseAddress", "bindPort"],
        (_, "networking") => &["serviceSubnet", "podSubnet", "dnsDomain"],
        (_, "discovery") if v1beta4 => &["bootstrapToken", "file", "tlsBootstrapToken"],
        (_, "discovery") => &["bootstrapToken", "file", "tlsBootstrapToken", "timeout"],
        (_, "discovery.bootstrapToken") => &["token", "apiServerEndpoint", "caCertHashes", "unsafeSkipCAVerification"],
        (_, "controlPlane") => &["localAPIEndpoint", "certificateKey"],
        _ => return None,
    })
}

fn strict_check(kind: &str, doc: &Value, path: &str, v1beta4: bool, group_version: &str) -> Result<(), String> {
    let Some(map) = doc.as_object() else { return Ok(()) };
    if let Some(fields) = known_fields(kind, path, v1beta4) {
        for key in map.keys() {
            if !fields.contains(&key.as_str()) {
                let field = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                let (group, version) = group_version.split_once('/').unwrap_or(("", group_version));
                return Err(format!(
                    "error unmarshaling configuration schema.GroupVersionKind{{Group:\"{group}\", Version:\"{version}\", Kind:\"{kind}\"}}: strict decoding error: unknown field \"{field}\""
                ));
            }
        }
    }
    for (key, value) in map {
        let child = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
        if value.is_object() {
            strict_check(kind, value, &child, v1beta4, group_version)?;
        }
    }
    Ok(())
}

/// Read a kubeadm config file: the documents by kind, checked the way kubeadm does.
fn read_config(path: &str, kubeadm: V) -> Result<BTreeMap<String, Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("unable to read config from \"{path}\" : open {path}: {e}"))?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).map_err(|e| format!("error converting YAML to JSON: {e}"))?;
    let mut out = BTreeMap::new();
    for doc in docs {
        let api = doc["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = doc["kind"].as_str().unwrap_or("").to_string();
        if api.starts_with("kubeadm.k8s.io/") {
            let supported = match api.as_str() {
                "kubeadm.k8s.io/v1beta3" => kubeadm.minor < 36,
                "kubeadm.k8s.io/v1beta4" => kubeadm.minor >= 31,
                _ => false,
            };
            if !supported {
                // apimachinery's scheme error, as kubeadm prints it.
                return Err(format!(
                    "no kind \"{kind}\" is registered for version \"{api}\" in scheme \"k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme/scheme.go:31\""
                ));
            }
            strict_check(&kind, &doc, "", api.ends_with("v1beta4"), &api)?;
        }
        out.insert(kind, doc);
    }
    Ok(out)
}

struct PreflightIssue {
    name: String,
    message: String,
    error: bool,
}

fn preflight_output(issues: &[PreflightIssue], ignore: &[String], out: &mut Outcome) -> bool {
    let ignored = |name: &str| ignore.iter().any(|i| i.eq_ignore_ascii_case(name) || i == "all");
    let mut errors = String::new();
    for i in issues {
        if i.error && !ignored(&i.name) {
            let _ = writeln!(errors, "\t[ERROR {}]: {}", i.name, i.message);
        } else {
            let _ = writeln!(out.stderr, "\t[WARNING {}]: {}", i.name, i.message);
        }
    }
    if errors.is_empty() {
        return true;
    }
    // checks.go RunChecks + the phase runner's prefix (§2.1).
    let _ = write!(
        out.stderr,
        "error execution phase preflight: [preflight] Some fatal errors occurred:\n{errors}[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\nTo see the stack trace of this error execute with --v=5 or higher\n"
    );
    out.code = 1;
    false
}

/// The checks every node runs (checks.go): root, forwarding, the runtime, the kubelet.
fn common_preflight(state: &HostState, kubeadm: V, control_plane_version: V, init: bool) -> Vec<PreflightIssue> {
    let mut issues = Vec::new();
    let swaps = std::fs::read_to_string("/proc/swaps").unwrap_or_default();
    if swaps.lines().skip(1).any(|l| !l.trim().is_empty()) {
        let message = if kubeadm.minor <= 30 {
            "swap is supported for cgroup v2 only; the NodeSwap feature gate of the kubelet is beta but disabled by default"
        } else {
            "swap is supported for cgroup v2 only. The kubelet must be properly configured to use swap. Please refer to https://kubernetes.io/docs/concepts/architecture/nodes/#swap-memory, or disable swap on the node"
        };
        issues.push(PreflightIssue { name: "Swap".into(), message: message.into(), error: false });
    }
    if !state.units.get("containerd").is_some_and(|u| u.active) {
        issues.push(PreflightIssue {
            name: "CRI".into(),
            message: format!(
                "container runtime is not running: output: time=\"{}\" level=fatal msg=\"validate service connection: validate CRI v1 runtime API for endpoint \\\"{CRI_SOCKET}\\\": rpc error: code = Unavailable desc = connection error: desc = \\\"transport: Error while dialing: dial unix /var/run/containerd/containerd.sock: connect: no such file or directory\\\"\"\n, error: exit status 1",
                "2025-01-01T00:00:00Z"
            ),
            error: true,
        });
    }
    // Executables (checks_linux.go, InPathCheck). crictl: mandatory while kubeadm's CRI check
    // ran it (<= 1.30), a warning in 1.31 (k/k#124685, #125212), gone from 1.32 (k/k#126596).
    // conntrack: for a kube-proxy older than 1.32, which still ran it; kubeadm 1.32 checks the
    // version it deploys (k/k#126953), and join passes it none, so only init asks. The kubelet
    // 1.31.14 package no longer brings conntrack (k/k#135306): a node installs it itself.
    let mut executables = Vec::new();
    if kubeadm.minor <= 31 {
        executables.push(("crictl", kubeadm.minor <= 30));
    }
    if kubeadm.minor <= 31 || (init && control_plane_version.minor < 32) {
        executables.push(("conntrack", true));
    }
    for (tool, error) in executables {
        if !in_path(tool) {
            issues.push(PreflightIssue {
                name: format!("FileExisting-{tool}"),
                message: format!("{tool} not found in system path"),
                error,
            });
        }
    }
    let forward =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim().to_string()).unwrap_or_default();
    if forward != "1" {
        issues.push(PreflightIssue {
            name: "FileContent--proc-sys-net-ipv4-ip_forward".into(),
            message: "/proc/sys/net/ipv4/ip_forward contents are not set to 1".into(),
            error: true,
        });
    }
    match installed(state, "kubelet") {
        Some(k) if k.minor + 3 < kubeadm.minor => issues.push(PreflightIssue { name: "KubeletVersion".into(), message: format!("Kubelet version \"{k}\" is lower than kubeadm can support. Please upgrade kubelet"), error: true }),
        Some(k) if k.minor > control_plane_version.minor => issues.push(PreflightIssue {
            name: "KubeletVersion".into(),
            message: format!("the kubelet version is higher than the control plane version. This is not a supported version skew and may lead to a malfunctional cluster. Kubelet version: \"{k}\" Control plane version: \"{control_plane_version}\""),
            error: true,
        }),
        _ => {}
    }
    if !state.units.get("kubelet").is_some_and(|u| u.enabled) {
        issues.push(PreflightIssue {
            name: "Service-Kubelet".into(),
            message: "kubelet service is not enabled, please run 'systemctl enable kubelet.service'".into(),
            error: false,
        });
    }
    if Path::new("/etc/kubernetes/kubelet.conf").exists() {
        issues.push(PreflightIssue {
            name: "FileAvailable--etc-kubernetes-kubelet.conf".into(),
            message: "/etc/kubernetes/kubelet.conf already exists".into(),
            error: true,
        });
    }
    issues
}

/// Whether `tool` is an executable file in one of PATH's directories (exec.LookPath).
fn in_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':').filter(|d| !d.is_empty()).any(|d| {
        std::fs::metadata(Path::new(d).join(tool)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn not_root(out: &mut Outcome) -> Outcome {
    let _ = out;
    Outcome {
        code: 1,
        stdout: "[preflight] Running pre-flight checks\n".into(),
        stderr: "error execution phase preflight: [preflight] Some fatal errors occurred:\n\t[ERROR IsPrivilegedUser]: user is not running as root\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\nTo see the stack trace of this error execute with --v=5 or higher\n".into(),
    }
}

fn hostname() -> String {
    super::reach::own_name()
}

/// The node's own address: from /etc/hosts (the bed writes every host there).
fn own_ip() -> String {
    let name = hostname();
    std::fs::read_to_string("/etc/hosts")
        .unwrap_or_default()
        .lines()
        .find(|l| l.split_whitespace().skip(1).any(|n| n == name))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("127.0.0.1")
        .to_string()
}

fn random_token() -> Token {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let pick = |n: usize| -> String { (0..n).map(|_| CHARS[rand::random_range(0..CHARS.len())] as char).collect() };
    Token { id: pick(6), secret: pick(16), expires_unix: now_unix() + 86_400 }
}

/// `abcdef.0123456789abcdef` (k/k cluster-bootstrap token/api/types.go BootstrapTokenPattern).
fn parse_token(s: &str) -> Result<(String, String), String> {
    let ok = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    match s.split_once('.') {
        Some((id, secret)) if ok(id, 6) && ok(secret, 16) => Ok((id.to_string(), secret.to_string())),
        _ => Err(format!(
            "the bootstrap token \"{s}\" was not of the form \"\\\\A([a-z0-9]{{6}})\\\\.([a-z0-9]{{16}})\\\\z\""
        )),
    }
}

fn kubelet_args(node_reg: &Value) -> BTreeMap<String, String> {
    let mut args = BTreeMap::new();
    match &node_reg["kubeletExtraArgs"] {
        Value::Object(m) => {
            for (k, v) in m {
                args.insert(k.clone(), v.as_str().unwrap_or("").to_string());
            }
        }
        Value::Array(list) => {
            for a in list {
                args.insert(
                    a["name"].as_str().unwrap_or("").to_string(),
                    a["value"].as_str().unwrap_or("").to_string(),
                );
            }
        }
        _ => {}
    }
    args
}

fn node_taints(node_reg: &Value, control_plane: bool) -> Vec<String> {
    match &node_reg["taints"] {
        Value::Array(list) => list
            .iter()
            .map(|t| match t["value"].as_str() {
                Some(v) => format!("{}={v}:{}", t["key"].as_str().unwrap_or(""), t["effect"].as_str().unwrap_or("")),
                None => format!("{}:{}", t["key"].as_str().unwrap_or(""), t["effect"].as_str().unwrap_or("")),
            })
            .collect(),
        _ if control_plane => vec!["node-role.kubernetes.io/control-plane:NoSchedule".into()],
        _ => Vec::new(),
    }
}

fn write_kubelet_files(v: V, node_reg: &Value, kubelet_config: Option<&Value>) -> anyhow::Result<()> {
    let args = kubelet_args(node_reg);
    let mut flags = format!(
        "--container-runtime-endpoint={CRI_SOCKET} --pod-infra-container-image=registry.k8s.io/pause:{}",
        if v.minor <= 30 { "3.9" } else { "3.10" }
    );
    if let Some(ip) = args.get("node-ip") {
        let _ = write!(flags, " --node-ip={ip}");
    }
    if let Some(labels) = args.get("node-labels") {
        let _ = write!(flags, " --node-labels={labels}");
    }
    pki::write(Path::new("/var/lib/kubelet/kubeadm-flags.env"), &format!("KUBELET_KUBEADM_ARGS=\"{flags}\"\n"), 0o644)?;
    let cgroup = kubelet_config.and_then(|c| c["cgroupDriver"].as_str()).unwrap_or("systemd");
    pki::write(
        Path::new("/var/lib/kubelet/config.yaml"),
        &format!(
            "apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\ncgroupDriver: {cgroup}\nclusterDNS:\n- 10.96.0.10\nclusterDomain: cluster.local\ncontainerRuntimeEndpoint: {CRI_SOCKET}\nrotateCertificates: true\nstaticPodPath: /etc/kubernetes/manifests\n"
        ),
        0o644,
    )
}

/// The kubelet's client certificate after TLS bootstrap, kubelet.conf pointing at it, and its
/// self-signed serving certificate.
fn write_kubelet_identity(ca: &Pair, node: &str, cluster_name: &str, server: &str, now: i64) -> anyhow::Result<()> {
    super::kubelet::write_client_identity(ca, node, cluster_name, server, now)?;
    super::kubelet::write_self_signed_serving(node, now)
}

/// The static pod manifests of a control plane, with the version's image tags. etcd's
/// command carries the flags kubeadm gives it (`etcd.go` in kubeadm's phases): the member's
/// name, data directory and peer URL, and `--initial-cluster` (with `joining`: the members it
/// joins, and `--initial-cluster-state=existing`).
pub fn write_manifests(v: V, advertise: &str, joining: Option<&str>) -> anyhow::Result<()> {
    let name = hostname();
    let peer = format!("https://{advertise}:2380");
    let initial_cluster = match joining {
        Some(members) => format!("{members},{name}={peer}\n    - --initial-cluster-state=existing"),
        None => format!("{name}={peer}"),
    };
    let etcd_command = format!(
        "  - command:\n    - etcd\n    - --advertise-client-urls=https://{advertise}:2379\n    - --cert-file=/etc/kubernetes/pki/etcd/server.crt\n    - --client-cert-auth=true\n    - --data-dir=/var/lib/etcd\n    - --experimental-initial-corrupt-check=true\n    - --experimental-watch-progress-notify-interval=5s\n    - --initial-advertise-peer-urls={peer}\n    - --initial-cluster={initial_cluster}\n    - --key-file=/etc/kubernetes/pki/etcd/server.key\n    - --listen-client-urls=https://127.0.0.1:2379,https://{advertise}:2379\n    - --listen-metrics-urls=http://127.0.0.1:2381\n    - --listen-peer-urls={peer}\n    - --name={name}\n    - --peer-cert-file=/etc/kubernetes/pki/etcd/peer.crt\n    - --peer-client-cert-auth=true\n    - --peer-key-file=/etc/kubernetes/pki/etcd/peer.key\n    - --peer-trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n    - --snapshot-count=10000\n    - --trusted-ca-file=/etc/kubernetes/pki/etcd/ca.crt\n"
    );
    let etcd_volumes = "  volumes:\n  - hostPath:\n      path: /etc/kubernetes/pki/etcd\n      type: DirectoryOrCreate\n    name: etcd-certs\n  - hostPath:\n      path: /var/lib/etcd\n      type: DirectoryOrCreate\n    name: etcd-data\n";
    let etcd = match v.minor {
        ..=29 => "3.5.10-0",
        30 => "3.5.12-0",
        31 => "3.5.15-0",
        32 => "3.5.16-0",
        _ => "3.5.21-0",
    };
    for (name, image) in [
        ("etcd", format!("registry.k8s.io/etcd:{etcd}")),
        ("kube-apiserver", format!("registry.k8s.io/kube-apiserver:{v}")),
        ("kube-controller-manager", format!("registry.k8s.io/kube-controller-manager:{v}")),
        ("kube-scheduler", format!("registry.k8s.io/kube-scheduler:{v}")),
    ] {
        let path = Path::new("/etc/kubernetes/manifests").join(format!("{name}.yaml"));
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    component: {name}\n    tier: control-plane\n  name: {name}\n  namespace: kube-system\n  annotations:\n    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: {advertise}:6443\nspec:\n  containers:\n{command}name: {name}\n    image: {image}\n  hostNetwork: true\n  priorityClassName: system-node-critical\n{volumes}",
            command = match name {
                "etcd" => format!("{etcd_command}    "),
                "kube-apiserver" => format!("{}    ", apiserver_command(advertise)),
                _ => "  - ".into(),
            },
            volumes = if name == "etcd" { etcd_volumes } else { "" },
        );
        // An unchanged manifest is left alone: the kubelet restarts a static pod only when its
        // manifest changes (the pod's hash), so rewriting it in place would be no restart.
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            pki::write(&path, &text, 0o600)?;
        }
    }
    Ok(())
}

/// The kube-apiserver's command as kubeadm writes it (cmd/kubeadm/app/phases/controlplane/
/// manifests.go `getAPIServerCommand`, flags sorted as kubeadm sorts them): the simulated API
/// server (see [`super::apiserver`]) serves from these flags. The service range is kubeadm's
/// default (the simulator does not read `networking.serviceSubnet`, as for the SANs).
fn apiserver_command(advertise: &str) -> String {
    let flags = [
        format!("--advertise-address={advertise}"),
        "--allow-privileged=true".into(),
        "--authorization-mode=Node,RBAC".into(),
        "--client-ca-file=/etc/kubernetes/pki/ca.crt".into(),
        "--enable-admission-plugins=NodeRestriction".into(),
        "--enable-bootstrap-token-auth=true".into(),
        "--etcd-cafile=/etc/kubernetes/pki/etcd/ca.crt".into(),
        "--etcd-certfile=/etc/kubernetes/pki/apiserver-etcd-client.crt".into(),
        "--etcd-keyfile=/etc/kubernetes/pki/apiserver-etcd-client.key".into(),
        "--etcd-servers=https://127.0.0.1:2379".into(),
        "--kubelet-client-certificate=/etc/kubernetes/pki/apiserver-kubelet-client.crt".into(),
        "--kubelet-client-key=/etc/kubernetes/pki/apiserver-kubelet-client.key".into(),
        "--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname".into(),
        "--proxy-client-cert-file=/etc/kubernetes/pki/front-proxy-client.crt".into(),
        "--proxy-client-key-file=/etc/kubernetes/pki/front-proxy-client.key".into(),
        "--requestheader-allowed-names=front-proxy-client".into(),
        "--requestheader-client-ca-file=/etc/kubernetes/pki/front-proxy-ca.crt".into(),
        "--requestheader-extra-headers-prefix=X-Remote-Extra-".into(),
        "--requestheader-group-headers=X-Remote-Group".into(),
        "--requestheader-username-headers=X-Remote-User".into(),
        "--secure-port=6443".into(),
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
        "--service-account-key-file=/etc/kubernetes/pki/sa.pub".into(),
        "--service-account-signing-key-file=/etc/kubernetes/pki/sa.key".into(),
        "--service-cluster-ip-range=10.96.0.0/12".into(),
        "--tls-cert-file=/etc/kubernetes/pki/apiserver.crt".into(),
        "--tls-private-key-file=/etc/kubernetes/pki/apiserver.key".into(),
    ];
    let mut out = String::from("  - command:\n    - kube-apiserver\n");
    for f in flags {
        out.push_str(&format!("    - {f}\n"));
    }
    out
}

/// kubeadm upgrade's static pod phase: new manifests, then, where etcd's changed, wait until
/// the kubelet restarted it and it serves again (kubeadm waits for each component's new pod
/// and for etcd's cluster to be available before the next; `upgrade/staticpods`).
pub fn write_manifests_and_wait_for_etcd(v: V, advertise: &str) -> anyhow::Result<()> {
    let before = std::fs::read_to_string(super::etcd::MANIFEST).ok();
    let was = super::etcd::pod_status();
    write_manifests(v, advertise, None)?;
    // kubeadm waits for each component's new pod (the API server's too) before the next.
    if !wait_for_apiserver(std::time::Duration::from_secs(60)) {
        anyhow::bail!("[upgrade/staticpods] the new kube-apiserver pod did not start within 1m0s");
    }
    if std::fs::read_to_string(super::etcd::MANIFEST).ok() == before {
        return Ok(());
    }
    let node = hostname();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < until {
        let now = super::etcd::pod_status();
        if now.pid.is_some()
            && (now.pid != was.pid || now.started_unix != was.started_unix)
            && super::etcd::member_serving(&node)
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    anyhow::bail!("[upgrade/staticpods] etcd did not come back healthy within 2m0s after its manifest changed")
}

/// The shared material of a cluster (`kubeadm-certs`): file name in the Secret → PEM.
const SHARED: &[(&str, &str)] = &[
    ("ca.crt", "ca.crt"),
    ("ca.key", "ca.key"),
    ("front-proxy-ca.crt", "front-proxy-ca.crt"),
    ("front-proxy-ca.key", "front-proxy-ca.key"),
    ("sa.pub", "sa.pub"),
    ("sa.key", "sa.key"),
    ("etcd-ca.crt", "etcd/ca.crt"),
    ("etcd-ca.key", "etcd/ca.key"),
];

fn load_pair(dir: &Path, base: &str) -> anyhow::Result<Pair> {
    Ok(Pair { cert: pki::read(&dir.join(format!("{base}.crt")))?, key: pki::read(&dir.join(format!("{base}.key")))? })
}

/// A control plane's own certificates and kubeconfigs, signed by the shared CAs on disk.
fn write_control_plane_pki(
    node: &str,
    advertise: &str,
    cluster: &ClusterInfo,
    now: i64,
    super_admin: bool,
    out: &mut String,
) -> anyhow::Result<()> {
    let dir = Path::new(PKI);
    let ca = load_pair(dir, "ca")?;
    let etcd_ca = load_pair(dir, "etcd/ca")?;
    let fp_ca = load_pair(dir, "front-proxy-ca")?;
    let ip: IpAddr = advertise.parse().context("advertise address")?;
    let loopback: IpAddr = "127.0.0.1".parse()?;
    let v6: IpAddr = "::1".parse()?;
    let mut dns = vec![
        node.to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        format!("kubernetes.default.svc.{}", cluster.dns_domain),
    ];
    let mut ips = vec![cluster.service_ip, ip];
    let endpoint_host = cluster.endpoint.rsplit_once(':').map(|(h, _)| h).unwrap_or(&cluster.endpoint);
    match endpoint_host.parse::<IpAddr>() {
        Ok(e) if !ips.contains(&e) => ips.push(e),
        Ok(_) => {}
        Err(_) => dns.push(endpoint_host.to_string()),
    }
    dns.sort();
    dns.dedup();
    // etcd's serving and peer certificates name the member the same way.
    let etcd_member = || Leaf {
        cn: node,
        orgs: &[],
        dns: vec!["localhost".into(), node.to_string()],
        ips: vec![ip, loopback, v6],
        server: true,
        client: true,
        ecdsa: false,
    };
    let leaves: Vec<(&str, &Pair, Leaf<'_>)> = vec![
        (
            "apiserver",
            &ca,
            Leaf {
                cn: "kube-apiserver",
                orgs: &[],
                dns: dns.clone(),
                ips: ips.clone(),
                server: true,
                client: false,
                ecdsa: false,
            },
        ),
        (
            "apiserver-kubelet-client",
            &ca,
            Leaf {
                cn: "kube-apiserver-kubelet-client",
                orgs: &["kubeadm:cluster-admins"],
                dns: vec![],
                ips: vec![],
                server: false,
                client: true,
                ecdsa: false,
            },
        ),
        (
            "front-proxy-client",
            &fp_ca,
            Leaf {
                cn: "front-proxy-client",
                orgs: &[],
                dns: vec![],
                ips: vec![],
                server: false,
                client: true,
                ecdsa: false,
            },
        ),
        ("etcd/server", &etcd_ca, etcd_member()),
        ("etcd/peer", &etcd_ca, etcd_member()),
        (
            "etcd/healthcheck-client",
            &etcd_ca,
            Leaf {
                cn: "kube-etcd-healthcheck-client",
                orgs: &[],
                dns: vec![],
                ips: vec![],
                server: false,
                client: true,
                ecdsa: false,
            },
        ),
        (
            "apiserver-etcd-client",
            &etcd_ca,
            Leaf {
                cn: "kube-apiserver-etcd-client",
                orgs: &[],
                dns: vec![],
                ips: vec![],
                server: false,
                client: true,
                ecdsa: false,
            },
        ),
    ];
    for (name, signer, leaf) in leaves {
        let pair = pki::new_leaf(signer, &leaf, now)?;
        pki::write(&dir.join(format!("{name}.crt")), &pair.cert, 0o644)?;
        pki::write(&dir.join(format!("{name}.key")), &pair.key, 0o600)?;
        let _ = writeln!(out, "[certs] Generating \"{name}\" certificate and key");
        if name == "apiserver" {
            let _ = writeln!(
                out,
                "[certs] apiserver serving cert is signed for DNS names [{}] and IPs [{}]",
                dns.join(" "),
                ips.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")
            );
        }
    }
    let _ = writeln!(out, "[kubeconfig] Using kubeconfig folder \"/etc/kubernetes\"");
    let server = format!("https://{}", cluster.endpoint);
    let local = format!("https://{advertise}:6443");
    let mut confs: Vec<(&str, &str, &[&str], &str)> =
        vec![("admin.conf", "kubernetes-admin", &["kubeadm:cluster-admins"], server.as_str())];
    if super_admin {
        confs.push(("super-admin.conf", "kubernetes-super-admin", &["system:masters"], server.as_str()));
    }
    confs.push(("controller-manager.conf", "system:kube-controller-manager", &[], local.as_str()));
    confs.push(("scheduler.conf", "system:kube-scheduler", &[], local.as_str()));
    for (file, user, orgs, srv) in confs {
        let client = pki::new_leaf(
            &ca,
            &Leaf { cn: user, orgs, dns: vec![], ips: vec![], server: false, client: true, ecdsa: false },
            now,
        )?;
        pki::write(
            &Path::new("/etc/kubernetes").join(file),
            &pki::kubeconfig(&cluster.name, srv, &ca.cert, user, &client),
            0o600,
        )?;
        let _ = writeln!(out, "[kubeconfig] Writing \"{file}\" kubeconfig file");
    }
    Ok(())
}

struct ClusterInfo {
    name: String,
    endpoint: String,
    dns_domain: String,
    service_ip: IpAddr,
}

fn first_service_ip(subnet: &str) -> IpAddr {
    let base: std::net::Ipv4Addr =
        subnet.split('/').next().and_then(|s| s.parse().ok()).unwrap_or(std::net::Ipv4Addr::new(10, 96, 0, 0));
    IpAddr::V4(std::net::Ipv4Addr::from(u32::from(base) + 1))
}

fn init(kubeadm: V, args: &[String]) -> anyhow::Result<Outcome> {
    let mut out = Outcome::ok("");
    let docs = match flag(args, "--config") {
        Some(path) => match read_config(path, kubeadm) {
            Ok(d) => d,
            Err(e) => return Ok(fatal(&e)),
        },
        None => BTreeMap::new(),
    };
    let init_cfg = docs.get("InitConfiguration").cloned().unwrap_or(Value::Null);
    let cluster_cfg = docs.get("ClusterConfiguration").cloned().unwrap_or(Value::Null);
    let version = match cluster_cfg["kubernetesVersion"].as_str().or(flag(args, "--kubernetes-version")) {
        Some(s) => match V::parse(s) {
            Some(v) => v,
            None => return Ok(fatal(&format!("could not parse \"{s}\" as a version"))),
        },
        None => kubeadm,
    };
    let _ = writeln!(out.stdout, "[init] Using Kubernetes version: {version}");
    if !is_root() {
        return Ok(not_root(&mut out));
    }
    // kubeadm deploys its own minor or the one before (constants.go MinimumControlPlaneVersion).
    if version.minor + 1 < kubeadm.minor {
        return Ok(fatal(&format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= 1.{}.0. Current version: {version}",
            kubeadm.minor - 1
        )));
    }
    let _ = writeln!(out.stdout, "[preflight] Running pre-flight checks");
    let host = with_host(|s| Ok(s.clone()))?;
    let mut issues = common_preflight(&host, kubeadm, version, true);
    if version > kubeadm {
        issues.push(PreflightIssue { name: "KubernetesVersion".into(), message: format!("Kubernetes version is greater than kubeadm version. Please consider to upgrade kubeadm. Kubernetes version: {version}. Kubeadm version: 1.{}.x", kubeadm.minor), error: false });
    }
    for m in ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"] {
        if Path::new(&format!("/etc/kubernetes/manifests/{m}.yaml")).exists() {
            issues.push(PreflightIssue {
                name: format!("FileAvailable--etc-kubernetes-manifests-{m}.yaml"),
                message: format!("/etc/kubernetes/manifests/{m}.yaml already exists"),
                error: true,
            });
        }
    }
    if read_cluster().apiservers.iter().any(|a| a.starts_with(&format!("{}:", own_ip()))) {
        for port in [6443, 10259, 10257, 10250, 2379, 2380] {
            issues.push(PreflightIssue {
                name: format!("Port-{port}"),
                message: format!("Port {port} is in use"),
                error: true,
            });
        }
    }
    let ignore: Vec<String> =
        flags(args, "--ignore-preflight-errors").iter().flat_map(|s| s.split(',')).map(str::to_string).collect();
    if !preflight_output(&issues, &ignore, &mut out) {
        return Ok(out);
    }

    let now = now_unix();
    let node_reg = init_cfg["nodeRegistration"].clone();
    let node = node_reg["name"].as_str().map(str::to_string).unwrap_or_else(hostname);
    let advertise =
        init_cfg["localAPIEndpoint"]["advertiseAddress"].as_str().map(str::to_string).unwrap_or_else(own_ip);
    let endpoint = match cluster_cfg["controlPlaneEndpoint"].as_str() {
        Some(e) if e.contains(':') => e.to_string(),
        Some(e) => format!("{e}:6443"),
        None => format!("{advertise}:6443"),
    };
    let name = cluster_cfg["clusterName"].as_str().unwrap_or("kubernetes").to_string();
    let service_subnet = cluster_cfg["networking"]["serviceSubnet"].as_str().unwrap_or("10.96.0.0/12").to_string();
    let info = ClusterInfo {
        name: name.clone(),
        endpoint: endpoint.clone(),
        dns_domain: cluster_cfg["networking"]["dnsDomain"].as_str().unwrap_or("cluster.local").to_string(),
        service_ip: first_service_ip(&service_subnet),
    };

    let _ = writeln!(
        out.stdout,
        "[preflight] Pulling images required for setting up a Kubernetes cluster\n[preflight] This might take a minute or two, depending on the speed of your internet connection\n[preflight] You can also perform this action {}beforehand using 'kubeadm config images pull'",
        if kubeadm.minor <= 31 { "in " } else { "" }
    );
    let _ = writeln!(out.stdout, "[certs] Using certificateDir folder \"{PKI}\"");
    let dir = Path::new(PKI);
    // A CA (certificate and key) already in place is used, not replaced: how an
    // orchestrator brings its own (k/k cmd/kubeadm/app/phases/certs: "Using existing ...").
    for (file, cn) in [("ca", "kubernetes"), ("front-proxy-ca", "front-proxy-ca"), ("etcd/ca", "etcd-ca")] {
        let (crt, key) = (dir.join(format!("{file}.crt")), dir.join(format!("{file}.key")));
        if crt.exists() && key.exists() {
            let _ = writeln!(out.stdout, "[certs] Using existing {} certificate authority", file.replace('/', "-"));
            continue;
        }
        let ca = pki::new_ca(cn, now)?;
        pki::write(&crt, &ca.cert, 0o644)?;
        pki::write(&key, &ca.key, 0o600)?;
        let _ = writeln!(out.stdout, "[certs] Generating \"{file}\" certificate and key");
    }
    publish_ca()?;
    let sa_existing = dir.join("sa.key").exists() && dir.join("sa.pub").exists();
    if !sa_existing {
        let (sa_key, sa_pub) = pki::sa_keypair()?;
        pki::write(&dir.join("sa.key"), &sa_key, 0o600)?;
        pki::write(&dir.join("sa.pub"), &sa_pub, 0o644)?;
    }
    write_control_plane_pki(&node, &advertise, &info, now, kubeadm.minor >= 29, &mut out.stdout)?;
    let _ = writeln!(
        out.stdout,
        "{}",
        if sa_existing {
            "[certs] Using the existing \"sa\" key"
        } else {
            "[certs] Generating \"sa\" key and public key"
        }
    );
    let _ = writeln!(
        out.stdout,
        "[etcd] Creating static Pod manifest for local etcd in \"/etc/kubernetes/manifests\"\n[control-plane] Using manifest folder \"/etc/kubernetes/manifests\""
    );
    for c in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        let _ = writeln!(out.stdout, "[control-plane] Creating static Pod manifest for \"{c}\"");
    }
    write_manifests(version, &advertise, None)?;
    write_kubelet_files(version, &node_reg, docs.get("KubeletConfiguration"))?;
    let ca = load_pair(dir, "ca")?;
    write_kubelet_identity(&ca, &node, &name, &format!("https://{endpoint}"), now)?;
    let _ = writeln!(
        out.stdout,
        "[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"\n[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n[kubelet-start] Starting the kubelet"
    );
    let kubelet_version = start_kubelet(&node)?;
    // kubeadm waits for the API server through admin.conf, i.e. the endpoint as this host
    // resolves it; PKI, manifests and the kubelet stay behind when that fails.
    if let Err(dial) = super::reach::resolve_address(&hostname(), &endpoint) {
        return Ok(fatal(&format!(
            "error execution phase wait-control-plane: failed while waiting for the API server: Get \"https://{endpoint}/livez?timeout=10s\": {dial}"
        )));
    }
    // The API server is healthy once its etcd, the real server the kubelet starts from the
    // manifest, serves (kubeadm waits up to 4 minutes; the simulator a minute).
    if !wait_for_etcd(&node, std::time::Duration::from_secs(60))
        || !wait_for_apiserver(std::time::Duration::from_secs(30))
    {
        out.stdout.push_str("[api-check] The API server is not healthy after 1m0s\n");
        return Ok(fatal(
            "error execution phase wait-control-plane: could not initialize a Kubernetes cluster: etcd did not become healthy (its log on this host: /var/lib/kubewright-sim/etcd.log)",
        ));
    }
    let _ = match kubeadm.minor {
        ..=29 => writeln!(
            out.stdout,
            "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\". This can take up to 4m0s\n[apiclient] All control plane components are healthy after 4.501227 seconds"
        ),
        30..=32 => writeln!(
            out.stdout,
            "[wait-control-plane] Waiting for the kubelet to boot up the control plane as static Pods from directory \"/etc/kubernetes/manifests\"\n[kubelet-check] Waiting for a healthy kubelet{}. This can take up to 4m0s\n[kubelet-check] The kubelet is healthy after 501.293317ms\n[api-check] Waiting for a healthy API server. This can take up to 4m0s\n[api-check] The API server is healthy after 4.000748929s",
            if kubeadm.minor >= 31 { " at http://127.0.0.1:10248/healthz" } else { "" }
        ),
        _ => writeln!(
            out.stdout,
            "[control-plane-check] Waiting for healthy control plane components. This can take up to 4m0s\n[control-plane-check] Checking kube-apiserver at https://{advertise}:6443/livez\n[control-plane-check] Checking kube-controller-manager at https://127.0.0.1:10257/healthz\n[control-plane-check] Checking kube-scheduler at https://127.0.0.1:10259/livez\n[control-plane-check] kube-controller-manager is healthy after 1.450607677s\n[control-plane-check] kube-scheduler is healthy after 1.646982387s\n[control-plane-check] kube-apiserver is healthy after 3.001850182s"
        ),
    };

    let mut tokens = Vec::new();
    if let Some(list) = init_cfg["bootstrapTokens"].as_array() {
        for t in list {
            let text = t["token"].as_str().unwrap_or("");
            let (id, secret) = match parse_token(text) {
                Ok(p) => p,
                Err(e) => return Ok(fatal(&e)),
            };
            let ttl = t["ttl"].as_str().and_then(go_duration).unwrap_or(86_400);
            tokens.push(Token { id, secret, expires_unix: now + ttl });
        }
    }
    if tokens.is_empty() {
        tokens.push(random_token());
    }
    let upload = has(args, "--upload-certs");
    let certificate_key = if upload {
        Some(
            init_cfg["certificateKey"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>())),
        )
    } else {
        None
    };
    let pin = pki::ca_pin(&ca.cert)?;
    let cluster_yaml = serde_json::to_string_pretty(&cluster_cfg).unwrap_or_default();
    let mut shared = BTreeMap::new();
    for (secret_key, file) in SHARED {
        shared.insert(secret_key.to_string(), pki::read(&dir.join(file))?);
    }
    with_cluster(|c| {
        *c = Cluster {
            clock_offset_seconds: c.clock_offset_seconds,
            events: std::mem::take(&mut c.events),
            ..Cluster::default()
        };
        c.initialized = true;
        c.cluster_name = name.clone();
        c.kubernetes_version = version.to_string();
        c.endpoint = endpoint.clone();
        c.apiservers = vec![format!("{advertise}:6443")];
        c.cluster_config_yaml = cluster_yaml;
        c.ca_pin = pin.clone();
        c.tokens = tokens.clone();
        c.uploaded_certs = certificate_key.as_ref().map(|k| UploadedCerts {
            key_sha256: sha(k),
            expires_unix: now + 7200,
            files: shared,
        });
        c.nodes.insert(
            node.clone(),
            Node {
                control_plane: true,
                kubelet_version: kubelet_version.clone(),
                kubelet_running: true,
                address: advertise.clone(),
                labels: control_plane_labels(),
                taints: node_taints(&node_reg, true),
                created_unix: now,
                ..Node::default()
            },
        );
        c.kubelets.insert(node.clone(), super::cluster::Kubelet { running: true, version: kubelet_version.clone() });
        c.event("init", &node);
        Ok(())
    })?;

    let _ = writeln!(
        out.stdout,
        "[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n[kubelet] Creating a ConfigMap \"kubelet-config\" in namespace kube-system with the configuration for the kubelets in the cluster"
    );
    match &certificate_key {
        Some(k) => {
            let _ = writeln!(
                out.stdout,
                "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n{k}"
            );
        }
        None => {
            let _ = writeln!(out.stdout, "[upload-certs] Skipping phase. Please see --upload-certs");
        }
    }
    let _ = writeln!(
        out.stdout,
        "[mark-control-plane] Marking the node {node} as control-plane by adding the labels: [node-role.kubernetes.io/control-plane node.kubernetes.io/exclude-from-external-load-balancers]\n[mark-control-plane] Marking the node {node} as control-plane by adding the taints [node-role.kubernetes.io/control-plane:NoSchedule]"
    );
    let token = format!("{}.{}", tokens[0].id, tokens[0].secret);
    let _ = writeln!(
        out.stdout,
        "[bootstrap-token] Using token: {token}\n[bootstrap-token] Configuring bootstrap tokens, cluster-info ConfigMap, RBAC Roles\n[bootstrap-token] Creating the \"cluster-info\" ConfigMap in the \"kube-public\" namespace\n[kubelet-finalize] Updating \"/etc/kubernetes/kubelet.conf\" to point to a rotatable kubelet client certificate and key\n[addons] Applied essential addon: CoreDNS\n[addons] Applied essential addon: kube-proxy"
    );
    // initDoneTempl, k/k cmd/kubeadm/app/cmd/phases/init/showjoincommand.go (§1.2, §1.3).
    let _ = write!(
        out.stdout,
        "\nYour Kubernetes control-plane has initialized successfully!\n\nTo start using your cluster, you need to run the following as a regular user:\n\n  mkdir -p $HOME/.kube\n  sudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n  sudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nAlternatively, if you are the root user, you can run:\n\n  export KUBECONFIG=/etc/kubernetes/admin.conf\n\nYou should now deploy a pod network to the cluster.\nRun \"kubectl apply -f [podnetwork].yaml\" with one of the options listed at:\n  https://kubernetes.io/docs/concepts/cluster-administration/addons/\n\n"
    );
    let base = format!("kubeadm join {endpoint} --token {token} \\\n\t--discovery-token-ca-cert-hash {pin} ");
    if cluster_cfg["controlPlaneEndpoint"].is_string() {
        match &certificate_key {
            Some(k) => {
                let _ = write!(
                    out.stdout,
                    "You can now join any number of the control-plane node running the following command on each as root:\n\n  {base}\\\n\t--control-plane --certificate-key {k}\n\nPlease note that the certificate-key gives access to cluster sensitive data, keep it secret!\nAs a safeguard, uploaded-certs will be deleted in two hours; If necessary, you can use\n\"kubeadm init phase upload-certs --upload-certs\" to reload certs afterward.\n\n"
                );
            }
            None => {
                let _ = write!(
                    out.stdout,
                    "You can now join any number of control-plane nodes by copying certificate authorities\nand service account keys on each node and then running the following as root:\n\n  {base}\\\n\t--control-plane \n\n"
                );
            }
        }
    }
    let _ = write!(
        out.stdout,
        "Then you can join any number of worker nodes by running the following on each as root:\n\n{base}\n"
    );
    Ok(out)
}

fn control_plane_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("node-role.kubernetes.io/control-plane".to_string(), String::new()),
        ("node.kubernetes.io/exclude-from-external-load-balancers".to_string(), String::new()),
    ])
}

fn sha(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// `24h0m0s`, `2h`, `90m` → seconds.
fn go_duration(s: &str) -> Option<i64> {
    let mut total = 0i64;
    let mut num = String::new();
    for c in s.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'h' | 'm' | 's' => {
                let n: f64 = num.parse().ok()?;
                total += (n * match c {
                    'h' => 3600.0,
                    'm' => 60.0,
                    _ => 1.0,
                }) as i64;
                num.clear();
            }
            _ => return None,
        }
    }
    Some(total)
}

/// Start the kubelet on this host and register it as `node` (the simulator's stand-in for
/// the kubelet's own registration). Returns the kubelet version it registers with.
fn start_kubelet(node: &str) -> anyhow::Result<String> {
    with_host(|s| {
        let version = installed(s, "kubelet").map(|v| v.to_string()).unwrap_or_default();
        let unit = s.units.entry("kubelet".into()).or_default();
        unit.active = true;
        unit.starts += 1;
        s.node_name = Some(node.to_string());
        Ok(version)
    })
}

struct JoinRequest {
    endpoint: String,
    token: String,
    hashes: Vec<String>,
    unsafe_skip: bool,
    control_plane: bool,
    certificate_key: Option<String>,
    node_reg: Value,
    advertise: Option<String>,
}

fn join_request(args: &[String], kubeadm: V) -> Result<JoinRequest, String> {
    if let Some(path) = flag(args, "--config") {
        let docs = read_config(path, kubeadm)?;
        let j =
            docs.get("JoinConfiguration").ok_or_else(|| "no JoinConfiguration found in the config file".to_string())?;
        let bt = &j["discovery"]["bootstrapToken"];
        return Ok(JoinRequest {
            endpoint: bt["apiServerEndpoint"].as_str().unwrap_or("").to_string(),
            token: bt["token"].as_str().unwrap_or("").to_string(),
            hashes: bt["caCertHashes"]
                .as_array()
                .map(|a| a.iter().filter_map(|h| h.as_str().map(str::to_string)).collect())
                .unwrap_or_default(),
            unsafe_skip: bt["unsafeSkipCAVerification"].as_bool().unwrap_or(false),
            control_plane: j["controlPlane"].is_object(),
            certificate_key: j["controlPlane"]["certificateKey"].as_str().map(str::to_string),
            node_reg: j["nodeRegistration"].clone(),
            advertise: j["controlPlane"]["localAPIEndpoint"]["advertiseAddress"].as_str().map(str::to_string),
        });
    }
    let endpoint = args.iter().find(|a| !a.starts_with('-') && a.contains(':')).cloned().unwrap_or_default();
    Ok(JoinRequest {
        endpoint,
        token: flag(args, "--token").or(flag(args, "--discovery-token")).unwrap_or("").to_string(),
        hashes: flags(args, "--discovery-token-ca-cert-hash").iter().map(|s| s.to_string()).collect(),
        unsafe_skip: has(args, "--discovery-token-unsafe-skip-ca-verification"),
        control_plane: has(args, "--control-plane"),
        certificate_key: flag(args, "--certificate-key").map(str::to_string),
        node_reg: serde_json::json!({ "name": flag(args, "--node-name") }),
        advertise: flag(args, "--apiserver-advertise-address").map(str::to_string),
    })
}

fn join(kubeadm: V, args: &[String]) -> anyhow::Result<Outcome> {
    let mut out = Outcome::ok("");
    let req = match join_request(args, kubeadm) {
        Ok(r) => r,
        Err(e) => return Ok(fatal(&e)),
    };
    if !is_root() {
        return Ok(not_root(&mut out));
    }
    let _ = writeln!(out.stdout, "[preflight] Running pre-flight checks");
    let cluster = read_cluster();
    let host = with_host(|s| Ok(s.clone()))?;
    let cp_version = V::parse(&cluster.kubernetes_version).unwrap_or(kubeadm);
    let mut issues = common_preflight(&host, kubeadm, cp_version, false);
    // RunJoinNodeChecks (k/k cmd/kubeadm/app/preflight/checks.go): a static pod written before
    // the join (a local API proxy, kube-vip) trips it.
    let manifests_in_use = std::fs::read_dir("/etc/kubernetes/manifests").is_ok_and(|mut d| d.next().is_some());
    if manifests_in_use {
        issues.push(PreflightIssue {
            name: "DirAvailable--etc-kubernetes-manifests".into(),
            message: "/etc/kubernetes/manifests is not empty".into(),
            error: true,
        });
    }
    if !req.control_plane && Path::new("/etc/kubernetes/pki/ca.crt").exists() {
        issues.push(PreflightIssue {
            name: "FileAvailable--etc-kubernetes-pki-ca.crt".into(),
            message: "/etc/kubernetes/pki/ca.crt already exists".into(),
            error: true,
        });
    }
    let ignore: Vec<String> =
        flags(args, "--ignore-preflight-errors").iter().flat_map(|s| s.split(',')).map(str::to_string).collect();
    if !preflight_output(&issues, &ignore, &mut out) {
        return Ok(out);
    }
    let identity = |cause: String| {
        fatal(&format!("error execution phase preflight: couldn't validate the identity of the API Server: {cause}"))
    };
    if let Err(e) = parse_token(&req.token) {
        return Ok(fatal(&e));
    }
    if req.hashes.is_empty() && !req.unsafe_skip {
        return Ok(fatal(
            "discovery.bootstrapToken: Invalid value: \"\": using token-based discovery without caCertHashes can be unsafe. Set unsafeSkipCAVerification as true in your kubeadm config file or pass --discovery-token-unsafe-skip-ca-verification flag to continue",
        ));
    }
    for h in &req.hashes {
        let Some(hex_part) = h.strip_prefix("sha256:") else {
            return Ok(identity(format!(
                "invalid discovery token CA certificate hash: invalid hash \"{h}\", expected \"format:hex-value\". Known format(s) are: sha256"
            )));
        };
        if hex::decode(hex_part).map(|b| b.len()).unwrap_or(0) != 32 {
            return Ok(identity(format!(
                "invalid discovery token CA certificate hash: invalid hash \"{h}\", expected a 32 byte SHA-256 hash, found {} bytes",
                hex_part.len() / 2
            )));
        }
    }
    // Discovery: the real kubeadm retries every 5 s for `timeouts.discovery` (5m); the
    // simulator answers at once with the error the retries would end with.
    if let Err(dial) = super::reach::dial(&cluster, &hostname(), &req.endpoint) {
        return Ok(identity(format!(
            "failed to request the cluster-info ConfigMap: Get \"https://{0}/api/v1/namespaces/kube-public/configmaps/cluster-info?timeout=10s\": {dial}",
            req.endpoint
        )));
    }
    let now = now_unix();
    let token_id = req.token.split('.').next().unwrap_or("").to_string();
    let valid_token =
        cluster.tokens.iter().any(|t| format!("{}.{}", t.id, t.secret) == req.token && t.expires_unix > now);
    if !valid_token {
        return Ok(identity(format!(
            "could not find a JWS signature in the cluster-info ConfigMap for token ID \"{token_id}\""
        )));
    }
    if !req.unsafe_skip && !req.hashes.iter().any(|h| h.eq_ignore_ascii_case(&cluster.ca_pin)) {
        return Ok(identity(format!(
            "cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{}\" are pinned",
            cluster.ca_pin
        )));
    }
    // From here on kubeadm talks to the server cluster-info names (controlPlaneEndpoint), not
    // the discovery address: it must resolve and answer from this host too.
    if let Err(dial) = super::reach::dial(&cluster, &hostname(), &cluster.endpoint) {
        return Ok(fatal(&format!(
            "error execution phase preflight: unable to fetch the kubeadm-config ConfigMap: failed to get config map: Get \"https://{}/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": {dial}",
            cluster.endpoint
        )));
    }
    let node = req.node_reg["name"].as_str().map(str::to_string).unwrap_or_else(hostname);
    if let Some(existing) = cluster.nodes.get(&node)
        && existing.kubelet_running
        && cluster.node_ready(&node)
    {
        return Ok(fatal(&format!(
            "error execution phase kubelet-start: a Node with name \"{node}\" and status \"Ready\" already exists in the cluster. You must delete the existing Node or change the name of this new joining Node"
        )));
    }
    let advertise = req.advertise.clone().unwrap_or_else(own_ip);
    if req.control_plane {
        let Some(uploaded) = cluster.uploaded_certs.as_ref().filter(|u| u.expires_unix > now) else {
            return Ok(fatal(
                "error execution phase control-plane-prepare/download-certs: error downloading certs: error downloading the secret: Secret \"kubeadm-certs\" was not found in the \"kube-system\" Namespace. This Secret might have expired. Please, run `kubeadm init phase upload-certs --upload-certs` on a control plane to generate a new one",
            ));
        };
        let key = req.certificate_key.clone().unwrap_or_default();
        if hex::decode(&key).is_err() {
            return Ok(fatal(&format!(
                "error execution phase control-plane-prepare/download-certs: error decoding certificate key: encoding/hex: invalid byte: U+{:04X}",
                key.chars().find(|c| !c.is_ascii_hexdigit()).map(|c| c as u32).unwrap_or(0)
            )));
        }
        if sha(&key) != uploaded.key_sha256 {
            return Ok(fatal(
                "error execution phase control-plane-prepare/download-certs: error downloading certs: error decoding secret data with provided key: cipher: message authentication failed",
            ));
        }
        let _ = writeln!(
            out.stdout,
            "[download-certs] Downloading the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[download-certs] Saving the certificates to the folder: \"{PKI}\""
        );
        for (secret_key, file) in SHARED {
            let mode = if file.ends_with(".key") { 0o600 } else { 0o644 };
            pki::write(
                &Path::new(PKI).join(file),
                uploaded.files.get(*secret_key).map(String::as_str).unwrap_or(""),
                mode,
            )?;
        }
        let info = ClusterInfo {
            name: cluster.cluster_name.clone(),
            endpoint: cluster.endpoint.clone(),
            dns_domain: "cluster.local".into(),
            service_ip: first_service_ip("10.96.0.0/12"),
        };
        write_control_plane_pki(&node, &advertise, &info, now, false, &mut out.stdout)?;
        // The members it joins, as `etcdctl member add` returns them to kubeadm: added as a
        // learner (EtcdLearnerMode, on by default from kubeadm 1.29, GA in 1.32), promoted
        // once it caught up (below).
        let others = match etcd_member_add(&cluster, &node, &advertise) {
            Ok(others) => others,
            Err(e) => {
                return Ok(fatal(&format!(
                    "error execution phase control-plane-join/etcd: error creating local etcd static pod manifest file: {e:#}"
                )));
            }
        };
        out.stdout.push_str("[etcd] Announced new etcd member joining to the existing etcd cluster\n[etcd] Creating static Pod manifest for \"etcd\"\n");
        write_manifests(cp_version, &advertise, Some(&others))?;
    } else {
        let ca_cert = cluster.uploaded_certs.as_ref().and_then(|u| u.files.get("ca.crt").cloned());
        // Workers learn the CA from cluster-info; the simulator keeps it with the shared files.
        let ca_cert = match ca_cert {
            Some(c) => c,
            None => ca_from_cluster()?,
        };
        pki::write(&Path::new(PKI).join("ca.crt"), &ca_cert, 0o644)?;
    }
    let ca = ca_for_signing()?;
    let _ = writeln!(
        out.stdout,
        "[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"\n[kubelet-start] Writing kubelet environment file with flags to file \"/var/lib/kubelet/kubeadm-flags.env\"\n[kubelet-start] Starting the kubelet\n[kubelet-start] Waiting for the kubelet to perform the TLS Bootstrap"
    );
    write_kubelet_files(cp_version, &req.node_reg, None)?;
    write_kubelet_identity(&ca, &node, &cluster.cluster_name, &format!("https://{}", cluster.endpoint), now)?;
    let kubelet_version = start_kubelet(&node)?;
    if req.control_plane {
        out.stdout.push_str("[etcd] Waiting for the new etcd member to join the cluster. This can take up to 40s\n");
        if let Err(e) = etcd_member_promote(&node) {
            return Ok(fatal(&format!("error execution phase control-plane-join/etcd: {e:#}")));
        }
        if !wait_for_apiserver(std::time::Duration::from_secs(30)) {
            return Ok(fatal(
                "error execution phase control-plane-join/wait-control-plane: the kube-apiserver of this node did not start (its log on this host: /var/lib/kubewright-sim/kube-apiserver.log)",
            ));
        }
    }
    with_cluster(|c| {
        let mut labels = BTreeMap::new();
        if req.control_plane {
            labels = control_plane_labels();
            c.apiservers.push(format!("{advertise}:6443"));
        }
        c.nodes.insert(
            node.clone(),
            Node {
                control_plane: req.control_plane,
                kubelet_version: kubelet_version.clone(),
                kubelet_running: true,
                address: advertise.clone(),
                labels,
                taints: node_taints(&req.node_reg, req.control_plane),
                created_unix: now,
                ..Node::default()
            },
        );
        c.kubelets.insert(node.clone(), super::cluster::Kubelet { running: true, version: kubelet_version.clone() });
        c.event(if req.control_plane { "join-control-plane" } else { "join" }, &node);
        Ok(())
    })?;
    if req.control_plane {
        // joinControPlaneDoneTemp, k/k cmd/kubeadm/app/cmd/join.go (§6).
        let _ = write!(
            out.stdout,
            "\nThis node has joined the cluster and a new control plane instance was created:\n\n* Certificate signing request was sent to apiserver and approval was received.\n* The Kubelet was informed of the new secure connection details.\n* Control plane label and taint were applied to the new node.\n* The Kubernetes control plane instances scaled up.\n* A new etcd member was added to the local/stacked etcd cluster.\n\nTo start administering your cluster from this node, you need to run the following as a regular user:\n\n\tmkdir -p $HOME/.kube\n\tsudo cp -i /etc/kubernetes/admin.conf $HOME/.kube/config\n\tsudo chown $(id -u):$(id -g) $HOME/.kube/config\n\nRun 'kubectl get nodes' to see this node join the cluster.\n\n"
        );
    } else {
        let _ = write!(
            out.stdout,
            "\nThis node has joined the cluster:\n* Certificate signing request was sent to apiserver and a response was received.\n* The Kubelet was informed of the new secure connection details.\n\nRun 'kubectl get nodes' on the control-plane to see this node join the cluster.\n\n"
        );
    }
    Ok(out)
}

/// The cluster CA certificate as cluster-info publishes it.
fn ca_from_cluster() -> anyhow::Result<String> {
    std::fs::read_to_string(super::cluster::state_dir().join("ca.crt"))
        .context("the cluster CA is not published (is the cluster initialized?)")
}

/// The CA that signs kubelet client certificates (the controller manager's, in a real cluster).
pub(crate) fn ca_for_signing() -> anyhow::Result<Pair> {
    let dir = super::cluster::state_dir();
    Ok(Pair { cert: pki::read(&dir.join("ca.crt"))?, key: pki::read(&dir.join("ca.key"))? })
}

/// `kubeadm init phase upload-certs --upload-certs [--certificate-key K | --config F]`: encrypt
/// the shared control-plane files again under the key (a new one when none is given) for 2 h
/// (k/k cmd/kubeadm/app/cmd/phases/init/uploadcerts.go, phases/copycerts/copycerts.go).
fn init_phase(kubeadm: V, args: &[String]) -> anyhow::Result<Outcome> {
    if args.first().map(String::as_str) != Some("upload-certs") {
        return Ok(Outcome::fail(1, "kubeadm init phase: the simulator knows upload-certs\n"));
    }
    if !is_root() {
        return Ok(not_root(&mut Outcome::ok("")));
    }
    if !has(args, "--upload-certs") {
        return Ok(Outcome::ok("[upload-certs] Skipping phase. Please see --upload-certs\n"));
    }
    let from_config = match flag(args, "--config") {
        Some(path) => match read_config(path, kubeadm) {
            Ok(docs) => docs.get("InitConfiguration").and_then(|c| c["certificateKey"].as_str().map(str::to_string)),
            Err(e) => return Ok(fatal(&e)),
        },
        None => None,
    };
    let key = flag(args, "--certificate-key")
        .map(str::to_string)
        .or(from_config)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 32]>()));
    if hex::decode(&key).map(|k| k.len()).unwrap_or(0) != 32 {
        return Ok(fatal(
            "error execution phase upload-certs: error uploading certs: error decoding certificate key: the certificate key must be a hex encoded string of 32 bytes",
        ));
    }
    let cluster = read_cluster();
    if !super::cluster::apiserver_up(&cluster, &cluster.endpoint) {
        return Ok(fatal(&format!(
            "error execution phase upload-certs: error uploading certs: Get \"https://{}/api/v1/namespaces/kube-system/secrets/kubeadm-certs\": dial tcp {}: connect: connection refused",
            cluster.endpoint, cluster.endpoint
        )));
    }
    let mut files = BTreeMap::new();
    for (secret_key, file) in SHARED {
        files.insert(secret_key.to_string(), pki::read(&Path::new(PKI).join(file))?);
    }
    let now = now_unix();
    with_cluster(|c| {
        c.uploaded_certs = Some(UploadedCerts { key_sha256: sha(&key), expires_unix: now + 7200, files });
        c.event("upload-certs", &hostname());
        Ok(())
    })?;
    Ok(Outcome::ok(format!(
        "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n[upload-certs] Using certificate key:\n{key}\n"
    )))
}

fn token(kubeadm: V, args: &[String]) -> anyhow::Result<Outcome> {
    match args.first().map(String::as_str) {
        Some("create") => {
            let cluster = read_cluster();
            if !super::cluster::apiserver_up(&cluster, &cluster.endpoint) {
                return Ok(Outcome::fail(
                    1,
                    format!(
                        "failed to create or update bootstrap token with name bootstrap-token-xxxxxx: Post \"https://{0}/api/v1/namespaces/kube-system/secrets?timeout=10s\": dial tcp {0}: connect: connection refused\n",
                        cluster.endpoint
                    ),
                ));
            }
            // The token: the positional argument, else the config's first bootstrapTokens
            // entry (token.go RunCreateToken), else a random one.
            const VALUE_FLAGS: &[&str] =
                &["--config", "--ttl", "--description", "--groups", "--usages", "--certificate-key", "--kubeconfig"];
            let positional = (1..args.len())
                .find(|&i| !args[i].starts_with('-') && !VALUE_FLAGS.contains(&args[i - 1].as_str()))
                .map(|i| args[i].clone());
            let (from_config, config_ttl) = match flag(args, "--config") {
                Some(path) => match read_config(path, kubeadm) {
                    Ok(docs) => {
                        let first = docs.get("InitConfiguration").map(|c| c["bootstrapTokens"][0].clone());
                        let token = first.as_ref().and_then(|t| t["token"].as_str().map(str::to_string));
                        let ttl = first.as_ref().and_then(|t| t["ttl"].as_str().and_then(go_duration));
                        (token, ttl)
                    }
                    Err(e) => return Ok(fatal(&e)),
                },
                None => (None, None),
            };
            let ttl = flag(args, "--ttl").and_then(go_duration).or(config_ttl).unwrap_or(86_400);
            let t = match positional.or(from_config) {
                Some(text) => match parse_token(&text) {
                    Ok((id, secret)) => Token { id, secret, expires_unix: now_unix() + ttl },
                    Err(e) => return Ok(fatal(&e)),
                },
                None => random_token(),
            };
            let text = format!("{}.{}", t.id, t.secret);
            let c = with_cluster(|c| {
                c.tokens.push(t.clone());
                Ok(c.clone())
            })?;
            if has(args, "--print-join-command") {
                let mut line =
                    format!("kubeadm join {} --token {text} --discovery-token-ca-cert-hash {} ", c.endpoint, c.ca_pin);
                if let Some(k) = flag(args, "--certificate-key") {
                    line.push_str(&format!("--control-plane --certificate-key {k}"));
                }
                return Ok(Outcome::ok(format!("{line}\n")));
            }
            Ok(Outcome::ok(format!("{text}\n")))
        }
        Some("list") => {
            let c = read_cluster();
            let now = now_unix();
            let mut out = String::from(
                "TOKEN                     TTL         EXPIRES                USAGES                   DESCRIPTION                                                EXTRA GROUPS\n",
            );
            for t in c.tokens.iter().filter(|t| t.expires_unix > now) {
                let _ = writeln!(
                    out,
                    "{}.{}   {}h         -                      authentication,signing   <none>                                                     system:bootstrappers:kubeadm:default-node-token",
                    t.id,
                    t.secret,
                    (t.expires_unix - now) / 3600
                );
            }
            Ok(Outcome::ok(out))
        }
        _ => Ok(Outcome::fail(1, "kubeadm token: the simulator knows create and list\n")),
    }
}

/// Publish the cluster CA where joining nodes' discovery finds it (cluster-info), and keep
/// the CA key with it to sign kubelet client certificates (the controller manager's job).
pub fn publish_ca() -> anyhow::Result<()> {
    let dir = super::cluster::state_dir();
    std::fs::copy(Path::new(PKI).join("ca.crt"), dir.join("ca.crt"))?;
    std::fs::copy(Path::new(PKI).join("ca.key"), dir.join("ca.key"))?;
    Ok(())
}

/// `kubeadm reset [-f]`: the kubelet stopped, this control plane's etcd member removed (the
/// `remove-etcd-member` phase), and the files kubeadm wrote deleted (kubeadm-behaviour.md §3.2);
/// the Node object stays until `kubectl delete node`. CNI configuration and iptables are left, as
/// kubeadm says.
pub fn reset(args: &[String]) -> anyhow::Result<Outcome> {
    let force = args.iter().any(|a| a == "-f" || a == "--force");
    let mut out = String::from(
        "W0101 00:00:00.000000    1 preflight.go:56] [reset] WARNING: Changes made to this host by 'kubeadm init' or 'kubeadm join' will be reverted.\n",
    );
    if !force {
        out.push_str("[reset] Are you sure you want to proceed? [y/N]: ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y") {
            return Ok(Outcome {
                code: 1,
                stdout: out,
                stderr: "won't proceed; the user didn't answer (Y|y) in order to continue\nTo see the stack trace of this error execute with --v=5 or higher\n".into(),
            });
        }
    }
    let node = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    out.push_str("[preflight] Running pre-flight checks\n");
    let was_member = Path::new("/etc/kubernetes/manifests/etcd.yaml").exists();
    if was_member {
        match etcd_member_remove_self(&node) {
            Ok(_) => {
                with_cluster(|c| {
                    c.event("etcd-member-remove", &node);
                    Ok(())
                })?;
            }
            Err(e) => {
                // removeetcdmember.go warns and goes on (the member stays in the list).
                out.push_str(&format!("W0101 00:00:00.000000    1 removeetcdmember.go:61] [reset] Failed to remove etcd member: {e:#}, please manually remove this etcd member using etcdctl\n"));
            }
        }
        out.push_str("[reset] Deleted contents of the etcd data directory: /var/lib/etcd\n");
    }
    out.push_str("[reset] Stopping the kubelet service\n");
    super::kubectl::kubelet_changed(false)?;
    super::host::with_host(|s| {
        if let Some(u) = s.units.get_mut("kubelet") {
            u.active = false;
        }
        Ok(())
    })?;
    out.push_str("[reset] Unmounting mounted directories in \"/var/lib/kubelet\"\n");
    let dirs = ["/etc/kubernetes/manifests", "/var/lib/kubelet", "/etc/kubernetes/pki"];
    for dir in dirs {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let p = e.path();
                let _ = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            }
        }
    }
    let files = [
        "/etc/kubernetes/admin.conf",
        "/etc/kubernetes/super-admin.conf",
        "/etc/kubernetes/kubelet.conf",
        "/etc/kubernetes/bootstrap-kubelet.conf",
        "/etc/kubernetes/controller-manager.conf",
        "/etc/kubernetes/scheduler.conf",
    ];
    for f in files {
        let _ = std::fs::remove_file(f);
    }
    with_cluster(|c| {
        let _ = std::fs::remove_dir_all("/var/lib/etcd");
        c.apiservers.retain(|a| c.nodes.get(&node).is_none_or(|n| !a.starts_with(&format!("{}:", n.address))));
        c.event("reset", &node);
        // The last etcd data of the cluster is gone (under the cluster lock: resets run in
        // parallel): nothing of the cluster is left.
        if was_member && !etcd_data_left() {
            let kept = (std::mem::take(&mut c.events), c.clock_offset_seconds);
            *c = super::cluster::Cluster::default();
            (c.events, c.clock_offset_seconds) = kept;
        }
        Ok(())
    })?;
    out.push_str(&format!(
        "[reset] Deleting contents of directories: {dirs:?}\n[reset] Deleting files: {files:?}\n\nThe reset process does not clean CNI configuration. To do so, you must remove /etc/cni/net.d\n\nThe reset process does not reset or clean up iptables rules or IPVS tables.\nIf you wish to reset iptables, you must do so manually by using the \"iptables\" command.\n\nIf your cluster was setup to utilize IPVS, run ipvsadm --clear (or similar)\nto reset your system's IPVS tables.\n\nThe reset process does not clean your kubeconfig files and you must remove them manually.\nPlease, check the contents of the $HOME/.kube/config file.\n"
    ));
    Ok(Outcome::ok(out))
}

/// Wait until `node`'s etcd member serves (its `/health` passes), up to `limit`.
/// Until the kube-apiserver container of the manifest now in place listens (the kubelet
/// starts it within moments of the manifest; kubeadm's api-check waits for `/livez`), up to
/// `limit`. No manifest: nothing to wait for.
fn wait_for_apiserver(limit: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    let state = super::host::state_dir();
    loop {
        let Some((_, container)) = super::pod::static_pod(Path::new(super::apiserver::MANIFEST), &state) else {
            return true;
        };
        let status = super::apiserver::pod_status();
        if status.running && status.container == container {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn wait_for_etcd(node: &str, limit: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if super::etcd::member_serving(node) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    false
}

/// kubeadm's own etcd client on a control plane: the local etcd CA and the API server's
/// etcd client certificate, against the members that serve (kubeadm's etcdutil dials the
/// API endpoints of the control planes it finds in the cluster).
fn etcd_client(cluster: &Cluster, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|(name, n)| n.control_plane && super::etcd::member_serving(name))
        .map(|(_, n)| format!("https://{}:2379", n.address))
        .collect();
    if urls.is_empty() {
        anyhow::bail!("no etcd member of the cluster is healthy");
    }
    super::etcd::etcdctl_at(
        Path::new(super::etcd::IMAGE_BIN),
        None,
        &urls.join(","),
        Path::new("/etc/kubernetes/pki/etcd/ca.crt"),
        Path::new("/etc/kubernetes/pki/apiserver-etcd-client.crt"),
        args,
        None,
    )
}

/// A member as `etcdctl member list -w json` gives it.
struct EtcdMember {
    /// Hexadecimal, as `member promote` and `member remove` take it.
    id: String,
    /// Empty until the member first started.
    name: String,
    peer_urls: Vec<String>,
    learner: bool,
}

fn etcd_members(cluster: &Cluster) -> anyhow::Result<Vec<EtcdMember>> {
    let out = etcd_client(cluster, &["member", "list", "-w", "json"])?;
    let v: Value = serde_json::from_slice(&out)?;
    Ok(v["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| EtcdMember {
            id: format!("{:x}", m["ID"].as_u64().unwrap_or(0)),
            name: m["name"].as_str().unwrap_or("").to_string(),
            peer_urls: m["peerURLs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect(),
            learner: m["isLearner"].as_bool().unwrap_or(false),
        })
        .collect())
}

/// `member add NODE --learner`: the other members, `NAME=PEER_URL,...`, as the manifest's
/// `--initial-cluster` lists them. etcd refuses a member while its leader has not been
/// connected to a quorum for 5 s ("etcdserver: unhealthy cluster", as right after another
/// join): kubeadm retries (etcdutil's add-member backoff), and so does this, for up to a
/// minute. A member already added with this peer URL (an earlier attempt) is taken as is.
fn etcd_member_add(cluster: &Cluster, node: &str, advertise: &str) -> anyhow::Result<String> {
    let peer_url = format!("https://{advertise}:2380");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let attempt = etcd_members(cluster).and_then(|members| {
            if members.iter().any(|m| m.peer_urls.contains(&peer_url)) {
                return Ok(members);
            }
            etcd_client(cluster, &["member", "add", node, &format!("--peer-urls={peer_url}"), "--learner"])?;
            etcd_members(cluster)
        });
        match attempt {
            Ok(members) => {
                return Ok(members
                    .iter()
                    .filter(|m| !m.peer_urls.contains(&peer_url))
                    .flat_map(|m| m.peer_urls.iter().map(|u| format!("{}={u}", m.name)))
                    .collect::<Vec<_>>()
                    .join(","));
            }
            Err(e) if std::time::Instant::now() >= until => return Err(e),
            Err(_) => std::thread::sleep(std::time::Duration::from_secs(1)),
        }
    }
}

/// Promote this host's learner once it caught up with the leader (etcd refuses before:
/// "can only promote a learner member which is in sync with leader"), then wait until it
/// serves.
fn etcd_member_promote(node: &str) -> anyhow::Result<()> {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut last = String::new();
    while std::time::Instant::now() < until {
        let cluster = read_cluster();
        match etcd_members(&cluster) {
            Ok(members) => match members.iter().find(|m| m.name == node || m.name.is_empty()) {
                Some(m) if m.learner => match etcd_client(&cluster, &["member", "promote", &m.id]) {
                    Ok(_) => continue,
                    Err(e) => last = format!("{e:#}"),
                },
                Some(_) if wait_for_etcd(node, std::time::Duration::from_secs(60)) => return Ok(()),
                Some(_) => anyhow::bail!("the new etcd member {node} did not become healthy"),
                None => anyhow::bail!("the new etcd member {node} is not in the member list"),
            },
            Err(e) => last = format!("{e:#}"),
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    anyhow::bail!("timed out waiting for the new etcd member {node} to join the cluster: {last}")
}

/// Whether some host of the bed still has etcd data (a member's `member` directory).
fn etcd_data_left() -> bool {
    std::fs::read_dir(super::cluster::PEERS_DIR)
        .map(|d| d.flatten().any(|e| e.path().join("upper/var/lib/etcd/member").exists()))
        .unwrap_or(false)
}

/// kubeadm reset's remove-etcd-member phase: this host's member removed, found by its peer
/// URL; the last member is not removed (RemoveStackedEtcdMemberFromCluster skips it). Returns
/// how many members remain.
fn etcd_member_remove_self(node: &str) -> anyhow::Result<usize> {
    let cluster = read_cluster();
    let ip = own_ip();
    let members = etcd_members(&cluster)?;
    let own = members.iter().find(|m| m.peer_urls.iter().any(|u| u.contains(&format!("//{ip}:"))) || m.name == node);
    match own {
        Some(_) if members.len() == 1 => Ok(0),
        Some(m) => {
            etcd_client(&cluster, &["member", "remove", &m.id])?;
            Ok(members.len() - 1)
        }
        None => Ok(members.len()),
    }
}
