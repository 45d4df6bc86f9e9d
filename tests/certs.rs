//! `kubewright certs check` on the test bed: the rows kubeadm would list (plus the node, the
//! kubelets' and the bastion's), exit codes for monitoring, the Prometheus textfile, broken
//! certificates flagged, unreachable hosts reported without hiding the others.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Output, Stdio};

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::output_text;

fn kubewright(bed: &Testbed, state: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(args)
        .arg("-i")
        .arg(bed.inventory_path())
        .env("NO_COLOR", "1")
        .env("KUBEWRIGHT_STATE_DIR", state)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", output_text(o)))
}

/// The rows of a JSON report for `node`, by certificate name.
fn rows(report: &serde_json::Value, node: &str) -> std::collections::BTreeMap<String, serde_json::Value> {
    report["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["node"] == node)
        .map(|r| (r["certificate"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

#[test]
fn certificates_are_checked_with_monitoring_exit_codes() {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 2;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let state = tempfile::tempdir().unwrap();
    // Installed 345 days ago: the leaf certificates have 20 days left.
    bed.advance_clock(-345 * 86_400).unwrap();
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));

    // 20 days are fine with a 10-day warning time, but the API servers have run for 345 days
    // without a restart: their in-memory loopback certificate lasts a year.
    let uptime = kubewright(&bed, state.path(), &["certs", "check", "--warn", "10d", "--critical", "5d", "-o", "json"]);
    assert_eq!(uptime.status.code(), Some(1), "{}", output_text(&uptime));
    let report = json(&uptime);
    assert!(report["certificates"].as_array().unwrap().iter().all(|r| r["severity"] == "ok"), "{report}");
    let notes: Vec<&str> = report["notes"].as_array().unwrap().iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(notes, ["cp1", "cp2"]);
    assert!(
        report["notes"][0]["message"]
            .as_str()
            .unwrap()
            .contains("kube-apiserver has run for 345 days without a restart")
    );
    // The inventory's renewBefore (30d) makes 20 days a warning; 25d critical makes it critical.
    let warned = kubewright(&bed, state.path(), &["certs", "check", "-o", "json"]);
    assert_eq!(warned.status.code(), Some(1), "{}", output_text(&warned));
    let report = json(&warned);
    let cp1 = rows(&report, "cp1");
    let kubeadm_items = [
        "admin.conf",
        "apiserver",
        "apiserver-etcd-client",
        "apiserver-kubelet-client",
        "controller-manager.conf",
        "etcd-healthcheck-client",
        "etcd-peer",
        "etcd-server",
        "front-proxy-client",
        "scheduler.conf",
        "super-admin.conf",
    ];
    for name in kubeadm_items.iter().chain(&["ca", "etcd-ca", "front-proxy-ca", "kubelet-client", "kubelet-serving"]) {
        assert!(cp1.contains_key(*name), "{name} missing on cp1: {:?}", cp1.keys());
    }
    assert_eq!(cp1["apiserver"]["severity"], "warning");
    assert_eq!(cp1["apiserver"]["authority"], "ca");
    assert_eq!(cp1["etcd-peer"]["authority"], "etcd-ca");
    assert_eq!(cp1["ca"]["severity"], "ok");
    let days = cp1["apiserver"]["residual_s"].as_i64().unwrap() / 86_400;
    assert!((19..=20).contains(&days), "{days}");
    assert!(cp1.values().all(|r| r["problems"].as_array().unwrap().is_empty()), "{cp1:?}");
    assert_eq!(rows(&report, "w1").keys().collect::<Vec<_>>(), ["kubelet-client", "kubelet-serving"]);
    assert!(rows(&report, "bastion").contains_key("admin.conf (bastion)"));
    let expiries: Vec<i64> =
        report["certificates"].as_array().unwrap().iter().map(|r| r["expires"].as_i64().unwrap()).collect();
    assert!(expiries.windows(2).all(|w| w[0] <= w[1]), "sorted by expiry");

    let textfile = state.path().join("textfile/kubewright.prom");
    std::fs::create_dir_all(textfile.parent().unwrap()).unwrap();
    let critical = kubewright(
        &bed,
        state.path(),
        &["certs", "check", "--critical", "25d", "--prometheus-textfile", textfile.to_str().unwrap()],
    );
    assert_eq!(critical.status.code(), Some(2), "{}", output_text(&critical));
    let text = output_text(&critical);
    assert!(
        text.starts_with("NODE      CERTIFICATE")
            && text.contains("RESIDUAL TIME   CERTIFICATE AUTHORITY   EXTERNALLY MANAGED"),
        "{text}"
    );
    assert!(
        text.contains("critical: cp1 apiserver (/etc/kubernetes/pki/apiserver.crt): 19d left")
            || text.contains("critical: cp1 apiserver (/etc/kubernetes/pki/apiserver.crt): 20d left"),
        "{text}"
    );
    let lines = std::fs::read_to_string(&textfile).unwrap().lines().map(|l| Ok(l.to_string())).collect::<Vec<_>>();
    let scrape = prometheus_parse::Scrape::parse(lines.into_iter()).unwrap();
    let apiserver = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "kubewright_cert_expiry_timestamp_seconds"
                && s.labels.get("node") == Some("cp2")
                && s.labels.get("cert") == Some("apiserver")
        })
        .expect("an expiry sample for cp2's apiserver certificate");
    let prometheus_parse::Value::Gauge(expires) = apiserver.value else { panic!("{:?}", apiserver.value) };
    assert_eq!(expires as i64, rows(&report, "cp2")["apiserver"]["expires"].as_i64().unwrap());
    assert!(scrape.docs.contains_key("kubewright_cert_expiry_timestamp_seconds"), "HELP lines");

    // cp2's API server certificate replaced by one of another CA, for other names, with another key.
    let replace = "cd /tmp && openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.crt -days 30 -subj /CN=impostor -addext subjectAltName=DNS:impostor 2>/dev/null && cp other.crt /etc/kubernetes/pki/apiserver.crt";
    assert!(bed.exec("cp2", replace).unwrap().status.success());
    let broken = kubewright(&bed, state.path(), &["certs", "check", "-o", "json"]);
    assert_eq!(broken.status.code(), Some(2), "{}", output_text(&broken));
    let problems = rows(&json(&broken), "cp2")["apiserver"]["problems"].to_string();
    assert!(problems.contains("not signed by the CA on disk (/etc/kubernetes/pki/ca.crt)"), "{problems}");
    assert!(problems.contains("its SANs do not include"), "{problems}");
    assert!(problems.contains("/etc/kubernetes/pki/apiserver.key does not belong to this certificate"), "{problems}");

    // A host that cannot be read: exit 3, the others still in the report.
    bed.link_down("w1").unwrap();
    let unreachable = kubewright(&bed, state.path(), &["certs", "check", "-o", "json"]);
    assert_eq!(unreachable.status.code(), Some(3), "{}", output_text(&unreachable));
    let report = json(&unreachable);
    assert!(report["unreachable"][0].as_str().unwrap().starts_with("w1: "), "{report}");
    assert!(rows(&report, "cp1").contains_key("apiserver"), "the reachable hosts are still reported");
}
