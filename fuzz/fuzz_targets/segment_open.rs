//! Opening and reading a sealed segment made of arbitrary bytes (and of
//! the same bytes with checksums repaired): a clean error, or a segment
//! whose lookups agree with its blocks when `verify` finds it clean.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spanlog_fuzz::segment_open(data));
