//! Golden files: segments written by each format version, committed under
//! `tests/fixtures/v<version>/`, read back forever after. An accidental change to the
//! format (reader or writer) fails here; a deliberate one bumps the format
//! version and adds a new fixture directory next to this one.
//!
//! The fixtures are regenerated only on purpose:
//! `SPANLOG_REGEN_FIXTURES=1 cargo test --test golden -- --ignored regenerate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use spanlog::block::encode_block;
use spanlog::memtable::{self, Memtable, SegmentLayout};
use spanlog::segment::{self, section, ActiveSegment, BlockSource, SealedSegment, FORMAT_VERSION};
use spanlog::verify::verify_path;
use spanlog::{
    AnyValue, Event, KeyValue, Link, Options, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, Store, TraceId,
};

/// Fixtures of format `version`; every version ever written stays readable.
fn fixtures_of(version: u32) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/v{version}"))
}

/// Fixtures of the version this build writes.
fn fixtures() -> PathBuf {
    fixtures_of(FORMAT_VERSION)
}

const VERSIONS: [u32; 6] = [1, 2, 3, 4, 5, 6];

const SEALED: &str = "00000000000000000001.seg";
const TORN: &str = "00000000000000000002.wal";
const FLIPPED: &str = "flipped-block.seg";
/// A segment written the way the store writes them: sorted by trace, with a
/// trained dictionary (format version 2 on).
const WITH_DICT: &str = "00000000000000000003.seg";

fn dict_spans() -> Vec<Span> {
    spanlog::gen::generate(7, 3000)
}

fn write_dict_segment(dir: &Path) -> PathBuf {
    let mut layout = SegmentLayout::new(16 << 10, 3);
    let table = Memtable::from_spans(dict_spans());
    memtable::write_segment(dir, 3, &table, &mut layout)
        .unwrap()
        .path
        .clone()
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            KeyValue::new("service.name", AnyValue::String(service.into())),
            KeyValue::new("host.name", AnyValue::String("node-7".into())),
        ],
        dropped_attributes_count: 1,
        schema_url: "https://opentelemetry.io/schemas/1.24.0".into(),
    }
}

/// The spans stored in the fixtures: every field and every value type.
fn spans() -> Vec<Span> {
    (0u8..24)
        .map(|i| {
            let trace = TraceId([0x10 + i % 5; 16]);
            Span {
                trace_id: trace,
                span_id: SpanId([i + 1; 8]),
                parent_span_id: (i % 3 != 0).then_some(SpanId([i; 8])),
                trace_state: if i % 4 == 0 {
                    "vendor=1".into()
                } else {
                    String::new()
                },
                flags: u32::from(i % 2),
                name: format!("op-{}", i % 6),
                kind: SpanKind::from_u8(i % 6).unwrap(),
                start_time_unix_nano: 1_700_000_000_000_000_000 + u64::from(i) * 1_000_003,
                end_time_unix_nano: 1_700_000_000_000_000_000
                    + u64::from(i) * 1_000_003
                    + u64::from(i) * 977,
                attributes: vec![
                    KeyValue::new("s", AnyValue::String(format!("value {i}"))),
                    KeyValue::new("b", AnyValue::Bool(i % 2 == 0)),
                    KeyValue::new("i", AnyValue::Int(-i64::from(i) * 1000)),
                    KeyValue::new("d", AnyValue::Double(f64::from(i) / 3.0)),
                    KeyValue::new(
                        "nan",
                        AnyValue::Double(f64::from_bits(0x7ff8_0000_0000_0000 | u64::from(i))),
                    ),
                    KeyValue::new("bytes", AnyValue::Bytes(vec![i; usize::from(i % 4)])),
                    KeyValue::new(
                        "arr",
                        AnyValue::Array(vec![
                            AnyValue::Int(1),
                            AnyValue::String("x".into()),
                            AnyValue::Empty,
                        ]),
                    ),
                    KeyValue::new(
                        "kv",
                        AnyValue::KvList(vec![KeyValue::new(
                            "inner",
                            AnyValue::Array(vec![AnyValue::Bool(true)]),
                        )]),
                    ),
                ],
                dropped_attributes_count: u32::from(i % 3),
                events: (0..i % 3)
                    .map(|e| Event {
                        time_unix_nano: 1_700_000_000_000_000_000
                            + u64::from(i) * 1_000_003
                            + u64::from(e),
                        name: if e == 0 {
                            "exception".into()
                        } else {
                            String::new()
                        },
                        attributes: vec![KeyValue::new(
                            "exception.type",
                            AnyValue::String("Timeout".into()),
                        )],
                        dropped_attributes_count: u32::from(e),
                    })
                    .collect(),
                dropped_events_count: u32::from(i % 2),
                links: (0..i % 2)
                    .map(|_| Link {
                        trace_id: TraceId([0xee; 16]),
                        span_id: SpanId([0xdd; 8]),
                        trace_state: "k=v".into(),
                        flags: 1,
                        attributes: vec![KeyValue::new(
                            "opentracing.ref_type",
                            AnyValue::String("follows_from".into()),
                        )],
                        dropped_attributes_count: 0,
                    })
                    .collect(),
                dropped_links_count: u32::from(i % 4),
                status: Status {
                    code: StatusCode::from_u8(i % 3).unwrap(),
                    message: if i % 3 == 2 {
                        "boom".into()
                    } else {
                        String::new()
                    },
                },
                resource: resource(["frontend", "cart", "db"][usize::from(i % 3)]).into(),
                scope: Arc::new(Scope {
                    name: "io.opentelemetry.http".into(),
                    version: "1.32.0".into(),
                    attributes: vec![KeyValue::new("scope.attr", AnyValue::Int(7))],
                    dropped_attributes_count: 0,
                    schema_url: String::new(),
                }),
            }
        })
        .collect()
}

/// Writes the fixture segment into `dir`: three blocks of eight spans.
fn write_segment(dir: &Path, id: u64) -> ActiveSegment {
    let mut seg = ActiveSegment::create_wal(dir, id).unwrap();
    let mut c = zstd::bulk::Compressor::new(3).unwrap();
    for chunk in spans().chunks(8) {
        seg.append(&encode_block(chunk, Some(&mut c)).unwrap())
            .unwrap();
    }
    seg
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by(|a, b| {
        (a.trace_id, a.start_time_unix_nano).cmp(&(b.trace_id, b.start_time_unix_nano))
    });
    v
}

/// The creation time in the file header and the header checksum differ from
/// run to run; everything else must be identical.
fn without_creation_time(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes[24..36].fill(0);
    bytes
}

#[test]
#[ignore = "writes the fixtures; run on purpose only"]
fn regenerate() {
    if std::env::var("SPANLOG_REGEN_FIXTURES").is_err() {
        return;
    }
    let out = fixtures();
    std::fs::create_dir_all(&out).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let sealed = write_segment(tmp.path(), 1).seal(tmp.path()).unwrap();
    std::fs::copy(&sealed, out.join(SEALED)).unwrap();
    let mut flipped = std::fs::read(&sealed).unwrap();
    let second = SealedSegment::open(&sealed).unwrap().blocks[1];
    flipped[second.offset as usize + 100] ^= 0x04;
    std::fs::write(out.join(FLIPPED), flipped).unwrap();
    let torn = write_segment(tmp.path(), 2);
    let cut = torn.blocks[2].offset + 30;
    drop(torn);
    let mut bytes = std::fs::read(tmp.path().join(TORN)).unwrap();
    bytes.truncate(cut as usize);
    std::fs::write(out.join(TORN), bytes).unwrap();
    std::fs::copy(write_dict_segment(tmp.path()), out.join(WITH_DICT)).unwrap();
}

#[test]
fn sealed_fixtures_of_every_version_read_back_every_span() {
    for v in VERSIONS {
        let seg = Arc::new(SealedSegment::open(&fixtures_of(v).join(SEALED)).unwrap());
        assert_eq!(seg.header.version, v);
        assert_eq!(seg.blocks.len(), 3);
        let src = BlockSource::Mapped(seg.clone());
        let mut got = Vec::new();
        for m in &seg.blocks {
            got.extend(src.all_spans(m).unwrap());
        }
        assert_eq!(sorted(got), sorted(spans()), "version {v}");
        let t = TraceId([0x12; 16]);
        let metas = seg.trace_blocks(&t).unwrap();
        let from_index: Vec<Span> = metas
            .iter()
            .flat_map(|m| src.trace_spans(m, &t).unwrap())
            .collect();
        assert_eq!(
            sorted(from_index),
            sorted(spans().into_iter().filter(|s| s.trace_id == t).collect())
        );
    }
}

#[test]
fn dictionary_fixture_reads_back_every_span() {
    let seg = Arc::new(SealedSegment::open(&fixtures_of(2).join(WITH_DICT)).unwrap());
    let dict = seg
        .section_sizes()
        .iter()
        .find(|(id, _)| *id == section::DICT)
        .unwrap()
        .1;
    assert!(dict > 0, "the fixture must exercise a trained dictionary");
    assert!(seg.blocks.len() > 8);
    let src = BlockSource::Mapped(seg.clone());
    let got: Vec<Span> = seg
        .blocks
        .iter()
        .flat_map(|m| src.all_spans(m).unwrap())
        .collect();
    assert_eq!(sorted(got), sorted(dict_spans()));
    assert!(verify_path(&fixtures_of(2).join(WITH_DICT))
        .unwrap()
        .is_clean());
}

#[test]
fn writer_still_produces_the_fixture_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let sealed = write_segment(tmp.path(), 1).seal(tmp.path()).unwrap();
    let with_dict = write_dict_segment(tmp.path());
    for (now, name) in [(sealed, SEALED), (with_dict, WITH_DICT)] {
        let now = without_creation_time(std::fs::read(now).unwrap());
        let golden = without_creation_time(std::fs::read(fixtures().join(name)).unwrap());
        assert!(
            now == golden,
            "the writer's output differs from the version-{FORMAT_VERSION} fixture {name}: bump the format version and add new fixtures"
        );
    }
}

fn store_opens_over_the_fixtures_and_recovers_the_torn_tail_in(v: u32) {
    let tmp = tempfile::tempdir().unwrap();
    for name in [SEALED, TORN] {
        std::fs::copy(fixtures_of(v).join(name), tmp.path().join(name)).unwrap();
    }
    let store = Store::open(tmp.path(), Options::read_only()).unwrap();
    // Read-only: the torn segment's two whole blocks are visible, nothing is cut.
    assert_eq!(store.stats().unwrap().spans, 24 + 16);
    assert_eq!(
        std::fs::metadata(tmp.path().join(TORN)).unwrap().len(),
        std::fs::metadata(fixtures_of(v).join(TORN)).unwrap().len()
    );
    drop(store);
    let store = Store::open(tmp.path(), Options::default()).unwrap();
    let sealed_torn = tmp.path().join(segment::sealed_name(2));
    assert!(sealed_torn.exists(), "recovery seals the torn segment");
    let t = TraceId([0x10; 16]);
    let want: Vec<Span> = spans().into_iter().filter(|s| s.trace_id == t).collect();
    let first_two_blocks: Vec<Span> = spans()[..16]
        .iter()
        .filter(|s| s.trace_id == t)
        .cloned()
        .collect();
    assert_eq!(
        store.get_trace(t).unwrap().len(),
        want.len() + first_two_blocks.len()
    );
    store.close().unwrap();
    assert!(verify_path(tmp.path()).unwrap().is_clean());
}

#[test]
fn store_opens_over_the_fixtures_and_recovers_the_torn_tail() {
    for v in VERSIONS {
        store_opens_over_the_fixtures_and_recovers_the_torn_tail_in(v);
    }
}

fn flipped_bit_is_reported_at_its_block_and_other_blocks_stay_readable_in(v: u32) {
    let path = fixtures_of(v).join(FLIPPED);
    let report = verify_path(&path).unwrap();
    let seg = SealedSegment::open(&path).unwrap();
    let bad = seg.blocks[1];
    assert!(!report.is_clean());
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.offset >= bad.offset && p.offset < bad.offset + u64::from(bad.stored_len)),
        "{:?}",
        report.problems
    );
    let seg = Arc::new(seg);
    let src = BlockSource::Mapped(seg.clone());
    assert_eq!(src.all_spans(&seg.blocks[0]).unwrap().len(), 8);
    assert_eq!(src.all_spans(&seg.blocks[2]).unwrap().len(), 8);
    let err = src.all_spans(&seg.blocks[1]).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    assert!(err.to_string().contains(FLIPPED), "{err}");
}

#[test]
fn flipped_bit_is_reported_at_its_block_and_other_blocks_stay_readable() {
    for v in VERSIONS {
        flipped_bit_is_reported_at_its_block_and_other_blocks_stay_readable_in(v);
    }
}

/// Searches give the same answers over segments of every version: older
/// ones are searched by decoding their blocks, version 3 by its search
/// sections.
#[test]
fn searches_agree_across_format_versions() {
    use spanlog::query::find_in_spans;
    use spanlog::{AttrFilter, TraceQuery};
    let spans = dict_spans();
    let mut services: Vec<String> = spans
        .iter()
        .map(|s| s.service_name().unwrap_or("").to_string())
        .collect();
    services.sort();
    services.dedup();
    let (lo, hi) = (
        spans.iter().map(|s| s.start_time_unix_nano).min().unwrap(),
        spans.iter().map(|s| s.start_time_unix_nano).max().unwrap(),
    );
    let mut queries = Vec::new();
    for (i, svc) in services.iter().enumerate() {
        let mid = lo + (hi - lo) / (i as u64 + 2);
        queries.push(TraceQuery {
            start: Some(mid..mid + (hi - lo) / 4),
            limit: 7,
            ..TraceQuery::service(svc.clone())
        });
        queries.push(TraceQuery {
            attributes: vec![AttrFilter::Exists("http.request.method".into())],
            limit: 5,
            ..TraceQuery::service(svc.clone())
        });
    }
    for v in [2, 3, 4, 5] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixtures_of(v).join(WITH_DICT), dir.path().join(WITH_DICT)).unwrap();
        let store = Store::open(dir.path(), Options::read_only()).unwrap();
        assert_eq!(store.services().unwrap(), services, "version {v}");
        for q in &queries {
            let want = find_in_spans(&spans, q).unwrap();
            assert_eq!(store.find_traces(q).unwrap(), want, "version {v}: {q:?}");
        }
    }
}
