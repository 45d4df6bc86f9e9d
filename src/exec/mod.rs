//! Running work on many hosts: bounded fan-out, one result per host. An I/O edge (tokio).

pub mod lock;

use std::future::Future;

use futures::stream::{self, StreamExt};

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
