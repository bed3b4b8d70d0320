//! The GitOps surface on a temp `--root` and libvirt's in-process `test:///` driver: saved
//! plans (staleness, other host, format version, exactly the saved actions), backups and
//! rollback of host values, the apply lock, import round trip of the host, completions and
//! man page, fleet files (`hosts:` globs, `--host-config`, profiles), JSON outputs.

mod support;
use support::*;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

fn swappiness(root: &Path) -> String {
    std::fs::read_to_string(root.join("proc/sys/vm/swappiness"))
        .unwrap()
        .trim()
        .to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

const HOST_ONLY: &str = "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n";

#[test]
fn committed_saved_plan_schema_is_current() {
    let o = kt(Path::new("/"), &["schema", "--saved-plan"]);
    assert_eq!(o.status.code(), Some(0));
    let committed =
        std::fs::read_to_string(repo().join("schemas/kvmtune-plan.schema.json")).unwrap();
    assert!(
        committed == out(&o),
        "schemas/kvmtune-plan.schema.json is stale: run `cargo run -- schema --saved-plan > schemas/kvmtune-plan.schema.json`"
    );
    let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
    assert!(v["properties"]["actions"].is_object());
    assert!(v["properties"]["fingerprints"].is_object());
}

#[test]
fn saved_plan_applies_exactly_its_actions_from_the_config_it_was_made_from() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "t.yaml", HOST_ONLY);
    let plan = dir.path().join("plan.json").display().to_string();
    let o = kt(root.path(), &["plan", &cfg, "--out", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    // The saved plan is complete: actions, fingerprints, origin.
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(v["kind"], "kvmtune-saved-plan");
    assert_eq!(v["hostname"], "hv-1");
    assert_eq!(v["actions"][0]["kind"], "host");
    assert!(v["fingerprints"]["host"].as_str().unwrap().len() == 64);
    // Editing the config afterwards does not change what the saved plan does.
    write(
        dir.path(),
        "t.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 99 }\n",
    );
    let o = kt(root.path(), &["apply", &plan]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(swappiness(root.path()), "7");
    // Applied once, the state moved: the same saved plan is now stale.
    let o = kt(root.path(), &["apply", &plan]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("stale plan") && err(&o).contains("host"),
        "{}",
        describe(&o)
    );
}

#[test]
fn stale_other_host_and_unknown_format_are_refused_with_nothing_changed() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "t.yaml", HOST_ONLY);
    let plan = dir.path().join("plan.json").display().to_string();
    assert_eq!(
        kt(root.path(), &["plan", &cfg, "--out", &plan])
            .status
            .code(),
        Some(0)
    );
    let before = swappiness(root.path());

    // Another host.
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["--connect", &demo_uri(), "--hostname", "hv-2", "--root"])
        .arg(root.path())
        .args(["apply", &plan])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("made on host `hv-1`, this is `hv-2`"),
        "{}",
        describe(&o)
    );

    // A newer format.
    let text = std::fs::read_to_string(&plan).unwrap();
    let future = dir.path().join("future.json");
    std::fs::write(
        &future,
        text.replace(
            "\"format_version\": 2,\n  \"kvmtune_version\"",
            "\"format_version\": 99,\n  \"kvmtune_version\"",
        ),
    )
    .unwrap();
    let o = kt(root.path(), &["apply", future.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("format 99 is not supported"),
        "{}",
        describe(&o)
    );

    // The state moved since planning.
    std::fs::write(root.path().join("proc/sys/vm/swappiness"), "33\n").unwrap();
    let o = kt(root.path(), &["apply", &plan]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("stale plan: the state of host changed"),
        "{}",
        describe(&o)
    );
    assert_eq!(swappiness(root.path()), "33");
    assert_ne!(before, "7");
}

#[test]
fn saved_plan_with_guests_on_the_test_driver_applies() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json").display().to_string();
    let demo = repo().join("examples/demo/tuning.yaml");
    let o = kt(
        root.path(),
        &[
            "plan",
            demo.to_str().unwrap(),
            "--out",
            &plan,
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert!(v["fingerprints"]["guest/db1"].is_string());
    assert!(v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["kind"] == "guest"));
    let o = kt(root.path(), &["apply", &plan, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let r: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(r["defines"].as_u64().unwrap() >= 1, "{r}");
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn apply_backs_up_host_values_and_rollback_restores_them() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        dir.path(),
        "t.yaml",
        "host:\n  sysctl: { vm.swappiness: 7 }\n  transparent_hugepage: { enabled: never }\n",
    );
    let thp = root
        .path()
        .join("sys/kernel/mm/transparent_hugepage/enabled");
    let thp_before = std::fs::read_to_string(&thp).unwrap();
    let sw_before = swappiness(root.path());
    let o = kt(root.path(), &["apply", &cfg, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(swappiness(root.path()), "7");
    let sysctl_conf = root.path().join("etc/sysctl.d/90-kvmtune.conf");
    assert!(sysctl_conf.exists());

    // One record: 0700 directory, 0600 files, named by timestamp.
    let applies = root.path().join("var/lib/kvmtune/applies");
    let ids: Vec<_> = std::fs::read_dir(&applies)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(ids.len(), 1);
    let name = ids[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.len() == 20 && name.ends_with('Z') && name.as_bytes()[8] == b'T',
        "{name}"
    );
    assert_eq!(mode(&ids[0]), 0o700);
    assert_eq!(mode(&ids[0].join("manifest.json")), 0o600);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ids[0].join("manifest.json")).unwrap())
            .unwrap();
    // Typed keys and canonical values, never paths.
    assert_eq!(m["format"], 2);
    let values = m["host"]["values"].as_array().unwrap();
    assert!(
        values.iter().any(|kv| kv["key"]
            == serde_json::json!({"kind": "sysctl", "key": "vm.swappiness"})
            && kv["value"] == sw_before.as_str()),
        "{m}"
    );
    assert!(m["host"]["owned"]["sysctl"].is_null(), "{m}");
    assert!(!m.to_string().contains("proc/sys"), "{m}");

    // rollback --list, then rollback (shown first).
    let o = kt(root.path(), &["rollback", "--list", "--format", "json"]);
    let list: Vec<String> = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(list, std::slice::from_ref(&name));
    let o = kt(root.path(), &["rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(
        out(&o).contains(&format!("before apply {name}")),
        "{}",
        describe(&o)
    );
    assert!(
        out(&o).contains("sysctl.vm.swappiness: 7 → "),
        "{}",
        describe(&o)
    );
    assert_eq!(swappiness(root.path()), sw_before);
    let sel = |s: &str| kvmtune::host::Readback::Selected.canonical(s);
    assert_eq!(
        sel(&std::fs::read_to_string(&thp).unwrap()),
        sel(&thp_before)
    );
    assert!(
        out(&o).contains("did not exist before") || err(&o).contains("did not exist before"),
        "the sysctl.d file kvmtune created is named as left in place:\n{}",
        describe(&o)
    );
    // The rollback is itself recorded, so it can be undone.
    assert_eq!(std::fs::read_dir(&applies).unwrap().count(), 2);
    let o = kt(
        root.path(),
        &["rollback", "--auto-approve", "--to", &name[..8]],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn retention_keeps_the_last_n_records() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    for v in [3, 4, 5, 6] {
        let cfg = write(
            dir.path(),
            "t.yaml",
            &format!("host:\n  persist: false\n  sysctl: {{ vm.swappiness: {v} }}\n"),
        );
        let o = kt(
            root.path(),
            &["apply", &cfg, "--auto-approve", "--keep-backups", "2"],
        );
        assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    }
    let o = kt(root.path(), &["rollback", "--list"]);
    assert_eq!(out(&o).lines().count(), 2, "{}", describe(&o));
    // The newest record holds the value before the last apply.
    let o = kt(root.path(), &["rollback", "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(swappiness(root.path()), "5");
}

#[test]
fn a_held_lock_makes_apply_wait_then_fail_naming_the_holder_and_plan_takes_none() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "t.yaml", HOST_ONLY);
    let lock = kvmtune::state::lock(root.path(), std::time::Duration::from_secs(1), |_| {})
        .expect("taking the lock");
    let o = kt(root.path(), &["plan", &cfg]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "plan must not wait for the lock: {}",
        describe(&o)
    );
    let o = kt(
        root.path(),
        &["apply", &cfg, "--auto-approve", "--lock-timeout", "1"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let e = err(&o);
    assert!(
        e.contains(&format!("pid {}", std::process::id())) && e.contains("started"),
        "{e}"
    );
    assert_ne!(swappiness(root.path()), "7");
    drop(lock);
    let o = kt(
        root.path(),
        &["apply", &cfg, "--auto-approve", "--lock-timeout", "1"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

#[test]
fn host_import_round_trips_to_zero_changes() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let o = kt(root.path(), &["import", "--host"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let yaml = out(&o);
    for k in [
        "vm.swappiness",
        "transparent_hugepage",
        "hugepages",
        "ksm",
        "persist: false",
    ] {
        assert!(yaml.contains(k), "{k} not imported:\n{yaml}");
    }
    let f = write(dir.path(), "imported.yaml", &yaml);
    let o = kt(root.path(), &["plan", &f, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{yaml}", describe(&o));
    let o = kt(root.path(), &["import", "--host", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert!(v["host"]["sysctl"].is_object());
}

#[test]
fn guest_import_on_the_test_driver_round_trips() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let o = kt(root.path(), &["import"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let yaml = out(&o);
    assert!(yaml.contains("guests:") && yaml.contains("db1:"), "{yaml}");
    let f = write(dir.path(), "imported.yaml", &yaml);
    let o = kt(root.path(), &["plan", &f, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}\n{yaml}", describe(&o));
}

#[test]
fn completions_and_man_page() {
    for (shell, marker) in [
        ("bash", "_kvmtune()"),
        ("zsh", "#compdef kvmtune"),
        ("fish", "complete -c kvmtune"),
    ] {
        let o = kt(Path::new("/"), &["completions", shell]);
        assert_eq!(o.status.code(), Some(0));
        assert!(out(&o).contains(marker), "{shell}: {}", out(&o));
        assert!(out(&o).contains("rollback"), "{shell}");
    }
    let o = kt(Path::new("/"), &["man"]);
    assert!(
        out(&o).starts_with(".ie") || out(&o).contains(".TH kvmtune"),
        "{}",
        out(&o)
    );
}

#[test]
fn hosts_globs_select_files_by_hostname() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "a-all.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    );
    write(
        dir.path(),
        "b-hv.yaml",
        "hosts: [\"hv-*\", db-host-1]\nhost:\n  sysctl: { vm.dirty_ratio: 11 }\n",
    );
    let d = dir.path().display().to_string();
    let o = kt(root.path(), &["plan", &d, "--format", "json"]);
    assert!(
        out(&o).contains("sysctl.vm.dirty_ratio"),
        "{}",
        describe(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["--hostname", "web-3", "--root"])
        .arg(root.path())
        .args(["plan", &d, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(
        !out(&o).contains("dirty_ratio") && out(&o).contains("swappiness"),
        "{}",
        describe(&o)
    );
}

#[test]
fn host_config_dir_uses_shared_files_and_this_hosts_file() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "shared.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 7 }\n",
    );
    write(
        dir.path(),
        "hosts/hv-1.yaml",
        "host:\n  sysctl: { vm.dirty_ratio: 11 }\n",
    );
    write(
        dir.path(),
        "hosts/hv-2.yaml",
        "host:\n  sysctl: { vm.dirty_ratio: 22 }\n",
    );
    let d = dir.path().display().to_string();
    let o = kt(
        root.path(),
        &["plan", "--host-config", &d, "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let afters: Vec<String> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c["path"].as_str().unwrap(),
                c["after"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        afters,
        ["sysctl.vm.dirty_ratio=11", "sysctl.vm.swappiness=7"]
    );
}

#[test]
fn profiles_merge_under_guest_keys_and_unknown_profiles_are_located() {
    let d = kvmtune::desired::load_str(
        "p.yaml",
        "profiles:\n  pinned-db:\n    vcpu: { count: 4, placement: static }\n    disks: { \"*\": { cache: none, io: native } }\n\
         guests:\n  db1:\n    profile: pinned-db\n    vcpu: { count: 2 }\n",
    )
    .unwrap();
    let g = d.guests.values().next().unwrap();
    assert_eq!(g.vcpu_count, Some(2), "the guest's key wins");
    assert!(g.vcpu_placement.is_some(), "the profile's other keys stay");
    assert_eq!(g.disks.len(), 1);
    let e = kvmtune::desired::load_str(
        "p.yaml",
        "profiles:\n  a: { iothreads: 1 }\nguests:\n  db1:\n    profile: nope\n",
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "p.yaml:5:5: guests.db1.profile: no profile named `nope` (profiles: a)"
    );
    // An invalid value that came from a profile is located at the profile.
    let e = kvmtune::desired::load_str(
        "p.yaml",
        "profiles:\n  a:\n    vcpu: { count: 0 }\nguests:\n  db1: { profile: a }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("p.yaml:3:"), "{e}");
}

#[test]
fn validate_prints_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "t.yaml", HOST_ONLY);
    let o = kt(Path::new("/"), &["validate", &cfg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["valid"], true);
}

/// Drops the first line (`# Imported by kvmtune ... at <time>`).
fn without_header(s: &str) -> String {
    s.split_once('\n')
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn snapshots_of_import_rollback_and_refusals() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let o = kt(root.path(), &["import"]);
    assert!(out(&o).starts_with("# Imported by kvmtune "), "{}", out(&o));
    insta::assert_snapshot!("import_demo", without_header(&out(&o)));

    let cfg = write(
        dir.path(),
        "t.yaml",
        "host:\n  sysctl: { vm.swappiness: 7 }\n  ksm: { run: true }\n",
    );
    let o = kt(root.path(), &["apply", &cfg, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kt(root.path(), &["rollback", "--auto-approve"]);
    let id = kvmtune::state::records(root.path()).unwrap()[0].clone();
    let text = out(&o).replace(&id, "<ID>");
    insta::assert_snapshot!("rollback_host", text);

    let plan = dir.path().join("plan.json").display().to_string();
    assert_eq!(
        kt(root.path(), &["plan", &cfg, "--out", &plan])
            .status
            .code(),
        Some(0)
    );
    std::fs::write(root.path().join("proc/sys/vm/swappiness"), "1\n").unwrap();
    let o = kt(root.path(), &["apply", &plan]);
    insta::assert_snapshot!("stale_plan", err(&o).replace(&plan, "<PLAN>"));
}

/// The lock is released only once the second apply says it waits for it (read from its
/// stderr), so the order of events is fixed, whatever the machine's speed.
#[test]
fn a_second_apply_waits_for_the_lock_and_then_proceeds() {
    use std::io::{BufRead, Read};
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "t.yaml", HOST_ONLY);
    let lock = kvmtune::state::lock(root.path(), std::time::Duration::from_secs(1), |_| {})
        .expect("taking the lock");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .args(["--connect", &demo_uri(), "--hostname", "hv-1", "--root"])
        .arg(root.path())
        .args(["apply", &cfg, "--auto-approve", "--lock-timeout", "120"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    // Blocks until kvmtune says it waits (or exits: then EOF, and the test fails).
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        if stderr.read_line(&mut line).unwrap() == 0 {
            panic!("kvmtune never said it waits for the lock: {seen:?}");
        }
        seen.push_str(&line);
        if line.contains("waiting for the apply lock (pid ") {
            assert!(
                line.contains(&format!("(pid {}, started ", std::process::id())),
                "{line:?}"
            );
            break;
        }
    }
    assert_ne!(
        swappiness(root.path()),
        "7",
        "applied while the lock was held"
    );
    drop(lock);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{seen}{rest}", describe(&o));
    assert_eq!(swappiness(root.path()), "7");
}

#[test]
fn importing_a_missing_guest_is_an_error() {
    let o = kt(Path::new("/"), &["import", "--guest", "nope"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    assert!(
        err(&o).contains("no guest named `nope`"),
        "{}",
        describe(&o)
    );
}
