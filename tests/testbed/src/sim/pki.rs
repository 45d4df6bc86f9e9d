//! Real X.509 material as kubeadm writes it (kubeadm-behaviour.md §3.1): CAs for 10 years
//! from 5 minutes ago, leaves for 1 year with the CA's NotBefore, RSA 2048 keys written as
//! PKCS#1 `RSA PRIVATE KEY`, and kubeconfigs with embedded client certificates.

use std::net::IpAddr;
use std::path::Path;

use anyhow::Context;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

pub const YEAR: i64 = 365 * 86_400;

/// A certificate and its key, PEM.
pub struct Pair {
    pub cert: String,
    pub key: String,
}

fn time_at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn rsa_key() -> anyhow::Result<KeyPair> {
    Ok(KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)?)
}

/// PKCS#8 → PKCS#1 for RSA keys: kubeadm writes `RSA PRIVATE KEY` blocks.
fn rsa_pkcs1_pem(key: &KeyPair) -> anyhow::Result<String> {
    let der = key.serialize_der();
    // PrivateKeyInfo ::= SEQUENCE { INTEGER 0, AlgorithmIdentifier, OCTET STRING privateKey }
    let inner = pkcs8_private_key(&der).context("cannot unwrap the PKCS#8 key")?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(inner);
    let mut out = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END RSA PRIVATE KEY-----\n");
    Ok(out)
}

fn der_len(bytes: &[u8], at: usize) -> Option<(usize, usize)> {
    let first = *bytes.get(at)?;
    if first < 0x80 {
        return Some((first as usize, 1));
    }
    let n = (first & 0x7f) as usize;
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *bytes.get(at + 1 + i)? as usize;
    }
    Some((len, 1 + n))
}

fn pkcs8_private_key(der: &[u8]) -> Option<&[u8]> {
    // outer SEQUENCE
    let (_, l0) = der_len(der, 1)?;
    let mut pos = 1 + l0;
    for _ in 0..2 {
        // skip INTEGER version, then the AlgorithmIdentifier SEQUENCE
        let (len, l) = der_len(der, pos + 1)?;
        pos += 1 + l + len;
    }
    if *der.get(pos)? != 0x04 {
        return None;
    }
    let (len, l) = der_len(der, pos + 1)?;
    der.get(pos + 1 + l..pos + 1 + l + len)
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
    let key = rsa_key()?;
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
    let cert = params.self_signed(&key)?;
    Ok(Pair { cert: cert.pem(), key: rsa_pkcs1_pem(&key)? })
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
    let ca_key = KeyPair::from_pem(&ca.key).context("cannot load the CA key")?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).context("cannot load the CA certificate")?;
    let key = if leaf.ecdsa { KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)? } else { rsa_key()? };
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
    let key_pem = if leaf.ecdsa { ec_pem(&key) } else { rsa_pkcs1_pem(&key)? };
    Ok(Pair { cert: cert.pem(), key: key_pem })
}

fn ec_pem(key: &KeyPair) -> String {
    key.serialize_pem()
}

/// The service-account signing key pair (`sa.key`, `sa.pub`).
pub fn sa_keypair() -> anyhow::Result<(String, String)> {
    let key = rsa_key()?;
    Ok((rsa_pkcs1_pem(&key)?, key.public_key_pem()))
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
    let line = text.lines().find(|l| l.trim_start().starts_with("client-certificate-data:"))?;
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
