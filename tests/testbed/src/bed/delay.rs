//! The latency fault. This kernel has no `sch_netem`, and its nft-based iptables cannot
//! queue packets (CONFIG_NFT_QUEUE is unset), so: `iptables-legacy` rules in the host's own
//! network namespace send every packet through `eth0` (both ways) to NFQUEUE 0, and this
//! helper, running in that namespace, releases each one `delay` after it arrived, in order.
//! The rules use `--queue-bypass`: if the helper dies, packets flow again undelayed.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::Context;

pub const RULES: &[&[&str]] = &[
    &["-t", "mangle", "-A", "PREROUTING", "-i", "eth0", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"],
    &["-t", "mangle", "-A", "POSTROUTING", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "0", "--queue-bypass"],
];

/// Run forever: hold each queued packet for `delay`, then accept it.
pub fn run_delay(delay: Duration) -> anyhow::Result<()> {
    let mut queue = nfq::Queue::open().context("cannot open an NFQUEUE netlink socket")?;
    queue.bind(0).context("cannot bind NFQUEUE 0")?;
    queue.set_queue_max_len(0, 65_536).context("cannot size the queue")?;
    queue.set_nonblocking(true);
    let mut held: VecDeque<(Instant, nfq::Message)> = VecDeque::new();
    loop {
        let mut got = false;
        loop {
            match queue.recv() {
                Ok(msg) => {
                    held.push_back((Instant::now() + delay, msg));
                    got = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e).context("reading the queue"),
            }
        }
        while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            if let Some((_, mut msg)) = held.pop_front() {
                msg.set_verdict(nfq::Verdict::Accept);
                queue.verdict(msg).context("releasing a packet")?;
            }
        }
        let wait = held
            .front()
            .map(|(due, _)| due.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(1));
        if !got {
            std::thread::sleep(wait.min(Duration::from_millis(1)));
        }
    }
}
