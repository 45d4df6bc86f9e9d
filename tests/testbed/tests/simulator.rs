//! The node simulator through real SSH, with real kubeadm command lines: init, control-plane
//! and worker joins, the network add-on, certificate expiry and renewal, and the error texts
//! for wrong command lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{KEY, TOKEN, bootstrap, ca_pin, fails, init_config, ok, prepare, put, text};

#[test]
fn init_join_network_and_certificates() {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 2;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let endpoint = format!("{}:6443", bed.host("cp1").ip);
    for h in ["cp1", "cp2", "w1"] {
        prepare(&bed, h, 31, 4);
    }
    assert_eq!(ok(&bed, "cp1", "kubeadm version -o short").trim(), "v1.31.4");
    assert_eq!(ok(&bed, "w1", "kubelet --version").trim(), "Kubernetes v1.31.4");
    // Installing the kubelet enables it but does not start it.
    assert_eq!(
        ok(&bed, "w1", "systemctl is-enabled kubelet; systemctl is-active kubelet || true").trim(),
        "enabled\ninactive"
    );

    put(&bed, "cp1", "/etc/kubewright/init.yaml", &init_config("v1beta4", "v1.31.4", &endpoint, TOKEN, KEY));
    let init = ok(&bed, "cp1", "kubeadm init --config /etc/kubewright/init.yaml --upload-certs");
    assert!(init.contains("[init] Using Kubernetes version: v1.31.4"));
    assert!(
        init.contains(
            "[kubelet-check] Waiting for a healthy kubelet at http://127.0.0.1:10248/healthz. This can take up to 4m0s"
        ),
        "1.31 wording"
    );
    assert!(init.contains("[upload-certs] Using certificate key:\n1d556c17"));
    assert!(init.contains("Your Kubernetes control-plane has initialized successfully!"));
    // The printed CA hash is the real SPKI pin of the CA on disk.
    let pin = ca_pin(&bed);
    assert!(init.contains(&format!("kubeadm join {endpoint} --token {TOKEN} \\\n\t--discovery-token-ca-cert-hash {pin} \\\n\t--control-plane --certificate-key {KEY}")), "{init}");
    // Real certificates: verified by openssl, with kubeadm's SANs, keys 0600.
    ok(&bed, "cp1", "openssl verify -CAfile /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/apiserver.crt");
    ok(&bed, "cp1", "openssl verify -CAfile /etc/kubernetes/pki/etcd/ca.crt /etc/kubernetes/pki/etcd/server.crt");
    let sans = ok(&bed, "cp1", "openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -ext subjectAltName");
    assert!(
        sans.contains("DNS:kubernetes.default.svc.cluster.local") && sans.contains("IP Address:10.96.0.1"),
        "{sans}"
    );
    assert_eq!(ok(&bed, "cp1", "stat -c %a /etc/kubernetes/pki/ca.key /etc/kubernetes/admin.conf").trim(), "600\n600");
    assert!(ok(&bed, "cp1", "head -1 /etc/kubernetes/pki/ca.key").contains("BEGIN RSA PRIVATE KEY"));
    assert!(
        ok(&bed, "cp1", "cat /etc/kubernetes/manifests/kube-apiserver.yaml")
            .contains("image: registry.k8s.io/kube-apiserver:v1.31.4")
    );

    // A wrong CA hash: refused with the actual pin in the message.
    let bad = fails(
        &bed,
        "w1",
        &format!("kubeadm join {endpoint} --token {TOKEN} --discovery-token-ca-cert-hash sha256:{}", "0".repeat(64)),
    );
    assert!(bad.contains(&format!("couldn't validate the identity of the API Server: cluster CA found in cluster-info ConfigMap is invalid: none of the public keys \"{pin}\" are pinned")), "{bad}");
    let bad = fails(
        &bed,
        "w1",
        &format!("kubeadm join {endpoint} --token zzzzzz.0123456789abcdef --discovery-token-ca-cert-hash {pin}"),
    );
    assert!(
        bad.contains("could not find a JWS signature in the cluster-info ConfigMap for token ID \"zzzzzz\""),
        "{bad}"
    );
    let bad = fails(&bed, "w1", &format!("kubeadm join {endpoint} --token {TOKEN}"));
    assert!(bad.contains("using token-based discovery without caCertHashes can be unsafe"), "{bad}");
    let bad = fails(
        &bed,
        "cp2",
        &format!(
            "kubeadm join {endpoint} --token {TOKEN} --discovery-token-ca-cert-hash {pin} --control-plane --certificate-key {}",
            "ab".repeat(32)
        ),
    );
    assert!(
        bad.contains("error decoding secret data with provided key: cipher: message authentication failed"),
        "{bad}"
    );

    ok(
        &bed,
        "cp2",
        &format!(
            "kubeadm join {endpoint} --token {TOKEN} --discovery-token-ca-cert-hash {pin} --control-plane --certificate-key {KEY}"
        ),
    );
    let joined =
        ok(&bed, "w1", &format!("kubeadm join {endpoint} --token {TOKEN} --discovery-token-ca-cert-hash {pin}"));
    assert!(joined.contains("This node has joined the cluster:"));
    // Same CA everywhere; the joined control plane has no super-admin.conf.
    assert_eq!(
        ok(&bed, "cp2", "openssl x509 -in /etc/kubernetes/pki/ca.crt -noout -fingerprint"),
        ok(&bed, "cp1", "openssl x509 -in /etc/kubernetes/pki/ca.crt -noout -fingerprint")
    );
    assert!(fails(&bed, "cp2", "test -e /etc/kubernetes/super-admin.conf").is_empty());
    ok(&bed, "w1", "openssl verify -CAfile /etc/kubernetes/pki/ca.crt /var/lib/kubelet/pki/kubelet-client-current.pem");
    let again =
        fails(&bed, "w1", &format!("kubeadm join {endpoint} --token {TOKEN} --discovery-token-ca-cert-hash {pin}"));
    assert!(
        again.contains(
            "[ERROR FileAvailable--etc-kubernetes-kubelet.conf]: /etc/kubernetes/kubelet.conf already exists"
        ),
        "{again}"
    );

    // Nodes are NotReady until a pod network is applied.
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    let nodes = ok(&bed, "cp1", &format!("{kubectl} get nodes"));
    assert!(
        nodes.starts_with("NAME") && nodes.contains("cp1") && nodes.contains("NotReady") && !nodes.contains(" Ready "),
        "{nodes}"
    );
    let bare = ok(&bed, "cp1", &format!("{kubectl} get nodes --no-headers"));
    assert!(bare.starts_with("cp1 ") && !bare.contains("NAME"), "{bare}");
    put(
        &bed,
        "cp1",
        "/tmp/ds.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kube-flannel-ds\n  namespace: kube-flannel\n",
    );
    assert_eq!(
        ok(&bed, "cp1", &format!("{kubectl} apply -f /tmp/ds.yaml")).trim(),
        "daemonset.apps/kube-flannel-ds created"
    );
    assert_eq!(
        ok(&bed, "cp1", &format!("{kubectl} apply -f /tmp/ds.yaml")).trim(),
        "daemonset.apps/kube-flannel-ds unchanged"
    );
    let json: serde_json::Value =
        serde_json::from_str(&ok(&bed, "cp1", &format!("{kubectl} get nodes -o json"))).unwrap();
    let items = json["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    for node in items {
        let ready = node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True", "{node}");
        assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.31.4");
    }
    // A stopped kubelet makes its node NotReady (Unknown), a restart brings it back.
    ok(&bed, "w1", "systemctl stop kubelet");
    assert!(
        ok(&bed, "cp1", &format!("{kubectl} get nodes")).lines().any(|l| l.starts_with("w1") && l.contains("NotReady"))
    );
    ok(&bed, "w1", "systemctl start kubelet");
    assert!(
        ok(&bed, "cp1", &format!("{kubectl} get nodes")).lines().any(|l| l.starts_with("w1") && l.contains(" Ready "))
    );
    assert_eq!(ok(&bed, "cp1", &format!("{kubectl} cordon w1")).trim(), "node/w1 cordoned");
    assert_eq!(ok(&bed, "cp1", &format!("{kubectl} cordon w1")).trim(), "node/w1 already cordoned");
    assert!(ok(&bed, "cp1", &format!("{kubectl} get nodes")).contains("Ready,SchedulingDisabled"));
    assert_eq!(ok(&bed, "cp1", &format!("{kubectl} uncordon w1")).trim(), "node/w1 uncordoned");
    let refused = fails(&bed, "w1", "kubectl get nodes");
    assert!(
        refused.contains(
            "The connection to the server localhost:8080 was refused - did you specify the right host or port?"
        ),
        "{refused}"
    );

    // Certificates: 1 year for leaves, 10 for CAs; age them, check, renew.
    let check = ok(&bed, "cp1", "kubeadm certs check-expiration");
    assert!(check.contains("CERTIFICATE                EXPIRES                  RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED"), "{check}");
    assert!(
        check.lines().any(|l| l.starts_with("apiserver-etcd-client ") && l.contains("364d") && l.contains("etcd-ca")),
        "{check}"
    );
    assert!(check.lines().any(|l| l.starts_with("ca ") && l.contains(" 9y ")), "{check}");
    assert!(ok(&bed, "cp2", "kubeadm certs check-expiration").contains("!MISSING! super-admin.conf"));
    bed.advance_clock(345 * 86_400).unwrap();
    let aged: serde_json::Value =
        serde_json::from_str(&ok(&bed, "cp1", "kubeadm certs check-expiration -o json")).unwrap();
    let residual = aged["certificates"][1]["residualTime"].as_i64().unwrap();
    assert!((19 * 86_400..21 * 86_400).contains(&residual), "about 20 days left, got {residual}s");
    let renewed = ok(&bed, "cp1", "kubeadm certs renew all");
    assert!(renewed.contains("certificate for serving the Kubernetes API renewed"));
    assert!(renewed.ends_with("Done renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.\n"));
    let after = ok(&bed, "cp1", "kubeadm certs check-expiration");
    // A year from the renewal: 365d when the check runs within the renewal's second, else 364d.
    assert!(
        after.lines().any(|l| l.starts_with("apiserver ") && (l.contains("364d") || l.contains("365d"))),
        "{after}"
    );
    ok(&bed, "cp1", "openssl verify -CAfile /etc/kubernetes/pki/ca.crt /etc/kubernetes/pki/apiserver.crt");

    let events: Vec<String> = bed.cluster_state().events.iter().map(|e| format!("{} {}", e.what, e.node)).collect();
    for e in ["init cp1", "join-control-plane cp2", "join w1", "cordon w1", "uncordon w1"] {
        assert!(events.contains(&e.to_string()), "event {e} missing: {events:?}");
    }
}

#[test]
fn configuration_and_preflight_errors() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    prepare(&bed, "cp1", 30, 8);
    let endpoint = format!("{}:6443", bed.host("cp1").ip);
    // v1beta4 does not exist for kubeadm 1.30.
    put(&bed, "cp1", "/root/v4.yaml", &init_config("v1beta4", "v1.30.8", &endpoint, TOKEN, KEY));
    let e = fails(&bed, "cp1", "kubeadm init --config /root/v4.yaml");
    assert!(e.contains("no kind \"InitConfiguration\" is registered for version \"kubeadm.k8s.io/v1beta4\""), "{e}");
    // Unknown fields are strict decoding errors.
    put(
        &bed,
        "cp1",
        "/root/typo.yaml",
        &init_config("v1beta3", "v1.30.8", &endpoint, TOKEN, KEY).replace("  podSubnet:", "  podSubnets:"),
    );
    let e = fails(&bed, "cp1", "kubeadm init --config /root/typo.yaml");
    assert!(e.contains("strict decoding error: unknown field \"networking.podSubnets\""), "{e}");
    // Preflight: forwarding off, containerd stopped and no conntrack (below 1.32) are fatal;
    // swap on is a warning (1.30 wording).
    ok(
        &bed,
        "cp1",
        "sysctl -q -w net.ipv4.ip_forward=0; systemctl stop containerd; swapon -a; mv /usr/sbin/conntrack /root/",
    );
    put(&bed, "cp1", "/root/ok.yaml", &init_config("v1beta3", "v1.30.8", &endpoint, TOKEN, KEY));
    let e = fails(&bed, "cp1", "kubeadm init --config /root/ok.yaml");
    assert!(e.contains("\t[WARNING Swap]: swap is supported for cgroup v2 only; the NodeSwap feature gate of the kubelet is beta but disabled by default"), "{e}");
    assert!(e.contains("error execution phase preflight: [preflight] Some fatal errors occurred:\n"), "{e}");
    assert!(e.contains("\t[ERROR FileContent--proc-sys-net-ipv4-ip_forward]: /proc/sys/net/ipv4/ip_forward contents are not set to 1"), "{e}");
    assert!(e.contains("\t[ERROR CRI]: container runtime is not running"), "{e}");
    assert!(e.contains("\t[ERROR FileExisting-conntrack]: conntrack not found in system path"), "{e}");
    ok(&bed, "cp1", "mv /root/conntrack /usr/sbin/");
    assert!(e.contains("[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`"));
    // Not root: the privileged-user check fails first, alone.
    let o = bed.ssh("cp1", "kwadmin", "kubeadm init --config /root/ok.yaml 2>&1; true").unwrap();
    assert!(
        text(&o).contains("[ERROR IsPrivilegedUser]: user is not running as root")
            || text(&o).contains("Permission denied"),
        "{}",
        text(&o)
    );
    // A version kubeadm 1.30 cannot deploy.
    put(&bed, "cp1", "/root/old.yaml", &init_config("v1beta3", "v1.28.9", &endpoint, TOKEN, KEY));
    let e = fails(&bed, "cp1", "kubeadm init --config /root/old.yaml");
    assert!(e.contains("this version of kubeadm only supports deploying clusters with the control plane version >= 1.29.0. Current version: v1.28.9"), "{e}");
    // Held packages do not move without --allow-change-held-packages; unknown versions are refused.
    let e = fails(&bed, "cp1", "apt-get install -y kubeadm=1.30.9-1.1");
    assert!(e.contains("E: Held packages were changed and -y was used without --allow-change-held-packages."), "{e}");
    let e = fails(&bed, "cp1", "apt-get install -y --allow-change-held-packages kubeadm=1.30.99-1.1");
    assert!(e.contains("E: Version '1.30.99-1.1' for 'kubeadm' was not found"), "{e}");
    // The 1.30 repository shows only 1.30 versions, newest first, in apt's columns.
    let madison = ok(&bed, "cp1", "apt-cache madison kubeadm");
    let mirror = bed.package_mirror();
    assert!(
        madison.starts_with(&format!("   kubeadm | 1.30.14-1.1 | {mirror}/core:/stable:/v1.30/deb  Packages\n")),
        "{madison}"
    );
    assert!(!madison.contains("1.31."));
    // The repository is signed with the bed's key: the real gpg reads it, apt wants exactly it.
    let listed = ok(
        &bed,
        "cp1",
        "gpg --homedir \"$(mktemp -d)\" --batch --show-keys --with-colons /etc/apt/keyrings/kubernetes-apt-keyring.gpg 2>/dev/null",
    );
    assert!(
        listed.contains(&format!("fpr:::::::::{}:", kubewright_testbed::sim::REPOSITORY_KEY_FINGERPRINT)),
        "{listed}"
    );
    // (A keyring with another key: tests/debian_host.rs.) curl's --proto: a scheme it does not
    // allow fails before any connection.
    let e = fails(&bed, "cp1", &format!("curl -fsSL --proto =https {mirror}/core:/stable:/v1.30/deb/Release.key"));
    assert!(e.contains("curl: (1) Protocol \"http\" not supported or disabled in libcurl"), "{e}");
}

#[test]
fn upgrade_one_minor_with_kubeadm_rules() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    bootstrap(&bed, 30, 8);

    let next_repo = "sed -i 's/v1.30/v1.31/' /etc/apt/sources.list.d/kubernetes.list && apt-get update -q >/dev/null";
    ok(&bed, "cp1", next_repo);
    ok(&bed, "cp1", "apt-get install -y -q --allow-change-held-packages kubeadm=1.31.4-1.1 >/dev/null");
    let plan = bed.ssh("cp1", "root", "kubeadm upgrade plan").unwrap();
    assert!(
        text(&plan).contains("[upgrade/versions] Cluster version: 1.30.8")
            && text(&plan).contains("\tkubeadm upgrade apply v1.31.4"),
        "{}",
        text(&plan)
    );
    // One minor at a time, and never past the kubeadm binary.
    let e = fails(&bed, "cp1", "kubeadm upgrade apply v1.32.0 -y");
    assert!(e.contains("Specified version to upgrade to \"v1.32.0\" is too high; kubeadm can upgrade only 1 minor version at a time"), "{e}");
    assert!(e.contains("is at least one minor release higher than the kubeadm minor release (32 > 31)"), "{e}");
    let e = fails(&bed, "cp1", "kubeadm upgrade apply v1.31.5 -y");
    assert!(
        e.contains("is higher than the kubeadm version \"v1.31.4\". Upgrade kubeadm first")
            && e.contains("Can be bypassed if you pass the --force flag"),
        "{e}"
    );
    let e = fails(&bed, "cp1", "kubeadm upgrade apply v1.31.4 < /dev/null");
    assert!(e.contains("won't proceed; the user didn't answer (Y|y) in order to continue"), "{e}");

    let serial_before = ok(&bed, "cp1", "openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -serial");
    let applied = ok(&bed, "cp1", "kubeadm upgrade apply v1.31.4 -y");
    assert!(
        applied.contains("[upgrade/successful] SUCCESS! Your cluster was upgraded to \"v1.31.4\". Enjoy!"),
        "{applied}"
    );
    assert!(ok(&bed, "cp1", "cat /etc/kubernetes/manifests/kube-apiserver.yaml").contains("kube-apiserver:v1.31.4"));
    let serial_after = ok(&bed, "cp1", "openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -serial");
    assert_ne!(serial_before, serial_after, "upgrade apply renews certificates");
    // Applying the version the cluster runs changes nothing (and renews nothing).
    ok(&bed, "cp1", "kubeadm upgrade apply v1.31.4 -y");
    assert_eq!(serial_after, ok(&bed, "cp1", "openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -serial"));

    // The kubelet is not upgraded by kubeadm: its node keeps its version until restarted.
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    assert!(
        ok(&bed, "cp1", &format!("{kubectl} get nodes"))
            .lines()
            .any(|l| l.starts_with("cp1") && l.ends_with("v1.30.8"))
    );
    ok(
        &bed,
        "cp1",
        "apt-get install -y -q --allow-change-held-packages kubelet=1.31.4-1.1 kubectl=1.31.4-1.1 >/dev/null && systemctl daemon-reload && systemctl restart kubelet",
    );
    assert!(
        ok(&bed, "cp1", &format!("{kubectl} get nodes"))
            .lines()
            .any(|l| l.starts_with("cp1") && l.contains(" Ready ") && l.ends_with("v1.31.4"))
    );

    // A worker's kubeadm must be able to handle the cluster's new version.
    let e = fails(&bed, "w1", "kubeadm upgrade node");
    assert!(e.contains("this version of kubeadm only supports deploying clusters with the control plane version >= 1.29.0. Current version: v1.31.4"), "{e}");
    ok(&bed, "w1", next_repo);
    ok(&bed, "w1", "apt-get install -y -q --allow-change-held-packages kubeadm=1.31.4-1.1 >/dev/null");
    let upgraded = ok(&bed, "w1", "kubeadm upgrade node");
    assert!(upgraded.contains("[upgrade] The configuration for this node was successfully updated!"), "{upgraded}");
    let events: Vec<String> = bed.cluster_state().events.iter().map(|e| format!("{} {}", e.what, e.node)).collect();
    assert!(
        events.contains(&"upgrade-apply v1.31.4 cp1".to_string())
            && events.contains(&"upgrade-node v1.31.4 w1".to_string()),
        "{events:?}"
    );
}

#[test]
fn static_pods_etcd_and_api_availability() {
    let Some(mut bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    let endpoint = bootstrap(&bed, 31, 4);
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf";

    // Static pods run while their manifests are in place and the kubelet is active.
    let ps = ok(&bed, "cp1", "crictl ps");
    for c in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
        assert!(ps.contains(c), "{c} not running:\n{ps}");
    }
    let id_before = ok(&bed, "cp1", "crictl ps --name kube-apiserver -q");
    assert!(!id_before.trim().is_empty());
    // Moving a manifest out stops its pod; the API it served goes away; moving it back
    // starts a new container (the restart certificate renewal relies on).
    ok(
        &bed,
        "cp1",
        "mkdir -p /etc/kubernetes/moved && mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/moved/",
    );
    assert!(ok(&bed, "cp1", "crictl ps --name kube-apiserver -q").trim().is_empty());
    let down = fails(&bed, "cp1", &format!("{kubectl} get nodes"));
    assert!(down.contains(&format!("The connection to the server {endpoint} was refused")), "{down}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    ok(
        &bed,
        "cp1",
        "mv /etc/kubernetes/moved/kube-apiserver.yaml /etc/kubernetes/manifests/ && touch /etc/kubernetes/manifests/kube-apiserver.yaml",
    );
    let id_after = ok(&bed, "cp1", "crictl ps --name kube-apiserver -q");
    assert!(!id_after.trim().is_empty() && id_after != id_before, "a restarted pod is a new container");
    // The kubelet's labels, matched exactly and all of them (containerd's filterCRIContainers).
    let labelled = "crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name";
    assert_eq!(ok(&bed, "cp1", &format!("{labelled}=kube-apiserver")), id_after);
    assert!(ok(&bed, "cp1", &format!("{labelled}=kube-api")).trim().is_empty(), "no prefix match");
    let pod = ok(&bed, "cp1", "crictl ps -o json --label io.kubernetes.pod.name=kube-apiserver-cp1");
    assert!(pod.contains("\"io.kubernetes.pod.namespace\": \"kube-system\""), "{pod}");
    assert!(fails(&bed, "cp1", "crictl ps --label tier").contains("incorrectly specified label: tier"));
    ok(&bed, "cp1", &format!("{kubectl} get nodes"));

    // etcd's tools exist only in its container (distroless: no shell), as on a kubeadm host;
    // health and snapshots need the kubeadm client certificates.
    assert!(fails(&bed, "cp1", "command -v etcdctl || command -v etcdutl").is_empty());
    let etcd_id = ok(&bed, "cp1", &format!("{labelled}=etcd"));
    let etcd_id = etcd_id.trim();
    let in_etcd = format!("crictl exec {etcd_id}");
    // No coreutils in the image, and the 3.5 images have no etcdutl.
    for program in ["ls /", "etcdutl version"] {
        let missing = fails(&bed, "cp1", &format!("{in_etcd} {program}"));
        let name = program.split(' ').next().unwrap();
        // logrus quotes the message: its own quotes come escaped.
        assert!(
            missing.contains(&format!(r#"exec: \"{name}\": executable file not found in $PATH"#))
                && missing.contains("level=fatal"),
            "{missing}"
        );
    }
    let certs = "--endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key";
    let health = bed.ssh("cp1", "root", &format!("{in_etcd} etcdctl {certs} endpoint health")).unwrap();
    assert!(health.status.success());
    // The real etcdctl 3.5 prints a healthy endpoint on stdout, an unhealthy one on stderr
    // (printer_simple.go; the simulator had both on stderr).
    assert!(
        String::from_utf8_lossy(&health.stdout)
            .starts_with("https://127.0.0.1:2379 is healthy: successfully committed proposal: took = "),
        "{}",
        text(&health)
    );
    let unhealthy =
        fails(&bed, "cp1", &format!("{in_etcd} etcdctl --endpoints=https://127.0.0.1:2379 endpoint health"));
    assert!(
        unhealthy.contains("is unhealthy: failed to commit proposal")
            && unhealthy.contains("Error: unhealthy cluster")
            && unhealthy.contains("command terminated with non-zero exit code"),
        "{unhealthy}"
    );
    assert!(ok(&bed, "cp1", &format!("{in_etcd} etcdctl {certs} member list")).contains(", started, cp1, https://"));
    // The container sees etcd's data directory: a snapshot saved there is on the host; one
    // saved elsewhere stays in the container's own root.
    let saved = ok(&bed, "cp1", &format!("{in_etcd} etcdctl {certs} snapshot save /var/lib/etcd/backup.db"));
    assert_eq!(saved.trim(), "Snapshot saved at /var/lib/etcd/backup.db");
    ok(&bed, "cp1", "test -s /var/lib/etcd/backup.db");
    let elsewhere = ok(&bed, "cp1", &format!("{in_etcd} etcdctl {certs} snapshot save /tmp/backup.db"));
    assert_eq!(elsewhere.trim(), "Snapshot saved at /tmp/backup.db");
    fails(&bed, "cp1", "test -e /tmp/backup.db");
    let status =
        bed.ssh("cp1", "root", &format!("{in_etcd} etcdctl snapshot status /var/lib/etcd/backup.db -w table")).unwrap();
    assert!(status.status.success(), "{}", text(&status));
    assert!(String::from_utf8_lossy(&status.stderr).starts_with("Deprecated: Use `etcdutl snapshot status` instead."));
    // The table's column widths follow the values (the hash has no leading zeros): compare cells.
    let table = String::from_utf8_lossy(&status.stdout).into_owned();
    let header: Vec<&str> =
        table.lines().nth(1).unwrap_or("").split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
    assert_eq!(header, ["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], "{table}");
    let not_seen = fails(
        &bed,
        "cp1",
        &format!("cp /var/lib/etcd/backup.db /root/b.db && {in_etcd} etcdctl snapshot status /root/b.db"),
    );
    assert!(not_seen.contains("Error: stat /root/b.db: no such file or directory"), "{not_seen}");

    // A crashed worker stops posting status: NotReady; booted, it is Ready again.
    bed.crash("w1").unwrap();
    assert!(
        ok(&bed, "cp1", &format!("{kubectl} get nodes")).lines().any(|l| l.starts_with("w1") && l.contains("NotReady"))
    );
    bed.boot("w1").unwrap();
    assert!(
        ok(&bed, "cp1", &format!("{kubectl} get nodes")).lines().any(|l| l.starts_with("w1") && l.contains(" Ready "))
    );
}

#[test]
fn drain_respects_disruption_budgets_and_filters() {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 1;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    bootstrap(&bed, 31, 4);
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf";
    // Two replicas (one per worker), and a budget that keeps both.
    put(
        &bed,
        "cp1",
        "/tmp/app.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n  template:\n    metadata:\n      labels:\n        app: web\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web-pdb\n  namespace: shop\nspec:\n  minAvailable: 2\n  selector:\n    matchLabels:\n      app: web\n",
    );
    let applied = ok(&bed, "cp1", &format!("{kubectl} apply -f /tmp/app.yaml"));
    assert!(
        applied.contains("deployment.apps/web created")
            && applied.contains("poddisruptionbudget.policy/web-pdb created"),
        "{applied}"
    );
    let state = bed.cluster_state();
    let on_w1 = state.pods.iter().find(|p| p.node == "w1").expect("a web pod on w1").name.clone();

    // Without --ignore-daemonsets, kubectl refuses before evicting anything.
    let e = fails(&bed, "cp1", &format!("{kubectl} drain w1"));
    assert!(
        e.contains(
            "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): kube-flannel/kube-flannel-ds-"
        ),
        "{e}"
    );

    // The budget blocks the eviction until the timeout; the report names the pod.
    let started = std::time::Instant::now();
    let e = fails(
        &bed,
        "cp1",
        &format!("{kubectl} drain w1 --ignore-daemonsets --delete-emptydir-data --grace-period=30 --timeout=2s"),
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    assert!(e.contains(&format!("error when evicting pods/\"{on_w1}\" -n \"shop\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.")), "{e}");
    assert!(
        e.contains(&format!("error when evicting pods/\"{on_w1}\" -n \"shop\": global timeout reached: 2s")),
        "{e}"
    );
    assert!(e.contains("There are pending nodes to be drained:\n w1\n"), "{e}");
    // kubectl names only the pod; the budget is found the way an admin would.
    let budgets: serde_json::Value =
        serde_json::from_str(&ok(&bed, "cp1", &format!("{kubectl} get pdb -A -o json"))).unwrap();
    assert_eq!(budgets["items"][0]["metadata"]["name"], "web-pdb");
    assert_eq!(budgets["items"][0]["status"]["disruptionsAllowed"], 0);
    let table = ok(&bed, "cp1", &format!("{kubectl} get pdb -n shop"));
    assert!(table.starts_with("NAME      MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE\nweb-pdb   2               N/A               0"), "{table}");
    assert!(ok(&bed, "cp1", &format!("{kubectl} get pods -A --field-selector spec.nodeName=w1")).contains(&on_w1));
    // The node stays cordoned (kubectl does not undo its cordon).
    assert!(
        ok(&bed, "cp1", &format!("{kubectl} get nodes"))
            .lines()
            .any(|l| l.starts_with("w1") && l.contains("SchedulingDisabled"))
    );
    ok(&bed, "cp1", &format!("{kubectl} uncordon w1"));

    // With a budget that allows one disruption, the pod moves to the other worker.
    put(
        &bed,
        "cp1",
        "/tmp/pdb.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web-pdb\n  namespace: shop\nspec:\n  maxUnavailable: 1\n  selector:\n    matchLabels:\n      app: web\n",
    );
    ok(&bed, "cp1", &format!("{kubectl} apply -f /tmp/pdb.yaml"));
    let drained =
        ok(&bed, "cp1", &format!("{kubectl} drain w1 --ignore-daemonsets --delete-emptydir-data --timeout=30s"));
    assert!(
        drained.contains(&format!("evicting pod shop/{on_w1}\npod/{on_w1} evicted\n"))
            && drained.ends_with("node/w1 drained\n"),
        "{drained}"
    );
    assert!(bed.cluster_state().pods.iter().all(|p| p.node == "w2"), "the replica was rescheduled on w2");
    ok(&bed, "cp1", &format!("{kubectl} uncordon w1"));

    // Pods with emptyDir volumes need --delete-emptydir-data; bare pods need --force.
    put(
        &bed,
        "cp1",
        "/tmp/cache.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: cache\nspec:\n  replicas: 1\n  template:\n    metadata:\n      labels:\n        app: cache\n    spec:\n      volumes:\n      - name: tmp\n        emptyDir: {}\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: debug\nspec:\n  nodeName: w1\n",
    );
    ok(&bed, "cp1", &format!("{kubectl} apply -f /tmp/cache.yaml"));
    let e = fails(&bed, "cp1", &format!("{kubectl} drain w1 --ignore-daemonsets"));
    assert!(
        e.contains("cannot delete Pods with local storage (use --delete-emptydir-data to override): default/cache-"),
        "{e}"
    );
    assert!(
        e.contains("cannot delete Pods that declare no controller (use --force to override): default/debug"),
        "{e}"
    );
}
