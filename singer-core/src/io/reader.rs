//! A line reader with a hard limit on line length.

use std::io::{BufRead, ErrorKind};

use crate::error::{Classify, ErrorClass};

/// Default limit for one message line: 256 MiB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024 * 1024;

/// A failure to read the input.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The underlying reader failed.
    #[error("failed to read input at line {line}")]
    Io {
        /// The 1-based line being read.
        line: u64,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A line exceeded the configured limit.
    #[error("line {line} is longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The 1-based line number.
        line: u64,
        /// The limit in bytes.
        limit: usize,
    },
}

impl Classify for ReadError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// One line of input, without its terminator (`\n` or `\r\n`).
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// The 1-based line number in the input.
    pub number: u64,
    /// The bytes of the line.
    pub bytes: &'a [u8],
}

/// Reads lines one at a time into a reused buffer; blank lines are skipped but counted.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    line: u64,
    max: usize,
}

impl<R: BufRead> LineReader<R> {
    /// A reader with the default line limit.
    pub fn new(inner: R) -> Self {
        Self::with_limit(inner, DEFAULT_MAX_LINE_BYTES)
    }

    /// A reader that rejects lines longer than `max` bytes.
    pub fn with_limit(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: Vec::with_capacity(4096),
            line: 0,
            max,
        }
    }

    /// The next non-blank line, or `None` at end of input.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, ReadError> {
        loop {
            self.buf.clear();
            self.line += 1;
            if !self.read_raw_line()? {
                return Ok(None);
            }
            let (start, end) = trim_bounds(&self.buf);
            if start < end {
                return Ok(Some(Line {
                    number: self.line,
                    bytes: &self.buf[start..end],
                }));
            }
        }
    }

    /// Appends one raw line to `buf`; false at end of input with nothing read.
    fn read_raw_line(&mut self) -> Result<bool, ReadError> {
        let line = self.line;
        let io_err = |source| ReadError::Io { line, source };
        loop {
            let available = match self.inner.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_err(e)),
            };
            if available.is_empty() {
                return Ok(!self.buf.is_empty());
            }
            let (take, done) = match memchr::memchr(b'\n', available) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            // The terminator (`\r\n` at most) does not count against the limit.
            if self.buf.len() + take > self.max.saturating_add(2) {
                return Err(ReadError::LineTooLong {
                    line,
                    limit: self.max,
                });
            }
            self.buf.extend_from_slice(&available[..take]);
            self.inner.consume(take);
            if done {
                return Ok(true);
            }
        }
    }
}

/// The bounds of `line` without its terminator and surrounding ASCII whitespace.
pub(crate) fn trim_bounds(line: &[u8]) -> (usize, usize) {
    let start = line
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_lines_and_skips_blanks() {
        let input: &[u8] = b"a\r\n\n  \nb\nc";
        let mut r = LineReader::new(input);
        let mut seen = vec![];
        while let Some(l) = r.next_line().unwrap() {
            seen.push((l.number, l.bytes.to_vec()));
        }
        assert_eq!(
            seen,
            vec![(1, b"a".to_vec()), (4, b"b".to_vec()), (5, b"c".to_vec())]
        );
    }

    #[test]
    fn long_line_is_an_error_with_its_number() {
        let input: &[u8] = b"ok\n0123456789\n";
        let mut r = LineReader::with_limit(std::io::BufReader::with_capacity(4, input), 5);
        assert!(r.next_line().unwrap().is_some());
        let err = r.next_line().unwrap_err();
        assert!(
            matches!(err, ReadError::LineTooLong { line: 2, limit: 5 }),
            "{err}"
        );
    }
}
