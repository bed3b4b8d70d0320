//! SR-IOV VF pools on the simulated demo host (libvirt's `test:///` driver with
//! `examples/demo/host.xml`, sysfs under a copy of `examples/demo/root`: `ens1f0` has 8 VFs
//! in total): a `forward: hostdev` network, guests' `sriov` entries added once with their
//! owned alias, and a plan error when the PF has fewer VFs than the guests ask for.

mod support;

use kvmtune::libvirt::Hypervisor;
use support::*;

fn config(numvfs: u32, db1: u32, web1: u32) -> String {
    format!(
        "host:\n  interfaces: {{ ens1f0: {{ sriov_numvfs: {numvfs} }} }}\n\
         networks:\n  vfpool0: {{ forward: hostdev, pf: ens1f0 }}\n\
         guests:\n  db1:\n    sriov: [ {{ network: vfpool0, count: {db1} }} ]\n  \
         web1:\n    sriov: [ {{ network: vfpool0, count: {web1} }} ]\n"
    )
}

#[test]
fn guests_get_their_vfs_once_and_the_pool_converges() {
    let root = demo_root();
    let d = kvmtune::desired::load_str("sriov.yaml", &config(4, 2, 1)).unwrap();
    let hv = Hypervisor::open(&demo_uri(), false).unwrap();
    let obs = kvmtune::observe::observe(&d, root.path(), Some(&hv)).unwrap();
    let p = kvmtune::pipeline::plan(&d, &obs);
    assert!(!p.has_errors(), "{:#?}", p.errors);
    let paths: Vec<(String, String)> = p
        .changes
        .iter()
        .map(|c| (c.target.clone(), c.path.clone()))
        .collect();
    for want in [
        ("network/vfpool0", "forward"),
        ("network/vfpool0", "pf"),
        ("guest/db1", "sriov.vfpool0.0"),
        ("guest/db1", "sriov.vfpool0.1"),
        ("guest/web1", "sriov.vfpool0.0"),
    ] {
        assert!(
            paths.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {paths:?}"
        );
    }
    let report = kvmtune::apply::apply(&p, &d, root.path(), Some(&hv));
    assert!(report.ok(), "{report:#?}");
    let net = hv.network("vfpool0").unwrap().expect("defined");
    assert!(net.xml.contains("<pf dev='ens1f0'/>"), "{}", net.xml);
    let (_, db1) = hv.current("db1").unwrap().unwrap();
    assert_eq!(db1.matches("ua-kvmtune-sriov-vfpool0-").count(), 2, "{db1}");
    assert_eq!(
        db1.matches("<source network='vfpool0'/>").count(),
        2,
        "{db1}"
    );
    // Planned again on the same hypervisor: nothing to change, no duplicate VF.
    let obs = kvmtune::observe::observe(&d, root.path(), Some(&hv)).unwrap();
    let again = kvmtune::pipeline::plan(&d, &obs);
    assert!(
        again.changes.is_empty() && !again.has_errors(),
        "{:#?}",
        again.changes
    );
    // One VF fewer for db1: exactly the owned one beyond the count goes.
    let fewer = kvmtune::desired::load_str("sriov.yaml", &config(4, 1, 1)).unwrap();
    let obs = kvmtune::observe::observe(&fewer, root.path(), Some(&hv)).unwrap();
    let p = kvmtune::pipeline::plan(&fewer, &obs);
    let paths: Vec<&str> = p.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, ["sriov.vfpool0.1"], "{:#?}", p.changes);
}

#[test]
fn a_pool_with_too_few_vfs_is_a_located_plan_error() {
    let root = demo_root();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("sriov.yaml");
    std::fs::write(&cfg, config(2, 2, 1)).unwrap();
    let o = kt(root.path(), &["plan", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", describe(&o));
    let text = format!("{}{}", out(&o), err(&o));
    assert!(
        text.contains("the declared guests ask for 3 VFs, but ens1f0 has 2"),
        "{text}"
    );
    assert!(text.contains("networks.vfpool0.pf"), "{text}");
    // Enough VFs: no error.
    std::fs::write(&cfg, config(3, 2, 1)).unwrap();
    let o = kt(root.path(), &["plan", cfg.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
}
