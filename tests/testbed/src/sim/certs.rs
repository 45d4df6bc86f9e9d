//! `kubeadm certs check-expiration` and `kubeadm certs renew` (kubeadm-behaviour.md §4).

use std::fmt::Write as _;

use anyhow::Context as _;
use std::path::{Path, PathBuf};

use super::Outcome;
use super::cluster::now_unix;
use super::kubeadm::{PKI, V};
use super::pki::{self, Leaf, Pair};

/// A renewable item: its name, the CA that signs it, where it lives, and its long name.
struct Item {
    name: &'static str,
    ca: &'static str,
    long_name: &'static str,
}

/// In name order, as kubeadm lists them (certlist.go, renewal/manager.go).
const ITEMS: &[Item] = &[
    Item {
        name: "admin.conf",
        ca: "ca",
        long_name: "certificate embedded in the kubeconfig file for the admin to use and for kubeadm itself",
    },
    Item { name: "apiserver", ca: "ca", long_name: "certificate for serving the Kubernetes API" },
    Item { name: "apiserver-etcd-client", ca: "etcd-ca", long_name: "certificate the apiserver uses to access etcd" },
    Item {
        name: "apiserver-kubelet-client",
        ca: "ca",
        long_name: "certificate for the API server to connect to kubelet",
    },
    Item {
        name: "controller-manager.conf",
        ca: "ca",
        long_name: "certificate embedded in the kubeconfig file for the controller manager to use",
    },
    Item {
        name: "etcd-healthcheck-client",
        ca: "etcd-ca",
        long_name: "certificate for liveness probes to healthcheck etcd",
    },
    Item { name: "etcd-peer", ca: "etcd-ca", long_name: "certificate for etcd nodes to communicate with each other" },
    Item { name: "etcd-server", ca: "etcd-ca", long_name: "certificate for serving etcd" },
    Item { name: "front-proxy-client", ca: "front-proxy-ca", long_name: "certificate for the front proxy client" },
    Item {
        name: "scheduler.conf",
        ca: "ca",
        long_name: "certificate embedded in the kubeconfig file for the scheduler manager to use",
    },
    Item {
        name: "super-admin.conf",
        ca: "ca",
        long_name: "certificate embedded in the kubeconfig file for the super-admin",
    },
];
const CAS: &[(&str, &str)] = &[("ca", "ca"), ("etcd-ca", "etcd/ca"), ("front-proxy-ca", "front-proxy-ca")];

/// Where an item's certificate is: a PKI file, or a kubeconfig's embedded client certificate.
fn location(name: &str) -> (PathBuf, bool) {
    if name.ends_with(".conf") {
        (Path::new("/etc/kubernetes").join(name), true)
    } else {
        // etcd-server → etcd/server.crt; apiserver-etcd-client stays at the top level.
        let file = match name.strip_prefix("etcd-") {
            Some(rest) => format!("etcd/{rest}"),
            None => name.to_string(),
        };
        (Path::new(PKI).join(format!("{file}.crt")), false)
    }
}

fn read_cert(name: &str) -> Option<String> {
    let (path, kubeconfig) = location(name);
    let text = std::fs::read_to_string(path).ok()?;
    if kubeconfig { pki::kubeconfig_client_cert(&text) } else { Some(text) }
}

fn ca_path(ca: &str) -> &'static str {
    CAS.iter().find(|(n, _)| *n == ca).map(|(_, p)| *p).unwrap_or("ca")
}

pub fn certs(v: V, args: &[String]) -> anyhow::Result<Outcome> {
    match args.first().map(String::as_str) {
        Some("check-expiration") => check(v, args),
        Some("renew") => renew(v, &args[1..]),
        _ => Ok(Outcome::fail(1, "kubeadm certs: the simulator knows check-expiration and renew\n")),
    }
}

/// The preamble by release (§4.1): 1.29–1.31 "from the cluster...", 1.32+ the ConfigMap wording;
/// where the cluster's kubeadm-config cannot be read with admin.conf (the API down, or its
/// certificates expired), kubeadm goes on with its defaults and says so (certs.go
/// `getInternalCfg`: renewal must work on a broken cluster).
fn preamble(v: V, phase: &str) -> String {
    let reading = if v.minor <= 31 {
        format!(
            "[{phase}] Reading configuration from the cluster...\n[{phase}] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n"
        )
    } else {
        format!(
            "[{phase}] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n[{phase}] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n"
        )
    };
    if super::kubectl::reachable_with("/etc/kubernetes/admin.conf") {
        format!("{reading}\n")
    } else {
        format!(
            "{reading}[{phase}] Error reading configuration from the Cluster. Falling back to default configuration\n\n"
        )
    }
}

/// RESIDUAL TIME: `ShortHumanDuration` up to 1.30, `HumanDuration` from 1.31 (§4.1, k8s.io/apimachinery duration.go).
pub fn residual(v: V, seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    let (m, h, d) = (seconds / 60, seconds / 3600, seconds / 86_400);
    if v.minor <= 30 {
        return match () {
            _ if seconds < 60 => format!("{seconds}s"),
            _ if m < 60 => format!("{m}m"),
            _ if h < 24 => format!("{h}h"),
            _ if d < 365 => format!("{d}d"),
            _ => format!("{}y", d / 365),
        };
    }
    match () {
        _ if seconds < 120 => format!("{seconds}s"),
        _ if m < 10 => {
            let s = seconds % 60;
            if s == 0 { format!("{m}m") } else { format!("{m}m{s}s") }
        }
        _ if h < 3 => format!("{m}m"),
        _ if h < 8 => {
            let mm = m % 60;
            if mm == 0 { format!("{h}h") } else { format!("{h}h{mm}m") }
        }
        _ if h < 48 => format!("{h}h"),
        _ if d < 8 => {
            let hh = h % 24;
            if hh == 0 { format!("{d}d") } else { format!("{d}d{hh}h") }
        }
        _ if d < 365 * 2 => format!("{d}d"),
        _ if d < 365 * 8 => {
            let (y, dd) = (d / 365, d % 365);
            if dd == 0 { format!("{y}y") } else { format!("{y}y{dd}d") }
        }
        _ => format!("{}y", d / 365),
    }
}

fn expires_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .map(|t| {
            const MONTHS: [&str; 12] =
                ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
            format!(
                "{} {:02}, {} {:02}:{:02} UTC",
                MONTHS[t.month() as usize - 1],
                t.day(),
                t.year(),
                t.hour(),
                t.minute()
            )
        })
        .unwrap_or_default()
}

/// Go's text/tabwriter with (minwidth 10, tabwidth 4, padding 3, ' ', 0).
fn tabwrite(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; cols];
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                widths[i] = widths[i].max(cell.chars().count() + 3).max(10);
            }
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                let _ = write!(out, "{cell:<w$}", w = widths[i]);
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

fn check(v: V, args: &[String]) -> anyhow::Result<Outcome> {
    let now = now_unix();
    let json = args.windows(2).any(|w| (w[0] == "-o" || w[0] == "--output") && w[1] == "json")
        || args.iter().any(|a| a == "-o=json" || a == "--output=json");
    if json && v.minor < 30 {
        return Ok(Outcome::fail(1, "Error: unknown shorthand flag: 'o' in -o\n"));
    }
    let items: Vec<(&Item, Option<i64>)> =
        ITEMS.iter().map(|i| (i, read_cert(i.name).and_then(|c| pki::not_after(&c).ok()))).collect();
    let cas: Vec<(&str, Option<i64>)> = CAS
        .iter()
        .map(|(n, p)| {
            (
                *n,
                std::fs::read_to_string(Path::new(PKI).join(format!("{p}.crt")))
                    .ok()
                    .and_then(|c| pki::not_after(&c).ok()),
            )
        })
        .collect();
    let external = |ca: &str| !Path::new(PKI).join(format!("{}.key", ca_path(ca))).exists();
    if json {
        let rfc = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        };
        let certs: Vec<serde_json::Value> = items
            .iter()
            .map(|(i, exp)| match exp {
                Some(t) => serde_json::json!({"name": i.name, "expirationDate": rfc(*t), "residualTime": (t - now).max(0), "externallyManaged": external(i.ca), "caName": i.ca, "missing": false}),
                None => serde_json::json!({"name": i.name, "expirationDate": null, "residualTime": 0, "externallyManaged": false, "caName": i.ca, "missing": true}),
            })
            .collect();
        let authorities: Vec<serde_json::Value> = cas
            .iter()
            .map(|(n, exp)| match exp {
                Some(t) => serde_json::json!({"name": n, "expirationDate": rfc(*t), "residualTime": (t - now).max(0), "externallyManaged": external(n), "missing": false}),
                None => serde_json::json!({"name": n, "expirationDate": null, "residualTime": 0, "externallyManaged": false, "missing": true}),
            })
            .collect();
        let doc = serde_json::json!({"kind": "CertificateExpirationInfo", "apiVersion": "output.kubeadm.k8s.io/v1alpha3", "certificates": certs, "certificateAuthorities": authorities});
        return Ok(Outcome::ok(format!("{}\n", serde_json::to_string_pretty(&doc)?)));
    }
    let yes_no = |b: bool| format!("{:<8}", if b { "yes" } else { "no" });
    let mut rows = vec![vec![
        "CERTIFICATE".into(),
        "EXPIRES".into(),
        "RESIDUAL TIME".into(),
        "CERTIFICATE AUTHORITY".into(),
        "EXTERNALLY MANAGED".into(),
    ]];
    for (i, exp) in &items {
        rows.push(match exp {
            Some(t) => vec![i.name.into(), expires_text(*t), residual(v, t - now), i.ca.into(), yes_no(external(i.ca))],
            None => vec![format!("!MISSING! {}", i.name), String::new(), String::new(), String::new(), String::new()],
        });
    }
    let mut out = preamble(v, "check-expiration");
    out.push_str(&tabwrite(&rows));
    out.push('\n');
    let mut rows = vec![vec![
        "CERTIFICATE AUTHORITY".into(),
        "EXPIRES".into(),
        "RESIDUAL TIME".into(),
        "EXTERNALLY MANAGED".into(),
    ]];
    for (n, exp) in &cas {
        rows.push(match exp {
            Some(t) => vec![n.to_string(), expires_text(*t), residual(v, t - now), yes_no(external(n))],
            None => vec![format!("!MISSING! {n}"), String::new(), String::new(), String::new()],
        });
    }
    out.push_str(&tabwrite(&rows));
    Ok(Outcome::ok(out))
}

/// Renew every certificate `kubeadm certs renew all` covers, without its output (what
/// `kubeadm upgrade` does with `--certificate-renewal=true`).
pub fn renew_all_quietly() -> anyhow::Result<()> {
    let out = renew(V { minor: 31, patch: 0 }, &["all".to_string()])?;
    if out.code != 0 {
        anyhow::bail!("certificate renewal failed: {}", out.stderr);
    }
    Ok(())
}

fn renew(v: V, args: &[String]) -> anyhow::Result<Outcome> {
    let Some(which) = args.iter().find(|a| !a.starts_with('-')) else {
        return Ok(Outcome::fail(
            1,
            "Error: missing subcommand; \"kubeadm certs renew\" requires a certificate name or all\n",
        ));
    };
    let selected: Vec<&Item> = if which == "all" {
        ITEMS.iter().collect()
    } else {
        match ITEMS.iter().find(|i| i.name == which) {
            Some(i) => vec![i],
            None => {
                return Ok(Outcome::fail(
                    1,
                    format!("Error: unknown command \"{which}\" for \"kubeadm certs renew\"\n"),
                ));
            }
        }
    };
    let now = now_unix();
    let mut out = preamble(v, "renew");
    for item in selected {
        let Some(cert) = read_cert(item.name) else {
            let _ = writeln!(out, "MISSING! {}", item.long_name);
            continue;
        };
        let ca_file = ca_path(item.ca);
        let ca_dir = Path::new(PKI);
        if !ca_dir.join(format!("{ca_file}.key")).exists() {
            let _ = writeln!(out, "Detected external {}, {} can't be renewed", item.ca, item.long_name);
            continue;
        }
        let ca = Pair {
            cert: pki::read(&ca_dir.join(format!("{ca_file}.crt")))?,
            key: pki::read(&ca_dir.join(format!("{ca_file}.key")))?,
        };
        // Keep CN, O, SANs and usages of the existing certificate (renewal certToConfig).
        let id = pki::identity(&cert)?;
        let org_refs: Vec<&str> = id.orgs.iter().map(String::as_str).collect();
        let leaf = Leaf {
            cn: &id.cn,
            orgs: &org_refs,
            dns: id.dns.clone(),
            ips: id.ips.clone(),
            server: id.server,
            client: id.client,
            ecdsa: false,
        };
        let pair = pki::new_leaf(&ca, &leaf, now)?;
        let (path, kubeconfig) = location(item.name);
        if kubeconfig {
            let text = pki::read(&path)?;
            pki::write(&path, &replace_client_certificate(&text, &pair.cert, Some(&pair.key)), 0o600)?;
        } else {
            pki::write(&path, &pair.cert, 0o644)?;
            pki::write(&path.with_extension("key"), &pair.key, 0o600)?;
        }
        let _ = writeln!(out, "{} renewed", item.long_name);
    }
    if which == "all" {
        out.push_str("\nDone renewing certificates. You must restart the kube-apiserver, kube-controller-manager, kube-scheduler and etcd, so that they can use the new certificates.\n");
    }
    Ok(Outcome::ok(out))
}

/// `kubewright-testbed expire-certs` on this host: every leaf certificate kubeadm and the
/// kubelet keep here (kubeadm's eleven items, an embedded kubelet.conf certificate, the
/// kubelet's client and serving certificates) signed again with its own key and CA, valid for
/// a year up to `ago` seconds before now; then the running servers serve them, as if they had
/// been there long ago: the API server reloads its serving certificate by itself (as the real
/// one does), etcd is restarted (it reads its files at every handshake, but keeps the
/// connections it has). The CAs are left as they are.
pub fn expire_all(ago: i64) -> anyhow::Result<Outcome> {
    let not_after = now_unix() - ago;
    let not_before = not_after - pki::YEAR;
    let mut out = String::new();
    let ca_dir = Path::new(PKI);
    let ca_of = |ca: &str| -> anyhow::Result<Pair> {
        let file = ca_path(ca);
        Ok(Pair {
            cert: pki::read(&ca_dir.join(format!("{file}.crt")))?,
            key: pki::read(&ca_dir.join(format!("{file}.key")))?,
        })
    };
    for item in ITEMS {
        let (path, kubeconfig) = location(item.name);
        if !path.exists() {
            continue;
        }
        let ca = ca_of(item.ca).with_context(|| format!("{}: its CA", path.display()))?;
        if kubeconfig {
            expire_kubeconfig(&path, &ca, not_before, not_after)?;
        } else {
            let key_path = path.with_extension("key");
            let cert = pki::resign(&ca, &pki::read(&path)?, &pki::read(&key_path)?, not_before, not_after)?;
            pki::write(&path, &cert, 0o644)?;
        }
        let _ = writeln!(out, "{}", path.display());
    }
    // The kubelet's client certificate is the cluster CA's; a worker has no key for it here,
    // the simulator's controller manager has (the cluster's shared files).
    let cluster_ca = || ca_of("ca").or_else(|_| super::kubeadm::ca_for_signing());
    let kubelet_conf = Path::new("/etc/kubernetes/kubelet.conf");
    if std::fs::read_to_string(kubelet_conf).is_ok_and(|t| pki::kubeconfig_client_cert(&t).is_some()) {
        expire_kubeconfig(kubelet_conf, &cluster_ca()?, not_before, not_after)?;
        let _ = writeln!(out, "{}", kubelet_conf.display());
    }
    let current = Path::new(super::kubelet::CLIENT_CURRENT);
    if let Ok(file) = std::fs::canonicalize(current) {
        let text = pki::read(&file)?;
        let (cert, key) =
            split_cert_and_key(&text).with_context(|| format!("{}: no certificate and key", file.display()))?;
        let cert = pki::resign(&cluster_ca()?, cert, key, not_before, not_after)?;
        pki::write(&file, &format!("{cert}{key}"), 0o600)?;
        let _ = writeln!(out, "{} ({})", current.display(), file.display());
    }
    let serving = Path::new("/var/lib/kubelet/pki/kubelet.crt");
    if serving.exists() {
        let key = pki::read(&serving.with_extension("key"))?;
        let cert = pki::resign_self_signed(&pki::read(serving)?, &key, not_before, not_after)?;
        pki::write(serving, &cert, 0o644)?;
        let _ = writeln!(out, "{}", serving.display());
    }
    if Path::new(super::apiserver::MANIFEST).exists() {
        out.push_str("kube-apiserver: picks up its changed serving certificate by itself\n");
    }
    if let Some(pid) = super::etcd::pod_status().pid {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        out.push_str("etcd: restarted with its certificate files as they are now\n");
    }
    Ok(Outcome::ok(out))
}

/// [`expire_all`] for a kubeconfig on the bed's machine (the bastion's copy of admin.conf),
/// with the cluster CA of the bed's shared files in `cluster_dir`.
pub fn expire_kubeconfig_on_machine(path: &Path, cluster_dir: &Path, ago: i64) -> anyhow::Result<()> {
    let offset = super::cluster::read_cluster_in(cluster_dir).clock_offset_seconds;
    let not_after = super::cluster::now_unix_with(offset) - ago;
    let ca = Pair { cert: pki::read(&cluster_dir.join("ca.crt"))?, key: pki::read(&cluster_dir.join("ca.key"))? };
    expire_kubeconfig(path, &ca, not_after - pki::YEAR, not_after)
}

/// A kubeconfig whose embedded client certificate is signed again ([`expire_all`]).
fn expire_kubeconfig(path: &Path, ca: &Pair, not_before: i64, not_after: i64) -> anyhow::Result<()> {
    let text = pki::read(path)?;
    let cert =
        pki::kubeconfig_client_cert(&text).with_context(|| format!("{}: no client certificate", path.display()))?;
    let key = pki::kubeconfig_client_key(&text).with_context(|| format!("{}: no client key", path.display()))?;
    let renewed = pki::resign(ca, &cert, &key, not_before, not_after)?;
    pki::write(path, &replace_client_certificate(&text, &renewed, None), 0o600)
}

/// `text` (a kubeconfig) with its embedded client certificate (and key, where given) replaced.
fn replace_client_certificate(text: &str, cert: &str, key: Option<&str>) -> String {
    let replaced: Vec<String> = text
        .lines()
        .map(|l| {
            let indent = &l[..l.len() - l.trim_start().len()];
            if l.trim_start().starts_with("client-certificate-data:") {
                format!("{indent}client-certificate-data: {}", pki::b64(cert))
            } else if let Some(key) = key
                && l.trim_start().starts_with("client-key-data:")
            {
                format!("{indent}client-key-data: {}", pki::b64(key))
            } else {
                l.to_string()
            }
        })
        .collect();
    format!("{}\n", replaced.join("\n"))
}

/// The certificate and the key of a PEM file holding both (`kubelet-client-current.pem`).
pub(crate) fn split_cert_and_key(text: &str) -> Option<(&str, &str)> {
    let end = "-----END CERTIFICATE-----";
    let at = text.find(end)? + end.len();
    let (cert, key) = text.split_at(at);
    let key = key.trim_start_matches('\n');
    key.contains("PRIVATE KEY-----").then_some((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_formats_by_release() {
        let v30 = V { minor: 30, patch: 0 };
        let v31 = V { minor: 31, patch: 0 };
        let day = 86_400;
        assert_eq!(residual(v30, 364 * day), "364d");
        assert_eq!(residual(v31, 364 * day), "364d");
        assert_eq!(residual(v30, (6 * 365 + 362) * day), "6y");
        assert_eq!(residual(v31, (6 * 365 + 362) * day), "6y362d");
        assert_eq!(residual(v31, 9 * 365 * day + 100), "9y");
        assert_eq!(residual(v31, -5), "<invalid>");
        assert_eq!(residual(v31, 3 * day + 5 * 3600), "3d5h");
    }

    #[test]
    fn tabwriter_pads_like_go() {
        let t = tabwrite(&[vec!["CA".into(), "X".into()], vec!["front-proxy-ca".into(), "Y".into()]]);
        assert_eq!(
            t,
            format!(
                "CA{}X
front-proxy-ca{}Y
",
                " ".repeat(15),
                " ".repeat(3)
            )
        );
    }
}
