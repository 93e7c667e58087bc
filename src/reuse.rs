//! A source whose files, load settings and unify rules are those of an earlier run is not
//! decided again: the earlier run's decisions about it (which lines are kept, each kept line's
//! order, customer and country, the customer keys, the accounting) come from the parse cache,
//! and its lines are loaded from the parsed files and prepared with them (`unify::apply`). The
//! passes that decide (older copies, drop reasons, numbering, countries, Amazon's buyer lookup)
//! were most of a rerun's preparations; the decisions are small to store, where the prepared
//! lines themselves cost a full run ~0.5 s of a core per million lines to store (bench/RESULTS.md,
//! twenty-fifth round). The key is every file's path and SHA-256 with the load settings, as a
//! parsed file's (`sources::cache`), and the unify rules a preparation reads. The as-of date is
//! not in it: it only drops lines ordered after it, so an entry serves the date it was made for
//! and, when none of the source's lines is after that, any date on or after its latest line (a
//! nightly run's date moves every night).

use crate::error::Result;
use crate::fx::epoch_days;
use crate::sources::cache::{self, Cache, Cached};
use crate::sources::{InputFile, LoadCtx, Loaded};
use crate::unify::{self, Accounting, Decided, Prepared, Rules};
use polars::prelude::*;

/// Where a source's decisions are kept.
pub struct Slot {
    /// Known before loading when every file's hash was remembered; else made from the files the
    /// load hashed.
    key: Option<String>,
    /// Each file's path and SHA-256, as the key has them.
    files: Vec<(String, String)>,
}

/// What the cache holds for the source a load stage reads.
pub enum Lookup {
    /// An earlier run's decisions: load the lines without Amazon's buyers and [`apply`] them.
    Found(Box<Found>),
    /// Nothing that serves this run: load and prepare, then [`store`] under the slot.
    Missing(Slot),
}

/// An earlier run's decisions about a source, with what its load said beyond its lines.
pub struct Found {
    decided: Decided,
    keys: StringChunked,
    files: Vec<InputFile>,
    notes: Vec<String>,
}

/// The source `ctx` loads, from the cache. Only files whose hashes are remembered are known
/// without reading them: with one new or changed file the source is decided afresh (a file
/// rewritten with the same bytes costs one night's reuse). `None` when a path matches nothing:
/// the load says why.
pub fn lookup(cache: &Cache, ctx: &LoadCtx, rules: &Rules) -> Option<Lookup> {
    let (paths, buyers) = crate::sources::files_of(ctx.spec).ok()?;
    let remembered = |path: &std::path::PathBuf| Some((path.display().to_string(), cache.remembered_sha256(path)?));
    let Some(files) = paths.iter().chain(&buyers).map(remembered).collect::<Option<Vec<_>>>() else {
        return Some(Lookup::Missing(Slot { key: None, files: Vec::new() }));
    };
    let key = key(ctx, rules, &files);
    let as_of = epoch_days(rules.as_of()) as i64;
    Some(match cache.prepared::<Entry>(&key, |info| serves(info, as_of)) {
        Some(entry) => Lookup::Found(Box::new(entry.into_found())),
        // An entry that is there but does not serve this run is replaced when the slot is stored.
        None => Lookup::Missing(Slot { key: Some(key), files }),
    })
}

/// The key of a source's decisions: its files (path and SHA-256, in path order), the load's
/// settings and the rules a preparation reads but the as-of date.
fn key(ctx: &LoadCtx, rules: &Rules, files: &[(String, String)]) -> String {
    let mut files: Vec<&(String, String)> = files.iter().collect();
    files.sort_unstable();
    let rules_read = rules.for_prepare();
    let mut parts = vec![rules_read.as_str()];
    parts.extend(files.iter().flat_map(|(path, sha256)| [path.as_str(), sha256.as_str()]));
    cache::key::<Entry>(ctx, &parts)
}

/// Prepares the source `ctx` loads with an earlier run's decisions; `loaded` holds its lines
/// without Amazon's buyers. Should they not fit (they always do: the key holds every input), the
/// source is loaded again and prepared from scratch, and the slot to [`store`] its decisions
/// under, replacing the entry, comes back with it.
pub fn apply(ctx: &LoadCtx, rules: &Rules, found: Found, loaded: &mut Loaded) -> Result<(Prepared, Option<Slot>)> {
    let Found { decided, keys, files, notes } = found;
    match unify::apply(&ctx.spec.id, loaded, decided, keys) {
        Ok(prepared) => {
            (loaded.files, loaded.notes) = (files, notes);
            Ok((prepared, None))
        }
        Err(e) => {
            tracing::warn!(stage = %ctx.spec.id, "earlier decisions unusable ({e}): preparing the source again");
            *loaded = crate::sources::load(ctx)?;
            let prepared = unify::prepare(rules, &ctx.spec.id, ctx.spec.kind, loaded)?;
            Ok((prepared, Some(Slot { key: None, files: Vec::new() })))
        }
    }
}

/// What [`store`] makes of a prepared source, before it is written.
pub struct ToStore {
    key: String,
    entry: Entry,
}

impl ToStore {
    pub fn write(self, cache: &Cache) {
        let started = std::time::Instant::now();
        cache.store_prepared(&self.key, &self.entry);
        let (ms, lines) = (started.elapsed().as_millis() as u64, self.entry.columns.height());
        tracing::debug!(ms, lines, "stored a source's decisions");
    }
}

/// A source's decisions to keep for later runs under `slot`. `None` for a source that is
/// changing: some of its files were parsed before and some are new (a platform exported daily
/// gets a new file every night, and its entry would never be used); and when the files loaded are
/// not the ones the slot was keyed by (one changed in between).
pub fn store(
    ctx: &LoadCtx,
    slot: Slot,
    loaded: &Loaded,
    prepared: &Prepared,
    rules: &Rules,
) -> Result<Option<ToStore>> {
    if loaded.parsed != 0 && loaded.parsed != loaded.files.len() {
        return Ok(None);
    }
    let mut loaded_files: Vec<(String, String)> =
        loaded.files.iter().map(|f| (f.path.clone(), f.sha256.clone())).collect();
    let key = match slot.key {
        None => key(ctx, rules, &loaded_files),
        Some(key) => {
            let mut keyed = slot.files;
            loaded_files.sort_unstable();
            keyed.sort_unstable();
            if loaded_files != keyed {
                tracing::debug!(source = %prepared.id, "files changed while loading: the source's decisions are not cached");
                return Ok(None);
            }
            key
        }
    };
    let decided = prepared.decided()?;
    let mut accounting = decided.accounting.clone();
    let money = money(&mut accounting).map(|m| m.to_bits()).collect();
    let info = Info {
        files: loaded.files.clone(),
        notes: loaded.notes.clone(),
        accounting,
        money,
        order_count: decided.order_count,
        as_of: epoch_days(rules.as_of()) as i64,
        latest_day: decided.latest_day,
    };
    let entry = Entry {
        info,
        kept: frame_of(decided.kept.with_name(KEPT.into()).into_column()),
        columns: decided.columns,
        keys: frame_of(prepared.keys().clone().with_name(KEY.into()).into_column()),
    };
    Ok(Some(ToStore { key, entry }))
}

const KEPT: &str = "kept";
const KEY: &str = "key";

fn frame_of(column: Column) -> DataFrame {
    DataFrame::new_infer_height(vec![column]).expect("one column")
}

/// An entry serves a run as of `as_of` (days since the epoch) if it was made for that date, or
/// if no line of the source is after either date.
fn serves(info: &Info, as_of: i64) -> bool {
    info.as_of == as_of || info.latest_day.is_none_or(|d| d <= info.as_of && d <= as_of)
}

/// The accounting's money, in a fixed order: JSON numbers do not bring every f64 back bit for
/// bit (serde_json's `float_roundtrip` would, but turning it on rebuilds Polars), so the entry
/// keeps their bits beside them.
fn money(a: &mut Accounting) -> impl Iterator<Item = &mut f64> {
    [&mut a.revenue_read, &mut a.revenue_kept].into_iter().chain(a.revenue_dropped.values_mut())
}

/// A source's decisions as the cache keeps them.
struct Entry {
    info: Info,
    kept: DataFrame,
    columns: DataFrame,
    keys: DataFrame,
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Info {
    files: Vec<InputFile>,
    notes: Vec<String>,
    accounting: Accounting,
    /// The bits of the accounting's money ([`money`]).
    money: Vec<u64>,
    order_count: u32,
    /// The as-of date it was prepared for and its latest order date, in days since the epoch.
    as_of: i64,
    latest_day: Option<i64>,
}

impl Entry {
    /// Checked by [`Cached::from_tables`].
    fn into_found(self) -> Found {
        let Entry { info, kept, columns, keys } = self;
        let Info { files, notes, mut accounting, money: bits, order_count, as_of: _, latest_day } = info;
        for (m, b) in money(&mut accounting).zip(bits) {
            *m = f64::from_bits(b);
        }
        let kept = kept.column(KEPT).expect("checked").bool().expect("checked").rechunk().into_owned();
        let keys = keys.column(KEY).expect("checked").str().expect("checked").rechunk().into_owned();
        Found { decided: Decided { kept, columns, order_count, accounting, latest_day }, keys, files, notes }
    }
}

impl Cached for Entry {
    const KIND: &'static str = "decided source";
    const TABLES: &'static [&'static str] = &["kept.parquet", "lines.parquet", "keys.parquet"];
    type Info = Info;
    fn info(&self) -> Info {
        self.info.clone()
    }
    fn tables(&self) -> Vec<&DataFrame> {
        vec![&self.kept, &self.columns, &self.keys]
    }
    fn from_tables(mut info: Info, tables: Vec<DataFrame>) -> std::result::Result<Self, String> {
        let [kept, columns, keys]: [DataFrame; 3] = tables.try_into().map_err(|_| "three tables expected")?;
        if money(&mut info.accounting).count() != info.money.len() {
            return Err("meta.json: the accounting's money does not match its bits".into());
        }
        let whole = |df: &DataFrame, name: &str, dtype: &DataType| {
            df.column(name).is_ok_and(|c| c.dtype() == dtype && c.null_count() == 0)
        };
        if !whole(&kept, KEPT, &DataType::Boolean) || !whole(&keys, KEY, &DataType::String) {
            return Err("kept.parquet or keys.parquet: not the flags or keys expected".into());
        }
        Ok(Entry { info, kept, columns, keys })
    }
}
