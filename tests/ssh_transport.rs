//! Both transports on the test bed: atomic uploads with mode and owner (missing directories
//! made 0755), downloads, sudo, and an upload interrupted by a crash leaving the old file
//! intact. Every test runs once per transport.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::time::Duration;

use kubewright::ssh::{Connector, Target, Transport, TransportKind};
use kubewright_testbed::{Testbed, TestbedOptions, on_both_transports};

fn target(bed: &Testbed, host: &str, user: &str) -> Target {
    Target {
        name: host.to_string(),
        address: bed.host(host).ip.to_string(),
        port: 22,
        user: user.to_string(),
        identity_file: Some(bed.client_key_path()),
        fallback_identity_files: Vec::new(),
        sudo: user != "root",
        known_hosts: Some(bed.known_hosts_path()),
        bastion: None,
        connect_timeout: Duration::from_secs(5),
        server_alive_interval: Duration::from_secs(15),
        accept_new_host_keys: false,
        given: kubewright::inventory::SshGiven { user: true, port: true, sudo: true },
        ssh_config: Default::default(),
    }
}

fn kind(transport: &str) -> TransportKind {
    if transport == "russh" { TransportKind::Russh } else { TransportKind::Openssh }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap()
}

fn sh(bed: &Testbed, host: &str, script: &str) -> String {
    let o = bed.exec(host, script).unwrap();
    assert!(o.status.success(), "{script}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn uploads_are_atomic_with_mode_and_owner(transport: &str) {
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    let connector = Connector::new(kind(transport)).unwrap();
    runtime().block_on(async {
        for user in ["root", "kwadmin"] {
            let t = connector.connect(target(&bed, "cp1", user)).await.unwrap();
            let path = format!("/etc/kubewright/{user}/secret.yaml");
            let content = format!("token: \"{user}\"\nquote: it's \"here\" $HOME\n");
            t.upload(&path, content.as_bytes(), 0o600, "root:root").await.unwrap();
            assert_eq!(sh(&bed, "cp1", &format!("stat -c '%a %U:%G' {path}")).trim(), "600 root:root");
            // Issue 18 (run-safety review, item 17): the missing directories are made as root's
            // (0755), whatever the file's own mode; they were 0700, so /etc/kubernetes made by
            // an upload before `kubeadm init` was closed to everyone else.
            let dirs = sh(&bed, "cp1", &format!("stat -c '%n %a %U' /etc/kubewright /etc/kubewright/{user}"));
            assert_eq!(dirs, format!("/etc/kubewright 755 root\n/etc/kubewright/{user} 755 root\n"));
            assert_eq!(t.download(&path).await.unwrap(), content.as_bytes());
            // Replacing keeps the new mode, and leaves no temporary file behind.
            t.upload(&path, b"v2\n", 0o644, "root:root").await.unwrap();
            assert_eq!(sh(&bed, "cp1", &format!("cat {path}; stat -c %a {path}")), "v2\n644\n");
            assert_eq!(sh(&bed, "cp1", &format!("ls -A /etc/kubewright/{user}")).trim(), "secret.yaml");
            t.close().await;
        }
        let t = connector.connect(target(&bed, "cp1", "root")).await.unwrap();
        let err = t.download("/nonexistent").await.unwrap_err().to_string();
        assert!(err.contains("reading /nonexistent failed") && err.contains("No such file"), "{err}");
        t.close().await;
    });
}

fn an_interrupted_upload_leaves_the_old_file(transport: &str) {
    let Some(mut bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    sh(&bed, "cp1", "mkdir -p /etc/containerd && echo old > /etc/containerd/config.toml");
    // Slow link: the upload is still in flight when the host crashes.
    bed.add_latency("cp1", 50).unwrap();
    let connector = Connector::new(kind(transport)).unwrap();
    let rt = runtime();
    let t = rt.block_on(connector.connect(target(&bed, "cp1", "root"))).unwrap();
    let big = vec![b'x'; 64 << 20];
    let upload = rt.spawn(async move { t.upload("/etc/containerd/config.toml", &big, 0o644, "root:root").await });
    std::thread::sleep(Duration::from_millis(1500));
    bed.crash("cp1").unwrap();
    bed.clear_latency("cp1").unwrap();
    bed.boot("cp1").unwrap();
    // The rebooted host resets the old connection: the upload fails at once.
    assert!(rt.block_on(upload).unwrap().is_err(), "the upload cannot have finished");
    assert_eq!(sh(&bed, "cp1", "cat /etc/containerd/config.toml"), "old\n");
}

/// This process's peak resident memory so far, in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// Issue 18: files of any size travel in pieces, from a file to a file, never held whole in
/// memory (a 4 GiB etcd snapshot to three control planes once took 12 GiB of the bastion's),
/// through the sessions the engine uses (a wrapper that did not forward the streaming methods
/// read the whole file: this test's peak memory grew by the file's size); the host refuses a
/// file whose SHA-256 is not the one planned, replacing nothing.
fn files_are_streamed_and_checked_against_their_planned_hash(transport: &str) {
    use std::io::Write;
    let Some(bed) = Testbed::up_or_skip(TestbedOptions::new(1)) else { return };
    let connector = Connector::new(kind(transport)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("snapshot.db");
    // 128 MiB with no newline in it, written a piece at a time: not split into lines, and never
    // whole in this process's memory.
    const MIB: usize = 1 << 20;
    let piece: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8 + 1).map(|b| if b == b'\n' { b'x' } else { b }).collect();
    let mut file = std::fs::File::create(&source).unwrap();
    for _ in 0..128 {
        file.write_all(&piece).unwrap();
    }
    drop(file);
    let (_, sha) = kubewright::exec::sha256_file(&source).unwrap();
    let before = peak_rss_mib();
    runtime().block_on(async {
        let t = std::sync::Arc::new(connector.connect(target(&bed, "cp1", "kwadmin")).await.unwrap());
        let remote = "/var/lib/kubewright/restore/snapshot.db";
        t.upload_file(remote, &source, &sha, 0o600, "root:root").await.unwrap();
        assert_eq!(sh(&bed, "cp1", &format!("sha256sum {remote}")).split_whitespace().next(), Some(sha.as_str()));
        assert_eq!(sh(&bed, "cp1", &format!("stat -c '%a %U' {remote}")).trim(), "600 root");
        let back = dir.path().join("back.db");
        t.download_to(remote, &back).await.unwrap();
        assert_eq!(kubewright::exec::sha256_file(&back).unwrap().1, sha, "the same bytes came back");
        let grown = peak_rss_mib().saturating_sub(before);
        assert!(grown < 48, "128 MiB up and down grew the peak memory by {grown} MiB");
        let Ok(t) = std::sync::Arc::try_unwrap(t) else { panic!("the session is shared") };
        // The file changed on the bastion since it was planned: refused, the old one stays.
        std::fs::write(&source, b"something else").unwrap();
        let err = t.upload_file(remote, &source, &sha, 0o600, "root:root").await.unwrap_err().to_string();
        assert!(err.contains("is not the file planned (another SHA-256)"), "{err}");
        assert_eq!(sh(&bed, "cp1", &format!("sha256sum {remote}")).split_whitespace().next(), Some(sha.as_str()));
        assert_eq!(
            sh(&bed, "cp1", "ls -A /var/lib/kubewright/restore").trim(),
            "snapshot.db",
            "no temporary file left"
        );
        t.close().await;
    });
}

on_both_transports!(
    uploads_are_atomic_with_mode_and_owner,
    an_interrupted_upload_leaves_the_old_file,
    files_are_streamed_and_checked_against_their_planned_hash
);
