//! `kubewright certs check` on the test bed: the rows kubeadm would list (plus the node, the
//! kubelets' and the bastion's), exit codes for monitoring, the Prometheus textfile, broken
//! certificates flagged, unreachable hosts reported without hiding the others.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::{Command, Output};

use kubewright_testbed::{Testbed, TestbedOptions};

mod common;
use common::{on_bed as kubewright, output_text};

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

/// Two control planes and a worker installed `days` ago (the simulator's clock set back for
/// the install): their leaf certificates have 365 - `days` days left.
fn installed_days_ago(days: i64) -> Option<(Testbed, tempfile::TempDir)> {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 2;
    let bed = Testbed::up_or_skip(opts)?;
    let state = tempfile::tempdir().unwrap();
    bed.advance_clock(-days * 86_400).unwrap();
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));
    Some((bed, state))
}

/// Five days left is critical with the default thresholds (warn at renewBefore, 30d; critical at 7d).
#[test]
fn five_days_left_is_critical_by_default() {
    let Some((bed, state)) = installed_days_ago(360) else { return };
    let o = kubewright(&bed, state.path(), &["certs", "check", "-o", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", output_text(&o));
    let apiserver = rows(&json(&o), "cp1")["apiserver"].clone();
    assert_eq!(apiserver["severity"], "critical", "{apiserver}");
    assert!((4..=5).contains(&(apiserver["residual_s"].as_i64().unwrap() / 86_400)), "{apiserver}");
}

#[test]
fn certificates_are_checked_with_monitoring_exit_codes() {
    // The simulator's clock stays behind: to the hosts' containers the API servers have run
    // for the 345 days.
    let Some((bed, state)) = installed_days_ago(345) else { return };

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

/// The next command on `host` starting with `prefix` fails once, printing `stderr`.
fn fail_once(bed: &Testbed, host: &str, prefix: &str, stderr: &str) {
    use kubewright_testbed::faults::{Fault, FaultAction};
    let action = FaultAction::FailOnce { code: 1, stderr: format!("{stderr}\n") };
    bed.add_fault(host, Fault { command_prefix: prefix.into(), action, fired: false }).unwrap();
}

/// The apiserver.crt expiry of `host` as `certs check` reads it.
fn apiserver_expiry(bed: &Testbed, state: &std::path::Path, host: &str) -> i64 {
    let o = kubewright(bed, state, &["certs", "check", "-o", "json", "--warn", "1d", "--critical", "1d"]);
    rows(&json(&o), host)["apiserver"]["expires"].as_i64().unwrap()
}

#[test]
fn renewal_goes_one_control_plane_at_a_time_restores_a_failed_one_and_is_a_no_op_when_nothing_is_close() {
    let Some((bed, state)) = installed_days_ago(345) else { return };
    // ... and the 345 days have passed: the simulator's clock is the hosts' and the bastion's again.
    bed.advance_clock(345 * 86_400).unwrap();
    let before = apiserver_expiry(&bed, state.path(), "cp1");

    // 20 days left, renewBefore 30d: both control planes are renewed, cp1 then cp2.
    let renewed = kubewright(&bed, state.path(), &["certs", "renew", "--yes", "-o", "json"]);
    assert_eq!(renewed.status.code(), Some(0), "{}", output_text(&renewed));
    let events = common::json_events(&renewed);
    let order: Vec<(String, String)> = events
        .iter()
        .filter(|e| {
            e["step"] == "renew-certificates" && (e["event"] == "host-started" || e["event"] == "host-finished")
        })
        .map(|e| (e["event"].as_str().unwrap().to_string(), e["host"].as_str().unwrap().to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = order.iter().map(|(e, h)| (e.as_str(), h.as_str())).collect();
    assert_eq!(
        pairs,
        [("host-started", "cp1"), ("host-finished", "cp1"), ("host-started", "cp2"), ("host-finished", "cp2")],
        "one control plane at a time"
    );
    for cp in ["cp1", "cp2"] {
        let after = apiserver_expiry(&bed, state.path(), cp);
        assert!(after - before > 340 * 86_400, "{cp}: renewed for about a year ({before} -> {after})");
        let backups = bed.exec(cp, "ls /var/lib/kubewright/backups").unwrap();
        assert!(String::from_utf8_lossy(&backups.stdout).contains("pki-2"), "a backup on {cp}");
        let root = bed.exec(cp, "cmp /etc/kubernetes/admin.conf /root/.kube/config").unwrap();
        assert!(root.status.success(), "{cp}: /root/.kube/config refreshed");
    }
    let cluster = bed.cluster_state();
    let saved = state.path().join(&cluster.cluster_name);
    for cp in ["cp1", "cp2"] {
        let copy = saved.join(format!("backups/{cp}/pki.tar.gz"));
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&copy).unwrap().permissions()) & 0o777;
        assert_eq!(mode, 0o600, "{}", copy.display());
        let listing = Command::new("tar").arg("-tzf").arg(&copy).output().unwrap();
        assert!(String::from_utf8_lossy(&listing.stdout).contains("pki/apiserver.key"), "the backup holds the PKI");
    }
    // The bastion's kubeconfig carries the renewed client certificate.
    let check = kubewright(&bed, state.path(), &["certs", "check", "-o", "json"]);
    let bastion = rows(&json(&check), "bastion")["admin.conf (bastion)"].clone();
    assert!(bastion["residual_s"].as_i64().unwrap() > 360 * 86_400, "{bastion}");
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "healthy after the renewal");

    // Nothing is close any more: a no-op, without a new backup.
    let noop = kubewright(&bed, state.path(), &["certs", "renew", "--yes"]);
    assert_eq!(noop.status.code(), Some(0), "{}", output_text(&noop));
    assert!(output_text(&noop).contains("nothing to do"), "{}", output_text(&noop));
    let count = |cp: &str| {
        String::from_utf8_lossy(&bed.exec(cp, "ls /var/lib/kubewright/backups").unwrap().stdout).lines().count()
    };
    assert_eq!(count("cp1"), 2, "one backup and its `latest` link");

    // kubeadm itself fails on cp2: the run stops there, cp2 untouched, cp1 renewed.
    let cp2_before = apiserver_expiry(&bed, state.path(), "cp2");
    std::thread::sleep(std::time::Duration::from_secs(1));
    fail_once(
        &bed,
        "cp2",
        "kubeadm certs renew",
        "error: failed to renew certificates: open /etc/kubernetes/pki/apiserver.crt: read-only file system",
    );
    let cp1_before = apiserver_expiry(&bed, state.path(), "cp1");
    let failed = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes", "-o", "json"]);
    assert_eq!(failed.status.code(), Some(1), "{}", output_text(&failed));
    let report = common::json_events(&failed).pop().unwrap();
    assert_eq!(
        (report["failures"][0]["host"].as_str(), report["failures"][0]["exit_code"].as_i64()),
        (Some("cp2"), Some(1)),
        "{report}"
    );
    assert!(apiserver_expiry(&bed, state.path(), "cp1") > cp1_before, "cp1 renewed");
    assert_eq!(apiserver_expiry(&bed, state.path(), "cp2"), cp2_before, "cp2 as it was");
    // Nothing is close now (the run was forced): the unfinished run is closed rather than left
    // to make a later renewal skip cp1 on the journal's word.
    let closed = kubewright(&bed, state.path(), &["certs", "renew", "--yes"]);
    assert_eq!(closed.status.code(), Some(0), "{}", output_text(&closed));
    assert!(output_text(&closed).contains("has nothing left to do: closed"), "{}", output_text(&closed));
    let finish = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert_eq!(finish.status.code(), Some(0), "{}", output_text(&finish));
    assert!(!output_text(&finish).contains("finished by an earlier run"), "{}", output_text(&finish));

    // Forced, with the static pod restart failing on cp2 after kubeadm renewed its certificates:
    // cp2 gets its backup back (the certificates before this run), cp1 stays renewed, the run
    // stops, and the next one finishes cp2.
    let cp1_before = apiserver_expiry(&bed, state.path(), "cp1");
    let cp2_before = apiserver_expiry(&bed, state.path(), "cp2");
    std::thread::sleep(std::time::Duration::from_secs(1));
    // (The restart's own listing: the facts' etcd health asks crictl for etcd's container.)
    fail_once(
        &bed,
        "cp2",
        "crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=kube-apiserver",
        "time=\"2026-12-01T10:00:00Z\" level=fatal msg=\"validate service connection: rpc error: code = Unavailable\"",
    );
    let failed = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes", "-o", "json"]);
    assert_eq!(failed.status.code(), Some(1), "{}", output_text(&failed));
    let report = common::json_events(&failed).pop().unwrap();
    assert_eq!(report["failures"][0]["host"], "cp2", "{report}");
    assert_eq!(report["failures"][0]["step"], "renew-certificates");
    assert!(
        report["failures"][0]["message"].as_str().unwrap().contains("put back as it was before the step"),
        "{report}"
    );
    assert!(apiserver_expiry(&bed, state.path(), "cp1") > cp1_before, "cp1 renewed");
    assert_eq!(apiserver_expiry(&bed, state.path(), "cp2"), cp2_before, "cp2 has its certificates from before the run");
    let cluster = bed.cluster_state();
    assert!(cluster.nodes.keys().all(|n| cluster.node_ready(n)), "and every node is healthy");
    let again = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("finished by an earlier run"),
        "cp1 is not renewed twice: {}",
        output_text(&again)
    );
    assert!(apiserver_expiry(&bed, state.path(), "cp2") > cp2_before, "cp2 renewed");

    // A restart that did not take: the runtime loses cp1's API server, whose process keeps its
    // port (and, as the real one, picks up the renewed serving certificate), while the files,
    // the health checks and the node all look renewed. The new container that cannot run tells:
    // the renewal stops at cp1 and puts it back; once the orphan is killed, the same command
    // renews cp1.
    let cp1_before = apiserver_expiry(&bed, state.path(), "cp1");
    std::thread::sleep(std::time::Duration::from_secs(1));
    bed.orphan_apiserver_on_next_stop("cp1").unwrap();
    let failed = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes", "-o", "json"]);
    assert_eq!(failed.status.code(), Some(1), "{}", output_text(&failed));
    let report = common::json_events(&failed).pop().unwrap();
    assert_eq!(
        (report["failures"][0]["host"].as_str(), report["failures"][0]["step"].as_str()),
        (Some("cp1"), Some("renew-certificates")),
        "{report}"
    );
    // The restart is what failed; the rollback put the files back (its own restart only warns).
    let failure = &report["failures"][0];
    assert!(
        failure["stderr_tail"]
            .to_string()
            .contains("kube-apiserver has no new container that stays running, 60s after its manifest came back")
            && failure["message"].as_str().unwrap_or_default().contains("put back as it was before the step"),
        "{report}"
    );
    assert_eq!(apiserver_expiry(&bed, state.path(), "cp1"), cp1_before, "cp1 has its certificates from before the run");
    bed.kill_orphaned_apiserver("cp1").unwrap();
    let again = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));
    assert!(apiserver_expiry(&bed, state.path(), "cp1") > cp1_before, "cp1 renewed");
}

/// `certs schedule` as the tests run it: a state root (`KUBEWRIGHT_STATE_DIR`) whose name has a
/// space, a per cent sign, a dollar and a double quote (word splitting, systemd's specifiers,
/// ExecStart's variables, quoting), units written into a directory of the test's, and a
/// `systemctl` first in PATH that records its arguments: a test cannot touch this machine's
/// systemd.
struct ScheduleSetup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    units: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl ScheduleSetup {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("state 100% $USER \"q\"");
        std::fs::create_dir(&root).unwrap();
        let (units, bin) = (dir.path().join("units"), dir.path().join("bin"));
        std::fs::create_dir(&units).unwrap();
        std::fs::create_dir(&bin).unwrap();
        let log = bin.join("systemctl.log");
        let fake = format!("#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\n", log.display());
        std::fs::write(bin.join("systemctl"), fake).unwrap();
        std::fs::set_permissions(bin.join("systemctl"), std::fs::Permissions::from_mode(0o755)).unwrap();
        let root = root.canonicalize().unwrap();
        ScheduleSetup { _dir: dir, root, units, bin }
    }

    fn schedule(&self, args: &[&str]) -> Output {
        let path = format!("{}:{}", self.bin.display(), std::env::var("PATH").unwrap_or_default());
        Command::new(env!("CARGO_BIN_EXE_kubewright"))
            .args(["certs", "schedule", "-i", "inventories/example.yaml", "--unit-dir"])
            .arg(&self.units)
            .args(args)
            .env("KUBEWRIGHT_STATE_DIR", &self.root)
            .env("PATH", path)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    }

    /// Each `systemctl` call, its arguments joined by spaces.
    fn systemctl_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin.join("systemctl.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn unit(&self, suffix: &str) -> std::path::PathBuf {
        self.units.join(format!("kubewright-certs-renew-prod-eu1.{suffix}"))
    }
}

/// (name, uid, home) of the user running the tests, from the user database.
fn passwd_entry(uid: &str) -> (String, String, String) {
    let o = Command::new("getent").args(["passwd", uid]).output().unwrap();
    let line = String::from_utf8(o.stdout).unwrap();
    let fields: Vec<&str> = line.trim_end().split(':').collect();
    assert!(fields.len() == 7, "getent passwd {uid}: {line:?}");
    (fields[0].to_string(), fields[2].to_string(), fields[5].to_string())
}

fn running_user() -> (String, String, String) {
    let o = Command::new("id").arg("-u").output().unwrap();
    passwd_entry(String::from_utf8(o.stdout).unwrap().trim())
}

/// The scheduled renewal runs as the user who scheduled it, with that user's HOME (russh's
/// `~/.ssh` and the inventory's `~/` paths), in the cluster's state directory, with the same
/// state directory as interactive runs; `--install` writes the units, then reloads systemd and
/// enables and starts the timer (`--no-enable`: only the files). systemd accepts the units; the
/// cron line, run by `sh` as cron runs it, gives the job the same environment.
#[test]
fn the_scheduled_renewal_runs_as_its_user_in_the_state_directory_and_install_starts_its_timer() {
    let setup = ScheduleSetup::new();
    let (user, _, home) = running_user();
    let state = setup.root.join("prod-eu1");

    let written = setup.schedule(&["--install", "--no-enable", "--within", "21d"]);
    assert!(written.status.success(), "{}", output_text(&written));
    assert!(setup.unit("service").exists() && setup.unit("timer").exists(), "{}", output_text(&written));
    assert_eq!(setup.systemctl_calls(), Vec::<String>::new(), "--no-enable only writes the files");
    assert!(
        output_text(&written)
            .contains("systemctl daemon-reload && systemctl enable --now kubewright-certs-renew-prod-eu1.timer"),
        "says what is left to do: {}",
        output_text(&written)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&state).unwrap().permissions()) & 0o777;
    assert_eq!(mode, 0o700, "--install makes the state directory the unit works in, private");

    let o = setup.schedule(&["--install", "--print", "--within", "21d", "-o", "json"]);
    assert!(o.status.success(), "{}", output_text(&o));
    assert_eq!(
        setup.systemctl_calls(),
        ["daemon-reload", "enable --now kubewright-certs-renew-prod-eu1.timer"],
        "the timer is enabled and started, never the service itself"
    );
    let doc = json(&o);
    assert_eq!((doc["unit"].as_str(), doc["enabled"].as_bool()), (Some("kubewright-certs-renew-prod-eu1"), Some(true)));
    let service = std::fs::read_to_string(setup.unit("service")).unwrap();
    let timer = std::fs::read_to_string(setup.unit("timer")).unwrap();
    assert_eq!(service, doc["service"].as_str().unwrap());
    let lines: Vec<&str> = service.lines().collect();
    let root = setup.root.display().to_string();
    // systemd.exec(5): WorkingDirectory= is a path taken as written, after specifier expansion
    // (`%%`); Environment= is unquoted as systemd.syntax(7) says (`\"`), with specifiers, and
    // `$` has no special meaning there.
    for expected in [
        format!("User={user}"),
        format!("WorkingDirectory={}", state.display().to_string().replace('%', "%%")),
        format!("Environment=\"HOME={}\"", home.replace('%', "%%").replace('"', "\\\"")),
        format!("Environment=\"KUBEWRIGHT_STATE_DIR={}\"", root.replace('%', "%%").replace('"', "\\\"")),
    ] {
        assert!(lines.contains(&expected.as_str()), "{expected:?} in\n{service}");
    }
    assert!(
        service.contains(&format!("ExecStart=\"{}\" \"certs\" \"renew\"", env!("CARGO_BIN_EXE_kubewright"))),
        "{service}"
    );
    assert!(service.contains("\"--if-expiring-within\" \"21d\" \"--yes\" \"--output\" \"json\""), "{service}");
    assert!(timer.contains("RandomizedDelaySec=1h\nPersistent=true"), "{timer}");

    // The cron line, with cron's `\%` unescaping, run by sh with a recorder in place of
    // kubewright: where it runs, with which HOME and state directory, and where its output goes.
    let cron = doc["cron"].as_str().unwrap();
    let fields: Vec<&str> = cron.splitn(6, ' ').collect();
    assert!(fields[..2].iter().all(|f| f.parse::<u32>().is_ok()) && fields[2..5] == ["*", "*", "*"], "{cron}");
    let recorder = setup.bin.join("record");
    std::fs::write(
        &recorder,
        "#!/bin/sh\n{ pwd; echo \"$HOME\"; echo \"$KUBEWRIGHT_STATE_DIR\"; printf '%s\\n' \"$@\"; } > \"$0.out\"\necho renewed\n",
    )
    .unwrap();
    std::fs::set_permissions(&recorder, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let command =
        fields[5].replace("\\%", "%").replacen(env!("CARGO_BIN_EXE_kubewright"), &recorder.display().to_string(), 1);
    let ran = Command::new("sh")
        .args(["-c", &command])
        .env_remove("HOME")
        .env_remove("KUBEWRIGHT_STATE_DIR")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(ran.status.success(), "{command}: {}", output_text(&ran));
    let recorded = std::fs::read_to_string(setup.bin.join("record.out")).unwrap();
    let inventory = format!("{}/inventories/example.yaml", env!("CARGO_MANIFEST_DIR"));
    let expected = [state.display().to_string(), home.clone(), root.clone()]
        .into_iter()
        .chain(
            ["certs", "renew", "-i", &inventory, "--if-expiring-within", "21d", "--yes", "--output", "json"]
                .map(String::from),
        )
        .collect::<Vec<_>>();
    assert_eq!(recorded.lines().collect::<Vec<_>>(), expected, "{command}");
    assert_eq!(std::fs::read_to_string(state.join("certs-renew.log")).unwrap(), "renewed\n");

    if !common::tool_available("systemd-analyze", "--version", "systemd", "verify the units with systemd-analyze") {
        return;
    }
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(setup.unit("service"))
        .arg(setup.unit("timer"))
        .output()
        .unwrap();
    assert!(verify.status.success() && verify.stderr.is_empty(), "{}", output_text(&verify));
}

/// A state directory someone else owns is refused before anything is written or enabled: the job
/// would run as the user scheduling it and follow whatever the owner puts there (review item
/// 11). Needs root, to give the directory away.
#[test]
fn a_state_directory_the_user_does_not_own_is_refused_before_anything_is_written() {
    let setup = ScheduleSetup::new();
    let (user, uid, _) = running_user();
    if uid != "0" {
        assert!(std::env::var_os("CI").is_none(), "CI runs the tests as root");
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIPPED: not root, so this test cannot give a state directory to another user");
        }
        return;
    }
    let (owner, _, _) = passwd_entry("65534");
    let state = setup.root.join("prod-eu1");
    std::fs::create_dir(&state).unwrap();
    std::os::unix::fs::chown(&state, Some(65534), Some(65534)).unwrap();

    for args in [&["--install"][..], &["--print"][..]] {
        let o = setup.schedule(args);
        let text = output_text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            text.contains(&format!("{} is owned by {owner}, not by {user}", state.display())),
            "names the directory, its owner and the user: {text}"
        );
        assert!(text.contains("help:"), "{text}");
    }
    assert_eq!(std::fs::read_dir(&setup.units).unwrap().count(), 0, "no unit written");
    assert_eq!(setup.systemctl_calls(), Vec::<String>::new(), "systemctl not run");
}

/// `certs init-ca` makes the CAs on the bastion; the install puts them on the first control
/// plane before `kubeadm init`, the other control plane gets them through the uploaded
/// certificates, and every certificate of the cluster is signed by them.
#[test]
fn an_install_with_the_bastions_own_ca_ends_with_the_cluster_using_it() {
    let mut opts = TestbedOptions::new(3);
    opts.control_planes = 2;
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let state = tempfile::tempdir().unwrap();
    let made = kubewright(&bed, state.path(), &["certs", "init-ca", "-o", "json"]);
    assert!(made.status.success(), "{}", output_text(&made));
    let pin = json(&made)["ca_cert_hash"].as_str().unwrap().to_string();
    let again = kubewright(&bed, state.path(), &["certs", "init-ca"]);
    assert_eq!(again.status.code(), Some(2), "never overwritten without --force: {}", output_text(&again));
    let cluster_name = std::fs::read_to_string(bed.inventory_path())
        .unwrap()
        .lines()
        .find_map(|l| l.trim().strip_prefix("name: tb").map(|s| format!("tb{s}")))
        .unwrap();
    let pki = state.path().join(&cluster_name).join("pki");
    let mode = |p: &std::path::Path| {
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(p).unwrap().permissions()) & 0o777
    };
    assert_eq!((mode(&pki), mode(&pki.join("ca.key")), mode(&pki.join("ca.crt"))), (0o700, 0o600, 0o644));

    let plan = kubewright(&bed, state.path(), &["plan"]);
    let shown = output_text(&plan);
    assert!(shown.contains("write /etc/kubernetes/pki/ca.key (0600 root:root, holds secrets)"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "no key in the plan: {shown}");
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));

    let ours = std::fs::read_to_string(pki.join("ca.crt")).unwrap();
    for cp in ["cp1", "cp2"] {
        let theirs = bed.exec(cp, "cat /etc/kubernetes/pki/ca.crt").unwrap();
        assert_eq!(String::from_utf8_lossy(&theirs.stdout), ours, "{cp} uses the bastion's CA");
        for file in ["etcd/ca.crt", "front-proxy-ca.crt", "sa.pub"] {
            let theirs = bed.exec(cp, &format!("cat /etc/kubernetes/pki/{file}")).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&theirs.stdout),
                std::fs::read_to_string(pki.join(file)).unwrap(),
                "{cp}: {file}"
            );
        }
    }
    assert_eq!(bed.cluster_state().ca_pin, pin, "joins pinned the bastion's CA");
    let check = kubewright(&bed, state.path(), &["certs", "check", "-o", "json"]);
    assert_eq!(check.status.code(), Some(0), "{}", output_text(&check));
    let report = json(&check);
    assert!(
        report["certificates"].as_array().unwrap().iter().all(|r| r["problems"].as_array().unwrap().is_empty()),
        "every certificate signed by the CA on disk: {report}"
    );
}

/// The IDs of the running containers on `host` that crictl lists for `filter`.
fn container_ids(bed: &Testbed, host: &str, filter: &str) -> Vec<String> {
    let o = bed.exec(host, &format!("crictl ps -q {filter}")).unwrap();
    assert!(o.status.success(), "crictl ps {filter}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(str::to_string).collect()
}

const STATIC_ETCD: &str = "--label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=etcd";

/// Issue 18: the static pod restart of a renewal. Review item 14: a renewal that fails before
/// `kubeadm certs renew` (here: the bastion cannot write the backup's copy) changes nothing on
/// the host; its rollback restarted the static pods all the same, a control-plane blip on every
/// timer run while the bastion's disk is full. Review item 4: kube-system's static pods are
/// found by the kubelet's labels; a workload whose name holds `etcd` (an in-cluster
/// etcd-operator on a control plane that also runs workloads) matched `crictl ps --name etcd`,
/// so the restart waited 120 s for it to stop, and failed.
#[test]
fn issue_18_the_static_pods_restart_only_once_a_renewal_began_and_only_kube_systems() {
    let Some((bed, state)) = common::installed(1, 1) else { return };
    let operator = kubewright_testbed::sim::Workload {
        namespace: "default".into(),
        pod: "etcd-operator-5f6d9c7b4-x2x8q".into(),
        container: "etcd-operator".into(),
        image: "quay.io/coreos/etcd-operator:v0.9.4".into(),
    };
    bed.run_workload_container("cp1", operator).unwrap();
    let workload = "--label io.kubernetes.pod.namespace=default";
    let (etcd_before, operator_before) =
        (container_ids(&bed, "cp1", STATIC_ETCD), container_ids(&bed, "cp1", workload));
    assert_eq!((etcd_before.len(), operator_before.len()), (1, 1), "{etcd_before:?} {operator_before:?}");
    assert_eq!(container_ids(&bed, "cp1", "--name etcd").len(), 2, "crictl's --name is a pattern: both match");
    let expires = apiserver_expiry(&bed, state.path(), "cp1");

    // Where the backup's copy goes on the bastion, a file: the fetch fails, before any renewal.
    let backups = state.path().join(bed.cluster_state().cluster_name).join("backups");
    std::fs::write(&backups, "in the way\n").unwrap();
    let failed = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes", "-o", "json"]);
    assert_eq!(failed.status.code(), Some(1), "{}", output_text(&failed));
    let report = common::json_events(&failed).pop().unwrap();
    let failure = &report["failures"][0];
    assert_eq!(
        (failure["host"].as_str(), failure["step"].as_str()),
        (Some("cp1"), Some("renew-certificates")),
        "{report}"
    );
    let message = failure["message"].as_str().unwrap();
    assert!(message.contains(&format!("cannot write {}", backups.join("cp1/pki.tar.gz").display())), "{message}");
    assert!(message.contains("the host was put back as it was before the step"), "{message}");
    assert_eq!(container_ids(&bed, "cp1", STATIC_ETCD), etcd_before, "the static pods were not restarted");
    assert_eq!(apiserver_expiry(&bed, state.path(), "cp1"), expires, "nothing renewed");

    std::fs::remove_file(&backups).unwrap();
    let started = std::time::Instant::now();
    let renewed = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert!(renewed.status.success(), "{}", output_text(&renewed));
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "took {:?}", started.elapsed());
    // The renewal waited until the new member answered healthy; under a loaded CI machine the
    // server may still be restarted by its kubelet right after, so look for a while.
    let restarted = common::eventually(std::time::Duration::from_secs(30), || {
        let now = container_ids(&bed, "cp1", STATIC_ETCD);
        now.len() == 1 && now != etcd_before
    });
    assert!(
        restarted,
        "etcd was not restarted: {etcd_before:?} -> {:?}\n{}",
        container_ids(&bed, "cp1", STATIC_ETCD),
        bed.etcd_log_tail("cp1", 40)
    );
    assert_eq!(container_ids(&bed, "cp1", workload), operator_before, "the workload is not the renewal's business");
    assert!(apiserver_expiry(&bed, state.path(), "cp1") > expires, "renewed");
}

/// Issue 18 (run-safety review item 15): a file under /etc/kubernetes/pki that is no PEM
/// certificate (here a CA copied in DER) is a broken certificate in `certs check`. It made the
/// host's facts unreadable, so every job refused the host, the renewal included.
#[test]
fn issue_18_a_file_that_is_no_certificate_is_reported_broken_and_blocks_no_job() {
    let Some((bed, state)) = common::installed(1, 1) else { return };
    let der = "openssl x509 -in /etc/kubernetes/pki/ca.crt -outform der -out /etc/kubernetes/pki/corp-ca.crt";
    assert!(bed.exec("cp1", der).unwrap().status.success());

    let o = kubewright(&bed, state.path(), &["certs", "check", "-o", "json"]);
    assert_eq!(o.status.code(), Some(2), "critical: {}", output_text(&o));
    let report = json(&o);
    let broken = report["unreadable_certificates"].as_array().unwrap();
    assert_eq!(broken.len(), 1, "{report}");
    assert_eq!(
        (broken[0]["node"].as_str(), broken[0]["path"].as_str(), broken[0]["severity"].as_str()),
        (Some("cp1"), Some("/etc/kubernetes/pki/corp-ca.crt"), Some("critical")),
        "{report}"
    );
    assert!(broken[0]["why"].as_str().unwrap().starts_with("not a PEM certificate"), "{report}");
    assert_eq!(rows(&report, "cp1")["apiserver"]["severity"], "ok", "the other certificates are still checked");
    let text = output_text(&kubewright(&bed, state.path(), &["certs", "check"]));
    assert!(
        text.contains(
            "critical: cp1 /etc/kubernetes/pki/corp-ca.crt cannot be read as a certificate: not a PEM certificate"
        ),
        "{text}"
    );

    let plan = kubewright(&bed, state.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "the installed cluster plans clean: {}", output_text(&plan));
    let renewed = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert!(renewed.status.success(), "{}", output_text(&renewed));
}

/// kubeadm 1.32's package no longer depends on cri-tools, and the renewal restarts the static
/// pods through crictl: kubewright installs cri-tools itself, at the cluster's minor.
#[test]
fn a_1_32_cluster_installed_by_kubewright_has_crictl_on_every_node_and_a_forced_renewal_passes() {
    let mut opts = TestbedOptions::new(2);
    opts.kubernetes_version = "1.32.9".into();
    let Some(bed) = Testbed::up_or_skip(opts) else { return };
    let state = tempfile::tempdir().unwrap();
    let o = kubewright(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));
    for host in ["cp1", "w1"] {
        let o = bed.exec(host, "command -v crictl && dpkg-query -W -f='${Version}' cri-tools").unwrap();
        assert!(o.status.success(), "{host}: {o:?}");
        assert!(String::from_utf8_lossy(&o.stdout).ends_with("\n1.32.0-1.1"), "{host}: {o:?}");
    }
    let renewed = kubewright(&bed, state.path(), &["certs", "renew", "--force", "--yes"]);
    assert!(renewed.status.success(), "{}", output_text(&renewed));
}

/// The upstream kubectl of `minor` this machine's image ships, or None (loudly) where it is
/// missing; with `CI` set its absence fails the test.
fn real_kubectl(minor: u32) -> Option<std::path::PathBuf> {
    let path = std::path::PathBuf::from(format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"));
    if path.is_file() {
        return Some(path);
    }
    let msg = format!("the real kubectl {} is missing", path.display());
    assert!(std::env::var_os("CI").is_none(), "{msg} (CI is set, so this fails instead of skipping)");
    #[allow(clippy::print_stderr)] // the loud skip the test bed's tests also print
    {
        eprintln!("SKIPPED: {msg}");
    }
    None
}

/// The real kubectl from `host`'s network namespace (the bastion's view of the bed), with its
/// discovery cache in `home`: its exit status, stdout and stderr.
fn real_kubectl_in(
    bed: &Testbed,
    host: &str,
    home: &std::path::Path,
    kubectl: &std::path::Path,
    args: &[&str],
) -> Output {
    Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", bed.host(host).netns))
        .arg("--")
        .arg(kubectl)
        .args(args)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

/// The serial a server on `host` presents at `address` (openssl's s_client there, with
/// `client` as `-cert PREFIX.crt -key PREFIX.key` where it asks for one) and the serial of the
/// certificate file `file` on that host.
fn served_and_file_serials(
    bed: &Testbed,
    host: &str,
    address: &str,
    client: Option<&str>,
    file: &str,
) -> (String, String) {
    let cert = client.map(|p| format!("-cert {p}.crt -key {p}.key")).unwrap_or_default();
    let script = format!(
        "openssl s_client -connect {address} {cert} </dev/null 2>/dev/null | openssl x509 -noout -serial; openssl x509 -noout -serial -in {file}"
    );
    let o = bed.exec(host, &script).unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut lines = text.lines().filter_map(|l| l.strip_prefix("serial=")).map(str::to_string);
    let served = lines.next().unwrap_or_default();
    (served, lines.next().unwrap_or_else(|| panic!("{host}: no serial for {file}: {o:?}")))
}

/// Every leaf certificate of a 3-control-plane, 2-worker cluster expired a day ago (the bed
/// re-signs them with their own keys and CAs; the servers present them): the real etcd has no
/// quorum, the real kubectl refuses the API server, `certs check` exits 2. The timer's command,
/// `certs renew --if-expiring-within 30d --yes`, brings it back in one run: every control
/// plane's files first, then the static pods one at a time, then the kubelets' new client
/// certificates through their TLS bootstrap and new serving certificates; afterwards the real
/// kubectl lists five Ready nodes with the bastion's and root's kubeconfigs, and every server
/// presents its renewed file.
#[test]
fn a_cluster_whose_certificates_all_expired_comes_back_with_the_timers_renewal() {
    let Some(kubectl) = real_kubectl(31) else { return };
    let Some((bed, state)) = common::installed(5, 3) else { return };
    let home = tempfile::tempdir().unwrap();
    let cluster = bed.cluster_state().cluster_name;
    let bastion_conf = state.path().join(&cluster).join("admin.conf");
    let bastion = bastion_conf.to_str().unwrap();
    let ok =
        real_kubectl_in(&bed, "cp1", home.path(), &kubectl, &["--kubeconfig", bastion, "get", "nodes", "--no-headers"]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout).matches(" Ready ").count(), 5, "{ok:?}");

    bed.expire_certs(std::time::Duration::from_secs(86_400), std::slice::from_ref(&bastion_conf)).unwrap();
    let check = kubewright(&bed, state.path(), &["certs", "check"]);
    assert_eq!(check.status.code(), Some(2), "{}", output_text(&check));
    let refused = real_kubectl_in(&bed, "cp1", home.path(), &kubectl, &["--kubeconfig", bastion, "get", "nodes"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && stderr.contains("x509: certificate has expired or is not yet valid"),
        "the real kubectl refuses the expired serving certificate: {refused:?}"
    );
    let insecure = ["--kubeconfig", bastion, "--insecure-skip-tls-verify", "get", "nodes"];
    let unauthorized = real_kubectl_in(&bed, "cp1", home.path(), &kubectl, &insecure);
    assert!(
        String::from_utf8_lossy(&unauthorized.stderr)
            .contains("error: You must be logged in to the server (Unauthorized)"),
        "the API server refuses the expired admin certificate: {unauthorized:?}"
    );
    assert!(
        common::eventually(std::time::Duration::from_secs(20), || bed
            .etcd_log_tail("cp1", 50)
            .contains("bad certificate")),
        "the real etcd members refuse each other's expired certificates: {}",
        bed.etcd_log_tail("cp1", 20)
    );

    let renewed = kubewright(&bed, state.path(), &["certs", "renew", "--if-expiring-within", "30d", "--yes"]);
    assert_eq!(renewed.status.code(), Some(0), "{}", output_text(&renewed));
    let text = output_text(&renewed);
    for said in [
        "certificates are no longer valid on cp1",
        "restart-static-pods cp3: done",
        "recover-kubelet-certificates w2: done",
    ] {
        assert!(text.contains(said), "the renewal says `{said}`: {text}");
    }

    let root_conf = bed.host_dir("cp1").join("root/.kube/config");
    for conf in [bastion, root_conf.to_str().unwrap()] {
        let nodes = real_kubectl_in(
            &bed,
            "cp1",
            home.path(),
            &kubectl,
            &["--kubeconfig", conf, "get", "nodes", "--no-headers"],
        );
        let listed = String::from_utf8_lossy(&nodes.stdout).into_owned();
        assert!(nodes.status.success(), "{conf}: {nodes:?}");
        assert_eq!(
            listed.lines().filter(|l| l.split_whitespace().nth(1) == Some("Ready")).count(),
            5,
            "{conf}: {listed}"
        );
    }
    for cp in ["cp1", "cp2", "cp3"] {
        let ip = bed.host(cp).ip;
        let (served, file) =
            served_and_file_serials(&bed, cp, &format!("{ip}:6443"), None, "/etc/kubernetes/pki/apiserver.crt");
        assert_eq!(served, file, "{cp}: the API server presents its renewed certificate");
        let (served, file) = served_and_file_serials(
            &bed,
            cp,
            "127.0.0.1:2379",
            Some("/etc/kubernetes/pki/etcd/healthcheck-client"),
            "/etc/kubernetes/pki/etcd/server.crt",
        );
        assert_eq!(served, file, "{cp}: etcd presents its renewed certificate");
    }
    let check = kubewright(&bed, state.path(), &["certs", "check"]);
    assert_eq!(check.status.code(), Some(0), "every certificate is good again: {}", output_text(&check));
}
