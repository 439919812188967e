//! CLI errors and the exit codes they map to. Exit codes are part of the
//! interface (documented in the README):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | a check failed: verification found tampering, a proof did not verify |
//! | 2 | usage error or invalid input (bad argument, malformed file, entry too large) |
//! | 3 | not found or not set up: missing data directory, no such entry, empty log |
//! | 4 | internal or storage failure |

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    CheckFailed = 1,
    BadInput = 2,
    NotFound = 3,
    Internal = 4,
}

/// An error with the exit code it deserves.
#[derive(Debug)]
pub struct CliError {
    pub code: ExitCode,
    pub message: String,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub fn bad_input(message: impl Into<String>) -> CliError {
    CliError { code: ExitCode::BadInput, message: message.into() }
}

pub fn not_found(message: impl Into<String>) -> CliError {
    CliError { code: ExitCode::NotFound, message: message.into() }
}

pub fn check_failed(message: impl Into<String>) -> CliError {
    CliError { code: ExitCode::CheckFailed, message: message.into() }
}

pub fn internal(message: impl Into<String>) -> CliError {
    CliError { code: ExitCode::Internal, message: message.into() }
}

pub type CliResult<T = ()> = Result<T, CliError>;

impl From<breakglass_store::reader::ReadError> for CliError {
    fn from(e: breakglass_store::reader::ReadError) -> CliError {
        use breakglass_store::reader::ReadError as R;
        match e {
            R::Empty | R::NoSuchEntry { .. } => not_found(e.to_string()),
            R::BadCheckpoint(_) => check_failed(e.to_string()),
            R::Tree(_) => bad_input(e.to_string()),
            R::Store(_) => internal(e.to_string()),
        }
    }
}

impl From<breakglass_store::StoreError> for CliError {
    fn from(e: breakglass_store::StoreError) -> CliError {
        use breakglass_store::StoreError as S;
        match e {
            S::Open { .. } => not_found(e.to_string()),
            S::Corrupt(_) | S::CorruptEntry { .. } => check_failed(e.to_string()),
            _ => internal(e.to_string()),
        }
    }
}
