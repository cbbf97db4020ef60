//! `COPY ... TO STDOUT` in text format, streamed: rows are split from the chunks as they
//! arrive and their fields unescaped into one reused buffer, so memory stays flat.

use bytes::Bytes;
use futures_util::StreamExt;
use singer_core::sdk::SdkError;
use tokio_postgres::Client;

use crate::connect::db_error;
use crate::stream::Cell;

/// One row of text fields, unescaped.
#[derive(Default)]
pub(crate) struct Row {
    buf: Vec<u8>,
    /// Each field's range in `buf`, `None` for NULL.
    spans: Vec<Option<(usize, usize)>>,
}

impl Row {
    /// Field `i` as the encoder sees it.
    pub(crate) fn cell(&self, i: usize) -> Cell<'_> {
        match self.spans.get(i) {
            Some(Some((a, b))) => Cell::Text(&self.buf[*a..*b]),
            _ => Cell::Null,
        }
    }

    /// Field `i`'s text, `None` for NULL.
    pub(crate) fn text(&self, i: usize) -> Option<&[u8]> {
        match self.spans.get(i) {
            Some(Some((a, b))) => Some(&self.buf[*a..*b]),
            _ => None,
        }
    }

    /// Parses one line (without its newline) of COPY text format.
    pub(crate) fn parse(&mut self, line: &[u8]) -> Result<(), String> {
        self.buf.clear();
        self.spans.clear();
        for field in line.split(|b| *b == b'\t') {
            if field == b"\\N" {
                self.spans.push(None);
                continue;
            }
            let start = self.buf.len();
            unescape(field, &mut self.buf)?;
            self.spans.push(Some((start, self.buf.len())));
        }
        Ok(())
    }
}

/// Appends a field with COPY's backslash escapes resolved.
fn unescape(field: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    let Some(first) = field.iter().position(|b| *b == b'\\') else {
        out.extend_from_slice(field);
        return Ok(());
    };
    out.extend_from_slice(&field[..first]);
    let mut i = first;
    while i < field.len() {
        let b = field[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        let Some(&e) = field.get(i + 1) else {
            return Err("a COPY field ends with a lone backslash".into());
        };
        i += 2;
        match e {
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(11),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                let mut n = 1;
                while n < 3 && field.get(i).is_some_and(|d| (b'0'..=b'7').contains(d)) {
                    v = v * 8 + u32::from(field[i] - b'0');
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xFF) as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut n = 0;
                while n < 2 && field.get(i).is_some_and(u8::is_ascii_hexdigit) {
                    v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                    i += 1;
                    n += 1;
                }
                out.push((v & 0xFF) as u8);
            }
            other => out.push(other),
        }
    }
    Ok(())
}

/// Streams `COPY (<query>) TO STDOUT` and calls `each` with every row, in order.
pub(crate) async fn copy_rows(
    client: &Client,
    query: &str,
    stream_id: &str,
    mut each: impl FnMut(&Row) -> Result<(), SdkError>,
) -> Result<u64, SdkError> {
    let sql = format!("COPY ({query}) TO STDOUT");
    let read_err = |e| db_error(format!("stream `{stream_id}`: reading rows failed"), e);
    let stream = client.copy_out(sql.as_str()).await.map_err(read_err)?;
    futures_util::pin_mut!(stream);
    let mut row = Row::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut rows = 0u64;
    let mut emit = |line: &[u8], row: &mut Row| -> Result<(), SdkError> {
        row.parse(line).map_err(|e| {
            SdkError::fatal(
                format!("stream `{stream_id}`: row {}", rows + 1),
                std::io::Error::other(e),
            )
        })?;
        rows += 1;
        each(row)
    };
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk.map_err(read_err)?;
        let mut rest: &[u8] = &chunk;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            if pending.is_empty() {
                emit(&rest[..nl], &mut row)?;
            } else {
                pending.extend_from_slice(&rest[..nl]);
                let line = std::mem::take(&mut pending);
                emit(&line, &mut row)?;
                pending = line;
                pending.clear();
            }
            rest = &rest[nl + 1..];
        }
        pending.extend_from_slice(rest);
    }
    if !pending.is_empty() {
        return Err(SdkError::fatal(
            format!("stream `{stream_id}`: the copy ended inside a row"),
            std::io::Error::other("truncated COPY data"),
        ));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fields_nulls_and_escapes() {
        let mut r = Row::default();
        r.parse(b"1\t\\N\ta\\tb\\\\c\\nd\t\t\\101\\x42").unwrap();
        assert_eq!(r.text(5), None);
        assert_eq!(r.text(0), Some(&b"1"[..]));
        assert_eq!(r.text(1), None);
        assert_eq!(r.text(2), Some(&b"a\tb\\c\nd"[..]));
        assert_eq!(r.text(3), Some(&b""[..]));
        assert_eq!(r.text(4), Some(&b"AB"[..]));
        assert!(r.parse(b"x\\").is_err());
    }
}
