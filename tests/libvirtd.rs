//! Integration tests against a real libvirtd (`$KVMTUNE_TEST_URI`, default `qemu:///system`).
//!
//! Every test defines its own throw-away guests (`kvmtune-it-<test>-<pid>`) through the
//! [`common::Guest`] guard, which destroys and undefines them on drop, also when the test
//! fails. The tests fail (never skip) when libvirtd is unreachable: run scripts/env-up.sh.

mod common;

use common::*;
use kvmtune::plan::Effect;

fn paths(p: &kvmtune::plan::Plan) -> Vec<&str> {
    p.changes.iter().map(|c| c.path.as_str()).collect()
}

/// The first `(attr)` of the first element `name`.
fn first_attr(xml: &str, name: &str, attr: &str) -> Option<String> {
    attr_values(xml, name, attr).into_iter().next()
}

fn text_of(xml: &str, path: &[&str]) -> Option<String> {
    let doc = kvmtune::xmltree::Document::parse(xml).unwrap();
    let mut n = doc.root();
    for p in path {
        n = doc.child(n, p)?;
    }
    Some(doc.text(n))
}

// ------------------------------------------------------------------------ fixture --

#[test]
fn fixture_guard_cleans_up_even_when_the_test_panics() {
    let name = Guest::name_for("fixture");
    let image = std::env::temp_dir().join(format!("{name}.qcow2"));
    let result = std::panic::catch_unwind(|| {
        let g = Guest::define("fixture", Spec::default());
        assert!(domain_exists(g.name()));
        assert!(image.exists());
        let xml = g.inactive_xml();
        assert!(xml.contains(LIBOSINFO_ID), "{xml}");
        assert!(xml.contains("<interface type='user'>"), "{xml}");
        g.start();
        panic!("deliberate panic with a running guest");
    });
    assert!(result.is_err());
    assert!(
        !domain_exists(&name),
        "guard did not undefine {name} while unwinding"
    );
    assert!(!image.exists(), "guard did not remove {}", image.display());
}

#[test]
fn unreachable_libvirtd_is_a_clear_cli_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, "guests:\n  whatever:\n    vcpu: { count: 1 }\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args([
            "--connect",
            "qemu+unix:///system?socket=/nonexistent/libvirt-sock",
            "--root",
        ])
        .arg(dir.path())
        .arg("plan")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stderr(&out).contains("connecting to"), "{}", describe(&out));
}

// -------------------------------------------------------------------- convergence --

#[test]
fn apply_converges_on_a_defined_guest() {
    // Three vCPUs with pins on vCPUs 0 and 2: the config shrinks to 2 vCPUs, re-pins 0, adds 1
    // and (vcpupin is authoritative) drops the pin of vCPU 2.
    let g = Guest::define(
        "converge",
        Spec {
            vcpus: 3,
            tuning: "<cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='2' cpuset='1'/>\
                     <emulatorpin cpuset='1'/></cputune>"
                .into(),
            ..Spec::default()
        },
    );
    let yaml = format!(
        r#"guests:
  {}:
    vcpu: {{ count: 2, placement: static, cpuset: "0-1" }}
    cputune: {{ vcpupin: {{ 0: "1", 1: "0" }}, emulatorpin: "0" }}
    numatune: {{ memory: {{ mode: strict, nodeset: "0" }} }}
    memory_backing: {{ hugepages: {{ size: 2M }} }}
    cpu: {{ mode: host-passthrough, topology: {{ sockets: 1, cores: 2, threads: 1 }} }}
    disks: {{ "*": {{ cache: none, io: native }} }}
    interfaces: {{ "*": {{ model: virtio, queues: 2, driver: vhost }} }}
"#,
        g.name()
    );
    let (p, report) = assert_converges(&yaml);
    assert_eq!(report.defines, 1);
    assert_eq!(report.host_writes, 0);
    assert!(p.changes.iter().all(|c| c.effect == Effect::Live));
    let removed = p
        .changes
        .iter()
        .find(|c| c.path == "cputune.vcpupin.2")
        .expect("the unlisted pin is planned for removal");
    assert_eq!(
        (removed.before.as_deref(), removed.after.as_deref()),
        (Some("1"), None)
    );
    for want in [
        "vcpu.count",
        "vcpu.cpuset",
        "cputune.vcpupin.0",
        "cputune.vcpupin.1",
        "cputune.emulatorpin",
        "numatune.memory.nodeset",
        "memory_backing.hugepages",
        "cpu.mode",
        "cpu.topology.sockets",
        "disks.vda.cache",
        "disks.vda.io",
        "interfaces.52:54:00:6b:74:01.model",
        "interfaces.52:54:00:6b:74:01.driver",
        "interfaces.52:54:00:6b:74:01.queues",
    ] {
        assert!(
            paths(&p).contains(&want),
            "{want} missing in {:?}",
            paths(&p)
        );
    }

    let xml = g.inactive_xml();
    assert_eq!(text_of(&xml, &["vcpu"]).as_deref(), Some("2"));
    assert_eq!(
        vcpupins(&xml),
        vec![("0".into(), "1".into()), ("1".into(), "0".into())]
    );
    assert_eq!(
        first_attr(&xml, "emulatorpin", "cpuset").as_deref(),
        Some("0")
    );
    assert_eq!(first_attr(&xml, "vcpu", "cpuset").as_deref(), Some("0-1"));
    assert_eq!(
        first_attr(&xml, "memory", "mode").as_deref(),
        Some("strict")
    );
    assert_eq!(first_attr(&xml, "page", "size").as_deref(), Some("2048"));
    assert_eq!(
        first_attr(&xml, "cpu", "mode").as_deref(),
        Some("host-passthrough")
    );
    assert_eq!(first_attr(&xml, "topology", "cores").as_deref(), Some("2"));
    assert!(
        xml.contains("cache='none' io='native'"),
        "disk driver not set: {xml}"
    );
    assert!(xml.contains("<model type='virtio'/>"), "{xml}");
    assert!(xml.contains("<driver name='vhost' queues='2'/>"), "{xml}");
}

#[test]
fn running_guest_changes_take_effect_at_restart_only() {
    let g = Guest::define(
        "running",
        Spec {
            tuning: "<cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/>\
                     </cputune>"
                .into(),
            ..Spec::default()
        },
    );
    g.start();
    let live_before = g.live_xml();
    let live_pins = vcpupins(&live_before);
    assert_eq!(
        live_pins,
        vec![("0".into(), "0".into()), ("1".into(), "1".into())]
    );
    // No vhost (this kernel has no /dev/vhost-net) and no queues (user networking has no
    // multiqueue): the new definition must still boot.
    let yaml = format!(
        r#"guests:
  {}:
    vcpu: {{ count: 2, placement: static, cpuset: "0-1" }}
    cputune: {{ vcpupin: {{ 0: "1", 1: "0" }}, emulatorpin: "0" }}
    numatune: {{ memory: {{ mode: strict, nodeset: "0" }} }}
    cpu: {{ mode: custom, model: Westmere, topology: {{ sockets: 1, cores: 2, threads: 1 }} }}
    disks: {{ "*": {{ cache: none, io: native }} }}
    interfaces: {{ "*": {{ model: virtio }} }}
"#,
        g.name()
    );
    let planned = plan_yaml(&yaml);
    assert!(!planned.is_empty());
    // Pins and the nodeset are changed live; everything else waits for a restart.
    for c in &planned.changes {
        let live = c.path.starts_with("cputune.") || c.path == "numatune.memory.nodeset";
        let want = if live { Effect::Live } else { Effect::Restart };
        assert_eq!(c.effect, want, "{c:?}");
    }
    assert!(paths(&planned).contains(&"cpu.model"));
    assert!(paths(&planned).contains(&"cpu.topology.cores"));
    assert!(planned.pending_restart.is_empty());

    let (p, report) = assert_converges(&yaml);
    assert_eq!(p.changes, planned.changes);
    assert_eq!(report.defines, 1);
    assert!(report.live_changes >= 3, "{report:?}");
    assert!(g.is_running(), "apply must not stop the guest");
    // The pins changed on the running guest too; the rest is pending.
    let want_pins: Vec<(String, String)> = vec![("0".into(), "1".into()), ("1".into(), "0".into())];
    assert_eq!(vcpupins(&g.live_xml()), want_pins);
    assert_eq!(
        attr_values(&g.live_xml(), "emulatorpin", "cpuset"),
        vec!["0".to_string()]
    );
    let inactive = g.inactive_xml();
    assert_eq!(vcpupins(&inactive), want_pins);
    assert_eq!(
        text_of(&inactive, &["cpu", "model"]).as_deref(),
        Some("Westmere")
    );
    let after = plan_yaml(&yaml);
    assert!(after.changes.is_empty(), "{:?}", after.changes);
    let pending: Vec<&str> = after
        .pending_restart
        .iter()
        .map(|p| p.path.as_str())
        .collect();
    for want in [
        "cpu.model",
        "cpu.topology.cores",
        "disks.vda.cache",
        "disks.vda.io",
    ] {
        assert!(pending.contains(&want), "{want} not pending: {pending:?}");
    }
    assert!(
        !pending.iter().any(|p| p.starts_with("cputune.")),
        "{pending:?}"
    );

    // The restart brings the new definition into effect: nothing pending any more.
    g.destroy();
    g.start();
    let live = g.live_xml();
    assert_eq!(vcpupins(&live), vcpupins(&inactive));
    assert_eq!(
        text_of(&live, &["cpu", "model"]).as_deref(),
        Some("Westmere")
    );
    let after = plan_yaml(&yaml);
    assert!(after.is_empty());
    assert!(
        after.pending_restart.is_empty(),
        "{:?}",
        after.pending_restart
    );
}

/// Drift on the running guest only (a pin changed with `virsh vcpupin --live`) is a live change.
#[test]
fn live_only_drift_is_fixed_live() {
    let g = Guest::define(
        "live-drift",
        Spec {
            tuning:
                "<cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/></cputune>"
                    .into(),
            ..Spec::default()
        },
    );
    g.start();
    let yaml = format!(
        "guests:\n  {}:\n    cputune: {{ vcpupin: {{ 0: \"0\", 1: \"1\" }} }}\n",
        g.name()
    );
    assert!(plan_yaml(&yaml).is_empty());
    virsh_ok(&["vcpupin", g.name(), "0", "1", "--live"]);
    let p = plan_yaml(&yaml);
    assert_eq!(paths(&p), vec!["cputune.vcpupin.0"]);
    assert_eq!(p.changes[0].effect, Effect::Live);
    assert_eq!(p.changes[0].before.as_deref(), Some("1"));
    let before_def = g.inactive_xml();
    let (_, report) = assert_converges(&yaml);
    assert_eq!((report.defines, report.live_changes), (0, 1));
    assert_eq!(
        g.inactive_xml(),
        before_def,
        "the definition was right and must not be rewritten"
    );
    assert_eq!(
        vcpupins(&g.live_xml())[0],
        ("0".to_string(), "0".to_string())
    );
}

/// Pins to CPUs or NUMA nodes the host does not have are plan errors (libvirt accepts them at
/// define time and fails only when the guest starts).
#[test]
fn pins_beyond_the_host_are_plan_errors() {
    let g = Guest::define("beyond-host", Spec::default());
    let cpus = kvmtune::libvirt::Hypervisor::open(&uri(), true)
        .unwrap()
        .node_info()
        .unwrap()
        .cpus;
    let p = plan_yaml(&format!(
        "guests:\n  {}:\n    cputune: {{ vcpupin: {{ 0: \"{cpus}\" }} }}\n    numatune: {{ memory: {{ nodeset: \"7\" }} }}\n",
        g.name()
    ));
    let keys: Vec<&str> = p.errors.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            format!("guests.{}.cputune.vcpupin.0", g.name()).as_str(),
            format!("guests.{}.numatune.memory.nodeset", g.name()).as_str()
        ],
        "{:?}",
        p.errors
    );
    assert!(
        p.errors[0]
            .message
            .contains(&format!("CPU {cpus} is not on this host")),
        "{}",
        p.errors[0].message
    );
}

// ------------------------------------------------------------------ normalizations --

#[test]
fn normalize_libvirt_default_custom_cpu() {
    let g = Guest::define("norm-defcpu", Spec::default());
    let xml = g.inactive_xml();
    // libvirt 9 adds this <cpu> to a guest defined without one.
    assert!(
        xml.contains("<cpu mode='custom' match='exact' check='none'>"),
        "{xml}"
    );
    assert!(
        xml.contains("<model fallback='forbid'>qemu64</model>"),
        "{xml}"
    );
    let name = g.name();
    assert!(plan_yaml(&format!(
        "guests:\n  {name}:\n    cpu: {{ mode: custom, model: qemu64 }}\n"
    ))
    .is_empty());
    assert_converges(&format!(
        "guests:\n  {name}:\n    cpu: {{ topology: {{ sockets: 2, cores: 1, threads: 1 }} }}\n"
    ));
    let xml = g.inactive_xml();
    assert_eq!(text_of(&xml, &["cpu", "model"]).as_deref(), Some("qemu64"));
}

#[test]
fn normalize_topology_dies() {
    let g = Guest::define("norm-dies", Spec::default());
    let name = g.name();
    assert_converges(&format!(
        "guests:\n  {name}:\n    cpu: {{ mode: custom, model: qemu64, topology: {{ sockets: 1, cores: 1, threads: 2 }} }}\n"
    ));
    let xml = g.inactive_xml();
    assert_eq!(first_attr(&xml, "topology", "dies").as_deref(), Some("1"));
    assert!(plan_yaml(&format!(
        "guests:\n  {name}:\n    cpu: {{ topology: {{ sockets: 1, dies: 1, cores: 1, threads: 2 }} }}\n"
    ))
    .is_empty());
}

#[test]
fn normalize_host_passthrough_check_and_migratable() {
    let g = Guest::define("norm-passthrough", Spec::default());
    let name = g.name();
    assert_converges(&format!(
        "guests:\n  {name}:\n    cpu: {{ mode: host-passthrough, topology: {{ sockets: 1, cores: 2, threads: 1 }} }}\n"
    ));
    let xml = g.inactive_xml();
    assert_eq!(first_attr(&xml, "cpu", "check").as_deref(), Some("none"));
    assert_eq!(first_attr(&xml, "cpu", "migratable").as_deref(), Some("on"));
}

/// Regression: libvirt adds `migratable='on'` to host-passthrough and rejects it on any other
/// mode, so switching away from host-passthrough must drop it.
#[test]
fn cpu_mode_switch_away_from_host_passthrough() {
    let g = Guest::define(
        "cpu-switch",
        Spec {
            tuning: "<cpu mode='host-passthrough'/>".into(),
            ..Spec::default()
        },
    );
    assert_eq!(
        first_attr(&g.inactive_xml(), "cpu", "migratable").as_deref(),
        Some("on")
    );
    let name = g.name();
    assert_converges(&format!(
        "guests:\n  {name}:\n    cpu: {{ mode: custom, model: Westmere }}\n"
    ));
    assert_converges(&format!(
        "guests:\n  {name}:\n    cpu: {{ mode: host-passthrough }}\n"
    ));
    assert_converges(&format!(
        "guests:\n  {name}:\n    cpu: {{ mode: host-model }}\n"
    ));
    assert_eq!(first_attr(&g.inactive_xml(), "cpu", "migratable"), None);
}

#[test]
fn normalize_cpuset_spelling() {
    let g = Guest::define(
        "norm-cpuset",
        Spec {
            vcpu_attrs: " cpuset='0,1'".into(),
            tuning: "<cputune><emulatorpin cpuset='0,1'/></cputune>".into(),
            ..Spec::default()
        },
    );
    let xml = g.inactive_xml();
    // libvirt re-prints CPU sets as ranges.
    assert_eq!(first_attr(&xml, "vcpu", "cpuset").as_deref(), Some("0-1"));
    let name = g.name();
    assert!(plan_yaml(&format!(
        "guests:\n  {name}:\n    vcpu: {{ cpuset: \"0,1\" }}\n    cputune: {{ emulatorpin: \"1,0\" }}\n"
    ))
    .is_empty());
    assert_converges(&format!(
        r#"guests:
  {name}:
    vcpu: {{ cpuset: "0-1,^1" }}
    cputune: {{ vcpupin: {{ 0: "0,1", 1: "0-1,^0" }}, emulatorpin: "1,0" }}
"#
    ));
    let xml = g.inactive_xml();
    assert_eq!(first_attr(&xml, "vcpu", "cpuset").as_deref(), Some("0"));
    assert_eq!(
        vcpupins(&xml),
        vec![("0".into(), "0-1".into()), ("1".into(), "1".into())]
    );
}

#[test]
fn normalize_vcpu_placement_default_static() {
    let g = Guest::define("norm-placement", Spec::default());
    let xml = g.inactive_xml();
    assert_eq!(
        first_attr(&xml, "vcpu", "placement").as_deref(),
        Some("static")
    );
    let yaml = format!(
        "guests:\n  {}:\n    vcpu: {{ count: 2, placement: static }}\n",
        g.name()
    );
    assert!(plan_yaml(&yaml).is_empty());
    // Without the attribute libvirt's default still applies.
    let d = load(&yaml);
    let gd = d.guests.values().next().unwrap();
    let bare = xml.replace(" placement='static'", "");
    assert!(!bare.contains("placement="));
    let p = kvmtune::domain::plan_guest(gd, &bare, None).unwrap();
    assert!(p.changes.is_empty(), "{:?}", p.changes);
}

#[test]
fn normalize_numatune_mode_default_strict() {
    let g = Guest::define(
        "norm-numa",
        Spec {
            tuning: "<numatune><memory nodeset='0'/></numatune>".into(),
            ..Spec::default()
        },
    );
    let xml = g.inactive_xml();
    assert!(xml.contains("<memory mode='strict' nodeset='0'/>"), "{xml}");
    let yaml = format!(
        "guests:\n  {}:\n    numatune: {{ memory: {{ mode: strict, nodeset: \"0\" }} }}\n",
        g.name()
    );
    assert!(plan_yaml(&yaml).is_empty());
    let d = load(&yaml);
    let gd = d.guests.values().next().unwrap();
    let bare = xml.replace(" mode='strict'", "");
    let p = kvmtune::domain::plan_guest(gd, &bare, None).unwrap();
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    // Declaring only the nodeset on a guest without numatune converges too.
    let g2 = Guest::define("norm-numa2", Spec::default());
    assert_converges(&format!(
        "guests:\n  {}:\n    numatune: {{ memory: {{ nodeset: \"0\" }} }}\n",
        g2.name()
    ));
}

#[test]
fn normalize_page_size_units() {
    let g = Guest::define(
        "norm-pages",
        Spec {
            tuning: "<memoryBacking><hugepages><page size='2' unit='M'/></hugepages>\
                     </memoryBacking>"
                .into(),
            ..Spec::default()
        },
    );
    let xml = g.inactive_xml();
    assert!(xml.contains("<page size='2048' unit='KiB'/>"), "{xml}");
    let name = g.name();
    let yaml_m =
        format!("guests:\n  {name}:\n    memory_backing: {{ hugepages: {{ size: 2M }} }}\n");
    let yaml_k =
        format!("guests:\n  {name}:\n    memory_backing: {{ hugepages: {{ size: 2048K }} }}\n");
    assert!(plan_yaml(&yaml_m).is_empty());
    assert!(plan_yaml(&yaml_k).is_empty());
    // A hand-written unit='M' compares by size too.
    let d = load(&yaml_k);
    let gd = d.guests.values().next().unwrap();
    let unnormalized = xml.replace(
        "<page size='2048' unit='KiB'/>",
        "<page size='2' unit='M'/>",
    );
    let p = kvmtune::domain::plan_guest(gd, &unnormalized, None).unwrap();
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    // Off, then back on through the KiB spelling.
    assert_converges(&format!(
        "guests:\n  {name}:\n    memory_backing: {{ hugepages: false }}\n"
    ));
    assert!(!g.inactive_xml().contains("hugepages"));
    assert_converges(&yaml_k);
    assert!(plan_yaml(&yaml_m).is_empty());
}

#[test]
fn normalize_mac_address_case() {
    let g = Guest::define(
        "norm-mac",
        Spec {
            mac: "52:54:00:6B:74:0A".into(),
            ..Spec::default()
        },
    );
    assert!(g
        .inactive_xml()
        .contains("<mac address='52:54:00:6b:74:0a'/>"));
    let (p, _) = assert_converges(&format!(
        "guests:\n  {}:\n    interfaces: {{ \"52:54:00:6B:74:0A\": {{ model: virtio }} }}\n",
        g.name()
    ));
    assert_eq!(paths(&p), vec!["interfaces.52:54:00:6b:74:0a.model"]);
}

// ---------------------------------------------------------------------- preservation --

#[test]
fn apply_changes_only_owned_elements() {
    let g = Guest::define("preserve", Spec::default());
    let before = g.inactive_xml();
    assert_converges(&format!(
        r#"guests:
  {}:
    vcpu: {{ placement: static, cpuset: "0-1" }}
    cputune: {{ vcpupin: {{ 0: "0", 1: "1" }}, emulatorpin: "0-1" }}
    numatune: {{ memory: {{ mode: strict, nodeset: "0" }} }}
    memory_backing: {{ hugepages: {{ size: 2M }} }}
    cpu: {{ mode: host-passthrough, topology: {{ sockets: 1, cores: 1, threads: 2 }} }}
    disks: {{ "*": {{ cache: none, io: native }} }}
    interfaces: {{ "*": {{ model: virtio, queues: 2, driver: vhost }} }}
"#,
        g.name()
    ));
    let after = g.inactive_xml();
    assert_ne!(before, after);
    let (b, a) = (strip_owned(&before), strip_owned(&after));
    if b != a {
        let diff = similar::TextDiff::from_lines(&b, &a)
            .unified_diff()
            .header("before", "after")
            .to_string();
        panic!("non-owned parts of the domain XML changed:\n{diff}");
    }
    // And the things people care about, one by one.
    for (el, attr) in [
        ("mac", "address"),
        ("address", "slot"),
        ("address", "bus"),
        ("graphics", "listen"),
        ("source", "file"),
        ("target", "dev"),
        ("type", "machine"),
        ("libosinfo:os", "id"),
    ] {
        assert_eq!(
            attr_values(&before, el, attr),
            attr_values(&after, el, attr),
            "<{el} {attr}> changed"
        );
    }
    assert_eq!(text_of(&before, &["uuid"]), text_of(&after, &["uuid"]));
    assert_eq!(text_of(&before, &["name"]), text_of(&after, &["name"]));
    assert_eq!(text_of(&before, &["memory"]), text_of(&after, &["memory"]));
    // Non-owned attributes of the owned disk <driver> element survive.
    assert_eq!(
        attr_values(&after, "driver", "type"),
        attr_values(&before, "driver", "type")
    );
}

// ------------------------------------------------------------------ failure handling --

#[test]
fn libvirt_rejection_of_one_guest_does_not_stop_the_other() {
    // Guest a has cache='writeback'; the config adds io=native, which libvirt refuses at define
    // ("io='native' needs either no disk cache or directsync cache mode").
    let a = Guest::define(
        "isolate-a",
        Spec {
            disk_driver: " cache='writeback'".into(),
            ..Spec::default()
        },
    );
    let b = Guest::define(
        "isolate-b",
        Spec {
            mac: "52:54:00:6b:74:02".into(),
            ..Spec::default()
        },
    );
    let a_before = a.inactive_xml();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tuning.yaml");
    std::fs::write(
        &cfg,
        format!(
            "guests:\n  {}:\n    disks: {{ \"*\": {{ io: native }} }}\n  {}:\n    cputune: {{ vcpupin: {{ 0: \"1\" }} }}\n",
            a.name(),
            b.name()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    let out = kvmtune(
        dir.path(),
        &["apply", "--auto-approve", "--format", "json", cfg],
    );
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out))
        .unwrap_or_else(|e| panic!("report is not JSON ({e}): {}", describe(&out)));
    assert_eq!(report["defines"], 2, "{report:#}");
    let results = report["results"].as_array().unwrap();
    let of = |name: &str| {
        results
            .iter()
            .find(|r| r["target"] == format!("guest/{name}"))
            .unwrap_or_else(|| panic!("no result for {name}: {report:#}"))
    };
    let ra = of(a.name());
    assert_eq!(ra["outcome"], "failed", "{report:#}");
    let failed = ra["failed"].as_array().unwrap();
    assert_eq!(failed[0][0], "disks.vda.io");
    let why = failed[0][1].as_str().unwrap();
    assert!(
        why.contains(a.name()) && why.contains("native"),
        "failure does not name the guest and libvirt's reason: {why}"
    );
    let rb = of(b.name());
    assert_eq!(rb["outcome"], "applied", "{report:#}");
    assert_eq!(rb["applied"][0], "cputune.vcpupin.0");

    assert_eq!(
        a.inactive_xml(),
        a_before,
        "failed guest's definition changed"
    );
    assert_eq!(vcpupins(&b.inactive_xml()), vec![("0".into(), "1".into())]);

    // The human report names the failure too; only the failing guest is still planned.
    let out = kvmtune(dir.path(), &["apply", "--auto-approve", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(stdout(&out).contains("disks.vda.io"), "{}", describe(&out));
    assert!(!stdout(&out).contains(b.name()), "{}", describe(&out));
}

#[test]
fn missing_guest_is_a_located_plan_error_and_nothing_is_applied() {
    let b = Guest::define("missing-other", Spec::default());
    let missing = Guest::name_for("missing-absent");
    assert!(!domain_exists(&missing));
    let yaml = format!(
        "guests:\n  {}:\n    cputune: {{ vcpupin: {{ 0: \"1\" }} }}\n  {missing}:\n    vcpu: {{ count: 1 }}\n",
        b.name()
    );
    // Library: the error carries file:line:col of the guest's key.
    let p = plan_yaml(&yaml);
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    let e = &p.errors[0];
    assert_eq!(e.target, format!("guest/{missing}"));
    assert_eq!(e.key, format!("guests.{missing}"));
    assert_eq!(e.location.as_deref(), Some("it.yaml:4:3"));
    assert!(e.message.contains("no guest named"), "{}", e.message);

    // CLI: plan exits 1 with the location; apply applies nothing.
    let before = b.inactive_xml();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tuning.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let out = kvmtune(dir.path(), &["plan", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stdout(&out).contains(&format!("{cfg}:4:3")),
        "{}",
        describe(&out)
    );
    let out = kvmtune(dir.path(), &["apply", "--auto-approve", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    assert!(
        stderr(&out).contains("nothing was applied"),
        "{}",
        describe(&out)
    );
    assert_eq!(b.inactive_xml(), before);
    assert!(!domain_exists(&missing));
}

// ------------------------------------------------------------------------------ CLI --

#[test]
fn cli_plan_is_read_only_and_reports_changes() {
    let g = Guest::define("cli", Spec::default());
    let name = g.name().to_string();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("tuning.yaml");
    std::fs::write(
        &cfg,
        format!(
            "guests:\n  {name}:\n    cputune: {{ vcpupin: {{ 0: \"0\", 1: \"1\" }} }}\n    disks: {{ \"*\": {{ cache: none }} }}\n"
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let before = g.inactive_xml();

    let out = kvmtune(dir.path(), &["plan", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert!(
        stdout(&out).contains("cputune.vcpupin.0"),
        "{}",
        describe(&out)
    );
    let out = kvmtune(dir.path(), &["plan", "--diff", "--detailed-exitcode", cfg]);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    let out = kvmtune(dir.path(), &["plan", "--format", "json", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_eq!(g.inactive_xml(), before, "plan changed the guest");

    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["format_version"], 1);
    let changes = json["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{json:#}");
    for c in changes {
        assert_eq!(c["target"], format!("guest/{name}"));
        assert_eq!(c["effect"], "live");
        assert!(c["before"].is_null(), "{c}");
    }
    let got: Vec<(&str, &str)> = changes
        .iter()
        .map(|c| (c["path"].as_str().unwrap(), c["after"].as_str().unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("cputune.vcpupin.0", "0"),
            ("cputune.vcpupin.1", "1"),
            ("disks.vda.cache", "none"),
        ]
    );
    assert_eq!(json["summary"]["changes"], 3);

    let out = kvmtune(dir.path(), &["apply", "--auto-approve", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_ne!(g.inactive_xml(), before);
    let out = kvmtune(dir.path(), &["plan", "--detailed-exitcode", cfg]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let out = kvmtune(
        dir.path(),
        &["plan", "--format", "json", "--detailed-exitcode", cfg],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["changes"].as_array().unwrap().len(), 0);
    // A second apply has nothing to do.
    let out = kvmtune(
        dir.path(),
        &["apply", "--auto-approve", "--format", "json", cfg],
    );
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let report: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (report["defines"].clone(), report["host_writes"].clone()),
        (0.into(), 0.into())
    );
}

#[test]
fn read_only_connection_cannot_define() {
    let g = Guest::define("readonly", Spec::default());
    let before = g.inactive_xml();
    let ro = hv(true);
    let names = [g.name().to_string()].into_iter().collect();
    let seen = ro.guests(&names).unwrap();
    let obs = seen[g.name()].as_ref().expect("guest observed");
    assert_eq!(obs.xml, before);
    assert!(!obs.active);
    let edited = before.replace(
        "<vcpu placement='static'>2</vcpu>",
        "<vcpu placement='static'>1</vcpu>",
    );
    assert_ne!(edited, before);
    let err = ro
        .define(g.name(), &edited)
        .expect_err("a read-only connection defined a guest");
    assert!(err.to_string().contains("read"), "{err}");
    assert_eq!(g.inactive_xml(), before);
}

/// Regression: libvirt rejects `current` above the vCPU count ("maximum vCPU count must not be
/// less than current vCPU count"), so lowering the count below it lowers `current` too.
#[test]
fn lowering_vcpu_count_below_current_converges() {
    let g = Guest::define(
        "vcpu-current",
        Spec {
            vcpus: 4,
            vcpu_attrs: " current='2'".into(),
            ..Spec::default()
        },
    );
    assert_eq!(
        first_attr(&g.inactive_xml(), "vcpu", "current").as_deref(),
        Some("2")
    );
    let (p, _) = assert_converges(&format!(
        "guests:\n  {}:\n    vcpu: {{ count: 1 }}\n",
        g.name()
    ));
    assert_eq!(paths(&p), vec!["vcpu.count", "vcpu.current"]);
    let xml = g.inactive_xml();
    assert_eq!(text_of(&xml, &["vcpu"]).as_deref(), Some("1"));
    assert_eq!(first_attr(&xml, "vcpu", "current"), None);
}

/// Regression: libvirt silently drops `<driver name=...>` and `queues` on non-virtio NICs, so a
/// driver/queues setting for an e1000 interface could never converge (every apply "failed"
/// verification). It is a located plan error instead, and nothing is defined.
#[test]
fn nic_driver_on_a_non_virtio_model_is_a_plan_error() {
    let g = Guest::define("nic-e1000", Spec::default());
    let before = g.inactive_xml();
    let yaml = format!(
        "guests:\n  {}:\n    interfaces: {{ \"*\": {{ driver: vhost, queues: 2 }} }}\n",
        g.name()
    );
    let p = plan_yaml(&yaml);
    assert!(p.is_empty());
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    let e = &p.errors[0];
    assert_eq!(e.key, format!("guests.{}.interfaces.*", g.name()));
    assert_eq!(e.location.as_deref(), Some("it.yaml:3:19"));
    assert!(e.message.contains("e1000"), "{}", e.message);
    assert_eq!(g.inactive_xml(), before);
    // With the model declared, the same settings converge.
    assert_converges(&format!(
        "guests:\n  {}:\n    interfaces: {{ \"*\": {{ model: virtio, driver: vhost, queues: 2 }} }}\n",
        g.name()
    ));
}

/// Regression: a new vCPU count that the guest's existing `<topology>` does not multiply to is
/// rejected by libvirt at define time; kvmtune says so in the plan, before anything is applied.
#[test]
fn vcpu_count_against_existing_topology_is_a_plan_error() {
    let g = Guest::define(
        "count-topology",
        Spec {
            vcpus: 2,
            ..Spec::default()
        },
    );
    let yaml = format!(
        "guests:\n  {}:\n    cpu: {{ topology: {{ sockets: 1, cores: 2, threads: 1 }} }}\n",
        g.name()
    );
    assert_converges(&yaml);
    let before = g.inactive_xml();
    let p = plan_yaml(&format!(
        "guests:\n  {}:\n    vcpu: {{ count: 4 }}\n",
        g.name()
    ));
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(p.errors[0].key, format!("guests.{}.vcpu.count", g.name()));
    assert!(
        p.errors[0].message.contains("CPU topology (2 vCPUs)"),
        "{}",
        p.errors[0].message
    );
    assert_eq!(g.inactive_xml(), before);
    // Declaring both converges.
    assert_converges(&format!(
        "guests:\n  {}:\n    vcpu: {{ count: 4 }}\n    cpu: {{ topology: {{ sockets: 1, cores: 4, threads: 1 }} }}\n",
        g.name()
    ));
}

/// `--restart-guests` on a guest without an OS (it ignores ACPI shutdown): the shutdown times
/// out, the guest is left running (never destroyed), the change stays pending, apply exits 1.
#[test]
fn restart_guests_never_destroys_a_guest_that_ignores_shutdown() {
    let g = Guest::define("restart-timeout", Spec::default());
    g.start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        format!(
            "guests:\n  {}:\n    disks: {{ \"*\": {{ cache: none }} }}\n",
            g.name()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = kvmtune(
        dir.path(),
        &[
            "apply",
            cfg,
            "--auto-approve",
            "--restart-guests",
            "--shutdown-timeout",
            "2",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["restarts"], 1);
    let restart = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["failed"].as_array().is_some_and(|f| !f.is_empty()))
        .unwrap();
    let why = restart["failed"][0][1].as_str().unwrap();
    assert!(
        why.contains("did not shut down within 2 s; left running"),
        "{why}"
    );
    assert!(g.is_running(), "the guest must be left running");
    // The definition was written; the change is pending, not a change.
    let after = plan_yaml(&format!(
        "guests:\n  {}:\n    disks: {{ \"*\": {{ cache: none }} }}\n",
        g.name()
    ));
    assert!(after.changes.is_empty(), "{:?}", after.changes);
    assert_eq!(after.pending_restart.len(), 1);
    assert_eq!(after.pending_restart[0].path, "disks.vda.cache");
    // The human plan lists it as pending, and --detailed-exitcode says "no changes".
    let o = kvmtune(dir.path(), &["plan", cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(stdout(&o).contains(&format!("pending restart (defined, not yet in effect):\n  guest {}: disks.vda.cache (unset) → none", g.name())), "{}", stdout(&o));
}

// ------------------------------------------------------------ the rest of the catalogue --

/// I/O threads, blkiotune, memtune, per-disk iotune and iothread, NIC MTU, device removal,
/// libosinfo metadata and CPU features converge on a defined guest.
#[test]
fn catalogue_converges_on_a_defined_guest() {
    let g = Guest::define(
        "catalogue",
        Spec {
            nic_model: "virtio".into(),
            devices_extra: "<sound model='ich6'/><input type='tablet' bus='usb'/><watchdog model='i6300esb' action='reset'/>\
                      <interface type='ethernet'><mac address='52:54:00:6b:74:02'/><model type='virtio'/></interface>"
                .into(),
            ..Spec::default()
        },
    );
    let yaml = format!(
        r#"guests:
  {}:
    iothreads: 2
    cputune: {{ iothreadpin: {{ 1: "0", 2: "1" }} }}
    blkiotune: {{ weight: 500, devices: {{ /dev/vda: {{ weight: 300, read_iops_sec: 1000 }} }} }}
    memtune: {{ hard_limit: 1G, soft_limit: 512M }}
    disks: {{ vda: {{ iothread: 1, iotune: {{ total_iops_sec: 1000, read_bytes_sec: 1048576 }} }} }}
    interfaces: {{ "52:54:00:6b:74:02": {{ mtu: 9000 }} }}
    remove_devices: [sound, tablet, watchdog, memballoon]
    os_variant: rhel9.0
    cpu: {{ mode: custom, model: Haswell-noTSX, features: {{ require: [invtsc], disable: [svm] }} }}
"#,
        g.name()
    );
    let (p, _) = assert_converges(&yaml);
    for want in [
        "iothreads",
        "cputune.iothreadpin.1",
        "blkiotune.weight",
        "blkiotune.devices./dev/vda.weight",
        "blkiotune.devices./dev/vda.read_iops_sec",
        "memtune.hard_limit",
        "disks.vda.iothread",
        "disks.vda.iotune.total_iops_sec",
        "interfaces.52:54:00:6b:74:02.mtu",
        "remove_devices.sound",
        "remove_devices.tablet",
        "remove_devices.watchdog",
        "remove_devices.memballoon",
        "os_variant",
        "cpu.features.invtsc",
        "cpu.features.svm",
    ] {
        assert!(
            paths(&p).contains(&want),
            "{want} not planned: {:?}",
            paths(&p)
        );
    }
    let xml = g.inactive_xml();
    assert!(!xml.contains("<sound"), "{xml}");
    assert!(!xml.contains("tablet"), "{xml}");
    assert!(xml.contains("<memballoon model='none'/>"), "{xml}");
    assert!(
        xml.contains("<libosinfo:os id=\"http://redhat.com/rhel/9.0\"/>"),
        "{xml}"
    );
    assert!(xml.contains("<mtu size='9000'/>"), "{xml}");
    assert!(
        xml.contains("<total_iops_sec>1000</total_iops_sec>"),
        "{xml}"
    );
    assert!(
        xml.contains("<feature policy='disable' name='svm'/>"),
        "{xml}"
    );
}

/// On a running guest, blkiotune, memtune, disk iotune, iothreadpin and the OS metadata change
/// live; the MTU waits for a restart and is then pending.
#[test]
fn catalogue_live_and_restart_on_a_running_guest() {
    let g = Guest::define(
        "catalogue-live",
        Spec {
            tuning: "<iothreads>1</iothreads>".into(),
            nic_model: "virtio".into(),
            devices_extra: "<interface type='ethernet'><mac address='52:54:00:6b:74:02'/><model type='virtio'/></interface>".into(),
            ..Spec::default()
        },
    );
    g.start();
    let yaml = format!(
        r#"guests:
  {}:
    cputune: {{ iothreadpin: {{ 1: "1" }} }}
    blkiotune: {{ weight: 700 }}
    memtune: {{ hard_limit: 2G }}
    disks: {{ vda: {{ iotune: {{ total_iops_sec: 2000 }} }} }}
    os_variant: debian11
    interfaces: {{ "52:54:00:6b:74:02": {{ mtu: 1400 }} }}
"#,
        g.name()
    );
    let planned = plan_yaml(&yaml);
    for c in &planned.changes {
        let want = if c.path.ends_with(".mtu") {
            Effect::Restart
        } else {
            Effect::Live
        };
        assert_eq!(c.effect, want, "{c:?}");
    }
    let (_, report) = assert_converges(&yaml);
    assert_eq!(report.live_changes, 5, "{report:?}");
    assert!(
        report.results.iter().all(|r| r.deferred.is_empty()),
        "{report:?}"
    );
    let live = g.live_xml();
    assert!(live.contains("<weight>700</weight>"), "{live}");
    assert!(
        live.contains("<hard_limit unit='KiB'>2097152</hard_limit>"),
        "{live}"
    );
    assert!(
        live.contains("<total_iops_sec>2000</total_iops_sec>"),
        "{live}"
    );
    assert!(
        live.contains("<iothreadpin iothread='1' cpuset='1'/>"),
        "{live}"
    );
    assert!(live.contains("http://debian.org/debian/11"), "{live}");
    let after = plan_yaml(&yaml);
    let pending: Vec<&str> = after
        .pending_restart
        .iter()
        .map(|p| p.path.as_str())
        .collect();
    assert_eq!(pending, vec!["interfaces.52:54:00:6b:74:02.mtu"]);
    // MTU on user networking is a plan error, not a define failure.
    let p = plan_yaml(&format!(
        "guests:\n  {}:\n    interfaces: {{ \"*\": {{ mtu: 9000 }} }}\n",
        g.name()
    ));
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert!(
        p.errors[0].message.contains("of type `user`"),
        "{}",
        p.errors[0].message
    );
}

// --------------------------------------------------------------- automatic pinning --

/// `vcpupin: auto` on the real host (2 CPUs, 1 node): the guest gets the non-reserved CPU,
/// the emulator the reserved one, memory node 0; apply converges. Overcommit is allowed so
/// that guests of concurrent test runs pinned to CPU 1 do not make this flaky.
#[test]
fn automatic_pinning_converges_on_the_real_host() {
    let g = Guest::define(
        "autopin",
        Spec {
            vcpus: 1,
            ..Spec::default()
        },
    );
    let yaml = format!(
        "host:\n  cpu_pool: {{ reserved: \"0\", allow_overcommit: true }}\nguests:\n  {}:\n    cputune: {{ vcpupin: auto, emulatorpin: auto }}\n    numatune: {{ memory: {{ mode: strict, nodeset: auto }} }}\n",
        g.name()
    );
    let (p, report) = assert_converges(&yaml);
    assert_eq!(report.defines, 1);
    let pin = p
        .changes
        .iter()
        .find(|c| c.path == "cputune.vcpupin.0")
        .and_then(|c| c.after.clone());
    assert_eq!(pin.as_deref(), Some("1"), "{:?}", p.changes);
    let xml = g.inactive_xml();
    assert_eq!(vcpupins(&xml), vec![("0".to_string(), "1".to_string())]);
    assert_eq!(
        first_attr(&xml, "emulatorpin", "cpuset").as_deref(),
        Some("0")
    );
    assert_eq!(first_attr(&xml, "memory", "nodeset").as_deref(), Some("0"));
}

// --------------------------------------------- domain XML as libvirt reads it (issue 12) --

/// `(id, enabled)` of each `<vcpus><vcpu>` entry.
fn vcpus_list(xml: &str) -> Vec<(String, String)> {
    let ids = attr_values(xml, "vcpu", "id");
    let on = attr_values(xml, "vcpu", "enabled");
    ids.into_iter().zip(on).collect()
}

/// Regression: a declared `total_*` beside an existing `read_*`/`write_*` of its kind (or the
/// other way round) made libvirt refuse the definition ("total and read/write ... cannot be
/// set at the same time"). The conflicting throttles are replaced, each shown as removed.
#[test]
fn a_declared_iotune_rate_replaces_the_ones_libvirt_refuses_beside_it() {
    let disk = |dev: &str, tune: &str| {
        format!(
            "<disk type='file' device='disk'><driver name='qemu' type='raw'/>\
             <source file='/var/lib/kvmtune-it-none-{dev}.img'/><target dev='{dev}' bus='virtio'/>\
             <iotune>{tune}</iotune></disk>"
        )
    };
    let g = Guest::define(
        "iotune-pairs",
        Spec {
            devices_extra: disk(
                "vdb",
                "<read_iops_sec>100</read_iops_sec><read_iops_sec_max>200</read_iops_sec_max>\
                 <read_iops_sec_max_length>5</read_iops_sec_max_length><write_bytes_sec>50</write_bytes_sec>",
            ) + &disk(
                "vdc",
                "<total_bytes_sec>1000</total_bytes_sec><total_bytes_sec_max>2000</total_bytes_sec_max>",
            ),
            ..Spec::default()
        },
    );
    let yaml = format!(
        "guests:\n  {}:\n    disks:\n      vdb: {{ iotune: {{ total_iops_sec: 500, total_bytes_sec: 4000 }} }}\n      vdc: {{ iotune: {{ read_bytes_sec: 300 }} }}\n",
        g.name()
    );
    let (p, _) = assert_converges(&yaml);
    let removed: Vec<&str> = p
        .changes
        .iter()
        .filter(|c| c.after.is_none())
        .map(|c| c.path.as_str())
        .collect();
    assert_eq!(
        removed,
        [
            "disks.vdb.iotune.write_bytes_sec",
            "disks.vdb.iotune.read_iops_sec",
            "disks.vdb.iotune.read_iops_sec_max",
            "disks.vdb.iotune.read_iops_sec_max_length",
            "disks.vdc.iotune.total_bytes_sec",
            "disks.vdc.iotune.total_bytes_sec_max",
        ]
    );
    let xml = g.inactive_xml();
    for gone in ["read_iops_sec", "write_bytes_sec", "total_bytes_sec_max"] {
        assert!(!xml.contains(&format!("<{gone}>")), "{gone} left: {xml}");
    }
    for kept in [
        "<total_iops_sec>500</total_iops_sec>",
        "<total_bytes_sec>4000</total_bytes_sec>",
        "<read_bytes_sec>300</read_bytes_sec>",
    ] {
        assert!(xml.contains(kept), "{kept} missing: {xml}");
    }
}

/// Regression: `interfaces."*"` skipped an interface without `<mac>` (in a file rendered
/// offline: libvirt generates the MAC only when it defines the guest). It is tuned, and once
/// libvirt has defined it (with a generated MAC, the rendered settings kept) the plan is
/// empty.
#[test]
fn star_covers_an_interface_without_a_mac_and_converges_after_define() {
    let g = Guest::define(
        "nic-no-mac",
        Spec {
            devices_extra: "<interface type='user'><mac address='52:54:00:6b:74:02'/>\
                            <model type='e1000'/></interface>"
                .into(),
            ..Spec::default()
        },
    );
    let yaml = format!(
        "guests:\n  {}:\n    interfaces: {{ \"*\": {{ model: virtio, queues: 2 }} }}\n",
        g.name()
    );
    // A hand-written file: the second interface without its MAC.
    let file = g
        .inactive_xml()
        .replace("<mac address='52:54:00:6b:74:02'/>", "");
    assert!(!file.contains("52:54:00:6b:74:02"));
    let d = load(&yaml);
    let gd = d.guests.values().next().unwrap();
    let rendered = kvmtune::domain::plan_guest(gd, &file, None).unwrap();
    let paths: Vec<String> = rendered.changes.iter().map(|c| c.key.to_string()).collect();
    assert!(
        paths.contains(&"interfaces.*.model".to_string()),
        "{paths:?}"
    );
    let path = std::env::temp_dir().join(format!("{}.rendered.xml", g.name()));
    std::fs::write(&path, &rendered.new_xml).unwrap();
    virsh_ok(&["define", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    let xml = g.inactive_xml();
    let macs = attr_values(&xml, "mac", "address");
    assert_eq!(macs.len(), 2, "libvirt generates the missing MAC: {xml}");
    assert_eq!(xml.matches("<model type='virtio'/>").count(), 2, "{xml}");
    let after = plan_yaml(&yaml);
    assert!(
        after.is_empty() && !after.has_errors(),
        "{:#?}",
        after.changes
    );
    assert_converges(&yaml);
}

/// Regression: a MAC key on a `type='hostdev'` interface wrote `<driver queues=...>`, which
/// libvirt drops (never converging), or a driver name libvirt refuses. It is a located plan
/// error; `"*"` leaves the interface alone and converges.
#[test]
fn nic_settings_on_a_hostdev_interface_are_a_plan_error() {
    let g = Guest::define(
        "nic-hostdev",
        Spec {
            devices_extra: "<interface type='hostdev' managed='yes'><mac address='52:54:00:6b:74:09'/>\
                            <source><address type='pci' domain='0x0000' bus='0x00' slot='0x1f' function='0x7'/></source>\
                            </interface>"
                .into(),
            ..Spec::default()
        },
    );
    let before = g.inactive_xml();
    let p = plan_yaml(&format!(
        "guests:\n  {}:\n    interfaces: {{ \"52:54:00:6b:74:09\": {{ model: virtio, queues: 2 }} }}\n",
        g.name()
    ));
    assert!(p.is_empty());
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    let e = &p.errors[0];
    assert_eq!(
        e.key,
        format!("guests.{}.interfaces.52:54:00:6b:74:09", g.name())
    );
    assert!(e.message.contains("hostdev"), "{}", e.message);
    assert!(e.location.is_some());
    assert_eq!(g.inactive_xml(), before);
    assert_converges(&format!(
        "guests:\n  {}:\n    interfaces: {{ \"*\": {{ model: virtio, queues: 2 }} }}\n",
        g.name()
    ));
    let xml = g.inactive_xml();
    assert_eq!(xml.matches("queues='2'").count(), 1, "{xml}");
}

/// Regression: `iothreads: 1` beside `<iothreadids>` listing 1 and 2 left both ids; libvirt
/// read 2 back and the plan never converged. Ids above the count go; what still uses one is
/// a plan error naming it.
#[test]
fn lowering_iothreads_with_iothreadids_converges() {
    let tuning =
        "<iothreads>2</iothreads><iothreadids><iothread id='1'/><iothread id='2'/></iothreadids>";
    let g = Guest::define(
        "iothreadids",
        Spec {
            tuning: tuning.into(),
            ..Spec::default()
        },
    );
    let (p, _) = assert_converges(&format!("guests:\n  {}:\n    iothreads: 1\n", g.name()));
    assert_eq!(paths(&p), ["iothreads"]);
    let xml = g.inactive_xml();
    assert_eq!(text_of(&xml, &["iothreads"]).as_deref(), Some("1"));
    assert_eq!(attr_values(&xml, "iothread", "id"), ["1"]);
    // Raising it again: libvirt adds the ids.
    assert_converges(&format!("guests:\n  {}:\n    iothreads: 3\n", g.name()));
    assert_eq!(
        attr_values(&g.inactive_xml(), "iothread", "id"),
        ["1", "2", "3"]
    );

    let used = Guest::define(
        "iothreadids-used",
        Spec {
            tuning: tuning.into(),
            disk_driver: " iothread='2'".into(),
            ..Spec::default()
        },
    );
    let before = used.inactive_xml();
    let p = plan_yaml(&format!("guests:\n  {}:\n    iothreads: 1\n", used.name()));
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(p.errors[0].key, format!("guests.{}.iothreads", used.name()));
    assert!(
        p.errors[0].message.contains("disk vda (iothread 2)"),
        "{}",
        p.errors[0].message
    );
    assert_eq!(used.inactive_xml(), before);
    assert_converges(&format!(
        "guests:\n  {}:\n    iothreads: 1\n    disks: {{ vda: {{ iothread: 1 }} }}\n",
        used.name()
    ));
}

/// Regression: with a `<vcpus>` list, a new `vcpu.count` left it stale: libvirt refused a
/// lower count ("vcpu id '2' is out of range"), booted a higher one with the old number
/// online, and read `current` from the list (never converging on a declared one). The list
/// follows the count and `current`, by libvirt's rules.
#[test]
fn vcpu_count_and_current_keep_a_vcpus_list_consistent() {
    let list = |n: u32| {
        let entries: String = (0..n)
            .map(|i| {
                format!(
                    "<vcpu id='{i}' enabled='yes' hotpluggable='{}'/>",
                    if i == 0 { "no" } else { "yes" }
                )
            })
            .collect();
        format!("<vcpus>{entries}</vcpus>")
    };
    let g = Guest::define(
        "vcpus-list",
        Spec {
            vcpus: 2,
            tuning: list(2),
            ..Spec::default()
        },
    );
    let yaml = |body: &str| format!("guests:\n  {}:\n{body}", g.name());
    // Raised: every vCPU online at boot, as without the list.
    assert_converges(&yaml("    vcpu: { count: 4 }\n"));
    let xml = g.inactive_xml();
    assert_eq!(text_of(&xml, &["vcpu"]).as_deref(), Some("4"));
    assert_eq!(first_attr(&xml, "vcpu", "current"), None, "{xml}");
    assert_eq!(
        vcpus_list(&xml),
        (0..4)
            .map(|i| (i.to_string(), "yes".to_string()))
            .collect::<Vec<_>>()
    );
    // current, read from (and written to) the list.
    let (p, _) = assert_converges(&yaml("    vcpu: { count: 4, current: 2 }\n"));
    assert_eq!(paths(&p), ["vcpu.current"]);
    let xml = g.inactive_xml();
    assert_eq!(first_attr(&xml, "vcpu", "current").as_deref(), Some("2"));
    let on: Vec<String> = vcpus_list(&xml).into_iter().map(|(_, e)| e).collect();
    assert_eq!(on, ["yes", "yes", "no", "no"]);
    // Lowered below the listed ids.
    assert_converges(&yaml("    vcpu: { count: 3 }\n"));
    let xml = g.inactive_xml();
    assert_eq!(text_of(&xml, &["vcpu"]).as_deref(), Some("3"));
    assert_eq!(vcpus_list(&xml).len(), 3, "{xml}");
    assert_eq!(first_attr(&xml, "vcpu", "current").as_deref(), Some("2"));
    assert_converges(&yaml("    vcpu: { count: 1 }\n"));
    let xml = g.inactive_xml();
    assert_eq!(vcpus_list(&xml), [("0".to_string(), "yes".to_string())]);
}

/// Regression: `os_variant` ids came from a hand-written rule (`centos7` → `…/centos/7`,
/// which osinfo-db does not have). They come from osinfo-db's table now; a short id newer
/// than the table falls back to its family's pattern.
#[test]
fn os_variant_ids_are_osinfo_dbs_and_converge() {
    let g = Guest::define("os-variant", Spec::default());
    for (short, id) in [
        ("centos7", "http://centos.org/centos/7.0"),
        ("debian6.0", "http://debian.org/debian/6"),
        ("ubuntu24.04", "http://ubuntu.com/ubuntu/24.04"),
    ] {
        let (p, _) = assert_converges(&format!(
            "guests:\n  {}:\n    os_variant: {short}\n",
            g.name()
        ));
        assert_eq!(paths(&p), ["os_variant"]);
        let xml = g.inactive_xml();
        assert_eq!(first_attr(&xml, "libosinfo:os", "id").as_deref(), Some(id));
        // Import names an id the way validation reads it back.
        let imported = kvmtune::domain::import::import_guest(&xml).unwrap();
        assert_eq!(
            imported
                .os_variant
                .as_deref()
                .and_then(kvmtune::desired::osinfo_id)
                .as_deref(),
            Some(id)
        );
    }
}

/// Enough guests for the define pool (16 and more define on four connections): every one is
/// defined, verified, and the next plan is empty; with `--validate` the same through the CLI.
#[test]
fn many_guests_define_on_a_pool_of_connections_and_converge() {
    let guests: Vec<Guest> = (0..18)
        .map(|i| Guest::define(&format!("pool{i:02}"), Spec::default()))
        .collect();
    let mut yaml = String::from("guests:\n");
    for (i, g) in guests.iter().enumerate() {
        yaml.push_str(&format!(
            "  {}:\n    cputune: {{ emulatorpin: \"{}\" }}\n    memtune: {{ hard_limit: {}M }}\n",
            g.name(),
            i % 2,
            1024 + i
        ));
    }
    let (p, report) = assert_converges(&yaml);
    assert_eq!(report.defines, 18, "{report:#?}");
    assert_eq!(p.actions.len(), 18);
    for (i, g) in guests.iter().enumerate() {
        let xml = g.inactive_xml();
        assert!(
            xml.contains(&format!("<emulatorpin cpuset='{}'/>", i % 2)),
            "{xml}"
        );
    }
    // Schema-validated defines through the CLI, on the same pool.
    let yaml2 = yaml.replace("hard_limit: 10", "hard_limit: 20");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, &yaml2).unwrap();
    let root = empty_root();
    let c = cfg.to_str().unwrap();
    let o = kvmtune(
        root.path(),
        &[
            "apply",
            c,
            "--auto-approve",
            "--validate",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["defines"], 18, "{r}");
    let o = kvmtune(root.path(), &["plan", c, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

/// Killed after the k-th define of a pooled apply (up to four defines in flight): every guest
/// is still defined and wholly its old definition or wholly the new tuning; a rerun converges.
#[test]
fn a_kill_during_pooled_defines_leaves_each_guest_old_or_new() {
    require_fault_hook();
    let guests: Vec<Guest> = (0..17)
        .map(|i| Guest::define(&format!("poolkill{i:02}"), Spec::default()))
        .collect();
    let old: Vec<String> = guests.iter().map(|g| g.inactive_xml()).collect();
    let mut yaml = String::from("guests:\n");
    for g in &guests {
        yaml.push_str(&format!(
            "  {}:\n    memtune: {{ hard_limit: 1500M }}\n",
            g.name()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, &yaml).unwrap();
    let c = cfg.to_str().unwrap();
    let root = empty_root();
    for k in [1, 8, 17] {
        for (g, x) in guests.iter().zip(&old) {
            let f = dir.path().join("old.xml");
            std::fs::write(&f, x).unwrap();
            virsh_ok(&["define", f.to_str().unwrap()]);
            assert_eq!(&g.inactive_xml(), x);
        }
        let o = kvmtune_fault(root.path(), &["apply", c, "--auto-approve"], "define", k);
        assert_killed_at(&o, "define", k);
        let mut new = 0;
        for (g, x) in guests.iter().zip(&old) {
            assert!(domain_exists(g.name()), "k={k}: {} undefined", g.name());
            let now = g.inactive_xml();
            if matches_new(&yaml, g.name(), &now) {
                new += 1;
            } else {
                assert_eq!(&now, x, "k={k}: {} is neither old nor new", g.name());
            }
        }
        assert!((k..=k + 4).contains(&new), "k={k}: {new} guests new");
        let o = kvmtune(root.path(), &["apply", c, "--auto-approve"]);
        assert_eq!(o.status.code(), Some(0), "k={k}: {}", describe(&o));
        let o = kvmtune(root.path(), &["plan", c, "--detailed-exitcode"]);
        assert_eq!(o.status.code(), Some(0), "k={k}: {}", describe(&o));
    }
}

/// `vcpupin: shared` and `iothreadpin: auto` on the real host (2 CPUs: reserved 0, shared
/// 1): defined, the guest floats over CPU 1 (`<vcpu cpuset='1'>`, its pin removed) with its
/// emulator and I/O thread on CPU 0; running, a pin it got meanwhile is re-pinned live to
/// the pool (the live XML reads as the pool, which is no change) and the plan settles.
#[test]
fn shared_pool_and_iothreadpin_auto_converge_on_the_real_host() {
    let g = Guest::define(
        "shared",
        Spec {
            vcpus: 1,
            tuning: "<iothreads>1</iothreads><cputune><vcpupin vcpu='0' cpuset='0'/></cputune>"
                .into(),
            ..Spec::default()
        },
    );
    let yaml = format!(
        "host:\n  cpu_pool: {{ reserved: \"0\", shared: \"1\" }}\nguests:\n  {}:\n    cputune: {{ vcpupin: shared, emulatorpin: auto, iothreadpin: auto }}\n    numatune: {{ memory: {{ mode: strict, nodeset: auto }} }}\n",
        g.name()
    );
    let (p, report) = assert_converges(&yaml);
    assert_eq!(report.defines, 1);
    assert!(
        p.changes
            .iter()
            .any(|c| c.path == "cputune.vcpupin.0" && c.after.is_none()),
        "{:?}",
        p.changes
    );
    let xml = g.inactive_xml();
    assert_eq!(
        first_attr(&xml, "vcpu", "cpuset").as_deref(),
        Some("1"),
        "{xml}"
    );
    assert!(vcpupins(&xml).is_empty(), "{xml}");
    assert_eq!(
        first_attr(&xml, "emulatorpin", "cpuset").as_deref(),
        Some("0")
    );
    assert_eq!(
        first_attr(&xml, "iothreadpin", "cpuset").as_deref(),
        Some("0")
    );
    assert_eq!(first_attr(&xml, "memory", "nodeset").as_deref(), Some("0"));

    // Running: pin vCPU 0 to CPU 0 behind kvmtune's back; the plan re-pins it live.
    g.start();
    virsh_ok(&["vcpupin", g.name(), "0", "0", "--live"]);
    let drift = plan_yaml(&yaml);
    let live: Vec<(&str, Effect)> = drift
        .changes
        .iter()
        .map(|c| (c.path.as_str(), c.effect))
        .collect();
    assert_eq!(
        live,
        [("cputune.vcpupin.0", Effect::Live)],
        "{:?}",
        drift.changes
    );
    let (_, report) = assert_converges(&yaml);
    assert_eq!(report.live_changes, 1, "{report:?}");
    let affinity = virsh_ok(&["vcpupin", g.name(), "0", "--live"]);
    assert!(
        affinity.contains("0: 1") || affinity.contains("0      1"),
        "{affinity}"
    );
}
