//! Each `kvmtune check` lint: one case that triggers it and one that does not. Pure: desired
//! state from YAML, observed state and host facts built in memory.

use kvmtune::lint::{check, Facts, Severity};
use kvmtune::plan::Observed;
use kvmtune::topology::HostTopology;

/// Facts of a well-tuned host: nothing fires on them.
fn clean_facts() -> Facts {
    Facts {
        vhost_net: true,
        ksm_run: Some(false),
        thp_enabled: Some("madvise".into()),
        tuned_profile: Some("virtual-host".into()),
        hugetlbfs: true,
        arp_filter: Some("1".into()),
        ..Default::default()
    }
}

const XML: &str = "<domain><name>g</name><memory unit='KiB'>1048576</memory><vcpu>2</vcpu>\
    <cpu mode='host-passthrough'/><devices><interface type='network'><model type='virtio'/></interface>\
    <disk type='file' device='disk'><driver name='qemu' cache='none'/></disk></devices></domain>";

fn observed(d: &kvmtune::desired::Desired, xml: &str) -> Observed {
    Observed {
        topology: Some(HostTopology::synthetic(2, 4, 2)),
        guests: d
            .guests
            .keys()
            .map(|n| {
                (
                    n.to_string(),
                    Some(kvmtune::libvirt::GuestObserved {
                        uuid: "u".into(),
                        active: false,
                        xml: xml.replace("<name>g</name>", &format!("<name>{n}</name>")),
                        live_xml: None,
                    }),
                )
            })
            .collect(),
        ..Default::default()
    }
}

fn ids_with(yaml: &str, facts: &Facts, xml: &str) -> Vec<String> {
    let d = kvmtune::config::load_str("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    check(&d, &observed(&d, xml), facts)
        .into_iter()
        .map(|l| l.id.to_string())
        .collect()
}

fn ids(yaml: &str) -> Vec<String> {
    ids_with(yaml, &clean_facts(), XML)
}

const CLEAN: &str = "guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough }\n";

macro_rules! lint_case {
    ($name:ident, $id:literal, fires: $fires:expr, clean: $clean:expr) => {
        #[test]
        fn $name() {
            let fired: Vec<String> = $fires;
            assert!(
                fired.iter().any(|i| i == $id),
                "{} did not fire: {fired:?}",
                $id
            );
            let quiet: Vec<String> = $clean;
            assert!(
                !quiet.iter().any(|i| i == $id),
                "{} fired on the clean case: {quiet:?}",
                $id
            );
        }
    };
}

lint_case!(vcpu_on_reserved, "vcpu-on-reserved",
    fires: ids("host:\n  cpu_pool: { reserved: \"0\" }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"1\" } }\n"),
    clean: ids("host:\n  cpu_pool: { reserved: \"0\" }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"2\", 1: \"1\" } }\n"));

lint_case!(emulator_overlaps_vcpus, "emulator-overlaps-vcpus",
    fires: ids("guests:\n  g:\n    cputune: { vcpupin: { 0: \"2\", 1: \"3\" }, emulatorpin: \"2\" }\n"),
    clean: ids("guests:\n  g:\n    cputune: { vcpupin: { 0: \"2\", 1: \"3\" }, emulatorpin: \"0\" }\n"));

#[test]
fn emulator_overlapping_automatic_pins_is_an_error() {
    let yaml = "guests:\n  a:\n    cputune: { vcpupin: auto }\n  b:\n    cputune: { emulatorpin: \"0-15\" }\n";
    let d = kvmtune::config::load_str("t.yaml", yaml).unwrap();
    let l = check(&d, &observed(&d, XML), &clean_facts());
    let e = l
        .iter()
        .find(|l| l.id == "emulator-overlaps-vcpus")
        .unwrap();
    assert_eq!(
        (e.severity, e.target.as_str()),
        (Severity::Error, "guest/b")
    );
    // plan refuses it too
    let p = kvmtune::pipeline::plan(&d, &observed(&d, XML));
    assert!(
        p.errors
            .iter()
            .any(|e| e.message.contains("[emulator-overlaps-vcpus]")),
        "{:?}",
        p.errors
    );
}

lint_case!(pinning_does_not_fit, "pinning-does-not-fit",
    fires: ids("guests:\n  g:\n    vcpu: { count: 20 }\n    cputune: { vcpupin: auto }\n"),
    clean: ids("guests:\n  g:\n    vcpu: { count: 4 }\n    cputune: { vcpupin: auto }\n"));

lint_case!(hugepage_demand, "hugepage-demand",
    fires: ids("host:\n  hugepages: [ { size: 2M, count: 100 } ]\nguests:\n  g:\n    memory_backing: { hugepages: { size: 2M } }\n"),
    clean: ids("host:\n  hugepages: [ { size: 2M, count: 512 } ]\nguests:\n  g:\n    memory_backing: { hugepages: { size: 2M } }\n"));

lint_case!(vcpu_overcommit, "vcpu-overcommit",
    fires: ids("guests:\n  a: { vcpu: { count: 10 } }\n  b: { vcpu: { count: 10 } }\n"),
    clean: ids("guests:\n  a: { vcpu: { count: 8 } }\n  b: { vcpu: { count: 8 } }\n"));

lint_case!(shared_pin, "shared-pin",
    fires: ids("guests:\n  a: { cputune: { vcpupin: { 0: \"2\" } } }\n  b: { cputune: { vcpupin: { 0: \"2\" } } }\n"),
    clean: ids("guests:\n  a: { cputune: { vcpupin: { 0: \"2\" } } }\n  b: { cputune: { vcpupin: { 0: \"3\" } } }\n"));

lint_case!(numa_spread, "numa-spread",
    fires: ids("guests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"4\" } }\n"),
    clean: ids("guests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"8\" } }\n    numatune: { memory: { nodeset: \"0\" } }\n"));

#[test]
fn numa_spread_of_memory_away_from_the_vcpus() {
    let i = ids("guests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"8\" } }\n    numatune: { memory: { nodeset: \"1\" } }\n");
    assert!(i.contains(&"numa-spread".to_string()), "{i:?}");
}

lint_case!(hugetlbfs_missing, "hugetlbfs-missing",
    fires: ids_with("guests:\n  g:\n    memory_backing: { hugepages: true }\n", &Facts { hugetlbfs: false, ..clean_facts() }, XML),
    clean: ids("guests:\n  g:\n    memory_backing: { hugepages: true }\n"));

lint_case!(topology_sockets, "topology-sockets",
    fires: ids("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough, topology: { sockets: 2, cores: 1, threads: 1 } }\n"),
    clean: ids("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough, topology: { sockets: 1, cores: 2, threads: 1 } }\n"));

lint_case!(cpu_model_not_host, "cpu-model-not-host",
    fires: ids("guests:\n  g:\n    cpu: { mode: custom, model: Skylake-Server }\n"),
    clean: ids(CLEAN));

lint_case!(nic_not_virtio, "nic-not-virtio",
    fires: ids("guests:\n  g:\n    interfaces: { \"*\": { model: e1000e } }\n"),
    clean: ids("guests:\n  g:\n    interfaces: { \"*\": { model: virtio } }\n"));

lint_case!(queues_above_vcpus, "queues-above-vcpus",
    fires: ids("guests:\n  g:\n    vcpu: { count: 2 }\n    interfaces: { \"*\": { model: virtio, queues: 4 } }\n"),
    clean: ids("guests:\n  g:\n    vcpu: { count: 2 }\n    interfaces: { \"*\": { model: virtio, queues: 2 } }\n"));

lint_case!(vhost_net_missing, "vhost-net-missing",
    fires: ids_with(CLEAN, &Facts { vhost_net: false, ..clean_facts() }, XML),
    clean: ids_with(&format!("host:\n  modules: [vhost_net]\n{CLEAN}"), &Facts { vhost_net: false, ..clean_facts() }, XML));

lint_case!(writethrough_many, "writethrough-many",
    fires: ids("guests:\n  a: { disks: { \"*\": { cache: writethrough } } }\n  b: { disks: { \"*\": { cache: writethrough } } }\n"),
    clean: ids("guests:\n  a: { disks: { \"*\": { cache: writethrough } } }\n  b: { disks: { \"*\": { cache: none } } }\n"));

const NET_XML: &str = "<domain><name>g</name><memory unit='KiB'>1048576</memory><vcpu>2</vcpu>\
    <cpu mode='host-passthrough'/><devices><interface type='network'><model type='virtio'/></interface>\
    <disk type='network' device='disk'><driver name='qemu' cache='none'/><source protocol='rbd' name='pool/g'/></disk></devices></domain>";

lint_case!(cache_blocks_migration, "cache-blocks-migration",
    fires: ids_with("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough }\n    disks: { \"*\": { cache: writeback } }\n", &clean_facts(), NET_XML),
    clean: ids_with("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough }\n    disks: { \"*\": { cache: writeback } }\n", &clean_facts(), XML));

lint_case!(ksm_with_pinned_hugepages, "ksm-with-pinned-hugepages",
    fires: ids("host:\n  ksm: { run: true }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"2\" } }\n    memory_backing: { hugepages: true }\n"),
    clean: ids("host:\n  ksm: { run: false }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"2\" } }\n    memory_backing: { hugepages: true }\n"));

lint_case!(thp_always_with_hugepages, "thp-always-with-hugepages",
    fires: ids_with("guests:\n  g:\n    memory_backing: { hugepages: true }\n", &Facts { thp_enabled: Some("always".into()), ..clean_facts() }, XML),
    clean: ids("guests:\n  g:\n    memory_backing: { hugepages: true }\n"));

lint_case!(arp_filter_off, "arp-filter-off",
    fires: ids_with(CLEAN, &Facts { arp_filter: Some("0".into()), shared_subnets: vec![("10.0.0.0/255.255.255.0".into(), vec!["eth0".into(), "eth1".into()])], ..clean_facts() }, XML),
    clean: ids_with(CLEAN, &Facts { arp_filter: Some("0".into()), ..clean_facts() }, XML));

lint_case!(tuned_not_virtual_host, "tuned-not-virtual-host",
    fires: ids_with(CLEAN, &Facts { tuned_profile: Some("balanced".into()), ..clean_facts() }, XML),
    clean: ids(CLEAN));

#[test]
fn a_clean_configuration_has_no_lints_and_exit_0() {
    let d = kvmtune::config::load_str("t.yaml", CLEAN).unwrap();
    let l = check(&d, &observed(&d, XML), &clean_facts());
    assert!(l.is_empty(), "{l:?}");
    assert_eq!(kvmtune::lint::exit_code(&l), 0);
}

#[test]
fn facts_are_read_below_the_root() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/demo/root");
    let f = kvmtune::lint::read_facts(&root).unwrap();
    assert!(f.pools.keys().any(|(_, n)| *n == Some(1)), "{f:?}");
    assert!(f.thp_enabled.is_some(), "{f:?}");
}
