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
        self.shape().payload_size()
    }

    /// An upper bound of the span's encoded size in bytes; the size limit is
    /// checked against it before anything is written.
    pub fn encoded_size_hint(&self) -> usize {
        self.shape().size_hint(&self.shared_shape())
    }

    /// The counts of the span's own fields (all but resource and scope),
    /// in one walk.
    pub fn shape(&self) -> Shape {
        let mut sh = Shape {
            bytes: self.trace_state.len() + self.name.len() + self.status.message.len(),
            ..Shape::default()
        };
        sh.add_list(&self.attributes);
        for e in &self.events {
            sh.events += 1;
            sh.bytes += e.name.len();
            sh.add_list(&e.attributes);
        }
        for l in &self.links {
            sh.links += 1;
            sh.bytes += l.trace_state.len();
            sh.add_list(&l.attributes);
        }
        sh
    }

    /// The counts of the span's resource and scope. Spans of one resource
    /// and scope share them, so a caller walking many spans can compute
    /// this once per resource and scope.
    pub fn shared_shape(&self) -> Shape {
        let (r, sc) = (&self.resource, &self.scope);
        let mut sh = Shape {
            bytes: r.schema_url.len() + sc.name.len() + sc.version.len() + sc.schema_url.len(),
            ..Shape::default()
        };
        sh.add_list(&r.attributes);
        sh.add_list(&sc.attributes);
        sh
    }
}

/// What a span's size estimates, attribute count and nesting depth are
/// computed from, gathered in one walk of its fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Bytes of names, keys, strings and byte values.
    bytes: usize,
    /// Keys, and string, bytes, array and list values.
    items: usize,
    /// Other values.
    scalars: usize,
    events: usize,
    links: usize,
    /// Attributes of the top-level lists (not those inside values).
    pub attributes: usize,
    /// Deepest nesting of a value: a scalar is 0, an array of scalars 1.
    pub depth: usize,
}

impl Shape {
    /// See [`Span::payload_size`].
    pub fn payload_size(&self) -> usize {
        self.own(&Overheads {
            fixed: 64,
            item: 2,
            scalar: 5,
            event: 8,
            link: 32,
        })
    }

    /// See [`Span::encoded_size_hint`]; `shared` is the span's
    /// [`Span::shared_shape`].
    pub fn size_hint(&self, shared: &Shape) -> usize {
        let o = Overheads {
            fixed: 128,
            item: 10,
            scalar: 10,
            event: 24,
            link: 48,
        };
        self.own(&o) + shared.bytes + o.item * shared.items + o.scalar * shared.scalars
    }

    fn own(&self, o: &Overheads) -> usize {
        o.fixed
            + self.bytes
            + o.item * self.items
            + o.scalar * self.scalars
            + o.event * self.events
            + o.link * self.links
    }

    fn add_list(&mut self, list: &[KeyValue]) {
        self.attributes += list.len();
        self.add_pairs(list, 0);
    }

    /// Adds key-value pairs found at nesting `level`.
    fn add_pairs(&mut self, list: &[KeyValue], level: usize) {
        for kv in list {
            self.items += 1;
            self.bytes += kv.key.len();
            self.add_value(&kv.value, level);
        }
    }

    fn add_value(&mut self, v: &AnyValue, level: usize) {
        match v {
            AnyValue::String(s) => {
                self.items += 1;
                self.bytes += s.len();
            }
            AnyValue::Bytes(b) => {
                self.items += 1;
                self.bytes += b.len();
            }
            AnyValue::Array(a) => {
                self.items += 1;
                self.depth = self.depth.max(level + 1);
                for x in a {
                    self.add_value(x, level + 1);
                }
            }
            AnyValue::KvList(l) => {
                self.items += 1;
                self.depth = self.depth.max(level + 1);
                self.add_pairs(l, level + 1);
            }
            _ => self.scalars += 1,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The size estimates as separate walks, as they were first written:
    /// the one-walk [`Shape`] must give the same figures.
    fn walked_size(list: &[KeyValue], item: usize, scalar: usize) -> usize {
        fn value(v: &AnyValue, item: usize, scalar: usize) -> usize {
            match v {
                AnyValue::String(s) => item + s.len(),
                AnyValue::Bytes(b) => item + b.len(),
                AnyValue::Array(a) => {
                    item + a.iter().map(|v| value(v, item, scalar)).sum::<usize>()
                }
                AnyValue::KvList(l) => item + walked_size(l, item, scalar),
                _ => scalar,
            }
        }
        list.iter()
            .map(|kv| item + kv.key.len() + value(&kv.value, item, scalar))
            .sum()
    }

    fn walked_own(s: &Span, [fixed, item, scalar, event, link]: [usize; 5]) -> usize {
        let events: usize = s
            .events
            .iter()
            .map(|e| event + e.name.len() + walked_size(&e.attributes, item, scalar))
            .sum();
        let links: usize = s
            .links
            .iter()
            .map(|l| link + l.trace_state.len() + walked_size(&l.attributes, item, scalar))
            .sum();
        fixed
            + s.trace_state.len()
            + s.name.len()
            + s.status.message.len()
            + walked_size(&s.attributes, item, scalar)
            + events
            + links
    }

    #[test]
    fn one_walk_shapes_give_the_walked_sizes_counts_and_depths() {
        let kv = |k: &str, v: AnyValue| KeyValue {
            key: k.into(),
            value: v,
        };
        let nested = AnyValue::KvList(vec![
            kv(
                "a",
                AnyValue::Array(vec![AnyValue::Int(1), AnyValue::Array(vec![])]),
            ),
            kv("b", AnyValue::Bytes(vec![1, 2, 3])),
            kv("c", AnyValue::KvList(vec![])),
        ]);
        let mut crafted = Span {
            name: "op".into(),
            trace_state: "k=v".into(),
            attributes: vec![kv("n", nested.clone()), kv("d", AnyValue::Double(1.5))],
            events: vec![Event {
                name: "ev".into(),
                attributes: vec![kv("e", AnyValue::String("x".repeat(9)))],
                ..Event::default()
            }],
            links: vec![Link {
                trace_state: "t".into(),
                attributes: vec![kv("l", AnyValue::Array(vec![nested]))],
                ..Link::default()
            }],
            ..Span::default()
        };
        crafted.status.message = "boom".into();
        crafted.resource = Arc::new(Resource {
            attributes: vec![kv("service.name", AnyValue::String("svc".into()))],
            schema_url: "https://example.com/r".into(),
            ..Resource::default()
        });
        let mut spans = crate::gen::generate(5, 300);
        spans.push(crafted);
        for s in &spans {
            let sh = s.shape();
            assert_eq!(s.payload_size(), walked_own(s, [64, 2, 5, 8, 32]));
            let shared = walked_size(&s.resource.attributes, 10, 10)
                + s.resource.schema_url.len()
                + walked_size(&s.scope.attributes, 10, 10)
                + s.scope.name.len()
                + s.scope.version.len()
                + s.scope.schema_url.len();
            assert_eq!(
                s.encoded_size_hint(),
                walked_own(s, [128, 10, 10, 24, 48]) + shared
            );
            let lists = std::iter::once(&s.attributes)
                .chain(s.events.iter().map(|e| &e.attributes))
                .chain(s.links.iter().map(|l| &l.attributes))
                .chain([&s.resource.attributes, &s.scope.attributes]);
            let (mut count, mut depth) = (0, 0);
            for l in lists {
                count += l.len();
                depth = l.iter().map(|kv| kv.value.depth()).fold(depth, usize::max);
            }
            assert_eq!(s.attribute_count(), count);
            assert_eq!(sh.depth.max(s.shared_shape().depth), depth);
        }
        let last = spans.last().unwrap().shape();
        assert_eq!(last.depth, 4, "link → array → list → array → array");
    }

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
