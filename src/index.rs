//! Per-segment indexes: the trace-id index (sorted, fixed-width, binary
//! searched in place), the bloom filter over trace ids, and the catalog of
//! (service, operation, kind) with per-block presence.
//!
//! Builders collect entries while blocks are written; `encode` produces the
//! footer sections; views decode them from the mapped file without copying.

use std::hash::{Hash, Hasher};

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::codec::{put_bytes, put_u32, put_varint, Cursor, DecodeResult};
use crate::hash::{FastHasher, FastMap};
use crate::span::{SpanKind, TraceId};

/// Size of one trace-index entry: trace id, block count, block or postings
/// offset.
pub const TRACE_ENTRY_LEN: usize = 16 + 4 + 4;

/// Collects which blocks hold which traces.
#[derive(Default, Debug, Clone)]
pub struct TraceIndexBuilder {
    map: FastMap<TraceId, Vec<u32>>,
}

impl TraceIndexBuilder {
    /// Records that `block` holds spans of `trace`.
    pub fn add(&mut self, trace: TraceId, block: u32) {
        let v = self.map.entry(trace).or_default();
        if v.last() != Some(&block) {
            v.push(block);
        }
    }

    /// Blocks holding `trace`, in order.
    pub fn get(&self, trace: &TraceId) -> &[u32] {
        self.map.get(trace).map_or(&[], Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Encodes the entries section and the postings section.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let mut keys: Vec<&TraceId> = self.map.keys().collect();
        keys.sort_unstable();
        let mut entries = Vec::with_capacity(keys.len() * TRACE_ENTRY_LEN);
        let mut postings = Vec::new();
        for k in keys {
            let blocks = &self.map[k];
            entries.extend_from_slice(&k.0);
            put_u32(&mut entries, blocks.len() as u32);
            if let [only] = blocks.as_slice() {
                put_u32(&mut entries, *only);
            } else {
                put_u32(&mut entries, (postings.len() / 4) as u32);
                for b in blocks {
                    put_u32(&mut postings, *b);
                }
            }
        }
        (entries, postings)
    }

    /// Builds the bloom filter over every trace id.
    pub fn bloom(&self) -> Vec<u8> {
        let mut b = BloomBuilder::new(self.map.len());
        for k in self.map.keys() {
            b.insert(k);
        }
        b.encode()
    }
}

/// A trace-index lookup over the encoded sections.
pub struct TraceIndexView<'a> {
    entries: &'a [u8],
    postings: &'a [u8],
}

impl<'a> TraceIndexView<'a> {
    /// Checks section shapes; entry contents are checked by `verify`.
    pub fn new(entries: &'a [u8], postings: &'a [u8]) -> Option<Self> {
        (entries.len().is_multiple_of(TRACE_ENTRY_LEN) && postings.len().is_multiple_of(4))
            .then_some(TraceIndexView { entries, postings })
    }

    pub fn len(&self) -> usize {
        self.entries.len() / TRACE_ENTRY_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn entry(&self, i: usize) -> (&'a [u8], u32, u32) {
        let e = &self.entries[i * TRACE_ENTRY_LEN..(i + 1) * TRACE_ENTRY_LEN];
        (&e[..16], LE::read_u32(&e[16..]), LE::read_u32(&e[20..]))
    }

    /// Trace id of entry `i`.
    pub fn trace_at(&self, i: usize) -> TraceId {
        let mut t = [0u8; 16];
        t.copy_from_slice(self.entry(i).0);
        TraceId(t)
    }

    /// Blocks holding `trace`; `None` if a postings reference is out of
    /// range (corruption).
    pub fn lookup(&self, trace: &TraceId) -> Option<Vec<u32>> {
        match self.position(trace) {
            Some(i) => self.blocks_of(i),
            None => Some(Vec::new()),
        }
    }

    /// Position of `trace` among the entries.
    pub fn position(&self, trace: &TraceId) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.entry(mid).0.cmp(&trace.0[..]) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Some(mid),
            }
        }
        None
    }

    /// Blocks of entry `i`.
    pub fn blocks_of(&self, i: usize) -> Option<Vec<u32>> {
        let (_, count, value) = self.entry(i);
        if count == 1 {
            return Some(vec![value]);
        }
        let start = (value as usize).checked_mul(4)?;
        let end = start.checked_add((count as usize).checked_mul(4)?)?;
        let bytes = self.postings.get(start..end)?;
        Some(bytes.chunks_exact(4).map(LE::read_u32).collect())
    }
}

/// Bits per key of the bloom filter: about 1% false positives with 7 probes.
const BLOOM_BITS_PER_KEY: usize = 10;
const BLOOM_PROBES: u32 = 7;

/// The hash of a trace id used by the filter: two 64-bit halves mixed with
/// the SplitMix64 finalizer (trace ids are not always random: test fixtures
/// use ids like 0x11).
pub fn bloom_hash(t: &TraceId) -> (u64, u64) {
    let hi = LE::read_u64(&t.0[..8]);
    let lo = LE::read_u64(&t.0[8..]);
    let h1 = mix64(hi ^ mix64(lo));
    let h2 = mix64(h1 ^ 0x9e37_79b9_7f4a_7c15) | 1;
    (h1, h2)
}

fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

struct BloomBuilder {
    bits: Vec<u8>,
}

impl BloomBuilder {
    fn new(keys: usize) -> Self {
        let nbits = (keys * BLOOM_BITS_PER_KEY).max(64);
        BloomBuilder {
            bits: vec![0; nbits.div_ceil(8)],
        }
    }

    fn insert(&mut self, t: &TraceId) {
        let m = self.bits.len() as u64 * 8;
        let (h1, h2) = bloom_hash(t);
        for i in 0..u64::from(BLOOM_PROBES) {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    fn encode(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.bits.len());
        put_u32(&mut out, BLOOM_PROBES);
        put_u32(&mut out, 0);
        out.extend_from_slice(&self.bits);
        out
    }
}

/// A bloom filter over the encoded section.
pub struct BloomView<'a> {
    probes: u32,
    bits: &'a [u8],
}

impl<'a> BloomView<'a> {
    /// `None` when the section is malformed.
    pub fn new(section: &'a [u8]) -> Option<Self> {
        let probes = LE::read_u32(section.get(..4)?);
        let bits = section.get(8..)?;
        (probes > 0 && probes <= 32 && !bits.is_empty()).then_some(BloomView { probes, bits })
    }

    /// False means the trace is certainly absent.
    pub fn may_contain(&self, t: &TraceId) -> bool {
        let m = self.bits.len() as u64 * 8;
        let (h1, h2) = bloom_hash(t);
        (0..u64::from(self.probes)).all(|i| {
            let bit = h1.wrapping_add(i.wrapping_mul(h2)) % m;
            self.bits[(bit / 8) as usize] & (1 << (bit % 8)) != 0
        })
    }
}

/// One catalog entry: a (service, operation, kind) triple and its span count.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Operation {
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
}

/// Collects the catalog and which blocks hold which operations.
#[derive(Default, Debug, Clone)]
pub struct CatalogBuilder {
    /// Operations by id.
    ops: Vec<Operation>,
    /// Ids by hash of (service, name, kind): looking an operation up does
    /// not allocate, which matters since every block repeats most of them.
    by_hash: FastMap<u64, Vec<u32>>,
    counts: Vec<u64>,
    block_ops: Vec<Vec<u32>>,
}

impl CatalogBuilder {
    /// Records the operations of the next block.
    pub fn add_block(&mut self, ops: &[(String, String, SpanKind, u64)]) {
        let mut ids = Vec::with_capacity(ops.len());
        for (service, name, kind, n) in ops {
            let id = self.id_of(service, name, *kind);
            self.counts[id as usize] += n;
            ids.push(id);
        }
        ids.sort_unstable();
        self.block_ops.push(ids);
    }

    /// Counts one span of (service, name, kind) outside any block.
    pub fn add_span(&mut self, service: &str, name: &str, kind: SpanKind) {
        let id = self.id_of(service, name, kind);
        self.counts[id as usize] += 1;
    }

    /// The id of (service, name, kind), added with no spans if new.
    pub fn op_id(&mut self, service: &str, name: &str, kind: SpanKind) -> u32 {
        self.id_of(service, name, kind)
    }

    fn id_of(&mut self, service: &str, name: &str, kind: SpanKind) -> u32 {
        let mut h = FastHasher::default();
        (service, name, kind).hash(&mut h);
        let candidates = self.by_hash.entry(h.finish()).or_default();
        let found = candidates.iter().copied().find(|i| {
            let op = &self.ops[*i as usize];
            op.service == service && op.name == name && op.kind == kind
        });
        found.unwrap_or_else(|| {
            let id = self.ops.len() as u32;
            candidates.push(id);
            self.ops.push(Operation {
                service: service.to_string(),
                name: name.to_string(),
                kind,
            });
            self.counts.push(0);
            id
        })
    }

    /// The operations with their span counts.
    pub fn operations(&self) -> Vec<(Operation, u64)> {
        let mut v: Vec<_> = self
            .ops
            .iter()
            .cloned()
            .zip(self.counts.iter().copied())
            .collect();
        v.sort();
        v
    }

    /// Encodes the catalog section and the block-operations section.
    pub fn encode(&self) -> (Vec<u8>, Vec<u8>) {
        let mut cat = Vec::new();
        put_varint(&mut cat, self.ops.len() as u64);
        for (op, count) in self.ops.iter().zip(&self.counts) {
            put_bytes(&mut cat, op.service.as_bytes());
            put_bytes(&mut cat, op.name.as_bytes());
            cat.push(op.kind as u8);
            put_varint(&mut cat, *count);
        }
        let mut blocks = Vec::new();
        put_varint(&mut blocks, self.block_ops.len() as u64);
        for ids in &self.block_ops {
            put_varint(&mut blocks, ids.len() as u64);
            for id in ids {
                put_varint(&mut blocks, u64::from(*id));
            }
        }
        (cat, blocks)
    }
}

/// Decoded catalog: operations with span counts, and per block the indices
/// of the operations it holds.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub operations: Vec<(Operation, u64)>,
    pub block_ops: Vec<Vec<u32>>,
}

impl Catalog {
    /// Decodes both sections; `blocks` is the segment's block count.
    pub fn decode(cat: &[u8], per_block: &[u8], blocks: usize) -> DecodeResult<Catalog> {
        let mut c = Cursor::new(cat);
        let n = c.count(4)?;
        let mut operations = Vec::with_capacity(n);
        for _ in 0..n {
            let service = c.str()?.to_string();
            let name = c.str()?.to_string();
            let k = c.u8()?;
            let Some(kind) = SpanKind::from_u8(k) else {
                return c.err(format!("unknown span kind {k}"));
            };
            operations.push((
                Operation {
                    service,
                    name,
                    kind,
                },
                c.varint()?,
            ));
        }
        if !c.is_empty() {
            return c.err("bytes after the catalog");
        }
        let mut c = Cursor::new(per_block);
        let nb = c.count(1)?;
        if nb != blocks {
            return c.err(format!(
                "block operations list {nb} blocks, segment has {blocks}"
            ));
        }
        let mut block_ops = Vec::with_capacity(nb);
        for _ in 0..nb {
            let k = c.count(1)?;
            let mut ids = Vec::with_capacity(k);
            for _ in 0..k {
                let id = c.varint()?;
                if id >= n as u64 {
                    return c.err(format!("operation {id} outside a catalog of {n}"));
                }
                ids.push(id as u32);
            }
            block_ops.push(ids);
        }
        if !c.is_empty() {
            return c.err("bytes after the block operations");
        }
        Ok(Catalog {
            operations,
            block_ops,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(i: u32) -> TraceId {
        let mut t = [0u8; 16];
        t[12..].copy_from_slice(&i.to_be_bytes());
        TraceId(t)
    }

    #[test]
    fn trace_index_finds_every_trace_and_no_other() {
        let mut b = TraceIndexBuilder::default();
        for i in 1..500u32 {
            b.add(tid(i), i % 7);
            if i % 5 == 0 {
                b.add(tid(i), 9);
                b.add(tid(i), 9);
            }
        }
        let (e, p) = b.encode();
        let v = TraceIndexView::new(&e, &p).unwrap();
        assert_eq!(v.len(), 499);
        for i in 1..500u32 {
            let mut want = vec![i % 7];
            if i % 5 == 0 {
                want.push(9);
            }
            assert_eq!(v.lookup(&tid(i)).unwrap(), want);
        }
        assert!(v.lookup(&tid(10_000)).unwrap().is_empty());
        assert!(v.lookup(&tid(0)).unwrap().is_empty());
    }

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let mut b = TraceIndexBuilder::default();
        for i in 0..10_000u32 {
            b.add(tid(i), 0);
        }
        let bytes = b.bloom();
        let v = BloomView::new(&bytes).unwrap();
        assert!((0..10_000).all(|i| v.may_contain(&tid(i))));
        let fp = (10_000..110_000)
            .filter(|i| v.may_contain(&tid(*i)))
            .count();
        assert!(fp < 2_000, "{fp} false positives in 100000");
    }

    #[test]
    fn catalog_round_trips() {
        let mut c = CatalogBuilder::default();
        c.add_block(&[("a".into(), "GET".into(), SpanKind::Server, 3)]);
        c.add_block(&[
            ("a".into(), "GET".into(), SpanKind::Server, 2),
            ("b".into(), "q".into(), SpanKind::Client, 1),
        ]);
        let (cat, blocks) = c.encode();
        let d = Catalog::decode(&cat, &blocks, 2).unwrap();
        assert_eq!(d.operations.len(), 2);
        assert_eq!(d.operations[0].1, 5);
        assert_eq!(d.block_ops, vec![vec![0], vec![0, 1]]);
        assert!(Catalog::decode(&cat, &blocks, 3).is_err());
        assert!(Catalog::decode(&cat[..cat.len() - 1], &blocks, 2).is_err());
    }
}
