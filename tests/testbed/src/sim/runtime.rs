//! crictl and etcdctl: what runs on a host (the static pods while their manifests are in
//! place and the kubelet is active) and the local etcd member (kubeadm-behaviour.md §10).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use sha2::Digest;

use super::Outcome;
use super::cluster::{Cluster, PEERS_DIR, host_up, now_unix, read_cluster, with_cluster};
use super::host::with_host;

const MANIFESTS: &str = "/etc/kubernetes/manifests";

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
    let offset = read_cluster().clock_offset_seconds;
    let node = hostname();
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(MANIFESTS) {
        let mut paths: Vec<_> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "yaml")).collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let image = text.lines().find_map(|l| l.trim().strip_prefix("image: ")).unwrap_or("").to_string();
            let changed = std::fs::metadata(&p).map(|m| (m.ctime(), m.ctime_nsec())).unwrap_or_default();
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

/// What the etcd container sees of the host: kubeadm's etcd manifest mounts the data
/// directory and the etcd PKI as hostPath volumes at the same paths (etcd-data, etcd-certs).
fn visible_in_etcd_container(path: &str) -> bool {
    [DATA_DIR, "/etc/kubernetes/pki/etcd"].iter().any(|m| path == *m || path.starts_with(&format!("{m}/")))
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
        None => {
            let root = super::host::state_dir().join("etcd-container-root");
            let root = root.to_string_lossy();
            let tool_args = in_container_root(&command[1..], &root)?;
            let mut o = if tool == "etcdctl" { etcdctl(&tool_args)? } else { etcdutl(&tool_args)? };
            o.stdout = o.stdout.replace(root.as_ref(), "");
            o.stderr = o.stderr.replace(root.as_ref(), "");
            o
        }
    };
    if outcome.code == 0 {
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

/// The tool's arguments with every path outside the container's hostPath volumes moved into
/// the container's own root (`root`, kept in the host's simulator state): a file the host has
/// there is not found, and one the tool writes there is never seen on the host.
fn in_container_root(args: &[String], root: &str) -> anyhow::Result<Vec<String>> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        let (prefix, path) = match a.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (format!("{flag}="), value),
            _ => (String::new(), a.as_str()),
        };
        if path.starts_with('/') && !visible_in_etcd_container(path) {
            let moved = format!("{root}{path}");
            if let Some(parent) = Path::new(&moved).parent() {
                std::fs::create_dir_all(parent)?;
            }
            out.push(format!("{prefix}{moved}"));
        } else {
            out.push(a.clone());
        }
    }
    Ok(out)
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// This host's etcd member is up: it is a member, its static pod runs, and its data
/// directory belongs to the cluster's current generation.
fn etcd_up() -> bool {
    let node = hostname();
    let c = read_cluster();
    Path::new(MANIFESTS).join("etcd.yaml").exists()
        && kubelet_active()
        && c.etcd_members.contains(&node)
        && member_generation(std::fs::read_to_string(MEMBER_MARK).ok()) == c.etcd_generation
}

/// A majority of the members runs: without it no proposal commits, so `endpoint health` and
/// the linearizable `member list` fail on every member ("context deadline exceeded"), and the
/// API servers cannot serve (etcd's raft; etcdctl's health check is a quorum read).
pub fn etcd_quorum(c: &Cluster) -> bool {
    let running = c.etcd_members.iter().filter(|m| member_runs(c, m, &c.etcd_generation)).count();
    running * 2 > c.etcd_members.len()
}

/// etcd's data directory as kubeadm configures it (`etcd.local.dataDir`).
const DATA_DIR: &str = "/var/lib/etcd";
/// The simulator's record, inside a member's data, of which cluster the data belongs to: the
/// `--initial-cluster-token` of the restore that made it, empty for `kubeadm init`'s cluster.
const MEMBER_MARK: &str = "/var/lib/etcd/member/kubewright-sim-member.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct MemberMark {
    token: String,
}

fn member_generation(mark: Option<String>) -> String {
    mark.and_then(|t| serde_json::from_str::<MemberMark>(&t).ok()).map(|m| m.token).unwrap_or_default()
}

/// A member's data directory as `kubeadm init` / `join` leave it: of the cluster's generation.
pub fn write_member_generation(token: &str) -> anyhow::Result<()> {
    write_member(Path::new(DATA_DIR), token, None)
}

fn write_member(data_dir: &Path, token: &str, db: Option<&[u8]>) -> anyhow::Result<()> {
    let member = data_dir.join("member");
    std::fs::create_dir_all(member.join("snap"))?;
    std::fs::create_dir_all(member.join("wal"))?;
    if let Some(db) = db {
        std::fs::write(member.join("snap/db"), db)?;
    }
    std::fs::write(
        member.join("kubewright-sim-member.json"),
        serde_json::to_vec(&MemberMark { token: token.into() })?,
    )?;
    Ok(())
}

/// Whether `node`'s etcd member runs from data of `generation`: its host is up, its kubelet
/// active, its manifest in place. Outside a bed (no peers' files): a member runs.
pub fn member_runs(c: &Cluster, node: &str, generation: &str) -> bool {
    let peers = Path::new(PEERS_DIR);
    if !peers.exists() {
        return c.etcd_members.iter().any(|m| m == node);
    }
    host_up(node)
        && super::reach::kubelet_active(node)
        && peers.join(node).join("upper/etc/kubernetes/manifests/etcd.yaml").exists()
        && member_generation(super::reach::host_file(node, MEMBER_MARK)) == generation
}

/// A restore under way takes effect once a quorum of the members it recreated runs from the
/// restored data: what etcd and the API server hold becomes the snapshot's (the bed's event
/// log and clock stay; so do the API servers' addresses, which are not etcd's data).
pub fn settle_restore() -> anyhow::Result<()> {
    let c = read_cluster();
    let Some(pending) = c.pending_restore.clone() else { return Ok(()) };
    let running: Vec<&String> = pending.members.iter().filter(|m| member_runs(&c, m, &pending.token)).collect();
    if running.len() * 2 <= pending.members.len() {
        return Ok(());
    }
    let db = super::reach::host_file(running[0], &format!("{DATA_DIR}/member/snap/db")).unwrap_or_default();
    let Ok(restored) = serde_json::from_str::<Cluster>(&db) else {
        anyhow::bail!("the restored member {} has no readable data", running[0]);
    };
    with_cluster(|c| {
        if c.pending_restore.as_ref().is_none_or(|p| p.token != pending.token) {
            return Ok(());
        }
        let events = std::mem::take(&mut c.events);
        let apiservers = std::mem::take(&mut c.apiservers);
        *c = Cluster {
            events,
            apiservers,
            clock_offset_seconds: c.clock_offset_seconds,
            etcd_members: pending.members.clone(),
            etcd_generation: pending.token.clone(),
            pending_restore: None,
            ..restored
        };
        c.event("etcd-restored", running[0]);
        Ok(())
    })
}

/// A flag's value, as `--name=value` or `--name value`.
fn flag(args: &[String], name: &str) -> Option<String> {
    let long = format!("--{name}");
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix(&format!("{long}="))
            .map(str::to_string)
            .or_else(|| (*a == long).then(|| args.get(i + 1).cloned()).flatten())
    })
}

/// `snapshot restore FILE` (etcdutl; etcdctl 3.5 still has it, deprecated): a new data
/// directory holding the snapshot's keys and a fresh membership. Error texts from
/// etcd:etcdutl/snapshot/v3_snapshot.go (`data-dir %q not empty or could not be read`,
/// `snapshot missing hash but --skip-hash-check=false`).
fn snapshot_restore(args: &[String], file: &str, deprecated: bool) -> anyhow::Result<Outcome> {
    let name = flag(args, "name").unwrap_or_else(|| "default".into());
    let data_dir = flag(args, "data-dir").unwrap_or_else(|| format!("{name}.etcd"));
    let initial_cluster = flag(args, "initial-cluster").unwrap_or_else(|| "default=http://localhost:2380".into());
    let token = flag(args, "initial-cluster-token").unwrap_or_else(|| "etcd-cluster".into());
    let advertise = flag(args, "initial-advertise-peer-urls").unwrap_or_else(|| "http://localhost:2380".into());
    let mut stderr =
        if deprecated { "Deprecated: Use `etcdutl snapshot restore` instead.\n\n".to_string() } else { String::new() };
    let fail = |stderr: String, message: String| Ok(Outcome::fail(1, format!("{stderr}Error: {message}\n")));
    let Ok(data) = std::fs::read(file) else {
        return fail(stderr, format!("open {file}: no such file or directory"));
    };
    let Some(body) = data.strip_prefix(b"KUBEWRIGHT-SIM-ETCD-SNAPSHOT\n") else {
        return fail(stderr, "snapshot missing hash but --skip-hash-check=false".into());
    };
    let members: Vec<(String, String)> = initial_cluster
        .split(',')
        .filter_map(|m| m.split_once('=').map(|(n, u)| (n.to_string(), u.to_string())))
        .collect();
    match members.iter().find(|(n, _)| *n == name) {
        None => {
            return fail(stderr, format!("couldn't find local name \"{name}\" in the initial cluster configuration"));
        }
        Some((_, url)) if *url != advertise => {
            return fail(
                stderr,
                // etcd:server/config/config.go (advertiseMatchesCluster).
                format!(
                    "--initial-cluster has {name}={url} but missing from --initial-advertise-peer-urls={advertise} (\"{advertise}\"(resolved from \"{advertise}\") != \"{url}\"(resolved from \"{url}\"))"
                ),
            );
        }
        Some(_) => {}
    }
    let dir = Path::new(&data_dir);
    if std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
        return fail(stderr, format!("data-dir \"{data_dir}\" not empty or could not be read"));
    }
    write_member(dir, &token, Some(body))?;
    let node = hostname();
    with_cluster(|c| {
        c.pending_restore = Some(super::cluster::PendingRestore {
            token: token.clone(),
            members: members.iter().map(|(n, _)| n.clone()).collect(),
        });
        c.event("etcd-snapshot-restore", &node);
        Ok(())
    })?;
    let now = now_unix();
    let _ = writeln!(
        stderr,
        "{{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:248\",\"msg\":\"restoring snapshot\",\"path\":\"{file}\",\"wal-dir\":\"{data_dir}/member/wal\",\"data-dir\":\"{data_dir}\",\"snap-dir\":\"{data_dir}/member/snap\"}}\n{{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:269\",\"msg\":\"restored snapshot\",\"path\":\"{file}\",\"wal-dir\":\"{data_dir}/member/wal\",\"data-dir\":\"{data_dir}\",\"snap-dir\":\"{data_dir}/member/snap\"}}"
    );
    Ok(Outcome { code: 0, stdout: String::new(), stderr })
}

/// etcdutl: the offline half of etcdctl (snapshot status and restore).
fn etcdutl(args: &[String]) -> anyhow::Result<Outcome> {
    let positional: Vec<&str> = args.iter().filter(|a| !a.starts_with('-')).map(String::as_str).collect();
    match positional.as_slice() {
        ["snapshot", "restore", file, ..] => snapshot_restore(args, file, false),
        ["snapshot", "status", file, ..] => {
            let mut out = snapshot_status(args, file)?;
            out.stderr = out.stderr.replace("Deprecated: Use `etcdutl snapshot status` instead.\n\n", "");
            Ok(out)
        }
        ["version"] => Ok(Outcome::ok("etcdutl version: 3.6.4\nAPI version: 3.6\n")),
        _ => Ok(Outcome::fail(128, "Error: the simulator's etcdutl knows snapshot restore|status\n")),
    }
}

fn member_id(name: &str) -> String {
    hex::encode(&sha2::Sha256::digest(name.as_bytes())[..8])
}

fn etcdctl(args: &[String]) -> anyhow::Result<Outcome> {
    // Words that are not flags, nor the value of a separate `-w FORMAT`.
    let positional: Vec<&str> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !(a.starts_with('-') || *i > 0 && matches!(args[i - 1].as_str(), "-w" | "--write-out")))
        .map(|(_, a)| a.as_str())
        .collect();
    let get = |name: &str| args.iter().find_map(|a| a.strip_prefix(&format!("--{name}=")).map(str::to_string));
    let endpoint = get("endpoints").unwrap_or_else(|| "127.0.0.1:2379".into());
    let tls_ok = ["cacert", "cert", "key"].iter().all(|f| get(f).is_some_and(|p| Path::new(&p).exists()));
    let table = args.iter().any(|a| a == "-w=table" || a == "--write-out=table")
        || args.windows(2).any(|w| w[0] == "-w" && w[1] == "table");
    match positional.as_slice() {
        ["endpoint", "health", ..] => {
            if etcd_up() && tls_ok && etcd_quorum(&read_cluster()) {
                let took = format!("{}.{:06}ms", 2, rand::random_range(0..999_999));
                if table {
                    return Ok(Outcome::ok(format!(
                        "+------------------------+--------+------------+-------+\n|        ENDPOINT        | HEALTH |    TOOK    | ERROR |\n+------------------------+--------+------------+-------+\n| {endpoint:<22} |   true | {took:>10} |       |\n+------------------------+--------+------------+-------+\n"
                    )));
                }
                // printer_simple.go prints health on stderr.
                return Ok(Outcome {
                    code: 0,
                    stdout: String::new(),
                    stderr: format!("{endpoint} is healthy: successfully committed proposal: took = {took}\n"),
                });
            }
            let cause = if tls_ok {
                "context deadline exceeded"
            } else {
                "rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication handshake failed: tls: failed to verify certificate: x509: certificate signed by unknown authority\""
            };
            Ok(Outcome::fail(
                1,
                format!("{endpoint} is unhealthy: failed to commit proposal: {cause}\nError: unhealthy cluster\n"),
            ))
        }
        ["member", "list", ..] => {
            if !etcd_up() || !etcd_quorum(&read_cluster()) {
                return Ok(Outcome::fail(
                    1,
                    "{\"level\":\"warn\",\"msg\":\"retrying of unary invoker failed\",\"error\":\"context deadline exceeded\"}\nError: context deadline exceeded\n",
                ));
            }
            let c = read_cluster();
            let mut out = String::new();
            for m in &c.etcd_members {
                let ip = c.nodes.get(m).map(|n| n.address.clone()).unwrap_or_default();
                let _ = writeln!(out, "{}, started, {m}, https://{ip}:2380, https://{ip}:2379, false", member_id(m));
            }
            Ok(Outcome::ok(out))
        }
        ["member", "remove", id, ..] => {
            if !etcd_up() || !etcd_quorum(&read_cluster()) {
                return Ok(Outcome::fail(1, "Error: context deadline exceeded\n"));
            }
            let id = id.to_string();
            with_cluster(|c| match c.etcd_members.iter().position(|m| member_id(m) == id) {
                Some(i) => {
                    let name = c.etcd_members.remove(i);
                    c.event("etcd-member-remove", &name);
                    Ok(Outcome::ok(format!("Member {id} removed from cluster {}\n", member_id(&c.cluster_name))))
                }
                None => Ok(Outcome::fail(1, "Error: etcdserver: member not found\n")),
            })
        }
        ["snapshot", "save", file] => {
            if !etcd_up() || !tls_ok {
                return Ok(Outcome::fail(5, "Error: context deadline exceeded\n"));
            }
            let c = read_cluster();
            let body = serde_json::to_vec(&c)?;
            // The file is written as <file>.part and renamed (etcd snapshot_command.go).
            let part = format!("{file}.part");
            let mut content = b"KUBEWRIGHT-SIM-ETCD-SNAPSHOT\n".to_vec();
            content.extend_from_slice(&body);
            std::fs::write(&part, &content)?;
            std::fs::rename(&part, file)?;
            let now = now_unix();
            let log = format!(
                "{{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:65\",\"msg\":\"created temporary db file\",\"path\":\"{part}\"}}\n{{\"level\":\"info\",\"ts\":\"{now}\",\"caller\":\"snapshot/v3_snapshot.go:97\",\"msg\":\"saved\",\"path\":\"{file}\"}}\n"
            );
            Ok(Outcome { code: 0, stdout: format!("Snapshot saved at {file}\n"), stderr: log })
        }
        ["snapshot", "status", file] => snapshot_status(args, file),
        ["version"] => Ok(Outcome::ok("etcdctl version: 3.5.15\nAPI version: 3.5\n")),
        ["snapshot", "restore", file] => snapshot_restore(args, file, true),
        _ => Ok(Outcome::fail(
            128,
            "Error: the simulator's etcdctl knows endpoint health, member list|remove, snapshot save|status|restore\n",
        )),
    }
}

/// `snapshot status FILE` (etcdctl 3.5, deprecated there, and etcdutl).
fn snapshot_status(args: &[String], file: &str) -> anyhow::Result<Outcome> {
    let table = args.iter().any(|a| a == "-w=table" || a == "--write-out=table")
        || args.windows(2).any(|w| w[0] == "-w" && w[1] == "table");
    let Ok(data) = std::fs::read(file) else {
        return Ok(Outcome::fail(1, format!("Error: stat {file}: no such file or directory\n")));
    };
    let Some(body) = data.strip_prefix(b"KUBEWRIGHT-SIM-ETCD-SNAPSHOT\n") else {
        return Ok(Outcome::fail(1, "Error: snapshot file integrity check failed. 1 errors found.\n"));
    };
    let hash = u32::from_be_bytes(sha2::Sha256::digest(body)[..4].try_into().unwrap_or([0; 4]));
    let keys = serde_json::from_slice::<serde_json::Value>(body)
        .map(|v| v["nodes"].as_object().map(|m| m.len()).unwrap_or(0))
        .unwrap_or(0)
        * 40
        + 500;
    let size = format!("{:.1} kB", data.len() as f64 / 1000.0);
    let deprecated = "Deprecated: Use `etcdutl snapshot status` instead.\n\n";
    let out = if table {
        format!(
            "+----------+----------+------------+------------+\n|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n+----------+----------+------------+------------+\n| {hash:>8x} | {:>8} | {keys:>10} | {size:>10} |\n+----------+----------+------------+------------+\n",
            keys * 3
        )
    } else {
        format!("{hash:x}, {}, {keys}, {size}\n", keys * 3)
    };
    Ok(Outcome { code: 0, stdout: out, stderr: deprecated.into() })
}
