//! Parsed export files, cached as Parquet so that a nightly rerun parses only the files that are
//! new or changed: order files and Amazon buyer reports alike. An entry is keyed by everything that
//! decides what parsing a file yields: what it is parsed as, its bytes (SHA-256), the path it is
//! reported under, the load stage's settings, the pipeline's zone, the exchange rates
//! (unconvertible rows are rejected while loading), the test-order patterns (matched while
//! loading) and this program's version and source
//! fingerprint (build.rs: a rebuilt parser never reads an older parser's entries). An entry is
//! one file (see [`FORMAT`]; with a directory of files per entry, a full run over two years of
//! daily exports spent more time creating files than parsing them) and records a checksum of
//! itself (XXH3-128: it guards against damage, not tampering, and SHA-256 over the entries was
//! ~1% of a run); an entry that fails that check or does not read back is parsed again and
//! rewritten, never trusted. Category columns are stored
//! as integer codes with their categories in the entry's header
//! (`frame::categories_to_codes`): read as categories, every row's text was hashed again. How
//! each column is encoded: `encode.rs`. The cache holds parsed personal data, as the exports do:
//! it is created private to its owner. Whole sources' decisions (`crate::reuse`) are kept under
//! `prepared/`, in the same format. Entries are written around the page cache
//! (`crate::direct`): a run does not read back what it stores, and through the page cache the
//! entries took ~2 CPU-s of kernel time at 10M lines on the bench VM.
//!
//! Hashing every export on every run read and hashed all of them (3 GB at 10M lines, a tenth of
//! the CPU of a rerun; on a cold page cache, mostly disk time). So the cache also remembers each
//! input's SHA-256 beside what `stat` said of the file when it was hashed: size, mtime, ctime,
//! inode and device. Any write to a file sets its ctime to the current time, and no call sets it
//! back, so a file whose stat is unchanged has the bytes it was hashed with and is not read
//! again. A file changed in the same clock tick as its hashing could look unchanged: a hash is
//! only remembered for a file untouched for [`SETTLED`] before it was read.
//!
//! Keys hold clv's version and the settings, so every upgrade or settings change leaves a set of
//! entries no run reads again: a file read is marked used ([`MARK_EVERY`]) and [`Cache::prune`]
//! removes what stayed unmarked for long.

mod encode;

use super::{Export, LoadCtx, hex};
use crate::error::{Context, Result};
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What the cache stores of one file's parse (or of a source's decisions, `crate::reuse`): named
/// tables and what the entry says beside them (the file as the manifest records it).
pub trait Cached: Sized {
    /// What the file is parsed as (order lines, buyers): part of the key.
    const KIND: &'static str;
    /// The names of the entry's Parquet tables (for messages), in the order of [`Cached::tables`].
    const TABLES: &'static [&'static str];
    /// Kept in the entry's header.
    type Info: serde::Serialize + serde::de::DeserializeOwned;
    fn info(&self) -> Self::Info;
    fn tables(&self) -> Vec<&DataFrame>;
    fn from_tables(info: Self::Info, tables: Vec<DataFrame>) -> std::result::Result<Self, String>;
}

pub struct Cache {
    dir: PathBuf,
}

/// An entry's first line is this and the [`checksum`] of the rest; then one line of JSON, the
/// entry's [`Meta`]; then its tables' Parquet bytes back to back. Written beside its place and
/// renamed in, so a reader finds a whole entry or none.
pub const FORMAT: &str = "clv parse cache entry 2";

/// What an entry says of itself.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta<I> {
    info: I,
    /// Of each of the entry's tables, in `Cached::TABLES` order: its length in bytes.
    lengths: Vec<usize>,
    /// Of each table, its category columns (stored as codes) and their categories by code.
    categories: Vec<crate::frame::StoredCategories>,
}

/// Where sources' decisions are kept (`crate::reuse`), apart from the parsed files.
const PREPARED: &str = "prepared";

/// How a file's parse was obtained, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// `read`: the file was read and hashed (false: its stat matched a remembered hash).
    Hit {
        read: bool,
    },
    Parsed,
    /// The entry was corrupt or unreadable: parsed again and rewritten.
    Rebuilt,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Hit { .. } => "from cache",
            Outcome::Parsed => "parsed",
            Outcome::Rebuilt => "rebuilt",
        }
    }

    /// Whether the input file was read from disk.
    pub fn read(self) -> bool {
        !matches!(self, Outcome::Hit { read: false })
    }
}

/// How long a file must have been left alone before its hash is remembered by its stat: well
/// beyond the tick of the clock file timestamps come from (a few milliseconds on Linux).
const SETTLED: Duration = Duration::from_secs(2);

/// What `stat` says of a file, as far as changes to its bytes go.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stat {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    inode: u64,
    device: u64,
}

impl Stat {
    #[cfg(unix)]
    fn of(path: &Path) -> Option<Stat> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        let ns = |s: i64, n: i64| s as i128 * 1_000_000_000 + n as i128;
        Some(Stat {
            len: m.len(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
            inode: m.ino(),
            device: m.dev(),
        })
    }

    /// Elsewhere there is no ctime: every file is read and hashed.
    #[cfg(not(unix))]
    fn of(_: &Path) -> Option<Stat> {
        None
    }

    /// Untouched for [`SETTLED`] before `read_from` (nanoseconds since the epoch).
    fn settled(&self, read_from: i128) -> bool {
        self.mtime_ns.max(self.ctime_ns) + SETTLED.as_nanos() as i128 <= read_from
    }
}

/// An input's remembered hash.
#[derive(serde::Serialize, serde::Deserialize)]
struct Hashed {
    path: PathBuf,
    stat: Stat,
    sha256: String,
}

const HASHES: &str = "hashes";

fn now_ns() -> i128 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i128)
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

    /// The parse of the file at `path`: from the cache when a sound entry exists, else from
    /// `parse` (then stored). A file whose stat matches a remembered hash is not read unless its
    /// entry is missing or unsound. A cache that cannot be written only costs the next run a
    /// parse: it is logged.
    pub fn get<'p, T: Cached>(
        &self,
        ctx: &LoadCtx,
        path: &'p Path,
        parse: impl FnOnce(Export<'p>) -> Result<T>,
    ) -> Result<(T, Outcome)> {
        let read_from = now_ns();
        let before = Stat::of(path);
        if let Some(sha256) = before.as_ref().and_then(|stat| self.remembered(path, stat))
            && let Ok(Some(out)) =
                read_entry(&self.dir.join(key::<T>(ctx, &[&sha256, &path.display().to_string()])), |_: &T::Info| true)
        {
            return Ok((out, Outcome::Hit { read: false }));
        }
        let file = Export::open(path)?;
        if let Some(stat) = before.filter(|s| s.settled(read_from) && Stat::of(path).as_ref() == Some(s)) {
            self.remember(path, stat, &file.sha256);
        }
        let entry = self.dir.join(key::<T>(ctx, &[&file.sha256, &path.display().to_string()]));
        let outcome = match read_entry(&entry, |_: &T::Info| true) {
            Ok(Some(out)) => return Ok((out, Outcome::Hit { read: true })),
            Ok(None) => Outcome::Parsed,
            Err(why) => {
                tracing::warn!(file = %path.display(), entry = %entry.display(), "cache entry unusable ({why}): parsing again");
                Outcome::Rebuilt
            }
        };
        let out = parse(file)?;
        if let Err(e) = write_entry(&entry, &out) {
            tracing::warn!(file = %path.display(), "could not cache the parsed file: {e}");
        }
        Ok((out, outcome))
    }

    /// The SHA-256 remembered for the file at `path`, if its stat is the one it was hashed with.
    pub fn remembered_sha256(&self, path: &Path) -> Option<String> {
        self.remembered(path, &Stat::of(path)?)
    }

    /// The source's decisions stored under `key` (`crate::reuse`), if the entry is sound and
    /// `accept`s its info. An unsound entry is logged and taken as none; storing the source's
    /// decisions again replaces it.
    pub fn prepared<T: Cached>(&self, key: &str, accept: impl FnOnce(&T::Info) -> bool) -> Option<T> {
        let entry = self.dir.join(PREPARED).join(key);
        read_entry(&entry, accept).unwrap_or_else(|why| {
            tracing::warn!(entry = %entry.display(), "cache entry unusable ({why}): preparing the source again");
            None
        })
    }

    /// Stores a source's decisions under `key`, in place of any entry there. Failing only costs
    /// the next run a preparation: it is logged.
    pub fn store_prepared<T: Cached>(&self, key: &str, out: &T) {
        if let Err(e) = write_entry(&self.dir.join(PREPARED).join(key), out) {
            tracing::warn!("could not cache a source's decisions: {e}");
        }
    }

    fn hash_file(&self, path: &Path) -> PathBuf {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        self.dir.join(HASHES).join(hex(&Sha256::digest(absolute.as_os_str().as_encoded_bytes())))
    }

    /// The SHA-256 remembered for `path` if its stat is still `stat`.
    fn remembered(&self, path: &Path, stat: &Stat) -> Option<String> {
        let hashed: Hashed = serde_json::from_slice(&read_used(&self.hash_file(path)).ok()?).ok()?;
        (hashed.stat == *stat).then_some(hashed.sha256)
    }

    /// Remembers `path`'s hash (written beside, then renamed in). Failing costs a read next time.
    fn remember(&self, path: &Path, stat: Stat, sha256: &str) {
        let file = self.hash_file(path);
        let hashed = Hashed { path: path.to_path_buf(), stat, sha256: sha256.to_string() };
        let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
        let written = write_new(&tmp, &[&serde_json::to_vec(&hashed).expect("serializes")])
            .and_then(|()| std::fs::rename(&tmp, &file));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(file = %path.display(), "could not remember the file's hash: {e}");
        }
    }

    /// Removes what no run has used for `keep` (entries of other clv versions or settings, of
    /// exports since deleted, hashes of files gone, leftovers of interrupted writes) and says how
    /// many files and bytes went. Only names the cache writes are touched (a key in hex, or a
    /// temporary file made from one): a cache directory pointed at a shared place loses nothing
    /// else.
    pub fn prune(&self, keep: Duration) -> (usize, u64) {
        let Some(cutoff) = SystemTime::now().checked_sub(keep) else { return (0, 0) };
        let mut removed = (0, 0);
        for dir in [self.dir.clone(), self.dir.join(PREPARED), self.dir.join(HASHES)] {
            let Ok(listing) = std::fs::read_dir(&dir) else { continue };
            for item in listing.flatten() {
                let (path, name) = (item.path(), item.file_name());
                let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
                if !ours(&name.to_string_lossy()) || meta.modified().map_or(true, |m| m >= cutoff) {
                    continue;
                }
                let (bytes, gone) = match meta.is_dir() {
                    // An entry of the format before this one: a directory of files.
                    true => (
                        std::fs::read_dir(&path)
                            .map(|l| l.flatten().filter_map(|f| f.metadata().ok()).map(|m| m.len()).sum())
                            .unwrap_or(0),
                        std::fs::remove_dir_all(&path),
                    ),
                    false => (meta.len(), std::fs::remove_file(&path)),
                };
                if gone.is_ok() {
                    removed = (removed.0 + 1, removed.1 + bytes);
                }
            }
        }
        removed
    }
}

/// A file the cache uses is marked so (its mtime set to now) when its mark is older than this:
/// once a day, not on every run. [`Cache::prune`] goes by the marks.
const MARK_EVERY: Duration = Duration::from_secs(24 * 3600);

/// The bytes of the cache's file at `path`, marking it used.
fn read_used(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes)?;
    if meta.modified().ok().and_then(|m| m.elapsed().ok()).is_some_and(|age| age > MARK_EVERY) {
        let _ = file.set_modified(SystemTime::now());
    }
    Ok(bytes)
}

/// Whether a name in the cache is one the cache writes: a key (64 hex digits), possibly with an
/// extension, or a temporary file made from one.
fn ours(name: &str) -> bool {
    let key = name.strip_prefix(".tmp-").unwrap_or(name);
    key.len() >= 64 && key.as_bytes()[..64].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
}

/// The key of a `T` entry: the load's settings and `parts` (a file's hash and path, or a whole
/// source's files and rules).
pub fn key<T: Cached>(ctx: &LoadCtx, parts: &[&str]) -> String {
    let (spec, fx, tests) = (format!("{:?}", ctx.spec), ctx.fx.digest(), format!("{:?}", ctx.tests));
    let fixed = [env!("CARGO_PKG_VERSION"), env!("CLV_SOURCE_FINGERPRINT"), T::KIND];
    let settings = [spec.as_str(), ctx.zone.name(), fx, tests.as_str()];
    let mut h = Sha256::new();
    for part in fixed.into_iter().chain(settings).chain(parts.iter().copied()) {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex(&h.finalize())
}

/// `bytes` split after its first line (the newline dropped).
fn line(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    memchr::memchr(b'\n', bytes).map(|end| (&bytes[..end], &bytes[end + 1..]))
}

/// The checksum an entry's first line records of the rest of it (given in pieces).
fn checksum(pieces: &[&[u8]]) -> String {
    let mut h = xxhash_rust::xxh3::Xxh3Default::new();
    pieces.iter().for_each(|p| h.update(p));
    format!("{:032x}", h.digest128())
}

/// `Ok(None)`: no entry, or one whose info `accept` refuses. `Err`: an entry that must not be
/// trusted, with why.
fn read_entry<T: Cached>(
    entry: &Path,
    accept: impl FnOnce(&T::Info) -> bool,
) -> std::result::Result<Option<T>, String> {
    let bytes = match read_used(entry) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let (first, rest) = line(&bytes).ok_or("no first line")?;
    let want = first.strip_prefix(FORMAT.as_bytes()).and_then(|c| c.strip_prefix(b" "));
    if want != Some(checksum(&[rest]).as_bytes()) {
        return Err(match want {
            Some(_) => "checksum mismatch".into(),
            None => format!("not a `{FORMAT}` entry"),
        });
    }
    let (header, mut body) = line(rest).ok_or("no header")?;
    let meta: Meta<T::Info> = serde_json::from_slice(header).map_err(|e| format!("header: {e}"))?;
    if !accept(&meta.info) {
        return Ok(None);
    }
    let n = T::TABLES.len();
    if meta.lengths.len() != n || meta.categories.len() != n || meta.lengths.iter().sum::<usize>() != body.len() {
        return Err(format!("the header's tables ({:?} bytes) are not the entry's", meta.lengths));
    }
    let mut tables = Vec::with_capacity(n);
    for ((name, &len), categories) in T::TABLES.iter().zip(&meta.lengths).zip(&meta.categories) {
        let (table, after) = body.split_at(len);
        body = after;
        let df = ParquetReader::new(std::io::Cursor::new(table)).finish().map_err(|e| format!("{name}: {e}"))?;
        tables.push(crate::frame::codes_to_categories(df, categories).map_err(|e| format!("{name}: {e}"))?);
    }
    T::from_tables(meta.info, tables).map(Some)
}

/// Writes the entry beside its final place and renames it in, replacing any entry there (a
/// corrupt one, or the same bytes from a concurrent run).
fn write_entry<T: Cached>(entry: &Path, out: &T) -> Result<()> {
    let parquet = |df: &DataFrame| -> Result<(Vec<u8>, crate::frame::StoredCategories)> {
        let (df, categories) = crate::frame::categories_to_codes(df.clone())?;
        Ok((encode::encode(&df)?, categories))
    };
    let (tables, categories): (Vec<_>, Vec<_>) =
        out.tables().into_iter().map(parquet).collect::<Result<Vec<_>>>()?.into_iter().unzip();
    let meta = Meta { info: out.info(), lengths: tables.iter().map(Vec::len).collect(), categories };
    let mut header = serde_json::to_vec(&meta).expect("serializes");
    header.push(b'\n');
    // Written in pieces: the tables are most of an entry, and copying them together would take
    // fresh memory for every entry.
    let mut pieces: Vec<&[u8]> = vec![&header];
    pieces.extend(tables.iter().map(Vec::as_slice));
    let first = format!("{FORMAT} {}\n", checksum(&pieces));
    pieces.insert(0, first.as_bytes());
    let name = entry.file_name().expect("an entry name").to_string_lossy();
    let tmp = entry.with_file_name(format!(".tmp-{name}-{}", std::process::id()));
    let written = write_new(&tmp, &pieces).and_then(|()| std::fs::rename(&tmp, entry));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.ctx(|| format!("writing {}", entry.display()))
}

/// Writes `pieces` to a new file at `path` (around the page cache). The cache's directories are
/// made by the first write that finds them missing.
fn write_new(path: &Path, pieces: &[&[u8]]) -> std::io::Result<()> {
    match crate::direct::write(path, pieces) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            private_dirs(path.parent().expect("cache files live in a directory"))?;
            crate::direct::write(path, pieces)
        }
        done => done,
    }
}

/// Makes `dir` and its missing parents, each private to the owner: the cache holds parsed
/// personal data.
fn private_dirs(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    /// A file at `path` with `len` bytes, last modified `age` ago.
    fn file(path: &Path, len: usize, age: Duration) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, vec![b'x'; len]).unwrap();
        let f = std::fs::File::options().write(true).open(path).unwrap();
        f.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn pruning_removes_only_the_caches_own_files_unused_for_long() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (key, other) = ("a".repeat(64), format!("{}0", "b".repeat(63)));
        file(&root.join(&key), 100, 40 * DAY);
        file(&root.join(&other), 7, DAY);
        file(&root.join(format!(".tmp-{key}-42")), 10, 40 * DAY);
        file(&root.join(HASHES).join(&key), 20, 40 * DAY);
        file(&root.join(HASHES).join(format!("{other}.tmp-42")), 3, 40 * DAY);
        file(&root.join(PREPARED).join(&other), 5, 40 * DAY);
        // An entry of the earlier format: a directory of files, made 40 days ago.
        let old_entry = root.join("c".repeat(64));
        file(&old_entry.join("meta.json"), 30, 40 * DAY);
        std::fs::File::open(&old_entry).unwrap().set_modified(SystemTime::now() - 40 * DAY).unwrap();
        // Not the cache's: kept however old.
        file(&root.join("notes.txt"), 1, 400 * DAY);
        file(&root.join("x".repeat(64)), 1, 400 * DAY);

        assert_eq!(Cache::new(root).prune(30 * DAY), (6, 100 + 10 + 20 + 3 + 5 + 30));
        let mut left: Vec<String> =
            std::fs::read_dir(root).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        assert_eq!(left, [other, "hashes".into(), "notes.txt".into(), "prepared".into(), "x".repeat(64)]);
    }

    #[test]
    fn a_file_read_is_marked_used_once_its_mark_is_a_day_old() {
        let dir = tempfile::tempdir().unwrap();
        let (fresh, stale) = (dir.path().join("fresh"), dir.path().join("stale"));
        file(&fresh, 5, Duration::from_secs(3600));
        file(&stale, 5, 3 * DAY);
        let age = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap().elapsed().unwrap();
        assert_eq!(read_used(&stale).unwrap(), b"xxxxx");
        read_used(&fresh).unwrap();
        assert!(age(&stale) < Duration::from_secs(60), "marked");
        assert!(age(&fresh) > Duration::from_secs(3000), "left alone: marked within the day");
    }
}
