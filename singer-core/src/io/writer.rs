//! The only writer that touches stdout.
//!
//! Messages are written as compact JSON lines through a large buffer. The buffer is flushed
//! after every STATE (so a reader sees a checkpoint as soon as it is emitted) and when the
//! writer is flushed or dropped.

use std::io::{self, BufWriter, Write};

use serde::Serialize;
use serde_json::Value;

use crate::message::Message;

const BUFFER_BYTES: usize = 256 * 1024;

/// Writes Singer messages, one per line.
pub struct MessageWriter<W: Write> {
    out: BufWriter<W>,
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
            out: BufWriter::with_capacity(BUFFER_BYTES, out),
        }
    }

    /// Writes any message; flushes if it is a STATE.
    pub fn write_message(&mut self, msg: &Message) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, msg).map_err(io::Error::from)?;
        self.out.write_all(b"\n")?;
        if matches!(msg, Message::State(_)) {
            self.out.flush()?;
        }
        Ok(())
    }

    /// Writes a RECORD from any serialisable record, without building a `Value` first.
    pub fn write_record<T: Serialize + ?Sized>(
        &mut self,
        stream: &str,
        record: &T,
        version: Option<i64>,
        time_extracted: Option<&str>,
    ) -> io::Result<()> {
        self.out.write_all(br#"{"type":"RECORD","stream":"#)?;
        serde_json::to_writer(&mut self.out, stream).map_err(io::Error::from)?;
        self.out.write_all(br#","record":"#)?;
        serde_json::to_writer(&mut self.out, record).map_err(io::Error::from)?;
        self.finish_record(version, time_extracted)
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
        self.out.write_all(br#"{"type":"RECORD","stream":"#)?;
        serde_json::to_writer(&mut self.out, stream).map_err(io::Error::from)?;
        self.out.write_all(br#","record":"#)?;
        self.out.write_all(record_json)?;
        self.finish_record(version, time_extracted)
    }

    fn finish_record(
        &mut self,
        version: Option<i64>,
        time_extracted: Option<&str>,
    ) -> io::Result<()> {
        if let Some(v) = version {
            write!(self.out, r#","version":{v}"#)?;
        }
        if let Some(t) = time_extracted {
            self.out.write_all(br#","time_extracted":"#)?;
            serde_json::to_writer(&mut self.out, t).map_err(io::Error::from)?;
        }
        self.out.write_all(b"}\n")
    }

    /// Writes a STATE message and flushes.
    pub fn write_state(&mut self, value: &Value) -> io::Result<()> {
        self.out.write_all(br#"{"type":"STATE","value":"#)?;
        serde_json::to_writer(&mut self.out, value).map_err(io::Error::from)?;
        self.out.write_all(b"}\n")?;
        self.out.flush()
    }

    /// Writes a bare state value, as a target echoes it, and flushes.
    pub fn write_state_value(&mut self, value: &Value) -> io::Result<()> {
        serde_json::to_writer(&mut self.out, value).map_err(io::Error::from)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }

    /// Writes an already encoded line (a newline is appended).
    pub fn write_raw_line(&mut self, line: &[u8]) -> io::Result<()> {
        self.out.write_all(line)?;
        self.out.write_all(b"\n")
    }

    /// Flushes everything buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes and returns the inner writer.
    pub fn into_inner(self) -> io::Result<W> {
        self.out.into_inner().map_err(|e| e.into_error())
    }
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
}
