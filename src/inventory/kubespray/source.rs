//! What an Ansible inventory says, before and after Ansible's variable precedence: the
//! [`Source`] one inventory file declares (groups, their hosts and children, variables where
//! they were written), the `group_vars/` and `host_vars/` files beside it ([`VarFiles`]), and
//! the [`AnsibleView`] both readers end with: each host's effective variables and every group's
//! members, which is what `ansible-inventory --list` prints.
//!
//! The precedence is Ansible's (`VariableManager.get_vars`, default `VARIABLE_PRECEDENCE`), low
//! to high: the inventory file's `[all:vars]`, its other groups' vars (groups sorted by depth,
//! `ansible_group_priority`, name), `group_vars/all`, the other groups' `group_vars/` files (same
//! order), the host's own variables in the inventory file, `host_vars/HOST`. So a
//! `group_vars/all.yml` value beats a `[kube_node:vars]` one written in the inventory file.
//! Pure: the files are read by the caller.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::KubesprayError;

/// Variables by name, as Ansible holds them (strings, numbers, booleans, lists, mappings).
pub type Vars = serde_json::Map<String, Value>;

/// One group as an inventory file declares it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Group {
    /// Hosts listed in the group itself, in the order written.
    pub hosts: Vec<String>,
    /// Child groups, in the order written.
    pub children: Vec<String>,
    pub vars: Vars,
}

/// What inventory files declare: groups and hosts with the variables written beside them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    /// Every host, in the order first seen.
    pub hosts: Vec<String>,
    /// The variables written on each host's own line (or under it, in YAML).
    pub host_vars: BTreeMap<String, Vars>,
    pub groups: BTreeMap<String, Group>,
}

impl Source {
    /// Declare `group` (no change if it exists).
    pub fn add_group(&mut self, group: &str) {
        self.groups.entry(group.to_string()).or_default();
    }

    /// `host` in `group` (and declared), with `vars` set over what it had.
    pub fn add_host(&mut self, host: &str, group: &str, vars: Vars) {
        if !self.host_vars.contains_key(host) {
            self.hosts.push(host.to_string());
        }
        self.host_vars.entry(host.to_string()).or_default().extend(vars);
        let g = self.groups.entry(group.to_string()).or_default();
        if group != "all" && !g.hosts.iter().any(|h| h == host) {
            g.hosts.push(host.to_string());
        }
    }

    /// `child` becomes a child of `parent` (both declared).
    pub fn add_child(&mut self, parent: &str, child: &str) {
        self.add_group(child);
        let g = self.groups.entry(parent.to_string()).or_default();
        if !g.children.iter().any(|c| c == child) {
            g.children.push(child.to_string());
        }
    }

    /// Another inventory file's declarations on top of these (Ansible reads sources in order and
    /// merges them into one inventory).
    pub fn merge(&mut self, other: Source) {
        for host in &other.hosts {
            if !self.host_vars.contains_key(host) {
                self.hosts.push(host.clone());
            }
            let vars = other.host_vars.get(host).cloned().unwrap_or_default();
            self.host_vars.entry(host.clone()).or_default().extend(vars);
        }
        for (name, group) in other.groups {
            let mine = self.groups.entry(name).or_default();
            for h in group.hosts {
                if !mine.hosts.contains(&h) {
                    mine.hosts.push(h);
                }
            }
            for c in group.children {
                if !mine.children.contains(&c) {
                    mine.children.push(c);
                }
            }
            mine.vars.extend(group.vars);
        }
    }
}

/// kubespray's playbooks start with its `dynamic_groups` role
/// (`roles/dynamic_groups/tasks/main.yml`), which puts the hosts of `kube_control_plane`,
/// `kube_node` and `calico_rr` into `k8s_cluster` at run time; its sample inventory does not
/// declare `k8s_cluster` at all, yet keeps its cluster settings in `group_vars/k8s_cluster/`.
/// Declaring the group here makes those files apply, as they do when kubespray runs.
pub const KUBESPRAY_GROUPS_INI: &str = "\
# kubespray's dynamic_groups role (roles/dynamic_groups/tasks/main.yml) puts these groups' hosts
# into k8s_cluster when its playbooks run: declared here so that group_vars/k8s_cluster applies.
# Its legacy_groups playbook (2.16 to 2.22) put the hosts of the groups' names before 2.16 into
# the new groups the same way, so group_vars/kube_node and the like apply to them too (Ansible's
# INI wants a child group declared in the same file: the old names' sections are empty here).
[kube-master]
[kube-node]
[calico-rr]
[k8s-cluster]
[kube_control_plane:children]
kube-master
[kube_node:children]
kube-node
[calico_rr:children]
calico-rr
[k8s_cluster:children]
kube_control_plane
kube_node
calico_rr
k8s-cluster
";

/// The `group_vars/` and `host_vars/` files beside an inventory, read by the caller: each
/// path relative to the inventory's directory (`group_vars/k8s_cluster/k8s-cluster.yml`) with
/// its text.
#[derive(Debug, Clone, Default)]
pub struct VarFiles {
    pub files: Vec<(String, String)>,
    /// The inventory's directory as the user named it, for messages (`inventory/mycluster`).
    pub dir: String,
}

impl VarFiles {
    /// The files Ansible's `host_group_vars` plugin reads for `name` under `dir` (`group_vars`
    /// or `host_vars`), in the order it merges them: the first of `NAME`, `NAME.yml`,
    /// `NAME.yaml`, `NAME.json` that exists; a directory gives every file under it (sorted per
    /// level, hidden files and names ending in `~` skipped, extensions none, .yml, .yaml, .json).
    fn for_entity(&self, dir: &str, name: &str) -> Vec<&(String, String)> {
        let prefix = format!("{dir}/{name}");
        for candidate in [prefix.clone(), format!("{prefix}.yml"), format!("{prefix}.yaml"), format!("{prefix}.json")] {
            let as_dir = format!("{candidate}/");
            let mut under: Vec<&(String, String)> = self
                .files
                .iter()
                .filter(|(p, _)| {
                    p.strip_prefix(&as_dir).is_some_and(|rest| {
                        rest.split('/').all(|c| !c.starts_with('.') && !c.ends_with('~'))
                            && rest
                                .rsplit('/')
                                .next()
                                .is_some_and(|f| matches!(extension(f), "" | ".yml" | ".yaml" | ".json"))
                    })
                })
                .collect();
            if !under.is_empty() {
                under.sort_by(|a, b| a.0.split('/').cmp(b.0.split('/')));
                return under;
            }
            if let Some(file) = self.files.iter().find(|(p, _)| *p == candidate) {
                return vec![file];
            }
        }
        Vec::new()
    }

    /// The variables `group_vars/NAME` (or `host_vars/NAME`) gives, later files over earlier ones.
    fn vars(&self, dir: &str, name: &str) -> Result<Vars, KubesprayError> {
        let mut vars = Vars::new();
        for (path, text) in self.for_entity(dir, name) {
            let shown =
                if self.dir.is_empty() { path.clone() } else { format!("{}/{path}", self.dir.trim_end_matches('/')) };
            vars.extend(parse_vars_file(&shown, text)?);
        }
        Ok(vars)
    }
}

/// Python's `os.path.splitext(name)[1]`: `.yml` for `a.yml`, nothing for `.hidden` or `README`.
fn extension(name: &str) -> &str {
    let stem_start = name.len() - name.trim_start_matches('.').len();
    match name[stem_start..].rfind('.') {
        Some(i) => &name[stem_start + i..],
        None => "",
    }
}

/// One `group_vars`/`host_vars` file: a YAML (or JSON) mapping of variables; empty is none.
pub fn parse_vars_file(path: &str, text: &str) -> Result<Vars, KubesprayError> {
    if text.trim().is_empty() {
        return Ok(Vars::new());
    }
    let value: Value = serde_saphyr::from_str(text).map_err(|e| {
        KubesprayError::new(
            path,
            None,
            format!("not YAML: {e}"),
            "fix the file's YAML, or move it out of the directory",
        )
    })?;
    match value {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Vars::new()),
        other => Err(KubesprayError::new(
            path,
            None,
            format!("holds a {} where Ansible expects a mapping of variables", kind(&other)),
            "write it as `name: value` lines",
        )),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
    }
}

/// Groups and hosts as Ansible ends up seeing them: every group's direct hosts and children (in
/// the order written), and each host's effective variables. `ansible-inventory --list` prints
/// exactly this; the built-in reader computes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnsibleView {
    pub groups: BTreeMap<String, Group>,
    pub hosts: BTreeMap<String, Vars>,
}

impl AnsibleView {
    /// The hosts of `group` and of its descendants, in Ansible's order (`Group.get_hosts`: the
    /// group's own hosts, then each child's, depth first), each once.
    pub fn members(&self, group: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut seen_hosts = BTreeSet::new();
        let mut seen_groups = BTreeSet::new();
        self.collect_members(group, &mut out, &mut seen_hosts, &mut seen_groups);
        out
    }

    fn collect_members<'a>(
        &'a self,
        group: &str,
        out: &mut Vec<String>,
        seen_hosts: &mut BTreeSet<&'a str>,
        seen_groups: &mut BTreeSet<String>,
    ) {
        if !seen_groups.insert(group.to_string()) {
            return;
        }
        let Some(g) = self.groups.get(group) else { return };
        for h in &g.hosts {
            if seen_hosts.insert(h.as_str()) {
                out.push(h.clone());
            }
        }
        for c in &g.children {
            self.collect_members(c, out, seen_hosts, seen_groups);
        }
    }

    /// Every group `host` belongs to, directly or through a child group (`all` left out).
    pub fn groups_of(&self, host: &str) -> BTreeSet<String> {
        self.groups.keys().filter(|g| *g != "all" && self.members(g).iter().any(|h| h == host)).cloned().collect()
    }
}

/// Hosts and effective variables of `source` with the variable files beside it, as Ansible
/// computes them (see the module's documentation for the order).
pub fn resolve(mut source: Source, files: &VarFiles, source_name: &str) -> Result<AnsibleView, KubesprayError> {
    // Every group without a parent is a child of `all`; a host in no group is `ungrouped`.
    source.add_group("all");
    let grouped: BTreeSet<String> = source
        .groups
        .iter()
        .filter(|(name, _)| *name != "all" && *name != "ungrouped")
        .flat_map(|(_, g)| g.hosts.iter().cloned())
        .collect();
    for host in source.hosts.clone() {
        if !grouped.contains(&host) {
            source.add_host(&host, "ungrouped", Vars::new());
        }
    }
    if let Some(u) = source.groups.get_mut("ungrouped") {
        u.hosts.retain(|h| !grouped.contains(h));
    }
    let with_parent: BTreeSet<String> = source.groups.values().flat_map(|g| g.children.iter().cloned()).collect();
    let roots: Vec<String> =
        source.groups.keys().filter(|g| *g != "all" && !with_parent.contains(*g)).cloned().collect();
    for root in roots {
        source.add_child("all", &root);
    }
    let depth = depths(&source, source_name)?;
    let priority = |g: &str| -> i64 {
        source.groups.get(g).and_then(|g| g.vars.get("ansible_group_priority")).and_then(Value::as_i64).unwrap_or(1)
    };
    let parents = parents(&source);
    let mut group_file_vars: BTreeMap<String, Vars> = BTreeMap::new();
    for g in source.groups.keys() {
        group_file_vars.insert(g.clone(), files.vars("group_vars", g)?);
    }
    let mut direct: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, g) in &source.groups {
        for h in &g.hosts {
            direct.entry(h.as_str()).or_default().push(name.clone());
        }
    }
    let mut view = AnsibleView { groups: BTreeMap::new(), hosts: BTreeMap::new() };
    for host in &source.hosts {
        let mut groups: BTreeSet<String> = BTreeSet::new();
        let mut todo: Vec<String> = direct.get(host.as_str()).cloned().unwrap_or_default();
        while let Some(g) = todo.pop() {
            if groups.insert(g.clone()) {
                todo.extend(parents.get(&g).into_iter().flatten().cloned());
            }
        }
        groups.remove("all");
        let mut sorted: Vec<&String> = groups.iter().collect();
        sorted.sort_by_key(|g| (depth.get(*g).copied().unwrap_or(1), priority(g), (*g).clone()));
        let empty = Vars::new();
        let inventory_vars = |g: &str| source.groups.get(g).map_or(&empty, |g| &g.vars);
        let mut vars = inventory_vars("all").clone();
        for g in &sorted {
            vars.extend(inventory_vars(g).clone());
        }
        vars.extend(group_file_vars.get("all").cloned().unwrap_or_default());
        for g in &sorted {
            vars.extend(group_file_vars.get(*g).cloned().unwrap_or_default());
        }
        vars.extend(source.host_vars.get(host).cloned().unwrap_or_default());
        vars.extend(files.vars("host_vars", host)?);
        vars.remove("ansible_group_priority");
        view.hosts.insert(host.clone(), vars);
    }
    view.groups = source
        .groups
        .into_iter()
        .map(|(name, g)| (name, Group { hosts: g.hosts, children: g.children, vars: Vars::new() }))
        .collect();
    Ok(view)
}

fn parents(source: &Source) -> BTreeMap<String, Vec<String>> {
    let mut parents: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, g) in &source.groups {
        for c in &g.children {
            parents.entry(c.clone()).or_default().push(name.clone());
        }
    }
    parents
}

/// Each group's depth (`all` 0, its children 1, ...: the longest way down from `all`), as
/// Ansible's `Group.depth`; a group that is its own ancestor is refused, as Ansible does.
fn depths(source: &Source, source_name: &str) -> Result<BTreeMap<String, usize>, KubesprayError> {
    fn visit(
        source: &Source,
        group: &str,
        d: usize,
        path: &mut Vec<String>,
        depth: &mut BTreeMap<String, usize>,
        source_name: &str,
    ) -> Result<(), KubesprayError> {
        if path.iter().any(|p| p == group) {
            return Err(KubesprayError::new(
                source_name,
                None,
                format!("the group `{group}` is its own ancestor ({} -> {group})", path.join(" -> ")),
                "remove one of the :children entries that make the loop",
            ));
        }
        if depth.get(group).is_some_and(|&old| old >= d) && !path.is_empty() {
            return Ok(());
        }
        depth.insert(group.to_string(), d.max(depth.get(group).copied().unwrap_or(0)));
        path.push(group.to_string());
        if let Some(g) = source.groups.get(group) {
            for c in &g.children {
                visit(source, c, d + 1, path, depth, source_name)?;
            }
        }
        path.pop();
        Ok(())
    }
    let mut depth = BTreeMap::new();
    visit(source, "all", 0, &mut Vec::new(), &mut depth, source_name)?;
    // A group out of reach of `all` has a parent, and so on up: a loop with no way in.
    if let Some(lost) = source.groups.keys().find(|g| !depth.contains_key(*g)) {
        return Err(KubesprayError::new(
            source_name,
            None,
            format!("the group `{lost}` is its own ancestor (through its :children entries)"),
            "remove one of the :children entries that make the loop",
        ));
    }
    Ok(depth)
}

/// The same groups `dynamic_groups` makes when kubespray runs: [`KUBESPRAY_GROUPS_INI`].
pub fn add_kubespray_groups(source: &mut Source) {
    for (new, old) in LEGACY_GROUPS {
        source.add_child(new, old);
    }
    for g in ["kube_control_plane", "kube_node", "calico_rr", "k8s-cluster"] {
        source.add_child("k8s_cluster", g);
    }
}

/// kubespray's group names since 2.16, each with its name before (playbooks/legacy_groups.yml).
const LEGACY_GROUPS: [(&str, &str); 3] =
    [("kube_control_plane", "kube-master"), ("kube_node", "kube-node"), ("calico_rr", "calico-rr")];

/// Hosts of a YAML inventory (Ansible's `yaml` plugin): top-level groups (usually only `all`),
/// each a mapping of `hosts` (name or pattern to its variables), `vars` and `children`.
pub fn parse_yaml(path: &str, text: &str) -> Result<Source, KubesprayError> {
    let doc: Value = serde_saphyr::from_str(text).map_err(|e| {
        KubesprayError::new(path, None, format!("not YAML: {e}"), "fix the YAML, or give an INI inventory")
    })?;
    let Value::Object(top) = doc else {
        return Err(KubesprayError::new(
            path,
            None,
            "not a YAML inventory: the top level is not a mapping of groups",
            "give kubespray's hosts.yaml (`all:` with `hosts:` and `children:`) or an INI inventory",
        ));
    };
    let mut source = Source::default();
    fn group(source: &mut Source, name: &str, node: &Value, path: &str, depth: usize) -> Result<(), KubesprayError> {
        if depth > 64 {
            return Err(KubesprayError::new(
                path,
                None,
                format!("groups nest too deep at `{name}`"),
                "flatten the groups",
            ));
        }
        source.add_group(name);
        let map = match node {
            Value::Null => return Ok(()),
            Value::Object(m) => m,
            other => {
                return Err(KubesprayError::new(
                    path,
                    None,
                    format!("the group `{name}` is a {} where a mapping is expected", kind(other)),
                    "write the group as a mapping with `hosts:`, `vars:` and `children:`",
                ));
            }
        };
        match map.get("vars") {
            None | Some(Value::Null) => {}
            Some(Value::Object(vars)) => {
                if let Some(g) = source.groups.get_mut(name) {
                    g.vars.extend(vars.clone());
                }
            }
            Some(other) => {
                return Err(KubesprayError::new(
                    path,
                    None,
                    format!("`{name}.vars` is a {} where a mapping is expected", kind(other)),
                    "write the variables as `name: value` under `vars:`",
                ));
            }
        }
        match map.get("hosts") {
            None | Some(Value::Null) => {}
            Some(Value::Object(hosts)) => {
                for (pattern, vars) in hosts {
                    let (names, port) = super::ini::host_pattern(pattern).map_err(|e| {
                        KubesprayError::new(path, None, e, "write a host name or a range such as `node[1:3]`")
                    })?;
                    let mut vars = match vars {
                        Value::Null => Vars::new(),
                        Value::Object(v) => v.clone(),
                        other => {
                            return Err(KubesprayError::new(
                                path,
                                None,
                                format!(
                                    "the host `{pattern}` has a {} where a mapping of variables is expected",
                                    kind(other)
                                ),
                                "write the host's variables as `name: value` under it, or nothing",
                            ));
                        }
                    };
                    if let Some(port) = port {
                        vars.insert("ansible_port".into(), Value::from(port));
                    }
                    for n in names {
                        source.add_host(&n, name, vars.clone());
                    }
                }
            }
            Some(other) => {
                return Err(KubesprayError::new(
                    path,
                    None,
                    format!("`{name}.hosts` is a {} where a mapping is expected", kind(other)),
                    "list the hosts as keys of a mapping (`node1:`), not as a list",
                ));
            }
        }
        match map.get("children") {
            None | Some(Value::Null) => {}
            Some(Value::Object(children)) => {
                for (child, node) in children {
                    source.add_child(name, child);
                    group(source, child, node, path, depth + 1)?;
                }
            }
            Some(other) => {
                return Err(KubesprayError::new(
                    path,
                    None,
                    format!("`{name}.children` is a {} where a mapping is expected", kind(other)),
                    "list the child groups as keys of a mapping",
                ));
            }
        }
        Ok(())
    }
    for (name, node) in &top {
        group(&mut source, name, node, path, 0)?;
    }
    Ok(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Vars {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn group_vars_all_beats_a_child_groups_inventory_vars_and_host_vars_beat_everything() {
        let mut s = Source::default();
        s.add_host("w1", "kube_node", vars(json!({"own": "inventory-host"})));
        s.add_host("w2", "kube_node", Vars::new());
        s.groups.get_mut("kube_node").map(|g| g.vars.insert("v".into(), json!("child-inventory")));
        s.add_group("all");
        s.groups.get_mut("all").map(|g| g.vars.insert("v".into(), json!("all-inventory")));
        add_kubespray_groups(&mut s);
        let files = VarFiles {
            files: vec![
                ("group_vars/all.yml".into(), "v: all-file\nown: all-file\n".into()),
                ("group_vars/k8s_cluster/b.yml".into(), "k: b\n".into()),
                ("group_vars/k8s_cluster/a.yml".into(), "k: a\nz: a\n".into()),
                ("host_vars/w2.yaml".into(), "v: host-file\n".into()),
            ],
            dir: String::new(),
        };
        let view = resolve(s, &files, "inv").unwrap();
        assert_eq!(view.hosts["w1"]["v"], "all-file", "group_vars/all over [kube_node:vars]");
        assert_eq!(view.hosts["w1"]["own"], "inventory-host", "host vars over group files");
        assert_eq!(view.hosts["w1"]["k"], "b", "files of a group directory in sorted order");
        assert_eq!(view.hosts["w2"]["v"], "host-file");
        assert_eq!(view.groups_of("w1"), BTreeSet::from(["k8s_cluster".to_string(), "kube_node".to_string()]));
    }

    #[test]
    fn a_deeper_group_wins_then_the_later_name() {
        let mut s = Source::default();
        s.add_host("h", "b", Vars::new());
        s.add_host("h", "a", Vars::new());
        s.add_child("p", "b");
        for (g, v) in [("a", "a"), ("b", "b"), ("p", "p")] {
            s.groups.get_mut(g).map(|g| g.vars.insert("x".into(), json!(v)));
        }
        let view = resolve(s.clone(), &VarFiles::default(), "inv").unwrap();
        assert_eq!(view.hosts["h"]["x"], "b", "b is at depth 2");
        s.groups.get_mut("a").map(|g| g.vars.insert("ansible_group_priority".into(), json!(5)));
        s.add_child("q", "a");
        let view = resolve(s, &VarFiles::default(), "inv").unwrap();
        assert_eq!(view.hosts["h"]["x"], "a", "same depth: the higher priority");
    }

    #[test]
    fn a_directory_shadows_the_file_of_the_same_name_and_odd_files_are_skipped() {
        let files = VarFiles {
            files: vec![
                ("group_vars/all.yml".into(), "x: file\n".into()),
                ("group_vars/all/main.yml".into(), "x: dir\n".into()),
                ("group_vars/all/README.md".into(), "x: readme\n".into()),
                ("group_vars/all/.hidden.yml".into(), "x: hidden\n".into()),
                ("group_vars/all/z.yml~".into(), "x: backup\n".into()),
            ],
            dir: String::new(),
        };
        assert_eq!(files.vars("group_vars", "all").unwrap()["x"], "dir");
        let err = VarFiles { files: vec![("group_vars/all.yml".into(), "- a list\n".into())], dir: "inv".into() }
            .vars("group_vars", "all")
            .unwrap_err();
        assert!(err.to_string().contains("inv/group_vars/all.yml: holds a list"), "{err}");
    }

    #[test]
    fn yaml_1_1_booleans_are_booleans_as_in_ansibles_pyyaml() {
        // yes/on are booleans for PyYAML (YAML 1.1) and for serde-saphyr alike. Where they part:
        // a leading-zero number (`0644`), octal for PyYAML, is 644 here.
        let v = parse_vars_file("x.yml", "a: yes\nb: on\nc: no\nd: true\n").unwrap();
        assert_eq!(
            (&v["a"], &v["b"], &v["c"], &v["d"]),
            (&Value::Bool(true), &Value::Bool(true), &Value::Bool(false), &Value::Bool(true))
        );
    }

    #[test]
    fn group_loops_are_refused() {
        let mut s = Source::default();
        s.add_host("h", "a", Vars::new());
        s.add_child("a", "b");
        s.add_child("b", "a");
        s.add_child("top", "a");
        assert!(resolve(s, &VarFiles::default(), "inv").unwrap_err().to_string().contains("its own ancestor"));
    }

    #[test]
    fn yaml_inventories_expand_ranges_and_keep_group_vars() {
        let s = parse_yaml(
            "hosts.yaml",
            "all:\n  vars:\n    a: 1\n  children:\n    kube_node:\n      hosts:\n        w[1:2]:\n        x:2222:\n          ip: 10.0.0.1\n",
        )
        .unwrap();
        assert_eq!(s.hosts, ["w1", "w2", "x"]);
        assert_eq!(s.host_vars["x"]["ansible_port"], 2222);
        assert_eq!(s.groups["all"].vars["a"], 1);
        assert!(parse_yaml("h.yaml", "all:\n  hosts: [a, b]\n").unwrap_err().help.contains("not as a list"));
    }
}
