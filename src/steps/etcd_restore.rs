//! `etcd-restore-*` and `restart-kubelet`: put an etcd snapshot back on every control plane,
//! the procedure of Kubernetes' "Operating etcd clusters" (restoring an etcd cluster): stop
//! every API server, restore every etcd member from the same snapshot, start them, then the
//! API servers, and restart the components that cached the old state (the controllers and
//! schedulers with the API servers, every kubelet).
//!
//! kubeadm's stacked etcd runs as a static pod, so stopping a component is moving its
//! manifest out of the kubelet's directory (into [`PARKED_MANIFESTS`]) and starting it is
//! moving it back. Each member is restored (`etcdutl snapshot restore`, with the whole new
//! membership and a token of this snapshot) into a directory beside the live data first,
//! while everything still runs: a bad snapshot stops the run there, with nothing changed.
//! The swap is two renames inside the data directory (a mount point on many hosts), and
//! the data it replaces stays there as `member.before-restore-TIME`.

use super::Step;
use crate::facts::{HostFacts, PARKED_MANIFESTS};
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::playbook::SnapshotInput;
use crate::script::Script;

/// Where the snapshot is sent on each control plane (removed once the restore is done).
pub const REMOTE_SNAPSHOT: &str = "/var/lib/kubewright/restore/snapshot.db";

/// The components stopped for the restore, etcd last (it stops after its clients).
const COMPONENTS: [&str; 4] = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"];

/// `$1` data dir, `$2` member name, `$3` initial cluster, `$4` cluster token, `$5` peer URL,
/// `$6` the snapshot's SHA-256, `$7` etcd's image. `etcdutl` runs in the member's container,
/// or in one of its image where the member does not run (see [`crate::etcd`]); both see the
/// data directory only: the snapshot is moved there for it.
const STAGE: &str = r#"set -eu
data=$1 name=$2 cluster=$3 token=$4 peer=$5 sha=$6 image=$7
snap=/var/lib/kubewright/restore/snapshot.db
staged="$data/kubewright-restore-$(printf %.12s "$sha")"
inside="$staged.db"
if ! printf '%s  %s\n' "$sha" "$snap" | sha256sum -c --quiet >/dev/null 2>&1; then rm -f "$snap"; echo "$snap is not the snapshot sent (SHA-256 differs): run the restore again" >&2; exit 1; fi
# A snapshot that fails its checks leaves nothing behind; the restored data stays once made.
trap 'rm -rf "$snap" "$inside" "$staged"' EXIT
trap 'exit 143' HUP INT TERM
mv "$snap" "$inside"
etcdutl_at "$image" "$data" snapshot status "$inside" -w table
rm -rf "$staged"
etcdutl_at "$image" "$data" snapshot restore "$inside" --name="$name" --initial-cluster="$cluster" --initial-cluster-token="$token" --initial-advertise-peer-urls="$peer" --data-dir="$staged"
trap - EXIT
rm -f "$inside""#;

/// `$@`: the manifests to park (by component name).
const PARK: &str = r#"set -eu
park=/etc/kubewright/restore/manifests
install -d -m 0700 "$park"
for c in "$@"; do
  if [ -f "/etc/kubernetes/manifests/$c.yaml" ]; then mv "/etc/kubernetes/manifests/$c.yaml" "$park/$c.yaml"; fi
done"#;

/// `$@`: the manifests to put back; each must be either parked or already back.
const UNPARK: &str = r#"set -eu
park=/etc/kubewright/restore/manifests
for c in "$@"; do
  if [ -f "$park/$c.yaml" ]; then mv "$park/$c.yaml" "/etc/kubernetes/manifests/$c.yaml"; fi
  if ! [ -f "/etc/kubernetes/manifests/$c.yaml" ]; then echo "the $c manifest is neither in $park nor in /etc/kubernetes/manifests: put it back by hand" >&2; exit 1; fi
done"#;

/// Succeeds once no etcd or API server container of kube-system runs (by the kubelet's labels,
/// exactly: crictl's `--name` is an unanchored pattern that also matches, say, a workload
/// named `etcd-operator`).
const STOPPED: &str = r#"for c in kube-apiserver etcd; do if [ -n "$(crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label "io.kubernetes.container.name=$c")" ]; then echo "$c still runs" >&2; exit 1; fi; done"#;

/// `$1` data dir, `$2` the snapshot's SHA-256. The swap of a run that stopped half-way is
/// finished; one already done (recorded) is not done twice.
const SWAP: &str = r#"set -eu
data=$1 run=$(printf %.12s "$2")
staged="$data/kubewright-restore-$run" done_mark="/var/lib/kubewright/restore/swapped-$run"
if [ -d "$staged/member" ]; then
  # -T: never into an earlier restore's directory of the same second.
  if [ -e "$data/member" ]; then mv -T "$data/member" "$data/member.before-restore-$(date -u +%Y%m%dT%H%M%SZ)"; fi
  mv "$staged/member" "$data/member"
  rmdir "$staged"
  touch "$done_mark"
elif ! [ -f "$done_mark" ]; then
  echo "the restored data ($staged) is gone and this restore did not put it in place: run kubewright etcd restore again with --restart" >&2; exit 1
fi"#;

/// `$1` the snapshot's SHA-256: what only the restore needed.
const CLEAN_UP: &str = r#"set -eu
rm -f /var/lib/kubewright/restore/snapshot.db "/var/lib/kubewright/restore/swapped-$(printf %.12s "$1")"
rmdir /etc/kubewright/restore/manifests /etc/kubewright/restore /var/lib/kubewright/restore 2>/dev/null || true"#;

/// What every restore step plans with: the snapshot `kubewright etcd restore` gave the step,
/// and the host's etcd member; or why the step cannot be planned on this host.
fn inputs<'a>(
    cx: &'a PlanCx<'_>,
    host: &Host,
    facts: &'a HostFacts,
) -> Result<(&'a SnapshotInput, &'a crate::facts::EtcdMember), Decision> {
    let snapshot = cx.step.snapshot.as_ref().ok_or_else(|| Decision::Blocked {
        problems: vec![format!(
            "step `{}` restores the snapshot `kubewright etcd restore FILE` names; a playbook cannot run it",
            cx.step.id
        )],
    })?;
    let member = facts.etcd_member.as_ref().ok_or_else(|| Decision::Blocked {
        problems: vec![format!(
            "{} has no etcd manifest (/etc/kubernetes/manifests/etcd.yaml, nor one parked in {PARKED_MANIFESTS}): kubewright restores kubeadm's stacked etcd, one member on every control plane",
            host.name
        )],
    })?;
    Ok((snapshot, member))
}

fn sh(script: &str, args: &[&str]) -> Script {
    let mut words = vec!["sh", "-c", script, "sh"];
    words.extend_from_slice(args);
    Script::new().cmd(words)
}

pub struct EtcdRestoreStage;

impl Step for EtcdRestoreStage {
    fn id(&self) -> &'static str {
        "etcd-restore-stage"
    }

    fn title(&self) -> &'static str {
        "Send the snapshot to every control plane and restore it beside etcd's data"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let (snapshot, member) = match inputs(cx, host, facts) {
            Ok(i) => i,
            Err(d) => return d,
        };
        // Every control plane's member, as its manifest names it: the membership the
        // snapshot's cluster starts with. A control plane without one is blocked on its own.
        let initial_cluster = cx
            .inventory
            .control_planes()
            .filter_map(|cp| cx.facts.hosts.get(&cp.name)?.etcd_member.as_ref())
            .map(|m| format!("{}={}", m.name, m.peer_url))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!("kubewright-restore-{}", &snapshot.sha256[..12]);
        Decision::Change {
            actions: vec![
                Action::Upload {
                    local: snapshot.local.clone(),
                    remote: REMOTE_SNAPSHOT.into(),
                    mode: "0600".into(),
                    sha256: snapshot.sha256.clone(),
                },
                Action::Run {
                    description: format!(
                        "check the snapshot (SHA-256, snapshot status) and restore it into {}/kubewright-restore-{} as member {} of {initial_cluster} (etcd keeps running meanwhile)",
                        member.data_dir,
                        &snapshot.sha256[..12],
                        member.name
                    ),
                    commands: sh(
                        &format!("{}{}{STAGE}", crate::etcd::ETCD_CLIENT, crate::etcd::ETCDUTL_ANYWHERE),
                        &[
                            &member.data_dir,
                            &member.name,
                            &initial_cluster,
                            &token,
                            &member.peer_url,
                            &snapshot.sha256,
                            &member.image,
                        ],
                    ),
                },
            ],
        }
    }
}

pub struct EtcdRestoreStop;

impl Step for EtcdRestoreStop {
    fn id(&self) -> &'static str {
        "etcd-restore-stop"
    }

    fn title(&self) -> &'static str {
        "Stop the API servers, controllers, schedulers and etcd members"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if let Err(d) = inputs(cx, host, facts) {
            return d;
        }
        Decision::Change {
            actions: vec![
                Action::Run {
                    description: format!(
                        "move the static pod manifests of {} to {PARKED_MANIFESTS} (the kubelet stops them; the cluster's API is down from here until the restore's last control plane starts)",
                        COMPONENTS.join(", ")
                    ),
                    commands: sh(PARK, &COMPONENTS),
                },
                Action::Probe {
                    description: "no API server or etcd container runs any more".into(),
                    commands: sh(STOPPED, &[]),
                    timeout_s: cx.ready_timeout_s(),
                },
            ],
        }
    }
}

pub struct EtcdRestoreData;

impl Step for EtcdRestoreData {
    fn id(&self) -> &'static str {
        "etcd-restore-data"
    }

    fn title(&self) -> &'static str {
        "Put the restored data in place and start etcd"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let (snapshot, member) = match inputs(cx, host, facts) {
            Ok(i) => i,
            Err(d) => return d,
        };
        Decision::Change {
            actions: vec![
                Action::Run {
                    description: format!(
                        "replace {dir}/member with the restored one (the data it replaces stays as {dir}/member.before-restore-TIME)",
                        dir = member.data_dir
                    ),
                    commands: sh(SWAP, &[&member.data_dir, &snapshot.sha256]),
                },
                Action::Run {
                    description: "move etcd's manifest back: the member starts from the restored data".into(),
                    commands: sh(UNPARK, &["etcd"]),
                },
            ],
        }
    }
}

pub struct EtcdRestoreStart;

impl Step for EtcdRestoreStart {
    fn id(&self) -> &'static str {
        "etcd-restore-start"
    }

    fn title(&self) -> &'static str {
        "Start the control plane on the restored etcd"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let (snapshot, _) = match inputs(cx, host, facts) {
            Ok(i) => i,
            Err(d) => return d,
        };
        Decision::Change {
            actions: vec![
                Action::Probe {
                    description: "the etcd member answers healthy (once a quorum of the restored members runs)".into(),
                    commands: crate::etcd::etcd_probe(),
                    timeout_s: cx.ready_timeout_s(),
                },
                Action::Run {
                    description:
                        "move the manifests of kube-apiserver, kube-controller-manager and kube-scheduler back".into(),
                    commands: sh(UNPARK, &COMPONENTS[..3]),
                },
                super::apiserver_ready(cx, host),
                Action::Run {
                    description: format!("remove the copy of the snapshot ({REMOTE_SNAPSHOT})"),
                    commands: sh(CLEAN_UP, &[&snapshot.sha256]),
                },
            ],
        }
    }
}

pub struct RestartKubelet;

impl Step for RestartKubelet {
    fn id(&self) -> &'static str {
        "restart-kubelet"
    }

    fn title(&self) -> &'static str {
        "Restart the kubelets, so that none works from state cached before"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let Some(kubelet) = facts.packages.get("kubelet").filter(|_| facts.joined) else {
            return Decision::Skip { reason: "not a node of the cluster (no kubelet that joined)".into() };
        };
        let wait = Action::Wait {
            description: format!("node {} is Ready", host.name),
            nodes: vec![host.name.clone()],
            version: format!("v{kubelet}"),
            etcd: false,
            timeout_s: cx.ready_timeout_s(),
        };
        // Workers have no admin kubeconfig: their wait runs on the first control plane.
        let wait = if host.is_control_plane() {
            wait
        } else {
            Action::Via { on: cx.inventory.first_control_plane().name.clone(), action: Box::new(wait) }
        };
        Decision::Change {
            actions: vec![
                Action::Run {
                    description: "restart the kubelet".into(),
                    commands: Script::new().cmd(["systemctl", "restart", "kubelet"]),
                },
                wait,
            ],
        }
    }
}
