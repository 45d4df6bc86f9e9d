//! The simulated kube-apiserver over TLS (issue 22), against this machine's real kubectl,
//! curl and openssl, run inside the hosts' network namespaces: a cluster bootstrapped with the
//! simulated kubeadm (cp1 and a worker), then what real clients see of it: versions, nodes,
//! health, authentication failures, a renewed certificate picked up by the running server, and
//! an API server whose etcd stopped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{TOKEN, bootstrap, ok};

const MINOR: u32 = 31;
const PATCH: u32 = 4;

/// The upstream kubectl of the cluster's minor this machine's image ships, or None (loudly)
/// where it is missing; with `CI` set its absence fails the test.
fn real_kubectl(minor: u32) -> Option<PathBuf> {
    let path = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"));
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("the real kubectl {} is missing", path.display());
    assert!(std::env::var_os("CI").is_none(), "{msg} (CI is set, so this fails instead of skipping)");
    eprintln!("SKIPPED: {msg}");
    None
}

/// A program of this machine run in `host`'s network namespace (its own addresses, the bed's
/// bridge), with `HOME` in `home` (kubectl's discovery cache stays out of the machine's).
fn run_in(bed: &Testbed, host: &str, home: &Path, program: &Path, args: &[&str]) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", bed.host(host).netns))
        .arg("--")
        .arg(program)
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn out(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// Retry `f` until it returns Some, for up to `secs` (the init reconciles every 200 ms; the
/// etcd probe concludes within seconds).
fn wait_for<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < until, "timed out after {secs}s waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The serial of the certificate served at `endpoint`, as openssl's s_client sees it.
fn served_serial(bed: &Testbed, home: &Path, endpoint: &str) -> Option<String> {
    let script = format!(
        "openssl s_client -connect {endpoint} </dev/null 2>/dev/null | openssl x509 -noout -serial | sed 's/^serial=//'"
    );
    let o = run_in(bed, "cp1", home, Path::new("/bin/sh"), &["-c", &script]);
    let serial = out(&o).0.trim().to_string();
    (o.status.success() && !serial.is_empty()).then_some(serial)
}

#[test]
fn the_real_kubectl_talks_tls_to_the_simulated_api_server() {
    let Some(kubectl) = real_kubectl(MINOR) else { return };
    let mut opts = TestbedOptions::new(2);
    opts.control_planes = 1;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let started = Instant::now();
    let endpoint = bootstrap(&bed, MINOR, PATCH);
    eprintln!("bootstrapped in {:?}", started.elapsed());
    // The clients' files (kubectl's cache, the certificates made here), gone with the bed.
    let work = bed.dir().join("clients");
    std::fs::create_dir_all(&work).unwrap();
    let home = work.as_path();
    let pki = bed.host_dir("cp1").join("upper/etc/kubernetes/pki");
    let admin = bed.host_dir("cp1").join("upper/etc/kubernetes/admin.conf");
    let admin = admin.to_str().unwrap();
    let ca = pki.join("ca.crt");
    let ca = ca.to_str().unwrap();
    let curl = Path::new("/usr/bin/curl");
    let kubectl_at = |host: &str, args: &[&str]| {
        let mut all = vec!["--kubeconfig", admin];
        all.extend_from_slice(args);
        run_in(&bed, host, home, &kubectl, &all)
    };

    // The server's version is the manifest's image tag, over TLS verified against the CA.
    let o = wait_for(30, "the API server to answer", || {
        let o = kubectl_at("cp1", &["version", "-o", "json"]);
        o.status.success().then_some(o)
    });
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], format!("v1.{MINOR}.{PATCH}"), "{v}");
    assert_eq!(v["serverVersion"]["minor"], MINOR.to_string());
    assert!(v["clientVersion"]["gitVersion"].as_str().unwrap().starts_with(&format!("v1.{MINOR}.")), "{v}");

    // Nodes, as a server-side Table (NAME STATUS ROLES AGE VERSION), from the worker too.
    for host in ["cp1", "w1"] {
        let o = kubectl_at(host, &["get", "nodes"]);
        let (stdout, stderr) = out(&o);
        assert!(o.status.success(), "{stdout}{stderr}");
        let lines: Vec<Vec<&str>> = stdout.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["NAME", "STATUS", "ROLES", "AGE", "VERSION"], "{stdout}");
        assert_eq!(lines[1][..3], ["cp1", "Ready", "control-plane"], "{stdout}");
        assert_eq!(lines[1][4], format!("v1.{MINOR}.{PATCH}"), "{stdout}");
        assert_eq!(lines[2][..3], ["w1", "Ready", "<none>"], "{stdout}");
        assert_eq!(lines.len(), 3, "{stdout}");
    }
    // Every upstream kubectl this machine has, 1.27 (aggregated discovery v2beta1 first) to
    // 1.33 (v2 first): each falls back to the legacy discovery and gets the Table.
    for minor in 27..=33 {
        let other = PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"));
        if !other.is_file() {
            continue;
        }
        let cache = home.join(format!("cache-{minor}"));
        let cache = cache.to_str().unwrap();
        let o = run_in(&bed, "w1", home, &other, &["--kubeconfig", admin, "--cache-dir", cache, "get", "nodes"]);
        let (stdout, stderr) = out(&o);
        assert!(stdout.starts_with("NAME   STATUS   ROLES           AGE"), "kubectl 1.{minor}: {stdout}{stderr}");
        assert!(stdout.contains("\nw1     Ready    <none>"), "kubectl 1.{minor}: {stdout}{stderr}");
    }
    let o = kubectl_at("cp1", &["get", "nodes", "-o", "wide"]);
    let (stdout, _) = out(&o);
    eprintln!("kubectl get nodes -o wide:\n{stdout}");
    assert!(stdout.starts_with("NAME   STATUS   ROLES           AGE"), "{stdout}");
    assert!(stdout.contains("INTERNAL-IP") && stdout.contains(&bed.host("w1").ip.to_string()), "{stdout}");
    // JSON: the same nodes, the simulator's one truth (Ready True, the kubelet's version).
    let o = kubectl_at("cp1", &["get", "nodes", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{list}");
    for node in items {
        let ready = node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
        assert_eq!(ready["status"], "True", "{node}");
        assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], format!("v1.{MINOR}.{PATCH}"));
    }
    let o = kubectl_at("cp1", &["get", "node", "w1", "-o", "jsonpath={.status.addresses[0].address}"]);
    assert_eq!(out(&o).0, bed.host("w1").ip.to_string());
    let o = kubectl_at("cp1", &["get", "node", "nope"]);
    assert_eq!(out(&o).1.trim(), "Error from server (NotFound): nodes \"nope\" not found");
    let o = kubectl_at("cp1", &["get", "--raw", "/readyz"]);
    assert_eq!(out(&o).0, "ok");

    // curl with the cluster CA: /version answers anonymously (system:public-info-viewer);
    // nodes do not (403: anonymous is authenticated, as system:anonymous, and not allowed).
    let url = format!("https://{endpoint}");
    let o = run_in(&bed, "w1", home, curl, &["-sS", "--cacert", ca, &format!("{url}/version")]);
    let version: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(version["gitVersion"], format!("v1.{MINOR}.{PATCH}"));
    let o = run_in(&bed, "w1", home, curl, &["-sS", "--cacert", ca, &format!("{url}/api/v1/nodes")]);
    let status: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(status["code"], 403, "{status}");
    assert_eq!(
        status["message"],
        "nodes is forbidden: User \"system:anonymous\" cannot list resource \"nodes\" in API group \"\" at the cluster scope"
    );
    // Without the CA, curl refuses the server in its own TLS stack.
    let o = run_in(&bed, "w1", home, curl, &["-sS", &format!("{url}/version")]);
    assert_eq!(o.status.code(), Some(60), "curl's 'peer certificate cannot be authenticated': {:?}", out(&o));

    // A client certificate of another CA (made by openssl): 401 with the real Status, and
    // kubectl's message.
    let sh = Path::new("/bin/sh");
    let foreign = format!(
        "cd {dir} && openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.crt -days 30 -subj /CN=other-ca 2>/dev/null \
         && openssl req -newkey rsa:2048 -nodes -keyout foreign.key -out foreign.csr -subj '/O=kubeadm:cluster-admins/CN=kubernetes-admin' 2>/dev/null \
         && printf 'extendedKeyUsage=clientAuth\\nkeyUsage=digitalSignature,keyEncipherment\\n' > ext \
         && openssl x509 -req -in foreign.csr -CA other-ca.crt -CAkey other-ca.key -CAcreateserial -days 30 -extfile ext -out foreign.crt 2>/dev/null",
        dir = home.display()
    );
    assert!(run_in(&bed, "cp1", home, sh, &["-c", &foreign]).status.success());
    let cert = |name: &str| home.join(name).to_str().unwrap().to_string();
    let with_cert = |crt: &str, key: &str, args: &[&str]| {
        let mut all = vec![
            "--server",
            url.as_str(),
            "--certificate-authority",
            ca,
            "--client-certificate",
            crt,
            "--client-key",
            key,
        ];
        all.extend_from_slice(args);
        run_in(&bed, "cp1", home, &kubectl, &all)
    };
    let o = with_cert(&cert("foreign.crt"), &cert("foreign.key"), &["get", "nodes"]);
    assert!(!o.status.success());
    assert_eq!(out(&o).1.trim(), "error: You must be logged in to the server (Unauthorized)", "{:?}", out(&o));
    let o = run_in(
        &bed,
        "cp1",
        home,
        curl,
        &[
            "-sS",
            "--cacert",
            ca,
            "--cert",
            &cert("foreign.crt"),
            "--key",
            &cert("foreign.key"),
            &format!("{url}/version"),
        ],
    );
    // A bad certificate is no anonymous request: even /version is refused.
    assert_eq!(
        out(&o).0,
        r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
    );

    // Certificates of the cluster's own CA: expired, not yet valid, valid.
    let ca_cert = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    let ca_key = std::fs::read_to_string(pki.join("ca.key")).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    for (name, from, to, works) in [
        ("expired", now - 3 * 86_400, now - 86_400, false),
        ("future", now + 86_400, now + 3 * 86_400, false),
        ("valid", now - 60, now + 86_400, true),
    ] {
        let (crt, key) = kubewright_testbed::sim::client_certificate(
            &ca_cert,
            &ca_key,
            "kubernetes-admin",
            &["kubeadm:cluster-admins"],
            from,
            to,
        )
        .unwrap();
        std::fs::write(home.join(format!("{name}.crt")), crt).unwrap();
        std::fs::write(home.join(format!("{name}.key")), key).unwrap();
        let o =
            with_cert(&cert(&format!("{name}.crt")), &cert(&format!("{name}.key")), &["get", "nodes", "-o", "name"]);
        if works {
            assert_eq!(out(&o).0, "node/cp1\nnode/w1\n", "{:?}", out(&o));
        } else {
            assert_eq!(
                out(&o).1.trim(),
                "error: You must be logged in to the server (Unauthorized)",
                "{name}: {:?}",
                out(&o)
            );
        }
    }

    // A bootstrap token authenticates (kubeadm lets its group get a node, not list them);
    // a wrong one is a 401.
    let bearer = |token: &str, path: &str| {
        let o = run_in(
            &bed,
            "w1",
            home,
            curl,
            &["-sS", "--cacert", ca, "-H", &format!("Authorization: Bearer {token}"), &format!("{url}{path}")],
        );
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()
    };
    assert_eq!(bearer(TOKEN, "/api/v1/nodes/w1")["metadata"]["name"], "w1");
    assert_eq!(bearer(TOKEN, "/api/v1/nodes")["code"], 403);
    assert_eq!(bearer("abcdef.ffffffffffffffff", "/api/v1/nodes/w1")["code"], 401);

    // A renewed serving certificate is served without a restart, as the real server watches its
    // files (k8s.io/apiserver NewDynamicServingContentFromFiles); a restart serves it too.
    let before = served_serial(&bed, home, &endpoint).expect("a served certificate");
    let on_disk = |bed: &Testbed| {
        ok(bed, "cp1", "openssl x509 -in /etc/kubernetes/pki/apiserver.crt -noout -serial | sed 's/^serial=//'")
            .trim()
            .to_string()
    };
    assert_eq!(before, on_disk(&bed));
    ok(&bed, "cp1", "kubeadm certs renew apiserver");
    let renewed = on_disk(&bed);
    assert_ne!(renewed, before, "kubeadm renewed the file");
    let reloaded = wait_for(10, "the renewed certificate served", || {
        served_serial(&bed, home, &endpoint).filter(|s| *s == renewed)
    });
    assert_eq!(reloaded, renewed, "the running server picked up the renewed file");
    ok(&bed, "cp1", "mv /etc/kubernetes/manifests/kube-apiserver.yaml /root/ && sleep 1");
    // A stopped pod closes its listener: connection refused.
    let o = kubectl_at("cp1", &["get", "nodes"]);
    assert!(out(&o).1.contains(&format!("The connection to the server {endpoint} was refused")), "{:?}", out(&o));
    ok(&bed, "cp1", "mv /root/kube-apiserver.yaml /etc/kubernetes/manifests/");
    let served = wait_for(10, "the restarted API server", || served_serial(&bed, home, &endpoint));
    assert_eq!(served, renewed, "the restarted pod serves the renewed certificate");

    // etcd stopped: readyz fails with the real text, API reads time out, /version still works.
    ok(&bed, "cp1", "mv /etc/kubernetes/manifests/etcd.yaml /root/");
    let body = wait_for(30, "readyz to fail", || {
        let o = run_in(&bed, "w1", home, curl, &["-s", "--cacert", ca, "-w", "%{http_code}", &format!("{url}/readyz")]);
        let text = out(&o).0;
        text.ends_with("500").then_some(text)
    });
    eprintln!("readyz without etcd:\n{body}");
    assert!(body.contains("[+]ping ok\n[+]log ok\n[-]etcd failed: reason withheld\n"), "{body}");
    assert!(body.contains("[-]etcd-readiness failed: reason withheld\n"), "{body}");
    assert!(body.ends_with("readyz check failed\n500"), "{body}");
    let o = kubectl_at("cp1", &["get", "nodes"]);
    assert_eq!(
        out(&o).1.trim(),
        "Error from server (Timeout): Timeout: request did not complete within requested timeout - context deadline exceeded",
        "{:?}",
        out(&o)
    );
    let o = kubectl_at("cp1", &["version", "-o", "json"]);
    assert!(o.status.success(), "{:?}", out(&o));
    ok(&bed, "cp1", "mv /root/etcd.yaml /etc/kubernetes/manifests/");
    wait_for(60, "readyz to pass again", || {
        let o = kubectl_at("cp1", &["get", "--raw", "/readyz"]);
        (out(&o).0 == "ok").then_some(())
    });
    eprintln!("whole test: {:?}", started.elapsed());
}
