//! Erasure on request: the tombstones of deleted traces (format-spec 7.12).
//!
//! [`Store::delete_traces`](crate::Store::delete_traces) records, for each
//! deleted trace, a *watermark*: the largest file id in use at the time of
//! the deletion. A span of that trace stored in a file (log, table or
//! sealed segment) whose id is at most the watermark is erased: every read
//! skips it, the sealer and recovery leave it out of the segments they
//! write, and compaction leaves it out of its output. Files created after
//! the deletion have larger ids, so spans of the same trace appended later
//! are new data and stay visible.
//!
//! The tombstones are kept in `tombstones.log`, an append-only file of
//! checksummed records, until no file that the watermark covers holds the
//! trace any more; the file is then rewritten without them (under a
//! temporary name, fsynced, renamed). A torn last record (a crash while a
//! deletion was being written, which therefore never returned) is ignored,
//! and cut off by the next writer open; a damaged record followed by a
//! valid one is a corruption error naming the file and offset.
//!
//! Every file operation goes through a [`FileSystem`]; the functions
//! without an `_in` suffix use the real one.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use byteorder::{ByteOrder, LittleEndian as LE};

use crate::error::{Error, Result};
use crate::fs::{self, sync_dir, FileHandle, FileSystem, OpenMode};
use crate::span::TraceId;

/// Name of the tombstone file in the store directory.
pub const TOMBSTONE_FILE: &str = "tombstones.log";
/// Name under which the tombstone file is written before it is renamed.
pub const TOMBSTONE_TEMP: &str = "tombstones.log.tmp";
/// First 8 bytes of the tombstone file.
pub const TOMBSTONE_MAGIC: [u8; 8] = *b"SPLGTOMB";
/// Version of the tombstone file's layout.
pub const TOMBSTONE_VERSION: u32 = 1;
/// Magic, version, header CRC.
pub const TOMBSTONE_HEADER_LEN: usize = 16;
/// First 4 bytes of every record.
pub const RECORD_MAGIC: [u8; 4] = *b"STMB";
/// Magic, payload length, CRC.
pub const RECORD_HEADER_LEN: usize = 12;
/// Kind of the one record type: traces erased.
pub const KIND_ERASE: u8 = 1;
/// Kind, watermark, deletion time, trace count.
const PAYLOAD_FIXED: usize = 21;
/// Most trace ids one record (one call of `delete_traces`) holds.
pub const MAX_RECORD_TRACES: usize = 1 << 20;
/// Largest payload a reader accepts.
pub const MAX_PAYLOAD_LEN: usize = PAYLOAD_FIXED + 16 * MAX_RECORD_TRACES;

/// The tombstone of one trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tombstone {
    /// Spans of the trace in files of this id or smaller are erased.
    pub watermark: u64,
    /// When the (latest) deletion was made, in unix nanoseconds.
    pub deleted_unix_nano: u64,
}

/// The erased traces, each with its tombstone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TombSet {
    map: HashMap<TraceId, Tombstone>,
}

impl TombSet {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The watermark of `trace`, if it is erased.
    pub fn watermark(&self, trace: &TraceId) -> Option<u64> {
        if self.map.is_empty() {
            return None;
        }
        self.map.get(trace).map(|t| t.watermark)
    }

    /// True when a span of `trace` stored in the file of id `file_id` is
    /// erased.
    #[inline]
    pub fn hides(&self, trace: &TraceId, file_id: u64) -> bool {
        self.watermark(trace).is_some_and(|w| file_id <= w)
    }

    /// Every tombstone, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&TraceId, &Tombstone)> {
        self.map.iter()
    }

    /// Adds a deletion; a trace deleted again keeps the larger watermark.
    pub fn insert(&mut self, trace: TraceId, t: Tombstone) {
        let e = self.map.entry(trace).or_insert(t);
        if t.watermark >= e.watermark {
            *e = t;
        }
    }

    /// Takes the tombstone of `trace` out.
    pub fn remove(&mut self, trace: &TraceId) -> Option<Tombstone> {
        self.map.remove(trace)
    }

    /// The largest watermark, if any.
    pub fn max_watermark(&self) -> Option<u64> {
        self.map.values().map(|t| t.watermark).max()
    }

    /// The set as records, one per (watermark, time), ids sorted.
    fn records(&self) -> Vec<Record> {
        let mut groups: BTreeMap<(u64, u64), Vec<TraceId>> = BTreeMap::new();
        for (trace, t) in &self.map {
            groups
                .entry((t.watermark, t.deleted_unix_nano))
                .or_default()
                .push(*trace);
        }
        let mut out = Vec::new();
        for ((watermark, deleted_unix_nano), mut traces) in groups {
            traces.sort_unstable();
            for chunk in traces.chunks(MAX_RECORD_TRACES) {
                out.push(Record {
                    watermark,
                    deleted_unix_nano,
                    traces: chunk.to_vec(),
                });
            }
        }
        out
    }
}

/// One deletion as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub watermark: u64,
    pub deleted_unix_nano: u64,
    pub traces: Vec<TraceId>,
}

/// The 16-byte file header.
pub fn encode_header() -> [u8; TOMBSTONE_HEADER_LEN] {
    let mut h = [0u8; TOMBSTONE_HEADER_LEN];
    h[..8].copy_from_slice(&TOMBSTONE_MAGIC);
    LE::write_u32(&mut h[8..12], TOMBSTONE_VERSION);
    let crc = crc32fast::hash(&h[..12]);
    LE::write_u32(&mut h[12..16], crc);
    h
}

/// A record: magic, payload length, CRC of length and payload, payload.
pub fn encode_record(r: &Record) -> Vec<u8> {
    let len = PAYLOAD_FIXED + 16 * r.traces.len();
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + len);
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(KIND_ERASE);
    out.extend_from_slice(&r.watermark.to_le_bytes());
    out.extend_from_slice(&r.deleted_unix_nano.to_le_bytes());
    out.extend_from_slice(&(r.traces.len() as u32).to_le_bytes());
    for t in &r.traces {
        out.extend_from_slice(&t.0);
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&out[4..8]);
    h.update(&out[RECORD_HEADER_LEN..]);
    let crc = h.finalize();
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// What reading a tombstone file found.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub records: Vec<Record>,
    /// Where the valid records end.
    pub valid_len: u64,
    /// A torn last record: its offset and why it is invalid.
    pub torn_tail: Option<(u64, String)>,
}

impl Loaded {
    /// The tombstones the records add up to.
    pub fn set(&self) -> TombSet {
        let mut set = TombSet::default();
        for r in &self.records {
            for t in &r.traces {
                set.insert(
                    *t,
                    Tombstone {
                        watermark: r.watermark,
                        deleted_unix_nano: r.deleted_unix_nano,
                    },
                );
            }
        }
        set
    }
}

/// Why the record at the start of `bytes` cannot be read: a torn write
/// looks like this.
fn check_frame(bytes: &[u8]) -> std::result::Result<&[u8], String> {
    if bytes.len() < RECORD_HEADER_LEN {
        return Err(format!(
            "{} bytes left, a record header takes {RECORD_HEADER_LEN}",
            bytes.len()
        ));
    }
    if bytes[..4] != RECORD_MAGIC {
        return Err("no record magic".into());
    }
    let len = LE::read_u32(&bytes[4..8]) as usize;
    if len > MAX_PAYLOAD_LEN {
        return Err(format!("record length {len} exceeds {MAX_PAYLOAD_LEN}"));
    }
    let Some(payload) = bytes.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + len) else {
        return Err(format!(
            "record of {len} bytes is cut short at {} bytes",
            bytes.len() - RECORD_HEADER_LEN
        ));
    };
    let mut h = crc32fast::Hasher::new();
    h.update(&bytes[4..8]);
    h.update(payload);
    let (want, got) = (LE::read_u32(&bytes[8..12]), h.finalize());
    if want != got {
        return Err(format!(
            "record checksum {want:#010x}, computed {got:#010x}"
        ));
    }
    Ok(payload)
}

/// Decodes a payload whose checksum held; a malformed one is corruption,
/// not a torn write.
fn decode_payload(path: &Path, offset: u64, p: &[u8]) -> Result<Record> {
    let bad = |detail: String| Error::corrupt(path, offset, detail);
    if p.len() < PAYLOAD_FIXED {
        return Err(bad(format!(
            "record payload of {} bytes is shorter than {PAYLOAD_FIXED}",
            p.len()
        )));
    }
    if p[0] != KIND_ERASE {
        return Err(bad(format!("unknown record kind {}", p[0])));
    }
    let n = LE::read_u32(&p[17..21]) as usize;
    if p.len() != PAYLOAD_FIXED + 16 * n {
        return Err(bad(format!(
            "record of {} bytes cannot hold {n} trace ids",
            p.len()
        )));
    }
    let traces = p[PAYLOAD_FIXED..]
        .chunks_exact(16)
        .map(|c| TraceId(c.try_into().expect("16 bytes")))
        .collect();
    Ok(Record {
        watermark: LE::read_u64(&p[1..9]),
        deleted_unix_nano: LE::read_u64(&p[9..17]),
        traces,
    })
}

/// Parses a whole tombstone file.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Loaded> {
    if bytes.len() < TOMBSTONE_HEADER_LEN {
        return Err(Error::corrupt(
            path,
            0,
            format!(
                "tombstone file of {} bytes is shorter than its {TOMBSTONE_HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    if bytes[..8] != TOMBSTONE_MAGIC {
        return Err(Error::corrupt(path, 0, "not a tombstone file (bad magic)"));
    }
    let version = LE::read_u32(&bytes[8..12]);
    if version == 0 || version > TOMBSTONE_VERSION {
        return Err(Error::UnsupportedVersion {
            path: path.to_path_buf(),
            found: version,
            supported: TOMBSTONE_VERSION,
        });
    }
    let (want, got) = (LE::read_u32(&bytes[12..16]), crc32fast::hash(&bytes[..12]));
    if want != got {
        return Err(Error::corrupt(
            path,
            12,
            format!("header checksum {want:#010x}, computed {got:#010x}"),
        ));
    }
    let mut out = Loaded::default();
    let mut at = TOMBSTONE_HEADER_LEN;
    while at < bytes.len() {
        match check_frame(&bytes[at..]) {
            Ok(payload) => {
                out.records.push(decode_payload(path, at as u64, payload)?);
                at += RECORD_HEADER_LEN + payload.len();
            }
            Err(why) => {
                if let Some(later) = later_valid_record(bytes, at + 1) {
                    return Err(Error::corrupt(
                        path,
                        at as u64,
                        format!("damaged record ({why}) followed by a valid record at {later}"),
                    ));
                }
                out.torn_tail = Some((at as u64, why));
                break;
            }
        }
    }
    out.valid_len = out
        .torn_tail
        .as_ref()
        .map_or(bytes.len() as u64, |(o, _)| *o);
    Ok(out)
}

/// The offset of the first valid record at or after `from`.
fn later_valid_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(RECORD_HEADER_LEN - 1))
        .filter(|p| bytes[*p..].starts_with(&RECORD_MAGIC))
        .find(|p| check_frame(&bytes[*p..]).is_ok())
}

/// Reads the store's tombstone file without changing it; `None` when there
/// is none.
pub fn read(dir: &Path) -> Result<Option<Loaded>> {
    read_in(&*fs::real(), dir)
}

/// [`read`] in the file system `fs`.
pub fn read_in(fs: &dyn FileSystem, dir: &Path) -> Result<Option<Loaded>> {
    let path = dir.join(TOMBSTONE_FILE);
    match fs.open(&path, OpenMode::Read).and_then(|f| f.read_to_end()) {
        Ok(bytes) => parse(&path, &bytes).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, "read tombstone file", e)),
    }
}

/// The tombstones a read-only open applies: a torn tail is ignored.
pub fn load_read_only(dir: &Path) -> Result<TombSet> {
    load_read_only_in(&*fs::real(), dir)
}

/// [`load_read_only`] in the file system `fs`.
pub fn load_read_only_in(fs: &dyn FileSystem, dir: &Path) -> Result<TombSet> {
    Ok(read_in(fs, dir)?.map(|l| l.set()).unwrap_or_default())
}

/// A writer's tombstone file.
pub struct TombFile {
    /// The file system the store lives in.
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Open for appending; `None` while the store has no tombstone file.
    file: Option<Box<dyn FileHandle>>,
    len: u64,
}

impl TombFile {
    /// Opens the tombstone file for a writer: deletes a temporary file left
    /// by a crash, cuts a torn tail off (fsynced), and returns the
    /// tombstones.
    pub fn open_writer(dir: &Path) -> Result<(TombFile, TombSet)> {
        Self::open_writer_in(&fs::real(), dir)
    }

    /// [`open_writer`](Self::open_writer) in the file system `fs`, which
    /// the returned file keeps for its appends and rewrites.
    pub fn open_writer_in(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<(TombFile, TombSet)> {
        let temp = dir.join(TOMBSTONE_TEMP);
        match fs.remove_file(&temp) {
            Ok(()) => {
                log::info!(
                    "spanlog: removed an unfinished tombstone file {}",
                    temp.display()
                );
                sync_dir(&**fs, dir)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&temp, "remove unfinished tombstone file", e)),
        }
        let mut tf = TombFile {
            fs: fs.clone(),
            dir: dir.to_path_buf(),
            file: None,
            len: 0,
        };
        let Some(loaded) = read_in(&**fs, dir)? else {
            return Ok((tf, TombSet::default()));
        };
        let path = dir.join(TOMBSTONE_FILE);
        let file = fs
            .open(&path, OpenMode::ReadWrite)
            .map_err(|e| Error::io(&path, "open tombstone file", e))?;
        if let Some((offset, why)) = &loaded.torn_tail {
            log::warn!(
                "spanlog: {} had a torn last record; truncated to byte offset {offset} ({why})",
                path.display()
            );
            file.set_len(*offset)
                .and_then(|()| file.sync_all())
                .map_err(|e| Error::io(&path, "truncate tombstone file", e))?;
        }
        tf.file = Some(file);
        tf.len = loaded.valid_len;
        Ok((tf, loaded.set()))
    }

    /// Bytes of the file; 0 when there is none.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_none()
    }

    fn path(&self) -> PathBuf {
        self.dir.join(TOMBSTONE_FILE)
    }

    /// Appends a record and makes it durable. The first record creates the
    /// file whole (under a temporary name, renamed, directory fsynced).
    pub fn append(&mut self, r: &Record) -> Result<()> {
        let rec = encode_record(r);
        let Some(file) = &self.file else {
            let mut bytes = encode_header().to_vec();
            bytes.extend_from_slice(&rec);
            return self.replace_with(&bytes);
        };
        let path = self.path();
        file.write_all_at(&rec, self.len)
            .map_err(|e| Error::io(&path, "append to tombstone file", e))?;
        file.sync_data()
            .map_err(|e| Error::io(&path, "fsync tombstone file", e))?;
        self.len += rec.len() as u64;
        Ok(())
    }

    /// Replaces the file by one holding exactly `set`; deletes it when
    /// `set` is empty. Atomic: a crash leaves the old file or the new one.
    pub fn rewrite(&mut self, set: &TombSet) -> Result<()> {
        if set.is_empty() {
            if self.file.take().is_some() {
                let path = self.path();
                self.fs
                    .remove_file(&path)
                    .map_err(|e| Error::io(&path, "remove tombstone file", e))?;
                sync_dir(&*self.fs, &self.dir)?;
            }
            self.len = 0;
            return Ok(());
        }
        let mut bytes = encode_header().to_vec();
        for r in set.records() {
            bytes.extend_from_slice(&encode_record(&r));
        }
        self.replace_with(&bytes)
    }

    fn replace_with(&mut self, bytes: &[u8]) -> Result<()> {
        let temp = self.dir.join(TOMBSTONE_TEMP);
        let path = self.path();
        let fs = &*self.fs;
        let r = (|| {
            let f = fs
                .open(&temp, OpenMode::Truncate)
                .map_err(|e| Error::io(&temp, "create tombstone file", e))?;
            f.write_all_at(bytes, 0)
                .and_then(|()| f.sync_all())
                .map_err(|e| Error::io(&temp, "write tombstone file", e))?;
            fs.rename(&temp, &path)
                .map_err(|e| Error::io(&temp, "rename tombstone file", e))?;
            Ok(f)
        })();
        let f = match r {
            Ok(f) => f,
            Err(e) => {
                let _ = fs.remove_file(&temp);
                return Err(e);
            }
        };
        // The old file, if any, is gone with the rename.
        self.file = None;
        sync_dir(fs, &self.dir)?;
        self.file = Some(f);
        self.len = bytes.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(w: u64, ids: &[u8]) -> Record {
        Record {
            watermark: w,
            deleted_unix_nano: 1_700_000_000_000_000_000 + w,
            traces: ids.iter().map(|b| TraceId([*b; 16])).collect(),
        }
    }

    fn file_bytes(dir: &Path) -> Vec<u8> {
        std::fs::read(dir.join(TOMBSTONE_FILE)).unwrap()
    }

    #[test]
    fn records_round_trip_through_the_file_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tf, set) = TombFile::open_writer(dir.path()).unwrap();
        assert!(set.is_empty() && tf.is_empty());
        assert!(read(dir.path()).unwrap().is_none());
        tf.append(&rec(4, &[1, 2])).unwrap();
        tf.append(&rec(9, &[2, 3])).unwrap();
        tf.append(&rec(7, &[3])).unwrap();
        assert_eq!(tf.len(), file_bytes(dir.path()).len() as u64);
        let loaded = read(dir.path()).unwrap().unwrap();
        assert_eq!(
            loaded.records,
            vec![rec(4, &[1, 2]), rec(9, &[2, 3]), rec(7, &[3])]
        );
        assert!(loaded.torn_tail.is_none());
        let set = loaded.set();
        assert_eq!(set.len(), 3);
        assert_eq!(set.watermark(&TraceId([1; 16])), Some(4));
        // Deleted again later: the larger watermark holds.
        assert_eq!(set.watermark(&TraceId([2; 16])), Some(9));
        assert_eq!(set.watermark(&TraceId([3; 16])), Some(9));
        assert!(set.hides(&TraceId([1; 16]), 4));
        assert!(!set.hides(&TraceId([1; 16]), 5));
        assert!(!set.hides(&TraceId([5; 16]), 0));
        drop(tf);
        let (mut tf, again) = TombFile::open_writer(dir.path()).unwrap();
        assert_eq!(again, set);
        // A rewrite keeps exactly the set given, and an empty set removes
        // the file.
        let mut fewer = set.clone();
        fewer.remove(&TraceId([2; 16]));
        tf.rewrite(&fewer).unwrap();
        assert_eq!(read(dir.path()).unwrap().unwrap().set(), fewer);
        assert!(!dir.path().join(TOMBSTONE_TEMP).exists());
        tf.rewrite(&TombSet::default()).unwrap();
        assert!(!dir.path().join(TOMBSTONE_FILE).exists());
        tf.append(&rec(12, &[8])).unwrap();
        assert_eq!(
            read(dir.path()).unwrap().unwrap().records,
            vec![rec(12, &[8])]
        );
    }

    /// The worked example of format-spec 7.12.2, byte for byte.
    #[test]
    fn the_file_is_as_the_spec_example_shows() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tf, _) = TombFile::open_writer(dir.path()).unwrap();
        let trace = TraceId::from_hex("5b8efff798038103d269b633813fc60c").unwrap();
        tf.append(&Record {
            watermark: 7,
            deleted_unix_nano: 1_700_000_000_000_000_000,
            traces: vec![trace],
        })
        .unwrap();
        let want = "53504c47544f4d420100000005979d3c\
                    53544d4225000000039034c7\
                    01070000000000000000002a36fe9c971701000000\
                    5b8efff798038103d269b633813fc60c";
        let hex: String = file_bytes(dir.path())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, want);
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_cut_off_by_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tf, _) = TombFile::open_writer(dir.path()).unwrap();
        tf.append(&rec(3, &[1])).unwrap();
        tf.append(&rec(5, &[2, 4])).unwrap();
        let whole = file_bytes(dir.path());
        let second = TOMBSTONE_HEADER_LEN + RECORD_HEADER_LEN + PAYLOAD_FIXED + 16;
        drop(tf);
        // Every cut inside the last record, and garbage after it.
        let mut tails: Vec<Vec<u8>> = (second + 1..whole.len())
            .map(|n| whole[..n].to_vec())
            .collect();
        let mut garbage = whole.clone();
        garbage.extend_from_slice(&[0xAB; 40]);
        tails.push(garbage);
        let mut zeros = whole[..second].to_vec();
        zeros.extend_from_slice(&[0; 60]);
        tails.push(zeros);
        for bytes in tails {
            let loaded = parse(Path::new("t"), &bytes).unwrap();
            let n = loaded.records.len();
            assert!(n == 1 || (n == 2 && bytes.len() > whole.len()), "{n}");
            assert!(loaded.torn_tail.is_some());
            std::fs::write(dir.path().join(TOMBSTONE_FILE), &bytes).unwrap();
            // Read-only: ignored, file untouched.
            assert_eq!(load_read_only(dir.path()).unwrap(), loaded.set());
            assert_eq!(file_bytes(dir.path()), bytes);
            // A writer cuts it off and appends after the valid records.
            let (mut tf, set) = TombFile::open_writer(dir.path()).unwrap();
            assert_eq!(set, loaded.set());
            assert_eq!(file_bytes(dir.path()).len() as u64, loaded.valid_len);
            tf.append(&rec(6, &[9])).unwrap();
            let again = read(dir.path()).unwrap().unwrap();
            assert!(again.torn_tail.is_none());
            assert_eq!(again.records.last(), Some(&rec(6, &[9])));
        }
    }

    #[test]
    fn a_damaged_record_before_a_valid_one_is_an_error_naming_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut tf, _) = TombFile::open_writer(dir.path()).unwrap();
        for w in 1..=3 {
            tf.append(&rec(w, &[w as u8])).unwrap();
        }
        drop(tf);
        let whole = file_bytes(dir.path());
        let rec_len = RECORD_HEADER_LEN + PAYLOAD_FIXED + 16;
        let second = TOMBSTONE_HEADER_LEN + rec_len;
        // Every byte of the middle record flipped in turn.
        for i in second..second + rec_len {
            let mut bytes = whole.clone();
            bytes[i] ^= 0x20;
            let path = dir.path().join(TOMBSTONE_FILE);
            std::fs::write(&path, &bytes).unwrap();
            for r in [
                load_read_only(dir.path()).map(drop),
                TombFile::open_writer(dir.path()).map(drop),
            ] {
                match r {
                    Err(Error::Corruption {
                        path: p, offset, ..
                    }) => {
                        assert_eq!(p, path);
                        assert_eq!(offset, second as u64, "flip at {i}");
                    }
                    other => panic!("flip at {i}: {other:?}"),
                }
            }
            // Nothing was cut off.
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
        }
        // A damaged header is corruption; a newer version is refused as such.
        let mut bytes = whole.clone();
        bytes[3] ^= 1;
        assert!(parse(Path::new("t"), &bytes).unwrap_err().is_corruption());
        let mut bytes = whole.clone();
        bytes[8] = 2;
        assert!(matches!(
            parse(Path::new("t"), &bytes),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
        assert!(parse(Path::new("t"), &whole[..10])
            .unwrap_err()
            .is_corruption());
    }

    #[test]
    fn a_leftover_temporary_file_is_removed_by_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TOMBSTONE_TEMP), b"half").unwrap();
        let (_, set) = TombFile::open_writer(dir.path()).unwrap();
        assert!(set.is_empty());
        assert!(!dir.path().join(TOMBSTONE_TEMP).exists());
    }
}
