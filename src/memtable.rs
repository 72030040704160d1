//! The in-memory table: spans appended but not yet in a sealed segment
//! (some of them also in the write-ahead log, once a flush asked for it),
//! indexed by trace id for reads; and the writing of a table, sorted by
//! trace, as one sealed segment.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::attrs::{ItemContext, KeySet};
use crate::block::{compress_block, encode_raw_block, EncodedBlock, RawBlock};
use crate::dict::{train, DICT_MAX_BYTES};
use crate::error::Result;
use crate::fs::{self, FileSystem};
use crate::hash::FastMap;
use crate::index::{CatalogBuilder, Operation};
use crate::segment::{ActiveSegment, SealedSegment};
use crate::span::{Span, TraceId};
use crate::tables::TableBuilder;

/// Spans in arrival order with a trace-id index over them. Spans are kept
/// in the batches they were appended in: taking a batch moves no span and
/// frees no vector, which matters on the append path.
#[derive(Default)]
pub struct Memtable {
    batches: Vec<Vec<Span>>,
    /// Position of each span: batch and index within it, in arrival order.
    at: Vec<(u32, u32)>,
    /// `payload_size` of each span, computed once, in arrival order.
    sizes: Vec<u32>,
    by_trace: FastMap<TraceId, Vec<u32>>,
    bytes: usize,
    /// Operations of the first `.0` spans, brought up to date when read,
    /// so that appends do not pay for it.
    ops: Mutex<(usize, CatalogBuilder)>,
}

impl Memtable {
    /// A table holding `spans`.
    pub fn from_spans(spans: Vec<Span>) -> Self {
        let mut m = Memtable::default();
        m.push_batch(spans);
        m
    }

    /// An empty table with room for `spans` spans: the next table is sized
    /// like the last, so filling it never copies a large vector.
    pub fn with_capacity(spans: usize) -> Self {
        Memtable {
            at: Vec::with_capacity(spans),
            sizes: Vec::with_capacity(spans),
            ..Memtable::default()
        }
    }

    /// The table's (service, operation, kind) triples with span counts.
    pub fn operations(&self) -> Vec<(Operation, u64)> {
        let mut ops = self.ops.lock().unwrap_or_else(|e| e.into_inner());
        let (done, cat) = &mut *ops;
        for i in *done..self.len() {
            let s = self.get(i);
            cat.add_span(s.service_name().unwrap_or(""), &s.name, s.kind);
        }
        *done = self.len();
        cat.operations()
    }

    /// Every span, in arrival order.
    pub fn spans(&self) -> impl Iterator<Item = &Span> {
        self.batches.iter().flatten()
    }

    /// Adds a batch of spans.
    pub fn push_batch(&mut self, batch: Vec<Span>) {
        let sizes: Vec<u32> = batch
            .iter()
            .map(|s| s.payload_size().min(u32::MAX as usize) as u32)
            .collect();
        self.push_sized(batch, &sizes);
    }

    /// Adds a batch of spans whose [`Span::payload_size`]s are known.
    pub fn push_sized(&mut self, batch: Vec<Span>, sizes: &[u32]) {
        debug_assert_eq!(batch.len(), sizes.len());
        let b = self.batches.len() as u32;
        for (i, (s, size)) in batch.iter().zip(sizes).enumerate() {
            self.bytes += *size as usize;
            self.by_trace
                .entry(s.trace_id)
                .or_default()
                .push(self.at.len() as u32);
            self.at.push((b, i as u32));
            self.sizes.push(*size);
        }
        self.batches.push(batch);
    }

    /// The span at arrival position `i`.
    pub fn get(&self, i: usize) -> &Span {
        let (b, j) = self.at[i];
        &self.batches[b as usize][j as usize]
    }

    /// The spans at arrival positions `range`.
    pub fn range(&self, range: Range<usize>) -> Vec<&Span> {
        range.map(|i| self.get(i)).collect()
    }

    /// The end of the run of spans from `start` whose sizes add up to about
    /// `bytes` (at least one span), at the end of a batch: a log block
    /// holds whole batches, so recovery never finds part of one. Only a
    /// batch larger than [`MAX_LOG_CHUNK`] is split.
    pub fn chunk_end(&self, start: usize, bytes: usize) -> usize {
        let mut total = 0usize;
        for i in start..self.sizes.len() {
            total += self.sizes[i] as usize;
            let batch_ends = self.at.get(i + 1).is_none_or(|next| next.0 != self.at[i].0);
            if (batch_ends && total >= bytes) || total >= MAX_LOG_CHUNK {
                return i + 1;
            }
        }
        self.sizes.len()
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// Approximate bytes of the spans held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// True when the table holds a span of `trace`.
    pub fn holds(&self, trace: &TraceId) -> bool {
        self.by_trace.contains_key(trace)
    }

    /// Copies of the spans of `trace`.
    pub fn trace(&self, trace: &TraceId) -> impl Iterator<Item = Span> + '_ {
        let rows = self.by_trace.get(trace).map_or(&[][..], Vec::as_slice);
        rows.iter().map(|i| self.get(*i as usize).clone())
    }

    /// Copies of the spans starting in `range`.
    pub fn in_range(&self, range: &Range<u64>) -> Vec<Span> {
        self.batches
            .iter()
            .flatten()
            .filter(|s| range.contains(&s.start_time_unix_nano))
            .cloned()
            .collect()
    }

    /// Empties the table.
    pub fn clear(&mut self) {
        *self = Memtable::default();
    }

    /// The spans, in the batches they came in; the rest is dropped.
    pub fn into_batches(self) -> Vec<Vec<Span>> {
        self.batches
    }
}

/// How a sealed segment is laid out.
pub struct SegmentLayout {
    /// Approximate uncompressed bytes per block.
    pub block_bytes: usize,
    /// zstd level of sealed blocks.
    pub level: i32,
    /// Longest string stored once per block dictionary.
    pub intern_max_len: usize,
    /// The zstd dictionary in use and how many segments used it.
    pub dict: Option<(Vec<u8>, u32)>,
    /// Attribute keys that the last segment demoted (see `attrs`): blocks
    /// enter them by key only from the start, which spares hashing their
    /// many values. Cleared whenever a new dictionary is taken, so a key
    /// whose values became few is entered with them again.
    pub demoted: Arc<KeySet>,
    /// The next dictionary, being trained on the blocks of the last
    /// segment that used the current one.
    training: Option<std::thread::JoinHandle<Option<Vec<u8>>>>,
    /// When a segment must train its own dictionary before its blocks are
    /// compressed, train a first one on a quarter of the samples, and the
    /// full one in the background for the segments after it. A store's
    /// first segment then waits a quarter as long; writers of single
    /// segments leave this off.
    pub quick_start: bool,
}

impl SegmentLayout {
    pub fn new(block_bytes: usize, level: i32) -> Self {
        SegmentLayout {
            block_bytes,
            level,
            intern_max_len: crate::block::INTERN_MAX_LEN,
            dict: None,
            demoted: Arc::default(),
            training: None,
            quick_start: false,
        }
    }

    /// Drops the dictionary, and one being trained: the next segment trains
    /// its own. Erasing traces requires this, since a dictionary holds
    /// pieces of the spans it was trained on.
    pub fn forget_dictionary(&mut self) {
        self.dict = None;
        self.training = None;
    }

    /// Waits for a dictionary being trained, and takes it.
    pub fn finish_training(&mut self) {
        let Some(h) = self.training.take() else {
            return;
        };
        // A failed training (or a panicked thread) leaves the dictionary in
        // use; the next segment keeps samples for another attempt.
        if let Some(d) = h.join().ok().flatten() {
            self.dict = Some((d, 0));
            self.demoted = Arc::default();
        }
    }

    /// Trains the next dictionary on `samples` on a thread of its own.
    fn start_training(&mut self, samples: Vec<Vec<u8>>) {
        let spawned = std::thread::Builder::new()
            .name("spanlog-dict".into())
            .spawn(move || train(&samples, DICT_MAX_BYTES));
        match spawned {
            Ok(h) => self.training = Some(h),
            // The dictionary in use stays; the next segment tries again.
            Err(e) => log::warn!("spanlog: no thread to train a dictionary: {e}"),
        }
    }
}

/// Bytes of spans beyond which a log block ends inside a batch (well
/// under the block format's limit on uncompressed bodies).
pub const MAX_LOG_CHUNK: usize = 16 << 20;

/// Segments that share one trained dictionary.
const RETRAIN_EVERY: u32 = 8;

/// At most this many blocks are sampled to train a segment's dictionary.
const DICT_SAMPLES: usize = 64;

/// Writes the table as the sealed segment `dir/<id>.seg`, sorted by trace
/// id and start time, so that a trace is read from one block in the common
/// case. Blocks end at trace boundaries unless one trace alone grows past
/// four times the block size, and are compressed with a dictionary trained
/// on a sample of them. Written under a temporary name, fsynced and renamed:
/// a crash leaves either no segment or a whole one. The table is only
/// borrowed, so readers can keep using it meanwhile.
pub fn write_segment(
    dir: &Path,
    id: u64,
    table: &Memtable,
    layout: &mut SegmentLayout,
) -> Result<Arc<SealedSegment>> {
    write_segment_in(&fs::real(), dir, id, table, layout)
}

/// [`write_segment`] in the file system `fs`.
pub fn write_segment_in(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    id: u64,
    table: &Memtable,
    layout: &mut SegmentLayout,
) -> Result<Arc<SealedSegment>> {
    write_rows(fs, dir, id, table, sorted_rows(table, &|_| false), layout)
}

/// The rows of a segment in order, with what one pass over them gathers.
struct Sorted {
    /// Positions in the table, sorted by (trace, start, span id).
    order: Vec<u32>,
    /// Where in `order` each trace begins.
    trace_starts: Vec<u32>,
    /// The resources and scopes of the rows.
    tables: TableBuilder,
}

/// As [`write_segment`], leaving out the spans `erased` says are erased
/// (format-spec 7.12); `None`, and no file, when that leaves none of a
/// table that had spans.
pub fn write_segment_erasing(
    dir: &Path,
    id: u64,
    table: &Memtable,
    layout: &mut SegmentLayout,
    erased: &dyn Fn(&Span) -> bool,
) -> Result<Option<Arc<SealedSegment>>> {
    write_segment_erasing_in(&fs::real(), dir, id, table, layout, erased)
}

/// [`write_segment_erasing`] in the file system `fs`.
pub fn write_segment_erasing_in(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    id: u64,
    table: &Memtable,
    layout: &mut SegmentLayout,
    erased: &dyn Fn(&Span) -> bool,
) -> Result<Option<Arc<SealedSegment>>> {
    let sorted = sorted_rows(table, erased);
    if sorted.order.is_empty() && !table.is_empty() {
        return Ok(None);
    }
    write_rows(fs, dir, id, table, sorted, layout).map(Some)
}

/// The table's spans not `erased`, sorted by (trace, start, span id).
fn sorted_rows(table: &Memtable, erased: &dyn Fn(&Span) -> bool) -> Sorted {
    // The table groups its spans by trace already: sorting the traces,
    // then the few spans of each, is far cheaper than sorting all spans.
    // Each span is visited once, in this loop: what the segment needs to
    // know of all its rows is gathered here, while the span is at hand.
    let mut traces: Vec<(&TraceId, &Vec<u32>)> = table.by_trace.iter().collect();
    traces.sort_unstable_by_key(|(t, _)| **t);
    let mut sorted = Sorted {
        order: Vec::with_capacity(table.len()),
        trace_starts: Vec::with_capacity(traces.len()),
        tables: TableBuilder::default(),
    };
    let mut keys: Vec<(u64, [u8; 8], u32)> = Vec::new();
    for (_, rows) in traces {
        keys.clear();
        for i in rows {
            let s = table.get(*i as usize);
            if !erased(s) {
                keys.push((s.start_time_unix_nano, s.span_id.0, *i));
            }
        }
        if keys.is_empty() {
            continue;
        }
        keys.sort_unstable();
        sorted.trace_starts.push(sorted.order.len() as u32);
        for (_, _, i) in &keys {
            // Numbered in row order; the trace's spans were just read.
            sorted.tables.add(table.get(*i as usize));
            sorted.order.push(*i);
        }
    }
    sorted
}

fn write_rows(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    id: u64,
    table: &Memtable,
    sorted: Sorted,
    layout: &mut SegmentLayout,
) -> Result<Arc<SealedSegment>> {
    let ranges = partition(table, &sorted, layout.block_bytes.max(1));
    let mut seg = ActiveSegment::create_temp_in(fs, dir, id)?;
    let temp = seg.path.clone();
    let r = fill(&mut seg, table, &sorted, &ranges, layout).and_then(|_| {
        layout.demoted = Arc::new(seg.attr_filters.demoted_keys());
        seg.seal(dir)
    });
    match r {
        Ok(path) => Ok(Arc::new(SealedSegment::open_in(&**fs, &path)?)),
        Err(e) => {
            let _ = fs.remove_file(temp.as_path());
            Err(e)
        }
    }
}

/// Splits the sorted rows into blocks of about `target` bytes.
fn partition(table: &Memtable, sorted: &Sorted, target: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    let mut next_trace = sorted.trace_starts.iter().map(|i| *i as usize).peekable();
    for (i, row) in sorted.order.iter().enumerate() {
        let new_trace = next_trace.next_if_eq(&i).is_some() && i > start;
        if bytes >= target && (new_trace || bytes >= 4 * target) {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += table.sizes[*row as usize] as usize;
    }
    if start < sorted.order.len() {
        out.push(start..sorted.order.len());
    }
    out
}

fn fill(
    seg: &mut ActiveSegment,
    table: &Memtable,
    sorted: &Sorted,
    ranges: &[Range<usize>],
    layout: &mut SegmentLayout,
) -> Result<()> {
    let order = &sorted.order;
    let path = seg.path.clone();
    let io = |e| crate::Error::io(path.as_path(), "encode block", e);
    let rows = |r: &Range<usize>| {
        r.clone()
            .map(|i| table.get(order[i] as usize))
            .collect::<Vec<&Span>>()
    };
    // A dictionary serves several segments before it is trained again: the
    // data of consecutive segments is alike, and training is costly. The
    // last segment to use a dictionary keeps samples of its blocks, and
    // the next one is trained on them while later tables are sealed; it
    // takes over at the segment after. Only a store's first segment (or
    // the first after an erasure) waits for its training: its sampled
    // blocks are encoded first, trained on, then reused.
    layout.finish_training();
    let train_now = layout.dict.is_none();
    if train_now {
        layout.demoted = Arc::default();
    }
    // Only a table of many blocks: a small one trains quickly anyway, and
    // a quarter of its blocks may be too few to train on.
    let quick = train_now && layout.quick_start && ranges.len() >= 4 * DICT_SAMPLES;
    seg.attr_filters.predicted = layout.demoted.clone();
    let step = ranges.len().div_ceil(DICT_SAMPLES).max(1);
    // The resources and scopes go once into the footer; blocks refer to
    // them by number.
    let shared = &sorted.tables;
    seg.tables = Some(shared.encode());
    let mut samples: Vec<Option<RawBlock>> = (0..ranges.len()).map(|_| None).collect();
    let mut sample_items = ItemContext::new(layout.demoted.clone());
    let intern = layout.intern_max_len;
    // Encodes every `every`-th block (those not encoded yet) and returns
    // their raw bodies; the workers reuse the encoded blocks.
    let mut sample = |every: usize, samples: &mut Vec<Option<RawBlock>>| -> Result<Vec<Vec<u8>>> {
        for i in (0..ranges.len()).step_by(every) {
            if samples[i].is_none() {
                let raw =
                    encode_raw_block(rows(&ranges[i]), intern, &mut sample_items, Some(shared));
                samples[i] = Some(raw.map_err(io)?);
            }
        }
        Ok((0..ranges.len())
            .step_by(every)
            .filter_map(|i| samples[i].as_ref().map(|b| b.raw.clone()))
            .collect())
    };
    let mut quick_trained = false;
    if train_now {
        let mut trained = None;
        if quick {
            trained = train(&sample(4 * step, &mut samples)?, DICT_MAX_BYTES);
            quick_trained = trained.is_some();
        }
        if trained.is_none() {
            // Every sample: without a quick start, or when a quarter of
            // them was too little to train on.
            trained = train(&sample(step, &mut samples)?, DICT_MAX_BYTES);
        }
        layout.dict = trained.map(|d| (d, 0));
    }
    let train_next = quick_trained
        || layout
            .dict
            .as_ref()
            .is_some_and(|(_, uses)| *uses + 1 >= RETRAIN_EVERY);
    let dict = layout.dict.as_mut().map(|(d, uses)| {
        *uses += 1;
        d.clone()
    });
    seg.dict.clone_from(&dict);
    // Prepared once: loading a raw dictionary into a context per block
    // would cost as much as compressing a small block.
    let prepared = dict
        .as_deref()
        .map(|d| zstd::dict::EncoderDictionary::copy(d, layout.level));
    let job = EncodeJob {
        rows: &rows,
        ranges,
        samples: Mutex::new(samples),
        keep_every: if train_next { step } else { usize::MAX },
        kept: Mutex::new(Vec::new()),
        next: AtomicUsize::new(0),
        dict: prepared.as_ref(),
        level: layout.level,
        intern: layout.intern_max_len,
        demoted: layout.demoted.clone(),
        shared,
        path: path.as_path(),
        done: Mutex::default(),
    };
    // Blocks are independent once the dictionary is known: this thread
    // and the workers take them one at a time, and whoever finds the next
    // blocks in file order ready appends them (see `EncodeJob::drain`), so
    // indexing and writing overlap the encoding without a hand-off per
    // block.
    let appender = Mutex::new(seg);
    std::thread::scope(|s| {
        for _ in 1..workers_for(ranges.len()) {
            let (job, appender) = (&job, &appender);
            s.spawn(move || job.work(appender));
        }
        job.work(&appender);
    });
    let seg = appender.into_inner().unwrap_or_else(|e| e.into_inner());
    let done = job.done.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = done.failed {
        return Err(e);
    }
    if done.next < ranges.len() {
        return Err(io(std::io::Error::other("a sealing worker stopped early")));
    }
    seg.write_staged()?;
    if train_next {
        let mut kept = job.kept.into_inner().unwrap_or_else(|e| e.into_inner());
        kept.sort_unstable_by_key(|(i, _)| *i);
        layout.start_training(kept.into_iter().map(|(_, body)| body).collect());
    }
    Ok(())
}

/// How many threads encode a segment of `blocks` blocks.
fn workers_for(blocks: usize) -> usize {
    if blocks < 16 {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 4))
}

/// The blocks of one segment, shared by the workers that encode them.
struct EncodeJob<'a, F> {
    rows: &'a F,
    ranges: &'a [Range<usize>],
    /// Bodies already encoded as dictionary samples, taken when reached.
    samples: Mutex<Vec<Option<RawBlock>>>,
    /// Every this many blocks, a copy of the body is kept in `kept`, by
    /// block number, to train the next dictionary on.
    keep_every: usize,
    kept: Mutex<Vec<(usize, Vec<u8>)>>,
    /// The next block to take.
    next: AtomicUsize,
    dict: Option<&'a zstd::dict::EncoderDictionary<'static>>,
    level: i32,
    intern: usize,
    demoted: Arc<KeySet>,
    shared: &'a TableBuilder,
    /// The segment's file, for errors.
    path: &'a Path,
    done: Mutex<Done>,
}

/// Blocks encoded but not appended yet, and how far appending got.
#[derive(Default)]
struct Done {
    /// Encoded blocks waiting for the blocks before them, by number. They
    /// are few: a block waits only for the few others being encoded when
    /// it was taken (at worst, while a worker is descheduled, for a
    /// segment's worth of compressed blocks).
    ready: BTreeMap<usize, EncodedBlock>,
    /// The number of the next block to append.
    next: usize,
    /// The first failure; the workers stop after it.
    failed: Option<crate::Error>,
}

impl<'a, 't, F> EncodeJob<'a, F>
where
    F: Fn(&Range<usize>) -> Vec<&'t Span> + Sync,
{
    /// One worker: takes blocks until none is left or one failed, and
    /// appends what it finds ready.
    fn work(&self, seg: &Mutex<&mut ActiveSegment>) {
        let mut compressor = None;
        let mut items = ItemContext::new(self.demoted.clone());
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            let Some(r) = self.ranges.get(i) else {
                return;
            };
            let block = self.encode(i, r, &mut compressor, &mut items);
            let mut done = self.lock_done();
            match block {
                Ok(b) => {
                    done.ready.insert(i, b);
                }
                Err(e) => {
                    done.failed
                        .get_or_insert(crate::Error::io(self.path, "encode block", e));
                }
            }
            if done.failed.is_some() {
                drop(done);
                self.stop();
                return;
            }
            drop(done);
            self.drain(seg);
        }
    }

    /// Appends the blocks ready in file order, unless another worker is
    /// appending: that one looks again once it lets go of the segment, so
    /// no ready block is left behind.
    fn drain(&self, seg: &Mutex<&mut ActiveSegment>) {
        loop {
            let Ok(mut seg) = seg.try_lock() else {
                return;
            };
            while let Some(block) = self.take_next() {
                if let Err(e) = seg.stage(&block) {
                    self.lock_done().failed.get_or_insert(e);
                    self.stop();
                    return;
                }
            }
            drop(seg);
            let done = self.lock_done();
            if !done.ready.contains_key(&done.next) {
                return;
            }
        }
    }

    /// The next block in file order, if it is ready.
    fn take_next(&self) -> Option<EncodedBlock> {
        let mut done = self.lock_done();
        let next = done.next;
        let block = done.ready.remove(&next)?;
        done.next += 1;
        Some(block)
    }

    fn lock_done(&self) -> std::sync::MutexGuard<'_, Done> {
        self.done.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn encode(
        &self,
        i: usize,
        r: &Range<usize>,
        compressor: &mut Option<zstd::bulk::Compressor<'a>>,
        items: &mut ItemContext,
    ) -> std::io::Result<EncodedBlock> {
        let c = match compressor {
            Some(c) => c,
            None => compressor.insert(match self.dict {
                Some(d) => zstd::bulk::Compressor::with_prepared_dictionary(d)?,
                None => zstd::bulk::Compressor::new(self.level)?,
            }),
        };
        let sample = self
            .samples
            .lock()
            .map_err(|_| std::io::Error::other("a sealing worker panicked"))?
            .get_mut(i)
            .and_then(Option::take);
        let raw = match sample {
            Some(raw) => raw,
            None => encode_raw_block((self.rows)(r), self.intern, items, Some(self.shared))?,
        };
        if i.is_multiple_of(self.keep_every) {
            self.kept
                .lock()
                .map_err(|_| std::io::Error::other("a sealing worker panicked"))?
                .push((i, raw.raw.clone()));
        }
        compress_block(raw, c, self.dict.is_some())
    }

    /// Makes the workers stop after the block they are on.
    fn stop(&self) {
        self.next.store(self.ranges.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockView;
    use crate::segment::BlockSource;
    use crate::span::SpanId;

    #[test]
    fn log_chunks_end_at_batch_ends() {
        let mut t = Memtable::default();
        for b in 0..20u8 {
            let batch = (0..u32::from(b % 7) + 1)
                .map(|i| Span {
                    trace_id: TraceId([b + 1; 16]),
                    span_id: SpanId([1, 0, 0, 0, 0, 0, (i >> 8) as u8, i as u8]),
                    name: "x".repeat(100),
                    ..Span::default()
                })
                .collect();
            t.push_batch(batch);
        }
        let mut start = 0;
        while start < t.len() {
            let end = t.chunk_end(start, 300);
            assert!(end > start);
            // The chunk holds whole batches only.
            assert!(end == t.len() || t.at[end].0 != t.at[end - 1].0);
            start = end;
        }
    }

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
        let mut layout = SegmentLayout::new(10_000, 3);
        let seg = write_segment(dir.path(), 5, &Memtable::from_spans(spans), &mut layout).unwrap();
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
            BlockView::parse_with(&raw, h.span_count, seg.shared.as_ref())
                .unwrap()
                .trace_runs()
                .len()
                > 1
        );
        assert!(!dir.path().join(crate::segment::temp_name(5)).exists());
    }

    #[test]
    fn a_quick_start_trains_a_first_dictionary_on_fewer_samples_then_the_full_one() {
        let dir = tempfile::tempdir().unwrap();
        let table = Memtable::from_spans(crate::gen::generate(3, 30_000));
        let mut full = SegmentLayout::new(16 << 10, 3);
        let slow = write_segment(dir.path(), 1, &table, &mut full).unwrap();
        assert!(slow.blocks.len() >= 4 * DICT_SAMPLES);
        let mut layout = SegmentLayout::new(16 << 10, 3);
        layout.quick_start = true;
        let first = write_segment(dir.path(), 2, &table, &mut layout).unwrap();
        assert!(first.dict_bytes().is_some());
        assert_ne!(first.dict_bytes(), slow.dict_bytes(), "fewer samples");
        // The next segment takes the dictionary trained on all the samples
        // of the first, which is what a full training of it gives.
        let next = Memtable::from_spans(crate::gen::generate(4, 2000));
        let second = write_segment(dir.path(), 3, &next, &mut layout).unwrap();
        assert_eq!(second.dict_bytes(), slow.dict_bytes());
        let third = write_segment(dir.path(), 4, &next, &mut layout).unwrap();
        assert_eq!(third.dict_bytes(), slow.dict_bytes());
    }

    #[test]
    fn the_next_dictionary_is_trained_on_the_last_segment_of_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut layout = SegmentLayout::new(4 << 10, 3);
        let segments = RETRAIN_EVERY as u64 + 3;
        let mut dicts = Vec::new();
        for id in 1..=segments {
            let table = Memtable::from_spans(crate::gen::generate(id, 2000));
            let seg = write_segment(dir.path(), id, &table, &mut layout).unwrap();
            dicts.push(seg.dict_bytes().expect("a dictionary").to_vec());
            if id == RETRAIN_EVERY as u64 {
                // What the background training makes of that segment's
                // sampled blocks is what a synchronous training makes.
                let mut fresh = SegmentLayout::new(4 << 10, 3);
                let again = write_segment(dir.path(), 100, &table, &mut fresh).unwrap();
                layout.finish_training();
                assert_eq!(layout.dict.as_ref().unwrap().0, again.dict_bytes().unwrap());
            }
        }
        let n = RETRAIN_EVERY as usize;
        assert!(dicts[..n].iter().all(|d| *d == dicts[0]));
        assert_ne!(dicts[n], dicts[0], "the next dictionary takes over");
        assert_eq!(dicts[n + 1], dicts[n]);
        // Forgetting the dictionary makes the next segment train its own at
        // once, on its own blocks.
        layout.forget_dictionary();
        let table = Memtable::from_spans(crate::gen::generate(99, 2000));
        let seg = write_segment(dir.path(), 200, &table, &mut layout).unwrap();
        let mut fresh = SegmentLayout::new(4 << 10, 3);
        let alone = write_segment(dir.path(), 201, &table, &mut fresh).unwrap();
        assert_eq!(seg.dict_bytes(), alone.dict_bytes());
        assert_ne!(seg.dict_bytes().unwrap(), &dicts[n][..]);
    }
}
