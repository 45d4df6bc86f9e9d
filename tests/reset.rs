//! `kubewright reset` on the test bed: refused without the cluster's name, then every node torn
//! down (kubeadm's files, the pod network's, kubewright's), and a fresh install works after.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

mod common;
use common::{on_bed as kubewright, output_text};

#[test]
fn reset_needs_the_clusters_name_then_tears_every_node_down() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let name = bed.cluster_state().cluster_name.clone();
    let inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    let cluster_name = inventory.lines().find_map(|l| l.trim().strip_prefix("name: ")).unwrap().to_string();

    let before = bed.cluster_state().events.len();
    for args in [vec!["reset"], vec!["reset", "--confirm", "someone-else"]] {
        let o = kubewright(&bed, state.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
        assert!(output_text(&o).contains("nothing was changed"), "{}", output_text(&o));
    }
    assert_eq!(bed.cluster_state().events.len(), before);

    let o = kubewright(&bed, state.path(), &["reset", "--confirm", &cluster_name]);
    assert!(o.status.success(), "{}", output_text(&o));
    let order: Vec<String> =
        bed.cluster_state().events.iter().filter(|e| e.what == "reset").map(|e| e.node.clone()).collect();
    assert_eq!(order, ["w1", "cp2", "cp1"], "workers first, the first control plane last");
    for host in ["cp1", "cp2", "w1"] {
        let o = bed
            .exec(host, "ls /etc/kubernetes/kubelet.conf /etc/kubernetes/manifests/etcd.yaml /etc/cni/net.d /etc/kubewright /etc/sysctl.d/90-kubewright.conf 2>&1; grep -c '# kubewright$' /etc/hosts; true")
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(text.matches("No such file").count() >= 4, "{host}: {text}");
        assert!(text.trim_end().ends_with('0'), "{host}: its /etc/hosts line stays: {text}");
    }
    assert!(!bed.cluster_state().initialized, "the last etcd member's data was the cluster ({name})");

    // Nothing left to tear down; and the hosts take a fresh install.
    let again = kubewright(&bed, state.path(), &["reset", "--confirm", &cluster_name]);
    assert!(again.status.success() && output_text(&again).contains("nothing to do"), "{}", output_text(&again));
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(bed.cluster_state().nodes.len(), 3);
}

/// Issue 18 (run-safety review item 18): a worker whose INPUT policy is DROP, with an ACCEPT
/// rule for ssh. The reset flushed the rules and kept the policy, which cut the host off: the
/// open session's packets and every new connection dropped (here the run still got its last
/// command through and called w1 done, leaving it unreachable). The policies are opened first
/// now. The bed's hosts are network namespaces, so real iptables there touches that host only.
#[test]
fn issue_18_reset_opens_the_iptables_policies_before_it_flushes_the_rules() {
    let Some((bed, state)) = common::installed(2, 1) else { return };
    let cluster_name = std::fs::read_to_string(bed.inventory_path())
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("name: ").map(str::to_string))
        .unwrap();
    let firewall = "iptables -A INPUT -i lo -j ACCEPT && iptables -A INPUT -p tcp --dport 22 -j ACCEPT && iptables -P INPUT DROP && iptables -S INPUT";
    let o = bed.exec("w1", firewall).unwrap();
    assert!(o.status.success(), "{}", output_text(&o));
    assert!(bed.ssh("w1", "root", "true").unwrap().status.success(), "ssh still gets in");

    let o = kubewright(&bed, state.path(), &["reset", "--confirm", &cluster_name]);
    assert!(o.status.success(), "{}", output_text(&o));
    let rules = bed.exec("w1", "iptables -S INPUT").unwrap();
    assert_eq!(String::from_utf8_lossy(&rules.stdout), "-P INPUT ACCEPT\n", "policy open, rules flushed");
    assert!(bed.ssh("w1", "root", "true").unwrap().status.success(), "and ssh still gets in");
}
