//! The store: a directory of segments behind one `Send + Sync` handle.
//!
//! Writes go to an in-memory buffer that is cut into a block and written to
//! the active segment whenever it reaches the block target size; `flush`
//! writes what is buffered and fsyncs, sharing one fsync among concurrent
//! callers (group commit). A full or old active segment is sealed and
//! replaced. Reads see sealed segments, the active segment and the buffer.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use crate::block;
use crate::error::{Error, Result};
use crate::fs::{now_unix_nanos, sync_dir};
use crate::options::Options;
use crate::segment::{self, ActiveSegment, BlockMeta, BlockSource, SealedSegment};
use crate::span::{AnyValue, KeyValue, Span, TraceId};

/// Name of the lock file that admits one writer process per directory.
pub const LOCK_FILE: &str = "LOCK";

/// A handle to an open store. Clones share the same store.
///
/// ```
/// use spanlog::{Options, Span, SpanId, Store, TraceId};
/// let dir = tempfile::tempdir().unwrap();
/// let store = Store::open(dir.path(), Options::default()).unwrap();
/// let span = Span {
///     trace_id: TraceId([7; 16]),
///     span_id: SpanId([1; 8]),
///     name: "GET /".into(),
///     start_time_unix_nano: 1_700_000_000_000_000_000,
///     end_time_unix_nano: 1_700_000_000_250_000_000,
///     ..Default::default()
/// };
/// store.append(vec![span.clone()]).unwrap();
/// store.flush().unwrap(); // durable from here on
/// assert_eq!(store.get_trace(TraceId([7; 16])).unwrap(), vec![span]);
/// store.close().unwrap();
/// ```
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    sealed: RwLock<Arc<Vec<Arc<SealedSegment>>>>,
    writer: Mutex<Writer>,
    sync: Mutex<SyncState>,
    synced: Condvar,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Writer,
    ReadOnly,
    Closed,
}

/// Everything the write path mutates, under one mutex.
struct Writer {
    mode: Mode,
    active: Option<ActiveSegment>,
    /// Active segments of another (possibly crashed) writer, read-only.
    frozen: Vec<ActiveSegment>,
    pending: Vec<Span>,
    pending_bytes: usize,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Blocks written since open; the unit group commit counts in.
    written: u64,
    poisoned: Option<String>,
    next_id: u64,
    lock: Option<File>,
}

struct SyncState {
    synced: u64,
    leader: bool,
}

/// Summary figures of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub sealed_segments: usize,
    pub active_segments: usize,
    pub blocks: u64,
    pub spans: u64,
    pub buffered_spans: u64,
    /// Bytes of all segment files.
    pub disk_bytes: u64,
}

/// What `inspect` shows of one segment.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub id: u64,
    pub path: PathBuf,
    pub sealed: bool,
    pub blocks: Vec<BlockMeta>,
    pub spans: u64,
    pub file_bytes: u64,
    pub traces: usize,
}

impl Store {
    /// Opens (or creates) the store in `dir`. A writer takes the directory's
    /// lock, recovers a crashed writer's active segment (cutting a torn tail
    /// back to the last whole block and sealing it) and starts a new active
    /// segment.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        prepare_dir(&dir, &opts)?;
        let lock = if opts.read_only {
            None
        } else {
            Some(take_lock(&dir)?)
        };
        let listing = list_segments(&dir)?;
        let mut sealed = Vec::new();
        let mut frozen = Vec::new();
        let mut next_id = listing.iter().map(|(id, _, _)| id + 1).max().unwrap_or(1);
        for (_, is_sealed, path) in listing {
            if is_sealed {
                sealed.push(Arc::new(SealedSegment::open(&path)?));
            } else if opts.read_only {
                frozen.push(segment::recover_active(&path, false)?.segment);
            } else if let Some(seg) = recover_for_writer(&dir, &path)? {
                sealed.push(seg);
            }
        }
        let mut writer = Writer {
            mode: if opts.read_only {
                Mode::ReadOnly
            } else {
                Mode::Writer
            },
            active: None,
            frozen,
            pending: Vec::new(),
            pending_bytes: 0,
            compressor: None,
            written: 0,
            poisoned: None,
            next_id,
            lock,
        };
        if !opts.read_only {
            let c = zstd::bulk::Compressor::new(opts.compression_level)
                .map_err(|e| Error::io(&dir, "create zstd context", e))?;
            writer.compressor = Some(c);
            writer.active = Some(ActiveSegment::create(&dir, next_id)?);
            next_id += 1;
            writer.next_id = next_id;
        }
        Ok(Store {
            inner: Arc::new(Inner {
                dir,
                opts,
                sealed: RwLock::new(Arc::new(sealed)),
                writer: Mutex::new(writer),
                sync: Mutex::new(SyncState {
                    synced: 0,
                    leader: false,
                }),
                synced: Condvar::new(),
            }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.dir
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.opts
    }

    /// Appends a batch. Every span is validated first; if any is refused,
    /// nothing of the batch is written. Appended spans are visible to reads
    /// at once and durable after the next [`flush`](Store::flush).
    pub fn append(&self, spans: Vec<Span>) -> Result<()> {
        for (i, s) in spans.iter().enumerate() {
            validate(s, &self.inner.opts).map_err(|why| {
                Error::InvalidInput(format!(
                    "span {i} of the batch ({}/{}): {why}",
                    s.trace_id, s.span_id
                ))
            })?;
        }
        let mut w = self.inner.writable()?;
        for s in spans {
            w.pending_bytes += s.encoded_size_hint();
            w.pending.push(s);
            if w.pending_bytes >= self.inner.opts.block_target_bytes {
                self.inner.cut_block(&mut w)?;
            }
        }
        self.inner.maybe_roll(&mut w)
    }

    /// Makes everything appended so far durable: written, fsynced, and the
    /// segment's directory entry fsynced. Concurrent callers share fsyncs.
    /// An error means durability could not be promised; the store then
    /// refuses writes until reopened.
    pub fn flush(&self) -> Result<()> {
        let target = {
            let mut w = self.inner.writable()?;
            self.inner.cut_block(&mut w)?;
            self.inner.maybe_roll(&mut w)?;
            w.written
        };
        self.inner.sync_to(target)
    }

    /// Every span of the trace, ordered by start time, from sealed segments,
    /// the active segment and the write buffer. Empty if unknown.
    pub fn get_trace(&self, trace: TraceId) -> Result<Vec<Span>> {
        let (sealed, tails, mut out) = {
            let w = self.inner.readable()?;
            let sealed = self.inner.sealed_snapshot();
            let tails: Vec<(BlockSource, Vec<BlockMeta>)> = w
                .tails()
                .map(|t| (t.source(), t.trace_blocks(&trace)))
                .collect();
            let pending: Vec<Span> = w
                .pending
                .iter()
                .filter(|s| s.trace_id == trace)
                .cloned()
                .collect();
            (sealed, tails, pending)
        };
        for seg in sealed.iter() {
            let metas = seg.trace_blocks(&trace)?;
            let src = BlockSource::Mapped(seg.clone());
            for m in metas {
                out.extend(src.trace_spans(&m, &trace)?);
            }
        }
        for (src, metas) in tails {
            for m in metas {
                out.extend(src.trace_spans(&m, &trace)?);
            }
        }
        out.sort_by(|a, b| {
            (a.start_time_unix_nano, a.span_id).cmp(&(b.start_time_unix_nano, b.span_id))
        });
        Ok(out)
    }

    /// Streams every span whose start time lies in `range` (unix nanos,
    /// start inclusive, end exclusive). Only blocks whose time range overlaps
    /// are read, one at a time, so memory stays bounded by one block. Spans
    /// come segment by segment, block by block, not in global time order. A
    /// damaged block yields an `Err` item and the scan goes on.
    pub fn scan(&self, range: Range<u64>) -> Result<Scan> {
        let w = self.inner.readable()?;
        let sealed = self.inner.sealed_snapshot();
        let mut blocks = VecDeque::new();
        for seg in sealed.iter() {
            if seg.trailer.max_start < range.start || seg.trailer.min_start >= range.end {
                continue;
            }
            let src = BlockSource::Mapped(seg.clone());
            for m in seg
                .blocks
                .iter()
                .filter(|m| m.overlaps(range.start, range.end))
            {
                blocks.push_back((src.clone(), *m));
            }
        }
        for t in w.tails() {
            let src = t.source();
            for m in t
                .blocks
                .iter()
                .filter(|m| m.overlaps(range.start, range.end))
            {
                blocks.push_back((src.clone(), *m));
            }
        }
        let pending: Vec<Span> = w
            .pending
            .iter()
            .filter(|s| range.contains(&s.start_time_unix_nano))
            .cloned()
            .collect();
        Ok(Scan {
            range,
            blocks,
            current: pending.into_iter(),
        })
    }

    /// Figures of the store as it is now.
    pub fn stats(&self) -> Result<StoreStats> {
        let infos = self.segments()?;
        let w = self.inner.readable()?;
        Ok(StoreStats {
            sealed_segments: infos.iter().filter(|i| i.sealed).count(),
            active_segments: infos.iter().filter(|i| !i.sealed).count(),
            blocks: infos.iter().map(|i| i.blocks.len() as u64).sum(),
            spans: infos.iter().map(|i| i.spans).sum::<u64>() + w.pending.len() as u64,
            buffered_spans: w.pending.len() as u64,
            disk_bytes: infos.iter().map(|i| i.file_bytes).sum(),
        })
    }

    /// Every segment with its blocks, oldest first.
    pub fn segments(&self) -> Result<Vec<SegmentInfo>> {
        let w = self.inner.readable()?;
        let mut out: Vec<SegmentInfo> = self
            .inner
            .sealed_snapshot()
            .iter()
            .map(|s| SegmentInfo {
                id: s.id,
                path: s.path.clone(),
                sealed: true,
                blocks: s.blocks.clone(),
                spans: s.trailer.span_count,
                file_bytes: s.file_len(),
                traces: s.trace_index().len(),
            })
            .collect();
        out.extend(w.tails().map(|t| SegmentInfo {
            id: t.id,
            path: t.path.as_path().to_path_buf(),
            sealed: false,
            blocks: t.blocks.clone(),
            spans: t.span_count,
            file_bytes: t.len(),
            traces: t.traces.len(),
        }));
        Ok(out)
    }

    /// The sealed segments, oldest first.
    pub fn sealed_segments(&self) -> Arc<Vec<Arc<SealedSegment>>> {
        self.inner.sealed_snapshot()
    }

    /// Seals the active segment now (if it holds anything) and starts a new
    /// one. Everything appended before is durable when this returns.
    pub fn seal_active(&self) -> Result<()> {
        let mut w = self.inner.writable()?;
        self.inner.cut_block(&mut w)?;
        self.inner.roll(&mut w, true)
    }

    /// Flushes, seals the active segment and releases the directory lock.
    /// Further calls on any clone of this handle return [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        let mut w = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.close_locked(&mut w)
    }
}

impl Writer {
    /// The active segment and any frozen ones, for reading.
    fn tails(&self) -> impl Iterator<Item = &ActiveSegment> {
        self.frozen.iter().chain(self.active.iter())
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave the file inconsistent
        // (blocks are only recorded after they are written), so the state is
        // still usable.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writable(&self) -> Result<MutexGuard<'_, Writer>> {
        let w = self.lock();
        match w.mode {
            Mode::ReadOnly => Err(Error::ReadOnly),
            Mode::Closed => Err(Error::Closed),
            Mode::Writer => match &w.poisoned {
                Some(why) => Err(Error::Poisoned(why.clone())),
                None => Ok(w),
            },
        }
    }

    fn readable(&self) -> Result<MutexGuard<'_, Writer>> {
        let w = self.lock();
        if w.mode == Mode::Closed {
            return Err(Error::Closed);
        }
        Ok(w)
    }

    fn sealed_snapshot(&self) -> Arc<Vec<Arc<SealedSegment>>> {
        self.sealed
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Any failure on the write path makes the writer refuse further writes:
    /// the file's tail is unknown and an fsync error may have dropped pages.
    fn poison<T>(&self, w: &mut Writer, r: Result<T>) -> Result<T> {
        if let Err(e) = &r {
            w.poisoned = Some(e.to_string());
            log::error!(
                "spanlog: store {} refuses writes from now on: {e}",
                self.dir.display()
            );
        }
        r
    }

    /// Encodes the buffered spans into a block and appends it.
    fn cut_block(&self, w: &mut Writer) -> Result<()> {
        if w.pending.is_empty() {
            return Ok(());
        }
        let encoded = block::encode_block(&w.pending, w.compressor.as_mut())
            .map_err(|e| Error::io(&self.dir, "compress block", e));
        let r = encoded.and_then(|b| w.active.as_mut().ok_or(Error::Closed)?.append(&b));
        self.poison(w, r)?;
        w.pending.clear();
        w.pending_bytes = 0;
        w.written += 1;
        Ok(())
    }

    fn maybe_roll(&self, w: &mut Writer) -> Result<()> {
        let Some(active) = &w.active else {
            return Ok(());
        };
        let age = now_unix_nanos().saturating_sub(active.created_unix_nano);
        let full = active.len() >= self.opts.segment_max_bytes;
        let old = !active.is_empty() && age >= self.opts.segment_max_age.as_nanos() as u64;
        if full || old {
            self.roll(w, true)?;
        }
        Ok(())
    }

    /// Seals the active segment (discarding it if empty) and, with
    /// `reopen`, creates the next one.
    fn roll(&self, w: &mut Writer, reopen: bool) -> Result<()> {
        let Some(active) = w.active.take() else {
            return Ok(());
        };
        let r = if active.is_empty() {
            active.discard(&self.dir).map(|_| None)
        } else {
            active
                .seal(&self.dir)
                .and_then(|p| SealedSegment::open(&p))
                .map(Some)
        };
        let sealed = self.poison(w, r)?;
        // A seal fsyncs the file, so every block written so far is durable.
        self.mark_synced(w.written);
        if let Some(seg) = sealed {
            let mut list = self.sealed.write().unwrap_or_else(|e| e.into_inner());
            let mut v = (**list).clone();
            v.push(Arc::new(seg));
            *list = Arc::new(v);
        }
        if reopen {
            let r = ActiveSegment::create(&self.dir, w.next_id);
            w.active = Some(self.poison(w, r)?);
            w.next_id += 1;
        }
        Ok(())
    }

    fn mark_synced(&self, upto: u64) {
        let mut s = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        s.synced = s.synced.max(upto);
        self.synced.notify_all();
    }

    /// Group commit: the first caller to find no fsync in flight becomes the
    /// leader and fsyncs everything written by then; the others wait for it
    /// and return without an fsync of their own if it covered them.
    fn sync_to(&self, target: u64) -> Result<()> {
        let mut s = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if s.synced >= target {
                return Ok(());
            }
            if !s.leader {
                break;
            }
            s = self.synced.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.leader = true;
        drop(s);
        let r = self.sync_active();
        let mut s = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        s.leader = false;
        if let Ok(upto) = &r {
            s.synced = s.synced.max(*upto);
        }
        self.synced.notify_all();
        drop(s);
        match r {
            Ok(upto) if upto >= target => Ok(()),
            Ok(_) => self.sync_to(target),
            Err(e) => Err(e),
        }
    }

    /// Fsyncs the active file; returns how many blocks that covered.
    fn sync_active(&self) -> Result<u64> {
        let (upto, file, path) = {
            let w = self.writable()?;
            match &w.active {
                Some(a) => (w.written, a.file.clone(), a.path.clone()),
                None => return Ok(w.written),
            }
        };
        match file.sync_data() {
            Ok(()) => Ok(upto),
            Err(e) => {
                let err = Error::io(path.as_path(), "fsync segment", e);
                let mut w = self.lock();
                self.poison(&mut w, Err(err))
            }
        }
    }

    fn close_locked(&self, w: &mut Writer) -> Result<()> {
        if w.mode != Mode::Writer || w.poisoned.is_some() {
            w.mode = Mode::Closed;
            w.lock = None;
            return Ok(());
        }
        let r = self.cut_block(w).and_then(|_| self.roll(w, false));
        w.mode = Mode::Closed;
        w.pending.clear();
        if let Some(lock) = w.lock.take() {
            let _ = lock.unlock();
        }
        r
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let w = self.writer.get_mut().unwrap_or_else(|e| e.into_inner());
        let mut w = std::mem::replace(w, Writer::closed());
        if let Err(e) = self.close_locked(&mut w) {
            log::warn!(
                "spanlog: closing {} on drop failed: {e}",
                self.dir.display()
            );
        }
    }
}

impl Writer {
    fn closed() -> Writer {
        Writer {
            mode: Mode::Closed,
            active: None,
            frozen: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            compressor: None,
            written: 0,
            poisoned: None,
            next_id: 0,
            lock: None,
        }
    }
}

/// Iterator returned by [`Store::scan`].
pub struct Scan {
    range: Range<u64>,
    blocks: VecDeque<(BlockSource, BlockMeta)>,
    current: std::vec::IntoIter<Span>,
}

impl Iterator for Scan {
    type Item = Result<Span>;

    fn next(&mut self) -> Option<Result<Span>> {
        loop {
            if let Some(s) = self.current.next() {
                return Some(Ok(s));
            }
            let (src, meta) = self.blocks.pop_front()?;
            match src.all_spans(&meta) {
                Ok(spans) => {
                    let range = self.range.clone();
                    let v: Vec<Span> = spans
                        .into_iter()
                        .filter(|s| range.contains(&s.start_time_unix_nano))
                        .collect();
                    self.current = v.into_iter();
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

fn prepare_dir(dir: &Path, opts: &Options) -> Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::InvalidInput(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && opts.create_if_missing
                && !opts.read_only =>
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(dir, "create store directory", e))?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            Ok(())
        }
        Err(e) => Err(Error::io(dir, "open store directory", e)),
    }
}

fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, "open lock file", e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&path, "lock", e)),
    }
}

/// Segment files of the directory as (id, sealed, path), by id. Other files
/// are left alone.
fn list_segments(dir: &Path) -> Result<Vec<(u64, bool, PathBuf)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "list store directory", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(dir, "list store directory", e))?;
        let name = entry.file_name();
        match name.to_str().and_then(segment::parse_name) {
            Some((id, sealed)) => out.push((id, sealed, entry.path())),
            None if name != LOCK_FILE => log::debug!(
                "spanlog: ignoring foreign file {:?} in {}",
                name,
                dir.display()
            ),
            None => {}
        }
    }
    out.sort();
    Ok(out)
}

/// Recovers an active segment left by an earlier writer: cuts a torn tail,
/// then seals it (or removes it if it holds no block).
fn recover_for_writer(dir: &Path, path: &Path) -> Result<Option<Arc<SealedSegment>>> {
    let r = segment::recover_active(path, true)?;
    if let Some((offset, why)) = &r.torn_tail {
        log::warn!(
            "spanlog: {} had a torn tail; truncated to byte offset {offset} ({why})",
            path.display()
        );
    }
    if r.segment.is_empty() {
        r.segment.discard(dir)?;
        return Ok(None);
    }
    let sealed = r.segment.seal(dir)?;
    Ok(Some(Arc::new(SealedSegment::open(&sealed)?)))
}

/// Checks a span before it is accepted.
fn validate(s: &Span, opts: &Options) -> std::result::Result<(), String> {
    if s.trace_id.is_zero() {
        return Err("trace id is all zeroes".into());
    }
    if s.span_id.is_zero() {
        return Err("span id is all zeroes".into());
    }
    if s.end_time_unix_nano < s.start_time_unix_nano {
        return Err(format!(
            "end time {} is before start time {}",
            s.end_time_unix_nano, s.start_time_unix_nano
        ));
    }
    let n = s.attribute_count();
    if n > opts.max_attributes {
        return Err(format!(
            "{n} attributes exceed the limit of {}",
            opts.max_attributes
        ));
    }
    let size = s.encoded_size_hint();
    if size > opts.max_span_bytes {
        return Err(format!(
            "encoded size {size} exceeds the limit of {} bytes",
            opts.max_span_bytes
        ));
    }
    let depth = max_depth(s);
    if depth > opts.max_value_depth.min(block::MAX_VALUE_DEPTH) {
        return Err(format!(
            "values nested {depth} deep exceed the limit of {}",
            opts.max_value_depth
        ));
    }
    Ok(())
}

fn max_depth(s: &Span) -> usize {
    let lists = std::iter::once(&s.attributes)
        .chain(s.events.iter().map(|e| &e.attributes))
        .chain(s.links.iter().map(|l| &l.attributes))
        .chain([&s.resource.attributes, &s.scope.attributes]);
    lists
        .flat_map(|l: &Vec<KeyValue>| l.iter())
        .map(|kv| AnyValue::depth(&kv.value))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanId;

    fn span(t: u8, i: u32, start: u64) -> Span {
        let mut id = [0u8; 8];
        id[4..].copy_from_slice(&(i + 1).to_be_bytes());
        Span {
            trace_id: TraceId([t; 16]),
            span_id: SpanId(id),
            name: format!("op{}", i % 5),
            start_time_unix_nano: start,
            end_time_unix_nano: start + 10,
            ..Span::default()
        }
    }

    fn small() -> Options {
        Options {
            block_target_bytes: 2_000,
            segment_max_bytes: 8_000,
            ..Options::default()
        }
    }

    #[test]
    fn read_your_writes_across_buffer_active_and_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), small()).unwrap();
        let all: Vec<Span> = (0..2001)
            .map(|i| span((i % 7 + 1) as u8, i, u64::from(i) * 100))
            .collect();
        for chunk in all.chunks(40) {
            store.append(chunk.to_vec()).unwrap();
        }
        let stats = store.stats().unwrap();
        assert!(stats.sealed_segments >= 2, "{stats:?}");
        assert!(stats.buffered_spans > 0, "{stats:?}");
        for t in 1..=7u8 {
            let got = store.get_trace(TraceId([t; 16])).unwrap();
            let want: Vec<&Span> = all.iter().filter(|s| s.trace_id.0[0] == t).collect();
            assert_eq!(got.len(), want.len());
            assert!(got.iter().zip(want).all(|(a, b)| a == b));
        }
        let scanned: Vec<Span> = store
            .scan(50_000..60_000)
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(scanned.len(), 100);
        store.close().unwrap();
        assert!(matches!(
            store.append(vec![span(1, 1, 1)]),
            Err(Error::Closed)
        ));
    }

    #[test]
    fn reopen_sees_everything_and_second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), small()).unwrap();
        assert!(matches!(
            Store::open(dir.path(), small()),
            Err(Error::Locked(_))
        ));
        let ro = Store::open(dir.path(), Options::read_only()).unwrap();
        assert!(matches!(
            ro.append(vec![span(1, 1, 1)]),
            Err(Error::ReadOnly)
        ));
        let spans: Vec<Span> = (0..500).map(|i| span(3, i, u64::from(i))).collect();
        store.append(spans.clone()).unwrap();
        store.flush().unwrap();
        drop(store);
        let store = Store::open(dir.path(), small()).unwrap();
        assert_eq!(store.get_trace(TraceId([3; 16])).unwrap(), spans);
    }

    #[test]
    fn invalid_spans_are_refused_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            Options {
                max_attributes: 3,
                ..small()
            },
        )
        .unwrap();
        let good = span(1, 1, 10);
        let mut zero_trace = span(1, 2, 10);
        zero_trace.trace_id = TraceId([0; 16]);
        let mut zero_span = span(1, 3, 10);
        zero_span.span_id = SpanId([0; 8]);
        let mut backwards = span(1, 4, 10);
        backwards.end_time_unix_nano = 5;
        let mut many = span(1, 5, 10);
        many.attributes = (0..4)
            .map(|i| KeyValue::new(format!("k{i}"), AnyValue::Int(i)))
            .collect();
        let mut huge = span(1, 6, 10);
        huge.name = "x".repeat(5 << 20);
        for bad in [zero_trace, zero_span, backwards, many, huge] {
            let err = store.append(vec![good.clone(), bad]).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
        assert!(store.get_trace(TraceId([1; 16])).unwrap().is_empty());
    }

    #[test]
    fn concurrent_appends_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), small()).unwrap();
        std::thread::scope(|s| {
            for t in 1..=4u8 {
                let store = store.clone();
                s.spawn(move || {
                    for i in 0..300 {
                        store.append(vec![span(t, i, u64::from(i))]).unwrap();
                        if i % 10 == 0 {
                            store.flush().unwrap();
                        }
                    }
                });
            }
        });
        store.flush().unwrap();
        for t in 1..=4u8 {
            assert_eq!(store.get_trace(TraceId([t; 16])).unwrap().len(), 300);
        }
    }
}
