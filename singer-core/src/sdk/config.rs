//! Config files: several `--config` files are merged left to right (later keys win).
//!
//! The `flex_*` functions read settings the way Python Singer configs write them (quoted
//! numbers, `"true"`, comma-separated lists); use them with
//! `#[serde(deserialize_with = "singer_core::sdk::config::flex_bool")]` and the like.

use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
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

/// A setting as Python configs write it: a number, a boolean, a string or a list of strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum Flex {
    Num(u64),
    Bool(bool),
    Str(String),
    List(Vec<String>),
}

/// A non-negative integer, or a string holding one (`"3306"`).
pub fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    match Flex::deserialize(d)? {
        Flex::Num(n) => Ok(n),
        Flex::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| D::Error::custom("expected a non-negative integer")),
        Flex::Bool(_) | Flex::List(_) => Err(D::Error::custom("expected a non-negative integer")),
    }
}

/// [`flex_u64`] for an `Option` field (with `#[serde(default)]` for absent keys).
pub fn flex_opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    flex_u64(d).map(Some)
}

/// A TCP port: [`flex_u64`] at most 65535.
pub fn flex_port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let n = flex_u64(d)?;
    u16::try_from(n).map_err(|_| D::Error::custom("port must be at most 65535"))
}

/// A boolean, a number (0 is false) or a string: `true`, `1`, `yes`, `on`, or `false`, `0`,
/// `no`, `off` and the empty string, in any case.
pub fn flex_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Flex::deserialize(d)? {
        Flex::Bool(b) => Ok(b),
        Flex::Num(n) => Ok(n != 0),
        Flex::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(D::Error::custom("expected true or false")),
        },
        Flex::List(_) => Err(D::Error::custom("expected true or false")),
    }
}

/// [`flex_bool`] for an `Option` field (with `#[serde(default)]` for absent keys).
pub fn flex_opt_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    flex_bool(d).map(Some)
}

/// Names as a comma-separated string or a list of strings, each trimmed, empty ones dropped;
/// `None` when none are left.
pub fn flex_list<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let items = match Flex::deserialize(d)? {
        Flex::Str(s) => s.split(',').map(str::to_string).collect(),
        Flex::List(l) => l,
        Flex::Num(_) | Flex::Bool(_) => {
            return Err(D::Error::custom("expected a list of names"));
        }
    };
    let items: Vec<String> = items
        .iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Ok((!items.is_empty()).then_some(items))
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

    #[derive(Debug, serde::Deserialize)]
    struct Flexible {
        #[serde(default, deserialize_with = "flex_opt_u64")]
        rows: Option<u64>,
        #[serde(default, deserialize_with = "flex_port")]
        port: u16,
        #[serde(default, deserialize_with = "flex_bool")]
        ssl: bool,
        #[serde(default, deserialize_with = "flex_opt_bool")]
        stop: Option<bool>,
        #[serde(default, deserialize_with = "flex_list")]
        schemas: Option<Vec<String>>,
    }

    fn flexible(v: Value) -> Result<Flexible, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn quoted_numbers_and_booleans_are_read() {
        let f = flexible(serde_json::json!({
            "rows": " 42 ", "port": "5432", "ssl": "Yes", "stop": 0, "schemas": "a, ,b"
        }))
        .unwrap();
        assert_eq!(f.rows, Some(42));
        assert_eq!(f.port, 5432);
        assert!(f.ssl);
        assert_eq!(f.stop, Some(false));
        assert_eq!(f.schemas.unwrap(), ["a", "b"]);
        let f = flexible(serde_json::json!({"port": 3306, "ssl": "", "schemas": [" x "]})).unwrap();
        assert_eq!((f.rows, f.port, f.ssl, f.stop), (None, 3306, false, None));
        assert_eq!(f.schemas.unwrap(), ["x"]);
        let f = flexible(serde_json::json!({"ssl": true, "schemas": " , "})).unwrap();
        assert!(f.ssl);
        assert_eq!(f.schemas, None);
    }

    #[test]
    fn flexible_values_of_the_wrong_kind_are_errors() {
        for (v, want) in [
            (
                serde_json::json!({"rows": "many"}),
                "expected a non-negative integer",
            ),
            (
                serde_json::json!({"rows": true}),
                "expected a non-negative integer",
            ),
            (
                serde_json::json!({"port": 70000}),
                "port must be at most 65535",
            ),
            (
                serde_json::json!({"port": ["1"]}),
                "expected a non-negative integer",
            ),
            (
                serde_json::json!({"ssl": "maybe"}),
                "expected true or false",
            ),
            (
                serde_json::json!({"stop": ["no"]}),
                "expected true or false",
            ),
            (
                serde_json::json!({"schemas": 3}),
                "expected a list of names",
            ),
        ] {
            let e = flexible(v.clone()).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
    }
}
