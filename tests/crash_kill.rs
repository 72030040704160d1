//! Proves that what `flush()` acknowledged survives `kill -9`.
//!
//! A child process (this test binary, re-executed) appends batches to a store
//! and flushes after each, printing the batch number once `flush` returned.
//! The parent kills it with SIGKILL at a random moment, reopens the store
//! (which recovers the torn active segment), checks that every acknowledged
//! batch is present and equal, and repeats on the same directory. Finally the
//! store must verify clean. Iterations: 30, or `SPANLOG_CRASH_ITERATIONS`.

use spanlog::gen::Rng;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use spanlog::{AnyValue, KeyValue, Options, Span, SpanId, Store, TraceId};

const CHILD_ENV: &str = "SPANLOG_CRASH_CHILD_DIR";

fn options() -> Options {
    // Small blocks and segments, so kills land in block writes, seals and
    // segment creation too.
    Options {
        block_target_bytes: 4 << 10,
        segment_max_bytes: 64 << 10,
        ..Options::default()
    }
}

/// The spans of batch `b`: one trace per batch, so each is checkable alone.
fn batch(b: u64) -> Vec<Span> {
    let mut trace = [0u8; 16];
    trace[..8].copy_from_slice(&b.to_be_bytes());
    trace[15] = 1;
    (0..(b % 40 + 1))
        .map(|i| {
            let mut id = [0u8; 8];
            id[..4].copy_from_slice(&(i as u32 + 1).to_be_bytes());
            id[4..].copy_from_slice(&(b as u32).to_be_bytes());
            Span {
                trace_id: TraceId(trace),
                span_id: SpanId(id),
                parent_span_id: (i > 0).then_some(SpanId([1; 8])),
                name: format!("op-{}", i % 7),
                start_time_unix_nano: 1_700_000_000_000_000_000 + b * 1_000_000 + i,
                end_time_unix_nano: 1_700_000_000_000_000_000 + b * 1_000_000 + i * 3 + 100,
                attributes: vec![
                    KeyValue::new("batch", AnyValue::Int(b as i64)),
                    KeyValue::new(
                        "note",
                        AnyValue::String(format!(
                            "span {i} of batch {b} {}",
                            "x".repeat((i % 50) as usize)
                        )),
                    ),
                ],
                ..Span::default()
            }
        })
        .collect()
}

/// Runs only inside the re-executed child: appends and flushes forever.
#[test]
#[ignore = "child process of crash_kill_loses_no_acknowledged_span"]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let first: u64 = std::env::var("SPANLOG_CRASH_FIRST")
        .unwrap()
        .parse()
        .unwrap();
    let store = Store::open(&dir, options()).unwrap();
    // The test harness has written "test crash_child ... " without a line
    // break: without this one, the first ACK would share its line and be
    // missed.
    println!();
    for b in first.. {
        store.append(batch(b)).unwrap();
        if b % 3 != 0 {
            // Some batches stay unflushed, so kills also hit buffered data.
            store.flush().unwrap();
            println!("ACK {b}");
        }
    }
}

/// Starts a child at batch `first`, kills it after `delay`, returns the acks.
fn run_child(dir: &Path, first: u64, delay: Duration) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env("SPANLOG_CRASH_FIRST", first.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("ACK ") {
                let _ = tx.send(n.parse::<u64>().unwrap());
            }
        }
    });
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    reader.join().unwrap();
    rx.try_iter().collect()
}

fn check_acked(dir: &Path, acked: &[u64]) {
    let store = Store::open(dir, options()).unwrap();
    for b in acked {
        let want = batch(*b);
        let got = store.get_trace(want[0].trace_id).unwrap();
        let mut want_sorted = want.clone();
        want_sorted.sort_by_key(|s| (s.start_time_unix_nano, s.span_id));
        assert_eq!(
            got, want_sorted,
            "acknowledged batch {b} differs after kill -9"
        );
    }
    store.close().unwrap();
}

#[test]
fn crash_kill_loses_no_acknowledged_span() {
    let iterations: usize = std::env::var("SPANLOG_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    let mut kills_with_acks = 0;
    let started = Instant::now();
    for it in 0..iterations {
        let first = (it as u64 + 1) * 1_000_000;
        let delay = Duration::from_millis(20 + rng.next_u64() % 250);
        let got = run_child(dir.path(), first, delay);
        kills_with_acks += usize::from(!got.is_empty());
        acked.extend(got);
        check_acked(dir.path(), &acked);
    }
    let report = spanlog::verify::verify_path(dir.path()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
    assert!(
        kills_with_acks * 2 >= iterations,
        "too few children got to acknowledge anything"
    );
    println!(
        "{iterations} kills, {} acknowledged batches checked in {:?}",
        acked.len(),
        started.elapsed()
    );
}
