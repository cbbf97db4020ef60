//! # target-jsonl
//!
//! The reference Singer target: one JSON Lines file per stream, holding the bare records in
//! input order. It needs no service, so demos and tests use it.
//!
//! - Files are named after the stream, percent-encoding every byte outside `A-Z a-z 0-9 _ -`
//!   (so `db-users` → `db-users.jsonl`, `a/b` → `a%2Fb.jsonl`); distinct streams never share
//!   a file.
//! - Records without `version` are appended to the stream's file, so incremental runs
//!   accumulate. Each batch is written and `fsync`ed before the state after it is echoed.
//! - Records with a `version` go to a staging file `<name>.v<version>.partial`. ACTIVATE_VERSION
//!   for a version with a staging file renames it over the stream's file (atomic), then removes
//!   older staging files; for a version without one (the start marker of a full-table sync) it
//!   creates an empty staging file. An interrupted full-table sync that resumes with the same
//!   version keeps appending to its staging file.
//!
//! Modules: [`config`] (settings), [`files`] (naming, compression, durable writes), `sink`
//! (the SDK sink and loader).

pub mod config;
pub mod files;
mod sink;

use std::path::PathBuf;
use std::sync::Arc;

use singer_core::sdk::target::{BatchLimits, StreamSpec, Target};
use singer_core::sdk::{About, SdkError};

pub use config::Config;
use sink::{JsonlLoader, JsonlSink};

/// The target.
pub struct JsonlTarget {
    config: Config,
    dir: PathBuf,
    limits: BatchLimits,
}

impl Target for JsonlTarget {
    const NAME: &'static str = "target-jsonl";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    type Config = Config;
    type Sink = JsonlSink;

    fn about() -> About {
        let settings = serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default();
        About::new(
            Self::NAME,
            "Writes each stream to a JSON Lines file; full-table versions replace the file atomically",
            Self::VERSION,
            &["about", "activate-version", "batch"],
            settings,
        )
    }

    fn new(config: Config) -> Result<Self, SdkError> {
        let limits = BatchLimits::from_settings(
            config.batch_size_rows,
            config.batch_size_bytes,
            config.max_batch_age_seconds,
        )?;
        Ok(Self {
            dir: PathBuf::from(&config.destination_path),
            config,
            limits,
        })
    }

    fn limits(&self) -> BatchLimits {
        self.limits
    }

    fn validate_records(&self) -> bool {
        self.config.validate_records
    }

    async fn setup(&mut self) -> Result<(), SdkError> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| SdkError::fatal(format!("cannot create {}", self.dir.display()), e))
    }

    async fn open_stream(
        &self,
        spec: Arc<StreamSpec>,
    ) -> Result<(JsonlSink, JsonlLoader), SdkError> {
        let files =
            files::StreamFiles::new(&self.dir, &spec.message.stream, self.config.compression);
        Ok((
            JsonlSink::default(),
            JsonlLoader::new(spec.message.stream.clone(), files),
        ))
    }
}
