//! The engine on a file system that fails (`spanlog::faults::FaultyFs`):
//! failed writes and fsyncs, a full disk while sealing and compacting, a
//! failure between a rename and the fsync of its directory, and the image
//! a power loss leaves at every step of a workload that rolls segments,
//! seals, compacts and applies retention.
//!
//! What every case checks of a store, after reopening it on what the
//! failure or the crash left (`check_store`):
//!
//! * every span acknowledged (by a `flush` that returned `Ok`) before the
//!   failure or the crash reads back equal, by `get_trace` and by a scan,
//!   from a read-only open and from a writer open (which runs recovery);
//! * every span read back equals, field for field, a span that was
//!   appended, and none appears twice;
//! * reads never fail, and `verify` finds the store clean.
//!
//! A span that was never acknowledged may or may not be found, on its own
//! (format-spec.md 7.5): a batch whose flush failed can be partly there.
//!
//! The workload of the last test runs twice, alone and beside a second
//! appending thread; before every call that changes the disk it checks two
//! crash images, and the first of them is crashed again during its own
//! recovery. It also erases traces (`Store::delete_traces`) and compacts
//! after that: once a deletion has returned, no span of those traces
//! stored before it may be read again, from any image, while spans of
//! them appended after it are new data (format-spec.md 7.12.1). `SPANLOG_FAULT_ITERATIONS` (default 1) multiplies the workload
//! runs and the crash images drawn in the other tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spanlog::faults::{Call, Fault, FaultyFs, Op};
use spanlog::segment::{self, FileKind};
use spanlog::{
    AnyValue, Error, KeyValue, Options, Resource, Span, SpanId, Store, TraceId, TraceQuery,
};

const DIR: &str = "/data/store";
const HOUR: u64 = 3_600_000_000_000;
const DAY: u64 = 24 * HOUR;

fn iterations() -> u64 {
    std::env::var("SPANLOG_FAULT_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Small blocks, log blocks and segments, so that a few batches roll a
/// segment and a flush writes several log blocks; retention drops what
/// ended more than a day ago; compaction merges any two segments of an
/// hour.
fn options() -> Options {
    Options {
        block_target_bytes: 2 << 10,
        wal_block_bytes: 1 << 10,
        segment_max_bytes: 12 << 10,
        compaction_fan_in: 2,
        compaction_window: Duration::from_secs(3600),
        retention_max_age: Some(Duration::from_secs(24 * 3600)),
        ..Options::default()
    }
}

/// The spans appended: batches numbered from 0, one trace each, timed
/// from `base`.
struct Workload {
    base: u64,
}

impl Workload {
    fn new() -> Workload {
        Workload {
            base: now() - HOUR / 2,
        }
    }

    /// Runs of eight old batches (ended ten days ago, which retention
    /// drops) alternate with runs of eight recent ones.
    fn is_old(b: u64) -> bool {
        (b / 8) % 2 == 1
    }

    /// The spans of batch `b`: one trace, `n` spans.
    fn batch_of(&self, b: u64, n: u64) -> Vec<Span> {
        let mut trace = [0u8; 16];
        trace[..8].copy_from_slice(&b.to_be_bytes());
        trace[15] = 7;
        let t0 = if Self::is_old(b) {
            self.base - 10 * DAY + b * 1_000_000
        } else {
            self.base + b * 1_000_000
        };
        let resource = Arc::new(Resource {
            attributes: vec![KeyValue::new(
                "service.name",
                AnyValue::String(format!("svc-{}", b % 3)),
            )],
            ..Resource::default()
        });
        (0..n)
            .map(|i| {
                let mut id = [0u8; 8];
                id[..4].copy_from_slice(&(i as u32 + 1).to_be_bytes());
                id[4..].copy_from_slice(&(b as u32).to_be_bytes());
                Span {
                    trace_id: TraceId(trace),
                    span_id: SpanId(id),
                    parent_span_id: (i > 0).then_some(SpanId([1; 8])),
                    name: format!("op-{}", i % 5),
                    start_time_unix_nano: t0 + i * 1_000,
                    end_time_unix_nano: t0 + i * 1_000 + 500 + i,
                    attributes: vec![
                        KeyValue::new("batch", AnyValue::Int(b as i64)),
                        KeyValue::new(
                            "note",
                            AnyValue::String(format!(
                                "span {i} of {b} {}",
                                "z".repeat(i as usize * 7 % 120)
                            )),
                        ),
                    ],
                    resource: resource.clone(),
                    ..Span::default()
                }
            })
            .collect()
    }

    fn batch(&self, b: u64) -> Vec<Span> {
        self.batch_of(b, b % 9 + 4)
    }

    /// Spans of the trace of batch `b` appended again after it was erased:
    /// new spans (ids from `REBORN` on), so new data.
    fn reborn(&self, b: u64) -> Vec<Span> {
        self.batch_of(b, REBORN as u64 + 4)
            .split_off(REBORN as usize)
    }
}

/// Spans of a batch with this index or above were appended after its
/// trace was erased; a batch has at most 12 spans of its own.
const REBORN: u32 = 12;

/// Which batch and which of its spans `s` is.
fn identity(s: &Span) -> (u64, u32) {
    let b = u64::from_be_bytes(s.trace_id.0[..8].try_into().unwrap());
    let i = u32::from_be_bytes(s.span_id.0[..4].try_into().unwrap());
    (b, i - 1)
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
    v
}

/// What may and must be found in a store.
#[derive(Clone, Default)]
struct Expect {
    /// Every span appended, by identity.
    appended: BTreeMap<(u64, u32), Span>,
    /// Batches whose spans were acknowledged.
    acked: BTreeSet<u64>,
    /// Batches that retention may have dropped (whole).
    droppable: BTreeSet<u64>,
    /// Batches whose trace a `delete_traces` call was asked to erase: their
    /// spans of before it may be gone (whole).
    maybe_erased: BTreeSet<u64>,
    /// Batches whose trace a `delete_traces` call that returned `Ok`
    /// erased: their spans of before it must be gone.
    erased: BTreeSet<u64>,
    /// Erased batches whose reborn spans (`Workload::reborn`) were
    /// acknowledged.
    reborn_acked: BTreeSet<u64>,
}

impl Expect {
    fn add(&mut self, spans: &[Span]) {
        for s in spans {
            self.appended.insert(identity(s), s.clone());
        }
    }

    fn batch(&self, b: u64) -> Vec<Span> {
        sorted(
            self.appended
                .range((b, 0)..(b + 1, 0))
                .map(|(_, s)| s.clone())
                .collect(),
        )
    }
}

fn open(fs: &FaultyFs, opts: Options) -> spanlog::Result<Store> {
    Store::open_with(DIR, opts, fs.handle())
}

/// Reads `store` whole and checks it against `want`.
fn check_reads(store: &Store, want: &Expect, what: &str) -> Result<(), String> {
    let mut seen: BTreeMap<(u64, u32), usize> = BTreeMap::new();
    for s in store
        .scan(0..u64::MAX)
        .map_err(|e| format!("{what}: scan: {e}"))?
    {
        let s = s.map_err(|e| format!("{what}: scan: {e}"))?;
        let id = identity(&s);
        if want.erased.contains(&id.0) && id.1 < REBORN {
            return Err(format!("{what}: span {id:?} of an erased trace was read"));
        }
        match want.appended.get(&id) {
            Some(w) if *w == s => {}
            Some(_) => return Err(format!("{what}: span {id:?} differs from the one appended")),
            None => return Err(format!("{what}: span {id:?} was never appended")),
        }
        *seen.entry(id).or_default() += 1;
    }
    if let Some((id, n)) = seen.iter().find(|(_, n)| **n > 1) {
        return Err(format!("{what}: span {id:?} read {n} times"));
    }
    // The catalog and the search index of what recovery wrote.
    let services = store
        .services()
        .map_err(|e| format!("{what}: services: {e}"))?;
    let query = TraceQuery {
        service: Some("svc-1".into()),
        limit: 10_000,
        ..TraceQuery::default()
    };
    let found = store
        .find_traces(&query)
        .map_err(|e| format!("{what}: find_traces: {e}"))?;
    let traces: BTreeSet<u64> = seen
        .keys()
        .filter(|(b, _)| b % 3 == 1)
        .map(|(b, _)| *b)
        .collect();
    let found: BTreeSet<u64> = found
        .iter()
        .map(|t| u64::from_be_bytes(t.trace_id.0[..8].try_into().unwrap()))
        .collect();
    if found != traces
        || services.len()
            != seen
                .keys()
                .map(|(b, _)| b % 3)
                .collect::<BTreeSet<_>>()
                .len()
    {
        return Err(format!(
            "{what}: find_traces found {} traces of svc-1, the scan {}; services {services:?}",
            found.len(),
            traces.len()
        ));
    }
    let checked: BTreeSet<u64> = want
        .acked
        .iter()
        .chain(&want.erased)
        .chain(&want.reborn_acked)
        .copied()
        .collect();
    for b in &checked {
        let all = want.batch(*b);
        let got = store
            .get_trace(all[0].trace_id)
            .map_err(|e| format!("{what}: get_trace of batch {b}: {e}"))?;
        // The spans of before an erasure, and those appended after it.
        let reborn = |s: &&Span| identity(s).1 >= REBORN;
        let part = |v: &[Span], new: bool| -> Vec<Span> {
            v.iter().filter(|s| reborn(s) == new).cloned().collect()
        };
        let dropped = |got: &[Span]| got.is_empty() && want.droppable.contains(b);
        let (old, got_old) = (part(&all, false), part(&got, false));
        let old_ok = if want.erased.contains(b) {
            got_old.is_empty()
        } else {
            !want.acked.contains(b)
                || got_old == old
                || dropped(&got_old)
                || (got_old.is_empty() && want.maybe_erased.contains(b))
        };
        let (new, got_new) = (part(&all, true), part(&got, true));
        let new_ok = !want.reborn_acked.contains(b) || got_new == new || dropped(&got_new);
        if !old_ok || !new_ok {
            return Err(format!(
                "{what}: batch {b}: {} of {} spans read back ({} of {} appended after an erasure; erased: {})",
                got.len(),
                all.len(),
                got_new.len(),
                new.len(),
                want.erased.contains(b)
            ));
        }
        let scanned = seen.range((*b, 0)..(*b + 1, 0)).count();
        if scanned != got.len() {
            return Err(format!(
                "{what}: batch {b}: the scan found {scanned} spans, get_trace {}",
                got.len()
            ));
        }
    }
    Ok(())
}

fn check_verify(fs: &FaultyFs, what: &str) -> Result<(), String> {
    let report = spanlog::verify::verify_path_in(&fs.handle(), Path::new(DIR))
        .map_err(|e| format!("{what}: verify: {e}"))?;
    if !report.is_clean() {
        return Err(format!("{what}: verify: {:?}", report.problems));
    }
    Ok(())
}

/// Opens the store on `fs` read-only, then as a writer, reads it whole
/// each time, verifies it, and leaves it closed.
fn check_store(fs: &FaultyFs, want: &Expect) -> Result<(), String> {
    let exists = fs.list(Path::new("/data")).contains(&"store".to_string());
    if exists {
        let ro = Store::open_with(DIR, Options::read_only(), fs.handle())
            .map_err(|e| format!("read-only open: {e}"))?;
        check_reads(&ro, want, "read-only open")?;
        ro.close().map_err(|e| e.to_string())?;
    } else if !want.acked.is_empty() {
        return Err("the store directory is gone".into());
    }
    let opts = Options {
        // Nothing but recovery changes the store here.
        retention_max_age: None,
        ..options()
    };
    let store = open(fs, opts).map_err(|e| format!("writer open: {e}"))?;
    check_reads(&store, want, "writer open")?;
    store.close().map_err(|e| format!("close: {e}"))?;
    check_verify(fs, "after recovery")
}

/// A store of `n` acknowledged batches on a new file system.
fn store_with(n: u64) -> (FaultyFs, Store, Workload, Expect) {
    let fs = FaultyFs::new();
    let store = open(&fs, options()).unwrap();
    let w = Workload::new();
    let mut want = Expect::default();
    for b in 0..n {
        let spans = w.batch(b);
        want.add(&spans);
        store.append(spans).unwrap();
        store.flush().unwrap();
        want.acked.insert(b);
    }
    (fs, store, w, want)
}

fn assert_poisoned(store: &Store, w: &Workload) {
    let r = store.append(w.batch(999));
    assert!(matches!(r, Err(Error::Poisoned(_))), "append: {r:?}");
    assert!(matches!(store.flush(), Err(Error::Poisoned(_))));
    assert!(matches!(store.seal_active(), Err(Error::Poisoned(_))));
    assert!(matches!(store.compact(), Err(Error::Poisoned(_))));
}

/// An I/O error naming `file_suffix` and `op`.
fn assert_io(e: &Error, file_suffix: &str, op: &str) {
    match e {
        Error::Io { path, op: o, .. } => {
            assert!(
                path.to_string_lossy().ends_with(file_suffix) && *o == op,
                "expected {op} on a {file_suffix} file, got {e}"
            );
            let text = e.to_string();
            assert!(
                text.contains(&*path.to_string_lossy()) && text.contains(op),
                "{text}"
            );
        }
        other => panic!("expected an I/O error during {op}, got {other:?}"),
    }
}

/// Checks a few crash images of `fs`, then `fs` itself reopened.
fn check_images_and_reopen(fs: &FaultyFs, want: &Expect) {
    for seed in 0..8 * iterations() {
        let image = fs.crash_image(seed);
        check_store(&image, want).unwrap_or_else(|e| panic!("crash image {seed}: {e}"));
    }
    check_store(fs, want).unwrap_or_else(|e| panic!("reopen: {e}"));
}

/// The writer writes more after a reopen: it is not stuck.
fn write_more(fs: &FaultyFs, w: &Workload, want: &mut Expect, b: u64) {
    let store = open(fs, options()).unwrap();
    let spans = w.batch(b);
    want.add(&spans);
    store.append(spans).unwrap();
    store.flush().unwrap();
    want.acked.insert(b);
    store.close().unwrap();
    check_store(fs, want).unwrap();
}

#[test]
fn write_failures_mid_batch_poison_the_writer_and_lose_nothing_acknowledged() {
    let faults: [(&str, Fault); 3] = [
        ("ENOSPC", Fault::NoSpace),
        ("EIO", Fault::Io),
        ("short write, then ENOSPC", Fault::ShortWrite),
    ];
    for (name, fault) in faults {
        let (fs, store, w, mut want) = store_with(6);
        // Appended as five batches, it takes several log blocks (a block
        // ends where a batch does): the second one fails.
        let big = w.batch_of(100, 40);
        want.add(&big);
        let mut writes = 0;
        fs.fail_when(move |c: &Call| {
            if c.op != Op::Write || !c.touches(".wal") {
                return None;
            }
            writes += 1;
            match (writes, fault) {
                (2, f) => Some(f),
                // What follows a short write finds the disk full.
                (n, Fault::ShortWrite) if n > 2 => Some(Fault::NoSpace),
                _ => None,
            }
        });
        for part in big.chunks(8) {
            store.append(part.to_vec()).unwrap();
        }
        let e = store.flush().unwrap_err();
        assert_io(&e, ".wal", "append block");
        assert_poisoned(&store, &w);
        // Reads go on, from memory too.
        assert_eq!(
            store.get_trace(big[0].trace_id).unwrap(),
            sorted(big.clone()),
            "{name}"
        );
        check_reads(&store, &want, name).unwrap();
        fs.clear_faults();
        drop(store);
        check_images_and_reopen(&fs, &want);
        write_more(&fs, &w, &mut want, 101);
    }
}

#[test]
fn a_full_disk_fails_the_flush_that_meets_it() {
    let (fs, store, w, mut want) = store_with(4);
    fs.set_capacity(Some(fs.used_bytes() + 1500));
    let big = w.batch_of(100, 40);
    want.add(&big);
    // Five batches, so several log blocks.
    for part in big.chunks(8) {
        store.append(part.to_vec()).unwrap();
    }
    let e = store.flush().unwrap_err();
    assert_io(&e, ".wal", "append block");
    assert!(e.to_string().contains("No space left on device"), "{e}");
    assert_poisoned(&store, &w);
    drop(store);
    fs.set_capacity(None);
    check_images_and_reopen(&fs, &want);
    write_more(&fs, &w, &mut want, 101);
}

#[test]
fn fsync_failures_poison_the_writer_and_lose_nothing_acknowledged() {
    // The fsync of a flush, and the fsync of the next log created when a
    // batch fills the table.
    for (case, spans, file, op) in [
        ("flush", 6u64, ".wal", "fsync write-ahead log"),
        ("new log", 60, "00000000000000000002.wal", "fsync segment"),
    ] {
        let (fs, store, w, mut want) = store_with(5);
        let batch = w.batch_of(100, spans);
        want.add(&batch);
        fs.fail_nth(Op::SyncFile, ".wal", 1, false, Fault::Io);
        let e = store
            .append(batch.clone())
            .and_then(|_| store.flush())
            .unwrap_err();
        assert_io(&e, file, op);
        assert_poisoned(&store, &w);
        assert_eq!(
            store.get_trace(batch[0].trace_id).unwrap(),
            sorted(batch),
            "{case}"
        );
        check_reads(&store, &want, case).unwrap();
        drop(store);
        check_images_and_reopen(&fs, &want);
        write_more(&fs, &w, &mut want, 101);
    }
}

/// A flush that wrote its blocks fsyncs the log outside the writer's lock;
/// meanwhile another thread's append fills the table, and the freeze
/// fsyncs the same log, and fails. The kernel may then have dropped the
/// pages of the flush's blocks and report success to the flush's own
/// fsync: that success must not acknowledge anything.
#[test]
fn a_failed_fsync_is_not_hidden_by_a_later_one_of_the_same_log() {
    let (fs, store, w, mut want) = store_with(3);
    let small = w.batch_of(100, 3);
    let big = w.batch_of(101, 80);
    want.add(&small);
    want.add(&big);
    let flusher = std::thread::current().id();
    fs.fail_when(move |c: &Call| {
        (c.op == Op::SyncFile && c.touches(".wal") && c.thread != flusher).then_some(Fault::Io)
    });
    let fired = std::sync::atomic::AtomicBool::new(false);
    let other = store.clone();
    // The freezing append's outcome, once it is known.
    let frozen = Arc::new((Mutex::new(None), std::sync::Condvar::new()));
    let done = frozen.clone();
    fs.set_hook(move |_, c| {
        if c.op != Op::SyncFile || c.thread != flusher || fired.swap(true, Ordering::SeqCst) {
            return;
        }
        // The flush is about to fsync: another appender freezes the log
        // first. (If fsyncs of the log are serialised, it waits for this
        // one; the flush goes on after a while, and the freeze fails after
        // it.)
        let (other, big, out) = (other.clone(), big.clone(), done.clone());
        std::thread::spawn(move || {
            let r = other.append(big);
            *out.0.lock().unwrap() = Some(r.is_ok());
            out.1.notify_all();
        });
        let slot = done.0.lock().unwrap();
        let _ = done
            .1
            .wait_timeout_while(slot, Duration::from_millis(300), |r| r.is_none());
    });
    store.append(small).unwrap();
    let flushed = store.flush();
    let slot = frozen.0.lock().unwrap();
    let appended = frozen.1.wait_while(slot, |r| r.is_none()).unwrap().unwrap();
    assert!(!appended, "the freeze did not fail");
    fs.clear_hook();
    fs.clear_faults();
    if flushed.is_ok() {
        want.acked.insert(100);
    }
    assert_poisoned(&store, &w);
    drop(store);
    check_images_and_reopen(&fs, &want);
}

#[test]
fn concurrent_flushes_sharing_a_failed_fsync_all_fail() {
    let (fs, store, w, mut want) = store_with(3);
    for b in 10..18 {
        want.add(&w.batch(b));
    }
    fs.fail_nth(Op::SyncFile, ".wal", 1, true, Fault::Io);
    let oks: Vec<bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (10..18u64)
            .map(|b| {
                let (store, spans) = (&store, w.batch(b));
                s.spawn(move || store.append(spans).is_ok() && store.flush().is_ok())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        oks.iter().all(|ok| !ok),
        "a flush succeeded without an fsync: {oks:?}"
    );
    assert_poisoned(&store, &w);
    fs.clear_faults();
    drop(store);
    check_images_and_reopen(&fs, &want);
}

/// Appends without flushing until a table is frozen and handed to the
/// sealer; returns the batch numbers appended.
fn fill_until_frozen(store: &Store, w: &Workload, want: &mut Expect, from: u64) -> Vec<u64> {
    let sealed = store.stats().unwrap().sealed_segments;
    let mut out = Vec::new();
    for b in from.. {
        let spans = w.batch(b);
        want.add(&spans);
        if store.append(spans).is_err() {
            break;
        }
        out.push(b);
        let s = store.stats().unwrap();
        if s.active_segments > 1 || s.sealed_segments > sealed {
            break;
        }
    }
    out
}

#[test]
fn a_full_disk_while_sealing_keeps_reads_and_recovers_once_space_is_freed() {
    let (fs, store, w, mut want) = store_with(3);
    // Room for the next log's header, not for a segment.
    fs.set_capacity(Some(fs.used_bytes() + 200));
    let pending = fill_until_frozen(&store, &w, &mut want, 20);
    let e = store.flush().unwrap_err();
    let Error::Poisoned(why) = &e else {
        panic!("expected the sealer's failure, got {e:?}");
    };
    assert!(
        why.contains(".seg.tmp") && why.contains("No space left on device"),
        "{why}"
    );
    assert_poisoned(&store, &w);
    // Every span is still readable, also those of the table that could
    // not be sealed.
    for b in want.acked.iter().chain(&pending) {
        let batch = want.batch(*b);
        assert_eq!(store.get_trace(batch[0].trace_id).unwrap(), batch);
    }
    assert!(
        !fs.list(Path::new(DIR))
            .iter()
            .any(|n| n.ends_with(".seg.tmp")),
        "{:?}",
        fs.list(Path::new(DIR))
    );
    drop(store);
    // A writer open cannot seal what it recovers while the disk is full.
    let Err(e) = open(&fs, options()) else {
        panic!("a writer open sealed a log on a full disk");
    };
    assert!(e.to_string().contains("No space left on device"), "{e}");
    fs.set_capacity(None);
    check_images_and_reopen(&fs, &want);
    write_more(&fs, &w, &mut want, 101);
}

/// A store of several sealed segments of recent spans (one compaction
/// window), all acknowledged.
fn sealed_store() -> (FaultyFs, Store, Workload, Expect) {
    let (fs, store, w, mut want) = store_with(0);
    for b in (0..48).filter(|b| !Workload::is_old(*b)) {
        let spans = w.batch(b);
        want.add(&spans);
        store.append(spans).unwrap();
        if b % 4 == 3 {
            store.seal_active().unwrap();
        }
        want.acked.insert(b);
    }
    store.flush().unwrap();
    (fs, store, w, want)
}

fn no_retention() -> Options {
    Options {
        retention_max_age: None,
        ..options()
    }
}

fn sealed_files(fs: &FaultyFs) -> Vec<String> {
    fs.list(Path::new(DIR))
        .into_iter()
        .filter(|n| segment::parse_name(n).is_some_and(|(_, k)| k == FileKind::Segment))
        .collect()
}

#[test]
fn a_full_disk_while_compacting_keeps_the_store_usable_and_recovers_once_space_is_freed() {
    let (fs, store, w, mut want) = sealed_store();
    drop(store);
    let store = open(&fs, no_retention()).unwrap();
    let before = sealed_files(&fs);
    assert!(before.len() >= 6, "{before:?}");
    let used = fs.used_bytes();
    fs.set_capacity(Some(used + 512));
    let e = store.compact().unwrap_err();
    assert_io(&e, ".seg.tmp", "append block");
    // Nothing is left of the merge, and the store goes on: reads, and
    // writes, in the room there is.
    assert_eq!(sealed_files(&fs), before);
    assert!(!fs.list(Path::new(DIR)).iter().any(|n| n.ends_with(".tmp")));
    assert_eq!(fs.used_bytes(), used);
    assert!(store.maintenance_status().last_error.is_some());
    check_reads(&store, &want, "after the failed merge").unwrap();
    let small = w.batch_of(200, 2);
    want.add(&small);
    store.append(small).unwrap();
    store.flush().unwrap();
    want.acked.insert(200);
    fs.set_capacity(None);
    let report = store.compact().unwrap();
    assert!(!report.merged.is_empty());
    check_reads(&store, &want, "after compaction").unwrap();
    assert!(sealed_files(&fs).len() < before.len());
    drop(store);
    check_images_and_reopen(&fs, &want);
}

#[test]
fn failed_reads_are_errors_naming_the_file_and_change_nothing() {
    let (fs, store, w, mut want) = sealed_store();
    let tail = w.batch(200);
    want.add(&tail);
    store.append(tail).unwrap();
    store.flush().unwrap();
    want.acked.insert(200);
    // A reader beside the writer: the logs are read, the segments mapped.
    for (op, file, what) in [
        (Op::ReadDir, "store", "list store directory"),
        (Op::Map, ".seg", "mmap segment"),
        (Op::Open, ".seg", "open segment"),
        (Op::Read, ".wal", "read write-ahead log"),
    ] {
        fs.fail_nth(op, file, 1, false, Fault::Io);
        let Err(e) = Store::open_with(DIR, Options::read_only(), fs.handle()) else {
            panic!("a read-only open survived a failed {op:?}");
        };
        assert_io(&e, file, what);
        fs.clear_faults();
    }
    // The writer goes on, and a writer open that cannot read a segment
    // fails without changing anything.
    check_reads(&store, &want, "after failed reads").unwrap();
    drop(store);
    let before = fs.list(Path::new(DIR));
    fs.fail_nth(Op::Map, ".seg", 3, false, Fault::Io);
    let Err(e) = open(&fs, options()) else {
        panic!("a writer open survived a failed map");
    };
    assert_io(&e, ".seg", "mmap segment");
    assert_eq!(fs.list(Path::new(DIR)), before);
    fs.clear_faults();
    check_images_and_reopen(&fs, &want);
}

/// Fails the first directory fsync that follows, on the same thread, a
/// rename to a sealed name; with `and_remove`, also the removal of that
/// name.
fn fail_dir_sync_after_rename(fs: &FaultyFs, and_remove: bool) {
    let mut renamed: Option<(std::thread::ThreadId, std::path::PathBuf)> = None;
    let mut done = false;
    fs.fail_when(move |c: &Call| {
        if done {
            return None;
        }
        match c.op {
            Op::Rename
                if c.to
                    .as_ref()
                    .is_some_and(|t| t.extension().is_some_and(|e| e == "seg")) =>
            {
                renamed = Some((c.thread, c.to.clone().unwrap()));
                None
            }
            Op::SyncDir if renamed.as_ref().is_some_and(|r| r.0 == c.thread) => {
                done = !and_remove;
                Some(Fault::Io)
            }
            Op::Remove if and_remove && renamed.as_ref().is_some_and(|r| r.1 == c.path) => {
                done = true;
                Some(Fault::Io)
            }
            _ => None,
        }
    });
}

#[test]
fn a_failed_directory_fsync_after_sealing_a_segment() {
    let (fs, store, w, mut want) = store_with(4);
    let batch = w.batch(50);
    want.add(&batch);
    store.append(batch).unwrap();
    fail_dir_sync_after_rename(&fs, false);
    let e = store.seal_active().unwrap_err();
    assert!(
        matches!(e, Error::Poisoned(ref why) if why.contains("fsync directory")),
        "{e}"
    );
    // The log holds the table: its segment must not be found in its place
    // by this process, and either is right after a crash.
    assert!(
        sealed_files(&fs).is_empty(),
        "{:?}",
        fs.list(Path::new(DIR))
    );
    assert_poisoned(&store, &w);
    // The table is still read, from memory.
    assert_eq!(
        store.get_trace(want.batch(50)[0].trace_id).unwrap(),
        want.batch(50)
    );
    check_reads(&store, &want, "poisoned").unwrap();
    fs.clear_faults();
    drop(store);
    check_images_and_reopen(&fs, &want);
}

#[test]
fn a_failed_directory_fsync_after_a_merge_leaves_its_inputs_in_force() {
    let (fs, store, _w, want) = sealed_store();
    drop(store);
    let store = open(&fs, no_retention()).unwrap();
    let before = sealed_files(&fs);
    fail_dir_sync_after_rename(&fs, false);
    let e = store.compact().unwrap_err();
    assert_io(&e, "store", "fsync directory");
    // The merged segment was taken back: the inputs stay the segments.
    assert_eq!(sealed_files(&fs), before);
    check_reads(&store, &want, "after the failed merge").unwrap();
    // Crashes now find the inputs or the merged segment, never both.
    for seed in 0..8 * iterations() {
        check_store(&fs.crash_image(seed), &want).unwrap_or_else(|e| panic!("image {seed}: {e}"));
    }
    fs.clear_faults();
    let report = store.compact().unwrap();
    assert!(!report.merged.is_empty());
    check_reads(&store, &want, "after compaction").unwrap();
    drop(store);
    check_images_and_reopen(&fs, &want);
}

#[test]
fn a_merged_segment_that_cannot_be_taken_back_poisons_the_writer() {
    let (fs, store, w, want) = sealed_store();
    drop(store);
    let store = open(&fs, no_retention()).unwrap();
    fail_dir_sync_after_rename(&fs, true);
    let e = store.compact().unwrap_err();
    assert_io(&e, "store", "fsync directory");
    // Merging the same inputs again would leave two segments replacing
    // them: the writer refuses to go on.
    assert_poisoned(&store, &w);
    check_reads(&store, &want, "poisoned").unwrap();
    fs.clear_faults();
    drop(store);
    check_images_and_reopen(&fs, &want);
}

#[test]
fn a_merged_segment_that_cannot_be_opened_is_not_left_to_supersede_its_inputs() {
    let (fs, store, _w, want) = sealed_store();
    drop(store);
    let store = open(&fs, no_retention()).unwrap();
    let before = sealed_files(&fs);
    let mut armed = false;
    fs.fail_when(move |c: &Call| {
        // The map of the merged segment, once it is sealed.
        armed |= c.op == Op::Rename;
        (armed && c.op == Op::Map).then(|| {
            armed = false;
            Fault::Io
        })
    });
    let e = store.compact().unwrap_err();
    assert_io(&e, ".seg", "mmap segment");
    assert_eq!(sealed_files(&fs), before);
    fs.clear_faults();
    store.compact().unwrap();
    check_reads(&store, &want, "after compaction").unwrap();
    drop(store);
    check_images_and_reopen(&fs, &want);
}

/// What the crash images of one workload run found.
#[test]
fn a_failed_tombstone_write_or_fsync_poisons_the_writer_and_acknowledges_no_deletion() {
    // (fault, on which deletion, file, operation named by the error)
    let cases = [
        (Op::Write, 1, "tombstones.log.tmp", "write tombstone file"),
        (
            Op::SyncFile,
            1,
            "tombstones.log.tmp",
            "write tombstone file",
        ),
        (Op::SyncDir, 1, "store", "fsync directory"),
        (Op::Write, 2, "tombstones.log", "append to tombstone file"),
        (Op::SyncFile, 2, "tombstones.log", "fsync tombstone file"),
    ];
    for (op, failing, file, what) in cases {
        let (fs, store, w, mut want) = store_with(6);
        let trace = |b: u64| w.batch(b)[0].trace_id;
        if failing == 2 {
            // The first deletion creates the file, the second appends.
            store.delete_traces(&[trace(1)]).unwrap();
            want.erased.insert(1);
        }
        if op == Op::SyncDir {
            // The directory fsync after the rename of the new file.
            let mut renamed = false;
            fs.fail_when(move |c: &Call| {
                renamed |= c.op == Op::Rename && c.touches("tombstones");
                (renamed && c.op == Op::SyncDir).then_some(Fault::Io)
            });
        } else {
            fs.fail_nth(op, "tombstones", 1, false, Fault::Io);
        }
        want.maybe_erased.extend([2, 3]);
        let e = store.delete_traces(&[trace(2), trace(3)]).unwrap_err();
        assert_io(&e, file, what);
        assert_poisoned(&store, &w);
        assert!(matches!(
            store.delete_traces(&[trace(4)]),
            Err(Error::Poisoned(_))
        ));
        check_reads(&store, &want, what).unwrap();
        fs.clear_faults();
        drop(store);
        check_images_and_reopen(&fs, &want);
        write_more(&fs, &w, &mut want, 101);
    }
}

#[derive(Default)]
struct Findings {
    /// Images checked, by the step of the protocol they were taken in.
    images: BTreeMap<&'static str, u64>,
    failures: Vec<String>,
}

/// The step of the write protocol a call belongs to, given what the
/// workload was doing.
fn step(call: &Call, doing: &str) -> &'static str {
    let name = |p: &Path| p.to_string_lossy().into_owned();
    let path = name(&call.path);
    let to = call.to.as_deref().map(name).unwrap_or_default();
    let sealing = path.ends_with(".seg.tmp") || to.ends_with(".seg");
    match (call.op, doing) {
        _ if path.contains("tombstones") => "erasure",
        (Op::Remove, "retention") if path.ends_with(".seg") => "retention",
        (_, "compaction") if sealing || path.ends_with(".seg") => "compaction",
        _ if sealing => "seal",
        (Op::Create, _) if path.ends_with(".wal") => "roll",
        (Op::Remove, _) if path.ends_with(".wal") => "log deletion",
        _ if path.ends_with(".wal") => "log append",
        (Op::SyncDir, _) => "directory fsync",
        _ => "other",
    }
}

type Nested = Arc<Mutex<Option<Result<(), String>>>>;

/// Arranges for `image` to be crashed at one of the first calls that
/// change it (chosen by `seed`), which come from the recovery of a writer
/// open: that second image is checked when it is taken, and the outcome
/// left in the slot returned (empty if the open made fewer calls).
fn crash_during_recovery(image: &FaultyFs, seed: u64, expect: &Expect) -> Nested {
    let slot: Nested = Arc::new(Mutex::new(None));
    let at = seed % 12;
    let seen = std::sync::atomic::AtomicU64::new(0);
    let (out, expect) = (slot.clone(), expect.clone());
    image.set_hook(move |fs, call| {
        if call.op.mutates() && seen.fetch_add(1, Ordering::SeqCst) == at {
            let again = fs.crash_image(seed.rotate_left(17));
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                check_store(&again, &expect)
            }))
            .unwrap_or_else(|_| Err("panicked".into()));
            *out.lock().unwrap() = Some(r);
        }
    });
    slot
}

/// Runs the workload, checking `per_step` crash images before every call
/// that changes the disk: appends and flushes that roll segments (by size
/// and by explicit seals), compactions (with the retention they run
/// first), a policy merge, an erasure of traces in sealed segments, in the
/// log and only in memory followed by a compaction, retention, and close;
/// with `concurrent`, another thread appends and flushes meanwhile.
fn crash_every_step(seed: u64, per_step: u64, concurrent: bool) -> Findings {
    let fs = FaultyFs::new();
    let w = Workload::new();
    let want = Arc::new(Mutex::new(Expect::default()));
    let doing = Arc::new(Mutex::new("open"));
    let findings = Arc::new(Mutex::new(Findings::default()));
    {
        let (want, doing, findings) = (want.clone(), doing.clone(), findings.clone());
        fs.set_hook(move |fs, call| {
            if !call.op.mutates() {
                return;
            }
            let step = step(call, &doing.lock().unwrap());
            for k in 0..per_step {
                // What was acknowledged before the crash, and what may be
                // found after it (the workload goes on on other threads).
                let acked = want.lock().unwrap().acked.clone();
                let image_seed =
                    seed ^ (call.index * per_step + k).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let image = fs.crash_image(image_seed);
                let expect = Expect {
                    acked,
                    ..want.lock().unwrap().clone()
                };
                // The first image of each step is also crashed during its
                // own recovery, at one of its first calls that change it.
                let nested = (k == 0).then(|| crash_during_recovery(&image, image_seed, &expect));
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check_store(&image, &expect)
                }));
                let mut f = findings.lock().unwrap();
                *f.images.entry(step).or_default() += 1;
                let failed = match r {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(_) => Some("panicked".to_string()),
                };
                let nested = nested.and_then(|n| n.lock().unwrap().take());
                if let Some(n) = &nested {
                    *f.images.entry("recovery").or_default() += 1;
                    if let Err(e) = n {
                        f.failures.push(format!(
                            "image {image_seed} before call {} ({:?} {}, {step}), crashed again while recovering: {e}",
                            call.index,
                            call.op,
                            call.path.display()
                        ));
                    }
                }
                if let Some(e) = failed {
                    f.failures.push(format!(
                        "image {image_seed} before call {} ({:?} {}, {step}): {e}",
                        call.index,
                        call.op,
                        call.path.display()
                    ));
                }
            }
        });
    }
    let store = open(&fs, options()).unwrap();
    let batches = 96u64;
    let set = |what| *doing.lock().unwrap() = what;
    // Appends that returned: a flush called after them acknowledges them.
    let returned = Mutex::new(BTreeSet::new());
    let append = |b: u64| {
        let spans = w.batch(b);
        want.lock().unwrap().add(&spans);
        store.append(spans).unwrap();
        returned.lock().unwrap().insert(b);
    };
    // Runs a flush, seal or close: on success, what was appended before
    // the call is acknowledged.
    let acknowledge = |call: &dyn Fn() -> spanlog::Result<()>| {
        let before = returned.lock().unwrap().clone();
        call().unwrap();
        want.lock().unwrap().acked.extend(before);
    };
    std::thread::scope(|scope| {
        if concurrent {
            // Another client appends recent batches and flushes meanwhile.
            scope.spawn(|| {
                let mut rng = spanlog::gen::Rng::new(seed ^ 1);
                for b in (1000..).filter(|b| !Workload::is_old(*b)).take(40) {
                    append(b);
                    if rng.chance(0.6) {
                        acknowledge(&|| store.flush());
                    }
                }
            });
        }
        let mut rng = spanlog::gen::Rng::new(seed);
        for b in 0..batches {
            set("append");
            append(b);
            if b == ERASE_AT {
                erase(&store, &w, &want, &doing);
            }
            if rng.chance(0.7) {
                set("flush");
                acknowledge(&|| store.flush());
            }
            if b % 8 == 7 {
                // Old and recent spans in segments of their own, so that
                // retention finds whole segments to drop.
                set("seal");
                acknowledge(&|| store.seal_active());
            }
            if b == 31 || b == 63 {
                // Compaction runs retention first: from here on, old
                // batches may be gone.
                let old: Vec<u64> = (0..batches).filter(|b| Workload::is_old(*b)).collect();
                want.lock().unwrap().droppable.extend(old);
                set("compaction");
                let report = store.compact().unwrap();
                assert!(!report.merged.is_empty());
                assert!(concurrent || !report.dropped.is_empty());
            }
            if b == 47 {
                set("compaction");
                store.maintain().unwrap();
            }
            if b == ERASE_AT {
                // Rewrites the segments holding erased spans.
                set("compaction");
                let report = store.compact().unwrap();
                assert!(report.spans_erased > 0, "{report:?}");
            }
        }
    });
    set("retention");
    let report = store.apply_retention().unwrap();
    assert!(concurrent || !report.dropped.is_empty());
    set("close");
    acknowledge(&|| store.close());
    fs.clear_hook();
    let expect = want.lock().unwrap().clone();
    check_store(&fs, &expect).unwrap();
    let mut f = findings.lock().unwrap();
    std::mem::take(&mut *f)
}

/// The batch after whose append the workload erases traces.
const ERASE_AT: u64 = 53;

/// Erases the traces of batches in sealed segments (3, 20), flushed
/// perhaps (52) and only appended (53), then appends and acknowledges new
/// spans of one of them, which must stay; then erases one more trace (a
/// record appended to the tombstone file).
fn erase(store: &Store, w: &Workload, want: &Mutex<Expect>, doing: &Mutex<&'static str>) {
    let delete = |gone: &[u64]| {
        let ids: Vec<TraceId> = gone.iter().map(|b| w.batch(*b)[0].trace_id).collect();
        want.lock().unwrap().maybe_erased.extend(gone);
        *doing.lock().unwrap() = "erasure";
        store.delete_traces(&ids).unwrap();
        want.lock().unwrap().erased.extend(gone);
        for id in ids {
            assert_eq!(store.get_trace(id).unwrap(), Vec::new());
        }
    };
    delete(&[3, 20, 52, ERASE_AT]);
    let again = w.reborn(52);
    want.lock().unwrap().add(&again);
    *doing.lock().unwrap() = "append";
    store.append(again).unwrap();
    *doing.lock().unwrap() = "flush";
    store.flush().unwrap();
    want.lock().unwrap().reborn_acked.insert(52);
    delete(&[49]);
}

#[test]
fn crash_images_at_every_step_of_roll_seal_compaction_and_retention() {
    let base = now();
    let runs = iterations();
    for run in 0..2 * runs {
        let seed = base.wrapping_add(run);
        let f = crash_every_step(seed, 2, run % 2 == 1);
        println!("seed {seed}: crash images checked {:?}", f.images);
        assert!(
            f.failures.is_empty(),
            "seed {seed}: {} of {} crash images failed, first ones:\n{}",
            f.failures.len(),
            f.images.values().sum::<u64>(),
            f.failures[..f.failures.len().min(10)].join("\n")
        );
        for step in [
            "recovery",
            "log append",
            "roll",
            "seal",
            "log deletion",
            "compaction",
            "retention",
            "directory fsync",
            "erasure",
        ] {
            assert!(
                f.images.get(step).is_some_and(|n| *n > 0),
                "no crash image taken while: {step} ({:?})",
                f.images
            );
        }
    }
}
