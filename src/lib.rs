//! spanlog: an embedded, append-only storage engine for OpenTelemetry spans.
//!
//! See `README.md` for an overview and `format-spec.md` for the on-disk format.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod attrs;
pub mod block;
pub mod codec;
pub mod compaction;
pub mod dict;
pub mod digest;
pub mod error;
pub mod faults;
pub mod fs;
pub mod gen;
pub mod hash;
pub mod index;
pub mod memtable;
pub mod options;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod query;
pub mod search;
pub mod segment;
pub mod span;
pub mod store;
pub mod tables;
pub mod tombstone;
pub mod verify;

pub use error::{Error, Result};
pub use index::Operation;
pub use options::Options;
pub use query::{AttrFilter, MatchMode, TraceQuery, TraceSummary};
pub use span::{
    AnyValue, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status, StatusCode,
    TraceId,
};
pub use store::{MaintenanceReport, MaintenanceStatus, Scan, SegmentInfo, Store, StoreStats};
