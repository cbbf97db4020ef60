//! The SDK sink: on the input thread, records are split into their members' raw values and go
//! [`CHUNK_ROWS`] at a time (Parquet BATCH rows as Arrow, as they come) to the stream's
//! [`Encoder`], which converts and writes them into files on its own thread. Cutting a batch closes the open file, so a batch is a list of complete
//! files that the loader ([`crate::loader`]) publishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use singer_core::RecordRef;
use singer_core::batch::BatchError;
use singer_core::batch::from_json::{RowLocator, ValueError};
use singer_core::record::RawFields;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::{ArrowRows, StreamSink, StreamSpec};

use crate::columns::{Change, EXTRACTED_AT, FileColumns};
use crate::encoder::{Encoder, FileRules};
use crate::loader::ParquetLoader;
use crate::rows::{RawRows, RowMeta, from_arrow};
use crate::writer::Part;

const BAD_TIME_EXTRACTED: &str =
    "time_extracted is not a date-time a 64-bit microsecond timestamp holds";

/// Records are converted to Arrow this many at a time.
pub const CHUNK_ROWS: usize = 8 * 1024;
/// Or sooner, once their raw values take this many bytes.
const CHUNK_BYTES: usize = 8 << 20;

/// What a sink shares with the other streams of the run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// How files are encoded, cut and named.
    pub files: FileRules,
    /// Whether the `_sdc_*` columns are written.
    pub metadata: bool,
    /// The next `_sdc_sequence`: the run's start in nanoseconds plus rows received so far.
    pub sequence: Arc<AtomicI64>,
}

/// A cut batch: complete files to publish, or why they could not be completed.
pub enum Batch {
    /// Files, in order.
    Parts(Vec<Part>),
    /// Writing or closing a file failed; the loader reports it.
    Failed(SdkError),
}

/// Turns one stream's rows into Arrow chunks for its encoder.
pub struct ParquetSink {
    stream: String,
    run: RunContext,
    columns: Arc<FileColumns>,
    locator: RowLocator,
    chunk: RawRows,
    chunk_version: Option<i64>,
    /// The last `time_extracted` read, and its microseconds.
    last_extracted: Option<(String, i64)>,
    encoder: Encoder,
    rows: usize,
}

/// Microseconds since 1970 UTC, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A value that does not fit its column, naming the line, the stream and the column.
pub fn value_error(stream: &str, line: u64, e: ValueError) -> SdkError {
    SdkError::fatal(format!("line {line}: stream `{stream}`"), e)
}

/// Logs what a SCHEMA changed in a stream's files.
pub fn log_changes(stream: &str, changes: &[Change]) {
    for c in changes {
        match c {
            Change::Added(col) => tracing::info!(stream, column = %col, "new column"),
            Change::Kept(col) => {
                tracing::info!(stream, column = %col, "column left the SCHEMA; kept, null in new rows")
            }
            Change::Widened(col, from, to) => {
                tracing::info!(stream, column = %col, %from, %to, "column widened")
            }
            Change::Retyped(col, from, to) => tracing::warn!(
                stream, column = %col, %from, %to,
                "column changed type; readers of old and new files need union_by_name"
            ),
            Change::Replaced(col) => tracing::warn!(
                stream, column = %col,
                "the SCHEMA declares a column the target fills; the target's value is written"
            ),
        }
    }
}

impl ParquetSink {
    /// A sink writing `columns` through `encoder`.
    pub fn new(
        spec: &StreamSpec,
        columns: Arc<FileColumns>,
        encoder: Encoder,
        run: RunContext,
    ) -> Self {
        Self {
            stream: spec.message.stream.clone(),
            run,
            locator: RowLocator::new(columns.records.clone()),
            chunk: RawRows::new(columns.clone(), CHUNK_ROWS, 0),
            columns,
            chunk_version: None,
            last_extracted: None,
            encoder,
            rows: 0,
        }
    }

    /// Hands the waiting records to the encoder.
    fn flush_chunk(&mut self) -> Result<(), SdkError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let next = match self.encoder.spare() {
            Some(spare) => spare.reuse(self.columns.clone()),
            None => RawRows::new(self.columns.clone(), CHUNK_ROWS, self.chunk.text_bytes()),
        };
        let rows = std::mem::replace(&mut self.chunk, next);
        self.encoder.write_raw(rows, self.chunk_version)
    }

    /// `time_extracted` in microseconds; a tap usually sends the same one for many records,
    /// so the last one is kept.
    fn extracted_micros(&mut self, t: &str, line: u64) -> Result<i64, SdkError> {
        if let Some((text, micros)) = &self.last_extracted
            && text == t
        {
            return Ok(*micros);
        }
        let bad = || ValueError {
            column: EXTRACTED_AT.into(),
            message: BAD_TIME_EXTRACTED.into(),
        };
        let micros = singer_core::moment::unix_micros(t)
            .ok_or_else(|| value_error(&self.stream, line, bad()))?;
        self.last_extracted = Some((t.to_string(), micros));
        Ok(micros)
    }

    /// Starts rows of `version`: rows of another version go to other files.
    fn switch_version(&mut self, version: Option<i64>) -> Result<(), SdkError> {
        if version != self.chunk_version {
            self.flush_chunk()?;
            self.chunk_version = version;
        }
        Ok(())
    }
}

impl StreamSink for ParquetSink {
    type Batch = Batch;
    type Loader = ParquetLoader;

    const WANTS_FIELDS: bool = true;
    const ACCEPTS_ARROW: bool = true;

    fn accept(
        &mut self,
        r: &RecordRef<'_>,
        fields: Option<&RawFields<'_>>,
        line: u64,
    ) -> Result<(), SdkError> {
        let parsed;
        let fields = match fields {
            Some(f) => f,
            None => {
                parsed = RawFields::parse(r.record).map_err(|e| {
                    value_error(
                        &self.stream,
                        line,
                        ValueError {
                            column: "*".into(),
                            message: format!("malformed record: {e}"),
                        },
                    )
                })?;
                &parsed
            }
        };
        let extracted_at = match &r.time_extracted {
            Some(t) if self.columns.metadata => Some(self.extracted_micros(t, line)?),
            _ => None,
        };
        let meta = RowMeta {
            extracted_at,
            received_at: now_micros(),
            sequence: self.run.sequence.fetch_add(1, Ordering::Relaxed),
            version: r.version,
        };
        self.switch_version(r.version)?;
        self.chunk
            .push(&mut self.locator, fields, line, meta)
            .map_err(|e| value_error(&self.stream, line, e))?;
        self.rows += 1;
        if self.chunk.len() >= CHUNK_ROWS || self.chunk.text_bytes() >= CHUNK_BYTES {
            self.flush_chunk()?;
        }
        Ok(())
    }

    fn accept_arrow(&mut self, rows: &ArrowRows<'_>, line: u64) -> Result<(), SdkError> {
        let n = rows.batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        self.flush_chunk()?;
        self.chunk_version = rows.version;
        let first = self
            .run
            .sequence
            .fetch_add(i64::try_from(n).unwrap_or(i64::MAX), Ordering::Relaxed);
        let batch =
            from_arrow(rows, &self.columns, now_micros(), first).map_err(|e| SdkError::Batch {
                line,
                source: BatchError::new(&self.stream, Some(rows.file.to_string()), e),
            })?;
        self.encoder.write(batch, rows.version)?;
        self.rows += n;
        Ok(())
    }

    fn buffered_rows(&self) -> usize {
        self.rows
    }

    fn buffered_bytes(&self) -> usize {
        self.encoder.bytes()
    }

    fn take_batch(&mut self) -> Batch {
        let parts = self.flush_chunk().and_then(|()| self.encoder.take());
        self.rows = 0;
        match parts {
            Ok(parts) => Batch::Parts(parts),
            Err(e) => Batch::Failed(e),
        }
    }

    fn update_schema(&mut self, spec: Arc<StreamSpec>) -> Result<(), SdkError> {
        // The driver cut the batch before this SCHEMA, so no row waits; the encoder starts a
        // new file for rows of the new columns in any case.
        self.flush_chunk()?;
        let (columns, changes) =
            FileColumns::new(&spec.schema, Some(&self.columns), self.run.metadata);
        log_changes(&self.stream, &changes);
        self.encoder.set_keys(spec.message.key_properties.clone())?;
        self.columns = Arc::new(columns);
        self.locator = RowLocator::new(self.columns.records.clone());
        self.chunk = RawRows::new(self.columns.clone(), CHUNK_ROWS, 0);
        Ok(())
    }
}
