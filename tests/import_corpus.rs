//! Import round trip on libvirt's own test-suite domain XMLs (`../shared/corpus/libvirt-domains`):
//! for every file, the imported configuration validates and plans zero changes against the
//! XML it was imported from.

use std::collections::BTreeMap;
use std::path::PathBuf;

use kvmtune::config::raw::RawConfig;
use kvmtune::domain::{import::import_guest, plan_guest};
use kvmtune::units::PageSize;

fn corpus() -> Vec<(String, String)> {
    let dir = std::env::var_os("KVMTUNE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/libvirt-domains")
        });
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 50, "corpus has only {} files", out.len());
    out
}

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
        let d = match kvmtune::config::load_str(&file, &yaml) {
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
        "numatune:",
        "hugepages:",
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
