//! Small file helpers: every file hallmark writes appears whole or not at all.

use std::io::Write;
use std::path::Path;

use crate::SignerError;

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, with
/// `mode` set before any byte is written (so a private key is never world-readable).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), SignerError> {
    let dir = parent_dir(path);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".hallmark-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(|e| SignerError::io(dir, e))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| SignerError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| SignerError::io(path, e.error))?;
    Ok(())
}

/// The directory a path's file lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
