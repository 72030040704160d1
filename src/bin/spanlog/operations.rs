//! `spanlog operations`: the span names and kinds of one service.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;
use spanlog::{Operation, Options, SpanKind, Store};

use crate::error::CliResult;
use crate::find::Kind;
use crate::format::{json_object, pad, printable};

/// Widest the name column gets before rows stop being aligned; longer
/// names are printed whole rather than cut.
const MAX_NAME_COLUMN: usize = 64;

/// List the operations (span name and kind) of one service, sorted by name
/// then kind.
///
/// Only the store's catalogs are read, never a data block. The store is
/// opened read-only, so this works next to a running writer.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory
    store: PathBuf,
    /// The service (resource attribute service.name)
    service: String,
    /// Only operations of this span kind
    #[arg(long, value_enum, ignore_case = true)]
    kind: Option<Kind>,
    /// Print one JSON object per operation and line: {"name": NAME,
    /// "spanKind": KIND}, where KIND is "" for unspecified
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let store = Store::open(&args.store, Options::read_only())?;
    let ops = store.operations(&args.service, args.kind.map(SpanKind::from))?;
    if args.json {
        for op in &ops {
            writeln!(out, "{}", operation_json(op))?;
        }
    } else {
        table(out, &ops, &args.service)?;
    }
    Ok(())
}

fn operation_json(op: &Operation) -> String {
    let kind = match op.kind {
        SpanKind::Unspecified => "",
        kind => kind.as_str(),
    };
    json_object(&[("name", json!(op.name)), ("spanKind", json!(kind))])
}

fn table(out: &mut dyn Write, ops: &[Operation], service: &str) -> CliResult {
    if ops.is_empty() {
        writeln!(out, "no operations of service {service:?}")?;
        return Ok(());
    }
    let names: Vec<_> = ops.iter().map(|op| printable(&op.name)).collect();
    let name_w = names
        .iter()
        .map(|name| name.chars().count())
        .max()
        .unwrap_or(0)
        .clamp(4, MAX_NAME_COLUMN);
    writeln!(out, "{}  KIND", pad("NAME", name_w))?;
    for (op, name) in ops.iter().zip(&names) {
        writeln!(out, "{}  {}", pad(name, name_w), op.kind.as_str())?;
    }
    Ok(())
}
