//! Writes that are never seen half done: temp file in the same directory, fsync, rename, fsync
//! of the directory. A `kill -9` or a full disk leaves the old file or the new one, never a mix.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `bytes` atomically, the new file having `mode` (e.g. `0o600` for keys).
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        name.to_string_lossy(),
        std::process::id(),
        rand::random::<u32>()
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        // Best effort: the temp file is invisible to readers (dot-prefixed) either way.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes `path` and syncs its directory; a missing file is not an error.
pub fn remove_durable(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Whether a directory entry is a temp file of [`write_atomic`] (never a served file).
pub(super) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// Whether a temp file of [`write_atomic`] was left by a write that can no longer finish: its
/// writer (the pid in its name) is gone. During a binary upgrade the old process may be in the
/// middle of a write while the new one starts; its temp file is not the new one's to remove.
pub(super) fn is_stale_temp(name: &str) -> bool {
    if !is_temp_name(name) {
        return false;
    }
    let writer = name
        .rsplit_once(".tmp-")
        .and_then(|(_, rest)| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match writer {
        Some(pid) if pid == std::process::id() => false,
        Some(pid) => !Path::new(&format!("/proc/{pid}")).exists(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn write_atomic_replaces_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key.pem");
        write_atomic(&path, b"one", 0o600).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp file may remain");
    }

    #[test]
    fn temp_files_of_live_writers_are_not_stale() {
        let ours = format!(".a.pem.tmp-{}-123", std::process::id());
        assert!(is_temp_name(&ours));
        assert!(!is_stale_temp(&ours));
        // Process 1 is always alive; a pid beyond pid_max never is.
        assert!(!is_stale_temp(".a.pem.tmp-1-5"));
        assert!(is_stale_temp(".a.pem.tmp-4294967295-5"));
        assert!(is_stale_temp(".a.pem.tmp-x"));
        assert!(!is_stale_temp("a.pem"));
    }

    #[test]
    fn write_atomic_into_missing_dir_fails_without_creating_anything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("x");
        assert!(write_atomic(&path, b"x", 0o644).is_err());
        assert!(!dir.path().join("nope").exists());
    }
}
