//! Hosts in memory: a [`Connect`] whose sessions answer from a function and record every
//! command they are given, so the executor's behaviour (rollouts, stop-on-failure, rollback,
//! secrets on stdin, lock loss) is tested without a network, without root and in milliseconds.
//!
//! A session unwraps the layers the executor puts around a step's commands (its own session
//! on the host, the host's time limit, a batch of parts, secrets on stdin, a transient file)
//! as the host's shell would run them, and hands each command to the answering function in
//! order, stopping at the first that fails (`set -eu`). The transcript is the commands as a
//! reader would write them: `cp1: kubeadm init --config /etc/kubewright/kubeadm-init.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::script::{Script, parse_words};
use crate::ssh::{Connect, Output, OutputStream, Target, Transport, TransportError};

/// A memory host's answer to one command.
#[derive(Debug, Clone)]
pub struct Reply {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// How long the command takes.
    pub delay: Duration,
}

impl Reply {
    pub fn ok() -> Reply {
        Reply { code: 0, stdout: String::new(), stderr: String::new(), delay: Duration::ZERO }
    }

    pub fn stdout(text: &str) -> Reply {
        Reply { stdout: text.into(), ..Reply::ok() }
    }

    pub fn fail(code: i32, stderr: &str) -> Reply {
        Reply { code, stderr: stderr.into(), ..Reply::ok() }
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }
}

type Answer = dyn Fn(&str, &[String]) -> Reply + Send + Sync;

struct Inner {
    answer: Box<Answer>,
    transcript: Mutex<Vec<String>>,
    files: Mutex<BTreeMap<(String, String), Vec<u8>>>,
    unreachable: BTreeSet<String>,
    running: AtomicUsize,
    most_running: AtomicUsize,
    round_trips: AtomicUsize,
}

/// Hosts in memory; cheap to clone (the clones share the transcript).
#[derive(Clone)]
pub struct MemoryHosts(Arc<Inner>);

impl MemoryHosts {
    /// Hosts whose commands `answer(host, words)` answers.
    pub fn new(answer: impl Fn(&str, &[String]) -> Reply + Send + Sync + 'static) -> MemoryHosts {
        MemoryHosts(Arc::new(Inner {
            answer: Box::new(answer),
            transcript: Mutex::new(Vec::new()),
            files: Mutex::new(BTreeMap::new()),
            unreachable: BTreeSet::new(),
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
            round_trips: AtomicUsize::new(0),
        }))
    }

    /// These hosts refuse connections.
    pub fn unreachable(self, hosts: &[&str]) -> MemoryHosts {
        match Arc::try_unwrap(self.0) {
            Ok(mut inner) => {
                inner.unreachable = hosts.iter().map(|h| h.to_string()).collect();
                MemoryHosts(Arc::new(inner))
            }
            Err(shared) => MemoryHosts(shared),
        }
    }

    /// Every command and transfer so far, in the order they happened.
    pub fn transcript(&self) -> Vec<String> {
        self.0.transcript.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The most commands that ran at the same time.
    pub fn most_at_once(&self) -> usize {
        self.0.most_running.load(Ordering::SeqCst)
    }

    /// How many scripts the hosts were sent (each one SSH round trip).
    pub fn round_trips(&self) -> usize {
        self.0.round_trips.load(Ordering::SeqCst)
    }

    /// A file written on a host.
    pub fn file(&self, host: &str, path: &str) -> Option<Vec<u8>> {
        self.0.files.lock().ok()?.get(&(host.to_string(), path.to_string())).cloned()
    }

    fn record(&self, line: String) {
        if let Ok(mut t) = self.0.transcript.lock() {
            t.push(line);
        }
    }
}

impl Connect for MemoryHosts {
    type Session = MemorySession;

    async fn connect(&self, target: Target) -> Result<MemorySession, TransportError> {
        if self.0.unreachable.contains(&target.name) {
            return Err(TransportError::Connect {
                host: target.name.clone(),
                addr: target.address.clone(),
                detail: "Connection refused".into(),
            });
        }
        Ok(MemorySession { hosts: self.clone(), target })
    }

    async fn close(&self, _session: MemorySession) {}
}

/// One memory host's session.
pub struct MemorySession {
    hosts: MemoryHosts,
    target: Target,
}

/// What running a script left: its output, and whether it ran to the end.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl MemorySession {
    async fn run_script(&self, script: &Script, input: &[u8]) -> Output {
        let inner = &self.hosts.0;
        inner.round_trips.fetch_add(1, Ordering::SeqCst);
        let now = inner.running.fetch_add(1, Ordering::SeqCst) + 1;
        inner.most_running.fetch_max(now, Ordering::SeqCst);
        let mut ran = Ran { code: 0, stdout: String::new(), stderr: String::new() };
        let words = script.single_command().unwrap_or_default();
        self.command(&words, input, &mut ran).await;
        inner.running.fetch_sub(1, Ordering::SeqCst);
        Output { code: Some(ran.code), stdout: ran.stdout, stderr: ran.stderr }
    }

    /// The commands of a shell text as `sh -eu` runs them: each in order, the first failing
    /// one ending it. Traps and the `set` line do nothing here.
    async fn shell(&self, text: &str, input: &[u8], ran: &mut Ran) {
        for line in crate::script::top_level_lines(text) {
            let words = match parse_words(line) {
                Some(words) => words,
                None => vec![line.to_string()],
            };
            if matches!(words.first().map(String::as_str), None | Some("set" | "trap")) {
                continue;
            }
            Box::pin(self.command(&words, input, ran)).await;
            if ran.code != 0 {
                return;
            }
        }
    }

    async fn command(&self, words: &[String], input: &[u8], ran: &mut Ran) {
        let w: Vec<&str> = words.iter().map(String::as_str).collect();
        match w.as_slice() {
            // The executor's own session on the host: the command inside it.
            ["sh", "-c", wrap, "sh", run, rest @ ..]
                if *wrap == script_text(&crate::script::in_own_session(&Script::new(), run)) =>
            {
                let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                Box::pin(self.command(&rest, input, ran)).await
            }
            // An aborted run's stop of its commands on the host.
            ["sh", "-c", stop, "sh", run, grace]
                if *stop == script_text(&crate::script::stop_run_commands(run, grace.parse().unwrap_or(0))) =>
            {
                self.hosts.record(format!(
                    "{}: stop the commands of run {run} (TERM, KILL after {grace}s)",
                    self.target.name
                ));
            }
            // The host's time limit.
            ["timeout", "-k", _, _, rest @ ..] => {
                let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                Box::pin(self.command(&rest, input, ran)).await
            }
            // A transient file of secrets: written from stdin, read by the commands, removed.
            ["sh", "-c", with_file, "sh", path, mode, _owner, commands]
                if with_file.starts_with("set -eu\nf=$1 mode=$2") =>
            {
                self.hosts
                    .record(format!("{}: write {path} ({mode}, from stdin, removed after use)", self.target.name));
                if let Ok(mut files) = self.hosts.0.files.lock() {
                    files.insert((self.target.name.clone(), path.to_string()), input.to_vec());
                }
                Box::pin(self.shell(commands, &[], ran)).await;
                self.hosts.record(format!("{}: remove {path}", self.target.name));
            }
            // Secrets on stdin, exported by the prelude.
            ["sh", "-c", text] if text.starts_with("while IFS= read -r kubewright_secret") => {
                let names: Vec<&str> = std::str::from_utf8(input)
                    .unwrap_or_default()
                    .lines()
                    .filter_map(|l| l.split_once('=').map(|(n, _)| n))
                    .collect();
                self.hosts.record(format!("{}: (secrets on stdin: {})", self.target.name, names.join(", ")));
                let rest = text.split_once('\n').map(|(_, r)| r).unwrap_or_default();
                Box::pin(self.shell(rest, input, ran)).await
            }
            // A batch: each part in order, its markers on stderr as the real script writes them.
            ["sh", "-c", text] if text.starts_with("printf '%s\\n' KUBEWRIGHT-PART-STARTED:") => {
                let parts = crate::script::top_level_lines(text).into_iter().filter(|l| l.starts_with("sh -euc "));
                for (n, line) in parts.enumerate() {
                    ran.stderr.push_str(&format!("KUBEWRIGHT-PART-STARTED:{n}\n"));
                    let part = crate::script::leading_words(line).0.pop().unwrap_or_default();
                    Box::pin(self.shell(&part, input, ran)).await;
                    if ran.code != 0 {
                        ran.stderr.push_str(&format!("KUBEWRIGHT-PART-FAILED:{n}\n"));
                        return;
                    }
                }
            }
            // A script of commands.
            ["sh", "-c", text] if text.starts_with("set -eu\n") => Box::pin(self.shell(text, input, ran)).await,
            // A command: answered by the test.
            _ => {
                let shown: Vec<String> = words
                    .iter()
                    .map(|w| match w.lines().count() {
                        0 | 1 => crate::script::quote(w),
                        _ => format!("'{}...'", w.lines().next().unwrap_or_default()),
                    })
                    .collect();
                self.hosts.record(format!("{}: {}", self.target.name, shown.join(" ")));
                let reply = (self.hosts.0.answer)(&self.target.name, words);
                if !reply.delay.is_zero() {
                    tokio::time::sleep(reply.delay).await;
                }
                ran.stdout.push_str(&reply.stdout);
                ran.stderr.push_str(&reply.stderr);
                ran.code = reply.code;
            }
        }
    }
}

impl Transport for MemorySession {
    fn target(&self) -> &Target {
        &self.target
    }

    async fn run_streaming(
        &self,
        script: &Script,
        on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<Output, TransportError> {
        let out = self.run_script(script, &[]).await;
        for line in out.stdout.lines() {
            on_line(OutputStream::Stdout, line);
        }
        for line in out.stderr.lines() {
            on_line(OutputStream::Stderr, line);
        }
        Ok(out)
    }

    async fn run_with_input(&self, script: &Script, input: &[u8]) -> Result<Output, TransportError> {
        Ok(self.run_script(script, input).await)
    }

    async fn upload(&self, path: &str, data: &[u8], mode: u32, owner: &str) -> Result<(), TransportError> {
        self.hosts.record(format!("{}: write {path} ({mode:04o} {owner})", self.target.name));
        if let Ok(mut files) = self.hosts.0.files.lock() {
            files.insert((self.target.name.clone(), path.to_string()), data.to_vec());
        }
        Ok(())
    }

    async fn download(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        self.hosts.record(format!("{}: read {path}", self.target.name));
        if let Some(data) = self.hosts.file(&self.target.name, path) {
            return Ok(data);
        }
        let reply = (self.hosts.0.answer)(&self.target.name, &["cat".to_string(), path.to_string()]);
        match reply.code {
            0 => Ok(reply.stdout.into_bytes()),
            _ => Err(TransportError::Failed {
                host: self.target.name.clone(),
                detail: format!("reading {path} failed: {}", reply.stderr.trim()),
            }),
        }
    }

    /// In memory (a test's files are small): the file's bytes land as they are.
    async fn upload_file(
        &self,
        path: &str,
        source: &std::path::Path,
        sha256: &str,
        mode: u32,
        owner: &str,
    ) -> Result<(), TransportError> {
        let data = std::fs::read(source).map_err(|e| TransportError::Failed {
            host: self.target.name.clone(),
            detail: format!("cannot read {}: {e}", source.display()),
        })?;
        self.hosts.record(format!("{}: send {} as {path} (sha256 {sha256})", self.target.name, source.display()));
        self.upload(path, &data, mode, owner).await
    }

    async fn download_to(&self, path: &str, dest: &std::path::Path) -> Result<(), TransportError> {
        let data = self.download(path).await?;
        std::fs::write(dest, data).map_err(|e| TransportError::Failed {
            host: self.target.name.clone(),
            detail: format!("cannot write {}: {e}", dest.display()),
        })
    }
}

/// A target for a memory host (the connection settings are not used).
pub fn target(host: &str) -> Target {
    Target {
        name: host.into(),
        address: format!("{host}.memory"),
        port: 22,
        user: "root".into(),
        identity_file: None,
        fallback_identity_files: Vec::new(),
        sudo: false,
        known_hosts: None,
        bastion: None,
        connect_timeout: Duration::from_secs(1),
        server_alive_interval: Duration::from_secs(15),
        accept_new_host_keys: false,
        given: crate::inventory::SshGiven { user: true, port: true, sudo: true },
        ssh_config: crate::ssh::config::HostConfig::default(),
    }
}

/// The script text (third word) of a `sh -c TEXT ...` command kubewright builds.
fn script_text(script: &Script) -> String {
    let line = script.commands().join("\n");
    parse_words(&line).and_then(|words| words.get(2).cloned()).unwrap_or_default()
}
