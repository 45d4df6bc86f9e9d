//! `etcd-snapshot`: before an upgrade changes anything, a snapshot of etcd on the first control
//! plane (`etcdctl snapshot save`, checked with `snapshot status`) and a backup of its PKI, both
//! kept on the host and copied to the bastion (`certificates.keepBackups` copies of each).

use super::Step;
use super::renew_certificates::{BACK_UP, BACKUP_DIR, LATEST_BACKUP};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;

pub struct EtcdSnapshot;

/// The snapshot this run made (removed first, so a failed save never passes for a new one).
pub const LATEST_SNAPSHOT: &str = "/var/lib/kubewright/backups/etcd-latest.db";

/// `$1`: how many snapshots to keep on the host. The client certificate is the etcd server's
/// own, as kubeadm's backup documentation uses it.
/// A snapshot that cannot be saved or read back is removed, never kept among the good ones.
const SNAPSHOT: &str = r#"set -eu
keep=$1 d=/var/lib/kubewright/backups
if ! command -v etcdctl >/dev/null 2>&1; then echo "etcdctl is not installed on this control plane: install it (Debian: apt-get install etcd-client) to take the snapshot" >&2; exit 1; fi
install -d -m 0700 "$d"
rm -f "$d/etcd-latest.db"
f="$d/etcd-$(date -u +%Y%m%dT%H%M%SZ).db"
umask 077
trap 'rm -f "$f" "$f.part"' EXIT
trap 'exit 143' HUP INT TERM
ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etc/kubernetes/pki/etcd/ca.crt --cert=/etc/kubernetes/pki/etcd/server.crt --key=/etc/kubernetes/pki/etcd/server.key snapshot save "$f"
ETCDCTL_API=3 etcdctl snapshot status "$f" -w table
trap - EXIT
ln -s "$f" "$d/etcd-latest.db"
i=0
for old in $(ls -1t "$d"/etcd-2*.db); do i=$((i + 1)); if [ "$i" -gt "$keep" ]; then rm -f "$old"; fi; done"#;

impl Step for EtcdSnapshot {
    fn id(&self) -> &'static str {
        "etcd-snapshot"
    }

    fn title(&self) -> &'static str {
        "Snapshot etcd and back up the PKI"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        match &facts.etcd_member {
            None => {
                return Decision::Blocked {
                    problems: vec![format!(
                        "{} runs no etcd member (no /etc/kubernetes/manifests/etcd.yaml): install the cluster first; an external etcd is snapshotted with its own tools",
                        host.name
                    )],
                };
            }
            Some(member) if member.parked => {
                return Decision::Blocked {
                    problems: vec![format!(
                        "a restore on {} has not finished (its manifests are parked): finish it with `kubewright etcd restore FILE` first",
                        host.name
                    )],
                };
            }
            Some(_) => {}
        }
        let keep = cx.inventory.cluster.certificates.keep_backups;
        let fetch = |remote: &str, name: &str| Action::Fetch {
            remote: remote.into(),
            local: format!("{}/backups/{}/{name}", cx.state_dir, host.name),
            mode: "0600".into(),
            kubeconfig_server: None,
            keep: Some(keep),
        };
        Decision::Verify {
            actions: vec![
                Action::Run {
                    description: format!("snapshot etcd to {BACKUP_DIR} and check it (keeping {keep})"),
                    commands: Script::new().cmd(["sh", "-c", SNAPSHOT, "sh", &keep.to_string()]),
                },
                fetch(LATEST_SNAPSHOT, "etcd-snapshot.db"),
                Action::Run {
                    description: format!(
                        "back up /etc/kubernetes/pki and the kubeconfigs to {BACKUP_DIR} (keeping {keep})"
                    ),
                    commands: Script::new().cmd(["sh", "-c", BACK_UP, "sh", &keep.to_string()]),
                },
                fetch(LATEST_BACKUP, "pki.tar.gz"),
            ],
        }
    }
}
