//! `plan --output json` against its published schema (docs/plan.schema.json): every bundled
//! inventory, every rollout form, and a negative control so the schema is known to bite.
//! Plans made from gathered facts (including blocked hosts) are checked in tests/plan_facts.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::Command;

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
