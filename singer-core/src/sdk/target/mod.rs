//! The target side of the SDK.
//!
//! A target implements [`Target`] (shared setup), [`StreamSink`] (per stream, on the thread
//! that reads the input: turns records into a batch) and [`Loader`] (per stream, on its own
//! async task: makes a batch durable). [`run_target`] owns everything else:
//!
//! - message order: SCHEMA, RECORD, ACTIVATE_VERSION and BATCH of a stream reach its loader in
//!   input order; streams are independent and load in parallel;
//! - batching: a stream's buffer is cut into a batch by rows, bytes or age ([`BatchLimits`]);
//!   at most one batch per stream waits while another loads, so memory stays bounded and a
//!   slow database slows the input (back-pressure) instead of growing buffers;
//! - checkpoints: a STATE is echoed on stdout (as its bare value) only after every record that
//!   preceded it in the input is durably loaded; when a later state is already safe, earlier
//!   ones are skipped. On any error nothing more is echoed and the process exits non-zero;
//! - signals ([`run_target`]): SIGTERM or SIGINT stops the reading, commits every record read,
//!   echoes the state that covers them and exits 0; a second signal or a drain longer than
//!   [`Target::drain_timeout`] exits non-zero at once without echoing more.
//!
//! Delivery is at least once: after a crash the tap resumes from the last echoed state and may
//! resend records that were already loaded, so loaders with keys must upsert.

mod driver;
mod shutdown;

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::cli::{self, TargetArgs};
use super::{About, SdkError, config, logging};
use crate::message::{RecordRef, SchemaMessage};
use crate::record::RawFields;
use crate::schema::StreamSchema;

pub use driver::RunSummary;

/// When a stream's buffer is cut into a batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// At most this many records per batch.
    pub max_rows: usize,
    /// At most about this many bytes per batch (as counted by the sink).
    pub max_bytes: usize,
    /// A buffered record waits at most this long before its batch is cut.
    pub max_age: Duration,
}

impl BatchLimits {
    /// Limits from the conventional settings `batch_size_rows`, `batch_size_bytes` and
    /// `max_batch_age_seconds`, rejecting zero, negative or NaN values.
    pub fn from_settings(rows: usize, bytes: usize, age_seconds: f64) -> Result<Self, SdkError> {
        if rows == 0 || bytes == 0 {
            return Err(SdkError::Config(
                "batch_size_rows and batch_size_bytes must be at least 1".into(),
            ));
        }
        if age_seconds.is_nan() || age_seconds <= 0.0 || age_seconds > 1e9 {
            return Err(SdkError::Config(
                "max_batch_age_seconds must be positive".into(),
            ));
        }
        Ok(Self {
            max_rows: rows,
            max_bytes: bytes,
            max_age: Duration::from_secs_f64(age_seconds),
        })
    }
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_rows: 100_000,
            max_bytes: 64 * 1024 * 1024,
            max_age: Duration::from_secs(30),
        }
    }
}

/// A stream's SCHEMA message and its compiled model.
#[derive(Debug)]
pub struct StreamSpec {
    /// The message as received.
    pub message: SchemaMessage,
    /// The compiled property model.
    pub schema: StreamSchema,
}

/// A Singer target.
pub trait Target: Sized + Send + Sync + 'static {
    /// Executable name, e.g. `target-postgres`.
    const NAME: &'static str;
    /// Version printed by `--version`.
    const VERSION: &'static str;
    /// The typed config.
    type Config: DeserializeOwned + Send;
    /// The per-stream sink.
    type Sink: StreamSink;

    /// What `--about` prints.
    fn about() -> About;

    /// Builds the target from its config. Pure: no network or file access here.
    fn new(config: Self::Config) -> Result<Self, SdkError>;

    /// Batch limits; defaults to [`BatchLimits::default`].
    fn limits(&self) -> BatchLimits {
        BatchLimits::default()
    }

    /// After SIGTERM or SIGINT, how long committing what was read may take before the process
    /// exits non-zero without it (default 30 s).
    fn drain_timeout(&self) -> Duration {
        Duration::from_secs(30)
    }

    /// Whether records are validated against their JSON Schema (costly; default off).
    fn validate_records(&self) -> bool {
        false
    }

    /// Called once before the first message (connect, create directories).
    fn setup(&mut self) -> impl Future<Output = Result<(), SdkError>> + Send {
        async { Ok(()) }
    }

    /// Opens a stream on its first SCHEMA: returns its sink and its loader.
    fn open_stream(
        &self,
        spec: Arc<StreamSpec>,
    ) -> impl Future<Output = Result<(Self::Sink, <Self::Sink as StreamSink>::Loader), SdkError>> + Send;
}

/// Buffers one stream's records into batches; runs on the input thread.
pub trait StreamSink: Send + 'static {
    /// What a cut buffer becomes.
    type Batch: Send + 'static;
    /// The loader for this stream.
    type Loader: Loader<Batch = Self::Batch>;

    /// Whether `accept` wants the record's top-level members parsed.
    const WANTS_FIELDS: bool = false;

    /// Adds a record to the buffer. `fields` is set when [`Self::WANTS_FIELDS`] is true or the
    /// stream has key properties. An error stops the run.
    fn accept(
        &mut self,
        record: &RecordRef<'_>,
        fields: Option<&RawFields<'_>>,
        line: u64,
    ) -> Result<(), SdkError>;

    /// Whether Parquet BATCH rows go to [`Self::accept_arrow`] as Arrow columns; otherwise each
    /// row is turned back into a JSON record for [`Self::accept`].
    const ACCEPTS_ARROW: bool = false;

    /// Adds rows of a Parquet BATCH file (only called when [`Self::ACCEPTS_ARROW`]). An error
    /// stops the run.
    fn accept_arrow(&mut self, rows: &ArrowRows<'_>, line: u64) -> Result<(), SdkError> {
        let _ = (rows, line);
        Err(SdkError::Usage(
            "this target does not take Arrow rows".into(),
        ))
    }

    /// Records in the buffer.
    fn buffered_rows(&self) -> usize;

    /// Approximate bytes in the buffer.
    fn buffered_bytes(&self) -> usize;

    /// Cuts the buffer into a batch; the buffer is empty afterwards.
    fn take_batch(&mut self) -> Self::Batch;

    /// The stream's schema changed; the buffer was cut just before.
    fn update_schema(&mut self, spec: Arc<StreamSpec>) -> Result<(), SdkError>;
}

/// Rows of a Parquet BATCH file, as Arrow columns.
pub struct ArrowRows<'a> {
    /// The rows.
    pub batch: &'a arrow_array::RecordBatch,
    /// The stream's columns (from its SCHEMA).
    pub schema: &'a crate::batch::BatchSchema,
    /// The stream column of each batch column.
    pub positions: &'a [usize],
    /// The table version of the BATCH message.
    pub version: Option<i64>,
    /// The file, for error messages.
    pub file: &'a str,
}

/// Makes one stream's batches durable; runs on its own async task, in input order.
pub trait Loader: Send + 'static {
    /// The batch type produced by the sink.
    type Batch: Send + 'static;

    /// Durably writes a batch. When this returns `Ok`, the records are committed.
    fn load(&mut self, batch: Self::Batch) -> impl Future<Output = Result<(), SdkError>> + Send;

    /// Applies a new schema before the next batch (add columns, widen types).
    fn update_schema(
        &mut self,
        spec: Arc<StreamSpec>,
    ) -> impl Future<Output = Result<(), SdkError>> + Send;

    /// Every record of `version` has been loaded: older versions can be retired.
    fn activate_version(
        &mut self,
        version: i64,
    ) -> impl Future<Output = Result<(), SdkError>> + Send;

    /// End of input: everything is loaded; release resources.
    fn finish(&mut self) -> impl Future<Output = Result<(), SdkError>> + Send {
        async { Ok(()) }
    }

    /// A signal stopped the input before its end: everything sent is loaded, but work that
    /// needs the end of input (retiring the table versions a full copy replaces, when the
    /// copy may be incomplete) must not run. Defaults to [`Self::finish`].
    fn finish_interrupted(&mut self) -> impl Future<Output = Result<(), SdkError>> + Send {
        self.finish()
    }
}

/// Runs a target as a process.
pub fn run_target<T: Target>() -> ExitCode {
    logging::init();
    let args: TargetArgs = cli::parse(T::NAME, T::VERSION);
    if args.common.about {
        return match super::tap::print_about(
            T::about(),
            args.common.format,
            Box::new(std::io::stdout()),
        ) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => e.exit_status().into(),
        };
    }
    match run_target_with::<T>(&args.common.config, args.input.as_ref()) {
        Ok(summary) => {
            tracing::info!(
                records = summary.records,
                states = summary.states_echoed,
                "target finished"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            logging::report_fatal(T::NAME, &e);
            e.exit_status().into()
        }
    }
}

/// Runs a target on stdin (or `input`) with config files, echoing state on stdout. SIGTERM and
/// SIGINT drain the target (see the module documentation).
pub fn run_target_with<T: Target>(
    config_paths: &[PathBuf],
    input: Option<&PathBuf>,
) -> Result<RunSummary, SdkError> {
    let merged = if config_paths.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        config::merge_files(config_paths)?
    };
    let target = T::new(config::parse(merged)?)?;
    let reader: Box<dyn std::io::Read + Send> = match input {
        Some(p) => Box::new(
            std::fs::File::open(p)
                .map_err(|e| SdkError::Usage(format!("cannot open input {}: {e}", p.display())))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    driver::run(target, reader, Box::new(std::io::stdout()), true)
}

/// Runs a target on any reader and writer (for tests and embedding); signals are left alone.
pub fn run_target_on<T: Target>(
    target: T,
    input: Box<dyn std::io::Read + Send>,
    output: Box<dyn std::io::Write + Send>,
) -> Result<RunSummary, SdkError> {
    driver::run(target, input, output, false)
}
