//! `install-packages`: containerd and kubeadm, kubelet, kubectl at the exact version, held.

use super::{Step, add_or_change, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PackageChange, PlanCx};
use crate::render::FileKind;
use crate::script::Script;

pub struct InstallPackages;

pub const KUBE_PACKAGES: [&str; 3] = ["kubeadm", "kubelet", "kubectl"];
use super::APT_KEYRING as KEYRING;
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
        let mut changes = Vec::new();
        if need_containerd {
            changes.push(PackageChange {
                name: cluster.packages.containerd_package.clone(),
                from: None,
                to: "repository version".into(),
                pin: None,
            });
        }
        changes.extend(stale.iter().map(|p| PackageChange {
            name: p.to_string(),
            from: facts.packages.get(*p).map(ToString::to_string),
            to: version.to_string(),
            pin: Some(version.deb_version()),
        }));
        actions.push(Action::Packages { changes, update_index: true, hold: KUBE_PACKAGES.map(String::from).to_vec() });
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

/// `packages` at `version`, held there (`apt-get update` first: the repository may have just
/// changed).
pub(super) fn install_held(facts: &HostFacts, packages: &[&str], version: crate::version::Version) -> Action {
    Action::Packages {
        changes: packages
            .iter()
            .map(|p| PackageChange {
                name: p.to_string(),
                from: facts.packages.get(*p).map(ToString::to_string),
                to: version.to_string(),
                pin: Some(version.deb_version()),
            })
            .collect(),
        update_index: true,
        hold: packages.iter().map(|p| p.to_string()).collect(),
    }
}
