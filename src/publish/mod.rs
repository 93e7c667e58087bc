//! Publication: everything a run writes goes to a staging directory under the output root first
//! (fsynced); then a commit journal; then every file is renamed into place (atomic per file),
//! `manifest.json` and `_SUCCESS` last. A run that dies before the journal leaves the previous
//! output as it was; after it, the next run on those markets rolls the publication forward.

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
        Ok(Publisher { root: root.to_path_buf(), staging, entries: Vec::new(), markets: markets.to_vec() })
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
        let mut f = std::fs::File::create(&path).ctx(|| format!("creating {}", path.display()))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).ctx(|| format!("writing {}", path.display()))?;
        f.sync_all().ctx(|| format!("syncing {}", path.display()))
    }

    /// Writes the journal, then swaps every staged file into place by rename (atomic per file).
    pub fn commit(self) -> Result<()> {
        failpoint("staged");
        let journal = serde_json::json!({
            "markets": self.markets,
            "entries": self.entries.iter().map(|e| e.display().to_string()).collect::<Vec<_>>(),
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
        if from.is_dir() {
            std::fs::create_dir_all(&to).ctx(|| format!("creating {}", to.display()))?;
            let mut files: Vec<PathBuf> = std::fs::read_dir(&from)
                .ctx(|| format!("listing {}", from.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            files.sort();
            for file in files {
                let dest = to.join(file.file_name().expect("a file"));
                std::fs::rename(&file, &dest).ctx(|| format!("publishing {}", dest.display()))?;
                swapped += 1;
                if swapped == 1 {
                    failpoint("swap");
                }
            }
            sync_dir(&to);
        } else if from.is_file() {
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
            }
            std::fs::rename(&from, &to).ctx(|| format!("publishing {}", to.display()))?;
            swapped += 1;
            if let Some(dir) = to.parent() {
                sync_dir(dir);
            }
        }
    }
    failpoint("swapped");
    std::fs::remove_dir_all(staging).ctx(|| format!("removing {}", staging.display()))?;
    sync_dir(root);
    Ok(())
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
