#[test]
fn probe() {
    let f = "inventories/example.yaml";
    let text = std::fs::read_to_string(f).unwrap();
    let inv = kubewright::inventory::load(f, &text).unwrap().inventory;
    let t = kubewright::render::Templates::builtin();
    for h in [&inv.hosts[0], &inv.hosts[1], &inv.hosts[4]] {
        for file in t.render_host(&inv, h, &kubewright::render::Secrets::placeholders()).unwrap() {
            if matches!(file.kind, kubewright::render::FileKind::FlannelManifest) { continue; }
            println!("===== {} {} {:o}\n{}", h.name, file.path, file.mode, file.content);
        }
    }
}
