//! Proves the store is lossless: any span — every field, nested values,
//! empty and huge strings, unicode, NaN bit patterns — reads back equal,
//! field for field, after append, flush, reopen and read (by trace and by
//! scan), whether it was read from the buffer, the active segment or a
//! sealed one.

use proptest::collection::vec;
use proptest::prelude::*;
use spanlog::{
    AnyValue, Event, KeyValue, Link, Options, Resource, Scope, Span, SpanId, SpanKind, Status,
    StatusCode, Store, TraceId,
};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z.]{1,12}",
        "\\PC{0,40}",
        (0usize..3).prop_map(|i| ["GET", "http.route", "service.name"][i].to_string()),
        (1usize..100_000).prop_map(|n| "é".repeat(n / 2)),
    ]
}

fn scalar() -> impl Strategy<Value = AnyValue> {
    prop_oneof![
        Just(AnyValue::Empty),
        text().prop_map(AnyValue::String),
        any::<bool>().prop_map(AnyValue::Bool),
        any::<i64>().prop_map(AnyValue::Int),
        // Raw bit patterns: NaNs with payloads, infinities, negative zero.
        any::<u64>().prop_map(|b| AnyValue::Double(f64::from_bits(b))),
        vec(any::<u8>(), 0..64).prop_map(AnyValue::Bytes),
    ]
}

fn value() -> impl Strategy<Value = AnyValue> {
    scalar().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(AnyValue::Array),
            vec((text(), inner), 0..6).prop_map(|kvs| AnyValue::KvList(
                kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect()
            )),
        ]
    })
}

fn attrs() -> impl Strategy<Value = Vec<KeyValue>> {
    vec((text(), value()), 0..6)
        .prop_map(|kvs| kvs.into_iter().map(|(k, v)| KeyValue::new(k, v)).collect())
}

fn nonzero<const N: usize>() -> impl Strategy<Value = [u8; N]> {
    any::<[u8; N]>().prop_map(|mut a| {
        a[N - 1] |= 1;
        a
    })
}

fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), text(), attrs(), any::<u32>()).prop_map(|(t, name, attributes, d)| Event {
        time_unix_nano: t,
        name,
        attributes,
        dropped_attributes_count: d,
    })
}

fn link() -> impl Strategy<Value = Link> {
    (
        any::<[u8; 16]>(),
        any::<[u8; 8]>(),
        text(),
        any::<u32>(),
        attrs(),
        any::<u32>(),
    )
        .prop_map(|(t, s, trace_state, flags, attributes, d)| Link {
            trace_id: TraceId(t),
            span_id: SpanId(s),
            trace_state,
            flags,
            attributes,
            dropped_attributes_count: d,
        })
}

fn resource() -> impl Strategy<Value = Resource> {
    (attrs(), any::<u32>(), text()).prop_map(|(attributes, d, schema_url)| Resource {
        attributes,
        dropped_attributes_count: d,
        schema_url,
    })
}

fn scope() -> impl Strategy<Value = Scope> {
    (text(), text(), attrs(), any::<u32>(), text()).prop_map(
        |(name, version, attributes, d, schema_url)| Scope {
            name,
            version,
            attributes,
            dropped_attributes_count: d,
            schema_url,
        },
    )
}

prop_compose! {
    fn span()(
        trace in nonzero::<16>(), id in nonzero::<8>(), parent in proptest::option::of(any::<[u8; 8]>()),
        trace_state in text(), flags in any::<u32>(), name in text(), kind in 0u8..6,
        start in any::<u64>(), len in any::<u64>(),
        attributes in attrs(), da in any::<u32>(), events in vec(event(), 0..4), de in any::<u32>(),
        links in vec(link(), 0..3), dl in any::<u32>(), code in 0u8..3, message in text(),
        resource in resource(), scope in scope(),
    ) -> Span {
        Span {
            trace_id: TraceId(trace),
            span_id: SpanId(id),
            parent_span_id: parent.map(SpanId),
            trace_state, flags, name,
            kind: SpanKind::from_u8(kind).unwrap(),
            start_time_unix_nano: start,
            end_time_unix_nano: start.saturating_add(len),
            attributes,
            dropped_attributes_count: da,
            events,
            dropped_events_count: de,
            links,
            dropped_links_count: dl,
            status: Status { code: StatusCode::from_u8(code).unwrap(), message },
            resource: resource.into(), scope: scope.into(),
        }
    }
}

/// Spans, plus some that share a trace id and a resource with their
/// neighbours, as real batches do.
fn batch() -> impl Strategy<Value = Vec<Span>> {
    vec(span(), 1..12).prop_map(|mut v| {
        for i in 1..v.len() {
            if i % 2 == 0 {
                v[i].trace_id = v[i - 1].trace_id;
                v[i].resource = v[i - 1].resource.clone();
                v[i].parent_span_id = Some(v[i - 1].span_id);
            }
        }
        v
    })
}

fn by_key(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by(|a, b| {
        (a.trace_id, a.start_time_unix_nano, a.span_id).cmp(&(
            b.trace_id,
            b.start_time_unix_nano,
            b.span_id,
        ))
    });
    v
}

fn read_back(store: &Store, written: &[Span]) -> Vec<Span> {
    let mut traces: Vec<TraceId> = written.iter().map(|s| s.trace_id).collect();
    traces.sort();
    traces.dedup();
    let mut out = Vec::new();
    for t in traces {
        out.extend(store.get_trace(t).unwrap());
    }
    by_key(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_span_reads_back_equal(batches in vec(batch(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options { block_target_bytes: 4096, segment_max_bytes: 32 << 10, ..Options::default() };
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        let mut written = Vec::new();
        for b in &batches {
            store.append(b.clone()).unwrap();
            written.extend(b.iter().cloned());
        }
        let want = by_key(written);
        // Before flush: served from the buffer and the active segment.
        prop_assert_eq!(&read_back(&store, &want), &want);
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path(), opts).unwrap();
        prop_assert_eq!(&read_back(&store, &want), &want);
        let scanned: Vec<Span> = store.scan(0..u64::MAX).unwrap().map(|r| r.unwrap()).collect();
        let max_start: Vec<Span> = want.iter().filter(|s| s.start_time_unix_nano == u64::MAX).cloned().collect();
        let mut scanned = by_key(scanned);
        scanned.extend(max_start);
        prop_assert_eq!(by_key(scanned), want);
    }
}
