//! The SDK sink (buffers raw record lines) and loader (appends them durably).

use std::sync::Arc;

use singer_core::RecordRef;
use singer_core::record::RawFields;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::{Loader, StreamSink, StreamSpec};

use crate::files::StreamFiles;

/// Consecutive records of one table version, as newline-terminated JSON.
type Segment = (Option<i64>, Vec<u8>);

/// Buffers records as JSON lines, grouped into runs of the same version.
#[derive(Default)]
pub struct JsonlSink {
    segments: Vec<Segment>,
    rows: usize,
    bytes: usize,
}

impl StreamSink for JsonlSink {
    type Batch = Vec<Segment>;
    type Loader = JsonlLoader;

    fn accept(
        &mut self,
        r: &RecordRef<'_>,
        _: Option<&RawFields<'_>>,
        _: u64,
    ) -> Result<(), SdkError> {
        let raw = r.record.get().as_bytes();
        match self.segments.last_mut() {
            Some((v, buf)) if *v == r.version => {
                buf.extend_from_slice(raw);
                buf.push(b'\n');
            }
            _ => {
                let mut buf = Vec::with_capacity(64 * 1024);
                buf.extend_from_slice(raw);
                buf.push(b'\n');
                self.segments.push((r.version, buf));
            }
        }
        self.rows += 1;
        self.bytes += raw.len() + 1;
        Ok(())
    }

    fn buffered_rows(&self) -> usize {
        self.rows
    }

    fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    fn take_batch(&mut self) -> Vec<Segment> {
        self.rows = 0;
        self.bytes = 0;
        std::mem::take(&mut self.segments)
    }

    fn update_schema(&mut self, _: Arc<StreamSpec>) -> Result<(), SdkError> {
        Ok(())
    }
}

/// Writes one stream's batches.
pub struct JsonlLoader {
    stream: String,
    files: StreamFiles,
}

impl JsonlLoader {
    pub(crate) fn new(stream: String, files: StreamFiles) -> Self {
        Self { stream, files }
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> SdkError {
        SdkError::fatal(format!("stream `{}`: {what}", self.stream), e)
    }
}

impl Loader for JsonlLoader {
    type Batch = Vec<Segment>;

    async fn load(&mut self, batch: Vec<Segment>) -> Result<(), SdkError> {
        for (version, lines) in batch {
            let path = match version {
                Some(v) => self.files.staging(v),
                None => self.files.main(),
            };
            self.files
                .append(&path, &lines)
                .map_err(|e| self.io_error(&format!("cannot write {}", path.display()), e))?;
        }
        Ok(())
    }

    async fn update_schema(&mut self, _: Arc<StreamSpec>) -> Result<(), SdkError> {
        Ok(())
    }

    async fn activate_version(&mut self, version: i64) -> Result<(), SdkError> {
        let activated = self
            .files
            .activate(version)
            .map_err(|e| self.io_error("cannot activate version", e))?;
        if activated {
            tracing::info!(stream = %self.stream, version, "table version activated");
        } else {
            self.files
                .begin_version(version)
                .map_err(|e| self.io_error("cannot begin version", e))?;
        }
        Ok(())
    }
}
