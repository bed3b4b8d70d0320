//! CLI behaviour users see: validation errors, rendered plans (human and JSON), exit codes,
//! the committed JSON Schema and the bundled examples. Uses libvirt's in-process `test:///`
//! driver with the bundled demo host and a copy of the bundled /proc + /sys tree.

mod support;
use support::*;

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn kvmtune(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(args)
        .current_dir(dir)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Each bad input: (file name, content, expected one-line error).
#[test]
fn bad_input_gets_one_located_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = format!("*a{}", i - 1);
        bomb.push_str(&format!("a{i}: &a{i} [{}]\n", vec![prev; 10].join(", ")));
    }
    let cases: Vec<(&str, String)> = vec![
        ("unknown.yaml", "guests:\n  db1:\n    vcpu: { count: 4, cont: 2 }\n".into()),
        ("type.yaml", "guests:\n  db1:\n    vcpu: { count: four }\n".into()),
        ("negative.yaml", "host:\n  hugepages:\n    - { size: 2M, count: -1 }\n".into()),
        ("dup.yaml", "guests:\n  db1: {}\n  db1: {}\n".into()),
        ("dup-nested.yaml", "host:\n  sysctl:\n    vm.swappiness: 1\n    vm.swappiness: 2\n".into()),
        ("cpuset-x.yaml", "guests:\n  db1:\n    vcpu: { cpuset: \"0-x\" }\n".into()),
        ("cpuset-rev.yaml", "guests:\n  db1:\n    cputune: { emulatorpin: \"3-1\" }\n".into()),
        ("pin.yaml", "guests:\n  db1:\n    vcpu: { count: 2 }\n    cputune: { vcpupin: { 0: \"1\", 2: \"3\" } }\n".into()),
        ("page.yaml", "host:\n  hugepages:\n    - { size: 4M, count: 2 }\n".into()),
        ("guest-page.yaml", "guests:\n  db1:\n    memory_backing: { hugepages: { size: 3M } }\n".into()),
        ("syntax.yaml", "guests: [db1\n".into()),
        ("bomb.yaml", bomb),
        ("sysctl-key.yaml", "host:\n  sysctl: { \"../../etc/passwd\": 1 }\n".into()),
        ("topology.yaml", "guests:\n  db1:\n    vcpu: { count: 4 }\n    cpu: { mode: host-passthrough, topology: { sockets: 1, cores: 2, threads: 1 } }\n".into()),
        ("model.yaml", "guests:\n  db1:\n    cpu: { mode: host-passthrough, model: Skylake }\n".into()),
        ("mac.yaml", "guests:\n  db1:\n    interfaces: { \"52:54:00:zz:00:01\": { model: virtio } }\n".into()),
        ("native.yaml", "guests:\n  db1:\n    disks: { \"*\": { cache: writeback, io: native } }\n".into()),
        ("enum.yaml", "host:\n  transparent_hugepage: { enabled: sometimes }\n".into()),
        ("hp-backing.yaml", "guests:\n  db1:\n    memory_backing: { hugepages: 2M }\n".into()),
        ("two-docs.yaml", "host: {}\n---\nguests: {}\n".into()),
    ];
    let mut report = String::new();
    for (name, text) in &cases {
        std::fs::write(dir.path().join(name), text).unwrap();
        let o = kvmtune(dir.path(), &["validate", name]);
        assert_eq!(o.status.code(), Some(1), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with(name),
            "{name}: error does not start with the file: {err}"
        );
        assert!(!err.contains("panicked"), "{name}: {err}");
        report.push_str(&err);
    }
    insta::assert_snapshot!(report);
}

#[test]
fn oversized_and_binary_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    let o = kvmtune(dir.path(), &["validate", "big.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "big.yaml: file is larger than the 4194304-byte limit for a configuration file\n"
    );
    std::fs::write(dir.path().join("bin.yaml"), [0xff, 0xfe, 0x00, 0x41]).unwrap();
    let o = kvmtune(dir.path(), &["validate", "bin.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("bin.yaml: cannot read: not UTF-8"),
        "{}",
        stderr(&o)
    );
    let o = kvmtune(dir.path(), &["validate", "missing.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("missing.yaml: cannot read:"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn files_and_directories_merge_and_conflicts_name_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf.d");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("10-host.yaml"),
        "host:\n  sysctl: { vm.swappiness: 10 }\n",
    )
    .unwrap();
    std::fs::write(
        conf.join("20-db.yaml"),
        "guests:\n  db1:\n    vcpu: { count: 4 }\n",
    )
    .unwrap();
    std::fs::write(
        conf.join("30-db-more.yaml"),
        "guests:\n  db1:\n    cputune: { emulatorpin: 0-1 }\n",
    )
    .unwrap();
    std::fs::write(conf.join("notes.txt"), "not yaml").unwrap();
    let o = kvmtune(dir.path(), &["validate", "conf.d"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "Valid: 1 host setting(s), 1 guest(s).\n");

    std::fs::write(
        dir.path().join("again.yaml"),
        "guests:\n  db1:\n    vcpu:\n      count: 8\n",
    )
    .unwrap();
    let o = kvmtune(dir.path(), &["validate", "conf.d", "again.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "again.yaml:4:7: guests.db1.vcpu.count: defined again (first defined at conf.d/20-db.yaml:3:13)\n"
    );
}

#[test]
fn demo_plan_human_and_json() {
    let root = demo_root();
    let uri = demo_uri();
    let root_s = root.path().to_str().unwrap();
    let cfg = repo().join("examples/demo/tuning.yaml");
    let cfg = cfg.to_str().unwrap();
    let o = kvmtune(&repo(), &["--connect", &uri, "--root", root_s, "plan", cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    insta::assert_snapshot!("demo_plan_human", stdout(&o));

    let o = kvmtune(
        &repo(),
        &[
            "--connect",
            &uri,
            "--root",
            root_s,
            "plan",
            cfg,
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["format_version"], 1);
    assert_eq!(
        v["summary"]["changes"].as_u64().unwrap() as usize,
        v["changes"].as_array().unwrap().len()
    );
    insta::assert_snapshot!("demo_plan_json", stdout(&o));

    let o = kvmtune(
        &repo(),
        &["--connect", &uri, "--root", root_s, "plan", cfg, "--diff"],
    );
    let out = stdout(&o);
    assert!(out.contains("diff of guest db1:"), "{out}");
    assert!(out.contains("+    <vcpupin vcpu='0' cpuset='2'/>"), "{out}");

    let o = kvmtune(
        &repo(),
        &[
            "--connect",
            &uri,
            "--root",
            root_s,
            "plan",
            cfg,
            "--detailed-exitcode",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn plan_errors_are_located_and_exit_1() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.yaml"),
        "host:\n  sysctl:\n    vm.no_such_knob: 1\n  hugepages:\n    - { size: 1G, node: 7, count: 1 }\nguests:\n  nosuchguest:\n    vcpu: { count: 2 }\n  db1:\n    disks: { vdz: { cache: none } }\n    interfaces: { \"52:54:00:00:00:99\": { model: virtio } }\n    cputune: { vcpupin: { 9: \"1\" } }\n",
    )
    .unwrap();
    let uri = demo_uri();
    let o = kvmtune(
        dir.path(),
        &[
            "--connect",
            &uri,
            "--root",
            root.path().to_str().unwrap(),
            "plan",
            "t.yaml",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o).replace(root.path().to_str().unwrap(), "ROOT");
    insta::assert_snapshot!(out);
    // apply refuses to do anything: the host tree is unchanged.
    let o = kvmtune(
        dir.path(),
        &[
            "--connect",
            &uri,
            "--root",
            root.path().to_str().unwrap(),
            "apply",
            "t.yaml",
            "--auto-approve",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("nothing was applied"), "{}", stderr(&o));
}

#[test]
fn apply_needs_auto_approve_without_a_terminal_and_host_apply_converges() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("host.yaml"),
        "host:\n  sysctl: { vm.swappiness: 10, net.ipv4.conf.all.arp_filter: true }\n  transparent_hugepage: { enabled: never, defrag: defer+madvise }\n  hugepages:\n    - { size: 2M, count: 512 }\n    - { size: 2M, node: 1, count: 128 }\n    - { size: 1G, node: 0, count: 2 }\n",
    )
    .unwrap();
    let r = root.path().to_str().unwrap();
    let o = kvmtune(dir.path(), &["--root", r, "apply", "host.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("refusing to apply without --auto-approve"));
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "60\n"
    );

    let o = kvmtune(
        dir.path(),
        &["--root", r, "apply", "host.yaml", "--auto-approve"],
    );
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("Apply complete: 14 applied, 0 failed (9 host writes)."),
        "{}",
        stdout(&o)
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "10\n"
    );
    assert_eq!(
        std::fs::read_to_string(
            root.path()
                .join("sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages")
        )
        .unwrap(),
        "2\n"
    );
    // Plan again: nothing; second apply: zero writes.
    let o = kvmtune(
        dir.path(),
        &["--root", r, "plan", "host.yaml", "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = kvmtune(
        dir.path(),
        &[
            "--root",
            r,
            "apply",
            "host.yaml",
            "--auto-approve",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["host_writes"], 0);
    assert_eq!(v["defines"], 0);
}

#[test]
fn a_host_write_that_fails_is_reported_and_others_still_apply() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    // A kernel file that refuses writes even from root (the temp root's own file, read-only).
    let thp = root
        .path()
        .join("sys/kernel/mm/transparent_hugepage/defrag");
    let _ro = ReadOnlyFile::new(&thp);
    std::fs::write(
        dir.path().join("h.yaml"),
        "host:\n  sysctl: { vm.swappiness: 5 }\n  transparent_hugepage: { defrag: never }\n",
    )
    .unwrap();
    let r = root.path().to_str().unwrap();
    let o = kvmtune(
        dir.path(),
        &["--root", r, "apply", "h.yaml", "--auto-approve"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let out = stdout(&o);
    // swappiness at runtime and persisted; the THP defrag runtime write fails, so it is not
    // persisted for boot either (the failure would repeat at every boot).
    assert!(out.contains("✗ host: 2 applied, 2 failed"), "{out}");
    assert!(
        out.contains(
            "transparent_hugepage.defrag (persisted): not persisted: its runtime change failed"
        ),
        "{out}"
    );
    let tmpfiles = root.path().join("etc/tmpfiles.d/90-kvmtune.conf");
    assert!(
        std::fs::read_to_string(&tmpfiles).map_or(true, |t| !t.contains("defrag")),
        "defrag persisted although its runtime write failed"
    );
    assert!(
        std::fs::read_to_string(root.path().join("etc/sysctl.d/90-kvmtune.conf"))
            .unwrap()
            .contains("vm.swappiness = 5")
    );
    assert!(out.contains("transparent_hugepage.defrag: writing /sys/kernel/mm/transparent_hugepage/defrag: Read-only file system"), "{out}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "5\n"
    );
}

#[test]
fn committed_schema_is_current() {
    let o = kvmtune(&repo(), &["schema"]);
    assert_eq!(o.status.code(), Some(0));
    let committed = std::fs::read_to_string(repo().join("schemas/kvmtune.schema.json")).unwrap();
    assert!(
        committed == stdout(&o),
        "schemas/kvmtune.schema.json is stale: run `cargo run -- schema > schemas/kvmtune.schema.json`"
    );
    let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert!(v["properties"]["guests"].is_object());
}

#[test]
fn every_example_validates() {
    let mut n = 0;
    let mut stack = vec![repo().join("examples")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().unwrap() != "root" {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                let o = kvmtune(&repo(), &["validate", p.to_str().unwrap()]);
                assert_eq!(o.status.code(), Some(0), "{}: {}", p.display(), stderr(&o));
                n += 1;
            }
        }
    }
    assert!(n >= 2, "expected at least two examples, found {n}");
}
