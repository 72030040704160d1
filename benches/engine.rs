//! What users feel, on the generated workload: ingest (with the final
//! flush), trace lookup on a store of several sealed segments (warm), a
//! time-range scan, trace searches (one service in a 1-minute window, alone
//! and with an attribute condition) and catalog calls.
//! `SPANLOG_BENCH_SPANS` sets the store size (default 1M).
//!
//! Run: `cargo bench --bench engine`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use spanlog::gen::generate;
use spanlog::{AttrFilter, Options, Span, Store, TraceId, TraceQuery};

fn spans_n() -> usize {
    std::env::var("SPANLOG_BENCH_SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// Segments of 16 MiB of spans, smaller for small runs, so that lookups
/// always meet several sealed segments.
fn options() -> Options {
    let segment = (spans_n() as u64 * 100 / 6).clamp(1 << 20, 16 << 20);
    Options {
        segment_max_bytes: segment,
        ..Options::default()
    }
}

fn batches(spans: &[Span]) -> Vec<Vec<Span>> {
    spans.chunks(1000).map(<[Span]>::to_vec).collect()
}

fn ingest(c: &mut Criterion) {
    let spans = generate(42, spans_n());
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.throughput(Throughput::Elements(spans.len() as u64));
    g.bench_function(format!("{}_spans_with_flush", spans.len()), |b| {
        b.iter_batched(
            || (tempfile::tempdir().unwrap(), batches(&spans)),
            |(dir, batches)| {
                let store = Store::open(dir.path(), options()).unwrap();
                for batch in batches {
                    store.append(batch).unwrap();
                }
                store.flush().unwrap();
                // Dropped after timing: sealing what is left in memory is
                // not part of ingest.
                (dir, store)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn reads(c: &mut Criterion) {
    let spans = generate(42, spans_n());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), options()).unwrap();
    for batch in batches(&spans) {
        store.append(batch).unwrap();
    }
    store.close().unwrap();
    let store = Store::open(dir.path(), Options::read_only()).unwrap();
    let stats = store.stats().unwrap();
    assert!(stats.sealed_segments >= 4, "{stats:?}");
    let mut ids: Vec<TraceId> = spans.iter().map(|s| s.trace_id).collect();
    ids.sort();
    ids.dedup();
    let mut i = 0usize;
    let mut g = c.benchmark_group("get_trace");
    g.bench_function("warm_random_existing", |b| {
        b.iter(|| {
            i = (i + 7919) % ids.len();
            store.get_trace(ids[i]).unwrap()
        })
    });
    g.bench_function("absent", |b| {
        b.iter(|| store.get_trace(TraceId([0xab; 16])).unwrap())
    });
    g.finish();
    let start = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap();
    let mut g = c.benchmark_group("scan");
    g.sample_size(10);
    g.bench_function("one_second_window", |b| {
        b.iter(|| {
            store
                .scan(start + 10_000_000_000..start + 11_000_000_000)
                .unwrap()
                .try_fold(0usize, |n, s| s.map(|_| n + 1))
                .unwrap()
        })
    });
    g.finish();
    searches(c, &store, &spans);
}

/// Width of a search window.
const MINUTE: u64 = 60_000_000_000;
/// Distinct searches of each kind; each iteration runs the next one.
const SEARCHES: usize = 300;

/// One service's traces in a 1-minute window, limit 20: services in turn,
/// window ends spread evenly over the data so each window lies within it.
fn window_queries(store: &Store, spans: &[Span]) -> Vec<TraceQuery> {
    let services = store.services().unwrap();
    let min = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap();
    let max = spans.iter().map(|s| s.start_time_unix_nano).max().unwrap();
    let first = min + MINUTE;
    let last = (max + 1).max(first);
    (0..SEARCHES)
        .map(|i| {
            let end = first + ((last - first) as u128 * i as u128 / (SEARCHES - 1) as u128) as u64;
            TraceQuery {
                start: Some(end - MINUTE..end),
                limit: 20,
                ..TraceQuery::service(services[i % services.len()].clone())
            }
        })
        .collect()
}

fn with_attr(queries: &[TraceQuery], key: &str, value: &str) -> Vec<TraceQuery> {
    queries
        .iter()
        .map(|q| TraceQuery {
            attributes: vec![AttrFilter::Equals(key.into(), value.into())],
            ..q.clone()
        })
        .collect()
}

fn searches(c: &mut Criterion, store: &Store, spans: &[Span]) {
    let plain = window_queries(store, spans);
    let common = with_attr(&plain, "http.request.method", "GET");
    let selective = with_attr(&plain, "http.response.status_code", "500");
    let mut g = c.benchmark_group("find_traces");
    for (name, queries) in [
        ("service_1min", &plain),
        ("service_1min_attr", &common),
        ("service_1min_attr_selective", &selective),
    ] {
        let mut i = 0usize;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 1) % queries.len();
                store.find_traces(&queries[i]).unwrap()
            })
        });
    }
    g.finish();
    let services = store.services().unwrap();
    let mut g = c.benchmark_group("catalog");
    g.bench_function("services", |b| b.iter(|| store.services().unwrap()));
    let mut i = 0usize;
    g.bench_function("operations", |b| {
        b.iter(|| {
            i = (i + 1) % services.len();
            store.operations(&services[i], None).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, ingest, reads);
criterion_main!(benches);
