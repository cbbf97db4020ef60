//! Settings of target-jsonl.

use schemars::JsonSchema;
use serde::Deserialize;

/// Compression of the output files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Plain `.jsonl`.
    #[default]
    None,
    /// `.jsonl.gz`; each batch is one gzip member.
    Gzip,
    /// `.jsonl.zst`; each batch is one zstd frame.
    Zstd,
}

impl Compression {
    /// The file name suffix.
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => ".jsonl",
            Compression::Gzip => ".jsonl.gz",
            Compression::Zstd => ".jsonl.zst",
        }
    }
}

/// target-jsonl settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Directory that receives one file per stream; created if missing.
    #[serde(default = "default_destination")]
    pub destination_path: String,
    /// Output compression: `none`, `gzip` or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// Flush a stream's buffer after this many records.
    #[serde(default = "default_rows")]
    pub batch_size_rows: usize,
    /// Flush a stream's buffer once it holds about this many bytes.
    #[serde(default = "default_bytes")]
    pub batch_size_bytes: usize,
    /// Flush a record at most this many seconds after it arrived.
    #[serde(default = "default_age")]
    pub max_batch_age_seconds: f64,
    /// Validate every record against its stream's JSON Schema (slower).
    #[serde(default)]
    pub validate_records: bool,
}

fn default_destination() -> String {
    "output".to_string()
}

fn default_rows() -> usize {
    100_000
}

fn default_bytes() -> usize {
    32 * 1024 * 1024
}

fn default_age() -> f64 {
    30.0
}
