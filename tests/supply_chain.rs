//! The kubewright CI tests is the kubewright `cargo build -p kubewright` ships (issue 18).
//!
//! Cargo unifies features over everything one build selects: `cargo test --workspace` compiles
//! kubewright's dependencies with every feature the test bed and the dev-dependencies ask for.
//! The test bed's rcgen `aws_lc_rs` once switched kubewright's own CA generation to aws-lc
//! (rcgen prefers it over ring when both are on) and x509-parser's signature checks with it
//! (`verify-aws`), so CI tested other cryptography than the shipped binary runs, and needed
//! aws-lc-sys's C toolchain. This test compares, for every crate in the shipped tree, the
//! features `cargo tree` resolves for `-p kubewright` alone with those it resolves for the
//! whole workspace with dev-dependencies (what `cargo test --workspace` builds).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Features that only the tests' own tools add to crates of the shipped tree, each reviewed:
/// (crate, feature, who adds it and why it does not change what is tested).
const REVIEWED: &[(&str, &str, &str)] = &[
    (
        "serde",
        "alloc",
        "jsonschema (tests/plan_schema.rs) through fluent-uri; kubewright enables `std`, which implies it",
    ),
    (
        "futures-core",
        "default",
        "hyper (the test bed's simulated kube-apiserver); its default is `std`, which kubewright's \
         tree already enables",
    ),
    (
        "rustls-pki-types",
        "std",
        "rustls (the test bed's simulated kube-apiserver); adds std::error::Error impls and \
         PEM file reading, nothing that changes how rcgen, kubewright's user, encodes or signs",
    ),
    (
        "smallvec",
        "const_generics",
        "hyper's server (the test bed's simulated kube-apiserver); more array sizes for the \
         Array trait, no change to existing uses",
    ),
    ("smallvec", "const_new", "hyper's server (the test bed's simulated kube-apiserver); const constructors only"),
    (
        "serde_json",
        "float_roundtrip",
        "jsonschema (tests/plan_schema.rs); exact float parsing only, and kubewright reads no \
         floating-point values from JSON",
    ),
];

/// Crate (`name version`) → the union of its resolved features, from `cargo tree` with `args`.
fn resolved_features(args: &[&str]) -> BTreeMap<String, BTreeSet<String>> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--locked", "--manifest-path", manifest, "--prefix", "none", "--format", "{p}\t{f}"])
        .args(args)
        .output()
        .expect("cannot run cargo tree");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo tree {args:?} failed: {stderr}");
    let mut crates: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (package, features) = line.split_once('\t').unwrap_or((line, ""));
        // `name vX.Y.Z (path)`: the name and version identify the crate.
        let key = package.split(' ').take(2).collect::<Vec<_>>().join(" ");
        let features = features.trim_end_matches(" (*)");
        let entry = crates.entry(key).or_default();
        entry.extend(features.split(',').filter(|f| !f.is_empty()).map(str::to_string));
    }
    crates
}

#[test]
fn the_workspace_and_the_dev_dependencies_turn_on_no_feature_of_the_shipped_crates() {
    let shipped = resolved_features(&["-p", "kubewright", "-e", "normal"]);
    let tested = resolved_features(&["--workspace", "-e", "normal,dev"]);
    let rcgen = shipped.iter().find(|(name, _)| name.starts_with("rcgen ")).map(|(_, f)| f);
    assert!(
        rcgen.is_some_and(|f| f.contains("ring")),
        "the shipped tree has rcgen with ring (`certs init-ca`): {rcgen:?} in {shipped:?}"
    );

    let mut added = BTreeMap::new();
    let mut reviewed_seen = BTreeSet::new();
    for (krate, features) in &shipped {
        let name = krate.split(' ').next().unwrap_or(krate);
        let extra: BTreeSet<&String> = tested.get(krate).map(|t| t.difference(features).collect()).unwrap_or_default();
        for feature in extra {
            match REVIEWED.iter().find(|(c, f, _)| *c == name && f == feature) {
                Some(reviewed) => {
                    reviewed_seen.insert(reviewed.0.to_string() + "/" + reviewed.1);
                }
                None => {
                    added.entry(krate.clone()).or_insert_with(Vec::new).push(feature.clone());
                }
            }
        }
    }
    assert!(
        added.is_empty(),
        "the test build turns on features of crates kubewright ships that `cargo build -p kubewright` \
         does not, so CI would test another build than the one shipped: {added:?}\n\
         find who asks with `cargo tree --workspace -e normal,dev,features -i CRATE`; give that member \
         the shipped crate's features (tests/testbed/Cargo.toml), or review it into REVIEWED"
    );
    let stale: Vec<String> =
        REVIEWED.iter().map(|(c, f, _)| format!("{c}/{f}")).filter(|r| !reviewed_seen.contains(r)).collect();
    assert!(stale.is_empty(), "these REVIEWED exceptions no longer happen: remove them: {stale:?}");
}
