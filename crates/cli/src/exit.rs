//! Errors that carry their exit code (see `EXIT_CODES` in main.rs).

use std::fmt::Display;

#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    /// `None` when the problem was already reported (e.g. per failed input).
    pub error: Option<anyhow::Error>,
}

pub const RUNTIME: u8 = 1;
pub const USAGE: u8 = 2;
pub const INPUT: u8 = 3;

impl CliError {
    pub fn usage(e: impl Into<anyhow::Error>) -> Self {
        CliError { code: USAGE, error: Some(e.into()) }
    }
    pub fn input(e: impl Into<anyhow::Error>) -> Self {
        CliError { code: INPUT, error: Some(e.into()) }
    }
    /// Input problems already printed one by one.
    pub fn input_reported() -> Self {
        CliError { code: INPUT, error: None }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError { code: RUNTIME, error: Some(e) }
    }
}

pub type CliResult<T = ()> = Result<T, CliError>;

/// `.usage()` / `.input()` on results, to pick the exit code at the call site.
pub trait Classify<T> {
    fn usage(self) -> CliResult<T>;
    fn input(self) -> CliResult<T>;
    fn runtime(self, what: impl Display) -> CliResult<T>;
}

impl<T, E: Into<anyhow::Error>> Classify<T> for Result<T, E> {
    fn usage(self) -> CliResult<T> {
        self.map_err(CliError::usage)
    }
    fn input(self) -> CliResult<T> {
        self.map_err(CliError::input)
    }
    fn runtime(self, what: impl Display) -> CliResult<T> {
        self.map_err(|e| CliError::from(e.into().context(what.to_string())))
    }
}

impl From<flowhound_detect::DetectError> for CliError {
    fn from(e: flowhound_detect::DetectError) -> Self {
        CliError::from(anyhow::Error::from(e))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::from(anyhow::Error::from(e))
    }
}

/// Settings that cannot be used are usage errors (exit 2).
impl From<flowhound_engine::config::ConfigError> for CliError {
    fn from(e: flowhound_engine::config::ConfigError) -> Self {
        CliError::usage(e)
    }
}

/// A model whose features cannot be built is unusable as given (exit 2).
impl From<flowhound_detect::BundleError> for CliError {
    fn from(e: flowhound_detect::BundleError) -> Self {
        CliError::usage(e)
    }
}
