//! Every goal's plan, made purely (no host): the text plans of the bundled inventories and of an
//! upgrade from facts recorded on the test bed, as insta snapshots (`cargo insta review`); what
//! a resumed run skips; an admin's cordon kept through an upgrade. The plan is the product: a
//! change to what a person reads shows up here as a snapshot diff.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::collections::BTreeMap;

use kubewright::facts::ClusterFacts;
use kubewright::goal::{Goal, RenewGoal, UpgradeGoal};
use kubewright::plan::{Action, Bastion, Decision, Plan, PlanInput, Resume, plan, render_text};
use kubewright::render::Templates;

mod common;

fn offline(file: &str, goal: &Goal) -> Plan {
    let inv = common::inventory(file, &[]);
    let facts = ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()));
    common::plan_of(&inv, goal, &facts)
}

#[test]
fn the_offline_install_plans_of_the_bundled_inventories() {
    for file in ["example.yaml", "single.yaml", "ha-local.yaml", "vagrant.yaml"] {
        let text = render_text(&offline(file, &Goal::Converge), false);
        insta::assert_snapshot!(format!("install_{}", file.trim_end_matches(".yaml").replace('-', "_")), text);
    }
}

/// Facts a bed recorded (`record_facts` below): three control planes and two workers at 1.31.4,
/// with what the repository of 1.31 and 1.32 offers.
fn recorded() -> (kubewright::inventory::Inventory, ClusterFacts) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/facts/bed-1.31.4-3cp-2w.json"))
            .unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&text).unwrap();
    let inv = kubewright::inventory::load("bed.yaml", recorded["inventory"].as_str().unwrap()).unwrap().inventory;
    let facts: ClusterFacts = serde_json::from_value(recorded["facts"].clone()).unwrap();
    (inv, facts)
}

fn planned(inv: &kubewright::inventory::Inventory, goal: &Goal, facts: &ClusterFacts, resume: Option<&Resume>) -> Plan {
    let bastion = Bastion { state_dir: "/state".into(), ..Default::default() };
    plan(&PlanInput { inventory: inv, goal, facts, templates: &Templates::builtin(), bastion: &bastion, resume })
        .unwrap()
}

#[test]
fn an_upgrade_planned_from_recorded_facts() {
    let (inv, facts) = recorded();
    let goal = Goal::Upgrade(UpgradeGoal { to: "1.32".parse().unwrap(), ..UpgradeGoal::to_inventory(&inv) });
    let plan = planned(&inv, &goal, &facts, None);
    let path = plan.upgrade.as_ref().unwrap();
    assert_eq!((path.from.to_string(), path.hops.len()), ("1.31.4".to_string(), 1));
    assert!(plan.refusals.is_empty(), "{:?}", plan.refusals);
    // The bed's paths are this machine's: the snapshot keeps the plan's shape, not its temp dirs.
    let text = render_text(&plan, false).replace(&*bed_dir(&inv), "<bed>");
    insta::assert_snapshot!("upgrade_from_recorded_facts", text);
}

/// The bed directory the recorded inventory names (its known_hosts' directory).
fn bed_dir(inv: &kubewright::inventory::Inventory) -> String {
    let known = inv.ssh.known_hosts.clone().unwrap_or_default();
    known.rsplit_once('/').map(|(d, _)| d.to_string()).unwrap_or(known)
}

#[test]
fn an_upgrade_is_refused_in_the_plan_with_what_to_do() {
    let (inv, mut facts) = recorded();
    let view = facts.cluster.as_mut().unwrap();
    view.nodes.get_mut("w2").unwrap().ready = false;
    let goal = Goal::Upgrade(UpgradeGoal { to: "1.32".parse().unwrap(), ..UpgradeGoal::to_inventory(&inv) });
    let plan = planned(&inv, &goal, &facts, None);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.refusals.len(), 1, "{:?}", plan.refusals);
    assert!(plan.refusals[0].reason.contains("w2 are not Ready"), "{:?}", plan.refusals);
    let err = plan.check_executable().unwrap_err();
    assert!(err.to_string().starts_with("the upgrade is refused; nothing was changed"), "{err}");
}

#[test]
fn an_admins_cordon_is_kept_through_an_upgrade_and_kubewrights_own_is_lifted() {
    let (inv, mut facts) = recorded();
    let nodes = &mut facts.cluster.as_mut().unwrap().nodes;
    nodes.get_mut("w1").unwrap().unschedulable = true; // an admin's
    let w2 = nodes.get_mut("w2").unwrap();
    w2.unschedulable = true; // a stopped upgrade's
    w2.cordoned_by_kubewright = true;
    let goal = Goal::Upgrade(UpgradeGoal { to: "1.32".parse().unwrap(), ..UpgradeGoal::to_inventory(&inv) });
    let plan = planned(&inv, &goal, &facts, None);
    let workers = plan.steps.iter().find(|s| s.id.starts_with("upgrade-worker@")).unwrap();
    let actions = |host: &str| workers.hosts.iter().find(|h| h.host == host).unwrap().decision.actions().to_vec();
    let uncordons = |actions: &[Action]| actions.iter().filter(|a| format!("{a:?}").contains("uncordon")).count();
    let w1 = actions("w1");
    assert_eq!(uncordons(&w1), 0, "w1 stays cordoned: {w1:#?}");
    assert!(w1.iter().any(|a| matches!(a, Action::Note { text } if text.contains("w1 was cordoned before this run"))));
    assert!(
        w1.iter()
            .any(|a| matches!(a, Action::Via { action, .. } if matches!(**action, Action::Drain { mark: false, .. })))
    );
    let w2 = actions("w2");
    assert_eq!(uncordons(&w2), 2, "w2 is uncordoned (and on failure too): {w2:#?}");
    // A control plane other than the first is uncordoned from the first, also when it is lost.
    let cps = plan.steps.iter().find(|s| s.id.starts_with("upgrade-control-plane@")).unwrap();
    let cp2 = cps.hosts.iter().find(|h| h.host == "cp2").unwrap().decision.actions();
    assert!(
        cp2.iter().any(
            |a| matches!(a, Action::Via { on, action } if on == "cp1" && matches!(**action, Action::Rollback { .. }))
        ),
        "{cp2:#?}"
    );
}

#[test]
fn a_resumed_renewal_skips_what_the_journal_finished_with_the_same_step_and_only_that() {
    let (inv, facts) = recorded();
    let goal = Goal::RenewCertificates(RenewGoal::Always);
    let fresh = planned(&inv, &goal, &facts, None);
    let step = &fresh.steps[0];
    let same = Resume { done: BTreeMap::from([((step.id.clone(), "cp1".to_string()), step.key.clone())]) };
    let resumed = planned(&inv, &goal, &facts, Some(&same));
    let decision =
        |plan: &Plan, host: &str| plan.steps[0].hosts.iter().find(|h| h.host == host).unwrap().decision.clone();
    assert!(matches!(decision(&resumed, "cp1"), Decision::Skip { reason } if reason.contains("earlier run (journal)")));
    assert!(matches!(decision(&resumed, "cp2"), Decision::Change { .. }));
    // The same step of another plan (its key differs) is not taken as done.
    let other =
        Resume { done: BTreeMap::from([((step.id.clone(), "cp1".to_string()), "0123456789abcdef".to_string())]) };
    let replanned = planned(&inv, &goal, &facts, Some(&other));
    let Decision::Change { actions } = decision(&replanned, "cp1") else { panic!() };
    assert!(matches!(&actions[0], Action::Note { text } if text.contains("with another plan")), "{actions:#?}");
}

#[test]
fn a_resumed_install_trusts_the_facts_over_the_journal() {
    // The journal says w2 joined; its facts say it has not (re-imaged since): it joins again.
    let (inv, mut facts) = recorded();
    facts.hosts.insert("w2".into(), kubewright::facts::HostFacts::fresh());
    let fresh = planned(&inv, &Goal::Converge, &facts, None);
    let join = fresh.steps.iter().find(|s| s.id == "join-worker").unwrap();
    let resume = Resume { done: BTreeMap::from([((join.id.clone(), "w2".to_string()), join.key.clone())]) };
    let resumed = planned(&inv, &Goal::Converge, &facts, Some(&resume));
    let join = resumed.steps.iter().find(|s| s.id == "join-worker").unwrap();
    let w2 = &join.hosts.iter().find(|h| h.host == "w2").unwrap().decision;
    let Decision::Add { actions } = w2 else { panic!("{w2:?}") };
    assert!(matches!(&actions[0], Action::Note { text } if text.contains("facts say it is not done")), "{actions:#?}");
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::RunWithFile { description, .. } if description.contains("kubeadm join")))
    );
}

/// Records the facts fixture from a bed (`cargo test --test plan_goals -- --ignored`, as root):
/// the facts `kubewright plan` reads, and the releases the repository offers.
#[test]
#[ignore = "records tests/fixtures/facts/bed-1.31.4-3cp-2w.json from a test bed"]
fn record_facts() {
    let Some((bed, _state)) = common::installed(5, 3) else { return };
    let inv = kubewright::inventory::load("bed.yaml", &std::fs::read_to_string(bed.inventory_path()).unwrap())
        .unwrap()
        .inventory;
    let files = kubewright::render::host_files(&inv, &Templates::builtin(), &BTreeMap::new()).unwrap();
    let paths = kubewright::render::managed_paths(&files);
    let targets =
        inv.hosts.iter().map(|h| (h.name.clone(), kubewright::ssh::Target::from_inventory(&inv, h, false))).collect();
    let connector = kubewright::ssh::Connector::new(kubewright::ssh::TransportKind::Openssh).unwrap();
    let (redactor, stop) = (kubewright::redact::Redactor::default(), kubewright::exec::engine::StopSignal::default());
    let quiet = |_: kubewright::outcome::Event| {};
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let facts = rt.block_on(async {
        let engine = kubewright::exec::engine::Engine::new(&connector, targets, 8, "record", &redactor, &quiet, &stop);
        let (mut facts, failures) = engine.gather_facts(&paths).await;
        assert!(failures.is_empty());
        let session = engine.session("cp1").await.unwrap();
        facts.releases = Some(
            kubewright::exec::facts::read_releases(session.as_ref(), "cp1", &inv.cluster.packages.mirror, &[31, 32])
                .await
                .unwrap(),
        );
        engine.close().await;
        facts
    });
    let doc = serde_json::json!({
        "inventory": std::fs::read_to_string(bed.inventory_path()).unwrap(),
        "facts": facts,
    });
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/facts/bed-1.31.4-3cp-2w.json");
    std::fs::create_dir_all(std::path::Path::new(path).parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

/// The recorded facts with every leaf certificate (kubeadm's and the kubelets') ended a day
/// before each host's clock.
fn all_expired(mut facts: ClusterFacts) -> ClusterFacts {
    for host in facts.hosts.values_mut() {
        let now = host.host_time as i64;
        for (path, cert) in host.certificates.iter_mut() {
            if !cert.is_ca && !path.ends_with("/ca.crt") && !path.ends_with("front-proxy-ca.crt") {
                cert.not_after = now - 86_400;
                cert.not_before = now - 366 * 86_400;
            }
        }
    }
    facts
}

fn decision_of(plan: &Plan, step: &str, host: &str) -> Decision {
    let step = plan.steps.iter().find(|s| s.id == step).unwrap_or_else(|| panic!("no step {step}"));
    step.hosts.iter().find(|h| h.host == host).unwrap_or_else(|| panic!("{host} not in {}", step.id)).decision.clone()
}

#[test]
fn a_renewal_after_expiry_renews_every_control_planes_files_before_any_restart_and_bootstraps_the_kubelets() {
    let (inv, facts) = recorded();
    let mut facts = all_expired(facts);
    // w2's kubelet serves a certificate the cluster signs (serverTLSBootstrap): its expired
    // kubelet.crt is no one's, and no new one would come.
    facts.hosts.get_mut("w2").unwrap().kubelet_serving_configured = true;
    let goal = Goal::RenewCertificates(RenewGoal::ExpiringWithin { within: "30d".parse().unwrap() });
    let plan = planned(&inv, &goal, &facts, None);
    let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["renew-certificates", "restart-static-pods", "kubelet-bootstrap-token", "recover-kubelet-certificates"]
    );
    for cp in ["cp1", "cp2", "cp3"] {
        let Decision::Change { actions } = decision_of(&plan, "renew-certificates", cp) else { panic!("{cp}") };
        assert!(
            matches!(&actions[0], Action::Note { text } if text.contains("every control plane's files are renewed first"))
        );
        assert!(
            !actions.iter().any(|a| matches!(a, Action::Probe { .. } | Action::Wait { .. } | Action::Rollback { .. })),
            "{cp}: files only, no restart, no rollback: {actions:#?}"
        );
        let Decision::Change { actions } = decision_of(&plan, "restart-static-pods", cp) else { panic!("{cp}") };
        assert!(actions[0].summary().starts_with("restart the static pods"), "{actions:#?}");
        // Its kubelet cannot post the node's status yet: the API and etcd are what is waited for.
        assert!(actions.iter().any(|a| matches!(a, Action::Wait { nodes, etcd: true, .. } if nodes.is_empty())));
    }
    let Decision::Change { actions } = decision_of(&plan, "kubelet-bootstrap-token", "cp1") else { panic!() };
    assert!(actions[0].summary().contains("for the kubelets of cp1, cp2, cp3, w1, w2"), "{actions:#?}");
    assert!(matches!(decision_of(&plan, "kubelet-bootstrap-token", "cp2"), Decision::Skip { .. }));
    for node in ["cp1", "cp2", "cp3", "w1", "w2"] {
        let Decision::Change { actions } = decision_of(&plan, "recover-kubelet-certificates", node) else {
            panic!("{node}")
        };
        assert!(
            matches!(&actions[0], Action::RunWithFile { file, .. } if file.path == "/etc/kubernetes/bootstrap-kubelet.conf"),
            "{node}: {actions:#?}"
        );
        let serving = actions.iter().any(|a| a.summary().starts_with("a new self-signed serving certificate"));
        assert_eq!(serving, node != "w2", "{node}: {actions:#?}");
    }
    // Files renewed and restarts still owed are marked on the host, for a run that stops between.
    let Decision::Change { actions } = decision_of(&plan, "renew-certificates", "cp2") else { panic!() };
    let renew = actions.iter().find(|a| a.summary().starts_with("renew every certificate")).unwrap();
    assert!(renew.commands().unwrap().to_string().contains("touch /var/lib/kubewright/restart-pending"), "{renew:#?}");
    // Workers have no admin kubeconfig: their Ready wait runs on the first control plane.
    let Decision::Change { actions } = decision_of(&plan, "recover-kubelet-certificates", "w1") else { panic!() };
    assert!(matches!(actions.last(), Some(Action::Via { on, .. }) if on == "cp1"), "{actions:#?}");
}

#[test]
fn a_restart_an_earlier_renewal_owes_and_an_api_server_presenting_another_certificate_are_made_and_nothing_else() {
    let (inv, mut facts) = recorded();
    facts.hosts.get_mut("cp3").unwrap().restart_pending = true;
    // A kubelet whose client certificate cannot be read at all (a bootstrap cut short).
    let w1 = facts.hosts.get_mut("w1").unwrap();
    w1.certificates.remove("/var/lib/kubelet/pki/kubelet-client-current.pem");
    w1.certificates.remove("/etc/kubernetes/kubelet.conf");
    for (name, host) in facts.hosts.iter_mut().filter(|(n, _)| n.starts_with("cp")) {
        let stale = name == "cp2";
        host.apiserver_certificate = Some(kubewright::facts::ServedCertificate {
            served: if stale { "0A1B".into() } else { "77FF".into() },
            file: "77FF".into(),
        });
    }
    let goal = Goal::RenewCertificates(RenewGoal::ExpiringWithin { within: "30d".parse().unwrap() });
    let plan = planned(&inv, &goal, &facts, None);
    assert!(matches!(decision_of(&plan, "renew-certificates", "cp2"), Decision::Skip { .. }));
    let Decision::Change { actions } = decision_of(&plan, "restart-static-pods", "cp2") else { panic!() };
    assert!(actions[0].summary().contains("presents the certificate with serial 0A1B, not its file's (77FF)"));
    let Decision::Change { actions } = decision_of(&plan, "restart-static-pods", "cp3") else { panic!() };
    assert!(actions[0].summary().contains("an earlier renewal renewed its files"), "{actions:#?}");
    assert!(actions.last().unwrap().summary().contains("remove /var/lib/kubewright/restart-pending"));
    assert!(matches!(decision_of(&plan, "restart-static-pods", "cp1"), Decision::Skip { .. }));
    assert!(matches!(decision_of(&plan, "recover-kubelet-certificates", "cp1"), Decision::Skip { .. }));
    let Decision::Change { actions } = decision_of(&plan, "recover-kubelet-certificates", "w1") else { panic!() };
    assert!(actions[0].summary().contains("it has no client certificate to read"), "{actions:#?}");
}
