//! The plan as a person reads it: steps in order, hosts with identical work grouped.

use std::fmt::Write;

use super::{Action, Decision, FileChange, Plan};

/// Render `plan` for a terminal. With `diffs`, file contents and changes are shown in full.
pub fn render_text(plan: &Plan, diffs: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for cluster {} (Kubernetes {}, playbook {})",
        plan.cluster, plan.kubernetes_version, plan.playbook
    );
    if plan.assumed_fresh {
        let _ = writeln!(out, "Offline: no host was contacted; every host is assumed fresh.");
    }
    let _ = writeln!(
        out,
        "Each command is stopped on its host after {} (cluster.timeouts.command).",
        crate::duration::Duration::from_secs(plan.command_timeout_s)
    );
    for (n, step) in plan.steps.iter().enumerate() {
        // A step's own limit (a playbook's `timeout`) is said where it differs from the inventory's.
        let runs_commands =
            step.hosts.iter().any(|h| h.decision.actions().iter().any(|a| matches!(a, Action::Run { .. })));
        let limit = match runs_commands && step.command_timeout_s != plan.command_timeout_s {
            true => {
                format!(", each command stopped after {}", crate::duration::Duration::from_secs(step.command_timeout_s))
            }
            false => String::new(),
        };
        let _ = writeln!(out, "\n{}. {} [{}], {}{limit}", n + 1, step.title, step.id, step.rollout);
        if step.hosts.is_empty() {
            let _ = writeln!(out, "   (no hosts selected)");
            continue;
        }
        // Group hosts whose work renders identically, keeping first-appearance order.
        let mut groups: Vec<(Vec<&str>, String)> = Vec::new();
        for hp in &step.hosts {
            let body = decision_text(&hp.decision, diffs);
            match groups.iter_mut().find(|(_, b)| *b == body) {
                Some((names, _)) => names.push(&hp.host),
                None => groups.push((vec![&hp.host], body)),
            }
        }
        for (names, body) in groups {
            let _ = writeln!(out, "   {}:", names.join(", "));
            out.push_str(&body);
        }
    }
    let s = &plan.summary;
    let _ = writeln!(out, "\nPlan: {} to add, {} to change, {} unchanged.", s.add, s.change, s.unchanged);
    if s.blocked > 0 {
        let _ = writeln!(
            out,
            "Blocked: {} host(s) fail checks (marked x); apply changes nothing until they are fixed.",
            s.blocked
        );
    }
    out
}

fn decision_text(decision: &Decision, diffs: bool) -> String {
    let mut out = String::new();
    match decision {
        Decision::Skip { reason } => {
            let _ = writeln!(out, "     = skip: {reason}");
        }
        Decision::Blocked { problems } => {
            for p in problems {
                let _ = writeln!(out, "     x {p}");
            }
        }
        Decision::Verify { actions } | Decision::Add { actions } | Decision::Change { actions } => {
            for action in actions {
                action_text(&mut out, action, diffs);
            }
        }
    }
    out
}

fn action_text(out: &mut String, action: &Action, diffs: bool) {
    match action {
        Action::WriteFile { path, mode, owner, change, diff, sensitive, transient } => {
            let sign = match change {
                FileChange::New => '+',
                FileChange::Changed => '~',
                FileChange::Unchanged => '=',
            };
            let mut notes = vec![format!("{mode} {owner}")];
            if *sensitive {
                notes.push("holds secrets".into());
            }
            if *transient {
                notes.push("removed after use".into());
            }
            let _ = writeln!(out, "     {sign} write {path} ({})", notes.join(", "));
            if diffs {
                match diff {
                    Some(d) => d.lines().for_each(|l| {
                        let _ = writeln!(out, "         {l}");
                    }),
                    None => {
                        let _ = writeln!(out, "         (content hidden: it holds secrets)");
                    }
                }
            }
        }
        Action::Run { description, commands } => {
            let _ = writeln!(out, "     ! {description}");
            for line in commands.commands() {
                let _ = writeln!(out, "         $ {line}");
            }
        }
        Action::Package { name, from, to, hold } => {
            let from = from.as_deref().unwrap_or("(none)");
            let hold = if *hold { ", held" } else { "" };
            let _ = writeln!(out, "     ~ package {name}: {from} -> {to}{hold}");
        }
        Action::Check { description } => {
            let _ = writeln!(out, "     ? check {description}");
        }
        Action::Fetch { remote, local, mode, kubeconfig_server, keep } => {
            let kept = keep.map(|n| format!(", keeping {n} earlier copies")).unwrap_or_default();
            let _ = writeln!(out, "     < fetch {remote} to {local} ({mode}{kept})");
            if let Some(k) = kubeconfig_server {
                let _ = writeln!(
                    out,
                    "         server {} there, checking the certificate for {}",
                    k.server, k.tls_server_name
                );
            }
        }
        Action::Upload { local, remote, mode, sha256 } => {
            let _ =
                writeln!(out, "     > send {local} to {remote} ({mode}, sha256 {})", &sha256[..sha256.len().min(12)]);
        }
        Action::PinCa { remote } => {
            let _ = writeln!(out, "     < read the cluster CA {remote} (joining nodes pin its public-key hash)");
        }
        Action::VerifyCertificates { .. } => {
            let _ = writeln!(
                out,
                "     ? check every certificate kubeadm renews was renewed and is signed by its CA on disk"
            );
        }
        Action::Rollback { description, commands } => {
            let _ = writeln!(out, "     ! if anything above fails: {description}");
            for line in commands.commands() {
                let _ = writeln!(out, "         $ {line}");
            }
        }
        Action::VerifyKubeadmConfig { expected } => {
            let fields: Vec<&str> = expected.keys().map(String::as_str).collect();
            let _ = writeln!(
                out,
                "     ? check the cluster's kubeadm-config matches the inventory ({})",
                fields.join(", ")
            );
        }
        Action::Probe { description, commands, timeout_s } => {
            let _ = writeln!(
                out,
                "     * wait until {description} (timeout {})",
                crate::duration::Duration::from_secs(*timeout_s)
            );
            for line in commands.commands() {
                let _ = writeln!(out, "         $ {line}");
            }
        }
        Action::Drain { node, grace_period_s, timeout_s, skip_when_blocked } => {
            let blocked = if *skip_when_blocked { "skip the node" } else { "stop" };
            let _ = writeln!(
                out,
                "     ! cordon and drain {node} (evictions: disruption budgets hold; grace period {}, timeout {}; if blocked: {blocked})",
                crate::duration::Duration::from_secs(*grace_period_s),
                crate::duration::Duration::from_secs(*timeout_s)
            );
        }
        Action::Via { on, action } => {
            // The inner action's text, its first line saying where it runs.
            let mut inner = String::new();
            action_text(&mut inner, action, diffs);
            let mut lines = inner.lines();
            if let Some(first) = lines.next() {
                let (sign, rest) = first.split_at(first.len().min(7));
                let _ = writeln!(out, "{sign}[from {on}] {rest}");
            }
            for line in lines {
                let _ = writeln!(out, "{line}");
            }
        }
        Action::Wait { description, timeout_s, .. } => {
            let _ = writeln!(
                out,
                "     * wait until {description} (timeout {})",
                crate::duration::Duration::from_secs(*timeout_s)
            );
        }
    }
}
