//! `reset-node`: tear one node down for `kubewright reset`: `kubeadm reset --force` (kubelet
//! stopped, static pods, PKI, kubeconfigs and etcd data gone), the pod network's configuration
//! and the iptables rules kube-proxy and flannel made, and what kubewright itself wrote there
//! (its sysctl and module files, `/etc/kubewright`, its `/etc/hosts` line). Packages, containerd
//! and the backups in /var/lib/kubewright/backups stay.

use super::Step;
use crate::facts::{HOSTS_MARK, HostFacts};
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{STATE_DIR, SYSCTL_FILE};
use crate::script::Script;

pub struct ResetNode;

/// The module list kubewright writes (render's `modules-load.conf.j2`).
const MODULES_FILE: &str = "/etc/modules-load.d/kubewright.conf";

/// Flushes the filter, nat and mangle tables and deletes their chains, as kubeadm's reset
/// output tells the admin to ("If you wish to reset iptables, you must do so manually by using
/// the \"iptables\" command", cmd/kubeadm/app/cmd/reset.go; the kubeadm docs give
/// `iptables -F && iptables -t nat -F && iptables -t mangle -F && iptables -X`). Every built-in
/// chain's policy is set to ACCEPT first: a flush keeps the policies, so on a host whose INPUT
/// policy is DROP with an ACCEPT rule for ssh, the flush would cut the session running it (and
/// every later one). Hosts without iptables have nothing to flush.
const FLUSH_IPTABLES: &str = r#"set -eu
if ! command -v iptables >/dev/null 2>&1; then exit 0; fi
for c in INPUT FORWARD OUTPUT; do iptables -t filter -P "$c" ACCEPT; done
for c in PREROUTING INPUT OUTPUT POSTROUTING; do iptables -t nat -P "$c" ACCEPT; done
for c in PREROUTING INPUT FORWARD OUTPUT POSTROUTING; do iptables -t mangle -P "$c" ACCEPT; done
for t in filter nat mangle; do iptables -t "$t" -F; iptables -t "$t" -X; done"#;

/// `$1`: the marker of kubewright's lines in /etc/hosts; the file is rewritten in place (it may
/// be a bind mount, which a rename would not replace).
const FORGET_HOSTS_LINES: &str = r#"set -eu
mark=$1
kept=$(grep -v -- "$mark\$" /etc/hosts || true)
printf '%s\n' "$kept" > /etc/hosts"#;

impl Step for ResetNode {
    fn id(&self) -> &'static str {
        "reset-node"
    }

    fn title(&self) -> &'static str {
        "Tear the node down"
    }

    fn plan(&self, _cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let kubewright_files: Vec<&str> =
            [SYSCTL_FILE, MODULES_FILE].into_iter().filter(|p| facts.files.contains_key(*p)).collect();
        let hosts_line = facts.etc_hosts.values().any(|e| e.managed);
        if !facts.joined && kubewright_files.is_empty() && !hosts_line {
            return Decision::Skip { reason: "nothing of kubeadm's or kubewright's here".into() };
        }
        let mut actions = Vec::new();
        if facts.joined {
            actions.push(Action::Run {
                description: format!(
                    "kubeadm reset on {} (kubelet stopped; static pods, PKI, kubeconfigs, etcd data removed)",
                    host.name
                ),
                commands: Script::new().cmd(["kubeadm", "reset", "--force"]),
            });
        }
        actions.push(Action::Run {
            description: "remove the pod network's configuration, open the iptables policies (ACCEPT) and flush the rules kube-proxy and flannel made".into(),
            commands: Script::new().cmd(["rm", "-rf", "/etc/cni/net.d"]).cmd(["sh", "-c", FLUSH_IPTABLES]),
        });
        let mut remove = vec!["rm", "-rf", STATE_DIR];
        remove.extend(&kubewright_files);
        let mut cleanup = Script::new().cmd(remove);
        if hosts_line {
            cleanup = cleanup.cmd(["sh", "-c", FORGET_HOSTS_LINES, "sh", HOSTS_MARK]);
        }
        actions.push(Action::Run {
            description: format!(
                "remove what kubewright wrote ({STATE_DIR}, {}{}); packages, containerd and the backups stay",
                if kubewright_files.is_empty() {
                    "no sysctl or module file".to_string()
                } else {
                    kubewright_files.join(", ")
                },
                if hosts_line { ", its /etc/hosts line" } else { "" }
            ),
            commands: cleanup,
        });
        Decision::Change { actions }
    }
}
