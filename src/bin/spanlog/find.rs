//! `spanlog find`: the traces that match a query, most recent first.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;
use spanlog::{AttrFilter, MatchMode, Options, SpanKind, Store, TraceQuery, TraceSummary};

use crate::error::{CliError, CliResult};
use crate::format::{count, duration, json_object, pad, printable, rfc3339_millis};
use crate::timearg::{parse_duration, parse_time};

/// Widest the root span column gets before rows stop being aligned; longer
/// names are printed whole rather than cut.
const MAX_NAME_COLUMN: usize = 64;

/// Find traces by service, operation, kind, attributes, time and duration.
///
/// A trace matches when one of its spans meets every condition given (with
/// --trace-level, when each condition is met by some span of the trace).
/// Each match is summarised over all its spans: start, duration, span
/// count, whether any span failed, the root span and every service.
/// Traces are listed most recent first; --limit keeps the most recent.
///
/// Times are RFC 3339 (2017-01-26T16:46:31.639875Z, 2017-01-26T18:46:31+02:00)
/// or unix nanoseconds; durations are like 250ms, 1.5s, 800us, 120ns, 2m,
/// 1h, or a whole number of nanoseconds.
///
/// The store is opened read-only, so this works next to a running writer.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory
    store: PathBuf,
    /// A span of this service (resource attribute service.name)
    #[arg(long, value_name = "NAME")]
    service: Option<String>,
    /// A span with this name
    #[arg(long, value_name = "NAME")]
    operation: Option<String>,
    /// A span of this kind
    #[arg(long, value_enum, ignore_case = true)]
    kind: Option<Kind>,
    /// A span with this attribute: key=value (compared as text, so 200
    /// matches the integer 200) or a bare key (any value). Span, resource,
    /// scope, event and link attributes count. Repeat for more; all must
    /// hold
    #[arg(long = "attr", value_name = "KEY[=VALUE]", value_parser = parse_attr)]
    attrs: Vec<AttrFilter>,
    /// A span starting at or after this time
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    start: Option<u64>,
    /// A span starting before this time
    #[arg(long, value_name = "TIME", value_parser = parse_time, allow_hyphen_values = true)]
    end: Option<u64>,
    /// A span lasting at least this long
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    min_duration: Option<u64>,
    /// A span lasting at most this long
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    max_duration: Option<u64>,
    /// A span whose status is Error
    #[arg(long)]
    errors: bool,
    /// Most traces listed (the most recent ones)
    #[arg(
        long,
        value_name = "N",
        default_value = "20",
        value_parser = parse_limit,
        allow_hyphen_values = true
    )]
    limit: usize,
    /// Let each condition be met by a different span of the trace
    #[arg(long)]
    trace_level: bool,
    /// Print one JSON object per trace and line instead of a table
    #[arg(long)]
    json: bool,
}

/// A span kind on the command line.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Unspecified,
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

impl From<Kind> for SpanKind {
    fn from(k: Kind) -> SpanKind {
        match k {
            Kind::Unspecified => SpanKind::Unspecified,
            Kind::Internal => SpanKind::Internal,
            Kind::Server => SpanKind::Server,
            Kind::Client => SpanKind::Client,
            Kind::Producer => SpanKind::Producer,
            Kind::Consumer => SpanKind::Consumer,
        }
    }
}

fn parse_attr(text: &str) -> Result<AttrFilter, String> {
    AttrFilter::parse(text).map_err(|_| {
        "the key is empty (expected key=value, or a bare key for any value)".to_string()
    })
}

fn parse_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(0) => Err("the limit must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err("expected a whole number of traces, at least 1".into()),
    }
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let query = query(args)?;
    let store = Store::open(&args.store, Options::read_only())?;
    let traces = store.find_traces(&query)?;
    if args.json {
        for t in &traces {
            writeln!(out, "{}", trace_json(t))?;
        }
    } else {
        table(out, &traces, args.limit)?;
    }
    Ok(())
}

/// The query the arguments describe; conditions that can never hold
/// together are refused before the store is opened.
fn query(args: &Args) -> CliResult<TraceQuery> {
    let start = match (args.start, args.end) {
        (None, None) => None,
        (Some(lo), Some(hi)) if hi <= lo => {
            return Err(CliError::usage(format!(
                "--end ({}) must be after --start ({}): the window is empty",
                rfc3339_millis(hi),
                rfc3339_millis(lo)
            )))
        }
        (lo, hi) => Some(lo.unwrap_or(0)..hi.unwrap_or(u64::MAX)),
    };
    if let (Some(lo), Some(hi)) = (args.min_duration, args.max_duration) {
        if lo > hi {
            return Err(CliError::usage(format!(
                "--min-duration ({}) exceeds --max-duration ({})",
                duration(lo),
                duration(hi)
            )));
        }
    }
    Ok(TraceQuery {
        service: args.service.clone(),
        operation: args.operation.clone(),
        kind: args.kind.map(SpanKind::from),
        attributes: args.attrs.clone(),
        start,
        duration_min: args.min_duration,
        duration_max: args.max_duration,
        errors_only: args.errors,
        limit: args.limit,
        mode: if args.trace_level {
            MatchMode::Trace
        } else {
            MatchMode::Span
        },
    })
}

/// One trace as OTLP/JSON would spell its fields: 64-bit integers as
/// decimal strings, the trace id in lowercase hex.
fn trace_json(t: &TraceSummary) -> String {
    json_object(&[
        ("traceId", json!(t.trace_id.to_string())),
        ("rootServiceName", json!(t.root_service)),
        ("rootSpanName", json!(t.root_name)),
        ("hasRoot", json!(t.has_root)),
        (
            "startTimeUnixNano",
            json!(t.start_time_unix_nano.to_string()),
        ),
        ("endTimeUnixNano", json!(t.end_time_unix_nano.to_string())),
        ("durationNanos", json!(t.duration_nanos().to_string())),
        ("spanCount", json!(t.span_count)),
        ("services", json!(t.services)),
        ("hasError", json!(t.has_error)),
    ])
}

fn table(out: &mut dyn Write, traces: &[TraceSummary], limit: usize) -> CliResult {
    if traces.is_empty() {
        writeln!(out, "no matching traces")?;
        return Ok(());
    }
    let rows: Vec<Row> = traces.iter().map(Row::of).collect();
    let duration_w = width(rows.iter().map(|r| &r.duration), 8);
    let spans_w = width(rows.iter().map(|r| &r.spans), 5);
    let service_w = width(rows.iter().map(|r| &r.root_service), 12);
    let name_w = width(rows.iter().map(|r| &r.root_name), 9).min(MAX_NAME_COLUMN);
    writeln!(
        out,
        "{:<32}  {:<24}  {:>duration_w$}  {:>spans_w$}  {:<5}  {}  {}  SERVICES",
        "TRACE ID",
        "START",
        "DURATION",
        "SPANS",
        "ERROR",
        pad("ROOT SERVICE", service_w),
        pad("ROOT SPAN", name_w),
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<32}  {:<24}  {:>duration_w$}  {:>spans_w$}  {:<5}  {}  {}  {}",
            r.trace_id,
            r.start,
            r.duration,
            r.spans,
            r.error,
            pad(&r.root_service, service_w),
            pad(&r.root_name, name_w),
            r.services,
        )?;
    }
    if traces.len() >= limit {
        writeln!(
            out,
            "(the {} most recent matching traces; more may match: raise --limit)",
            count(limit as u64)
        )?;
    }
    Ok(())
}

/// One trace as printed.
struct Row {
    trace_id: String,
    start: String,
    duration: String,
    spans: String,
    error: &'static str,
    root_service: String,
    root_name: String,
    services: String,
}

impl Row {
    /// A missing service reads `-`; when no span of the trace is without a
    /// parent, the earliest span stands in for the root and says so.
    fn of(t: &TraceSummary) -> Row {
        let name = printable(&t.root_name);
        let root_name = if t.has_root {
            name.into_owned()
        } else {
            format!("{name} (no root)")
        };
        let services: Vec<String> = t.services.iter().map(|s| service(s)).collect();
        Row {
            trace_id: t.trace_id.to_string(),
            start: rfc3339_millis(t.start_time_unix_nano),
            duration: duration(t.duration_nanos()),
            spans: count(t.span_count),
            error: if t.has_error { "yes" } else { "no" },
            root_service: service(&t.root_service),
            root_name,
            services: services.join(", "),
        }
    }
}

fn service(name: &str) -> String {
    if name.is_empty() {
        "-".into()
    } else {
        printable(name).into_owned()
    }
}

fn width<'a>(items: impl Iterator<Item = &'a String>, min: usize) -> usize {
    items.map(|s| s.chars().count()).max().unwrap_or(0).max(min)
}
