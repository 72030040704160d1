//! `spanlog verify`: every checksum, block and index entry, checked.

use std::io::Write;
use std::path::PathBuf;

use spanlog::verify::{verify_path, Problem};

use crate::error::{CliError, CliResult};
use crate::format::plural;

/// Check every checksum, decode every block and cross-check the indexes.
///
/// Prints each problem found (file, byte offset, what is wrong), then a
/// summary. Exit status 0 when clean (warnings allowed), 1 when an error
/// was found, 2 when the path cannot be read. Nothing is modified.
#[derive(clap::Args)]
pub struct Args {
    /// A store directory, or one store file (*.seg, *.wal, *.seg.tmp or
    /// tombstones.log)
    path: PathBuf,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let report = verify_path(&args.path)?;
    for p in &report.problems {
        writeln!(out, "{}", problem_line(p))?;
    }
    let errors = report.problems.iter().filter(|p| !p.warning).count();
    let warnings = report.problems.len() - errors;
    writeln!(
        out,
        "checked {}, {}, {}: {}, {}",
        plural(report.segments as u64, "segment"),
        plural(report.blocks, "block"),
        plural(report.spans, "span"),
        plural(errors as u64, "error"),
        plural(warnings as u64, "warning"),
    )?;
    if report.erased_traces > 0 {
        writeln!(
            out,
            "{} erased, awaiting compaction (tombstones.log)",
            plural(report.erased_traces, "trace")
        )?;
    }
    if report.segments == 0 && args.path.is_dir() {
        writeln!(
            out,
            "note: {} holds no segment or log files",
            args.path.display()
        )?;
    }
    if report.is_clean() {
        return Ok(());
    }
    Err(CliError::failure(format!(
        "{} is damaged: {} found",
        args.path.display(),
        plural(errors as u64, "error")
    )))
}

/// A problem not tied to a file position (an I/O failure while checking)
/// has an empty path; it is printed without a location.
fn problem_line(p: &Problem) -> String {
    if p.path.as_os_str().is_empty() {
        let kind = if p.warning { "warning" } else { "error" };
        format!("{kind}: {}", p.detail)
    } else {
        p.to_string()
    }
}
