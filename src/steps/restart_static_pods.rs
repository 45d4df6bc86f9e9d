//! `restart-static-pods`: restart a control plane's static pods where its API server presents
//! another certificate than its file, or where this run renewed its files without a restart
//! (certificates that had already expired: `renew-certificates` renews every control plane's
//! files first). One control plane at a time, each healthy and presenting its renewed
//! certificates before the next.

use super::Step;
use super::renew_certificates::{expired_control_planes, renewal_due, restart_and_check};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Decision, PlanCx};

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
            Some(c) if c.stale() => format!(
                "its API server presents the certificate with serial {}, not its file's ({}): it has not restarted since the file was renewed",
                c.served, c.file
            ),
            Some(c) if c.served.is_empty() => {
                return Decision::Skip { reason: "its API server did not answer: nothing to compare with its certificate file".into() };
            }
            Some(c) => return Decision::Skip { reason: format!("its API server presents its file's certificate (serial {})", c.file) },
            None => return Decision::Skip { reason: "no API server manifest here (or no openssl to compare with)".into() },
        };
        Decision::Change { actions: restart_and_check(cx, host, facts, &format!("restart the static pods: {why}")) }
    }
}
