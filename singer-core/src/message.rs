//! Singer messages: the typed model and its wire format.
//!
//! Wire format (specs/messages.md): one JSON object per line with a `type` member, read
//! case-insensitively. Writing emits compact JSON with the members in a fixed order
//! (`type`, `stream`, then the payload), which every Python Singer tool accepts.
//!
//! Numbers are never routed through `f64`: the workspace enables serde_json's
//! `arbitrary_precision`, so a `DECIMAL(65,30)` or an integer beyond 2^64 keeps its exact text
//! from read to write.
//!
//! Two ways to read:
//! - [`parse_line`] is the hot path: a RECORD is decoded into a borrowed [`RecordRef`] whose
//!   payload stays raw JSON text; other messages are fully parsed.
//! - [`Message::parse`] builds an owned [`Message`] for any type.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::error::{Classify, ErrorClass};

/// A parsed Singer message that owns its data.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Message {
    /// Describes the records of a stream.
    Schema(SchemaMessage),
    /// One row of a stream.
    Record(RecordMessage),
    /// An opaque checkpoint a target echoes once everything before it is durable.
    State(StateMessage),
    /// Tells the target that the given version of a stream is now complete and current.
    ActivateVersion(ActivateVersionMessage),
    /// Points at files of records instead of carrying them inline (Meltano SDK extension).
    Batch(BatchMessage),
}

/// `{"type":"SCHEMA",...}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaMessage {
    /// The stream the schema describes.
    pub stream: String,
    /// The JSON Schema of the stream's records; an object schema with `properties`.
    pub schema: Value,
    /// Top-level properties that identify a record; may be empty.
    pub key_properties: Vec<String>,
    /// Properties the tap bookmarks on, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bookmark_properties: Option<Vec<String>>,
}

/// `{"type":"RECORD",...}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordMessage {
    /// The stream this record belongs to.
    pub stream: String,
    /// The record itself.
    pub record: Map<String, Value>,
    /// The table version (epoch milliseconds by convention), used with ACTIVATE_VERSION.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// When the record was read from the source (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_extracted: Option<String>,
}

/// `{"type":"STATE","value":...}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateMessage {
    /// The tap-defined state document.
    pub value: Value,
}

/// `{"type":"ACTIVATE_VERSION","stream":...,"version":...}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActivateVersionMessage {
    /// The stream whose version becomes current.
    pub stream: String,
    /// The version that is now complete.
    pub version: i64,
}

/// `{"type":"BATCH",...}`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchMessage {
    /// The stream the files belong to.
    pub stream: String,
    /// How the files are encoded.
    pub encoding: BatchEncoding,
    /// File URLs (`file:///...`), in order.
    pub manifest: Vec<String>,
    /// The table version the records belong to, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
}

/// The encoding of BATCH files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEncoding {
    /// `jsonl`, `parquet` or `arrow`.
    pub format: String,
    /// `gzip`, `zstd` or `none`; absent means none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
}

/// Formats a BATCH may name.
pub const BATCH_FORMATS: [&str; 3] = ["jsonl", "parquet", "arrow"];
/// Compressions a BATCH may name.
pub const BATCH_COMPRESSIONS: [&str; 3] = ["gzip", "zstd", "none"];

/// The kind of a message, after case-insensitive matching of its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// SCHEMA
    Schema,
    /// RECORD
    Record,
    /// STATE
    State,
    /// ACTIVATE_VERSION
    ActivateVersion,
    /// BATCH
    Batch,
}

impl MessageKind {
    /// Matches a `type` value case-insensitively; `None` for an unknown type.
    pub fn from_type(ty: &str) -> Option<Self> {
        const KINDS: [(&str, MessageKind); 5] = [
            ("RECORD", MessageKind::Record),
            ("STATE", MessageKind::State),
            ("SCHEMA", MessageKind::Schema),
            ("ACTIVATE_VERSION", MessageKind::ActivateVersion),
            ("BATCH", MessageKind::Batch),
        ];
        KINDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(ty))
            .map(|(_, k)| *k)
    }

    /// The canonical upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Schema => "SCHEMA",
            MessageKind::Record => "RECORD",
            MessageKind::State => "STATE",
            MessageKind::ActivateVersion => "ACTIVATE_VERSION",
            MessageKind::Batch => "BATCH",
        }
    }
}

/// Why a line is not a valid Singer message.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// The line is not JSON.
    #[error("malformed JSON")]
    MalformedJson(#[source] serde_json::Error),
    /// The line is JSON but not an object.
    #[error("message is not a JSON object")]
    NotAnObject,
    /// The object has no `type` member.
    #[error("message has no `type`")]
    MissingType,
    /// A required member is absent.
    #[error("{kind} message has no `{field}`")]
    MissingField {
        /// The message type.
        kind: &'static str,
        /// The missing member.
        field: &'static str,
    },
    /// A member has the wrong JSON type.
    #[error("{kind} message has an invalid `{field}`: expected {expected}")]
    WrongFieldType {
        /// The message type.
        kind: &'static str,
        /// The offending member.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A BATCH names a format or compression outside the spec (a `wrong_field_type`).
    #[error("BATCH of stream `{stream}`{}: {problem}", .file.as_ref().map(|f| format!(", file {f}")).unwrap_or_default())]
    BatchEncoding {
        /// The stream.
        stream: String,
        /// The first manifest entry, if any.
        file: Option<String>,
        /// What is wrong.
        problem: String,
    },
}

impl ParseError {
    /// The conformance-corpus name of this error kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            ParseError::MalformedJson(_) => "malformed_json",
            ParseError::NotAnObject => "not_an_object",
            ParseError::MissingType => "missing_type",
            ParseError::MissingField { .. } => "missing_field",
            ParseError::WrongFieldType { .. } | ParseError::BatchEncoding { .. } => {
                "wrong_field_type"
            }
        }
    }
}

impl Classify for ParseError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// A RECORD whose payload is still raw JSON text borrowed from the input line.
#[derive(Debug, Clone)]
pub struct RecordRef<'a> {
    /// The stream name.
    pub stream: Cow<'a, str>,
    /// The record object as raw JSON text (starts with `{`).
    pub record: &'a RawValue,
    /// The table version, if any.
    pub version: Option<i64>,
    /// `time_extracted`, if any, as given.
    pub time_extracted: Option<Cow<'a, str>>,
}

impl RecordRef<'_> {
    /// Converts into an owned [`RecordMessage`] (parses the payload).
    pub fn to_owned_message(&self) -> Result<RecordMessage, ParseError> {
        let record: Map<String, Value> =
            serde_json::from_str(self.record.get()).map_err(ParseError::MalformedJson)?;
        Ok(RecordMessage {
            stream: self.stream.clone().into_owned(),
            record,
            version: self.version,
            time_extracted: self.time_extracted.as_ref().map(|t| t.clone().into_owned()),
        })
    }
}

/// The result of [`parse_line`].
#[derive(Debug, Clone)]
pub enum MessageRef<'a> {
    /// A RECORD, borrowed.
    Record(RecordRef<'a>),
    /// Any other known message, owned.
    Other(Message),
    /// A message whose `type` is not known; readers skip it.
    Unknown(Cow<'a, str>),
}

/// Every member the hot path looks at, still as raw JSON.
///
/// A member that is present is `Some`, even when it is `null` (so `"record": null` is a wrong
/// type, not a missing member).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow, default, deserialize_with = "present")]
    ty: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    record: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    version: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    time_extracted: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

fn first_non_ws(line: &[u8]) -> Option<u8> {
    line.iter().copied().find(|b| !b.is_ascii_whitespace())
}

/// Distinguishes "not JSON" from "JSON but not an object" for a line that failed to parse.
fn classify_non_object(line: &[u8], err: serde_json::Error) -> ParseError {
    if first_non_ws(line) != Some(b'{') && serde_json::from_slice::<&RawValue>(line).is_ok() {
        ParseError::NotAnObject
    } else {
        ParseError::MalformedJson(err)
    }
}

fn raw_string<'a>(
    raw: &'a RawValue,
    kind: &'static str,
    field: &'static str,
) -> Result<Cow<'a, str>, ParseError> {
    let text = raw.get();
    if !text.starts_with('"') {
        return Err(ParseError::WrongFieldType {
            kind,
            field,
            expected: "a string",
        });
    }
    // Fast path: no escapes, so the text between the quotes is the value.
    let inner = &text[1..text.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(text)
        .map(Cow::Owned)
        .map_err(ParseError::MalformedJson)
}

fn raw_version(raw: Option<&RawValue>, kind: &'static str) -> Result<Option<i64>, ParseError> {
    match raw {
        None => Ok(None),
        Some(r) if r.get() == "null" => Ok(None),
        Some(r) => r
            .get()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ParseError::WrongFieldType {
                kind,
                field: "version",
                expected: "an integer",
            }),
    }
}

/// Parses one line (without its terminator). RECORD payloads stay borrowed.
pub fn parse_line(line: &[u8]) -> Result<MessageRef<'_>, ParseError> {
    if first_non_ws(line) != Some(b'{') {
        // serde would accept a JSON array as a struct; a message must be an object.
        return Err(match serde_json::from_slice::<&RawValue>(line) {
            Ok(_) => ParseError::NotAnObject,
            Err(e) => ParseError::MalformedJson(e),
        });
    }
    let env: Envelope<'_> = match serde_json::from_slice(line) {
        Ok(env) => env,
        Err(e) => return Err(classify_non_object(line, e)),
    };
    let ty_raw = env.ty.ok_or(ParseError::MissingType)?;
    let ty = raw_string(ty_raw, "message", "type")?;
    let Some(kind) = MessageKind::from_type(&ty) else {
        return Ok(MessageRef::Unknown(ty));
    };
    if kind != MessageKind::Record {
        return parse_other(line, kind).map(MessageRef::Other);
    }
    const K: &str = "RECORD";
    let stream = raw_string(env.stream.ok_or(missing(K, "stream"))?, K, "stream")?;
    let record = env.record.ok_or(missing(K, "record"))?;
    if !record.get().starts_with('{') {
        return Err(ParseError::WrongFieldType {
            kind: K,
            field: "record",
            expected: "an object",
        });
    }
    let version = raw_version(env.version, K)?;
    let time_extracted = match env.time_extracted {
        None => None,
        Some(r) if r.get() == "null" => None,
        Some(r) => Some(raw_string(r, K, "time_extracted")?),
    };
    Ok(MessageRef::Record(RecordRef {
        stream,
        record,
        version,
        time_extracted,
    }))
}

fn missing(kind: &'static str, field: &'static str) -> ParseError {
    ParseError::MissingField { kind, field }
}

/// Field extraction from a fully parsed object, with precise errors.
struct Fields {
    kind: &'static str,
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, field: &'static str) -> Result<Value, ParseError> {
        match self.map.remove(field) {
            Some(v) => Ok(v),
            None => Err(missing(self.kind, field)),
        }
    }

    fn string(&mut self, field: &'static str) -> Result<String, ParseError> {
        match self.take(field)? {
            Value::String(s) => Ok(s),
            _ => Err(self.wrong(field, "a string")),
        }
    }

    fn version(&mut self, required: bool) -> Result<Option<i64>, ParseError> {
        match self.map.remove("version") {
            None | Some(Value::Null) if !required => Ok(None),
            None | Some(Value::Null) => Err(missing(self.kind, "version")),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong("version", "an integer")),
            Some(_) => Err(self.wrong("version", "an integer")),
        }
    }

    fn string_list(&self, field: &'static str, v: Value) -> Result<Vec<String>, ParseError> {
        match v {
            Value::Array(items) => items
                .into_iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s),
                    _ => Err(self.wrong(field, "a list of strings")),
                })
                .collect(),
            _ => Err(self.wrong(field, "a list of strings")),
        }
    }

    fn wrong(&self, field: &'static str, expected: &'static str) -> ParseError {
        ParseError::WrongFieldType {
            kind: self.kind,
            field,
            expected,
        }
    }
}

fn parse_other(line: &[u8], kind: MessageKind) -> Result<Message, ParseError> {
    let map: Map<String, Value> =
        serde_json::from_slice(line).map_err(|e| classify_non_object(line, e))?;
    let mut f = Fields {
        kind: kind.as_str(),
        map,
    };
    Ok(match kind {
        MessageKind::Record => {
            let stream = f.string("stream")?;
            let record = match f.take("record")? {
                Value::Object(m) => m,
                _ => return Err(f.wrong("record", "an object")),
            };
            let version = f.version(false)?;
            let time_extracted = match f.map.remove("time_extracted") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s),
                Some(_) => return Err(f.wrong("time_extracted", "a string")),
            };
            Message::Record(RecordMessage {
                stream,
                record,
                version,
                time_extracted,
            })
        }
        MessageKind::Schema => {
            let stream = f.string("stream")?;
            let schema = f.take("schema")?;
            if !schema.is_object() {
                return Err(f.wrong("schema", "an object"));
            }
            // Absent means no keys (MSG-15): the Meltano SDK omits it in places.
            let key_properties = match f.map.remove("key_properties") {
                None => Vec::new(),
                Some(keys) => f.string_list("key_properties", keys)?,
            };
            let bookmark_properties = match f.map.remove("bookmark_properties") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(vec![s]),
                Some(v) => Some(f.string_list("bookmark_properties", v)?),
            };
            Message::Schema(SchemaMessage {
                stream,
                schema,
                key_properties,
                bookmark_properties,
            })
        }
        MessageKind::State => Message::State(StateMessage {
            value: f.take("value")?,
        }),
        MessageKind::ActivateVersion => {
            let stream = f.string("stream")?;
            let version = f.version(true)?.ok_or(missing(f.kind, "version"))?;
            Message::ActivateVersion(ActivateVersionMessage { stream, version })
        }
        MessageKind::Batch => {
            let stream = f.string("stream")?;
            let encoding: BatchEncoding = serde_json::from_value(f.take("encoding")?)
                .map_err(|_| f.wrong("encoding", "an object with `format`"))?;
            let manifest = f.take("manifest")?;
            let manifest = f.string_list("manifest", manifest)?;
            let bad = |problem: String| ParseError::BatchEncoding {
                stream: stream.clone(),
                file: manifest.first().cloned(),
                problem,
            };
            if !BATCH_FORMATS.contains(&encoding.format.as_str()) {
                return Err(bad(format!(
                    "unsupported encoding format `{}` (jsonl, parquet or arrow)",
                    encoding.format
                )));
            }
            if let Some(c) = &encoding.compression
                && !BATCH_COMPRESSIONS.contains(&c.as_str())
            {
                return Err(bad(format!(
                    "unsupported encoding compression `{c}` (gzip, zstd or none)"
                )));
            }
            let version = f.version(false)?;
            Message::Batch(BatchMessage {
                stream,
                encoding,
                manifest,
                version,
            })
        }
    })
}

impl Message {
    /// Parses one line into an owned message; `Ok(None)` for an unknown `type`.
    pub fn parse(line: &[u8]) -> Result<Option<Message>, ParseError> {
        match parse_line(line)? {
            MessageRef::Record(r) => Ok(Some(Message::Record(r.to_owned_message()?))),
            MessageRef::Other(m) => Ok(Some(m)),
            MessageRef::Unknown(_) => Ok(None),
        }
    }

    /// The kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Message::Schema(_) => MessageKind::Schema,
            Message::Record(_) => MessageKind::Record,
            Message::State(_) => MessageKind::State,
            Message::ActivateVersion(_) => MessageKind::ActivateVersion,
            Message::Batch(_) => MessageKind::Batch,
        }
    }

    /// The stream this message belongs to (`None` for STATE).
    pub fn stream(&self) -> Option<&str> {
        match self {
            Message::Schema(m) => Some(&m.stream),
            Message::Record(m) => Some(&m.stream),
            Message::ActivateVersion(m) => Some(&m.stream),
            Message::Batch(m) => Some(&m.stream),
            Message::State(_) => None,
        }
    }

    /// Serialises as one compact JSON line (without the newline).
    pub fn to_line(&self) -> String {
        // Serialising plain data into a String cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_fast_path_borrows() {
        let line = br#"{"type":"record","stream":"s","record":{"a":1.50},"version":7}"#;
        let MessageRef::Record(r) = parse_line(line).unwrap() else {
            panic!("not a record")
        };
        assert!(matches!(r.stream, Cow::Borrowed("s")));
        assert_eq!(r.record.get(), r#"{"a":1.50}"#);
        assert_eq!(r.version, Some(7));
    }

    #[test]
    fn exact_numbers_round_trip() {
        let line = r#"{"type":"RECORD","stream":"s","record":{"d":12345678901234567890123456789012345.123456789012345678901234567890,"i":18446744073709551616,"e":1e+400,"z":-0.0,"t":2.50}}"#;
        let msg = Message::parse(line.as_bytes()).unwrap().unwrap();
        assert_eq!(msg.to_line(), line);
    }

    #[test]
    fn errors_are_classified() {
        let kind = |l: &str| parse_line(l.as_bytes()).unwrap_err().kind_name();
        assert_eq!(kind("{\"type\":"), "malformed_json");
        assert_eq!(kind("[1,2]"), "not_an_object");
        assert_eq!(kind("{\"stream\":\"s\"}"), "missing_type");
        assert_eq!(kind(r#"{"type":"RECORD","record":{}}"#), "missing_field");
        assert_eq!(
            kind(r#"{"type":"RECORD","stream":1,"record":{}}"#),
            "wrong_field_type"
        );
        assert_eq!(
            kind(r#"{"type":"SCHEMA","stream":"s","key_properties":[]}"#),
            "missing_field"
        );
        assert_eq!(
            kind(r#"{"type":"ACTIVATE_VERSION","stream":"s","version":"1"}"#),
            "wrong_field_type"
        );
    }

    #[test]
    fn unknown_type_is_not_an_error() {
        assert!(matches!(
            parse_line(br#"{"type":"TRACE"}"#).unwrap(),
            MessageRef::Unknown(_)
        ));
    }

    #[test]
    fn bookmark_properties_accepts_a_string() {
        let line = br#"{"type":"Schema","stream":"s","schema":{"properties":{}},"key_properties":[],"bookmark_properties":"u"}"#;
        let Some(Message::Schema(s)) = Message::parse(line).unwrap() else {
            panic!()
        };
        assert_eq!(s.bookmark_properties, Some(vec!["u".to_string()]));
    }
}
