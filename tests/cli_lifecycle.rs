//! End-to-end tests of `spanlog compact` and `spanlog retain`: stores of
//! many small segments are written through the library, then compacted and
//! trimmed by the binary and read back.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use spanlog::{Options, Span, Store, TraceId};

mod common;
use common::{arg, code, stderr, stdout};

const SPANS: usize = 600;
const BATCH: usize = 100;
const SEC: u64 = 1_000_000_000;
const HOUR: u64 = 3_600 * SEC;
const DAY: u64 = 24 * HOUR;

fn spanlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .args(args)
        .output()
        .expect("run the spanlog binary")
}

/// Small segments and blocks, so a few hundred spans make several of each.
fn small() -> Options {
    Options {
        segment_max_bytes: 256 << 10,
        block_target_bytes: 8 << 10,
        ..Options::default()
    }
}

/// Writes each batch and seals it into a segment of its own.
fn write_segments(dir: &Path, batches: &[Vec<Span>]) {
    let store = Store::open(dir, small()).unwrap();
    for batch in batches {
        store.append(batch.clone()).unwrap();
        store.seal_active().unwrap();
    }
    store.close().unwrap();
}

/// A store of `SPANS` generated spans in a segment per batch, then three of
/// those batches again, exact duplicates, in two more segments. Returns
/// the spans once each.
fn store_with_duplicates() -> (tempfile::TempDir, Vec<Span>) {
    let dir = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(7, SPANS);
    let mut batches: Vec<Vec<Span>> = spans.chunks(BATCH).map(<[Span]>::to_vec).collect();
    batches.push([batches[0].clone(), batches[1].clone()].concat());
    batches.push(batches[2].clone());
    write_segments(dir.path(), &batches);
    (dir, spans)
}

/// Spans moved in time so the earliest starts at `start`.
fn shifted(mut spans: Vec<Span>, start: u64) -> Vec<Span> {
    let first = spans.iter().map(|s| s.start_time_unix_nano).min().unwrap();
    for s in &mut spans {
        s.start_time_unix_nano = s.start_time_unix_nano - first + start;
        s.end_time_unix_nano = s.end_time_unix_nano - first + start;
        for e in &mut s.events {
            e.time_unix_nano = e.time_unix_nano.saturating_sub(first) + start;
        }
    }
    spans
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The sealed segment files of a store, sorted by name (and so by id).
fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

/// Bytes of every file in the store directory.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Names of every file in the store directory with its size.
fn listing(dir: &Path) -> Vec<(String, u64)> {
    let mut files: Vec<(String, u64)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, e.metadata().unwrap().len())
        })
        .collect();
    files.sort();
    files
}

fn json(o: &Output) -> Value {
    let text = stdout(o);
    assert_eq!(
        text.lines().count(),
        1,
        "one JSON object on one line: {text}"
    );
    serde_json::from_str(&text).expect("a JSON object")
}

/// The trace with the most spans, and its span count.
fn biggest_trace(spans: &[Span]) -> (TraceId, usize) {
    let mut counts = HashMap::new();
    for s in spans {
        *counts.entry(s.trace_id).or_insert(0) += 1;
    }
    counts.into_iter().max_by_key(|(t, n)| (*n, *t)).unwrap()
}

/// The spans of one trace as `spanlog get --json` prints them.
fn get_span_count(dir: &Path, trace: TraceId) -> usize {
    let hex = trace.to_string();
    let o = spanlog(&["get", arg(dir), &hex, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = json(&o);
    let mut found = 0;
    for rs in doc["resourceSpans"].as_array().unwrap() {
        for ss in rs["scopeSpans"].as_array().unwrap() {
            for s in ss["spans"].as_array().unwrap() {
                assert_eq!(s["traceId"], hex.as_str());
                found += 1;
            }
        }
    }
    found
}

fn assert_verify_clean(dir: &Path) {
    let o = spanlog(&["verify", arg(dir)]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains(" 0 errors"), "{}", stdout(&o));
}

/// Every span of the store, read through the library.
fn all_spans(dir: &Path) -> Vec<Span> {
    let store = Store::open(dir, Options::read_only()).unwrap();
    store
        .scan(0..u64::MAX)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn compact_merges_segments_and_drops_exact_duplicates() {
    let (dir, spans) = store_with_duplicates();
    let before = segment_files(dir.path());
    assert!(before.len() >= 8, "{before:?}");
    let bytes_before = dir_bytes(dir.path());

    let o = spanlog(&["compact", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!(
            "compacting {}: {} segments, ",
            arg(dir.path()),
            before.len()
        )),
        "{err}"
    );
    assert!(err.contains("compacted "), "{err}");
    let text = stdout(&o);
    assert!(
        text.contains(&format!("segments            {} -> 1\n", before.len())),
        "{text}"
    );
    assert!(text.contains("merges              1 ("), "{text}");
    assert!(
        text.contains(&format!("duplicates dropped  {}\n", 3 * BATCH)),
        "{text}"
    );
    assert!(text.contains("bytes               "), "{text}");

    let after = segment_files(dir.path());
    assert_eq!(after.len(), 1, "{after:?}");
    assert!(!before.contains(&after[0]), "a new segment: {after:?}");
    assert!(dir_bytes(dir.path()) < bytes_before);
    assert_verify_clean(dir.path());

    let (trace, n) = biggest_trace(&spans);
    assert_eq!(get_span_count(dir.path(), trace), n);
    let mut stored = all_spans(dir.path());
    let mut expected = spans;
    let key = |s: &Span| (s.trace_id.0, s.span_id.0, s.start_time_unix_nano);
    stored.sort_by_key(key);
    expected.sort_by_key(key);
    assert!(stored == expected, "the spans, each once");

    // Nothing is left to merge: a second run changes nothing.
    let listed = listing(dir.path());
    let o = spanlog(&["compact", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("segments            1 -> 1\n"));
    assert!(stdout(&o).contains("merges              0 "));
    assert!(stderr(&o).contains("nothing to merge"), "{}", stderr(&o));
    assert_eq!(
        segment_files(dir.path()),
        after,
        "{:?} then {listed:?}",
        listing(dir.path())
    );
}

#[test]
fn compact_json_is_one_object_with_every_figure() {
    let (dir, spans) = store_with_duplicates();
    let before = segment_files(dir.path());
    let ids: Vec<u64> = before
        .iter()
        .map(|p| {
            let stem = p.file_stem().unwrap().to_str().unwrap();
            stem.parse().unwrap()
        })
        .collect();
    let o = spanlog(&[
        "compact",
        arg(dir.path()),
        "--window",
        "1d",
        "--rate",
        "50MiB",
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = json(&o);
    assert_eq!(doc["store"], arg(dir.path()));
    assert_eq!(doc["segments_before"], before.len() as u64);
    assert_eq!(doc["segments_after"], 1);
    assert_eq!(doc["merges"], 1);
    assert_eq!(doc["segments_merged"], before.len() as u64);
    assert_eq!(doc["duplicates_dropped"], (3 * BATCH) as u64);
    let merged = &doc["merged"][0];
    let inputs: Vec<u64> = merged["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(inputs, ids);
    let output = merged["output"].as_u64().unwrap();
    assert!(output > *ids.last().unwrap());
    let after = segment_files(dir.path());
    assert_eq!(after.len(), 1);
    assert_eq!(
        doc["bytes_after"].as_u64().unwrap(),
        std::fs::metadata(&after[0]).unwrap().len()
    );
    assert!(doc["bytes_before"].as_u64().unwrap() > doc["bytes_after"].as_u64().unwrap());
    assert!(doc["elapsed_seconds"].as_f64().unwrap() >= 0.0);
    assert_verify_clean(dir.path());
    assert_eq!(all_spans(dir.path()).len(), spans.len());
}

#[test]
fn compact_keeps_windows_apart() {
    // Two hours of spans, two segments each: one segment per hour remains.
    let dir = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(11, 400);
    let base = 1_767_225_600 * SEC; // 2026-01-01T00:00:00Z
    let batches: Vec<Vec<Span>> = spans
        .chunks(100)
        .enumerate()
        .map(|(i, c)| shifted(c.to_vec(), base + (i as u64 / 2) * HOUR + i as u64 * SEC))
        .collect();
    write_segments(dir.path(), &batches);
    assert_eq!(segment_files(dir.path()).len(), 4);
    let o = spanlog(&["compact", arg(dir.path()), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = json(&o);
    assert_eq!(doc["merges"], 2);
    assert_eq!(doc["segments_after"], 2);
    assert_eq!(doc["duplicates_dropped"], 0);
    assert_eq!(segment_files(dir.path()).len(), 2);
    assert_verify_clean(dir.path());
    assert_eq!(all_spans(dir.path()).len(), spans.len());
}

#[test]
fn retain_max_age_deletes_old_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(5, 400);
    let old_start = now() - 10 * DAY;
    let mut batches: Vec<Vec<Span>> = spans[..300]
        .chunks(100)
        .enumerate()
        .map(|(i, c)| shifted(c.to_vec(), old_start + i as u64 * HOUR))
        .collect();
    let recent = shifted(spans[300..].to_vec(), now() - 60 * SEC);
    batches.push(recent.clone());
    write_segments(dir.path(), &batches);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let bytes_before = dir_bytes(dir.path());

    let o = spanlog(&["retain", arg(dir.path()), "--max-age", "1d"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("applying retention to {}", arg(dir.path()))),
        "{err}"
    );
    assert!(err.contains("in the last 1d"), "{err}");
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for (line, file) in lines.iter().zip(&files[..3]) {
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(line.starts_with(&format!("dropped {name}  (id ")), "{line}");
        assert!(line.contains("100 spans"), "{line}");
    }
    assert!(
        lines[3].starts_with("dropped 3 of 4 segments, reclaimed "),
        "{text}"
    );

    for gone in &files[..3] {
        assert!(!gone.exists(), "{} still there", gone.display());
    }
    assert_eq!(segment_files(dir.path()), files[3..]);
    assert!(dir_bytes(dir.path()) < bytes_before);
    assert_verify_clean(dir.path());
    let store = Store::open(dir.path(), Options::read_only()).unwrap();
    let kept: Vec<Span> = store
        .scan(0..u64::MAX)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(kept.len(), recent.len());
    let recent_traces: HashSet<TraceId> = recent.iter().map(|s| s.trace_id).collect();
    assert!(kept.iter().all(|s| recent_traces.contains(&s.trace_id)));
    drop(store);

    // What is left is within the limit: nothing more goes.
    let o = spanlog(&["retain", arg(dir.path()), "--max-age", "1d", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = json(&o);
    assert_eq!(doc["dropped"], Value::Array(Vec::new()));
    assert_eq!(doc["segments_before"], 1);
    assert_eq!(doc["segments_after"], 1);
    assert_eq!(doc["bytes_reclaimed"], 0);
    assert_eq!(doc["max_age_nanos"], DAY);
    assert_eq!(segment_files(dir.path()), files[3..]);
}

#[test]
fn retain_max_bytes_deletes_the_oldest_windows() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(9, 400);
    let start = now() - 3 * DAY;
    let batches: Vec<Vec<Span>> = spans
        .chunks(100)
        .enumerate()
        .map(|(i, c)| shifted(c.to_vec(), start + i as u64 * 2 * HOUR))
        .collect();
    write_segments(dir.path(), &batches);
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let sizes: Vec<u64> = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .collect();
    let total: u64 = sizes.iter().sum();
    let bytes_before = dir_bytes(dir.path());

    // A limit of what the two newest take: the two oldest go.
    let cap = sizes[2] + sizes[3];
    let o = spanlog(&[
        "retain",
        arg(dir.path()),
        "--max-bytes",
        &cap.to_string(),
        "--json",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc = json(&o);
    assert_eq!(doc["max_bytes"], cap);
    assert_eq!(doc["max_age_nanos"], Value::Null);
    let dropped = doc["dropped"].as_array().unwrap();
    assert_eq!(dropped.len(), 2, "{doc}");
    for (d, (file, size)) in dropped.iter().zip(files.iter().zip(&sizes)) {
        assert_eq!(d["file"], arg(file));
        assert_eq!(d["bytes"], *size);
        assert_eq!(d["spans"], 100);
    }
    assert_eq!(doc["segments_before"], 4);
    assert_eq!(doc["segments_after"], 2);
    assert_eq!(doc["bytes_before"], total);
    assert_eq!(doc["bytes_after"], cap);
    assert_eq!(doc["bytes_reclaimed"], sizes[0] + sizes[1]);
    assert!(!files[0].exists() && !files[1].exists());
    assert_eq!(segment_files(dir.path()), files[2..]);
    assert!(dir_bytes(dir.path()) < bytes_before);
    assert_verify_clean(dir.path());

    // A limit above what is left: nothing goes.
    let o = spanlog(&["retain", arg(dir.path()), "--max-bytes", "1GiB"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("nothing to drop: 2 segments"),
        "{}",
        stdout(&o)
    );
    assert_eq!(segment_files(dir.path()), files[2..]);

    // Both limits: a segment goes when either says so.
    let o = spanlog(&[
        "retain",
        arg(dir.path()),
        "--max-age",
        "100d",
        "--max-bytes",
        &sizes[3].to_string(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).contains("dropped 1 of 2 segments"),
        "{}",
        stdout(&o)
    );
    assert_eq!(segment_files(dir.path()), files[3..]);
    assert_verify_clean(dir.path());
}

#[test]
fn bad_arguments_are_usage_errors_that_change_nothing() {
    let (dir, _) = store_with_duplicates();
    let d = arg(dir.path());
    let listed = listing(dir.path());
    for (args, says) in [
        (vec!["retain", d], "--max-age"),
        (vec!["retain", d, "--json"], "--max-bytes"),
        (
            vec!["retain", d, "--max-bytes", "10XB"],
            "unknown unit \"XB\"",
        ),
        (
            vec!["retain", d, "--max-bytes", "1.5"],
            "whole number of bytes",
        ),
        (vec!["retain", d, "--max-bytes", "-5MiB"], "negative"),
        (vec!["retain", d, "--max-bytes", "lots"], "number"),
        (vec!["retain", d, "--max-bytes", "99999999TiB"], "too large"),
        (vec!["retain", d, "--max-age", "3w"], "unknown unit \"w\""),
        (vec!["retain", d, "--max-age", "-1d"], "negative"),
        (vec!["retain", d, "--max-age", "soon"], "--max-age"),
        (vec!["retain", d, "--max-age"], "--max-age"),
        (vec!["retain", "--max-age", "1d"], "STORE"),
        (vec!["compact", d, "--window", "0s"], "longer than 0"),
        (vec!["compact", d, "--window", "1x"], "unknown unit"),
        (vec!["compact", d, "--rate", "fast"], "--rate"),
        (vec!["compact", d, "--rate", "0"], "at least 1 byte"),
        (vec!["compact", d, "--bogus"], "--bogus"),
        (vec!["compact"], "STORE"),
    ] {
        let o = spanlog(&args);
        assert_eq!(code(&o), 2, "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("spanlog: "), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(stdout(&o).is_empty(), "{args:?}: {}", stdout(&o));
    }
    assert_eq!(listing(dir.path()), listed);
}

#[test]
fn paths_that_are_not_stores_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-store");
    for cmd in [
        vec!["compact", arg(&missing)],
        vec!["retain", arg(&missing), "--max-age", "1d"],
    ] {
        let o = spanlog(&cmd);
        assert_eq!(code(&o), 2, "{cmd:?}");
        let err = stderr(&o);
        assert!(err.starts_with("spanlog: no store at "), "{err}");
        assert!(err.contains("does not exist"), "{err}");
        assert!(!missing.exists(), "not created");
    }

    // An existing directory that holds no store is not made into one.
    let o = spanlog(&["compact", arg(tmp.path())]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not a spanlog store"), "{}", stderr(&o));
    assert_eq!(listing(tmp.path()), Vec::new());

    let file = tmp.path().join("file.seg");
    std::fs::write(&file, b"not a store").unwrap();
    let o = spanlog(&["retain", arg(&file), "--max-bytes", "1MiB"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("not a directory"), "{}", stderr(&o));
}

#[test]
fn a_live_writer_keeps_compact_and_retain_out() {
    let (dir, spans) = store_with_duplicates();
    let writer = Store::open(dir.path(), small()).unwrap();
    let listed = listing(dir.path());
    for cmd in [
        vec!["compact", arg(dir.path())],
        vec!["retain", arg(dir.path()), "--max-age", "1d"],
    ] {
        let o = spanlog(&cmd);
        assert_ne!(code(&o), 0, "{cmd:?}");
        assert_eq!(code(&o), 2, "{cmd:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.starts_with("spanlog: "), "{err}");
        assert!(err.contains("locked by another writer"), "{err}");
        assert!(err.contains(cmd[0]), "names the command: {err}");
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    }
    assert_eq!(listing(dir.path()), listed);
    // The writer goes on undisturbed.
    writer.append(spans[..10].to_vec()).unwrap();
    writer.flush().unwrap();
    writer.close().unwrap();

    let o = spanlog(&["compact", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_verify_clean(dir.path());
}

/// `spanlog bench --lifecycle` on a small workload: every phase runs and
/// reports what the stores show.
#[test]
fn bench_lifecycle_reports_every_phase() {
    let dir = tempfile::tempdir().unwrap();
    let o = spanlog(&[
        "bench",
        "--lifecycle",
        "--spans",
        "300000",
        "--json",
        "--dir",
        arg(dir.path()),
    ]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let n = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{p} in {v}"))
    };
    assert_eq!(n("/spans"), 300_000.0);
    let off = n("/compaction_off/disk_bytes");
    let full = n("/full_compaction/disk_bytes");
    // Merged blocks are larger and more compressed than sealed ones.
    assert!(full < off, "{full} !< {off}");
    assert!(n("/full_compaction/sealed_segments") <= n("/compaction_off/sealed_segments"));
    assert!(n("/compaction_on/sealed_segments") <= n("/compaction_off/sealed_segments"));
    assert!(n("/compaction_on/bytes_written") > n("/compaction_off/bytes_written") * 0.5);
    assert!(n("/full_compaction/peak_heap_bytes") > 0.0);
    assert!(n("/full_compaction/get_trace/p50_us") > 0.0);
    assert_eq!(n("/ingest_beside_merge/spans"), 150_000.0);
    assert!(n("/ingest_beside_merge/beside_spans_per_sec") > 0.0);
    let samples = v
        .pointer("/retention/samples")
        .and_then(Value::as_array)
        .unwrap();
    let cap = n("/retention/max_total_bytes");
    let last = samples.last().unwrap();
    // After the final apply_retention the sealed segments fit the cap.
    assert!(
        last["disk_bytes"].as_f64().unwrap() <= cap,
        "{last} over {cap}"
    );
}
