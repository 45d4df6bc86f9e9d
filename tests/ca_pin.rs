//! The CA pin kubewright puts in `caCertHashes` is the one kubeadm's documentation computes
//! with openssl (kubeadm join docs, "Token-based discovery with CA pinning"), for RSA and
//! ECDSA CAs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a failed test

use std::process::Command;

fn openssl(args: &[&str], dir: &std::path::Path) -> Vec<u8> {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl is installed (.ci/run)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn the_pin_matches_the_openssl_recipe_of_the_kubeadm_docs() {
    let dir = tempfile::tempdir().unwrap();
    for (name, key_args) in
        [("rsa", &["-newkey", "rsa:2048"][..]), ("ec", &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"][..])]
    {
        let cert = format!("{name}.crt");
        let mut args = vec!["req", "-x509", "-nodes", "-subj", "/CN=kubernetes", "-days", "1"];
        args.extend_from_slice(key_args);
        args.extend(["-keyout", "key.pem", "-out", cert.as_str()]);
        openssl(&args, dir.path());
        // openssl x509 -pubkey -in ca.crt | openssl rsa -pubin -outform der | openssl dgst -sha256 -hex
        let public = openssl(&["x509", "-pubkey", "-noout", "-in", &cert], dir.path());
        std::fs::write(dir.path().join("pub.pem"), public).unwrap();
        openssl(&["pkey", "-pubin", "-in", "pub.pem", "-outform", "der", "-out", "pub.der"], dir.path());
        let digest = String::from_utf8(openssl(&["dgst", "-sha256", "-r", "pub.der"], dir.path())).unwrap();
        let expected = format!("sha256:{}", digest.split_whitespace().next().unwrap());

        let pem = std::fs::read(dir.path().join(&cert)).unwrap();
        assert_eq!(kubewright::pki::ca_pin(&pem).unwrap(), expected, "{name} CA");
    }
}
