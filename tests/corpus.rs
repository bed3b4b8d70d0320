//! Preservation and idempotency on libvirt's own test-suite domain XMLs
//! (`tests/data/libvirt-domains`): for every file, a broad tuning is planned; the edited
//! XML must plan to zero changes, and once kvmtune's owned elements are stripped from both,
//! the original and edited documents must be byte-identical.

mod support;
use support::{corpus, Rng};

use kvmtune::desired::load_str;
use kvmtune::domain::plan_guest;
use kvmtune::units::PageSize;
use kvmtune::xmltree::Document;

/// Removes every element kvmtune may own, so what is left must never change.
fn strip_owned(xml: &str) -> String {
    let mut d = Document::parse(xml).unwrap();
    let root = d.root();
    for name in [
        "vcpu",
        "vcpus",
        "cputune",
        "numatune",
        "memoryBacking",
        "cpu",
        "iothreads",
        "iothreadids",
        "blkiotune",
        "memtune",
        "metadata",
    ] {
        if let Some(e) = d.child(root, name) {
            d.remove(e);
        }
    }
    if let Some(f) = d.child(root, "features") {
        if let Some(pmu) = d.child(f, "pmu") {
            d.remove(pmu);
        }
        if let Some(hv) = d.child(f, "hyperv") {
            d.remove(hv);
        }
        if d.elements(f).is_empty() && d.attrs(f).is_empty() {
            d.remove(f);
        }
    }
    if let Some(clock) = d.child(root, "clock") {
        for t in d.children_named(clock, "timer") {
            if d.attr(t, "name").as_deref() == Some("hypervclock") {
                d.remove(t);
            }
        }
        // Emptied or empty (`<clock offset='utc'/>` gains a timer): its attributes are not
        // kvmtune's, but an emptied element prints as `<clock ...></clock>`.
        if d.elements(clock).is_empty() {
            d.remove(clock);
        }
    }
    if let Some(devs) = d.child(root, "devices") {
        for dev in d
            .children_named(devs, "disk")
            .into_iter()
            .chain(d.children_named(devs, "interface"))
        {
            for child in ["driver", "model", "iotune", "mtu"] {
                if let Some(c) = d.child(dev, child) {
                    d.remove(c);
                }
            }
        }
    }
    if let Some(devs) = d.child(root, "devices") {
        for e in d.elements(devs) {
            let n = d.name(e).to_string();
            let t = d.attr(e, "type");
            if [
                "sound",
                "redirdev",
                "smartcard",
                "parallel",
                "watchdog",
                "memballoon",
            ]
            .contains(&n.as_str())
                || (n == "input" && t.as_deref() == Some("tablet"))
                || (n == "channel" && t.as_deref() == Some("spicevmc"))
            {
                d.remove(e);
            }
        }
    }
    d.to_xml()
}

fn vcpus(xml: &str) -> u32 {
    let d = Document::parse(xml).unwrap();
    d.child(d.root(), "vcpu")
        .and_then(|v| d.text(v).parse().ok())
        .unwrap_or(1)
}

fn tunings(n: u32) -> Vec<String> {
    vec![
        format!(
            "guests:\n  g:\n    vcpu: {{ placement: static, cpuset: \"0-3,^2\" }}\n    cputune: {{ vcpupin: {{ 0: \"1\" }}, emulatorpin: \"0-1\", shares: 2048, period: 100000, quota: -1, emulator_period: 100000, emulator_quota: 50000, vcpusched: [ {{ vcpus: \"0\", scheduler: fifo, priority: 1 }} ] }}\n    numatune: {{ memory: {{ mode: interleave, nodeset: \"0\" }} }}\n    memory_backing: {{ hugepages: {{ size: 2M }}, locked: true, nosharepages: true }}\n    features: {{ pmu: false }}\n    hyperv: recommended\n    cpu: {{ mode: host-passthrough, topology: {{ sockets: 1, cores: {n}, threads: 1 }} }}\n    disks: {{ \"*\": {{ cache: none, io: native }} }}\n    interfaces: {{ \"*\": {{ model: virtio, driver: vhost, queues: 2 }} }}\n"
        ),
        "guests:\n  g:\n    vcpu: { count: 2, current: 1 }\n    cputune: { vcpupin: {} }\n    memory_backing: { hugepages: false, locked: false, nosharepages: false }\n    features: { pmu: true }\n    cpu: { mode: custom, model: Skylake-Server }\n    disks: { \"*\": { cache: writeback } }\n    interfaces: { \"*\": { model: e1000e } }\n".to_string(),
        "guests:\n  g:\n    numatune: { memory: { placement: auto } }\n    realtime: { mask: \"^0\" }\n    memory_backing: { hugepages: true }\n    cpu: { mode: host-model }\n".to_string(),
        "guests:\n  g:\n    iothreads: 2\n    cputune: { iothreadpin: { 1: \"0\", 2: \"1\" } }\n    blkiotune: { weight: 500, devices: { /dev/sda: { weight: 300, read_iops_sec: 1000 } } }\n    memtune: { hard_limit: 8G, soft_limit: 4G, swap_hard_limit: 10G }\n    disks: { \"*\": { iothread: 1, iotune: { total_iops_sec: 1000, read_bytes_sec: 1048576 } } }\n    interfaces: { \"*\": { mtu: 9000 } }\n    remove_devices: [sound, tablet, usb-redirect, smartcard, parallel, watchdog, spice-channel, memballoon]\n    os_variant: rhel9.0\n    cpu: { mode: custom, model: Haswell, features: { require: [avx2, invtsc], disable: [svm] } }\n".to_string(),
    ]
}

#[test]
fn corpus_tuning_is_idempotent_and_preserves_everything_else() {
    let mut edited = 0;
    for (name, xml) in corpus() {
        for (i, yaml) in tunings(vcpus(&xml)).iter().enumerate() {
            let d = load_str("t.yaml", yaml).unwrap();
            let g = d.guests.values().next().unwrap();
            let plan = match plan_guest(g, &xml, Some(PageSize::TWO_MIB)) {
                Ok(p) => p,
                // Guests without a matching vCPU count cannot take this topology: a clear issue.
                Err(issues) => {
                    assert!(!issues.is_empty());
                    continue;
                }
            };
            if !plan.changes.is_empty() {
                edited += 1;
            }
            let again = plan_guest(g, &plan.new_xml, Some(PageSize::TWO_MIB)).unwrap();
            assert!(
                again.changes.is_empty(),
                "{name} tuning {i}: not idempotent: {:?}",
                again.changes
            );
            assert_eq!(again.new_xml, plan.new_xml, "{name} tuning {i}");
            assert_eq!(
                strip_owned(&xml),
                strip_owned(&plan.new_xml),
                "{name} tuning {i}: something outside the owned elements changed"
            );
        }
    }
    assert!(edited > 100, "only {edited} edits were exercised");
}

#[test]
fn unchanged_settings_leave_the_xml_byte_identical() {
    for (name, xml) in corpus() {
        // Declare exactly what is already there (where it is there).
        let d = Document::parse(&xml).unwrap();
        let Some(v) = d.child(d.root(), "vcpu") else {
            continue;
        };
        let yaml = format!("guests:\n  g:\n    vcpu: {{ count: {} }}\n", d.text(v));
        let desired = load_str("t.yaml", &yaml).unwrap();
        let p = plan_guest(desired.guests.values().next().unwrap(), &xml, None).unwrap();
        assert!(p.changes.is_empty(), "{name}: {:?}", p.changes);
        assert_eq!(p.new_xml, xml, "{name}");
    }
}

/// A random valid guest configuration: each owned key present or not, with random values.
fn random_guest(r: &mut Rng, vcpus: u32) -> String {
    let cpuset = |r: &mut Rng| {
        let a = r.below(8);
        match r.below(3) {
            0 => format!("\"{a}\""),
            1 => format!("\"{a}-{}\"", a + r.below(4)),
            _ => format!("\"0-{},^{}\"", a + 2, a + 1),
        }
    };
    let mut y = String::from("guests:\n  g:\n");
    if r.coin() {
        y += &format!(
            "    vcpu: {{ placement: {}, cpuset: {} }}\n",
            r.pick(&["static", "auto"]),
            cpuset(r)
        );
    }
    let mut ct = Vec::new();
    if r.coin() {
        let mut pins = Vec::new();
        for i in 0..vcpus.min(4) {
            if r.coin() {
                pins.push(format!("{i}: {}", cpuset(r)));
            }
        }
        ct.push(format!("vcpupin: {{ {} }}", pins.join(", ")));
    }
    if r.coin() {
        ct.push(format!("emulatorpin: {}", cpuset(r)));
    }
    let iothreads = r.coin().then(|| 1 + r.below(3));
    if let Some(n) = iothreads {
        y += &format!("    iothreads: {n}\n");
        if r.coin() {
            ct.push(format!("iothreadpin: {{ 1: {} }}", cpuset(r)));
        }
    }
    if r.coin() {
        ct.push(format!(
            "shares: {}, quota: {}",
            1 + r.below(4096),
            r.pick(&["-1", "20000"])
        ));
    }
    if r.coin() {
        ct.push(format!(
            "vcpusched: [ {{ vcpus: \"0\", scheduler: {} }} ]",
            r.pick(&["batch", "idle", "fifo, priority: 5", "rr, priority: 1"])
        ));
    }
    if !ct.is_empty() {
        y += &format!("    cputune: {{ {} }}\n", ct.join(", "));
    }
    if r.coin() {
        y += &format!(
            "    numatune: {{ memory: {{ mode: {}, nodeset: {} }} }}\n",
            r.pick(&["strict", "interleave", "preferred"]),
            cpuset(r)
        );
    }
    if r.coin() {
        y += &format!(
            "    memory_backing: {{ hugepages: {}, locked: {}, nosharepages: {} }}\n",
            r.pick(&["true", "false", "{ size: 2M }", "{ size: 1G }"]),
            r.coin(),
            r.coin()
        );
    }
    if r.coin() {
        y += &format!("    features: {{ pmu: {} }}\n", r.coin());
    }
    if r.coin() {
        let mode = r.pick(&["host-passthrough", "host-model", "custom"]);
        let model = if mode == "custom" {
            ", model: Haswell"
        } else {
            ""
        };
        let topo = if r.coin() {
            format!(", topology: {{ sockets: 1, cores: {vcpus}, threads: 1 }}")
        } else {
            String::new()
        };
        let feat = if r.coin() {
            ", features: { require: [invtsc], disable: [svm] }"
        } else {
            ""
        };
        y += &format!("    cpu: {{ mode: {mode}{model}{topo}{feat} }}\n");
    }
    if r.coin() {
        let cache = r.pick(&["none", "writethrough", "writeback", "directsync", "unsafe"]);
        let io = if cache == "none" {
            r.pick(&["native", "threads", "io_uring"])
        } else {
            r.pick(&["threads", "io_uring"])
        };
        let t = match iothreads {
            Some(_) if r.coin() => ", iothread: 1",
            _ => "",
        };
        let tune = if r.coin() {
            ", iotune: { total_iops_sec: 500, read_bytes_sec: 1048576 }"
        } else {
            ""
        };
        y += &format!("    disks: {{ \"*\": {{ cache: {cache}, io: {io}{t}{tune} }} }}\n");
    }
    if r.coin() {
        y += &format!(
            "    interfaces: {{ \"*\": {{ model: {} }} }}\n",
            r.pick(&["virtio", "e1000e", "rtl8139"])
        );
    }
    if r.coin() {
        y += &format!(
            "    blkiotune: {{ weight: {}, devices: {{ /dev/sda: {{ weight: 200 }} }} }}\n",
            100 + r.below(900)
        );
    }
    if r.coin() {
        y += "    memtune: { hard_limit: 2G, soft_limit: 1G }\n";
    }
    if r.coin() {
        y += "    remove_devices: [sound, tablet, usb-redirect, watchdog, memballoon]\n";
    }
    if r.coin() {
        y += &format!(
            "    os_variant: {}\n",
            r.pick(&["rhel9.0", "debian12", "win2k22"])
        );
    }
    y
}

/// Property: for random valid configurations and every corpus domain, render is idempotent
/// (rendering the output again changes nothing and gives the same bytes) and nothing outside
/// the owned elements changes.
#[test]
fn random_configs_render_stably_and_preserve_the_rest() {
    let files = corpus();
    let mut r = Rng(0x5eed_cafe_f00d_1234);
    let (mut planned, mut issues) = (0, 0);
    for case in 0..600 {
        let (name, xml) = &files[r.below(files.len() as u64) as usize];
        let yaml = random_guest(&mut r, vcpus(xml));
        let d = load_str("t.yaml", &yaml)
            .unwrap_or_else(|e| panic!("case {case}: generated config invalid: {e}\n{yaml}"));
        let g = d.guests.values().next().unwrap();
        let p = match plan_guest(g, xml, Some(PageSize::TWO_MIB)) {
            Ok(p) => p,
            Err(_) => {
                issues += 1;
                continue;
            }
        };
        planned += 1;
        let again = plan_guest(g, &p.new_xml, Some(PageSize::TWO_MIB)).unwrap();
        assert!(
            again.changes.is_empty(),
            "case {case} ({name}): not idempotent: {:?}\n{yaml}",
            again.changes
        );
        assert_eq!(again.new_xml, p.new_xml, "case {case} ({name})");
        assert_eq!(
            strip_owned(xml),
            strip_owned(&p.new_xml),
            "case {case} ({name}): outside the owned elements changed\n{yaml}"
        );
    }
    eprintln!("random configs: {planned} planned, {issues} rejected with a plan issue");
    assert!(planned > 400, "planned {planned}, issues {issues}");
}
