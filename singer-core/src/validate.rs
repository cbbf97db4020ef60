//! Optional record validation against a stream's JSON Schema, compiled once per schema.
//!
//! Singer schemas are Draft 4 in practice; a schema that declares `$schema` is validated with
//! that draft. With the workspace's arbitrary-precision numbers, `multipleOf: 1e-30` on a
//! `DECIMAL(65,30)` column is checked exactly instead of failing the way float-based
//! validators do.
//!
//! Formats are asserted, not just annotations. `date` and `date-time` are RFC 3339 widened
//! to what databases hold beyond it ([`crate::dates`]): `infinity` and `-infinity`, ISO 8601
//! expanded years (`+294276-12-31T23:59:59.999999+00:00`, `+5874897-12-31`) and
//! astronomical years (`-0043-03-15` is 44 BC, `0000-01-01` is 1 BC), so a target built on
//! this SDK accepts every date a tap on it writes for PostgreSQL's BC dates, years past 9999
//! and infinities.

use serde_json::Value;

use crate::dates::{is_date, is_date_time};
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
    /// Compiles the schema of `stream`: with the draft its `$schema` names, else Draft 4;
    /// formats asserted, `date` and `date-time` by [`is_date`] and [`is_date_time`].
    pub fn new(stream: &str, schema: &Value) -> Result<Self, InvalidSchema> {
        let built = if schema.get("$schema").is_some() {
            jsonschema::options()
                .should_validate_formats(true)
                .with_format("date", is_date)
                .with_format("date-time", is_date_time)
                .build(schema)
        } else {
            jsonschema::draft4::options()
                .should_validate_formats(true)
                .with_format("date", is_date)
                .with_format("date-time", is_date_time)
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

    #[test]
    fn validation_uses_the_widened_formats() {
        use crate::dates::tests::{DATE_TIMES, DATES};
        let schema = json!({"type": "object", "properties": {
            "at": {"type": ["null", "string"], "format": "date-time"},
            "day": {"anyOf": [{"type": "string", "format": "date"}, {"type": "null"}]},
            "n": {"type": "integer"}
        }, "required": ["n"]});
        let v = RecordValidator::new("s", &schema).unwrap();
        for (at, day) in DATE_TIMES.iter().zip(DATES.iter().cycle()) {
            v.validate("s", &json!({"at": at, "day": day, "n": 1}))
                .unwrap();
        }
        let e = v
            .validate("s", &json!({"at": "secret-garbage", "n": 1}))
            .unwrap_err();
        assert_eq!(e.path, "/at");
        assert!(!e.to_string().contains("secret"), "{e}");
        let e = v
            .validate("s", &json!({"day": "-0043-02-29", "n": 1}))
            .unwrap_err();
        assert_eq!(e.path, "/day");
        assert!(v.validate("s", &json!({"at": "infinity"})).is_err());
        let draft7 = json!({"$schema": "http://json-schema.org/draft-07/schema#",
            "properties": {"at": {"type": "string", "format": "date-time"}}});
        let v = RecordValidator::new("s", &draft7).unwrap();
        v.validate("s", &json!({"at": "+294276-12-31T23:59:59.999999+00:00"}))
            .unwrap();
        assert!(v.validate("s", &json!({"at": "tomorrow"})).is_err());
    }
}
