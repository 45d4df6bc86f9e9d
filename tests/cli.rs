//! The `kubewright` binary as users and CI run it: outputs, files and exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn kubewright(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kubewright"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("KUBEWRIGHT_STATE_DIR", "/var/lib/kubewright-test-state")
        .env_remove("KUBEWRIGHT_INVENTORY")
        .output()
        .expect("run kubewright")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn offline_plan_lists_the_install_steps_in_order() {
    let o = kubewright(&["plan", "--offline", "-i", "inventories/example.yaml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let order = [
        "[preflight]",
        "[prepare-host]",
        "[install-packages]",
        "[configure-containerd]",
        "[kubeadm-init]",
        "[apply-cni]",
        "[join-control-plane], one host at a time",
        "[join-worker]",
        "[local-api-proxy]",
        "[wait-ready]",
    ];
    let positions: Vec<usize> =
        order.iter().map(|s| out.find(s).unwrap_or_else(|| panic!("{s} missing in:\n{out}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "steps out of order:\n{out}");
    // Control planes join one at a time, cp2 before cp3, each waited for.
    let join = &out[positions[6]..positions[7]];
    let (cp2, cp3) = (join.find("   cp2:").expect("cp2 joins"), join.find("   cp3:").expect("cp3 joins"));
    assert!(cp2 < cp3);
    assert_eq!(join.matches("is Ready and its etcd member healthy").count(), 2);
    assert!(out.contains("kubeadm init --config /etc/kubewright/kubeadm-init.yaml --upload-certs"));
    assert!(out.contains("kubeadm=1.31.4-1.1"));
    assert!(out.contains("Offline: no host was contacted"));
    assert!(out.contains("Plan: 21 to add, 0 to change, 2 unchanged."), "{out}");
}

#[test]
fn json_plan_has_the_documented_shape() {
    let o = kubewright(&["plan", "--offline", "-i", "inventories/single.yaml", "--output", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is JSON");
    assert_eq!(plan["schema_version"], 2);
    assert_eq!(plan["goal"]["kind"], "converge");
    assert_eq!(plan["cluster"], "dev");
    assert_eq!(plan["kubernetes_version"], "1.30.8");
    assert_eq!(plan["assumed_fresh"], true);
    let steps: Vec<&str> =
        plan["steps"].as_array().expect("steps").iter().map(|s| s["id"].as_str().unwrap_or("")).collect();
    assert_eq!(
        steps,
        [
            "preflight",
            "prepare-host",
            "install-packages",
            "configure-containerd",
            "kubeadm-init",
            "apply-cni",
            "join-control-plane",
            "join-worker",
            "local-api-proxy",
            "wait-ready"
        ]
    );
    let prepare = &plan["steps"][1]["hosts"][0];
    assert_eq!(prepare["host"], "node1");
    assert_eq!(prepare["decision"], "add");
    let write =
        prepare["actions"].as_array().expect("actions").iter().find(|a| a["kind"] == "write-file").expect("a write");
    assert_eq!(write["change"], "new");
    assert!(write["diff"].as_str().unwrap_or("").starts_with("--- /dev/null"));
    // The single node is a control plane that runs workloads: it is not joined as a worker.
    assert_eq!(plan["steps"][7]["hosts"][0]["decision"], "skip");
    assert_eq!(plan["summary"]["add"], 5);
}

#[test]
fn secrets_never_appear_in_plans_only_placeholders() {
    let o = kubewright(&["plan", "--offline", "-i", "inventories/example.yaml", "--diff", "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let init = plan["steps"][4]["hosts"][0]["actions"][0].clone();
    assert_eq!(init["kind"], "run-with-file", "written, read and removed by one script");
    assert_eq!(init["file"]["path"], "/etc/kubewright/kubeadm-init.yaml");
    assert_eq!(init["file"]["sensitive"], true);
    assert_eq!(init["file"]["diff"], serde_json::Value::Null, "a sensitive file's content is never shown");
    assert!(init.get("content").is_none() && init["file"].get("content").is_none(), "{init}");
    let text = stdout(&kubewright(&["plan", "--offline", "-i", "inventories/example.yaml", "--diff"]));
    assert!(text.contains("(content hidden: it holds secrets)"));
}

#[test]
fn detailed_exitcode_reports_pending_changes_and_errors() {
    let o = kubewright(&["plan", "--offline", "-i", "inventories/single.yaml", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(2), "changes pending");
    let o = kubewright(&["plan", "--offline", "-i", "missing.yaml", "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(1), "errors exit 1 under --detailed-exitcode");
}

#[test]
fn invalid_inventory_exits_2_with_every_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("bad.yaml");
    std::fs::write(&inv, "cluster:\n  name: demo\n  kubernetesVersion: 1.26.0\nhosts:\n  - name: Bad_Host\n    address: 10.0.0.1\n    roles: [master]\n").expect("write");
    let o = kubewright(&["inventory", "validate", "-i", inv.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("bad.yaml:3:22: error: cluster.kubernetesVersion: Kubernetes 1.26.0 is not supported"),
        "{err}"
    );
    assert!(
        err.contains("bad.yaml:5:11: error: hosts[0].name: `Bad_Host` is not a valid Kubernetes node name"),
        "{err}"
    );
    assert!(err.contains("bad.yaml:7:13: error: hosts[0].roles[0]: unknown role `master`"), "{err}");
    assert!(err.contains("help: rename the host to `bad-host`"), "{err}");
    assert!(err.contains("error: inventory `") && err.contains("is invalid (3 errors)"), "{err}");
}

#[test]
fn json_errors_go_to_stdout_for_ci() {
    let o = kubewright(&["inventory", "validate", "-i", "missing.yaml", "-o", "json"]);
    assert_eq!(o.status.code(), Some(2));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON error document");
    assert_eq!(doc["error"]["exit_code"], 2);
    assert!(doc["error"]["message"].as_str().unwrap_or("").contains("cannot read inventory `missing.yaml`"));
    assert!(!doc["error"]["help"].as_array().expect("help").is_empty());
}

#[test]
fn validate_reports_warnings_and_succeeds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let inv = dir.path().join("even.yaml");
    std::fs::write(&inv, "cluster: {name: x, kubernetesVersion: 1.31.4, controlPlaneEndpoint: 'lb.example.com:6443'}\nhosts:\n  - {name: a, address: 10.0.0.1, roles: [control-plane]}\n  - {name: b, address: 10.0.0.2, roles: [control-plane]}\n").expect("write");
    let o = kubewright(&["inventory", "validate", "-i", inv.to_str().expect("utf-8")]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("warning: hosts: 2 control planes: an even etcd member count"), "{}", stderr(&o));
    assert!(stdout(&o).contains("is valid: cluster x, Kubernetes 1.31.4, 2 hosts (2 control planes, 0 workers)"));
    let quiet = kubewright(&["inventory", "validate", "-q", "-i", inv.to_str().expect("utf-8")]);
    assert!(stderr(&quiet).is_empty(), "--quiet drops warnings");
}

#[test]
fn render_writes_each_hosts_files_with_their_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let o = kubewright(&["render", "-i", "inventories/example.yaml", "--out", out.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 37, and every node's bootstrap kubeconfig (for a kubelet whose certificate expired).
    assert!(stdout(&o).contains("rendered 42 files for 5 hosts"), "{}", stdout(&o));
    let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
    assert_eq!(mode(&out.join("worker1/etc/kubernetes/bootstrap-kubelet.conf")), 0o600);
    assert_eq!(mode(&out.join("cp1/etc/kubewright/kubeadm-init.yaml")), 0o600);
    assert_eq!(mode(&out.join("cp2/etc/kubewright/kubeadm-join.yaml")), 0o600);
    assert_eq!(mode(&out.join("cp1/etc/kubewright/kubeadm-join-credentials.yaml")), 0o600);
    assert_eq!(mode(&out.join("worker1/etc/containerd/config.toml")), 0o644);
    assert!(!out.join("worker1/etc/kubewright/kubeadm-init.yaml").exists());
    let sysctl = std::fs::read_to_string(out.join("worker2/etc/sysctl.d/90-kubewright.conf")).expect("sysctl");
    assert!(sysctl.contains("net.ipv4.ip_forward = 1"));
}

#[test]
fn render_unknown_host_suggests_the_closest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = kubewright(&[
        "render",
        "-i",
        "inventories/example.yaml",
        "--out",
        dir.path().to_str().expect("utf-8"),
        "--host",
        "workr1",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("error: no host named `workr1` in the inventory\nhelp: did you mean `worker1`?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn template_overrides_replace_builtins_and_typos_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("crictl.yaml.j2"), "# custom crictl for {{ cluster.name }}\n").expect("write");
    let out = dir.path().join("out");
    let o = kubewright(&[
        "render",
        "-i",
        "inventories/single.yaml",
        "--out",
        out.to_str().expect("utf-8"),
        "--templates",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("node1/etc/crictl.yaml")).expect("crictl"),
        "# custom crictl for dev\n"
    );

    std::fs::write(dir.path().join("crictl.yml.j2"), "x").expect("write");
    let o = kubewright(&[
        "render",
        "-i",
        "inventories/single.yaml",
        "--out",
        out.to_str().expect("utf-8"),
        "--templates",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown template override `crictl.yml.j2`"), "{}", stderr(&o));
    assert!(stderr(&o).contains("help: template names are:"), "{}", stderr(&o));
}

#[test]
fn broken_template_override_names_the_template_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("crictl.yaml.j2"), "a\n{{ cluster.nmae }}\n").expect("write");
    let o = kubewright(&[
        "plan",
        "--offline",
        "-i",
        "inventories/single.yaml",
        "--templates",
        dir.path().to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("template `crictl.yaml.j2` failed to render"), "{}", stderr(&o));
    assert!(stderr(&o).contains("(line 2)"), "{}", stderr(&o));
}

#[test]
fn playbook_file_with_an_unknown_action_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = dir.path().join("pb.yaml");
    std::fs::write(
        &pb,
        "name: custom\nsteps:\n  - action: prepare-hots\n    hosts: all\n  - action: join-worker\n    hosts: wrker\n",
    )
    .expect("write");
    let o =
        kubewright(&["plan", "--offline", "-i", "inventories/single.yaml", "--playbook", pb.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("pb.yaml:3:13: error: steps[0].action: unknown action `prepare-hots`"), "{err}");
    assert!(err.contains("did you mean `prepare-host`?"), "{err}");
    assert!(err.contains("pb.yaml:6:12: error: steps[1].hosts: unknown host selector `wrker`"), "{err}");
}

#[test]
fn help_shows_examples_and_exit_codes() {
    let o = kubewright(&["--help"]);
    assert!(stdout(&o).contains("Exit codes:"));
    for cmd in [
        &["plan", "--help"][..],
        &["render", "--help"],
        &["inventory", "validate", "--help"],
        &["completions", "--help"],
    ] {
        let o = kubewright(cmd);
        assert!(o.status.success());
        assert!(stdout(&o).contains("Examples:"), "{cmd:?} has no examples");
    }
}

#[test]
fn completions_for_bash() {
    let o = kubewright(&["completions", "bash"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("_kubewright()"));
}

/// `generate` (packaging's) is hidden from `--help`, and completions offer what `--help` shows:
/// clap_complete alone would offer it.
#[test]
fn completions_offer_no_hidden_subcommand() {
    assert!(!stdout(&kubewright(&["--help"])).contains("generate"));
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let o = kubewright(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        // The completions subcommand's own argument says "The shell to generate completions for".
        let script = stdout(&o).replace("generate completions for", "");
        assert!(!script.contains("generate"), "{shell} completions offer `generate`");
        for visible in ["remove-node", "from-vagrant", "init-ca", "if-expiring-within", "accept-new-host-keys"] {
            assert!(script.contains(visible), "{shell} completions lack {visible}");
        }
    }
}

#[test]
fn generate_man_writes_a_page_per_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("man/man1");
    let o = kubewright(&["generate", "man", out.to_str().expect("utf-8")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut pages: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    pages.sort();
    for page in ["kubewright.1", "kubewright-apply.1", "kubewright-certs.1", "kubewright-certs-renew.1"] {
        assert!(pages.iter().any(|p| p == page), "no {page} in {pages:?}");
    }
    assert_eq!(pages.len(), 24, "one page per command `--help` shows: {pages:?}");
    let apply = std::fs::read_to_string(out.join("kubewright-apply.1")).unwrap();
    assert!(apply.contains(".TH kubewright-apply 1  \"kubewright "), "{apply}");

    // A directory that cannot be made is named, with why.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "").unwrap();
    let o = kubewright(&["generate", "man", blocked.join("man1").to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot create the manual page directory"), "{}", stderr(&o));
    assert!(stderr(&o).contains("file/man1"), "{}", stderr(&o));
}

#[test]
fn verbose_validate_shows_resolved_defaults() {
    let o = kubewright(&["inventory", "validate", "-v", "-i", "inventories/vagrant.yaml"]);
    assert!(o.status.success());
    let err = stderr(&o);
    assert!(err.contains(":: control-plane endpoint: 192.168.56.11:6443 (default: first control plane)"), "{err}");
    assert!(
        err.contains(
            ":: host worker2: ssh vagrant@192.168.56.22 (sudo; port: ssh_config's, else 22), node IP 192.168.56.22, roles worker"
        ),
        "{err}"
    );
    let plain = kubewright(&["inventory", "validate", "-i", "inventories/vagrant.yaml"]);
    assert!(stderr(&plain).is_empty(), "no detail without -v");
}

#[test]
fn playbook_naming_an_unknown_host_is_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pb = dir.path().join("pb.yaml");
    std::fs::write(&pb, "name: custom\nsteps:\n  - action: prepare-host\n    hosts: [worker1, workr2]\n")
        .expect("write");
    let o =
        kubewright(&["plan", "--offline", "-i", "inventories/example.yaml", "--playbook", pb.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(2), "a wrong host name is invalid input");
    let err = stderr(&o);
    assert!(err.contains("error: playbook step `prepare-host`: no host named `workr2` in the inventory"), "{err}");
    assert!(err.contains("help: did you mean `worker2`?"), "{err}");
}

/// Issue 18: a run never works in a state directory another user owns, or one that is a
/// symbolic link (a root timer would write where its links point): refused before any host.
#[test]
fn a_state_directory_of_another_user_or_a_link_is_refused_before_any_host() {
    let root = tempfile::tempdir().unwrap();
    let run = |state: &Path| {
        Command::new(env!("CARGO_BIN_EXE_kubewright"))
            .args(["certs", "renew", "--yes", "-i", "inventories/single.yaml"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .env("KUBEWRIGHT_STATE_DIR", state)
            .output()
            .unwrap()
    };
    // `dev` is single.yaml's cluster: its directory is a link to somewhere else.
    let elsewhere = root.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let linked = root.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    std::os::unix::fs::symlink(&elsewhere, linked.join("dev")).unwrap();
    let o = run(&linked);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a symbolic link"), "{}", stderr(&o));
    if std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap_or(1) != 0 {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root: the ownership check must be tested");
        #[allow(clippy::print_stderr)]
        {
            eprintln!("SKIPPED: not root, so a directory of another user cannot be made");
        }
        return;
    }
    let owned = root.path().join("owned");
    std::fs::create_dir_all(owned.join("dev")).unwrap();
    std::os::unix::fs::chown(owned.join("dev"), Some(65534), Some(65534)).unwrap();
    let o = run(&owned);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("belongs to nobody, not to root, who runs kubewright"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("connect"), "no host was contacted: {}", stderr(&o));
}
