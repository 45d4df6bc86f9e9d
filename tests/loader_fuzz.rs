//! Random and mutated YAML fed to the inventory and playbook loaders and to the kubespray and
//! Vagrant importers: they must return errors, never panic, and every error a loader reports
//! must say what to do. CI runs a short campaign; a long one by hand:
//! `PROPTEST_CASES=200000 cargo test --release --test loader_fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use proptest::prelude::*;

mod common;

const SEEDS: &[&str] = &[
    include_str!("../inventories/example.yaml"),
    include_str!("../inventories/single.yaml"),
    include_str!("../inventories/vagrant.yaml"),
    include_str!("../playbooks/install.yaml"),
    include_str!("fixtures/kubespray/hosts.yaml"),
    include_str!("fixtures/kubespray/inventory.ini"),
    include_str!("fixtures/vagrant/ssh-config-libvirt-5.txt"),
    include_str!("fixtures/vagrant/ssh-config-k8s-mixed-5.txt"),
];

/// Fragments that tend to break parsers: YAML structure, anchors, tags, odd scalars.
const FRAGMENTS: &[&str] = &[
    ":",
    "- ",
    "\n",
    "  ",
    "{",
    "}",
    "[",
    "]",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "? ",
    "|\n",
    ">-\n",
    "'",
    "\"",
    "#",
    "---\n",
    "...\n",
    "\t",
    "\u{0}",
    "\u{feff}",
    "~",
    "null",
    "0x1F",
    "1e999",
    "-.inf",
    "<<: *a",
    "%YAML 1.2\n",
    "é",
    "\u{2028}",
    "99999999999999999999",
];

fn mutate(seed: &str, edits: &[(usize, usize, usize)]) -> String {
    common::mutate(seed, edits, FRAGMENTS, |_| 1)
}

/// Every error a loader reports tells what to do: a valid value (`expected:`) or a `help:`.
fn assert_advised(diagnostics: &[kubewright::diag::Diagnostic], text: &str) {
    for d in diagnostics.iter().filter(|d| d.is_error()) {
        assert!(
            d.expected.is_some() || d.hint.is_some(),
            "no advice in `{d}`
for input:
{text}"
        );
    }
}

fn load_all(text: &str) {
    use kubewright::inventory::{kubespray, vagrant};
    if let Err(e) = kubewright::inventory::load("fuzz.yaml", text) {
        assert_advised(&e.diagnostics, text);
    }
    if let Err(e) = kubewright::playbook::Playbook::parse("fuzz.yaml", text) {
        assert_advised(&e.diagnostics, text);
    }
    let _ = kubewright::source_map::SourceMap::build(text);
    // The importers read files kubewright did not write.
    let file = kubespray::InventoryFile { path: "fuzz".into(), text: text.into() };
    let vars = kubespray::VarFiles { files: vec![("group_vars/all.yml".into(), text.into())], dir: "fuzz".into() };
    for view in [
        kubespray::read_builtin(std::slice::from_ref(&file), &kubespray::VarFiles::default()),
        kubespray::read_builtin(&[], &vars),
    ]
    .into_iter()
    .flatten()
    {
        let options =
            kubespray::ImportOptions { source: "fuzz", cluster: "fuzz", kubernetes_version: None, reader: "fuzz" };
        let _ = kubespray::inventory(&view, &options);
    }
    let _ = kubespray::ansible::parse_list(text);
    if let Ok(entries) = vagrant::parse_ssh_config(text) {
        // The fuzzed text is also taken as globs: names and patterns come from the user.
        let globs = vec!["cp*".to_string(), text.chars().take(40).collect()];
        for node_ips in [vagrant::NodeIps::FromInterface, vagrant::NodeIps::Convention { network: "192.168.56".into() }]
        {
            let options = vagrant::ImportOptions {
                cluster: "fuzz",
                kubernetes_version: "1.31.4",
                control_planes: &globs,
                workers: &globs[1..],
                node_ips,
                interface: "eth1",
                known_hosts: "/tmp/kh",
            };
            let _ = vagrant::inventory(&entries, &options);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512), ..ProptestConfig::default() })]

    #[test]
    fn mutated_inventories_never_panic(seed in 0..SEEDS.len(), edits in prop::collection::vec((any::<usize>(), any::<usize>(), any::<usize>()), 1..12)) {
        load_all(&mutate(SEEDS[seed], &edits));
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        load_all(&text);
    }

    #[test]
    fn fragment_soup_never_panics(parts in prop::collection::vec(0..FRAGMENTS.len(), 0..60)) {
        let text: String = parts.into_iter().map(|i| FRAGMENTS[i]).collect();
        load_all(&text);
    }
}

#[test]
fn yaml_bombs_are_refused_quickly() {
    // Billion laughs: serde-saphyr's alias budget must stop the expansion.
    let mut bomb = String::from("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for i in 1..12 {
        let prev = (b'a' + (i - 1) as u8) as char;
        let name = (b'a' + i as u8) as char;
        bomb.push_str(&format!(
            "{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    let started = std::time::Instant::now();
    assert!(kubewright::inventory::load("bomb.yaml", &bomb).is_err());
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "took {:?}", started.elapsed());
}
