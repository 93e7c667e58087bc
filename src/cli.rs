//! Command line: `run`, `validate`, `sample`. Exit codes are part of the interface (cron, make).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXIT_CODES: &str = "\
Exit codes:
  0   success
  1   data failure: a threshold (max_reject_rate) or a reconciliation failed; nothing was published
  2   usage error, invalid pipeline, or an input that cannot be read (missing file or column,
      wrong encoding); nothing was published
  75  another run holds the lock on a market (try again later)";

#[derive(Debug, Parser)]
#[command(name = "clv", version, about = "Customer-lifetime-value pipeline: Amazon, Shopify and WooCommerce exports in, Parquet and reports out", after_help = EXIT_CODES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr: `text` for people, `json` for cron and log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline: load, unify, publish Parquet tables, reports and manifest.json.
    #[command(after_help = EXIT_CODES)]
    Run {
        /// The pipeline YAML file.
        pipeline: PathBuf,
        /// Output root (overrides the pipeline's `output`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Date the run is as of, YYYY-MM-DD (overrides the pipeline's `as_of`); later orders are dropped.
        #[arg(long, value_parser = parse_date)]
        as_of: Option<chrono::NaiveDate>,
        /// Restrict the run to this market and publish only its partitions (repeatable).
        #[arg(long = "market", value_name = "M")]
        markets: Vec<String>,
        /// Worker threads for Polars and for model fitting (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Keep each parsed export file here, keyed by its content and the load settings, so
        /// that the next run parses only new or changed files and does not read a file untouched
        /// since it was hashed; a source none of whose files changed takes the earlier run's
        /// decisions (kept lines, customers, accounting) from here too [default:
        /// $XDG_CACHE_HOME/clv/parsed or ~/.cache/clv/parsed]. It holds parsed order data,
        /// personal fields included.
        #[arg(long, env = "CLV_CACHE_DIR", value_name = "DIR")]
        cache_dir: Option<PathBuf>,
        /// Parse every file; neither read nor write the cache (wins over --cache-dir).
        #[arg(long)]
        no_cache: bool,
        /// After a successful run, remove what no run has used for this many days: entries of
        /// other clv versions or settings, of exports since deleted.
        #[arg(long, env = "CLV_CACHE_KEEP_DAYS", value_name = "DAYS", default_value_t = 30,
              value_parser = clap::value_parser!(u32).range(1..))]
        cache_keep_days: u32,
        /// Soft memory target, e.g. 2.75GiB or 4096MiB: below it freed memory is kept for reuse
        /// (each page handed back to the kernel costs a page fault to take again), above it it is
        /// handed back [default: 2.75GiB, or half of the machine's or cgroup's memory if less]. It
        /// bounds the allocator's spare memory, not the data a run holds.
        #[arg(long, env = "CLV_MEMORY_TARGET", value_name = "SIZE", value_parser = crate::memory::parse_size)]
        memory_target: Option<u64>,
    },
    /// Check pipeline files without reading data: every problem at once, with line and caret.
    #[command(after_help = EXIT_CODES)]
    Validate {
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
    },
    /// Write synthetic exports in the real Amazon, Shopify and WooCommerce formats, plus fx_rates.csv and marketing_spend.csv.
    Sample {
        #[arg(long)]
        out: PathBuf,
        /// Number of customers to simulate.
        #[arg(long, default_value_t = 400, conflicts_with = "lines")]
        customers: usize,
        /// Size the data by order lines instead: about this many data lines across the order
        /// exports (the benchmark's unit); the customers simulated follow from it.
        #[arg(long)]
        lines: Option<usize>,
        /// One order export per platform and month, as a seller downloading monthly reports has,
        /// instead of one file per pull.
        #[arg(long, conflicts_with = "daily")]
        monthly: bool,
        /// One order export per platform and day, as a scheduled daily report makes.
        #[arg(long)]
        daily: bool,
        /// Random seed: the same seed writes the same files.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn parse_date(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("'{s}' is not a date YYYY-MM-DD"))
}
