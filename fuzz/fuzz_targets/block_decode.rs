//! Block decoding on arbitrary bytes: a clean error or spans, never a panic.
//! Bytes that decode are re-encoded and must decode to the same spans.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spanlog::block::{decode_block, encode_block};

fuzz_target!(|data: &[u8]| {
    if let Ok((_, spans)) = decode_block(data) {
        if spans.is_empty() {
            return;
        }
        let again = encode_block(&spans, None).expect("re-encode");
        let mut stored = again.header.encode().to_vec();
        stored.extend_from_slice(&again.body);
        let (_, back) = decode_block(&stored).expect("re-decode");
        assert_eq!(back, spans);
    }
});
