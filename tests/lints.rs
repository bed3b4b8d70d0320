//! Every `kvmtune check` lint, driven by the registry: each declared lint has a case that
//! fires it and one that does not (a lint declared without fixtures fails here), every lint
//! reported matches its declaration, and the README's lint table and `docs/lints.md` are
//! what the registry generates. Pure: desired state from YAML, observed state and host facts
//! built in memory.

use std::collections::BTreeSet;

use kvmtune::lint::{check, decls, Facts, Lint, Severity};
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

/// One run of `check`: a configuration, host facts and the XML every guest has.
struct Case {
    yaml: String,
    facts: Facts,
    xml: &'static str,
    /// Undeclared guests: each vCPU's CPUs (`None`: unpinned).
    others: Vec<(&'static str, Vec<Option<&'static str>>)>,
    /// Host files observation read (path below the root → content).
    host: Vec<(String, String)>,
}

impl Case {
    fn lints(&self) -> Vec<Lint> {
        let d = kvmtune::desired::load_str("t.yaml", &self.yaml)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.yaml));
        let mut obs = observed(&d, self.xml);
        for (n, v) in &self.others {
            let cpus = v.iter().map(|c| c.map(|c| c.parse().unwrap())).collect();
            obs.other_vcpus.insert(n.to_string(), cpus);
        }
        for (f, c) in &self.host {
            obs.host.files.insert(f.clone(), Some(c.clone()));
        }
        check(&d, &obs, &self.facts)
    }
}

fn case_with(yaml: &str, facts: &Facts, xml: &'static str) -> Case {
    Case {
        yaml: yaml.to_string(),
        facts: facts.clone(),
        xml,
        others: Vec::new(),
        host: Vec::new(),
    }
}

/// `c` with undeclared guests beside the declared ones.
fn with_others(c: Case, others: &[(&'static str, &[Option<&'static str>])]) -> Case {
    Case {
        others: others.iter().map(|(n, v)| (*n, v.to_vec())).collect(),
        ..c
    }
}

/// A case on a host with the real virtual-host and throughput-performance profiles.
fn case_tuned(yaml: &str) -> Case {
    let mut c = case(yaml);
    for p in ["virtual-host", "throughput-performance"] {
        let f = format!(
            "{}/tests/data/tuned/{p}/tuned.conf",
            env!("CARGO_MANIFEST_DIR")
        );
        c.host.push((
            format!("usr/lib/tuned/{p}/tuned.conf"),
            std::fs::read_to_string(f).unwrap(),
        ));
    }
    c
}

fn case(yaml: &str) -> Case {
    case_with(yaml, &clean_facts(), XML)
}

fn ids(yaml: &str) -> Vec<String> {
    case(yaml)
        .lints()
        .into_iter()
        .map(|l| l.id.to_string())
        .collect()
}

/// A lint's fixture: `fires` reports it, `quiet` does not.
struct Fixture {
    id: &'static str,
    fires: Case,
    quiet: Case,
}

fn fixture(id: &'static str, fires: Case, quiet: Case) -> Fixture {
    Fixture { id, fires, quiet }
}

const CLEAN: &str = "guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough }\n";

const NET_XML: &str = "<domain><name>g</name><memory unit='KiB'>1048576</memory><vcpu>2</vcpu>\
    <cpu mode='host-passthrough'/><devices><interface type='network'><model type='virtio'/></interface>\
    <disk type='network' device='disk'><driver name='qemu' cache='none'/><source protocol='rbd' name='pool/g'/></disk></devices></domain>";

/// The fixtures, keyed by lint id (a lint may have several).
#[rustfmt::skip]
fn fixtures() -> Vec<Fixture> {
    vec![
        fixture(
            "vcpu-on-reserved",
            case("host:\n  cpu_pool: { reserved: \"0\" }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"1\" } }\n"),
            case("host:\n  cpu_pool: { reserved: \"0\" }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"2\", 1: \"1\" } }\n"),
        ),
        fixture(
            "emulator-overlaps-vcpus",
            case("guests:\n  g:\n    cputune: { vcpupin: { 0: \"2\", 1: \"3\" }, emulatorpin: \"2\" }\n"),
            case("guests:\n  g:\n    cputune: { vcpupin: { 0: \"2\", 1: \"3\" }, emulatorpin: \"0\" }\n"),
        ),
        fixture(
            "unmanaged-on-dedicated",
            with_others(case(&format!("host:\n  cpu_pool: {{ reserved: \"0,8\", shared: \"1,9\" }}\n{CLEAN}")), &[("other", &[None, Some("1")]), ("pinned", &[Some("2")])]),
            with_others(case(&format!("host:\n  cpu_pool: {{ reserved: \"0,8\", shared: \"1,9\" }}\n{CLEAN}")), &[("other", &[Some("0-1,8-9"), Some("1")])]),
        ),
        fixture(
            "realtime-without-isolation",
            case("host:\n  cpu_pool: { reserved: \"0\" }\nguests:\n  g:\n    vcpu: { count: 2 }\n    realtime: { mask: \"^0\" }\n"),
            case("host:\n  cpu_pool: { reserved: \"0\", isolate: { kernel: true } }\nguests:\n  g:\n    vcpu: { count: 2 }\n    realtime: { mask: \"^0\" }\n"),
        ),
        fixture(
            "pinning-does-not-fit",
            case("guests:\n  g:\n    vcpu: { count: 20 }\n    cputune: { vcpupin: auto }\n"),
            case("guests:\n  g:\n    vcpu: { count: 4 }\n    cputune: { vcpupin: auto }\n"),
        ),
        fixture(
            "hugepage-demand",
            case("host:\n  hugepages: [ { size: 2M, count: 100 } ]\nguests:\n  g:\n    memory_backing: { hugepages: { size: 2M } }\n"),
            case("host:\n  hugepages: [ { size: 2M, count: 512 } ]\nguests:\n  g:\n    memory_backing: { hugepages: { size: 2M } }\n"),
        ),
        fixture(
            "vcpu-overcommit",
            case("guests:\n  a: { vcpu: { count: 10 } }\n  b: { vcpu: { count: 10 } }\n"),
            case("guests:\n  a: { vcpu: { count: 8 } }\n  b: { vcpu: { count: 8 } }\n"),
        ),
        fixture(
            "shared-pin",
            case("guests:\n  a: { cputune: { vcpupin: { 0: \"2\" } } }\n  b: { cputune: { vcpupin: { 0: \"2\" } } }\n"),
            case("guests:\n  a: { cputune: { vcpupin: { 0: \"2\" } } }\n  b: { cputune: { vcpupin: { 0: \"3\" } } }\n"),
        ),
        fixture(
            "numa-spread",
            case("guests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"4\" } }\n"),
            case("guests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"8\" } }\n    numatune: { memory: { nodeset: \"0\" } }\n"),
        ),
        fixture(
            "hugetlbfs-missing",
            case_with("guests:\n  g:\n    memory_backing: { hugepages: true }\n", &Facts { hugetlbfs: false, ..clean_facts() }, XML),
            case("guests:\n  g:\n    memory_backing: { hugepages: true }\n"),
        ),
        fixture(
            "topology-sockets",
            case("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough, topology: { sockets: 2, cores: 1, threads: 1 } }\n"),
            case("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough, topology: { sockets: 1, cores: 2, threads: 1 } }\n"),
        ),
        fixture(
            "cpu-model-not-host",
            case("guests:\n  g:\n    cpu: { mode: custom, model: Skylake-Server }\n"),
            case(CLEAN),
        ),
        fixture(
            "nic-not-virtio",
            case("guests:\n  g:\n    interfaces: { \"*\": { model: e1000e } }\n"),
            case("guests:\n  g:\n    interfaces: { \"*\": { model: virtio } }\n"),
        ),
        fixture(
            "queues-above-vcpus",
            case("guests:\n  g:\n    vcpu: { count: 2 }\n    interfaces: { \"*\": { model: virtio, queues: 4 } }\n"),
            case("guests:\n  g:\n    vcpu: { count: 2 }\n    interfaces: { \"*\": { model: virtio, queues: 2 } }\n"),
        ),
        fixture(
            "vhost-net-missing",
            case_with(CLEAN, &Facts { vhost_net: false, ..clean_facts() }, XML),
            case_with(&format!("host:\n  modules: [vhost_net]\n{CLEAN}"), &Facts { vhost_net: false, ..clean_facts() }, XML),
        ),
        fixture(
            "writethrough-many",
            case("guests:\n  a: { disks: { \"*\": { cache: writethrough } } }\n  b: { disks: { \"*\": { cache: writethrough } } }\n"),
            case("guests:\n  a: { disks: { \"*\": { cache: writethrough } } }\n  b: { disks: { \"*\": { cache: none } } }\n"),
        ),
        fixture(
            "cache-blocks-migration",
            case_with("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough }\n    disks: { \"*\": { cache: writeback } }\n", &clean_facts(), NET_XML),
            case_with("guests:\n  g:\n    vcpu: { count: 2 }\n    cpu: { mode: host-passthrough }\n    disks: { \"*\": { cache: writeback } }\n", &clean_facts(), XML),
        ),
        fixture(
            "ksm-with-pinned-hugepages",
            case("host:\n  ksm: { run: true }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"2\" } }\n    memory_backing: { hugepages: true }\n"),
            case("host:\n  ksm: { run: false }\nguests:\n  g:\n    cputune: { vcpupin: { 0: \"2\" } }\n    memory_backing: { hugepages: true }\n"),
        ),
        fixture(
            "thp-always-with-hugepages",
            case_with("guests:\n  g:\n    memory_backing: { hugepages: true }\n", &Facts { thp_enabled: Some("always".into()), ..clean_facts() }, XML),
            case("guests:\n  g:\n    memory_backing: { hugepages: true }\n"),
        ),
        fixture(
            "arp-filter-off",
            case_with(CLEAN, &Facts { arp_filter: Some("0".into()), shared_subnets: vec![("10.0.0.0/255.255.255.0".into(), vec!["eth0".into(), "eth1".into()])], ..clean_facts() }, XML),
            case_with(CLEAN, &Facts { arp_filter: Some("0".into()), ..clean_facts() }, XML),
        ),
        fixture(
            "tuned-not-virtual-host",
            case_with(CLEAN, &Facts { tuned_profile: Some("balanced".into()), ..clean_facts() }, XML),
            case(CLEAN),
        ),
        fixture(
            "tuned-override",
            case_tuned("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n"),
            case_tuned("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 10 }\n"),
        ),
    ]
}

/// What is wrong with lint `l` as reported, against its declaration.
fn mismatch(l: &Lint) -> Option<String> {
    let Some(d) = decls().find(|d| d.id == l.id) else {
        return Some(format!(
            "{}: reported but not declared in the registry",
            l.id
        ));
    };
    if l.severity > d.level || (d.level_note.is_none() && l.severity != d.level) {
        return Some(format!(
            "{}: severity {:?}, declared {:?}",
            l.id, l.severity, d.level
        ));
    }
    if !d.sections.contains(&l.section) {
        return Some(format!(
            "{}: section {}, declared {:?}",
            l.id, l.section, d.sections
        ));
    }
    None
}

#[test]
fn every_declared_lint_fires_on_its_fixture_and_not_on_its_quiet_case() {
    let fx = fixtures();
    let mut problems = Vec::new();
    for d in decls() {
        let mine: Vec<&Fixture> = fx.iter().filter(|f| f.id == d.id).collect();
        if mine.is_empty() {
            problems.push(format!(
                "{}: declared without fixtures: add one to fixtures() in tests/lints.rs (a case that fires it and one that does not)",
                d.id
            ));
        }
        for f in mine {
            let fired = f.fires.lints();
            if !fired.iter().any(|l| l.id == d.id) {
                problems.push(format!("{}: did not fire: {:?}", d.id, ids_of(&fired)));
            }
            let quiet = f.quiet.lints();
            if quiet.iter().any(|l| l.id == d.id) {
                problems.push(format!(
                    "{}: fired on the quiet case: {:?}",
                    d.id,
                    ids_of(&quiet)
                ));
            }
            problems.extend(fired.iter().chain(&quiet).filter_map(mismatch));
        }
    }
    for f in &fx {
        if !decls().any(|d| d.id == f.id) {
            problems.push(format!("{}: a fixture for no declared lint", f.id));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

fn ids_of(l: &[Lint]) -> Vec<&str> {
    l.iter().map(|l| l.id).collect()
}

#[test]
fn declarations_are_unique_and_documented() {
    let mut seen = BTreeSet::new();
    for d in decls() {
        assert!(seen.insert(d.id), "{} declared twice", d.id);
        assert!(
            !d.id.is_empty() && d.id.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
            "{}: ids are kebab-case",
            d.id
        );
        assert!(!d.sections.is_empty(), "{}: no guide section", d.id);
        assert!(!d.reads.is_empty(), "{}: reads nothing", d.id);
        assert!(
            !d.summary.is_empty() && !d.summary.contains('|'),
            "{}: summary",
            d.id
        );
        assert!(
            d.doc.len() > 80 && !d.doc.contains('\n'),
            "{}: the doc is one paragraph",
            d.id
        );
    }
}

/// Checks the generated part of `path`: the lines between the `markers` lines, or the whole
/// file. `UPDATE_README=1` rewrites it; otherwise a stale copy fails, saying how to
/// regenerate it.
fn generated(path: &str, markers: Option<(&str, &str)>, want: &str) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let (from, to) = match markers {
        None => (0, text.len()),
        Some((start, end)) => {
            let s = text
                .find(start)
                .and_then(|s| text[s..].find('\n').map(|n| s + n + 1));
            let e = s.and_then(|s| text[s..].find(end).map(|e| s + e));
            match (s, e) {
                (Some(s), Some(e)) => (s, e),
                _ => panic!("{path}: no `{start}` ... `{end}` marker lines"),
            }
        }
    };
    if text[from..to] == *want {
        return;
    }
    if std::env::var_os("UPDATE_README").is_some() {
        std::fs::write(&file, format!("{}{want}{}", &text[..from], &text[to..])).unwrap();
        return;
    }
    panic!(
        "{path} is stale against the lint registry (src/lint/rules/mod.rs); regenerate it with\n  \
         UPDATE_README=1 cargo test --test lints\n--- expected ---\n{want}"
    );
}

#[test]
fn readme_lint_table_is_generated_from_the_registry() {
    generated(
        "README.md",
        Some(("<!-- lints:start", "<!-- lints:end -->")),
        &kvmtune::lint::markdown_table(),
    );
}

#[test]
fn docs_lints_md_is_generated_from_the_registry() {
    generated("docs/lints.md", None, &kvmtune::lint::markdown_reference());
}

#[test]
fn emulator_overlapping_automatic_pins_is_an_error() {
    let yaml = "guests:\n  a:\n    cputune: { vcpupin: auto }\n  b:\n    cputune: { emulatorpin: \"0-15\" }\n";
    let d = kvmtune::desired::load_str("t.yaml", yaml).unwrap();
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

#[test]
fn numa_spread_of_memory_away_from_the_vcpus() {
    let i = ids("guests:\n  g:\n    cputune: { vcpupin: { 0: \"0\", 1: \"8\" } }\n    numatune: { memory: { nodeset: \"1\" } }\n");
    assert!(i.contains(&"numa-spread".to_string()), "{i:?}");
}

#[test]
fn plan_keeps_only_the_error_level_lints() {
    // Fires vcpu-on-reserved (error) and shared-pin, numa-spread (warnings) in `check`.
    let yaml = "host:\n  cpu_pool: { reserved: \"0\" }\nguests:\n  a: { cputune: { vcpupin: { 0: \"0\", 1: \"4\" } } }\n  b: { cputune: { vcpupin: { 0: \"4\" } } }\n";
    let d = kvmtune::desired::load_str("t.yaml", yaml).unwrap();
    let obs = observed(&d, XML);
    let all = check(&d, &obs, &clean_facts());
    for id in ["vcpu-on-reserved", "shared-pin", "numa-spread"] {
        assert!(all.iter().any(|l| l.id == id), "{id}: {:?}", ids_of(&all));
    }
    let plan = kvmtune::lint::lints(&d, &obs, None);
    assert_eq!(ids_of(&plan), ["vcpu-on-reserved"]);
}

#[test]
fn output_follows_the_registry_and_per_guest_rules_go_guest_by_guest() {
    let yaml = "guests:\n  a: { vcpu: { count: 2 }, cpu: { mode: custom, model: X, topology: { sockets: 2, cores: 1, threads: 1 } } }\n  b: { vcpu: { count: 2 }, cpu: { mode: custom, model: X, topology: { sockets: 2, cores: 1, threads: 1 } } }\n";
    let l = case_with(
        yaml,
        &Facts {
            tuned_profile: None,
            ..clean_facts()
        },
        XML,
    )
    .lints();
    let got: Vec<(&str, &str)> = l.iter().map(|l| (l.id, l.target.as_str())).collect();
    assert_eq!(
        got,
        [
            ("topology-sockets", "guest/a"),
            ("cpu-model-not-host", "guest/a"),
            ("topology-sockets", "guest/b"),
            ("cpu-model-not-host", "guest/b"),
            ("tuned-not-virtual-host", "host"),
        ]
    );
}

#[test]
fn a_clean_configuration_has_no_lints_and_exit_0() {
    let d = kvmtune::desired::load_str("t.yaml", CLEAN).unwrap();
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

/// Undeclared guests reaching dedicated CPUs are named, with their vCPUs and those CPUs;
/// without a partitioned host (no `cpu_pool`) nothing is dedicated and nothing fires.
#[test]
fn unmanaged_guests_on_dedicated_cpus_are_named() {
    let pool = format!("host:\n  cpu_pool: {{ reserved: \"0,8\", shared: \"1,9\" }}\n{CLEAN}");
    let others: &[(&str, &[Option<&str>])] =
        &[("other", &[None, Some("1")]), ("pinned", &[Some("1-2")])];
    let msgs: Vec<String> = with_others(case(&pool), others)
        .lints()
        .into_iter()
        .filter(|l| l.id == "unmanaged-on-dedicated")
        .map(|l| format!("{}: {}", l.target, l.message))
        .collect();
    assert_eq!(
        msgs,
        [
            "host: guest other is not managed, and its vCPU(s) 0 (unpinned) can run on dedicated CPU(s) 2-7,10-15: declare it (`vcpupin: shared` floats it over the shared pool) or pin it off them",
            "host: guest pinned is not managed, and its vCPU(s) 0 can run on dedicated CPU(s) 2: declare it (`vcpupin: shared` floats it over the shared pool) or pin it off them",
        ]
    );
    let quiet = with_others(case(CLEAN), others).lints();
    assert!(
        quiet.iter().all(|l| l.id != "unmanaged-on-dedicated"),
        "{quiet:?}"
    );
}

#[test]
fn tuned_override_names_the_key_both_values_and_where_the_profile_value_comes_from() {
    let msgs = |yaml: &str| -> Vec<String> {
        case_tuned(yaml)
            .lints()
            .into_iter()
            .filter(|l| l.id == "tuned-override")
            .map(|l| format!("{}: {}", l.location.unwrap_or_default(), l.message))
            .collect()
    };
    assert_eq!(
        msgs("host:\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7, vm.dirty_background_ratio: 6, vm.dirty_ratio: 40 }\n"),
        [
            "t.yaml:3:31: vm.dirty_background_ratio: 6 overrides virtual-host's 5 — set in the kvmtune child profile",
            "t.yaml:3:13: vm.swappiness: 7 overrides virtual-host's 10 (from throughput-performance) — set in the kvmtune child profile",
        ]
    );
    assert_eq!(
        msgs("host:\n  persist: false\n  tuned: { profile: virtual-host }\n  sysctl: { vm.swappiness: 7 }\n"),
        ["t.yaml:4:13: vm.swappiness: 7 overrides virtual-host's 10 (from throughput-performance) — persist: false writes no child profile, so `tuned-adm verify` will report it"]
    );
}
