//! Parsed export files, cached as Parquet so that a nightly rerun parses only the files that are
//! new or changed: order files and Amazon buyer reports alike. An entry is keyed by everything that
//! decides what parsing a file yields: what it is parsed as, its bytes (SHA-256), the path it is
//! reported under, the load stage's settings, the pipeline's zone, the exchange rates
//! (unconvertible rows are rejected while loading) and this program's version and source
//! fingerprint (build.rs: a rebuilt parser never reads an older parser's entries). Each entry
//! records the SHA-256 of its Parquet files; an entry that fails that check or does not read back
//! is parsed again and rewritten, never trusted. The cache holds parsed personal data, as the
//! exports do: it is created private to its owner.

use super::{Export, InputFile, LoadCtx, hex};
use crate::error::{Context, Result};
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What parsing one file yields, as the cache stores it: named tables and the file as the
/// manifest records it.
pub trait Cached: Sized {
    /// What the file is parsed as (order lines, buyers): part of the key.
    const KIND: &'static str;
    /// The entry's Parquet files, in the order of [`Cached::tables`].
    const TABLES: &'static [&'static str];
    fn input(&self) -> &InputFile;
    fn tables(&self) -> Vec<&DataFrame>;
    fn from_tables(input: InputFile, tables: Vec<DataFrame>) -> std::result::Result<Self, String>;
}

pub struct Cache {
    dir: PathBuf,
}

/// What an entry says of itself; written last, so an entry without it is incomplete.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    input: InputFile,
    /// Of each of the entry's tables, in `Cached::TABLES` order.
    sha256: Vec<String>,
}

const META: &str = "meta.json";

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

    /// The parse of `file`: from the cache when a sound entry exists, else from `parse` (then
    /// stored). A cache that cannot be written only costs the next run a parse: it is logged.
    pub fn get<T: Cached>(
        &self,
        ctx: &LoadCtx,
        file: Export,
        parse: impl FnOnce(Export) -> Result<T>,
    ) -> Result<(T, Outcome)> {
        let entry = self.dir.join(key::<T>(ctx, &file));
        let path = file.path;
        let outcome = match read_entry(&entry) {
            Ok(Some(out)) => return Ok((out, Outcome::Hit)),
            Ok(None) => Outcome::Parsed,
            Err(why) => {
                tracing::warn!(file = %path.display(), entry = %entry.display(), "cache entry unusable ({why}): parsing again");
                Outcome::Rebuilt
            }
        };
        let out = parse(file)?;
        if let Err(e) = write_entry(&entry, &out, outcome == Outcome::Rebuilt) {
            tracing::warn!(file = %path.display(), "could not cache the parsed file: {e}");
        }
        Ok((out, outcome))
    }
}

fn key<T: Cached>(ctx: &LoadCtx, file: &Export) -> String {
    let mut h = Sha256::new();
    for part in [
        env!("CARGO_PKG_VERSION"),
        env!("CLV_SOURCE_FINGERPRINT"),
        T::KIND,
        &file.sha256,
        &file.path.display().to_string(),
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
fn read_entry<T: Cached>(entry: &Path) -> std::result::Result<Option<T>, String> {
    let meta = match std::fs::read(entry.join(META)) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let meta: Meta = serde_json::from_slice(&meta).map_err(|e| format!("{META}: {e}"))?;
    if meta.sha256.len() != T::TABLES.len() {
        return Err(format!("{META}: {} tables, expected {}", meta.sha256.len(), T::TABLES.len()));
    }
    let tables = T::TABLES
        .iter()
        .zip(&meta.sha256)
        .map(|(name, want)| {
            let bytes = std::fs::read(entry.join(name)).map_err(|e| format!("{name}: {e}"))?;
            if hex(&Sha256::digest(&bytes)) != *want {
                return Err(format!("{name}: checksum mismatch"));
            }
            ParquetReader::new(std::io::Cursor::new(bytes)).finish().map_err(|e| format!("{name}: {e}"))
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    T::from_tables(meta.input, tables).map(Some)
}

/// Writes the entry beside its final place and renames it in: a reader finds a whole entry or
/// none. When two runs store the same entry the first stays (the bytes are the same); a corrupt
/// entry (`replace`) is removed first.
fn write_entry<T: Cached>(entry: &Path, out: &T, replace: bool) -> Result<()> {
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
    let tables = out.tables().into_iter().map(parquet).collect::<Result<Vec<_>>>()?;
    let meta = Meta { input: out.input().clone(), sha256: tables.iter().map(|t| hex(&Sha256::digest(t))).collect() };
    let files = T::TABLES.iter().copied().zip(tables).chain([(META, serde_json::to_vec(&meta).expect("serializes"))]);
    for (file, bytes) in files {
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
