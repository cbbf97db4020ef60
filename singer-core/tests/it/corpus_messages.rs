use serde_json::Value;
use singer_core::message::{Message, MessageRef, parse_line};
use singer_core::testing::{corpus_dir, load_cases};

fn line_of(bytes: &[u8]) -> &[u8] {
    bytes.strip_suffix(b"\n").unwrap_or(bytes)
}

#[test]
fn valid_messages_parse_with_their_kind_and_round_trip() {
    let cases = load_cases(&corpus_dir().join("messages/valid"), "json");
    assert!(cases.len() >= 30, "corpus looks empty: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let line = line_of(&case.bytes);
        let kind = case.get("kind").and_then(Value::as_str).unwrap_or("");
        let parsed = match parse_line(line) {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{}: rejected: {e}", case.name));
                continue;
            }
        };
        let got_kind = match &parsed {
            MessageRef::Record(_) => "RECORD",
            MessageRef::Other(m) => m.kind().as_str(),
            MessageRef::Unknown(_) => "UNKNOWN",
        };
        if !kind.is_empty() && kind != got_kind {
            failures.push(format!("{}: kind {got_kind}, expected {kind}", case.name));
            continue;
        }
        let Some(msg) = Message::parse(line).unwrap() else {
            continue;
        };
        let written = msg.to_line();
        if case.get("exact").and_then(Value::as_bool) == Some(true) && written.as_bytes() != line {
            failures.push(format!(
                "{}: not byte-exact\n  in:  {}\n  out: {written}",
                case.name,
                String::from_utf8_lossy(line)
            ));
        }
        let again = Message::parse(written.as_bytes()).unwrap().unwrap();
        if again != msg {
            failures.push(format!(
                "{}: writing then reading changed the message",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn invalid_messages_are_rejected_with_their_kind() {
    let cases = load_cases(&corpus_dir().join("messages/invalid"), "json");
    assert!(cases.len() >= 30, "corpus looks empty: {}", cases.len());
    let mut failures = Vec::new();
    for case in &cases {
        let want = case.get("error").and_then(Value::as_str).unwrap_or("?");
        match parse_line(line_of(&case.bytes)) {
            Ok(_) => failures.push(format!("{}: accepted, expected {want}", case.name)),
            Err(e) if e.kind_name() != want => failures.push(format!(
                "{}: {} ({e}), expected {want}",
                case.name,
                e.kind_name()
            )),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
