//! What `compact` and `retain` share: opening a store as its one writer,
//! the figures of its sealed segments, a progress line while the work
//! runs, and closing the store.

use std::collections::HashSet;
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use spanlog::segment::SealedSegment;
use spanlog::store::LOCK_FILE;
use spanlog::{Options, Store};

use crate::error::{io_error, CliError, CliResult};
use crate::format::{bytes, duration, plural};
use crate::layout;

/// How often the progress line is redrawn.
const REDRAW: Duration = Duration::from_millis(250);

/// Opens the store in `path` as its writer, for the command `command`.
///
/// The directory must exist and look like a store: a mistyped path is
/// refused rather than made into a new, empty store.
pub fn open_writer(path: &Path, opts: Options, command: &str) -> CliResult<Store> {
    check_store_dir(path)?;
    let opts = Options {
        create_if_missing: false,
        read_only: false,
        ..opts
    };
    Store::open(path, opts).map_err(|e| match e {
        spanlog::Error::Locked(_) => {
            let mut err = CliError::from(e);
            err.message = format!(
                "{}; {command} needs the writer's lock: run it when no writer has the store open",
                err.message
            );
            err
        }
        e => {
            let mut err = CliError::from(e);
            err.message = format!("cannot open store {}: {}", path.display(), err.message);
            err
        }
    })
}

fn check_store_dir(path: &Path) -> CliResult {
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            CliError::usage(format!(
                "no store at {}: the directory does not exist",
                path.display()
            ))
        } else {
            io_error(path, "open", e)
        }
    })?;
    if !meta.is_dir() {
        return Err(CliError::usage(format!(
            "{} is not a directory; expected a store directory",
            path.display()
        )));
    }
    let entries = std::fs::read_dir(path).map_err(|e| io_error(path, "read", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(path, "read", e))?;
        let name = PathBuf::from(entry.file_name());
        if name.as_os_str() == LOCK_FILE || layout::kind(&name).is_some() {
            return Ok(());
        }
    }
    Err(CliError::usage(format!(
        "{} is not a spanlog store: it holds no LOCK, *.seg or *.wal file",
        path.display()
    )))
}

/// An error of the store while `doing` something to the store at `path`.
/// The store was opened, so the path was right: whatever fails now (a
/// damaged segment, a write or a delete) is a failure, not a usage error.
pub fn store_error(doing: &str, path: &Path, e: spanlog::Error) -> CliError {
    CliError::failure(format!("{doing} {} failed: {e}", path.display()))
}

/// Closes the store: its lock is released and nothing of it stays in
/// memory.
pub fn close(store: &Store, path: &Path) -> CliResult {
    store
        .close()
        .map_err(|e| CliError::failure(format!("cannot close store {}: {e}", path.display())))
}

/// How many sealed segments there are and the bytes of their files.
#[derive(Clone, Copy)]
pub struct Figures {
    pub segments: u64,
    pub bytes: u64,
}

impl Figures {
    pub fn of(segments: &[Arc<SealedSegment>]) -> Figures {
        Figures {
            segments: segments.len() as u64,
            bytes: segments.iter().map(|s| s.file_len()).sum(),
        }
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {}",
            plural(self.segments, "segment"),
            bytes(self.bytes)
        )
    }
}

/// `after` as a signed percentage change from `before`, `-35.2%`; `None`
/// when `before` is zero.
pub fn change(before: u64, after: u64) -> Option<String> {
    if before == 0 {
        return None;
    }
    let pct = (after as f64 - before as f64) * 100.0 / before as f64;
    Some(format!("{pct:+.1}%"))
}

/// A duration as it was likely given: in days or hours when it is a whole
/// number of them (`7d`, `12h`), otherwise as [`duration`] writes it.
pub fn whole_duration(nanos: u64) -> String {
    const HOUR: u64 = 3_600_000_000_000;
    const DAY: u64 = 24 * HOUR;
    if nanos >= DAY && nanos.is_multiple_of(DAY) {
        format!("{}d", nanos / DAY)
    } else if nanos >= HOUR && nanos.is_multiple_of(HOUR) {
        format!("{}h", nanos / HOUR)
    } else {
        duration(nanos)
    }
}

/// Segment files that appear in a store directory while a command runs,
/// for a progress line: the merged segments being written.
pub struct NewFiles {
    dir: PathBuf,
    before: HashSet<OsString>,
}

impl NewFiles {
    pub fn since_now(dir: &Path) -> NewFiles {
        NewFiles {
            dir: dir.to_path_buf(),
            before: segment_files(dir).into_iter().map(|(n, _)| n).collect(),
        }
    }

    /// Bytes of the segment files (finished or not) that were not there
    /// before.
    pub fn bytes(&self) -> u64 {
        segment_files(&self.dir)
            .into_iter()
            .filter(|(name, _)| !self.before.contains(name))
            .map(|(_, len)| len)
            .sum()
    }
}

/// Names and sizes of the sealed and unfinished segment files in `dir`; a
/// file that vanishes while it is looked at is left out.
fn segment_files(dir: &Path) -> Vec<(OsString, u64)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            matches!(
                layout::kind(Path::new(&e.file_name())),
                Some(layout::Kind::Segment | layout::Kind::Unfinished)
            )
        })
        .filter_map(|e| Some((e.file_name(), e.metadata().ok()?.len())))
        .collect()
}

/// A status line on stderr, redrawn in place while a long call runs. Only
/// a terminal gets it: in a log file the redraws would be noise.
pub struct Ticker {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Ticker {
    /// Starts redrawing `text(elapsed)` until [`stop`](Ticker::stop).
    pub fn start(text: impl Fn(Duration) -> String + Send + 'static) -> Ticker {
        if !std::io::stderr().is_terminal() {
            return Ticker {
                stop: None,
                thread: None,
            };
        }
        let (stop, stopped) = mpsc::channel::<()>();
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("spanlog-progress".into())
            .spawn(move || {
                let mut width: usize = 0;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REDRAW) {
                    let line = text(started.elapsed());
                    let len = line.chars().count();
                    eprint!("\r{line}{:pad$}", "", pad = width.saturating_sub(len));
                    width = width.max(len);
                }
                if width > 0 {
                    eprint!("\r{:width$}\r", "");
                }
            })
            .ok();
        Ticker {
            stop: Some(stop),
            thread,
        }
    }

    /// Stops redrawing and blanks the line, so what is printed next starts
    /// in column 0.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_signed_percentages() {
        assert_eq!(change(200, 150).as_deref(), Some("-25.0%"));
        assert_eq!(change(100, 110).as_deref(), Some("+10.0%"));
        assert_eq!(change(100, 100).as_deref(), Some("+0.0%"));
        assert_eq!(change(0, 10), None);
    }

    #[test]
    fn durations_read_in_whole_days_or_hours() {
        assert_eq!(whole_duration(7 * 86_400_000_000_000), "7d");
        assert_eq!(whole_duration(12 * 3_600_000_000_000), "12h");
        assert_eq!(whole_duration(36 * 3_600_000_000_000), "36h");
        assert_eq!(whole_duration(30 * 60_000_000_000), "30m00s");
        assert_eq!(whole_duration(1_500_000_000), "1.5s");
    }
}
