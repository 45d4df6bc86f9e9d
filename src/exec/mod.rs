//! Running work on many hosts: bounded fan-out, one result per host; commands in order on one
//! connection, with time limits the hosts enforce. An I/O edge (tokio).

pub mod lock;

use std::future::Future;

use futures::stream::{self, StreamExt};

use crate::duration::Duration;
use crate::script::Script;
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

/// What coreutils' `timeout` exits with when it stopped the command.
pub const TIMEOUT_EXIT_CODE: i32 = 124;

/// How long the remote `timeout -k` waits between TERM and KILL.
const REMOTE_KILL_GRACE_SECS: u64 = 10;

/// A command (its words) that the host itself stops after `limit`: coreutils' `timeout` sends
/// TERM to its process group, KILL 10 s later, and exits 124. Merely no longer waiting for it
/// locally would leave it running there.
pub fn time_limited(words: Vec<&str>, limit: Option<Duration>) -> Script {
    match limit {
        Some(limit) => {
            let (grace, seconds) = (REMOTE_KILL_GRACE_SECS.to_string(), limit.seconds.to_string());
            Script::new().cmd(["timeout", "-k", grace.as_str(), seconds.as_str()].into_iter().chain(words))
        }
        None => Script::new().cmd(words),
    }
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
            Some(limit) => {
                let backstop = std::time::Duration::from_secs(limit.seconds + REMOTE_KILL_GRACE_SECS + 20);
                tokio::time::timeout(backstop, command).await.map_err(|_| TransportError::Exec {
                    host: t.target().name.clone(),
                    detail: format!(
                        "no answer within {}s although the command's timeout is {limit}; the link may be down",
                        backstop.as_secs()
                    ),
                })??
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_time_limit_wraps_the_words_in_the_hosts_timeout() {
        let limited = time_limited(vec!["sh", "-c", "sleep 9; echo 'done'"], Some(Duration::from_secs(90)));
        assert_eq!(limited.commands(), ["timeout -k 10 90 sh -c 'sleep 9; echo '\\''done'\\'''"]);
        assert_eq!(time_limited(vec!["true"], None).commands(), ["true"]);
    }
}
