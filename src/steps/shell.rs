//! `shell`: the playbook's own commands, in order, on each selected host. kubewright cannot
//! know whether they are needed, so the step always runs (a command can test and `exit 0`).

use super::Step;
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::script::Script;

pub struct Shell;

impl Step for Shell {
    fn id(&self) -> &'static str {
        crate::playbook::SHELL_ACTION
    }

    fn title(&self) -> &'static str {
        "Run the playbook's commands"
    }

    fn resumes_from_journal(&self) -> bool {
        true
    }

    fn plan(&self, cx: &PlanCx<'_>, _host: &Host, _facts: &HostFacts) -> Decision {
        let actions = cx
            .step
            .commands
            .iter()
            .map(|command| Action::Run {
                description: command.clone(),
                commands: Script::new().cmd(["sh", "-c", command]),
            })
            .collect();
        Decision::Change { actions }
    }
}
