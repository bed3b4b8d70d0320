//! Which configuration files apply to a host: `hosts:` selectors read on their own, and the
//! fleet directory's layout (`--host-config DIR`: shared `*.yaml`, `groups/<group>.yaml`,
//! `hosts/<hostname>.yaml`).
//!
//! Invariant: a file meant for other hosts cannot break this one. Per-host and per-group
//! files are selected by path and never opened on other hosts; a shared file's `hosts:`
//! selector is read first, from the YAML events up to the end of the selector only, so a
//! syntax error after it breaks only the hosts it selects. A selector that cannot be read (a
//! syntax error before or inside it, a tag, an alias) is not guessed at: the file is read
//! in full on every host, which reports the error there (it fails closed). `validate` over
//! the repository ([`repository_paths`]) opens every file, whatever it selects.

use std::path::{Path, PathBuf};

use yaml_rust2::parser::{Event, Parser};

use super::source::SourceFile;
use super::{expand_paths, glob_match, ConfigError, ConfigErrors};

/// What a file's top-level `hosts:` says, read without the rest of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// No top-level `hosts:` key: the file applies to every host.
    All,
    /// `hosts:` is a list of plain globs.
    Hosts(Vec<String>),
    /// The selector could not be read on its own (syntax error before or inside it, or it
    /// is not a plain list): the full parse decides and reports.
    Unreadable,
}

impl Selector {
    /// Whether the file is known to be meant for other hosts only.
    pub fn excludes(&self, hostname: &str) -> bool {
        matches!(self, Selector::Hosts(globs) if !globs.iter().any(|g| glob_match(g, hostname)))
    }

    /// Whether the file names this host in its selector.
    pub fn selects(&self, hostname: &str) -> bool {
        matches!(self, Selector::Hosts(globs) if globs.iter().any(|g| glob_match(g, hostname)))
    }
}

/// Reads the top-level `hosts:` of a file from its YAML events, stopping right after it.
pub fn selector(file: &SourceFile) -> Selector {
    // A cheap test first: only a file with the word can have the key.
    if !file.text.contains("hosts") {
        return Selector::All;
    }
    if file.text.contains('\0') {
        return Selector::Unreadable;
    }
    let mut parser = Parser::new_from_str(&file.text);
    let mut next = || parser.next_token().ok().map(|(ev, _)| ev);
    // StreamStart, then DocumentStart and the top-level mapping (anything else selects all).
    let mut started = false;
    loop {
        match next() {
            None => return Selector::Unreadable,
            Some(Event::StreamStart) | Some(Event::Nothing) => {}
            Some(Event::DocumentStart) => started = true,
            Some(Event::MappingStart(..)) if started => break,
            Some(_) => return Selector::All,
        }
    }
    loop {
        // A key of the top-level mapping, or its end.
        let key = match next() {
            None => return Selector::Unreadable,
            Some(Event::MappingEnd) => return Selector::All,
            Some(Event::Scalar(k, _, _, _)) => k,
            Some(_) => return Selector::Unreadable,
        };
        if key == "hosts" {
            return read_globs(&mut next);
        }
        if !skip_value(&mut next) {
            return Selector::Unreadable;
        }
    }
}

/// The value of `hosts:`: a sequence of untagged, unanchored scalars.
fn read_globs(next: &mut impl FnMut() -> Option<Event>) -> Selector {
    match next() {
        Some(Event::SequenceStart(0, None)) => {}
        _ => return Selector::Unreadable,
    }
    let mut globs = Vec::new();
    loop {
        match next() {
            Some(Event::SequenceEnd) => return Selector::Hosts(globs),
            Some(Event::Scalar(g, _, 0, None)) => globs.push(g),
            _ => return Selector::Unreadable,
        }
    }
}

/// Skips one value (a scalar, an alias, or a whole collection); false on a syntax error.
fn skip_value(next: &mut impl FnMut() -> Option<Event>) -> bool {
    let mut depth = 0usize;
    loop {
        match next() {
            None | Some(Event::StreamEnd) => return false,
            Some(Event::SequenceStart(..) | Event::MappingStart(..)) => depth += 1,
            Some(Event::SequenceEnd | Event::MappingEnd) => {
                if depth == 0 {
                    return false;
                }
                depth -= 1;
            }
            Some(_) => {}
        }
        if depth == 0 {
            return true;
        }
    }
}

/// The files a fleet directory gives one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// Every file to read, in merge order: shared, then groups (in the order given), then
    /// the host's own.
    pub paths: Vec<PathBuf>,
    /// The group and host files among them (the files selected for this host by path).
    pub own: Vec<PathBuf>,
}

/// `*.yaml` / `*.yml` directly in `dir`, sorted (none when there are none).
fn yaml_in(dir: &Path) -> Result<Vec<PathBuf>, ConfigErrors> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let any = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::Read {
            file: dir.to_path_buf(),
            reason: e.to_string(),
        })?
        .filter_map(|e| e.ok())
        .any(|e| {
            e.path().is_file()
                && matches!(
                    e.path().extension().and_then(|x| x.to_str()),
                    Some("yaml" | "yml")
                )
        });
    if any {
        expand_paths(&[dir.to_path_buf()])
    } else {
        Ok(Vec::new())
    }
}

/// `dir/<name>.yaml` (or `.yml`) when it exists and `name` is one path component.
fn named(dir: &Path, name: &str) -> Vec<PathBuf> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Vec::new();
    }
    ["yaml", "yml"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .filter(|f| f.is_file())
        .collect()
}

fn not_a_dir(dir: &Path) -> ConfigErrors {
    ConfigError::Read {
        file: dir.to_path_buf(),
        reason: "not a directory".into(),
    }
    .into()
}

/// The files of a fleet directory for `hostname` in `groups`: every *.yaml directly in
/// `dir` (shared), `dir/groups/<group>.yaml` for each group that has one, and
/// `dir/hosts/<hostname>.yaml` when it exists. Files of other hosts and groups are not
/// opened. None at all is not an error here: [`unselected`] says so.
pub fn layout(dir: &Path, hostname: &str, groups: &[String]) -> Result<Layout, ConfigErrors> {
    if !dir.is_dir() {
        return Err(not_a_dir(dir));
    }
    let mut l = Layout {
        paths: yaml_in(dir)?,
        own: Vec::new(),
    };
    for g in groups {
        l.own.extend(named(&dir.join("groups"), g));
    }
    l.own.extend(named(&dir.join("hosts"), hostname));
    l.paths.extend(l.own.iter().cloned());
    Ok(l)
}

/// Every file of a fleet directory, for `validate`: (shared files, per-group and per-host
/// files).
pub fn repository_paths(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), ConfigErrors> {
    if !dir.is_dir() {
        return Err(not_a_dir(dir));
    }
    let mut own = yaml_in(&dir.join("groups"))?;
    own.extend(yaml_in(&dir.join("hosts"))?);
    Ok((yaml_in(dir)?, own))
}

/// Why nothing selects this host, when the configuration selects by host at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no configuration applies to host `{hostname}`: {why}{rest}")]
pub struct Unselected {
    pub hostname: String,
    pub why: String,
    pub rest: String,
}

/// `Some` when the configuration selects files per host (a fleet directory, or `hosts:`
/// selectors) and none selects `hostname`: no group or host file of its own, no selector
/// naming it (a typo in a hostname leaves a host unmanaged otherwise).
pub fn unselected(
    sources: &[SourceFile],
    layout: Option<&Layout>,
    hostname: &str,
) -> Option<Unselected> {
    let selectors: Vec<Selector> = sources.iter().map(selector).collect();
    let by_selector = selectors.iter().any(|s| matches!(s, Selector::Hosts(_)));
    if layout.is_none() && !by_selector {
        return None; // a plain configuration, for whichever host runs it
    }
    if layout.is_some_and(|l| !l.own.is_empty()) || selectors.iter().any(|s| s.selects(hostname)) {
        return None;
    }
    let mut why = Vec::new();
    if layout.is_some() {
        why.push(format!("no hosts/{hostname}.yaml or groups/<group>.yaml"));
    }
    if by_selector {
        why.push("no file's `hosts:` matches it".to_string());
    }
    let shared = selectors
        .iter()
        .filter(|s| !matches!(s, Selector::Hosts(_)))
        .count();
    let rest = match shared {
        0 => String::new(),
        1 => " (only 1 shared file applies)".to_string(),
        n => format!(" (only {n} shared files apply)"),
    };
    Some(Unselected {
        hostname: hostname.into(),
        why: why.join(", "),
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(s: &str) -> Selector {
        selector(&SourceFile::from_text("t.yaml", s))
    }

    fn hosts(h: &[&str]) -> Selector {
        Selector::Hosts(h.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_selector_is_read_up_to_its_end_only() {
        assert_eq!(sel("host: {}\n"), Selector::All);
        assert_eq!(
            sel("hosts: [hv-a-13]\nhost: [unclosed\n"),
            hosts(&["hv-a-13"])
        );
        assert_eq!(
            sel("# for two\nhost:\n  sysctl: { vm.swappiness: 1 }\nhosts:\n  - a\n  - 'b*'\nguests: {x: : :}\n"),
            hosts(&["a", "b*"])
        );
        // After the selector, the rest is not read: a tab or a bad indent there is fine.
        assert_eq!(sel("hosts: [a]\n\tbad: x\n  - y\n"), hosts(&["a"]));
        assert!(sel("hosts: [a]\nhost: [\n").excludes("b"));
        assert!(!sel("hosts: [a]\nhost: [\n").excludes("a"));
    }

    #[test]
    fn a_selector_that_cannot_be_read_alone_is_not_guessed() {
        // Syntax error before or inside the selector: read in full everywhere.
        assert_eq!(sel("host: [\nhosts: [a]\n"), Selector::Unreadable);
        assert_eq!(sel("hosts: [a, b\n"), Selector::Unreadable);
        assert_eq!(sel("hosts: a\n"), Selector::Unreadable);
        assert_eq!(sel("hosts: !x [a]\n"), Selector::Unreadable);
        assert_eq!(sel("x: &a [b]\nhosts: *a\n"), Selector::Unreadable);
        assert_eq!(sel("hosts: [[a]]\n"), Selector::Unreadable);
        assert_eq!(sel("hosts: [a]\0\n"), Selector::Unreadable);
        for s in [Selector::Unreadable, Selector::All] {
            assert!(!s.excludes("a"));
        }
        // Not a mapping at the top: no selector.
        assert_eq!(sel("- hosts\n"), Selector::All);
        assert_eq!(sel("hosts\n"), Selector::All);
    }

    #[test]
    fn unselected_only_where_selection_is_used() {
        let f = |t: &str| SourceFile::from_text("t.yaml", t);
        let plain = [f("host: { sysctl: { vm.swappiness: 1 } }\n")];
        assert_eq!(unselected(&plain, None, "hv-1"), None);
        let sel = [plain[0].clone(), f("hosts: [hv-*]\nhost: {}\n")];
        assert_eq!(unselected(&sel, None, "hv-1"), None);
        let e = unselected(&sel, None, "hb-1").unwrap();
        assert_eq!(
            e.to_string(),
            "no configuration applies to host `hb-1`: no file's `hosts:` matches it (only 1 shared file applies)"
        );
        let own = Layout {
            paths: vec![],
            own: vec![PathBuf::from("d/hosts/hv-1.yaml")],
        };
        assert_eq!(unselected(&plain, Some(&own), "hv-1"), None);
        let e = unselected(&plain, Some(&Layout::default()), "hv-9").unwrap();
        assert!(e.to_string().contains("no hosts/hv-9.yaml"), "{e}");
    }
}
