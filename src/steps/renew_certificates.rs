//! `renew-certificates`: renew a control plane's kubeadm certificates when the first to expire
//! is within `certificates.renewBefore` (`kubewright certs renew` sets it from
//! `--if-expiring-within`, or to forever with `--force`), one control plane at a time.
//!
//! Per host: back up /etc/kubernetes/pki and the kubeconfigs (a tarball on the host, a copy
//! on the bastion), `kubeadm certs renew all`, restart the static pods (manifests moved out
//! until their containers are gone, then back: the components only read certificates when
//! they start), wait for the local API server's /readyz and the node Ready with its etcd member
//! healthy, check that the API server and etcd serve the new certificates (the serials they
//! present: a server that did not restart still presents the old one), check the new files,
//! refresh /root/.kube/config (and, from the first
//! control plane, the bastion's admin kubeconfig). If anything fails once the renewal has
//! begun, the backup is restored and the static pods restarted with it, and the run stops
//! there; a failure before (the backup, or its copy to the bastion) changes nothing on the host.

use super::Step;
use crate::facts::{HostFacts, RESTART_PENDING};
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;

pub struct RenewCertificates;

/// Where control planes keep the backups of their PKI.
pub const BACKUP_DIR: &str = "/var/lib/kubewright/backups";
/// The backup this run made (removed first, so a failed backup never restores an old one).
pub(super) const LATEST_BACKUP: &str = "/var/lib/kubewright/backups/pki-latest.tar.gz";
/// Written just before `kubeadm certs renew all`, removed when the host is done: the rollback
/// restores the backup and restarts the static pods only while it is there. Without it, a run
/// whose backup could not be copied to the bastion (a full disk there) would restart the
/// control plane's static pods on every attempt, with nothing renewed.
const RENEWAL_MARK: &str = "/var/lib/kubewright/backups/renewal-under-way";

/// `$1`: how many backups to keep on the host. A backup that fails (a full disk) leaves no
/// partial file. An earlier run's renewal mark goes with its backup: this run has renewed
/// nothing yet.
pub(super) const BACK_UP: &str = r#"set -eu
keep=$1 d=/var/lib/kubewright/backups
install -d -m 0700 "$d"
rm -f "$d/pki-latest.tar.gz" "$d/renewal-under-way"
f="$d/pki-$(date -u +%Y%m%dT%H%M%SZ).tar.gz"
cd /etc/kubernetes
set -- pki
for c in admin.conf super-admin.conf controller-manager.conf scheduler.conf; do if [ -f "$c" ]; then set -- "$@" "$c"; fi; done
umask 077
trap 'rm -f "$f.part"' EXIT
trap 'exit 143' HUP INT TERM
tar -czf "$f.part" "$@"
mv "$f.part" "$f"
trap - EXIT
ln -s "$f" "$d/pki-latest.tar.gz"
i=0
for old in $(ls -1t "$d"/pki-2*.tar.gz); do i=$((i + 1)); if [ "$i" -gt "$keep" ]; then rm -f "$old"; fi; done"#;

/// Moves the control plane's static pod manifests out until the kubelet has stopped their
/// containers, then back (kubeadm's documented restart; a trap puts them back whatever happens),
/// and waits (60 s in all) until each pod whose manifest it moved runs in a new container that
/// is still the one running 2 s later. That is what shows the restart happened: an old process
/// the runtime lost (an orphaned container still holding the API server's port) makes each new
/// container exit at once ("address already in use"), and the kubelet starts the next only
/// after its back-off (10 s and more), while every health check answers through the orphan and
/// the orphan presents the renewed files (the API server and etcd both reload them). With `$1`
/// `warn` (the rollback's restart) a pod without such a container after 20 s is said and not a
/// failure: the files are back either way. The containers are found by the labels the kubelet gives them
/// (namespace and container name, matched exactly): crictl's `--name` is an unanchored pattern,
/// and `etcd` also matches a workload such as an in-cluster `etcd-operator`, which would never
/// stop.
const RESTART_STATIC_PODS: &str = r#"set -eu
mode=${1:-}
m=/etc/kubernetes/manifests t=/etc/kubernetes/manifests.kubewright-restart
pods="kube-apiserver kube-controller-manager kube-scheduler etcd"
ids() { crictl ps -q --label io.kubernetes.pod.namespace=kube-system --label "io.kubernetes.container.name=$1"; }
before=
for n in $pods; do now=$(ids "$n"); before="$before $(echo $now)"; done
mkdir -p "$t"
back() { for f in "$t"/*.yaml; do if [ -f "$f" ]; then mv "$f" "$m"/; fi; done; rmdir "$t" 2>/dev/null || true; }
trap back EXIT
trap 'exit 143' HUP INT TERM
moved=
for n in $pods; do if [ -f "$m/$n.yaml" ]; then mv "$m/$n.yaml" "$t"/; moved="$moved $n"; fi; done
i=0
while :; do
  running=
  for n in $pods; do running="$running$(ids "$n")"; done
  if [ -z "$running" ]; then break; fi
  i=$((i + 1))
  if [ "$i" -ge 60 ]; then echo "the static pods still run 120s after their manifests were moved out" >&2; exit 1; fi
  sleep 2
done
back
trap - EXIT
new_of() { for id in $(ids "$1"); do case " $before " in *" $id "*) ;; *) echo "$id"; return ;; esac; done; }
# The rollback's restart only says what it finds: its files are back either way.
wait=60
if [ "$mode" = warn ]; then wait=20; fi
deadline=$(($(date +%s) + wait))
while :; do
  missing= seen=
  for n in $moved; do id=$(new_of "$n"); if [ -n "$id" ]; then seen="$seen $n:$id"; else missing="$missing $n"; fi; done
  if [ -z "$missing" ]; then
    sleep 2
    for p in $seen; do case " $(echo $(ids "${p%%:*}")) " in *" ${p#*:} "*) ;; *) missing="$missing ${p%%:*}" ;; esac; done
    if [ -z "$missing" ]; then break; fi
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    for n in $missing; do
      echo "$n has no new container that stays running, ${wait}s after its manifest came back: an old $n process may still hold its port (look at crictl ps -a, ps -ef | grep $n and the kubelet's log); stop it, and run the same command again" >&2
    done
    if [ "$mode" = warn ]; then break; fi
    exit 1
  fi
  sleep 1
done"#;

/// `$1`: the API server's `address:port`. The servers present the renewed files. Both pick up a
/// renewed serving certificate by themselves (the API server watches its file, k8s.io/apiserver
/// `NewDynamicServingContentFromFiles`; etcd reads its files at every handshake), so this proves
/// no restart (the container check of the restart does); a mismatch means what answers there
/// does not serve this file (another server on the port, a pair it could not load).
/// etcd is asked on its client port with the health-check client certificate (it requires one).
/// A server that does not answer yet (just restarted, on a loaded host) is asked again.
const SERVED_CERTIFICATES: &str = r#"set -eu
served() {
  a=$1 n=$2; shift 2
  rc=0
  out=$(timeout 20 openssl s_client -connect "$a" -servername "$n" "$@" </dev/null 2>&1) || rc=$?
  printf '%s\n' "$out" | openssl x509 -noout -serial 2>/dev/null && return 0
  if [ "$rc" = 124 ]; then printf 'no answer in 20s'; fi
  printf '%s\n' "$out" | grep -iE 'error|errno|refused|alert|timed out' | head -3 | tr '\n' ' '
  return 1
}
check() {
  name=$1 at=$2 file=$3; shift 3
  want=$(openssl x509 -noout -serial -in "$file")
  i=0
  until got=$(served "$@"); do
    i=$((i + 1))
    if [ "$i" -ge 10 ]; then echo "no certificate came from $name at $at in 10 tries, 2s apart: $got" >&2; exit 1; fi
    sleep 2
  done
  if [ "$got" != "$want" ]; then
    echo "$name at $at serves the certificate with ${got#serial=}, not the renewed $file (${want#serial=}): what answers there does not serve this file (another process on its port, or a certificate and key it cannot load: look at crictl ps -a, ps and its log); fix that, and run the renewal again" >&2
    exit 1
  fi
}
check kube-apiserver "$1" /etc/kubernetes/pki/apiserver.crt "$1" kubernetes
if [ -f /etc/kubernetes/manifests/etcd.yaml ]; then
  check etcd 127.0.0.1:2379 /etc/kubernetes/pki/etcd/server.crt 127.0.0.1:2379 localhost -cert /etc/kubernetes/pki/etcd/healthcheck-client.crt -key /etc/kubernetes/pki/etcd/healthcheck-client.key
fi"#;

/// `$1`: the static pod restart. Only once the renewal has begun (its mark is there): puts back
/// the PKI and kubeconfigs of this run's backup and restarts the static pods with them.
const ROLL_BACK: &str = r#"set -eu
d=/var/lib/kubewright/backups
if [ ! -e "$d/renewal-under-way" ]; then echo "nothing was renewed on this host (the step stopped before kubeadm certs renew): the certificates and static pods stay as they are" >&2; exit 0; fi
if [ -e "$d/pki-latest.tar.gz" ]; then tar -xzf "$d/pki-latest.tar.gz" -C /etc/kubernetes; else echo "this run's backup $d/pki-latest.tar.gz is gone: the static pods restart with the certificates on disk" >&2; fi
sh -c "$1" sh warn
rm -f "$d/renewal-under-way""#;

impl Step for RenewCertificates {
    fn id(&self) -> &'static str {
        "renew-certificates"
    }

    fn title(&self) -> &'static str {
        "Renew the control planes' certificates"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if !host.is_control_plane() {
            return Decision::Skip { reason: "not a control plane: the kubelet rotates its own certificate".into() };
        }
        let (first, expires) = match renewal_due(cx, facts) {
            Ok(due) => due,
            Err(reason) => return Decision::Skip { reason },
        };
        let left = expires - facts.host_time as i64;
        let missing_keys: Vec<&str> =
            ["/etc/kubernetes/pki/ca.crt", "/etc/kubernetes/pki/etcd/ca.crt", "/etc/kubernetes/pki/front-proxy-ca.crt"]
                .into_iter()
                .filter(|ca| !facts.ca_keys.contains(*ca))
                .collect();
        if !missing_keys.is_empty() {
            return Decision::Blocked {
                problems: vec![format!(
                    "the key of {} is not on this host (an external CA): kubeadm cannot renew what it signed; renew those certificates with your CA",
                    missing_keys.join(", ")
                )],
            };
        }
        let why = if left <= 0 {
            format!("{first} expired {} days ago", -left / 86_400)
        } else {
            format!("{first} expires in {} days", left / 86_400)
        };
        let recovering = expired_control_planes(cx);
        if !recovering.is_empty() {
            return Decision::Change { actions: files_first(cx, host, &why, expires, &recovering) };
        }
        let mut actions = back_up(cx, host);
        actions.push(Action::Run {
            description: format!("renew every certificate kubeadm manages ({why})"),
            commands: Script::new().cmd(["touch", RENEWAL_MARK]).cmd(["kubeadm", "certs", "renew", "all"]),
        });
        actions.extend(restart_and_check(
            cx,
            host,
            facts,
            "restart the static pods, which read their certificates only when they start (the API server and etcd member of this node are down meanwhile)",
        ));
        actions.push(Action::VerifyCertificates { after: expires });
        actions.extend(refresh_admin_kubeconfigs(cx, host));
        actions.push(Action::Run {
            description: format!("mark the renewal on this host finished (remove {RENEWAL_MARK})"),
            commands: Script::new().cmd(["rm", "-f", RENEWAL_MARK]),
        });
        actions.push(Action::Rollback {
            description:
                "if the renewal had begun (its mark is there): restore this run's backup and restart the static pods with it"
                    .into(),
            commands: Script::new().cmd(["sh", "-c", ROLL_BACK, "sh", RESTART_STATIC_PODS]),
        });
        Decision::Change { actions }
    }
}

/// Whether this control plane's certificates are due: the first to expire and when, or why
/// not (valid for longer than the threshold, not initialized).
pub(super) fn renewal_due(cx: &PlanCx<'_>, facts: &HostFacts) -> Result<(&'static str, i64), String> {
    let Some((first, expires)) = crate::certs::first_to_expire(&facts.certificates) else {
        return Err("no kubeadm certificates here (not initialized)".into());
    };
    let threshold = cx.inventory.cluster.certificates.renew_before;
    let left = expires - facts.host_time as i64;
    if left > 0 && left as u64 > threshold.seconds {
        return Err(format!(
            "certificates valid for {} more days (first to expire: {first}), more than {threshold}",
            left / 86_400
        ));
    }
    Ok((first, expires))
}

/// The control planes on which a kubeadm certificate is no longer valid, with what: then the
/// renewal renews every control plane's files before any restarts ([`files_first`]).
pub(super) fn expired_control_planes(cx: &PlanCx<'_>) -> Vec<String> {
    cx.inventory
        .control_planes()
        .filter_map(|h| {
            let facts = cx.facts.hosts.get(&h.name)?;
            let (name, _) = crate::certs::invalid_kubeadm(facts)?;
            Some(format!("{} ({name})", h.name))
        })
        .collect()
}

/// Back up the PKI and kubeconfigs on the host, and a copy to the bastion.
fn back_up(cx: &PlanCx<'_>, host: &Host) -> Vec<Action> {
    let keep = cx.inventory.cluster.certificates.keep_backups;
    vec![
        Action::Run {
            description: format!("back up /etc/kubernetes/pki and the kubeconfigs to {BACKUP_DIR} (keeping {keep})"),
            commands: Script::new().cmd(["sh", "-c", BACK_UP, "sh", &keep.to_string()]),
        },
        Action::Fetch {
            remote: LATEST_BACKUP.into(),
            local: format!("{}/backups/{}/pki.tar.gz", cx.state_dir, host.name),
            mode: "0600".into(),
            kubeconfig_server: None,
            keep: Some(keep),
        },
    ]
}

/// root's kubeconfig from the renewed admin.conf, and from the first control plane the
/// bastion's copy.
fn refresh_admin_kubeconfigs(cx: &PlanCx<'_>, host: &Host) -> Vec<Action> {
    let mut actions = vec![Action::Run {
        description: "refresh root's kubeconfig (/root/.kube/config) with the renewed admin.conf".into(),
        commands: Script::new().cmd(["install", "-d", "-m", "0700", "/root/.kube"]).cmd([
            "install",
            "-m",
            "0600",
            "/etc/kubernetes/admin.conf",
            "/root/.kube/config",
        ]),
    }];
    if std::ptr::eq(host, cx.inventory.first_control_plane()) {
        actions.push(Action::Fetch {
            remote: "/etc/kubernetes/admin.conf".into(),
            local: format!("{}/admin.conf", cx.state_dir),
            mode: "0600".into(),
            kubeconfig_server: super::endpoint_name::bastion_kubeconfig_server(cx.inventory),
            keep: None,
        });
    }
    actions
}

/// The renewal once certificates have expired: this control plane's files only, its static
/// pods restarted by `restart-static-pods` once every control plane has new files. etcd reads
/// its certificates at every handshake and its members check each other's: a member restarted
/// alone with a new certificate could not reach peers still presenting expired ones, and the
/// one-at-a-time renewal would stop at the first control plane with no quorum. Nothing is
/// rolled back on failure: the backup holds certificates that no longer work.
fn files_first(cx: &PlanCx<'_>, host: &Host, why: &str, expires: i64, recovering: &[String]) -> Vec<Action> {
    let mut actions = vec![Action::Note {
        text: format!(
            "certificates are no longer valid on {}: every control plane's files are renewed first, then each control plane's static pods restart in turn (restart-static-pods); nothing is rolled back, the old certificates no longer work",
            recovering.join(", ")
        ),
    }];
    actions.extend(back_up(cx, host));
    actions.push(Action::Run {
        description: format!(
            "renew every certificate kubeadm manages ({why}); the static pods restart later ({RESTART_PENDING} marks it until then)"
        ),
        commands: Script::new()
            .cmd(["install", "-d", "-m", "0700", "/var/lib/kubewright"])
            .cmd(["touch", RESTART_PENDING])
            .cmd(["kubeadm", "certs", "renew", "all"]),
    });
    actions.push(Action::VerifyCertificates { after: expires });
    actions.extend(refresh_admin_kubeconfigs(cx, host));
    actions
}

/// Restart the control plane's static pods (`why`: the description), wait for its API server
/// and its node (or only its etcd member: [`ready_or_etcd`]), and check that the API server and
/// the etcd member present their certificate files.
pub(super) fn restart_and_check(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts, why: &str) -> Vec<Action> {
    let authority = super::endpoint_name::api_authority(host);
    vec![
        Action::Run { description: why.to_string(), commands: Script::new().cmd(["sh", "-c", RESTART_STATIC_PODS]) },
        super::apiserver_ready(cx, host),
        ready_or_etcd(cx, host, facts, super::kubelet_version(cx, host)),
        Action::Run {
            description: format!(
                "the API server on {authority} and the etcd member serve their certificate files (the serials they present are the files')"
            ),
            commands: Script::new().cmd(["sh", "-c", SERVED_CERTIFICATES, "sh", &authority]),
        },
    ]
}

/// Wait for the node Ready with its etcd member healthy; while its kubelet cannot reach the API
/// server with its own certificate (`recover-kubelet-certificates` gives it a new one later in the
/// run), for the API server and the etcd member only.
fn ready_or_etcd(cx: &PlanCx<'_>, host: &Host, facts: &HostFacts, version: String) -> Action {
    let within = cx.inventory.cluster.certificates.renew_before.seconds;
    match crate::certs::kubelet_client_problem(facts, within) {
        None => Action::Wait {
            description: format!("node {} is Ready and its etcd member healthy", host.name),
            nodes: vec![host.name.clone()],
            version,
            etcd: true,
            timeout_s: cx.ready_timeout_s(),
        },
        Some(_) => Action::Wait {
            description: format!(
                "the API answers and the etcd member of {} is healthy (its kubelet gets a new client certificate in recover-kubelet-certificates)",
                host.name
            ),
            nodes: Vec::new(),
            version,
            etcd: true,
            timeout_s: cx.ready_timeout_s(),
        },
    }
}
