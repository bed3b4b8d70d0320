//! Automatic pinning end to end on libvirt's `test:///` driver with a generated 4-node host
//! (host XML + sysfs tree under a temp --root), through the library and the CLI (lock file,
//! `check` exit codes).

use std::path::{Path, PathBuf};

use std::process::Command;

use kvmtune::libvirt::Hypervisor;
use kvmtune::{apply, observe, plan};

/// 4 nodes × 4 cores × 2 threads: node n = CPUs 4n..4n+3 and 16+4n..16+4n+3.
fn write_host(dir: &Path) -> (String, PathBuf) {
    let t = kvmtune::topology::HostTopology::synthetic(4, 4, 2);
    let root = dir.join("root");
    for n in t.nodes() {
        let nd = root.join(format!("sys/devices/system/node/node{n}"));
        std::fs::create_dir_all(&nd).unwrap();
        let list = kvmtune::cpuset::CpuSet::from_cpus(t.node_cpus(n)).unwrap();
        std::fs::write(nd.join("cpulist"), format!("{list}\n")).unwrap();
    }
    for c in &t.cpus {
        let td = root.join(format!("sys/devices/system/cpu/cpu{}/topology", c.id));
        std::fs::create_dir_all(&td).unwrap();
        std::fs::write(td.join("physical_package_id"), format!("{}\n", c.socket)).unwrap();
        std::fs::write(td.join("core_id"), format!("{}\n", c.core)).unwrap();
    }
    let dom = |name: &str, vcpus: u32, extra: &str| {
        format!(
            "<domain type='test'><name>{name}</name><memory unit='KiB'>1048576</memory>\
             <vcpu placement='static'>{vcpus}</vcpu>{extra}<os><type arch='x86_64'>hvm</type></os>\
             <devices/></domain>"
        )
    };
    let xml = format!(
        "<node><cpu><nodes>4</nodes><sockets>1</sockets><cores>4</cores><threads>2</threads>\
         <active>32</active><mhz>2600</mhz><model>x86_64</model></cpu><memory>67108864</memory>\
         {}{}{}{}{}</node>",
        dom("db1", 8, ""),
        dom("db2", 4, ""),
        dom("web1", 2, ""),
        dom("web2", 2, ""),
        // Not managed: pins CPUs 4 and 20 (node 1, core 0): they are taken.
        dom(
            "other",
            2,
            "<cputune><vcpupin vcpu='0' cpuset='4'/><vcpupin vcpu='1' cpuset='20'/></cputune>"
        ),
    );
    let host = dir.join("host.xml");
    std::fs::write(&host, xml).unwrap();
    (format!("test://{}", host.display()), root)
}

const CFG: &str = "host:\n  cpu_pool: { reserved: \"0,16\" }\nguests:\n  db1:\n    cputune: { vcpupin: auto, emulatorpin: auto }\n    numatune: { memory: { mode: strict, nodeset: auto } }\n    cpu: { mode: host-passthrough, topology: { sockets: 1, cores: 4, threads: 2 } }\n    placement: { threads: require }\n  db2:\n    cputune: { vcpupin: auto, emulatorpin: isolate }\n    numatune: { memory: { nodeset: auto } }\n    placement: { numa_node: 1 }\n  web1:\n    cputune: { vcpupin: auto }\n";

fn pins(p: &plan::Plan, guest: &str) -> Vec<u32> {
    let mut v: Vec<(u32, u32)> = p
        .changes
        .iter()
        .filter(|c| c.target == format!("guest/{guest}"))
        .filter_map(|c| {
            let i = c.path.strip_prefix("cputune.vcpupin.")?.parse().ok()?;
            Some((i, c.after.as_ref()?.parse().ok()?))
        })
        .collect();
    v.sort();
    v.into_iter().map(|x| x.1).collect()
}

fn node_of(c: u32) -> u32 {
    (c % 16) / 4
}

#[test]
fn multi_node_host_gets_single_node_pins_applies_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, root) = write_host(dir.path());
    let hv = Hypervisor::open(&uri, false).unwrap();
    let d = kvmtune::desired::load_str("t.yaml", CFG).unwrap();
    let obs = observe::observe(&d, &root, Some(&hv)).unwrap();
    assert!(obs.topology.is_some() && obs.other_pins.contains_key("other"));
    let p = kvmtune::pipeline::plan(&d, &obs);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let (db1, db2, web1) = (pins(&p, "db1"), pins(&p, "db2"), pins(&p, "web1"));
    assert_eq!(db1.len(), 8);
    assert_eq!(db2.len(), 4);
    assert_eq!(web1.len(), 2);
    // db1 fills one node with whole cores (sibling pairs, vCPU 2k and 2k+1 share a core).
    for pair in db1.chunks(2) {
        assert_eq!(pair[0] + 16, pair[1], "{db1:?}");
    }
    // Every guest on one node; db2 on node 1; nothing reserved or taken; nothing twice.
    let mut all: Vec<u32> = db1.iter().chain(&db2).chain(&web1).copied().collect();
    for g in [&db1, &db2, &web1] {
        assert!(g.iter().all(|c| node_of(*c) == node_of(g[0])), "{g:?}");
    }
    assert!(db2.iter().all(|c| node_of(*c) == 1));
    all.sort();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "a CPU given twice");
    assert!(!all.iter().any(|c| [0, 16, 4, 20].contains(c)), "{all:?}");
    let nodeset = |g: &str| {
        p.changes
            .iter()
            .find(|c| c.target == format!("guest/{g}") && c.path == "numatune.memory.nodeset")
            .and_then(|c| c.after.clone())
    };
    assert_eq!(nodeset("db1"), Some(node_of(db1[0]).to_string()));
    assert_eq!(nodeset("db2"), Some("1".into()));
    let emu = p
        .changes
        .iter()
        .find(|c| c.target == "guest/db2" && c.path == "cputune.emulatorpin")
        .and_then(|c| c.after.clone())
        .unwrap();
    assert_eq!(node_of(emu.parse().unwrap()), 1);
    assert!(!all.contains(&emu.parse().unwrap()));

    let report = apply::apply(&p, &d, &root, Some(&hv));
    assert!(report.ok(), "{report:?}");
    let obs = observe::observe(&d, &root, Some(&hv)).unwrap();
    let again = kvmtune::pipeline::plan(&d, &obs);
    assert!(again.changes.is_empty(), "{:?}", again.changes);

    // Adding a guest moves nobody else; removing one moves nobody either.
    let more = kvmtune::desired::load_str(
        "t.yaml",
        &format!("{CFG}  web2:\n    cputune: {{ vcpupin: auto }}\n"),
    )
    .unwrap();
    let obs = observe::observe(&more, &root, Some(&hv)).unwrap();
    let p3 = kvmtune::pipeline::plan(&more, &obs);
    assert!(p3.errors.is_empty(), "{:?}", p3.errors);
    assert!(
        p3.changes.iter().all(|c| c.target == "guest/web2"),
        "{:?}",
        p3.changes
    );
    let less = kvmtune::desired::load_str(
        "t.yaml",
        &CFG.replace("  web1:\n    cputune: { vcpupin: auto }\n", ""),
    )
    .unwrap();
    let obs = observe::observe(&less, &root, Some(&hv)).unwrap();
    assert!(kvmtune::pipeline::plan(&less, &obs).changes.is_empty());
}

#[test]
fn guests_that_do_not_fit_are_plan_errors_unless_overcommit_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, root) = write_host(dir.path());
    let hv = Hypervisor::open(&uri, true).unwrap();
    let yaml = "guests:\n  db1:\n    vcpu: { count: 8 }\n    cputune: { vcpupin: auto }\n    placement: { numa_node: 1 }\n  db2:\n    cputune: { vcpupin: auto }\n";
    let d = kvmtune::desired::load_str("t.yaml", yaml).unwrap();
    let p = kvmtune::pipeline::plan(&d, &observe::observe(&d, &root, Some(&hv)).unwrap());
    assert_eq!(p.errors.len(), 1, "{:?}", p.errors);
    assert_eq!(
        p.errors[0].to_string(),
        "t.yaml:4:16: guests.db1.cputune.vcpupin: guest db1: automatic pinning: needs 8 dedicated CPUs on node 1; free per node: node0 8, node1 6, node2 8, node3 8 (host.cpu_pool.allow_overcommit: true lets guests share CPUs)"
    );
    let d = kvmtune::desired::load_str(
        "t.yaml",
        &format!("host:\n  cpu_pool: {{ allow_overcommit: true }}\n{yaml}"),
    )
    .unwrap();
    let p = kvmtune::pipeline::plan(&d, &observe::observe(&d, &root, Some(&hv)).unwrap());
    assert!(p.errors.is_empty(), "{:?}", p.errors);
}

fn kvmtune(uri: &str, root: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .env("NO_COLOR", "1")
        .args(["--connect", uri, "--root"])
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn lock_file_is_written_by_apply_and_reproduced_by_plan() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, root) = write_host(dir.path());
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, CFG).unwrap();
    let lock = dir.path().join("kvmtune.lock.yaml");
    let (cfg_s, lock_s) = (cfg.to_str().unwrap(), lock.to_str().unwrap());
    let o = kvmtune(
        &uri,
        &root,
        &["--lock-file", lock_s, "apply", "--auto-approve", cfg_s],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    let parsed = kvmtune::pinning::Lock::parse(&text).unwrap();
    assert_eq!(parsed.guests.len(), 3, "{text}");
    // Edit the lock: web1 moves to node 3; the plan follows the lock exactly.
    let mut edited = parsed.clone();
    edited.guests.get_mut("web1").unwrap().vcpupin = vec![15, 31];
    edited.guests.get_mut("web1").unwrap().nodeset = "3".into();
    std::fs::write(&lock, edited.render()).unwrap();
    let o = kvmtune(
        &uri,
        &root,
        &["--lock-file", lock_s, "plan", "--format", "json", cfg_s],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let web1: Vec<(String, String)> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["target"] == "guest/web1")
        .map(|c| {
            (
                c["path"].as_str().unwrap().to_string(),
                c["after"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        web1,
        vec![
            ("cputune.vcpupin.0".to_string(), "15".to_string()),
            ("cputune.vcpupin.1".to_string(), "31".to_string())
        ]
    );
    // A broken lock file is a clear error.
    std::fs::write(&lock, "version: 2\n").unwrap();
    let o = kvmtune(&uri, &root, &["--lock-file", lock_s, "plan", cfg_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("lock file"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn check_exit_codes_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, root) = write_host(dir.path());
    std::fs::create_dir_all(root.join("sys/module/vhost_net")).unwrap();
    std::fs::create_dir_all(root.join("etc/tuned")).unwrap();
    std::fs::write(root.join("etc/tuned/active_profile"), "virtual-host\n").unwrap();
    let write = |name: &str, text: &str| {
        let f = dir.path().join(name);
        std::fs::write(&f, text).unwrap();
        f.to_str().unwrap().to_string()
    };
    let clean = write(
        "clean.yaml",
        "guests:\n  db2:\n    cpu: { mode: host-passthrough }\n",
    );
    let warn = write("warn.yaml", "guests:\n  db2:\n    cpu: { mode: host-passthrough }\n    cputune: { vcpupin: { 0: \"1\" } }\n  web1:\n    cpu: { mode: host-passthrough }\n    cputune: { vcpupin: { 0: \"1\" } }\n");
    let err = write("err.yaml", "host:\n  cpu_pool: { reserved: \"1\" }\nguests:\n  db2:\n    cpu: { mode: host-passthrough }\n    cputune: { vcpupin: { 0: \"1\" } }\n");
    let o = kvmtune(&uri, &root, &["check", &clean]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let o = kvmtune(&uri, &root, &["check", &warn]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("guest/db2:\n  warning[shared-pin]"), "{out}");
    let o = kvmtune(&uri, &root, &["check", "--format", "json", &err]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["lints"][0]["id"], "vcpu-on-reserved");
    assert_eq!(v["lints"][0]["section"], "7.2.4");
    assert_eq!(v["lints"][0]["location"], format!("{err}:6:27"));
    assert_eq!(v["summary"]["errors"], 1);
    // plan refuses what the error-level lints reject.
    let o = kvmtune(&uri, &root, &["plan", &err]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).contains("[vcpu-on-reserved]"));
}

/// Writes node `n`'s free memory below `root`: `MemFree` (KiB) and free 2M huge pages.
fn node_memory(root: &Path, n: u32, mem_free_kib: u64, free_2m: u64) {
    let nd = root.join(format!("sys/devices/system/node/node{n}"));
    std::fs::write(
        nd.join("meminfo"),
        format!(
            "Node {n} MemTotal:       67108864 kB\nNode {n} MemFree:        {mem_free_kib} kB\n"
        ),
    )
    .unwrap();
    let hp = nd.join("hugepages/hugepages-2048kB");
    std::fs::create_dir_all(&hp).unwrap();
    std::fs::write(hp.join("nr_hugepages"), "1024\n").unwrap();
    std::fs::write(hp.join("free_hugepages"), format!("{free_2m}\n")).unwrap();
}

fn changes_of<'a>(p: &'a plan::Plan, guest: &str, path: &str) -> Option<&'a str> {
    p.changes
        .iter()
        .find(|c| c.target == format!("guest/{guest}") && c.path == path)
        .and_then(|c| c.after.as_deref())
}

const MEM_CFG: &str = "host:\n  cpu_pool: { reserved: \"0,16\" }\nguests:\n  web1:\n    cputune: { vcpupin: auto }\n    numatune: { memory: { mode: strict, nodeset: auto } }\n    memory_backing: { hugepages: { size: 2M } }\n  web2:\n    cputune: { vcpupin: auto }\n    numatune: { memory: { nodeset: auto } }\n";

/// A guest whose memory follows its vCPUs goes where its memory fits: 2M huge pages for
/// web1 (1 GiB), `MemFree` for web2; what no node can hold is an error naming every node's
/// free memory; apply then plan is empty, also once the pages are in use.
#[test]
fn memory_bound_guests_go_where_their_memory_fits() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, root) = write_host(dir.path());
    // node0 and node1 have the CPUs but little memory; node2 the huge pages; node3 MemFree.
    node_memory(&root, 0, 512 * 1024, 100);
    node_memory(&root, 1, 512 * 1024, 100);
    node_memory(&root, 2, 700 * 1024, 600);
    node_memory(&root, 3, 4 << 20, 0);
    let hv = Hypervisor::open(&uri, false).unwrap();
    let d = kvmtune::desired::load_str("t.yaml", MEM_CFG).unwrap();
    let obs = observe::observe(&d, &root, Some(&hv)).unwrap();
    assert_eq!(obs.node_memory.as_ref().map(|m| m.len()), Some(4));
    let p = kvmtune::pipeline::plan(&d, &obs);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(changes_of(&p, "web1", "numatune.memory.nodeset"), Some("2"));
    assert!(
        pins(&p, "web1").iter().all(|c| node_of(*c) == 2),
        "{:?}",
        p.changes
    );
    assert_eq!(changes_of(&p, "web2", "numatune.memory.nodeset"), Some("3"));
    let report = apply::apply(&p, &d, &root, Some(&hv));
    assert!(report.ok(), "{report:?}");
    let obs = observe::observe(&d, &root, Some(&hv)).unwrap();
    let again = kvmtune::pipeline::plan(&d, &obs);
    assert!(
        again.changes.is_empty() && again.errors.is_empty(),
        "{again:?}"
    );

    // Nothing fits: one error per guest, naming each node's free memory.
    for n in 0..4 {
        node_memory(&root, n, 300 * 1024, 10);
    }
    let fresh = dir.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let (uri2, root2) = write_host(&fresh);
    for n in 0..4 {
        node_memory(&root2, n, 300 * 1024, 10 + u64::from(n));
    }
    let hv2 = Hypervisor::open(&uri2, true).unwrap();
    let p = kvmtune::pipeline::plan(&d, &observe::observe(&d, &root2, Some(&hv2)).unwrap());
    let errs: Vec<String> = p.errors.iter().map(|e| e.message.clone()).collect();
    assert_eq!(
        errs,
        [
            "guest web1: automatic pinning: needs 1 GiB in 2M huge pages on one node: node0 has 20 MiB free, node1 22 MiB, node2 24 MiB, node3 26 MiB",
            "guest web2: automatic pinning: needs 1 GiB on one node: node0 has 300 MiB free, node1 300 MiB, node2 300 MiB, node3 300 MiB",
        ]
    );
}

/// Re-planning a running guest whose memory is already allocated on its node (the free
/// pages went down by its own size) keeps it there: its own memory counts as free for it.
/// Stopped, the same numbers move it (they are other guests' pages then).
#[test]
fn a_running_guests_own_memory_does_not_move_it() {
    let topo = kvmtune::topology::HostTopology::synthetic(2, 4, 1);
    let d = kvmtune::desired::load_str(
        "t.yaml",
        "guests:\n  g:\n    cputune: { vcpupin: auto }\n    numatune: { memory: { mode: strict, nodeset: auto } }\n    memory_backing: { hugepages: { size: 2M } }\n",
    )
    .unwrap();
    let xml = "<domain type='kvm'><name>g</name><uuid>6b1d3b3e-3c55-4c4e-9d0a-000000000001</uuid><memory unit='GiB'>4</memory><vcpu placement='static'>2</vcpu>\
        <memoryBacking><hugepages><page size='2048' unit='KiB'/></hugepages></memoryBacking>\
        <cputune><vcpupin vcpu='0' cpuset='4'/><vcpupin vcpu='1' cpuset='5'/></cputune>\
        <numatune><memory mode='strict' nodeset='1'/></numatune><os><type>hvm</type></os></domain>";
    let mem = |free1: u64| {
        let m = |pages| kvmtune::topology::NodeMemory {
            mem_free_kib: Some(64 << 20),
            free_hugepages: [(2048, pages)].into(),
        };
        [(0, m(4096)), (1, m(free1))].into_iter().collect()
    };
    let observed = |active: bool, free1: u64| observe::Observed {
        topology: Some(topo.clone()),
        node_memory: Some(mem(free1)),
        guests: [(
            "g".to_string(),
            Some(kvmtune::libvirt::GuestObserved {
                uuid: "6b1d3b3e-3c55-4c4e-9d0a-000000000001".into(),
                active,
                xml: xml.into(),
                live_xml: active.then(|| xml.to_string()),
            }),
        )]
        .into(),
        ..Default::default()
    };
    // 1024 pages free on node 1 (2 GiB) after the guest took its 2048 (4 GiB).
    let p = kvmtune::pipeline::plan(&d, &observed(true, 1024));
    assert!(p.changes.is_empty() && p.errors.is_empty(), "{p:?}");
    let p = kvmtune::pipeline::plan(&d, &observed(false, 1024));
    assert_eq!(
        changes_of(&p, "g", "numatune.memory.nodeset"),
        Some("0"),
        "{p:?}"
    );
    assert!(p.errors.is_empty(), "{:?}", p.errors);
}

const SHARED_CFG: &str = "host:\n  cpu_pool: { reserved: \"0,16\", shared: \"1,17\" }\nguests:\n  web1:\n    iothreads: 2\n    cputune: { vcpupin: shared, emulatorpin: auto, iothreadpin: auto }\n    numatune: { memory: { nodeset: auto } }\n  db2:\n    vcpu: { count: 3 }\n    cputune: { vcpupin: auto, iothreadpin: auto, emulatorpin: isolate }\n    iothreads: 1\n    placement: { numa_node: 0 }\n";

/// `vcpupin: shared`: the guest floats over the pool (`<vcpu cpuset>`, its pins removed), its
/// emulator and I/O threads on the reserved CPUs of the pool's node; `auto` guests never get
/// shared CPUs (db2 on node 0 gets exactly what is neither reserved nor shared there, its
/// I/O thread sitting with its isolated emulator). A saved plan applies exactly
/// that (from its lock), and the plan after it is empty.
#[test]
fn shared_guests_float_over_the_pool_and_auto_guests_never_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let (uri, root) = write_host(dir.path());
    let hv = Hypervisor::open(&uri, false).unwrap();
    // web1 had pins: `shared` removes them.
    let d0 = kvmtune::desired::load_str(
        "t.yaml",
        "guests:\n  web1:\n    cputune: { vcpupin: { 0: \"9\", 1: \"10\" } }\n",
    )
    .unwrap();
    let p0 = kvmtune::pipeline::plan(&d0, &observe::observe(&d0, &root, Some(&hv)).unwrap());
    assert!(apply::apply(&p0, &d0, &root, Some(&hv)).ok());

    let d = kvmtune::desired::load_str("t.yaml", SHARED_CFG).unwrap();
    let obs = observe::observe(&d, &root, Some(&hv)).unwrap();
    let p = kvmtune::pipeline::plan(&d, &obs);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    assert_eq!(changes_of(&p, "web1", "vcpu.cpuset"), Some("1,17"));
    let removed: Vec<(&str, Option<&str>)> = p
        .changes
        .iter()
        .filter(|c| c.target == "guest/web1" && c.path.starts_with("cputune.vcpupin."))
        .map(|c| (c.path.as_str(), c.after.as_deref()))
        .collect();
    assert_eq!(
        removed,
        [("cputune.vcpupin.0", None), ("cputune.vcpupin.1", None)]
    );
    assert_eq!(changes_of(&p, "web1", "cputune.emulatorpin"), Some("0,16"));
    assert_eq!(
        changes_of(&p, "web1", "cputune.iothreadpin.1"),
        Some("0,16")
    );
    assert_eq!(
        changes_of(&p, "web1", "cputune.iothreadpin.2"),
        Some("0,16")
    );
    assert_eq!(changes_of(&p, "web1", "numatune.memory.nodeset"), Some("0"));
    let db2 = pins(&p, "db2");
    assert_eq!(db2.len(), 3);
    assert!(
        db2.iter()
            .all(|c| node_of(*c) == 0 && ![0, 16, 1, 17].contains(c)),
        "{db2:?}"
    );
    let emu = changes_of(&p, "db2", "cputune.emulatorpin")
        .unwrap()
        .to_string();
    assert_eq!(
        changes_of(&p, "db2", "cputune.iothreadpin.1"),
        Some(emu.as_str())
    );
    // The lock carries the shared guest too, and reproduces every placement exactly (what a
    // saved plan's apply uses); apply, then the plan is empty.
    let lock = p.lock.clone().unwrap();
    let lock = kvmtune::pinning::Lock::parse(&lock.render()).unwrap();
    assert_eq!(lock.guests["web1"].cpuset.as_deref(), Some("1,17"));
    assert_eq!(kvmtune::pinning::from_lock(&d, &lock).unwrap(), p.resolved);
    let report = apply::apply(&p, &d, &root, Some(&hv));
    assert!(report.ok(), "{report:?}");
    let again = kvmtune::pipeline::plan(&d, &observe::observe(&d, &root, Some(&hv)).unwrap());
    assert!(
        again.changes.is_empty() && again.errors.is_empty(),
        "{again:?}"
    );
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, SHARED_CFG).unwrap();
    let cfg_s = cfg.to_str().unwrap();
    // `check`: the undeclared guests float over (or are pinned to) dedicated CPUs.
    let o = kvmtune(&uri, &root, &["check", cfg_s]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("warning[unmanaged-on-dedicated]"), "{out}");
    assert!(
        out.contains(
            "guest other is not managed, and its vCPU(s) 0-1 can run on dedicated CPU(s) 4,20"
        ),
        "{out}"
    );
    assert!(out.contains("guest web2 is not managed"), "{out}");
}
