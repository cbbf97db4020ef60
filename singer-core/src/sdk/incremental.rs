//! The bookmark of an INCREMENTAL read, as singer-io's and PipelineWise's taps keep it:
//! [`REPLICATION_KEY`], the column the stream is read by, and [`REPLICATION_KEY_VALUE`], its
//! value in the last row emitted. A read takes the rows whose key is at least that value, in key
//! order (the boundary rows again: delivery is at least once).

use serde_json::Value;

use super::SdkError;
use crate::state::State;

/// The column the bookmark's value belongs to.
pub const REPLICATION_KEY: &str = "replication_key";
/// The replication key's value in the last row emitted.
pub const REPLICATION_KEY_VALUE: &str = "replication_key_value";

/// The replication key of an INCREMENTAL stream and its position among the columns the tap
/// reads (`position` finds a column); a config error naming the stream when the catalog chose
/// no key or the key is not a readable column of the table.
pub fn key_column(
    tap_stream_id: &str,
    replication_key: Option<&str>,
    position: impl FnOnce(&str) -> Option<usize>,
) -> Result<(String, usize), SdkError> {
    let Some(key) = replication_key else {
        return Err(SdkError::Config(format!(
            "stream `{tap_stream_id}` is INCREMENTAL but has no `replication-key` in its metadata"
        )));
    };
    match position(key) {
        Some(i) => Ok((key.to_string(), i)),
        None => Err(SdkError::Config(format!(
            "stream `{tap_stream_id}`: replication key `{key}` is not a readable column of the table"
        ))),
    }
}

/// Starts an INCREMENTAL read of a stream by `replication_key`: records the key in the
/// stream's bookmark and returns the value to read from, the bookmarked one when it was kept
/// for the same key and is not null. When the key changed the read starts from the beginning,
/// with a warning.
pub fn start(state: &mut State, tap_stream_id: &str, replication_key: &str) -> Option<Value> {
    let bookmark = state.bookmark(tap_stream_id);
    let kept_key = bookmark.and_then(|b| b.get(REPLICATION_KEY));
    let same_key = kept_key.and_then(Value::as_str) == Some(replication_key);
    let from = bookmark
        .and_then(|b| b.get(REPLICATION_KEY_VALUE))
        .filter(|v| same_key && !v.is_null())
        .cloned();
    if !same_key && kept_key.is_some() {
        tracing::warn!(stream = %tap_stream_id, "replication key changed to `{replication_key}`; reading from the start");
    }
    state.set_bookmark_value(tap_stream_id, REPLICATION_KEY, Value::from(replication_key));
    from
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn state(bookmark: Value) -> State {
        State::from_value(json!({"bookmarks": {"s": bookmark}})).unwrap()
    }

    #[test]
    fn a_read_starts_from_the_value_kept_for_the_same_key() {
        let mut st = state(json!({"replication_key": "at", "replication_key_value": "2024-01-02"}));
        assert_eq!(start(&mut st, "s", "at"), Some(json!("2024-01-02")));
        let mut st = state(json!({"replication_key": "at", "replication_key_value": null}));
        assert_eq!(start(&mut st, "s", "at"), None);
        let mut st = State::new();
        assert_eq!(start(&mut st, "s", "at"), None);
        assert_eq!(st.bookmark_value("s", REPLICATION_KEY), Some(&json!("at")));
    }

    #[test]
    fn the_key_must_be_chosen_and_read() {
        let position = |k: &str| (k == "at").then_some(3);
        assert_eq!(
            key_column("s", Some("at"), position).unwrap(),
            ("at".into(), 3)
        );
        let none = key_column("s", None, position).unwrap_err().to_string();
        assert!(none.contains("no `replication-key`"), "{none}");
        let gone = key_column("s", Some("id"), position)
            .unwrap_err()
            .to_string();
        assert!(gone.contains("`id` is not a readable column"), "{gone}");
    }

    #[test]
    fn a_changed_key_starts_from_the_beginning() {
        let mut st = state(json!({"replication_key": "id", "replication_key_value": 7}));
        assert_eq!(start(&mut st, "s", "at"), None);
        assert_eq!(st.bookmark_value("s", REPLICATION_KEY), Some(&json!("at")));
        // A value without its key is not trusted either.
        let mut st = state(json!({"replication_key_value": 7}));
        assert_eq!(start(&mut st, "s", "id"), None);
    }
}
