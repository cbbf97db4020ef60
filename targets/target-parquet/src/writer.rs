//! One Parquet file: written under a temporary name in the stream's hidden staging folder,
//! closed (footer written), then published by the loader: synced, renamed into its dataset
//! folder, the folder synced. A file that is never published is removed.
//!
//! Memory stays bounded: the writer holds at most one row group of encoded, compressed pages
//! (`row_group_rows` rows, and at most [`ROW_GROUP_BYTES`]).

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;

use crate::config::Compression;
use crate::layout::create_dirs;

/// A row group is closed once its encoded pages reach about this many bytes.
pub const ROW_GROUP_BYTES: usize = 64 * 1024 * 1024;

/// How files are encoded.
#[derive(Debug, Clone)]
pub struct Encoding {
    /// Page compression.
    pub compression: Compression,
    /// Rows per row group.
    pub row_group_rows: usize,
}

impl Encoding {
    /// Writer properties, with key-value metadata naming the stream and its keys.
    pub fn properties(&self, stream: &str, keys: &[String]) -> WriterProperties {
        let keys = serde_json::to_string(keys).unwrap_or_default();
        WriterProperties::builder()
            .set_compression(self.compression.codec())
            .set_max_row_group_row_count(Some(self.row_group_rows))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .set_created_by(format!("target-parquet {}", env!("CARGO_PKG_VERSION")))
            .set_key_value_metadata(Some(vec![
                KeyValue::new("singer.stream".into(), stream.to_string()),
                KeyValue::new("singer.key_properties".into(), keys),
            ]))
            .build()
    }
}

/// A file being written.
pub struct PartWriter {
    writer: Option<ArrowWriter<File>>,
    schema: SchemaRef,
    tmp: PathBuf,
    path: PathBuf,
    rows: usize,
}

impl PartWriter {
    /// Creates `tmp` (which must not exist) to be published as `path`.
    pub fn create(
        tmp: PathBuf,
        path: PathBuf,
        schema: SchemaRef,
        props: WriterProperties,
    ) -> Result<Self, ParquetError> {
        let file = File::options().write(true).create_new(true).open(&tmp)?;
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(props));
        let writer = match writer {
            Ok(w) => w,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        };
        Ok(Self {
            writer: Some(writer),
            schema,
            tmp,
            path,
            rows: 0,
        })
    }

    /// The path the file will have.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema of the file.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows written.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Approximate size of the file so far (written plus the open row group, encoded).
    pub fn bytes(&self) -> usize {
        self.writer
            .as_ref()
            .map_or(0, |w| w.bytes_written() + w.in_progress_size())
    }

    /// Appends rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ParquetError> {
        let writer = self
            .writer
            .as_mut()
            .ok_or_else(|| ParquetError::General("the file is closed".into()))?;
        writer.write(batch)?;
        self.rows += batch.num_rows();
        Ok(())
    }

    /// Writes the footer; the file is complete but not yet durable nor visible.
    pub fn close(mut self) -> Result<Part, ParquetError> {
        let writer = self
            .writer
            .take()
            .ok_or_else(|| ParquetError::General("the file is closed".into()))?;
        let file = writer.into_inner()?;
        Ok(Part {
            file: Some(file),
            tmp: std::mem::take(&mut self.tmp),
            path: std::mem::take(&mut self.path),
            rows: self.rows,
        })
    }
}

impl Drop for PartWriter {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A complete file waiting to be published.
#[derive(Debug)]
pub struct Part {
    file: Option<File>,
    tmp: PathBuf,
    path: PathBuf,
    rows: usize,
}

impl Part {
    /// The path the file will have.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows in the file.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Syncs the file and renames it into its folder (created if missing). The caller syncs
    /// the folder afterwards (once for several files).
    pub fn publish(mut self) -> io::Result<()> {
        if let Some(file) = self.file.take() {
            file.sync_all()?;
        }
        if let Some(dir) = self.path.parent() {
            create_dirs(dir)?;
        }
        std::fs::rename(&self.tmp, &self.path)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}
