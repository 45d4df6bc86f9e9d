//! The certificate report of `kubewright certs check`: every certificate kubeadm and the
//! kubelets keep, named as kubeadm names them, with what is wrong with it. Pure: built from
//! facts (the certificates every host sent back, parsed on the bastion) and a clock.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::facts::{ClusterFacts, HostFacts};
use crate::inventory::{Host, Inventory};
use crate::pki::Certificate;

/// An API server that has run this long keeps serving its in-memory loopback certificate,
/// which it made at start for one year: restart it before the year is out (seed digest).
pub const APISERVER_MAX_UPTIME_S: i64 = 330 * 86_400;

/// What a certificate is to kubeadm: one of the items `kubeadm certs renew all` covers, a CA,
/// or the kubelet's own (which the kubelet rotates, not kubeadm).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Kubeadm,
    Ca,
    Kubelet,
    /// The bastion's copy of the admin kubeconfig.
    Bastion,
}

/// kubeadm's name, the path, its CA's name and kind, for every certificate kubewright reads.
/// The eleven kubeadm items are those of `kubeadm certs check-expiration` (super-admin.conf
/// from 1.29).
pub const KNOWN: &[(&str, &str, &str, Kind)] = &[
    ("admin.conf", "/etc/kubernetes/admin.conf", "ca", Kind::Kubeadm),
    ("apiserver", "/etc/kubernetes/pki/apiserver.crt", "ca", Kind::Kubeadm),
    ("apiserver-etcd-client", "/etc/kubernetes/pki/apiserver-etcd-client.crt", "etcd-ca", Kind::Kubeadm),
    ("apiserver-kubelet-client", "/etc/kubernetes/pki/apiserver-kubelet-client.crt", "ca", Kind::Kubeadm),
    ("controller-manager.conf", "/etc/kubernetes/controller-manager.conf", "ca", Kind::Kubeadm),
    ("etcd-healthcheck-client", "/etc/kubernetes/pki/etcd/healthcheck-client.crt", "etcd-ca", Kind::Kubeadm),
    ("etcd-peer", "/etc/kubernetes/pki/etcd/peer.crt", "etcd-ca", Kind::Kubeadm),
    ("etcd-server", "/etc/kubernetes/pki/etcd/server.crt", "etcd-ca", Kind::Kubeadm),
    ("front-proxy-client", "/etc/kubernetes/pki/front-proxy-client.crt", "front-proxy-ca", Kind::Kubeadm),
    ("scheduler.conf", "/etc/kubernetes/scheduler.conf", "ca", Kind::Kubeadm),
    ("super-admin.conf", "/etc/kubernetes/super-admin.conf", "ca", Kind::Kubeadm),
    ("ca", "/etc/kubernetes/pki/ca.crt", "", Kind::Ca),
    ("etcd-ca", "/etc/kubernetes/pki/etcd/ca.crt", "", Kind::Ca),
    ("front-proxy-ca", "/etc/kubernetes/pki/front-proxy-ca.crt", "", Kind::Ca),
    ("kubelet-client", "/var/lib/kubelet/pki/kubelet-client-current.pem", "ca", Kind::Kubelet),
    ("kubelet-serving", "/var/lib/kubelet/pki/kubelet.crt", "", Kind::Kubelet),
];

/// Where a CA named in [`KNOWN`] lives on a host.
fn ca_path(name: &str) -> Option<&'static str> {
    KNOWN.iter().find(|(n, _, _, k)| *n == name && *k == Kind::Ca).map(|(_, p, _, _)| *p)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

impl Severity {
    /// How the text report names it.
    fn label(&self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub node: String,
    /// kubeadm's name (`apiserver`, `admin.conf`), `kubelet-client`, or `admin.conf (bastion)`.
    pub certificate: String,
    pub path: String,
    pub kind: Kind,
    /// Seconds since the epoch.
    pub expires: i64,
    /// Seconds left (negative: expired), by the clock the report was made with.
    pub residual_s: i64,
    /// The CA's name (`ca`, `etcd-ca`, `front-proxy-ca`); empty for a CA or a self-signed one.
    pub authority: String,
    /// kubeadm does not hold the CA's key (an external CA): it cannot renew the certificate.
    pub externally_managed: bool,
    pub problems: Vec<String>,
    pub severity: Severity,
}

/// Thresholds: a certificate with less than `warn_s` left is a warning, less than
/// `critical_s` (or expired, or broken) critical.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    pub warn_s: i64,
    pub critical_s: i64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub cluster: String,
    pub checked_at: i64,
    /// Sorted by expiry, soonest first.
    pub certificates: Vec<Row>,
    /// Problems that are no one certificate's (an API server up too long, kubelet rotation off).
    pub notes: Vec<Note>,
    /// Hosts that could not be read: `host: why`.
    pub unreachable: Vec<String>,
    /// Files where a certificate belongs that are none (critical each), by node and path.
    pub unreadable_certificates: Vec<Unreadable>,
}

/// A file where kubeadm or the kubelet keep a certificate that cannot be read as one.
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    pub node: String,
    pub path: String,
    /// kubeadm's name for the file when it is one of [`KNOWN`]; empty otherwise.
    pub certificate: String,
    /// Why it cannot be read (`not a PEM certificate: ...`, `the file is empty`).
    pub why: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub node: String,
    pub severity: Severity,
    pub message: String,
}

/// Exit codes for monitoring (the Nagios convention).
pub const EXIT_OK: u8 = 0;
pub const EXIT_WARNING: u8 = 1;
pub const EXIT_CRITICAL: u8 = 2;
pub const EXIT_UNREACHABLE: u8 = 3;

impl Report {
    /// 3 when a host could not be read, else 2 for anything critical, 1 for a warning, 0.
    pub fn exit_code(&self) -> u8 {
        let worst = self
            .certificates
            .iter()
            .map(|r| &r.severity)
            .chain(self.notes.iter().map(|n| &n.severity))
            .chain(self.unreadable_certificates.iter().map(|u| &u.severity));
        let worst = worst.fold(Severity::Ok, |a, b| match (&a, b) {
            (Severity::Critical, _) | (_, Severity::Critical) => Severity::Critical,
            (Severity::Warning, _) | (_, Severity::Warning) => Severity::Warning,
            _ => Severity::Ok,
        });
        match (self.unreachable.is_empty(), worst) {
            (false, _) => EXIT_UNREACHABLE,
            (true, Severity::Critical) => EXIT_CRITICAL,
            (true, Severity::Warning) => EXIT_WARNING,
            (true, Severity::Ok) => EXIT_OK,
        }
    }
}

/// The report for `facts` (every host's), the bastion's admin kubeconfig certificate if it has
/// one, at time `now`.
pub fn report(
    inv: &Inventory,
    facts: &ClusterFacts,
    bastion_admin: Option<&Certificate>,
    unreachable: Vec<String>,
    now: i64,
    thresholds: Thresholds,
) -> Report {
    // The API server's SANs are checked against the node IPs the hosts have (an interface's
    // address, `internalAddress: {interface: eth1}`, read from the same facts).
    let resolved = crate::plan::resolve_node_ips(inv, facts);
    let inv = &resolved.inventory;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let mut unreadable_certificates = Vec::new();
    for host in &inv.hosts {
        let Some(f) = facts.host(&host.name) else { continue };
        for (path, why) in &f.unreadable_certificates {
            unreadable_certificates.push(Unreadable {
                node: host.name.clone(),
                path: path.clone(),
                certificate: KNOWN.iter().find(|(_, p, _, _)| p == path).map_or("", |(n, _, _, _)| *n).to_string(),
                why: why.clone(),
                severity: Severity::Critical,
            });
        }
        let rows_before = rows.len();
        for (name, path, authority, kind) in KNOWN {
            // Workers have the cluster CA for trust only; its row belongs to control planes.
            if !host.is_control_plane() && *kind != Kind::Kubelet {
                continue;
            }
            let Some(cert) = f.certificates.get(*path) else { continue };
            let mut problems = chain_problems(f, path, cert, authority);
            if *name == "apiserver" {
                problems.extend(san_problems(inv, host, cert));
            }
            if cert.key_matches == Some(false) {
                problems.push(format!("{} does not belong to this certificate", path.replace(".crt", ".key")));
            }
            // Only kubeadm's own items are renewed with the CA's key; the kubelet rotates its own.
            let externally_managed =
                *kind == Kind::Kubeadm && ca_path(authority).is_some_and(|ca| !f.ca_keys.contains(ca));
            rows.push(row(
                host.name.clone(),
                name,
                path,
                *kind,
                authority,
                externally_managed,
                cert,
                problems,
                now,
                thresholds,
            ));
        }
        // Nothing to check is not "ok": a monitoring job must hear of a control plane that
        // has lost its PKI (or was never installed). Unreadable files are reported already.
        if host.is_control_plane() && rows.len() == rows_before && f.unreadable_certificates.is_empty() {
            notes.push(Note {
                node: host.name.clone(),
                severity: Severity::Critical,
                message: "no kubeadm certificate in /etc/kubernetes/pki: this control plane is not initialized (install it with `kubewright apply`) or its PKI is gone (restore it from /var/lib/kubewright/backups)".into(),
            });
        }
        if host.is_control_plane()
            && let Some(started) = f.apiserver_started
            && now - started > APISERVER_MAX_UPTIME_S
        {
            notes.push(Note {
                node: host.name.clone(),
                severity: Severity::Warning,
                message: format!(
                    "kube-apiserver has run for {} days without a restart: its in-memory loopback certificate lasts one year; restart it (`kubewright certs renew --force` restarts every static pod)",
                    (now - started) / 86_400
                ),
            });
        }
        if let Some(served) = f.apiserver_certificate.as_ref().filter(|c| c.stale()) {
            notes.push(Note {
                node: host.name.clone(),
                severity: Severity::Critical,
                message: format!(
                    "kube-apiserver presents the certificate with serial {}, not its file's ({}): another process may hold its port, or it did not pick up the renewed file; `kubewright certs renew` restarts it",
                    served.served, served.file
                ),
            });
        }
        if f.joined && f.kubelet_rotation == Some(false) {
            notes.push(Note {
                node: host.name.clone(),
                severity: Severity::Warning,
                message: "the kubelet does not rotate its client certificate (rotateCertificates is false in /var/lib/kubelet/config.yaml): it will lose the API server when the certificate expires; set it to true and restart the kubelet".into(),
            });
        }
    }
    // A kubelet certificate the kubelet should have rotated by now means rotation is failing.
    for r in rows.iter().filter(|r| r.certificate == "kubelet-client" && r.severity != Severity::Ok) {
        notes.push(Note {
            node: r.node.clone(),
            severity: r.severity.clone(),
            message: format!("the kubelet's client certificate has {} left although the kubelet renews it at 70-90% of its life: look at the kubelet's log (`journalctl -u kubelet | grep -i certificate`) and for pending CSRs (`kubectl get csr`)", residual_text(r.residual_s)),
        });
    }
    if let Some(cert) = bastion_admin {
        rows.push(row(
            "bastion".into(),
            "admin.conf (bastion)",
            "admin.conf",
            Kind::Bastion,
            "ca",
            false,
            cert,
            Vec::new(),
            now,
            thresholds,
        ));
    }
    rows.sort_by(|a, b| (a.expires, &a.node, &a.certificate).cmp(&(b.expires, &b.node, &b.certificate)));
    Report {
        cluster: inv.cluster.name.clone(),
        checked_at: now,
        certificates: rows,
        notes,
        unreachable,
        unreadable_certificates,
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    node: String,
    name: &str,
    path: &str,
    kind: Kind,
    authority: &str,
    externally_managed: bool,
    cert: &Certificate,
    problems: Vec<String>,
    now: i64,
    t: Thresholds,
) -> Row {
    let residual_s = cert.not_after - now;
    let severity = if !problems.is_empty() || residual_s < t.critical_s {
        Severity::Critical
    } else if residual_s < t.warn_s {
        Severity::Warning
    } else {
        Severity::Ok
    };
    Row {
        node,
        certificate: name.to_string(),
        path: path.to_string(),
        kind,
        expires: cert.not_after,
        residual_s,
        authority: authority.to_string(),
        externally_managed,
        problems,
        severity,
    }
}

/// A leaf must be signed by the CA on the same host that kubeadm uses for it.
fn chain_problems(f: &HostFacts, path: &str, cert: &Certificate, authority: &str) -> Vec<String> {
    let Some(ca) = ca_path(authority) else { return Vec::new() };
    if !f.certificates.contains_key(ca) {
        return match f.unreadable_certificates.get(ca) {
            Some(why) => vec![format!("its CA {ca} cannot be read ({why})")],
            None => vec![format!("its CA {ca} is missing")],
        };
    }
    match cert.signed_by.as_deref() {
        Some(by) if by == ca => Vec::new(),
        Some(by) if by == path => vec![format!("self-signed, not signed by the CA on disk ({ca})")],
        Some(other) => vec![format!("signed by {other}, not by the CA on disk ({ca})")],
        None => vec![format!("not signed by the CA on disk ({ca}): the CA changed, or the certificate was replaced")],
    }
}

/// The API server's certificate must name the control-plane endpoint and the node's IP.
fn san_problems(inv: &Inventory, host: &Host, cert: &Certificate) -> Vec<String> {
    let mut wanted = Vec::new();
    // An endpoint that is the first control plane's interface address, not read (that host
    // could not be): nothing to check it against.
    let endpoint = &inv.cluster.control_plane_endpoint.host;
    let first = inv.first_control_plane();
    if !(first.node_ip_unresolved() && Some(endpoint) == first.node_address().as_ref()) {
        wanted.push(endpoint.clone());
    }
    if let Some(ip) = host.node_ip() {
        wanted.push(ip.to_string());
    }
    wanted
        .into_iter()
        .filter(|w| !cert.dns_names.iter().any(|d| d.eq_ignore_ascii_case(w)) && !cert.ip_addresses.contains(w))
        .map(|w| format!("its SANs do not include {w}: clients reaching the API server there will refuse it"))
        .collect()
}

/// What is wrong after `kubeadm certs renew all` on a control plane whose certificates are
/// `certs` (by path): each item kubeadm renews must now expire after `after` and be signed by
/// its CA on disk.
pub fn renewal_problems(certs: &BTreeMap<String, Certificate>, after: i64) -> Vec<String> {
    let mut problems = Vec::new();
    for (name, path, authority, kind) in KNOWN {
        if *kind != Kind::Kubeadm {
            continue;
        }
        // super-admin.conf exists from 1.29 on clusters initialized by it; absent is fine.
        let Some(cert) = certs.get(*path) else {
            if *name != "super-admin.conf" {
                problems.push(format!("{name} ({path}) is missing"));
            }
            continue;
        };
        if cert.not_after <= after {
            problems.push(format!("{name} still expires {}", expires_text(cert.not_after)));
        }
        if ca_path(authority).is_some_and(|ca| cert.signed_by.as_deref() != Some(ca)) {
            problems.push(format!("{name} is not signed by its CA ({authority})"));
        }
    }
    problems
}

/// Whether `path` is one of the items `kubeadm certs renew all` rewrites.
pub fn renewed_by_kubeadm(path: &str) -> bool {
    KNOWN.iter().any(|(_, p, _, kind)| *p == path && *kind == Kind::Kubeadm)
}

/// The soonest expiry among the items kubeadm renews on a control plane (path, not_after).
pub fn first_to_expire(certs: &BTreeMap<String, Certificate>) -> Option<(&'static str, i64)> {
    KNOWN
        .iter()
        .filter(|(_, _, _, kind)| *kind == Kind::Kubeadm)
        .filter_map(|(name, path, _, _)| certs.get(*path).map(|c| (*name, c.not_after)))
        .min_by_key(|(name, t)| (*t, *name))
}

/// The kubeadm item on this control plane that is no longer valid at the host's clock
/// (expired, or not valid yet), the soonest to end first: what the API server, etcd and their
/// peers already refuse.
pub fn invalid_kubeadm(facts: &HostFacts) -> Option<(&'static str, i64)> {
    let now = facts.host_time as i64;
    KNOWN
        .iter()
        .filter(|(_, _, _, kind)| *kind == Kind::Kubeadm)
        .filter_map(|(name, path, _, _)| facts.certificates.get(*path).map(|c| (*name, c)))
        .filter(|(_, c)| c.not_after <= now || c.not_before > now)
        .map(|(name, c)| (name, c.not_after))
        .min_by_key(|(name, t)| (*t, *name))
}

/// Why this node's kubelet needs a client certificate from kubewright, or None: the one it
/// presents (kubelet.conf's embedded one, else `kubelet-client-current.pem`) has expired or is
/// not valid yet, so the kubelet can neither reach the API server nor rotate it (rotation asks
/// with the current certificate); or it ends within `within_s` and the kubelet does not rotate.
pub fn kubelet_client_problem(facts: &HostFacts, within_s: u64) -> Option<String> {
    if !facts.joined {
        return None;
    }
    let found = ["/etc/kubernetes/kubelet.conf", "/var/lib/kubelet/pki/kubelet-client-current.pem"]
        .into_iter()
        .find_map(|p| facts.certificates.get(p).map(|c| (p, c)));
    let Some((path, cert)) = found else {
        return Some(
            "it has no client certificate to read (none embedded in /etc/kubernetes/kubelet.conf, and /var/lib/kubelet/pki/kubelet-client-current.pem missing or unreadable)".into(),
        );
    };
    let now = facts.host_time as i64;
    if cert.not_after <= now {
        return Some(format!("its client certificate ({path}) expired on {}", expires_text(cert.not_after)));
    }
    if cert.not_before > now {
        return Some(format!("its client certificate ({path}) is not valid before {}", expires_text(cert.not_before)));
    }
    let left = cert.not_after - now;
    (facts.kubelet_rotation == Some(false) && left as u64 <= within_s).then(|| {
        format!(
            "its client certificate ({path}) expires in {} days and the kubelet does not rotate it (rotateCertificates: false)",
            left / 86_400
        )
    })
}

/// Why this node's kubelet needs a new self-signed serving certificate, or None: kubelet.crt
/// (its own: neither `serverTLSBootstrap` nor a `tlsCertFile` is set) has expired or is not
/// valid yet. The kubelet makes
/// one only when there is none, and keeps serving an expired one; clients that verify it
/// (metrics-server, a kube-apiserver with `--kubelet-certificate-authority`) fail.
pub fn kubelet_serving_problem(facts: &HostFacts) -> Option<String> {
    let path = "/var/lib/kubelet/pki/kubelet.crt";
    let cert = facts.certificates.get(path).filter(|_| facts.joined && !facts.kubelet_serving_configured)?;
    let now = facts.host_time as i64;
    if cert.not_after <= now {
        return Some(format!("its serving certificate ({path}) expired on {}", expires_text(cert.not_after)));
    }
    (cert.not_before > now)
        .then(|| format!("its serving certificate ({path}) is not valid before {}", expires_text(cert.not_before)))
}

/// kubeadm's EXPIRES column: `Jan 02, 2006 15:04 UTC`.
pub fn expires_text(unix: i64) -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let (y, m, d) = crate::duration::civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!("{} {d:02}, {y} {:02}:{:02} UTC", MONTHS[(m - 1) as usize], secs / 3600, secs % 3600 / 60)
}

/// kubeadm's RESIDUAL TIME column (apimachinery's `duration.HumanDuration`, what kubeadm
/// prints from 1.31); `<invalid>` once expired, as kubeadm shows it.
pub fn residual_text(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            d => format!("{}y{d}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// The report as kubeadm's table with a NODE column, then problems and notes.
pub fn render_text(report: &Report) -> String {
    let header = ["NODE", "CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY", "EXTERNALLY MANAGED"];
    let mut table: Vec<[String; 6]> = vec![header.map(str::to_string)];
    for r in &report.certificates {
        table.push([
            r.node.clone(),
            r.certificate.clone(),
            expires_text(r.expires),
            residual_text(r.residual_s),
            r.authority.clone(),
            if r.externally_managed { "yes".into() } else { "no".into() },
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|c| table.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &table {
        let line: Vec<String> = r.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    let flagged: Vec<&Row> = report.certificates.iter().filter(|r| r.severity != Severity::Ok).collect();
    if !flagged.is_empty() || !report.unreadable_certificates.is_empty() {
        out.push('\n');
    }
    for u in &report.unreadable_certificates {
        let what = match u.certificate.as_str() {
            "" => u.path.clone(),
            name => format!("{name} ({})", u.path),
        };
        out.push_str(&format!(
            "{}: {} {what} cannot be read as a certificate: {}\n  - kubeadm and the components read PEM only: put the PEM certificate there (`openssl x509 -inform der` converts a DER one) or move the file out of the directory\n",
            u.severity.label(),
            u.node,
            u.why
        ));
    }
    for r in flagged {
        let state = if r.residual_s < 0 {
            format!("expired {} ago", residual_text(-r.residual_s))
        } else {
            format!("{} left", residual_text(r.residual_s))
        };
        out.push_str(&format!("{}: {} {} ({}): {state}\n", r.severity.label(), r.node, r.certificate, r.path));
        for p in &r.problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    for n in &report.notes {
        out.push_str(&format!("{}: {}: {}\n", n.severity.label(), n.node, n.message));
    }
    for u in &report.unreachable {
        out.push_str(&format!("unreachable: {u}\n"));
    }
    out
}

/// The report in Prometheus' text exposition format, for node_exporter's textfile collector.
pub fn render_prometheus(report: &Report) -> String {
    let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, samples: Vec<(BTreeMap<&str, String>, String)>| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for (labels, value) in samples {
            let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
            out.push_str(&format!("{name}{{{}}} {value}\n", labels.join(",")));
        }
    };
    let cert_labels = |r: &Row| {
        BTreeMap::from([
            ("cluster", report.cluster.clone()),
            ("node", r.node.clone()),
            ("cert", r.certificate.clone()),
            ("authority", r.authority.clone()),
        ])
    };
    metric(
        "kubewright_cert_expiry_timestamp_seconds",
        "When the certificate expires, in seconds since the epoch.",
        report.certificates.iter().map(|r| (cert_labels(r), r.expires.to_string())).collect(),
    );
    metric(
        "kubewright_cert_problems",
        "Problems found with the certificate (chain, SANs, key); 0 when none.",
        report.certificates.iter().map(|r| (cert_labels(r), r.problems.len().to_string())).collect(),
    );
    metric(
        "kubewright_cert_unreadable",
        "A file where a certificate belongs that cannot be read as one (1 for each).",
        report
            .unreadable_certificates
            .iter()
            .map(|u| {
                let labels = BTreeMap::from([
                    ("cluster", report.cluster.clone()),
                    ("node", u.node.clone()),
                    ("path", u.path.clone()),
                ]);
                (labels, "1".to_string())
            })
            .collect(),
    );
    metric(
        "kubewright_cert_check_timestamp_seconds",
        "When kubewright last checked the cluster's certificates.",
        vec![(BTreeMap::from([("cluster", report.cluster.clone())]), report.checked_at.to_string())],
    );
    metric(
        "kubewright_cert_check_unreachable_hosts",
        "Hosts whose certificates could not be read in the last check.",
        vec![(BTreeMap::from([("cluster", report.cluster.clone())]), report.unreachable.len().to_string())],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_time_is_printed_as_kubeadm_does() {
        assert_eq!(residual_text(364 * 86_400 + 3600), "364d");
        assert_eq!(residual_text(3649 * 86_400), "9y");
        assert_eq!(residual_text((3 * 365 + 10) * 86_400), "3y10d");
        assert_eq!(residual_text(10 * 365 * 86_400), "10y");
        assert_eq!(residual_text(5 * 86_400 + 7 * 3600), "5d7h");
        assert_eq!(residual_text(20 * 3600), "20h");
        assert_eq!(residual_text(90), "90s");
        assert_eq!(residual_text(-5), "<invalid>");
    }

    #[test]
    fn expiry_is_printed_as_kubeadm_does() {
        assert_eq!(expires_text(1_795_000_000), "Nov 18, 2026 11:06 UTC");
        assert_eq!(expires_text(0), "Jan 01, 1970 00:00 UTC");
        assert_eq!(expires_text(951_782_400), "Feb 29, 2000 00:00 UTC");
    }
}
