//! The whole host catalogue on a temp root (a copy of examples/demo/root, whose files come
//! from a real machine): rendered plans (human and JSON snapshots) showing runtime and
//! persisted drift separately, then apply → plan empty → second apply zero writes and zero
//! commands, for runtime and persisted values alike. tuned and modprobe are stand-ins written
//! into the temp root / PATH (tuned-adm records the profile where tuned does); the in-process
//! tests use the command seam instead.

mod support;
use support::*;

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use kvmtune::host::{CmdOutput, HostCommands};
use kvmtune::{apply, observe};

fn write_exe(p: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The demo root plus: a tuned-adm stand-in, /proc/modules (a modular kernel), and a
/// modprobe stand-in in `bin/` that makes /sys/module/<name> appear.
fn catalogue_root() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("root");
    copy_tree(&repo().join("examples/demo/root"), &root);
    write_exe(
        &root.join("usr/sbin/tuned-adm"),
        "#!/bin/sh\nR=\"$(dirname \"$0\")/../..\"\ncase \"$1\" in\n  profile) printf '%s\\n' \"$2\" > \"$R/etc/tuned/active_profile\" ;;\n  verify) echo 'Verification succeeded, current system settings match the preset profile.' ;;\n  *) exit 2 ;;\nesac\n",
    );
    std::fs::write(
        root.join("proc/modules"),
        "kvm 1150976 0 - Live 0x0000000000000000\n",
    )
    .unwrap();
    write_exe(
        &t.path().join("bin/modprobe"),
        &format!(
            "#!/bin/sh\nmkdir -p '{}/sys/module/'\"$1\"\n",
            root.display()
        ),
    );
    (t, root)
}

const CATALOGUE: &str = "host:
  tuned: { profile: virtual-host }
  sysctl: { vm.swappiness: 10, net.ipv4.conf.all.arp_filter: true }
  transparent_hugepage: { enabled: never, defrag: defer+madvise }
  hugepages:
    - { size: 2M, count: 512 }
    - { size: 2M, node: 1, count: 128 }
    - { size: 1G, count: 4, persist: boot }
  ksm: { run: true, sleep_millisecs: 200, pages_to_scan: 1000, merge_across_nodes: false }
  interfaces: { eth0: { mtu: 9000 }, ens1f0: { sriov_numvfs: 4 } }
  modules: [vhost_net, kvm]
";

fn kvmtune(tmp: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        tmp.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(args)
        .current_dir(tmp)
        .env("NO_COLOR", "1")
        .env("PATH", path)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn whole_catalogue_plans_applies_and_converges() {
    let (tmp, root) = catalogue_root();
    let r = root.to_str().unwrap();
    std::fs::write(tmp.path().join("host.yaml"), CATALOGUE).unwrap();
    let o = kvmtune(tmp.path(), &["--root", r, "validate", "host.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));

    let o = kvmtune(tmp.path(), &["--root", r, "plan", "host.yaml"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    insta::assert_snapshot!("catalogue_plan_human", out(&o));
    let o = kvmtune(
        tmp.path(),
        &["--root", r, "plan", "host.yaml", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    insta::assert_snapshot!("catalogue_plan_json", out(&o));

    let o = kvmtune(
        tmp.path(),
        &["--root", r, "apply", "host.yaml", "--auto-approve"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let text = out(&o);
    assert!(
        text.contains("tuned.profile: `/usr/sbin/tuned-adm verify`: Verification succeeded"),
        "{text}"
    );

    // Runtime values landed.
    let rd = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
    assert_eq!(rd("proc/sys/vm/swappiness"), "10\n");
    assert_eq!(rd("sys/kernel/mm/ksm/run"), "1\n");
    assert_eq!(rd("sys/kernel/mm/ksm/merge_across_nodes"), "0\n");
    assert_eq!(rd("sys/class/net/eth0/mtu"), "9000\n");
    assert_eq!(rd("sys/class/net/ens1f0/device/sriov_numvfs"), "4\n");
    assert_eq!(rd("etc/tuned/active_profile"), "virtual-host\n");
    assert!(root.join("sys/module/vhost_net").is_dir());
    // The 1G pool is a boot drop-in only: no runtime write.
    assert_eq!(
        rd("sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"),
        "0\n"
    );
    // Persisted files, whole.
    insta::assert_snapshot!(
        "catalogue_persisted_files",
        [
            "etc/sysctl.d/90-kvmtune.conf",
            "etc/tmpfiles.d/90-kvmtune.conf",
            "etc/modules-load.d/90-kvmtune.conf",
            "etc/default/grub.d/90-kvmtune.cfg",
        ]
        .iter()
        .map(|f| format!("==> /{f} <==\n{}", rd(f)))
        .collect::<Vec<_>>()
        .join("\n")
    );

    let o = kvmtune(
        tmp.path(),
        &["--root", r, "plan", "host.yaml", "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).starts_with("No changes."), "{}", out(&o));
    let o = kvmtune(
        tmp.path(),
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
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
        (Some(0), Some(0))
    );

    // Drift in the persisted layer alone: a hand-edited sysctl.d file and a missing tmpfiles line.
    std::fs::write(
        root.join("etc/sysctl.d/90-kvmtune.conf"),
        "vm.swappiness = 60\nkernel.panic = 5\n",
    )
    .unwrap();
    let o = kvmtune(tmp.path(), &["--root", r, "plan", "host.yaml"]);
    insta::assert_snapshot!("catalogue_persisted_drift", out(&o));
    let o = kvmtune(
        tmp.path(),
        &["--root", r, "apply", "host.yaml", "--auto-approve"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let o = kvmtune(
        tmp.path(),
        &["--root", r, "plan", "host.yaml", "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
}

/// One key at a time: apply → plan empty → second apply zero writes, runtime and persisted.
#[test]
fn every_key_converges_alone() {
    let keys = [
        "tuned: { profile: virtual-host }",
        "sysctl: { vm.swappiness: 10 }",
        "sysctl: { vm.dirty_ratio: 15, vm.dirty_background_ratio: 5 }",
        "transparent_hugepage: { enabled: always }",
        "transparent_hugepage: { defrag: never }",
        "hugepages: [ { size: 2M, count: 64 } ]",
        "hugepages: [ { size: 2M, node: 0, count: 32 } ]",
        "hugepages: [ { size: 1G, node: 1, count: 2 } ]",
        "hugepages: [ { size: 1G, count: 2, persist: boot } ]",
        "hugepages: [ { size: 1G, node: 0, count: 1, persist: boot }, { size: 1G, node: 1, count: 1, persist: boot } ]",
        "ksm: { run: true }",
        "ksm: { sleep_millisecs: 50 }",
        "ksm: { pages_to_scan: 500 }",
        "ksm: { merge_across_nodes: false }",
        "interfaces: { eth0: { mtu: 9000 } }",
        "interfaces: { lo: { mtu: 16384 } }",
        "interfaces: { ens1f0: { sriov_numvfs: 8 } }",
        "modules: [vhost_net]",
        "persist: false\n  sysctl: { vm.swappiness: 1 }",
    ];
    for key in keys {
        let (tmp, root) = catalogue_root();
        let r = root.to_str().unwrap();
        std::fs::write(tmp.path().join("k.yaml"), format!("host:\n  {key}\n")).unwrap();
        let o = kvmtune(
            tmp.path(),
            &["--root", r, "apply", "k.yaml", "--auto-approve"],
        );
        assert_eq!(o.status.code(), Some(0), "{key}: {}", out(&o));
        assert!(out(&o).contains("Apply complete"), "{key}: {}", out(&o));
        let o = kvmtune(
            tmp.path(),
            &["--root", r, "plan", "k.yaml", "--detailed-exitcode"],
        );
        assert_eq!(o.status.code(), Some(0), "{key}: {}", out(&o));
        let o = kvmtune(
            tmp.path(),
            &[
                "--root",
                r,
                "apply",
                "k.yaml",
                "--auto-approve",
                "--format",
                "json",
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
            (Some(0), Some(0)),
            "{key}"
        );
        let etc = root.join("etc");
        let persisted = ["sysctl.d", "tmpfiles.d", "modules-load.d", "default/grub.d"]
            .iter()
            .any(|d| etc.join(d).exists());
        let expect = !(key.starts_with("persist: false")
            || key.starts_with("interfaces")
            || key.starts_with("tuned"));
        assert_eq!(
            persisted, expect,
            "{key}: persisted files present: {persisted}"
        );
    }
}

#[test]
fn errors_for_unknown_profile_missing_tuned_missing_module_and_sriov() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), root.path());
    let r = root.path().to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Validation-time: an unknown profile lists the profile dirs under the root.
    std::fs::write(
        dir.path().join("p.yaml"),
        "host:\n  tuned: { profile: virtual-hots }\n",
    )
    .unwrap();
    let o = kvmtune(dir.path(), &["--root", r, "validate", "p.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr),
        "p.yaml:2:12: host.tuned.profile: tuned has no profile `virtual-hots`; available: balanced, latency-performance, throughput-performance, virtual-guest, virtual-host\n"
    );
    // Plan-time: each key gets its own error; the other keys still plan.
    std::fs::write(
        dir.path().join("e.yaml"),
        "host:\n  tuned: { profile: virtual-host }\n  modules: [vhost_net, kvm]\n  interfaces: { eth9: { mtu: 9000 }, eth0: { sriov_numvfs: 2 }, ens1f0: { sriov_numvfs: 9 } }\n  ksm: { run: true }\n",
    )
    .unwrap();
    let o = kvmtune(dir.path(), &["--root", r, "plan", "e.yaml"]);
    assert_eq!(o.status.code(), Some(1));
    insta::assert_snapshot!("catalogue_plan_errors", out(&o));
}

/// Records commands; `modprobe` fails like it does on a kernel without the module.
struct FakeCommands {
    root: PathBuf,
    log: RefCell<Vec<String>>,
}

impl HostCommands for FakeCommands {
    fn run(&self, argv: &[String]) -> std::io::Result<CmdOutput> {
        self.log.borrow_mut().push(argv.join(" "));
        let ok = |s: &str| CmdOutput {
            code: Some(0),
            stdout: s.into(),
            stderr: String::new(),
        };
        Ok(match argv[0].as_str() {
            "modprobe" => CmdOutput {
                code: Some(1),
                stdout: String::new(),
                stderr: format!("modprobe: FATAL: Module {} not found in directory /lib/modules/6.18.44-fc-v669\n", argv[1]),
            },
            "mount" => {
                let m = self.root.join("proc/mounts");
                let mut t = std::fs::read_to_string(&m).unwrap_or_default();
                t.push_str(&format!("hugetlbfs {} hugetlbfs rw,relatime,pagesize=2M 0 0\n", argv[4]));
                std::fs::write(m, t).unwrap();
                ok("")
            }
            _ => ok(""),
        })
    }
}

#[test]
fn modprobe_failure_is_clear_and_other_keys_still_apply() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), root.path());
    std::fs::write(root.path().join("proc/modules"), "").unwrap();
    let desired = kvmtune::desired::load_str(
        "m.yaml",
        "host:\n  modules: [vhost_net]\n  sysctl: { vm.swappiness: 10 }\n",
    )
    .unwrap();
    let obs = observe::observe(&desired, root.path(), None).unwrap();
    let p = kvmtune::pipeline::plan(&desired, &obs);
    let cmds = FakeCommands {
        root: root.path().into(),
        log: RefCell::new(Vec::new()),
    };
    let io = apply::HostIo {
        files: &kvmtune::host::RealFiles,
        cmds: &cmds,
    };
    let report = apply::apply_with(
        &p,
        &desired,
        apply::Target {
            root: root.path(),
            hv: None,
            io,
        },
        &mut |_, _, _| {},
    );
    assert!(!report.ok());
    let host = &report.results[0];
    // The module that did not load is not persisted in modules-load.d either.
    assert_eq!(host.failed.len(), 2, "{host:?}");
    assert_eq!(
        host.failed[1].0, "modules.vhost_net (persisted)",
        "{host:?}"
    );
    assert_eq!(
        host.failed[0].1,
        "`modprobe vhost_net` failed (exit 1): modprobe: FATAL: Module vhost_net not found in directory /lib/modules/6.18.44-fc-v669"
    );
    assert!(
        host.applied.contains(&"sysctl.vm.swappiness".to_string()),
        "{host:?}"
    );
    assert_eq!(*cmds.log.borrow(), vec!["modprobe vhost_net".to_string()]);
}

#[test]
fn hugetlbfs_is_mounted_for_guests_that_need_it() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), root.path());
    std::fs::write(root.path().join("proc/mounts"), "proc /proc proc rw 0 0\n").unwrap();
    let desired = kvmtune::desired::load_str(
        "g.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 60 }\n",
    )
    .unwrap();
    let needs = kvmtune::host::HostNeeds {
        meminfo: true,
        hugetlbfs: true,
    };
    let obs = kvmtune::host::observe(root.path(), &desired.host, needs).unwrap();
    let hp = kvmtune::host::plan_host(&desired.host, &obs);
    assert_eq!(hp.changes.len(), 1);
    assert_eq!(hp.changes[0].path, "hugetlbfs");
    assert_eq!(hp.changes[0].after.as_deref(), Some("/dev/hugepages"));
    let cmds = FakeCommands {
        root: root.path().into(),
        log: RefCell::new(Vec::new()),
    };
    for op in &hp.ops {
        kvmtune::host::execute(&kvmtune::host::RealFiles, &cmds, root.path(), op).unwrap();
    }
    let dir = root.path().join("dev/hugepages");
    assert_eq!(
        *cmds.log.borrow(),
        vec![
            format!("mkdir -p {}", dir.display()),
            format!("mount -t hugetlbfs hugetlbfs {}", dir.display())
        ]
    );
    let obs = kvmtune::host::observe(root.path(), &desired.host, needs).unwrap();
    let hp = kvmtune::host::plan_host(&desired.host, &obs);
    assert!(hp.changes.is_empty(), "{:?}", hp.changes);
    assert_eq!(hp.notes.len(), 1);
    assert!(
        hp.notes[0].starts_with(&format!(
            "hugetlbfs: guests with huge page backing find it at {} (pagesize=2M)",
            dir.display()
        )),
        "{:?}",
        hp.notes
    );
}

#[test]
fn one_gig_shortfall_names_numbers_and_the_kernel_command_line() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), root.path());
    let desired = kvmtune::desired::load_str(
        "h.yaml",
        "host:\n  sysctl: { vm.swappiness: 10 }\n  hugepages:\n    - { size: 1G, node: 0, count: 4 }\n    - { size: 2M, node: 1, count: 8 }\n",
    )
    .unwrap();
    let obs = observe::observe(&desired, root.path(), None).unwrap();
    let p = kvmtune::pipeline::plan(&desired, &obs);
    let report = apply::apply_with(
        &p,
        &desired,
        apply::Target {
            root: root.path(),
            hv: None,
            io: apply::HostIo {
                files: &CappedPools { cap: 1 },
                cmds: &kvmtune::host::RealCommands,
            },
        },
        &mut |_, _, _| {},
    );
    assert!(!report.ok());
    let host = &report.results[0];
    let failed: Vec<&str> = host.failed.iter().map(|(p, _)| p.as_str()).collect();
    // A pool that fell short is not persisted for boot either.
    assert_eq!(
        failed,
        [
            "hugepages.1G.node0",
            "hugepages.2M.node1",
            "hugepages.1G.node0 (persisted)",
            "hugepages.2M.node1 (persisted)"
        ]
    );
    assert_eq!(
        host.failed[0].1,
        "huge page pool /sys/devices/system/node/node0/hugepages/hugepages-1048576kB/nr_hugepages: requested 4 pages, the kernel allocated 1; a running kernel rarely has 1G of contiguous free memory: the reliable way is the kernel command line (default_hugepagesz=1G hugepagesz=1G hugepages=4), which kvmtune writes as a boot drop-in for this pool with `persist: boot`"
    );
    assert_eq!(
        host.failed[1].1,
        "huge page pool /sys/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages: requested 8 pages, the kernel allocated 1"
    );
    // Other keys, and the persisted files, still applied.
    assert!(host.applied.contains(&"sysctl.vm.swappiness".to_string()));
    assert!(host
        .applied
        .contains(&"sysctl.vm.swappiness (persisted)".to_string()));
}

/// The catalogue root with the real tuned profiles of tests/data/tuned (Debian's tuned 2.20)
/// under /usr/lib/tuned, and no active profile.
fn tuned_root() -> (tempfile::TempDir, PathBuf) {
    let (tmp, root) = catalogue_root();
    let data = repo().join("tests/data/tuned");
    for e in std::fs::read_dir(&data).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &root.join("usr/lib/tuned").join(e.file_name()));
        }
    }
    std::fs::write(root.join("etc/tuned/active_profile"), "").unwrap();
    (tmp, root)
}

/// apply → plan empty → a second apply writes nothing and runs nothing; returns apply's output.
fn converge_at(tmp: &Path, r: &str, cfg: &str) -> String {
    let o = kvmtune(tmp, &["--root", r, "apply", cfg, "--auto-approve"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let o = kvmtune(tmp, &["--root", r, "plan", cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).starts_with("No changes."), "{}", out(&o));
    let o = kvmtune(
        tmp,
        &[
            "--root",
            r,
            "apply",
            cfg,
            "--auto-approve",
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["host_writes"].as_u64(), v["host_commands"].as_u64()),
        (Some(0), Some(0)),
        "{v}"
    );
    text
}

#[test]
fn a_sysctl_the_tuned_profile_sets_goes_into_a_child_profile_that_tuned_applies() {
    let (tmp, root) = tuned_root();
    let r = root.to_str().unwrap();
    let rd = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
    std::fs::write(
        tmp.path().join("t.yaml"),
        "host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7, vm.dirty_ratio: 40 }\n",
    )
    .unwrap();
    let o = kvmtune(tmp.path(), &["--root", r, "plan", "t.yaml"]);
    let plan = out(&o);
    assert_eq!(o.status.code(), Some(0), "{plan}");
    for line in [
        "+ tuned.kvmtune.include: (absent) → virtual-host",
        "+ tuned.kvmtune.sysctl.vm.swappiness: (absent) → 7",
        "+ tuned.profile: (none) → kvmtune",
    ] {
        assert!(plan.contains(line), "{line}\n{plan}");
    }
    // vm.dirty_ratio is throughput-performance's own 40: not overridden.
    assert!(
        !plan.contains("tuned.kvmtune.sysctl.vm.dirty_ratio"),
        "{plan}"
    );
    // `check` names the override and where the profile's value comes from.
    let o = kvmtune(tmp.path(), &["--root", r, "check", "t.yaml"]);
    assert!(
        out(&o).contains("vm.swappiness: 7 overrides virtual-host's 10 (from throughput-performance) — set in the kvmtune child profile"),
        "{}",
        out(&o)
    );

    converge_at(tmp.path(), r, "t.yaml");
    assert_eq!(rd("etc/tuned/active_profile"), "kvmtune\n");
    assert_eq!(rd("proc/sys/vm/swappiness"), "7\n");
    let child = rd("etc/tuned/kvmtune/tuned.conf");
    assert!(child.starts_with("# Written by kvmtune"), "{child}");
    assert!(
        child.ends_with("[main]\nsummary=kvmtune: virtual-host with the values kvmtune's configuration declares\ninclude=virtual-host\n\n[sysctl]\nvm.swappiness=7\n"),
        "{child}"
    );

    // A hand edit of the child is drift, shown line by line.
    std::fs::write(
        root.join("etc/tuned/kvmtune/tuned.conf"),
        child.replace("vm.swappiness=7", "vm.swappiness=30"),
    )
    .unwrap();
    let o = kvmtune(tmp.path(), &["--root", r, "plan", "t.yaml"]);
    let plan = out(&o);
    assert!(
        plan.contains("~ tuned.kvmtune.sysctl.vm.swappiness: 30 → 7")
            && plan.contains("tuned.profile: kvmtune → kvmtune (reloaded: its tuned.conf changes)"),
        "{plan}"
    );
    converge_at(tmp.path(), r, "t.yaml");
    assert_eq!(rd("etc/tuned/kvmtune/tuned.conf"), child);

    // Rollback of the last apply puts back the hand-edited child (tuned reloads it).
    let o = kvmtune(tmp.path(), &["--root", r, "rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(rd("etc/tuned/kvmtune/tuned.conf").contains("vm.swappiness=30"));
    assert_eq!(rd("etc/tuned/active_profile"), "kvmtune\n");

    // cpu-partitioning takes isolated_cores: the online CPUs (0-15) outside cpu_pool.reserved.
    std::fs::write(
        tmp.path().join("p.yaml"),
        "host:\n  tuned: { profile: cpu-partitioning }\n  cpu_pool: { reserved: \"0,8\" }\n",
    )
    .unwrap();
    converge_at(tmp.path(), r, "p.yaml");
    assert_eq!(rd("etc/tuned/active_profile"), "kvmtune\n");
    assert!(
        rd("etc/tuned/kvmtune/tuned.conf")
            .ends_with("include=cpu-partitioning\n\n[variables]\nisolated_cores=1-7,9-15\n"),
        "{}",
        rd("etc/tuned/kvmtune/tuned.conf")
    );

    // Nothing to override: the profile itself is activated, as before.
    std::fs::write(
        tmp.path().join("v.yaml"),
        "host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 10 }\n",
    )
    .unwrap();
    converge_at(tmp.path(), r, "v.yaml");
    assert_eq!(rd("etc/tuned/active_profile"), "virtual-host\n");
}

#[test]
fn a_saved_plan_with_the_child_profile_applies_and_a_tampered_one_is_refused() {
    let (tmp, root) = tuned_root();
    let r = root.to_str().unwrap();
    std::fs::write(
        tmp.path().join("t.yaml"),
        "host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n",
    )
    .unwrap();
    let o = kvmtune(
        tmp.path(),
        &["--root", r, "plan", "t.yaml", "--out", "p.json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let saved = std::fs::read_to_string(tmp.path().join("p.json")).unwrap();
    assert!(saved.contains("\"tuned_sysctl\""), "{saved}");
    // The child's line says 60 where the configuration says 7: refused, nothing written.
    let tampered = saved.replacen("\"value\": \"7\"", "\"value\": \"60\"", 1);
    assert_ne!(tampered, saved);
    std::fs::write(tmp.path().join("bad.json"), tampered).unwrap();
    let o = kvmtune(tmp.path(), &["--root", r, "apply", "bad.json"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(
        out(&o).contains("/etc/tuned/kvmtune/tuned.conf: the configuration does not declare this"),
        "{}",
        out(&o)
    );
    assert!(!root.join("etc/tuned/kvmtune").exists());
    let o = kvmtune(tmp.path(), &["--root", r, "apply", "p.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/tuned/active_profile")).unwrap(),
        "kvmtune\n"
    );
    let o = kvmtune(
        tmp.path(),
        &["--root", r, "plan", "t.yaml", "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
}
