//! `kvmtune map` on the demo host (libvirt's `test:///` driver with examples/demo/host.xml and
//! a copy of its /proc + /sys tree): the text, SVG and JSON snapshots, the SVG's structure
//! (well-formed, every CPU once, self-contained), a planted conflict, the lock file's pins,
//! and the committed docs/map-demo.svg against what scripts/demo-map.sh draws now.

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use kvmtune::topology::HostTopology;
use kvmtune::xmltree::Document;
use support::{describe, kt, out, repo};

fn demo_cfg() -> String {
    repo()
        .join("examples/demo/map.yaml")
        .to_str()
        .unwrap()
        .to_string()
}

fn map(root: &Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["map"];
    a.extend_from_slice(args);
    kt(root, &a)
}

/// Every element of the document, depth first.
fn elements(doc: &Document) -> Vec<kvmtune::xmltree::NodeId> {
    let mut out = Vec::new();
    let mut todo = vec![doc.root()];
    while let Some(n) = todo.pop() {
        out.push(n);
        let mut kids = doc.elements(n);
        kids.reverse();
        todo.extend(kids);
    }
    out
}

/// The SVG parses as XML, has an `<svg>` root, no script or external reference, and draws
/// each CPU of `topo` as exactly one `<g id="cpu-N">`; returns the classes by CPU.
fn check_svg(svg: &str, topo: &HostTopology) -> BTreeMap<u32, String> {
    let doc = Document::parse(svg).unwrap_or_else(|e| panic!("the SVG is not XML: {e:?}"));
    assert_eq!(doc.name(doc.root()), "svg");
    let mut seen: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for e in elements(&doc) {
        let name = doc.name(e).to_string();
        assert!(
            !["script", "image", "foreignObject", "use", "a"].contains(&name.as_str()),
            "<{name}> in the SVG"
        );
        for (k, v) in doc.attrs(e) {
            assert!(
                !k.contains("href") && !k.starts_with("on") && !v.contains("url("),
                "external reference or handler {k}={v}"
            );
        }
        if let Some(id) = doc
            .attr(e, "id")
            .and_then(|i| i.strip_prefix("cpu-").map(String::from))
        {
            assert_eq!(name, "g");
            seen.entry(id.parse().unwrap())
                .or_default()
                .push(doc.attr(e, "class").unwrap_or_default());
        }
    }
    let want: Vec<u32> = topo.cpus.iter().map(|c| c.id).collect();
    assert_eq!(seen.keys().copied().collect::<Vec<_>>(), want);
    seen.into_iter()
        .map(|(cpu, classes)| {
            assert_eq!(classes.len(), 1, "CPU {cpu} drawn {} times", classes.len());
            (cpu, classes[0].clone())
        })
        .collect()
}

#[test]
fn demo_map_text_svg_and_json() {
    let root = support::demo_root();
    let cfg = demo_cfg();
    let o = map(root.path(), &[&cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let text = out(&o);
    assert!(!text.contains('\x1b'), "colour without a terminal");
    assert!(text.contains("conflicts: none\n"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.contains("│ !")).count(),
        0,
        "{text}"
    );
    insta::assert_snapshot!("demo_map_text", text);

    let o = map(root.path(), &[&cfg, "--format", "svg"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let topo = HostTopology::from_sysfs(root.path()).unwrap().unwrap();
    let classes = check_svg(&out(&o), &topo);
    assert_eq!(classes[&0], "cpu reserved");
    assert_eq!(classes[&4], "cpu shared");
    assert_eq!(classes[&5], "cpu isolated");
    insta::assert_snapshot!("demo_map_svg", out(&o));

    let o = map(root.path(), &[&cfg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["view"], "planned");
    assert_eq!(v["conflicts"], serde_json::json!([]));
    insta::assert_snapshot!("demo_map_json", out(&o));
}

#[test]
fn demo_map_as_it_is_now_marks_every_conflict() {
    let root = support::demo_root();
    let cfg = demo_cfg();
    let o = map(root.path(), &[&cfg, "--current"]);
    // The untuned demo: unpinned guests float over reserved and isolated CPUs.
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    insta::assert_snapshot!("demo_map_current_text", out(&o));
    let o = map(root.path(), &[&cfg, "--current", "--format", "svg"]);
    let topo = HostTopology::from_sysfs(root.path()).unwrap().unwrap();
    let classes = check_svg(&out(&o), &topo);
    // Every CPU but the shared ones (4, 12: floating is what they are for) is a conflict.
    for (cpu, class) in classes {
        assert_eq!(
            class.ends_with(" conflict"),
            cpu != 4 && cpu != 12,
            "CPU {cpu}: {class}"
        );
    }
}

/// Every guest of the demo pinned apart, except web1's vCPU 0 when `plant` (on db1's CPU 2).
fn pinned_apart(dir: &Path, plant: bool) -> String {
    let cfg = dir.join(format!("c{plant}.yaml"));
    let web1 = if plant { "2" } else { "1" };
    std::fs::write(
        &cfg,
        format!(
            "host:\n  cpu_pool: {{ reserved: \"0,8\" }}\nguests:\n  db1: {{ cputune: {{ vcpupin: {{ 0: \"2\", 1: \"3\", 2: \"10\", 3: \"11\" }} }} }}\n  web1: {{ cputune: {{ vcpupin: {{ 0: \"{web1}\", 1: \"5\" }} }} }}\n  web2: {{ cputune: {{ vcpupin: {{ 0: \"6\", 1: \"14\" }} }} }}\n  batch1: {{ vcpu: {{ count: 2 }}, cputune: {{ vcpupin: {{ 0: \"7\", 1: \"15\" }} }} }}\n"
        ),
    )
    .unwrap();
    cfg.to_str().unwrap().to_string()
}

/// Two guests pinned to one CPU: the map must say so in every format (a map without the
/// marker fails), and says nothing when they are apart.
#[test]
fn a_planted_conflict_is_marked_in_every_format() {
    let root = support::demo_root();
    let dir = tempfile::tempdir().unwrap();
    let apart = pinned_apart(dir.path(), false);
    let o = map(root.path(), &[&apart]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert!(out(&o).contains("conflicts: none\n"), "{}", out(&o));
    let marks = |t: &str| t.lines().filter(|l| l.contains("│ !")).count();
    assert_eq!(marks(&out(&o)), 0, "{}", out(&o));

    let cfg = pinned_apart(dir.path(), true);
    let o = map(root.path(), &[&cfg]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let text = out(&o);
    let marked: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("thread") && l.contains('!'))
        .collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(
        marked[0].contains("│ !2 dedicated"),
        "CPU 2 is not marked: {text}"
    );
    assert!(
        text.contains("conflicts:\n  ! db1 and web1 have vCPUs pinned to the same CPU 2\nlegend:"),
        "{text}"
    );

    let o = map(root.path(), &[&cfg, "--format", "json"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(
        v["conflicts"],
        serde_json::json!([{
            "kind": "shared_cpu",
            "cpus": "2",
            "guests": ["db1", "web1"],
            "message": "db1 and web1 have vCPUs pinned to the same CPU 2"
        }])
    );

    let o = map(root.path(), &[&cfg, "--format", "svg"]);
    assert_eq!(o.status.code(), Some(2), "{}", describe(&o));
    let topo = HostTopology::from_sysfs(root.path()).unwrap().unwrap();
    let classes = check_svg(&out(&o), &topo);
    let conflicts: Vec<u32> = classes
        .iter()
        .filter(|(_, c)| c.ends_with(" conflict"))
        .map(|(cpu, _)| *cpu)
        .collect();
    assert_eq!(conflicts, vec![2]);
    assert_eq!(classes[&2], "cpu dedicated conflict");
}

/// The automatic pins come from the lock file when it holds them.
#[test]
fn the_lock_files_pins_are_drawn() {
    let root = support::demo_root();
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("kvmtune.lock.yaml");
    std::fs::write(
        &lock,
        "version: 1\nguests:\n  db1:\n    vcpupin: [3, 11, 2, 10]\n    emulatorpin: '0,8'\n    nodeset: '0'\n",
    )
    .unwrap();
    let cfg = demo_cfg();
    let o = kt(
        root.path(),
        &[
            "--lock-file",
            lock.to_str().unwrap(),
            "map",
            &cfg,
            "--format",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let db1 = v["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "db1")
        .unwrap();
    assert_eq!(
        db1["pinned"],
        serde_json::json!({"0": 3, "1": 11, "2": 2, "3": 10})
    );
    // Without the lock the allocator chooses (cores 1 and 2).
    let o = map(root.path(), &[&cfg, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    let db1 = v["guests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "db1")
        .unwrap();
    assert_eq!(
        db1["pinned"],
        serde_json::json!({"0": 1, "1": 9, "2": 2, "3": 10})
    );
}

#[test]
fn map_changes_nothing() {
    let root = support::demo_root();
    let list = |p: &Path| {
        let mut v = Vec::new();
        fn walk(p: &Path, v: &mut Vec<(String, Vec<u8>)>) {
            for e in std::fs::read_dir(p).unwrap() {
                let e = e.unwrap().path();
                if e.is_dir() {
                    walk(&e, v);
                } else {
                    v.push((e.display().to_string(), std::fs::read(&e).unwrap()));
                }
            }
        }
        walk(p, &mut v);
        v.sort();
        v
    };
    let before = list(root.path());
    let o = map(root.path(), &[&demo_cfg()]);
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    assert_eq!(list(root.path()), before);
}

#[test]
fn committed_map_svg_is_current() {
    let o = std::process::Command::new(repo().join("scripts/demo-map.sh"))
        .args(["--format", "svg"])
        .env("KVMTUNE", env!("CARGO_BIN_EXE_kvmtune"))
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let committed = std::fs::read_to_string(repo().join("docs/map-demo.svg")).unwrap();
    assert!(
        committed == out(&o),
        "docs/map-demo.svg is stale: run `scripts/demo-map.sh --format svg > docs/map-demo.svg`"
    );
}

#[test]
fn readme_map_is_current() {
    let o = std::process::Command::new(repo().join("scripts/demo-map.sh"))
        .env("KVMTUNE", env!("CARGO_BIN_EXE_kvmtune"))
        .env_remove("LIBVIRT_DEFAULT_URI")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", describe(&o));
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let start = readme
        .find("<!-- map:start")
        .expect("README has the map block");
    let block = &readme[start..];
    let body =
        &block[block.find("```text\n").unwrap() + 8..block.find("```\n<!-- map:end -->").unwrap()];
    assert!(
        body == out(&o),
        "README.md's map is stale: paste `scripts/demo-map.sh` between its map markers"
    );
}
