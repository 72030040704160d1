//! The binary's error: a message for stderr and the exit status it implies.

use std::fmt;
use std::io;

/// Exit status of failures: damaged data, an unknown trace, problems found.
pub const FAILURE: u8 = 1;
/// Exit status of usage errors and of paths that cannot be read.
pub const USAGE: u8 = 2;

/// An error that ends the command.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    /// Empty when nothing should be printed (the reader of stdout went away).
    pub message: String,
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl CliError {
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            code: USAGE,
            message: message.into(),
        }
    }

    pub fn failure(message: impl Into<String>) -> Self {
        CliError {
            code: FAILURE,
            message: message.into(),
        }
    }

    /// Output was cut off by its reader (`spanlog dump | head`): not an
    /// error worth a message, and not worth a non-zero status either.
    fn quiet() -> Self {
        CliError {
            code: 0,
            message: String::new(),
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<spanlog::Error> for CliError {
    fn from(e: spanlog::Error) -> Self {
        // A path that cannot be opened or an argument the engine refuses is
        // the caller's to fix; everything else is a failure of the data.
        let code = match e {
            spanlog::Error::Io { .. } | spanlog::Error::InvalidInput(_) => USAGE,
            spanlog::Error::Locked(_) => USAGE,
            _ => FAILURE,
        };
        CliError {
            code,
            message: e.to_string(),
        }
    }
}

impl From<io::Error> for CliError {
    /// Only for writing output; file errors carry their path via
    /// [`io_error`].
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::BrokenPipe {
            return CliError::quiet();
        }
        CliError::failure(format!("cannot write output: {e}"))
    }
}

/// An I/O error on a file, naming the file and what was being done.
pub fn io_error(path: &std::path::Path, what: &str, e: io::Error) -> CliError {
    CliError::usage(format!("cannot {what} {}: {e}", path.display()))
}
