//! `preflight`: read-only checks on every host before anything changes.

use super::Step;
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};

pub struct Preflight;

impl Step for Preflight {
    fn id(&self) -> &'static str {
        "preflight"
    }

    fn title(&self) -> &'static str {
        "Check the hosts before changing anything"
    }

    fn plan(&self, _cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        if facts.joined {
            return Decision::Skip { reason: "already a node of the cluster".into() };
        }
        let mut checks = vec![
            "supported OS (Debian or Ubuntu with apt) and unique hostname, MAC and product_uuid".to_string(),
            "at least 2 CPUs and 1700 MB of memory, clock in sync".to_string(),
            "no firewalld or REJECT-all iptables service in the way of pod traffic".to_string(),
        ];
        let ports = if host.is_control_plane() { "6443, 2379-2380, 10250, 10257, 10259" } else { "10250" };
        checks.push(format!("ports {ports} free"));
        Decision::Verify { actions: checks.into_iter().map(|description| Action::Check { description }).collect() }
    }
}
