//! The package repositories the bed serves (built by `bed::image`, installed by the hosts' real
//! apt and dpkg): which releases they offer, and the key that signs them.
//!
//! pkgs.k8s.io has one repository per minor (kubeadm-behaviour.md §8); the bed's has the same
//! layout, for 1.29 to 1.33.

use base64::Engine;

/// Minor → newest patch the bed's repository offers (each minor from `.0`).
pub const OFFERED: &[(u32, u32)] = &[(29, 15), (30, 14), (31, 13), (32, 9), (33, 5)];
/// Debian 12's containerd, from the distribution's own archive (the bed's stand-in for it).
pub const DEBIAN_CONTAINERD: &str = "1.6.20~ds1-1+b1";

/// The test bed's repository signing key, served as every minor's `Release.key`: a real
/// OpenPGP key (ed25519, made for the bed with `gpg --quick-gen-key`). The bed signs its
/// repositories' Release files with it (`bed::image`), and the hosts' real apt and gpg check
/// them against it as they would pkgs.k8s.io's.
pub const REPOSITORY_KEY: &str = include_str!("repository-key.asc");
/// Its secret half, with which the bed signs its repositories' Release files. A test key, public
/// on purpose: nothing but the bed's own hosts trusts it.
pub const REPOSITORY_SECRET_KEY: &str = include_str!("repository-key.secret.asc");
/// [`REPOSITORY_KEY`]'s fingerprint, which the bed's inventory pins
/// (`cluster.packages.keyFingerprint`).
pub const REPOSITORY_KEY_FINGERPRINT: &str = "89F42006A4E8750C7ABD2BDA28E87B8B26A9CB2B";

/// [`REPOSITORY_KEY`] as `gpg --dearmor` writes it: the armor's base64 body, decoded (RFC 4880
/// §6.2: headers end at the first empty line, the body at the `=` checksum line).
pub fn repository_keyring() -> Vec<u8> {
    let body: String = REPOSITORY_KEY
        .lines()
        .skip_while(|l| !l.trim().is_empty())
        .skip(1)
        .take_while(|l| !l.starts_with('=') && !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).unwrap_or_default()
}
