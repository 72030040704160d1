//! Block decoding on arbitrary bytes (and on the same bytes with their
//! checksums repaired): a clean error, or spans that agree with the block's
//! view and survive re-encoding. See `checks.rs`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spanlog_fuzz::block_decode(data));
