//! `kubelet-bootstrap-token` and `recover-kubelet-certificates`: a kubelet whose client certificate
//! expired (or is not valid yet) can neither reach the API server nor rotate it, since rotation
//! asks with the current certificate. kubeadm's troubleshooting guide ("Kubelet client
//! certificate rotation fails") has the admin sign a kubelet.conf with `kubeadm kubeconfig
//! user` on a control plane and copy it, private key included, to the node. kubewright gives
//! the kubelet a new certificate through its own TLS bootstrap instead, the way `kubeadm join`
//! does: a bootstrap token from the first control plane, the kubelet's bootstrap kubeconfig
//! written for it, kubelet.conf and the dead certificate moved aside, the kubelet restarted; it
//! asks for a certificate with the token, kubeadm's auto-approval signs it, and it writes
//! kubelet.conf pointing at `kubelet-client-current.pem` as after a join. No private key leaves
//! the node, and the new certificate is one the kubelet rotates.

use super::{Step, run_with_transient_file};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::{FileKind, KUBEADM_JOIN_CREDENTIALS};
use crate::script::Script;

pub struct KubeletBootstrapToken;
pub struct RecoverKubeletCertificates;

/// Moves kubelet.conf and the kubelet's client certificates to a backup directory, restarts
/// the kubelet and waits for its TLS bootstrap to write a valid certificate and kubelet.conf
/// (120 s). Whatever stops it before, what was moved is put back (the old files do not work,
/// but the node stays one kubewright knows as joined, and the same command tries again); a
/// file that could not be moved (a full disk) was never removed. The bootstrap
/// kubeconfig is the transient file around this script.
const RECOVER: &str = r#"set -eu
d=/var/lib/kubewright/backups/kubelet-client-$(date -u +%Y%m%dT%H%M%SZ)
install -d -m 0700 "$d"
done=
back() {
  if [ -z "$done" ]; then
    if [ -e "$d/kubelet.conf" ]; then mv -f "$d/kubelet.conf" /etc/kubernetes/kubelet.conf; fi
    for f in "$d"/kubelet-client-*; do
      if [ -e "$f" ] || [ -L "$f" ]; then rm -f "/var/lib/kubelet/pki/${f##*/}"; mv "$f" /var/lib/kubelet/pki/; fi
    done
    echo "the old kubelet.conf and client certificate are back in place" >&2
  fi
}
trap back EXIT
trap 'exit 143' HUP INT TERM
for f in /etc/kubernetes/kubelet.conf /var/lib/kubelet/pki/kubelet-client-*; do
  if [ -e "$f" ] || [ -L "$f" ]; then mv "$f" "$d"/; fi
done
systemctl restart kubelet
i=0
until [ -s /etc/kubernetes/kubelet.conf ] && openssl x509 -noout -checkend 0 -in /var/lib/kubelet/pki/kubelet-client-current.pem >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 60 ]; then
    echo "the kubelet got no new client certificate in 120s through its TLS bootstrap (/etc/kubernetes/bootstrap-kubelet.conf): look at \`journalctl -u kubelet\` here and \`kubectl get csr\` on a control plane" >&2
    exit 1
  fi
  sleep 2
done
done=yes
echo "the old kubelet.conf and client certificate are in $d""#;

/// Moves the kubelet's self-signed serving certificate aside and restarts the kubelet, which
/// makes a new one when there is none; the old one is put back if no valid one appears in 60 s.
const RENEW_SERVING: &str = r#"set -eu
d=/var/lib/kubewright/backups/kubelet-serving-$(date -u +%Y%m%dT%H%M%SZ)
install -d -m 0700 "$d"
done=
back() {
  if [ -z "$done" ]; then
    for f in "$d"/kubelet.crt "$d"/kubelet.key; do if [ -e "$f" ]; then mv -f "$f" /var/lib/kubelet/pki/; fi; done
    echo "the old kubelet.crt and kubelet.key are back in place" >&2
  fi
}
trap back EXIT
trap 'exit 143' HUP INT TERM
mv /var/lib/kubelet/pki/kubelet.crt /var/lib/kubelet/pki/kubelet.key "$d"/
systemctl restart kubelet
i=0
until openssl x509 -noout -checkend 0 -in /var/lib/kubelet/pki/kubelet.crt >/dev/null 2>&1; do
  i=$((i + 1))
  if [ "$i" -ge 30 ]; then echo "the kubelet made no new serving certificate in 60s: look at \`journalctl -u kubelet\`" >&2; exit 1; fi
  sleep 2
done
done=yes
echo "the old kubelet.crt and kubelet.key are in $d""#;

/// The joined nodes whose kubelet needs a new client certificate, with why.
fn needing(cx: &PlanCx<'_>) -> Vec<(String, String)> {
    let within = cx.inventory.cluster.certificates.renew_before.seconds;
    cx.inventory
        .hosts
        .iter()
        .filter_map(|h| {
            let facts = cx.facts.hosts.get(&h.name)?;
            crate::certs::kubelet_client_problem(facts, within).map(|why| (h.name.clone(), why))
        })
        .collect()
}

impl Step for KubeletBootstrapToken {
    fn id(&self) -> &'static str {
        "kubelet-bootstrap-token"
    }

    fn title(&self) -> &'static str {
        "Create a bootstrap token for kubelets that need a new client certificate"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if !std::ptr::eq(host, cx.inventory.first_control_plane()) {
            return Decision::Skip { reason: "the first control plane creates it".into() };
        }
        let nodes: Vec<String> = needing(cx).into_iter().map(|(name, _)| name).collect();
        if nodes.is_empty() {
            return Decision::Skip { reason: "every kubelet's client certificate is valid".into() };
        }
        let create = run_with_transient_file(
            cx,
            host,
            facts,
            FileKind::KubeadmJoinCredentials,
            format!(
                "create a bootstrap token (valid 2 hours) for the kubelets of {} to get new client certificates",
                nodes.join(", ")
            ),
            // It prints the secret it just stored: it must not reach the output.
            Script::new()
                .remove_on_exit(KUBEADM_JOIN_CREDENTIALS)
                .redirect(["kubeadm", "token", "create", "--config", KUBEADM_JOIN_CREDENTIALS], "/dev/null"),
        );
        match create {
            Ok(action) => Decision::Change { actions: vec![action] },
            Err(problem) => Decision::Blocked { problems: vec![problem] },
        }
    }
}

impl Step for RecoverKubeletCertificates {
    fn id(&self) -> &'static str {
        "recover-kubelet-certificates"
    }

    fn title(&self) -> &'static str {
        "Give kubelets whose certificates no longer work new ones"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if !facts.joined {
            return Decision::Skip { reason: "not a node of the cluster".into() };
        }
        let within = cx.inventory.cluster.certificates.renew_before.seconds;
        let client = crate::certs::kubelet_client_problem(facts, within);
        let serving = crate::certs::kubelet_serving_problem(facts);
        if client.is_none() && serving.is_none() {
            return Decision::Skip {
                reason: "its kubelet's certificates are valid (the kubelet rotates its client certificate)".into(),
            };
        }
        let mut actions = Vec::new();
        if let Some(why) = client {
            let recover = run_with_transient_file(
                cx,
                host,
                facts,
                FileKind::BootstrapKubeconfig,
                format!(
                    "the kubelet's TLS bootstrap with the run's token: {why}; kubelet.conf and the old certificate go to /var/lib/kubewright/backups, the kubelet restarts and writes new ones"
                ),
                Script::new().cmd(["sh", "-c", RECOVER]),
            );
            match recover {
                Ok(action) => actions.push(action),
                Err(problem) => return Decision::Blocked { problems: vec![problem] },
            }
        }
        if let Some(why) = serving {
            actions.push(Action::Run {
                description: format!(
                    "a new self-signed serving certificate: {why}; the old one goes to /var/lib/kubewright/backups and the restarted kubelet makes one"
                ),
                commands: Script::new().cmd(["sh", "-c", RENEW_SERVING]),
            });
        }
        let version = super::kubelet_version(cx, host);
        let wait = Action::Wait {
            description: format!("node {} is Ready", host.name),
            nodes: vec![host.name.clone()],
            version,
            etcd: false,
            timeout_s: cx.ready_timeout_s(),
        };
        // A worker has no admin kubeconfig: the first control plane asks.
        let wait = match host.is_control_plane() {
            true => wait,
            false => Action::Via { on: cx.inventory.first_control_plane().name.clone(), action: Box::new(wait) },
        };
        actions.push(wait);
        Decision::Change { actions }
    }
}
