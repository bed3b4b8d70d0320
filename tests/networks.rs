//! libvirt networks (`networks:`) against the real libvirtd: define, update, autostart,
//! convergence, a running network's restart-only changes (naming its running guests), a
//! bridge network on a host bridge, and saved plans. Every test uses its own network
//! `kvmtune-it-<test>-<pid>` and bridge `kt<tag><pid>`, and removes them (and only them).

mod common;

use common::*;
use kvmtune::plan::Effect;

/// A throw-away network name (and bridge device name) for one test; Drop destroys and
/// undefines the network and deletes the bridge device when the test created one.
struct Net {
    name: String,
    bridge: String,
    host_bridge: bool,
}

impl Net {
    fn new(test: &str, tag: &str) -> Net {
        drop(hv(true));
        let pid = std::process::id() % 100_000;
        let net = Net {
            name: format!("kvmtune-it-{test}-{}", std::process::id()),
            bridge: format!("kt{tag}{pid}"),
            host_bridge: false,
        };
        net.remove();
        net
    }

    fn remove(&self) {
        let _ = virsh(&["net-destroy", &self.name]);
        let _ = virsh(&["net-undefine", &self.name]);
    }

    fn exists(&self) -> bool {
        virsh(&["net-uuid", &self.name]).status.success()
    }

    fn xml(&self) -> String {
        virsh_ok(&["net-dumpxml", "--inactive", &self.name])
    }

    fn autostart(&self) -> bool {
        let info = virsh_ok(&["net-info", &self.name]);
        info.lines()
            .any(|l| l.starts_with("Autostart:") && l.trim_end().ends_with("yes"))
    }

    /// Defines the network with `body` (elements after `<name>`) behind kvmtune's back.
    fn define_with_virsh(&self, body: &str) {
        let file = std::env::temp_dir().join(format!("{}.xml", self.name));
        std::fs::write(
            &file,
            format!("<network><name>{}</name>{body}</network>", self.name),
        )
        .unwrap();
        virsh_ok(&["net-define", file.to_str().unwrap()]);
        let _ = std::fs::remove_file(&file);
    }

    fn create_host_bridge(&mut self) {
        let out = std::process::Command::new("ip")
            .args(["link", "add", "name", &self.bridge, "type", "bridge"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.host_bridge = true;
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.remove();
        if self.host_bridge {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &self.bridge])
                .output();
        }
    }
}

fn uuid(xml: &str) -> String {
    let s = xml.find("<uuid>").unwrap() + 6;
    xml[s..s + 36].to_string()
}

#[test]
fn a_network_is_defined_updated_and_autostarted_and_converges() {
    let net = Net::new("define", "d");
    let yaml = |mtu: u32| {
        format!(
            "networks:\n  {}: {{ bridge: {}, forward: isolated, mtu: {mtu}, autostart: true }}\n",
            net.name, net.bridge
        )
    };
    let (p, report) = assert_converges(&yaml(9000));
    let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["bridge", "mtu", "autostart"], "{:#?}", p.changes);
    assert_eq!(report.defines, 1);
    let xml = net.xml();
    assert!(xml.contains("<mtu size='9000'/>"), "{xml}");
    assert!(
        xml.contains(&format!("<bridge name='{}'", net.bridge)),
        "{xml}"
    );
    assert!(!xml.contains("<forward"), "isolated: {xml}");
    assert!(net.autostart());
    let id = uuid(&xml);

    // An update changes the declared element only: the UUID and libvirt's MAC stay.
    let p = plan_yaml(&yaml(1400));
    assert_eq!(p.changes.len(), 1, "{:#?}", p.changes);
    assert_eq!(
        (p.changes[0].path.as_str(), p.changes[0].before.as_deref()),
        ("mtu", Some("9000"))
    );
    assert_eq!(p.changes[0].effect, Effect::Live, "an inactive network");
    let mac_line = xml
        .lines()
        .find(|l| l.contains("<mac "))
        .unwrap()
        .to_string();
    assert_converges(&yaml(1400));
    let after = net.xml();
    assert!(after.contains("<mtu size='1400'/>"), "{after}");
    assert_eq!(uuid(&after), id);
    assert!(after.contains(&mac_line), "{after}");
}

#[test]
fn an_existing_networks_undeclared_elements_are_kept() {
    let net = Net::new("keep", "k");
    net.define_with_virsh(&format!(
        "<forward mode='nat'/><bridge name='{}'/><ip address='192.168.233.1' netmask='255.255.255.0'><dhcp><range start='192.168.233.10' end='192.168.233.20'/></dhcp></ip>",
        net.bridge
    ));
    let before = net.xml();
    // The same meaning written differently (prefix vs netmask, forward given): nothing to do.
    let same = format!(
        "networks:\n  {}: {{ forward: nat, ip: 192.168.233.1/24, bridge: {} }}\n",
        net.name, net.bridge
    );
    let p = plan_yaml(&same);
    assert!(
        p.is_empty() && !p.has_errors(),
        "{:#?} {:#?}",
        p.changes,
        p.errors
    );
    let yaml = format!("networks:\n  {}: {{ mtu: 9000 }}\n", net.name);
    assert_converges(&yaml);
    let after = net.xml();
    assert!(
        after.contains("<range start='192.168.233.10' end='192.168.233.20'/>"),
        "{after}"
    );
    assert!(after.contains("<forward mode='nat'/>"), "{after}");
    assert_eq!(uuid(&after), uuid(&before));
    assert!(!net.autostart(), "autostart not declared: untouched");
}

#[test]
fn a_running_networks_change_waits_for_its_restart_and_names_its_running_guests() {
    let net = Net::new("running", "r");
    net.define_with_virsh(&format!(
        "<bridge name='{}'/><mtu size='1500'/>",
        net.bridge
    ));
    virsh_ok(&["net-start", &net.name]);
    let g = Guest::define(
        "netuser",
        Spec {
            devices_extra: format!(
                "<interface type='network'><source network='{}'/><mac address='52:54:00:7a:00:01'/></interface>",
                net.name
            ),
            ..Spec::default()
        },
    );
    g.start();
    let yaml = format!("networks:\n  {}: {{ mtu: 9000 }}\n", net.name);
    let p = plan_yaml(&yaml);
    assert_eq!(p.changes.len(), 1, "{:#?}", p.changes);
    assert_eq!(p.changes[0].effect, Effect::Restart);
    assert_eq!(p.pending_restart.len(), 1);
    let note = p
        .notes
        .iter()
        .find(|n| n.contains(&net.name))
        .expect("a note");
    assert!(note.contains(g.name()), "{note}");
    assert!(note.contains("does not do"), "{note}");
    let (_, report) = apply_desired(&load(&yaml));
    assert!(report.ok(), "{report:#?}");
    // Defined, not restarted: the running network keeps its MTU; the guest still runs.
    assert!(net.xml().contains("<mtu size='9000'/>"));
    let live = virsh_ok(&["net-dumpxml", &net.name]);
    assert!(live.contains("<mtu size='1500'/>"), "{live}");
    assert!(g.is_running());
    // The persistent definition is as declared: nothing more to plan.
    let again = plan_yaml(&yaml);
    assert!(again.is_empty(), "{:#?}", again.changes);
    g.destroy();
}

#[test]
fn a_bridge_network_on_a_host_bridge() {
    let mut net = Net::new("bridge", "b");
    net.create_host_bridge();
    let yaml = format!(
        "networks:\n  {}: {{ forward: bridge, bridge: {}, autostart: false }}\n",
        net.name, net.bridge
    );
    assert_converges(&yaml);
    let xml = net.xml();
    assert!(xml.contains("<forward mode='bridge'/>"), "{xml}");
    // libvirt can start it: the bridge exists.
    virsh_ok(&["net-start", &net.name]);
    assert!(plan_yaml(&yaml).is_empty());
}

#[test]
fn a_saved_network_plan_applies_and_a_stale_one_is_refused() {
    let net = Net::new("saved", "s");
    let dir = tempfile::tempdir().unwrap();
    let root = empty_root();
    let cfg = dir.path().join("net.yaml");
    std::fs::write(
        &cfg,
        format!(
            "networks:\n  {}: {{ bridge: {}, mtu: 9000 }}\n",
            net.name, net.bridge
        ),
    )
    .unwrap();
    let (cfg, plan) = (
        cfg.display().to_string(),
        dir.path().join("plan.json").display().to_string(),
    );
    let o = kvmtune(root.path(), &["plan", &cfg, "--out", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // Someone defines the network behind kvmtune's back: the saved plan is stale.
    net.define_with_virsh("<mtu size='1400'/>");
    let o = kvmtune(root.path(), &["apply", &plan]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(stderr(&o).contains("stale plan"), "{}", describe(&o));
    assert!(net.xml().contains("<mtu size='1400'/>"), "untouched");
    let o = kvmtune(root.path(), &["plan", &cfg, "--out", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kvmtune(root.path(), &["apply", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(net.xml().contains("<mtu size='9000'/>"));
    let o = kvmtune(root.path(), &["plan", &cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(net.exists());
}

/// `(net, guest)` YAML re-pointing the interface `mac` of guest `g` to network `to`.
fn repoint_yaml(g: &str, mac: &str, to: &str) -> String {
    format!("guests:\n  {g}:\n    interfaces: {{ \"{mac}\": {{ network: {to} }} }}\n")
}

#[test]
fn a_defined_guests_nic_is_re_pointed_to_a_network() {
    let net = Net::new("repoint", "p");
    let yaml = format!(
        "networks:\n  {}: {{ bridge: {}, forward: isolated }}\n",
        net.name, net.bridge
    );
    assert_converges(&yaml);
    let mac = "52:54:00:7a:00:02";
    let g = Guest::define(
        "repoint",
        Spec {
            devices_extra: format!(
                "<interface type='user'><mac address='{mac}'/><model type='virtio'/></interface>"
            ),
            ..Spec::default()
        },
    );
    let both = format!("{yaml}{}", repoint_yaml(g.name(), mac, &net.name));
    let (p, _) = assert_converges(&both);
    let c = p
        .changes
        .iter()
        .find(|c| c.path == format!("interfaces.{mac}.network"))
        .expect("the re-point is planned");
    assert_eq!(c.before.as_deref(), Some("(type user)"));
    let xml = g.inactive_xml();
    let doc = kvmtune::xmltree::Document::parse(&xml).unwrap();
    let devs = doc.child(doc.root(), "devices").unwrap();
    let nic = doc
        .children_named(devs, "interface")
        .into_iter()
        .find(|&i| xml_mac(&doc, i).as_deref() == Some(mac))
        .unwrap();
    assert_eq!(doc.attr(nic, "type").as_deref(), Some("network"));
    let src = doc.child(nic, "source").unwrap();
    assert_eq!(doc.attr(src, "network").as_deref(), Some(net.name.as_str()));
    let model = doc.child(nic, "model").unwrap();
    assert_eq!(doc.attr(model, "type").as_deref(), Some("virtio"), "kept");
    drop(g);
}

fn xml_mac(doc: &kvmtune::xmltree::Document, nic: kvmtune::xmltree::NodeId) -> Option<String> {
    doc.child(nic, "mac").and_then(|m| doc.attr(m, "address"))
}

#[test]
fn a_running_guests_nic_is_re_pointed_live() {
    let from = Net::new("livefrom", "f");
    let to = Net::new("liveto", "t");
    for n in [&from, &to] {
        n.define_with_virsh(&format!("<bridge name='{}'/>", n.bridge));
        virsh_ok(&["net-start", &n.name]);
    }
    let mac = "52:54:00:7a:00:03";
    let g = Guest::define(
        "repointlive",
        Spec {
            devices_extra: format!(
                "<interface type='network'><source network='{}'/><mac address='{mac}'/><model type='virtio'/></interface>",
                from.name
            ),
            ..Spec::default()
        },
    );
    g.start();
    let yaml = repoint_yaml(g.name(), mac, &to.name);
    let p = plan_yaml(&yaml);
    assert_eq!(p.changes.len(), 1, "{:#?}", p.changes);
    assert_eq!(p.changes[0].effect, Effect::Live);
    let (_, report) = apply_desired(&load(&yaml));
    assert!(report.ok(), "{report:#?}");
    assert_eq!(report.live_changes, 1);
    assert!(report.results[0].deferred.is_empty(), "{report:#?}");
    let live = g.live_xml();
    assert!(live.contains(&format!("network='{}'", to.name)), "{live}");
    assert!(live.contains(&format!("bridge='{}'", to.bridge)), "{live}");
    assert!(g.is_running());
    let again = plan_yaml(&yaml);
    assert!(
        again.is_empty() && again.pending_restart.is_empty(),
        "{again:#?}"
    );
    g.destroy();
}

#[test]
fn an_sriov_vf_pool_is_defined_with_its_pf() {
    let net = Net::new("vfpool", "v");
    // libvirt checks the PF when the network starts, not at define: no device is needed.
    let yaml = format!(
        "networks:\n  {}: {{ forward: hostdev, pf: ktnopf0 }}\n",
        net.name
    );
    assert_converges(&yaml);
    let xml = net.xml();
    assert!(
        xml.contains("<forward mode='hostdev' managed='yes'>"),
        "{xml}"
    );
    assert!(xml.contains("<pf dev='ktnopf0'/>"), "{xml}");
}
