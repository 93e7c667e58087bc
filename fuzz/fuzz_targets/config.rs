#![no_main]
//! The pipeline YAML parser and validator on arbitrary text: a pipeline or an error, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| clv_fuzz::config(data));
