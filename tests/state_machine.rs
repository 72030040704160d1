//! A state machine test of the store's whole life cycle: proptest draws a
//! random sequence of operations (appends, flushes, seals, reopens through
//! `close` and through dropping the handle, full compactions, policy
//! merges, retention by age and by size, and every read), runs it against a
//! real store and against a small in-memory model, and compares every read
//! with the model. A failing sequence is shrunk to a minimal one and saved
//! in `tests/state_machine.proptest-regressions` (proptest's default
//! persistence, next to this file), which is replayed first on every run.
//!
//! The model is exact, not a bound: it knows which sealed segment holds
//! which span, so it can tell which spans a retention run deletes (whole
//! segments, chosen by `compaction::plan`'s rules) and which exact
//! duplicates a merge writes once (only duplicates that meet in one merge;
//! a span appended twice stays twice until both copies are merged). It
//! knows segment boundaries because a segment is made only when
//!
//! * the in-memory table is sealed on request (`seal_active`, `close`,
//!   dropping the last handle): the model seals its table at the same
//!   moment; or
//! * an append (or flush) fills the table past `segment_max_bytes`: the
//!   store then starts a new log, which the harness *observes* (the id of
//!   the current log in `Store::segments` changes) and the model seals its
//!   table there. Only the moment is learnt from the store, never what the
//!   segment holds: the model decides that (the whole table, since a batch
//!   always goes into one table).
//!
//! A table frozen that way is sealed by a background thread, so before an
//! operation whose outcome depends on the list of sealed segments
//! (compaction, retention, a read-only open) the harness flushes, which
//! waits for it. Segment ids are learnt the same way: a sealed table gets
//! its log's id, a merge the id its report names; the model then checks
//! that the store drops and merges exactly the segments it predicts.
//!
//! Span times: "old" spans lie thirty days back and "recent" ones one to two
//! days back, both from a day boundary, so with `retention_max_age` of a week
//! the age test of every segment is decided with days of margin, and
//! compaction windows (divisors of a day) fall on the same spans on every
//! run, which keeps saved regressions reproducible.
//!
//! `PROPTEST_CASES` sets the number of cases (default below).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use spanlog::query::find_in_spans;
use spanlog::{
    AnyValue, AttrFilter, Event, KeyValue, Link, MaintenanceReport, MatchMode, Operation, Options,
    Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode, Store, TraceId, TraceQuery,
};

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * SECOND;
const DAY: u64 = 24 * HOUR;
/// Spans older than this (by end time) are retention's to drop.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Traces of the pool; appends draw from it, so traces grow across batches.
const TRACES: u8 = 6;
/// Span ids per trace.
const SPAN_IDS: u8 = 4;
/// Contents one span id can have (same trace, start and id, other fields).
const VARIANTS: u8 = 3;
/// Hours past the base at which spans start.
const HOURS: u8 = 4;
/// Start offsets (in microseconds) within an hour.
const OFFSETS: u8 = 3;

const SERVICES: [&str; 3] = ["frontend", "checkout", "db"];
const OPERATIONS: [&str; 4] = ["GET /", "POST /pay", "SELECT", "publish"];

// ------------------------------------------------------------------ spans

/// Today's midnight (UTC), fixed for the process.
fn midnight() -> u64 {
    static MIDNIGHT: OnceLock<u64> = OnceLock::new();
    *MIDNIGHT.get_or_init(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        now / DAY * DAY
    })
}

/// Where spans of one age start: thirty days back (beyond retention) or
/// one day back (well within it).
fn base(old: bool) -> u64 {
    midnight() - if old { 30 * DAY } else { DAY }
}

fn trace_id(t: u8) -> TraceId {
    let mut b = [0u8; 16];
    // Spread out so the trace order is not the pool order.
    b[0] = t.wrapping_mul(0x95).wrapping_add(0x21);
    b[15] = t + 1;
    TraceId(b)
}

/// A trace id no append ever uses.
fn absent_trace() -> TraceId {
    TraceId([0xee; 16])
}

fn span_id(t: u8, s: u8) -> SpanId {
    SpanId([0, 0, 0, 0, 0, 0, t + 1, s + 1])
}

/// What a generated span is made of: a handful of small numbers, so that
/// the same span is drawn again (an exact duplicate) and the same trace,
/// start and span id come with other contents (a variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct SpanSpec {
    trace: u8,
    span: u8,
    variant: u8,
    old: bool,
    hour: u8,
    offset: u8,
}

fn service_of(t: u8, s: u8) -> &'static str {
    SERVICES[usize::from(t + s / 2) % SERVICES.len()]
}

fn start_of(spec: &SpanSpec) -> u64 {
    base(spec.old)
        + u64::from(spec.hour) * HOUR
        + u64::from(spec.offset) * 1_000
        + u64::from(spec.span) * 10
}

/// The span a spec stands for. The variant changes only fields that do not
/// decide which span is a trace's root (parent, start, span id, name and
/// service stay): spans that tie on the root's order key would make the
/// root of a summary depend on the order the spans are read in.
fn make(spec: &SpanSpec) -> Span {
    let (t, s, v) = (spec.trace, spec.span, spec.variant);
    let start = start_of(spec);
    let resource = Arc::new(Resource {
        attributes: vec![
            KeyValue::new("service.name", AnyValue::String(service_of(t, s).into())),
            KeyValue::new("host", AnyValue::String(format!("host-{}", t % 2))),
        ],
        ..Resource::default()
    });
    let zero = if v == 1 { -0.0 } else { 0.0 };
    Span {
        trace_id: trace_id(t),
        span_id: span_id(t, s),
        parent_span_id: (s > 0).then(|| span_id(t, 0)),
        name: OPERATIONS[usize::from(t + s) % OPERATIONS.len()].into(),
        kind: SpanKind::from_u8(s % 3 + 1).unwrap(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 100 + 7 * u64::from(v),
        attributes: vec![
            KeyValue::new("variant", AnyValue::Int(i64::from(v))),
            KeyValue::new(
                "http.status",
                if v == 2 {
                    AnyValue::Int(500)
                } else {
                    AnyValue::String("200".into())
                },
            ),
            // 0.0 and -0.0: equal as numbers, different spans.
            KeyValue::new("zero", AnyValue::Double(zero)),
            KeyValue::new("old", AnyValue::Bool(spec.old)),
        ],
        events: if v == 1 {
            vec![Event {
                time_unix_nano: start + 1,
                name: "retry".into(),
                attributes: vec![KeyValue::new("retry", AnyValue::Int(1))],
                ..Event::default()
            }]
        } else {
            Vec::new()
        },
        links: if v == 2 {
            vec![Link {
                trace_id: trace_id((t + 1) % TRACES),
                span_id: span_id((t + 1) % TRACES, 0),
                attributes: vec![KeyValue::new("cause", AnyValue::String("x".into()))],
                ..Link::default()
            }]
        } else {
            Vec::new()
        },
        status: if v == 2 {
            Status {
                code: StatusCode::Error,
                message: "boom".into(),
            }
        } else {
            Status::default()
        },
        resource,
        scope: Arc::new(Scope {
            name: "lib".into(),
            ..Scope::default()
        }),
        ..Span::default()
    }
}

fn span_spec() -> impl Strategy<Value = SpanSpec> {
    (
        0..TRACES,
        0..SPAN_IDS,
        prop_oneof![3 => Just(0u8), 1 => 1..VARIANTS],
        prop_oneof![2 => Just(false), 1 => Just(true)],
        0..HOURS,
        0..OFFSETS,
    )
        .prop_map(|(trace, span, variant, old, hour, offset)| SpanSpec {
            trace,
            span,
            variant,
            old,
            hour,
            offset,
        })
}

// ---------------------------------------------------------------- queries

/// A start window: on the grid spans start on, or everything.
fn window() -> impl Strategy<Value = Range<u64>> {
    prop_oneof![
        4 => (
            any::<bool>(),
            0..HOURS,
            0u64..4,
            select(vec![0u64, 1, 10, 1_000, 2_500, HOUR, 3 * HOUR, 2 * DAY]),
        )
            .prop_map(|(old, hour, off, width)| {
                let lo = base(old) + u64::from(hour) * HOUR + off * 1_000;
                lo..lo + width
            }),
        1 => Just(0..u64::MAX),
    ]
}

fn attr_filter() -> impl Strategy<Value = AttrFilter> {
    let keys = vec![
        "variant",
        "http.status",
        "zero",
        "old",
        "retry",
        "cause",
        "host",
        "service.name",
        "missing",
    ];
    let key = move || select(keys.clone()).prop_map(String::from);
    prop_oneof![
        key().prop_map(AttrFilter::Exists),
        (
            key(),
            select(vec![
                "0", "1", "2", "200", "500", "-0", "true", "false", "x", "host-1", "db"
            ])
        )
            .prop_map(|(k, v)| AttrFilter::Equals(k, v.into())),
        (
            key(),
            select(vec![
                AnyValue::Int(0),
                AnyValue::Int(2),
                AnyValue::Int(500),
                AnyValue::String("200".into()),
                AnyValue::Double(0.0),
                AnyValue::Double(-0.0),
                AnyValue::Bool(true),
            ])
        )
            .prop_map(|(k, v)| AttrFilter::Typed(k, v)),
    ]
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![3 => Just(None), 1 => s.prop_map(Some)]
}

prop_compose! {
    fn query()(
        service in opt(select(vec!["frontend", "checkout", "db", "nobody"])),
        operation in opt(select(OPERATIONS.to_vec())),
        kind in opt(1u8..4),
        attributes in prop_oneof![3 => Just(Vec::new()), 2 => vec(attr_filter(), 1..=1), 1 => vec(attr_filter(), 2..=2)],
        start in opt(window()),
        duration_min in opt(select(vec![0u64, 100, 105, 107, 114, 200])),
        duration_max in opt(select(vec![100u64, 107, 114, 1_000])),
        errors_only in prop_oneof![6 => Just(false), 1 => Just(true)],
        limit in prop_oneof![1 => 1usize..=3, 1 => Just(1_000)],
        trace_mode in any::<bool>(),
    ) -> TraceQuery {
        TraceQuery {
            service: service.map(String::from),
            operation: operation.map(String::from),
            kind: kind.map(|k| SpanKind::from_u8(k).unwrap()),
            attributes,
            start,
            duration_min,
            duration_max,
            errors_only,
            limit,
            mode: if trace_mode { MatchMode::Trace } else { MatchMode::Span },
        }
    }
}

/// Queries asked at every full check.
fn fixed_queries() -> Vec<TraceQuery> {
    let all = 1_000;
    let mut out = vec![
        TraceQuery {
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            limit: 2,
            ..TraceQuery::default()
        },
        TraceQuery {
            errors_only: true,
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            attributes: vec![AttrFilter::Typed("zero".into(), AnyValue::Double(-0.0))],
            limit: all,
            ..TraceQuery::default()
        },
        TraceQuery {
            start: Some(base(false)..base(false) + 2 * DAY),
            limit: all,
            ..TraceQuery::default()
        },
    ];
    for s in SERVICES {
        out.push(TraceQuery {
            limit: all,
            ..TraceQuery::service(s)
        });
        out.push(TraceQuery {
            attributes: vec![AttrFilter::Equals("variant".into(), "0".into())],
            mode: MatchMode::Trace,
            limit: 3,
            ..TraceQuery::service(s)
        });
    }
    out
}

// -------------------------------------------------------------- operations

#[derive(Clone, Debug)]
enum Op {
    /// A batch of spans drawn from the pool.
    Append(Vec<SpanSpec>),
    /// Spans appended before, again (retried deliveries): exact duplicates.
    /// Indices pick from everything appended so far (modulo its length).
    Reappend(Vec<usize>),
    Flush,
    SealActive,
    /// `close`, then open again.
    Reopen,
    /// Drop the only handle (which closes the store), then open again.
    DropReopen,
    /// `compact`: retention, then every window's segments into one.
    Compact,
    /// `maintain`: retention, then the policy's merges.
    Maintain,
    /// `apply_retention` with the store's options.
    Retain,
    /// Reopens with `retention_max_bytes` set to this many quarters of the
    /// sealed segments' bytes, applies retention, and reopens as before.
    RetainBytes(u8),
    /// A read-only open beside the writer.
    ReadOnly,
    GetTrace(u8),
    GetTraces(Vec<u8>),
    Scan(Range<u64>),
    Find(TraceQuery),
    Services,
    Operations(u8, Option<u8>),
}

impl Op {
    fn is_read(&self) -> bool {
        matches!(
            self,
            Op::GetTrace(_)
                | Op::GetTraces(_)
                | Op::Scan(_)
                | Op::Find(_)
                | Op::Services
                | Op::Operations(..)
        )
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        16 => vec(span_spec(), 1..=8).prop_map(Op::Append),
        4 => vec(any::<usize>(), 1..=4).prop_map(Op::Reappend),
        2 => Just(Op::Flush),
        5 => Just(Op::SealActive),
        1 => Just(Op::Reopen),
        1 => Just(Op::DropReopen),
        2 => Just(Op::Compact),
        2 => Just(Op::Maintain),
        2 => Just(Op::Retain),
        1 => prop_oneof![1 => Just(0u8), 6 => 1u8..=4].prop_map(Op::RetainBytes),
        1 => Just(Op::ReadOnly),
        1 => (0..=TRACES).prop_map(Op::GetTrace),
        1 => vec(0..=TRACES, 0..=4).prop_map(Op::GetTraces),
        1 => window().prop_map(Op::Scan),
        3 => query().prop_map(Op::Find),
        1 => Just(Op::Services),
        1 => (0u8..4, opt(1u8..4)).prop_map(|(s, k)| Op::Operations(s, k)),
    ]
}

/// How one case's store is set up.
#[derive(Clone, Debug)]
struct Config {
    window: Duration,
    fan_in: usize,
    /// `None`: tables are sealed only on request; else tables this small
    /// fill (and are sealed) every few appends.
    segment_max_bytes: Option<u64>,
    block_target_bytes: usize,
    wal_block_bytes: usize,
    age_retention: bool,
}

fn config() -> impl Strategy<Value = Config> {
    (
        select(vec![HOUR, 2 * HOUR, 3 * HOUR, DAY]),
        2usize..=4,
        prop_oneof![1 => Just(None), 1 => (400u64..=3_000).prop_map(Some)],
        256usize..=2_048,
        256usize..=4_096,
        prop_oneof![3 => Just(true), 1 => Just(false)],
    )
        .prop_map(
            |(window, fan_in, segment_max_bytes, block, wal, age)| Config {
                window: Duration::from_nanos(window),
                fan_in,
                segment_max_bytes,
                block_target_bytes: block,
                wal_block_bytes: wal,
                age_retention: age,
            },
        )
}

impl Config {
    fn options(&self) -> Options {
        Options {
            block_target_bytes: self.block_target_bytes,
            wal_block_bytes: self.wal_block_bytes,
            segment_max_bytes: self.segment_max_bytes.unwrap_or(1 << 30),
            compaction_window: self.window,
            compaction_fan_in: self.fan_in,
            retention_max_age: self.age_retention.then_some(MAX_AGE),
            ..Options::default()
        }
    }

    fn window_nanos(&self) -> u64 {
        self.window.as_nanos() as u64
    }
}

// ------------------------------------------------------------------ model

/// A sealed segment as the model sees it.
#[derive(Clone, Debug)]
struct Seg {
    id: u64,
    spans: Vec<Span>,
}

impl Seg {
    fn min_start(&self) -> u64 {
        self.spans
            .iter()
            .map(|s| s.start_time_unix_nano)
            .min()
            .unwrap()
    }

    fn max_end(&self) -> u64 {
        self.spans
            .iter()
            .map(|s| s.end_time_unix_nano)
            .max()
            .unwrap()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Merges {
    None,
    Policy,
    Full,
}

#[derive(Debug, Default)]
struct Model {
    /// Sealed segments, by id.
    segs: Vec<Seg>,
    /// The in-memory table, in append order.
    table: Vec<Span>,
    /// How many spans of `table` a flush made durable.
    flushed: usize,
    /// Everything ever appended, for retries.
    history: Vec<Span>,
}

/// What the model expects of a compaction or retention run.
#[derive(Debug, Default)]
struct Expected {
    drops: Vec<u64>,
    merges: Vec<Vec<u64>>,
}

impl Model {
    fn append(&mut self, spans: &[Span]) {
        self.table.extend_from_slice(spans);
        self.history.extend_from_slice(spans);
    }

    /// The table becomes the sealed segment `id` (nothing if it is empty).
    fn seal(&mut self, id: u64) {
        if !self.table.is_empty() {
            self.segs.push(Seg {
                id,
                spans: std::mem::take(&mut self.table),
            });
            self.segs.sort_by_key(|s| s.id);
        }
        self.flushed = 0;
    }

    /// Every span a reader sees.
    fn all(&self) -> Vec<Span> {
        self.segs
            .iter()
            .flat_map(|s| s.spans.iter())
            .chain(&self.table)
            .cloned()
            .collect()
    }

    /// What `compaction::plan` decides, written out from its rules: drop
    /// the segments whose latest end is older than the age limit; group
    /// the rest by the window of their earliest start; while they take
    /// more than `cap` bytes, drop the oldest window whole; then merge a
    /// window's segments: all of them (`Full`, when there are two or more)
    /// or, for the policy, those of one size tier once there are `fan_in`
    /// of them; every segment here is below 1 MiB, the first tier, so
    /// that is all of the window's.
    fn plan(
        &self,
        cfg: &Config,
        now: u64,
        cap: Option<u64>,
        sizes: &BTreeMap<u64, u64>,
        merges: Merges,
    ) -> Expected {
        let mut out = Expected::default();
        let mut windows: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for s in &self.segs {
            if cfg.age_retention && s.max_end() < now - MAX_AGE.as_nanos() as u64 {
                out.drops.push(s.id);
            } else {
                windows
                    .entry(s.min_start() / cfg.window_nanos())
                    .or_default()
                    .push(s.id);
            }
        }
        if let Some(cap) = cap {
            let mut total: u64 = windows.values().flatten().map(|id| sizes[id]).sum();
            while total > cap {
                let Some((_, ids)) = windows.pop_first() else {
                    break;
                };
                total -= ids.iter().map(|id| sizes[id]).sum::<u64>();
                out.drops.extend(ids);
            }
        }
        out.drops.sort_unstable();
        for ids in windows.into_values() {
            let enough = match merges {
                Merges::None => false,
                Merges::Full => ids.len() >= 2,
                Merges::Policy => ids.len() >= cfg.fan_in,
            };
            if enough {
                out.merges.push(ids);
            }
        }
        out
    }

    /// Applies a plan the store carried out: `merged` names each group's
    /// new segment. A merge writes exact duplicates among its inputs once.
    fn apply(&mut self, plan: &Expected, merged: &[u64]) -> u64 {
        self.segs.retain(|s| !plan.drops.contains(&s.id));
        let mut duplicates = 0;
        for (group, id) in plan.merges.iter().zip(merged) {
            let mut spans: Vec<Span> = Vec::new();
            for s in self.segs.iter().filter(|s| group.contains(&s.id)) {
                for span in &s.spans {
                    if spans.contains(span) {
                        duplicates += 1;
                    } else {
                        spans.push(span.clone());
                    }
                }
            }
            self.segs.retain(|s| !group.contains(&s.id));
            self.segs.push(Seg { id: *id, spans });
        }
        self.segs.sort_by_key(|s| s.id);
        duplicates
    }
}

// ------------------------------------------------------------- comparisons

type Key = (TraceId, u64, SpanId);

fn key(s: &Span) -> Key {
    (s.trace_id, s.start_time_unix_nano, s.span_id)
}

/// `got` and `want` hold the same spans, as multisets.
fn same_spans(got: &[Span], want: &[Span], what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len(), "{}: span count", what);
    let mut groups: BTreeMap<Key, Vec<&Span>> = BTreeMap::new();
    for s in want {
        groups.entry(key(s)).or_default().push(s);
    }
    for s in got {
        let group = groups.get_mut(&key(s));
        let at = group.as_ref().and_then(|g| g.iter().position(|w| *w == s));
        prop_assert!(
            at.is_some(),
            "{}: {:?} read back, not expected (or more often than expected)",
            what,
            s
        );
        group.unwrap().swap_remove(at.unwrap());
    }
    Ok(())
}

/// Every span of `small` is in `big`, counting copies.
fn sub_spans(small: &[Span], big: &[Span], what: &str) -> Result<(), TestCaseError> {
    let mut groups: BTreeMap<Key, Vec<&Span>> = BTreeMap::new();
    for s in big {
        groups.entry(key(s)).or_default().push(s);
    }
    for s in small {
        let group = groups.get_mut(&key(s));
        let at = group.as_ref().and_then(|g| g.iter().position(|w| *w == s));
        prop_assert!(at.is_some(), "{}: {:?} missing", what, s);
        group.unwrap().swap_remove(at.unwrap());
    }
    Ok(())
}

fn of_trace(spans: &[Span], t: TraceId) -> Vec<Span> {
    spans.iter().filter(|s| s.trace_id == t).cloned().collect()
}

fn services_of(spans: &[Span]) -> Vec<String> {
    let set: BTreeSet<String> = spans
        .iter()
        .map(|s| s.service_name().unwrap_or("").to_string())
        .collect();
    set.into_iter().collect()
}

fn operations_of(spans: &[Span], service: &str, kind: Option<SpanKind>) -> Vec<Operation> {
    let set: BTreeSet<(String, SpanKind)> = spans
        .iter()
        .filter(|s| s.service_name().unwrap_or("") == service)
        .filter(|s| kind.is_none_or(|k| s.kind == k))
        .map(|s| (s.name.clone(), s.kind))
        .collect();
    set.into_iter()
        .map(|(name, kind)| Operation {
            service: service.to_string(),
            name,
            kind,
        })
        .collect()
}

fn scan(store: &Store, range: Range<u64>) -> Result<Vec<Span>, TestCaseError> {
    let mut out = Vec::new();
    for s in store.scan(range.clone()).unwrap() {
        let s = s.unwrap();
        prop_assert!(
            range.contains(&s.start_time_unix_nano),
            "scan of {:?} yielded a span starting at {}",
            range,
            s.start_time_unix_nano
        );
        out.push(s);
    }
    Ok(out)
}

/// `get_trace` returns the trace's spans ordered by start time (and span
/// id), the same multiset as `want`.
fn check_trace(store: &Store, t: TraceId, want: &[Span], what: &str) -> Result<(), TestCaseError> {
    let got = store.get_trace(t).unwrap();
    prop_assert!(
        got.windows(2)
            .all(|w| (w[0].start_time_unix_nano, w[0].span_id)
                <= (w[1].start_time_unix_nano, w[1].span_id)),
        "{}: trace {} not ordered by start",
        what,
        t
    );
    same_spans(&got, &of_trace(want, t), &format!("{what}: trace {t}"))
}

fn check_find(
    store: &Store,
    spans: &[Span],
    q: &TraceQuery,
    what: &str,
) -> Result<(), TestCaseError> {
    // A query the reference refuses (a minimum above the maximum
    // duration) the store must refuse too.
    match (store.find_traces(q), find_in_spans(spans, q)) {
        (Ok(got), Ok(want)) => prop_assert_eq!(got, want, "{}: find_traces({:?})", what, q),
        (Err(_), Err(_)) => {}
        (got, want) => prop_assert!(
            false,
            "{}: find_traces({:?}): store {:?}, reference {:?}",
            what,
            q,
            got,
            want
        ),
    }
    Ok(())
}

fn check_catalog(store: &Store, spans: &[Span], what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        store.services().unwrap(),
        services_of(spans),
        "{}: services",
        what
    );
    for service in SERVICES.iter().chain(&["nobody"]) {
        for kind in [None, Some(SpanKind::Server)] {
            prop_assert_eq!(
                store.operations(service, kind).unwrap(),
                operations_of(spans, service, kind),
                "{}: operations of {} ({:?})",
                what,
                service,
                kind
            );
        }
    }
    Ok(())
}

/// Every read, over everything, against `spans`.
fn full_check(store: &Store, spans: &[Span], what: &str) -> Result<(), TestCaseError> {
    for t in (0..TRACES).map(trace_id).chain([absent_trace()]) {
        check_trace(store, t, spans, what)?;
    }
    let ids: Vec<TraceId> = (0..TRACES).rev().map(trace_id).collect();
    let got = store.get_traces(&ids).unwrap();
    prop_assert_eq!(got.len(), ids.len());
    for (t, got) in ids.iter().zip(&got) {
        same_spans(
            got,
            &of_trace(spans, *t),
            &format!("{what}: get_traces {t}"),
        )?;
    }
    same_spans(
        &scan(store, 0..u64::MAX)?,
        spans,
        &format!("{what}: full scan"),
    )?;
    for q in fixed_queries() {
        check_find(store, spans, &q, what)?;
    }
    check_catalog(store, spans, what)
}

// ---------------------------------------------------------------- harness

struct Harness<'a> {
    dir: &'a Path,
    cfg: Config,
    store: Option<Store>,
    model: Model,
    /// Id of the store's current log.
    wal: u64,
    /// A table was frozen by an append and may not be sealed yet.
    roll_pending: bool,
}

/// The id of the writer's current log: the last log `segments` lists.
fn current_log(store: &Store) -> u64 {
    store
        .segments()
        .unwrap()
        .iter()
        .rfind(|i| !i.sealed)
        .expect("a writer has a log")
        .id
}

impl Harness<'_> {
    fn store(&self) -> &Store {
        self.store.as_ref().unwrap()
    }

    fn open(&mut self, opts: Options) {
        let store = Store::open(self.dir, opts).unwrap();
        self.wal = current_log(&store);
        self.store = Some(store);
    }

    /// After an append or flush: a new log means the table was frozen.
    fn observe_roll(&mut self) {
        let wal = current_log(self.store());
        if wal != self.wal {
            self.model.seal(self.wal);
            self.wal = wal;
            self.roll_pending = true;
        }
    }

    fn flush(&mut self) {
        self.store().flush().unwrap();
        self.model.flushed = self.model.table.len();
        self.observe_roll();
        // A flush waits until every table frozen before it is sealed.
        self.roll_pending = false;
    }

    /// Waits for a table frozen by an append to be sealed and published.
    fn settle(&mut self) {
        if self.roll_pending {
            self.flush();
        }
    }

    fn seal_active(&mut self) {
        self.store().seal_active().unwrap();
        self.model.seal(self.wal);
        self.wal = current_log(self.store());
        self.roll_pending = false;
    }

    /// Closes (by `close` or by dropping the handle) and opens with `opts`.
    fn reopen(&mut self, by_drop: bool, opts: Options) {
        let store = self.store.take().unwrap();
        if by_drop {
            drop(store);
        } else {
            store.close().unwrap();
        }
        self.model.seal(self.wal);
        self.roll_pending = false;
        self.open(opts);
    }

    /// The store's sealed segments, as (id, span count), must be the
    /// model's. Compared by id: the store lists a table sealed after a
    /// merge after the merged segment, though its log's id is lower.
    fn check_segments(&self, what: &str) -> Result<(), TestCaseError> {
        let mut got: Vec<(u64, u64)> = self
            .store()
            .sealed_segments()
            .iter()
            .map(|s| (s.id, s.trailer.span_count))
            .collect();
        got.sort_unstable();
        let want: Vec<(u64, u64)> = self
            .model
            .segs
            .iter()
            .map(|s| (s.id, s.spans.len() as u64))
            .collect();
        prop_assert_eq!(got, want, "{}: sealed segments (id, spans)", what);
        Ok(())
    }

    /// Runs a compaction or retention call and checks it did exactly what
    /// the model plans.
    fn maintenance(
        &mut self,
        run: impl Fn(&Store) -> spanlog::Result<MaintenanceReport>,
        cap: Option<u64>,
        merges: Merges,
        what: &str,
    ) -> Result<(), TestCaseError> {
        self.settle();
        self.check_segments(&format!("{what}: before"))?;
        let sizes: BTreeMap<u64, u64> = self
            .store()
            .sealed_segments()
            .iter()
            .map(|s| (s.id, s.file_len()))
            .collect();
        // The policy's size tiers start at 1 MiB: the model's rule holds
        // while every segment is below.
        prop_assert!(sizes.values().all(|b| *b < 1 << 20), "{:?}", sizes);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let plan = self.model.plan(&self.cfg, now, cap, &sizes, merges);
        let report = run(self.store()).unwrap();
        prop_assert_eq!(
            &report.dropped,
            &plan.drops,
            "{}: dropped ({:?})",
            what,
            report
        );
        let groups: Vec<Vec<u64>> = report.merged.iter().map(|m| m.0.clone()).collect();
        prop_assert_eq!(&groups, &plan.merges, "{}: merged ({:?})", what, report);
        let ids: Vec<u64> = report.merged.iter().map(|m| m.1).collect();
        let duplicates = self.model.apply(&plan, &ids);
        prop_assert_eq!(
            report.duplicates_dropped,
            duplicates,
            "{}: duplicates dropped",
            what
        );
        prop_assert_eq!(self.store().maintenance_status().last_error, None);
        self.check_segments(&format!("{what}: after"))
    }

    /// A read-only open beside the writer sees the sealed segments and the
    /// flushed part of the table, and possibly more of the table: its reads
    /// must agree with each other and with that.
    fn read_only(&mut self) -> Result<(), TestCaseError> {
        self.settle();
        let ro = Store::open(self.dir, Options::read_only()).unwrap();
        let seen = scan(&ro, 0..u64::MAX)?;
        let mut must: Vec<Span> = self
            .model
            .segs
            .iter()
            .flat_map(|s| s.spans.clone())
            .collect();
        must.extend_from_slice(&self.model.table[..self.model.flushed]);
        sub_spans(&must, &seen, "read-only open: durable spans")?;
        sub_spans(&seen, &self.model.all(), "read-only open: spans appended")?;
        full_check(&ro, &seen, "read-only open")?;
        ro.close().unwrap();
        Ok(())
    }

    fn step(&mut self, op: &Op, what: &str) -> Result<(), TestCaseError> {
        let all = self.model.all();
        match op {
            Op::Append(specs) => {
                let spans: Vec<Span> = specs.iter().map(make).collect();
                self.store().append(spans.clone()).unwrap();
                self.model.append(&spans);
                self.observe_roll();
            }
            Op::Reappend(picks) => {
                let history = &self.model.history;
                if !history.is_empty() {
                    let spans: Vec<Span> = picks
                        .iter()
                        .map(|i| history[i % history.len()].clone())
                        .collect();
                    self.store().append(spans.clone()).unwrap();
                    self.model.append(&spans);
                    self.observe_roll();
                }
            }
            Op::Flush => self.flush(),
            Op::SealActive => self.seal_active(),
            Op::Reopen => self.reopen(false, self.cfg.options()),
            Op::DropReopen => self.reopen(true, self.cfg.options()),
            Op::Compact => self.maintenance(Store::compact, None, Merges::Full, what)?,
            Op::Maintain => self.maintenance(Store::maintain, None, Merges::Policy, what)?,
            Op::Retain => self.maintenance(Store::apply_retention, None, Merges::None, what)?,
            Op::RetainBytes(quarters) => {
                // Sealing the table first, so every segment's size is known.
                self.reopen(false, self.cfg.options());
                let total: u64 = self
                    .store()
                    .sealed_segments()
                    .iter()
                    .map(|s| s.file_len())
                    .sum();
                let cap = total * u64::from(*quarters) / 4;
                let opts = Options {
                    retention_max_bytes: Some(cap),
                    ..self.cfg.options()
                };
                self.reopen(false, opts);
                self.maintenance(Store::apply_retention, Some(cap), Merges::None, what)?;
                self.reopen(false, self.cfg.options());
            }
            Op::ReadOnly => self.read_only()?,
            Op::GetTrace(t) => {
                let t = if *t < TRACES {
                    trace_id(*t)
                } else {
                    absent_trace()
                };
                check_trace(self.store(), t, &all, what)?;
            }
            Op::GetTraces(ts) => {
                let ids: Vec<TraceId> = ts
                    .iter()
                    .map(|t| {
                        if *t < TRACES {
                            trace_id(*t)
                        } else {
                            absent_trace()
                        }
                    })
                    .collect();
                let got = self.store().get_traces(&ids).unwrap();
                prop_assert_eq!(got.len(), ids.len());
                for (t, got) in ids.iter().zip(&got) {
                    same_spans(got, &of_trace(&all, *t), &format!("{what}: trace {t}"))?;
                }
            }
            Op::Scan(range) => {
                let want: Vec<Span> = all
                    .iter()
                    .filter(|s| range.contains(&s.start_time_unix_nano))
                    .cloned()
                    .collect();
                same_spans(&scan(self.store(), range.clone())?, &want, what)?;
            }
            Op::Find(q) => check_find(self.store(), &all, q, what)?,
            Op::Services => {
                prop_assert_eq!(
                    self.store().services().unwrap(),
                    services_of(&all),
                    "{}",
                    what
                )
            }
            Op::Operations(s, k) => {
                let service = SERVICES.get(usize::from(*s)).copied().unwrap_or("nobody");
                let kind = k.map(|k| SpanKind::from_u8(k).unwrap());
                prop_assert_eq!(
                    self.store().operations(service, kind).unwrap(),
                    operations_of(&all, service, kind),
                    "{}: operations of {} ({:?})",
                    what,
                    service,
                    kind
                );
            }
        }
        if !op.is_read() {
            let all = self.model.all();
            // `stats` counts sealed segments and tables under two separate
            // locks, so it is exact only while no table is being sealed.
            if !self.roll_pending {
                let stats = self.store().stats().unwrap();
                prop_assert_eq!(stats.spans, all.len() as u64, "{}: stats().spans", what);
            }
            full_check(self.store(), &all, what)?;
        }
        Ok(())
    }
}

fn run(cfg: &Config, ops: &[Op]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut h = Harness {
        dir: dir.path(),
        cfg: cfg.clone(),
        store: None,
        model: Model::default(),
        wal: 0,
        roll_pending: false,
    };
    h.open(cfg.options());
    for (i, op) in ops.iter().enumerate() {
        h.step(op, &format!("after op {i} {op:?}"))?;
    }
    h.settle();
    h.check_segments("at the end")?;
    h.reopen(false, cfg.options());
    h.check_segments("reopened at the end")?;
    let all = h.model.all();
    full_check(h.store(), &all, "reopened at the end")?;
    h.store.take().unwrap().close().unwrap();
    let report = spanlog::verify::verify_path(dir.path()).unwrap();
    prop_assert!(report.is_clean(), "verify: {:?}", report.problems);
    prop_assert_eq!(report.spans, all.len() as u64, "spans verified");
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_store_behaves_as_the_model(cfg in config(), ops in vec(op(), 1..=50)) {
        run(&cfg, &ops)?;
    }
}

// ------------------------------------------------------------ fixed cases

/// A span appended twice stays twice until both copies meet in a merge;
/// a variant with the same trace, start and span id is kept; retention
/// drops the old segment only.
#[test]
fn duplicates_are_written_once_only_by_the_merge_that_meets_them() {
    let spec = |trace, variant, old| SpanSpec {
        trace,
        span: 1,
        variant,
        old,
        hour: 0,
        offset: 0,
    };
    let cfg = Config {
        window: Duration::from_secs(3600),
        fan_in: 2,
        segment_max_bytes: None,
        block_target_bytes: 1_024,
        wal_block_bytes: 1_024,
        age_retention: true,
    };
    let ops = vec![
        Op::Append(vec![spec(0, 0, false), spec(0, 1, false), spec(1, 0, true)]),
        Op::SealActive,
        Op::Reappend(vec![0, 1]),
        Op::Append(vec![spec(2, 0, true)]),
        Op::Flush,
        Op::ReadOnly,
        Op::Reopen,
        Op::Retain,
        Op::Compact,
        Op::Reappend(vec![0]),
        Op::DropReopen,
        Op::Maintain,
        Op::RetainBytes(2),
        Op::RetainBytes(0),
    ];
    run(&cfg, &ops).unwrap();
}
