//! From a plan to a [`Job`]: each action becomes what runs on the host. Files get their
//! rendered content back (the plan only has their diffs); a `shell` step's secret environment
//! reaches its commands on stdin.

use std::collections::BTreeMap;

use super::engine::{HostWork, Job, JobStep, Op, batch};
use crate::duration::Duration;
use crate::plan::{Action, Decision, Plan};
use crate::playbook::Playbook;
use crate::render::RemoteFile;
use crate::script::Script;

/// Why a plan cannot become a job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NotExecutable {
    /// An action that cannot be carried out as planned (a file not rendered for the host, a
    /// malformed mode).
    #[error("step `{step}` on {host}: {what}")]
    Action { step: String, host: String, what: String },
    /// Hosts fail the checks of preflight (or a step finds it cannot go ahead there): every
    /// problem, `host: problem`.
    #[error("{} problem(s) block the plan; nothing was changed:\n  {}", problems.len(), problems.join("\n  "))]
    Blocked { problems: Vec<String> },
}

/// Exports `NAME=value` lines read from stdin, then runs the rest of the script: secrets never
/// appear on a command line (where `ps` on the host would show them).
const SECRET_PRELUDE: &str =
    "while IFS= read -r kubewright_secret; do export \"$kubewright_secret\"; done; unset kubewright_secret";

/// Lower `plan` (made from `playbook`) into a job. `files` are the rendered files per host,
/// `secret_env` the values of the `secretEnv` variables the playbook's steps name.
pub fn lower(
    plan: &Plan,
    playbook: &Playbook,
    files: &BTreeMap<String, Vec<RemoteFile>>,
    secret_env: &BTreeMap<String, String>,
) -> Result<Job, NotExecutable> {
    let blocked: Vec<String> = plan
        .steps
        .iter()
        .flat_map(|step| &step.hosts)
        .flat_map(|hp| match &hp.decision {
            Decision::Blocked { problems } => problems.iter().map(|p| format!("{}: {p}", hp.host)).collect(),
            _ => Vec::new(),
        })
        .collect();
    if !blocked.is_empty() {
        return Err(NotExecutable::Blocked { problems: blocked });
    }
    let mut steps = Vec::new();
    for (planned, spec) in plan.steps.iter().zip(&playbook.steps) {
        let input: Option<Vec<u8>> = (!spec.secret_env.is_empty()).then(|| {
            spec.secret_env
                .iter()
                .map(|name| format!("{name}={}\n", secret_env.get(name).map(String::as_str).unwrap_or_default()))
                .collect::<String>()
                .into_bytes()
        });
        let limit = Duration::from_secs(planned.command_timeout_s);
        let mut hosts = Vec::new();
        for hp in &planned.hosts {
            let not_executable = |what: &str| NotExecutable::Action {
                step: planned.id.clone(),
                host: hp.host.clone(),
                what: what.into(),
            };
            let mut ops = Vec::new();
            let mut rollback = Vec::new();
            // Work that learns a value for later steps cannot be skipped by the journal.
            let mut every_run = false;
            let skip = match &hp.decision {
                Decision::Skip { reason } => Some(reason.clone()),
                _ => None,
            };
            for action in hp.decision.actions() {
                match lower_action(action, &hp.host, files, limit, &mut every_run).map_err(|w| not_executable(&w))? {
                    Some(Lowered::Op(op)) => ops.push(op),
                    Some(Lowered::Rollback(op)) => rollback.push(op),
                    None => {}
                }
            }
            hosts.push(HostWork {
                host: hp.host.clone(),
                skip,
                every_run,
                ops: one_round_trip(ops, input.as_deref(), limit),
                rollback,
            });
        }
        steps.push(JobStep { id: planned.id.clone(), title: planned.title.clone(), rollout: planned.rollout, hosts });
    }
    Ok(Job { playbook: plan.playbook.clone(), steps })
}

/// Where a lowered action goes: the host's ops, or what runs if one of them fails.
enum Lowered {
    Op(Op),
    Rollback(Op),
}

/// One action as the engine runs it; None for what is only descriptive. `Err` says why it
/// cannot run as planned.
fn lower_action(
    action: &Action,
    host: &str,
    files: &BTreeMap<String, Vec<RemoteFile>>,
    limit: Duration,
    every_run: &mut bool,
) -> Result<Option<Lowered>, String> {
    let op = match action {
        Action::Run { description, commands } => Op::Run {
            description: description.clone(),
            script: crate::script::time_limited_script(commands, limit),
            input: None,
            limit,
            parts: Vec::new(),
        },
        Action::WriteFile { path, sensitive, .. } => {
            let file = files
                .get(host)
                .and_then(|fs| fs.iter().find(|f| &f.path == path))
                .ok_or_else(|| format!("it writes {path}, which is not rendered for this host"))?;
            Op::Upload {
                path: file.path.clone(),
                content: file.content.clone().into_bytes(),
                mode: file.mode,
                owner: file.owner.clone(),
                // Rendered with placeholders: the run's secrets go in at write time.
                complete: *sensitive,
            }
        }
        // Descriptive: the step's `Run` that follows does the apt work.
        Action::Package { .. } => return Ok(None),
        // Decided when planning, from the facts just gathered.
        Action::Check { .. } => return Ok(None),
        Action::Fetch { remote, local, mode, kubeconfig_server, keep } => Op::Fetch {
            remote: remote.clone(),
            local: local.into(),
            kubeconfig_server: kubeconfig_server.clone(),
            keep: *keep,
            mode: u32::from_str_radix(mode, 8)
                .map_err(|_| format!("the fetch mode {mode} is not an octal file mode"))?,
        },
        Action::Upload { local, remote, mode, sha256 } => {
            let content = std::fs::read(local).map_err(|e| format!("it sends {local}, which cannot be read: {e}"))?;
            if crate::pki::sha256_hex(&content) != *sha256 {
                return Err(format!("{local} changed since it was planned (its SHA-256 is no longer {sha256})"));
            }
            Op::Upload {
                path: remote.clone(),
                content,
                mode: u32::from_str_radix(mode, 8)
                    .map_err(|_| format!("the upload mode {mode} is not an octal file mode"))?,
                owner: "root:root".into(),
                complete: false,
            }
        }
        Action::PinCa { remote } => {
            // Work that learns a value for later steps cannot be skipped by the journal.
            *every_run = true;
            Op::PinCa { remote: remote.clone() }
        }
        Action::VerifyCertificates { after } => Op::VerifyCertificates { after: *after },
        Action::Rollback { description, commands } => {
            return Ok(Some(Lowered::Rollback(Op::Run {
                description: description.clone(),
                script: crate::script::time_limited_script(commands, limit),
                input: None,
                limit,
                parts: Vec::new(),
            })));
        }
        Action::VerifyKubeadmConfig { expected } => Op::VerifyKubeadmConfig { expected: expected.clone() },
        Action::Probe { description, commands, timeout_s } => Op::Probe {
            description: description.clone(),
            script: commands.clone(),
            timeout: std::time::Duration::from_secs(*timeout_s),
        },
        Action::Wait { description, nodes, version, etcd, timeout_s } => Op::Wait {
            description: description.clone(),
            nodes: nodes.clone(),
            version: version.clone(),
            etcd: *etcd,
            timeout: std::time::Duration::from_secs(*timeout_s),
        },
        Action::Drain { node, grace_period_s, timeout_s, skip_when_blocked } => Op::Drain {
            node: node.clone(),
            grace_period_s: *grace_period_s,
            timeout_s: *timeout_s,
            skip_when_blocked: *skip_when_blocked,
        },
        Action::Via { on, action } => {
            let via = |op| Op::Via { host: on.clone(), op: Box::new(op) };
            // Files are the host's own: a file write from elsewhere is not a thing.
            if matches!(action.as_ref(), Action::WriteFile { .. } | Action::Via { .. }) {
                return Err(format!("it writes or forwards from {on}, which only commands, waits and drains can"));
            }
            return Ok(lower_action(action, host, files, limit, every_run)?.map(|l| match l {
                Lowered::Op(op) => Lowered::Op(via(op)),
                Lowered::Rollback(op) => Lowered::Rollback(via(op)),
            }));
        }
    };
    Ok(Some(Lowered::Op(op)))
}

/// Consecutive commands become one batched script (one round trip per host instead of one
/// per command), each part stopped on the host after `limit` (the step's); a step with secrets
/// gets the prelude that reads them from stdin.
fn one_round_trip(ops: Vec<Op>, secrets: Option<&[u8]>, limit: Duration) -> Vec<Op> {
    let mut out = Vec::new();
    let mut pending: Vec<(String, Script)> = Vec::new();
    let flush = |pending: &mut Vec<(String, Script)>, out: &mut Vec<Op>| {
        if pending.is_empty() {
            return;
        }
        let description = pending.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>().join("; ");
        let (script, parts) = batch(std::mem::take(pending));
        let script = match secrets {
            Some(_) => Script::new().cmd(["sh", "-c", &format!("{SECRET_PRELUDE}\n{}", script.to_shell())]),
            None => script,
        };
        out.push(Op::Run { description, script, input: secrets.map(<[u8]>::to_vec), limit, parts });
    };
    for op in ops {
        match op {
            Op::Run { description, script, input: None, parts, .. } if parts.is_empty() => {
                pending.push((description, script));
            }
            other => {
                flush(&mut pending, &mut out);
                out.push(other);
            }
        }
    }
    flush(&mut pending, &mut out);
    out
}
