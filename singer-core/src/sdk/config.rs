//! Config files: several `--config` files are merged left to right (later keys win).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::SdkError;

/// Reads and merges config files into one JSON object.
pub fn merge_files(paths: &[PathBuf]) -> Result<Value, SdkError> {
    let mut merged = Map::new();
    for path in paths {
        let Value::Object(obj) = read_json(path)? else {
            return Err(SdkError::Config(format!(
                "{} is not a JSON object",
                path.display()
            )));
        };
        merged.extend(obj);
    }
    Ok(Value::Object(merged))
}

/// Reads one JSON file.
pub fn read_json(path: &Path) -> Result<Value, SdkError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| SdkError::Config(format!("cannot read {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        // Only the position: the text of a config file may hold secrets.
        SdkError::Config(format!(
            "{} is not valid JSON (line {}, column {})",
            path.display(),
            e.line(),
            e.column()
        ))
    })
}

/// Deserialises a typed config, with an error that never echoes a value.
pub fn parse<C: DeserializeOwned>(value: Value) -> Result<C, SdkError> {
    serde_json::from_value(value).map_err(|e| SdkError::Config(redact(&e.to_string())))
}

/// serde's messages quote offending values (`invalid type: string "hunter2"`); drop them.
fn redact(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = message.strip_prefix(prefix) {
            let kind = rest.split([' ', ',']).next().unwrap_or("value");
            let tail = rest.find(", expected").map_or("", |i| &rest[i..]);
            return format!("{prefix}{kind}{tail}");
        }
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_files_win() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        std::fs::write(&a, r#"{"host":"a","port":1}"#).unwrap();
        std::fs::write(&b, r#"{"port":2}"#).unwrap();
        let v = merge_files(&[a, b]).unwrap();
        assert_eq!(v, serde_json::json!({"host":"a","port":2}));
    }

    #[test]
    fn errors_do_not_echo_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct C {
            port: u16,
        }
        let e = parse::<C>(serde_json::json!({"port": "hunter2"}))
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
        assert!(e.contains("expected u16"), "{e}");
    }
}
