#![no_main]
//! The csv loader on arbitrary bytes: loads with every record accounted for, or fails with an error.
libfuzzer_sys::fuzz_target!(|data: &[u8]| clv_fuzz::load(clv_fuzz::Source::Csv, data));
