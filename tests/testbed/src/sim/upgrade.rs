//! `kubeadm upgrade plan | apply | node` (kubeadm-behaviour.md §5): one minor at a time,
//! the kubeadm binary's version policy (k/k phases/upgrade/policy.go), static pod manifests
//! and ClusterConfiguration moved to the target, certificates renewed as kubeadm does.

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::Path;

use super::Outcome;
use super::cluster::{read_cluster, with_cluster};
use super::kubeadm::V;

fn preamble(v: V) -> String {
    if v.minor <= 31 {
        "[preflight] Running pre-flight checks.\n[upgrade/config] Reading configuration from the cluster...\n[upgrade/config] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n[upgrade] Running cluster health checks\n".into()
    } else {
        "[preflight] Running pre-flight checks.\n[upgrade/config] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n[upgrade/config] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n[upgrade] Running cluster health checks\n".into()
    }
}

fn is_control_plane_host() -> bool {
    Path::new("/etc/kubernetes/manifests/kube-apiserver.yaml").exists()
}

fn fatal(msg: &str) -> Outcome {
    Outcome::fail(1, format!("{msg}\nTo see the stack trace of this error execute with --v=5 or higher\n"))
}

pub fn upgrade(kubeadm: V, args: &[String]) -> anyhow::Result<Outcome> {
    let cluster = read_cluster();
    if !cluster.initialized
        || !Path::new("/etc/kubernetes/admin.conf").exists() && args.first().map(String::as_str) != Some("node")
    {
        return Ok(fatal(
            "[upgrade/config] FATAL: failed to get config map: Get \"https://localhost:6443/api/v1/namespaces/kube-system/configmaps/kubeadm-config?timeout=10s\": dial tcp 127.0.0.1:6443: connect: connection refused",
        ));
    }
    let Some(current) = V::parse(&cluster.kubernetes_version) else {
        return Ok(fatal("[upgrade/config] FATAL: the cluster has no kubernetesVersion in its ClusterConfiguration"));
    };
    match args.first().map(String::as_str) {
        Some("plan") => Ok(plan(kubeadm, current, &cluster)),
        Some("apply") => apply(kubeadm, current, &args[1..]),
        Some("node") => node(kubeadm, current),
        _ => Ok(Outcome::fail(1, "kubeadm upgrade: the simulator knows plan, apply and node\n")),
    }
}

/// Version policy for `upgrade apply` (policy.go); mandatory and skippable errors.
fn policy(kubeadm: V, current: V, target: V, kubelets: &[V]) -> (Vec<String>, Vec<String>) {
    let mut mandatory = Vec::new();
    let mut skippable = Vec::new();
    if target.minor + 1 < kubeadm.minor {
        mandatory.push(format!("Specified version to upgrade to \"{target}\" is equal to or lower than the minimum supported version \"{current}\". Please specify a higher version to upgrade to"));
    }
    if target.minor > current.minor + 1 {
        mandatory.push(format!("Specified version to upgrade to \"{target}\" is too high; kubeadm can upgrade only 1 minor version at a time"));
    }
    if target.minor + 1 < current.minor {
        mandatory.push(format!("Specified version to downgrade to \"{target}\" is too low; kubeadm can downgrade only 1 minor version at a time"));
    }
    if target.minor > kubeadm.minor {
        mandatory.push(format!("Specified version to upgrade to \"{target}\" is at least one minor release higher than the kubeadm minor release ({} > {}). Such an upgrade is not supported", target.minor, kubeadm.minor));
    } else if target.minor == kubeadm.minor && target.patch > kubeadm.patch {
        skippable.push(format!("Specified version to upgrade to \"{target}\" is higher than the kubeadm version \"{kubeadm}\". Upgrade kubeadm first using the tool you used to install kubeadm"));
    }
    if kubeadm.minor > target.minor {
        skippable.push(format!(
            "Kubeadm version {kubeadm} can only be used to upgrade to Kubernetes version 1.{}",
            kubeadm.minor
        ));
    }
    let too_old: Vec<String> =
        kubelets.iter().filter(|k| k.minor + 3 < target.minor).map(ToString::to_string).collect();
    if !too_old.is_empty() {
        skippable.push(format!(
            "There are kubelets in this cluster that are too old that have these versions [{}]",
            too_old.join(" ")
        ));
    }
    (mandatory, skippable)
}

fn plan(kubeadm: V, current: V, cluster: &super::cluster::Cluster) -> Outcome {
    let mut out = preamble(kubeadm);
    let target = kubeadm;
    let _ = write!(
        out,
        "[upgrade] Fetching available versions to upgrade to\n[upgrade/versions] Cluster version: 1.{}.{}\n[upgrade/versions] kubeadm version: {kubeadm}\n",
        current.minor, current.patch
    );
    out.push_str(&format!("[upgrade/versions] Target version: {target}\n[upgrade/versions] Latest version in the v1.{} series: {target}\n", target.minor));
    let mut stderr = format!(
        "W0101 00:00:00.000000    1 version.go:104] could not fetch a Kubernetes version from the internet: unable to get URL \"https://dl.k8s.io/release/stable-1.txt\"\nW0101 00:00:00.000000    1 version.go:105] falling back to the local client version: {kubeadm}\n"
    );
    if target <= current {
        // Nothing to upgrade: kubeadm only logs "Awesome, you're up-to-date! Enjoy!" at V(1).
        stderr.clear();
        return Outcome { code: 0, stdout: out, stderr };
    }
    let _ = write!(
        out,
        "\nComponents that must be upgraded manually after you have upgraded the control plane with 'kubeadm upgrade apply':\nCOMPONENT   NODE      CURRENT   TARGET\n"
    );
    for (name, n) in &cluster.nodes {
        let _ = writeln!(out, "kubelet     {name:<9} {:<9} {target}", n.kubelet_version);
    }
    let _ = write!(
        out,
        "\nUpgrade to the latest version in the v1.{} series:\n\nCOMPONENT                 NODE      CURRENT    TARGET\n",
        target.minor
    );
    for (name, n) in cluster.nodes.iter().filter(|(_, n)| n.control_plane) {
        let _ = n;
        for c in ["kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
            let _ = writeln!(out, "{c:<25} {name:<9} {:<10} {target}", current);
        }
    }
    let _ = write!(
        out,
        "kube-proxy                          1.{}.{}     {target}\n\nYou can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply {target}\n\n_____________________________________________________________________\n\n",
        current.minor, current.patch
    );
    Outcome { code: 0, stdout: out, stderr }
}

fn apply(kubeadm: V, current: V, args: &[String]) -> anyhow::Result<Outcome> {
    let Some(target) = args.iter().find(|a| !a.starts_with('-')).and_then(|a| V::parse(a)) else {
        return Ok(fatal(
            "[upgrade/version] FATAL: missing one or more required arguments. Required arguments: [version]",
        ));
    };
    if !is_control_plane_host() {
        return Ok(fatal(
            "[upgrade/apply] FATAL: this command must be run on a control plane node: /etc/kubernetes/manifests/kube-apiserver.yaml is missing",
        ));
    }
    let force = args.iter().any(|a| a == "-f" || a == "--force");
    let yes = force || args.iter().any(|a| a == "-y" || a == "--yes");
    let cluster = read_cluster();
    let mut out = preamble(kubeadm);
    let not_ready: Vec<&String> =
        cluster.nodes.iter().filter(|(n, node)| node.control_plane && !cluster.node_ready(n)).map(|(n, _)| n).collect();
    if !not_ready.is_empty() {
        let names: Vec<&str> = not_ready.iter().map(|s| s.as_str()).collect();
        return Ok(Outcome {
            code: 1,
            stdout: out,
            stderr: format!(
                "[upgrade/health] FATAL: [preflight] Some fatal errors occurred:\n\t[ERROR ControlPlaneNodesReady]: there are NotReady control-planes in the cluster: [{}]\n[preflight] If you know what you are doing, you can make a check non-fatal with `--ignore-preflight-errors=...`\nTo see the stack trace of this error execute with --v=5 or higher\n",
                names.join(" ")
            ),
        });
    }
    let _ = write!(
        out,
        "[upgrade/version] You have chosen to change the cluster version to \"{target}\"\n[upgrade/versions] Cluster version: {current}\n[upgrade/versions] kubeadm version: {kubeadm}\n"
    );
    let kubelets: Vec<V> = cluster.nodes.values().filter_map(|n| V::parse(&n.kubelet_version)).collect();
    let (mandatory, skippable) = policy(kubeadm, current, target, &kubelets);
    if !mandatory.is_empty() || (!skippable.is_empty() && !force) {
        let list: String = mandatory.iter().chain(skippable.iter()).map(|m| format!("\t- {m}\n")).collect();
        let tail = if mandatory.is_empty() { "Can be bypassed if you pass the --force flag\n" } else { "" };
        return Ok(Outcome {
            code: 1,
            stdout: out,
            stderr: format!(
                "[upgrade/version] FATAL: the --version argument is invalid due to these fatal errors:\n\n{list}\nPlease fix the misalignments highlighted above and try upgrading again\n{tail}To see the stack trace of this error execute with --v=5 or higher\n"
            ),
        });
    }
    if !yes {
        out.push_str("[upgrade] Are you sure you want to proceed? [y/N]: ");
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        if !matches!(answer.trim(), "y" | "Y") {
            return Ok(Outcome { code: 1, stdout: out, stderr: "won't proceed; the user didn't answer (Y|y) in order to continue\nTo see the stack trace of this error execute with --v=5 or higher\n".into() });
        }
    }
    let node = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    let advertise = with_cluster(|c| Ok(c.nodes.get(&node).map(|n| n.address.clone()).unwrap_or_default()))?;
    let changed = target != current;
    if changed {
        let _ = writeln!(
            out,
            "[upgrade/apply] Upgrading your Static Pod-hosted control plane to version \"{target}\" (timeout: 5m0s)..."
        );
        super::kubeadm::write_manifests_and_wait_for_etcd(target, &advertise)?;
        for c in ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"] {
            let _ = writeln!(out, "[upgrade/staticpods] Component \"{c}\" upgraded successfully!");
        }
        // `upgrade apply` renews the certificates by default (--certificate-renewal=true);
        // a no-op upgrade renews nothing (kubernetes/kubeadm#2308).
        super::certs::renew_all_quietly()?;
    }
    with_cluster(|c| {
        c.kubernetes_version = target.to_string();
        c.cluster_config_yaml = c.cluster_config_yaml.replace(&current.to_string(), &target.to_string());
        c.event(&format!("upgrade-apply {target}"), &node);
        Ok(())
    })?;
    if kubeadm.minor <= 31 {
        let _ = write!(
            out,
            "\n[upgrade/successful] SUCCESS! Your cluster was upgraded to \"{target}\". Enjoy!\n\n[upgrade/kubelet] Now that your control plane is upgraded, please proceed with upgrading your kubelets if you haven't already done so.\n"
        );
    } else {
        let _ = write!(
            out,
            "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!\n[upload-config] Storing the configuration used in ConfigMap \"kubeadm-config\" in the \"kube-system\" Namespace\n[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!\n\n[upgrade] SUCCESS! A control plane node of your cluster was upgraded to \"{target}\".\n\n[upgrade] Now please proceed with upgrading the rest of the nodes by following the right order.\n"
        );
    }
    Ok(Outcome::ok(out))
}

fn node(kubeadm: V, current: V) -> anyhow::Result<Outcome> {
    // The node follows the cluster's version; its kubeadm must be able to deploy it.
    if current.minor > kubeadm.minor || current.minor + 1 < kubeadm.minor {
        return Ok(fatal(&format!(
            "this version of kubeadm only supports deploying clusters with the control plane version >= 1.{}.0. Current version: {current}",
            kubeadm.minor.saturating_sub(1)
        )));
    }
    let node = std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default();
    let control_plane = is_control_plane_host();
    let mut out = if kubeadm.minor <= 31 {
        String::from(
            "[upgrade] Reading configuration from the cluster...\n[upgrade] FYI: You can look at this config file with 'kubectl -n kube-system get cm kubeadm-config -o yaml'\n[preflight] Running pre-flight checks\n",
        )
    } else {
        String::from(
            "[upgrade] Reading configuration from the \"kubeadm-config\" ConfigMap in namespace \"kube-system\"...\n[upgrade] Use 'kubeadm init phase upload-config --config your-config.yaml' to re-upload it.\n[upgrade/preflight] Running pre-flight checks\n",
        )
    };
    if control_plane {
        let advertise = read_cluster().nodes.get(&node).map(|n| n.address.clone()).unwrap_or_default();
        let manifest = std::fs::read_to_string("/etc/kubernetes/manifests/kube-apiserver.yaml").unwrap_or_default();
        if !manifest.contains(&format!("kube-apiserver:{current}")) {
            super::kubeadm::write_manifests_and_wait_for_etcd(current, &advertise)?;
            super::certs::renew_all_quietly()?;
        }
        out.push_str(if kubeadm.minor <= 31 {
            "[upgrade] The control plane instance for this node was successfully upgraded!\n"
        } else {
            "[upgrade/control-plane] The control plane instance for this node was successfully upgraded!\n"
        });
    } else if kubeadm.minor <= 31 {
        out.push_str("[preflight] Skipping prepull. Not a control plane node.\n[upgrade] Skipping phase. Not a control plane node.\n[upgrade] Skipping phase. Not a control plane node.\n");
    } else {
        out.push_str("[upgrade/preflight] Skipping prepull. Not a control plane node.\n[upgrade/control-plane] Skipping phase. Not a control plane node.\n[upgrade/kubeconfig] Skipping phase. Not a control plane node.\n");
    }
    let _ = writeln!(
        out,
        "[upgrade] Backing up kubelet config file to /etc/kubernetes/tmp/kubeadm-kubelet-config{}/config.yaml\n[kubelet-start] Writing kubelet configuration to file \"/var/lib/kubelet/config.yaml\"",
        rand::random_range(1_000_000_000u64..4_000_000_000)
    );
    if kubeadm.minor <= 31 {
        out.push_str("[upgrade] The configuration for this node was successfully updated!\n[upgrade] Now you should go ahead and upgrade the kubelet package using your package manager.\n");
    } else {
        out.push_str("[upgrade/kubelet-config] The kubelet configuration for this node was successfully upgraded!\n[upgrade/addon] Skipping the addon/coredns phase. Not a control plane node.\n[upgrade/addon] Skipping the addon/kube-proxy phase. Not a control plane node.\n");
    }
    with_cluster(|c| {
        c.event(&format!("upgrade-node {current}"), &node);
        Ok(())
    })?;
    Ok(Outcome::ok(out))
}
