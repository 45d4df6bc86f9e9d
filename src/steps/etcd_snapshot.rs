//! `etcd-snapshot`: before an upgrade changes anything, a snapshot of etcd on the first control
//! plane (`etcdctl snapshot save`, checked with `etcdutl snapshot status`, both in the etcd
//! member's container: see [`crate::etcd`]) and a backup of its PKI, both kept on the host and
//! copied to the bastion (`certificates.keepBackups` copies of each).

use super::Step;
use super::renew_certificates::{BACK_UP, BACKUP_DIR, LATEST_BACKUP};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;

pub struct EtcdSnapshot;

/// The snapshot this run made (removed first, so a failed save never passes for a new one).
pub const LATEST_SNAPSHOT: &str = "/var/lib/kubewright/backups/etcd-latest.db";

/// `$1`: how many snapshots to keep on the host, `$2` etcd's data directory. The client
/// certificate is the etcd server's own, as kubeadm's backup documentation uses it.
/// etcd's container sees the host's data directory only, so the snapshot is saved there (etcd
/// only warns of other files in it: etcdmain/etcd.go, identifyDataDirOrDie) and moved to the
/// backups once `etcdutl` has read it back.
/// A snapshot that cannot be saved or read back is removed, never kept among the good ones.
const SNAPSHOT: &str = r#"set -eu
keep=$1 data=$2 d=/var/lib/kubewright/backups
install -d -m 0700 "$d"
# What a run cut off before its trap ran left in etcd's data directory (a lost link can end the
# shell by SIGPIPE).
rm -f "$data"/kubewright-snapshot-*.db "$data"/kubewright-snapshot-*.db.part
rm -f "$d/etcd-latest.db"
stamp=$(date -u +%Y%m%dT%H%M%SZ)
f="$d/etcd-$stamp.db" inside="$data/kubewright-snapshot-$stamp.db"
umask 077
trap 'rm -f "$f" "$f.part" "$inside" "$inside.part"' EXIT
trap 'exit 143' HUP INT TERM
etcdctl_as server snapshot save "$inside"
etcdutl_in snapshot status "$inside" -w table
mv "$inside" "$f"
chmod 0600 "$f"
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
        let member = match &facts.etcd_member {
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
            Some(member) => member,
        };
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
                    commands: Script::new().cmd([
                        "sh",
                        "-c",
                        &format!("{}{SNAPSHOT}", crate::etcd::ETCD_CLIENT),
                        "sh",
                        &keep.to_string(),
                        &member.data_dir,
                    ]),
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
