//! `install-packages`: containerd and kubeadm, kubelet, kubectl at the exact version, held;
//! `cri-tools` of the same minor (crictl: kubeadm's preflight requires it, and kubewright
//! reaches etcd and the static pods through it, while kubeadm >= 1.32 no longer depends on
//! it), and below 1.32 `conntrack` (kubeadm's mandatory `FileExisting-conntrack` check).

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

/// `$1` the downloaded key, `$2` the fingerprint it must have (40 upper-case hex digits), `$3`
/// where it came from. Passes only for a file holding exactly one key whose primary key has
/// that fingerprint: a second key in the file would be trusted by apt as well. gpg reads it in
/// a home of its own, removed afterwards (root's keyrings stay as they are), its messages kept
/// apart from the listing; `--with-colons` prints the primary key's fingerprint in field 10 of
/// the first `fpr` record after `pub` (gnupg's doc/DETAILS).
const CHECK_KEY: &str = r#"set -eu
key=$1 want=$2 url=$3
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
trap 'exit 143' HUP INT TERM
if ! listed=$(gpg --homedir "$home" --batch --show-keys --with-colons --with-fingerprint "$key" 2>"$home/errors"); then
  echo "the signing key from $url is not an OpenPGP key gpg can read: $(cat "$home/errors")" >&2; exit 1
fi
keys=0 got=
while IFS=: read -r kind f2 f3 f4 f5 f6 f7 f8 f9 fpr rest; do
  case $kind in
    pub) keys=$((keys + 1)) ;;
    fpr) if [ "$keys" = 1 ] && [ -z "$got" ]; then got=$fpr; fi ;;
  esac
done <<LISTED
$listed
LISTED
if [ "$keys" != 1 ]; then
  echo "the file from $url holds $keys keys, not the one signing key: check that cluster.packages.mirror serves the Kubernetes repository" >&2; exit 1
fi
if [ "$got" != "$want" ]; then
  echo "the signing key from $url has fingerprint $got, not the pinned $want: check that cluster.packages.mirror serves the Kubernetes repository's key, or set cluster.packages.keyFingerprint to the fingerprint of the key you trust" >&2; exit 1
fi"#;

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
        let companions = companion_changes(facts, version);
        if stale.is_empty() && !need_containerd && companions.is_empty() && actions.is_empty() {
            return Decision::Skip {
                reason: format!(
                    "containerd and cri-tools {}.{} installed; kubeadm, kubelet and kubectl {version} installed and held",
                    version.major, version.minor
                ),
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
        changes.extend(companions);
        actions.push(Action::Packages { changes, update_index: true, hold: KUBE_PACKAGES.map(String::from).to_vec() });
        add_or_change(actions)
    }
}

/// The packages kubeadm needs beside itself that `version`'s packages may not bring: cri-tools
/// of the minor (unpinned: its patch releases are its own, and the minor's repository holds
/// only that minor's), and `conntrack` from the distribution below 1.32. Neither is held.
pub(super) fn companion_changes(facts: &HostFacts, version: crate::version::Version) -> Vec<PackageChange> {
    let mut changes = Vec::new();
    let cri_tools = facts.packages.get("cri-tools");
    // An older minor is moved up; a newer one (installed by hand) stays: apt would keep it.
    if cri_tools.is_none_or(|v| (v.major, v.minor) < (version.major, version.minor)) {
        changes.push(PackageChange {
            name: "cri-tools".into(),
            from: cri_tools.map(ToString::to_string),
            to: format!("the v{}.{} repository's", version.major, version.minor),
            pin: None,
        });
    }
    if version.minor < 32 && !facts.installed.contains("conntrack") {
        changes.push(PackageChange {
            name: "conntrack".into(),
            from: None,
            to: "the distribution's".into(),
            pin: None,
        });
    }
    changes
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
        let pin = cluster.packages.key_fingerprint.as_deref();
        // Unpinned, the key is whatever the mirror serves: it must come over https, redirects
        // included (curl's --proto limits those too). Pinned, http is fine: the key is checked
        // here, and apt checks the signed Release file against it.
        let mut curl = vec!["curl", "-fsSL"];
        if pin.is_none() {
            curl.extend(["--proto", "=https"]);
        }
        curl.extend(["-o", ARMORED_KEY, key_url.as_str()]);
        // Download, check, then convert: a pipe would hide a failed download (dash has no
        // pipefail) and leave an empty keyring behind; a key that fails its check never
        // reaches the keyring.
        let mut commands = Script::new()
            .cmd(["install", "-d", "-m", "0755", "/etc/apt/keyrings"])
            .remove_on_exit(ARMORED_KEY)
            .cmd(curl);
        if let Some(pin) = pin {
            commands = commands.cmd(["sh", "-c", CHECK_KEY, "sh", ARMORED_KEY, pin, key_url.as_str()]);
        }
        actions.push(Action::Run {
            description: match pin {
                Some(pin) => format!(
                    "trust the signing key of the Kubernetes {} repository, once its fingerprint is {pin}",
                    version.minor_channel()
                ),
                None => format!(
                    "trust the signing key of the Kubernetes {} repository as served over https (not pinned)",
                    version.minor_channel()
                ),
            },
            commands: commands.cmd(["gpg", "--dearmor", "--yes", "-o", KEYRING, ARMORED_KEY]),
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
