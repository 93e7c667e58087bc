//! Configuration errors: one snapshot per kind of mistake (file, YAML path, line, column, caret),
//! several problems reported at once, and every shipped pipeline valid.

use clv::config;
use std::path::Path;

fn errors(yaml: &str) -> String {
    match config::parse(Path::new("pipelines/bad.yaml"), yaml) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e.to_string(),
    }
}

const HEAD: &str = "name: t\nbase_currency: USD\nmarkets: { us: [US], eu: [DE, FR] }\n";
const SHOPIFY: &str = "tests/fixtures/shopify_real/zhangerson_shopify_parsing__orders_export.csv";

#[test]
fn unknown_field_points_at_the_stage() {
    let yaml = format!(
        "{HEAD}stages:\n  - load: {{ id: s, source: shopify, pth: {SHOPIFY} }}\n  - unify: {{ id: o, inputs: [s] }}\n"
    );
    insta::assert_snapshot!(errors(&yaml));
}

#[test]
fn wrong_type_and_unknown_source_in_two_stages_are_both_reported() {
    let yaml = format!(
        "{HEAD}stages:\n  - load: {{ id: a, source: ebay, path: {SHOPIFY} }}\n  - load:\n      id: b\n      source: csv\n      path: {SHOPIFY}\n      has_header: maybe\n  - unify: {{ id: o, inputs: [a, b] }}\n"
    );
    let msg = errors(&yaml);
    assert!(msg.starts_with("2 problem(s)"), "{msg}");
    insta::assert_snapshot!(msg);
}

#[test]
fn semantic_problems_are_collected_with_locations() {
    let yaml = format!(
        "name: t\nbase_currency: usd\ntimezone: Mars/Olympus\nmarkets:\n  us: [US, XX]\n  eu: [DE, US]\nstages:\n  - load: {{ id: s, source: shopify, path: {SHOPIFY}, buyers: x.txt }}\n  - load: {{ id: s, source: csv, path: missing/*.csv }}\n  - unify: {{ id: o, inputs: [s, amazon] }}\n"
    );
    let msg = errors(&yaml);
    for needle in [
        "base_currency: 'usd' is not an ISO 4217 code",
        "timezone: 'Mars/Olympus' is not an IANA time zone",
        "markets.us[1]: 'XX' is not an ISO 3166-1 alpha-2",
        "markets.us[0]: country US is already in market `eu`",
        "stages[0].load.buyers: not used by source `shopify`",
        "stages[1].load.id: id 's' is used by an earlier stage",
        "stages[1].load.path: no file matches 'missing/*.csv'",
        "stages[1].load.columns: source `csv` needs a column mapping",
        "stages[2].unify.inputs[1]: 'amazon' is not a load stage defined above",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
    insta::assert_snapshot!(msg);
}

#[test]
fn yaml_syntax_error() {
    let yaml = format!(
        "{HEAD}stages:\n  - load: {{ id: s, source: shopify, path: {SHOPIFY}\n  - unify: {{ id: o, inputs: [s] }}\n"
    );
    insta::assert_snapshot!(errors(&yaml));
}

#[test]
fn csv_mapping_needs_customer_date_and_amounts() {
    let yaml = format!(
        "{HEAD}stages:\n  - load: {{ id: s, source: csv, path: {SHOPIFY}, delimiter: '::', columns: {{ quantity: Lineitem quantity }} }}\n  - unify: {{ id: o, inputs: [s] }}\n"
    );
    insta::assert_snapshot!(errors(&yaml));
}

#[test]
fn missing_unify_stage() {
    let yaml = format!("{HEAD}stages:\n  - load: {{ id: s, source: shopify, path: {SHOPIFY} }}\n");
    insta::assert_snapshot!(errors(&yaml));
}

/// One unify stage, after every load: it prepares each source as it is loaded, and the orders
/// partitions are staged with it from every file loaded so far.
#[test]
fn unify_is_one_stage_after_the_loads() {
    let load = |id: &str| format!("  - load: {{ id: {id}, source: shopify, path: {SHOPIFY} }}\n");
    let unify = |id: &str| format!("  - unify: {{ id: {id}, inputs: [s] }}\n");
    for (stages, want) in [
        (load("s") + &unify("a") + &unify("b"), "stages: has 2 `unify` stages: one builds the orders table"),
        (load("s") + &unify("a") + &load("t"), "stages[2].load: a load stage after the unify stage"),
    ] {
        let errors = errors(&format!("{HEAD}stages:\n{stages}"));
        assert!(errors.contains(want), "{errors}");
    }
}

#[test]
fn every_shipped_pipeline_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir("pipelines").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            if let Err(e) = config::load(&path) {
                panic!("{}: {e}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 1);
}

#[test]
fn validate_command_reports_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, format!("{HEAD}stages:\n  - load: {{ id: s, source: shopify, pth: x }}\n")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["validate", "pipelines/nightly.yaml"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("pipelines/nightly.yaml: ok"), "{stdout}");
    assert!(
        stderr.contains("bad.yaml:5:") && stderr.contains("unknown field `pth`") && stderr.contains('^'),
        "{stderr}"
    );
}

#[test]
fn hostile_yaml_is_refused_with_a_clear_error() {
    // Billion laughs: nine levels of nine aliases.
    let mut bomb = vec![r#"a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]"#.to_string()];
    for i in 1..10 {
        bomb.push(format!("a{i}: &a{i} [{}]", vec![format!("*a{}", i - 1); 9].join(",")));
    }
    let msg = errors(&(bomb.join("\n") + "\nname: x\n"));
    assert!(msg.contains("refused: aliases expand to too much data"), "{msg}");

    let deep = format!("name: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    let msg = errors(&deep);
    assert!(msg.contains("refused: nested too deeply"), "{msg}");
    assert!(msg.lines().all(|l| l.chars().count() < 200), "the caret display is cut to a window");

    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.yaml");
    std::fs::write(&huge, format!("name: \"{}\"\n", "x".repeat(2 << 20))).unwrap();
    let msg = config::load(&huge).unwrap_err().to_string();
    assert!(msg.contains("a pipeline file is at most 1 MiB"), "{msg}");
}

#[test]
fn names_that_become_paths_cannot_leave_the_output_root() {
    // Stage ids name `rejects/source=<id>/`, market names `<table>/market=<m>/`: both are restricted
    // to lower-case letters, digits, '_' and '-', so no YAML value can point outside the root.
    let yaml = format!(
        "name: t\nbase_currency: USD\nmarkets: {{ '../../etc': [US], 'a/b': [DE] }}\nstages:\n  - load: {{ id: '../x', source: shopify, path: {SHOPIFY} }}\n  - unify: {{ id: '/abs', inputs: ['../x'] }}\n"
    );
    let msg = errors(&yaml);
    for needle in [
        "markets.../../etc: market name '../../etc' must be lower-case letters",
        "markets.a/b: market name 'a/b' must be lower-case letters",
        "stages[0].load.id: id '../x' must be lower-case letters",
        "stages[1].unify.id: id '/abs' must be lower-case letters",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
}

#[test]
fn analysis_stages_appear_at_most_once() {
    let yaml = format!(
        "{HEAD}stages:\n  - load: {{ id: s, source: shopify, path: {SHOPIFY} }}\n  - unify: {{ id: a, inputs: [s] }}\n  - unify: {{ id: b, inputs: [s] }}\n"
    );
    assert!(errors(&yaml).contains("stages[2].unify: a pipeline has at most one `unify` stage"), "{}", errors(&yaml));
}
