//! Reading configuration files safely and remembering where every key came from.
//!
//! Invariant: a file reaches serde only after it passed the guards here: at most
//! [`MAX_FILE_BYTES`], no duplicate mapping keys, alias expansion bounded by
//! [`MAX_EXPANDED_NODES`]. Every key path of every loaded file has a [`Loc`] in the
//! [`SourceMap`], so later errors can point at file:line:column.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use yaml_rust2::parser::{Event, Parser};

/// Largest configuration file accepted, in bytes.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;
/// Largest number of YAML nodes a file may expand to once aliases are resolved.
pub const MAX_EXPANDED_NODES: u64 = 200_000;
/// Largest number of scalar bytes a file may expand to once aliases are resolved (an aliased
/// 2 MB scalar counts 2 MB each time).
pub const MAX_EXPANDED_BYTES: u64 = 4 * MAX_FILE_BYTES;

/// A position in a configuration file (1-based line and column).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Loc {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.col)
    }
}

/// A key path from the document root, one segment per mapping key or sequence index.
pub type KeyPath = Vec<String>;

/// Renders a key path the way users write it: `guests.db1.vcpu.count`.
pub fn dotted(path: &[String]) -> String {
    let p = path.join(".");
    if p.chars().any(char::is_control) {
        // Keys are echoed in messages: never raw escape sequences or NULs.
        p.chars()
            .flat_map(|c| {
                if c.is_control() {
                    c.escape_default().collect::<Vec<_>>()
                } else {
                    vec![c]
                }
            })
            .collect()
    } else {
        p
    }
}

/// Where each key path was defined.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    locs: BTreeMap<KeyPath, Loc>,
}

impl SourceMap {
    /// The location of `path`, or of its nearest ancestor that has one.
    pub fn find(&self, path: &[String]) -> Option<&Loc> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.locs.get(&path[..n]))
    }

    pub fn get(&self, path: &[String]) -> Option<&Loc> {
        self.locs.get(path)
    }

    pub(crate) fn insert(&mut self, path: KeyPath, loc: Loc) {
        self.locs.insert(path, loc);
    }

    pub fn iter(&self) -> impl Iterator<Item = (&KeyPath, &Loc)> {
        self.locs.iter()
    }
}

/// A problem with configuration input. Each renders as one line starting with its location.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {reason}")]
    Read { file: PathBuf, reason: String },
    #[error("{file}: file is larger than the {max}-byte limit for a configuration file")]
    TooLarge { file: PathBuf, max: u64 },
    #[error("{loc}: YAML syntax error: {msg}")]
    Syntax { loc: Loc, msg: String },
    #[error("{loc}: {path}: duplicate key `{key}` (first defined at {first})")]
    DuplicateKey {
        loc: Loc,
        path: String,
        key: String,
        first: Box<Loc>,
    },
    #[error("{loc}: alias expansion exceeds {max} nodes (an alias bomb?); expand it by hand")]
    AliasBomb { loc: Loc, max: u64 },
    #[error("{loc}: the file has more than {max} YAML nodes; split it into several files")]
    TooManyNodes { loc: Loc, max: u64 },
    #[error(
        "{loc}: alias expansion exceeds {max} bytes of values (an alias bomb?); expand it by hand"
    )]
    AliasBytes { loc: Loc, max: u64 },
    #[error("{loc}: {path}: {msg}")]
    Invalid { loc: Loc, path: String, msg: String },
    #[error("{file}: {path}: {msg}")]
    Unlocated {
        file: PathBuf,
        path: String,
        msg: String,
    },
    #[error("{loc}: {path}: defined again (first defined at {first})")]
    Conflict {
        loc: Loc,
        path: String,
        first: Box<Loc>,
    },
}

/// A file read into memory under the size limit.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: PathBuf,
    pub text: String,
}

impl SourceFile {
    pub fn read(path: &Path) -> Result<SourceFile, ConfigError> {
        let read_err = |e: std::io::Error| ConfigError::Read {
            file: path.to_path_buf(),
            reason: e.to_string(),
        };
        let file = std::fs::File::open(path).map_err(read_err)?;
        let mut buf = Vec::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
        if buf.len() as u64 > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                file: path.to_path_buf(),
                max: MAX_FILE_BYTES,
            });
        }
        let text = String::from_utf8(buf).map_err(|e| ConfigError::Read {
            file: path.to_path_buf(),
            reason: format!("not UTF-8 (byte {})", e.utf8_error().valid_up_to()),
        })?;
        Ok(SourceFile {
            path: path.to_path_buf(),
            text,
        })
    }

    pub fn from_text(path: impl Into<PathBuf>, text: impl Into<String>) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    fn loc(&self, line: usize, col: usize) -> Loc {
        Loc {
            file: self.path.clone(),
            line,
            col,
        }
    }

    /// A NUL byte, located where it is (the YAML scanner reports it elsewhere).
    fn no_nul(&self) -> Result<(), ConfigError> {
        let Some(i) = self.text.find('\0') else {
            return Ok(());
        };
        let before = &self.text[..i];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Err(ConfigError::Syntax {
            loc: self.loc(line, col),
            msg: "a NUL byte is not allowed in YAML".into(),
        })
    }

    /// Scans the file's YAML events: records the location of every key path, rejects
    /// duplicate keys and bounds alias expansion. Does not build values.
    pub fn index(&self) -> Result<SourceMap, ConfigError> {
        enum Frame {
            Map {
                key: Option<String>,
                seen: BTreeMap<String, Loc>,
            },
            Seq {
                next: usize,
            },
        }
        let mut map = SourceMap::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut path: KeyPath = Vec::new();
        // (anchor id, node counter at start) for anchored collections
        let mut anchored: Vec<(usize, usize, u64, u64)> = Vec::new();
        let mut sizes: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
        let mut nodes: u64 = 0;
        let mut bytes: u64 = 0;
        let mut aliases = false;
        let mut docs = 0usize;
        self.no_nul()?;
        let mut parser = Parser::new_from_str(&self.text);
        loop {
            let (ev, mark) = parser.next_token().map_err(|e| ConfigError::Syntax {
                loc: self.loc(e.marker().line(), e.marker().col() + 1),
                msg: e.info().to_string(),
            })?;
            let loc = self.loc(mark.line(), mark.col() + 1);
            // Is this event a key of the enclosing mapping?
            let is_key = matches!(stack.last(), Some(Frame::Map { key: None, .. }));
            let ends_collection = matches!(ev, Event::SequenceEnd | Event::MappingEnd);
            let starts_node = matches!(
                ev,
                Event::Scalar(..)
                    | Event::SequenceStart(..)
                    | Event::MappingStart(..)
                    | Event::Alias(_)
            );
            if starts_node && !is_key {
                // A value: name its path segment.
                match stack.last_mut() {
                    Some(Frame::Seq { next }) => {
                        path.push(next.to_string());
                        *next += 1;
                        map.insert(path.clone(), loc.clone());
                    }
                    Some(Frame::Map { key: Some(k), .. }) => path.push(k.clone()),
                    _ => {}
                }
            }
            match ev {
                Event::StreamEnd => break,
                Event::DocumentStart => {
                    docs += 1;
                    if docs > 1 {
                        return Err(ConfigError::Syntax {
                            loc,
                            msg: "more than one YAML document in a file; split it into files"
                                .into(),
                        });
                    }
                }
                Event::Alias(id) => {
                    if is_key {
                        return Err(ConfigError::Syntax {
                            loc,
                            msg: "aliases are not allowed as mapping keys".into(),
                        });
                    }
                    aliases = true;
                    let (n, b) = sizes.get(&id).copied().unwrap_or((1, 0));
                    nodes += n;
                    bytes += b;
                }
                Event::Scalar(value, _, anchor, _) => {
                    nodes += 1;
                    bytes += value.len() as u64;
                    if anchor != 0 {
                        sizes.insert(anchor, (1, value.len() as u64));
                    }
                    if is_key {
                        if let Some(Frame::Map { key, seen }) = stack.last_mut() {
                            if let Some(first) = seen.get(&value) {
                                return Err(ConfigError::DuplicateKey {
                                    loc,
                                    path: dotted(&path),
                                    key: value,
                                    first: Box::new(first.clone()),
                                });
                            }
                            seen.insert(value.clone(), loc.clone());
                            let mut p = path.clone();
                            p.push(value.clone());
                            map.insert(p, loc);
                            *key = Some(value);
                        }
                        continue;
                    }
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    if is_key {
                        return Err(ConfigError::Syntax {
                            loc,
                            msg: "complex mapping keys are not supported".into(),
                        });
                    }
                    nodes += 1;
                    anchored.push((anchor, stack.len(), nodes, bytes));
                    stack.push(if matches!(ev, Event::SequenceStart(..)) {
                        Frame::Seq { next: 0 }
                    } else {
                        Frame::Map {
                            key: None,
                            seen: BTreeMap::new(),
                        }
                    });
                    if nodes > MAX_EXPANDED_NODES {
                        return Err(too_big(loc, aliases, nodes, bytes));
                    }
                    continue;
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                    if let Some((anchor, _, start, start_bytes)) = anchored.pop() {
                        if anchor != 0 {
                            sizes.insert(anchor, (nodes - start + 1, bytes - start_bytes));
                        }
                    }
                }
                _ => {}
            }
            if nodes > MAX_EXPANDED_NODES || bytes > MAX_EXPANDED_BYTES {
                return Err(too_big(loc, aliases, nodes, bytes));
            }
            // A value just ended: pop its segment and expect the next key.
            if starts_node || ends_collection {
                match stack.last_mut() {
                    Some(Frame::Map { key, .. }) if key.is_some() => {
                        *key = None;
                        path.pop();
                    }
                    Some(Frame::Seq { .. }) => {
                        path.pop();
                    }
                    _ => {}
                }
            }
        }
        Ok(map)
    }
}

/// Turns a serde_yaml error into a located one-line error.
pub fn serde_error(file: &Path, e: &serde_yaml::Error) -> ConfigError {
    // One line per error, whatever the input held (serde quotes offending values verbatim).
    let msg: String = e
        .to_string()
        .chars()
        .flat_map(|c| match c {
            '\n' => vec!['\\', 'n'],
            '\r' => vec!['\\', 'r'],
            c if c.is_control() => vec!['?'],
            c => vec![c],
        })
        .collect();
    // serde_yaml appends " at line L column C"; we print the location first instead.
    let msg = match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg,
    };
    // Untagged enums say only "did not match any variant"; say what was expected instead.
    let msg = [
        ("enum Scalar", "expected a number, true/false or a string"),
        (
            "enum RawCpuSet",
            "expected a CPU set such as \"0-3,^2\" or a CPU number",
        ),
        (
            "enum RawHugepagesBacking",
            "expected true, false or { size: 2M }",
        ),
    ]
    .iter()
    .find(|(k, _)| msg.contains(&format!("untagged {k}")))
    .map(|(k, v)| {
        let head = msg.split("data did not match").next().unwrap_or("");
        let _ = k;
        format!("{head}{v}")
    })
    .unwrap_or(msg);
    let msg = did_you_mean(msg);
    // A YAML tag (`!name value`) on a value the model reads as a choice: say so, not serde's
    // internals.
    let msg = msg.replace(
        "untagged and internally tagged enums do not support enum input",
        "YAML tags (`!name value`) are not supported here: write the plain value",
    );
    let (path, msg) = match msg.split_once(": ") {
        // serde_yaml writes sequence indexes as `list[0]`; kvmtune paths use `list.0`.
        Some((p, m)) if !p.contains(' ') => (p.replace('[', ".").replace(']', ""), m.to_string()),
        _ => (".".to_string(), msg),
    };
    match e.location() {
        Some(l) => ConfigError::Invalid {
            loc: Loc {
                file: file.to_path_buf(),
                line: l.line(),
                col: l.column(),
            },
            path,
            msg,
        },
        None => ConfigError::Unlocated {
            file: file.to_path_buf(),
            path,
            msg,
        },
    }
}

/// `unknown field `cont`, expected one of `count`, ...` gains ` (did you mean `count`?)`
/// when one allowed name is within two edits.
fn did_you_mean(msg: String) -> String {
    let Some(rest) = msg.split("unknown field `").nth(1) else {
        return msg;
    };
    let Some((got, allowed)) = rest.split_once('`') else {
        return msg;
    };
    let best = allowed
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|c| (edit_distance(got, c), c))
        .filter(|(d, _)| *d <= 2)
        .min();
    match best {
        Some((_, c)) => format!("{msg} (did you mean `{c}`?)"),
        None => msg,
    }
}

/// Levenshtein distance (short names only: both are field names).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) =
        (a.chars().take(64).collect(), b.chars().take(64).collect());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The error for a file past the expansion bounds: an alias bomb only when aliases made it so.
fn too_big(loc: Loc, aliases: bool, nodes: u64, bytes: u64) -> ConfigError {
    if bytes > MAX_EXPANDED_BYTES {
        ConfigError::AliasBytes {
            loc,
            max: MAX_EXPANDED_BYTES,
        }
    } else if aliases && nodes > MAX_EXPANDED_NODES {
        ConfigError::AliasBomb {
            loc,
            max: MAX_EXPANDED_NODES,
        }
    } else {
        ConfigError::TooManyNodes {
            loc,
            max: MAX_EXPANDED_NODES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(s: &str) -> Result<SourceMap, ConfigError> {
        SourceFile::from_text("t.yaml", s).index()
    }

    fn p(s: &str) -> KeyPath {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn records_key_locations() {
        let m = idx("host:\n  sysctl:\n    vm.swappiness: 10\nguests:\n  db1:\n    vcpu: { count: 4 }\n  web: {}\nlist:\n  - a: 1\n  - b: 2\n").unwrap();
        let at = |s: &str| m.get(&p(s)).map(|l| (l.line, l.col));
        assert_eq!(at("host"), Some((1, 1)));
        assert_eq!(at("host.sysctl"), Some((2, 3)));
        assert_eq!(
            m.get(&["host".into(), "sysctl".into(), "vm.swappiness".into()])
                .map(|l| l.line),
            Some(3)
        );
        assert_eq!(at("guests.db1.vcpu.count"), Some((6, 13)));
        assert_eq!(at("guests.web"), Some((7, 3)));
        assert_eq!(at("list.1.b"), Some((10, 5)));
    }

    #[test]
    fn duplicate_keys_name_both_places() {
        let e = idx("guests:\n  db1: {}\n  db1: {}\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yaml:3:3: guests: duplicate key `db1` (first defined at t.yaml:2:3)"
        );
        assert!(idx("a: {x: 1, x: 2}").is_err());
        assert!(idx("a: [{x: 1}, {x: 2}]").is_ok());
    }

    #[test]
    fn alias_bomb_is_bounded() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            s.push_str(&format!("a{i}: &a{i} [{prev}, {prev}, {prev}, {prev}, {prev}, {prev}, {prev}, {prev}, {prev}, {prev}]\n"));
        }
        let e = idx(&s).unwrap_err();
        assert!(matches!(e, ConfigError::AliasBomb { .. }), "{e}");
        // Small, legitimate aliases are fine.
        assert!(idx("x: &c { count: 2 }\ny: *c\n").is_ok());
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = idx("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
        assert!(idx("---\na: 1\n---\nb: 2\n").is_err());
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big.yaml");
        let line = "# padding padding padding padding padding padding padding padding\n";
        std::fs::write(&f, line.repeat((MAX_FILE_BYTES as usize / line.len()) + 2)).unwrap();
        let e = SourceFile::read(&f).err().unwrap();
        assert!(matches!(e, ConfigError::TooLarge { .. }), "{e}");
    }
}
