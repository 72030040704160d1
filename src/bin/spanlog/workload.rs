//! What `demo` and `bench` share: the workload, the store options, the
//! directory they write to, and how they measure.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::time::Instant;

use spanlog::gen::{GenOptions, Generator};
use spanlog::segment::parse_name;
use spanlog::store::LOCK_FILE;
use spanlog::{Options, Span, TraceId};

use crate::error::{io_error, CliError, CliResult};

/// Fixed, so every run ingests the same spans and figures are comparable.
pub const SEED: u64 = 42;
/// Spans per append call, about what one collector export request carries.
pub const BATCH_SPANS: usize = 1000;
/// Uncompressed span bytes per segment: small enough that a million spans
/// fill several sealed segments.
pub const SEGMENT_MAX_BYTES: u64 = 16 << 20;

/// The default workload: a simulated shop of 30 services.
pub fn generator() -> Generator {
    Generator::new(GenOptions {
        seed: SEED,
        ..GenOptions::default()
    })
}

/// Default options but for the segment size.
pub fn store_options() -> Options {
    Options {
        segment_max_bytes: SEGMENT_MAX_BYTES,
        ..Options::default()
    }
}

/// Makes sure `dir` can take a fresh store. A directory already holding a
/// store is refused unless `force`; then only its segment, log and lock
/// file are deleted, never anything else.
pub fn prepare_dir(dir: &Path, force: bool) -> CliResult {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error(dir, "use directory", e)),
    };
    let files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_store_file(p))
        .collect();
    if files.is_empty() {
        return Ok(());
    }
    if !force {
        return Err(CliError::usage(format!(
            "{} already holds a spanlog store; pass --force to delete its segment and log files and start over",
            dir.display()
        )));
    }
    clear_store(dir, &files)
}

fn is_store_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == LOCK_FILE || parse_name(n).is_some())
}

/// Deletes the store's files while holding its writer lock, so segments are
/// never pulled from under a writer that is still running.
fn clear_store(dir: &Path, files: &[PathBuf]) -> CliResult {
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_error(&lock_path, "open", e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(CliError::usage(format!(
                "{} is in use by another process",
                dir.display()
            )))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io_error(&lock_path, "lock", e)),
    }
    for f in files.iter().filter(|f| **f != lock_path) {
        std::fs::remove_file(f).map_err(|e| io_error(f, "remove", e))?;
    }
    drop(lock);
    std::fs::remove_file(&lock_path).map_err(|e| io_error(&lock_path, "remove", e))
}

/// Distinct trace ids in the order they were first seen.
#[derive(Default)]
pub struct TraceIds {
    seen: HashSet<TraceId>,
    pub order: Vec<TraceId>,
}

impl TraceIds {
    pub fn add(&mut self, spans: &[Span]) {
        for s in spans {
            if self.seen.insert(s.trace_id) {
                self.order.push(s.trace_id);
            }
        }
    }

    /// About `n` ids spread evenly over the ingest: every k-th one.
    pub fn sample(&self, n: usize) -> Vec<TraceId> {
        let step = (self.order.len() / n.max(1)).max(1);
        self.order.iter().step_by(step).take(n).copied().collect()
    }
}

/// Latency samples in nanoseconds.
pub struct Latencies(Vec<u64>);

impl Latencies {
    pub fn new(mut nanos: Vec<u64>) -> Self {
        nanos.sort_unstable();
        Latencies(nanos)
    }

    /// Nearest-rank percentile (`p` in 0..=100); 0 without samples.
    pub fn percentile(&self, p: f64) -> u64 {
        if self.0.is_empty() {
            return 0;
        }
        let rank = (p / 100.0 * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn max(&self) -> u64 {
        self.0.last().copied().unwrap_or(0)
    }
}

/// Runs `f` and returns its result and how long it took in nanoseconds.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed().as_nanos() as u64)
}

/// Spans per second for `n` spans in `nanos`.
pub fn per_sec(n: u64, nanos: u64) -> f64 {
    if nanos == 0 {
        return 0.0;
    }
    n as f64 * 1e9 / nanos as f64
}

/// Peak resident memory of this process so far (VmHWM), in MiB; `None`
/// where /proc is not available.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// First start and last start over the store's blocks.
pub fn time_span(store: &spanlog::Store) -> CliResult<Option<(u64, u64)>> {
    let segments = store.segments()?;
    let blocks = segments.iter().flat_map(|s| s.blocks.iter());
    let min = blocks.clone().map(|b| b.min_start).min();
    let max = blocks.map(|b| b.max_start).max();
    Ok(min.zip(max))
}
