//! Writes one PostgreSQL value, given as the text its type's output function prints (what
//! COPY and pgoutput both carry, under the session settings of [`crate::connect`]), as JSON:
//! numbers keep every digit, dates keep their era and their infinities, nothing is rounded.

use base64::Engine as _;

use crate::kind::Kind;

/// Why a value has no JSON form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// `NaN` or `±Infinity` in a numeric or float column.
    NonFinite(String),
    /// Text the type's output never prints; a bug or a changed session setting.
    Malformed(String),
}

type Res = Result<(), Invalid>;

fn malformed(kind: &str, text: &[u8]) -> Invalid {
    Invalid::Malformed(format!(
        "unexpected {kind} text `{}`",
        String::from_utf8_lossy(&text[..text.len().min(64)])
    ))
}

/// Appends the value of a column of `kind` whose text form is `text` as JSON.
pub(crate) fn write_json(out: &mut Vec<u8>, kind: &Kind, text: &[u8]) -> Res {
    match kind {
        Kind::Int { .. } => {
            if text.is_empty() || !text.iter().all(|b| b.is_ascii_digit() || *b == b'-') {
                return Err(malformed("integer", text));
            }
            out.extend_from_slice(text);
            Ok(())
        }
        Kind::Numeric { .. } | Kind::Float => write_number(out, text),
        Kind::Money => write_money(out, text),
        Kind::Bool => match text {
            b"t" => {
                out.extend_from_slice(b"true");
                Ok(())
            }
            b"f" => {
                out.extend_from_slice(b"false");
                Ok(())
            }
            _ => Err(malformed("boolean", text)),
        },
        Kind::Text { .. } | Kind::Verbatim | Kind::Uuid => {
            write_text(out, text);
            Ok(())
        }
        Kind::Json => {
            out.extend_from_slice(text);
            Ok(())
        }
        Kind::Bytea => write_bytea(out, text),
        Kind::Date => write_date_time(out, text, false),
        Kind::Timestamp => write_date_time(out, text, true),
        Kind::Hstore => write_hstore(out, text),
        Kind::Array { element, .. } => crate::array::write_array(out, element, text),
        Kind::Unsupported(why) => Err(Invalid::Malformed(why.clone())),
    }
}

/// Writes a JSON string from UTF-8 text (the server's encoding is UTF-8 on our connections).
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

/// numeric, real and double precision: PostgreSQL prints plain decimals or `1e+30`, both
/// valid JSON numbers; `NaN` and the infinities are not.
fn write_number(out: &mut Vec<u8>, text: &[u8]) -> Res {
    match text {
        b"NaN" | b"Infinity" | b"-Infinity" => Err(Invalid::NonFinite(
            String::from_utf8_lossy(text).into_owned(),
        )),
        _ if is_json_number(text) => {
            out.extend_from_slice(text);
            Ok(())
        }
        _ => Err(malformed("number", text)),
    }
}

/// True for text that is a JSON number: `-?digits[.digits][e[+-]digits]`.
fn is_json_number(t: &[u8]) -> bool {
    let mut i = usize::from(t.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while t.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return false;
    }
    if t.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(t.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(t.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == t.len()
}

/// money under `lc_monetary = C`: `$1,234.56`, `-$0.01`.
fn write_money(out: &mut Vec<u8>, text: &[u8]) -> Res {
    let start = out.len();
    for &b in text {
        match b {
            b'0'..=b'9' | b'.' | b'-' => out.push(b),
            b'$' | b',' => {}
            _ => {
                out.truncate(start);
                return Err(malformed("money", text));
            }
        }
    }
    if !is_json_number(&out[start..]) {
        out.truncate(start);
        return Err(malformed("money", text));
    }
    Ok(())
}

/// bytea in hex output (`\x0a1b`) as a base64 string.
fn write_bytea(out: &mut Vec<u8>, text: &[u8]) -> Res {
    let hex = text
        .strip_prefix(b"\\x")
        .ok_or_else(|| malformed("bytea", text))?;
    if hex.len() % 2 != 0 {
        return Err(malformed("bytea", text));
    }
    let mut raw = Vec::with_capacity(hex.len() / 2);
    for pair in hex.chunks_exact(2) {
        let hi = hex_digit(pair[0]).ok_or_else(|| malformed("bytea", text))?;
        let lo = hex_digit(pair[1]).ok_or_else(|| malformed("bytea", text))?;
        raw.push((hi << 4) | lo);
    }
    out.push(b'"');
    let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
    out.extend_from_slice(b64.as_bytes());
    out.push(b'"');
    Ok(())
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// A date or timestamp in ISO style (`2024-01-02`, `2024-01-02 03:04:05.5+00`, `0044-03-15
/// BC`, `294276-12-31 23:59:59`, `infinity`) as an ISO 8601 string: `T` between date and
/// time, `+00:00` for the zone (timestamps without time zone too: their wall clock is kept
/// and read as UTC), astronomical years for BC (`-0043` is 44 BC) and a `+` before years past
/// 9999. `infinity` and `-infinity` stay as they are.
fn write_date_time(out: &mut Vec<u8>, text: &[u8], with_time: bool) -> Res {
    if text == b"infinity" || text == b"-infinity" {
        write_text(out, text);
        return Ok(());
    }
    let bad = || malformed(if with_time { "timestamp" } else { "date" }, text);
    let (body, bc) = match text.strip_suffix(b" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let dash = body.iter().position(|b| *b == b'-').ok_or_else(bad)?;
    let (year_text, rest) = body.split_at(dash);
    if year_text.len() < 4 || !year_text.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    out.push(b'"');
    if !bc && year_text.len() == 4 {
        // The common case: a four-digit year AD is already ISO 8601.
        out.extend_from_slice(year_text);
    } else {
        let year: i64 = std::str::from_utf8(year_text)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        let year = if bc { 1 - year } else { year };
        if year < 0 {
            out.extend_from_slice(format!("-{:04}", -year).as_bytes());
        } else if year > 9999 {
            out.extend_from_slice(format!("+{year}").as_bytes());
        } else {
            out.extend_from_slice(format!("{year:04}").as_bytes());
        }
    }
    // `-MM-DD`, then for timestamps ` HH:MM:SS[.f]` and, with a zone, `+00`.
    let (date_rest, time) = match rest.iter().position(|b| *b == b' ') {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    if date_rest.len() != 6 {
        out.pop();
        return Err(bad());
    }
    out.extend_from_slice(date_rest);
    if with_time {
        let time = time.ok_or_else(bad)?;
        let (clock, zone) = match time.iter().position(|b| *b == b'+' || *b == b'-') {
            Some(i) => (&time[..i], &time[i..]),
            None => (time, &b""[..]),
        };
        if clock.len() < 8 || !(zone.is_empty() || zone == b"+00") {
            return Err(bad());
        }
        out.push(b'T');
        out.extend_from_slice(clock);
        out.extend_from_slice(b"+00:00");
    } else if time.is_some() {
        return Err(bad());
    }
    out.push(b'"');
    Ok(())
}

/// hstore text (`"a"=>"1", "b"=>NULL`) as a JSON object of strings.
fn write_hstore(out: &mut Vec<u8>, text: &[u8]) -> Res {
    let bad = || malformed("hstore", text);
    let mut i = 0;
    let mut first = true;
    out.push(b'{');
    let skip_space = |i: &mut usize| {
        while text.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= text.len() {
            break;
        }
        if !first {
            if text.get(i) != Some(&b',') {
                return Err(bad());
            }
            i += 1;
            skip_space(&mut i);
        }
        let key = quoted(text, &mut i).ok_or_else(bad)?;
        skip_space(&mut i);
        if text.get(i..i + 2) != Some(b"=>") {
            return Err(bad());
        }
        i += 2;
        skip_space(&mut i);
        if !first {
            out.push(b',');
        }
        first = false;
        write_text(out, &key);
        out.push(b':');
        if text.get(i..i + 4) == Some(b"NULL") {
            i += 4;
            out.extend_from_slice(b"null");
        } else {
            let v = quoted(text, &mut i).ok_or_else(bad)?;
            write_text(out, &v);
        }
    }
    out.push(b'}');
    Ok(())
}

/// A double-quoted string with backslash escapes, starting at `*i`.
pub(crate) fn quoted(text: &[u8], i: &mut usize) -> Option<Vec<u8>> {
    if text.get(*i) != Some(&b'"') {
        return None;
    }
    *i += 1;
    let mut s = Vec::new();
    loop {
        match *text.get(*i)? {
            b'"' => {
                *i += 1;
                return Some(s);
            }
            b'\\' => {
                s.push(*text.get(*i + 1)?);
                *i += 2;
            }
            b => {
                s.push(b);
                *i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn json(kind: &Kind, text: &str) -> Result<String, Invalid> {
        let mut out = Vec::new();
        write_json(&mut out, kind, text.as_bytes())?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn numbers_keep_every_digit() {
        let n = Kind::Numeric {
            precision: None,
            scale: None,
        };
        let long = format!("-{}.{}", "9".repeat(600), "1".repeat(400));
        assert_eq!(json(&n, &long).unwrap(), long);
        assert_eq!(json(&n, "1.50").unwrap(), "1.50");
        assert_eq!(json(&Kind::Float, "1e+30").unwrap(), "1e+30");
        assert_eq!(json(&Kind::Float, "-1.5e-07").unwrap(), "-1.5e-07");
        assert!(matches!(json(&n, "NaN"), Err(Invalid::NonFinite(_))));
        assert!(matches!(
            json(&Kind::Float, "-Infinity"),
            Err(Invalid::NonFinite(_))
        ));
        assert!(matches!(json(&n, "1.2.3"), Err(Invalid::Malformed(_))));
        assert_eq!(json(&Kind::Money, "-$1,234.56").unwrap(), "-1234.56");
    }

    #[test]
    fn dates_and_timestamps_keep_era_and_infinity() {
        let ts = Kind::Timestamp;
        assert_eq!(
            json(&ts, "2024-01-02 03:04:05.123456+00").unwrap(),
            "\"2024-01-02T03:04:05.123456+00:00\""
        );
        assert_eq!(
            json(&ts, "2024-01-02 03:04:05").unwrap(),
            "\"2024-01-02T03:04:05+00:00\""
        );
        assert_eq!(
            json(&ts, "0044-03-15 12:00:00+00 BC").unwrap(),
            "\"-0043-03-15T12:00:00+00:00\""
        );
        assert_eq!(
            json(&ts, "294276-12-31 23:59:59.999999").unwrap(),
            "\"+294276-12-31T23:59:59.999999+00:00\""
        );
        assert_eq!(json(&ts, "-infinity").unwrap(), "\"-infinity\"");
        assert_eq!(
            json(&Kind::Date, "0001-01-01 BC").unwrap(),
            "\"0000-01-01\""
        );
        assert_eq!(
            json(&Kind::Date, "5874897-12-31").unwrap(),
            "\"+5874897-12-31\""
        );
        assert_eq!(json(&Kind::Date, "infinity").unwrap(), "\"infinity\"");
        assert!(json(&ts, "2024-01-02 03:04:05+05").is_err());
        assert!(json(&Kind::Date, "24-01-02").is_err());
    }

    #[test]
    fn bytea_hstore_and_booleans() {
        assert_eq!(json(&Kind::Bytea, "\\x00ff10").unwrap(), "\"AP8Q\"");
        assert_eq!(json(&Kind::Bytea, "\\x").unwrap(), "\"\"");
        assert!(json(&Kind::Bytea, "\\x0").is_err());
        assert_eq!(
            json(&Kind::Hstore, r#""a"=>"1", "b \"q\""=>NULL"#).unwrap(),
            r#"{"a":"1","b \"q\"":null}"#
        );
        assert_eq!(json(&Kind::Hstore, "").unwrap(), "{}");
        assert_eq!(json(&Kind::Bool, "t").unwrap(), "true");
        assert!(json(&Kind::Bool, "x").is_err());
    }
}
