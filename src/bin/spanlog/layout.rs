//! Opening what a path names: a store directory or one store file.

use std::path::Path;
use std::sync::Arc;

use spanlog::segment::{self, BlockMeta, BlockSource, Recovered, SealedSegment};

use crate::error::{io_error, CliError, CliResult};

/// What the command line accepts where one file is expected.
pub const FILE_KINDS: &str = "*.seg, *.wal or *.seg.tmp";

/// A store file opened for reading only.
pub enum StoreFile {
    /// A sealed segment, mapped, its footer checked.
    Sealed(Arc<SealedSegment>),
    /// A write-ahead log, or a segment whose writing did not finish: blocks
    /// without a footer, read as far as they are valid.
    Log(Box<Recovered>),
}

impl StoreFile {
    /// Opens `path` by its name; nothing is modified (a torn tail is
    /// reported, not cut off).
    pub fn open(path: &Path) -> CliResult<StoreFile> {
        let meta = std::fs::metadata(path).map_err(|e| io_error(path, "open", e))?;
        if meta.is_dir() {
            return Err(CliError::usage(format!(
                "{} is a directory; expected a store file ({FILE_KINDS})",
                path.display()
            )));
        }
        match kind(path) {
            Some(Kind::Segment) => Ok(StoreFile::Sealed(Arc::new(SealedSegment::open(path)?))),
            Some(_) => Ok(StoreFile::Log(Box::new(segment::recover_active(
                path, false,
            )?))),
            None => Err(CliError::usage(format!(
                "{} is not a store file (expected {FILE_KINDS})",
                path.display()
            ))),
        }
    }

    /// The file's blocks and a handle to read them.
    pub fn blocks(&self) -> (BlockSource, Vec<BlockMeta>) {
        match self {
            StoreFile::Sealed(seg) => (BlockSource::Mapped(seg.clone()), seg.blocks.clone()),
            StoreFile::Log(r) => (r.segment.source(), r.segment.blocks.clone()),
        }
    }
}

/// The kinds of files a store directory holds.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Segment,
    Wal,
    Unfinished,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Segment => "sealed segment",
            Kind::Wal => "write-ahead log",
            Kind::Unfinished => "unfinished segment",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Kind::Segment => "segment",
            Kind::Wal => "wal",
            Kind::Unfinished => "unfinished",
        }
    }
}

/// The kind by the file name's ending. Names need not carry a segment id:
/// a copy set aside for inspection may be called anything.
pub fn kind(path: &Path) -> Option<Kind> {
    let name = path.file_name()?.to_str()?;
    if name.ends_with(".seg.tmp") {
        Some(Kind::Unfinished)
    } else if name.ends_with(".seg") {
        Some(Kind::Segment)
    } else if name.ends_with(".wal") {
        Some(Kind::Wal)
    } else {
        None
    }
}
