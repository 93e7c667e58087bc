//! The Parquet outputs against the documented contract (docs/outputs.md), read back by DuckDB and
//! pyarrow (tests/bi/check.sh installs them from PyPI into a virtualenv).

use std::process::Command;

#[test]
fn every_output_table_matches_docs_outputs_md_in_duckdb_and_pyarrow() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    crate::support::run_nightly(&out, &[]);
    let check = Command::new("bash").arg("tests/bi/check.sh").arg(&out).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "{text}");
    assert!(text.contains("files in 7 tables match docs/outputs.md"), "{text}");

    // The checker is not a rubber stamp: a contract saying net_base is a DOUBLE fails.
    let doc = std::fs::read_to_string("docs/outputs.md").unwrap();
    let wrong = doc.replace("| `net_base` | INT64 | DECIMAL(18,2) |", "| `net_base` | DOUBLE | - |");
    assert_ne!(doc, wrong);
    let wrong_doc = dir.path().join("outputs.md");
    std::fs::write(&wrong_doc, wrong).unwrap();
    let venv = std::env::var("CLV_BI_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/clv-bi-venv", std::env::var("HOME").unwrap()));
    let check = Command::new(format!("{venv}/bin/python"))
        .arg("tests/bi/check_outputs.py")
        .arg(&out)
        .arg(&wrong_doc)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(!check.status.success() && text.contains("BI contract violations") && text.contains("net_base"), "{text}");
}
