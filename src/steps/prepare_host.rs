//! `prepare-host`: swap off, kernel modules and sysctls, now and at boot; with the local load
//! balancer, the endpoint's name in /etc/hosts (see [`super::endpoint_name`]).

use super::{Step, add_or_change, endpoint_name, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::FileKind;
use crate::script::Script;

pub struct PrepareHost;

/// Comment out the swap entries of /etc/fstab, and only those: a line whose third field
/// (the filesystem type) is `swap`. The original is kept as /etc/fstab.kubewright-backup.
const FSTAB_SWAP_SED: &str = r"s@^([^#[:space:]][^[:space:]]*[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]].*)$@# disabled by kubewright: \1@";

impl Step for PrepareHost {
    fn id(&self) -> &'static str {
        "prepare-host"
    }

    fn title(&self) -> &'static str {
        "Prepare hosts: swap, kernel modules, sysctls"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let mut actions = Vec::new();
        if facts.swap_active || facts.swap_in_fstab {
            actions.push(Action::Run {
                description: "turn swap off now and at boot (the kubelet refuses to start with swap on)".into(),
                commands: Script::new().cmd(["swapoff", "-a"]).cmd([
                    "sed",
                    "-i.kubewright-backup",
                    "-E",
                    FSTAB_SWAP_SED,
                    "/etc/fstab",
                ]),
            });
        }

        let module_file = file_actions(cx, host, facts, |k| *k == FileKind::ModulesLoad);
        let missing_modules: Vec<&str> =
            ["overlay", "br_netfilter"].into_iter().filter(|m| !facts.modules.contains(*m)).collect();
        actions.extend(module_file);
        if !missing_modules.is_empty() {
            // modprobe is idempotent: loading a module that is loaded (or built in) is a no-op.
            let load = missing_modules.iter().fold(Script::new(), |s, m| s.cmd(["modprobe", m]));
            actions.push(Action::Run {
                description: format!("load kernel modules {} now", missing_modules.join(", ")),
                commands: load,
            });
        }

        let sysctl_file = file_actions(cx, host, facts, |k| *k == FileKind::Sysctl);
        // A file in place is not a kernel set: a key changed by hand, or a module loaded only
        // now (net.bridge.* exist once br_netfilter is in), needs the file applied again.
        let unapplied: Vec<String> = match (sysctl_file.is_empty(), missing_modules.is_empty()) {
            (true, true) => cx
                .files_of(host)
                .iter()
                .filter(|f| f.kind == FileKind::Sysctl)
                .flat_map(|f| crate::render::sysctl_values(&f.content))
                .filter_map(|(key, want)| match facts.sysctls.get(&key) {
                    Some(have) if *have != want => Some(format!("{key} is {have}, not {want}")),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let reason = match (sysctl_file.is_empty(), unapplied.len()) {
            (false, _) => Some("apply sysctls from /etc/sysctl.d".to_string()),
            (true, 0) if !missing_modules.is_empty() => {
                Some("apply sysctls from /etc/sysctl.d again (the modules loaded now add keys)".to_string())
            }
            (true, 0) => None,
            (true, n) if n > 3 => {
                Some(format!("apply sysctls again: {}, and {} more", unapplied[..3].join(", "), n - 3))
            }
            (true, _) => Some(format!("apply sysctls again: {}", unapplied.join(", "))),
        };
        actions.extend(sysctl_file);
        if let Some(description) = reason {
            actions.push(Action::Run { description, commands: Script::new().cmd(["sysctl", "--system"]) });
        }

        // The endpoint's name (local load balancer): where a node resolves it before the join
        // steps move it, and on the first control plane for good.
        let first = std::ptr::eq(host, cx.inventory.first_control_plane());
        let target = match (host.is_control_plane(), facts.joined || first) {
            (true, true) => Some(endpoint_name::api_address(host)),
            (_, false) => Some(endpoint_name::bootstrap_address(cx.inventory)),
            (false, true) => None, // local-api-proxy's, once the proxy answers
        };
        if let Some(target) = target {
            match endpoint_name::map_to(cx.inventory, host, facts, &target) {
                Ok(mapping) => actions.extend(mapping),
                Err(problem) => return Decision::Blocked { problems: vec![problem] },
            }
        }

        if actions.is_empty() {
            return Decision::Skip { reason: "swap off, modules loaded, sysctls in place".into() };
        }
        add_or_change(actions)
    }
}
