//! Where a run's secrets go, and where they do not: the bootstrap token and the certificate key
//! appear in nothing kubewright printed (text, verbose, JSON) or wrote on the bastion; the
//! bastion's state directory is 0700 and what it keeps that holds keys is 0600; on the hosts,
//! what kubewright wrote that holds a key or token is root's and 0600.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{on_bed as kubewright, output_text};

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every run of 64 hex digits in `text` (the form of kubeadm's certificate key).
fn hex64(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut start = None;
    for (i, b) in bytes.iter().chain(std::iter::once(&b' ')).enumerate() {
        match (b.is_ascii_hexdigit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s == 64 {
                    found.push(&text[s..i]);
                }
                start = None;
            }
            _ => {}
        }
    }
    found
}

#[test]
fn secrets_appear_in_no_output_nor_bastion_file_and_keys_are_private() {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 2;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let state = tempfile::tempdir().unwrap();
    let mut printed = String::new();
    for args in [vec!["apply", "--yes", "-v"], vec!["apply", "--yes", "-o", "json"], vec!["certs", "check"]] {
        let o = kubewright(&bed, state.path(), &args);
        printed.push_str(&output_text(&o));
        assert!(o.status.success(), "{args:?}: {}", output_text(&o));
    }
    let cluster = bed.cluster_state();
    let tokens: Vec<String> = cluster.tokens.iter().map(|t| t.secret.clone()).collect();
    assert!(!tokens.is_empty(), "the install made a bootstrap token");
    let key_hash = cluster.uploaded_certs.as_ref().map(|u| u.key_sha256.clone()).expect("certificates were uploaded");
    let leaks = |what: &str, text: &str| {
        for t in &tokens {
            assert!(!text.contains(t.as_str()), "{what} holds the bootstrap token secret {t}");
        }
        for candidate in hex64(text) {
            assert_ne!(kubewright::pki::sha256_hex(candidate.as_bytes()), key_hash, "{what} holds the certificate key");
        }
    };
    leaks("the output", &printed);

    // The bastion: a private state directory; nothing in it holds a secret of the run; what
    // holds the cluster's keys (admin.conf, backups) is 0600.
    let root = std::fs::read_dir(state.path()).unwrap().flatten().next().unwrap().path();
    assert_eq!(std::fs::metadata(&root).unwrap().permissions().mode() & 0o777, 0o700, "{}", root.display());
    let mut files = Vec::new();
    files_under(&root, &mut files);
    assert!(files.iter().any(|f| f.ends_with("admin.conf")), "{files:?}");
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        leaks(&f.display().to_string(), &String::from_utf8_lossy(&bytes));
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("client-key-data") || text.contains("PRIVATE KEY") {
            assert_eq!(
                std::fs::metadata(f).unwrap().permissions().mode() & 0o077,
                0,
                "{} is readable by others",
                f.display()
            );
        }
    }

    // The hosts: what kubewright keeps in /etc/kubewright that holds a key or token is root's
    // and 0600, and no file there holds this run's secrets (the join configurations are gone).
    for host in ["cp1", "cp2", "w1"] {
        let o = bed
            .exec(
                host,
                "find /etc/kubewright /var/lib/kubewright -type f -exec stat -c '%a %u %n' {} + 2>/dev/null; true",
            )
            .unwrap();
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let mut words = line.splitn(3, ' ');
            let (mode, uid, path) = (words.next().unwrap(), words.next().unwrap(), words.next().unwrap());
            let content = bed.exec(host, &format!("cat '{path}'")).unwrap();
            let text = String::from_utf8_lossy(&content.stdout).into_owned();
            leaks(&format!("{host}:{path}"), &text);
            if text.contains("PRIVATE KEY") || text.contains("client-key-data") || text.contains("token") {
                assert_eq!((mode, uid), ("600", "0"), "{host}:{path}");
            }
        }
        // kubeadm's own files with keys, as kubeadm leaves them (0600).
        let o = bed.exec(host, "stat -c '%a' /etc/kubernetes/kubelet.conf").unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "600", "{host}");
    }
}
