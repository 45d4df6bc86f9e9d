//! Rendered configuration must be read by the tools as written: kubeadm YAML parses back,
//! carries the apiVersion/kind set kubeadm expects for the version, and every field exists
//! in kubeadm's API types; containerd TOML parses with the keys containerd reads.
//!
//! The structs below mirror the kubeadm types field for field, with unknown fields denied,
//! for the kinds kubewright renders. Sources checked:
//! - v1beta4: kubernetes/kubernetes cmd/kubeadm/app/apis/kubeadm/v1beta4/types.go (1.31+ tree,
//!   with `timeouts`, `encryptionAlgorithm`, `certificateValidityPeriod`).
//! - v1beta3: cmd/kubeadm/app/apis/kubeadm/v1beta3/types.go and the v1beta3 reference
//!   (kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta3/), see
//!   ../shared/reference/anchors.md §5.5. extraArgs are maps there, `{name, value}` lists in v1beta4.
//! - BootstrapToken: cmd/kubeadm/app/apis/bootstraptoken/v1/types.go; Taint: k8s.io/api core/v1.
//! - KubeletConfiguration / KubeProxyConfiguration: only the fields kubewright sets are listed,
//!   from k8s.io/kubelet/config/v1beta1/types.go and k8s.io/kube-proxy/config/v1alpha1/types.go.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

mod common;

use std::collections::BTreeMap;

use common::{file, inventory, render};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct BootstrapToken {
    token: String,
    description: Option<String>,
    ttl: Option<String>,
    expires: Option<String>,
    usages: Option<Vec<String>>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Taint {
    key: String,
    value: Option<String>,
    effect: String,
    time_added: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct ApiEndpoint {
    advertise_address: Option<String>,
    bind_port: Option<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Arg {
    name: String,
    value: String,
}

/// v1beta3 writes extra arguments as a map, v1beta4 as a list; `Args<A>` is one or the other.
trait ApiVersion {
    type Args: for<'de> Deserialize<'de>;
    const NAME: &'static str;
}
struct V1Beta3;
struct V1Beta4;
impl ApiVersion for V1Beta3 {
    type Args = BTreeMap<String, String>;
    const NAME: &'static str = "kubeadm.k8s.io/v1beta3";
}
impl ApiVersion for V1Beta4 {
    type Args = Vec<Arg>;
    const NAME: &'static str = "kubeadm.k8s.io/v1beta4";
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", bound = "")]
#[allow(dead_code)]
struct NodeRegistration<V: ApiVersion> {
    name: Option<String>,
    cri_socket: Option<String>,
    taints: Option<Vec<Taint>>,
    kubelet_extra_args: Option<V::Args>,
    ignore_preflight_errors: Option<Vec<String>>,
    image_pull_policy: Option<String>,
    /// v1beta4 only.
    image_pull_serial: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", bound = "")]
#[allow(dead_code)]
struct InitConfiguration<V: ApiVersion> {
    api_version: String,
    kind: String,
    bootstrap_tokens: Option<Vec<BootstrapToken>>,
    dry_run: Option<bool>,
    node_registration: Option<NodeRegistration<V>>,
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: Option<ApiEndpoint>,
    certificate_key: Option<String>,
    skip_phases: Option<Vec<String>>,
    patches: Option<Value>,
    timeouts: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Networking {
    service_subnet: Option<String>,
    pod_subnet: Option<String>,
    dns_domain: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", bound = "")]
#[allow(dead_code)]
struct ControlPlaneComponent<V: ApiVersion> {
    extra_args: Option<V::Args>,
    extra_volumes: Option<Vec<Value>>,
    extra_envs: Option<Vec<Value>>,
    #[serde(rename = "certSANs")]
    cert_sans: Option<Vec<String>>,
    timeout_for_control_plane: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", bound = "")]
#[allow(dead_code)]
struct ClusterConfiguration<V: ApiVersion> {
    api_version: String,
    kind: String,
    etcd: Option<Value>,
    networking: Option<Networking>,
    kubernetes_version: Option<String>,
    control_plane_endpoint: Option<String>,
    #[serde(rename = "apiServer")]
    api_server: Option<ControlPlaneComponent<V>>,
    controller_manager: Option<ControlPlaneComponent<V>>,
    scheduler: Option<ControlPlaneComponent<V>>,
    dns: Option<Value>,
    proxy: Option<Value>,
    certificates_dir: Option<String>,
    image_repository: Option<String>,
    feature_gates: Option<BTreeMap<String, bool>>,
    cluster_name: Option<String>,
    encryption_algorithm: Option<String>,
    certificate_validity_period: Option<String>,
    ca_certificate_validity_period: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct BootstrapTokenDiscovery {
    token: String,
    #[serde(rename = "apiServerEndpoint")]
    api_server_endpoint: Option<String>,
    ca_cert_hashes: Option<Vec<String>>,
    #[serde(rename = "unsafeSkipCAVerification")]
    unsafe_skip_ca_verification: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct Discovery {
    bootstrap_token: Option<BootstrapTokenDiscovery>,
    file: Option<Value>,
    #[serde(rename = "tlsBootstrapToken")]
    tls_bootstrap_token: Option<String>,
    /// v1beta3 only (v1beta4 moved it to `timeouts.discovery`).
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct JoinControlPlane {
    #[serde(rename = "localAPIEndpoint")]
    local_api_endpoint: Option<ApiEndpoint>,
    certificate_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", bound = "")]
#[allow(dead_code)]
struct JoinConfiguration<V: ApiVersion> {
    api_version: String,
    kind: String,
    dry_run: Option<bool>,
    node_registration: Option<NodeRegistration<V>>,
    #[serde(rename = "caCertPath")]
    ca_cert_path: Option<String>,
    discovery: Discovery,
    control_plane: Option<JoinControlPlane>,
    skip_phases: Option<Vec<String>>,
    patches: Option<Value>,
    timeouts: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct KubeletConfiguration {
    api_version: String,
    kind: String,
    cgroup_driver: Option<String>,
    container_runtime_endpoint: Option<String>,
    rotate_certificates: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct KubeProxyConfiguration {
    api_version: String,
    kind: String,
    mode: Option<String>,
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).unwrap_or_else(|e| panic!("rendered YAML does not parse: {e}\n{yaml}"))
}

fn typed<T: for<'de> Deserialize<'de>>(doc: &Value) -> T {
    serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} has a field kubeadm does not know: {e}\n{doc:#}", doc["kind"]))
}

fn kinds(docs: &[Value]) -> Vec<(String, String)> {
    docs.iter()
        .map(|d| (d["apiVersion"].as_str().unwrap_or("").to_string(), d["kind"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn check_init<V: ApiVersion>(yaml: &str) {
    let docs = documents(yaml);
    assert_eq!(
        kinds(&docs),
        vec![
            (V::NAME.to_string(), "InitConfiguration".to_string()),
            (V::NAME.to_string(), "ClusterConfiguration".to_string()),
            ("kubelet.config.k8s.io/v1beta1".to_string(), "KubeletConfiguration".to_string()),
            ("kubeproxy.config.k8s.io/v1alpha1".to_string(), "KubeProxyConfiguration".to_string()),
        ]
    );
    let _: InitConfiguration<V> = typed(&docs[0]);
    let _: ClusterConfiguration<V> = typed(&docs[1]);
    let _: KubeletConfiguration = typed(&docs[2]);
    let _: KubeProxyConfiguration = typed(&docs[3]);
}

fn check_join<V: ApiVersion>(yaml: &str, control_plane: bool) {
    let docs = documents(yaml);
    assert_eq!(kinds(&docs), vec![(V::NAME.to_string(), "JoinConfiguration".to_string())]);
    let join: JoinConfiguration<V> = typed(&docs[0]);
    let discovery = join.discovery.bootstrap_token.expect("bootstrap token discovery");
    assert_eq!(discovery.unsafe_skip_ca_verification, None, "CA verification must never be skipped");
    assert!(!discovery.ca_cert_hashes.unwrap_or_default().is_empty(), "the CA hash must be pinned");
    assert_eq!(join.control_plane.is_some(), control_plane);
}

#[test]
fn v1beta4_for_1_31_and_later() {
    for version in ["1.31.4", "1.33.2", "1.35.0"] {
        let inv = inventory("example.yaml", &[("kubernetesVersion: 1.31.4", &format!("kubernetesVersion: {version}"))]);
        check_init::<V1Beta4>(&file(&render(&inv, "cp1"), "/etc/kubewright/kubeadm-init.yaml").content);
        check_join::<V1Beta4>(&file(&render(&inv, "cp2"), "/etc/kubewright/kubeadm-join.yaml").content, true);
        check_join::<V1Beta4>(&file(&render(&inv, "worker2"), "/etc/kubewright/kubeadm-join.yaml").content, false);
    }
}

#[test]
fn v1beta3_before_1_31() {
    for version in ["1.29.0", "1.30.8"] {
        let inv = inventory("example.yaml", &[("kubernetesVersion: 1.31.4", &format!("kubernetesVersion: {version}"))]);
        check_init::<V1Beta3>(&file(&render(&inv, "cp1"), "/etc/kubewright/kubeadm-init.yaml").content);
        check_join::<V1Beta3>(&file(&render(&inv, "cp3"), "/etc/kubewright/kubeadm-join.yaml").content, true);
        check_join::<V1Beta3>(&file(&render(&inv, "worker1"), "/etc/kubewright/kubeadm-join.yaml").content, false);
    }
}

#[test]
fn rendered_values_match_the_inventory() {
    let inv = inventory("example.yaml", &[]);
    let docs = documents(&file(&render(&inv, "cp1"), "/etc/kubewright/kubeadm-init.yaml").content);
    assert_eq!(docs[1]["kubernetesVersion"], "v1.31.4");
    assert_eq!(docs[1]["controlPlaneEndpoint"], "10.20.0.100:6443");
    assert_eq!(docs[1]["networking"]["podSubnet"], "10.244.0.0/16");
    assert_eq!(docs[0]["localAPIEndpoint"]["advertiseAddress"], "10.20.0.11");
    // A control plane keeps kubeadm's default taint (null) unless it also runs workloads.
    assert_eq!(docs[0]["nodeRegistration"]["taints"], Value::Null);
    let single = inventory("single.yaml", &[]);
    let docs = documents(&file(&render(&single, "node1"), "/etc/kubewright/kubeadm-init.yaml").content);
    assert_eq!(docs[0]["nodeRegistration"]["taints"], serde_json::json!([]));
}

fn toml(text: &str) -> toml::Table {
    text.parse::<toml::Table>().unwrap_or_else(|e| panic!("rendered TOML does not parse: {e}\n{text}"))
}

fn get<'a>(t: &'a toml::Table, path: &[&str]) -> &'a toml::Value {
    let mut cur = t.get(path[0]).unwrap_or_else(|| panic!("missing {}", path[0]));
    for key in &path[1..] {
        cur = cur.get(key).unwrap_or_else(|| panic!("missing {key} in {path:?}"));
    }
    cur
}

#[test]
fn containerd_1x_config_version_2() {
    let inv = inventory("example.yaml", &[]);
    let files = render(&inv, "worker1");
    let t = toml(&file(&files, "/etc/containerd/config.toml").content);
    assert_eq!(t["version"].as_integer(), Some(2));
    let cri = ["plugins", "io.containerd.grpc.v1.cri"];
    assert_eq!(get(&t, &[cri[0], cri[1], "sandbox_image"]).as_str(), Some("registry.k8s.io/pause:3.10"));
    assert_eq!(
        get(&t, &[cri[0], cri[1], "containerd", "runtimes", "runc", "options", "SystemdCgroup"]).as_bool(),
        Some(true)
    );
    assert_eq!(get(&t, &[cri[0], cri[1], "registry", "config_path"]).as_str(), Some("/etc/containerd/certs.d"));
    let hosts = toml(&file(&files, "/etc/containerd/certs.d/docker.io/hosts.toml").content);
    assert_eq!(hosts["server"].as_str(), Some("https://registry-1.docker.io"));
    assert!(get(&hosts, &["host", "https://mirror.gcr.io", "capabilities"]).as_array().is_some());
}

#[test]
fn containerd_2x_config_version_3() {
    let inv = inventory(
        "single.yaml",
        &[("kubernetesVersion: 1.30.8", "kubernetesVersion: 1.30.8\n  containerd:\n    version: 2.0.4")],
    );
    let t = toml(&file(&render(&inv, "node1"), "/etc/containerd/config.toml").content);
    assert_eq!(t["version"].as_integer(), Some(3));
    assert_eq!(
        get(&t, &["plugins", "io.containerd.cri.v1.images", "pinned_images", "sandbox"]).as_str(),
        Some("registry.k8s.io/pause:3.9")
    );
    assert_eq!(
        get(
            &t,
            &["plugins", "io.containerd.cri.v1.runtime", "containerd", "runtimes", "runc", "options", "SystemdCgroup"]
        )
        .as_bool(),
        Some(true)
    );
}

#[test]
fn flannel_network_is_the_pod_subnet() {
    let inv = inventory("vagrant.yaml", &[]);
    let docs = documents(&file(&render(&inv, "cp1"), "/etc/kubewright/kube-flannel.yaml").content);
    let cm = docs.iter().find(|d| d["kind"] == "ConfigMap").expect("flannel ConfigMap");
    let net_conf: Value =
        serde_json::from_str(cm["data"]["net-conf.json"].as_str().unwrap_or("")).expect("net-conf.json is JSON");
    assert_eq!(net_conf["Network"], "10.244.0.0/16");
    assert_eq!(net_conf["Backend"]["Type"], "vxlan");
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").expect("flannel DaemonSet");
    let args = &ds["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(args.as_array().is_some_and(|a| a.contains(&Value::from("--iface=eth1"))), "{args}");
}

#[test]
fn the_field_check_catches_a_misspelt_field() {
    let inv = inventory("example.yaml", &[]);
    let yaml = file(&render(&inv, "cp1"), "/etc/kubewright/kubeadm-init.yaml")
        .content
        .replace("  podSubnet:", "  podSubnets:");
    let docs = documents(&yaml);
    assert!(serde_json::from_value::<ClusterConfiguration<V1Beta4>>(docs[1].clone()).is_err());
    let v1beta4_yaml = file(&render(&inv, "cp1"), "/etc/kubewright/kubeadm-init.yaml").content.clone();
    let docs = documents(&v1beta4_yaml);
    assert!(
        serde_json::from_value::<ClusterConfiguration<V1Beta3>>(docs[1].clone()).is_err(),
        "v1beta4 list-style extraArgs must not pass as v1beta3"
    );
}
