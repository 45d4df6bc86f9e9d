//! `local-api-proxy`: with `loadBalancer.type: local`, run the worker's API proxy (haproxy as
//! a static pod forwarding 127.0.0.1:6443 to every ready control plane) and point the
//! endpoint's name at it once it answers.
//!
//! It runs after the worker joined: `kubeadm join` refuses a non-empty manifests directory
//! (`DirAvailable--etc-kubernetes-manifests`), and the kubelet runs static pods only once it
//! has bootstrapped. The configuration lists the inventory's control planes, so adding one
//! rewrites it (and the manifest's config hash, which makes the kubelet restart the proxy).

use super::endpoint_name::{LOCAL_PROXY_ADDRESS, local_name, map_to};
use super::{Step, add_or_change, file_actions};
use crate::facts::HostFacts;
use crate::inventory::Host;
use crate::plan::{Action, Decision, PlanCx};
use crate::render::FileKind;

pub struct LocalApiProxy;

impl Step for LocalApiProxy {
    fn id(&self) -> &'static str {
        "local-api-proxy"
    }

    fn title(&self) -> &'static str {
        "Run the local API proxy on the workers"
    }

    fn plan(&self, cx: &PlanCx<'_>, host: &Host, facts: &HostFacts) -> Decision {
        let inv = cx.inventory;
        let Some(name) = local_name(inv) else {
            return Decision::Skip {
                reason: format!("the API endpoint {} is an external load balancer", inv.cluster.control_plane_endpoint),
            };
        };
        if host.is_control_plane() {
            return Decision::Skip { reason: "a control plane reaches its own API server".into() };
        }
        let mut actions =
            file_actions(cx, host, facts, |k| matches!(k, FileKind::ApiProxyConfig | FileKind::ApiProxyManifest));
        let mapping = match map_to(inv, host, facts, LOCAL_PROXY_ADDRESS) {
            Ok(m) => m,
            Err(problem) => return Decision::Blocked { problems: vec![problem] },
        };
        if actions.is_empty() && mapping.is_none() {
            return Decision::Skip {
                reason: format!("the proxy is configured for every control plane and {name} resolves to it"),
            };
        }
        let port = inv.cluster.control_plane_endpoint.port.to_string();
        let server = format!("https://{LOCAL_PROXY_ADDRESS}:{port}");
        // Through the proxy, with the certificate checked against the endpoint's name.
        actions.push(Action::Probe {
            description: format!("the local API proxy on {LOCAL_PROXY_ADDRESS}:{port} forwards to a ready API server"),
            commands: crate::kube::readyz_probe("/etc/kubernetes/kubelet.conf", &server, Some(name)),
            timeout_s: cx.ready_timeout_s(),
        });
        actions.extend(mapping);
        add_or_change(actions)
    }
}
