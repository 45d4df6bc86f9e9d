//! The plan as a person reads it: the notes and refusals first, then the steps in order (an
//! upgrade's under a heading per hop), hosts with identical work grouped. Rendered from the
//! [`Plan`] value alone: what the JSON plan says, in words.

use std::fmt::Write;

use super::{Action, Decision, FileChange, FileWrite, Plan};
use crate::duration::Duration;

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
    for note in &plan.notes {
        let _ = writeln!(out, "{note}");
    }
    if !plan.node_ips.is_empty() {
        let _ = writeln!(out, "Node IPs read from the hosts (internalAddress: {{interface: ...}}):");
        for n in &plan.node_ips {
            let placeholder = crate::inventory::interface_placeholder(&n.interface);
            match (&n.address, plan.assumed_fresh) {
                (Some(ip), _) => {
                    let _ = writeln!(out, "  {}: {ip} on {}", n.host, n.interface);
                }
                (None, true) => {
                    let _ = writeln!(
                        out,
                        "  {}: the IPv4 address of {}, read from the host when the plan is made with its facts (offline: files show {placeholder})",
                        n.host, n.interface
                    );
                }
                (None, false) => {
                    // A refusal below says why (the interface is missing, or the host is down).
                    let _ = writeln!(out, "  {}: no address read from {}", n.host, n.interface);
                }
            }
        }
    }
    if !plan.refusals.is_empty() {
        let _ = writeln!(out, "Refused; nothing changes:");
        for r in &plan.refusals {
            let _ = writeln!(out, "  x {}: {}", r.reason, r.fix);
        }
        return out;
    }
    if plan.steps.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "Each command is stopped on its host after {} (cluster.timeouts.command).",
        Duration::from_secs(plan.command_timeout_s)
    );
    let hops = plan.upgrade.as_ref().map_or(0, |u| u.hops.len());
    let mut hop_shown = None;
    for (n, step) in plan.steps.iter().enumerate() {
        if step.hop.is_some() && step.hop != hop_shown {
            hop_shown = step.hop;
            let index = plan.upgrade.as_ref().and_then(|u| u.hops.iter().position(|h| Some(*h) == step.hop));
            if let (Some(hop), Some(index)) = (step.hop, index) {
                let _ = writeln!(out, "\nHop {} of {hops}: to {hop}", index + 1);
            }
        }
        // A step's own limit (a playbook's `timeout`) is said where it differs from the inventory's.
        let runs_commands = step.hosts.iter().any(|h| h.decision.actions().iter().any(|a| a.commands().is_some()));
        let limit = match runs_commands && step.command_timeout_s != plan.command_timeout_s {
            true => format!(", each command stopped after {}", Duration::from_secs(step.command_timeout_s)),
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

fn commands_text(out: &mut String, action: &Action) {
    for line in action.commands().map(|s| s.commands()).unwrap_or_default() {
        let _ = writeln!(out, "         $ {line}");
    }
}

fn file_text(out: &mut String, f: &FileWrite, diffs: bool) {
    let sign = match f.change {
        FileChange::New => '+',
        FileChange::Changed => '~',
        FileChange::Unchanged => '=',
    };
    let mut notes = vec![format!("{} {}", f.mode, f.owner)];
    if f.sensitive {
        notes.push("holds secrets".into());
    }
    if f.transient {
        notes.push("removed after use".into());
    }
    let _ = writeln!(out, "     {sign} write {} ({})", f.path, notes.join(", "));
    if diffs {
        match &f.diff {
            Some(d) => d.lines().for_each(|l| {
                let _ = writeln!(out, "         {l}");
            }),
            None => {
                let _ = writeln!(out, "         (content hidden: it holds secrets)");
            }
        }
    }
}

fn action_text(out: &mut String, action: &Action, diffs: bool) {
    match action {
        Action::WriteFile(f) => file_text(out, f, diffs),
        Action::Run { description, .. } => {
            let _ = writeln!(out, "     ! {description}");
            commands_text(out, action);
        }
        Action::RunWithFile { file, description, .. } => {
            file_text(out, file, diffs);
            let _ = writeln!(out, "     ! {description}");
            commands_text(out, action);
        }
        Action::Packages { changes, hold, .. } => {
            for c in changes {
                let from = c.from.as_deref().unwrap_or("(none)");
                let held = if hold.contains(&c.name) { ", held" } else { "" };
                let _ = writeln!(out, "     ~ package {}: {from} -> {}{held}", c.name, c.to);
            }
            commands_text(out, action);
        }
        Action::Note { text } => {
            let _ = writeln!(out, "     ? {text}");
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
        Action::Rollback { description, .. } => {
            let _ = writeln!(out, "     ! if anything above fails: {description}");
            commands_text(out, action);
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
            let _ = writeln!(out, "     * wait until {description} (timeout {})", Duration::from_secs(*timeout_s));
            for line in commands.commands() {
                let _ = writeln!(out, "         $ {line}");
            }
        }
        Action::Drain { node, grace_period_s, timeout_s, skip_when_blocked, mark } => {
            let blocked = if *skip_when_blocked { "skip the node" } else { "stop" };
            let marked = if *mark { "; marked as cordoned by kubewright" } else { "" };
            let _ = writeln!(
                out,
                "     ! cordon and drain {node} (evictions: disruption budgets hold; grace period {}, timeout {}; if blocked: {blocked}{marked})",
                Duration::from_secs(*grace_period_s),
                Duration::from_secs(*timeout_s)
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
            let _ = writeln!(out, "     * wait until {description} (timeout {})", Duration::from_secs(*timeout_s));
        }
    }
}
