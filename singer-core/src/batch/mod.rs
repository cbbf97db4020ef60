//! BATCH files: the Arrow columns of a stream, file writers for taps and readers for
//! targets, in JSONL (none, gzip, zstd) and Parquet (zstd, gzip, none).
//!
//! | module | what it holds |
//! |---|---|
//! | [`config`] | `batch_config` (the Meltano SDK's shape), checked |
//! | [`location`] | manifest entries: `file://` URLs and local paths |
//! | [`store`] | object-store URLs (`s3://` with the `s3` feature, `memory://`) |
//! | [`columns`] | a stream's exact Arrow schema, derived from its JSON Schema |
//! | [`from_json`] | records into Arrow columns |
//! | [`to_json`] | Arrow rows back into records |
//! | [`writer`] | rolled, atomically renamed files and their BATCH messages |
//! | [`reader`] | the rows of a BATCH message's files |
//!
//! A tap that writes a batch file emits its BATCH message and then a STATE covering every
//! row in it, so a target that echoes that state has committed the file.

pub mod columns;
pub mod config;
pub mod from_json;
pub mod location;
pub mod reader;
pub mod store;
pub mod to_json;
pub mod writer;

pub use columns::{BatchSchema, ColumnKind};
pub use config::BatchConfig;
pub use from_json::RowsBuilder;
pub use reader::{Rows, for_each_rows};
pub use writer::BatchWriter;

/// A batch file that cannot be written or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// The stream.
    pub stream: String,
    /// The file, when one is concerned.
    pub file: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl BatchError {
    /// An error for a stream and, if known, a file.
    pub fn new(stream: &str, file: Option<String>, message: impl Into<String>) -> Self {
        Self {
            stream: stream.to_string(),
            file,
            message: message.into(),
        }
    }

    /// The same error, naming `file` unless it names one already.
    pub fn in_file(mut self, file: &str) -> Self {
        if self.file.is_none() {
            self.file = Some(file.to_string());
        }
        self
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BATCH of stream `{}`", self.stream)?;
        if let Some(file) = &self.file {
            write!(f, ", file {file}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for BatchError {}

impl crate::error::Classify for BatchError {
    fn class(&self) -> crate::error::ErrorClass {
        crate::error::ErrorClass::Fatal
    }
}
