//! `kubewright render`: the exact files and modes apply would write, one directory per host.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::inputs::{InventoryArg, TemplatesArg, load_inventory, load_templates};
use crate::report::{Reporter, UserError};
use kubewright::render::{RemoteFile, Secrets};

#[derive(clap::Args)]
#[command(after_help = "\
Writes DIR/<host>/<path> for every file kubewright manages, with the mode it gets on the host.
Secrets (bootstrap token, certificate key, CA hash) are only known during `apply` and appear
as placeholders such as <bootstrap-token>. A node IP the inventory gives as an interface
(`internalAddress: {interface: eth1}`) is read from the host when a plan is made: render reads
no host, so it appears as <IPv4 of eth1>.

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
            .map_err(|e| crate::report::UserError::new(e.to_string(), e.hint()))?;
    }
    let hosts: Vec<&kubewright::inventory::Host> =
        inv.hosts.iter().filter(|h| args.host.is_empty() || args.host.contains(&h.name)).collect();
    // Rendering and writing are independent per host: one chunk of hosts per core (the time
    // of a big inventory is mostly the file system's, and that overlaps).
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, hosts.len().max(1));
    let per_thread = hosts.len().div_ceil(threads).max(1);
    let chunks: Vec<anyhow::Result<Vec<(String, RemoteFile, PathBuf)>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = hosts
            .chunks(per_thread)
            .map(|chunk| scope.spawn(|| render_hosts(&inv, &templates, chunk, &args.out)))
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a render thread panicked"))))
            .collect()
    });
    let mut written = Vec::new();
    for chunk in chunks {
        for (host, file, dest) in chunk? {
            out.detail(&format!("{host} {:04o} {}", file.mode, file.path));
            written.push(serde_json::json!({"host": host, "path": file.path, "mode": format!("{:04o}", file.mode), "owner": file.owner, "written_to": dest.display().to_string()}));
        }
    }
    let hosts = written.iter().filter_map(|w| w["host"].as_str()).collect::<std::collections::BTreeSet<_>>().len();
    out.result(
        &format!("rendered {} files for {hosts} hosts into `{}`", written.len(), args.out.display()),
        &serde_json::json!({ "files": written }),
    );
    Ok(ExitCode::SUCCESS)
}

/// Render `hosts`' files and write them under `out`, in host order; what was written.
fn render_hosts(
    inv: &kubewright::inventory::Inventory,
    templates: &kubewright::render::Templates,
    hosts: &[&kubewright::inventory::Host],
    out: &Path,
) -> anyhow::Result<Vec<(String, RemoteFile, PathBuf)>> {
    let mut written = Vec::new();
    let mut made = std::collections::HashSet::new();
    for host in hosts {
        for file in templates.render_host(inv, host, &Secrets::placeholders())? {
            let dest = out.join(&host.name).join(file.path.trim_start_matches('/'));
            if let Some(parent) = dest.parent()
                && made.insert(parent.to_path_buf())
            {
                std::fs::create_dir_all(parent).map_err(|e| unwritable(parent, e))?;
            }
            write_file(&dest, &file).map_err(|e| unwritable(&dest, e))?;
            written.push((host.name.clone(), file, dest));
        }
    }
    Ok(written)
}

fn unwritable(path: &Path, e: std::io::Error) -> UserError {
    UserError::new(
        format!("cannot write `{}`: {e}", path.display()),
        "--out must name a directory this user can create and write; no host was contacted",
    )
}

fn write_file(dest: &Path, file: &RemoteFile) -> std::io::Result<()> {
    // Create with the final mode so a 0600 file is never readable by others, even briefly.
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(file.mode).open(dest)?;
    f.set_permissions(std::fs::Permissions::from_mode(file.mode))?;
    f.write_all(file.content.as_bytes())
}
