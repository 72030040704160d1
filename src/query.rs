//! Trace search: the query, what a match means, and the summary returned
//! for each matching trace.
//!
//! The semantics are those of Jaeger's storage backends (see
//! [`TraceQuery`]). They are defined once here, over plain spans, by
//! [`span_matches`] and [`trace_matches`]; the store's indexes only decide
//! which traces are worth checking, never whether one matches. The
//! reference search [`find_in_spans`] applies the definition to a slice of
//! spans and serves as the oracle the indexed search is tested against.

use std::cmp::Ordering;
use std::ops::Range;

use crate::digest::TracePart;
use crate::error::{Error, Result};
use crate::hash::FastMap;
use crate::span::{AnyValue, KeyValue, Span, SpanKind, StatusCode, TraceId};

/// One attribute condition of a [`TraceQuery`].
#[derive(Clone, Debug, PartialEq)]
pub enum AttrFilter {
    /// The key is present, with any value.
    Exists(String),
    /// The key is present with a value whose string rendering
    /// ([`AnyValue::to_query_string`]) equals the text: `123` matches the
    /// integer 123 and the string "123", `true` the boolean and the string.
    Equals(String, String),
    /// The key is present with exactly this typed value (an integer 123
    /// does not match the string "123").
    Typed(String, AnyValue),
}

impl AttrFilter {
    /// The attribute key the condition is about.
    pub fn key(&self) -> &str {
        match self {
            AttrFilter::Exists(k) | AttrFilter::Equals(k, _) | AttrFilter::Typed(k, _) => k,
        }
    }

    /// True when `kv` satisfies the condition.
    pub fn matches(&self, kv: &KeyValue) -> bool {
        if kv.key != self.key() {
            return false;
        }
        match self {
            AttrFilter::Exists(_) => true,
            AttrFilter::Equals(_, text) => value_equals_text(&kv.value, text),
            AttrFilter::Typed(_, v) => kv.value == *v,
        }
    }

    /// Parses `key=value` (string comparison) or a bare `key` (presence).
    pub fn parse(s: &str) -> Result<AttrFilter> {
        let (key, value) = match s.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (s, None),
        };
        if key.is_empty() {
            return Err(Error::InvalidInput(format!(
                "attribute condition {s:?} has an empty key"
            )));
        }
        Ok(match value {
            Some(v) => AttrFilter::Equals(key.to_string(), v.to_string()),
            None => AttrFilter::Exists(key.to_string()),
        })
    }
}

/// Compares without allocating for the common scalar types.
fn value_equals_text(v: &AnyValue, text: &str) -> bool {
    match v {
        AnyValue::String(s) => s == text,
        AnyValue::Bool(b) => text == if *b { "true" } else { "false" },
        AnyValue::Int(i) => {
            use std::io::Write;
            let mut buf = [0u8; 24];
            let mut w = &mut buf[..];
            let _ = write!(w, "{i}");
            let n = 24 - w.len();
            &buf[..n] == text.as_bytes()
        }
        _ => v.to_query_string() == text,
    }
}

/// Whether all conditions must hold on one span, or may be met by
/// different spans of the trace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatchMode {
    /// One span must satisfy every condition (Jaeger's memory and
    /// ClickHouse backends).
    #[default]
    Span,
    /// Each condition must be met by some span of the trace, not
    /// necessarily the same one (Jaeger's Badger and Cassandra backends).
    Trace,
}

/// What [`crate::Store::find_traces`] looks for.
///
/// In the default [`MatchMode::Span`], a trace matches when **one of its
/// spans** satisfies every condition that is set:
///
/// - `service`: the span's resource attribute `service.name` equals it;
/// - `operation`: the span's name equals it;
/// - `kind`: the span's kind equals it;
/// - `attributes`: every condition holds on some attribute of the span, of
///   its resource, of its instrumentation scope, of one of its events or of
///   one of its links (each condition may be met in a different place);
/// - `start`: the span's start time lies in the window (min inclusive,
///   max exclusive, unix nanoseconds);
/// - `duration_min` / `duration_max`: the span's duration (end - start) is
///   at least / at most this many nanoseconds (both inclusive);
/// - `errors_only`: the span's status is `Error`.
///
/// The whole trace is then summarised, not only the spans that matched.
/// At most `limit` traces are returned, the most recent first: ordered by
/// trace start time, descending, then by trace id, ascending; the limit
/// keeps the most recent traces that match.
#[derive(Clone, Debug, PartialEq)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    pub kind: Option<SpanKind>,
    pub attributes: Vec<AttrFilter>,
    /// Span start window, unix nanoseconds, `start..end`.
    pub start: Option<Range<u64>>,
    pub duration_min: Option<u64>,
    pub duration_max: Option<u64>,
    pub errors_only: bool,
    /// Most traces returned; must be at least 1.
    pub limit: usize,
    pub mode: MatchMode,
}

impl Default for TraceQuery {
    fn default() -> Self {
        TraceQuery {
            service: None,
            operation: None,
            kind: None,
            attributes: Vec::new(),
            start: None,
            duration_min: None,
            duration_max: None,
            errors_only: false,
            limit: 20,
            mode: MatchMode::Span,
        }
    }
}

impl TraceQuery {
    /// A query for the traces of one service.
    pub fn service(service: impl Into<String>) -> Self {
        TraceQuery {
            service: Some(service.into()),
            ..TraceQuery::default()
        }
    }

    /// Refuses queries that cannot be answered meaningfully.
    pub fn validate(&self) -> Result<()> {
        if self.limit == 0 {
            return Err(Error::InvalidInput("query limit must be at least 1".into()));
        }
        if let (Some(lo), Some(hi)) = (self.duration_min, self.duration_max) {
            if lo > hi {
                return Err(Error::InvalidInput(format!(
                    "minimum duration {lo} ns exceeds maximum {hi} ns"
                )));
            }
        }
        if self.attributes.iter().any(|a| a.key().is_empty()) {
            return Err(Error::InvalidInput(
                "attribute condition with an empty key".into(),
            ));
        }
        Ok(())
    }

    /// True when no span can match (an empty window).
    pub fn is_empty_window(&self) -> bool {
        self.start.as_ref().is_some_and(|w| w.start >= w.end)
    }

    /// True when the span starts inside the window (or there is none).
    pub fn in_window(&self, start: u64) -> bool {
        self.start.as_ref().is_none_or(|w| w.contains(&start))
    }

    fn service_is(&self, service: Option<&str>) -> bool {
        self.service
            .as_deref()
            .is_none_or(|want| service == Some(want))
    }

    fn duration_is(&self, d: u64) -> bool {
        self.duration_min.is_none_or(|m| d >= m) && self.duration_max.is_none_or(|m| d <= m)
    }

    fn status_is(&self, code: StatusCode) -> bool {
        !self.errors_only || code == StatusCode::Error
    }

    fn service_ok(&self, s: &Span) -> bool {
        self.service_is(s.service_name())
    }

    fn operation_ok(&self, s: &Span) -> bool {
        self.operation.as_deref().is_none_or(|want| s.name == want)
    }

    fn kind_ok(&self, s: &Span) -> bool {
        self.kind.is_none_or(|k| s.kind == k)
    }

    fn duration_ok(&self, s: &Span) -> bool {
        self.duration_is(s.duration_nanos())
    }

    fn error_ok(&self, s: &Span) -> bool {
        self.status_is(s.status.code)
    }

    /// True when a span with this head may match: every condition but
    /// the attributes holds (as [`TraceQuery::span_matches_fields`]).
    pub fn head_matches(&self, h: &crate::block::RowHead) -> bool {
        self.service_is(h.service)
            && self.operation.as_deref().is_none_or(|want| h.name == want)
            && self.kind.is_none_or(|k| h.kind == k)
            && self.in_window(h.start)
            && self.duration_is(h.end.saturating_sub(h.start))
            && self.status_is(h.status)
    }

    /// True when the span meets every condition except the attributes.
    pub fn span_matches_fields(&self, s: &Span) -> bool {
        self.service_ok(s)
            && self.operation_ok(s)
            && self.kind_ok(s)
            && self.in_window(s.start_time_unix_nano)
            && self.duration_ok(s)
            && self.error_ok(s)
    }
}

/// Every attribute place of a span, in the order queries look at them.
fn attribute_places(s: &Span) -> impl Iterator<Item = &KeyValue> {
    s.attributes
        .iter()
        .chain(&s.resource.attributes)
        .chain(&s.scope.attributes)
        .chain(s.events.iter().flat_map(|e| &e.attributes))
        .chain(s.links.iter().flat_map(|l| &l.attributes))
}

/// True when some attribute of the span (or of its resource, scope,
/// events or links) satisfies `f`.
pub fn span_has_attr(s: &Span, f: &AttrFilter) -> bool {
    attribute_places(s).any(|kv| f.matches(kv))
}

/// True when one span satisfies every condition of the query
/// ([`MatchMode::Span`]).
pub fn span_matches(q: &TraceQuery, s: &Span) -> bool {
    q.span_matches_fields(s) && q.attributes.iter().all(|f| span_has_attr(s, f))
}

/// True when the trace (all its spans) matches the query in the query's
/// mode.
pub fn trace_matches(q: &TraceQuery, spans: &[Span]) -> bool {
    match q.mode {
        MatchMode::Span => spans.iter().any(|s| span_matches(q, s)),
        MatchMode::Trace => {
            let any = |p: &dyn Fn(&Span) -> bool| spans.iter().any(p);
            any(&|s| q.service_ok(s))
                && any(&|s| q.operation_ok(s))
                && any(&|s| q.kind_ok(s))
                && any(&|s| q.in_window(s.start_time_unix_nano))
                && any(&|s| q.duration_ok(s))
                && any(&|s| q.error_ok(s))
                && q.attributes
                    .iter()
                    .all(|f| spans.iter().any(|s| span_has_attr(s, f)))
        }
    }
}

/// What [`crate::Store::find_traces`] returns for each matching trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    /// Service of the root span, or of the earliest span when no root span
    /// (one without a parent) is stored.
    pub root_service: String,
    /// Name of that same span.
    pub root_name: String,
    /// True when `root_*` come from a span without a parent.
    pub has_root: bool,
    /// Earliest span start, unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// Latest span end, unix nanoseconds.
    pub end_time_unix_nano: u64,
    pub span_count: u64,
    /// Distinct services of the trace's spans, sorted.
    pub services: Vec<String>,
    /// True when any span has status `Error`.
    pub has_error: bool,
}

impl TraceSummary {
    /// Latest end minus earliest start.
    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano
            .saturating_sub(self.start_time_unix_nano)
    }

    /// Summarises a trace from all its spans; `None` when there are none.
    pub fn of(spans: &[Span]) -> Option<TraceSummary> {
        let (first, rest) = spans.split_first()?;
        let mut part = TracePart::of_span(first);
        for s in rest {
            part.add_span(s);
        }
        Some(TraceSummary::from_part(part))
    }

    /// The summary of everything a (merged) part says.
    pub fn from_part(p: TracePart) -> TraceSummary {
        TraceSummary {
            trace_id: p.trace,
            root_service: p.root_service,
            root_name: p.root_name,
            // The root key's first field says whether the span has a parent.
            has_root: !p.root_key.0,
            start_time_unix_nano: p.start,
            end_time_unix_nano: p.end,
            span_count: p.spans,
            services: p.services.into_keys().collect(),
            has_error: p.error,
        }
    }
}

/// The result order: most recent start first, then by trace id.
pub fn recent_first(a: &TraceSummary, b: &TraceSummary) -> Ordering {
    b.start_time_unix_nano
        .cmp(&a.start_time_unix_nano)
        .then(a.trace_id.cmp(&b.trace_id))
}

/// The reference search: applies the query to every trace found in
/// `spans`, by definition. Linear in the spans; used for the in-memory
/// table and as the oracle in tests.
pub fn find_in_spans(spans: &[Span], q: &TraceQuery) -> Result<Vec<TraceSummary>> {
    q.validate()?;
    let mut traces: FastMap<TraceId, Vec<Span>> = FastMap::default();
    for s in spans {
        traces.entry(s.trace_id).or_default().push(s.clone());
    }
    let mut out: Vec<TraceSummary> = traces
        .values()
        .filter(|t| trace_matches(q, t))
        .filter_map(|t| TraceSummary::of(t))
        .collect();
    out.sort_by(recent_first);
    out.truncate(q.limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Event, Link, Resource, Scope, SpanId, Status};
    use std::sync::Arc;

    fn span(trace: u8, id: u8, service: &str, name: &str, start: u64, dur: u64) -> Span {
        Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            name: name.into(),
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
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
    fn each_condition_excludes_what_it_should() {
        let mut s = span(1, 1, "api", "GET /", 1_000, 500);
        s.kind = SpanKind::Server;
        s.attributes = vec![KeyValue::new("http.status", AnyValue::Int(200))];
        let q = TraceQuery {
            service: Some("api".into()),
            operation: Some("GET /".into()),
            kind: Some(SpanKind::Server),
            attributes: vec![AttrFilter::Equals("http.status".into(), "200".into())],
            start: Some(1_000..1_001),
            duration_min: Some(500),
            duration_max: Some(500),
            ..TraceQuery::default()
        };
        assert!(span_matches(&q, &s));
        let no = |f: &dyn Fn(&mut TraceQuery)| {
            let mut q2 = q.clone();
            f(&mut q2);
            assert!(!span_matches(&q2, &s), "{q2:?}");
        };
        no(&|q| q.service = Some("web".into()));
        no(&|q| q.operation = Some("GET /x".into()));
        no(&|q| q.kind = Some(SpanKind::Client));
        no(&|q| q.attributes[0] = AttrFilter::Equals("http.status".into(), "500".into()));
        no(&|q| q.attributes.push(AttrFilter::Exists("missing".into())));
        no(&|q| q.start = Some(1_001..2_000));
        no(&|q| q.start = Some(0..1_000));
        no(&|q| q.duration_min = Some(501));
        no(&|q| q.duration_max = Some(499));
        no(&|q| q.errors_only = true);
    }

    #[test]
    fn attributes_are_found_in_every_place() {
        let mut s = span(1, 1, "api", "op", 10, 1);
        let kv = |k: &str| vec![KeyValue::new(k, AnyValue::Double(72.5))];
        s.resource = Arc::new(Resource {
            attributes: kv("r"),
            ..Resource::default()
        });
        s.scope = Arc::new(Scope {
            attributes: kv("sc"),
            ..Scope::default()
        });
        s.events = vec![
            Event::default(),
            Event {
                attributes: kv("e"),
                ..Event::default()
            },
        ];
        s.links = vec![Link {
            attributes: kv("l"),
            ..Link::default()
        }];
        s.attributes = kv("a");
        for k in ["r", "sc", "e", "l", "a"] {
            let f = AttrFilter::Equals(k.into(), "72.5".into());
            assert!(span_has_attr(&s, &f), "{k}");
            assert!(span_has_attr(
                &s,
                &AttrFilter::Typed(k.into(), AnyValue::Double(72.5))
            ));
            assert!(!span_has_attr(
                &s,
                &AttrFilter::Typed(k.into(), AnyValue::String("72.5".into()))
            ));
        }
        assert!(!span_has_attr(&s, &AttrFilter::Exists("zz".into())));
    }

    #[test]
    fn string_rendering_compares_across_types() {
        let t = |v: AnyValue, text: &str| value_equals_text(&v, text);
        assert!(t(AnyValue::Int(123), "123"));
        assert!(!t(AnyValue::Int(123), "+123"));
        assert!(!t(AnyValue::Int(123), "0123"));
        assert!(t(AnyValue::Bool(true), "true"));
        assert!(t(AnyValue::Double(72.5), "72.5"));
        assert!(t(AnyValue::String("x".into()), "x"));
        assert!(!t(AnyValue::String("x".into()), "y"));
    }

    #[test]
    fn span_mode_needs_one_span_trace_mode_does_not() {
        let mut a = span(1, 1, "api", "GET", 100, 10);
        a.status = Status {
            code: StatusCode::Ok,
            message: String::new(),
        };
        let mut b = span(1, 2, "db", "SELECT", 105, 3);
        b.parent_span_id = Some(SpanId([1; 8]));
        b.status.code = StatusCode::Error;
        let spans = vec![a, b];
        let mut q = TraceQuery {
            service: Some("api".into()),
            errors_only: true,
            ..TraceQuery::default()
        };
        assert!(!trace_matches(&q, &spans));
        q.mode = MatchMode::Trace;
        assert!(trace_matches(&q, &spans));
    }

    #[test]
    fn summary_prefers_the_root_and_counts_everything() {
        let mut child = span(1, 2, "db", "SELECT", 90, 50);
        child.parent_span_id = Some(SpanId([1; 8]));
        child.status.code = StatusCode::Error;
        let root = span(1, 1, "api", "GET", 100, 10);
        let s = TraceSummary::of(&[child.clone(), root]).unwrap();
        assert_eq!(
            (s.root_service.as_str(), s.root_name.as_str()),
            ("api", "GET")
        );
        assert!(s.has_root && s.has_error);
        assert_eq!(
            (s.start_time_unix_nano, s.duration_nanos(), s.span_count),
            (90, 50, 2)
        );
        assert_eq!(s.services, vec!["api".to_string(), "db".to_string()]);
        let orphan = TraceSummary::of(&[child]).unwrap();
        assert!(!orphan.has_root);
        assert_eq!(orphan.root_name, "SELECT");
    }

    #[test]
    fn reference_search_orders_and_limits() {
        let spans: Vec<Span> = (1..=5u8)
            .map(|i| span(i, 1, "api", "op", u64::from(i) * 100, 1))
            .collect();
        let q = TraceQuery {
            limit: 3,
            ..TraceQuery::service("api")
        };
        let got = find_in_spans(&spans, &q).unwrap();
        let ids: Vec<u8> = got.iter().map(|s| s.trace_id.0[0]).collect();
        assert_eq!(ids, vec![5, 4, 3]);
        assert!(find_in_spans(&spans, &TraceQuery { limit: 0, ..q }).is_err());
    }
}
