//! Import round trip on libvirt's own test-suite domain XMLs (`tests/data/libvirt-domains`):
//! for every file, the imported configuration validates and plans zero changes against the
//! XML it was imported from.

mod support;
use support::corpus;

use std::collections::BTreeMap;

use kvmtune::config::raw::RawConfig;
use kvmtune::domain::{import::import_guest, plan_guest};
use kvmtune::units::PageSize;

#[test]
fn import_then_plan_is_zero_changes_on_every_corpus_domain() {
    let mut imported_keys = 0usize;
    let mut failures = Vec::new();
    for (file, xml) in corpus() {
        let raw = import_guest(&xml).unwrap_or_else(|e| panic!("{file}: {e}"));
        let cfg = RawConfig {
            guests: BTreeMap::from([("g".to_string(), raw)]),
            ..Default::default()
        };
        let yaml = kvmtune::import::to_yaml(&cfg, None);
        imported_keys += yaml.lines().count();
        let d = match kvmtune::desired::load_str(&file, &yaml) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{file}: does not validate: {e}\n{yaml}"));
                continue;
            }
        };
        let gd = d.guests.values().next().unwrap();
        for page in [
            PageSize::from_kib(2048).unwrap(),
            PageSize::from_kib(1048576).unwrap(),
        ] {
            match plan_guest(gd, &xml, Some(page)) {
                Ok(p) if p.changes.is_empty() => {}
                Ok(p) => failures.push(format!("{file}: changes {:?}\n{yaml}", p.changes)),
                Err(i) => failures.push(format!("{file}: issues {i:?}\n{yaml}")),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(
        imported_keys > 300,
        "suspiciously little imported: {imported_keys} lines"
    );
}

#[test]
fn import_covers_the_owned_settings_present_in_the_corpus() {
    let all: String = corpus()
        .iter()
        .map(|(_, x)| {
            let raw = import_guest(x).unwrap();
            serde_yaml::to_string(&raw).unwrap()
        })
        .collect();
    for key in [
        "vcpupin:",
        "emulatorpin:",
        "iothreadpin:",
        "shares:",
        "vcpusched:",
        "quota:",
        "numatune:",
        "hugepages:",
        "nosharepages: true",
        "mode: host-passthrough",
        "topology:",
        "require:",
        "cache:",
        "iotune:",
        "blkiotune:",
        "memtune:",
        "iothreads:",
        "model: virtio",
        "queues:",
    ] {
        assert!(all.contains(key), "no corpus domain imported `{key}`");
    }
}
