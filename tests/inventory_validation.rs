//! One failing inventory per validation rule: each must be reported with the field path,
//! the `line:column` of the offending value and a message that says what is wrong.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use kubewright::diag::{Diagnostic, Severity};
use kubewright::inventory::load;

const BASE: &str = "\
cluster:
  name: demo
  kubernetesVersion: 1.31.4
  controlPlaneEndpoint: 10.0.0.100:6443
hosts:
  - name: cp1
    address: 10.0.0.11
    roles: [control-plane]
  - name: w1
    address: 10.0.0.21
    roles: [worker]
";

fn errors(yaml: &str) -> Vec<Diagnostic> {
    match load("inv.yaml", yaml) {
        Ok(l) => panic!("expected errors, got a valid inventory (warnings: {:?})", l.warnings),
        Err(e) => {
            let errors: Vec<Diagnostic> = e.diagnostics.into_iter().filter(|d| d.severity == Severity::Error).collect();
            // Each error says what to do: what a valid value looks like, or a help line.
            for d in &errors {
                assert!(d.expected.is_some() || d.hint.is_some(), "no advice in `{d}`");
            }
            errors
        }
    }
}

fn warnings(yaml: &str) -> Vec<Diagnostic> {
    match load("inv.yaml", yaml) {
        Ok(l) => l.warnings,
        Err(e) => panic!("expected a valid inventory, got {:#?}", e.diagnostics),
    }
}

/// Assert that some diagnostic has this path, position and message fragment.
#[track_caller]
fn assert_reported(diags: &[Diagnostic], path: &str, line: usize, column: usize, fragment: &str) {
    let found = diags.iter().any(|d| {
        d.path == path && d.location.map(|l| (l.line, l.column)) == Some((line, column)) && d.message.contains(fragment)
    });
    assert!(
        found,
        "no diagnostic at {path} {line}:{column} containing {fragment:?} in:\n{}",
        diags.iter().map(|d| format!("{d}\n")).collect::<String>()
    );
}

#[test]
fn the_base_inventory_is_valid() {
    assert!(warnings(BASE).is_empty());
}

#[test]
fn unknown_field_is_reported_at_its_key_with_a_suggestion() {
    let d = errors(&BASE.replace("  controlPlaneEndpoint:", "  controlPlaneEndpiont:"));
    assert_reported(&d, "cluster.controlPlaneEndpiont", 4, 3, "unknown field `controlPlaneEndpiont`");
    assert_eq!(d[0].hint.as_deref(), Some("did you mean `controlPlaneEndpoint`?"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let yaml = BASE
        .replace("roles: [worker]", "roles: [wroker]")
        .replace("name: demo", "name: Demo")
        .replace("  kubernetesVersion", "  kubernetesVerison: x\n  kubernetesVersion");
    let d = errors(&yaml);
    assert_reported(&d, "cluster.name", 2, 9, "invalid value `Demo`");
    assert_reported(&d, "cluster.kubernetesVerison", 3, 3, "unknown field");
    assert_reported(&d, "hosts[1].roles[0]", 12, 13, "unknown role `wroker`");
    assert_eq!(d.len(), 3);
}

#[test]
fn duplicate_host_names_and_addresses() {
    let yaml = BASE.replace("name: w1", "name: cp1").replace("10.0.0.21", "10.0.0.11");
    let d = errors(&yaml);
    assert_reported(&d, "hosts[1].name", 9, 11, "duplicate host name `cp1` (also hosts[0])");
    assert_reported(&d, "hosts[1].address", 10, 14, "duplicate address `10.0.0.11:22`");
    assert_reported(&d, "hosts[1].address", 10, 14, "duplicate node IP `10.0.0.11`");
}

#[test]
fn same_address_with_another_ssh_port_is_allowed_behind_nat() {
    let yaml = BASE
        .replace(
            "    address: 10.0.0.11\n",
            "    address: 127.0.0.1\n    internalAddress: 192.168.56.11\n    ssh: {port: 2222}\n",
        )
        .replace(
            "    address: 10.0.0.21\n",
            "    address: 127.0.0.1\n    internalAddress: 192.168.56.21\n    ssh: {port: 2200}\n",
        );
    assert!(warnings(&yaml).is_empty());
}

#[test]
fn no_control_plane() {
    let d = errors(&BASE.replace("roles: [control-plane]", "roles: [worker]"));
    assert_reported(&d, "hosts", 6, 3, "no host has the `control-plane` role");
}

#[test]
fn even_control_plane_count_warns_about_quorum() {
    let yaml = BASE.replace("roles: [worker]", "roles: [control-plane]");
    let w = warnings(&yaml);
    assert!(w.iter().any(|d| d.path == "hosts" && d.message.contains("even etcd member count")), "{w:#?}");
}

#[test]
fn overlapping_pod_and_service_subnets() {
    let yaml =
        BASE.replace("hosts:", "  network:\n    podSubnet: 10.96.0.0/16\n    serviceSubnet: 10.96.0.0/12\nhosts:");
    assert_reported(&errors(&yaml), "cluster.network.serviceSubnet", 7, 20, "overlaps pod subnet 10.96.0.0/16");
}

#[test]
fn host_inside_the_pod_subnet() {
    let yaml = BASE.replace("hosts:", "  network:\n    podSubnet: 10.0.0.0/16\nhosts:");
    let d = errors(&yaml);
    assert_reported(&d, "hosts[0]", 8, 5, "host `cp1` address 10.0.0.11 lies inside the podSubnet 10.0.0.0/16");
    assert_reported(&d, "hosts[1]", 11, 5, "host `w1` address 10.0.0.21 lies inside the podSubnet 10.0.0.0/16");
}

#[test]
fn pod_subnet_too_small_for_the_node_count() {
    let yaml = BASE.replace("hosts:", "  network:\n    podSubnet: 10.244.0.0/24\n    nodeCidrMaskSize: 24\nhosts:");
    assert_reported(
        &errors(&yaml),
        "cluster.network.podSubnet",
        6,
        16,
        "holds 1 node range of /24 but the inventory has 2 hosts",
    );
    // Two /25 ranges are enough for two hosts, and a /25 holds 126 pod addresses (>= 110).
    let fits = BASE.replace("hosts:", "  network:\n    podSubnet: 10.244.0.0/24\n    nodeCidrMaskSize: 25\nhosts:");
    assert!(warnings(&fits).is_empty());
    let three = fits.replace("hosts:", "hosts:\n  - {name: w2, address: 10.0.0.22, roles: [worker]}");
    assert_reported(
        &errors(&three),
        "cluster.network.podSubnet",
        6,
        16,
        "holds 2 node ranges of /25 but the inventory has 3 hosts",
    );
}

#[test]
fn invalid_cidr_ip_port_and_version() {
    let yaml = BASE
        .replace("hosts:", "  network:\n    serviceSubnet: 10.96.0.0/33\nhosts:")
        .replace(
            "    address: 10.0.0.21",
            "    address: 10.0.0.21\n    internalAddress: 10.0.0.300\n    ssh: {port: 0}",
        )
        .replace("1.31.4", "1.31.x");
    let d = errors(&yaml);
    assert_reported(&d, "cluster.network.serviceSubnet", 6, 20, "invalid IPv4 CIDR `10.96.0.0/33`");
    assert_reported(&d, "hosts[1].internalAddress", 13, 22, "invalid value `10.0.0.300`");
    assert_reported(&d, "hosts[1].ssh.port", 14, 17, "invalid port `0`");
    assert_reported(&d, "cluster.kubernetesVersion", 3, 22, "invalid Kubernetes version `1.31.x`");
}

#[test]
fn cidr_with_host_bits_suggests_the_network() {
    let d = errors(&BASE.replace("hosts:", "  network:\n    podSubnet: 10.244.1.0/16\nhosts:"));
    assert_reported(&d, "cluster.network.podSubnet", 6, 16, "has host bits set");
    assert!(d.iter().any(|x| x.hint.as_deref() == Some("use `10.244.0.0/16`")));
}

#[test]
fn version_kubeadm_no_longer_supports() {
    let d = errors(&BASE.replace("1.31.4", "1.27.16"));
    assert_reported(&d, "cluster.kubernetesVersion", 3, 22, "Kubernetes 1.27.16 is not supported");
    assert!(d[0].hint.as_deref().unwrap_or("").contains("past end of life"));
    let d = errors(&BASE.replace("1.31.4", "1.40.0"));
    assert_reported(&d, "cluster.kubernetesVersion", 3, 22, "Kubernetes 1.40.0 is not supported");
}

#[test]
fn node_names_must_be_rfc_1123() {
    let d = errors(&BASE.replace("name: w1", "name: Worker_1"));
    assert_reported(&d, "hosts[1].name", 9, 11, "`Worker_1` is not a valid Kubernetes node name");
    assert_eq!(d[0].hint.as_deref(), Some("rename the host to `worker-1`"));
}

#[test]
fn shell_and_template_metacharacters_are_rejected() {
    let yaml = BASE
        .replace("name: w1", "name: \"w1; reboot\"")
        .replace("    address: 10.0.0.21", "    address: \"10.0.0.21 -oProxyCommand=x\"\n    flannelInterface: \"eth1\\nkind: Secret\"\n    labels: {\"a/b'c\": x}\n    taints: [\"k=$(id):NoSchedule\"]")
        .replace("hosts:", "  containerd:\n    registryMirrors:\n      docker.io: [\"https://m\\\"]\\n[evil]\"]\n    sandboxImage: \"pause:3.10\\\"\\nx=1\"\n  sysctls:\n    extra: {\"kernel.panic\": \"1\\nkernel.sysrq=1\"}\nhosts:");
    let d = errors(&yaml);
    let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
    for expected in [
        "hosts[1].name",
        "hosts[1].address",
        "hosts[1].flannelInterface",
        "hosts[1].labels.a/b'c",
        "hosts[1].taints[0]",
        "cluster.containerd.registryMirrors.docker.io[0]",
        "cluster.containerd.sandboxImage",
        "cluster.sysctls.extra.kernel.panic",
    ] {
        assert!(paths.contains(&expected), "{expected} not rejected; got {paths:?}");
    }
    // Control characters are escaped in messages, never printed raw.
    assert!(d.iter().all(|d| !d.message.contains('\n')), "{d:#?}");
}

#[test]
fn restricted_kubelet_labels_are_refused() {
    let d = errors(
        &BASE.replace("roles: [worker]", "roles: [worker]\n    labels:\n      node-role.kubernetes.io/worker: \"\""),
    );
    assert_reported(&d, "hosts[1].labels.node-role.kubernetes.io/worker", 13, 39, "may not set label");
}

#[test]
fn missing_sections_and_fields() {
    let d = errors("ssh: {user: root}\n");
    assert!(d.iter().any(|x| x.path == "cluster" && x.message.contains("missing required field `cluster`")));
    assert!(d.iter().any(|x| x.path == "hosts" && x.message.contains("missing required field `hosts`")));
    let d = errors(&BASE.replace("    address: 10.0.0.21\n", ""));
    assert_reported(&d, "hosts[1].address", 9, 5, "missing required field `address`");
}

#[test]
fn yaml_syntax_type_and_duplicate_key_errors_have_positions() {
    let d = errors("cluster:\n  name: [a, b]\n");
    assert_reported(&d, "cluster.name", 2, 3, "invalid type: sequence");
    let d = errors("cluster:\n  name: a\n  name: b\n");
    assert_reported(&d, "cluster.name", 3, 3, "duplicate key `name`");
    let d = errors("cluster: [\n");
    assert!(d[0].location.is_some(), "{d:#?}");
}

#[test]
fn upgrade_and_certificate_settings() {
    let yaml = BASE.replace("hosts:", "  upgrade:\n    maxUnavailable: 0\n    drainTimeout: 5 minutes\n  certificates:\n    renewBefore: 400d\nhosts:");
    let d = errors(&yaml);
    assert_reported(&d, "cluster.upgrade.maxUnavailable", 6, 21, "invalid value `0`");
    assert_reported(&d, "cluster.upgrade.drainTimeout", 7, 19, "invalid value `5 minutes`");
    assert_reported(&d, "cluster.certificates.renewBefore", 9, 18, "outside the life of a certificate");
    let ok = BASE.replace("hosts:", "  upgrade:\n    maxUnavailable: 20%\nhosts:");
    assert!(warnings(&ok).is_empty());
}

#[test]
fn multiple_control_planes_without_endpoint_warn() {
    let yaml = BASE
        .replace("  controlPlaneEndpoint: 10.0.0.100:6443\n", "")
        .replace("roles: [worker]", "roles: [control-plane]")
        .replace("hosts:", "hosts:\n  - {name: cp3, address: 10.0.0.13, roles: [control-plane]}");
    let w = warnings(&yaml);
    assert!(w.iter().any(|d| d.message.contains("no `controlPlaneEndpoint`")), "{w:#?}");
}

#[test]
fn messages_render_file_line_column_path_and_help() {
    let d = errors(&BASE.replace("name: w1", "name: W1"));
    let text = d[0].to_string();
    assert!(
        text.starts_with("inv.yaml:9:11: error: hosts[1].name: `W1` is not a valid Kubernetes node name"),
        "{text}"
    );
    assert!(text.contains("\n  expected: an RFC 1123 subdomain"), "{text}");
    assert!(text.contains("\n  help: rename the host to `w1`"), "{text}");
}

#[test]
fn unknown_transport_and_flannel_backend() {
    let yaml = BASE.replace("hosts:", "  cni:\n    flannel:\n      backend: udp\nssh:\n  transport: telnet\nhosts:");
    let d = errors(&yaml);
    assert_reported(&d, "cluster.cni.flannel.backend", 7, 16, "unknown flannel backend `udp`");
    assert_reported(&d, "ssh.transport", 9, 14, "unknown transport `telnet`");
}

#[test]
fn a_local_load_balancer_needs_a_name_on_the_api_port() {
    let local = "  loadBalancer:\n    type: local\n";
    // The endpoint defaults to a name; with it, several control planes are not a warning.
    let ok = BASE
        .replace("  controlPlaneEndpoint: 10.0.0.100:6443\n", local)
        .replace(
            "hosts:",
            "hosts:\n  - {name: cp2, address: 10.0.0.12, roles: [control-plane]}\n  - {name: cp3, address: 10.0.0.13, roles: [control-plane]}",
        );
    assert!(warnings(&ok).is_empty(), "{:#?}", warnings(&ok));
    let loaded = load("inv.yaml", &ok).unwrap().inventory;
    assert_eq!(loaded.cluster.control_plane_endpoint.to_string(), "api.demo.internal:6443");

    let d = errors(&BASE.replace("hosts:", &format!("{local}hosts:")));
    assert_reported(
        &d,
        "cluster.controlPlaneEndpoint",
        4,
        25,
        "must be a DNS name on port 6443, not `10.0.0.100:6443`",
    );
    let d =
        errors(&BASE.replace("10.0.0.100:6443", "api.example.com:8443").replace("hosts:", &format!("{local}hosts:")));
    assert_reported(&d, "cluster.controlPlaneEndpoint", 4, 25, "not `api.example.com:8443`");

    let d = errors(&BASE.replace("hosts:", "  loadBalancer:\n    type: haproxy\n    image: haproxy:2.8\nhosts:"));
    assert_reported(&d, "cluster.loadBalancer.type", 6, 11, "unknown load balancer type `haproxy`");
    assert_reported(&d, "cluster.loadBalancer.image", 7, 12, "`image` is set but the load balancer is external");
}

#[test]
fn time_limits_are_durations_longer_than_zero_and_default_to_30m_and_10m() {
    let inv = load("inv.yaml", BASE).unwrap().inventory;
    assert_eq!((inv.cluster.timeouts.command.seconds, inv.cluster.timeouts.ready.seconds), (1800, 600));
    let set = BASE.replace(
        "  controlPlaneEndpoint: 10.0.0.100:6443\n",
        "  controlPlaneEndpoint: 10.0.0.100:6443\n  timeouts: {command: 1h, ready: 90s}\n",
    );
    let inv = load("inv.yaml", &set).unwrap().inventory;
    assert_eq!((inv.cluster.timeouts.command.seconds, inv.cluster.timeouts.ready.seconds), (3600, 90));
    let bad = BASE.replace(
        "  controlPlaneEndpoint: 10.0.0.100:6443\n",
        "  controlPlaneEndpoint: 10.0.0.100:6443\n  timeouts:\n    command: 0s\n    ready: soon\n",
    );
    let diags = errors(&bad);
    assert_reported(&diags, "cluster.timeouts.command", 6, 14, "invalid value `0s`");
    assert_reported(&diags, "cluster.timeouts.ready", 7, 12, "invalid value `soon`");
    assert!(diags.iter().all(|d| d.expected.as_deref().is_some_and(|e| e.contains("longer than zero"))), "{diags:?}");
}

/// Issue 18 (run-safety review item 8): the package repository's signing key is pinned, by
/// default to pkgs.k8s.io's. A fingerprint is 40 hex digits (spaces as gpg prints them); `none`
/// turns pinning off, which an `http://` mirror may not do (whoever is on the path could serve
/// a key of their own and packages signed with it).
#[test]
fn the_package_signing_key_is_pinned_and_an_http_mirror_needs_the_pin() {
    let with = |packages: &str| BASE.replace("hosts:", &format!("  packages:\n{packages}hosts:"));
    let valid = |yaml: &str| load("inv.yaml", yaml).unwrap_or_else(|e| panic!("{:#?}", e.diagnostics)).inventory;
    let official = kubewright::inventory::PKGS_K8S_IO_KEY_FINGERPRINT;
    assert_eq!(valid(BASE).cluster.packages.key_fingerprint.as_deref(), Some(official));
    let spaced = valid(&with("    keyFingerprint: de15 b144 86cd 377b 9e87  6e1a 2346 54da 9a29 6436\n"));
    assert_eq!(spaced.cluster.packages.key_fingerprint.as_deref(), Some(official));
    let pinned_http = valid(&with(&format!("    mirror: http://apt.internal/k8s\n    keyFingerprint: {official}\n")));
    assert_eq!(pinned_http.cluster.packages.mirror, "http://apt.internal/k8s");
    assert_eq!(valid(&with("    keyFingerprint: none\n")).cluster.packages.key_fingerprint, None);

    let d = errors(&with("    mirror: http://apt.internal/k8s\n    keyFingerprint: none\n"));
    assert_reported(&d, "cluster.packages.mirror", 6, 13, "an `http://` mirror with `keyFingerprint: none`");
    let d = errors(&with("    keyFingerprint: DE15B14486CD377B\n"));
    assert_reported(&d, "cluster.packages.keyFingerprint", 6, 21, "invalid key fingerprint `DE15B14486CD377B`");
}

/// Issue 20: what the inventory leaves out of a host's login is marked as not given, so that
/// ssh_config decides it when connecting (`ssh::config::resolve`); a host's own user keeps the
/// `ssh` section's `become` from applying to it.
#[test]
fn login_settings_the_inventory_gives_are_told_from_defaults() {
    use kubewright::inventory::SshGiven;
    let given = |yaml: &str| -> Vec<(String, SshGiven, String, bool)> {
        let inv = load("inv.yaml", yaml).unwrap_or_else(|e| panic!("{:#?}", e.diagnostics)).inventory;
        inv.hosts.into_iter().map(|h| (h.name, h.ssh.given, h.ssh.user, h.ssh.sudo)).collect()
    };
    let none = SshGiven::default();
    let hosts = given(BASE);
    assert_eq!(hosts[0], ("cp1".into(), none, "root".into(), false), "kubewright's defaults, not given");

    let text = BASE
        .replace("hosts:\n", "ssh:\n  become: true\n  port: 2222\nhosts:\n")
        .replace("    roles: [worker]\n", "    roles: [worker]\n    ssh: {user: ubuntu}\n");
    let hosts = given(&text);
    assert_eq!(hosts[0].1, SshGiven { user: false, port: true, sudo: true });
    assert_eq!(hosts[1].1, SshGiven { user: true, port: true, sudo: false }, "become follows the host's own user");
    assert_eq!((hosts[1].2.as_str(), hosts[1].3), ("ubuntu", true));
}

/// `internalAddress` is an IP or `{interface: NAME}`; `identityFile` one key or a list, each
/// checked where it is written.
#[test]
fn internal_address_by_interface_and_identity_file_lists() {
    let by_interface = BASE.replace(
        "    address: 10.0.0.21\n",
        "    address: 10.0.0.21\n    internalAddress: {interface: eth1}\n    ssh:\n      identityFile: [/k/own, \"/k/my keys/rsa\"]\n",
    );
    let inv = load("inv.yaml", &by_interface).unwrap().inventory;
    let w1 = inv.host("w1").unwrap();
    assert_eq!((w1.internal_interface.as_deref(), w1.internal_address, w1.node_ip()), (Some("eth1"), None, None));
    assert_eq!(w1.node_address().as_deref(), Some("<IPv4 of eth1>"), "not the SSH address, not made up");
    assert_eq!(
        (w1.ssh.identity_file.as_deref(), w1.ssh.fallback_identity_files.as_slice()),
        (Some("/k/own"), &["/k/my keys/rsa".to_string()][..])
    );

    let diags = errors(
        &BASE.replace("    address: 10.0.0.21\n", "    address: 10.0.0.21\n    internalAddress: {iface: eth1}\n"),
    );
    assert_reported(&diags, "hosts[1].internalAddress.iface", 11, 23, "unknown field `iface`");
    assert!(diags.iter().any(|d| d.expected.as_deref() == Some("one of `interface`")), "{diags:?}");
    assert_reported(&diags, "hosts[1].internalAddress.interface", 11, 22, "missing required field `interface`");
    let diags = errors(&BASE.replace(
        "    address: 10.0.0.21\n",
        "    address: 10.0.0.21\n    internalAddress: {interface: \"eth1; reboot\"}\n",
    ));
    assert_reported(&diags, "hosts[1].internalAddress.interface", 11, 34, "invalid value `eth1; reboot`");
    let diags =
        errors(&BASE.replace("    address: 10.0.0.21\n", "    address: 10.0.0.21\n    internalAddress: 10.0.0\n"));
    assert!(diags[0].expected.as_deref().unwrap_or_default().contains("`{interface: NAME}`"), "{diags:?}");
    let diags =
        errors(&BASE.replace("    address: 10.0.0.21\n", "    address: 10.0.0.21\n    ssh: {identityFile: []}\n"));
    assert_reported(&diags, "hosts[1].ssh.identityFile", 11, 25, "the identity file list is empty");
}
