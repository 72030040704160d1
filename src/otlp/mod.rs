//! OTLP interop: spans to and from OTLP/JSON and OTLP protobuf.
//!
//! Both formats carry a `TracesData` (or an `ExportTraceServiceRequest`,
//! which has the same shape and wire format). The model and the OTLP message
//! types are mapped in one place, `proto.rs`; the JSON side only translates
//! between JSON text and those message types. So the two formats cannot
//! disagree about ids, enums or grouping.
//!
//! On output, spans with equal resources (schema url included) share one
//! `ResourceSpans` and spans with equal scopes share one `ScopeSpans`, in
//! order of first appearance; spans keep their relative order within a
//! group. Reading the output back therefore yields the spans grouped by
//! resource and scope, which is the input order whenever the input was
//! already grouped.
//!
//! ```
//! use spanlog::otlp;
//! use spanlog::{Span, SpanId, TraceId};
//!
//! let span = Span {
//!     trace_id: TraceId([1; 16]),
//!     span_id: SpanId([2; 8]),
//!     name: "GET /".into(),
//!     ..Span::default()
//! };
//! let json = otlp::to_json_string(&[span.clone()]);
//! assert_eq!(otlp::from_json_str(&json).unwrap(), vec![span.clone()]);
//! assert_eq!(otlp::from_proto(&otlp::to_proto(&[span.clone()])).unwrap(), vec![span]);
//! ```
//!
//! What does not survive: the profiling-only fields of OTLP
//! (`AnyValue.string_value_strindex`, `KeyValue.key_strindex`) and
//! `Resource.entity_refs` are dropped on input, because the model has no
//! place for them; in JSON, a NaN's payload bits become the canonical NaN.

use std::fmt;

use crate::error::Error;

mod json;
mod proto;
#[cfg(test)]
mod tests;

pub use json::{from_json, from_json_str, to_json, to_json_string};
pub use proto::{from_proto, to_proto};

/// Where in a `TracesData` a value sits, for error messages such as
/// `resourceSpans[0].scopeSpans[1].spans[3].traceId`. A borrowed chain,
/// so the path costs nothing unless an error is actually reported.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
}

impl<'a> Path<'a> {
    fn field(&'a self, name: &'static str) -> Path<'a> {
        Path::Field(self, name)
    }

    fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }

    /// An `InvalidInput` error located at this path.
    fn err(&self, msg: impl fmt::Display) -> Error {
        match self {
            Path::Root => Error::InvalidInput(msg.to_string()),
            _ => Error::InvalidInput(format!("{self}: {msg}")),
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

/// Prefixes an `InvalidInput` message with the format it was found in, so a
/// caller reading several formats can tell which input was bad.
fn in_format(format: &str, e: Error) -> Error {
    match e {
        Error::InvalidInput(msg) => Error::InvalidInput(format!("invalid {format}: {msg}")),
        other => other,
    }
}
