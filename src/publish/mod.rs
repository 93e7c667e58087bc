//! Publication: everything a run writes goes to a staging directory under the output root first
//! (fsynced); then a commit journal; then each market partition directory is swapped with the
//! published one in one atomic exchange (a reader holding the directory sees all old files or all
//! new ones, never a mix), and each single file (reports, flat copies) is renamed into place;
//! `manifest.json` and `_SUCCESS` last. A run that dies before the journal leaves the previous
//! output as it was; after it, the next run on those markets rolls the publication forward.

pub mod coded;
pub mod flat;
pub mod lock;
pub mod manifest;
pub mod parquet;
pub mod tables;

use crate::error::{Context, Result};
use std::path::{Path, PathBuf};

/// One CSV field, quoted when it must be (RFC 4180).
pub fn csv_cell(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_csv_cell(&mut out, s);
    out
}

/// [`csv_cell`] appended to `out`.
pub fn push_csv_cell(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

pub struct Publisher {
    root: PathBuf,
    staging: PathBuf,
    /// Relative paths (files or partition directories) to swap in at commit, in order.
    /// Entries staged so far; behind a lock so markets publish side by side.
    entries: std::sync::Mutex<Vec<PathBuf>>,
    /// Markets this run publishes (recorded in the journal, for recovery).
    markets: Vec<String>,
}

/// The journal that makes a staging directory committed: once it exists, the staged files are
/// complete and the next run on these markets rolls them forward if this one dies.
const JOURNAL: &str = ".commit";
/// The markets a staging directory belongs to, written when it is created.
const OWNER: &str = ".markets";

/// `CLV_FAILPOINT=<name>` stops the run at that publication step (the fault-injection tests then
/// kill it): it says so on stderr and waits; `<name>:<ms>` pauses that long and goes on.
pub fn failpoint(name: &str) {
    let Ok(spec) = std::env::var("CLV_FAILPOINT") else { return };
    let (point, pause) = spec.split_once(':').map_or((spec.as_str(), None), |(p, ms)| (p, ms.parse::<u64>().ok()));
    if point != name {
        return;
    }
    eprintln!("failpoint {name} reached");
    match pause {
        Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
        None => loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        },
    }
}

fn sync_dir(dir: &Path) {
    // Persists renames and new entries; not every file system supports it, hence best effort.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

impl Publisher {
    pub fn new(root: &Path, run_id: &str, markets: &[String]) -> Result<Self> {
        // Per process: runs on different markets share a run id (same inputs) and run side by side.
        let staging = root.join(format!(".staging-{run_id}-{}", std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).ctx(|| format!("clearing {}", staging.display()))?;
        }
        std::fs::create_dir_all(&staging).ctx(|| format!("creating {}", staging.display()))?;
        // Whose staging this is, for recovery after a crash before the journal exists.
        let owner = serde_json::json!({ "markets": markets }).to_string();
        std::fs::write(staging.join(OWNER), owner).ctx(|| format!("writing {}", staging.display()))?;
        Ok(Publisher { root: root.to_path_buf(), staging, entries: Default::default(), markets: markets.to_vec() })
    }

    /// Where to write `rel` while staging; `entry` is the unit swapped in at commit (a partition
    /// directory or a single file) and must contain `rel`.
    pub fn stage(&self, entry: impl Into<PathBuf>, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let entry = entry.into();
        let mut entries = self.entries.lock().expect("no panics while staging");
        if !entries.contains(&entry) {
            entries.push(entry);
        }
        drop(entries);
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

    pub fn write_text(&self, rel: impl AsRef<Path>, text: &str) -> Result<()> {
        let rel = rel.as_ref().to_path_buf();
        let path = self.stage(rel.clone(), &rel)?;
        let mut f = std::fs::File::create(&path).ctx(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).ctx(|| format!("writing {}", path.display()))?;
        f.sync_all().ctx(|| format!("syncing {}", path.display()))
    }

    /// Writes the journal, then swaps every staged entry into place: a partition directory by one
    /// exchange, a single file by rename.
    pub fn commit(self) -> Result<()> {
        failpoint("staged");
        // A staged partition keeps its inode through the exchange: that is how a rerun tells an
        // entry already swapped in (and the old partition now sitting in staging) from one not.
        let entries = std::mem::take(&mut *self.entries.lock().expect("no panics while staging"));
        let inodes: serde_json::Map<String, serde_json::Value> = entries
            .iter()
            .filter_map(|e| inode(&self.staging.join(e)).map(|i| (e.display().to_string(), i.into())))
            .collect();
        let journal = serde_json::json!({
            "markets": self.markets,
            "entries": entries.iter().map(|e| e.display().to_string()).collect::<Vec<_>>(),
            "inodes": inodes,
        });
        let path = self.staging.join(JOURNAL);
        let mut f = std::fs::File::create(&path).ctx(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, journal.to_string().as_bytes()).ctx(|| "writing the commit journal")?;
        f.sync_all().ctx(|| "syncing the commit journal")?;
        sync_dir(&self.staging);
        failpoint("journal");
        roll_forward(&self.root, &self.staging)
    }
}

/// A run that stops before its commit (a later stage failed) leaves no staging behind; once the
/// journal exists, the staged files belong to recovery.
impl Drop for Publisher {
    fn drop(&mut self) {
        if !self.staging.join(JOURNAL).exists() {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Moves every staged file of a committed staging directory into place, then removes it. Files
/// already moved by an earlier, interrupted attempt are simply not there any more: idempotent.
fn roll_forward(root: &Path, staging: &Path) -> Result<()> {
    let text = std::fs::read_to_string(staging.join(JOURNAL)).ctx(|| format!("reading {}", staging.display()))?;
    let journal: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        crate::error::Error::Data(format!(
            "{}: unreadable commit journal ({e}); remove the directory after checking the output",
            staging.display()
        ))
    })?;
    let entries: Vec<String> = journal["entries"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    let mut swapped = 0;
    for entry in &entries {
        let (from, to) = (staging.join(entry), root.join(entry));
        let staged_inode = journal["inodes"][entry.as_str()].as_u64();
        if staged_inode.is_some_and(|i| inode(&to) == Some(i)) {
            continue; // swapped by an interrupted attempt: `from` now holds the old partition
        }
        if !from.exists() {
            continue; // a single file renamed by an interrupted attempt
        }
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        if from.is_dir() && to.is_dir() {
            exchange(&from, &to).ctx(|| format!("publishing {}", to.display()))?;
        } else {
            std::fs::rename(&from, &to).ctx(|| format!("publishing {}", to.display()))?;
        }
        if let Some(dir) = to.parent() {
            sync_dir(dir);
        }
        swapped += 1;
        if swapped == 1 {
            failpoint("swap");
        }
    }
    failpoint("swapped");
    std::fs::remove_dir_all(staging).ctx(|| format!("removing {}", staging.display()))?;
    sync_dir(root);
    Ok(())
}

#[cfg(unix)]
fn inode(path: &Path) -> Option<u64> {
    std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(path).ok()?).into()
}

#[cfg(not(unix))]
fn inode(_: &Path) -> Option<u64> {
    None
}

/// Swaps two directories in one step (Linux `renameat2(RENAME_EXCHANGE)`): `to` shows the old
/// files or the new ones, never both. Where the file system cannot exchange, the old directory is
/// renamed aside first; a reader then briefly finds no partition, still never a mix.
fn exchange(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other);
        let (a, b) = (c(from)?, c(to)?);
        // SAFETY: both paths are NUL-terminated strings that outlive the call.
        let r =
            unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)) {
            return Err(e);
        }
    }
    let aside = from.with_extension("old");
    std::fs::rename(to, &aside)?;
    std::fs::rename(from, to)
}

fn markets_in(file: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(file).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some(json["markets"].as_array()?.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
}

/// Finishes or discards what an interrupted run left, for the markets this run holds the locks of
/// (so no live run owns it): a staging directory with a journal is rolled forward, one without is
/// discarded (its run died before publishing anything). Returns what it did, for the log.
pub fn recover(root: &Path, locked: &[String]) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let Ok(entries) = std::fs::read_dir(root) else { return Ok(done) };
    for e in entries.filter_map(|e| e.ok()) {
        let (dir, name) = (e.path(), e.file_name().to_string_lossy().into_owned());
        if !name.starts_with(".staging-") || !dir.is_dir() {
            continue;
        }
        let committed = dir.join(JOURNAL).exists();
        let owner = markets_in(&dir.join(if committed { JOURNAL } else { OWNER }));
        if !owner.is_some_and(|m| m.iter().all(|m| locked.contains(m))) {
            continue;
        }
        if committed {
            roll_forward(root, &dir)?;
            done.push(format!("completed the interrupted publication {name}"));
        } else {
            std::fs::remove_dir_all(&dir).ctx(|| format!("removing {}", dir.display()))?;
            done.push(format!("discarded the unfinished {name}"));
        }
    }
    Ok(done)
}
