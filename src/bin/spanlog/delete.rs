//! `spanlog delete`: erase traces, for privacy requests.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};
use spanlog::{Options, TraceId};

use crate::error::CliResult;
use crate::format::{bytes, count, json_object, plural};
use crate::get::parse_trace_id;
use crate::maintenance;

/// Erase traces: no read returns their spans once this returns.
///
/// The deletion is durable when the command returns: every span of these
/// traces stored by then (in sealed segments, in the write-ahead log) is
/// invisible to every read from then on. Spans of the same traces appended
/// later are new data. The bytes are removed from the disk by the next
/// compaction that covers the segments holding them (`spanlog compact`, or
/// the next maintenance round of a writer), or at once with --purge.
///
/// The store is opened as its writer, so no writer may have it open.
/// Each trace is listed with the spans it had. Exit status 0 on success,
/// 1 when writing fails or data is damaged, 2 on usage errors (an invalid
/// trace id), a missing store or a store locked by a writer.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory
    store: PathBuf,
    /// The trace ids to erase: 32 hex digits each
    #[arg(required = true, value_name = "TRACE_ID")]
    trace_ids: Vec<String>,
    /// Also rewrite now the segments that hold them (one maintenance round:
    /// the compaction policy's merges and the rewrites erasure needs), so
    /// that their bytes are gone from the disk when the command returns
    #[arg(long)]
    purge: bool,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    // Every id is checked before the store is touched.
    let mut ids: Vec<TraceId> = Vec::with_capacity(args.trace_ids.len());
    for text in &args.trace_ids {
        let id = parse_trace_id(text)?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let store = maintenance::open_writer(&args.store, Options::default(), "delete")?;
    let fail = |doing: &str, e: spanlog::Error| {
        let err = maintenance::store_error(doing, &args.store, e);
        let _ = store.close();
        err
    };
    let mut found = Vec::with_capacity(ids.len());
    for id in &ids {
        match store.get_trace(*id) {
            Ok(spans) => found.push(spans.len() as u64),
            Err(e) => return Err(fail("reading", e)),
        }
    }
    if let Err(e) = store.delete_traces(&ids) {
        return Err(fail("erasing traces in", e));
    }
    let purge = if args.purge {
        match store.maintain() {
            Ok(report) => Some(report),
            Err(e) => return Err(fail("purging erased traces from", e)),
        }
    } else {
        None
    };
    let pending = match store.erased_traces() {
        Ok(v) => v.len() as u64,
        Err(e) => return Err(fail("reading", e)),
    };
    maintenance::close(&store, &args.store)?;
    let spans: u64 = found.iter().sum();
    if args.json {
        let traces: Vec<Value> = ids
            .iter()
            .zip(&found)
            .map(|(id, n)| json!({"trace_id": id.to_string(), "spans": n}))
            .collect();
        let mut fields = vec![
            ("store", json!(args.store.display().to_string())),
            ("erased", Value::Array(traces)),
            ("spans", json!(spans)),
            ("purged", json!(args.purge)),
            ("traces_awaiting_compaction", json!(pending)),
        ];
        if let Some(r) = &purge {
            fields.push(("spans_removed", json!(r.spans_erased)));
            fields.push(("bytes_before", json!(r.bytes_before)));
            fields.push(("bytes_after", json!(r.bytes_after)));
        }
        writeln!(out, "{}", json_object(&fields))?;
        return Ok(());
    }
    for (id, n) in ids.iter().zip(&found) {
        let what = match n {
            0 => "no span stored".to_string(),
            n => plural(*n, "span"),
        };
        writeln!(out, "erased {id}  ({what})")?;
    }
    writeln!(
        out,
        "erased {} ({}) in {}: no read returns them from now on",
        plural(ids.len() as u64, "trace"),
        plural(spans, "span"),
        args.store.display()
    )?;
    match &purge {
        Some(r) => writeln!(
            out,
            "purged: {} spans removed from the disk, {} -> {}; {}",
            count(r.spans_erased),
            bytes(r.bytes_before),
            bytes(r.bytes_after),
            if pending == 0 {
                "no file holds the erased traces any more".to_string()
            } else {
                format!(
                    "{} still held by a file until the next compaction",
                    plural(pending, "erased trace")
                )
            }
        )?,
        None if pending > 0 => writeln!(
            out,
            "their bytes are removed from the disk by the next compaction (`spanlog compact {}`, or a writer's maintenance round)",
            args.store.display()
        )?,
        None => {}
    }
    Ok(())
}
