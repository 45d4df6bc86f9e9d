//! Kubeconfigs fetched to the bastion: pointing them at an address the bastion can reach.
//!
//! kubeadm writes `admin.conf` with `server: https://<controlPlaneEndpoint>`. With the local
//! load balancer that endpoint is a name only the nodes resolve, so the bastion's copy names a
//! control plane's address instead and keeps the endpoint's name for the certificate check
//! (`tls-server-name`, which kubectl has read since 1.19).

use crate::plan::KubeconfigServer;

/// `text` (a kubeconfig as kubeadm writes it) with every cluster's `server:` replaced by
/// `target.server` and a `tls-server-name:` beside it.
pub fn point_at(text: &str, target: &KubeconfigServer) -> Result<String, String> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut replaced = 0;
    for line in text.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if trimmed.starts_with("tls-server-name:") {
            // Written again below, next to the server it belongs to.
            continue;
        }
        if trimmed.starts_with("server:") {
            out.push_str(&format!("{indent}server: {}\n", target.server));
            out.push_str(&format!("{indent}tls-server-name: {}\n", target.tls_server_name));
            replaced += 1;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if replaced == 0 {
        return Err("the kubeconfig names no `server:`".into());
    }
    Ok(out)
}

/// The client certificate a kubeconfig embeds (`client-certificate-data`), if it has one that
/// parses.
pub fn client_certificate(text: &str) -> Option<crate::pki::Certificate> {
    use base64::Engine as _;
    let data = text.lines().find_map(|l| l.trim().strip_prefix("client-certificate-data:"))?;
    let pem = base64::engine::general_purpose::STANDARD.decode(data.trim()).ok()?;
    crate::pki::inspect(&pem).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADMIN_CONF: &str = "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: LS0t\n    server: https://api.prod.internal:6443\n  name: prod\ncontexts:\n- context:\n    cluster: prod\n    user: kubernetes-admin\n  name: kubernetes-admin@prod\n";

    fn target() -> KubeconfigServer {
        KubeconfigServer { server: "https://10.0.0.11:6443".into(), tls_server_name: "api.prod.internal".into() }
    }

    #[test]
    fn the_server_becomes_an_address_and_the_name_stays_for_the_certificate() {
        let out = point_at(ADMIN_CONF, &target()).unwrap();
        assert!(
            out.contains("\n    server: https://10.0.0.11:6443\n    tls-server-name: api.prod.internal\n"),
            "{out}"
        );
        assert!(out.contains("certificate-authority-data: LS0t") && out.contains("user: kubernetes-admin"));
        assert_eq!(point_at(&out, &target()).unwrap(), out, "pointing again changes nothing");
    }

    #[test]
    fn a_file_without_a_server_is_refused() {
        assert!(point_at("apiVersion: v1\nkind: Config\n", &target()).is_err());
    }
}
