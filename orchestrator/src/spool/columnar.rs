//! Parquet spool batches (`format = "parquet"`): the RECORDs of a spooled batch are written
//! into Parquet files, one set per stream, and the batch file holds BATCH messages naming
//! them in their place. Every other line stays where it was: before a STATE, a SCHEMA or an
//! ACTIVATE_VERSION the open files are completed and their BATCH lines written first, so the
//! target commits the same records before the same states as with RECORDs.
//!
//! What Parquet cannot carry: a RECORD's `time_extracted` (BATCH messages have none). A value
//! the stream's Arrow column cannot hold (a date-time at `infinity`, say) stops the run with
//! an error naming stream and column; such sources spool as `jsonl`.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use singer_core::StreamSchema;
use singer_core::batch::{BatchConfig, BatchWriter, config};
use singer_core::message::{Message, MessageRef, parse_line};

/// Turns RECORD lines into Parquet files and BATCH lines.
pub(crate) struct Columnar {
    dir: PathBuf,
    /// The folder in object storage the files are uploaded to, if any.
    remote: Option<String>,
    rows_per_file: usize,
    schemas: HashMap<String, StreamSchema>,
    writers: BTreeMap<String, BatchWriter>,
}

impl Columnar {
    pub(crate) fn new(rows_per_file: u64) -> Self {
        Self {
            dir: PathBuf::new(),
            remote: None,
            rows_per_file: usize::try_from(rows_per_file).unwrap_or(usize::MAX).max(1),
            schemas: HashMap::new(),
            writers: BTreeMap::new(),
        }
    }

    /// The folder the next files are written to (one per spool batch).
    pub(crate) fn set_dir(&mut self, dir: &Path) {
        self.dir = dir.to_path_buf();
    }

    /// The object-store folder the next files are uploaded to (their BATCH lines name them
    /// there); `None` keeps them in the local folder.
    pub(crate) fn set_remote(&mut self, remote: Option<String>) {
        self.remote = remote;
    }

    /// A SCHEMA line: completes the stream's open file and keeps the schema for its records.
    pub(crate) fn schema(
        &mut self,
        stream: &str,
        line: &[u8],
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        self.flush_stream(stream, out)?;
        self.writers.remove(stream);
        let compiled = match Message::parse(line) {
            Ok(Some(Message::Schema(s))) => {
                StreamSchema::compile(&s.stream, &s.schema, &s.key_properties).ok()
            }
            _ => None,
        };
        match compiled {
            Some(s) => self.schemas.insert(stream.to_string(), s),
            // The target will judge this schema; its records pass through as RECORDs.
            None => self.schemas.remove(stream),
        };
        Ok(())
    }

    /// A RECORD line: written into its stream's file. `false` when it must stay a RECORD
    /// line (no usable SCHEMA before it, or not a well-formed RECORD: the target reports it).
    pub(crate) fn record(&mut self, line: &[u8], out: &mut impl Write) -> std::io::Result<bool> {
        let Ok(MessageRef::Record(r)) = parse_line(line) else {
            return Ok(false);
        };
        let stream = r.stream.as_ref();
        let Some(schema) = self.schemas.get(stream) else {
            return Ok(false);
        };
        if !self.writers.contains_key(stream) {
            let cfg = BatchConfig {
                format: config::Format::Parquet,
                compression: config::Compression::Zstd,
                root: self.dir.clone(),
                remote: self.remote.clone(),
                prefix: String::new(),
                rows_per_file: self.rows_per_file,
            };
            let w = BatchWriter::new(stream, schema, &cfg).map_err(std::io::Error::other)?;
            self.writers.insert(stream.to_string(), w);
        }
        let Some(w) = self.writers.get_mut(stream) else {
            return Ok(false);
        };
        if w.version() != r.version {
            if let Some(b) = w.flush().map_err(std::io::Error::other)? {
                write_line(out, &Message::Batch(b))?;
            }
            w.set_version(r.version);
        }
        let done = w.write(r.record).map_err(|e| {
            if self.remote.is_some() && e.message.contains("upload") {
                // A completed file that could not be stored, not a value.
                return std::io::Error::other(e.to_string());
            }
            std::io::Error::other(format!(
                "{e} (the spool's parquet format cannot hold this value; spool this pipeline as jsonl)"
            ))
        })?;
        if let Some(b) = done {
            write_line(out, &Message::Batch(b))?;
        }
        Ok(true)
    }

    /// Completes one stream's open file, writing its BATCH line.
    pub(crate) fn flush_stream(
        &mut self,
        stream: &str,
        out: &mut impl Write,
    ) -> std::io::Result<()> {
        if let Some(w) = self.writers.get_mut(stream)
            && let Some(b) = w.flush().map_err(std::io::Error::other)?
        {
            write_line(out, &Message::Batch(b))?;
        }
        Ok(())
    }

    /// Completes every open file (before a STATE, or when the spool batch is sealed).
    pub(crate) fn flush_all(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        for w in self.writers.values_mut() {
            if let Some(b) = w.flush().map_err(std::io::Error::other)? {
                write_line(out, &Message::Batch(b))?;
            }
        }
        Ok(())
    }

    /// The spool batch is sealed: its files are complete; the next batch gets new writers.
    pub(crate) fn seal(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        self.flush_all(out)?;
        self.writers.clear();
        Ok(())
    }
}

fn write_line(out: &mut impl Write, m: &Message) -> std::io::Result<()> {
    out.write_all(m.to_line().as_bytes())?;
    out.write_all(b"\n")
}
