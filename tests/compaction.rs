//! Compaction and retention end to end: merging sealed segments, dropping
//! old ones, a crash between a merge and the deletion of its inputs,
//! readers and writers running meanwhile, and the background maintenance
//! thread. Whatever happens, every span is kept exactly once (exact
//! duplicates, as retried appends produce, are written once; spans that
//! only share a span id are all kept), nothing is corrupted, and retention
//! gives the disk space of whole segments back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spanlog::compaction::{merge, MergeOptions};
use spanlog::gen::{generate, GenOptions, Generator};
use spanlog::query::find_in_spans;
use spanlog::segment::{self, FileKind, SealedSegment};
use spanlog::{
    AnyValue, AttrFilter, KeyValue, MatchMode, Operation, Options, Resource, Span, SpanId,
    SpanKind, Status, StatusCode, Store, TraceId, TraceQuery,
};

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * SECOND;
const DAY: u64 = 24 * HOUR;
/// 2026-01-01T00:00:00Z, where the generator starts by default.
const JAN_1_2026: u64 = 1_767_225_600 * SECOND;

// ---------------------------------------------------------------- setup

/// Small segments and blocks, so a few thousand spans make many segments.
fn small(window: Duration) -> Options {
    Options {
        segment_max_bytes: 64 << 10,
        block_target_bytes: 4 << 10,
        compaction_window: window,
        ..Options::default()
    }
}

/// A compaction window of a century: every segment is in the same one.
fn one_window() -> Options {
    small(Duration::from_secs(100 * 365 * 24 * 3600))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// `n` generated spans whose traces start from `start` on.
fn spans_from(seed: u64, start: u64, n: usize) -> Vec<Span> {
    Generator::new(GenOptions {
        seed,
        start_unix_nano: start,
        ..GenOptions::default()
    })
    .take(n)
    .collect()
}

/// Appends a batch and records it among everything appended.
fn put(store: &Store, all: &mut Vec<Span>, batch: &[Span]) {
    store.append(batch.to_vec()).unwrap();
    all.extend_from_slice(batch);
}

/// Spans that share trace, span id and start with a span of `base` but
/// differ in one field: distinct spans, which compaction must keep.
fn variants(base: &[Span]) -> Vec<Span> {
    base.iter()
        .filter(|s| s.parent_span_id.is_some())
        .step_by(97)
        .take(30)
        .enumerate()
        .map(|(k, s)| {
            let mut v = s.clone();
            match k % 3 {
                0 => v
                    .attributes
                    .push(KeyValue::new("variant", AnyValue::Int(k as i64))),
                1 => v.end_time_unix_nano += 1,
                _ => {
                    v.status = Status {
                        code: StatusCode::Error,
                        message: "variant".into(),
                    }
                }
            }
            v
        })
        .collect()
}

/// The workload of most tests: generated spans in batches, sealed every
/// few batches, with batches retried at once (into the same table) and
/// later (into another segment), and variants of some spans. Everything
/// ends up in sealed segments. Returns every span appended, duplicates
/// included.
fn workload(store: &Store, seed: u64, n: usize) -> Vec<Span> {
    let base = generate(seed, n);
    let chunks: Vec<&[Span]> = base.chunks(400).collect();
    let mut all = Vec::new();
    for (i, batch) in chunks.iter().enumerate() {
        put(store, &mut all, batch);
        if i % 5 == 1 {
            put(store, &mut all, batch);
        }
        if i % 3 == 2 {
            store.seal_active().unwrap();
        }
        if i % 4 == 3 {
            put(store, &mut all, chunks[i - 2]);
        }
    }
    let vars = variants(&base);
    assert_eq!(vars.len(), 30);
    put(store, &mut all, &vars);
    put(store, &mut all, &vars[..vars.len() / 2]);
    store.seal_active().unwrap();
    all
}

// ---------------------------------------------------------------- oracle

type Key = (TraceId, u64, SpanId);

fn key(s: &Span) -> Key {
    (s.trace_id, s.start_time_unix_nano, s.span_id)
}

/// `spans` with exact duplicates removed, ordered by key.
fn unique(spans: &[Span]) -> Vec<Span> {
    let mut groups: BTreeMap<Key, Vec<Span>> = BTreeMap::new();
    for s in spans {
        let g = groups.entry(key(s)).or_default();
        if !g.contains(s) {
            g.push(s.clone());
        }
    }
    groups.into_values().flatten().collect()
}

/// Asserts that `got` and `want` hold the same spans, as multisets.
fn assert_same(got: &[Span], want: &[Span], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: span count");
    let mut groups: BTreeMap<Key, Vec<&Span>> = BTreeMap::new();
    for s in want {
        groups.entry(key(s)).or_default().push(s);
    }
    for s in got {
        let g = groups
            .get_mut(&key(s))
            .unwrap_or_else(|| panic!("{what}: unexpected span {}/{}", s.trace_id, s.span_id));
        let at = g.iter().position(|w| *w == s).unwrap_or_else(|| {
            panic!(
                "{what}: span {}/{} differs from every expected one",
                s.trace_id, s.span_id
            )
        });
        g.swap_remove(at);
    }
}

fn by_trace(spans: &[Span]) -> BTreeMap<TraceId, Vec<Span>> {
    let mut out: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    for s in spans {
        out.entry(s.trace_id).or_default().push(s.clone());
    }
    out
}

fn scan_all(store: &Store) -> Vec<Span> {
    store
        .scan(0..u64::MAX)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Services, and the operations of each, as a store lists them.
type Catalog = Vec<(String, Vec<Operation>)>;

fn catalog_of(store: &Store) -> Catalog {
    store
        .services()
        .unwrap()
        .into_iter()
        .map(|s| {
            let ops = store.operations(&s, None).unwrap();
            (s, ops)
        })
        .collect()
}

/// The catalog the spans themselves define.
fn catalog_of_spans(spans: &[Span]) -> Catalog {
    let mut m: BTreeMap<String, BTreeSet<(String, SpanKind)>> = BTreeMap::new();
    for s in spans {
        let svc = s.service_name().unwrap_or("").to_string();
        m.entry(svc).or_default().insert((s.name.clone(), s.kind));
    }
    m.into_iter()
        .map(|(service, ops)| {
            let ops = ops
                .into_iter()
                .map(|(name, kind)| Operation {
                    service: service.clone(),
                    name,
                    kind,
                })
                .collect();
            (service, ops)
        })
        .collect()
}

/// Queries over the fields of `spans`, answered by the reference search.
fn queries(spans: &[Span]) -> Vec<TraceQuery> {
    let first = &spans[0];
    let mid = &spans[spans.len() / 2];
    let service = |s: &Span| s.service_name().map(str::to_string);
    let (lo, hi) = spans.iter().fold((u64::MAX, 0), |(lo, hi), s| {
        (
            lo.min(s.start_time_unix_nano),
            hi.max(s.start_time_unix_nano),
        )
    });
    let all = 1_000_000;
    vec![
        TraceQuery {
            service: service(first),
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            service: service(mid),
            operation: Some(mid.name.clone()),
            kind: Some(mid.kind),
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            attributes: vec![AttrFilter::Equals(
                "http.response.status_code".into(),
                "200".into(),
            )],
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            attributes: vec![AttrFilter::Exists("variant".into())],
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            errors_only: true,
            limit: 7,
            ..TraceQuery::default()
        },
        TraceQuery {
            duration_min: Some(50_000_000),
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            start: Some(lo + (hi - lo) / 3..lo + 2 * (hi - lo) / 3),
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            service: service(first),
            errors_only: true,
            mode: MatchMode::Trace,
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery::default(),
    ]
}

/// Asserts that the store holds exactly `expected`: trace by trace, by a
/// full scan, by search, and in its catalog of services and operations.
fn check(store: &Store, expected: &[Span], what: &str) {
    for (t, want) in by_trace(expected) {
        let got = store.get_trace(t).unwrap();
        assert_same(&got, &want, &format!("{what}: trace {t}"));
    }
    assert!(store.get_trace(TraceId([0xee; 16])).unwrap().is_empty());
    assert_same(&scan_all(store), expected, &format!("{what}: full scan"));
    for q in queries(expected) {
        assert_eq!(
            store.find_traces(&q).unwrap(),
            find_in_spans(expected, &q).unwrap(),
            "{what}: {q:?}"
        );
    }
    assert_eq!(
        catalog_of(store),
        catalog_of_spans(expected),
        "{what}: services and operations"
    );
}

fn assert_verifies(dir: &Path, spans: usize) {
    let report = spanlog::verify::verify_path(dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.spans, spans as u64, "spans verified");
}

// ---------------------------------------------------------------- files

/// Store files of the directory: name and size.
fn dir_files(dir: &Path) -> BTreeMap<String, u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

fn dir_bytes(dir: &Path) -> u64 {
    dir_files(dir).values().sum()
}

/// Ids of the sealed segment files in the directory.
fn seg_ids(dir: &Path) -> BTreeSet<u64> {
    dir_files(dir)
        .keys()
        .filter_map(|n| segment::parse_name(n))
        .filter(|(_, k)| *k == FileKind::Segment)
        .map(|(id, _)| id)
        .collect()
}

fn published_ids(store: &Store) -> Vec<u64> {
    store.sealed_segments().iter().map(|s| s.id).collect()
}

/// Mappings of this process of files of `dir` that were deleted: space a
/// deleted segment keeps taking on the disk.
fn deleted_maps(dir: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    let dir = dir.to_str().unwrap();
    maps.lines()
        .filter(|l| l.contains(dir) && l.ends_with("(deleted)"))
        .count()
}

fn sealed_bytes(store: &Store) -> u64 {
    store.sealed_segments().iter().map(|s| s.file_len()).sum()
}

// ---------------------------------------------------------------- merge

#[test]
fn compaction_keeps_every_span_once_and_drops_exact_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), one_window()).unwrap();
    let all = workload(&store, 1, 6_000);
    let expected = unique(&all);
    let dups = all.len() - expected.len();
    assert!(dups > 1_000, "{dups} duplicates");
    let before = published_ids(&store);
    assert!(before.len() >= 8, "{} sealed segments", before.len());
    // Duplicates are stored as appended until compaction.
    assert_eq!(scan_all(&store).len(), all.len());
    let catalog = catalog_of(&store);
    assert_eq!(catalog, catalog_of_spans(&expected));

    let report = store.compact().unwrap();
    assert!(report.dropped.is_empty(), "{report:?}");
    assert_eq!(report.merged.len(), 1, "{report:?}");
    let (group, id) = report.merged[0].clone();
    assert_eq!(group, before);
    assert!(id > *before.last().unwrap());
    assert_eq!(report.duplicates_dropped, dups as u64);
    assert_eq!(published_ids(&store), vec![id]);
    let infos = store.segments().unwrap();
    assert_eq!(infos.iter().filter(|i| i.sealed).count(), 1);
    assert_eq!(seg_ids(dir.path()), BTreeSet::from([id]));
    assert_eq!(store.sealed_segments()[0].supersedes, before);
    assert_eq!(report.bytes_after, sealed_bytes(&store));
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    assert_eq!(deleted_maps(dir.path()), 0, "inputs still mapped");
    let status = store.maintenance_status();
    assert_eq!(
        (
            status.runs,
            status.segments_merged,
            status.segments_dropped,
            status.duplicates_dropped,
            status.last_error.clone()
        ),
        (1, before.len() as u64, 0, dups as u64, None),
        "{status:?}"
    );
    assert_eq!(
        status.bytes_reclaimed,
        report.bytes_before - report.bytes_after
    );

    check(&store, &expected, "after compaction");
    assert_eq!(catalog_of(&store), catalog);
    assert_verifies(dir.path(), expected.len());

    // Nothing left to merge.
    let again = store.compact().unwrap();
    assert!(again.merged.is_empty() && again.dropped.is_empty());
    assert_eq!(again.duplicates_dropped, 0);
    assert_eq!(published_ids(&store), vec![id]);

    store.close().unwrap();
    let store = Store::open(dir.path(), one_window()).unwrap();
    assert_eq!(published_ids(&store), vec![id]);
    check(&store, &expected, "reopened");
    store.close().unwrap();
    let ro = Store::open(dir.path(), Options::read_only()).unwrap();
    check(&ro, &expected, "reopened read-only");
    assert_verifies(dir.path(), expected.len());
}

#[test]
fn compaction_never_merges_segments_of_different_windows() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), small(Duration::from_secs(3600))).unwrap();
    let mut all = Vec::new();
    // Windows arrive interleaved, as late data does; each batch is sealed
    // into segments of its own window.
    let batches = [
        (0, 11),
        (1, 12),
        (0, 13),
        (2, 14),
        (1, 15),
        (0, 16),
        (2, 17),
    ];
    let mut first = Vec::new();
    for (w, seed) in batches {
        let spans = spans_from(seed, JAN_1_2026 + w * HOUR + 60 * SECOND, 1_500);
        put(&store, &mut all, &spans);
        store.seal_active().unwrap();
        if first.is_empty() {
            first = spans;
        }
    }
    // A retry of the first batch, much later: its window's duplicates.
    put(&store, &mut all, &first[..500]);
    store.seal_active().unwrap();
    let expected = unique(&all);
    assert_eq!(all.len() - expected.len(), 500);

    let window = |min_start: u64| (min_start - JAN_1_2026) / HOUR;
    let windows: BTreeMap<u64, u64> = store
        .sealed_segments()
        .iter()
        .map(|s| (s.id, window(s.trailer.min_start)))
        .collect();
    for w in 0..3 {
        let n = windows.values().filter(|x| **x == w).count();
        assert!(n >= 2, "window {w} has {n} segments");
    }
    for s in &expected {
        assert!(s.start_time_unix_nano - JAN_1_2026 < 3 * HOUR);
    }

    let report = store.compact().unwrap();
    assert_eq!(report.merged.len(), 3, "{report:?}");
    assert_eq!(report.duplicates_dropped, 500);
    let mut merged_inputs = BTreeSet::new();
    for (group, _) in &report.merged {
        let ws: BTreeSet<u64> = group.iter().map(|id| windows[id]).collect();
        assert_eq!(ws.len(), 1, "group {group:?} spans windows {ws:?}");
        merged_inputs.extend(group.iter().copied());
    }
    assert_eq!(merged_inputs, windows.keys().copied().collect());
    let after: Vec<u64> = store
        .sealed_segments()
        .iter()
        .map(|s| window(s.trailer.min_start))
        .collect();
    assert_eq!(after.len(), 3);
    assert_eq!(after.iter().collect::<BTreeSet<_>>().len(), 3, "{after:?}");
    // Each window's segment holds exactly that window's spans.
    for seg in store.sealed_segments().iter() {
        let w = window(seg.trailer.min_start);
        let want: Vec<Span> = expected
            .iter()
            .filter(|s| window(s.start_time_unix_nano) == w)
            .cloned()
            .collect();
        assert_eq!(seg.trailer.span_count, want.len() as u64, "window {w}");
        let range = JAN_1_2026 + w * HOUR..JAN_1_2026 + (w + 1) * HOUR;
        let got: Vec<Span> = store.scan(range).unwrap().map(|r| r.unwrap()).collect();
        assert_same(&got, &want, &format!("window {w}"));
    }
    check(&store, &expected, "after compaction by window");
    assert_verifies(dir.path(), expected.len());
    store.close().unwrap();
    let store = Store::open(dir.path(), small(Duration::from_secs(3600))).unwrap();
    assert_eq!(store.sealed_segments().len(), 3);
    check(&store, &expected, "reopened");
}

/// Segments of every format version ever written merge into one of the
/// current version, every field of every span intact.
#[test]
fn segments_of_every_format_version_compact() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut versions = 0;
    for v in 1.. {
        let from = fixtures.join(format!("v{v}"));
        if !from.exists() {
            break;
        }
        versions += 1;
        let dir = tempfile::tempdir().unwrap();
        for (name, _) in dir_files(&from) {
            if segment::parse_name(&name).is_some() {
                std::fs::copy(from.join(&name), dir.path().join(&name)).unwrap();
            }
        }
        let store = Store::open(dir.path(), one_window()).unwrap();
        let before = scan_all(&store);
        assert!(!before.is_empty(), "v{v}");
        assert!(store.sealed_segments().len() >= 2, "v{v}");
        let expected = unique(&before);
        let report = store.compact().unwrap();
        assert_eq!(report.merged.len(), 1, "v{v}: {report:?}");
        assert_eq!(
            report.duplicates_dropped,
            (before.len() - expected.len()) as u64
        );
        assert_eq!(
            store.sealed_segments()[0].header.version,
            segment::FORMAT_VERSION
        );
        check(&store, &expected, &format!("v{v} compacted"));
        store.close().unwrap();
        assert_verifies(dir.path(), expected.len());
    }
    assert!(versions >= 4);
}

// ---------------------------------------------------------------- crashes

fn merge_options() -> MergeOptions {
    MergeOptions {
        block_bytes: 4 << 10,
        level: 3,
        rate_bytes_per_sec: None,
        give_way: None,
    }
}

/// Opens the sealed segments `ids` of `dir` as a merge's inputs.
fn open_inputs(dir: &Path, ids: &BTreeSet<u64>) -> Vec<Arc<SealedSegment>> {
    ids.iter()
        .map(|id| Arc::new(SealedSegment::open(&dir.join(segment::sealed_name(*id))).unwrap()))
        .collect()
}

/// A store of several sealed segments, closed; returns every span appended.
fn closed_store(dir: &Path, seed: u64) -> Vec<Span> {
    let store = Store::open(dir, one_window()).unwrap();
    let all = workload(&store, seed, 4_000);
    store.close().unwrap();
    all
}

fn next_id(dir: &Path) -> u64 {
    dir_files(dir)
        .keys()
        .filter_map(|n| segment::parse_name(n))
        .map(|(id, _)| id)
        .max()
        .unwrap()
        + 1
}

#[test]
fn a_crash_after_the_merge_before_deleting_inputs_counts_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let all = closed_store(dir.path(), 2);
    let expected = unique(&all);
    let inputs = seg_ids(dir.path());
    assert!(inputs.len() >= 4, "{inputs:?}");
    let id = next_id(dir.path());
    let (out, stats) = merge(
        dir.path(),
        id,
        &open_inputs(dir.path(), &inputs),
        &merge_options(),
    )
    .unwrap();
    assert_eq!(out.supersedes, inputs.iter().copied().collect::<Vec<_>>());
    assert_eq!(stats.spans_in, all.len() as u64);
    assert_eq!(stats.spans_out, expected.len() as u64);
    assert_eq!(stats.duplicates, (all.len() - expected.len()) as u64);
    assert_eq!(out.trailer.span_count, expected.len() as u64);
    drop(out);
    // The crash: the inputs were not deleted.
    let mut both = inputs.clone();
    both.insert(id);
    assert_eq!(seg_ids(dir.path()), both);
    let files = dir_files(dir.path());

    let ro = Store::open(dir.path(), Options::read_only()).unwrap();
    assert_eq!(published_ids(&ro), vec![id]);
    check(&ro, &expected, "read-only beside superseded inputs");
    ro.close().unwrap();
    drop(ro);
    assert_eq!(
        dir_files(dir.path()),
        files,
        "a read-only open changed files"
    );
    let report = spanlog::verify::verify_path(dir.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);

    let store = Store::open(dir.path(), one_window()).unwrap();
    assert_eq!(seg_ids(dir.path()), BTreeSet::from([id]));
    assert_eq!(published_ids(&store), vec![id]);
    check(&store, &expected, "writer after the crash");
    store.close().unwrap();
    assert_verifies(dir.path(), expected.len());
}

#[test]
fn a_merge_interrupted_before_its_rename_is_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let all = closed_store(dir.path(), 3);
    let expected = unique(&all);
    let inputs = seg_ids(dir.path());
    assert!(inputs.len() >= 4, "{inputs:?}");
    let id = next_id(dir.path());
    let (out, _) = merge(
        dir.path(),
        id,
        &open_inputs(dir.path(), &inputs),
        &merge_options(),
    )
    .unwrap();
    drop(out);
    // The merged file, whole but still under its temporary name: the state
    // just before the rename. Its footer names the inputs it would replace.
    let tmp = dir.path().join(segment::temp_name(id));
    std::fs::rename(dir.path().join(segment::sealed_name(id)), &tmp).unwrap();
    assert_eq!(seg_ids(dir.path()), inputs);
    let files = dir_files(dir.path());

    let ro = Store::open(dir.path(), Options::read_only()).unwrap();
    assert_eq!(
        published_ids(&ro),
        inputs.iter().copied().collect::<Vec<_>>()
    );
    // The inputs, duplicates and all, as before the merge began.
    check(&ro, &all, "read-only beside an unfinished merge");
    drop(ro);
    assert_eq!(
        dir_files(dir.path()),
        files,
        "a read-only open changed files"
    );

    let store = Store::open(dir.path(), one_window()).unwrap();
    assert!(!tmp.exists(), "the unfinished merge was not removed");
    assert_eq!(seg_ids(dir.path()), inputs);
    check(&store, &all, "writer beside an unfinished merge");
    // The inputs are authoritative, duplicates and all; compacting now
    // gives the same result the interrupted merge would have.
    let report = store.compact().unwrap();
    assert_eq!(report.merged.len(), 1);
    assert!(report.merged[0].1 > id);
    check(&store, &expected, "compacted after an unfinished merge");
    store.close().unwrap();
    assert_verifies(dir.path(), expected.len());
}

// ---------------------------------------------------------------- concurrency

#[test]
fn readers_started_before_compaction_read_on_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), one_window()).unwrap();
    let all = workload(&store, 4, 5_000);
    let expected = unique(&all);
    let old = by_trace(&all);
    let new = by_trace(&expected);
    assert!(old.iter().any(|(t, s)| s.len() != new[t].len()));

    let mut scan = store.scan(0..u64::MAX).unwrap();
    let mut scanned: Vec<Span> = scan.by_ref().take(100).map(|r| r.unwrap()).collect();
    let done = AtomicBool::new(false);
    let (report, rounds) = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut rounds = 0;
            loop {
                let last = done.load(Ordering::Acquire);
                // A trace is read whole from the segments before or whole
                // from the segment after, never from a mix.
                for (t, before) in &old {
                    let got = store.get_trace(*t).unwrap();
                    let want = if got.len() == before.len() {
                        before
                    } else {
                        &new[t]
                    };
                    assert_same(&got, want, &format!("trace {t} during compaction"));
                }
                rounds += 1;
                if last {
                    return rounds;
                }
            }
        });
        let report = store.compact().unwrap();
        done.store(true, Ordering::Release);
        (report, reader.join().unwrap())
    });
    assert!(rounds >= 1);
    assert_eq!(report.merged.len(), 1);
    // The scan goes on over the segments it started with, now deleted.
    scanned.extend(scan.map(|r| r.unwrap()));
    assert_same(&scanned, &all, "scan begun before compaction");
    check(&store, &expected, "after compaction under readers");
    assert_eq!(deleted_maps(dir.path()), 0, "inputs still mapped");
}

#[test]
fn appends_and_flushes_during_compaction_are_all_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), one_window()).unwrap();
    let all = workload(&store, 5, 4_000);
    let extra = spans_from(55, JAN_1_2026 + 10 * SECOND, 6_000);
    let writing = AtomicBool::new(true);
    let (acked, compactions) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut acked = Vec::new();
            for batch in extra.chunks(150) {
                store.append(batch.to_vec()).unwrap();
                store.flush().unwrap();
                acked.extend_from_slice(batch);
            }
            writing.store(false, Ordering::Release);
            acked
        });
        let mut compactions = 0;
        while writing.load(Ordering::Acquire) || compactions < 2 {
            store.compact().unwrap();
            compactions += 1;
        }
        (writer.join().unwrap(), compactions)
    });
    assert!(compactions >= 2);
    assert_eq!(acked.len(), extra.len());
    let mut everything = all.clone();
    everything.extend(acked);
    let expected = unique(&everything);
    check(&store, &expected, "after compaction beside a writer");
    store.seal_active().unwrap();
    store.compact().unwrap();
    assert_eq!(store.sealed_segments().len(), 1);
    check(&store, &expected, "compacted once more");
    store.close().unwrap();
    assert_verifies(dir.path(), expected.len());
    let store = Store::open(dir.path(), one_window()).unwrap();
    check(&store, &expected, "reopened");
}

// ---------------------------------------------------------------- retention

/// `spans` moved in time so the earliest starts at `start`.
fn shifted(spans: Vec<Span>, start: u64) -> Vec<Span> {
    let first = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap();
    let moved = |t: u64| t - first + start;
    spans
        .into_iter()
        .map(|mut s| {
            s.start_time_unix_nano = moved(s.start_time_unix_nano);
            s.end_time_unix_nano = moved(s.end_time_unix_nano);
            for e in &mut s.events {
                e.time_unix_nano = moved(e.time_unix_nano.max(first));
            }
            s
        })
        .collect()
}

/// Appends `spans` and seals them; returns the ids of the new segments.
fn seal_batch(store: &Store, spans: &[Span]) -> Vec<u64> {
    let before: BTreeSet<u64> = published_ids(store).into_iter().collect();
    store.append(spans.to_vec()).unwrap();
    store.seal_active().unwrap();
    published_ids(store)
        .into_iter()
        .filter(|id| !before.contains(id))
        .collect()
}

#[test]
fn retention_by_age_drops_exactly_the_old_segments_and_frees_their_space() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        retention_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        ..small(Duration::from_secs(3600))
    };
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let now = now_nanos();
    let (mut old, mut new, mut old_ids) = (Vec::new(), Vec::new(), BTreeSet::new());
    for (i, seed) in (21..25).enumerate() {
        let spans = spans_from(seed, JAN_1_2026, 1_500);
        if i % 2 == 0 {
            let spans = shifted(spans, now - HOUR - i as u64 * 60 * SECOND);
            seal_batch(&store, &spans);
            new.extend(spans);
        } else {
            let spans = shifted(spans, now - 10 * DAY + i as u64 * HOUR);
            old_ids.extend(seal_batch(&store, &spans));
            old.extend(spans);
        }
    }
    assert!(old_ids.len() >= 2, "{old_ids:?}");
    let sizes: BTreeMap<u64, u64> = store
        .sealed_segments()
        .iter()
        .map(|s| (s.id, s.file_len()))
        .collect();
    let old_bytes: u64 = old_ids.iter().map(|id| sizes[id]).sum();
    let bytes_before = dir_bytes(dir.path());
    let old_traces: BTreeSet<TraceId> = old.iter().map(|s| s.trace_id).collect();

    let report = store.apply_retention().unwrap();
    assert!(report.merged.is_empty(), "{report:?}");
    assert_eq!(
        report.dropped.iter().copied().collect::<BTreeSet<_>>(),
        old_ids
    );
    assert_eq!(report.bytes_before - report.bytes_after, old_bytes);
    for t in &old_traces {
        assert!(store.get_trace(*t).unwrap().is_empty(), "old trace {t}");
    }
    check(&store, &unique(&new), "after retention");
    let bytes_after = dir_bytes(dir.path());
    assert!(bytes_after < bytes_before);
    assert_eq!(bytes_after, bytes_before - old_bytes);
    assert_eq!(
        seg_ids(dir.path()),
        sizes
            .keys()
            .copied()
            .filter(|id| !old_ids.contains(id))
            .collect()
    );
    assert_eq!(deleted_maps(dir.path()), 0, "dropped segments still mapped");
    let status = store.maintenance_status();
    assert_eq!(status.runs, 1);
    assert_eq!(status.segments_dropped, old_ids.len() as u64);
    assert_eq!(status.segments_merged, 0);
    assert_eq!(status.bytes_reclaimed, old_bytes);
    assert_eq!(status.last_error, None);

    // Nothing more to drop.
    assert!(store.apply_retention().unwrap().dropped.is_empty());
    assert_eq!(store.maintenance_status().runs, 2);
    store.close().unwrap();
    let store = Store::open(dir.path(), opts).unwrap();
    for t in &old_traces {
        assert!(store.get_trace(*t).unwrap().is_empty(), "old trace {t}");
    }
    check(&store, &unique(&new), "reopened after retention");
    store.close().unwrap();
    assert_verifies(dir.path(), new.len());
}

#[test]
fn retention_by_size_drops_the_oldest_windows_first() {
    let dir = tempfile::tempdir().unwrap();
    let window = Duration::from_secs(3600);
    let store = Store::open(dir.path(), small(window)).unwrap();
    // Written out of time order: window 2, 0, 3, 1.
    let mut ids: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    let mut spans: BTreeMap<u64, Vec<Span>> = BTreeMap::new();
    for (w, seed) in [(2, 31), (0, 32), (3, 33), (1, 34)] {
        let batch = spans_from(seed, JAN_1_2026 + w * HOUR + 60 * SECOND, 1_500);
        ids.entry(w).or_default().extend(seal_batch(&store, &batch));
        spans.insert(w, batch);
    }
    let sizes: BTreeMap<u64, u64> = store
        .sealed_segments()
        .iter()
        .map(|s| (s.id, s.file_len()))
        .collect();
    let window_bytes = |w: u64| -> u64 { ids[&w].iter().map(|id| sizes[id]).sum() };
    let total: u64 = sizes.values().sum();
    store.close().unwrap();
    drop(store);

    // Dropping window 0 is not enough; dropping window 1 too is.
    let cap = total - window_bytes(0) - window_bytes(1) / 2;
    let opts = Options {
        retention_max_bytes: Some(cap),
        ..small(window)
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let bytes_before = dir_bytes(dir.path());
    let report = store.apply_retention().unwrap();
    let gone: BTreeSet<u64> = ids[&0].union(&ids[&1]).copied().collect();
    assert_eq!(
        report.dropped.iter().copied().collect::<BTreeSet<_>>(),
        gone
    );
    assert!(report.bytes_after <= cap, "{report:?}");
    assert_eq!(
        sealed_bytes(&store),
        total - window_bytes(0) - window_bytes(1)
    );
    assert_eq!(
        dir_bytes(dir.path()),
        bytes_before - window_bytes(0) - window_bytes(1)
    );
    for w in [0, 1] {
        for s in &spans[&w] {
            assert!(store.get_trace(s.trace_id).unwrap().is_empty());
        }
    }
    let mut kept = spans[&2].clone();
    kept.extend(spans[&3].iter().cloned());
    check(&store, &unique(&kept), "after retention by size");
    let status = store.maintenance_status();
    assert_eq!(status.segments_dropped, gone.len() as u64);
    assert_eq!(status.bytes_reclaimed, window_bytes(0) + window_bytes(1));
    // Under the cap now: nothing more goes.
    assert!(store.apply_retention().unwrap().dropped.is_empty());
    assert_eq!(deleted_maps(dir.path()), 0);
}

#[test]
fn background_maintenance_drops_old_data_and_stops_with_close() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        maintenance_interval: Some(Duration::from_millis(50)),
        retention_max_age: Some(Duration::from_secs(7 * 24 * 3600)),
        ..small(Duration::from_secs(3600))
    };
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let now = now_nanos();
    let mut new = Vec::new();
    let mut old = Vec::new();
    for (i, seed) in (41..47).enumerate() {
        let spans = spans_from(seed, JAN_1_2026, 800);
        if i % 2 == 0 {
            let spans = shifted(spans, now - 10 * DAY + i as u64 * HOUR);
            seal_batch(&store, &spans);
            old.extend(spans);
        } else {
            let spans = shifted(spans, now - 30 * 60 * SECOND + i as u64 * SECOND);
            seal_batch(&store, &spans);
            new.extend(spans);
        }
    }
    let old_traces: BTreeSet<TraceId> = old.iter().map(|s| s.trace_id).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let gone = old_traces
            .iter()
            .all(|t| store.get_trace(*t).unwrap().is_empty());
        if gone && store.maintenance_status().runs > 0 {
            break;
        }
        assert!(Instant::now() < deadline, "old data still there");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = store.maintenance_status();
    // How many segments held the old spans depends on when the sealer
    // and the background rounds ran; that some were dropped and none of
    // the old spans is left is what matters.
    assert!(
        status.runs > 0 && status.segments_dropped >= 1,
        "{status:?}"
    );
    assert_eq!(status.last_error, None);
    assert!(store
        .sealed_segments()
        .iter()
        .all(|s| s.trailer.max_end + 7 * DAY > now));
    check(&store, &unique(&new), "beside background maintenance");
    let started = Instant::now();
    store.close().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "close took {:?}",
        started.elapsed()
    );
    let store = Store::open(dir.path(), Options::read_only()).unwrap();
    check(
        &store,
        &unique(&new),
        "reopened after background maintenance",
    );
    assert_verifies(dir.path(), new.len());
}

/// A background merge held back by `compaction_rate_bytes_per_sec` would
/// take half a minute; neither the status nor close waits for it, and the
/// merge given up leaves nothing behind.
#[test]
fn a_slow_background_merge_delays_neither_status_nor_close() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        compaction_fan_in: 4,
        compaction_rate_bytes_per_sec: Some(16 << 10),
        maintenance_interval: Some(Duration::from_millis(20)),
        ..one_window()
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let spans = generate(8, 4_000);
    for batch in spans.chunks(500) {
        store.append(batch.to_vec()).unwrap();
        store.seal_active().unwrap();
    }
    let merging = || {
        dir_files(dir.path())
            .keys()
            .filter_map(|n| segment::parse_name(n))
            .any(|(_, k)| k == FileKind::Temp)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !merging() {
        assert!(Instant::now() < deadline, "no merge started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = Instant::now();
    let status = store.maintenance_status();
    // Far below the merge's half minute, and generous for a loaded machine.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "maintenance_status took {:?}",
        started.elapsed()
    );
    assert_eq!(status.last_error, None);
    check(&store, &spans, "while a merge runs");
    let started = Instant::now();
    store.close().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "close took {:?}",
        started.elapsed()
    );
    assert_eq!(store.maintenance_status().last_error, None);
    drop(store);
    assert!(!merging(), "the unfinished merge was left behind");
    let store = Store::open(dir.path(), Options::read_only()).unwrap();
    check(&store, &spans, "reopened after close cut a merge short");
    assert_verifies(dir.path(), spans.len());
}

// ---------------------------------------------------------------- large

#[test]
fn a_trace_of_100000_spans_compacts_whole() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_max_bytes: 4 << 20,
        ..one_window()
    };
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let trace = TraceId([0x42; 16]);
    let resource = Arc::new(Resource {
        attributes: vec![KeyValue::new(
            "service.name",
            AnyValue::String("big".into()),
        )],
        ..Resource::default()
    });
    let root = SpanId(1u64.to_be_bytes());
    let spans: Vec<Span> = (0..100_000u64)
        .map(|i| Span {
            trace_id: trace,
            span_id: SpanId((i + 1).to_be_bytes()),
            parent_span_id: (i > 0).then_some(root),
            name: format!("op{}", i % 10),
            kind: SpanKind::Internal,
            start_time_unix_nano: JAN_1_2026 + i * 1_000,
            end_time_unix_nano: JAN_1_2026 + i * 1_000 + 500,
            attributes: vec![KeyValue::new("i", AnyValue::Int(i as i64))],
            resource: resource.clone(),
            ..Span::default()
        })
        .collect();
    let mut all = Vec::new();
    for (i, batch) in spans.chunks(10_000).enumerate() {
        put(&store, &mut all, batch);
        if i % 2 == 1 {
            store.seal_active().unwrap();
        }
    }
    // A retried batch.
    put(&store, &mut all, &spans[50_000..51_000]);
    store.seal_active().unwrap();
    let segments = store.sealed_segments().len();
    assert!(segments >= 5, "{segments} segments");
    assert_eq!(store.get_trace(trace).unwrap().len(), 101_000);

    let started = Instant::now();
    let report = store.compact().unwrap();
    let took = started.elapsed();
    assert_eq!(report.merged.len(), 1);
    assert_eq!(report.merged[0].0.len(), segments);
    assert_eq!(report.duplicates_dropped, 1_000);
    let seg = store.sealed_segments()[0].clone();
    assert_eq!(seg.trailer.span_count, 100_000);
    assert!(
        seg.blocks.len() > 1,
        "one trace, {} blocks",
        seg.blocks.len()
    );
    assert!(took < Duration::from_secs(20), "compaction took {took:?}");
    let got = store.get_trace(trace).unwrap();
    assert_eq!(got, spans, "the trace read back");
    let q = TraceQuery::service("big");
    let found = store.find_traces(&q).unwrap();
    assert_eq!(found, find_in_spans(&spans, &q).unwrap());
    assert_eq!(found[0].span_count, 100_000);
    store.close().unwrap();
    assert_verifies(dir.path(), 100_000);
    let store = Store::open(dir.path(), opts).unwrap();
    assert_eq!(store.get_trace(trace).unwrap(), spans);
}

#[test]
fn a_large_merge_trains_a_larger_dictionary_on_its_own_blocks() {
    use spanlog::dict::{merge_dict_bytes, DICT_MAX_BYTES};
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_max_bytes: 8 << 20,
        ..one_window()
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let spans = spans_from(3, JAN_1_2026, 200_000);
    for batch in spans.chunks(1_000) {
        store.append(batch.to_vec()).unwrap();
    }
    store.seal_active().unwrap();
    let inputs = store.sealed_segments();
    assert!(inputs.len() >= 2, "{} segments", inputs.len());
    assert!(inputs
        .iter()
        .all(|s| s.dict_bytes().is_some_and(|d| d.len() <= DICT_MAX_BYTES)));
    let want = merge_dict_bytes(inputs.iter().map(|s| s.file_len()).sum());
    assert!(want > DICT_MAX_BYTES, "{want}");
    drop(inputs);

    let report = store.compact().unwrap();
    assert_eq!(report.merged.len(), 1, "{report:?}");
    let out = store.sealed_segments();
    let dict = out[0].dict_bytes().expect("the merge's own dictionary");
    assert!(
        dict.len() > DICT_MAX_BYTES && dict.len() <= want,
        "{} bytes",
        dict.len()
    );
    drop(out);
    assert_eq!(scan_all(&store).len(), spans.len());
    for s in spans.iter().step_by(997) {
        let got = store.get_trace(s.trace_id).unwrap();
        assert!(got.contains(s), "span of {} lost", s.trace_id);
    }
    store.close().unwrap();
    assert_verifies(dir.path(), spans.len());
}
