//! Compaction and retention: which sealed segments to merge or drop (a
//! pure function of the segment list, [`plan`]), and the merge itself
//! ([`merge`]), a k-way merge of the inputs' span streams into one segment
//! sorted by trace, with exact duplicate spans written once.
//!
//! A merged segment names the segments it replaces in its SUPERSEDES
//! section. It becomes visible by an atomic rename; the inputs are deleted
//! after that. A crash in between leaves both on disk, and an open treats
//! the superseded inputs as gone (a writer deletes them), so no span is
//! ever counted twice or lost.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::block::{compress_block, encode_raw_block, RawBlock, INTERN_MAX_LEN};
use crate::dict::merge_dict_bytes;
use crate::error::{Error, Result};
use crate::fs::{self, sync_dir, FileSystem};
use crate::segment::{ActiveSegment, BlockSource, SealedSegment};
use crate::span::Span;
use crate::tables::TableBuilder;

/// What the policy needs to know of a sealed segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentStat {
    pub id: u64,
    pub bytes: u64,
    pub min_start: u64,
    pub max_end: u64,
}

impl SegmentStat {
    pub fn of(seg: &SealedSegment) -> SegmentStat {
        SegmentStat {
            id: seg.id,
            bytes: seg.file_len(),
            min_start: seg.trailer.min_start,
            max_end: seg.trailer.max_end,
        }
    }
}

/// How compaction and retention choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Segments merge only with segments of the same window of this many
    /// nanoseconds (by their earliest span start), so retention can drop
    /// whole windows.
    pub window_nanos: u64,
    /// Segments of similar size in a window are merged once there are this
    /// many; the segment count per window stays logarithmic in its size.
    pub fan_in: usize,
    /// Drop segments whose latest span end is older than `now - max_age`.
    pub max_age_nanos: Option<u64>,
    /// Drop the oldest windows while the segments exceed this many bytes.
    pub max_total_bytes: Option<u64>,
}

/// What to do: merge groups (each into one segment) and segments to drop.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub merges: Vec<Vec<u64>>,
    pub drops: Vec<u64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.merges.is_empty() && self.drops.is_empty()
    }
}

/// The size tier of a segment: segments within a factor of `fan_in` of
/// each other share a tier.
fn tier(bytes: u64, fan_in: usize) -> u32 {
    let f = fan_in.max(2) as u64;
    let mut t = 0;
    let mut b = bytes >> 20; // below 1 MiB is tier 0
    while b > 0 {
        b /= f;
        t += 1;
    }
    t
}

/// Decides, from the segment list alone, what to drop (retention) and what
/// to merge. `full` merges every window's segments into one.
pub fn plan(segments: &[SegmentStat], policy: &Policy, now: u64, full: bool) -> Plan {
    plan_erasing(segments, policy, now, full, &[])
}

/// As [`plan`], and every segment of `erase` (segments that hold spans of
/// erased traces, format-spec 7.12) that retention keeps is rewritten even
/// when the policy would leave it: merged with the rest of its window by a
/// full compaction, otherwise with the other such segments of its window
/// and size tier, or alone.
pub fn plan_erasing(
    segments: &[SegmentStat],
    policy: &Policy,
    now: u64,
    full: bool,
    erase: &[u64],
) -> Plan {
    let mut out = Plan::default();
    let window = |s: &SegmentStat| s.min_start / policy.window_nanos.max(1);
    let mut keep: Vec<&SegmentStat> = segments.iter().collect();
    if let Some(age) = policy.max_age_nanos {
        let cutoff = now.saturating_sub(age);
        keep.retain(|s| {
            let old = s.max_end < cutoff;
            if old {
                out.drops.push(s.id);
            }
            !old
        });
    }
    let mut windows: BTreeMap<u64, Vec<&SegmentStat>> = BTreeMap::new();
    for s in keep {
        windows.entry(window(s)).or_default().push(s);
    }
    if let Some(cap) = policy.max_total_bytes {
        let mut total: u64 = windows.values().flatten().map(|s| s.bytes).sum();
        while total > cap {
            let Some((_, oldest)) = windows.pop_first() else {
                break;
            };
            for s in oldest {
                total -= s.bytes;
                out.drops.push(s.id);
            }
        }
    }
    let erasing = |s: &&SegmentStat| erase.contains(&s.id);
    for segs in windows.values() {
        if full {
            if segs.len() > 1 || segs.iter().any(erasing) {
                out.merges.push(sorted_ids(segs));
            }
            continue;
        }
        let mut tiers: BTreeMap<u32, Vec<&SegmentStat>> = BTreeMap::new();
        for s in segs {
            tiers
                .entry(tier(s.bytes, policy.fan_in))
                .or_default()
                .push(s);
        }
        for group in tiers.values() {
            if group.len() >= policy.fan_in.max(2) {
                out.merges.push(sorted_ids(group));
            } else if group.iter().any(erasing) {
                let rewrite: Vec<&SegmentStat> = group.iter().copied().filter(erasing).collect();
                out.merges.push(sorted_ids(&rewrite));
            }
        }
    }
    out.drops.sort_unstable();
    out
}

fn sorted_ids(segs: &[&SegmentStat]) -> Vec<u64> {
    let mut v: Vec<u64> = segs.iter().map(|s| s.id).collect();
    v.sort_unstable();
    v
}

/// The spans of one segment, block after block, or all of them sorted in
/// memory (`whole`).
struct Stream {
    src: BlockSource,
    seg: Arc<SealedSegment>,
    next_block: usize,
    buf: VecDeque<Span>,
    last: Option<Key>,
    /// Set when a span came out of order: the segment's blocks are not
    /// sorted by key one after the other.
    unsorted: bool,
}

type Key = ([u8; 16], u64, [u8; 8]);

fn key(s: &Span) -> Key {
    (s.trace_id.0, s.start_time_unix_nano, s.span_id.0)
}

impl Stream {
    fn new(seg: &Arc<SealedSegment>, whole: bool) -> Result<Stream> {
        let mut s = Stream {
            src: BlockSource::Mapped(seg.clone()),
            seg: seg.clone(),
            next_block: 0,
            buf: VecDeque::new(),
            last: None,
            unsorted: false,
        };
        if whole {
            let mut all = Vec::with_capacity(seg.trailer.span_count as usize);
            for meta in &seg.blocks {
                all.extend(s.src.all_spans(meta)?);
            }
            all.sort_by_key(key);
            s.buf = all.into();
            s.next_block = seg.blocks.len();
        }
        Ok(s)
    }

    fn next(&mut self) -> Result<Option<Span>> {
        while self.buf.is_empty() {
            let Some(meta) = self.seg.blocks.get(self.next_block) else {
                return Ok(None);
            };
            self.next_block += 1;
            // Rows of equal trace and start may be in any order (5.4).
            let mut spans = self.src.all_spans(meta)?;
            spans.sort_by_key(key);
            self.buf = spans.into();
        }
        let s = self.buf.pop_front().expect("not empty");
        let k = key(&s);
        if self.last.is_some_and(|l| k < l) {
            self.unsorted = true;
            return Err(Error::InvalidInput(format!(
                "{} is not sorted by trace",
                self.seg.path.display()
            )));
        }
        self.last = Some(k);
        Ok(Some(s))
    }
}

/// How a merge writes its output.
#[derive(Clone, Debug)]
pub struct MergeOptions {
    pub block_bytes: usize,
    pub level: i32,
    /// Most bytes written per second; `None` for no limit.
    pub rate_bytes_per_sec: Option<u64>,
    /// While set, the merge waits after each block, up to [`MAX_GIVE_WAY`]
    /// per block (a block of a few tens of KiB takes a few milliseconds to
    /// merge): the store sets it while its sealer writes a segment, so that
    /// ingest keeps its speed on a machine with few cores, and merges use
    /// the time between seals.
    pub give_way: Option<Arc<AtomicBool>>,
}

/// Longest a merge waits per block for the sealer: merges go on, slowly,
/// under an ingest that never lets the sealer rest.
pub const MAX_GIVE_WAY: Duration = Duration::from_millis(20);

/// What a merge did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MergeStats {
    pub spans_in: u64,
    pub spans_out: u64,
    pub duplicates: u64,
    /// Spans left out because their trace was erased (format-spec 7.12).
    pub erased: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Merges `inputs` into the sealed segment `dir/<id>.seg`, which
/// supersedes them. Memory holds one block per input plus the output block
/// being filled, whatever the sizes of the segments or of their traces.
///
/// An input whose blocks do not follow each other in key order (a log
/// sealed in place, as the first version-1 writers did) is read whole and
/// sorted in memory instead: it is found out by its first span out of
/// order, and the merge starts over.
pub fn merge(
    dir: &Path,
    id: u64,
    inputs: &[Arc<SealedSegment>],
    opts: &MergeOptions,
) -> Result<(Arc<SealedSegment>, MergeStats)> {
    merge_unless(&fs::real(), dir, id, inputs, opts, &|| false)
}

/// As [`merge`], in the file system `fs`, but gives up with
/// [`Error::Closed`], removing the unfinished file, once `cancelled`
/// returns true; it is asked after each block written and while the merge
/// is held back by its rate.
///
/// On any error no merged segment is left under its sealed name, unless
/// removing it failed too (the error is then logged): a caller that finds
/// `dir/<id>.seg` after an error must not merge the same inputs again,
/// since two segments superseding the same inputs would both be served.
pub fn merge_unless(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    id: u64,
    inputs: &[Arc<SealedSegment>],
    opts: &MergeOptions,
    cancelled: &dyn Fn() -> bool,
) -> Result<(Arc<SealedSegment>, MergeStats)> {
    let (out, stats) =
        merge_erasing_in(fs, dir, id, inputs, opts, cancelled, &|_, _| false, false)?;
    let out =
        out.ok_or_else(|| Error::InvalidInput("a merge erasing nothing wrote nothing".into()))?;
    Ok((out, stats))
}

/// As [`merge_unless`], leaving out every span for which `erased(span,
/// input id)` is true (format-spec 7.12). When that leaves no span of
/// inputs that had some, no file is written and the output is `None`: the
/// inputs hold nothing but erased spans.
///
/// With `fresh_dict`, the output does not reuse an input's dictionary,
/// which was trained on the input's spans and may hold fragments of the
/// erased ones: a new one is trained on a sample of the inputs' blocks
/// without them.
pub fn merge_erasing(
    dir: &Path,
    id: u64,
    inputs: &[Arc<SealedSegment>],
    opts: &MergeOptions,
    cancelled: &dyn Fn() -> bool,
    erased: &dyn Fn(&Span, u64) -> bool,
    fresh_dict: bool,
) -> Result<(Option<Arc<SealedSegment>>, MergeStats)> {
    merge_erasing_in(
        &fs::real(),
        dir,
        id,
        inputs,
        opts,
        cancelled,
        erased,
        fresh_dict,
    )
}

/// [`merge_erasing`] in the file system `fs`. As with [`merge_unless`],
/// no merged segment is left under its sealed name after an error, unless
/// removing it failed too.
#[allow(clippy::too_many_arguments)]
pub fn merge_erasing_in(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    id: u64,
    inputs: &[Arc<SealedSegment>],
    opts: &MergeOptions,
    cancelled: &dyn Fn() -> bool,
    erased: &dyn Fn(&Span, u64) -> bool,
    fresh_dict: bool,
) -> Result<(Option<Arc<SealedSegment>>, MergeStats)> {
    let mut whole = vec![false; inputs.len()];
    loop {
        let mut seg = ActiveSegment::create_temp_in(fs, dir, id)?;
        let temp = seg.path.clone();
        // The inputs and what they replaced themselves: should an earlier
        // merge have failed to delete its inputs, they stay superseded.
        seg.supersedes = inputs
            .iter()
            .flat_map(|s| std::iter::once(s.id).chain(s.supersedes.iter().copied()))
            .collect();
        seg.supersedes.sort_unstable();
        seg.supersedes.dedup();
        let r = match fill(
            &mut seg, inputs, &whole, opts, cancelled, erased, fresh_dict,
        ) {
            Ok(Filled::Done(stats)) if stats.spans_out == 0 && stats.erased > 0 => {
                drop(seg);
                fs.remove_file(temp.as_path())
                    .map_err(|e| Error::io(temp.as_path(), "remove unfinished merge", e))?;
                return Ok((None, stats));
            }
            Ok(Filled::Done(stats)) => seg.seal(dir).map(|path| (path, stats)),
            Ok(Filled::Unsorted(i)) if !whole[i] => {
                drop(seg);
                fs.remove_file(temp.as_path())
                    .map_err(|e| Error::io(temp.as_path(), "remove unfinished merge", e))?;
                log::info!(
                    "spanlog: {} is not sorted block after block; merging it from memory",
                    inputs[i].path.display()
                );
                whole[i] = true;
                continue;
            }
            Ok(Filled::Unsorted(i)) => Err(Error::InvalidInput(format!(
                "{} cannot be merged: its spans do not sort",
                inputs[i].path.display()
            ))),
            Err(e) => Err(e),
        };
        return match r {
            Ok((path, mut stats)) => match SealedSegment::open_in(&**fs, &path) {
                Ok(out) => {
                    stats.bytes_out = out.file_len();
                    Ok((Some(Arc::new(out)), stats))
                }
                Err(e) => {
                    // Sealed but unusable: it must not supersede the
                    // inputs, which stay published.
                    withdraw(&**fs, dir, &path);
                    Err(e)
                }
            },
            Err(e) => {
                let _ = fs.remove_file(temp.as_path());
                Err(e)
            }
        };
    }
}

/// Removes a merged segment that will not be published, then syncs the
/// directory. Should a crash come before the removal is durable, the
/// segment found is whole and holds every span of its inputs but the
/// erased ones, so serving it instead of them is just as correct.
fn withdraw(fs: &dyn FileSystem, dir: &Path, path: &Path) {
    let r = fs
        .remove_file(path)
        .map_err(|e| Error::io(path, "remove unpublished merged segment", e))
        .and_then(|_| sync_dir(fs, dir));
    if let Err(e) = r {
        log::error!("spanlog: {e}");
    }
}

/// How [`fill`] ended: the merge is written, or input `i` turned out not
/// to be sorted and the merge must start over.
enum Filled {
    Done(MergeStats),
    Unsorted(usize),
}

fn fill(
    seg: &mut ActiveSegment,
    inputs: &[Arc<SealedSegment>],
    whole: &[bool],
    opts: &MergeOptions,
    cancelled: &dyn Fn() -> bool,
    erased: &dyn Fn(&Span, u64) -> bool,
    fresh_dict: bool,
) -> Result<Filled> {
    let mut out = BlockWriter::new(seg, inputs, opts.level, fresh_dict)?;
    let mut streams: Vec<Stream> = inputs
        .iter()
        .zip(whole)
        .map(|(s, w)| Stream::new(s, *w))
        .collect::<Result<_>>()?;
    let mut stats = MergeStats {
        bytes_in: inputs.iter().map(|s| s.file_len()).sum(),
        ..MergeStats::default()
    };
    let mut heap = BinaryHeap::new();
    let mut heads: Vec<Option<Span>> = Vec::with_capacity(streams.len());
    for (i, s) in streams.iter_mut().enumerate() {
        let head = s.next();
        if s.unsorted {
            return Ok(Filled::Unsorted(i));
        }
        let head = head?;
        if let Some(h) = &head {
            heap.push(Reverse((key(h), i)));
        }
        heads.push(head);
    }
    let started = Instant::now();
    let mut shared = TableBuilder::default();
    let mut block: Vec<Span> = Vec::new();
    let mut block_bytes = 0usize;
    // Spans of the current key already written: exact duplicates among
    // them are dropped, spans that only share the key are all kept.
    let mut run: Vec<Span> = Vec::new();
    while let Some(Reverse((k, i))) = heap.pop() {
        let span = heads[i].take().expect("a head for each heap entry");
        let next = streams[i].next();
        if streams[i].unsorted {
            return Ok(Filled::Unsorted(i));
        }
        heads[i] = next?;
        if let Some(h) = &heads[i] {
            heap.push(Reverse((key(h), i)));
        }
        stats.spans_in += 1;
        if erased(&span, inputs[i].id) {
            stats.erased += 1;
            continue;
        }
        if run.first().is_some_and(|r| key(r) != k) {
            run.clear();
        }
        if run.contains(&span) {
            stats.duplicates += 1;
            continue;
        }
        run.push(span.clone());
        let new_trace = block.last().is_some_and(|l| l.trace_id.0 != k.0);
        if block_bytes >= opts.block_bytes && (new_trace || block_bytes >= 4 * opts.block_bytes) {
            out.write(seg, &mut block, &mut shared)?;
            block_bytes = 0;
            throttle(seg.len(), started, opts.rate_bytes_per_sec, cancelled);
            give_way(opts.give_way.as_deref(), cancelled);
            if cancelled() {
                return Err(Error::Closed);
            }
        }
        block_bytes += span.payload_size();
        block.push(span);
        stats.spans_out += 1;
    }
    if !block.is_empty() {
        out.write(seg, &mut block, &mut shared)?;
    }
    out.finish(seg)?;
    seg.tables = Some(shared.encode());
    Ok(Filled::Done(stats))
}

/// Blocks a merge holds back, uncompressed, to train its dictionary on:
/// at most this many, and at most [`DICT_SAMPLE_BYTES`].
const DICT_SAMPLES: usize = 256;
const DICT_SAMPLE_BYTES: usize = 8 << 20;

/// Encodes, compresses and appends a merge's blocks.
///
/// The dictionary of the largest input serves the output when it is as
/// large as the merge deserves ([`merge_dict_bytes`]): the inputs' data is
/// alike. Otherwise, or when spans are erased (an input's dictionary may
/// hold fragments of them), the merge trains its own on its first blocks,
/// which it holds uncompressed until then. Output blocks are in trace id
/// order, and trace ids are random, so the first blocks are as good a
/// sample as any; and a dictionary learns best from the blocks it will
/// compress, which those are.
enum BlockWriter {
    /// The dictionary's size, and the blocks held back to train it on.
    Training {
        level: i32,
        want: usize,
        held: Vec<RawBlock>,
        held_bytes: usize,
    },
    Ready {
        compressor: zstd::bulk::Compressor<'static>,
        dict: bool,
    },
}

impl BlockWriter {
    /// The writer of a merge of `inputs` into `seg`.
    fn new(
        seg: &mut ActiveSegment,
        inputs: &[Arc<SealedSegment>],
        level: i32,
        fresh_dict: bool,
    ) -> Result<Self> {
        let reused = inputs
            .iter()
            .max_by_key(|s| s.blocks.len())
            .and_then(|s| s.dict_bytes());
        let want = merge_dict_bytes(inputs.iter().map(|s| s.file_len()).sum());
        match reused {
            Some(d) if !fresh_dict && d.len() >= want => ready(seg, level, Some(d.to_vec())),
            _ => Ok(BlockWriter::Training {
                level,
                want,
                held: Vec::new(),
                held_bytes: 0,
            }),
        }
    }

    /// Encodes `block`, referring to the output's `shared` tables, and
    /// appends it, or holds it back while the dictionary is not trained.
    fn write(
        &mut self,
        seg: &mut ActiveSegment,
        block: &mut Vec<Span>,
        shared: &mut TableBuilder,
    ) -> Result<()> {
        block.iter().for_each(|s| shared.add(s));
        let raw = encode_raw_block(
            block.iter().collect(),
            INTERN_MAX_LEN,
            &mut Default::default(),
            Some(shared),
        )
        .map_err(|e| Error::io(seg.path.as_path(), "encode merged block", e))?;
        // The next blocks come from other decoded allocations: only the
        // distinct contents are kept.
        shared.forget_addresses();
        block.clear();
        match self {
            BlockWriter::Training {
                held, held_bytes, ..
            } => {
                *held_bytes += raw.raw.len();
                held.push(raw);
                if held.len() >= DICT_SAMPLES || *held_bytes >= DICT_SAMPLE_BYTES {
                    self.finish(seg)?;
                }
                Ok(())
            }
            BlockWriter::Ready { compressor, dict } => append(seg, raw, compressor, *dict),
        }
    }

    /// Trains the dictionary on the blocks held back, if not done yet,
    /// and appends them.
    fn finish(&mut self, seg: &mut ActiveSegment) -> Result<()> {
        let BlockWriter::Training {
            level, want, held, ..
        } = self
        else {
            return Ok(());
        };
        let bodies: Vec<&[u8]> = held.iter().map(|b| b.raw.as_slice()).collect();
        let dict = crate::dict::train(&bodies, *want);
        let held = std::mem::take(held);
        *self = ready(seg, *level, dict)?;
        if let BlockWriter::Ready { compressor, dict } = self {
            for raw in held {
                append(seg, raw, compressor, *dict)?;
            }
        }
        Ok(())
    }
}

/// A writer whose dictionary is `dict` (none if `None`), recorded in `seg`.
fn ready(seg: &mut ActiveSegment, level: i32, dict: Option<Vec<u8>>) -> Result<BlockWriter> {
    let compressor = match &dict {
        Some(d) => zstd::bulk::Compressor::with_dictionary(level, d),
        None => zstd::bulk::Compressor::new(level),
    }
    .map_err(|e| Error::io(seg.path.as_path(), "prepare the merge's compressor", e))?;
    let has = dict.is_some();
    seg.dict = dict;
    Ok(BlockWriter::Ready {
        compressor,
        dict: has,
    })
}

/// Compresses a block and appends it to `seg`.
fn append(
    seg: &mut ActiveSegment,
    raw: RawBlock,
    compressor: &mut zstd::bulk::Compressor<'static>,
    dict: bool,
) -> Result<()> {
    let encoded = compress_block(raw, compressor, dict)
        .map_err(|e| Error::io(seg.path.as_path(), "compress merged block", e))?;
    seg.append(&encoded)
}

/// Waits while `busy` is set, up to [`MAX_GIVE_WAY`], or until `cancelled`.
fn give_way(busy: Option<&AtomicBool>, cancelled: &dyn Fn() -> bool) {
    let Some(busy) = busy else {
        return;
    };
    let started = Instant::now();
    while busy.load(Ordering::Relaxed) && started.elapsed() < MAX_GIVE_WAY && !cancelled() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sleeps as long as writing `written` bytes since `started` went faster
/// than `rate` bytes per second, or until `cancelled`.
fn throttle(written: u64, started: Instant, rate: Option<u64>, cancelled: &dyn Fn() -> bool) {
    let Some(rate) = rate.filter(|r| *r > 0) else {
        return;
    };
    let due = Duration::from_secs_f64(written as f64 / rate as f64);
    while let Some(wait) = due.checked_sub(started.elapsed()) {
        if wait.is_zero() || cancelled() {
            return;
        }
        std::thread::sleep(wait.min(Duration::from_millis(10)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const HOUR: u64 = 3_600_000_000_000;

    fn seg(id: u64, mib: u64, hour: u64) -> SegmentStat {
        SegmentStat {
            id,
            bytes: mib * MIB,
            min_start: hour * HOUR + id,
            max_end: hour * HOUR + id + 1000,
        }
    }

    fn policy() -> Policy {
        Policy {
            window_nanos: HOUR,
            fan_in: 4,
            max_age_nanos: None,
            max_total_bytes: None,
        }
    }

    #[test]
    fn similar_segments_of_a_window_merge_once_there_are_enough() {
        let mut segs: Vec<SegmentStat> = (1..=3).map(|i| seg(i, 16, 0)).collect();
        assert!(plan(&segs, &policy(), 0, false).is_empty());
        segs.push(seg(4, 16, 0));
        segs.push(seg(5, 16, 1)); // another window
        segs.push(seg(6, 200, 0)); // another tier
        let p = plan(&segs, &policy(), 0, false);
        assert_eq!(p.merges, vec![vec![1, 2, 3, 4]]);
        assert!(p.drops.is_empty());
    }

    #[test]
    fn full_compaction_leaves_one_segment_per_window() {
        let segs = vec![
            seg(1, 1, 0),
            seg(2, 300, 0),
            seg(3, 5, 1),
            seg(4, 2, 2),
            seg(5, 9, 2),
        ];
        let p = plan(&segs, &policy(), 0, true);
        assert_eq!(p.merges, vec![vec![1, 2], vec![4, 5]]);
    }

    #[test]
    fn retention_drops_by_age_and_then_oldest_windows_by_size() {
        let segs = vec![
            seg(1, 10, 0),
            seg(2, 10, 1),
            seg(3, 10, 1),
            seg(4, 10, 2),
            seg(5, 10, 3),
        ];
        let mut pol = policy();
        pol.max_age_nanos = Some(2 * HOUR);
        let now = 3 * HOUR + 5000;
        // Hours 0 and 1 ended more than two hours before `now`.
        assert_eq!(plan(&segs, &pol, now, false).drops, vec![1, 2, 3]);
        pol.max_age_nanos = None;
        pol.max_total_bytes = Some(25 * MIB);
        // Whole windows go, oldest first: hour 0, then both of hour 1.
        assert_eq!(plan(&segs, &pol, now, false).drops, vec![1, 2, 3]);
        pol.max_total_bytes = Some(50 * MIB);
        assert!(plan(&segs, &pol, now, false).drops.is_empty());
    }

    #[test]
    fn segments_holding_erased_traces_are_rewritten() {
        let segs = vec![
            seg(1, 16, 0),
            seg(2, 16, 0),
            seg(3, 200, 0),
            seg(4, 16, 1),
            seg(5, 16, 2),
        ];
        // Nothing to merge by policy: each erasing segment is rewritten,
        // with the others of its window and tier that erase too.
        assert!(plan(&segs, &policy(), 0, false).is_empty());
        let p = plan_erasing(&segs, &policy(), 0, false, &[1, 2, 3, 5]);
        assert_eq!(p.merges, vec![vec![1, 2], vec![3], vec![5]]);
        // A full compaction merges each window anyway; a window of one
        // segment is rewritten only when it erases.
        let p = plan_erasing(&segs, &policy(), 0, true, &[5]);
        assert_eq!(p.merges, vec![vec![1, 2, 3], vec![5]]);
        // A group the policy merges already covers its erasing segments;
        // a dropped segment needs no rewrite.
        let mut four: Vec<SegmentStat> = (1..=4).map(|i| seg(i, 16, 0)).collect();
        four.push(seg(9, 16, 5));
        let mut pol = policy();
        pol.max_age_nanos = Some(HOUR);
        let p = plan_erasing(&four, &pol, 5 * HOUR + 10, false, &[2, 9]);
        assert_eq!(p.drops, vec![1, 2, 3, 4]);
        assert_eq!(p.merges, vec![vec![9]]);
        let p = plan_erasing(&four, &policy(), 0, false, &[2]);
        assert_eq!(p.merges, vec![vec![1, 2, 3, 4]]);
    }

    #[test]
    fn dropped_segments_are_not_merged() {
        let segs: Vec<SegmentStat> = (1..=4).map(|i| seg(i, 16, 0)).collect();
        let mut pol = policy();
        pol.max_age_nanos = Some(HOUR);
        let p = plan(&segs, &pol, 5 * HOUR, false);
        assert_eq!(p.drops, vec![1, 2, 3, 4]);
        assert!(p.merges.is_empty());
    }
}
