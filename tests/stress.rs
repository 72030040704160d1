//! A stress test of the whole engine at once: writer threads appending and
//! flushing, reader threads looking traces up, scanning, searching and
//! now and then opening the store read-only beside the writer, a thread
//! asking for full compactions, policy merges, retention and seals, and
//! the background maintenance thread, all on one store with tiny
//! segments, for a bounded time (`SPANLOG_STRESS_SECS`, 3 seconds by
//! default; every writer also writes at least `MIN_BATCHES` batches).
//! A second test closes the store while another thread compacts it.
//!
//! The workload is built so that what may and what must be there is known
//! at any moment:
//!
//! * A batch is one trace, appended by one `append` call, so all its spans
//!   land in one table and then one segment; its spans are a function of
//!   (writer, batch number, global sequence number), all three encoded in
//!   its trace id, so a reader can tell what a span it meets must look
//!   like.
//! * Batches alternate between runs of `PHASE` recent ones (ending a day
//!   ago) and `PHASE` old ones (thirty days ago), by global sequence, so
//!   some tables hold old spans only and retention by age
//!   (`retention_max_age` of a week) drops their segments; others mix both
//!   and are kept. Recent spans are never retention's to drop.
//! * Some batches are appended a second time, a few batches later (a
//!   retried delivery), as exact copies. A merge that meets both copies
//!   writes them once; otherwise both stay. Some batches hold two spans
//!   that share trace, start and span id but differ in an attribute; both
//!   are always kept.
//!
//! Since segments are dropped and merged whole, and a batch is one append,
//! every read must show each batch as `c` whole copies: every one of its
//! spans exactly `c` times, field for field as written, with
//! `1 <= c <= appends` for a recent batch once its append returned and
//! `0 <= c <= appends` for an old one. Readers check that on every
//! `get_trace`, scan and search (and that no read fails); searches must
//! also find every recent matching batch appended before they started,
//! and with a limit, keep the most recent. At the end the store is checked
//! whole (every acknowledged recent batch present, a batch written once
//! present exactly once, retention done, reads agreeing with each other and
//! with the reference search), reopened and checked again with the same
//! counts, fully compacted and checked again, and verified by
//! `verify_path` and by `spanlog verify`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use spanlog::gen::Rng;
use spanlog::query::{find_in_spans, recent_first};
use spanlog::{
    AnyValue, AttrFilter, KeyValue, MatchMode, Operation, Options, Resource, Scope, Span, SpanId,
    SpanKind, Status, StatusCode, Store, TraceId, TraceQuery, TraceSummary,
};

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * SECOND;
const DAY: u64 = 24 * HOUR;
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

const WRITERS: u8 = 3;
const READERS: u64 = 3;
/// Batches each writer writes at least, whatever the time: enough global
/// sequence numbers for a whole run of old batches (and so for segments
/// that hold only old spans).
const MIN_BATCHES: u32 = 60;
/// Batches in a row of one age, by global sequence number.
const PHASE: u32 = 40;
/// Batch `seq` starts at `base + seq * STEP`; its spans lie within
/// `STEP / 2` of that.
const STEP: u64 = 1_000_000;
/// Kinds of batch (`batch.kind`), for searches by attribute.
const KINDS: u32 = 3;

fn duration() -> Duration {
    let secs = std::env::var("SPANLOG_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn options() -> Options {
    Options {
        segment_max_bytes: 24 << 10,
        block_target_bytes: 2 << 10,
        wal_block_bytes: 4 << 10,
        // A window per 250 batches: many windows, many segments in each.
        compaction_window: Duration::from_millis(250),
        compaction_fan_in: 2,
        retention_max_age: Some(MAX_AGE),
        maintenance_interval: Some(Duration::from_millis(25)),
        ..Options::default()
    }
}

// ---------------------------------------------------------------- batches

fn is_old(seq: u32) -> bool {
    (seq / PHASE) % 2 == 1
}

/// Where batches of one age start: old ones thirty days back, recent ones
/// a day back, from the day's start (fixed for the process, so the
/// compaction windows fall alike on every run).
fn base(old: bool) -> u64 {
    static MIDNIGHT: OnceLock<u64> = OnceLock::new();
    let midnight = *MIDNIGHT.get_or_init(|| now_nanos() / DAY * DAY);
    midnight - if old { 30 * DAY } else { DAY }
}

fn t0(seq: u32) -> u64 {
    base(is_old(seq)) + u64::from(seq) * STEP
}

/// Batches appended a second time, three batches later.
fn retried(b: u32) -> bool {
    b % 5 == 2
}

/// Most copies of batch `b` ever appended.
fn max_copies(b: u32) -> usize {
    if retried(b) {
        2
    } else {
        1
    }
}

fn trace_of(w: u8, b: u32, seq: u32) -> TraceId {
    let mut id = [0u8; 16];
    // A scrambled first byte spreads the traces over the id order.
    id[0] = (seq.wrapping_mul(0x9e37_79b9) >> 24) as u8;
    id[1] = 0x5a;
    id[2] = w;
    id[3..7].copy_from_slice(&b.to_be_bytes());
    id[7..11].copy_from_slice(&seq.to_be_bytes());
    id[15] = 1;
    TraceId(id)
}

/// (writer, batch, sequence number) of a trace id this test wrote.
fn decode(t: TraceId) -> Option<(u8, u32, u32)> {
    let id = t.0;
    if id[1] != 0x5a || id[2] >= WRITERS || id[11..15] != [0; 4] || id[15] != 1 {
        return None;
    }
    let b = u32::from_be_bytes(id[3..7].try_into().unwrap());
    let seq = u32::from_be_bytes(id[7..11].try_into().unwrap());
    (trace_of(id[2], b, seq) == t).then_some((id[2], b, seq))
}

fn service(w: u8) -> String {
    format!("svc-{w}")
}

fn span_id(i: u32) -> SpanId {
    let mut id = [0u8; 8];
    id[4..].copy_from_slice(&(i + 1).to_be_bytes());
    SpanId(id)
}

/// The spans of batch `b` of writer `w`, sequence number `seq`: a root and
/// its children, all distinct; every ninth batch also holds a span that
/// shares trace, start and span id with its second span.
fn batch(w: u8, b: u32, seq: u32) -> Vec<Span> {
    let trace = trace_of(w, b, seq);
    let start = t0(seq);
    let n = 4 + (seq * 7 + u32::from(w)) % 13;
    let resource = Arc::new(Resource {
        attributes: vec![
            KeyValue::new("service.name", AnyValue::String(service(w))),
            KeyValue::new("host.name", AnyValue::String(format!("host-{}", b % 4))),
        ],
        ..Resource::default()
    });
    let scope = Arc::new(Scope {
        name: "stress".into(),
        version: "1".into(),
        ..Scope::default()
    });
    let mut spans: Vec<Span> = (0..n)
        .map(|i| {
            let s = start + u64::from(i) * 10_000 + u64::from(i * 7 % 3);
            Span {
                trace_id: trace,
                span_id: span_id(i),
                parent_span_id: (i > 0).then(|| span_id(0)),
                name: format!("op-{}", i % 5),
                kind: if i == 0 {
                    SpanKind::Server
                } else {
                    SpanKind::Internal
                },
                start_time_unix_nano: s,
                end_time_unix_nano: s + 5_000 + u64::from(i) * 100,
                attributes: vec![
                    KeyValue::new("batch.kind", AnyValue::Int(i64::from(b % KINDS))),
                    KeyValue::new("seq", AnyValue::Int(i64::from(seq))),
                    KeyValue::new("ratio", AnyValue::Double(f64::from(i) / 7.0)),
                    KeyValue::new(
                        "payload",
                        AnyValue::String("x".repeat((i as usize * 37) % 120)),
                    ),
                ],
                status: if i == 2 && b.is_multiple_of(4) {
                    Status {
                        code: StatusCode::Error,
                        message: "failed".into(),
                    }
                } else {
                    Status::default()
                },
                resource: resource.clone(),
                scope: scope.clone(),
                ..Span::default()
            }
        })
        .collect();
    if b % 9 == 4 {
        let mut v = spans[1].clone();
        v.attributes
            .push(KeyValue::new("variant", AnyValue::Bool(true)));
        spans.push(v);
    }
    spans
}

fn batch_of(t: TraceId) -> Option<(u8, u32, u32, Vec<Span>)> {
    let (w, b, seq) = decode(t)?;
    Some((w, b, seq, batch(w, b, seq)))
}

/// How many whole copies of its batch `spans` (all of one trace) hold:
/// every span of the batch must be there that many times, and nothing
/// else. `Err` says what is wrong.
fn copies(t: TraceId, spans: &[&Span]) -> Result<usize, String> {
    let (_, b, seq, want) = batch_of(t).ok_or_else(|| format!("unknown trace {t}"))?;
    let mut counts = vec![0usize; want.len()];
    for s in spans {
        let i = want
            .iter()
            .position(|w| w == *s)
            .ok_or_else(|| format!("trace {t}: span {s:?} was never written"))?;
        counts[i] += 1;
    }
    let c = counts[0];
    if counts.iter().any(|n| *n != c) {
        return Err(format!(
            "trace {t} (batch {b}, seq {seq}): not whole copies, counts {counts:?}"
        ));
    }
    if c > max_copies(b) {
        return Err(format!(
            "trace {t}: {c} copies, at most {} appended",
            max_copies(b)
        ));
    }
    Ok(c)
}

// ----------------------------------------------------------------- shared

/// What the threads share: which batch each sequence number is (filled in
/// once its first append returned), and when to stop.
struct Shared {
    registry: Mutex<Vec<Option<(u8, u32)>>>,
    /// Sequence numbers of the batches a flush acknowledged.
    acked: Mutex<BTreeSet<u32>>,
    next_seq: AtomicU64,
    stop: AtomicBool,
    reads: AtomicU64,
}

impl Shared {
    fn register(&self, seq: u32, w: u8, b: u32) {
        let mut r = self.registry.lock().unwrap();
        let i = seq as usize;
        if r.len() <= i {
            r.resize(i + 1, None);
        }
        r[i] = Some((w, b));
    }

    fn registered(&self) -> usize {
        self.registry.lock().unwrap().len()
    }

    /// The batches appended among sequence numbers `range`.
    fn appended(&self, range: std::ops::Range<u32>) -> Vec<(u8, u32, u32)> {
        let r = self.registry.lock().unwrap();
        range
            .filter_map(|seq| {
                r.get(seq as usize)
                    .copied()
                    .flatten()
                    .map(|(w, b)| (w, b, seq))
            })
            .collect()
    }
}

/// One batch as its writer saw it.
#[derive(Clone, Debug)]
struct Written {
    w: u8,
    b: u32,
    seq: u32,
    appended: usize,
    acknowledged: usize,
}

// ---------------------------------------------------------------- writers

fn writer(store: &Store, shared: &Shared, w: u8, until: Instant) -> Vec<Written> {
    let mut out: Vec<Written> = Vec::new();
    // Batches appended (by index in `out`) since the last flush.
    let mut pending: Vec<usize> = Vec::new();
    let mut b = 0u32;
    while Instant::now() < until || b < MIN_BATCHES {
        let seq = shared.next_seq.fetch_add(1, Ordering::Relaxed) as u32;
        store.append(batch(w, b, seq)).unwrap();
        shared.register(seq, w, b);
        out.push(Written {
            w,
            b,
            seq,
            appended: 1,
            acknowledged: 0,
        });
        pending.push(out.len() - 1);
        if b >= 3 && retried(b - 3) {
            let again = &mut out[(b - 3) as usize];
            store.append(batch(w, again.b, again.seq)).unwrap();
            again.appended += 1;
            pending.push((b - 3) as usize);
        }
        if b % 3 == 2 {
            store.flush().unwrap();
            acknowledge(shared, &mut out, &mut pending);
        }
        b += 1;
    }
    store.flush().unwrap();
    acknowledge(shared, &mut out, &mut pending);
    out
}

/// Records what a flush that just returned made durable.
fn acknowledge(shared: &Shared, out: &mut [Written], pending: &mut Vec<usize>) {
    let mut acked = shared.acked.lock().unwrap();
    for i in pending.drain(..) {
        out[i].acknowledged = out[i].appended;
        acked.insert(out[i].seq);
    }
}

// ---------------------------------------------------------------- readers

/// A range of sequence numbers among those handed out so far.
fn seq_range(rng: &mut Rng, shared: &Shared, width: u64) -> std::ops::Range<u32> {
    let n = shared.registered() as u64;
    let lo = rng.below(n.max(1));
    let hi = (lo + 1 + rng.below(width)).min(n.max(1));
    lo as u32..hi as u32
}

/// The start window of the batches of sequence numbers `seqs` that are of
/// one age (those of the other age start thirty days away).
fn window(seqs: &std::ops::Range<u32>, old: bool) -> std::ops::Range<u64> {
    let at = |seq: u32| base(old) + u64::from(seq) * STEP;
    at(seqs.start)..at(seqs.end)
}

fn read_trace(store: &Store, shared: &Shared, rng: &mut Rng) {
    let n = shared.registered() as u64;
    if n == 0 {
        return;
    }
    let seq = rng.below(n) as u32;
    let Some(&(w, b, seq)) = shared.appended(seq..seq + 1).first() else {
        return;
    };
    let t = trace_of(w, b, seq);
    let spans = if rng.chance(0.2) {
        let mut both = store.get_traces(&[t, TraceId([0xee; 16])]).unwrap();
        assert!(both[1].is_empty(), "an unknown trace has spans");
        both.swap_remove(0)
    } else {
        store.get_trace(t).unwrap()
    };
    assert!(
        spans
            .windows(2)
            .all(|p| (p[0].start_time_unix_nano, p[0].span_id)
                <= (p[1].start_time_unix_nano, p[1].span_id)),
        "trace {t} not ordered by start"
    );
    let refs: Vec<&Span> = spans.iter().collect();
    let c = copies(t, &refs).unwrap_or_else(|e| panic!("get_trace: {e}"));
    assert!(
        c >= 1 || is_old(seq),
        "recent trace {t} (writer {w}, batch {b}) vanished after its append"
    );
}

fn read_scan(store: &Store, shared: &Shared, rng: &mut Rng) {
    let seqs = seq_range(rng, shared, 60);
    let old = rng.chance(0.5);
    let range = window(&seqs, old);
    let before = shared.appended(seqs.clone());
    let mut by_trace: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
    for s in store.scan(range.clone()).unwrap() {
        let s = s.unwrap();
        assert!(
            range.contains(&s.start_time_unix_nano),
            "scan {range:?} yielded a span starting at {}",
            s.start_time_unix_nano
        );
        by_trace.entry(s.trace_id).or_default().push(s);
    }
    for (t, spans) in &by_trace {
        let refs: Vec<&Span> = spans.iter().collect();
        copies(*t, &refs).unwrap_or_else(|e| panic!("scan {range:?}: {e}"));
        let (_, _, seq) = decode(*t).unwrap();
        assert_eq!(
            is_old(seq),
            old,
            "scan {range:?}: trace {t} of the other age"
        );
    }
    for (w, b, seq) in before {
        if !is_old(seq) && !old {
            let t = trace_of(w, b, seq);
            assert!(
                by_trace.contains_key(&t),
                "scan {range:?} missed recent trace {t}, appended before it started"
            );
        }
    }
}

/// Checks a summary against the batch it names; returns its trace.
fn check_summary(s: &TraceSummary, q: &TraceQuery) -> (u8, u32, u32) {
    let (w, b, seq, want) = batch_of(s.trace_id).unwrap_or_else(|| panic!("unknown trace {s:?}"));
    let n = want.len() as u64;
    assert!(
        s.span_count >= n
            && s.span_count.is_multiple_of(n)
            && s.span_count / n <= max_copies(b) as u64,
        "{s:?}: not whole copies of its {n} spans"
    );
    assert_eq!(s.start_time_unix_nano, t0(seq), "{s:?}");
    let end = want.iter().map(|s| s.end_time_unix_nano).max().unwrap();
    assert_eq!(s.end_time_unix_nano, end, "{s:?}");
    assert_eq!(
        (s.root_service.as_str(), s.root_name.as_str(), s.has_root),
        (service(w).as_str(), "op-0", true),
        "{s:?}"
    );
    assert_eq!(s.services, vec![service(w)], "{s:?}");
    assert_eq!(s.has_error, b.is_multiple_of(4), "{s:?}");
    assert!(
        find_in_spans(&want, q).unwrap().len() == 1,
        "{s:?} does not match {q:?}"
    );
    (w, b, seq)
}

fn read_find(store: &Store, shared: &Shared, rng: &mut Rng) {
    let seqs = seq_range(rng, shared, 300);
    let old = rng.chance(0.3);
    let w = rng.below(u64::from(WRITERS)) as u8;
    let kind = rng.below(u64::from(KINDS)) as u32;
    let limit = if rng.chance(0.5) {
        100_000
    } else {
        1 + rng.below(5) as usize
    };
    let q = TraceQuery {
        service: Some(service(w)),
        attributes: vec![AttrFilter::Equals("batch.kind".into(), kind.to_string())],
        start: Some(window(&seqs, old)),
        limit,
        mode: if rng.chance(0.3) {
            MatchMode::Trace
        } else {
            MatchMode::Span
        },
        ..TraceQuery::default()
    };
    let before = shared.appended(seqs);
    let got = store.find_traces(&q).unwrap();
    assert!(got.len() <= limit);
    assert!(
        got.windows(2)
            .all(|p| recent_first(&p[0], &p[1]) == std::cmp::Ordering::Less),
        "{q:?}: not most recent first: {got:?}"
    );
    let mut found = BTreeSet::new();
    for s in &got {
        check_summary(s, &q);
        found.insert(s.trace_id);
    }
    // Every recent batch that matches and was appended before the search
    // is found, or the limit kept more recent ones.
    for (bw, b, seq) in before {
        if is_old(seq) || old || bw != w || b % KINDS != kind {
            continue;
        }
        let t = trace_of(bw, b, seq);
        if found.contains(&t) {
            continue;
        }
        let later = got.len() == limit
            && got.last().is_some_and(|l| {
                recent_first(l, &summary_like(t, seq)) == std::cmp::Ordering::Less
            });
        assert!(
            later,
            "{q:?} missed trace {t} (batch {b}, seq {seq}), appended before it: {got:?}"
        );
    }
}

/// Enough of a summary of `t` to place it in the result order.
fn summary_like(t: TraceId, seq: u32) -> TraceSummary {
    TraceSummary {
        trace_id: t,
        root_service: String::new(),
        root_name: String::new(),
        has_root: true,
        start_time_unix_nano: t0(seq),
        end_time_unix_nano: t0(seq),
        span_count: 0,
        services: Vec::new(),
        has_error: false,
    }
}

fn read_catalog(store: &Store, shared: &Shared) {
    let recent: BTreeSet<u8> = {
        let n = shared.registered() as u32;
        shared
            .appended(0..n)
            .into_iter()
            .filter(|(_, _, seq)| !is_old(*seq))
            .map(|(w, _, _)| w)
            .collect()
    };
    let services = store.services().unwrap();
    let all: BTreeSet<String> = (0..WRITERS).map(service).collect();
    for s in &services {
        assert!(all.contains(s), "unknown service {s} in {services:?}");
    }
    for w in recent {
        assert!(
            services.contains(&service(w)),
            "{} missing from {services:?}",
            service(w)
        );
        let ops = store.operations(&service(w), None).unwrap();
        // Every recent batch has spans op-0 (server) .. op-3 (internal).
        for name in ["op-1", "op-2", "op-3"] {
            assert!(
                ops.iter()
                    .any(|o| o.name == name && o.kind == SpanKind::Internal),
                "{name} missing from {ops:?}"
            );
        }
        assert!(ops.contains(&Operation {
            service: service(w),
            name: "op-0".into(),
            kind: SpanKind::Server
        }));
        assert!(ops.len() <= 6, "{ops:?}");
    }
}

/// A read-only open beside the writer: a snapshot holding every batch a
/// flush acknowledged before it (the recent ones at least), each as whole
/// copies, and reading the same however it is asked.
fn read_only_open(store: &Store, shared: &Shared) {
    let acked: Vec<u32> = shared.acked.lock().unwrap().iter().copied().collect();
    let ro = Store::open(store.path(), Options::read_only())
        .unwrap_or_else(|e| panic!("read-only open beside the writer: {e}"));
    let all = scan_all(&ro);
    let mut by_trace: BTreeMap<TraceId, Vec<&Span>> = BTreeMap::new();
    for s in &all {
        by_trace.entry(s.trace_id).or_default().push(s);
    }
    let mut counts = BTreeMap::new();
    for (t, spans) in &by_trace {
        let c = copies(*t, spans).unwrap_or_else(|e| panic!("read-only scan: {e}"));
        counts.insert(*t, c);
    }
    let batches = shared.appended(0..shared.registered() as u32);
    let by_seq: BTreeMap<u32, (u8, u32)> = batches.iter().map(|(w, b, q)| (*q, (*w, *b))).collect();
    for seq in acked.iter().filter(|q| !is_old(**q)) {
        let (w, b) = by_seq[seq];
        let t = trace_of(w, b, *seq);
        assert!(
            counts.contains_key(&t),
            "read-only open lacks acknowledged trace {t} (writer {w}, batch {b})"
        );
    }
    // A snapshot: lookups agree with the scan, searches with the reference.
    for (t, c) in counts.iter().step_by(17) {
        let got = ro.get_trace(*t).unwrap();
        let refs: Vec<&Span> = got.iter().collect();
        assert_eq!(copies(*t, &refs), Ok(*c), "read-only get_trace {t}");
    }
    for w in 0..WRITERS {
        let q = TraceQuery {
            attributes: vec![AttrFilter::Typed("batch.kind".into(), AnyValue::Int(2))],
            limit: 30,
            ..TraceQuery::service(service(w))
        };
        assert_eq!(
            ro.find_traces(&q).unwrap(),
            find_in_spans(&all, &q).unwrap(),
            "read-only open: {q:?}"
        );
    }
    ro.close().unwrap();
}

fn reader(store: &Store, shared: &Shared, seed: u64) {
    let mut rng = Rng::new(seed);
    while !shared.stop.load(Ordering::Acquire) {
        match rng.below(100) {
            0..=39 => read_trace(store, shared, &mut rng),
            40..=59 => read_scan(store, shared, &mut rng),
            60..=87 => read_find(store, shared, &mut rng),
            88..=97 => read_catalog(store, shared),
            _ => read_only_open(store, shared),
        }
        shared.reads.fetch_add(1, Ordering::Relaxed);
    }
}

// ------------------------------------------------------------ maintenance

#[derive(Debug, Default)]
struct Rounds {
    compactions: u64,
    policy: u64,
    retentions: u64,
    seals: u64,
    merged: u64,
    dropped: u64,
}

fn maintainer(store: &Store, shared: &Shared) -> Rounds {
    let mut r = Rounds::default();
    let mut i = 0u64;
    while !shared.stop.load(Ordering::Acquire) {
        let rep = match i % 6 {
            0 => {
                r.compactions += 1;
                store.compact().unwrap()
            }
            3 => {
                r.seals += 1;
                store.seal_active().unwrap();
                store.apply_retention().unwrap()
            }
            1 | 4 => {
                r.retentions += 1;
                store.apply_retention().unwrap()
            }
            _ => {
                r.policy += 1;
                store.maintain().unwrap()
            }
        };
        r.merged += rep.merged.len() as u64;
        r.dropped += rep.dropped.len() as u64;
        i += 1;
        // Pacing only: the writers share the machine's cores with this.
        std::thread::sleep(Duration::from_millis(5));
    }
    r
}

// ------------------------------------------------------------ final check

fn scan_all(store: &Store) -> Vec<Span> {
    store
        .scan(0..u64::MAX)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

/// Checks the quiescent store against what the writers acknowledged and
/// returns how many copies of each batch it holds.
fn check_store(store: &Store, written: &[Written], what: &str) -> BTreeMap<TraceId, usize> {
    let all = scan_all(store);
    let mut by_trace: BTreeMap<TraceId, Vec<&Span>> = BTreeMap::new();
    for s in &all {
        by_trace.entry(s.trace_id).or_default().push(s);
    }
    let mut counts = BTreeMap::new();
    for (t, spans) in &by_trace {
        let c = copies(*t, spans).unwrap_or_else(|e| panic!("{what}: scan: {e}"));
        counts.insert(*t, c);
    }
    let known: BTreeSet<TraceId> = written.iter().map(|x| trace_of(x.w, x.b, x.seq)).collect();
    for t in counts.keys() {
        assert!(known.contains(t), "{what}: trace {t} nobody wrote");
    }
    for x in written {
        let t = trace_of(x.w, x.b, x.seq);
        let c = counts.get(&t).copied().unwrap_or(0);
        let got = store.get_trace(t).unwrap();
        let refs: Vec<&Span> = got.iter().collect();
        let by_lookup = copies(t, &refs).unwrap_or_else(|e| panic!("{what}: get_trace: {e}"));
        assert_eq!(by_lookup, c, "{what}: {t}: lookup and scan disagree");
        assert!(c <= x.appended, "{what}: {x:?}: {c} copies");
        if !is_old(x.seq) {
            assert!(x.acknowledged >= 1, "{x:?}");
            assert!(c >= 1, "{what}: acknowledged recent batch {x:?} lost");
            if x.appended == 1 {
                assert_eq!(c, 1, "{what}: {x:?}");
            }
        }
    }
    // Searches answer as the reference does over what the scan returned.
    let mut queries = vec![
        TraceQuery {
            errors_only: true,
            limit: 50,
            ..TraceQuery::default()
        },
        TraceQuery {
            attributes: vec![AttrFilter::Exists("variant".into())],
            limit: 100_000,
            ..TraceQuery::default()
        },
    ];
    for w in 0..WRITERS {
        queries.push(TraceQuery {
            limit: 100_000,
            ..TraceQuery::service(service(w))
        });
        queries.push(TraceQuery {
            attributes: vec![AttrFilter::Typed("batch.kind".into(), AnyValue::Int(1))],
            limit: 25,
            ..TraceQuery::service(service(w))
        });
        queries.push(TraceQuery {
            operation: Some("op-3".into()),
            attributes: vec![AttrFilter::Equals("host.name".into(), "host-2".into())],
            mode: MatchMode::Trace,
            limit: 100_000,
            ..TraceQuery::service(service(w))
        });
    }
    for q in &queries {
        assert_eq!(
            store.find_traces(q).unwrap(),
            find_in_spans(&all, q).unwrap(),
            "{what}: {q:?}"
        );
    }
    let services: BTreeSet<String> = all
        .iter()
        .map(|s| s.service_name().unwrap().to_string())
        .collect();
    assert_eq!(
        store.services().unwrap(),
        services.iter().cloned().collect::<Vec<_>>(),
        "{what}"
    );
    for s in &services {
        let ops: BTreeSet<(String, SpanKind)> = all
            .iter()
            .filter(|x| x.service_name() == Some(s))
            .map(|x| (x.name.clone(), x.kind))
            .collect();
        let got: Vec<(String, SpanKind)> = store
            .operations(s, None)
            .unwrap()
            .into_iter()
            .map(|o| (o.name, o.kind))
            .collect();
        assert_eq!(got, ops.into_iter().collect::<Vec<_>>(), "{what}: {s}");
    }
    assert_eq!(store.stats().unwrap().spans, all.len() as u64, "{what}");
    counts
}

/// No sealed segment is old enough for retention to drop.
fn retention_done(store: &Store, what: &str) {
    let cutoff = now_nanos() - MAX_AGE.as_nanos() as u64;
    for s in store.sealed_segments().iter() {
        assert!(
            s.trailer.max_end >= cutoff,
            "{what}: segment {} ended before the retention cutoff",
            s.id
        );
    }
}

fn verify(dir: &Path, spans: u64) {
    let report = spanlog::verify::verify_path(dir).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(report.spans, spans, "spans verified");
    let out = Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .arg("verify")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spanlog verify: {:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------- test

/// A thread's result, or its panic passed on.
fn pass<T>(r: std::thread::Result<T>) -> T {
    r.unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn writers_readers_compaction_and_retention_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    let shared = Shared {
        registry: Mutex::new(Vec::new()),
        acked: Mutex::new(BTreeSet::new()),
        next_seq: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        reads: AtomicU64::new(0),
    };
    let started = Instant::now();
    let until = started + duration();
    let seed = now_nanos();
    eprintln!("stress: reader seed {seed}");
    let (written, rounds) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (store, shared) = (&store, &shared);
                s.spawn(move || writer(store, shared, w, until))
            })
            .collect();
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (store, shared) = (&store, &shared);
                s.spawn(move || reader(store, shared, seed.wrapping_add(r)))
            })
            .collect();
        let maint = s.spawn(|| maintainer(&store, &shared));
        // Readers and the maintainer run until told to stop, also when a
        // writer failed; a thread's panic is passed on once all are done.
        let written: Vec<_> = writers.into_iter().map(|h| h.join()).collect();
        shared.stop.store(true, Ordering::Release);
        let read: Vec<_> = readers.into_iter().map(|h| h.join()).collect();
        let rounds = maint.join();
        read.into_iter().for_each(pass);
        let written: Vec<Written> = written.into_iter().flat_map(pass).collect();
        (written, pass(rounds))
    });
    let status = store.maintenance_status();
    eprintln!(
        "stress: {} batches ({} spans appended) in {:?}, {} reads, {rounds:?}, {status:?}",
        written.len(),
        written
            .iter()
            .map(|x| batch(x.w, x.b, x.seq).len() * x.appended)
            .sum::<usize>(),
        started.elapsed(),
        shared.reads.load(Ordering::Relaxed),
    );
    assert_eq!(status.last_error, None, "{status:?}");
    assert!(written.iter().all(|x| x.acknowledged == x.appended));

    // Whatever is left old and alone in a segment goes now.
    store.seal_active().unwrap();
    store.apply_retention().unwrap();
    let status = store.maintenance_status();
    assert_eq!(status.last_error, None, "{status:?}");
    assert!(
        status.segments_dropped > 0,
        "retention dropped nothing: {status:?}"
    );
    assert!(status.segments_merged > 0, "nothing was merged: {status:?}");
    store.close().unwrap();
    drop(store);

    // Checked without background maintenance, so nothing moves meanwhile.
    let opts = Options {
        maintenance_interval: None,
        ..options()
    };
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    retention_done(&store, "after the run");
    let counts = check_store(&store, &written, "after the run");
    let old_batches = written.iter().filter(|x| is_old(x.seq)).count();
    let old_left = counts
        .iter()
        .filter(|(t, c)| **c > 0 && is_old(decode(**t).unwrap().2))
        .count();
    eprintln!("stress: {old_left} of {old_batches} old batches left");
    assert!(old_left < old_batches, "no old batch expired");
    store.close().unwrap();
    drop(store);

    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let reopened = check_store(&store, &written, "reopened");
    assert_eq!(reopened, counts, "reopening changed what is stored");
    retention_done(&store, "reopened");

    let report = store.compact().unwrap();
    assert!(report.dropped.is_empty(), "{report:?}");
    let compacted = check_store(&store, &written, "fully compacted");
    for (t, c) in &compacted {
        assert!(*c <= counts[t], "{t}: compaction added copies");
    }
    let windows: Vec<u64> = store
        .sealed_segments()
        .iter()
        .map(|s| s.trailer.min_start / opts.compaction_window.as_nanos() as u64)
        .collect();
    let distinct: BTreeSet<&u64> = windows.iter().collect();
    assert_eq!(
        distinct.len(),
        windows.len(),
        "a window with two segments left"
    );
    let spans = store.stats().unwrap().spans;
    store.close().unwrap();
    drop(store);
    verify(dir.path(), spans);
    let store = Store::open(dir.path(), Options::read_only()).unwrap();
    assert_eq!(
        check_store(&store, &written, "read-only after compaction"),
        compacted
    );
}

// ----------------------------------------------------- close vs compaction

fn dir_listing(dir: &Path) -> BTreeMap<String, u64> {
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

fn merging(dir: &Path) -> bool {
    dir_listing(dir).keys().any(|n| n.ends_with(".seg.tmp"))
}

/// `close` on one thread while another runs a compaction: the merge gives
/// up, and `close` returns only once it has, so nothing in the directory
/// changes after `close` released the lock (no unfinished merge deleted,
/// no segment renamed or deleted later by the closed handle) and a writer
/// opened next is alone in it.
#[test]
fn close_waits_for_a_compaction_running_on_another_thread() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        segment_max_bytes: 64 << 10,
        block_target_bytes: 4 << 10,
        // A merge of these segments would take half a minute.
        compaction_rate_bytes_per_sec: Some(16 << 10),
        ..Options::default()
    };
    let store = Store::open(dir.path(), opts.clone()).unwrap();
    let spans = spanlog::gen::generate(7, 4_000);
    for chunk in spans.chunks(500) {
        store.append(chunk.to_vec()).unwrap();
        store.seal_active().unwrap();
    }
    std::thread::scope(|s| {
        let compaction = s.spawn(|| store.compact());
        // A liveness bound, generous for a loaded machine.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !merging(dir.path()) {
            assert!(Instant::now() < deadline, "no merge started");
            std::thread::sleep(Duration::from_millis(1));
        }
        store.close().unwrap();
        let closed = dir_listing(dir.path());
        assert!(
            !closed.keys().any(|n| n.ends_with(".tmp")),
            "close returned while a merge was still writing: {closed:?}"
        );
        let r = compaction.join().unwrap();
        assert!(matches!(r, Err(spanlog::Error::Closed)), "{r:?}");
        assert_eq!(
            dir_listing(dir.path()),
            closed,
            "the directory changed after close returned"
        );
    });
    let store = Store::open(
        dir.path(),
        Options {
            compaction_rate_bytes_per_sec: None,
            ..opts
        },
    )
    .unwrap();
    let mut want: BTreeMap<(TraceId, u64, SpanId), Vec<Span>> = BTreeMap::new();
    for s in &spans {
        want.entry((s.trace_id, s.start_time_unix_nano, s.span_id))
            .or_default()
            .push(s.clone());
    }
    let got = scan_all(&store);
    assert_eq!(got.len(), spans.len());
    for s in got {
        let group = want
            .get_mut(&(s.trace_id, s.start_time_unix_nano, s.span_id))
            .unwrap_or_else(|| panic!("unexpected span {s:?}"));
        let at = group
            .iter()
            .position(|w| *w == s)
            .unwrap_or_else(|| panic!("span {s:?} read back more often than written"));
        group.swap_remove(at);
    }
    store.compact().unwrap();
    store.close().unwrap();
    verify(dir.path(), spans.len() as u64);
}
