//! Binary COPY encoding of Arrow values (the rows of Parquet BATCH files), column by column.
//!
//! Every value is written as the very bytes [`encode::encode`] writes for the record that
//! holds it, that is for [`to_json::write_value`]'s text of it, so a row loads the same from
//! a BATCH file as from a RECORD message (widening, errors and NUL policy included). The
//! common pairs are converted straight from the Arrow value without any JSON:
//!
//! | Arrow | column |
//! |---|---|
//! | `Int16`/`Int32`/`Int64` | `smallint`, `integer`, `bigint` (range-checked), `numeric`, `double precision`, `text`, `varchar(n)` |
//! | `Float64` | `double precision`, `numeric` |
//! | `Decimal128`/`Decimal256` | `numeric`, from the unscaled integer and the scale |
//! | `Utf8` text | every type, as a JSON string's text is read |
//! | `Utf8` JSON text | every type, as that JSON is read |
//! | `Utf8` exact decimal text | `numeric` |
//! | `Timestamp(µs, UTC)` | `timestamptz`, `timestamp` |
//! | `Date32` | `date`, `timestamptz`, `timestamp` |
//! | `Time64(µs)` | `time` |
//! | `Binary` | `bytea` |
//! | `Boolean` | `boolean` |
//!
//! Any other pair (a column an older table typed differently, `x-sql-datatype` types) goes
//! through the value's JSON text, for that value only.

use std::fmt::Write;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{
    Array, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Decimal256Array, Float64Array,
    Int16Array, Int32Array, Int64Array, StringArray, Time64MicrosecondArray,
    TimestampMicrosecondArray,
};
use singer_core::batch::ColumnKind;
use singer_core::batch::to_json;

use crate::encode::{self, NulPolicy};
use crate::types::{Binary, PgType};
use crate::values;

/// A column's values, downcast once to their Arrow type.
enum Values<'a> {
    Boolean(&'a BooleanArray),
    Int16(&'a Int16Array),
    Int32(&'a Int32Array),
    Int64(&'a Int64Array),
    Float64(&'a Float64Array),
    Decimal128(&'a Decimal128Array, i8),
    Decimal256(&'a Decimal256Array, i8),
    Text(&'a StringArray),
    Json(&'a StringArray),
    DecimalText(&'a StringArray),
    Timestamp(&'a TimestampMicrosecondArray),
    Date(&'a Date32Array),
    Time(&'a Time64MicrosecondArray),
    Binary(&'a BinaryArray, Binary),
}

/// One column of a record batch, ready to encode row by row.
pub struct ArrowColumn<'a> {
    array: &'a dyn Array,
    kind: ColumnKind,
    values: Values<'a>,
}

impl<'a> ArrowColumn<'a> {
    /// The column `array`, holding values of `kind`; an error when its Arrow type is not
    /// that kind's.
    pub fn new(array: &'a dyn Array, kind: ColumnKind) -> Result<Self, String> {
        let values = match kind {
            ColumnKind::Boolean => array.as_boolean_opt().map(Values::Boolean),
            ColumnKind::Int16 => array.as_primitive_opt::<Int16Type>().map(Values::Int16),
            ColumnKind::Int32 => array.as_primitive_opt::<Int32Type>().map(Values::Int32),
            ColumnKind::Int64 => array.as_primitive_opt::<Int64Type>().map(Values::Int64),
            ColumnKind::Float64 => array.as_primitive_opt::<Float64Type>().map(Values::Float64),
            ColumnKind::Decimal128(_, s) => array
                .as_primitive_opt::<Decimal128Type>()
                .map(|a| Values::Decimal128(a, s)),
            ColumnKind::Decimal256(_, s) => array
                .as_primitive_opt::<Decimal256Type>()
                .map(|a| Values::Decimal256(a, s)),
            ColumnKind::Text => array.as_string_opt::<i32>().map(Values::Text),
            ColumnKind::Json => array.as_string_opt::<i32>().map(Values::Json),
            ColumnKind::DecimalText => array.as_string_opt::<i32>().map(Values::DecimalText),
            ColumnKind::Timestamp => array
                .as_primitive_opt::<TimestampMicrosecondType>()
                .map(Values::Timestamp),
            ColumnKind::Date => array.as_primitive_opt::<Date32Type>().map(Values::Date),
            ColumnKind::Time => array
                .as_primitive_opt::<Time64MicrosecondType>()
                .map(Values::Time),
            ColumnKind::Base64 => array
                .as_binary_opt::<i32>()
                .map(|a| Values::Binary(a, Binary::Base64)),
            ColumnKind::Base16 => array
                .as_binary_opt::<i32>()
                .map(|a| Values::Binary(a, Binary::Base16)),
        };
        let values = values.ok_or_else(|| {
            format!(
                "holds {} where {} was expected",
                array.data_type(),
                kind.data_type()
            )
        })?;
        Ok(Self {
            array,
            kind,
            values,
        })
    }

    /// Whether the value of `row` is null.
    pub fn is_null(&self, row: usize) -> bool {
        self.array.is_null(row)
    }

    /// The value of `row` as JSON text (for messages and the fallback), into `out`.
    pub fn write_json(&self, row: usize, out: &mut String) {
        to_json::write_value(self.array, self.kind, row, out);
    }

    /// Encodes the value of `row` for a column of type `ty`. `scratch` is reused text space.
    pub fn encode(
        &self,
        row: usize,
        ty: &PgType,
        binary: Binary,
        nul: NulPolicy,
        scratch: &mut String,
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        if self.array.is_null(row) {
            encode::null(out);
            return Ok(());
        }
        match (&self.values, ty) {
            (Values::Boolean(a), PgType::Boolean) => {
                encode::field(out, &[u8::from(a.value(row))]);
                Ok(())
            }
            (Values::Int16(a), _) => integer(i64::from(a.value(row)), ty, binary, nul, out),
            (Values::Int32(a), _) => integer(i64::from(a.value(row)), ty, binary, nul, out),
            (Values::Int64(a), _) => integer(a.value(row), ty, binary, nul, out),
            (Values::Float64(a), PgType::Double) => encode::encode_f64(a.value(row), out),
            (Values::Float64(a), PgType::Numeric) => {
                let v = a.value(row);
                if !v.is_finite() {
                    return Err("number out of range for numeric".into());
                }
                scratch.clear();
                let _ = write!(scratch, "{v:?}");
                encode::field_with(out, |o| values::decimal_to_numeric(scratch, o))
            }
            (Values::Decimal128(a, scale), PgType::Numeric) => {
                let v = a.value(row);
                let mut buf = [0u8; 40];
                let digits = digits_of(v.unsigned_abs(), &mut buf);
                encode::field_with(out, |o| {
                    values::unscaled_to_numeric(v < 0, digits, *scale, o)
                })
            }
            (Values::Decimal256(a, scale), PgType::Numeric) => {
                scratch.clear();
                let _ = write!(scratch, "{}", a.value(row));
                let (negative, digits) = match scratch.strip_prefix('-') {
                    Some(d) => (true, d),
                    None => (false, scratch.as_str()),
                };
                encode::field_with(out, |o| {
                    values::unscaled_to_numeric(negative, digits.as_bytes(), *scale, o)
                })
            }
            (Values::Text(a), _) => encode::encode_str(ty, binary, a.value(row), nul, out),
            (Values::Json(a), _) => {
                let text = a.value(row);
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map_err(|e| format!("malformed JSON text: {e}"))?;
                encode::encode(ty, binary, text, nul, out)
            }
            (Values::DecimalText(a), PgType::Numeric) => {
                encode::field_with(out, |o| values::decimal_to_numeric(a.value(row), o))
            }
            (Values::Timestamp(a), PgType::Timestamptz | PgType::Timestamp) => {
                let t = values::timestamp_from_unix(a.value(row))?;
                encode::field(out, &t.to_be_bytes());
                Ok(())
            }
            (Values::Date(a), PgType::Date) => {
                let d = values::date_from_unix(i64::from(a.value(row)))?;
                encode::field(out, &d.to_be_bytes());
                Ok(())
            }
            (Values::Date(a), PgType::Timestamptz | PgType::Timestamp) => {
                let t = values::date_timestamp_from_unix(i64::from(a.value(row)))?;
                encode::field(out, &t.to_be_bytes());
                Ok(())
            }
            (Values::Time(a), PgType::Time) => {
                let t = values::time_of_day(a.value(row))?;
                encode::field(out, &t.to_be_bytes());
                Ok(())
            }
            (Values::Binary(a, encoding), PgType::Bytea) if *encoding == binary => {
                encode::field(out, a.value(row));
                Ok(())
            }
            (Values::DecimalText(a), _) => {
                // The text is written bare in JSON: it must be a number to be read as one.
                let text = a.value(row);
                if text.is_empty() || !text.bytes().all(|b| b"0123456789+-.eE".contains(&b)) {
                    return Err("expected a decimal number".into());
                }
                encode::encode(ty, binary, text, nul, out)
            }
            _ => {
                scratch.clear();
                to_json::write_value(self.array, self.kind, row, scratch);
                encode::encode(ty, binary, scratch, nul, out)
            }
        }
    }
}

/// An integer for any column type: integer types directly, others from its digits as the
/// JSON number they are.
fn integer(
    v: i64,
    ty: &PgType,
    binary: Binary,
    nul: NulPolicy,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match ty {
        PgType::SmallInt | PgType::Integer | PgType::BigInt => {
            encode::encode_integer(ty, i128::from(v), out)
        }
        PgType::Double => encode::encode_f64(v as f64, out),
        _ => {
            let mut buf = [0u8; 40];
            let digits = digits_of(u128::from(v.unsigned_abs()), &mut buf);
            if *ty == PgType::Numeric {
                return encode::field_with(out, |o| {
                    values::unscaled_to_numeric(v < 0, digits, 0, o)
                });
            }
            // `-` and the digits: at most 20 ASCII bytes.
            let mut text = [0u8; 41];
            let start = usize::from(v >= 0);
            text[0] = b'-';
            text[1..=digits.len()].copy_from_slice(digits);
            let text = std::str::from_utf8(&text[start..=digits.len()]).unwrap_or("0");
            encode::encode(ty, binary, text, nul, out)
        }
    }
}

/// The decimal digits of `v` (`0` for zero), written into the end of `buf`.
fn digits_of(mut v: u128, buf: &mut [u8; 40]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            return &buf[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::RecordBatch;
    use serde_json::json;
    use serde_json::value::RawValue;
    use singer_core::StreamSchema;
    use singer_core::batch::{BatchSchema, RowsBuilder};

    use super::*;

    fn batch(props: serde_json::Value, rows: &[serde_json::Value]) -> (BatchSchema, RecordBatch) {
        let schema = StreamSchema::compile("s", &json!({ "properties": props }), &[]).unwrap();
        let columns = Arc::new(BatchSchema::new(&schema));
        let mut builder = RowsBuilder::new(columns.clone());
        for r in rows {
            let raw = RawValue::from_string(r.to_string()).unwrap();
            builder.push(&raw).unwrap_or_else(|e| panic!("{r}: {e}"));
        }
        ((*columns).clone(), builder.finish())
    }

    fn types() -> Vec<(PgType, Binary)> {
        let mut all: Vec<(PgType, Binary)> = [
            PgType::Boolean,
            PgType::SmallInt,
            PgType::Integer,
            PgType::BigInt,
            PgType::Numeric,
            PgType::Double,
            PgType::Varchar(3),
            PgType::Text,
            PgType::Jsonb,
            PgType::Timestamptz,
            PgType::Timestamp,
            PgType::Date,
            PgType::Time,
            PgType::Uuid,
            PgType::Custom("numeric(40,2)".into()),
            PgType::Custom("timestamp(3)".into()),
        ]
        .into_iter()
        .map(|t| (t, Binary::None))
        .collect();
        for b in [Binary::None, Binary::Base64, Binary::Base16] {
            all.push((PgType::Bytea, b));
        }
        all
    }

    /// Every value of every column, for every column type and NUL policy: the direct encoding
    /// is byte for byte the one of the value's JSON text, or both fail alike.
    fn assert_same_as_json(props: serde_json::Value, rows: &[serde_json::Value]) {
        let (schema, batch) = batch(props, rows);
        let mut scratch = String::new();
        for (c, array) in batch.columns().iter().enumerate() {
            let kind = schema.columns[c].kind;
            let name = &schema.columns[c].name;
            let col = ArrowColumn::new(array.as_ref(), kind).unwrap();
            for (ty, binary) in types() {
                for nul in [NulPolicy::Replace, NulPolicy::Strip, NulPolicy::Reject] {
                    for row in 0..batch.num_rows() {
                        let mut direct = Vec::new();
                        let d = col.encode(row, &ty, binary, nul, &mut scratch, &mut direct);
                        let mut text = String::new();
                        to_json::write_value(array.as_ref(), kind, row, &mut text);
                        let mut via = Vec::new();
                        let v = encode::encode(&ty, binary, &text, nul, &mut via);
                        let what = format!("{name} ({kind:?}) row {row} = {text} as {ty:?}");
                        match (d, v) {
                            // jsonb: the same JSON value (escapes may be spelled differently).
                            (Ok(()), Ok(())) if ty == PgType::Jsonb && direct.len() > 5 => {
                                let value = |b: &[u8]| {
                                    serde_json::from_slice::<serde_json::Value>(&b[5..]).unwrap()
                                };
                                assert_eq!(value(&direct), value(&via), "{what}");
                            }
                            (Ok(()), Ok(())) => assert_eq!(direct, via, "{what}"),
                            (Err(a), Err(b)) => assert_eq!(a, b, "{what}"),
                            (d, v) => panic!("{what}: direct {d:?}, via JSON {v:?}"),
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn numbers_encode_as_their_json() {
        assert_same_as_json(
            json!({
                "i16": {"type": ["null", "integer"], "minimum": -32768, "maximum": 32767},
                "i32": {"type": ["null", "integer"], "minimum": -2147483648i64, "maximum": 2147483647},
                "i64": {"type": ["null", "integer"]},
                "f64": {"type": ["null", "number"]},
                "d128": {"type": ["null", "number"], "multipleOf": 0.01},
                "d0": {"type": ["null", "integer"], "minimum": 0, "maximum": 18446744073709551615u64},
                "d256": {"type": ["null", "number"], "multipleOf": 0.001, "maximum": 1e60},
                "dtext": {"type": ["null", "number"], "x-sql-datatype": "numeric"},
                "flag": {"type": ["null", "boolean"]},
            }),
            &[
                json!({"i16": -32768, "i32": 2147483647, "i64": 9223372036854775807i64, "f64": 0.1,
                       "d128": "12345678901234567890123456789012.34", "d0": 18446744073709551615u64,
                       "d256": "-123456789012345678901234567890123456789012345.678", "dtext": 100000, "flag": true}),
                json!({"i16": 0, "i32": -1, "i64": -9223372036854775808i64, "f64": -0.0,
                       "d128": -1.5, "d0": 0, "d256": 0, "dtext": "-0", "flag": false}),
                json!({"i16": 32767, "i32": 1, "i64": 100, "f64": 1e300, "d128": 0.01,
                       "d0": 10000, "d256": 1e59, "dtext": 1250}),
                json!({"i16": 5, "i32": 123, "i64": 1234, "f64": 5e-324, "d128": 0,
                       "d0": 99999999, "d256": 0.001, "dtext": "1e100"}),
                json!({"f64": 123456789.123, "d128": -0.05}),
                json!({"f64": 1.0, "d128": 100}),
                json!({}),
            ],
        );
    }

    #[test]
    fn text_json_and_binary_encode_as_their_json() {
        assert_same_as_json(
            json!({
                "s": {"type": ["null", "string"]},
                "j": {},
                "b64": {"type": ["null", "string"], "contentEncoding": "base64"},
                "b16": {"type": ["null", "string"], "contentEncoding": "base16"},
            }),
            &[
                json!({"s": "abc", "j": {"a": [1, 2, {"b": null}], "n": 1.50}, "b64": "AAEC/w==", "b16": "00ff10"}),
                json!({"s": "a\u{0}b", "j": "x\u{0}y", "b64": "", "b16": ""}),
                json!({"s": "é\"q\\ 🚀", "j": 42, "b64": "/w=="}),
                json!({"s": "2024-01-02", "j": true}),
                json!({"s": "-0043-03-15T12:00:00+01:00", "j": [1, null]}),
                json!({"s": "123e4567-e89b-12d3-a456-426614174000", "j": "123e4567-e89b-12d3-a456-426614174000"}),
                json!({"s": "true", "j": "2024-01-02T03:04:05Z"}),
                json!({"s": "42", "j": serde_json::from_str::<serde_json::Value>("1e400").unwrap()}),
                json!({"s": "1.50", "j": -7}),
                json!({"s": "", "j": ""}),
                json!({"s": "AAEC/w==", "j": {"k": "\u{0}"}}),
                json!({"s": "00:01:02"}),
                json!({}),
            ],
        );
    }

    #[test]
    fn dates_and_times_encode_as_their_json() {
        assert_same_as_json(
            json!({
                "at": {"type": ["null", "string"], "format": "date-time"},
                "day": {"type": ["null", "string"], "format": "date"},
                "clock": {"type": ["null", "string"], "format": "time"},
            }),
            &[
                json!({"at": "2024-03-01T12:34:56.123456+02:00", "day": "2024-02-29", "clock": "00:00:00"}),
                json!({"at": "-4713-11-24T00:00:00Z", "day": "-4713-11-24", "clock": "23:59:59.999999"}),
                json!({"at": "-4713-11-23T23:59:59.999999Z", "day": "-4713-11-23", "clock": "24:00:00"}),
                json!({"at": "+294246-12-31T23:59:59.999999Z", "day": "+5874897-12-31", "clock": "12:00:00.5"}),
                json!({"day": "+5874898-01-01"}),
                json!({"at": "0000-01-01T00:00:00Z", "day": "0000-01-01"}),
                json!({"at": "1970-01-01T00:00:00Z", "day": "1970-01-01"}),
                json!({"at": "-0043-03-15T06:07:08.5+00:00", "day": "-0043-03-15"}),
                json!({}),
            ],
        );
    }

    #[test]
    fn a_column_of_another_type_is_refused() {
        let (_, batch) = batch(json!({"n": {"type": "integer"}}), &[json!({"n": 1})]);
        let e = ArrowColumn::new(batch.column(0).as_ref(), ColumnKind::Text)
            .err()
            .unwrap();
        assert_eq!(e, "holds Int64 where Utf8 was expected");
    }

    #[test]
    fn digits() {
        let mut buf = [0u8; 40];
        assert_eq!(digits_of(0, &mut buf), b"0");
        assert_eq!(
            digits_of(u128::MAX, &mut buf),
            u128::MAX.to_string().as_bytes()
        );
        assert_eq!(digits_of(10_000, &mut buf), b"10000");
    }
}
