//! The Vagrant test clusters: the Vagrantfile is valid Ruby, and `inventory from-vagrant` turns
//! recorded `vagrant ssh-config` outputs (VirtualBox with one machine, libvirt with five, any
//! Vagrantfile's names, keys quoted, repeated or missing) into inventories that load; on the
//! test bed, node IPs read from an interface are the hosts' own.
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
    // Read on the machine at plan time, from the private network's interface: not the NAT address.
    assert_eq!((cp1.internal_address, cp1.internal_interface.as_deref()), (None, Some("eth1")));
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
    let cp1 = inv.host("cp1").unwrap();
    assert_eq!(
        cp1.ssh.identity_file.as_deref(),
        Some("/home/ci/my projects/kubewright/vagrant/.vagrant/machines/cp1/libvirt/private_key")
    );
    assert_eq!(
        cp1.ssh.fallback_identity_files,
        [
            "/home/ci/.vagrant.d/insecure_private_keys/vagrant.key.ed25519",
            "/home/ci/.vagrant.d/insecure_private_keys/vagrant.key.rsa"
        ],
        "every IdentityFile, in order: an RSA-only box takes the last"
    );
    assert_eq!(inv.host("worker1").unwrap().ssh.identity_file, None);
    assert_eq!(
        inv.host("worker2").unwrap().ssh.identity_file.as_deref(),
        Some("/home/ci/.vagrant.d/insecure_private_key")
    );
    assert_eq!(inv.cluster.flannel.interface.as_deref(), Some("ens6"));
}

/// The issue's own case: a Vagrantfile of its own naming, five machines across VirtualBox port
/// forwards and libvirt addresses, quoted keys with spaces, several keys per machine.
#[test]
fn any_vagrantfiles_names_become_control_planes_by_glob() {
    let o = from_vagrant("ssh-config-k8s-mixed-5.txt", &["--control-planes", "k8s-cp-*", "--name", "team"]);
    let warnings = common::output_text(&o);
    let inv = load(&o);
    let names: Vec<&str> = inv.control_planes().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["k8s-cp-1", "k8s-cp-2", "k8s-cp-3"]);
    let workers: Vec<&str> = inv.hosts.iter().filter(|h| !h.is_control_plane()).map(|h| h.name.as_str()).collect();
    assert_eq!(workers, ["k8s-worker-1", "k8s-worker-2"]);
    assert!(
        inv.hosts.iter().all(|h| h.is_control_plane() != h.is_worker()),
        "workers exist: control planes only control"
    );
    let reach: Vec<(&str, &str, u16)> =
        inv.hosts.iter().map(|h| (h.name.as_str(), h.address.as_str(), h.ssh.port)).collect();
    assert_eq!(
        reach,
        [
            ("k8s-cp-1", "127.0.0.1", 2222),
            ("k8s-cp-2", "127.0.0.1", 2200),
            ("k8s-cp-3", "192.168.121.31", 22),
            ("k8s-worker-1", "192.168.121.41", 22),
            ("k8s-worker-2", "127.0.0.1", 2201)
        ]
    );
    let keys = |name: &str| {
        let ssh = &inv.host(name).unwrap().ssh;
        ssh.identity_file.iter().chain(&ssh.fallback_identity_files).cloned().collect::<Vec<String>>()
    };
    assert_eq!(keys("k8s-cp-1"), ["/home/ci/my projects/cluster/.vagrant/machines/k8s-cp-1/virtualbox/private_key"]);
    assert_eq!(
        keys("k8s-cp-3"),
        [
            "/home/ci/my vagrant home/insecure_private_keys/vagrant.key.ed25519",
            "/home/ci/my vagrant home/insecure_private_keys/vagrant.key.rsa"
        ]
    );
    assert_eq!(keys("k8s-worker-1").len(), 2);
    assert_eq!(keys("k8s-worker-2"), ["/home/ci/.vagrant.d/insecure_private_key"]);
    assert!(inv.hosts.iter().all(|h| h.internal_interface.as_deref() == Some("eth1") && h.ssh.user == "vagrant"));
    assert!(inv.cluster.load_balancer.is_local(), "three control planes and no load balancer of their own");
    assert_eq!(inv.cluster.flannel.interface.as_deref(), Some("eth1"));
    assert!(warnings.contains("allows `ssh-rsa`") && warnings.contains("k8s-worker-1"), "{warnings}");

    // The whole inventory validates as a file, as a user would check it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("team.yaml");
    std::fs::write(&path, &o.stdout).unwrap();
    let v = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "validate", "-v", "-i"])
        .arg(&path)
        .output()
        .unwrap();
    let said = common::output_text(&v);
    assert!(v.status.success(), "{said}");
    assert!(said.contains("5 hosts (3 control planes, 2 workers)"), "{said}");
    assert!(said.contains("node IP the IPv4 address of eth1 (read from the host at plan time)"), "{said}");

    // Offline, the plan says where the address comes from and makes none up.
    let state = tempfile::tempdir().unwrap();
    let plan = common::command_on(&path, state.path(), &["plan", "--offline", "--diff"]).output().unwrap();
    let text = common::output_text(&plan);
    assert!(plan.status.success(), "{text}");
    assert!(
        text.contains("k8s-cp-1: the IPv4 address of eth1, read from the host when the plan is made with its facts"),
        "{text}"
    );
    // The workers' API proxies name the control planes by the placeholder, never by the SSH
    // address (127.0.0.1 is the bastion's port forward, not the node).
    assert!(text.contains("+    server k8s-cp-1 <IPv4 of eth1>:6443"), "{text}");
    assert!(!text.contains("server k8s-cp-1 127.0.0.1"), "{text}");
    assert!(text.contains("+        - \"--iface=eth1\""), "{text}");
}

#[test]
fn workers_can_be_narrowed_and_the_machines_left_out_are_named() {
    let o = from_vagrant(
        "ssh-config-k8s-mixed-5.txt",
        &["--control-planes", "k8s-cp-1", "--workers", "k8s-worker-*", "--workers", "k8s-cp-*"],
    );
    let said = common::output_text(&o);
    let inv = load(&o);
    let names: Vec<&str> = inv.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["k8s-cp-1", "k8s-cp-2", "k8s-cp-3", "k8s-worker-1", "k8s-worker-2"]);
    assert_eq!(
        inv.control_planes().count(),
        1,
        "a machine matching both is a control plane only if it matches --control-planes"
    );

    let o = from_vagrant("ssh-config-k8s-mixed-5.txt", &["--control-planes", "k8s-cp-1", "--workers", "k8s-worker-1"]);
    let said_now = common::output_text(&o);
    let inv = load(&o);
    assert_eq!(inv.hosts.len(), 2);
    assert!(
        said_now.contains(
            "left out, matching neither --control-planes `k8s-cp-1` nor --workers `k8s-worker-1`: k8s-cp-2, k8s-cp-3, k8s-worker-2"
        ),
        "{said_now}"
    );
    assert!(!said.contains("left out"), "{said}");

    let o = from_vagrant("ssh-config-k8s-mixed-5.txt", &[]);
    assert_eq!(o.status.code(), Some(2));
    let said = common::output_text(&o);
    assert!(
        said.contains("no machine matches --control-planes `cp*` (the machines are k8s-cp-1, k8s-cp-2, k8s-cp-3, k8s-worker-1, k8s-worker-2)"),
        "{said}"
    );
    assert!(said.contains("--control-planes 'k8s-cp-*'"), "{said}");
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

/// On real hosts, the case end to end: a `vagrant ssh-config` of the bed's machines
/// under a Vagrantfile's own names, imported with `--control-planes 'k8s-cp-*' --interface
/// eth0`; its node IPs, read when the plan is made, are each host's own address, in the text
/// plan and the JSON one, over both transports. Each machine lists two keys, the first not
/// authorized anywhere (as Vagrant's ed25519 insecure key is not, on an old box) and quoted
/// (its path has a space): the second must be tried. An interface the hosts lack refuses the
/// plan, naming host and interface.
#[test]
fn on_the_bed_node_ips_found_through_the_interface_are_the_hosts_own() {
    let Some((bed, state)) = common::bed(3, 2) else { return };
    let stranger = bed.dir().join("not authorized");
    common::fresh_public_key(&stranger);
    let names = ["k8s-cp-1", "k8s-cp-2", "k8s-worker-1"];
    let ssh_config: String = bed
        .hosts()
        .iter()
        .zip(names)
        .map(|(h, name)| {
            format!(
                "Host {name}\n  HostName {}\n  User root\n  Port 22\n  UserKnownHostsFile /dev/null\n  StrictHostKeyChecking no\n  PasswordAuthentication no\n\n  IdentityFile \"{}\"\n\n  IdentityFile {}\n  IdentitiesOnly yes\n  LogLevel FATAL\n\n",
                h.ip,
                stranger.display(),
                bed.client_key_path().display()
            )
        })
        .collect();
    let ssh_config_path = bed.dir().join("vagrant-ssh-config.txt");
    std::fs::write(&ssh_config_path, ssh_config).unwrap();
    let import = |interface: &str, file: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
            .args(["inventory", "from-vagrant", "--control-planes", "k8s-cp-*", "--interface", interface])
            .arg("--known-hosts")
            .arg(bed.known_hosts_path())
            .arg(&ssh_config_path)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", common::output_text(&o));
        let path = bed.dir().join(file);
        std::fs::write(&path, &o.stdout).unwrap();
        path
    };
    let by_interface = import("eth0", "by-interface.yaml");
    let expected: Vec<(String, String)> =
        bed.hosts().iter().zip(names).map(|(h, name)| (name.to_string(), h.ip.to_string())).collect();
    for transport in ["openssh", "russh"] {
        let o = common::command_on(&by_interface, state.path(), &["plan", "--transport", transport]).output().unwrap();
        let said = common::output_text(&o);
        assert!(o.status.success(), "{transport}: {said}");
        for (name, ip) in &expected {
            assert!(said.contains(&format!("  {name}: {ip} on eth0")), "{transport}: {said}");
        }
        let o = common::command_on(&by_interface, state.path(), &["plan", "--transport", transport, "-o", "json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{transport}: {}", common::output_text(&o));
        let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let found: Vec<(String, String)> = plan["node_ips"]
            .as_array()
            .unwrap()
            .iter()
            .inspect(|n| assert_eq!(n["interface"], "eth0"))
            .map(|n| (n["host"].as_str().unwrap().into(), n["address"].as_str().unwrap().into()))
            .collect();
        assert_eq!(found, expected, "{transport}");
        // The address found is the one the plan uses: the worker's API proxy forwards to it.
        let json = String::from_utf8_lossy(&o.stdout);
        assert!(json.contains(&format!("server k8s-cp-1 {}:6443", expected[0].1)), "{transport}: {json}");
    }

    let missing = import("eth9", "missing-interface.yaml");
    let o = common::command_on(&missing, state.path(), &["plan"]).output().unwrap();
    let said = common::output_text(&o);
    assert!(!o.status.success(), "{said}");
    assert!(said.contains("k8s-cp-1 has no interface `eth9` (it has eth0, lo)"), "{said}");
    assert!(said.contains("set `internalAddress: {interface: NAME}` of k8s-worker-1"), "{said}");

    // And the install itself uses them. The bed's simulated etcd knows its members by the
    // bed's host names, so the machines keep those here (`cp1`, `cp2`, `w1`); the bed's package
    // archive stands in for pkgs.k8s.io, which the imported inventory names.
    let bed_names: Vec<&str> = bed.hosts().iter().map(|h| h.name.as_str()).collect();
    let mut renamed = std::fs::read_to_string(&ssh_config_path).unwrap();
    for (name, bed_name) in names.iter().zip(&bed_names) {
        renamed = renamed.replace(&format!("Host {name}\n"), &format!("Host {bed_name}\n"));
    }
    std::fs::write(&ssh_config_path, renamed).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["inventory", "from-vagrant", "--control-planes", "cp[12]", "--interface", "eth0", "--known-hosts"])
        .arg(bed.known_hosts_path())
        .arg(&ssh_config_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let bed_inventory = std::fs::read_to_string(bed.inventory_path()).unwrap();
    let packages: String = bed_inventory
        .lines()
        .skip_while(|l| *l != "  packages:")
        .take_while(|l| l.starts_with("  packages:") || l.starts_with("    "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(packages.contains("mirror:"), "{bed_inventory}");
    let installable = bed.dir().join("installable.yaml");
    let imported = String::from_utf8(o.stdout).unwrap();
    std::fs::write(&installable, imported.replacen("  cni:\n", &format!("{packages}  cni:\n"), 1)).unwrap();
    let o = common::command_on(&installable, state.path(), &["apply", "--yes", "-q"]).output().unwrap();
    assert!(o.status.success(), "{}", common::output_text(&o));
    let proxy = String::from_utf8_lossy(&bed.exec(bed_names[2], "cat /etc/kubewright/api-proxy.cfg").unwrap().stdout)
        .into_owned();
    assert!(proxy.contains(&format!("server cp2 {}:6443", expected[1].1)), "{proxy}");
    assert!(!proxy.contains("<IPv4 of"), "{proxy}");
}
