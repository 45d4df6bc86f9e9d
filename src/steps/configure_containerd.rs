//! `configure-containerd`: containerd's config, registry mirrors and crictl; containerd is
//! restarted only when config.toml changed.

use super::{Step, add_or_change, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::FileKind;
use crate::script::Script;

pub struct ConfigureContainerd;

impl Step for ConfigureContainerd {
    fn id(&self) -> &'static str {
        "configure-containerd"
    }

    fn title(&self) -> &'static str {
        "Configure containerd and crictl"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let mut actions = file_actions(cx, host, facts, |k| *k == FileKind::ContainerdConfig);
        let config_changed = !actions.is_empty();
        // Registry hosts under `config_path` are read at each pull (containerd
        // docs/hosts.md; kind's local-registry recipe edits them on running nodes): a mirror
        // change needs no restart, so running containers are left alone.
        actions.extend(file_actions(cx, host, facts, |k| matches!(k, FileKind::ContainerdHosts(_))));
        actions.extend(file_actions(cx, host, facts, |k| *k == FileKind::Crictl));
        if config_changed {
            actions.push(Action::Run {
                description: "restart containerd to load its new configuration".into(),
                commands: Script::new().cmd(["systemctl", "enable", "containerd"]).cmd([
                    "systemctl",
                    "restart",
                    "containerd",
                ]),
            });
        }
        if actions.is_empty() {
            // Configured but stopped (stopped by hand, or failed after a reboot): the kubelet
            // cannot run a pod without it.
            if facts.containerd_installed && !facts.active_services.contains("containerd") {
                return Decision::Change {
                    actions: vec![Action::Run {
                        description: "start containerd: it is configured but not running".into(),
                        commands: Script::new().cmd(["systemctl", "enable", "--now", "containerd"]),
                    }],
                };
            }
            return Decision::Skip { reason: "containerd configuration up to date".into() };
        }
        if !facts.joined {
            actions.push(Action::Run {
                description: "enable the kubelet (it waits for kubeadm to configure it)".into(),
                commands: Script::new().cmd(["systemctl", "enable", "kubelet"]),
            });
        }
        add_or_change(actions)
    }
}
