//! A reader thread that cuts the input into chunks of whole lines.
//!
//! Targets read stdin on a dedicated thread so that the thread doing the work can wait on a
//! timer (batch age) while no input arrives. Chunks of about 1 MiB keep channel traffic low and
//! memory bounded: at most `depth` chunks are in flight.

use std::io::{ErrorKind, Read};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use super::reader::{Line, ReadError, trim_bounds};

/// Whole lines of input, starting at line `first_line`.
#[derive(Debug)]
pub struct Chunk {
    first_line: u64,
    data: Vec<u8>,
}

impl Chunk {
    /// Iterates over the non-blank lines of the chunk, with their line numbers.
    pub fn lines(&self) -> impl Iterator<Item = Line<'_>> {
        let data = &self.data[..];
        let mut number = self.first_line;
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', data).chain(std::iter::once(data.len()));
        ends.filter_map(move |end| {
            let raw = &data[start..end];
            start = end + 1;
            let n = number;
            number += 1;
            let (s, e) = trim_bounds(raw);
            (s < e).then(|| Line {
                number: n,
                bytes: &raw[s..e],
            })
        })
    }

    /// The size of the chunk in bytes.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the chunk holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Receives chunks produced by a background reader thread.
pub struct ChunkReader {
    rx: Receiver<Result<Chunk, ReadError>>,
    _thread: JoinHandle<()>,
}

/// What [`ChunkReader::next`] returned.
#[derive(Debug)]
pub enum Next {
    /// More input.
    Chunk(Chunk),
    /// Nothing arrived within the timeout.
    Timeout,
    /// End of input.
    End,
}

impl ChunkReader {
    /// Starts a thread that reads `input` in chunks of about `chunk_bytes`.
    pub fn spawn<R: Read + Send + 'static>(input: R, max_line: usize, chunk_bytes: usize) -> Self {
        let (tx, rx) = sync_channel(4);
        let thread = std::thread::Builder::new()
            .name("singer-reader".into())
            .spawn(move || read_loop(input, max_line, chunk_bytes, tx))
            .unwrap_or_else(|e| panic!("cannot start the input reader thread: {e}"));
        Self {
            rx,
            _thread: thread,
        }
    }

    /// Waits up to `timeout` for the next chunk.
    pub fn next(&self, timeout: Duration) -> Result<Next, ReadError> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(chunk)) => Ok(Next::Chunk(chunk)),
            Ok(Err(e)) => Err(e),
            Err(RecvTimeoutError::Timeout) => Ok(Next::Timeout),
            Err(RecvTimeoutError::Disconnected) => Ok(Next::End),
        }
    }
}

fn read_loop<R: Read>(
    mut input: R,
    max_line: usize,
    chunk_bytes: usize,
    tx: SyncSender<Result<Chunk, ReadError>>,
) {
    let mut scratch = vec![0u8; chunk_bytes.max(4096)];
    let mut pending: Vec<u8> = Vec::new();
    let mut line: u64 = 1;
    loop {
        let n = match input.read(&mut scratch) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(source) => {
                let _ = tx.send(Err(ReadError::Io { line, source }));
                return;
            }
        };
        if n == 0 {
            if !pending.is_empty() {
                let _ = tx.send(Ok(Chunk {
                    first_line: line,
                    data: pending,
                }));
            }
            return;
        }
        let old_len = pending.len();
        pending.extend_from_slice(&scratch[..n]);
        let Some(last_nl) = memchr::memrchr(b'\n', &pending[old_len..]).map(|i| i + old_len) else {
            // No complete line yet: the whole pending buffer is one unfinished line.
            if pending.len() > max_line.saturating_add(2) {
                let _ = tx.send(Err(ReadError::LineTooLong {
                    line,
                    limit: max_line,
                }));
                return;
            }
            continue;
        };
        if pending.len() < chunk_bytes && n == scratch.len() {
            // Keep filling until the chunk is big enough, unless the input paused.
            continue;
        }
        let rest = pending.split_off(last_nl + 1);
        let data = std::mem::replace(&mut pending, rest);
        if let Some(bad) = long_line(&data, max_line) {
            let _ = tx.send(Err(ReadError::LineTooLong {
                line: line + bad,
                limit: max_line,
            }));
            return;
        }
        let first_line = line;
        line += memchr::memchr_iter(b'\n', &data).count() as u64;
        if tx.send(Ok(Chunk { first_line, data })).is_err() {
            return;
        }
    }
}

/// The 0-based index of the first line in `data` longer than `max` bytes, if any.
fn long_line(data: &[u8], max: usize) -> Option<u64> {
    data.split(|b| *b == b'\n')
        .position(|l| l.len() > max.saturating_add(1))
        .map(|i| i as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        input: &'static [u8],
        max: usize,
        chunk: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, ReadError> {
        let r = ChunkReader::spawn(input, max, chunk);
        let mut out = vec![];
        loop {
            match r.next(Duration::from_secs(5))? {
                Next::Chunk(c) => out.extend(c.lines().map(|l| (l.number, l.bytes.to_vec()))),
                Next::Timeout => panic!("timeout"),
                Next::End => return Ok(out),
            }
        }
    }

    #[test]
    fn lines_keep_their_numbers_across_chunks() {
        let got = collect(b"a\n\nbb\r\nccc\nd", 100, 4096).unwrap();
        let want: Vec<(u64, Vec<u8>)> = vec![
            (1, b"a".to_vec()),
            (3, b"bb".to_vec()),
            (4, b"ccc".to_vec()),
            (5, b"d".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn oversized_line_names_its_number() {
        let err = collect(b"ok\nthis line is too long\n", 5, 4096).unwrap_err();
        assert!(
            matches!(err, ReadError::LineTooLong { line: 2, limit: 5 }),
            "{err}"
        );
    }
}
