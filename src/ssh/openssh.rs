//! The system `ssh` as transport (the `openssh` crate, native multiplexing): honours
//! `~/.ssh/config`, the agent, ProxyJump, certificates and `Match` blocks. One master
//! connection per host, in a control directory private to this run, closed at its end.

use std::path::Path;

use openssh::{KnownHosts, SessionBuilder};

use super::{Output, OutputStream, Target, Transport, TransportError, describe_host_key};
use crate::script::Script;

pub struct OpensshTransport {
    target: Target,
    session: openssh::Session,
}

impl OpensshTransport {
    /// Open the master connection. `control_dir` must be private to this run.
    pub async fn connect(target: Target, control_dir: &Path) -> Result<Self, TransportError> {
        let mut b = SessionBuilder::default();
        b.user(target.user.clone())
            .port(target.port)
            .known_hosts_check(if target.accept_new_host_keys { KnownHosts::Add } else { KnownHosts::Strict })
            .connect_timeout(target.connect_timeout)
            .server_alive_interval(target.server_alive_interval)
            .control_directory(control_dir);
        if let Some(key) = &target.identity_file {
            b.keyfile(key);
        }
        if let Some(kh) = &target.known_hosts {
            b.user_known_hosts_file(kh);
        }
        if let Some(jump) = &target.bastion {
            // `ssh -J` applies command-line options to the destination only (ssh(1)): the jump
            // host gets its identity and known_hosts from a config file private to this run,
            // which then includes the user's own ~/.ssh/config for everything else.
            let config = control_dir.join(format!("bastion-{}.conf", target.name));
            std::fs::write(&config, bastion_config(&target, jump)).map_err(|e| TransportError::Connect {
                host: target.name.clone(),
                addr: jump.host.clone(),
                detail: format!("cannot write the bastion's ssh config: {e}"),
            })?;
            b.config_file(&config);
            b.jump_hosts(["kubewright-bastion"]);
        }
        match b.connect_mux(&target.address).await {
            Ok(session) => Ok(OpensshTransport { target, session }),
            Err(e) => Err(classify(&target, e).await),
        }
    }

    pub async fn close(self) {
        let _ = self.session.close().await;
    }
}

/// An ssh_config for the jump host. Values are quoted; they were validated at inventory load.
fn bastion_config(target: &Target, jump: &super::Jump) -> String {
    let q = |s: &str| format!("\"{}\"", s.replace('"', ""));
    let mut c = format!(
        "Host kubewright-bastion\n  HostName {}\n  User {}\n  Port {}\n",
        q(&jump.host),
        q(&jump.user),
        jump.port
    );
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
    if let Some(home) = std::env::var_os("HOME") {
        let user_config = std::path::Path::new(&home).join(".ssh/config");
        if user_config.exists() {
            c.push_str(&format!("\nInclude {}\n", q(&user_config.to_string_lossy())));
        }
    }
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

async fn classify(t: &Target, e: openssh::Error) -> TransportError {
    let text = format!("{e}");
    let detail = match &e {
        openssh::Error::Connect(io) => format!("{text}: {io}"),
        _ => text.clone(),
    };
    let source = std::error::Error::source(&e).map(|s| s.to_string()).unwrap_or_default();
    // openssh's Connect error is its source: name it once.
    let all = if detail.contains(&source) { detail } else { format!("{detail}: {source}") };
    let addr = format!("{}:{}", t.address, t.port);
    // "Unable to negotiate with ...: no matching host key type found. Their offer: ssh-rsa":
    // no key the client accepts, which is not a question of trust.
    if all.contains("no matching host key type found") {
        let mut detail = all.trim().to_string();
        if all.contains("Their offer: ssh-rsa") {
            detail.push_str(&format!("; {}", super::SHA1_RSA_REFUSED));
        }
        return TransportError::Connect { host: t.name.clone(), addr, detail };
    }
    if all.contains("Host key verification failed")
        || all.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
        || all.contains("host key")
    {
        let changed = all.contains("CHANGED") || all.contains("has changed");
        let key = describe_host_key(t).await;
        let what = if changed { "its key CHANGED since it was recorded" } else { "it is not in known_hosts" };
        return TransportError::HostKey { host: t.name.clone(), addr, detail: format!("{what}; {key}"), changed };
    }
    if all.contains("Permission denied") {
        return TransportError::Auth { host: t.name.clone(), user: t.user.clone(), detail: all.trim().to_string() };
    }
    TransportError::Connect { host: t.name.clone(), addr, detail: all.trim().to_string() }
}

impl OpensshTransport {
    /// Run a remote command line with `input` on its stdin.
    async fn piped(&self, command: &str, input: &[u8]) -> Result<Output, TransportError> {
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
        let mut stdin = child.stdin().take().ok_or_else(|| self.exec_error("no stdin"))?;
        stdin.write_all(input).await.map_err(|e| self.exec_error(e))?;
        stdin.shutdown().await.map_err(|e| self.exec_error(e))?;
        drop(stdin);
        let out = child.wait_with_output().await.map_err(|e| self.exec_error(e))?;
        self.check_sudo(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn check_sudo(&self, out: Output) -> Result<Output, TransportError> {
        super::refuse_sudo_prompt(&self.target, out)
    }

    fn exec_error(&self, detail: impl std::fmt::Display) -> TransportError {
        TransportError::Exec { host: self.target.name.clone(), detail: detail.to_string() }
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
        out.code = child.wait().await.map_err(|e| self.exec_error(e))?.code();
        self.check_sudo(out)
    }

    async fn run_with_input(&self, script: &Script, input: &[u8]) -> Result<Output, TransportError> {
        self.piped(&self.target.wrap(script), input).await
    }

    async fn download(&self, path: &str) -> Result<Vec<u8>, TransportError> {
        let out = self
            .session
            .raw_command(self.target.wrap_shell(&format!("cat {}", crate::script::quote(path))))
            .output()
            .await
            .map_err(|e| self.exec_error(e))?;
        if !out.status.success() {
            return Err(
                self.exec_error(format!("reading {path} failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
            );
        }
        Ok(out.stdout)
    }
}
