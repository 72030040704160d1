//! Deep checks of segment files and stores: every checksum, every block
//! decoded, every index entry cross-checked against the blocks.
//!
//! A check never stops at the first problem: each damaged block or index
//! entry is reported with its file and byte offset, and the rest is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::block;
use crate::digest::TracePart;
use crate::error::{Error, Result};
use crate::fs::{self, FileSystem, OpenMode};
use crate::index::Operation;
use crate::segment::{self, BlockMeta, BlockSource, SealedSegment, HEADER_LEN};
use crate::span::{Span, TraceId};

/// One finding of a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub offset: u64,
    pub detail: String,
    /// Warnings do not mean data loss: an active segment's unsealed tail,
    /// which the next writer open cuts off.
    pub warning: bool,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = if self.warning { "warning" } else { "error" };
        write!(
            f,
            "{kind}: {} at byte offset {}: {}",
            self.path.display(),
            self.offset,
            self.detail
        )
    }
}

/// What a check found and how much it covered.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub segments: usize,
    pub blocks: u64,
    pub spans: u64,
    /// Erased traces listed in the tombstone file (format-spec 7.12),
    /// whose bytes some segment may still hold.
    pub erased_traces: u64,
    pub problems: Vec<Problem>,
}

impl Report {
    /// True when nothing but warnings was found.
    pub fn is_clean(&self) -> bool {
        self.problems.iter().all(|p| p.warning)
    }

    fn error(&mut self, e: Error) {
        match e {
            Error::Corruption {
                path,
                offset,
                detail,
            } => self.problems.push(Problem {
                path,
                offset,
                detail,
                warning: false,
            }),
            Error::UnsupportedVersion { ref path, .. } => self.problems.push(Problem {
                path: path.clone(),
                // The version field of the file header (format-spec 4.2).
                offset: 8,
                detail: e.to_string(),
                warning: false,
            }),
            other => self.problems.push(Problem {
                path: PathBuf::new(),
                offset: 0,
                detail: other.to_string(),
                warning: false,
            }),
        }
    }

    fn at(&mut self, path: &Path, offset: u64, detail: String) {
        self.problems.push(Problem {
            path: path.to_path_buf(),
            offset,
            detail,
            warning: false,
        });
    }
}

/// Checks a store directory, or a single segment file.
pub fn verify_path(path: &Path) -> Result<Report> {
    verify_path_in(&fs::real(), path)
}

/// [`verify_path`] in the file system `fs`.
pub fn verify_path_in(fs: &Arc<dyn FileSystem>, path: &Path) -> Result<Report> {
    let meta = fs.metadata(path).map_err(|e| Error::io(path, "stat", e))?;
    let mut report = Report::default();
    if meta.is_dir {
        let mut names: Vec<PathBuf> = fs
            .read_dir(path)
            .map_err(|e| Error::io(path, "list directory", e))?
            .into_iter()
            .filter(|n| n.to_str().and_then(segment::parse_name).is_some())
            .map(|n| path.join(n))
            .collect();
        names.sort();
        for p in names {
            verify_segment_in(fs, &p, &mut report);
        }
        let tombs = path.join(crate::tombstone::TOMBSTONE_FILE);
        match fs.metadata(&tombs) {
            Ok(_) => verify_tombstones_in(&**fs, &tombs, &mut report),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => report.error(Error::io(&tombs, "stat tombstone file", e)),
        }
    } else if path
        .file_name()
        .is_some_and(|n| n == crate::tombstone::TOMBSTONE_FILE)
    {
        verify_tombstones_in(&**fs, path, &mut report);
    } else {
        verify_segment_in(fs, path, &mut report);
    }
    Ok(report)
}

/// Checks the tombstone file: header and every record's checksum. A torn
/// last record is a warning (a writer open cuts it off), a damaged record
/// before a valid one an error.
pub fn verify_tombstones(path: &Path, report: &mut Report) {
    verify_tombstones_in(&*fs::real(), path, report)
}

/// [`verify_tombstones`] in the file system `fs`.
pub fn verify_tombstones_in(fs: &dyn FileSystem, path: &Path, report: &mut Report) {
    let bytes = match fs.open(path, OpenMode::Read).and_then(|f| f.read_to_end()) {
        Ok(b) => b,
        Err(e) => return report.error(Error::io(path, "read tombstone file", e)),
    };
    match crate::tombstone::parse(path, &bytes) {
        Ok(loaded) => {
            report.erased_traces += loaded.set().len() as u64;
            if let Some((offset, why)) = loaded.torn_tail {
                report.problems.push(Problem {
                    path: path.to_path_buf(),
                    offset,
                    detail: format!(
                        "torn last record ({why}), never acknowledged; a writer open cuts it off"
                    ),
                    warning: true,
                });
            }
        }
        Err(e) => report.error(e),
    }
}

/// Checks one segment file, adding what it finds to `report`.
pub fn verify_segment(path: &Path, report: &mut Report) {
    verify_segment_in(&fs::real(), path, report)
}

/// [`verify_segment`] in the file system `fs`.
pub fn verify_segment_in(fs: &Arc<dyn FileSystem>, path: &Path, report: &mut Report) {
    report.segments += 1;
    let sealed = path.extension().is_some_and(|e| e == "seg");
    if sealed {
        match SealedSegment::open_in(&**fs, path) {
            Ok(seg) => verify_sealed(Arc::new(seg), report),
            Err(e) => {
                report.error(e);
                scan_blocks(&**fs, path, report);
            }
        }
    } else {
        verify_active(fs, path, report);
    }
}

fn verify_active(fs: &Arc<dyn FileSystem>, path: &Path, report: &mut Report) {
    match segment::recover_active_in(fs, path, false, false) {
        Ok(r) => {
            report.blocks += r.segment.blocks.len() as u64;
            report.spans += r.segment.span_count;
            if let Some((offset, why)) = r.torn_tail {
                // A torn last write is expected after a crash; an invalid block
                // with valid ones after it is damage (or writes that reached
                // the disk out of order), and worth an operator's look.
                let (detail, warning) = match r.valid_after_damage {
                    None => (format!("unsealed tail after the last valid block ({why}); a writer open cuts it off"), true),
                    Some(later) => (format!("invalid block ({why}) followed by a valid block at {later}; a writer open recovers up to {offset} and keeps the rest aside"), false),
                };
                report.problems.push(Problem {
                    path: path.to_path_buf(),
                    offset,
                    detail,
                    warning,
                });
            }
        }
        Err(e) => report.error(e),
    }
}

/// Walks blocks from the header on when the footer cannot be trusted, so
/// block damage is still reported precisely.
fn scan_blocks(fs: &dyn FileSystem, path: &Path, report: &mut Report) {
    let Ok(bytes) = fs.open(path, OpenMode::Read).and_then(|f| f.read_to_end()) else {
        return;
    };
    let mut offset = HEADER_LEN;
    while offset < bytes.len() {
        match check_stored_block(&bytes[offset..]) {
            Ok(len) => offset += len,
            Err(e) => {
                if bytes[offset..].starts_with(&block::BLOCK_MAGIC.to_le_bytes()) {
                    report.at(path, (offset + e.offset) as u64, e.detail);
                }
                return;
            }
        }
    }
}

/// Checks a block found by walking a file whose footer could not be read.
/// A block compressed with the segment's dictionary can only be checked
/// up to its body checksum, since the dictionary is in the footer; so can
/// the references of a block to the segment's tables, also in the footer.
fn check_stored_block(stored: &[u8]) -> crate::codec::DecodeResult<usize> {
    let h = block::BlockHeader::decode(stored)?;
    if h.codec != block::Codec::ZstdDict {
        let tables = block::SegmentTables::unknown();
        return block::decode_block_with(stored, Some(&tables))
            .map(|(h, _)| h.stored_len() as usize);
    }
    let len = h.stored_len() as usize;
    let Some(body) = stored.get(block::BLOCK_HEADER_LEN..len) else {
        return Err(crate::codec::DecodeError {
            offset: block::BLOCK_HEADER_LEN,
            detail: format!("block body of {} bytes is cut short", h.body_len),
        });
    };
    let crc = crc32fast::hash(body);
    if crc != h.body_crc {
        return Err(crate::codec::DecodeError {
            offset: block::BLOCK_HEADER_LEN,
            detail: format!(
                "block body checksum {:#010x}, computed {crc:#010x}",
                h.body_crc
            ),
        });
    }
    Ok(len)
}

/// What the blocks themselves say, to compare with the footer.
#[derive(Default)]
struct Seen {
    traces: BTreeMap<TraceId, Vec<u32>>,
    ops: Vec<BTreeSet<Operation>>,
    /// Blocks that could not be read; already reported, and left out of the
    /// index cross-checks so one damaged block is one problem.
    unreadable: BTreeSet<u32>,
    /// What the spans say of each trace, for the search index.
    parts: BTreeMap<TraceId, TracePart>,
    /// Attribute items of each block (empty for unreadable blocks): those
    /// of its filter, and those of the segment's filter only.
    items: Vec<(Vec<crate::attrs::Item>, Vec<crate::attrs::Item>)>,
}

fn verify_sealed(seg: Arc<SealedSegment>, report: &mut Report) {
    let src = BlockSource::Mapped(seg.clone());
    let mut seen = Seen::default();
    for (i, meta) in seg.blocks.iter().enumerate() {
        report.blocks += 1;
        match src.all_spans(meta) {
            Ok(spans) => {
                report.spans += spans.len() as u64;
                check_block(&seg.path, meta, &spans, report);
                record(&mut seen, i as u32, &spans, &seg);
            }
            Err(e) => {
                report.error(e);
                seen.ops.push(BTreeSet::new());
                seen.items.push(Default::default());
                seen.unreadable.insert(i as u32);
            }
        }
    }
    check_trace_index(&seg, &seen, report);
    check_catalog(&seg, &seen, report);
    if seg.services.is_some() {
        check_search_index(&seg, &seen, report);
    }
}

/// The digests must say what the spans say, and the attribute filters must
/// hold every attribute of their blocks (a missing one hides matches).
fn check_search_index(seg: &SealedSegment, seen: &Seen, report: &mut Report) {
    let index = seg.trace_index();
    let at = seg.trailer.footer_start;
    for i in 0..index.len() {
        let t = index.trace_at(i);
        let Some(want) = seen.parts.get(&t) else {
            continue;
        };
        // The index's blocks: an unreadable block's spans are not in `seen`.
        let blocks = index.blocks_of(i).unwrap_or_default();
        if blocks.iter().any(|b| seen.unreadable.contains(b)) {
            continue;
        }
        match crate::search::part_of_digest(seg, i) {
            Ok(got) => {
                let names = |p: &TracePart| p.services.keys().cloned().collect::<Vec<_>>();
                let same = (got.start, got.end, got.spans, got.error, got.root_key)
                    == (want.start, want.end, want.spans, want.error, want.root_key)
                    && (&got.root_service, &got.root_name, got.root_kind)
                        == (&want.root_service, &want.root_name, want.root_kind)
                    && names(&got) == names(want);
                if !same {
                    report.at(
                        &seg.path,
                        at,
                        format!("digest of trace {t} disagrees with its spans"),
                    );
                }
            }
            Err(e) => report.error(e),
        }
    }
    if !seen.unreadable.is_empty() {
        return;
    }
    // What a search relies on: no filter may deny an item its block has.
    let Some(whole) = seg.attr_filter(seg.blocks.len()) else {
        return;
    };
    for (i, (items, file_items)) in seen.items.iter().enumerate() {
        let Some(f) = seg.attr_filter(i) else {
            continue;
        };
        let held = items
            .iter()
            .all(|item| crate::attrs::filters_hold(f, whole, *item))
            && file_items
                .iter()
                .all(|item| crate::attrs::filters_hold(whole, whole, *item));
        if !held {
            let detail = format!("attribute filter of block {i} lacks attributes of its spans");
            report.at(&seg.path, seg.blocks[i].offset, detail);
        }
    }
}

fn record(seen: &mut Seen, block: u32, spans: &[Span], seg: &SealedSegment) {
    let mut ops = BTreeSet::new();
    let refs: Vec<&Span> = spans.iter().collect();
    // Spans read from a block that refers to the segment's tables share
    // their resource's allocation with the tables.
    let shared = |s: &Span| {
        let t = seg.shared.as_ref()?;
        let i = t
            .resources
            .iter()
            .position(|r| Arc::ptr_eq(r, &s.resource))?;
        Some(i as u32)
    };
    seen.items.push(crate::attrs::items_with(&refs, &shared));
    for s in spans {
        match seen.parts.get_mut(&s.trace_id) {
            Some(p) => p.add_span(s),
            None => {
                seen.parts.insert(s.trace_id, TracePart::of_span(s));
            }
        }
        let v = seen.traces.entry(s.trace_id).or_default();
        if v.last() != Some(&block) {
            v.push(block);
        }
        ops.insert(Operation {
            service: s.service_name().unwrap_or("").to_string(),
            name: s.name.clone(),
            kind: s.kind,
        });
    }
    seen.ops.push(ops);
}

fn check_block(path: &Path, meta: &BlockMeta, spans: &[Span], report: &mut Report) {
    let min = spans
        .iter()
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let max = spans
        .iter()
        .map(|s| s.start_time_unix_nano)
        .max()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    if (min, max, end) != (meta.min_start, meta.max_start, meta.max_end) {
        report.at(
            path,
            meta.offset,
            format!(
                "block time range {}..{} (end {}) disagrees with the index entry {}..{} (end {})",
                min, max, end, meta.min_start, meta.max_start, meta.max_end
            ),
        );
    }
}

fn check_trace_index(seg: &SealedSegment, seen: &Seen, report: &mut Report) {
    let index = seg.trace_index();
    if seen.unreadable.is_empty() && index.len() != seen.traces.len() {
        report.at(
            &seg.path,
            seg.trailer.footer_start,
            format!(
                "trace index has {} entries, blocks hold {} traces",
                index.len(),
                seen.traces.len()
            ),
        );
    }
    for i in 0..index.len() {
        let t = index.trace_at(i);
        if i > 0 && index.trace_at(i - 1) >= t {
            report.at(
                &seg.path,
                seg.trailer.footer_start,
                format!("trace index not sorted at entry {i}"),
            );
        }
    }
    for (t, blocks) in &seen.traces {
        if !seg.may_contain(t) {
            report.at(
                &seg.path,
                seg.trailer.footer_start,
                format!("bloom filter lacks trace {t}"),
            );
        }
        let readable = |v: Vec<u32>| {
            v.into_iter()
                .filter(|b| !seen.unreadable.contains(b))
                .collect::<Vec<_>>()
        };
        match index.lookup(t).map(readable) {
            Some(found) if &found == blocks => {}
            found => report.at(
                &seg.path,
                seg.trailer.footer_start,
                format!("trace {t}: index says blocks {found:?}, blocks hold it in {blocks:?}"),
            ),
        }
    }
}

fn check_catalog(seg: &SealedSegment, seen: &Seen, report: &mut Report) {
    for (i, ids) in seg.catalog.block_ops.iter().enumerate() {
        let listed: BTreeSet<Operation> = ids
            .iter()
            .filter_map(|id| seg.catalog.operations.get(*id as usize))
            .map(|(op, _)| op.clone())
            .collect();
        match seen.ops.get(i) {
            Some(ops) if ops.is_empty() || *ops == listed => {}
            _ => report.at(
                &seg.path,
                seg.trailer.footer_start,
                format!("operations listed for block {i} differ from its spans"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::SpanId;
    use crate::{Options, Store};

    fn fill(dir: &Path) {
        let store = Store::open(
            dir,
            Options {
                block_target_bytes: 1000,
                ..Options::default()
            },
        )
        .unwrap();
        for i in 0..200u32 {
            let mut id = [1u8; 8];
            id[..4].copy_from_slice(&i.to_le_bytes());
            store
                .append(vec![Span {
                    trace_id: TraceId([(i % 9 + 1) as u8; 16]),
                    span_id: SpanId(id),
                    name: format!("op{}", i % 4),
                    start_time_unix_nano: u64::from(i),
                    end_time_unix_nano: u64::from(i) + 5,
                    ..Span::default()
                }])
                .unwrap();
        }
        store.close().unwrap();
    }

    #[test]
    fn clean_store_verifies_clean() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let r = verify_path(dir.path()).unwrap();
        assert!(r.is_clean(), "{:?}", r.problems);
        assert_eq!(r.spans, 200);
        assert!(r.blocks > 3);
    }

    #[test]
    fn flipped_byte_in_a_block_is_reported_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        fill(dir.path());
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "seg"))
            .unwrap();
        let mut bytes = std::fs::read(&seg).unwrap();
        bytes[HEADER_LEN + 60] ^= 0x10;
        std::fs::write(&seg, &bytes).unwrap();
        let r = verify_path(&seg).unwrap();
        assert!(!r.is_clean());
        assert!(
            r.problems
                .iter()
                .any(|p| p.offset >= HEADER_LEN as u64 && p.path == seg),
            "{:?}",
            r.problems
        );
    }
}
