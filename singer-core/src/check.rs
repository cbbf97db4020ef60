//! A stream checker: does a message stream conform to specs/messages.md?
//!
//! It reads a whole stream (a tap's output, a capture file) and reports the first violation
//! with its kind and line: malformed lines, a RECORD or BATCH before its SCHEMA, an unusable
//! SCHEMA, a record missing a key property, or a record that does not match its schema.
//! `singer check` and the conformance tests use it.

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::{Map, Value};

use crate::io::LineReader;
use crate::message::{Message, MessageRef, parse_line};
use crate::record::RawFields;
use crate::schema::StreamSchema;
use crate::validate::RecordValidator;

/// The first problem found in a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}: {message}")]
pub struct Violation {
    /// The corpus name of the problem (`record_before_schema`, `malformed_json`, ...).
    pub kind: &'static str,
    /// The 1-based line.
    pub line: u64,
    /// A readable explanation (never record values).
    pub message: String,
}

/// What a conforming stream contained.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// RECORD messages per stream, for every stream that had a SCHEMA.
    pub records: Map<String, Value>,
    /// The value of the last STATE, if any.
    pub final_state: Option<Value>,
    /// Messages read (blank lines excluded).
    pub messages: u64,
}

struct StreamInfo {
    keys: Vec<String>,
    validator: RecordValidator,
}

/// Checks a whole stream; `validate` also checks records against their schemas.
pub fn check_stream<R: BufRead>(input: R, validate: bool) -> Result<Report, Violation> {
    let mut lines = LineReader::new(input);
    let mut streams: HashMap<String, StreamInfo> = HashMap::new();
    let mut report = Report::default();
    loop {
        let line = match lines.next_line() {
            Ok(Some(l)) => l,
            Ok(None) => return Ok(report),
            Err(e) => {
                let line = match &e {
                    crate::io::ReadError::Io { line, .. } => *line,
                    crate::io::ReadError::LineTooLong { line, .. } => *line,
                };
                return Err(Violation {
                    kind: "line_too_long",
                    line,
                    message: e.to_string(),
                });
            }
        };
        let n = line.number;
        report.messages += 1;
        let v = |kind: &'static str, message: String| Violation {
            kind,
            line: n,
            message,
        };
        let parsed = parse_line(line.bytes)
            .map_err(|e| v(e.kind_name(), crate::error::chain_to_string(&e)))?;
        match parsed {
            MessageRef::Record(r) => {
                let Some(info) = streams.get(r.stream.as_ref()) else {
                    return Err(v(
                        "record_before_schema",
                        format!("RECORD for stream `{}` before its SCHEMA", r.stream),
                    ));
                };
                let fields =
                    RawFields::parse(r.record).map_err(|e| v("malformed_json", e.to_string()))?;
                if let Some(k) = info.keys.iter().find(|k| fields.is_null_or_absent(k)) {
                    return Err(v(
                        "missing_key_property",
                        format!("record of stream `{}` has no key property `{k}`", r.stream),
                    ));
                }
                if validate {
                    let value: Value = serde_json::from_str(r.record.get())
                        .map_err(|e| v("malformed_json", e.to_string()))?;
                    info.validator
                        .validate(&r.stream, &value)
                        .map_err(|e| v("record_invalid", e.to_string()))?;
                }
                if let Some(Value::Number(c)) = report.records.get_mut(r.stream.as_ref()) {
                    *c = (c.as_u64().unwrap_or(0) + 1).into();
                }
            }
            MessageRef::Other(Message::Schema(s)) => {
                StreamSchema::compile(&s.stream, &s.schema, &s.key_properties)
                    .map_err(|e| v("invalid_schema", e.to_string()))?;
                let validator = RecordValidator::new(&s.stream, &s.schema)
                    .map_err(|e| v("invalid_schema", e.to_string()))?;
                report
                    .records
                    .entry(s.stream.clone())
                    .or_insert(Value::from(0u64));
                streams.insert(
                    s.stream.clone(),
                    StreamInfo {
                        keys: s.key_properties,
                        validator,
                    },
                );
            }
            MessageRef::Other(Message::Batch(b)) => {
                if !streams.contains_key(&b.stream) {
                    return Err(v(
                        "record_before_schema",
                        format!("BATCH for stream `{}` before its SCHEMA", b.stream),
                    ));
                }
            }
            MessageRef::Other(Message::State(s)) => report.final_state = Some(s.value),
            MessageRef::Other(_) | MessageRef::Unknown(_) => {}
        }
    }
}
