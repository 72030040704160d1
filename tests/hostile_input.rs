//! Hostile and unusual spans through the library's API.
//!
//! Each test writes spans at the edges of what the engine accepts (empty
//! strings everywhere, values at and just past the configured size, depth
//! and attribute limits, every Unicode plane, NUL bytes, timestamps 0 and
//! `u64::MAX`, all-zero ids, duplicate span ids, exact duplicates, a trace
//! of a million spans) and checks two things:
//!
//! * a span that is refused gives `Error::InvalidInput` naming the reason,
//!   and nothing of its batch is stored;
//! * every span that is accepted reads back equal, field for field, by
//!   `get_trace` and by `scan`: in memory, after a flush (also through a
//!   read-only open reading the log), after sealing, after close and
//!   reopen, and through a read-only open of the sealed store. Searches
//!   (`find_traces`, `services`, `operations`) agree with the reference
//!   search over the accepted spans.
//!
//! The million-span trace runs in a child process (this test binary,
//! re-executed) so that its peak resident memory (`VmHWM`) is its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use spanlog::query::find_in_spans;
use spanlog::{
    AnyValue, AttrFilter, Error, Event, KeyValue, Link, MatchMode, Options, Resource, Scope, Span,
    SpanId, SpanKind, Status, StatusCode, Store, TraceId, TraceQuery,
};

/// A start time in 2023, so ordinary spans sit where real ones do.
const T0: u64 = 1_700_000_000_000_000_000;

fn tid(n: u64) -> TraceId {
    let mut b = [0u8; 16];
    b[0] = 0xa5;
    b[8..].copy_from_slice(&n.to_be_bytes());
    TraceId(b)
}

fn sid(n: u64) -> SpanId {
    assert_ne!(n, 0, "span ids of the tests are never zero");
    SpanId(n.to_be_bytes())
}

fn resource(service: &str) -> Arc<Resource> {
    Arc::new(Resource {
        attributes: vec![KeyValue::new(
            "service.name",
            AnyValue::String(service.into()),
        )],
        ..Resource::default()
    })
}

fn span(trace: u64, id: u64, start: u64) -> Span {
    Span {
        trace_id: tid(trace),
        span_id: sid(id),
        name: "op".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: start,
        end_time_unix_nano: start + 1_000,
        resource: resource("hostile"),
        ..Span::default()
    }
}

/// A total order for comparing multisets of spans: the cheap fields first,
/// the whole rendering only for ties.
fn cmp_spans(a: &Span, b: &Span) -> std::cmp::Ordering {
    (
        a.trace_id,
        a.start_time_unix_nano,
        a.span_id,
        a.end_time_unix_nano,
    )
        .cmp(&(
            b.trace_id,
            b.start_time_unix_nano,
            b.span_id,
            b.end_time_unix_nano,
        ))
        .then_with(|| a.name.cmp(&b.name))
        .then_with(|| format!("{a:?}").cmp(&format!("{b:?}")))
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by(cmp_spans);
    v
}

/// Equal as multisets; on failure, says where without printing megabytes.
fn assert_same(got: Vec<Span>, want: &[Span], what: &str) {
    let got = sorted(got);
    let want = sorted(want.to_vec());
    assert_eq!(got.len(), want.len(), "{what}: span count");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if g != w {
            let show = |s: &Span| {
                let d = format!("{s:?}");
                d.chars().take(2_000).collect::<String>()
            };
            panic!(
                "{what}: span {i} differs\n got: {}\nwant: {}",
                show(g),
                show(w)
            );
        }
    }
}

fn scan_all(store: &Store, range: std::ops::Range<u64>) -> Vec<Span> {
    store
        .scan(range)
        .unwrap()
        .collect::<spanlog::Result<Vec<Span>>>()
        .unwrap()
}

/// The queries checked against the reference search: every service, and
/// one query without a service (the decoding path).
fn queries(want: &[Span]) -> Vec<TraceQuery> {
    let services: BTreeSet<&str> = want.iter().filter_map(|s| s.service_name()).collect();
    let mut out = vec![TraceQuery {
        limit: 1_000,
        ..TraceQuery::default()
    }];
    out.extend(services.into_iter().map(|s| TraceQuery {
        limit: 1_000,
        ..TraceQuery::service(s)
    }));
    out
}

/// Everything the store serves equals `want`: by trace, by scan, and the
/// searches and catalog agree with the reference over `want`.
fn assert_holds(store: &Store, want: &[Span], what: &str) {
    let traces: BTreeSet<TraceId> = want.iter().map(|s| s.trace_id).collect();
    let mut by_trace = Vec::new();
    for t in &traces {
        let got = store.get_trace(*t).unwrap();
        assert!(
            got.windows(2)
                .all(|w| w[0].start_time_unix_nano <= w[1].start_time_unix_nano),
            "{what}: get_trace orders by start time"
        );
        by_trace.extend(got);
    }
    assert_same(by_trace, want, &format!("{what}, get_trace"));

    // A scan's range excludes its end, so a span starting at u64::MAX can
    // be found by trace only.
    let scannable: Vec<Span> = want
        .iter()
        .filter(|s| s.start_time_unix_nano < u64::MAX)
        .cloned()
        .collect();
    assert_same(
        scan_all(store, 0..u64::MAX),
        &scannable,
        &format!("{what}, scan"),
    );

    for q in queries(want) {
        let got = store.find_traces(&q).unwrap();
        let reference = find_in_spans(want, &q).unwrap();
        assert_eq!(got, reference, "{what}: find_traces({q:?})");
    }
    let services: BTreeSet<String> = want
        .iter()
        .map(|s| s.service_name().unwrap_or("").to_string())
        .collect();
    let got: BTreeSet<String> = store.services().unwrap().into_iter().collect();
    assert_eq!(got, services, "{what}: services");
    for service in &services {
        let want_ops: BTreeSet<(String, SpanKind)> = want
            .iter()
            .filter(|s| s.service_name().unwrap_or("") == service)
            .map(|s| (s.name.clone(), s.kind))
            .collect();
        let got_ops: BTreeSet<(String, SpanKind)> = store
            .operations(service, None)
            .unwrap()
            .into_iter()
            .map(|op| (op.name, op.kind))
            .collect();
        assert_eq!(got_ops, want_ops, "{what}: operations of {service:?}");
    }
}

/// A store being written, with the spans it accepted so far.
struct Harness {
    dir: tempfile::TempDir,
    opts: Options,
    store: Store,
    accepted: Vec<Span>,
}

impl Harness {
    fn new(opts: Options) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), opts.clone()).unwrap();
        Harness {
            dir,
            opts,
            store,
            accepted: Vec::new(),
        }
    }

    fn accept(&mut self, batch: Vec<Span>) {
        if let Err(e) = self.store.append(batch.clone()) {
            panic!("refused: {e}");
        }
        self.accepted.extend(batch);
    }

    /// The batch is refused with `InvalidInput` whose message names the
    /// refused span's place in the batch and contains `says`; nothing of
    /// the batch is stored.
    fn refuse(&self, batch: Vec<Span>, bad_index: usize, says: &str) {
        let spans_before = self.store.stats().unwrap().spans;
        let traces: BTreeSet<TraceId> = batch.iter().map(|s| s.trace_id).collect();
        let before: BTreeMap<TraceId, usize> = traces
            .iter()
            .map(|t| (*t, self.store.get_trace(*t).unwrap().len()))
            .collect();
        match self.store.append(batch) {
            Err(Error::InvalidInput(msg)) => {
                assert!(msg.contains(says), "{msg:?} should say {says:?}");
                assert!(
                    msg.contains(&format!("span {bad_index} of the batch")),
                    "{msg:?} should name span {bad_index}"
                );
            }
            other => panic!("expected InvalidInput saying {says:?}, got {other:?}"),
        }
        assert_eq!(self.store.stats().unwrap().spans, spans_before);
        for (t, n) in before {
            assert_eq!(self.store.get_trace(t).unwrap().len(), n, "trace {t}");
        }
    }

    /// Reads everything back in every state the spans can be in.
    fn check_lifecycle(self) -> tempfile::TempDir {
        let Harness {
            dir,
            opts,
            store,
            accepted,
        } = self;
        assert_holds(&store, &accepted, "in memory");
        store.flush().unwrap();
        assert_holds(&store, &accepted, "flushed to the log");
        {
            let ro = Store::open(dir.path(), Options::read_only()).unwrap();
            assert_holds(&ro, &accepted, "the log, read by a read-only open");
        }
        store.seal_active().unwrap();
        assert_holds(&store, &accepted, "sealed");
        store.close().unwrap();
        let store = Store::open(dir.path(), opts).unwrap();
        assert_holds(&store, &accepted, "reopened");
        store.close().unwrap();
        let ro = Store::open(dir.path(), Options::read_only()).unwrap();
        assert_holds(&ro, &accepted, "read-only after reopen");
        let report = spanlog::verify::verify_path(dir.path()).unwrap();
        assert!(report.is_clean(), "{:?}", report.problems);
        dir
    }
}

#[test]
fn empty_strings_everywhere_read_back_equal() {
    let mut h = Harness::new(Options::default());
    let empty_kv = || {
        vec![
            KeyValue::new("", AnyValue::String(String::new())),
            KeyValue::new("", AnyValue::Empty),
            KeyValue::new("", AnyValue::Bytes(Vec::new())),
            KeyValue::new("", AnyValue::Array(Vec::new())),
            KeyValue::new("", AnyValue::KvList(Vec::new())),
            KeyValue::new("", AnyValue::KvList(vec![KeyValue::default()])),
        ]
    };
    let bare = Span {
        trace_id: tid(1),
        span_id: sid(1),
        ..Span::default()
    };
    let full = Span {
        trace_id: tid(1),
        span_id: sid(2),
        parent_span_id: Some(sid(1)),
        trace_state: String::new(),
        name: String::new(),
        attributes: empty_kv(),
        events: vec![Event {
            attributes: empty_kv(),
            ..Event::default()
        }],
        links: vec![Link {
            attributes: empty_kv(),
            ..Link::default()
        }],
        status: Status {
            code: StatusCode::Error,
            message: String::new(),
        },
        resource: Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AnyValue::String(String::new()),
            )],
            ..Resource::default()
        }),
        scope: Arc::new(Scope {
            attributes: empty_kv(),
            ..Scope::default()
        }),
        ..Span::default()
    };
    // A resource whose only attribute has an empty key: no service.
    let keyless = Span {
        trace_id: tid(2),
        span_id: sid(3),
        resource: Arc::new(Resource {
            attributes: empty_kv(),
            ..Resource::default()
        }),
        ..Span::default()
    };
    h.accept(vec![bare, full]);
    h.accept(vec![keyless]);
    h.check_lifecycle();
}

/// The span with one string attribute whose value makes the span's
/// estimated encoded size exactly `size`.
fn span_of_size(trace: u64, id: u64, size: usize) -> Span {
    let mut s = span(trace, id, T0);
    s.attributes = vec![KeyValue::new("blob", AnyValue::String(String::new()))];
    let base = s.encoded_size_hint();
    assert!(size >= base);
    // Multi-byte characters, padded with ASCII to the exact byte count.
    let mut text = "\u{1f980}é".repeat((size - base) / 6);
    text.push_str(&"x".repeat(size - base - text.len()));
    s.attributes[0].value = AnyValue::String(text);
    assert_eq!(s.encoded_size_hint(), size);
    s
}

#[test]
fn a_value_at_max_span_bytes_is_kept_and_one_byte_more_is_refused() {
    for limit in [Options::default().max_span_bytes, 64 << 10] {
        let mut h = Harness::new(Options {
            max_span_bytes: limit,
            ..Options::default()
        });
        h.accept(vec![span(1, 1, T0), span_of_size(1, 2, limit)]);
        h.refuse(
            vec![span(2, 1, T0), span_of_size(2, 2, limit + 1)],
            1,
            &format!("exceeds the limit of {limit} bytes"),
        );
        // In resource and scope, which blocks store once, the limit holds
        // all the same.
        let mut in_resource = span(3, 1, T0);
        let big = "x".repeat(limit);
        in_resource.resource = Arc::new(Resource {
            schema_url: big.clone(),
            ..Resource::default()
        });
        h.refuse(vec![in_resource], 0, "exceeds the limit");
        let mut in_scope = span(3, 1, T0);
        in_scope.scope = Arc::new(Scope {
            version: big,
            ..Scope::default()
        });
        h.refuse(vec![span(3, 2, T0), in_scope], 1, "exceeds the limit");
        h.check_lifecycle();
    }
}

#[test]
fn size_limits_outside_what_a_reader_accepts_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    for opts in [
        Options {
            max_span_bytes: 0,
            ..Options::default()
        },
        Options {
            max_span_bytes: 64 << 20,
            ..Options::default()
        },
        Options {
            block_target_bytes: usize::MAX,
            ..Options::default()
        },
        Options {
            wal_block_bytes: 0,
            ..Options::default()
        },
    ] {
        match Store::open(dir.path().join("store"), opts) {
            Err(Error::InvalidInput(msg)) => assert!(msg.contains("must be between"), "{msg}"),
            Err(e) => panic!("expected InvalidInput, got {e}"),
            Ok(_) => panic!("options accepted"),
        }
        assert!(!dir.path().join("store").exists(), "nothing created");
    }
}

/// An array (or, for odd `depth`s, a kv list) nested `depth` deep, with a
/// scalar at the bottom: `depth` as `AnyValue::depth` counts it.
fn nested(depth: usize) -> AnyValue {
    let mut v = AnyValue::Int(depth as i64);
    for level in 0..depth {
        v = if level % 2 == 0 {
            AnyValue::Array(vec![AnyValue::Bool(true), v])
        } else {
            AnyValue::KvList(vec![KeyValue::new(format!("l{level}"), v)])
        };
    }
    v
}

/// A span carrying `value` in the attribute list at `place`.
fn with_value_at(mut s: Span, place: usize, value: AnyValue) -> Span {
    let kv = vec![KeyValue::new("deep", value)];
    match place {
        0 => s.attributes = kv,
        1 => {
            s.events = vec![Event {
                time_unix_nano: s.start_time_unix_nano,
                name: "e".into(),
                attributes: kv,
                ..Event::default()
            }]
        }
        2 => {
            s.links = vec![Link {
                trace_id: tid(99),
                span_id: sid(99),
                attributes: kv,
                ..Link::default()
            }]
        }
        3 => {
            let mut r = (*s.resource).clone();
            r.attributes.extend(kv);
            s.resource = Arc::new(r);
        }
        _ => {
            s.scope = Arc::new(Scope {
                attributes: kv,
                ..Scope::default()
            })
        }
    }
    s
}

#[test]
fn nesting_at_max_value_depth_is_kept_and_one_level_more_is_refused() {
    // The configured limit, the default, and a configured limit above the
    // format's own (64), which caps it.
    for (configured, effective) in [
        (5, 5),
        (Options::default().max_value_depth, 32),
        (1_000, 64),
    ] {
        let mut h = Harness::new(Options {
            max_value_depth: configured,
            ..Options::default()
        });
        let mut id = 0;
        for place in 0..5 {
            id += 2;
            let at = nested(effective);
            assert_eq!(at.depth(), effective);
            h.accept(vec![with_value_at(
                span(place as u64, id, T0 + id),
                place,
                at,
            )]);
            // Empty containers count as one level, like any other.
            let mut empty = AnyValue::Array(Vec::new());
            for _ in 1..effective {
                empty = AnyValue::Array(vec![empty]);
            }
            assert_eq!(empty.depth(), effective);
            h.accept(vec![with_value_at(
                span(place as u64, id + 1, T0 + id),
                place,
                empty,
            )]);
            h.refuse(
                vec![
                    span(100 + place as u64, 1, T0),
                    with_value_at(
                        span(100 + place as u64, 2, T0),
                        place,
                        nested(effective + 1),
                    ),
                ],
                1,
                &format!(
                    "nested {} deep exceed the limit of {effective}",
                    effective + 1
                ),
            );
        }
        h.check_lifecycle();
    }
}

/// Depth of a value nested far past every limit: about half the depth at
/// which merely dropping such a value (as `append` drops a refused batch)
/// exhausts a 2 MiB stack. The checks that refuse it must need no more
/// stack than that drop.
const VERY_DEEP: usize = 20_000;

#[test]
fn a_value_nested_far_beyond_the_limit_is_refused_within_a_default_stack() {
    // A thread with the default stack of spawned threads (2 MiB): checking
    // the depth must not recurse as deep as the value goes.
    let worker = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), Options::default()).unwrap();
            let mut spans = Vec::new();
            for place in 0..5 {
                let mut v = AnyValue::Int(0);
                for level in 0..VERY_DEEP {
                    v = if level % 2 == 0 {
                        AnyValue::Array(vec![v])
                    } else {
                        AnyValue::KvList(vec![KeyValue::new("k", v)])
                    };
                }
                spans.push(with_value_at(span(1, place + 1, T0), place as usize, v));
            }
            let mut msgs = Vec::new();
            for s in spans {
                match store.append(vec![span(1, 100, T0), s]) {
                    Err(Error::InvalidInput(msg)) => msgs.push(msg),
                    Err(e) => panic!("expected InvalidInput, got {e}"),
                    Ok(()) => panic!("a value nested {VERY_DEEP} deep was accepted"),
                }
            }
            assert!(store.get_trace(tid(1)).unwrap().is_empty());
            msgs
        })
        .unwrap();
    let msgs = worker
        .join()
        .expect("the refusal does not overflow the stack");
    for msg in msgs {
        assert!(msg.contains("exceed the limit of 32"), "{msg}");
    }
}

/// Strings a careless decoder, escaper or terminal would get wrong.
fn hostile_strings() -> Vec<String> {
    let mut planes = String::from(
        "\u{0}\u{1}\u{7f}\u{80}\u{9f}\u{ff}\u{7ff}\u{800}\u{d7ff}\u{e000}\u{fdd0}\u{fffd}\u{fffe}\u{ffff}",
    );
    // A character of every plane, 0 to 16, including unassigned ones.
    for plane in 0u32..=16 {
        planes.push(char::from_u32(plane << 16 | 0x0041).unwrap());
        planes.push(char::from_u32(plane << 16 | 0xfffd).unwrap());
    }
    planes.push('\u{10ffff}');
    let mut v: Vec<String> = [
        "\0",
        "\0\0\0",
        "a\0b",
        "trailing\0",
        "\\u0000",
        "\\ud800",
        "\\udfff\\ud800",
        "\\x00\\xff",
        "%00%ff",
        "\\",
        "\"",
        "'",
        "\\n\\r\\t",
        "\n",
        "\r\n",
        "\t",
        "\u{1b}[31mred\u{1b}[0m\u{1b}]0;title\u{7}",
        "\u{85}\u{2028}\u{2029}",
        "\u{202e}txt.exe",
        "\u{feff}bom",
        "\u{301}",
        "e\u{301}",
        "\u{e9}",
        "{\"a\":\"b\"}",
        "<script>alert(1)</script>",
        "${jndi:ldap://x/y}",
        "%s%n%x",
        "=",
        "a=b=c",
        "service.name",
        "🦀",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(planes);
    // Around the 48 bytes up to which a block stores a string once.
    v.push("é".repeat(24));
    v.push(format!("{}x", "é".repeat(24)));
    v.push(format!("x{}", "🦀".repeat(12)));
    v
}

#[test]
fn unicode_nul_bytes_and_escape_like_strings_read_back_equal() {
    let mut h = Harness::new(Options::default());
    let strings = hostile_strings();
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mut batch = Vec::new();
    for (i, text) in strings.iter().enumerate() {
        let i = i as u64;
        let kv = |k: &str| {
            vec![
                KeyValue::new(text.clone(), AnyValue::String(text.clone())),
                KeyValue::new(
                    k,
                    AnyValue::Array(vec![
                        AnyValue::String(text.clone()),
                        AnyValue::KvList(vec![KeyValue::new(
                            text.clone(),
                            AnyValue::Bytes(text.as_bytes().to_vec()),
                        )]),
                    ]),
                ),
            ]
        };
        batch.push(Span {
            trace_id: tid(i + 1),
            span_id: sid(i + 1),
            parent_span_id: Some(sid(1_000 + i)),
            trace_state: text.clone(),
            name: text.clone(),
            kind: SpanKind::Client,
            start_time_unix_nano: T0 + i,
            end_time_unix_nano: T0 + i + 10,
            attributes: kv("nested"),
            events: vec![Event {
                time_unix_nano: T0 + i,
                name: text.clone(),
                attributes: kv("ev"),
                dropped_attributes_count: 1,
            }],
            links: vec![Link {
                trace_id: tid(500 + i),
                span_id: sid(500 + i),
                trace_state: text.clone(),
                attributes: kv("link"),
                ..Link::default()
            }],
            status: Status {
                code: StatusCode::Error,
                message: text.clone(),
            },
            resource: Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AnyValue::String(text.clone())),
                    KeyValue::new(text.clone(), AnyValue::Bytes(all_bytes.clone())),
                ],
                schema_url: text.clone(),
                ..Resource::default()
            }),
            scope: Arc::new(Scope {
                name: text.clone(),
                version: text.clone(),
                attributes: kv("scope"),
                schema_url: text.clone(),
                ..Scope::default()
            }),
            ..Span::default()
        });
    }
    // Byte values that are not UTF-8: stored as bytes, not as text.
    let mut raw = span(9_999, 1, T0);
    raw.attributes = vec![
        KeyValue::new("bytes", AnyValue::Bytes(vec![0xff, 0xfe, 0xed, 0xa0, 0x80])),
        KeyValue::new("all", AnyValue::Bytes(all_bytes)),
    ];
    batch.push(raw);
    h.accept(batch);

    // Each hostile string finds its trace as an attribute condition, typed
    // and as text, exactly as the reference search does.
    for (i, text) in strings.iter().enumerate() {
        let q = TraceQuery {
            attributes: vec![AttrFilter::Typed(
                text.clone(),
                AnyValue::String(text.clone()),
            )],
            limit: 1_000,
            ..TraceQuery::service(text.clone())
        };
        let found = h.store.find_traces(&q).unwrap();
        assert_eq!(found, find_in_spans(&h.accepted, &q).unwrap(), "{text:?}");
        assert!(
            found.iter().any(|t| t.trace_id == tid(i as u64 + 1)),
            "{text:?}"
        );
        let q = TraceQuery {
            attributes: vec![AttrFilter::Equals(text.clone(), text.clone())],
            mode: MatchMode::Trace,
            limit: 1_000,
            ..TraceQuery::default()
        };
        assert_eq!(
            h.store.find_traces(&q).unwrap(),
            find_in_spans(&h.accepted, &q).unwrap(),
            "{text:?}"
        );
    }
    h.check_lifecycle();
}

/// A span with `n` attributes spread over span, events, links, resource
/// and scope when `spread`, else all on the span.
fn with_attributes(trace: u64, id: u64, n: usize, spread: bool) -> Span {
    let mut s = span(trace, id, T0 + id);
    let mut kvs: Vec<KeyValue> = (0..n)
        .map(|i| KeyValue::new(format!("k{i}"), AnyValue::Int(i as i64)))
        .collect();
    if !spread {
        // The resource's service name is the n-th.
        kvs.pop();
        s.attributes = kvs;
        assert_eq!(s.attribute_count(), n);
        return s;
    }
    let mut parts: Vec<Vec<KeyValue>> = kvs.chunks(n.div_ceil(5)).map(<[_]>::to_vec).collect();
    parts.resize(5, Vec::new());
    s.scope = Arc::new(Scope {
        attributes: parts.pop().unwrap(),
        ..Scope::default()
    });
    let mut r = (*s.resource).clone();
    // The service name counts as one of the n.
    let mut res = parts.pop().unwrap();
    res.pop();
    r.attributes.extend(res);
    s.resource = Arc::new(r);
    s.links = vec![Link {
        trace_id: tid(1),
        span_id: sid(1),
        attributes: parts.pop().unwrap(),
        ..Link::default()
    }];
    s.events = vec![Event {
        time_unix_nano: T0,
        attributes: parts.pop().unwrap(),
        ..Event::default()
    }];
    s.attributes = parts.pop().unwrap();
    assert_eq!(s.attribute_count(), n);
    s
}

#[test]
fn a_span_with_100000_attributes_is_refused_or_kept_as_max_attributes_says() {
    const N: usize = 100_000;
    // The default limit (10,000) refuses it.
    let h = Harness::new(Options::default());
    let default_limit = Options::default().max_attributes;
    assert!(default_limit < N);
    h.refuse(
        vec![span(1, 1, T0), with_attributes(1, 2, N, false)],
        1,
        &format!("{N} attributes exceed the limit of {default_limit}"),
    );
    drop(h);

    // A limit of exactly N keeps it, on the span or spread over every
    // place attributes can be; one attribute more is refused.
    let mut h = Harness::new(Options {
        max_attributes: N,
        ..Options::default()
    });
    h.accept(vec![span(1, 1, T0), with_attributes(1, 2, N, false)]);
    h.accept(vec![with_attributes(2, 3, N, true)]);
    h.refuse(
        vec![with_attributes(3, 4, N + 1, false)],
        0,
        &format!("{} attributes exceed the limit of {N}", N + 1),
    );
    h.refuse(
        vec![span(4, 1, T0), with_attributes(4, 5, N + 1, true)],
        1,
        "exceed the limit",
    );
    h.check_lifecycle();
}

#[test]
fn timestamps_at_both_ends_of_u64_are_kept_and_end_before_start_is_refused() {
    let mut h = Harness::new(Options::default());
    let at = |id: u64, start: u64, end: u64| Span {
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        events: vec![
            Event {
                time_unix_nano: 0,
                name: "zero".into(),
                ..Event::default()
            },
            Event {
                time_unix_nano: u64::MAX,
                name: "max".into(),
                ..Event::default()
            },
        ],
        ..span(1, id, 0)
    };
    h.accept(vec![
        at(1, 0, 0),
        at(2, 0, u64::MAX),
        at(3, u64::MAX, u64::MAX),
        at(4, u64::MAX - 1, u64::MAX),
        at(5, 1, 2),
    ]);
    // A trace whose only span starts at 0.
    h.accept(vec![Span {
        trace_id: tid(3),
        ..at(7, 0, 0)
    }]);
    h.refuse(
        vec![
            at(8, 5, 5),
            Span {
                trace_id: tid(4),
                ..at(9, u64::MAX, 0)
            },
        ],
        1,
        &format!("end time 0 is before start time {}", u64::MAX),
    );
    h.refuse(
        vec![Span {
            trace_id: tid(4),
            ..at(10, 1, 0)
        }],
        0,
        "before start time",
    );

    // The edges of the time range: a scan from 0 sees the spans at 0, and
    // the span at u64::MAX - 1 is the last one a scan can reach.
    let zero: Vec<Span> = h
        .accepted
        .iter()
        .filter(|s| s.start_time_unix_nano == 0)
        .cloned()
        .collect();
    assert_eq!(zero.len(), 3);
    assert_same(scan_all(&h.store, 0..1), &zero, "scan of [0, 1)");
    let last = scan_all(&h.store, u64::MAX - 1..u64::MAX);
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].span_id, sid(4));
    // Durations at the extremes, by the reference search.
    for (min, max) in [
        (Some(u64::MAX), None),
        (None, Some(0)),
        (Some(0), Some(u64::MAX)),
    ] {
        let q = TraceQuery {
            duration_min: min,
            duration_max: max,
            limit: 100,
            ..TraceQuery::default()
        };
        assert_eq!(
            h.store.find_traces(&q).unwrap(),
            find_in_spans(&h.accepted, &q).unwrap()
        );
    }
    h.check_lifecycle();
}

/// A trace whose every span starts at `u64::MAX` is found by `get_trace`
/// and by `find_traces` in memory, in the log and once sealed: a search
/// without a time window has no end, so its service walk must not stop
/// short of a start of `u64::MAX`.
#[test]
fn a_trace_whose_spans_all_start_at_u64_max_is_found_once_sealed() {
    let mut h = Harness::new(Options::default());
    h.accept(vec![Span {
        start_time_unix_nano: u64::MAX,
        end_time_unix_nano: u64::MAX,
        ..span(2, 1, 0)
    }]);
    h.accept(vec![span(3, 1, T0)]);
    h.check_lifecycle();
}

#[test]
fn all_zero_trace_or_span_ids_are_refused_and_zero_parent_and_link_ids_kept() {
    let mut h = Harness::new(Options::default());
    let zero_trace = Span {
        trace_id: TraceId([0; 16]),
        ..span(1, 2, T0)
    };
    let zero_span = Span {
        span_id: SpanId([0; 8]),
        ..span(1, 3, T0)
    };
    let both = Span {
        trace_id: TraceId([0; 16]),
        span_id: SpanId([0; 8]),
        ..span(1, 4, T0)
    };
    h.refuse(
        vec![span(1, 1, T0), zero_trace],
        1,
        "trace id is all zeroes",
    );
    h.refuse(vec![span(1, 1, T0), zero_span], 1, "span id is all zeroes");
    h.refuse(vec![both, span(1, 1, T0)], 0, "all zeroes");
    // Only the span's own ids must be set: a zero parent id (not "no
    // parent") and zero link ids are data, kept as given.
    let zero_parent = Span {
        parent_span_id: Some(SpanId([0; 8])),
        ..span(1, 5, T0)
    };
    let zero_link = Span {
        links: vec![Link::default()],
        ..span(1, 6, T0)
    };
    // Ids with only one byte set, at either end.
    let mut low = span(1, 7, T0);
    low.trace_id = TraceId({
        let mut b = [0; 16];
        b[15] = 1;
        b
    });
    low.span_id = SpanId([0, 0, 0, 0, 0, 0, 0, 1]);
    let mut high = span(1, 8, T0);
    high.trace_id = TraceId({
        let mut b = [0; 16];
        b[0] = 0x80;
        b
    });
    high.span_id = SpanId([0x80, 0, 0, 0, 0, 0, 0, 0]);
    let max = Span {
        trace_id: TraceId([0xff; 16]),
        span_id: SpanId([0xff; 8]),
        parent_span_id: Some(SpanId([0xff; 8])),
        ..span(1, 9, T0)
    };
    h.accept(vec![zero_parent, zero_link, low, high, max]);
    h.check_lifecycle();
}

#[test]
fn duplicate_span_ids_are_all_kept() {
    let mut h = Harness::new(Options::default());
    // The same span id three times in one trace, differing in every other
    // way (as Jaeger's zipkin-style shared spans do), a span that is its
    // own parent, and a child whose parent id is ambiguous.
    let mut a = span(1, 7, T0);
    a.name = "client side".into();
    a.kind = SpanKind::Client;
    let mut b = span(1, 7, T0 + 5);
    b.name = "server side".into();
    b.parent_span_id = Some(sid(7));
    let mut c = span(1, 7, T0);
    c.name = "same start".into();
    let mut child = span(1, 8, T0 + 6);
    child.parent_span_id = Some(sid(7));
    h.accept(vec![a, b]);
    h.accept(vec![c, child]);
    // The same span id in other traces.
    h.accept(vec![span(2, 7, T0), span(3, 7, T0 + 1)]);
    h.check_lifecycle();
}

#[test]
fn exact_duplicate_spans_are_kept_until_compaction_writes_them_once() {
    let mut h = Harness::new(Options::default());
    let s = span(1, 1, T0);
    let mut t = span(1, 2, T0 + 1);
    t.attributes = vec![KeyValue::new("k", AnyValue::Double(f64::NAN))];
    // Twice in one batch, and again in another batch.
    h.accept(vec![s.clone(), s.clone(), t.clone()]);
    h.accept(vec![s.clone(), t.clone()]);
    let opts = h.opts.clone();
    let dir = h.check_lifecycle();
    // A second segment holding another copy, so that there is something
    // to merge.
    let store = Store::open(dir.path(), opts).unwrap();
    store.append(vec![s.clone()]).unwrap();
    store.seal_active().unwrap();
    assert_eq!(store.stats().unwrap().sealed_segments, 2);
    assert_eq!(store.get_trace(tid(1)).unwrap().len(), 6);
    let report = store.compact().unwrap();
    assert_eq!(report.duplicates_dropped, 4);
    assert_same(
        store.get_trace(tid(1)).unwrap(),
        &[s, t],
        "after compaction",
    );
}

// ---------------------------------------------------------------------------
// A trace of a million spans, in a child process.

const MILLION: u64 = 1_000_000;
const MILLION_ENV: &str = "SPANLOG_HOSTILE_MILLION_DIR";
/// Size of the in-memory table of the million-span store: the trace is
/// spread over a dozen segments, and what the engine holds while writing
/// is small beside the trace itself.
const MILLION_TABLE_BYTES: u64 = 4 << 20;

fn million_options() -> Options {
    Options {
        segment_max_bytes: MILLION_TABLE_BYTES,
        ..Options::default()
    }
}

fn million_span(i: u64, resource: &Arc<Resource>) -> Span {
    Span {
        trace_id: tid(42),
        span_id: sid(i + 1),
        parent_span_id: (i > 0).then(|| sid((i - 1) / 2 + 1)),
        start_time_unix_nano: T0 + i,
        end_time_unix_nano: T0 + i + 1,
        resource: resource.clone(),
        ..Span::default()
    }
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// `get_trace` of the big trace returns every span once, equal and in
/// order; the result is dropped before returning.
fn check_million(store: &Store, resource: &Arc<Resource>, what: &str) {
    let got = store.get_trace(tid(42)).unwrap();
    assert_eq!(got.len() as u64, MILLION, "{what}");
    for (i, s) in got.iter().enumerate() {
        let want = million_span(i as u64, resource);
        assert!(*s == want, "{what}: span {i}: {s:?} != {want:?}");
    }
    drop(got);
    let found = store.find_traces(&TraceQuery::service("million")).unwrap();
    assert_eq!(found.len(), 1, "{what}");
    assert_eq!(found[0].span_count, MILLION, "{what}");
    assert_eq!(found[0].start_time_unix_nano, T0, "{what}");
    assert_eq!(found[0].end_time_unix_nano, T0 + MILLION, "{what}");
}

/// A scan sees every span exactly once, streamed.
fn scan_million(store: &Store, resource: &Arc<Resource>) {
    let mut seen = vec![false; MILLION as usize];
    for s in store.scan(0..u64::MAX).unwrap() {
        let s = s.unwrap();
        let i = s.start_time_unix_nano - T0;
        assert!(!seen[i as usize], "span {i} scanned twice");
        seen[i as usize] = true;
        assert!(s == million_span(i, resource), "scan: span {i}");
    }
    assert!(seen.iter().all(|b| *b), "scan missed spans");
}

#[test]
#[ignore = "child process of a_trace_of_a_million_spans_reads_back_whole_in_bounded_memory"]
fn million_span_child() {
    let Ok(dir) = std::env::var(MILLION_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let resource = resource("million");
    let store = Store::open(dir, million_options()).unwrap();
    for first in (0..MILLION).step_by(10_000) {
        let batch: Vec<Span> = (first..first + 10_000)
            .map(|i| million_span(i, &resource))
            .collect();
        store.append(batch).unwrap();
    }
    store.flush().unwrap();
    println!("INGEST_RSS_KIB={}", vm_hwm_kib());
    let stats = store.stats().unwrap();
    assert_eq!(stats.spans, MILLION);
    // Part sealed, part in memory.
    check_million(&store, &resource, "written");
    scan_million(&store, &resource);
    store.close().unwrap();
    let store = Store::open(dir, million_options()).unwrap();
    assert!(store.stats().unwrap().sealed_segments >= 10);
    check_million(&store, &resource, "reopened");
    store.close().unwrap();
    let ro = Store::open(dir, Options::read_only()).unwrap();
    check_million(&ro, &resource, "read-only");
    drop(ro);
    println!("SPAN_BYTES={}", std::mem::size_of::<Span>());
    println!("PEAK_RSS_KIB={}", vm_hwm_kib());
}

#[test]
fn a_trace_of_a_million_spans_reads_back_whole_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "million_span_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MILLION_ENV, dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figure = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.split_once(key))
            .and_then(|(_, v)| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} missing from the child's output: {text}"))
    };
    let span_bytes = figure("SPAN_BYTES=");
    let hwm_mib = figure("PEAK_RSS_KIB=") / 1024;
    let ingest_mib = figure("INGEST_RSS_KIB=") / 1024;
    let result_mib = (MILLION * span_bytes) >> 20;
    eprintln!(
        "a million spans: peak RSS {ingest_mib} MiB while writing, {hwm_mib} MiB in all; \
         the trace as returned by get_trace takes {result_mib} MiB"
    );
    // Writing holds at most two in-memory tables (each about four times
    // segment_max_bytes) and the batch being appended: far less than the
    // million spans, which must not all stay in memory.
    let table_mib = MILLION_TABLE_BYTES >> 20;
    let ingest_bound = 8 * table_mib + 96;
    assert!(
        ingest_mib <= ingest_bound,
        "writing a million spans peaked at {ingest_mib} MiB, more than {ingest_bound} MiB"
    );
    assert!(ingest_bound < result_mib, "the bound tells the cases apart");
    // Reading the trace back holds the result (a million `Span`s) and the
    // block being decoded; twice the result and 256 MiB more is generous.
    let bound = 2 * result_mib + 256;
    assert!(
        hwm_mib <= bound,
        "peak RSS {hwm_mib} MiB exceeds {bound} MiB (result {result_mib} MiB)"
    );
}
