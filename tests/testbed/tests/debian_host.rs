//! A bed host is a fresh Debian 12 cloud image: Debian's own apt, dpkg, gpg and curl, none of
//! the cluster's tools until their packages are installed from the bed's signed repository,
//! and the real tools' own messages when something is wrong (issue 19).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use kubewright_testbed::sim::REPOSITORY_KEY_FINGERPRINT;
use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{fails, fails_with_code, ok};

/// The sources list and key as the Kubernetes install docs have them, for `minor`.
fn add_repository(bed: &Testbed, host: &str, minor: u32) {
    let mirror = bed.package_mirror();
    ok(
        bed,
        host,
        &format!(
            "set -e
             install -d -m 0755 /etc/apt/keyrings
             curl -fsSL {mirror}/core:/stable:/v1.{minor}/deb/Release.key | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
             echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {mirror}/core:/stable:/v1.{minor}/deb/ /' > /etc/apt/sources.list.d/kubernetes.list
             apt-get update -q"
        ),
    );
}

#[test]
fn a_fresh_host_is_a_debian_cloud_image_with_real_apt() {
    let mut opts = TestbedOptions::new(2);
    opts.without_kmod = vec!["w1".into()];
    let Some(bed) = Testbed::up_or_skip(opts) else { return };

    // Debian 12, with none of the cluster's tools, and nothing of this machine's /usr.
    let os = ok(&bed, "cp1", "cat /etc/os-release");
    assert!(os.contains("VERSION_CODENAME=bookworm"), "{os}");
    for tool in ["etcdctl", "etcdutl", "crictl", "kubeadm", "kubelet", "kubectl", "conntrack", "socat", "containerd"] {
        fails(&bed, "cp1", &format!("command -v {tool}"));
    }
    fails(&bed, "cp1", "command -v etcdctl crictl kubeadm");
    fails(&bed, "cp1", "test -e /usr/lib/google-cloud-sdk || test -e /root/.cargo || test -e /root/.pyenv");

    // apt, dpkg, gpg and curl are Debian's own binaries, owned by their packages.
    for (path, package) in [
        ("/usr/bin/apt-get", "apt"),
        ("/usr/bin/apt-cache", "apt"),
        ("/usr/bin/apt-mark", "apt"),
        ("/usr/bin/dpkg", "dpkg"),
        ("/usr/bin/dpkg-query", "dpkg"),
        ("/usr/bin/gpg", "gpg"),
        ("/usr/bin/curl", "curl"),
    ] {
        assert_eq!(ok(&bed, "cp1", &format!("dpkg -S {path}")).trim(), format!("{package}: {path}"));
        assert_eq!(ok(&bed, "cp1", &format!("command -v {}", path.rsplit('/').next().unwrap())).trim(), path);
    }
    // The tools that would act on the machine's kernel are their packages' paths, diverted to
    // the simulator; a host without kmod has no modprobe or lsmod.
    let diverted = ok(&bed, "cp1", "dpkg-divert --list");
    for path in ["/sbin/modprobe", "/sbin/sysctl", "/sbin/swapoff"] {
        assert!(diverted.contains(&format!("local diversion of {path} to {path}.distrib")), "{diverted}");
    }
    ok(&bed, "cp1", "command -v modprobe && lsmod");
    fails(&bed, "w1", "command -v modprobe");
    fails(&bed, "w1", "command -v lsmod");
    let (_, e) = fails_with_code(&bed, "w1", "dpkg-query -W kmod");
    assert!(e.contains("no packages found matching kmod"), "{e}");

    // Before a sources list, apt knows nothing of Kubernetes (madison prints nothing at all for
    // a package it does not know, and exits 0); after it, madison lists the repository's
    // versions, newest first, in apt's columns.
    assert_eq!(ok(&bed, "cp1", "apt-cache madison kubeadm 2>&1"), "");
    add_repository(&bed, "cp1", 31);
    let madison = ok(&bed, "cp1", "apt-cache madison kubeadm");
    let first: Vec<&str> = madison.lines().next().unwrap().split('|').map(str::trim).collect();
    assert_eq!(first[..2], ["kubeadm", "1.31.13-1.1"], "{madison}");
    assert!(first[2].starts_with(&format!("{}/core:/stable:/v1.31/deb", bed.package_mirror())), "{madison}");
    assert_eq!(madison.lines().count(), 14, "{madison}");

    // A version the repository does not have: apt's own message, nothing installed.
    let (code, e) = fails_with_code(&bed, "cp1", "apt-get install -y -q kubeadm=1.31.99-1.1");
    assert_eq!(code, 100);
    assert!(e.contains("E: Version '1.31.99-1.1' for 'kubeadm' was not found"), "{e}");

    // An install as kubewright does it: the packages' real Depends come along (kubelet's
    // conntrack and iptables from Debian's archive, kubeadm 1.31's cri-tools).
    ok(
        &bed,
        "cp1",
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --allow-change-held-packages containerd kubeadm=1.31.4-1.1 kubelet=1.31.4-1.1 kubectl=1.31.4-1.1 && apt-mark hold kubeadm kubelet kubectl",
    );
    assert_eq!(
        ok(&bed, "cp1", "apt-mark showhold").split_whitespace().collect::<Vec<_>>(),
        ["kubeadm", "kubectl", "kubelet"]
    );
    for (tool, package) in
        [("crictl", "cri-tools"), ("conntrack", "conntrack"), ("kubeadm", "kubeadm"), ("iptables", "iptables")]
    {
        let owner = ok(
            &bed,
            "cp1",
            &format!(
                "dpkg -S \"$(readlink -f \"$(command -v {tool})\")\" 2>/dev/null || dpkg -S \"$(command -v {tool})\""
            ),
        );
        assert!(owner.starts_with(&format!("{package}:")), "{tool}: {owner}");
    }
    assert_eq!(ok(&bed, "cp1", "dpkg-query -W -f='${Version}' kubeadm"), "1.31.4-1.1");
    // Package scripts enabled the kubelet and started containerd.
    assert_eq!(ok(&bed, "cp1", "systemctl is-enabled kubelet").trim(), "enabled");
    assert_eq!(ok(&bed, "cp1", "systemctl is-active containerd").trim(), "active");

    // A held package is in the way without --allow-change-held-packages.
    let (code, e) = fails_with_code(&bed, "cp1", "apt-get install -y -q kubeadm=1.31.5-1.1");
    assert_eq!(code, 100);
    assert!(e.contains("E: Held packages were changed and -y was used without --allow-change-held-packages."), "{e}");

    // A keyring with another key than the one the repository is signed with: apt refuses the
    // repository, naming the key it would need (on a host that never read it: one that did
    // keeps its old lists and only warns, exit 0, which is why kubewright checks the key).
    let mirror = bed.package_mirror();
    let sources = format!(
        "install -d -m 0755 /etc/apt/keyrings && cp /usr/share/keyrings/debian-archive-keyring.gpg /etc/apt/keyrings/kubernetes-apt-keyring.gpg && echo 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] {mirror}/core:/stable:/v1.31/deb/ /' > /etc/apt/sources.list.d/kubernetes.list"
    );
    ok(&bed, "w1", &sources);
    let (code, e) = fails_with_code(&bed, "w1", "apt-get update -q");
    assert_eq!(code, 100, "{e}");
    assert!(e.contains(&format!("NO_PUBKEY {}", &REPOSITORY_KEY_FINGERPRINT[24..])), "{e}");
    assert!(
        e.contains(&format!("E: The repository '{mirror}/core:/stable:/v1.31/deb  InRelease' is not signed.")),
        "{e}"
    );
    ok(&bed, "cp1", &sources);
    let warned = ok(&bed, "cp1", "apt-get update -q 2>&1");
    assert!(warned.contains("W: An error occurred during the signature verification. The repository is not updated and the previous index files will be used."), "{warned}");
    // A minor the repository does not have.
    ok(&bed, "w1", "sed -i s/v1.31/v1.99/ /etc/apt/sources.list.d/kubernetes.list");
    let (code, e) = fails_with_code(&bed, "w1", "apt-get update -q");
    assert_eq!(code, 100, "{e}");
    assert!(
        e.contains(&format!(
            "E: The repository '{mirror}/core:/stable:/v1.99/deb  Release' does not have a Release file."
        )),
        "{e}"
    );
}
