//! `spanlog services`: every service a store has spans of.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;
use spanlog::{Options, Store};

use crate::error::CliResult;
use crate::format::{json_object, printable};

/// List every service of the store, sorted, one per line.
///
/// Control characters in a name (a newline, an escape sequence) are shown
/// as escapes such as \n and \u{1b}; --json gives every name exactly.
///
/// A span's service is its resource attribute service.name. Only the store's catalogs are read, never a data block. The store is
/// opened read-only, so this works next to a running writer.
#[derive(clap::Args)]
pub struct Args {
    /// The store directory
    store: PathBuf,
    /// Print one JSON object per service and line: {"service": NAME}
    #[arg(long)]
    json: bool,
}

pub fn run(args: &Args, out: &mut dyn Write) -> CliResult {
    let store = Store::open(&args.store, Options::read_only())?;
    for service in store.services()? {
        if args.json {
            writeln!(out, "{}", json_object(&[("service", json!(service))]))?;
        } else {
            writeln!(out, "{}", printable(&service))?;
        }
    }
    Ok(())
}
