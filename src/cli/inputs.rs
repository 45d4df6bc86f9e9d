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

/// Which reader `inventory from-kubespray` uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KubesprayReader {
    /// `ansible-inventory` when it is on the PATH, else the built-in reader
    Auto,
    /// `ansible-inventory -i FILE --list` (an error when it is missing or fails)
    Ansible,
    /// kubewright's own INI/YAML reader, with group_vars/ and host_vars/
    Builtin,
}

/// A kubespray inventory read by one of the readers, and what to tell about it.
pub struct KubesprayRead {
    pub view: kubewright::inventory::kubespray::AnsibleView,
    /// Which reader, for messages and the inventory's header.
    pub reader: String,
    pub notes: Vec<String>,
    pub warnings: Vec<String>,
}

/// How long `ansible-inventory` may take (it reads files; a dynamic inventory may call out).
const ANSIBLE_INVENTORY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Read the kubespray inventory `input` (a file, an inventory directory, or `-`) through
/// `ansible-inventory` or the built-in reader, as `reader` says. A failing `ansible-inventory`
/// is an error, never a quiet switch to the other reader.
pub fn read_kubespray(input: &Path, reader: KubesprayReader) -> anyhow::Result<KubesprayRead> {
    use kubewright::inventory::kubespray;
    let to_user = |e: kubespray::KubesprayError| UserError::new(e.to_string(), e.help);
    if input.as_os_str() == "-" {
        if reader == KubesprayReader::Ansible {
            return Err(UserError::new(
                "ansible-inventory reads files, not standard input",
                "give the inventory's path (its group_vars/ beside it are read too)",
            )
            .into());
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
            UserError::new(format!("cannot read standard input: {e}"), "give the inventory's path instead")
        })?;
        let file = kubespray::InventoryFile { path: "standard input".into(), text };
        let view = kubespray::read_builtin(&[file], &kubespray::VarFiles::default()).map_err(to_user)?;
        return Ok(KubesprayRead {
            view,
            reader: "kubewright's built-in reader".into(),
            notes: vec!["standard input has no directory: no group_vars/ or host_vars/ are read (give the inventory's path to have them)".into()],
            warnings: Vec::new(),
        });
    }
    let meta = std::fs::metadata(input).map_err(|e| {
        UserError::new(
            format!("cannot read `{}`: {e}", input.display()),
            "give kubespray's inventory file (inventory/<cluster>/inventory.ini or hosts.yaml) or its directory",
        )
    })?;
    let program = find_on_path("ansible-inventory");
    match (reader, program) {
        (KubesprayReader::Auto | KubesprayReader::Ansible, Some(program)) => run_ansible_inventory(&program, input),
        (KubesprayReader::Ansible, None) => Err(UserError::new(
            "--reader ansible: `ansible-inventory` is not on the PATH",
            "install it (`pip install ansible-core`), or pass --reader builtin for kubewright's own INI/YAML reader",
        )
        .into()),
        (KubesprayReader::Auto | KubesprayReader::Builtin, _) => {
            let (files, base) = if meta.is_dir() {
                (inventory_dir_files(input)?, input.to_path_buf())
            } else {
                let text = read_text(input)?;
                let base = input.parent().map(Path::to_path_buf).unwrap_or_default();
                (vec![kubespray::InventoryFile { path: input.display().to_string(), text }], base)
            };
            let mut vars = kubespray::VarFiles { files: Vec::new(), dir: base.display().to_string() };
            for dir in ["group_vars", "host_vars"] {
                collect_var_files(&base.join(dir), dir, &mut vars.files)?;
            }
            let (view, skipped) = if meta.is_dir() {
                kubespray::read_builtin_dir(&files, &vars).map_err(to_user)?
            } else {
                (kubespray::read_builtin(&files, &vars).map_err(to_user)?, Vec::new())
            };
            let mut notes = Vec::new();
            if reader == KubesprayReader::Auto {
                notes.push("`ansible-inventory` is not on the PATH: read by kubewright's built-in reader (INI and YAML, group_vars/ and host_vars/); `pip install ansible-core` reads it as Ansible does, in any format".into());
            }
            Ok(KubesprayRead { view, reader: "kubewright's built-in reader".into(), notes, warnings: skipped })
        }
    }
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    Ok(std::fs::read_to_string(path)
        .map_err(|e| UserError::new(format!("cannot read `{}`: {e}", path.display()), "give a readable UTF-8 file"))?)
}

/// The inventory files of an inventory directory, as Ansible takes them: every file directly in
/// it, sorted, but hidden ones and Ansible's ignored extensions (INVENTORY_IGNORE_EXTS).
fn inventory_dir_files(dir: &Path) -> anyhow::Result<Vec<kubewright::inventory::kubespray::InventoryFile>> {
    const IGNORED: &[&str] =
        &[".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg", ".retry"];
    let unreadable = |e: std::io::Error| {
        UserError::new(
            format!("cannot read the directory `{}`: {e}", dir.display()),
            "give a readable inventory directory",
        )
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if path.is_file() && !name.starts_with('.') && !IGNORED.iter().any(|x| name.ends_with(x)) {
            paths.push(path);
        }
    }
    paths.sort();
    if paths.is_empty() {
        return Err(UserError::new(
            format!("`{}` holds no inventory file", dir.display()),
            "give kubespray's inventory file (inventory.ini or hosts.yaml) or the directory that holds it",
        )
        .into());
    }
    paths
        .into_iter()
        .map(|p| {
            Ok(kubewright::inventory::kubespray::InventoryFile { path: p.display().to_string(), text: read_text(&p)? })
        })
        .collect()
}

/// Every file under `dir` (group_vars/ or host_vars/), as `prefix/relative/path` and its text.
fn collect_var_files(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for entry in entries {
        let entry = entry.map_err(|e| {
            UserError::new(format!("cannot read the directory `{}`: {e}", dir.display()), "make it readable")
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}/{name}");
        if path.is_dir() {
            collect_var_files(&path, &rel, out)?;
        } else if path.is_file() {
            // Files Ansible would skip (hidden, backups, other extensions) are dropped by the
            // reader; reading them here must not fail on a binary file.
            match std::fs::read_to_string(&path) {
                Ok(text) => out.push((rel, text)),
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {}
                Err(e) => {
                    return Err(
                        UserError::new(format!("cannot read `{}`: {e}", path.display()), "make it readable").into()
                    );
                }
            }
        }
    }
    Ok(())
}

/// The first executable `name` in the PATH's directories.
fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0))
}

/// `ansible-inventory -i INPUT -i <kubespray's run-time groups> --list`, read.
fn run_ansible_inventory(program: &Path, input: &Path) -> anyhow::Result<KubesprayRead> {
    use kubewright::inventory::kubespray;
    use std::process::{Command, Stdio};
    let shown = format!("ansible-inventory -i {} --list", input.display());
    let fix = "fix what it says (Ansible and kubespray read this inventory the same way; `ansible-inventory -i FILE --list -vvv` tells more, and --reader builtin names the file and line of a YAML error in group_vars/), or pass --reader builtin to read it with kubewright's own INI/YAML reader";
    let shim_dir = tempfile::tempdir()
        .map_err(|e| UserError::new(format!("cannot make a temporary directory: {e}"), "check TMPDIR"))?;
    let shim = shim_dir.path().join("kubespray-groups.ini");
    std::fs::write(&shim, kubespray::source::KUBESPRAY_GROUPS_INI)
        .map_err(|e| UserError::new(format!("cannot write `{}`: {e}", shim.display()), "check TMPDIR"))?;
    let mut child = Command::new(program)
        .arg("-i")
        .arg(input)
        .arg("-i")
        .arg(&shim)
        .arg("--list")
        // A file no plugin can read is an error, not an empty inventory with a warning. In a
        // directory Ansible skips such files with a warning (kubespray writes artifacts/ and
        // credentials/ into the inventory's directory): that stays so, and the warnings are shown.
        .env("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", if input.is_dir() { "False" } else { "True" })
        .env("ANSIBLE_NOCOLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| UserError::new(format!("cannot run `{}`: {e}", program.display()), fix))?;
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let started = std::time::Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > ANSIBLE_INVENTORY_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(UserError::new(
                    format!("`{shown}` did not finish within {} s", ANSIBLE_INVENTORY_TIMEOUT.as_secs()),
                    fix,
                )
                .into());
            }
            Ok(None) => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(e) => return Err(UserError::new(format!("cannot wait for `{shown}`: {e}"), fix).into()),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        return Err(UserError::new(
            format!(
                "`{shown}` failed ({}):\n{}",
                status.code().map_or_else(|| "killed by a signal".to_string(), |c| format!("exit status {c}")),
                if tail.is_empty() { "(it printed nothing on stderr)".to_string() } else { tail }
            ),
            fix,
        )
        .into());
    }
    let view = kubespray::ansible::parse_list(&stdout).map_err(|e| UserError::new(e.to_string(), e.help))?;
    let warnings = stderr
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[WARNING]:"))
        .map(|w| format!("ansible-inventory: {}", w.trim()))
        .collect();
    Ok(KubesprayRead {
        view,
        reader: format!("`ansible-inventory` ({})", program.display()),
        notes: Vec::new(),
        warnings,
    })
}
