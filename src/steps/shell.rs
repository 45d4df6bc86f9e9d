//! `shell`: the playbook's own commands, in order, on each selected host. kubewright cannot
//! know whether they are needed, so the step always runs (a command can test and `exit 0`).

use super::Step;
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;
use crate::script::time_limited;

pub struct Shell;

impl Step for Shell {
    fn id(&self) -> &'static str {
        crate::playbook::SHELL_ACTION
    }

    fn title(&self) -> &'static str {
        "Run the playbook's commands"
    }

    fn plan(&self, cx: &PlanCx<'_>, _host: &Host, _facts: &HostFacts) -> Decision {
        let actions = cx
            .step
            .commands
            .iter()
            .map(|command| Action::Run {
                description: command.clone(),
                commands: shell_command(command, cx.step.timeout),
            })
            .collect();
        Decision::Change { actions }
    }
}

/// One playbook command: run by `sh -c`, under the host's `timeout` when the step has one.
pub fn shell_command(command: &str, timeout: Option<crate::duration::Duration>) -> Script {
    time_limited(vec!["sh", "-c", command], timeout)
}
