//! End-to-end tests of the `spanlog` binary: a store is written through the
//! library, then every command is run against it as a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use spanlog::block::BLOCK_HEADER_LEN;
use spanlog::segment::SealedSegment;
use spanlog::{Options, Span, Store, TraceId};

mod common;
use common::{arg, code, stderr, stdout};

const SPANS: usize = 400;

fn spanlog(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .args(args)
        .output()
        .expect("run the spanlog binary")
}

/// A closed store of generated spans, cut into many small blocks.
fn store() -> (tempfile::TempDir, Vec<Span>) {
    let dir = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(3, SPANS);
    let opts = Options {
        block_target_bytes: 8 << 10,
        ..Options::default()
    };
    let store = Store::open(dir.path(), opts).unwrap();
    for batch in spans.chunks(50) {
        store.append(batch.to_vec()).unwrap();
    }
    store.close().unwrap();
    (dir, spans)
}

fn sealed_file(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a sealed segment")
}

/// The trace with the most spans, and its span count.
fn biggest_trace(spans: &[Span]) -> (TraceId, usize) {
    let mut counts = std::collections::HashMap::new();
    for s in spans {
        *counts.entry(s.trace_id).or_insert(0) += 1;
    }
    counts.into_iter().max_by_key(|(t, n)| (*n, *t)).unwrap()
}

#[test]
fn inspect_prints_text_and_json() {
    let (dir, _) = store();
    let o = spanlog(&["inspect", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("sealed"), "{text}");
    assert!(text.contains("400"), "{text}");
    assert!(text.contains("2026-01-01T00:00:00."), "{text}");

    let o = spanlog(&["inspect", arg(dir.path()), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).expect("one JSON document");
    assert_eq!(doc["totals"]["spans"], SPANS as u64);
    let seg = &doc["segments"][0];
    assert_eq!(seg["sealed"], true);
    assert!(seg["blocks"].as_u64().unwrap() > 1);
    assert!(seg["raw_bytes"].as_u64().unwrap() > seg["compressed_bytes"].as_u64().unwrap());
    assert!(seg["index_section_bytes"]["bloom"].as_u64().unwrap() > 0);

    let o = spanlog(&["inspect", arg(&sealed_file(dir.path())), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["segments"][0]["spans"], SPANS as u64);
}

#[test]
fn verify_passes_a_clean_store_and_names_a_flipped_byte() {
    let (dir, _) = store();
    let o = spanlog(&["verify", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("0 errors"), "{}", stdout(&o));

    let original = sealed_file(dir.path());
    let block = SealedSegment::open(&original).unwrap().blocks[1];
    let copy_dir = tempfile::tempdir().unwrap();
    let copy = copy_dir.path().join(original.file_name().unwrap());
    let mut bytes = std::fs::read(&original).unwrap();
    bytes[block.offset as usize + BLOCK_HEADER_LEN + 5] ^= 0x40;
    std::fs::write(&copy, &bytes).unwrap();

    let o = spanlog(&["verify", arg(&copy)]);
    assert_eq!(code(&o), 1, "{}{}", stdout(&o), stderr(&o));
    let text = stdout(&o);
    assert!(text.contains(arg(&copy)), "{text}");
    assert!(text.contains("byte offset"), "{text}");
    assert!(stderr(&o).starts_with("spanlog: "), "{}", stderr(&o));
}

#[test]
fn verify_of_a_missing_path_is_a_usage_error() {
    let o = spanlog(&["verify", "/nonexistent/spanlog/store"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).starts_with("spanlog: "), "{}", stderr(&o));
}

#[test]
fn dump_prints_one_json_line_per_span() {
    let (dir, spans) = store();
    let o = spanlog(&["dump", arg(&sealed_file(dir.path()))]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), spans.len());
    let first = &lines[0];
    assert_eq!(first["traceId"].as_str().unwrap().len(), 32);
    assert!(first["service"].is_string());
    assert!(first["resource"].is_object() && first["scope"].is_object());

    let o = spanlog(&["dump", arg(&sealed_file(dir.path())), "--block", "0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let n = stdout(&o).lines().count();
    assert!(n > 0 && n < spans.len());
    let o = spanlog(&["dump", arg(&sealed_file(dir.path())), "--block", "100000"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn get_json_returns_exactly_the_trace() {
    let (dir, spans) = store();
    let (trace, n) = biggest_trace(&spans);
    let hex = trace.to_string();
    let o = spanlog(&["get", arg(dir.path()), &hex, "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert_eq!(text.lines().count(), 1, "{text}");
    let doc: Value = serde_json::from_str(&text).unwrap();
    let mut found = 0;
    for rs in doc["resourceSpans"].as_array().unwrap() {
        for ss in rs["scopeSpans"].as_array().unwrap() {
            for s in ss["spans"].as_array().unwrap() {
                assert_eq!(s["traceId"], hex.as_str());
                found += 1;
            }
        }
    }
    assert_eq!(found, n);
}

#[test]
fn get_prints_a_tree() {
    let (dir, spans) = store();
    let (trace, n) = biggest_trace(&spans);
    let o = spanlog(&["get", arg(dir.path()), &trace.to_string()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    // A header, the column titles, one row per span.
    assert_eq!(text.lines().count(), n + 2, "{text}");
    assert!(text.contains("└─ "), "{text}");
}

#[test]
fn get_refuses_unknown_ids_and_bad_hex() {
    let (dir, _) = store();
    let o = spanlog(&["get", arg(dir.path()), "0123456789abcdef0123456789abcdef"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("not found"), "{}", stderr(&o));
    let o = spanlog(&["get", arg(dir.path()), "not-hex"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).starts_with("spanlog: "), "{}", stderr(&o));
}

#[test]
fn demo_ingests_queries_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let o = spanlog(&["demo", "--dir", arg(&dir), "--spans", "20000"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    for figure in [
        "spans/s",
        "MB/s",
        "bytes/span",
        "get_trace",
        "median",
        "p99",
        "scan",
    ] {
        assert!(text.contains(figure), "{figure} missing from:\n{text}");
    }
    assert!(sealed_file(&dir).exists());

    let o = spanlog(&["demo", "--dir", arg(&dir), "--spans", "1000"]);
    assert_eq!(code(&o), 2, "{}", stdout(&o));
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));

    std::fs::write(dir.join("notes.txt"), "kept").unwrap();
    let o = spanlog(&["demo", "--dir", arg(&dir), "--spans", "1000", "--force"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(dir.join("notes.txt").exists());
}

#[test]
fn bench_json_has_every_figure() {
    let o = spanlog(&["bench", "--spans", "20000", "--lookups", "200", "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).expect("one JSON object");
    for key in [
        "ingest_spans_per_sec",
        "ingest_mb_per_sec",
        "bytes_per_span",
        "otlp_proto_bytes_per_span",
        "compression_vs_otlp",
        "get_trace_p50_us",
        "get_trace_p90_us",
        "get_trace_p99_us",
        "get_trace_max_us",
        "get_absent_p50_us",
        "scan_spans_per_sec",
        "peak_rss_mib",
        "segments",
        "spans",
    ] {
        assert!(doc[key].is_number(), "{key} missing or not a number: {doc}");
    }
    assert_eq!(doc["spans"], 20000);
}

#[test]
fn bad_usage_exits_2_with_a_prefixed_message() {
    let o = spanlog(&["inspect"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).starts_with("spanlog: "), "{}", stderr(&o));
    let o = spanlog(&["inspect", "/nonexistent/spanlog/store"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).starts_with("spanlog: "), "{}", stderr(&o));
}

#[test]
fn reads_a_store_while_a_writer_has_it_open() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spanlog::gen::generate(5, 300);
    let store = Store::open(dir.path(), Options::default()).unwrap();
    store.append(spans.clone()).unwrap();
    store.flush().unwrap();

    let o = spanlog(&["inspect", arg(dir.path()), "--json"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(doc["totals"]["spans"], 300);

    let (trace, n) = biggest_trace(&spans);
    let o = spanlog(&["get", arg(dir.path()), &trace.to_string()]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), n + 2);

    let wal = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wal"))
        .expect("the writer's log");
    let o = spanlog(&["dump", arg(&wal)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 300);
    let o = spanlog(&["verify", arg(dir.path())]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    store.close().unwrap();
}
