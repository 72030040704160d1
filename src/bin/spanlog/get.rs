//! `spanlog get`: one trace, as a tree or as OTLP/JSON.

use std::io::Write;
use std::path::PathBuf;

use spanlog::{otlp, Options, Store, TraceId};

use crate::error::{CliError, CliResult};
use crate::tree;

/// Print every span of one trace: a tree by parent span, or OTLP/JSON.
///
/// The store is opened read-only, so this works next to a running writer.
/// Exit status 1 when the trace is not in the store.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory
    store: PathBuf,
    /// The trace id: 32 hex digits
    trace_id: String,
    /// Print the trace as one line of OTLP/JSON (TracesData)
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let trace = parse_trace_id(&args.trace_id)?;
    let store = Store::open(&args.store, Options::read_only())?;
    let spans = store.get_trace(trace)?;
    if spans.is_empty() {
        return Err(CliError::failure(format!(
            "trace {trace} not found in {}",
            args.store.display()
        )));
    }
    if args.json {
        let doc = otlp::to_json(&spans);
        writeln!(out, "{}", serde_json::to_string(&doc).unwrap_or_default())?;
    } else {
        tree::render(out, &spans)?;
    }
    Ok(())
}

/// A trace id from the command line; all zeroes is refused since OTLP
/// defines it as invalid and no stored span can carry it.
pub fn parse_trace_id(text: &str) -> CliResult<TraceId> {
    let id = TraceId::from_hex(text.trim()).map_err(|_| {
        CliError::usage(format!("invalid trace id {text:?}: expected 32 hex digits"))
    })?;
    if id.is_zero() {
        return Err(CliError::usage(
            "invalid trace id: all zeroes is not a valid trace id",
        ));
    }
    Ok(id)
}
