//! `spanlog bench --lifecycle`: what a store looks like after a long
//! ingest, with compaction off and on, what compaction costs, and how
//! retention holds the disk under a steady ingest.
//!
//! Spans are generated in chunks of [`CHUNK_SPANS`] between timed ingests,
//! so the workload never has to fit in memory; the store's background
//! threads keep working while a chunk is generated. Compaction windows are
//! one minute of span time ([`WINDOW`]), so that the generated data (about
//! 2.3 minutes per million spans) spans many windows, as months of data
//! span many hours.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use spanlog::gen::{Generator, Rng};
use spanlog::{otlp, Options, Span, Store, TraceId};

use super::Args;
use crate::error::{io_error, CliError, CliResult};
use crate::format::{bytes, count, duration, micros, rate, round};
use crate::workload::{self, per_sec, timed, Latencies, BATCH_SPANS};

/// Spans generated at once between timed ingests.
const CHUNK_SPANS: u64 = 500_000;
/// Span time per compaction window.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the maintenance thread runs retention and compaction.
const MAINTENANCE_EVERY: Duration = Duration::from_millis(500);
/// Random lookups per pass.
const LOOKUPS: usize = 10_000;
/// Spans of the ingest timed with and without a merge running beside it,
/// at most: no more than half the run's spans, so that the full
/// compaction of the run's store outlasts it.
const BESIDE_SPANS: u64 = 1_000_000;
/// Samples of the disk usage over the retention run.
const RETENTION_SAMPLES: u64 = 10;

#[derive(Default)]
struct Figures {
    spans: u64,
    proto_bytes: u64,
    off: Option<Run>,
    on: Option<Run>,
    full: Option<Full>,
    beside: Option<(f64, f64)>,
    beside_spans: u64,
    retention: Option<Retention>,
}

/// One long ingest and the store it left.
struct Run {
    ingest: Ingest,
    /// Sealed segments when the ingest's last flush returned.
    segments_at_end: usize,
    /// Sealed segments once maintenance had nothing left to do.
    segments: usize,
    disk_bytes: u64,
    lookups: Latencies,
    /// Bytes the process wrote to files meanwhile.
    written: u64,
}

/// A full compaction of a store left by a long ingest without compaction.
struct Full {
    nanos: u64,
    segments: usize,
    disk_bytes: u64,
    lookups: Latencies,
    /// Peak anonymous resident memory of the compacting process, in bytes.
    rss_growth: u64,
}

struct Retention {
    cap: u64,
    /// (spans ingested, bytes on disk, sealed segments) at each sample.
    samples: Vec<(u64, u64, usize)>,
}

struct Ingest {
    nanos: u64,
    traces: Vec<TraceId>,
}

pub fn run(args: &Args, dir: &Path, out: &mut dyn Write) -> CliResult {
    let mut f = Figures {
        spans: args.spans,
        ..Figures::default()
    };
    let off_dir = dir.join("compaction-off");
    let on_dir = dir.join("compaction-on");
    note(args, "protobuf size of the workload");
    f.proto_bytes = proto_bytes(args.spans);

    note(args, "ingest with compaction off");
    f.off = Some(long_run(&off_dir, args.spans, false, args)?);
    note(args, "ingest with compaction on");
    f.on = Some(long_run(&on_dir, args.spans, true, args)?);
    note(
        args,
        "full compaction of a copy of the compaction-off store",
    );
    let copy = dir.join("full-compaction");
    copy_store(&off_dir, &copy)?;
    f.full = Some(full_compaction(&copy)?);
    fresh(&copy)?;

    note(args, "ingest beside a merge");
    f.beside_spans = BESIDE_SPANS.min(args.spans / 2).max(1);
    f.beside = Some(beside_a_merge(dir, &off_dir, f.beside_spans)?);
    note(args, "retention under a steady ingest");
    let cap = f.off.as_ref().map_or(0, |r| r.disk_bytes) / 4;
    f.retention = Some(retention(&dir.join("retention"), args.spans / 2, cap)?);
    if args.json {
        let v = to_json(&f);
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_default()
        )?;
    } else {
        print(out, &f)?;
    }
    Ok(())
}

fn note(args: &Args, text: &str) {
    if !args.json {
        eprintln!("bench: {text}");
    }
}

fn options(compaction: bool) -> Options {
    Options {
        compaction_window: WINDOW,
        maintenance_interval: compaction.then_some(MAINTENANCE_EVERY),
        ..workload::store_options()
    }
}

/// OTLP protobuf bytes of the first `spans` spans of the workload.
fn proto_bytes(spans: u64) -> u64 {
    let mut gen = workload::generator();
    let mut left = spans;
    let mut total = 0;
    while left > 0 {
        let batch = gen.next_batch(left.min(BATCH_SPANS as u64) as usize);
        total += otlp::to_proto(&batch).len() as u64;
        left -= batch.len() as u64;
    }
    total
}

/// Ingests `spans` spans in chunks, timing the appends and the final flush.
/// `each` runs after every chunk with the spans ingested so far.
fn ingest(store: &Store, spans: u64, mut each: impl FnMut(u64) -> CliResult) -> CliResult<Ingest> {
    let mut gen = workload::generator();
    let mut traces = workload::TraceIds::default();
    let (mut done, mut nanos) = (0u64, 0u64);
    while done < spans {
        let batches = chunk(&mut gen, (spans - done).min(CHUNK_SPANS));
        let n: u64 = batches.iter().map(|b| b.len() as u64).sum();
        for b in &batches {
            traces.add(b);
        }
        let (r, t) = timed(|| -> spanlog::Result<()> {
            for b in batches {
                store.append(b)?;
            }
            Ok(())
        });
        r?;
        nanos += t;
        done += n;
        each(done)?;
    }
    let (r, t) = timed(|| store.flush());
    r?;
    Ok(Ingest {
        nanos: nanos + t,
        traces: traces.sample(LOOKUPS),
    })
}

fn chunk(gen: &mut Generator, spans: u64) -> Vec<Vec<Span>> {
    let mut left = spans;
    let mut out = Vec::new();
    while left > 0 {
        let b = gen.next_batch(left.min(BATCH_SPANS as u64) as usize);
        left -= b.len() as u64;
        out.push(b);
    }
    out
}

fn long_run(dir: &Path, spans: u64, compaction: bool, args: &Args) -> CliResult<Run> {
    fresh(dir)?;
    let written = written_bytes();
    let store = Store::open(dir, options(compaction))?;
    let ingest = ingest(&store, spans, |done| {
        if !args.json && done % 2_000_000 < CHUNK_SPANS {
            eprintln!("bench:   {} spans", count(done));
        }
        Ok(())
    })?;
    let segments_at_end = store.stats()?.sealed_segments;
    store.seal_active()?;
    // The maintenance thread's work at the time of the last flush, done.
    while compaction && !store.maintain()?.merged.is_empty() {}
    store.close()?;
    let written = written_bytes().saturating_sub(written);
    let (segments, disk_bytes, lookups) = looked_up(dir, &ingest.traces)?;
    Ok(Run {
        ingest,
        segments_at_end,
        segments,
        disk_bytes,
        lookups,
        written,
    })
}

/// Sealed segments, bytes on disk and warm lookup latencies of a closed
/// store, through a read-only open.
fn looked_up(dir: &Path, traces: &[TraceId]) -> CliResult<(usize, u64, Latencies)> {
    let store = Store::open(dir, Options::read_only())?;
    let stats = store.stats()?;
    let mut rng = Rng::new(workload::SEED);
    let ids: Vec<TraceId> = (0..LOOKUPS)
        .map(|_| traces[rng.below(traces.len() as u64) as usize])
        .collect();
    lookups(&store, &ids)?;
    Ok((
        stats.sealed_segments,
        stats.disk_bytes,
        lookups(&store, &ids)?,
    ))
}

fn lookups(store: &Store, ids: &[TraceId]) -> CliResult<Latencies> {
    let mut nanos = Vec::with_capacity(ids.len());
    for id in ids {
        let (spans, t) = timed(|| store.get_trace(*id));
        if spans?.is_empty() {
            return Err(CliError::failure(format!("trace {id} was not found")));
        }
        nanos.push(t);
    }
    Ok(Latencies::new(nanos))
}

/// Runs `spanlog compact` on `dir` in a child process, so that its memory
/// is the merge's alone: the peak of its anonymous resident memory is
/// sampled every 10 ms.
fn full_compaction(dir: &Path) -> CliResult<Full> {
    let exe = std::env::current_exe().map_err(|e| io_error(Path::new("spanlog"), "locate", e))?;
    let window = format!("{}s", WINDOW.as_secs());
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new(exe)
        .arg("compact")
        .arg(dir)
        .args(["--window", &window])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| io_error(dir, "run spanlog compact on", e))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    let status = loop {
        if let Some(b) = rss_of(&status_file) {
            peak = peak.max(b);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(io_error(dir, "wait for spanlog compact on", e)),
        }
    };
    let nanos = started.elapsed().as_nanos() as u64;
    if !status.success() {
        return Err(CliError::failure(format!(
            "spanlog compact {} failed: {status}",
            dir.display()
        )));
    }
    let rss_growth = peak;
    let traces = sample_traces(dir)?;
    let (segments, disk_bytes, lookups) = looked_up(dir, &traces)?;
    Ok(Full {
        nanos,
        segments,
        disk_bytes,
        lookups,
        rss_growth,
    })
}

/// Trace ids to look up in a store: the workload's, regenerated.
fn sample_traces(dir: &Path) -> CliResult<Vec<TraceId>> {
    let store = Store::open(dir, Options::read_only())?;
    let spans = store.stats()?.spans;
    drop(store);
    let mut gen = workload::generator();
    let mut traces = workload::TraceIds::default();
    let mut left = spans;
    while left > 0 {
        let b = gen.next_batch(left.min(BATCH_SPANS as u64) as usize);
        left -= b.len() as u64;
        traces.add(&b);
    }
    Ok(traces.sample(LOOKUPS))
}

/// Spans per second of a 1M-span ingest into a fresh store, alone, and
/// into the store at `busy` while a full compaction of it runs.
fn beside_a_merge(dir: &Path, busy: &Path, spans: u64) -> CliResult<(f64, f64)> {
    let gen = &mut workload::generator();
    let batches = chunk(gen, spans);
    let fresh_dir = dir.join("beside-alone");
    fresh(&fresh_dir)?;
    let alone = Store::open(&fresh_dir, options(false))?;
    let alone_rate = timed_ingest(&alone, batches.clone())?;
    alone.close()?;
    let merging = Store::open(busy, options(false))?;
    let beside = std::thread::scope(|s| {
        let merge = s.spawn(|| merging.compact());
        // Let the merge get going before the clock starts.
        std::thread::sleep(Duration::from_millis(500));
        let r = timed_ingest(&merging, batches);
        let still_running = !merge.is_finished();
        (r, still_running, merge.join())
    });
    let (r, still_running, merged) = beside;
    if !still_running {
        return Err(CliError::failure(
            "the merge ended before the ingest beside it: use more --spans",
        ));
    }
    merged
        .map_err(|_| CliError::failure("the merge thread panicked"))?
        .map_err(CliError::from)?;
    merging.close()?;
    Ok((alone_rate, r?))
}

fn timed_ingest(store: &Store, batches: Vec<Vec<Span>>) -> CliResult<f64> {
    let n: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let (r, t) = timed(|| -> spanlog::Result<()> {
        for b in batches {
            store.append(b)?;
        }
        store.flush()
    });
    r?;
    Ok(per_sec(n, t))
}

fn retention(dir: &Path, spans: u64, cap: u64) -> CliResult<Retention> {
    fresh(dir)?;
    let opts = Options {
        retention_max_bytes: Some(cap),
        ..options(true)
    };
    let store = Store::open(dir, opts)?;
    let step = (spans / RETENTION_SAMPLES).max(CHUNK_SPANS);
    let mut samples = Vec::new();
    let mut next = step;
    ingest(&store, spans, |done| {
        if done >= next {
            next += step;
            let s = store.stats()?;
            samples.push((done, dir_bytes(dir)?, s.sealed_segments));
        }
        Ok(())
    })?;
    // The last table sealed, so that no log is left: the cap applies to
    // sealed segments.
    store.seal_active()?;
    store.apply_retention()?;
    let s = store.stats()?;
    samples.push((spans, dir_bytes(dir)?, s.sealed_segments));
    store.close()?;
    Ok(Retention { cap, samples })
}

/// Copies the store files of `from` into a new directory `to`.
fn copy_store(from: &Path, to: &Path) -> CliResult {
    fresh(to)?;
    std::fs::create_dir_all(to).map_err(|e| io_error(to, "create", e))?;
    for e in std::fs::read_dir(from).map_err(|e| io_error(from, "list", e))? {
        let p = e.map_err(|e| io_error(from, "list", e))?.path();
        if let Some(name) = p.file_name() {
            std::fs::copy(&p, to.join(name)).map_err(|e| io_error(&p, "copy", e))?;
        }
    }
    Ok(())
}

fn fresh(dir: &Path) -> CliResult {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| io_error(dir, "remove", e))?;
    }
    Ok(())
}

/// Bytes of the files in `dir`, as the file system counts them.
fn dir_bytes(dir: &Path) -> CliResult<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).map_err(|e| io_error(dir, "list", e))? {
        let e = e.map_err(|e| io_error(dir, "list", e))?;
        total += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    Ok(total)
}

/// Bytes this process passed to write calls so far (`wchar` of
/// /proc/self/io); 0 where that is not available.
fn written_bytes() -> u64 {
    let Ok(io) = std::fs::read_to_string("/proc/self/io") else {
        return 0;
    };
    io.lines()
        .find_map(|l| l.strip_prefix("wchar:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Anonymous resident memory of a process (RssAnon of its status file:
/// the heap and stacks, not the mapped segment files, whose pages belong
/// to the page cache and are given back under memory pressure), in bytes.
fn rss_of(status_file: &str) -> Option<u64> {
    let status = std::fs::read_to_string(status_file).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn per_span(bytes: u64, spans: u64) -> f64 {
    bytes as f64 / spans.max(1) as f64
}

fn print(out: &mut dyn Write, f: &Figures) -> CliResult {
    let line = |out: &mut dyn Write, k: &str, v: String| writeln!(out, "  {k:<44}{v}");
    writeln!(
        out,
        "spanlog bench --lifecycle: {} spans, seed {}, compaction windows of {} s of span time",
        count(f.spans),
        workload::SEED,
        WINDOW.as_secs()
    )?;
    writeln!(
        out,
        "  (OTLP protobuf: {}, {:.1} bytes per span)",
        bytes(f.proto_bytes),
        per_span(f.proto_bytes, f.spans)
    )?;
    for (title, r) in [
        ("compaction off", &f.off),
        ("compaction on (maintenance thread)", &f.on),
    ] {
        let Some(r) = r else { continue };
        writeln!(out, "\n{title}")?;
        line(out, "ingest", rate(per_sec(f.spans, r.ingest.nanos)))?;
        line(
            out,
            "sealed segments at the last flush",
            count(r.segments_at_end as u64),
        )?;
        line(
            out,
            "sealed segments once maintenance is done",
            count(r.segments as u64),
        )?;
        line(
            out,
            "bytes on disk",
            format!(
                "{} ({:.1} per span)",
                bytes(r.disk_bytes),
                per_span(r.disk_bytes, f.spans)
            ),
        )?;
        line(out, "get_trace, warm", latencies(&r.lookups))?;
        line(
            out,
            "write amplification",
            format!(
                "{} written: {:.2} per OTLP protobuf byte, {:.2} per byte kept",
                bytes(r.written),
                r.written as f64 / f.proto_bytes.max(1) as f64,
                r.written as f64 / r.disk_bytes.max(1) as f64
            ),
        )?;
    }
    if let Some(full) = &f.full {
        writeln!(
            out,
            "\nfull compaction (spanlog compact, in a child process) of a copy of the compaction-off store"
        )?;
        line(out, "time", duration(full.nanos))?;
        line(out, "sealed segments", count(full.segments as u64))?;
        line(
            out,
            "bytes on disk",
            format!(
                "{} ({:.1} per span, {:.2}x below OTLP protobuf)",
                bytes(full.disk_bytes),
                per_span(full.disk_bytes, f.spans),
                f.proto_bytes as f64 / full.disk_bytes.max(1) as f64
            ),
        )?;
        line(out, "get_trace, warm", latencies(&full.lookups))?;
        line(
            out,
            "peak heap of the compacting process",
            bytes(full.rss_growth),
        )?;
    }
    if let Some((alone, beside)) = f.beside {
        writeln!(out, "\ningest of {} spans", count(f.beside_spans))?;
        line(out, "into a new store, alone", rate(alone))?;
        line(
            out,
            "same store, during a full compaction",
            format!(
                "{} ({:.0}% of alone)",
                rate(beside),
                100.0 * beside / alone.max(1.0)
            ),
        )?;
    }
    if let Some(r) = &f.retention {
        writeln!(
            out,
            "\nretention: max_total_bytes {} under a steady ingest",
            bytes(r.cap)
        )?;
        writeln!(
            out,
            "  {:>14}  {:>12}  {:>9}",
            "spans ingested", "on disk", "segments"
        )?;
        for (spans, disk, segs) in &r.samples {
            writeln!(
                out,
                "  {:>14}  {:>12}  {:>9}",
                count(*spans),
                bytes(*disk),
                segs
            )?;
        }
    }
    Ok(())
}

fn latencies(l: &Latencies) -> String {
    format!(
        "p50 {:.1}µs  p99 {:.1}µs",
        micros(l.percentile(50.0)),
        micros(l.percentile(99.0))
    )
}

fn to_json(f: &Figures) -> Value {
    let lat = |l: &Latencies| json!({"p50_us": round(micros(l.percentile(50.0)), 1), "p99_us": round(micros(l.percentile(99.0)), 1)});
    let run = |r: &Run| {
        json!({
            "ingest_spans_per_sec": round(per_sec(f.spans, r.ingest.nanos), 0),
            "sealed_segments_at_last_flush": r.segments_at_end,
            "sealed_segments": r.segments,
            "disk_bytes": r.disk_bytes,
            "get_trace": lat(&r.lookups),
            "bytes_written": r.written,
        })
    };
    json!({
        "spans": f.spans,
        "otlp_proto_bytes": f.proto_bytes,
        "compaction_window_secs": WINDOW.as_secs(),
        "compaction_off": f.off.as_ref().map(run),
        "compaction_on": f.on.as_ref().map(run),
        "full_compaction": f.full.as_ref().map(|c| json!({
            "secs": round(c.nanos as f64 / 1e9, 2),
            "sealed_segments": c.segments,
            "disk_bytes": c.disk_bytes,
            "bytes_per_span": round(per_span(c.disk_bytes, f.spans), 1),
            "get_trace": lat(&c.lookups),
            "peak_heap_bytes": c.rss_growth,
        })),
        "ingest_beside_merge": f.beside.map(|(a, b)| json!({"spans": f.beside_spans, "alone_spans_per_sec": round(a, 0), "beside_spans_per_sec": round(b, 0)})),
        "retention": f.retention.as_ref().map(|r| json!({
            "max_total_bytes": r.cap,
            "samples": r.samples.iter().map(|(s, d, n)| json!({"spans": s, "disk_bytes": d, "sealed_segments": n})).collect::<Vec<_>>(),
        })),
    })
}
