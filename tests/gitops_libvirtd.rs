//! The GitOps workflow against a real libvirtd (`$KVMTUNE_TEST_URI`, default qemu:///system):
//! import round trip of real guests (stopped and running), saved plans refused when a guest
//! moved, guest backups (named by UUID) and rollback, and SIGKILL right after the backup and
//! after each define of an apply to several guests (every guest stays defined, a rerun
//! converges; needs `--features fault-injection`).

mod common;

use std::path::Path;

use common::*;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const RICH: &str = "<iothreads>2</iothreads>\
    <cputune><vcpupin vcpu='0' cpuset='0'/><vcpupin vcpu='1' cpuset='1'/>\
    <emulatorpin cpuset='0-1'/><iothreadpin iothread='1' cpuset='1'/></cputune>\
    <numatune><memory mode='strict' nodeset='0'/></numatune>\
    <blkiotune><weight>500</weight></blkiotune>\
    <memtune><hard_limit unit='KiB'>1048576</hard_limit></memtune>\
    <memoryBacking><hugepages/></memoryBacking>\
    <cpu mode='host-passthrough'><topology sockets='1' cores='2' threads='2'/>\
    <feature policy='disable' name='vmx'/></cpu>";

fn rich_spec() -> Spec {
    Spec {
        vcpus: 4,
        vcpu_attrs: " placement='static' cpuset='0-1'".into(),
        tuning: RICH.into(),
        disk_driver: " cache='none' io='native' iothread='1'".into(),
        nic_model: "virtio".into(),
        ..Spec::default()
    }
}

fn import_then_plan_is_empty(name: &str) -> String {
    let root = empty_root();
    let dir = tempfile::tempdir().unwrap();
    let o = kvmtune(root.path(), &["import", "--guest", name]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let yaml = stdout(&o);
    let f = write(dir.path(), "imported.yaml", &yaml);
    let o = kvmtune(root.path(), &["plan", &f, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{yaml}", describe(&o));
    yaml
}

#[test]
fn import_of_a_stopped_guest_with_every_owned_setting_plans_zero_changes() {
    let g = Guest::define("import-rich", rich_spec());
    let yaml = import_then_plan_is_empty(g.name());
    for k in [
        "count: 4",
        "cpuset: 0-1",
        "vcpupin:",
        "emulatorpin: 0-1",
        "iothreadpin:",
        "nodeset: '0'",
        "hugepages: true",
        "mode: host-passthrough",
        "cores: 2",
        "- vmx",
        "cache: none",
        "io: native",
        "iothread: 1",
        "model: virtio",
        "weight: 500",
        "hard_limit: 1048576",
        "iothreads: 2",
        "os_variant: debian12",
    ] {
        assert!(yaml.contains(k), "`{k}` not imported:\n{yaml}");
    }
}

#[test]
fn import_of_a_running_guest_plans_zero_changes() {
    let g = Guest::define(
        "import-run",
        Spec {
            tuning: "<cputune><vcpupin vcpu='0' cpuset='1'/><emulatorpin cpuset='0'/></cputune>\
                     <blkiotune><weight>300</weight></blkiotune>"
                .into(),
            nic_model: "virtio".into(),
            ..Spec::default()
        },
    );
    g.start();
    let yaml = import_then_plan_is_empty(g.name());
    assert!(
        yaml.contains("vcpupin:") && yaml.contains("weight: 300"),
        "{yaml}"
    );
}

#[test]
fn saved_plan_is_refused_when_a_guest_moved_and_applies_when_current() {
    let g = Guest::define("saved", Spec::default());
    let root = empty_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        &format!("guests:\n  {}:\n    vcpu: {{ count: 1 }}\n", g.name()),
    );
    let plan = dir.path().join("plan.json").display().to_string();
    let o = kvmtune(root.path(), &["plan", &cfg, "--out", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // Someone changes the guest behind kvmtune's back.
    virsh_ok(&["setvcpus", g.name(), "3", "--config", "--maximum"]);
    let o = kvmtune(root.path(), &["apply", &plan]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        stderr(&o).contains(&format!(
            "stale plan: the state of guest/{} changed",
            g.name()
        )),
        "{}",
        describe(&o)
    );
    assert!(g.inactive_xml().contains(">3</vcpu>"));
    // A fresh saved plan applies and converges.
    let o = kvmtune(root.path(), &["plan", &cfg, "--out", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kvmtune(root.path(), &["apply", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kvmtune(root.path(), &["plan", &cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn apply_backs_up_each_guest_by_uuid_and_rollback_restores_its_definition() {
    let g = Guest::define(
        "rollback",
        Spec {
            vcpus: 2,
            tuning: "<cputune><vcpupin vcpu='0' cpuset='1'/></cputune>".into(),
            devices_extra: "<sound model='ich9'/>".into(),
            ..Spec::default()
        },
    );
    let before = g.inactive_xml();
    let root = empty_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        &format!(
            "guests:\n  {}:\n    vcpu: {{ count: 1 }}\n    cputune: {{ vcpupin: {{ 0: \"0\" }} }}\n    \
             cpu: {{ mode: host-passthrough }}\n    remove_devices: [sound]\n",
            g.name()
        ),
    );
    let o = kvmtune(root.path(), &["apply", &cfg, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(!g.inactive_xml().contains("<sound"));

    let uuid = virsh_ok(&["domuuid", g.name()]).trim().to_string();
    let applies = root.path().join("var/lib/kvmtune/applies");
    let rec = std::fs::read_dir(&applies)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let names: Vec<String> = std::fs::read_dir(&rec)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.contains(&format!("guest-{uuid}.xml")), "{names:?}");
    assert!(names.iter().all(|n| !n.contains(g.name())), "{names:?}");
    assert_eq!(
        std::fs::read_to_string(rec.join(format!("guest-{uuid}.xml"))).unwrap(),
        before
    );

    let o = kvmtune(root.path(), &["rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let shown = stdout(&o);
    assert!(
        shown.contains("vcpu.count: 1 → 2") && shown.contains("cpu.mode"),
        "{shown}"
    );
    let after = g.inactive_xml();
    assert_eq!(
        after, before,
        "rollback restores the definition byte for byte"
    );
}

/// Two configurations that differ in every guest, so each apply has work on all of them.
fn kill_config(names: &[String], flip: bool) -> String {
    let mut y = String::from("guests:\n");
    for n in names {
        let (count, pin, cache) = if flip {
            (1, "0", "none")
        } else {
            (2, "1", "writeback")
        };
        y.push_str(&format!(
            "  {n}:\n    vcpu: {{ count: {count} }}\n    cputune: {{ vcpupin: {{ 0: \"{pin}\" }}, emulatorpin: \"{pin}\" }}\n    \
             disks: {{ \"*\": {{ cache: {cache} }} }}\n    interfaces: {{ \"*\": {{ model: virtio }} }}\n"
        ));
    }
    y
}

/// SIGKILL right after the backup and right after each of the six defines of an apply that
/// changes every guest (the `fault-injection` hook, `KVMTUNE_FAULT=<point>:<k>`): every guest
/// stays defined, exactly the first k are redefined, and a rerun converges to a plan of zero
/// changes (no lock left behind, every guest planned again from what is there).
#[test]
fn sigkill_during_apply_leaves_every_guest_defined_and_a_rerun_converges() {
    require_fault_hook();
    let guests: Vec<Guest> = (0..6)
        .map(|i| Guest::define(&format!("kill{i}"), Spec::default()))
        .collect();
    let names: Vec<String> = guests.iter().map(|g| g.name().to_string()).collect();
    let root = empty_root();
    let dir = tempfile::tempdir().unwrap();
    let a = write(dir.path(), "a.yaml", &kill_config(&names, true));
    let b_yaml = kill_config(&names, false);
    let b = write(dir.path(), "b.yaml", &b_yaml);
    let points: Vec<(&str, usize)> = std::iter::once(("backup", 1))
        .chain((1..=names.len()).map(|k| ("define", k)))
        .collect();
    for &(point, k) in &points {
        // From A (for the first point, also the first apply) ...
        let o = kvmtune(root.path(), &["apply", &a, "--auto-approve"]);
        assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
        let before: Vec<String> = guests.iter().map(|g| g.inactive_xml()).collect();
        // ... an apply of B, which changes every guest, killed at the point.
        let o = kvmtune_fault(root.path(), &["apply", &b, "--auto-approve"], point, k);
        assert_killed_at(&o, point, k);
        let mut redefined = 0;
        for (g, old) in guests.iter().zip(&before) {
            assert!(
                domain_exists(g.name()),
                "{point}:{k}: {} undefined",
                g.name()
            );
            let xml = g.inactive_xml();
            if xml != *old {
                assert!(
                    matches_new(&b_yaml, g.name(), &xml),
                    "{point}:{k}: {} is neither old nor new:\n{xml}",
                    g.name()
                );
                redefined += 1;
            }
        }
        let want = if point == "define" { k } else { 0 };
        assert_eq!(redefined, want, "{point}:{k}: guests redefined");
        let o = kvmtune(
            root.path(),
            &["apply", &b, "--auto-approve", "--lock-timeout", "5"],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{point}:{k}: rerun: {}",
            describe(&o)
        );
        let o = kvmtune(root.path(), &["plan", &b, "--detailed-exitcode"]);
        assert_eq!(o.status.code(), Some(0), "{point}:{k}: {}", describe(&o));
    }
    drop(guests);
}

/// The named guest's action in a saved plan's JSON.
fn action_of<'a>(plan: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    plan["actions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["kind"] == "guest" && a["action"]["name"] == name)
        .unwrap_or_else(|| panic!("no action for {name}"))
        .get_mut("action")
        .unwrap()
}

#[test]
fn a_saved_plan_defining_another_domains_xml_is_refused_and_the_real_plan_converges() {
    let a = Guest::define("tamper-a", Spec::default());
    let b = Guest::define("tamper-b", Spec::default());
    let root = empty_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        &format!(
            "guests:\n  {}:\n    cputune: {{ emulatorpin: \"0\" }}\n  {}:\n    memtune: {{ hard_limit: 1G }}\n",
            a.name(),
            b.name()
        ),
    );
    let plan = dir.path().join("plan.json");
    let o = kvmtune(
        root.path(),
        &["plan", &cfg, "--out", plan.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let (xa, xb) = (a.inactive_xml(), b.inactive_xml());
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    for (what, edit) in [
        ("another domain's XML", 0),
        ("a changed UUID", 1),
        ("an undeclared device", 2),
    ] {
        let mut p = good.clone();
        let b_xml = action_of(&mut p, b.name())["new_xml"].clone();
        let act = action_of(&mut p, a.name());
        let xml = act["new_xml"].as_str().unwrap().to_string();
        let uuid = act["uuid"].as_str().unwrap().to_string();
        act["new_xml"] = match edit {
            0 => b_xml,
            1 => serde_json::json!(xml.replace(&uuid, "00000000-0000-0000-0000-000000000001")),
            _ => serde_json::json!(
                xml.replace("</devices>", "<watchdog model='i6300esb'/></devices>")
            ),
        };
        let edited = dir.path().join("edited.json");
        std::fs::write(&edited, p.to_string()).unwrap();
        let o = kvmtune(root.path(), &["apply", edited.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", describe(&o));
        assert!(
            stderr(&o).contains("refusing the saved plan, nothing was applied"),
            "{what}: {}",
            describe(&o)
        );
        assert_eq!(a.inactive_xml(), xa, "{what}: guest a changed");
        assert_eq!(b.inactive_xml(), xb, "{what}: guest b changed");
    }
    let o = kvmtune(root.path(), &["apply", plan.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(a.inactive_xml().contains("<emulatorpin cpuset='0'/>"));
    let o = kvmtune(root.path(), &["plan", &cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn apply_of_a_saved_plan_with_auto_pins_writes_the_lock_file_and_converges() {
    let g = Guest::define("lockfile", Spec::default());
    let root = empty_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        &format!(
            // Overcommit: other guests on this (2-CPU) host may hold pinned CPUs.
            "host:\n  cpu_pool: {{ allow_overcommit: true }}\nguests:\n  {}:\n    vcpu: {{ count: 1 }}\n    cputune: {{ vcpupin: auto }}\n",
            g.name()
        ),
    );
    let lock = dir.path().join("kvmtune.lock.yaml");
    let lock_s = lock.to_str().unwrap();
    let plan = dir.path().join("plan.json");
    let o = kvmtune(
        root.path(),
        &[
            "--lock-file",
            lock_s,
            "plan",
            &cfg,
            "--out",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(!lock.exists(), "plan wrote the lock file");
    let o = kvmtune(
        root.path(),
        &["--lock-file", lock_s, "apply", plan.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let l = kvmtune::model::lock::Lock::parse(&std::fs::read_to_string(&lock).unwrap()).unwrap();
    let pins = &l.guests[g.name()].vcpupin;
    let xml = g.inactive_xml();
    for (i, cpu) in pins.iter().enumerate() {
        assert!(
            xml.contains(&format!("<vcpupin vcpu='{i}' cpuset='{cpu}'/>")),
            "{xml}"
        );
    }
    let o = kvmtune(
        root.path(),
        &["--lock-file", lock_s, "plan", &cfg, "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}
