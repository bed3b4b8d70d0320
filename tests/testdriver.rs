//! The whole pipeline in-process on libvirt's `test:///` driver (the README demo host):
//! apply the demo configuration, plan again (empty), apply again (zero writes).
//! The test driver keeps its state per connection, so one connection is used throughout.

use std::path::{Path, PathBuf};

use kvmtune::libvirt::Hypervisor;
use kvmtune::{apply, config, observe, plan};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

#[test]
fn demo_apply_converges_and_second_apply_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), root.path());
    let uri = format!("test://{}", repo().join("examples/demo/host.xml").display());
    let hv = Hypervisor::open(&uri, false).unwrap();
    let desired = config::load(&[repo().join("examples/demo/tuning.yaml")]).unwrap();

    let obs = observe::observe(&desired, root.path(), Some(&hv)).unwrap();
    let first = plan::plan(&desired, &obs);
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert!(first.changes.len() > 10, "{:?}", first.changes);
    // db1 is running in the demo: its changes wait for a restart; web1 is shut off.
    assert!(first
        .changes
        .iter()
        .filter(|c| c.target == "guest/db1")
        .all(|c| c.effect == plan::Effect::Restart));
    assert!(first
        .changes
        .iter()
        .filter(|c| c.target == "guest/web1")
        .all(|c| c.effect == plan::Effect::Live));

    let report = apply::apply(&first, &desired, root.path(), Some(&hv));
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.defines, 2);

    let obs = observe::observe(&desired, root.path(), Some(&hv)).unwrap();
    let second = plan::plan(&desired, &obs);
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
            plan::Action::Guest { name: n, uuid, .. } if n.as_str() == name => Some(uuid.clone()),
            _ => None,
        })
        .unwrap()
}
