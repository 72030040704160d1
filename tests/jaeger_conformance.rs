//! Jaeger's storage-backend conformance suite, end to end.
//!
//! The fixtures and the query table of `../shared/conformance/jaeger` (see
//! the README there) are written through the OTLP/JSON path, and every
//! span-store test of the suite runs against the store three times: with the
//! spans in memory (appended and flushed), sealed, and after a reopen.
//! Results are compared span for span after the suite's normalization.
//!
//! The suite only checks that the right traces are found, so each query case
//! also gets variants of our own: one field changed so that nothing can
//! match, and boundaries set exactly on the fixture's values so that the
//! expected traces must still be found.
//!
//! Without `../shared/conformance` beside the crate, each test says so and
//! passes.

#![cfg(feature = "otlp")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;
use spanlog::{
    otlp, AnyValue, AttrFilter, KeyValue, Operation, Options, Resource, Scope, Span, SpanId,
    SpanKind, Store, TraceId, TraceQuery,
};

const SECOND: u64 = 1_000_000_000;
const HOUR: u64 = 3600 * SECOND;
const DAY: u64 = 24 * HOUR;

// ---- the conformance folder ----------------------------------------------

/// The conformance data beside the crate.
struct Suite {
    root: PathBuf,
}

impl Suite {
    /// The folder, or `None` (after saying so on stderr) when it is absent.
    fn find() -> Option<Suite> {
        let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
            .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
        let root = manifest.join("../shared/conformance");
        if root.is_dir() {
            Some(Suite { root })
        } else {
            eprintln!("skipping: ../shared/conformance not found");
            None
        }
    }

    fn read(&self, rel: &str) -> String {
        let path = self.root.join(rel);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn fixture_text(&self, name: &str) -> String {
        self.read(&format!("jaeger/traces/{name}.json"))
    }

    /// The spans of `jaeger/traces/<name>.json`.
    fn fixture(&self, name: &str) -> Vec<Span> {
        otlp::from_json_str(&self.fixture_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    /// The query cases of `jaeger/queries.json`.
    fn cases(&self) -> Vec<Case> {
        let v: Value = serde_json::from_str(&self.read("jaeger/queries.json")).unwrap();
        let cases: Vec<Case> = v
            .as_array()
            .expect("a list of cases")
            .iter()
            .map(case_of)
            .collect();
        assert_eq!(cases.len(), 25, "queries.json holds 25 cases");
        cases
    }

    /// Every fixture some case expects, each once, in order of first mention.
    fn expected_fixtures(&self, cases: &[Case]) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for name in cases.iter().flat_map(|c| &c.expected) {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    /// Writes the fixture with one append, as the suite's one `WriteTraces`.
    fn append_fixture(&self, store: &Store, name: &str) {
        let spans =
            otlp::from_json_str(&self.fixture_text(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        store
            .append(spans)
            .unwrap_or_else(|e| panic!("append {name}: {e}"));
    }
}

// ---- the query table -----------------------------------------------------

/// One case of `queries.json`, translated to a [`TraceQuery`].
struct Case {
    caption: String,
    query: TraceQuery,
    expected: Vec<String>,
}

fn case_of(v: &Value) -> Case {
    let names = v["ExpectedFixtures"].as_array().expect("ExpectedFixtures");
    Case {
        caption: v["Caption"].as_str().expect("Caption").to_string(),
        query: query_of(&v["Query"]),
        expected: names
            .iter()
            .map(|n| n.as_str().expect("fixture name").to_string())
            .collect(),
    }
}

fn query_of(q: &Value) -> TraceQuery {
    let text = |key: &str| q[key].as_str().filter(|s| !s.is_empty()).map(String::from);
    let nanos = |key: &str| rfc3339_nanos(q[key].as_str().expect(key));
    TraceQuery {
        service: text("ServiceName"),
        operation: text("OperationName"),
        attributes: tag_filters(&q["Tags"]),
        start: Some(nanos("StartTimeMin")..nanos("StartTimeMax")),
        duration_min: nonzero(&q["DurationMin"]),
        duration_max: nonzero(&q["DurationMax"]),
        limit: q["NumTraces"].as_u64().expect("NumTraces") as usize,
        ..TraceQuery::default()
    }
}

/// `Tags` (an object or null) as string-rendering conditions, all required.
fn tag_filters(tags: &Value) -> Vec<AttrFilter> {
    let Some(map) = tags.as_object() else {
        assert!(tags.is_null(), "Tags is an object or null: {tags}");
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| AttrFilter::Equals(k.clone(), render(v)))
        .collect()
}

/// The string rendering of a tag value: integral numbers as i64, other
/// numbers as f64 (`72.5`), booleans as `true` / `false`.
fn render(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => (f as i64).to_string(),
            (None, Some(f)) => f.to_string(),
            (None, None) => panic!("tag value {n} is not an i64 or f64"),
        },
        other => panic!("tag value {other} is not a string, number or bool"),
    }
}

/// The same condition on the typed value the JSON holds.
fn typed(f: &AttrFilter) -> AttrFilter {
    let AttrFilter::Equals(key, text) = f else {
        panic!("{f:?} is not a string condition");
    };
    let value = if let Ok(i) = text.parse::<i64>() {
        AnyValue::Int(i)
    } else if let Ok(b) = text.parse::<bool>() {
        AnyValue::Bool(b)
    } else if let Ok(d) = text.parse::<f64>() {
        AnyValue::Double(d)
    } else {
        AnyValue::String(text.clone())
    };
    AttrFilter::Typed(key.clone(), value)
}

/// A duration bound in ns, where 0 means unbounded.
fn nonzero(v: &Value) -> Option<u64> {
    Some(v.as_u64().expect("a duration in ns")).filter(|&n| n > 0)
}

/// Unix nanoseconds of an RFC 3339 UTC time such as
/// `2017-01-26T16:46:31.639875Z` (fraction optional, up to 9 digits).
fn rfc3339_nanos(s: &str) -> u64 {
    let bad = || -> ! { panic!("not an RFC 3339 UTC time: {s:?}") };
    let (date, time) = s
        .strip_suffix('Z')
        .and_then(|t| t.split_once('T'))
        .unwrap_or_else(|| bad());
    let num = |t: &str| -> i64 {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
            bad();
        }
        t.parse().unwrap_or_else(|_| bad())
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let d: Vec<i64> = date.split('-').map(num).collect();
    let t: Vec<i64> = hms.split(':').map(num).collect();
    if d.len() != 3 || t.len() != 3 || frac.len() > 9 {
        bad();
    }
    let frac_nanos = if frac.is_empty() {
        0
    } else {
        num(frac) * 10i64.pow(9 - frac.len() as u32)
    };
    let secs = days_from_civil(d[0], d[1], d[2]) * 86_400 + t[0] * 3600 + t[1] * 60 + t[2];
    u64::try_from(secs * 1_000_000_000 + frac_nanos).unwrap_or_else(|_| bad())
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// ---- store states --------------------------------------------------------

fn open(dir: &Path) -> Store {
    Store::open(dir, Options::default()).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()))
}

/// Writes with `load` into a fresh store and flushes, then runs `check`
/// with the spans in memory, once they are sealed, and after a reopen.
fn in_each_state(load: impl Fn(&Store), check: impl Fn(&Store, &str)) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    load(&store);
    store.flush().unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.sealed_segments, 0, "spans should still be in memory");
    check(&store, "in memory");

    store.seal_active().unwrap();
    let stats = store.stats().unwrap();
    assert!(stats.sealed_segments > 0, "nothing was sealed: {stats:?}");
    assert_eq!(stats.table_spans, 0, "spans left in memory: {stats:?}");
    check(&store, "sealed");
    store.close().unwrap();

    let store = open(dir.path());
    check(&store, "reopened");
    store.close().unwrap();
}

// ---- comparison (README §7) ----------------------------------------------

/// Sorts attributes by key (then value, for a deterministic order).
fn sort_attrs(kvs: &mut [KeyValue]) {
    kvs.sort_by_cached_key(|kv| (kv.key.clone(), format!("{:?}", kv.value)));
}

fn sorted_attrs(kvs: &[KeyValue]) -> Vec<KeyValue> {
    let mut kvs = kvs.to_vec();
    sort_attrs(&mut kvs);
    kvs
}

/// The span as the suite compares it: attributes, events and links in a
/// canonical order; flags and schema urls dropped.
fn normalize_span(s: &Span) -> Span {
    let mut s = s.clone();
    s.flags = 0;
    sort_attrs(&mut s.attributes);
    for e in &mut s.events {
        sort_attrs(&mut e.attributes);
    }
    s.events.sort_by_cached_key(|e| {
        (
            e.name.clone(),
            e.time_unix_nano,
            format!("{:?}", e.attributes),
        )
    });
    for l in &mut s.links {
        l.flags = 0;
        sort_attrs(&mut l.attributes);
    }
    s.links.sort_by_cached_key(|l| {
        let attrs = format!("{:?}", l.attributes);
        (l.trace_id, l.span_id, attrs, l.trace_state.clone())
    });
    s.resource = Arc::new(Resource {
        attributes: sorted_attrs(&s.resource.attributes),
        dropped_attributes_count: s.resource.dropped_attributes_count,
        schema_url: String::new(),
    });
    s.scope = Arc::new(Scope {
        attributes: sorted_attrs(&s.scope.attributes),
        schema_url: String::new(),
        ..(*s.scope).clone()
    });
    s
}

/// Spans normalized, sorted by (trace, span id, start), with duplicate span
/// ids of a trace dropped (the first kept).
fn normalized(spans: &[Span]) -> Vec<Span> {
    let mut v: Vec<Span> = spans.iter().map(normalize_span).collect();
    v.sort_by_key(|s| (s.trace_id, s.span_id, s.start_time_unix_nano));
    v.dedup_by_key(|s| (s.trace_id, s.span_id));
    v
}

fn span_keys(spans: &[Span]) -> Vec<(TraceId, SpanId)> {
    spans.iter().map(|s| (s.trace_id, s.span_id)).collect()
}

/// Fails unless both sides hold the same spans once normalized.
fn assert_same_spans(got: &[Span], want: &[Span], what: &str) {
    let (got, want) = (normalized(got), normalized(want));
    assert_eq!(span_keys(&got), span_keys(&want), "{what}: span ids differ");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(g, w, "{what}: span {}/{} differs", w.trace_id, w.span_id);
    }
}

fn trace_ids(spans: &[Span]) -> BTreeSet<TraceId> {
    spans.iter().map(|s| s.trace_id).collect()
}

fn span_counts(spans: &[Span]) -> BTreeMap<TraceId, u64> {
    let mut counts = BTreeMap::new();
    for s in spans {
        *counts.entry(s.trace_id).or_default() += 1;
    }
    counts
}

// ---- FindTraces ----------------------------------------------------------

/// The fixtures that the FindTraces cases write, by name.
struct Written {
    fixtures: BTreeMap<String, Vec<Span>>,
}

impl Written {
    fn load(suite: &Suite, cases: &[Case]) -> Written {
        let fixtures = suite
            .expected_fixtures(cases)
            .into_iter()
            .map(|name| {
                let spans = suite.fixture(&name);
                (name, spans)
            })
            .collect();
        Written { fixtures }
    }

    fn write(&self, suite: &Suite, store: &Store) {
        for name in self.fixtures.keys() {
            suite.append_fixture(store, name);
        }
    }

    /// Every span of the fixtures the case expects.
    fn expected(&self, case: &Case) -> Vec<Span> {
        case.expected
            .iter()
            .flat_map(|name| &self.fixtures[name])
            .cloned()
            .collect()
    }
}

fn find(store: &Store, q: &TraceQuery, what: &str) -> Vec<spanlog::TraceSummary> {
    store
        .find_traces(q)
        .unwrap_or_else(|e| panic!("{what}: find_traces failed: {e}"))
}

/// Fails unless the query finds exactly the traces of `want`, whole, with
/// summaries that count every span.
fn assert_finds(store: &Store, q: &TraceQuery, want: &[Span], what: &str) {
    let found = find(store, q, what);
    let ids: BTreeSet<TraceId> = found.iter().map(|s| s.trace_id).collect();
    assert_eq!(ids.len(), found.len(), "{what}: a trace came back twice");
    assert_eq!(ids, trace_ids(want), "{what}: traces found");
    let counts = span_counts(want);
    let mut got = Vec::new();
    for sum in &found {
        let spans = store.get_trace(sum.trace_id).unwrap();
        assert_eq!(
            sum.span_count, counts[&sum.trace_id],
            "{what}: summary span count of {}",
            sum.trace_id
        );
        got.extend(spans);
    }
    assert_eq!(got.len(), want.len(), "{what}: total span count");
    assert_same_spans(&got, want, what);
}

fn assert_finds_nothing(store: &Store, q: &TraceQuery, what: &str) {
    let found = find(store, q, what);
    let ids: Vec<TraceId> = found.iter().map(|s| s.trace_id).collect();
    assert!(ids.is_empty(), "{what}: expected no trace, found {ids:?}");
}

#[test]
fn find_traces_passes_every_case_in_every_state() {
    let Some(suite) = Suite::find() else { return };
    let cases = suite.cases();
    let written = Written::load(&suite, &cases);
    assert_eq!(written.fixtures.len(), 27, "fixtures the cases expect");
    in_each_state(
        |store| written.write(&suite, store),
        |store, state| {
            for case in &cases {
                let what = format!("{state}: case {:?}", case.caption);
                assert_finds(store, &case.query, &written.expected(case), &what);
            }
        },
    );
}

// ---- variants of the cases -----------------------------------------------

/// The spans of the expected traces that can satisfy the case on their own
/// fields: service, operation and start window.
fn driving_spans(case: &Case, expected: &[Span]) -> Vec<Span> {
    let q = &case.query;
    let spans: Vec<Span> = expected
        .iter()
        .filter(|s| {
            q.service
                .as_deref()
                .is_none_or(|w| s.service_name() == Some(w))
        })
        .filter(|s| q.operation.as_deref().is_none_or(|w| s.name == w))
        .filter(|s| {
            q.start
                .as_ref()
                .is_none_or(|w| w.contains(&s.start_time_unix_nano))
        })
        .cloned()
        .collect();
    assert!(!spans.is_empty(), "{:?}: no span can match", case.caption);
    spans
}

/// A named change of a case's query.
type Variant = (String, TraceQuery);

/// The query with one change, under a name for assertion messages.
fn variant(name: &str, q: &TraceQuery, change: impl FnOnce(&mut TraceQuery)) -> Variant {
    let mut q = q.clone();
    change(&mut q);
    (name.to_string(), q)
}

fn min_max(values: impl Iterator<Item = u64> + Clone) -> (u64, u64) {
    (values.clone().min().unwrap(), values.max().unwrap())
}

/// Another service, operation or kind, an absent attribute, or one tag
/// value changed.
fn field_negatives(q: &TraceQuery) -> Vec<Variant> {
    let other = |s: &Option<String>| Some(format!("{}-other", s.as_deref().unwrap_or("op")));
    let mut out = vec![
        variant("another service", q, |q| q.service = other(&q.service)),
        variant("another operation", q, |q| {
            q.operation = other(&q.operation)
        }),
        variant("kind server", q, |q| q.kind = Some(SpanKind::Server)),
        variant("kind client", q, |q| q.kind = Some(SpanKind::Client)),
        variant("an absent attribute required", q, |q| {
            q.attributes
                .push(AttrFilter::Exists("no-such-attribute".into()))
        }),
    ];
    for (i, f) in q.attributes.iter().enumerate() {
        let changed = AttrFilter::Equals(f.key().to_string(), "changed-value".into());
        let name = format!("tag {} changed", f.key());
        out.push(variant(&name, q, |q| q.attributes[i] = changed));
    }
    out
}

/// Windows that hold no span of the service: the case's window a day
/// earlier or later, one ending exactly where the service's first span
/// starts (the end is exclusive), one starting just after its last.
fn window_negatives(q: &TraceQuery, expected: &[Span]) -> Vec<Variant> {
    let w = q.start.clone().expect("every case has a window");
    let own = expected
        .iter()
        .filter(|s| s.service_name() == q.service.as_deref())
        .map(|s| s.start_time_unix_nano);
    let (first, last) = min_max(own);
    vec![
        variant("window a day earlier", q, |q| {
            q.start = Some(w.start - DAY..w.end - DAY)
        }),
        variant("window a day later", q, |q| {
            q.start = Some(w.start + DAY..w.end + DAY)
        }),
        variant("window ending at the first span start", q, |q| {
            q.start = Some(first - HOUR..first)
        }),
        variant("window starting after the last span start", q, |q| {
            q.start = Some(last + 1..last + HOUR)
        }),
    ]
}

/// A minimum just above the longest span that could match, a maximum just
/// below the shortest.
fn duration_negatives(q: &TraceQuery, driving: &[Span]) -> Vec<Variant> {
    let (shortest, longest) = min_max(driving.iter().map(Span::duration_nanos));
    vec![
        variant("duration min above the longest span", q, |q| {
            q.duration_min = Some(longest + 1);
            q.duration_max = None;
        }),
        variant("duration max below the shortest span", q, |q| {
            q.duration_min = None;
            q.duration_max = Some(shortest - 1);
        }),
    ]
}

/// Variants that must find nothing: each changes one field so that no span
/// of the expected traces (nor any other) satisfies it.
fn negatives(case: &Case, expected: &[Span]) -> Vec<Variant> {
    let q = &case.query;
    let driving = driving_spans(case, expected);
    let mut out = field_negatives(q);
    out.extend(window_negatives(q, expected));
    out.extend(duration_negatives(q, &driving));
    out
}

/// Variants that must still find the expected traces: bounds set exactly
/// on the spans' values (the window's start is inclusive, both duration
/// bounds are), the spans' kind, and the tags as typed values.
fn positives(case: &Case, expected: &[Span]) -> Vec<Variant> {
    let q = &case.query;
    let driving = driving_spans(case, expected);
    assert!(
        driving.iter().all(|s| s.kind == SpanKind::Unspecified),
        "{:?}: fixture spans have no kind",
        case.caption
    );
    let (_, start) = min_max(driving.iter().map(|s| s.start_time_unix_nano));
    let (shortest, longest) = min_max(driving.iter().map(Span::duration_nanos));
    vec![
        variant("window starting exactly at the span start", q, |q| {
            q.start = Some(start..start + 1)
        }),
        variant("duration bounds exactly on the spans", q, |q| {
            q.duration_min = Some(shortest);
            q.duration_max = Some(longest);
        }),
        variant("kind unspecified", q, |q| {
            q.kind = Some(SpanKind::Unspecified)
        }),
        variant("typed tags", q, |q| {
            q.attributes = q.attributes.iter().map(typed).collect()
        }),
    ]
}

#[test]
fn find_traces_variants_find_nothing_or_exactly_the_case() {
    let Some(suite) = Suite::find() else { return };
    let cases = suite.cases();
    let written = Written::load(&suite, &cases);
    in_each_state(
        |store| written.write(&suite, store),
        |store, state| {
            for case in &cases {
                let expected = written.expected(case);
                for (variant, q) in negatives(case, &expected) {
                    let what = format!("{state}: case {:?}, {variant}", case.caption);
                    assert_finds_nothing(store, &q, &what);
                }
                for (variant, q) in positives(case, &expected) {
                    let what = format!("{state}: case {:?}, {variant}", case.caption);
                    assert_finds(store, &q, &expected, &what);
                }
            }
        },
    );
}

#[test]
fn rfc3339_times_parse_to_unix_nanos() {
    assert_eq!(rfc3339_nanos("1970-01-01T00:00:00Z"), 0);
    assert_eq!(
        rfc3339_nanos("2017-01-26T16:46:31.639875Z"),
        1_485_449_191_639_875_000
    );
    assert_eq!(
        rfc3339_nanos("2017-01-25T23:56:31.639875Z"),
        1_485_388_591_639_875_000
    );
    assert_eq!(
        rfc3339_nanos("2000-03-01T00:00:00.5Z"),
        951_868_800_500_000_000
    );
    assert_eq!(render(&serde_json::json!(123)), "123");
    assert_eq!(render(&serde_json::json!(72.5)), "72.5");
    assert_eq!(render(&serde_json::json!(true)), "true");
}

// ---- the other span-store tests (example_trace) --------------------------

fn trace_id(n: u128) -> TraceId {
    TraceId(n.to_be_bytes())
}

fn span_id(n: u64) -> SpanId {
    SpanId(n.to_be_bytes())
}

fn op(name: &str, kind: SpanKind) -> Operation {
    Operation {
        service: "example-service-1".into(),
        name: name.into(),
        kind,
    }
}

#[test]
fn services_and_operations_of_example_trace() {
    let Some(suite) = Suite::find() else { return };
    in_each_state(
        |store| suite.append_fixture(store, "example_trace"),
        |store, state| {
            let services = store.services().unwrap();
            assert_eq!(
                services,
                [
                    "example-service-1",
                    "example-service-2",
                    "example-service-3"
                ],
                "{state}: services"
            );
            let all = store.operations("example-service-1", None).unwrap();
            let want = vec![
                op("example-operation-1", SpanKind::Unspecified),
                op("example-operation-3", SpanKind::Server),
                op("example-operation-4", SpanKind::Client),
            ];
            assert_eq!(all, want, "{state}: operations of example-service-1");
            let server = store
                .operations("example-service-1", Some(SpanKind::Server))
                .unwrap();
            assert_eq!(server, want[1..2], "{state}: server operations");
            let internal = store
                .operations("example-service-1", Some(SpanKind::Internal))
                .unwrap();
            assert!(internal.is_empty(), "{state}: internal operations");
            let unknown = store.operations("no-such-service", None).unwrap();
            assert!(
                unknown.is_empty(),
                "{state}: operations of an unknown service"
            );
        },
    );
}

#[test]
fn get_trace_returns_example_trace_and_nothing_for_unknown_ids() {
    let Some(suite) = Suite::find() else { return };
    let want = suite.fixture("example_trace");
    assert_eq!(want.len(), 5);
    in_each_state(
        |store| suite.append_fixture(store, "example_trace"),
        |store, state| {
            let got = store.get_trace(trace_id(0x11)).unwrap();
            assert_eq!(got.len(), 5, "{state}: spans of 0x11");
            assert_same_spans(&got, &want, &format!("{state}: trace 0x11"));
            let unknown = store.get_trace(trace_id(0x01)).unwrap();
            assert!(unknown.is_empty(), "{state}: unknown trace 0x01");
            let both = store.get_traces(&[trace_id(0x11), trace_id(0x01)]).unwrap();
            let lens: Vec<usize> = both.iter().map(Vec::len).collect();
            assert_eq!(lens, [5, 0], "{state}: get_traces");
        },
    );
}

/// `n` copies of span 0x04 of example_trace, copy `i` with span id `id(i)`
/// and start and end moved forward by `i + 1` seconds.
fn copies_of_span_4(suite: &Suite, n: usize, id: impl Fn(usize) -> u64) -> Vec<Span> {
    let example = suite.fixture("example_trace");
    let base = example
        .iter()
        .find(|s| s.span_id == span_id(4))
        .expect("span 0x04 in example_trace");
    (0..n)
        .map(|i| {
            let shift = (i as u64 + 1) * SECOND;
            let mut s = base.clone();
            s.span_id = span_id(id(i));
            s.start_time_unix_nano += shift;
            s.end_time_unix_nano += shift;
            s
        })
        .collect()
}

/// Spans in a canonical order that keeps duplicates.
fn by_id_and_start(spans: &[Span]) -> Vec<Span> {
    let mut v = spans.to_vec();
    v.sort_by_key(|s| (s.span_id, s.start_time_unix_nano));
    v
}

#[test]
fn large_trace_comes_back_whole() {
    let Some(suite) = Suite::find() else { return };
    let spans = copies_of_span_4(&suite, 10_008, |i| i as u64 + 1);
    in_each_state(
        |store| store.append(spans.clone()).unwrap(),
        |store, state| {
            let got = store.get_trace(trace_id(0x11)).unwrap();
            assert_eq!(got.len(), 10_008, "{state}: spans of the large trace");
            let ids: BTreeSet<SpanId> = got.iter().map(|s| s.span_id).collect();
            let want: BTreeSet<SpanId> = (1..=10_008).map(span_id).collect();
            assert_eq!(ids, want, "{state}: span ids");
            assert!(
                by_id_and_start(&got) == spans,
                "{state}: spans differ from those written"
            );
        },
    );
}

#[test]
fn duplicate_span_ids_are_all_kept() {
    let Some(suite) = Suite::find() else { return };
    let reused = |i: usize| i.is_multiple_of(20) && (20..=180).contains(&i);
    let spans = copies_of_span_4(&suite, 200, |i| if reused(i) { 4 } else { i as u64 + 1 });
    assert_eq!(spans.iter().filter(|s| s.span_id == span_id(4)).count(), 10);
    let want = by_id_and_start(&spans);
    in_each_state(
        |store| store.append(spans.clone()).unwrap(),
        |store, state| {
            let got = store.get_trace(trace_id(0x11)).unwrap();
            assert_eq!(got.len(), 200, "{state}: spans with repeated ids");
            let repeated = got.iter().filter(|s| s.span_id == span_id(4)).count();
            assert_eq!(repeated, 10, "{state}: spans with id 0x04");
            assert!(
                by_id_and_start(&got) == want,
                "{state}: spans differ from those written"
            );
        },
    );
}

fn now_nanos() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since.as_nanos()).unwrap()
}

/// A one-span trace of `service`, 1 ms long, with the attribute
/// `rfc0013.cross.service` set to `value`.
fn cross_service_trace(trace: u128, service: &str, start: u64, value: &str) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: span_id(1),
        name: "cross-service-op".into(),
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000_000,
        attributes: vec![KeyValue::new(
            "rfc0013.cross.service",
            AnyValue::String(value.into()),
        )],
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AnyValue::String(service.into()),
            )],
            ..Resource::default()
        }),
        ..Span::default()
    }
}

#[test]
fn find_traces_without_service_name() {
    if Suite::find().is_none() {
        return;
    }
    let now = now_nanos();
    let (a, b) = (
        0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10_u128,
        0x0202_0304_0506_0708_090a_0b0c_0d0e_0f10_u128,
    );
    let spans = vec![
        cross_service_trace(a, "cross-service-a", now, "yes"),
        cross_service_trace(b, "cross-service-b", now, "yes"),
        cross_service_trace(0x0302, "cross-service-c", now, "no"),
        cross_service_trace(0x0402, "cross-service-d", now - 2 * HOUR, "yes"),
    ];
    let q = TraceQuery {
        attributes: vec![AttrFilter::Equals(
            "rfc0013.cross.service".into(),
            "yes".into(),
        )],
        start: Some(now - HOUR..now + HOUR),
        limit: 10,
        ..TraceQuery::default()
    };
    in_each_state(
        |store| store.append(spans.clone()).unwrap(),
        |store, state| {
            let found = find(store, &q, state);
            let ids: BTreeSet<TraceId> = found.iter().map(|s| s.trace_id).collect();
            let want: BTreeSet<TraceId> = [trace_id(a), trace_id(b)].into();
            assert_eq!(ids, want, "{state}: traces without a service name");
            assert_eq!(found.len(), 2, "{state}: a trace came back twice");
        },
    );
}

#[test]
fn trace_summary_counts_the_whole_trace() {
    let Some(suite) = Suite::find() else { return };
    let example = suite.fixture("example_trace");
    let min_start = example
        .iter()
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap();
    let max_end = example.iter().map(|s| s.end_time_unix_nano).max().unwrap();
    let q = TraceQuery {
        start: Some(min_start - 60 * SECOND..max_end + 60 * SECOND),
        limit: 10,
        ..TraceQuery::service("example-service-2")
    };
    in_each_state(
        |store| suite.append_fixture(store, "example_trace"),
        |store, state| {
            let found = find(store, &q, state);
            assert_eq!(found.len(), 1, "{state}: summaries {found:?}");
            let sum = &found[0];
            assert_eq!(sum.trace_id, trace_id(0x11), "{state}: trace id");
            assert_eq!(sum.span_count, 5, "{state}: span count");
            assert_eq!(sum.start_time_unix_nano, min_start, "{state}: start");
            assert_eq!(sum.end_time_unix_nano, max_end, "{state}: end");
            assert!(sum.start_time_unix_nano > 0 && sum.end_time_unix_nano > 0);
            assert_eq!(
                sum.services,
                [
                    "example-service-1",
                    "example-service-2",
                    "example-service-3"
                ],
                "{state}: services"
            );
        },
    );
}
