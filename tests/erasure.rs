//! Erasure on request (format-spec 7.12): `Store::delete_traces` makes
//! traces invisible to every read at once — spans in sealed segments, in
//! the write-ahead log and in memory alike, across seals, reopens and a
//! crash — leaves every other trace as it was, keeps spans appended after
//! the deletion, and compaction removes the erased bytes from the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use spanlog::gen::generate;
use spanlog::query::find_in_spans;
use spanlog::segment::{BlockSource, SealedSegment};
use spanlog::tombstone::{TOMBSTONE_FILE, TOMBSTONE_HEADER_LEN};
use spanlog::verify::verify_path;
use spanlog::{
    AnyValue, AttrFilter, Error, KeyValue, MatchMode, Options, Span, SpanId, Store, TraceId,
    TraceQuery,
};

// ---------------------------------------------------------------- setup

/// Segments are sealed explicitly (or by a deletion), not by size, so that
/// spans can be placed in segments, the log and memory at will.
fn opts() -> Options {
    Options {
        segment_max_bytes: 8 << 20,
        block_target_bytes: 4 << 10,
        ..Options::default()
    }
}

fn put(store: &Store, spans: &[Span]) {
    for batch in spans.chunks(100) {
        store.append(batch.to_vec()).unwrap();
    }
}

/// Where the spans of the standard workload are when the deletion comes.
const SEALED: std::ops::Range<usize> = 0..4000;
const LOGGED: std::ops::Range<usize> = 4000..4600;
const MEMORY: std::ops::Range<usize> = 4600..5000;

/// Generated spans: the first 4000 in four sealed segments, the next 600
/// flushed to the log, the last 400 only in memory. Returns the spans and
/// the victims: traces in a segment, across a segment and the log, in the
/// log only, across the log and memory, and in memory only.
fn populate(store: &Store) -> (Vec<Span>, Vec<TraceId>) {
    let spans = generate(41, MEMORY.end);
    for part in spans[SEALED].chunks(1000) {
        put(store, part);
        store.seal_active().unwrap();
    }
    put(store, &spans[LOGGED]);
    store.flush().unwrap();
    put(store, &spans[MEMORY]);
    let places = |t: &TraceId| -> BTreeSet<usize> {
        spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.trace_id == *t)
            .map(|(i, _)| match i {
                i if SEALED.contains(&i) => 0,
                i if LOGGED.contains(&i) => 1,
                _ => 2,
            })
            .collect()
    };
    // Traces that no link names, so that no byte of a victim's id is left
    // anywhere once it is erased.
    let linked: BTreeSet<TraceId> = spans
        .iter()
        .flat_map(|s| s.links.iter().map(|l| l.trace_id))
        .collect();
    let traces: BTreeSet<TraceId> = spans
        .iter()
        .map(|s| s.trace_id)
        .filter(|t| !linked.contains(t))
        .collect();
    let mut victims = Vec::new();
    for want in [vec![0], vec![0, 1], vec![1], vec![1, 2], vec![2]] {
        let want: BTreeSet<usize> = want.into_iter().collect();
        let t = traces
            .iter()
            .find(|t| !victims.contains(*t) && places(t) == want)
            .unwrap_or_else(|| panic!("no trace stored in {want:?}"));
        victims.push(*t);
    }
    (spans, victims)
}

fn without(spans: &[Span], victims: &[TraceId]) -> Vec<Span> {
    spans
        .iter()
        .filter(|s| !victims.contains(&s.trace_id))
        .cloned()
        .collect()
}

type Key = (TraceId, u64, SpanId);

fn key(s: &Span) -> Key {
    (s.trace_id, s.start_time_unix_nano, s.span_id)
}

fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(key);
    spans
}

fn by_trace(spans: &[Span]) -> BTreeMap<TraceId, Vec<Span>> {
    let mut out: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    for s in spans {
        out.entry(s.trace_id).or_default().push(s.clone());
    }
    out
}

/// Queries of every kind the store answers: by service (service rows),
/// with operation and attribute, trace-level, without a service (decoding).
fn queries(spans: &[Span], victims: &[TraceId]) -> Vec<TraceQuery> {
    let mut services: BTreeSet<String> = spans
        .iter()
        .filter(|s| victims.contains(&s.trace_id))
        .filter_map(|s| s.service_name().map(str::to_string))
        .collect();
    services.extend(
        spans
            .iter()
            .take(50)
            .filter_map(|s| s.service_name().map(str::to_string)),
    );
    let mut out = vec![TraceQuery {
        limit: 100_000,
        ..TraceQuery::default()
    }];
    for service in services {
        let op = spans
            .iter()
            .find(|s| s.service_name() == Some(&service))
            .map(|s| s.name.clone());
        out.push(TraceQuery {
            service: Some(service.clone()),
            limit: 100_000,
            ..TraceQuery::default()
        });
        out.push(TraceQuery {
            service: Some(service.clone()),
            operation: op,
            limit: 100_000,
            ..TraceQuery::default()
        });
        out.push(TraceQuery {
            service: Some(service.clone()),
            attributes: vec![AttrFilter::parse("http.request.method=GET").unwrap()],
            limit: 100_000,
            ..TraceQuery::default()
        });
        out.push(TraceQuery {
            service: Some(service),
            mode: MatchMode::Trace,
            limit: 100_000,
            ..TraceQuery::default()
        });
    }
    out
}

/// Every read of `store` shows exactly `want`: the victims nowhere, every
/// other trace whole.
fn check_reads(
    store: &Store,
    want: &[Span],
    victims: &[TraceId],
    queries: &[TraceQuery],
    what: &str,
) {
    for v in victims {
        assert!(
            store.get_trace(*v).unwrap().is_empty(),
            "{what}: get_trace {v}"
        );
        assert!(
            store.get_trace_in(*v, 0..u64::MAX).unwrap().is_empty(),
            "{what}: get_trace_in {v}"
        );
    }
    let got = store.get_traces(victims).unwrap();
    assert!(got.iter().all(Vec::is_empty), "{what}: get_traces");
    let scanned: Vec<Span> = store
        .scan(0..u64::MAX)
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        scanned.iter().all(|s| !victims.contains(&s.trace_id)),
        "{what}: scan returns an erased span"
    );
    assert_eq!(sorted(scanned), sorted(want.to_vec()), "{what}: scan");
    for (t, spans) in by_trace(want) {
        let mut expect = spans;
        expect.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
        assert_eq!(store.get_trace(t).unwrap(), expect, "{what}: trace {t}");
    }
    for q in queries {
        let got = store.find_traces(q).unwrap();
        assert!(
            got.iter().all(|s| !victims.contains(&s.trace_id)),
            "{what}: {q:?} finds an erased trace"
        );
        assert_eq!(got, find_in_spans(want, q).unwrap(), "{what}: {q:?}");
    }
}

/// Every sealed segment in `dir`, opened as a reader that knows nothing of
/// tombstones would: its trace index, and every span of its blocks.
fn segment_spans(dir: &Path) -> Vec<(Arc<SealedSegment>, Vec<Span>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "seg") {
            let seg = Arc::new(SealedSegment::open(&path).unwrap());
            let src = BlockSource::Mapped(seg.clone());
            let spans = seg
                .blocks
                .iter()
                .flat_map(|b| src.all_spans(b).unwrap())
                .collect();
            out.push((seg, spans));
        }
    }
    out
}

/// No file of `dir` holds a victim: no segment's trace index or blocks,
/// and no file holds the victim's 16 id bytes (footers store ids
/// uncompressed, and so do the tombstones). Other traces' links may name
/// an erased trace: those spans are the other traces' data and are kept,
/// and a segment holding such a link is checked in its footer only.
fn assert_physically_gone(dir: &Path, victims: &[TraceId]) {
    let mut linked: BTreeMap<std::path::PathBuf, BTreeSet<TraceId>> = BTreeMap::new();
    for (seg, spans) in segment_spans(dir) {
        for v in victims {
            assert!(
                seg.trace_ordinal(v).is_none(),
                "{} indexes erased trace {v}",
                seg.path.display()
            );
        }
        assert!(
            spans.iter().all(|s| !victims.contains(&s.trace_id)),
            "{} holds a span of an erased trace",
            seg.path.display()
        );
        let links = spans
            .iter()
            .flat_map(|s| s.links.iter().map(|l| l.trace_id));
        linked.insert(seg.path.clone(), links.collect());
        let footer =
            std::fs::read(&seg.path).unwrap()[seg.trailer.footer_start as usize..].to_vec();
        for v in victims {
            assert!(
                !footer.windows(16).any(|w| w == v.0),
                "the footer of {} holds the bytes of erased trace {v}",
                seg.path.display()
            );
        }
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for v in victims {
            if linked.get(&path).is_some_and(|l| l.contains(v)) {
                continue;
            }
            assert!(
                !bytes.windows(16).any(|w| w == v.0),
                "{} holds the bytes of erased trace {v}",
                path.display()
            );
        }
    }
}

fn assert_verifies(dir: &Path) {
    let r = verify_path(dir).unwrap();
    assert!(r.is_clean(), "{:?}", r.problems);
}

// ---------------------------------------------------------------- tests

#[test]
fn erased_traces_are_invisible_to_every_read_wherever_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let (spans, victims) = populate(&store);
    let want = without(&spans, &victims);
    let qs = queries(&spans, &victims);
    check_reads(&store, &spans, &[], &qs[..3], "before");
    let segments_before = store.sealed_segments().len();

    store.delete_traces(&victims).unwrap();
    assert_eq!(
        store.erased_traces().unwrap(),
        victims
            .iter()
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    check_reads(&store, &want, &victims, &qs, "at once");
    // A read-only open beside the writer sees the deletion.
    let ro = Store::open(dir.path(), Options::read_only()).unwrap();
    check_reads(&ro, &want, &victims, &qs, "read-only beside the writer");
    drop(ro);

    // The memory spans never reach a segment: the table the deletion froze
    // is sealed without them.
    store.flush().unwrap();
    let segs = store.sealed_segments();
    assert_eq!(segs.len(), segments_before + 1);
    let sealed_after = segs.last().unwrap();
    for v in &victims {
        assert!(sealed_after.trace_ordinal(v).is_none(), "{v} was sealed");
    }
    check_reads(&store, &want, &victims, &qs, "sealed");

    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    check_reads(&store, &want, &victims, &qs, "reopened");
    // Erased bytes are still on disk until compaction, but no read shows them.
    assert!(!store.erased_traces().unwrap().is_empty());
    drop(store);
    let ro = Store::open(dir.path(), Options::read_only()).unwrap();
    check_reads(&ro, &want, &victims, &qs, "read-only");
    assert!(matches!(ro.delete_traces(&victims), Err(Error::ReadOnly)));
    drop(ro);
    assert_verifies(dir.path());
}

#[test]
fn compaction_removes_the_erased_bytes_and_then_the_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let (spans, victims) = populate(&store);
    let want = without(&spans, &victims);
    let qs = queries(&spans, &victims);
    store.delete_traces(&victims).unwrap();
    assert!(dir.path().join(TOMBSTONE_FILE).exists());

    let report = store.compact().unwrap();
    // The table the deletion froze (the log's spans and the memory's) was
    // sealed without them; compaction drops those in older segments.
    let in_segments = spans[SEALED]
        .iter()
        .filter(|s| victims.contains(&s.trace_id))
        .count();
    assert_eq!(report.spans_erased as usize, in_segments, "{report:?}");
    assert_eq!(
        report.erasures_completed,
        victims.len() as u64,
        "{report:?}"
    );
    assert!(store.erased_traces().unwrap().is_empty());
    assert!(!dir.path().join(TOMBSTONE_FILE).exists());
    check_reads(&store, &want, &victims, &qs, "compacted");
    store.close().unwrap();

    assert_physically_gone(dir.path(), &victims);
    let stored: Vec<Span> = segment_spans(dir.path())
        .into_iter()
        .flat_map(|(_, s)| s)
        .collect();
    assert_eq!(sorted(stored), sorted(want.clone()));
    assert_verifies(dir.path());
    let store = Store::open(dir.path(), opts()).unwrap();
    check_reads(&store, &want, &victims, &qs, "compacted and reopened");
}

/// What a compaction rewrites for erasure: the segments that hold an
/// erased trace or name its id in their dictionary, and every segment that
/// shares the dictionary of one of those.
fn must_rewrite(store: &Store, victims: &[TraceId]) -> BTreeSet<u64> {
    let segs = store.sealed_segments();
    let names = |d: &[u8]| victims.iter().any(|v| d.windows(16).any(|w| w == v.0));
    let holders: Vec<&Arc<SealedSegment>> = segs
        .iter()
        .filter(|s| {
            victims.iter().any(|v| s.trace_ordinal(v).is_some())
                || s.dict_bytes().is_some_and(names)
        })
        .collect();
    let dicts: Vec<&[u8]> = holders.iter().filter_map(|s| s.dict_bytes()).collect();
    segs.iter()
        .filter(|s| {
            holders.iter().any(|h| h.id == s.id)
                || s.dict_bytes().is_some_and(|d| dicts.contains(&d))
        })
        .map(|s| s.id)
        .collect()
}

#[test]
fn a_maintenance_round_rewrites_only_the_segments_that_hold_erased_traces() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        // The policy alone would merge nothing.
        compaction_fan_in: 1000,
        ..opts()
    };
    // Two sessions, so two families of segments sharing a dictionary.
    let spans = generate(43, 5000);
    let mut families = Vec::new();
    for part in [&spans[..2000], &spans[2000..]] {
        let store = Store::open(dir.path(), o.clone()).unwrap();
        for chunk in part.chunks(1000) {
            put(&store, chunk);
            store.seal_active().unwrap();
        }
        families.push(
            store
                .sealed_segments()
                .iter()
                .map(|s| s.id)
                .collect::<BTreeSet<u64>>(),
        );
        store.close().unwrap();
    }
    let first = families[0].clone();
    let store = Store::open(dir.path(), o).unwrap();
    let before: BTreeSet<u64> = store.sealed_segments().iter().map(|s| s.id).collect();
    assert_eq!(before.len(), 5, "{before:?}");
    assert!(store
        .sealed_segments()
        .iter()
        .all(|s| s.dict_bytes().is_some()));
    // Every trace of the fourth segment (some reach into its neighbours).
    let fourth = store.sealed_segments()[3].clone();
    let victims: Vec<TraceId> = {
        let idx = fourth.trace_index();
        (0..idx.len()).map(|i| idx.trace_at(i)).collect()
    };
    assert!(store.maintain().unwrap().merged.is_empty());
    store.delete_traces(&victims).unwrap();
    let expect = must_rewrite(&store, &victims);
    assert!(expect.contains(&fourth.id));
    assert!(expect.iter().all(|id| !first.contains(id)), "{expect:?}");

    let report = store.maintain().unwrap();
    let rewritten: BTreeSet<u64> = report
        .merged
        .iter()
        .flat_map(|(g, _)| g.iter().copied())
        .chain(report.erased.iter().copied())
        .collect();
    assert_eq!(rewritten, expect, "{report:?}");
    let after: BTreeSet<u64> = store.sealed_segments().iter().map(|s| s.id).collect();
    for id in &before {
        assert_eq!(after.contains(id), !expect.contains(id), "segment {id}");
    }
    assert!(first.is_subset(&after));
    assert!(store.erased_traces().unwrap().is_empty());
    let want = without(&spans, &victims);
    check_reads(
        &store,
        &want,
        &victims,
        &queries(&spans, &victims)[..5],
        "maintained",
    );
    store.close().unwrap();
    assert_physically_gone(dir.path(), &victims);
    assert_verifies(dir.path());
}

#[test]
fn a_segment_of_nothing_but_erased_spans_is_deleted_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.append(vec![span(1, 1, 10), span(2, 1, 20)]).unwrap();
    store.seal_active().unwrap();
    store.append(vec![span(3, 1, 30), span(3, 2, 40)]).unwrap();
    store.seal_active().unwrap();
    let ids: Vec<u64> = store.sealed_segments().iter().map(|s| s.id).collect();
    store.delete_traces(&[TraceId([3; 16])]).unwrap();
    let report = store.maintain().unwrap();
    assert_eq!(report.erased, vec![ids[1]], "{report:?}");
    assert!(report.merged.is_empty(), "{report:?}");
    assert_eq!((report.spans_erased, report.erasures_completed), (2, 1));
    let left: Vec<u64> = store.sealed_segments().iter().map(|s| s.id).collect();
    assert_eq!(left, vec![ids[0]]);
    assert!(!dir.path().join(segment_name(ids[1])).exists());
    assert_eq!(store.scan(0..u64::MAX).unwrap().count(), 2);
    store.close().unwrap();
    assert_physically_gone(dir.path(), &[TraceId([3; 16])]);
    assert_verifies(dir.path());
}

fn segment_name(id: u64) -> String {
    spanlog::segment::sealed_name(id)
}

fn span(t: u8, i: u8, start: u64) -> Span {
    Span {
        trace_id: TraceId([t; 16]),
        span_id: SpanId([i; 8]),
        name: format!("op{i}"),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 100,
        attributes: vec![KeyValue::new("i", AnyValue::Int(i64::from(i)))],
        ..Span::default()
    }
}

#[test]
fn spans_appended_after_a_deletion_are_new_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let t = TraceId([9; 16]);
    let other: Vec<Span> = (1..=3).map(|i| span(4, i, 1000 + u64::from(i))).collect();
    store.append(other.clone()).unwrap();
    store.append(vec![span(9, 1, 1000)]).unwrap();
    store.seal_active().unwrap();
    store.append(vec![span(9, 2, 1001)]).unwrap();
    store.flush().unwrap();
    store.append(vec![span(9, 3, 1002)]).unwrap();
    store.delete_traces(&[t]).unwrap();
    assert!(store.get_trace(t).unwrap().is_empty());

    // Later spans of the same trace, one of them reusing an erased span id.
    let later = vec![span(9, 3, 2000), span(9, 4, 2001)];
    store.append(later.clone()).unwrap();
    let q = TraceQuery {
        limit: 10,
        ..TraceQuery::default()
    };
    let check = |store: &Store, what: &str| {
        assert_eq!(store.get_trace(t).unwrap(), later, "{what}");
        assert_eq!(store.get_trace(TraceId([4; 16])).unwrap(), other, "{what}");
        let found = store.find_traces(&q).unwrap();
        let sum = found.iter().find(|s| s.trace_id == t).expect(what);
        assert_eq!(
            (sum.span_count, sum.start_time_unix_nano),
            (2, 2000),
            "{what}"
        );
        let scanned = store.scan(0..u64::MAX).unwrap().count();
        assert_eq!(scanned, 5, "{what}");
    };
    check(&store, "in memory");
    store.flush().unwrap();
    check(&store, "logged");
    store.seal_active().unwrap();
    check(&store, "sealed");
    drop(store);
    let store = Store::open(dir.path(), opts()).unwrap();
    check(&store, "reopened");
    store.compact().unwrap();
    check(&store, "compacted");
    // The later spans are not covered by the tombstone: it is done.
    assert!(store.erased_traces().unwrap().is_empty());
    // Erased again, with the later spans.
    store.delete_traces(&[t, t]).unwrap();
    assert!(store.get_trace(t).unwrap().is_empty());
    store.compact().unwrap();
    assert!(store.get_trace(t).unwrap().is_empty());
    assert_eq!(store.get_trace(TraceId([4; 16])).unwrap(), other);
    store.close().unwrap();
    assert_physically_gone(dir.path(), &[t]);

    let store = Store::open(dir.path(), opts()).unwrap();
    assert!(matches!(
        store.delete_traces(&[TraceId([0; 16])]),
        Err(Error::InvalidInput(_))
    ));
    store.delete_traces(&[]).unwrap();
    // An unknown trace: a tombstone that the next round drops.
    store.delete_traces(&[TraceId([77; 16])]).unwrap();
    assert_eq!(store.maintain().unwrap().erasures_completed, 1);
    assert!(!dir.path().join(TOMBSTONE_FILE).exists());
}

/// Copies the store files of `from` to `to`, as a crash would leave them
/// (everything the writer made durable is in the copy).
fn crash_image(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap();
        if name != "LOCK" {
            std::fs::copy(&path, to.join(name)).unwrap();
        }
    }
}

#[test]
fn recovery_after_a_crash_leaves_erased_spans_out_of_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let (spans, victims) = populate(&store);
    store.flush().unwrap();
    let logged = spans[..MEMORY.end].to_vec();
    // A crash right after the deletion's record was fsynced, before the
    // sealer wrote the table it froze: the log still holds the victims.
    crash_image(dir.path(), image.path());
    store.delete_traces(&victims).unwrap();
    std::fs::copy(
        dir.path().join(TOMBSTONE_FILE),
        image.path().join(TOMBSTONE_FILE),
    )
    .unwrap();
    drop(store);

    let want = without(&logged, &victims);
    let qs = queries(&spans, &victims);
    let ro = Store::open(image.path(), Options::read_only()).unwrap();
    assert!(ro.stats().unwrap().active_segments > 0);
    check_reads(&ro, &want, &victims, &qs, "read-only after the crash");
    drop(ro);
    // A torn record after the last one (a later deletion that never
    // returned) is ignored, then cut off.
    let tombs = image.path().join(TOMBSTONE_FILE);
    let mut bytes = std::fs::read(&tombs).unwrap();
    let whole = bytes.len();
    bytes.extend_from_within(TOMBSTONE_HEADER_LEN..TOMBSTONE_HEADER_LEN + 20);
    std::fs::write(&tombs, &bytes).unwrap();
    let r = verify_path(image.path()).unwrap();
    assert!(
        r.is_clean()
            && r.problems
                .iter()
                .any(|p| p.path == tombs && p.offset == whole as u64),
        "{:?}",
        r.problems
    );

    let store = Store::open(image.path(), opts()).unwrap();
    assert_eq!(std::fs::read(&tombs).unwrap().len(), whole);
    assert_eq!(store.stats().unwrap().active_segments, 1, "logs recovered");
    check_reads(&store, &want, &victims, &qs, "recovered");
    // The segment recovery wrote from the log holds no victim.
    let newest = store.sealed_segments().last().unwrap().clone();
    assert!(victims.iter().all(|v| newest.trace_ordinal(v).is_none()));
    store.compact().unwrap();
    store.close().unwrap();
    assert_physically_gone(image.path(), &victims);
    assert_verifies(image.path());

    // A damaged record before a valid one: every open refuses, naming the
    // file and the offset, and verify reports it.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    store.delete_traces(&[TraceId([1; 16])]).unwrap();
    store.delete_traces(&[TraceId([2; 16])]).unwrap();
    drop(store);
    let tombs = dir.path().join(TOMBSTONE_FILE);
    let mut bytes = std::fs::read(&tombs).unwrap();
    bytes[TOMBSTONE_HEADER_LEN + 30] ^= 0x01;
    std::fs::write(&tombs, &bytes).unwrap();
    for o in [opts(), Options::read_only()] {
        match Store::open(dir.path(), o) {
            Err(Error::Corruption { path, offset, .. }) => {
                assert_eq!((path, offset), (tombs.clone(), TOMBSTONE_HEADER_LEN as u64))
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a store with a damaged tombstone file"),
        }
    }
    let r = verify_path(dir.path()).unwrap();
    assert!(!r.is_clean());
    assert!(r
        .problems
        .iter()
        .any(|p| p.path == tombs && p.offset == TOMBSTONE_HEADER_LEN as u64));
}

// ---------------------------------------------------------------- CLI

fn spanlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .args(args)
        .output()
        .expect("run the spanlog binary")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn the_delete_command_erases_and_purges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let store = Store::open(dir.path(), opts()).unwrap();
    let spans = generate(5, 2000);
    for part in spans.chunks(500) {
        put(&store, part);
        store.seal_active().unwrap();
    }
    store.close().unwrap();
    let victim = spans[700].trace_id;
    let n = spans.iter().filter(|s| s.trace_id == victim).count();
    let hex = victim.to_string();

    // Ids are checked before anything is opened.
    let o = spanlog(&["delete", path, &hex, "xyz"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("invalid trace id \"xyz\""),
        "{}",
        text(&o.stderr)
    );
    let o = spanlog(&["delete", path, &"0".repeat(32)]);
    assert_eq!(o.status.code(), Some(2));
    let o = spanlog(&["delete", path]);
    assert_eq!(o.status.code(), Some(2));
    assert!(!dir.path().join(TOMBSTONE_FILE).exists());

    let unknown = "0123456789abcdef0123456789ABCDEF";
    let o = spanlog(&["delete", path, &hex, unknown]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains(&format!("erased {hex}  ({n} spans)")), "{out}");
    assert!(
        out.contains("erased 0123456789abcdef0123456789abcdef  (no span stored)"),
        "{out}"
    );
    assert!(out.contains("next compaction"), "{out}");
    assert_eq!(spanlog(&["get", path, &hex]).status.code(), Some(1));
    let o = spanlog(&["verify", path]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("2 traces erased, awaiting compaction"),
        "{}",
        text(&o.stdout)
    );
    let o = spanlog(&["inspect", path]);
    assert!(
        text(&o.stdout).contains("hidden from reads"),
        "{}",
        text(&o.stdout)
    );

    let o = spanlog(&["delete", path, &hex, "--purge", "--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["erased"][0]["spans"], 0, "{doc}");
    assert_eq!(doc["spans_removed"], n as u64, "{doc}");
    assert_eq!(doc["traces_awaiting_compaction"], 0, "{doc}");
    assert_physically_gone(dir.path(), &[victim, TraceId::from_hex(unknown).unwrap()]);
    assert_verifies(dir.path());
    let store = Store::open(dir.path(), Options::read_only()).unwrap();
    check_reads(
        &store,
        &without(&spans, &[victim]),
        &[victim],
        &[],
        "after the command",
    );
}
