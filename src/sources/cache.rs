//! Parsed export files, cached as Parquet so that a nightly rerun parses only the files that are
//! new or changed. An entry is keyed by everything that decides what parsing a file yields: its
//! bytes (SHA-256), the path it is reported under, the load stage's settings, the pipeline's zone,
//! the exchange rates (unconvertible rows are rejected while loading) and this program's version
//! and source fingerprint (build.rs: a rebuilt parser never reads an older parser's entries).
//! Each entry records the SHA-256 of its Parquet files; an entry that fails that check or does
//! not read back is parsed again and rewritten, never trusted. The cache holds parsed personal
//! data, as the exports do: it is created private to its owner.

use super::{FileOut, InputFile, LoadCtx, hex};
use crate::error::{Context, Result};
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub struct Cache {
    dir: PathBuf,
}

/// What an entry says of itself; written last, so an entry without it is incomplete.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    input: InputFile,
    lines_sha256: String,
    rejects_sha256: String,
}

const META: &str = "meta.json";
const LINES: &str = "lines.parquet";
const REJECTS: &str = "rejects.parquet";

/// How a file's parse was obtained, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit,
    Parsed,
    /// The entry was corrupt or unreadable: parsed again and rewritten.
    Rebuilt,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Hit => "from cache",
            Outcome::Parsed => "parsed",
            Outcome::Rebuilt => "rebuilt",
        }
    }
}

impl Cache {
    /// The default location: `$XDG_CACHE_HOME/clv/parsed`, else `~/.cache/clv/parsed`.
    pub fn default_dir() -> Option<PathBuf> {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("clv").join("parsed"))
    }

    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Cache { dir: dir.into() }
    }

    /// The parse of `path`: from the cache when a sound entry exists, else from `parse` (then
    /// stored). A cache that cannot be written only costs the next run a parse: it is logged.
    pub fn file(
        &self,
        ctx: &LoadCtx,
        path: &Path,
        parse: impl FnOnce() -> Result<FileOut>,
    ) -> Result<(FileOut, Outcome)> {
        let bytes = std::fs::read(path).map_err(|e| crate::error::Error::input(path, format!("cannot read: {e}")))?;
        let entry = self.dir.join(key(ctx, path, &bytes));
        drop(bytes);
        let outcome = match read_entry(&entry) {
            Ok(Some(out)) => return Ok((out, Outcome::Hit)),
            Ok(None) => Outcome::Parsed,
            Err(why) => {
                tracing::warn!(file = %path.display(), entry = %entry.display(), "cache entry unusable ({why}): parsing again");
                Outcome::Rebuilt
            }
        };
        let out = parse()?;
        if let Err(e) = write_entry(&entry, &out, outcome == Outcome::Rebuilt) {
            tracing::warn!(file = %path.display(), "could not cache the parsed file: {e}");
        }
        Ok((out, outcome))
    }
}

fn key(ctx: &LoadCtx, path: &Path, bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [
        env!("CARGO_PKG_VERSION"),
        env!("CLV_SOURCE_FINGERPRINT"),
        &hex(&Sha256::digest(bytes)),
        &path.display().to_string(),
        &format!("{:?}", ctx.spec),
        ctx.zone.name(),
        &ctx.fx.digest(),
    ] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize())
}

/// `Ok(None)`: no entry. `Err`: an entry that must not be trusted, with why.
fn read_entry(entry: &Path) -> std::result::Result<Option<FileOut>, String> {
    let meta = match std::fs::read(entry.join(META)) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta: Meta = serde_json::from_slice(&meta).map_err(|e| format!("{META}: {e}"))?;
    let table = |name: &str, want: &str| -> std::result::Result<DataFrame, String> {
        let bytes = std::fs::read(entry.join(name)).map_err(|e| format!("{name}: {e}"))?;
        if hex(&Sha256::digest(&bytes)) != want {
            return Err(format!("{name}: checksum mismatch"));
        }
        ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| format!("{name}: {e}"))
    };
    let lines = table(LINES, &meta.lines_sha256)?;
    let lines = crate::frame::conform(lines, &super::line_schema()).map_err(|e| format!("{LINES}: {e}"))?;
    Ok(Some(FileOut { lines, rejects: table(REJECTS, &meta.rejects_sha256)?, input: meta.input }))
}

/// Writes the entry beside its final place and renames it in: a reader finds a whole entry or
/// none. When two runs store the same entry the first stays (the bytes are the same); a corrupt
/// entry (`replace`) is removed first.
fn write_entry(entry: &Path, out: &FileOut, replace: bool) -> Result<()> {
    let parent = entry.parent().expect("entries live in the cache directory");
    std::fs::create_dir_all(parent).ctx(|| format!("creating {}", parent.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700));
    }
    let name = entry.file_name().expect("an entry name").to_string_lossy();
    let tmp = parent.join(format!(".tmp-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    let parquet = |df: &DataFrame| -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        ParquetWriter::new(&mut buf)
            .with_compression(ParquetCompression::Lz4Raw)
            .finish(&mut df.clone())
            .map_err(|e| crate::error::Error::Polars { context: "caching a parsed file".into(), source: e })?;
        Ok(buf)
    };
    let (lines, rejects) = (parquet(&out.lines)?, parquet(&out.rejects)?);
    let meta = Meta {
        input: out.input.clone(),
        lines_sha256: hex(&Sha256::digest(&lines)),
        rejects_sha256: hex(&Sha256::digest(&rejects)),
    };
    for (file, bytes) in [(LINES, lines), (REJECTS, rejects), (META, serde_json::to_vec(&meta).expect("serializes"))] {
        std::fs::write(tmp.join(file), bytes).ctx(|| format!("writing {}", tmp.join(file).display()))?;
    }
    if replace {
        let _ = std::fs::remove_dir_all(entry);
    }
    if std::fs::rename(&tmp, entry).is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    Ok(())
}
