//! File naming, compression and durable writes for one stream.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::Compression;

/// The files of one stream.
#[derive(Debug, Clone)]
pub struct StreamFiles {
    dir: PathBuf,
    base: String,
    compression: Compression,
}

/// Percent-encodes every byte outside `A-Z a-z 0-9 _ -` (and a leading `.`).
pub fn file_stem(stream: &str) -> String {
    let mut out = String::with_capacity(stream.len());
    for (i, b) in stream.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    out
}

impl StreamFiles {
    /// The files of `stream` in `dir`.
    pub fn new(dir: &Path, stream: &str, compression: Compression) -> Self {
        Self {
            dir: dir.to_path_buf(),
            base: file_stem(stream),
            compression,
        }
    }

    /// The stream's file.
    pub fn main(&self) -> PathBuf {
        self.dir
            .join(format!("{}{}", self.base, self.compression.suffix()))
    }

    /// The staging file of a table version.
    pub fn staging(&self, version: i64) -> PathBuf {
        self.dir.join(format!(
            "{}.v{version}{}.partial",
            self.base,
            self.compression.suffix()
        ))
    }

    /// Appends encoded lines to `path` and syncs them to disk.
    pub fn append(&self, path: &Path, lines: &[u8]) -> io::Result<()> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let file = match self.compression {
            Compression::None => {
                let mut f = file;
                f.write_all(lines)?;
                f
            }
            Compression::Gzip => {
                let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
                enc.write_all(lines)?;
                enc.finish()?
            }
            Compression::Zstd => {
                let mut enc = zstd::Encoder::new(file, 3)?;
                enc.write_all(lines)?;
                enc.finish()?
            }
        };
        file.sync_data()
    }

    /// Creates an empty staging file for `version` unless it exists.
    pub fn begin_version(&self, version: i64) -> io::Result<()> {
        let path = self.staging(version);
        if !path.exists() {
            File::create(&path)?.sync_all()?;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Atomically replaces the stream's file by the staging file of `version`, then removes
    /// staging files of older versions. Returns false when there is no staging file.
    pub fn activate(&self, version: i64) -> io::Result<bool> {
        let staging = self.staging(version);
        if !staging.exists() {
            return Ok(false);
        }
        std::fs::rename(&staging, self.main())?;
        sync_dir(&self.dir)?;
        for v in self.staged_versions()? {
            if v < version {
                std::fs::remove_file(self.staging(v))?;
            }
        }
        Ok(true)
    }

    /// Versions that have a staging file.
    pub fn staged_versions(&self) -> io::Result<Vec<i64>> {
        let prefix = format!("{}.v", self.base);
        let suffix = format!("{}.partial", self.compression.suffix());
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(name) = name.to_str() else { continue };
            let version = name
                .strip_prefix(&prefix)
                .and_then(|r| r.strip_suffix(&suffix));
            if let Some(v) = version.and_then(|v| v.parse().ok()) {
                out.push(v);
            }
        }
        Ok(out)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_never_collide() {
        assert_eq!(file_stem("db-users"), "db-users");
        assert_eq!(file_stem("a/b"), "a%2Fb");
        assert_eq!(file_stem("a:b"), "a%3Ab");
        assert_eq!(file_stem("a?b"), "a%3Fb");
        assert_eq!(file_stem(".hidden"), "%2Ehidden");
        assert_eq!(file_stem("x.y"), "x.y");
        assert_eq!(file_stem("é"), "%C3%A9");
    }
}
