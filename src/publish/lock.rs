//! Per-market run locks: `OUT/.locks/market=<m>.lock`, held with the OS file lock (std
//! `File::try_lock`) for the whole run. The OS drops the lock when the process dies, so a killed
//! run leaves no stale lock; the file's text only names the holder for the message.

use crate::error::{Context, Error, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

/// Locks held until dropped.
pub struct Locks {
    _files: Vec<File>,
}

/// Waits for `OUT/.locks/<name>.lock` (for short sections that runs on different markets share).
pub fn wait(out: &Path, name: &str) -> Result<Locks> {
    let dir = out.join(".locks");
    std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.lock"));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    file.lock().ctx(|| format!("locking {}", path.display()))?;
    Ok(Locks { _files: vec![file] })
}

/// Takes the lock of every market, or fails with [`Error::Locked`] naming the holder.
pub fn acquire(out: &Path, markets: &[String], pipeline: &str) -> Result<Locks> {
    let dir = out.join(".locks");
    std::fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let mut files = Vec::new();
    for market in markets {
        let path = dir.join(format!("market={market}.lock"));
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .ctx(|| format!("opening {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(Error::Locked(format!(
                    "market `{market}` in {} is being written by another run ({}); try again when it ends",
                    out.display(),
                    holder.trim()
                )));
            }
            Err(TryLockError::Error(e)) => return Err(e).ctx(|| format!("locking {}", path.display())),
        }
        let started = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        file.set_len(0).ctx(|| "clearing lock file")?;
        file.rewind().ctx(|| "rewinding lock file")?;
        write!(file, "pid {}, pipeline {pipeline}, started {started}", std::process::id())
            .ctx(|| "writing lock file")?;
        files.push(file);
    }
    Ok(Locks { _files: files })
}
