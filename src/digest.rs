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
//! - DIGESTS: one [`DIGEST_LEN`]-byte record per trace-index entry, in the
//!   same order;
//! - SERVICES: the service names with their range of service rows;
//! - SERVICE_ROWS: [`ROW_LEN`]-byte rows (min start, max start, trace
//!   ordinal), grouped by service, sorted by min start within a service;
//! - TRACE_SERVICES: u32 service ids, a run per digest.

use std::collections::{BTreeMap, BTreeSet};

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::codec::{put_bytes, put_u32, put_u64, put_varint, Cursor, DecodeResult};
use crate::hash::FastMap;
use crate::span::{Span, SpanId, SpanKind, StatusCode, TraceId};

/// Bytes of one digest record.
pub const DIGEST_LEN: usize = 56;
/// Bytes of one service row.
pub const ROW_LEN: usize = 20;

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

    /// Encodes DIGESTS, SERVICES, SERVICE_ROWS and TRACE_SERVICES. Digests
    /// follow the trace index's order (ascending trace id); `root_op` gives
    /// the catalog id of a (service, name, kind) triple.
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
        let mut digests = Vec::with_capacity(parts.len() * DIGEST_LEN);
        let mut trace_services = Vec::new();
        for (ordinal, p) in parts.iter().enumerate() {
            put_u64(&mut digests, p.start);
            put_u64(&mut digests, p.end);
            put_u64(&mut digests, p.root_key.1);
            digests.extend_from_slice(&p.root_key.2 .0);
            put_u32(&mut digests, p.spans.min(u64::from(u32::MAX)) as u32);
            put_u32(
                &mut digests,
                root_op(&p.root_service, &p.root_name, p.root_kind),
            );
            let flags =
                if p.error { FLAG_ERROR } else { 0 } | if p.root_key.0 { 0 } else { FLAG_ROOT };
            put_u32(&mut digests, flags);
            put_u32(&mut digests, (trace_services.len() / 4) as u32);
            put_u32(&mut digests, p.services.len() as u32);
            put_u32(&mut digests, 0);
            for (svc, (lo, hi)) in &p.services {
                let id = ids[svc.as_str()];
                put_u32(&mut trace_services, id);
                rows[id as usize].push((*lo, *hi, ordinal as u32));
            }
        }
        let mut services = Vec::new();
        let mut row_bytes = Vec::new();
        let mut max_width = 0u64;
        put_varint(&mut services, names.len() as u64);
        for (name, mut r) in names.iter().zip(rows) {
            r.sort_unstable();
            put_bytes(&mut services, name.as_bytes());
            put_varint(&mut services, (row_bytes.len() / ROW_LEN) as u64);
            put_varint(&mut services, r.len() as u64);
            for (lo, hi, t) in r {
                max_width = max_width.max(hi - lo);
                put_u64(&mut row_bytes, lo);
                put_u64(&mut row_bytes, hi);
                put_u32(&mut row_bytes, t);
            }
        }
        put_varint(&mut services, max_width);
        [digests, services, row_bytes, trace_services]
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

/// Reads digest `i` from the DIGESTS section (the caller checked its size).
pub fn digest_at(section: &[u8], i: usize) -> Option<Digest> {
    let b = section.get(i * DIGEST_LEN..(i + 1) * DIGEST_LEN)?;
    Some(Digest {
        start: LE::read_u64(b),
        end: LE::read_u64(&b[8..]),
        root_start: LE::read_u64(&b[16..]),
        root_span: SpanId(b[24..32].try_into().ok()?),
        spans: LE::read_u32(&b[32..]),
        root_op: LE::read_u32(&b[36..]),
        flags: LE::read_u32(&b[40..]),
        services_at: LE::read_u32(&b[44..]),
        services_len: LE::read_u32(&b[48..]),
    })
}

/// Reads row `i` from the SERVICE_ROWS section.
pub fn row_at(section: &[u8], i: usize) -> Option<Row> {
    let b = section.get(i * ROW_LEN..(i + 1) * ROW_LEN)?;
    Some(Row {
        min_start: LE::read_u64(b),
        max_start: LE::read_u64(&b[8..]),
        trace: LE::read_u32(&b[16..]),
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
        assert_eq!(digests.len(), 2 * DIGEST_LEN);
        let s = Services::decode(&services, rows.len() / ROW_LEN).unwrap();
        assert_eq!(s.names, vec!["a", "b"]);
        assert_eq!(s.rows, vec![(0, 1), (1, 2)]);
        assert_eq!(s.max_width, 0);
        let r: Vec<Row> = (0..3).map(|i| row_at(&rows, i).unwrap()).collect();
        assert_eq!((r[1].min_start, r[1].trace), (30, 0));
        assert_eq!((r[2].min_start, r[2].trace), (100, 1));
        let d = digest_at(&digests, 0).unwrap();
        assert_eq!((d.start, d.end, d.spans, d.flags), (10, 40, 2, 0));
        assert_eq!((d.services_at, d.services_len), (0, 2));
        let d1 = digest_at(&digests, 1).unwrap();
        assert_eq!(d1.flags, FLAG_ROOT);
        assert_eq!(ts.len(), 12);
        assert!(Services::decode(&services, 4).is_err());
        assert!(Services::decode(&services[..services.len() - 1], 3).is_err());
    }
}
