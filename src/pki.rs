//! Certificates kubewright reads from hosts.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use x509_parser::extensions::{GeneralName, ParsedExtension};

/// What kubewright needs to know of a certificate: who it is for and by, when it is valid,
/// the names it covers, and its key (for matching a leaf to its CA and to its private key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// The subject's common name (`kube-apiserver`), or the whole subject when it has none.
    pub subject: String,
    pub issuer: String,
    /// Validity, in seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<String>,
    /// Hex SHA-256 of the SubjectPublicKeyInfo.
    pub public_key_sha256: String,
    /// The CA certificate (a path on the same host) whose key signed this one; None when no CA
    /// there did. Set by whoever sees the CAs (the facts parser).
    #[serde(default)]
    pub signed_by: Option<String>,
    /// Whether the private key beside it (`.key`) is this certificate's; None: not checked.
    #[serde(default)]
    pub key_matches: Option<bool>,
}

/// The key type of the CAs kubewright makes (`certificates.caKeyType`). ring, which signs for
/// rcgen here, makes ECDSA keys only; kubeadm signs its RSA leaves with an ECDSA CA as well.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
}

impl KeyType {
    fn algorithm(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::EcdsaP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

/// A certificate and its private key, both PEM.
pub struct Pair {
    pub cert: String,
    pub key: String,
}

/// A self-signed CA named `common_name`, valid from `now` (less 5 minutes, for clocks a little
/// behind) for `validity_s`, with kubeadm's key usages.
pub fn generate_ca(common_name: &str, key_type: KeyType, validity_s: u64, now: i64) -> Result<Pair, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate_for(key_type.algorithm()).map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages =
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment, KeyUsagePurpose::KeyCertSign];
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).map_err(|e| format!("{t} is not a time: {e}"));
    params.not_before = at(now - 300)?;
    params.not_after = at(now.saturating_add(i64::try_from(validity_s).unwrap_or(i64::MAX / 2)))?;
    // No serial given: rcgen derives it from the new key, unique as the key is.
    let cert = params.self_signed(&key).map_err(|e| format!("cannot sign the CA: {e}"))?;
    Ok(Pair { cert: cert.pem(), key: key.serialize_pem() })
}

/// The service-account token signing key pair (`sa.key`, `sa.pub`: PKCS#8 and SPKI PEM).
pub fn generate_service_account_keys(key_type: KeyType) -> Result<(String, String), String> {
    let key = rcgen::KeyPair::generate_for(key_type.algorithm()).map_err(|e| format!("cannot make a key: {e}"))?;
    Ok((key.serialize_pem(), key.public_key_pem()))
}

/// Whether `ca_pem`'s key signed `cert_pem` (the signature checks out with its public key).
pub fn signed_by(cert_pem: &[u8], ca_pem: &[u8]) -> bool {
    let parse = |pem: &[u8]| x509_parser::pem::parse_x509_pem(pem).ok().map(|(_, p)| p);
    let (Some(cert), Some(ca)) = (parse(cert_pem), parse(ca_pem)) else { return false };
    let (Ok(cert), Ok(ca)) = (cert.parse_x509(), ca.parse_x509()) else { return false };
    cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// The first certificate of a PEM text.
pub fn inspect(pem: &[u8]) -> Result<Certificate, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let name = |n: &x509_parser::x509::X509Name<'_>| {
        n.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map_or_else(|| n.to_string(), str::to_string)
    };
    let (mut dns_names, mut ip_addresses) = (Vec::new(), Vec::new());
    let mut is_ca = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for n in &san.general_names {
                    match n {
                        GeneralName::DNSName(d) => dns_names.push(d.to_string()),
                        GeneralName::IPAddress(b) => ip_addresses.extend(ip_text(b)),
                        _ => {}
                    }
                }
            }
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            _ => {}
        }
    }
    Ok(Certificate {
        subject: name(cert.subject()),
        issuer: name(cert.issuer()),
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca,
        dns_names,
        ip_addresses,
        public_key_sha256: hex_lower(&Sha256::digest(cert.public_key().raw)),
        signed_by: None,
        key_matches: None,
    })
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => Some(std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string()),
        16 => <[u8; 16]>::try_from(bytes).ok().map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

/// kubeadm's pin of a CA: `sha256:` and the hex SHA-256 of the certificate's
/// SubjectPublicKeyInfo (k/k cmd/kubeadm/app/util/pubkeypin/pubkeypin.go `Hash`).
pub fn ca_pin(pem: &[u8]) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(format!("sha256:{}", hex_lower(&Sha256::digest(cert.public_key().raw))))
}

/// Bytes as lowercase hex, the form kubeadm prints hashes and keys in.
pub fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `data`, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    hex_lower(&Sha256::digest(data))
}

/// A file of the cluster's CA set, as `certs init-ca` writes it under the state directory's
/// `pki/`.
#[derive(Debug, Clone)]
pub struct CaFile {
    /// Its name under `pki/` (`etcd/ca.key`), kubeadm's.
    pub name: String,
    pub content: String,
    /// 0600 for keys, 0644 for certificates and the public key.
    pub mode: u32,
}

/// The cluster's three CAs (kubeadm's file names and the subjects it gives its own: `ca`
/// `kubernetes`, `etcd/ca` `etcd-ca`, `front-proxy-ca`) and its service-account key pair, of
/// `key_type`, valid `validity_s` from `now`. The cluster CA comes first.
pub fn cluster_ca_set(key_type: KeyType, validity_s: u64, now: i64) -> Result<Vec<CaFile>, String> {
    let mut files = Vec::new();
    for (file, common_name) in [("ca", "kubernetes"), ("etcd/ca", "etcd-ca"), ("front-proxy-ca", "front-proxy-ca")] {
        let pair = generate_ca(common_name, key_type, validity_s, now)
            .map_err(|e| format!("cannot make the {file} CA: {e}"))?;
        files.push(CaFile { name: format!("{file}.crt"), content: pair.cert, mode: 0o644 });
        files.push(CaFile { name: format!("{file}.key"), content: pair.key, mode: 0o600 });
    }
    let (sa_key, sa_pub) =
        generate_service_account_keys(key_type).map_err(|e| format!("cannot make the service-account keys: {e}"))?;
    files.push(CaFile { name: "sa.key".into(), content: sa_key, mode: 0o600 });
    files.push(CaFile { name: "sa.pub".into(), content: sa_pub, mode: 0o644 });
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_is_signed_by_its_ca_and_not_by_another() {
        let ca = include_bytes!("../tests/fixtures/ca.crt");
        let leaf = include_bytes!("../tests/fixtures/leaf-signed-by-ca.crt");
        let other = include_bytes!("../tests/fixtures/apiserver.crt");
        assert!(signed_by(leaf, ca));
        assert!(!signed_by(other, ca));
        assert!(!signed_by(leaf, other));
        assert!(inspect(ca).unwrap().is_ca);
    }

    #[test]
    fn a_generated_ca_is_a_ca_for_its_validity_and_signs_itself() {
        let ca = generate_ca("kubernetes", KeyType::EcdsaP256, 10 * 365 * 86_400, 1_795_000_000).unwrap();
        let c = inspect(ca.cert.as_bytes()).unwrap();
        assert!(c.is_ca && c.subject == "kubernetes");
        assert_eq!((c.not_before, c.not_after), (1_795_000_000 - 300, 1_795_000_000 + 10 * 365 * 86_400));
        assert!(signed_by(ca.cert.as_bytes(), ca.cert.as_bytes()));
        assert!(ca.key.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(ca_pin(ca.cert.as_bytes()).unwrap().starts_with("sha256:"));
        let (key, public) = generate_service_account_keys(KeyType::EcdsaP384).unwrap();
        assert!(key.contains("PRIVATE KEY") && public.starts_with("-----BEGIN PUBLIC KEY-----"));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(ca_pin(b"not a certificate").unwrap_err().contains("PEM"));
    }
}
