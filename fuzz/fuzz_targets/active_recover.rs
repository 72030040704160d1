//! Recovering a write-ahead log made of arbitrary bytes: read-only,
//! strict and truncating recovery agree, and the truncated log recovers
//! cleanly to the same spans.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spanlog_fuzz::active_recover(data));
