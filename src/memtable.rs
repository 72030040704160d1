//! The in-memory table: spans written to the write-ahead log but not yet to
//! a sealed segment, indexed by trace id for reads; and the writing of a
//! table, sorted by trace, as one sealed segment.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::block::encode_rows;
use crate::error::Result;
use crate::hash::FastMap;
use crate::segment::{ActiveSegment, SealedSegment};
use crate::span::{Span, TraceId};

/// Spans in arrival order with a trace-id index over them.
#[derive(Default)]
pub struct Memtable {
    spans: Vec<Span>,
    by_trace: FastMap<TraceId, Vec<u32>>,
    bytes: usize,
}

impl Memtable {
    /// A table holding `spans`.
    pub fn from_spans(spans: Vec<Span>) -> Self {
        let mut m = Memtable::default();
        for s in spans {
            m.push(s);
        }
        m
    }

    /// Adds a span; returns its approximate size.
    pub fn push(&mut self, s: Span) -> usize {
        let size = s.payload_size();
        self.bytes += size;
        let i = self.spans.len() as u32;
        self.by_trace.entry(s.trace_id).or_default().push(i);
        self.spans.push(s);
        size
    }

    /// Every span, in arrival order.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Approximate bytes of the spans held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Spans from index `from` on, in arrival order.
    pub fn tail(&self, from: usize) -> &[Span] {
        &self.spans[from.min(self.spans.len())..]
    }

    /// Copies of the spans of `trace`.
    pub fn trace(&self, trace: &TraceId) -> impl Iterator<Item = Span> + '_ {
        let rows = self.by_trace.get(trace).map_or(&[][..], Vec::as_slice);
        rows.iter().map(|i| self.spans[*i as usize].clone())
    }

    /// Copies of the spans starting in `range`.
    pub fn in_range(&self, range: &Range<u64>) -> Vec<Span> {
        self.spans
            .iter()
            .filter(|s| range.contains(&s.start_time_unix_nano))
            .cloned()
            .collect()
    }

    /// Takes the spans out, leaving the table empty.
    pub fn take(&mut self) -> Vec<Span> {
        self.by_trace.clear();
        self.bytes = 0;
        std::mem::take(&mut self.spans)
    }
}

/// How a sealed segment is laid out.
pub struct SegmentLayout {
    /// Approximate uncompressed bytes per block.
    pub block_bytes: usize,
    pub compressor: zstd::bulk::Compressor<'static>,
}

/// Writes `spans` as the sealed segment `dir/<id>.seg`, sorted by trace id
/// and start time, so that a trace is read from one block in the common
/// case. Blocks end at trace boundaries unless one trace alone grows past
/// four times the block size. Written under a temporary name, fsynced and
/// renamed: a crash leaves either no segment or a whole one. The spans are
/// only borrowed, so readers can keep using them meanwhile.
pub fn write_segment(
    dir: &Path,
    id: u64,
    spans: &[Span],
    layout: &mut SegmentLayout,
) -> Result<Arc<SealedSegment>> {
    let mut rows: Vec<&Span> = spans.iter().collect();
    rows.sort_unstable_by(|a, b| {
        (a.trace_id, a.start_time_unix_nano, a.span_id).cmp(&(
            b.trace_id,
            b.start_time_unix_nano,
            b.span_id,
        ))
    });
    let mut seg = ActiveSegment::create_temp(dir, id)?;
    let temp = seg.path.clone();
    let r = fill(&mut seg, &rows, layout).and_then(|_| seg.seal(dir));
    match r {
        Ok(path) => Ok(Arc::new(SealedSegment::open(&path)?)),
        Err(e) => {
            let _ = std::fs::remove_file(temp.as_path());
            Err(e)
        }
    }
}

fn fill(seg: &mut ActiveSegment, rows: &[&Span], layout: &mut SegmentLayout) -> Result<()> {
    let target = layout.block_bytes.max(1);
    let (mut start, mut bytes) = (0usize, 0usize);
    for i in 0..rows.len() {
        let new_trace = i > start && rows[i].trace_id != rows[i - 1].trace_id;
        if bytes >= target && (new_trace || bytes >= 4 * target) {
            append(seg, &rows[start..i], layout)?;
            (start, bytes) = (i, 0);
        }
        bytes += rows[i].payload_size();
    }
    if start < rows.len() {
        append(seg, &rows[start..], layout)?;
    }
    Ok(())
}

fn append(seg: &mut ActiveSegment, rows: &[&Span], layout: &mut SegmentLayout) -> Result<()> {
    let block = encode_rows(rows.to_vec(), Some(&mut layout.compressor))
        .map_err(|e| crate::Error::io(seg.path.as_path(), "encode block", e))?;
    seg.append(&block)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockView;
    use crate::segment::BlockSource;
    use crate::span::SpanId;

    #[test]
    fn segment_keeps_each_trace_in_one_block() {
        let dir = tempfile::tempdir().unwrap();
        let spans: Vec<Span> = (0..3000u32)
            .map(|i| Span {
                trace_id: TraceId([(i % 50 + 1) as u8; 16]),
                span_id: SpanId([(i % 251) as u8 + 1, (i / 251) as u8, 0, 0, 0, 0, 0, 1]),
                name: format!("op{}", i % 9),
                start_time_unix_nano: u64::from(i),
                end_time_unix_nano: u64::from(i) + 1,
                ..Span::default()
            })
            .collect();
        let mut layout = SegmentLayout {
            block_bytes: 10_000,
            compressor: zstd::bulk::Compressor::new(3).unwrap(),
        };
        let seg = write_segment(dir.path(), 5, &spans, &mut layout).unwrap();
        assert!(seg.blocks.len() > 5);
        let src = BlockSource::Mapped(seg.clone());
        for t in 1..=50u8 {
            let metas = seg.trace_blocks(&TraceId([t; 16])).unwrap();
            assert_eq!(metas.len(), 1, "trace {t} spread over {metas:?}");
            assert_eq!(
                src.trace_spans(&metas[0], &TraceId([t; 16])).unwrap().len(),
                60
            );
        }
        let (h, raw) = src.load(&seg.blocks[0]).unwrap();
        assert!(
            BlockView::parse(&raw, h.span_count)
                .unwrap()
                .trace_runs()
                .len()
                > 1
        );
        assert!(!dir.path().join(crate::segment::temp_name(5)).exists());
    }
}
