//! Helpers shared by the tests that run the `spanlog` binary.

use std::path::Path;
use std::process::Output;

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The exit code; a test fails if the binary died of a signal.
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("exit status, not a signal")
}

pub fn arg(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}
