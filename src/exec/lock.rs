//! One run per cluster: a lock held on every control plane while a run changes anything.
//!
//! On each control plane the lock is the directory `/var/lib/kubewright/lock`, holding
//! `holder.json` (who), `run_id` and `heartbeat` (the host's clock when the run last said it
//! was alive). Every operation on it runs as one fixed script under `flock` on
//! `/var/lib/kubewright/lock.mutex`, so the operations of all runs on a host happen one at a
//! time, and each is a compare-and-swap:
//!
//! - taking it: the holder is written into a new directory and fsynced, then renamed to `lock`
//!   with `mv -n -T` (coreutils' `renameat2(RENAME_NOREPLACE)`, copy.c's `copy_internal`), so
//!   the lock never exists without its holder and an existing one is never replaced;
//! - taking over a dead run's lock: only if `holder.json` is still the one the run judged dead
//!   (its SHA-256), moved aside with one rename, the new one renamed in;
//! - the heartbeat, the release: only if `run_id` is still this run's;
//! - breaking it: only if `holder.json` is still the one the admin saw.
//!
//! Whose lock may be taken over is decided here, on the bastion: a holder that provably ran on
//! this machine (`/etc/machine-id`), in this boot (the kernel's random `boot_id`), in this pid
//! namespace (containers) and whose exact process (pid and start time, `/proc/<pid>/stat`
//! field 22) is gone. Nothing of it comes from the environment, so the timer's unit (no
//! `$USER`) and an admin's shell see the same identity. A lock of an older kubewright (no
//! process identity) is never taken over automatically; `kubewright lock break` removes it.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::script::{Script, TIMEOUT_EXIT_CODE};
use crate::ssh::{Output, Transport, TransportError};

pub const LOCK_DIR: &str = "/var/lib/kubewright/lock";

/// How often a live run refreshes its lock's heartbeat on every control plane.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(30);

/// How old a heartbeat must be before `lock break` takes its run for dead: ten missed
/// heartbeats, so that a control plane slow or cut off for a few minutes, or a bastion briefly
/// suspended, does not make a live run's lock breakable.
pub const STALE_HEARTBEAT: Duration = Duration::from_secs(300);

/// A lock written by an older kubewright has no heartbeat: only its start time tells its age,
/// and its run may last hours, so it is breakable (without `--force`) after this long, as
/// `lock break`'s default was before heartbeats.
pub const STALE_START_WITHOUT_HEARTBEAT: Duration = Duration::from_secs(3600);

/// The time limit of one lock operation on a host (they take milliseconds; a host whose disk
/// hangs must not hold the run).
const OPERATION_LIMIT: crate::duration::Duration = crate::duration::Duration::from_secs(30);

/// Who holds the lock. The first five fields are those of older kubewrights' `holder.json`
/// (which they can still read and show); `process` is what makes the holder unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub run_id: String,
    /// `user@hostname` the run came from, for people only: two bastions may share a hostname
    /// (clones, containers), so it is never compared.
    pub by: String,
    pub pid: u32,
    /// RFC 3339, the holder's clock.
    pub started_at: String,
    pub command: String,
    /// Exactly which process holds it; None in a lock of an older kubewright, or when this
    /// machine could not tell (then it is never taken over automatically).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessIdentity>,
}

/// A process, unambiguous across machines, boots, containers and pid reuse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessIdentity {
    /// HMAC-SHA256 of "kubewright cluster lock" keyed by `/etc/machine-id` (hex): machine-id(5)
    /// asks that the ID itself never leave the machine, and systemd's
    /// `sd_id128_get_machine_app_specific` derives an application's ID the same way. None where
    /// there is no machine ID (many containers). Cloned machines may share it, which is why the
    /// boot id is needed too.
    pub machine: Option<String>,
    /// `/proc/sys/kernel/random/boot_id`: random, made by the kernel at every boot.
    pub boot_id: String,
    /// `readlink /proc/self/ns/pid` (`pid:[4026531836]`): the pid namespace the pid is in;
    /// two containers of one machine have different ones.
    pub pid_ns: String,
    /// `/proc/<pid>/stat` field 22 (clock ticks after boot): a pid reused later starts later.
    pub start_ticks: u64,
    /// The real user id (`/proc/<pid>/status`), for `by`.
    pub uid: u32,
}

impl Holder {
    /// This process, for run `run_id` running `command` (redacted by the caller), started at
    /// `started_at` (unix seconds).
    pub fn this_process(run_id: &str, command: &str, started_at: u64) -> Holder {
        let process = ProcessIdentity::of_this_process();
        if let Err(why) = &process {
            tracing::warn!(
                "the cluster lock will not record this process exactly ({why}): if this run dies, its lock must be broken by hand"
            );
        }
        let uid = match &process {
            Ok(p) => Some(p.uid),
            Err(_) => std::fs::read_to_string("/proc/self/status").ok().and_then(|s| parse_status_uid(&s)),
        };
        Holder {
            run_id: run_id.to_string(),
            by: display_user_at_host(uid),
            pid: std::process::id(),
            started_at: crate::exec::rfc3339(started_at),
            command: command.to_string(),
            process: process.ok(),
        }
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` by {} (pid {}) since {}", self.command, self.by, self.pid, self.started_at)
    }
}

impl ProcessIdentity {
    /// This process, from `/proc` and `/etc` only.
    pub fn of_this_process() -> Result<ProcessIdentity, String> {
        let identity = identity_of("/proc/self")?;
        // /proc mounted for another pid namespace (a container that kept its host's) numbers
        // processes differently from getpid(): nothing it says about a pid could be trusted.
        let seen_as = std::fs::read_to_string("/proc/self/stat")
            .map_err(|e| format!("/proc/self/stat: {e}"))
            .and_then(|s| parse_stat(&s))?
            .pid;
        if seen_as != std::process::id() {
            return Err(format!(
                "/proc belongs to another pid namespace (it shows this process as {seen_as}, not {})",
                std::process::id()
            ));
        }
        Ok(identity)
    }
}

/// The identity of the process whose `/proc` directory is `proc_dir` (`/proc/self`, `/proc/42`).
pub(crate) fn identity_of(proc_dir: &str) -> Result<ProcessIdentity, String> {
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"));
    let stat = parse_stat(&read(&format!("{proc_dir}/stat"))?)?;
    let uid = parse_status_uid(&read(&format!("{proc_dir}/status"))?)
        .ok_or_else(|| format!("{proc_dir}/status has no Uid line"))?;
    let ns_link = format!("{proc_dir}/ns/pid");
    let pid_ns = std::fs::read_link(&ns_link).map_err(|e| format!("{ns_link}: {e}"))?.to_string_lossy().into_owned();
    let boot_id = read("/proc/sys/kernel/random/boot_id")?.trim().to_string();
    if boot_id.is_empty() {
        return Err("/proc/sys/kernel/random/boot_id is empty".into());
    }
    let machine = std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .map(|m| hex(&hmac_sha256(m.as_bytes(), b"kubewright cluster lock")));
    Ok(ProcessIdentity { machine, boot_id, pid_ns, start_ticks: stat.start_ticks, uid })
}

/// HMAC-SHA256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let padded = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(padded(0x36)).chain_update(message).finalize();
    Sha256::new().chain_update(padded(0x5c)).chain_update(inner).finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    pub pid: u32,
    /// Field 3: `Z` zombie, `X` dead, ...
    pub state: char,
    /// Field 22, `starttime`.
    pub start_ticks: u64,
}

/// Parse `/proc/<pid>/stat` (proc_pid_stat(5)): `pid (comm) state ppid ...`. The command name
/// may itself hold spaces and parentheses, so the fields are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Result<ProcStat, String> {
    let bad = || format!("not a /proc/<pid>/stat line: {:?}", text.chars().take(80).collect::<String>());
    let (head, tail) = text.rsplit_once(')').ok_or_else(bad)?;
    let pid = head.split_once(' ').map(|(p, _)| p).ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    // `tail` starts at field 3 (state); field 22 is the 20th from there.
    let state = fields.first().and_then(|s| s.chars().next()).ok_or_else(bad)?;
    let start_ticks = fields.get(19).ok_or_else(bad)?.parse().map_err(|_| bad())?;
    Ok(ProcStat { pid, state, start_ticks })
}

/// The real uid from `/proc/<pid>/status` (`Uid:\treal\teffective\tsaved\tfs`).
fn parse_status_uid(text: &str) -> Option<u32> {
    text.lines().find_map(|l| l.strip_prefix("Uid:"))?.split_whitespace().next()?.parse().ok()
}

/// The name of `uid` in an `/etc/passwd` text.
fn user_name(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let id: u32 = fields.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// `user@hostname` for people: the user of the uid (not `$USER`, which the timer's unit lacks).
fn display_user_at_host(uid: Option<u32>) -> String {
    let user = match uid {
        Some(uid) => std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|p| user_name(&p, uid))
            .unwrap_or_else(|| format!("uid {uid}")),
        None => "unknown".into(),
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default();
    format!("{user}@{host}")
}

/// What this machine can tell about a holder's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// It runs here (why).
    Alive(String),
    /// It ran here and is gone: its lock may be taken over (why).
    Gone(String),
    /// It ran elsewhere, or this machine cannot tell (why).
    Unknown(String),
}

/// This process's view of the machine, read once per decision.
pub struct Here {
    identity: Result<ProcessIdentity, String>,
    /// `/proc` mounted with `hidepid`: other users' processes may look absent.
    hidepid: bool,
}

impl Here {
    pub fn now() -> Here {
        let hidepid = std::fs::read_to_string("/proc/self/mountinfo").map(|m| proc_hides_pids(&m)).unwrap_or(true);
        Here { identity: ProcessIdentity::of_this_process(), hidepid }
    }

    /// Whether `holder`'s process runs on this machine, is gone from it, or cannot be told.
    pub fn liveness(&self, holder: &Holder) -> Liveness {
        judge(holder, self, &|pid| std::fs::read_to_string(format!("/proc/{pid}/stat")))
    }
}

/// Whether the `/proc` mount in a `/proc/self/mountinfo` text has `hidepid` set (proc(5):
/// `hidepid=1|2|invisible|noaccess|ptraceable` hide other users' `/proc/<pid>`).
fn proc_hides_pids(mountinfo: &str) -> bool {
    mountinfo.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { return false };
        let (mount_point, fs_type, super_options) = (fields.get(4), fields.get(sep + 1), fields.get(sep + 3));
        mount_point == Some(&"/proc")
            && fs_type == Some(&"proc")
            && super_options.is_some_and(|o| {
                o.split(',').any(|opt| opt.strip_prefix("hidepid=").is_some_and(|v| v != "0" && v != "off"))
            })
    })
}

fn judge(holder: &Holder, here: &Here, stat_of: &dyn Fn(u32) -> std::io::Result<String>) -> Liveness {
    let Some(theirs) = &holder.process else {
        return Liveness::Unknown("its lock does not say which process holds it (an older kubewright's)".into());
    };
    let mine = match &here.identity {
        Ok(mine) => mine,
        Err(why) => return Liveness::Unknown(format!("this process cannot tell which machine it runs on: {why}")),
    };
    if theirs.machine != mine.machine || theirs.boot_id != mine.boot_id {
        return Liveness::Unknown("it ran on another machine, or on this one before its last boot".into());
    }
    if theirs.pid_ns != mine.pid_ns {
        return Liveness::Unknown(format!("it ran in another pid namespace of this machine ({})", theirs.pid_ns));
    }
    if here.hidepid {
        return Liveness::Unknown("/proc is mounted with hidepid, so other users' processes may not show".into());
    }
    let pid = holder.pid;
    match stat_of(pid) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Liveness::Gone(format!("its process {pid} is no longer running on this machine"))
        }
        Err(e) => Liveness::Unknown(format!("/proc/{pid}/stat cannot be read: {e}")),
        Ok(text) => match parse_stat(&text) {
            Err(e) => Liveness::Unknown(e),
            Ok(now) if now.start_ticks != theirs.start_ticks => {
                Liveness::Gone(format!("its process {pid} is gone (that pid is now another process)"))
            }
            Ok(now) if matches!(now.state, 'Z' | 'X' | 'x') => Liveness::Gone(format!("its process {pid} has exited")),
            Ok(_) => Liveness::Alive(format!("its process {pid} is still running on this machine")),
        },
    }
}

/// The lock as a control plane holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LockState {
    /// None: the lock has no readable `holder.json` (an older kubewright that died between
    /// taking the lock and writing its holder, or a damaged file); see `unreadable`.
    pub holder: Option<Holder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<String>,
    /// The host's clock (unix seconds) at the last heartbeat; None in an older kubewright's lock.
    pub heartbeat_at: Option<u64>,
    /// How long ago that was, by the same host's clock.
    pub heartbeat_age_s: Option<u64>,
    /// The host's clock when it was read.
    pub host_now: u64,
    /// SHA-256 of `holder.json` as read (`-`: none): what a takeover or a break compares with.
    #[serde(skip)]
    fingerprint: String,
}

impl std::fmt::Display for LockState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.holder, &self.unreadable) {
            (Some(holder), _) => write!(f, "{holder}")?,
            (None, Some(why)) => write!(f, "an unreadable lock ({why})")?,
            (None, None) => write!(f, "an unreadable lock")?,
        }
        match self.heartbeat_age_s {
            Some(age) => write!(f, ", heartbeat {} ago", crate::duration::Duration::from_secs(age)),
            None => write!(f, ", no heartbeat (an older kubewright's lock)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the cluster is locked by another run: {holder} (lock on {host})")]
    Held { host: String, holder: Box<LockState> },
    #[error("the cluster lock on {host} is no longer this run's: {}", match now {
        Some(state) => format!("it is now held by {state}"),
        None => "it was removed (`kubewright lock break`?)".to_string(),
    })]
    Lost { host: String, now: Option<Box<LockState>> },
    #[error("cannot {operation} the cluster lock on {host}: {detail}")]
    Failed { host: String, operation: &'static str, detail: String },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{error}; this run may have left its own lock on {}, where it could not release it", left.join(", "))]
    LeftBehind { error: Box<LockError>, left: Vec<String> },
}

impl LockError {
    pub fn hint(&self) -> String {
        match self {
            LockError::Held { .. } => {
                "wait for that run to finish (`kubewright lock status` shows its heartbeat); if it died, check no kubewright is running for this cluster and run `kubewright lock break`".into()
            }
            LockError::Lost { .. } => {
                "another run or `kubewright lock break` took this run's lock: no new work should start; check `kubewright lock status` and that no two runs change the cluster at once".into()
            }
            LockError::Failed { operation: "take", .. } => {
                "every control plane must be reachable to take the lock; fix its connection and retry".into()
            }
            LockError::Failed { .. } => {
                "check the control plane (its disk, util-linux's flock) and retry; `kubewright lock status` shows the lock".into()
            }
            LockError::Transport(e) => e.hint(),
            LockError::LeftBehind { error, .. } => format!(
                "{}; the lock this run left is taken over by the next run from this machine (this process will be gone), or removed by `kubewright lock break`",
                error.hint()
            ),
        }
    }
}

/// One result per control plane, in the order they were given.
pub type PerHost<T> = Vec<(String, Result<T, LockError>)>;

/// The start of every lock script: the mutex, and `show`, which prints the lock as
/// [`parse_answer`] reads it. `$d` and `$lock` are fixed paths; values come as `$1`, `$2`.
macro_rules! prelude {
    () => {
        r#"set -eu
d=/var/lib/kubewright lock=/var/lib/kubewright/lock
show() {
  if [ -e "$lock" ] || [ -L "$lock" ]; then echo "lock present"; else echo "lock absent"; return 0; fi
  if [ -f "$lock/holder.json" ]; then
    s=$(sha256sum "$lock/holder.json"); echo "fingerprint ${s%% *}"
    echo "holder $(base64 -w0 "$lock/holder.json")"
  else
    echo "fingerprint -"
  fi
  hb=$(cat "$lock/heartbeat" 2>/dev/null || true); echo "heartbeat ${hb:--}"
  echo "now $(date +%s)"
}
fingerprint() {
  s=$(sha256sum "$lock/holder.json" 2>/dev/null || true); s=${s%% *}; echo "${s:--}"
}
ours() { [ "$(cat "$lock/run_id" 2>/dev/null || true)" = "$1" ]; }
# A new lock directory, complete and on disk before anyone can see it: holder on stdin.
prepare() {
  new=$(mktemp -d "$d/lock.new.XXXXXX")
  cat > "$new/holder.json"
  printf '%s\n' "$1" > "$new/run_id"
  date +%s > "$new/heartbeat"
  sync "$new/holder.json" "$new/run_id" "$new/heartbeat" "$new"
}
# Remove the lock with one rename (a half-removed lock would have no holder), then its files.
remove() {
  old=$(mktemp -d "$d/lock.old.XXXXXX")
  mv -T "$lock" "$old"
  sync "$d"
}
umask 077
if ! command -v flock >/dev/null 2>&1; then echo "flock is not installed on this host: install util-linux" >&2; exit 1; fi
mkdir -p "$d"
new= old=
trap 'rm -rf "$new" "$old"' EXIT
trap 'exit 143' HUP INT TERM
# Never removed: a waiter would lock the removed file while a newcomer locks a new one.
exec 9>>"$d/lock.mutex"
if ! flock -w 10 9; then echo "result busy"; exit 0; fi
"#
    };
}

/// `$1`: the run id; stdin: the holder.
const ACQUIRE: &str = concat!(
    prelude!(),
    r#"if [ -e "$lock" ] || [ -L "$lock" ]; then
  if ours "$1"; then
    date +%s > "$lock/heartbeat.new"; mv -f "$lock/heartbeat.new" "$lock/heartbeat"
    echo "result acquired"
  else
    show; echo "result held"
  fi
  exit 0
fi
prepare "$1"
# -n: renameat2(RENAME_NOREPLACE): an older kubewright's `mkdir` of the lock between the test
# above and here is never replaced. Whether it moved is read from the disk, not mv's status
# (which differs between coreutils releases for -n).
mv -n -T "$new" "$lock" || true
if [ -d "$new" ]; then show; echo "result held"; exit 0; fi
new=
sync "$d"
echo "result acquired"
"#
);

/// `$1`: the new run id, `$2`: the fingerprint of the dead holder's `holder.json`; stdin: the
/// new holder.
const TAKE_OVER: &str = concat!(
    prelude!(),
    r#"if [ "$(fingerprint)" != "$2" ]; then show; echo "result changed"; exit 0; fi
prepare "$1"
remove
mv -n -T "$new" "$lock" || true
if [ -d "$new" ]; then show; echo "result held"; exit 0; fi
new=
sync "$d"
echo "result taken"
"#
);

/// `$1`: the run id.
const REFRESH: &str = concat!(
    prelude!(),
    r#"if ! ours "$1"; then show; echo "result lost"; exit 0; fi
date +%s > "$lock/heartbeat.new"
mv -f "$lock/heartbeat.new" "$lock/heartbeat"
echo "result refreshed"
"#
);

/// `$1`: the run id.
const RELEASE: &str = concat!(
    prelude!(),
    r#"if [ ! -e "$lock" ] && [ ! -L "$lock" ]; then echo "result free"; exit 0; fi
if ! ours "$1"; then show; echo "result other"; exit 0; fi
remove
echo "result released"
"#
);

/// `$1`: the fingerprint of the `holder.json` the admin saw.
const BREAK: &str = concat!(
    prelude!(),
    r#"if [ ! -e "$lock" ] && [ ! -L "$lock" ]; then echo "result free"; exit 0; fi
if [ "$(fingerprint)" != "$1" ]; then show; echo "result changed"; exit 0; fi
remove
echo "result removed"
"#
);

const STATUS: &str = concat!(prelude!(), "show\necho \"result status\"\n");

/// A lock script's answer: its result word and the lock it showed, if any.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    result: String,
    lock: Option<LockState>,
}

/// Read what a lock script printed (see `show` in the scripts).
fn parse_answer(stdout: &str) -> Result<Answer, String> {
    let mut result = None;
    let mut present = false;
    let (mut fingerprint, mut holder_b64, mut heartbeat, mut now) = (None, None, None, None);
    for line in stdout.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "lock" => present = value == "present",
            "fingerprint" => fingerprint = Some(value.to_string()),
            "holder" => holder_b64 = Some(value.to_string()),
            "heartbeat" => heartbeat = value.trim().parse::<u64>().ok(),
            "now" => now = value.trim().parse::<u64>().ok(),
            "result" => result = Some(value.to_string()),
            _ => {}
        }
    }
    let result = result.ok_or_else(|| format!("unexpected answer: {:?}", tail(stdout)))?;
    if !present {
        return Ok(Answer { result, lock: None });
    }
    let host_now = now.ok_or_else(|| format!("the host's clock is missing from its answer: {:?}", tail(stdout)))?;
    let (holder, unreadable) = match holder_b64 {
        None => (None, Some("it has no holder.json".to_string())),
        Some(b64) => match base64::engine::general_purpose::STANDARD.decode(b64.trim()) {
            Err(e) => (None, Some(format!("holder.json came back garbled: {e}"))),
            Ok(bytes) => match serde_json::from_slice::<Holder>(&bytes) {
                Ok(holder) => (Some(holder), None),
                Err(e) => (
                    None,
                    Some(format!(
                        "holder.json is not a holder ({e}): {:?}",
                        String::from_utf8_lossy(&bytes).chars().take(120).collect::<String>()
                    )),
                ),
            },
        },
    };
    Ok(Answer {
        result,
        lock: Some(LockState {
            holder,
            unreadable,
            heartbeat_at: heartbeat,
            heartbeat_age_s: heartbeat.map(|h| host_now.saturating_sub(h)),
            host_now,
            fingerprint: fingerprint.unwrap_or_else(|| "-".into()),
        }),
    })
}

fn tail(text: &str) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    chars[chars.len().saturating_sub(300)..].iter().collect()
}

/// Run one lock script on `t` under the host's time limit, and read its answer.
async fn run_script<T: Transport>(
    t: &T,
    operation: &'static str,
    script: &str,
    args: &[&str],
    input: &[u8],
) -> Result<Answer, LockError> {
    let host = t.target().name.clone();
    let script = Script::new().cmd(["sh", "-c", script, "sh"].into_iter().chain(args.iter().copied()));
    let limited = crate::script::time_limited_script(&script, OPERATION_LIMIT);
    let out: Output =
        crate::exec::within_backstop(&host, OPERATION_LIMIT, 1, t.run_with_input(&limited, input)).await?;
    let failed = |detail: String| LockError::Failed { host: host.clone(), operation, detail };
    if out.code == Some(TIMEOUT_EXIT_CODE) {
        return Err(failed(format!(
            "the host stopped it after {OPERATION_LIMIT} (a lock operation takes milliseconds: is the disk of /var/lib/kubewright hung?)"
        )));
    }
    if !out.success() {
        return Err(failed(format!("it failed (exit {:?}): {}", out.code, tail(&out.stderr))));
    }
    let answer = parse_answer(&out.stdout).map_err(failed)?;
    if answer.result == "busy" {
        return Err(failed(
            "another lock operation held /var/lib/kubewright/lock.mutex for 10s (a hung kubewright script on the host?)".into(),
        ));
    }
    Ok(answer)
}

fn holder_bytes(holder: &Holder, host: &str) -> Result<Vec<u8>, LockError> {
    serde_json::to_vec(holder).map_err(|e| LockError::Failed {
        host: host.into(),
        operation: "take",
        detail: format!("the holder cannot be written as JSON: {e}"),
    })
}

/// What taking the lock on one host did.
enum Taken {
    Fresh,
    Over(Holder),
}

async fn take_one<T: Transport>(t: &T, holder: &Holder, here: &Here) -> Result<Taken, LockError> {
    let host = t.target().name.clone();
    let info = holder_bytes(holder, &host)?;
    let answer = run_script(t, "take", ACQUIRE, &[&holder.run_id], &info).await?;
    let unexpected = |answer: &Answer| LockError::Failed {
        host: host.clone(),
        operation: "take",
        detail: match &answer.lock {
            Some(_) => format!("unexpected answer `{}`", answer.result),
            None => format!(
                "the new lock could not be put in place (answer `{}`); see the host's /var/lib/kubewright",
                answer.result
            ),
        },
    };
    match answer.result.as_str() {
        "acquired" => return Ok(Taken::Fresh),
        "held" => {}
        _ => return Err(unexpected(&answer)),
    }
    let Some(held) = answer.lock else { return Err(unexpected(&answer)) };
    let dead = match &held.holder {
        Some(other) if matches!(here.liveness(other), Liveness::Gone(_)) => other.clone(),
        _ => return Err(LockError::Held { host, holder: Box::new(held) }),
    };
    let answer = run_script(t, "take", TAKE_OVER, &[&holder.run_id, &held.fingerprint], &info).await?;
    match (answer.result.as_str(), answer.lock) {
        ("taken", _) => Ok(Taken::Over(dead)),
        // Another run took it over (or it was released) meanwhile: refused as if it had been
        // that run's all along.
        (_, Some(now)) => Err(LockError::Held { host, holder: Box::new(now) }),
        (result, None) => Err(LockError::Failed {
            host,
            operation: "take",
            detail: format!("the dead run's lock went away while taking it over (answer `{result}`); retry"),
        }),
    }
}

/// Take the lock on every control plane, or none: on refusal or failure, what was taken is
/// released. The control planes are taken in the order of their names, whatever order they are
/// given in, so that of runs starting at once exactly one gets them all. A lock left by a run of
/// this machine whose process is gone is taken over; those are returned (host, dead holder) so
/// the caller can say so.
pub async fn acquire<T: Transport>(control_planes: &[T], holder: &Holder) -> Result<Vec<(String, Holder)>, LockError> {
    let here = Here::now();
    let mut order: Vec<&T> = control_planes.iter().collect();
    order.sort_by(|a, b| a.target().name.cmp(&b.target().name));
    let mut taken: Vec<&T> = Vec::new();
    let mut taken_over = Vec::new();
    for t in order {
        match take_one(t, holder, &here).await {
            Ok(Taken::Fresh) => taken.push(t),
            Ok(Taken::Over(dead)) => {
                taken.push(t);
                taken_over.push((t.target().name.clone(), dead));
            }
            Err(error) => {
                // A script stopped or cut off may have taken the lock there before it ended.
                if !matches!(error, LockError::Held { .. }) {
                    taken.push(t);
                }
                let left: Vec<String> = release(&taken, holder)
                    .await
                    .into_iter()
                    .filter(|(_, r)| matches!(r, Err(e) if !matches!(e, LockError::Lost { .. })))
                    .map(|(host, _)| host)
                    .collect();
                return Err(if left.is_empty() {
                    error
                } else {
                    LockError::LeftBehind { error: Box::new(error), left }
                });
            }
        }
    }
    Ok(taken_over)
}

/// Rewrite the heartbeat of this run's lock on every control plane, with each host's own clock.
/// A host where the lock is no longer this run's answers [`LockError::Lost`].
pub async fn refresh<T: Transport>(control_planes: &[T], holder: &Holder) -> PerHost<()> {
    on_every_host(control_planes, |t| async move {
        let host = t.target().name.clone();
        let answer = run_script(t, "refresh", REFRESH, &[&holder.run_id], &[]).await?;
        match answer.result.as_str() {
            "refreshed" => Ok(()),
            "lost" => Err(LockError::Lost { host, now: answer.lock.map(Box::new) }),
            other => {
                Err(LockError::Failed { host, operation: "refresh", detail: format!("unexpected answer `{other}`") })
            }
        }
    })
    .await
}

/// Release this run's lock on every control plane (each tried, whatever the others answer).
/// A host where it is already free counts as released; one where another run holds it answers
/// [`LockError::Lost`] and is left alone.
pub async fn release<T: Transport>(control_planes: &[T], holder: &Holder) -> PerHost<()> {
    on_every_host(control_planes, |t| async move {
        let host = t.target().name.clone();
        let answer = run_script(t, "release", RELEASE, &[&holder.run_id], &[]).await?;
        match answer.result.as_str() {
            "released" | "free" => Ok(()),
            "other" => Err(LockError::Lost { host, now: answer.lock.map(Box::new) }),
            other => {
                Err(LockError::Failed { host, operation: "release", detail: format!("unexpected answer `{other}`") })
            }
        }
    })
    .await
}

/// Who holds the lock on each control plane (None: free), with the heartbeat's age by the
/// host's own clock.
pub async fn status<T: Transport>(control_planes: &[T]) -> PerHost<Option<LockState>> {
    on_every_host(control_planes, |t| async move { Ok(run_script(t, "read", STATUS, &[], &[]).await?.lock) }).await
}

/// The holders of the lock on `control_planes` that a run would take over: runs of this
/// machine whose process is gone (each once).
pub async fn dead_holders<T: Transport>(control_planes: &[T]) -> Vec<Holder> {
    let here = Here::now();
    let mut dead: Vec<Holder> = Vec::new();
    for (_, state) in status(control_planes).await {
        if let Ok(Some(LockState { holder: Some(h), .. })) = state
            && matches!(here.liveness(&h), Liveness::Gone(_))
            && !dead.iter().any(|d| d.run_id == h.run_id)
        {
            dead.push(h);
        }
    }
    dead
}

/// What breaking the lock did on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BreakOutcome {
    /// The lock that was seen is gone.
    Removed,
    /// The lock is no longer the one that was seen (released, or taken by another run since):
    /// kept. Its state now (None: free).
    Changed(Option<Box<LockState>>),
}

/// Remove the locks `seen` (from [`status`]), each only if it is still the same lock on its host
/// (the same `holder.json`): a lock released and taken by another run meanwhile is kept.
pub async fn break_lock<T: Transport>(control_planes: &[T], seen: &[(String, LockState)]) -> PerHost<BreakOutcome> {
    let targets: Vec<(&T, &LockState)> = control_planes
        .iter()
        .filter_map(|t| seen.iter().find(|(h, _)| *h == t.target().name).map(|(_, s)| (t, s)))
        .collect();
    futures::future::join_all(targets.into_iter().map(|(t, state)| async move {
        let host = t.target().name.clone();
        let result = run_script(t, "break", BREAK, &[&state.fingerprint], &[]).await.and_then(|answer| {
            match answer.result.as_str() {
                "removed" => Ok(BreakOutcome::Removed),
                "changed" | "free" => Ok(BreakOutcome::Changed(answer.lock.map(Box::new))),
                other => Err(LockError::Failed {
                    host: host.clone(),
                    operation: "break",
                    detail: format!("unexpected answer `{other}`"),
                }),
            }
        });
        (host, result)
    }))
    .await
}

/// Why the lock `state` may not be broken without `--force`, if it may not: its run provably
/// runs on this machine, its heartbeat is younger than `older_than` (default
/// [`STALE_HEARTBEAT`]), or, without a heartbeat (an older kubewright's lock), it was taken less
/// than `older_than` ago (default [`STALE_START_WITHOUT_HEARTBEAT`]) by the bastion's clock
/// `now`.
pub fn may_break(state: &LockState, older_than: Option<Duration>, now: u64, here: &Here) -> Result<(), String> {
    may_break_by(state, older_than, now, &|h| here.liveness(h))
}

fn may_break_by(
    state: &LockState,
    older_than: Option<Duration>,
    now: u64,
    liveness: &dyn Fn(&Holder) -> Liveness,
) -> Result<(), String> {
    let secs = |d: Duration| crate::duration::Duration::from_secs(d.as_secs());
    if let Some(holder) = &state.holder
        && let Liveness::Alive(why) = liveness(holder)
    {
        return Err(why);
    }
    if let Some(age) = state.heartbeat_age_s {
        let limit = older_than.unwrap_or(STALE_HEARTBEAT);
        if age < limit.as_secs() {
            return Err(format!(
                "its heartbeat is {} old, younger than {}: its run is probably alive",
                crate::duration::Duration::from_secs(age),
                secs(limit)
            ));
        }
        return Ok(());
    }
    let Some(holder) = &state.holder else { return Ok(()) };
    let limit = older_than.unwrap_or(STALE_START_WITHOUT_HEARTBEAT);
    match crate::exec::parse_rfc3339(&holder.started_at) {
        Some(started) if now.saturating_sub(started) < limit.as_secs() => Err(format!(
            "it has no heartbeat and was taken {} ago, less than {}",
            crate::duration::Duration::from_secs(now.saturating_sub(started)),
            secs(limit)
        )),
        Some(_) => Ok(()),
        None => Err(format!("it has no heartbeat and its start time `{}` cannot be read", holder.started_at)),
    }
}

/// Keep this run's lock alive: refresh its heartbeat every `interval` ([`HEARTBEAT_INTERVAL`]),
/// for ever. When the lock is lost on any control plane (broken, or taken by another run) or the
/// refresh fails on a majority of them, `on_trouble` gets the failures: the caller stops new
/// work. The refreshes go on (a control plane that comes back is refreshed again).
pub async fn keep_alive<T: Transport>(
    control_planes: &[T],
    holder: &Holder,
    interval: Duration,
    mut on_trouble: impl FnMut(&[(String, LockError)]),
) -> std::convert::Infallible {
    loop {
        tokio::time::sleep(interval).await;
        let failures: Vec<(String, LockError)> =
            refresh(control_planes, holder).await.into_iter().filter_map(|(h, r)| r.err().map(|e| (h, e))).collect();
        if in_doubt_after(&failures, control_planes.len()) {
            on_trouble(&failures);
        }
    }
}

/// Whether a refresh on `control_planes` hosts that failed on these no longer shows the lock
/// as this run's: another run took it on one, or it was not refreshed on a majority of them.
pub fn in_doubt_after(failures: &[(String, LockError)], control_planes: usize) -> bool {
    let lost = failures.iter().any(|(_, e)| matches!(e, LockError::Lost { .. }));
    let refreshed = control_planes.saturating_sub(failures.len());
    lost || refreshed * 2 <= control_planes
}

/// What to tell the admin when [`keep_alive`] reports trouble.
pub fn in_doubt(failures: &[(String, LockError)]) -> String {
    let each: Vec<String> = failures.iter().map(|(_, e)| e.to_string()).collect();
    format!("the cluster lock is in doubt ({}): stopping: no new work starts, running commands finish", each.join("; "))
}

/// Run `op` on every host at once; one result per host, in the hosts' order.
async fn on_every_host<'a, T, R, F, Fut>(control_planes: &'a [T], op: F) -> PerHost<R>
where
    T: Transport,
    F: Fn(&'a T) -> Fut,
    Fut: std::future::Future<Output = Result<R, LockError>>,
{
    futures::future::join_all(control_planes.iter().map(|t| {
        let fut = op(t);
        async move { (t.target().name.clone(), fut.await) }
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lock stays this run's only while it is refreshed on a majority of the control
    /// planes, and lost on none: one of two refreshed is no majority.
    #[test]
    fn a_lock_refreshed_on_no_majority_or_lost_anywhere_is_in_doubt() {
        let failed = |hosts: &[&str]| -> Vec<(String, LockError)> {
            hosts
                .iter()
                .map(|h| {
                    let e = LockError::Failed { host: h.to_string(), operation: "refresh", detail: "timed out".into() };
                    (h.to_string(), e)
                })
                .collect()
        };
        assert!(!in_doubt_after(&failed(&[]), 1));
        assert!(in_doubt_after(&failed(&["cp1"]), 1));
        assert!(!in_doubt_after(&failed(&[]), 2));
        assert!(in_doubt_after(&failed(&["cp2"]), 2), "one of two is no majority");
        assert!(!in_doubt_after(&failed(&["cp3"]), 3));
        assert!(in_doubt_after(&failed(&["cp2", "cp3"]), 3));
        let lost = vec![("cp1".to_string(), LockError::Lost { host: "cp1".into(), now: None })];
        assert!(in_doubt_after(&lost, 3), "lost on one is lost");
    }

    const STAT: &str = "4242 (kubewright) S 1 4242 4242 0 -1 4194560 1203 0 0 0 12 3 0 0 20 0 5 0 987654 123456789 2345 18446744073709551615 1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn the_start_time_is_field_22_whatever_the_command_name_holds() {
        assert_eq!(parse_stat(STAT), Ok(ProcStat { pid: 4242, state: 'S', start_ticks: 987_654 }));
        // A name with spaces and parentheses: fields are counted from the last `)`.
        let odd = STAT.replace("(kubewright)", "(kw (x) ) y)");
        assert_eq!(parse_stat(&odd), Ok(ProcStat { pid: 4242, state: 'S', start_ticks: 987_654 }));
        assert_eq!(parse_stat(&STAT.replace(" S ", " Z ")).map(|s| s.state), Ok('Z'));
        assert!(parse_stat("4242 (kubewright) S 1 2").unwrap_err().contains("not a /proc/<pid>/stat line"));
        assert!(parse_stat("").is_err());
        assert!(parse_stat("x (a) S").is_err());
    }

    #[test]
    fn the_machine_is_named_by_a_keyed_hash_of_its_id() {
        // RFC 4231, test cases 2 and 6 (a key longer than the block).
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            hex(&hmac_sha256(&[0xaa; 131], b"Test Using Larger Than Block-Size Key - Hash Key First")),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
        let me = ProcessIdentity::of_this_process().unwrap();
        if let Ok(id) = std::fs::read_to_string("/etc/machine-id") {
            let recorded = me.machine.unwrap();
            assert_eq!(recorded.len(), 64);
            assert!(!recorded.contains(id.trim()), "the machine ID itself is not recorded");
        }
    }

    #[test]
    fn the_user_comes_from_the_uid_and_the_passwd_file() {
        assert_eq!(parse_status_uid("Name:\tsh\nUid:\t1000\t1000\t1000\t1000\n"), Some(1000));
        assert_eq!(parse_status_uid("Name:\tsh\n"), None);
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\nops:x:1000:1000::/home/ops:/bin/sh\nbroken\n";
        assert_eq!(user_name(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_name(passwd, 1000).as_deref(), Some("ops"));
        assert_eq!(user_name(passwd, 7), None);
    }

    #[test]
    fn hidepid_on_the_proc_mount_is_noticed() {
        let line =
            |opts: &str| format!("22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc {opts}\n");
        assert!(!proc_hides_pids(&line("rw")));
        assert!(!proc_hides_pids(&line("rw,hidepid=0")));
        assert!(!proc_hides_pids(&line("rw,hidepid=off")));
        assert!(proc_hides_pids(&line("rw,hidepid=2")));
        assert!(proc_hides_pids(&line("rw,hidepid=invisible,gid=4")));
        // Another proc mount (a container's, elsewhere) is not this process's /proc.
        assert!(!proc_hides_pids("30 28 0:40 / /srv/ct/proc rw - proc proc rw,hidepid=2\n"));
    }

    fn identity(pid_ns: &str, start_ticks: u64) -> ProcessIdentity {
        ProcessIdentity { machine: Some("m1".into()), boot_id: "b1".into(), pid_ns: pid_ns.into(), start_ticks, uid: 0 }
    }

    fn holder_with(pid: u32, process: Option<ProcessIdentity>) -> Holder {
        Holder {
            run_id: "r1".into(),
            by: "root@bastion".into(),
            pid,
            started_at: "2026-11-22T05:00:00Z".into(),
            command: "kubewright apply (install)".into(),
            process,
        }
    }

    #[test]
    fn only_a_holder_of_this_machine_boot_and_pid_namespace_whose_process_is_gone_is_dead() {
        let here = Here { identity: Ok(identity("pid:[1]", 5)), hidepid: false };
        let running = |pid: u32| -> std::io::Result<String> {
            if pid == 4242 { Ok(STAT.to_string()) } else { Err(std::io::ErrorKind::NotFound.into()) }
        };
        let judged = |h: &Holder| judge(h, &here, &running);
        assert!(matches!(judged(&holder_with(4242, Some(identity("pid:[1]", 987_654)))), Liveness::Alive(_)));
        // The same pid started at another time: the holder's process is gone.
        assert!(
            matches!(judged(&holder_with(4242, Some(identity("pid:[1]", 11)))), Liveness::Gone(w) if w.contains("now another process"))
        );
        assert!(
            matches!(judged(&holder_with(77, Some(identity("pid:[1]", 11)))), Liveness::Gone(w) if w.contains("no longer running"))
        );
        // Elsewhere, nothing can be proved: a cloned bastion (same machine id, another boot),
        // a container (another pid namespace), a lock of an older kubewright.
        let clone = ProcessIdentity { boot_id: "b2".into(), ..identity("pid:[1]", 11) };
        assert!(matches!(judged(&holder_with(77, Some(clone))), Liveness::Unknown(w) if w.contains("another machine")));
        assert!(
            matches!(judged(&holder_with(77, Some(identity("pid:[2]", 11)))), Liveness::Unknown(w) if w.contains("pid namespace"))
        );
        assert!(matches!(judged(&holder_with(77, None)), Liveness::Unknown(w) if w.contains("older kubewright")));
        let zombie = |_: u32| -> std::io::Result<String> { Ok(STAT.replace(" S ", " Z ")) };
        assert!(matches!(
            judge(&holder_with(4242, Some(identity("pid:[1]", 987_654))), &here, &zombie),
            Liveness::Gone(w) if w.contains("exited")
        ));
        let hidden = Here { identity: Ok(identity("pid:[1]", 5)), hidepid: true };
        assert!(
            matches!(judge(&holder_with(77, Some(identity("pid:[1]", 11))), &hidden, &running), Liveness::Unknown(w) if w.contains("hidepid"))
        );
        let blind = Here { identity: Err("no /proc".into()), hidepid: false };
        assert!(
            matches!(judge(&holder_with(77, Some(identity("pid:[1]", 11))), &blind, &running), Liveness::Unknown(w) if w.contains("no /proc"))
        );
    }

    /// The timer's unit runs kubewright with no `$USER` (and no `$HOME`); an admin's shell has
    /// both. Their holders must be the same machine's, so that either takes over the other's
    /// lock once its process is gone.
    #[test]
    fn processes_with_and_without_user_are_the_same_machines_holders() {
        let spawn = |user: Option<&str>| {
            let mut c = std::process::Command::new("sleep");
            c.arg("30").env_clear().env("PATH", "/usr/bin:/bin");
            if let Some(user) = user {
                c.env("USER", user).env("HOME", "/root");
            }
            c.spawn().unwrap()
        };
        let (mut timer, mut admin) = (spawn(None), spawn(Some("someone-else")));
        let as_holder = |child: &std::process::Child| {
            let process = identity_of(&format!("/proc/{}", child.id())).unwrap();
            Holder { by: display_user_at_host(Some(process.uid)), ..holder_with(child.id(), Some(process)) }
        };
        let (timer_holder, admin_holder) = (as_holder(&timer), as_holder(&admin));
        let here = Here::now();
        assert_eq!(timer_holder.by, admin_holder.by, "`by` comes from the uid, not $USER");
        assert!(!timer_holder.by.starts_with('?'), "{}", timer_holder.by);
        let (t, a) = (timer_holder.process.clone().unwrap(), admin_holder.process.clone().unwrap());
        assert_eq!((&t.machine, &t.boot_id, &t.pid_ns, t.uid), (&a.machine, &a.boot_id, &a.pid_ns, a.uid));
        assert!(matches!(here.liveness(&timer_holder), Liveness::Alive(_)));
        assert!(matches!(here.liveness(&admin_holder), Liveness::Alive(_)));
        for child in [&mut timer, &mut admin] {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        assert!(matches!(here.liveness(&timer_holder), Liveness::Gone(_)), "{:?}", here.liveness(&timer_holder));
        assert!(matches!(here.liveness(&admin_holder), Liveness::Gone(_)));
    }

    #[test]
    fn this_process_is_alive_and_knows_itself() {
        let me = Holder::this_process("r", "kubewright apply (install)", 1_795_000_000);
        assert_eq!(me.started_at, "2026-11-18T11:06:40Z");
        assert_eq!(me.pid, std::process::id());
        assert!(matches!(Here::now().liveness(&me), Liveness::Alive(_)));
    }

    #[test]
    fn an_older_kubewrights_holder_is_read_and_new_ones_keep_its_fields() {
        let old = r#"{"run_id":"other","by":"ops@bastion2","pid":77,"started_at":"2026-11-22T01:00:00Z","command":"kubewright upgrade"}"#;
        let holder: Holder = serde_json::from_str(old).unwrap();
        assert_eq!(holder.process, None);
        assert_eq!(holder.to_string(), "`kubewright upgrade` by ops@bastion2 (pid 77) since 2026-11-22T01:00:00Z");
        // What an older kubewright reads of a new holder: its own five fields are all there.
        let new = serde_json::to_value(holder_with(9, Some(identity("pid:[1]", 3)))).unwrap();
        for field in ["run_id", "by", "pid", "started_at", "command"] {
            assert!(new.get(field).is_some(), "{field} in {new}");
        }
    }

    fn answer(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\n")).collect()
    }

    #[test]
    fn a_scripts_answer_is_read_with_the_hosts_clock() {
        use base64::Engine as _;
        let json = serde_json::to_vec(&holder_with(9, None)).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&json);
        let holder_line = format!("holder {b64}");
        let held = parse_answer(&answer(&[
            "lock present",
            "fingerprint abc",
            &holder_line,
            "heartbeat 1000",
            "now 1042",
            "result held",
        ]))
        .unwrap();
        assert_eq!(held.result, "held");
        let lock = held.lock.unwrap();
        assert_eq!((lock.heartbeat_at, lock.heartbeat_age_s, lock.host_now), (Some(1000), Some(42), 1042));
        assert_eq!(lock.fingerprint, "abc");
        assert_eq!(lock.holder, Some(holder_with(9, None)));
        assert_eq!(
            lock.to_string(),
            "`kubewright apply (install)` by root@bastion (pid 9) since 2026-11-22T05:00:00Z, heartbeat 42s ago"
        );
        let free = parse_answer("lock absent\nresult acquired\n").unwrap();
        assert_eq!((free.result.as_str(), free.lock), ("acquired", None));
        // An older kubewright that died between `mkdir` and writing its holder.
        let empty =
            parse_answer(&answer(&["lock present", "fingerprint -", "heartbeat -", "now 5", "result held"])).unwrap();
        let lock = empty.lock.unwrap();
        assert_eq!((lock.holder, lock.heartbeat_age_s), (None, None));
        assert_eq!(lock.unreadable.as_deref(), Some("it has no holder.json"));
        let garbage = parse_answer(&answer(&[
            "lock present",
            "fingerprint f",
            "holder bm90IGpzb24=",
            "heartbeat -",
            "now 5",
            "result held",
        ]))
        .unwrap();
        assert!(garbage.lock.unwrap().unreadable.unwrap().contains("\"not json\""));
        assert!(parse_answer("sh: 1: flock: not found\n").unwrap_err().contains("unexpected answer"));
    }

    fn state(holder: Option<Holder>, heartbeat_age_s: Option<u64>) -> LockState {
        LockState {
            holder,
            unreadable: None,
            heartbeat_at: heartbeat_age_s.map(|a| 10_000 - a),
            heartbeat_age_s,
            host_now: 10_000,
            fingerprint: "f".into(),
        }
    }

    #[test]
    fn a_lock_is_broken_by_its_heartbeats_age_whatever_its_runs_age() {
        let now = crate::exec::parse_rfc3339("2026-11-22T05:00:00Z").unwrap() + 86_400;
        let unknown = |_: &Holder| Liveness::Unknown("elsewhere".into());
        let day_old = holder_with(9, Some(identity("pid:[1]", 3)));
        // Taken a day ago, refreshed seconds ago: a long upgrade, alive.
        let err = may_break_by(&state(Some(day_old.clone()), Some(20)), None, now, &unknown).unwrap_err();
        assert!(err.contains("heartbeat is 20s old, younger than 5m"), "{err}");
        assert_eq!(may_break_by(&state(Some(day_old.clone()), Some(400)), None, now, &unknown), Ok(()));
        assert_eq!(
            may_break_by(&state(Some(day_old.clone()), Some(90)), Some(Duration::from_secs(60)), now, &unknown),
            Ok(())
        );
        // Provably alive on this machine: kept, whatever its heartbeat.
        let alive = |_: &Holder| Liveness::Alive("its process 9 is still running on this machine".into());
        assert!(
            may_break_by(&state(Some(day_old), Some(9999)), None, now, &alive).unwrap_err().contains("still running")
        );
        // No heartbeat (an older kubewright): by its start time, 1h by default.
        let old = |started: u64| Holder { started_at: crate::exec::rfc3339(started), ..holder_with(9, None) };
        let err = may_break_by(&state(Some(old(now - 600)), None), None, now, &unknown).unwrap_err();
        assert!(err.contains("no heartbeat") && err.contains("taken 10m ago, less than 1h"), "{err}");
        assert_eq!(may_break_by(&state(Some(old(now - 7200)), None), None, now, &unknown), Ok(()));
        assert_eq!(
            may_break_by(&state(Some(old(now - 600)), None), Some(Duration::from_secs(300)), now, &unknown),
            Ok(())
        );
        let unreadable_time = Holder { started_at: "yesterday".into(), ..holder_with(9, None) };
        assert!(
            may_break_by(&state(Some(unreadable_time), None), None, now, &unknown)
                .unwrap_err()
                .contains("cannot be read")
        );
        // No holder at all: nothing says a run is alive.
        assert_eq!(may_break_by(&state(None, None), None, now, &unknown), Ok(()));
    }

    #[test]
    fn the_lock_scripts_are_valid_sh() {
        for script in [ACQUIRE, TAKE_OVER, REFRESH, RELEASE, BREAK, STATUS] {
            let checked = std::process::Command::new("sh").args(["-n", "-c", script]).status().unwrap();
            assert!(checked.success(), "sh -n:\n{script}");
        }
    }
}
