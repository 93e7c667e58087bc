//! `manifest.json`: what a run read (path, bytes, SHA-256, rows), what it wrote (path, rows), how
//! every source's rows were accounted for, and the stage timings (the only non-deterministic part).

use crate::sources::InputFile;
use crate::unify::Accounting;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub pipeline: String,
    pub run_id: String,
    pub as_of: String,
    pub base_currency: String,
    pub schema_version: String,
    pub markets: Vec<String>,
    pub inputs: Vec<InputFile>,
    pub outputs: Vec<Output>,
    pub accounting: BTreeMap<String, Accounting>,
    pub timings_ms: BTreeMap<String, u128>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Output {
    pub path: String,
    pub rows: u64,
}
