//! A file system for tests: in memory, able to fail any call, and able to
//! produce the image of the disk that a power loss at this instant could
//! leave. It is a testing tool, not a place to keep data.
//!
//! [`FaultyFs`] keeps, for every file, its **volatile** content (what reads
//! see) and its **durable** content (as of its last successful fsync), and
//! for every directory its volatile entries and its durable ones (as of
//! its last successful directory fsync). [`FaultyFs::crash_image`] builds
//! a new file system from them under the assumptions of format-spec.md
//! 7.1, with choices drawn from a seeded generator:
//!
//! * of the bytes written to a file since its last fsync, the image keeps
//!   none, all, a prefix, a prefix ending in garbage, or a prefix of a mix
//!   of new bytes, zeros and garbage sector by sector; a file never ends
//!   past what was written to it; bytes that were durable stay as they
//!   were (a truncation not yet fsynced leaves either length);
//! * each creation, rename or removal of a directory entry not yet covered
//!   by an fsync of its directory survives or not, independently of the
//!   others, but a rename is atomic (old name or new name, not both);
//! * the bytes a failed fsync covered never become durable, even if a later
//!   fsync of the file succeeds (the kernel marks such pages clean).
//!
//! Faults are injected per call: [`FaultyFs::fail_nth`] fails the n-th call
//! of an operation kind (on paths containing a pattern), or every call from
//! it on; [`FaultyFs::fail_when`] takes any rule. [`FaultyFs::set_capacity`]
//! makes writes past a total size fail with `ENOSPC` after writing what
//! fits, as a full disk does. [`FaultyFs::set_hook`] runs a function before
//! every call, for instance to take a crash image at each step of a
//! workload.
//!
//! Paths are taken as given (use absolute ones); `/` always exists.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;

use crate::fs::{FileHandle, FileLock, FileMap, FileSystem, Metadata, OpenMode};
use crate::gen::Rng;

/// The kinds of calls, as counted and matched by fault rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Opening an existing file.
    Open,
    /// Creating a file (`OpenMode::CreateNew` or `Truncate`).
    Create,
    Read,
    Write,
    /// `fsync` or `fdatasync` of a file.
    SyncFile,
    SetLen,
    Map,
    Rename,
    Remove,
    ReadDir,
    CreateDir,
    SyncDir,
    /// `metadata` of a path or the size of an open file.
    Metadata,
    Lock,
}

impl Op {
    const ALL: [Op; 14] = [
        Op::Open,
        Op::Create,
        Op::Read,
        Op::Write,
        Op::SyncFile,
        Op::SetLen,
        Op::Map,
        Op::Rename,
        Op::Remove,
        Op::ReadDir,
        Op::CreateDir,
        Op::SyncDir,
        Op::Metadata,
        Op::Lock,
    ];

    /// True for calls that can change what a crash leaves: writes, syncs
    /// and directory changes.
    pub fn mutates(self) -> bool {
        matches!(
            self,
            Op::Create
                | Op::Write
                | Op::SyncFile
                | Op::SetLen
                | Op::Rename
                | Op::Remove
                | Op::CreateDir
                | Op::SyncDir
                | Op::Lock
        )
    }

    fn slot(self) -> usize {
        Op::ALL.iter().position(|o| *o == self).unwrap_or(0)
    }
}

/// What an injected fault does to the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fails with `ENOSPC`, doing nothing.
    NoSpace,
    /// Fails with `EIO`, doing nothing.
    Io,
    /// A write writes only the first half of its bytes (at least one) and
    /// returns that count; other calls fail with `EIO`.
    ShortWrite,
}

/// A call about to be made, as rules and hooks see it.
#[derive(Clone, Debug)]
pub struct Call {
    pub op: Op,
    /// The file or directory (for a rename, the old name).
    pub path: PathBuf,
    /// The new name of a rename.
    pub to: Option<PathBuf>,
    /// Calls made before this one, of any kind.
    pub index: u64,
    /// Calls of this kind made before this one.
    pub nth_of_kind: u64,
    pub thread: ThreadId,
}

impl Call {
    /// True when the path (or a rename's new name) contains `pattern`.
    pub fn touches(&self, pattern: &str) -> bool {
        let has = |p: &Path| p.to_string_lossy().contains(pattern);
        has(&self.path) || self.to.as_deref().is_some_and(has)
    }
}

type Rule = Box<dyn FnMut(&Call) -> Option<Fault> + Send>;
type Hook = Arc<dyn Fn(&FaultyFs, &Call) + Send + Sync>;

/// The in-memory file system; clones share the same files.
#[derive(Clone)]
pub struct FaultyFs {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    hook: Mutex<Option<Hook>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Node {
    File(u64),
    Dir,
}

#[derive(Clone, Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Ranges a failed fsync covered: never made durable afterwards.
    lost: Vec<Range<usize>>,
    handles: usize,
}

#[derive(Clone, Debug)]
enum Change {
    Link(PathBuf, Node),
    Unlink(PathBuf),
    Rename(PathBuf, PathBuf, Node),
}

/// A directory change not yet made durable, and the directory it is in.
#[derive(Clone, Debug)]
struct Pending {
    dir: PathBuf,
    change: Change,
}

#[derive(Default)]
struct State {
    names: BTreeMap<PathBuf, Node>,
    durable: BTreeMap<PathBuf, Node>,
    pending: Vec<Pending>,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    calls: u64,
    per_op: [u64; Op::ALL.len()],
    rules: Vec<Rule>,
    capacity: Option<u64>,
    locked: BTreeSet<PathBuf>,
}

fn os_err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

const ENOENT: i32 = 2;
const EIO: i32 = 5;
const EBADF: i32 = 9;
const EEXIST: i32 = 17;
const EXDEV: i32 = 18;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const ENOSPC: i32 = 28;

fn fault_error(f: Fault) -> io::Error {
    match f {
        Fault::NoSpace => os_err(ENOSPC),
        Fault::Io | Fault::ShortWrite => os_err(EIO),
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("/"),
    }
}

fn apply(names: &mut BTreeMap<PathBuf, Node>, change: &Change) {
    match change {
        Change::Link(p, n) => {
            names.insert(p.clone(), *n);
        }
        Change::Unlink(p) => {
            names.remove(p);
        }
        Change::Rename(from, to, n) => {
            names.remove(from);
            names.insert(to.clone(), *n);
        }
    }
}

thread_local! {
    /// The file systems whose hook runs on this thread: calls the hook
    /// makes to the same file system do not run it again.
    static IN_HOOK: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

impl Default for FaultyFs {
    fn default() -> Self {
        FaultyFs::new()
    }
}

impl fmt::Debug for FaultyFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("FaultyFs")
            .field("entries", &s.names.len())
            .field("pending_dir_changes", &s.pending.len())
            .field("calls", &s.calls)
            .finish()
    }
}

impl FaultyFs {
    /// An empty file system holding only `/`.
    pub fn new() -> FaultyFs {
        let mut state = State::default();
        state.names.insert(PathBuf::from("/"), Node::Dir);
        state.durable.insert(PathBuf::from("/"), Node::Dir);
        FaultyFs::from_state(state)
    }

    fn from_state(state: State) -> FaultyFs {
        FaultyFs {
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                hook: Mutex::new(None),
            }),
        }
    }

    /// This file system as a store takes it.
    pub fn handle(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fails the `nth` call (1 for the next) of kind `op` on a path
    /// containing `pattern` (`""` for any), counted from now; with
    /// `repeat`, that call and every later matching one.
    pub fn fail_nth(&self, op: Op, pattern: &str, nth: u64, repeat: bool, fault: Fault) {
        let pattern = pattern.to_string();
        let mut seen = 0u64;
        self.fail_when(move |c| {
            if c.op != op || !c.touches(&pattern) {
                return None;
            }
            seen += 1;
            (seen == nth || (repeat && seen > nth)).then_some(fault)
        });
    }

    /// Adds a rule: it sees every call before it is made, and the call
    /// fails with the first fault a rule returns. Rules run under the file
    /// system's lock and must not call it.
    pub fn fail_when(&self, rule: impl FnMut(&Call) -> Option<Fault> + Send + 'static) {
        self.lock().rules.push(Box::new(rule));
    }

    /// Removes every rule.
    pub fn clear_faults(&self) {
        self.lock().rules.clear();
    }

    /// Limits the total size of the files (linked or open) to `bytes`;
    /// `None` for no limit. A write that does not fit writes what fits
    /// and returns its count, or fails with `ENOSPC` when nothing fits.
    pub fn set_capacity(&self, bytes: Option<u64>) {
        self.lock().capacity = bytes;
    }

    /// Total size of the files that take space (linked or open).
    pub fn used_bytes(&self) -> u64 {
        self.lock().used()
    }

    /// Runs `hook` before every call (except calls the hook itself makes
    /// to this file system). The hook runs outside the file system's lock
    /// and may use it, e.g. to take a [`crash_image`](Self::crash_image).
    pub fn set_hook(&self, hook: impl Fn(&FaultyFs, &Call) + Send + Sync + 'static) {
        *self.shared.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
    }

    pub fn clear_hook(&self) {
        *self.shared.hook.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Calls made so far, of any kind.
    pub fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Calls of kind `op` made so far.
    pub fn calls_of(&self, op: Op) -> u64 {
        self.lock().per_op[op.slot()]
    }

    /// What reads of `path` see now, without counting a call.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.lock();
        match s.names.get(path) {
            Some(Node::File(ino)) => Some(s.inodes[ino].data.clone()),
            _ => None,
        }
    }

    /// The names in `dir` now, sorted, without counting a call.
    pub fn list(&self, dir: &Path) -> Vec<String> {
        let s = self.lock();
        s.children(dir)
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }

    /// A new file system holding what a power loss at this instant could
    /// leave on disk, with the choices the format allows drawn from
    /// `seed`. Everything in it is durable; it has no rules and no hook.
    pub fn crash_image(&self, seed: u64) -> FaultyFs {
        let mut rng = Rng::new(seed);
        let s = self.lock();
        let mut names = s.durable.clone();
        for p in &s.pending {
            if rng.chance(0.5) {
                apply(&mut names, &p.change);
            }
        }
        // Entries of a directory that did not survive are gone with it.
        let mut dirs_ok: BTreeMap<PathBuf, bool> = BTreeMap::new();
        let paths: Vec<PathBuf> = names.keys().cloned().collect();
        for p in paths {
            let ok = p.parent().is_none_or(|parent| {
                parent.as_os_str().is_empty()
                    || *dirs_ok
                        .entry(parent.to_path_buf())
                        .or_insert_with(|| ancestors_exist(&names, parent))
            });
            if !ok {
                names.remove(&p);
            }
        }
        let mut image = State {
            next_ino: s.next_ino,
            ..State::default()
        };
        for node in names.values() {
            if let Node::File(ino) = node {
                if image.inodes.contains_key(ino) {
                    continue;
                }
                let bytes = image_bytes(&s.inodes[ino], &mut rng);
                image.inodes.insert(
                    *ino,
                    Inode {
                        durable: bytes.clone(),
                        data: bytes,
                        ..Inode::default()
                    },
                );
            }
        }
        image.names = names.clone();
        image.durable = names;
        FaultyFs::from_state(image)
    }

    /// Counts the call, runs the hook and the rules; the fault to inject.
    fn begin(&self, op: Op, path: &Path, to: Option<&Path>) -> Option<Fault> {
        let (call, fault) = {
            let mut s = self.lock();
            let call = Call {
                op,
                path: path.to_path_buf(),
                to: to.map(Path::to_path_buf),
                index: s.calls,
                nth_of_kind: s.per_op[op.slot()],
                thread: std::thread::current().id(),
            };
            s.calls += 1;
            s.per_op[op.slot()] += 1;
            let mut fault = None;
            for rule in &mut s.rules {
                if let Some(f) = rule(&call) {
                    fault.get_or_insert(f);
                }
            }
            (call, fault)
        };
        let me = Arc::as_ptr(&self.shared) as usize;
        if !IN_HOOK.with(|h| h.borrow().contains(&me)) {
            let hook = self
                .shared
                .hook
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            if let Some(hook) = hook {
                IN_HOOK.with(|h| h.borrow_mut().push(me));
                hook(self, &call);
                IN_HOOK.with(|h| h.borrow_mut().retain(|x| *x != me));
            }
        }
        fault
    }

    fn check(&self, op: Op, path: &Path, to: Option<&Path>) -> io::Result<()> {
        match self.begin(op, path, to) {
            Some(f) => Err(fault_error(f)),
            None => Ok(()),
        }
    }
}

fn ancestors_exist(names: &BTreeMap<PathBuf, Node>, dir: &Path) -> bool {
    dir.ancestors()
        .filter(|a| !a.as_os_str().is_empty())
        .all(|a| names.get(a) == Some(&Node::Dir))
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// What a crash leaves of a file: its durable bytes, and some of what was
/// written since.
fn image_bytes(ino: &Inode, rng: &mut Rng) -> Vec<u8> {
    let old = &ino.durable;
    // Bytes a failed fsync covered never reach the disk.
    let new = &ino.syncable();
    let c = common_prefix(old, new);
    if c == old.len() && c == new.len() {
        return old.clone();
    }
    if c < old.len() {
        // Durable bytes were truncated or overwritten: either state, as
        // neither was fsynced.
        return if rng.chance(0.5) {
            old.clone()
        } else {
            new.clone()
        };
    }
    // Appended since the last fsync.
    let extra = &new[c..];
    let mut out = old.clone();
    // A file never ends past what was written to it: the image keeps a
    // prefix of the new bytes, or of a mix of them with zeros and garbage.
    let n = extra.len() as u64;
    match rng.below(8) {
        0 => {}
        1 => out.extend_from_slice(extra),
        2..=4 => out.extend_from_slice(&extra[..rng.range(0, n) as usize]),
        5 => {
            // The last write torn: its tail is garbage.
            let len = rng.range(0, n) as usize;
            let good = rng.range(0, len as u64) as usize;
            out.extend_from_slice(&extra[..good]);
            out.extend((good..len).map(|_| rng.next_u64() as u8));
        }
        _ => {
            // Sectors reach the disk in any order: each is new, zeros or
            // garbage.
            let len = rng.range(0, n) as usize;
            for sector in extra[..len].chunks(512) {
                match rng.below(4) {
                    0 => out.extend(std::iter::repeat_n(0u8, sector.len())),
                    1 => out.extend(sector.iter().map(|_| rng.next_u64() as u8)),
                    _ => out.extend_from_slice(sector),
                }
            }
        }
    }
    out
}

impl Inode {
    /// What an fsync makes durable: the data, except where a failed fsync
    /// dropped it.
    fn syncable(&self) -> Vec<u8> {
        let mut out = self.data.clone();
        for r in &self.lost {
            for i in r.clone() {
                if let Some(b) = out.get_mut(i) {
                    *b = self.durable.get(i).copied().unwrap_or(0);
                }
            }
        }
        out
    }
}

impl State {
    fn used(&self) -> u64 {
        let linked: BTreeSet<u64> = self
            .names
            .values()
            .filter_map(|n| match n {
                Node::File(i) => Some(*i),
                Node::Dir => None,
            })
            .collect();
        self.inodes
            .iter()
            .filter(|(i, ino)| linked.contains(i) || ino.handles > 0)
            .map(|(_, ino)| ino.data.len() as u64)
            .sum()
    }

    fn children<'a>(&'a self, dir: &'a Path) -> impl Iterator<Item = &'a PathBuf> + 'a {
        self.names
            .keys()
            .filter(move |p| p.as_path() != dir && parent_of(p) == dir)
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty() || self.names.get(dir) == Some(&Node::Dir)
    }

    fn file(&self, path: &Path) -> io::Result<u64> {
        match self.names.get(path) {
            Some(Node::File(ino)) => Ok(*ino),
            Some(Node::Dir) => Err(os_err(EISDIR)),
            None => Err(os_err(ENOENT)),
        }
    }

    fn change(&mut self, path: &Path, change: Change) {
        apply(&mut self.names, &change);
        self.pending.push(Pending {
            dir: parent_of(path),
            change,
        });
    }

    fn create(&mut self, path: &Path) -> io::Result<u64> {
        if !self.dir_exists(&parent_of(path)) {
            return Err(os_err(ENOENT));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(ino, Inode::default());
        self.change(path, Change::Link(path.to_path_buf(), Node::File(ino)));
        Ok(ino)
    }

    /// Forgets files nothing refers to any more.
    fn collect(&mut self) {
        let mut live: BTreeSet<u64> = BTreeSet::new();
        let mut note = |n: &Node| {
            if let Node::File(i) = n {
                live.insert(*i);
            }
        };
        self.names.values().for_each(&mut note);
        self.durable.values().for_each(&mut note);
        for p in &self.pending {
            match &p.change {
                Change::Link(_, n) | Change::Rename(_, _, n) => note(n),
                Change::Unlink(_) => {}
            }
        }
        self.inodes
            .retain(|i, ino| live.contains(i) || ino.handles > 0);
    }

    /// How many of `len` bytes written at `offset` of `ino` fit.
    fn room(&self, ino: u64, offset: u64, len: usize) -> usize {
        let Some(cap) = self.capacity else {
            return len;
        };
        let size = self.inodes[&ino].data.len() as u64;
        let end = offset + len as u64;
        if end <= size {
            return len;
        }
        let free = cap.saturating_sub(self.used());
        let max_end = size + free;
        max_end.saturating_sub(offset).min(len as u64) as usize
    }
}

impl FileSystem for FaultyFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn FileHandle>> {
        let op = match mode {
            OpenMode::Read | OpenMode::ReadWrite => Op::Open,
            OpenMode::CreateNew | OpenMode::Truncate => Op::Create,
        };
        self.check(op, path, None)?;
        let mut s = self.lock();
        let ino = match mode {
            OpenMode::Read | OpenMode::ReadWrite => s.file(path)?,
            OpenMode::CreateNew => {
                if s.names.contains_key(path) {
                    return Err(os_err(EEXIST));
                }
                s.create(path)?
            }
            OpenMode::Truncate => match s.names.get(path) {
                Some(_) => {
                    let ino = s.file(path)?;
                    if let Some(i) = s.inodes.get_mut(&ino) {
                        i.data.clear();
                        i.lost.clear();
                    }
                    ino
                }
                None => s.create(path)?,
            },
        };
        if let Some(i) = s.inodes.get_mut(&ino) {
            i.handles += 1;
        }
        Ok(Box::new(FaultyFile {
            fs: self.clone(),
            ino,
            path: path.to_path_buf(),
            writable: mode != OpenMode::Read,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Op::Rename, from, Some(to))?;
        let mut s = self.lock();
        let ino = s.file(from)?;
        if parent_of(from) != parent_of(to) {
            return Err(os_err(EXDEV));
        }
        if s.names.get(to) == Some(&Node::Dir) {
            return Err(os_err(EISDIR));
        }
        let change = Change::Rename(from.to_path_buf(), to.to_path_buf(), Node::File(ino));
        s.change(to, change);
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Op::Remove, path, None)?;
        let mut s = self.lock();
        s.file(path)?;
        s.change(path, Change::Unlink(path.to_path_buf()));
        Ok(())
    }

    fn read_dir(&self, dir: &Path) -> io::Result<Vec<OsString>> {
        self.check(Op::ReadDir, dir, None)?;
        let s = self.lock();
        match s.names.get(dir) {
            Some(Node::Dir) => Ok(s
                .children(dir)
                .filter_map(|p| p.file_name().map(|n| n.to_os_string()))
                .collect()),
            Some(Node::File(_)) => Err(os_err(ENOTDIR)),
            None => Err(os_err(ENOENT)),
        }
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::CreateDir, dir, None)?;
        let mut s = self.lock();
        let mut missing: Vec<&Path> = Vec::new();
        for a in dir.ancestors().filter(|a| !a.as_os_str().is_empty()) {
            match s.names.get(a) {
                Some(Node::Dir) => break,
                Some(Node::File(_)) => return Err(os_err(EEXIST)),
                None => missing.push(a),
            }
        }
        for a in missing.into_iter().rev() {
            s.change(a, Change::Link(a.to_path_buf(), Node::Dir));
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Op::SyncDir, dir, None)?;
        let mut s = self.lock();
        if !s.dir_exists(dir) {
            return Err(os_err(ENOENT));
        }
        let State {
            pending, durable, ..
        } = &mut *s;
        pending.retain(|p| {
            if p.dir == dir {
                apply(durable, &p.change);
                false
            } else {
                true
            }
        });
        s.collect();
        Ok(())
    }

    fn metadata(&self, path: &Path) -> io::Result<Metadata> {
        self.check(Op::Metadata, path, None)?;
        let s = self.lock();
        match s.names.get(path) {
            Some(Node::Dir) => Ok(Metadata {
                len: 0,
                is_dir: true,
            }),
            Some(Node::File(ino)) => Ok(Metadata {
                len: s.inodes[ino].data.len() as u64,
                is_dir: false,
            }),
            None => Err(os_err(ENOENT)),
        }
    }

    fn try_lock(&self, path: &Path) -> io::Result<Option<FileLock>> {
        self.check(Op::Lock, path, None)?;
        let mut s = self.lock();
        if !s.names.contains_key(path) {
            s.create(path)?;
        }
        s.file(path)?;
        if !s.locked.insert(path.to_path_buf()) {
            return Ok(None);
        }
        Ok(Some(FileLock::new(Held {
            fs: self.clone(),
            path: path.to_path_buf(),
        })))
    }
}

/// A lock of a [`FaultyFs`] file, released on drop.
struct Held {
    fs: FaultyFs,
    path: PathBuf,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.fs.lock().locked.remove(&self.path);
    }
}

/// An open file of a [`FaultyFs`].
struct FaultyFile {
    fs: FaultyFs,
    ino: u64,
    path: PathBuf,
    writable: bool,
}

impl fmt::Debug for FaultyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyFile({})", self.path.display())
    }
}

impl Drop for FaultyFile {
    fn drop(&mut self) {
        let mut s = self.fs.lock();
        if let Some(i) = s.inodes.get_mut(&self.ino) {
            i.handles = i.handles.saturating_sub(1);
        }
    }
}

impl FaultyFile {
    fn sync(&self) -> io::Result<()> {
        let fault = self.fs.begin(Op::SyncFile, &self.path, None);
        let mut s = self.fs.lock();
        let Some(ino) = s.inodes.get_mut(&self.ino) else {
            return Err(os_err(EBADF));
        };
        if let Some(f) = fault {
            // The pages it covered are dropped as if written.
            let c = common_prefix(&ino.durable, &ino.data);
            ino.lost.push(c..ino.data.len());
            return Err(fault_error(f));
        }
        ino.durable = ino.syncable();
        Ok(())
    }
}

impl FileHandle for FaultyFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.fs.check(Op::Read, &self.path, None)?;
        let s = self.fs.lock();
        let data = &s.inodes.get(&self.ino).ok_or_else(|| os_err(EBADF))?.data;
        let at = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - at);
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let fault = self.fs.begin(Op::Write, &self.path, None);
        let mut len = buf.len();
        match fault {
            Some(Fault::ShortWrite) if len > 1 => len /= 2,
            Some(Fault::ShortWrite) | None => {}
            Some(f) => return Err(fault_error(f)),
        }
        if !self.writable {
            return Err(os_err(EBADF));
        }
        let mut s = self.fs.lock();
        if !s.inodes.contains_key(&self.ino) {
            return Err(os_err(EBADF));
        }
        let n = s.room(self.ino, offset, len);
        if n == 0 && len > 0 {
            return Err(os_err(ENOSPC));
        }
        let ino = s.inodes.get_mut(&self.ino).expect("checked");
        let end = offset as usize + n;
        if ino.data.len() < end {
            ino.data.resize(end, 0);
        }
        ino.data[offset as usize..end].copy_from_slice(&buf[..n]);
        Ok(n)
    }

    fn sync_all(&self) -> io::Result<()> {
        self.sync()
    }

    fn sync_data(&self) -> io::Result<()> {
        self.sync()
    }

    fn size(&self) -> io::Result<u64> {
        self.fs.check(Op::Metadata, &self.path, None)?;
        let s = self.fs.lock();
        let ino = s.inodes.get(&self.ino).ok_or_else(|| os_err(EBADF))?;
        Ok(ino.data.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.check(Op::SetLen, &self.path, None)?;
        if !self.writable {
            return Err(os_err(EBADF));
        }
        let mut s = self.fs.lock();
        let size = s
            .inodes
            .get(&self.ino)
            .ok_or_else(|| os_err(EBADF))?
            .data
            .len() as u64;
        if len > size && s.room(self.ino, size, (len - size) as usize) < (len - size) as usize {
            return Err(os_err(ENOSPC));
        }
        let ino = s.inodes.get_mut(&self.ino).expect("checked");
        ino.data.resize(len as usize, 0);
        Ok(())
    }

    fn map(&self) -> io::Result<FileMap> {
        self.fs.check(Op::Map, &self.path, None)?;
        let s = self.fs.lock();
        let ino = s.inodes.get(&self.ino).ok_or_else(|| os_err(EBADF))?;
        Ok(FileMap::from_bytes(Arc::from(ino.data.as_slice())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_entries_and_bytes_may_be_lost_synced_ones_stay() {
        let fs = FaultyFs::new();
        fs.create_dir_all(&p("/d")).unwrap();
        fs.sync_dir(&p("/")).unwrap();
        let f = fs.open(&p("/d/a"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"durable", 0).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&p("/d")).unwrap();
        f.write_all_at(b" and more", 7).unwrap();
        let g = fs.open(&p("/d/b"), OpenMode::CreateNew).unwrap();
        g.write_all_at(b"x", 0).unwrap();
        g.sync_all().unwrap();
        let (mut kept_b, mut lost_b, mut lengths) = (0, 0, BTreeSet::new());
        for seed in 0..200 {
            let img = fs.crash_image(seed);
            let a = img.contents(&p("/d/a")).expect("a was synced");
            assert!(a.starts_with(b"durable"), "{a:?}");
            lengths.insert(a.len());
            match img.contents(&p("/d/b")) {
                Some(b) => {
                    assert_eq!(b, b"x");
                    kept_b += 1;
                }
                None => lost_b += 1,
            }
        }
        assert!(kept_b > 0 && lost_b > 0);
        assert!(lengths.len() > 3, "{lengths:?}");
        assert_eq!(fs.contents(&p("/d/a")).unwrap(), b"durable and more");
    }

    #[test]
    fn a_rename_survives_whole_or_not_at_all() {
        let fs = FaultyFs::new();
        let f = fs.open(&p("/t"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"sealed", 0).unwrap();
        f.sync_all().unwrap();
        fs.sync_dir(&p("/")).unwrap();
        fs.rename(&p("/t"), &p("/s")).unwrap();
        let mut seen = BTreeSet::new();
        for seed in 0..50 {
            let img = fs.crash_image(seed);
            let names = img.list(&p("/"));
            assert_eq!(names.len(), 1, "{names:?}");
            seen.insert(names[0].clone());
            assert_eq!(img.contents(&p("/").join(&names[0])).unwrap(), b"sealed");
        }
        assert_eq!(seen.len(), 2);
        fs.sync_dir(&p("/")).unwrap();
        assert_eq!(fs.crash_image(1).list(&p("/")), vec!["s".to_string()]);
    }

    #[test]
    fn faults_capacity_and_failed_fsyncs() {
        let fs = FaultyFs::new();
        fs.fail_nth(Op::Write, "", 2, false, Fault::Io);
        let f = fs.open(&p("/f"), OpenMode::CreateNew).unwrap();
        f.write_all_at(b"one", 0).unwrap();
        assert_eq!(
            f.write_all_at(b"two", 3).unwrap_err().raw_os_error(),
            Some(EIO)
        );
        f.write_all_at(b"two", 3).unwrap();
        fs.clear_faults();
        fs.fail_nth(Op::Write, "", 1, false, Fault::ShortWrite);
        assert_eq!(f.write_at(b"four", 6).unwrap(), 2);
        fs.set_capacity(Some(10));
        assert_eq!(f.write_at(b"abcdef", 8).unwrap(), 2);
        assert_eq!(
            f.write_at(b"z", 10).unwrap_err().raw_os_error(),
            Some(ENOSPC)
        );
        fs.set_capacity(None);
        assert_eq!(fs.contents(&p("/f")).unwrap(), b"onetwofoab");
        fs.fail_nth(Op::SyncFile, "/f", 1, false, Fault::Io);
        assert!(f.sync_data().is_err());
        f.write_all_at(b"!", 10).unwrap();
        f.sync_data().unwrap();
        fs.sync_dir(&p("/")).unwrap();
        // What the failed fsync covered never became durable.
        let img = fs.crash_image(3);
        assert_eq!(img.contents(&p("/f")).unwrap(), b"\0\0\0\0\0\0\0\0\0\0!");
    }
}
