//! `spanlog dump`: the spans of a segment file as JSON lines.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Map, Value};
use spanlog::{otlp, Span};

use crate::error::{CliError, CliResult};
use crate::format::plural;
use crate::layout::StoreFile;

/// Print the spans of a store file as JSON lines, block by block.
///
/// Each line is one span in the OTLP/JSON span shape (ids in hex, times as
/// nanosecond strings, typed attribute values) plus "service", "block" (the
/// 0-based block number in the file), "resource" and "scope", so each line
/// stands alone and loses nothing. Spans are printed block by block, so
/// for a sealed segment memory stays bounded by one block.
#[derive(clap::Args)]
pub struct Args {
    /// A store file (*.seg, *.wal or *.seg.tmp); it is not modified
    path: PathBuf,
    /// Only this block (0-based, in file order)
    #[arg(long, value_name = "N")]
    block: Option<usize>,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let file = StoreFile::open(&args.path)?;
    let (source, blocks) = file.blocks();
    let chosen: Vec<usize> = match args.block {
        Some(n) if n < blocks.len() => vec![n],
        Some(n) => {
            return Err(CliError::usage(format!(
                "{} has {}; there is no block {n} (blocks count from 0)",
                args.path.display(),
                plural(blocks.len() as u64, "block")
            )))
        }
        None => (0..blocks.len()).collect(),
    };
    let mut damaged = 0;
    for i in chosen {
        match source.all_spans(&blocks[i]) {
            Ok(spans) => {
                for span in &spans {
                    writeln!(out, "{}", span_json(span, i))?;
                }
            }
            // Later blocks are still worth printing; the status says so.
            Err(e) => {
                out.flush()?;
                eprintln!("spanlog: block {i} skipped: {e}");
                damaged += 1;
            }
        }
    }
    if damaged > 0 {
        let what = plural(damaged, "damaged block");
        return Err(CliError::failure(format!("{what} skipped")));
    }
    Ok(())
}

/// The span's object from its OTLP/JSON document, with its resource and
/// scope (and their schema urls) folded in.
fn span_json(span: &Span, block: usize) -> Value {
    let doc = otlp::to_json(std::slice::from_ref(span));
    let rs = &doc["resourceSpans"][0];
    let ss = &rs["scopeSpans"][0];
    let mut obj: Map<String, Value> = ss["spans"][0].as_object().cloned().unwrap_or_default();
    obj.insert("service".into(), json!(span.service_name()));
    obj.insert("block".into(), json!(block));
    obj.insert(
        "resource".into(),
        with_schema(&rs["resource"], &rs["schemaUrl"]),
    );
    obj.insert("scope".into(), with_schema(&ss["scope"], &ss["schemaUrl"]));
    Value::Object(obj)
}

fn with_schema(object: &Value, schema_url: &Value) -> Value {
    let mut o = object.as_object().cloned().unwrap_or_default();
    if let Value::String(url) = schema_url {
        if !url.is_empty() {
            o.insert("schemaUrl".into(), json!(url));
        }
    }
    Value::Object(o)
}
