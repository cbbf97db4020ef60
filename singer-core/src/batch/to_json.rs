//! Arrow rows back into record objects (raw JSON), the inverse of [`super::from_json`]:
//! decimals keep their scale, timestamps are RFC 3339 in UTC, binary is re-encoded as the
//! schema's `contentEncoding`, JSON columns are embedded as they were written.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Decimal256Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, RecordBatch};
use base64::Engine;

use super::columns::{BatchSchema, ColumnKind};
use crate::moment::{write_date, write_date_time, write_time_of_day};

/// Writes each row of `batch` as a JSON object into a reused buffer and calls `f` with it.
/// `positions[i]` is the stream column of the batch's column `i` (from
/// [`BatchSchema::check_file`]).
pub fn for_each_row<E>(
    batch: &RecordBatch,
    schema: &BatchSchema,
    positions: &[usize],
    mut f: impl FnMut(&str) -> Result<(), E>,
) -> Result<(), E> {
    let keys: Vec<String> = positions
        .iter()
        .map(|&p| serde_json::to_string(&schema.columns[p].name).unwrap_or_default())
        .collect();
    let mut out = String::with_capacity(256);
    for row in 0..batch.num_rows() {
        out.clear();
        out.push('{');
        for (i, col) in batch.columns().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&keys[i]);
            out.push(':');
            write_value(
                col.as_ref(),
                schema.columns[positions[i]].kind,
                row,
                &mut out,
            );
        }
        out.push('}');
        f(&out)?;
    }
    Ok(())
}

/// One value as JSON text.
pub fn write_value(col: &dyn Array, kind: ColumnKind, row: usize, out: &mut String) {
    use std::fmt::Write;
    if col.is_null(row) {
        out.push_str("null");
        return;
    }
    match kind {
        ColumnKind::Boolean => out.push_str(if col.as_boolean().value(row) {
            "true"
        } else {
            "false"
        }),
        ColumnKind::Int16 => {
            let _ = write!(out, "{}", col.as_primitive::<Int16Type>().value(row));
        }
        ColumnKind::Int32 => {
            let _ = write!(out, "{}", col.as_primitive::<Int32Type>().value(row));
        }
        ColumnKind::Int64 => {
            let _ = write!(out, "{}", col.as_primitive::<Int64Type>().value(row));
        }
        ColumnKind::Float64 => {
            let _ = write!(out, "{:?}", col.as_primitive::<Float64Type>().value(row));
        }
        ColumnKind::Decimal128(_, s) => {
            let v = col.as_primitive::<Decimal128Type>().value(row);
            write_scaled(&v.to_string(), s, out);
        }
        ColumnKind::Decimal256(_, s) => {
            let v = col.as_primitive::<Decimal256Type>().value(row);
            write_scaled(&v.to_string(), s, out);
        }
        ColumnKind::DecimalText | ColumnKind::Json => {
            out.push_str(col.as_string::<i32>().value(row))
        }
        ColumnKind::Text => write_json_string(col.as_string::<i32>().value(row), out),
        ColumnKind::Timestamp => {
            out.push('"');
            write_date_time(
                col.as_primitive::<TimestampMicrosecondType>().value(row),
                out,
            );
            out.push('"');
        }
        ColumnKind::Date => {
            out.push('"');
            write_date(i64::from(col.as_primitive::<Date32Type>().value(row)), out);
            out.push('"');
        }
        ColumnKind::Time => {
            out.push('"');
            write_time_of_day(col.as_primitive::<Time64MicrosecondType>().value(row), out);
            out.push('"');
        }
        ColumnKind::Base64 => {
            out.push('"');
            base64::engine::general_purpose::STANDARD
                .encode_string(col.as_binary::<i32>().value(row), out);
            out.push('"');
        }
        ColumnKind::Base16 => {
            out.push('"');
            for b in col.as_binary::<i32>().value(row) {
                let _ = write!(out, "{b:02x}");
            }
            out.push('"');
        }
    }
}

/// An unscaled integer text with `scale` digits after the point (`-150`, 2 → `-1.50`).
pub fn write_scaled(digits: &str, scale: i8, out: &mut String) {
    let (neg, d) = match digits.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, digits),
    };
    if neg {
        out.push('-');
    }
    let s = usize::try_from(scale).unwrap_or(0);
    if s == 0 {
        out.push_str(d);
        return;
    }
    if d.len() <= s {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', s - d.len()));
        out.push_str(d);
    } else {
        let (int, frac) = d.split_at(d.len() - s);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    }
}

fn write_json_string(s: &str, out: &mut String) {
    // serde_json's escaping, without an intermediate allocation per value.
    let mut buf = std::mem::take(out).into_bytes();
    let _ = serde_json::to_writer(&mut buf, s);
    *out = String::from_utf8(buf).unwrap_or_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled() {
        for (d, s, want) in [
            ("-150", 2, "-1.50"),
            ("5", 3, "0.005"),
            ("42", 0, "42"),
            ("0", 2, "0.00"),
        ] {
            let mut out = String::new();
            write_scaled(d, s, &mut out);
            assert_eq!(out, want);
        }
    }
}
