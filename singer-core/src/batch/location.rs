//! Where batch files live: manifest entries are `file://` URLs or local paths.

use std::path::{Path, PathBuf};

/// A manifest entry or storage root as a local path: `file:///tmp/a%20b.jsonl`,
/// `file://localhost/tmp/x` or a plain path. Other schemes are an error that names them.
pub fn local_path(url: &str) -> Result<PathBuf, String> {
    if let Some(rest) = url.strip_prefix("file://") {
        let rest = rest.strip_prefix("localhost").unwrap_or(rest);
        if !rest.starts_with('/') {
            return Err(format!("`{url}`: a file:// URL needs an absolute path"));
        }
        return percent_decode(rest)
            .map(PathBuf::from)
            .ok_or_else(|| format!("`{url}`: bad percent-encoding"));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return Err(format!(
            "`{url}`: {scheme}:// storage is not supported by this build (local paths and file:// URLs are)"
        ));
    }
    if url.is_empty() {
        return Err("empty path".into());
    }
    Ok(PathBuf::from(url))
}

/// A local path as a `file://` URL (absolute; unsafe bytes percent-encoded).
pub fn file_url(path: &Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = String::from("file://");
    for b in abs.to_string_lossy().bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_paths() {
        assert_eq!(
            local_path("file:///tmp/a%20b.jsonl").unwrap(),
            PathBuf::from("/tmp/a b.jsonl")
        );
        assert_eq!(
            local_path("file://localhost/x").unwrap(),
            PathBuf::from("/x")
        );
        assert_eq!(
            local_path("rel/x.parquet").unwrap(),
            PathBuf::from("rel/x.parquet")
        );
        assert!(local_path("s3://bucket/x").unwrap_err().contains("s3://"));
        assert!(local_path("file:///bad%2").is_err());
        let url = file_url(Path::new("/tmp/a b%.jsonl"));
        assert_eq!(url, "file:///tmp/a%20b%25.jsonl");
        assert_eq!(local_path(&url).unwrap(), PathBuf::from("/tmp/a b%.jsonl"));
    }
}
