//! Publication: everything a run writes goes to a staging directory under the output root first;
//! only when all of it is written are the partitions swapped into place, then `manifest.json`.
//! A run that fails before `commit` leaves the previous output as it was.

pub mod flat;
pub mod lock;
pub mod manifest;
pub mod parquet;
pub mod tables;

use crate::error::{Context, Result};
use std::path::{Path, PathBuf};

/// One CSV field, quoted when it must be (RFC 4180).
pub fn csv_cell(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub struct Publisher {
    root: PathBuf,
    staging: PathBuf,
    /// Relative paths (files or partition directories) to swap in at commit, in order.
    entries: Vec<PathBuf>,
}

impl Publisher {
    pub fn new(root: &Path, run_id: &str) -> Result<Self> {
        let staging = root.join(format!(".staging-{run_id}"));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).ctx(|| format!("clearing {}", staging.display()))?;
        }
        std::fs::create_dir_all(&staging).ctx(|| format!("creating {}", staging.display()))?;
        Ok(Publisher { root: root.to_path_buf(), staging, entries: Vec::new() })
    }

    /// Where to write `rel` while staging; `entry` is the unit swapped in at commit (a partition
    /// directory or a single file) and must contain `rel`.
    pub fn stage(&mut self, entry: impl Into<PathBuf>, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let entry = entry.into();
        if !self.entries.contains(&entry) {
            self.entries.push(entry);
        }
        let path = self.staging.join(rel.as_ref());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        Ok(path)
    }

    /// Where this run's files are staged.
    pub fn staging(&self) -> &Path {
        &self.staging
    }

    pub fn write_text(&mut self, rel: impl AsRef<Path>, text: &str) -> Result<()> {
        let rel = rel.as_ref().to_path_buf();
        let path = self.stage(rel.clone(), &rel)?;
        std::fs::write(&path, text).ctx(|| format!("writing {}", path.display()))
    }

    /// Swaps every staged entry into place: the old one is moved aside, the new one renamed in,
    /// the old one deleted. Each swap is two renames on one file system.
    pub fn commit(self) -> Result<()> {
        let trash =
            self.root.join(format!(".trash-{}", self.staging.file_name().unwrap_or_default().to_string_lossy()));
        for entry in &self.entries {
            let new = self.staging.join(entry);
            let dest = self.root.join(entry);
            if let Some(dir) = dest.parent() {
                std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
            }
            if dest.exists() {
                let aside = trash.join(entry);
                std::fs::create_dir_all(aside.parent().expect("inside trash")).ctx(|| "creating trash")?;
                std::fs::rename(&dest, &aside).ctx(|| format!("moving aside {}", dest.display()))?;
            }
            std::fs::rename(&new, &dest).ctx(|| format!("publishing {}", dest.display()))?;
        }
        if trash.exists() {
            std::fs::remove_dir_all(&trash).ctx(|| format!("removing {}", trash.display()))?;
        }
        std::fs::remove_dir_all(&self.staging).ctx(|| format!("removing {}", self.staging.display()))
    }
}
