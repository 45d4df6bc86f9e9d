//! From plan to job (`exec::lower`): a host step's commands become one script (one round trip),
//! a step's secrets travel on stdin behind a fixed prelude, descriptive actions vanish, and what
//! cannot run is refused with the step, host and action.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::collections::BTreeMap;

use kubewright::exec::engine::{Job, Op};
use kubewright::exec::lower::{NotExecutable, lower};
use kubewright::facts::ClusterFacts;
use kubewright::plan::{PlanInput, plan};
use kubewright::playbook::Playbook;

mod common;

fn job(playbook: &Playbook, secrets: &BTreeMap<String, String>) -> Result<Job, NotExecutable> {
    let inv = common::inventory("example.yaml", &[]);
    let files = common::render_all(&inv);
    let facts = ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()));
    let plan =
        plan(&PlanInput { inventory: &inv, playbook, facts: &facts, files: &files, state_dir: "/state" }).unwrap();
    lower(&plan, playbook, &files, secrets)
}

const PLAYBOOK: &str = r#"
name: maintenance
steps:
  - action: shell
    id: three
    hosts: worker
    timeout: 90s
    commands: ["echo one", "echo two", "echo three"]
  - action: shell
    id: secret
    hosts: control-plane[0]
    secretEnv: [TOKEN]
    commands: ["login --token-from-env TOKEN"]
"#;

#[test]
fn a_host_step_is_one_script_and_secrets_go_on_stdin() {
    let playbook = Playbook::parse("maintenance.yaml", PLAYBOOK).unwrap();
    let secrets = BTreeMap::from([("TOKEN".to_string(), "tok-123456".to_string())]);
    let job = job(&playbook, &secrets).unwrap();

    let worker = &job.steps[0].hosts[0];
    assert_eq!(worker.ops.len(), 1, "three commands, one round trip");
    let Op::Run { script, input, parts, limit, .. } = &worker.ops[0] else { panic!("{:?}", worker.ops) };
    assert_eq!(parts, &["echo one", "echo two", "echo three"]);
    assert_eq!(limit.seconds, 90);
    assert!(input.is_none());
    assert!(script.to_shell().contains("timeout -k 10 90 sh -c"), "{}", script.to_shell());

    let cp = &job.steps[1].hosts[0];
    let Op::Run { script, input, .. } = &cp.ops[0] else { panic!("{:?}", cp.ops) };
    assert_eq!(input.as_deref(), Some(&b"TOKEN=tok-123456\n"[..]));
    assert!(!script.to_shell().contains("tok-123456"), "the secret is never on the command line");
    assert!(script.to_shell().contains("read -r kubewright_secret"));
}

#[test]
fn the_install_plan_completes_secret_files_at_write_time_and_pins_the_ca() {
    let job = job(&Playbook::builtin("install").unwrap(), &BTreeMap::new()).unwrap();
    let step = |id: &str| job.steps.iter().find(|s| s.id == id).unwrap();
    let init = &step("kubeadm-init").hosts[0];
    assert!(init.every_run, "the run's join credentials are made again on a resumed run");
    let Op::Upload { path, content, complete, mode, .. } = &init.ops[0] else { panic!("{:?}", init.ops) };
    assert_eq!((path.as_str(), *mode, *complete), ("/etc/kubewright/kubeadm-init.yaml", 0o600, true));
    assert!(String::from_utf8_lossy(content).contains("<bootstrap-token>"), "secrets go in when written");
    assert!(matches!(&init.ops[..], [_, Op::Run { .. }, Op::Fetch { mode: 0o600, .. }, Op::PinCa { .. }]));
    let Op::Run { script, limit, .. } = &init.ops[1] else { unreachable!() };
    assert!(script.to_shell().contains("trap"), "the config is removed whatever kubeadm does");
    assert!(script.to_shell().contains("HUP INT TERM"), "also when its time limit stops it");
    // Built-in steps' commands are stopped on the host at the inventory's limit (30m by default).
    assert_eq!(limit.seconds, 1800);
    assert!(script.to_shell().contains("timeout -k 10 1800 sh -c"), "{}", script.to_shell());

    let cp2 = &step("join-control-plane").hosts[0];
    let Some(Op::Wait { nodes, etcd: true, .. }) = cp2.ops.last() else { panic!("{:?}", cp2.ops) };
    assert_eq!(nodes, &["cp2"]);
    let Op::Upload { content, complete: true, .. } = &cp2.ops[0] else { panic!("{:?}", cp2.ops) };
    assert!(String::from_utf8_lossy(content).contains("<ca-cert-hash>"));
}

/// The first step of `kubewright etcd restore`, over a snapshot file; cp3 has no etcd manifest.
fn restore_stage(snapshot: Option<kubewright::playbook::SnapshotInput>) -> (kubewright::plan::Plan, Playbook) {
    use kubewright::playbook::{HostSelector, Rollout, StepSpec};
    let inv = common::inventory("example.yaml", &[]);
    let files = common::render_all(&inv);
    let mut facts = ClusterFacts::assume_fresh(inv.hosts.iter().map(|h| h.name.as_str()));
    for (cp, ip) in [("cp1", "10.20.0.11"), ("cp2", "10.20.0.12")] {
        facts.hosts.get_mut(cp).unwrap().etcd_member = Some(kubewright::facts::EtcdMember {
            name: cp.into(),
            peer_url: format!("https://{ip}:2380"),
            data_dir: "/var/lib/etcd".into(),
            parked: false,
        });
    }
    let playbook = Playbook {
        name: "etcd-restore".into(),
        description: String::new(),
        steps: vec![StepSpec {
            snapshot,
            ..StepSpec::builtin(
                "etcd-restore-stage",
                "etcd-restore-stage",
                HostSelector::Role(kubewright::inventory::Role::ControlPlane),
                Rollout::Parallel,
            )
        }],
    };
    let plan =
        plan(&PlanInput { inventory: &inv, playbook: &playbook, facts: &facts, files: &files, state_dir: "/state" })
            .unwrap();
    (plan, playbook)
}

#[test]
fn a_restore_sends_the_planned_snapshot_and_refuses_one_that_changed_or_a_host_without_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("snapshot.db");
    std::fs::write(&file, b"the snapshot").unwrap();
    let snapshot = kubewright::playbook::SnapshotInput {
        local: file.display().to_string(),
        sha256: kubewright::pki::sha256_hex(b"the snapshot"),
    };
    let (plan, playbook) = restore_stage(Some(snapshot));
    let text = kubewright::plan::render_text(&plan, false);
    assert!(text.contains("as member cp1 of cp1=https://10.20.0.11:2380,cp2=https://10.20.0.12:2380"), "{text}");
    let Err(NotExecutable::Blocked { problems }) =
        lower(&plan, &playbook, &common::render_all(&plan_inventory()), &BTreeMap::new())
    else {
        panic!("cp3 has no etcd manifest")
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].starts_with("cp3: cp3 has no etcd manifest"), "{problems:?}");

    // Without cp3's problem: the upload carries the file's bytes; a file changed since is refused.
    let mut plan = plan;
    plan.steps[0].hosts.retain(|h| h.host != "cp3");
    let files = common::render_all(&plan_inventory());
    let job = lower(&plan, &playbook, &files, &BTreeMap::new()).unwrap();
    let Op::Upload { path, content, mode, .. } = &job.steps[0].hosts[0].ops[0] else {
        panic!("{:?}", job.steps[0].hosts[0].ops)
    };
    assert_eq!(
        (path.as_str(), content.as_slice(), *mode),
        ("/var/lib/kubewright/restore/snapshot.db", &b"the snapshot"[..], 0o600)
    );
    std::fs::write(&file, b"another snapshot").unwrap();
    let Err(NotExecutable::Action { step, host, what }) = lower(&plan, &playbook, &files, &BTreeMap::new()) else {
        panic!("a changed snapshot must be refused")
    };
    assert_eq!((step.as_str(), host.as_str()), ("etcd-restore-stage", "cp1"));
    assert!(what.contains("changed since it was planned"), "{what}");
}

#[test]
fn the_restore_steps_cannot_run_from_a_playbook_file() {
    let (plan, _) = restore_stage(None);
    let text = kubewright::plan::render_text(&plan, false);
    assert!(
        text.contains("restores the snapshot `kubewright etcd restore FILE` names; a playbook cannot run it"),
        "{text}"
    );
}

fn plan_inventory() -> kubewright::inventory::Inventory {
    common::inventory("example.yaml", &[])
}
