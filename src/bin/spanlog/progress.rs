//! A one-line progress display on stderr for inputs that take a while.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use crate::format::{bytes, count};

/// Smaller inputs are done before a progress line would be worth reading.
const LARGE: u64 = 8 << 20;
/// Redrawing more often than this costs time and shows nothing new.
const REDRAW: Duration = Duration::from_millis(100);

/// Bytes read and spans appended of one input, redrawn in place with `\r`.
pub struct Progress {
    label: String,
    /// Unknown for stdin: it counts as large once that much was read.
    total: Option<u64>,
    read: u64,
    spans: u64,
    /// Only a terminal shows `\r` as intended; in a log file the redraws
    /// would be noise.
    enabled: bool,
    last_draw: Option<Instant>,
    /// Characters on the line now, blanked before anything else is printed.
    width: usize,
}

impl Progress {
    pub fn new(label: &str, total: Option<u64>) -> Self {
        Progress {
            label: label.to_string(),
            total,
            read: 0,
            spans: 0,
            enabled: std::io::stderr().is_terminal(),
            last_draw: None,
            width: 0,
        }
    }

    pub fn read(&mut self, n: usize) {
        self.read += n as u64;
        self.tick();
    }

    pub fn spans(&mut self, n: usize) {
        self.spans += n as u64;
        self.tick();
    }

    /// Blanks the line, so what is printed next starts in column 0.
    pub fn clear(&mut self) {
        if self.width > 0 {
            eprint!("\r{:w$}\r", "", w = self.width);
            self.width = 0;
        }
    }

    fn tick(&mut self) {
        let large = self.total.unwrap_or(self.read) > LARGE;
        let due = self.last_draw.is_none_or(|t| t.elapsed() >= REDRAW);
        if self.enabled && large && due {
            self.draw();
        }
    }

    fn draw(&mut self) {
        let read = match self.total {
            Some(total) => format!(
                "{} of {} ({}%)",
                bytes(self.read),
                bytes(total),
                self.read * 100 / total.max(1)
            ),
            None => bytes(self.read),
        };
        let text = format!("{}: {read}, {} spans", self.label, count(self.spans));
        let len = text.chars().count();
        // Padding blanks what a longer previous line left behind.
        eprint!("\r{text}{:pad$}", "", pad = self.width.saturating_sub(len));
        self.width = len.max(self.width);
        self.last_draw = Some(Instant::now());
    }
}
