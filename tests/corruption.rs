//! Damage to a sealed segment is never read back as wrong data and never
//! panics.
//!
//! A store of generated spans is written through the library and closed,
//! which leaves one sealed segment; the generated spans are the truth. Then,
//! one case at a time, in a copy of the store:
//!
//! * one bit of the segment is flipped, at every byte offset of the file
//!   (or, when the file is larger than 64 KiB, at chosen offsets and
//!   hundreds of offsets drawn with a fixed seed), and
//! * the segment is cut short, at every block and footer boundary and at a
//!   few hundred offsets drawn with a fixed seed.
//!
//! Each damaged store is opened read-only and read whole: every trace of the
//! truth with `get_trace`, and a full `scan`. Each read must give exactly the
//! spans of the truth, or a corruption error naming the file and a byte
//! offset; a damaged block must fail every read that touches it, and only
//! those. A writer open must refuse a segment that a read-only open refuses,
//! and leave the file as it is. The library's verification must report the
//! damage inside the damaged region, and `spanlog verify` must exit with
//! status 1 naming the file and an offset, on a sample of the cases.
//!
//! Nothing here catches panics: a panic in the engine fails the test.
//! `SPANLOG_CORRUPTION_FULL=1` flips all eight bits of every byte instead of
//! one, samples more offsets of large files and runs the binary on more
//! cases.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use spanlog::block::BLOCK_HEADER_LEN;
use spanlog::gen::Rng;
use spanlog::segment::{
    self, section, BlockMeta, BlockSource, FileKind, SealedSegment, HEADER_LEN, TRAILER_LEN,
};
use spanlog::verify::verify_path;
use spanlog::{Error, Options, Span, SpanId, Store, TraceId};

/// Files up to this size get a flip at every offset; larger ones are sampled.
const EVERY_OFFSET_UP_TO: usize = 64 << 10;

/// Bytes 8..12 of the file header: the format version. A flip there is an
/// unsupported version, not corruption (format-spec.md 4.2, 8).
const VERSION_FIELD: Range<usize> = 8..12;

/// Bytes 36..40 of the file header: a reserved field that format-spec.md
/// 4.2 declares "not covered by any checksum; readers ignore it". A flip
/// there changes nothing a reader sees: the store must read back every span
/// and verification must stay clean. These are the only bytes of a sealed
/// segment that no checksum or magic comparison covers.
const HEADER_RESERVED: Range<usize> = 36..40;

fn full() -> bool {
    std::env::var("SPANLOG_CORRUPTION_FULL").is_ok_and(|v| v == "1")
}

fn workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 8))
}

/// Orders spans independently of how a read returned them.
fn key(s: &Span) -> (TraceId, SpanId, u64) {
    (s.trace_id, s.span_id, s.start_time_unix_nano)
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by_key(key);
    v
}

/// What a byte of the file is part of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    /// The file header, 0..40.
    Header,
    /// Block k: its 48-byte header and its body.
    Block(usize),
    /// Footer sections, section table and trailer.
    Footer,
}

/// A closed store holding one sealed segment, and what it must read back.
struct Fixture {
    dir: tempfile::TempDir,
    /// File name of the sealed segment (a store file name, so that the id
    /// check of the header applies).
    name: String,
    bytes: Vec<u8>,
    blocks: Vec<BlockMeta>,
    footer_start: usize,
    /// Where each footer section, the section table and the trailer begin.
    footer_bounds: Vec<usize>,
    /// The spans of each block, sorted by `key`.
    block_spans: Vec<Vec<Span>>,
    /// The traces each block holds.
    block_traces: Vec<BTreeSet<TraceId>>,
    /// Each trace as `get_trace` returns it: by start time, then span id.
    traces: BTreeMap<TraceId, Vec<Span>>,
}

impl Fixture {
    fn build(seed: u64, spans: usize, block_target_bytes: usize) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let truth = spanlog::gen::generate(seed, spans);
        let opts = Options {
            block_target_bytes,
            ..Options::default()
        };
        let store = Store::open(dir.path(), opts).unwrap();
        for batch in truth.chunks(50) {
            store.append(batch.to_vec()).unwrap();
        }
        store.seal_active().unwrap();
        store.close().unwrap();

        let files: Vec<(String, FileKind)> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter_map(|n| segment::parse_name(&n).map(|(_, kind)| (n, kind)))
            .collect();
        assert!(
            matches!(files.as_slice(), [(_, FileKind::Segment)]),
            "expected one sealed segment, found {files:?}"
        );
        let name = files[0].0.clone();
        let path = dir.path().join(&name);
        let bytes = std::fs::read(&path).unwrap();
        let seg = Arc::new(SealedSegment::open(&path).unwrap());
        let blocks = seg.blocks.clone();
        assert!(blocks.len() >= 4, "only {} blocks", blocks.len());
        let footer_start = seg.trailer.footer_start as usize;
        let mut footer_bounds = vec![footer_start];
        for (_, len) in seg.section_sizes() {
            footer_bounds.push(footer_bounds.last().unwrap() + len as usize);
        }
        assert_eq!(
            *footer_bounds.last().unwrap(),
            seg.trailer.table_offset as usize,
            "sections are contiguous"
        );
        footer_bounds.push(bytes.len() - TRAILER_LEN);

        let src = BlockSource::Mapped(seg.clone());
        let block_spans: Vec<Vec<Span>> = blocks
            .iter()
            .map(|m| sorted(src.all_spans(m).unwrap()))
            .collect();
        let block_traces = block_spans
            .iter()
            .map(|v| v.iter().map(|s| s.trace_id).collect())
            .collect();
        drop(src);
        drop(seg);

        let truth = sorted(truth);
        assert!(
            truth.windows(2).all(|w| key(&w[0]) != key(&w[1])),
            "span keys are unique, so sorted lists compare as sets"
        );
        assert_eq!(
            sorted(block_spans.concat()),
            truth,
            "the intact segment holds the truth"
        );
        let mut traces: BTreeMap<TraceId, Vec<Span>> = BTreeMap::new();
        for s in &truth {
            traces.entry(s.trace_id).or_default().push(s.clone());
        }
        for v in traces.values_mut() {
            v.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
        }
        Fixture {
            dir,
            name,
            bytes,
            blocks,
            footer_start,
            footer_bounds,
            block_spans,
            block_traces,
            traces,
        }
    }

    fn region(&self, offset: usize) -> Region {
        if offset < HEADER_LEN {
            return Region::Header;
        }
        if offset >= self.footer_start {
            return Region::Footer;
        }
        let k = self
            .blocks
            .iter()
            .position(|b| (offset as u64) < b.offset + u64::from(b.stored_len))
            .expect("blocks run from the header to the footer");
        Region::Block(k)
    }

    fn region_range(&self, r: Region) -> Range<u64> {
        match r {
            Region::Header => 0..HEADER_LEN as u64,
            Region::Block(k) => {
                let b = &self.blocks[k];
                b.offset..b.offset + u64::from(b.stored_len)
            }
            Region::Footer => self.footer_start as u64..self.bytes.len() as u64,
        }
    }

    /// The block an error offset points into.
    fn block_at(&self, offset: u64) -> Option<usize> {
        self.blocks
            .iter()
            .position(|b| (b.offset..b.offset + u64::from(b.stored_len)).contains(&offset))
    }

    /// Every block and footer boundary, where a writer cut short would stop.
    fn boundaries(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.blocks.iter().map(|b| b.offset as usize).collect();
        v.extend(&self.footer_bounds);
        v.push(self.bytes.len() - 8);
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// A private copy of the store for one worker thread.
struct Scratch {
    dir: tempfile::TempDir,
    path: PathBuf,
}

impl Scratch {
    fn new(fx: &Fixture) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(&fx.name);
        std::fs::write(&path, &fx.bytes).unwrap();
        Scratch { dir, path }
    }

    fn write_at(&self, offset: usize, bytes: &[u8]) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&self.path)
            .unwrap();
        f.write_all_at(bytes, offset as u64).unwrap();
    }
}

/// Violations of the expectations, gathered so that one run lists them all.
#[derive(Default)]
struct Findings {
    cases: usize,
    /// Cases whose read-only open failed.
    refused: usize,
    /// Cases whose open succeeded and whose reads of one block failed.
    block_errors: usize,
    /// Cases that read back every span.
    intact: usize,
    /// Runs of the `spanlog` binary.
    binary_runs: usize,
    problems: Vec<String>,
}

impl Findings {
    fn merge(&mut self, other: Findings) {
        self.cases += other.cases;
        self.refused += other.refused;
        self.block_errors += other.block_errors;
        self.intact += other.intact;
        self.binary_runs += other.binary_runs;
        self.problems.extend(other.problems);
    }

    fn summary(&self, what: &str) {
        eprintln!(
            "{what}: {} cases: {} refused at open, {} with one unreadable block, {} read \
             back whole; {} runs of spanlog verify; {} violations",
            self.cases,
            self.refused,
            self.block_errors,
            self.intact,
            self.binary_runs,
            self.problems.len()
        );
    }

    fn assert_none(&self, what: &str) {
        let mut msg = String::new();
        for p in self.problems.iter().take(40) {
            writeln!(msg, "  {p}").unwrap();
        }
        assert!(
            self.problems.is_empty(),
            "{what}: {} violations in {} cases, the first ones:\n{msg}",
            self.problems.len(),
            self.cases
        );
    }
}

/// An error is acceptable when it is a corruption error naming the file and
/// a byte offset inside it, or, for a damaged version field, an
/// unsupported-version error naming the file. Returns the corruption offset.
fn check_error(
    path: &Path,
    e: &Error,
    version_damaged: bool,
    len: usize,
) -> Result<Option<u64>, String> {
    let msg = e.to_string();
    let file = path.display().to_string();
    match e {
        Error::Corruption {
            path: p, offset, ..
        } => {
            if p != path {
                return Err(format!("corruption error names {} ({msg})", p.display()));
            }
            if *offset as usize >= len.max(1) {
                return Err(format!(
                    "offset {offset} beyond the {len}-byte file ({msg})"
                ));
            }
            if !msg.contains(&file) || !msg.contains(&format!("byte offset {offset}")) {
                return Err(format!("message lacks the file or offset: {msg}"));
            }
            Ok(Some(*offset))
        }
        Error::UnsupportedVersion { path: p, found, .. } if version_damaged => {
            if p != path || !msg.contains(&file) || !msg.contains(&found.to_string()) {
                return Err(format!("unsupported version error unclear: {msg}"));
            }
            Ok(None)
        }
        other => Err(format!("not a corruption error: {other:?} ({msg})")),
    }
}

/// One damaged copy of the segment.
struct Case {
    /// Describes the case in findings.
    name: String,
    /// The region of a flipped byte; `None` for a truncation.
    damaged: Option<Region>,
    /// False for a byte that no checksum covers and readers ignore.
    covered: bool,
    /// The version field was damaged.
    version: bool,
    /// Length of the damaged file.
    len: usize,
    /// Verification must report nothing outside the damaged region.
    precise: bool,
}

/// Opens the damaged copy read-only and reads everything. Returns whether
/// the open succeeded.
fn read_everything(fx: &Fixture, copy: &Scratch, c: &Case, out: &mut Findings) -> bool {
    let (case, version_damaged, len) = (&c.name, c.version, c.len);
    let (damaged, covered) = (c.damaged, c.covered);
    let path = &copy.path;
    let store = match Store::open(copy.dir.path(), Options::read_only()) {
        Ok(s) => s,
        Err(e) => {
            out.refused += 1;
            if let Err(why) = check_error(path, &e, version_damaged, len) {
                out.problems.push(format!("{case}: read-only open: {why}"));
            }
            if !covered {
                out.problems
                    .push(format!("{case}: open refused an ignored byte: {e}"));
            }
            return false;
        }
    };
    // Damage to anything but a block is caught by the open's checksums
    // (format-spec.md 6.5, steps 1 to 6).
    let bad_block = match damaged {
        Some(Region::Block(k)) => Some(k),
        Some(_) if covered => {
            out.problems.push(format!(
                "{case}: read-only open accepted damage outside the blocks"
            ));
            None
        }
        Some(_) => None,
        None => {
            out.problems.push(format!(
                "{case}: read-only open accepted a truncated segment"
            ));
            None
        }
    };

    for (trace, want) in &fx.traces {
        let in_bad = bad_block.is_some_and(|k| fx.block_traces[k].contains(trace));
        match store.get_trace(*trace) {
            Ok(got) if got == *want => {
                if in_bad {
                    out.problems.push(format!(
                        "{case}: get_trace({trace}) read the damaged block without an error"
                    ));
                }
            }
            Ok(got) => out.problems.push(format!(
                "{case}: get_trace({trace}) returned WRONG DATA: {} spans, expected {}",
                got.len(),
                want.len()
            )),
            Err(e) => {
                if let Err(why) = check_error(path, &e, version_damaged, len) {
                    out.problems
                        .push(format!("{case}: get_trace({trace}): {why}"));
                }
                if !in_bad {
                    out.problems.push(format!(
                        "{case}: get_trace({trace}) failed though its blocks are intact: {e}"
                    ));
                }
            }
        }
    }

    let mut found = Vec::new();
    let mut failed = BTreeSet::new();
    match store.scan(0..u64::MAX) {
        Err(e) => out.problems.push(format!("{case}: scan: {e}")),
        Ok(scan) => {
            for item in scan {
                match item {
                    Ok(s) => found.push(s),
                    Err(e) => match check_error(path, &e, version_damaged, len) {
                        Err(why) => out.problems.push(format!("{case}: scan: {why}")),
                        Ok(at) => match at.and_then(|o| fx.block_at(o)) {
                            Some(k) => {
                                failed.insert(k);
                            }
                            None => out
                                .problems
                                .push(format!("{case}: scan error points at no block: {e}")),
                        },
                    },
                }
            }
        }
    }
    let expect_failed: BTreeSet<usize> = bad_block.into_iter().collect();
    if failed != expect_failed {
        out.problems.push(format!(
            "{case}: scan failed blocks {failed:?}, the damaged ones are {expect_failed:?}"
        ));
    }
    let mut expected: Vec<&Span> = (0..fx.blocks.len())
        .filter(|k| !failed.contains(k))
        .flat_map(|k| &fx.block_spans[k])
        .collect();
    expected.sort_by_key(|s| key(s));
    let found = sorted(found);
    if found.len() != expected.len() || found.iter().zip(expected).any(|(a, b)| a != b) {
        out.problems.push(format!(
            "{case}: scan returned WRONG DATA: not the spans of the blocks it read"
        ));
    }
    if failed.is_empty() {
        out.intact += 1;
    } else {
        out.block_errors += 1;
    }
    store.close().unwrap();
    true
}

/// A writer open must refuse what a read-only open refuses, and must not
/// modify the sealed segment or add store files (format-spec.md 7.2 step 6).
fn writer_refuses(copy: &Scratch, c: &Case, out: &mut Findings) {
    let (case, version_damaged) = (&c.name, c.version);
    let before = std::fs::read(&copy.path).unwrap();
    match Store::open(copy.dir.path(), Options::default()) {
        Ok(store) => {
            out.problems
                .push(format!("{case}: writer open accepted the damaged segment"));
            store.close().unwrap();
        }
        Err(e) => {
            if let Err(why) = check_error(&copy.path, &e, version_damaged, before.len()) {
                out.problems.push(format!("{case}: writer open: {why}"));
            }
        }
    }
    if std::fs::read(&copy.path).unwrap() != before {
        out.problems
            .push(format!("{case}: writer open modified the sealed segment"));
    }
    let mut names: Vec<String> = std::fs::read_dir(copy.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    if names.len() != 2 || !names.iter().any(|n| n == "LOCK") {
        out.problems
            .push(format!("{case}: writer open left the files {names:?}"));
    }
    let _ = std::fs::remove_file(copy.dir.path().join("LOCK"));
}

/// The library's verification must find the damage, and report it inside
/// the damaged region (`None`: anywhere in the file).
fn verify_finds(copy: &Scratch, c: &Case, region: Option<Range<u64>>, out: &mut Findings) {
    let (case, version_damaged) = (&c.name, c.version);
    let report = match verify_path(&copy.path) {
        Ok(r) => r,
        Err(e) => {
            out.problems.push(format!("{case}: verify failed: {e}"));
            return;
        }
    };
    if report.is_clean() {
        out.problems
            .push(format!("{case}: verify reports the damaged file CLEAN"));
        return;
    }
    let located = report
        .problems
        .iter()
        .any(|p| p.path == copy.path && region.as_ref().is_none_or(|r| r.contains(&p.offset)));
    let version = version_damaged
        && report
            .problems
            .iter()
            .any(|p| p.detail.contains("format version"));
    if !located && !version {
        out.problems.push(format!(
            "{case}: verify reports no problem in {region:?}: {:?}",
            report.problems
        ));
    }
    // One flipped bit is one problem: nothing outside the damaged region
    // may be reported, or an operator is sent to look at intact data.
    let elsewhere: Vec<_> = report
        .problems
        .iter()
        .filter(|p| !p.warning)
        .filter(|p| {
            let at_version = version_damaged && p.detail.contains("format version");
            let in_region =
                p.path == copy.path && region.as_ref().is_none_or(|r| r.contains(&p.offset));
            !(at_version || in_region)
        })
        .collect();
    if c.precise && !elsewhere.is_empty() {
        out.problems.push(format!(
            "{case}: verify reports problems outside {region:?}: {elsewhere:?}"
        ));
    }
}

/// `spanlog verify <file>` must exit with status 1 and name the file and an
/// offset (for a damaged version field: the file and its version); for a
/// byte that readers ignore, it must exit with status 0.
fn binary_finds(copy: &Scratch, c: &Case, out: &mut Findings) {
    let (case, version_damaged) = (&c.name, c.version);
    out.binary_runs += 1;
    let o = Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .arg("verify")
        .arg(&copy.path)
        .output()
        .expect("run the spanlog binary");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let file = copy.path.display().to_string();
    let names_offset = text
        .lines()
        .any(|l| l.contains(&file) && l.contains("byte offset"));
    let names_version = version_damaged
        && text
            .lines()
            .any(|l| l.contains(&file) && l.contains("format version"));
    let as_expected = if c.covered {
        o.status.code() == Some(1) && (names_offset || names_version)
    } else {
        o.status.code() == Some(0)
    };
    if !as_expected {
        out.problems.push(format!(
            "{case}: spanlog verify exited with {:?}: {text}",
            o.status
        ));
    }
}

/// Offsets to damage: all of them for a small file, else a seeded sample
/// that always includes the file header, the headers of the first and the
/// last block, the first bytes of every footer section, the section table
/// and the trailer.
fn flip_offsets(fx: &Fixture, seed: u64, samples: usize) -> Vec<usize> {
    let len = fx.bytes.len();
    if len <= EVERY_OFFSET_UP_TO {
        return (0..len).collect();
    }
    let mut v: BTreeSet<usize> = (0..HEADER_LEN).collect();
    for b in [fx.blocks.first(), fx.blocks.last()].into_iter().flatten() {
        v.extend(b.offset as usize..b.offset as usize + BLOCK_HEADER_LEN);
    }
    for w in fx.footer_bounds.windows(2) {
        v.extend(w[0]..w[1].min(w[0] + 8));
    }
    let table = fx.footer_bounds[fx.footer_bounds.len() - 2];
    v.extend(table..len);
    let mut rng = Rng::new(seed);
    let target = v.len().max(samples);
    while v.len() < target {
        v.insert(rng.below(len as u64) as usize);
    }
    v.into_iter().collect()
}

/// Flips bits at `offsets`, one case at a time, on several threads. About
/// `binary_runs` of the offsets, and a few chosen ones, are also checked
/// with `spanlog verify`.
fn flip_cases(fx: &Fixture, offsets: &[usize], binary_runs: usize, precise: bool) -> Findings {
    let masks: Vec<u8> = if full() {
        (0..8).map(|b| 1u8 << b).collect()
    } else {
        vec![0]
    };
    let stride = (offsets.len() / binary_runs.max(1)).max(1);
    let first = fx.blocks[0].offset as usize;
    let len = fx.bytes.len();
    let chosen = [
        VERSION_FIELD.start,
        16,
        32,
        HEADER_RESERVED.start,
        first,
        first + 4,
        first + BLOCK_HEADER_LEN,
        fx.footer_start,
        len - TRAILER_LEN,
        len - 8,
    ];
    let binary: BTreeSet<usize> = (offsets.iter().step_by(stride).copied())
        .chain(chosen.into_iter().filter(|o| offsets.contains(o)))
        .collect();
    let binary = &binary;
    let total = Mutex::new(Findings::default());
    let n = workers();
    std::thread::scope(|s| {
        for w in 0..n {
            let (total, masks) = (&total, &masks);
            s.spawn(move || {
                let copy = Scratch::new(fx);
                let mut out = Findings::default();
                for &offset in offsets.iter().skip(w).step_by(n) {
                    for &m in masks {
                        // One bit per byte, rotating through the eight bits;
                        // every bit in full mode.
                        let mask = if m == 0 { 1u8 << (offset % 8) } else { m };
                        let region = fx.region(offset);
                        let covered = !HEADER_RESERVED.contains(&offset);
                        let version = VERSION_FIELD.contains(&offset);
                        let case = Case {
                            name: format!(
                                "flip {mask:#04x} at offset {offset} ({region:?}) of {}",
                                fx.name
                            ),
                            damaged: Some(region),
                            covered,
                            version,
                            len: fx.bytes.len(),
                            precise,
                        };
                        copy.write_at(offset, &[fx.bytes[offset] ^ mask]);
                        out.cases += 1;
                        if !read_everything(fx, &copy, &case, &mut out) {
                            writer_refuses(&copy, &case, &mut out);
                        }
                        if m <= 1 && binary.contains(&offset) {
                            binary_finds(&copy, &case, &mut out);
                        }
                        if covered {
                            let range = fx.region_range(region);
                            verify_finds(&copy, &case, Some(range), &mut out);
                        } else {
                            match verify_path(&copy.path) {
                                Ok(r) if r.is_clean() => {}
                                r => out.problems.push(format!(
                                    "{}: verify reports an ignored byte: {r:?}",
                                    case.name
                                )),
                            }
                        }
                        copy.write_at(offset, &fx.bytes[offset..=offset]);
                    }
                }
                total.lock().unwrap().merge(out);
            });
        }
    });
    total.into_inner().unwrap()
}

/// Cuts the segment at each length, one case at a time.
fn truncation_cases(fx: &Fixture, lengths: &[usize], binary_runs: usize) -> Findings {
    let stride = (lengths.len() / binary_runs.max(1)).max(1);
    let total = Mutex::new(Findings::default());
    let n = workers();
    std::thread::scope(|s| {
        for w in 0..n {
            let total = &total;
            s.spawn(move || {
                let copy = Scratch::new(fx);
                let mut out = Findings::default();
                for (i, &len) in lengths.iter().enumerate().skip(w).step_by(n) {
                    let case = Case {
                        name: format!(
                            "truncation to {len} of {} bytes ({:?}) of {}",
                            fx.bytes.len(),
                            fx.region(len),
                            fx.name
                        ),
                        damaged: None,
                        covered: true,
                        version: false,
                        len,
                        precise: true,
                    };
                    std::fs::write(&copy.path, &fx.bytes[..len]).unwrap();
                    out.cases += 1;
                    read_everything(fx, &copy, &case, &mut out);
                    writer_refuses(&copy, &case, &mut out);
                    verify_finds(&copy, &case, None, &mut out);
                    if i % stride == 0 {
                        binary_finds(&copy, &case, &mut out);
                    }
                }
                total.lock().unwrap().merge(out);
            });
        }
    });
    total.into_inner().unwrap()
}

/// 200 spans in blocks of about 4 KiB (up to four times that within a
/// trace): a segment of eight blocks and some 30 KiB, compressed without a
/// dictionary, small enough to flip a bit of every byte.
fn small() -> Fixture {
    let fx = Fixture::build(5, 200, 4 << 10);
    assert!(
        fx.bytes.len() <= EVERY_OFFSET_UP_TO,
        "the small segment is {} bytes",
        fx.bytes.len()
    );
    fx
}

/// Enough spans for the writer to train a zstd dictionary: every block uses
/// codec 2, and the footer holds a DICT section of up to 64 KiB. The file
/// is larger than `EVERY_OFFSET_UP_TO`, so offsets are sampled.
fn with_dictionary() -> Fixture {
    let fx = Fixture::build(7, 1200, 3 << 10);
    let seg = SealedSegment::open(&fx.dir.path().join(&fx.name)).unwrap();
    let dict = seg
        .section_sizes()
        .into_iter()
        .find(|(id, _)| *id == section::DICT);
    assert!(
        dict.is_some_and(|(_, len)| len > 0),
        "the segment has a dictionary"
    );
    drop(seg);
    for b in &fx.blocks {
        // Byte 16 of a block header is its codec; 2 is zstd with the
        // segment's dictionary.
        assert_eq!(fx.bytes[b.offset as usize + 16], 2, "block at {}", b.offset);
    }
    assert!(fx.bytes.len() > EVERY_OFFSET_UP_TO);
    fx
}

#[test]
fn every_flipped_bit_of_a_small_segment_is_an_error_or_the_right_spans() {
    let fx = small();
    let offsets = flip_offsets(&fx, 1, 0);
    let runs = if full() { 400 } else { 50 };
    let findings = flip_cases(&fx, &offsets, runs, true);
    findings.summary("bit flips in the small segment");
    findings.assert_none("bit flips in the small segment");
    // Every byte was damaged (each bit of it in full mode): those of the
    // file header and of the footer fail the open, except the reserved
    // header bytes, which read back whole; those of a block fail the reads
    // of that block.
    let bits = if full() { 8 } else { 1 };
    let outside = HEADER_LEN - HEADER_RESERVED.len() + fx.bytes.len() - fx.footer_start;
    assert_eq!(findings.cases, fx.bytes.len() * bits);
    assert_eq!(findings.refused, outside * bits);
    assert_eq!(findings.intact, HEADER_RESERVED.len() * bits);
    assert_eq!(findings.block_errors, (fx.footer_start - HEADER_LEN) * bits);
    assert!(findings.binary_runs >= runs, "{}", findings.binary_runs);
}

#[test]
fn flipped_bits_of_a_segment_with_a_dictionary_are_errors_or_the_right_spans() {
    let fx = with_dictionary();
    let samples = if full() { 10_000 } else { 800 };
    let offsets = flip_offsets(&fx, 2, samples);
    let runs = if full() { 200 } else { 20 };
    let findings = flip_cases(&fx, &offsets, runs, true);
    findings.summary("bit flips in the segment with a dictionary");
    findings.assert_none("bit flips in the segment with a dictionary");
    assert!(findings.binary_runs >= runs, "{}", findings.binary_runs);
}

/// When the file header or the footer is damaged, `verify` walks the
/// blocks from offset 40 without the footer's dictionary: it must check
/// codec-2 blocks as far as their checksums and report only the damage.
#[test]
fn verify_of_a_segment_with_a_dictionary_reports_only_the_damaged_header_or_footer() {
    let fx = with_dictionary();
    let offsets: Vec<usize> = flip_offsets(&fx, 2, 0)
        .into_iter()
        .filter(|o| !matches!(fx.region(*o), Region::Block(_)))
        .collect();
    let findings = flip_cases(&fx, &offsets, 10, true);
    findings.summary("header and footer flips of the segment with a dictionary");
    findings.assert_none("header and footer flips of the segment with a dictionary");
}

#[test]
fn a_truncated_segment_is_refused_with_its_file_and_offset() {
    let fx = small();
    let len = fx.bytes.len();
    let mut lengths: BTreeSet<usize> = fx.boundaries().into_iter().collect();
    lengths.extend([0, 1, HEADER_LEN - 1, HEADER_LEN, HEADER_LEN + TRAILER_LEN]);
    lengths.extend([len - 1, len - TRAILER_LEN + 1]);
    let mut rng = Rng::new(3);
    let extra = if full() { 2_000 } else { 300 };
    let target = lengths.len() + extra;
    while lengths.len() < target.min(len) {
        lengths.insert(rng.below(len as u64) as usize);
    }
    lengths.remove(&len);
    let lengths: Vec<usize> = lengths.into_iter().collect();
    let runs = if full() { 100 } else { 20 };
    let findings = truncation_cases(&fx, &lengths, runs);
    findings.summary("truncated segments");
    findings.assert_none("truncated segments");
    assert_eq!(findings.cases, lengths.len());
    assert_eq!(findings.refused, lengths.len());
    assert!(findings.binary_runs >= runs, "{}", findings.binary_runs);
}
