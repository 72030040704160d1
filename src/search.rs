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

/// Candidates among spans held in memory.
pub(crate) fn memory_candidates<'a>(
    tables: impl Iterator<Item = &'a Memtable>,
    q: &TraceQuery,
) -> Vec<Candidate> {
    tables
        .flat_map(|t| t.spans())
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
/// hold a driving span.
fn sealed_candidates(sealed: &[Arc<SealedSegment>], q: &TraceQuery) -> Result<Vec<Candidate>> {
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
                if drives(q, &s) {
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
/// candidates taken under the store's lock.
pub(crate) fn find(
    store: &Store,
    sealed: &[Arc<SealedSegment>],
    mut candidates: Vec<Candidate>,
    q: &TraceQuery,
) -> Result<Vec<TraceSummary>> {
    candidates.extend(sealed_candidates(sealed, q)?);
    // Highest bound first; a trace's first appearance carries its best
    // bound, and later ones are skipped.
    candidates.sort_unstable_by(|a, b| b.bound.cmp(&a.bound).then(a.trace.cmp(&b.trace)));
    let mut seen: FastSet<TraceId> = FastSet::default();
    let mut out: Vec<TraceSummary> = Vec::new();
    for c in candidates {
        if out.len() >= q.limit && c.bound < out[q.limit - 1].start_time_unix_nano {
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
            let at = out
                .binary_search_by(|x| recent_first(x, &sum))
                .unwrap_or_else(|e| e);
            out.insert(at, sum);
            out.truncate(q.limit);
        }
    }
    Ok(out)
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
