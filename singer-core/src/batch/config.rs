//! `batch_config`, as the Meltano SDK names it: how a tap writes BATCH files.
//!
//! ```json
//! "batch_config": {
//!   "encoding": {"format": "parquet", "compression": "zstd"},
//!   "storage": {"root": "file:///var/spool/batches", "prefix": "orders-"},
//!   "batch_size": 100000
//! }
//! ```
//!
//! `format` is `jsonl` (compression `none`, `gzip` or `zstd`; default `gzip` as in the SDK) or
//! `parquet` (compression `zstd`, the default, `gzip` or `none`). `root` is a directory as a
//! local path or a `file://` URL, or an object-store URL (`s3://bucket/prefix` with the `s3`
//! feature; see [`super::store`]), where files are staged in a local temporary directory and
//! uploaded before their BATCH message. `batch_size` is the number of rows per file (default
//! 100 000).

use std::path::PathBuf;

use serde::Deserialize;

use super::location::local_path;

/// Rows per file when `batch_size` is not set.
pub const DEFAULT_ROWS_PER_FILE: usize = 100_000;

/// The file format of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON record object per line.
    Jsonl,
    /// Apache Parquet.
    Parquet,
}

/// The compression of a batch file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// None.
    None,
    /// gzip (jsonl: the whole file; parquet: per page).
    Gzip,
    /// zstd (jsonl: the whole file; parquet: per page).
    Zstd,
}

impl Compression {
    /// The name in BATCH messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Parses a name; `None` reads as `default`.
    pub fn parse(name: Option<&str>, default: Compression) -> Result<Self, String> {
        match name.map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("none") => Ok(Compression::None),
            Some("gzip") => Ok(Compression::Gzip),
            Some("zstd") => Ok(Compression::Zstd),
            Some(other) => Err(format!(
                "unsupported batch compression `{other}` (none, gzip or zstd)"
            )),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncoding {
    format: String,
    #[serde(default)]
    compression: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    root: String,
    #[serde(default)]
    prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBatchConfig {
    encoding: RawEncoding,
    storage: RawStorage,
    #[serde(default)]
    batch_size: Option<usize>,
}

/// A checked `batch_config`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// File format.
    pub format: Format,
    /// Compression.
    pub compression: Compression,
    /// The directory files are written to (for an object-store root, the local staging
    /// directory).
    pub root: PathBuf,
    /// An object-store root (`s3://bucket/prefix`) files are uploaded to, if any.
    pub remote: Option<String>,
    /// Prepended to every file name.
    pub prefix: String,
    /// Rows per file.
    pub rows_per_file: usize,
}

impl BatchConfig {
    /// Reads and checks a `batch_config` value; the error names the bad setting.
    pub fn from_value(v: &serde_json::Value) -> Result<Self, String> {
        let raw: RawBatchConfig =
            serde_json::from_value(v.clone()).map_err(|e| format!("batch_config: {e}"))?;
        let format = match raw.encoding.format.to_ascii_lowercase().as_str() {
            "jsonl" => Format::Jsonl,
            "parquet" => Format::Parquet,
            other => {
                return Err(format!(
                    "batch_config.encoding.format: unsupported `{other}` (jsonl or parquet)"
                ));
            }
        };
        let default = match format {
            Format::Jsonl => Compression::Gzip,
            Format::Parquet => Compression::Zstd,
        };
        let compression = Compression::parse(raw.encoding.compression.as_deref(), default)
            .map_err(|e| format!("batch_config.encoding.compression: {e}"))?;
        let (root, remote) = if super::store::is_remote(&raw.storage.root) {
            super::store::check(&raw.storage.root)
                .map_err(|e| format!("batch_config.storage.root: {e}"))?;
            let staging =
                std::env::temp_dir().join(format!("singer-batch-staging-{}", std::process::id()));
            (staging, Some(raw.storage.root.clone()))
        } else {
            let root = local_path(&raw.storage.root)
                .map_err(|e| format!("batch_config.storage.root: {e}"))?;
            (root, None)
        };
        let prefix = raw.storage.prefix.unwrap_or_default();
        if prefix.contains(['/', '\\', '\0']) {
            return Err("batch_config.storage.prefix: a file name prefix cannot hold `/`".into());
        }
        let rows_per_file = raw.batch_size.unwrap_or(DEFAULT_ROWS_PER_FILE);
        if rows_per_file == 0 {
            return Err("batch_config.batch_size: must be at least 1".into());
        }
        Ok(Self {
            format,
            compression,
            root,
            remote,
            prefix,
            rows_per_file,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn meltano_shape() {
        let c = BatchConfig::from_value(&json!({
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": "file:///tmp/b", "prefix": "x-"},
            "batch_size": 10
        }))
        .unwrap();
        assert_eq!(c.format, Format::Jsonl);
        assert_eq!(c.root, PathBuf::from("/tmp/b"));
        assert_eq!(c.rows_per_file, 10);
        let p = BatchConfig::from_value(&json!({
            "encoding": {"format": "parquet"}, "storage": {"root": "/tmp/b"}
        }))
        .unwrap();
        assert_eq!(p.compression, Compression::Zstd);
        for (bad, says) in [
            (
                json!({"encoding": {"format": "csv"}, "storage": {"root": "/t"}}),
                "format",
            ),
            (
                json!({"encoding": {"format": "jsonl", "compression": "lz4"}, "storage": {"root": "/t"}}),
                "compression",
            ),
            (
                json!({"encoding": {"format": "jsonl"}, "storage": {"root": "gs://b/x"}}),
                "root",
            ),
            (
                json!({"encoding": {"format": "jsonl"}, "storage": {"root": "/t"}, "batch_size": 0}),
                "batch_size",
            ),
        ] {
            let e = BatchConfig::from_value(&bad).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }
}
