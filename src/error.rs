//! The one error type of the engine.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong. Corruption names the file, the byte offset
/// and what was expected versus found.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system I/O error, with the file it concerned.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// Bytes on disk are not what the format says they must be.
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// The file was written by a newer format version than this reader knows.
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A span or argument was refused before anything was written.
    InvalidInput(String),
    /// Another process holds the store's writer lock.
    Locked(PathBuf),
    /// A write or fsync failed earlier: nothing is accepted until the store is
    /// reopened, because what was acknowledged can no longer be promised.
    Poisoned(String),
    /// The store was opened read-only or was closed.
    ReadOnly,
    /// The store handle was closed.
    Closed,
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, op: &'static str, source: io::Error) -> Self {
        Error::Io {
            path: path.into(),
            op,
            source,
        }
    }

    pub(crate) fn corrupt(
        path: impl Into<PathBuf>,
        offset: u64,
        detail: impl Into<String>,
    ) -> Self {
        Error::Corruption {
            path: path.into(),
            offset,
            detail: detail.into(),
        }
    }

    /// True for damaged on-disk data (as opposed to I/O or usage errors).
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Corruption { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, op, source } => {
                write!(f, "I/O error during {op} on {}: {source}", path.display())
            }
            Error::Corruption {
                path,
                offset,
                detail,
            } => write!(
                f,
                "corruption in {} at byte offset {offset}: {detail}",
                path.display()
            ),
            Error::UnsupportedVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "{} has format version {found}, this build reads up to {supported}",
                path.display()
            ),
            Error::InvalidInput(msg) => write!(f, "invalid input: {msg}"),
            Error::Locked(path) => write!(
                f,
                "store {} is locked by another writer process",
                path.display()
            ),
            Error::Poisoned(why) => write!(
                f,
                "store refuses writes after an earlier I/O failure ({why}); reopen it"
            ),
            Error::ReadOnly => write!(f, "store is open read-only"),
            Error::Closed => write!(f, "store is closed"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
