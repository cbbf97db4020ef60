//! Array text (`{1,2,NULL}`, `{{"a b","c"},{d,e}}`, `[0:1]={x,y}`) as nested JSON arrays
//! whose elements are written by their own kind.

use crate::kind::Kind;
use crate::value::{Invalid, quoted, write_json};

/// Writes the array whose text form is `text`, each element as `element` values are.
pub(crate) fn write_array(out: &mut Vec<u8>, element: &Kind, text: &[u8]) -> Result<(), Invalid> {
    let bad = || {
        Invalid::Malformed(format!(
            "unexpected array text `{}`",
            String::from_utf8_lossy(&text[..text.len().min(64)])
        ))
    };
    // Bounds other than 1 come as a `[lo:hi]...=` prefix; JSON arrays start at 0 anyway.
    let mut i = match text.first() {
        Some(b'[') => text.iter().position(|b| *b == b'=').ok_or_else(bad)? + 1,
        _ => 0,
    };
    let delimiter = if matches!(element, Kind::Verbatim) && text.contains(&b';') {
        // Only box uses `;`; its elements contain commas.
        b';'
    } else {
        b','
    };
    let mut scratch = Vec::new();
    level(out, element, text, &mut i, delimiter, &mut scratch).ok_or_else(bad)??;
    if i != text.len() {
        return Err(bad());
    }
    Ok(())
}

/// One `{...}` level at `*i`. The outer `Option` is a syntax error, the inner `Result` an
/// element's own error.
fn level(
    out: &mut Vec<u8>,
    element: &Kind,
    text: &[u8],
    i: &mut usize,
    delimiter: u8,
    scratch: &mut Vec<u8>,
) -> Option<Result<(), Invalid>> {
    if text.get(*i) != Some(&b'{') {
        return None;
    }
    *i += 1;
    out.push(b'[');
    if text.get(*i) == Some(&b'}') {
        *i += 1;
        out.push(b']');
        return Some(Ok(()));
    }
    loop {
        match text.get(*i)? {
            b'{' => {
                if let Err(e) = level(out, element, text, i, delimiter, scratch)? {
                    return Some(Err(e));
                }
            }
            b'"' => {
                let v = quoted(text, i)?;
                if let Err(e) = write_json(out, element, &v) {
                    return Some(Err(e));
                }
            }
            _ => {
                let start = *i;
                while !matches!(text.get(*i), Some(b'}') | None) && text.get(*i) != Some(&delimiter)
                {
                    *i += 1;
                }
                let v = &text[start..*i];
                if v == b"NULL" {
                    out.extend_from_slice(b"null");
                } else {
                    scratch.clear();
                    scratch.extend_from_slice(v);
                    if let Err(e) = write_json(out, element, scratch) {
                        return Some(Err(e));
                    }
                }
            }
        }
        match text.get(*i)? {
            b'}' => {
                *i += 1;
                out.push(b']');
                return Some(Ok(()));
            }
            d if *d == delimiter => {
                *i += 1;
                out.push(b',');
            }
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn json(element: &Kind, text: &str) -> Result<String, Invalid> {
        let mut out = Vec::new();
        write_array(&mut out, element, text.as_bytes())?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn arrays_of_every_shape() {
        let int = Kind::Int { bits: 32 };
        let text = Kind::Text { max_length: None };
        assert_eq!(json(&int, "{}").unwrap(), "[]");
        assert_eq!(json(&int, "{1,-2,NULL}").unwrap(), "[1,-2,null]");
        assert_eq!(json(&int, "{{1,2},{3,4}}").unwrap(), "[[1,2],[3,4]]");
        assert_eq!(json(&int, "[0:1]={5,6}").unwrap(), "[5,6]");
        assert_eq!(
            json(&text, r#"{"a b","q\"uote","NULL",NULL,plain}"#).unwrap(),
            r#"["a b","q\"uote","NULL",null,"plain"]"#
        );
        assert_eq!(
            json(&Kind::Json, r#"{"{\"a\": 1}",null}"#).unwrap(),
            r#"[{"a": 1},null]"#
        );
        assert_eq!(json(&Kind::Bytea, r#"{"\\x01ff"}"#).unwrap(), r#"["Af8="]"#);
        assert!(json(&int, "{1,2").is_err());
        assert!(json(&int, "{1,2}}").is_err());
        assert!(json(&int, "{x}").is_err());
        let num = Kind::Numeric {
            precision: None,
            scale: None,
        };
        assert!(matches!(json(&num, "{NaN}"), Err(Invalid::NonFinite(_))));
    }
}
