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
