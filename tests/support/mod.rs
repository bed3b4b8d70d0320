//! Helpers shared by the integration tests that need no libvirtd: the repository, the bundled
//! demo host (`test:///` driver file and /proc + /sys tree) and libvirt's domain XML corpus.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

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

/// libvirt's own test-suite domain XMLs (`../shared/corpus/libvirt-domains`, or
/// `$KVMTUNE_CORPUS`): (file name, text), sorted. Fails, never skips, when missing.
pub fn corpus() -> Vec<(String, String)> {
    let dir = std::env::var_os("KVMTUNE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared/corpus/libvirt-domains"));
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} missing: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(out.len() >= 50, "corpus has only {} files", out.len());
    out
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
