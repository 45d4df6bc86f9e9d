//! Every parser of what hosts print (the facts script, kubectl's JSON, apt-cache madison, the
//! upgrade's repository answers, kubectl drain's errors, etcdctl, certificates, kubeconfigs,
//! the journal a crash may have cut short) fed mutated real output and arbitrary bytes: each
//! returns a value or an error, never panics. CI runs a short campaign; a long one by hand:
//! `PROPTEST_CASES=200000 cargo test --release --test parser_fuzz`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use proptest::prelude::*;

mod common;

use kubewright::ssh::Output;

const NODES: &str = r#"{"apiVersion":"v1","items":[{"metadata":{"name":"cp1","labels":{"node-role.kubernetes.io/control-plane":""}},"spec":{"unschedulable":true,"taints":[{"key":"node-role.kubernetes.io/control-plane","effect":"NoSchedule"}]},"status":{"conditions":[{"type":"MemoryPressure","status":"False"},{"type":"Ready","status":"True","message":"kubelet is posting ready status"}],"nodeInfo":{"kubeletVersion":"v1.31.4"}}},{"metadata":{"name":"w1"},"status":{"conditions":[{"type":"Ready","status":"False"}],"nodeInfo":{"kubeletVersion":"v1.30.2"}}}],"kind":"List"}"#;

const KUBEADM_CONFIG: &str = r#"{"apiVersion":"v1","data":{"ClusterConfiguration":"apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nclusterName: prod\ncontrolPlaneEndpoint: 10.0.0.100:6443\nkind: ClusterConfiguration\nkubernetesVersion: v1.31.4\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: 10.244.0.0/16\n  serviceSubnet: 10.96.0.0/12\n"},"kind":"ConfigMap","metadata":{"name":"kubeadm-config","namespace":"kube-system"}}"#;

const MADISON: &str = "   kubeadm | 1.32.9-1.1 | https://pkgs.k8s.io/core:/stable:/v1.32/deb  Packages\n   kubeadm | 1.32.8-1.1 | https://pkgs.k8s.io/core:/stable:/v1.32/deb  Packages\n   kubeadm | 1.32.0-1.1 | https://pkgs.k8s.io/core:/stable:/v1.32/deb  Packages\n";

const RELEASES: &str = "=== kubewright minor 31\n   kubeadm | 1.31.13-1.1 | https://pkgs.k8s.io/core:/stable:/v1.31/deb  Packages\n=== kubewright minor 32\n!!! E: Failed to fetch https://pkgs.k8s.io/core:/stable:/v1.32/deb/InRelease  403  Forbidden\n";

const DRAIN_ERRORS: &str = "evicting pod shop/web-5d9c7b8f-abcde\nerror when evicting pods/\"web-5d9c7b8f-abcde\" -n \"shop\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\nThere are pending pods in node \"w1\" when an error occurred: [error when evicting pods/\"web-5d9c7b8f-abcde\" -n \"shop\": global timeout reached: 3s]\nerror: unable to drain node \"w1\" due to error: [error when evicting pods/\"web-5d9c7b8f-abcde\" -n \"shop\": global timeout reached: 3s], continuing command...\n";

const BUDGETS: &str = r#"{"items":[{"metadata":{"name":"web-pdb","namespace":"shop"},"spec":{"minAvailable":2},"status":{"currentHealthy":2,"desiredHealthy":2,"disruptionsAllowed":0,"expectedPods":2}}]}"#;

const ETCD_UNHEALTHY: &str = "{\"level\":\"warn\",\"ts\":\"2025-01-06T11:18:07.579Z\",\"msg\":\"retrying of unary invoker failed\"}\nhttps://127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\n";

const KUBECONFIG: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0tLS1CRUdJTg==\n    server: https://api.prod.internal:6443\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: kubernetes-admin\n  name: kubernetes-admin@prod\ncurrent-context: kubernetes-admin@prod\nkind: Config\nusers:\n- name: kubernetes-admin\n  user:\n    client-certificate-data: LS0t\n    client-key-data: LS0t\n";

const JOURNAL: &str = "{\"kind\":\"start\",\"run_id\":\"20261201T000000Z-1\",\"playbook\":\"install\",\"started_at\":\"2026-12-01T00:00:00Z\"}\n{\"kind\":\"done\",\"run_id\":\"20261201T000000Z-1\",\"step\":\"prepare-host\",\"host\":\"cp1\"}\n";

const APISERVER_CRT: &str = include_str!("fixtures/apiserver.crt");

/// The facts script's real output on this machine (it only reads), plus sections a node has.
fn facts_seed() -> String {
    let script = kubewright::facts::gather::script(&["/etc/hostname".to_string()]).to_shell();
    let out = std::process::Command::new("sh").args(["-c", &script]).output().expect("sh runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str("@@kubewright-fact etcd-member@@\nmanifest /etc/kubernetes/manifests/etcd.yaml\n    - --data-dir=/var/lib/etcd\n    - --initial-advertise-peer-urls=https://10.0.0.11:2380\n    - --name=cp1\n");
    text.push_str(&format!("@@kubewright-fact etcd-health@@\n{ETCD_UNHEALTHY}exit 1\n"));
    text.push_str("@@kubewright-fact apiserver@@\n{\"containers\": [{\"state\": \"CONTAINER_RUNNING\", \"createdAt\": \"1794000000123456789\"}]}\n");
    text
}

fn seeds() -> Vec<String> {
    let cert_line = format!(
        "/etc/kubernetes/pki/apiserver.crt\t{}\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, APISERVER_CRT)
    );
    vec![
        facts_seed(),
        NODES.into(),
        format!("{NODES}\n@@kubewright-fact kubeadm-config@@\n{KUBEADM_CONFIG}"),
        MADISON.into(),
        RELEASES.into(),
        DRAIN_ERRORS.into(),
        BUDGETS.into(),
        ETCD_UNHEALTHY.into(),
        KUBECONFIG.into(),
        JOURNAL.into(),
        APISERVER_CRT.into(),
        cert_line,
    ]
}

/// Fragments that break line, JSON and YAML parsers.
const FRAGMENTS: &[&str] = &[
    "\n",
    "\t",
    "|",
    "\"",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "-",
    "=",
    "@@",
    "@@kubewright-fact ",
    "exit ",
    "v",
    "1.",
    "\u{0}",
    "é",
    "99999999999999999999",
    "-----BEGIN CERTIFICATE-----",
    "=== kubewright minor ",
    "!!! ",
];

fn mutate(seed: &str, edits: &[(usize, usize, usize)]) -> String {
    common::mutate(seed, edits, FRAGMENTS, |frag| frag % 20)
}

/// Every parser, on the same text.
fn parse_all(text: &str) {
    let _ = kubewright::facts::gather::parse("cp1", text);
    let _ = kubewright::facts::gather::parse_cluster("cp1", text);
    let _ = kubewright::facts::gather::parse_certificates(text);
    let _ = kubewright::kube::parse_node_list(text);
    if let Ok(config) = kubewright::kube::parse_kubeadm_config(text) {
        let _ = kubewright::kube::cluster_version(&config);
    }
    let _ = kubewright::kube::cluster_version(text);
    let _ = kubewright::kube::pods_not_evicted(text);
    let _ = kubewright::kube::exhausted_budgets(text);
    let _ = kubewright::upgrade::parse_madison(text);
    let _ = kubewright::upgrade::parse_releases(text);
    let _ = kubewright::pki::inspect(text.as_bytes());
    let _ = kubewright::pki::ca_pin(text.as_bytes());
    let target = kubewright::plan::KubeconfigServer {
        server: "https://10.0.0.11:6443".into(),
        tls_server_name: "api.prod.internal".into(),
    };
    let _ = kubewright::kubeconfig::point_at(text, &target);
    for code in [Some(0), Some(1), None] {
        let out = Output { code, stdout: text.into(), stderr: text.into() };
        let _ = kubewright::exec::wait::judge_nodes(&out, &["cp1".into(), "w1".into()], "v1.31.4");
        let _ = kubewright::exec::wait::judge_etcd(&out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(256), ..ProptestConfig::default() })]

    #[test]
    fn mutated_outputs_never_panic(seed in 0..12usize, edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 1..16)) {
        let seeds = seeds_cached();
        parse_all(&mutate(&seeds[seed % seeds.len()], &edits));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        parse_all(&text);
    }

    #[test]
    fn fragment_soup_never_panics(parts in prop::collection::vec(0..FRAGMENTS.len(), 0..80)) {
        let text: String = parts.into_iter().map(|i| FRAGMENTS[i]).collect();
        parse_all(&text);
    }

    /// The journal is read back after a crash: any prefix or mangling of it is an error or a
    /// run to resume, never a panic.
    #[test]
    fn a_cut_or_mangled_journal_never_panics(cut in 0..JOURNAL.len(), edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 0..6)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        std::fs::write(&path, mutate(&JOURNAL[..cut], &edits)).unwrap();
        let _ = kubewright::exec::journal::unfinished(&path);
    }
}

fn seeds_cached() -> &'static [String] {
    static SEEDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(seeds)
}

#[test]
fn the_seeds_parse_as_what_they_are() {
    // Mutations start from output the parsers accept, or the campaign would test only errors.
    let seeds = seeds();
    let facts = kubewright::facts::gather::parse("cp1", &seeds[0]).unwrap();
    assert_eq!(facts.etcd_member.unwrap().name, "cp1");
    assert_eq!(kubewright::kube::parse_node_list(NODES).unwrap().len(), 2);
    assert!(kubewright::facts::gather::parse_cluster("cp1", &seeds[2]).is_some());
    assert_eq!(kubewright::upgrade::parse_madison(MADISON).len(), 3);
    assert_eq!(kubewright::upgrade::parse_releases(RELEASES).1.len(), 1);
    assert_eq!(kubewright::kube::pods_not_evicted(DRAIN_ERRORS), ["shop/web-5d9c7b8f-abcde"]);
    assert_eq!(kubewright::kube::exhausted_budgets(BUDGETS), ["shop/web-pdb"]);
    assert!(kubewright::pki::inspect(APISERVER_CRT.as_bytes()).is_ok());
    assert_eq!(kubewright::facts::gather::parse_certificates(&seeds[11]).unwrap().len(), 1);
    let target = kubewright::plan::KubeconfigServer {
        server: "https://10.0.0.11:6443".into(),
        tls_server_name: "api.prod.internal".into(),
    };
    assert!(kubewright::kubeconfig::point_at(KUBECONFIG, &target).is_ok());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("journal.jsonl"), JOURNAL).unwrap();
    let _ = kubewright::exec::journal::unfinished(&dir.path().join("journal.jsonl")).unwrap();
}
