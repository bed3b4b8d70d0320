//! The whole pipeline in-process on libvirt's `test:///` driver (the README demo host):
//! apply the demo configuration, plan again (empty), apply again (zero writes).
//! The test driver keeps its state per connection, so one connection is used throughout.

mod support;
use support::*;

use kvmtune::libvirt::Hypervisor;
use kvmtune::{apply, observe, plan};

#[test]
fn demo_apply_converges_and_second_apply_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), root.path());
    let uri = format!("test://{}", repo().join("examples/demo/host.xml").display());
    let hv = Hypervisor::open(&uri, false).unwrap();
    let desired = kvmtune::desired::load(&[repo().join("examples/demo/tuning.yaml")]).unwrap();

    let obs = observe::observe(&desired, root.path(), Some(&hv)).unwrap();
    let first = kvmtune::pipeline::plan(&desired, &obs);
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert!(first.changes.len() > 10, "{:?}", first.changes);
    // db1 is running in the demo: pins change live, the rest waits for a restart; web1 is
    // shut off, so everything it gets takes effect at its next start.
    for c in first.changes.iter().filter(|c| c.target == "guest/db1") {
        let live = c.path.starts_with("cputune.") || c.path == "numatune.memory.nodeset";
        assert_eq!(c.effect == plan::Effect::Live, live, "{c:?}");
    }
    assert!(first
        .changes
        .iter()
        .filter(|c| c.target == "guest/web1")
        .all(|c| c.effect == plan::Effect::Live));

    let report = apply::apply(&first, &desired, root.path(), Some(&hv));
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.defines, 2);

    let obs = observe::observe(&desired, root.path(), Some(&hv)).unwrap();
    let second = kvmtune::pipeline::plan(&desired, &obs);
    assert!(
        second.changes.is_empty(),
        "plan after apply is not empty: {:?}",
        second.changes
    );
    let report = apply::apply(&second, &desired, root.path(), Some(&hv));
    assert_eq!((report.defines, report.host_writes), (0, 0));

    // Unmanaged guests were not touched; managed ones kept their UUIDs and MACs.
    let after = obs.guests["db1"].as_ref().unwrap();
    assert_eq!(after.uuid, first_uuid(&first, "db1"));
    assert!(
        after.xml.contains("<mac address='52:54:00:6b:d1:01'/>"),
        "{}",
        after.xml
    );
}

fn first_uuid(p: &plan::Plan, name: &str) -> String {
    p.actions
        .iter()
        .find_map(|a| match a {
            plan::Action::Guest { name: n, uuid, .. } if n.as_str() == name => {
                Some(uuid.to_string())
            }
            _ => None,
        })
        .unwrap()
}

#[test]
fn huge_page_shortfall_names_requested_and_allocated_and_other_keys_still_apply() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), root.path());
    let desired = kvmtune::desired::load_str(
        "h.yaml",
        "host:\n  persist: false\n  sysctl: { vm.swappiness: 10 }\n  hugepages:\n    - { size: 2M, node: 0, count: 300 }\n    - { size: 2M, node: 1, count: 50 }\n",
    )
    .unwrap();
    let obs = observe::observe(&desired, root.path(), None).unwrap();
    let p = kvmtune::pipeline::plan(&desired, &obs);
    let report = apply::apply_with(
        &p,
        &desired,
        apply::Target {
            root: root.path(),
            hv: None,
            io: apply::HostIo {
                files: &CappedPools { cap: 100 },
                cmds: &kvmtune::host::RealCommands,
            },
        },
        &mut |_, _, _| {},
    );
    assert!(!report.ok());
    let host = &report.results[0];
    assert_eq!(
        host.applied,
        vec![
            "sysctl.vm.swappiness".to_string(),
            "hugepages.2M.node1".to_string()
        ]
    );
    assert_eq!(host.failed.len(), 1);
    assert_eq!(host.failed[0].0, "hugepages.2M.node0");
    assert_eq!(
        host.failed[0].1,
        "huge page pool /sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages: requested 300 pages, the kernel allocated 100"
    );
    assert_eq!(
        std::fs::read_to_string(root.path().join("proc/sys/vm/swappiness")).unwrap(),
        "10\n"
    );
    // The plan still shows the pool that fell short, and only that.
    let obs = observe::observe(&desired, root.path(), None).unwrap();
    let again = kvmtune::pipeline::plan(&desired, &obs);
    assert_eq!(again.changes.len(), 1);
    assert_eq!(again.changes[0].before.as_deref(), Some("100"));
}
