//! The little JSON this crate writes: flat objects of strings. Hand-written to keep xtask
//! dependency-free so it builds in seconds on a clean clone.

/// A JSON string literal for `value`.
pub(crate) fn string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A pretty-printed JSON object whose values are all strings, keys in the given order.
pub(crate) fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(key, value)| format!("  {}: {}", string(key), string(value)))
        .collect();
    format!("{{\n{}\n}}\n", body.join(",\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(string("a\"b\\c\n\u{1}"), r#""a\"b\\c\n\u0001""#);
    }

    #[test]
    fn object_keeps_order() {
        let json = object(&[("b", "1".to_owned()), ("a", "2".to_owned())]);
        assert_eq!(json, "{\n  \"b\": \"1\",\n  \"a\": \"2\"\n}\n");
    }
}
