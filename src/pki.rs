//! Certificates kubewright reads from hosts.

use sha2::{Digest, Sha256};

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(ca_pin(b"not a certificate").unwrap_err().contains("PEM"));
    }
}
