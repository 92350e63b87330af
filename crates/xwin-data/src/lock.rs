//! One run per output: an exclusive advisory lock on a sidecar file, held for the life of the
//! run and released by the OS when the process ends (even by `kill -9`), so a crashed run
//! never leaves a stale lock. The file records who holds it, for the second run's message.

use crate::error::{DataError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Held while a run writes its output; dropping it releases the lock.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
    _file: File,
}

impl OutputLock {
    /// Locks `path` (created if missing, with its directory: the output it guards may be the
    /// first file there) or fails with [`DataError::Locked`] naming the process that holds it.
    pub fn acquire(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| DataError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(DataError::Locked {
                    path,
                    holder: holder.trim().to_string(),
                });
            }
            Err(TryLockError::Error(e)) => return Err(DataError::io(&path, e)),
        }
        let me = format!(
            "pid {} ({}), since unix time {}",
            std::process::id(),
            std::env::args().collect::<Vec<_>>().join(" "),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(me.as_bytes()))
            .map_err(|e| DataError::io(&path, e))?;
        Ok(Self { path, _file: file })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The lock file guarding `output`: `OUTPUT.lock` beside a file, `DIR/.lock` in a directory.
pub fn lock_path_for(output: &Path, is_dir: bool) -> PathBuf {
    if is_dir {
        output.join(".lock")
    } else {
        sidecar(output, ".lock")
    }
}

/// The file beside `path` named after it plus `suffix` (`out.jsonl` → `out.jsonl.lock`):
/// where an artifact keeps its lock, failures and metadata.
pub fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.lock");
        let first = OutputLock::acquire(&path).unwrap();
        let err = OutputLock::acquire(&path).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );
        assert!(message.contains("out.lock"), "{message}");
        drop(first);
        OutputLock::acquire(&path).expect("released on drop");
    }
}
