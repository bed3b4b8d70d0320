//! Loading configuration: files → guarded YAML → raw model → merged (validation into desired
//! state is [`crate::desired`]'s).
//!
//! Invariant: `load` either returns a fully validated [`Desired`] or every problem it found,
//! each as one line with file:line:column and key path. Nothing here touches the hypervisor
//! or the host.

pub mod raw;
pub mod select;
pub mod source;

use std::fmt;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use raw::RawConfig;
use source::{ConfigError, KeyPath, Loc, SourceFile, SourceMap};

/// All the problems found in the input, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            // Exactly one line per error, whatever the input quoted into the message.
            let line = e.to_string().replace('\n', "\\n").replace('\r', "\\r");
            write!(f, "{line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

/// Expands directories to their `*.yaml` / `*.yml` files (sorted), keeps files as given.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ConfigErrors> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let rd = std::fs::read_dir(p).map_err(|e| ConfigError::Read {
                file: p.clone(),
                reason: e.to_string(),
            })?;
            let mut files: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.is_file()
                        && matches!(f.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(ConfigError::Read {
                    file: p.clone(),
                    reason: "directory holds no *.yaml files".into(),
                }
                .into());
            }
            out.extend(files);
        } else {
            out.push(p.clone());
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Read {
            file: PathBuf::from("-"),
            reason: "no configuration files given".into(),
        }
        .into());
    }
    Ok(out)
}

/// One file after the guards and the type check.
struct Parsed {
    value: Value,
    map: SourceMap,
}

fn parse_file(file: &SourceFile) -> Result<Parsed, ConfigError> {
    let map = file.index()?;
    let value: Value = if file.text.trim().is_empty() {
        Value::Mapping(Default::default())
    } else {
        serde_yaml::from_str(&file.text).map_err(|e| source::serde_error(&file.path, &e))?
    };
    let value = match value {
        Value::Null => Value::Mapping(Default::default()),
        v => v,
    };
    Ok(Parsed { value, map })
}

/// One file's syntax and guards on its own (YAML, size, duplicate keys, alias bounds), for
/// `validate`, which reports every broken file whatever host it is for.
pub fn check_syntax(file: &SourceFile) -> Result<(), ConfigError> {
    parse_file(file).map(drop)
}

/// Located type errors: the typed parse is only run (per file, on its own text, where
/// serde_yaml knows lines and columns) once the merged document failed to convert.
fn typed_errors(files: &[SourceFile], merged_err: &serde_yaml::Error) -> ConfigErrors {
    let errors: Vec<ConfigError> = files
        .iter()
        .filter(|f| !f.text.trim().is_empty())
        .filter_map(typed_error)
        .collect();
    if errors.is_empty() {
        let first = files
            .first()
            .map(|f| f.path.as_path())
            .unwrap_or(Path::new("-"));
        ConfigErrors(vec![source::serde_error(first, merged_err)])
    } else {
        ConfigErrors(errors)
    }
}

/// The first type error of one file, with its key path (from `serde_path_to_error`) and its
/// location (serde_yaml's, else the key's in the file's source map).
fn typed_error(f: &SourceFile) -> Option<ConfigError> {
    let de = serde_yaml::Deserializer::from_str(&f.text);
    let e = match serde_path_to_error::deserialize::<_, RawConfig>(de) {
        Err(e) => e,
        // The text reads leniently (a plain `5` is also a string); the merged document is a
        // value, where `5` is a number: find the error there, by path.
        Ok(_) => {
            let v: Value = serde_yaml::from_str(&f.text).ok()?;
            serde_path_to_error::deserialize::<_, RawConfig>(v).err()?
        }
    };
    let path: KeyPath = e
        .path()
        .iter()
        .filter_map(|s| match s {
            serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
            serde_path_to_error::Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
        .collect();
    let inner = e.into_inner();
    let err = source::serde_error(&f.path, &inner);
    if path.is_empty() {
        return Some(err);
    }
    let msg = match &err {
        ConfigError::Invalid { msg, .. } | ConfigError::Unlocated { msg, .. } => msg.clone(),
        other => return Some(other.clone()),
    };
    let loc = match &err {
        ConfigError::Invalid { loc, .. } => Some(loc.clone()),
        _ => f.index().ok().and_then(|m| {
            (1..=path.len())
                .rev()
                .find_map(|n| m.find(&path[..n]).cloned())
        }),
    };
    let path = source::dotted(&path);
    Some(match loc {
        Some(loc) => ConfigError::Invalid { loc, path, msg },
        None => ConfigError::Unlocated {
            file: f.path.clone(),
            path,
            msg,
        },
    })
}

fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// Merges `add` (from a later file) into `into`. Mappings merge key by key; sequences
/// concatenate (their source locations are re-indexed); any other collision is a conflict.
fn merge(
    into: &mut Value,
    into_map: &mut SourceMap,
    add: Value,
    add_map: &SourceMap,
    path: &mut KeyPath,
    add_path: &mut KeyPath,
    errors: &mut Vec<ConfigError>,
) {
    match (into, add) {
        (Value::Mapping(a), Value::Mapping(b)) => {
            for (k, v) in b {
                let ks = key_str(&k);
                path.push(ks.clone());
                add_path.push(ks);
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, into_map, v, add_map, path, add_path, errors),
                    None => {
                        copy_locs(into_map, path, add_map, add_path);
                        a.insert(k, v);
                    }
                }
                path.pop();
                add_path.pop();
            }
        }
        (Value::Sequence(a), Value::Sequence(b)) => {
            for (i, v) in b.into_iter().enumerate() {
                path.push(a.len().to_string());
                add_path.push(i.to_string());
                copy_locs(into_map, path, add_map, add_path);
                a.push(v);
                path.pop();
                add_path.pop();
            }
        }
        (_, _) => {
            let unknown = || Loc {
                file: PathBuf::from("?"),
                line: 0,
                col: 0,
            };
            errors.push(ConfigError::Conflict {
                loc: add_map.find(add_path).cloned().unwrap_or_else(unknown),
                path: source::dotted(path),
                first: Box::new(into_map.find(path).cloned().unwrap_or_else(unknown)),
            });
        }
    }
}

/// Copies the locations of `add_path` and everything below it, re-rooted at `path`.
fn copy_locs(into: &mut SourceMap, path: &KeyPath, add: &SourceMap, add_path: &KeyPath) {
    for (k, loc) in add.subtree(add_path) {
        let mut p = path.clone();
        p.extend_from_slice(&k[add_path.len()..]);
        into.insert(p, loc.clone());
    }
}

/// Reads configuration files (directories expand to their *.yaml) as they are.
pub fn read_sources(paths: &[PathBuf]) -> Result<Vec<SourceFile>, ConfigErrors> {
    let files = expand_paths(paths)?;
    let mut sources = Vec::new();
    for f in &files {
        sources.push(SourceFile::read(f)?);
    }
    Ok(sources)
}

/// Shell-style glob: `*` any run of characters, `?` one character.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Whether the file's `hosts:` selects `hostname` (or it has none, or cannot be read).
pub fn applies_here(file: &SourceFile, hostname: &str) -> bool {
    !excluded(file, Some(hostname))
}

/// Whether the file's `hosts:` (read alone, before anything else of the file, see
/// [`select`]) excludes `hostname`.
fn excluded(file: &SourceFile, hostname: Option<&str>) -> bool {
    hostname.is_some_and(|h| select::selector(file).excludes(h))
}

/// `hosts:` that is not a list of hostname globs, located.
fn hosts_error(file: &SourceFile, p: &Parsed) -> Option<ConfigError> {
    let h = p.value.get("hosts")?;
    let ok = matches!(h, Value::Sequence(s) if s.iter().all(|g| g.is_string()));
    if ok {
        return None;
    }
    let path = vec!["hosts".to_string()];
    let loc = p.map.find(&path).cloned().unwrap_or(source::Loc {
        file: file.path.clone(),
        line: 0,
        col: 0,
    });
    Some(ConfigError::Invalid {
        loc,
        path: "hosts".into(),
        msg: "expected a list of hostname globs such as [\"hv-*\", db-host-1]".into(),
    })
}

fn applies_to(value: &Value, hostname: Option<&str>) -> bool {
    let (Some(h), Some(Value::Sequence(globs))) = (hostname, value.get("hosts")) else {
        return true;
    };
    let globs: Option<Vec<&str>> = globs.iter().map(|g| g.as_str()).collect();
    match globs {
        Some(globs) => globs.iter().any(|g| glob_match(g, h)),
        None => true, // not a list of strings: the typed check reports it
    }
}

/// Deep merge: `over`'s keys win; mappings merge key by key.
fn overlay(base: Value, over: Value) -> Value {
    match (base, over) {
        (Value::Mapping(mut b), Value::Mapping(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(bv) => overlay(bv, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (_, o) => o,
    }
}

/// Expands `guests.<g>.profile` with `profiles.<p>` (the guest's own keys win); profile keys
/// keep their locations under the guest for later errors.
fn expand_profiles(value: &mut Value, map: &mut SourceMap, errors: &mut Vec<ConfigError>) {
    let profiles = match value.get("profiles") {
        Some(Value::Mapping(p)) => p.clone(),
        _ => Default::default(),
    };
    let Some(Value::Mapping(guests)) = value.get_mut("guests") else {
        return;
    };
    for (gk, gv) in guests.iter_mut() {
        let gname = key_str(gk);
        let Some(pname) = gv
            .get("profile")
            .and_then(|p| p.as_str())
            .map(str::to_string)
        else {
            continue;
        };
        let key: KeyPath = vec!["guests".into(), gname.clone(), "profile".into()];
        let Some(profile) = profiles.get(Value::String(pname.clone())) else {
            let mut names: Vec<String> = profiles.keys().map(key_str).collect();
            names.sort();
            errors.push(ConfigError::Invalid {
                loc: map.find(&key).cloned().unwrap_or(Loc {
                    file: PathBuf::from("<config>"),
                    line: 0,
                    col: 0,
                }),
                path: source::dotted(&key),
                msg: format!(
                    "no profile named `{pname}` (profiles: {})",
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ),
            });
            continue;
        };
        let ppath: KeyPath = vec!["profiles".into(), pname.clone()];
        let gpath: KeyPath = vec!["guests".into(), gname.clone()];
        let inherited: Vec<(KeyPath, Loc)> = map
            .subtree(&ppath)
            .filter(|(k, _)| k.len() > ppath.len())
            .map(|(k, l)| {
                let mut p = gpath.clone();
                p.extend_from_slice(&k[ppath.len()..]);
                (p, l.clone())
            })
            .collect();
        for (p, l) in inherited {
            if map.get(&p).is_none() {
                map.insert(p, l);
            }
        }
        *gv = overlay(profile.clone(), gv.clone());
        if let Value::Mapping(m) = gv {
            m.insert(Value::String("profile".into()), Value::String(pname));
        }
    }
}

/// Parses and merges files already in memory into the raw model, with where each key was
/// written, keeping only the files that apply to `hostname` (`None`: all of them).
/// Validation into desired state is the next layer's ([`crate::desired::load_sources_for`]).
pub fn parse_sources_for(
    files: &[SourceFile],
    hostname: Option<&str>,
) -> Result<(RawConfig, SourceMap), ConfigErrors> {
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for file in files {
        // A file whose `hosts:` excludes this host cannot break it: its selector is read
        // first, and nothing else of it is checked here (`validate` without a hostname
        // checks every file).
        if excluded(file, hostname) {
            continue;
        }
        match parse_file(file) {
            Ok(p) if applies_to(&p.value, hostname) => match hosts_error(file, &p) {
                Some(e) => errors.push(e),
                None => parsed.push(p),
            },
            Ok(_) => {}
            Err(e) => errors.push(e),
        }
    }
    // `hosts:` selects files; it is not configuration and does not merge.
    if parsed.len() > 1 {
        for p in &mut parsed {
            if let Value::Mapping(m) = &mut p.value {
                m.remove("hosts");
            }
        }
    }
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let (merged, merged_map) = if parsed.len() == 1 {
        let p = parsed.pop().expect("one file");
        (p.value, p.map)
    } else {
        let mut merged = Value::Mapping(Default::default());
        let mut merged_map = SourceMap::default();
        for p in parsed {
            merge(
                &mut merged,
                &mut merged_map,
                p.value,
                &p.map,
                &mut Vec::new(),
                &mut Vec::new(),
                &mut errors,
            );
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        (merged, merged_map)
    };
    let (mut merged, mut merged_map) = (merged, merged_map);
    if hostname.is_some() {
        if let Value::Mapping(m) = &mut merged {
            // Only the files for this host were kept; their globs were checked.
            if matches!(m.get("hosts"), Some(Value::Sequence(s)) if s.iter().all(|g| g.is_string()))
            {
                m.remove("hosts");
            }
        }
    }
    expand_profiles(&mut merged, &mut merged_map, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let raw: RawConfig = serde_yaml::from_value(merged).map_err(|e| typed_errors(files, &e))?;
    Ok((raw, merged_map))
}

impl SourceMap {
    /// Every recorded path at or below `prefix`.
    pub fn subtree<'a>(
        &'a self,
        prefix: &'a [String],
    ) -> impl Iterator<Item = (&'a KeyPath, &'a Loc)> + 'a {
        self.iter().filter(move |(k, _)| k.starts_with(prefix))
    }
}

/// Renders locations for a list of key paths, used by errors that point at several places.
pub fn locate(map: &SourceMap, path: &[String]) -> String {
    map.find(path)
        .map(|l| l.to_string())
        .unwrap_or_else(|| "<config>".to_string())
}
