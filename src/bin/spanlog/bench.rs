//! `spanlog bench`: single-threaded ingest, lookup, scan and query figures
//! on a fresh store.

mod lifecycle;
mod queries;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use spanlog::gen::Rng;
use spanlog::{otlp, Options, Span, Store, TraceId};

use crate::error::{CliError, CliResult};
use crate::format::{count, duration, micros, rate, round};
use crate::workload::{self, per_sec, timed, Latencies, TraceIds, BATCH_SPANS};

/// Lookups of trace ids that are not in the store.
const ABSENT_LOOKUPS: usize = 1000;
/// Width of the windowed scans.
const WINDOW_NANOS: u64 = 60_000_000_000;

/// Measure ingest, lookup and scan speed and storage size, single-threaded.
///
/// The workload (the same as `demo`'s) is generated in full before the
/// clock starts, so only the store is timed: appends of 1,000-span batches
/// plus one final flush, a segment per 16 MiB of uncompressed spans.
/// Lookups run after a read-only reopen, twice over the same random trace
/// ids; the second, warm pass is reported. Searches (`find_traces` for one
/// service in a 1-minute window, alone and with an attribute condition)
/// and catalog calls (`services`, `operations`) follow on the same store,
/// also warm. Sizes are compared with the same spans encoded as OTLP
/// protobuf.
#[derive(clap::Args)]
pub struct Args {
    /// Number of spans to ingest
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Number of random lookups of existing traces (per pass)
    #[arg(long, default_value_t = 10_000)]
    lookups: usize,
    /// Number of find_traces queries of each kind (per pass)
    #[arg(long, default_value_t = 300)]
    queries: usize,
    /// Print one JSON object instead of a table
    #[arg(long)]
    json: bool,
    /// Store directory to use and keep [default: a temporary directory,
    /// removed at the end]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// If DIR already holds a spanlog store, delete its segment and log files first
    #[arg(long)]
    force: bool,
    /// Measure the store's lifecycle instead: long ingests with compaction
    /// off and on, a full compaction, an ingest beside a merge, and
    /// retention under a steady ingest (stores in subdirectories of DIR)
    #[arg(long)]
    lifecycle: bool,
}

/// Every figure of a run.
#[derive(Default)]
struct Results {
    spans: u64,
    traces: u64,
    ingest_nanos: u64,
    close_nanos: u64,
    proto_bytes: u64,
    disk_bytes: u64,
    segments: usize,
    blocks: u64,
    present: Option<Latencies>,
    absent: Option<Latencies>,
    scan_all: (u64, u64),
    scan_windows: (u64, u64, usize),
    queries: Option<queries::Figures>,
    rss_generated: Option<f64>,
    rss_ingest: Option<f64>,
    rss_end: Option<f64>,
}

/// The pre-generated workload.
struct Workload {
    batches: Vec<Vec<Span>>,
    traces: Vec<TraceId>,
    proto_bytes: u64,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    if args.spans == 0 {
        return Err(CliError::usage("--spans must be at least 1"));
    }
    let dir = BenchDir::new(args)?;
    if args.lifecycle {
        note(args, &format!("stores in {}", dir.path.display()));
        return lifecycle::run(args, &dir.path, out);
    }
    note(args, &format!("store in {}", dir.path.display()));
    let mut r = Results::default();
    note(args, &format!("generating {} spans", count(args.spans)));
    let work = generate(args.spans);
    r.rss_generated = workload::peak_rss_mib();
    let traces = work.traces.clone();
    note(args, "ingesting");
    ingest(&dir.path, work, &mut r)?;
    r.rss_ingest = workload::peak_rss_mib();
    let store = Store::open(&dir.path, Options::read_only())?;
    let stats = store.stats()?;
    (r.disk_bytes, r.segments, r.blocks) = (stats.disk_bytes, stats.sealed_segments, stats.blocks);
    note(args, "looking up traces");
    r.present = Some(present_lookups(&store, &traces, args.lookups)?);
    r.absent = Some(absent_lookups(&store)?);
    note(args, "scanning");
    r.scan_all = scan_count(&store, 0..u64::MAX)?;
    r.scan_windows = scan_windows(&store)?;
    if args.queries > 0 {
        note(args, "searching");
        r.queries = Some(queries::measure(&store, args.queries)?);
    }
    r.rss_end = workload::peak_rss_mib();
    drop(store);
    if args.json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&to_json(&r)).unwrap_or_default()
        )?;
    } else {
        print_table(out, &r, &dir)?;
    }
    Ok(())
}

/// Stage notes go to stderr, so stdout holds only the results.
fn note(args: &Args, text: &str) {
    if !args.json {
        eprintln!("bench: {text}");
    }
}

/// The store directory; a temporary one is removed when this is dropped,
/// also when the run fails.
struct BenchDir {
    path: PathBuf,
    temporary: bool,
}

impl BenchDir {
    fn new(args: &Args) -> CliResult<BenchDir> {
        if let Some(dir) = &args.dir {
            workload::prepare_dir(dir, args.force)?;
            return Ok(BenchDir {
                path: dir.clone(),
                temporary: false,
            });
        }
        let nanos = spanlog::fs::now_unix_nanos();
        let name = format!("spanlog-bench-{}-{nanos}", std::process::id());
        Ok(BenchDir {
            path: std::env::temp_dir().join(name),
            temporary: true,
        })
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn generate(spans: u64) -> Workload {
    let mut gen = workload::generator();
    let mut traces = TraceIds::default();
    let mut batches = Vec::new();
    let mut proto_bytes = 0;
    let mut left = spans;
    while left > 0 {
        let batch = gen.next_batch(left.min(BATCH_SPANS as u64) as usize);
        traces.add(&batch);
        proto_bytes += otlp::to_proto(&batch).len() as u64;
        left -= batch.len() as u64;
        batches.push(batch);
    }
    Workload {
        batches,
        traces: traces.order,
        proto_bytes,
    }
}

fn ingest(dir: &Path, work: Workload, r: &mut Results) -> CliResult {
    r.spans = work.batches.iter().map(|b| b.len() as u64).sum();
    r.traces = work.traces.len() as u64;
    r.proto_bytes = work.proto_bytes;
    let store = Store::open(dir, workload::store_options())?;
    let (res, nanos) = timed(|| -> spanlog::Result<()> {
        for batch in work.batches {
            store.append(batch)?;
        }
        store.flush()
    });
    res?;
    r.ingest_nanos = nanos;
    let (res, nanos) = timed(|| store.close());
    res?;
    r.close_nanos = nanos;
    Ok(())
}

/// Random existing trace ids, looked up twice; the second (warm) pass counts.
fn present_lookups(store: &Store, traces: &[TraceId], n: usize) -> CliResult<Latencies> {
    let mut rng = Rng::new(workload::SEED);
    let ids: Vec<TraceId> = (0..n)
        .map(|_| traces[rng.below(traces.len() as u64) as usize])
        .collect();
    time_lookups(store, &ids, false)?;
    time_lookups(store, &ids, false)
}

fn absent_lookups(store: &Store) -> CliResult<Latencies> {
    // Another seed than the workload's, so no id can repeat one stored.
    let mut rng = Rng::new(!workload::SEED);
    let ids: Vec<TraceId> = (0..ABSENT_LOOKUPS)
        .map(|_| {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            id[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
            TraceId(id)
        })
        .collect();
    time_lookups(store, &ids, true)
}

fn time_lookups(store: &Store, ids: &[TraceId], absent: bool) -> CliResult<Latencies> {
    let mut nanos = Vec::with_capacity(ids.len());
    for id in ids {
        let (spans, t) = timed(|| store.get_trace(*id));
        if spans?.is_empty() != absent {
            return Err(CliError::failure(format!(
                "lookup of trace {id} returned {} spans",
                if absent { "some" } else { "no" }
            )));
        }
        nanos.push(t);
    }
    Ok(Latencies::new(nanos))
}

/// Spans read and nanoseconds taken by one scan.
fn scan_count(store: &Store, range: std::ops::Range<u64>) -> CliResult<(u64, u64)> {
    let (res, nanos) = timed(|| -> CliResult<u64> {
        let mut n = 0;
        for span in store.scan(range)? {
            span?;
            n += 1;
        }
        Ok(n)
    });
    Ok((res?, nanos))
}

/// Consecutive 1-minute windows over the whole time range: spans,
/// nanoseconds and window count.
fn scan_windows(store: &Store) -> CliResult<(u64, u64, usize)> {
    let Some((min, max)) = workload::time_span(store)? else {
        return Ok((0, 0, 0));
    };
    let (mut spans, mut nanos, mut windows) = (0, 0, 0);
    let mut from = min;
    while from <= max {
        let to = from.saturating_add(WINDOW_NANOS);
        let (n, t) = scan_count(store, from..to)?;
        (spans, nanos, windows) = (spans + n, nanos + t, windows + 1);
        if to == u64::MAX {
            break;
        }
        from = to;
    }
    Ok((spans, nanos, windows))
}

fn mb_per_sec(bytes: u64, nanos: u64) -> f64 {
    per_sec(bytes, nanos) / 1e6
}

fn to_json(r: &Results) -> Value {
    let lat = |l: &Option<Latencies>, p: f64| l.as_ref().map(|l| micros(l.percentile(p)));
    let max = |l: &Option<Latencies>| l.as_ref().map(|l| micros(l.max()));
    let per_span = |b: u64| round(b as f64 / r.spans.max(1) as f64, 2);
    let rss = |v: Option<f64>| v.map(|v| round(v, 1));
    let mut doc = json!({
        "spans": r.spans,
        "traces": r.traces,
        "segments": r.segments,
        "blocks": r.blocks,
        "ingest_seconds": round(r.ingest_nanos as f64 / 1e9, 4),
        "ingest_spans_per_sec": round(per_sec(r.spans, r.ingest_nanos), 0),
        "ingest_mb_per_sec": round(mb_per_sec(r.proto_bytes, r.ingest_nanos), 2),
        "close_seconds": round(r.close_nanos as f64 / 1e9, 4),
        "disk_bytes": r.disk_bytes,
        "otlp_proto_bytes": r.proto_bytes,
        "bytes_per_span": per_span(r.disk_bytes),
        "otlp_proto_bytes_per_span": per_span(r.proto_bytes),
        "compression_vs_otlp": round(r.proto_bytes as f64 / r.disk_bytes.max(1) as f64, 2),
        "get_trace_lookups": r.present.as_ref().map_or(0, Latencies::len),
        "get_trace_p50_us": lat(&r.present, 50.0),
        "get_trace_p90_us": lat(&r.present, 90.0),
        "get_trace_p99_us": lat(&r.present, 99.0),
        "get_trace_max_us": max(&r.present),
        "get_absent_p50_us": lat(&r.absent, 50.0),
        "get_absent_p99_us": lat(&r.absent, 99.0),
        "scan_spans": r.scan_all.0,
        "scan_spans_per_sec": round(per_sec(r.scan_all.0, r.scan_all.1), 0),
        "scan_window_count": r.scan_windows.2,
        "scan_window_spans_per_sec": round(per_sec(r.scan_windows.0, r.scan_windows.1), 0),
        "peak_rss_after_generate_mib": rss(r.rss_generated),
        "peak_rss_after_ingest_mib": rss(r.rss_ingest),
        "peak_rss_mib": rss(r.rss_end),
    });
    if let (Some(q), Some(obj)) = (&r.queries, doc.as_object_mut()) {
        queries::add_json(obj, q);
    }
    doc
}

/// One row of the table: a label and a value.
fn put(out: &mut dyn Write, label: &str, value: String) -> CliResult {
    writeln!(out, "  {label:<44}{value}")?;
    Ok(())
}

fn print_table(out: &mut dyn Write, r: &Results, dir: &BenchDir) -> CliResult {
    let kept = if dir.temporary {
        "removed at the end"
    } else {
        "kept"
    };
    writeln!(
        out,
        "spanlog bench: {} spans in {} traces, seed {}, one thread, store {} ({kept})",
        count(r.spans),
        count(r.traces),
        workload::SEED,
        dir.path.display()
    )?;
    print_ingest(out, r)?;
    print_storage(out, r)?;
    print_lookups(out, r)?;
    print_scans(out, r)?;
    if let Some(q) = &r.queries {
        queries::print(out, q)?;
    }
    print_memory(out, r)
}

fn print_ingest(out: &mut dyn Write, r: &Results) -> CliResult {
    let batch = count(BATCH_SPANS as u64);
    writeln!(out, "\ningest (append {batch}-span batches + final flush)")?;
    put(out, "time", format!("{:.3} s", r.ingest_nanos as f64 / 1e9))?;
    put(out, "spans/s", rate(per_sec(r.spans, r.ingest_nanos)))?;
    let mbs = mb_per_sec(r.proto_bytes, r.ingest_nanos);
    put(out, "MB/s of OTLP protobuf", format!("{mbs:.1}"))?;
    put(
        out,
        "close (seals what is still in memory)",
        duration(r.close_nanos),
    )
}

fn print_storage(out: &mut dyn Write, r: &Results) -> CliResult {
    let per_span = |b: u64| format!("{:.1}", b as f64 / r.spans.max(1) as f64);
    writeln!(out, "\nstorage")?;
    put(out, "sealed segments", count(r.segments as u64))?;
    put(out, "blocks", count(r.blocks))?;
    put(out, "bytes on disk", crate::format::bytes(r.disk_bytes))?;
    put(out, "bytes per span on disk", per_span(r.disk_bytes))?;
    put(
        out,
        "bytes per span as OTLP protobuf",
        per_span(r.proto_bytes),
    )?;
    let x = r.proto_bytes as f64 / r.disk_bytes.max(1) as f64;
    put(out, "OTLP protobuf size / size on disk", format!("{x:.2}x"))
}

fn percentiles(l: &Option<Latencies>) -> String {
    l.as_ref().map_or("-".into(), percentiles_of)
}

fn percentiles_of(l: &Latencies) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  max {}",
        duration(l.percentile(50.0)),
        duration(l.percentile(90.0)),
        duration(l.percentile(99.0)),
        duration(l.max())
    )
}

fn print_lookups(out: &mut dyn Write, r: &Results) -> CliResult {
    let n = r.present.as_ref().map_or(0, Latencies::len);
    writeln!(out, "\nget_trace (read-only reopen)")?;
    let present = format!("{} existing traces, warm pass", count(n as u64));
    put(out, &present, percentiles(&r.present))?;
    let absent = format!("{} absent trace ids", count(ABSENT_LOOKUPS as u64));
    put(out, &absent, percentiles(&r.absent))
}

fn print_scans(out: &mut dyn Write, r: &Results) -> CliResult {
    let text = |n: u64, t: u64| {
        let speed = rate(per_sec(n, t));
        format!("{} spans in {}: {speed} spans/s", count(n), duration(t))
    };
    writeln!(out, "\nscan")?;
    put(out, "whole time range", text(r.scan_all.0, r.scan_all.1))?;
    let (n, t, w) = r.scan_windows;
    put(
        out,
        &format!("{w} consecutive 1-minute windows"),
        text(n, t),
    )
}

fn print_memory(out: &mut dyn Write, r: &Results) -> CliResult {
    let mib = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1} MiB"));
    writeln!(out, "\npeak resident memory (VmHWM)")?;
    put(out, "after generating the workload", mib(r.rss_generated))?;
    put(out, "after ingest", mib(r.rss_ingest))?;
    put(out, "at the end", mib(r.rss_end))?;
    writeln!(
        out,
        "  (the pre-generated workload is held in memory and counts in every figure)"
    )?;
    Ok(())
}
