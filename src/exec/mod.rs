//! Running work on many hosts: bounded fan-out, one result per host; commands in order on one
//! connection, with time limits the hosts enforce. An I/O edge (tokio).

pub mod engine;
pub mod facts;
pub mod journal;
pub mod lock;
pub mod memory;
pub mod wait;

use std::future::Future;

use futures::stream::{self, StreamExt};

use crate::duration::Duration;
use crate::script::{REMOTE_KILL_GRACE_SECS, Script};
pub use crate::script::{TIMEOUT_EXIT_CODE, time_limited};
use crate::ssh::{Output, OutputStream, Transport, TransportError};

/// What happened on one host.
#[derive(Debug)]
pub struct HostOutcome<T, E> {
    pub host: String,
    pub result: Result<T, E>,
}

/// Run `f` on every host's item (its name and what the work needs, e.g. its SSH target), at
/// most `window` at a time (a sliding window: a slow host never holds up the others), and
/// return the outcomes in the order the hosts were given.
pub async fn for_each_host<X, T, E, F, Fut>(items: Vec<(String, X)>, window: usize, f: F) -> Vec<HostOutcome<T, E>>
where
    F: Fn(X) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut done: Vec<(usize, HostOutcome<T, E>)> = stream::iter(items.into_iter().enumerate())
        .map(|(i, (host, item))| {
            let fut = f(item);
            async move { (i, HostOutcome { host, result: fut.await }) }
        })
        .buffer_unordered(window.max(1))
        .collect()
        .await;
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, o)| o).collect()
}

/// Run the scripts one after the other on one connection, stopping at the first that fails,
/// each line of output going to `on_line` as it arrives; the outputs are joined. Returns the
/// output and how many scripts ran. With `limit` (the scripts' own time limit, see
/// [`time_limited`]), a host that has not answered well after it (a dead link) is given up on.
pub async fn run_in_order<T: Transport>(
    t: &T,
    scripts: &[Script],
    on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    limit: Option<Duration>,
) -> Result<(Output, usize), TransportError> {
    let mut joined = Output { code: Some(0), stdout: String::new(), stderr: String::new() };
    for (i, script) in scripts.iter().enumerate() {
        let command = t.run_streaming(script, &mut *on_line);
        let out = match limit {
            Some(limit) => within_backstop(&t.target().name, limit, 1, command).await?,
            None => command.await?,
        };
        joined.stdout.push_str(&out.stdout);
        joined.stderr.push_str(&out.stderr);
        joined.code = out.code;
        if !out.success() {
            return Ok((joined, i + 1));
        }
    }
    Ok((joined, scripts.len()))
}

/// Run `script` once, stopped on the host after `limit` (exit [`TIMEOUT_EXIT_CODE`]); a host
/// that has not answered well after it (a dead link) is given up on. For the attempts of a
/// wait: one that hangs (an API server that accepts and never answers) must not outlast the
/// wait itself.
pub async fn run_limited<T: Transport>(t: &T, script: &Script, limit: Duration) -> Result<Output, TransportError> {
    let limited = crate::script::time_limited_script(script, limit);
    within_backstop(&t.target().name, limit, 1, t.run(&limited)).await
}

/// Wait for `command` (`commands` commands one after the other, each of which its host stops
/// after `limit`) only until well after the host would have stopped them all: a dead link
/// never answers.
pub async fn within_backstop<T>(
    host: &str,
    limit: Duration,
    commands: u64,
    command: impl Future<Output = Result<T, TransportError>>,
) -> Result<T, TransportError> {
    let backstop = std::time::Duration::from_secs((limit.seconds + REMOTE_KILL_GRACE_SECS) * commands.max(1) + 20);
    tokio::time::timeout(backstop, command).await.unwrap_or_else(|_| {
        Err(TransportError::Exec {
            host: host.into(),
            detail: format!(
                "no answer within {}s although the command's timeout is {limit}; the link may be down",
                backstop.as_secs()
            ),
        })
    })
}

/// A file's size and SHA-256 (lowercase hex), read in pieces: a snapshot of gigabytes is
/// hashed once without being held in memory.
pub fn sha256_file(path: &std::path::Path) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, crate::pki::hex_lower(&hasher.finalize())))
}

/// Seconds since the epoch as an RFC 3339 UTC time (`2026-11-22T07:30:00Z`).
pub fn rfc3339(secs: u64) -> String {
    let (year, month, day) = crate::duration::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The inverse of [`rfc3339`] for its own format (`2026-11-22T07:30:00Z`); None for anything else.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' || b[19] != b'Z'
    {
        return None;
    }
    let num = |range: std::ops::Range<usize>| text.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u64::try_from(days * 86_400 + hour * 3600 + minute * 60 + second).ok()
}

/// Keep up to `keep` earlier copies of `path` before it is replaced: `path.1` (the newest) to
/// `path.<keep>`, the oldest dropped.
pub fn rotate_copies(path: &std::path::Path, keep: u32) -> std::io::Result<()> {
    let numbered = |n: u32| std::path::PathBuf::from(format!("{}.{n}", path.display()));
    if !path.exists() {
        return Ok(());
    }
    let _ = std::fs::remove_file(numbered(keep));
    for n in (1..keep).rev() {
        if numbered(n).exists() {
            std::fs::rename(numbered(n), numbered(n + 1))?;
        }
    }
    std::fs::rename(path, numbered(1))
}

/// A private (0600) temporary file in `path`'s directory (made if missing), to be renamed over
/// `path` once complete ([`persist`]).
pub fn private_file_beside(path: &std::path::Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    tempfile::Builder::new().prefix(".kubewright-").tempfile_in(dir)
}

/// `tmp`, complete, as `path` with `mode`: synced, then renamed over it (a reader never sees a
/// partial file; a link at `path` is replaced, never followed).
pub fn persist(tmp: tempfile::NamedTempFile, path: &std::path::Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Write `content` to `path` atomically with `mode`: a private temporary file in the same
/// directory, renamed over the target, so a reader never sees a partial or world-readable file.
pub fn write_file_atomically(path: &std::path::Path, content: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.as_file().set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.write_all(content)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn copies_rotate_and_the_oldest_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pki.tar.gz");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).ok();
        super::rotate_copies(&file, 2).unwrap(); // nothing there yet
        for n in 1..=4 {
            super::rotate_copies(&file, 2).unwrap();
            std::fs::write(&file, format!("backup {n}")).unwrap();
        }
        assert_eq!(read("pki.tar.gz").as_deref(), Some("backup 4"));
        assert_eq!(read("pki.tar.gz.1").as_deref(), Some("backup 3"));
        assert_eq!(read("pki.tar.gz.2").as_deref(), Some("backup 2"));
        assert_eq!(read("pki.tar.gz.3"), None, "two earlier copies kept");
    }

    #[test]
    fn rfc3339_round_trips() {
        for t in [0, 951_782_400, 1_795_000_000, 4_102_444_799] {
            assert_eq!(super::parse_rfc3339(&super::rfc3339(t)), Some(t));
        }
        assert_eq!(super::parse_rfc3339("2026-11-22 07:30:00"), None);
        assert_eq!(super::parse_rfc3339("2026-13-22T07:30:00Z"), None);
        assert_eq!(super::parse_rfc3339("?"), None);
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
