//! End-to-end tests of `spanlog ingest`: files are ingested by the binary,
//! then the store is read back through the library.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use spanlog::{otlp, Options, Span, Store, TraceId};

mod common;
use common::{arg, code, stderr, stdout};

fn spanlog(args: &[&str]) -> Output {
    spanlog_with_stdin(args, b"")
}

fn spanlog_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spanlog"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the spanlog binary");
    // Dropping stdin after writing closes it, so the binary sees its end.
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn ack(file: &str, spans: usize) -> String {
    format!("{file}\t{spans}")
}

fn acks(o: &Output) -> Vec<String> {
    stdout(o).lines().map(str::to_string).collect()
}

/// Spans in a canonical order, so two lists compare as multisets. The
/// Debug text breaks ties between spans sharing ids and start time.
fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_cached_key(|s| {
        (
            s.trace_id.0,
            s.span_id.0,
            s.start_time_unix_nano,
            format!("{s:?}"),
        )
    });
    spans
}

/// Checks that the store holds exactly `expected` for every trace id in it.
fn assert_store_holds(store_dir: &Path, expected: &[Span]) {
    let store = Store::open(store_dir, Options::read_only()).unwrap();
    let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::new();
    for s in expected {
        by_trace.entry(s.trace_id).or_default().push(s.clone());
    }
    for (trace, spans) in by_trace {
        let got = store.get_trace(trace).unwrap();
        assert_eq!(sorted(got), sorted(spans), "trace {trace}");
    }
}

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Spans as one JSONL line.
fn json_line(spans: &[Span]) -> String {
    otlp::to_json_string(spans) + "\n"
}

fn spans(seed: u64, n: usize) -> Vec<Span> {
    spanlog::gen::generate(seed, n)
}

/// Counts spans in the JSON itself, independently of the OTLP reader.
fn count_spans(doc: &Value) -> usize {
    let list = |v: &Value, key: &str| v[key].as_array().cloned().unwrap_or_default();
    list(doc, "resourceSpans")
        .iter()
        .flat_map(|rs| list(rs, "scopeSpans"))
        .map(|ss| list(&ss, "spans").len())
        .sum()
}

fn conformance_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("jaeger/traces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files.push(root.join("otlp/trace.json"));
    files
}

#[test]
fn ingests_the_conformance_fixtures_exactly() {
    let root = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance"
    ));
    if !root.is_dir() {
        eprintln!("note: {} is absent; skipping", root.display());
        return;
    }
    let files = conformance_files(root);
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let mut args = vec!["ingest", arg(&store)];
    args.extend(files.iter().map(|f| arg(f)));
    let o = spanlog(&args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    let texts: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let expected_acks: Vec<String> = files
        .iter()
        .zip(&texts)
        .map(|(f, text)| ack(arg(f), count_spans(&serde_json::from_str(text).unwrap())))
        .collect();
    assert_eq!(acks(&o), expected_acks);

    // Fixtures may share trace ids, so the store is compared with the spans
    // of all files together, duplicates kept.
    let all: Vec<Span> = texts
        .iter()
        .flat_map(|text| otlp::from_json_str(text).unwrap())
        .collect();
    assert!(all.len() >= files.len());
    assert_store_holds(&store, &all);
}

#[test]
fn ingests_protobuf_files() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spans(7, 30);
    let a = write(dir.path(), "a.pb", otlp::to_proto(&spans[..20]));
    let b = write(dir.path(), "b.binpb", otlp::to_proto(&spans[20..]));
    let store = dir.path().join("store");
    let o = spanlog(&["ingest", arg(&store), arg(&a), arg(&b)]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(acks(&o), [ack(arg(&a), 20), ack(arg(&b), 10)]);
    assert_store_holds(&store, &spans);
}

#[test]
fn jsonl_skips_a_bad_line_and_acknowledges_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spans(8, 10);
    let text = json_line(&spans[..4]) + "{\"resourceSpans\": [\n" + &json_line(&spans[4..]);
    let file = write(dir.path(), "spans.jsonl", text + "\n");
    let store = dir.path().join("store");
    let o = spanlog(&["ingest", arg(&store), arg(&file)]);
    assert_eq!(code(&o), 1);
    assert_eq!(acks(&o), [ack(arg(&file), 10)]);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("spanlog: {}:2: invalid OTLP/JSON", arg(&file))),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_store_holds(&store, &spans);
}

#[test]
fn jsonl_line_refused_by_the_store_is_skipped_alone() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spans(9, 6);
    let mut zero = spans[0].clone();
    zero.trace_id = TraceId([0; 16]);
    let text = json_line(&spans[..3]) + &json_line(&[zero]) + &json_line(&spans[3..]);
    // Not a .jsonl name: --format decides.
    let file = write(dir.path(), "spans.txt", text);
    let store = dir.path().join("store");
    let o = spanlog(&["ingest", "--format", "jsonl", arg(&store), arg(&file)]);
    assert_eq!(code(&o), 1);
    assert_eq!(acks(&o), [ack(arg(&file), 6)]);
    let err = stderr(&o);
    assert!(err.contains(&format!("{}:2: ", arg(&file))), "{err}");
    assert!(err.contains("trace id is all zeroes"), "{err}");
    assert_store_holds(&store, &spans);
}

#[test]
fn a_bad_file_is_reported_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spans(10, 12);
    let good1 = write(dir.path(), "good1.json", otlp::to_json_string(&spans[..5]));
    // Valid JSON, but one span's id is not hex: nothing of the file may land.
    let doc = otlp::to_json_string(&spans[5..7]);
    let id = format!("\"{}\"", spans[6].span_id);
    assert!(doc.contains(&id));
    let bad = write(dir.path(), "bad.json", doc.replace(&id, "\"zz\""));
    let missing = dir.path().join("missing.json");
    let good2 = write(dir.path(), "good2.pb", otlp::to_proto(&spans[7..]));
    let store = dir.path().join("store");
    let files = [&good1, &bad, &missing, &good2].map(|p| arg(p));
    let o = spanlog(&[&["ingest", arg(&store)][..], &files].concat());
    assert_eq!(code(&o), 1);
    assert_eq!(acks(&o), [ack(files[0], 5), ack(files[3], 5)]);
    let err = stderr(&o);
    assert!(
        err.contains(&format!("spanlog: {}: invalid OTLP/JSON", files[1])),
        "{err}"
    );
    assert!(
        err.contains(&format!("spanlog: {}: cannot open", files[2])),
        "{err}"
    );
    let kept: Vec<Span> = [&spans[..5], &spans[7..]].concat();
    assert_store_holds(&store, &kept);
    let reader = Store::open(&store, Options::read_only()).unwrap();
    let stray = reader.get_trace(spans[5].trace_id).unwrap();
    assert!(stray.iter().all(|s| kept.contains(s)), "{stray:?}");
}

#[test]
fn reads_stdin_as_json_or_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spans(11, 9);
    let store = dir.path().join("store");
    let json = otlp::to_json_string(&spans[..4]);
    let o = spanlog_with_stdin(&["ingest", arg(&store), "-"], json.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(acks(&o), [ack("-", 4)]);

    let jsonl = json_line(&spans[4..6]) + &json_line(&spans[6..]);
    let args = ["ingest", "--format", "jsonl", arg(&store), "-"];
    let o = spanlog_with_stdin(&args, jsonl.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(acks(&o), [ack("-", 5)]);
    assert_store_holds(&store, &spans);
}

#[test]
fn refuses_a_zero_trace_id_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let spans = spans(12, 2);
    let mut zero = spans[1].clone();
    zero.trace_id = TraceId([0; 16]);
    let file = write(
        dir.path(),
        "zero.json",
        otlp::to_json_string(&[spans[0].clone(), zero]),
    );
    let store = dir.path().join("store");
    let o = spanlog(&["ingest", arg(&store), arg(&file)]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "");
    let err = stderr(&o);
    assert!(
        err.starts_with(&format!("spanlog: {}: ", arg(&file))),
        "{err}"
    );
    assert!(err.contains("trace id is all zeroes"), "{err}");
    // The store refuses a batch whole: the good span did not land either.
    let reader = Store::open(&store, Options::read_only()).unwrap();
    assert_eq!(reader.get_trace(spans[0].trace_id).unwrap(), vec![]);
}

#[test]
fn usage_errors_exit_2_and_leave_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let unknown = write(dir.path(), "spans.txt", "{}");
    let o = spanlog(&["ingest", arg(&store), arg(&unknown)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--format"), "{}", stderr(&o));
    assert!(!store.exists());

    let o = spanlog(&["ingest", arg(&store), "-", "-"]);
    assert_eq!(code(&o), 2);

    let json = write(dir.path(), "a.json", "{}");
    let o = spanlog(&["ingest", arg(&unknown), arg(&json)]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).starts_with("spanlog: cannot open store"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
}
