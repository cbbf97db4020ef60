//! Reads the files a BATCH message names, in manifest order: JSONL (none, gzip or zstd) as
//! raw record objects, Parquet as Arrow record batches checked against the stream's columns.
//! Every error names the file.

use std::fs::File;
use std::io::{BufReader, Read};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::value::RawValue;

use super::BatchError;
use super::columns::BatchSchema;
use super::config::Compression;
use super::location::local_path;
use crate::io::LineReader;
use crate::message::BatchMessage;

/// Rows per Arrow batch read from Parquet.
const READ_BATCH_ROWS: usize = 8 * 1024;

/// Rows from one batch file.
pub enum Rows<'a> {
    /// One record object of a JSONL file.
    Json(&'a RawValue),
    /// Rows of a Parquet file; `positions[i]` is the stream column of the batch's column `i`.
    Arrow {
        /// The rows.
        batch: &'a RecordBatch,
        /// The stream column of each batch column.
        positions: &'a [usize],
    },
}

/// Calls `f` with the rows of every file of the manifest, in order. `schema` is needed for
/// Parquet; `f`'s errors pass through unchanged.
pub fn for_each_rows<E: From<BatchError>>(
    msg: &BatchMessage,
    schema: &BatchSchema,
    mut f: impl FnMut(&str, Rows<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let stream = msg.stream.as_str();
    let format = msg.encoding.format.to_ascii_lowercase();
    if format != "jsonl" && format != "parquet" {
        return Err(E::from(BatchError::new(
            stream,
            msg.manifest.first().cloned(),
            format!(
                "unsupported batch format `{}` (jsonl or parquet)",
                msg.encoding.format
            ),
        )));
    }
    for url in &msg.manifest {
        let err = |e: String| E::from(BatchError::new(stream, Some(url.clone()), e));
        let file = if super::store::is_remote(url) {
            super::store::download(url).map_err(err)?
        } else {
            let path = local_path(url).map_err(err)?;
            File::open(&path).map_err(|e| err(format!("cannot open: {e}")))?
        };
        if format == "parquet" {
            read_parquet(file, schema, url, |rows| f(url, rows))?;
            continue;
        }
        let declared = Compression::parse(msg.encoding.compression.as_deref(), Compression::None)
            .map_err(err)?;
        let mut file = BufReader::with_capacity(1 << 20, file);
        let compression = sniff(&mut file, declared).map_err(err)?;
        let reader: Box<dyn Read> = match compression {
            Compression::None => Box::new(file),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Compression::Zstd => {
                Box::new(zstd::Decoder::new(file).map_err(|e| err(e.to_string()))?)
            }
        };
        let mut lines = LineReader::new(BufReader::with_capacity(1 << 20, reader));
        while let Some(l) = lines
            .next_line()
            .map_err(|e| err(format!("cannot read ({}): {e}", compression.name())))?
        {
            let raw: &RawValue = serde_json::from_slice(l.bytes)
                .map_err(|e| err(format!("line {}: malformed JSON: {e}", l.number)))?;
            if !raw.get().starts_with('{') {
                return Err(err(format!(
                    "line {}: a record must be a JSON object",
                    l.number
                )));
            }
            f(url, Rows::Json(raw))?;
        }
    }
    Ok(())
}

/// The compression a JSONL file really has. The Meltano SDK (0.54) gzips every JSONL batch
/// file, also when its BATCH message says `none`: an uncompressed declaration is checked
/// against the gzip and zstd magic numbers. A file declared compressed must be so.
fn sniff(file: &mut BufReader<File>, declared: Compression) -> Result<Compression, String> {
    use std::io::BufRead;
    let head = file.fill_buf().map_err(|e| format!("cannot read: {e}"))?;
    let actual = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    match (declared, actual) {
        (d, a) if d == a => Ok(d),
        (Compression::None, a) => {
            tracing::debug!(
                compression = a.name(),
                "BATCH file declared uncompressed is compressed"
            );
            Ok(a)
        }
        (d, _) if head.is_empty() => Ok(d),
        (d, a) => Err(format!(
            "declared {} but the file is {}",
            d.name(),
            match a {
                Compression::None => "not compressed",
                other => other.name(),
            }
        )),
    }
}

fn read_parquet<E: From<BatchError>>(
    file: File,
    schema: &BatchSchema,
    url: &str,
    mut f: impl FnMut(Rows<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let stream = schema.stream.as_str();
    let err = |e: String| E::from(BatchError::new(stream, Some(url.to_string()), e));
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| err(format!("not a readable Parquet file: {e}")))?;
    let positions = schema.check_file(builder.schema()).map_err(|e| {
        err(format!(
            "does not match the SCHEMA of stream `{stream}`: {e}"
        ))
    })?;
    let reader = builder
        .with_batch_size(READ_BATCH_ROWS)
        .build()
        .map_err(|e| err(e.to_string()))?;
    for batch in reader {
        let batch = batch.map_err(|e| err(format!("cannot read: {e}")))?;
        f(Rows::Arrow {
            batch: &batch,
            positions: &positions,
        })?;
    }
    Ok(())
}
