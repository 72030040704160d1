//! `spanlog retain`: delete the sealed segments past an age or size limit.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use spanlog::segment::SealedSegment;
use spanlog::{MaintenanceReport, Options};

use crate::error::CliResult;
use crate::format::{bytes, count, json_object, plural, rfc3339, rfc3339_millis};
use crate::maintenance::{self, whole_duration, Figures};
use crate::sizearg::parse_size;
use crate::timearg::parse_duration;

/// Delete the sealed segments that an age or size limit no longer keeps.
///
/// With --max-age, a segment goes when its latest span ended longer ago
/// than that (7d, 12h, 30m). With --max-bytes, while the sealed segments
/// take more than that many bytes (10GiB, 500MiB, 1.5GB, 123), whole hour
/// windows go, oldest first. At least one limit is needed; with both, a
/// segment goes when either says so. Whole segments are deleted, never
/// parts of one.
///
/// The store is opened as its writer, so no writer may have it open.
/// Each deleted segment is listed on stdout, then what was reclaimed.
/// Exit status 0 on success (also when nothing was deleted), 1 when a file
/// cannot be deleted, 2 on usage errors, a missing store or a store locked
/// by a writer.
#[derive(clap::Args)]
#[command(group(
    clap::ArgGroup::new("limit")
        .args(["max_age", "max_bytes"])
        .required(true)
        .multiple(true)
))]
pub struct Args {
    /// The store directory
    store: PathBuf,
    /// Delete segments whose spans all ended longer ago than this (e.g. 7d,
    /// 12h, 30m)
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = parse_duration,
        allow_hyphen_values = true
    )]
    max_age: Option<u64>,
    /// Delete the oldest segments while all take more than this (e.g.
    /// 10GiB, 500MiB, 1.5GB, or bytes)
    #[arg(
        long,
        value_name = "SIZE",
        value_parser = parse_size,
        allow_hyphen_values = true
    )]
    max_bytes: Option<u64>,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

/// A deleted segment as it was before.
struct Dropped {
    id: u64,
    file: PathBuf,
    bytes: u64,
    spans: u64,
    min_start: u64,
    max_end: u64,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let opts = Options {
        retention_max_age: args.max_age.map(Duration::from_nanos),
        retention_max_bytes: args.max_bytes,
        ..Options::default()
    };
    let store = maintenance::open_writer(&args.store, opts, "retain")?;
    let segments = store.sealed_segments();
    let before = Figures::of(&segments);
    eprintln!(
        "applying retention to {}: {before}; keeping {}",
        args.store.display(),
        limits(args)
    );
    let report = match store.apply_retention() {
        Ok(report) => report,
        Err(e) => {
            let err = maintenance::store_error("retention of", &args.store, e);
            // The error says what went wrong; a failure to close as well
            // would add nothing the caller can act on.
            let _ = store.close();
            return Err(err);
        }
    };
    let after = Figures::of(&store.sealed_segments());
    maintenance::close(&store, &args.store)?;
    let dropped = dropped(&segments, &report);
    let reclaimed: u64 = dropped.iter().map(|d| d.bytes).sum();
    eprintln!(
        "retention of {}: {} of {} deleted, {} reclaimed",
        args.store.display(),
        count(dropped.len() as u64),
        plural(before.segments, "segment"),
        bytes(reclaimed)
    );
    if args.json {
        let fields = [
            ("store", json!(args.store.display().to_string())),
            ("max_age_nanos", json!(args.max_age)),
            ("max_bytes", json!(args.max_bytes)),
            (
                "dropped",
                Value::Array(dropped.iter().map(dropped_json).collect()),
            ),
            ("segments_before", json!(before.segments)),
            ("segments_after", json!(after.segments)),
            ("bytes_before", json!(report.bytes_before)),
            ("bytes_after", json!(report.bytes_after)),
            ("bytes_reclaimed", json!(reclaimed)),
        ];
        writeln!(out, "{}", json_object(&fields))?;
        return Ok(());
    }
    for d in &dropped {
        writeln!(
            out,
            "dropped {}  (id {}, {}, {} .. {}, {})",
            file_name(&d.file),
            d.id,
            plural(d.spans, "span"),
            rfc3339_millis(d.min_start),
            rfc3339_millis(d.max_end),
            bytes(d.bytes)
        )?;
    }
    if dropped.is_empty() {
        writeln!(
            out,
            "nothing to drop: {} ({}) within the limits",
            plural(before.segments, "segment"),
            bytes(before.bytes)
        )?;
    } else {
        writeln!(
            out,
            "dropped {} of {}, reclaimed {} ({} bytes); {} kept ({})",
            count(dropped.len() as u64),
            plural(before.segments, "segment"),
            bytes(reclaimed),
            count(reclaimed),
            count(after.segments),
            bytes(after.bytes)
        )?;
    }
    Ok(())
}

/// The limits, as the stderr line tells them.
fn limits(args: &Args) -> String {
    let mut parts = Vec::new();
    if let Some(age) = args.max_age {
        let now = spanlog::fs::now_unix_nanos();
        parts.push(format!(
            "spans that ended in the last {} (after {})",
            whole_duration(age),
            rfc3339_millis(now.saturating_sub(age))
        ));
    }
    if let Some(max) = args.max_bytes {
        parts.push(format!("at most {} ({} bytes)", bytes(max), count(max)));
    }
    parts.join(", ")
}

/// The segments the report names, as they were before.
fn dropped(segments: &[Arc<SealedSegment>], report: &MaintenanceReport) -> Vec<Dropped> {
    let by_id: HashMap<u64, &Arc<SealedSegment>> = segments.iter().map(|s| (s.id, s)).collect();
    report
        .dropped
        .iter()
        .map(|id| match by_id.get(id) {
            Some(s) => Dropped {
                id: *id,
                file: s.path.clone(),
                bytes: s.file_len(),
                spans: s.trailer.span_count,
                min_start: s.trailer.min_start,
                max_end: s.trailer.max_end,
            },
            None => Dropped {
                id: *id,
                file: PathBuf::new(),
                bytes: 0,
                spans: 0,
                min_start: 0,
                max_end: 0,
            },
        })
        .collect()
}

fn dropped_json(d: &Dropped) -> Value {
    json!({
        "id": d.id,
        "file": d.file.display().to_string(),
        "bytes": d.bytes,
        "spans": d.spans,
        "min_start": rfc3339(d.min_start),
        "max_end": rfc3339(d.max_end),
        "min_start_unix_nano": d.min_start,
        "max_end_unix_nano": d.max_end,
    })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
