//! The target driver, through an in-memory target, against the corpus and the checkpoint rule.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use singer_core::RecordRef;
use singer_core::record::RawFields;
use singer_core::sdk::target::{
    BatchLimits, Loader, StreamSink, StreamSpec, Target, run_target_on,
};
use singer_core::sdk::{About, SdkError};
use singer_core::testing::{TargetOutcome, judge_target, prepare_batch_files, stream_cases};

/// Everything the loaders committed, as (stream, raw record) in commit order.
type Committed = Arc<Mutex<Vec<(String, String)>>>;

struct MemoryTarget {
    committed: Committed,
    max_rows: usize,
    fail_on_load: Option<usize>,
    loads: Arc<Mutex<usize>>,
}

struct MemorySink {
    stream: String,
    rows: Vec<String>,
}

struct MemoryLoader {
    stream: String,
    committed: Committed,
    fail_on_load: Option<usize>,
    loads: Arc<Mutex<usize>>,
}

impl Target for MemoryTarget {
    const NAME: &'static str = "target-memory";
    const VERSION: &'static str = "0";
    type Config = Value;
    type Sink = MemorySink;

    fn about() -> About {
        About::new("target-memory", "test", "0", &[], Value::Null)
    }

    fn new(_: Value) -> Result<Self, SdkError> {
        unreachable!("built directly")
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_rows: self.max_rows,
            ..BatchLimits::default()
        }
    }

    async fn open_stream(
        &self,
        spec: Arc<StreamSpec>,
    ) -> Result<(MemorySink, MemoryLoader), SdkError> {
        let stream = spec.message.stream.clone();
        Ok((
            MemorySink {
                stream: stream.clone(),
                rows: Vec::new(),
            },
            MemoryLoader {
                stream,
                committed: self.committed.clone(),
                fail_on_load: self.fail_on_load,
                loads: self.loads.clone(),
            },
        ))
    }
}

impl StreamSink for MemorySink {
    type Batch = Vec<String>;
    type Loader = MemoryLoader;

    fn accept(
        &mut self,
        r: &RecordRef<'_>,
        _: Option<&RawFields<'_>>,
        _: u64,
    ) -> Result<(), SdkError> {
        assert_eq!(r.stream, self.stream.as_str());
        self.rows.push(r.record.get().to_string());
        Ok(())
    }
    fn buffered_rows(&self) -> usize {
        self.rows.len()
    }
    fn buffered_bytes(&self) -> usize {
        self.rows.iter().map(String::len).sum()
    }
    fn take_batch(&mut self) -> Vec<String> {
        std::mem::take(&mut self.rows)
    }
    fn update_schema(&mut self, _: Arc<StreamSpec>) -> Result<(), SdkError> {
        Ok(())
    }
}

impl Loader for MemoryLoader {
    type Batch = Vec<String>;

    async fn load(&mut self, batch: Vec<String>) -> Result<(), SdkError> {
        let n = {
            let mut loads = self.loads.lock().unwrap();
            *loads += 1;
            *loads
        };
        if self.fail_on_load == Some(n) {
            return Err(SdkError::fatal(
                "load failed",
                std::io::Error::other("injected failure"),
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let mut c = self.committed.lock().unwrap();
        c.extend(batch.into_iter().map(|r| (self.stream.clone(), r)));
        Ok(())
    }
    async fn update_schema(&mut self, _: Arc<StreamSpec>) -> Result<(), SdkError> {
        Ok(())
    }
    async fn activate_version(&mut self, _: i64) -> Result<(), SdkError> {
        Ok(())
    }
}

#[derive(Clone, Default)]
struct SharedOut(Arc<Mutex<Vec<u8>>>);

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run(
    input: Vec<u8>,
    max_rows: usize,
    fail_on_load: Option<usize>,
) -> (Result<(), SdkError>, Vec<Value>, Committed) {
    let committed = Committed::default();
    let target = MemoryTarget {
        committed: committed.clone(),
        max_rows,
        fail_on_load,
        loads: Default::default(),
    };
    let out = SharedOut::default();
    let result = run_target_on(
        target,
        Box::new(std::io::Cursor::new(input)),
        Box::new(out.clone()),
    );
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let echoed = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (result.map(|_| ()), echoed, committed)
}

#[test]
fn corpus_streams_through_the_driver() {
    prepare_batch_files();
    let mut failures = Vec::new();
    for max_rows in [1, 2, 100_000] {
        for case in stream_cases() {
            let (result, echoed, _) = run(case.bytes.clone(), max_rows, None);
            let outcome = TargetOutcome {
                success: result.is_ok(),
                echoed,
                stderr: result.err().map(|e| e.to_string()).unwrap_or_default(),
            };
            if let Err(why) = judge_target(&case, &outcome) {
                failures.push(format!("{} (max_rows {max_rows}): {why}", case.name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn stream_with_states(n: usize) -> Vec<u8> {
    let mut s = String::from(
        r#"{"type":"SCHEMA","stream":"a","schema":{"properties":{"id":{"type":"integer"}}},"key_properties":["id"]}"#,
    );
    s.push('\n');
    for i in 1..=n {
        s.push_str(&format!(
            "{{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":{{\"id\":{i}}}}}\n"
        ));
        s.push_str(&format!(
            "{{\"type\":\"STATE\",\"value\":{{\"upto\":{i}}}}}\n"
        ));
    }
    s.into_bytes()
}

#[test]
fn every_echoed_state_is_covered_by_committed_rows() {
    let (result, echoed, committed) = run(stream_with_states(50), 7, None);
    result.unwrap();
    assert_eq!(echoed.last(), Some(&serde_json::json!({"upto": 50})));
    assert_eq!(committed.lock().unwrap().len(), 50);
}

#[test]
fn a_failed_load_stops_echoing_at_the_last_commit() {
    let (result, echoed, committed) = run(stream_with_states(50), 7, Some(3));
    let err = result.unwrap_err();
    assert!(err.to_string().contains("load failed"), "{err}");
    let committed = committed.lock().unwrap().len() as u64;
    assert_eq!(committed, 14, "two batches of 7 rows committed");
    for state in echoed {
        let upto = state["upto"].as_u64().unwrap();
        assert!(
            upto <= committed,
            "state {upto} echoed with only {committed} rows committed"
        );
    }
}

#[test]
fn record_before_schema_names_stream_and_line() {
    let input = b"{\"type\":\"STATE\",\"value\":{}}\n{\"type\":\"RECORD\",\"stream\":\"ghost\",\"record\":{}}\n".to_vec();
    let (result, _, _) = run(input, 10, None);
    let msg = result.unwrap_err().to_string();
    assert!(msg.contains("line 2") && msg.contains("`ghost`"), "{msg}");
}
