//! Fault injection at exact points, on the real libvirtd and a temp host root.
//!
//! The `fault-injection` hook (src/faults.rs) SIGKILLs kvmtune right after the k-th pass of a
//! point (`KVMTUNE_FAULT=<point>:<k>`). The kill tests walk every (point, k) one apply passes —
//! the backup, the host command, every host write, every define, every live change, the pin
//! lock file — and after each kill check: the process died by SIGKILL (the point was reached),
//! every guest is still defined, each guest's definition is its old XML or wholly the new
//! tuning (exactly k guests new after the k-th define), every owned host file is whole (the
//! old or the new content), no temp files are left, a rerun converges and a plan after it has
//! zero changes. Without the feature these tests fail, never skip: scripts/test.sh builds and
//! tests with `--features fault-injection`.
//!
//! Also: libvirtd restarted while an apply is held at a known step (a `tuned-adm` stand-in that
//! waits), libvirtd restarted after a kill between two defines, a kernel file answering EINVAL
//! (through the file seam) and a read-only filesystem under `--root`.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

/// The tests here disturb the whole hypervisor (libvirtd restarts): one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const PROFILES: [&str; 2] = ["virtual-host", "throughput-performance"];

/// Runtime files of the host root (what the two tunings write), relative to the root.
const RUNTIME: [&str; 4] = [
    "proc/sys/vm/swappiness",
    "proc/sys/vm/dirty_ratio",
    "sys/kernel/mm/transparent_hugepage/enabled",
    "etc/tuned/active_profile",
];

/// The files kvmtune owns and replaces whole (src/host/persist.rs), relative to the root.
const OWNED: [&str; 2] = [
    "etc/sysctl.d/90-kvmtune.conf",
    "etc/tmpfiles.d/90-kvmtune.conf",
];

/// A `tuned-adm` stand-in: `profile` records the profile where tuned does; while the file
/// `pause` exists in the root, it then creates `paused` and waits (at most 120 s) until
/// `pause` is removed, which holds apply at a known step: after observing and backing up,
/// before the remaining host writes and every define.
const TUNED_ADM: &str = r#"#!/bin/sh
R="$(dirname "$0")/../.."
case "$1" in
  profile)
    printf '%s\n' "$2" > "$R/etc/tuned/active_profile"
    if [ -e "$R/pause" ]; then
      : > "$R/paused"
      i=0
      while [ -e "$R/pause" ] && [ "$i" -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
    fi
    ;;
  verify) echo 'Verification succeeded, current system settings match the preset profile.' ;;
  *) exit 2 ;;
esac
"#;

/// A temp host root: two sysctls, THP `enabled`, tuned (stand-in, two profiles) and an empty
/// /etc for the persisted files.
fn host_root() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let t = tempfile::tempdir().unwrap();
    let w = |f: &str, text: &str| {
        let p = t.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("proc/sys/vm/swappiness", "60\n");
    w("proc/sys/vm/dirty_ratio", "20\n");
    w(
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always [madvise] never\n",
    );
    w("etc/tuned/active_profile", "balanced\n");
    for p in PROFILES {
        w(&format!("usr/lib/tuned/{p}/tuned.conf"), "[main]\n");
    }
    w("usr/sbin/tuned-adm", TUNED_ADM);
    std::fs::set_permissions(
        t.path().join("usr/sbin/tuned-adm"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    t
}

/// Two tunings that differ in every value, so each apply of one after the other has work on
/// every target: the host (tuned profile, sysctls, THP, both persisted files) and every guest.
fn tuning(names: &[String], variant: usize) -> String {
    let v = variant % 2;
    let (pin, emu, cache) = [("0", "0-1", "none"), ("1", "1", "writeback")][v];
    let mut y = format!(
        "host:\n  tuned: {{ profile: {} }}\n  sysctl: {{ vm.swappiness: {}, vm.dirty_ratio: {} }}\n  transparent_hugepage: {{ enabled: {} }}\nguests:\n",
        PROFILES[v],
        10 + v,
        21 + v,
        ["never", "always"][v]
    );
    for n in names {
        y.push_str(&format!(
            "  {n}:\n    cputune: {{ vcpupin: {{ 0: \"{pin}\", 1: \"{pin}\" }}, emulatorpin: \"{emu}\" }}\n    disks: {{ \"*\": {{ cache: {cache} }} }}\n"
        ));
    }
    y
}

fn read_opt(p: &Path) -> Option<String> {
    std::fs::read_to_string(p).ok()
}

/// The content of each runtime and owned file (`None`: absent).
fn host_files(root: &Path) -> Vec<(&'static str, Option<String>)> {
    RUNTIME
        .iter()
        .chain(&OWNED)
        .map(|f| (*f, read_opt(&root.join(f))))
        .collect()
}

/// The apply records in the state directory.
fn records(root: &Path) -> BTreeSet<String> {
    std::fs::read_dir(root.join("var/lib/kvmtune/applies"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Hidden entries (kvmtune's temp files are `.<name>.kvmtune-<pid>` and `.<id>.tmp`) in the
/// directories kvmtune writes whole files into.
fn temp_files(root: &Path) -> Vec<PathBuf> {
    ["etc/sysctl.d", "etc/tmpfiles.d", "var/lib/kvmtune/applies"]
        .iter()
        .filter_map(|d| std::fs::read_dir(root.join(d)).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect()
}

fn ok(what: &str, o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{what}: {}", describe(o));
}

/// A count from apply's JSON report.
fn count(report: &serde_json::Value, key: &str) -> usize {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report}")) as usize
}

#[test]
fn sigkill_at_every_point_of_an_apply_leaves_old_or_new_and_a_rerun_converges() {
    require_fault_hook();
    let _serial = serial();
    // Two stopped guests and a running one, last in apply order (guests apply by name), so
    // its live changes come after every define.
    let guests = [
        Guest::define("fault-a", Spec::default()),
        Guest::define("fault-b", Spec::default()),
        Guest::define("fault-z-running", Spec::default()),
    ];
    guests[2].start();
    let names: Vec<String> = guests.iter().map(|g| g.name().to_string()).collect();
    let root = host_root();
    let dir = tempfile::tempdir().unwrap();
    let (a_yaml, b_yaml) = (tuning(&names, 0), tuning(&names, 1));
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(&a, &a_yaml).unwrap();
    std::fs::write(&b, &b_yaml).unwrap();
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let apply = |cfg: &str| kvmtune(root.path(), &["apply", cfg, "--auto-approve"]);
    let plan_is_empty = |what: &str, cfg: &str| {
        let o = kvmtune(root.path(), &["plan", cfg, "--detailed-exitcode"]);
        assert_eq!(o.status.code(), Some(0), "{what}: {}", describe(&o));
    };

    // Without faults: A, then B (counting what an apply of B after A does), then A again.
    ok("apply A", &apply(a));
    plan_is_empty("plan A", a);
    let state_a = host_files(root.path());
    let o = kvmtune(
        root.path(),
        &["apply", b, "--auto-approve", "--format", "json"],
    );
    ok("apply B", &o);
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    plan_is_empty("plan B", b);
    let state_b = host_files(root.path());
    ok("apply A again", &apply(a));
    let (commands, writes, defines, live) = (
        count(&report, "host_commands"),
        count(&report, "host_writes"),
        count(&report, "defines"),
        count(&report, "live_changes"),
    );
    // The scenario really exercises every kind of point.
    assert_eq!((commands, defines), (1, guests.len()), "{report}");
    assert!(writes >= 5 && live >= 1, "{report}");
    for ((f, old), (_, new)) in state_a.iter().zip(&state_b) {
        assert!(old.is_some() && old != new, "{f}: A {old:?}, B {new:?}");
    }

    let mut points = vec![("backup", 1)];
    for (point, n) in [
        ("host-command", commands),
        ("host-write", writes),
        ("define", defines),
        ("live", live),
    ] {
        points.extend((1..=n).map(|k| (point, k)));
    }
    for &(point, k) in &points {
        let at = format!("{point}:{k}");
        let before: Vec<String> = guests.iter().map(|g| g.inactive_xml()).collect();
        let records_before = records(root.path());
        let o = kvmtune_fault(root.path(), &["apply", b, "--auto-approve"], point, k);
        assert_killed_at(&o, point, k);

        // Every guest is defined, its old XML or wholly B; exactly k after the k-th define.
        let mut new = 0;
        for (g, old) in guests.iter().zip(&before) {
            assert!(domain_exists(g.name()), "{at}: {} undefined", g.name());
            let now = g.inactive_xml();
            if now != *old {
                assert!(
                    matches_new(&b_yaml, g.name(), &now),
                    "{at}: {} is neither its old XML nor the new tuning:\n{now}",
                    g.name()
                );
                new += 1;
            }
        }
        match point {
            "backup" => assert_eq!(new, 0, "{at}"),
            "define" => assert_eq!(new, k, "{at}: guests redefined"),
            "live" => assert_eq!(new, guests.len(), "{at}"),
            _ => {}
        }
        // Every host file is A's or B's, whole; nothing at all changed before the backup.
        let now = host_files(root.path());
        for (((f, now), (_, old)), (_, new)) in now.iter().zip(&state_a).zip(&state_b) {
            assert!(
                now == old || now == new,
                "{at}: /{f} is torn or foreign: {now:?}"
            );
        }
        if point == "backup" {
            assert_eq!(now, state_a, "{at}: the host changed before the backup");
            assert!(
                records(root.path()).difference(&records_before).count() == 1,
                "{at}: no new apply record"
            );
        }
        let left = temp_files(root.path());
        assert!(left.is_empty(), "{at}: temp files left: {left:?}");

        // A rerun converges, and nothing is left to do.
        ok(&format!("{at}: rerun"), &apply(b));
        plan_is_empty(&format!("{at}: plan after the rerun"), b);
        assert_eq!(host_files(root.path()), state_b, "{at}");
        // Back to A for the next point.
        ok(&format!("{at}: back to A"), &apply(a));
    }
    assert!(guests[2].is_running(), "apply must never stop a guest");
    eprintln!("killed at {} points: {points:?}", points.len());
}

/// The pin lock file (`--lock-file`, automatic pinning): killed before the define, between the
/// define and the lock file, and right after the lock file: the lock is absent or whole, and
/// a rerun converges and leaves a lock that a plan reproduces with zero changes.
#[test]
fn sigkill_around_the_pin_lock_file_and_a_rerun_converges() {
    require_fault_hook();
    let _serial = serial();
    for (point, k) in [("backup", 1), ("define", 1), ("lock-file", 1)] {
        let g = Guest::define(
            &format!("lockfile-{point}"),
            Spec {
                vcpus: 1,
                ..Spec::default()
            },
        );
        let root = empty_root();
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("t.yaml");
        std::fs::write(
            &cfg,
            format!(
                "host:\n  cpu_pool: {{ reserved: \"0\", allow_overcommit: true }}\nguests:\n  {}:\n    cputune: {{ vcpupin: auto, emulatorpin: auto }}\n",
                g.name()
            ),
        )
        .unwrap();
        let lock = dir.path().join("kvmtune.lock.yaml");
        let (cfg, lock_s) = (cfg.to_str().unwrap(), lock.to_str().unwrap());
        let before = g.inactive_xml();
        let o = kvmtune_fault(
            root.path(),
            &["--lock-file", lock_s, "apply", cfg, "--auto-approve"],
            point,
            k,
        );
        assert_killed_at(&o, point, k);
        assert!(domain_exists(g.name()));
        // The guest's pin as defined (`None` before the define), never the reserved CPU 0.
        let pin = |xml: &str| -> Option<u32> {
            let pins = vcpupins(xml);
            assert!(pins.len() <= 1, "{pins:?}");
            pins.first().map(|(v, c)| {
                assert_eq!(v, "0");
                c.parse().unwrap()
            })
        };
        let xml = g.inactive_xml();
        match point {
            "backup" => assert_eq!(xml, before, "{point}: changed before the backup"),
            _ => assert!(pin(&xml).is_some_and(|c| c != 0), "{point}:\n{xml}"),
        }
        // The lock is written once the apply succeeded, whole (atomic replace), and says
        // what was defined.
        let text = read_opt(&lock);
        assert_eq!(text.is_some(), point == "lock-file", "{point}: {text:?}");
        let locked = |text: &str| {
            let l = kvmtune::pinning::Lock::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"));
            l.guests[g.name()].vcpupin.clone()
        };
        if let Some(text) = &text {
            assert_eq!(locked(text), Vec::from_iter(pin(&xml)), "{text}");
        }
        let o = kvmtune(
            root.path(),
            &["--lock-file", lock_s, "apply", cfg, "--auto-approve"],
        );
        ok(&format!("{point}: rerun"), &o);
        let xml = g.inactive_xml();
        assert_eq!(
            locked(&read_opt(&lock).unwrap()),
            Vec::from_iter(pin(&xml)),
            "{point}: the lock and the definition disagree"
        );
        let o = kvmtune(
            root.path(),
            &["--lock-file", lock_s, "plan", cfg, "--detailed-exitcode"],
        );
        assert_eq!(o.status.code(), Some(0), "{point}: {}", describe(&o));
        assert!(temp_files(root.path()).is_empty());
    }
}

/// Restores libvirtd if the test stopped it, whatever happens.
struct LibvirtdUp;

impl Drop for LibvirtdUp {
    fn drop(&mut self) {
        start_libvirtd();
    }
}

fn libvirtd_pid() -> Option<u32> {
    let out = Command::new("pgrep")
        .args(["-x", "libvirtd"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Polls `done` every 100 ms, at most `secs` seconds; whether it became true.
fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..secs * 10 {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    done()
}

/// Starts libvirtd when none runs and waits until it answers.
fn start_libvirtd() {
    if libvirtd_pid().is_none() {
        let _ = Command::new("libvirtd").arg("-d").status();
    }
    assert!(
        wait_until(60, || virsh(&["version"]).status.success()),
        "libvirtd did not come back"
    );
}

/// Stops libvirtd (SIGTERM, waits for it to exit), then starts it again.
fn restart_libvirtd() {
    let pid = libvirtd_pid().expect("libvirtd is running");
    let st = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(
        wait_until(60, || !Path::new(&format!("/proc/{pid}")).exists()),
        "libvirtd {pid} did not exit after SIGTERM"
    );
    start_libvirtd();
}

#[test]
fn libvirtd_restarted_during_an_apply_is_a_clear_error_and_a_rerun_converges() {
    let _serial = serial();
    let guests: Vec<Guest> = (0..3)
        .map(|i| Guest::define(&format!("lvd{i}"), Spec::default()))
        .collect();
    let names: Vec<String> = guests.iter().map(|g| g.name().to_string()).collect();
    let root = host_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    let _up = LibvirtdUp;
    let variant = 1;
    let yaml = tuning(&names, variant);
    std::fs::write(&cfg, &yaml).unwrap();
    let before: Vec<String> = guests.iter().map(|g| g.inactive_xml()).collect();
    // Hold the apply in `tuned-adm profile` (connected to libvirtd, before any define).
    let pause = root.path().join("pause");
    let paused = root.path().join("paused");
    std::fs::write(&pause, "").unwrap();
    let _ = std::fs::remove_file(&paused);
    let child = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env("NO_COLOR", "1")
        .args(["--connect", &uri(), "--root"])
        .arg(root.path())
        .args([
            "apply",
            cfg.to_str().unwrap(),
            "--auto-approve",
            "--format",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reached = wait_until(120, || paused.exists());
    if !reached {
        let _ = std::fs::remove_file(&pause);
    }
    assert!(reached, "apply never reached `tuned-adm profile`");
    restart_libvirtd();
    std::fs::remove_file(&pause).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = describe(&out);
    // The host step finished; every define failed on the dead connection, by name.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(!text.contains("panicked"), "{text}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    let outcome = |target: &str| {
        report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["target"] == target)
            .unwrap_or_else(|| panic!("no result for {target}: {text}"))
            .clone()
    };
    assert_eq!(outcome("host")["outcome"], "applied", "{text}");
    for (g, old) in guests.iter().zip(&before) {
        let r = outcome(&format!("guest/{}", g.name()));
        assert_eq!(r["outcome"], "failed", "{text}");
        let why = r["failed"][0][1].as_str().unwrap();
        assert!(
            why.contains(g.name()),
            "the error does not name the guest: {why}"
        );
        assert!(domain_exists(g.name()), "{} vanished", g.name());
        assert_eq!(
            &g.inactive_xml(),
            old,
            "{} changed on a dead connection",
            g.name()
        );
    }
    let tuned = std::fs::read_to_string(root.path().join("etc/tuned/active_profile"));
    assert_eq!(tuned.unwrap().trim(), PROFILES[variant]);
    // A rerun against the new libvirtd converges.
    ok(
        "rerun",
        &kvmtune(
            root.path(),
            &["apply", cfg.to_str().unwrap(), "--auto-approve"],
        ),
    );
    let o = kvmtune(
        root.path(),
        &["plan", cfg.to_str().unwrap(), "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    for g in &guests {
        assert!(matches_new(&yaml, g.name(), &g.inactive_xml()));
    }
}

/// Killed between two defines, then libvirtd restarts: libvirtd kept the defines that
/// happened, the others are untouched, and a rerun against the new daemon converges.
#[test]
fn libvirtd_restarted_after_a_kill_between_two_defines_and_a_rerun_converges() {
    require_fault_hook();
    let _serial = serial();
    let guests: Vec<Guest> = (0..3)
        .map(|i| Guest::define(&format!("lvdkill{i}"), Spec::default()))
        .collect();
    let names: Vec<String> = guests.iter().map(|g| g.name().to_string()).collect();
    let root = host_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    let yaml = tuning(&names, 1);
    std::fs::write(&cfg, &yaml).unwrap();
    let cfg = cfg.to_str().unwrap();
    let _up = LibvirtdUp;
    let before: Vec<String> = guests.iter().map(|g| g.inactive_xml()).collect();
    let o = kvmtune_fault(root.path(), &["apply", cfg, "--auto-approve"], "define", 2);
    assert_killed_at(&o, "define", 2);
    restart_libvirtd();
    for (i, (g, old)) in guests.iter().zip(&before).enumerate() {
        assert!(domain_exists(g.name()), "{} vanished", g.name());
        let now = g.inactive_xml();
        if i < 2 {
            assert!(matches_new(&yaml, g.name(), &now), "{}:\n{now}", g.name());
        } else {
            assert_eq!(&now, old, "{}", g.name());
        }
    }
    ok(
        "rerun",
        &kvmtune(root.path(), &["apply", cfg, "--auto-approve"]),
    );
    let o = kvmtune(root.path(), &["plan", cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

/// A "kernel" whose THP `defrag` file refuses `defer` with EINVAL, as the real one refuses a
/// value it does not know; every other file is a plain file of the temp root.
struct RejectsDefer;

impl kvmtune::host::HostFiles for RejectsDefer {
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()> {
        if file.ends_with("transparent_hugepage/defrag") && content.trim() == "defer" {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        }
        kvmtune::host::RealFiles.write(file, content)
    }
    fn read(&self, file: &Path) -> std::io::Result<String> {
        kvmtune::host::RealFiles.read(file)
    }
}

#[test]
fn a_kernel_file_rejecting_a_value_is_reported_and_other_keys_apply() {
    let root = host_root();
    let defrag = root
        .path()
        .join("sys/kernel/mm/transparent_hugepage/defrag");
    std::fs::write(&defrag, "always defer defer+madvise [madvise] never\n").unwrap();
    let d = kvmtune::desired::load_str(
        "t.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n  transparent_hugepage: { defrag: defer }\n",
    )
    .unwrap();
    let obs = kvmtune::observe::observe(&d, root.path(), None).unwrap();
    let p = kvmtune::pipeline::plan(&d, &obs);
    assert!(!p.has_errors(), "{:?}", p.errors);
    let io = kvmtune::apply::HostIo {
        files: &RejectsDefer,
        cmds: &kvmtune::host::RealCommands,
    };
    let t = kvmtune::apply::Target {
        root: root.path(),
        hv: None,
        io,
    };
    let report = kvmtune::apply::apply_with(&p, &d, t, &mut |_, _, _| {});
    assert!(!report.ok());
    let host = &report.results[0];
    assert_eq!(host.applied, ["sysctl.vm.swappiness"], "{host:?}");
    assert_eq!(host.failed.len(), 1, "{host:?}");
    assert_eq!(host.failed[0].0, "transparent_hugepage.defrag");
    assert!(
        host.failed[0].1.contains("Invalid argument"),
        "{}",
        host.failed[0].1
    );
    let text = kvmtune::render::report_text(&report, kvmtune::render::Style { color: false });
    assert!(
        text.contains("transparent_hugepage.defrag") && text.contains("Invalid argument"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "7\n"
    );
    assert_eq!(
        std::fs::read_to_string(&defrag).unwrap(),
        "always defer defer+madvise [madvise] never\n"
    );
    // Planning again: the applied key is settled; only the refused one is still a change.
    let obs = kvmtune::observe::observe(&d, root.path(), None).unwrap();
    let again = kvmtune::pipeline::plan(&d, &obs);
    let paths: Vec<&str> = again.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["transparent_hugepage.defrag"]);
}

fn run(root: &Path, yaml: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args([
            "--root",
            root.to_str().unwrap(),
            "apply",
            cfg.to_str().unwrap(),
            "--auto-approve",
        ])
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// A read-only filesystem under --root (a read-only bind mount): apply cannot store the
/// previous state, so it changes nothing and says so in one line; exit 1; plan still works.
#[test]
fn a_read_only_root_is_a_clear_error() {
    let root = host_root();
    let ro = tempfile::tempdir().unwrap();
    let st = Command::new("mount")
        .args([
            "--bind",
            root.path().to_str().unwrap(),
            ro.path().to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "bind mount failed (tests run as root)");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(ro.path().to_path_buf());
    let st = Command::new("mount")
        .args(["-o", "remount,bind,ro", ro.path().to_str().unwrap()])
        .status()
        .unwrap();
    assert!(st.success());
    let o = run(
        ro.path(),
        "host:\n  sysctl: { vm.swappiness: 7, vm.dirty_ratio: 5 }\n",
    );
    // apply backs up the previous values before changing anything: with nowhere to keep
    // them, it changes nothing and says why.
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "error: state directory {}/var/lib/kvmtune: Read-only file system (os error 30)",
            ro.path().display()
        )
    );
    // plan (which writes nothing) still works on the read-only root.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args([
            "--root",
            ro.path().to_str().unwrap(),
            "plan",
            cfg.to_str().unwrap(),
            "--detailed-exitcode",
        ])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "60\n"
    );
}
