//! A stream's columns as BATCH files hold them: each top-level property of the compiled JSON
//! Schema gets one exact Arrow type.
//!
//! | JSON Schema | Arrow |
//! |---|---|
//! | `integer` within ±2¹⁵ / ±2³¹ / ±2⁶³ (from `minimum`/`maximum`; unbounded is 64-bit) | `Int16` / `Int32` / `Int64` |
//! | `integer` with bounds beyond 64 bits (`BIGINT UNSIGNED`) | `Decimal128(p, 0)` |
//! | `number` with a power-of-ten `multipleOf` (scale `s`), precision `p` from the bounds, else 38 | `Decimal128(p, s)` up to 38 digits, `Decimal256(p, s)` up to 76, else exact text |
//! | `number` otherwise (`x-sql-datatype` numeric/decimal: exact text) | `Float64`, refusing values a double cannot hold exactly |
//! | `boolean` | `Boolean` |
//! | `string` `format: date-time` | `Timestamp(µs, "+00:00")` (UTC) |
//! | `string` `format: date` | `Date32` |
//! | `string` `format: time` | `Time64(µs)` |
//! | `string` with `contentEncoding` base64/base16 | `Binary` (decoded bytes) |
//! | other `string` (uuid, `singer.decimal`, …) | `Utf8` |
//! | `object`, `array`, unions, untyped | `Utf8` holding the JSON text (field metadata `singer.json = true`) |
//!
//! Every field is nullable. Values a type cannot hold (`infinity`, a date-time beyond ±292 277
//! years, a 40-digit decimal in `Decimal128(38, s)`) are errors naming the column, never
//! rounded or dropped.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::schema::{ContentEncoding, JsonType, Property, StreamSchema, StringFormat};

/// The UTC time zone of every timestamp column (an offset, so no time zone database is needed).
pub const UTC: &str = "+00:00";
/// Field metadata marking a column of JSON text.
pub const JSON_METADATA: &str = "singer.json";

/// How one column's values are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `Boolean`.
    Boolean,
    /// `Int16`.
    Int16,
    /// `Int32`.
    Int32,
    /// `Int64`.
    Int64,
    /// `Float64`.
    Float64,
    /// `Decimal128(precision, scale)`.
    Decimal128(u8, i8),
    /// `Decimal256(precision, scale)`.
    Decimal256(u8, i8),
    /// A decimal too wide for Arrow, as its exact text.
    DecimalText,
    /// A string.
    Text,
    /// Any JSON value, as its text.
    Json,
    /// `Timestamp(µs, UTC)`.
    Timestamp,
    /// `Date32`.
    Date,
    /// `Time64(µs)`.
    Time,
    /// `Binary`, written in JSON as base64.
    Base64,
    /// `Binary`, written in JSON as hexadecimal.
    Base16,
}

impl ColumnKind {
    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnKind::Boolean => DataType::Boolean,
            ColumnKind::Int16 => DataType::Int16,
            ColumnKind::Int32 => DataType::Int32,
            ColumnKind::Int64 => DataType::Int64,
            ColumnKind::Float64 => DataType::Float64,
            ColumnKind::Decimal128(p, s) => DataType::Decimal128(p, s),
            ColumnKind::Decimal256(p, s) => DataType::Decimal256(p, s),
            ColumnKind::DecimalText | ColumnKind::Text | ColumnKind::Json => DataType::Utf8,
            ColumnKind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into())),
            ColumnKind::Date => DataType::Date32,
            ColumnKind::Time => DataType::Time64(TimeUnit::Microsecond),
            ColumnKind::Base64 | ColumnKind::Base16 => DataType::Binary,
        }
    }

    /// The kind of a property.
    pub fn of(p: &Property) -> Self {
        let numeric_sql = p.sql_datatype.as_deref().is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t.starts_with("numeric") || t.starts_with("decimal")
        });
        match &p.ty {
            JsonType::Boolean => ColumnKind::Boolean,
            JsonType::Integer { minimum, maximum } => {
                let bound = |n: &Option<serde_json::Number>| {
                    n.as_ref().map(|n| n.to_string().parse::<i128>().ok())
                };
                match (bound(minimum), bound(maximum)) {
                    (Some(Some(lo)), Some(Some(hi))) => integer_kind(lo, hi),
                    (Some(None), _) | (_, Some(None)) => ColumnKind::Decimal128(38, 0),
                    _ => ColumnKind::Int64,
                }
            }
            JsonType::Number {
                minimum, maximum, ..
            } => match p.ty.decimal_scale() {
                Some(scale) => decimal_kind(scale, minimum.iter().chain(maximum)),
                None if numeric_sql => ColumnKind::DecimalText,
                None => ColumnKind::Float64,
            },
            JsonType::String {
                format,
                content_encoding,
                ..
            } => match (content_encoding, format) {
                (Some(ContentEncoding::Base64), _) => ColumnKind::Base64,
                (Some(ContentEncoding::Base16), _) => ColumnKind::Base16,
                (None, Some(StringFormat::DateTime)) => ColumnKind::Timestamp,
                (None, Some(StringFormat::Date)) => ColumnKind::Date,
                (None, Some(StringFormat::Time)) => ColumnKind::Time,
                _ => ColumnKind::Text,
            },
            JsonType::Object { .. }
            | JsonType::Array { .. }
            | JsonType::Union(_)
            | JsonType::Untyped => ColumnKind::Json,
        }
    }
}

fn integer_kind(lo: i128, hi: i128) -> ColumnKind {
    let within = |min: i128, max: i128| lo >= min && hi <= max;
    if within(i16::MIN.into(), i16::MAX.into()) {
        ColumnKind::Int16
    } else if within(i32::MIN.into(), i32::MAX.into()) {
        ColumnKind::Int32
    } else if within(i64::MIN.into(), i64::MAX.into()) {
        ColumnKind::Int64
    } else {
        let digits = lo.unsigned_abs().max(hi.unsigned_abs()).to_string().len();
        ColumnKind::Decimal128(digits.clamp(1, 38) as u8, 0)
    }
}

/// A decimal of `scale` digits after the point; its precision from the widest bound, else 38.
fn decimal_kind<'a>(
    scale: u32,
    bounds: impl Iterator<Item = &'a serde_json::Number>,
) -> ColumnKind {
    let int_digits = bounds.map(|b| integer_digits(&b.to_string())).max();
    let precision = match int_digits {
        Some(d) => d + scale as usize,
        None => 38.max(scale as usize),
    }
    .max(scale as usize)
    .max(1);
    match (precision, i8::try_from(scale)) {
        (p @ ..=38, Ok(s)) => ColumnKind::Decimal128(p as u8, s),
        (p @ ..=76, Ok(s)) => ColumnKind::Decimal256(p as u8, s),
        _ => ColumnKind::DecimalText,
    }
}

/// Digits before the point of a decimal text (`-999.99` → 3, `1e60` → 61, `0.5` → 0).
fn integer_digits(text: &str) -> usize {
    let t = text.trim().trim_start_matches(['-', '+']);
    let (mantissa, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (t, 0),
    };
    let int = mantissa.split('.').next().unwrap_or("");
    let int = int.trim_start_matches('0');
    if int.is_empty() {
        // 0.x: digits appear before the point only for a large enough exponent.
        let frac = mantissa.split('.').nth(1).unwrap_or("");
        let lead = frac.len() - frac.trim_start_matches('0').len();
        return usize::try_from(exp - lead as i64).unwrap_or(0);
    }
    usize::try_from(int.len() as i64 + exp).unwrap_or(0)
}

/// One column: its name and kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The property name.
    pub name: String,
    /// How values are held.
    pub kind: ColumnKind,
}

/// A stream's columns and their Arrow schema.
#[derive(Debug, Clone)]
pub struct BatchSchema {
    /// The stream.
    pub stream: String,
    /// The columns, in schema order.
    pub columns: Vec<Column>,
    /// The Arrow schema of those columns.
    pub arrow: SchemaRef,
    index: HashMap<String, usize>,
}

impl BatchSchema {
    /// The columns of a compiled stream schema.
    pub fn new(schema: &StreamSchema) -> Self {
        let columns: Vec<Column> = schema
            .properties
            .iter()
            .map(|p| Column {
                name: p.name.clone(),
                kind: ColumnKind::of(p),
            })
            .collect();
        let fields: Vec<Field> = columns
            .iter()
            .map(|c| {
                let f = Field::new(&c.name, c.kind.data_type(), true);
                if c.kind == ColumnKind::Json {
                    f.with_metadata(HashMap::from([(JSON_METADATA.into(), "true".into())]))
                } else {
                    f
                }
            })
            .collect();
        let index = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Self {
            stream: schema.stream.clone(),
            columns,
            arrow: Arc::new(Schema::new(fields)),
            index,
        }
    }

    /// The position of a column.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Checks a file's Arrow schema against this one: every file column must be a column of
    /// the stream with the same type (columns the file lacks read as null). Returns, for
    /// each file column, its position here.
    pub fn check_file(&self, file: &Schema) -> Result<Vec<usize>, String> {
        file.fields()
            .iter()
            .map(|f| {
                let i = self.position(f.name()).ok_or_else(|| {
                    format!("column `{}` is not in the stream's SCHEMA", f.name())
                })?;
                let want = self.columns[i].kind.data_type();
                if !same_type(f.data_type(), &want) {
                    return Err(format!(
                        "column `{}` is {} in the file but the SCHEMA makes it {want}",
                        f.name(),
                        f.data_type()
                    ));
                }
                Ok(i)
            })
            .collect()
    }
}

/// Equal types; a timestamp's UTC may be spelled `+00:00`, `UTC` or `Z`.
fn same_type(a: &DataType, b: &DataType) -> bool {
    match (a, b) {
        (DataType::Timestamp(u1, Some(z1)), DataType::Timestamp(u2, Some(z2))) => {
            let utc = |z: &str| matches!(z, "+00:00" | "UTC" | "Z" | "+00" | "Etc/UTC");
            u1 == u2 && utc(z1) && utc(z2)
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kinds(schema: serde_json::Value) -> Vec<ColumnKind> {
        let s = StreamSchema::compile("s", &schema, &[]).unwrap();
        BatchSchema::new(&s)
            .columns
            .iter()
            .map(|c| c.kind)
            .collect()
    }

    #[test]
    fn exact_types() {
        let k = kinds(json!({"properties": {
            "small": {"type": "integer", "minimum": -32768, "maximum": 32767},
            "int": {"type": "integer", "minimum": 0, "maximum": 4294967295u64},
            "big": {"type": "integer"},
            "ubig": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64},
            "money": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 999.99, "minimum": -999.99},
            "dec": {"type": "number", "multipleOf": 1e-30},
            "wide": {"type": "number", "multipleOf": 0.1, "maximum": 1e60},
            "huge": {"type": "number", "multipleOf": 1, "maximum": 1e100},
            "float": {"type": "number"},
            "numeric": {"type": "number", "x-sql-datatype": "numeric"},
            "ts": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "format": "date"},
            "t": {"type": "string", "format": "time"},
            "b": {"type": "string", "contentEncoding": "base64"},
            "o": {"type": "object"},
            "u": {"type": ["integer", "string"]},
        }}));
        use ColumnKind::*;
        assert_eq!(
            k,
            vec![
                Int16,
                Int64,
                Int64,
                Decimal128(20, 0),
                Decimal128(5, 2),
                Decimal128(38, 30),
                Decimal256(62, 1),
                DecimalText,
                Float64,
                DecimalText,
                Timestamp,
                Date,
                Time,
                Base64,
                Json,
                Json
            ]
        );
    }
}
