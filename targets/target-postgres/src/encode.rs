//! Binary COPY encoding of raw JSON values, column by column.
//!
//! Values arrive as raw JSON text (never parsed into a tree) and are written in PostgreSQL's
//! binary COPY format. Each encoder accepts every JSON value its column type can hold
//! faithfully (a `text` column takes numbers as their text, a `numeric` column takes strings
//! holding decimals) and rejects the rest with a message that never quotes the value.

use std::borrow::Cow;

use base64::Engine;

use crate::types::{Binary, PgType};
use crate::values::{
    date_days, decimal_to_numeric, pg_datetime_text, time_micros, timestamp_micros,
};

/// What to do with U+0000, which PostgreSQL text and jsonb cannot hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NulPolicy {
    /// Replace it with U+FFFD (default).
    #[default]
    Replace,
    /// Remove it.
    Strip,
    /// Fail the run, naming the stream, column, key and line.
    Reject,
}

/// The binary COPY header.
pub const COPY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The binary COPY trailer.
pub const COPY_TRAILER: &[u8] = &[0xff, 0xff];

/// Starts a row of `fields` columns.
pub fn begin_row(out: &mut Vec<u8>, fields: usize) {
    out.extend_from_slice(&(fields as i16).to_be_bytes());
}

/// The fields of one encoded row (`None` for NULL); stops early on a malformed row.
pub fn fields(row: &[u8]) -> impl Iterator<Item = Option<&[u8]>> {
    let mut at = 2;
    std::iter::from_fn(move || {
        let len = i32::from_be_bytes(row.get(at..at + 4)?.try_into().ok()?);
        at += 4;
        if len < 0 {
            return Some(None);
        }
        let value = row.get(at..at + len as usize)?;
        at += len as usize;
        Some(Some(value))
    })
}

/// Writes a NULL field.
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

/// Writes a field from its bytes.
pub fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Writes a field whose bytes `f` appends.
pub fn field_with<F: FnOnce(&mut Vec<u8>) -> Result<(), String>>(
    out: &mut Vec<u8>,
    f: F,
) -> Result<(), String> {
    let at = out.len();
    out.extend_from_slice(&[0, 0, 0, 0]);
    f(out)?;
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Encodes one raw JSON value (`null` included) for a column of type `ty`.
pub fn encode(
    ty: &PgType,
    binary: Binary,
    raw: &str,
    nul: NulPolicy,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    if raw == "null" {
        null(out);
        return Ok(());
    }
    // A string is read as its text, except by `jsonb`, which keeps the JSON token.
    if raw.starts_with('"') && *ty != PgType::Jsonb {
        let s = string(raw).ok_or("expected a string")?;
        return encode_str(ty, binary, &s, nul, out);
    }
    match ty {
        PgType::Boolean => {
            let v = match raw {
                "true" | "1" => 1u8,
                "false" | "0" => 0u8,
                _ => return Err("expected a boolean".into()),
            };
            field(out, &[v]);
        }
        PgType::SmallInt | PgType::Integer | PgType::BigInt => {
            encode_integer(ty, integer_text(raw)?, out)?;
        }
        PgType::Numeric => {
            let text = number_text(raw)?;
            field_with(out, |o| decimal_to_numeric(text, o))?;
        }
        PgType::Double => encode_double(number_text(raw)?, out)?,
        // Numbers, booleans, objects: their JSON text.
        PgType::Varchar(_) | PgType::Text | PgType::Custom(_) => {
            encode_str(ty, binary, raw, nul, out)?;
        }
        PgType::Jsonb => {
            let json = json_without_nul(raw, nul)?;
            field_with(out, |o| {
                o.push(1);
                o.extend_from_slice(json.as_bytes());
                Ok(())
            })?;
        }
        PgType::Timestamptz | PgType::Timestamp => return Err("expected a date-time string".into()),
        PgType::Date => return Err("expected a date string".into()),
        PgType::Time => return Err("expected a time string".into()),
        PgType::Uuid => return Err("expected a UUID string".into()),
        PgType::Bytea => return Err("expected a string".into()),
    }
    Ok(())
}

/// Encodes a text value (a JSON string's decoded text, or the JSON text of another value for
/// the text types) for a column of type `ty`; `jsonb` stores it as a JSON string.
pub fn encode_str(
    ty: &PgType,
    binary: Binary,
    s: &str,
    nul: NulPolicy,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match ty {
        PgType::Boolean => {
            let v = match s {
                "true" => 1u8,
                "false" => 0u8,
                _ => return Err("expected a boolean".into()),
            };
            field(out, &[v]);
        }
        PgType::SmallInt | PgType::Integer | PgType::BigInt => {
            encode_integer(ty, integer_text(s)?, out)?;
        }
        PgType::Numeric => field_with(out, |o| decimal_to_numeric(s, o))?,
        PgType::Double => encode_double(s, out)?,
        PgType::Varchar(n) => {
            let s = without_nul(s, nul)?;
            if s.chars().count() > *n as usize {
                return Err(format!("text longer than varchar({n})"));
            }
            field(out, s.as_bytes());
        }
        PgType::Custom(t) if is_datetime_type(t) => {
            // Staged as text and cast by PostgreSQL, whose input rejects expanded and
            // astronomical years: those are rewritten the way it reads them.
            let s = without_nul(s, nul)?;
            match pg_datetime_text(&s) {
                Some(text) => field(out, text.as_bytes()),
                None => field(out, s.as_bytes()),
            }
        }
        PgType::Text | PgType::Custom(_) => {
            let s = without_nul(s, nul)?;
            field(out, s.as_bytes());
        }
        PgType::Jsonb => {
            let s = without_nul(s, nul).map_err(|_| "JSON contains a NUL character".to_string())?;
            field_with(out, |o| {
                o.push(1);
                serde_json::to_writer(o, &*s).map_err(|e| e.to_string())
            })?;
        }
        PgType::Timestamptz | PgType::Timestamp => {
            field(out, &timestamp_micros(s)?.to_be_bytes());
        }
        PgType::Date => field(out, &date_days(s)?.to_be_bytes()),
        PgType::Time => field(out, &time_micros(s)?.to_be_bytes()),
        PgType::Uuid => field(out, &uuid_bytes(s)?),
        PgType::Bytea => {
            let bytes = match binary {
                Binary::Base16 => hex(s)?,
                Binary::Base64 => base64::engine::general_purpose::STANDARD
                    .decode(s.as_bytes())
                    .or_else(|_| {
                        base64::engine::general_purpose::STANDARD_NO_PAD.decode(s.as_bytes())
                    })
                    .map_err(|_| "invalid base64".to_string())?,
                Binary::None => s.as_bytes().to_vec(),
            };
            field(out, &bytes);
        }
    }
    Ok(())
}

/// Writes an integer into a `smallint`, `integer` or `bigint` column.
pub fn encode_integer(ty: &PgType, v: i128, out: &mut Vec<u8>) -> Result<(), String> {
    match ty {
        PgType::SmallInt => {
            let v =
                i16::try_from(v).map_err(|_| "integer out of range for smallint".to_string())?;
            field(out, &v.to_be_bytes());
        }
        PgType::Integer => {
            let v = i32::try_from(v).map_err(|_| "integer out of range for integer".to_string())?;
            field(out, &v.to_be_bytes());
        }
        PgType::BigInt => {
            let v = i64::try_from(v).map_err(|_| "integer out of range for bigint".to_string())?;
            field(out, &v.to_be_bytes());
        }
        other => return Err(format!("an integer is not written as {}", other.sql())),
    }
    Ok(())
}

/// Writes a finite double.
pub fn encode_f64(v: f64, out: &mut Vec<u8>) -> Result<(), String> {
    if !v.is_finite() {
        return Err("number out of range for double precision".into());
    }
    field(out, &v.to_be_bytes());
    Ok(())
}

fn encode_double(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    let v: f64 = text.parse().map_err(|_| "expected a number".to_string())?;
    encode_f64(v, out)
}

/// Whether a declared type (`timestamp(3)`, `timestamp(0) with time zone`, `timestamptz(6)`)
/// is one of PostgreSQL's date or timestamp types.
fn is_datetime_type(declared: &str) -> bool {
    let t = declared.trim().to_ascii_lowercase();
    let base: String = match (t.find('('), t.find(')')) {
        (Some(open), Some(close)) if open < close => format!("{}{}", &t[..open], &t[close + 1..]),
        _ => t,
    };
    let base: Vec<&str> = base.split_whitespace().collect();
    matches!(
        base.join(" ").as_str(),
        "date"
            | "timestamp"
            | "timestamptz"
            | "timestamp with time zone"
            | "timestamp without time zone"
    )
}

/// The decoded string of a JSON string token.
pub fn string(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.starts_with('"') || raw.len() < 2 {
        return None;
    }
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// An integer's text; `5.0` (an integer written as a number) is accepted when exact.
fn integer_text(text: &str) -> Result<i128, String> {
    if let Ok(v) = text.parse::<i128>() {
        return Ok(v);
    }
    let digits = text.trim_end_matches('0').trim_end_matches('.');
    if text.contains('.')
        && !text.contains(['e', 'E'])
        && let Ok(v) = digits.parse::<i128>()
    {
        return Ok(v);
    }
    Err("expected an integer".into())
}

fn number_text(raw: &str) -> Result<&str, String> {
    match raw.as_bytes().first() {
        Some(b'-' | b'0'..=b'9') => Ok(raw),
        _ => Err("expected a number".into()),
    }
}

/// Text with U+0000 handled by the policy.
fn without_nul(s: &str, nul: NulPolicy) -> Result<Cow<'_, str>, String> {
    if !s.contains('\0') {
        return Ok(Cow::Borrowed(s));
    }
    match nul {
        NulPolicy::Replace => Ok(Cow::Owned(s.replace('\0', "\u{FFFD}"))),
        NulPolicy::Strip => Ok(Cow::Owned(s.replace('\0', ""))),
        NulPolicy::Reject => Err("text contains a NUL character".into()),
    }
}

/// JSON text with every `\u0000` escape handled by the policy (jsonb rejects them).
fn json_without_nul(raw: &str, nul: NulPolicy) -> Result<Cow<'_, str>, String> {
    if !raw.contains("\\u0000") {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut last = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            if bytes[i + 1..].starts_with(b"u0000") {
                if nul == NulPolicy::Reject {
                    return Err("JSON contains a NUL character".into());
                }
                out.push_str(&raw[last..i]);
                if nul == NulPolicy::Replace {
                    out.push_str("\\ufffd");
                }
                i += 6;
                last = i;
                continue;
            }
            i += 2; // Skip the escaped character (`\\`, `\"`, ...).
            continue;
        }
        i += 1;
    }
    out.push_str(&raw[last.min(raw.len())..]);
    Ok(Cow::Owned(out))
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s
        .strip_prefix("\\x")
        .or_else(|| s.strip_prefix("0x"))
        .unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err("invalid hex: odd length".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16)
                .map_err(|_| "invalid hex".to_string())
        })
        .collect()
}

fn uuid_bytes(s: &str) -> Result<[u8; 16], String> {
    let digits: String = s
        .trim_matches(|c| c == '{' || c == '}')
        .chars()
        .filter(|c| *c != '-')
        .collect();
    let v = hex(&digits).map_err(|_| "invalid UUID".to_string())?;
    v.try_into().map_err(|_| "invalid UUID".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ty: PgType, raw: &str) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        encode(&ty, Binary::None, raw, NulPolicy::Replace, &mut out)?;
        Ok(out)
    }

    #[test]
    fn scalars() {
        assert_eq!(
            enc(PgType::BigInt, "-5").unwrap(),
            [&8i32.to_be_bytes()[..], &(-5i64).to_be_bytes()].concat()
        );
        assert_eq!(
            enc(PgType::SmallInt, "32768").unwrap_err(),
            "integer out of range for smallint"
        );
        assert_eq!(
            enc(PgType::Integer, "\"12\"").unwrap()[4..],
            12i32.to_be_bytes()
        );
        assert_eq!(
            enc(PgType::Integer, "2.0").unwrap()[4..],
            2i32.to_be_bytes()
        );
        assert!(enc(PgType::Integer, "2.5").is_err());
        assert_eq!(enc(PgType::Boolean, "true").unwrap(), vec![0, 0, 0, 1, 1]);
        assert_eq!(
            enc(PgType::Text, "null").unwrap(),
            (-1i32).to_be_bytes().to_vec()
        );
        assert_eq!(&enc(PgType::Text, "42").unwrap()[4..], b"42");
        assert_eq!(
            &enc(PgType::Text, r#""a\u0000b""#).unwrap()[4..],
            "a\u{FFFD}b".as_bytes()
        );
        assert!(enc(PgType::Varchar(3), "\"abcd\"").is_err());
        assert!(enc(PgType::Varchar(3), "\"éüß\"").is_ok());
    }

    #[test]
    fn dates_and_timestamps_over_postgres_range() {
        let ts = |v: i64| [&8i32.to_be_bytes()[..], &v.to_be_bytes()].concat();
        let day = |v: i32| [&4i32.to_be_bytes()[..], &v.to_be_bytes()].concat();
        for ty in [PgType::Timestamptz, PgType::Timestamp] {
            assert_eq!(enc(ty.clone(), "\"infinity\"").unwrap(), ts(i64::MAX));
            assert_eq!(enc(ty.clone(), "\"-infinity\"").unwrap(), ts(i64::MIN));
            assert_eq!(
                enc(ty.clone(), "\"-4713-11-24T00:00:00+00:00\"").unwrap(),
                ts(crate::values::TIMESTAMP_MIN)
            );
            assert_eq!(
                enc(ty.clone(), "\"+294276-12-31T23:59:59.999999+00:00\"").unwrap(),
                ts(crate::values::TIMESTAMP_END - 1)
            );
            assert!(enc(ty, "\"+294277-01-01T00:00:00+00:00\"").is_err());
        }
        assert_eq!(enc(PgType::Date, "\"infinity\"").unwrap(), day(i32::MAX));
        assert_eq!(enc(PgType::Date, "\"-infinity\"").unwrap(), day(i32::MIN));
        assert_eq!(
            enc(PgType::Date, "\"+5874897-12-31\"").unwrap(),
            day(crate::values::DATE_MAX)
        );
        assert!(enc(PgType::Date, "\"+5874898-01-01\"").is_err());
        // A date column widened to timestamptz takes dates too.
        assert_eq!(
            enc(PgType::Timestamptz, "\"-0043-03-15\"").unwrap(),
            enc(PgType::Timestamptz, "\"-0043-03-15T00:00:00+00:00\"").unwrap()
        );
    }

    #[test]
    fn custom_date_types_get_postgres_text() {
        let text = |ty: &str, raw: &str| {
            String::from_utf8(enc(PgType::Custom(ty.into()), raw).unwrap()[4..].to_vec()).unwrap()
        };
        assert_eq!(
            text("timestamp(3)", "\"-0043-03-15T00:00:00+00:00\""),
            "0044-03-15 00:00:00+00:00 BC"
        );
        assert_eq!(
            text(
                "Timestamp(0) With Time Zone",
                "\"+294276-12-31T23:59:59+00:00\""
            ),
            "294276-12-31 23:59:59+00:00"
        );
        assert_eq!(text("timestamptz(6)", "\"infinity\""), "infinity");
        assert_eq!(
            text("timestamp (6) without time zone", "\"0000-01-01\""),
            "0001-01-01 BC"
        );
        assert_eq!(text("timestamp(3)", "\"Jan 2 2024\""), "Jan 2 2024");
        // Other custom types take the text as it is.
        assert_eq!(text("numeric(65,30)", "\"-0043-03-15\""), "-0043-03-15");
        assert_eq!(text("daterange", "\"-0043-03-15\""), "-0043-03-15");
        assert!(is_datetime_type("TIMESTAMPTZ"));
        assert!(!is_datetime_type("timestamp[]"));
        assert!(!is_datetime_type("interval"));
    }

    #[test]
    fn jsonb_nul_escapes() {
        let got = enc(PgType::Jsonb, r#"{"a":"x\u0000y","b":"\\u0000"}"#).unwrap();
        assert_eq!(&got[5..], br#"{"a":"x\ufffdy","b":"\\u0000"}"#);
        let mut out = Vec::new();
        assert!(
            encode(
                &PgType::Jsonb,
                Binary::None,
                r#"["\u0000"]"#,
                NulPolicy::Reject,
                &mut out
            )
            .is_err()
        );
    }

    #[test]
    fn binary_and_uuid() {
        let mut out = Vec::new();
        encode(
            &PgType::Bytea,
            Binary::Base16,
            "\"00ff\"",
            NulPolicy::Replace,
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![0, 0, 0, 2, 0, 255]);
        assert_eq!(
            enc(PgType::Uuid, "\"123e4567-e89b-12d3-a456-426614174000\"")
                .unwrap()
                .len(),
            20
        );
        assert!(enc(PgType::Uuid, "\"nope\"").is_err());
    }
}
