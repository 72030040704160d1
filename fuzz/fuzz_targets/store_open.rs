//! A store directory of up to four arbitrary files: read-only and writer
//! opens, lookups, scans and searches are clean errors or consistent
//! results, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spanlog_fuzz::store_open(data));
