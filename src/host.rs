//! Host settings: which files under the root prefix hold them, how to compare, how to write.
//!
//! Invariant: every host setting maps to exactly one file below `--root` ([`setting_files`]);
//! observation reads only those files, planning ([`plan_host`]) is pure over their contents,
//! and a write is always followed by a read-back compared by meaning ([`Readback`]).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::desired::HostDesired;
use crate::units::PageSize;

/// How a value file is compared after reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Readback {
    /// Whitespace-separated tokens (sysctls: the kernel prints tabs between numbers).
    Tokens,
    /// The bracketed choice of a sysfs selector: `always [madvise] never`.
    Selected,
    /// A page count.
    Count,
}

impl Readback {
    /// The canonical value of a file's content.
    pub fn canonical(self, content: &str) -> String {
        match self {
            Readback::Tokens | Readback::Count => {
                content.split_whitespace().collect::<Vec<_>>().join(" ")
            }
            Readback::Selected => {
                let t = content.trim();
                match (t.find('['), t.find(']')) {
                    (Some(a), Some(b)) if a < b => t[a + 1..b].to_string(),
                    _ => t.to_string(),
                }
            }
        }
    }
}

/// One host write: the file (relative to the root), the value to write, how to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostWrite {
    /// The YAML key path (`sysctl.vm.swappiness`).
    pub path: String,
    /// File below the root, without a leading `/`.
    pub file: String,
    pub value: String,
    pub readback: Readback,
}

/// A declared host setting that this host cannot have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIssue {
    /// YAML key path below `host` (segments).
    pub key: Vec<String>,
    pub message: String,
}

/// A planned host change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostChange {
    pub before: Option<String>,
    pub write: HostWrite,
}

pub const THP_DIR: &str = "sys/kernel/mm/transparent_hugepage";
pub const MEMINFO: &str = "proc/meminfo";

/// The file that holds a huge page pool.
pub fn hugepage_file(size: PageSize, node: Option<u32>) -> String {
    match node {
        None => format!("sys/kernel/mm/hugepages/{}/nr_hugepages", size.sysfs_dir()),
        Some(n) => format!(
            "sys/devices/system/node/node{n}/hugepages/{}/nr_hugepages",
            size.sysfs_dir()
        ),
    }
}

/// Every declared setting as (key path below host, file, desired value, comparison), in
/// the order they are applied: sysctls, THP, global pools, per-node pools.
pub fn setting_files(d: &HostDesired) -> Vec<HostWrite> {
    let mut out = Vec::new();
    for (k, v) in &d.sysctl {
        out.push(HostWrite {
            path: format!("sysctl.{k}"),
            file: format!("proc/sys/{}", k.proc_path()),
            value: v.clone(),
            readback: Readback::Tokens,
        });
    }
    if let Some(e) = d.thp_enabled {
        out.push(HostWrite {
            path: "transparent_hugepage.enabled".into(),
            file: format!("{THP_DIR}/enabled"),
            value: e.as_str().into(),
            readback: Readback::Selected,
        });
    }
    if let Some(e) = d.thp_defrag {
        out.push(HostWrite {
            path: "transparent_hugepage.defrag".into(),
            file: format!("{THP_DIR}/defrag"),
            value: e.as_str().into(),
            readback: Readback::Selected,
        });
    }
    let mut pools: Vec<_> = d.hugepages.iter().collect();
    pools.sort_by_key(|((size, node), _)| (node.is_some(), *node, *size));
    for ((size, node), count) in pools {
        let path = match node {
            None => format!("hugepages.{size}"),
            Some(n) => format!("hugepages.{size}.node{n}"),
        };
        out.push(HostWrite {
            path,
            file: hugepage_file(*size, *node),
            value: count.to_string(),
            readback: Readback::Count,
        });
    }
    out
}

/// The YAML key path (segments below `host`) for a write, for locating issues.
fn yaml_key(d: &HostDesired, w: &HostWrite) -> Vec<String> {
    if let Some(k) = w.path.strip_prefix("sysctl.") {
        return vec!["sysctl".into(), k.into()];
    }
    if let Some(k) = w.path.strip_prefix("transparent_hugepage.") {
        return vec!["transparent_hugepage".into(), k.into()];
    }
    let pool = d
        .hugepages
        .keys()
        .find(|(size, node)| hugepage_file(*size, *node) == w.file);
    match pool.and_then(|k| d.hugepage_index.get(k)) {
        Some(i) => vec!["hugepages".into(), i.to_string()],
        None => vec!["hugepages".into()],
    }
}

/// Host files as read: path below root → content (`None` when the file does not exist).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostObserved {
    pub files: BTreeMap<String, Option<String>>,
    /// The kernel's default huge page size (`Hugepagesize` in /proc/meminfo).
    pub default_hugepage: Option<PageSize>,
    /// Online NUMA nodes (`/sys/devices/system/node/online`), read when per-node pools are declared.
    pub numa_online: Option<String>,
}

pub const NODE_ONLINE: &str = "sys/devices/system/node/online";

/// Reads the files the desired host state refers to, plus /proc/meminfo's page size.
pub fn observe(root: &Path, d: &HostDesired, want_meminfo: bool) -> std::io::Result<HostObserved> {
    let mut obs = HostObserved::default();
    for w in setting_files(d) {
        let content = read_opt(&root.join(&w.file))?;
        obs.files.insert(w.file, content);
    }
    if d.hugepages.keys().any(|(_, node)| node.is_some()) {
        obs.numa_online = read_opt(&root.join(NODE_ONLINE))?;
    }
    if want_meminfo {
        obs.default_hugepage = default_hugepage(root)?;
    }
    Ok(obs)
}

/// The kernel's default huge page size (`Hugepagesize` in `<root>/proc/meminfo`); `None` when
/// the file or the line is missing.
pub fn default_hugepage(root: &Path) -> std::io::Result<Option<PageSize>> {
    Ok(read_opt(&root.join(MEMINFO))?.and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("Hugepagesize:"))
            // meminfo's `kB` means KiB (`Hugepagesize:    2048 kB`).
            .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
            .and_then(|k| PageSize::from_kib(k).ok())
    }))
}

fn read_opt(p: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Pure: which host settings differ, and which cannot be planned on this host.
pub fn plan_host(d: &HostDesired, obs: &HostObserved) -> (Vec<HostChange>, Vec<HostIssue>) {
    let mut changes = Vec::new();
    let mut issues = Vec::new();
    for w in setting_files(d) {
        match obs.files.get(&w.file).cloned().flatten() {
            None => issues.push(HostIssue {
                key: yaml_key(d, &w),
                message: missing_message(&w),
            }),
            Some(content) => {
                let before = w.readback.canonical(&content);
                if before != w.readback.canonical(&w.value) {
                    changes.push(HostChange {
                        before: Some(before),
                        write: w,
                    });
                }
            }
        }
    }
    issues.extend(pool_consistency(d, obs));
    (changes, issues)
}

/// With a global pool and per-node pools of one size declared on a host whose every node is
/// declared, the nodes must add up to the global pool, or the two writes would undo each other.
fn pool_consistency(d: &HostDesired, obs: &HostObserved) -> Vec<HostIssue> {
    let Some(online) = obs
        .numa_online
        .as_deref()
        .and_then(|o| o.trim().parse::<crate::cpuset::CpuSet>().ok())
    else {
        return Vec::new();
    };
    let mut issues = Vec::new();
    for ((size, node), global) in &d.hugepages {
        if node.is_some() {
            continue;
        }
        let nodes: BTreeMap<u32, u64> = d
            .hugepages
            .iter()
            .filter_map(|((s, n), c)| n.filter(|_| s == size).map(|n| (n, *c)))
            .collect();
        if nodes.is_empty() || !online.iter().all(|n| nodes.contains_key(&n)) {
            continue;
        }
        let sum: u64 = nodes.values().sum();
        if sum != *global {
            let idx = d.hugepage_index.get(&(*size, None)).map(|i| i.to_string());
            issues.push(HostIssue {
                key: std::iter::once("hugepages".to_string()).chain(idx).collect(),
                message: format!(
                    "the {size} pools of every node ({online}) add up to {sum}, but the global pool is {global}: they must be equal"
                ),
            });
        }
    }
    issues
}

fn missing_message(w: &HostWrite) -> String {
    if w.path.starts_with("sysctl.") {
        format!("no such sysctl on this host (/{} does not exist)", w.file)
    } else if w.path.starts_with("transparent_hugepage") {
        format!(
            "this kernel has no transparent huge page control (/{} does not exist)",
            w.file
        )
    } else if w.file.starts_with("sys/devices/system/node/") {
        format!(
            "this host has no such NUMA node or page size (/{} does not exist)",
            w.file
        )
    } else {
        format!(
            "this host does not support that huge page size (/{} does not exist)",
            w.file
        )
    }
}

/// Why a host write failed.
#[derive(Debug, thiserror::Error)]
pub enum HostWriteError {
    #[error("host {path}: writing /{file}: {source}")]
    Write {
        path: String,
        file: String,
        source: std::io::Error,
    },
    #[error("host {path}: /{file} reads back `{got}` after writing `{wanted}`")]
    Mismatch {
        path: String,
        file: String,
        wanted: String,
        got: String,
    },
    #[error(
        "host {path}: huge page pool /{file}: requested {wanted} pages, the kernel allocated {got}"
    )]
    Shortfall {
        path: String,
        file: String,
        wanted: String,
        got: String,
    },
}

/// How host files are written and read back. [`RealFiles`] is the only production
/// implementation; the trait is the seam through which tests make the "kernel" keep a smaller
/// huge page count than requested, which the real kernel does only after taking all free memory.
pub trait HostFiles {
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()>;
    fn read(&self, file: &Path) -> std::io::Result<String>;
}

/// Plain file I/O: kernel files take the value in one write() and are never created.
pub struct RealFiles;

impl HostFiles for RealFiles {
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(file)?;
        f.write_all(content.as_bytes())
    }

    fn read(&self, file: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(file)
    }
}

/// Writes one value (in place, like `sysctl -w`) and reads it back.
pub fn write(files: &dyn HostFiles, root: &Path, w: &HostWrite) -> Result<(), HostWriteError> {
    let file: PathBuf = root.join(&w.file);
    let err = |source| HostWriteError::Write {
        path: w.path.clone(),
        file: w.file.clone(),
        source,
    };
    files.write(&file, &format!("{}\n", w.value)).map_err(err)?;
    let got = files.read(&file).map_err(err)?;
    let got = w.readback.canonical(&got);
    if got != w.readback.canonical(&w.value) {
        let (path, file, wanted) = (w.path.clone(), w.file.clone(), w.value.clone());
        return Err(if w.readback == Readback::Count {
            HostWriteError::Shortfall {
                path,
                file,
                wanted,
                got,
            }
        } else {
            HostWriteError::Mismatch {
                path,
                file,
                wanted,
                got,
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            Readback::Selected.canonical("always [madvise] never\n"),
            "madvise"
        );
        assert_eq!(Readback::Selected.canonical("never\n"), "never");
        assert_eq!(
            Readback::Tokens.canonical("4096\t16384\t4194304\n"),
            "4096 16384 4194304"
        );
        assert_eq!(Readback::Count.canonical("512\n"), "512");
    }
}
