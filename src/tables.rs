//! The resources and scopes of a sealed segment, stored once in its footer
//! (the TABLES section, format-spec 6.4.14) rather than once per block.
//!
//! A collector sends the same few resources with every batch: a few dozen
//! per segment, each with a dozen or more attributes. Stored in every
//! block, their strings took a sixth of a segment; stored once, a block
//! only refers to them by number.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::hash::{FastHasher, FastMap};
use crate::span::{AnyValue, KeyValue, Resource, Scope, Span};

/// Numbers the distinct resources and scopes of the spans of one segment,
/// in order of first registration.
///
/// Spans of one resource usually share one allocation, so a span is looked
/// up by the address of its resource first; equal contents in separate
/// allocations (one per OTLP request) still get one number. Content is
/// compared bit for bit, so `0.0` and `-0.0`, or two NaN payloads, stay
/// apart.
#[derive(Default)]
pub struct TableBuilder {
    resources: Numbering<Resource>,
    scopes: Numbering<Scope>,
}

/// Distinct values of one kind, numbered in order of first registration.
struct Numbering<T> {
    values: Vec<Arc<T>>,
    /// Number by allocation address. Each entry holds the allocation, so
    /// no address is reused by another value while it is known.
    at: FastMap<usize, (Arc<T>, u32)>,
    /// Numbers by content hash.
    by_hash: FastMap<u64, Vec<u32>>,
    hash: fn(&T) -> u64,
    same: fn(&T, &T) -> bool,
}

impl<T> Numbering<T> {
    fn new(hash: fn(&T) -> u64, same: fn(&T, &T) -> bool) -> Self {
        Numbering {
            values: Vec::new(),
            at: FastMap::default(),
            by_hash: FastMap::default(),
            hash,
            same,
        }
    }

    fn add(&mut self, v: &Arc<T>) {
        if self.at.contains_key(&addr(v)) {
            return;
        }
        let ids = self.by_hash.entry((self.hash)(v)).or_default();
        let found = ids
            .iter()
            .copied()
            .find(|i| (self.same)(&self.values[*i as usize], v));
        let id = found.unwrap_or_else(|| {
            let id = self.values.len() as u32;
            ids.push(id);
            self.values.push(v.clone());
            id
        });
        self.at.insert(addr(v), (v.clone(), id));
    }

    fn id(&self, v: &T) -> Option<u32> {
        self.at.get(&addr_of(v)).map(|e| e.1)
    }

    fn refs(&self) -> Vec<&T> {
        self.values.iter().map(|v| &**v).collect()
    }
}

impl Default for Numbering<Resource> {
    fn default() -> Self {
        Numbering::new(resource_hash, same_resource)
    }
}

impl Default for Numbering<Scope> {
    fn default() -> Self {
        Numbering::new(scope_hash, same_scope)
    }
}

impl TableBuilder {
    /// Registers the resource and scope of `s`.
    pub fn add(&mut self, s: &Span) {
        self.resources.add(&s.resource);
        self.scopes.add(&s.scope);
    }

    /// The number of a registered resource, found by its address.
    pub fn resource_id(&self, r: &Resource) -> Option<u32> {
        self.resources.id(r)
    }

    /// The number of a registered scope, found by its address.
    pub fn scope_id(&self, s: &Scope) -> Option<u32> {
        self.scopes.id(s)
    }

    /// Lets go of the allocations registered so far (their numbers stay):
    /// a merge that decodes its inputs block by block calls this between
    /// blocks, so that it holds only the distinct contents.
    pub fn forget_addresses(&mut self) {
        self.resources.at.clear();
        self.scopes.at.clear();
    }

    /// Number of distinct resources and scopes.
    pub fn len(&self) -> (usize, usize) {
        (self.resources.values.len(), self.scopes.values.len())
    }

    /// The TABLES section: the resources and scopes in number order.
    pub fn encode(&self) -> Vec<u8> {
        crate::block::encode_tables_section(&self.resources.refs(), &self.scopes.refs())
    }
}

fn addr<T>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a) as usize
}

fn addr_of<T>(a: &T) -> usize {
    std::ptr::from_ref(a) as usize
}

/// True when the resources are equal bit for bit.
pub fn same_resource(a: &Resource, b: &Resource) -> bool {
    std::ptr::eq(a, b)
        || (a.dropped_attributes_count == b.dropped_attributes_count
            && a.schema_url == b.schema_url
            && same_attrs(&a.attributes, &b.attributes))
}

/// True when the scopes are equal bit for bit.
pub fn same_scope(a: &Scope, b: &Scope) -> bool {
    std::ptr::eq(a, b)
        || (a.name == b.name
            && a.version == b.version
            && a.dropped_attributes_count == b.dropped_attributes_count
            && a.schema_url == b.schema_url
            && same_attrs(&a.attributes, &b.attributes))
}

fn same_attrs(a: &[KeyValue], b: &[KeyValue]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.key == y.key && same_value(&x.value, &y.value))
}

fn same_value(a: &AnyValue, b: &AnyValue) -> bool {
    match (a, b) {
        (AnyValue::Double(x), AnyValue::Double(y)) => x.to_bits() == y.to_bits(),
        (AnyValue::Array(x), AnyValue::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_value(x, y))
        }
        (AnyValue::KvList(x), AnyValue::KvList(y)) => same_attrs(x, y),
        _ => a == b,
    }
}

fn resource_hash(r: &Resource) -> u64 {
    let mut h = FastHasher::default();
    hash_attrs(&r.attributes, &mut h);
    r.dropped_attributes_count.hash(&mut h);
    r.schema_url.hash(&mut h);
    h.finish()
}

fn scope_hash(s: &Scope) -> u64 {
    let mut h = FastHasher::default();
    s.name.hash(&mut h);
    s.version.hash(&mut h);
    hash_attrs(&s.attributes, &mut h);
    s.dropped_attributes_count.hash(&mut h);
    s.schema_url.hash(&mut h);
    h.finish()
}

fn hash_attrs(list: &[KeyValue], h: &mut FastHasher) {
    list.len().hash(h);
    for kv in list {
        kv.key.hash(h);
        hash_value(&kv.value, h);
    }
}

fn hash_value(v: &AnyValue, h: &mut FastHasher) {
    match v {
        AnyValue::Empty => h.write_u8(0),
        AnyValue::String(s) => {
            h.write_u8(1);
            s.hash(h);
        }
        AnyValue::Bool(b) => h.write_u8(2 + u8::from(*b)),
        AnyValue::Int(i) => {
            h.write_u8(4);
            i.hash(h);
        }
        AnyValue::Double(d) => {
            h.write_u8(5);
            d.to_bits().hash(h);
        }
        AnyValue::Bytes(b) => {
            h.write_u8(6);
            b.hash(h);
        }
        AnyValue::Array(items) => {
            h.write_u8(7);
            items.len().hash(h);
            for i in items {
                hash_value(i, h);
            }
        }
        AnyValue::KvList(list) => {
            h.write_u8(8);
            hash_attrs(list, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(v: AnyValue) -> Arc<Resource> {
        Arc::new(Resource {
            attributes: vec![
                KeyValue::new("service.name", AnyValue::String("a".into())),
                KeyValue::new("x", v),
            ],
            ..Resource::default()
        })
    }

    fn span(r: &Arc<Resource>) -> Span {
        Span {
            resource: r.clone(),
            ..Span::default()
        }
    }

    #[test]
    fn equal_contents_share_a_number_and_bit_patterns_do_not_collapse() {
        let mut b = TableBuilder::default();
        let one = res(AnyValue::Double(0.0));
        let again = res(AnyValue::Double(0.0));
        let negative = res(AnyValue::Double(-0.0));
        let nan = res(AnyValue::Double(f64::NAN));
        for r in [&one, &again, &negative, &nan, &nan] {
            b.add(&span(r));
        }
        assert_eq!(b.resource_id(&one), Some(0));
        assert_eq!(b.resource_id(&again), Some(0));
        assert_eq!(b.resource_id(&negative), Some(1));
        assert_eq!(b.resource_id(&nan), Some(2));
        assert_eq!(b.len(), (3, 1));
        assert_eq!(b.resource_id(&res(AnyValue::Empty)), None);
        b.forget_addresses();
        assert_eq!(b.resource_id(&one), None);
        b.add(&span(&again));
        assert_eq!(b.resource_id(&again), Some(0));
    }
}
