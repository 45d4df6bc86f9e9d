//! Running a script on a bed host over SSH, as root, and what it printed; and a cluster
//! bootstrapped the way an admin does it by hand (repository, packages, kubeadm init and join).
#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it

use std::process::Output;

use kubewright_testbed::Testbed;

/// stdout, then stderr.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `script`'s stdout; the test fails when the script does.
#[track_caller]
pub fn ok(bed: &Testbed, host: &str, script: &str) -> String {
    let o = bed.ssh(host, "root", script).unwrap();
    assert!(o.status.success(), "`{script}` on {host} failed ({}):\n{}", o.status, text(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `script`'s exit code (-1 for a signal) and all it printed; the test fails when it passes.
#[track_caller]
pub fn fails_with_code(bed: &Testbed, host: &str, script: &str) -> (i32, String) {
    let o = bed.ssh(host, "root", script).unwrap();
    assert!(!o.status.success(), "`{script}` on {host} should fail:\n{}", text(&o));
    (o.status.code().unwrap_or(-1), text(&o))
}

/// All a failing `script` printed; the test fails when it passes.
#[track_caller]
pub fn fails(bed: &Testbed, host: &str, script: &str) -> String {
    fails_with_code(bed, host, script).1
}

/// What an install does before kubeadm: repository, packages, swap off, forwarding.
pub fn prepare(bed: &Testbed, host: &str, minor: u32, patch: u32) {
    let mirror = bed.package_mirror();
    ok(bed, host, &format!(
        "echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {mirror}/core:/stable:/v1.{minor}/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
         install -d -m 0755 /etc/apt/keyrings
         curl -fsSL {mirror}/core:/stable:/v1.{minor}/deb/Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
         apt-get update -q >/dev/null
         apt-get install -y -q containerd conntrack cri-tools kubeadm=1.{minor}.{patch}-1.1 kubelet=1.{minor}.{patch}-1.1 kubectl=1.{minor}.{patch}-1.1 >/dev/null
         apt-mark hold kubeadm kubelet kubectl >/dev/null
         swapoff -a
         sysctl -q -w net.ipv4.ip_forward=1"
    ));
}

pub fn init_config(api: &str, version: &str, endpoint: &str, token: &str, key: &str) -> String {
    format!(
        "apiVersion: kubeadm.k8s.io/{api}
kind: InitConfiguration
bootstrapTokens:
  - token: \"{token}\"
    ttl: 2h0m0s
certificateKey: \"{key}\"
nodeRegistration:
  name: cp1
  criSocket: unix:///var/run/containerd/containerd.sock
---
apiVersion: kubeadm.k8s.io/{api}
kind: ClusterConfiguration
clusterName: sim
kubernetesVersion: {version}
controlPlaneEndpoint: \"{endpoint}\"
networking:
  podSubnet: 10.244.0.0/16
"
    )
}

pub fn put(bed: &Testbed, host: &str, path: &str, content: &str) {
    ok(bed, host, &format!("mkdir -p $(dirname {path}) && cat > {path} <<'EOF'\n{content}EOF"));
}

/// The cluster CA's pin as `kubeadm join` wants it, computed by openssl on the host.
pub fn ca_pin(bed: &Testbed) -> String {
    let pin = ok(
        bed,
        "cp1",
        "openssl x509 -pubkey -in /etc/kubernetes/pki/ca.crt | openssl rsa -pubin -outform der 2>/dev/null | openssl dgst -sha256 -hex | sed 's/^.* //'",
    );
    format!("sha256:{}", pin.trim())
}

/// Apply a pod network (what makes nodes Ready).
pub fn apply_network(bed: &Testbed) {
    put(
        bed,
        "cp1",
        "/tmp/ds.yaml",
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: kube-flannel-ds\n  namespace: kube-flannel\n",
    );
    ok(bed, "cp1", "kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f /tmp/ds.yaml");
}

/// A cluster at 1.`minor`.`patch`: cp1 initialized, every other host joined as a worker,
/// the network applied. Returns the API endpoint.
pub fn bootstrap(bed: &Testbed, minor: u32, patch: u32) -> String {
    let endpoint = format!("{}:6443", bed.host("cp1").ip);
    for h in bed.hosts() {
        prepare(bed, &h.name, minor, patch);
    }
    let api = if minor >= 31 { "v1beta4" } else { "v1beta3" };
    put(bed, "cp1", "/root/init.yaml", &init_config(api, &format!("v1.{minor}.{patch}"), &endpoint, TOKEN, KEY));
    ok(bed, "cp1", "kubeadm init --config /root/init.yaml --upload-certs");
    let pin = ca_pin(bed);
    for h in bed.hosts().iter().filter(|h| h.name != "cp1") {
        ok(bed, &h.name, &format!("kubeadm join {endpoint} --token {TOKEN} --discovery-token-ca-cert-hash {pin}"));
    }
    apply_network(bed);
    endpoint
}

pub const TOKEN: &str = "abcdef.0123456789abcdef";
pub const KEY: &str = "1d556c1751efb02d3e9ddcc1499deac2d0875c022c8c122471a5466dc424a29e";
