//! What `ansible-inventory -i FILE --list` prints, read into an [`AnsibleView`]: every group
//! with its direct `hosts` and `children` (lists, in Ansible's order), and under
//! `_meta.hostvars` each host's variables after Ansible's precedence (a host without variables
//! is left out there). Without `--export`, groups carry no `vars`: they are merged into the
//! hosts'. Pure: running the program is the caller's.

use std::collections::BTreeMap;

use serde_json::Value;

use super::KubesprayError;
use super::source::{AnsibleView, Group, Vars};

/// The JSON `ansible-inventory --list` printed, as groups and hosts.
pub fn parse_list(text: &str) -> Result<AnsibleView, KubesprayError> {
    let bad = |message: String| {
        KubesprayError::new(
            "ansible-inventory --list",
            None,
            message,
            "run `ansible-inventory -i FILE --list` to see what it prints; or pass --reader builtin",
        )
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| bad(format!("printed something that is not JSON: {e}")))?;
    let Value::Object(top) = doc else {
        return Err(bad("printed JSON that is not a mapping of groups".into()));
    };
    let mut view = AnsibleView::default();
    let names = |v: Option<&Value>, what: &str, group: &str| -> Result<Vec<String>, KubesprayError> {
        match v {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(String::from).ok_or_else(|| bad(format!("`{group}.{what}` holds a non-name"))))
                .collect(),
            Some(_) => Err(bad(format!("`{group}.{what}` is not a list"))),
        }
    };
    for (name, node) in &top {
        if name == "_meta" {
            let Some(hostvars) = node.get("hostvars") else { continue };
            let Value::Object(hostvars) = hostvars else {
                return Err(bad("`_meta.hostvars` is not a mapping".into()));
            };
            for (host, vars) in hostvars {
                let vars: Vars = match vars {
                    Value::Object(v) => v.clone(),
                    Value::Null => Vars::new(),
                    _ => return Err(bad(format!("the variables of `{host}` are not a mapping"))),
                };
                view.hosts.insert(host.clone(), vars);
            }
            continue;
        }
        let group = Group {
            hosts: names(node.get("hosts"), "hosts", name)?,
            children: names(node.get("children"), "children", name)?,
            vars: Vars::new(),
        };
        view.groups.insert(name.clone(), group);
    }
    // Hosts without variables appear only in their groups.
    let listed: BTreeMap<String, ()> =
        view.groups.values().flat_map(|g| g.hosts.iter().map(|h| (h.clone(), ()))).collect();
    for host in listed.into_keys() {
        view.hosts.entry(host).or_default();
    }
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_hosts_and_hostvars_are_read() {
        let view = parse_list(
            r#"{"_meta": {"hostvars": {"n1": {"ansible_port": 2222}}, "profile": "inventory_legacy"},
                "all": {"children": ["ungrouped", "k8s_cluster"]},
                "k8s_cluster": {"children": ["kube_node"]},
                "kube_node": {"hosts": ["n1", "n2"]}}"#,
        )
        .unwrap();
        assert_eq!(view.hosts["n1"]["ansible_port"], 2222);
        assert!(view.hosts["n2"].is_empty(), "a host without variables");
        assert_eq!(view.members("all"), ["n1", "n2"]);
        assert!(view.groups_of("n2").contains("k8s_cluster"));
        assert!(parse_list("[WARNING]: oops").unwrap_err().to_string().contains("not JSON"));
        assert!(parse_list(r#"{"g": {"hosts": "n1"}}"#).unwrap_err().to_string().contains("not a list"));
    }
}
