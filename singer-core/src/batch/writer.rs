//! Writes a stream's records into BATCH files: rolled every `rows_per_file` rows, each file
//! written under a temporary name, synced and renamed, so a manifest never names a partial
//! file. Memory stays bounded: JSONL streams through its compressor, Parquet holds at most
//! one row group (64 Ki rows) of encoded pages and one 8 Ki-row Arrow batch.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as PqCompression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::value::RawValue;

use super::BatchError;
use super::columns::BatchSchema;
use super::config::{BatchConfig, Compression, Format};
use super::from_json::RowsBuilder;
use super::location::file_url;
use crate::message::{BatchEncoding, BatchMessage};
use crate::schema::StreamSchema;

/// Writers made by this process, numbered into file names.
static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Rows per Arrow batch handed to the Parquet writer.
const ARROW_BATCH_ROWS: usize = 8 * 1024;
/// Rows per Parquet row group.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

enum Open {
    Jsonl(Box<dyn JsonlOut>),
    Parquet(Box<ArrowWriter<File>>, RowsBuilder),
}

/// A JSONL file being written through its compressor.
trait JsonlOut: Write + Send {
    fn finish_file(self: Box<Self>) -> std::io::Result<File>;
}

impl JsonlOut for BufWriter<File> {
    fn finish_file(self: Box<Self>) -> std::io::Result<File> {
        self.into_inner().map_err(|e| e.into_error())
    }
}

impl JsonlOut for flate2::write::GzEncoder<BufWriter<File>> {
    fn finish_file(self: Box<Self>) -> std::io::Result<File> {
        (*self).finish()?.into_inner().map_err(|e| e.into_error())
    }
}

impl JsonlOut for zstd::Encoder<'static, BufWriter<File>> {
    fn finish_file(self: Box<Self>) -> std::io::Result<File> {
        (*self).finish()?.into_inner().map_err(|e| e.into_error())
    }
}

struct Current {
    tmp: PathBuf,
    path: PathBuf,
    rows: usize,
    out: Open,
}

/// Writes one stream's BATCH files.
pub struct BatchWriter {
    stream: String,
    config: BatchConfig,
    schema: Arc<BatchSchema>,
    version: Option<i64>,
    stem: String,
    seq: u64,
    current: Option<Current>,
}

impl BatchWriter {
    /// A writer for `stream`; creates the storage directory.
    pub fn new(
        stream: &str,
        schema: &StreamSchema,
        config: &BatchConfig,
    ) -> Result<Self, BatchError> {
        std::fs::create_dir_all(&config.root).map_err(|e| {
            BatchError::new(
                stream,
                Some(config.root.display().to_string()),
                e.to_string(),
            )
        })?;
        let safe: String = stream
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        Ok(Self {
            stream: stream.to_string(),
            config: config.clone(),
            schema: Arc::new(BatchSchema::new(schema)),
            version: None,
            // Time, process and a per-process writer number: two writers of one stream made
            // in the same millisecond never name the same file.
            stem: format!(
                "{}{safe}-{millis}-{}-{}",
                config.prefix,
                std::process::id(),
                WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
            seq: 0,
            current: None,
        })
    }

    /// The table version BATCH messages carry from now on.
    pub fn set_version(&mut self, version: Option<i64>) {
        self.version = version;
    }

    /// The table version BATCH messages carry.
    pub fn version(&self) -> Option<i64> {
        self.version
    }

    /// A new schema for the stream: call [`Self::flush`] first (later rows use the new columns).
    pub fn set_schema(&mut self, schema: &StreamSchema) {
        self.schema = Arc::new(BatchSchema::new(schema));
    }

    /// Rows in the file being written.
    pub fn pending_rows(&self) -> usize {
        self.current.as_ref().map_or(0, |c| c.rows)
    }

    /// Adds a record. Returns the BATCH message of a file it completed.
    pub fn write(&mut self, record: &RawValue) -> Result<Option<BatchMessage>, BatchError> {
        if self.current.is_none() {
            self.current = Some(self.open()?);
        }
        let stream = &self.stream;
        let Some(cur) = self.current.as_mut() else {
            return Ok(None);
        };
        let file = || Some(cur.path.display().to_string());
        match &mut cur.out {
            Open::Jsonl(out) => out
                .write_all(record.get().as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| BatchError::new(stream, file(), e.to_string()))?,
            Open::Parquet(writer, rows) => {
                rows.push(record)
                    .map_err(|e| BatchError::new(stream, file(), e.to_string()))?;
                if rows.len() >= ARROW_BATCH_ROWS {
                    writer
                        .write(&rows.finish())
                        .map_err(|e| BatchError::new(stream, file(), e.to_string()))?;
                }
            }
        }
        cur.rows += 1;
        if cur.rows >= self.config.rows_per_file {
            return self.flush();
        }
        Ok(None)
    }

    /// Completes the file being written, if any, and returns its BATCH message.
    pub fn flush(&mut self) -> Result<Option<BatchMessage>, BatchError> {
        let Some(cur) = self.current.take() else {
            return Ok(None);
        };
        let file = Some(cur.path.display().to_string());
        let err = |e: String| BatchError::new(&self.stream, file.clone(), e);
        let f = match cur.out {
            Open::Jsonl(out) => out.finish_file().map_err(|e| err(e.to_string()))?,
            Open::Parquet(mut writer, mut rows) => {
                if !rows.is_empty() {
                    writer
                        .write(&rows.finish())
                        .map_err(|e| err(e.to_string()))?;
                }
                writer.into_inner().map_err(|e| err(e.to_string()))?
            }
        };
        f.sync_all().map_err(|e| err(e.to_string()))?;
        drop(f);
        std::fs::rename(&cur.tmp, &cur.path).map_err(|e| err(e.to_string()))?;
        let url = match &self.config.remote {
            None => file_url(&cur.path),
            Some(root) => {
                let name = cur
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
                let url = super::store::join(root, &name.unwrap_or_default());
                super::store::upload(&cur.path, &url).map_err(err)?;
                let _ = std::fs::remove_file(&cur.path);
                url
            }
        };
        Ok(Some(BatchMessage {
            stream: self.stream.clone(),
            encoding: BatchEncoding {
                format: match self.config.format {
                    Format::Jsonl => "jsonl".into(),
                    Format::Parquet => "parquet".into(),
                },
                compression: Some(self.config.compression.name().into()),
            },
            manifest: vec![url],
            version: self.version,
        }))
    }

    fn open(&mut self) -> Result<Current, BatchError> {
        self.seq += 1;
        let ext = match (self.config.format, self.config.compression) {
            (Format::Jsonl, Compression::None) => "jsonl",
            (Format::Jsonl, Compression::Gzip) => "jsonl.gz",
            (Format::Jsonl, Compression::Zstd) => "jsonl.zst",
            (Format::Parquet, _) => "parquet",
        };
        let name = format!("{}-{:06}.{ext}", self.stem, self.seq);
        let path = self.config.root.join(&name);
        let tmp = self.config.root.join(format!(".{name}.partial"));
        let err = |e: String| BatchError::new(&self.stream, Some(tmp.display().to_string()), e);
        let file = File::create(&tmp).map_err(|e| err(e.to_string()))?;
        let buf = BufWriter::with_capacity(1 << 20, file);
        let out = match (self.config.format, self.config.compression) {
            (Format::Jsonl, Compression::None) => Open::Jsonl(Box::new(buf)),
            (Format::Jsonl, Compression::Gzip) => Open::Jsonl(Box::new(
                flate2::write::GzEncoder::new(buf, flate2::Compression::fast()),
            )),
            (Format::Jsonl, Compression::Zstd) => Open::Jsonl(Box::new(
                zstd::Encoder::new(buf, 3).map_err(|e| err(e.to_string()))?,
            )),
            (Format::Parquet, c) => {
                let compression = match c {
                    Compression::None => PqCompression::UNCOMPRESSED,
                    Compression::Gzip => PqCompression::GZIP(GzipLevel::default()),
                    Compression::Zstd => PqCompression::ZSTD(ZstdLevel::default()),
                };
                let props = WriterProperties::builder()
                    .set_compression(compression)
                    .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
                    .set_created_by(format!("singer-rs {}", env!("CARGO_PKG_VERSION")))
                    .build();
                let file = buf.into_inner().map_err(|e| err(e.to_string()))?;
                let writer = ArrowWriter::try_new(file, self.schema.arrow.clone(), Some(props))
                    .map_err(|e| err(e.to_string()))?;
                Open::Parquet(Box::new(writer), RowsBuilder::new(self.schema.clone()))
            }
        };
        Ok(Current {
            tmp,
            path,
            rows: 0,
            out,
        })
    }
}

impl Drop for BatchWriter {
    fn drop(&mut self) {
        // An unfinished file is never named in a manifest: remove it.
        if let Some(cur) = self.current.take() {
            let _ = std::fs::remove_file(&cur.tmp);
        }
    }
}
