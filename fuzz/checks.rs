//! The checks behind the fuzz targets, one function per target. Each takes
//! arbitrary bytes and panics only when the engine misbehaves: a panic
//! inside the engine, or a result that contradicts another way of reading
//! the same bytes (a decode that does not survive re-encoding, a lookup
//! that disagrees with a scan of a segment `verify` calls clean, a store
//! that reads differently before and after a writer recovered it).
//!
//! Compiled twice: as the library of the fuzz crate, and into
//! `tests/fuzz_corpus.rs` with `#[path]`, which runs the committed corpus
//! and regressions through the same functions on stable.
//!
//! Every file is written inside a fresh temporary directory (under
//! `/dev/shm` when it exists, so fsyncs cost little).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use spanlog::block::{self, BlockHeader, BlockView, BLOCK_HEADER_LEN};
use spanlog::digest::{self, DigestPacking, RowPacking, Services, DIGEST_LEN};
use spanlog::index::{BloomView, Catalog, CatalogBuilder, TraceIndexBuilder, TraceIndexView};
use spanlog::segment::{self, BlockSource, SealedSegment};
use spanlog::{AnyValue, AttrFilter, Options, Span, Store, TraceId, TraceQuery};

/// A target's check: returns when the engine behaved, panics otherwise.
pub type Check = fn(&[u8]);

/// Every target: its name (the directory of its corpus) and its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("block_decode", block_decode),
    ("segment_open", segment_open),
    ("active_recover", active_recover),
    ("footer_decode", footer_decode),
    ("store_open", store_open),
    #[cfg(feature = "otlp")]
    ("otlp_json", otlp_json),
    #[cfg(feature = "otlp")]
    ("otlp_proto", otlp_proto),
];

/// Separates the sections of a `footer_decode` input.
pub const SECTION_SEP: &[u8] = b"|SEC|";
/// Separates the files of a `store_open` input.
pub const FILE_SEP: &[u8] = b"|FILE|";
/// Names a `store_open` file may get: the first byte of each file picks one.
pub const STORE_NAMES: &[&str] = &[
    "00000000000000000001.seg",
    "00000000000000000002.wal",
    "00000000000000000003.seg.tmp",
    "LOCK",
    "foreign.txt",
    "00000000000000000002.seg",
    "00000000000000000003.wal",
    "00000000000000000001.wal",
];
/// `store_open` flag (first input byte): repair checksums and header ids
/// before writing the files, so mutations reach past the checksums.
pub const STORE_FIX: u8 = 1;
/// Most files a `store_open` input makes.
pub const STORE_MAX_FILES: usize = 4;

/// A fresh directory for one run.
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let b = tempfile::Builder::new()
        .prefix("spanlog-fuzz-")
        .tempdir_in(shm);
    match b {
        Ok(d) if shm.is_dir() => d,
        _ => tempfile::Builder::new()
            .prefix("spanlog-fuzz-")
            .tempdir()
            .expect("temporary directory"),
    }
}

/// Splits `data` on every occurrence of `sep`.
pub fn split_on<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= data.len() {
        if &data[i..i + sep.len()] == sep {
            out.push(&data[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&data[start..]);
    out
}

/// Rewrites checksums (and optionally the segment id) so that a mutated
/// file passes them and the decoders behind them get exercised. Offsets
/// follow `format-spec.md`; a valid file is left unchanged, which the
/// corpus test checks on every seed.
pub mod fixup {
    use byteorder::{ByteOrder, LittleEndian as LE};
    use spanlog::block::{BLOCK_HEADER_LEN, BLOCK_MAGIC};
    use spanlog::segment::{HEADER_LEN, SEGMENT_MAGIC, TRAILER_LEN, TRAILER_MAGIC};

    const H_SEGMENT_ID: usize = 16;
    const H_CREATED: usize = 24;
    const H_CRC: usize = 32;
    const B_HEADER_CRC: usize = 4;
    const B_BODY_LEN: usize = 8;
    const B_BODY_CRC: usize = 40;
    const T_FOOTER_START: usize = 0;
    const T_FOOTER_CRC: usize = 56;
    const T_TRAILER_CRC: usize = 60;

    /// Repairs the block at the start of `b`; its stored length when the
    /// whole block lies in `b`.
    pub fn block(b: &mut [u8]) -> Option<usize> {
        if b.len() < BLOCK_HEADER_LEN || b[..4] != BLOCK_MAGIC.to_le_bytes() {
            return None;
        }
        let end = BLOCK_HEADER_LEN.checked_add(LE::read_u32(&b[B_BODY_LEN..]) as usize)?;
        if end <= b.len() {
            let crc = crc32fast::hash(&b[BLOCK_HEADER_LEN..end]);
            LE::write_u32(&mut b[B_BODY_CRC..], crc);
        }
        let crc = crc32fast::hash(&b[B_BODY_LEN..BLOCK_HEADER_LEN]);
        LE::write_u32(&mut b[B_HEADER_CRC..], crc);
        (end <= b.len()).then_some(end)
    }

    /// Repairs consecutive blocks from the start of `b`.
    pub fn blocks(b: &mut [u8]) {
        let mut at = 0;
        while let Some(n) = block(&mut b[at..]) {
            at += n;
        }
    }

    /// Repairs a segment file header, setting its id if given.
    pub fn header(b: &mut [u8], id: Option<u64>) {
        if b.len() < HEADER_LEN || b[..8] != SEGMENT_MAGIC {
            return;
        }
        if let Some(id) = id {
            LE::write_u64(&mut b[H_SEGMENT_ID..], id);
        }
        let crc = crc32fast::hash(&b[..H_CRC]);
        LE::write_u32(&mut b[H_CRC..], crc);
    }

    /// Sets the creation time in a header (seeds are made deterministic
    /// with it) and repairs the header checksum.
    pub fn set_created(b: &mut [u8], created: u64) {
        if b.len() >= HEADER_LEN && b[..8] == SEGMENT_MAGIC {
            LE::write_u64(&mut b[H_CREATED..], created);
            header(b, None);
        }
    }

    /// Repairs a write-ahead log: header and blocks.
    pub fn wal(b: &mut [u8], id: Option<u64>) {
        header(b, id);
        if b.len() > HEADER_LEN {
            blocks(&mut b[HEADER_LEN..]);
        }
    }

    /// Repairs a sealed segment: header, blocks, footer and trailer.
    pub fn sealed(b: &mut [u8], id: Option<u64>) {
        header(b, id);
        let len = b.len();
        if len < HEADER_LEN + TRAILER_LEN || b[len - 8..] != TRAILER_MAGIC {
            if len > HEADER_LEN {
                blocks(&mut b[HEADER_LEN..]);
            }
            return;
        }
        let t = len - TRAILER_LEN;
        let footer = LE::read_u64(&b[t + T_FOOTER_START..]);
        let footer = usize::try_from(footer)
            .ok()
            .filter(|f| (HEADER_LEN..=t).contains(f));
        blocks(&mut b[HEADER_LEN..footer.unwrap_or(t)]);
        if let Some(f) = footer {
            let crc = crc32fast::hash(&b[f..t]);
            LE::write_u32(&mut b[t + T_FOOTER_CRC..], crc);
        }
        let crc = crc32fast::hash(&b[t..t + T_TRAILER_CRC]);
        LE::write_u32(&mut b[t + T_TRAILER_CRC..], crc);
    }
}

/// `data`, and its repaired copy when repairing changes it.
fn with_repaired(data: &[u8], repair: impl Fn(&mut [u8])) -> Vec<Vec<u8>> {
    let mut fixed = data.to_vec();
    repair(&mut fixed);
    if fixed == data {
        vec![fixed]
    } else {
        vec![data.to_vec(), fixed]
    }
}

/// Spans ordered as a block stores them: by trace id, then start time
/// (stable, so equal keys keep their order).
fn block_order(spans: &[Span]) -> Vec<Span> {
    let mut v = spans.to_vec();
    v.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano));
    v
}

/// A total order on spans for comparing multisets: the fields that tell
/// spans apart, then the debug rendering for the rest.
fn canonical(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_cached_key(|s| {
        (
            s.trace_id,
            s.start_time_unix_nano,
            s.span_id,
            format!("{s:?}"),
        )
    });
    spans
}

// ---- block_decode --------------------------------------------------------

/// A stored block (header then body). Decoded spans must agree with the
/// block's view (per trace and whole), survive re-encoding with and without
/// compression, and match the header's count.
pub fn block_decode(data: &[u8]) {
    for bytes in with_repaired(data, |b| {
        fixup::block(b);
    }) {
        check_block(&bytes);
    }
}

fn check_block(stored: &[u8]) {
    let Ok((header, spans)) = block::decode_block(stored) else {
        return;
    };
    assert_eq!(header.span_count as usize, spans.len(), "span count");
    let body = &stored[BLOCK_HEADER_LEN..header.stored_len() as usize];
    let raw = block::decompress_body(&header, body, None).expect("decompresses again");
    let view = BlockView::parse(&raw, header.span_count).expect("parses again");
    assert_eq!(view.all().expect("all rows"), spans);
    let mut at = 0;
    for (trace, n) in view.trace_runs() {
        let rows = view.rows_of(trace);
        assert_eq!(rows, at..at + *n as usize, "rows of {trace}");
        let got = view.rows(rows.clone()).expect("rows of a trace");
        assert_eq!(got[..], spans[rows.clone()], "spans of {trace}");
        assert!(got.iter().all(|s| s.trace_id == *trace));
        let any = view
            .any_row(rows, |_| true, |s| s.trace_id == *trace)
            .expect("any row");
        assert!(any, "any_row finds a span of {trace}");
        at += *n as usize;
    }
    assert_eq!(at, spans.len());
    if spans.is_empty() {
        return;
    }
    let want = block_order(&spans);
    let mut zstd = zstd::bulk::Compressor::new(1).expect("zstd context");
    for compressor in [None, Some(&mut zstd)] {
        let enc = block::encode_block(&spans, compressor).expect("re-encode");
        let mut again = enc.header.encode().to_vec();
        again.extend_from_slice(&enc.body);
        let (h, back) = block::decode_block(&again).expect("re-decode");
        assert_eq!(back, want, "spans after re-encoding");
        assert_eq!(h.span_count, header.span_count);
        let min = spans.iter().map(|s| s.start_time_unix_nano).min();
        let max = spans.iter().map(|s| s.start_time_unix_nano).max();
        assert_eq!((Some(h.min_start), Some(h.max_start)), (min, max));
    }
}

// ---- segment_open --------------------------------------------------------

/// A sealed segment file. Opening is a clean error or a segment whose
/// blocks, indexes and digests can all be asked for without a panic; when
/// `verify` finds it clean, every trace lookup must return exactly the
/// spans the blocks hold.
pub fn segment_open(data: &[u8]) {
    for bytes in with_repaired(data, |b| fixup::sealed(b, None)) {
        let dir = scratch();
        let path = dir.path().join(segment::sealed_name(1));
        std::fs::write(&path, &bytes).expect("write segment");
        check_sealed(&path);
    }
}

fn check_sealed(path: &Path) {
    let report = spanlog::verify::verify_path(path).expect("verify a file");
    let Ok(seg) = SealedSegment::open(path) else {
        assert!(
            !report.is_clean(),
            "verify passed a segment that does not open"
        );
        return;
    };
    let clean = report.is_clean();
    let seg = Arc::new(seg);
    let src = BlockSource::Mapped(seg.clone());
    let mut by_trace: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    let mut all_read = true;
    for m in &seg.blocks {
        match src.all_spans(m) {
            Ok(spans) => {
                assert_eq!(spans.len(), m.span_count as usize, "span count of a block");
                for s in spans {
                    by_trace.entry(s.trace_id).or_default().push(s);
                }
            }
            Err(_) => {
                assert!(!clean, "verify passed a segment with an unreadable block");
                all_read = false;
            }
        }
    }
    // Lookups decompress whole blocks: a sample of traces keeps a run
    // of a large segment fast.
    let step = by_trace.len().div_ceil(24).max(1);
    for (trace, spans) in by_trace.iter().step_by(step) {
        let metas = seg.trace_blocks(trace);
        let mut got = Vec::new();
        let mut ok = true;
        for m in metas.iter().flatten() {
            match src.trace_spans(m, trace) {
                Ok(s) => got.extend(s),
                Err(_) => ok = false,
            }
            let _ = src.trace_any(m, trace, |h| !h.name.is_empty(), |s| s.flags == 0);
        }
        if clean && all_read {
            assert!(
                metas.is_ok() && ok,
                "lookup of {trace} fails in a clean segment"
            );
            assert_eq!(&got, spans, "lookup of {trace} in a clean segment");
            assert!(seg.may_contain(trace), "bloom filter misses {trace}");
            assert!(seg.trace_ordinal(trace).is_some(), "index misses {trace}");
        }
    }
    let index = seg.trace_index();
    // The search index exists from format version 3 on; its accessors
    // index the section table unchecked before that.
    let searchable = seg.services.is_some();
    for i in 0..index.len() {
        let t = index.trace_at(i);
        let _ = index.blocks_of(i);
        let _ = seg.blocks_of_ordinal(i);
        if let Some(d) = searchable.then(|| seg.digest(i).ok()).flatten() {
            let _ = seg.digest_services(&d);
        }
        if clean && all_read {
            assert!(
                by_trace.contains_key(&t),
                "index lists {t}, absent from blocks"
            );
        }
    }
    if let Some(s) = &seg.services {
        let rows: u32 = s.rows.iter().map(|r| r.1).sum();
        for i in 0..rows as usize + 1 {
            let _ = seg.service_row(i);
        }
    }
    let filters = [
        AttrFilter::Exists("http.method".into()),
        AttrFilter::Equals("http.response.status_code".into(), "200".into()),
    ];
    for (i, op) in seg.catalog.operations.iter().take(4).enumerate() {
        for f in &filters {
            let p = spanlog::attrs::probe(&op.0.service, f);
            if let Some(p) = seg
                .attr_filter(seg.blocks.len())
                .and_then(|w| p.for_segment(w))
            {
                let _ = seg.attr_filter(i).map(|b| p.may_match(b));
            }
        }
    }
    let _ = seg.section_sizes();
}

// ---- active_recover ------------------------------------------------------

/// A write-ahead log. Recovery without and with truncation must agree,
/// the truncated file must recover cleanly to the same spans, and each
/// recovered block must read back as the spans recovery returned.
pub fn active_recover(data: &[u8]) {
    for bytes in with_repaired(data, |b| fixup::wal(b, None)) {
        check_wal(&bytes);
    }
}

fn check_wal(bytes: &[u8]) {
    let dir = scratch();
    let path = dir.path().join(segment::wal_name(1));
    std::fs::write(&path, bytes).expect("write log");
    let strict = segment::recover_active_with(&path, false, true);
    let Ok(r) = segment::recover_active(&path, false) else {
        assert!(
            strict.is_err(),
            "strict recovery succeeds where lenient fails"
        );
        return;
    };
    assert_eq!(
        strict.is_ok(),
        r.valid_after_damage.is_none(),
        "strict recovery refuses exactly damage followed by valid blocks"
    );
    assert!(r.kept_tail.is_none(), "a read-only recovery kept a tail");
    let src = r.segment.source();
    let mut from_blocks = Vec::new();
    for m in &r.segment.blocks {
        let spans = src.all_spans(m).expect("a recovered block reads back");
        assert_eq!(spans.len(), m.span_count as usize);
        from_blocks.extend(spans);
    }
    assert_eq!(from_blocks, r.spans, "blocks read back as recovered");
    assert_eq!(r.span_count(), r.spans.len() as u64);
    for s in r.spans.iter().take(8) {
        let metas = r.segment.trace_blocks(&s.trace_id);
        let found = metas
            .iter()
            .flat_map(|m| src.trace_spans(m, &s.trace_id).expect("trace spans"))
            .any(|x| x == *s);
        assert!(found, "recovered log misses a span of {}", s.trace_id);
    }
    let stillborn = bytes.len() <= segment::HEADER_LEN;
    drop(src);
    drop(r);

    let Ok(t) = segment::recover_active(&path, true) else {
        panic!("truncating recovery fails where read-only recovery succeeded");
    };
    let len = std::fs::metadata(&path).expect("log still there").len();
    if t.torn_tail.is_some() && !stillborn {
        assert_eq!(len, t.segment.len(), "truncated to the valid blocks");
    }
    assert_eq!(
        t.kept_tail.is_some(),
        t.valid_after_damage.is_some(),
        "the tail is kept exactly when valid blocks follow damage"
    );
    if let Some(kept) = &t.kept_tail {
        let side = std::fs::read(kept).expect("kept tail");
        assert_eq!(
            side[..],
            bytes[t.segment.len() as usize..],
            "kept tail bytes"
        );
        assert!(kept.starts_with(dir.path()));
    }
    let spans = t.spans.clone();
    drop(t);
    let again = segment::recover_active(&path, false).expect("recover the truncated log");
    assert_eq!(again.spans, spans, "spans after truncation");
    if !stillborn {
        assert!(
            again.torn_tail.is_none(),
            "a truncated log still has a torn tail"
        );
    }
}

// ---- footer_decode -------------------------------------------------------

/// Footer sections decoded one by one, without the checksums and checks of
/// `SealedSegment::open` in front of them. Input: one byte of block count,
/// then the sections in file order separated by [`SECTION_SEP`]: trace
/// entries, trace postings, bloom, catalog, block operations, dictionary,
/// digests, services, service rows, trace services (kept for the layout;
/// only `SealedSegment` reads them), attribute filters, a block body to
/// decompress with the dictionary, and the TABLES section.
pub fn footer_decode(data: &[u8]) {
    let Some((&blocks, rest)) = data.split_first() else {
        return;
    };
    let blocks = usize::from(blocks);
    let parts = split_on(rest, SECTION_SEP);
    let part = |i: usize| parts.get(i).copied().unwrap_or(&[]);
    check_trace_index(part(0), part(1));
    check_bloom(part(2));
    check_catalog(part(3), part(4), blocks);
    check_dict(part(5), part(11));
    check_search_sections(part(6), part(7), part(8));
    check_attr_filters(part(10), blocks);
    check_tables(part(12));
}

/// A TABLES section that decodes re-encodes to tables that decode to the
/// same resources and scopes, bit for bit, each found under its service.
fn check_tables(bytes: &[u8]) {
    let Ok(t) = block::SegmentTables::decode(bytes) else {
        return;
    };
    let resources: Vec<&spanlog::Resource> = t.resources.iter().map(|r| &**r).collect();
    let scopes: Vec<&spanlog::Scope> = t.scopes.iter().map(|s| &**s).collect();
    let again = block::encode_tables_section(&resources, &scopes);
    let back = block::SegmentTables::decode(&again).expect("re-encoded tables decode");
    assert_eq!(back.resources.len(), t.resources.len(), "resources");
    assert_eq!(back.scopes.len(), t.scopes.len(), "scopes");
    for (i, (a, b)) in t.resources.iter().zip(&back.resources).enumerate() {
        assert!(spanlog::tables::same_resource(a, b), "resource {i}");
        let service = a.service_name().unwrap_or("");
        assert!(
            t.of_service(service).contains(&(i as u32)),
            "service of resource {i}"
        );
    }
    for (i, (a, b)) in t.scopes.iter().zip(&back.scopes).enumerate() {
        assert!(spanlog::tables::same_scope(a, b), "scope {i}");
    }
}

fn check_trace_index(entries: &[u8], postings: &[u8]) {
    let Some(view) = TraceIndexView::new(entries, postings) else {
        return;
    };
    let n = view.len();
    assert_eq!(view.is_empty(), n == 0);
    let traces: Vec<TraceId> = (0..n).map(|i| view.trace_at(i)).collect();
    let sorted = traces.windows(2).all(|w| w[0] < w[1]);
    let mut lists = Vec::with_capacity(n);
    for (i, t) in traces.iter().enumerate() {
        let blocks = view.blocks_of(i);
        let pos = view.position(t);
        if sorted {
            assert_eq!(pos, Some(i), "position of {t} in a sorted index");
            assert_eq!(view.lookup(t), blocks, "lookup of {t}");
        } else {
            let _ = view.lookup(t);
        }
        lists.push(blocks);
    }
    let _ = view.lookup(&TraceId([0x5a; 16]));
    // Sorted entries whose postings resolve are what the builder writes:
    // rebuilding them must give the same lookups.
    let representable = lists.iter().all(|l| {
        l.as_ref()
            .is_some_and(|l| !l.is_empty() && l.windows(2).all(|w| w[0] != w[1]))
    });
    if !sorted || !representable {
        return;
    }
    let mut b = TraceIndexBuilder::default();
    for (t, l) in traces.iter().zip(&lists) {
        for blk in l.iter().flatten() {
            b.add(*t, *blk);
        }
    }
    let (e2, p2) = b.encode();
    let again = TraceIndexView::new(&e2, &p2).expect("builder output has the right shape");
    assert_eq!(again.len(), n);
    for (t, l) in traces.iter().zip(&lists) {
        assert_eq!(
            again.lookup(t).as_ref(),
            l.as_ref(),
            "rebuilt lookup of {t}"
        );
    }
    let bloom = b.bloom();
    let bv = BloomView::new(&bloom).expect("builder bloom");
    assert!(
        traces.iter().all(|t| bv.may_contain(t)),
        "bloom false negative"
    );
}

fn check_bloom(section: &[u8]) {
    if let Some(b) = BloomView::new(section) {
        for i in 0..8u8 {
            let _ = b.may_contain(&TraceId([i; 16]));
        }
        if section.len() >= 24 {
            let _ = b.may_contain(&TraceId(section[8..24].try_into().expect("16 bytes")));
        }
    }
}

fn check_catalog(cat: &[u8], per_block: &[u8], blocks: usize) {
    let Ok(c) = Catalog::decode(cat, per_block, blocks) else {
        return;
    };
    assert_eq!(c.block_ops.len(), blocks);
    let n = c.operations.len();
    assert!(c.block_ops.iter().flatten().all(|id| (*id as usize) < n));
    // Distinct operations re-encode through the builder to the same
    // catalog (block lists come back sorted; counts ride on the first
    // block listing an operation).
    let mut distinct = c.operations.clone();
    distinct.sort();
    distinct.dedup_by(|a, b| a.0 == b.0);
    if distinct.len() != n {
        return;
    }
    let mut b = CatalogBuilder::default();
    for (op, _) in &c.operations {
        b.op_id(&op.service, &op.name, op.kind);
    }
    let mut counted = vec![false; n];
    for ids in &c.block_ops {
        let ops: Vec<_> = ids
            .iter()
            .map(|id| {
                let (op, count) = &c.operations[*id as usize];
                let i = *id as usize;
                let count = if counted[i] { 0 } else { *count };
                counted[i] = true;
                (op.service.clone(), op.name.clone(), op.kind, count)
            })
            .collect();
        b.add_block(&ops);
    }
    let (cat2, blocks2) = b.encode();
    let d = Catalog::decode(&cat2, &blocks2, blocks).expect("builder output decodes");
    for (i, ((op, count), (op2, count2))) in c.operations.iter().zip(&d.operations).enumerate() {
        assert_eq!(op, op2, "operation {i}");
        if counted[i] || *count == 0 {
            assert_eq!(count, count2, "count of operation {i}");
        }
    }
    for (ids, ids2) in c.block_ops.iter().zip(&d.block_ops) {
        let mut ids = ids.clone();
        ids.sort_unstable();
        assert_eq!(&ids, ids2);
    }
}

fn check_dict(dict: &[u8], body: &[u8]) {
    if dict.is_empty() {
        return;
    }
    let d = spanlog::dict::BlockDict::new(dict);
    let mut out = Vec::with_capacity(64 << 10);
    let _ = d.decompress(body, &mut out);
    let header = BlockHeader {
        body_len: body.len() as u32,
        raw_len: out.len() as u32,
        codec: block::Codec::ZstdDict,
        span_count: 0,
        min_start: 0,
        max_start: 0,
        body_crc: crc32fast::hash(body),
    };
    if let Ok(raw) = block::decompress_body(&header, body, Some(&d)) {
        assert_eq!(raw.len(), header.raw_len as usize);
        for count in [0, 1, 3] {
            if let Ok(v) = BlockView::parse(&raw, count) {
                let _ = v.all();
            }
        }
    }
}

fn check_search_sections(digests: &[u8], services: &[u8], rows: &[u8]) {
    // The same bytes read as the fixed layout of versions 3 to 5 and as
    // the packed one of version 6: a record past the end is never read,
    // and one within reads unless a time overflows (packed only).
    for version in [5, 6] {
        let Ok(p) = DigestPacking::digests(version, digests) else {
            continue;
        };
        let Some(n) = p.count(digests) else {
            continue;
        };
        assert!(version > 5 || n == digests.len() / DIGEST_LEN);
        for i in 0..=n {
            let d = digest::digest_at(digests, &p, i);
            assert!(i < n || d.is_none(), "digest {i} of {n}");
            assert!(version > 5 || i == n || d.is_some(), "digest {i} of {n}");
        }
    }
    let Ok(packing) = RowPacking::rows(6, rows) else {
        return;
    };
    let Some(row_count) = packing.count(rows) else {
        return;
    };
    for i in 0..=row_count {
        let r = digest::row_at(rows, &packing, i);
        assert!(i < row_count || r.is_none(), "row {i} of {row_count}");
    }
    let Ok(s) = Services::decode(services, row_count) else {
        return;
    };
    assert_eq!(s.names.len(), s.rows.len());
    assert!(
        s.names.windows(2).all(|w| w[0] < w[1]),
        "service names sorted"
    );
    let mut expect = 0u64;
    for (i, (name, (at, len))) in s.names.iter().zip(&s.rows).enumerate() {
        assert_eq!(u64::from(*at), expect, "rows of service {i} start in order");
        expect += u64::from(*len);
        assert_eq!(s.id(name), Some(i));
    }
    assert_eq!(expect, row_count as u64, "service rows cover the section");
}

fn check_attr_filters(section: &[u8], blocks: usize) {
    let Ok(filters) = spanlog::attrs::decode_section(section, blocks) else {
        return;
    };
    assert_eq!(filters.len(), blocks + 1);
    let mut end = 0;
    let mut again = Vec::new();
    for (at, len) in &filters {
        assert!(
            *at >= end && at + len <= section.len(),
            "filter inside the section"
        );
        end = at + len;
        spanlog::attrs::put_filter(&mut again, &section[*at..end]);
    }
    let back = spanlog::attrs::decode_section(&again, blocks).expect("re-encoded filters");
    for ((a, l), (a2, l2)) in filters.iter().zip(&back) {
        assert_eq!(section[*a..a + l], again[*a2..a2 + l2]);
    }
    let whole = &section[filters[blocks].0..][..filters[blocks].1];
    let conds = [
        AttrFilter::Exists("k".into()),
        AttrFilter::Equals("k".into(), "v".into()),
        AttrFilter::Typed("n".into(), AnyValue::Int(7)),
    ];
    for c in &conds {
        let p = spanlog::attrs::probe("svc", c);
        if let Some(p) = p.for_segment(whole) {
            for (at, len) in &filters {
                let _ = p.may_match(&section[*at..at + len]);
            }
        }
        let item = (spanlog::attrs::key_hash("svc", c.key()), None);
        let _ = spanlog::attrs::filters_hold(whole, whole, item);
    }
}

// ---- store_open ----------------------------------------------------------

/// The files a `store_open` input makes: (name, contents), at most
/// [`STORE_MAX_FILES`], a later file of the same name replacing an earlier.
pub fn store_files(data: &[u8]) -> (u8, Vec<(&'static str, Vec<u8>)>) {
    let Some((&flags, rest)) = data.split_first() else {
        return (0, Vec::new());
    };
    let mut files: Vec<(&'static str, Vec<u8>)> = Vec::new();
    for chunk in split_on(rest, FILE_SEP).into_iter().take(STORE_MAX_FILES) {
        let Some((&pick, contents)) = chunk.split_first() else {
            continue;
        };
        let name = STORE_NAMES[usize::from(pick) % STORE_NAMES.len()];
        let mut contents = contents.to_vec();
        if flags & STORE_FIX != 0 {
            let id = segment::parse_name(name).map(|(id, _)| id);
            match segment::parse_name(name).map(|(_, k)| k) {
                Some(segment::FileKind::Segment) => fixup::sealed(&mut contents, id),
                Some(_) => fixup::wal(&mut contents, id),
                None => {}
            }
        }
        files.retain(|(n, _)| *n != name);
        files.push((name, contents));
    }
    (flags, files)
}

/// What a store shows of its data.
#[derive(Debug, PartialEq)]
struct Seen {
    /// Every span a full scan yields, in canonical order.
    spans: Vec<Span>,
    /// Scan items that were errors.
    scan_errors: usize,
    services: Option<Vec<String>>,
    /// What `get_trace` gave for the first traces of the scan.
    lookups: Vec<(TraceId, Option<Vec<Span>>)>,
}

/// Reads everything a store offers; a panic is the only failure.
fn read_store(store: &Store) -> Seen {
    let mut spans = Vec::new();
    let mut scan_errors = 0;
    if let Ok(scan) = store.scan(0..u64::MAX) {
        for item in scan {
            match item {
                Ok(s) => spans.push(s),
                Err(_) => scan_errors += 1,
            }
        }
    }
    let services = store.services().ok();
    let mut traces: Vec<TraceId> = spans.iter().map(|s| s.trace_id).collect();
    traces.dedup();
    traces.truncate(4);
    traces.push(TraceId([0x11; 16]));
    traces.push(TraceId([0xff; 16]));
    let mut lookups = Vec::new();
    for t in &traces {
        let got = store.get_trace(*t).ok();
        if let Some(got) = &got {
            assert!(
                got.iter().all(|s| s.trace_id == *t),
                "get_trace({t}) returns another trace"
            );
        }
        lookups.push((*t, got.map(canonical)));
        let _ = store.get_trace_in(*t, 0..u64::MAX);
    }
    let _ = store.get_traces(&traces);
    let mut queries = vec![
        TraceQuery::default(),
        TraceQuery {
            errors_only: true,
            attributes: vec![AttrFilter::Exists("http.method".into())],
            limit: 3,
            ..TraceQuery::default()
        },
    ];
    for s in services.iter().flatten().take(3) {
        queries.push(TraceQuery::service(s.clone()));
        queries.push(TraceQuery {
            attributes: vec![AttrFilter::Equals(
                "http.response.status_code".into(),
                "200".into(),
            )],
            mode: spanlog::MatchMode::Trace,
            duration_min: Some(1),
            ..TraceQuery::service(s.clone())
        });
        let _ = store.operations(s, None);
    }
    for q in &queries {
        if let Ok(found) = store.find_traces(q) {
            assert!(
                found.len() <= q.limit,
                "find_traces returns more than its limit"
            );
        }
    }
    let _ = store.stats();
    let _ = store.segments();
    Seen {
        spans: canonical(spans),
        scan_errors,
        services,
        lookups,
    }
}

/// A store directory made of the input's files. A read-only open, a
/// writer open (which recovers logs into segments and removes leftovers)
/// and a read-only open after it must be clean errors or show the same
/// spans and services; nothing may panic.
pub fn store_open(data: &[u8]) {
    let (_, files) = store_files(data);
    let tmp = scratch();
    let dir = tmp.path().join("store");
    std::fs::create_dir(&dir).expect("store directory");
    for (name, contents) in &files {
        std::fs::write(dir.join(name), contents).expect("write store file");
    }
    let clean = spanlog::verify::verify_path(&dir).is_ok_and(|r| r.is_clean());
    let before = Store::open(&dir, Options::read_only()).map(|s| read_store(&s));
    if let (true, Ok(b)) = (clean, &before) {
        // Files verify calls clean are what the engine wrote: a lookup
        // must find exactly the trace's spans the scan found.
        assert_eq!(
            b.scan_errors, 0,
            "scan errors in a store verify calls clean"
        );
        for (t, got) in &b.lookups {
            let want: Vec<Span> = b
                .spans
                .iter()
                .filter(|s| s.trace_id == *t)
                .cloned()
                .collect();
            assert_eq!(got.as_ref(), Some(&want), "get_trace({t}) in a clean store");
        }
    }
    let writer_opts = Options {
        create_if_missing: false,
        ..Options::default()
    };
    let during = match Store::open(&dir, writer_opts) {
        Ok(store) => {
            let seen = read_store(&store);
            let closed = store.close();
            Ok((seen, closed.is_ok()))
        }
        Err(e) => Err(e),
    };
    let after = Store::open(&dir, Options::read_only()).map(|s| read_store(&s));
    match (&before, &during) {
        (Ok(b), Ok((w, _))) if b.scan_errors == 0 && w.scan_errors == 0 => {
            assert_eq!(
                b.spans, w.spans,
                "writer open shows other spans than a read-only open"
            );
            assert_eq!(b.services, w.services, "writer open shows other services");
        }
        (Ok(_), Err(e)) if !matches!(e, spanlog::Error::Io { .. }) => {
            panic!("read-only open succeeds, writer open fails: {e}")
        }
        _ => {}
    }
    if let Ok((w, true)) = &during {
        let a = after
            .as_ref()
            .unwrap_or_else(|e| panic!("store a writer closed cleanly does not reopen: {e}"));
        if w.scan_errors == 0 {
            assert_eq!(w.spans, a.spans, "spans change across a writer's close");
        }
    }
    drop(tmp);
}

// ---- otlp ----------------------------------------------------------------

/// Spans in the order an OTLP encoding of them reads back: grouped by
/// resource in order of first appearance, then by scope.
#[cfg(feature = "otlp")]
fn grouped(spans: &[Span]) -> Vec<Span> {
    type ScopeGroups<'a> = Vec<(&'a spanlog::Scope, Vec<&'a Span>)>;
    let mut groups: Vec<(&spanlog::Resource, ScopeGroups<'_>)> = Vec::new();
    for s in spans {
        let r = match groups.iter().position(|(r, _)| **r == *s.resource) {
            Some(i) => i,
            None => {
                groups.push((&s.resource, Vec::new()));
                groups.len() - 1
            }
        };
        let scopes = &mut groups[r].1;
        match scopes.iter_mut().find(|(sc, _)| **sc == *s.scope) {
            Some((_, v)) => v.push(s),
            None => scopes.push((&s.scope, vec![s])),
        }
    }
    groups
        .into_iter()
        .flat_map(|(_, scopes)| scopes.into_iter().flat_map(|(_, v)| v))
        .cloned()
        .collect()
}

/// OTLP/JSON has one NaN: payload bits do not survive it.
#[cfg(feature = "otlp")]
fn canon_nan(spans: Vec<Span>) -> Vec<Span> {
    fn value(v: &mut AnyValue) {
        match v {
            AnyValue::Double(d) if d.is_nan() => *d = f64::NAN,
            AnyValue::Array(items) => items.iter_mut().for_each(value),
            AnyValue::KvList(kvs) => kvs.iter_mut().for_each(|kv| value(&mut kv.value)),
            _ => {}
        }
    }
    fn kvs(list: &mut [spanlog::KeyValue]) {
        list.iter_mut().for_each(|kv| value(&mut kv.value));
    }
    spans
        .into_iter()
        .map(|mut s| {
            kvs(&mut s.attributes);
            s.events.iter_mut().for_each(|e| kvs(&mut e.attributes));
            s.links.iter_mut().for_each(|l| kvs(&mut l.attributes));
            kvs(&mut Arc::make_mut(&mut s.resource).attributes);
            kvs(&mut Arc::make_mut(&mut s.scope).attributes);
            s
        })
        .collect()
}

/// Spans read from OTLP must read back the same (grouped) after writing
/// them out, in both formats.
#[cfg(feature = "otlp")]
fn check_otlp_round_trips(spans: &[Span]) {
    use spanlog::otlp;
    let want = grouped(spans);
    let proto = otlp::from_proto(&otlp::to_proto(spans)).expect("own protobuf reads back");
    assert_eq!(proto, want, "protobuf round trip");
    let json = otlp::to_json_string(spans);
    let back = otlp::from_json_str(&json).expect("own OTLP/JSON reads back");
    assert_eq!(back, canon_nan(want.clone()), "OTLP/JSON round trip");
    let again = otlp::to_json_string(&back);
    assert_eq!(
        otlp::from_json_str(&again).expect("twice"),
        back,
        "OTLP/JSON second round trip"
    );
}

/// OTLP/JSON text.
#[cfg(feature = "otlp")]
pub fn otlp_json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spans) = spanlog::otlp::from_json_str(text) {
        check_otlp_round_trips(&spans);
    }
}

/// OTLP protobuf bytes.
#[cfg(feature = "otlp")]
pub fn otlp_proto(data: &[u8]) {
    if let Ok(spans) = spanlog::otlp::from_proto(data) {
        check_otlp_round_trips(&spans);
    }
}
