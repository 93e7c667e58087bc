//! What the fuzz targets check, kept here so that each target is one line and a crash input can
//! be replayed by the project's tests (`tests/it/fuzz_regressions.rs` runs `fuzz/regressions/`).
//! A loader given any bytes either loads them with every record accounted for (kept or
//! rejected) or returns an error; the config parser returns a pipeline or an error. A panic, an
//! abort, a hang or a blown memory limit is a finding.

use clv::config::{self, Stage};
use clv::fx::FxRates;
use clv::sources::{self, LoadCtx};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug)]
pub enum Source {
    Amazon,
    Shopify,
    Woocommerce,
    Csv,
}

/// A scratch directory for the whole process, with the rates file the pipelines name.
fn scratch() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("fx.csv"),
            "date,currency,rate\n2015-01-01,EUR,1.1\n2015-01-01,GBP,1.3\n2015-01-01,JPY,0.007\n",
        )
        .expect("write rates");
        dir
    })
    .path()
}

pub fn load(source: Source, bytes: &[u8]) {
    let path: PathBuf = scratch().join("input");
    std::fs::write(&path, bytes).expect("write input");
    let p = path.display();
    let stage = match source {
        Source::Amazon => format!("{{ id: src, source: amazon, path: '{p}', max_reject_rate: 1.0 }}"),
        Source::Shopify => format!("{{ id: src, source: shopify, path: '{p}', max_reject_rate: 1.0 }}"),
        Source::Woocommerce => {
            format!(
                "{{ id: src, source: woocommerce, path: '{p}', max_reject_rate: 1.0, constants: {{ currency: EUR }} }}"
            )
        }
        Source::Csv => format!(
            "{{ id: src, source: csv, path: '{p}', max_reject_rate: 1.0, columns: {{ customer: customer, ordered_at: date, amount: amount }}, constants: {{ currency: USD }} }}"
        ),
    };
    let yaml = format!(
        "name: fuzz\nbase_currency: USD\nfx_rates: '{}'\nmarkets: {{ us: [US] }}\nstages:\n  - load: {stage}\n  - unify: {{ id: orders, inputs: [src] }}\n",
        scratch().join("fx.csv").display()
    );
    let pipeline = config::parse(Path::new("fuzz.yaml"), &yaml).expect("the fuzz pipeline is valid");
    let Stage::Load(spec) = &pipeline.stages[0] else { unreachable!("first stage is the load") };
    let fx = FxRates::load(pipeline.fx_rates.as_ref().expect("rates configured"), "USD").expect("rates load");
    if let Ok(loaded) = sources::load(&LoadCtx::new(spec, &fx, pipeline.timezone)) {
        let kept = loaded.records_kept().expect("loaded lines carry file and line");
        assert_eq!(loaded.rows_read as usize, kept + loaded.rejects.height(), "a record was neither kept nor rejected");
    }
}

pub fn config(bytes: &[u8]) {
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = config::parse(Path::new("fuzz.yaml"), text);
    }
}
