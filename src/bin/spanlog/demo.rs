//! `spanlog demo`: ingest a realistic workload, then query it, with real
//! timings from this run.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use spanlog::gen::Generator;
use spanlog::{otlp, Options, Store, TraceId};

use crate::error::{CliError, CliResult};
use crate::format::{bytes, count, duration, plural, rate, rfc3339};
use crate::tree;
use crate::workload::{self, per_sec, timed, Latencies, TraceIds, BATCH_SPANS};

/// Spans between flushes, as a collector would make them durable.
const FLUSH_EVERY: usize = 50_000;

/// Ingest generated spans into a store, then look up traces and scan.
///
/// The workload is a simulated shop of 30 services (fixed seed): traces
/// of SERVER, CLIENT, INTERNAL, PRODUCER and CONSUMER spans with
/// semantic-convention attributes, in collector arrival order. Spans are
/// appended in batches of 1,000 with a flush every 50,000; a segment is
/// sealed per 16 MiB of uncompressed spans. All figures printed are
/// measured in this run.
#[derive(clap::Args)]
pub struct Args {
    /// Directory of the store to create
    #[arg(long, default_value = "./spanlog-demo")]
    dir: PathBuf,
    /// Number of spans to ingest
    #[arg(long, default_value_t = 1_000_000)]
    spans: u64,
    /// Number of traces to look up after the ingest
    #[arg(long, default_value_t = 1000)]
    lookups: usize,
    /// If DIR already holds a spanlog store, delete its segment and log
    /// files first (nothing else in DIR is touched)
    #[arg(long)]
    force: bool,
}

/// What the ingest measured.
#[derive(Default)]
struct Ingest {
    spans: u64,
    traces: TraceIds,
    /// Time spent in `append` and `flush` only.
    store_nanos: u64,
    close_nanos: u64,
    wall_nanos: u64,
    proto_bytes: u64,
    /// Spans appended since the last flush.
    unflushed: usize,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    if args.spans == 0 {
        return Err(CliError::usage("--spans must be at least 1"));
    }
    workload::prepare_dir(&args.dir, args.force)?;
    writeln!(
        out,
        "spanlog demo: {} spans of a simulated 30-service shop into {}\n",
        count(args.spans),
        args.dir.display()
    )?;
    let ingest = ingest(args, out)?;
    let store = Store::open(&args.dir, Options::read_only())?;
    report_ingest(out, &store, &ingest)?;
    let example = lookups(out, &store, &ingest.traces.sample(args.lookups))?;
    scan_one_second(out, &store)?;
    search(out, &store, example)?;
    summary(out, &store, args, example)?;
    Ok(())
}

fn ingest(args: &Args, out: &mut dyn Write) -> CliResult<Ingest> {
    writeln!(
        out,
        "ingest: batches of {} spans, a flush every {} spans, a segment per {} of uncompressed spans",
        count(BATCH_SPANS as u64),
        count(FLUSH_EVERY as u64),
        bytes(workload::SEGMENT_MAX_BYTES)
    )?;
    let store = Store::open(&args.dir, workload::store_options())?;
    let mut gen = workload::generator();
    let mut r = Ingest::default();
    let step = (args.spans / 10).max(1);
    let mut next_progress = step;
    let wall = Instant::now();
    while r.spans < args.spans {
        ingest_batch(&store, &mut gen, &mut r, args.spans)?;
        if r.spans >= next_progress {
            progress(out, &store, &r)?;
            next_progress += step;
        }
    }
    let (closed, close_nanos) = timed(|| store.close());
    closed?;
    r.close_nanos = close_nanos;
    r.wall_nanos = wall.elapsed().as_nanos() as u64;
    Ok(r)
}

/// Generates, sizes and appends one batch; only the store calls are timed.
fn ingest_batch(store: &Store, gen: &mut Generator, r: &mut Ingest, total: u64) -> CliResult {
    let n = (total - r.spans).min(BATCH_SPANS as u64) as usize;
    let batch = gen.next_batch(n);
    r.traces.add(&batch);
    r.proto_bytes += otlp::to_proto(&batch).len() as u64;
    r.spans += batch.len() as u64;
    r.unflushed += batch.len();
    let flush = r.unflushed >= FLUSH_EVERY || r.spans >= total;
    let (res, nanos) = timed(|| append(store, batch, flush));
    res?;
    r.store_nanos += nanos;
    if flush {
        r.unflushed = 0;
    }
    Ok(())
}

fn append(store: &Store, batch: Vec<spanlog::Span>, flush: bool) -> spanlog::Result<()> {
    store.append(batch)?;
    if flush {
        store.flush()?;
    }
    Ok(())
}

fn progress(out: &mut dyn Write, store: &Store, r: &Ingest) -> CliResult {
    let stats = store.stats()?;
    writeln!(
        out,
        "  {:>11} spans  {:>20}  {:>9} on disk  {:>9} spans/s",
        count(r.spans),
        plural(stats.sealed_segments as u64, "sealed segment"),
        bytes(stats.disk_bytes),
        rate(per_sec(r.spans, r.store_nanos))
    )?;
    // Progress is only worth printing if it shows up while it happens.
    out.flush()?;
    Ok(())
}

fn line(key: &str, value: String) -> String {
    format!("  {key:<15}{value}")
}

fn report_ingest(out: &mut dyn Write, store: &Store, r: &Ingest) -> CliResult {
    let secs = r.store_nanos as f64 / 1e9;
    writeln!(out, "\ningested")?;
    let spans = format!(
        "{} in {} traces",
        count(r.spans),
        count(r.traces.order.len() as u64)
    );
    writeln!(out, "{}", line("spans", spans))?;
    let store_time = format!(
        "{secs:.3} s in append + flush (generating spans and sizing them as OTLP not counted)"
    );
    writeln!(out, "{}", line("store time", store_time))?;
    let mbps = r.proto_bytes as f64 / 1e6 / secs.max(1e-9);
    let tput = format!(
        "{} spans/s, {mbps:.1} MB/s of OTLP protobuf",
        rate(per_sec(r.spans, r.store_nanos))
    );
    writeln!(out, "{}", line("throughput", tput))?;
    let close = format!(
        "{} (writes what is still in memory as a sealed segment)",
        duration(r.close_nanos)
    );
    writeln!(out, "{}", line("close", close))?;
    let wall = format!(
        "{:.2} s for the whole ingest, generation included",
        r.wall_nanos as f64 / 1e9
    );
    writeln!(out, "{}", line("wall time", wall))?;
    if let Some(mib) = crate::workload::peak_rss_mib() {
        // Spans are generated batch by batch here, so this is the engine's
        // own footprint plus one batch: it does not grow with the store.
        let peak = format!("{mib:.0} MiB peak resident memory so far (generator included)");
        writeln!(out, "{}", line("memory", peak))?;
    }
    report_size(out, store, r)
}

fn report_size(out: &mut dyn Write, store: &Store, r: &Ingest) -> CliResult {
    let disk = store.stats()?.disk_bytes;
    let per_span = |b: u64| b as f64 / r.spans as f64;
    let on_disk = format!("{} = {:.1} bytes/span", bytes(disk), per_span(disk));
    writeln!(out, "{}", line("on disk", on_disk))?;
    let smaller = r.proto_bytes as f64 / disk.max(1) as f64;
    let proto = format!(
        "{} = {:.1} bytes/span; the store is {smaller:.1}x smaller",
        bytes(r.proto_bytes),
        per_span(r.proto_bytes)
    );
    writeln!(out, "{}", line("OTLP protobuf", proto))?;
    Ok(())
}

/// Times `get_trace` over `ids` and prints one trace; returns its id.
fn lookups(out: &mut dyn Write, store: &Store, ids: &[TraceId]) -> CliResult<Option<TraceId>> {
    let mut nanos = Vec::with_capacity(ids.len());
    let mut found = 0u64;
    let mut example = None;
    for id in ids {
        let (spans, t) = timed(|| store.get_trace(*id));
        let spans = spans?;
        nanos.push(t);
        found += spans.len() as u64;
        if example.is_none() && is_good_example(&spans) {
            example = Some(*id);
        }
    }
    let lat = Latencies::new(nanos);
    writeln!(
        out,
        "\nlookups (store reopened read-only, {} trace ids sampled from the ingest)",
        count(ids.len() as u64)
    )?;
    writeln!(
        out,
        "  {:<15}median {}, p99 {}, max {}; {:.1} spans per trace",
        "get_trace",
        duration(lat.percentile(50.0)),
        duration(lat.percentile(99.0)),
        duration(lat.max()),
        found as f64 / ids.len().max(1) as f64
    )?;
    let Some(id) = example.or(ids.first().copied()) else {
        return Ok(None);
    };
    writeln!(out, "\nexample (as `spanlog get` prints it)")?;
    tree::render(out, &store.get_trace(id)?)?;
    Ok(Some(id))
}

/// A trace that fits a screen and shows more than one service.
fn is_good_example(spans: &[spanlog::Span]) -> bool {
    let services: std::collections::HashSet<_> =
        spans.iter().filter_map(|s| s.service_name()).collect();
    (6..=20).contains(&spans.len()) && services.len() >= 3
}

fn scan_one_second(out: &mut dyn Write, store: &Store) -> CliResult {
    let Some((min, max)) = workload::time_span(store)? else {
        return Ok(());
    };
    let from = min + (max - min) / 2;
    let range = from..from.saturating_add(1_000_000_000);
    let (counted, nanos) = timed(|| -> CliResult<u64> {
        let mut n = 0;
        for span in store.scan(range.clone())? {
            span?;
            n += 1;
        }
        Ok(n)
    });
    let n = counted?;
    writeln!(out, "\nscan of one second from {}", rfc3339(from))?;
    writeln!(
        out,
        "  {:<15}{} spans in {} = {} spans/s",
        "scan",
        count(n),
        duration(nanos),
        rate(per_sec(n, nanos))
    )?;
    Ok(())
}

/// Searches the last minute of data for the traces of the example's root
/// service, as a trace UI would, and times the catalog.
fn search(out: &mut dyn Write, store: &Store, example: Option<TraceId>) -> CliResult {
    let Some((_, max)) = workload::time_span(store)? else {
        return Ok(());
    };
    let service = match example {
        Some(id) => spanlog::query::TraceSummary::of(&store.get_trace(id)?).map(|s| s.root_service),
        None => None,
    };
    let Some(service) = service.or(store.services()?.into_iter().next()) else {
        return Ok(());
    };
    let (services, t_services) = timed(|| store.services());
    let services = services?;
    let query = spanlog::TraceQuery {
        start: Some(max.saturating_sub(60_000_000_000)..max.saturating_add(1)),
        ..spanlog::TraceQuery::service(service.clone())
    };
    let (found, t_find) = timed(|| store.find_traces(&query));
    let found = found?;
    let mut with_attr = query.clone();
    with_attr.attributes = vec![spanlog::AttrFilter::Exists("http.request.method".into())];
    let (found_attr, t_attr) = timed(|| store.find_traces(&with_attr));
    let found_attr = found_attr?;
    writeln!(
        out,
        "
search (as `spanlog find` and `spanlog services` do)"
    )?;
    writeln!(
        out,
        "  {:<15}{} services in {}",
        "services",
        count(services.len() as u64),
        duration(t_services)
    )?;
    writeln!(
        out,
        "  {:<15}{} most recent traces of {service} in the last minute in {}",
        "find",
        count(found.len() as u64),
        duration(t_find)
    )?;
    writeln!(
        out,
        "  {:<15}{} most recent with an http.request.method attribute in {}",
        "find + attr",
        count(found_attr.len() as u64),
        duration(t_attr)
    )?;
    Ok(())
}

fn summary(out: &mut dyn Write, store: &Store, args: &Args, example: Option<TraceId>) -> CliResult {
    let s = store.stats()?;
    writeln!(
        out,
        "\nstore: {}, {}, {}, {}, {}",
        plural(s.sealed_segments as u64, "sealed segment"),
        plural(s.active_segments as u64, "log"),
        plural(s.blocks, "block"),
        plural(s.spans, "span"),
        bytes(s.disk_bytes)
    )?;
    let dir = args.dir.display();
    writeln!(out, "\nnext: spanlog inspect {dir}")?;
    writeln!(out, "      spanlog verify {dir}")?;
    if let Some(id) = example {
        writeln!(out, "      spanlog get {dir} {id}")?;
    }
    Ok(())
}
