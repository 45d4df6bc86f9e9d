//! Every plan against the published schema (docs/plan.schema.json): every bundled inventory
//! offline, every rollout form, every goal's plan from recorded facts, every job's `--dry-run -o
//! json` on a cluster, and a negative control so the schema is known to bite. Plans made from
//! gathered facts with blocked hosts are checked in tests/plan_facts.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::Command;

mod common;

fn schema() -> jsonschema::Validator {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/plan.schema.json")).unwrap();
    jsonschema::validator_for(&serde_json::from_str(&text).unwrap()).unwrap()
}

fn plan(args: &[&str]) -> serde_json::Value {
    let o = Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(["plan", "--offline", "--output", "json"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn errors(validator: &jsonschema::Validator, doc: &serde_json::Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[test]
fn every_plan_matches_the_schema() {
    let validator = schema();
    let playbook = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        playbook.path(),
        "name: rollouts\nsteps:\n  - action: shell\n    hosts: all\n    batch: 20%\n    commands: [\"true\"]\n  - action: shell\n    id: pairs\n    hosts: worker\n    batch: 2\n    commands: [\"true\"]\n  - action: shell\n    id: one\n    hosts: control-plane\n    rollout: serial\n    commands: [\"true\"]\n",
    )
    .unwrap();
    let pb = playbook.path().to_str().unwrap();
    for args in [
        vec!["-i", "inventories/example.yaml"],
        vec!["-i", "inventories/single.yaml", "--diff"],
        vec!["-i", "inventories/vagrant.yaml"],
        vec!["-i", "inventories/ha-local.yaml"],
        vec!["-i", "inventories/example.yaml", "--playbook", pb],
    ] {
        let doc = plan(&args);
        assert_eq!(errors(&validator, &doc), Vec::<String>::new(), "{args:?}");
    }
}

#[test]
fn the_schema_rejects_what_the_plan_never_says() {
    let validator = schema();
    let good = plan(&["-i", "inventories/single.yaml"]);
    let mut unknown_field = good.clone();
    unknown_field["summary"]["removed"] = 1.into();
    let mut bad_decision = good.clone();
    bad_decision["steps"][0]["hosts"][0]["decision"] = "maybe".into();
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("assumed_fresh");
    for (what, doc) in [("unknown field", unknown_field), ("bad decision", bad_decision), ("missing field", missing)] {
        assert!(!errors(&validator, &doc).is_empty(), "{what} was accepted");
    }
}

/// Every goal's plan, made purely from facts a bed recorded (tests/plan_goals.rs), against the
/// schema: the one `Plan` type every job shares.
#[test]
fn every_goals_plan_matches_the_schema() {
    use kubewright::goal::{Goal, RenewGoal, UpgradeGoal};
    let validator = schema();
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/facts/bed-1.31.4-3cp-2w.json"))
            .unwrap();
    let recorded: serde_json::Value = serde_json::from_str(&text).unwrap();
    let inv = kubewright::inventory::load("bed.yaml", recorded["inventory"].as_str().unwrap()).unwrap().inventory;
    let facts: kubewright::facts::ClusterFacts = serde_json::from_value(recorded["facts"].clone()).unwrap();
    let mut new_node = facts.clone();
    new_node.hosts.insert("w2".into(), kubewright::facts::HostFacts::fresh());
    let snapshot = kubewright::playbook::SnapshotInput { local: "/backups/snap.db".into(), sha256: "ab".repeat(32) };
    let playbook = kubewright::playbook::Playbook::parse(
        "p.yaml",
        "name: p\nsteps:\n  - action: shell\n    hosts: all\n    secretEnv: [TOKEN]\n    commands: [\"true\"]\n",
    )
    .unwrap();
    let cases = [
        ("converge", Goal::Converge, &facts),
        ("add a node", Goal::Converge, &new_node),
        ("playbook", Goal::Playbook { playbook }, &facts),
        (
            "upgrade",
            Goal::Upgrade(UpgradeGoal { to: "1.32".parse().unwrap(), ..UpgradeGoal::to_inventory(&inv) }),
            &facts,
        ),
        ("renew --force", Goal::RenewCertificates(RenewGoal::Always), &facts),
        (
            "renew within 30d",
            Goal::RenewCertificates(RenewGoal::ExpiringWithin { within: "30d".parse().unwrap() }),
            &facts,
        ),
        ("snapshot", Goal::Snapshot, &facts),
        ("restore", Goal::Restore { snapshot }, &facts),
        ("remove-node", Goal::RemoveNode { node: "w1".into() }, &facts),
        ("reset", Goal::Reset, &facts),
    ];
    for (what, goal, facts) in cases {
        let plan = common::plan_of(&inv, &goal, facts);
        let doc = serde_json::to_value(&plan).unwrap();
        assert_eq!(errors(&validator, &doc), Vec::<String>::new(), "{what}");
        assert!(!plan.steps.is_empty() || !plan.notes.is_empty(), "{what}: an empty plan says why");
    }
}

/// On a cluster: `plan -o json` (the install converged, and the upgrade when the inventory
/// names a newer release) and every job's `--dry-run -o json` print the plan itself, valid
/// against the schema, and change nothing (no lock taken, no journal written).
#[test]
fn every_jobs_dry_run_prints_its_plan_as_json() {
    let Some((bed, state)) = common::installed(3, 2) else { return };
    let validator = schema();
    let o = common::on_bed(&bed, state.path(), &["etcd", "snapshot"]);
    assert!(o.status.success(), "{}", common::output_text(&o));
    let snapshot = walk_for(state.path(), "etcd-snapshot.db");
    let raised =
        common::inventory_variant(&bed, "raised.yaml", "kubernetesVersion: 1.31.4", "kubernetesVersion: 1.32.9");
    let journal = walk_for_opt(state.path(), "journal.jsonl").map(|p| std::fs::read_to_string(p).unwrap());
    let runs: Vec<(Vec<&str>, Option<&str>, &str)> = vec![
        (vec!["plan", "-o", "json"], None, "install"),
        (vec!["plan", "-o", "json"], Some(raised.as_str()), "upgrade"),
        (vec!["upgrade", "--to", "1.32", "--dry-run", "-o", "json"], None, "upgrade"),
        (vec!["certs", "renew", "--force", "--dry-run", "-o", "json"], None, "certs-renew"),
        (vec!["etcd", "restore", snapshot.to_str().unwrap(), "--dry-run", "-o", "json"], None, "etcd-restore"),
        (vec!["remove-node", "w1", "--dry-run", "-o", "json"], None, "remove-node"),
        (vec!["reset", "--dry-run", "-o", "json"], None, "reset"),
    ];
    for (args, inventory, playbook) in runs {
        let o = match inventory {
            Some(inv) => common::command_on(inv, state.path(), &args).output().unwrap(),
            None => common::on_bed(&bed, state.path(), &args),
        };
        assert!(o.status.success(), "{args:?}: {}", common::output_text(&o));
        let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(errors(&validator, &doc), Vec::<String>::new(), "{args:?}");
        assert_eq!(doc["playbook"], playbook, "{args:?}");
        assert!(doc.get("plan_text").is_none());
    }
    let status = common::on_bed(&bed, state.path(), &["lock", "status"]);
    assert!(!common::output_text(&status).contains("locked by"), "no dry run takes the lock");
    let after = walk_for_opt(state.path(), "journal.jsonl").map(|p| std::fs::read_to_string(p).unwrap());
    assert_eq!(after, journal, "no dry run writes the journal");
    assert_eq!(bed.cluster_state().nodes.len(), 3, "nothing was removed or reset");
}

fn walk_for_opt(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.is_dir() {
            if let Some(found) = walk_for_opt(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

fn walk_for(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    walk_for_opt(dir, name).unwrap_or_else(|| panic!("no {name} under {}", dir.display()))
}

/// Node IPs given as an interface (`internalAddress: {interface: eth1}`): offline (not read),
/// read from the facts, and refused (an interface a host lacks), each against the schema.
#[test]
fn node_ips_read_from_interfaces_match_the_schema() {
    use kubewright::facts::ClusterFacts;
    let validator = schema();
    let inv = common::inventory(
        "vagrant.yaml",
        &[
            ("internalAddress: 192.168.56.11", "internalAddress: {interface: eth1}"),
            ("internalAddress: 192.168.56.21", "internalAddress: {interface: eth1}"),
            ("internalAddress: 192.168.56.22", "internalAddress: {interface: eth1}"),
        ],
    );
    let goal = kubewright::goal::Goal::Converge;
    let offline = ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()));
    let mut read = offline.clone();
    read.assumed_fresh = false;
    for (i, f) in read.hosts.values_mut().enumerate() {
        let ip = format!("192.168.56.{}", 11 + i).parse().unwrap();
        f.interfaces =
            Some([("eth0".to_string(), vec!["10.0.2.15".parse().unwrap()]), ("eth1".to_string(), vec![ip])].into());
    }
    let mut refused = read.clone();
    refused.hosts.values_mut().next().unwrap().interfaces.as_mut().unwrap().remove("eth1");
    for (what, facts) in [("offline", offline), ("read", read), ("refused", refused)] {
        let plan = common::plan_of(&inv, &goal, &facts);
        assert_eq!(plan.node_ips.len(), 3, "{what}");
        assert_eq!(plan.refusals.is_empty(), what != "refused", "{what}");
        let doc = serde_json::to_value(&plan).unwrap();
        assert_eq!(errors(&validator, &doc), Vec::<String>::new(), "{what}");
        if what == "read" {
            assert_eq!(
                doc["node_ips"][1],
                serde_json::json!({"host": "worker1", "interface": "eth1", "address": "192.168.56.12"})
            );
        }
    }
}
