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
    assert_eq!(limit.map(|l| l.seconds), Some(90));
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
    let Op::Run { script, .. } = &init.ops[1] else { unreachable!() };
    assert!(script.to_shell().contains("trap"), "the config is removed whatever kubeadm does");

    let cp2 = &step("join-control-plane").hosts[0];
    let Some(Op::Wait { nodes, etcd: true, .. }) = cp2.ops.last() else { panic!("{:?}", cp2.ops) };
    assert_eq!(nodes, &["cp2"]);
    let Op::Upload { content, complete: true, .. } = &cp2.ops[0] else { panic!("{:?}", cp2.ops) };
    assert!(String::from_utf8_lossy(content).contains("<ca-cert-hash>"));
}
