//! The library's error type. Each variant maps to one documented exit code, so that cron and
//! `make` can tell a data problem (1) from a usage or configuration problem (2).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file has problems; each is already formatted with file, line and caret.
    #[error("{} problem(s) in the pipeline:\n{}", .0.len(), .0.join("\n"))]
    Config(Vec<String>),

    /// An input cannot be used at all (missing file, missing required column, bad encoding).
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },

    /// The data was read, but a configured threshold or a reconciliation failed.
    #[error("{0}")]
    Data(String),

    /// Another run holds the lock on a market.
    #[error("{0}")]
    Locked(String),

    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{context}")]
    Polars {
        context: String,
        #[source]
        source: polars::error::PolarsError,
    },

    #[error("{context}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error("{context}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },
}

impl Error {
    /// Exit code documented in `--help` and the README.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Data(_) => 1,
            Error::Locked(_) => 75,
            Error::Config(_) | Error::Input { .. } => 2,
            Error::Io { .. } | Error::Polars { .. } | Error::Parquet { .. } | Error::Arrow { .. } => 1,
        }
    }

    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Input { path: path.into(), message: message.into() }
    }
}

/// Adds a human context line to foreign errors: `.ctx(|| format!("reading {path}"))`.
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T>;
}

macro_rules! context_for {
    ($err:ty, $variant:ident) => {
        impl<T> Context<T> for std::result::Result<T, $err> {
            fn ctx<S: Into<String>>(self, f: impl FnOnce() -> S) -> Result<T> {
                self.map_err(|source| Error::$variant { context: f().into(), source })
            }
        }
    };
}
context_for!(std::io::Error, Io);
context_for!(polars::error::PolarsError, Polars);
context_for!(parquet::errors::ParquetError, Parquet);
context_for!(arrow::error::ArrowError, Arrow);
