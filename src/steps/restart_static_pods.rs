//! `restart-static-pods`: restart a control plane's static pods where this run renews its files
//! without a restart (certificates that had already expired: `renew-certificates` renews every
//! control plane's files first), where an earlier such run left its mark (stopped before the
//! restart), or where its API server presents another certificate than its file. One control
//! plane at a time, each healthy and presenting its certificate files before the next. The
//! controller manager and the scheduler read their kubeconfigs only when they start, and the
//! API server its etcd and kubelet client certificates: only a restart puts renewed ones to use
//! (the API server's own serving certificate it reloads from disk by itself, k8s.io/apiserver
//! `NewDynamicServingContentFromFiles`).

use super::Step;
use super::renew_certificates::{expired_control_planes, renewal_due, restart_and_check};
use crate::facts::{HostFacts, RESTART_PENDING};
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;

pub struct RestartStaticPods;

impl Step for RestartStaticPods {
    fn id(&self) -> &'static str {
        "restart-static-pods"
    }

    fn title(&self) -> &'static str {
        "Restart the static pods that run with older certificates than their files"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if !host.is_control_plane() {
            return Decision::Skip { reason: "not a control plane".into() };
        }
        let renewed_here = !expired_control_planes(cx).is_empty() && renewal_due(cx, facts).is_ok();
        let why = match &facts.apiserver_certificate {
            _ if renewed_here => "its certificates are renewed in this run after they had expired (renew-certificates renews every control plane's files first)".to_string(),
            _ if facts.restart_pending => format!(
                "an earlier renewal renewed its files after they had expired and it has not restarted since ({RESTART_PENDING})"
            ),
            Some(c) if c.stale() => format!(
                "its API server presents the certificate with serial {}, not its file's ({}): another process may hold its port, or it did not pick the file up",
                c.served, c.file
            ),
            Some(c) if c.served.is_empty() => {
                return Decision::Skip { reason: "its API server did not answer: nothing to compare with its certificate file".into() };
            }
            Some(c) => return Decision::Skip { reason: format!("its API server presents its file's certificate (serial {})", c.file) },
            None => return Decision::Skip { reason: "no API server manifest here (or no openssl to compare with)".into() },
        };
        let mut actions = restart_and_check(cx, host, facts, &format!("restart the static pods: {why}"));
        actions.push(Action::Run {
            description: format!("mark the restart done (remove {RESTART_PENDING})"),
            commands: Script::new().cmd(["rm", "-f", RESTART_PENDING]),
        });
        Decision::Change { actions }
    }
}
