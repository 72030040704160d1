//! Footer sections (trace index and postings, bloom filter, catalog and
//! block operations, dictionary, digests, services and rows, attribute
//! filters) decoded one by one from arbitrary bytes; what decodes must
//! re-encode to the same thing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spanlog_fuzz::footer_decode(data));
