//! OTLP protobuf on arbitrary bytes: spans that decode must read back
//! equal after writing them as OTLP protobuf and as OTLP/JSON.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| spanlog_fuzz::otlp_proto(data));
