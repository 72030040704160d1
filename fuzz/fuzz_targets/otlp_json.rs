//! OTLP/JSON on arbitrary text: spans that parse must read back equal
//! after writing them as OTLP/JSON and as OTLP protobuf.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spanlog_fuzz::otlp_json(data));
