//! `spanlog compact`: merge each time window's sealed segments into one.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use spanlog::{MaintenanceReport, Options};

use crate::error::CliResult;
use crate::format::{bytes, count, duration, json_object, plural, round};
use crate::maintenance::{self, change, whole_duration, Figures, NewFiles, Ticker};
use crate::sizearg::parse_size;
use crate::timearg::parse_duration;

/// Merge the sealed segments of each time window into one segment.
///
/// Segments are grouped by the time window (--window, an hour by default)
/// their earliest span starts in; the segments of each window are merged
/// into one segment, sorted by trace, and then deleted. Spans identical in every field are written once;
/// spans that only share ids are all kept.
///
/// The store is opened as its writer, so no writer may have it open
/// (readers may: they keep reading the old segments until they let go).
/// Progress goes to stderr, a summary to stdout. Exit status 0 on success,
/// 1 when data is damaged or writing fails, 2 on usage errors, a missing
/// store or a store locked by a writer.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory
    store: PathBuf,
    /// Length of the time windows: segments merge only with segments of the
    /// same window (e.g. 30m, 1h, 1d)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "1h",
        value_parser = parse_window,
        allow_hyphen_values = true
    )]
    window: u64,
    /// Most bytes written per second (e.g. 50MiB, 200MB); no limit if not
    /// given
    #[arg(
        long,
        value_name = "BYTES_PER_SEC",
        value_parser = parse_rate,
        allow_hyphen_values = true
    )]
    rate: Option<u64>,
    /// Print one JSON object instead of text
    #[arg(long)]
    json: bool,
}

fn parse_window(text: &str) -> Result<u64, String> {
    match parse_duration(text)? {
        0 => Err("the window must be longer than 0".into()),
        n => Ok(n),
    }
}

fn parse_rate(text: &str) -> Result<u64, String> {
    let per_sec = text
        .trim()
        .strip_suffix("/s")
        .map_or(text, |s| s.trim_end());
    match parse_size(per_sec)? {
        0 => Err("the rate must be at least 1 byte per second".into()),
        n => Ok(n),
    }
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let opts = Options {
        compaction_window: Duration::from_nanos(args.window),
        compaction_rate_bytes_per_sec: args.rate,
        ..Options::default()
    };
    let store = maintenance::open_writer(&args.store, opts, "compact")?;
    let before = Figures::of(&store.sealed_segments());
    let rate = args
        .rate
        .map(|r| format!(", at most {}/s", bytes(r)))
        .unwrap_or_default();
    eprintln!(
        "compacting {}: {before}, windows of {}{rate}",
        args.store.display(),
        whole_duration(args.window)
    );
    let started = Instant::now();
    let written = NewFiles::since_now(&args.store);
    let label = args.store.display().to_string();
    let ticker = Ticker::start(move |elapsed| {
        format!(
            "compacting {label}: {} written (inputs {}), {}s",
            bytes(written.bytes()),
            bytes(before.bytes),
            elapsed.as_secs()
        )
    });
    let result = store.compact();
    ticker.stop();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let err = maintenance::store_error("compaction of", &args.store, e);
            // The error says what went wrong; a failure to close as well
            // would add nothing the caller can act on.
            let _ = store.close();
            return Err(err);
        }
    };
    let after = Figures::of(&store.sealed_segments());
    maintenance::close(&store, &args.store)?;
    let elapsed = started.elapsed();
    let summary = Summary {
        before,
        after,
        report,
        elapsed,
    };
    let took = duration(elapsed.as_nanos() as u64);
    if summary.report.merged.is_empty() {
        eprintln!(
            "compacted {} in {took}: nothing to merge, no window has more than one segment",
            args.store.display()
        );
    } else {
        eprintln!(
            "compacted {} in {took}: {} merged into {}, {} dropped, {} -> {}",
            args.store.display(),
            plural(summary.merged_inputs(), "segment"),
            summary.report.merged.len(),
            plural(summary.report.duplicates_dropped, "duplicate span"),
            bytes(summary.report.bytes_before),
            bytes(summary.report.bytes_after),
        );
    }
    if args.json {
        writeln!(out, "{}", summary.json(&args.store))?;
    } else {
        summary.text(out)?;
    }
    Ok(())
}

/// What a compaction did.
struct Summary {
    before: Figures,
    after: Figures,
    report: MaintenanceReport,
    elapsed: Duration,
}

impl Summary {
    fn merged_inputs(&self) -> u64 {
        self.report
            .merged
            .iter()
            .map(|(inputs, _)| inputs.len() as u64)
            .sum()
    }

    fn text(&self, out: &mut dyn Write) -> CliResult {
        let r = &self.report;
        let line = |k: &str, v: String| format!("{k:<20}{v}");
        writeln!(
            out,
            "{}",
            line(
                "segments",
                format!(
                    "{} -> {}",
                    count(self.before.segments),
                    count(self.after.segments)
                )
            )
        )?;
        let merges = if r.merged.is_empty() {
            "0 (no window has more than one segment)".to_string()
        } else {
            format!(
                "{} ({} merged)",
                count(r.merged.len() as u64),
                plural(self.merged_inputs(), "segment")
            )
        };
        writeln!(out, "{}", line("merges", merges))?;
        for (inputs, output) in &r.merged {
            let ids: Vec<String> = inputs.iter().map(u64::to_string).collect();
            writeln!(
                out,
                "{}",
                line("", format!("{} -> {output}", ids.join(", ")))
            )?;
        }
        writeln!(
            out,
            "{}",
            line("duplicates dropped", count(r.duplicates_dropped))
        )?;
        // Only when `spanlog delete` erased traces (format-spec 7.12).
        if r.spans_erased > 0 || !r.erased.is_empty() || r.erasures_completed > 0 {
            let text = format!(
                "{} removed, {} deleted whole, {} complete",
                plural(r.spans_erased, "span"),
                plural(r.erased.len() as u64, "segment"),
                plural(r.erasures_completed, "trace")
            );
            writeln!(out, "{}", line("erased", text))?;
        }
        writeln!(
            out,
            "{}",
            line(
                "bytes",
                format!(
                    "{} -> {} ({}{} -> {})",
                    bytes(r.bytes_before),
                    bytes(r.bytes_after),
                    change(r.bytes_before, r.bytes_after)
                        .map(|c| format!("{c}; "))
                        .unwrap_or_default(),
                    count(r.bytes_before),
                    count(r.bytes_after)
                )
            )
        )?;
        Ok(())
    }

    fn json(&self, store: &std::path::Path) -> String {
        let r = &self.report;
        let merged: Vec<serde_json::Value> = r
            .merged
            .iter()
            .map(|(inputs, output)| json!({"inputs": inputs, "output": output}))
            .collect();
        json_object(&[
            ("store", json!(store.display().to_string())),
            ("segments_before", json!(self.before.segments)),
            ("segments_after", json!(self.after.segments)),
            ("merges", json!(r.merged.len())),
            ("segments_merged", json!(self.merged_inputs())),
            ("merged", json!(merged)),
            ("duplicates_dropped", json!(r.duplicates_dropped)),
            ("spans_erased", json!(r.spans_erased)),
            ("segments_erased", json!(r.erased)),
            ("erasures_completed", json!(r.erasures_completed)),
            ("bytes_before", json!(r.bytes_before)),
            ("bytes_after", json!(r.bytes_after)),
            (
                "elapsed_seconds",
                json!(round(self.elapsed.as_secs_f64(), 3)),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_sizes_per_second() {
        assert_eq!(parse_rate("50MiB"), Ok(50 << 20));
        assert_eq!(parse_rate("50MiB/s"), Ok(50 << 20));
        assert_eq!(parse_rate("1000"), Ok(1000));
        assert!(parse_rate("0").unwrap_err().contains("at least 1"));
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn windows_must_not_be_empty() {
        assert_eq!(parse_window("1h"), Ok(3_600_000_000_000));
        assert_eq!(parse_window("1d"), Ok(86_400_000_000_000));
        assert!(parse_window("0s").unwrap_err().contains("longer than 0"));
        assert!(parse_window("soon").is_err());
    }
}
