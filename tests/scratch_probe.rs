#[test]
fn probe() {
    for f in ["inventories/example.yaml", "inventories/single.yaml", "inventories/vagrant.yaml"] {
        let text = std::fs::read_to_string(f).unwrap();
        match kubewright::inventory::load(f, &text) {
            Ok(l) => { for w in l.warnings { println!("{w}"); } println!("{f}: ok"); }
            Err(e) => { println!("{e}"); for d in e.diagnostics { println!("{d}"); } }
        }
    }
    let bad = "cluster:\n  name: Bad_Name\n  kubernetesVerson: 1.31.4\n  kubernetesVersion: 1.27\n  network:\n    podSubnet: 10.96.0.0/16\n    serviceSubnet: 10.96.0.0/12\nssh:\n  port: 70000\nhosts:\n  - name: cp_1\n    address: 10.0.0.1\n    roles: [master]\n  - name: cp_1\n    address: 10.0.0.1\n    roles: [worker]\n    labels:\n      node-role.kubernetes.io/worker: ''\n";
    match kubewright::inventory::load("bad.yaml", bad) { Ok(_) => println!("bad ok?"), Err(e) => { println!("{e}"); for d in e.diagnostics { println!("{d}"); } } }
    match kubewright::inventory::load("syntax.yaml", "cluster: [\n") { Ok(_) => println!("?"), Err(e) => { for d in e.diagnostics { println!("{d}"); } } }
    match kubewright::inventory::load("type.yaml", "cluster:\n  name: [a, b]\n") { Ok(_) => println!("?"), Err(e) => { for d in e.diagnostics { println!("{d}"); } } }
    match kubewright::inventory::load("dup.yaml", "cluster:\n  name: a\n  name: b\n") { Ok(_) => println!("?"), Err(e) => { for d in e.diagnostics { println!("{d}"); } } }
    match kubewright::inventory::load("empty.yaml", "") { Ok(_) => println!("?"), Err(e) => { for d in e.diagnostics { println!("{d}"); } } }
}
