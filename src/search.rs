//! How the store answers [`TraceQuery`]s and catalog questions.
//!
//! A search has two steps. Candidate generation finds traces that may
//! match, each with an upper bound of its start time, using only indexes
//! where it can: segment and block time ranges, per-block operation
//! presence. Verification reads each candidate trace whole and applies the
//! definition of a match ([`crate::query::trace_matches`]). Candidates are
//! verified in decreasing order of their bound; once `limit` traces have
//! matched and the next bound is older than the oldest of them, no later
//! candidate can enter the result, and the search stops.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::attrs;
use crate::digest::{Row, TracePart};
use crate::error::Result;
use crate::hash::FastSet;
use crate::index::Operation;
use crate::memtable::Memtable;
use crate::query::{
    recent_first, span_matches, trace_matches, MatchMode, TraceQuery, TraceSummary,
};
use crate::segment::{BlockMeta, BlockSource, SealedSegment};
use crate::span::{Span, SpanKind, TraceId};
use crate::store::Store;
use crate::tombstone::TombSet;

/// A trace that may match, and a time its start is certainly not after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub bound: u64,
    pub trace: TraceId,
}

/// True when a span makes its trace worth verifying. In span mode that is
/// a full match; in trace mode a span in the window (or, without one, of
/// the service) does, since some span of a matching trace must be.
fn drives(q: &TraceQuery, s: &Span) -> bool {
    match q.mode {
        MatchMode::Span => span_matches(q, s),
        MatchMode::Trace if q.start.is_some() => q.in_window(s.start_time_unix_nano),
        MatchMode::Trace => q
            .service
            .as_deref()
            .is_none_or(|want| s.service_name() == Some(want)),
    }
}

/// Candidates among spans held in memory, given with the ids of their
/// tables' logs; erased spans are left out.
pub(crate) fn memory_candidates<'a>(
    tables: impl Iterator<Item = (u64, &'a Memtable)>,
    q: &TraceQuery,
    tombs: &TombSet,
) -> Vec<Candidate> {
    tables
        .flat_map(|(id, t)| t.spans().map(move |s| (id, s)))
        .filter(|(id, s)| !tombs.hides(&s.trace_id, *id))
        .map(|(_, s)| s)
        .filter(|s| drives(q, s))
        .map(|s| Candidate {
            bound: s.start_time_unix_nano,
            trace: s.trace_id,
        })
        .collect()
}

/// True when the block may hold a span that drives the query.
fn block_may_drive(q: &TraceQuery, seg: &SealedSegment, i: usize, b: &BlockMeta) -> bool {
    if let Some(w) = &q.start {
        if !b.overlaps(w.start, w.end) {
            return false;
        }
    }
    if q.mode == MatchMode::Trace && q.start.is_some() {
        return true;
    }
    if let (MatchMode::Span, Some(service)) = (q.mode, &q.service) {
        if let (Some(f), Some(whole)) = (seg.attr_filter(i), seg.attr_filter(seg.blocks.len())) {
            let ok = q.attributes.iter().all(|a| {
                attrs::probe(service, a)
                    .for_segment(whole)
                    .is_some_and(|p| {
                        p.may_match(f) || block_has_resource(f, &resource_markers(seg, service, a))
                    })
            });
            if !ok {
                return false;
            }
        }
    }
    let ops = &seg.catalog.block_ops[i];
    ops.iter().any(|id| {
        let op = &seg.catalog.operations[*id as usize].0;
        q.service.as_deref().is_none_or(|s| op.service == s)
            && (q.mode == MatchMode::Trace
                || (q.operation.as_deref().is_none_or(|n| op.name == n)
                    && q.kind.is_none_or(|k| op.kind == k)))
    })
}

/// Candidates in sealed segments, found by decoding the blocks that may
/// hold a driving span; erased spans are left out.
fn sealed_candidates(
    sealed: &[Arc<SealedSegment>],
    q: &TraceQuery,
    tombs: &TombSet,
) -> Result<Vec<Candidate>> {
    let mut out = Vec::new();
    for seg in sealed {
        if let Some(w) = &q.start {
            if seg.trailer.max_start < w.start || seg.trailer.min_start >= w.end {
                continue;
            }
        }
        let src = BlockSource::Mapped(seg.clone());
        for (i, b) in seg.blocks.iter().enumerate() {
            if !block_may_drive(q, seg, i, b) {
                continue;
            }
            for s in src.all_spans(b)? {
                if drives(q, &s) && !tombs.hides(&s.trace_id, seg.id) {
                    out.push(Candidate {
                        bound: s.start_time_unix_nano,
                        trace: s.trace_id,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// Answers a validated query over sealed segments and the memory
/// candidates taken under the store's lock, with the tombstones of that
/// moment.
pub(crate) fn find(
    store: &Store,
    sealed: &[Arc<SealedSegment>],
    candidates: Vec<Candidate>,
    q: &TraceQuery,
    tombs: &TombSet,
) -> Result<Vec<TraceSummary>> {
    match (&q.service, q.mode) {
        (Some(service), MatchMode::Span) => {
            Search::new(store, sealed, q, service, tombs).run(candidates)
        }
        _ => find_by_decoding(store, sealed, candidates, q, tombs),
    }
}

/// The search without service rows: every block that may hold a driving
/// span is decoded. Serves trace-level matching and queries without a
/// service.
fn find_by_decoding(
    store: &Store,
    sealed: &[Arc<SealedSegment>],
    mut candidates: Vec<Candidate>,
    q: &TraceQuery,
    tombs: &TombSet,
) -> Result<Vec<TraceSummary>> {
    candidates.extend(sealed_candidates(sealed, q, tombs)?);
    // Highest bound first; a trace's first appearance carries its best
    // bound, and later ones are skipped.
    candidates.sort_unstable_by(|a, b| b.bound.cmp(&a.bound).then(a.trace.cmp(&b.trace)));
    let mut seen: FastSet<TraceId> = FastSet::default();
    let mut out: Vec<TraceSummary> = Vec::new();
    for c in candidates {
        if is_complete(&out, q.limit, c.bound) {
            break;
        }
        if !seen.insert(c.trace) {
            continue;
        }
        let spans = store.get_trace(c.trace)?;
        if !trace_matches(q, &spans) {
            continue;
        }
        if let Some(sum) = TraceSummary::of(&spans) {
            insert(&mut out, q.limit, sum);
        }
    }
    Ok(out)
}

/// True when no trace starting at or before `bound` can enter `out`.
fn is_complete(out: &[TraceSummary], limit: usize, bound: u64) -> bool {
    out.len() >= limit && bound < out[limit - 1].start_time_unix_nano
}

fn insert(out: &mut Vec<TraceSummary>, limit: usize, sum: TraceSummary) {
    let at = out
        .binary_search_by(|x| recent_first(x, &sum))
        .unwrap_or_else(|e| e);
    out.insert(at, sum);
    out.truncate(limit);
}

/// Markers of the segment's shared resources (format-spec 5.4) of
/// `service` that meet `f`. A block's filter holds no item of these
/// resources, only a marker of each it uses: a block may meet `f` through
/// a resource when its filter holds one of these markers.
fn resource_markers(seg: &SealedSegment, service: &str, f: &crate::AttrFilter) -> Vec<u64> {
    let Some(t) = &seg.shared else {
        return Vec::new();
    };
    t.of_service(service)
        .iter()
        .filter(|i| {
            t.resources[**i as usize]
                .attributes
                .iter()
                .any(|kv| f.matches(kv))
        })
        .map(|i| attrs::resource_marker(*i))
        .collect()
}

/// True when the block filter `f` may hold one of `markers`.
fn block_has_resource(f: &[u8], markers: &[u64]) -> bool {
    markers.iter().any(|m| attrs::filter_may_hold(f, *m))
}

/// One segment's rows of the searched service, walked from the newest
/// row starting before the window's end towards older ones.
struct Rows {
    seg: usize,
    /// The attribute conditions as probes of this segment's filters, each
    /// with the markers of the shared resources meeting it.
    probes: Vec<(attrs::Probe, Vec<u64>)>,
    /// Which catalog operations may drive the query (service, name, kind).
    ops: Vec<bool>,
    /// Rows `first..next` remain.
    first: usize,
    next: usize,
    /// Rows starting before this cannot reach into the window.
    floor: u64,
}

/// A span-level search for one service, driven by service rows.
struct Search<'a> {
    store: &'a Store,
    sealed: &'a [Arc<SealedSegment>],
    q: &'a TraceQuery,
    tombs: &'a TombSet,
    /// First and last start time of the window, both included.
    window: (u64, u64),
    /// Only service and window are asked: a row decides without decoding.
    simple: bool,
    rows: Vec<Rows>,
    seen: FastSet<TraceId>,
    out: Vec<TraceSummary>,
}

impl<'a> Search<'a> {
    fn new(
        store: &'a Store,
        sealed: &'a [Arc<SealedSegment>],
        q: &'a TraceQuery,
        service: &str,
        tombs: &'a TombSet,
    ) -> Self {
        // Held with an inclusive end, so that without a window a span
        // starting at u64::MAX is in it; `None` when the window is empty.
        let window = match &q.start {
            None => Some((0, u64::MAX)),
            Some(w) => (w.end > w.start).then(|| (w.start, w.end - 1)),
        };
        let (window, empty) = (window.unwrap_or((1, 0)), window.is_none());
        // Rows of the service "" also hold spans without a service name,
        // which the service "" does not match: those rows are checked.
        let simple = !service.is_empty()
            && q.operation.is_none()
            && q.kind.is_none()
            && q.attributes.is_empty()
            && q.duration_min.is_none()
            && q.duration_max.is_none()
            && !q.errors_only;
        let mut rows = Vec::new();
        for (i, seg) in sealed.iter().enumerate() {
            let Some(services) = &seg.services else {
                continue;
            };
            if empty || seg.trailer.max_start < window.0 || seg.trailer.min_start > window.1 {
                continue;
            }
            let Some(id) = services.id(service) else {
                continue;
            };
            // Probes are hashed once per query and adjusted to the segment.
            let probes: Option<Vec<_>> = match seg.attr_filter(seg.blocks.len()) {
                Some(f) => q
                    .attributes
                    .iter()
                    .map(|a| {
                        let p = attrs::probe(service, a).for_segment(f)?;
                        Some((p, resource_markers(seg, service, a)))
                    })
                    .collect(),
                None => Some(Vec::new()),
            };
            let Some(probes) = probes else {
                continue;
            };
            let ops = seg
                .catalog
                .operations
                .iter()
                .map(|(op, _)| {
                    op.service == service
                        && q.operation.as_deref().is_none_or(|n| op.name == n)
                        && q.kind.is_none_or(|k| op.kind == k)
                })
                .collect();
            let (first, len) = services.rows[id];
            let (first, end) = (first as usize, (first + len) as usize);
            // Rows are sorted by min start: skip those starting after the
            // window's end.
            let (mut lo, mut hi) = (first, end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                match seg.service_row(mid) {
                    Ok(r) if r.min_start <= window.1 => lo = mid + 1,
                    _ => hi = mid,
                }
            }
            rows.push(Rows {
                seg: i,
                probes,
                ops,
                first,
                next: lo,
                floor: window.0.saturating_sub(services.max_width),
            });
        }
        Search {
            store,
            sealed,
            q,
            tombs,
            window,
            simple,
            rows,
            seen: FastSet::default(),
            out: Vec::new(),
        }
    }

    /// The segment cursor whose next row starts latest, with that row.
    fn newest_row(&self) -> Result<Option<(usize, Row)>> {
        let mut best: Option<(usize, Row)> = None;
        for (i, r) in self.rows.iter().enumerate() {
            if r.next == r.first {
                continue;
            }
            let row = self.sealed[r.seg].service_row(r.next - 1)?;
            if row.min_start < r.floor {
                continue;
            }
            if best.is_none_or(|(_, b)| row.min_start > b.min_start) {
                best = Some((i, row));
            }
        }
        Ok(best)
    }

    fn run(mut self, mut candidates: Vec<Candidate>) -> Result<Vec<TraceSummary>> {
        // Segments written before the search index are searched by
        // decoding, and join the walk as plain candidates.
        let old: Vec<Arc<SealedSegment>> = self
            .sealed
            .iter()
            .filter(|s| s.services.is_none())
            .cloned()
            .collect();
        candidates.extend(sealed_candidates(&old, self.q, self.tombs)?);
        candidates.sort_unstable_by(|a, b| a.bound.cmp(&b.bound).then(b.trace.cmp(&a.trace)));
        loop {
            let row = self.newest_row()?;
            let next_candidate = candidates.last().map(|c| c.bound);
            let take_row = match (&row, next_candidate) {
                (Some((_, r)), Some(b)) => r.min_start >= b,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let bound = if take_row {
                row.map_or(0, |(_, r)| r.min_start)
            } else {
                next_candidate.unwrap_or(0)
            };
            if is_complete(&self.out, self.q.limit, bound) {
                break;
            }
            if take_row {
                let (i, r) = row.expect("taken only when present");
                self.rows[i].next -= 1;
                self.visit_row(i, r)?;
            } else if let Some(c) = candidates.pop() {
                // Memory candidates are full matches; old-format ones are too
                // in span mode, since they come from `drives`.
                if self.seen.insert(c.trace) {
                    self.accept(c.trace)?;
                }
            }
        }
        Ok(self.out)
    }

    fn visit_row(&mut self, cursor: usize, r: Row) -> Result<()> {
        let seg = &self.sealed[self.rows[cursor].seg];
        if r.max_start < self.window.0 {
            return Ok(());
        }
        let trace = seg.trace_index().trace_at(r.trace as usize);
        // Erased here: the trace's spans in other segments have rows of
        // their own.
        if self.seen.contains(&trace) || self.tombs.hides(&trace, seg.id) {
            return Ok(());
        }
        let certain = self.simple && (r.min_start >= self.window.0 || r.max_start <= self.window.1);
        if !certain && !self.row_matches(&self.rows[cursor], &r, &trace)? {
            return Ok(());
        }
        self.seen.insert(trace);
        self.accept(trace)
    }

    /// Decodes the trace's spans in this segment and looks for a match,
    /// after the cheap checks that can rule the segment out.
    fn row_matches(&self, cur: &Rows, r: &Row, trace: &TraceId) -> Result<bool> {
        let q = self.q;
        let seg = &self.sealed[cur.seg];
        if q.errors_only && seg.digest(r.trace as usize)?.flags & crate::digest::FLAG_ERROR == 0 {
            return Ok(false);
        }
        let blocks = seg.blocks_of_ordinal(r.trace as usize)?;
        let src = BlockSource::Mapped(seg.clone());
        for (i, b) in blocks {
            let has_op = seg.catalog.block_ops[i]
                .iter()
                .any(|id| cur.ops.get(*id as usize).copied().unwrap_or(false));
            let filter = seg.attr_filter(i);
            let has_attrs = filter.is_none_or(|f| {
                cur.probes
                    .iter()
                    .all(|(p, m)| p.may_match(f) || block_has_resource(f, m))
            });
            if !has_op || !has_attrs {
                continue;
            }
            if src.trace_any(&b, trace, |h| q.head_matches(h), |s| span_matches(q, s))? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn accept(&mut self, trace: TraceId) -> Result<()> {
        if let Some(sum) = summarize(self.store, trace)? {
            insert(&mut self.out, self.q.limit, sum);
        }
        Ok(())
    }
}

/// The summary of a whole trace from the digests of indexed segments, the
/// decoded spans of older ones, and the spans in memory.
pub(crate) fn summarize(store: &Store, trace: TraceId) -> Result<Option<TraceSummary>> {
    // The segments and the memory spans must be read at one moment: a
    // table sealed in between would be in neither.
    let (sealed, mem, tombs) = loop {
        let before = store.sealed_segments();
        let (mem, tombs) = store.memory_spans(trace)?;
        if Arc::ptr_eq(&before, &store.sealed_segments()) {
            break (before, mem, tombs);
        }
    };
    let mut whole: Option<TracePart> = None;
    let mut add = |p: TracePart| match &mut whole {
        Some(w) => w.merge(&p),
        None => whole = Some(p),
    };
    for seg in sealed.iter().filter(|s| !tombs.hides(&trace, s.id)) {
        if seg.services.is_some() {
            if let Some(i) = seg.trace_ordinal(&trace) {
                add(part_of_digest(seg, i)?);
            }
            continue;
        }
        let src = BlockSource::Mapped(seg.clone());
        for b in seg.trace_blocks(&trace)? {
            let spans = src.trace_spans(&b, &trace)?;
            let refs: Vec<&Span> = spans.iter().collect();
            TracePart::of_sorted(&refs).into_iter().for_each(&mut add);
        }
    }
    let refs: Vec<&Span> = mem.iter().collect();
    TracePart::of_sorted(&refs).into_iter().for_each(&mut add);
    Ok(whole.map(TraceSummary::from_part))
}

/// What a segment's digest says of its trace at index position `i`.
pub(crate) fn part_of_digest(seg: &SealedSegment, i: usize) -> Result<TracePart> {
    let d = seg.digest(i)?;
    let op = seg
        .catalog
        .operations
        .get(d.root_op as usize)
        .map(|(op, _)| op)
        .ok_or_else(|| {
            crate::Error::corrupt(
                &seg.path,
                0,
                format!("digest {i} names a missing operation"),
            )
        })?;
    Ok(TracePart {
        trace: seg.trace_index().trace_at(i),
        start: d.start,
        end: d.end,
        spans: u64::from(d.spans),
        error: d.flags & crate::digest::FLAG_ERROR != 0,
        root_key: (
            d.flags & crate::digest::FLAG_ROOT == 0,
            d.root_start,
            d.root_span,
        ),
        root_service: op.service.clone(),
        root_name: op.name.clone(),
        root_kind: op.kind,
        services: seg
            .digest_services(&d)?
            .into_iter()
            .map(|s| (s.to_string(), (0, 0)))
            .collect(),
    })
}

/// Services and their operations, merged from segment catalogs and the
/// in-memory tables; no data block is read.
#[derive(Clone, Debug, Default)]
pub struct OpsCatalog {
    by_service: BTreeMap<String, BTreeMap<(String, SpanKind), u64>>,
}

impl OpsCatalog {
    /// The catalog of these segments.
    pub fn of_segments(segments: &[Arc<SealedSegment>]) -> OpsCatalog {
        let mut c = OpsCatalog::default();
        for s in segments {
            c.add_segment(s);
        }
        c
    }

    /// Adds a segment's operations.
    pub fn add_segment(&mut self, seg: &SealedSegment) {
        self.add(seg.catalog.operations.iter().map(|(op, n)| (op, *n)));
    }

    /// Adds operations with span counts.
    pub fn add<'a>(&mut self, ops: impl Iterator<Item = (&'a Operation, u64)>) {
        for (op, n) in ops {
            let names = match self.by_service.get_mut(&op.service) {
                Some(m) => m,
                None => self.by_service.entry(op.service.clone()).or_default(),
            };
            *names.entry((op.name.clone(), op.kind)).or_default() += n;
        }
    }

    /// Service names, sorted. Spans without a `service.name` count as the
    /// service "" only if there are any.
    pub fn services(&self) -> Vec<String> {
        self.by_service.keys().cloned().collect()
    }

    /// The operations of `service` (of one kind, if given), sorted by name
    /// then kind.
    pub fn operations(&self, service: &str, kind: Option<SpanKind>) -> Vec<Operation> {
        let Some(names) = self.by_service.get(service) else {
            return Vec::new();
        };
        names
            .keys()
            .filter(|(_, k)| kind.is_none_or(|want| *k == want))
            .map(|(name, k)| Operation {
                service: service.to_string(),
                name: name.clone(),
                kind: *k,
            })
            .collect()
    }

    /// True when no operation is known.
    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }
}

/// Distinct services among operations: a helper for callers that merge
/// the sealed catalog with in-memory tables without copying it.
pub(crate) fn services_of(base: &OpsCatalog, tables: &[Vec<(Operation, u64)>]) -> Vec<String> {
    let mut set: BTreeSet<&str> = base.by_service.keys().map(String::as_str).collect();
    for t in tables {
        set.extend(t.iter().map(|(op, _)| op.service.as_str()));
    }
    set.into_iter().map(str::to_string).collect()
}

/// Operations of `service` among the sealed catalog and in-memory tables.
pub(crate) fn operations_of(
    base: &OpsCatalog,
    tables: &[Vec<(Operation, u64)>],
    service: &str,
    kind: Option<SpanKind>,
) -> Vec<Operation> {
    let mut set: BTreeSet<Operation> = base.operations(service, kind).into_iter().collect();
    for t in tables {
        set.extend(
            t.iter()
                .map(|(op, _)| op)
                .filter(|op| op.service == service && kind.is_none_or(|k| op.kind == k))
                .cloned(),
        );
    }
    let mut v: Vec<Operation> = set.into_iter().collect();
    v.sort_by(|a, b| (&a.name, a.kind).cmp(&(&b.name, b.kind)));
    v
}
