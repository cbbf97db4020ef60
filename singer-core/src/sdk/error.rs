//! The SDK's error type and the mapping to process exit codes.

use std::error::Error as StdError;
use std::process::ExitCode;

use crate::error::{Classify, ErrorClass};
use crate::io::ReadError;
use crate::message::ParseError;
use crate::schema::SchemaError;
use crate::validate::InvalidRecord;

type BoxError = Box<dyn StdError + Send + Sync>;

/// Everything that can stop a tap or a target.
#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    /// Bad command line.
    #[error("{0}")]
    Usage(String),
    /// A config file is missing, malformed or has bad settings.
    #[error("invalid config: {0}")]
    Config(String),
    /// The input could not be read.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// An input line is not a valid message.
    #[error("line {line}: {source}")]
    Parse {
        /// 1-based input line.
        line: u64,
        /// Why.
        #[source]
        source: ParseError,
    },
    /// A RECORD arrived for a stream that has had no SCHEMA.
    #[error("line {line}: RECORD for stream `{stream}` arrived before its SCHEMA")]
    RecordBeforeSchema {
        /// The stream.
        stream: String,
        /// 1-based input line.
        line: u64,
    },
    /// A record lacks one of its stream's key properties.
    #[error("line {line}: record of stream `{stream}` is missing key property `{key}`")]
    MissingKeyProperty {
        /// The stream.
        stream: String,
        /// The key property.
        key: String,
        /// 1-based input line.
        line: u64,
    },
    /// A SCHEMA message cannot be used.
    #[error("line {line}: {source}")]
    Schema {
        /// 1-based input line.
        line: u64,
        /// Why.
        #[source]
        source: SchemaError,
    },
    /// A record does not match its schema (validation on).
    #[error("line {line}: {source}")]
    InvalidRecord {
        /// 1-based input line.
        line: u64,
        /// Why.
        #[source]
        source: InvalidRecord,
    },
    /// The files of a BATCH message cannot be read or loaded.
    #[error("line {line}: {source}")]
    Batch {
        /// 1-based input line of the BATCH message (0 until known).
        line: u64,
        /// Why, naming the stream and the file.
        #[source]
        source: crate::batch::BatchError,
    },
    /// Writing to stdout failed (other than a closed pipe).
    #[error("failed to write to stdout")]
    Stdout(#[source] std::io::Error),
    /// The reader of our stdout went away; a tap stops quietly.
    #[error("stdout was closed by the reader")]
    BrokenPipe,
    /// A stop signal (SIGTERM or SIGINT) ended a tap's run before its end: the output stops
    /// at a message boundary, and its last STATE is where the next run resumes.
    #[error("stopped by {signal} before the end of the sync")]
    Interrupted {
        /// `SIGTERM` or `SIGINT`.
        signal: &'static str,
        /// The signal's number (the process exits with 128 + it).
        number: u8,
    },
    /// An error from the connector, with its class.
    #[error("{context}")]
    Connector {
        /// What was being done (e.g. "stream `users`: load failed").
        context: String,
        /// The cause.
        #[source]
        source: BoxError,
        /// Its class.
        class: ErrorClass,
    },
}

impl SdkError {
    /// Wraps a connector error, keeping its class and chain.
    pub fn connector<E>(context: impl Into<String>, err: E) -> Self
    where
        E: StdError + Classify + Send + Sync + 'static,
    {
        let class = err.class();
        SdkError::Connector {
            context: context.into(),
            source: Box::new(err),
            class,
        }
    }

    /// Wraps any error as fatal.
    pub fn fatal(context: impl Into<String>, err: impl Into<BoxError>) -> Self {
        SdkError::Connector {
            context: context.into(),
            source: err.into(),
            class: ErrorClass::Fatal,
        }
    }

    /// Maps an I/O error on stdout, treating a closed pipe specially.
    pub fn stdout(err: std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            SdkError::BrokenPipe
        } else {
            SdkError::Stdout(err)
        }
    }

    /// The process exit status for this error.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            SdkError::Usage(_) | SdkError::Config(_) => ExitStatus::Usage,
            SdkError::BrokenPipe => ExitStatus::Success,
            SdkError::Interrupted { number, .. } => ExitStatus::Interrupted(*number),
            _ => ExitStatus::Failed,
        }
    }
}

impl From<crate::batch::BatchError> for SdkError {
    fn from(source: crate::batch::BatchError) -> Self {
        SdkError::Batch { line: 0, source }
    }
}

impl Classify for SdkError {
    fn class(&self) -> ErrorClass {
        match self {
            SdkError::Connector { class, .. } => *class,
            SdkError::InvalidRecord { .. } => ErrorClass::Skippable,
            _ => ErrorClass::Fatal,
        }
    }
}

/// Process exit statuses: 0 ok, 1 run failed, 2 usage or config error, 128 + N stopped by
/// signal N (143 for SIGTERM, 130 for SIGINT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0
    Success,
    /// 1
    Failed,
    /// 2
    Usage,
    /// 128 + the signal's number.
    Interrupted(u8),
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> Self {
        match s {
            ExitStatus::Success => ExitCode::SUCCESS,
            ExitStatus::Failed => ExitCode::from(1),
            ExitStatus::Usage => ExitCode::from(2),
            ExitStatus::Interrupted(n) => ExitCode::from(128_u8.saturating_add(n)),
        }
    }
}
