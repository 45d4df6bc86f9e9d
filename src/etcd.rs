//! How kubewright reaches a control plane's etcd: through the member's own container.
//!
//! kubeadm runs etcd as a static pod, and its tools exist only in the etcd image
//! (registry.k8s.io/etcd: no coreutils, a static shell at most): a kubeadm host has no etcd
//! tool on its PATH. So every etcd command runs as `crictl exec` in the running member's
//! container, found by the kubelet's labels, passing argv only. The container sees the host
//! through the manifest's hostPath volumes alone: etcd's data directory and
//! `/etc/kubernetes/pki/etcd`, so files it writes or reads (snapshots) live under the data
//! directory, and the host's own shell moves them from there.
//!
//! The 3.5 images kubeadm 1.29-1.33 deploy ship `etcdctl` alone (k/k
//! cluster/images/etcd/Makefile copies etcd and etcdctl; etcd-io/etcd#13764); etcd 3.6 moved
//! `snapshot status` and `restore` to `etcdutl`: the offline tool is whichever the image has.

/// Shell functions for a step's script (POSIX sh, `set -eu` safe):
/// - `etcd_container`: the running etcd container's ID, or a message and exit
///   [`CRICTL_MISSING`] (no crictl on the host) or 1 (no etcd container runs);
/// - `etcdctl_as CERT ARGS...`: etcdctl against the local member with the client certificate
///   `/etc/kubernetes/pki/etcd/CERT.{crt,key}`;
/// - `etcdutl_in ARGS...`: the offline tool in the member's container (snapshot status and
///   restore): `etcdutl` where the image has it, else etcdctl (3.5 still has both, deprecated).
///
/// crictl's exec streams the command's stdout and stderr apart (without `-s`, whose output
/// mixes both on stdout) and exits 1, after a `level=fatal` line, when the command fails
/// (cri-tools cmd/crictl/exec.go).
pub const ETCD_CLIENT: &str = r#"etcd_container() {
  if ! command -v crictl >/dev/null 2>&1; then echo "crictl is not installed on this control plane: kubewright reaches etcd through its container; install the cri-tools package of the cluster's minor (kubewright apply does)" >&2; return 3; fi
  ids=$(crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=etcd) || { echo "crictl cannot list this control plane's containers: is containerd running (systemctl status containerd)?" >&2; return 1; }
  for id in $ids; do echo "$id"; return 0; done
  echo "no etcd container runs on this control plane (crictl ps --label io.kubernetes.container.name=etcd lists none): look at the kubelet's log (journalctl -u kubelet) and /etc/kubernetes/manifests/etcd.yaml" >&2
  return 1
}
etcdctl_as() {
  cert=$1; shift
  container=$(etcd_container) || return $?
  crictl exec "$container" etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert="/etc/kubernetes/pki/etcd/$cert.crt" --key="/etc/kubernetes/pki/etcd/$cert.key" "$@"
}
offline_tool() {
  if crictl exec "$1" etcdutl version >/dev/null 2>&1; then echo etcdutl; else echo etcdctl; fi
}
etcdutl_in() {
  container=$(etcd_container) || return $?
  crictl exec "$container" "$(offline_tool "$container")" "$@"
}
"#;

/// `etcdutl_at IMAGE DATA ARGS...` (after [`ETCD_CLIENT`]): the offline tool in the member's
/// container where it runs, and where it does not (it cannot start: the case a restore is for) in a
/// one-off container of the member's image (`ctr run --rm`, containerd's own client, in the
/// kubelet's `k8s.io` namespace where the image already is), which sees the data directory
/// DATA only. Apart from [`ETCD_CLIENT`]: the read-only facts never start a container.
pub const ETCDUTL_ANYWHERE: &str = r#"etcdutl_at() {
  image=$1 data=$2; shift 2
  if container=$(etcd_container 2>/dev/null); then crictl exec "$container" "$(offline_tool "$container")" "$@"; return $?; fi
  if [ -z "$image" ]; then echo "no etcd container runs on this control plane and its manifest names no image to run etcdutl from: start etcd (journalctl -u kubelet), then run the restore again" >&2; return 1; fi
  if ! command -v ctr >/dev/null 2>&1; then echo "no etcd container runs on this control plane, and ctr (containerd's client) is not installed to run etcdutl from $image" >&2; return 1; fi
  tool=etcdutl
  ctr -n k8s.io run --rm "$image" "kubewright-etcdutl-probe-$$" etcdutl version >/dev/null 2>&1 || tool=etcdctl
  echo "no etcd container runs here: running $tool in a one-off container of $image" >&2
  ctr -n k8s.io run --rm --mount "type=bind,src=$data,dst=$data,options=rbind:rw" "$image" "kubewright-etcdutl-$$" "$tool" "$@" || {
    rc=$?; echo "$tool in a one-off container of $image failed (exit $rc): is the image on this host (crictl images)?" >&2; return $rc
  }
}
"#;

/// Exit code of [`ETCD_CLIENT`]'s functions, and of [`etcd_probe`], on a host without crictl:
/// etcd cannot be asked there.
pub const CRICTL_MISSING: i32 = 3;

/// The local etcd member's health, with the client certificate kubeadm makes for exactly this
/// (`etcd/healthcheck-client`).
pub fn etcd_probe() -> crate::script::Script {
    crate::script::Script::new().cmd([
        "sh",
        "-c",
        &format!("{ETCD_CLIENT}etcdctl_as healthcheck-client endpoint health"),
    ])
}

/// How long the facts wait for the local member's health: a member that is down, or a
/// container runtime that never answers, must not hold up the facts.
pub const HEALTH_FACT_LIMIT_S: u32 = 15;

/// The line of a facts script that prints the local member's health and `exit N` (124: no
/// answer within [`HEALTH_FACT_LIMIT_S`]), or nothing where etcd cannot be asked (no manifest,
/// no crictl).
pub fn health_facts_script() -> String {
    let ask =
        format!("{ETCD_CLIENT}etcdctl_as healthcheck-client --dial-timeout=2s --command-timeout=3s endpoint health");
    format!(
        "if test -f /etc/kubernetes/manifests/etcd.yaml && command -v crictl >/dev/null 2>&1; then timeout {HEALTH_FACT_LIMIT_S} sh -c {} 2>&1; echo \"exit $?\"; fi",
        crate::script::quote(&ask)
    )
}
