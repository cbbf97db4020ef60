//! A stream's files, written by two threads of their own so that value conversion, Parquet
//! encoding and compression run beside the input thread's JSON parsing: a converter turns
//! chunks of raw records into Arrow, and a files thread encodes them into the open file. The
//! sink hands over raw chunks (or Arrow chunks of Parquet BATCH rows); at most [`QUEUE`] wait
//! before each thread, so memory stays bounded and a slow disk slows the input. At each batch
//! cut the sink asks for the complete files. A value that does not fit its column fails the
//! batch like a failed write: the sink's next write, or the batch cut, reports it with the
//! record's line.
//!
//! [`Files`] does the work: it rolls a file every `file_rows` rows (exactly), at about
//! `file_bytes`, and when the table version or the schema changes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use arrow_array::RecordBatch;
use singer_core::sdk::SdkError;

use crate::layout::{StreamLayout, part_name};
use crate::rows::{ChunkBuilder, RawRows};
use crate::sink::{now_micros, value_error};
use crate::writer::{Encoding, Part, PartWriter};

/// Chunks waiting before each of the two threads at most.
pub const QUEUE: usize = 1;

/// How a stream's files are cut and named.
#[derive(Debug, Clone)]
pub struct FileRules {
    /// Page compression and row groups.
    pub encoding: Encoding,
    /// Rows per file.
    pub file_rows: usize,
    /// Approximate bytes per file.
    pub file_bytes: usize,
    /// The run's part of every file name.
    pub run_id: Arc<str>,
}

/// The open file and the table version of its rows.
struct Open {
    writer: PartWriter,
    version: Option<i64>,
}

/// Writes one stream's rows into files; the complete ones wait in `done` for the batch cut.
pub struct Files {
    stream: String,
    keys: Vec<String>,
    layout: StreamLayout,
    rules: FileRules,
    open: Option<Open>,
    done: Vec<Part>,
    done_bytes: usize,
    seq: u64,
}

impl Files {
    /// The files of `stream` under `layout`.
    pub fn new(stream: &str, keys: Vec<String>, layout: StreamLayout, rules: FileRules) -> Self {
        Self {
            stream: stream.to_string(),
            keys,
            layout,
            rules,
            open: None,
            done: Vec::new(),
            done_bytes: 0,
            seq: 0,
        }
    }

    fn error(
        &self,
        path: &std::path::Path,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> SdkError {
        SdkError::fatal(
            format!("stream `{}`: cannot write {}", self.stream, path.display()),
            e,
        )
    }

    /// Approximate bytes of the batch so far (complete files and the open one).
    pub fn bytes(&self) -> usize {
        self.done_bytes + self.open.as_ref().map_or(0, |o| o.writer.bytes())
    }

    /// Writes rows of one version, rolling files at `file_rows` rows or about `file_bytes`.
    pub fn write(&mut self, batch: &RecordBatch, version: Option<i64>) -> Result<(), SdkError> {
        let n = batch.num_rows();
        let mut offset = 0;
        while offset < n {
            let (file_rows, file_bytes) = (self.rules.file_rows, self.rules.file_bytes);
            let open = self.open_for(batch, version)?;
            let take = (file_rows - open.writer.rows()).min(n - offset);
            if let Err(e) = open.writer.write(&batch.slice(offset, take)) {
                let path = open.writer.path().to_path_buf();
                return Err(self.error(&path, e));
            }
            offset += take;
            if open.writer.rows() >= file_rows || open.writer.bytes() >= file_bytes {
                self.close_open()?;
            }
        }
        Ok(())
    }

    /// The open file for rows of `version` with the schema of `batch`, closing the open one
    /// first when either differs.
    fn open_for(
        &mut self,
        batch: &RecordBatch,
        version: Option<i64>,
    ) -> Result<&mut Open, SdkError> {
        let stale = self
            .open
            .as_ref()
            .is_some_and(|o| o.version != version || o.writer.schema() != batch.schema_ref());
        if stale {
            self.close_open()?;
        }
        if self.open.is_none() {
            self.seq += 1;
            let name = part_name(self.seq, &self.rules.run_id);
            let tmp = self.layout.staging().join(format!("{name}.tmp"));
            let path = self.layout.dir_for(version).join(name);
            let props = self.rules.encoding.properties(&self.stream, &self.keys);
            let writer = PartWriter::create(tmp, path.clone(), batch.schema(), props)
                .map_err(|e| self.error(&path, e))?;
            self.open = Some(Open { writer, version });
        }
        self.open
            .as_mut()
            .ok_or_else(|| SdkError::Usage("no open file".into()))
    }

    /// Closes the open file, if any, into the complete ones.
    fn close_open(&mut self) -> Result<(), SdkError> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        let bytes = open.writer.bytes();
        let path = open.writer.path().to_path_buf();
        let part = open.writer.close().map_err(|e| self.error(&path, e))?;
        self.done.push(part);
        self.done_bytes += bytes;
        Ok(())
    }

    /// Closes the open file and hands over every complete file.
    pub fn take(&mut self) -> Result<Vec<Part>, SdkError> {
        let closed = self.close_open();
        self.done_bytes = 0;
        let parts = std::mem::take(&mut self.done);
        closed.map(|()| parts)
    }

    /// Drops the open and complete files (their temporary files are removed).
    fn abandon(&mut self) {
        self.open = None;
        self.done.clear();
        self.done_bytes = 0;
    }
}

/// What the sink asks of the converter thread.
enum Job {
    Write(RecordBatch, Option<i64>),
    Rows(RawRows, Option<i64>),
    Keys(Vec<String>),
    Take(SyncSender<Result<Vec<Part>, SdkError>>),
}

/// What the converter passes on to the files thread, in the sink's order.
enum Encode {
    Write(RecordBatch, Option<i64>),
    /// A chunk could not be converted: the batch fails.
    Fail(SdkError),
    Keys(Vec<String>),
    Take(SyncSender<Result<Vec<Part>, SdkError>>),
}

/// [`Files`] on their own thread, behind a thread converting raw records to Arrow.
pub struct Encoder {
    stream: String,
    tx: Option<SyncSender<Job>>,
    /// Chunks converted, to be filled again (no large buffer is freed and allocated again).
    spare: Receiver<RawRows>,
    failed: Arc<AtomicBool>,
    bytes: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Encoder {
    /// Starts the threads.
    pub fn spawn(files: Files) -> Result<Self, SdkError> {
        let stream = files.stream.clone();
        let cannot = |e| SdkError::fatal(format!("stream `{stream}`: cannot start its encoder"), e);
        let (tx, rx) = sync_channel(QUEUE);
        let (encode_tx, encode_rx) = sync_channel(QUEUE);
        let (spent, spare) = channel();
        let failed = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicUsize::new(0));
        let (f, b) = (failed.clone(), bytes.clone());
        let files_thread = std::thread::Builder::new()
            .name("parquet-encoder".into())
            .spawn(move || run(files, encode_rx, &f, &b))
            .map_err(cannot)?;
        let name = stream.clone();
        let convert_thread = std::thread::Builder::new()
            .name("parquet-convert".into())
            .spawn(move || run_convert(&name, rx, &encode_tx, &spent))
            .map_err(cannot)?;
        Ok(Self {
            stream,
            tx: Some(tx),
            spare,
            failed,
            bytes,
            threads: vec![convert_thread, files_thread],
        })
    }

    fn send(&self, job: Job) -> Result<(), SdkError> {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(job).is_ok());
        if sent { Ok(()) } else { Err(self.stopped()) }
    }

    fn stopped(&self) -> SdkError {
        SdkError::fatal(
            format!("stream `{}`: the file encoder stopped", self.stream),
            std::io::Error::other("encoder thread ended"),
        )
    }

    /// Queues rows of one version. When an earlier write failed, returns that error.
    pub fn write(&self, batch: RecordBatch, version: Option<i64>) -> Result<(), SdkError> {
        self.queue(Job::Write(batch, version))
    }

    /// Queues records of one version for conversion. When an earlier write or conversion
    /// failed, returns that error.
    pub fn write_raw(&self, rows: RawRows, version: Option<i64>) -> Result<(), SdkError> {
        self.queue(Job::Rows(rows, version))
    }

    /// A converted chunk to fill again, if one is back.
    pub fn spare(&self) -> Option<RawRows> {
        self.spare.try_recv().ok()
    }

    fn queue(&self, job: Job) -> Result<(), SdkError> {
        if self.failed.load(Ordering::Acquire) {
            return Err(self.take().err().unwrap_or_else(|| self.stopped()));
        }
        self.send(job)
    }

    /// The key properties written into new files' metadata.
    pub fn set_keys(&self, keys: Vec<String>) -> Result<(), SdkError> {
        self.send(Job::Keys(keys))
    }

    /// Waits for the queued rows, closes the open file and returns every complete file.
    pub fn take(&self) -> Result<Vec<Part>, SdkError> {
        let (reply, rx) = sync_channel(1);
        self.send(Job::Take(reply))?;
        rx.recv().map_err(|_| self.stopped())?
    }

    /// Approximate bytes of the batch so far, as of the last chunk encoded.
    pub fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // Ends the threads; the files thread drops (removes) files never handed over.
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Converts a chunk of raw records into Arrow, reusing `chunk` while the columns stay.
fn convert(
    stream: &str,
    chunk: &mut Option<ChunkBuilder>,
    rows: &RawRows,
) -> Result<RecordBatch, SdkError> {
    let builder = match chunk {
        Some(b) if Arc::ptr_eq(b.columns(), rows.columns()) => b,
        _ => chunk.insert(ChunkBuilder::new(rows.columns().clone())),
    };
    if let Err(e) = builder.push_raw(rows) {
        *chunk = None; // inconsistent now
        return Err(value_error(stream, e.line, e.error));
    }
    builder.finish(now_micros()).map_err(|e| {
        SdkError::fatal(
            format!("stream `{stream}`: cannot build rows"),
            std::io::Error::other(e),
        )
    })
}

/// The converter thread: chunks of raw records become Arrow batches; everything else passes
/// through in order. After a failed chunk no other is converted.
fn run_convert(stream: &str, rx: Receiver<Job>, tx: &SyncSender<Encode>, spent: &Sender<RawRows>) {
    let mut chunk = None;
    let mut failed = false;
    for job in rx {
        let next = match job {
            Job::Write(batch, version) => Encode::Write(batch, version),
            Job::Rows(_, _) if failed => continue,
            Job::Rows(rows, version) => {
                let converted = convert(stream, &mut chunk, &rows);
                let _ = spent.send(rows);
                match converted {
                    Ok(batch) => Encode::Write(batch, version),
                    Err(e) => {
                        failed = true;
                        Encode::Fail(e)
                    }
                }
            }
            Job::Keys(keys) => Encode::Keys(keys),
            Job::Take(reply) => {
                failed = false;
                Encode::Take(reply)
            }
        };
        if tx.send(next).is_err() {
            return;
        }
    }
}

/// The files thread.
fn run(mut files: Files, rx: Receiver<Encode>, failed: &AtomicBool, bytes: &AtomicUsize) {
    let mut error = None;
    for job in rx {
        let written = match job {
            Encode::Write(_, _) | Encode::Fail(_) if error.is_some() => continue,
            Encode::Write(batch, version) => files.write(&batch, version),
            Encode::Fail(e) => Err(e),
            Encode::Keys(keys) => {
                files.keys = keys;
                continue;
            }
            Encode::Take(reply) => {
                let result = match error.take() {
                    Some(e) => Err(e),
                    None => files.take(),
                };
                bytes.store(0, Ordering::Relaxed);
                let _ = reply.send(result);
                continue;
            }
        };
        match written {
            Ok(()) => bytes.store(files.bytes(), Ordering::Relaxed),
            Err(e) => {
                files.abandon();
                error = Some(e);
                failed.store(true, Ordering::Release);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::Compression;
    use arrow_array::Int64Array;
    use arrow_schema::{DataType, Field, Schema};

    fn rules() -> FileRules {
        FileRules {
            encoding: Encoding {
                compression: Compression::Zstd,
                row_group_rows: 4,
            },
            file_rows: 5,
            file_bytes: usize::MAX,
            run_id: "run".into(),
        }
    }

    fn ids(range: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(range))]).unwrap()
    }

    #[test]
    fn files_roll_exactly_and_by_version() {
        let dir = tempfile::tempdir().unwrap();
        let layout = StreamLayout::new(dir.path(), "s");
        layout.prepare().unwrap();
        let encoder = Encoder::spawn(Files::new("s", vec![], layout.clone(), rules())).unwrap();
        encoder.write(ids(0..12), None).unwrap();
        encoder.write(ids(12..13), Some(3)).unwrap();
        let parts = encoder.take().unwrap();
        let rows: Vec<usize> = parts.iter().map(Part::rows).collect();
        assert_eq!(rows, vec![5, 5, 2, 1]);
        assert!(parts[3].path().starts_with(layout.version_dir(3)));
        assert_eq!(std::fs::read_dir(layout.staging()).unwrap().count(), 4);
        drop(parts); // never published: the temporary files go
        assert_eq!(std::fs::read_dir(layout.staging()).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_write_is_reported_naming_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        // No staging folder: the first file cannot be created.
        let layout = StreamLayout::new(dir.path(), "s");
        let encoder = Encoder::spawn(Files::new("s", vec![], layout, rules())).unwrap();
        encoder.write(ids(0..3), None).unwrap();
        let err = encoder.take().unwrap_err().to_string();
        assert!(err.starts_with("stream `s`: cannot write"), "{err}");
        encoder.write(ids(0..3), None).unwrap_err();
    }
}
