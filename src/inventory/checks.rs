//! Syntax checks for the values an inventory carries into commands, templates and the
//! Kubernetes API. Every value that ends up in a shell command or a YAML/TOML file is
//! checked here against a strict character set; rendering quotes it again on top.

use std::net::IpAddr;

/// RFC 1123 label: what Kubernetes calls a DNS label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, ≤ 63).
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain (Kubernetes node names, DNS domains): dot-separated labels, ≤ 253.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A host name an SSH client or kubelet can resolve: a subdomain, case-insensitively.
pub fn is_hostname(s: &str) -> bool {
    is_dns_subdomain(&s.to_ascii_lowercase())
}

/// An IP address or a resolvable host name.
pub fn is_address(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || is_hostname(s)
}

/// A suggestion for turning an invalid node name into a valid one.
pub fn suggest_dns_subdomain(s: &str) -> String {
    let mapped: String =
        s.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '-' }).collect();
    mapped.split('.').map(|l| l.trim_matches('-')).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(".")
}

fn is_label_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && s.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && s.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
}

/// A Kubernetes label or taint key: `[prefix/]name`.
pub fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => is_dns_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

/// A Kubernetes label value: empty, or a label name.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty() || is_label_name(s)
}

/// Labels a kubelet may not set on its own Node under the NodeRestriction admission plugin
/// (k8s.io/kubelet `IsKubeletLabel`): `kubernetes.io` / `k8s.io` prefixes other than the
/// allowed `kubelet.`, `node.` and well-known ones.
pub fn is_restricted_label(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else { return false };
    let in_namespace = |ns: &str| prefix == ns || prefix.ends_with(&format!(".{ns}"));
    if !(in_namespace("kubernetes.io") || in_namespace("k8s.io")) {
        return false;
    }
    let allowed_prefix = ["kubelet.kubernetes.io", "node.kubernetes.io"]
        .iter()
        .any(|ns| prefix == *ns || prefix.ends_with(&format!(".{ns}")));
    let well_known = [
        "kubernetes.io/hostname",
        "kubernetes.io/instance-type",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "node.kubernetes.io/instance-type",
    ];
    !(allowed_prefix || well_known.contains(&key))
}

/// A URL safe to place in a TOML string and a shell word after quoting: `http(s)://host...`
/// with no quotes, backslashes, spaces or control characters.
pub fn is_safe_url(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")) else {
        return false;
    };
    let host_port = rest.split('/').next().unwrap_or("");
    let host = match host_port.rsplit_once(':') {
        Some((h, port)) if !h.ends_with(']') || h.starts_with('[') => {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) || port.parse::<u16>().is_err() {
                return false;
            }
            h
        }
        _ => host_port,
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => is_address(host),
    };
    host_ok && s.len() <= 2048 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&()*+,;=%".contains(&b))
}

/// A container image reference, e.g. `registry.k8s.io/pause:3.10` or `repo@sha256:...`.
pub fn is_image_reference(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && !s.starts_with(['-', '/', ':'])
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._/:@".contains(&b))
}

/// An image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}` (the distribution spec).
pub fn is_image_tag(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !s.starts_with(['.', '-'])
}

/// A Linux network interface name (at most 15 bytes, no `/` or whitespace).
pub fn is_interface_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A sysctl key, e.g. `net.ipv4.ip_forward` or `net.ipv4.conf.eth1.rp_filter`.
pub fn is_sysctl_key(s: &str) -> bool {
    s.len() <= 256
        && s.split(['.', '/'])
            .all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b)))
        && s.contains('.')
}

/// A sysctl value: numbers, words and the space-separated triples of `tcp_rmem`.
pub fn is_sysctl_value(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b" ._:,/-".contains(&b))
        && !s.starts_with(' ')
        && !s.ends_with(' ')
}

/// A POSIX user name as `useradd` accepts it by default.
pub fn is_unix_user(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.as_bytes().first().is_some_and(|b| b.is_ascii_lowercase() || *b == b'_')
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b))
}

/// A local file path: no NUL, no line breaks, no other control characters.
pub fn is_local_path(s: &str) -> bool {
    !s.is_empty() && s.len() <= 4096 && !s.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_follow_rfc_1123() {
        assert!(is_dns_subdomain("cp-1.example.com"));
        for bad in ["CP1", "cp_1", "-cp", "cp-", "a..b", "", "cp1 ", "cp1;rm"] {
            assert!(!is_dns_subdomain(bad), "{bad:?}");
        }
        assert!(!is_dns_subdomain(&"a".repeat(254)));
        assert_eq!(suggest_dns_subdomain("Worker_01"), "worker-01");
    }

    #[test]
    fn labels_and_restrictions() {
        assert!(is_label_key("example.com/rack"));
        assert!(is_label_key("rack"));
        assert!(!is_label_key("example.com/"));
        assert!(!is_label_key("bad prefix/x"));
        assert!(is_label_value(""));
        assert!(!is_label_value("a b"));
        assert!(is_restricted_label("node-role.kubernetes.io/worker"));
        assert!(!is_restricted_label("node.kubernetes.io/pool"));
        assert!(!is_restricted_label("topology.kubernetes.io/zone"));
        assert!(!is_restricted_label("example.com/tier"));
    }

    #[test]
    fn urls_reject_injection() {
        assert!(is_safe_url("https://mirror.gcr.io"));
        assert!(is_safe_url("http://10.0.0.5:5000/v2"));
        assert!(is_safe_url("https://[fd00::1]:5000"));
        for bad in [
            "ftp://x",
            "https://",
            "https://a b",
            "https://x\"]\n[evil]",
            "https://x';reboot;'",
            "https://x:99999",
            "https://x:",
            "https://x\\y",
        ] {
            assert!(!is_safe_url(bad), "{bad:?}");
        }
    }

    #[test]
    fn sysctl_and_interface_names() {
        assert!(is_sysctl_key("net.ipv4.conf.eth1.rp_filter"));
        assert!(!is_sysctl_key("net..x"));
        assert!(!is_sysctl_key("noseparator"));
        assert!(is_sysctl_value("4096 12582912 16777216"));
        assert!(!is_sysctl_value("1\nkernel.panic=1"));
        assert!(is_interface_name("enp0s8"));
        assert!(!is_interface_name("eth1; reboot"));
        assert!(!is_interface_name("averyveryverylongname"));
    }
}
