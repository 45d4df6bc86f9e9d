//! Waiting for the cluster to reach a state: the probes a host runs and how their output is
//! judged. Pure apart from the scripts; the engine polls them.

use crate::script::Script;
use crate::ssh::Output;

pub use crate::etcd::{CRICTL_MISSING, etcd_probe};
pub use crate::kube::ADMIN_KUBECONFIG;

/// Every node, as JSON, through the control plane's admin kubeconfig.
pub fn nodes_probe() -> Script {
    Script::new().cmd([
        "kubectl",
        "--kubeconfig",
        ADMIN_KUBECONFIG,
        crate::kube::REQUEST_TIMEOUT,
        "get",
        "nodes",
        "-o",
        "json",
    ])
}

/// The kubeadm-config ConfigMap, as JSON, through the control plane's admin kubeconfig.
pub fn kubeadm_config_probe() -> Script {
    Script::new().cmd([
        "kubectl",
        "--kubeconfig",
        ADMIN_KUBECONFIG,
        crate::kube::REQUEST_TIMEOUT,
        "-n",
        "kube-system",
        "get",
        "configmap",
        "kubeadm-config",
        "-o",
        "json",
    ])
}

/// Whether every node in `wanted` is Ready with a kubelet at `version`; `Err` says what is
/// not there yet (the first few nodes).
pub fn judge_nodes(out: &Output, wanted: &[String], version: &str) -> Result<(), String> {
    if !out.success() {
        let why = out.stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("kubectl failed");
        return Err(format!("the API server does not answer yet: {}", why.trim()));
    }
    let doc: serde_json::Value =
        serde_json::from_str(&out.stdout).map_err(|e| format!("kubectl printed no node list ({e})"))?;
    let items = doc["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut waiting = Vec::new();
    for name in wanted {
        let Some(node) = items.iter().find(|n| n["metadata"]["name"].as_str() == Some(name.as_str())) else {
            waiting.push(format!("{name} has not registered"));
            continue;
        };
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        if ready["status"] != "True" {
            let message = ready["message"].as_str().unwrap_or("no Ready condition yet");
            waiting.push(format!("{name} is not Ready ({message})"));
            continue;
        }
        let kubelet = node["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or("unknown");
        if kubelet != version {
            waiting.push(format!("{name} runs kubelet {kubelet}, not {version}"));
        }
    }
    match waiting.len() {
        0 => Ok(()),
        n if n <= 3 => Err(waiting.join("; ")),
        n => Err(format!("{}; and {} more", waiting[..3].join("; "), n - 3)),
    }
}

/// Whether the local etcd member answered healthy.
pub fn judge_etcd(out: &Output) -> Result<(), String> {
    if out.success() {
        return Ok(());
    }
    let text = if out.stderr.trim().is_empty() { &out.stdout } else { &out.stderr };
    let why = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("etcdctl failed");
    Err(format!("etcd is not healthy yet: {}", why.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output { code: Some(code), stdout: stdout.into(), stderr: stderr.into() }
    }

    fn node(name: &str, ready: &str, kubelet: &str) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"name": name},
            "status": {
                "conditions": [
                    {"type": "MemoryPressure", "status": "False"},
                    {"type": "Ready", "status": ready, "message": "container runtime network not ready"},
                ],
                "nodeInfo": {"kubeletVersion": kubelet},
            },
        })
    }

    fn list(nodes: Vec<serde_json::Value>) -> String {
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": nodes}).to_string()
    }

    #[test]
    fn nodes_are_judged_on_presence_readiness_and_kubelet_version() {
        let wanted = ["cp1".to_string(), "w1".to_string()];
        let all_ready = list(vec![node("cp1", "True", "v1.31.4"), node("w1", "True", "v1.31.4")]);
        assert_eq!(judge_nodes(&output(0, &all_ready, ""), &wanted, "v1.31.4"), Ok(()));

        let one_missing = list(vec![node("cp1", "True", "v1.31.4")]);
        assert_eq!(judge_nodes(&output(0, &one_missing, ""), &wanted, "v1.31.4"), Err("w1 has not registered".into()));

        let not_ready = list(vec![node("cp1", "False", "v1.31.4"), node("w1", "True", "v1.30.8")]);
        assert_eq!(
            judge_nodes(&output(0, &not_ready, ""), &wanted, "v1.31.4"),
            Err("cp1 is not Ready (container runtime network not ready); w1 runs kubelet v1.30.8, not v1.31.4".into())
        );
    }

    #[test]
    fn an_api_server_that_does_not_answer_is_not_ready_yet_with_kubectls_reason() {
        let refused = output(
            1,
            "",
            "The connection to the server 10.0.0.10:6443 was refused - did you specify the right host or port?\n",
        );
        let why = judge_nodes(&refused, &["cp1".into()], "v1.31.4").unwrap_err();
        assert!(why.contains("was refused"), "{why}");
        assert!(judge_nodes(&output(0, "not json", ""), &["cp1".into()], "v1.31.4").is_err());
    }

    #[test]
    fn etcd_health_is_the_exit_code_with_etcdctls_message() {
        // etcdctl prints a healthy endpoint on stdout, an unhealthy one on stderr (printer_simple.go).
        assert_eq!(judge_etcd(&output(0, "127.0.0.1:2379 is healthy: successfully committed proposal", "")), Ok(()));
        let why = judge_etcd(&output(
            1,
            "",
            "127.0.0.1:2379 is unhealthy: failed to commit proposal\nError: unhealthy cluster\n",
        ))
        .unwrap_err();
        assert_eq!(why, "etcd is not healthy yet: 127.0.0.1:2379 is unhealthy: failed to commit proposal");
    }
}
