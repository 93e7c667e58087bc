//! The one integration-test binary: loaders on real export files, configuration errors, shipped
//! pipelines, and `clv run` end to end on the committed sample data.

mod acquisition;
mod bad_input;
mod bi_contract;
mod cache;
mod config_errors;
mod daily_files;
mod end_to_end;
mod fuzz_regressions;
mod html_report;
mod loaders;
mod models;
mod properties;
mod reliability;
mod support;
mod unify_rules;
