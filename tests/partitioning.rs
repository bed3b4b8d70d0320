//! Host partitioning end to end on one simulated 2-node SMT host: the demo host (2 nodes × 4
//! cores × 2 threads = 16 CPUs; `test:///` driver + examples/demo/root), the boot overlay of
//! tests/data/boot-host (the running kernel's /proc/cmdline, PID 1, BLS entries) and a
//! generated /proc/irq + workqueue tree. Every part of `cpu_pool` at once — reserved, shared,
//! `isolate.{kernel,irqs,systemd,workqueues}`, guests on `vcpupin: auto` with
//! `emulatorpin`/`iothreadpin: auto` and on `vcpupin: shared` —: the plan shows every write
//! with its effect, apply then plan = 0 changes, a second apply writes nothing, and rollback
//! restores the host's files.
//!
//! (`isolate.host_threads` moves real threads, so it runs only on the real host:
//! tests/real_isolation.rs.)

mod support;
use support::*;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kvmtune::libvirt::Hypervisor;

const HOST: &str = "host:
  cpu_pool:
    reserved: \"0,8\"
    shared: \"4,12\"
    isolate: { kernel: true, irqs: true, systemd: true, workqueues: true }
";

const GUESTS: &str = "guests:
  db1:
    cputune: { vcpupin: auto, emulatorpin: auto, iothreadpin: auto }
    iothreads: 1
    numatune: { memory: { mode: strict, nodeset: auto } }
  web1:
    cputune: { vcpupin: shared }
  web2:
    cputune: { vcpupin: shared }
";

/// IRQ number, smp_affinity_list, effective_affinity_list, device.
const IRQS: [(u32, &str, &str, &str); 4] = [
    (0, "0", "0", "timer"),
    (1, "0-15", "3", "i8042"),
    (24, "0-15", "5", "eth0"),
    (30, "2-3", "3", "nvme0q1"),
];

/// The simulated host: demo root + boot overlay + IRQs, workqueues, online CPUs.
fn sim_root() -> tempfile::TempDir {
    let root = demo_root();
    let r = root.path();
    copy_tree(&repo().join("tests/data/boot-host"), r);
    let put = |f: &str, text: &str| {
        let p = r.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    put("sys/devices/system/cpu/online", "0-15\n");
    put("sys/devices/virtual/workqueue/cpumask", "ffff\n");
    put("proc/irq/default_smp_affinity", "ffff\n");
    for (n, aff, eff, dev) in IRQS {
        put(
            &format!("proc/irq/{n}/smp_affinity_list"),
            &format!("{aff}\n"),
        );
        put(
            &format!("proc/irq/{n}/effective_affinity_list"),
            &format!("{eff}\n"),
        );
        std::fs::create_dir_all(r.join(format!("proc/irq/{n}/{dev}"))).unwrap();
    }
    root
}

/// Every regular file below `root` (except kvmtune's state directory) → its bytes.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel.starts_with("var/lib/kvmtune") {
                continue;
            }
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn read(root: &Path, f: &str) -> String {
    std::fs::read_to_string(root.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

fn cfg(dir: &Path, text: &str) -> String {
    let p = dir.join("partition.yaml");
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn host_partitioning_plans_every_write_converges_and_rolls_back() {
    let root = sim_root();
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), HOST);
    let before = tree(r);

    let o = kt(r, &["plan", &c]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let text = out(&o);
    insta::assert_snapshot!("partitioning_plan", text);
    // Every part shows, with its effect.
    for want in [
        "isolcpus",
        "nohz_full",
        "rcu_nocbs",
        "irqaffinity",
        "CPUAffinity",
        "default_smp_affinity",
        "cpu_pool.isolate.workqueues: ffff → 101",
        "cpu_pool.isolate.irqs.1: 0-15 → 0,8",
        "cpu_pool.isolate.irqs.24: 0-15 → 0,8",
        "cpu_pool.isolate.irqs.30: 2-3 → 0,8",
    ] {
        assert!(text.contains(want), "no `{want}` in\n{text}");
    }
    assert!(text.contains("reboot"), "{text}");
    // IRQ 0 is already on a reserved CPU: left alone.
    assert!(!text.contains("irqs.0:"), "{text}");

    let o = kt(r, &["apply", &c, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(read(r, "proc/irq/default_smp_affinity").trim(), "101");
    assert_eq!(
        read(r, "sys/devices/virtual/workqueue/cpumask").trim(),
        "101"
    );
    for n in [1, 24, 30] {
        assert_eq!(
            read(r, &format!("proc/irq/{n}/smp_affinity_list")).trim(),
            "0,8",
            "IRQ {n}"
        );
    }
    assert_eq!(read(r, "proc/irq/0/smp_affinity_list").trim(), "0");
    let grub = read(r, "etc/default/grub.d/90-kvmtune.cfg");
    assert!(
        grub.contains(
            "isolcpus=managed_irq,domain,1-3,5-7,9-11,13-15 nohz_full=1-3,5-7,9-11,13-15 rcu_nocbs=1-3,5-7,9-11,13-15 irqaffinity=0,8"
        ),
        "{grub}"
    );
    let systemd = read(r, "etc/systemd/system.conf.d/90-kvmtune.conf");
    assert!(systemd.contains("CPUAffinity=0 8"), "{systemd}");

    // Apply then plan = 0 changes; a second apply writes nothing and runs nothing.
    let o = kt(r, &["plan", &c, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(out(&o).contains("\nNo changes."), "{}", out(&o));
    let applied = tree(r);
    let o = kt(r, &["apply", &c, "--auto-approve", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(tree(r), applied, "a second apply changed files");

    // Rollback: every kernel value and every file that existed is as it was; the owned
    // files kvmtune created declare nothing.
    let o = kt(r, &["rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let after = tree(r);
    for (f, bytes) in &before {
        assert_eq!(
            after
                .get(f)
                .map(|b| String::from_utf8_lossy(b).into_owned()),
            Some(String::from_utf8_lossy(bytes).into_owned()),
            "{} not restored",
            f.display()
        );
    }
    for (f, bytes) in after.iter().filter(|(f, _)| !before.contains_key(*f)) {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            f.starts_with("etc")
                && text.starts_with("# Written by kvmtune")
                && text
                    .lines()
                    .all(|l| l.is_empty() || l.starts_with('#') || l.starts_with('[')),
            "{} is left declaring something:\n{text}",
            f.display()
        );
    }
}

#[test]
fn partitioned_host_and_its_guests_converge_together() {
    let root = sim_root();
    let r = root.path();
    let hv = Hypervisor::open(&demo_uri(), false).unwrap();
    let d = kvmtune::desired::load_str("partition.yaml", &format!("{HOST}{GUESTS}")).unwrap();
    let obs = kvmtune::observe::observe(&d, r, Some(&hv)).unwrap();
    let p = kvmtune::pipeline::plan(&d, &obs);
    assert!(p.errors.is_empty(), "{:#?}", p.errors);
    let after = |target: &str, path: &str| {
        p.changes
            .iter()
            .find(|c| c.target == target && c.path == path)
            .and_then(|c| c.after.clone())
    };
    // db1's vCPUs on dedicated CPUs of one node: not reserved, not shared.
    let dedicated: kvmtune::cpuset::CpuSet = "1-3,5-7,9-11,13-15".parse().unwrap();
    let mut db1 = Vec::new();
    for i in 0..4 {
        let c: kvmtune::cpuset::CpuSet = after("guest/db1", &format!("cputune.vcpupin.{i}"))
            .unwrap_or_else(|| panic!("no pin for vCPU {i}: {:#?}", p.changes))
            .parse()
            .unwrap();
        assert!(c.is_subset(&dedicated), "vCPU {i} on {c}");
        db1.push(c.highest());
    }
    let node = |c: u32| (c % 8) / 4;
    assert!(db1.iter().all(|c| node(*c) == node(db1[0])), "{db1:?}");
    // Its emulator and I/O thread on the reserved CPUs of that node (node 0 holds both).
    assert_eq!(
        after("guest/db1", "cputune.emulatorpin").as_deref(),
        Some("0,8")
    );
    assert_eq!(
        after("guest/db1", "cputune.iothreadpin.1").as_deref(),
        Some("0,8")
    );
    // web1 and web2 float over the shared pool (web2's pins over 0-7 are removed).
    assert_eq!(after("guest/web1", "vcpu.cpuset").as_deref(), Some("4,12"));
    assert_eq!(after("guest/web2", "vcpu.cpuset").as_deref(), Some("4,12"));
    // The host part is in the same plan.
    assert!(
        p.changes.iter().any(|c| c.target == "host"
            && c.path.starts_with("cpu_pool.isolate.kernel")
            && c.effect == kvmtune::model::Effect::Reboot),
        "{:#?}",
        p.changes
    );

    let report = kvmtune::apply::apply(&p, &d, r, Some(&hv));
    assert!(report.ok(), "{report:#?}");
    assert!(report.host_writes > 0 && report.defines >= 2, "{report:#?}");
    let obs = kvmtune::observe::observe(&d, r, Some(&hv)).unwrap();
    let again = kvmtune::pipeline::plan(&d, &obs);
    assert!(again.errors.is_empty(), "{:#?}", again.errors);
    assert!(again.changes.is_empty(), "{:#?}", again.changes);
    let second = kvmtune::apply::apply(&again, &d, r, Some(&hv));
    assert!(second.ok(), "{second:#?}");
    assert_eq!(
        (second.host_writes, second.host_commands, second.defines),
        (0, 0, 0)
    );
}
