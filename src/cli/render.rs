//! `kubewright render`: the exact files and modes apply would write, one directory per host.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use super::inputs::{InventoryArg, TemplatesArg, load_inventory, load_templates};
use crate::report::Reporter;
use kubewright::render::{RemoteFile, Secrets};

#[derive(clap::Args)]
#[command(after_help = "\
Writes DIR/<host>/<path> for every file kubewright manages, with the mode it gets on the host.
Secrets (bootstrap token, certificate key, CA hash) are only known during `apply` and appear
as placeholders such as <bootstrap-token>.

Examples:
  kubewright render -i inventories/example.yaml --out /tmp/rendered
  kubewright render -i inv.yaml --out out --host cp1 --templates my-templates/")]
pub struct Args {
    #[command(flatten)]
    inventory: InventoryArg,
    #[command(flatten)]
    templates: TemplatesArg,
    /// Directory to write into (created if missing; existing files are replaced)
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Only these hosts (repeatable)
    #[arg(long, value_name = "NAME")]
    host: Vec<String>,
}

pub fn exec(args: Args, out: &Reporter) -> anyhow::Result<ExitCode> {
    let inv = load_inventory(&args.inventory, out)?;
    let templates = load_templates(&args.templates)?;
    if !args.host.is_empty() {
        kubewright::playbook::HostSelector::Names(args.host.clone())
            .resolve(&inv)
            .map_err(|e| crate::report::UserError::new(e.to_string()).help(e.hint()))?;
    }
    let mut written = Vec::new();
    for host in inv.hosts.iter().filter(|h| args.host.is_empty() || args.host.contains(&h.name)) {
        let files = templates.render_host(&inv, host, &Secrets::placeholders())?;
        for file in &files {
            let dest = args.out.join(&host.name).join(file.path.trim_start_matches('/'));
            write_file(&dest, file).with_context(|| format!("cannot write `{}`", dest.display()))?;
            out.detail(&format!("{} {:04o} {}", host.name, file.mode, file.path));
            written.push(serde_json::json!({"host": host.name, "path": file.path, "mode": format!("{:04o}", file.mode), "owner": file.owner, "written_to": dest.display().to_string()}));
        }
    }
    let hosts = written.iter().filter_map(|w| w["host"].as_str()).collect::<std::collections::BTreeSet<_>>().len();
    out.result(
        &format!("rendered {} files for {hosts} hosts into `{}`", written.len(), args.out.display()),
        &serde_json::json!({ "files": written }),
    );
    Ok(ExitCode::SUCCESS)
}

fn write_file(dest: &Path, file: &RemoteFile) -> std::io::Result<()> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Create with the final mode so a 0600 file is never readable by others, even briefly.
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(file.mode).open(dest)?;
    f.set_permissions(std::fs::Permissions::from_mode(file.mode))?;
    f.write_all(file.content.as_bytes())
}
