//! The search index of a sealed segment (format version 3 on): a digest
//! of every trace, and per service the traces it appears in with the start
//! times of its spans there.
//!
//! A digest holds what a [`crate::query::TraceSummary`] needs (times, span
//! count, error flag, root span, services), so a search summarises the
//! traces it returns without decoding a block. Service rows let a search
//! for one service walk that service's traces backwards in time from the
//! end of its window and stop as soon as the result is complete.
//!
//! Sections (all little-endian; see format-spec.md):
//! - DIGESTS: one record per trace-index entry, in the same order;
//! - SERVICES: the service names with their range of service rows;
//! - SERVICE_ROWS: rows (min start, max start, trace ordinal), grouped by
//!   service, sorted by min start within a service;
//! - TRACE_SERVICES: service ids, a run per digest.
//!
//! From format version 6 on, DIGESTS and SERVICE_ROWS records are packed
//! ([`Packing`]): times are stored as offsets from a base, and every number
//! in as few bytes as the section's largest needs. Before, their fields had
//! fixed widths ([`DIGEST_LEN`], [`ROW_LEN`]), and service ids were u32.

use std::collections::{BTreeMap, BTreeSet};

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::codec::{put_bytes, put_u64, put_varint, Cursor, DecodeResult};
use crate::hash::FastMap;
use crate::span::{Span, SpanId, SpanKind, StatusCode, TraceId};

/// Bytes of one digest record before format version 6.
pub const DIGEST_LEN: usize = 56;
/// Bytes of one service row before format version 6.
pub const ROW_LEN: usize = 20;
/// The first format version whose DIGESTS, SERVICE_ROWS and TRACE_SERVICES
/// are packed.
pub const PACKED_VERSION: u32 = 6;

/// Digest fields, in record order: three times, the root span id (8 bytes
/// as they are), then five u32 numbers.
const D_START: usize = 0;
const D_END: usize = 1;
const D_ROOT_START: usize = 2;
const D_ROOT_SPAN: usize = 3;
const D_SPANS: usize = 4;
const D_ROOT_OP: usize = 5;
const D_FLAGS: usize = 6;
const D_SERVICES_AT: usize = 7;
const D_SERVICES_LEN: usize = 8;
/// Service row fields, in record order: two times and a u32.
const R_MIN: usize = 0;
const R_MAX: usize = 1;
const R_TRACE: usize = 2;

/// Digest flag: some span of the trace has status `Error`.
pub const FLAG_ERROR: u32 = 1;
/// Digest flag: the root span has no parent.
pub const FLAG_ROOT: u32 = 2;

/// What is known of a trace from some of its spans; parts of the same
/// trace merge into what all of them together say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TracePart {
    pub trace: TraceId,
    pub start: u64,
    pub end: u64,
    pub spans: u64,
    pub error: bool,
    /// The root candidate's order key: (has a parent, start, span id); the
    /// least key is the root.
    pub root_key: (bool, u64, SpanId),
    pub root_service: String,
    pub root_name: String,
    pub root_kind: SpanKind,
    /// Per service: min and max start of its spans.
    pub services: BTreeMap<String, (u64, u64)>,
}

impl TracePart {
    /// The part told by one span.
    pub fn of_span(s: &Span) -> TracePart {
        let service = s.service_name().unwrap_or("");
        let start = s.start_time_unix_nano;
        TracePart {
            trace: s.trace_id,
            start,
            end: s.end_time_unix_nano,
            spans: 1,
            error: s.status.code == StatusCode::Error,
            root_key: (s.parent_span_id.is_some(), start, s.span_id),
            root_service: service.to_string(),
            root_name: s.name.clone(),
            root_kind: s.kind,
            services: BTreeMap::from([(service.to_string(), (start, start))]),
        }
    }

    /// Adds what `s` (of the same trace) tells, without allocating unless
    /// it brings a new service or root.
    pub fn add_span(&mut self, s: &Span) {
        let start = s.start_time_unix_nano;
        self.start = self.start.min(start);
        self.end = self.end.max(s.end_time_unix_nano);
        self.spans += 1;
        self.error |= s.status.code == StatusCode::Error;
        let key = (s.parent_span_id.is_some(), start, s.span_id);
        let service = s.service_name().unwrap_or("");
        if key < self.root_key {
            self.root_key = key;
            self.root_service = service.to_string();
            self.root_name = s.name.clone();
            self.root_kind = s.kind;
        }
        match self.services.get_mut(service) {
            Some((lo, hi)) => {
                *lo = (*lo).min(start);
                *hi = (*hi).max(start);
            }
            None => {
                self.services.insert(service.to_string(), (start, start));
            }
        }
    }

    /// Merges another part of the same trace.
    pub fn merge(&mut self, o: &TracePart) {
        self.start = self.start.min(o.start);
        self.end = self.end.max(o.end);
        self.spans += o.spans;
        self.error |= o.error;
        if o.root_key < self.root_key {
            self.root_key = o.root_key;
            self.root_service.clone_from(&o.root_service);
            self.root_name.clone_from(&o.root_name);
            self.root_kind = o.root_kind;
        }
        for (svc, (lo, hi)) in &o.services {
            let e = self.services.entry(svc.clone()).or_insert((*lo, *hi));
            e.0 = e.0.min(*lo);
            e.1 = e.1.max(*hi);
        }
    }

    /// Parts of each trace among rows sorted by trace id.
    pub fn of_sorted(rows: &[&Span]) -> Vec<TracePart> {
        let mut out: Vec<TracePart> = Vec::new();
        for s in rows {
            match out.last_mut() {
                Some(p) if p.trace == s.trace_id => p.add_span(s),
                _ => out.push(TracePart::of_span(s)),
            }
        }
        out
    }
}

/// Collects the parts of a segment's traces while its blocks are written.
#[derive(Default, Debug, Clone)]
pub struct DigestBuilder {
    parts: FastMap<TraceId, TracePart>,
}

impl DigestBuilder {
    pub fn add(&mut self, part: &TracePart) {
        match self.parts.get_mut(&part.trace) {
            Some(p) => p.merge(part),
            None => {
                self.parts.insert(part.trace, part.clone());
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Encodes DIGESTS, SERVICES, SERVICE_ROWS and TRACE_SERVICES, packed
    /// (format version 6). Digests follow the trace index's order
    /// (ascending trace id); `root_op` gives the catalog id of a (service,
    /// name, kind) triple.
    pub fn encode(&self, mut root_op: impl FnMut(&str, &str, SpanKind) -> u32) -> [Vec<u8>; 4] {
        let mut parts: Vec<&TracePart> = self.parts.values().collect();
        parts.sort_unstable_by_key(|p| p.trace);
        let names: BTreeSet<&str> = parts
            .iter()
            .flat_map(|p| p.services.keys().map(String::as_str))
            .collect();
        let ids: FastMap<&str, u32> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i as u32))
            .collect();
        let mut rows: Vec<Vec<(u64, u64, u32)>> = vec![Vec::new(); names.len()];
        let mut digests = Vec::with_capacity(parts.len());
        let mut trace_services = Vec::new();
        for (ordinal, p) in parts.iter().enumerate() {
            let flags =
                if p.error { FLAG_ERROR } else { 0 } | if p.root_key.0 { 0 } else { FLAG_ROOT };
            digests.push(Digest {
                start: p.start,
                end: p.end,
                root_start: p.root_key.1,
                root_span: p.root_key.2,
                spans: p.spans.min(u64::from(u32::MAX)) as u32,
                root_op: root_op(&p.root_service, &p.root_name, p.root_kind),
                flags,
                services_at: trace_services.len() as u32,
                services_len: p.services.len() as u32,
            });
            for (svc, (lo, hi)) in &p.services {
                let id = ids[svc.as_str()];
                trace_services.push(id);
                rows[id as usize].push((*lo, *hi, ordinal as u32));
            }
        }
        let mut services = Vec::new();
        let mut all_rows = Vec::new();
        let mut max_width = 0u64;
        put_varint(&mut services, names.len() as u64);
        for (name, mut r) in names.iter().zip(rows) {
            r.sort_unstable();
            put_bytes(&mut services, name.as_bytes());
            put_varint(&mut services, all_rows.len() as u64);
            put_varint(&mut services, r.len() as u64);
            for (lo, hi, t) in r {
                max_width = max_width.max(hi - lo);
                all_rows.push([lo, hi, u64::from(t)]);
            }
        }
        put_varint(&mut services, max_width);
        let digest_fields: Vec<[u64; 9]> = digests.iter().map(Digest::fields).collect();
        let id_width = id_width(PACKED_VERSION, names.len());
        let mut ids_bytes = Vec::with_capacity(trace_services.len() * id_width);
        for id in trace_services {
            put_uint(&mut ids_bytes, u64::from(id), id_width);
        }
        [
            pack(
                &digest_fields,
                &[D_START, D_END, D_ROOT_START],
                &[D_ROOT_SPAN],
            ),
            services,
            pack(&all_rows, &[R_MIN, R_MAX], &[]),
            ids_bytes,
        ]
    }
}

/// Bytes a service id takes in the TRACE_SERVICES section of a file of
/// format `version` with `services` services: 4 before version 6, then as
/// few as the largest id needs, at least one.
pub fn id_width(version: u32, services: usize) -> usize {
    match version >= PACKED_VERSION {
        true => width_of(services.saturating_sub(1) as u64),
        false => 4,
    }
}

/// Bytes `v` needs, at least one.
fn width_of(v: u64) -> usize {
    (8 - v.leading_zeros() as usize / 8).max(1)
}

/// Appends the `w` low bytes of `v`, little-endian.
fn put_uint(out: &mut Vec<u8>, v: u64, w: usize) {
    out.extend_from_slice(&v.to_le_bytes()[..w]);
}

/// Reads a service id of TRACE_SERVICES, as many bytes as `b` holds.
pub fn read_id(b: &[u8]) -> u64 {
    read_uint(b, b.len())
}

/// Reads a `w`-byte little-endian number.
fn read_uint(b: &[u8], w: usize) -> u64 {
    let mut a = [0u8; 8];
    a[..w].copy_from_slice(&b[..w]);
    u64::from_le_bytes(a)
}

/// Encodes records as a packed section: the base (the least of the `times`
/// fields of every record), then each field's width except those of the
/// `raw` fields (8 bytes stored as they are), then the records.
fn pack<const F: usize>(records: &[[u64; F]], times: &[usize], raw: &[usize]) -> Vec<u8> {
    let base = records
        .iter()
        .flat_map(|r| times.iter().map(|f| r[*f]))
        .min()
        .unwrap_or(0);
    let stored = |r: &[u64; F], f: usize| {
        if times.contains(&f) {
            r[f] - base
        } else {
            r[f]
        }
    };
    let widths: Vec<usize> = (0..F)
        .map(|f| match raw.contains(&f) {
            true => 8,
            false => width_of(records.iter().map(|r| stored(r, f)).max().unwrap_or(0)),
        })
        .collect();
    let len: usize = widths.iter().sum();
    let mut out = Vec::with_capacity(8 + F + records.len() * len);
    put_u64(&mut out, base);
    for f in (0..F).filter(|f| !raw.contains(f)) {
        out.push(widths[f] as u8);
    }
    for r in records {
        for f in 0..F {
            match raw.contains(&f) {
                true => out.extend_from_slice(&r[f].to_be_bytes()),
                false => put_uint(&mut out, stored(r, f), widths[f]),
            }
        }
    }
    out
}

/// Where the fields of the records of a DIGESTS or SERVICE_ROWS section lie
/// (format-spec 6.4.8, 6.4.10), and what base their times are stored from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packing<const F: usize> {
    base: u64,
    /// Offset in a record and width of each field.
    at: [usize; F],
    width: [usize; F],
    /// Whether a field is a time, stored minus `base`.
    time: [bool; F],
    /// Bytes of a record.
    pub len: usize,
    /// Bytes of the section before the first record.
    pub header: usize,
}

impl<const F: usize> Default for Packing<F> {
    fn default() -> Self {
        Packing {
            base: 0,
            at: [0; F],
            width: [0; F],
            time: [false; F],
            len: 0,
            header: 0,
        }
    }
}

/// The packing of a DIGESTS section.
pub type DigestPacking = Packing<9>;
/// The packing of a SERVICE_ROWS section.
pub type RowPacking = Packing<3>;

impl<const F: usize> Packing<F> {
    /// Fixed widths, no base, and `pad` reserved bytes at the end of each
    /// record: the layout before format version 6.
    fn fixed(width: [usize; F], times: &[usize], pad: usize) -> Self {
        let mut p = Packing {
            width,
            ..Packing::default()
        };
        p.place(times, pad);
        p
    }

    fn place(&mut self, times: &[usize], pad: usize) {
        let mut at = 0;
        for f in 0..F {
            self.at[f] = at;
            at += self.width[f];
            self.time[f] = times.contains(&f);
        }
        self.len = at + pad;
    }

    /// Reads a packed header: the base, then the width of each field not
    /// in `raw`; a time may take 1 to 8 bytes, any other number 1 to 4.
    fn packed(section: &[u8], times: &[usize], raw: &[usize]) -> Result<Self, String> {
        let named = F - raw.len();
        let head = section
            .get(..8 + named)
            .ok_or("section too short for its header")?;
        let mut p = Packing {
            base: LE::read_u64(head),
            header: 8 + named,
            ..Packing::default()
        };
        let mut given = head[8..].iter();
        for f in 0..F {
            p.width[f] = match raw.contains(&f) {
                true => 8,
                false => usize::from(*given.next().ok_or("header too short")?),
            };
            let most = if times.contains(&f) || raw.contains(&f) {
                8
            } else {
                4
            };
            if p.width[f] == 0 || p.width[f] > most {
                return Err(format!("field {f} is {} bytes wide", p.width[f]));
            }
        }
        p.place(times, 0);
        Ok(p)
    }

    /// The number of records of `section`, if it holds a whole number.
    pub fn count(&self, section: &[u8]) -> Option<usize> {
        let body = section.len().checked_sub(self.header)?;
        (self.len > 0 && body.is_multiple_of(self.len)).then(|| body / self.len)
    }

    /// Record `i` of `section`.
    fn record<'a>(&self, section: &'a [u8], i: usize) -> Option<&'a [u8]> {
        if self.len == 0 {
            return None;
        }
        let at = i.checked_mul(self.len)?.checked_add(self.header)?;
        section.get(at..at.checked_add(self.len)?)
    }

    /// Number field `f` of a record; `None` when a time overflows.
    fn get(&self, rec: &[u8], f: usize) -> Option<u64> {
        let v = read_uint(&rec[self.at[f]..], self.width[f]);
        match self.time[f] {
            true => v.checked_add(self.base),
            false => Some(v),
        }
    }
}

impl DigestPacking {
    /// The packing of the DIGESTS section of a file of format `version`.
    pub fn digests(version: u32, section: &[u8]) -> Result<Self, String> {
        let times = [D_START, D_END, D_ROOT_START];
        match version >= PACKED_VERSION {
            true => Packing::packed(section, &times, &[D_ROOT_SPAN]),
            false => Ok(Packing::fixed([8, 8, 8, 8, 4, 4, 4, 4, 4], &times, 4)),
        }
    }
}

impl RowPacking {
    /// The packing of the SERVICE_ROWS section of a file of format `version`.
    pub fn rows(version: u32, section: &[u8]) -> Result<Self, String> {
        match version >= PACKED_VERSION {
            true => Packing::packed(section, &[R_MIN, R_MAX], &[]),
            false => Ok(Packing::fixed([8, 8, 4], &[R_MIN, R_MAX], 0)),
        }
    }
}

/// One digest record, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub start: u64,
    pub end: u64,
    pub root_start: u64,
    pub root_span: SpanId,
    pub spans: u32,
    pub root_op: u32,
    pub flags: u32,
    pub services_at: u32,
    pub services_len: u32,
}

impl Digest {
    /// The record's fields in order, the root span id as a big-endian
    /// number so that it is stored as its 8 bytes.
    fn fields(&self) -> [u64; 9] {
        [
            self.start,
            self.end,
            self.root_start,
            u64::from_be_bytes(self.root_span.0),
            u64::from(self.spans),
            u64::from(self.root_op),
            u64::from(self.flags),
            u64::from(self.services_at),
            u64::from(self.services_len),
        ]
    }
}

/// One service row, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// Earliest and latest start of the service's spans in the trace.
    pub min_start: u64,
    pub max_start: u64,
    /// Position of the trace in the trace index (and in DIGESTS).
    pub trace: u32,
}

/// The decoded SERVICES section: names and row ranges.
#[derive(Clone, Debug, Default)]
pub struct Services {
    pub names: Vec<String>,
    pub rows: Vec<(u32, u32)>,
    /// Largest `max_start - min_start` of any row.
    pub max_width: u64,
}

impl Services {
    /// Decodes and checks the section against the row count.
    pub fn decode(b: &[u8], row_count: usize) -> DecodeResult<Services> {
        let mut c = Cursor::new(b);
        let n = c.count(3)?;
        let mut s = Services::default();
        let mut expect = 0u64;
        for _ in 0..n {
            let name = c.str()?.to_string();
            if s.names.last().is_some_and(|last| *last >= name) {
                return c.err("service names are not strictly sorted");
            }
            let (at, len) = (c.varint()?, c.varint()?);
            if at != expect || at.checked_add(len).is_none_or(|end| end > row_count as u64) {
                return c.err(format!(
                    "rows {at}+{len} of service {name:?} out of order or range"
                ));
            }
            expect = at + len;
            s.names.push(name);
            s.rows.push((at as u32, len as u32));
        }
        s.max_width = c.varint()?;
        if expect != row_count as u64 || !c.is_empty() {
            return c.err("service rows do not cover the rows section exactly");
        }
        Ok(s)
    }

    /// The id of a service name.
    pub fn id(&self, name: &str) -> Option<usize> {
        self.names.binary_search_by(|n| n.as_str().cmp(name)).ok()
    }
}

/// Reads digest `i` of a DIGESTS section laid out as `p` says; `None`
/// when out of range or a time overflows.
pub fn digest_at(section: &[u8], p: &DigestPacking, i: usize) -> Option<Digest> {
    let b = p.record(section, i)?;
    let at = p.at[D_ROOT_SPAN];
    let small = |f| p.get(b, f).and_then(|v| u32::try_from(v).ok());
    Some(Digest {
        start: p.get(b, D_START)?,
        end: p.get(b, D_END)?,
        root_start: p.get(b, D_ROOT_START)?,
        root_span: SpanId(b[at..at + 8].try_into().ok()?),
        spans: small(D_SPANS)?,
        root_op: small(D_ROOT_OP)?,
        flags: small(D_FLAGS)?,
        services_at: small(D_SERVICES_AT)?,
        services_len: small(D_SERVICES_LEN)?,
    })
}

/// Reads row `i` of a SERVICE_ROWS section laid out as `p` says.
pub fn row_at(section: &[u8], p: &RowPacking, i: usize) -> Option<Row> {
    let b = p.record(section, i)?;
    Some(Row {
        min_start: p.get(b, R_MIN)?,
        max_start: p.get(b, R_MAX)?,
        trace: u32::try_from(p.get(b, R_TRACE)?).ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{AnyValue, KeyValue, Resource};
    use std::sync::Arc;

    fn span(t: u8, id: u8, svc: &str, start: u64, parent: bool) -> Span {
        Span {
            trace_id: TraceId([t; 16]),
            span_id: SpanId([id; 8]),
            parent_span_id: parent.then_some(SpanId([9; 8])),
            name: format!("op{id}"),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            resource: Arc::new(Resource {
                attributes: vec![KeyValue::new("service.name", AnyValue::String(svc.into()))],
                ..Resource::default()
            }),
            ..Span::default()
        }
    }

    #[test]
    fn parts_merge_to_what_all_spans_say() {
        let spans = [
            span(1, 3, "b", 50, true),
            span(1, 1, "a", 60, false),
            span(1, 2, "b", 40, true),
        ];
        let mut whole = TracePart::of_span(&spans[0]);
        whole.add_span(&spans[1]);
        whole.add_span(&spans[2]);
        let mut merged = TracePart::of_span(&spans[2]);
        merged.merge(&TracePart::of_span(&spans[1]));
        merged.merge(&TracePart::of_span(&spans[0]));
        assert_eq!(whole, merged);
        assert_eq!((whole.start, whole.end, whole.spans), (40, 70, 3));
        assert_eq!(whole.root_name, "op1");
        assert_eq!(whole.services["b"], (40, 50));
    }

    #[test]
    fn sections_round_trip() {
        let mut b = DigestBuilder::default();
        for p in [
            TracePart::of_span(&span(2, 1, "b", 100, false)),
            TracePart::of_span(&span(1, 1, "a", 10, true)),
            TracePart::of_span(&span(1, 2, "b", 30, true)),
        ] {
            b.add(&p);
        }
        let [digests, services, rows, ts] = b.encode(|_, name, _| name.len() as u32);
        let dp = DigestPacking::digests(PACKED_VERSION, &digests).unwrap();
        assert_eq!(dp.count(&digests), Some(2));
        // Base 10, the times (at most 100) in one byte each.
        assert_eq!((dp.header, dp.len), (16, 3 + 8 + 5));
        let rp = RowPacking::rows(PACKED_VERSION, &rows).unwrap();
        assert_eq!((rp.header, rp.len, rp.count(&rows)), (11, 3, Some(3)));
        let s = Services::decode(&services, 3).unwrap();
        assert_eq!(s.names, vec!["a", "b"]);
        assert_eq!(s.rows, vec![(0, 1), (1, 2)]);
        assert_eq!(s.max_width, 0);
        let r: Vec<Row> = (0..3).map(|i| row_at(&rows, &rp, i).unwrap()).collect();
        assert_eq!((r[1].min_start, r[1].trace), (30, 0));
        assert_eq!((r[2].min_start, r[2].trace), (100, 1));
        assert_eq!(row_at(&rows, &rp, 3), None);
        let d = digest_at(&digests, &dp, 0).unwrap();
        assert_eq!((d.start, d.end, d.spans, d.flags), (10, 40, 2, 0));
        assert_eq!((d.services_at, d.services_len), (0, 2));
        assert_eq!(d.root_span, SpanId([1; 8]));
        let d1 = digest_at(&digests, &dp, 1).unwrap();
        assert_eq!(
            (d1.flags, d1.root_span, d1.end),
            (FLAG_ROOT, SpanId([1; 8]), 110)
        );
        assert_eq!(ts, vec![0, 1, 1]);
        assert_eq!(id_width(PACKED_VERSION, 2), 1);
        assert!(Services::decode(&services, 4).is_err());
        assert!(Services::decode(&services[..services.len() - 1], 3).is_err());
    }

    #[test]
    fn packed_numbers_take_the_bytes_they_need() {
        let records = [[5u64, u64::MAX, 300], [1 << 40, 7, 0]];
        let bytes = pack(&records, &[0, 1], &[]);
        let p = Packing::<3>::packed(&bytes, &[0, 1], &[]).unwrap();
        assert_eq!(p.width, [5, 8, 2]);
        assert_eq!(p.count(&bytes), Some(2));
        for (i, r) in records.iter().enumerate() {
            let rec = p.record(&bytes, i).unwrap();
            let got: Vec<u64> = (0..3).map(|f| p.get(rec, f).unwrap()).collect();
            assert_eq!(got, r.to_vec());
        }
        assert_eq!(id_width(PACKED_VERSION, 256), 1);
        assert_eq!(id_width(PACKED_VERSION, 257), 2);
        assert_eq!(id_width(5, 2), 4);
    }

    #[test]
    fn bad_packings_are_refused() {
        let mut bytes = pack(&[[1u64, 2, 3]], &[0, 1], &[]);
        assert!(RowPacking::rows(PACKED_VERSION, &bytes[..10]).is_err());
        bytes[10] = 5; // a trace ordinal wider than a u32
        assert!(RowPacking::rows(PACKED_VERSION, &bytes).is_err());
        bytes[10] = 0;
        assert!(RowPacking::rows(PACKED_VERSION, &bytes).is_err());
        // A base that makes a time overflow reads as nothing.
        let mut bytes = pack(&[[1u64, 2, 3]], &[0, 1], &[]);
        bytes[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        let p = RowPacking::rows(PACKED_VERSION, &bytes).unwrap();
        assert_eq!(row_at(&bytes, &p, 0), None);
        // Before version 6 the layout is fixed, whatever the bytes.
        let old = RowPacking::rows(5, &[]).unwrap();
        assert_eq!((old.header, old.len), (0, ROW_LEN));
        assert_eq!(DigestPacking::digests(5, &[]).unwrap().len, DIGEST_LEN);
        assert_eq!(Packing::<3>::default().count(&[]), None);
    }
}
