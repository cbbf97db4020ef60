//! A cheap look at a Singer line on its way from tap to target: its type and stream, without
//! parsing the record. Taps put `type` first (singer-python, the Meltano SDK and ours all do), so
//! the first `"type"` key is the message's.

/// What a line is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Record(&'a str),
    Schema(&'a str),
    State,
    Other,
}

/// How our taps and most others start a RECORD line.
const RECORD_PREFIX: &[u8] = br#"{"type":"RECORD","stream":""#;

/// Classifies one line (without its newline).
pub(crate) fn classify(line: &[u8]) -> Line<'_> {
    if let Some(rest) = line.strip_prefix(RECORD_PREFIX) {
        // The common case, without searching: the stream name runs to the next quote.
        if let Some(end) = memchr::memchr2(b'"', b'\\', rest)
            && rest[end] == b'"'
            && let Ok(s) = std::str::from_utf8(&rest[..end])
        {
            return Line::Record(s);
        }
    }
    let Some(ty) = string_after_key(line, b"\"type\"") else {
        return Line::Other;
    };
    if ty.eq_ignore_ascii_case("RECORD") {
        return string_after_key(line, b"\"stream\"").map_or(Line::Other, Line::Record);
    }
    if ty.eq_ignore_ascii_case("STATE") {
        return Line::State;
    }
    if ty.eq_ignore_ascii_case("SCHEMA") {
        return string_after_key(line, b"\"stream\"").map_or(Line::Other, Line::Schema);
    }
    Line::Other
}

/// The string value of the first occurrence of `key` (`"name"`, quotes included), if it is a
/// plain string without escapes.
fn string_after_key<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a str> {
    let at = find(line, key)?;
    let mut i = at + key.len();
    while line.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    if line.get(i) != Some(&b':') {
        return None;
    }
    i += 1;
    while line.get(i).is_some_and(u8::is_ascii_whitespace) {
        i += 1;
    }
    if line.get(i) != Some(&b'"') {
        return None;
    }
    let start = i + 1;
    let len = line[start..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\')?;
    if line[start + len] == b'\\' {
        return None;
    }
    std::str::from_utf8(&line[start..start + len]).ok()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    use std::sync::LazyLock;
    static TYPE: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"type\""));
    static STREAM: LazyLock<memchr::memmem::Finder<'static>> =
        LazyLock::new(|| memchr::memmem::Finder::new(b"\"stream\""));
    match needle {
        b"\"type\"" => TYPE.find(hay),
        b"\"stream\"" => STREAM.find(hay),
        _ => memchr::memmem::find(hay, needle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_schemas_and_states() {
        assert_eq!(
            classify(br#"{"type":"RECORD","stream":"db-t","record":{"type":"x"}}"#),
            Line::Record("db-t")
        );
        assert_eq!(
            classify(br#"{"type": "RECORD", "stream": "users", "record": {}}"#),
            Line::Record("users")
        );
        assert_eq!(
            classify(br#"{"type":"SCHEMA","stream":"s","schema":{}}"#),
            Line::Schema("s")
        );
        assert_eq!(classify(br#"{"type":"STATE","value":{}}"#), Line::State);
        assert_eq!(classify(b"not json"), Line::Other);
    }
}
