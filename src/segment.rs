//! One segment file: a header, blocks appended one after another, and, once
//! sealed, a footer of index sections closed by a fixed trailer.
//!
//! The same layout serves the write-ahead log (`*.wal`), which only ever
//! grows by whole blocks and never gets a footer (after a crash its torn
//! tail is cut back to the last valid block), and segments being written
//! (`*.seg.tmp`). Sealing appends the footer, fsyncs, and renames the file
//! to `*.seg`; from then on the file is never modified and may be mapped.
//! Layout: `format-spec.md`, sections 4 to 6.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::block::{
    self, BlockHeader, BlockSummary, BlockView, EncodedBlock, RowHead, SegmentTables,
    BLOCK_HEADER_LEN,
};
use crate::codec::{put_u32, put_u64, DecodeError};
use crate::dict::BlockDict;
use crate::digest::{self, Digest, DigestBuilder, DigestPacking, Row, RowPacking, Services};
use crate::error::{Error, Result};
use crate::fs::{self, now_unix_nanos, sync_dir, FileHandle, FileMap, FileSystem, OpenMode};
use crate::index::{BloomView, Catalog, CatalogBuilder, TraceIndexBuilder, TraceIndexView};
use crate::span::{Span, TraceId};

/// First eight bytes of every segment file.
pub const SEGMENT_MAGIC: [u8; 8] = *b"SPLGSEGM";
/// Last eight bytes of every sealed segment file.
pub const TRAILER_MAGIC: [u8; 8] = *b"SPLGSEAL";
/// The format version this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 6;

// File header fields.
const H_MAGIC: usize = 0;
const H_VERSION: usize = H_MAGIC + 8;
const H_FLAGS: usize = H_VERSION + 4;
const H_SEGMENT_ID: usize = H_FLAGS + 4;
const H_CREATED: usize = H_SEGMENT_ID + 8;
const H_CRC: usize = H_CREATED + 8;
const H_RESERVED: usize = H_CRC + 4;
/// Size of the file header.
pub const HEADER_LEN: usize = H_RESERVED + 4;

// Trailer fields.
const T_FOOTER_START: usize = 0;
const T_TABLE_OFFSET: usize = T_FOOTER_START + 8;
const T_SECTION_COUNT: usize = T_TABLE_OFFSET + 8;
const T_BLOCK_COUNT: usize = T_SECTION_COUNT + 4;
const T_SPAN_COUNT: usize = T_BLOCK_COUNT + 4;
const T_MIN_START: usize = T_SPAN_COUNT + 8;
const T_MAX_START: usize = T_MIN_START + 8;
const T_MAX_END: usize = T_MAX_START + 8;
const T_FOOTER_CRC: usize = T_MAX_END + 8;
const T_TRAILER_CRC: usize = T_FOOTER_CRC + 4;
const T_MAGIC: usize = T_TRAILER_CRC + 4;
/// Size of the trailer at the end of a sealed segment.
pub const TRAILER_LEN: usize = T_MAGIC + 8;

/// Size of one entry of the section table.
pub const SECTION_ENTRY_LEN: usize = 24;
/// Size of one entry of the blocks section.
pub const BLOCK_ENTRY_LEN: usize = 40;

/// Footer section identifiers.
pub mod section {
    pub const BLOCKS: u32 = 1;
    pub const TRACE_ENTRIES: u32 = 2;
    pub const TRACE_POSTINGS: u32 = 3;
    pub const BLOOM: u32 = 4;
    pub const CATALOG: u32 = 5;
    pub const BLOCK_OPS: u32 = 6;
    /// The segment's zstd dictionary (version 2 on); empty when none.
    pub const DICT: u32 = 7;
    /// The search index (version 3 on): trace digests, services, service
    /// rows and each trace's services; see `digest`.
    pub const DIGESTS: u32 = 8;
    pub const SERVICES: u32 = 9;
    pub const SERVICE_ROWS: u32 = 10;
    pub const TRACE_SERVICES: u32 = 11;
    /// Per-block attribute filters (version 3 on); see `attrs`.
    pub const BLOCK_ATTRS: u32 = 12;
    /// Ids of the segments a merged segment replaces (version 4 on).
    pub const SUPERSEDES: u32 = 13;
    /// The resources and scopes the blocks share (version 5 on).
    pub const TABLES: u32 = 14;
    /// Every section a segment must have, in file order: the first six in
    /// version 1, seven in version 2, twelve in version 3, thirteen in
    /// version 4, all fourteen from version 5 on.
    pub const ALL: [u32; 14] = [
        BLOCKS,
        TRACE_ENTRIES,
        TRACE_POSTINGS,
        BLOOM,
        CATALOG,
        BLOCK_OPS,
        DICT,
        DIGESTS,
        SERVICES,
        SERVICE_ROWS,
        TRACE_SERVICES,
        BLOCK_ATTRS,
        SUPERSEDES,
        TABLES,
    ];

    /// The sections of a file of format `version`.
    pub fn for_version(version: u32) -> &'static [u32] {
        match version {
            1 => &ALL[..6],
            2 => &ALL[..7],
            3 => &ALL[..12],
            4 => &ALL[..13],
            _ => &ALL,
        }
    }
}

/// Where a block is and what it covers: one entry of the blocks section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockMeta {
    pub offset: u64,
    pub stored_len: u32,
    pub span_count: u32,
    pub min_start: u64,
    pub max_start: u64,
    pub max_end: u64,
}

impl BlockMeta {
    fn encode(&self, out: &mut Vec<u8>) {
        put_u64(out, self.offset);
        put_u32(out, self.stored_len);
        put_u32(out, self.span_count);
        put_u64(out, self.min_start);
        put_u64(out, self.max_start);
        put_u64(out, self.max_end);
    }

    fn decode(b: &[u8]) -> BlockMeta {
        BlockMeta {
            offset: LE::read_u64(&b[0..]),
            stored_len: LE::read_u32(&b[8..]),
            span_count: LE::read_u32(&b[12..]),
            min_start: LE::read_u64(&b[16..]),
            max_start: LE::read_u64(&b[24..]),
            max_end: LE::read_u64(&b[32..]),
        }
    }

    /// True when the block may hold a span starting in `[from, to)`.
    pub fn overlaps(&self, from: u64, to: u64) -> bool {
        self.max_start >= from && self.min_start < to
    }
}

/// File name of a sealed segment.
pub fn sealed_name(id: u64) -> String {
    format!("{id:020}.seg")
}

/// File name of a write-ahead log.
pub fn wal_name(id: u64) -> String {
    format!("{id:020}.wal")
}

/// File name of a segment being written, before it is sealed.
pub fn temp_name(id: u64) -> String {
    format!("{id:020}.seg.tmp")
}

/// What a file of the store directory is, by its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FileKind {
    /// `<id>.seg`: sealed, immutable, mapped.
    Segment,
    /// `<id>.wal`: the write-ahead log of spans not yet in a segment.
    Wal,
    /// `<id>.seg.tmp`: a segment whose writing did not finish.
    Temp,
}

/// Parses a store file name into its id and kind.
pub fn parse_name(name: &str) -> Option<(u64, FileKind)> {
    let (stem, kind) = if let Some(s) = name.strip_suffix(".seg") {
        (s, FileKind::Segment)
    } else if let Some(s) = name.strip_suffix(".wal") {
        (s, FileKind::Wal)
    } else {
        (name.strip_suffix(".seg.tmp")?, FileKind::Temp)
    };
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
        .map(|id| (id, kind))
}

/// The id a file's name gives, if it follows the naming scheme.
fn id_from_path(path: &Path) -> Option<u64> {
    path.file_name()?
        .to_str()
        .and_then(parse_name)
        .map(|(id, _)| id)
}

/// A file's header must carry the id its name gives: a copied or renamed
/// file would otherwise be sealed over, or confused with, another segment.
fn check_id(path: &Path, header: &FileHeader) -> Result<()> {
    match id_from_path(path) {
        Some(id) if id != header.segment_id => Err(Error::corrupt(
            path,
            H_SEGMENT_ID as u64,
            format!(
                "header says segment {}, the file name says {id}",
                header.segment_id
            ),
        )),
        _ => Ok(()),
    }
}

fn encode_header(id: u64, created: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[H_MAGIC..H_MAGIC + 8].copy_from_slice(&SEGMENT_MAGIC);
    LE::write_u32(&mut h[H_VERSION..], FORMAT_VERSION);
    LE::write_u64(&mut h[H_SEGMENT_ID..], id);
    LE::write_u64(&mut h[H_CREATED..], created);
    let crc = crc32fast::hash(&h[..H_CRC]);
    LE::write_u32(&mut h[H_CRC..], crc);
    h
}

/// The decoded file header.
#[derive(Clone, Copy, Debug)]
pub struct FileHeader {
    pub version: u32,
    pub segment_id: u64,
    pub created_unix_nano: u64,
}

/// True when the header checksum field matches bytes 0..32 as this
/// version lays the header out.
fn header_checksum_matches(h: &[u8]) -> bool {
    h.len() >= HEADER_LEN && crc32fast::hash(&h[..H_CRC]) == LE::read_u32(&h[H_CRC..])
}

/// Checks magic, version and checksum of a segment's first bytes.
pub fn decode_header(path: &Path, h: &[u8]) -> Result<FileHeader> {
    if h.len() < HEADER_LEN {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "file is {} bytes, shorter than the {HEADER_LEN}-byte header",
                h.len()
            ),
        ));
    }
    if h[H_MAGIC..H_MAGIC + 8] != SEGMENT_MAGIC {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "expected segment magic {:?}, found {:?}",
                SEGMENT_MAGIC,
                &h[..8]
            ),
        ));
    }
    let version = LE::read_u32(&h[H_VERSION..]);
    // The version comes before the checksum: a newer version may lay the
    // header out differently, and must be reported as such, not as damage.
    if version > FORMAT_VERSION || version == 0 {
        return Err(Error::UnsupportedVersion {
            path: path.into(),
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let crc = crc32fast::hash(&h[..H_CRC]);
    let stored = LE::read_u32(&h[H_CRC..]);
    if crc != stored {
        return Err(Error::corrupt(
            path,
            H_CRC as u64,
            format!("header checksum {stored:#010x}, computed {crc:#010x}"),
        ));
    }
    Ok(FileHeader {
        version,
        segment_id: LE::read_u64(&h[H_SEGMENT_ID..]),
        created_unix_nano: LE::read_u64(&h[H_CREATED..]),
    })
}

/// Turns a decoding error inside a block at `offset` into a corruption error.
fn block_err(path: &Path, offset: u64, e: DecodeError) -> Error {
    Error::corrupt(path, offset + e.offset as u64, e.detail)
}

/// Where a block's bytes come from: a sealed segment's map, or the active
/// file read with `pread` (never mapped, since a later writer may cut its
/// tail).
#[derive(Clone)]
pub enum BlockSource {
    Mapped(Arc<SealedSegment>),
    File {
        path: Arc<PathBuf>,
        file: Arc<dyn FileHandle>,
    },
}

impl BlockSource {
    /// Reads, checks and decompresses a block, returning its header and
    /// uncompressed body.
    pub fn load(&self, meta: &BlockMeta) -> Result<(BlockHeader, Vec<u8>)> {
        match self {
            BlockSource::Mapped(seg) => seg.load_block(meta),
            BlockSource::File { path, file } => {
                let mut buf = vec![0u8; meta.stored_len as usize];
                file.read_exact_at(&mut buf, meta.offset)
                    .map_err(|e| Error::io(path.as_path(), "read block", e))?;
                load_from(path, meta.offset, &buf, None)
            }
        }
    }

    /// The spans of `trace` in the block.
    pub fn trace_spans(&self, meta: &BlockMeta, trace: &TraceId) -> Result<Vec<Span>> {
        self.with_raw(meta, |header, raw| {
            let view = self.view(meta, raw, header)?;
            let rows = view.rows_of(trace);
            view.rows(rows).map_err(|e| self.body_err(meta, e))
        })
    }

    /// True when some span of `trace` in the block satisfies `f`; spans
    /// whose head `pre` refuses are not decoded further.
    pub fn trace_any(
        &self,
        meta: &BlockMeta,
        trace: &TraceId,
        pre: impl Fn(&RowHead) -> bool,
        f: impl Fn(&Span) -> bool,
    ) -> Result<bool> {
        self.with_raw(meta, |header, raw| {
            let view = self.view(meta, raw, header)?;
            let rows = view.rows_of(trace);
            view.any_row(rows, pre, f)
                .map_err(|e| self.body_err(meta, e))
        })
    }

    /// Every span of the block.
    pub fn all_spans(&self, meta: &BlockMeta) -> Result<Vec<Span>> {
        self.with_raw(meta, |header, raw| {
            let view = self.view(meta, raw, header)?;
            view.all().map_err(|e| self.body_err(meta, e))
        })
    }

    /// Runs `f` on the block's checked, uncompressed body, held in a
    /// per-thread buffer: lookups then allocate nothing block-sized.
    fn with_raw<R>(
        &self,
        meta: &BlockMeta,
        f: impl FnOnce(&BlockHeader, &[u8]) -> Result<R>,
    ) -> Result<R> {
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        let mut buf = SCRATCH.take();
        let r = match self {
            BlockSource::Mapped(seg) => seg.load_block_into(meta, &mut buf),
            BlockSource::File { .. } => self.load(meta).map(|(h, raw)| {
                buf = raw;
                h
            }),
        };
        let out = r.and_then(|h| f(&h, &buf));
        // Keep the buffer unless a huge block grew it.
        if buf.capacity() <= 4 << 20 {
            SCRATCH.set(buf);
        }
        out
    }

    fn view<'a>(
        &'a self,
        meta: &BlockMeta,
        raw: &'a [u8],
        header: &BlockHeader,
    ) -> Result<BlockView<'a>> {
        let shared = match self {
            BlockSource::Mapped(seg) => seg.shared.as_ref(),
            BlockSource::File { .. } => None,
        };
        let view = BlockView::parse_with(raw, header.span_count, shared)
            .map_err(|e| self.body_err(meta, e))?;
        Ok(match self {
            BlockSource::Mapped(seg) => view.with_cache(&seg.tables),
            BlockSource::File { .. } => view,
        })
    }

    fn body_err(&self, meta: &BlockMeta, e: DecodeError) -> Error {
        Error::corrupt(
            self.path(),
            meta.offset + BLOCK_HEADER_LEN as u64,
            format!(
                "in the uncompressed block body at {}: {}",
                e.offset, e.detail
            ),
        )
    }

    /// The file the blocks live in.
    pub fn path(&self) -> &Path {
        match self {
            BlockSource::Mapped(seg) => &seg.path,
            BlockSource::File { path, .. } => path,
        }
    }
}

/// Checks a stored block (header then body) found at `offset` of `path`.
fn load_from(
    path: &Path,
    offset: u64,
    stored: &[u8],
    dict: Option<&BlockDict>,
) -> Result<(BlockHeader, Vec<u8>)> {
    let header = BlockHeader::decode(stored).map_err(|e| block_err(path, offset, e))?;
    let body = stored.get(BLOCK_HEADER_LEN..).unwrap_or(&[]);
    let raw = block::decompress_body(&header, body, dict)
        .map_err(|e| block_err(path, offset + BLOCK_HEADER_LEN as u64, e))?;
    Ok((header, raw))
}

/// The segment being appended to.
pub struct ActiveSegment {
    pub id: u64,
    pub path: Arc<PathBuf>,
    pub file: Arc<dyn FileHandle>,
    /// The file system the file lives in, for sealing and removing it.
    fs: Arc<dyn FileSystem>,
    pub created_unix_nano: u64,
    len: u64,
    pub blocks: Vec<BlockMeta>,
    pub traces: TraceIndexBuilder,
    pub catalog: CatalogBuilder,
    pub digests: DigestBuilder,
    /// The attribute filters of the blocks so far.
    pub attr_filters: crate::attrs::FilterBuilder,
    /// Segments this one replaces once sealed (a merge's inputs).
    pub supersedes: Vec<u64>,
    pub span_count: u64,
    /// The zstd dictionary its blocks were compressed with, written to the
    /// footer when sealed.
    pub dict: Option<Vec<u8>>,
    /// The TABLES section its blocks refer to (see `tables`); `None`
    /// writes empty tables, for blocks that hold their own.
    pub tables: Option<Vec<u8>>,
    /// Bytes of blocks staged but not written yet, which end at `len`.
    staged: Vec<u8>,
}

/// Staged block bytes are written once they reach this size.
const STAGE_BYTES: usize = 256 << 10;

impl ActiveSegment {
    /// Creates the write-ahead log `dir/<id>.wal` with its header, durably
    /// (file and directory entry fsynced), so a flush into it needs only an
    /// fsync of the file.
    pub fn create_wal(dir: &Path, id: u64) -> Result<ActiveSegment> {
        Self::create_wal_in(&fs::real(), dir, id)
    }

    /// [`create_wal`](Self::create_wal) in the file system `fs`.
    pub fn create_wal_in(fs: &Arc<dyn FileSystem>, dir: &Path, id: u64) -> Result<ActiveSegment> {
        let seg = Self::create_file(fs, dir.join(wal_name(id)), id, true)?;
        sync_dir(&**fs, dir)?;
        Ok(seg)
    }

    /// Creates `dir/<id>.seg.tmp`, to be filled and then sealed. Neither
    /// the file nor its directory entry is fsynced now: only the sealed
    /// name is ever read, and sealing fsyncs the whole file before the
    /// rename and the directory after it. A leftover temporary file, whole
    /// or not, is deleted by the next writer open.
    pub fn create_temp(dir: &Path, id: u64) -> Result<ActiveSegment> {
        Self::create_temp_in(&fs::real(), dir, id)
    }

    /// [`create_temp`](Self::create_temp) in the file system `fs`.
    pub fn create_temp_in(fs: &Arc<dyn FileSystem>, dir: &Path, id: u64) -> Result<ActiveSegment> {
        Self::create_file(fs, dir.join(temp_name(id)), id, false)
    }

    fn create_file(
        fs: &Arc<dyn FileSystem>,
        path: PathBuf,
        id: u64,
        sync: bool,
    ) -> Result<ActiveSegment> {
        let file = fs
            .open(&path, OpenMode::CreateNew)
            .map_err(|e| Error::io(&path, "create segment", e))?;
        let created = now_unix_nanos();
        file.write_all_at(&encode_header(id, created), 0)
            .map_err(|e| Error::io(&path, "write segment header", e))?;
        if sync {
            file.sync_all()
                .map_err(|e| Error::io(&path, "fsync segment", e))?;
        }
        Ok(ActiveSegment::new(
            fs.clone(),
            id,
            path,
            file,
            created,
            HEADER_LEN as u64,
        ))
    }

    fn new(
        fs: Arc<dyn FileSystem>,
        id: u64,
        path: PathBuf,
        file: Box<dyn FileHandle>,
        created: u64,
        len: u64,
    ) -> ActiveSegment {
        ActiveSegment {
            id,
            path: Arc::new(path),
            file: Arc::from(file),
            fs,
            created_unix_nano: created,
            len,
            blocks: Vec::new(),
            traces: TraceIndexBuilder::default(),
            catalog: CatalogBuilder::default(),
            digests: DigestBuilder::default(),
            attr_filters: Default::default(),
            supersedes: Vec::new(),
            span_count: 0,
            dict: None,
            tables: None,
            staged: Vec::new(),
        }
    }

    /// Bytes of the segment so far, staged ones included.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True when no block has been written yet.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Appends an encoded block (not yet fsynced).
    pub fn append(&mut self, block: &EncodedBlock) -> Result<()> {
        self.write_staged()?;
        let mut buf = Vec::with_capacity(BLOCK_HEADER_LEN + block.body.len());
        buf.extend_from_slice(&block.header.encode());
        buf.extend_from_slice(&block.body);
        self.file
            .write_all_at(&buf, self.len)
            .map_err(|e| Error::io(self.path.as_path(), "append block", e))?;
        self.record(block.header, &block.summary, self.len);
        Ok(())
    }

    /// Appends a block to a segment being written whole (not a log): the
    /// bytes are gathered and written a few hundred kilobytes at a time,
    /// one system call for many blocks. The file holds them all only after
    /// [`write_staged`](Self::write_staged), which sealing calls.
    pub fn stage(&mut self, block: &EncodedBlock) -> Result<()> {
        let offset = self.len;
        self.staged.extend_from_slice(&block.header.encode());
        self.staged.extend_from_slice(&block.body);
        self.record(block.header, &block.summary, offset);
        if self.staged.len() >= STAGE_BYTES {
            self.write_staged()?;
        }
        Ok(())
    }

    /// Writes the blocks [`stage`](Self::stage) gathered.
    pub fn write_staged(&mut self) -> Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let offset = self.len - self.staged.len() as u64;
        self.file
            .write_all_at(&self.staged, offset)
            .map_err(|e| Error::io(self.path.as_path(), "append block", e))?;
        self.staged.clear();
        Ok(())
    }

    fn record(&mut self, h: BlockHeader, summary: &BlockSummary, offset: u64) {
        let n = self.blocks.len() as u32;
        self.blocks.push(BlockMeta {
            offset,
            stored_len: h.stored_len() as u32,
            span_count: h.span_count,
            min_start: h.min_start,
            max_start: h.max_start,
            max_end: summary.max_end,
        });
        for t in &summary.trace_ids {
            self.traces.add(*t, n);
        }
        self.catalog.add_block(&summary.operations);
        for p in &summary.traces {
            self.digests.add(p);
        }
        self.attr_filters
            .add_block(&summary.attr_items, &summary.file_items);
        self.span_count += u64::from(h.span_count);
        self.len = offset + h.stored_len();
    }

    /// The blocks holding `trace` and how to read them.
    pub fn trace_blocks(&self, trace: &TraceId) -> Vec<BlockMeta> {
        self.traces
            .get(trace)
            .iter()
            .map(|i| self.blocks[*i as usize])
            .collect()
    }

    /// A handle to read this segment's blocks.
    pub fn source(&self) -> BlockSource {
        BlockSource::File {
            path: self.path.clone(),
            file: self.file.clone(),
        }
    }

    /// Writes the footer, fsyncs, renames to the sealed name and fsyncs the
    /// directory. Returns the sealed path.
    pub fn seal(mut self, dir: &Path) -> Result<PathBuf> {
        self.write_staged()?;
        let footer = self.footer();
        let path = self.path.as_path();
        self.file
            .write_all_at(&footer, self.len)
            .map_err(|e| Error::io(path, "write footer", e))?;
        self.file
            .sync_all()
            .map_err(|e| Error::io(path, "fsync segment", e))?;
        let sealed = dir.join(sealed_name(self.id));
        // Sealed files are never replaced: the writer holds the directory
        // lock, so nothing can create this name between check and rename.
        let exists = match self.fs.metadata(&sealed) {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Error::io(&sealed, "check for a sealed segment", e)),
        };
        if exists {
            return Err(Error::corrupt(
                &sealed,
                0,
                format!(
                    "refusing to seal {} over an existing segment",
                    path.display()
                ),
            ));
        }
        self.fs
            .rename(path, &sealed)
            .map_err(|e| Error::io(path, "rename sealed segment", e))?;
        if let Err(e) = sync_dir(&*self.fs, dir) {
            // The rename may or may not be durable, and the caller will not
            // publish the segment: take the name back, so that what the
            // segment would replace (a log, a merge's inputs) stays in
            // force. Should a crash come first, the segment found is whole
            // and fsynced, so finding it is just as correct.
            if let Err(u) = self.fs.remove_file(&sealed) {
                log::error!(
                    "spanlog: {} stays after the failed fsync of its directory: {u}",
                    sealed.display()
                );
            }
            return Err(e);
        }
        Ok(sealed)
    }

    /// Removes the file (an empty log, or a log whose spans are sealed).
    pub fn discard(self, dir: &Path) -> Result<()> {
        self.fs
            .remove_file(self.path.as_path())
            .map_err(|e| Error::io(self.path.as_path(), "remove empty segment", e))?;
        sync_dir(&*self.fs, dir)
    }

    /// Footer sections, the section table and the trailer.
    fn footer(&mut self) -> Vec<u8> {
        let mut blocks = Vec::with_capacity(self.blocks.len() * BLOCK_ENTRY_LEN);
        for b in &self.blocks {
            b.encode(&mut blocks);
        }
        let (entries, postings) = self.traces.encode();
        let bloom = self.traces.bloom();
        let catalog = &mut self.catalog;
        let [digests, services, rows, trace_services] = self
            .digests
            .encode(|svc, name, kind| catalog.op_id(svc, name, kind));
        let (cat, block_ops) = self.catalog.encode();
        let dict = self.dict.clone().unwrap_or_default();
        let mut supersedes = Vec::new();
        crate::codec::put_varint(&mut supersedes, self.supersedes.len() as u64);
        for id in &self.supersedes {
            crate::codec::put_varint(&mut supersedes, *id);
        }
        let attrs = std::mem::take(&mut self.attr_filters).finish();
        let tables = self
            .tables
            .take()
            .unwrap_or_else(|| crate::block::encode_tables_section(&[], &[]));
        let sections = [
            blocks,
            entries,
            postings,
            bloom,
            cat,
            block_ops,
            dict,
            digests,
            services,
            rows,
            trace_services,
            attrs,
            supersedes,
            tables,
        ];
        let footer_start = self.len;
        let mut out = Vec::new();
        let mut table = Vec::new();
        for (id, s) in section::ALL.iter().zip(&sections) {
            put_u32(&mut table, *id);
            put_u32(&mut table, 0);
            put_u64(&mut table, footer_start + out.len() as u64);
            put_u64(&mut table, s.len() as u64);
            out.extend_from_slice(s);
        }
        let table_offset = footer_start + out.len() as u64;
        out.extend_from_slice(&table);
        let footer_crc = crc32fast::hash(&out);
        out.extend_from_slice(&self.trailer(footer_start, table_offset, footer_crc));
        out
    }

    fn trailer(&self, footer_start: u64, table_offset: u64, footer_crc: u32) -> [u8; TRAILER_LEN] {
        let mut t = [0u8; TRAILER_LEN];
        LE::write_u64(&mut t[T_FOOTER_START..], footer_start);
        LE::write_u64(&mut t[T_TABLE_OFFSET..], table_offset);
        LE::write_u32(&mut t[T_SECTION_COUNT..], section::ALL.len() as u32);
        LE::write_u32(&mut t[T_BLOCK_COUNT..], self.blocks.len() as u32);
        LE::write_u64(&mut t[T_SPAN_COUNT..], self.span_count);
        LE::write_u64(
            &mut t[T_MIN_START..],
            self.blocks.iter().map(|b| b.min_start).min().unwrap_or(0),
        );
        LE::write_u64(
            &mut t[T_MAX_START..],
            self.blocks.iter().map(|b| b.max_start).max().unwrap_or(0),
        );
        LE::write_u64(
            &mut t[T_MAX_END..],
            self.blocks.iter().map(|b| b.max_end).max().unwrap_or(0),
        );
        LE::write_u32(&mut t[T_FOOTER_CRC..], footer_crc);
        let crc = crc32fast::hash(&t[..T_TRAILER_CRC]);
        LE::write_u32(&mut t[T_TRAILER_CRC..], crc);
        t[T_MAGIC..].copy_from_slice(&TRAILER_MAGIC);
        t
    }
}

/// Outcome of reading a write-ahead log after a restart.
pub struct Recovered {
    pub segment: ActiveSegment,
    /// Every span of the valid blocks, block by block.
    pub spans: Vec<Span>,
    /// Offset where valid blocks end, and why the rest was not accepted,
    /// when the file holds more bytes than its valid blocks.
    pub torn_tail: Option<(u64, String)>,
    /// Offset of a valid block found after the first invalid one: the
    /// damage is not (only) a torn last write.
    pub valid_after_damage: Option<u64>,
    /// Where the bytes cut off were kept, when valid blocks were among them.
    pub kept_tail: Option<PathBuf>,
}

/// Reads a write-ahead log block by block, stopping at the first block that
/// does not check out (point-in-time recovery). With `truncate`, the rest of
/// the file is cut off and the file fsynced; if valid blocks were among the
/// bytes cut, they are first kept in `<log>.damaged-<offset>` so nothing is
/// destroyed. After a power loss such blocks are unacknowledged writes that
/// reached the disk out of order (or stale data); with `strict` they are
/// instead a corruption error and nothing is changed. Without `truncate`
/// (read-only opens, verification) the file is left alone.
pub fn recover_active(path: &Path, truncate: bool) -> Result<Recovered> {
    recover_active_in(&fs::real(), path, truncate, false)
}

impl Recovered {
    /// Spans in the valid blocks.
    pub fn span_count(&self) -> u64 {
        self.segment.span_count
    }
}

/// [`recover_active`], refusing damage followed by valid blocks if `strict`.
pub fn recover_active_with(path: &Path, truncate: bool, strict: bool) -> Result<Recovered> {
    recover_active_in(&fs::real(), path, truncate, strict)
}

/// [`recover_active_with`] in the file system `fs`.
pub fn recover_active_in(
    fs: &Arc<dyn FileSystem>,
    path: &Path,
    truncate: bool,
    strict: bool,
) -> Result<Recovered> {
    let mode = if truncate {
        OpenMode::ReadWrite
    } else {
        OpenMode::Read
    };
    let file = fs
        .open(path, mode)
        .map_err(|e| Error::io(path, "open write-ahead log", e))?;
    let bytes = file
        .read_to_end()
        .map_err(|e| Error::io(path, "read write-ahead log", e))?;
    let header = match decode_header(path, &bytes) {
        Ok(h) => h,
        Err(e @ Error::Corruption { .. }) if bytes.len() <= HEADER_LEN => {
            return stillborn(fs, path, file, e)
        }
        // A header torn after its magic can show any version; its checksum
        // then fails too. A log this short holds no block in any version.
        Err(e @ Error::UnsupportedVersion { .. })
            if bytes.len() == HEADER_LEN && !header_checksum_matches(&bytes) =>
        {
            return stillborn(fs, path, file, e)
        }
        Err(e) => return Err(e),
    };
    check_id(path, &header)?;
    let mut seg = ActiveSegment::new(
        fs.clone(),
        header.segment_id,
        path.to_path_buf(),
        file,
        header.created_unix_nano,
        HEADER_LEN as u64,
    );
    let (spans, torn_tail) = read_blocks(&bytes, &mut seg);
    let valid_after_damage = torn_tail
        .as_ref()
        .and_then(|(at, _)| later_valid_block(&bytes, *at as usize + 1))
        .map(|o| o as u64);
    if let (Some((at, why)), Some(later), true) = (&torn_tail, valid_after_damage, strict) {
        return Err(Error::corrupt(
            path,
            *at,
            format!("{why} (a valid block follows at {later}, so this is not a torn tail)"),
        ));
    }
    let mut kept_tail = None;
    if torn_tail.is_some() && truncate {
        if valid_after_damage.is_some() {
            kept_tail = Some(keep_tail(&**fs, path, &bytes, seg.len)?);
        }
        seg.file
            .set_len(seg.len)
            .map_err(|e| Error::io(path, "truncate torn tail", e))?;
        seg.file
            .sync_all()
            .map_err(|e| Error::io(path, "fsync write-ahead log", e))?;
    }
    Ok(Recovered {
        segment: seg,
        spans,
        torn_tail,
        valid_after_damage,
        kept_tail,
    })
}

/// Copies the bytes about to be cut off to a side file, durably.
fn keep_tail(fs: &dyn FileSystem, path: &Path, bytes: &[u8], from: u64) -> Result<PathBuf> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{from}"));
    let side = PathBuf::from(name);
    let f = fs
        .open(&side, OpenMode::Truncate)
        .map_err(|e| Error::io(&side, "create damaged log tail", e))?;
    f.write_all_at(&bytes[from as usize..], 0)
        .map_err(|e| Error::io(&side, "keep damaged log tail", e))?;
    f.sync_all()
        .map_err(|e| Error::io(&side, "fsync damaged log tail", e))?;
    if let Some(dir) = path.parent() {
        sync_dir(fs, dir)?;
    }
    Ok(side)
}

type TornTail = Option<(u64, String)>;

fn read_blocks(bytes: &[u8], seg: &mut ActiveSegment) -> (Vec<Span>, TornTail) {
    let mut offset = HEADER_LEN;
    let mut out = Vec::new();
    while offset < bytes.len() {
        match block::decode_block(&bytes[offset..]) {
            Ok((h, spans)) => {
                let refs: Vec<&Span> = spans.iter().collect();
                seg.record(h, &block::summarize_refs(&refs), offset as u64);
                offset += h.stored_len() as usize;
                out.extend(spans);
            }
            Err(e) => {
                let at = offset + e.offset;
                return (
                    out,
                    Some((offset as u64, format!("at byte {at}: {}", e.detail))),
                );
            }
        }
    }
    (out, None)
}

/// The offset of the first whole, valid block at or after `from`, if any.
fn later_valid_block(bytes: &[u8], from: usize) -> Option<usize> {
    let magic = block::BLOCK_MAGIC.to_le_bytes();
    let mut at = from;
    while let Some(i) = bytes.get(at..)?.windows(4).position(|w| w == magic) {
        let cand = at + i;
        if block::decode_block(&bytes[cand..]).is_ok() {
            return Some(cand);
        }
        at = cand + 1;
    }
    None
}

/// A log whose creation was cut short: its header never became whole, so it
/// never held a block (blocks are only written after the header was
/// fsynced). It is reported as an empty log with a torn tail at 0.
fn stillborn(
    fs: &Arc<dyn FileSystem>,
    path: &Path,
    file: Box<dyn FileHandle>,
    e: Error,
) -> Result<Recovered> {
    let Some(id) = id_from_path(path) else {
        return Err(e);
    };
    let seg = ActiveSegment::new(
        fs.clone(),
        id,
        path.to_path_buf(),
        file,
        0,
        HEADER_LEN as u64,
    );
    Ok(Recovered {
        segment: seg,
        spans: Vec::new(),
        torn_tail: Some((0, format!("incomplete header: {e}"))),
        valid_after_damage: None,
        kept_tail: None,
    })
}

/// Trailer fields of a sealed segment.
#[derive(Clone, Copy, Debug)]
pub struct Trailer {
    pub footer_start: u64,
    pub table_offset: u64,
    pub section_count: u32,
    pub block_count: u32,
    pub span_count: u64,
    pub min_start: u64,
    pub max_start: u64,
    pub max_end: u64,
}

/// A sealed, memory-mapped segment and its decoded footer.
pub struct SealedSegment {
    pub id: u64,
    pub path: PathBuf,
    pub header: FileHeader,
    pub trailer: Trailer,
    pub blocks: Vec<BlockMeta>,
    pub catalog: Catalog,
    /// The search index's services; `None` before format version 3.
    pub services: Option<Services>,
    /// How the search index's records are laid out (format version 3 on).
    packing: (DigestPacking, RowPacking),
    /// Bytes of a service id in TRACE_SERVICES.
    id_width: usize,
    /// Where each block's attribute filter lies in the file; empty before
    /// format version 3.
    attr_filters: Vec<(usize, usize)>,
    /// Segments this one replaces (version 4 on): they must not be read.
    pub supersedes: Vec<u64>,
    map: FileMap,
    sections: Vec<(usize, usize)>,
    dict: Option<BlockDict>,
    /// Resources and scopes decoded from this segment's blocks.
    tables: crate::block::TableCache,
    /// The resources and scopes its blocks share (version 5 on).
    pub shared: Option<SegmentTables>,
}

impl SealedSegment {
    /// Maps a sealed segment and checks its header, trailer, footer checksum
    /// and section layout.
    pub fn open(path: &Path) -> Result<SealedSegment> {
        Self::open_in(&*fs::real(), path)
    }

    /// [`open`](Self::open) in the file system `fs`.
    pub fn open_in(fs: &dyn FileSystem, path: &Path) -> Result<SealedSegment> {
        let file = fs
            .open(path, OpenMode::Read)
            .map_err(|e| Error::io(path, "open segment", e))?;
        let len = file
            .size()
            .map_err(|e| Error::io(path, "stat segment", e))?;
        if len < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(Error::corrupt(
                path,
                0,
                format!("sealed segment is {len} bytes, too short for header and trailer"),
            ));
        }
        // Only sealed segments are mapped: see `FileHandle::map`.
        let map = file.map().map_err(|e| Error::io(path, "mmap segment", e))?;
        let header = decode_header(path, &map)?;
        check_id(path, &header)?;
        let trailer = parse_trailer(path, &map)?;
        let sections = parse_sections(path, &map, &trailer, header.version)?;
        let mut seg = SealedSegment {
            id: header.segment_id,
            path: path.to_path_buf(),
            header,
            trailer,
            blocks: Vec::new(),
            catalog: Catalog::default(),
            services: None,
            packing: Default::default(),
            id_width: 4,
            attr_filters: Vec::new(),
            supersedes: Vec::new(),
            map,
            sections,
            dict: None,
            tables: Default::default(),
            shared: None,
        };
        seg.blocks = seg.parse_blocks()?;
        seg.shared = seg.decode_tables()?;
        seg.dict = seg
            .sections
            .get(6)
            .filter(|(_, len)| *len > 0)
            .map(|_| BlockDict::new(seg.section(6)));
        seg.check_indexes()?;
        Ok(seg)
    }

    /// File offset of section `i`, 0 when the file's version has none.
    fn section_at(&self, i: usize) -> usize {
        self.sections.get(i).map_or(0, |(off, _)| *off)
    }

    /// Section `i` of the table; empty when the file's version has none.
    fn section(&self, i: usize) -> &[u8] {
        match self.sections.get(i) {
            Some((off, len)) => &self.map[*off..*off + *len],
            None => &[],
        }
    }

    fn parse_blocks(&self) -> Result<Vec<BlockMeta>> {
        let s = self.section(0);
        let n = self.trailer.block_count as usize;
        if s.len() != n * BLOCK_ENTRY_LEN {
            return Err(Error::corrupt(
                &self.path,
                self.sections[0].0 as u64,
                format!("blocks section is {} bytes for {n} blocks", s.len()),
            ));
        }
        let blocks: Vec<BlockMeta> = s
            .chunks_exact(BLOCK_ENTRY_LEN)
            .map(BlockMeta::decode)
            .collect();
        let mut expect = HEADER_LEN as u64;
        let mut spans = 0u64;
        for (i, b) in blocks.iter().enumerate() {
            if b.offset != expect
                || b.stored_len < BLOCK_HEADER_LEN as u32
                || b.min_start > b.max_start
            {
                let at = self.sections[0].0 + i * BLOCK_ENTRY_LEN;
                return Err(Error::corrupt(
                    &self.path,
                    at as u64,
                    format!(
                        "block entry {i} is inconsistent (offset {} expected {expect})",
                        b.offset
                    ),
                ));
            }
            expect += u64::from(b.stored_len);
            spans += u64::from(b.span_count);
        }
        if expect != self.trailer.footer_start || spans != self.trailer.span_count {
            return Err(Error::corrupt(
                &self.path,
                self.sections[0].0 as u64,
                "blocks do not end at the footer or span counts disagree",
            ));
        }
        self.check_trailer_times(&blocks)?;
        Ok(blocks)
    }

    /// Scans skip whole segments by the trailer's times, so wrong times
    /// would hide data: they must agree with the block entries.
    fn check_trailer_times(&self, blocks: &[BlockMeta]) -> Result<()> {
        let t = &self.trailer;
        let min = blocks.iter().map(|b| b.min_start).min().unwrap_or(0);
        let max = blocks.iter().map(|b| b.max_start).max().unwrap_or(0);
        let end = blocks.iter().map(|b| b.max_end).max().unwrap_or(0);
        if (min, max, end) != (t.min_start, t.max_start, t.max_end) {
            let at = self.map.len() - TRAILER_LEN + T_MIN_START;
            return Err(Error::corrupt(
                &self.path,
                at as u64,
                "trailer time range disagrees with the block entries",
            ));
        }
        Ok(())
    }

    fn check_indexes(&mut self) -> Result<()> {
        let Some(index) = TraceIndexView::new(self.section(1), self.section(2)) else {
            return Err(Error::corrupt(
                &self.path,
                self.sections[1].0 as u64,
                "trace index sections have a wrong size",
            ));
        };
        // Binary search silently misses entries of an unsorted index.
        if let Some(i) = (1..index.len()).find(|i| index.trace_at(i - 1) >= index.trace_at(*i)) {
            let at = self.sections[1].0 + i * crate::index::TRACE_ENTRY_LEN;
            return Err(Error::corrupt(
                &self.path,
                at as u64,
                "trace index entries are not strictly sorted",
            ));
        }
        if BloomView::new(self.section(3)).is_none() {
            return Err(Error::corrupt(
                &self.path,
                self.sections[3].0 as u64,
                "bloom filter section is malformed",
            ));
        }
        let cat =
            Catalog::decode(self.section(4), self.section(5), self.blocks.len()).map_err(|e| {
                Error::corrupt(&self.path, (self.sections[4].0 + e.offset) as u64, e.detail)
            })?;
        let traces = index.len();
        self.catalog = cat;
        if self.sections.len() > 7 {
            self.check_search_index(traces)?;
            let (at, _) = self.sections[11];
            let filters = crate::attrs::decode_section(self.section(11), self.blocks.len())
                .map_err(|e| Error::corrupt(&self.path, (at + e.offset) as u64, e.detail))?;
            self.attr_filters = filters.into_iter().map(|(o, l)| (at + o, l)).collect();
        }
        if self.sections.len() > 12 {
            self.supersedes = self.decode_supersedes()?;
        }
        Ok(())
    }

    fn check_search_index(&mut self, traces: usize) -> Result<()> {
        let corrupt = |i: usize, detail: String| {
            Err(Error::corrupt(
                &self.path,
                self.sections[i].0 as u64,
                detail,
            ))
        };
        let version = self.header.version;
        let digests = match DigestPacking::digests(version, self.section(7)) {
            Ok(p) if p.count(self.section(7)) == Some(traces) => p,
            Ok(_) => return corrupt(7, format!("digests section is not {traces} digests")),
            Err(e) => return corrupt(7, format!("digests section: {e}")),
        };
        let (rows, row_count) = match RowPacking::rows(version, self.section(9)) {
            Ok(p) => match p.count(self.section(9)) {
                Some(n) => (p, n),
                None => return corrupt(9, "service rows have a wrong size".into()),
            },
            Err(e) => return corrupt(9, format!("service rows section: {e}")),
        };
        let services = Services::decode(self.section(8), row_count).map_err(|e| {
            Error::corrupt(&self.path, (self.sections[8].0 + e.offset) as u64, e.detail)
        })?;
        self.id_width = digest::id_width(version, services.names.len());
        if !self.section(10).len().is_multiple_of(self.id_width) {
            return corrupt(10, "trace services section has a wrong size".into());
        }
        self.packing = (digests, rows);
        self.services = Some(services);
        Ok(())
    }

    fn decode_supersedes(&self) -> Result<Vec<u64>> {
        let mut c = crate::codec::Cursor::new(self.section(12));
        let r = (|| {
            let n = c.count(1)?;
            let mut ids = Vec::with_capacity(n);
            for _ in 0..n {
                let id = c.varint()?;
                if id >= self.id || ids.last().is_some_and(|l| *l >= id) {
                    return c.err(format!(
                        "superseded id {id} not ascending below {}",
                        self.id
                    ));
                }
                ids.push(id);
            }
            if !c.is_empty() {
                return c.err("bytes after the superseded ids");
            }
            Ok(ids)
        })();
        r.map_err(|e| {
            Error::corrupt(
                &self.path,
                (self.sections[12].0 + e.offset) as u64,
                e.detail,
            )
        })
    }

    /// The TABLES section (version 5 on), decoded.
    fn decode_tables(&self) -> Result<Option<SegmentTables>> {
        let Some((at, _)) = self.sections.get(13) else {
            return Ok(None);
        };
        SegmentTables::decode(self.section(13))
            .map(Some)
            .map_err(|e| Error::corrupt(&self.path, (at + e.offset) as u64, e.detail))
    }

    /// The zstd dictionary of the segment's codec-2 blocks, if any.
    pub fn dict_bytes(&self) -> Option<&[u8]> {
        self.dict.as_ref().map(|d| d.bytes())
    }

    /// The attribute filter of block `i`, or of the whole segment for `i`
    /// equal to the block count; `None` when the segment has none.
    pub fn attr_filter(&self, i: usize) -> Option<&[u8]> {
        let (at, len) = *self.attr_filters.get(i)?;
        Some(&self.map[at..at + len])
    }

    /// The digest of the trace at position `i` of the trace index.
    pub fn digest(&self, i: usize) -> Result<Digest> {
        digest::digest_at(self.section(7), &self.packing.0, i).ok_or_else(|| {
            Error::corrupt(
                &self.path,
                self.section_at(7) as u64,
                format!("digest {i} out of range"),
            )
        })
    }

    /// Service row `i`.
    pub fn service_row(&self, i: usize) -> Result<Row> {
        let p = &self.packing.1;
        let row = digest::row_at(self.section(9), p, i)
            .filter(|r| (r.trace as usize) < self.trace_index().len());
        row.ok_or_else(|| {
            Error::corrupt(
                &self.path,
                (self.section_at(9) + p.header + i * p.len) as u64,
                format!("service row {i} out of range or names a missing trace"),
            )
        })
    }

    /// The service names of a digest.
    pub fn digest_services(&self, d: &Digest) -> Result<Vec<&str>> {
        let names = self.services.as_ref().map_or(&[][..], |s| &s.names[..]);
        let ids = self.section(10);
        let w = self.id_width;
        let at = d.services_at as usize * w;
        let bytes = at
            .checked_add(d.services_len as usize * w)
            .and_then(|end| ids.get(at..end));
        let bad = || {
            Error::corrupt(
                &self.path,
                self.section_at(10) as u64,
                "a digest names services outside the trace services section",
            )
        };
        bytes
            .ok_or_else(bad)?
            .chunks_exact(w)
            .map(|b| names.get(digest::read_id(b) as usize).map(String::as_str))
            .collect::<Option<Vec<&str>>>()
            .ok_or_else(bad)
    }

    /// Position of `trace` in the trace index, if present.
    pub fn trace_ordinal(&self, trace: &TraceId) -> Option<usize> {
        if !self.may_contain(trace) {
            return None;
        }
        self.trace_index().position(trace)
    }

    /// The blocks (number and entry) of the trace at position `i` of the
    /// trace index.
    pub fn blocks_of_ordinal(&self, i: usize) -> Result<Vec<(usize, BlockMeta)>> {
        let ids = self.trace_index().blocks_of(i).ok_or_else(|| {
            Error::corrupt(
                &self.path,
                self.sections[2].0 as u64,
                format!("postings of trace {i} are out of range"),
            )
        })?;
        ids.iter()
            .map(|b| {
                let meta = self.blocks.get(*b as usize).copied().ok_or_else(|| {
                    Error::corrupt(
                        &self.path,
                        self.sections[1].0 as u64,
                        format!("trace {i} points at block {b} of {}", self.blocks.len()),
                    )
                })?;
                Ok((*b as usize, meta))
            })
            .collect()
    }

    /// The trace-id index.
    pub fn trace_index(&self) -> TraceIndexView<'_> {
        TraceIndexView::new(self.section(1), self.section(2)).expect("shape checked at open")
    }

    /// False when the segment certainly lacks `trace`.
    pub fn may_contain(&self, trace: &TraceId) -> bool {
        BloomView::new(self.section(3)).is_some_and(|b| b.may_contain(trace))
    }

    /// The blocks holding `trace`.
    pub fn trace_blocks(&self, trace: &TraceId) -> Result<Vec<BlockMeta>> {
        if !self.may_contain(trace) {
            return Ok(Vec::new());
        }
        let ids = self.trace_index().lookup(trace).ok_or_else(|| {
            Error::corrupt(
                &self.path,
                self.sections[2].0 as u64,
                format!("postings of trace {trace} are out of range"),
            )
        })?;
        ids.iter()
            .map(|i| {
                self.blocks.get(*i as usize).copied().ok_or_else(|| {
                    Error::corrupt(
                        &self.path,
                        self.sections[1].0 as u64,
                        format!("trace {trace} points at block {i} of {}", self.blocks.len()),
                    )
                })
            })
            .collect()
    }

    fn load_block(&self, meta: &BlockMeta) -> Result<(BlockHeader, Vec<u8>)> {
        let mut raw = Vec::new();
        let h = self.load_block_into(meta, &mut raw)?;
        Ok((h, raw))
    }

    fn load_block_into(&self, meta: &BlockMeta, raw: &mut Vec<u8>) -> Result<BlockHeader> {
        let start = meta.offset as usize;
        let stored = &self.map[start..start + meta.stored_len as usize];
        let h = BlockHeader::decode(stored).map_err(|e| block_err(&self.path, meta.offset, e))?;
        if h.stored_len() != u64::from(meta.stored_len)
            || h.span_count != meta.span_count
            || (h.min_start, h.max_start) != (meta.min_start, meta.max_start)
        {
            return Err(Error::corrupt(
                &self.path,
                meta.offset,
                "block header disagrees with the footer's block entry",
            ));
        }
        let body = stored.get(BLOCK_HEADER_LEN..).unwrap_or(&[]);
        block::decompress_into(&h, body, self.dict.as_ref(), raw)
            .map_err(|e| block_err(&self.path, meta.offset + BLOCK_HEADER_LEN as u64, e))?;
        Ok(h)
    }

    /// Bytes of the file.
    pub fn file_len(&self) -> u64 {
        self.map.len() as u64
    }

    /// Size of each footer section, by section id.
    pub fn section_sizes(&self) -> Vec<(u32, u64)> {
        section::ALL
            .iter()
            .zip(&self.sections)
            .map(|(id, (_, len))| (*id, *len as u64))
            .collect()
    }
}

fn parse_trailer(path: &Path, map: &[u8]) -> Result<Trailer> {
    let at = map.len() - TRAILER_LEN;
    let t = &map[at..];
    if t[T_MAGIC..] != TRAILER_MAGIC {
        return Err(Error::corrupt(
            path,
            (at + T_MAGIC) as u64,
            "sealed segment lacks the trailer magic",
        ));
    }
    let crc = crc32fast::hash(&t[..T_TRAILER_CRC]);
    let stored = LE::read_u32(&t[T_TRAILER_CRC..]);
    if crc != stored {
        return Err(Error::corrupt(
            path,
            (at + T_TRAILER_CRC) as u64,
            format!("trailer checksum {stored:#010x}, computed {crc:#010x}"),
        ));
    }
    let tr = Trailer {
        footer_start: LE::read_u64(&t[T_FOOTER_START..]),
        table_offset: LE::read_u64(&t[T_TABLE_OFFSET..]),
        section_count: LE::read_u32(&t[T_SECTION_COUNT..]),
        block_count: LE::read_u32(&t[T_BLOCK_COUNT..]),
        span_count: LE::read_u64(&t[T_SPAN_COUNT..]),
        min_start: LE::read_u64(&t[T_MIN_START..]),
        max_start: LE::read_u64(&t[T_MAX_START..]),
        max_end: LE::read_u64(&t[T_MAX_END..]),
    };
    let table_end = tr
        .table_offset
        .checked_add(u64::from(tr.section_count) * SECTION_ENTRY_LEN as u64);
    if tr.footer_start < HEADER_LEN as u64
        || tr.table_offset < tr.footer_start
        || table_end != Some(at as u64)
    {
        return Err(Error::corrupt(
            path,
            at as u64,
            "trailer offsets do not describe the file",
        ));
    }
    let footer = &map[tr.footer_start as usize..at];
    let crc = crc32fast::hash(footer);
    let stored = LE::read_u32(&t[T_FOOTER_CRC..]);
    if crc != stored {
        return Err(Error::corrupt(
            path,
            tr.footer_start,
            format!("footer checksum {stored:#010x}, computed {crc:#010x}"),
        ));
    }
    Ok(tr)
}

fn parse_sections(
    path: &Path,
    map: &[u8],
    tr: &Trailer,
    version: u32,
) -> Result<Vec<(usize, usize)>> {
    let table = &map[tr.table_offset as usize..map.len() - TRAILER_LEN];
    let ids = section::for_version(version);
    if tr.section_count as usize != ids.len() {
        let detail = format!(
            "expected {} sections, found {}",
            ids.len(),
            tr.section_count
        );
        return Err(Error::corrupt(path, tr.table_offset, detail));
    }
    let mut out = Vec::with_capacity(ids.len());
    for (i, e) in table.chunks_exact(SECTION_ENTRY_LEN).enumerate() {
        let id = LE::read_u32(e);
        let off = LE::read_u64(&e[8..]);
        let len = LE::read_u64(&e[16..]);
        let at = tr.table_offset + (i * SECTION_ENTRY_LEN) as u64;
        if id != ids[i] {
            return Err(Error::corrupt(
                path,
                at,
                format!("section {i} has id {id}, expected {}", ids[i]),
            ));
        }
        if off < tr.footer_start || off.checked_add(len).is_none_or(|end| end > tr.table_offset) {
            return Err(Error::corrupt(
                path,
                at,
                format!("section {id} lies outside the footer"),
            ));
        }
        out.push((off as usize, len as usize));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::{SpanId, TraceId};
    use std::fs::OpenOptions;

    fn spans(trace: u8, n: u8) -> Vec<Span> {
        (0..n)
            .map(|i| Span {
                trace_id: TraceId([trace; 16]),
                span_id: SpanId([i + 1; 8]),
                name: "op".into(),
                start_time_unix_nano: 1000 + u64::from(i),
                end_time_unix_nano: 2000 + u64::from(i),
                ..Span::default()
            })
            .collect()
    }

    fn write_segment(dir: &Path, id: u64) -> ActiveSegment {
        let mut seg = ActiveSegment::create_wal(dir, id).unwrap();
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        for t in 1..4 {
            let b = block::encode_block(&spans(t, 5), Some(&mut c)).unwrap();
            seg.append(&b).unwrap();
        }
        seg
    }

    #[test]
    fn names_parse() {
        assert_eq!(parse_name(&sealed_name(42)), Some((42, FileKind::Segment)));
        assert_eq!(parse_name(&wal_name(7)), Some((7, FileKind::Wal)));
        assert_eq!(parse_name(&temp_name(9)), Some((9, FileKind::Temp)));
        assert_eq!(parse_name("LOCK"), None);
        assert_eq!(parse_name("12.seg"), None);
    }

    #[test]
    fn sealed_segment_finds_traces() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = write_segment(dir.path(), 1).seal(dir.path()).unwrap();
        let seg = SealedSegment::open(&sealed).unwrap();
        assert_eq!(seg.blocks.len(), 3);
        assert_eq!(seg.trailer.span_count, 15);
        let metas = seg.trace_blocks(&TraceId([2; 16])).unwrap();
        assert_eq!(metas, vec![seg.blocks[1]]);
        let src = BlockSource::Mapped(Arc::new(seg));
        assert_eq!(
            src.trace_spans(&metas[0], &TraceId([2; 16])).unwrap(),
            spans(2, 5)
        );
    }

    #[test]
    fn torn_tail_is_cut_back_to_the_last_block() {
        let dir = tempfile::tempdir().unwrap();
        let seg = write_segment(dir.path(), 1);
        let path = seg.path.as_path().to_path_buf();
        let good_len = seg.len();
        let third = seg.blocks[2].offset;
        drop(seg);
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(good_len - 3).unwrap();
        let r = recover_active(&path, false).unwrap();
        assert_eq!(r.segment.blocks.len(), 2);
        assert_eq!(r.torn_tail.as_ref().unwrap().0, third);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), good_len - 3);
        let r = recover_active(&path, true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), third);
        assert_eq!(r.segment.span_count, 10);
    }

    #[test]
    fn damage_before_valid_blocks_is_recovered_up_to_it_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let seg = write_segment(dir.path(), 1);
        let path = seg.path.as_path().to_path_buf();
        let (second, third, end) = (seg.blocks[1].offset, seg.blocks[2].offset, seg.len());
        drop(seg);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second as usize + BLOCK_HEADER_LEN + 5] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert!(recover_active_with(&path, true, true).is_err_and(|e| e.is_corruption()));
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "strict recovery changes nothing"
        );
        let r = recover_active(&path, true).unwrap();
        assert_eq!(r.span_count(), 5);
        assert_eq!(r.valid_after_damage, Some(third));
        let kept = r.kept_tail.unwrap();
        assert_eq!(
            std::fs::read(&kept).unwrap(),
            bytes[second as usize..end as usize]
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), second);
    }

    #[test]
    fn newer_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sealed = write_segment(dir.path(), 1).seal(dir.path()).unwrap();
        let mut bytes = std::fs::read(&sealed).unwrap();
        LE::write_u32(&mut bytes[H_VERSION..], FORMAT_VERSION + 1);
        let crc = crc32fast::hash(&bytes[..H_CRC]);
        LE::write_u32(&mut bytes[H_CRC..], crc);
        std::fs::write(&sealed, &bytes).unwrap();
        assert!(matches!(
            SealedSegment::open(&sealed),
            Err(Error::UnsupportedVersion { found, .. }) if found == FORMAT_VERSION + 1
        ));
    }
}
