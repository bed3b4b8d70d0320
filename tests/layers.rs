//! The crate's structure as the issue defines it: the top-level modules form layers without
//! cycles, no function is longer than 150 lines, and `main.rs` is glue.
//!
//! Reads the source tree (code only: comments and string literals do not count as uses).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file with comments, string and char literals blanked out, and the unit
/// test module (`#[cfg(test)] mod tests`) cut off.
fn code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i + 1 < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'\'' && (b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\')) {
            // A char literal (`'"'`, `'\''`, `'\u{1F}'`); a lifetime has no closing quote.
            let close = b[i + 2..]
                .iter()
                .position(|c| *c == b'\'')
                .map_or(1, |p| p + 3);
            i += close;
            out.push_str("' '");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    match out.find("#[cfg(test)]\nmod tests") {
        Some(p) => out[..p].to_string(),
        None => out,
    }
}

fn top_module(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).ok()?;
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let m = first.trim_end_matches(".rs").to_string();
    (m != "main" && m != "lib" && m != "bin").then_some(m)
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rs_files(&src(), &mut files);
    let mods: BTreeSet<String> = files.iter().filter_map(|f| top_module(f)).collect();
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(m) = top_module(f) else { continue };
        let c = code(&std::fs::read_to_string(f).unwrap());
        let deps = g.entry(m.clone()).or_default();
        for (i, _) in c.match_indices("crate::") {
            let rest = &c[i + 7..];
            let name: String = rest
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            if name.is_empty() && rest.starts_with('{') {
                let end = rest.find('}').unwrap_or(rest.len());
                for part in rest[1..end].split(',') {
                    let n: String = part
                        .trim()
                        .chars()
                        .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                        .collect();
                    if mods.contains(&n) && n != m {
                        deps.insert(n);
                    }
                }
            } else if mods.contains(&name) && name != m {
                deps.insert(name);
            }
        }
    }
    g
}

/// A cycle through `start`, if any (depth-first search).
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        n: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(p) = path.iter().position(|x| x == n) {
            let mut c = path[p..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(g, d, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(g, n, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn top_level_modules_have_no_cycles() {
    let g = graph();
    assert!(g.len() > 10, "too few modules found: {g:?}");
    if let Some(c) = cycle(&g) {
        panic!("module cycle: {}", c.join(" → "));
    }
}

#[test]
fn the_layers_point_down() {
    let g = graph();
    // The order: each may use only what is left of it.
    let layers = [
        "model", "config", "desired", "observe", "pinning", "lint", "plan", "apply", "render",
        "commands",
    ];
    for (i, upper) in layers.iter().enumerate() {
        for lower in &layers[..i] {
            let up = g.get(*lower).is_some_and(|d| d.contains(*upper));
            assert!(!up, "{lower} uses {upper}, a layer above it");
        }
    }
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&g).map(|c| c.len()), Some(4));
    let c = code("use x; // crate::plan\nlet s = \"crate::apply\";\n");
    assert!(!c.contains("crate::"), "{c}");
}

/// `(file, line, name, length)` of every function longer than `max` lines.
fn long_functions(max: usize) -> Vec<(String, usize, String, usize)> {
    let mut files = Vec::new();
    rs_files(&src(), &mut files);
    let mut out = Vec::new();
    for f in files {
        let c = code(&std::fs::read_to_string(&f).unwrap());
        let lines: Vec<&str> = c.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            let is_fn = [
                "fn ",
                "pub fn ",
                "pub(crate) fn ",
                "const fn ",
                "pub const fn ",
            ]
            .iter()
            .any(|p| t.starts_with(p));
            if !is_fn {
                continue;
            }
            let indent = l.len() - t.len();
            let name: String = t
                .split("fn ")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // The function ends at the first line with its own indentation that is `}`.
            let end = lines[i + 1..].iter().position(|m| {
                let mt = m.trim_start();
                m.len() - mt.len() == indent && mt.starts_with('}')
            });
            if let Some(e) = end {
                let len = e + 2;
                if len > max && !t.trim_end().ends_with(';') {
                    let rel = f.strip_prefix(src()).unwrap().display().to_string();
                    out.push((rel, i + 1, name, len));
                }
            }
        }
    }
    out
}

#[test]
fn no_function_is_over_150_lines() {
    let long = long_functions(150);
    assert!(long.is_empty(), "functions over 150 lines: {long:#?}");
    // The scanner sees functions at all.
    assert!(!long_functions(20).is_empty());
}

#[test]
fn main_is_glue() {
    let main = std::fs::read_to_string(src().join("main.rs")).unwrap();
    let code_lines = code(&main).lines().filter(|l| !l.trim().is_empty()).count();
    assert!(code_lines <= 25, "main.rs has {code_lines} lines of code");
}
