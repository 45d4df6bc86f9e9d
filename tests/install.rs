//! The install playbook end to end on the test bed: bare hosts to a Ready cluster, converged
//! (a second apply changes nothing), grown (new nodes join, nothing else moves), a changed
//! setting applied with only what depends on it restarted, and failures in the middle of a
//! phase that the next apply repairs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use kubewright_testbed::faults::{Fault, FaultAction};
use kubewright_testbed::{Testbed, TestbedOptions, on_both_transports};
use serde_json::Value;

struct Fixture {
    bed: Testbed,
    state: tempfile::TempDir,
    transport: &'static str,
}

impl Fixture {
    fn new(hosts: usize, control_planes: usize, transport: &'static str) -> Option<Fixture> {
        let mut opts = TestbedOptions::new(hosts);
        opts.control_planes = control_planes;
        let bed = Testbed::up_or_skip(opts)?;
        Some(Fixture { bed, state: tempfile::tempdir().unwrap(), transport })
    }

    fn kubewright(&self, args: &[&str], inventory: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_kubewright"))
            .args(args)
            .arg("-i")
            .arg(inventory)
            .env("NO_COLOR", "1")
            .env("KUBEWRIGHT_TRANSPORT", self.transport)
            .env("KUBEWRIGHT_STATE_DIR", self.state.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn apply(&self, inventory: &Path) -> Output {
        self.kubewright(&["apply", "--yes", "-o", "json"], inventory)
    }

    /// The bed's inventory without the named hosts, or with `edit` applied.
    fn inventory(&self, name: &str, without: &[&str], edit: impl Fn(String) -> String) -> PathBuf {
        let full = std::fs::read_to_string(self.bed.inventory_path()).unwrap();
        let mut kept = String::new();
        let mut skipping = false;
        for line in full.lines() {
            if let Some(host) = line.strip_prefix("  - name: ") {
                skipping = without.contains(&host.trim());
            } else if !line.starts_with("    ") {
                skipping = false;
            }
            if !skipping {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        let path = self.bed.dir().join(name);
        std::fs::write(&path, edit(kept)).unwrap();
        path
    }

    /// What the simulated API server and etcd hold.
    fn cluster(&self) -> Value {
        serde_json::to_value(self.bed.cluster_state()).unwrap()
    }

    /// How often a unit was started on a host.
    fn starts(&self, host: &str, unit: &str) -> u64 {
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(self.bed.host_dir(host).join("sim/host.json")).unwrap())
                .unwrap();
        state["units"][unit]["starts"].as_u64().unwrap_or(0)
    }

    fn sh(&self, host: &str, script: &str) -> String {
        String::from_utf8_lossy(&self.bed.exec(host, script).unwrap().stdout).into_owned()
    }
}

mod common;
use common::{json_events as events, output_text as text};

/// The names of the nodes the cluster has registered.
fn nodes(cluster: &Value) -> Vec<String> {
    cluster["nodes"].as_object().unwrap().keys().cloned().collect()
}

/// (what, node) of every cluster event: init, join, join-control-plane, kubelet-start...
fn cluster_events(cluster: &Value) -> Vec<(String, String)> {
    cluster["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["what"].as_str().unwrap().to_string(), e["node"].as_str().unwrap().to_string()))
        .collect()
}

/// Every secret the cluster holds (bootstrap tokens) must appear in no output.
fn assert_no_token_in(cluster: &Value, output: &str) {
    for t in cluster["tokens"].as_array().unwrap() {
        let secret = t["secret"].as_str().unwrap();
        assert!(!output.contains(secret), "the bootstrap token secret {secret} leaked into the output");
    }
}

fn assert_applied(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", text(o));
}

/// 2 control planes and a worker from bare hosts; then the full inventory adds a control plane
/// and a worker; then a third apply finds nothing to do.
fn an_ha_cluster_is_installed_grown_and_converged(transport: &'static str) {
    let Some(f) = Fixture::new(5, 3, transport) else { return };
    let small = f.inventory("small.yaml", &["cp3", "w2"], |t| t);
    let first = f.apply(&small);
    assert_applied(&first);
    let cluster = f.cluster();
    assert_eq!(nodes(&cluster), ["cp1", "cp2", "w1"]);
    assert_eq!(f.bed.etcd_members().unwrap().names, ["cp1", "cp2"], "the real etcd's members");
    assert_eq!(cluster["cni_applied"], true);
    assert_no_token_in(&cluster, &text(&first));
    // The admin kubeconfig on the bastion: private, pointing at the control-plane endpoint.
    let admin = f.state.path().join(format!("{}/admin.conf", cluster["cluster_name"].as_str().unwrap()));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&admin).unwrap().permissions()) & 0o777;
    assert_eq!(mode, 0o600);
    let endpoint = cluster["endpoint"].as_str().unwrap();
    assert!(std::fs::read_to_string(&admin).unwrap().contains(&format!("server: https://{endpoint}")));
    // The files that held secrets are gone from every host.
    for host in ["cp1", "cp2", "w1"] {
        assert_eq!(f.sh(host, "ls /etc/kubewright/ | grep kubeadm || true"), "", "on {host}");
    }

    let full = f.bed.inventory_path();
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &full);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let before = cluster_events(&f.cluster());
    let grow = f.apply(&full);
    assert_applied(&grow);
    let cluster = f.cluster();
    assert_eq!(nodes(&cluster), ["cp1", "cp2", "cp3", "w1", "w2"]);
    assert_eq!(f.bed.etcd_members().unwrap().names, ["cp1", "cp2", "cp3"], "the real etcd's members");
    let new_events: Vec<(String, String)> = cluster_events(&cluster)[before.len()..].to_vec();
    let touched: Vec<&str> =
        new_events.iter().filter(|(what, _)| what != "upload-certs").map(|(_, n)| n.as_str()).collect();
    assert!(touched.iter().all(|n| ["cp3", "w2"].contains(n)), "only the new nodes change: {new_events:?}");
    assert!(new_events.contains(&("join-control-plane".into(), "cp3".into())), "{new_events:?}");
    assert!(new_events.contains(&("join".into(), "w2".into())), "{new_events:?}");
    assert_no_token_in(&cluster, &text(&grow));

    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &full);
    assert_eq!(plan.status.code(), Some(0), "a converged cluster has nothing to do:\n{}", text(&plan));
    let before = cluster_events(&f.cluster());
    let containerd_starts = f.starts("w1", "containerd");
    let again = f.apply(&full);
    assert_applied(&again);
    assert_eq!(cluster_events(&f.cluster()), before, "a converged apply changes nothing in the cluster");
    assert_eq!(f.starts("w1", "containerd"), containerd_starts, "and restarts nothing");
    let writes: Vec<Value> = events(&again)
        .into_iter()
        .filter(|e| e["event"] == "operation" && e["what"].as_str().is_some_and(|w| w.starts_with("write ")))
        .collect();
    assert!(writes.is_empty(), "a converged apply writes no file: {writes:?}");
}

/// One host, control plane and worker at once; the plan tells how long its certificates
/// last, and warns once they are within `certificates.renewBefore`.
fn a_single_node_cluster(transport: &'static str) {
    let Some(f) = Fixture::new(1, 1, transport) else { return };
    let o = f.apply(&f.bed.inventory_path());
    assert_applied(&o);
    let cluster = f.cluster();
    assert_eq!(nodes(&cluster), ["cp1"]);
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &f.bed.inventory_path());
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));
    assert!(text(&plan).contains("certificates valid for 364 more days"), "{}", text(&plan));
}

/// Issue 19: on 1.32 no Kubernetes package depends on cri-tools any more, yet the renewal runs
/// crictl: kubewright installs it from the cluster's repository. The packages are Debian's
/// real dpkg's: held, at the cluster's version, their Depends (conntrack, iptables) installed.
fn a_1_32_cluster_has_crictl_and_renews(transport: &'static str) {
    let mut opts = TestbedOptions::new(2);
    opts.kubernetes_version = "1.32.9".into();
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let f = Fixture { bed, state: tempfile::tempdir().unwrap(), transport };
    assert_applied(&f.apply(&f.bed.inventory_path()));
    for host in ["cp1", "w1"] {
        assert_eq!(
            f.sh(host, "apt-mark showhold").split_whitespace().collect::<Vec<_>>(),
            ["kubeadm", "kubectl", "kubelet"]
        );
        let versions =
            f.sh(host, "dpkg-query -W -f='${Package}=${Version}\\n' kubeadm kubelet kubectl cri-tools conntrack");
        for want in
            ["kubeadm=1.32.9-1.1", "kubelet=1.32.9-1.1", "kubectl=1.32.9-1.1", "cri-tools=1.32.0-1.1", "conntrack="]
        {
            assert!(versions.contains(want), "{host}: {want} in {versions}");
        }
        assert_eq!(f.sh(host, "command -v crictl").trim(), "/usr/bin/crictl", "{host}");
    }
    let renewed = f.kubewright(&["certs", "renew", "--force", "--yes", "-o", "json"], &f.bed.inventory_path());
    assert_eq!(renewed.status.code(), Some(0), "{}", text(&renewed));
}

/// Certificates issued 345 days ago (the simulator's clock set back before the install): the
/// plan warns with the first to expire, and still has nothing to change.
fn certificates_close_to_expiry_are_warned_about(transport: &'static str) {
    let Some(f) = Fixture::new(1, 1, transport) else { return };
    f.bed.advance_clock(-345 * 86_400).unwrap();
    assert_applied(&f.apply(&f.bed.inventory_path()));
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &f.bed.inventory_path());
    assert_eq!(plan.status.code(), Some(0), "a warning is not a change:\n{}", text(&plan));
    assert!(
        text(&plan).contains("expires in 19 days (certificates.renewBefore is 30d): renew the certificates"),
        "{}",
        text(&plan)
    );
}

/// `kubeadm join` fails on a control plane and on a worker (once); the run stops there, names
/// host and step, and the next apply joins them with fresh credentials.
fn failed_joins_are_finished_by_the_next_apply(transport: &'static str) {
    let Some(f) = Fixture::new(3, 2, transport) else { return };
    for host in ["cp2", "w1"] {
        f.bed
            .add_fault(
                host,
                Fault {
                    command_prefix: "kubeadm join".into(),
                    action: FaultAction::FailOnce {
                        code: 1,
                        stderr: "error execution phase kubelet-start: timed out waiting for the condition\n".into(),
                    },
                    fired: false,
                },
            )
            .unwrap();
    }
    let inventory = f.bed.inventory_path();
    let failed = f.apply(&inventory);
    assert_eq!(failed.status.code(), Some(1), "{}", text(&failed));
    let report = events(&failed).pop().unwrap();
    assert_eq!(report["failures"][0]["host"], "cp2", "{report}");
    assert_eq!(report["failures"][0]["step"], "join-control-plane");
    assert!(report["steps_not_run"].as_array().unwrap().iter().any(|s| s == "join-worker"), "{report}");
    assert_eq!(nodes(&f.cluster()), ["cp1"]);

    // cp2 now joins; w1's join fails once more (its fault has not fired yet).
    let second = f.apply(&inventory);
    assert_eq!(second.status.code(), Some(1), "{}", text(&second));
    assert_eq!(events(&second).pop().unwrap()["failures"][0]["host"], "w1");
    assert_eq!(nodes(&f.cluster()), ["cp1", "cp2"]);

    let third = f.apply(&inventory);
    assert_applied(&third);
    let cluster = f.cluster();
    assert_eq!(nodes(&cluster), ["cp1", "cp2", "w1"]);
    // Each later run made its own token and uploaded the certificates again.
    assert!(cluster["tokens"].as_array().unwrap().len() >= 3, "{}", cluster["tokens"]);
    assert_no_token_in(&cluster, &format!("{}{}{}", text(&failed), text(&second), text(&third)));
}

on_both_transports!(
    an_ha_cluster_is_installed_grown_and_converged,
    a_local_load_balancer_carries_the_workers_past_a_dead_control_plane
);

mod openssh_only {
    #[test]
    fn a_single_node_cluster() {
        super::a_single_node_cluster("openssh")
    }

    #[test]
    fn a_1_32_cluster_has_crictl_and_renews() {
        super::a_1_32_cluster_has_crictl_and_renews("openssh")
    }

    #[test]
    fn certificates_close_to_expiry_are_warned_about() {
        super::certificates_close_to_expiry_are_warned_about("openssh")
    }

    #[test]
    fn failed_joins_are_finished_by_the_next_apply() {
        super::failed_joins_are_finished_by_the_next_apply("openssh")
    }

    #[test]
    fn a_changed_mirror_and_stopped_services_converge() {
        super::a_changed_mirror_and_stopped_services_converge("openssh")
    }

    #[test]
    fn a_host_cut_off_before_the_run_changes_nothing_anywhere() {
        super::a_host_cut_off_before_the_run_changes_nothing_anywhere("openssh")
    }
}

/// A registry mirror added to the inventory: the plan shows the new hosts.toml, apply writes it,
/// and nothing restarts (containerd reads registry hosts at each pull). Then containerd stopped
/// by hand is noticed and started, and so is a joined node's kubelet.
fn a_changed_mirror_and_stopped_services_converge(transport: &'static str) {
    let Some(f) = Fixture::new(2, 1, transport) else { return };
    assert_applied(&f.apply(&f.bed.inventory_path()));
    let mirrored = f.inventory("mirrored.yaml", &[], |t| {
        t.replacen(
            "cluster:\n",
            "cluster:\n  containerd:\n    registryMirrors:\n      docker.io:\n        - https://mirror.example.com\n",
            1,
        )
    });
    let plan = f.kubewright(&["plan", "--diff", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    let shown = text(&plan);
    assert!(shown.contains("/etc/containerd/certs.d/docker.io/hosts.toml"), "{shown}");
    assert!(shown.contains("+server = \"https://registry-1.docker.io\""), "the diff is shown:\n{shown}");

    let before = cluster_events(&f.cluster());
    let containerd = f.starts("w1", "containerd");
    let kubelet = f.starts("w1", "kubelet");
    assert_applied(&f.apply(&mirrored));
    assert!(f.sh("w1", "cat /etc/containerd/certs.d/docker.io/hosts.toml").contains("https://mirror.example.com"));
    assert_eq!(f.starts("w1", "kubelet"), kubelet, "the kubelet does not depend on the mirror");
    assert_eq!(f.starts("w1", "containerd"), containerd, "containerd reads hosts.toml at each pull");
    assert_eq!(cluster_events(&f.cluster()), before, "nothing joins or restarts in the cluster");
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));

    // containerd stopped behind kubewright's back: the plan says so and apply starts it.
    f.sh("w1", "systemctl stop containerd");
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(text(&plan).contains("start containerd: it is configured but not running"), "{}", text(&plan));
    assert_applied(&f.apply(&mirrored));
    assert_eq!(f.sh("w1", "systemctl is-active containerd").trim(), "active");
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));

    // The same for a joined node's kubelet; the run ends with every node Ready again.
    f.sh("w1", "systemctl stop kubelet");
    let o = f.apply(&mirrored);
    assert_applied(&o);
    assert!(text(&o).contains("start the kubelet: the node joined but its kubelet is not running"), "{}", text(&o));
    assert_eq!(f.cluster()["nodes"]["w1"]["kubelet_running"], true);
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));

    // A sysctl changed by hand: the file is right but the kernel is not; apply sets it again.
    f.sh("w1", "sysctl -w net.ipv4.ip_forward=0");
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(text(&plan).contains("apply sysctls again: net.ipv4.ip_forward is 0, not 1"), "{}", text(&plan));
    assert_applied(&f.apply(&mirrored));
    assert_eq!(f.sh("w1", "sysctl -n net.ipv4.ip_forward").trim(), "1");

    // A bastion without the admin kubeconfig (another admin's, or its state lost) gets it back.
    let admin = f.state.path().join(format!("{}/admin.conf", f.cluster()["cluster_name"].as_str().unwrap()));
    std::fs::remove_file(&admin).unwrap();
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(text(&plan).contains("fetch /etc/kubernetes/admin.conf"), "{}", text(&plan));
    assert_applied(&f.apply(&mirrored));
    assert!(admin.is_file());
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &mirrored);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));

    // What kubeadm fixed at init cannot follow the inventory: the plan refuses and says why.
    let resized =
        f.inventory("resized.yaml", &[], |t| t.replace("podSubnet: 10.244.0.0/16", "podSubnet: 10.32.0.0/12"));
    let plan = f.kubewright(&["plan"], &resized);
    assert_eq!(plan.status.code(), Some(1), "{}", text(&plan));
    assert!(
        text(&plan).contains("networking.podSubnet: the cluster has 10.244.0.0/16, the inventory says 10.32.0.0/12"),
        "{}",
        text(&plan)
    );
}

/// A worker unreachable when apply starts: its facts cannot be read, so nothing is planned and
/// no host changes; once it is back, apply installs the whole cluster.
fn a_host_cut_off_before_the_run_changes_nothing_anywhere(transport: &'static str) {
    let Some(f) = Fixture::new(2, 1, transport) else { return };
    f.bed.link_down("w1").unwrap();
    let o = f.apply(&f.bed.inventory_path());
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("w1"), "{}", text(&o));
    assert_eq!(
        f.sh("cp1", "ls /etc/kubewright 2>/dev/null; test -e /etc/kubernetes/admin.conf && echo initialized"),
        ""
    );
    f.bed.link_up("w1").unwrap();
    assert_applied(&f.apply(&f.bed.inventory_path()));
    assert_eq!(nodes(&f.cluster()), ["cp1", "w1"]);
}

/// Node name → STATUS column of `kubectl get nodes`, run on `host` with its admin kubeconfig.
fn node_status(f: &Fixture, host: &str) -> std::collections::BTreeMap<String, String> {
    f.sh(host, "kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes --no-headers")
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            Some((cols.next()?.to_string(), cols.next()?.to_string()))
        })
        .collect()
}

/// The line of /etc/hosts on `host` that kubewright wrote for `name`.
fn hosts_line(f: &Fixture, host: &str, name: &str) -> String {
    f.sh(host, "cat /etc/hosts").lines().filter(|l| l.contains(name)).collect::<Vec<_>>().join("\n")
}

/// `loadBalancer.type: local`: control planes resolve the endpoint's name to themselves,
/// workers to their haproxy static pod, which forwards to every control plane; a control
/// plane added later is added to every worker's proxy; with the first control plane dead the
/// workers stay Ready through the others, and a worker without its proxy does not.
fn a_local_load_balancer_carries_the_workers_past_a_dead_control_plane(transport: &'static str) {
    let Some(mut f) = Fixture::new(5, 3, transport) else { return };
    let local = |t: String| t.replacen("cluster:\n", "cluster:\n  loadBalancer:\n    type: local\n", 1);
    let small = f.inventory("local-small.yaml", &["cp3"], local);
    let first = f.apply(&small);
    assert_applied(&first);
    let cluster = f.cluster();
    let name = cluster["endpoint"].as_str().unwrap().trim_end_matches(":6443").to_string();
    assert!(name.starts_with("api.") && name.ends_with(".internal"), "{name}");
    let address = |host: &str| f.bed.host(host).ip.to_string();
    assert_eq!(hosts_line(&f, "cp1", &name), format!("{} {name} # kubewright", address("cp1")));
    assert_eq!(hosts_line(&f, "cp2", &name), format!("{} {name} # kubewright", address("cp2")));
    for w in ["w1", "w2"] {
        assert_eq!(hosts_line(&f, w, &name), format!("127.0.0.1 {name} # kubewright"), "on {w}");
        let cfg = f.sh(w, "cat /etc/kubewright/api-proxy.cfg");
        assert!(cfg.contains(&format!("server cp1 {}:6443", address("cp1"))), "{cfg}");
        assert!(cfg.contains(&format!("server cp2 {}:6443", address("cp2"))) && !cfg.contains("cp3"), "{cfg}");
    }
    assert_eq!(node_status(&f, "cp1").values().filter(|s| *s == "Ready").count(), 4, "{:?}", node_status(&f, "cp1"));
    // The proxy is the real haproxy, forwarding to the API servers (curl is Debian's too).
    for w in ["w1", "w2"] {
        let exe = f.sh(w, "readlink /proc/$(pgrep -o -x haproxy)/exe");
        assert_eq!(exe.trim(), "/opt/kubewright-sim/haproxy/haproxy", "on {w}");
        assert_eq!(f.sh(w, "curl -sS --max-time 20 -k https://127.0.0.1:6443/readyz"), "ok", "on {w}");
    }
    // The bastion cannot resolve the name: its kubeconfig names cp1 and checks the certificate for the name.
    let admin = std::fs::read_to_string(
        f.state.path().join(format!("{}/admin.conf", cluster["cluster_name"].as_str().unwrap())),
    )
    .unwrap();
    assert!(admin.contains(&format!("server: https://{}:6443", address("cp1"))), "{admin}");
    assert!(admin.contains(&format!("tls-server-name: {name}")), "{admin}");
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &small);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));

    // A third control plane: it joins through cp1, then resolves the name to itself, and every
    // worker's proxy gets it (the manifest's config hash changes, so the kubelet restarts it).
    let full = f.inventory("local.yaml", &[], local);
    let manifest_before = f.sh("w1", "cat /etc/kubernetes/manifests/kubewright-api-proxy.yaml");
    let plan = f.kubewright(&["plan", "--diff", "--detailed-exitcode"], &full);
    assert_eq!(plan.status.code(), Some(2), "{}", text(&plan));
    assert!(text(&plan).contains(&format!("+    server cp3 {}:6443", address("cp3"))), "{}", text(&plan));
    assert_applied(&f.apply(&full));
    assert_eq!(hosts_line(&f, "cp3", &name), format!("{} {name} # kubewright", address("cp3")));
    for w in ["w1", "w2"] {
        assert!(f.sh(w, "cat /etc/kubewright/api-proxy.cfg").contains("server cp3"), "on {w}");
    }
    assert_ne!(f.sh("w1", "cat /etc/kubernetes/manifests/kubewright-api-proxy.yaml"), manifest_before);
    let plan = f.kubewright(&["plan", "--detailed-exitcode"], &full);
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan));

    // cp1 dies: the workers' kubelets reach cp2 and cp3 through their proxies. w2 without its
    // proxy loses the API (the negative control: the proxy is what carries w1).
    f.sh("w2", "rm /etc/kubernetes/manifests/kubewright-api-proxy.yaml");
    f.bed.crash("cp1").unwrap();
    // haproxy's own checks take cp1 out (inter 2s, fall 2; a dead host's connect times out).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f.sh("w1", "cat /var/lib/kubewright-sim/api-proxy.log").contains("Server control-planes/cp1 is DOWN") {
        assert!(std::time::Instant::now() < deadline, "{}", f.sh("w1", "cat /var/lib/kubewright-sim/api-proxy.log"));
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(f.sh("w1", "curl -sS --max-time 20 -k https://127.0.0.1:6443/readyz"), "ok");
    let refused = f.sh("w2", "curl -sS --max-time 20 -k https://127.0.0.1:6443/readyz 2>&1; echo \" exit $?\"");
    assert!(refused.contains("Failed to connect") && refused.trim_end().ends_with(" exit 7"), "{refused}");
    let status = node_status(&f, "cp2");
    assert_eq!(status.get("w1").map(String::as_str), Some("Ready"), "{status:?}");
    assert_eq!(status.get("cp3").map(String::as_str), Some("Ready"), "{status:?}");
    assert_eq!(status.get("w2").map(String::as_str), Some("NotReady"), "{status:?}");
    assert_eq!(status.get("cp1").map(String::as_str), Some("NotReady"), "{status:?}");
}

/// A tmux server of the test's own, its socket in the test's directory (a user's tmux is never
/// touched, and nothing is left in /tmp/tmux-UID), with one session running a command in a pane
/// of a fixed size, kept on the screen after the command ends; killed when dropped, whether the
/// test passed or not.
struct Tmux {
    socket: PathBuf,
    config: PathBuf,
    /// Where the command's exit code is written when it ends.
    status: PathBuf,
}

impl Tmux {
    const SESSION: &str = "kw";

    /// `command` in a `cols` x `rows` pane, with `env` added to its environment.
    fn start(dir: &Path, cols: u16, rows: u16, env: &[(&str, &str)], command: &[&str]) -> Tmux {
        // No status line (the pane is the whole window), the command's screen kept after it
        // exits (its final state is what the test reads), and scrollback for the plan above.
        let config = dir.join("tmux.conf");
        std::fs::write(&config, "set -g status off\nset -g remain-on-exit on\nset -g history-limit 20000\n").unwrap();
        let tmux = Tmux { socket: dir.join("tmux.sock"), config, status: dir.join("tmux-command.status") };
        let size = [cols.to_string(), rows.to_string()];
        let mut args = vec!["new-session", "-d", "-s", Self::SESSION, "-x", &size[0], "-y", &size[1]];
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        for e in &env {
            args.extend(["-e", e]);
        }
        // The exit code through a file: tmux can mark the pane dead (its terminal closed) before
        // it has the code, and then does not always get it.
        let script =
            format!("\"$0\" \"$@\"; echo $? > {}", kubewright::script::quote(&tmux.status.display().to_string()));
        args.extend(["--", "sh", "-c", &script]);
        args.extend(command);
        let o = tmux.run(&args);
        assert!(o.status.success(), "tmux new-session: {}", text(&o));
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux").arg("-S").arg(&self.socket).arg("-f").arg(&self.config).args(args).output().unwrap()
    }

    /// The pane's text, scrollback included, row by row (the live lines fill their rows to the
    /// last column, which tmux may take for a wrapped line: `-J` would join them), without
    /// trailing blank lines.
    fn screen(&self) -> String {
        let o = self.run(&["capture-pane", "-p", "-S", "-", "-t", Self::SESSION]);
        assert!(o.status.success(), "tmux capture-pane: {}", text(&o));
        String::from_utf8(o.stdout).unwrap().trim_end().to_string()
    }

    /// The screen once `ready` holds for it, asked every 100 ms for at most `limit`.
    fn screen_when(&self, what: &str, limit: Duration, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(Instant::now() < deadline, "not on the screen within {limit:?}: {what}; the screen:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The command's exit code once it has ended and tmux has read all it wrote (the pane is
    /// dead: its terminal was closed), waited for at most `limit`.
    fn exit_code(&self, limit: Duration) -> i32 {
        let deadline = Instant::now() + limit;
        loop {
            let dead = self.run(&["display-message", "-p", "-t", Self::SESSION, "#{pane_dead}"]);
            let code = std::fs::read_to_string(&self.status).unwrap_or_default();
            if String::from_utf8_lossy(&dead.stdout).trim() == "1" && code.ends_with('\n') {
                return code.trim().parse().unwrap();
            }
            assert!(Instant::now() < deadline, "still running after {limit:?}; the screen:\n{}", self.screen());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// A spinner's frame (Braille patterns): whichever one a capture catches.
fn spinner(c: char) -> bool {
    ('\u{2800}'..='\u{28ff}').contains(&c)
}

/// A screen line with what changes from run to run made constant: a spinner's frame is `*`,
/// a duration (`0.4s`, `12.3s`, `2m05s`) `T`, the first control plane's address `CP1`; words
/// are separated by one space (the columns depend on the durations' widths), the indentation
/// kept.
fn steady(line: &str, cp1: &str) -> String {
    let duration = |w: &str| {
        w.starts_with(|c: char| c.is_ascii_digit())
            && w.ends_with(['s', 'm'])
            && w.chars().all(|c| c.is_ascii_digit() || ".hms".contains(c))
    };
    let words: Vec<&str> = line.split(' ').filter(|w| !w.is_empty()).collect();
    let words: Vec<String> = words
        .iter()
        .map(|w| match *w {
            w if w.chars().count() == 1 && w.chars().all(spinner) => "*".to_string(),
            w if duration(w) => "T".to_string(),
            w => w.replace(cp1, "CP1"),
        })
        .collect();
    format!("{}{}", &line[..line.len() - line.trim_start().len()], words.join(" "))
}

/// The lines from the plan's last one (`Plan: ...`) on, made [`steady`].
fn after_the_plan(screen: &str, cp1: &str) -> Vec<String> {
    let lines: Vec<&str> = screen.lines().collect();
    let plan = lines.iter().rposition(|l| l.starts_with("Plan: ")).unwrap_or_else(|| panic!("no plan:\n{screen}"));
    lines[plan..].iter().map(|l| steady(l, cp1)).collect()
}

/// What a terminal shows of `apply` (issue 20, "On a terminal"), read from a real one: tmux.
/// Mid-run, with w3's `kubeadm join` held by the bed: the finished steps collapsed to a line
/// each, the running step's line, w3's line with a spinner, its elapsed time (which goes on)
/// and what it runs, and the other workers done; at the end, one line per step and the result,
/// nothing of the live lines left and no escape sequence shown as text.
#[test]
fn on_a_terminal_apply_shows_each_hosts_progress_and_leaves_a_line_per_step() {
    if !common::tool_available("tmux", "-V", "tmux", "check what apply shows on a terminal") {
        return;
    }
    let Some(f) = Fixture::new(5, 1, "openssh") else { return };
    let cp1 = f.bed.host("cp1").ip.to_string();
    let hold = Fault { command_prefix: "kubeadm join".into(), action: FaultAction::Hang { seconds: 0 }, fired: false };
    f.bed.add_fault("w3", hold).unwrap();
    let inventory = f.bed.inventory_path();
    let state = f.state.path().display().to_string();
    let env = [("KUBEWRIGHT_STATE_DIR", state.as_str()), ("KUBEWRIGHT_TRANSPORT", f.transport)];
    let command = [env!("CARGO_BIN_EXE_kubewright"), "apply", "-i", inventory.to_str().unwrap(), "--yes"];
    let tmux = Tmux::start(f.bed.dir(), 120, 40, &env, &command);

    // Mid-run: every worker but w3 has joined, w3 is held in its join. (A line is redrawn at
    // its own tick: the step's count may follow its hosts' lines by a tick.)
    let others_joined = |screen: &str| {
        let lines = after_the_plan(screen, &cp1);
        lines.iter().any(|l| l.starts_with("* join-worker 3/4 hosts"))
            && ["w1", "w2", "w4"].iter().all(|w| lines.contains(&format!("  ✔ {w} T done")))
    };
    let screen = tmux.screen_when("w1, w2 and w4 joined, w3 joining", Duration::from_secs(180), |s| {
        s.contains("Plan: ") && others_joined(s)
    });
    let lines = after_the_plan(&screen, &cp1);
    let expected = [
        "Plan: 21 to add, 0 to change, 4 unchanged.",
        "✔ preflight 5 hosts T",
        "✔ prepare-host 5 hosts T",
        "✔ install-packages 5 hosts T",
        "✔ configure-containerd 5 hosts T",
        "✔ kubeadm-init cp1 T",
        "✔ apply-cni cp1 T",
        "– join-control-plane no hosts",
        "* join-worker 3/4 hosts T Join the workers",
        "  * w3 T run kubeadm join as a worker through CP1:6443",
    ];
    assert_eq!(lines[..expected.len()], expected, "the screen:\n{screen}");
    // The finished hosts under the one at work (in the order they finished, which varies);
    // then nothing.
    let mut rest = lines[expected.len()..].to_vec();
    rest.sort();
    assert_eq!(rest, ["  ✔ w1 T done", "  ✔ w2 T done", "  ✔ w4 T done"], "the screen:\n{screen}");
    assert_clean(&screen, 2);
    // The held line is alive: its elapsed time goes on.
    let held = |screen: &str| {
        let words = |l: &str| l.split_whitespace().map(str::to_string).collect::<Vec<_>>();
        let line = screen.lines().map(words).find(|w| w.len() > 2 && w[0].chars().all(spinner) && w[1] == "w3");
        line.map(|w| w[2].clone()).unwrap_or_default()
    };
    let first = held(&screen);
    assert!(first.ends_with('s'), "w3's elapsed time: {first:?} in\n{screen}");
    tmux.screen_when("w3's elapsed time going on", Duration::from_secs(30), |s| held(s) != first);

    // Let w3 join: the run ends, and every step is one line.
    f.bed.clear_faults("w3").unwrap();
    let code = tmux.exit_code(Duration::from_secs(180));
    let screen = tmux.screen();
    assert_eq!(code, 0, "the screen:\n{screen}");
    let lines = after_the_plan(&screen, &cp1);
    let expected = [
        "Plan: 21 to add, 0 to change, 4 unchanged.",
        "✔ preflight 5 hosts T",
        "✔ prepare-host 5 hosts T",
        "✔ install-packages 5 hosts T",
        "✔ configure-containerd 5 hosts T",
        "✔ kubeadm-init cp1 T",
        "✔ apply-cni cp1 T",
        "– join-control-plane no hosts",
        "✔ join-worker 4 hosts T",
        "– local-api-proxy 4 skipped",
        "✔ wait-ready cp1 T",
        "27 host steps done, 4 skipped, 0 failed, 0 not started",
    ];
    assert_eq!(lines[..expected.len()], expected, "the screen:\n{screen}");
    // Below, only what tmux says of the pane's end.
    let below = lines[expected.len()..].iter().filter(|l| !l.is_empty() && !l.starts_with("Pane is dead"));
    assert_eq!(below.count(), 0, "the screen:\n{screen}");
    assert_clean(&screen, 0);
}

/// Nothing of a redraw left on `screen`: no escape sequence, whole or without its ESC (`[2K`,
/// `[1;31m`), shown as text, and spinners only on the `live` lines drawn now (at the end, none).
fn assert_clean(screen: &str, live: usize) {
    let sequence = |at: &str| {
        let params = at.trim_start_matches(|c: char| c.is_ascii_digit() || c == ';');
        params.len() < at.len()
            && at.starts_with(|c: char| c.is_ascii_digit())
            && params.starts_with(['m', 'K', 'A', 'J'])
    };
    let junk = screen.contains('\u{1b}') || screen.split('[').skip(1).any(sequence);
    assert!(!junk, "escape sequences shown as text:\n{screen}");
    let spinning = screen.lines().filter(|l| l.chars().any(spinner)).count();
    assert_eq!(spinning, live, "lines with a spinner (left behind by a redraw?):\n{screen}");
}
