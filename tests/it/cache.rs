//! The parsed-file cache: a rerun parses only new or changed files (order files and the Amazon
//! buyer report alike) and publishes the same bytes as a run without the cache; changed settings
//! re-parse; a corrupted entry is rebuilt. A source none of whose files changed takes an earlier
//! run's decisions, with the same output.

use crate::support::{run_cached, snapshot};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sample data copied to `dir`, and the nightly pipeline up to unify pointed at the copy.
fn setup(dir: &Path) -> PathBuf {
    for sub in ["amazon", "shopify", "shop"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(Path::new("sample_data").join(sub)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, dir.join(sub).join(p.file_name().unwrap())).unwrap();
        }
    }
    std::fs::copy("sample_data/fx_rates.csv", dir.join("fx_rates.csv")).unwrap();
    let text = std::fs::read_to_string("pipelines/nightly.yaml").unwrap();
    let text = text[..text.find("  - summarize:").unwrap()].replace("sample_data/", &format!("{}/", dir.display()));
    let path = dir.join("p.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A temporary directory with the sample data and pipeline (`setup`) and room for a cache. A
/// file's hash is remembered only once it has been left alone for two seconds: the copies are.
fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let p = setup(&data);
    let cache = dir.path().join("cache");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    (dir, data, p, cache)
}

/// Runs and returns, per load stage, the log's account of its files ("parsed": n, ...).
fn run(p: &Path, out: &Path, cache: Option<&Path>) -> Vec<String> {
    logged(p, out, cache).into_iter().map(|(stage, outcomes, _)| format!("{stage} {outcomes}")).collect()
}

/// Runs and returns, per load stage: its id, the account of its files and how many were read.
fn logged(p: &Path, out: &Path, cache: Option<&Path>) -> Vec<(String, String, usize)> {
    run_cached(p, out, cache)
        .lines()
        .filter(|l| l.contains("files: {"))
        .map(|l| {
            let field = |name: &str| l.split(&format!(" {name}=")).nth(1).unwrap().split_whitespace().next().unwrap();
            let outcomes = &l[l.find('{').unwrap()..=l.find('}').unwrap()];
            (field("stage").to_string(), outcomes.to_string(), field("read").parse().unwrap())
        })
        .collect()
}

/// A rerun does not read files it hashed before and that nobody wrote to since: it knows them by
/// their stat. Any write changes the ctime, even one that keeps the size and puts the mtime back.
#[test]
fn a_rerun_reads_only_files_written_since_they_were_hashed() {
    let (dir, data, p, cache) = scratch();
    let out = |name: &str| dir.path().join(name);
    let reads = |name: &str| logged(&p, &out(name), Some(&cache)).into_iter().map(|l| l.2).collect::<Vec<_>>();
    assert_eq!(reads("cold"), [3, 2, 1], "every file read once");
    assert_eq!(reads("warm"), [0, 0, 0]);
    assert!(std::fs::read_dir(cache.join("hashes")).unwrap().count() == 6, "one remembered hash per file");

    let file = data.join("shop/webtoffee_orders_2025.csv");
    let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("completed", "cancelled", 1)).unwrap();
    std::fs::File::options().write(true).open(&file).unwrap().set_modified(modified).unwrap();
    assert_eq!(std::fs::metadata(&file).unwrap().len(), text.len() as u64);
    let changed = logged(&p, &out("changed"), Some(&cache));
    assert_eq!(changed.iter().map(|l| l.2).collect::<Vec<_>>(), [0, 0, 1]);
    assert_eq!(changed[2].1, "{\"parsed\": 1}");
    run(&p, &out("uncached"), None);
    assert_eq!(snapshot(&out("changed")), snapshot(&out("uncached")));
    assert_ne!(snapshot(&out("changed")), snapshot(&out("warm")), "the changed order is published");
}

#[test]
fn a_rerun_parses_only_new_or_changed_files_and_publishes_the_same_bytes() {
    let (dir, data, p, cache) = scratch();
    let out = |name: &str| dir.path().join(name);

    let cold = run(&p, &out("cold"), Some(&cache));
    assert_eq!(cold, ["amazon {\"parsed\": 3}", "shopify {\"parsed\": 2}", "shop {\"parsed\": 1}"]);
    // Amazon's buyer report is not read again: the buyers are among the decisions reused.
    let warm = run(&p, &out("warm"), Some(&cache));
    assert_eq!(warm, ["amazon {\"from cache\": 2}", "shopify {\"from cache\": 2}", "shop {\"from cache\": 1}"]);
    assert_eq!(snapshot(&out("cold")), snapshot(&out("warm")));

    // A new daily export arrives: only it is parsed, and the output is that of a run without cache.
    let header = std::fs::read_to_string(data.join("shopify/orders_export_2.csv")).unwrap();
    let header = header.lines().next().unwrap();
    let fields = header.split(',').count();
    let mut row = vec![String::new(); fields];
    let at = |name: &str| header.split(',').position(|h| h == name).unwrap();
    for (name, value) in [
        ("Name", "#990001"),
        ("Email", "new.buyer@mail.com"),
        ("Financial Status", "paid"),
        ("Currency", "USD"),
        ("Subtotal", "40.00"),
        ("Shipping", "0.00"),
        ("Taxes", "0.00"),
        ("Total", "40.00"),
        ("Discount Amount", "0.00"),
        ("Created at", "2025-12-30 10:00:00 -0500"),
        ("Lineitem quantity", "2"),
        ("Lineitem price", "20.00"),
        ("Shipping Country", "US"),
    ] {
        row[at(name)] = value.to_string();
    }
    std::fs::write(data.join("shopify/orders_export_3.csv"), format!("{header}\n{}\n", row.join(","))).unwrap();
    let daily = run(&p, &out("daily"), Some(&cache));
    assert_eq!(
        daily,
        ["amazon {\"from cache\": 2}", "shopify {\"from cache\": 2, \"parsed\": 1}", "shop {\"from cache\": 1}"]
    );
    run(&p, &out("daily_uncached"), None);
    assert_eq!(snapshot(&out("daily")), snapshot(&out("daily_uncached")));
    assert_ne!(snapshot(&out("daily")), snapshot(&out("warm")), "the new file's order is published");

    // A corrupted entry is detected and rebuilt, and the output does not change.
    let entry = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file() && entry_parts(p).0["info"].to_string().contains("orders_export_3.csv"))
        .unwrap();
    flip_a_byte_of_the_first_table(&entry);
    let repaired = run(&p, &out("repaired"), Some(&cache));
    assert_eq!(
        repaired,
        ["amazon {\"from cache\": 2}", "shopify {\"from cache\": 2, \"rebuilt\": 1}", "shop {\"from cache\": 1}"]
    );
    assert_eq!(snapshot(&out("repaired")), snapshot(&out("daily_uncached")));
    assert_eq!(run(&p, &out("after_repair"), Some(&cache))[1], "shopify {\"from cache\": 3}");
    // So is an entry whose header was damaged, even where it still reads as JSON: a category.
    let bytes = std::fs::read(&entry).unwrap();
    let at = bytes.windows(4).position(|w| w == b"\"US\"").expect("a country category in the header");
    std::fs::write(&entry, [&bytes[..at + 1], b"UK", &bytes[at + 3..]].concat()).unwrap();
    assert_eq!(run(&p, &out("header"), Some(&cache))[1], "shopify {\"from cache\": 2, \"rebuilt\": 1}");
    assert_eq!(snapshot(&out("header")), snapshot(&out("daily_uncached")));

    // Changed loader settings re-parse that stage's files, and only those.
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(&p, text.replace("timezone: Europe/Berlin", "timezone: Europe/Paris")).unwrap();
    let settings = run(&p, &out("settings"), Some(&cache));
    assert_eq!(settings, ["amazon {\"from cache\": 2}", "shopify {\"from cache\": 3}", "shop {\"parsed\": 1}"]);
    // A changed file is a new file to the cache.
    let file = data.join("shop/webtoffee_orders_2025.csv");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replacen("completed", "cancelled", 1)).unwrap();
    assert_eq!(run(&p, &out("changed"), Some(&cache))[2], "shop {\"parsed\": 1}");

    // A changed buyer report is parsed again, alone, and its buyers are the ones published.
    let report = data.join("amazon/shipments_2025.txt");
    let text = std::fs::read_to_string(&report).unwrap();
    let first = text.lines().nth(1).unwrap().split('\t').nth(10).unwrap().to_string();
    std::fs::write(&report, text.replace(&first, "renamed.buyer@marketplace.amazon.com")).unwrap();
    assert_eq!(run(&p, &out("report"), Some(&cache))[0], "amazon {\"from cache\": 2, \"parsed\": 1}");
    run(&p, &out("report_uncached"), None);
    assert_eq!(snapshot(&out("report")), snapshot(&out("report_uncached")));
    assert_ne!(snapshot(&out("report")), snapshot(&out("changed")), "the renamed buyer is published");
}

/// Test-order patterns are matched while loading (only the verdict is cached), so they are part
/// of the key: changed patterns re-parse every file, and the run drops what an uncached run with
/// them drops, Amazon's buyers (matched in the buyer lookup) included.
#[test]
fn changed_test_order_patterns_reparse_and_drop_as_an_uncached_run() {
    let (dir, _, p, cache) = scratch();
    let out = |name: &str| dir.path().join(name);
    let test_orders = |name: &str| -> Vec<u64> {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(out(name).join("manifest.json")).unwrap()).unwrap();
        let acc = &manifest["accounting"];
        ["amazon", "shopify", "shop"].map(|s| acc[s]["dropped"]["test order"].as_u64().unwrap_or(0)).to_vec()
    };

    run(&p, &out("cold"), Some(&cache));
    let text = std::fs::read_to_string(&p).unwrap();
    let patterns = r#"test_orders: { emails: ["*@outlook.com", "4*@marketplace.amazon.com"], tags: [] }"#;
    let with_patterns = format!("inputs: [amazon, shopify, shop], {patterns} }}");
    std::fs::write(&p, text.replace("inputs: [amazon, shopify, shop] }", &with_patterns)).unwrap();
    let reparsed = run(&p, &out("patterns"), Some(&cache));
    assert_eq!(reparsed, ["amazon {\"parsed\": 3}", "shopify {\"parsed\": 2}", "shop {\"parsed\": 1}"]);
    run(&p, &out("uncached"), None);
    assert_eq!(snapshot(&out("patterns")), snapshot(&out("uncached")));
    assert_eq!(test_orders("patterns"), test_orders("uncached"));
    for (source, (before, after)) in
        ["amazon", "shopify", "shop"].iter().zip(test_orders("cold").into_iter().zip(test_orders("patterns")))
    {
        assert!(after > before, "{source}: {before} test orders without the patterns, {after} with them");
    }
}

/// Runs with `args` and returns the load stages that took an earlier run's decisions.
fn reused(p: &Path, out: &Path, cache: &Path, args: &[&str]) -> Vec<String> {
    let o = Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", p.to_str().unwrap(), "--out", out.to_str().unwrap(), "--cache-dir", cache.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let lines = stderr.lines().filter(|l| l.contains("unchanged since an earlier run"));
    lines.map(|l| l.split(" stage=").nth(1).unwrap().split_whitespace().next().unwrap().to_string()).collect()
}

/// The manifest without its timings: what a run published about its inputs and accounting.
fn manifest(out: &Path) -> serde_json::Value {
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("timings_ms");
    m
}

/// A source unchanged since an earlier run is not decided again (older copies, drops, buyers,
/// numbering): its decisions come from the cache, and the run publishes what a run without the
/// cache publishes, manifest and accounting included. A new file, a changed rule, an as-of date
/// that drops lines or a damaged entry make the source decided afresh.
#[test]
fn an_unchanged_source_takes_its_earlier_decisions_and_publishes_the_same_bytes() {
    let (dir, data, p, cache) = scratch();
    let out = |name: &str| dir.path().join(name);
    let same = |a: &str, b: &str| {
        assert_eq!(snapshot(&out(a)), snapshot(&out(b)), "{a} against {b}");
        assert_eq!(manifest(&out(a)), manifest(&out(b)), "{a} against {b}");
    };
    assert!(reused(&p, &out("cold"), &cache, &[]).is_empty());
    assert_eq!(reused(&p, &out("warm"), &cache, &[]), ["amazon", "shopify", "shop"]);
    run(&p, &out("uncached"), None);
    same("warm", "uncached");
    same("cold", "uncached");

    // A later as-of date drops nothing more (the data ends 2025-12-31): the decisions serve it.
    assert_eq!(reused(&p, &out("later"), &cache, &["--as-of", "2026-03-01"]), ["amazon", "shopify", "shop"]);
    reused(&p, &out("later_uncached"), &dir.path().join("other_cache"), &["--as-of", "2026-03-01"]);
    same("later", "later_uncached");
    // An earlier one drops December's lines: decided afresh, and then kept for that date.
    let early = ["--as-of", "2025-12-01"];
    assert!(reused(&p, &out("early"), &cache, &early).is_empty());
    reused(&p, &out("early_uncached"), &dir.path().join("early_cache"), &early);
    same("early", "early_uncached");
    assert_ne!(manifest(&out("early")), manifest(&out("warm")), "December's lines are dropped");
    assert_eq!(reused(&p, &out("early_again"), &cache, &early), ["amazon", "shopify", "shop"]);
    same("early_again", "early_uncached");
    assert!(reused(&p, &out("back"), &cache, &[]).is_empty(), "entries were replaced for 2025-12-01");

    // A new export: its source is decided afresh, the others are not.
    let file = data.join("shop/webtoffee_orders_2025.csv");
    std::fs::copy(&file, data.join("shop/webtoffee_orders_2026.csv")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(reused(&p, &out("new_file"), &cache, &[]), ["amazon", "shopify"]);
    run(&p, &out("new_file_uncached"), None);
    same("new_file", "new_file_uncached");

    // A damaged entry is not trusted: the source is decided afresh, the output is the same.
    for entry in std::fs::read_dir(cache.join("prepared")).unwrap() {
        flip_a_byte_of_the_first_table(&entry.unwrap().path());
    }
    assert!(reused(&p, &out("damaged"), &cache, &[]).is_empty());
    same("damaged", "new_file_uncached");
    assert_eq!(reused(&p, &out("repaired"), &cache, &[]), ["amazon", "shopify", "shop"]);

    // A changed unify rule decides every source afresh.
    let text = std::fs::read_to_string(&p).unwrap();
    std::fs::write(
        &p,
        text.replace("inputs: [amazon, shopify, shop] }", "inputs: [amazon, shopify, shop], duplicate_channels: [] }"),
    )
    .unwrap();
    assert!(reused(&p, &out("rules"), &cache, &[]).is_empty());
    run(&p, &out("rules_uncached"), None);
    same("rules", "rules_uncached");
}

/// An entry that passes its checksums yet does not fit the loaded lines (it cannot happen, since
/// the key holds every input: forged here, one line short) is not used: the source is loaded and
/// prepared afresh, the run publishes what an uncached run publishes, and the entry is replaced.
#[test]
fn decisions_that_do_not_fit_the_lines_are_made_afresh_and_replaced() {
    let (dir, _data, p, cache) = scratch();
    let out = |name: &str| dir.path().join(name);
    assert!(reused(&p, &out("cold"), &cache, &[]).is_empty());
    let entries: Vec<PathBuf> = std::fs::read_dir(cache.join("prepared")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(entries.len(), 3, "one entry per source");
    for entry in &entries {
        one_line_short(entry);
    }
    let warnings = |name: &str| {
        let o = Command::new(env!("CARGO_BIN_EXE_clv"))
            .args(["run", p.to_str().unwrap(), "--out", out(name).to_str().unwrap()])
            .args(["--cache-dir", cache.to_str().unwrap()])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(o.status.success(), "{stderr}");
        stderr.lines().filter(|l| l.contains("earlier decisions unusable")).count()
    };
    assert_eq!(warnings("forged"), 3);
    run(&p, &out("uncached"), None);
    for name in ["forged", "cold"] {
        assert_eq!(snapshot(&out(name)), snapshot(&out("uncached")), "{name}");
        assert_eq!(manifest(&out(name)), manifest(&out("uncached")), "{name}");
    }
    // Replaced: the next run takes every source's decisions from the cache, without a warning.
    assert_eq!(warnings("after"), 0);
    assert_eq!(reused(&p, &out("again"), &cache, &[]), ["amazon", "shopify", "shop"]);
    assert_eq!(snapshot(&out("again")), snapshot(&out("uncached")));
}

/// Rewrites a decisions entry's kept-line flags one line short, with a checksum that matches.
fn one_line_short(entry: &Path) {
    use polars::prelude::{ParquetReader, ParquetWriter, SerReader};
    let (header, mut tables) = entry_parts(entry);
    assert_eq!(tables.len(), 3, "kept, lines, keys");
    let all = ParquetReader::new(std::io::Cursor::new(&tables[0])).finish().unwrap();
    let mut short = all.slice(0, all.height() - 1);
    tables[0].clear();
    ParquetWriter::new(&mut tables[0]).finish(&mut short).unwrap();
    write_entry_parts(entry, header, &tables);
}

/// A cache entry's header (JSON) and tables, as `clv::sources::cache::FORMAT` lays them out.
fn entry_parts(entry: &Path) -> (serde_json::Value, Vec<Vec<u8>>) {
    let bytes = std::fs::read(entry).unwrap();
    let mut lines = bytes.splitn(3, |&b| b == b'\n');
    let first = String::from_utf8(lines.next().unwrap().to_vec()).unwrap();
    assert!(first.starts_with(clv::sources::cache::FORMAT), "{first}");
    let header: serde_json::Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
    let mut body = lines.next().unwrap();
    let tables = header["lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|len| {
            let (table, rest) = body.split_at(len.as_u64().unwrap() as usize);
            body = rest;
            table.to_vec()
        })
        .collect();
    assert!(body.is_empty());
    (header, tables)
}

/// Writes an entry of `header` and `tables` with lengths and a checksum that match.
fn write_entry_parts(entry: &Path, mut header: serde_json::Value, tables: &[Vec<u8>]) {
    header["lengths"] = tables.iter().map(Vec::len).collect::<Vec<_>>().into();
    let mut rest = serde_json::to_vec(&header).unwrap();
    rest.push(b'\n');
    tables.iter().for_each(|t| rest.extend_from_slice(t));
    let first = format!("{} {:032x}\n", clv::sources::cache::FORMAT, xxhash_rust::xxh3::xxh3_128(&rest));
    std::fs::write(entry, [first.as_bytes(), &rest].concat()).unwrap();
}

/// Damages an entry: one byte in the middle of its first table.
fn flip_a_byte_of_the_first_table(entry: &Path) {
    let bytes = std::fs::read(entry).unwrap();
    let (_, tables) = entry_parts(entry);
    let at = bytes.len() - tables.iter().map(Vec::len).sum::<usize>() + tables[0].len() / 2;
    let mut damaged = bytes;
    damaged[at] ^= 0xff;
    std::fs::write(entry, damaged).unwrap();
}

/// After a successful run the cache loses what no run has used for `--cache-keep-days` (30 by
/// default): what this run used stays, marked used; a stale entry and a leftover of the earlier
/// format go; a file that is not the cache's stays however old.
#[test]
fn a_run_removes_what_no_run_used_for_the_days_kept() {
    let (dir, _data, p, cache) = scratch();
    let out = |name: &str| dir.path().join(name);
    run(&p, &out("cold"), Some(&cache));
    let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
    let (stale, earlier_format, foreign) =
        (cache.join("d".repeat(64)), cache.join("e".repeat(64)), cache.join("README"));
    std::fs::write(&stale, "an entry of another clv version").unwrap();
    std::fs::create_dir(&earlier_format).unwrap();
    std::fs::write(earlier_format.join("meta.json"), "{}").unwrap();
    std::fs::write(&foreign, "not the cache's").unwrap();
    let mut files = vec![];
    for sub in ["", "hashes", "prepared"] {
        files.extend(std::fs::read_dir(cache.join(sub)).unwrap().map(|e| e.unwrap().path()));
    }
    for f in &files {
        std::fs::File::open(f).unwrap().set_modified(long_ago).unwrap();
    }
    let warm = run(&p, &out("warm"), Some(&cache));
    assert!(warm.iter().all(|l| !l.contains("parsed")), "{warm:?}");
    assert!(!stale.exists() && !earlier_format.exists() && foreign.exists());
    // What the warm run used is still there: the next run too finds every file in the cache.
    let again = logged(&p, &out("again"), Some(&cache));
    assert!(again.iter().all(|(_, outcomes, read)| *read == 0 && !outcomes.contains("parsed")), "{again:?}");
    run(&p, &out("uncached"), None);
    assert_eq!(snapshot(&out("again")), snapshot(&out("uncached")));
}
