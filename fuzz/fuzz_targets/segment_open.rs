//! Opening and reading a sealed segment made of arbitrary bytes: a clean
//! error or consistent data, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spanlog::segment::{BlockSource, SealedSegment};

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.seg");
    std::fs::write(&path, data).unwrap();
    if let Ok(seg) = SealedSegment::open(&path) {
        let seg = std::sync::Arc::new(seg);
        let src = BlockSource::Mapped(seg.clone());
        for m in &seg.blocks {
            if let Ok(spans) = src.all_spans(m) {
                for s in &spans {
                    let _ = seg.trace_blocks(&s.trace_id);
                }
            }
        }
    }
    let _ = spanlog::verify::verify_path(&path);
});
