//! The data model: OpenTelemetry spans, field for field.
//!
//! Every field of an OTLP span is kept, so a span read back from the store is
//! equal to the one written. Doubles compare by bit pattern, so a NaN payload
//! survives a round trip and compares equal to itself.

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A 16-byte trace identifier. All zeroes is invalid. Ordered as the bytes
/// are (big-endian), which is the order of the trace index.
#[derive(Clone, Copy, Eq, Default)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span identifier. All zeroes is invalid.
#[derive(Clone, Copy, Eq, Default)]
pub struct SpanId(pub [u8; 8]);

// Comparing as integers gives the byte order without a call to memcmp,
// which matters when sorting every span of a segment and on every lookup
// of the in-memory table's trace map.
impl PartialEq for TraceId {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        u128::from_ne_bytes(self.0) == u128::from_ne_bytes(other.0)
    }
}
impl PartialEq for SpanId {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        u64::from_ne_bytes(self.0) == u64::from_ne_bytes(other.0)
    }
}
// Equal ids have equal bytes, so hashing the bytes agrees with `eq`.
impl std::hash::Hash for TraceId {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write(&self.0);
    }
}
impl std::hash::Hash for SpanId {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write(&self.0);
    }
}
impl Ord for TraceId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        u128::from_be_bytes(self.0).cmp(&u128::from_be_bytes(other.0))
    }
}
impl PartialOrd for TraceId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SpanId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        u64::from_be_bytes(self.0).cmp(&u64::from_be_bytes(other.0))
    }
}
impl PartialOrd for SpanId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

fn parse_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N]> {
    let bad = || Error::InvalidInput(format!("{what} must be {} hex digits, got {s:?}", 2 * N));
    // from_str_radix alone would accept a sign: only hex digits are ids.
    if s.len() != 2 * N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = s.get(2 * i..2 * i + 2).ok_or_else(bad)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
}

impl TraceId {
    /// Parses 32 hex digits, either case.
    pub fn from_hex(s: &str) -> Result<Self> {
        parse_hex::<16>(s, "trace id").map(TraceId)
    }
    /// True when every byte is zero, which OTLP defines as invalid.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 16]
    }
}

impl SpanId {
    /// Parses 16 hex digits, either case.
    pub fn from_hex(s: &str) -> Result<Self> {
        parse_hex::<8>(s, "span id").map(SpanId)
    }
    /// True when every byte is zero, which OTLP defines as invalid.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 8]
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// The role of a span in a trace (OTLP `SpanKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
#[repr(u8)]
pub enum SpanKind {
    #[default]
    Unspecified = 0,
    Internal = 1,
    Server = 2,
    Client = 3,
    Producer = 4,
    Consumer = 5,
}

impl SpanKind {
    /// Maps the OTLP enum number; unknown numbers are `None`.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Unspecified,
            1 => Self::Internal,
            2 => Self::Server,
            3 => Self::Client,
            4 => Self::Producer,
            5 => Self::Consumer,
            _ => return None,
        })
    }
    /// Lower-case name as used by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Internal => "internal",
            Self::Server => "server",
            Self::Client => "client",
            Self::Producer => "producer",
            Self::Consumer => "consumer",
        }
    }
}

/// Span status code (OTLP `Status.StatusCode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum StatusCode {
    #[default]
    Unset = 0,
    Ok = 1,
    Error = 2,
}

impl StatusCode {
    /// Maps the OTLP enum number; unknown numbers are `None`.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Unset,
            1 => Self::Ok,
            2 => Self::Error,
            _ => return None,
        })
    }
}

/// A typed attribute value (OTLP `AnyValue`). `Empty` is an `AnyValue`
/// with no value set, which OTLP allows.
#[derive(Clone, Debug, Default)]
pub enum AnyValue {
    #[default]
    Empty,
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    Array(Vec<AnyValue>),
    KvList(Vec<KeyValue>),
}

impl PartialEq for AnyValue {
    fn eq(&self, other: &Self) -> bool {
        use AnyValue::*;
        match (self, other) {
            (Empty, Empty) => true,
            (String(a), String(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            // Bitwise, so that a stored NaN equals itself after a round trip.
            (Double(a), Double(b)) => a.to_bits() == b.to_bits(),
            (Bytes(a), Bytes(b)) => a == b,
            (Array(a), Array(b)) => a == b,
            (KvList(a), KvList(b)) => a == b,
            _ => false,
        }
    }
}

impl AnyValue {
    /// The value as a string, the way queries compare values across types.
    pub fn to_query_string(&self) -> String {
        match self {
            AnyValue::Empty => String::new(),
            AnyValue::String(s) => s.clone(),
            AnyValue::Bool(b) => b.to_string(),
            AnyValue::Int(i) => i.to_string(),
            AnyValue::Double(d) => d.to_string(),
            AnyValue::Bytes(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
            AnyValue::Array(_) | AnyValue::KvList(_) => format!("{self:?}"),
        }
    }

    /// Appends [`to_query_string`](AnyValue::to_query_string) to `out`,
    /// without allocating for the common scalar kinds.
    pub fn write_query_string(&self, out: &mut String) {
        match self {
            AnyValue::Empty => {}
            AnyValue::String(s) => out.push_str(s),
            AnyValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            AnyValue::Int(i) => push_decimal(out, *i),
            v => out.push_str(&v.to_query_string()),
        }
    }

    /// Depth of nesting: a scalar is 0, an array of scalars is 1.
    pub fn depth(&self) -> usize {
        match self {
            AnyValue::Array(v) => 1 + v.iter().map(AnyValue::depth).max().unwrap_or(0),
            AnyValue::KvList(v) => 1 + v.iter().map(|kv| kv.value.depth()).max().unwrap_or(0),
            _ => 0,
        }
    }
}

/// Appends `i` in decimal, as `i64::to_string` writes it.
fn push_decimal(out: &mut String, i: i64) {
    let mut digits = [0u8; 20];
    let mut n = i.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if i < 0 {
        out.push('-');
    }
    for d in &digits[at..] {
        out.push(char::from(*d));
    }
}

/// One attribute: a key and a typed value. Attribute lists keep order and
/// duplicates exactly as given.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KeyValue {
    pub key: String,
    pub value: AnyValue,
}

impl KeyValue {
    /// Shorthand for building attributes.
    pub fn new(key: impl Into<String>, value: AnyValue) -> Self {
        KeyValue {
            key: key.into(),
            value,
        }
    }
}

/// A timestamped annotation on a span (OTLP `Span.Event`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Event {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

/// A pointer to a span of this or another trace (OTLP `Span.Link`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Link {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub trace_state: String,
    pub flags: u32,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
}

/// Outcome of the operation a span describes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Status {
    pub code: StatusCode,
    pub message: String,
}

/// The entity that produced the span (OTLP `Resource` plus the schema url of
/// its `ResourceSpans`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Resource {
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

impl Resource {
    /// The `service.name` attribute when it is a string.
    pub fn service_name(&self) -> Option<&str> {
        self.attributes
            .iter()
            .find_map(|kv| match (&*kv.key, &kv.value) {
                ("service.name", AnyValue::String(s)) => Some(s.as_str()),
                _ => None,
            })
    }
}

/// The library that produced the span (OTLP `InstrumentationScope` plus the
/// schema url of its `ScopeSpans`).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Scope {
    pub name: String,
    pub version: String,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub schema_url: String,
}

/// One span with its resource and scope.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: String,
    pub flags: u32,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub attributes: Vec<KeyValue>,
    pub dropped_attributes_count: u32,
    pub events: Vec<Event>,
    pub dropped_events_count: u32,
    pub links: Vec<Link>,
    pub dropped_links_count: u32,
    pub status: Status,
    /// Shared: the spans of one resource (as in one OTLP `ResourceSpans`)
    /// point to one copy.
    pub resource: Arc<Resource>,
    /// Shared like the resource.
    pub scope: Arc<Scope>,
}

impl Span {
    /// The service, which is the resource attribute `service.name`.
    pub fn service_name(&self) -> Option<&str> {
        self.resource.service_name()
    }

    /// Duration in nanoseconds (end minus start; zero if end is earlier).
    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano
            .saturating_sub(self.start_time_unix_nano)
    }

    /// Total attribute count over span, events, links, resource and scope.
    pub fn attribute_count(&self) -> usize {
        self.attributes.len()
            + self
                .events
                .iter()
                .map(|e| e.attributes.len())
                .sum::<usize>()
            + self.links.iter().map(|l| l.attributes.len()).sum::<usize>()
            + self.resource.attributes.len()
            + self.scope.attributes.len()
    }

    /// Approximate bytes the span's own fields take, without its resource
    /// and scope (which blocks store once, and which are shared). Used to
    /// size blocks and the in-memory table; cheap to compute.
    pub fn payload_size(&self) -> usize {
        self.own_size(&Overheads {
            fixed: 64,
            item: 2,
            scalar: 5,
            event: 8,
            link: 32,
        })
    }

    /// An upper bound of the span's encoded size in bytes; the size limit is
    /// checked against it before anything is written.
    pub fn encoded_size_hint(&self) -> usize {
        let o = Overheads {
            fixed: 128,
            item: 10,
            scalar: 10,
            event: 24,
            link: 48,
        };
        let shared = o.kvs(&self.resource.attributes)
            + self.resource.schema_url.len()
            + o.kvs(&self.scope.attributes)
            + self.scope.name.len()
            + self.scope.version.len()
            + self.scope.schema_url.len();
        self.own_size(&o) + shared
    }

    fn own_size(&self, o: &Overheads) -> usize {
        let events: usize = self
            .events
            .iter()
            .map(|e| o.event + e.name.len() + o.kvs(&e.attributes))
            .sum();
        let links: usize = self
            .links
            .iter()
            .map(|l| o.link + l.trace_state.len() + o.kvs(&l.attributes))
            .sum();
        o.fixed
            + self.trace_state.len()
            + self.name.len()
            + self.status.message.len()
            + o.kvs(&self.attributes)
            + events
            + links
    }
}

/// Bytes counted for each kind of item by the size estimates.
struct Overheads {
    fixed: usize,
    item: usize,
    scalar: usize,
    event: usize,
    link: usize,
}

impl Overheads {
    fn kvs(&self, list: &[KeyValue]) -> usize {
        list.iter()
            .map(|kv| self.item + kv.key.len() + self.value(&kv.value))
            .sum()
    }

    fn value(&self, v: &AnyValue) -> usize {
        match v {
            AnyValue::String(s) => self.item + s.len(),
            AnyValue::Bytes(b) => self.item + b.len(),
            AnyValue::Array(a) => self.item + a.iter().map(|v| self.value(v)).sum::<usize>(),
            AnyValue::KvList(l) => self.item + self.kvs(l),
            _ => self.scalar,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_written_in_place_match_the_allocating_ones() {
        let values = [
            AnyValue::Empty,
            AnyValue::String("GET".into()),
            AnyValue::Bool(true),
            AnyValue::Bool(false),
            AnyValue::Int(0),
            AnyValue::Int(-7),
            AnyValue::Int(500),
            AnyValue::Int(i64::MIN),
            AnyValue::Int(i64::MAX),
            AnyValue::Double(-0.5),
            AnyValue::Bytes(vec![0, 0xab]),
            AnyValue::Array(vec![AnyValue::Int(1)]),
        ];
        for v in values {
            let mut out = String::from("x=");
            v.write_query_string(&mut out);
            assert_eq!(out, format!("x={}", v.to_query_string()), "{v:?}");
        }
    }

    #[test]
    fn hex_ids_round_trip_and_reject_garbage() {
        let t = TraceId::from_hex("0123456789ABCDEF0123456789abcdef").unwrap();
        assert_eq!(t.to_string(), "0123456789abcdef0123456789abcdef");
        assert!(TraceId::from_hex("0123").is_err());
        assert!(TraceId::from_hex("zz23456789abcdef0123456789abcdef").is_err());
        assert!(SpanId::from_hex("é123456789abcde").is_err());
        assert!(SpanId::from_hex("+1+1+1+1+1+1+1+1").is_err());
        assert_eq!(SpanId::from_hex("00000000000000ff").unwrap().0[7], 0xff);
        let (a, b) = (
            TraceId([1; 16]),
            TraceId::from_hex("0101010101010101010101010101ffff").unwrap(),
        );
        assert!(a < b && a.0 < b.0, "integer order is byte order");
    }

    #[test]
    fn nan_equals_itself_bitwise() {
        let a = AnyValue::Double(f64::from_bits(0x7ff8_0000_0000_0001));
        assert_eq!(a, a.clone());
        assert_ne!(a, AnyValue::Double(f64::NAN));
    }

    #[test]
    fn service_name_comes_from_resource() {
        let mut s = Span::default();
        assert_eq!(s.service_name(), None);
        Arc::make_mut(&mut s.resource)
            .attributes
            .push(KeyValue::new(
                "service.name",
                AnyValue::String("api".into()),
            ));
        assert_eq!(s.service_name(), Some("api"));
    }
}
