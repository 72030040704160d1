//! `spanlog inspect`: what a store or segment file holds, and how compactly.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use spanlog::block::{BlockHeader, BLOCK_HEADER_LEN};
use spanlog::segment::{section, BlockMeta};
use spanlog::{Options, Store};

use crate::error::{io_error, CliResult};
use crate::format::{bytes, count, plural, ratio, rfc3339, round};
use crate::layout::{self, Kind, StoreFile};

/// Show segments, blocks, spans, time ranges, compression and index sizes.
///
/// For a directory the store is opened read-only; a single file (a sealed
/// segment *.seg, a write-ahead log *.wal or an unfinished *.seg.tmp) is
/// read without being modified.
#[derive(clap::Args)]
pub struct Args {
    /// A store directory, or one store file (*.seg, *.wal or *.seg.tmp)
    path: PathBuf,
    /// Print one JSON document instead of text
    #[arg(long)]
    json: bool,
}

/// One segment or log, whichever way it was opened.
struct Segment {
    id: u64,
    path: PathBuf,
    kind: Kind,
    file_bytes: u64,
    blocks: Vec<BlockMeta>,
    spans: u64,
    traces: usize,
    /// Footer section sizes by section id (sealed segments only).
    sections: Option<Vec<(u32, u64)>>,
    /// Where the valid blocks of a log end, and why.
    torn_tail: Option<(u64, String)>,
    sizes: BlockSizes,
}

/// Sizes read from the block headers in the file.
#[derive(Default)]
struct BlockSizes {
    raw: u64,
    compressed: u64,
    /// Blocks whose header could not be read: (offset, why).
    unreadable: Vec<(u64, String)>,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let (segments, erased) = load(&args.path)?;
    if args.json {
        let mut doc = json!({
            "path": args.path.display().to_string(),
            "segments": segments.iter().map(segment_json).collect::<Vec<_>>(),
            "totals": totals_json(&segments),
        });
        if let Some(n) = erased {
            doc["erased_traces"] = json!(n);
        }
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&doc).unwrap_or_default()
        )?;
    } else {
        for seg in &segments {
            print_segment(out, seg)?;
        }
        print_totals(out, &segments)?;
        if let Some(n) = erased.filter(|n| *n > 0) {
            let text = format!(
                "{} hidden from reads, awaiting compaction (tombstones.log)",
                plural(n, "trace")
            );
            writeln!(out, "  {:<12}{text}", "erased")?;
        }
    }
    Ok(())
}

/// The files, and for a store the number of erased traces whose bytes
/// some file may still hold.
fn load(path: &Path) -> CliResult<(Vec<Segment>, Option<u64>)> {
    let meta = std::fs::metadata(path).map_err(|e| io_error(path, "open", e))?;
    if meta.is_dir() {
        load_store(path)
    } else {
        load_file(path).map(|s| (vec![s], None))
    }
}

fn load_store(dir: &Path) -> CliResult<(Vec<Segment>, Option<u64>)> {
    let store = Store::open(dir, Options::read_only())?;
    let erased = store.erased_traces()?.len() as u64;
    let sealed = store.sealed_segments();
    let mut out = Vec::new();
    for info in store.segments()? {
        let sections = sealed
            .iter()
            .find(|s| s.id == info.id && info.sealed)
            .map(|s| s.section_sizes());
        let sizes = block_sizes(&info.path, &info.blocks)?;
        let fallback = if info.sealed {
            Kind::Segment
        } else {
            Kind::Wal
        };
        let kind = layout::kind(&info.path).unwrap_or(fallback);
        out.push(Segment {
            id: info.id,
            path: info.path,
            kind,
            file_bytes: info.file_bytes,
            blocks: info.blocks,
            spans: info.spans,
            traces: info.traces,
            sections,
            torn_tail: None,
            sizes,
        });
    }
    Ok((out, Some(erased)))
}

fn load_file(path: &Path) -> CliResult<Segment> {
    let file_bytes = std::fs::metadata(path)
        .map_err(|e| io_error(path, "stat", e))?
        .len();
    let kind = layout::kind(path).unwrap_or(Kind::Wal);
    let seg = match StoreFile::open(path)? {
        StoreFile::Sealed(s) => Segment {
            id: s.id,
            path: path.to_path_buf(),
            kind,
            file_bytes,
            blocks: s.blocks.clone(),
            spans: s.trailer.span_count,
            traces: s.trace_index().len(),
            sections: Some(s.section_sizes()),
            torn_tail: None,
            sizes: BlockSizes::default(),
        },
        StoreFile::Log(r) => Segment {
            id: r.segment.id,
            path: path.to_path_buf(),
            kind,
            file_bytes,
            blocks: r.segment.blocks.clone(),
            spans: r.segment.span_count,
            traces: r.segment.traces.len(),
            sections: None,
            torn_tail: r.torn_tail,
            sizes: BlockSizes::default(),
        },
    };
    let sizes = block_sizes(path, &seg.blocks)?;
    Ok(Segment { sizes, ..seg })
}

/// Reads each block's header from the file for its raw and stored sizes;
/// the index entries only know the stored size.
fn block_sizes(path: &Path, blocks: &[BlockMeta]) -> CliResult<BlockSizes> {
    let file = File::open(path).map_err(|e| io_error(path, "open", e))?;
    let mut sizes = BlockSizes::default();
    let mut buf = [0u8; BLOCK_HEADER_LEN];
    for meta in blocks {
        let header = file
            .read_exact_at(&mut buf, meta.offset)
            .map_err(|e| e.to_string())
            .and_then(|()| BlockHeader::decode(&buf).map_err(|e| e.detail));
        match header {
            Ok(h) => {
                sizes.raw += u64::from(h.raw_len);
                sizes.compressed += u64::from(h.body_len);
            }
            Err(why) => sizes.unreadable.push((meta.offset, why)),
        }
    }
    Ok(sizes)
}

fn section_name(id: u32) -> &'static str {
    match id {
        section::BLOCKS => "blocks",
        section::TRACE_ENTRIES => "trace_entries",
        section::TRACE_POSTINGS => "trace_postings",
        section::BLOOM => "bloom",
        section::CATALOG => "catalog",
        section::BLOCK_OPS => "block_ops",
        section::DICT => "dictionary",
        section::DIGESTS => "digests",
        section::SERVICES => "services",
        section::SERVICE_ROWS => "service_rows",
        section::TRACE_SERVICES => "trace_services",
        section::BLOCK_ATTRS => "block_attrs",
        section::SUPERSEDES => "supersedes",
        section::TABLES => "tables",
        _ => "unknown",
    }
}

/// First start, last start and last end over the blocks.
fn time_range(blocks: &[BlockMeta]) -> Option<(u64, u64, u64)> {
    let min = blocks.iter().map(|b| b.min_start).min()?;
    let max = blocks.iter().map(|b| b.max_start).max()?;
    let end = blocks.iter().map(|b| b.max_end).max()?;
    Some((min, max, end))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

fn print_segment(out: &mut dyn Write, s: &Segment) -> CliResult {
    writeln!(
        out,
        "{}  ({}, id {})",
        file_name(&s.path),
        s.kind.label(),
        s.id
    )?;
    let line = |k: &str, v: String| format!("  {k:<12}{v}");
    writeln!(out, "{}", line("file", size_text(s.file_bytes)))?;
    writeln!(out, "{}", line("blocks", count(s.blocks.len() as u64)))?;
    writeln!(out, "{}", line("spans", count(s.spans)))?;
    writeln!(out, "{}", line("traces", count(s.traces as u64)))?;
    writeln!(out, "{}", line("time range", range_text(&s.blocks)))?;
    writeln!(out, "{}", line("block bytes", compression_text(&s.sizes)))?;
    if let Some(sections) = &s.sections {
        writeln!(out, "{}", line("index bytes", sections_text(sections)))?;
    }
    for (offset, why) in &s.sizes.unreadable {
        writeln!(
            out,
            "{}",
            line("unreadable", format!("block at byte {offset}: {why}"))
        )?;
    }
    if let Some((offset, why)) = &s.torn_tail {
        let text = format!("valid blocks end at byte {offset}; after that: {why}");
        writeln!(out, "{}", line("torn tail", text))?;
    }
    writeln!(out)?;
    Ok(())
}

fn size_text(n: u64) -> String {
    format!("{} bytes ({})", count(n), bytes(n))
}

fn range_text(blocks: &[BlockMeta]) -> String {
    match time_range(blocks) {
        Some((min, _, end)) => format!("{} .. {}", rfc3339(min), rfc3339(end)),
        None => "(empty)".into(),
    }
}

fn compression_text(s: &BlockSizes) -> String {
    let r = ratio(s.raw as f64, s.compressed as f64)
        .map(|r| format!("{r:.2}x"))
        .unwrap_or_else(|| "-".into());
    format!(
        "raw {}, compressed {}, ratio {r}",
        bytes(s.raw),
        bytes(s.compressed)
    )
}

fn sections_text(sections: &[(u32, u64)]) -> String {
    let total: u64 = sections.iter().map(|(_, n)| n).sum();
    let parts: Vec<String> = sections
        .iter()
        .map(|(id, n)| format!("{} {}", section_name(*id), bytes(*n)))
        .collect();
    format!("{} ({})", bytes(total), parts.join(", "))
}

/// Sums over all segments.
struct Totals {
    segments: usize,
    sealed: usize,
    file_bytes: u64,
    blocks: u64,
    spans: u64,
    raw: u64,
    compressed: u64,
    index: u64,
    unreadable: usize,
    all_blocks: Vec<BlockMeta>,
}

fn totals(segments: &[Segment]) -> Totals {
    let index = |s: &Segment| -> u64 { s.sections.iter().flatten().map(|(_, n)| n).sum() };
    Totals {
        segments: segments.len(),
        sealed: segments.iter().filter(|s| s.kind == Kind::Segment).count(),
        file_bytes: segments.iter().map(|s| s.file_bytes).sum(),
        blocks: segments.iter().map(|s| s.blocks.len() as u64).sum(),
        spans: segments.iter().map(|s| s.spans).sum(),
        raw: segments.iter().map(|s| s.sizes.raw).sum(),
        compressed: segments.iter().map(|s| s.sizes.compressed).sum(),
        index: segments.iter().map(index).sum(),
        unreadable: segments.iter().map(|s| s.sizes.unreadable.len()).sum(),
        all_blocks: segments.iter().flat_map(|s| s.blocks.clone()).collect(),
    }
}

fn print_totals(out: &mut dyn Write, segments: &[Segment]) -> CliResult {
    let t = totals(segments);
    writeln!(
        out,
        "total: {} ({}, {})",
        plural(t.segments as u64, "file"),
        plural(t.sealed as u64, "sealed segment"),
        plural((t.segments - t.sealed) as u64, "log")
    )?;
    let sizes = BlockSizes {
        raw: t.raw,
        compressed: t.compressed,
        unreadable: Vec::new(),
    };
    let line = |k: &str, v: String| format!("  {k:<12}{v}");
    writeln!(out, "{}", line("file", size_text(t.file_bytes)))?;
    writeln!(out, "{}", line("blocks", count(t.blocks)))?;
    writeln!(out, "{}", line("spans", count(t.spans)))?;
    writeln!(out, "{}", line("time range", range_text(&t.all_blocks)))?;
    writeln!(out, "{}", line("block bytes", compression_text(&sizes)))?;
    writeln!(out, "{}", line("index bytes", bytes(t.index)))?;
    if t.spans > 0 {
        let per_span = t.file_bytes as f64 / t.spans as f64;
        writeln!(
            out,
            "{}",
            line("bytes/span", format!("{per_span:.1} on disk"))
        )?;
    }
    if t.unreadable > 0 {
        writeln!(
            out,
            "{}",
            line(
                "unreadable",
                format!("{} block headers (run `spanlog verify`)", t.unreadable)
            )
        )?;
    }
    Ok(())
}

fn range_json(blocks: &[BlockMeta]) -> Value {
    match time_range(blocks) {
        Some((min, max, end)) => json!({
            "min_start_unix_nano": min,
            "max_start_unix_nano": max,
            "max_end_unix_nano": end,
            "min_start": rfc3339(min),
            "max_start": rfc3339(max),
            "max_end": rfc3339(end),
        }),
        None => Value::Null,
    }
}

fn compression_json(raw: u64, compressed: u64) -> Value {
    ratio(raw as f64, compressed as f64)
        .map(|r| json!(round(r, 3)))
        .unwrap_or(Value::Null)
}

fn segment_json(s: &Segment) -> Value {
    let sections = s.sections.as_ref().map(|v| {
        v.iter()
            .map(|(id, n)| (section_name(*id).to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
    });
    let unreadable: Vec<Value> = s
        .sizes
        .unreadable
        .iter()
        .map(|(offset, why)| json!({"offset": offset, "detail": why}))
        .collect();
    json!({
        "id": s.id,
        "file": s.path.display().to_string(),
        "kind": s.kind.key(),
        "sealed": s.kind == Kind::Segment,
        "file_bytes": s.file_bytes,
        "blocks": s.blocks.len(),
        "spans": s.spans,
        "traces": s.traces,
        "time_range": range_json(&s.blocks),
        "raw_bytes": s.sizes.raw,
        "compressed_bytes": s.sizes.compressed,
        "compression_ratio": compression_json(s.sizes.raw, s.sizes.compressed),
        "index_section_bytes": sections,
        "unreadable_blocks": unreadable,
        "torn_tail": s.torn_tail.as_ref().map(|(o, why)| json!({"offset": o, "detail": why})),
    })
}

fn totals_json(segments: &[Segment]) -> Value {
    let t = totals(segments);
    json!({
        "files": t.segments,
        "sealed_segments": t.sealed,
        "logs": t.segments - t.sealed,
        "file_bytes": t.file_bytes,
        "blocks": t.blocks,
        "spans": t.spans,
        "time_range": range_json(&t.all_blocks),
        "raw_bytes": t.raw,
        "compressed_bytes": t.compressed,
        "compression_ratio": compression_json(t.raw, t.compressed),
        "index_bytes": t.index,
        "bytes_per_span": ratio(t.file_bytes as f64, t.spans as f64).map(|r| round(r, 2)),
        "unreadable_blocks": t.unreadable,
    })
}
