//! Checks the indexed search against its definition: random stores, built
//! through random sequences of appends, flushes, seals and reopens with
//! tiny blocks and segments, answer random queries exactly as the
//! reference search `spanlog::query::find_in_spans` does over the same
//! spans: same traces, same summaries, same order, same limit.

use std::ops::Range;
use std::sync::Arc;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use spanlog::query::find_in_spans;
use spanlog::{
    AnyValue, AttrFilter, Event, KeyValue, Link, MatchMode, Options, Resource, Scope, Span, SpanId,
    SpanKind, Status, StatusCode, Store, TraceId, TraceQuery, TraceSummary,
};

/// Base of every start time: spans start within a few dozen nanoseconds of
/// it, so starts collide often.
const T0: u64 = 1_700_000_000_000_000_000;

const SERVICES: [&str; 3] = ["frontend", "checkout", "db"];
const OPERATIONS: [&str; 4] = ["GET /", "POST /pay", "SELECT", "publish"];
const KEYS: [&str; 5] = ["http.status", "user", "retry", "ratio", "service.name"];
/// Lengths of the long `payload` attribute some spans carry.
const PADDINGS: [usize; 3] = [40, 200, 600];

// ---------------------------------------------------------------- spans

fn value() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        4 => select(vec!["200", "a", "b", "true", ""]).prop_map(|s| AnyValue::String(s.into())),
        4 => select(vec![200i64, 404, 0, -1]).prop_map(AnyValue::Int),
        3 => any::<bool>().prop_map(AnyValue::Bool),
        3 => select(vec![1.5f64, 200.0, 0.0, -0.0]).prop_map(AnyValue::Double),
        1 => Just(AnyValue::Empty),
    ]
}

fn attrs(max: usize) -> impl Strategy<Value = Vec<KeyValue>> {
    vec((select(KEYS.to_vec()), value()), 0..=max)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

/// The `service.name` a resource carries: one of the services, none, an
/// empty one, or one that is not a string (which is no service at all).
/// The resource's other attributes may name a `service.name` again; the
/// first string one is the service.
fn service_attr() -> impl Strategy<Value = Option<AnyValue>> {
    prop_oneof![
        12 => select(SERVICES.to_vec()).prop_map(|s| Some(AnyValue::String(s.into()))),
        2 => Just(None),
        1 => Just(Some(AnyValue::String(String::new()))),
        1 => Just(Some(AnyValue::Int(7))),
    ]
}

fn resource() -> impl Strategy<Value = Arc<Resource>> {
    (service_attr(), attrs(1)).prop_map(|(svc, extra)| {
        let mut attributes: Vec<KeyValue> = svc
            .map(|v| KeyValue::new("service.name", v))
            .into_iter()
            .collect();
        attributes.extend(extra);
        Arc::new(Resource {
            attributes,
            ..Resource::default()
        })
    })
}

fn scope() -> impl Strategy<Value = Arc<Scope>> {
    attrs(1).prop_map(|attributes| {
        Arc::new(Scope {
            name: "lib".into(),
            attributes,
            ..Scope::default()
        })
    })
}

/// How a span names its parent.
#[derive(Clone, Copy, Debug)]
enum Parent {
    None,
    Earlier(usize),
    Foreign,
}

fn parent() -> impl Strategy<Value = Parent> {
    prop_oneof![
        1 => Just(Parent::None),
        3 => any::<usize>().prop_map(Parent::Earlier),
        1 => Just(Parent::Foreign),
    ]
}

fn duration() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), 1u64..5, 5u64..30]
}

fn status() -> impl Strategy<Value = StatusCode> {
    prop_oneof![
        3 => Just(StatusCode::Unset),
        1 => Just(StatusCode::Ok),
        1 => Just(StatusCode::Error),
    ]
}

prop_compose! {
    /// A span of the small universe, before it is given its ids.
    fn span_body()(
        name in select(OPERATIONS.to_vec()), kind in 0u8..6, start in 0u64..40,
        dur in duration(), code in status(), attributes in attrs(2),
        events in vec(attrs(2), 0..=2), links in vec(attrs(1), 0..=2),
        resource in resource(), scope in scope(), padding in prop_oneof![4 => Just(0usize), 1 => select(PADDINGS.to_vec())],
    ) -> Span {
        let mut attributes = attributes;
        if padding > 0 {
            // Large spans make a trace outgrow a block.
            attributes.push(KeyValue::new("payload", AnyValue::String("x".repeat(padding))));
        }
        Span {
            name: name.into(),
            kind: SpanKind::from_u8(kind).unwrap(),
            start_time_unix_nano: T0 + start,
            end_time_unix_nano: T0 + start + dur,
            attributes,
            events: events
                .into_iter()
                .enumerate()
                .map(|(i, attributes)| Event {
                    time_unix_nano: T0 + start + i as u64,
                    name: "ev".into(),
                    attributes,
                    ..Event::default()
                })
                .collect(),
            links: links
                .into_iter()
                .map(|attributes| Link {
                    trace_id: TraceId([9; 16]),
                    span_id: SpanId([9; 8]),
                    attributes,
                    ..Link::default()
                })
                .collect(),
            status: Status { code, message: String::new() },
            resource,
            scope,
            ..Span::default()
        }
    }
}

/// One trace of 1..=12 spans with distinct span ids; a rootless trace has
/// a parent on every span.
fn trace(index: usize) -> impl Strategy<Value = Vec<Span>> {
    (
        any::<[u8; 16]>(),
        prop_oneof![3 => Just(false), 1 => Just(true)],
        vec(
            (
                span_body(),
                any::<[u8; 8]>(),
                parent(),
                prop_oneof![3 => Just(false), 1 => Just(true)],
            ),
            1..=12,
        ),
    )
        .prop_map(move |(mut tid, rootless, bodies)| {
            // The last byte keeps ids distinct and non-zero; the others
            // order the traces at random.
            tid[15] = index as u8 + 1;
            let mut ids: Vec<SpanId> = Vec::new();
            let mut out: Vec<Span> = Vec::new();
            for (i, (mut s, mut sid, p, shared)) in bodies.into_iter().enumerate() {
                sid[7] = i as u8 + 1;
                if let (true, Some(prev)) = (shared, out.last()) {
                    // One resource and scope for neighbours, as in one
                    // OTLP ResourceSpans.
                    s.resource = prev.resource.clone();
                    s.scope = prev.scope.clone();
                }
                let p = match p {
                    Parent::None if rootless => Parent::Foreign,
                    p => p,
                };
                s.parent_span_id = match p {
                    Parent::None => None,
                    Parent::Earlier(j) if !ids.is_empty() => Some(ids[j % ids.len()]),
                    Parent::Earlier(_) | Parent::Foreign => {
                        Some(SpanId([0xee, 0, 0, 0, 0, 0, 0, 1]))
                    }
                };
                s.trace_id = TraceId(tid);
                s.span_id = SpanId(sid);
                ids.push(s.span_id);
                out.push(s);
            }
            out
        })
}

/// Every span of 1..=40 traces, in trace order or shuffled, so that a
/// trace's spans arrive in several batches.
fn universe() -> impl Strategy<Value = Vec<Span>> {
    (1usize..=40)
        .prop_flat_map(|n| {
            (0..n)
                .map(trace)
                .collect::<Vec<_>>()
                .prop_map(|ts| ts.into_iter().flatten().collect::<Vec<Span>>())
        })
        .prop_flat_map(|spans| {
            prop_oneof![
                1 => Just(spans.clone()),
                3 => Just(spans).prop_shuffle(),
            ]
        })
}

// -------------------------------------------------------------- queries

fn attr_filter() -> impl Strategy<Value = AttrFilter> {
    let key = || select(KEYS.to_vec()).prop_map(String::from);
    prop_oneof![
        key().prop_map(AttrFilter::Exists),
        (
            key(),
            select(vec![
                "200", "a", "true", "false", "1.5", "0", "-0", "-1", "404", "", "frontend"
            ])
        )
            .prop_map(|(k, v)| AttrFilter::Equals(k, v.into())),
        (key(), value()).prop_map(|(k, v)| AttrFilter::Typed(k, v)),
        Just(AttrFilter::Exists("missing".into())),
        select(PADDINGS.to_vec()).prop_map(|n| AttrFilter::Equals("payload".into(), "x".repeat(n))),
    ]
}

fn window() -> impl Strategy<Value = Range<u64>> {
    let lo = || (0u64..50).prop_map(|o| T0 - 5 + o);
    prop_oneof![
        (lo(), 0u64..30).prop_map(|(a, len)| a..a + len),
        lo().prop_map(|a| a..a + 1),
        lo().prop_map(|a| a..a),
        (lo(), 1u64..10).prop_map(|(a, d)| a..a - d),
        Just(0..u64::MAX),
    ]
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> impl Strategy<Value = Option<T>> {
    prop_oneof![3 => Just(None), 1 => s.prop_map(Some)]
}

const QUERY_SERVICES: [&str; 5] = ["frontend", "checkout", "db", "", "nobody"];

fn mode(trace: bool) -> MatchMode {
    if trace {
        MatchMode::Trace
    } else {
        MatchMode::Span
    }
}

/// A query: any combination of conditions, or the most common searches,
/// a service alone or with a time window.
fn query() -> impl Strategy<Value = TraceQuery> {
    let service = || select(QUERY_SERVICES.to_vec()).prop_map(|s| Some(s.to_string()));
    prop_oneof![
        4 => any_query(),
        1 => (service(), window(), 1usize..=10, any::<bool>()).prop_map(|(service, w, limit, t)| {
            TraceQuery {
                service,
                start: Some(w),
                limit,
                mode: mode(t),
                ..TraceQuery::default()
            }
        }),
        1 => (service(), 1usize..=10, any::<bool>()).prop_map(|(service, limit, t)| TraceQuery {
            service,
            limit,
            mode: mode(t),
            ..TraceQuery::default()
        }),
    ]
}

prop_compose! {
    fn any_query()(
        service in opt(select(QUERY_SERVICES.to_vec())),
        operation in opt(select(vec!["GET /", "POST /pay", "SELECT", "publish", "absent"])),
        kind in opt(0u8..6),
        attributes in prop_oneof![3 => Just(Vec::new()), 2 => vec(attr_filter(), 1..=2), 1 => vec(attr_filter(), 3..=4)],
        start in opt(window()),
        duration_min in opt(0u64..20),
        duration_max in opt(0u64..30),
        errors_only in prop_oneof![5 => Just(false), 1 => Just(true)],
        limit in 1usize..=10,
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
            mode: mode(trace_mode),
        }
    }
}

// ---------------------------------------------------------- life cycle

#[derive(Clone, Debug)]
enum Step {
    /// Appends the next spans of the universe as one batch.
    Append(usize),
    /// Appends again spans appended before (a retried delivery).
    Reappend(usize),
    /// Flushes; then, if set, a read-only open beside the writer must
    /// answer as the writer does.
    Flush(bool),
    Seal,
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1usize..40).prop_map(Step::Append),
        1 => (1usize..6).prop_map(Step::Reappend),
        2 => any::<bool>().prop_map(Step::Flush),
        2 => Just(Step::Seal),
        1 => Just(Step::Reopen),
    ]
}

fn options() -> impl Strategy<Value = Options> {
    (512usize..=2048, 2048u64..=12288, 512usize..=4096).prop_map(|(block, segment, wal)| Options {
        block_target_bytes: block,
        segment_max_bytes: segment,
        wal_block_bytes: wal,
        ..Options::default()
    })
}

fn show(r: &spanlog::Result<Vec<TraceSummary>>) -> String {
    match r {
        Ok(v) => format!("{v:#?}"),
        Err(e) => format!("error: {e}"),
    }
}

/// The store answers every query as the reference does over `spans`.
fn check(
    store: &Store,
    spans: &[Span],
    queries: &[TraceQuery],
    when: &str,
) -> Result<(), TestCaseError> {
    for q in queries {
        let want = find_in_spans(spans, q);
        let got = store.find_traces(q);
        let same = match (&want, &got) {
            (Ok(a), Ok(b)) => a == b,
            (Err(_), Err(_)) => true,
            _ => false,
        };
        prop_assert!(
            same,
            "{}: query {:?}\nreference: {}\nstore: {}",
            when,
            q,
            show(&want),
            show(&got)
        );
    }
    Ok(())
}

fn read_only_check(
    dir: &std::path::Path,
    spans: &[Span],
    queries: &[TraceQuery],
    when: &str,
) -> Result<(), TestCaseError> {
    let ro = Store::open(dir, Options::read_only()).unwrap();
    check(&ro, spans, queries, &format!("{when}, read-only open"))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn indexed_search_answers_as_the_definition(
        universe in universe(),
        steps in vec(step(), 1..=14),
        queries in vec(query(), 6..=8),
        opts in options(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), opts.clone()).unwrap();
        let mut appended: Vec<Span> = Vec::new();
        let mut next = 0usize;
        for (i, st) in steps.iter().enumerate() {
            match st {
                Step::Append(n) => {
                    let end = (next + n).min(universe.len());
                    if end > next {
                        store.append(universe[next..end].to_vec()).unwrap();
                        appended.extend_from_slice(&universe[next..end]);
                        next = end;
                    }
                }
                Step::Reappend(n) => {
                    let again: Vec<Span> = appended.iter().rev().step_by(3).take(*n).cloned().collect();
                    if !again.is_empty() {
                        store.append(again.clone()).unwrap();
                        appended.extend(again);
                    }
                }
                Step::Flush(read_only) => {
                    store.flush().unwrap();
                    if *read_only {
                        read_only_check(dir.path(), &appended, &queries, &format!("after step {i} {st:?}"))?;
                    }
                }
                Step::Seal => store.seal_active().unwrap(),
                Step::Reopen => {
                    store.close().unwrap();
                    store = Store::open(dir.path(), opts.clone()).unwrap();
                }
            }
            check(&store, &appended, &queries, &format!("after step {i} {st:?}"))?;
        }
        if next < universe.len() {
            store.append(universe[next..].to_vec()).unwrap();
            appended.extend_from_slice(&universe[next..]);
            check(&store, &appended, &queries, "after the last append")?;
        }
        store.flush().unwrap();
        read_only_check(dir.path(), &appended, &queries, "after the last flush")?;
        store.close().unwrap();
        let store = Store::open(dir.path(), opts).unwrap();
        check(&store, &appended, &queries, "after the final reopen")?;
    }
}

// ------------------------------------------------------ fixed scenarios

fn resource_of(service: Option<&str>) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: service
            .map(|s| KeyValue::new("service.name", AnyValue::String(s.into())))
            .into_iter()
            .collect(),
        ..Resource::default()
    })
}

fn tid(first: u8) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = first;
    b[15] = 1;
    TraceId(b)
}

fn span(trace: u8, id: u8, parent: Option<u8>, service: &str, name: &str, start: u64) -> Span {
    Span {
        trace_id: tid(trace),
        span_id: SpanId([id; 8]),
        parent_span_id: parent.map(|p| SpanId([p; 8])),
        name: name.into(),
        start_time_unix_nano: T0 + start,
        end_time_unix_nano: T0 + start + 10,
        resource: resource_of(Some(service)),
        ..Span::default()
    }
}

fn small_store(dir: &std::path::Path) -> Store {
    let opts = Options {
        block_target_bytes: 1024,
        segment_max_bytes: 1 << 20,
        ..Options::default()
    };
    Store::open(dir, opts).unwrap()
}

fn ids(found: &[TraceSummary]) -> Vec<u8> {
    found.iter().map(|s| s.trace_id.0[0]).collect()
}

fn assert_as_reference(store: &Store, spans: &[Span], q: &TraceQuery) -> Vec<TraceSummary> {
    let got = store.find_traces(q).unwrap();
    assert_eq!(got, find_in_spans(spans, q).unwrap(), "{q:?}");
    got
}

#[test]
fn limit_keeps_the_most_recent_matches() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    // Traces 1..=8 start at 10, 20, .. 80: the recent half sealed first,
    // the older half in memory, then the other way round in a second run.
    let traces: Vec<Span> = (1..=8u8)
        .map(|t| span(t, 1, None, "api", "GET", u64::from(t) * 10))
        .collect();
    store.append(traces[4..].to_vec()).unwrap();
    store.seal_active().unwrap();
    store.append(traces[..4].to_vec()).unwrap();
    // By service rows, by decoding (no service), and in trace mode.
    let bases = [
        TraceQuery::service("api"),
        TraceQuery::default(),
        TraceQuery {
            mode: MatchMode::Trace,
            ..TraceQuery::service("api")
        },
    ];
    for base in &bases {
        for (limit, want) in [
            (1, vec![8]),
            (3, vec![8, 7, 6]),
            (6, vec![8, 7, 6, 5, 4, 3]),
        ] {
            let q = TraceQuery {
                limit,
                ..base.clone()
            };
            assert_eq!(ids(&assert_as_reference(&store, &traces, &q)), want);
        }
    }
    store.close().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    store.append(traces[..4].to_vec()).unwrap();
    store.seal_active().unwrap();
    store.append(traces[4..].to_vec()).unwrap();
    let q = TraceQuery {
        limit: 5,
        ..TraceQuery::service("api")
    };
    assert_eq!(
        ids(&assert_as_reference(&store, &traces, &q)),
        vec![8, 7, 6, 5, 4]
    );
    // A trace that starts early but matches only through a late span is
    // placed by its start, not by the span that matched.
    let late = vec![
        span(9, 1, None, "web", "GET", 1),
        span(9, 2, Some(1), "api", "GET", 90),
    ];
    store.append(late.clone()).unwrap();
    let all: Vec<Span> = traces.iter().chain(&late).cloned().collect();
    assert_eq!(
        ids(&assert_as_reference(&store, &all, &q)),
        vec![8, 7, 6, 5, 4]
    );
    let q = TraceQuery {
        limit: 9,
        ..TraceQuery::service("api")
    };
    assert_eq!(
        ids(&assert_as_reference(&store, &all, &q)),
        vec![8, 7, 6, 5, 4, 3, 2, 1, 9]
    );
    store.close().unwrap();
}

#[test]
fn ties_in_start_go_by_ascending_trace_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    // Six traces start at 100, one at 50. Traces 0x01 and 0x50 start at
    // 100 with a span of another service and match only through their span
    // at 150: they are found first but placed by their start.
    let sealed = vec![
        span(0x30, 1, None, "api", "GET", 100),
        span(0x05, 1, None, "api", "GET", 100),
        span(0x01, 1, None, "web", "GET", 100),
        span(0x50, 1, None, "web", "GET", 100),
    ];
    let memory = vec![
        span(0x20, 1, None, "api", "GET", 100),
        span(0x10, 1, None, "api", "GET", 100),
        span(0x40, 1, None, "api", "GET", 50),
        span(0x01, 2, Some(1), "api", "GET", 150),
        span(0x50, 2, Some(1), "api", "GET", 150),
    ];
    store.append(sealed.clone()).unwrap();
    store.seal_active().unwrap();
    store.append(memory.clone()).unwrap();
    let all: Vec<Span> = sealed.iter().chain(&memory).cloned().collect();
    let expect = |store: &Store| {
        for (limit, want) in [
            (1, vec![0x01]),
            (2, vec![0x01, 0x05]),
            (4, vec![0x01, 0x05, 0x10, 0x20]),
            (6, vec![0x01, 0x05, 0x10, 0x20, 0x30, 0x50]),
            (10, vec![0x01, 0x05, 0x10, 0x20, 0x30, 0x50, 0x40]),
        ] {
            let q = TraceQuery {
                limit,
                ..TraceQuery::service("api")
            };
            assert_eq!(ids(&assert_as_reference(store, &all, &q)), want, "{limit}");
        }
    };
    expect(&store);
    // The same after everything is in sealed segments.
    store.close().unwrap();
    let store = small_store(dir.path());
    expect(&store);
    store.close().unwrap();

    // A late match with a high id found before an earlier-starting match
    // with a lower id: both start at 100, the lower id comes first.
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let spans = vec![
        span(0x50, 1, None, "web", "GET", 100),
        span(0x50, 2, Some(1), "api", "GET", 150),
        span(0x05, 1, None, "api", "GET", 100),
    ];
    store.append(spans.clone()).unwrap();
    let q = TraceQuery {
        limit: 1,
        ..TraceQuery::service("api")
    };
    assert_eq!(ids(&assert_as_reference(&store, &spans, &q)), vec![0x05]);
    store.seal_active().unwrap();
    assert_eq!(ids(&assert_as_reference(&store, &spans, &q)), vec![0x05]);
    store.close().unwrap();
}

#[test]
fn a_trace_split_between_segment_and_memory_is_summarised_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let root = span(1, 1, None, "api", "GET /cart", 100);
    let mut child = span(1, 2, Some(1), "api", "load", 110);
    child.attributes = vec![KeyValue::new("cart.items", AnyValue::Int(3))];
    let mut late = span(1, 3, Some(2), "db", "SELECT", 120);
    late.end_time_unix_nano = T0 + 300;
    late.status.code = StatusCode::Error;
    let other = span(2, 1, None, "api", "GET /cart", 105);
    store
        .append(vec![root.clone(), child.clone(), other.clone()])
        .unwrap();
    store.seal_active().unwrap();
    store.append(vec![late.clone()]).unwrap();
    let all = vec![root, child, other, late];

    let want = TraceSummary {
        trace_id: tid(1),
        root_service: "api".into(),
        root_name: "GET /cart".into(),
        has_root: true,
        start_time_unix_nano: T0 + 100,
        end_time_unix_nano: T0 + 300,
        span_count: 3,
        services: vec!["api".into(), "db".into()],
        has_error: true,
    };
    // Matched in the sealed segment.
    let by_attr = TraceQuery {
        attributes: vec![AttrFilter::Equals("cart.items".into(), "3".into())],
        ..TraceQuery::default()
    };
    // Matched in memory.
    let by_error = TraceQuery {
        errors_only: true,
        ..TraceQuery::default()
    };
    // Conditions met by different spans, one sealed and one in memory.
    let split = TraceQuery {
        service: Some("db".into()),
        attributes: vec![AttrFilter::Typed("cart.items".into(), AnyValue::Int(3))],
        mode: MatchMode::Trace,
        ..TraceQuery::default()
    };
    let span_mode = TraceQuery {
        mode: MatchMode::Span,
        ..split.clone()
    };
    let check = |store: &Store| {
        for q in [&by_attr, &by_error, &split] {
            assert_eq!(
                assert_as_reference(store, &all, q),
                vec![want.clone()],
                "{q:?}"
            );
        }
        assert!(assert_as_reference(store, &all, &span_mode).is_empty());
        assert_eq!(store.get_trace(tid(1)).unwrap().len(), 3);
    };
    check(&store);
    store.flush().unwrap();
    check(&store);
    // Reopened, the trace lies in two sealed segments.
    store.close().unwrap();
    let store = small_store(dir.path());
    assert_eq!(store.sealed_segments().len(), 2);
    check(&store);
    store.close().unwrap();
}

#[test]
fn a_span_without_a_service_is_not_of_the_empty_service() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_store(dir.path());
    let mut none = span(1, 1, None, "api", "GET", 10);
    none.resource = resource_of(None);
    let mut not_text = span(2, 1, None, "api", "GET", 20);
    not_text.resource = Arc::new(Resource {
        attributes: vec![KeyValue::new("service.name", AnyValue::Int(7))],
        ..Resource::default()
    });
    let empty = span(3, 1, None, "", "GET", 30);
    let all = vec![none, not_text, empty];
    store.append(all.clone()).unwrap();
    let q = TraceQuery::service("");
    assert_eq!(ids(&assert_as_reference(&store, &all, &q)), vec![3]);
    store.seal_active().unwrap();
    assert_eq!(ids(&assert_as_reference(&store, &all, &q)), vec![3]);
    store.close().unwrap();
}

/// Appends that fill the table hand it to the background sealer; a search
/// started meanwhile must still summarise a trace of that table whole,
/// whether the sealed segment is published before, during or after it.
/// The search walks a few thousand newer traces first, which gives the
/// sealer time to publish in the middle of it.
#[test]
fn a_trace_sealed_during_a_search_is_summarised_whole() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        block_target_bytes: 1024,
        segment_max_bytes: 16 << 10,
        ..Options::default()
    };
    let store = Store::open(dir.path(), opts).unwrap();
    let trace = |n: u32, start: u64, spans: u8| -> Vec<Span> {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        id[15] = 1;
        (1..=spans)
            .map(|k| Span {
                trace_id: TraceId(id),
                span_id: SpanId([k; 8]),
                parent_span_id: (k > 1).then_some(SpanId([1; 8])),
                name: "GET".into(),
                start_time_unix_nano: start + u64::from(k),
                end_time_unix_nano: start + 20,
                resource: resource_of(Some("api")),
                ..Span::default()
            })
            .collect()
    };
    let mut all: Vec<Span> = (0..3000u32)
        .flat_map(|n| trace(1_000_000 + n, T0 + 1_000_000 + u64::from(n), 2))
        .collect();
    store.append(all.clone()).unwrap();
    store.seal_active().unwrap();
    let q = TraceQuery {
        operation: Some("GET".into()),
        limit: 10_000,
        ..TraceQuery::service("api")
    };
    for n in 0..10u32 {
        // Single-span traces that nearly fill the table, then the trace
        // looked at, whose append freezes the table.
        let mut batch: Vec<Span> = (0..150u32)
            .flat_map(|k| trace(2_000_000 + n * 1000 + k, T0 / 2, 1))
            .collect();
        batch.extend(trace(n, T0 + u64::from(n), 12));
        store.append(batch.clone()).unwrap();
        all.extend(batch);
        let got = store.find_traces(&q).unwrap();
        let mine: Vec<&TraceSummary> = got
            .iter()
            .filter(|s| s.trace_id.0[..4] == n.to_be_bytes())
            .collect();
        assert_eq!(
            mine.iter().map(|s| s.span_count).collect::<Vec<_>>(),
            vec![12],
            "trace {n}"
        );
        assert_eq!(got, find_in_spans(&all, &q).unwrap(), "after batch {n}");
    }
    store.close().unwrap();
}
