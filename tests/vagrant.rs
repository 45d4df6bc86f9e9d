//! The Vagrant test clusters: the Vagrantfile is valid Ruby, and `inventory from-vagrant` turns
//! recorded `vagrant ssh-config` outputs (VirtualBox with one machine, libvirt with five, keys
//! quoted, repeated or missing) into inventories that load.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::io::Write;
use std::process::{Command, Stdio};

mod common;

fn from_vagrant(fixture: &str, args: &[&str]) -> std::process::Output {
    let input = std::fs::read(format!("{}/tests/fixtures/vagrant/{fixture}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "from-vagrant", "--known-hosts", "/srv/ci/known_hosts"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    child.wait_with_output().unwrap()
}

/// `inventory from-vagrant FILE`.
fn from_vagrant_file(path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kubewright")).args(["inventory", "from-vagrant"]).arg(path).output().unwrap()
}

fn load(o: &std::process::Output) -> kubewright::inventory::Inventory {
    common::printed_inventory(o)
}

#[test]
fn one_virtualbox_machine_is_a_single_node_cluster_on_its_port_forward() {
    let inv = load(&from_vagrant("ssh-config-virtualbox-1.txt", &[]));
    let cp1 = inv.host("cp1").unwrap();
    assert_eq!((cp1.address.as_str(), cp1.ssh.port, cp1.ssh.user.as_str()), ("127.0.0.1", 2222, "vagrant"));
    assert_eq!(cp1.internal_address.unwrap().to_string(), "192.168.56.11", "the private network, not the NAT address");
    assert!(cp1.is_control_plane() && cp1.is_worker(), "alone, it runs the workloads too");
    assert_eq!(
        cp1.ssh.identity_file.as_deref(),
        Some("/home/ci/kubewright/vagrant/.vagrant/machines/cp1/virtualbox/private_key")
    );
    assert!(cp1.ssh.sudo, "vagrant is not root");
    assert_eq!(inv.cluster.flannel.interface.as_deref(), Some("eth1"));
    assert_eq!(inv.ssh.known_hosts.as_deref(), Some("/srv/ci/known_hosts"));
    assert!(!inv.cluster.load_balancer.is_local());
}

#[test]
fn five_libvirt_machines_with_key_quirks_become_an_ha_cluster() {
    let inv = load(&from_vagrant(
        "ssh-config-libvirt-5.txt",
        &["--name", "ci-42", "--kubernetes-version", "1.32.2", "--network", "10.10.0", "--interface", "ens6"],
    ));
    assert_eq!((inv.cluster.name.as_str(), inv.cluster.kubernetes_version.to_string()), ("ci-42", "1.32.2".into()));
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["cp1", "cp2", "cp3", "worker1", "worker2"]);
    assert_eq!(inv.control_planes().count(), 3);
    assert!(inv.cluster.load_balancer.is_local(), "three control planes and no load balancer of their own");
    let ips: Vec<String> = inv.hosts.iter().map(|h| h.internal_address.unwrap().to_string()).collect();
    assert_eq!(ips, ["10.10.0.11", "10.10.0.12", "10.10.0.13", "10.10.0.21", "10.10.0.22"]);
    assert_eq!(inv.host("cp2").unwrap().address, "192.168.121.118");
    // A quoted key path with a space, the machine's own key before Vagrant's insecure fallbacks,
    // no key at all (the agent or ~/.ssh then), and the insecure key when it is the only one.
    assert_eq!(
        inv.host("cp1").unwrap().ssh.identity_file.as_deref(),
        Some("/home/ci/my projects/kubewright/vagrant/.vagrant/machines/cp1/libvirt/private_key")
    );
    assert_eq!(inv.host("worker1").unwrap().ssh.identity_file, None);
    assert_eq!(
        inv.host("worker2").unwrap().ssh.identity_file.as_deref(),
        Some("/home/ci/.vagrant.d/insecure_private_key")
    );
    assert_eq!(inv.cluster.flannel.interface.as_deref(), Some("ens6"));
}

#[test]
fn input_that_is_not_vagrant_ssh_config_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("status.txt");
    std::fs::write(&garbage, "Current machine states:\n\ncp1                       not created (virtualbox)\n")
        .unwrap();
    let o = from_vagrant_file(&garbage);
    assert_eq!(o.status.code(), Some(2));
    let said = common::output_text(&o);
    assert!(said.contains("line 1: `current` before any `Host` line: is this `vagrant ssh-config` output?"), "{said}");
    std::fs::write(&garbage, "").unwrap();
    let o = from_vagrant_file(&garbage);
    assert_eq!(o.status.code(), Some(2));
    let said = common::output_text(&o);
    assert!(said.contains("no `Host` blocks: run `vagrant up` first"), "{said}");
    let o = from_vagrant("ssh-config-virtualbox-1.txt", &["--network", "192.168"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(common::output_text(&o).contains("is not the first three octets"), "{}", common::output_text(&o));
}

#[test]
fn the_vagrantfile_is_valid_ruby_and_refuses_counts_out_of_range() {
    if !common::tool_available("ruby", "--version", "ruby", "check the Vagrantfile with ruby -c") {
        return;
    }
    let vagrantfile = concat!(env!("CARGO_MANIFEST_DIR"), "/vagrant/Vagrantfile");
    let o = Command::new("ruby").arg("-c").arg(vagrantfile).output().unwrap();
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Syntax OK"),
        "{}",
        common::output_text(&o)
    );
    // Its settings are checked before Vagrant is asked for anything.
    let o =
        Command::new("ruby").arg("-e").arg(format!("load {vagrantfile:?}")).env("KW_WORKERS", "200").output().unwrap();
    assert!(common::output_text(&o).contains("KW_WORKERS=200: must be within 0..79"), "{}", common::output_text(&o));
}
