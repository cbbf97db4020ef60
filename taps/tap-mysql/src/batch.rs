//! BATCH output: with `batch_config` set, a FULL_TABLE copy and the initial snapshot of a
//! LOG_BASED stream write their rows into JSONL or Parquet files instead of RECORD messages.
//!
//! The contract with the target: each completed file is announced by its BATCH message, and
//! right after it the copy writes a STATE whose bookmark covers exactly the rows of the files
//! announced so far (`last_pk_fetched` is the key of the last row of that file). No STATE is
//! written while a file is open, so a target that echoes a state has committed every row the
//! state covers, and a run resumed from it reads the next row after that file. A file still
//! being written when the tap dies stays under its temporary name (`.<name>.partial`), which no
//! manifest ever names; file names hold the time, process id and a sequence number, so a
//! resumed run never reuses one.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use singer_core::batch::{BatchConfig, BatchWriter};
use singer_core::schema::StreamSchema;
use singer_core::sdk::SdkError;
use singer_core::sdk::tap::TapContext;

use crate::stream::StreamPlan;

/// Reads `batch_config`, checking it at startup: the error names the bad setting
/// (`batch_config.encoding.format: ...`).
pub(crate) fn parse_config<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BatchConfig>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => BatchConfig::from_value(&v)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The shape of `batch_config`, as `--about` shows it (the Meltano SDK's).
#[derive(JsonSchema)]
#[allow(dead_code)]
pub(crate) struct BatchConfigSchema {
    /// The file format and its compression.
    encoding: EncodingSchema,
    /// Where files are written.
    storage: StorageSchema,
    /// Rows per file (default 100000); a STATE follows each file.
    batch_size: Option<u64>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct EncodingSchema {
    /// `jsonl` or `parquet`.
    format: String,
    /// jsonl: `gzip` (default), `zstd` or `none`; parquet: `zstd` (default), `gzip` or `none`.
    compression: Option<String>,
}

#[derive(JsonSchema)]
#[allow(dead_code)]
struct StorageSchema {
    /// A local directory, as a path or a `file://` URL.
    root: String,
    /// Prepended to every file name.
    prefix: Option<String>,
}

/// The BATCH files of one copy.
pub(crate) struct BatchOut {
    tap_stream_id: String,
    writer: BatchWriter,
    /// Rows in the file being written.
    rows_in_file: u64,
}

impl BatchOut {
    /// Files for the copy of `plan` with table `version`, in the stream's SCHEMA.
    pub(crate) fn new(
        plan: &StreamPlan,
        config: &BatchConfig,
        version: i64,
    ) -> Result<Self, SdkError> {
        let id = &plan.tap_stream_id;
        let msg = plan.schema_message();
        let schema = StreamSchema::compile(id, &msg.schema, &msg.key_properties).map_err(|e| {
            SdkError::fatal(format!("stream `{id}`: its SCHEMA has no batch form"), e)
        })?;
        let mut writer = BatchWriter::new(id, &schema, config).map_err(batch_error)?;
        writer.set_version(Some(version));
        Ok(Self {
            tap_stream_id: id.clone(),
            writer,
            rows_in_file: 0,
        })
    }

    /// Adds a row (a JSON object, as [`StreamPlan::encode`] writes it). When it completes a
    /// file, writes its BATCH message and returns true: the caller writes the STATE covering
    /// this row next.
    pub(crate) fn write(&mut self, ctx: &mut TapContext, row: &[u8]) -> Result<bool, SdkError> {
        let raw: &RawValue = serde_json::from_slice(row).map_err(|e| {
            SdkError::fatal(
                format!("stream `{}`: a row is not valid JSON", self.tap_stream_id),
                e,
            )
        })?;
        self.rows_in_file += 1;
        match self.writer.write(raw).map_err(batch_error)? {
            Some(msg) => {
                ctx.write_batch(msg, std::mem::take(&mut self.rows_in_file))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Completes the last file, if it holds rows, and writes its BATCH message.
    pub(crate) fn finish(mut self, ctx: &mut TapContext) -> Result<(), SdkError> {
        if let Some(msg) = self.writer.flush().map_err(batch_error)? {
            ctx.write_batch(msg, std::mem::take(&mut self.rows_in_file))?;
        }
        Ok(())
    }
}

fn batch_error(e: singer_core::batch::BatchError) -> SdkError {
    SdkError::connector("writing batch files failed", e)
}
