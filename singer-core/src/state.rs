//! The state document: per-stream bookmarks and `currently_syncing` (specs/state.md).
//!
//! State is kept as a JSON object so that keys this crate does not know survive untouched, and
//! numbers keep their exact text.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Classify, ErrorClass};

/// A state document: `{"bookmarks": {<tap_stream_id>: {...}}, "currently_syncing": ...}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct State(Map<String, Value>);

/// A state value that is not a JSON object, or has a malformed `bookmarks` member.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The state is not an object.
    #[error("state must be a JSON object")]
    NotAnObject,
    /// `bookmarks` is present but not an object of objects.
    #[error("state `bookmarks` must be an object whose values are objects")]
    BadBookmarks,
    /// The state file could not be read or parsed.
    #[error("cannot read state file {path}")]
    File {
        /// The path given.
        path: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Classify for StateError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

const BOOKMARKS: &str = "bookmarks";
const CURRENTLY_SYNCING: &str = "currently_syncing";

impl State {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates and wraps a state value.
    pub fn from_value(value: Value) -> Result<Self, StateError> {
        let Value::Object(map) = value else {
            return Err(StateError::NotAnObject);
        };
        match map.get(BOOKMARKS) {
            None | Some(Value::Null) => {}
            Some(Value::Object(b)) if b.values().all(|v| v.is_object() || v.is_null()) => {}
            Some(_) => return Err(StateError::BadBookmarks),
        }
        Ok(Self(map))
    }

    /// Reads a state file; an empty file is an empty state.
    pub fn from_file(path: &std::path::Path) -> Result<Self, StateError> {
        let file_err = |source: Box<dyn std::error::Error + Send + Sync>| StateError::File {
            path: path.display().to_string(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.into()))?;
        if text.trim().is_empty() {
            return Ok(Self::new());
        }
        let value: Value = serde_json::from_str(&text).map_err(|e| file_err(e.into()))?;
        Self::from_value(value)
    }

    /// The whole document.
    pub fn as_value(&self) -> Value {
        Value::Object(self.0.clone())
    }

    /// The document as a map.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The bookmark object of a stream, if any.
    pub fn bookmark(&self, tap_stream_id: &str) -> Option<&Map<String, Value>> {
        self.0.get(BOOKMARKS)?.get(tap_stream_id)?.as_object()
    }

    /// One bookmark value of a stream.
    pub fn bookmark_value(&self, tap_stream_id: &str, key: &str) -> Option<&Value> {
        self.bookmark(tap_stream_id)?.get(key)
    }

    /// Sets one bookmark value of a stream, creating the stream's bookmark if needed.
    pub fn set_bookmark_value(&mut self, tap_stream_id: &str, key: &str, value: Value) {
        self.bookmark_mut(tap_stream_id)
            .insert(key.to_string(), value);
    }

    /// Removes one bookmark value of a stream.
    pub fn clear_bookmark_value(&mut self, tap_stream_id: &str, key: &str) {
        if let Some(Value::Object(b)) = self
            .0
            .get_mut(BOOKMARKS)
            .and_then(|b| b.get_mut(tap_stream_id))
        {
            b.remove(key);
        }
    }

    /// The mutable bookmark object of a stream, created if absent.
    pub fn bookmark_mut(&mut self, tap_stream_id: &str) -> &mut Map<String, Value> {
        let bookmarks = self
            .0
            .entry(BOOKMARKS)
            .or_insert_with(|| Value::Object(Map::new()));
        if !bookmarks.is_object() {
            *bookmarks = Value::Object(Map::new());
        }
        let Value::Object(bookmarks) = bookmarks else {
            unreachable!("just made an object")
        };
        let entry = bookmarks
            .entry(tap_stream_id.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        let Value::Object(entry) = entry else {
            unreachable!("just made an object")
        };
        entry
    }

    /// Drops a stream's bookmark entirely (used by full refreshes).
    pub fn reset_stream(&mut self, tap_stream_id: &str) {
        if let Some(Value::Object(b)) = self.0.get_mut(BOOKMARKS) {
            b.remove(tap_stream_id);
        }
    }

    /// The stream a tap was syncing when it last emitted state.
    pub fn currently_syncing(&self) -> Option<&str> {
        self.0.get(CURRENTLY_SYNCING)?.as_str()
    }

    /// Sets or clears `currently_syncing` (kept as `null` when cleared, as taps do).
    pub fn set_currently_syncing(&mut self, tap_stream_id: Option<&str>) {
        let v = tap_stream_id.map_or(Value::Null, |s| Value::String(s.to_string()));
        self.0.insert(CURRENTLY_SYNCING.to_string(), v);
    }

    /// Merges a newer, possibly partial, state into this one.
    ///
    /// Top-level members of `newer` replace those here; `bookmarks` is merged per stream, and a
    /// stream's bookmark object is replaced whole by the newer one.
    pub fn merge(&mut self, newer: &State) {
        for (k, v) in &newer.0 {
            match (k.as_str(), v) {
                (BOOKMARKS, Value::Object(nb)) => {
                    let target = self
                        .0
                        .entry(BOOKMARKS)
                        .or_insert_with(|| Value::Object(Map::new()));
                    match target {
                        Value::Object(tb) => {
                            for (stream, b) in nb {
                                tb.insert(stream.clone(), b.clone());
                            }
                        }
                        other => *other = v.clone(),
                    }
                }
                _ => {
                    self.0.insert(k.clone(), v.clone());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_keeps_other_streams() {
        let mut old = State::from_value(json!({
            "bookmarks": {"a": {"pos": 1, "v": 9}, "b": {"pos": 2}},
            "currently_syncing": "a"
        }))
        .unwrap();
        let newer =
            State::from_value(json!({"bookmarks": {"a": {"pos": 5}}, "currently_syncing": null}))
                .unwrap();
        old.merge(&newer);
        assert_eq!(
            old.as_value(),
            json!({"bookmarks": {"a": {"pos": 5}, "b": {"pos": 2}}, "currently_syncing": null})
        );
    }

    #[test]
    fn exact_values_round_trip() {
        let text = r#"{"bookmarks":{"db-t":{"replication_key_value":123456789012345678901234567890.000000000000000000000000000001}}}"#;
        let s: State = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), text);
    }

    #[test]
    fn bookmark_helpers() {
        let mut s = State::new();
        s.set_bookmark_value("db-t", "log_pos", json!(4));
        s.set_currently_syncing(Some("db-t"));
        assert_eq!(s.bookmark_value("db-t", "log_pos"), Some(&json!(4)));
        assert_eq!(s.currently_syncing(), Some("db-t"));
        assert!(State::from_value(json!([1])).is_err());
        assert!(State::from_value(json!({"bookmarks": 3})).is_err());
    }
}
