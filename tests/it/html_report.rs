//! The HTML reports: one page per market and an index, self-contained, escaped, and rendering in
//! a real browser (headless Chromium, installed by tests/report/browser.sh when missing).

use std::process::Command;

#[test]
fn html_reports_render_in_chromium_with_their_charts() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // A hostile channel name in the spend file: text from the data must reach the page escaped.
    let spend = std::fs::read_to_string("sample_data/marketing_spend.csv").unwrap()
        + "2025-12,us,<img src=x onerror=alert(1)>,10,USD\n";
    let spend_path = dir.path().join("spend.csv");
    std::fs::write(&spend_path, spend).unwrap();
    let pipeline = std::fs::read_to_string("pipelines/nightly.yaml")
        .unwrap()
        .replace("sample_data/marketing_spend.csv", spend_path.to_str().unwrap());
    let yaml = dir.path().join("nightly.yaml");
    std::fs::write(&yaml, pipeline).unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", yaml.to_str().unwrap(), "--as-of", "2026-01-01", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let index = std::fs::read_to_string(out.join("reports/index.html")).unwrap();
    for market in ["us", "uk", "eu", "other"] {
        let page = std::fs::read_to_string(out.join(format!("reports/{market}.html"))).unwrap();
        assert!(page.starts_with("<!doctype html>") && !page.contains("<script") && !page.contains("http"), "{market}");
        assert!(index.contains(&format!("href=\"{market}.html\"")), "the index links {market}");
    }
    let us = std::fs::read_to_string(out.join("reports/us.html")).unwrap();
    assert!(!us.contains("<img") && us.contains("&lt;img src=x onerror=alert(1)&gt;"), "data text is escaped");
    assert!(us.contains("Who holds the value") && us.contains("Cohorts: do new customers come back?"));

    let shot = dir.path().join("us.png");
    let check = Command::new("bash")
        .args(["tests/report/browser.sh", out.join("reports/us.html").to_str().unwrap(), shot.to_str().unwrap(), "8"])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    assert!(check.status.success(), "{text}");
    assert!(text.contains("charts rendered") && text.contains("no script errors"), "{text}");
}
