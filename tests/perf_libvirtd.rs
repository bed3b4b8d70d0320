//! `kvmtune perf` against real guests on the real libvirtd: `perf kvm stat` (and the
//! `--host --guest` profile) on a started KVM guest, and the refusal of a TCG guest. Needs
//! root, perf (linux-perf), tracefs with the kvm tracepoints and /dev/kvm, as
//! scripts/env-up.sh sets up; fails (never skips) without them.
//!
//! On a host with hardware virtualization the recording must hold VM exits whose shares add up
//! to 100 %. On a host without it (KVM's PVM backend, as on the development machine: see
//! tests/data/perf/README.md) a guest kernel not built for PVM makes no VM exits at all, and
//! the test asserts instead that kvmtune says exactly that.

mod common;

use std::path::Path;

use common::*;

fn cpu_has_hw_virt() -> bool {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("flags"))
        .flat_map(|l| l.split_whitespace())
        .any(|f| f == "vmx" || f == "svm")
}

fn perf_json(g: &Guest, extra: &[&str]) -> (std::process::Output, serde_json::Value) {
    let mut args = vec!["perf", g.name(), "--duration", "2", "--format", "json"];
    args.extend(extra);
    let o = kvmtune(Path::new("/"), &args);
    let v = serde_json::from_str(&stdout(&o))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&o)));
    (o, v)
}

#[test]
fn perf_kvm_stat_on_a_running_kvm_guest() {
    assert!(Path::new("/dev/kvm").exists(), "no /dev/kvm on this host");
    let g = Guest::define(
        "perf",
        Spec {
            kind: Some("kvm".into()),
            ..Spec::acpi_linux()
        },
    );
    g.start();
    let pid: u32 = std::fs::read_to_string(format!("/run/libvirt/qemu/{}.pid", g.name()))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The guest's own kallsyms cannot be fetched from this guest (it has no shell to copy it
    // out); the host's stands in: it is a well-formed kallsyms, which is all perf checks.
    let dir = tempfile::tempdir().unwrap();
    let kallsyms = dir.path().join("guest-kallsyms");
    let modules = dir.path().join("guest-modules");
    std::fs::write(&kallsyms, std::fs::read("/proc/kallsyms").unwrap()).unwrap();
    std::fs::write(&modules, "").unwrap();
    let (o, v) = perf_json(
        &g,
        &[
            "--guest-kallsyms",
            kallsyms.to_str().unwrap(),
            "--guest-modules",
            modules.to_str().unwrap(),
        ],
    );
    assert_eq!(v["pid"], pid, "{}", describe(&o));
    assert_eq!(v["duration_secs"], 2);
    assert_eq!(v["context"]["domain_type"], "kvm");
    assert_eq!(v["commands"].as_array().unwrap().len(), 4, "{v:#}");
    let exits = &v["exits"];
    let total = exits["total"].as_u64().unwrap();
    let rows = exits["by_reason"].as_array().unwrap();
    if cpu_has_hw_virt() {
        assert!(matches!(o.status.code(), Some(0 | 2)), "{}", describe(&o));
        assert!(total > 0, "no VM exits from a booting guest: {v:#}");
        let samples: u64 = rows.iter().map(|r| r["samples"].as_u64().unwrap()).sum();
        assert_eq!(samples, total, "{v:#}");
        let share: f64 = rows.iter().map(|r| r["share_pct"].as_f64().unwrap()).sum();
        assert!(
            (share - 100.0).abs() <= 0.01 * rows.len() as f64,
            "shares add up to {share}: {v:#}"
        );
    } else {
        // No hardware virtualization: nothing to analyse (exit 2), and the reason is named.
        assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
        assert_eq!((total, rows.len()), (0, 0), "{v:#}");
        let why = v["diagnosis"].to_string();
        let expected = if Path::new("/sys/module/kvm_pvm").exists() {
            "PVM backend"
        } else {
            "neither vmx nor svm"
        };
        assert!(why.contains(expected), "{why}");
    }
    // The profile: perf's own rows, each a share of the samples.
    let top = v["profile"]["top"].as_array().unwrap();
    assert!(!top.is_empty(), "{v:#}");
    for r in top {
        let pct = r["overhead_pct"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&pct), "{r}");
    }
    if v["profile"]["guest_rows"] == 0 {
        let why = v["profile"]["diagnosis"].to_string();
        assert!(why.contains("no samples to the guest"), "{why}");
    }
    assert!(g.is_running(), "perf must leave the guest running");
}

#[test]
fn perf_refuses_a_tcg_guest_and_names_why() {
    let g = Guest::define("perf-tcg", Spec::acpi_linux());
    g.start();
    let o = kvmtune(Path::new("/"), &["perf", g.name(), "--duration", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(&format!("guest {} runs under `qemu`, not KVM", g.name())),
        "{}",
        describe(&o)
    );
    assert!(
        stdout(&o).is_empty(),
        "perf must not have run: {}",
        describe(&o)
    );
}
