//! # target-parquet
//!
//! A data-lake Singer target: each stream becomes a folder of Parquet files that pyarrow,
//! DuckDB, Spark or Polars read as one dataset.
//!
//! - Columns have the exact Arrow types of [`singer_core::batch::columns`], then the `_sdc_*`
//!   columns ([`columns`]); values a type cannot hold stop the run with an error naming the
//!   stream, the line and the column, never rounded or dropped.
//! - The input thread parses each record's members and copies their raw values into chunks
//!   of 8192 ([`rows`], [`sink`]); the stream's [`encoder`] converts each chunk to Arrow on
//!   one thread and writes it into the open file on another, rolled every `file_rows` rows or
//!   about `file_bytes` bytes, so parsing, conversion and Parquet encoding run side by side.
//!   Memory holds at most a few chunks and one row group of encoded pages per stream, never
//!   a whole file. The binary allocates with jemalloc: glibc's malloc mapped and unmapped the Arrow
//!   and Parquet buffers over and over (a sixth of the CPU went to page faults).
//! - Durability: a batch ends with its rows in complete files; the loader ([`loader`]) syncs
//!   each, renames it from the hidden staging folder into the dataset folder and syncs the
//!   folder. Only then does the SDK echo the states that follow those rows. Readers never see
//!   a partial file ([`writer`], [`layout`]).
//! - Table versions go to `_versions/<version>/`; ACTIVATE_VERSION points the `current`
//!   symlink at a version atomically and removes older versions ([`layout`]).
//! - Parquet BATCH files are re-encoded from Arrow without going through JSON ([`rows`]).

pub mod columns;
pub mod config;
pub mod encoder;
pub mod layout;
pub mod loader;
pub mod rows;
pub mod sink;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::{SystemTime, UNIX_EPOCH};

use singer_core::sdk::target::{BatchLimits, StreamSpec, Target};
use singer_core::sdk::{About, SdkError};

pub use config::Config;
use encoder::{Encoder, FileRules, Files};
use layout::StreamLayout;
use loader::ParquetLoader;
use sink::{ParquetSink, RunContext};
use writer::Encoding;

/// The target.
pub struct ParquetTarget {
    dir: PathBuf,
    limits: BatchLimits,
    validate: bool,
    run: RunContext,
}

/// `20250102T030405123456Z`: the run's start, part of every file name.
fn run_id(micros: i64) -> String {
    let mut text = String::new();
    singer_core::moment::write_date_time(micros, &mut text);
    text.chars().filter(|c| c.is_ascii_alphanumeric()).collect()
}

impl Target for ParquetTarget {
    const NAME: &'static str = "target-parquet";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;
    type Sink = ParquetSink;

    fn about() -> About {
        let settings = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
        About::new(
            Self::NAME,
            "Writes each stream as a folder of Parquet files with exact Arrow types; files appear atomically, table versions swap atomically",
            Self::VERSION,
            &[
                "about",
                "activate-version",
                "batch",
                "record-metadata",
                "validate-records",
            ],
            settings,
        )
    }

    fn new(config: Config) -> Result<Self, SdkError> {
        let limits = config.check()?;
        let start = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let micros = i64::try_from(start.as_micros()).unwrap_or(0);
        let nanos = i64::try_from(start.as_nanos()).unwrap_or(0);
        let run_id = format!("{}-{}", run_id(micros), std::process::id());
        Ok(Self {
            dir: PathBuf::from(&config.destination_path),
            limits,
            validate: config.validate_records,
            run: RunContext {
                files: FileRules {
                    encoding: Encoding {
                        compression: config.compression,
                        row_group_rows: config.row_group_rows,
                    },
                    file_rows: config.file_rows,
                    file_bytes: config.file_bytes,
                    run_id: run_id.into(),
                },
                metadata: config.add_record_metadata,
                sequence: Arc::new(AtomicI64::new(nanos)),
            },
        })
    }

    fn limits(&self) -> BatchLimits {
        self.limits
    }

    fn validate_records(&self) -> bool {
        self.validate
    }

    async fn setup(&mut self) -> Result<(), SdkError> {
        layout::create_dirs(&self.dir).map_err(|e| {
            SdkError::fatal(
                format!(
                    "cannot create the destination folder {}",
                    self.dir.display()
                ),
                e,
            )
        })
    }

    async fn open_stream(
        &self,
        spec: Arc<StreamSpec>,
    ) -> Result<(ParquetSink, ParquetLoader), SdkError> {
        let stream = spec.message.stream.clone();
        let layout = StreamLayout::new(&self.dir, &stream);
        layout.prepare().map_err(|e| {
            SdkError::fatal(
                format!(
                    "stream `{stream}`: cannot create its folder {}",
                    layout.root().display()
                ),
                e,
            )
        })?;
        let (columns, changes) = columns::FileColumns::new(&spec.schema, None, self.run.metadata);
        sink::log_changes(&stream, &changes);
        tracing::info!(stream = %stream, folder = %layout.root().display(), "stream folder");
        let files = Files::new(
            &stream,
            spec.message.key_properties.clone(),
            layout.clone(),
            self.run.files.clone(),
        );
        let encoder = Encoder::spawn(files)?;
        let sink = ParquetSink::new(&spec, Arc::new(columns), encoder, self.run.clone());
        Ok((sink, ParquetLoader::new(stream, layout)))
    }
}
