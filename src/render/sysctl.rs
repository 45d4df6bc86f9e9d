//! The kernel parameters each host gets, in labelled sections.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::inventory::{Cluster, Host};

/// Needed on every node whatever the inventory says: kubeadm's preflight fails without
/// forwarding, and bridged pod traffic must traverse iptables for Services to work.
pub const REQUIRED: &[(&str, &str)] = &[
    ("net.bridge.bridge-nf-call-ip6tables", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
    ("net.ipv4.ip_forward", "1"),
];

/// The tuning set from the operator notes (seed 002 L2186-2208), opt-in with
/// `cluster.sysctls.tuning`. Two changes from the notes: `kernel.softlockup_panic=1` is left
/// out (it panics the kernel on a soft lockup; add it to `extra` if you want it), and the
/// notes' `tcp_max_syn_backlog=8096` is taken as the power of two it was meant to be.
pub const TUNING: &[(&str, &str)] = &[
    ("fs.file-max", "2097152"),
    ("fs.inotify.max_queued_events", "16384"),
    ("fs.inotify.max_user_instances", "8192"),
    ("fs.inotify.max_user_watches", "524288"),
    ("kernel.softlockup_all_cpu_backtrace", "1"),
    ("net.core.netdev_max_backlog", "16384"),
    ("net.core.rmem_max", "16777216"),
    ("net.core.somaxconn", "32768"),
    ("net.core.wmem_max", "16777216"),
    ("net.ipv4.tcp_max_syn_backlog", "8192"),
    ("net.ipv4.tcp_rmem", "4096 12582912 16777216"),
    ("net.ipv4.tcp_slow_start_after_idle", "0"),
    ("net.ipv4.tcp_wmem", "4096 12582912 16777216"),
    ("vm.max_map_count", "262144"),
];

#[derive(Debug, Serialize)]
pub struct Section {
    pub title: &'static str,
    pub values: BTreeMap<String, String>,
}

/// Sections in the order they are written. A key set by a later section is dropped from
/// the earlier ones, so the file holds each key once.
pub fn sections(cluster: &Cluster, host: &Host) -> Vec<Section> {
    let to_map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let mut sections = vec![Section {
        title: "Required by Kubernetes networking (kubeadm preflight, kube-proxy, flannel)",
        values: to_map(REQUIRED),
    }];
    if cluster.sysctls.tuning {
        sections.push(Section { title: "Node tuning (cluster.sysctls.tuning)", values: to_map(TUNING) });
    }
    sections.push(Section { title: "Cluster settings (cluster.sysctls.extra)", values: cluster.sysctls.extra.clone() });
    sections.push(Section { title: "This host (hosts[].sysctls)", values: host.sysctls.clone() });
    for i in (0..sections.len()).rev() {
        let later: Vec<String> = sections[i + 1..].iter().flat_map(|s| s.values.keys().cloned()).collect();
        sections[i].values.retain(|k, _| !later.contains(k));
    }
    sections.retain(|s| !s.values.is_empty());
    sections
}

/// The `key = value` lines of a rendered sysctl file, values with whitespace collapsed (as
/// facts report the kernel's).
pub fn values(content: &str) -> Vec<(String, String)> {
    content
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (k.trim().trim_start_matches('-').to_string(), v.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .collect()
}
