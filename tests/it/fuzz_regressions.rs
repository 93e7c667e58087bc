//! Inputs the fuzzers once crashed on (`make fuzz` moves them to `fuzz/regressions/<target>/`),
//! replayed through the same checks on every test run, so that a fixed crash stays fixed.

use crate::support::*;
use std::path::Path;

fn inputs(target: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new("fuzz/regressions").join(target);
    // Where fuzz/run.sh puts a crash input: a renamed or missing directory would make this replay
    // nothing without saying so.
    assert!(dir.join(".gitkeep").is_file(), "{} is where make fuzz keeps crash inputs", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.retain(|p| p.file_name().is_some_and(|n| n != ".gitkeep"));
    files.sort();
    files
}

#[test]
fn loader_crash_inputs_now_load_or_fail_cleanly() {
    for source in ["amazon", "shopify", "woocommerce", "csv"] {
        for input in inputs(source) {
            assert_loads_or_fails(&lenient_stage(source, &input.display().to_string()));
        }
    }
}

#[test]
fn config_crash_inputs_now_parse_or_fail_cleanly() {
    for input in inputs("config") {
        let text = String::from_utf8_lossy(&std::fs::read(&input).unwrap()).into_owned();
        let _ = clv::config::parse(&input, &text);
    }
}
