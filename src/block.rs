//! A block: many spans, stored column by column, zstd-compressed, with a
//! checksummed header.
//!
//! Rows are sorted by (trace id, start time) before encoding, so a trace's
//! spans sit next to each other and its id is stored once per run. Strings go
//! through a per-block dictionary; resources and scopes are stored once per
//! block, or once per sealed segment (see `tables`), and referenced by
//! index; times are delta-encoded. The layout is
//! specified byte for byte in `format-spec.md`, section "Block".

use std::cell::{Cell, OnceCell};
use std::ops::Range;
use std::sync::Arc;

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::attrs::{ItemCollector, ItemContext};
use crate::codec::{
    put_bytes, put_u32, put_varint, unzigzag, zigzag, Cursor, DecodeError, DecodeResult,
};
use crate::dict::BlockDict;
use crate::digest::TracePart;
use crate::hash::FastMap;
use crate::span::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};
use crate::tables::TableBuilder;

/// `"SBLK"` read as a little-endian u32: marks the start of every block.
pub const BLOCK_MAGIC: u32 = u32::from_le_bytes(*b"SBLK");

// Block header fields, each offset the previous one plus its size.
const MAGIC_OFF: usize = 0;
const HEADER_CRC_OFF: usize = MAGIC_OFF + 4;
const BODY_LEN_OFF: usize = HEADER_CRC_OFF + 4;
const RAW_LEN_OFF: usize = BODY_LEN_OFF + 4;
const CODEC_OFF: usize = RAW_LEN_OFF + 4;
const RESERVED_OFF: usize = CODEC_OFF + 1;
const SPAN_COUNT_OFF: usize = RESERVED_OFF + 3;
const MIN_START_OFF: usize = SPAN_COUNT_OFF + 4;
const MAX_START_OFF: usize = MIN_START_OFF + 8;
const BODY_CRC_OFF: usize = MAX_START_OFF + 8;
const RESERVED2_OFF: usize = BODY_CRC_OFF + 4;
/// Size of the fixed block header.
pub const BLOCK_HEADER_LEN: usize = RESERVED2_OFF + 4;

/// Largest uncompressed body a reader accepts; bounds the allocation a
/// corrupt header could ask for.
pub const MAX_RAW_LEN: u32 = 64 << 20;

/// Number of columns in a version-1 block body.
pub const COLUMN_COUNT: usize = 13;
const COL_TRACE: usize = 0;
const COL_SPAN_ID: usize = 1;
const COL_PARENT: usize = 2;
const COL_STRINGS: usize = 3;
const COL_NAME: usize = 4;
const COL_META: usize = 5;
const COL_START: usize = 6;
const COL_DURATION: usize = 7;
const COL_RESOURCES: usize = 8;
const COL_SCOPES: usize = 9;
const COL_ATTRS: usize = 10;
const COL_EVENTS: usize = 11;
const COL_LINKS: usize = 12;

/// Strings up to this length are stored once per block dictionary.
pub const INTERN_MAX_LEN: usize = 48;

/// Deepest nesting of array / key-value-list values a reader follows.
pub const MAX_VALUE_DEPTH: usize = 64;

/// How a block body is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    None = 0,
    Zstd = 1,
    /// zstd with the segment's dictionary (format version 2 and later).
    ZstdDict = 2,
}

/// The decoded fixed header of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    pub body_len: u32,
    pub raw_len: u32,
    pub codec: Codec,
    pub span_count: u32,
    pub min_start: u64,
    pub max_start: u64,
    pub body_crc: u32,
}

impl BlockHeader {
    /// Serializes the header, computing its own checksum.
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut h = [0u8; BLOCK_HEADER_LEN];
        LE::write_u32(&mut h[MAGIC_OFF..], BLOCK_MAGIC);
        LE::write_u32(&mut h[BODY_LEN_OFF..], self.body_len);
        LE::write_u32(&mut h[RAW_LEN_OFF..], self.raw_len);
        h[CODEC_OFF] = self.codec as u8;
        LE::write_u32(&mut h[SPAN_COUNT_OFF..], self.span_count);
        LE::write_u64(&mut h[MIN_START_OFF..], self.min_start);
        LE::write_u64(&mut h[MAX_START_OFF..], self.max_start);
        LE::write_u32(&mut h[BODY_CRC_OFF..], self.body_crc);
        let crc = crc32fast::hash(&h[BODY_LEN_OFF..]);
        LE::write_u32(&mut h[HEADER_CRC_OFF..], crc);
        h
    }

    /// Parses and checks a header. Offsets in errors are relative to the
    /// start of the header.
    pub fn decode(h: &[u8]) -> DecodeResult<BlockHeader> {
        let fail = |offset, detail: String| Err(DecodeError { offset, detail });
        if h.len() < BLOCK_HEADER_LEN {
            return fail(
                0,
                format!(
                    "block header needs {BLOCK_HEADER_LEN} bytes, {} remain",
                    h.len()
                ),
            );
        }
        let magic = LE::read_u32(&h[MAGIC_OFF..]);
        if magic != BLOCK_MAGIC {
            return fail(
                MAGIC_OFF,
                format!("expected block magic {BLOCK_MAGIC:#010x}, found {magic:#010x}"),
            );
        }
        let stored = LE::read_u32(&h[HEADER_CRC_OFF..]);
        let actual = crc32fast::hash(&h[BODY_LEN_OFF..BLOCK_HEADER_LEN]);
        if stored != actual {
            return fail(
                HEADER_CRC_OFF,
                format!("block header checksum {stored:#010x}, computed {actual:#010x}"),
            );
        }
        let codec = match h[CODEC_OFF] {
            0 => Codec::None,
            1 => Codec::Zstd,
            2 => Codec::ZstdDict,
            c => return fail(CODEC_OFF, format!("unknown codec {c}")),
        };
        let header = BlockHeader {
            body_len: LE::read_u32(&h[BODY_LEN_OFF..]),
            raw_len: LE::read_u32(&h[RAW_LEN_OFF..]),
            codec,
            span_count: LE::read_u32(&h[SPAN_COUNT_OFF..]),
            min_start: LE::read_u64(&h[MIN_START_OFF..]),
            max_start: LE::read_u64(&h[MAX_START_OFF..]),
            body_crc: LE::read_u32(&h[BODY_CRC_OFF..]),
        };
        if header.raw_len > MAX_RAW_LEN {
            return fail(
                RAW_LEN_OFF,
                format!(
                    "uncompressed length {} exceeds {MAX_RAW_LEN}",
                    header.raw_len
                ),
            );
        }
        if header.min_start > header.max_start {
            return fail(MIN_START_OFF, "min start time after max start time".into());
        }
        Ok(header)
    }

    /// Header plus body length on disk.
    pub fn stored_len(&self) -> u64 {
        BLOCK_HEADER_LEN as u64 + u64::from(self.body_len)
    }
}

/// What the indexes need to know about an encoded block.
#[derive(Debug, Default, Clone)]
pub struct BlockSummary {
    /// Distinct trace ids in the block, sorted.
    pub trace_ids: Vec<TraceId>,
    /// Distinct (service, operation, kind) triples and their span counts.
    pub operations: Vec<(String, String, SpanKind, u64)>,
    pub max_end: u64,
    /// What the block's spans tell of each of its traces.
    pub traces: Vec<TracePart>,
    /// The distinct attribute items of the block (see `attrs`).
    pub attr_items: Vec<crate::attrs::Item>,
    /// Items for the segment's filter only: those of the segment's shared
    /// resources that the block uses (format-spec 6.4.12).
    pub file_items: Vec<crate::attrs::Item>,
}

/// An encoded block ready to be written: header then body.
pub struct EncodedBlock {
    pub header: BlockHeader,
    pub body: Vec<u8>,
    pub summary: BlockSummary,
}

/// Encodes spans into a block. `spans` must not be empty.
pub fn encode_block(
    spans: &[Span],
    compressor: Option<&mut zstd::bulk::Compressor<'_>>,
) -> std::io::Result<EncodedBlock> {
    encode_rows(spans.iter().collect(), compressor)
}

/// Encodes borrowed spans into a block (sorting them as blocks require).
/// `rows` must not be empty.
pub fn encode_rows(
    rows: Vec<&Span>,
    compressor: Option<&mut zstd::bulk::Compressor<'_>>,
) -> std::io::Result<EncodedBlock> {
    let n = rows.len() as u32;
    let (raw, summary, min, max) = encode_raw(
        rows,
        INTERN_MAX_LEN,
        Some(&mut ItemContext::default()),
        None,
    )?;
    finish_block(raw, summary, n, (min, max), compressor, Codec::Zstd)
}

/// Encodes a block of the write-ahead log: as [`encode_block`], but its
/// summary holds only `max_end`, since nothing indexes a log's blocks
/// (the in-memory table serves its reads).
pub fn encode_log_block(
    rows: Vec<&Span>,
    compressor: Option<&mut zstd::bulk::Compressor<'_>>,
) -> std::io::Result<EncodedBlock> {
    let n = rows.len() as u32;
    let (raw, summary, min, max) = encode_raw(rows, INTERN_MAX_LEN, None, None)?;
    finish_block(raw, summary, n, (min, max), compressor, Codec::Zstd)
}

/// An uncompressed block body with what its header and the indexes need.
pub struct RawBlock {
    pub raw: Vec<u8>,
    pub summary: BlockSummary,
    pub span_count: u32,
    pub min_start: u64,
    pub max_start: u64,
}

/// Encodes borrowed spans into an uncompressed block body. With `shared`,
/// the block refers to the segment's resource and scope tables, where
/// every row's resource and scope must be registered, instead of holding
/// its own (format-spec 5.4).
pub fn encode_raw_block(
    rows: Vec<&Span>,
    intern_max_len: usize,
    items: &mut ItemContext,
    shared: Option<&TableBuilder>,
) -> std::io::Result<RawBlock> {
    let n = rows.len() as u32;
    let (raw, summary, min_start, max_start) =
        encode_raw(rows, intern_max_len, Some(items), shared)?;
    Ok(RawBlock {
        raw,
        summary,
        span_count: n,
        min_start,
        max_start,
    })
}

/// Compresses a body made by [`encode_raw_block`]; `dict` says whether the
/// compressor holds the segment's dictionary.
pub fn compress_block(
    b: RawBlock,
    compressor: &mut zstd::bulk::Compressor<'_>,
    dict: bool,
) -> std::io::Result<EncodedBlock> {
    let codec = if dict { Codec::ZstdDict } else { Codec::Zstd };
    let times = (b.min_start, b.max_start);
    finish_block(
        b.raw,
        b.summary,
        b.span_count,
        times,
        Some(compressor),
        codec,
    )
}

fn finish_block(
    raw: Vec<u8>,
    summary: BlockSummary,
    span_count: u32,
    (min_start, max_start): (u64, u64),
    compressor: Option<&mut zstd::bulk::Compressor<'_>>,
    codec: Codec,
) -> std::io::Result<EncodedBlock> {
    let (codec, body) = match compressor {
        Some(c) => (codec, c.compress(&raw)?),
        None => (Codec::None, raw.clone()),
    };
    let too_large = || std::io::Error::other("block too large");
    let header = BlockHeader {
        body_len: u32::try_from(body.len()).map_err(|_| too_large())?,
        raw_len: u32::try_from(raw.len()).map_err(|_| too_large())?,
        codec,
        span_count,
        min_start,
        max_start,
        body_crc: crc32fast::hash(&body),
    };
    Ok(EncodedBlock {
        header,
        body,
        summary,
    })
}

type Encoded = (Vec<u8>, BlockSummary, u64, u64);

/// Encodes rows; with `index`, also what the indexes need of them.
fn encode_raw(
    mut rows: Vec<&Span>,
    intern_max_len: usize,
    index: Option<&mut ItemContext>,
    shared: Option<&TableBuilder>,
) -> std::io::Result<Encoded> {
    rows.sort_by(|a, b| {
        (a.trace_id, a.start_time_unix_nano).cmp(&(b.trace_id, b.start_time_unix_nano))
    });
    // Sized up front: growing the dictionary map rehashes every string.
    let mut enc = Encoder {
        intern_max_len,
        strings: FastMap::with_capacity_and_hasher(rows.len() * 2, Default::default()),
        items: index.map(ItemCollector::new),
        shared,
        ..Encoder::default()
    };
    // Columns sized up front too, from typical bytes per row, so that few
    // of them grow (and copy) while the rows are written.
    for (col, per_row) in enc.cols.iter_mut().zip(TYPICAL_ROW_BYTES) {
        col.reserve(rows.len() * per_row);
    }
    let raw = enc.encode(&rows);
    if enc.unregistered {
        return Err(std::io::Error::other(
            "a span's resource or scope is missing from the segment's tables",
        ));
    }
    let items = enc.items.take().map(ItemCollector::finish);
    let ops = std::mem::take(&mut enc.ops);
    if raw.len() > MAX_RAW_LEN as usize {
        // Readers refuse such a block, so it must never be written.
        return Err(std::io::Error::other(format!(
            "block of {} bytes exceeds the {MAX_RAW_LEN}-byte limit",
            raw.len()
        )));
    }
    let min = rows
        .iter()
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let max = rows
        .iter()
        .map(|s| s.start_time_unix_nano)
        .max()
        .unwrap_or(0);
    let summary = if let Some(items) = items {
        summarize_with(&rows, operations(ops.into_values()), items.0, items.1)
    } else {
        let max_end = rows.iter().map(|s| s.end_time_unix_nano).max().unwrap_or(0);
        BlockSummary {
            max_end,
            ..BlockSummary::default()
        }
    };
    Ok((raw, summary, min, max))
}

/// What the indexes need from rows sorted by trace id.
pub fn summarize_refs(rows: &[&Span]) -> BlockSummary {
    let ops = rows
        .iter()
        .map(|s| (s.service_name().unwrap_or(""), s.name.as_str(), s.kind, 1));
    summarize_with(rows, operations(ops), crate::attrs::items(rows), Vec::new())
}

/// Counts of (service, operation, kind), sorted, from counts that may
/// name one operation several times.
fn operations<'a>(
    counts: impl Iterator<Item = (&'a str, &'a str, SpanKind, u64)>,
) -> Vec<(String, String, SpanKind, u64)> {
    let mut counts: Vec<_> = counts.collect();
    counts.sort_unstable_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)));
    let mut out: Vec<(String, String, SpanKind, u64)> = Vec::new();
    for (svc, op, kind, n) in counts {
        match out.last_mut() {
            Some(last) if (last.0.as_str(), last.1.as_str(), last.2) == (svc, op, kind) => {
                last.3 += n;
            }
            _ => out.push((svc.to_string(), op.to_string(), kind, n)),
        }
    }
    out
}

/// As [`summarize_refs`], with the block's operations and attribute items
/// already known.
fn summarize_with(
    rows: &[&Span],
    operations: Vec<(String, String, SpanKind, u64)>,
    attr_items: Vec<crate::attrs::Item>,
    file_items: Vec<crate::attrs::Item>,
) -> BlockSummary {
    let mut trace_ids: Vec<TraceId> = rows.iter().map(|s| s.trace_id).collect();
    trace_ids.dedup();
    BlockSummary {
        trace_ids,
        operations,
        max_end: rows.iter().map(|s| s.end_time_unix_nano).max().unwrap_or(0),
        traces: TracePart::of_sorted(rows),
        attr_items,
        file_items,
    }
}

/// Slots of [`Encoder::key`]'s cache.
const KEY_CACHE_SLOTS: usize = 256;

/// A resource's index, an operation name's dictionary index, a span kind.
type OpKey = (u64, u64, u8);

/// Bytes a row typically takes in each column (generated workloads).
const TYPICAL_ROW_BYTES: [usize; COLUMN_COUNT] = [1, 8, 2, 64, 2, 12, 4, 4, 0, 0, 32, 2, 2];

/// Column writers for one block.
#[derive(Default)]
struct Encoder<'a, 'd> {
    cols: [Vec<u8>; COLUMN_COUNT],
    /// Index of each short string already in the dictionary.
    strings: FastMap<Short<'a>, u32>,
    /// Index of the empty string, once in the dictionary.
    empty: Option<u32>,
    dict: Vec<&'a str>,
    resources: Vec<&'a Resource>,
    scopes: Vec<&'a Scope>,
    /// Strings up to this length are stored once; 0 stores every use.
    intern_max_len: usize,
    /// The block's attribute items, when its summary is wanted.
    items: Option<ItemCollector<'d>>,
    /// Rows per (service, operation, kind), counted with `items`. Keyed by
    /// the indexes of the resource (which names the service) and of the
    /// name, which hash faster than the strings; an operation may so be
    /// counted under several keys (a long name is not interned, several
    /// resources name one service), which [`operations`] merges.
    ops: FastMap<OpKey, (&'a str, &'a str, SpanKind, u64)>,
    /// The service of the span being encoded and its item hash state.
    service: (Short<'a>, u64),
    /// Item hash state of the service of each resource in `resources`.
    resource_services: Vec<u64>,
    /// With `shared`: the position in `resources` (`scopes`) of each
    /// entry of the segment's tables the block uses, by number.
    resource_slots: Vec<u32>,
    scope_slots: Vec<u32>,
    /// Item hash states of the services using each scope in `scopes`.
    scope_services: Vec<Vec<u64>>,
    /// A direct-mapped cache of the key last met after each key index
    /// (`NO_INDEX` heading a list) and its own index, `NO_INDEX` in an
    /// empty slot: spans of one kind list the same keys in the same
    /// order, so most keys are found without hashing, even when the rows
    /// of a trace alternate between kinds.
    key_after: Vec<(u32, Short<'a>, u32)>,
    /// The short string value last met per key index, and its index.
    last_values: Vec<(Short<'a>, u32)>,
    /// The segment's tables, when the block refers to them instead of
    /// holding its own resources and scopes.
    shared: Option<&'d TableBuilder>,
    /// Set when a row's resource or scope was not in `shared`.
    unregistered: bool,
}

/// Where an attribute list sits, which decides the service its items are
/// noted under.
#[derive(Clone, Copy)]
enum Owner {
    /// Inside a value: not an item of its own.
    Nested,
    /// The span being encoded, its events or its links.
    Span,
    Scope(usize),
}

/// A resource of a block's table, located and decoded on first use.
struct ResourceEntry<'a> {
    /// Where it starts in its column, or `UNLOCATED`.
    at: Cell<usize>,
    decoded: OnceCell<Arc<Resource>>,
    /// Its `service.name`, once read.
    service: Cell<Option<Option<&'a str>>>,
}

impl Default for ResourceEntry<'_> {
    fn default() -> Self {
        ResourceEntry {
            at: Cell::new(UNLOCATED),
            decoded: OnceCell::new(),
            service: Cell::new(None),
        }
    }
}

/// The offset of a resource not located yet.
const UNLOCATED: usize = usize::MAX;

/// No index: marks an empty slot and a value that is not a string.
const NO_INDEX: u32 = u32::MAX;

impl<'a> Encoder<'a, '_> {
    fn encode(&mut self, rows: &[&'a Span]) -> Vec<u8> {
        self.encode_trace_runs(rows);
        let mut first_row: FastMap<SpanId, u64> =
            FastMap::with_capacity_and_hasher(rows.len(), Default::default());
        let mut prev_start = 0u64;
        let indexed = self.items.is_some();
        if indexed {
            self.ops.reserve(rows.len());
        }
        for (i, s) in rows.iter().enumerate() {
            if indexed {
                self.enter_service(s.service_name().unwrap_or(""));
            }
            first_row.entry(s.span_id).or_insert(i as u64);
            self.cols[COL_SPAN_ID].extend_from_slice(&s.span_id.0);
            self.encode_parent(s, &first_row);
            let name = self.string(&s.name);
            put_varint(&mut self.cols[COL_NAME], name);
            let resource = self.encode_meta(s);
            if indexed {
                self.count_op(resource, name, s);
            }
            let delta = s.start_time_unix_nano.wrapping_sub(prev_start) as i64;
            put_varint(&mut self.cols[COL_START], zigzag(delta));
            prev_start = s.start_time_unix_nano;
            put_varint(
                &mut self.cols[COL_DURATION],
                s.end_time_unix_nano.wrapping_sub(s.start_time_unix_nano),
            );
            let mut attrs = std::mem::take(&mut self.cols[COL_ATTRS]);
            self.attrs(&mut attrs, &s.attributes, Owner::Span);
            self.cols[COL_ATTRS] = attrs;
            self.encode_events(s);
            self.encode_links(s);
        }
        self.encode_tables();
        self.assemble()
    }

    fn encode_trace_runs(&mut self, rows: &[&Span]) {
        let mut runs: Vec<(TraceId, u64)> = Vec::new();
        for s in rows {
            match runs.last_mut() {
                Some((t, n)) if *t == s.trace_id => *n += 1,
                _ => runs.push((s.trace_id, 1)),
            }
        }
        let col = &mut self.cols[COL_TRACE];
        put_varint(col, runs.len() as u64);
        for (t, n) in runs {
            col.extend_from_slice(&t.0);
            put_varint(col, n);
        }
    }

    fn encode_parent(&mut self, s: &Span, first_row: &FastMap<SpanId, u64>) {
        let col = &mut self.cols[COL_PARENT];
        match s.parent_span_id {
            None => put_varint(col, 0),
            Some(p) => match first_row.get(&p) {
                Some(row) => put_varint(col, 2 + row),
                None => {
                    put_varint(col, 1);
                    col.extend_from_slice(&p.0);
                }
            },
        }
    }

    /// Writes the row's kind, flags, status, counts, resource and scope;
    /// returns the resource's index.
    fn encode_meta(&mut self, s: &'a Span) -> u64 {
        let trace_state = self.string(&s.trace_state);
        let message = self.string(&s.status.message);
        let resource = self.resource_index(&s.resource);
        let scope = self.scope_index(&s.scope);
        let col = &mut self.cols[COL_META];
        col.push(s.kind as u8);
        put_varint(col, u64::from(s.flags));
        put_varint(col, trace_state);
        col.push(s.status.code as u8);
        put_varint(col, message);
        put_varint(col, u64::from(s.dropped_attributes_count));
        put_varint(col, u64::from(s.dropped_events_count));
        put_varint(col, u64::from(s.dropped_links_count));
        put_varint(col, resource);
        put_varint(col, scope);
        resource
    }

    fn encode_events(&mut self, s: &'a Span) {
        let mut col = std::mem::take(&mut self.cols[COL_EVENTS]);
        put_varint(&mut col, s.events.len() as u64);
        for e in &s.events {
            let delta = e.time_unix_nano.wrapping_sub(s.start_time_unix_nano) as i64;
            put_varint(&mut col, zigzag(delta));
            let name = self.string(&e.name);
            put_varint(&mut col, name);
            self.attrs(&mut col, &e.attributes, Owner::Span);
            put_varint(&mut col, u64::from(e.dropped_attributes_count));
        }
        self.cols[COL_EVENTS] = col;
    }

    fn encode_links(&mut self, s: &'a Span) {
        let mut col = std::mem::take(&mut self.cols[COL_LINKS]);
        put_varint(&mut col, s.links.len() as u64);
        for l in &s.links {
            col.extend_from_slice(&l.trace_id.0);
            col.extend_from_slice(&l.span_id.0);
            let ts = self.string(&l.trace_state);
            put_varint(&mut col, ts);
            put_varint(&mut col, u64::from(l.flags));
            self.attrs(&mut col, &l.attributes, Owner::Span);
            put_varint(&mut col, u64::from(l.dropped_attributes_count));
        }
        self.cols[COL_LINKS] = col;
    }

    fn encode_tables(&mut self) {
        if self.shared.is_some() {
            self.note_shared_tables();
        } else {
            self.encode_own_tables();
        }
        // The dictionary goes last so it holds every string seen above.
        let col = &mut self.cols[COL_STRINGS];
        put_varint(col, self.dict.len() as u64);
        for s in &self.dict {
            put_bytes(col, s.as_bytes());
        }
    }

    /// With the segment's tables, columns 8 and 9 stay empty. The block's
    /// filter holds the items of the scopes it uses, and a marker of each
    /// resource it uses, whose items go to the segment's filter: a search
    /// tells which resources match from the tables themselves.
    fn note_shared_tables(&mut self) {
        let (Some(items), Some(shared)) = (self.items.as_mut(), self.shared) else {
            return;
        };
        for (r, svc) in self.resources.iter().zip(&self.resource_services) {
            if let Some(id) = shared.resource_id(r) {
                items.shared_resource(r, *svc, id);
            }
        }
        for (s, services) in self.scopes.iter().zip(&self.scope_services) {
            for svc in services {
                items.scope(s, *svc);
            }
        }
    }

    fn encode_own_tables(&mut self) {
        let mut col = Vec::new();
        put_varint(&mut col, self.resources.len() as u64);
        for (i, r) in std::mem::take(&mut self.resources).into_iter().enumerate() {
            if let Some(items) = self.items.as_mut() {
                items.resource(r, self.resource_services[i]);
            }
            self.attrs(&mut col, &r.attributes, Owner::Nested);
            put_varint(&mut col, u64::from(r.dropped_attributes_count));
            let url = self.string(&r.schema_url);
            put_varint(&mut col, url);
        }
        self.cols[COL_RESOURCES] = col;
        let mut col = Vec::new();
        put_varint(&mut col, self.scopes.len() as u64);
        for (j, s) in std::mem::take(&mut self.scopes).into_iter().enumerate() {
            for field in [&s.name, &s.version] {
                let i = self.string(field);
                put_varint(&mut col, i);
            }
            self.attrs(&mut col, &s.attributes, Owner::Scope(j));
            put_varint(&mut col, u64::from(s.dropped_attributes_count));
            let url = self.string(&s.schema_url);
            put_varint(&mut col, url);
        }
        self.cols[COL_SCOPES] = col;
    }

    fn assemble(&mut self) -> Vec<u8> {
        let total: usize = self.cols.iter().map(Vec::len).sum();
        let mut out = Vec::with_capacity(4 + 4 * COLUMN_COUNT + total);
        put_u32(&mut out, COLUMN_COUNT as u32);
        for c in &self.cols {
            put_u32(&mut out, c.len() as u32);
        }
        for c in &self.cols {
            out.extend_from_slice(c);
        }
        out
    }

    /// Dictionary index of `s`. Short strings (keys, names, enum-like
    /// values) repeat and are stored once; long ones (statements, URLs,
    /// stack traces) rarely repeat exactly, so hashing them would cost more
    /// than it saves: each gets its own entry, and zstd finds what repeats.
    fn string(&mut self, s: &'a str) -> u64 {
        // Most spans have no trace state and no status message.
        if s.is_empty() {
            if let Some(i) = self.empty {
                return u64::from(i);
            }
        }
        let next = self.dict.len() as u32;
        if s.len() > self.intern_max_len {
            self.dict.push(s);
            return u64::from(next);
        }
        let i = *self.strings.entry(Short(s)).or_insert(next);
        if i == next {
            self.dict.push(s);
        }
        if s.is_empty() {
            self.empty = Some(i);
        }
        u64::from(i)
    }

    /// Counts row `s`, whose resource has index `resource` and whose name
    /// has dictionary index `name`, under the service entered last.
    fn count_op(&mut self, resource: u64, name: u64, s: &'a Span) {
        let svc = self.service.0 .0;
        let key = (resource, name, s.kind as u8);
        self.ops.entry(key).or_insert((svc, &s.name, s.kind, 0)).3 += 1;
    }

    /// Makes `service` the service of the items noted next.
    fn enter_service(&mut self, service: &'a str) {
        if self.service.0 != Short(service) || self.service.1 == 0 {
            self.service = (Short(service), crate::attrs::service_state(service));
        }
    }

    /// A resource's items belong to the service of the first span using it
    /// (equal resources name the same service).
    fn resource_index(&mut self, r: &'a Resource) -> u64 {
        let Some(t) = self.shared else {
            let i = table_index(&mut self.resources, r, crate::tables::same_resource);
            if i as usize == self.resource_services.len() {
                self.resource_services.push(self.service.1);
            }
            return i;
        };
        let Some(id) = t.resource_id(r) else {
            self.unregistered = true;
            return 0;
        };
        let i = local_index(&mut self.resource_slots, &mut self.resources, id, r);
        if i == self.resource_services.len() {
            self.resource_services.push(self.service.1);
        }
        u64::from(id)
    }

    /// A scope's items belong to every service whose spans use it.
    fn scope_index(&mut self, s: &'a Scope) -> u64 {
        let (j, index) = match self.shared {
            None => {
                let j = table_index(&mut self.scopes, s, crate::tables::same_scope);
                (j as usize, j)
            }
            Some(t) => {
                let Some(id) = t.scope_id(s) else {
                    self.unregistered = true;
                    return 0;
                };
                let j = local_index(&mut self.scope_slots, &mut self.scopes, id, s);
                (j, u64::from(id))
            }
        };
        if j == self.scope_services.len() {
            self.scope_services.push(Vec::new());
        }
        let services = &mut self.scope_services[j];
        if !services.contains(&self.service.1) {
            services.push(self.service.1);
        }
        index
    }

    /// Index of `key`, which follows the key with index `prev` in its list
    /// (`NO_INDEX` heading it).
    fn key(&mut self, key: &'a str, prev: u32) -> u32 {
        if self.key_after.is_empty() {
            self.key_after = vec![(0, Short(""), NO_INDEX); KEY_CACHE_SLOTS];
        }
        let slot = prev as usize % KEY_CACHE_SLOTS;
        let (p, k, i) = self.key_after[slot];
        if i != NO_INDEX && p == prev && k == Short(key) {
            return i;
        }
        let i = self.string(key) as u32;
        // A string too long to intern has an entry per use: never reused.
        if key.len() <= self.intern_max_len {
            self.key_after[slot] = (prev, Short(key), i);
        }
        i
    }

    /// Index of string value `v` of the key with index `key`.
    fn string_value(&mut self, v: &'a str, key: u32) -> u32 {
        let slot = key as usize;
        if let Some((last, i)) = self.last_values.get(slot) {
            if *i != NO_INDEX && *last == Short(v) {
                return *i;
            }
        }
        let i = self.string(v) as u32;
        if key != NO_INDEX && v.len() <= self.intern_max_len {
            if slot >= self.last_values.len() {
                self.last_values.resize(slot + 1, (Short(""), NO_INDEX));
            }
            self.last_values[slot] = (Short(v), i);
        }
        i
    }

    /// Notes an attribute as an item of the services `owner` implies.
    fn note(&mut self, owner: Owner, key: u32, kv: &KeyValue, value: u32) {
        let Some(items) = self.items.as_mut() else {
            return;
        };
        let one;
        let services: &[u64] = match owner {
            Owner::Nested => return,
            Owner::Span => {
                one = [self.service.1];
                &one
            }
            Owner::Scope(j) => &self.scope_services[j],
        };
        for svc in services {
            items.note(*svc, key, &kv.key, &kv.value, value);
        }
    }

    fn attrs(&mut self, out: &mut Vec<u8>, list: &'a [KeyValue], owner: Owner) {
        put_varint(out, list.len() as u64);
        let mut prev = NO_INDEX;
        for kv in list {
            let k = self.key(&kv.key, prev);
            prev = k;
            put_varint(out, u64::from(k));
            let v = self.value(out, &kv.value, k);
            self.note(owner, k, kv, v);
        }
    }

    /// Writes `v`, the value of the key with index `key` (or `NO_INDEX`);
    /// returns the dictionary index of a string value, else `NO_INDEX`.
    fn value(&mut self, out: &mut Vec<u8>, v: &'a AnyValue, key: u32) -> u32 {
        match v {
            AnyValue::Empty => out.push(TAG_EMPTY),
            AnyValue::String(s) => {
                out.push(TAG_STRING);
                let i = self.string_value(s, key);
                put_varint(out, u64::from(i));
                return i;
            }
            AnyValue::Bool(false) => out.push(TAG_FALSE),
            AnyValue::Bool(true) => out.push(TAG_TRUE),
            AnyValue::Int(i) => {
                out.push(TAG_INT);
                put_varint(out, zigzag(*i));
            }
            AnyValue::Double(d) => {
                out.push(TAG_DOUBLE);
                out.extend_from_slice(&d.to_bits().to_le_bytes());
            }
            AnyValue::Bytes(b) => {
                out.push(TAG_BYTES);
                put_bytes(out, b);
            }
            AnyValue::Array(items) => {
                out.push(TAG_ARRAY);
                put_varint(out, items.len() as u64);
                for item in items {
                    self.value(out, item, NO_INDEX);
                }
            }
            AnyValue::KvList(list) => {
                out.push(TAG_KVLIST);
                self.attrs(out, list, Owner::Nested);
            }
        }
        NO_INDEX
    }
}

/// The TABLES section of a sealed segment (format-spec 6.4.14): a string
/// dictionary, then the resources and the scopes, each encoded as in a
/// block's columns 3, 8 and 9.
pub fn encode_tables_section(resources: &[&Resource], scopes: &[&Scope]) -> Vec<u8> {
    let mut enc = Encoder {
        intern_max_len: INTERN_MAX_LEN,
        resources: resources.to_vec(),
        scopes: scopes.to_vec(),
        ..Encoder::default()
    };
    enc.encode_tables();
    let mut out = std::mem::take(&mut enc.cols[COL_STRINGS]);
    out.extend_from_slice(&enc.cols[COL_RESOURCES]);
    out.extend_from_slice(&enc.cols[COL_SCOPES]);
    out
}

/// The resources and scopes of a sealed segment, decoded from its TABLES
/// section when it is opened. Blocks whose columns 8 and 9 are empty refer
/// to them.
#[derive(Default)]
pub struct SegmentTables {
    pub resources: Vec<Arc<Resource>>,
    pub scopes: Vec<Arc<Scope>>,
    /// The numbers of the resources of each service, by service name.
    services: Vec<(String, Vec<u32>)>,
    /// What every index reads as in [`unknown`](Self::unknown) tables.
    any: Option<(Arc<Resource>, Arc<Scope>)>,
}

impl SegmentTables {
    /// The numbers of the resources whose `service.name` is `service` (the
    /// empty string for resources without one).
    pub fn of_service(&self, service: &str) -> &[u32] {
        match self
            .services
            .binary_search_by(|(s, _)| s.as_str().cmp(service))
        {
            Ok(i) => &self.services[i].1,
            Err(_) => &[],
        }
    }

    /// Stands for the tables of a file whose footer could not be read:
    /// every index is accepted and reads as an empty resource or scope.
    /// Only for checking the rest of a block (`verify`), never for
    /// returning spans.
    pub fn unknown() -> SegmentTables {
        SegmentTables {
            any: Some(Default::default()),
            ..SegmentTables::default()
        }
    }

    /// Decodes a TABLES section. Offsets in errors are relative to its start.
    pub fn decode(b: &[u8]) -> DecodeResult<SegmentTables> {
        let mut c = Cursor::new(b);
        let n = c.count(1)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let at = c.position();
            entries.push(DictEntry {
                bytes: c.bytes()?,
                at,
                checked: Cell::new(None),
            });
        }
        let dict = Dict(entries);
        let mut t = SegmentTables::default();
        for _ in 0..c.count(3)? {
            t.resources.push(Arc::new(Resource {
                attributes: read_attrs(&mut c, &dict, 0)?,
                dropped_attributes_count: c.varint_u32()?,
                schema_url: dict_str(&mut c, &dict)?,
            }));
        }
        for _ in 0..c.count(5)? {
            t.scopes.push(Arc::new(Scope {
                name: dict_str(&mut c, &dict)?,
                version: dict_str(&mut c, &dict)?,
                attributes: read_attrs(&mut c, &dict, 0)?,
                dropped_attributes_count: c.varint_u32()?,
                schema_url: dict_str(&mut c, &dict)?,
            }));
        }
        if !c.is_empty() {
            return c.err("bytes after the scopes of the tables section");
        }
        // Every entry must be UTF-8, used or not (as in a block).
        for i in 0..dict.0.len() {
            dict.get(&Cursor::new(&[]), i as u64)?;
        }
        let mut by: std::collections::BTreeMap<&str, Vec<u32>> = Default::default();
        for (i, r) in t.resources.iter().enumerate() {
            by.entry(r.service_name().unwrap_or(""))
                .or_default()
                .push(i as u32);
        }
        t.services = by.into_iter().map(|(s, v)| (s.to_string(), v)).collect();
        Ok(t)
    }
}

/// A short string as a dictionary key. Equality compares 8-byte words
/// inline: keys are hit far more often than missed, and a call to memcmp
/// per hit costs more than the comparison itself.
#[derive(Clone, Copy, Eq, Default)]
struct Short<'a>(&'a str);

impl PartialEq for Short<'_> {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut ca = a.chunks_exact(8);
        let mut cb = b.chunks_exact(8);
        for (x, y) in (&mut ca).zip(&mut cb) {
            if u64::from_ne_bytes(x.try_into().unwrap_or([0; 8]))
                != u64::from_ne_bytes(y.try_into().unwrap_or([0; 8]))
            {
                return false;
            }
        }
        ca.remainder().is_empty() || crate::hash::tail(a) == crate::hash::tail(b)
    }
}

impl std::hash::Hash for Short<'_> {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write(self.0.as_bytes());
    }
}

/// Index in a block's resource or scope list of the segment's table entry
/// number `id` (whose value is `item`), adding it if new: the segment's
/// tables already tell equal values apart, so no value is compared.
fn local_index<'a, T>(slots: &mut Vec<u32>, list: &mut Vec<&'a T>, id: u32, item: &'a T) -> usize {
    let at = id as usize;
    if at >= slots.len() {
        slots.resize(at + 1, NO_INDEX);
    }
    if slots[at] == NO_INDEX {
        slots[at] = list.len() as u32;
        list.push(item);
    }
    slots[at] as usize
}

/// Index of `item` in a block's resource or scope table, adding it if new.
/// Spans of one resource usually share one allocation, so identity is
/// checked first; values equal bit for bit (`same`) in separate
/// allocations still share an entry.
fn table_index<'a, T>(table: &mut Vec<&'a T>, item: &'a T, same: fn(&T, &T) -> bool) -> u64 {
    let found = table
        .iter()
        .rposition(|x| std::ptr::eq(*x, item))
        .or_else(|| table.iter().rposition(|x| same(x, item)));
    match found {
        Some(i) => i as u64,
        None => {
            table.push(item);
            (table.len() - 1) as u64
        }
    }
}

const TAG_EMPTY: u8 = 0;
const TAG_STRING: u8 = 1;
const TAG_FALSE: u8 = 2;
const TAG_TRUE: u8 = 3;
const TAG_INT: u8 = 4;
const TAG_DOUBLE: u8 = 5;
const TAG_BYTES: u8 = 6;
const TAG_ARRAY: u8 = 7;
const TAG_KVLIST: u8 = 8;

/// Checks the body checksum, decompresses and checks the decompressed size.
/// Offsets in errors are relative to the start of the body.
pub fn decompress_body(
    header: &BlockHeader,
    body: &[u8],
    dict: Option<&BlockDict>,
) -> DecodeResult<Vec<u8>> {
    let mut out = Vec::new();
    decompress_into(header, body, dict, &mut out)?;
    Ok(out)
}

/// [`decompress_body`] into a caller's buffer, so lookups can reuse one.
pub fn decompress_into(
    header: &BlockHeader,
    body: &[u8],
    dict: Option<&BlockDict>,
    out: &mut Vec<u8>,
) -> DecodeResult<()> {
    let fail = |detail: String| Err(DecodeError { offset: 0, detail });
    if body.len() != header.body_len as usize {
        return fail(format!(
            "block body is {} bytes, header says {}",
            body.len(),
            header.body_len
        ));
    }
    let crc = crc32fast::hash(body);
    if crc != header.body_crc {
        return fail(format!(
            "block body checksum {:#010x}, computed {crc:#010x}",
            header.body_crc
        ));
    }
    out.clear();
    match header.codec {
        Codec::None => out.extend_from_slice(body),
        Codec::Zstd | Codec::ZstdDict => {
            out.reserve(header.raw_len as usize);
            let n = match (header.codec, dict) {
                (Codec::Zstd, _) => {
                    DECOMPRESSOR.with(|d| d.borrow_mut().decompress_to_buffer(body, out))
                }
                (_, Some(d)) => d.decompress(body, out),
                (_, None) => {
                    return fail("block needs a segment dictionary and there is none".into())
                }
            };
            let n = n.map_err(|e| DecodeError {
                offset: 0,
                detail: format!("zstd: {e}"),
            })?;
            out.truncate(n);
        }
    }
    if out.len() != header.raw_len as usize {
        return fail(format!(
            "decompressed {} bytes, header says {}",
            out.len(),
            header.raw_len
        ));
    }
    Ok(())
}

thread_local! {
    static DECOMPRESSOR: std::cell::RefCell<zstd::bulk::Decompressor<'static>> =
        std::cell::RefCell::new(zstd::bulk::Decompressor::new().expect("zstd context allocation"));
}

/// A decoded view over an uncompressed block body. Column bytes are borrowed;
/// rows are materialized on demand.
pub struct BlockView<'a> {
    cols: [&'a [u8]; COLUMN_COUNT],
    col_offsets: [usize; COLUMN_COUNT],
    strings: Dict<'a>,
    runs: Vec<(TraceId, u32)>,
    /// Offsets of the table entries in their columns; entries are decoded
    /// on first use, since a lookup needs only the few its rows refer to.
    /// Resources are located on first use too: a search reads the first
    /// few rows' resources of a block, and resources are long.
    resources: Vec<ResourceEntry<'a>>,
    /// Resources located so far, and where the next one starts.
    resources_located: Cell<(usize, usize)>,
    scopes: Vec<(usize, OnceCell<Arc<Scope>>)>,
    span_count: usize,
    /// Resources and scopes already decoded from other blocks.
    tables: Option<&'a TableCache>,
    /// The segment's tables, when the block refers to them (its columns 8
    /// and 9 are empty).
    shared: Option<&'a SegmentTables>,
}

/// Resources and scopes decoded from the blocks of one segment, by
/// content. Blocks repeat the same few, and decoding one allocates each of
/// its strings; telling an entry's content needs no allocation per string.
#[derive(Default)]
pub struct TableCache {
    entries: std::sync::Mutex<FastMap<Vec<u8>, Table>>,
}

#[derive(Clone)]
enum Table {
    Resource(Arc<Resource>),
    Scope(Arc<Scope>),
}

/// Entries a [`TableCache`] holds at most; it starts afresh when full.
/// A segment's blocks repeat a few dozen resources and scopes; the bound
/// keeps a store with many open segments to well under a MiB each.
const TABLE_CACHE_MAX: usize = 256;

impl TableCache {
    fn get(&self, key: &[u8]) -> Option<Table> {
        self.entries.lock().ok()?.get(key).cloned()
    }

    fn put(&self, key: Vec<u8>, t: Table) {
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= TABLE_CACHE_MAX {
                m.clear();
            }
            m.insert(key, t);
        }
    }
}

impl<'a> BlockView<'a> {
    /// Parses the column directory, dictionary, trace runs and tables of a
    /// block that holds its own tables (every block of a log).
    pub fn parse(raw: &'a [u8], span_count: u32) -> DecodeResult<Self> {
        Self::parse_with(raw, span_count, None)
    }

    /// As [`parse`](Self::parse), for a block of a sealed segment whose
    /// tables are `segment` (`None` when it has none): a block with empty
    /// columns 8 and 9 refers to them.
    pub fn parse_with(
        raw: &'a [u8],
        span_count: u32,
        segment: Option<&'a SegmentTables>,
    ) -> DecodeResult<Self> {
        let mut c = Cursor::new(raw);
        let n = c.u32()? as usize;
        if n != COLUMN_COUNT {
            return c.err(format!("expected {COLUMN_COUNT} columns, found {n}"));
        }
        let mut lens = [0usize; COLUMN_COUNT];
        for l in &mut lens {
            *l = c.u32()? as usize;
        }
        let mut cols: [&[u8]; COLUMN_COUNT] = [&[]; COLUMN_COUNT];
        let mut col_offsets = [0usize; COLUMN_COUNT];
        for i in 0..COLUMN_COUNT {
            col_offsets[i] = c.position();
            cols[i] = c.take(lens[i])?;
        }
        if !c.is_empty() {
            return c.err("bytes after the last column");
        }
        let mut view = BlockView {
            cols,
            col_offsets,
            strings: Dict::default(),
            runs: Vec::new(),
            resources: Vec::new(),
            resources_located: Cell::new((0, 0)),
            scopes: Vec::new(),
            span_count: span_count as usize,
            tables: None,
            shared: None,
        };
        view.parse_strings()?;
        view.parse_runs()?;
        match (cols[COL_RESOURCES].is_empty(), cols[COL_SCOPES].is_empty()) {
            (false, false) => view.parse_tables()?,
            (true, true) if segment.is_some() => view.shared = segment,
            (true, true) => {
                return view.cursor(COL_RESOURCES).err(
                    "the block refers to segment tables, and its file has none (format-spec 5.4)",
                )
            }
            _ => {
                return view
                    .cursor(COL_RESOURCES)
                    .err("one of the resource and scope columns is empty, not both")
            }
        }
        Ok(view)
    }

    /// Shares decoded resources and scopes through `cache`.
    pub fn with_cache(mut self, cache: &'a TableCache) -> Self {
        self.tables = Some(cache);
        self
    }

    /// The content of a resource (`b'R'`) or scope (`b'S'`) entry at `at`
    /// of its column, its strings resolved: equal contents, equal keys.
    fn table_key(&self, kind: u8, at: usize) -> Option<Vec<u8>> {
        let col = if kind == b'R' {
            COL_RESOURCES
        } else {
            COL_SCOPES
        };
        let mut c = Cursor::new(self.cols[col]);
        c.take(at).ok()?;
        let dict = &self.strings;
        let mut out = Vec::with_capacity(512);
        out.push(kind);
        if kind == b'S' {
            canon_str(&mut c, dict, &mut out).ok()?;
            canon_str(&mut c, dict, &mut out).ok()?;
        }
        canon_attrs(&mut c, dict, 0, &mut out).ok()?;
        put_varint(&mut out, c.varint().ok()?);
        canon_str(&mut c, dict, &mut out).ok()?;
        Some(out)
    }

    fn cursor(&self, col: usize) -> ColCursor<'a> {
        ColCursor {
            c: Cursor::new(self.cols[col]),
            base: self.col_offsets[col],
        }
    }

    fn parse_strings(&mut self) -> DecodeResult<()> {
        let mut c = self.cursor(COL_STRINGS);
        let n = c.count(1)?;
        let mut strings = Vec::with_capacity(n);
        for _ in 0..n {
            let at = c.base + c.position();
            strings.push(DictEntry {
                bytes: c.bytes()?,
                at,
                checked: Cell::new(None),
            });
        }
        self.strings = Dict(strings);
        c.finish()
    }

    fn parse_runs(&mut self) -> DecodeResult<()> {
        let mut c = self.cursor(COL_TRACE);
        let n = c.count(17)?;
        let mut total = 0u64;
        let mut runs = Vec::with_capacity(n);
        for _ in 0..n {
            let t = TraceId(c.array::<16>()?);
            let len = c.varint_u32()?;
            if len == 0 || runs.last().is_some_and(|(p, _)| *p >= t) {
                return c.err("trace runs must be non-empty and sorted by trace id");
            }
            total += u64::from(len);
            runs.push((t, len));
        }
        if total != self.span_count as u64 {
            return c.err(format!(
                "trace runs cover {total} rows, header says {}",
                self.span_count
            ));
        }
        self.runs = runs;
        if self.cols[COL_SPAN_ID].len() != 8 * self.span_count {
            let s = self.cursor(COL_SPAN_ID);
            return s.err("span id column length does not match the span count");
        }
        c.finish()
    }

    /// Finds where each scope starts, and how many resources there are;
    /// decoding waits for use.
    fn parse_tables(&mut self) -> DecodeResult<()> {
        let mut c = self.cursor(COL_RESOURCES);
        let n = c.count(3)?;
        self.resources = (0..n).map(|_| ResourceEntry::default()).collect();
        self.resources_located = Cell::new((0, c.position()));
        if n == 0 {
            c.finish()?;
        }
        let mut c = self.cursor(COL_SCOPES);
        let n = c.count(5)?;
        for _ in 0..n {
            self.scopes.push((c.position(), OnceCell::new()));
            let r = c.varint().and_then(|_| c.varint());
            let r = r
                .and_then(|_| skip_attrs(&mut c, 0))
                .and_then(|_| c.varint())
                .and_then(|_| c.varint());
            c.rebase(r)?;
        }
        c.finish()
    }

    /// Resource `i` of the segment's tables, when the block uses them.
    fn shared_resource(&self, i: usize) -> Option<DecodeResult<&'a Arc<Resource>>> {
        let t = self.shared?;
        if let Some((r, _)) = &t.any {
            return Some(Ok(r));
        }
        Some(t.resources.get(i).map_or_else(
            || {
                self.cursor(COL_META).err(format!(
                    "resource {i} not in the segment's table of {}",
                    t.resources.len()
                ))
            },
            Ok,
        ))
    }

    /// Where resource `i` starts in its column, and its decoded form.
    fn resource_entry(&self, i: usize) -> DecodeResult<(usize, &OnceCell<Arc<Resource>>)> {
        let Some(ResourceEntry {
            at, decoded: cell, ..
        }) = self.resources.get(i)
        else {
            return self
                .cursor(COL_RESOURCES)
                .err(format!("resource {i} not in the block's table"));
        };
        if at.get() == UNLOCATED {
            let (mut done, pos) = self.resources_located.get();
            let mut c = self.cursor(COL_RESOURCES);
            c.take(pos)?;
            while done <= i {
                self.resources[done].at.set(c.position());
                let r = skip_attrs(&mut c, 0)
                    .and_then(|_| c.varint())
                    .and_then(|_| c.varint());
                c.rebase(r)?;
                done += 1;
            }
            if done == self.resources.len() {
                c.finish()?;
            }
            self.resources_located.set((done, c.position()));
        }
        Ok((at.get(), cell))
    }

    fn resource(&self, i: usize) -> DecodeResult<Arc<Resource>> {
        if let Some(r) = self.shared_resource(i) {
            return r.cloned();
        }
        let (at, cell) = self.resource_entry(i)?;
        let at = &at;
        if let Some(r) = cell.get() {
            return Ok(r.clone());
        }
        let key = self.tables.and_then(|_| self.table_key(b'R', *at));
        if let (Some(cache), Some(key)) = (self.tables, &key) {
            if let Some(Table::Resource(r)) = cache.get(key) {
                return Ok(cell.get_or_init(|| r).clone());
            }
        }
        let mut c = self.cursor(COL_RESOURCES);
        c.take(*at)?;
        let r = Arc::new(Resource {
            attributes: c.attrs(&self.strings, 0)?,
            dropped_attributes_count: c.varint_u32()?,
            schema_url: c.string(&self.strings)?,
        });
        if let (Some(cache), Some(key)) = (self.tables, key) {
            cache.put(key, Table::Resource(r.clone()));
        }
        Ok(cell.get_or_init(|| r).clone())
    }

    fn scope(&self, i: usize) -> DecodeResult<Arc<Scope>> {
        if let Some(t) = self.shared {
            if let Some((_, s)) = &t.any {
                return Ok(s.clone());
            }
            return t.scopes.get(i).cloned().map_or_else(
                || {
                    self.cursor(COL_META).err(format!(
                        "scope {i} not in the segment's table of {}",
                        t.scopes.len()
                    ))
                },
                Ok,
            );
        }
        let Some((at, cell)) = self.scopes.get(i) else {
            return self
                .cursor(COL_SCOPES)
                .err(format!("scope {i} not in the block's table"));
        };
        if let Some(s) = cell.get() {
            return Ok(s.clone());
        }
        let key = self.tables.and_then(|_| self.table_key(b'S', *at));
        if let (Some(cache), Some(key)) = (self.tables, &key) {
            if let Some(Table::Scope(s)) = cache.get(key) {
                return Ok(cell.get_or_init(|| s).clone());
            }
        }
        let mut c = self.cursor(COL_SCOPES);
        c.take(*at)?;
        let s = Arc::new(Scope {
            name: c.string(&self.strings)?,
            version: c.string(&self.strings)?,
            attributes: c.attrs(&self.strings, 0)?,
            dropped_attributes_count: c.varint_u32()?,
            schema_url: c.string(&self.strings)?,
        });
        if let (Some(cache), Some(key)) = (self.tables, key) {
            cache.put(key, Table::Scope(s.clone()));
        }
        Ok(cell.get_or_init(|| s).clone())
    }

    /// The service of resource `i`, as [`Resource::service_name`] gives
    /// it, found in the encoded attributes without decoding them.
    fn service(&self, i: usize) -> DecodeResult<Option<&'a str>> {
        if let Some(r) = self.shared_resource(i) {
            return r.map(|r| r.service_name());
        }
        let (at, cell) = self.resource_entry(i)?;
        let at = &at;
        let known = &self.resources[i].service;
        if let Some(service) = known.get() {
            return Ok(service);
        }
        if cell.get().is_some_and(|r| r.service_name().is_none()) {
            return Ok(None);
        }
        let mut c = self.cursor(COL_RESOURCES);
        c.take(*at)?;
        let dict = &self.strings;
        let r = (|| {
            for _ in 0..c.count(2)? {
                let key = c.varint().and_then(|k| dict.get(&c, k))?;
                if key == "service.name" && c.peek_u8() == Some(TAG_STRING) {
                    c.u8()?;
                    return c.varint().and_then(|v| dict.get(&c, v)).map(Some);
                }
                skip_value(&mut c, 0)?;
            }
            Ok(None)
        })();
        let service = c.rebase(r)?;
        known.set(Some(service));
        Ok(service)
    }

    /// Number of spans in the block.
    pub fn len(&self) -> usize {
        self.span_count
    }

    /// True when the block holds no span.
    pub fn is_empty(&self) -> bool {
        self.span_count == 0
    }

    /// Rows holding the given trace (contiguous, since rows are sorted).
    pub fn rows_of(&self, trace: &TraceId) -> Range<usize> {
        let mut start = 0usize;
        for (t, n) in &self.runs {
            if t == trace {
                return start..start + *n as usize;
            }
            start += *n as usize;
        }
        0..0
    }

    /// Decodes the rows in `range`, in row order.
    pub fn rows(&self, range: Range<usize>) -> DecodeResult<Vec<Span>> {
        let mut rows = Rows::new(self);
        let mut out = Vec::with_capacity(range.len());
        for i in 0..range.end.min(self.span_count) {
            if i < range.start {
                rows.skip()?;
            } else {
                out.push(rows.next_span()?);
            }
        }
        rows.finish_if(range.end >= self.span_count)?;
        Ok(out)
    }

    /// True when some row in `range` satisfies `f`. Rows are decoded one
    /// at a time: first the fields of [`RowHead`]; attributes, events and
    /// links only for rows that `pre` accepts. Decoding stops at the first
    /// row that satisfies `f`.
    pub fn any_row(
        &self,
        range: Range<usize>,
        pre: impl Fn(&RowHead) -> bool,
        f: impl Fn(&Span) -> bool,
    ) -> DecodeResult<bool> {
        let mut rows = Rows::new(self);
        for i in 0..range.end.min(self.span_count) {
            if i < range.start {
                rows.skip()?;
            } else if rows.next_if(&pre)?.is_some_and(|s| f(&s)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Decodes every row, after checking the whole resource table.
    pub fn all(&self) -> DecodeResult<Vec<Span>> {
        if let Some(last) = self.resources.len().checked_sub(1) {
            self.resource_entry(last)?;
        }
        self.rows(0..self.span_count)
    }

    /// The distinct trace ids of the block with their row counts.
    pub fn trace_runs(&self) -> &[(TraceId, u32)] {
        &self.runs
    }
}

/// A cursor over one column that reports offsets relative to the body.
struct ColCursor<'a> {
    c: Cursor<'a>,
    base: usize,
}

impl<'a> std::ops::Deref for ColCursor<'a> {
    type Target = Cursor<'a>;
    fn deref(&self) -> &Cursor<'a> {
        &self.c
    }
}
impl std::ops::DerefMut for ColCursor<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.c
    }
}

impl<'a> ColCursor<'a> {
    fn rebase<T>(&self, r: DecodeResult<T>) -> DecodeResult<T> {
        r.map_err(|mut e| {
            e.offset += self.base;
            e
        })
    }

    fn finish(&self) -> DecodeResult<()> {
        if self.c.is_empty() {
            Ok(())
        } else {
            self.rebase(self.c.err("unexpected bytes at the end of a column"))
        }
    }

    fn str_ref(&mut self, dict: &Dict<'a>) -> DecodeResult<&'a str> {
        let r = self.c.varint().and_then(|i| dict.get(&self.c, i));
        self.rebase(r)
    }

    fn string(&mut self, dict: &Dict<'_>) -> DecodeResult<String> {
        let r = self
            .c
            .varint()
            .and_then(|i| dict.get(&self.c, i))
            .map(str::to_string);
        self.rebase(r)
    }

    fn attrs(&mut self, dict: &Dict<'_>, depth: usize) -> DecodeResult<Vec<KeyValue>> {
        let r = read_attrs(&mut self.c, dict, depth);
        self.rebase(r)
    }
}

/// A block's string dictionary: each entry with its offset in the body.
/// An entry is checked to be UTF-8 when first used rather than when the
/// block is parsed: a search reads few of a block's strings.
#[derive(Default)]
struct Dict<'a>(Vec<DictEntry<'a>>);

/// A dictionary string as stored, where it lies, and the string once
/// checked.
struct DictEntry<'a> {
    bytes: &'a [u8],
    at: usize,
    checked: Cell<Option<&'a str>>,
}

impl<'a> Dict<'a> {
    /// Entry `i`; an error (at `c`'s position, which refers to it) when
    /// there is none or it is not UTF-8.
    fn get(&self, c: &Cursor<'_>, i: u64) -> DecodeResult<&'a str> {
        let Some(DictEntry { bytes, at, checked }) = self.0.get(i as usize) else {
            return c.err(format!(
                "string index {i} outside a dictionary of {}",
                self.0.len()
            ));
        };
        if let Some(s) = checked.get() {
            return Ok(s);
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                checked.set(Some(s));
                Ok(s)
            }
            Err(e) => c.err(format!(
                "dictionary string {i} (body offset {at}) is not UTF-8: {e}"
            )),
        }
    }
}

fn read_attrs(c: &mut Cursor<'_>, dict: &Dict<'_>, depth: usize) -> DecodeResult<Vec<KeyValue>> {
    let n = c.count(2)?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let key = dict_str(c, dict)?;
        let value = read_value(c, dict, depth)?;
        out.push(KeyValue { key, value });
    }
    Ok(out)
}

fn dict_str(c: &mut Cursor<'_>, dict: &Dict<'_>) -> DecodeResult<String> {
    let i = c.varint()?;
    dict.get(c, i).map(str::to_string)
}

fn read_value(c: &mut Cursor<'_>, dict: &Dict<'_>, depth: usize) -> DecodeResult<AnyValue> {
    if depth > MAX_VALUE_DEPTH {
        return c.err(format!("values nested deeper than {MAX_VALUE_DEPTH}"));
    }
    Ok(match c.u8()? {
        TAG_EMPTY => AnyValue::Empty,
        TAG_STRING => AnyValue::String(dict_str(c, dict)?),
        TAG_FALSE => AnyValue::Bool(false),
        TAG_TRUE => AnyValue::Bool(true),
        TAG_INT => AnyValue::Int(unzigzag(c.varint()?)),
        TAG_DOUBLE => AnyValue::Double(f64::from_bits(c.u64()?)),
        TAG_BYTES => AnyValue::Bytes(c.bytes()?.to_vec()),
        TAG_ARRAY => {
            let n = c.count(1)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(read_value(c, dict, depth + 1)?);
            }
            AnyValue::Array(items)
        }
        TAG_KVLIST => AnyValue::KvList(read_attrs(c, dict, depth + 1)?),
        t => return c.err(format!("unknown value tag {t}")),
    })
}

/// Appends a dictionary string referred to at `c` to `out`, length first.
fn canon_str(c: &mut Cursor<'_>, dict: &Dict<'_>, out: &mut Vec<u8>) -> DecodeResult<()> {
    let i = c.varint()?;
    put_bytes(out, dict.get(c, i)?.as_bytes());
    Ok(())
}

/// Appends an attribute list with its strings resolved.
fn canon_attrs(
    c: &mut Cursor<'_>,
    dict: &Dict<'_>,
    depth: usize,
    out: &mut Vec<u8>,
) -> DecodeResult<()> {
    let n = c.count(2)?;
    put_varint(out, n as u64);
    for _ in 0..n {
        canon_str(c, dict, out)?;
        canon_value(c, dict, depth, out)?;
    }
    Ok(())
}

/// Appends a value with its strings resolved.
fn canon_value(
    c: &mut Cursor<'_>,
    dict: &Dict<'_>,
    depth: usize,
    out: &mut Vec<u8>,
) -> DecodeResult<()> {
    if depth > MAX_VALUE_DEPTH {
        return c.err(format!("values nested deeper than {MAX_VALUE_DEPTH}"));
    }
    let tag = c.u8()?;
    out.push(tag);
    match tag {
        TAG_EMPTY | TAG_FALSE | TAG_TRUE => {}
        TAG_STRING => canon_str(c, dict, out)?,
        TAG_INT => put_varint(out, c.varint()?),
        TAG_DOUBLE => out.extend_from_slice(c.take(8)?),
        TAG_BYTES => put_bytes(out, c.bytes()?),
        TAG_ARRAY => {
            let n = c.count(1)?;
            put_varint(out, n as u64);
            for _ in 0..n {
                canon_value(c, dict, depth + 1, out)?;
            }
        }
        TAG_KVLIST => canon_attrs(c, dict, depth + 1, out)?,
        t => return c.err(format!("unknown value tag {t}")),
    }
    Ok(())
}

fn skip_attrs(c: &mut Cursor<'_>, depth: usize) -> DecodeResult<()> {
    for _ in 0..c.count(2)? {
        c.varint()?;
        skip_value(c, depth)?;
    }
    Ok(())
}

fn skip_value(c: &mut Cursor<'_>, depth: usize) -> DecodeResult<()> {
    if depth > MAX_VALUE_DEPTH {
        return c.err(format!("values nested deeper than {MAX_VALUE_DEPTH}"));
    }
    match c.u8()? {
        TAG_EMPTY | TAG_FALSE | TAG_TRUE => {}
        TAG_STRING | TAG_INT => {
            c.varint()?;
        }
        TAG_DOUBLE => {
            c.take(8)?;
        }
        TAG_BYTES => {
            c.bytes()?;
        }
        TAG_ARRAY => {
            for _ in 0..c.count(1)? {
                skip_value(c, depth + 1)?;
            }
        }
        TAG_KVLIST => skip_attrs(c, depth + 1)?,
        t => return c.err(format!("unknown value tag {t}")),
    }
    Ok(())
}

/// Sequential row decoder: one cursor per per-row column.
/// The fields of a row that are decoded without allocating, for checks
/// that decide whether the rest is worth decoding.
pub struct RowHead<'a> {
    pub name: &'a str,
    pub start: u64,
    pub end: u64,
    pub kind: SpanKind,
    pub status: StatusCode,
    /// The `service.name` of the span's resource, read without decoding
    /// the resource.
    pub service: Option<&'a str>,
}

/// A row's fields up to its attributes, with its strings still in the
/// block's dictionary.
struct Head<'a> {
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    name: &'a str,
    start: u64,
    end: u64,
    kind: SpanKind,
    flags: u32,
    trace_state: &'a str,
    status: StatusCode,
    message: &'a str,
    dropped: [u32; 3],
    resource: usize,
    scope: usize,
}

struct Rows<'v, 'a> {
    view: &'v BlockView<'a>,
    row: usize,
    run: usize,
    run_left: u32,
    span_ids: ColCursor<'a>,
    parent: ColCursor<'a>,
    name: ColCursor<'a>,
    meta: ColCursor<'a>,
    start: ColCursor<'a>,
    duration: ColCursor<'a>,
    attrs: ColCursor<'a>,
    events: ColCursor<'a>,
    links: ColCursor<'a>,
    prev_start: u64,
}

impl<'v, 'a> Rows<'v, 'a> {
    fn new(view: &'v BlockView<'a>) -> Self {
        Rows {
            view,
            row: 0,
            run: 0,
            run_left: view.runs.first().map_or(0, |r| r.1),
            span_ids: view.cursor(COL_SPAN_ID),
            parent: view.cursor(COL_PARENT),
            name: view.cursor(COL_NAME),
            meta: view.cursor(COL_META),
            start: view.cursor(COL_START),
            duration: view.cursor(COL_DURATION),
            attrs: view.cursor(COL_ATTRS),
            events: view.cursor(COL_EVENTS),
            links: view.cursor(COL_LINKS),
            prev_start: 0,
        }
    }

    fn advance_run(&mut self) -> TraceId {
        let trace = self.view.runs[self.run].0;
        self.run_left -= 1;
        if self.run_left == 0 && self.run + 1 < self.view.runs.len() {
            self.run += 1;
            self.run_left = self.view.runs[self.run].1;
        }
        self.row += 1;
        trace
    }

    /// Moves past one row without materializing it: variable-length columns
    /// are walked, nothing is allocated. Start times are delta-coded, so the
    /// running start is still accumulated.
    fn skip(&mut self) -> DecodeResult<()> {
        self.advance_run();
        self.span_ids.take(8)?;
        if self.parent.varint()? == 1 {
            self.parent.take(8)?;
        }
        self.name.varint()?;
        let delta = unzigzag(self.start.varint()?) as u64;
        self.prev_start = self.prev_start.wrapping_add(delta);
        self.duration.varint()?;
        let m = &mut self.meta;
        m.u8()?;
        m.varint()?;
        m.varint()?;
        m.u8()?;
        for _ in 0..6 {
            m.varint()?;
        }
        self.skip_tail()
    }

    /// Moves past a row's attributes, events and links.
    fn skip_tail(&mut self) -> DecodeResult<()> {
        skip_attrs(&mut self.attrs, 0)?;
        for _ in 0..self.events.count(4)? {
            self.events.varint()?;
            self.events.varint()?;
            skip_attrs(&mut self.events, 0)?;
            self.events.varint()?;
        }
        for _ in 0..self.links.count(28)? {
            self.links.take(24)?;
            self.links.varint()?;
            self.links.varint()?;
            skip_attrs(&mut self.links, 0)?;
            self.links.varint()?;
        }
        Ok(())
    }

    /// Decodes the next row's head; the whole span when `pre` accepts it,
    /// else skips the rest of the row.
    fn next_if(&mut self, pre: &dyn Fn(&RowHead) -> bool) -> DecodeResult<Option<Span>> {
        let h = self.read_head()?;
        let head = RowHead {
            name: h.name,
            start: h.start,
            end: h.end,
            kind: h.kind,
            status: h.status,
            service: self.view.service(h.resource)?,
        };
        if !pre(&head) {
            self.skip_tail()?;
            return Ok(None);
        }
        self.finish(h).map(Some)
    }

    fn next_span(&mut self) -> DecodeResult<Span> {
        let h = self.read_head()?;
        self.finish(h)
    }

    /// The fields of the next row that need no allocation.
    fn read_head(&mut self) -> DecodeResult<Head<'a>> {
        let dict = &self.view.strings;
        let trace_id = self.advance_run();
        let span_id = SpanId(self.span_ids.array::<8>()?);
        let parent_span_id = self.read_parent()?;
        let name = self.name.str_ref(dict)?;
        let delta = unzigzag(self.start.varint()?) as u64;
        let start = self.prev_start.wrapping_add(delta);
        self.prev_start = start;
        let end = start.wrapping_add(self.duration.varint()?);
        let m = &mut self.meta;
        let kind = m.u8()?;
        let Some(kind) = SpanKind::from_u8(kind) else {
            return m.rebase(m.err(format!("unknown span kind {kind}")));
        };
        let flags = m.varint_u32()?;
        let trace_state = m.str_ref(dict)?;
        let code = m.u8()?;
        let Some(status) = StatusCode::from_u8(code) else {
            return m.rebase(m.err(format!("unknown status code {code}")));
        };
        let message = m.str_ref(dict)?;
        let dropped = [m.varint_u32()?, m.varint_u32()?, m.varint_u32()?];
        let (resource, scope) = (m.varint()? as usize, m.varint()? as usize);
        Ok(Head {
            trace_id,
            span_id,
            parent_span_id,
            name,
            start,
            end,
            kind,
            flags,
            trace_state,
            status,
            message,
            dropped,
            resource,
            scope,
        })
    }

    /// The span of a row whose head was read: its strings, resource and
    /// scope, attributes, events and links. Every field is set here, none
    /// from `Span::default()`, whose resource and scope would be two
    /// allocations thrown away per span.
    fn finish(&mut self, h: Head<'a>) -> DecodeResult<Span> {
        let dict = &self.view.strings;
        Ok(Span {
            trace_id: h.trace_id,
            span_id: h.span_id,
            parent_span_id: h.parent_span_id,
            trace_state: h.trace_state.to_string(),
            flags: h.flags,
            name: h.name.to_string(),
            kind: h.kind,
            start_time_unix_nano: h.start,
            end_time_unix_nano: h.end,
            dropped_attributes_count: h.dropped[0],
            dropped_events_count: h.dropped[1],
            dropped_links_count: h.dropped[2],
            status: Status {
                code: h.status,
                message: h.message.to_string(),
            },
            resource: self.view.resource(h.resource)?,
            scope: self.view.scope(h.scope)?,
            attributes: self.attrs.attrs(dict, 0)?,
            events: self.read_events(h.start)?,
            links: self.read_links()?,
        })
    }

    fn read_parent(&mut self) -> DecodeResult<Option<SpanId>> {
        let r = match self.parent.varint()? {
            0 => Ok(None),
            1 => self.parent.array::<8>().map(|b| Some(SpanId(b))),
            r => {
                let row = r - 2;
                let ids = self.view.cols[COL_SPAN_ID];
                let at = usize::try_from(row)
                    .ok()
                    .filter(|r| *r < self.view.span_count)
                    .map(|r| r * 8);
                match at.and_then(|at| ids.get(at..at + 8)) {
                    Some(b) => {
                        let mut a = [0u8; 8];
                        a.copy_from_slice(b);
                        Ok(Some(SpanId(a)))
                    }
                    _ => self.parent.err(format!(
                        "parent refers to row {row} of {}",
                        self.view.span_count
                    )),
                }
            }
        };
        self.parent.rebase(r)
    }

    fn read_events(&mut self, start: u64) -> DecodeResult<Vec<Event>> {
        let dict = &self.view.strings;
        let c = &mut self.events;
        let n = c.count(4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let delta = unzigzag(c.varint()?);
            out.push(Event {
                time_unix_nano: start.wrapping_add(delta as u64),
                name: c.string(dict)?,
                attributes: c.attrs(dict, 0)?,
                dropped_attributes_count: c.varint_u32()?,
            });
        }
        Ok(out)
    }

    fn read_links(&mut self) -> DecodeResult<Vec<Link>> {
        let dict = &self.view.strings;
        let c = &mut self.links;
        let n = c.count(28)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(Link {
                trace_id: TraceId(c.array::<16>()?),
                span_id: SpanId(c.array::<8>()?),
                trace_state: c.string(dict)?,
                flags: c.varint_u32()?,
                attributes: c.attrs(dict, 0)?,
                dropped_attributes_count: c.varint_u32()?,
            });
        }
        Ok(out)
    }

    /// After the last row every column must be consumed exactly.
    fn finish_if(&self, at_end: bool) -> DecodeResult<()> {
        if !at_end {
            return Ok(());
        }
        for c in [
            &self.span_ids,
            &self.parent,
            &self.name,
            &self.meta,
            &self.start,
            &self.duration,
            &self.attrs,
            &self.events,
            &self.links,
        ] {
            c.finish()?;
        }
        Ok(())
    }
}

/// Decodes a whole block from its stored bytes (header then body; bytes
/// after the block are ignored).
pub fn decode_block(stored: &[u8]) -> DecodeResult<(BlockHeader, Vec<Span>)> {
    decode_block_with(stored, None)
}

/// As [`decode_block`], for a block of a sealed segment whose tables are
/// `tables` (see [`SegmentTables::unknown`] for a file whose footer could
/// not be read).
pub fn decode_block_with(
    stored: &[u8],
    tables: Option<&SegmentTables>,
) -> DecodeResult<(BlockHeader, Vec<Span>)> {
    let header = BlockHeader::decode(stored)?;
    let Some(body) = stored.get(BLOCK_HEADER_LEN..header.stored_len() as usize) else {
        return Err(DecodeError {
            offset: BLOCK_HEADER_LEN,
            detail: format!(
                "block body of {} bytes is cut short at {}",
                header.body_len,
                stored.len() - BLOCK_HEADER_LEN
            ),
        });
    };
    let raw = decompress_body(&header, body, None).map_err(|mut e| {
        e.offset += BLOCK_HEADER_LEN;
        e
    })?;
    let view = BlockView::parse_with(&raw, header.span_count, tables).map_err(|e| DecodeError {
        offset: BLOCK_HEADER_LEN,
        detail: format!("in uncompressed body at {}: {}", e.offset, e.detail),
    })?;
    let spans = view.all().map_err(|e| DecodeError {
        offset: BLOCK_HEADER_LEN,
        detail: format!("in uncompressed body at {}: {}", e.offset, e.detail),
    })?;
    Ok((header, spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(trace: u8, id: u8, start: u64) -> Span {
        let mut s = Span {
            trace_id: TraceId([trace; 16]),
            span_id: SpanId([id; 8]),
            name: format!("op-{}", id % 3),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1000,
            ..Span::default()
        };
        s.attributes
            .push(KeyValue::new("n", AnyValue::Int(i64::from(id))));
        Arc::make_mut(&mut s.resource)
            .attributes
            .push(KeyValue::new(
                "service.name",
                AnyValue::String(format!("svc{}", trace % 2)),
            ));
        s
    }

    /// The items gathered while encoding must be those `attrs::items`
    /// defines, whatever the sharing of resources and scopes.
    #[test]
    fn items_gathered_while_encoding_are_the_reference_items() {
        let mut spans = crate::gen::generate(7, 3000);
        // A scope shared by two services, a resource copied into a second
        // allocation, attributes of every kind, long and repeated values.
        let shared = spans[0].scope.clone();
        spans[1].scope = shared.clone();
        spans[2].scope = shared;
        spans[3].resource = Arc::new((*spans[3].resource).clone());
        for (i, s) in spans.iter_mut().enumerate().take(40) {
            s.attributes.extend([
                KeyValue::new("flag", AnyValue::Bool(i % 2 == 0)),
                KeyValue::new("ratio", AnyValue::Double(i as f64 / 3.0)),
                KeyValue::new("nothing", AnyValue::Empty),
                KeyValue::new("blob", AnyValue::Bytes(vec![i as u8; 3])),
                KeyValue::new("list", AnyValue::Array(vec![AnyValue::Int(i as i64)])),
                KeyValue::new("long", AnyValue::String("x".repeat(40 + i))),
                KeyValue::new("n", AnyValue::Int((i % 4) as i64)),
            ]);
            // A name too long to intern, shared by several rows.
            if i % 3 == 0 {
                s.name = "n".repeat(INTERN_MAX_LEN + 1);
            }
        }
        let mut tables = TableBuilder::default();
        spans.iter().for_each(|s| tables.add(s));
        // Blocks with their own tables, and blocks referring to a segment's.
        for (chunk, shared) in spans
            .chunks(97)
            .flat_map(|c| [(c, None), (c, Some(&tables))])
        {
            let rows: Vec<&Span> = chunk.iter().collect();
            let mut sorted = rows.clone();
            sorted.sort_by_key(|s| (s.trace_id, s.start_time_unix_nano));
            let id = |s: &Span| shared.and_then(|t| t.resource_id(&s.resource));
            let (mut want, mut want_file) = crate::attrs::items_with(&sorted, &id);
            want.sort_unstable();
            want_file.sort_unstable();
            assert_eq!(want_file.is_empty(), shared.is_none());
            let norm = |mut v: Vec<crate::attrs::Item>| {
                v.sort_unstable();
                v.dedup();
                v
            };
            let mut none = ItemContext::default();
            let (_, summary, _, _) =
                encode_raw(rows.clone(), INTERN_MAX_LEN, Some(&mut none), shared).unwrap();
            assert_eq!(norm(summary.attr_items), want);
            assert_eq!(norm(summary.file_items), want_file);
            // Operations counted while encoding are those of the rows.
            assert_eq!(summary.operations, summarize_refs(&sorted).operations);
            // The next block of the same context gathers its items afresh:
            // nothing noted for the first one counts as seen.
            let (_, again, _, _) =
                encode_raw(rows.clone(), INTERN_MAX_LEN, Some(&mut none), shared).unwrap();
            assert_eq!(norm(again.attr_items), want);
            // Keys demoted in advance enter by key only.
            let demoted: crate::attrs::KeySet = want.iter().map(|(k, _)| *k).step_by(3).collect();
            let mut context = ItemContext::new(Arc::new(demoted.clone()));
            let (_, summary, _, _) =
                encode_raw(rows, INTERN_MAX_LEN, Some(&mut context), shared).unwrap();
            let demote = |v: &[crate::attrs::Item]| {
                norm(
                    v.iter()
                        .map(|(k, p)| (*k, if demoted.contains(k) { None } else { *p }))
                        .collect(),
                )
            };
            assert_eq!(norm(summary.attr_items), demote(&want));
            assert_eq!(norm(summary.file_items), demote(&want_file));
        }
    }

    fn stored(spans: &[Span], zstd: bool) -> Vec<u8> {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        let b = encode_block(spans, if zstd { Some(&mut c) } else { None }).unwrap();
        let mut out = b.header.encode().to_vec();
        out.extend_from_slice(&b.body);
        out
    }

    fn sorted(mut v: Vec<Span>) -> Vec<Span> {
        v.sort_by(|a, b| {
            (a.trace_id, a.start_time_unix_nano).cmp(&(b.trace_id, b.start_time_unix_nano))
        });
        v
    }

    #[test]
    fn round_trip_sorts_by_trace_and_keeps_parents() {
        let mut spans = vec![
            span(2, 1, 50),
            span(1, 2, 40),
            span(2, 3, 10),
            span(1, 4, 5),
        ];
        spans[0].parent_span_id = Some(SpanId([3; 8]));
        spans[1].parent_span_id = Some(SpanId([9; 8]));
        for z in [false, true] {
            let (h, back) = decode_block(&stored(&spans, z)).unwrap();
            assert_eq!(h.span_count, 4);
            assert_eq!((h.min_start, h.max_start), (5, 50));
            assert_eq!(back, sorted(spans.clone()));
        }
    }

    #[test]
    fn blocks_referring_to_segment_tables_read_back_only_with_them() {
        let mut spans: Vec<Span> = (0..12).map(|i| span(i % 3, i + 1, u64::from(i))).collect();
        for (i, s) in spans.iter_mut().enumerate() {
            let x = [0.0, -0.0, f64::NAN][i % 3];
            s.resource = Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AnyValue::String(format!("svc{}", i % 2))),
                    KeyValue::new("x", AnyValue::Double(x)),
                ],
                ..Resource::default()
            });
            s.scope = Arc::new(Scope {
                name: format!("lib{}", i % 4),
                ..Scope::default()
            });
        }
        let mut tables = TableBuilder::default();
        spans.iter().for_each(|s| tables.add(s));
        let decoded = SegmentTables::decode(&tables.encode()).unwrap();
        assert_eq!(decoded.scopes.len(), 4);
        let raw = encode_raw_block(
            spans.iter().collect(),
            INTERN_MAX_LEN,
            &mut ItemContext::default(),
            Some(&tables),
        )
        .unwrap();
        let view = BlockView::parse_with(&raw.raw, 12, Some(&decoded)).unwrap();
        let back = view.all().unwrap();
        let bits = |s: &Span| match &s.resource.attributes[1].value {
            AnyValue::Double(d) => d.to_bits(),
            _ => 0,
        };
        let want = sorted(spans.clone());
        assert_eq!(back.len(), want.len());
        for (b, w) in back.iter().zip(&want) {
            assert_eq!((b.span_id, bits(b)), (w.span_id, bits(w)));
            assert_eq!((&b.scope, b.service_name()), (&w.scope, w.service_name()));
        }
        // Without the tables (a log, an older file) the block is refused,
        // as it is with tables too short for its references.
        assert!(BlockView::parse(&raw.raw, 12).is_err());
        let short = SegmentTables {
            resources: decoded.resources[..1].to_vec(),
            scopes: decoded.scopes.clone(),
            ..SegmentTables::default()
        };
        let view = BlockView::parse_with(&raw.raw, 12, Some(&short)).unwrap();
        assert!(view.all().is_err());
        for n in 0..tables.encode().len() {
            assert!(SegmentTables::decode(&tables.encode()[..n]).is_err());
        }
    }

    #[test]
    fn rows_of_finds_one_trace() {
        let spans: Vec<Span> = (0..20).map(|i| span(i % 4, i, u64::from(i) * 7)).collect();
        let bytes = stored(&spans, true);
        let h = BlockHeader::decode(&bytes).unwrap();
        let raw = decompress_body(&h, &bytes[BLOCK_HEADER_LEN..], None).unwrap();
        let view = BlockView::parse(&raw, h.span_count).unwrap();
        let r = view.rows_of(&TraceId([2; 16]));
        let got = view.rows(r).unwrap();
        let want: Vec<Span> = sorted(spans.into_iter().filter(|s| s.trace_id.0[0] == 2).collect());
        assert_eq!(got, want);
        assert!(view.rows_of(&TraceId([9; 16])).is_empty());
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let spans: Vec<Span> = (0..5).map(|i| span(1, i, u64::from(i))).collect();
        let good = stored(&spans, true);
        for i in 0..good.len() {
            for bit in [0u8, 3, 7] {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode_block(&bad).is_err(),
                    "flip at byte {i} bit {bit} undetected"
                );
            }
        }
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let spans: Vec<Span> = (0..5).map(|i| span(1, i, u64::from(i))).collect();
        let good = stored(&spans, true);
        for n in 0..good.len() {
            assert!(decode_block(&good[..n]).is_err());
        }
    }
}
