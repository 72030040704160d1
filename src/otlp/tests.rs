//! Spans covering every field and value type, shared by the JSON and
//! protobuf unit tests, and the conformance fixtures read in both formats.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{from_json, from_json_str, from_proto, to_json, to_json_string, to_proto};
use crate::span::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};

pub(super) fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue::new(key, value)
}

fn s(text: &str) -> AnyValue {
    AnyValue::String(text.into())
}

/// One attribute of every value type, with edge values; only finite doubles,
/// so that JSON can carry them exactly.
pub(super) fn every_value() -> Vec<KeyValue> {
    use AnyValue::*;
    vec![
        kv("empty", Empty),
        kv("str", s("héllo \"quoted\"\n\u{1F600}")),
        kv("str.empty", s("")),
        kv("true", Bool(true)),
        kv("false", Bool(false)),
        kv("int.min", Int(i64::MIN)),
        kv("int.max", Int(i64::MAX)),
        kv("int.zero", Int(0)),
        kv("double", Double(72.5)),
        kv("double.whole", Double(3.0)),
        kv("double.neg-zero", Double(-0.0)),
        kv("double.subnormal", Double(f64::MIN_POSITIVE / 3.0)),
        kv("double.max", Double(f64::MAX)),
        kv("bytes", Bytes(vec![0, 0, 0x30, 0x39])),
        kv("bytes.empty", Bytes(vec![])),
        kv("bytes.all", Bytes((0..=255).collect())),
        kv("array", Array(vec![Int(1), s("x"), Empty, Array(vec![])])),
        kv("array.empty", Array(vec![])),
        kv(
            "kvlist",
            KvList(vec![kv("a", Array(vec![Bool(false)])), kv("", Empty)]),
        ),
        kv("kvlist.empty", KvList(vec![])),
        kv("dup", Int(1)),
        kv("dup", Int(2)),
    ]
}

fn full_resource() -> Resource {
    let mut attributes = vec![kv("service.name", s("checkout"))];
    attributes.extend(every_value());
    Resource {
        attributes,
        dropped_attributes_count: 3,
        schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
    }
}

fn full_scope() -> Scope {
    Scope {
        name: "io.opentelemetry.http".into(),
        version: "1.2.3".into(),
        attributes: every_value(),
        dropped_attributes_count: 4,
        schema_url: "https://example.com/scope-schema".into(),
    }
}

/// A span with every field set to a non-default value.
pub(super) fn full_span() -> Span {
    Span {
        trace_id: TraceId(*b"\x5b\x8e\xff\xf7\x98\x03\x81\x03\xd2\x69\xb6\x33\x81\x3f\xc6\x0c"),
        span_id: SpanId([0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74]),
        parent_span_id: Some(SpanId([0xff; 8])),
        trace_state: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into(),
        flags: 0x301,
        name: "GET /cart".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: 1_544_712_660_000_000_000,
        end_time_unix_nano: u64::MAX,
        attributes: every_value(),
        dropped_attributes_count: 5,
        events: full_events(),
        dropped_events_count: 6,
        links: full_links(),
        dropped_links_count: 7,
        status: Status {
            code: StatusCode::Error,
            message: "boom".into(),
        },
        resource: full_resource().into(),
        scope: full_scope().into(),
    }
}

/// Two events with the same timestamp, as the Jaeger fixtures have; both
/// must survive.
fn full_events() -> Vec<Event> {
    let named = Event {
        time_unix_nano: 1_544_712_660_500_000_000,
        name: "exception".into(),
        attributes: every_value(),
        dropped_attributes_count: 8,
    };
    let bare = Event {
        time_unix_nano: named.time_unix_nano,
        ..Event::default()
    };
    vec![named, bare.clone(), bare]
}

fn full_links() -> Vec<Link> {
    let rich = Link {
        trace_id: TraceId([0xab; 16]),
        span_id: SpanId([0xcd; 8]),
        trace_state: "a=b".into(),
        flags: u32::MAX,
        attributes: every_value(),
        dropped_attributes_count: 9,
    };
    let bare = Link {
        trace_id: TraceId([1; 16]),
        span_id: SpanId([2; 8]),
        ..Link::default()
    };
    vec![rich, bare]
}

/// Spans already in the order the encoders group them (resource, then
/// scope, by first appearance), so a round trip must give them back as is.
pub(super) fn sample_spans() -> Vec<Span> {
    let full = full_span();
    let minimal = Span {
        trace_id: full.trace_id,
        span_id: SpanId([3; 8]),
        status: Status {
            code: StatusCode::Ok,
            message: String::new(),
        },
        resource: full.resource.clone(),
        scope: full.scope.clone(),
        ..Span::default()
    };
    let other_scope = Span {
        span_id: SpanId([4; 8]),
        scope: Default::default(),
        ..minimal.clone()
    };
    let mut spans = vec![full, minimal, other_scope];
    // Default resource and scope, one span of every kind.
    for (i, kind) in (0..=5).filter_map(SpanKind::from_u8).enumerate() {
        spans.push(Span {
            trace_id: TraceId([9; 16]),
            span_id: SpanId([10 + i as u8; 8]),
            kind,
            start_time_unix_nano: i as u64,
            end_time_unix_nano: 0,
            ..Span::default()
        });
    }
    spans
}

// ---- conformance fixtures ------------------------------------------------

const CONFORMANCE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/conformance");

/// The OTLP/JSON fixtures, or `None` (with a note) when the shared folder
/// is not checked out next to the crate.
fn fixtures() -> Option<Vec<PathBuf>> {
    let dir = Path::new(CONFORMANCE);
    if !dir.is_dir() {
        eprintln!("note: {CONFORMANCE} is absent; conformance tests skipped");
        return None;
    }
    let traces = dir.join("jaeger/traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&traces)
        .unwrap_or_else(|e| panic!("{}: {e}", traces.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.push(dir.join("otlp/trace.json"));
    Some(files)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn fixture(name: &str) -> Option<Vec<Span>> {
    let text = read(&Path::new(CONFORMANCE).join(name));
    Some(from_json_str(&text).unwrap_or_else(|e| panic!("{name}: {e}")))
}

/// Spans and event counts per span, walked straight from the raw JSON so
/// that the check does not trust the code under test.
fn raw_event_counts(v: &Value) -> Vec<usize> {
    let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    let mut counts = Vec::new();
    for rs in list(v, "resourceSpans") {
        for ss in list(&rs, "scopeSpans") {
            counts.extend(list(&ss, "spans").iter().map(|s| list(s, "events").len()));
        }
    }
    counts
}

#[test]
fn every_fixture_round_trips_through_json_and_protobuf() {
    let Some(files) = fixtures() else { return };
    assert_eq!(files.len(), 33, "32 Jaeger fixtures and the OTLP example");
    for file in &files {
        let name = file.display();
        let text = read(file);
        let spans = from_json_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Value = serde_json::from_str(&text).unwrap();
        let events: Vec<usize> = spans.iter().map(|s| s.events.len()).collect();
        assert_eq!(
            events,
            raw_event_counts(&raw),
            "{name}: spans or events lost"
        );
        assert_eq!(from_json(&to_json(&spans)).unwrap(), spans, "{name}: JSON");
        let text = to_json_string(&spans);
        assert_eq!(from_json_str(&text).unwrap(), spans, "{name}: JSON text");
        assert_eq!(
            from_proto(&to_proto(&spans)).unwrap(),
            spans,
            "{name}: proto"
        );
    }
}

#[test]
fn otlp_example_is_read_field_by_field() {
    if fixtures().is_none() {
        return;
    }
    let spans = fixture("otlp/trace.json").unwrap();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    // The file spells the ids in upper case.
    assert_eq!(
        span.trace_id.to_string(),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(span.span_id.to_string(), "eee19b7ec3c1b174");
    assert_eq!(span.parent_span_id.unwrap().to_string(), "eee19b7ec3c1b173");
    assert_eq!(span.kind, SpanKind::Server);
    assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
    assert_eq!(span.duration_nanos(), 1_000_000_000);
    assert_eq!(span.service_name(), Some("my.service"));
    assert_eq!(span.scope.name, "my.library");
    assert_eq!(span.scope.version, "1.0.0");
    let scope_attr = kv("my.scope.attribute", s("some scope attribute"));
    assert_eq!(span.scope.attributes, vec![scope_attr]);
    assert_eq!(span.attributes, vec![kv("my.span.attr", s("some value"))]);
    assert_eq!(span.status, Status::default());
}

#[test]
fn link_attributes_keep_their_types() {
    if fixtures().is_none() {
        return;
    }
    let spans = fixture("jaeger/traces/link_attributes_trace.json").unwrap();
    let links = &spans[0].links;
    assert_eq!(links.len(), 3, "two links with equal ids are both kept");
    assert_eq!(links[1].trace_id, links[2].trace_id);
    let value = |key: &str| {
        let found = links[0].attributes.iter().find(|a| a.key == key);
        found.unwrap().value.clone()
    };
    assert_eq!(value("sameplacelinkattribute2"), AnyValue::Int(123));
    assert_eq!(value("sameplacelinkattribute3"), AnyValue::Double(72.5));
    assert_eq!(value("sameplacelinkattribute4"), AnyValue::Bool(true));
    assert_eq!(value("linkblob"), AnyValue::Bytes(vec![0, 0, 0x30, 0x39]));
}

#[test]
fn events_with_equal_timestamps_are_all_kept() {
    if fixtures().is_none() {
        return;
    }
    let spans = fixture("jaeger/traces/example_trace.json").unwrap();
    assert!(spans.len() > 1);
    for span in &spans {
        assert_eq!(span.events.len(), 2, "span {}", span.span_id);
        assert_eq!(span.events[0], span.events[1]);
    }
    let root = fixture("jaeger/traces/opname_maxdur_trace.json").unwrap();
    assert!(root.iter().any(|s| s.parent_span_id.is_some()));
}
