//! `kvmtune render` (offline XML tuning) over libvirt's own test-suite domain XMLs
//! (`tests/data/libvirt-domains`, read only), through the real binary:
//! - the output passes `virt-xml-validate FILE domain` wherever the input does;
//! - rendering the output again gives the same bytes;
//! - with the owned elements and attributes stripped from both, input and output are equal node
//!   by node (names, attributes in order, non-blank text, children);
//!
//! Plus: located errors, an unknown guest, the `--root` default page size, and one snapshot.

use std::path::Path;
use std::process::{Command, Output};

use kvmtune::xmltree::{Document, NodeId};

mod support;
use support::{corpus_dir, corpus_files as corpus};

/// The corpus files SOURCES.md lists as failing `virt-xml-validate` with this libvirt.
fn known_invalid() -> Vec<String> {
    let sources = std::fs::read_to_string(corpus_dir().join("SOURCES.md")).unwrap();
    sources
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("| FAIL |"))
        .filter_map(|l| l.split('|').nth(1).map(|f| f.trim().to_string()))
        .collect()
}

fn render(root: &Path, guest: &str, xml: &Path, yaml: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtune"))
        .env("NO_COLOR", "1")
        .arg("--root")
        .arg(root)
        .args(["render", "--guest", guest, "--xml"])
        .arg(xml)
        .arg(yaml)
        .output()
        .expect("running kvmtune render")
}

fn validates(file: &Path) -> Result<(), String> {
    let out = Command::new("virt-xml-validate")
        .arg(file)
        .arg("domain")
        .output()
        .expect("running virt-xml-validate (package libvirt-clients)");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn vcpus(xml: &str) -> u32 {
    let d = Document::parse(xml).unwrap();
    d.child(d.root(), "vcpu")
        .and_then(|v| d.text(v).trim().parse().ok())
        .unwrap_or(1)
}

/// A tuning that touches every element and attribute kvmtune owns.
fn full_tuning(vcpus: u32) -> String {
    format!(
        "guests:\n  g:\n    vcpu: {{ placement: static, cpuset: \"0-3,^2\" }}\n    cputune: {{ vcpupin: {{ 0: \"1\" }}, emulatorpin: \"0-1\", shares: 2048, period: 100000, quota: 50000, emulator_period: 100000, emulator_quota: -1, vcpusched: [ {{ vcpus: \"0\", scheduler: fifo, priority: 1 }} ] }}\n    numatune: {{ memory: {{ mode: interleave, nodeset: \"0\" }} }}\n    memory_backing: {{ hugepages: {{ size: 2M }}, locked: true, nosharepages: true }}\n    features: {{ pmu: false }}\n    hyperv: recommended\n    cpu: {{ mode: host-passthrough, topology: {{ sockets: 1, cores: {vcpus}, threads: 1 }} }}\n    disks: {{ \"*\": {{ cache: none, io: native }} }}\n    interfaces: {{ \"*\": {{ model: virtio, driver: vhost, queues: 2 }} }}\n"
    )
}

fn remove_attrs(d: &mut Document, el: NodeId, attrs: &[&str]) {
    for a in attrs {
        d.remove_attr(el, a);
    }
}

fn remove_children(d: &mut Document, el: NodeId, names: &[&str]) {
    for n in names {
        for c in d.children_named(el, n) {
            d.remove(c);
        }
    }
}

fn prune_empty(d: &mut Document, el: NodeId) {
    if d.elements(el).is_empty() && d.attrs(el).is_empty() && d.text(el).trim().is_empty() {
        d.remove(el);
    }
}

/// Removes exactly what kvmtune owns (and containers left empty by that), nothing more.
fn strip_owned(xml: &str) -> Document {
    let mut d = Document::parse(xml).unwrap();
    let root = d.root();
    remove_children(&mut d, root, &["vcpu"]);
    if let Some(ct) = d.child(root, "cputune") {
        remove_children(
            &mut d,
            ct,
            &[
                "vcpupin",
                "emulatorpin",
                "shares",
                "period",
                "quota",
                "emulator_period",
                "emulator_quota",
                "vcpusched",
            ],
        );
        prune_empty(&mut d, ct);
    }
    if let Some(nt) = d.child(root, "numatune") {
        remove_children(&mut d, nt, &["memory"]);
        prune_empty(&mut d, nt);
    }
    if let Some(mb) = d.child(root, "memoryBacking") {
        remove_children(&mut d, mb, &["hugepages", "locked", "nosharepages"]);
        prune_empty(&mut d, mb);
    }
    if let Some(f) = d.child(root, "features") {
        remove_children(&mut d, f, &["pmu"]);
        if let Some(hv) = d.child(f, "hyperv") {
            remove_children(
                &mut d,
                hv,
                &[
                    "relaxed",
                    "vapic",
                    "spinlocks",
                    "vpindex",
                    "runtime",
                    "synic",
                    "stimer",
                    "frequencies",
                    "tlbflush",
                    "ipi",
                ],
            );
            prune_empty(&mut d, hv);
        }
        prune_empty(&mut d, f);
    }
    if let Some(cpu) = d.child(root, "cpu") {
        remove_attrs(&mut d, cpu, &["mode", "check", "migratable", "match"]);
        remove_children(&mut d, cpu, &["model", "topology"]);
        prune_empty(&mut d, cpu);
    }
    if let Some(clock) = d.child(root, "clock") {
        for t in d.children_named(clock, "timer") {
            if d.attr(t, "name").as_deref() == Some("hypervclock") {
                d.remove(t);
            }
        }
        prune_empty(&mut d, clock);
    }
    if let Some(devs) = d.child(root, "devices") {
        for disk in d.children_named(devs, "disk") {
            if let Some(drv) = d.child(disk, "driver") {
                remove_attrs(&mut d, drv, &["cache", "io"]);
                prune_empty(&mut d, drv);
            }
        }
        for nic in d.children_named(devs, "interface") {
            remove_children(&mut d, nic, &["model"]);
            if let Some(drv) = d.child(nic, "driver") {
                remove_attrs(&mut d, drv, &["name", "queues"]);
                prune_empty(&mut d, drv);
            }
        }
    }
    d
}

/// Compares two trees node by node; returns the path of the first difference.
fn same_tree(a: &Document, an: NodeId, b: &Document, bn: NodeId, path: &str) -> Result<(), String> {
    let here = format!("{path}/{}", a.name(an));
    if a.name(an) != b.name(bn) {
        return Err(format!("{here}: element {} vs {}", a.name(an), b.name(bn)));
    }
    if a.attrs(an) != b.attrs(bn) {
        return Err(format!(
            "{here}: attributes {:?} vs {:?}",
            a.attrs(an),
            b.attrs(bn)
        ));
    }
    let (ka, kb) = (a.elements(an), b.elements(bn));
    if ka.is_empty() && kb.is_empty() && a.text(an).trim() != b.text(bn).trim() {
        return Err(format!("{here}: text {:?} vs {:?}", a.text(an), b.text(bn)));
    }
    if ka.len() != kb.len() {
        let names = |d: &Document, k: &[NodeId]| {
            k.iter().map(|n| d.name(*n).to_string()).collect::<Vec<_>>()
        };
        return Err(format!(
            "{here}: children {:?} vs {:?}",
            names(a, &ka),
            names(b, &kb)
        ));
    }
    for (x, y) in ka.into_iter().zip(kb) {
        same_tree(a, x, b, y, &here)?;
    }
    Ok(())
}

#[test]
fn corpus_render_validates_is_idempotent_and_preserves_everything_else() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let invalid = known_invalid();
    assert_eq!(invalid, ["pcie-root-port.xml"], "SOURCES.md changed");
    let (mut rendered, mut validated, mut refused) = (0, 0, Vec::new());
    for file in corpus() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let input = std::fs::read_to_string(&file).unwrap();
        let yaml = tmp.path().join("t.yaml");
        std::fs::write(&yaml, full_tuning(vcpus(&input))).unwrap();
        let out = render(&root, "g", &file, &yaml);
        if out.status.code() == Some(1) {
            // A guest this tuning cannot apply to: a located error, nothing on stdout.
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("t.yaml:"), "{name}: unlocated error: {err}");
            assert!(out.stdout.is_empty(), "{name}");
            refused.push(name);
            continue;
        }
        assert!(out.status.success(), "{name}: {out:?}");
        rendered += 1;
        let output = String::from_utf8(out.stdout).unwrap();
        assert_ne!(output, input, "{name}: the full tuning changed nothing");
        let out_file = tmp.path().join(&name);
        std::fs::write(&out_file, &output).unwrap();

        let again = render(&root, "g", &out_file, &yaml);
        assert!(again.status.success(), "{name}: second render: {again:?}");
        assert_eq!(
            String::from_utf8(again.stdout).unwrap(),
            output,
            "{name}: rendering the output again changed it"
        );

        let (a, b) = (strip_owned(&input), strip_owned(&output));
        if let Err(diff) = same_tree(&a, a.root(), &b, b.root(), "") {
            panic!("{name}: something outside the owned elements changed: {diff}\n{output}");
        }

        let input_ok = validates(&file);
        if invalid.contains(&name) {
            assert!(
                input_ok.is_err(),
                "{name} is listed as invalid but validates"
            );
            continue;
        }
        input_ok.unwrap_or_else(|e| panic!("{name}: the corpus input does not validate: {e}"));
        if let Err(e) = validates(&out_file) {
            panic!("{name}: the rendered output does not validate: {e}\n{output}");
        }
        validated += 1;
    }
    assert!(
        refused.len() <= 3,
        "too many corpus guests refused the tuning: {refused:?}"
    );
    assert!(
        rendered >= 60 && validated >= 59,
        "{rendered} rendered, {validated} validated"
    );
}

#[test]
fn render_snapshot_of_one_corpus_guest() {
    let tmp = tempfile::tempdir().unwrap();
    let file = corpus_dir().join("cputune.xml");
    let input = std::fs::read_to_string(&file).unwrap();
    let yaml = tmp.path().join("t.yaml");
    std::fs::write(&yaml, full_tuning(vcpus(&input))).unwrap();
    let out = render(tmp.path(), "g", &file, &yaml);
    assert!(out.status.success(), "{out:?}");
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap());
}

#[test]
fn unknown_guest_and_plan_issues_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let file = corpus_dir().join("cputune.xml");
    let yaml = tmp.path().join("t.yaml");
    std::fs::write(
        &yaml,
        "guests:\n  g:\n    cputune:\n      vcpupin: { 7: \"1\" }\n    disks: { vdz: { cache: none } }\n",
    )
    .unwrap();

    let out = render(tmp.path(), "nosuch", &file, &yaml);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no guest `nosuch` in the configuration (it declares: g)\n"
    );
    assert!(out.stdout.is_empty());

    let out = render(tmp.path(), "g", &file, &yaml);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr).replace(&*tmp.path().to_string_lossy(), "DIR");
    assert_eq!(
        err,
        "error: DIR/t.yaml:4:18: guests.g.cputune.vcpupin.7: guest g: vCPU index 7 is out of range: the guest has 2 vCPUs\n\
         DIR/t.yaml:5:14: guests.g.disks.vdz: guest g: no disk with target dev `vdz` in this guest (it has: hda)\n"
    );
}

#[test]
fn default_huge_page_size_comes_from_meminfo_under_root() {
    let tmp = tempfile::tempdir().unwrap();
    let file = corpus_dir().join("cputune.xml");
    let yaml = tmp.path().join("t.yaml");
    std::fs::write(
        &yaml,
        "guests:\n  g:\n    memory_backing: { hugepages: true }\n",
    )
    .unwrap();
    // Without /proc/meminfo under the root: `<hugepages/>` (libvirt's default size).
    let out = render(tmp.path(), "g", &file, &yaml);
    assert!(out.status.success(), "{out:?}");
    let plain = String::from_utf8(out.stdout).unwrap();
    assert!(plain.contains("<hugepages/>"), "{plain}");

    std::fs::create_dir_all(tmp.path().join("proc")).unwrap();
    std::fs::write(
        tmp.path().join("proc/meminfo"),
        "MemTotal: 1000 kB\nHugepagesize:    1048576 kB\n",
    )
    .unwrap();
    let doc = Document::parse(&plain).unwrap();
    let mb = doc.child(doc.root(), "memoryBacking").unwrap();
    assert!(doc.child(mb, "hugepages").is_some());
    // A guest already backed by 2M pages is not "the default size" on a 1G-default host.
    let two_m = tmp.path().join("2m.xml");
    std::fs::write(
        &two_m,
        plain.replace(
            "<hugepages/>",
            "<hugepages>\n      <page size='2048' unit='KiB'/>\n    </hugepages>",
        ),
    )
    .unwrap();
    let out = render(tmp.path(), "g", &two_m, &yaml);
    assert!(out.status.success(), "{out:?}");
    let on_1g = String::from_utf8(out.stdout).unwrap();
    assert!(!on_1g.contains("size='2048'"), "{on_1g}");

    std::fs::write(
        tmp.path().join("proc/meminfo"),
        "MemTotal: 1000 kB\nHugepagesize:       2048 kB\n",
    )
    .unwrap();
    let out = render(tmp.path(), "g", &two_m, &yaml);
    let on_2m = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        on_2m,
        std::fs::read_to_string(&two_m).unwrap(),
        "2M is the default size here"
    );
}
