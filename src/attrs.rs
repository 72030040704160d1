//! Per-block attribute filters (format version 3 on): a small bloom filter
//! per block over the attribute keys and `key=value` pairs found on its
//! spans, resources, scopes, events and links, so that an attribute
//! condition skips blocks that certainly lack it before anything is
//! decompressed.
//!
//! Items are scoped by the service of the span they belong to (a span's
//! resource, scope, events and links count as the span's), since a search
//! for one service needs the attribute on that service's spans: the key
//! hashed is `service 0xFF key`. A last filter after the blocks' covers
//! the whole segment, so a segment without the attribute is skipped at
//! once.
//!
//! A value enters as its query rendering ([`AnyValue::to_query_string`]);
//! renderings longer than [`MAX_VALUE_LEN`] bytes (statements, stack
//! traces) enter by key only, and a condition on such a value tests only
//! its key. Hashes are FNV-1a 64 over `key`, or over `key`, a 0xFF byte
//! and the rendering, finished with the SplitMix64 mixer; probe `i` sets
//! bit `(h1 + i * h2) mod m`.

use crate::codec::{put_varint, Cursor, DecodeResult};
use crate::hash::FastSet;
use crate::query::AttrFilter;
use crate::span::{AnyValue, KeyValue, Span};

/// Longest value rendering that enters a filter as `key=value`.
pub const MAX_VALUE_LEN: usize = 64;
/// Filter bits per distinct item.
const BITS_PER_ITEM: usize = 7;
/// Probes per item: about 4% false positives at 7 bits per item.
pub const PROBES: u8 = 4;

fn fnv(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn scoped(service: &str, key: &str) -> u64 {
    fnv(
        fnv(fnv(FNV_OFFSET, service.as_bytes()), &[0xff]),
        key.as_bytes(),
    )
}

/// The hash of a key alone, on spans of `service`.
pub fn key_hash(service: &str, key: &str) -> u64 {
    mix64(scoped(service, key))
}

/// The hash of `key=value` on spans of `service`, or `None` when the
/// rendering is too long to be in a filter.
pub fn pair_hash(service: &str, key: &str, rendering: &str) -> Option<u64> {
    (rendering.len() <= MAX_VALUE_LEN).then(|| {
        mix64(fnv(
            fnv(scoped(service, key), &[0xff]),
            rendering.as_bytes(),
        ))
    })
}

fn probes(h: u64) -> (u64, u64) {
    (h, mix64(h ^ 0x9e37_79b9_7f4a_7c15) | 1)
}

/// One attribute of a block: the hash of its key, and of its pair when
/// the value is short enough.
pub type Item = (u64, Option<u64>);

/// The distinct items of a block's spans, for a block holding its own
/// tables.
pub fn items(rows: &[&Span]) -> Vec<Item> {
    items_with(rows, &|_| None).0
}

/// The distinct items of a block's spans: those of the block's filter, and
/// those of the segment's filter only. `shared` gives the number of a
/// span's resource in the segment's tables when the block refers to them:
/// the block's filter then holds the resource's marker, and its items go
/// to the segment's filter only.
pub fn items_with(rows: &[&Span], shared: &dyn Fn(&Span) -> Option<u32>) -> (Vec<Item>, Vec<Item>) {
    let mut items: FastSet<Item> = FastSet::default();
    let mut file_items: FastSet<Item> = FastSet::default();
    let mut seen_resources: FastSet<*const crate::span::Resource> = FastSet::default();
    let mut seen_scopes: FastSet<(*const crate::span::Scope, *const crate::span::Resource)> =
        FastSet::default();
    let mut text = String::new();
    // The hash state after `service 0xFF` is shared by the span's items,
    // and the key's state by its pair: each byte is hashed once.
    let mut add = |scope_h: u64, kvs: &[KeyValue], items: &mut FastSet<Item>| {
        for kv in kvs {
            let r: &str = match &kv.value {
                AnyValue::String(s) => s,
                v => {
                    text.clear();
                    v.write_query_string(&mut text);
                    &text
                }
            };
            let k = fnv(scope_h, kv.key.as_bytes());
            let pair =
                (r.len() <= MAX_VALUE_LEN).then(|| mix64(fnv(fnv(k, &[0xff]), r.as_bytes())));
            items.insert((mix64(k), pair));
        }
    };
    for s in rows {
        let h = fnv(
            fnv(FNV_OFFSET, s.service_name().unwrap_or("").as_bytes()),
            &[0xff],
        );
        add(h, &s.attributes, &mut items);
        let (res, scope) = (
            std::sync::Arc::as_ptr(&s.resource),
            std::sync::Arc::as_ptr(&s.scope),
        );
        if seen_resources.insert(res) {
            match shared(s) {
                Some(id) => {
                    items.insert((resource_marker(id), None));
                    add(h, &s.resource.attributes, &mut file_items);
                }
                None => add(h, &s.resource.attributes, &mut items),
            }
        }
        // A scope's attributes count for each service that uses it.
        if seen_scopes.insert((scope, res)) {
            add(h, &s.scope.attributes, &mut items);
        }
        for e in &s.events {
            add(h, &e.attributes, &mut items);
        }
        for l in &s.links {
            add(h, &l.attributes, &mut items);
        }
    }
    (
        items.into_iter().collect(),
        file_items.into_iter().collect(),
    )
}

/// The hash state of the items of spans of `service`, before their key.
pub fn service_state(service: &str) -> u64 {
    fnv(fnv(FNV_OFFSET, service.as_bytes()), &[0xff])
}

/// Key items (as [`key_hash`] gives them) of keys demoted in advance.
pub type KeySet = FastSet<u64>;

/// Gathers a block's items while its spans are encoded: the items of
/// [`items`], except that keys in the `demoted` set given enter by key
/// only. The encoder's dictionary indices identify strings, so an
/// attribute met again costs one set lookup instead of hashing its bytes.
/// The items may repeat.
pub struct ItemCollector<'d> {
    context: &'d mut ItemContext,
    items: Vec<Item>,
    /// Items for the segment's filter only: those of shared resources.
    file_items: Vec<Item>,
    text: String,
}

/// What the blocks of one segment share while their items are gathered:
/// the keys demoted in advance, and the items of each resource met, which
/// every block using the resource repeats.
#[derive(Default)]
pub struct ItemContext {
    demoted: std::sync::Arc<KeySet>,
    /// Items by resource or scope address (tagged: resources even, scopes
    /// odd) and service state. The resources and scopes live as long as
    /// the rows being encoded, which outlive the context.
    resources: crate::hash::FastMap<(usize, u64), Vec<Item>>,
    /// The number of the block being collected, from 1. The caches below
    /// belong to one block; each entry carries its block's number, so a
    /// new block finds them empty without their being cleared.
    block: u64,
    /// A direct-mapped cache of the collector's `seen`: an attribute met
    /// again is most often one met a few spans before, found here by one
    /// compare.
    recent: Vec<(u64, Noted)>,
    /// A direct-mapped cache of the collector's `keys`.
    recent_keys: Vec<(u64, (u64, u32), KeyState)>,
    /// The block's (service state, key index, value kind, value) already
    /// noted. Cleared for each block, keeping its capacity: a set grown
    /// from empty for every block rehashes several times.
    seen: FastSet<Noted>,
    /// The block's state after the key, and whether the key is demoted,
    /// per (service state, key index); cleared as `seen` is.
    keys: crate::hash::FastMap<(u64, u32), KeyState>,
}

impl ItemContext {
    pub fn new(demoted: std::sync::Arc<KeySet>) -> Self {
        ItemContext {
            demoted,
            ..ItemContext::default()
        }
    }
}

/// `seen`'s value kind of a key entered by key only.
const KEY_ONLY: u8 = 5;

/// An attribute as [`ItemCollector`] tells them apart: service state, key
/// index, value kind, value.
type Noted = (u64, u32, u8, u64);

/// Slots of [`ItemCollector`]'s cache of attributes noted.
const RECENT_NOTED: usize = 1024;

/// The item hash state after a key, and whether the key is demoted.
type KeyState = (u64, bool);

/// Slots of [`ItemCollector`]'s cache of key states.
const RECENT_KEYS: usize = 256;

impl<'d> ItemCollector<'d> {
    /// A collector for one block.
    pub fn new(context: &'d mut ItemContext) -> Self {
        context.block += 1;
        if context.recent.is_empty() {
            context.recent = vec![(0, Noted::default()); RECENT_NOTED];
            context.recent_keys = vec![(0, (0, 0), KeyState::default()); RECENT_KEYS];
        }
        context.seen.clear();
        context.keys.clear();
        ItemCollector {
            context,
            items: Vec::new(),
            file_items: Vec::new(),
            text: String::new(),
        }
    }

    /// Notes the attributes of resource `r` on spans of the service whose
    /// state is `svc`.
    pub fn resource(&mut self, r: &crate::span::Resource, svc: u64) {
        let items = table_items(
            self.context,
            std::ptr::from_ref(r) as usize * 2,
            &r.attributes,
            svc,
        );
        self.items.extend_from_slice(items);
    }

    /// Notes resource `r`, number `id` of the segment's tables, on spans
    /// of the service whose state is `svc`: the block's filter holds the
    /// resource's marker, the segment's its items.
    pub fn shared_resource(&mut self, r: &crate::span::Resource, svc: u64, id: u32) {
        let items = table_items(
            self.context,
            std::ptr::from_ref(r) as usize * 2,
            &r.attributes,
            svc,
        );
        self.file_items.extend_from_slice(items);
        self.items.push((resource_marker(id), None));
    }

    /// Notes the attributes of scope `s` on spans of the service whose
    /// state is `svc`.
    pub fn scope(&mut self, s: &crate::span::Scope, svc: u64) {
        let items = table_items(
            self.context,
            std::ptr::from_ref(s) as usize * 2 + 1,
            &s.attributes,
            svc,
        );
        self.items.extend_from_slice(items);
    }

    /// Notes `key = value` on spans of the service whose state is `svc`.
    /// `key_index` identifies the key within the block; `value_index`
    /// identifies a string value (unused for other kinds).
    pub fn note(
        &mut self,
        svc: u64,
        key_index: u32,
        key: &str,
        value: &AnyValue,
        value_index: u32,
    ) {
        let (k, demoted) = self.key_state(svc, key_index, key);
        if demoted {
            if self.first_time((svc, key_index, KEY_ONLY, 0)) {
                self.items.push((mix64(k), None));
            }
            return;
        }
        let id = match value {
            AnyValue::String(_) => Some((0, u64::from(value_index))),
            AnyValue::Int(i) => Some((1, *i as u64)),
            AnyValue::Bool(b) => Some((2, u64::from(*b))),
            AnyValue::Double(d) => Some((3, d.to_bits())),
            AnyValue::Empty => Some((4, 0)),
            AnyValue::Bytes(_) | AnyValue::Array(_) | AnyValue::KvList(_) => None,
        };
        if let Some((kind, v)) = id {
            if !self.first_time((svc, key_index, kind, v)) {
                return;
            }
        }
        let rendering: &str = match value {
            AnyValue::String(s) => s,
            v => {
                self.text.clear();
                v.write_query_string(&mut self.text);
                &self.text
            }
        };
        let pair = (rendering.len() <= MAX_VALUE_LEN)
            .then(|| mix64(fnv(fnv(k, &[0xff]), rendering.as_bytes())));
        self.items.push((mix64(k), pair));
    }

    /// The item hash state after `key` of service `svc`, and whether the
    /// key is demoted; `key_index` identifies the key within the block.
    fn key_state(&mut self, svc: u64, key_index: u32, key: &str) -> KeyState {
        let ctx = &mut *self.context;
        let h = (svc ^ u64::from(key_index)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = (h >> 56) as usize % RECENT_KEYS;
        let (block, at, state) = ctx.recent_keys[slot];
        if block == ctx.block && at == (svc, key_index) {
            return state;
        }
        let demoted = &ctx.demoted;
        let state = *ctx.keys.entry((svc, key_index)).or_insert_with(|| {
            let k = fnv(svc, key.as_bytes());
            (k, demoted.contains(&mix64(k)))
        });
        ctx.recent_keys[slot] = (ctx.block, (svc, key_index), state);
        state
    }

    /// Whether `n` is noted for the first time (and notes it).
    fn first_time(&mut self, n: Noted) -> bool {
        let ctx = &mut *self.context;
        let h = (n.0 ^ u64::from(n.1).rotate_left(17) ^ u64::from(n.2).rotate_left(29) ^ n.3)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let slot = (h >> 54) as usize % RECENT_NOTED;
        if ctx.recent[slot] == (ctx.block, n) {
            return false;
        }
        ctx.recent[slot] = (ctx.block, n);
        ctx.seen.insert(n)
    }

    /// The items noted: those of the block's filter, then those of the
    /// segment's filter only.
    pub fn finish(self) -> (Vec<Item>, Vec<Item>) {
        (self.items, self.file_items)
    }
}

/// The items of a resource's or scope's attributes (`tag` tells the entry)
/// on spans of the service whose state is `svc`, computed once per context.
fn table_items<'c>(
    context: &'c mut ItemContext,
    tag: usize,
    attrs: &[KeyValue],
    svc: u64,
) -> &'c [Item] {
    let ItemContext {
        demoted, resources, ..
    } = context;
    let items = resources.entry((tag, svc)).or_insert_with(|| {
        let mut text = String::new();
        attrs
            .iter()
            .map(|kv| {
                let k = fnv(svc, kv.key.as_bytes());
                if demoted.contains(&mix64(k)) {
                    return (mix64(k), None);
                }
                text.clear();
                kv.value.write_query_string(&mut text);
                let pair = (text.len() <= MAX_VALUE_LEN)
                    .then(|| mix64(fnv(fnv(k, &[0xff]), text.as_bytes())));
                (mix64(k), pair)
            })
            .collect()
    });
    items
}

/// Keys with more distinct values than this in a segment (ids, URLs,
/// timestamps) enter its filters by key only: their pairs would fill the
/// filters while almost never being searched for exactly.
pub const MAX_DISTINCT_VALUES: usize = 24;

/// The marker, in a block's filter, of a resource of the segment's tables
/// that the block's rows use (format version 5).
pub fn resource_marker(id: u32) -> u64 {
    mix64(u64::from(id) ^ 0x2545_f491_4f6c_dd1d)
}

/// True when the filter may hold the item hashed to `h`.
pub fn filter_may_hold(filter: &[u8], h: u64) -> bool {
    may_hold(filter, h)
}

/// The marker, in the segment's filter, of a key entered by key only.
pub fn demoted(key: u64) -> u64 {
    mix64(key ^ 0x5bd1_e995_5bd1_e995)
}

/// Builds a segment's BLOCK_ATTRS section block by block, so that only
/// the filters and a few values per key are held, whatever the size of
/// the segment. A key is demoted once its pairs take more than
/// [`MAX_DISTINCT_VALUES`] values in the blocks seen so far (this one
/// included); blocks written earlier keep its pairs, which is harmless: a
/// search for a demoted key probes blocks by key.
#[derive(Default, Debug, Clone)]
pub struct FilterBuilder {
    values: crate::hash::FastMap<u64, FastSet<u64>>,
    section: Vec<u8>,
    all: FastSet<u64>,
    /// Keys whose blocks were given by key only (demoted in advance):
    /// demoted in this segment whatever their count of values.
    pub predicted: std::sync::Arc<KeySet>,
}

impl FilterBuilder {
    /// Appends the filter of the next block. A pair enters while its key
    /// has at most [`MAX_DISTINCT_VALUES`] values in the segment so far.
    /// `file_items` (the items of the segment's shared resources that the
    /// block uses) enter the segment's filter only.
    pub fn add_block(&mut self, items: &[Item], file_items: &[Item]) {
        let mut v = Vec::with_capacity(items.len() * 2);
        self.count(items, &mut v);
        v.sort_unstable();
        v.dedup();
        put_filter(&mut self.section, &build(&v));
        self.count(file_items, &mut Vec::new());
    }

    /// Counts the items' values and pushes what enters a filter to `out`.
    /// What enters a filter for the first time enters the segment's too:
    /// a pair enters filters only while its key has few values, so it
    /// is new to the segment exactly when it is new to its key's values.
    fn count(&mut self, items: &[Item], out: &mut Vec<u64>) {
        let FilterBuilder { values, all, .. } = self;
        for (k, p) in items {
            let set = match values.entry(*k) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    all.insert(*k);
                    e.insert(FastSet::default())
                }
            };
            out.push(*k);
            if let Some(p) = p {
                if set.len() <= MAX_DISTINCT_VALUES {
                    let new = set.insert(*p);
                    if set.len() <= MAX_DISTINCT_VALUES {
                        out.push(*p);
                        if new {
                            all.insert(*p);
                        }
                    }
                }
            }
        }
    }

    /// The keys the segment demotes: those with too many values, and those
    /// demoted in advance that its blocks hold.
    pub fn demoted_keys(&self) -> KeySet {
        self.values
            .iter()
            .filter(|(k, s)| s.len() > MAX_DISTINCT_VALUES || self.predicted.contains(k))
            .map(|(k, _)| *k)
            .collect()
    }

    /// The section: the blocks' filters, then the segment's, which holds
    /// every item of the blocks' filters and a marker per demoted key.
    pub fn finish(mut self) -> Vec<u8> {
        let demoted_keys = self.demoted_keys();
        let mut all: Vec<u64> = std::mem::take(&mut self.all).into_iter().collect();
        all.extend(demoted_keys.into_iter().map(demoted));
        all.sort_unstable();
        put_filter(&mut self.section, &build(&all));
        self.section
    }
}

/// Builds a filter over item hashes.
pub fn build(items: &[u64]) -> Vec<u8> {
    let m = (items.len() * BITS_PER_ITEM).max(64).div_ceil(8);
    let mut out = vec![0u8; m + 1];
    out[0] = PROBES;
    let bits = m as u64 * 8;
    for h in items {
        let (h1, h2) = probes(*h);
        for i in 0..u64::from(PROBES) {
            let b = h1.wrapping_add(i.wrapping_mul(h2)) % bits;
            out[1 + (b / 8) as usize] |= 1 << (b % 8);
        }
    }
    out
}

/// True when the filter may hold the item hashed to `h`.
fn may_hold(filter: &[u8], h: u64) -> bool {
    let Some((&k, bits)) = filter.split_first() else {
        return true;
    };
    if bits.is_empty() {
        return true;
    }
    let m = bits.len() as u64 * 8;
    let (h1, h2) = probes(h);
    (0..u64::from(k)).all(|i| {
        let b = h1.wrapping_add(i.wrapping_mul(h2)) % m;
        bits[(b / 8) as usize] & (1 << (b % 8)) != 0
    })
}

/// True when a block's filter and its segment's hold `item` as a search
/// needs them to: the key always, the pair unless the key is demoted.
pub fn filters_hold(block: &[u8], segment: &[u8], (key, pair): Item) -> bool {
    let pair_ok = match pair {
        Some(p) if !may_hold(segment, demoted(key)) => may_hold(block, p) && may_hold(segment, p),
        _ => true,
    };
    may_hold(block, key) && may_hold(segment, key) && pair_ok
}

/// A condition prepared for probing filters: its key and (for equality
/// on a short value) its pair.
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    key: u64,
    pair: Option<u64>,
}

/// The probe of a condition on spans of `service`.
pub fn probe(service: &str, f: &AttrFilter) -> Probe {
    let pair = match f {
        AttrFilter::Exists(_) => None,
        AttrFilter::Equals(k, v) => pair_hash(service, k, v),
        AttrFilter::Typed(k, v) => pair_hash(service, k, &v.to_query_string()),
    };
    Probe {
        key: key_hash(service, f.key()),
        pair,
    }
}

impl Probe {
    /// Checks the segment's filter: `None` when the segment certainly has
    /// no match, else the probe to use on its blocks (by key alone when
    /// the segment entered the key's values by key only).
    pub fn for_segment(self, filter: &[u8]) -> Option<Probe> {
        if !may_hold(filter, self.key) {
            return None;
        }
        match self.pair {
            Some(_) if may_hold(filter, demoted(self.key)) => Some(Probe { pair: None, ..self }),
            Some(p) if !may_hold(filter, p) => None,
            _ => Some(self),
        }
    }

    /// False when the block certainly has no attribute meeting it.
    pub fn may_match(&self, filter: &[u8]) -> bool {
        may_hold(filter, self.pair.unwrap_or(self.key))
    }
}

/// Appends one block's filter to the section.
pub fn put_filter(section: &mut Vec<u8>, filter: &[u8]) {
    put_varint(section, filter.len() as u64);
    section.extend_from_slice(filter);
}

/// Splits the section into `blocks` filters plus the segment's (offset
/// and length each).
pub fn decode_section(b: &[u8], blocks: usize) -> DecodeResult<Vec<(usize, usize)>> {
    let mut c = Cursor::new(b);
    let mut out = Vec::with_capacity(blocks + 1);
    for _ in 0..=blocks {
        let len = c.count(1)?;
        let at = c.position();
        let f = c.take(len)?;
        if f.first().is_some_and(|k| *k == 0 || *k > 32) {
            return c.err(format!("attribute filter with {} probes", f[0]));
        }
        out.push((at, len));
    }
    if !c.is_empty() {
        return c.err("bytes after the last attribute filter");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{Event, Resource};
    use std::sync::Arc;

    #[test]
    fn every_place_enters_and_absent_pairs_mostly_do_not() {
        let mut s = Span {
            attributes: vec![KeyValue::new("http.status", AnyValue::Int(500))],
            events: vec![Event {
                attributes: vec![KeyValue::new(
                    "exception.type",
                    AnyValue::String("E".into()),
                )],
                ..Event::default()
            }],
            ..Span::default()
        };
        s.resource = Arc::new(Resource {
            attributes: vec![
                KeyValue::new("host", AnyValue::String("a".repeat(100))),
                KeyValue::new("service.name", AnyValue::String("api".into())),
            ],
            ..Resource::default()
        });
        let mut fb = FilterBuilder::default();
        fb.add_block(&items(&[&s]), &[]);
        let section = fb.finish();
        let fs = decode_section(&section, 1).unwrap();
        let (f, seg) = (
            &section[fs[0].0..][..fs[0].1],
            &section[fs[1].0..][..fs[1].1],
        );
        let may_match = |f: &[u8], p: Probe| p.for_segment(seg).is_some_and(|p| p.may_match(f));
        let yes = |c: AttrFilter| assert!(may_match(f, probe("api", &c)), "{c:?}");
        yes(AttrFilter::Equals("http.status".into(), "500".into()));
        yes(AttrFilter::Typed("http.status".into(), AnyValue::Int(500)));
        yes(AttrFilter::Exists("exception.type".into()));
        yes(AttrFilter::Equals("exception.type".into(), "E".into()));
        // A long value is known by its key only, so any long value passes.
        yes(AttrFilter::Equals("host".into(), "b".repeat(100)));
        let misses = (0..1000)
            .filter(|i| {
                let c = AttrFilter::Equals("http.status".into(), format!("{i}"));
                may_match(f, probe("api", &c))
            })
            .count();
        assert!(misses < 60, "{misses} false positives");
        let other = (0..1000)
            .filter(|i| {
                let c = AttrFilter::Exists("http.status".into());
                may_match(f, probe(&format!("svc{i}"), &c))
            })
            .count();
        assert!(other < 60, "{other} false positives for other services");
    }

    #[test]
    fn items_of_shared_resources_enter_the_segment_filter_only() {
        let s = Span {
            resource: Arc::new(Resource {
                attributes: vec![
                    KeyValue::new("service.name", AnyValue::String("api".into())),
                    KeyValue::new("host", AnyValue::String("h1".into())),
                ],
                ..Resource::default()
            }),
            attributes: vec![KeyValue::new("k", AnyValue::Int(1))],
            ..Span::default()
        };
        let (block, file) = items_with(&[&s], &|_| Some(7));
        assert!(block.contains(&(resource_marker(7), None)));
        assert_eq!(file.len(), 2, "{file:?}");
        let mut fb = FilterBuilder::default();
        fb.add_block(&block, &file);
        let section = fb.finish();
        let fs = decode_section(&section, 1).unwrap();
        let (f, seg) = (
            &section[fs[0].0..][..fs[0].1],
            &section[fs[1].0..][..fs[1].1],
        );
        let host = probe("api", &AttrFilter::Equals("host".into(), "h1".into()));
        let p = host
            .for_segment(seg)
            .expect("the segment holds the resource's items");
        assert!(!p.may_match(f), "the block's filter holds only the marker");
        assert!(filter_may_hold(f, resource_marker(7)));
        let k = probe("api", &AttrFilter::Typed("k".into(), AnyValue::Int(1)));
        assert!(k.for_segment(seg).is_some_and(|p| p.may_match(f)));
    }

    #[test]
    fn section_round_trips_and_rejects_damage() {
        let mut sec = Vec::new();
        put_filter(&mut sec, &[4, 1, 2]);
        put_filter(&mut sec, &[4, 9]);
        let v = decode_section(&sec, 1).unwrap();
        assert_eq!(v, vec![(1, 3), (5, 2)]);
        assert!(decode_section(&sec, 2).is_err());
        assert!(decode_section(&sec, 0).is_err());
        assert!(decode_section(&[2, 0, 1], 0).is_err());
    }
}
