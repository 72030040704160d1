//! The query phase of `spanlog bench`: catalog calls and trace searches on
//! the store the lookups ran on.
//!
//! Searches ask for the traces of one service in a 1-minute window, at
//! most [`FIND_LIMIT`] of them, alone and with one attribute condition of
//! two kinds: one most spans of HTTP services carry ([`COMMON`]) and one
//! only failed calls carry ([`SELECTIVE`]). Services rotate over the
//! store's own list; window ends are spread evenly over the data's time
//! range, each window lying within it. Every set runs twice over the same
//! queries; the second, warm pass is reported, as for `get_trace`.

use serde_json::{json, Map, Value};
use spanlog::{AttrFilter, Store, TraceQuery};

use super::WINDOW_NANOS;
use crate::error::{CliError, CliResult};
use crate::format::{count, micros, round};
use crate::workload::{self, timed, Latencies};

/// Calls of `services()` and of `operations()` (per pass).
pub const CATALOG_CALLS: usize = 1000;
/// Most traces a search returns.
pub const FIND_LIMIT: usize = 20;
/// An attribute most HTTP spans carry.
pub const COMMON: (&str, &str) = ("http.request.method", "GET");
/// An attribute only failed HTTP calls carry.
pub const SELECTIVE: (&str, &str) = ("http.response.status_code", "500");

/// One set of searches: latencies and what they returned.
pub struct Searches {
    pub latencies: Latencies,
    /// Traces returned, over all queries.
    pub results: u64,
    /// Queries that returned nothing.
    pub empty: usize,
}

impl Searches {
    pub fn average_results(&self) -> f64 {
        self.results as f64 / self.latencies.len().max(1) as f64
    }
}

/// Every figure of the query phase.
pub struct Figures {
    pub services: Latencies,
    pub operations: Latencies,
    pub service_count: usize,
    /// False when the data spans less than a minute, so that every window
    /// is the first minute and reaches past the data.
    pub windows_inside: bool,
    pub window: Searches,
    pub common: Searches,
    pub selective: Searches,
}

pub fn measure(store: &Store, queries: usize) -> CliResult<Figures> {
    let services = store.services()?;
    if services.is_empty() {
        return Err(CliError::failure("the store lists no service"));
    }
    let services_lat = warm_pass(CATALOG_CALLS, |_| {
        let (list, t) = timed(|| store.services());
        list?;
        Ok(t)
    })?;
    let operations_lat = warm_pass(CATALOG_CALLS, |i| {
        let service = &services[i % services.len()];
        let (ops, t) = timed(|| store.operations(service, None));
        if ops?.is_empty() {
            return Err(CliError::failure(format!(
                "service {service} has no operation"
            )));
        }
        Ok(t)
    })?;
    let Some((min, max)) = workload::time_span(store)? else {
        return Err(CliError::failure("the store holds no sealed block"));
    };
    let (first_end, last_end) = (min.saturating_add(WINDOW_NANOS), max.saturating_add(1));
    let windows_inside = last_end >= first_end;
    let last_end = last_end.max(first_end);
    let window_queries = window_queries(&services, queries, (first_end, last_end));
    let with = |(key, value): (&str, &str)| -> Vec<TraceQuery> {
        window_queries
            .iter()
            .map(|q| TraceQuery {
                attributes: vec![AttrFilter::Equals(key.into(), value.into())],
                ..q.clone()
            })
            .collect()
    };
    let window = searches(store, &window_queries)?;
    let common = searches(store, &with(COMMON))?;
    let selective = searches(store, &with(SELECTIVE))?;
    Ok(Figures {
        services: services_lat,
        operations: operations_lat,
        service_count: services.len(),
        windows_inside,
        window,
        common,
        selective,
    })
}

/// `n` queries: services in turn, window ends evenly spread over
/// `first..=last`.
fn window_queries(services: &[String], n: usize, (first, last): (u64, u64)) -> Vec<TraceQuery> {
    let steps = n.saturating_sub(1).max(1) as u128;
    (0..n)
        .map(|i| {
            let end = first + ((last - first) as u128 * i as u128 / steps) as u64;
            TraceQuery {
                start: Some(end - WINDOW_NANOS..end),
                limit: FIND_LIMIT,
                ..TraceQuery::service(services[i % services.len()].clone())
            }
        })
        .collect()
}

/// Runs `f(0..n)` twice and returns the nanoseconds of the second pass.
fn warm_pass(n: usize, mut f: impl FnMut(usize) -> CliResult<u64>) -> CliResult<Latencies> {
    for i in 0..n {
        f(i)?;
    }
    let nanos = (0..n).map(f).collect::<CliResult<Vec<u64>>>()?;
    Ok(Latencies::new(nanos))
}

fn searches(store: &Store, queries: &[TraceQuery]) -> CliResult<Searches> {
    let mut counts = vec![0u64; queries.len()];
    let latencies = warm_pass(queries.len(), |i| {
        let (found, t) = timed(|| store.find_traces(&queries[i]));
        counts[i] = found?.len() as u64;
        Ok(t)
    })?;
    Ok(Searches {
        latencies,
        results: counts.iter().sum(),
        empty: counts.iter().filter(|c| **c == 0).count(),
    })
}

/// The condition as `find --attr` takes it.
pub fn condition((key, value): (&str, &str)) -> String {
    format!("{key}={value}")
}

fn spread(l: &Latencies) -> Value {
    json!({
        "p50": micros(l.percentile(50.0)),
        "p90": micros(l.percentile(90.0)),
        "p99": micros(l.percentile(99.0)),
        "max": micros(l.max()),
    })
}

/// Adds the phase's fields to the bench's JSON object.
pub fn add_json(obj: &mut Map<String, Value>, f: &Figures) {
    let mut put = |k: &str, v: Value| {
        obj.insert(k.to_string(), v);
    };
    put("catalog_calls", json!(f.services.len()));
    put("services_count", json!(f.service_count));
    put("services_us", spread(&f.services));
    put("operations_us", spread(&f.operations));
    put("find_queries", json!(f.window.latencies.len()));
    put("find_limit", json!(FIND_LIMIT));
    put("find_window_seconds", json!(WINDOW_NANOS / 1_000_000_000));
    put("find_windows_inside_data", json!(f.windows_inside));
    put("find_attr_common", json!(condition(COMMON)));
    put("find_attr_selective", json!(condition(SELECTIVE)));
    for (name, s) in [
        ("find_service_window", &f.window),
        ("find_attr_common", &f.common),
        ("find_attr_selective", &f.selective),
    ] {
        put(&format!("{name}_us"), spread(&s.latencies));
        put(
            &format!("{name}_avg_results"),
            json!(round(s.average_results(), 2)),
        );
        put(&format!("{name}_empty_results"), json!(s.empty));
    }
}

/// The lines of the human output.
pub fn print(out: &mut dyn std::io::Write, f: &Figures) -> CliResult {
    let results = |s: &Searches| {
        format!(
            "{:.1} on average, none for {} of {}",
            s.average_results(),
            count(s.empty as u64),
            count(s.latencies.len() as u64)
        )
    };
    writeln!(
        out,
        "\nfind_traces (same read-only store, one service of {}, 1-minute window, limit {FIND_LIMIT}, warm pass)",
        f.service_count
    )?;
    if !f.windows_inside {
        writeln!(
            out,
            "  (the data spans less than a minute: every window is its first minute)"
        )?;
    }
    let n = count(f.window.latencies.len() as u64);
    for (label, s) in [
        (format!("{n} service + window queries"), &f.window),
        (format!("+ {}", condition(COMMON)), &f.common),
        (format!("+ {}", condition(SELECTIVE)), &f.selective),
    ] {
        super::put(out, &label, super::percentiles_of(&s.latencies))?;
        super::put(out, "  traces returned", results(s))?;
    }
    writeln!(out, "\ncatalog")?;
    let calls = count(f.services.len() as u64);
    super::put(
        out,
        &format!("services(), {calls} calls"),
        super::percentiles_of(&f.services),
    )?;
    super::put(
        out,
        &format!("operations(service, None), {calls} calls"),
        super::percentiles_of(&f.operations),
    )
}
