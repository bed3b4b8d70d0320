//! Hostile files, bad input, full disks and broken pipes (issue 12): every case here failed
//! (a panic, a hang, a write outside the root, a lost record) before its fix.
//!
//! On temp roots and libvirt's in-process `test:///` driver; nothing here touches the host.

mod support;
use support::*;

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn cfg(dir: &Path, yaml: &str) -> String {
    let p = dir.join("t.yaml");
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

const HOST: &str = "host:\n  sysctl: { vm.swappiness: 7 }\n";

/// Runs with stdout a pipe whose reader is gone before anything is written (EPIPE).
fn with_closed_stdout(root: &Path, args: &[&str]) -> Output {
    let mut child = kt_cmd(root, args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut e = String::new();
    child.stderr.take().unwrap().read_to_string(&mut e).unwrap();
    let status = child.wait().unwrap();
    Output {
        status,
        stdout: Vec::new(),
        stderr: e.into_bytes(),
    }
}

fn to_dev_full(root: &Path, args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    kt_cmd(root, args)
        .stdin(Stdio::null())
        .stdout(full)
        .output()
        .unwrap()
}

#[test]
fn a_closed_stdout_is_a_quiet_exit_and_a_full_disk_an_error_never_a_panic() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), HOST);
    for args in [
        vec!["plan", c.as_str()],
        vec!["schema"],
        vec!["man"],
        vec!["completions", "bash"],
    ] {
        let o = with_closed_stdout(root.path(), &args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", describe(&o));
        assert!(!err(&o).contains("panicked"), "{args:?}: {}", describe(&o));
        let o = to_dev_full(root.path(), &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", describe(&o));
        assert!(
            err(&o).contains("No space left on device"),
            "{args:?}: {}",
            describe(&o)
        );
    }
}

#[test]
fn apply_with_a_closed_stdout_finishes_and_writes_its_lock_file() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(
        dir.path(),
        "host:\n  sysctl: { vm.swappiness: 7 }\nguests:\n  batch1:\n    cputune: { vcpupin: auto }\n",
    );
    let lock = dir.path().join("kvmtune.lock.yaml");
    let o = with_closed_stdout(
        root.path(),
        &[
            "--lock-file",
            lock.to_str().unwrap(),
            "apply",
            &c,
            "--auto-approve",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(lock.exists(), "no lock file:\n{}", describe(&o));
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "7\n"
    );
    let o = kt(
        root.path(),
        &["plan", &cfg(dir.path(), HOST), "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn usage_errors_exit_1_on_every_command() {
    let root = demo_root();
    for args in [
        vec!["plan", "--detailed-exitcode", "--formt", "json", "x.yaml"],
        vec!["verify", "--nope"],
        vec!["check"],
        vec!["frobnicate"],
        vec!["apply", "--shutdown-timeout", "-1", "x.yaml"],
    ] {
        let o = kt(root.path(), &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", describe(&o));
    }
    let o = kt(root.path(), &["--help"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn a_symlinked_lock_or_state_directory_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), HOST);
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();

    // The lock file.
    let root = demo_root();
    let state = root.path().join("var/lib/kvmtune");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("lock")).unwrap();
    let o = kt(root.path(), &["apply", &c, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "60\n",
        "applied without the lock"
    );

    // The state directory, and a directory on the way to it.
    for link in ["var/lib/kvmtune", "var/lib"] {
        let root = demo_root();
        let outside = tempfile::tempdir().unwrap();
        let l = root.path().join(link);
        std::fs::create_dir_all(l.parent().unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&l);
        std::os::unix::fs::symlink(outside.path(), &l).unwrap();
        let o = kt(root.path(), &["apply", &c, "--auto-approve"]);
        assert_eq!(o.status.code(), Some(1), "{link}: {}", describe(&o));
        assert!(
            err(&o).contains("is a symlink, not a directory"),
            "{link}: {}",
            describe(&o)
        );
        assert_eq!(
            std::fs::read_dir(outside.path()).unwrap().count(),
            0,
            "{link}: wrote outside the root"
        );
    }

    // A state directory others may write.
    let root = demo_root();
    let state = root.path().join("var/lib/kvmtune");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = kt(root.path(), &["apply", &c, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("writable by nobody else"),
        "{}",
        describe(&o)
    );
}

#[test]
fn out_and_lock_file_replace_a_planted_symlink_instead_of_writing_through_it() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = dir.path().join("plan.json");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    let o = kt(
        root.path(),
        &[
            "plan",
            &cfg(dir.path(), HOST),
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let m = std::fs::symlink_metadata(&out).unwrap();
    assert!(m.file_type().is_file());
    assert_eq!(m.mode() & 0o777, 0o600, "the saved plan is private");

    let lock = dir.path().join("kvmtune.lock.yaml");
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let c = cfg(
        dir.path(),
        "guests:\n  batch1:\n    cputune: { vcpupin: auto }\n",
    );
    let o = kt(
        root.path(),
        &[
            "--lock-file",
            lock.to_str().unwrap(),
            "apply",
            &c,
            "--auto-approve",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(1),
        "a symlinked lock file is refused as input: {}",
        describe(&o)
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    // Owned files land with their mode and no temp file is left.
    let o = kt(
        root.path(),
        &["apply", &cfg(dir.path(), HOST), "--auto-approve"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let conf = root.path().join("etc/sysctl.d/90-kvmtune.conf");
    assert_eq!(std::fs::metadata(&conf).unwrap().mode() & 0o777, 0o644);
    let left: Vec<_> = std::fs::read_dir(conf.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("kvmtune-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn keep_backups_0_keeps_the_record_just_written_and_stray_entries_are_ignored() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let applies = root.path().join("var/lib/kvmtune/applies");
    let o = kt(root.path(), &["rollback"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "nothing to restore: {}",
        describe(&o)
    );
    assert!(err(&o).contains("Nothing to restore"), "{}", describe(&o));
    let o = kt(
        root.path(),
        &[
            "apply",
            &cfg(dir.path(), HOST),
            "--auto-approve",
            "--keep-backups",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // A stray directory sorting last, a stray file, and a stale temp directory.
    std::fs::create_dir_all(applies.join("zzz-not-a-record")).unwrap();
    std::fs::write(applies.join("99991231T235959.999Z"), "a file").unwrap();
    std::fs::create_dir_all(applies.join(".20000101T000000.000Z.tmp")).unwrap();
    let o = kt(root.path(), &["rollback", "--list", "--format", "json"]);
    let ids: Vec<String> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(ids.len(), 1, "{ids:?}");
    let o = kt(root.path(), &["rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "60\n"
    );
    assert!(
        !applies.join(".20000101T000000.000Z.tmp").exists(),
        "stale temp directory kept"
    );
}

#[test]
fn a_fifo_or_directory_in_place_of_a_host_file_is_an_error_naming_it() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let f = root.path().join("proc/sys/vm/swappiness");
    std::fs::remove_file(&f).unwrap();
    let c = std::ffi::CString::new(f.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    // Bounded by the child's own behaviour: a hang would fail the suite's timeout, not pass.
    let o = kt(root.path(), &["plan", &cfg(dir.path(), HOST)]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("proc/sys/vm/swappiness is not a regular file (a FIFO)"),
        "{}",
        describe(&o)
    );
    assert!(
        err(&o).contains("host.sysctl.vm.swappiness"),
        "{}",
        describe(&o)
    );
    // A sysctl key that is a directory.
    let o = kt(
        root.path(),
        &["plan", &cfg(dir.path(), "host:\n  sysctl: { vm: 1 }\n")],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("proc/sys/vm is not a regular file (a directory)"),
        "{}",
        describe(&o)
    );
    assert!(err(&o).contains("host.sysctl.vm"), "{}", describe(&o));
}

#[test]
fn a_huge_shutdown_timeout_is_clamped_not_an_overflow() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("plan.json");
    let demo = repo().join("examples/demo/tuning.yaml");
    let o = kt(
        root.path(),
        &[
            "plan",
            demo.to_str().unwrap(),
            "--restart-guests",
            "--shutdown-timeout",
            "18446744073709551615",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let restarts: Vec<u64> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "restart")
        .map(|a| a["action"]["timeout_secs"].as_u64().unwrap())
        .collect();
    assert!(!restarts.is_empty(), "{v}");
    assert!(restarts.iter().all(|t| *t == 86_400), "{restarts:?}");
    // An edited timeout beyond the bound is refused.
    let text = std::fs::read_to_string(&out)
        .unwrap()
        .replace("86400", "18446744073709551615");
    std::fs::write(&out, text).unwrap();
    let o = kt(root.path(), &["apply", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("shutdown timeout"), "{}", describe(&o));
}

#[test]
fn type_errors_carry_file_line_column_and_the_key_path() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    for (yaml, want) in [
        ("host:\n  tuned: {profile: 5}\n", "t.yaml:2:11: host.tuned.profile: invalid type: integer `5`, expected a string"),
        ("host:\n  modules: [1]\n", "t.yaml:2:13: host.modules.0: invalid type: integer `1`, expected a string"),
        ("guests:\n  a:\n    os_variant: 9\n", "t.yaml:3:5: guests.a.os_variant: invalid type: integer `9`"),
        ("guests:\n  1: {vcpu: {count: 2}}\n", "t.yaml:1:1: guests: invalid type: integer `1`, expected a string"),
        ("host:\n  sysctl: { vm.swappiness: !foo 1 }\n", "t.yaml:2:28: host.sysctl.vm.swappiness: YAML tags (`!name value`) are not supported here"),
        ("host:\n  sysctl: { vm.swappi\0ness: 1 }\n", "t.yaml:2:22: YAML syntax error: a NUL byte is not allowed in YAML"),
        ("guests:\n  a:\n    vcpu: {cont: 2}\n", "guests.a.vcpu.cont: unknown field `cont`, expected one of `count`, `current`, `placement`, `cpuset` (did you mean `count`?)"),
    ] {
        let o = kt(root.path(), &["validate", &cfg(dir.path(), yaml)]);
        assert_eq!(o.status.code(), Some(1), "{yaml}: {}", describe(&o));
        assert!(err(&o).contains(want), "{yaml}: expected `{want}`:\n{}", describe(&o));
        assert!(!err(&o).contains(": .: "), "{yaml}: unlocated: {}", describe(&o));
    }
}

#[test]
fn an_aliased_huge_scalar_and_many_plain_keys_are_bounded_and_named_for_what_they_are() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    // A 1 MB anchored scalar aliased 100 times: 100 MB of values from a 1 MB file.
    let mut y = format!("x: &a \"{}\"\ny: [", "A".repeat(1 << 20));
    y.push_str(&vec!["*a"; 100].join(", "));
    y.push_str("]\n");
    let o = kt(root.path(), &["validate", &cfg(dir.path(), &y)]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("bytes of values (an alias bomb?)"),
        "{}",
        describe(&o)
    );
    // 210 000 plain keys, no alias: too many nodes, not "an alias bomb".
    let mut y = String::from("host:\n  sysctl:\n");
    for i in 0..210_000 {
        y.push_str(&format!("    k{i}: 1\n"));
    }
    let o = kt(root.path(), &["validate", &cfg(dir.path(), &y)]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("YAML nodes; split it"), "{}", describe(&o));
    assert!(!err(&o).contains("alias"), "{}", describe(&o));
    // The lock file goes through the same guards.
    let lock = dir.path().join("kvmtune.lock.yaml");
    let mut l = format!(
        "version: 1\nx: &a \"{}\"\nguests: {{}}\ny: [",
        "A".repeat(1 << 20)
    );
    l.push_str(&vec!["*a"; 100].join(", "));
    l.push_str("]\n");
    std::fs::write(&lock, l).unwrap();
    let c = cfg(
        dir.path(),
        "guests:\n  batch1:\n    cputune: { vcpupin: auto }\n",
    );
    let o = kt(
        root.path(),
        &["--lock-file", lock.to_str().unwrap(), "plan", &c],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(err(&o).contains("alias bomb"), "{}", describe(&o));
}

#[test]
fn a_missing_root_and_odd_format_versions_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let c = cfg(dir.path(), HOST);
    let o = kt(&dir.path().join("no-such-root"), &["plan", &c]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("no-such-root: not a directory"),
        "{}",
        describe(&o)
    );

    let root = demo_root();
    let out = dir.path().join("plan.json");
    let o = kt(root.path(), &["plan", &c, "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let good: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    for (v, want) in [
        (
            serde_json::json!("1"),
            "saved plan format \"1\" is not supported",
        ),
        (
            serde_json::json!(1180591620717411303424.0),
            "saved plan format 1.18059162071741",
        ),
        (serde_json::json!(3), "saved plan format 3 is not supported"),
    ] {
        let mut p = good.clone();
        p["format_version"] = v;
        let f = dir.path().join("edited.json");
        std::fs::write(&f, p.to_string()).unwrap();
        let o = kt(root.path(), &["apply", f.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
        assert!(
            err(&o).contains(want),
            "expected `{want}`: {}",
            describe(&o)
        );
    }
}

#[test]
fn kvmtune_reads_its_own_json_import() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let o = kt(root.path(), &["import", "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(text.contains("\"vcpupin\": {"), "the demo has pins: {text}");
    let f = dir.path().join("current.json");
    std::fs::write(&f, &text).unwrap();
    let o = kt(root.path(), &["validate", f.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kt(
        root.path(),
        &["plan", f.to_str().unwrap(), "--detailed-exitcode"],
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "importing then planning changes nothing: {}",
        describe(&o)
    );
}

#[test]
fn control_bytes_from_input_are_never_echoed_raw() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let o = kt(
        root.path(),
        &[
            "validate",
            &cfg(dir.path(), "host:\n  \"sys\\e[31mctl\\0\": {}\n"),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let e = err(&o);
    assert!(
        !e.contains('\u{1b}') && !e.contains('\0'),
        "raw control bytes: {e:?}"
    );
    // A lock holder's text (the lock file's content) is escaped too.
    let state = root.path().join("var/lib/kvmtune");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(state.join("lock"), "pid 1\u{1b}[2J\0").unwrap();
    let lock = std::fs::File::open(state.join("lock")).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: flock on an fd we own; released when `lock` is dropped.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let o = kt(
        root.path(),
        &[
            "apply",
            &cfg(dir.path(), HOST),
            "--auto-approve",
            "--lock-timeout",
            "0",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let e = err(&o);
    assert!(e.contains("holds the lock"), "{e}");
    assert!(
        !e.contains('\u{1b}') && !e.contains('\0'),
        "raw control bytes: {e:?}"
    );
    drop(lock);
}

#[test]
fn import_of_an_odd_host_imports_what_is_there_and_names_what_it_leaves_out() {
    for (profile, pages) in [
        (".hidden", "512"),
        (&*"p".repeat(70), "18446744073709551615"),
    ] {
        let root = demo_root();
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/sbin")).unwrap();
        std::fs::write(r.join("usr/sbin/tuned-adm"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(r.join(format!("usr/lib/tuned/{profile}"))).unwrap();
        std::fs::write(
            r.join(format!("usr/lib/tuned/{profile}/tuned.conf")),
            "[main]\n",
        )
        .unwrap();
        std::fs::create_dir_all(r.join("etc/tuned")).unwrap();
        std::fs::write(r.join("etc/tuned/active_profile"), format!("{profile}\n")).unwrap();
        std::fs::write(
            r.join("sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages"),
            format!("{pages}\n"),
        )
        .unwrap();
        let o = kt(r, &["import", "--host"]);
        assert_eq!(o.status.code(), Some(0), "{profile}: {}", describe(&o));
        let yaml = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            yaml.contains(&format!("profile: {profile}")),
            "{profile}: {yaml}"
        );
        if pages == "512" {
            assert!(yaml.contains("count: 512"), "{yaml}");
        } else {
            assert!(!yaml.contains(pages), "{yaml}");
            assert!(
                err(&o).contains("more memory than any host has: not imported"),
                "{}",
                describe(&o)
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let o = kt(r, &["plan", &cfg(dir.path(), &yaml), "--detailed-exitcode"]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{profile}: planning the import changes nothing: {}",
            describe(&o)
        );
    }
}

#[test]
fn files_for_other_hosts_cannot_break_this_one_and_hosts_must_be_a_list() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.yaml");
    let b = dir.path().join("b.yaml");
    std::fs::write(&a, HOST).unwrap();
    // Meant for another host, with a type error in it.
    std::fs::write(
        &b,
        "hosts: [hv-other]\nhost:\n  sysctl: { vm.dirty_ratio: [1] }\n",
    )
    .unwrap();
    let o = kt(
        root.path(),
        &["plan", a.to_str().unwrap(), b.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // `validate` without a hostname still reports it.
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["validate", a.to_str().unwrap(), b.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("host.sysctl.vm.dirty_ratio"),
        "{}",
        describe(&o)
    );
    // Two files for this host each with `hosts:` merge; `hosts: "x"` is named as such.
    std::fs::write(
        &b,
        "hosts: [hv-*]\nhost:\n  sysctl: { vm.dirty_ratio: 30 }\n",
    )
    .unwrap();
    std::fs::write(&a, format!("hosts: [hv-1]\n{HOST}")).unwrap();
    let o = kt(
        root.path(),
        &["plan", a.to_str().unwrap(), b.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    std::fs::write(&b, "hosts: hv-1\nhost:\n  sysctl: { vm.dirty_ratio: 30 }\n").unwrap();
    let o = kt(
        root.path(),
        &["plan", a.to_str().unwrap(), b.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("b.yaml:1:1: hosts: expected a list of hostname globs"),
        "{}",
        describe(&o)
    );
}
