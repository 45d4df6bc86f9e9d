//! Real X.509 material as kubeadm writes it (kubeadm-behaviour.md §3.1): CAs for 10 years
//! from 5 minutes ago, leaves for 1 year with the CA's NotBefore, RSA 2048 keys written as
//! PKCS#1 `RSA PRIVATE KEY`, and kubeconfigs with embedded client certificates.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use rsa::RsaPrivateKey;
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, LineEnding};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use x509_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;
use x509_parser::x509::X509Name;

pub const YEAR: i64 = 365 * 86_400;

/// A certificate and its key, PEM.
pub struct Pair {
    pub cert: String,
    pub key: String,
}

fn time_at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// An RSA 2048 key, which kubeadm uses for every CA and leaf: rcgen's signing key, and the
/// PKCS#1 `RSA PRIVATE KEY` PEM kubeadm writes. ring (kubewright's backend) cannot generate RSA
/// keys, so the pure-Rust `rsa` crate (already in kubewright's tree through russh) does.
struct RsaKey {
    signing: KeyPair,
    pkcs1_pem: String,
    public_pem: String,
}

/// A bed's pool of pre-made RSA keys (see [`pooled_rsa_key`]): its name in the bed's
/// `/opt/kubewright-sim`, and the bed-wide count of the keys its hosts have taken from it.
pub const RSA_POOL_NAME: &str = "rsa-2048-pool.pem";
const RSA_POOL_TAKEN: &str = "rsa-2048-pool.taken";

/// A new RSA 2048 key in PKCS#1 PEM.
pub fn new_rsa_pem() -> anyhow::Result<String> {
    let key = RsaPrivateKey::new(&mut rand::rng(), 2048).context("cannot generate an RSA 2048 key")?;
    Ok(key.to_pkcs1_pem(LineEnding::LF).context("cannot encode the RSA key as PKCS#1")?.to_string())
}

fn rsa_key_from(pkcs1_pem: &str) -> anyhow::Result<RsaKey> {
    let key = RsaPrivateKey::from_pkcs1_pem(pkcs1_pem).context("cannot read the PKCS#1 RSA key")?;
    let pkcs8 = key.to_pkcs8_der().context("cannot encode the RSA key as PKCS#8")?;
    let signing = KeyPair::try_from(pkcs8.as_bytes()).context("rcgen cannot load the RSA key")?;
    let public_pem =
        key.to_public_key().to_public_key_pem(LineEnding::LF).context("cannot encode the RSA public key")?;
    Ok(RsaKey { signing, pkcs1_pem: pkcs1_pem.to_string(), public_pem })
}

/// A fresh key: for CAs, so that no bed ever trusts a certificate of another.
fn fresh_rsa_key() -> anyhow::Result<RsaKey> {
    rsa_key_from(&new_rsa_pem()?)
}

/// A leaf's key: the next unused key of the bed's pool, else a fresh one. Generating an RSA 2048
/// key took about 150 ms of CPU here (as `openssl genpkey` does), a tenth of the bed's CPU time
/// in an install; the pool is made once per machine (`bed::image::rsa_key_pool`). Every key is
/// taken once in a bed, so no two certificates of a cluster share one, as with real kubeadm;
/// beds share the pool's keys, but never a CA's, so none accepts another's certificates.
fn pooled_rsa_key() -> anyhow::Result<RsaKey> {
    match next_pooled_pem(&Path::new("/opt/kubewright-sim").join(RSA_POOL_NAME), &super::cluster::state_dir()) {
        Some(pem) => rsa_key_from(&pem),
        None => fresh_rsa_key(),
    }
}

/// Key number N of the pool file `pool` (PEM blocks one after another), N counted in `state`
/// under a lock; None when there is no pool, it is used up, or the count cannot be kept.
fn next_pooled_pem(pool: &Path, state: &Path) -> Option<String> {
    let text = std::fs::read_to_string(pool).ok()?;
    let lock = std::fs::File::create(state.join(format!("{RSA_POOL_TAKEN}.lock"))).ok()?;
    lock.lock().ok()?;
    let counter = state.join(RSA_POOL_TAKEN);
    // From 0 only when no key was taken yet: a count that cannot be read gives fresh keys, never
    // a key again.
    let taken: usize = match std::fs::read_to_string(&counter) {
        Ok(t) => t.trim().parse().ok()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(_) => return None,
    };
    let end = "-----END RSA PRIVATE KEY-----";
    let pem = text.split_inclusive(end).filter(|b| b.contains(end)).nth(taken)?;
    super::host::write_atomic(&counter, (taken + 1).to_string().as_bytes()).ok()?;
    Some(format!("{}\n", pem.trim()))
}

/// A CA's key as rcgen's signing key. kubeadm's RSA keys are PKCS#1, which rcgen loads only with
/// aws-lc: they are read with `rsa` and handed over as PKCS#8. Other keys (the ECDSA CAs of
/// `kubewright certs init-ca`) are PKCS#8 already.
fn signing_key(pem: &str) -> anyhow::Result<KeyPair> {
    if pem.trim_start().starts_with("-----BEGIN RSA PRIVATE KEY-----") {
        let key = RsaPrivateKey::from_pkcs1_pem(pem).context("cannot read the PKCS#1 RSA key")?;
        let pkcs8 = key.to_pkcs8_der().context("cannot encode the RSA key as PKCS#8")?;
        return KeyPair::try_from(pkcs8.as_bytes()).context("rcgen cannot load the RSA key");
    }
    KeyPair::from_pem(pem).context("cannot load the key (PKCS#1 RSA or PKCS#8 expected)")
}

/// rcgen's issuer for a CA on disk: the subject and subject key identifier exactly as its
/// certificate has them, so that a leaf's issuer and authority key identifier match the CA
/// whoever made it. (rcgen's own `Issuer::from_ca_cert_pem` needs its `x509-parser` feature,
/// which kubewright does not ship, and the test bed must not add it: tests/supply_chain.rs.)
fn issuer(ca: &Pair) -> anyhow::Result<Issuer<'static, KeyPair>> {
    let key = signing_key(&ca.key).context("cannot load the CA key")?;
    let mut params = CertificateParams::default();
    with_cert(&ca.cert, |c| -> anyhow::Result<()> {
        params.distinguished_name = distinguished_name(c.subject())?;
        let ski = c.iter_extensions().find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        });
        if let Some(ski) = ski {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        Ok(())
    })?
    .context("cannot load the CA certificate")?;
    Ok(Issuer::new(params, key))
}

/// A certificate's subject as rcgen writes it again, attribute for attribute with the same
/// string types; names rcgen cannot reproduce exactly are refused rather than changed.
fn distinguished_name(name: &X509Name<'_>) -> anyhow::Result<DistinguishedName> {
    let mut dn = DistinguishedName::new();
    let mut seen = Vec::new();
    for attr in name.iter_attributes() {
        let oid: Vec<u64> = attr.attr_type().iter().context("an attribute type too large to read")?.collect();
        let text = attr.as_str().map_err(|e| anyhow::anyhow!("attribute {}: {e}", attr.attr_type()))?;
        let value = match attr.attr_value().header.tag() {
            Tag::Utf8String => DnValue::Utf8String(text.to_string()),
            Tag::PrintableString => DnValue::PrintableString(text.try_into()?),
            other => anyhow::bail!(
                "attribute {} is a {other}; the simulator signs with UTF8String or PrintableString subjects",
                attr.attr_type()
            ),
        };
        anyhow::ensure!(
            !seen.contains(&oid),
            "attribute {} appears twice in the subject, which rcgen cannot write",
            attr.attr_type()
        );
        seen.push(oid.clone());
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

fn dn(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn.push(DnType::CommonName, cn);
    dn
}

pub fn new_ca(cn: &str, now: i64) -> anyhow::Result<Pair> {
    let key = fresh_rsa_key()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn, &[]);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyCertSign];
    params.not_before = time_at(now - 300);
    params.not_after = time_at(now + 10 * YEAR);
    if cn == "kubernetes" {
        params.subject_alt_names = vec![SanType::DnsName("kubernetes".try_into()?)];
    }
    params.serial_number = Some(rand::random::<u64>().into());
    let cert = params.self_signed(&key.signing)?;
    Ok(Pair { cert: cert.pem(), key: key.pkcs1_pem })
}

pub struct Leaf<'a> {
    pub cn: &'a str,
    pub orgs: &'a [&'a str],
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub server: bool,
    pub client: bool,
    /// ECDSA P-256 (kubelet client certificates) instead of kubeadm's RSA 2048.
    pub ecdsa: bool,
}

/// Issue a leaf certificate signed by `ca`, valid from the CA's NotBefore for one year.
pub fn new_leaf(ca: &Pair, leaf: &Leaf<'_>, now: i64) -> anyhow::Result<Pair> {
    let issuer = issuer(ca)?;
    let (key, key_pem) = if leaf.ecdsa {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let pem = key.serialize_pem();
        (key, pem)
    } else {
        let key = pooled_rsa_key()?;
        (key.signing, key.pkcs1_pem)
    };
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(leaf.cn, leaf.orgs);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if leaf.server {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if leaf.client {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for d in &leaf.dns {
        params.subject_alt_names.push(SanType::DnsName(d.clone().try_into()?));
    }
    for ip in &leaf.ips {
        params.subject_alt_names.push(SanType::IpAddress(*ip));
    }
    params.not_before = time_at(not_before(&ca.cert)?);
    params.not_after = time_at(now + YEAR);
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rand::random::<u64>().into());
    let cert = params.signed_by(&key, &issuer)?;
    Ok(Pair { cert: cert.pem(), key: key_pem })
}

/// `cert_pem` signed again by `ca` with its own key (`key_pem`, kubeadm's PKCS#1 RSA or a
/// kubelet's PKCS#8 ECDSA) and subject, names and usages, valid from `not_before` to
/// `not_after` (unix seconds, either may be in the past), with a new serial: the same
/// certificate as if it had been issued at another time (`kubewright-testbed expire-certs`).
pub fn resign(ca: &Pair, cert_pem: &str, key_pem: &str, not_before: i64, not_after: i64) -> anyhow::Result<String> {
    let issuer = issuer(ca)?;
    let key = signing_key(key_pem).context("cannot load the certificate's key")?;
    let id = identity(cert_pem)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = with_cert(cert_pem, |c| distinguished_name(c.subject()))??;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    if id.server {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    if id.client {
        params.extended_key_usages.push(ExtendedKeyUsagePurpose::ClientAuth);
    }
    for d in id.dns {
        params.subject_alt_names.push(SanType::DnsName(d.try_into()?));
    }
    for ip in id.ips {
        params.subject_alt_names.push(SanType::IpAddress(ip));
    }
    params.not_before = time_at(not_before);
    params.not_after = time_at(not_after);
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rand::random::<u64>().into());
    Ok(params.signed_by(&key, &issuer)?.pem())
}

/// The key of a kubelet's self-signed serving certificate signed again as [`resign`] does, by
/// a new CA of its own (the kubelet keeps no key for the CA it made: kubelet.crt is all there is).
pub fn resign_self_signed(cert_pem: &str, key_pem: &str, not_before: i64, not_after: i64) -> anyhow::Result<String> {
    let cn = identity(cert_pem)?.cn;
    let ca = new_ca(&format!("{}-ca@{not_before}", cn.split('@').next().unwrap_or(&cn)), not_before)?;
    resign(&ca, cert_pem, key_pem, not_before, not_after)
}

/// A client certificate (ECDSA P-256, client authentication) for `cn` in the groups `orgs`,
/// signed by the CA `ca_cert`/`ca_key` (PEM), valid from `not_before` to `not_after` (unix
/// seconds, either may be in the past): what a test shows the simulated API server (an expired
/// or not yet valid certificate of the cluster's CA). Returns the certificate and key, PEM.
pub fn client_certificate(
    ca_cert: &str,
    ca_key: &str,
    cn: &str,
    orgs: &[&str],
    not_before: i64,
    not_after: i64,
) -> anyhow::Result<(String, String)> {
    let issuer = issuer(&Pair { cert: ca_cert.to_string(), key: ca_key.to_string() })?;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn, orgs);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = time_at(not_before);
    params.not_after = time_at(not_after);
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(rand::random::<u64>().into());
    let cert = params.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The service-account signing key pair (`sa.key`, `sa.pub`).
pub fn sa_keypair() -> anyhow::Result<(String, String)> {
    let key = pooled_rsa_key()?;
    Ok((key.pkcs1_pem, key.public_pem))
}

fn parse_pem(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    Ok(base64::engine::general_purpose::STANDARD.decode(body.trim())?)
}

fn with_cert<R>(pem: &str, f: impl FnOnce(&x509_parser::certificate::X509Certificate<'_>) -> R) -> anyhow::Result<R> {
    let first = pem.split_inclusive("-----END CERTIFICATE-----").next().unwrap_or(pem);
    let der = parse_pem(first)?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| anyhow::anyhow!("invalid certificate: {e}"))?;
    Ok(f(&cert))
}

pub fn not_before(pem: &str) -> anyhow::Result<i64> {
    with_cert(pem, |c| c.validity().not_before.timestamp())
}

pub fn not_after(pem: &str) -> anyhow::Result<i64> {
    with_cert(pem, |c| c.validity().not_after.timestamp())
}

/// Who a certificate is for: what `kubeadm certs renew` keeps when it re-issues one.
pub struct Identity {
    pub cn: String,
    pub orgs: Vec<String>,
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
    pub server: bool,
    pub client: bool,
}

/// The subject CN, organisations, DNS and IP SANs and usages of a certificate.
pub fn identity(pem: &str) -> anyhow::Result<Identity> {
    with_cert(pem, |c| {
        let cn = c.subject().iter_common_name().next().and_then(|a| a.as_str().ok()).unwrap_or("").to_string();
        let orgs = c.subject().iter_organization().filter_map(|a| a.as_str().ok()).map(str::to_string).collect();
        let mut dns = Vec::new();
        let mut ips = Vec::new();
        if let Ok(Some(san)) = c.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    x509_parser::extensions::GeneralName::DNSName(d) => dns.push(d.to_string()),
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            ips.push(IpAddr::from(a));
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            ips.push(IpAddr::from(a));
                        }
                    }
                    _ => {}
                }
            }
        }
        let (server, client) = match c.extended_key_usage() {
            Ok(Some(eku)) => (eku.value.server_auth, eku.value.client_auth),
            _ => (false, false),
        };
        Identity { cn, orgs, dns, ips, server, client }
    })
}

/// Go's time format in x509 validity errors (RFC 3339, UTC).
pub(crate) fn go_time(unix: i64) -> String {
    let t = time_at(unix);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Why a server that trusts `ca_pem` refuses the client certificate `pem` at `now`, in Go's
/// crypto/x509 words (`certificate has expired or is not yet valid`, `certificate signed by
/// unknown authority`), or Ok.
pub fn check_client_certificate(pem: &str, ca_pem: &str, now: i64) -> Result<(), String> {
    let ca_der = parse_pem(ca_pem.split_inclusive("-----END CERTIFICATE-----").next().unwrap_or(ca_pem))
        .map_err(|e| format!("the CA cannot be read: {e}"))?;
    let (_, ca) = x509_parser::parse_x509_certificate(&ca_der).map_err(|e| format!("the CA cannot be read: {e}"))?;
    with_cert(pem, |c| {
        let (from, until) = (c.validity().not_before.timestamp(), c.validity().not_after.timestamp());
        if now > until {
            return Err(format!(
                "x509: certificate has expired or is not yet valid: current time {} is after {}",
                go_time(now),
                go_time(until)
            ));
        }
        if now < from {
            return Err(format!(
                "x509: certificate has expired or is not yet valid: current time {} is before {}",
                go_time(now),
                go_time(from)
            ));
        }
        c.verify_signature(Some(ca.public_key()))
            .map_err(|_| "x509: certificate signed by unknown authority".to_string())
    })
    .map_err(|e| format!("the certificate cannot be read: {e}"))?
}

/// `sha256:<hex>` over the CA's SubjectPublicKeyInfo (kubeadm's pubkeypin.Hash).
pub fn ca_pin(ca_cert_pem: &str) -> anyhow::Result<String> {
    let spki = with_cert(ca_cert_pem, |c| c.public_key().raw.to_vec())?;
    Ok(format!("sha256:{}", hex::encode(Sha256::digest(spki))))
}

pub fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// A kubeconfig with an embedded client certificate.
pub fn kubeconfig(cluster_name: &str, server: &str, ca_pem: &str, user: &str, client: &Pair) -> String {
    format!(
        "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: {cluster_name}\n\
         contexts:\n- context:\n    cluster: {cluster_name}\n    user: {user}\n  name: {user}@{cluster_name}\n\
         current-context: {user}@{cluster_name}\nkind: Config\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n\
         \x20   client-certificate-data: {cert}\n    client-key-data: {key}\n",
        ca = b64(ca_pem),
        cert = b64(&client.cert),
        key = b64(&client.key),
    )
}

/// The client certificate embedded in a kubeconfig (PEM), for expiry checks and renewal.
pub fn kubeconfig_client_cert(text: &str) -> Option<String> {
    kubeconfig_data(text, "client-certificate-data")
}

/// The client key embedded in a kubeconfig (PEM).
pub fn kubeconfig_client_key(text: &str) -> Option<String> {
    kubeconfig_data(text, "client-key-data")
}

/// A kubeconfig's `FIELD: base64` value, decoded (the first one: kubeadm's kubeconfigs have one
/// user).
pub fn kubeconfig_data(text: &str, field: &str) -> Option<String> {
    let line = text.lines().find(|l| l.trim_start().starts_with(&format!("{field}:")))?;
    let b = line.split(':').nth(1)?.trim();
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(b).ok()?).ok()
}

pub fn write(path: &Path, content: &str, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, content).with_context(|| format!("cannot write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

pub fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn each_pooled_key_is_taken_once_per_bed_then_none_is_left() {
        let dir = std::env::temp_dir().join(format!("kubewright-rsa-pool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pool = dir.join(RSA_POOL_NAME);
        let block = |n: u32| format!("-----BEGIN RSA PRIVATE KEY-----\nkey{n}\n-----END RSA PRIVATE KEY-----\n");
        assert_eq!(next_pooled_pem(&pool, &dir), None, "no pool: a fresh key");
        std::fs::write(&pool, format!("{}{}", block(1), block(2))).unwrap();
        assert_eq!(next_pooled_pem(&pool, &dir).as_deref(), Some(block(1).as_str()));
        assert_eq!(next_pooled_pem(&pool, &dir).as_deref(), Some(block(2).as_str()));
        assert_eq!(next_pooled_pem(&pool, &dir), None, "used up: a fresh key");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn server_leaf() -> Leaf<'static> {
        Leaf {
            cn: "kube-apiserver",
            orgs: &[],
            dns: vec!["kubernetes".into()],
            ips: vec![IpAddr::from([10, 96, 0, 1])],
            server: true,
            client: false,
            ecdsa: false,
        }
    }

    fn der(pem: &str) -> Vec<u8> {
        parse_pem(pem.split_inclusive("-----END CERTIFICATE-----").next().unwrap_or(pem)).unwrap()
    }

    /// The leaf's issuer and authority key identifier, and the CA's subject and subject key
    /// identifier, as raw bytes: what a verifier matches a certificate to its CA by.
    fn issuer_and_aki(leaf: &str) -> (Vec<u8>, Vec<u8>) {
        let der = der(leaf);
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        let aki = c
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::AuthorityKeyIdentifier(a) => a.key_identifier.as_ref().map(|k| k.0.to_vec()),
                _ => None,
            })
            .unwrap();
        (c.issuer().as_raw().to_vec(), aki)
    }

    fn subject_and_ski(ca: &str) -> (Vec<u8>, Vec<u8>) {
        let der = der(ca);
        let (_, c) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ski = c
            .iter_extensions()
            .find_map(|e| match e.parsed_extension() {
                ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
                _ => None,
            })
            .unwrap();
        (c.subject().as_raw().to_vec(), ski)
    }

    #[test]
    fn keys_are_rsa_2048_in_pkcs1_and_leaves_name_their_ca_exactly() {
        let ca = new_ca("kubernetes", NOW).unwrap();
        let leaf = new_leaf(&ca, &server_leaf(), NOW).unwrap();
        for key in [&ca.key, &leaf.key] {
            assert!(key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n"), "{key}");
            let rsa = RsaPrivateKey::from_pkcs1_pem(key).unwrap();
            assert_eq!(rsa::traits::PublicKeyParts::size(&rsa), 256, "2048 bits");
        }
        assert_eq!(issuer_and_aki(&leaf.cert), subject_and_ski(&ca.cert));
        assert_eq!(not_before(&leaf.cert).unwrap(), not_before(&ca.cert).unwrap());
        let (key, public) = sa_keypair().unwrap();
        assert!(
            key.starts_with("-----BEGIN RSA PRIVATE KEY-----\n") && public.starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
    }

    /// A CA the simulator did not make: ECDSA in PKCS#8 as `kubewright certs init-ca` writes
    /// it, with a PrintableString subject as Go's crypto/x509 writes one.
    #[test]
    fn a_foreign_ecdsa_ca_signs_leaves_that_name_it_exactly() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::OrganizationName, DnValue::PrintableString("acme".try_into().unwrap()));
        params.distinguished_name.push(DnType::CommonName, "etcd-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = Pair { cert: params.self_signed(&key).unwrap().pem(), key: key.serialize_pem() };
        let leaf = new_leaf(&ca, &server_leaf(), NOW).unwrap();
        assert_eq!(issuer_and_aki(&leaf.cert), subject_and_ski(&ca.cert));
        assert_eq!(identity(&leaf.cert).unwrap().cn, "kube-apiserver");
    }
}
