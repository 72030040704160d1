//! A trace drawn as a tree of spans, for `get` and `demo`.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use spanlog::{Span, StatusCode};

use crate::format::{duration, pad, printable, rfc3339};

/// Widest the span column gets before rows stop being aligned; longer
/// names are printed whole rather than cut.
const MAX_SPAN_COLUMN: usize = 64;

/// One printed row: the tree drawing before the span name, and the span.
struct Row<'a> {
    prefix: String,
    span: &'a Span,
}

/// Prints a header line and one row per span. A span whose parent is not in
/// the trace is a root; children are ordered by start time.
pub fn render(out: &mut dyn Write, spans: &[Span]) -> io::Result<()> {
    if spans.is_empty() {
        return Ok(());
    }
    let start = header(out, spans)?;
    let rows = rows(spans);
    let service_w = column_width(rows.iter().map(|r| service(r.span)), 7);
    let span_w = column_width(rows.iter().map(|r| span_column(r)), 4).min(MAX_SPAN_COLUMN);
    writeln!(
        out,
        "{}  {}  {:<11}{:>9} {:>10}  STATUS",
        pad("SERVICE", service_w),
        pad("SPAN", span_w),
        "KIND",
        "DURATION",
        "OFFSET"
    )?;
    for r in &rows {
        let s = r.span;
        writeln!(
            out,
            "{}  {}  {:<11}{:>9} {:>10}{}",
            pad(&service(s), service_w),
            pad(&span_column(r), span_w),
            s.kind.as_str(),
            duration(s.duration_nanos()),
            format!(
                "+{}",
                duration(s.start_time_unix_nano.saturating_sub(start))
            ),
            status(s)
        )?;
    }
    Ok(())
}

fn service(s: &Span) -> String {
    printable(s.service_name().unwrap_or("-")).into_owned()
}

/// The tree drawing and the span name.
fn span_column(r: &Row<'_>) -> String {
    format!("{}{}", r.prefix, printable(&r.span.name))
}

fn column_width(items: impl Iterator<Item = String>, min: usize) -> usize {
    items.map(|s| s.chars().count()).max().unwrap_or(0).max(min)
}

fn status(s: &Span) -> String {
    match s.status.code {
        StatusCode::Error if s.status.message.is_empty() => "  ERROR".into(),
        StatusCode::Error => format!("  ERROR: {}", printable(&s.status.message)),
        _ => String::new(),
    }
}

/// Depth-first rows. Spans caught in a parent cycle (possible in bad input)
/// are never reached from a root; they are printed as roots at the end, so
/// every span appears exactly once.
fn rows(spans: &[Span]) -> Vec<Row<'_>> {
    let (kids, has_parent) = children(spans);
    let mut roots: Vec<usize> = (0..spans.len()).filter(|i| !has_parent[*i]).collect();
    sort_by_start(spans, &mut roots);
    let mut seen = vec![false; spans.len()];
    let mut out = Vec::with_capacity(spans.len());
    for r in roots {
        walk(spans, &kids, r, &mut seen, &mut out);
    }
    for i in 0..spans.len() {
        if !seen[i] {
            walk(spans, &kids, i, &mut seen, &mut out);
        }
    }
    out
}

/// The line above the rows; returns when the trace started.
fn header(out: &mut dyn Write, spans: &[Span]) -> io::Result<u64> {
    let start = spans.iter().map(|s| s.start_time_unix_nano).min();
    let end = spans.iter().map(|s| s.end_time_unix_nano).max();
    let (start, end) = (start.unwrap_or(0), end.unwrap_or(0));
    let services: HashSet<&str> = spans.iter().filter_map(|s| s.service_name()).collect();
    writeln!(
        out,
        "trace {}: {} spans, {} services, {}, started {}",
        spans[0].trace_id,
        spans.len(),
        services.len(),
        duration(end.saturating_sub(start)),
        rfc3339(start)
    )?;
    Ok(start)
}

/// Child lists per span, and whether each span has a parent in the trace.
fn children(spans: &[Span]) -> (Vec<Vec<usize>>, Vec<bool>) {
    let mut by_id = HashMap::with_capacity(spans.len());
    for (i, s) in spans.iter().enumerate() {
        by_id.entry(s.span_id).or_insert(i);
    }
    let mut kids = vec![Vec::new(); spans.len()];
    let mut has_parent = vec![false; spans.len()];
    for (i, s) in spans.iter().enumerate() {
        let parent = s.parent_span_id.and_then(|p| by_id.get(&p).copied());
        if let Some(p) = parent.filter(|p| *p != i) {
            kids[p].push(i);
            has_parent[i] = true;
        }
    }
    for k in &mut kids {
        sort_by_start(spans, k);
    }
    (kids, has_parent)
}

fn sort_by_start(spans: &[Span], idx: &mut [usize]) {
    idx.sort_by_key(|i| (spans[*i].start_time_unix_nano, spans[*i].span_id));
}

/// Iterative, since a trace may nest deeper than the stack likes.
fn walk<'a>(
    spans: &'a [Span],
    kids: &[Vec<usize>],
    root: usize,
    seen: &mut [bool],
    out: &mut Vec<Row<'a>>,
) {
    // (span, its drawing, the drawing its children continue from)
    let mut stack = vec![(root, String::new(), String::new())];
    while let Some((i, prefix, cont)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        out.push(Row {
            prefix,
            span: &spans[i],
        });
        let n = kids[i].len();
        for (k, &c) in kids[i].iter().enumerate().rev() {
            let last = k + 1 == n;
            let branch = if last { "└─ " } else { "├─ " };
            let next = if last { "   " } else { "│  " };
            stack.push((c, format!("{cont}{branch}"), format!("{cont}{next}")));
        }
    }
}
