//! `install-packages`: containerd and kubeadm, kubelet, kubectl at the exact version, held.

use super::{Step, add_or_change, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::FileKind;
use crate::script::Script;

pub struct InstallPackages;

pub const KUBE_PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];
const KEYRING: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.gpg";
/// The key as downloaded (ASCII armor), removed once converted.
const ARMORED_KEY: &str = "/etc/apt/keyrings/kubernetes-apt-keyring.asc.download";

impl Step for InstallPackages {
    fn id(&self) -> &'static str {
        "install-packages"
    }

    fn title(&self) -> &'static str {
        "Install containerd and the Kubernetes packages"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let cluster = &cx.inventory.cluster;
        let version = cluster.kubernetes_version;

        let mut actions = repository_actions(cx, host, facts);

        let stale: Vec<&str> = KUBE_PACKAGES.into_iter().filter(|p| facts.packages.get(*p) != Some(&version)).collect();
        let need_containerd = !facts.containerd_installed;
        if stale.is_empty() && !need_containerd && actions.is_empty() {
            return Decision::Skip {
                reason: format!("containerd installed; kubeadm, kubelet and kubectl {version} installed and held"),
            };
        }
        if need_containerd {
            actions.push(Action::Package {
                name: cluster.packages.containerd_package.clone(),
                from: None,
                to: "repository version".into(),
                hold: false,
            });
        }
        for p in &stale {
            actions.push(Action::Package {
                name: p.to_string(),
                from: facts.packages.get(*p).map(ToString::to_string),
                to: version.to_string(),
                hold: true,
            });
        }
        let mut install = vec![
            "env".to_string(),
            "DEBIAN_FRONTEND=noninteractive".into(),
            "apt-get".into(),
            "install".into(),
            "-y".into(),
            "-q".into(),
            "--allow-change-held-packages".into(),
        ];
        if need_containerd {
            install.push(cluster.packages.containerd_package.clone());
        }
        install.extend(stale.iter().map(|p| format!("{p}={}", version.deb_version())));
        actions.push(Action::Run {
            description: "install the packages and hold the Kubernetes ones at this version".into(),
            commands: Script::new()
                .cmd(["apt-get", "update", "-q"])
                .cmd(install)
                .cmd(["apt-mark", "hold", "kubeadm", "kubelet", "kubectl"]),
        });
        add_or_change(actions)
    }
}

/// The Kubernetes package repository of the inventory's minor (the sources list, and its
/// signing key), when the host does not have it yet.
pub(super) fn repository_actions(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Vec<Action> {
    let cluster = &cx.inventory.cluster;
    let version = cluster.kubernetes_version;
    let mut actions = file_actions(cx, host, facts, |k| *k == FileKind::AptSource);
    // The key follows the source: a new repository (another minor) has its own key, and a
    // run that stopped between writing the source and the key must still fetch it.
    if !actions.is_empty() || (cluster.packages.manage_repository && !facts.apt_keyring) {
        let key_url = format!("{}/core:/stable:/{}/deb/Release.key", cluster.packages.mirror, version.minor_channel());
        actions.push(Action::Run {
            description: format!("trust the signing key of the Kubernetes {} repository", version.minor_channel()),
            // Download, then convert: a pipe would hide a failed download (dash has no
            // pipefail) and leave an empty keyring behind.
            commands: Script::new()
                .cmd(["install", "-d", "-m", "0755", "/etc/apt/keyrings"])
                .remove_on_exit(ARMORED_KEY)
                .cmd(["curl", "-fsSL", "-o", ARMORED_KEY, key_url.as_str()])
                .cmd(["gpg", "--dearmor", "--yes", "-o", KEYRING, ARMORED_KEY]),
        });
    }
    actions
}

/// `apt-get install` of `packages` at `version`, held there (`apt-get update` first: the
/// repository may have just changed).
pub(super) fn install_held(packages: &[&str], version: crate::version::Version) -> Script {
    let mut install: Vec<String> =
        ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q", "--allow-change-held-packages"]
            .map(String::from)
            .to_vec();
    install.extend(packages.iter().map(|p| format!("{p}={}", version.deb_version())));
    let mut hold = vec!["apt-mark", "hold"];
    hold.extend(packages);
    Script::new().cmd(["apt-get", "update", "-q"]).cmd(install).cmd(hold)
}
