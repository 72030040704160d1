//! The store: a directory of segments behind one `Send + Sync` handle.
//!
//! Appended spans go to the in-memory table only. `flush` writes the
//! table's spans not yet logged to the write-ahead log, waits for tables
//! frozen earlier to be sealed, and fsyncs the log, sharing one fsync among
//! concurrent callers (group commit). When the table is full (or old) it is
//! frozen and a new table and log start; a background thread, the sealer,
//! writes the frozen table out as a sealed segment sorted by trace id,
//! publishes it and deletes its log. Reads see sealed segments, the frozen
//! table and the current one.

use std::collections::{BTreeSet, VecDeque};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;

use crate::block;
use crate::compaction::{self, MergeOptions, Policy, SegmentStat};
use crate::error::{Error, Result};
use crate::fs::{self, now_unix_nanos, sync_dir, FileHandle, FileLock, FileSystem};
use crate::hash::FastMap;
use crate::index::Operation;
use crate::memtable::{write_segment_erasing_in, write_segment_in, Memtable, SegmentLayout};
use crate::options::Options;
use crate::query::{TraceQuery, TraceSummary};
use crate::search::{self, OpsCatalog};
use crate::segment::{self, ActiveSegment, BlockMeta, BlockSource, FileKind, SealedSegment};
use crate::span::{Shape, Span, SpanKind, TraceId};
use crate::tombstone::{self, Record, TombFile, TombSet, Tombstone, MAX_RECORD_TRACES};

/// Name of the lock file that admits one writer process per directory.
pub const LOCK_FILE: &str = "LOCK";

/// zstd level of write-ahead-log blocks: the log is short-lived, so speed
/// matters more than size.
const WAL_COMPRESSION_LEVEL: i32 = 1;
/// Spans of retired tables an append frees per span it adds: twice the
/// rate tables fill, so one is gone well before the next is sealed.
const RETIRED_PER_SPAN: usize = 2;
/// Spans of retired tables a flush frees: a writer that pauses after a
/// flush gives most of the memory back.
const RETIRED_PER_FLUSH: usize = 4096;

/// How often retention runs while a merge is in progress: merges can take
/// long under a steady ingest, and the disk must stay within its cap.
const RETENTION_DURING_MERGES: std::time::Duration = std::time::Duration::from_secs(1);

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
    /// Closes the store when the last clone of the handle goes.
    _closer: Arc<Closer>,
}

struct Closer(Arc<Inner>);

impl Drop for Closer {
    fn drop(&mut self) {
        if let Err(e) = self.0.close() {
            log::warn!(
                "spanlog: closing {} on drop failed: {e}",
                self.0.dir.display()
            );
        }
    }
}

struct Inner {
    dir: PathBuf,
    opts: Options,
    /// Every file operation goes through it.
    fs: Arc<dyn FileSystem>,
    sealed: RwLock<Arc<Vec<Arc<SealedSegment>>>>,
    /// Operations of the sealed segments, replaced with the list.
    catalog: RwLock<Arc<OpsCatalog>>,
    writer: Mutex<Writer>,
    /// Signalled when the frozen table is taken, sealed or the store stops.
    changed: Condvar,
    sync: Mutex<SyncState>,
    synced: Condvar,
    /// Held during every fsync of a log, so that no two run at once; holds
    /// the error of the first that failed.
    log_sync: Mutex<Option<String>>,
    sealer: Mutex<Option<JoinHandle<()>>>,
    /// Set while the sealer writes a segment: merges give way meanwhile.
    sealing: Arc<AtomicBool>,
    /// Serialises compaction and retention.
    maintenance_run: Mutex<()>,
    /// How compaction and retention fare; held only to read or update it,
    /// never during a merge.
    maintenance: Mutex<MaintenanceStatus>,
    /// Stops the maintenance thread; signalled through `maintenance_wake`.
    maintenance_stop: Mutex<bool>,
    maintenance_wake: Condvar,
    maintainer: Mutex<Option<JoinHandle<()>>>,
}

/// What compaction and retention have done since open, and the last error
/// of background maintenance (cleared by the next run that succeeds).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceStatus {
    pub runs: u64,
    pub segments_merged: u64,
    pub segments_dropped: u64,
    pub duplicates_dropped: u64,
    pub bytes_reclaimed: u64,
    pub last_error: Option<String>,
}

/// What one compaction or retention call did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    /// Each merge: the segments merged and the segment written.
    pub merged: Vec<(Vec<u64>, u64)>,
    /// Segments deleted by retention.
    pub dropped: Vec<u64>,
    /// Segments deleted because every span they held was erased
    /// ([`Store::delete_traces`]).
    pub erased: Vec<u64>,
    /// Spans of erased traces that merges left out.
    pub spans_erased: u64,
    /// Erased traces whose bytes no file holds any more: their tombstones
    /// were dropped.
    pub erasures_completed: u64,
    pub duplicates_dropped: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
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
    /// The log of the table; `None` for read-only and closed stores.
    wal: Option<ActiveSegment>,
    table: Memtable,
    /// How many spans of the table are in the log already.
    logged: usize,
    /// Logs of another (possibly crashed) writer, read at open.
    frozen: Vec<(ActiveSegment, Memtable)>,
    /// A full table whose log is fsynced, being written out by the sealer.
    imm: Option<Arc<Frozen>>,
    /// Tables frozen and tables sealed since open: a flush waits until
    /// every table frozen before it is sealed, since a frozen table's spans
    /// need not all be in its log.
    frozen_count: u64,
    sealed_count: u64,
    /// Set while the sealer deletes the log of the table it just sealed,
    /// which it does after letting appends and flushes go on.
    removing_log: bool,
    /// Batches of a sealed table, left to appends to free (see
    /// [`Inner::retire`]).
    retired: VecDeque<Vec<Span>>,
    /// Asks the sealer to exit once `imm` is empty.
    stop: bool,
    wal_compressor: Option<zstd::bulk::Compressor<'static>>,
    /// Log blocks written since open; the unit group commit counts in.
    written: u64,
    poisoned: Option<String>,
    next_id: u64,
    lock: Option<FileLock>,
    /// Erased traces (format-spec 7.12), replaced whole on each change so
    /// that a read takes them with its tables and segments at one moment.
    tombs: Arc<TombSet>,
    /// Where a writer keeps them.
    tomb_file: Option<TombFile>,
}

/// A table with its complete, fsynced log.
struct Frozen {
    wal: ActiveSegment,
    table: Memtable,
}

struct SyncState {
    synced: u64,
    leader: bool,
    /// Log fsyncs issued by `flush` since open.
    syncs: u64,
}

/// Summary figures of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub sealed_segments: usize,
    /// Write-ahead logs (the writer's, or those read by a read-only open).
    pub active_segments: usize,
    pub blocks: u64,
    pub spans: u64,
    /// Spans appended but not yet written to the log.
    pub buffered_spans: u64,
    /// Spans in memory, waiting to be written to a sealed segment.
    pub table_spans: u64,
    /// Bytes of all segment and log files.
    pub disk_bytes: u64,
    /// Log fsyncs that flushes issued since open; concurrent flushes share
    /// them, so this grows slower than the number of flush calls.
    pub log_syncs: u64,
}

/// What `inspect` shows of one segment or log.
#[derive(Clone, Debug)]
pub struct SegmentInfo {
    pub id: u64,
    pub path: PathBuf,
    pub sealed: bool,
    pub blocks: Vec<BlockMeta>,
    pub spans: u64,
    pub file_bytes: u64,
    /// Distinct traces indexed: 0 for the live writer's logs, whose spans
    /// are indexed in memory instead.
    pub traces: usize,
}

impl Store {
    /// Opens (or creates) the store in `dir`. A writer takes the directory's
    /// lock and turns logs left by an earlier writer into sealed segments
    /// (cutting a torn tail back to the last whole block first); a read-only
    /// open reads them into memory and changes nothing.
    pub fn open(dir: impl AsRef<Path>, opts: Options) -> Result<Store> {
        Self::open_with(dir, opts, fs::real())
    }

    /// Opens the store in `dir` of the file system `fs`, as
    /// [`Store::open`] does in the real one. Every file operation of the
    /// store (appends, sealing, recovery, compaction, retention) goes
    /// through `fs`; `spanlog::faults::FaultyFs` is one for tests.
    pub fn open_with(
        dir: impl AsRef<Path>,
        opts: Options,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Store> {
        let dir = dir.as_ref().to_path_buf();
        check_options(&opts)?;
        prepare_dir(&*fs, &dir, &opts)?;
        let (writer, sealed, layout) = if opts.read_only {
            let (w, s) = open_read_only(&fs, &dir)?;
            (w, s, None)
        } else {
            let (w, s, l) = open_writer(&fs, &dir, &opts)?;
            (w, s, Some(l))
        };
        let inner = Arc::new(Inner {
            dir,
            opts,
            fs,
            catalog: RwLock::new(Arc::new(OpsCatalog::of_segments(&sealed))),
            sealed: RwLock::new(Arc::new(sealed)),
            writer: Mutex::new(writer),
            changed: Condvar::new(),
            sync: Mutex::new(SyncState {
                synced: 0,
                leader: false,
                syncs: 0,
            }),
            synced: Condvar::new(),
            log_sync: Mutex::new(None),
            sealer: Mutex::new(None),
            maintenance_run: Mutex::new(()),
            maintenance: Mutex::new(MaintenanceStatus::default()),
            maintenance_stop: Mutex::new(false),
            maintenance_wake: Condvar::new(),
            maintainer: Mutex::new(None),
            sealing: Arc::default(),
        });
        if let Some(layout) = layout {
            // The tombstones the recovery's dictionary was trained under.
            let tombs = inner.lock().tombs.clone();
            let worker = inner.clone();
            let handle = std::thread::Builder::new()
                .name("spanlog-sealer".into())
                .spawn(move || worker.run_sealer(layout, tombs))
                .map_err(|e| Error::io(&inner.dir, "start sealer thread", e))?;
            *inner.sealer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
            if let Some(every) = inner.opts.maintenance_interval {
                let worker = inner.clone();
                let handle = std::thread::Builder::new()
                    .name("spanlog-maintenance".into())
                    .spawn(move || worker.run_maintainer(every))
                    .map_err(|e| Error::io(&inner.dir, "start maintenance thread", e))?;
                *inner.maintainer.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
            }
        }
        Ok(Store {
            _closer: Arc::new(Closer(inner.clone())),
            inner,
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

    /// The file system the store lives in.
    pub fn file_system(&self) -> &Arc<dyn FileSystem> {
        &self.inner.fs
    }

    /// Appends a batch. Every span is validated first; if any is refused,
    /// nothing of the batch is written. Appended spans are visible to reads
    /// at once and durable after the next [`flush`](Store::flush).
    pub fn append(&self, spans: Vec<Span>) -> Result<()> {
        let mut sizes = Vec::with_capacity(spans.len());
        // Spans of one resource and scope share them (an OTLP request
        // holds each once): their shape is computed once per pair.
        let mut shared: FastMap<(usize, usize), Shape> = FastMap::default();
        for (i, s) in spans.iter().enumerate() {
            let pair = (
                Arc::as_ptr(&s.resource) as usize,
                Arc::as_ptr(&s.scope) as usize,
            );
            let shared_shape = *shared.entry(pair).or_insert_with(|| s.shared_shape());
            let size = validate(s, &shared_shape, &self.inner.opts).map_err(|why| {
                Error::InvalidInput(format!(
                    "span {i} of the batch ({}/{}): {why}",
                    s.trace_id, s.span_id
                ))
            })?;
            sizes.push(size);
        }
        let mut w = self.inner.writable()?;
        let budget = RETIRED_PER_SPAN * spans.len().max(1);
        w.table.push_sized(spans, &sizes);
        let freed = w.take_retired(budget);
        let r = self.inner.maybe_roll(w).map(drop);
        drop(freed);
        r
    }

    /// Makes everything appended so far durable: spans of the current table
    /// are written to the log and fsynced (the log's directory entry was
    /// fsynced when it was created), and tables frozen earlier are sealed.
    /// Appends only fill the in-memory table, so spans that are sealed
    /// before any flush are encoded once, never logged. Concurrent callers
    /// share fsyncs. An error means durability could not be promised; the
    /// store then refuses writes until reopened.
    pub fn flush(&self) -> Result<()> {
        let (target, frozen, freed) = {
            let mut w = self.inner.writable()?;
            self.inner.log_pending(&mut w)?;
            let frozen = w.frozen_count;
            let freed = w.take_retired(RETIRED_PER_FLUSH);
            (self.inner.maybe_roll(w)?.written, frozen, freed)
        };
        drop(freed);
        self.inner.wait_frozen_sealed(frozen)?;
        self.inner.sync_to(target)
    }

    /// Every span of the trace, ordered by start time, from sealed segments
    /// and the in-memory table. Empty if unknown.
    pub fn get_trace(&self, trace: TraceId) -> Result<Vec<Span>> {
        self.get_trace_where(trace, |_| true)
    }

    /// The spans of `trace` still in memory and not erased, in no
    /// particular order, and the tombstones of that moment.
    pub(crate) fn memory_spans(&self, trace: TraceId) -> Result<(Vec<Span>, Arc<TombSet>)> {
        let w = self.inner.readable()?;
        let spans = visible_tables(&w, &trace)
            .flat_map(|t| t.trace(&trace))
            .collect();
        Ok((spans, w.tombs.clone()))
    }

    fn get_trace_where(
        &self,
        trace: TraceId,
        wanted: impl Fn(&SealedSegment) -> bool,
    ) -> Result<Vec<Span>> {
        let (sealed, mut out, mark) = {
            let w = self.inner.readable()?;
            let mut out: Vec<Span> = visible_tables(&w, &trace)
                .flat_map(|t| t.trace(&trace))
                .collect();
            out.shrink_to_fit();
            (self.inner.sealed_snapshot(), out, w.tombs.watermark(&trace))
        };
        let erased = |s: &SealedSegment| mark.is_some_and(|m| s.id <= m);
        for seg in sealed.iter().filter(|s| wanted(s) && !erased(s)) {
            let metas = seg.trace_blocks(&trace)?;
            if metas.is_empty() {
                continue;
            }
            let src = BlockSource::Mapped(seg.clone());
            for m in metas {
                out.extend(src.trace_spans(&m, &trace)?);
            }
        }
        out.sort_by(|a, b| {
            (a.start_time_unix_nano, a.span_id).cmp(&(b.start_time_unix_nano, b.span_id))
        });
        Ok(out)
    }

    /// Every span of the trace, as [`Store::get_trace`], reading only the
    /// segments that hold spans starting in `hint` (unix nanoseconds). The
    /// hint is a promise: spans of the trace starting outside it may be
    /// missed. Spans still in memory are always found.
    pub fn get_trace_in(&self, trace: TraceId, hint: Range<u64>) -> Result<Vec<Span>> {
        self.get_trace_where(trace, |seg| {
            seg.trailer.max_start >= hint.start && seg.trailer.min_start < hint.end
        })
    }

    /// The spans of each trace in `traces`, in the same order; an unknown
    /// trace gives an empty list.
    pub fn get_traces(&self, traces: &[TraceId]) -> Result<Vec<Vec<Span>>> {
        traces.iter().map(|t| self.get_trace(*t)).collect()
    }

    /// Erases traces, for privacy requests (format-spec 7.12).
    ///
    /// **Guarantee.** When this returns `Ok`, the deletion is durable (its
    /// record is fsynced in `tombstones.log`, and so is the directory entry
    /// when the file is new), and no read of this store — [`get_trace`],
    /// [`get_traces`], [`get_trace_in`], [`scan`], [`find_traces`]
    /// (summaries and span counts alike), nor a later open, read-only or
    /// writer, after a crash or not — returns a span of these traces that
    /// was stored when the call was made: spans in sealed segments, in the
    /// write-ahead log and in memory (appended and not yet flushed) alike.
    /// Spans of these traces appended *after* the call returned are new
    /// data and stay visible; delete again to erase them. Unknown ids are
    /// accepted; their tombstones go at the next maintenance round.
    ///
    /// **Latency of physical removal.** The erased spans are invisible at
    /// once; their bytes are removed by the next compaction that covers the
    /// affected segments: the next maintenance round
    /// ([`maintain`](Store::maintain), or the background thread of
    /// `Options::maintenance_interval`) or [`compact`](Store::compact),
    /// each of which rewrites every segment holding an erased trace even
    /// when the compaction policy would leave it. Spans still in memory
    /// never reach a sealed segment: the call freezes the current table
    /// (starting a new log, as [`seal_active`](Store::seal_active) does,
    /// without waiting for the seal) and the sealer leaves them out, then
    /// deletes their log. Once no file holds them any more, the maintenance
    /// round drops their tombstones, the last place their ids are written.
    ///
    /// **Until then**, [`services`](Store::services) and
    /// [`operations`](Store::operations) may still list a service or an
    /// operation whose only spans were erased, and [`stats`](Store::stats)
    /// and [`segments`](Store::segments) still count the erased spans, since
    /// both read the segments' footers as written. A reader that predates
    /// this function (or ignores `tombstones.log`) would still show erased
    /// traces that compaction has not rewritten yet.
    ///
    /// Writers only: a read-only store gives [`Error::ReadOnly`]. An id of
    /// all zeroes, or more than 1,048,576 ids in one call, is refused with
    /// [`Error::InvalidInput`]. A failure to write the record poisons the
    /// writer, as any write-path failure does.
    ///
    /// [`get_trace`]: Store::get_trace
    /// [`get_traces`]: Store::get_traces
    /// [`get_trace_in`]: Store::get_trace_in
    /// [`scan`]: Store::scan
    /// [`find_traces`]: Store::find_traces
    pub fn delete_traces(&self, ids: &[TraceId]) -> Result<()> {
        if ids.iter().any(TraceId::is_zero) {
            return Err(Error::InvalidInput(
                "cannot delete the trace id of all zeroes: no span carries it".into(),
            ));
        }
        let mut traces = ids.to_vec();
        traces.sort_unstable();
        traces.dedup();
        if traces.len() > MAX_RECORD_TRACES {
            return Err(Error::InvalidInput(format!(
                "{} trace ids in one deletion, at most {MAX_RECORD_TRACES}",
                traces.len()
            )));
        }
        let w = self.inner.writable()?;
        if traces.is_empty() {
            return Ok(());
        }
        // Spans appended from here on go to a new log, whose id is above the
        // watermark: they are new data. Every file in use (logs, sealed
        // segments, a merge being written) has an id below the new log's.
        let mut w = self.inner.freeze(w, true, true)?;
        let watermark = match &w.wal {
            Some(wal) => wal.id - 1,
            None => return Err(Error::Closed),
        };
        let record = Record {
            watermark,
            deleted_unix_nano: now_unix_nanos(),
            traces,
        };
        let r = match w.tomb_file.as_mut() {
            Some(f) => f.append(&record),
            None => Err(Error::ReadOnly),
        };
        self.inner.poison(&mut w, r)?;
        let mut set = (*w.tombs).clone();
        for t in &record.traces {
            set.insert(
                *t,
                Tombstone {
                    watermark,
                    deleted_unix_nano: record.deleted_unix_nano,
                },
            );
        }
        w.tombs = Arc::new(set);
        log::info!(
            "spanlog: erased {} traces in {} (watermark {watermark})",
            record.traces.len(),
            self.inner.dir.display()
        );
        Ok(())
    }

    /// The traces erased by [`delete_traces`](Store::delete_traces) whose
    /// bytes some file may still hold (their tombstones), sorted. Empty once
    /// compaction has rewritten every file that held them.
    pub fn erased_traces(&self) -> Result<Vec<TraceId>> {
        let w = self.inner.readable()?;
        let mut v: Vec<TraceId> = w.tombs.iter().map(|(t, _)| *t).collect();
        v.sort_unstable();
        Ok(v)
    }

    /// The traces that match `query`, summarised, most recent first; see
    /// [`TraceQuery`] for what a match is. Segments and blocks that cannot
    /// hold a matching span are skipped before anything is decompressed.
    pub fn find_traces(&self, query: &TraceQuery) -> Result<Vec<TraceSummary>> {
        query.validate()?;
        if query.is_empty_window() {
            return Ok(Vec::new());
        }
        let (sealed, mem, tombs) = {
            let w = self.inner.readable()?;
            let mem = search::memory_candidates(w.tables_with_ids(), query, &w.tombs);
            (self.inner.sealed_snapshot(), mem, w.tombs.clone())
        };
        search::find(self, &sealed, mem, query, &tombs)
    }

    /// Every service name, sorted, from the segments' catalogs and the
    /// in-memory tables (no data block is read).
    pub fn services(&self) -> Result<Vec<String>> {
        let (base, tables) = self.catalogs()?;
        Ok(search::services_of(&base, &tables))
    }

    /// The operations (span name and kind) of `service`, of one kind if
    /// given, sorted by name then kind.
    pub fn operations(&self, service: &str, kind: Option<SpanKind>) -> Result<Vec<Operation>> {
        let (base, tables) = self.catalogs()?;
        Ok(search::operations_of(&base, &tables, service, kind))
    }

    #[allow(clippy::type_complexity)]
    fn catalogs(&self) -> Result<(Arc<OpsCatalog>, Vec<Vec<(Operation, u64)>>)> {
        let w = self.inner.readable()?;
        let tables = w.tables().map(Memtable::operations).collect();
        let base = self
            .inner
            .catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Ok((base, tables))
    }

    /// Streams every span whose start time lies in `range` (unix nanos,
    /// start inclusive, end exclusive). Only blocks whose time range overlaps
    /// are read, one at a time; spans still in memory are copied up front.
    /// Spans come segment by segment, block by block, not in global time
    /// order. A damaged block yields an `Err` item and the scan goes on.
    pub fn scan(&self, range: Range<u64>) -> Result<Scan> {
        let (sealed, table, tombs) = {
            let w = self.inner.readable()?;
            let mut table = Vec::new();
            for (id, t) in w.tables_with_ids() {
                let spans = t.in_range(&range).into_iter();
                table.extend(spans.filter(|s| !w.tombs.hides(&s.trace_id, id)));
            }
            (self.inner.sealed_snapshot(), table, w.tombs.clone())
        };
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
                blocks.push_back((src.clone(), *m, seg.id));
            }
        }
        Ok(Scan {
            range,
            blocks,
            current: table.into_iter(),
            tombs,
        })
    }

    /// Figures of the store as it is now.
    pub fn stats(&self) -> Result<StoreStats> {
        let infos = self.segments()?;
        let w = self.inner.readable()?;
        let table: usize = w.tables().map(Memtable::len).sum();
        Ok(StoreStats {
            sealed_segments: infos.iter().filter(|i| i.sealed).count(),
            active_segments: infos.iter().filter(|i| !i.sealed).count(),
            blocks: infos
                .iter()
                .filter(|i| i.sealed)
                .map(|i| i.blocks.len() as u64)
                .sum(),
            spans: infos
                .iter()
                .filter(|i| i.sealed)
                .map(|i| i.spans)
                .sum::<u64>()
                + table as u64,
            buffered_spans: (w.table.len() - w.logged) as u64,
            table_spans: table as u64,
            disk_bytes: infos.iter().map(|i| i.file_bytes).sum(),
            log_syncs: self
                .inner
                .sync
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .syncs,
        })
    }

    /// Every sealed segment, oldest first, then the logs.
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
        let imm = w.imm.as_ref().map(|f| &f.wal);
        let logs = w
            .frozen
            .iter()
            .map(|(a, _)| a)
            .chain(imm)
            .chain(w.wal.iter());
        out.extend(logs.map(|t| SegmentInfo {
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

    /// Writes the in-memory table out as a sealed segment now (if it holds
    /// anything) and starts a new log; returns once the segment is sealed.
    /// Everything appended before is durable when this returns.
    pub fn seal_active(&self) -> Result<()> {
        let w = self.inner.writable()?;
        let w = self.inner.freeze(w, true, true)?;
        self.inner.wait_sealed(w).map(drop)
    }

    /// Full compaction: every time window's sealed segments are merged into
    /// one segment sorted by trace, with exact duplicate spans written once
    /// (spans that only share a span id are all kept), and without the
    /// spans of erased traces: a window's only segment is rewritten too
    /// when it holds some. Retention runs first.
    /// Readers are never blocked; a reader that started before keeps
    /// reading the old segments, which are deleted from the directory at
    /// once and from the disk when the last reader lets go.
    pub fn compact(&self) -> Result<MaintenanceReport> {
        self.inner.maintain(true, true)
    }

    /// Deletes the segments that `retention_max_age` and
    /// `retention_max_bytes` no longer keep; the space is given back to
    /// the filesystem once no reader still maps them.
    pub fn apply_retention(&self) -> Result<MaintenanceReport> {
        self.inner.maintain(false, false)
    }

    /// One round of what the maintenance thread does: retention, then the
    /// merges the compaction policy asks for and the rewrites that erased
    /// traces need ([`delete_traces`](Store::delete_traces)).
    pub fn maintain(&self) -> Result<MaintenanceReport> {
        self.inner.maintain(false, true)
    }

    /// What maintenance did since open, and its last error.
    pub fn maintenance_status(&self) -> MaintenanceStatus {
        self.inner
            .maintenance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Flushes, writes the table out as a sealed segment, stops the sealer
    /// and releases the directory lock. Further calls on any clone of this
    /// handle return [`Error::Closed`]. Dropping the last clone does the
    /// same, logging a failure instead of returning it.
    pub fn close(&self) -> Result<()> {
        self.inner.close()
    }
}

impl Writer {
    fn new(mode: Mode) -> Writer {
        Writer {
            mode,
            wal: None,
            table: Memtable::default(),
            logged: 0,
            frozen: Vec::new(),
            imm: None,
            frozen_count: 0,
            sealed_count: 0,
            removing_log: false,
            retired: VecDeque::new(),
            stop: false,
            wal_compressor: None,
            written: 0,
            poisoned: None,
            next_id: 1,
            lock: None,
            tombs: Arc::default(),
            tomb_file: None,
        }
    }

    /// Every table in memory with the id of its log: a span of an erased
    /// trace is hidden when that id is at most the trace's watermark. The
    /// current table of a writer without a log (read-only, or poisoned
    /// while freezing) is newer than every deletion.
    fn tables_with_ids(&self) -> impl Iterator<Item = (u64, &Memtable)> {
        let imm = self.imm.as_ref().map(|f| (f.wal.id, &f.table));
        let current = self.wal.as_ref().map_or(u64::MAX, |a| a.id);
        self.frozen
            .iter()
            .map(|(a, t)| (a.id, t))
            .chain(imm)
            .chain(std::iter::once((current, &self.table)))
    }

    /// Up to about `spans` spans of retired batches, to be dropped by the
    /// caller once the lock is released.
    fn take_retired(&mut self, spans: usize) -> Vec<Vec<Span>> {
        let mut out = Vec::new();
        let mut taken = 0;
        while taken < spans {
            let Some(batch) = self.retired.pop_front() else {
                break;
            };
            taken += batch.len().max(1);
            out.push(batch);
        }
        out
    }

    /// Every table in memory, for reading.
    fn tables(&self) -> impl Iterator<Item = &Memtable> {
        let imm = self.imm.as_ref().map(|f| &f.table);
        self.frozen
            .iter()
            .map(|(_, t)| t)
            .chain(imm)
            .chain(std::iter::once(&self.table))
    }

    fn needs_roll(&self, opts: &Options) -> bool {
        let Some(wal) = &self.wal else { return false };
        let age = now_unix_nanos().saturating_sub(wal.created_unix_nano);
        let full = self.table.bytes() as u64 >= opts.segment_max_bytes;
        let old = !self.table.is_empty() && age >= opts.segment_max_age.as_nanos() as u64;
        full || old
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding the lock cannot leave the files inconsistent
        // (blocks are recorded only after they are written), so the state is
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
    /// the log's tail is unknown and an fsync error may have dropped pages.
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

    /// Writes the table's spans not yet logged as one log block.
    fn log_pending(&self, w: &mut Writer) -> Result<()> {
        while w.logged < w.table.len() {
            let end = w.table.chunk_end(w.logged, self.opts.wal_block_bytes);
            let Writer {
                table,
                wal_compressor,
                wal,
                logged,
                ..
            } = &mut *w;
            let r = block::encode_log_block(table.range(*logged..end), wal_compressor.as_mut())
                .map_err(|e| Error::io(&self.dir, "encode block", e))
                .and_then(|b| wal.as_mut().ok_or(Error::Closed)?.append(&b));
            self.poison(w, r)?;
            w.logged = end;
            w.written += 1;
        }
        Ok(())
    }

    /// Waits until `frozen` tables have been sealed.
    fn wait_frozen_sealed(&self, frozen: u64) -> Result<()> {
        let mut w = self.lock();
        while w.sealed_count < frozen && w.poisoned.is_none() {
            w = self.changed.wait(w).unwrap_or_else(|e| e.into_inner());
        }
        match &w.poisoned {
            Some(why) if w.sealed_count < frozen => Err(Error::Poisoned(why.clone())),
            _ => Ok(()),
        }
    }

    fn maybe_roll<'a>(&'a self, w: MutexGuard<'a, Writer>) -> Result<MutexGuard<'a, Writer>> {
        if w.needs_roll(&self.opts) {
            self.freeze(w, false, true)
        } else {
            Ok(w)
        }
    }

    /// Hands the table to the sealer and starts a new table and log (unless
    /// `reopen` is false, when closing). Waits while the sealer still has
    /// the previous table, which bounds memory to two tables. The log being
    /// frozen is fsynced first: a flush only fsyncs the current log.
    fn freeze<'a>(
        &'a self,
        mut w: MutexGuard<'a, Writer>,
        force: bool,
        reopen: bool,
    ) -> Result<MutexGuard<'a, Writer>> {
        while w.imm.is_some() && w.poisoned.is_none() {
            w = self.changed.wait(w).unwrap_or_else(|e| e.into_inner());
        }
        if let Some(why) = &w.poisoned {
            return Err(Error::Poisoned(why.clone()));
        }
        // Another appender may have frozen the table while this one waited.
        if !force && !w.needs_roll(&self.opts) {
            return Ok(w);
        }
        let Some(wal) = w.wal.take() else {
            return Ok(w);
        };
        if w.table.is_empty() {
            let r = wal.discard(&self.dir);
            self.poison(&mut w, r)?;
        } else {
            // Blocks a flush wrote and has not fsynced yet: a later flush
            // fsyncs only the next log, so they are made durable here.
            if self.synced_upto() < w.written {
                let r = self.fsync_log(&*wal.file, &wal.path);
                self.poison(&mut w, r)?;
                self.mark_synced(w.written);
            }
            let next = Memtable::with_capacity(w.table.len() + w.table.len() / 8);
            let table = std::mem::replace(&mut w.table, next);
            w.imm = Some(Arc::new(Frozen { wal, table }));
            w.frozen_count += 1;
            self.changed.notify_all();
        }
        w.logged = 0;
        if reopen {
            let r = ActiveSegment::create_wal_in(&self.fs, &self.dir, w.next_id);
            w.wal = Some(self.poison(&mut w, r)?);
            w.next_id += 1;
        }
        Ok(w)
    }

    /// Waits until the sealer has no table left and has deleted the log of
    /// the last one it sealed; an error if it failed.
    fn wait_sealed<'a>(&'a self, mut w: MutexGuard<'a, Writer>) -> Result<MutexGuard<'a, Writer>> {
        while (w.imm.is_some() || w.removing_log) && w.poisoned.is_none() {
            w = self.changed.wait(w).unwrap_or_else(|e| e.into_inner());
        }
        match (&w.imm, &w.poisoned) {
            (Some(_), Some(why)) => Err(Error::Poisoned(why.clone())),
            _ => Ok(w),
        }
    }

    /// The sealer: writes each frozen table out as a sealed segment with its
    /// log's id, publishes it, then deletes the log. A crash between the seal
    /// and the delete leaves both, and the next open deletes the log because
    /// its segment exists. The table is freed here, off the write path.
    /// Spans of erased traces are left out (format-spec 7.12), and after a
    /// deletion the dictionary is trained again: the one in use was trained
    /// on earlier tables and may hold fragments of the erased spans.
    fn run_sealer(&self, mut layout: SegmentLayout, mut trained_under: Arc<TombSet>) {
        while let Some((job, tombs)) = self.next_job() {
            if !Arc::ptr_eq(&tombs, &trained_under) {
                layout.forget_dictionary();
                trained_under = tombs.clone();
            }
            let id = job.wal.id;
            self.sealing.store(true, AtomicOrdering::Relaxed);
            let r = if tombs.is_empty() {
                write_segment_in(&self.fs, &self.dir, id, &job.table, &mut layout).map(Some)
            } else {
                let erased = |s: &Span| tombs.hides(&s.trace_id, id);
                write_segment_erasing_in(&self.fs, &self.dir, id, &job.table, &mut layout, &erased)
            };
            self.sealing.store(false, AtomicOrdering::Relaxed);
            // Every span was erased: no segment, and the log goes before the
            // table, so that no tombstone is dropped while the log holds
            // what it erases.
            let r = match r {
                Ok(None) => self
                    .fs
                    .remove_file(job.wal.path.as_path())
                    .map_err(|e| Error::io(job.wal.path.as_path(), "remove erased log", e))
                    .and_then(|()| sync_dir(&*self.fs, &self.dir))
                    .map(|()| None),
                r => r,
            };
            let mut w = self.lock();
            match self.poison(&mut w, r) {
                Ok(seg) => {
                    let sealed = seg.is_some();
                    if let Some(seg) = seg {
                        self.publish(seg);
                    }
                    w.imm = None;
                    w.sealed_count += 1;
                    w.removing_log = sealed;
                    self.changed.notify_all();
                    drop(w);
                    if sealed {
                        self.delete_log(job);
                        self.lock().removing_log = false;
                        self.changed.notify_all();
                    }
                }
                // The table stays readable; writes are refused from now on.
                Err(_) => self.changed.notify_all(),
            }
        }
        // No training thread outlives the sealer.
        layout.finish_training();
    }

    /// Hands the spans of a sealed table to the appends that follow, which
    /// free a few batches each ([`RETIRED_PER_SPAN`]).
    ///
    /// Freeing a table's spans costs about half a microsecond a span. The
    /// appending thread allocated them (or its caller did), so it frees
    /// them through its own allocator caches; freeing them on another
    /// thread costs more than half again, and slows the appender's own
    /// allocations while it runs, since both take the same allocator
    /// locks. Appends free twice what they add, so a table is gone long
    /// before the next one is sealed; what is still there then (appends
    /// stopped, or one huge batch) goes to a thread of its own.
    fn retire(&self, job: Arc<Frozen>) {
        // A reader still holding the table frees it when it lets go.
        let Ok(frozen) = Arc::try_unwrap(job) else {
            return;
        };
        let batches = frozen.table.into_batches();
        let left = {
            let mut w = self.lock();
            if w.mode == Mode::Closed {
                batches.into()
            } else {
                std::mem::replace(&mut w.retired, batches.into())
            }
        };
        if left.is_empty() {
            return;
        }
        if std::thread::Builder::new()
            .name("spanlog-free".into())
            .spawn(move || drop(left))
            .is_err()
        {
            log::debug!("spanlog: freeing a sealed table on the sealer thread");
        }
    }

    /// The next frozen table, with the tombstones to apply to it: taken
    /// under the lock a deletion holds until its tombstones are in place.
    fn next_job(&self) -> Option<(Arc<Frozen>, Arc<TombSet>)> {
        let mut w = self.lock();
        loop {
            match (&w.imm, &w.poisoned) {
                (Some(f), None) => return Some((f.clone(), w.tombs.clone())),
                _ if w.stop => return None,
                _ => w = self.changed.wait(w).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    fn delete_log(&self, job: Arc<Frozen>) {
        let path = job.wal.path.clone();
        self.retire(job);
        let r = self
            .fs
            .remove_file(path.as_path())
            .map_err(|e| Error::io(path.as_path(), "remove sealed log", e))
            .and_then(|_| sync_dir(&*self.fs, &self.dir));
        if let Err(e) = r {
            // Harmless: the next open removes a log whose segment exists.
            log::warn!("spanlog: {e}");
        }
    }

    fn publish(&self, seg: Arc<SealedSegment>) {
        let mut list = self.sealed.write().unwrap_or_else(|e| e.into_inner());
        let mut cat = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let mut c = (**cat).clone();
        c.add_segment(&seg);
        *cat = Arc::new(c);
        let mut v = (**list).clone();
        v.push(seg);
        *list = Arc::new(v);
    }

    fn synced_upto(&self) -> u64 {
        self.sync.lock().unwrap_or_else(|e| e.into_inner()).synced
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
        let r = self.sync_log();
        let mut s = self.sync.lock().unwrap_or_else(|e| e.into_inner());
        s.leader = false;
        s.syncs += 1;
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

    /// Fsyncs the log; returns how many blocks that covered.
    fn sync_log(&self) -> Result<u64> {
        let (upto, file, path) = {
            let w = self.writable()?;
            match &w.wal {
                Some(a) => (w.written, a.file.clone(), a.path.clone()),
                None => return Ok(w.written),
            }
        };
        match self.fsync_log(&*file, &path) {
            Ok(()) => Ok(upto),
            Err(e) => {
                let mut w = self.lock();
                self.poison(&mut w, Err(e))
            }
        }
    }

    /// fdatasyncs a log. A flush fsyncs outside the writer's lock, and a
    /// freeze may fsync the same log meanwhile: after a failed fsync the
    /// kernel may have dropped the pages it covered and report success to
    /// the next one, so fsyncs of logs run one at a time, and none is
    /// trusted after one failed (until the store is reopened).
    fn fsync_log(&self, file: &dyn FileHandle, path: &Path) -> Result<()> {
        let mut failed = self.log_sync.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(why) = &*failed {
            return Err(Error::Poisoned(why.clone()));
        }
        file.sync_data().map_err(|e| {
            let e = Error::io(path, "fsync write-ahead log", e);
            *failed = Some(e.to_string());
            e
        })
    }

    /// Retention and compaction under the maintenance lock; `full` merges
    /// every window into one segment, `merge` false only drops.
    fn maintain(&self, full: bool, merge: bool) -> Result<MaintenanceReport> {
        let _serial = self
            .maintenance_run
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        drop(self.writable()?);
        let r = self.maintain_locked(full, merge);
        let mut status = self.maintenance.lock().unwrap_or_else(|e| e.into_inner());
        status.runs += 1;
        match &r {
            // A merge given up because the store is closing.
            Err(Error::Closed) => {}
            Ok(rep) => {
                status.segments_merged += rep.merged.iter().map(|m| m.0.len() as u64).sum::<u64>();
                status.segments_dropped += rep.dropped.len() as u64;
                status.duplicates_dropped += rep.duplicates_dropped;
                status.bytes_reclaimed += rep.bytes_before.saturating_sub(rep.bytes_after);
                status.last_error = None;
            }
            Err(e) => status.last_error = Some(e.to_string()),
        }
        r
    }

    /// Retention: takes `ids` out of the list, deletes them, and adds
    /// them to `dropped`.
    fn drop_segments(&self, ids: &[u64], dropped: &mut Vec<u64>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let gone = self.replace(ids, None);
        self.delete_segments(&gone)?;
        dropped.extend_from_slice(ids);
        Ok(())
    }

    /// Retention over the segments published now, except those of `busy`
    /// (a merge's inputs, which it cannot drop); adds the ids dropped to
    /// `dropped`. Does nothing when no retention is set.
    fn retain_except(&self, busy: &[u64], policy: &Policy, dropped: &mut Vec<u64>) -> Result<()> {
        if policy.max_age_nanos.is_none() && policy.max_total_bytes.is_none() {
            return Ok(());
        }
        let now: Vec<SegmentStat> = self
            .sealed_snapshot()
            .iter()
            .map(|s| SegmentStat::of(s))
            .collect();
        let mut drops = compaction::plan(&now, policy, now_unix_nanos(), false).drops;
        drops.retain(|id| !busy.contains(id));
        self.drop_segments(&drops, dropped)
    }

    fn maintain_locked(&self, full: bool, merge: bool) -> Result<MaintenanceReport> {
        let (tombs, frozen) = {
            let w = self.writable()?;
            (w.tombs.clone(), w.frozen_count)
        };
        // A table frozen by a deletion is sealed first (without the spans
        // it erases), so that the tombstones it keeps alive can be dropped
        // at the end of this round.
        if merge && !tombs.is_empty() {
            self.wait_frozen_sealed(frozen)?;
        }
        let sealed = self.sealed_snapshot();
        let stats: Vec<SegmentStat> = sealed.iter().map(|s| SegmentStat::of(s)).collect();
        let erase = if merge {
            erasing_segments(&sealed, &tombs)
        } else {
            Vec::new()
        };
        let policy = Policy {
            window_nanos: self.opts.compaction_window.as_nanos().max(1) as u64,
            fan_in: self.opts.compaction_fan_in,
            max_age_nanos: self.opts.retention_max_age.map(|a| a.as_nanos() as u64),
            max_total_bytes: self.opts.retention_max_bytes,
        };
        let mut plan = compaction::plan_erasing(&stats, &policy, now_unix_nanos(), full, &erase);
        if !merge {
            plan.merges.clear();
        }
        let mut report = MaintenanceReport {
            bytes_before: stats.iter().map(|s| s.bytes).sum(),
            ..MaintenanceReport::default()
        };
        self.drop_segments(&plan.drops, &mut report.dropped)?;
        let policy = &policy;
        let opts = MergeOptions {
            block_bytes: self.opts.compaction_block_bytes,
            level: self.opts.compaction_level,
            rate_bytes_per_sec: self.opts.compaction_rate_bytes_per_sec,
            give_way: Some(self.sealing.clone()),
        };
        let mut failed = None;
        for group in plan.merges {
            // Merges can take long under a steady ingest: retention goes on
            // between them, and a group it dropped from is left alone.
            self.retain_except(&[], policy, &mut report.dropped)?;
            let current = self.sealed_snapshot();
            let inputs: Vec<Arc<SealedSegment>> = current
                .iter()
                .filter(|s| group.contains(&s.id))
                .cloned()
                .collect();
            if inputs.len() != group.len() {
                continue;
            }
            // The tombstones of the moment the id is taken: a deletion made
            // later has a watermark at least this id, so it covers the
            // output, and the reads hide what this merge still copies.
            let (id, now_tombs) = self.allocate_id()?;
            let erased = |s: &Span, input: u64| now_tombs.hides(&s.trace_id, input);
            // A rewrite for erasure trains its own dictionary, and so does
            // any merge after a deletion this round did not plan for.
            let fresh =
                group.iter().any(|id| erase.contains(id)) || !Arc::ptr_eq(&tombs, &now_tombs);
            // And during them, every second, sparing the merge's inputs.
            let last_retention = std::cell::Cell::new(std::time::Instant::now());
            let retained = std::cell::RefCell::new(Vec::new());
            let closing = || {
                if last_retention.get().elapsed() >= RETENTION_DURING_MERGES {
                    last_retention.set(std::time::Instant::now());
                    if let Err(e) = self.retain_except(&group, policy, &mut retained.borrow_mut()) {
                        log::error!("spanlog: retention during a merge failed: {e}");
                    }
                }
                *self
                    .maintenance_stop
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
            };
            // A group that cannot be merged (a damaged block, say) must not
            // hold back the other windows: its error is reported at the end.
            let merged = compaction::merge_erasing_in(
                &self.fs, &self.dir, id, &inputs, &opts, &closing, &erased, fresh,
            );
            report.dropped.append(&mut retained.borrow_mut());
            let (out, st) = match merged {
                Ok((Some(out), st)) => (out, st),
                Ok((None, st)) => {
                    // Nothing but erased spans: the inputs are deleted
                    // before they leave the list, so a tombstone is never
                    // dropped while one of them is still on disk.
                    report.spans_erased += st.erased;
                    match self.delete_erased(&inputs) {
                        Ok(()) => {
                            self.replace(&group, None);
                            log::info!(
                                "spanlog: deleted segments {group:?}: every span was erased"
                            );
                            report.erased.extend(group);
                        }
                        Err(e) => {
                            log::error!("spanlog: deleting erased segments {group:?} failed: {e}");
                            failed.get_or_insert(e);
                        }
                    }
                    continue;
                }
                Err(Error::Closed) => return Err(Error::Closed),
                Err(e) => {
                    log::error!("spanlog: merging segments {group:?} failed: {e}");
                    if self.check_withdrawn(id).is_err() {
                        return Err(e);
                    }
                    failed.get_or_insert(e);
                    continue;
                }
            };
            log::info!(
                "spanlog: merged segments {group:?} into {id}: {} spans, {} duplicates dropped, {} -> {} bytes",
                st.spans_out,
                st.duplicates,
                st.bytes_in,
                st.bytes_out
            );
            let gone = self.replace(&group, Some(out));
            // The merged segment supersedes its inputs: should deleting them
            // fail, the next open deletes them instead.
            if let Err(e) = self.delete_segments(&gone) {
                log::warn!("spanlog: {e}");
            }
            report.duplicates_dropped += st.duplicates;
            report.spans_erased += st.erased;
            report.merged.push((group, id));
        }
        // After a failed rewrite the tombstones stay: the next round retries.
        if merge && failed.is_none() && !self.readable()?.tombs.is_empty() {
            report.erasures_completed = self.drop_spent_tombstones()?;
        }
        report.bytes_after = self.sealed_snapshot().iter().map(|s| s.file_len()).sum();
        match failed {
            Some(e) => Err(e),
            None => Ok(report),
        }
    }

    /// After a failed merge into segment `id`: a merged segment left under
    /// its sealed name (its removal failed too) supersedes the inputs,
    /// which stay published, so merging them again would leave two
    /// segments that both replace them, and both would be served after a
    /// reopen. The writer is poisoned instead: the next open serves that
    /// segment in place of its inputs, or the inputs if it is gone.
    fn check_withdrawn(&self, id: u64) -> Result<()> {
        let path = self.dir.join(segment::sealed_name(id));
        let err = match self.fs.metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => Error::io(&path, "check for a withdrawn merged segment", e),
            Ok(_) => Error::io(
                &path,
                "withdraw merged segment",
                std::io::Error::other("it is still in the directory after the failed merge"),
            ),
        };
        let mut w = self.lock();
        self.poison(&mut w, Err(err))
    }

    /// A new segment id, above every id in use, and the tombstones that
    /// hold when it is taken.
    fn allocate_id(&self) -> Result<(u64, Arc<TombSet>)> {
        let mut w = self.writable()?;
        let id = w.next_id;
        w.next_id = id
            .checked_add(1)
            .ok_or_else(|| Error::InvalidInput("segment ids exhausted".into()))?;
        Ok((id, w.tombs.clone()))
    }

    /// Unlinks segments that hold only erased spans; one unlinked by an
    /// earlier attempt is not an error.
    fn delete_erased(&self, segs: &[Arc<SealedSegment>]) -> Result<()> {
        for s in segs {
            match self.fs.remove_file(&s.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(&s.path, "delete erased segment", e))
                }
                _ => {}
            }
        }
        sync_dir(&*self.fs, &self.dir)
    }

    /// Drops the tombstones whose erasure is complete: no published
    /// segment and no table in memory whose id is at most the watermark
    /// holds the trace. (A log is deleted before its table leaves memory,
    /// or holds what its sealed segment holds; segments a merge superseded
    /// are never served again.) Under the writer's lock, after the segment
    /// list was replaced, so that a read sees either the tombstone or the
    /// list without the trace. Returns how many were dropped.
    fn drop_spent_tombstones(&self) -> Result<u64> {
        // Dictionaries are searched outside the lock; the search is redone
        // under it only if a segment was published or a trace erased since.
        let (tombs, sealed) = (self.readable()?.tombs.clone(), self.sealed_snapshot());
        let mut pending = erased_on_disk(&sealed, &tombs);
        let mut w = self.writable()?;
        let now = self.sealed_snapshot();
        if !Arc::ptr_eq(&tombs, &w.tombs) || !Arc::ptr_eq(&sealed, &now) {
            pending = erased_on_disk(&now, &w.tombs);
        }
        let tombs = w.tombs.clone();
        let mut keep = (*tombs).clone();
        let mut dropped = 0;
        for (trace, t) in tombs.iter() {
            let in_memory = w
                .tables_with_ids()
                .any(|(id, table)| id <= t.watermark && table.holds(trace));
            if !in_memory && !pending.contains(trace) {
                keep.remove(trace);
                dropped += 1;
            }
        }
        if dropped == 0 {
            return Ok(0);
        }
        let r = match w.tomb_file.as_mut() {
            Some(f) => f.rewrite(&keep),
            None => Err(Error::ReadOnly),
        };
        self.poison(&mut w, r)?;
        w.tombs = Arc::new(keep);
        log::info!(
            "spanlog: erasure of {dropped} traces in {} is complete",
            self.dir.display()
        );
        Ok(dropped)
    }

    /// Takes the segments `ids` out of the published list, adding `add`;
    /// returns the segments taken out.
    fn replace(&self, ids: &[u64], add: Option<Arc<SealedSegment>>) -> Vec<Arc<SealedSegment>> {
        let mut list = self.sealed.write().unwrap_or_else(|e| e.into_inner());
        let mut cat = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let (gone, mut keep): (Vec<_>, Vec<_>) =
            list.iter().cloned().partition(|s| ids.contains(&s.id));
        keep.extend(add);
        keep.sort_by_key(|s| s.id);
        *cat = Arc::new(OpsCatalog::of_segments(&keep));
        *list = Arc::new(keep);
        gone
    }

    /// Unlinks segment files. Readers that still map one keep reading it;
    /// its space is freed when the last map goes.
    fn delete_segments(&self, segs: &[Arc<SealedSegment>]) -> Result<()> {
        for s in segs {
            self.fs
                .remove_file(&s.path)
                .map_err(|e| Error::io(&s.path, "delete segment", e))?;
        }
        sync_dir(&*self.fs, &self.dir)
    }

    /// The maintenance thread: a round every `every` until stopped.
    fn run_maintainer(&self, every: std::time::Duration) {
        let mut stop = self
            .maintenance_stop
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        loop {
            let (s, _) = self
                .maintenance_wake
                .wait_timeout(stop, every)
                .unwrap_or_else(|e| e.into_inner());
            stop = s;
            if *stop {
                return;
            }
            drop(stop);
            match self.maintain(false, true) {
                // Closing: the merge was given up, or the store is closed.
                Ok(_) | Err(Error::Closed) => {}
                Err(e) => log::error!(
                    "spanlog: background maintenance of {} failed: {e}",
                    self.dir.display()
                ),
            }
            stop = self
                .maintenance_stop
                .lock()
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn stop_maintainer(&self) {
        *self
            .maintenance_stop
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
        self.maintenance_wake.notify_all();
        if let Some(h) = self
            .maintainer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = h.join();
        }
    }

    /// Seals the table, waits for the sealer, stops it and releases the
    /// lock. Idempotent.
    fn close(&self) -> Result<()> {
        self.stop_maintainer();
        // A compaction or retention another thread asked for must end
        // before the lock is released: it would otherwise go on deleting
        // and renaming files in a directory a new writer may have opened.
        // A merge gives up at its next block once the stop flag is set.
        let _serial = self
            .maintenance_run
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let w = self.lock();
        if w.mode == Mode::Closed {
            return Ok(());
        }
        let (mut w, r) = if w.mode == Mode::Writer && w.poisoned.is_none() {
            match self
                .freeze(w, true, false)
                .and_then(|w| self.wait_sealed(w))
            {
                Ok(w) => (w, Ok(())),
                Err(e) => (self.lock(), Err(e)),
            }
        } else {
            (w, Ok(()))
        };
        w.stop = true;
        self.changed.notify_all();
        drop(w);
        if let Some(h) = self.sealer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = h.join();
        }
        let mut w = self.lock();
        w.mode = Mode::Closed;
        w.table.clear();
        w.frozen.clear();
        w.imm = None;
        let retired = std::mem::take(&mut w.retired);
        // A closed handle may live on: it must not keep deleted files mapped.
        *self.sealed.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(Vec::new());
        *self.catalog.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(OpsCatalog::default());
        drop(w.lock.take());
        drop(w);
        drop(retired);
        r
    }
}

/// Iterator returned by [`Store::scan`].
pub struct Scan {
    range: Range<u64>,
    /// Each block with the id of its segment, which erasure asks for.
    blocks: VecDeque<(BlockSource, BlockMeta, u64)>,
    current: std::vec::IntoIter<Span>,
    tombs: Arc<TombSet>,
}

impl Iterator for Scan {
    type Item = Result<Span>;

    fn next(&mut self) -> Option<Result<Span>> {
        loop {
            if let Some(s) = self.current.next() {
                return Some(Ok(s));
            }
            let (src, meta, id) = self.blocks.pop_front()?;
            match src.all_spans(&meta) {
                Ok(spans) => {
                    let range = self.range.clone();
                    let v: Vec<Span> = spans
                        .into_iter()
                        .filter(|s| range.contains(&s.start_time_unix_nano))
                        .filter(|s| !self.tombs.hides(&s.trace_id, id))
                        .collect();
                    self.current = v.into_iter();
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The tables in which the spans of `trace` are not erased.
fn visible_tables<'a>(w: &'a Writer, trace: &TraceId) -> impl Iterator<Item = &'a Memtable> {
    let mark = w.tombs.watermark(trace);
    w.tables_with_ids()
        .filter(move |(id, _)| mark.is_none_or(|m| *id > m))
        .map(|(_, t)| t)
}

/// The erased traces whose bytes sealed segment `s` may still hold, among
/// the tombstones that cover it (watermark at least its id): those it
/// holds spans of (found through its bloom filter and trace index, without
/// reading a block), and those whose id its zstd dictionary contains. A
/// dictionary is trained on a sample of a segment's blocks, so it can keep
/// fragments of erased spans; an erased id in it is the sign that it does.
/// Dictionaries are searched once per content (`dicts`).
fn erased_in(s: &SealedSegment, tombs: &TombSet, dicts: &mut DictIds) -> Vec<TraceId> {
    let mut out: Vec<TraceId> = tombs
        .iter()
        .filter(|(t, w)| s.id <= w.watermark && s.trace_ordinal(t).is_some())
        .map(|(t, _)| *t)
        .collect();
    if let Some(d) = s.dict_bytes() {
        let key = (d.len(), crc32fast::hash(d));
        let named = dicts.entry(key).or_insert_with(|| {
            let mut ids: Vec<TraceId> = d
                .windows(16)
                .map(|w| TraceId(w.try_into().expect("16 bytes")))
                .filter(|t| tombs.watermark(t).is_some())
                .collect();
            ids.sort_unstable();
            ids.dedup();
            ids
        });
        out.extend(named.iter().filter(|t| tombs.hides(t, s.id)));
    }
    out
}

/// Erased ids found in dictionaries, by dictionary length and CRC.
type DictIds = std::collections::HashMap<(usize, u32), Vec<TraceId>>;

/// The erased traces some sealed segment may still hold bytes of.
fn erased_on_disk(sealed: &[Arc<SealedSegment>], tombs: &TombSet) -> BTreeSet<TraceId> {
    if tombs.is_empty() {
        return BTreeSet::new();
    }
    let mut dicts = DictIds::new();
    sealed
        .iter()
        .flat_map(|s| erased_in(s, tombs, &mut dicts))
        .collect()
}

/// The sealed segments a compaction must rewrite for erasure: those that
/// may hold bytes of an erased trace ([`erased_in`]), and those whose
/// dictionary is the same as one of theirs (the sealer and merges share
/// dictionaries between segments).
fn erasing_segments(sealed: &[Arc<SealedSegment>], tombs: &TombSet) -> Vec<u64> {
    if tombs.is_empty() {
        return Vec::new();
    }
    let mut dicts = DictIds::new();
    let holders: BTreeSet<u64> = sealed
        .iter()
        .filter(|s| !erased_in(s, tombs, &mut dicts).is_empty())
        .map(|s| s.id)
        .collect();
    let shared: std::collections::HashSet<&[u8]> = sealed
        .iter()
        .filter(|s| holders.contains(&s.id))
        .filter_map(|s| s.dict_bytes())
        .collect();
    sealed
        .iter()
        .filter(|s| holders.contains(&s.id) || s.dict_bytes().is_some_and(|d| shared.contains(d)))
        .map(|s| s.id)
        .collect()
}

fn check_options(opts: &Options) -> Result<()> {
    // A block is cut after the span that crosses its target, and a segment
    // block may grow to four targets within one trace: all must stay well
    // below what a reader accepts.
    let max = (block::MAX_RAW_LEN / 8) as usize;
    for (name, v) in [
        ("block_target_bytes", opts.block_target_bytes),
        ("compaction_block_bytes", opts.compaction_block_bytes),
        ("wal_block_bytes", opts.wal_block_bytes),
        ("max_span_bytes", opts.max_span_bytes),
    ] {
        if v == 0 || v > max {
            return Err(Error::InvalidInput(format!(
                "option {name} = {v} must be between 1 and {max}"
            )));
        }
    }
    Ok(())
}

fn prepare_dir(fs: &dyn FileSystem, dir: &Path, opts: &Options) -> Result<()> {
    match fs.metadata(dir) {
        Ok(m) if m.is_dir => Ok(()),
        Ok(_) => Err(Error::InvalidInput(format!(
            "{} exists and is not a directory",
            dir.display()
        ))),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && opts.create_if_missing
                && !opts.read_only =>
        {
            // Parents created along with the directory need their entries
            // made durable too, or a crash could take the store with them.
            let mut created = vec![dir];
            while let Some(parent) = created[created.len() - 1]
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
            {
                match fs.metadata(parent) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => created.push(parent),
                    _ => break,
                }
            }
            fs.create_dir_all(dir)
                .map_err(|e| Error::io(dir, "create store directory", e))?;
            for d in created.iter().rev() {
                if let Some(parent) = d.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(fs, parent)?;
                }
            }
            Ok(())
        }
        Err(e) => Err(Error::io(dir, "open store directory", e)),
    }
}

fn take_lock(fs: &dyn FileSystem, dir: &Path) -> Result<FileLock> {
    let path = dir.join(LOCK_FILE);
    match fs.try_lock(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(Error::Locked(dir.to_path_buf())),
        Err(e) => Err(Error::io(&path, "lock", e)),
    }
}

/// Store files of the directory as (id, kind, path), by id. Other files are
/// left alone.
fn list_files(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, FileKind, PathBuf)>> {
    let mut out = Vec::new();
    let entries = fs
        .read_dir(dir)
        .map_err(|e| Error::io(dir, "list store directory", e))?;
    for name in entries {
        match name.to_str().and_then(segment::parse_name) {
            Some((id, kind)) => out.push((id, kind, dir.join(&name))),
            None if name != LOCK_FILE
                && name != tombstone::TOMBSTONE_FILE
                && name != tombstone::TOMBSTONE_TEMP =>
            {
                log::debug!(
                    "spanlog: ignoring foreign file {:?} in {}",
                    name,
                    dir.display()
                )
            }
            None => {}
        }
    }
    out.sort();
    Ok(out)
}

type Opened = (Writer, Vec<Arc<SealedSegment>>);

/// Ids that have a sealed segment: a log with such an id was sealed already.
fn sealed_ids(files: &[(u64, FileKind, PathBuf)]) -> BTreeSet<u64> {
    files
        .iter()
        .filter(|f| f.1 == FileKind::Segment)
        .map(|f| f.0)
        .collect()
}

/// Opens for writing: removes unfinished segment files, turns earlier logs
/// into sealed segments, and starts a new log.
fn open_writer(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    opts: &Options,
) -> Result<(Writer, Vec<Arc<SealedSegment>>, SegmentLayout)> {
    let mut w = Writer::new(Mode::Writer);
    w.lock = Some(take_lock(&**fs, dir)?);
    // Tombstones first: recovering a log leaves out the spans they erase.
    let (tomb_file, tombs) = TombFile::open_writer_in(fs, dir)?;
    let files = list_files(&**fs, dir)?;
    let sealed_ids = sealed_ids(&files);
    let mut layout = SegmentLayout::new(opts.block_target_bytes, opts.compression_level);
    layout.quick_start = true;
    // Unfinished segments go first: recovering a log rewrites its segment
    // under the same temporary name.
    for (_, _, path) in files.iter().filter(|f| f.1 == FileKind::Temp) {
        remove_leftover(&**fs, dir, path, "an unfinished segment")?;
    }
    let mut sealed = Vec::new();
    for (_, _, path) in files.iter().filter(|f| f.1 == FileKind::Segment) {
        sealed.push(Arc::new(SealedSegment::open_in(&**fs, path)?));
    }
    // A log whose segment was sealed, or was sealed and then merged into a
    // segment that supersedes it, holds nothing those segments lack.
    let mut done = sealed_ids;
    done.extend(sealed.iter().flat_map(|s| s.supersedes.iter().copied()));
    for (id, kind, path) in &files {
        match kind {
            FileKind::Segment | FileKind::Temp => {}
            FileKind::Wal if done.contains(id) => {
                remove_leftover(&**fs, dir, path, "a log whose segment was sealed")?
            }
            FileKind::Wal => sealed.extend(recover_log(
                fs,
                dir,
                path,
                &mut layout,
                opts.strict_recovery,
                &tombs,
            )?),
        }
    }
    sealed.sort_by_key(|s| s.id);
    for gone in drop_superseded(&mut sealed) {
        remove_leftover(
            &**fs,
            dir,
            &gone.path,
            "a segment superseded by a merged one",
        )?;
    }
    // Above every watermark too: a log whose id a deletion covers may have
    // been deleted since, and appends after the deletion must stay visible.
    let last = files
        .iter()
        .map(|f| f.0)
        .chain(tombs.max_watermark())
        .max()
        .unwrap_or(0);
    w.tombs = Arc::new(tombs);
    w.tomb_file = Some(tomb_file);
    w.next_id = last
        .checked_add(1)
        .ok_or_else(|| Error::InvalidInput("segment ids exhausted".into()))?;
    w.wal = Some(ActiveSegment::create_wal_in(fs, dir, w.next_id)?);
    w.next_id += 1;
    w.wal_compressor = Some(
        zstd::bulk::Compressor::new(WAL_COMPRESSION_LEVEL)
            .map_err(|e| Error::io(dir, "create zstd context", e))?,
    );
    Ok((w, sealed, layout))
}

fn remove_leftover(fs: &dyn FileSystem, dir: &Path, path: &Path, what: &str) -> Result<()> {
    log::info!("spanlog: removing {what}: {}", path.display());
    fs.remove_file(path)
        .map_err(|e| Error::io(path, "remove leftover file", e))?;
    sync_dir(fs, dir)
}

/// Turns a log left by an earlier writer into a sealed segment: cuts a torn
/// tail (logged with its offset), writes the spans sorted, without those
/// the tombstones erase, deletes the log.
fn recover_log(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    path: &Path,
    layout: &mut SegmentLayout,
    strict: bool,
    tombs: &TombSet,
) -> Result<Option<Arc<SealedSegment>>> {
    let mut r = segment::recover_active_in(fs, path, true, strict)?;
    let id = r.segment.id;
    r.spans.retain(|s| !tombs.hides(&s.trace_id, id));
    match (&r.torn_tail, &r.kept_tail) {
        (Some((offset, why)), Some(kept)) => log::error!(
            "spanlog: {} is damaged at byte offset {offset} ({why}) and valid blocks follow; recovered up to there, the rest is kept in {}",
            path.display(),
            kept.display()
        ),
        (Some((offset, why)), None) => log::warn!("spanlog: {} had a torn tail; truncated to byte offset {offset} ({why})", path.display()),
        _ => {}
    }
    let seg = if r.spans.is_empty() {
        None
    } else {
        let table = Memtable::from_spans(r.spans);
        Some(write_segment_in(fs, dir, r.segment.id, &table, layout)?)
    };
    r.segment.discard(dir)?;
    Ok(seg)
}

/// Opens without writing anything: sealed segments are mapped, logs are read
/// into memory up to their last valid block. A writer may seal a log and
/// delete it meanwhile; then the listing is taken again.
/// Listings a read-only open tries before giving up on a directory whose
/// files keep disappearing under it.
const READ_ONLY_ATTEMPTS: usize = 100;

fn open_read_only(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<Opened> {
    // A writer beside it seals logs, merges and drops segments: a file
    // listed may be gone when it is opened, and the listing is taken
    // again. Sealed segments never change, so those already opened are
    // kept, and a new attempt opens only what is new.
    let mut opened = std::collections::HashMap::new();
    let mut attempt = 1;
    loop {
        match try_open_read_only(fs, dir, &mut opened) {
            Err(Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound
                    && attempt < READ_ONLY_ATTEMPTS =>
            {
                attempt += 1
            }
            r => return r,
        }
    }
}

fn try_open_read_only(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    opened: &mut std::collections::HashMap<PathBuf, Arc<SealedSegment>>,
) -> Result<Opened> {
    let mut w = Writer::new(Mode::ReadOnly);
    // Before the listing: a tombstone is dropped only after the files that
    // held its trace were deleted, so these cover every file listed next.
    w.tombs = Arc::new(tombstone::load_read_only_in(&**fs, dir)?);
    let files = list_files(&**fs, dir)?;
    let mut done = sealed_ids(&files);
    let mut sealed = Vec::new();
    for (_, _, path) in files.iter().filter(|f| f.1 == FileKind::Segment) {
        let seg = match opened.get(path) {
            Some(seg) => seg.clone(),
            None => Arc::new(SealedSegment::open_in(&**fs, path)?),
        };
        opened.insert(path.clone(), seg.clone());
        sealed.push(seg);
    }
    // A log whose segment a merge superseded: the segment was sealed and
    // merged before the log was deleted, so the merged segment holds its
    // spans (a writer open recovers it and deletes the result at once).
    done.extend(sealed.iter().flat_map(|s| s.supersedes.iter().copied()));
    for (id, kind, path) in files {
        if kind == FileKind::Wal && !done.contains(&id) {
            let r = segment::recover_active_in(fs, &path, false, false)?;
            w.frozen.push((r.segment, Memtable::from_spans(r.spans)));
        }
    }
    drop_superseded(&mut sealed);
    Ok((w, sealed))
}

/// Takes out of `sealed` the segments that a merged segment replaces (a
/// crash after the merge was sealed and before its inputs were deleted
/// leaves both) and returns them.
fn drop_superseded(sealed: &mut Vec<Arc<SealedSegment>>) -> Vec<Arc<SealedSegment>> {
    let superseded: BTreeSet<u64> = sealed
        .iter()
        .flat_map(|s| s.supersedes.iter().copied())
        .collect();
    let (gone, keep): (Vec<_>, Vec<_>) = sealed.drain(..).partition(|s| superseded.contains(&s.id));
    *sealed = keep;
    gone
}

/// Checks a span before it is accepted.
/// Checks `s` against the limits of `opts`; `shared` is its
/// [`Span::shared_shape`]. Returns its payload size.
fn validate(s: &Span, shared: &Shape, opts: &Options) -> std::result::Result<u32, String> {
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
    let own = s.shape();
    let n = own.attributes + shared.attributes;
    if n > opts.max_attributes {
        return Err(format!(
            "{n} attributes exceed the limit of {}",
            opts.max_attributes
        ));
    }
    let size = own.size_hint(shared);
    if size > opts.max_span_bytes {
        return Err(format!(
            "encoded size {size} exceeds the limit of {} bytes",
            opts.max_span_bytes
        ));
    }
    let depth = own.depth.max(shared.depth);
    let limit = opts.max_value_depth.min(block::MAX_VALUE_DEPTH);
    if depth > limit {
        return Err(format!(
            "values nested {depth} deep exceed the limit of {limit}"
        ));
    }
    // Below the size limit, which is at most 8 MiB.
    Ok(own.payload_size().min(u32::MAX as usize) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{AnyValue, KeyValue, SpanId};

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

    /// Flushes that arrive together share one fsync (group commit), and
    /// each still returns only once its own spans are durable.
    #[test]
    fn concurrent_flushes_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Options::default()).unwrap();
        let (threads, rounds) = (8u8, 40u32);
        let barrier = std::sync::Barrier::new(usize::from(threads));
        std::thread::scope(|s| {
            for t in 1..=threads {
                let (store, barrier) = (&store, &barrier);
                s.spawn(move || {
                    for i in 0..rounds {
                        barrier.wait();
                        store.append(vec![span(t, i, u64::from(i))]).unwrap();
                        store.flush().unwrap();
                    }
                });
            }
        });
        let flushes = u64::from(threads) * u64::from(rounds);
        let syncs = store.stats().unwrap().log_syncs;
        assert!(
            syncs > 0 && syncs * 2 < flushes,
            "{syncs} fsyncs for {flushes} flushes"
        );
        store.close().unwrap();
        let store = Store::open(dir.path(), Options::read_only()).unwrap();
        for t in 1..=threads {
            assert_eq!(
                store.get_trace(TraceId([t; 16])).unwrap().len(),
                rounds as usize
            );
        }
    }

    /// Readers never miss a span while tables are frozen, sealed and
    /// published under them: a trace only ever grows.
    #[test]
    fn reads_see_every_span_while_the_sealer_works() {
        let dir = tempfile::tempdir().unwrap();
        let opts = Options {
            segment_max_bytes: 6_000,
            wal_block_bytes: 1_000,
            ..small()
        };
        let store = Store::open(dir.path(), opts).unwrap();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                let mut last = [0usize; 3];
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    for t in 1..=3u8 {
                        let n = store.get_trace(TraceId([t; 16])).unwrap().len();
                        assert!(
                            n >= last[usize::from(t - 1)],
                            "trace {t} shrank from {} to {n}",
                            last[usize::from(t - 1)]
                        );
                        last[usize::from(t - 1)] = n;
                    }
                }
            });
            for i in 0..3000u32 {
                store
                    .append(vec![span((i % 3 + 1) as u8, i, u64::from(i))])
                    .unwrap();
            }
            store.flush().unwrap();
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            reader.join().unwrap();
        });
        assert!(store.stats().unwrap().sealed_segments > 3);
        for t in 1..=3u8 {
            assert_eq!(store.get_trace(TraceId([t; 16])).unwrap().len(), 1000);
        }
    }
}
