//! The SDK sink: on the input thread, rows go in chunks of [`CHUNK_ROWS`] through Arrow into
//! the stream's open Parquet file, which rolls every `file_rows` rows (or about `file_bytes`
//! bytes) and whenever the table version changes. Cutting a batch closes the open file, so a
//! batch is a list of complete files that the loader ([`crate::loader`]) publishes.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use singer_core::RecordRef;
use singer_core::batch::BatchError;
use singer_core::batch::from_json::ValueError;
use singer_core::record::RawFields;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::{ArrowRows, StreamSink, StreamSpec};

use crate::columns::{Change, EXTRACTED_AT, FileColumns};
use crate::layout::{StreamLayout, part_name};
use crate::loader::ParquetLoader;
use crate::rows::{ChunkBuilder, RowMeta, from_arrow};
use crate::writer::{Encoding, Part, PartWriter};

/// Records are converted to Arrow this many at a time.
pub const CHUNK_ROWS: usize = 8 * 1024;

/// What a sink shares with the other streams of the run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// Page compression and row groups.
    pub encoding: Encoding,
    /// Rows per file.
    pub file_rows: usize,
    /// Approximate bytes per file.
    pub file_bytes: usize,
    /// Whether the `_sdc_*` columns are written.
    pub metadata: bool,
    /// The run's part of every file name.
    pub run_id: Arc<str>,
    /// The next `_sdc_sequence`: the run's start in nanoseconds plus rows received so far.
    pub sequence: Arc<AtomicI64>,
}

/// A cut batch: complete files to publish, or why they could not be completed.
pub enum Batch {
    /// Files, in order.
    Parts(Vec<Part>),
    /// Closing a file failed; the loader reports it.
    Failed(SdkError),
}

/// The open file and the table version of its rows.
struct Open {
    writer: PartWriter,
    version: Option<i64>,
}

/// Writes one stream's rows into files.
pub struct ParquetSink {
    stream: String,
    keys: Vec<String>,
    layout: StreamLayout,
    run: RunContext,
    columns: Arc<FileColumns>,
    chunk: ChunkBuilder,
    chunk_version: Option<i64>,
    open: Option<Open>,
    done: Vec<Part>,
    seq: u64,
    rows: usize,
    done_bytes: usize,
    open_bytes: usize,
}

/// Microseconds since 1970 UTC, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A value that does not fit its column, naming the line, the stream and the column.
fn value_error(stream: &str, line: u64, e: ValueError) -> SdkError {
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
    /// A sink writing `columns` under `layout`.
    pub fn new(
        spec: &StreamSpec,
        layout: StreamLayout,
        columns: Arc<FileColumns>,
        run: RunContext,
    ) -> Self {
        Self {
            stream: spec.message.stream.clone(),
            keys: spec.message.key_properties.clone(),
            layout,
            run,
            chunk: ChunkBuilder::new(columns.clone()),
            columns,
            chunk_version: None,
            open: None,
            done: Vec::new(),
            seq: 0,
            rows: 0,
            done_bytes: 0,
            open_bytes: 0,
        }
    }

    fn write_error(
        &self,
        path: &std::path::Path,
        e: impl std::error::Error + Send + Sync + 'static,
    ) -> SdkError {
        SdkError::fatal(
            format!("stream `{}`: cannot write {}", self.stream, path.display()),
            e,
        )
    }

    /// Encodes the waiting records into the open file.
    fn flush_chunk(&mut self) -> Result<(), SdkError> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let batch = self.chunk.finish(now_micros()).map_err(|e| {
            SdkError::fatal(
                format!("stream `{}`: cannot build rows", self.stream),
                std::io::Error::other(e),
            )
        })?;
        self.write(&batch, self.chunk_version)
    }

    /// Writes rows of one version, rolling files at `file_rows` rows or about `file_bytes`.
    fn write(&mut self, batch: &RecordBatch, version: Option<i64>) -> Result<(), SdkError> {
        let n = batch.num_rows();
        let mut offset = 0;
        while offset < n {
            let (file_rows, file_bytes) = (self.run.file_rows, self.run.file_bytes);
            let open = self.open_for(version)?;
            let take = (file_rows - open.writer.rows()).min(n - offset);
            if let Err(e) = open.writer.write(&batch.slice(offset, take)) {
                let path = open.writer.path().to_path_buf();
                return Err(self.write_error(&path, e));
            }
            offset += take;
            let full = open.writer.rows() >= file_rows || open.writer.bytes() >= file_bytes;
            self.open_bytes = open.writer.bytes();
            if full {
                self.close_open()?;
            }
        }
        Ok(())
    }

    /// The open file for rows of `version`, closing one of another version first.
    fn open_for(&mut self, version: Option<i64>) -> Result<&mut Open, SdkError> {
        if self.open.as_ref().is_some_and(|o| o.version != version) {
            self.close_open()?;
        }
        if self.open.is_none() {
            self.seq += 1;
            let name = part_name(self.seq, &self.run.run_id);
            let tmp = self.layout.staging().join(format!("{name}.tmp"));
            let path = self.layout.dir_for(version).join(name);
            let props = self.run.encoding.properties(&self.stream, &self.keys);
            let writer = PartWriter::create(tmp, path.clone(), self.columns.arrow.clone(), props)
                .map_err(|e| self.write_error(&path, e))?;
            self.open_bytes = 0;
            self.open = Some(Open { writer, version });
        }
        self.open
            .as_mut()
            .ok_or_else(|| SdkError::Usage("no open file".into()))
    }

    /// Closes the open file, if any, into the batch's parts.
    fn close_open(&mut self) -> Result<(), SdkError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let bytes = open.writer.bytes();
        let path = open.writer.path().to_path_buf();
        let part = open
            .writer
            .close()
            .map_err(|e| self.write_error(&path, e))?;
        self.done.push(part);
        self.done_bytes += bytes;
        self.open_bytes = 0;
        Ok(())
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
            Some(t) if self.columns.metadata => {
                Some(singer_core::moment::unix_micros(t).ok_or_else(|| {
                    value_error(&self.stream, line, ValueError {
                        column: EXTRACTED_AT.into(),
                        message: "time_extracted is not a date-time a 64-bit microsecond timestamp holds".into(),
                    })
                })?)
            }
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
            .push(fields, &meta)
            .map_err(|e| value_error(&self.stream, line, e))?;
        self.rows += 1;
        let open_rows = self.open.as_ref().map_or(0, |o| o.writer.rows());
        if self.chunk.len() >= CHUNK_ROWS || open_rows + self.chunk.len() >= self.run.file_rows {
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
        self.write(&batch, rows.version)?;
        self.rows += n;
        Ok(())
    }

    fn buffered_rows(&self) -> usize {
        self.rows
    }

    fn buffered_bytes(&self) -> usize {
        self.done_bytes + self.open_bytes
    }

    fn take_batch(&mut self) -> Batch {
        let closed = self.flush_chunk().and_then(|()| self.close_open());
        self.rows = 0;
        self.done_bytes = 0;
        let parts = std::mem::take(&mut self.done);
        match closed {
            Ok(()) => Batch::Parts(parts),
            Err(e) => Batch::Failed(e),
        }
    }

    fn update_schema(&mut self, spec: Arc<StreamSpec>) -> Result<(), SdkError> {
        // The driver cut the batch before this SCHEMA; rows still waiting (none) would be
        // closed into the next batch rather than written with the new columns.
        self.flush_chunk()?;
        self.close_open()?;
        let (columns, changes) =
            FileColumns::new(&spec.schema, Some(&self.columns), self.run.metadata);
        log_changes(&self.stream, &changes);
        self.keys = spec.message.key_properties.clone();
        self.columns = Arc::new(columns);
        self.chunk = ChunkBuilder::new(self.columns.clone());
        Ok(())
    }
}
