//! Fuzz entry points, shared by the cargo-fuzz targets in `fuzz/` and the smoke test that runs
//! them over the committed seed corpus in CI.
//!
//! Invariant: each function accepts any bytes and returns normally; the properties it asserts
//! (round trips, idempotence, preservation) are kvmtune's own invariants, so a panic here is a
//! bug in kvmtune, never in the input.

use crate::config::source::SourceFile;
use crate::cpuset::CpuSet;
use crate::desired::load_sources;
use crate::domain::plan_guest;
use crate::xmltree::Document;

/// Config loading and validation: any text either loads or yields located errors.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_sources(&[SourceFile::from_text("f.yaml", text)]) {
        Ok(_) => {}
        Err(e) => {
            for line in e.to_string().lines() {
                assert!(line.starts_with("f.yaml"), "unlocated error: {line}");
            }
        }
    }
}

/// CPU-set parsing: a parsed set prints in a form that parses back to the same set.
pub fn cpuset(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = text.parse::<CpuSet>() {
        let again: CpuSet = c.to_string().parse().expect("canonical form parses");
        assert_eq!(again, c);
    }
}

/// Tunings the XML target applies (chosen by the first input byte).
const TUNINGS: &[&str] = &[
    "guests:\n  g:\n    vcpu: { placement: static, cpuset: \"0-3,^2\" }\n    cputune: { vcpupin: { 0: \"1\" }, emulatorpin: \"0-1\", iothreadpin: { 1: \"0\" } }\n    numatune: { memory: { mode: interleave, nodeset: \"0\" } }\n    memory_backing: { hugepages: { size: 2M } }\n    cpu: { mode: host-passthrough, features: { disable: [svm] } }\n    disks: { \"*\": { cache: none, io: native, iothread: 1, iotune: { total_iops_sec: 100 } } }\n    interfaces: { \"*\": { model: virtio, queues: 2 } }\n    iothreads: 1\n    blkiotune: { weight: 500, devices: { /dev/sda: { weight: 300 } } }\n    memtune: { hard_limit: 1G }\n    remove_devices: [sound, tablet, memballoon]\n    os_variant: rhel9.0\n",
    "guests:\n  g:\n    vcpu: { count: 2, current: 1 }\n    cputune: { vcpupin: {} }\n    memory_backing: { hugepages: false }\n    cpu: { mode: custom, model: Haswell, topology: { sockets: 1, cores: 2, threads: 1 } }\n    disks: { \"*\": { cache: writeback } }\n    interfaces: { \"*\": { model: e1000e } }\n",
    "guests:\n  g:\n    numatune: { memory: { placement: auto } }\n    memory_backing: { hugepages: true }\n    cpu: { mode: host-model }\n",
];

/// The XML editor: for any XML that parses and any tuning, planning the edited XML again
/// gives no changes, and the edited XML parses.
pub fn domain_xml(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(xml) = std::str::from_utf8(rest) else {
        return;
    };
    if Document::parse(xml).is_err() {
        return;
    }
    let d = crate::desired::load_str("t.yaml", TUNINGS[pick as usize % TUNINGS.len()])
        .expect("built-in tuning");
    let g = d.guests.values().next().expect("one guest");
    let Ok(p) = plan_guest(g, xml, None) else {
        return;
    };
    Document::parse(&p.new_xml).expect("edited XML parses");
    let again = plan_guest(g, &p.new_xml, None).expect("edited XML plans");
    assert!(
        again.changes.is_empty(),
        "not idempotent: {:?}",
        again.changes
    );
    assert_eq!(again.new_xml, p.new_xml);
}

/// Saved plans: any bytes either parse into the typed blueprint or are refused; a parsed plan
/// serialises and parses back to itself, and its checks against its own configuration
/// (`prepare`) return normally.
pub fn saved_plan(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut s) = crate::saved::SavedPlan::from_json(text) else {
        return;
    };
    let again =
        crate::saved::SavedPlan::from_json(&s.to_json()).expect("a parsed plan round-trips");
    assert_eq!(again, s);
    let _ = s.prepare("hv-1");
}

/// Lock files: parsed under the configuration's guards; a parsed lock renders and parses
/// back to itself.
pub fn lock_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(l) = crate::observe::parse_lock(std::path::Path::new("kvmtune.lock.yaml"), text) else {
        return;
    };
    let again = crate::model::lock::Lock::parse(&l.render()).expect("a rendered lock parses");
    assert_eq!(again, l);
}

/// Apply records: a manifest either validates or is refused; a valid one becomes desired host
/// state (or a located refusal) and plans against an empty host without panicking.
pub fn apply_record(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = crate::state::parse_manifest("20261202T000000.000Z", text) else {
        return;
    };
    let Ok(d) = crate::rollback::host_desired(&m.host) else {
        return;
    };
    let owned = m
        .host
        .owned
        .iter()
        .map(|(k, e)| (*k, e.clone().unwrap_or_default()))
        .collect();
    let p = crate::host::plan_host_with(&d, &Default::default(), Some(&owned));
    for op in &p.ops {
        op.check().expect("planned steps pass their own checks");
    }
}

/// `perf kvm` output (untrusted text): the VM-exit table and the symbol profile parse
/// without panicking into bounded rows of printable names and finite numbers, and the
/// summary and the advice over them are total.
pub fn perf_report(data: &[u8]) {
    use crate::perf::{advice, profile, stat, summary, GuestContext};
    let text = String::from_utf8_lossy(data);
    let printable = |s: &str, max: usize| {
        assert!(s.chars().count() <= max + 1, "unbounded name: {s:?}");
        assert!(!s.chars().any(char::is_control), "control character: {s:?}");
    };
    if let Ok(r) = stat::parse(&text) {
        assert!(r.rows.len() <= stat::MAX_ROWS);
        for row in &r.rows {
            printable(&row.reason, stat::MAX_NAME);
            for v in [
                row.samples_pct,
                row.time_pct,
                row.min_us,
                row.max_us,
                row.avg_us,
            ] {
                assert!(v.is_none_or(f64::is_finite));
            }
        }
        let e = summary::summarize(&r, 10);
        assert!(e.per_sec.is_finite());
        let _ = e.shares_consistent();
        for pinned in [false, true] {
            let ctx = GuestContext {
                domain_type: "kvm".into(),
                vcpus: 2,
                pinned,
                hugepages: false,
            };
            for a in advice::advise(&e, &ctx) {
                assert!(a.share_pct.is_finite() && a.per_vcpu_sec.is_finite());
            }
        }
    }
    let p = profile::parse(&text);
    assert!(p.rows.len() <= profile::MAX_ROWS);
    for r in &p.rows {
        assert!(r.overhead_pct.is_finite());
        printable(&r.symbol, 200);
        printable(&r.command, 200);
    }
}
