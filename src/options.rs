//! Store options. The defaults are safe for production: every acknowledged
//! span is fsynced, memory is bounded, inputs are limited.

use std::time::Duration;

/// How a store is opened and how it writes.
///
/// ```
/// let opts = spanlog::Options { segment_max_bytes: 16 << 20, ..Default::default() };
/// assert!(!opts.read_only);
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    /// Open for reading only: no lock is taken, nothing is written, and an
    /// active segment left by a writer is read as far as its valid blocks go.
    pub read_only: bool,
    /// Create the directory when it does not exist (writers only).
    pub create_if_missing: bool,
    /// Approximate uncompressed size of a block of a sealed segment. Smaller
    /// blocks make a trace lookup decode less; larger ones compress better.
    pub block_target_bytes: usize,
    /// Approximate uncompressed size of a write-ahead log block. A flush
    /// writes the spans not yet in the log as blocks of about this size.
    pub wal_block_bytes: usize,
    /// Approximate uncompressed size of the spans of one segment: when the
    /// in-memory table reaches it, it is frozen and written out as a sealed
    /// segment. Memory is bounded by two tables (the current one and the
    /// frozen one; a sealed table's spans are freed by the appends that
    /// follow, twice as fast as they fill the current one); a table of
    /// spans takes about three to four times this value in memory, so the
    /// default bounds the engine near 150 MiB.
    pub segment_max_bytes: u64,
    /// Age at which a non-empty table is written out as a sealed segment on
    /// the next append or flush, so old data does not wait in the log.
    pub segment_max_age: Duration,
    /// zstd compression level of blocks (1 fastest .. 19 smallest).
    pub compression_level: i32,
    /// A span whose encoded size exceeds this is refused.
    pub max_span_bytes: usize,
    /// A span with more attributes than this (span, events, links, resource
    /// and scope together) is refused.
    pub max_attributes: usize,
    /// Deepest nesting of array / key-value-list values accepted.
    pub max_value_depth: usize,
    /// How a writer open treats a write-ahead log with an invalid block
    /// followed by valid ones. By default (`false`) it recovers up to the
    /// invalid block, keeps the bytes after it in `<log>.damaged-<offset>`
    /// and logs an error: after a power loss such blocks are writes that
    /// were never acknowledged and reached the disk out of order. With
    /// `true` the open fails with a corruption error and changes nothing.
    pub strict_recovery: bool,
    /// Segments merge only with segments whose earliest span starts in the
    /// same window of this length, so retention can drop whole windows.
    pub compaction_window: Duration,
    /// Segments of similar size in one window are merged once there are
    /// this many (at least 2).
    pub compaction_fan_in: usize,
    /// Most bytes per second a merge writes; `None` for no limit. Merges
    /// also give way to the sealer: while it writes a segment they wait
    /// up to 20 ms after each block, so ingest keeps its speed on a small
    /// machine and merges use the time between seals.
    pub compaction_rate_bytes_per_sec: Option<u64>,
    /// Approximate uncompressed size of a block of a merged segment. A
    /// trace lookup decompresses one block, so larger blocks make lookups
    /// slower and the segment smaller: with the merge's own dictionary, 32
    /// KiB instead of the default 16 KiB takes about 4% off a merged
    /// segment and adds about 25% to a lookup.
    pub compaction_block_bytes: usize,
    /// zstd level of merged blocks: merges run in the background, so they
    /// spend more time than the sealer on compressing.
    pub compaction_level: i32,
    /// Retention: segments whose latest span end is older than this are
    /// deleted.
    pub retention_max_age: Option<Duration>,
    /// Retention: while the sealed segments take more than this many bytes,
    /// the oldest windows are deleted.
    pub retention_max_bytes: Option<u64>,
    /// Runs retention and compaction on a background thread at this
    /// interval (writers only); `None` runs them only when asked.
    pub maintenance_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            read_only: false,
            create_if_missing: true,
            block_target_bytes: 16 << 10,
            wal_block_bytes: 256 << 10,
            segment_max_bytes: 16 << 20,
            segment_max_age: Duration::from_secs(3600),
            compression_level: 3,
            max_span_bytes: 4 << 20,
            max_attributes: 10_000,
            max_value_depth: 32,
            strict_recovery: false,
            compaction_window: Duration::from_secs(3600),
            compaction_fan_in: 4,
            compaction_rate_bytes_per_sec: None,
            compaction_block_bytes: 16 << 10,
            compaction_level: 9,
            retention_max_age: None,
            retention_max_bytes: None,
            maintenance_interval: None,
        }
    }
}

impl Options {
    /// Options for a read-only open.
    pub fn read_only() -> Self {
        Options {
            read_only: true,
            create_if_missing: false,
            ..Options::default()
        }
    }
}
