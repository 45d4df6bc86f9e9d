//! Random and mutated YAML fed to the inventory and playbook loaders: they must return
//! errors, never panic. CI runs a short campaign; a long one by hand:
//! `PROPTEST_CASES=200000 cargo test --release --test loader_fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use proptest::prelude::*;

const SEEDS: &[&str] = &[
    include_str!("../inventories/example.yaml"),
    include_str!("../inventories/single.yaml"),
    include_str!("../inventories/vagrant.yaml"),
    include_str!("../playbooks/install.yaml"),
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
    let mut text: Vec<char> = seed.chars().collect();
    for &(pos, kind, frag) in edits {
        if text.is_empty() {
            break;
        }
        let pos = pos % text.len();
        match kind % 3 {
            0 => {
                text.remove(pos);
            }
            1 => text.splice(pos..pos, FRAGMENTS[frag % FRAGMENTS.len()].chars()).for_each(drop),
            _ => {
                let end = (pos + frag % 40).min(text.len());
                let cut: Vec<char> = text[pos..end].to_vec();
                text.splice(pos..pos, cut).for_each(drop);
            }
        }
    }
    text.into_iter().collect()
}

fn load_all(text: &str) {
    let _ = kubewright::inventory::load("fuzz.yaml", text);
    let _ = kubewright::playbook::Playbook::parse("fuzz.yaml", text);
    let _ = kubewright::source_map::SourceMap::build(text);
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
