//! Helpers shared by the integration tests that need no libvirtd: the repository, the bundled
//! demo host (`test:///` driver file and /proc + /sys tree) and libvirt's domain XML corpus.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The demo host: libvirt's in-process test driver with `examples/demo/host.xml`.
pub fn demo_uri() -> String {
    format!("test://{}", repo().join("examples/demo/host.xml").display())
}

pub fn copy_tree(from: &Path, to: &Path) {
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

/// A writable copy of the demo host's /proc + /sys tree.
pub fn demo_root() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("examples/demo/root"), t.path());
    t
}

/// libvirt's own test-suite domain XMLs, vendored in `tests/data/libvirt-domains` (LGPL-2.1-or-later,
/// see its COPYING.md and SOURCES.md). The suite reads nothing outside the repository.
pub fn corpus_dir() -> PathBuf {
    repo().join("tests/data/libvirt-domains")
}

/// The corpus files, sorted. Fails, never skips, when the directory is missing or short.
pub fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    out.sort();
    assert!(out.len() >= 50, "corpus has only {} files", out.len());
    out
}

/// The corpus as (file name, text), sorted by name.
pub fn corpus() -> Vec<(String, String)> {
    corpus_files()
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}

/// A file of a temp root made read-only by bind-mounting it read-only onto itself: it still
/// reads, and every write fails (EROFS), as a kernel file that refuses writes does. Unmounted
/// on drop, also when the test fails. Needs root, like the rest of the suite.
pub struct ReadOnlyFile(PathBuf);

impl ReadOnlyFile {
    pub fn new(file: &Path) -> ReadOnlyFile {
        let mount = |args: &[&str]| {
            let st = std::process::Command::new("mount")
                .args(args)
                .arg(file)
                .arg(file)
                .status()
                .expect("running mount");
            assert!(st.success(), "mount {args:?} {} failed", file.display());
        };
        mount(&["--bind"]);
        let guard = ReadOnlyFile(file.to_path_buf());
        mount(&["-o", "remount,bind,ro"]);
        guard
    }
}

impl Drop for ReadOnlyFile {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A "kernel" that keeps at most `cap` huge pages per pool, like a host short of memory (the
/// real kernel only falls short after taking all free memory, so tests never ask it to).
pub struct CappedPools {
    pub cap: u64,
}

impl kvmtune::host::HostFiles for CappedPools {
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()> {
        let content = if file.ends_with("nr_hugepages") {
            let want: u64 = content.trim().parse().unwrap();
            format!("{}\n", want.min(self.cap))
        } else {
            content.to_string()
        };
        kvmtune::host::RealFiles.write(file, &content)
    }
    fn read(&self, file: &Path) -> std::io::Result<String> {
        kvmtune::host::RealFiles.read(file)
    }
}

/// A deterministic xorshift generator for the property and mutation tests (no dependency,
/// same sequence on every machine).
pub struct Rng(pub u64);

impl Rng {
    /// A generator from any seed (mixed, never zero).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// 0..n (0 when n is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// An index 0..n (0 when n is 0).
    pub fn index(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// lo..=hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with `pct` percent probability.
    pub fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
    pub fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
    pub fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.index(v.len())]
    }
}

/// kvmtune against the demo driver with `root`, as host `hv-1`, stdin closed.
pub fn kt(root: &Path, args: &[&str]) -> Output {
    kt_cmd(root, args).stdin(Stdio::null()).output().unwrap()
}

/// The command [`kt`] runs, to adjust before running.
pub fn kt_cmd(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvmtune"));
    c.args(["--connect", &demo_uri(), "--hostname", "hv-1", "--root"])
        .arg(root)
        .args(args)
        .env_remove("LIBVIRT_DEFAULT_URI")
        .env("NO_COLOR", "1");
    c
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code, stdout and stderr, for assertion messages.
pub fn describe(o: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        out(o),
        err(o)
    )
}
