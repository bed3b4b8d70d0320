//! The GitOps workflow against a real libvirtd (`$KVMTUNE_TEST_URI`, default qemu:///system):
//! import round trip of real guests (stopped and running), saved plans refused when a guest
//! moved, guest backups (named by UUID) and rollback, and SIGKILL during apply to several
//! guests (every guest stays defined, a rerun converges).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

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

#[test]
fn sigkill_during_apply_leaves_every_guest_defined_and_a_rerun_converges() {
    let guests: Vec<Guest> = (0..6)
        .map(|i| Guest::define(&format!("kill{i}"), Spec::default()))
        .collect();
    let names: Vec<String> = guests.iter().map(|g| g.name().to_string()).collect();
    let root = empty_root();
    let dir = tempfile::tempdir().unwrap();
    // How long a whole apply takes, to spread the kill points over it.
    let cfg = write(dir.path(), "a.yaml", &kill_config(&names, true));
    let t = Instant::now();
    let o = kvmtune(root.path(), &["apply", &cfg, "--auto-approve"]);
    let full = t.elapsed();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    eprintln!("full apply of {} guests: {full:?}", names.len());

    let other = write(dir.path(), "b.yaml", &kill_config(&names, false));
    let mut killed = 0;
    // Per kill point: how many guests already had B's definition.
    let mut partial = Vec::new();
    // Ten kill points spread over the length of a whole apply (process start included).
    let points: Vec<u64> = (0..10).map(|i| full.as_millis() as u64 * i / 10).collect();
    for &delay_ms in &points {
        // Back to A (this is also the rerun after the previous kill: it must converge).
        let o = kvmtune(
            root.path(),
            &["apply", &cfg, "--auto-approve", "--lock-timeout", "5"],
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "rerun after a kill: {}",
            describe(&o)
        );
        // Then kill an apply of B, which changes every guest.
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kvmtune"))
            .env_remove("LIBVIRT_DEFAULT_URI")
            .args(["--connect", &uri(), "--root"])
            .arg(root.path())
            .args(["apply", &other, "--auto-approve"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        // SIGKILL, by pid, only our own child.
        let finished = child.try_wait().unwrap().is_some();
        if !finished {
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            killed += 1;
        }
        let status = child.wait().unwrap();
        eprintln!("kill at {delay_ms} ms: finished before the kill: {finished}, {status}");
        let mut defined_b = 0;
        for n in &names {
            assert!(
                domain_exists(n),
                "{n} undefined after a kill at {delay_ms} ms"
            );
            let xml = virsh_ok(&["dumpxml", "--inactive", n]);
            assert!(kvmtune::xmltree::Document::parse(&xml).is_ok());
            defined_b += xml.contains(">2</vcpu>") as usize;
        }
        partial.push(defined_b);
    }
    eprintln!(
        "kill points {points:?} ms: killed {killed} of {} applies; guests already redefined at each: {partial:?}",
        points.len()
    );
    assert!(
        partial.iter().any(|p| *p > 0 && *p < names.len()),
        "no kill landed between two defines: {partial:?}"
    );
    assert!(
        killed >= 4,
        "the kills came too late to test anything ({killed})"
    );
    // A rerun converges: no lock left behind, every guest planned again from what is there.
    let cfg = write(dir.path(), "final.yaml", &kill_config(&names, true));
    let o = kvmtune(
        root.path(),
        &["apply", &cfg, "--auto-approve", "--lock-timeout", "5"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kvmtune(root.path(), &["plan", &cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    drop(guests);
}
