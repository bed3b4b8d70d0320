//! The host-file seam: every read and write of a file below `--root` goes through [`HostFiles`].
//!
//! Invariant: kernel files are written in place (one `write()`, never created); files kvmtune
//! owns under /etc are replaced atomically (temp file in the same directory + rename), so a
//! reader never sees half a file.

use std::io::Write;
use std::path::Path;

/// How host files are written and read back. [`RealFiles`] is the only production
/// implementation; the trait is the seam through which tests make the "kernel" keep a smaller
/// huge page count than requested, which the real kernel does only after taking all free memory.
pub trait HostFiles {
    /// Writes a kernel file in place.
    fn write(&self, file: &Path, content: &str) -> std::io::Result<()>;
    fn read(&self, file: &Path) -> std::io::Result<String>;
    /// Replaces a whole file atomically, creating its directory when missing.
    fn replace(&self, file: &Path, content: &str) -> std::io::Result<()> {
        atomic_replace(file, content)
    }
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

/// Temp file next to `file` (same filesystem), fsync, rename over `file`. Mode 0644.
pub fn atomic_replace(file: &Path, content: &str) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.kvmtune-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, file)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Reads a file, `None` when it does not exist.
pub fn read_opt(p: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Not found, or a path through a regular file (`active_profile/tuned.conf`).
fn absent(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(20)
}

/// Names in a directory, sorted; `None` when it does not exist.
pub fn list_opt(p: &Path) -> std::io::Result<Option<Vec<String>>> {
    match std::fs::read_dir(p) {
        Ok(rd) => {
            let mut v = Vec::new();
            for e in rd {
                v.push(e?.file_name().to_string_lossy().into_owned());
            }
            v.sort();
            Ok(Some(v))
        }
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}
