//! Recovering an active segment made of arbitrary bytes: the valid prefix of
//! blocks or a clean error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spanlog::segment::recover_active;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.wal");
    std::fs::write(&path, data).unwrap();
    if let Ok(r) = recover_active(&path, true) {
        let src = r.segment.source();
        for m in &r.segment.blocks {
            src.all_spans(m).expect("a recovered block reads back");
        }
    }
});
