//! `kubewright reset`: tear the whole cluster down (the built-in `reset` playbook), behind a
//! confirmation that names the cluster.

use std::io::IsTerminal;
use std::process::ExitCode;

use super::apply::{Preview, RunOptions};
use super::inputs::{ConnectArgs, InventoryArg, load_inventory};
use crate::report::{Reporter, UserError};

#[derive(clap::Args)]
#[command(after_help = "\
Examples:
  kubewright reset -i inv.yaml                      # shows the plan, then asks for the cluster's name
  kubewright reset -i inv.yaml --confirm prod -o json

Workers first, then the other control planes one at a time, the first control plane last: on
each, `kubeadm reset --force`, /etc/cni/net.d removed, the iptables filter, nat and mangle
tables flushed, and what kubewright wrote (/etc/kubewright, its sysctl and module files, its
/etc/hosts line) removed. Packages, containerd and the backups in /var/lib/kubewright/backups
stay; so does the bastion's state directory (remove it yourself). Without a terminal,
--confirm must name the cluster.")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    connect: ConnectArgs,
    /// The cluster's name (`cluster.name`): the confirmation, for runs without a terminal
    #[arg(long, value_name = "CLUSTER")]
    confirm: Option<String>,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let name = inv.cluster.name.clone();
    let playbook = kubewright::playbook::Playbook::builtin("reset")?;
    let templates = kubewright::render::Templates::builtin();
    let options =
        |preview| RunOptions { connect: args.connect.clone(), yes: true, restart: false, concurrency: 64, preview };
    match &args.confirm {
        Some(given) if *given != name => {
            return Err(UserError::new(format!("--confirm {given} does not name this cluster ({name})"))
                .help("nothing was changed; give the name of the cluster to tear down (cluster.name in the inventory)")
                .into());
        }
        Some(_) => {}
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(UserError::new(format!("tearing down cluster {name} needs its name as confirmation"))
                    .help(format!("nothing was changed; pass --confirm {name}"))
                    .into());
            }
            // The plan first, then the question.
            let code = super::apply::run_playbook(
                &inv,
                &templates,
                &playbook,
                &options(Some(Preview { detailed_exitcode: false })),
                out,
            )?;
            if code != ExitCode::SUCCESS {
                return Ok(code);
            }
            let answer = super::apply::ask(&format!("This destroys cluster {name}. Type its name to go on: "))?;
            if answer != name {
                return Err(UserError::new("not confirmed; nothing was changed").into());
            }
        }
    }
    super::apply::run_playbook(&inv, &templates, &playbook, &options(None), out)
}
