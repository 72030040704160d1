//! End-to-end tests of `spanlog find`, `services` and `operations`: a store
//! of a few hand-made traces is written through the library, then the
//! binary is asked about it as a user would.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use serde_json::Value;
use spanlog::{
    AnyValue, Event, KeyValue, Options, Resource, Span, SpanId, SpanKind, StatusCode, Store,
    TraceId,
};

mod common;
use common::{arg, code, stderr, stdout};

const SEC: u64 = 1_000_000_000;
const MS: u64 = 1_000_000;
const US: u64 = 1_000;
/// 2023-11-14T22:13:20Z.
const T0: u64 = 1_700_000_000 * SEC;

fn spanlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .args(args)
        .output()
        .expect("run the spanlog binary")
}

/// The id of trace `n`; a hex letter first, so the case of the output
/// shows.
fn trace_id(n: u8) -> TraceId {
    let mut id = [0u8; 16];
    id[0] = 0xab;
    id[15] = n;
    TraceId(id)
}

fn hex(n: u8) -> String {
    trace_id(n).to_string()
}

fn resource(service: &str, extra: &[(&str, &str)]) -> Arc<Resource> {
    let mut attributes = vec![KeyValue::new(
        "service.name",
        AnyValue::String(service.into()),
    )];
    for (k, v) in extra {
        attributes.push(KeyValue::new(*k, AnyValue::String((*v).into())));
    }
    Arc::new(Resource {
        attributes,
        ..Resource::default()
    })
}

/// Span `id` of trace `trace`, a child of span `parent` when given.
#[allow(clippy::too_many_arguments)]
fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    service: &str,
    name: &str,
    kind: SpanKind,
    start: u64,
    duration: u64,
) -> Span {
    Span {
        trace_id: trace_id(trace),
        span_id: SpanId([trace, 0, 0, 0, 0, 0, 0, id]),
        parent_span_id: parent.map(|p| SpanId([trace, 0, 0, 0, 0, 0, 0, p])),
        name: name.into(),
        kind,
        start_time_unix_nano: start,
        end_time_unix_nano: start + duration,
        resource: resource(service, &[]),
        ..Span::default()
    }
}

fn with_attr(mut s: Span, key: &str, value: AnyValue) -> Span {
    s.attributes.push(KeyValue::new(key, value));
    s
}

/// Six traces, one every ten seconds from T0, trace n starting at
/// T0 + (n - 1) * 10s:
///
/// 1. frontend `GET /checkout` (server, 500ms, status code 200) calling
///    cart `SELECT carts` (client, 100ms, db.system=postgresql).
/// 2. frontend `GET /checkout` (server, 2s, status code 500) calling
///    payment `charge` (internal, 1.5s, Error) and payment `POST /charge`
///    (client, 20ms).
/// 3. route `/route` (server, 50ms), resource deployment.environment=staging.
/// 4. redis `GET` (client, 800µs) whose parent is not stored.
/// 5. frontend `publish order` (producer, 120ns) and worker `process order`
///    (consumer, 3s).
/// 6. batch `nightly job` (unspecified kind, 2m) with an event carrying
///    retry=true.
fn traces() -> (Vec<Span>, Vec<Span>) {
    let t = |n: u64| T0 + (n - 1) * 10 * SEC;
    let first = vec![
        with_attr(
            span(
                1,
                1,
                None,
                "frontend",
                "GET /checkout",
                SpanKind::Server,
                t(1),
                500 * MS,
            ),
            "http.response.status_code",
            AnyValue::Int(200),
        ),
        with_attr(
            span(
                1,
                2,
                Some(1),
                "cart",
                "SELECT carts",
                SpanKind::Client,
                t(1) + 10 * MS,
                100 * MS,
            ),
            "db.system",
            AnyValue::String("postgresql".into()),
        ),
        with_attr(
            span(
                2,
                1,
                None,
                "frontend",
                "GET /checkout",
                SpanKind::Server,
                t(2),
                2 * SEC,
            ),
            "http.response.status_code",
            AnyValue::Int(500),
        ),
        {
            let mut s = span(
                2,
                2,
                Some(1),
                "payment",
                "charge",
                SpanKind::Internal,
                t(2) + 100 * MS,
                1500 * MS,
            );
            s.status.code = StatusCode::Error;
            s.status.message = "card declined".into();
            with_attr(s, "payment.provider", AnyValue::String("acme".into()))
        },
        span(
            2,
            3,
            Some(2),
            "payment",
            "POST /charge",
            SpanKind::Client,
            t(2) + 200 * MS,
            20 * MS,
        ),
        {
            let mut s = span(
                3,
                1,
                None,
                "route",
                "/route",
                SpanKind::Server,
                t(3),
                50 * MS,
            );
            s.resource = resource("route", &[("deployment.environment", "staging")]);
            s.status.code = StatusCode::Ok;
            s
        },
    ];
    let second = vec![
        span(
            4,
            2,
            Some(1),
            "redis",
            "GET",
            SpanKind::Client,
            t(4),
            800 * US,
        ),
        span(
            5,
            1,
            None,
            "frontend",
            "publish order",
            SpanKind::Producer,
            t(5),
            120,
        ),
        span(
            5,
            2,
            Some(1),
            "worker",
            "process order",
            SpanKind::Consumer,
            t(5) + MS,
            3 * SEC,
        ),
        {
            let mut s = span(
                6,
                1,
                None,
                "batch",
                "nightly job",
                SpanKind::Unspecified,
                t(6),
                120 * SEC,
            );
            s.events = vec![Event {
                time_unix_nano: t(6) + SEC,
                name: "retrying".into(),
                attributes: vec![KeyValue::new("retry", AnyValue::Bool(true))],
                ..Event::default()
            }];
            s
        },
    ];
    (first, second)
}

/// A store with traces 1-3 in a sealed segment and 4-6 in the log of a
/// writer that still has the store open, so every command runs beside a
/// running writer and reads both kinds of file.
fn live_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = traces();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(first).unwrap();
    store.seal_active().unwrap();
    store.append(second).unwrap();
    store.flush().unwrap();
    (dir, store)
}

/// Runs `find` on the store with `--json` and the given arguments; the
/// trace numbers found, in order.
fn find(dir: &Path, extra: &[&str]) -> Vec<u8> {
    let mut args = vec!["find", arg(dir), "--json"];
    args.extend_from_slice(extra);
    let o = spanlog(&args);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stdout(&o)
        .lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).expect("a JSON object per line");
            let id = v["traceId"].as_str().expect("a trace id").to_string();
            (1..=6)
                .find(|n| hex(*n) == id)
                .unwrap_or_else(|| panic!("unknown trace {id}"))
        })
        .collect()
}

fn json_lines(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect()
}

/// A usage error: status 2 and one prefixed message that mentions `says`.
fn assert_usage_error(args: &[&str], says: &str) {
    let o = spanlog(args);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{args:?}: {err}");
    assert!(err.starts_with("spanlog: "), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
}

/// The cells of a table row: text between runs of two or more spaces.
fn cells(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .collect()
}

/// Character column where `needle` starts in `line`.
fn column(line: &str, needle: &str) -> usize {
    let at = line
        .find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
    line[..at].chars().count()
}

#[test]
fn find_lists_every_trace_most_recent_first() {
    let (dir, _writer) = live_store();
    assert_eq!(find(dir.path(), &[]), vec![6, 5, 4, 3, 2, 1]);
}

#[test]
fn find_json_summarises_each_trace() {
    let (dir, _writer) = live_store();
    let o = spanlog(&["find", arg(dir.path()), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), 6);
    let keys: BTreeSet<&str> = lines[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "traceId",
        "rootServiceName",
        "rootSpanName",
        "hasRoot",
        "startTimeUnixNano",
        "endTimeUnixNano",
        "durationNanos",
        "spanCount",
        "services",
        "hasError",
    ]
    .into();
    assert_eq!(keys, expected);
    assert!(
        stdout(&o).starts_with("{\"traceId\":\"ab"),
        "{}",
        stdout(&o)
    );

    let t2 = &lines[4];
    assert_eq!(t2["traceId"], "ab000000000000000000000000000002");
    assert_eq!(t2["rootServiceName"], "frontend");
    assert_eq!(t2["rootSpanName"], "GET /checkout");
    assert_eq!(t2["hasRoot"], true);
    let start = T0 + 10 * SEC;
    assert_eq!(t2["startTimeUnixNano"], start.to_string());
    assert_eq!(t2["endTimeUnixNano"], (start + 2 * SEC).to_string());
    assert_eq!(t2["durationNanos"], "2000000000");
    assert_eq!(t2["spanCount"], 3);
    assert_eq!(t2["services"], serde_json::json!(["frontend", "payment"]));
    assert_eq!(t2["hasError"], true);

    let t5 = &lines[1];
    assert_eq!(t5["spanCount"], 2);
    assert_eq!(t5["durationNanos"], (MS + 3 * SEC).to_string());
    assert_eq!(t5["services"], serde_json::json!(["frontend", "worker"]));
    assert_eq!(t5["hasError"], false);

    let t4 = &lines[2];
    assert_eq!(t4["hasRoot"], false);
    assert_eq!(t4["rootServiceName"], "redis");
    assert_eq!(t4["rootSpanName"], "GET");
    assert_eq!(t4["durationNanos"], "800000");
}

#[test]
fn find_prints_an_aligned_table() {
    let (dir, _writer) = live_store();
    let o = spanlog(&["find", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 7, "a header and a row per trace:\n{text}");
    let header = lines[0];
    for title in [
        "TRACE ID",
        "START",
        "DURATION",
        "SPANS",
        "ERROR",
        "ROOT SERVICE",
        "ROOT SPAN",
        "SERVICES",
    ] {
        assert!(header.contains(title), "{title} missing: {header}");
    }
    // Rows in the order of the JSON output, each starting with its id.
    for (row, n) in lines[1..].iter().zip([6, 5, 4, 3, 2, 1]) {
        assert!(row.starts_with(&hex(n)), "{row}");
        assert_eq!(
            column(row, "2023-11-14T22:"),
            column(header, "START"),
            "{text}"
        );
    }
    let t2 = lines[5];
    assert!(t2.contains("2023-11-14T22:13:30.000Z"), "{t2}");
    for cell in [" 2s ", " 3 ", " yes ", " frontend ", " GET /checkout "] {
        assert!(t2.contains(cell), "{cell:?} missing: {t2}");
    }
    assert!(t2.ends_with("frontend, payment"), "{t2}");
    let t4 = lines[3];
    assert!(t4.contains("GET (no root)"), "{t4}");
    assert!(t4.contains("800µs") && t4.contains(" no "), "{t4}");
    assert!(lines[1].contains("2m00s"), "{}", lines[1]);
    // The services column lines up, whatever the widths before it.
    let services = column(header, "SERVICES");
    let t6 = lines[1];
    assert!(t6.ends_with("  batch"), "{t6}");
    assert_eq!(t6.chars().count() - "batch".len(), services, "{text}");
    assert_eq!(column(t2, "frontend, payment"), services, "{text}");
    assert_eq!(column(lines[4], "route"), column(header, "ROOT SERVICE"));

    let o = spanlog(&["find", arg(dir.path()), "--service", "nobody"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "no matching traces\n");
}

#[test]
fn find_filters_by_service_operation_and_kind() {
    let (dir, _writer) = live_store();
    let d = dir.path();
    assert_eq!(find(d, &["--service", "payment"]), vec![2]);
    assert_eq!(find(d, &["--service", "frontend"]), vec![5, 2, 1]);
    assert_eq!(find(d, &["--service", "nobody"]), Vec::<u8>::new());
    assert_eq!(find(d, &["--service", "Frontend"]), Vec::<u8>::new());
    assert_eq!(find(d, &["--operation", "GET /checkout"]), vec![2, 1]);
    assert_eq!(find(d, &["--operation", "GET"]), vec![4]);
    assert_eq!(find(d, &["--operation", "GET /nope"]), Vec::<u8>::new());
    assert_eq!(
        find(d, &["--service", "cart", "--operation", "GET /checkout"]),
        Vec::<u8>::new()
    );
    assert_eq!(find(d, &["--kind", "client"]), vec![4, 2, 1]);
    assert_eq!(find(d, &["--kind", "CLIENT"]), vec![4, 2, 1]);
    assert_eq!(find(d, &["--kind", "consumer"]), vec![5]);
    assert_eq!(find(d, &["--kind", "Producer"]), vec![5]);
    assert_eq!(find(d, &["--kind", "unspecified"]), vec![6]);
    assert_eq!(find(d, &["--kind", "internal"]), vec![2]);
    assert_eq!(find(d, &["--kind", "server"]), vec![3, 2, 1]);
    assert_eq!(
        find(d, &["--kind", "server", "--service", "payment"]),
        Vec::<u8>::new()
    );
    assert_eq!(
        find(d, &["--kind", "client", "--service", "payment"]),
        vec![2]
    );
}

#[test]
fn find_filters_by_attributes_anywhere_on_a_span() {
    let (dir, _writer) = live_store();
    let d = dir.path();
    assert_eq!(
        find(d, &["--attr", "http.response.status_code=200"]),
        vec![1]
    );
    assert_eq!(
        find(d, &["--attr", "http.response.status_code=500"]),
        vec![2]
    );
    assert_eq!(
        find(d, &["--attr", "http.response.status_code=404"]),
        Vec::<u8>::new()
    );
    assert_eq!(
        find(d, &["--attr", "http.response.status_code"]),
        vec![2, 1]
    );
    assert_eq!(find(d, &["--attr", "db.system=postgresql"]), vec![1]);
    assert_eq!(find(d, &["--attr", "db.system=mysql"]), Vec::<u8>::new());
    assert_eq!(find(d, &["--attr", "no.such.key"]), Vec::<u8>::new());
    // A resource attribute, and one of an event.
    assert_eq!(
        find(d, &["--attr", "deployment.environment=staging"]),
        vec![3]
    );
    assert_eq!(
        find(d, &["--attr", "deployment.environment=prod"]),
        Vec::<u8>::new()
    );
    assert_eq!(find(d, &["--attr", "retry=true"]), vec![6]);
    assert_eq!(find(d, &["--attr", "retry=false"]), Vec::<u8>::new());
    assert_eq!(find(d, &["--attr", "service.name=redis"]), vec![4]);
    // Every condition must hold, on one span unless --trace-level.
    assert_eq!(
        find(
            d,
            &[
                "--attr",
                "payment.provider=acme",
                "--attr",
                "http.response.status_code"
            ]
        ),
        Vec::<u8>::new()
    );
    assert_eq!(
        find(
            d,
            &[
                "--attr",
                "payment.provider=acme",
                "--attr",
                "http.response.status_code",
                "--trace-level"
            ]
        ),
        vec![2]
    );
    assert_eq!(
        find(
            d,
            &[
                "--attr",
                "payment.provider=acme",
                "--attr",
                "db.system",
                "--trace-level"
            ]
        ),
        Vec::<u8>::new()
    );
}

#[test]
fn find_trace_level_lets_different_spans_meet_the_conditions() {
    let (dir, _writer) = live_store();
    let d = dir.path();
    let both = ["--service", "cart", "--operation", "GET /checkout"];
    assert_eq!(find(d, &both), Vec::<u8>::new());
    assert_eq!(find(d, &[&both[..], &["--trace-level"]].concat()), vec![1]);
    let errors = ["--service", "frontend", "--errors"];
    assert_eq!(find(d, &errors), Vec::<u8>::new());
    assert_eq!(
        find(d, &[&errors[..], &["--trace-level"]].concat()),
        vec![2]
    );
}

#[test]
fn find_filters_by_start_window() {
    let (dir, _writer) = live_store();
    let d = dir.path();
    let at = |secs: u64| (T0 + secs * SEC).to_string();
    // --start inclusive, --end exclusive.
    assert_eq!(find(d, &["--start", &at(10), "--end", &at(30)]), vec![3, 2]);
    assert_eq!(find(d, &["--start", &at(10), "--end", &at(20)]), vec![2]);
    assert_eq!(find(d, &["--start", &at(40)]), vec![6, 5]);
    assert_eq!(find(d, &["--end", &at(10)]), vec![1]);
    assert_eq!(find(d, &["--end", &at(0)]), Vec::<u8>::new());
    assert_eq!(find(d, &["--start", &at(51)]), Vec::<u8>::new());
    // A span starting inside the window brings its whole trace: trace 1's
    // child starts 10ms after its root.
    assert_eq!(
        find(
            d,
            &["--start", &(T0 + 10 * MS).to_string(), "--end", &at(1)]
        ),
        vec![1]
    );
    // The same windows in RFC 3339, in UTC and with offsets.
    let rfc = [
        "--start",
        "2023-11-14T22:13:30Z",
        "--end",
        "2023-11-14T22:13:50Z",
    ];
    assert_eq!(find(d, &rfc), vec![3, 2]);
    let offsets = [
        "--start",
        "2023-11-15T00:13:30+02:00",
        "--end",
        "2023-11-14T17:13:50.000-05:00",
    ];
    assert_eq!(find(d, &offsets), vec![3, 2]);
    assert_eq!(
        find(d, &["--start", "2023-11-14T22:13:50.000000001Z"]),
        vec![6, 5]
    );
    assert_eq!(
        find(
            d,
            &[
                "--start",
                "2023-11-14T22:13:49.999999999Z",
                "--end",
                "2023-11-14T22:13:50.000000001Z"
            ]
        ),
        vec![4]
    );
    assert_eq!(
        find(d, &["--end", "2023-11-14T22:13:20.010000000Z"]),
        vec![1]
    );
}

#[test]
fn find_filters_by_duration() {
    let (dir, _writer) = live_store();
    let d = dir.path();
    // Both bounds are inclusive.
    assert_eq!(find(d, &["--min-duration", "1.5s"]), vec![6, 5, 2]);
    assert_eq!(
        find(d, &["--min-duration", "2s", "--max-duration", "2s"]),
        vec![2]
    );
    assert_eq!(
        find(d, &["--min-duration", "1500ms", "--max-duration", "1.5s"]),
        vec![2]
    );
    assert_eq!(find(d, &["--min-duration", "2m"]), vec![6]);
    assert_eq!(find(d, &["--min-duration", "2m1ns"]), Vec::<u8>::new());
    assert_eq!(find(d, &["--min-duration", "1h"]), Vec::<u8>::new());
    assert_eq!(find(d, &["--max-duration", "800us"]), vec![5, 4]);
    assert_eq!(find(d, &["--max-duration", "799us"]), vec![5]);
    assert_eq!(find(d, &["--max-duration", "120ns"]), vec![5]);
    assert_eq!(find(d, &["--max-duration", "120"]), vec![5]);
    assert_eq!(find(d, &["--max-duration", "119"]), Vec::<u8>::new());
    assert_eq!(
        find(d, &["--min-duration", "50ms", "--max-duration", "100ms"]),
        vec![3, 1]
    );
    // The duration is the matching span's, not the trace's: trace 5 lasts
    // over 3s but its producer span 120ns.
    assert_eq!(
        find(d, &["--service", "frontend", "--max-duration", "1ms"]),
        vec![5]
    );
}

#[test]
fn find_errors_only_keeps_failed_spans() {
    let (dir, _writer) = live_store();
    let d = dir.path();
    assert_eq!(find(d, &["--errors"]), vec![2]);
    assert_eq!(find(d, &["--errors", "--service", "payment"]), vec![2]);
    assert_eq!(
        find(d, &["--errors", "--operation", "POST /charge"]),
        Vec::<u8>::new()
    );
    assert_eq!(
        find(d, &["--errors", "--service", "route"]),
        Vec::<u8>::new()
    );
}

#[test]
fn find_limit_keeps_the_most_recent() {
    let (dir, _writer) = live_store();
    let d = dir.path();
    assert_eq!(find(d, &["--limit", "2"]), vec![6, 5]);
    assert_eq!(find(d, &["--limit", "1"]), vec![6]);
    assert_eq!(find(d, &["--limit", "6"]), vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(find(d, &["--limit", "1000"]), vec![6, 5, 4, 3, 2, 1]);
    assert_eq!(
        find(d, &["--service", "frontend", "--limit", "2"]),
        vec![5, 2]
    );

    let o = spanlog(&["find", arg(d), "--limit", "2"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].starts_with(&hex(6)) && lines[2].starts_with(&hex(5)));
    assert!(lines[3].contains("--limit"), "{text}");
    // No note when everything fits.
    let o = spanlog(&["find", arg(d), "--limit", "7"]);
    assert!(!stdout(&o).contains("--limit"), "{}", stdout(&o));
}

#[test]
fn find_reads_the_same_from_a_closed_store() {
    let (dir, writer) = live_store();
    let live = spanlog(&["find", arg(dir.path()), "--json"]);
    writer.close().unwrap();
    let closed = spanlog(&["find", arg(dir.path()), "--json"]);
    assert_eq!(code(&closed), 0, "{}", stderr(&closed));
    assert_eq!(stdout(&live), stdout(&closed));
    assert_eq!(json_lines(&closed).len(), 6);
}

#[test]
fn services_lists_every_service() {
    let (dir, _writer) = live_store();
    let o = spanlog(&["services", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let expected = [
        "batch", "cart", "frontend", "payment", "redis", "route", "worker",
    ];
    assert_eq!(stdout(&o), expected.join("\n") + "\n");

    let o = spanlog(&["services", arg(dir.path()), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let lines = json_lines(&o);
    assert_eq!(lines.len(), expected.len());
    for (line, service) in lines.iter().zip(expected) {
        assert_eq!(*line, serde_json::json!({ "service": service }));
    }
}

#[test]
fn services_of_an_empty_store_prints_nothing() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path(), Options::default())
        .unwrap()
        .close()
        .unwrap();
    for extra in [&[][..], &["--json"]] {
        let mut args = vec!["services", arg(dir.path())];
        args.extend_from_slice(extra);
        let o = spanlog(&args);
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert_eq!(stdout(&o), "");
    }
}

#[test]
fn operations_lists_names_and_kinds_of_one_service() {
    let (dir, _writer) = live_store();
    let d = arg(dir.path());
    let o = spanlog(&["operations", d, "payment"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(
        lines[0].starts_with("NAME") && lines[0].ends_with("KIND"),
        "{text}"
    );
    assert_eq!(cells(lines[1]), vec!["POST /charge", "client"]);
    assert_eq!(cells(lines[2]), vec!["charge", "internal"]);
    assert_eq!(column(lines[1], "client"), column(lines[0], "KIND"));
    assert_eq!(column(lines[2], "internal"), column(lines[0], "KIND"));

    let o = spanlog(&["operations", d, "payment", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        json_lines(&o),
        vec![
            serde_json::json!({"name": "POST /charge", "spanKind": "client"}),
            serde_json::json!({"name": "charge", "spanKind": "internal"}),
        ]
    );

    let o = spanlog(&["operations", d, "frontend", "--json"]);
    assert_eq!(
        json_lines(&o),
        vec![
            serde_json::json!({"name": "GET /checkout", "spanKind": "server"}),
            serde_json::json!({"name": "publish order", "spanKind": "producer"}),
        ]
    );
    // The unspecified kind is an empty string in JSON, a word in the table.
    let o = spanlog(&["operations", d, "batch", "--json"]);
    assert_eq!(
        json_lines(&o),
        vec![serde_json::json!({"name": "nightly job", "spanKind": ""})]
    );
    let o = spanlog(&["operations", d, "batch"]);
    assert!(
        stdout(&o).lines().nth(1).unwrap().ends_with("unspecified"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn operations_filters_by_kind() {
    let (dir, _writer) = live_store();
    let d = arg(dir.path());
    let names = |args: &[&str]| -> Vec<String> {
        let o = spanlog(args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        json_lines(&o)
            .iter()
            .map(|v| v["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&["operations", d, "payment", "--kind", "client", "--json"]),
        vec!["POST /charge"]
    );
    assert_eq!(
        names(&["operations", d, "payment", "--kind", "INTERNAL", "--json"]),
        vec!["charge"]
    );
    assert_eq!(
        names(&["operations", d, "payment", "--kind", "server", "--json"]),
        Vec::<String>::new()
    );
    assert_eq!(
        names(&["operations", d, "frontend", "--kind", "producer", "--json"]),
        vec!["publish order"]
    );
    assert_eq!(
        names(&["operations", d, "batch", "--kind", "unspecified", "--json"]),
        vec!["nightly job"]
    );
    assert_eq!(
        names(&["operations", d, "nobody", "--json"]),
        Vec::<String>::new()
    );

    let o = spanlog(&["operations", d, "nobody"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).starts_with("no operations"), "{}", stdout(&o));
}

#[test]
fn bad_arguments_are_usage_errors() {
    let (dir, _writer) = live_store();
    let d = arg(dir.path());
    for (args, says) in [
        (
            vec!["find", d, "--start", "2023-13-01T00:00:00Z"],
            "month 13",
        ),
        (vec!["find", d, "--start", "yesterday"], "RFC 3339"),
        (vec!["find", d, "--end", "2023-11-14T22:13:20"], "offset"),
        (vec!["find", d, "--end", "2023-11-14"], "--end"),
        (
            vec!["find", d, "--start", "1969-12-31T23:59:59Z"],
            "before 1970",
        ),
        (
            vec!["find", d, "--start", "99999999999999999999"],
            "too large",
        ),
        (vec!["find", d, "--min-duration", "5sec"], "unknown unit"),
        (vec!["find", d, "--max-duration", "1.5"], "no unit"),
        (vec!["find", d, "--max-duration", "fast"], "--max-duration"),
        (vec!["find", d, "--min-duration", "-1s"], "negative"),
        (vec!["find", d, "--start", "-5"], "four-digit year"),
        (vec!["find", d, "--kind", "bogus"], "possible values"),
        (
            vec!["operations", d, "payment", "--kind", "bogus"],
            "possible values",
        ),
        (vec!["find", d, "--limit", "0"], "at least 1"),
        (vec!["find", d, "--limit", "-3"], "at least 1"),
        (vec!["find", d, "--limit", "--json"], "--limit"),
        (vec!["find", d, "--limit", "many"], "--limit"),
        (vec!["find", d, "--attr", "=value"], "empty"),
        (
            vec![
                "find",
                d,
                "--start",
                "2023-11-14T22:13:30Z",
                "--end",
                "2023-11-14T22:13:30Z",
            ],
            "--end",
        ),
        (
            vec!["find", d, "--min-duration", "2s", "--max-duration", "1s"],
            "--min-duration",
        ),
        (vec!["find", d, "--bogus"], "--bogus"),
        (vec!["find"], "STORE"),
        (vec!["operations", d], "SERVICE"),
        (vec!["services"], "STORE"),
        (
            vec!["find", "/nonexistent/spanlog/store"],
            "/nonexistent/spanlog/store",
        ),
        (
            vec!["services", "/nonexistent/spanlog/store"],
            "/nonexistent/spanlog/store",
        ),
        (
            vec!["operations", "/nonexistent/spanlog/store", "x"],
            "/nonexistent/spanlog/store",
        ),
    ] {
        assert_usage_error(&args, says);
    }
}
