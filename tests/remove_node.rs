//! `kubewright remove-node` on the test bed: a worker in the safe order, a dead control plane
//! (its etcd member removed, the rest skipped and said), the first control plane refused, a
//! removal that would cost etcd its quorum refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

mod common;
use common::{on_bed as kubewright, output_text};

#[test]
fn a_worker_and_a_dead_control_plane_are_removed_in_the_safe_order() {
    let Some((bed, state)) = common::installed(4, 3) else { return };

    // A name that is not in the inventory, and the first control plane: refused, nothing changed.
    let unknown = kubewright(&bed, state.path(), &["remove-node", "w9", "--yes"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", output_text(&unknown));
    assert!(output_text(&unknown).contains("no host named `w9` in the inventory"), "{}", output_text(&unknown));
    let before = bed.cluster_state().events.len();
    let first = kubewright(&bed, state.path(), &["remove-node", "cp1", "--yes"]);
    assert_eq!(first.status.code(), Some(1), "{}", output_text(&first));
    assert!(
        output_text(&first).contains("list another control plane (cp2) first in the inventory"),
        "{}",
        output_text(&first)
    );
    assert_eq!(bed.cluster_state().events.len(), before);

    // The worker: drained, reset, deleted, in that order.
    let since = bed.cluster_state().events.len();
    let o = kubewright(&bed, state.path(), &["remove-node", "w1", "--yes"]);
    assert!(o.status.success(), "{}", output_text(&o));
    let order: Vec<String> = bed.cluster_state().events[since..]
        .iter()
        .filter(|e| e.node == "w1" && matches!(e.what.as_str(), "drain" | "reset" | "delete-node"))
        .map(|e| e.what.clone())
        .collect();
    assert_eq!(order, ["drain", "reset", "delete-node"]);
    assert!(!bed.cluster_state().nodes.contains_key("w1"));
    let left = bed.exec("w1", "ls /etc/kubernetes/kubelet.conf /etc/cni/net.d 2>&1; true").unwrap();
    assert!(String::from_utf8_lossy(&left.stdout).matches("No such file").count() == 2, "{}", output_text(&left));

    // With cp2's etcd member down, removing cp3 would leave 2 members and 1 healthy: refused
    // before anything changes, naming cp2.
    assert!(bed.exec("cp2", "systemctl stop kubelet").unwrap().status.success());
    let since = bed.cluster_state().events.len();
    let o = kubewright(&bed, state.path(), &["remove-node", "cp3", "--yes"]);
    let text = output_text(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(
        text.contains("removing cp3's etcd member would leave 2 member(s) of which only 1 answer healthy")
            && text.contains("cp2 (no etcd container runs on this control plane"),
        "{text}"
    );
    assert_eq!(bed.cluster_state().events.len(), since, "{text}");
    assert!(bed.exec("cp2", "systemctl start kubelet").unwrap().status.success());

    // cp3 dead (every sshd gone): its etcd member and Node object are removed from cp1, the
    // drain and the reset are skipped and said.
    assert!(bed.exec("cp3", "pkill -x sshd; rm -f /run/sshd.pid").unwrap().status.success());
    let o = kubewright(&bed, state.path(), &["remove-node", "cp3", "--yes"]);
    let text = output_text(&o);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("cp3 cannot be reached (") && text.contains("kubeadm reset is skipped"), "{text}");
    let cluster = bed.cluster_state();
    assert_eq!(bed.etcd_members().unwrap().names, ["cp1", "cp2"], "{text}");
    assert!(!cluster.nodes.contains_key("cp3"), "{text}");
    let o = kubewright(&bed, state.path(), &["remove-node", "cp3", "--yes", "-o", "json"]);
    assert!(o.status.success(), "{}", output_text(&o));
}
