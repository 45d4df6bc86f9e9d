//! `inventory from-kubespray` on kubespray inventories as they really are, read both ways: by
//! `ansible-inventory` (on the PATH) and by the built-in reader (PATH without it). The
//! fixtures: an INI inventory (groups, children, group vars, a bastion, an etcd-only host,
//! quoted values), a YAML one (the pre-2.16 group names), kubespray's sample inventory as
//! shipped and filled in (its group_vars/), the inventory Vagrant writes for kubespray's
//! Vagrantfile (hosts with their variables before any group, host ranges), and one with host
//! ranges, group_vars/ and host_vars/. Both readers must print the same inventory.
//!
//! `ansible-inventory` comes from PyPI's ansible-core (`.ci/run` installs it): without it the
//! tests that need it skip loudly, and fail under CI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kubewright::inventory::kubespray;

mod common;

/// Which reader a run gets, by what is on its PATH.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Reader {
    /// The PATH as the tests run, with `ansible-inventory` on it.
    Ansible,
    /// A PATH without `ansible-inventory`: the built-in reader.
    Builtin,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kubespray").join(name)
}

/// Whether `ansible-inventory` is on the PATH. Without it a test skips loudly, unless `CI` is
/// set: `.ci/run` installs ansible-core, so there the test fails.
fn ansible_available() -> bool {
    let found = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("ansible-inventory").is_file()));
    if found {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "ansible-inventory is missing (pip install ansible-core); CI must read kubespray inventories through it"
    );
    #[allow(clippy::print_stderr)] // the loud skip the other tool-dependent tests print
    {
        eprintln!(
            "SKIPPED: ansible-inventory is not on the PATH (pip install ansible-core): only the built-in reader is tested"
        );
    }
    false
}

/// The readers this machine can test: the built-in one always, Ansible's when present.
fn readers() -> Vec<Reader> {
    if ansible_available() { vec![Reader::Ansible, Reader::Builtin] } else { vec![Reader::Builtin] }
}

/// `inventory from-kubespray INPUT ARGS`, the reader chosen by the PATH (`--reader auto`).
fn import(input: &Path, args: &[&str], reader: Reader) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kubewright"));
    cmd.args(["inventory", "from-kubespray"]).arg(input).args(args).env("NO_COLOR", "1");
    let empty = tempfile::tempdir().unwrap();
    if reader == Reader::Builtin {
        cmd.env("PATH", empty.path());
    }
    let o = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    let says = match reader {
        Reader::Ansible => "read by `ansible-inventory`",
        Reader::Builtin => "read by kubewright's built-in reader",
    };
    assert!(stderr.contains(says), "{reader:?}: {stderr}");
    o
}

fn load(o: &Output) -> kubewright::inventory::Inventory {
    common::printed_inventory(o)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_ini_inventory_maps_groups_hosts_vars_and_the_bastion() {
    for reader in readers() {
        let o = import(&fixture("inventory.ini"), &["--name", "prod", "--kubernetes-version", "1.31.4"], reader);
        let inv = load(&o);
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["node1", "node2", "node3", "node4", "node5"],
            "{reader:?}: the bastion and the etcd-only host are not nodes"
        );
        assert_eq!(inv.control_planes().count(), 3);
        let node3 = inv.host("node3").unwrap();
        assert!(node3.is_control_plane() && node3.is_worker(), "in both groups: both roles");
        assert_eq!((node3.address.as_str(), node3.ssh.port), ("95.54.0.14", 2222));
        assert_eq!(node3.internal_address.unwrap().to_string(), "10.3.0.3");
        assert_eq!(inv.host("node4").unwrap().ssh.user, "ops", "[k8s_cluster:vars] applies to the group's hosts");
        assert_eq!(inv.host("node5").unwrap().ssh.identity_file.as_deref(), Some("/home/ops/.ssh/k8s key"));
        let bastion = inv.ssh.bastion.as_ref().expect("the bastion group");
        assert_eq!((bastion.host.as_str(), bastion.user.as_str()), ("203.0.113.7", "jump"));
        assert!(inv.cluster.load_balancer.is_local());
        let warnings = stderr(&o);
        assert!(warnings.contains("node1: not carried over: etcd_member_name"), "{warnings}");
        assert!(
            warnings
                .contains("etcd4: an etcd-only host: kubewright runs etcd on the control planes (stacked); left out"),
            "{warnings}"
        );
        assert!(warnings.contains("kube_network_plugin is not set: kubespray's default is calico"), "{warnings}");
    }
}

#[test]
fn a_yaml_inventory_with_the_old_group_names_loads_with_warnings() {
    for reader in readers() {
        let o = import(&fixture("hosts.yaml"), &["--name", "lab", "--kubernetes-version", "1.30.8"], reader);
        let inv = load(&o);
        assert_eq!(inv.control_planes().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["master1"]);
        let worker = inv.host("worker1").unwrap();
        assert!(worker.is_worker() && !worker.is_control_plane());
        assert_eq!((worker.address.as_str(), worker.ssh.user.as_str()), ("10.0.0.21", "ubuntu"));
        assert_eq!(worker.internal_address.unwrap().to_string(), "192.168.10.21");
        assert_eq!(inv.host("master1").unwrap().internal_address, None, "ip equal to the SSH address");
        let warnings = stderr(&o);
        assert!(warnings.contains("the group `kube-master` is kubespray's name before 2.16"), "{warnings}");
        assert!(warnings.contains("worker1: access_ip 10.0.0.21 differs from ip 192.168.10.21"), "{warnings}");
        assert!(warnings.contains("worker1: not carried over: node_labels"), "{warnings}");
    }
}

#[test]
fn an_inventory_without_control_planes_or_with_bad_names_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("workers.ini");
    for reader in readers() {
        std::fs::write(&path, "[kube_node]\nw1 ansible_host=10.0.0.21\n").unwrap();
        let o = import(&path, &["--name", "x", "--kubernetes-version", "1.31.4"], reader);
        assert_eq!(o.status.code(), Some(2));
        assert!(common::output_text(&o).contains("no host is in kube_control_plane"), "{}", common::output_text(&o));
        std::fs::write(&path, "[kube_control_plane]\nNode_1 ansible_host=10.0.0.11\n").unwrap();
        let o = import(&path, &["--name", "x", "--kubernetes-version", "1.31.4"], reader);
        assert_eq!(o.status.code(), Some(2), "a name Kubernetes refuses is caught by the inventory checks");
        assert!(common::output_text(&o).contains("the imported inventory is not valid"), "{}", common::output_text(&o));
    }
}

/// kubespray's inventory/sample as shipped has its hosts commented out.
#[test]
fn kubesprays_sample_inventory_as_shipped_has_no_host_to_import() {
    for reader in readers() {
        let o = import(&fixture("sample/inventory.ini"), &["--name", "x", "--kubernetes-version", "1.31.4"], reader);
        assert_eq!(o.status.code(), Some(2), "{reader:?}");
        assert!(stderr(&o).contains("no host is in kube_control_plane"), "{}", stderr(&o));
    }
}

/// The sample filled in (kubespray's README: copy it, list the hosts): its cluster settings
/// live in group_vars/k8s_cluster/, a group its inventory does not declare (kubespray's
/// playbooks make it at run time); kube_version is in kubespray's role defaults, not here.
#[test]
fn the_sample_filled_in_maps_its_group_vars_and_needs_the_version() {
    for reader in readers() {
        let o = import(&fixture("mycluster/inventory.ini"), &["--name", "mycluster"], reader);
        assert_eq!(o.status.code(), Some(2), "{reader:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("kube_version is not set in the inventory or its group_vars"), "{}", stderr(&o));
        assert!(stderr(&o).contains("help: pass --kubernetes-version"), "{}", stderr(&o));

        let o = import(
            &fixture("mycluster/inventory.ini"),
            &["--name", "mycluster", "--kubernetes-version", "1.31.4"],
            reader,
        );
        let inv = load(&o);
        assert_eq!(inv.hosts.len(), 6);
        assert_eq!(inv.control_planes().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["node1", "node2", "node3"]);
        let net = &inv.cluster.network;
        assert_eq!(net.pod_subnet.to_string(), "10.233.64.0/18", "{reader:?}: group_vars/k8s_cluster/k8s-cluster.yml");
        assert_eq!(net.service_subnet.to_string(), "10.233.0.0/18");
        assert_eq!(net.node_cidr_mask_size, 24);
        assert_eq!(net.dns_domain, "cluster.local", "dns_domain is `{{{{ cluster_name }}}}`: cluster_name");
        assert_eq!(inv.host("node1").unwrap().internal_address, None, "`# ip=...` is a comment");
        let warnings = stderr(&o);
        assert!(warnings.contains("kube_network_plugin is `calico`: kubewright installs flannel"), "{warnings}");
        assert!(warnings.contains("variables the same on every host not carried over"), "{warnings}");
    }
}

/// What Vagrant's ansible provisioner writes for kubespray's Vagrantfile: every machine with its
/// variables before any [group], the groups as host ranges (`k8s-[1:3]`).
#[test]
fn the_inventory_kubesprays_vagrantfile_writes_imports() {
    for reader in readers() {
        // Vagrant hands Ansible the directory; a user may give the file.
        for input in [fixture("vagrant"), fixture("vagrant/vagrant_ansible_inventory")] {
            let o = import(&input, &["--name", "vagrant", "--kubernetes-version", "1.31.4"], reader);
            let inv = load(&o);
            let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
            assert_eq!(names, ["k8s-1", "k8s-2", "k8s-3"], "{reader:?} {}", input.display());
            assert_eq!(inv.control_planes().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["k8s-1", "k8s-2"]);
            assert!(inv.hosts.iter().all(|h| h.is_worker()), "kube_node is k8s-[1:3]");
            for (name, port, ip) in
                [("k8s-1", 2222, "172.18.8.101"), ("k8s-2", 2200, "172.18.8.102"), ("k8s-3", 2201, "172.18.8.103")]
            {
                let h = inv.host(name).unwrap();
                assert_eq!((h.address.as_str(), h.ssh.port, h.ssh.user.as_str()), ("127.0.0.1", port, "vagrant"));
                assert_eq!(h.internal_address.unwrap().to_string(), ip);
                assert_eq!(h.ssh.identity_file.as_deref(), Some("/home/dev/.vagrant.d/insecure_private_key"));
                assert!(h.ssh.sudo, "vagrant is not root: become, as the Vagrantfile's ansible.become");
            }
            assert_eq!(inv.cluster.flannel.interface.as_deref(), Some("eth1"), "flannel_interface on every host");
            assert!(inv.cluster.load_balancer.is_local(), "two control planes, kubespray's localhost proxy");
            assert!(!stderr(&o).contains("kube_network_plugin is"), "flannel: {}", stderr(&o));
        }
    }
}

/// Hosts named by ranges, with group_vars/ and host_vars/ (precedence: group_vars files over the
/// inventory file's [group:vars], a child group's file over its parent's, host_vars over all).
#[test]
fn host_ranges_and_group_vars_import() {
    for reader in readers() {
        let o = import(&fixture("ranges/inventory.ini"), &["--name", "lab"], reader);
        let inv = load(&o);
        let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "cp1.example.com",
                "cp2.example.com",
                "cp3.example.com",
                "worker01.example.com",
                "worker02.example.com",
                "worker03.example.com",
                "worker04.example.com",
                "gpua.example.com",
                "gpub.example.com"
            ],
            "{reader:?}"
        );
        assert_eq!(inv.cluster.kubernetes_version.to_string(), "1.31.4", "kube_version v1.31.4 from group_vars");
        assert_eq!(inv.cluster.control_plane_endpoint.to_string(), "10.0.0.100:8443", "loadbalancer_apiserver");
        assert!(!inv.cluster.load_balancer.is_local());
        let net = &inv.cluster.network;
        assert_eq!(
            (net.pod_subnet.to_string(), net.service_subnet.to_string()),
            ("10.128.0.0/14".into(), "10.96.0.0/16".into())
        );
        assert_eq!((net.node_cidr_mask_size, net.dns_domain.as_str()), (24, "lab.local"));
        assert_eq!(inv.cluster.flannel.backend.net_conf_type(), "host-gw");
        let iface = |h: &str| inv.host(h).unwrap().flannel_interface.clone();
        assert_eq!(iface("cp1.example.com").as_deref(), Some("ens3"), "group_vars/k8s_cluster, not [kube_node:vars]");
        assert_eq!(iface("worker01.example.com").as_deref(), Some("eth1"), "group_vars/kube_node.yml over k8s_cluster");
        assert_eq!(iface("gpub.example.com").as_deref(), Some("eth2"), "host_vars over group_vars");
        let w3 = inv.host("worker03.example.com").unwrap();
        assert_eq!((w3.address.as_str(), w3.ssh.port), ("10.0.0.23", 2222), "host_vars and the pattern's :2222");
        assert_eq!(w3.internal_address.unwrap().to_string(), "10.1.0.23");
        assert!(inv.hosts.iter().all(|h| h.ssh.user == "ops" && h.ssh.sudo), "quoted values; ansible_become");
        assert_eq!(inv.ssh.bastion.as_ref().unwrap().host, "203.0.113.7", "a host before any [group]");
    }
}

/// An inventory with the group names before kubespray 2.16 and group_vars under the new ones:
/// kubespray's legacy_groups playbook put the old groups' hosts into the new groups, so those
/// group_vars applied to them.
#[test]
fn the_new_names_group_vars_apply_to_hosts_in_the_old_groups() {
    for reader in readers() {
        let o = import(&fixture("legacy/inventory.ini"), &["--name", "lab"], reader);
        let inv = load(&o);
        assert_eq!(inv.control_planes().map(|h| h.name.as_str()).collect::<Vec<_>>(), ["master1"], "{reader:?}");
        assert_eq!(inv.cluster.kubernetes_version.to_string(), "1.31.4", "group_vars/k8s_cluster: {reader:?}");
        assert_eq!(inv.cluster.network.pod_subnet.to_string(), "10.200.0.0/16");
        let iface = |h: &str| inv.host(h).unwrap().flannel_interface.clone();
        assert_eq!(iface("master1").as_deref(), Some("ens3"), "group_vars/k8s_cluster: {reader:?}");
        assert_eq!(iface("node1").as_deref(), Some("eth1"), "group_vars/kube_node over k8s_cluster: {reader:?}");
        let warnings = stderr(&o);
        assert!(warnings.contains("the group `kube-node` is kubespray's name before 2.16"), "{warnings}");
    }
}

/// The fixtures both readers can read: the same inventory and the same warnings, or the same error.
const SHARED: &[(&str, &[&str])] = &[
    ("inventory.ini", &["--kubernetes-version", "1.31.4"]),
    ("hosts.yaml", &["--kubernetes-version", "1.31.4"]),
    ("sample/inventory.ini", &["--kubernetes-version", "1.31.4"]),
    ("mycluster/inventory.ini", &[]),
    ("mycluster/inventory.ini", &["--kubernetes-version", "1.31.4"]),
    ("mycluster", &["--kubernetes-version", "1.31.4"]),
    ("vagrant", &["--kubernetes-version", "1.31.4"]),
    ("vagrant/vagrant_ansible_inventory", &["--kubernetes-version", "1.31.4"]),
    ("ranges/inventory.ini", &[]),
    ("legacy/inventory.ini", &[]),
];

#[test]
fn both_readers_print_the_same_inventory() {
    if !ansible_available() {
        return;
    }
    // What differs by design: the header naming the reader, the note saying it, and
    // ansible-inventory's own warnings.
    let comparable = |o: &Output| {
        let out: Vec<String> = String::from_utf8_lossy(&o.stdout).lines().skip(1).map(String::from).collect();
        let err: Vec<String> = stderr(o)
            .lines()
            .filter(|l| {
                !l.contains(": read by ") && !l.contains("ansible-inventory:") && !l.contains("is not on the PATH")
            })
            .map(String::from)
            .collect();
        (o.status.code(), out, err)
    };
    for (name, args) in SHARED {
        let mut args = args.to_vec();
        args.extend(["--name", "same"]);
        let ansible = import(&fixture(name), &args, Reader::Ansible);
        let builtin = import(&fixture(name), &args, Reader::Builtin);
        assert_eq!(comparable(&ansible), comparable(&builtin), "{name} {args:?}");
    }
}

/// Every file under `dir`, as `prefix/relative/path` with its text (what the CLI reads).
fn var_files(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries {
        let path = e.unwrap().path();
        let rel = format!("{prefix}/{}", path.file_name().unwrap().to_string_lossy());
        if path.is_dir() {
            var_files(&path, &rel, out);
        } else {
            out.push((rel, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// Below the mapping: every host's groups and effective variables, Ansible's and the built-in
/// reader's, equal (values of every type, from the inventory file, group_vars/ and host_vars/).
#[test]
fn both_readers_see_the_same_groups_and_variables() {
    if !ansible_available() {
        return;
    }
    let shim_dir = tempfile::tempdir().unwrap();
    let shim = shim_dir.path().join("groups.ini");
    std::fs::write(&shim, kubespray::source::KUBESPRAY_GROUPS_INI).unwrap();
    for name in [
        "inventory.ini",
        "hosts.yaml",
        "mycluster/inventory.ini",
        "vagrant/vagrant_ansible_inventory",
        "ranges/inventory.ini",
    ] {
        let path = fixture(name);
        let o =
            Command::new("ansible-inventory").arg("-i").arg(&path).arg("-i").arg(&shim).arg("--list").output().unwrap();
        assert!(o.status.success(), "{}", common::output_text(&o));
        let ansible = kubespray::ansible::parse_list(&String::from_utf8_lossy(&o.stdout)).unwrap();
        let base = path.parent().unwrap();
        let mut files = Vec::new();
        var_files(&base.join("group_vars"), "group_vars", &mut files);
        var_files(&base.join("host_vars"), "host_vars", &mut files);
        let file = kubespray::InventoryFile { path: name.into(), text: std::fs::read_to_string(&path).unwrap() };
        let builtin =
            kubespray::read_builtin(&[file], &kubespray::VarFiles { files, dir: base.display().to_string() }).unwrap();
        assert_eq!(
            ansible.hosts.keys().collect::<Vec<_>>(),
            builtin.hosts.keys().collect::<Vec<_>>(),
            "{name}: the same hosts"
        );
        for (host, vars) in &ansible.hosts {
            assert_eq!(vars, &builtin.hosts[host], "{name}: {host}'s variables");
            assert_eq!(ansible.groups_of(host), builtin.groups_of(host), "{name}: {host}'s groups");
        }
        for group in ["kube_control_plane", "kube_node", "etcd", "k8s_cluster"] {
            assert_eq!(ansible.members(group), builtin.members(group), "{name}: {group}'s hosts in order");
        }
    }
}

/// A fake `ansible-inventory` that fails: its message is the error, not a switch to the
/// built-in reader.
#[test]
fn a_failing_ansible_inventory_is_the_error_not_a_fallback() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("ansible-inventory");
    std::fs::write(&fake, "#!/bin/sh\necho 'ERROR! Completely failed to parse inventory source' >&2\nexit 1\n")
        .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "from-kubespray", "--name", "x", "--kubernetes-version", "1.31.4"])
        .arg(fixture("inventory.ini"))
        .env("PATH", format!("{}:/usr/bin:/bin", dir.path().display()))
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = common::output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(o.stdout.is_empty(), "no inventory printed: {text}");
    assert!(
        text.contains("--list` failed (exit status 1):\nERROR! Completely failed to parse inventory source"),
        "{text}"
    );
    assert!(text.contains("help: fix what it says") && text.contains("--reader builtin"), "{text}");
    // The explicit way around it.
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "from-kubespray", "--name", "x", "--kubernetes-version", "1.31.4", "--reader", "builtin"])
        .arg(fixture("inventory.ini"))
        .env("PATH", dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
}

#[test]
fn reader_ansible_without_ansible_inventory_is_an_error() {
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "from-kubespray", "--name", "x", "--reader", "ansible"])
        .arg(fixture("inventory.ini"))
        .env("PATH", empty.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = common::output_text(&o);
    assert_eq!(o.status.code(), Some(2), "{text}");
    assert!(
        text.contains("`ansible-inventory` is not on the PATH") && text.contains("pip install ansible-core"),
        "{text}"
    );
}

/// After a kubespray run the inventory's directory also holds what kubespray wrote there
/// (`kubeconfig_localhost`: artifacts/admin.conf); Ansible skips such files with a warning, and
/// so does the built-in reader for a file that is no inventory.
#[test]
fn an_inventory_directory_with_kubesprays_artifacts_still_imports() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("vagrant/vagrant_ansible_inventory"), dir.path().join("vagrant_ansible_inventory")).unwrap();
    std::fs::create_dir(dir.path().join("artifacts")).unwrap();
    std::fs::write(dir.path().join("artifacts/admin.conf"), "apiVersion: v1\nkind: Config\n").unwrap();
    std::fs::write(dir.path().join("notes.conf"), "not an inventory {\n").unwrap();
    for reader in readers() {
        let o = import(dir.path(), &["--name", "vagrant", "--kubernetes-version", "1.31.4"], reader);
        assert_eq!(load(&o).hosts.len(), 3, "{reader:?}");
        let warnings = stderr(&o);
        let skipped = match reader {
            Reader::Ansible => "Unable to parse",
            Reader::Builtin => "notes.conf:1: `an` is not a key=value host variable: not read as an inventory, skipped",
        };
        assert!(warnings.contains(skipped), "{reader:?}: {warnings}");
    }
}
