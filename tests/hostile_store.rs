//! Hostile store directories and command lines.
//!
//! Through the library and the `spanlog` binary: a store directory holding
//! foreign files; a segment or log of a newer format version; zero-length
//! store files; a missing directory, a regular file and an unreadable
//! directory where a store is expected; a second writer process beside a
//! live writer; read-only opens beside a writer; and malformed command-line
//! arguments. Each must give a clear error (naming the file where there is
//! one) or the right data, never a panic, and must leave every file that
//! was there before as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use spanlog::segment::{parse_name, FORMAT_VERSION};
use spanlog::{Error, Options, Span, SpanId, Store, TraceId};

mod common;
use common::{arg, code, stderr, stdout};

fn spanlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .args(args)
        .output()
        .expect("run the spanlog binary")
}

/// The command failed cleanly: a non-zero exit status (not a signal), one
/// `spanlog: ` message on stderr that contains `says`, and no panic.
fn assert_fails(o: &Output, args: &[&str], says: &str) -> String {
    let err = stderr(o);
    assert_ne!(code(o), 0, "{args:?} succeeded: {}", stdout(o));
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    assert!(err.starts_with("spanlog: "), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err:?} should say {says:?}");
    err
}

fn key(s: &Span) -> (TraceId, u64, SpanId) {
    (s.trace_id, s.start_time_unix_nano, s.span_id)
}

fn sorted(mut v: Vec<Span>) -> Vec<Span> {
    v.sort_by_key(key);
    v
}

/// Everything the store serves, by scan, equals `want`.
fn assert_holds(store: &Store, want: &[Span], what: &str) {
    let got: Vec<Span> = store
        .scan(0..u64::MAX)
        .unwrap()
        .collect::<spanlog::Result<_>>()
        .unwrap();
    assert!(
        sorted(got) == sorted(want.to_vec()),
        "{what}: the store does not hold exactly the spans written"
    );
}

/// A closed store of generated spans in several sealed segments.
fn closed_store(seed: u64, n: usize) -> (tempfile::TempDir, Vec<Span>) {
    let dir = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(seed, n);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    for chunk in spans.chunks(n.div_ceil(3)) {
        store.append(chunk.to_vec()).unwrap();
        store.seal_active().unwrap();
    }
    store.close().unwrap();
    (dir, spans)
}

/// Every file under `dir` (recursively) and its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// The store files of `dir` with this suffix (`.seg`, `.wal`), by the
/// naming rule of format-spec 3.
fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix) && parse_name(n).is_some())
        })
        .collect();
    v.sort();
    v
}

fn store_name(id: u64, suffix: &str) -> String {
    format!("{id:020}{suffix}")
}

// ---------------------------------------------------------------------------
// The store directory.

#[test]
fn foreign_files_are_ignored_and_left_byte_identical() {
    use std::os::unix::ffi::OsStrExt;

    let (dir, mut spans) = closed_store(11, 600);
    let d = dir.path();
    let segs = files_with_suffix(d, ".seg");
    assert_eq!(segs.len(), 3);
    let seg_bytes = std::fs::read(&segs[0]).unwrap();
    let mut foreign: Vec<(PathBuf, Vec<u8>)> = vec![
        ("README.txt".into(), b"notes about this store\n".to_vec()),
        ("abc.seg".into(), b"not a segment".to_vec()),
        // Copies of a real segment under names that are not store names.
        ("12.seg.bak".into(), seg_bytes.clone()),
        (
            format!("{}.bak", store_name(1, ".seg")).into(),
            seg_bytes.clone(),
        ),
        (
            format!("0{}", store_name(1, ".seg")).into(),
            seg_bytes.clone(),
        ),
        (store_name(1, ".SEG").into(), seg_bytes.clone()),
        (
            format!("{} ", store_name(1, ".seg")).into(),
            seg_bytes.clone(),
        ),
        // 20 digits, but above u64::MAX: not a store name either.
        ("99999999999999999999.seg".into(), b"garbage".to_vec()),
        ("0000000000000000000x.wal".into(), b"garbage".to_vec()),
        (format!("{}.old", store_name(7, ".wal")).into(), Vec::new()),
        ("LOCK.bak".into(), Vec::new()),
        (".hidden".into(), b"x".to_vec()),
        (
            "notes/README.txt".into(),
            b"inside a subdirectory\n".to_vec(),
        ),
        (
            format!("notes/{}", store_name(1, ".seg")).into(),
            seg_bytes.clone(),
        ),
        (
            format!("notes/{}", store_name(900, ".wal")).into(),
            b"garbage".to_vec(),
        ),
    ];
    // A name that is not UTF-8.
    let raw = std::ffi::OsStr::from_bytes(b"\xff\xfe.seg");
    foreign.push((PathBuf::from(raw), b"not UTF-8".to_vec()));
    std::fs::create_dir(d.join("notes")).unwrap();
    std::fs::create_dir(d.join("empty-subdir")).unwrap();
    for (name, bytes) in &foreign {
        std::fs::write(d.join(name), bytes).unwrap();
    }
    let before: BTreeMap<PathBuf, Vec<u8>> = foreign
        .iter()
        .map(|(n, b)| (d.join(n), b.clone()))
        .collect();

    // Read-only, then as the writer: the foreign files change nothing.
    let ro = Store::open(d, Options::read_only()).unwrap();
    assert_holds(&ro, &spans, "read-only");
    drop(ro);
    let store = Store::open(d, Options::default()).unwrap();
    assert_holds(&store, &spans, "writer");
    assert_eq!(store.stats().unwrap().sealed_segments, 3);
    let more = spanlog::gen::generate(12, 100);
    store.append(more.clone()).unwrap();
    store.flush().unwrap();
    store.compact().unwrap();
    store.close().unwrap();
    spans.extend(more);
    let store = Store::open(d, Options::default()).unwrap();
    assert_holds(&store, &spans, "reopened after compaction");
    // Ids stay small: the 20-digit foreign name is not taken for an id.
    for seg in files_with_suffix(d, ".seg") {
        let id: u64 = seg.file_name().unwrap().to_str().unwrap()[..20]
            .parse()
            .unwrap();
        assert!(id < 100, "{}", seg.display());
        assert_eq!(
            parse_name(seg.file_name().unwrap().to_str().unwrap())
                .unwrap()
                .0,
            id
        );
    }
    store.close().unwrap();

    let report = spanlog::verify::verify_path(d).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert_eq!(
        report.segments,
        files_with_suffix(d, ".seg").len(),
        "only the store's own segments are checked"
    );
    let o = spanlog(&["verify", arg(d)]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = spanlog(&["inspect", arg(d)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stdout(&o).contains("README"), "{}", stdout(&o));

    let now = snapshot(d);
    for (path, bytes) in &before {
        assert!(now.get(path) == Some(bytes), "{} changed", path.display());
    }
    assert!(d.join("empty-subdir").is_dir());
}

#[test]
fn directories_under_store_file_names_give_clear_errors() {
    for name in [store_name(50, ".seg"), store_name(50, ".wal")] {
        let (dir, spans) = closed_store(13, 200);
        let d = dir.path();
        let odd = d.join(&name);
        std::fs::create_dir(&odd).unwrap();
        std::fs::write(odd.join("inside"), b"kept").unwrap();
        let before = snapshot(d);
        for opts in [Options::default(), Options::read_only()] {
            let ro = opts.read_only;
            match Store::open(d, opts) {
                Ok(s) => {
                    // Read-only opens may skip what they cannot read only if
                    // they say nothing is lost; a log is read, so this must
                    // not happen for logs.
                    panic!("{name} (read-only {ro}): opened, holding {:?}", s.stats());
                }
                Err(e) => {
                    let msg = e.to_string();
                    assert!(msg.contains(&name), "{name} (read-only {ro}): {msg}");
                }
            }
        }
        assert_eq!(snapshot(d), before, "{name}: nothing changed");
        std::fs::remove_dir_all(&odd).unwrap();
        let store = Store::open(d, Options::read_only()).unwrap();
        assert_holds(&store, &spans, &name);
    }
}

/// Writes `version` into the file header (offset 8, format-spec 4.2). The
/// version is checked before the header checksum, so the checksum is left
/// as it is.
fn set_version(path: &Path, version: u32) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    std::fs::write(path, bytes).unwrap();
}

/// Opening fails with `UnsupportedVersion` for `file`, read-only and as a
/// writer, and nothing in the directory changes.
fn assert_unsupported(d: &Path, file: &Path, version: u32) {
    let before = snapshot(d);
    for opts in [Options::default(), Options::read_only()] {
        let ro = opts.read_only;
        match Store::open(d, opts) {
            Err(e @ Error::UnsupportedVersion { .. }) => {
                let Error::UnsupportedVersion {
                    path,
                    found,
                    supported,
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(path, file);
                assert_eq!(*found, version);
                assert_eq!(*supported, FORMAT_VERSION);
                let msg = e.to_string();
                assert!(msg.contains(&file.display().to_string()), "{msg}");
                assert!(msg.contains(&format!("format version {version}")), "{msg}");
            }
            Err(e) => panic!("read-only {ro}: expected UnsupportedVersion, got {e}"),
            Ok(_) => panic!("read-only {ro}: a version-{version} file was accepted"),
        }
    }
    let mut after = snapshot(d);
    // A writer open may create the (empty) lock file, nothing else.
    if !before.contains_key(&d.join("LOCK")) {
        assert_eq!(after.remove(&d.join("LOCK")), Some(Vec::new()));
    }
    assert!(after == before, "the directory changed");
}

#[test]
fn a_segment_of_a_newer_format_version_is_refused_naming_the_file() {
    for version in [FORMAT_VERSION + 1, u32::MAX, 0] {
        let (dir, _) = closed_store(21, 300);
        let d = dir.path();
        let seg = files_with_suffix(d, ".seg").pop().unwrap();
        set_version(&seg, version);
        assert_unsupported(d, &seg, version);

        let o = spanlog(&["verify", arg(d)]);
        assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains(arg(&seg)) && stdout(&o).contains("format version"),
            "{}",
            stdout(&o)
        );
        let o = spanlog(&["dump", arg(&seg)]);
        assert_fails(&o, &["dump"], &format!("format version {version}"));
        for cmd in ["inspect", "services"] {
            let o = spanlog(&[cmd, arg(d)]);
            assert_fails(&o, &[cmd], arg(&seg));
        }
        let o = spanlog(&["ingest", arg(d), "-"]);
        assert_fails(&o, &["ingest"], arg(&seg));
    }
}

/// A store directory holding one log of a live writer (flushed, not
/// sealed), copied aside while the writer was open.
fn store_with_a_log() -> (tempfile::TempDir, PathBuf, Vec<Span>) {
    let live = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(31, 300);
    let store = Store::open(live.path(), Options::default()).unwrap();
    store.append(spans.clone()).unwrap();
    store.flush().unwrap();
    let wal = files_with_suffix(live.path(), ".wal").pop().unwrap();
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join(wal.file_name().unwrap());
    std::fs::copy(&wal, &target).unwrap();
    store.close().unwrap();
    (copy, target, spans)
}

#[test]
fn a_log_of_a_newer_format_version_is_refused_and_left_as_it_is() {
    let (dir, wal, spans) = store_with_a_log();
    let original = std::fs::read(&wal).unwrap();
    set_version(&wal, FORMAT_VERSION + 1);
    assert_unsupported(dir.path(), &wal, FORMAT_VERSION + 1);
    let o = spanlog(&["dump", arg(&wal)]);
    assert_fails(&o, &["dump"], "format version");
    // Put back, the log recovers whole.
    std::fs::write(&wal, &original).unwrap();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_holds(&store, &spans, "recovered log");
}

/// A log cut to its 40-byte header: what a crash while creating it can
/// leave, the header's bytes after the magic torn into garbage.
#[test]
fn a_log_header_torn_after_its_magic_is_a_stillborn_log_whatever_version_it_shows() {
    let (dir, wal, spans) = store_with_a_log();
    let header = std::fs::read(&wal).unwrap()[..40].to_vec();
    drop(spans);
    // A newer version whose header checksum holds: refused, left alone.
    let mut newer = header.clone();
    newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32fast::hash(&newer[..32]);
    newer[32..36].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&wal, &newer).unwrap();
    assert_unsupported(dir.path(), &wal, FORMAT_VERSION + 1);
    // Garbage after the magic: no version could have written it whole, and
    // no block follows it, so it is an empty log.
    let mut torn = header;
    torn[8..40].copy_from_slice(&[0x5c; 32]);
    std::fs::write(&wal, &torn).unwrap();
    let store = Store::open(dir.path(), Options::read_only()).unwrap();
    assert_eq!(store.stats().unwrap().spans, 0);
    drop(store);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.stats().unwrap().spans, 0);
    store.close().unwrap();
    assert!(!wal.exists(), "the writer deletes the stillborn log");
}

#[test]
fn zero_length_store_files() {
    let (dir, spans) = closed_store(41, 300);
    let d = dir.path();

    // A zero-length log is a log whose creation never finished: it reads
    // as empty, and a writer deletes it.
    let wal = d.join(store_name(70, ".wal"));
    std::fs::write(&wal, b"").unwrap();
    let ro = Store::open(d, Options::read_only()).unwrap();
    assert_holds(&ro, &spans, "read-only beside an empty log");
    drop(ro);
    assert!(wal.exists(), "a read-only open deletes nothing");
    let o = spanlog(&["verify", arg(d)]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let o = spanlog(&["dump", arg(&wal)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
    let store = Store::open(d, Options::default()).unwrap();
    assert_holds(&store, &spans, "writer beside an empty log");
    store.close().unwrap();
    assert!(!wal.exists(), "the stillborn log was deleted");

    // A zero-length unfinished segment: deleted by a writer, ignored by
    // readers.
    let tmp = d.join(store_name(71, ".seg.tmp"));
    std::fs::write(&tmp, b"").unwrap();
    let ro = Store::open(d, Options::read_only()).unwrap();
    assert_holds(&ro, &spans, "read-only beside an empty .seg.tmp");
    drop(ro);
    let store = Store::open(d, Options::default()).unwrap();
    store.close().unwrap();
    assert!(!tmp.exists());

    // A zero-length sealed segment cannot come from a crash (segments are
    // renamed into place whole): the open stops with a corruption error
    // naming it, and the file stays.
    let seg = d.join(store_name(72, ".seg"));
    std::fs::write(&seg, b"").unwrap();
    let before = snapshot(d);
    for opts in [Options::default(), Options::read_only()] {
        match Store::open(d, opts) {
            Err(e @ Error::Corruption { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(arg(&seg)), "{msg}");
                assert!(msg.contains("0 bytes"), "{msg}");
            }
            Err(e) => panic!("expected a corruption error, got {e}"),
            Ok(_) => panic!("a zero-length segment was accepted"),
        }
    }
    assert_eq!(snapshot(d), before);
    let o = spanlog(&["verify", arg(d)]);
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).contains(arg(&seg)), "{}", stdout(&o));
    let o = spanlog(&["dump", arg(&seg)]);
    assert_fails(&o, &["dump"], arg(&seg));
    let o = spanlog(&["get", arg(d), &spans[0].trace_id.to_string()]);
    assert_fails(&o, &["get"], arg(&seg));
    std::fs::remove_file(&seg).unwrap();
    let store = Store::open(d, Options::default()).unwrap();
    assert_holds(&store, &spans, "after the empty segment was removed");

    // A store of nothing but an empty log opens empty.
    let lone = tempfile::tempdir().unwrap();
    std::fs::write(lone.path().join(store_name(1, ".wal")), b"").unwrap();
    let store = Store::open(lone.path(), Options::default()).unwrap();
    assert_eq!(store.stats().unwrap().spans, 0);
}

#[test]
fn a_missing_directory_is_an_error_unless_creation_is_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no").join("store");
    for opts in [
        Options {
            create_if_missing: false,
            ..Options::default()
        },
        Options::read_only(),
        // A read-only open never creates, whatever the option says.
        Options {
            create_if_missing: true,
            ..Options::read_only()
        },
    ] {
        match Store::open(&missing, opts) {
            Err(e @ Error::Io { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(arg(&missing)), "{msg}");
                let Error::Io { source, .. } = e else {
                    unreachable!()
                };
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            Err(e) => panic!("expected an I/O error, got {e}"),
            Ok(_) => panic!("opened a missing directory"),
        }
        assert!(!tmp.path().join("no").exists(), "nothing was created");
    }
    // Allowed, the directory and its parents are made.
    let store = Store::open(&missing, Options::default()).unwrap();
    store.close().unwrap();
    assert!(missing.join("LOCK").exists());

    let o = spanlog(&["get", arg(&tmp.path().join("nope")), &"ab".repeat(16)]);
    assert_fails(&o, &["get"], "nope");
    assert!(!tmp.path().join("nope").exists());
}

#[test]
fn a_regular_file_where_the_store_should_be_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("store");
    std::fs::write(&file, b"a regular file").unwrap();
    for opts in [Options::default(), Options::read_only()] {
        match Store::open(&file, opts) {
            Err(Error::InvalidInput(msg)) => {
                assert!(msg.contains(arg(&file)), "{msg}");
                assert!(msg.contains("not a directory"), "{msg}");
            }
            Err(e) => panic!("expected InvalidInput, got {e}"),
            Ok(_) => panic!("opened a regular file as a store"),
        }
    }
    // A path through the file, which cannot be created.
    let below = file.join("store");
    match Store::open(&below, Options::default()) {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains(arg(&below)), "{e}"),
        Err(e) => panic!("expected an I/O error, got {e}"),
        Ok(_) => panic!("opened a store below a regular file"),
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"a regular file");

    let json = tmp.path().join("spans.json");
    std::fs::write(
        &json,
        spanlog::otlp::to_json_string(&spanlog::gen::generate(1, 5)),
    )
    .unwrap();
    for args in [
        vec!["get", arg(&file), "0123456789abcdef0123456789abcdef"],
        vec!["find", arg(&file)],
        vec!["services", arg(&file)],
        vec!["inspect", arg(&file)],
        vec!["ingest", arg(&file), arg(&json)],
        vec!["compact", arg(&file)],
    ] {
        let o = spanlog(&args);
        assert_fails(&o, &args, arg(&file));
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"a regular file");
}

/// True when permission bits do not stop this process (root, or a
/// capability such as CAP_DAC_OVERRIDE).
fn permissions_are_bypassed(probe: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bypassed = std::fs::read_dir(probe).is_ok();
    std::fs::set_permissions(probe, std::fs::Permissions::from_mode(0o755)).unwrap();
    bypassed
}

#[test]
fn an_unreadable_or_unwritable_directory_gives_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;

    let (dir, spans) = closed_store(51, 200);
    let d = dir.path();
    if permissions_are_bypassed(d) {
        eprintln!(
            "note: permission bits do not apply to this process (running as root?); \
             the unreadable-directory case is not tested here"
        );
        return;
    }
    let before = snapshot(d);
    let set = |mode| std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode)).unwrap();

    // Neither readable nor searchable.
    set(0o000);
    let results: Vec<_> = [Options::default(), Options::read_only()]
        .into_iter()
        .map(|o| Store::open(d, o).map(drop))
        .collect();
    let o = spanlog(&["get", arg(d), &spans[0].trace_id.to_string()]);
    set(0o755);
    for r in results {
        match r {
            Err(e @ Error::Io { .. }) => {
                assert!(e.to_string().contains(arg(d)), "{e}");
                assert!(e.to_string().contains("ermission denied"), "{e}");
            }
            Err(e) => panic!("expected an I/O error, got {e}"),
            Ok(()) => panic!("opened an unreadable directory"),
        }
    }
    assert_fails(&o, &["get"], "ermission denied");
    assert_eq!(code(&o), 2);

    // Readable but not writable: readers work, a writer is refused.
    set(0o555);
    let ro = Store::open(d, Options::read_only()).map(|s| {
        assert_holds(&s, &spans, "read-only in an unwritable directory");
    });
    let rw = Store::open(d, Options::default()).map(drop);
    set(0o755);
    ro.unwrap();
    match rw {
        Err(e @ Error::Io { .. }) => assert!(e.to_string().contains(arg(d)), "{e}"),
        Err(e) => panic!("expected an I/O error, got {e}"),
        Ok(()) => panic!("a writer opened an unwritable directory"),
    }
    assert_eq!(snapshot(d), before, "nothing changed");
}

// ---------------------------------------------------------------------------
// Concurrency: a second writer, readers beside a writer.

#[test]
fn a_second_writer_process_is_refused_and_the_first_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let first = spanlog::gen::generate(61, 400);
    let (a, b) = first.split_at(200);
    let store = Store::open(d, Options::default()).unwrap();
    store.append(a.to_vec()).unwrap();
    store.flush().unwrap();

    let other = spanlog::gen::generate(62, 50);
    let json = tempfile::NamedTempFile::with_suffix(".json").unwrap();
    std::fs::write(json.path(), spanlog::otlp::to_json_string(&other)).unwrap();
    let listing = |d: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let files = listing(d);
    for args in [
        vec!["ingest", arg(d), arg(json.path())],
        vec!["compact", arg(d)],
        vec!["retain", arg(d), "--max-age", "1d"],
    ] {
        let o = spanlog(&args);
        assert_fails(&o, &args, "locked by another writer");
        assert_eq!(code(&o), 2, "{args:?}");
        assert_eq!(stdout(&o), "", "{args:?}: nothing acknowledged");
    }
    // In this process too.
    assert!(matches!(
        Store::open(d, Options::default()),
        Err(Error::Locked(_))
    ));
    assert_eq!(listing(d), files, "the refused writers touched nothing");

    // The first writer is unaffected.
    store.append(b.to_vec()).unwrap();
    store.flush().unwrap();
    assert_holds(&store, &first, "the first writer");
    store.close().unwrap();

    // Once it has closed, the same command goes through.
    let o = spanlog(&["ingest", arg(d), arg(json.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let store = Store::open(d, Options::read_only()).unwrap();
    let mut all = first.clone();
    all.extend(other);
    assert_holds(&store, &all, "after the second ingest");
}

#[test]
fn read_only_opens_beside_a_writer_see_a_snapshot_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let spans = spanlog::gen::generate(71, 900);
    let (a, rest) = spans.split_at(300);
    let (b, c) = rest.split_at(300);
    let writer = Store::open(d, Options::default()).unwrap();
    writer.append(a.to_vec()).unwrap();
    writer.flush().unwrap();

    let before = snapshot(d);
    let ro_a = Store::open(d, Options::read_only()).unwrap();
    assert_eq!(snapshot(d), before, "a read-only open changes nothing");
    assert_holds(&ro_a, a, "read-only of the log");
    for r in [
        ro_a.append(b.to_vec()),
        ro_a.flush(),
        ro_a.seal_active(),
        ro_a.compact().map(drop),
    ] {
        assert!(matches!(r, Err(Error::ReadOnly)), "{r:?}");
    }

    // The writer seals (deleting the log the reader read) and goes on.
    writer.append(b.to_vec()).unwrap();
    writer.seal_active().unwrap();
    assert_holds(&ro_a, a, "the first snapshot, after its log was deleted");
    let ro_ab = Store::open(d, Options::read_only()).unwrap();
    assert_holds(&ro_ab, &spans[..600], "read-only of the sealed segment");

    // Compaction deletes the segment the second reader maps.
    writer.append(c.to_vec()).unwrap();
    writer.seal_active().unwrap();
    let report = writer.compact().unwrap();
    assert_eq!(report.merged.len(), 1, "{report:?}");
    assert_holds(&ro_ab, &spans[..600], "a snapshot whose segment was merged");
    let ro_all = Store::open(d, Options::read_only()).unwrap();
    assert_holds(&ro_all, &spans, "read-only after compaction");

    // Readers opening while the writer appends, flushes and seals see only
    // spans that were written, and never fail.
    let more = spanlog::gen::generate(72, 2_000);
    let known: std::collections::HashSet<_> = spans.iter().chain(&more).map(key).collect();
    assert_eq!(known.len(), spans.len() + more.len(), "keys are unique");
    std::thread::scope(|s| {
        let readers = s.spawn(|| {
            let mut opens = 0;
            for _ in 0..40 {
                let ro = Store::open(d, Options::read_only()).unwrap();
                let got: Vec<Span> = ro
                    .scan(0..u64::MAX)
                    .unwrap()
                    .collect::<spanlog::Result<_>>()
                    .unwrap();
                let keys: std::collections::HashSet<_> = got.iter().map(key).collect();
                assert_eq!(keys.len(), got.len(), "no span is served twice");
                assert!(keys.is_subset(&known), "only written spans are served");
                assert!(got.len() >= spans.len(), "sealed spans are always seen");
                opens += 1;
            }
            opens
        });
        for (i, chunk) in more.chunks(100).enumerate() {
            writer.append(chunk.to_vec()).unwrap();
            writer.flush().unwrap();
            if i % 4 == 3 {
                writer.seal_active().unwrap();
            }
        }
        assert_eq!(readers.join().unwrap(), 40);
    });
    writer.close().unwrap();
    let mut all = spans.clone();
    all.extend(more);
    let ro = Store::open(d, Options::read_only()).unwrap();
    assert_holds(&ro, &all, "after the writer closed");
}

// ---------------------------------------------------------------------------
// Malformed command lines.

#[test]
fn get_refuses_malformed_trace_ids() {
    let (dir, spans) = closed_store(81, 100);
    let d = arg(dir.path());
    let long = "a".repeat(10_000);
    for id in [
        "",
        " ",
        "xyz",
        "0123",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef0123456789abcdeg",
        "0x23456789abcdef0123456789abcdef",
        "+123456789abcdef0123456789abcdef",
        "0123456789abcdef 123456789abcdef",
        "éééééééééééééééé",
        "０１２３４５６７８９ａｂｃｄｅｆ０１２３４５６７８９ａｂｃｄｅｆ",
        "00000000000000000000000000000000",
        "\u{1b}[31m",
        &long,
    ] {
        let args = ["get", d, "--", id];
        let o = spanlog(&args);
        let err = assert_fails(&o, &args, "trace id");
        assert_eq!(code(&o), 2, "{id:?}: {err}");
        assert_eq!(stdout(&o), "", "{id:?}");
        assert!(err.len() < 20_000 + 200, "{id:?}: a bounded message");
    }
    // Surrounding whitespace and upper case are accepted.
    let id = spans[0].trace_id.to_string().to_uppercase();
    let o = spanlog(&["get", d, &format!(" {id}\t")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
}

#[test]
fn verify_and_dump_refuse_what_is_not_a_store_or_a_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let missing = t.join("no-such-store");
    let o = spanlog(&["verify", arg(&missing)]);
    assert_fails(&o, &["verify"], arg(&missing));
    assert_eq!(code(&o), 2);
    assert!(!missing.exists());

    let text = t.join("README.txt");
    std::fs::write(&text, "hello\n").unwrap();
    let o = spanlog(&["dump", arg(&text)]);
    assert_fails(&o, &["dump"], "not a store file");
    assert_eq!(code(&o), 2);
    let o = spanlog(&["dump", arg(t)]);
    assert_fails(&o, &["dump"], "is a directory");
    let o = spanlog(&["dump", arg(&missing)]);
    assert_fails(&o, &["dump"], arg(&missing));

    // Files named like store files that are not: short, long, text,
    // random bytes; as a segment, a log and an unfinished segment.
    let mut noise = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.push(x as u8);
    }
    let contents: [&[u8]; 5] = [b"", b"SPLGSEGM", b"hello, world\n", &noise, &[0u8; 4096]];
    for suffix in [".seg", ".wal", ".seg.tmp"] {
        for (i, bytes) in contents.iter().enumerate() {
            let file = t.join(format!("bad{i}{suffix}"));
            std::fs::write(&file, bytes).unwrap();
            for cmd in ["dump", "verify", "inspect"] {
                let args = [cmd, arg(&file)];
                let o = spanlog(&args);
                let err = stderr(&o);
                assert!(!err.contains("panicked"), "{args:?}: {err}");
                assert!(o.status.code().is_some(), "{args:?}: killed by a signal");
                // An empty log or unfinished segment holds nothing, which
                // is not an error; everything else is.
                if code(&o) == 0 {
                    assert!(suffix != ".seg" && bytes.is_empty(), "{args:?} accepted");
                } else if cmd == "verify" {
                    assert_eq!(code(&o), 1, "{args:?}: {err}");
                    assert!(stdout(&o).contains(arg(&file)), "{}", stdout(&o));
                } else {
                    assert_fails(&o, &args, arg(&file));
                }
            }
            std::fs::remove_file(&file).unwrap();
        }
    }

    // An empty directory is a store with nothing in it.
    let empty = t.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = spanlog(&["verify", arg(&empty)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("holds no segment"), "{}", stdout(&o));

    let (dir, _) = closed_store(82, 100);
    let seg = files_with_suffix(dir.path(), ".seg").pop().unwrap();
    let o = spanlog(&["dump", arg(&seg), "--block", "999999"]);
    assert_fails(&o, &["dump"], "there is no block 999999");
    let o = spanlog(&["dump", arg(&seg), "--block", "-1"]);
    assert_fails(&o, &["dump"], "'-1'");
    let o = spanlog(&["dump", arg(&seg), "--block", "99999999999999999999999"]);
    assert_fails(&o, &["dump"], "--block");
}

#[test]
fn find_refuses_malformed_times_durations_and_limits() {
    let (dir, _) = closed_store(91, 100);
    let d = arg(dir.path());
    let long = "9".repeat(5_000);
    let cases: Vec<(&str, &str, &str)> = vec![
        ("--start", "", "empty time"),
        ("--start", "   ", "empty time"),
        ("--start", "NaN", "RFC 3339"),
        ("--start", "inf", "RFC 3339"),
        ("--start", "1e9", "RFC 3339"),
        ("--start", "0x10", "RFC 3339"),
        ("--start", "١٢٣", "RFC 3339"),
        ("--start", "１２３", "RFC 3339"),
        ("--start", "18446744073709551616", "too large"),
        ("--end", &long, "too large"),
        ("--start", "9999-12-31T23:59:59Z", "after 2554"),
        ("--start", "2023-02-29T00:00:00Z", "day 29"),
        ("--start", "2023-01-01T24:00:00Z", "out of range"),
        ("--start", "2023-01-01T00:00:60Z", "leap second"),
        ("--start", "2023-01-01T00:00:00+24:00", "out of range"),
        ("--start", "2023-01-01T00:00:00.1234567890Z", "at most 9"),
        ("--start", "2023-01-01T00:00:00.Z", "no digits"),
        (
            "--start",
            "2023-01-01T00:00:00Zjunk",
            "the end after the offset",
        ),
        ("--start", "2023-01-01é00:00:00Z", "'T'"),
        ("--min-duration", "", "empty duration"),
        ("--min-duration", "ms", "no number"),
        ("--min-duration", ".s", "not a number"),
        ("--min-duration", "1..5s", "not a number"),
        ("--min-duration", "1.5.5s", "not a number"),
        ("--min-duration", "1 s", "unknown unit"),
        ("--min-duration", "1s-1s", "unknown unit \"s-\""),
        ("--min-duration", "∞s", "no number"),
        ("--min-duration", "１s", "no number"),
        ("--max-duration", "99999999999999999999999d", "too long"),
        ("--max-duration", "18446744073709551616", "too long"),
        ("--max-duration", "584y", "unknown unit"),
        ("--max-duration", &long, "too long"),
        ("--max-duration", "-0s", "negative"),
        ("--limit", "99999999999999999999999", "--limit"),
        ("--limit", "", "--limit"),
        ("--limit", "1.5", "--limit"),
    ];
    for (flag, value, says) in cases {
        let args = ["find", d, flag, value];
        let o = spanlog(&args);
        assert_fails(&o, &args, says);
        assert_eq!(code(&o), 2, "{args:?}");
        assert_eq!(stdout(&o), "", "{args:?}");
    }
    // The extremes that are valid are answered.
    for args in [
        vec!["find", d, "--start", "0", "--end", "18446744073709551615"],
        vec!["find", d, "--start", "2554-07-21T23:34:33.709551614Z"],
        vec!["find", d, "--min-duration", "18446744073709551615"],
        vec!["find", d, "--max-duration", "0ns", "--min-duration", "0"],
        vec!["find", d, "--limit", "18446744073709551615"],
        vec!["find", d, "--service", "", "--operation", ""],
        vec!["find", d, "--attr", "a==b"],
        vec!["find", d, "--attr", "\u{1b}[2J=\u{7f}"],
    ] {
        let o = spanlog(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    }
}

/// Names that would end a line, move the cursor or restyle a terminal.
const CONTROL_NAMES: [&str; 6] = [
    "svc\nFAKE LINE",
    "\u{1b}[2J\u{1b}[Hclear",
    "a\0b\u{7}\u{7f}",
    "\u{9b}31mcsi",
    "cr\rover",
    "tab\there",
];

/// One trace whose spans carry `CONTROL_NAMES` as service, span name and
/// status message.
fn control_store() -> (tempfile::TempDir, TraceId, Vec<Span>) {
    use spanlog::{AnyValue, KeyValue, Resource, Status, StatusCode};
    let dir = tempfile::tempdir().unwrap();
    let trace = TraceId([0x5a; 16]);
    let spans: Vec<Span> = CONTROL_NAMES
        .iter()
        .enumerate()
        .map(|(i, text)| Span {
            trace_id: trace,
            span_id: SpanId([i as u8 + 1; 8]),
            parent_span_id: (i > 0).then_some(SpanId([1; 8])),
            name: text.to_string(),
            start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
            end_time_unix_nano: 1_700_000_000_000_000_010 + i as u64,
            status: Status {
                code: StatusCode::Error,
                message: text.to_string(),
            },
            resource: std::sync::Arc::new(Resource {
                attributes: vec![KeyValue::new(
                    "service.name",
                    AnyValue::String(text.to_string()),
                )],
                ..Resource::default()
            }),
            ..Span::default()
        })
        .collect();
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(spans.clone()).unwrap();
    store.close().unwrap();
    (dir, trace, spans)
}

/// No control character but the line ends.
fn assert_printable(o: &Output, what: &str) {
    assert_eq!(code(o), 0, "{what}: {}", stderr(o));
    let text = stdout(o);
    let bad: Vec<char> = text
        .chars()
        .filter(|c| *c != '\n' && c.is_control())
        .collect();
    assert!(
        bad.is_empty(),
        "{what} prints control characters {bad:?}: {text:?}"
    );
}

#[test]
fn text_output_escapes_control_characters_and_json_keeps_them_exact() {
    let (dir, trace, spans) = control_store();
    let d = arg(dir.path());
    let id = trace.to_string();
    let n = spans.len();

    let o = spanlog(&["get", d, &id]);
    assert_printable(&o, "get");
    assert_eq!(stdout(&o).lines().count(), n + 2, "{}", stdout(&o));
    for text in CONTROL_NAMES {
        let shown: String = text.escape_debug().collect();
        assert!(stdout(&o).contains(&shown), "{shown} in {}", stdout(&o));
    }
    let o = spanlog(&["get", d, &id, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let back = spanlog::otlp::from_json_str(stdout(&o).trim()).unwrap();
    assert!(sorted(back) == sorted(spans.clone()), "--json is exact");

    let o = spanlog(&["find", d]);
    assert_printable(&o, "find");
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    let o = spanlog(&["find", d, "--json"]);
    let doc: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let mut names: Vec<&str> = CONTROL_NAMES.to_vec();
    names.sort();
    assert_eq!(doc["services"], serde_json::json!(names));

    let o = spanlog(&["services", d]);
    assert_printable(&o, "services");
    assert_eq!(stdout(&o).lines().count(), n, "{}", stdout(&o));
    let o = spanlog(&["services", d, "--json"]);
    let listed: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["service"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(listed, names);

    for text in CONTROL_NAMES.iter().filter(|t| !t.contains('\0')) {
        let o = spanlog(&["operations", d, text]);
        assert_printable(&o, "operations");
        assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    }
}
