//! `clv`: customer lifetime value for cross-border sellers, from the platforms' own order exports.
//! Data flows one way: config -> sources -> unify -> summarize -> clv -> segment / cohorts / cac
//! -> publish (see docs/architecture.md).

pub mod cac; // marketing spend, CAC and LTV:CAC
pub mod cli; // command-line interface and exit codes
pub mod clv; // the clv stage: fits per market, holdout, scores, formulas
pub mod cohort; // acquisition cohorts: retention and LTV curves
pub mod config; // pipeline YAML -> typed, validated Pipeline
pub mod countries; // country codes and names -> ISO alpha-2
pub mod direct; // files written around the page cache
pub mod error; // error type and exit codes
pub mod frame; // the thin wrapper around Polars' API
pub mod fx; // exchange rates
pub mod identity; // pseudonymous customer ids
pub mod memory; // the soft memory target: when freed memory goes back to the kernel
pub mod models; // BG/NBD, Pareto/NBD, Gamma-Gamma
pub mod pipeline; // runs the stages and publishes
pub mod progress; // progress spinners on terminals
pub mod publish; // staged, swapped-in Parquet and manifest
pub mod report; // reports people read
pub mod reuse; // an unchanged source takes an earlier run's decisions from the cache
pub mod sample; // synthetic exports in the real formats
pub mod schema; // canonical column names
pub mod segment; // value tiers, RFM, lifecycle, action lists
pub mod slots; // numbering text keys by sorting their hashes
pub mod sources; // one loader per platform + the generic CSV source
pub mod summarize; // order lines -> purchase events per customer
pub mod unify; // one order-line table from many sources
