//! Optional record validation against a stream's JSON Schema, compiled once per schema.
//!
//! Singer schemas are Draft 4 in practice; a schema that declares `$schema` is validated with
//! that draft. With the workspace's arbitrary-precision numbers, `multipleOf: 1e-30` on a
//! `DECIMAL(65,30)` column is checked exactly instead of failing the way float-based
//! validators do.

use serde_json::Value;

use crate::error::{Classify, ErrorClass};

/// A compiled validator for one stream schema.
pub struct RecordValidator {
    inner: jsonschema::Validator,
}

/// The schema itself is not valid JSON Schema.
#[derive(Debug, thiserror::Error)]
#[error("stream `{stream}` has an invalid JSON Schema: {message}")]
pub struct InvalidSchema {
    /// The stream.
    pub stream: String,
    /// What the compiler said.
    pub message: String,
}

/// A record that does not match its schema.
#[derive(Debug, thiserror::Error)]
#[error("record does not match the schema of stream `{stream}` at `{path}`: {message}")]
pub struct InvalidRecord {
    /// The stream.
    pub stream: String,
    /// JSON pointer of the offending value (`/price`).
    pub path: String,
    /// The validator's message (never the record itself).
    pub message: String,
}

impl Classify for InvalidRecord {
    fn class(&self) -> ErrorClass {
        ErrorClass::Skippable
    }
}

impl RecordValidator {
    /// Compiles the schema of `stream`.
    pub fn new(stream: &str, schema: &Value) -> Result<Self, InvalidSchema> {
        let built = if schema.get("$schema").is_some() {
            jsonschema::options()
                .should_validate_formats(true)
                .build(schema)
        } else {
            jsonschema::draft4::options()
                .should_validate_formats(true)
                .build(schema)
        };
        built
            .map(|inner| Self { inner })
            .map_err(|e| InvalidSchema {
                stream: stream.to_string(),
                message: e.to_string(),
            })
    }

    /// Validates one record; the error names the first offending path.
    pub fn validate(&self, stream: &str, record: &Value) -> Result<(), InvalidRecord> {
        match self.inner.iter_errors(record).next() {
            None => Ok(()),
            Some(e) => Err(InvalidRecord {
                stream: stream.to_string(),
                path: e.instance_path().to_string(),
                message: describe(&e),
            }),
        }
    }
}

/// The kind of violation, without echoing the offending value (it may be sensitive).
fn describe(e: &jsonschema::ValidationError<'_>) -> String {
    let text = e.to_string();
    // jsonschema's messages start with the offending value; keep only what follows "is".
    match text.find(" is ") {
        Some(i) => format!("value{}", &text[i..]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tiny_multiple_of_is_exact() {
        let schema =
            json!({"type": "object", "properties": {"d": {"type": "number", "multipleOf": 1e-30}}});
        let v = RecordValidator::new("s", &schema).unwrap();
        let ok: Value = serde_json::from_str(
            r#"{"d": 12345678901234567890123456789012345.123456789012345678901234567890}"#,
        )
        .unwrap();
        v.validate("s", &ok).unwrap();
        let bad: Value =
            serde_json::from_str(r#"{"d": 0.0000000000000000000000000000001}"#).unwrap();
        assert!(v.validate("s", &bad).is_err());
    }

    #[test]
    fn error_names_path_not_value() {
        let schema = json!({"type": "object", "properties": {"at": {"type": "string", "format": "date-time"}}});
        let v = RecordValidator::new("s", &schema).unwrap();
        let e = v
            .validate("s", &json!({"at": "secret-not-a-date"}))
            .unwrap_err();
        assert_eq!(e.path, "/at");
        assert!(!e.to_string().contains("secret"), "{e}");
    }
}
