//! Writes one MySQL value as JSON text, exactly: integers and decimals keep every digit, dates
//! are checked before they are called dates, and nothing is rounded.

use std::io::Write as _;

use base64::Engine as _;
use mysql_async::Value;

use crate::column::Kind;
use crate::geojson;

/// Why a value has no faithful JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub(crate) String);

type Res = Result<(), Invalid>;

fn invalid(what: impl Into<String>) -> Invalid {
    Invalid(what.into())
}

/// Appends `value`, a value of a column of `kind`, as JSON.
pub(crate) fn write_json(out: &mut Vec<u8>, kind: &Kind, value: &Value) -> Res {
    if matches!(value, Value::NULL) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    match kind {
        Kind::Int { .. } | Kind::Year => write_integer(out, value),
        Kind::Bool => write_bool(out, value),
        Kind::Bit { .. } => match value {
            Value::Bytes(b) if b.len() <= 8 => {
                let n = b.iter().fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
                write_u64(out, n);
                Ok(())
            }
            other => write_integer(out, other),
        },
        Kind::Decimal { .. } => match value {
            Value::Bytes(b) if is_decimal_text(b) => {
                write_decimal(out, b);
                Ok(())
            }
            other => write_integer(out, other),
        },
        Kind::Float | Kind::Double => match value {
            Value::Float(f) if f.is_finite() => write_float(out, f64::from(*f), &f.to_string()),
            Value::Double(f) if f.is_finite() => write_float(out, *f, &f.to_string()),
            Value::Bytes(b) if is_decimal_text(b) || is_float_text(b) => {
                out.extend_from_slice(b);
                Ok(())
            }
            other => write_integer(out, other),
        },
        Kind::Date => match *value {
            Value::Date(y, m, d, ..) => {
                check_date(y, m, d)?;
                let _ = write!(out, "\"{y:04}-{m:02}-{d:02}\"");
                Ok(())
            }
            _ => Err(unexpected(value)),
        },
        Kind::DateTime | Kind::Timestamp => match *value {
            Value::Date(y, mo, d, h, mi, s, us) => {
                check_date(y, mo, d)?;
                if h > 23 || mi > 59 || s > 59 || us > 999_999 {
                    return Err(invalid("time of day out of range"));
                }
                let _ = write!(out, "\"{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}");
                if us != 0 {
                    let _ = write!(out, ".{us:06}");
                }
                out.extend_from_slice(b"+00:00\"");
                Ok(())
            }
            _ => Err(unexpected(value)),
        },
        Kind::Time => match *value {
            Value::Time(neg, days, h, m, s, us) => {
                let hours = u64::from(days) * 24 + u64::from(h);
                let sign = if neg { "-" } else { "" };
                let _ = write!(out, "\"{sign}{hours:02}:{m:02}:{s:02}");
                if us != 0 {
                    let _ = write!(out, ".{us:06}");
                }
                out.push(b'"');
                Ok(())
            }
            _ => Err(unexpected(value)),
        },
        Kind::Text { .. }
        | Kind::Enum { .. }
        | Kind::Set { .. }
        | Kind::Uuid
        | Kind::Inet { .. } => match value {
            Value::Bytes(b) => {
                write_text(out, b);
                Ok(())
            }
            other => write_scalar_as_string(out, other),
        },
        Kind::Binary { .. } => match value {
            Value::Bytes(b) => {
                out.push(b'"');
                let start = out.len();
                let len = base64::encoded_len(b.len(), true).unwrap_or(0);
                out.resize(start + len, 0);
                let n = base64::engine::general_purpose::STANDARD
                    .encode_slice(b, &mut out[start..])
                    .map_err(|e| invalid(e.to_string()))?;
                out.truncate(start + n);
                out.push(b'"');
                Ok(())
            }
            _ => Err(unexpected(value)),
        },
        Kind::Json => match value {
            Value::Bytes(b) => match serde_json::from_slice::<&serde_json::value::RawValue>(b) {
                Ok(raw) => {
                    out.extend_from_slice(raw.get().as_bytes());
                    Ok(())
                }
                Err(e) => Err(invalid(format!("not valid JSON ({e})"))),
            },
            _ => Err(unexpected(value)),
        },
        Kind::Spatial => match value {
            Value::Bytes(b) => geojson::write_geometry(out, b).map_err(invalid),
            _ => Err(unexpected(value)),
        },
        Kind::Unsupported => Err(invalid("unsupported type")),
    }
}

fn unexpected(value: &Value) -> Invalid {
    let what = match value {
        Value::NULL => "NULL",
        Value::Bytes(_) => "bytes",
        Value::Int(_) => "integer",
        Value::UInt(_) => "unsigned integer",
        Value::Float(_) | Value::Double(_) => "float",
        Value::Date(..) => "date",
        Value::Time(..) => "time",
    };
    invalid(format!("unexpected {what} value"))
}

/// Writes a float in its shortest round-trip form (`plain` is its `Display` text, shortest for
/// its own width), switching to an exponent for very large or small magnitudes.
fn write_float(out: &mut Vec<u8>, v: f64, plain: &str) -> Res {
    let a = v.abs();
    if a != 0.0 && !(1e-6..1e16).contains(&a) {
        // Shortest digits of the original width, then the exponent form of those digits.
        let digits: f64 = plain.parse().unwrap_or(v);
        let _ = write!(out, "{digits:e}");
    } else {
        out.extend_from_slice(plain.as_bytes());
    }
    Ok(())
}

fn write_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn write_integer(out: &mut Vec<u8>, value: &Value) -> Res {
    match value {
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::UInt(u) => write_u64(out, *u),
        Value::Bytes(b) if is_integer_text(b) => out.extend_from_slice(b),
        other => return Err(unexpected(other)),
    }
    Ok(())
}

fn write_bool(out: &mut Vec<u8>, value: &Value) -> Res {
    let n: i128 = match value {
        Value::Int(i) => i128::from(*i),
        Value::UInt(u) => i128::from(*u),
        Value::Bytes(b) if b.len() == 1 && b[0] <= 1 => i128::from(b[0]),
        Value::Bytes(b) if b.as_slice() == b"0" || b.as_slice() == b"1" => i128::from(b[0] - b'0'),
        other => return Err(unexpected(other)),
    };
    match n {
        0 => out.extend_from_slice(b"false"),
        1 => out.extend_from_slice(b"true"),
        n => {
            return Err(invalid(format!(
                "{n} is not a boolean (set tinyint1_as_boolean=false to keep it as an integer)"
            )));
        }
    }
    Ok(())
}

fn is_integer_text(b: &[u8]) -> bool {
    let digits = b.strip_prefix(b"-").unwrap_or(b);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

fn is_decimal_text(b: &[u8]) -> bool {
    let body = b.strip_prefix(b"-").unwrap_or(b);
    let mut dots = 0;
    let mut digits = 0;
    for c in body {
        match c {
            b'0'..=b'9' => digits += 1,
            b'.' => dots += 1,
            _ => return false,
        }
    }
    digits > 0 && dots <= 1
}

fn is_float_text(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(|s| s.parse::<f64>().is_ok_and(f64::is_finite))
}

/// Writes decimal text as a JSON number: `.5` and `-.5` get their leading zero, a trailing `.`
/// is dropped; every digit is kept.
fn write_decimal(out: &mut Vec<u8>, b: &[u8]) {
    let (neg, body) = match b.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, b),
    };
    if neg {
        out.push(b'-');
    }
    if body.first() == Some(&b'.') {
        out.push(b'0');
    }
    out.extend_from_slice(body.strip_suffix(b".").unwrap_or(body));
}

fn write_scalar_as_string(out: &mut Vec<u8>, value: &Value) -> Res {
    out.push(b'"');
    write_integer(out, value)?;
    out.push(b'"');
    Ok(())
}

/// Writes a JSON string from text bytes, which the server sends as utf8mb4 (the binlog decoder
/// converts other character sets first).
pub(crate) fn write_text(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => write_str(out, s),
        Err(_) => write_str(out, &String::from_utf8_lossy(b)),
    }
}

/// Writes a JSON string literal.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn days_in_month(y: u16, m: u8) -> u8 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        2 => 28,
        _ => 0,
    }
}

fn check_date(y: u16, m: u8, d: u8) -> Res {
    if y == 0 && m == 0 && d == 0 {
        return Err(invalid("zero date"));
    }
    if y == 0 || m == 0 || m > 12 || d == 0 || d > days_in_month(y, m) {
        return Err(invalid(format!("invalid date {y:04}-{m:02}-{d:02}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(kind: &Kind, v: Value) -> Result<String, Invalid> {
        let mut out = Vec::new();
        write_json(&mut out, kind, &v)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn dates_times_and_zero_dates() {
        let dt = Kind::DateTime;
        assert_eq!(
            json(&dt, Value::Date(2024, 2, 29, 23, 59, 58, 123_456)).unwrap(),
            "\"2024-02-29T23:59:58.123456+00:00\""
        );
        assert!(json(&dt, Value::Date(0, 0, 0, 0, 0, 0, 0)).is_err());
        assert!(json(&Kind::Date, Value::Date(2022, 11, 0, 0, 0, 0, 0)).is_err());
        assert!(json(&Kind::Date, Value::Date(2023, 2, 29, 0, 0, 0, 0)).is_err());
        assert_eq!(
            json(&Kind::Time, Value::Time(true, 34, 22, 59, 59, 0)).unwrap(),
            "\"-838:59:59\""
        );
    }

    #[test]
    fn numbers_keep_every_digit() {
        let d = Kind::Decimal { scale: 30 };
        let text = "-12345678901234567890123456789012345.123456789012345678901234567890";
        assert_eq!(json(&d, Value::Bytes(text.into())).unwrap(), text);
        assert_eq!(json(&d, Value::Bytes(b"-.5".to_vec())).unwrap(), "-0.5");
        let i = Kind::Int {
            bytes: 8,
            unsigned: true,
        };
        assert_eq!(
            json(&i, Value::UInt(u64::MAX)).unwrap(),
            "18446744073709551615"
        );
    }

    #[test]
    fn floats_are_shortest() {
        assert_eq!(json(&Kind::Float, Value::Float(2.5)).unwrap(), "2.5");
        assert_eq!(json(&Kind::Float, Value::Float(-1e38)).unwrap(), "-1e38");
        assert_eq!(
            json(&Kind::Double, Value::Double(f64::MAX)).unwrap(),
            "1.7976931348623157e308"
        );
        assert_eq!(json(&Kind::Double, Value::Double(0.5)).unwrap(), "0.5");
    }

    #[test]
    fn booleans_never_guess() {
        assert_eq!(json(&Kind::Bool, Value::Int(1)).unwrap(), "true");
        assert_eq!(json(&Kind::Bool, Value::Bytes(vec![0])).unwrap(), "false");
        assert!(json(&Kind::Bool, Value::Int(127)).is_err());
        assert!(json(&Kind::Bool, Value::Int(-1)).is_err());
    }

    #[test]
    fn text_binary_and_json() {
        let t = Kind::Text { latin1: false };
        assert_eq!(
            json(&t, Value::Bytes("a\"\t\n😀".into())).unwrap(),
            "\"a\\\"\\t\\n😀\""
        );
        assert_eq!(
            json(&Kind::Binary { fixed: None }, Value::Bytes(vec![0, 255])).unwrap(),
            "\"AP8=\""
        );
        assert_eq!(
            json(&Kind::Json, Value::Bytes(br#"{"a": [1, 2.50]}"#.to_vec())).unwrap(),
            r#"{"a": [1, 2.50]}"#
        );
        assert!(json(&Kind::Json, Value::Bytes(b"{".to_vec())).is_err());
    }
}
