//! The typed blueprint (issue 11): a saved plan can only do what it says, `--lock-file` is
//! written from a saved plan, `render` resolves `auto`, and rollback is the forward planner
//! (VFs through 0, the global pool before node pools) on a record validated like config.
//!
//! All on a temp `--root` and libvirt's in-process `test:///` driver, or through the
//! library with a file seam that enforces the kernel's SR-IOV rule.

mod support;
use support::*;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Saves the plan of `yaml` (a file in `dir`) and returns its JSON.
fn saved(root: &Path, dir: &Path, yaml: &str) -> Value {
    let cfg = dir.join("t.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let plan = dir.join("plan.json");
    let o = kt(
        root,
        &[
            "plan",
            cfg.to_str().unwrap(),
            "--out",
            plan.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    serde_json::from_str(&read(&plan)).unwrap()
}

fn records(root: &Path) -> usize {
    std::fs::read_dir(root.join("var/lib/kvmtune/applies")).map_or(0, |d| d.count())
}

/// Applies an edited saved plan; asserts it is refused (exit 1) with `why` on stderr, and
/// that it stored no backup (it got nowhere near changing anything).
fn refused(root: &Path, dir: &Path, plan: &Value, why: &str) {
    let records_before = records(root);
    let p = dir.join("edited.json");
    std::fs::write(&p, serde_json::to_string_pretty(plan).unwrap()).unwrap();
    let o = kt(root, &["apply", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(why), "expected `{why}`:\n{}", describe(&o));
    assert_eq!(
        records(root),
        records_before,
        "a refused plan stored a backup:\n{}",
        describe(&o)
    );
}

fn host_ops(plan: &mut Value) -> &mut Vec<Value> {
    plan["actions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["kind"] == "host")
        .unwrap()["action"]
        .as_array_mut()
        .unwrap()
}

const HOST: &str = "host:\n  sysctl: { vm.swappiness: 7 }\n";

#[test]
fn a_saved_plan_names_no_path_or_command_and_edits_that_add_them_are_refused() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let plan = saved(root.path(), dir.path(), HOST);
    let text = plan.to_string();
    assert!(
        !text.contains("proc/sys"),
        "a path in the saved plan: {text}"
    );
    assert!(
        !text.contains("argv"),
        "a command in the saved plan: {text}"
    );
    let before = read(&root.path().join("proc/sys/vm/swappiness"));

    // A path beside the typed key.
    let mut p = plan.clone();
    host_ops(&mut p)[0]["file"] = json!("../../../etc/x");
    refused(root.path(), dir.path(), &p, "unknown field `file`");
    // A command.
    let mut p = plan.clone();
    host_ops(&mut p).insert(
        0,
        json!({"kind": "run", "argv": ["/bin/sh", "-c", "touch /tmp/kvmtune-pwned"]}),
    );
    refused(root.path(), dir.path(), &p, "unknown variant `run`");
    // A key that would escape /proc/sys.
    let mut p = plan.clone();
    host_ops(&mut p)[0]["key"]["key"] = json!("../../../etc/passwd");
    refused(root.path(), dir.path(), &p, "is not a sysctl key");
    // A value the configuration does not declare.
    let mut p = plan.clone();
    host_ops(&mut p)[0]["value"] = json!("99");
    refused(
        root.path(),
        dir.path(),
        &p,
        "the configuration does not declare this",
    );
    // A typed, valid key the configuration does not declare (core_pattern runs a program).
    let mut p = plan.clone();
    host_ops(&mut p).push(
        json!({"kind": "write", "key": {"kind": "sysctl", "key": "kernel.core_pattern"},
        "before": "core", "value": "|/bin/sh -c id", "reassert": false}),
    );
    refused(
        root.path(),
        dir.path(),
        &p,
        "sysctl.kernel.core_pattern: the configuration does not declare this",
    );
    // An owned file line injected through a value.
    let mut p = plan.clone();
    let ops = host_ops(&mut p);
    let owned = ops.iter_mut().find(|o| o["kind"] == "owned_file").unwrap();
    owned["entries"][0]["value"] = json!("7\nkernel.core_pattern = |/bin/sh");
    refused(root.path(), dir.path(), &p, "control character");
    // The shown change disagrees with what the action writes.
    let mut p = plan.clone();
    p["plan"]["changes"][0]["after"] = json!("10");
    refused(root.path(), dir.path(), &p, "shown as");
    // An action the shown plan does not list.
    let mut p = plan.clone();
    p["plan"]["changes"] = json!([]);
    refused(root.path(), dir.path(), &p, "does not show it");

    assert_eq!(read(&root.path().join("proc/sys/vm/swappiness")), before);
    assert!(!root.path().join("etc/x").exists());
    assert!(!Path::new("/tmp/kvmtune-pwned").exists());
    // The unedited plan applies, and planning again shows nothing.
    let good = dir.path().join("plan.json");
    let o = kt(root.path(), &["apply", good.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(read(&root.path().join("proc/sys/vm/swappiness")), "7\n");
    let cfg = dir.path().join("t.yaml");
    let o = kt(
        root.path(),
        &["plan", cfg.to_str().unwrap(), "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

fn guest_action<'a>(plan: &'a mut Value, name: &str) -> &'a mut Value {
    plan["actions"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|a| a["kind"] == "guest" && a["action"]["name"] == name)
        .unwrap_or_else(|| panic!("no action for {name}"))
        .get_mut("action")
        .unwrap()
}

const GUESTS: &str = "guests:\n  db1:\n    cputune: { emulatorpin: \"0-1\" }\n  web1:\n    memtune: { hard_limit: 2G }\n";

#[test]
fn a_guest_action_may_change_only_owned_elements_of_its_own_domain() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let plan = saved(root.path(), dir.path(), GUESTS);
    // The XML of another domain under db1's action.
    let mut p = plan.clone();
    let web_xml = guest_action(&mut p, "web1")["new_xml"].clone();
    guest_action(&mut p, "db1")["new_xml"] = web_xml;
    refused(
        root.path(),
        dir.path(),
        &p,
        "guest/db1: its new definition is of domain `web1`",
    );
    // The same domain with its UUID changed.
    let mut p = plan.clone();
    let a = guest_action(&mut p, "db1");
    let uuid = a["uuid"].as_str().unwrap().to_string();
    let other = format!("{}0000", &uuid[..uuid.len() - 4]);
    a["new_xml"] = json!(a["new_xml"].as_str().unwrap().replace(&uuid, &other));
    refused(
        root.path(),
        dir.path(),
        &p,
        "guest/db1: its new definition is of domain `db1` (UUID",
    );
    // An element kvmtune does not own (a device) slipped in.
    let mut p = plan.clone();
    let a = guest_action(&mut p, "db1");
    a["new_xml"] = json!(a["new_xml"].as_str().unwrap().replace(
        "</devices>",
        "<hostdev mode='subsystem' type='pci'/></devices>"
    ));
    refused(
        root.path(),
        dir.path(),
        &p,
        "only the elements kvmtune owns may change",
    );
    // The action retargeted at a guest the configuration does not declare.
    let mut p = plan.clone();
    guest_action(&mut p, "db1")["name"] = json!("db2");
    refused(
        root.path(),
        dir.path(),
        &p,
        "guest/db2: the configuration does not declare this guest",
    );
    // The action's UUID is not the domain's: the XML then names another UUID.
    let mut p = plan.clone();
    guest_action(&mut p, "db1")["uuid"] = json!("00000000-0000-0000-0000-000000000000");
    refused(
        root.path(),
        dir.path(),
        &p,
        "its recorded definition is of domain `db1` (UUID",
    );
    // A rollback-only action cannot be saved.
    let mut p = plan.clone();
    p["actions"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kind": "restore", "action": {}}));
    refused(root.path(), dir.path(), &p, "unknown variant `restore`");
    // Unedited, it applies.
    let good = dir.path().join("plan.json");
    let o = kt(
        root.path(),
        &["apply", good.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["defines"], 2, "{r}");
}

const AUTO: &str = "host:\n  cpu_pool: { reserved: \"0,8\" }\nguests:\n  db1:\n    cputune: { vcpupin: auto, emulatorpin: auto }\n    numatune: { memory: { mode: strict, nodeset: auto } }\n";

#[test]
fn applying_a_saved_plan_with_auto_pins_writes_the_lock_file() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let plan = saved(root.path(), dir.path(), AUTO);
    let pins = &plan["lock"]["guests"]["db1"]["vcpupin"];
    assert!(pins.as_array().is_some_and(|p| !p.is_empty()), "{plan}");
    let lock = dir.path().join("kvmtune.lock.yaml");
    let p = dir.path().join("plan.json");
    let o = kt(
        root.path(),
        &[
            "apply",
            p.to_str().unwrap(),
            "--lock-file",
            lock.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let l = kvmtune::model::lock::Lock::parse(&read(&lock)).unwrap();
    let want: Vec<u32> = serde_json::from_value(pins.clone()).unwrap();
    assert_eq!(l.guests["db1"].vcpupin, want);
    // Pins edited in the saved plan no longer match the actions derived from them.
    let mut edited = plan.clone();
    edited["lock"]["guests"]["db1"]["vcpupin"][0] = json!(15);
    refused(
        root.path(),
        dir.path(),
        &edited,
        "guest/db1: its new definition is not what its settings give",
    );
}

#[test]
fn render_resolves_auto_pins_from_the_roots_topology() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, AUTO).unwrap();
    let xml = dir.path().join("db1.xml");
    let o = Command::new("virsh")
        .args(["-c", &demo_uri(), "dumpxml", "--inactive", "db1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", describe(&o));
    std::fs::write(&xml, &o.stdout).unwrap();
    let render = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend([
            "render",
            "--guest",
            "db1",
            "--xml",
            xml.to_str().unwrap(),
            cfg.to_str().unwrap(),
        ]);
        let o = kt(root.path(), &args);
        assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Offline, against the root's topology (other guests' pins are unknown without libvirt).
    let out = render(&[]);
    let pins = out.matches("<vcpupin ").count();
    assert!(pins >= 1, "no pins rendered:\n{out}");
    assert!(
        !out.contains("cpuset='0'/>") && !out.contains("cpuset='8'/>"),
        "a reserved CPU:\n{out}"
    );
    assert!(out.contains("<emulatorpin cpuset="), "{out}");
    assert_eq!(out, render(&[]), "rendering is deterministic");
    // With the lock file an apply wrote, render reproduces exactly the applied pins.
    let lock = dir.path().join("kvmtune.lock.yaml");
    let o = kt(
        root.path(),
        &[
            "--lock-file",
            lock.to_str().unwrap(),
            "apply",
            cfg.to_str().unwrap(),
            "--auto-approve",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let l = kvmtune::model::lock::Lock::parse(&read(&lock)).unwrap();
    let out = render(&["--lock-file", lock.to_str().unwrap()]);
    for (i, cpu) in l.guests["db1"].vcpupin.iter().enumerate() {
        let want = format!("<vcpupin vcpu='{i}' cpuset='{cpu}'/>");
        assert!(out.contains(&want), "{want} not in\n{out}");
    }
}

/// A "kernel" whose `sriov_numvfs` refuses a change between two non-zero counts (EBUSY).
struct VfRules;

impl kvmtune::host::HostFiles for VfRules {
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()> {
        if file.ends_with("sriov_numvfs") {
            let now = kvmtune::host::RealFiles.read(file)?;
            let (now, new) = (now.trim(), content.trim());
            if now != "0" && new != "0" && now != new {
                return Err(std::io::Error::from_raw_os_error(libc::EBUSY));
            }
        }
        kvmtune::host::RealFiles.write(file, content)
    }
    fn read(&self, file: &Path) -> std::io::Result<String> {
        kvmtune::host::RealFiles.read(file)
    }
}

fn seed(root: &Path, file: &str, content: &str) {
    let p = root.join(file);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, content).unwrap();
}

/// The writes of a host action, as (plan path, value).
fn writes(p: &kvmtune::plan::Plan) -> Vec<(String, String)> {
    p.actions
        .iter()
        .flat_map(|a| match a {
            kvmtune::plan::Action::Host(ops) => ops.clone(),
            _ => Vec::new(),
        })
        .filter_map(|op| match op {
            kvmtune::host::HostOp::Write { key, value, .. } => Some((key.path(), value)),
            _ => None,
        })
        .collect()
}

#[test]
fn rollback_of_vfs_and_pools_follows_the_kernels_rules() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let pool = |node: Option<u32>| {
        kvmtune::host::hugepages::hugepage_file(kvmtune::units::PageSize::TWO_MIB, node)
    };
    seed(r, "sys/class/net/ens1f0/mtu", "1500\n");
    seed(r, "sys/class/net/ens1f0/device/sriov_numvfs", "4\n");
    seed(r, "sys/class/net/ens1f0/device/sriov_totalvfs", "16\n");
    seed(r, &pool(None), "100\n");
    seed(r, &pool(Some(0)), "60\n");
    seed(r, &pool(Some(1)), "40\n");
    seed(r, "sys/devices/system/node/online", "0-1\n");
    let d = kvmtune::desired::load_str(
        "t.yaml",
        "host:\n  interfaces: { ens1f0: { sriov_numvfs: 8 } }\n  hugepages:\n    - { size: 2M, node: 1, count: 30 }\n    - { size: 2M, count: 50 }\n    - { size: 2M, node: 0, count: 20 }\n",
    )
    .unwrap();
    let io = kvmtune::apply::HostIo {
        files: &VfRules,
        cmds: &kvmtune::host::RealCommands,
    };
    let run = |p: &kvmtune::plan::Plan, d: &kvmtune::desired::Desired| {
        let t = kvmtune::apply::Target {
            root: r,
            hv: None,
            io,
        };
        kvmtune::apply::apply_with(p, d, t, &mut |_, _, _| {})
    };
    let obs = kvmtune::observe::observe(&d, r, None).unwrap();
    let p = kvmtune::pipeline::plan(&d, &obs);
    assert!(p.errors.is_empty(), "{:?}", p.errors);
    let forward = writes(&p);
    assert_eq!(
        forward
            .iter()
            .filter(|(k, _)| k.starts_with("hugepages"))
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["hugepages.2M", "hugepages.2M.node0", "hugepages.2M.node1"],
        "the global pool first"
    );
    kvmtune::state::backup(r, &p, "hv", "test:///default", "apply", 5).unwrap();
    let rep = run(&p, &d);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(
        read(&r.join("sys/class/net/ens1f0/device/sriov_numvfs")),
        "8\n"
    );
    let again = kvmtune::pipeline::plan(&d, &kvmtune::observe::observe(&d, r, None).unwrap());
    assert!(again.is_empty(), "{:?}", again.changes);

    // Rollback: 8 → 0 → 4, the global pool before the node pools, accepted by the rules.
    let rec = kvmtune::state::load(r, None).unwrap();
    let rb = kvmtune::rollback::plan_rollback(&rec, r, None).unwrap();
    assert!(rb.plan.errors.is_empty(), "{:?}", rb.plan.errors);
    let back = writes(&rb.plan);
    let vfs: Vec<&str> = back
        .iter()
        .filter(|(k, _)| k.ends_with("sriov_numvfs"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(vfs, ["0", "4"]);
    let pools: Vec<(&str, &str)> = back
        .iter()
        .filter(|(k, _)| k.starts_with("hugepages"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        pools,
        [
            ("hugepages.2M", "100"),
            ("hugepages.2M.node0", "60"),
            ("hugepages.2M.node1", "40")
        ]
    );
    let rep = run(&rb.plan, &rb.desired);
    assert!(rep.ok(), "{rep:?}");
    assert_eq!(
        read(&r.join("sys/class/net/ens1f0/device/sriov_numvfs")),
        "4\n"
    );
    assert_eq!(read(&r.join(pool(Some(0)))), "60\n");
    // Rolled back, the rollback plans nothing more.
    let rb2 = kvmtune::rollback::plan_rollback(&rec, r, None).unwrap();
    assert!(rb2.plan.actions.is_empty(), "{:?}", rb2.plan.changes);
}

/// Writes a record whose manifest is `manifest` and returns what loading it says.
fn load_record(manifest: Value) -> Result<(), String> {
    let root = tempfile::tempdir().unwrap();
    let dir = root
        .path()
        .join("var/lib/kvmtune/applies/20261202T000000.000Z");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    std::fs::write(
        dir.join("guest-c7a5fdbd-edaf-9455-926a-d65c16db1809.xml"),
        "<domain><name>x</name></domain>",
    )
    .unwrap();
    kvmtune::state::load(root.path(), None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn manifest(host: Value, guests: Value) -> Value {
    json!({"format": 2, "id": "20261202T000000.000Z", "created": "x", "hostname": "h",
           "uri": "test:///default", "command": "apply", "guests": guests, "host": host})
}

#[test]
fn records_are_validated_like_configuration() {
    assert_eq!(load_record(manifest(json!({}), json!([]))), Ok(()));
    let bad = [
        (
            manifest(
                json!({"values": [{"key": {"kind": "sysctl", "key": "../../../x"}, "value": "1"}]}),
                json!([]),
            ),
            "is not a sysctl key",
        ),
        (
            manifest(
                json!({"values": [{"key": {"kind": "file", "file": "etc/../../../x"}, "value": "1"}]}),
                json!([]),
            ),
            "unknown variant `file`",
        ),
        (
            manifest(
                json!({"owned": {"tmpfiles": [{"key": {"kind": "sysctl", "key": "vm.x"}, "value": "1"}]}}),
                json!([]),
            ),
            "does not belong in",
        ),
        (
            manifest(
                json!({"owned": {"sysctl": [{"key": {"kind": "sysctl", "key": "vm.x"}, "value": "1\nkernel.y = 2"}]}}),
                json!([]),
            ),
            "control character",
        ),
        (
            manifest(
                json!({}),
                json!([{"name": "x", "uuid": "../../etc/passwd"}]),
            ),
            "is not a UUID",
        ),
        (
            manifest(
                json!({}),
                json!([{"name": "x", "uuid": "c7a5fdbd-edaf-9455-926a-d65c16db1809", "file": "../x"}]),
            ),
            "unknown field `file`",
        ),
        (
            json!({"id": "20261202T000000.000Z", "host_files": {}}),
            "record format (none) is not 2",
        ),
    ];
    for (m, why) in bad {
        let e = load_record(m.clone()).expect_err(&m.to_string());
        assert!(e.contains(why), "expected `{why}`, got: {e}");
    }
}
