//! The system `ssh` as transport (the `openssh` crate, native multiplexing): honours
//! `~/.ssh/config`, the agent, ProxyJump, certificates and `Match` blocks. One master
//! connection per host, in a control directory private to this run, closed at its end.
//! A failed connection is told apart by who refused it, the bastion or the host behind it,
//! and a key that is not trusted is shown as the host presents it, read where ssh reads it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use openssh::{KnownHosts, SessionBuilder};

use super::{Jump, Output, OutputStream, Target, Transport, TransportError};
use crate::script::{Script, quote};

/// The bastion's name in the run's private ssh_config files.
const BASTION: &str = "kubewright-bastion";

/// A connection through the bastion: its ssh_config, and the log of the ssh that carries it.
struct BastionFiles {
    config: PathBuf,
    log: PathBuf,
}

pub struct OpensshTransport {
    target: Target,
    session: openssh::Session,
}

impl OpensshTransport {
    /// Open the master connection. `control_dir` must be private to this run; `run_config`
    /// is the run's ssh_config (`config::run_config`), which ssh then reads instead of its own.
    pub async fn connect(
        target: Target,
        control_dir: &Path,
        run_config: Option<&Path>,
    ) -> Result<Self, TransportError> {
        let mut b = SessionBuilder::default();
        // Only what the inventory gives goes on the command line, where it wins over
        // ssh_config; kubewright's default user (root) only where ssh_config names none (ssh's
        // own default would be the local user).
        if target.given.user || target.ssh_config.user.is_none() {
            b.user(target.user.clone());
        }
        if target.given.port {
            b.port(target.port);
        }
        b.known_hosts_check(if target.accept_new_host_keys { KnownHosts::Add } else { KnownHosts::Strict })
            .connect_timeout(target.connect_timeout)
            .server_alive_interval(target.server_alive_interval)
            .control_directory(control_dir);
        if let Some(key) = &target.identity_file {
            b.keyfile(key);
        }
        if let Some(kh) = &target.known_hosts {
            b.user_known_hosts_file(kh);
        }
        let bastion = match &target.bastion {
            Some(jump) => {
                // Options on the command line apply to the destination only (ssh(1)): the
                // bastion gets its identity and known_hosts from a config file private to this
                // run, which then includes the run's ssh_config for both.
                let files = BastionFiles {
                    config: control_dir.join(format!("bastion-{}.conf", target.name)),
                    log: control_dir.join(format!("bastion-{}.log", target.name)),
                };
                // A second connection to the host in this run must not read the first one's messages.
                let _ = std::fs::remove_file(&files.log);
                std::fs::write(&files.config, bastion_config(&target, jump, &files)).map_err(|e| {
                    TransportError::Connect {
                        host: target.name.clone(),
                        addr: jump.host.clone(),
                        detail: format!("cannot write the bastion's ssh config: {e}"),
                    }
                })?;
                b.config_file(&files.config);
                Some(files)
            }
            None => {
                if let Some(file) = run_config {
                    b.config_file(file);
                }
                None
            }
        };
        if bastion.is_none() && !target.fallback_identity_files.is_empty() {
            let config = control_dir.join(format!("identities-{}.conf", target.name));
            std::fs::write(&config, identities_config(&target)).map_err(|e| TransportError::Connect {
                host: target.name.clone(),
                addr: target.address.clone(),
                detail: format!("cannot write the ssh config of its identity files: {e}"),
            })?;
            b.config_file(&config);
        }
        match b.connect_mux(&target.address).await {
            Ok(session) => Ok(OpensshTransport { target, session }),
            Err(e) => Err(classify(&target, e, bastion.as_ref()).await),
        }
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// An ssh_config for a connection through the bastion. Values are quoted; they were validated
/// at inventory load.
///
/// The destination goes through the bastion as `ssh -J` would take it (for ProxyJump, ssh.c
/// runs `ssh -F CONFIG -W '[%h]:%p' JUMP`), with one difference: the bastion's ssh writes its
/// messages to a log of its own (`-E`). Under `-J` they go to the master's stderr, which the
/// openssh crate discards, so a refused bastion key or login showed only as the target's
/// "Connection closed by UNKNOWN port 65535"; from the log, the error names the bastion.
fn bastion_config(target: &Target, jump: &Jump, files: &BastionFiles) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', ""));
    // ProxyCommand runs under the user's shell after ssh expands its `%` tokens.
    let arg = |p: &Path| quote(&p.to_string_lossy()).replace('%', "%%");
    let mut c = format!(
        "Host * !{BASTION}\n  ProxyCommand ssh -E {} -F {} -W '[%h]:%p' {BASTION}\n{}\n",
        arg(&files.log),
        arg(&files.config),
        fallback_identity_lines(target)
    );
    c.push_str(&format!(
        "Host {BASTION}\n  HostName {}\n  User {}\n  Port {}\n",
        q(&jump.host),
        q(&jump.user),
        jump.port
    ));
    if let Some(key) = &jump.identity_file {
        c.push_str(&format!("  IdentityFile {}\n  IdentitiesOnly yes\n", q(&key.to_string_lossy())));
    }
    if let Some(kh) = &target.known_hosts {
        c.push_str(&format!("  UserKnownHostsFile {}\n", q(&kh.to_string_lossy())));
    }
    c.push_str(if target.accept_new_host_keys {
        "  StrictHostKeyChecking accept-new\n"
    } else {
        "  StrictHostKeyChecking yes\n"
    });
    // The destination's BatchMode and ConnectTimeout (command-line options) do not reach the
    // bastion's ssh: without them it could ask for a password on the terminal, or wait out
    // TCP's own timeout for a bastion that does not answer. A second less than the
    // destination's, so that a bastion that does not answer is the error reported, not the
    // destination's ssh giving up on its proxy at the same moment.
    let bastion_timeout = target.connect_timeout.as_secs().saturating_sub(1).max(1);
    c.push_str(&format!("  BatchMode yes\n  ConnectTimeout {bastion_timeout}\n"));
    // The admin's and the system's ssh_config last: the destination's user, port and keys
    // from them apply where the command line is silent, as without a bastion.
    let home = super::config::home();
    // (An Include inside a Host block applies to that host only: hence `Host *`.)
    c.push_str("\nHost *\n");
    c.push_str(&super::config::run_config(home.as_deref()));
    c
}

/// `IdentityFile` lines for the keys after the first (which goes on the command line, `-i`):
/// IdentityFile adds up rather than the first one winning, and ssh tries the command line's
/// keys first, then these in order (ssh_config(5)). Paths are quoted, `%` escaped (ssh expands
/// its tokens in IdentityFile).
fn fallback_identity_lines(target: &Target) -> String {
    target
        .fallback_identity_files
        .iter()
        .map(|k| format!("  IdentityFile \"{}\"\n", k.to_string_lossy().replace('"', "").replace('%', "%%")))
        .collect()
}

/// The ssh config of a host with several identity files and no bastion: the openssh crate
/// passes one `-i`, the others come from here. `-F` replaces the user's and the system's
/// config files, so the run's ssh_config is included after it, as in every run's `-F` file.
fn identities_config(target: &Target) -> String {
    let mut c = format!("Host *\n{}", fallback_identity_lines(target));
    c.push_str(&super::config::run_config(super::config::home().as_deref()));
    c
}

/// Hand a line read so far to the caller and keep it in the collected output.
fn deliver(
    line: &mut Vec<u8>,
    all: &mut String,
    stream: OutputStream,
    on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
) {
    if line.is_empty() {
        return;
    }
    let text = String::from_utf8_lossy(line);
    on_line(stream, text.trim_end_matches('\n'));
    all.push_str(&text);
    line.clear();
}

/// What a failed connection's messages say was refused.
enum Refusal {
    /// "no matching host key type found. Their offer: ...": no key the client accepts.
    NoCommonHostKeyType,
    HostKey {
        changed: bool,
    },
    Login,
}

fn refusal(messages: &str) -> Option<Refusal> {
    if messages.contains("no matching host key type found") {
        return Some(Refusal::NoCommonHostKeyType);
    }
    // sshconnect.c: "Host key verification failed.", "No ED25519 host key is known for ...",
    // "REMOTE HOST IDENTIFICATION HAS CHANGED", "Host key for ... has changed ...".
    if messages.contains("Host key verification failed")
        || messages.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || messages.contains("host key")
    {
        let changed = messages.contains("CHANGED") || messages.contains("has changed");
        return Some(Refusal::HostKey { changed });
    }
    messages.contains("Permission denied").then_some(Refusal::Login)
}

/// A host (the target or the bastion) that refused the connection, as an error saying which.
struct Refused<'a> {
    host: String,
    address: &'a str,
    port: u16,
    user: &'a str,
    /// Where its key is scanned from when it is not trusted: the bastion's config, if it is
    /// reached through one.
    scan_via: Option<&'a Path>,
}

impl Refused<'_> {
    async fn error(&self, refusal: Refusal, messages: &str) -> TransportError {
        let (host, addr) = (self.host.clone(), format!("{}:{}", self.address, self.port));
        match refusal {
            Refusal::NoCommonHostKeyType => {
                let mut detail = messages.to_string();
                if messages.contains("Their offer: ssh-rsa") {
                    detail.push_str(&format!("; {}", super::SHA1_RSA_REFUSED));
                }
                TransportError::Connect { host, addr, detail }
            }
            Refusal::HostKey { changed } => {
                let key = describe_key(self.address, self.port, self.scan_via).await;
                let what = if changed { "its key CHANGED since it was recorded" } else { "it is not in known_hosts" };
                TransportError::HostKey { host, addr, detail: format!("{what}; {key}"), changed }
            }
            Refusal::Login => TransportError::Auth { host, user: self.user.to_string(), detail: messages.to_string() },
        }
    }
}

/// The remote command's exit code. The openssh crate turns an exit of 127 into an error ("remote
/// command not found", native_mux_impl/child.rs): here the command is always the host's shell,
/// so 127 is a command *that* shell did not find, an answer like any other exit code, with
/// its stderr; only an exit without a code (the link or the process lost) is an error.
fn exit_code(waited: Result<std::process::ExitStatus, openssh::Error>) -> Result<Option<i32>, openssh::Error> {
    match waited {
        Ok(status) => Ok(status.code()),
        Err(openssh::Error::Remote(e))
            if e.kind() == std::io::ErrorKind::NotFound && e.to_string() == "remote command not found" =>
        {
            Ok(Some(127))
        }
        Err(e) => Err(e),
    }
}

async fn classify(t: &Target, e: openssh::Error, bastion: Option<&BastionFiles>) -> TransportError {
    let text = format!("{e}");
    let detail = match &e {
        openssh::Error::Connect(io) => format!("{text}: {io}"),
        _ => text.clone(),
    };
    let source = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
    // openssh's Connect error is its source: name it once.
    let all = if detail.contains(&source) { detail } else { format!("{detail}: {source}") };
    let all = all.trim();
    let addr = format!("{}:{}", t.host_name(), t.port);
    let jump = t.bastion.as_ref().zip(bastion).map(|(jump, files)| (jump, bastion_messages(&files.log)));
    // The bastion first: when it refuses, the target's own ssh only sees its proxy close.
    if let Some((jump, messages)) = &jump
        && let Some(refusal) = refusal(messages)
    {
        let refused = Refused {
            host: format!("bastion {}", jump.host),
            address: &jump.host,
            port: jump.port,
            user: &jump.user,
            scan_via: None,
        };
        return refused.error(refusal, messages).await;
    }
    if let Some(refusal) = refusal(all) {
        let refused = Refused {
            host: t.name.clone(),
            address: t.host_name(),
            port: t.port,
            user: &t.user,
            scan_via: bastion.map(|b| b.config.as_path()),
        };
        return refused.error(refusal, all).await;
    }
    match &jump {
        Some((jump, messages)) if messages.contains("open failed") || messages.contains("stdio forwarding failed") => {
            TransportError::Connect {
                host: t.name.clone(),
                addr,
                detail: format!("the bastion {} could not reach it: {messages}", jump.host),
            }
        }
        // ssh's own failures to connect: "ssh: connect to host ...", "ssh: Could not resolve hostname ...".
        Some((jump, messages)) if messages.starts_with("ssh: ") => TransportError::Connect {
            host: format!("bastion {}", jump.host),
            addr: format!("{}:{}", jump.host, jump.port),
            detail: messages.clone(),
        },
        Some((jump, messages)) if !messages.is_empty() => TransportError::Connect {
            host: t.name.clone(),
            addr,
            detail: format!("{all}; the bastion {}'s ssh said: {messages}", jump.host),
        },
        _ => TransportError::Connect { host: t.name.clone(), addr, detail: all.to_string() },
    }
}

/// What the bastion's ssh logged, without the notes it writes on success as well.
fn bastion_messages(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> =
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added")).collect();
    lines.join("\n")
}

/// The host-key types scanned, in the order ssh prefers them (KEX_DEFAULT_PK_ALG, myproposal.h).
const SCANNED_KEY_TYPES: [&str; 3] = ["ssh-ed25519", "ecdsa-sha2-", "ssh-rsa"];

/// The key a host presents and the known_hosts line that would trust it, for error messages:
/// `ssh-keyscan` from here, or, for a host behind the bastion, on the bastion (`scan_via` is
/// the bastion's ssh_config). A scan from here would reach another machine, or none, at the
/// address the bastion reaches the host at.
async fn describe_key(address: &str, port: u16, scan_via: Option<&Path>) -> String {
    let port = port.to_string();
    let scan_args = ["-T", "5", "-t", "ed25519,ecdsa,rsa", "-p", port.as_str(), address];
    let mut command = match scan_via {
        None => {
            let mut c = tokio::process::Command::new("ssh-keyscan");
            c.args(scan_args);
            c
        }
        Some(config) => {
            let mut c = tokio::process::Command::new("ssh");
            let remote = Script::new().cmd(std::iter::once("ssh-keyscan").chain(scan_args)).to_shell();
            c.arg("-F").arg(config).args([BASTION, "--", remote.as_str()]);
            c
        }
    };
    command.stdin(std::process::Stdio::null()).kill_on_drop(true);
    let scanned = tokio::time::timeout(Duration::from_secs(30), command.output()).await;
    let from = if scan_via.is_some() { "through the bastion" } else { "from here" };
    let scan = match scanned {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return unread_key(&format!("ssh-keyscan could not run {from}: {e}")),
        Err(_) => return unread_key(&format!("ssh-keyscan {from} did not finish within 30s")),
    };
    let text = String::from_utf8_lossy(&scan.stdout);
    // One line per key type, in the order the scans finished: show the type ssh would ask
    // for first, so that the advice is the same from one run to the next.
    let rank = |line: &str| {
        let key_type = line.split_whitespace().nth(1).unwrap_or_default();
        SCANNED_KEY_TYPES.iter().position(|t| key_type.starts_with(t)).unwrap_or(SCANNED_KEY_TYPES.len())
    };
    let Some(line) = text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).min_by_key(|l| rank(l))
    else {
        let said = String::from_utf8_lossy(&scan.stderr);
        let said = said.lines().rfind(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap_or("no key");
        return unread_key(&format!("ssh-keyscan {from}: {}", said.trim()));
    };
    let fp = tokio::process::Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut fingerprint = String::new();
    if let Ok(mut child) = fp {
        use tokio::io::AsyncWriteExt;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(line.as_bytes()).await;
        }
        if let Ok(out) = child.wait_with_output().await {
            fingerprint = String::from_utf8_lossy(&out.stdout).split_whitespace().nth(1).unwrap_or("").to_string();
        }
    }
    format!("it presents {fingerprint}; the known_hosts line is:\n    {line}")
}

fn unread_key(why: &str) -> String {
    format!(
        "its key could not be read ({why}); compare `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the host itself"
    )
}

impl OpensshTransport {
    /// Run a remote command line with `input` copied to its stdin in pieces (an uploaded file
    /// is never all in memory); `what` names the input in errors.
    async fn piped(
        &self,
        command: &str,
        mut input: impl tokio::io::AsyncRead + Unpin,
        what: &str,
    ) -> Result<Output, TransportError> {
        use tokio::io::AsyncWriteExt;
        let mut child = self
            .session
            .raw_command(command)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.exec_error(e))?;
        use tokio::io::AsyncReadExt;
        let mut stdin = child.stdin().take().ok_or_else(|| self.exec_error("no stdin"))?;
        let mut stdout = child.stdout().take().ok_or_else(|| self.exec_error("no stdout"))?;
        let mut stderr = child.stderr().take().ok_or_else(|| self.exec_error("no stderr"))?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        // `stdin` is moved in and dropped when the input is sent: dropping closes the pipe
        // (shutdown alone does not), and the command sees its end of input.
        let send = async move {
            tokio::io::copy(&mut input, &mut stdin).await?;
            stdin.shutdown().await
        };
        // Read while sending: a command that answers early must not block on a full pipe.
        let (sent, read_out, read_err) = tokio::join!(send, stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
        // A command that failed before reading all its input closes it: its own exit code and
        // message say why, better than the broken pipe.
        read_out.map_err(|e| self.exec_error(e))?;
        read_err.map_err(|e| self.exec_error(e))?;
        let code = exit_code(child.wait().await).map_err(|e| self.exec_error(e))?;
        if let Err(e) = sent
            && code == Some(0)
        {
            return Err(self.exec_error(format!("{what} interrupted: {e}")));
        }
        self.check_sudo(Output {
            code,
            stdout: String::from_utf8_lossy(&out).into_owned(),
            stderr: String::from_utf8_lossy(&err).into_owned(),
        })
    }

    fn check_sudo(&self, out: Output) -> Result<Output, TransportError> {
        super::refuse_sudo_prompt(&self.target, out)
    }

    fn exec_error(&self, detail: impl std::fmt::Display) -> TransportError {
        TransportError::Exec { host: self.target.name.clone(), detail: detail.to_string() }
    }

    /// What the host answered with a failure (the command ran to its end), or a local file
    /// error of a transfer.
    fn refused(&self, detail: impl std::fmt::Display) -> TransportError {
        TransportError::Failed { host: self.target.name.clone(), detail: detail.to_string() }
    }
}

impl Transport for OpensshTransport {
    fn target(&self) -> &Target {
        &self.target
    }

    async fn run_streaming(
        &self,
        script: &Script,
        on_line: &mut (dyn FnMut(OutputStream, &str) + Send),
    ) -> Result<Output, TransportError> {
        use tokio::io::AsyncBufReadExt;
        let mut child = self
            .session
            .raw_command(self.target.wrap(script))
            .stdin(openssh::Stdio::null())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.exec_error(e))?;
        let stdout = child.stdout().take().ok_or_else(|| self.exec_error("no stdout"))?;
        let stderr = child.stderr().take().ok_or_else(|| self.exec_error("no stderr"))?;
        let (mut stdout, mut stderr) = (tokio::io::BufReader::new(stdout), tokio::io::BufReader::new(stderr));
        let mut out = Output { code: None, stdout: String::new(), stderr: String::new() };
        let (mut out_line, mut err_line) = (Vec::new(), Vec::new());
        let (mut out_open, mut err_open) = (true, true);
        // Lines are read as bytes (a command may print invalid UTF-8) and handed on whole.
        while out_open || err_open {
            tokio::select! {
                n = stdout.read_until(b'\n', &mut out_line), if out_open => {
                    let n = n.map_err(|e| self.exec_error(e))?;
                    out_open = n > 0;
                    deliver(&mut out_line, &mut out.stdout, OutputStream::Stdout, on_line);
                }
                n = stderr.read_until(b'\n', &mut err_line), if err_open => {
                    let n = n.map_err(|e| self.exec_error(e))?;
                    err_open = n > 0;
                    deliver(&mut err_line, &mut out.stderr, OutputStream::Stderr, on_line);
                }
            }
        }
        out.code = exit_code(child.wait().await).map_err(|e| self.exec_error(e))?;
        self.check_sudo(out)
    }

    async fn run_with_input(&self, script: &Script, input: &[u8]) -> Result<Output, TransportError> {
        self.piped(&self.target.wrap(script), input, "the command's input").await
    }

    async fn download(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        let out = self
            .session
            .raw_command(self.target.wrap_shell(&format!("cat {}", crate::script::quote(path))))
            .output()
            .await
            .map_err(|e| self.exec_error(e))?;
        if !out.status.success() {
            return Err(self.refused(format!("reading {path} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
        }
        Ok(out.stdout)
    }

    async fn upload_file(
        &self,
        path: &str,
        source: &std::path::Path,
        sha256: &str,
        mode: u32,
        owner: &str,
    ) -> Result<(), TransportError> {
        let file = tokio::fs::File::open(source)
            .await
            .map_err(|e| self.refused(format!("cannot read {}: {e}", source.display())))?;
        let script = Script::new().cmd(["sh", "-c", super::upload_script_checked(path, mode, owner, sha256).as_str()]);
        let out = self.piped(&self.target.wrap(&script), file, &format!("the upload of {path}")).await?;
        super::upload_result(&self.target, path, out)
    }

    async fn download_to(&self, path: &str, dest: &std::path::Path) -> Result<(), TransportError> {
        use tokio::io::AsyncReadExt;
        let mut child = self
            .session
            .raw_command(self.target.wrap_shell(&format!("cat {}", crate::script::quote(path))))
            .stdin(openssh::Stdio::null())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::piped())
            .spawn()
            .await
            .map_err(|e| self.exec_error(e))?;
        let mut stdout = child.stdout().take().ok_or_else(|| self.exec_error("no stdout"))?;
        let mut stderr = child.stderr().take().ok_or_else(|| self.exec_error("no stderr"))?;
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| self.refused(format!("cannot write {}: {e}", dest.display())))?;
        let mut errors = Vec::new();
        let (copied, read) = tokio::join!(tokio::io::copy(&mut stdout, &mut file), stderr.read_to_end(&mut errors));
        copied.map_err(|e| self.exec_error(format!("reading {path} interrupted: {e}")))?;
        read.map_err(|e| self.exec_error(e))?;
        file.sync_all().await.map_err(|e| self.refused(format!("cannot write {}: {e}", dest.display())))?;
        let status = child.wait().await.map_err(|e| self.exec_error(e))?;
        if !status.success() {
            return Err(self.refused(format!("reading {path} failed: {}", String::from_utf8_lossy(&errors).trim())));
        }
        Ok(())
    }
}
