//! Reading a host's facts in one command: [`script`] prints every fact in a section of its
//! own, [`parse`] turns that output into [`HostFacts`]. Both are pure; running the script is
//! the caller's (an I/O edge's) business. The script only reads.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use super::{EtcdHealth, HOSTS_MARK, HostFacts, HostsEntry};
use crate::script::{Script, quote};
use crate::version::Version;

/// Starts each section of the output: `@@kubewright-fact NAME@@` (NAME may carry an argument).
const MARK: &str = "@@kubewright-fact ";

/// The packages whose installed version and hold state matter.
pub const PACKAGES: &[&str] =
    &["kubeadm", "kubelet", "kubectl", "containerd", "containerd.io", "cri-tools", "conntrack"];

/// Firewall services whose rules can drop pod traffic (see the seed digest: CoreDNS "no route
/// to host" behind a REJECT-all iptables service).
pub const FIREWALLS: &[&str] = &["firewalld", "iptables", "nftables", "ufw"];
/// Services the cluster needs running, whose state the facts report.
pub const SERVICES: &[&str] = &["containerd", "kubelet"];

/// Prints `path<TAB>base64 PEM` for every certificate kubeadm and the kubelet keep.
const CERTIFICATES: &str = r#"for f in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt /var/lib/kubelet/pki/kubelet.crt; do test -f "$f" && printf '%s\t%s\n' "$f" "$(base64 < "$f" | tr -d '\n')"; done
for f in /etc/kubernetes/admin.conf /etc/kubernetes/super-admin.conf /etc/kubernetes/controller-manager.conf /etc/kubernetes/scheduler.conf /etc/kubernetes/kubelet.conf; do test -f "$f" && c=$(sed -n 's/^[[:space:]]*client-certificate-data:[[:space:]]*//p' "$f") && test -n "$c" && printf '%s\t%s\n' "$f" "$c"; done
f=/var/lib/kubelet/pki/kubelet-client-current.pem; test -f "$f" && printf '%s\t%s\n' "$f" "$(sed -n '/-----BEGIN CERTIFICATE-----/,/-----END CERTIFICATE-----/p' "$f" | base64 | tr -d '\n')"
true"#;

/// Prints `file SERIAL` and `served SERIAL` (empty when the server does not answer in 5 s) for
/// the kube-apiserver of the manifest, at its advertise address and secure port.
const APISERVER_CERTIFICATE: &str = r#"m=/etc/kubernetes/manifests/kube-apiserver.yaml
if [ -f "$m" ] && command -v openssl >/dev/null 2>&1; then
  a=$(sed -n 's/^[[:space:]]*- --advertise-address=//p' "$m" | head -n 1)
  p=$(sed -n 's/^[[:space:]]*- --secure-port=//p' "$m" | head -n 1)
  f=$(sed -n 's/^[[:space:]]*- --tls-cert-file=//p' "$m" | head -n 1)
  case "$a" in *:*) a="[$a]" ;; esac
  if [ -n "$a" ] && [ -n "$f" ]; then
    echo "file $(openssl x509 -noout -serial -in "$f" 2>/dev/null)"
    echo "served $(timeout 5 openssl s_client -connect "$a:${p:-6443}" </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null)"
  fi
fi
true"#;

/// Prints `CERT SHA256` for each certificate of kubeadm's PKI whose key is beside it: the
/// SHA-256 of the SubjectPublicKeyInfo (DER) derived from the key, for the parser to compare
/// with the certificate's own (the key never leaves the host; its public half may). One openssl
/// per key, none per certificate: on a control plane that is 10 starts of OpenSSL 3 rather than
/// 20, each some 15 ms of CPU, in every job's facts. Hosts without openssl or sha256sum print
/// nothing: unknown, not a mismatch (and the sections after this one are still printed: the
/// whole facts script is one shell). A key openssl cannot read hashes empty input, left out.
const KEY_PAIRS: &str = r#"if command -v openssl >/dev/null 2>&1 && command -v sha256sum >/dev/null 2>&1; then
for c in /etc/kubernetes/pki/*.crt /etc/kubernetes/pki/etcd/*.crt; do k=${c%.crt}.key; test -f "$c" && test -f "$k" || continue; h=$(openssl pkey -pubout -outform DER -in "$k" 2>/dev/null | sha256sum); h=${h%% *}; test "$h" = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 || echo "$c $h"; done
fi
true"#;

/// The script that prints the facts of a host kubewright manages `paths` on.
pub fn script(paths: &[String]) -> Script {
    let mut text = String::from("LC_ALL=C; export LC_ALL\n");
    let mut section = |name: &str, body: &str| {
        text.push_str(&format!("echo {}\n{body}\n", quote(&format!("{MARK}{name}@@"))));
    };
    section("clock", "date +%s");
    section("os-release", "cat /etc/os-release 2>/dev/null || true");
    section("arch", "uname -m");
    section("hostname", "hostname");
    section("swaps", "cat /proc/swaps 2>/dev/null || true");
    section("fstab", "cat /etc/fstab 2>/dev/null || true");
    section("modules", "lsmod 2>/dev/null || true");
    let packages: Vec<String> = PACKAGES.iter().map(|p| quote(p)).collect();
    section(
        "packages",
        &format!(
            "dpkg-query -W -f='${{Package}}\\t${{Version}}\\t${{Status}}\\n' {} 2>/dev/null || true",
            packages.join(" ")
        ),
    );
    section("macs", "for i in /sys/class/net/*; do test \"${i##*/}\" = lo || cat \"$i/address\" 2>/dev/null; done");
    section("addresses", "ip -o -4 addr show 2>/dev/null || true");
    section("links", "ip -o link show 2>/dev/null || true");
    section("product-uuid", "cat /sys/class/dmi/id/product_uuid 2>/dev/null || true");
    section("cpus", "nproc 2>/dev/null || true");
    section("meminfo", "grep '^MemTotal:' /proc/meminfo 2>/dev/null || true");
    section("listening", "ss -Hltn 2>/dev/null || true");
    let firewalls: Vec<String> = FIREWALLS.iter().map(|u| quote(u)).collect();
    section(
        "firewalls",
        &format!(
            "for u in {}; do systemctl is-active --quiet \"$u\" >/dev/null 2>&1 && echo \"$u\"; done; true",
            firewalls.join(" ")
        ),
    );
    let services: Vec<String> = SERVICES.iter().map(|u| quote(u)).collect();
    section(
        "services",
        &format!(
            "for u in {}; do systemctl is-active --quiet \"$u\" >/dev/null 2>&1 && echo \"$u\"; done; true",
            services.join(" ")
        ),
    );
    section("kubelet-conf", "test -e /etc/kubernetes/kubelet.conf && echo yes || echo no");
    section("admin-conf", "test -e /etc/kubernetes/admin.conf && echo yes || echo no");
    section("apt-keyring", "test -s /etc/apt/keyrings/kubernetes-apt-keyring.gpg && echo yes || echo no");
    // The live value of every key kubewright's sysctl file sets (a file in place does not mean
    // it was applied: a reboot without systemd-sysctl, or `sysctl -w` by hand).
    section(
        "sysctls",
        &format!(
            "f={}; if test -f \"$f\"; then sed -n 's/^[[:space:]]*\\([A-Za-z0-9_.-]*\\)[[:space:]]*=.*/\\1/p' \"$f\" | while IFS= read -r k; do v=$(sysctl -n \"$k\" 2>/dev/null) && printf '%s=%s\\n' \"$k\" \"$v\"; done; fi; true",
            quote(crate::render::SYSCTL_FILE)
        ),
    );
    // Certificates, as PEM in base64: kubeadm's PKI, the client certificates embedded in its
    // kubeconfigs, and the kubelet's. Only certificates: no private key leaves the host.
    section("certificates", CERTIFICATES);
    section("key-pairs", KEY_PAIRS);
    // The CAs whose key is on the host: without it kubeadm cannot renew what it signed.
    section(
        "ca-keys",
        "for k in /etc/kubernetes/pki/ca.key /etc/kubernetes/pki/etcd/ca.key /etc/kubernetes/pki/front-proxy-ca.key; do test -f \"$k\" && echo \"${k%.key}.crt\"; done; true",
    );
    // By the kubelet's labels: `--name` is a pattern, which other containers' names can match.
    section(
        "apiserver",
        "crictl ps -o json --label io.kubernetes.pod.namespace=kube-system --label io.kubernetes.container.name=kube-apiserver 2>/dev/null || true",
    );
    section(
        "tools",
        &format!(
            "for t in {}; do if command -v \"$t\" >/dev/null 2>&1; then echo \"$t\"; fi; done",
            crate::plan::TOOLS.iter().map(|(t, _)| *t).collect::<Vec<_>>().join(" ")
        ),
    );
    // The certificate the local API server presents, against its file's: the server reloads a
    // renewed file by itself, so a difference means something else answers on its port, or a
    // pair it cannot load.
    section("apiserver-certificate", APISERVER_CERTIFICATE);
    section(
        "kubelet-config",
        "grep -E '^(rotateCertificates|serverTLSBootstrap|tlsCertFile):' /var/lib/kubelet/config.yaml 2>/dev/null || true",
    );
    section("restart-pending", &format!("test -e {} && echo yes || true", crate::facts::RESTART_PENDING));
    // The local etcd member's health, as the upgrade and node removal weigh quorum (short
    // timeouts: a member that is down must not hold up the facts).
    section("etcd-health", &crate::etcd::health_facts_script());
    // The local etcd member as kubeadm configured it; a manifest an unfinished restore parked
    // counts (the run that continues it needs it).
    section(
        "etcd-member",
        &format!(
            "for f in /etc/kubernetes/manifests/etcd.yaml {}/etcd.yaml; do if test -f \"$f\"; then echo \"manifest $f\"; grep -E '^ *(- --(name|initial-advertise-peer-urls|data-dir)=|image: )' \"$f\"; break; fi; done; true",
            super::PARKED_MANIFESTS
        ),
    );
    section(
        "applied",
        &format!(
            "for f in {}/*; do test -f \"$f\" && printf '%s %s\\n' \"${{f##*/}}\" \"$(head -c 128 \"$f\")\"; done; true",
            quote(super::APPLIED_DIR)
        ),
    );
    section("etc-hosts", "if test -f /etc/hosts; then base64 < /etc/hosts | tr -d '\\n'; fi; echo");
    for path in paths {
        // base64: a file's bytes may hold anything, the section mark included.
        section(
            &format!("file {path}"),
            &format!("if test -f {p}; then base64 < {p} | tr -d '\\n'; echo; else echo absent; fi", p = quote(path)),
        );
    }
    Script::new().cmd(["sh", "-c", text.as_str()])
}

/// Just the certificates section of [`script`], for a check after they changed.
pub fn certificates_script() -> Script {
    Script::new().cmd(["sh", "-c", CERTIFICATES])
}

/// What the certificates section holds: the certificates, and the files that are none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateReading {
    /// Every certificate by path, each with the CA on the same host that signed it.
    pub certificates: BTreeMap<String, crate::pki::Certificate>,
    /// Path → why it is not a certificate kubewright (or kubeadm, which reads PEM only) can read.
    pub unreadable: BTreeMap<String, String>,
}

/// The output of the certificates section: every certificate by path, each with the CA on the
/// same host that signed it (checked here, where the certificates' bytes are, so the facts keep
/// only the answer), and the files that are not a PEM certificate, with why. One such file (a
/// DER CA someone dropped in, an empty `.crt`) is a broken certificate to report, not a host
/// whose facts cannot be read: that would stop every job there, the renewal included.
pub fn read_certificates(text: &str) -> CertificateReading {
    let mut pems = BTreeMap::new();
    let mut unreadable = BTreeMap::new();
    for line in text.lines() {
        let Some((path, encoded)) = line.split_once('\t') else { continue };
        let read = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("its content is not valid base64: {e}"))
            .and_then(|pem| match pem.is_empty() {
                true => Err("the file is empty".to_string()),
                false => crate::pki::inspect(&pem).map(|cert| (pem, cert)),
            });
        match read {
            Ok(read) => {
                pems.insert(path.to_string(), read);
            }
            Err(why) => {
                unreadable.insert(path.to_string(), why);
            }
        }
    }
    let cas: Vec<(&String, &Vec<u8>)> =
        pems.iter().filter(|(_, (_, c))| c.is_ca).map(|(p, (pem, _))| (p, pem)).collect();
    let mut certificates = BTreeMap::new();
    for (path, (pem, cert)) in &pems {
        let mut cert = cert.clone();
        cert.signed_by = cas.iter().find(|(_, ca)| crate::pki::signed_by(pem, ca)).map(|(p, _)| (*p).clone());
        certificates.insert(path.clone(), cert);
    }
    CertificateReading { certificates, unreadable }
}

/// For the check after a renewal: the certificates, or why one of the items `kubeadm certs
/// renew all` rewrites cannot be read. Another unreadable file is no reason to undo a renewal
/// (`certs check` reports it).
pub fn parse_certificates(text: &str) -> Result<BTreeMap<String, crate::pki::Certificate>, String> {
    let reading = read_certificates(text);
    let broken: Vec<String> = reading
        .unreadable
        .iter()
        .filter(|(path, _)| crate::certs::renewed_by_kubeadm(path))
        .map(|(path, why)| format!("{path}: {why}"))
        .collect();
    match broken.is_empty() {
        true => Ok(reading.certificates),
        false => Err(broken.join("; ")),
    }
}

/// Separates the node list from the kubeadm-config in the output of [`cluster_script`].
const CLUSTER_MARK: &str = "@@kubewright-fact kubeadm-config@@";

/// Asks the API server, through a control plane's admin kubeconfig, for the nodes and the
/// kubeadm-config (read only; 10 s per request, so a dead API server costs little).
pub fn cluster_script() -> Script {
    let kubectl = "kubectl --kubeconfig /etc/kubernetes/admin.conf --request-timeout=10s";
    let text = format!(
        "{kubectl} get nodes -o json && echo {} && {kubectl} -n kube-system get configmap kubeadm-config -o json",
        quote(CLUSTER_MARK)
    );
    Script::new().cmd(["sh", "-c", text.as_str()])
}

/// The cluster as `host` read it with [`cluster_script`]; None when the API server did not
/// give a node list.
pub fn parse_cluster(host: &str, output: &str) -> Option<super::ClusterView> {
    let (nodes, config) = match output.split_once(CLUSTER_MARK) {
        Some((nodes, config)) => (nodes, Some(config)),
        None => (output, None),
    };
    let nodes = crate::kube::parse_node_list(nodes).ok()?;
    Some(super::ClusterView {
        answered_by: host.to_string(),
        nodes,
        kubeadm_config: config.and_then(|c| crate::kube::parse_kubeadm_config(c).ok()),
    })
}

/// What the output of [`script`] said was wrong.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the facts of {host} could not be read: {detail}")]
pub struct FactsError {
    pub host: String,
    pub detail: String,
}

/// Parse the output of [`script`] run on `host`.
pub fn parse(host: &str, output: &str) -> Result<HostFacts, FactsError> {
    let error = |detail: String| FactsError { host: host.to_string(), detail };
    let mut sections: BTreeMap<String, String> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in output.lines() {
        if let Some(name) = line.strip_prefix(MARK).and_then(|rest| rest.strip_suffix("@@")) {
            current = Some(name.to_string());
            sections.entry(name.to_string()).or_default();
            continue;
        }
        if let Some(name) = &current
            && let Some(body) = sections.get_mut(name)
        {
            body.push_str(line);
            body.push('\n');
        }
    }
    for required in ["os-release", "arch", "hostname", "swaps", "packages", "kubelet-conf"] {
        if !sections.contains_key(required) {
            return Err(error(format!("the output has no `{required}` section (was it cut short?)")));
        }
    }
    let get = |name: &str| sections.get(name).map(String::as_str).unwrap_or("");
    let os = os_release(get("os-release"));
    let mut files = BTreeMap::new();
    for (name, body) in &sections {
        let Some(path) = name.strip_prefix("file ") else { continue };
        let body = body.trim();
        if body == "absent" {
            continue;
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| error(format!("the content of {path} is not valid base64: {e}")))?;
        files.insert(path.to_string(), String::from_utf8_lossy(&bytes).into_owned());
    }
    let InstalledPackages { versions: packages, containerd: containerd_installed, held, installed } =
        packages(get("packages"));
    let CertificateReading { mut certificates, unreadable: unreadable_certificates } =
        read_certificates(get("certificates"));
    for (path, key_sha256) in get("key-pairs").lines().filter_map(|l| l.rsplit_once(' ')) {
        // Anything but a SHA-256 in hex (a tool that printed nothing or garbage) is unknown.
        let is_sha256 =
            key_sha256.len() == 64 && key_sha256.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !is_sha256 {
            continue;
        }
        if let Some(c) = certificates.get_mut(path) {
            c.key_matches = Some(c.public_key_sha256 == key_sha256);
        }
    }
    let etc_hosts = match get("etc-hosts").trim() {
        "" => BTreeMap::new(),
        encoded => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| error(format!("the content of /etc/hosts is not valid base64: {e}")))?;
            hosts_file(&String::from_utf8_lossy(&bytes))
        }
    };
    Ok(HostFacts {
        files,
        packages,
        containerd_installed,
        held,
        installed,
        tools: Some(words(get("tools"))),
        swap_active: get("swaps").lines().skip(1).any(|l| !l.trim().is_empty()),
        swap_in_fstab: fstab_has_swap(get("fstab")),
        modules: get("modules")
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(str::to_string)
            .collect(),
        joined: get("kubelet-conf").trim() == "yes",
        admin_conf: get("admin-conf").trim() == "yes",
        apt_keyring: get("apt-keyring").trim() == "yes",
        os_id: os.get("ID").cloned().unwrap_or_default(),
        os_version: os.get("VERSION_ID").cloned().unwrap_or_default(),
        arch: get("arch").trim().to_string(),
        hostname: get("hostname").trim().to_string(),
        macs: get("macs")
            .lines()
            .map(|l| l.trim().to_ascii_lowercase())
            .filter(|m| !m.is_empty() && m != "00:00:00:00:00:00")
            .collect(),
        product_uuid: get("product-uuid").trim().to_ascii_uppercase(),
        cpus: get("cpus").trim().parse().unwrap_or(0),
        memory_mb: get("meminfo")
            .split_whitespace()
            .nth(1)
            .and_then(|kb| kb.parse::<u64>().ok())
            .map_or(0, |kb| kb / 1024),
        listening_ports: get("listening").lines().filter_map(listening_port).collect(),
        host_time: get("clock").trim().parse().unwrap_or(0),
        // Measured by whoever ran the script (it knows when the answer arrived).
        clock_skew_s: None,
        active_firewalls: words(get("firewalls")),
        active_services: words(get("services")),
        etc_hosts,
        sysctls: get("sysctls")
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.split_whitespace().collect::<Vec<_>>().join(" ")))
            .collect(),
        certificates,
        unreadable_certificates,
        ca_keys: words(get("ca-keys")),
        apiserver_started: apiserver_started(get("apiserver")),
        apiserver_certificate: served_certificate(get("apiserver-certificate")),
        kubelet_rotation: match kubelet_setting(get("kubelet-config"), "rotateCertificates") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        },
        kubelet_serving_configured: kubelet_setting(get("kubelet-config"), "serverTLSBootstrap") == Some("true")
            || kubelet_setting(get("kubelet-config"), "tlsCertFile").is_some_and(|f| !f.is_empty()),
        restart_pending: get("restart-pending").trim() == "yes",
        ipv4_addresses: get("addresses")
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                words.find(|w| *w == "inet")?;
                words.next()?.split('/').next()?.parse().ok()
            })
            .collect(),
        interfaces: interfaces(get("links"), get("addresses")),
        etcd_member: etcd_member(get("etcd-member")),
        etcd_health: etcd_health(get("etcd-health")),
        applied: get("applied")
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(name, hash)| (name.to_string(), hash.trim().to_string()))
            .collect(),
    })
}

/// Every interface `ip -o link` lists, with the IPv4 addresses `ip -o -4 addr` gives it, in
/// its order; None when `ip -o link` listed nothing (no `ip` on the host). A veth's name is
/// listed as `eth0@if7` (its peer's index): the interface is `eth0`.
fn interfaces(links: &str, addresses: &str) -> Option<BTreeMap<String, Vec<std::net::Ipv4Addr>>> {
    let name = |field: &str| field.trim_end_matches(':').split('@').next().unwrap_or_default().to_string();
    let mut found: BTreeMap<String, Vec<std::net::Ipv4Addr>> = links
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(name)
        .filter(|n| !n.is_empty())
        .map(|n| (n, Vec::new()))
        .collect();
    if found.is_empty() {
        return None;
    }
    for line in addresses.lines() {
        let mut words = line.split_whitespace();
        let (Some(_index), Some(device)) = (words.next(), words.next()) else { continue };
        if words.next() != Some("inet") {
            continue;
        }
        let Some(ip) = words.next().and_then(|a| a.split('/').next()).and_then(|a| a.parse().ok()) else { continue };
        found.entry(name(device)).or_default().push(ip);
    }
    Some(found)
}

/// How `etcdctl endpoint health` answered; None where it was not asked (no etcd manifest, or
/// no etcdctl on the host).
fn etcd_health(text: &str) -> Option<EtcdHealth> {
    let status = text.lines().rev().find_map(|l| l.strip_prefix("exit "))?;
    if status.trim() == "0" {
        return Some(EtcdHealth::Healthy);
    }
    if status.trim() == "124" {
        return Some(EtcdHealth::Unhealthy {
            why: format!("no answer within {}s (crictl or etcd hangs)", crate::etcd::HEALTH_FACT_LIMIT_S),
        });
    }
    // etcdctl's own verdict, past the client's JSON log lines.
    let lines = || text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("exit "));
    let why = lines()
        .find(|l| l.contains(" is unhealthy: "))
        .or_else(|| lines().find(|l| l.starts_with("Error: ")))
        .or_else(|| lines().next())
        .unwrap_or("etcdctl failed");
    Some(EtcdHealth::Unhealthy { why: why.trim().to_string() })
}

/// The etcd member a manifest's command configures; None without a manifest or a name.
fn etcd_member(text: &str) -> Option<super::EtcdMember> {
    let manifest = text.lines().next()?.strip_prefix("manifest ")?.trim();
    let flag = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("- ")?.strip_prefix(name)?.strip_prefix('=').map(str::to_string))
    };
    Some(super::EtcdMember {
        name: flag("--name")?,
        peer_url: flag("--initial-advertise-peer-urls")?,
        data_dir: flag("--data-dir").unwrap_or_else(|| "/var/lib/etcd".into()),
        parked: manifest != "/etc/kubernetes/manifests/etcd.yaml",
        image: text
            .lines()
            .find_map(|l| l.trim().strip_prefix("image: "))
            .map(|i| i.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
            .unwrap_or_default(),
    })
}

/// A top-level `key: value` of the kubelet's configuration lines, unquoted.
fn kubelet_setting<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().trim_matches(|c| c == '"' || c == '\''))
    })
}

/// `file serial=X` and `served serial=Y` lines: both serials (the served one empty when the
/// server did not answer); None without a readable file serial.
fn served_certificate(text: &str) -> Option<crate::facts::ServedCertificate> {
    let serial = |what: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(what))
            .map(|v| v.trim().trim_start_matches("serial=").to_ascii_uppercase())
            .filter(|v| v.chars().all(|c| c.is_ascii_hexdigit()))
    };
    let file = serial("file ").filter(|f| !f.is_empty())?;
    Some(crate::facts::ServedCertificate { served: serial("served ").unwrap_or_default(), file })
}

/// When the running kube-apiserver container started (crictl's `createdAt`, nanoseconds).
fn apiserver_started(json: &str) -> Option<i64> {
    let doc: serde_json::Value = serde_json::from_str(json).ok()?;
    doc["containers"]
        .as_array()?
        .iter()
        .filter(|c| c["state"] == "CONTAINER_RUNNING")
        .filter_map(|c| c["createdAt"].as_str()?.parse::<i128>().ok())
        .max()
        .map(|ns| (ns / 1_000_000_000) as i64)
}

/// Name → the entry resolvers use for it in hosts(5) text: the first line naming it.
fn hosts_file(text: &str) -> BTreeMap<String, HostsEntry> {
    let mut entries = BTreeMap::new();
    for line in text.lines() {
        let managed = line.trim_end().ends_with(HOSTS_MARK);
        let data = line.split('#').next().unwrap_or("");
        let mut fields = data.split_whitespace();
        let Some(ip) = fields.next() else { continue };
        for name in fields {
            entries.entry(name.to_ascii_lowercase()).or_insert_with(|| HostsEntry { ip: ip.to_string(), managed });
        }
    }
    entries
}

/// The port of an `ss -Hltn` line (`LISTEN 0 4096 0.0.0.0:22 0.0.0.0:*`, `[::]:6443`).
fn listening_port(line: &str) -> Option<u16> {
    let local = line.split_whitespace().nth(3)?;
    local.rsplit_once(':')?.1.parse().ok()
}

/// `KEY=value` lines, quotes removed (os-release(5)).
fn os_release(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().trim_matches('"').trim_matches('\'').to_string()))
        .collect()
}

/// A swap entry not commented out (fstab(5): the third field is the type).
fn fstab_has_swap(text: &str) -> bool {
    text.lines().map(str::trim).filter(|l| !l.starts_with('#')).any(|l| l.split_whitespace().nth(2) == Some("swap"))
}

struct InstalledPackages {
    versions: BTreeMap<String, Version>,
    containerd: bool,
    held: BTreeSet<String>,
    installed: BTreeSet<String>,
}

/// dpkg-query lines `name\tversion\tstatus`: the Kubernetes packages' versions (the upstream
/// part, `1.31.4-1.1` → 1.31.4), whether a containerd package is installed, what is held, and
/// which of the packages asked about are installed.
fn packages(text: &str) -> InstalledPackages {
    let mut versions = BTreeMap::new();
    let mut containerd = false;
    let mut held = BTreeSet::new();
    let mut installed = BTreeSet::new();
    for line in text.lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(version), Some(status)) = (fields.next(), fields.next(), fields.next()) else { continue };
        if !status.ends_with(" installed") {
            continue;
        }
        installed.insert(name.to_string());
        if status.starts_with("hold ") {
            held.insert(name.to_string());
        }
        if name.starts_with("containerd") {
            containerd = true;
            continue;
        }
        let upstream = version.split('-').next().unwrap_or(version);
        if let Ok(v) = upstream.parse::<Version>() {
            versions.insert(name.to_string(), v);
        }
    }
    InstalledPackages { versions, containerd, held, installed }
}

/// One name per line, blank lines ignored.
fn words(text: &str) -> BTreeSet<String> {
    text.lines().map(str::trim).filter(|u| !u.is_empty()).map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(name: &str, body: &str) -> String {
        format!("{MARK}{name}@@\n{body}")
    }

    const APISERVER_CRT: &str = include_str!("../../tests/fixtures/apiserver.crt");

    fn sample() -> String {
        [
            section("clock", "1795000000\n"),
            section("os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
            section("arch", "x86_64\n"),
            section("hostname", "cp1\n"),
            section("swaps", "Filename\tType\tSize\tUsed\tPriority\n/swapfile file 1048572 0 -2\n"),
            section("fstab", "# /swapfile none swap sw 0 0\nUUID=1 / ext4 defaults 0 1\n/swapfile none swap sw 0 0\n"),
            section("modules", "Module                  Size  Used by\noverlay 151552 0\nbr_netfilter 32768 0\n"),
            section(
                "packages",
                "kubeadm\t1.31.4-1.1\thold ok installed\nkubelet\t1.31.4-1.1\tinstall ok installed\ncontainerd\t1.7.24-1\tinstall ok installed\nkubectl\t1.30.1-1.1\tdeinstall ok config-files\n",
            ),
                    section("macs", "52:54:00:12:34:56\n00:00:00:00:00:00\n"),
            section("addresses", "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n2: eth0    inet 10.0.0.11/24 brd 10.0.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n"),
            section("links", "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT group default qlen 1000\\    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n2: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether 52:54:00:12:34:56 brd ff:ff:ff:ff:ff:ff link-netnsid 0\n3: eth1: <BROADCAST,MULTICAST> mtu 1500 qdisc noop state DOWN mode DEFAULT group default qlen 1000\\    link/ether 52:54:00:12:34:57 brd ff:ff:ff:ff:ff:ff\n"),
            section("product-uuid", "4c4c4544-0042-3510-8052-b4c04f4e4d32\n"),
            section("cpus", "2\n"),
            section("meminfo", "MemTotal:        4028752 kB\n"),
            section(
                "listening",
                "LISTEN 0      128          0.0.0.0:22        0.0.0.0:*\nLISTEN 0      4096            [::]:6443           [::]:*\n",
            ),
            section("firewalls", "firewalld\n"),
            section("services", "containerd\n"),
            section("kubelet-conf", "no\n"),
            section("admin-conf", "no\n"),
            section("applied", "flannel 5b1e0c\n"),
            section("ca-keys", "/etc/kubernetes/pki/ca.crt\n"),
            section("apiserver", r#"{"containers": [{"state": "CONTAINER_RUNNING", "createdAt": "1794000000123456789"}]}
"#),
            section("kubelet-config", "rotateCertificates: true\n"),
            section("sysctls", "net.ipv4.ip_forward=1\nnet.ipv4.tcp_rmem=4096\t131072  6291456\n"),
            section(
                "certificates",
                &format!(
                    "/etc/kubernetes/pki/apiserver.crt\t{}\n",
                    base64::engine::general_purpose::STANDARD.encode(APISERVER_CRT)
                ),
            ),
            section("etc-hosts", &format!("{}\n", base64::engine::general_purpose::STANDARD.encode("127.0.0.1 localhost\n10.0.0.5 api.c.internal # by hand\n10.0.0.11 api.c.internal other # kubewright\n10.0.0.12 Peer # kubewright\n"))),
            section("file /etc/modules-load.d/k8s.conf", "b3ZlcmxheQpicl9uZXRmaWx0ZXIK\n"),
            section("file /etc/containerd/config.toml", "absent\n"),
        ]
        .concat()
    }

    #[test]
    fn every_fact_is_read_from_its_section() {
        let f = parse("cp1", &sample()).unwrap();
        assert_eq!((f.os_id.as_str(), f.os_version.as_str(), f.arch.as_str()), ("debian", "12", "x86_64"));
        assert_eq!(f.hostname, "cp1");
        assert!(f.swap_active && f.swap_in_fstab);
        assert_eq!(f.modules, BTreeSet::from(["overlay".to_string(), "br_netfilter".to_string()]));
        assert_eq!(f.packages.keys().collect::<Vec<_>>(), ["kubeadm", "kubelet"], "kubectl is removed");
        assert_eq!(f.packages["kubeadm"].to_string(), "1.31.4");
        assert!(f.containerd_installed);
        assert_eq!(f.held, BTreeSet::from(["kubeadm".to_string()]));
        assert!(!f.joined && !f.admin_conf);
        assert_eq!(f.macs, BTreeSet::from(["52:54:00:12:34:56".to_string()]));
        assert_eq!(f.product_uuid, "4C4C4544-0042-3510-8052-B4C04F4E4D32");
        assert_eq!((f.cpus, f.memory_mb), (2, 3934));
        assert_eq!(f.listening_ports, BTreeSet::from([22, 6443]));
        assert_eq!(f.active_firewalls, BTreeSet::from(["firewalld".to_string()]));
        assert_eq!(f.active_services, BTreeSet::from(["containerd".to_string()]));
        assert_eq!((f.host_time, f.clock_skew_s), (1_795_000_000, None));
        assert_eq!(f.files["/etc/modules-load.d/k8s.conf"], "overlay\nbr_netfilter\n");
        assert!(!f.files.contains_key("/etc/containerd/config.toml"));
        // The first line naming a host wins, as for the resolver; kubewright's lines are marked.
        assert_eq!(f.etc_hosts["api.c.internal"], HostsEntry { ip: "10.0.0.5".into(), managed: false });
        assert_eq!(f.etc_hosts["other"], HostsEntry { ip: "10.0.0.11".into(), managed: true });
        assert_eq!(f.etc_hosts["peer"], HostsEntry { ip: "10.0.0.12".into(), managed: true });
        assert_eq!(f.etc_hosts["localhost"].ip, "127.0.0.1");
        assert_eq!(f.applied["flannel"], "5b1e0c");
        assert_eq!(f.ca_keys, BTreeSet::from(["/etc/kubernetes/pki/ca.crt".to_string()]));
        assert_eq!((f.apiserver_started, f.kubelet_rotation), (Some(1_794_000_000), Some(true)));
        assert_eq!(f.ipv4_addresses, BTreeSet::from(["127.0.0.1".parse().unwrap(), "10.0.0.11".parse().unwrap()]));
        // A veth's `@ifN` is not part of its name; an interface without an address is listed.
        let interfaces = f.interfaces.as_ref().unwrap();
        assert_eq!(interfaces["eth0"], ["10.0.0.11".parse::<std::net::Ipv4Addr>().unwrap()]);
        assert_eq!(interfaces["lo"], ["127.0.0.1".parse::<std::net::Ipv4Addr>().unwrap()]);
        assert!(interfaces["eth1"].is_empty());
        assert_eq!(f.sysctls["net.ipv4.tcp_rmem"], "4096 131072 6291456", "whitespace as the file writes it");
        let cert = &f.certificates["/etc/kubernetes/pki/apiserver.crt"];
        assert_eq!((cert.subject.as_str(), cert.is_ca), ("kube-apiserver", false));
        assert_eq!(cert.dns_names, ["kubernetes", "api.c.internal"]);
        assert_eq!(cert.ip_addresses, ["10.96.0.1", "10.0.0.11"]);
        assert_eq!(cert.not_after - cert.not_before, 365 * 86_400);
    }

    #[test]
    fn interfaces_keep_the_order_ip_lists_addresses_in_and_are_unknown_without_ip() {
        let links = "1: lo: <LOOPBACK> mtu 65536\\    link/loopback\n2: eth1: <BROADCAST> mtu 1500\\    link/ether\n";
        let addresses = "2: eth1    inet 192.168.56.11/24 brd 192.168.56.255 scope global eth1\\       valid_lft forever\n2: eth1    inet 192.168.56.200/24 scope global secondary eth1\\       valid_lft forever\n";
        let found = interfaces(links, addresses).unwrap();
        let ips: Vec<String> = found["eth1"].iter().map(ToString::to_string).collect();
        assert_eq!(ips, ["192.168.56.11", "192.168.56.200"], "the primary first");
        assert!(found["lo"].is_empty());
        assert_eq!(interfaces("", addresses), None, "no `ip`: not read, rather than no interfaces");
    }

    #[test]
    fn etcd_health_is_what_etcdctl_answered_or_unknown() {
        let with = |body: &str| parse("cp1", &format!("{}{}", sample(), section("etcd-health", body))).unwrap();
        let healthy = "https://127.0.0.1:2379 is healthy: successfully committed proposal: took = 2.1ms\nexit 0\n";
        assert_eq!(with(healthy).etcd_health, Some(EtcdHealth::Healthy));
        let down = "{\"level\":\"warn\"}\nhttps://127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded\nError: unhealthy cluster\nexit 1\n";
        assert_eq!(
            with(down).etcd_health,
            Some(EtcdHealth::Unhealthy {
                why: "https://127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded".into()
            }),
            "etcdctl's verdict, not its log"
        );
        assert_eq!(with("").etcd_health, None, "not asked: no manifest or no crictl");
        assert_eq!(
            with("exit 124\n").etcd_health,
            Some(EtcdHealth::Unhealthy { why: "no answer within 15s (crictl or etcd hangs)".into() }),
        );
        let no_container = "no etcd container runs on this control plane (crictl ps --label io.kubernetes.container.name=etcd lists none): look at the kubelet's log\nexit 1\n";
        assert!(
            matches!(with(no_container).etcd_health, Some(EtcdHealth::Unhealthy { why }) if why.starts_with("no etcd container runs"))
        );
    }

    #[test]
    fn the_etcd_member_is_read_from_its_manifest_also_when_a_restore_parked_it() {
        let flags = "    - --data-dir=/data/etcd\n    - --initial-advertise-peer-urls=https://10.0.0.11:2380\n    - --name=cp1\n";
        let with = |body: &str| parse("cp1", &format!("{}{}", sample(), section("etcd-member", body))).unwrap();
        let member = with(&format!("manifest /etc/kubernetes/manifests/etcd.yaml\n{flags}")).etcd_member.unwrap();
        assert_eq!(
            (member.name.as_str(), member.peer_url.as_str(), member.data_dir.as_str(), member.parked),
            ("cp1", "https://10.0.0.11:2380", "/data/etcd", false)
        );
        let parked = with(&format!("manifest {PARKED}/etcd.yaml\n{flags}", PARKED = super::super::PARKED_MANIFESTS));
        assert!(parked.etcd_member.unwrap().parked);
        // No manifest (a worker), or one without a name: no member to restore.
        assert_eq!(with("").etcd_member, None);
        assert_eq!(
            with("manifest /etc/kubernetes/manifests/etcd.yaml\n    - --data-dir=/var/lib/etcd\n").etcd_member,
            None
        );
    }

    /// Issue 18 (run-safety review item 15): a file that is no PEM certificate is reported as
    /// such; it made the whole host's facts unreadable, so every job refused that host.
    #[test]
    fn a_file_that_is_no_certificate_is_reported_and_the_facts_are_still_read() {
        let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        // The fixture's DER bytes: a CA saved in the other encoding.
        let der = base64::engine::general_purpose::STANDARD
            .decode(APISERVER_CRT.lines().filter(|l| !l.starts_with("-----")).collect::<String>())
            .unwrap();
        let certificates = format!(
            "/etc/kubernetes/pki/apiserver.crt\t{}\n/etc/kubernetes/pki/corp-ca.crt\t{}\n/etc/kubernetes/pki/etcd/empty.crt\t\n",
            encode(APISERVER_CRT.as_bytes()),
            encode(&der)
        );
        let text = sample().replace(
            &section(
                "certificates",
                &format!("/etc/kubernetes/pki/apiserver.crt\t{}\n", encode(APISERVER_CRT.as_bytes())),
            ),
            &section("certificates", &certificates),
        );
        let f = parse("cp1", &text).unwrap();
        assert_eq!(f.certificates.keys().collect::<Vec<_>>(), ["/etc/kubernetes/pki/apiserver.crt"]);
        assert_eq!(
            f.unreadable_certificates.keys().collect::<Vec<_>>(),
            ["/etc/kubernetes/pki/corp-ca.crt", "/etc/kubernetes/pki/etcd/empty.crt"]
        );
        assert!(f.unreadable_certificates["/etc/kubernetes/pki/corp-ca.crt"].starts_with("not a PEM certificate"));
        assert_eq!(f.unreadable_certificates["/etc/kubernetes/pki/etcd/empty.crt"], "the file is empty");
        // After a renewal only kubeadm's own items count: an unreadable one is the renewal's failure.
        assert!(parse_certificates(&certificates).is_ok(), "neither file is one kubeadm renews");
        let broken = format!("/etc/kubernetes/pki/apiserver-kubelet-client.crt\t{}\n", encode(b"garbage"));
        let why = parse_certificates(&broken).unwrap_err();
        assert!(why.starts_with("/etc/kubernetes/pki/apiserver-kubelet-client.crt: not a PEM certificate"), "{why}");
    }

    #[test]
    fn the_kubelets_settings_are_read_line_by_line() {
        let text = "rotateCertificates: false\nserverTLSBootstrap: true\ntlsCertFile: \"/etc/pki/kubelet.crt\"\n";
        assert_eq!(kubelet_setting(text, "rotateCertificates"), Some("false"));
        assert_eq!(kubelet_setting(text, "serverTLSBootstrap"), Some("true"));
        assert_eq!(kubelet_setting(text, "tlsCertFile"), Some("/etc/pki/kubelet.crt"));
        assert_eq!(kubelet_setting("rotateCertificates: true\n", "tlsCertFile"), None);
    }

    #[test]
    fn the_served_certificate_is_compared_by_serial_and_a_silent_server_is_told_apart() {
        let served = served_certificate("file serial=0A1B2C\nserved serial=0a1b2c\n").unwrap();
        assert!(!served.stale(), "{served:?}: the same serial, whatever the case");
        let stale = served_certificate("file serial=0A1B2C\nserved serial=99\n").unwrap();
        assert!(stale.stale(), "{stale:?}");
        let silent = served_certificate("file serial=0A1B2C\nserved \n").unwrap();
        assert_eq!((silent.served.as_str(), silent.stale()), ("", false), "no answer is not a stale certificate");
        assert_eq!(served_certificate(""), None, "no API server manifest");
        assert_eq!(served_certificate("file \nserved serial=99\n"), None, "an unreadable file");
        let garbage = served_certificate("file serial=0A1B\nserved unable to load\n").map(|c| c.served);
        assert_eq!(garbage, Some(String::new()), "text that is not a serial is no serial");
    }

    #[test]
    fn a_key_matches_its_certificate_when_their_public_keys_hash_alike() {
        let apiserver = crate::pki::inspect(APISERVER_CRT.as_bytes()).unwrap();
        let with_key_pairs = |body: &str| format!("{}{}", sample(), section("key-pairs", body));
        let text = with_key_pairs(&format!(
            "/etc/kubernetes/pki/apiserver.crt {}\n/etc/kubernetes/pki/ca.crt {}\n",
            apiserver.public_key_sha256, apiserver.public_key_sha256
        ));
        let f = parse("cp1", &text).unwrap();
        assert_eq!(f.certificates["/etc/kubernetes/pki/apiserver.crt"].key_matches, Some(true));
        assert!(!f.certificates.contains_key("/etc/kubernetes/pki/ca.crt"), "a key without its certificate is no row");
        let other = "0".repeat(64);
        let f = parse("cp1", &with_key_pairs(&format!("/etc/kubernetes/pki/apiserver.crt {other}\n"))).unwrap();
        assert_eq!(f.certificates["/etc/kubernetes/pki/apiserver.crt"].key_matches, Some(false));
        let f = parse("cp1", &sample()).unwrap();
        assert_eq!(f.certificates["/etc/kubernetes/pki/apiserver.crt"].key_matches, None, "not checked: unknown");
        let f = parse("cp1", &with_key_pairs("/etc/kubernetes/pki/apiserver.crt \n")).unwrap();
        assert_eq!(f.certificates["/etc/kubernetes/pki/apiserver.crt"].key_matches, None, "no hash: unknown");
    }

    #[test]
    fn a_commented_swap_line_is_not_swap() {
        assert!(!fstab_has_swap("# /swapfile none swap sw 0 0\n/dev/sda1 / ext4 defaults 0 1\n"));
    }

    #[test]
    fn cut_or_garbled_output_is_an_error_not_a_guess() {
        let cut = sample()[..40].to_string();
        assert!(parse("w1", &cut).unwrap_err().detail.contains("section"));
        let garbled = sample().replace("b3ZlcmxheQpicl9uZXRmaWx0ZXIK", "!!!");
        assert!(parse("w1", &garbled).unwrap_err().detail.contains("base64"));
    }

    #[test]
    fn the_script_quotes_paths_and_reads_only() {
        let s = script(&["/etc/a b/$(reboot)".to_string()]).to_shell();
        assert!(s.contains("a b/$(reboot)"), "{s}");
        let words: Vec<&str> = s.split(|c: char| !(c.is_alphanumeric() || "-_.".contains(c))).collect();
        for verb in ["rm", "mv", "tee", "truncate", "dd"] {
            assert!(!words.contains(&verb), "{verb} in {s}");
        }
        assert!(!s.contains("> /"), "a redirection into a file in {s}");
    }
}
