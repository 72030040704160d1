//! `spanlog ingest`: append OTLP files to a store, acknowledging each file
//! only once its spans are durable.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use spanlog::{otlp, Options, Span, Store};

use crate::error::{CliError, CliResult, FAILURE};
use crate::progress::Progress;

/// Spans per append when reading JSONL, so memory stays bounded however
/// large the file is.
const BATCH_SPANS: usize = 10_000;
/// Read size of whole documents, so progress moves while a large one loads.
const READ_CHUNK: u64 = 1 << 20;

/// Append the spans of OTLP files to a store (created if missing).
///
/// The format goes by extension: .json is an OTLP/JSON TracesData or
/// ExportTraceServiceRequest, .jsonl one such document per line, .pb and
/// .binpb OTLP protobuf; `-` reads stdin as OTLP/JSON. --format overrides
/// the extension for every input.
///
/// After each input the store is flushed; only then is one line printed on
/// stdout: the input as given, a tab, and the number of its spans that are
/// now durable. A bad input (or a bad line of a .jsonl) is reported on
/// stderr as `spanlog: FILE: REASON` (`FILE:LINE` for lines) and the others
/// go on; a .json or protobuf input is taken whole or not at all. Exit
/// status 0 when everything was ingested, 1 when anything was refused, 2 on
/// usage errors or when the store cannot be opened.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory (created if missing)
    store: PathBuf,
    /// Input files, or - for stdin
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Read every input in this format instead of going by its extension
    #[arg(long, value_enum)]
    format: Option<Format>,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// One OTLP/JSON document
    Json,
    /// One OTLP/JSON document per line
    Jsonl,
    /// OTLP protobuf
    Proto,
}

/// One input from the command line.
struct Input<'a> {
    path: &'a Path,
    /// As given, for messages and the acknowledgement line.
    name: String,
    format: Format,
}

/// Why an input, or part of it, was not ingested.
enum Refusal {
    /// This input is bad; the next one goes on.
    Bad(String),
    /// The store takes nothing more, so no further input can succeed.
    Fatal(spanlog::Error),
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let inputs = inputs(args)?;
    let store = Store::open(&args.store, Options::default()).map_err(|e| {
        CliError::usage(format!(
            "cannot open store {}: {}",
            args.store.display(),
            reason(&e)
        ))
    })?;
    let mut all_ok = true;
    for input in &inputs {
        all_ok &= ingest_input(&store, input, out)?;
    }
    store.close().map_err(|e| {
        CliError::failure(format!("cannot close store {}: {e}", args.store.display()))
    })?;
    if all_ok {
        Ok(())
    } else {
        // Each failure was reported as it happened; a summary line would
        // break the `spanlog: FILE: REASON` shape of stderr.
        Err(CliError {
            code: FAILURE,
            message: String::new(),
        })
    }
}

/// Every input with its format, checked before the store is touched so a
/// mistyped command changes nothing.
fn inputs(args: &Args) -> CliResult<Vec<Input<'_>>> {
    if args.files.iter().filter(|p| is_stdin(p)).count() > 1 {
        return Err(CliError::usage("- (stdin) can be given only once"));
    }
    args.files
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            let format = args.format.or_else(|| format_of(path)).ok_or_else(|| {
                CliError::usage(format!(
                    "{name}: unknown format: expected .json, .jsonl, .pb or .binpb, \
                         or give --format json|jsonl|proto"
                ))
            })?;
            Ok(Input { path, name, format })
        })
        .collect()
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn format_of(path: &Path) -> Option<Format> {
    if is_stdin(path) {
        return Some(Format::Json);
    }
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "json" => Some(Format::Json),
        "jsonl" => Some(Format::Jsonl),
        "pb" | "binpb" => Some(Format::Proto),
        _ => None,
    }
}

/// Ingests one input, flushes and acknowledges it. Returns whether all of
/// it was ingested; an error ends the command.
fn ingest_input(store: &Store, input: &Input, out: &mut dyn Write) -> CliResult<bool> {
    let (durable, clean) = match read_into(store, input) {
        Ok(done) => done,
        Err(Refusal::Bad(why)) => {
            report(&input.name, &why);
            return Ok(false);
        }
        Err(Refusal::Fatal(e)) => return Err(fatal(input, e)),
    };
    store.flush().map_err(|e| fatal(input, e))?;
    writeln!(out, "{}\t{durable}", input.name)?;
    // The line is a promise a caller may act on at once.
    out.flush()?;
    Ok(clean)
}

/// Appends what the input holds: the number of spans appended, and whether
/// nothing of it was refused.
fn read_into(store: &Store, input: &Input) -> Result<(usize, bool), Refusal> {
    let (reader, size) = open(input.path)?;
    let mut progress = Progress::new(&input.name, size);
    let result = match input.format {
        Format::Jsonl => Jsonl::new(store, &input.name, &mut progress).ingest(reader),
        format => ingest_document(store, reader, format, &mut progress).map(|n| (n, true)),
    };
    progress.clear();
    result
}

/// The input as a reader, and its size when it is a regular file.
fn open(path: &Path) -> Result<(Box<dyn Read>, Option<u64>), Refusal> {
    if is_stdin(path) {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let file = File::open(path).map_err(|e| Refusal::Bad(format!("cannot open: {e}")))?;
    let size = file
        .metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    Ok((Box::new(file), size))
}

/// A .json or protobuf input: parsed whole before anything is appended, so
/// a bad one leaves nothing behind.
fn ingest_document(
    store: &Store,
    mut reader: Box<dyn Read>,
    format: Format,
    progress: &mut Progress,
) -> Result<usize, Refusal> {
    let bytes =
        read_all(&mut reader, progress).map_err(|e| Refusal::Bad(format!("cannot read: {e}")))?;
    let spans = match format {
        Format::Proto => otlp::from_proto(&bytes).map_err(|e| reason(&e)),
        _ => parse_json(&bytes),
    }
    .map_err(Refusal::Bad)?;
    let n = spans.len();
    append(store, spans)?;
    progress.spans(n);
    Ok(n)
}

fn read_all(reader: &mut dyn Read, progress: &mut Progress) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    loop {
        let n = (&mut *reader).take(READ_CHUNK).read_to_end(&mut bytes)?;
        if n == 0 {
            return Ok(bytes);
        }
        progress.read(n);
    }
}

/// The spans of one OTLP/JSON document.
fn parse_json(text: &[u8]) -> Result<Vec<Span>, String> {
    let doc: serde_json::Value =
        serde_json::from_slice(text).map_err(|e| format!("invalid OTLP/JSON: {e}"))?;
    otlp::from_json(&doc).map_err(|e| reason(&e))
}

/// A refused batch is the input's fault; any other error of the store
/// (I/O, a poisoned or closed store) stops everything.
fn append(store: &Store, spans: Vec<Span>) -> Result<(), Refusal> {
    store.append(spans).map_err(|e| match e {
        spanlog::Error::InvalidInput(why) => Refusal::Bad(format!("refused by the store: {why}")),
        e => Refusal::Fatal(e),
    })
}

/// A .jsonl input: lines are gathered into batches, bad lines reported and
/// skipped.
struct Jsonl<'a> {
    store: &'a Store,
    name: &'a str,
    progress: &'a mut Progress,
    batch: Vec<Span>,
    /// The numbered lines of `batch`, kept to retry them one by one.
    lines: Vec<(usize, Vec<u8>)>,
    appended: usize,
    clean: bool,
}

impl<'a> Jsonl<'a> {
    fn new(store: &'a Store, name: &'a str, progress: &'a mut Progress) -> Self {
        Jsonl {
            store,
            name,
            progress,
            batch: Vec::new(),
            lines: Vec::new(),
            appended: 0,
            clean: true,
        }
    }

    /// A read error ends the input, but what was appended before it stays
    /// and is acknowledged: it will be durable after the flush anyway.
    fn ingest(mut self, reader: Box<dyn Read>) -> Result<(usize, bool), Refusal> {
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut line = Vec::new();
        let mut number = 0;
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) => break,
                Ok(n) => self.progress.read(n),
                Err(e) => {
                    self.bad(self.name, &format!("cannot read after line {number}: {e}"));
                    break;
                }
            }
            number += 1;
            self.line(number, &line)?;
        }
        self.append_batch()?;
        Ok((self.appended, self.clean))
    }

    fn line(&mut self, number: usize, text: &[u8]) -> Result<(), Refusal> {
        let text = text.trim_ascii();
        if text.is_empty() {
            return Ok(());
        }
        match parse_json(text) {
            Ok(spans) => {
                self.batch.extend(spans);
                self.lines.push((number, text.to_vec()));
            }
            Err(why) => self.bad(&format!("{}:{number}", self.name), &why),
        }
        if self.batch.len() >= BATCH_SPANS {
            self.append_batch()?;
        }
        Ok(())
    }

    fn append_batch(&mut self) -> Result<(), Refusal> {
        let spans = std::mem::take(&mut self.batch);
        let lines = std::mem::take(&mut self.lines);
        let n = spans.len();
        if n == 0 {
            return Ok(());
        }
        match append(self.store, spans) {
            Ok(()) => self.appended(n),
            Err(Refusal::Bad(_)) => self.append_each(lines)?,
            Err(fatal) => return Err(fatal),
        }
        Ok(())
    }

    /// The store refuses a batch whole, so nothing of it was written:
    /// appending its lines one by one refuses only the bad lines.
    fn append_each(&mut self, lines: Vec<(usize, Vec<u8>)>) -> Result<(), Refusal> {
        for (number, text) in lines {
            let result = parse_json(&text).map_err(Refusal::Bad).and_then(|spans| {
                let n = spans.len();
                append(self.store, spans).map(|()| n)
            });
            match result {
                Ok(n) => self.appended(n),
                Err(Refusal::Bad(why)) => self.bad(&format!("{}:{number}", self.name), &why),
                Err(fatal) => return Err(fatal),
            }
        }
        Ok(())
    }

    fn appended(&mut self, n: usize) {
        self.appended += n;
        self.progress.spans(n);
    }

    fn bad(&mut self, place: &str, why: &str) {
        self.progress.clear();
        report(place, why);
        self.clean = false;
    }
}

fn report(place: &str, why: &str) {
    eprintln!("spanlog: {place}: {why}");
}

/// The store's message without the generic `invalid input: ` prefix, which
/// says nothing the context does not.
fn reason(e: &spanlog::Error) -> String {
    match e {
        spanlog::Error::InvalidInput(why) => why.clone(),
        e => e.to_string(),
    }
}

fn fatal(input: &Input, e: spanlog::Error) -> CliError {
    CliError::failure(format!("{}: {e}", input.name))
}
