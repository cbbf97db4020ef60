//! A small YAML writer for the manifests: block style, keys in insertion order, multi-line
//! strings (the project file in the ConfigMap) as literal blocks, and every string that a YAML
//! parser could read as something else (a number, a bool, `null`, an indicator) double-quoted
//! the JSON way, which YAML reads the same.

use serde_json::Value;

/// One YAML document (without the `---` separator), ending in a newline.
pub(super) fn document(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => write_map(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => write_seq(&mut out, a, 0),
        other => {
            out.push_str(&scalar(other, 0));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    let mut first = true;
    for (k, v) in m {
        // The first key of a map inside a sequence item follows the `- ` already written.
        if !(first && out.ends_with("- ")) {
            push_indent(out, indent);
        }
        first = false;
        out.push_str(&key(k));
        out.push(':');
        write_value_after_key(out, v, indent);
    }
}

fn write_seq(out: &mut String, a: &[Value], indent: usize) {
    for v in a {
        push_indent(out, indent);
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => write_map(out, m, indent + 2),
            Value::Array(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(out, inner, indent + 2);
            }
            other => {
                out.push_str(&scalar(other, indent + 2));
                out.push('\n');
            }
        }
    }
}

fn write_value_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(out, a, indent + 2);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other, indent + 2));
            out.push('\n');
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar (or an empty collection); multi-line strings become literal blocks indented by
/// `indent`.
fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn key(k: &str) -> String {
    if is_plain(k) {
        k.to_string()
    } else {
        quoted(k)
    }
}

fn string(s: &str, indent: usize) -> String {
    if s.contains('\n') && block_safe(s) {
        return literal_block(s, indent);
    }
    if is_plain(s) {
        s.to_string()
    } else {
        quoted(s)
    }
}

/// Safe unquoted: starts with a letter or `/`, only `[A-Za-z0-9_./-]`, and not one of the
/// words YAML 1.1 parsers read as a bool or null.
fn is_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    if !(first.is_ascii_alphabetic() || first == '/') {
        return false;
    }
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '-'))
    {
        return false;
    }
    !matches!(
        s.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
    )
}

/// A JSON string literal, which is a valid YAML double-quoted scalar.
fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Literal blocks keep every character except carriage returns and other control characters
/// (tabs are fine).
fn block_safe(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn literal_block(s: &str, indent: usize) -> String {
    let body = s.strip_suffix('\n').unwrap_or(s);
    // Chomping: `|-` no final newline, `|` exactly one, `|+` keep them all.
    let chomp = if !s.ends_with('\n') {
        "-"
    } else if body.ends_with('\n') {
        "+"
    } else {
        ""
    };
    // A first line starting with a space would set the indentation: say it explicitly.
    let indicator = if s.starts_with(' ') { "2" } else { "" };
    let mut out = format!("|{indicator}{chomp}");
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            push_indent(&mut out, indent);
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::document;

    #[test]
    fn writes_block_yaml_with_quoting_and_literal_blocks() {
        let v = json!({
            "apiVersion": "batch/v1",
            "schedule": "*/15 * * * *",
            "n": 3,
            "flag": "yes",
            "digits": "256Mi",
            "empty": {},
            "list": [{"name": "a", "value": "x"}, "b", []],
            "text": "line 1\n  line 2\n",
        });
        assert_eq!(
            document(&v),
            "apiVersion: batch/v1\nschedule: \"*/15 * * * *\"\n\"n\": 3\nflag: \"yes\"\n\
             digits: \"256Mi\"\nempty: {}\nlist:\n  - name: a\n    value: x\n  - b\n  - []\n\
             text: |\n  line 1\n    line 2\n"
        );
    }

    #[test]
    fn literal_block_chomping() {
        assert_eq!(document(&json!({"t": "a\nb"})), "t: |-\n  a\n  b\n");
        assert_eq!(document(&json!({"t": "a\n\n"})), "t: |+\n  a\n\n");
        assert_eq!(document(&json!({"t": " a\n"})), "t: |2\n   a\n");
    }
}
