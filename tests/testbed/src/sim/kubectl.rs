//! kubectl: get nodes, cordon, uncordon, drain, apply -f, version (kubeadm-behaviour.md §7).
//! kubelet: `--version`.

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::Outcome;
use super::cluster::{Cluster, now_unix, read_cluster, with_cluster};
use super::host::with_host;
use super::kubeadm::{V, installed};

fn flag<'a>(args: &'a [String], names: &[&str]) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(i, a)| {
        for n in names {
            if a == n {
                return args.get(i + 1).map(String::as_str);
            }
            if let Some(v) = a.strip_prefix(&format!("{n}=")) {
                return Some(v);
            }
        }
        None
    })
}

/// Arguments that are not flags (and not flag values).
fn positional(args: &[String]) -> Vec<&str> {
    const WITH_VALUE: &[&str] = &[
        "-o",
        "--output",
        "--kubeconfig",
        "-f",
        "--filename",
        "--timeout",
        "--grace-period",
        "-n",
        "--namespace",
        "--selector",
        "-l",
        "--server",
        "-s",
        "--tls-server-name",
        "--token",
        "--certificate-authority",
        "--client-certificate",
        "--client-key",
        "--raw",
    ];
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if WITH_VALUE.contains(&a.as_str()) {
            skip = true;
        } else if !a.starts_with('-') {
            out.push(a.as_str());
        }
    }
    out
}

/// The API server a kubeconfig (or `--server`) points at, if the cluster answers there as
/// this host dials it and accepts the kubeconfig's credentials over TLS, as the real kubectl
/// finds out with its first request ([`super::client`]).
fn connect(args: &[String]) -> Result<Cluster, Outcome> {
    let path = super::client::kubeconfig_path(flag(args, &["--kubeconfig"]));
    let mut creds = match path.as_deref().filter(|p| p.exists() || flag(args, &["--kubeconfig"]).is_some()) {
        Some(p) => super::client::credentials(p).map_err(|e| Outcome::fail(1, format!("{e}\n")))?,
        None => super::client::Credentials::default(),
    };
    if let Some(server) = flag(args, &["--server", "-s"]) {
        creds.server = format!("https://{}", server.trim_start_matches("https://"));
    }
    if args.iter().any(|a| a == "--insecure-skip-tls-verify" || a == "--insecure-skip-tls-verify=true") {
        creds.insecure = true;
    }
    // kubectl's flags over the kubeconfig's fields (k8s.io/cli-runtime genericclioptions).
    if let Some(name) = flag(args, &["--tls-server-name"]) {
        creds.tls_server_name = Some(name.to_string());
    }
    if let Some(token) = flag(args, &["--token"]) {
        creds.token = Some(token.to_string());
    }
    let file = |name: &str| -> Result<Option<Vec<u8>>, Outcome> {
        match flag(args, &[name]) {
            Some(path) => std::fs::read(path)
                .map(Some)
                .map_err(|e| Outcome::fail(1, format!("error: unable to read {name} {path}: {e}\n"))),
            None => Ok(None),
        }
    };
    if let Some(ca) = file("--certificate-authority")? {
        creds.ca_pem = Some(ca);
    }
    if let Some(cert) = file("--client-certificate")? {
        creds.client_cert_pem = Some(cert);
    }
    if let Some(key) = file("--client-key")? {
        creds.client_key_pem = Some(key);
    }
    if creds.server.is_empty() {
        return Err(Outcome::fail(
            1,
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?\n",
        ));
    }
    let server = creds.server.trim_start_matches("https://").trim_end_matches('/').to_string();
    let cluster = read_cluster();
    let own = super::reach::own_name();
    // Where a server listens, the TLS session and the credentials decide first.
    if let Some(target) = super::reach::dial_target(&cluster, &own, &server) {
        match super::client::discover(&creds, &target) {
            Ok(_) => {}
            Err(super::client::Refusal::Unauthorized) => {
                return Err(Outcome::fail(1, "error: You must be logged in to the server (Unauthorized)\n"));
            }
            Err(super::client::Refusal::Connect(e)) if !e.ends_with("connection refused") => {
                return Err(Outcome::fail(1, format!("Unable to connect to the server: {e}\n")));
            }
            Err(super::client::Refusal::Connect(_)) => {}
        }
    }
    // Then whether it serves: without its etcd, the simulator answers at once what the real
    // server answers after its request timeout.
    match super::reach::dial(&cluster, &own, &server) {
        Ok(()) => Ok(cluster),
        Err(e) if e.ends_with("connection refused") => Err(Outcome::fail(
            1,
            format!("The connection to the server {server} was refused - did you specify the right host or port?\n"),
        )),
        Err(e) => Err(Outcome::fail(1, format!("Unable to connect to the server: {e}\n"))),
    }
}

/// Whether a client with the kubeconfig `path` gets through to a serving API server from this
/// host (what kubeadm's own client finds with admin.conf).
pub(crate) fn reachable_with(path: &str) -> bool {
    connect(&["--kubeconfig".to_string(), path.to_string()]).is_ok()
}

pub fn kubectl(args: &[String]) -> anyhow::Result<Outcome> {
    let pos = positional(args);
    match pos.first().copied() {
        Some("version") => version(args),
        Some("get") if pos.get(1).is_some_and(|r| matches!(*r, "nodes" | "node" | "no")) => Ok(match connect(args) {
            Ok(c) => get_nodes(
                &c,
                flag(args, &["-o", "--output"]),
                pos.get(2).copied(),
                !args.iter().any(|a| a == "--no-headers" || a == "--no-headers=true"),
            ),
            Err(o) => o,
        }),
        Some("get") if pos.get(1).is_some_and(|r| matches!(*r, "configmap" | "configmaps" | "cm")) => {
            Ok(match connect(args) {
                Ok(c) => get_configmap(&c, pos.get(2).copied(), flag(args, &["-n", "--namespace"]), args),
                Err(o) => o,
            })
        }
        // `get --raw /readyz` (and /livez, /healthz): "ok" from a serving API server.
        Some("get") if let Some(path) = flag(args, &["--raw"]) => Ok(match (connect(args), path) {
            (Ok(_), "/readyz" | "/livez" | "/healthz") => Outcome::ok("ok"),
            (Ok(_), other) => Outcome::fail(
                1,
                format!("Error from server (NotFound): the server could not find the requested resource ({other})\n"),
            ),
            (Err(o), _) => o,
        }),
        Some("get")
            if pos.get(1).is_some_and(|r| matches!(*r, "pdb" | "poddisruptionbudgets" | "poddisruptionbudget")) =>
        {
            Ok(match connect(args) {
                Ok(c) => get_budgets(&c, args),
                Err(o) => o,
            })
        }
        Some("get") if pos.get(1).is_some_and(|r| matches!(*r, "pods" | "pod" | "po")) => Ok(match connect(args) {
            Ok(c) => get_pods(&c, args),
            Err(o) => o,
        }),
        Some("delete") if pos.get(1).is_some_and(|r| matches!(*r, "node" | "nodes" | "no")) => {
            if let Err(o) = connect(args) {
                return Ok(o);
            }
            let ignore = args.iter().any(|a| a == "--ignore-not-found" || a == "--ignore-not-found=true");
            let names: Vec<String> = pos[2..].iter().map(|s| s.to_string()).collect();
            with_cluster(|c| {
                let mut out = Outcome::ok(String::new());
                for name in &names {
                    if c.nodes.remove(name).is_some() {
                        // The node's pods go with it (the pod GC; their controllers recreate them).
                        c.pods.retain(|p| p.node != *name);
                        c.event("delete-node", name);
                        out.stdout.push_str(&format!("node \"{name}\" deleted\n"));
                    } else if !ignore {
                        out.code = 1;
                        out.stderr.push_str(&format!("Error from server (NotFound): nodes \"{name}\" not found\n"));
                    }
                }
                Ok(out)
            })
        }
        Some("cordon") | Some("uncordon") => {
            if let Err(o) = connect(args) {
                return Ok(o);
            }
            let cordon = pos[0] == "cordon";
            let Some(node) = pos.get(1).map(|s| s.to_string()) else {
                return Ok(Outcome::fail(1, format!("error: USAGE: {} NODE [flags]\n", pos[0])));
            };
            with_cluster(|c| Ok(set_cordon(c, &node, cordon)))
        }
        // `annotate [--overwrite] node NAME KEY=VALUE... KEY-...` (kubectl's annotate.go: an
        // existing key needs --overwrite; removing a key that is not there is no error).
        Some("annotate") if pos.get(1).is_some_and(|r| matches!(*r, "node" | "nodes" | "no")) => {
            if let Err(o) = connect(args) {
                return Ok(o);
            }
            let Some(node) = pos.get(2).map(|s| s.to_string()) else {
                return Ok(Outcome::fail(1, "error: you must specify the type of resource to get\n"));
            };
            let overwrite = args.iter().any(|a| a == "--overwrite" || a == "--overwrite=true");
            let changes: Vec<String> = pos[3..].iter().map(|s| s.to_string()).collect();
            with_cluster(|c| {
                let Some(n) = c.nodes.get_mut(&node) else {
                    return Ok(Outcome::fail(1, format!("Error from server (NotFound): nodes \"{node}\" not found\n")));
                };
                for change in &changes {
                    if let Some(key) = change.strip_suffix('-') {
                        n.annotations.remove(key);
                    } else if let Some((key, value)) = change.split_once('=') {
                        if !overwrite && n.annotations.get(key).is_some_and(|v| v != value) {
                            return Ok(Outcome::fail(
                                1,
                                format!(
                                    "error: --overwrite is false but found the following declared annotation(s): '{key}' already has a value ({})\n",
                                    n.annotations[key]
                                ),
                            ));
                        }
                        n.annotations.insert(key.to_string(), value.to_string());
                    }
                }
                Ok(Outcome::ok(format!("node/{node} annotated\n")))
            })
        }
        Some("drain") => {
            if let Err(o) = connect(args) {
                return Ok(o);
            }
            let Some(node) = pos.get(1).map(|s| s.to_string()) else {
                return Ok(Outcome::fail(1, "error: USAGE: drain NODE [flags]\n"));
            };
            let opts = DrainOptions {
                ignore_daemonsets: args.iter().any(|a| a == "--ignore-daemonsets" || a == "--ignore-daemonsets=true"),
                delete_emptydir_data: args
                    .iter()
                    .any(|a| a == "--delete-emptydir-data" || a == "--delete-emptydir-data=true"),
                force: args.iter().any(|a| a == "--force" || a == "--force=true"),
                timeout_s: flag(args, &["--timeout"]).map(go_seconds).unwrap_or(0),
            };
            drain(&node, &opts)
        }
        Some("apply") => {
            if let Err(o) = connect(args) {
                return Ok(o);
            }
            let Some(file) = flag(args, &["-f", "--filename"]) else {
                return Ok(Outcome::fail(1, "error: must specify one of -f and -k\n"));
            };
            apply(file)
        }
        Some(other) => Ok(Outcome::fail(1, format!("error: the simulator's kubectl does not know \"{other}\"\n"))),
        None => Ok(Outcome::fail(1, "kubectl controls the Kubernetes cluster manager.\n")),
    }
}

/// The ConfigMaps kubeadm keeps: `kube-system/kubeadm-config` with the ClusterConfiguration.
fn get_configmap(c: &Cluster, name: Option<&str>, namespace: Option<&str>, args: &[String]) -> Outcome {
    let namespace = namespace.unwrap_or("default");
    if name != Some("kubeadm-config") || namespace != "kube-system" {
        return Outcome::fail(
            1,
            format!("Error from server (NotFound): configmaps \"{}\" not found\n", name.unwrap_or("")),
        );
    }
    let doc = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kubeadm-config", "namespace": "kube-system"},
        "data": {"ClusterConfiguration": c.cluster_config_yaml},
    });
    match flag(args, &["-o", "--output"]) {
        Some("json") => Outcome::ok(format!("{}\n", serde_json::to_string_pretty(&doc).unwrap_or_default())),
        _ => Outcome::ok("NAME             DATA   AGE\nkubeadm-config   1      1d\n"),
    }
}

fn client_version() -> anyhow::Result<V> {
    with_host(|s| Ok(installed(s, "kubectl")))?.ok_or_else(|| anyhow::anyhow!("kubectl is not installed"))
}

fn version_json(v: V) -> Value {
    json!({"major": "1", "minor": v.minor.to_string(), "gitVersion": v.to_string(), "gitTreeState": "clean", "goVersion": "go1.23.6", "compiler": "gc", "platform": "linux/amd64"})
}

fn version(args: &[String]) -> anyhow::Result<Outcome> {
    let client = client_version()?;
    let client_only = args.iter().any(|a| a == "--client" || a == "--client=true");
    let server = if client_only { None } else { Some(connect(args)) };
    let json_out = flag(args, &["-o", "--output"]) == Some("json");
    let server_v = match &server {
        Some(Ok(c)) => V::parse(&c.kubernetes_version),
        _ => None,
    };
    let mut out = if json_out {
        let mut doc = json!({"clientVersion": version_json(client), "kustomizeVersion": "v5.4.2"});
        if let Some(s) = server_v {
            doc["serverVersion"] = version_json(s);
        }
        Outcome::ok(format!("{}\n", serde_json::to_string_pretty(&doc)?))
    } else {
        let mut text = format!("Client Version: {client}\nKustomize Version: v5.4.2\n");
        if let Some(s) = server_v {
            let _ = writeln!(text, "Server Version: {s}");
        }
        Outcome::ok(text)
    };
    if let Some(Err(refused)) = server {
        out.stderr = refused.stderr;
        out.code = 1;
    }
    Ok(out)
}

pub(crate) fn age(created: i64) -> String {
    let s = (now_unix() - created).max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m", s / 60)
    } else if s < 86_400 {
        format!("{}h", s / 3600)
    } else {
        format!("{}d", s / 86_400)
    }
}

pub(crate) fn status(c: &Cluster, name: &str) -> String {
    let n = &c.nodes[name];
    let mut s = if !n.kubelet_running {
        "NotReady".to_string()
    } else if c.node_ready(name) {
        "Ready".to_string()
    } else {
        "NotReady".to_string()
    };
    if n.unschedulable {
        s.push_str(",SchedulingDisabled");
    }
    s
}

pub(crate) fn node_json(c: &Cluster, name: &str) -> Value {
    let n = &c.nodes[name];
    let (ready_status, reason, message) = if !n.kubelet_running {
        ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
    } else if c.cni_applied {
        ("True", "KubeletReady", "kubelet is posting ready status")
    } else {
        (
            "False",
            "KubeletNotReady",
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
        )
    };
    let mut labels = json!({"beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux"});
    for (k, v) in &n.labels {
        labels[k] = json!(v);
    }
    let mut taints: Vec<Value> = n
        .taints
        .iter()
        .map(|t| {
            let (kv, effect) = t.rsplit_once(':').unwrap_or((t, "NoSchedule"));
            match kv.split_once('=') {
                Some((k, v)) => json!({"effect": effect, "key": k, "value": v}),
                None => json!({"effect": effect, "key": kv}),
            }
        })
        .collect();
    if n.unschedulable {
        taints.push(json!({"effect": "NoSchedule", "key": "node.kubernetes.io/unschedulable", "timeAdded": "2025-01-01T00:00:00Z"}));
    }
    let mut spec = json!({});
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    if n.unschedulable {
        spec["unschedulable"] = json!(true);
    }
    let mut annotations = json!({"kubeadm.alpha.kubernetes.io/cri-socket": "unix:///var/run/containerd/containerd.sock", "node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"});
    for (k, v) in &n.annotations {
        annotations[k] = json!(v);
    }
    let created = time::OffsetDateTime::from_unix_timestamp(n.created_unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok());
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "annotations": annotations,
            "creationTimestamp": created,
            "labels": labels,
            "name": name,
        },
        "spec": spec,
        "status": {
            "addresses": [{"address": n.address, "type": "InternalIP"}, {"address": name, "type": "Hostname"}],
            "conditions": [
                {"message": "kubelet has sufficient memory available", "reason": "KubeletHasSufficientMemory", "status": "False", "type": "MemoryPressure"},
                {"message": "kubelet has no disk pressure", "reason": "KubeletHasNoDiskPressure", "status": "False", "type": "DiskPressure"},
                {"message": "kubelet has sufficient PID available", "reason": "KubeletHasSufficientPID", "status": "False", "type": "PIDPressure"},
                {"message": message, "reason": reason, "status": ready_status, "type": "Ready"},
            ],
            "nodeInfo": {"architecture": "amd64", "containerRuntimeVersion": "containerd://1.6.20", "kernelVersion": "6.1.0-28-amd64", "kubeProxyVersion": n.kubelet_version, "kubeletVersion": n.kubelet_version, "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)"},
        },
    })
}

/// JSON the way kubectl prints it: 4-space indent, keys sorted.
fn pretty4(v: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(b"    "));
    let _ = v.serialize(&mut ser);
    String::from_utf8_lossy(&buf).into_owned()
}

fn get_nodes(c: &Cluster, output: Option<&str>, only: Option<&str>, headers: bool) -> Outcome {
    let names: Vec<&String> = c.nodes.keys().filter(|n| only.is_none_or(|o| o == n.as_str())).collect();
    if let Some(o) = only
        && names.is_empty()
    {
        return Outcome::fail(1, format!("Error from server (NotFound): nodes \"{o}\" not found\n"));
    }
    match output {
        Some("json") => {
            let doc = match only {
                Some(n) => node_json(c, n),
                None => {
                    json!({"apiVersion": "v1", "items": names.iter().map(|n| node_json(c, n)).collect::<Vec<_>>(), "kind": "List", "metadata": {"resourceVersion": ""}})
                }
            };
            Outcome::ok(format!("{}\n", pretty4(&doc)))
        }
        Some("name") => Outcome::ok(names.iter().map(|n| format!("node/{n}\n")).collect::<String>()),
        _ => {
            let rows: Vec<[String; 5]> = names
                .iter()
                .map(|n| {
                    let node = &c.nodes[*n];
                    let roles = if node.control_plane { "control-plane" } else { "<none>" };
                    [
                        n.to_string(),
                        status(c, n),
                        roles.to_string(),
                        age(node.created_unix),
                        node.kubelet_version.clone(),
                    ]
                })
                .collect();
            let header = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"].map(String::from);
            // Columns are as wide as what is printed: without the header, the rows alone.
            let printed: Vec<&[String; 5]> = headers.then_some(&header).into_iter().chain(rows.iter()).collect();
            let mut widths = [0usize; 5];
            for r in &printed {
                for (i, cell) in r.iter().enumerate() {
                    widths[i] = widths[i].max(cell.len());
                }
            }
            let mut out = String::new();
            for r in &printed {
                let line: Vec<String> = r
                    .iter()
                    .enumerate()
                    .map(|(i, cell)| if i < 4 { format!("{cell:<w$}", w = widths[i] + 3) } else { cell.clone() })
                    .collect();
                let _ = writeln!(out, "{}", line.concat());
            }
            Outcome::ok(out)
        }
    }
}

/// The namespace a `get` is limited to: None with `-A`, else `-n NS` or `default`.
fn namespace_scope(args: &[String]) -> Option<String> {
    if args.iter().any(|a| a == "-A" || a == "--all-namespaces") {
        return None;
    }
    Some(flag(args, &["-n", "--namespace"]).unwrap_or("default").to_string())
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| -> String {
        let last = cells.len() - 1;
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| if i < last { format!("{c:<w$}", w = widths[i] + 3) } else { c })
            .collect::<String>()
            + "\n"
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

fn get_budgets(c: &Cluster, args: &[String]) -> Outcome {
    let scope = namespace_scope(args);
    let budgets: Vec<&super::cluster::Budget> =
        c.budgets.iter().filter(|b| scope.as_ref().is_none_or(|ns| *ns == b.namespace)).collect();
    if flag(args, &["-o", "--output"]) == Some("json") {
        let items: Vec<Value> = budgets
            .iter()
            .map(|b| {
                let mut spec = json!({"selector": {"matchLabels": b.selector}});
                if let Some(m) = b.min_available {
                    spec["minAvailable"] = json!(m);
                }
                if let Some(m) = b.max_unavailable {
                    spec["maxUnavailable"] = json!(m);
                }
                json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": b.name, "namespace": b.namespace}, "spec": spec, "status": {"disruptionsAllowed": disruptions_allowed(c, b).max(0)}})
            })
            .collect();
        return Outcome::ok(format!(
            "{}\n",
            pretty4(&json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}))
        ));
    }
    if budgets.is_empty() {
        return Outcome {
            code: 0,
            stdout: String::new(),
            stderr: match &scope {
                Some(ns) => format!("No resources found in {ns} namespace.\n"),
                None => "No resources found\n".into(),
            },
        };
    }
    let rows: Vec<Vec<String>> = budgets
        .iter()
        .map(|b| {
            let mut r = Vec::new();
            if scope.is_none() {
                r.push(b.namespace.clone());
            }
            r.extend([
                b.name.clone(),
                b.min_available.map(|m| m.to_string()).unwrap_or("N/A".into()),
                b.max_unavailable.map(|m| m.to_string()).unwrap_or("N/A".into()),
                disruptions_allowed(c, b).max(0).to_string(),
                "1m".into(),
            ]);
            r
        })
        .collect();
    let mut header = vec!["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"];
    if scope.is_none() {
        header.insert(0, "NAMESPACE");
    }
    Outcome::ok(table(&header, &rows))
}

fn get_pods(c: &Cluster, args: &[String]) -> Outcome {
    let scope = namespace_scope(args);
    let node = flag(args, &["--field-selector"]).and_then(|f| f.strip_prefix("spec.nodeName=")).map(str::to_string);
    let pods: Vec<&super::cluster::Pod> = c
        .pods
        .iter()
        .filter(|p| scope.as_ref().is_none_or(|ns| *ns == p.namespace) && node.as_ref().is_none_or(|n| *n == p.node))
        .collect();
    if flag(args, &["-o", "--output"]) == Some("json") {
        let items: Vec<Value> = pods
            .iter()
            .map(|p| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": p.name, "namespace": p.namespace, "labels": p.labels}, "spec": {"nodeName": p.node}, "status": {"phase": "Running"}}))
            .collect();
        return Outcome::ok(format!(
            "{}\n",
            pretty4(&json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}))
        ));
    }
    let rows: Vec<Vec<String>> = pods
        .iter()
        .map(|p| {
            let mut r = Vec::new();
            if scope.is_none() {
                r.push(p.namespace.clone());
            }
            r.extend([p.name.clone(), "1/1".into(), "Running".into(), "0".into(), "1m".into()]);
            r
        })
        .collect();
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if scope.is_none() {
        header.insert(0, "NAMESPACE");
    }
    Outcome::ok(table(&header, &rows))
}

fn set_cordon(c: &mut Cluster, node: &str, cordon: bool) -> Outcome {
    let Some(n) = c.nodes.get_mut(node) else {
        return Outcome::fail(1, format!("Error from server (NotFound): nodes \"{node}\" not found\n"));
    };
    // drain.go name printer: `node/N cordoned`, `node/N already cordoned` (§7.1).
    let verb = if cordon { "cordoned" } else { "uncordoned" };
    if n.unschedulable == cordon {
        return Outcome::ok(format!("node/{node} already {verb}\n"));
    }
    n.unschedulable = cordon;
    c.event(if cordon { "cordon" } else { "uncordon" }, node);
    Outcome::ok(format!("node/{node} {verb}\n"))
}

/// The DaemonSet pods every node runs: kube-proxy, and flannel once it is applied.
fn daemonset_pods(c: &Cluster, node: &str) -> Vec<String> {
    let suffix: String = node.bytes().map(|b| (b'a' + b % 26) as char).take(5).collect();
    let mut pods = Vec::new();
    if c.cni_applied {
        pods.push(format!("kube-flannel/kube-flannel-ds-{suffix}"));
    }
    pods.push(format!("kube-system/kube-proxy-{suffix}"));
    pods
}

struct DrainOptions {
    ignore_daemonsets: bool,
    delete_emptydir_data: bool,
    force: bool,
    /// 0: wait forever (kubectl's default).
    timeout_s: u64,
}

/// `5m0s`, `30s`, `90` → seconds.
fn go_seconds(s: &str) -> u64 {
    let mut total = 0u64;
    let mut num = String::new();
    for ch in s.chars() {
        match ch {
            '0'..='9' => num.push(ch),
            'h' | 'm' | 's' => {
                let n: u64 = num.parse().unwrap_or(0);
                total += n * match ch {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
                num.clear();
            }
            _ => {}
        }
    }
    total + num.parse::<u64>().unwrap_or(0)
}

/// Go's `time.Duration` text for whole seconds (`1m0s`, `30s`).
fn go_duration(s: u64) -> String {
    let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

type Labels = std::collections::BTreeMap<String, String>;

fn matches(selector: &Labels, labels: &Labels) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// How many more pods a budget lets go now (the disruption controller's arithmetic).
fn disruptions_allowed(c: &Cluster, b: &super::cluster::Budget) -> i64 {
    let selected: Vec<&super::cluster::Pod> =
        c.pods.iter().filter(|p| p.namespace == b.namespace && matches(&b.selector, &p.labels)).collect();
    let healthy = selected.iter().filter(|p| c.node_ready(&p.node)).count() as i64;
    match (b.min_available, b.max_unavailable) {
        (Some(min), _) => healthy - min as i64,
        (None, Some(max)) => max as i64 - (selected.len() as i64 - healthy),
        (None, None) => healthy,
    }
}

/// Nodes pods can go to: Ready, schedulable, without taints (control planes keep theirs).
fn schedulable(c: &Cluster, exclude: &str) -> Vec<String> {
    c.nodes
        .iter()
        .filter(|(n, node)| n.as_str() != exclude && !node.unschedulable && node.taints.is_empty() && c.node_ready(n))
        .map(|(n, _)| n.clone())
        .collect()
}

/// `kubectl drain`: cordon, refuse what the filters refuse, evict through the disruption
/// budgets (retried every 5 s until `--timeout`), report as kubectl does (§7.1, §7.2).
/// An aggregate of errors as Kubernetes prints one (apimachinery's `utilerrors.NewAggregate`):
/// the message alone for one error, `[a, b]` for several.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        _ => format!("[{}]", errors.join(", ")),
    }
}

/// kubectl drain's closing report when a node could not be drained (drain.go, RunDrain).
fn report_drain_failure(stderr: &mut String, node: &str, errors: &[String]) {
    let _ = write!(
        stderr,
        "error: unable to drain node \"{node}\" due to error:{}, continuing command...\nThere are pending nodes to be drained:\n {node}\n",
        aggregate(errors)
    );
    for e in errors {
        let _ = writeln!(stderr, "{e}");
    }
}

fn drain(node: &str, o: &DrainOptions) -> anyhow::Result<Outcome> {
    let (mut out, pods, ds) = with_cluster(|c| {
        if !c.nodes.contains_key(node) {
            return Ok((
                Outcome::fail(1, format!("Error from server (NotFound): nodes \"{node}\" not found\n")),
                Vec::new(),
                Vec::new(),
            ));
        }
        let out = set_cordon(c, node, true);
        let pods: Vec<super::cluster::Pod> = c.pods.iter().filter(|p| p.node == node).cloned().collect();
        Ok((out, pods, daemonset_pods(c, node)))
    })?;
    if out.code != 0 {
        return Ok(out);
    }
    // kubectl's pod filters (k/k staging/src/k8s.io/kubectl/pkg/drain/filters.go).
    let mut blocking = Vec::new();
    if !o.ignore_daemonsets && !ds.is_empty() {
        blocking.push(format!(
            "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
            ds.join(", ")
        ));
    }
    let local: Vec<String> =
        pods.iter().filter(|p| p.empty_dir).map(|p| format!("{}/{}", p.namespace, p.name)).collect();
    if !o.delete_emptydir_data && !local.is_empty() {
        blocking.push(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {}",
            local.join(", ")
        ));
    }
    let bare: Vec<String> =
        pods.iter().filter(|p| p.owner.is_empty()).map(|p| format!("{}/{}", p.namespace, p.name)).collect();
    if !o.force && !bare.is_empty() {
        blocking.push(format!(
            "cannot delete Pods that declare no controller (use --force to override): {}",
            bare.join(", ")
        ));
    }
    if !blocking.is_empty() {
        report_drain_failure(&mut out.stderr, node, &blocking);
        out.code = 1;
        return Ok(out);
    }
    if !ds.is_empty() {
        let _ = writeln!(out.stderr, "Warning: ignoring DaemonSet-managed Pods: {}", ds.join(", "));
    }
    let started = std::time::Instant::now();
    let mut pending = pods;
    loop {
        let mut still = Vec::new();
        for pod in pending {
            let _ = writeln!(out.stdout, "evicting pod {}/{}", pod.namespace, pod.name);
            let evicted = with_cluster(|c| {
                let blocked = c.budgets.iter().any(|b| {
                    b.namespace == pod.namespace && matches(&b.selector, &pod.labels) && disruptions_allowed(c, b) <= 0
                });
                if blocked {
                    return Ok(false);
                }
                // The ReplicaSet replaces an evicted pod on another node at once.
                let targets = schedulable(c, node);
                if let Some(i) = c.pods.iter().position(|p| *p == pod) {
                    if pod.owner.is_empty() || targets.is_empty() {
                        c.pods.remove(i);
                    } else {
                        let p = &mut c.pods[i];
                        p.node = targets[i % targets.len()].clone();
                        let base =
                            p.name.rsplit_once('-').map(|(b, _)| b.to_string()).unwrap_or_else(|| p.name.clone());
                        p.name = format!("{base}-{:05x}", rand::random_range(0..0xfffffu32));
                    }
                }
                c.event(&format!("evict {}/{}", pod.namespace, pod.name), node);
                Ok(true)
            })?;
            if evicted {
                let _ = writeln!(out.stdout, "pod/{} evicted", pod.name);
            } else {
                let _ = writeln!(
                    out.stderr,
                    "error when evicting pods/\"{}\" -n \"{}\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.",
                    pod.name, pod.namespace
                );
                still.push(pod);
            }
        }
        if still.is_empty() {
            break;
        }
        if o.timeout_s > 0 && started.elapsed().as_secs() + 5 > o.timeout_s {
            std::thread::sleep(std::time::Duration::from_secs(o.timeout_s.saturating_sub(started.elapsed().as_secs())));
            let errors: Vec<String> = still
                .iter()
                .map(|p| {
                    format!(
                        "error when evicting pods/\"{}\" -n \"{}\": global timeout reached: {}",
                        p.name,
                        p.namespace,
                        go_duration(o.timeout_s)
                    )
                })
                .collect();
            let names: String = still.iter().map(|p| format!("pod/{}\n", p.name)).collect();
            let _ = write!(
                out.stderr,
                "There are pending pods in node \"{node}\" when an error occurred: {}\n{names}",
                aggregate(&errors)
            );
            report_drain_failure(&mut out.stderr, node, &errors);
            out.code = 1;
            with_cluster(|c| {
                c.event("drain-blocked", node);
                Ok(())
            })?;
            return Ok(out);
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
        pending = still;
    }
    with_cluster(|c| {
        c.event("drain", node);
        Ok(())
    })?;
    let _ = writeln!(out.stdout, "node/{node} drained");
    Ok(out)
}

/// Workloads a manifest creates: a Deployment's pods (spread over schedulable nodes, as the
/// scheduler would), a PodDisruptionBudget, a bare Pod.
fn create_workload(c: &mut Cluster, doc: &Value) {
    let ns = doc["metadata"]["namespace"].as_str().unwrap_or("default").to_string();
    let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
    let labels = |v: &Value| -> Labels {
        v.as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
            .unwrap_or_default()
    };
    match doc["kind"].as_str() {
        Some("Deployment") => {
            c.pods.retain(|p| !(p.namespace == ns && p.name.starts_with(&format!("{name}-"))));
            let replicas = doc["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
            let template = &doc["spec"]["template"];
            let empty_dir =
                template["spec"]["volumes"].as_array().is_some_and(|v| v.iter().any(|v| v.get("emptyDir").is_some()));
            let nodes = schedulable(c, "");
            for i in 0..replicas {
                let Some(node) = nodes.get(i % nodes.len().max(1)).cloned() else { break };
                c.pods.push(super::cluster::Pod {
                    namespace: ns.clone(),
                    name: format!("{name}-{:05x}", rand::random_range(0..0xfffffu32)),
                    node,
                    owner: "ReplicaSet".into(),
                    labels: labels(&template["metadata"]["labels"]),
                    empty_dir,
                });
            }
        }
        Some("Pod") => {
            let node = doc["spec"]["nodeName"]
                .as_str()
                .map(str::to_string)
                .or_else(|| schedulable(c, "").first().cloned())
                .unwrap_or_default();
            c.pods.push(super::cluster::Pod {
                namespace: ns,
                name,
                node,
                owner: String::new(),
                labels: labels(&doc["metadata"]["labels"]),
                empty_dir: false,
            });
        }
        Some("PodDisruptionBudget") => {
            c.budgets.retain(|b| !(b.namespace == ns && b.name == name));
            let spec = &doc["spec"];
            c.budgets.push(super::cluster::Budget {
                namespace: ns,
                name,
                selector: labels(&spec["selector"]["matchLabels"]),
                min_available: spec["minAvailable"].as_u64().map(|v| v as u32),
                max_unavailable: spec["maxUnavailable"].as_u64().map(|v| v as u32),
            });
        }
        _ => {}
    }
}

fn apply(file: &str) -> anyhow::Result<Outcome> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(_) => return Ok(Outcome::fail(1, format!("error: the path \"{file}\" does not exist\n"))),
    };
    let docs: Vec<Value> = match serde_saphyr::from_multiple(&text) {
        Ok(d) => d,
        Err(e) => return Ok(Outcome::fail(1, format!("error: error parsing {file}: {e}\n"))),
    };
    with_cluster(|c| {
        let mut out = String::new();
        for doc in docs.iter().filter(|d| d.is_object()) {
            let kind = doc["kind"].as_str().unwrap_or("").to_string();
            let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ns = doc["metadata"]["namespace"].as_str().unwrap_or("").to_string();
            let key = format!("{kind}/{ns}/{name}");
            let hash = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(doc.to_string().as_bytes()))
            };
            let verb = match c.applied.get(&key) {
                None => "created",
                Some(h) if *h == hash => "unchanged",
                Some(_) => "configured",
            };
            c.applied.insert(key, hash);
            let resource = match kind.as_str() {
                "ClusterRole" | "ClusterRoleBinding" => format!("{}.rbac.authorization.k8s.io", kind.to_lowercase()),
                "DaemonSet" | "Deployment" => format!("{}.apps", kind.to_lowercase()),
                "PodDisruptionBudget" => "poddisruptionbudget.policy".to_string(),
                other => other.to_lowercase(),
            };
            let _ = writeln!(out, "{resource}/{name} {verb}");
            if kind == "DaemonSet" && name == "kube-flannel-ds" {
                c.cni_applied = true;
            }
            create_workload(c, doc);
        }
        Ok(Outcome::ok(out))
    })
}

pub fn kubelet(args: &[String]) -> anyhow::Result<Outcome> {
    if args.iter().any(|a| a == "--version") {
        let v =
            with_host(|s| Ok(installed(s, "kubelet")))?.ok_or_else(|| anyhow::anyhow!("kubelet is not installed"))?;
        return Ok(Outcome::ok(format!("Kubernetes {v}\n")));
    }
    Ok(Outcome::fail(1, "kubelet runs under systemd here; the simulator only answers --version\n"))
}

/// The kubelet on this host started or stopped: the node's registration follows, with the
/// kubelet version installed now (restarting after a package upgrade re-registers it).
pub fn kubelet_changed(active: bool) -> anyhow::Result<()> {
    let (node, version) = with_host(|s| Ok((s.node_name.clone(), installed(s, "kubelet"))))?;
    let Some(node) = node else { return Ok(()) };
    // At its start, a kubelet without a valid client certificate makes its TLS bootstrap
    // (with only the bootstrap kubeconfig, as during a join).
    let has_config = std::path::Path::new("/var/lib/kubelet/config.yaml").exists();
    let bootstrap = std::path::Path::new(super::kubelet::BOOTSTRAP_KUBECONFIG).exists();
    if active && has_config && (bootstrap || std::path::Path::new(super::kubelet::KUBECONFIG).exists()) {
        let cluster = read_cluster();
        let said = super::kubelet::on_start(&cluster, &node)?;
        if let Some(line) = said {
            let log = super::host::state_dir().join("kubelet.log");
            if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
                use std::io::Write as _;
                let _ = writeln!(f, "{} {line}", super::cluster::now_unix());
            }
        }
    }
    let configured = has_config && std::path::Path::new(super::kubelet::KUBECONFIG).exists();
    // The kubelet's own state: no API call (it posts its status when it can).
    super::cluster::with_bed_state(|c| {
        let kubelet = c.kubelets.entry(node.clone()).or_insert_with(|| {
            let known = c.nodes.get(&node);
            super::cluster::Kubelet {
                running: known.is_some_and(|n| n.kubelet_running),
                version: known.map(|n| n.kubelet_version.clone()).unwrap_or_default(),
            }
        });
        kubelet.running = active && configured;
        if let Some(v) = version
            && active
        {
            kubelet.version = v.to_string();
        }
        let kubelet = kubelet.clone();
        if let Some(n) = c.nodes.get_mut(&node) {
            (n.kubelet_running, n.kubelet_version) = (kubelet.running, kubelet.version);
        }
        c.event(if active { "kubelet-start" } else { "kubelet-stop" }, &node);
        Ok(())
    })
}
