//! Publication under failure: the run is SIGKILLed at each publication step (failpoints chosen by
//! CLV_FAILPOINT) and at random times; the previous output must survive until the journal exists,
//! and the next run must recover and equal a clean run byte for byte.

use crate::support::snapshot;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The nightly pipeline up to unify: publication is what is under test, and this runs fast.
fn pipeline(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string("pipelines/nightly.yaml").unwrap();
    let end = text.find("  - summarize:").unwrap();
    let path = dir.join("p.yaml");
    std::fs::write(&path, &text[..end]).unwrap();
    path
}

fn command(p: &Path, out: &Path, as_of: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_clv"));
    c.args(["run", p.to_str().unwrap(), "--as-of", as_of, "--out", out.to_str().unwrap()]).stdout(Stdio::null());
    c
}

fn run(p: &Path, out: &Path, as_of: &str) {
    let o = command(p, out, as_of).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Runs until the failpoint says it is reached, then SIGKILLs the process.
fn kill_at(p: &Path, out: &Path, as_of: &str, failpoint: &str) {
    let mut child = command(p, out, as_of).env("CLV_FAILPOINT", failpoint).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let reached = stderr.lines().map_while(Result::ok).any(|l| l.contains(&format!("failpoint {failpoint} reached")));
    assert!(reached, "the run ended without reaching failpoint {failpoint}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Whether a run left a staging directory in `out`.
fn has_staging(out: &Path) -> bool {
    std::fs::read_dir(out).unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".staging"))
}

#[test]
fn killed_at_every_publication_step_then_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let clean = dir.path().join("clean");
    run(&p, &clean, "2026-01-01");
    let want = snapshot(&clean);
    assert!(want.keys().any(|k| k.starts_with("orders/")) && want.contains_key("_SUCCESS"));

    for failpoint in ["staged", "journal", "swap", "swapped"] {
        let out = dir.path().join(failpoint);
        run(&p, &out, "2025-06-30");
        let previous = snapshot(&out);
        assert_ne!(previous, want, "the previous output differs from the new one");
        kill_at(&p, &out, "2026-01-01", failpoint);
        if failpoint == "staged" || failpoint == "journal" {
            assert_eq!(snapshot(&out), previous, "killed at {failpoint}: the previous output is intact");
        }
        run(&p, &out, "2026-01-01");
        assert_eq!(snapshot(&out), want, "killed at {failpoint}, then rerun: equals a clean run");
        assert!(!has_staging(&out));
    }
}

#[test]
fn killed_at_random_times_then_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let clean = dir.path().join("clean");
    run(&p, &clean, "2026-01-01");
    let out = dir.path().join("out");
    run(&p, &out, "2025-06-30");
    // Fixed delays spread over a run's life (a run here takes about a second).
    for ms in [40, 150, 300, 500, 700, 900] {
        let mut child = command(&p, &out, "2026-01-01").stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        child.wait().unwrap();
    }
    run(&p, &out, "2026-01-01");
    assert_eq!(snapshot(&out), snapshot(&clean));
}

#[test]
fn two_concurrent_runs_on_one_market_one_exits_75_the_other_wins() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let clean = dir.path().join("clean");
    run(&p, &clean, "2026-01-01");
    let out = dir.path().join("out");
    // The winner pauses mid-publication, holding its locks.
    let mut winner =
        command(&p, &out, "2026-01-01").env("CLV_FAILPOINT", "staged:1500").stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(winner.stderr.take().unwrap()).lines();
    assert!(lines.by_ref().map_while(Result::ok).any(|l| l.contains("failpoint staged reached")));
    let loser = command(&p, &out, "2025-06-30").output().unwrap();
    let message = String::from_utf8_lossy(&loser.stderr);
    assert_eq!(loser.status.code(), Some(75), "{message}");
    assert!(message.contains(&format!("pid {}", winner.id())), "the message names the holder: {message}");
    assert!(winner.wait().unwrap().success());
    assert_eq!(snapshot(&out), snapshot(&clean), "the output is the winner's");
}

#[test]
fn concurrent_runs_on_different_markets_equal_one_run_over_all() {
    let dir = tempfile::tempdir().unwrap();
    let nightly = Path::new("pipelines/nightly.yaml");
    let all = dir.path().join("all");
    run(nightly, &all, "2026-01-01");
    let shared = dir.path().join("shared");
    let children: Vec<_> = ["us", "uk", "eu", "other"]
        .iter()
        .map(|m| command(nightly, &shared, "2026-01-01").args(["--market", m]).stderr(Stdio::piped()).spawn().unwrap())
        .collect();
    for child in children {
        let o = child.wait_with_output().unwrap();
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{log}");
        // Each run fits only the market it publishes (every sample market is small, so each still
        // pools all markets for the all-markets fit: the outputs below must not move).
        assert!(log.contains("fitted stage=clv markets=1"), "{log}");
    }
    // The index compares markets, so only a run over all of them writes it.
    let without_index = |mut s: std::collections::BTreeMap<String, Vec<u8>>| {
        s.remove("reports/index.html");
        s
    };
    let (one, many) = (without_index(snapshot(&all)), without_index(snapshot(&shared)));
    assert_eq!(one.keys().collect::<Vec<_>>(), many.keys().collect::<Vec<_>>());
    for (file, bytes) in &one {
        assert!(many[file] == *bytes, "{file} differs");
    }
}

/// A market named twice is published once, as when named once (it used to wait for its own lock).
#[test]
fn a_market_named_twice_is_one_market() {
    let dir = tempfile::tempdir().unwrap();
    let nightly = Path::new("pipelines/nightly.yaml");
    let (once, twice) = (dir.path().join("once"), dir.path().join("twice"));
    for (out, args) in [(&once, &["--market", "uk"][..]), (&twice, &["--market", "uk", "--market", "uk"][..])] {
        let o = command(nightly, out, "2026-01-01").args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(snapshot(&once), snapshot(&twice));
}

/// The `run_id` of every Parquet file in the directory behind `dir`, each opened through that
/// directory handle (as a reader that lists a partition and then reads it does), or None when the
/// directory vanished or emptied under the reader (a swapped-out partition is deleted file by file
/// after the swap: the reader retries).
fn run_ids_through(dir: &std::fs::File) -> Option<std::collections::BTreeSet<String>> {
    use std::os::fd::AsRawFd;
    let base = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let mut ids = std::collections::BTreeSet::new();
    for e in std::fs::read_dir(&base).ok()? {
        let name = e.ok()?.file_name();
        if !name.to_string_lossy().ends_with(".parquet") {
            continue;
        }
        let file = std::fs::File::open(base.join(&name)).ok()?;
        let reader = parquet::file::reader::SerializedFileReader::new(file).ok()?;
        let kv = parquet::file::reader::FileReader::metadata(&reader).file_metadata().key_value_metadata()?.clone();
        ids.insert(kv.into_iter().find(|e| e.key == "run_id")?.value?);
    }
    (!ids.is_empty()).then_some(ids)
}

#[test]
fn a_reader_of_a_partition_never_sees_old_and_new_files_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let nightly = Path::new("pipelines/nightly.yaml");
    let out = dir.path().join("out");
    run(nightly, &out, "2025-06-30");
    // The action lists: eight files in one partition, all rewritten by every run.
    let partition = out.join("actions/market=us");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (stop, partition) = (stop.clone(), partition.clone());
        std::thread::spawn(move || {
            let (mut looks, mut mixed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(handle) = std::fs::File::open(&partition) else { continue };
                if let Some(ids) = run_ids_through(&handle) {
                    looks += 1;
                    if ids.len() != 1 {
                        mixed.push(ids);
                    }
                }
            }
            (looks, mixed)
        })
    };
    // Runs alternate between two as-of dates (two run ids); each pauses after its first swap.
    for as_of in ["2026-01-01", "2025-06-30", "2026-01-01"] {
        let o = command(nightly, &out, as_of).env("CLV_FAILPOINT", "swap:200").output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (looks, mixed) = reader.join().unwrap();
    assert!(looks > 10, "the reader looked only {looks} times");
    assert!(mixed.is_empty(), "a reader saw files of two runs in one partition: {mixed:?}");
}

/// A stage that fails after the orders partitions are staged (here: an unreadable spend file)
/// publishes nothing and leaves no staging directory behind (the flat orders table is being built
/// into it on a thread of its own by then: the run waits for that thread before removing it).
#[test]
fn a_stage_failing_after_unify_publishes_nothing_and_leaves_no_staging() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(dir.path());
    let out = dir.path().join("out");
    run(&p, &out, "2025-06-30");
    let previous = snapshot(&out);
    let spend = dir.path().join("spend.csv");
    std::fs::write(&spend, "month,market,channel\n2025-01,us,google\n").unwrap();
    let mut yaml = std::fs::read_to_string(&p).unwrap();
    yaml.push_str(&format!("  - spend: {{ id: spend, path: '{}' }}\n", spend.display()));
    std::fs::write(&p, yaml).unwrap();
    let o = command(&p, &out, "2026-01-01").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("spend.csv") && stderr.contains("missing column 'spend'"), "{stderr}");
    assert_eq!(snapshot(&out), previous, "the previous output is intact");
    assert!(!has_staging(&out));
}
