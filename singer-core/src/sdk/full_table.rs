//! The bookmark of a FULL_TABLE copy that reads a table in key order and resumes after the last
//! key emitted. The keys are those singer-io's and PipelineWise's taps use, so their states
//! carry over:
//!
//! - [`VERSION`]: the table version of the copy; its RECORDs carry it and the ACTIVATE_VERSION
//!   that ends the copy names it;
//! - [`MAX_PK`]: the largest key when the copy started, its upper bound; present while a copy is
//!   under way, so a run that finds it resumes instead of starting over;
//! - [`LAST_PK`]: the last key emitted, written every so many rows; a resumed copy starts after
//!   it;
//! - a completion flag ([`FULL_TABLE_COMPLETE`], or the one a LOG_BASED tap sets after its
//!   initial copy), set when a copy finished.
//!
//! Keys are kept as JSON objects `{"<key property>": value, ...}`. [`FullTableCopy`] deals in
//! JSON values in key order; a tap converts its driver's values to and from JSON around it.

use serde_json::{Map, Value, json};

use super::SdkError;
use super::tap::TapContext;
use crate::state::State;

/// The table version of the copy under way.
pub const VERSION: &str = "version";
/// The largest key when the copy started.
pub const MAX_PK: &str = "max_pk_values";
/// The last key emitted.
pub const LAST_PK: &str = "last_pk_fetched";
/// Set once the first complete FULL_TABLE sync finished.
pub const FULL_TABLE_COMPLETE: &str = "initial_full_table_complete";

/// One FULL_TABLE copy of a stream: what the stream's bookmark said when it began, and the
/// bookmark updates and messages that mark its start, its progress and its end.
///
/// The tap reads the rows itself: after [`Self::start`], the rows with a key above
/// [`Self::resume_last`] (when given) and at most the upper bound, in key order, writing
/// RECORDs with [`Self::version`], calling [`Self::checkpoint`] every so many rows and
/// [`Self::finish`] at the end. The caller writes the final state (`TapContext::end_stream`).
#[derive(Debug, Clone)]
pub struct FullTableCopy {
    tap_stream_id: String,
    key_properties: Vec<String>,
    complete_key: String,
    version: i64,
    resuming: bool,
    first_ever: bool,
    resume_max: Option<Vec<Value>>,
    resume_last: Option<Vec<Value>>,
}

impl FullTableCopy {
    /// Plans a copy from the stream's bookmark in `state`. `resumable` says whether the tap
    /// reads every key property (a copy without a key cannot resume); `complete_key` is the
    /// flag [`Self::finish`] sets.
    pub fn new(
        state: &State,
        tap_stream_id: &str,
        key_properties: &[String],
        resumable: bool,
        complete_key: &str,
    ) -> Self {
        let bookmark = state.bookmark(tap_stream_id);
        let get = |key: &str| bookmark.and_then(|b| b.get(key));
        let first_ever = !get(complete_key).and_then(Value::as_bool).unwrap_or(false);
        let resuming = resumable && get(MAX_PK).is_some();
        let version = match get(VERSION).and_then(Value::as_i64) {
            Some(v) if resuming => v,
            _ => chrono::Utc::now().timestamp_millis(),
        };
        let recorded = |key: &str| {
            let obj = get(key)?.as_object()?;
            key_properties
                .iter()
                .map(|n| obj.get(n).cloned())
                .collect::<Option<Vec<Value>>>()
        };
        let (resume_max, resume_last) = if resuming {
            (recorded(MAX_PK), recorded(LAST_PK))
        } else {
            (None, None)
        };
        Self {
            tap_stream_id: tap_stream_id.to_string(),
            key_properties: key_properties.to_vec(),
            complete_key: complete_key.to_string(),
            version,
            resuming,
            first_ever,
            resume_max,
            resume_last,
        }
    }

    /// The table version the copy's RECORDs carry: the interrupted copy's when resuming, else
    /// the time it started in milliseconds.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Whether this copy resumes an interrupted one.
    pub fn is_resuming(&self) -> bool {
        self.resuming
    }

    /// The upper bound the interrupted copy recorded, in key order (resuming only; `None` when
    /// a key property is missing from it).
    pub fn resume_max(&self) -> Option<&[Value]> {
        self.resume_max.as_deref()
    }

    /// The last key the interrupted copy emitted, in key order (resuming only).
    pub fn resume_last(&self) -> Option<&[Value]> {
        self.resume_last.as_deref()
    }

    /// Records the start of the copy with `max`, the upper bound (the largest key now; `None`
    /// for an empty table or a copy without a key). A new copy writes the state, and on the very
    /// first copy an ACTIVATE_VERSION, so that an empty table appears at once; later copies keep
    /// the old rows visible until [`Self::finish`]. A resumed copy keeps its bookmark.
    pub fn start(&self, ctx: &mut TapContext, max: Option<&[Value]>) -> Result<(), SdkError> {
        let id = self.tap_stream_id.as_str();
        let state = ctx.state_mut();
        state.set_bookmark_value(id, VERSION, json!(self.version));
        if self.resuming {
            tracing::info!(stream = %id, "resuming the interrupted full-table copy after the last key emitted");
            return Ok(());
        }
        state.clear_bookmark_value(id, LAST_PK);
        match max {
            Some(m) => state.set_bookmark_value(id, MAX_PK, self.key_object(m)),
            None => state.clear_bookmark_value(id, MAX_PK),
        }
        ctx.write_state()?;
        if self.first_ever {
            ctx.write_activate_version(id, self.version)?;
        }
        Ok(())
    }

    /// Records `last` (in key order) as the last key emitted and writes the state.
    pub fn checkpoint(&self, ctx: &mut TapContext, last: &[Value]) -> Result<(), SdkError> {
        ctx.state_mut()
            .set_bookmark_value(&self.tap_stream_id, LAST_PK, self.key_object(last));
        ctx.write_state()
    }

    /// Ends a copy of `rows` rows: writes the ACTIVATE_VERSION that replaces the previous
    /// copy, drops the bounds from the bookmark and sets the completion flag.
    pub fn finish(&self, ctx: &mut TapContext, rows: u64) -> Result<(), SdkError> {
        let id = self.tap_stream_id.as_str();
        ctx.write_activate_version(id, self.version)?;
        let state = ctx.state_mut();
        state.clear_bookmark_value(id, LAST_PK);
        state.clear_bookmark_value(id, MAX_PK);
        state.set_bookmark_value(id, &self.complete_key, json!(true));
        tracing::info!(stream = %id, rows, "full-table copy finished");
        Ok(())
    }

    /// `{"k1": v1, ...}` as kept in state.
    fn key_object(&self, values: &[Value]) -> Value {
        let mut m = Map::new();
        for (n, v) in self.key_properties.iter().zip(values) {
            m.insert(n.clone(), v.clone());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Output shared with the test.
    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut v = self
                .0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?;
            v.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Out {
        fn messages(&self) -> Vec<Value> {
            let bytes = self.0.lock().unwrap().clone();
            String::from_utf8(bytes)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    fn keys() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn a_first_copy_is_bounded_activated_at_once_and_flagged_complete() {
        let out = Out::default();
        let mut ctx = TapContext::new(Box::new(out.clone()), State::new());
        let copy = FullTableCopy::new(ctx.state(), "s", &keys(), true, FULL_TABLE_COMPLETE);
        assert!(!copy.is_resuming());
        assert_eq!((copy.resume_max(), copy.resume_last()), (None, None));
        copy.start(&mut ctx, Some(&[json!(9), json!("z")])).unwrap();
        copy.checkpoint(&mut ctx, &[json!(4), json!("d")]).unwrap();
        copy.finish(&mut ctx, 9).unwrap();
        ctx.write_state().unwrap();
        let v = copy.version();
        let types: Vec<Value> = out.messages().iter().map(|m| m["type"].clone()).collect();
        assert_eq!(
            types,
            [
                "STATE",
                "ACTIVATE_VERSION",
                "STATE",
                "ACTIVATE_VERSION",
                "STATE"
            ]
        );
        let msgs = out.messages();
        assert_eq!(
            msgs[0]["value"]["bookmarks"]["s"],
            json!({"version": v, "max_pk_values": {"a": 9, "b": "z"}})
        );
        assert_eq!(
            msgs[2]["value"]["bookmarks"]["s"]["last_pk_fetched"],
            json!({"a": 4, "b": "d"})
        );
        assert_eq!(
            msgs[4]["value"]["bookmarks"]["s"],
            json!({"version": v, "initial_full_table_complete": true})
        );
    }

    #[test]
    fn an_interrupted_copy_resumes_with_its_version_and_bounds() {
        let state = State::from_value(json!({"bookmarks": {"s": {
            "version": 17, "max_pk_values": {"a": 9, "b": "z"}, "last_pk_fetched": {"a": 4, "b": "d"},
            "initial_full_table_complete": true
        }}}))
        .unwrap();
        let out = Out::default();
        let mut ctx = TapContext::new(Box::new(out.clone()), state);
        let copy = FullTableCopy::new(ctx.state(), "s", &keys(), true, FULL_TABLE_COMPLETE);
        assert!(copy.is_resuming());
        assert_eq!(copy.version(), 17);
        assert_eq!(copy.resume_max(), Some(&[json!(9), json!("z")][..]));
        assert_eq!(copy.resume_last(), Some(&[json!(4), json!("d")][..]));
        copy.start(&mut ctx, copy.resume_max()).unwrap();
        assert!(
            out.messages().is_empty(),
            "a resumed copy writes nothing at its start"
        );
        // Without a key the same bookmark starts a new copy, activated only at its end.
        let copy = FullTableCopy::new(ctx.state(), "s", &[], false, FULL_TABLE_COMPLETE);
        assert!(!copy.is_resuming());
        assert_ne!(copy.version(), 17);
        copy.start(&mut ctx, None).unwrap();
        let msgs = out.messages();
        assert_eq!(msgs.len(), 1);
        assert_eq!(
            msgs[0]["value"]["bookmarks"]["s"],
            json!({"version": copy.version(), "initial_full_table_complete": true})
        );
    }

    #[test]
    fn a_recorded_key_missing_a_part_is_none() {
        let state = State::from_value(json!({"bookmarks": {"s": {
            "version": 17, "max_pk_values": {"a": 9}
        }}}))
        .unwrap();
        let copy = FullTableCopy::new(&state, "s", &keys(), true, "done");
        assert!(copy.is_resuming());
        assert_eq!((copy.resume_max(), copy.resume_last()), (None, None));
    }
}
