//! The only writer that touches stdout.
//!
//! Messages are written as compact JSON lines into a buffer of whole lines. The buffer goes to
//! the inner writer in one `write_all`, only ever at a line end: after every STATE (so a reader
//! sees a checkpoint as soon as it is emitted), once it holds [`BUFFER_BYTES`], and when the
//! writer is flushed or dropped. A message whose encoding fails leaves nothing behind.
//!
//! Why whole lines: a process stopped between two writes (a tap on SIGTERM, see
//! [`crate::sdk::tap`]) must leave its reader complete lines only. With the standard library's
//! stdout, each `write_all` holds the stdout lock, so a thread that takes that lock sees the
//! output end at a line end.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

use crate::message::Message;

/// Bytes buffered before they are written out.
const BUFFER_BYTES: usize = 256 * 1024;

/// Writes Singer messages, one per line.
pub struct MessageWriter<W: Write> {
    /// `None` only after [`MessageWriter::into_inner`].
    out: Option<W>,
    /// Whole lines not yet written to `out`.
    buf: Vec<u8>,
}

impl MessageWriter<io::Stdout> {
    /// A writer on the process's stdout.
    pub fn stdout() -> Self {
        Self::new(io::stdout())
    }
}

impl<W: Write> MessageWriter<W> {
    /// Wraps any writer.
    pub fn new(out: W) -> Self {
        Self {
            out: Some(out),
            buf: Vec::with_capacity(BUFFER_BYTES),
        }
    }

    /// Writes any message; flushes if it is a STATE.
    pub fn write_message(&mut self, msg: &Message) -> io::Result<()> {
        let start = self.buf.len();
        let encoded = serde_json::to_writer(&mut self.buf, msg).map_err(io::Error::from);
        self.end_line(start, encoded)?;
        if matches!(msg, Message::State(_)) {
            self.flush()
        } else {
            self.flush_if_full()
        }
    }

    /// Writes a RECORD from any serialisable record, without building a `Value` first.
    pub fn write_record<T: Serialize + ?Sized>(
        &mut self,
        stream: &str,
        record: &T,
        version: Option<i64>,
        time_extracted: Option<&str>,
    ) -> io::Result<()> {
        let start = self.buf.len();
        let encoded = record_prefix(&mut self.buf, stream)
            .and_then(|()| serde_json::to_writer(&mut self.buf, record).map_err(io::Error::from))
            .and_then(|()| record_suffix(&mut self.buf, version, time_extracted));
        self.end_line(start, encoded)?;
        self.flush_if_full()
    }

    /// Writes a RECORD whose record is already encoded as one JSON object (no newlines).
    ///
    /// The bytes are trusted: the caller guarantees they are a valid JSON object. Database taps
    /// use this to encode rows straight from the wire without building values.
    pub fn write_record_json(
        &mut self,
        stream: &str,
        record_json: &[u8],
        version: Option<i64>,
        time_extracted: Option<&str>,
    ) -> io::Result<()> {
        let start = self.buf.len();
        let encoded = record_prefix(&mut self.buf, stream).and_then(|()| {
            self.buf.extend_from_slice(record_json);
            record_suffix(&mut self.buf, version, time_extracted)
        });
        self.end_line(start, encoded)?;
        self.flush_if_full()
    }

    /// Writes a STATE message and flushes.
    pub fn write_state(&mut self, value: &Value) -> io::Result<()> {
        let start = self.buf.len();
        self.buf.extend_from_slice(br#"{"type":"STATE","value":"#);
        let encoded = serde_json::to_writer(&mut self.buf, value)
            .map_err(io::Error::from)
            .map(|()| self.buf.push(b'}'));
        self.end_line(start, encoded)?;
        self.flush()
    }

    /// Writes a bare state value, as a target echoes it, and flushes.
    pub fn write_state_value(&mut self, value: &Value) -> io::Result<()> {
        let start = self.buf.len();
        let encoded = serde_json::to_writer(&mut self.buf, value).map_err(io::Error::from);
        self.end_line(start, encoded)?;
        self.flush()
    }

    /// Writes an already encoded line (a newline is appended).
    pub fn write_raw_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(line);
        self.buf.push(b'\n');
        self.flush_if_full()
    }

    /// Writes every buffered line to the inner writer (in one `write_all`) and flushes it.
    pub fn flush(&mut self) -> io::Result<()> {
        let Some(out) = self.out.as_mut() else {
            return Ok(());
        };
        if !self.buf.is_empty() {
            let written = out.write_all(&self.buf);
            // After a failed write the reader's view is unknown; the lines are not retried.
            self.buf.clear();
            if self.buf.capacity() > 4 * BUFFER_BYTES {
                // One huge message must not pin its memory for the rest of the run.
                self.buf.shrink_to(BUFFER_BYTES);
            }
            written?;
        }
        out.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.flush()?;
        self.out
            .take()
            .ok_or_else(|| io::Error::other("the writer was already taken"))
    }

    /// Ends the message started at `start`: a line end if it was encoded, else nothing of it.
    fn end_line(&mut self, start: usize, encoded: io::Result<()>) -> io::Result<()> {
        match encoded {
            Ok(()) => {
                self.buf.push(b'\n');
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(start);
                Err(e)
            }
        }
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= BUFFER_BYTES {
            self.flush()
        } else {
            Ok(())
        }
    }
}

impl<W: Write> Drop for MessageWriter<W> {
    /// Writes what is buffered, as `BufWriter` does (not while panicking); errors are lost,
    /// so callers that care flush first.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.flush();
        }
    }
}

fn record_prefix(buf: &mut Vec<u8>, stream: &str) -> io::Result<()> {
    buf.extend_from_slice(br#"{"type":"RECORD","stream":"#);
    serde_json::to_writer(&mut *buf, stream).map_err(io::Error::from)?;
    buf.extend_from_slice(br#","record":"#);
    Ok(())
}

fn record_suffix(
    buf: &mut Vec<u8>,
    version: Option<i64>,
    time_extracted: Option<&str>,
) -> io::Result<()> {
    if let Some(v) = version {
        write!(buf, r#","version":{v}"#)?;
    }
    if let Some(t) = time_extracted {
        buf.extend_from_slice(br#","time_extracted":"#);
        serde_json::to_writer(&mut *buf, t).map_err(io::Error::from)?;
    }
    buf.push(b'}');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Message, StateMessage};

    #[test]
    fn record_and_state_lines() {
        let mut w = MessageWriter::new(Vec::new());
        let rec = serde_json::json!({"id": 1});
        w.write_record("users", &rec, Some(5), Some("2026-01-01T00:00:00Z"))
            .unwrap();
        w.write_message(&Message::State(StateMessage {
            value: serde_json::json!({"a": 1}),
        }))
        .unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "{\"type\":\"RECORD\",\"stream\":\"users\",\"record\":{\"id\":1},\"version\":5,\"time_extracted\":\"2026-01-01T00:00:00Z\"}\n{\"type\":\"STATE\",\"value\":{\"a\":1}}\n"
        );
    }

    /// Records every chunk handed to the inner writer.
    #[derive(Default)]
    struct Chunks(Vec<Vec<u8>>);

    impl Write for Chunks {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_inner_writer_only_ever_gets_whole_lines() {
        let mut w = MessageWriter::new(Chunks::default());
        let small = serde_json::json!({"id": 1, "s": "x".repeat(100)});
        let big = serde_json::json!({"id": 2, "s": "y".repeat(BUFFER_BYTES + 10)});
        for i in 0..5000 {
            let rec = if i % 1000 == 999 { &big } else { &small };
            w.write_record("s", rec, None, None).unwrap();
            w.write_record_json("s", br#"{"id":3}"#, Some(1), None)
                .unwrap();
            if i % 700 == 0 {
                w.write_state(&serde_json::json!({"i": i})).unwrap();
            }
        }
        let chunks = w.into_inner().unwrap().0;
        assert!(chunks.len() > 10, "{} chunks", chunks.len());
        for c in &chunks {
            assert_eq!(c.last(), Some(&b'\n'), "a chunk ends mid-line");
            for line in c.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                crate::message::parse_line(line).unwrap();
            }
        }
    }

    #[test]
    fn a_message_that_cannot_be_encoded_leaves_nothing() {
        let mut w = MessageWriter::new(Vec::new());
        w.write_record("s", &serde_json::json!({"id": 1}), None, None)
            .unwrap();
        // Maps with non-string keys are not JSON objects: serde fails half-way.
        let bad: std::collections::BTreeMap<(i32, i32), i32> = [((1, 2), 3)].into();
        assert!(w.write_record("s", &bad, None, None).is_err());
        w.write_record("s", &serde_json::json!({"id": 2}), None, None)
            .unwrap();
        let out = String::from_utf8(w.into_inner().unwrap()).unwrap();
        assert_eq!(
            out,
            "{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"id\":1}}\n{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"id\":2}}\n"
        );
    }

    #[test]
    fn dropping_writes_what_is_buffered() {
        let mut out = Vec::new();
        {
            let mut w = MessageWriter::new(&mut out);
            w.write_raw_line(b"{}").unwrap();
        }
        assert_eq!(out, b"{}\n");
    }
}
