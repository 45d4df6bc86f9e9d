//! Hostile values in the inventory. Those the loader rejects are rejected by `apply` itself,
//! naming the field, before any host is reached; those it accepts (a mirror URL may hold `$`,
//! `;` and `&`, a key file any name) reach the hosts and the bastion's `ssh` as one quoted word:
//! the commands they would smuggle in never run anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Stdio};

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{bed_command, output_text};

const BASE: &str = "cluster:\n  name: dev\n  kubernetesVersion: 1.31.4\n  controlPlaneEndpoint: 127.0.0.1:6443\nssh:\n  user: root\n  port: 1\nhosts:\n  - name: cp1\n    address: 127.0.0.1\n    roles: [control-plane]\n  - name: w1\n    address: 127.0.0.2\n    roles: [worker]\n";

/// (what to replace in [`BASE`], its hostile replacement, the field the error must name)
const HOSTILE: &[(&str, &str, &str)] = &[
    ("name: dev", "name: \"dev$(touch /tmp/kw-pwned)\"", "cluster.name"),
    ("kubernetesVersion: 1.31.4", "kubernetesVersion: \"1.31.4; reboot\"", "cluster.kubernetesVersion"),
    ("controlPlaneEndpoint: 127.0.0.1:6443", "controlPlaneEndpoint: \"api`id`:6443\"", "cluster.controlPlaneEndpoint"),
    ("user: root", "user: \"root -oProxyCommand=sh\"", "ssh.user"),
    ("name: w1", "name: \"w1\\nkind: Secret\"", "hosts[1].name"),
    ("address: 127.0.0.2", "address: \"-oProxyCommand=touch /tmp/kw-pwned\"", "hosts[1].address"),
    ("roles: [worker]", "roles: [worker]\n    labels: {team: \"a;reboot\"}", "hosts[1].labels.team"),
    ("roles: [worker]", "roles: [worker]\n    labels: {\"$(id)\": x}", "hosts[1].labels.$(id)"),
    ("roles: [worker]", "roles: [worker]\n    taints: [\"k=v:NoSchedule\\nx\"]", "hosts[1].taints[0]"),
    ("roles: [worker]", "roles: [worker]\n    flannelInterface: \"eth1 && reboot\"", "hosts[1].flannelInterface"),
    (
        "roles: [worker]",
        "roles: [worker]\n    sysctls: {\"vm.swappiness\": \"0\\nkernel.sysrq=1\"}",
        "hosts[1].sysctls.vm.swappiness",
    ),
    ("name: dev", "name: dev\n  network:\n    dnsDomain: \"cluster.local'\"", "cluster.network.dnsDomain"),
    (
        "name: dev",
        "name: dev\n  containerd:\n    sandboxImage: \"pause:3.10 $(id)\"",
        "cluster.containerd.sandboxImage",
    ),
    (
        "name: dev",
        "name: dev\n  containerd:\n    registryMirrors:\n      docker.io: [\"https://m.example/\\\"]\\n[evil]\"]",
        "cluster.containerd.registryMirrors.docker.io[0]",
    ),
    ("name: dev", "name: dev\n  packages:\n    mirror: \"https://m.example/a`id`\"", "cluster.packages.mirror"),
];

#[test]
fn hostile_values_are_rejected_by_apply_before_any_host_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    for (from, to, field) in HOSTILE {
        assert!(BASE.contains(from), "{from}");
        let path = dir.path().join("inv.yaml");
        std::fs::write(&path, BASE.replacen(from, to, 1)).unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
            .args(["apply", "--yes", "-i"])
            .arg(&path)
            .env("KUBEWRIGHT_STATE_DIR", dir.path().join("state"))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = output_text(&o);
        // Exit 2 is bad input; a connection attempt (port 1) would be a failure naming a host.
        assert_eq!(o.status.code(), Some(2), "{to}: {text}");
        assert!(text.contains(&format!("{field}: ")), "{to}: the error names {field}: {text}");
        assert!(!text.contains("cannot connect") && !text.contains("Connection refused"), "{to}: {text}");
    }
    assert!(!std::path::Path::new("/tmp/kw-pwned").exists());
}

#[test]
fn accepted_metacharacters_reach_hosts_and_ssh_as_one_word() {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(2)) else { return };
    // A URL may hold `$`, `(`, `;` and `&`: the loader takes it, every use quotes it.
    // (No spaces, which a URL cannot have: `$IFS` is the shell's.)
    // The bed's mirror serves its repositories under any base path.
    let mirror = format!(
        "{}/x$(touch$IFS/tmp/kw-pwned-1);touch$IFS/tmp/kw-pwned-2;a=1&touch$IFS/tmp/kw-pwned-3",
        bed.package_mirror()
    );
    let mirror = mirror.as_str();
    // A key file named like a command, beside the run's working directory.
    let cwd = tempfile::tempdir().unwrap();
    let key = cwd.path().join("key$(touch kw-pwned-4)");
    std::fs::copy(bed.client_key_path(), &key).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    let original_key = bed.client_key_path().display().to_string();
    let hostile = inventory
        .replacen(&format!("    mirror: {}\n", bed.package_mirror()), &format!("    mirror: '{mirror}'\n"), 1)
        .replacen(&format!("identityFile: {original_key}"), &format!("identityFile: '{}'", key.display()), 1);
    assert_ne!(hostile, inventory);
    std::fs::write(bed.inventory_path(), hostile).unwrap();

    let state = tempfile::tempdir().unwrap();
    for transport in ["openssh", "russh"] {
        let o = bed_command(&bed, state.path(), &["apply", "--yes", "--transport", transport])
            .current_dir(cwd.path())
            .output()
            .unwrap();
        let text = output_text(&o);
        // The bed's repository serves any base path: the install goes through (the second run,
        // over the other transport, has nothing left to do).
        assert!(o.status.success(), "{transport}: {text}");
    }
    for host in ["cp1", "w1"] {
        let o = bed.exec(host, "ls /tmp/kw-pwned-* kw-pwned-* 2>/dev/null | wc -l").unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "0", "{host}: nothing the values carried ran");
        // The source list holds the URL as written.
        let o = bed.exec(host, "cat /etc/apt/sources.list.d/kubernetes.list 2>/dev/null || true").unwrap();
        let sources = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(sources.contains(mirror), "{host}: {sources}");
    }
    let leftovers: Vec<_> = std::fs::read_dir(cwd.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "only the key is in the working directory: {leftovers:?}");
    assert!((1..=3).all(|n| !std::path::Path::new(&format!("/tmp/kw-pwned-{n}")).exists()));
}
