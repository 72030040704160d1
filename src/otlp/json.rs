//! OTLP/JSON: `serde_json::Value` to and from the OTLP message types, which
//! [`super::proto`] maps to the model.
//!
//! Written by hand rather than with opentelemetry-proto's serde support,
//! which has dropped fields in the past. Output follows the OTLP/JSON spec
//! (lowerCamelCase names, hex ids, 64-bit integers as decimal strings, enums
//! as numbers, defaults left out). Input also takes what the protobuf JSON
//! mapping allows: snake_case names, integers as numbers or strings, enums by
//! name, base64 with either alphabet and optional padding.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use opentelemetry_proto::tonic::common::v1 as pc;
use opentelemetry_proto::tonic::resource::v1 as pr;
use opentelemetry_proto::tonic::trace::v1 as pt;
use pc::any_value::Value as PValue;
use serde_json::{json, Map, Value};

use super::proto::{from_traces_data, to_traces_data};
use super::{in_format, Path};
use crate::block::MAX_VALUE_DEPTH;
use crate::error::{Error, Result};
use crate::span::Span;

/// Spans as an OTLP/JSON `TracesData`, grouped by resource and scope.
pub fn to_json(spans: &[Span]) -> Value {
    traces_data_json(&to_traces_data(spans))
}

/// [`to_json`] as compact JSON text.
pub fn to_json_string(spans: &[Span]) -> String {
    to_json(spans).to_string()
}

/// Spans from an OTLP/JSON `TracesData` or `ExportTraceServiceRequest`
/// (same shape), in the order they appear. Errors name the offending field,
/// as in `resourceSpans[0].scopeSpans[1].spans[3].traceId`.
pub fn from_json(v: &Value) -> Result<Vec<Span>> {
    traces_data(v)
        .and_then(from_traces_data)
        .map_err(|e| in_format("OTLP/JSON", e))
}

/// [`from_json`] from JSON text.
pub fn from_json_str(s: &str) -> Result<Vec<Span>> {
    let invalid = |e: String| Error::InvalidInput(format!("invalid OTLP/JSON: {e}"));
    // serde_json's own limit (128 levels) is below what values nested
    // MAX_VALUE_DEPTH deep take (three levels each), so it is replaced by
    // this check, made before any recursion.
    let depth = json_depth(s.as_bytes());
    if depth > MAX_JSON_DEPTH {
        return Err(invalid(format!(
            "nested {depth} levels deep, more than {MAX_JSON_DEPTH}"
        )));
    }
    let mut de = serde_json::Deserializer::from_str(s);
    de.disable_recursion_limit();
    let mut values = de.into_iter::<Value>();
    let v = match values.next() {
        Some(v) => v.map_err(|e| invalid(e.to_string()))?,
        None => return Err(invalid("empty document".into())),
    };
    if let Some(next) = values.next() {
        let detail = next
            .err()
            .map_or("trailing characters".into(), |e| e.to_string());
        return Err(invalid(detail));
    }
    from_json(&v)
}

/// Deepest JSON nesting accepted: values nested [`MAX_VALUE_DEPTH`] deep,
/// three levels each, inside the levels of `TracesData` around them.
const MAX_JSON_DEPTH: usize = 3 * MAX_VALUE_DEPTH + 32;

/// The deepest nesting of arrays and objects in `text`, brackets inside
/// strings aside.
fn json_depth(text: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in text {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

// ---- writing -------------------------------------------------------------

/// A JSON object under construction that leaves out default values, as
/// OTLP/JSON allows.
#[derive(Default)]
struct Obj(Map<String, Value>);

impl Obj {
    fn put(mut self, key: &str, v: impl Into<Value>) -> Self {
        self.0.insert(key.to_owned(), v.into());
        self
    }

    fn str(self, key: &str, s: &str) -> Self {
        if s.is_empty() {
            self
        } else {
            self.put(key, s)
        }
    }

    fn num(self, key: &str, n: impl Into<i64>) -> Self {
        match n.into() {
            0 => self,
            n => self.put(key, n),
        }
    }

    fn list<T>(self, key: &str, items: &[T], f: impl Fn(&T) -> Value) -> Self {
        if items.is_empty() {
            self
        } else {
            self.put(key, items.iter().map(f).collect::<Vec<_>>())
        }
    }
}

impl From<Obj> for Value {
    fn from(o: Obj) -> Value {
        Value::Object(o.0)
    }
}

fn traces_data_json(d: &pt::TracesData) -> Value {
    let rs = d.resource_spans.iter().map(resource_spans_json);
    json!({ "resourceSpans": rs.collect::<Vec<_>>() })
}

fn resource_spans_json(rs: &pt::ResourceSpans) -> Value {
    Obj::default()
        .put(
            "resource",
            rs.resource.as_ref().map_or(json!({}), resource_json),
        )
        .str("schemaUrl", &rs.schema_url)
        .list("scopeSpans", &rs.scope_spans, scope_spans_json)
        .into()
}

fn resource_json(r: &pr::Resource) -> Value {
    Obj::default()
        .list("attributes", &r.attributes, key_value_json)
        .num("droppedAttributesCount", r.dropped_attributes_count)
        .into()
}

fn scope_spans_json(ss: &pt::ScopeSpans) -> Value {
    Obj::default()
        .put("scope", ss.scope.as_ref().map_or(json!({}), scope_json))
        .str("schemaUrl", &ss.schema_url)
        .list("spans", &ss.spans, span_json)
        .into()
}

fn scope_json(s: &pc::InstrumentationScope) -> Value {
    Obj::default()
        .str("name", &s.name)
        .str("version", &s.version)
        .list("attributes", &s.attributes, key_value_json)
        .num("droppedAttributesCount", s.dropped_attributes_count)
        .into()
}

/// Ids, name, kind and times are always written: every span has them.
fn span_json(s: &pt::Span) -> Value {
    let mut o = Obj::default()
        .put("traceId", hex(&s.trace_id))
        .put("spanId", hex(&s.span_id))
        .str("traceState", &s.trace_state)
        .str("parentSpanId", &hex(&s.parent_span_id))
        .num("flags", s.flags)
        .put("name", s.name.as_str())
        .put("kind", s.kind)
        .put("startTimeUnixNano", s.start_time_unix_nano.to_string())
        .put("endTimeUnixNano", s.end_time_unix_nano.to_string())
        .list("attributes", &s.attributes, key_value_json)
        .num("droppedAttributesCount", s.dropped_attributes_count)
        .list("events", &s.events, event_json)
        .num("droppedEventsCount", s.dropped_events_count)
        .list("links", &s.links, link_json)
        .num("droppedLinksCount", s.dropped_links_count);
    if let Some(status) = &s.status {
        o = o.put("status", status_json(status));
    }
    o.into()
}

fn event_json(e: &pt::span::Event) -> Value {
    Obj::default()
        .put("timeUnixNano", e.time_unix_nano.to_string())
        .str("name", &e.name)
        .list("attributes", &e.attributes, key_value_json)
        .num("droppedAttributesCount", e.dropped_attributes_count)
        .into()
}

fn link_json(l: &pt::span::Link) -> Value {
    Obj::default()
        .put("traceId", hex(&l.trace_id))
        .put("spanId", hex(&l.span_id))
        .str("traceState", &l.trace_state)
        .list("attributes", &l.attributes, key_value_json)
        .num("droppedAttributesCount", l.dropped_attributes_count)
        .num("flags", l.flags)
        .into()
}

fn status_json(s: &pt::Status) -> Value {
    Obj::default()
        .str("message", &s.message)
        .num("code", s.code)
        .into()
}

fn key_value_json(kv: &pc::KeyValue) -> Value {
    let value = kv.value.as_ref().map_or(json!({}), any_value_json);
    json!({ "key": kv.key, "value": value })
}

/// An empty `AnyValue` is `{}`.
fn any_value_json(v: &pc::AnyValue) -> Value {
    match &v.value {
        None | Some(PValue::StringValueStrindex(_)) => json!({}),
        Some(PValue::StringValue(s)) => json!({ "stringValue": s }),
        Some(PValue::BoolValue(b)) => json!({ "boolValue": b }),
        Some(PValue::IntValue(i)) => json!({ "intValue": i.to_string() }),
        Some(PValue::DoubleValue(d)) => json!({ "doubleValue": double_json(*d) }),
        Some(PValue::BytesValue(b)) => json!({ "bytesValue": STANDARD.encode(b) }),
        Some(PValue::ArrayValue(a)) => {
            let values: Vec<_> = a.values.iter().map(any_value_json).collect();
            json!({ "arrayValue": { "values": values } })
        }
        Some(PValue::KvlistValue(l)) => {
            let values: Vec<_> = l.values.iter().map(key_value_json).collect();
            json!({ "kvlistValue": { "values": values } })
        }
    }
}

/// Non-finite doubles are not JSON numbers; protobuf JSON spells them as
/// strings. A NaN's payload is lost here (protobuf keeps it).
fn double_json(d: f64) -> Value {
    match serde_json::Number::from_f64(d) {
        Some(n) => Value::Number(n),
        None if d.is_nan() => "NaN".into(),
        None if d > 0.0 => "Infinity".into(),
        None => "-Infinity".into(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)].into());
        s.push(DIGITS[usize::from(b & 15)].into());
    }
    s
}

// ---- reading: messages ---------------------------------------------------

fn traces_data(v: &Value) -> Result<pt::TracesData> {
    let root = Path::Root;
    let o = object(v, root)?;
    Ok(pt::TracesData {
        resource_spans: get(o, "resourceSpans", root, |v, p| array(v, p, resource_spans))?,
    })
}

fn resource_spans(v: &Value, path: Path<'_>) -> Result<pt::ResourceSpans> {
    let o = object(v, path)?;
    Ok(pt::ResourceSpans {
        resource: get(o, "resource", path, |v, p| resource(v, p).map(Some))?,
        scope_spans: get(o, "scopeSpans", path, |v, p| array(v, p, scope_spans))?,
        schema_url: get(o, "schemaUrl", path, as_string)?,
    })
}

fn resource(v: &Value, path: Path<'_>) -> Result<pr::Resource> {
    let o = object(v, path)?;
    Ok(pr::Resource {
        attributes: get(o, "attributes", path, attributes)?,
        dropped_attributes_count: get(o, "droppedAttributesCount", path, as_int)?,
        entity_refs: Vec::new(),
    })
}

fn scope_spans(v: &Value, path: Path<'_>) -> Result<pt::ScopeSpans> {
    let o = object(v, path)?;
    Ok(pt::ScopeSpans {
        scope: get(o, "scope", path, |v, p| scope(v, p).map(Some))?,
        spans: get(o, "spans", path, |v, p| array(v, p, span))?,
        schema_url: get(o, "schemaUrl", path, as_string)?,
    })
}

fn scope(v: &Value, path: Path<'_>) -> Result<pc::InstrumentationScope> {
    let o = object(v, path)?;
    Ok(pc::InstrumentationScope {
        name: get(o, "name", path, as_string)?,
        version: get(o, "version", path, as_string)?,
        attributes: get(o, "attributes", path, attributes)?,
        dropped_attributes_count: get(o, "droppedAttributesCount", path, as_int)?,
    })
}

fn span(v: &Value, path: Path<'_>) -> Result<pt::Span> {
    let o = object(v, path)?;
    let kind_by_name = |s: &str| pt::span::SpanKind::from_str_name(s).map(|k| k as i32);
    Ok(pt::Span {
        trace_id: get(o, "traceId", path, |v, p| as_hex(v, p, 16))?,
        span_id: get(o, "spanId", path, |v, p| as_hex(v, p, 8))?,
        trace_state: get(o, "traceState", path, as_string)?,
        parent_span_id: get(o, "parentSpanId", path, |v, p| as_hex(v, p, 8))?,
        flags: get(o, "flags", path, as_int)?,
        name: get(o, "name", path, as_string)?,
        kind: get(o, "kind", path, |v, p| as_enum(v, p, kind_by_name))?,
        start_time_unix_nano: get(o, "startTimeUnixNano", path, as_int)?,
        end_time_unix_nano: get(o, "endTimeUnixNano", path, as_int)?,
        attributes: get(o, "attributes", path, attributes)?,
        dropped_attributes_count: get(o, "droppedAttributesCount", path, as_int)?,
        events: get(o, "events", path, |v, p| array(v, p, event))?,
        dropped_events_count: get(o, "droppedEventsCount", path, as_int)?,
        links: get(o, "links", path, |v, p| array(v, p, link))?,
        dropped_links_count: get(o, "droppedLinksCount", path, as_int)?,
        status: get(o, "status", path, |v, p| status(v, p).map(Some))?,
    })
}

fn event(v: &Value, path: Path<'_>) -> Result<pt::span::Event> {
    let o = object(v, path)?;
    Ok(pt::span::Event {
        time_unix_nano: get(o, "timeUnixNano", path, as_int)?,
        name: get(o, "name", path, as_string)?,
        attributes: get(o, "attributes", path, attributes)?,
        dropped_attributes_count: get(o, "droppedAttributesCount", path, as_int)?,
    })
}

fn link(v: &Value, path: Path<'_>) -> Result<pt::span::Link> {
    let o = object(v, path)?;
    Ok(pt::span::Link {
        trace_id: get(o, "traceId", path, |v, p| as_hex(v, p, 16))?,
        span_id: get(o, "spanId", path, |v, p| as_hex(v, p, 8))?,
        trace_state: get(o, "traceState", path, as_string)?,
        attributes: get(o, "attributes", path, attributes)?,
        dropped_attributes_count: get(o, "droppedAttributesCount", path, as_int)?,
        flags: get(o, "flags", path, as_int)?,
    })
}

fn status(v: &Value, path: Path<'_>) -> Result<pt::Status> {
    let o = object(v, path)?;
    let code_by_name = |s: &str| pt::status::StatusCode::from_str_name(s).map(|c| c as i32);
    Ok(pt::Status {
        message: get(o, "message", path, as_string)?,
        code: get(o, "code", path, |v, p| as_enum(v, p, code_by_name))?,
    })
}

// ---- reading: attributes and values ---------------------------------------

fn attributes(v: &Value, path: Path<'_>) -> Result<Vec<pc::KeyValue>> {
    array(v, path, |v, p| key_value(v, p, 0))
}

fn key_value(v: &Value, path: Path<'_>, depth: usize) -> Result<pc::KeyValue> {
    let o = object(v, path)?;
    Ok(pc::KeyValue {
        key: get(o, "key", path, as_string)?,
        value: get(o, "value", path, |v, p| any_value(v, p, depth).map(Some))?,
        key_strindex: 0,
    })
}

type ValueParser = for<'p> fn(&Value, Path<'p>, usize) -> Result<PValue>;

/// The members of the `AnyValue` oneof; at most one may be present.
const VALUE_KINDS: [(&str, ValueParser); 7] = [
    ("stringValue", |v, p, _| {
        as_string(v, p).map(PValue::StringValue)
    }),
    ("boolValue", |v, p, _| as_bool(v, p).map(PValue::BoolValue)),
    ("intValue", |v, p, _| as_int(v, p).map(PValue::IntValue)),
    ("doubleValue", |v, p, _| {
        as_double(v, p).map(PValue::DoubleValue)
    }),
    ("bytesValue", |v, p, _| {
        as_bytes(v, p).map(PValue::BytesValue)
    }),
    ("arrayValue", array_value),
    ("kvlistValue", kvlist_value),
];

/// `{}` is the empty value. Nesting is bounded so that a hostile document
/// cannot exhaust the stack; the store holds nothing deeper anyway.
fn any_value(v: &Value, path: Path<'_>, depth: usize) -> Result<pc::AnyValue> {
    if depth > MAX_VALUE_DEPTH {
        return Err(path.err(format!("values nested deeper than {MAX_VALUE_DEPTH}")));
    }
    let o = object(v, path)?;
    let mut value = None;
    for (name, parse) in VALUE_KINDS {
        if let Some(member) = field(o, name) {
            if value.is_some() {
                return Err(path.err("more than one of the AnyValue members is set"));
            }
            value = Some(parse(member, path.field(name), depth)?);
        }
    }
    Ok(pc::AnyValue { value })
}

fn array_value(v: &Value, path: Path<'_>, depth: usize) -> Result<PValue> {
    let o = object(v, path)?;
    let item = |v: &Value, p: Path<'_>| any_value(v, p, depth + 1);
    let values = get(o, "values", path, |v, p| array(v, p, item))?;
    Ok(PValue::ArrayValue(pc::ArrayValue { values }))
}

fn kvlist_value(v: &Value, path: Path<'_>, depth: usize) -> Result<PValue> {
    let o = object(v, path)?;
    let item = |v: &Value, p: Path<'_>| key_value(v, p, depth + 1);
    let values = get(o, "values", path, |v, p| array(v, p, item))?;
    Ok(PValue::KvlistValue(pc::KeyValueList { values }))
}

// ---- reading: fields and scalars -----------------------------------------

/// The field `camel` of `o` parsed with `parse`; absent or `null` gives the
/// protobuf default, as in the protobuf JSON mapping.
fn get<T: Default>(
    o: &Map<String, Value>,
    camel: &'static str,
    path: Path<'_>,
    parse: impl FnOnce(&Value, Path<'_>) -> Result<T>,
) -> Result<T> {
    match field(o, camel) {
        None => Ok(T::default()),
        Some(v) => parse(v, path.field(camel)),
    }
}

/// Looks a field up by its lowerCamelCase name, then by its proto
/// (snake_case) name: the protobuf JSON mapping accepts both.
fn field<'v>(o: &'v Map<String, Value>, camel: &str) -> Option<&'v Value> {
    let v = match o.get(camel) {
        Some(v) => v,
        None if camel.bytes().any(|b| b.is_ascii_uppercase()) => o.get(&snake_case(camel))?,
        None => return None,
    };
    (!v.is_null()).then_some(v)
}

fn snake_case(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
        }
        s.push(c.to_ascii_lowercase());
    }
    s
}

fn object<'v>(v: &'v Value, path: Path<'_>) -> Result<&'v Map<String, Value>> {
    v.as_object()
        .ok_or_else(|| path.err(format!("expected an object, got {}", show(v))))
}

fn array<T>(
    v: &Value,
    path: Path<'_>,
    item: impl Fn(&Value, Path<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let items = v
        .as_array()
        .ok_or_else(|| path.err(format!("expected an array, got {}", show(v))))?;
    items
        .iter()
        .enumerate()
        .map(|(i, v)| item(v, path.index(i)))
        .collect()
}

fn as_string(v: &Value, path: Path<'_>) -> Result<String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| path.err(format!("expected a string, got {}", show(v))))
}

fn as_bool(v: &Value, path: Path<'_>) -> Result<bool> {
    v.as_bool()
        .ok_or_else(|| path.err(format!("expected true or false, got {}", show(v))))
}

/// An integer given as a JSON number or a decimal string (64-bit integers
/// are strings in OTLP/JSON, because JSON numbers lose precision past 2^53).
fn as_int<T: TryFrom<i128>>(v: &Value, path: Path<'_>) -> Result<T> {
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i128)),
        Value::String(s) => s.parse::<i128>().ok(),
        _ => None,
    };
    let n = n.ok_or_else(|| path.err(format!("expected an integer, got {}", show(v))))?;
    T::try_from(n).map_err(|_| path.err(format!("{n} is out of range")))
}

/// An enum given by number or by its proto name (`"SPAN_KIND_SERVER"`).
/// Numbers pass through unchecked; the model mapping decides which it knows.
fn as_enum(v: &Value, path: Path<'_>, by_name: impl Fn(&str) -> Option<i32>) -> Result<i32> {
    if let Some(n) = v.as_str().and_then(by_name) {
        return Ok(n);
    }
    as_int(v, path)
        .map_err(|_| path.err(format!("expected an enum number or name, got {}", show(v))))
}

fn as_double(v: &Value, path: Path<'_>) -> Result<f64> {
    let d = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            // Other spellings of the specials, and overflow, are not OTLP.
            _ => s.parse::<f64>().ok().filter(|d| d.is_finite()),
        },
        _ => None,
    };
    d.ok_or_else(|| path.err(format!("expected a double, got {}", show(v))))
}

/// Ids are hex in OTLP/JSON (not base64 as in plain protobuf JSON), either
/// case. `""` is the empty id, which means "no parent" for `parentSpanId`.
fn as_hex(v: &Value, path: Path<'_>, len: usize) -> Result<Vec<u8>> {
    let s = v
        .as_str()
        .ok_or_else(|| path.err(format!("expected a hex string, got {}", show(v))))?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    decode_hex(s)
        .filter(|b| b.len() == len)
        .ok_or_else(|| path.err(format!("expected {} hex digits, got {}", 2 * len, show(v))))
}

/// Strict: only hex digits (`u8::from_str_radix` would also take a `+`).
fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let digits: Option<Vec<u8>> = s.chars().map(|c| c.to_digit(16).map(|d| d as u8)).collect();
    let digits = digits.filter(|d| d.len() % 2 == 0)?;
    Some(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// The protobuf JSON mapping accepts standard or URL-safe base64, padded
/// or not.
fn as_bytes(v: &Value, path: Path<'_>) -> Result<Vec<u8>> {
    const ANY_PAD: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, ANY_PAD);
    const URL_SAFE_ANY: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, ANY_PAD);
    let s = v
        .as_str()
        .ok_or_else(|| path.err(format!("expected a base64 string, got {}", show(v))))?;
    let engine = if s.contains(['-', '_']) {
        &URL_SAFE_ANY
    } else {
        &STANDARD_ANY
    };
    engine
        .decode(s)
        .map_err(|e| path.err(format!("invalid base64 ({e}): {}", show(v))))
}

/// A value for an error message, cut short so a huge document does not
/// become a huge message.
fn show(v: &Value) -> String {
    const MAX: usize = 60;
    let text = v.to_string();
    if text.chars().count() <= MAX {
        return text;
    }
    let cut: String = text.chars().take(MAX).collect();
    format!("{cut}...")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::otlp::tests::{full_span, kv, sample_spans};
    use crate::span::{AnyValue, SpanId, SpanKind, StatusCode, TraceId};

    /// A minimal document around one span object.
    fn doc(span: Value) -> Value {
        json!({ "resourceSpans": [{ "scopeSpans": [{ "spans": [span] }] }] })
    }

    fn base_span() -> Value {
        json!({ "traceId": "0102030405060708090a0b0c0d0e0f10", "spanId": "0102030405060708" })
    }

    /// The span parsed from `base_span()` with `extra` merged into it.
    fn parse_with(extra: Value) -> Result<Span> {
        let mut span = base_span();
        for (k, v) in extra.as_object().unwrap() {
            span[k] = v.clone();
        }
        from_json(&doc(span)).map(|mut spans| spans.remove(0))
    }

    fn attr(value: Value) -> Result<AnyValue> {
        let span = parse_with(json!({ "attributes": [{ "key": "k", "value": value }] }))?;
        Ok(span.attributes[0].value.clone())
    }

    fn err_text(r: Result<impl std::fmt::Debug>) -> String {
        r.expect_err("expected an error").to_string()
    }

    #[test]
    fn round_trip_keeps_every_field_and_value_type() {
        let spans = sample_spans();
        assert_eq!(from_json(&to_json(&spans)).unwrap(), spans);
        assert_eq!(from_json_str(&to_json_string(&spans)).unwrap(), spans);
    }

    #[test]
    fn output_follows_the_otlp_json_spec() {
        let v = to_json(&[full_span()]);
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["schemaUrl"], "https://opentelemetry.io/schemas/1.26.0");
        assert_eq!(rs["resource"]["droppedAttributesCount"], 3);
        let ss = &rs["scopeSpans"][0];
        assert_eq!(ss["scope"]["name"], "io.opentelemetry.http");
        assert_eq!(ss["schemaUrl"], "https://example.com/scope-schema");
        let span = &ss["spans"][0];
        assert_eq!(span["traceId"], "5b8efff798038103d269b633813fc60c");
        assert_eq!(span["parentSpanId"], "ffffffffffffffff");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["flags"], 0x301);
        assert_eq!(span["endTimeUnixNano"], u64::MAX.to_string());
        assert_eq!(span["status"], json!({ "code": 2, "message": "boom" }));
        assert_eq!(span["links"][0]["flags"], u32::MAX);
        let value = |i: usize| span["attributes"][i]["value"].clone();
        assert_eq!(value(0), json!({}), "empty AnyValue");
        assert_eq!(value(5), json!({ "intValue": i64::MIN.to_string() }));
        assert_eq!(value(13), json!({ "bytesValue": "AAAwOQ==" }));
    }

    #[test]
    fn defaults_are_left_out() {
        let span = Span {
            trace_id: TraceId([1; 16]),
            span_id: SpanId([2; 8]),
            ..Span::default()
        };
        let v = to_json(&[span]);
        let span = v["resourceSpans"][0]["scopeSpans"][0]["spans"][0].clone();
        let keys: Vec<&str> = span.as_object().unwrap().keys().map(|k| &**k).collect();
        let always = [
            "endTimeUnixNano",
            "kind",
            "name",
            "spanId",
            "startTimeUnixNano",
            "traceId",
        ];
        let mut keys = keys;
        keys.sort();
        assert_eq!(keys, always);
        let rs = &v["resourceSpans"][0];
        assert_eq!(
            (&rs["resource"], &rs["scopeSpans"][0]["scope"]),
            (&json!({}), &json!({}))
        );
        assert!(rs.get("schemaUrl").is_none());
    }

    #[test]
    fn non_finite_doubles_are_strings() {
        let values = [f64::INFINITY, f64::NEG_INFINITY, f64::NAN];
        let attrs = values.map(|d| kv("d", AnyValue::Double(d))).to_vec();
        let span = Span {
            attributes: attrs,
            ..full_span()
        };
        let v = to_json(std::slice::from_ref(&span));
        let out = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["attributes"];
        let texts: Vec<&Value> = (0..3).map(|i| &out[i]["value"]["doubleValue"]).collect();
        assert_eq!(texts, ["Infinity", "-Infinity", "NaN"]);
        let back = from_json(&v).unwrap().remove(0);
        assert_eq!(back.attributes[..2], span.attributes[..2]);
        assert!(matches!(back.attributes[2].value, AnyValue::Double(d) if d.is_nan()));
    }

    #[test]
    fn input_accepts_the_protobuf_json_variants() {
        let span = parse_with(json!({
            "trace_id": "0102030405060708090A0B0C0D0E0F10",
            "parent_span_id": "",
            "start_time_unix_nano": 1_000_000_000_000_000_000u64,
            "endTimeUnixNano": 2e18,
            "flags": "7",
            "dropped_events_count": "3",
            "kind": "SPAN_KIND_CONSUMER",
            "status": { "code": "STATUS_CODE_ERROR", "message": null },
            "events": [{ "time_unix_nano": "5", "name": "e" }],
            "unknownField": { "ignored": [1, 2, 3] },
        }))
        .unwrap();
        assert_eq!(span.trace_id.0[15], 0x10);
        assert_eq!(span.parent_span_id, None);
        assert_eq!(span.start_time_unix_nano, 1_000_000_000_000_000_000);
        assert_eq!(span.end_time_unix_nano, 2_000_000_000_000_000_000);
        assert_eq!((span.flags, span.dropped_events_count), (7, 3));
        assert_eq!(span.kind, SpanKind::Consumer);
        assert_eq!(span.status.code, StatusCode::Error);
        assert_eq!(span.events[0].time_unix_nano, 5);
    }

    #[test]
    fn values_accept_the_protobuf_json_variants() {
        use AnyValue::*;
        assert_eq!(attr(json!({ "intValue": 42 })).unwrap(), Int(42));
        assert_eq!(attr(json!({ "int_value": "-42" })).unwrap(), Int(-42));
        assert_eq!(attr(json!({ "doubleValue": 7 })).unwrap(), Double(7.0));
        assert_eq!(
            attr(json!({ "doubleValue": "72.5" })).unwrap(),
            Double(72.5)
        );
        let inf = attr(json!({ "doubleValue": "-Infinity" })).unwrap();
        assert_eq!(inf, Double(f64::NEG_INFINITY));
        let url_safe = attr(json!({ "bytesValue": "-_8" })).unwrap();
        assert_eq!(url_safe, Bytes(vec![0xfb, 0xff]));
        assert_eq!(
            attr(json!({ "bytesValue": "AAAwOQ" })).unwrap(),
            Bytes(vec![0, 0, 0x30, 0x39])
        );
        assert_eq!(attr(json!({})).unwrap(), Empty);
        assert_eq!(attr(json!({ "stringValue": null })).unwrap(), Empty);
        let nested = json!({ "kvlist_value": { "values": [{ "key": "a" }] } });
        assert_eq!(attr(nested).unwrap(), KvList(vec![kv("a", Empty)]));
        assert_eq!(attr(json!({ "arrayValue": {} })).unwrap(), Array(vec![]));
        let missing = parse_with(json!({ "attributes": [{ "key": "k" }] })).unwrap();
        assert_eq!(missing.attributes[0].value, Empty);
    }

    #[test]
    fn bad_ids_are_refused_with_their_path() {
        let bad = |field: &str, value: &str| err_text(parse_with(json!({ field: value })));
        let e = bad("traceId", "zz02030405060708090a0b0c0d0e0f10");
        assert!(
            e.contains("resourceSpans[0].scopeSpans[0].spans[0].traceId"),
            "{e}"
        );
        assert!(e.contains("32 hex digits"), "{e}");
        assert!(bad("spanId", "01020304").contains("spans[0].spanId"));
        // `from_str_radix` would read "+1" as a hex byte.
        assert!(bad("spanId", "+1+2+3+4+5+6+7+8").contains("spanId"));
        assert!(bad("parentSpanId", "0102030405060708aa").contains("parentSpanId"));
        let no_trace = from_json(&doc(json!({ "spanId": "0102030405060708" })));
        assert!(err_text(no_trace).contains("traceId: must be 16 bytes, got 0"));
        let links = json!({ "links": [{ "traceId": "01", "spanId": "0102030405060708" }] });
        assert!(err_text(parse_with(links)).contains("spans[0].links[0].traceId"));
    }

    #[test]
    fn wrong_types_are_refused_with_their_path() {
        let e = err_text(from_json(&json!({ "resourceSpans": [{ "resource": 5 }] })));
        assert!(
            e.contains("resourceSpans[0].resource: expected an object, got 5"),
            "{e}"
        );
        let deep = json!({ "resourceSpans": [
            { "scopeSpans": [] },
            { "scopeSpans": [{}, { "spans": [{}, {}, {}, { "traceId": 7 }] }] },
        ] });
        let e = err_text(from_json(&deep));
        assert!(
            e.contains("resourceSpans[1].scopeSpans[1].spans[3].traceId: expected a hex"),
            "{e}"
        );
        assert!(err_text(from_json(&json!([]))).contains("expected an object"));
        assert!(err_text(from_json(&json!({ "resourceSpans": {} }))).contains("expected an array"));
        let e = err_text(parse_with(
            json!({ "attributes": [{ "key": "k", "value": "v" }] }),
        ));
        assert!(
            e.contains("spans[0].attributes[0].value: expected an object"),
            "{e}"
        );
        assert!(err_text(parse_with(json!({ "name": 1 }))).contains("name: expected a string"));
        assert!(err_text(parse_with(json!({ "startTimeUnixNano": 1.5 }))).contains("integer"));
        assert!(err_text(parse_with(json!({ "flags": -1 }))).contains("flags: -1 is out of range"));
        assert!(err_text(parse_with(json!({ "flags": 4294967296u64 }))).contains("out of range"));
    }

    #[test]
    fn bad_values_and_enums_are_refused() {
        assert!(err_text(attr(json!({ "intValue": "abc" }))).contains("value.intValue"));
        assert!(err_text(attr(json!({ "intValue": "9223372036854775808" }))).contains("range"));
        assert!(err_text(attr(json!({ "doubleValue": "inf" }))).contains("expected a double"));
        assert!(err_text(attr(json!({ "boolValue": "true" }))).contains("true or false"));
        assert!(err_text(attr(json!({ "bytesValue": "!!" }))).contains("invalid base64"));
        let two = attr(json!({ "stringValue": "a", "intValue": "1" }));
        assert!(err_text(two).contains("more than one"));
        let e = err_text(parse_with(json!({ "kind": "SPAN_KIND_BOGUS" })));
        assert!(e.contains("kind: expected an enum number or name"), "{e}");
        let e = err_text(parse_with(json!({ "kind": 9 })));
        assert!(e.contains("spans[0].kind: unknown span kind 9"), "{e}");
        let e = err_text(parse_with(json!({ "status": { "code": 3 } })));
        assert!(e.contains("status.code: unknown status code 3"), "{e}");
    }

    #[test]
    fn hostile_documents_give_errors_not_panics() {
        let mut value = json!({ "stringValue": "leaf" });
        for _ in 0..200 {
            value = json!({ "arrayValue": { "values": [value] } });
        }
        assert!(err_text(attr(value)).contains("nested deeper"));
        assert!(err_text(from_json_str("{\"resourceSpans\": ["))
            .starts_with("invalid input: invalid OTLP/JSON"));
        let long = "é".repeat(1000);
        assert!(err_text(parse_with(json!({ "name": [long] }))).len() < 300);
    }
}
