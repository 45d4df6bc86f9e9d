//! What kubectl prints, read: the node list and kubeadm's ClusterConfiguration, and how that
//! configuration compares with the inventory; and the readiness probe steps wait on. Pure.

use std::collections::BTreeMap;

use crate::facts::NodeView;
use crate::inventory::Inventory;
use crate::version::Version;

/// The kubeconfig a control plane's own kubectl uses.
pub const ADMIN_KUBECONFIG: &str = "/etc/kubernetes/admin.conf";

/// `kubectl get --raw /readyz` against `server` with `kubeconfig`'s credentials (checking the
/// certificate for `tls_server_name` when the address is not one it names); succeeds once that
/// API server is ready.
pub fn readyz_probe(kubeconfig: &str, server: &str, tls_server_name: Option<&str>) -> crate::script::Script {
    let mut words = vec!["kubectl", "--kubeconfig", kubeconfig, "--server", server];
    if let Some(name) = tls_server_name {
        words.extend(["--tls-server-name", name]);
    }
    words.extend(["get", "--raw", "/readyz"]);
    crate::script::Script::new().redirect(words, "/dev/null")
}

/// The nodes of `kubectl get nodes -o json`: kubelet version, Ready, cordoned.
pub fn parse_node_list(json: &str) -> Result<BTreeMap<String, NodeView>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("kubectl printed no node list ({e})"))?;
    let items = doc["items"].as_array().ok_or("kubectl printed no node list (no `items`)")?;
    let mut nodes = BTreeMap::new();
    for node in items {
        let Some(name) = node["metadata"]["name"].as_str() else { continue };
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .is_some_and(|c| c["status"] == "True");
        nodes.insert(
            name.to_string(),
            NodeView {
                kubelet_version: node["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or("").to_string(),
                ready,
                unschedulable: node["spec"]["unschedulable"].as_bool().unwrap_or(false),
                cordoned_by_kubewright: node["metadata"]["annotations"][CORDONED_BY_KUBEWRIGHT].is_string(),
            },
        );
    }
    Ok(nodes)
}

/// The ClusterConfiguration of `kubectl get configmap kubeadm-config -o json` (YAML text).
pub fn parse_kubeadm_config(json: &str) -> Result<String, String> {
    let doc: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("kubectl printed no ConfigMap ({e})"))?;
    doc["data"]["ClusterConfiguration"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "the kubeadm-config ConfigMap has no ClusterConfiguration".to_string())
}

/// The `kubernetesVersion` of a ClusterConfiguration (`v1.31.4` → 1.31.4).
pub fn cluster_version(cluster_configuration: &str) -> Option<Version> {
    let doc: serde_json::Value = serde_saphyr::from_str(cluster_configuration).ok()?;
    doc["kubernetesVersion"].as_str()?.trim_start_matches('v').parse().ok()
}

/// The ClusterConfiguration fields the inventory decides, as kubeadm stores them: dotted
/// field path → value.
pub fn expected_kubeadm_config(inv: &Inventory) -> BTreeMap<String, String> {
    let c = &inv.cluster;
    [
        ("clusterName", c.name.clone()),
        ("kubernetesVersion", format!("v{}", c.kubernetes_version)),
        ("controlPlaneEndpoint", c.control_plane_endpoint.to_string()),
        ("networking.podSubnet", c.network.pod_subnet.to_string()),
        ("networking.serviceSubnet", c.network.service_subnet.to_string()),
        ("networking.dnsDomain", c.network.dns_domain.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Where the cluster's ClusterConfiguration (as kubeadm stored it) differs from `expected`
/// ([`expected_kubeadm_config`]), one line per field: `field: the cluster has X, the inventory says Y`.
pub fn kubeadm_config_drift(
    expected: &BTreeMap<String, String>,
    cluster_configuration: &str,
) -> Result<Vec<String>, String> {
    let doc: serde_json::Value = serde_saphyr::from_str(cluster_configuration)
        .map_err(|e| format!("the cluster's ClusterConfiguration is not YAML: {e}"))?;
    let mut drift = Vec::new();
    for (field, want) in expected {
        let have = field.split('.').fold(&doc, |v, key| &v[key]);
        let have = match have {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "nothing".to_string(),
            other => other.to_string(),
        };
        if have != *want {
            drift.push(format!("{field}: the cluster has {have}, the inventory says {want}"));
        }
    }
    Ok(drift)
}

/// `kubectl drain` through the control plane's admin kubeconfig: evictions (never
/// `--disable-eviction`, so disruption budgets hold), DaemonSet pods left, emptyDir data
/// deleted, each pod given `grace_period_s` to stop, the whole drain `timeout_s`.
pub fn drain_command(node: &str, grace_period_s: u64, timeout_s: u64) -> crate::script::Script {
    crate::script::Script::new().cmd([
        "kubectl".to_string(),
        "--kubeconfig".into(),
        ADMIN_KUBECONFIG.into(),
        REQUEST_TIMEOUT.into(),
        "drain".into(),
        node.into(),
        "--ignore-daemonsets".into(),
        "--delete-emptydir-data".into(),
        format!("--grace-period={grace_period_s}"),
        format!("--timeout={timeout_s}s"),
    ])
}

/// The annotation a drain of kubewright's puts on a node before cordoning it: a later run (a
/// resumed upgrade) tells the cordon it made, which it lifts, from an admin's, which it keeps.
pub const CORDONED_BY_KUBEWRIGHT: &str = "kubewright.io/cordoned";

/// How long one request of kubectl may take: an API server that accepts and never answers
/// must not hold a run (kubectl's own default is to wait forever).
pub const REQUEST_TIMEOUT: &str = "--request-timeout=30s";

/// `kubectl` through the control plane's admin kubeconfig, each request bounded.
fn kubectl<'a>(args: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    ["kubectl", "--kubeconfig", ADMIN_KUBECONFIG, REQUEST_TIMEOUT].into_iter().chain(args).map(String::from).collect()
}

/// Mark `node` as cordoned by kubewright (before its drain cordons it).
pub fn mark_cordoned_command(node: &str) -> crate::script::Script {
    crate::script::Script::new().cmd(kubectl([
        "annotate",
        "--overwrite",
        "node",
        node,
        &format!("{CORDONED_BY_KUBEWRIGHT}=true"),
    ]))
}

/// `kubectl uncordon` and the mark of [`mark_cordoned_command`] removed (in that order: a run
/// stopped in between leaves an uncordoned node whose stale mark nothing reads).
pub fn uncordon_command(node: &str) -> crate::script::Script {
    crate::script::Script::new().cmd(kubectl(["uncordon", node])).cmd(kubectl([
        "annotate",
        "node",
        node,
        &format!("{CORDONED_BY_KUBEWRIGHT}-"),
    ]))
}

/// The pods a failed `kubectl drain` names as not evicted (`namespace/name`, in order, once
/// each), from its `error when evicting pods/"NAME" -n "NS"` lines.
pub fn pods_not_evicted(stderr: &str) -> Vec<String> {
    let mut pods: Vec<String> = Vec::new();
    for line in stderr.lines() {
        let Some(rest) = line.split("error when evicting pods/\"").nth(1) else { continue };
        let Some((name, rest)) = rest.split_once('"') else { continue };
        let Some(namespace) = rest.split("-n \"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        let pod = format!("{namespace}/{name}");
        if !pods.contains(&pod) {
            pods.push(pod);
        }
    }
    pods
}

/// Every PodDisruptionBudget, as JSON, through the control plane's admin kubeconfig.
pub fn budgets_probe() -> crate::script::Script {
    crate::script::Script::new().cmd([
        "kubectl",
        "--kubeconfig",
        ADMIN_KUBECONFIG,
        REQUEST_TIMEOUT,
        "get",
        "poddisruptionbudgets",
        "--all-namespaces",
        "-o",
        "json",
    ])
}

/// The budgets of `kubectl get pdb -A -o json` that allow no disruption now (`namespace/name`).
pub fn exhausted_budgets(json: &str) -> Vec<String> {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(json) else { return Vec::new() };
    doc["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|b| b["status"]["disruptionsAllowed"].as_i64().unwrap_or(0) <= 0)
        .filter_map(|b| {
            let m = &b["metadata"];
            Some(format!("{}/{}", m["namespace"].as_str()?, m["name"].as_str()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVENTORY: &str = "cluster:\n  name: demo\n  kubernetesVersion: 1.31.4\n  controlPlaneEndpoint: 10.0.0.100:6443\nhosts:\n  - {name: cp1, address: 10.0.0.11, roles: [control-plane]}\n";

    fn inventory() -> Inventory {
        crate::inventory::load("inv.yaml", INVENTORY)
            .map(|l| l.inventory)
            .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
    }

    /// As kubeadm stores it (defaults filled in).
    const STORED: &str = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nclusterName: demo\ncontrolPlaneEndpoint: 10.0.0.100:6443\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.4\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n";

    #[test]
    fn a_matching_configuration_has_no_drift_and_each_difference_is_named() {
        assert_eq!(kubeadm_config_drift(&expected_kubeadm_config(&inventory()), STORED).unwrap(), Vec::<String>::new());
        let drifted =
            STORED.replace("podSubnet: 10.244.0.0/16", "podSubnet: 10.32.0.0/12").replace("v1.31.4", "v1.30.8");
        assert_eq!(
            kubeadm_config_drift(&expected_kubeadm_config(&inventory()), &drifted).unwrap(),
            [
                "kubernetesVersion: the cluster has v1.30.8, the inventory says v1.31.4",
                "networking.podSubnet: the cluster has 10.32.0.0/12, the inventory says 10.244.0.0/16"
            ]
        );
        assert!(kubeadm_config_drift(&expected_kubeadm_config(&inventory()), "[not: a mapping").is_err());
    }

    #[test]
    fn nodes_are_read_with_version_readiness_and_cordon() {
        let list = r#"{"items": [
            {"metadata": {"name": "cp1"}, "spec": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}], "nodeInfo": {"kubeletVersion": "v1.31.4"}}},
            {"metadata": {"name": "w1"}, "spec": {"unschedulable": true}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}], "nodeInfo": {"kubeletVersion": "v1.30.8"}}}
        ]}"#;
        let nodes = parse_node_list(list).unwrap();
        assert_eq!(
            nodes["cp1"],
            NodeView {
                kubelet_version: "v1.31.4".into(),
                ready: true,
                unschedulable: false,
                cordoned_by_kubewright: false
            }
        );
        assert_eq!(
            nodes["w1"],
            NodeView {
                kubelet_version: "v1.30.8".into(),
                ready: false,
                unschedulable: true,
                cordoned_by_kubewright: false
            }
        );
        assert!(parse_node_list("Error from server").is_err());
    }

    #[test]
    fn a_blocked_drain_names_its_pods_and_the_budgets_that_allow_nothing() {
        let stderr = "evicting pod default/web-1\nerror when evicting pods/\"web-1\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\nerror when evicting pods/\"web-1\" -n \"default\": global timeout reached: 20s\nerror when evicting pods/\"db-0\" -n \"data\": global timeout reached: 20s\n";
        assert_eq!(pods_not_evicted(stderr), ["default/web-1", "data/db-0"]);
        assert!(pods_not_evicted("error: unable to drain node \"w1\"").is_empty());
        let budgets = r#"{"items": [
            {"metadata": {"name": "web", "namespace": "default"}, "status": {"disruptionsAllowed": 0}},
            {"metadata": {"name": "api", "namespace": "default"}, "status": {"disruptionsAllowed": 1}}
        ]}"#;
        assert_eq!(exhausted_budgets(budgets), ["default/web"]);
        assert!(exhausted_budgets("No resources found").is_empty());
        assert_eq!(
            drain_command("w1", 30, 300).commands(),
            [
                "kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=30s drain w1 --ignore-daemonsets --delete-emptydir-data --grace-period=30 --timeout=300s"
            ]
        );
    }
}
