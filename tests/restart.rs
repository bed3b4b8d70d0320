//! Running guests end to end: live pins checked against the QEMU threads' real affinity, and a
//! restart-type change that goes from `restart` to pending to in effect with `--restart-guests`
//! on the ACPI-aware test guest.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn live_pins_take_effect_on_the_qemu_threads() {
    let g = Guest::define("live-affinity", Spec::default());
    g.start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        format!(
            "guests:\n  {}:\n    cputune: {{ vcpupin: {{ 0: \"1\", 1: \"0\" }}, emulatorpin: \"0\" }}\n    numatune: {{ memory: {{ mode: strict, nodeset: \"0\" }} }}\n",
            g.name()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();
    let o = kvmtune(dir.path(), &["plan", cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for c in v["changes"].as_array().unwrap() {
        let want = if c["path"] == "numatune.memory.mode" {
            "restart"
        } else {
            "live"
        };
        assert_eq!(c["effect"], want, "{c}");
    }
    let o = kvmtune(
        dir.path(),
        &["apply", cfg, "--auto-approve", "--format", "json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(r["live_changes"].as_u64().unwrap() >= 3, "{r}");
    // The real thing: each vCPU thread's and the emulator threads' CPU affinity.
    let o = kvmtune(Path::new("/"), &["verify", cfg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "verify: {}", describe(&o));
    let out = stdout(&o);
    assert!(
        out.contains("cputune.vcpupin.0") && out.contains("cputune.emulatorpin"),
        "{out}"
    );
    assert!(g.is_running());
    let o = kvmtune(dir.path(), &["plan", cfg, "--detailed-exitcode"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}

use std::path::Path;

#[test]
fn restart_guests_brings_pending_changes_into_effect() {
    let g = Guest::define("restart-acpi", Spec::acpi_linux());
    g.start();
    assert!(
        g.wait_for_serial("kvmtune-test-guest: ready", Duration::from_secs(120)),
        "the test guest did not boot:\n{}",
        std::fs::read_to_string(g.serial_log()).unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.yaml");
    std::fs::write(
        &cfg,
        format!(
            "guests:\n  {}:\n    disks: {{ \"*\": {{ cache: none }} }}\n",
            g.name()
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    // 1. A restart-type change on a running guest.
    let o = kvmtune(dir.path(), &["plan", cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["changes"][0]["path"], "disks.vda.cache");
    assert_eq!(v["changes"][0]["effect"], "restart");
    // 2. Applied without a restart: written, pending, not a change.
    let o = kvmtune(dir.path(), &["apply", cfg, "--auto-approve"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let o = kvmtune(
        dir.path(),
        &["plan", cfg, "--format", "json", "--detailed-exitcode"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["changes"].as_array().unwrap().len(), 0);
    assert_eq!(v["pending_restart"][0]["path"], "disks.vda.cache");
    assert!(!g.live_xml().contains("cache='none'"));
    // 3. --restart-guests: graceful shutdown, start; nothing pending, the live XML changed.
    let id_before = virsh_ok(&["domid", g.name()]);
    let o = kvmtune(
        dir.path(),
        &[
            "apply",
            cfg,
            "--auto-approve",
            "--restart-guests",
            "--shutdown-timeout",
            "60",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(stdout(&o).contains("1 restart"), "{}", stdout(&o));
    assert!(g.is_running(), "the guest must be running again");
    assert!(g.live_xml().contains("cache='none'"), "{}", g.live_xml());
    let o = kvmtune(dir.path(), &["plan", cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(v.get("pending_restart").is_none(), "{v}");
    // A new QEMU process (libvirt gives every start a new domain id).
    assert_ne!(virsh_ok(&["domid", g.name()]).trim(), id_before.trim());
}
