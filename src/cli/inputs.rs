//! Reading the files a command works from: inventory, playbook, template overrides.
//! The only place the CLI touches input files; everything after is the library's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Args;

use kubewright::inventory::{self, Inventory};
use kubewright::playbook::Playbook;
use kubewright::render::Templates;
use kubewright::ssh::{Connector, TransportKind};

use crate::report::{Reporter, UserError};

#[derive(Args, Clone)]
pub struct InventoryArg {
    /// The inventory file (see inventories/example.yaml)
    #[arg(long, short = 'i', value_name = "FILE", env = "KUBEWRIGHT_INVENTORY")]
    pub inventory: PathBuf,
}

/// How a command that reaches hosts connects to them.
#[derive(Args, Clone)]
pub struct ConnectArgs {
    /// The SSH implementation: openssh (the system `ssh`) or russh (in-process; faster on many
    /// hosts); both take what the inventory leaves out from ~/.ssh/config [default: the
    /// inventory's ssh.transport, else openssh]
    #[arg(long, value_name = "NAME", env = "KUBEWRIGHT_TRANSPORT")]
    pub transport: Option<TransportKind>,
    /// Trust host keys seen for the first time (and record them in known_hosts)
    #[arg(long)]
    pub accept_new_host_keys: bool,
}

impl ConnectArgs {
    /// `--transport`, else the inventory's `ssh.transport`.
    pub fn transport(&self, inv: &kubewright::inventory::Inventory) -> TransportKind {
        self.transport.unwrap_or(inv.ssh.transport)
    }

    pub fn connector(&self, inv: &kubewright::inventory::Inventory) -> anyhow::Result<Connector> {
        Ok(kubewright::run::env::connector(self.transport(inv))?)
    }
}

#[derive(Args, Clone)]
pub struct TemplatesArg {
    /// Directory of templates that replace the built-in ones with the same file name
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

/// The async runtime the SSH sessions run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(kubewright::run::env::runtime()?)
}

/// Read and validate the inventory; print its warnings.
pub fn load_inventory(arg: &InventoryArg, out: &Reporter) -> anyhow::Result<Inventory> {
    let file = arg.inventory.display().to_string();
    let text = std::fs::read_to_string(&arg.inventory).map_err(|e| {
        UserError::new(
            format!("cannot read inventory `{file}`: {e}"),
            "pass an inventory with `-i FILE`; inventories/example.yaml shows the format",
        )
    })?;
    let loaded = inventory::load(&file, &text)?;
    out.diagnostics(&loaded.warnings);
    Ok(loaded.inventory)
}

pub fn load_templates(arg: &TemplatesArg) -> anyhow::Result<Templates> {
    let Some(dir) = &arg.templates else { return Ok(Templates::builtin()) };
    let overrides = read_template_dir(dir)?;
    Templates::new(overrides).map_err(|e| UserError::new(format!("in `{}`: {e}", dir.display()), e.hint()).into())
}

fn read_template_dir(dir: &Path) -> Result<BTreeMap<String, String>, UserError> {
    let unreadable = |path: &Path, e: std::io::Error| {
        UserError::new(
            format!("cannot read `{}`: {e}", path.display()),
            "--templates takes a readable directory of `*.j2` overrides",
        )
    };
    let mut overrides = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let path = entry.map_err(|e| unreadable(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "j2") {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let text = std::fs::read_to_string(&path).map_err(|e| unreadable(&path, e))?;
            overrides.insert(name, text);
        }
    }
    if overrides.is_empty() {
        return Err(UserError::new(
            format!("template directory `{}` has no `*.j2` files", dir.display()),
            format!(
                "copy the templates to override from the repository's templates/ directory; names: {}",
                Templates::names().join(", ")
            ),
        ));
    }
    Ok(overrides)
}

pub fn load_playbook(file: Option<&Path>, builtin: &str) -> anyhow::Result<Playbook> {
    let playbook = match file {
        None => Playbook::builtin(builtin)?,
        Some(path) => {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                UserError::new(
                    format!("cannot read playbook `{name}`: {e}"),
                    "give a readable playbook file; the built-in ones are in the repository's playbooks/",
                )
            })?;
            Playbook::parse(&name, &text)?
        }
    };
    Ok(playbook)
}

/// The bastion directory for a cluster's state (see [`kubewright::run::state_dir_for`]).
pub fn state_dir(cluster: &str) -> PathBuf {
    kubewright::run::state_dir_for(cluster)
}
