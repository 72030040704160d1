//! The fuzz targets' checks on stable, from `cargo test`: every file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/`, then a few
//! thousand mutations of them (bit flips, interesting values, truncations,
//! insertions, deletions and splices) from a fixed seed. Inputs listed in
//! `fuzz/regressions/KNOWN_BUGS` (bugs not fixed yet) must still fail.
//!
//! `cargo test --release --test fuzz_corpus -- --ignored write_seed_corpus`
//! rewrites the seed corpus from the golden fixtures and generated data.
//! `SPANLOG_FUZZ_MUTATIONS=N` changes the number of mutations per target.

#[path = "../fuzz/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use spanlog::gen::Rng;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of `fuzz/<kind>/<target>/`, sorted by name.
fn inputs(kind: &str, target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = root().join("fuzz").join(kind).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, b)
        })
        .collect()
}

fn check_of(target: &str) -> checks::Check {
    checks::TARGETS
        .iter()
        .find(|(n, _)| *n == target)
        .unwrap_or_else(|| panic!("no check for {target}"))
        .1
}

/// Runs one input; on a panic keeps the input for reproduction and says
/// where.
fn run_one(target: &str, check: checks::Check, data: &[u8], what: &str) -> Option<String> {
    catch_unwind(AssertUnwindSafe(|| check(data)))
        .err()
        .map(|e| {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join("fuzz-failures")
                .join(target);
            std::fs::create_dir_all(&dir).ok();
            let file = dir.join(format!("{:016x}", fnv(data)));
            std::fs::write(&file, data).ok();
            format!("{what}: {msg} (input kept in {})", file.display())
        })
}

fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100_0000_01b3)
    })
}

const INTERESTING: [u64; 10] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    u64::MAX / 2,
    u64::MAX,
];

/// One to three random edits of `data`, some taking bytes from `other`.
fn mutate(rng: &mut Rng, data: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    for _ in 0..rng.range(1, 3) {
        let len = v.len() as u64;
        match rng.below(8) {
            0 if len > 0 => {
                for _ in 0..rng.range(1, 4) {
                    let i = rng.below(len) as usize;
                    v[i] ^= 1 << rng.below(8);
                }
            }
            1 if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff]);
            }
            2 if len >= 8 => {
                let width = *rng.pick(&[1usize, 2, 4, 8]);
                let i = rng.below(len - width as u64 + 1) as usize;
                let x = rng
                    .pick(&INTERESTING)
                    .wrapping_add(rng.range(0, 2).wrapping_sub(1));
                v[i..i + width].copy_from_slice(&x.to_le_bytes()[..width]);
            }
            3 => v.truncate(rng.below(len + 1) as usize),
            4 if len > 0 => {
                let at = rng.below(len) as usize;
                let n = rng.range(1, 64.min(len)) as usize;
                v.drain(at..(at + n).min(v.len()));
            }
            5 => {
                let at = rng.below(len + 1) as usize;
                let n = rng.range(1, 32) as usize;
                let bytes: Vec<u8> = if rng.chance(0.5) && len > 0 {
                    let from = rng.below(len) as usize;
                    v[from..(from + n).min(v.len())].to_vec()
                } else {
                    (0..n).map(|_| rng.below(256) as u8).collect()
                };
                v.splice(at..at, bytes);
            }
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1) as usize;
                let from = rng.below(other.len() as u64) as usize;
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ if len > 0 => {
                let i = rng.below(len) as usize;
                v[i] = v[i].wrapping_add(rng.range(1, 255) as u8);
            }
            _ => v.push(rng.below(256) as u8),
        }
    }
    v
}

/// Mutations per target: `SPANLOG_FUZZ_MUTATIONS`, else 4000 in release
/// builds and a tenth of that in debug ones.
fn mutations() -> usize {
    let default = if cfg!(debug_assertions) { 400 } else { 4000 };
    std::env::var("SPANLOG_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The corpus, the regressions, then mutations of both, through `target`'s
/// check; fails listing every input that panicked.
fn run_target(target: &str, scale: usize) {
    let check = check_of(target);
    let corpus = inputs("corpus", target);
    let known = known_bugs(target);
    let (open, regressions): (Vec<_>, Vec<_>) = inputs("regressions", target)
        .into_iter()
        .partition(|(p, _)| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            known.iter().any(|k| k == name)
        });
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target} is empty: run write_seed_corpus"
    );
    let mut failures = Vec::new();
    for (path, data) in corpus.iter().chain(&regressions) {
        failures.extend(run_one(target, check, data, &path.display().to_string()));
    }
    // An input of a bug not fixed yet must still fail, so that the fix
    // is noticed and the entry moved out of KNOWN_BUGS.
    for (path, data) in &open {
        if catch_unwind(AssertUnwindSafe(|| check(data))).is_ok() {
            failures.push(format!(
                "{} passes now: remove it from fuzz/regressions/KNOWN_BUGS",
                path.display()
            ));
        }
    }
    let pool: Vec<&[u8]> = corpus
        .iter()
        .chain(&regressions)
        .map(|(_, d)| d.as_slice())
        .collect();
    let mut rng = Rng::new(fnv(target.as_bytes()));
    let n = mutations() / scale;
    for i in 0..n {
        let base = pool[rng.below(pool.len() as u64) as usize];
        let other = pool[rng.below(pool.len() as u64) as usize];
        let data = mutate(&mut rng, base, other);
        failures.extend(run_one(target, check, &data, &format!("mutation {i}")));
        if failures.len() > 20 {
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{target}: {} failing inputs:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Regression inputs of bugs not fixed yet, from `fuzz/regressions/KNOWN_BUGS`
/// (`<target>/<file>: what is wrong` per line).
fn known_bugs(target: &str) -> Vec<String> {
    let list =
        std::fs::read_to_string(root().join("fuzz/regressions/KNOWN_BUGS")).unwrap_or_default();
    list.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .filter_map(|(entry, _)| entry.trim().split_once('/'))
        .filter(|(t, _)| *t == target)
        .map(|(_, f)| f.to_string())
        .collect()
}

#[test]
fn block_decode() {
    run_target("block_decode", 1);
}

#[test]
fn segment_open() {
    run_target("segment_open", 2);
}

#[test]
fn active_recover() {
    run_target("active_recover", 1);
}

#[test]
fn footer_decode() {
    run_target("footer_decode", 1);
}

#[test]
fn store_open() {
    run_target("store_open", 2);
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_json() {
    run_target("otlp_json", 1);
}

#[cfg(feature = "otlp")]
#[test]
fn otlp_proto() {
    run_target("otlp_proto", 1);
}

#[test]
fn every_target_has_a_test_and_seeds_pass_repair_unchanged() {
    let names: Vec<&str> = checks::TARGETS.iter().map(|t| t.0).collect();
    assert_eq!(
        names,
        [
            "block_decode",
            "segment_open",
            "active_recover",
            "footer_decode",
            "store_open",
            "otlp_json",
            "otlp_proto"
        ]
    );
    // Repairing a valid file changes nothing: the offsets the repair
    // writes are the format's.
    for (dir, file) in [
        ("v4", "00000000000000000001.seg"),
        ("v3", "00000000000000000003.seg"),
        ("v5", "00000000000000000003.seg"),
        ("v6", "00000000000000000003.seg"),
    ] {
        let good = std::fs::read(fixtures().join(dir).join(file)).unwrap();
        let mut fixed = good.clone();
        checks::fixup::sealed(&mut fixed, None);
        assert!(fixed == good, "repair changed {dir}/{file}");
    }
    let good = std::fs::read(fixtures().join("v4/00000000000000000002.wal")).unwrap();
    let mut fixed = good.clone();
    checks::fixup::wal(&mut fixed, Some(2));
    assert!(fixed == good, "repair changed a valid log");
    // And it does repair: a flipped byte in a block body is read past.
    let at = spanlog::segment::HEADER_LEN + spanlog::block::BLOCK_HEADER_LEN + 5;
    let mut bad = good.clone();
    bad[at] ^= 0x10;
    assert!(spanlog::block::decode_block(&bad[spanlog::segment::HEADER_LEN..]).is_err());
    checks::fixup::wal(&mut bad, None);
    let h = spanlog::block::BlockHeader::decode(&bad[spanlog::segment::HEADER_LEN..]);
    assert!(h.is_ok(), "header checksum not rewritten");
    let h = h.unwrap();
    let body = &bad[at - 5..at - 5 + h.body_len as usize];
    assert_eq!(
        h.body_crc,
        crc32fast::hash(body),
        "body checksum not rewritten"
    );
}

// ---- the seed corpus -----------------------------------------------------

fn fixtures() -> PathBuf {
    root().join("tests/fixtures")
}

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A span with every kind of field and value.
fn full_span() -> spanlog::Span {
    use spanlog::{
        AnyValue as V, Event, KeyValue, Link, Resource, Scope, Span, SpanId, SpanKind, Status,
        StatusCode, TraceId,
    };
    let kv = |k: &str, v: V| KeyValue::new(k, v);
    Span {
        trace_id: TraceId([0x5b; 16]),
        span_id: SpanId([0xee; 8]),
        parent_span_id: Some(SpanId([0x0a; 8])),
        trace_state: "vendor=opaque,k=v".into(),
        flags: 0x101,
        name: "GET /api/orders/{id}".into(),
        kind: SpanKind::Server,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_012_500_000,
        attributes: vec![
            kv("http.response.status_code", V::Int(200)),
            kv("http.method", V::String("GET".into())),
            kv("ok", V::Bool(true)),
            kv("no", V::Bool(false)),
            kv("ratio", V::Double(0.25)),
            kv("nan", V::Double(f64::NAN)),
            kv("neg", V::Int(-5)),
            kv("blob", V::Bytes(vec![0, 1, 0xfe, 0xff])),
            kv("empty", V::Empty),
            kv(
                "text",
                V::String(
                    "ünïcødé ✓ long enough to stay out of the block dictionary, really".into(),
                ),
            ),
            kv(
                "list",
                V::Array(vec![
                    V::Int(1),
                    V::String("a".into()),
                    V::Array(vec![V::Empty]),
                ]),
            ),
            kv(
                "map",
                V::KvList(vec![kv("inner", V::KvList(vec![kv("x", V::Double(-0.0))]))]),
            ),
        ],
        dropped_attributes_count: 3,
        events: vec![Event {
            time_unix_nano: 1_700_000_000_001_000_000,
            name: "exception".into(),
            attributes: vec![kv("exception.type", V::String("E".into()))],
            dropped_attributes_count: 1,
        }],
        dropped_events_count: 2,
        links: vec![Link {
            trace_id: TraceId([0x11; 16]),
            span_id: SpanId([0x22; 8]),
            trace_state: "a=b".into(),
            flags: 1,
            attributes: vec![kv("link.kind", V::String("follows".into()))],
            dropped_attributes_count: 0,
        }],
        dropped_links_count: 1,
        status: Status {
            code: StatusCode::Error,
            message: "boom".into(),
        },
        resource: Arc::new(Resource {
            attributes: vec![
                kv("service.name", V::String("checkout".into())),
                kv("host.name", V::String("h1".into())),
            ],
            dropped_attributes_count: 1,
            schema_url: "https://opentelemetry.io/schemas/1.21.0".into(),
        }),
        scope: Arc::new(Scope {
            name: "lib".into(),
            version: "1.0".into(),
            attributes: vec![kv("scope.attr", V::Int(9))],
            dropped_attributes_count: 0,
            schema_url: String::new(),
        }),
    }
}

fn stored(b: &spanlog::block::EncodedBlock) -> Vec<u8> {
    let mut out = b.header.encode().to_vec();
    out.extend_from_slice(&b.body);
    out
}

/// The first block of a segment or log file.
fn first_block(file: &[u8]) -> Vec<u8> {
    let at = spanlog::segment::HEADER_LEN;
    let h = spanlog::block::BlockHeader::decode(&file[at..]).expect("a block");
    file[at..at + h.stored_len() as usize].to_vec()
}

/// A sealed segment of uncompressed blocks, id 1, made deterministic.
fn plain_segment(spans: &[spanlog::Span], per_block: usize) -> Vec<u8> {
    use spanlog::segment::ActiveSegment;
    let dir = tempfile::tempdir().unwrap();
    let mut seg = ActiveSegment::create_temp(dir.path(), 1).unwrap();
    for chunk in spans.chunks(per_block) {
        seg.append(&spanlog::block::encode_block(chunk, None).unwrap())
            .unwrap();
    }
    let path = seg.seal(dir.path()).unwrap();
    let mut b = std::fs::read(path).unwrap();
    checks::fixup::set_created(&mut b, 1_700_000_000_000_000_000);
    b
}

/// A write-ahead log of uncompressed blocks, id 1, made deterministic.
fn plain_wal(spans: &[spanlog::Span], per_block: usize) -> Vec<u8> {
    use spanlog::segment::ActiveSegment;
    let dir = tempfile::tempdir().unwrap();
    let mut seg = ActiveSegment::create_wal(dir.path(), 1).unwrap();
    for chunk in spans.chunks(per_block) {
        let block = spanlog::block::encode_log_block(chunk.iter().collect(), None).unwrap();
        seg.append(&block).unwrap();
    }
    let mut b = std::fs::read(seg.path.as_path()).unwrap();
    checks::fixup::set_created(&mut b, 1_700_000_000_000_000_000);
    b
}

/// The sealed segment a store writes for `spans` (zstd, with a trained
/// dictionary when there is enough data), renumbered to id 1.
fn store_segment(spans: Vec<spanlog::Span>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let store = spanlog::Store::open(dir.path(), spanlog::Options::default()).unwrap();
    store.append(spans).unwrap();
    store.close().unwrap();
    let mut segs: Vec<PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    let mut b = std::fs::read(&segs[0]).unwrap();
    checks::fixup::header(&mut b, Some(1));
    checks::fixup::set_created(&mut b, 1_700_000_000_000_000_000);
    b
}

/// The footer sections of a sealed segment as a `footer_decode` input.
fn footer_input(seg_bytes: &[u8], dict_body: &[u8]) -> Option<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.seg");
    std::fs::write(&path, seg_bytes).unwrap();
    let seg = spanlog::segment::SealedSegment::open(&path).unwrap();
    let blocks = u8::try_from(seg.blocks.len()).ok()?;
    let mut at = seg.trailer.footer_start as usize;
    let mut sections = Vec::new();
    for (_, len) in seg.section_sizes() {
        sections.push(&seg_bytes[at..at + len as usize]);
        at += len as usize;
    }
    // Blocks, then what footer_decode reads, in file order, then a block
    // body for the dictionary and the TABLES section.
    let mut out = vec![blocks];
    let tables = sections.get(13).copied().unwrap_or(&[]);
    let parts: Vec<&[u8]> = (1..12)
        .map(|i| sections.get(i).copied().unwrap_or(&[]))
        .chain([dict_body, tables])
        .collect();
    for (i, p) in parts.iter().enumerate() {
        if checks::split_on(p, checks::SECTION_SEP).len() > 1 {
            return None;
        }
        if i > 0 {
            out.extend_from_slice(checks::SECTION_SEP);
        }
        out.extend_from_slice(p);
    }
    Some(out)
}

fn store_input(flags: u8, files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![flags];
    for (i, (name, contents)) in files.iter().enumerate() {
        let pick = checks::STORE_NAMES
            .iter()
            .position(|n| n == name)
            .expect("a store name");
        if i > 0 {
            out.extend_from_slice(checks::FILE_SEP);
        }
        out.push(pick as u8);
        out.extend_from_slice(contents);
    }
    out
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand after a format change"]
fn write_seed_corpus() {
    use spanlog::block::encode_block;
    use spanlog::gen::generate;
    let mut corpus: Vec<(&str, String, Vec<u8>)> = Vec::new();
    let mut add = |t: &'static str, name: &str, b: Vec<u8>| corpus.push((t, name.to_string(), b));

    let small = generate(1, 12);
    let mut with_full = generate(2, 4);
    with_full.push(full_span());
    let mut zstd = zstd::bulk::Compressor::new(3).unwrap();

    // Blocks: uncompressed ones mutate usefully; compressed and fixture
    // blocks cover the codecs.
    add(
        "block_decode",
        "plain-12",
        stored(&encode_block(&small, None).unwrap()),
    );
    add(
        "block_decode",
        "plain-full",
        stored(&encode_block(&with_full, None).unwrap()),
    );
    add(
        "block_decode",
        "plain-one",
        stored(&encode_block(&[full_span()], None).unwrap()),
    );
    add(
        "block_decode",
        "zstd-30",
        stored(&encode_block(&generate(3, 30), Some(&mut zstd)).unwrap()),
    );
    add(
        "block_decode",
        "v1-wal-first",
        first_block(&fixture("v1/00000000000000000002.wal")),
    );
    add(
        "block_decode",
        "v4-wal-first",
        first_block(&fixture("v4/00000000000000000002.wal")),
    );
    add(
        "block_decode",
        "v4-seg-first",
        first_block(&fixture("v4/00000000000000000001.seg")),
    );

    // Sealed segments.
    let plain_seg = plain_segment(&generate(4, 40), 12);
    let full_seg = plain_segment(&with_full, 2);
    let dict_seg = store_segment(generate(5, 750));
    for v in ["v1", "v2", "v3", "v4", "v5", "v6"] {
        add(
            "segment_open",
            &format!("{v}-seg"),
            fixture(&format!("{v}/00000000000000000001.seg")),
        );
    }
    add(
        "segment_open",
        "v4-flipped-block",
        fixture("v4/flipped-block.seg"),
    );
    add("segment_open", "plain-40", plain_seg.clone());
    add("segment_open", "plain-full", full_seg.clone());
    add("segment_open", "store-dict", dict_seg.clone());

    // Logs.
    let mut v1_wal = fixture("v1/00000000000000000002.wal");
    checks::fixup::wal(&mut v1_wal, Some(1));
    let mut v4_wal = fixture("v4/00000000000000000002.wal");
    checks::fixup::wal(&mut v4_wal, Some(1));
    let plain_log = plain_wal(&generate(6, 30), 10);
    let full_log = plain_wal(&with_full, 2);
    add("active_recover", "v1-wal", v1_wal.clone());
    add("active_recover", "v4-wal", v4_wal.clone());
    add("active_recover", "plain-30", plain_log.clone());
    add("active_recover", "plain-full", full_log.clone());
    let torn = plain_log[..plain_log.len() - 7].to_vec();
    add("active_recover", "torn-tail", torn.clone());
    let mut damaged = plain_log.clone();
    let second = spanlog::segment::HEADER_LEN + first_block(&plain_log).len();
    damaged[second + 60] ^= 0x01;
    add("active_recover", "damage-then-valid", damaged);
    add(
        "active_recover",
        "header-only",
        plain_log[..spanlog::segment::HEADER_LEN].to_vec(),
    );
    add("active_recover", "stillborn", plain_log[..20].to_vec());

    // Footers.
    let dict_block = {
        let b = first_block(&dict_seg);
        b[spanlog::block::BLOCK_HEADER_LEN..].to_vec()
    };
    for (name, seg, body) in [
        ("v1", fixture("v1/00000000000000000001.seg"), &[][..]),
        ("v3", fixture("v3/00000000000000000001.seg"), &[][..]),
        ("v4", fixture("v4/00000000000000000001.seg"), &[][..]),
        ("v5", fixture("v5/00000000000000000001.seg"), &[][..]),
        ("v6", fixture("v6/00000000000000000001.seg"), &[][..]),
        ("plain-40", plain_seg.clone(), &[][..]),
        ("plain-full", full_seg.clone(), &[][..]),
        ("store-dict", dict_seg.clone(), &dict_block[..]),
    ] {
        if let Some(input) = footer_input(&seg, body) {
            add("footer_decode", name, input);
        }
    }

    // Store directories.
    let v4_seg = fixture("v4/00000000000000000001.seg");
    let v4_wal2 = fixture("v4/00000000000000000002.wal");
    let s = |flags, files: &[(&str, &[u8])]| store_input(flags, files);
    add(
        "store_open",
        "v4-seg-and-wal",
        s(
            0,
            &[
                ("00000000000000000001.seg", &v4_seg[..]),
                ("00000000000000000002.wal", &v4_wal2[..]),
            ],
        ),
    );
    add(
        "store_open",
        "fixed-plain-seg-and-wal",
        s(
            checks::STORE_FIX,
            &[
                ("00000000000000000001.seg", &full_seg[..]),
                ("00000000000000000002.wal", &plain_log[..]),
            ],
        ),
    );
    add(
        "store_open",
        "fixed-leftovers",
        s(
            checks::STORE_FIX,
            &[
                ("00000000000000000001.seg", &plain_seg[..]),
                ("00000000000000000001.wal", &full_log[..]),
                ("00000000000000000003.seg.tmp", &plain_seg[..]),
                ("foreign.txt", &b"not a segment"[..]),
            ],
        ),
    );
    add(
        "store_open",
        "fixed-torn-wal-and-lock",
        s(
            checks::STORE_FIX,
            &[("00000000000000000003.wal", &torn[..]), ("LOCK", &b""[..])],
        ),
    );
    add(
        "store_open",
        "flipped-block",
        s(
            0,
            &[(
                "00000000000000000001.seg",
                &fixture("v4/flipped-block.seg")[..],
            )],
        ),
    );
    add("store_open", "empty", vec![0]);

    // OTLP.
    let sets = [
        ("gen-6", generate(7, 6)),
        ("full", with_full.clone()),
        ("one", vec![full_span()]),
    ];
    for (name, spans) in &sets {
        add(
            "otlp_json",
            name,
            spanlog::otlp::to_json_string(spans).into_bytes(),
        );
        add("otlp_proto", name, spanlog::otlp::to_proto(spans));
    }
    add(
        "otlp_json",
        "snake-case-enum-names",
        br#"{"resource_spans":[{"resource":{"attributes":[{"key":"service.name","value":{"string_value":"svc"}}]},"scope_spans":[{"scope":{"name":"lib"},"spans":[{"trace_id":"5b8efff798038103d269b633813fc60c","span_id":"eee19b7ec3c1b174","parent_span_id":"","name":"GET","kind":"SPAN_KIND_SERVER","start_time_unix_nano":1700000000000000000,"end_time_unix_nano":"1700000000012500000","attributes":[{"key":"d","value":{"double_value":"Infinity"}},{"key":"b","value":{"bytes_value":"AAH-_w"}},{"key":"i","value":{"int_value":7}}],"status":{"code":"STATUS_CODE_ERROR"}}]}]}]}"#.to_vec(),
    );
    add("otlp_json", "empty", br#"{"resourceSpans":[]}"#.to_vec());

    let base = root().join("fuzz/corpus");
    let mut total = 0;
    for (target, _) in checks::TARGETS {
        let dir = base.join(target);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (target, name, bytes) in &corpus {
        total += bytes.len();
        std::fs::write(base.join(target).join(format!("seed-{name}")), bytes).unwrap();
    }
    assert!(total < 2 << 20, "seed corpus of {total} bytes");
    println!("{} seeds, {total} bytes", corpus.len());
}
