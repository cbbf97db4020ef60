//! Reads the records of a BATCH message: JSONL files (bare records, one per line), optionally
//! gzip or zstd compressed, named by `file://` URLs.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use serde_json::value::RawValue;

use crate::io::LineReader;
use crate::message::BatchMessage;
use crate::sdk::SdkError;

/// Calls `f` for every record of every file of the manifest, in order.
pub(super) fn for_each_record(
    msg: &BatchMessage,
    line: u64,
    mut f: impl FnMut(&RawValue) -> Result<(), SdkError>,
) -> Result<(), SdkError> {
    let err = |what: String| {
        SdkError::fatal(
            format!("line {line}: BATCH of stream `{}`", msg.stream),
            std::io::Error::other(what),
        )
    };
    if !msg.encoding.format.eq_ignore_ascii_case("jsonl") {
        return Err(err(format!(
            "unsupported batch format `{}` (this target reads jsonl)",
            msg.encoding.format
        )));
    }
    for url in &msg.manifest {
        let path = file_url_path(url).ok_or_else(|| {
            err(format!(
                "unsupported manifest URL `{url}` (only file:// URLs)"
            ))
        })?;
        let file =
            File::open(&path).map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        let reader: Box<dyn Read> = match msg
            .encoding
            .compression
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("none") => Box::new(file),
            Some("gzip") => Box::new(flate2::read::MultiGzDecoder::new(file)),
            Some("zstd") => Box::new(
                zstd::Decoder::new(file)
                    .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?,
            ),
            Some(other) => return Err(err(format!("unsupported batch compression `{other}`"))),
        };
        let mut lines = LineReader::new(BufReader::with_capacity(1 << 20, reader));
        while let Some(l) = lines
            .next_line()
            .map_err(|e| err(format!("{}: {e}", path.display())))?
        {
            let raw: &RawValue = serde_json::from_slice(l.bytes).map_err(|e| {
                err(format!(
                    "{} line {}: malformed JSON: {e}",
                    path.display(),
                    l.number
                ))
            })?;
            if !raw.get().starts_with('{') {
                return Err(err(format!(
                    "{} line {}: a record must be a JSON object",
                    path.display(),
                    l.number
                )));
            }
            f(raw)?;
        }
    }
    Ok(())
}

/// `file:///tmp/a%20b.jsonl` → `/tmp/a b.jsonl`.
fn file_url_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(PathBuf::from(String::from_utf8(out).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls() {
        assert_eq!(
            file_url_path("file:///tmp/a%20b.jsonl"),
            Some(PathBuf::from("/tmp/a b.jsonl"))
        );
        assert_eq!(file_url_path("s3://bucket/x"), None);
        assert_eq!(
            file_url_path("file:///bad%2"),
            Some(PathBuf::from("/bad%2"))
        );
    }
}
