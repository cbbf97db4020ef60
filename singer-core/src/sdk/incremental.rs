//! The bookmark of an INCREMENTAL read, as singer-io's and PipelineWise's taps keep it:
//! [`REPLICATION_KEY`], the column the stream is read by, and [`REPLICATION_KEY_VALUE`], its
//! value in the last row emitted. A read takes the rows whose key is at least that value, in key
//! order (the boundary rows again: delivery is at least once).

use serde_json::Value;

use crate::state::State;

/// The column the bookmark's value belongs to.
pub const REPLICATION_KEY: &str = "replication_key";
/// The replication key's value in the last row emitted.
pub const REPLICATION_KEY_VALUE: &str = "replication_key_value";

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
    fn a_changed_key_starts_from_the_beginning() {
        let mut st = state(json!({"replication_key": "id", "replication_key_value": 7}));
        assert_eq!(start(&mut st, "s", "at"), None);
        assert_eq!(st.bookmark_value("s", REPLICATION_KEY), Some(&json!("at")));
        // A value without its key is not trusted either.
        let mut st = state(json!({"replication_key_value": 7}));
        assert_eq!(start(&mut st, "s", "id"), None);
    }
}
