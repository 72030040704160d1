//! The model mapped to and from the OTLP protobuf message types
//! (`opentelemetry_proto::tonic`), and their prost wire encoding.
//!
//! This is the only place where model and OTLP semantics meet: the JSON side
//! goes through these same message types.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use pc::any_value::Value as PValue;
use prost::Message;

use super::{in_format, Path};
use crate::error::{Error, Result};
use crate::span::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};

/// Encodes spans as a protobuf `TracesData`, grouped by resource and scope.
pub fn to_proto(spans: &[Span]) -> Vec<u8> {
    to_traces_data(spans).encode_to_vec()
}

/// Decodes a protobuf `TracesData` or `ExportTraceServiceRequest` (the wire
/// format is identical) into spans, in the order they appear.
pub fn from_proto(bytes: &[u8]) -> Result<Vec<Span>> {
    let data = pt::TracesData::decode(bytes)
        .map_err(|e| Error::InvalidInput(format!("invalid OTLP protobuf: {e}")))?;
    from_traces_data(data).map_err(|e| in_format("OTLP protobuf", e))
}

// ---- model -> OTLP -------------------------------------------------------

/// Groups spans by resource, then scope, in order of first appearance.
pub(super) fn to_traces_data(spans: &[Span]) -> pt::TracesData {
    let mut resources: Groups<Resource, Groups<Scope, Vec<&Span>>> = Groups::default();
    for span in spans {
        resources
            .entry(&span.resource)
            .entry(&span.scope)
            .push(span);
    }
    let resource_spans = resources
        .into_iter()
        .map(|(resource, scopes)| pt::ResourceSpans {
            resource: Some(resource_to_proto(resource)),
            scope_spans: scopes
                .into_iter()
                .map(|(scope, spans)| scope_spans_to_proto(scope, &spans))
                .collect(),
            schema_url: resource.schema_url.clone(),
        })
        .collect();
    pt::TracesData { resource_spans }
}

fn resource_to_proto(r: &Resource) -> pr::Resource {
    pr::Resource {
        attributes: kvs_to_proto(&r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        // Listed rather than defaulted, so that a new field in
        // opentelemetry-proto fails to compile instead of being lost quietly.
        entity_refs: Vec::new(),
    }
}

fn scope_spans_to_proto(scope: &Scope, spans: &[&Span]) -> pt::ScopeSpans {
    pt::ScopeSpans {
        scope: Some(pc::InstrumentationScope {
            name: scope.name.clone(),
            version: scope.version.clone(),
            attributes: kvs_to_proto(&scope.attributes),
            dropped_attributes_count: scope.dropped_attributes_count,
        }),
        spans: spans.iter().map(|s| span_to_proto(s)).collect(),
        schema_url: scope.schema_url.clone(),
    }
}

fn span_to_proto(s: &Span) -> pt::Span {
    pt::Span {
        trace_id: s.trace_id.0.to_vec(),
        span_id: s.span_id.0.to_vec(),
        trace_state: s.trace_state.clone(),
        parent_span_id: s.parent_span_id.map_or_else(Vec::new, |p| p.0.to_vec()),
        flags: s.flags,
        name: s.name.clone(),
        kind: s.kind as i32,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: kvs_to_proto(&s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s.events.iter().map(event_to_proto).collect(),
        dropped_events_count: s.dropped_events_count,
        links: s.links.iter().map(link_to_proto).collect(),
        dropped_links_count: s.dropped_links_count,
        status: (s.status != Status::default()).then(|| pt::Status {
            message: s.status.message.clone(),
            code: s.status.code as i32,
        }),
    }
}

fn event_to_proto(e: &Event) -> pt::span::Event {
    pt::span::Event {
        time_unix_nano: e.time_unix_nano,
        name: e.name.clone(),
        attributes: kvs_to_proto(&e.attributes),
        dropped_attributes_count: e.dropped_attributes_count,
    }
}

fn link_to_proto(l: &Link) -> pt::span::Link {
    pt::span::Link {
        trace_id: l.trace_id.0.to_vec(),
        span_id: l.span_id.0.to_vec(),
        trace_state: l.trace_state.clone(),
        attributes: kvs_to_proto(&l.attributes),
        dropped_attributes_count: l.dropped_attributes_count,
        flags: l.flags,
    }
}

fn kvs_to_proto(kvs: &[KeyValue]) -> Vec<pc::KeyValue> {
    kvs.iter()
        .map(|kv| pc::KeyValue {
            key: kv.key.clone(),
            value: Some(value_to_proto(&kv.value)),
            key_strindex: 0,
        })
        .collect()
}

fn value_to_proto(v: &AnyValue) -> pc::AnyValue {
    let value = match v {
        AnyValue::Empty => None,
        AnyValue::String(s) => Some(PValue::StringValue(s.clone())),
        AnyValue::Bool(b) => Some(PValue::BoolValue(*b)),
        AnyValue::Int(i) => Some(PValue::IntValue(*i)),
        AnyValue::Double(d) => Some(PValue::DoubleValue(*d)),
        AnyValue::Bytes(b) => Some(PValue::BytesValue(b.clone())),
        AnyValue::Array(a) => Some(PValue::ArrayValue(pc::ArrayValue {
            values: a.iter().map(value_to_proto).collect(),
        })),
        AnyValue::KvList(l) => Some(PValue::KvlistValue(pc::KeyValueList {
            values: kvs_to_proto(l),
        })),
    };
    pc::AnyValue { value }
}

// ---- grouping ------------------------------------------------------------

/// Values grouped under distinct keys, in order of first appearance.
struct Groups<'a, K, V> {
    keys: Vec<&'a K>,
    values: Vec<V>,
    /// Fingerprint -> indices of the keys having it. The model types are not
    /// `Hash` (they hold doubles), so a fingerprint narrows the candidates
    /// and `==` decides; without it, many distinct resources would make
    /// grouping quadratic.
    by_print: HashMap<u64, Vec<usize>>,
}

impl<K, V> Default for Groups<'_, K, V> {
    fn default() -> Self {
        Groups {
            keys: Vec::new(),
            values: Vec::new(),
            by_print: HashMap::new(),
        }
    }
}

impl<'a, K: PartialEq + Fingerprint, V: Default> Groups<'a, K, V> {
    fn entry(&mut self, key: &'a K) -> &mut V {
        let candidates = self.by_print.entry(key.fingerprint()).or_default();
        let keys = &self.keys;
        let i = match candidates.iter().copied().find(|&i| keys[i] == key) {
            Some(i) => i,
            None => {
                candidates.push(self.keys.len());
                self.keys.push(key);
                self.values.push(V::default());
                self.keys.len() - 1
            }
        };
        &mut self.values[i]
    }

    fn into_iter(self) -> impl Iterator<Item = (&'a K, V)> {
        self.keys.into_iter().zip(self.values)
    }
}

/// A hash that agrees with `==`: equal values have equal fingerprints.
/// It may ignore parts of the value (only the cost of a collision grows).
trait Fingerprint {
    fn fingerprint(&self) -> u64;
}

impl Fingerprint for Resource {
    fn fingerprint(&self) -> u64 {
        fingerprint(&[&self.schema_url], &self.attributes)
    }
}

impl Fingerprint for Scope {
    fn fingerprint(&self) -> u64 {
        fingerprint(
            &[&self.name, &self.version, &self.schema_url],
            &self.attributes,
        )
    }
}

/// Hashes strings and attribute keys and string values; other values are
/// skipped, as they rarely are what tells resources apart.
fn fingerprint(strings: &[&str], attrs: &[KeyValue]) -> u64 {
    let mut h = DefaultHasher::new();
    strings.hash(&mut h);
    for kv in attrs {
        kv.key.hash(&mut h);
        if let AnyValue::String(s) = &kv.value {
            s.hash(&mut h);
        }
    }
    h.finish()
}

// ---- OTLP -> model -------------------------------------------------------

/// Flattens a `TracesData` into spans. Errors name the offending field.
pub(super) fn from_traces_data(data: pt::TracesData) -> Result<Vec<Span>> {
    let root = Path::Root;
    let path = root.field("resourceSpans");
    let mut out = Vec::new();
    for (i, rs) in data.resource_spans.into_iter().enumerate() {
        resource_spans_from_proto(rs, path.index(i), &mut out)?;
    }
    Ok(out)
}

fn resource_spans_from_proto(
    rs: pt::ResourceSpans,
    path: Path<'_>,
    out: &mut Vec<Span>,
) -> Result<()> {
    let r = rs.resource.unwrap_or_default();
    let resource = Arc::new(Resource {
        attributes: kvs_from_proto(r.attributes),
        dropped_attributes_count: r.dropped_attributes_count,
        schema_url: rs.schema_url,
    });
    let path = path.field("scopeSpans");
    for (i, ss) in rs.scope_spans.into_iter().enumerate() {
        scope_spans_from_proto(ss, &resource, path.index(i), out)?;
    }
    Ok(())
}

fn scope_spans_from_proto(
    ss: pt::ScopeSpans,
    resource: &Arc<Resource>,
    path: Path<'_>,
    out: &mut Vec<Span>,
) -> Result<()> {
    let s = ss.scope.unwrap_or_default();
    let scope = Arc::new(Scope {
        name: s.name,
        version: s.version,
        attributes: kvs_from_proto(s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        schema_url: ss.schema_url,
    });
    let path = path.field("spans");
    for (i, span) in ss.spans.into_iter().enumerate() {
        let mut span = span_from_proto(span, path.index(i))?;
        span.resource = resource.clone();
        span.scope = scope.clone();
        out.push(span);
    }
    Ok(())
}

/// A span without resource and scope, which the caller fills in.
fn span_from_proto(s: pt::Span, path: Path<'_>) -> Result<Span> {
    Ok(Span {
        trace_id: TraceId(id(&s.trace_id, path.field("traceId"))?),
        span_id: SpanId(id(&s.span_id, path.field("spanId"))?),
        parent_span_id: parent_id(&s.parent_span_id, path.field("parentSpanId"))?,
        trace_state: s.trace_state,
        flags: s.flags,
        name: s.name,
        kind: span_kind(s.kind, path.field("kind"))?,
        start_time_unix_nano: s.start_time_unix_nano,
        end_time_unix_nano: s.end_time_unix_nano,
        attributes: kvs_from_proto(s.attributes),
        dropped_attributes_count: s.dropped_attributes_count,
        events: s.events.into_iter().map(event_from_proto).collect(),
        dropped_events_count: s.dropped_events_count,
        links: links_from_proto(s.links, path.field("links"))?,
        dropped_links_count: s.dropped_links_count,
        status: status_from_proto(s.status.unwrap_or_default(), path.field("status"))?,
        resource: Arc::default(),
        scope: Arc::default(),
    })
}

fn id<const N: usize>(bytes: &[u8], path: Path<'_>) -> Result<[u8; N]> {
    bytes
        .try_into()
        .map_err(|_| path.err(format!("must be {N} bytes, got {}", bytes.len())))
}

/// Empty means "no parent" in OTLP.
fn parent_id(bytes: &[u8], path: Path<'_>) -> Result<Option<SpanId>> {
    if bytes.is_empty() {
        return Ok(None);
    }
    id(bytes, path).map(|b| Some(SpanId(b)))
}

/// Unknown numbers are refused rather than mapped to "unspecified": the
/// model cannot hold them, and the store promises spans back unchanged.
fn span_kind(k: i32, path: Path<'_>) -> Result<SpanKind> {
    u8::try_from(k)
        .ok()
        .and_then(SpanKind::from_u8)
        .ok_or_else(|| path.err(format!("unknown span kind {k}")))
}

fn status_from_proto(s: pt::Status, path: Path<'_>) -> Result<Status> {
    let code = u8::try_from(s.code)
        .ok()
        .and_then(StatusCode::from_u8)
        .ok_or_else(|| {
            path.field("code")
                .err(format!("unknown status code {}", s.code))
        })?;
    Ok(Status {
        code,
        message: s.message,
    })
}

fn event_from_proto(e: pt::span::Event) -> Event {
    Event {
        time_unix_nano: e.time_unix_nano,
        name: e.name,
        attributes: kvs_from_proto(e.attributes),
        dropped_attributes_count: e.dropped_attributes_count,
    }
}

fn links_from_proto(links: Vec<pt::span::Link>, path: Path<'_>) -> Result<Vec<Link>> {
    let link = |(i, l): (usize, pt::span::Link)| {
        let path = path.index(i);
        Ok(Link {
            trace_id: TraceId(id(&l.trace_id, path.field("traceId"))?),
            span_id: SpanId(id(&l.span_id, path.field("spanId"))?),
            trace_state: l.trace_state,
            flags: l.flags,
            attributes: kvs_from_proto(l.attributes),
            dropped_attributes_count: l.dropped_attributes_count,
        })
    };
    links.into_iter().enumerate().map(link).collect()
}

/// `key_strindex` is a profiling-only field and is ignored.
fn kvs_from_proto(kvs: Vec<pc::KeyValue>) -> Vec<KeyValue> {
    kvs.into_iter()
        .map(|kv| KeyValue {
            key: kv.key,
            value: kv.value.map_or(AnyValue::Empty, value_from_proto),
        })
        .collect()
}

fn value_from_proto(v: pc::AnyValue) -> AnyValue {
    match v.value {
        None => AnyValue::Empty,
        Some(PValue::StringValue(s)) => AnyValue::String(s),
        Some(PValue::BoolValue(b)) => AnyValue::Bool(b),
        Some(PValue::IntValue(i)) => AnyValue::Int(i),
        Some(PValue::DoubleValue(d)) => AnyValue::Double(d),
        Some(PValue::BytesValue(b)) => AnyValue::Bytes(b),
        Some(PValue::ArrayValue(a)) => {
            AnyValue::Array(a.values.into_iter().map(value_from_proto).collect())
        }
        Some(PValue::KvlistValue(l)) => AnyValue::KvList(kvs_from_proto(l.values)),
        // Profiling-only; OTLP says other signals treat it as an empty value.
        Some(PValue::StringValueStrindex(_)) => AnyValue::Empty,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

    use super::*;
    use crate::otlp::tests::{full_span, kv, sample_spans};

    fn err_text(r: Result<Vec<Span>>) -> String {
        r.expect_err("expected an error").to_string()
    }

    fn decode_one(span: pt::Span) -> Result<Vec<Span>> {
        let data = pt::TracesData {
            resource_spans: vec![pt::ResourceSpans {
                scope_spans: vec![pt::ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        from_proto(&data.encode_to_vec())
    }

    fn valid_span() -> pt::Span {
        pt::Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }
    }

    #[test]
    fn round_trip_keeps_every_field_and_value_type() {
        let spans = sample_spans();
        assert_eq!(from_proto(&to_proto(&spans)).unwrap(), spans);
    }

    #[test]
    fn doubles_survive_bitwise() {
        let bits = [
            0x7ff8_0000_0000_0001,
            0xfff0_0000_0000_0001,
            0x8000_0000_0000_0000,
        ];
        let mut values: Vec<KeyValue> = bits
            .iter()
            .map(|&b| kv("d", AnyValue::Double(f64::from_bits(b))))
            .collect();
        values.push(kv("inf", AnyValue::Double(f64::NEG_INFINITY)));
        let span = Span {
            attributes: values,
            ..full_span()
        };
        let back = from_proto(&to_proto(std::slice::from_ref(&span))).unwrap();
        assert_eq!(back, vec![span]);
    }

    #[test]
    fn equal_resources_and_scopes_are_grouped_in_order_of_first_appearance() {
        let span = |id: u8, service: &str, scope: &str| {
            let mut s = Span {
                span_id: SpanId([id; 8]),
                ..Span::default()
            };
            std::sync::Arc::make_mut(&mut s.resource).attributes =
                vec![kv("service.name", AnyValue::String(service.into()))];
            std::sync::Arc::make_mut(&mut s.scope).name = scope.into();
            s
        };
        let (a1, b1, a2, a1_again) = (
            span(1, "a", "x"),
            span(2, "b", "x"),
            span(3, "a", "y"),
            span(4, "a", "x"),
        );
        let input = [a1.clone(), b1.clone(), a2.clone(), a1_again.clone()];
        let data = to_traces_data(&input);
        assert_eq!(data.resource_spans.len(), 2);
        assert_eq!(data.resource_spans[0].scope_spans.len(), 2);
        let back = from_proto(&data.encode_to_vec()).unwrap();
        assert_eq!(back, vec![a1, a1_again, a2, b1]);
    }

    #[test]
    fn resources_differing_only_in_non_string_values_stay_apart() {
        // Same fingerprint (it skips ints and schema is equal), unequal values.
        let with = |v: i64| Span {
            resource: Arc::new(Resource {
                attributes: vec![kv("shard", AnyValue::Int(v))],
                ..Resource::default()
            }),
            ..Span::default()
        };
        let spans = [with(1), with(2), with(1)];
        let data = to_traces_data(&spans);
        assert_eq!(data.resource_spans.len(), 2);
        let schema = |url: &str| Span {
            resource: Arc::new(Resource {
                schema_url: url.into(),
                ..Resource::default()
            }),
            ..Span::default()
        };
        assert_eq!(
            to_traces_data(&[schema("a"), schema("b")])
                .resource_spans
                .len(),
            2
        );
    }

    #[test]
    fn export_request_has_the_same_wire_format() {
        let data = to_traces_data(&sample_spans());
        let request = ExportTraceServiceRequest {
            resource_spans: data.resource_spans,
        };
        assert_eq!(
            from_proto(&request.encode_to_vec()).unwrap(),
            sample_spans()
        );
    }

    #[test]
    fn missing_messages_read_as_defaults() {
        let mut span = valid_span();
        span.attributes = vec![
            pc::KeyValue {
                key: "none".into(),
                value: None,
                key_strindex: 0,
            },
            pc::KeyValue {
                key: "strindex".into(),
                value: Some(pc::AnyValue {
                    value: Some(PValue::StringValueStrindex(3)),
                }),
                key_strindex: 0,
            },
        ];
        let got = decode_one(span).unwrap().remove(0);
        assert_eq!(got.resource, Resource::default().into());
        assert_eq!(got.scope, Scope::default().into());
        assert_eq!(got.parent_span_id, None);
        assert_eq!(got.status, Status::default());
        let empty = vec![kv("none", AnyValue::Empty), kv("strindex", AnyValue::Empty)];
        assert_eq!(got.attributes, empty);
    }

    #[test]
    fn wrong_ids_and_enums_are_refused_with_their_path() {
        let e = err_text(decode_one(pt::Span {
            trace_id: vec![1; 3],
            ..valid_span()
        }));
        let want = "resourceSpans[0].scopeSpans[0].spans[0].traceId: must be 16 bytes, got 3";
        assert_eq!(e, format!("invalid input: invalid OTLP protobuf: {want}"));
        let short_parent = pt::Span {
            parent_span_id: vec![1; 7],
            ..valid_span()
        };
        assert!(err_text(decode_one(short_parent)).contains("parentSpanId"));
        let link = pt::span::Link {
            trace_id: vec![1; 16],
            span_id: vec![1; 9],
            ..Default::default()
        };
        let bad_link = pt::Span {
            links: vec![pt::span::Link::default(), link],
            ..valid_span()
        };
        assert!(err_text(decode_one(bad_link)).contains("links[0].traceId"));
        let kind = pt::Span {
            kind: -1,
            ..valid_span()
        };
        assert!(err_text(decode_one(kind)).contains("kind: unknown span kind -1"));
        let status = pt::Span {
            status: Some(pt::Status {
                code: 9,
                message: String::new(),
            }),
            ..valid_span()
        };
        assert!(err_text(decode_one(status)).contains("status.code: unknown status code 9"));
    }

    #[test]
    fn garbage_and_truncated_bytes_give_errors_not_panics() {
        let e = err_text(from_proto(&[0xff, 0xff, 0xff]));
        assert!(
            e.starts_with("invalid input: invalid OTLP protobuf: "),
            "{e}"
        );
        let bytes = to_proto(&sample_spans());
        assert!(from_proto(&bytes[..bytes.len() - 1]).is_err());
        // Every cut either fails or decodes something: it never panics.
        for cut in 0..bytes.len() {
            let _ = from_proto(&bytes[..cut]);
        }
        let mut flipped = bytes.clone();
        for i in (0..flipped.len()).step_by(7) {
            flipped[i] ^= 0x55;
            let _ = from_proto(&flipped);
        }
    }

    #[test]
    fn nesting_beyond_the_decoder_limit_is_an_error() {
        let mut value = AnyValue::Int(1);
        for _ in 0..200 {
            value = AnyValue::Array(vec![value]);
        }
        let span = Span {
            attributes: vec![kv("deep", value)],
            ..Span::default()
        };
        assert!(err_text(from_proto(&to_proto(&[span]))).contains("invalid OTLP protobuf"));
    }
}
