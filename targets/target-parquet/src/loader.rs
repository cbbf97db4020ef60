//! The SDK loader: publishes a batch's files (sync, rename into the dataset folder, sync the
//! folder) and swaps table versions, off the async workers.

use std::collections::BTreeSet;
use std::sync::Arc;

use singer_core::sdk::SdkError;
use singer_core::sdk::target::{Loader, StreamSpec};

use crate::layout::{Activation, StreamLayout, sync_dir};
use crate::sink::Batch;
use crate::writer::Part;

/// Makes one stream's batches durable and visible.
pub struct ParquetLoader {
    stream: String,
    layout: StreamLayout,
}

impl ParquetLoader {
    /// The loader of `stream`.
    pub fn new(stream: String, layout: StreamLayout) -> Self {
        Self { stream, layout }
    }
}

/// Publishes files in order, then syncs their folders. When one fails, the files not yet
/// published are removed (dropped) and the error names the stream and the file.
fn publish(stream: &str, parts: Vec<Part>) -> Result<(), SdkError> {
    let mut dirs = BTreeSet::new();
    let (files, mut rows) = (parts.len(), 0);
    for part in parts {
        let path = part.path().to_path_buf();
        rows += part.rows();
        part.publish().map_err(|e| {
            SdkError::fatal(
                format!("stream `{stream}`: cannot publish {}", path.display()),
                e,
            )
        })?;
        if let Some(dir) = path.parent() {
            dirs.insert(dir.to_path_buf());
        }
    }
    for dir in dirs {
        sync_dir(&dir).map_err(|e| {
            SdkError::fatal(
                format!("stream `{stream}`: cannot sync {}", dir.display()),
                e,
            )
        })?;
    }
    tracing::debug!(stream, files, rows, "files published");
    Ok(())
}

async fn blocking<T: Send + 'static>(
    stream: &str,
    f: impl FnOnce() -> Result<T, SdkError> + Send + 'static,
) -> Result<T, SdkError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| SdkError::fatal(format!("stream `{stream}`: file task failed"), e))?
}

impl Loader for ParquetLoader {
    type Batch = Batch;

    async fn load(&mut self, batch: Batch) -> Result<(), SdkError> {
        let parts = match batch {
            Batch::Parts(parts) => parts,
            Batch::Failed(e) => return Err(e),
        };
        let stream = self.stream.clone();
        blocking(&self.stream, move || publish(&stream, parts)).await
    }

    async fn update_schema(&mut self, _: Arc<StreamSpec>) -> Result<(), SdkError> {
        Ok(())
    }

    async fn activate_version(&mut self, version: i64) -> Result<(), SdkError> {
        let (stream, layout) = (self.stream.clone(), self.layout.clone());
        let done = blocking(&self.stream, move || {
            layout.activate(version).map_err(|e| {
                SdkError::fatal(
                    format!(
                        "stream `{stream}`: cannot activate version {version} in {}",
                        layout.root().display()
                    ),
                    e,
                )
            })
        })
        .await?;
        match done {
            Activation::Begun { pointed } => {
                tracing::info!(stream = %self.stream, version, current = pointed, "table version begun")
            }
            Activation::Swapped { removed } => {
                tracing::info!(stream = %self.stream, version, ?removed, "table version activated")
            }
        }
        Ok(())
    }
}
