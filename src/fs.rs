//! The file-system boundary: every file operation of the engine goes
//! through [`FileSystem`] and [`FileHandle`], so that the durability
//! argument of format-spec.md §7 rests on a short, explicit list of calls.
//!
//! [`RealFs`] is the operating system's file system. `crate::faults`
//! provides an in-memory one for tests that can fail any call and produce
//! the image a power loss would leave. Calls are made per file, per block
//! or per directory operation, never per span, so dynamic dispatch costs
//! nothing measurable.
//!
//! Errors are plain `io::Error`s: callers wrap them in
//! [`Error::Io`](crate::Error::Io) with the file and the operation.

use std::any::Any;
use std::ffi::OsString;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Deref;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use memmap2::Mmap;

use crate::error::{Error, Result};

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// An existing file, for reading.
    Read,
    /// An existing file, for reading and writing.
    ReadWrite,
    /// A new file, for reading and writing; fails if the name exists
    /// (`O_CREAT | O_EXCL`).
    CreateNew,
    /// Created if missing, emptied if present, for reading and writing.
    Truncate,
}

/// What [`FileSystem::metadata`] tells of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadata {
    pub len: u64,
    pub is_dir: bool,
}

/// The file-system operations the engine uses. Paths are those the engine
/// built from the store directory; a directory's entries change only
/// through `create`/`rename`/`remove_file` and become durable only by
/// [`sync_dir`](FileSystem::sync_dir) (format-spec.md 7.1).
pub trait FileSystem: Send + Sync + Debug {
    /// Opens or creates a file.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>>;
    /// Renames within a directory, replacing `to` if it exists; atomic.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Unlinks a file. Open handles and maps of it stay readable.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// The names of a directory's entries, in no particular order.
    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>>;
    /// Creates a directory and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes the directory's entries (created, renamed, removed) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Size and kind of a path.
    fn metadata(&self, path: &Path) -> io::Result<Metadata>;
    /// Opens (creating it if missing) and locks `path` exclusively without
    /// blocking (`flock(LOCK_EX | LOCK_NB)`); `None` when another holder
    /// has it. The lock is released when the returned value is dropped.
    fn try_lock(&self, path: &Path) -> io::Result<Option<FileLock>>;
}

/// An open file. Positional reads and writes only: no shared cursor.
pub trait FileHandle: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes some prefix of `buf` at `offset`, returning its length.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// `fsync`: data, size and other metadata durable.
    fn sync_all(&self) -> io::Result<()>;
    /// `fdatasync`: data and size durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Current size in bytes.
    fn size(&self) -> io::Result<u64>;
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// The whole file, read-only, for files that are never modified again
    /// while mapped (sealed segments).
    fn map(&self) -> io::Result<FileMap>;

    /// Reads exactly `buf.len()` bytes at `offset`.
    fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`, going on after short writes.
    fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads from offset 0 to the end of the file (which may grow while it
    /// is read).
    fn read_to_end(&self) -> io::Result<Vec<u8>> {
        let mut out = vec![0u8; self.size()? as usize];
        let mut at = 0usize;
        loop {
            if at == out.len() {
                out.resize(at + (64 << 10), 0);
            }
            match self.read_at(&mut out[at..], at as u64) {
                Ok(0) => break,
                Ok(n) => at += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        out.truncate(at);
        Ok(out)
    }
}

/// A held lock; dropping it releases the lock.
pub struct FileLock {
    _held: Box<dyn Any + Send + Sync>,
}

impl FileLock {
    /// A lock released when `held` is dropped.
    pub fn new(held: impl Any + Send + Sync) -> FileLock {
        FileLock {
            _held: Box::new(held),
        }
    }
}

impl Debug for FileLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileLock")
    }
}

/// The bytes of a mapped file: a memory map of the real file, or a copy.
pub struct FileMap(MapBytes);

enum MapBytes {
    Mapped(Mmap),
    Shared(Arc<[u8]>),
}

impl FileMap {
    /// A "map" holding a copy of the file's bytes (for file systems that
    /// are not backed by files the kernel can map).
    pub fn from_bytes(bytes: Arc<[u8]>) -> FileMap {
        FileMap(MapBytes::Shared(bytes))
    }
}

impl Deref for FileMap {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            MapBytes::Mapped(m) => m,
            MapBytes::Shared(b) => b,
        }
    }
}

impl Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileMap({} bytes)", self.len())
    }
}

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

/// The real file system, shared.
pub fn real() -> Arc<dyn FileSystem> {
    static REAL: OnceLock<Arc<dyn FileSystem>> = OnceLock::new();
    REAL.get_or_init(|| Arc::new(RealFs)).clone()
}

impl FileSystem for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let mut o = OpenOptions::new();
        match mode {
            OpenMode::Read => o.read(true),
            OpenMode::ReadWrite => o.read(true).write(true),
            OpenMode::CreateNew => o.read(true).write(true).create_new(true),
            OpenMode::Truncate => o.read(true).write(true).create(true).truncate(true),
        };
        Ok(Box::new(RealFile(o.open(path)?)))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.file_name()))
            .collect()
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        let m = std::fs::metadata(path)?;
        Ok(Metadata {
            len: m.len(),
            is_dir: m.is_dir(),
        })
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<FileLock>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(FileLock::new(LockedFile(f)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// A file holding a `flock` lock, which it releases explicitly on drop.
///
/// Closing our descriptor is not enough: a `flock` lock belongs to the
/// open file description, and a child process the host forks holds a copy
/// of every descriptor until it execs (close-on-exec acts only then). A
/// close racing with such a spawn would leave the lock held by the child
/// for a moment, and a reopen in that moment would be refused as locked.
/// `LOCK_UN` through our descriptor releases the lock for every copy.
struct LockedFile(File);

impl Drop for LockedFile {
    fn drop(&mut self) {
        // An error leaves the lock to the close that follows; nothing to
        // report: the store's state no longer depends on it.
        let _ = self.0.unlock();
    }
}

/// A file of the real file system.
#[derive(Debug)]
struct RealFile(File);

impl FileHandle for RealFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.0.read_at(buf, offset)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        self.0.write_at(buf, offset)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn map(&self) -> io::Result<FileMap> {
        // SAFETY: the engine maps only sealed segments. A sealed file is
        // never written, truncated or renamed over after its seal was
        // fsynced; the engine removes it only by unlinking, which keeps the
        // mapped pages valid until the map is dropped. Another program
        // modifying the file is outside the contract (as for any database
        // file).
        let map = unsafe { Mmap::map(&self.0) }?;
        Ok(FileMap(MapBytes::Mapped(map)))
    }
}

/// Makes a directory's entries (created, renamed, removed files) durable.
pub fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir)
        .map_err(|e| Error::io(dir, "fsync directory", e))
}

/// Current wall-clock time in unix nanoseconds.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_lock_is_free_while_a_copy_of_its_descriptor_lives() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("LOCK");
        let lock = RealFs.try_lock(&path).unwrap().expect("free");
        assert!(RealFs.try_lock(&path).unwrap().is_none(), "held");
        // What a forked child holds until it execs: a descriptor of the
        // same open file description.
        let held = lock._held.downcast_ref::<LockedFile>().unwrap();
        let inherited = held.0.try_clone().unwrap();
        drop(lock);
        assert!(RealFs.try_lock(&path).unwrap().is_some(), "released");
        drop(inherited);
    }
}
