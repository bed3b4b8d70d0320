//! Corpus-driven tests for `kvmtune::xmltree`: lossless round trips, local
//! edits, and robustness against malformed input.

mod support;
use support::{corpus, Rng};

use kvmtune::xmltree::{Document, NodeId, XmlError};
use similar::{ChangeTag, TextDiff};

fn parse(name: &str, text: &str) -> Document {
    Document::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// All elements in document order.
fn all_elements(d: &Document) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut stack = vec![d.root()];
    while let Some(id) = stack.pop() {
        out.push(id);
        stack.extend(d.elements(id).into_iter().rev());
    }
    out
}

fn depth(d: &Document, mut id: NodeId) -> usize {
    let mut n = 0;
    while let Some(p) = d.parent(id) {
        n += 1;
        id = p;
    }
    n
}

/// Indentation of the line after the first start tag `<parent` (i.e. of the
/// first child line of that element).
fn child_indent(text: &str, parent: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(&format!("<{parent}>")) || t.starts_with(&format!("<{parent} "))
        })
        .unwrap();
    let next = lines[i + 1];
    next[..next.len() - next.trim_start().len()].to_string()
}

/// (tag, line) pairs of the changed lines between `a` and `b`.
fn changes(a: &str, b: &str) -> Vec<(ChangeTag, String)> {
    TextDiff::from_lines(a, b)
        .iter_all_changes()
        .filter(|c| c.tag() != ChangeTag::Equal)
        .map(|c| (c.tag(), c.value().to_string()))
        .collect()
}

#[test]
fn corpus_round_trips_byte_identical() {
    for (name, text) in corpus() {
        let d = parse(&name, &text);
        assert_eq!(d.to_xml(), text, "{name}: round trip differs");
        assert_eq!(d.name(d.root()), "domain", "{name}");
        // re-parsing the output gives the same again
        assert_eq!(parse(&name, &d.to_xml()).to_xml(), text);
    }
}

#[test]
fn corpus_set_attr_touches_one_line() {
    for (name, text) in corpus() {
        // new attribute on the deepest, last element
        let mut d = parse(&name, &text);
        let els = all_elements(&d);
        let target = *els.iter().rev().max_by_key(|&&e| depth(&d, e)).unwrap();
        d.set_attr(target, "kvmtune", "a&b");
        let out = d.to_xml();
        assert_eq!(out.lines().count(), text.lines().count(), "{name}");
        let ch = changes(&text, &out);
        assert_eq!(ch.len(), 2, "{name}: {ch:?}");
        let (old, new) = (&ch[0].1, &ch[1].1);
        let added = if new.contains(" kvmtune='a&amp;b'") {
            " kvmtune='a&amp;b'"
        } else {
            " kvmtune=\"a&amp;b\""
        };
        assert_eq!(&new.replacen(added, "", 1), old, "{name}");
        assert_eq!(
            parse(&name, &out).attr(target, "kvmtune").as_deref(),
            Some("a&b")
        );

        // existing attribute of the first element that has one, changed in place
        let mut d = parse(&name, &text);
        let el = *all_elements(&d)
            .iter()
            .find(|&&e| !d.attrs(e).is_empty() && e != d.root())
            .unwrap();
        let (an, av) = d.attrs(el)[0].clone();
        d.set_attr(el, &an, "changed");
        let out = d.to_xml();
        let ch = changes(&text, &out);
        assert_eq!(ch.len(), 2, "{name}: {ch:?}");
        assert!(
            ch[1].1.contains(&format!("{an}='changed'"))
                || ch[1].1.contains(&format!("{an}=\"changed\"")),
            "{name}: {ch:?}"
        );
        let d2 = parse(&name, &out);
        assert_eq!(d2.attrs(el)[0], (an.clone(), "changed".to_string()));
        assert_ne!(av, "changed");

        // removing that attribute touches the same single line
        let mut d = parse(&name, &text);
        d.remove_attr(el, &an);
        let out = d.to_xml();
        let ch = changes(&text, &out);
        assert_eq!(ch.len(), 2, "{name}: {ch:?}");
        assert!(!ch[1].1.contains(&format!(" {an}=")), "{name}: {ch:?}");
    }
}

#[test]
fn corpus_set_text_touches_one_line() {
    for (name, text) in corpus() {
        let mut d = parse(&name, &text);
        let mem = d
            .child(d.root(), "memory")
            .or_else(|| d.child(d.root(), "name"))
            .unwrap();
        let before = d.text(mem);
        d.set_text(mem, "12345");
        let out = d.to_xml();
        let ch = changes(&text, &out);
        assert_eq!(ch.len(), 2, "{name}: {ch:?}");
        assert_eq!(ch[1].1.replacen("12345", &before, 1), ch[0].1, "{name}");
        assert_eq!(parse(&name, &out).text(mem), "12345");
    }
}

#[test]
fn corpus_append_only_inserts_lines() {
    for (name, text) in corpus() {
        // into a non-empty parent (devices), at depth 1 and 2
        let mut d = parse(&name, &text);
        let root = d.root();
        let devices = d.child(root, "devices").unwrap();
        let n = d.append_element(devices, "kvmtune");
        d.set_attr(n, "x", "1");
        let os = d.child(root, "os").unwrap();
        d.append_element(os, "kvmtune2");
        d.append_element(root, "kvmtune3");
        let out = d.to_xml();
        let ch = changes(&text, &out);
        assert!(
            ch.iter().all(|(t, _)| *t == ChangeTag::Insert),
            "{name}: {ch:?}"
        );
        let mut inserted: Vec<&str> = ch.iter().map(|(_, l)| l.as_str()).collect();
        inserted.sort();
        let mut expected = vec![
            format!("{}<kvmtune x='1'/>\n", child_indent(&text, "devices")),
            format!("{}<kvmtune2/>\n", child_indent(&text, "os")),
            format!("{}<kvmtune3/>\n", child_indent(&text, "domain")),
        ];
        expected.sort();
        assert_eq!(inserted, expected, "{name}");

        // into a leaf (self-closing or text-only elements are both common)
        let mut d = parse(&name, &text);
        let leaf = *all_elements(&d)
            .iter()
            .find(|&&e| depth(&d, e) == 2 && d.elements(e).is_empty() && d.text(e).is_empty())
            .unwrap();
        let leaf_name = d.name(leaf).to_string();
        let c = d.append_element(leaf, "child");
        d.set_attr(c, "k", "v");
        let out = d.to_xml();
        let ch = changes(&text, &out);
        let removed: Vec<&str> = ch
            .iter()
            .filter(|(t, _)| *t == ChangeTag::Delete)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(removed.len(), 1, "{name}: {ch:?}");
        assert!(
            removed[0]
                .trim_start()
                .starts_with(&format!("<{leaf_name}")),
            "{name}"
        );
        let added: Vec<&str> = ch
            .iter()
            .filter(|(t, _)| *t == ChangeTag::Insert)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(added.len(), 3, "{name}: {ch:?}");
        let ind = &removed[0][..removed[0].len() - removed[0].trim_start().len()];
        assert_eq!(added[1], format!("{ind}  <child k='v'/>\n"), "{name}");
        assert_eq!(added[2], format!("{ind}</{leaf_name}>\n"), "{name}");
        parse(&name, &out);
    }
}

#[test]
fn corpus_remove_only_deletes_element_lines() {
    for (name, text) in corpus() {
        let mut d = parse(&name, &text);
        let devices = d.child(d.root(), "devices").unwrap();
        // a multi-line element (one with element children) if any, else the last
        let kids = d.elements(devices);
        let victim = *kids
            .iter()
            .find(|&&e| !d.elements(e).is_empty())
            .unwrap_or(kids.last().unwrap());
        let vname = d.name(victim).to_string();
        d.remove(victim);
        let out = d.to_xml();
        assert!(
            !out.contains("\n\n") || text.contains("\n\n"),
            "{name}: blank line"
        );
        // `out` is `text` with one contiguous block of lines removed, and that
        // block is exactly the element (the diff alignment may be ambiguous
        // when siblings look alike, so check every possible cut)
        let a: Vec<&str> = text.split_inclusive('\n').collect();
        let b: Vec<&str> = out.split_inclusive('\n').collect();
        assert!(b.len() < a.len(), "{name}");
        let k = a.len() - b.len();
        let ok = (0..=b.len()).any(|i| {
            a[..i] == b[..i]
                && a[i + k..] == b[i..]
                && a[i].trim_start().starts_with(&format!("<{vname}"))
                && (a[i].trim_end().ends_with("/>") && k == 1
                    || a[i + k - 1].trim() == format!("</{vname}>"))
        });
        assert!(ok, "{name}: removal of <{vname}> changed other lines");
        // and the line diff consists of deletions only
        let ch = changes(&text, &out);
        assert!(
            ch.iter().all(|(t, _)| *t == ChangeTag::Delete),
            "{name}: {ch:?}"
        );
        assert!(!d.elements(devices).contains(&victim));
        let d2 = parse(&name, &out);
        let devices2 = d2.child(d2.root(), "devices").unwrap();
        assert_eq!(d2.elements(devices2).len(), kids.len() - 1, "{name}");
    }
}

#[test]
fn libvirt_features_round_trip() {
    let samples = [
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- generated -->\n<domain type=\"kvm\" id=\"1\">\n  <name>vm</name>\n</domain>\n",
        "<domain type='kvm'>\n  <metadata>\n    <libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\n      <libosinfo:os id=\"http://microsoft.com/win/10\"/>\n    </libosinfo:libosinfo>\n  </metadata>\n</domain>",
        "<domain type='kvm'><description><![CDATA[a <b> & c]]></description><title>A &amp; B &#x263A; &#65;</title><!-- c --><?pi data?></domain>",
        "<!DOCTYPE domain [\n<!ENTITY foo \"bar\">\n]>\n<domain x='&foo;' y=\"it's\" z='say \"hi\"'>&foo;</domain>\n\n",
    ];
    for s in samples {
        let d = Document::parse(s).unwrap();
        assert_eq!(d.to_xml(), s);
    }
    let d = Document::parse(samples[1]).unwrap();
    let md = d.child(d.root(), "metadata").unwrap();
    let lo = d.child(md, "libosinfo:libosinfo").unwrap();
    assert_eq!(
        d.attr(lo, "xmlns:libosinfo").as_deref(),
        Some("http://libosinfo.org/xmlns/libvirt/domain/1.0")
    );
    let d = Document::parse(samples[2]).unwrap();
    assert_eq!(
        d.text(d.child(d.root(), "description").unwrap()),
        "a <b> & c"
    );
    assert_eq!(
        d.text(d.child(d.root(), "title").unwrap()),
        "A & B \u{263A} A"
    );
    let d = Document::parse(samples[3]).unwrap();
    assert_eq!(d.attr(d.root(), "y").as_deref(), Some("it's"));
    assert_eq!(d.attr(d.root(), "z").as_deref(), Some("say \"hi\""));

    // editing around namespaced metadata leaves it untouched
    let mut d = Document::parse(samples[1]).unwrap();
    let r = d.root();
    let vcpu = d.append_element(r, "vcpu");
    d.set_text(vcpu, "4");
    d.set_attr(vcpu, "placement", "static");
    assert_eq!(
        d.to_xml(),
        "<domain type='kvm'>\n  <metadata>\n    <libosinfo:libosinfo xmlns:libosinfo=\"http://libosinfo.org/xmlns/libvirt/domain/1.0\">\n      <libosinfo:os id=\"http://microsoft.com/win/10\"/>\n    </libosinfo:libosinfo>\n  </metadata>\n  <vcpu placement='static'>4</vcpu>\n</domain>"
    );
}

#[test]
fn malformed_inputs_are_errors() {
    let cases: Vec<String> = vec![
        "".into(),
        "<a>".into(),
        "<a></b>".into(),
        "<a/><b/>".into(),
        "<<".into(),
        "<a x='1></a>".into(),
        "<a><!-- unterminated </a>".into(),
        "<a><![CDATA[x</a>".into(),
        "<domain></domain><domain></domain>".into(),
        "<a>".repeat(10_000),
        format!("{}{}", "<a>".repeat(10_000), "</a>".repeat(10_000)),
    ];
    for s in &cases {
        let r = Document::parse(s);
        assert!(r.is_err(), "accepted {:?}", &s[..s.len().min(60)]);
    }
    assert!(matches!(
        Document::parse(&"<a>".repeat(10_000)),
        Err(XmlError::TooDeep { .. })
    ));
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(rng: &mut Rng, src: &str) -> String {
    const PIECES: &[&str] = &[
        "<",
        ">",
        "/",
        "/>",
        "</",
        "='",
        "\"",
        "'",
        "&",
        "&amp;",
        ";",
        "<!--",
        "-->",
        "<![CDATA[",
        "]]>",
        "<?",
        "?>",
        " ",
        "\n",
        "x",
        ":",
        "é",
        "\u{0}",
        "<a>",
        "</a>",
        "=",
        "&#x;",
        "&#0;",
    ];
    let mut s = src.to_string();
    match rng.index(6) {
        0 => {
            let cut = floor_boundary(&s, rng.index(s.len() + 1));
            s.truncate(cut);
        }
        1 => {
            let a = floor_boundary(&s, rng.index(s.len() + 1));
            let b = floor_boundary(&s, a + rng.index(40));
            s.replace_range(a..b, "");
        }
        2 => {
            for _ in 0..1 + rng.index(4) {
                let a = floor_boundary(&s, rng.index(s.len() + 1));
                s.insert_str(a, PIECES[rng.index(PIECES.len())]);
            }
        }
        3 => {
            let a = floor_boundary(&s, rng.index(s.len() + 1));
            let b = floor_boundary(&s, a + rng.index(200));
            let chunk = s[a..b].to_string();
            let c = floor_boundary(&s, rng.index(s.len() + 1));
            s.insert_str(c, &chunk);
        }
        4 => {
            // random bytes, made UTF-8
            let n = rng.index(64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            s = String::from_utf8_lossy(&bytes).into_owned();
        }
        _ => {
            // random soup of XML-ish pieces
            s.clear();
            for _ in 0..rng.index(30) {
                s.push_str(PIECES[rng.index(PIECES.len())]);
            }
        }
    }
    s
}

#[test]
fn fuzz_never_panics_and_round_trips() {
    let files = corpus();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut accepted = 0;
    for i in 0..2000 {
        let (_, src) = &files[i % files.len()];
        let input = mutate(&mut rng, src);
        if let Ok(mut d) = Document::parse(&input) {
            accepted += 1;
            assert_eq!(d.to_xml(), input, "case {i}");
            // edits on whatever was accepted keep the document well-formed
            let r = d.root();
            d.set_attr(r, "kvmtune", "<&'\">");
            let n = d.append_element(r, "kvmtune");
            d.set_text(n, "a<b");
            if let Some(first) = d.elements(r).first().copied() {
                d.remove(first);
            }
            let out = d.to_xml();
            let d2 = Document::parse(&out)
                .unwrap_or_else(|e| panic!("case {i}: edited output does not parse: {e}\n{out}"));
            assert_eq!(d2.attr(d2.root(), "kvmtune").as_deref(), Some("<&'\">"));
        }
    }
    // some mutations (e.g. inserted whitespace) stay well-formed
    assert!(accepted > 0);
}
