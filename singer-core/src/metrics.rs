//! Singer metric lines: `INFO METRIC: {"type":"counter","metric":"record_count",...}` on
//! stderr (specs/tap-behavior.md). Orchestrators parse these lines, so their shape is fixed.

use std::io::Write;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};

/// Counter of records read or written.
pub const RECORD_COUNT: &str = "record_count";
/// Timer of a whole stream sync or load.
pub const JOB_DURATION: &str = "job_duration";
/// Counter of batches committed by a target.
pub const BATCH_COUNT: &str = "batch_count";
/// Timer of one batch load.
pub const BATCH_PROCESSING_TIME: &str = "batch_processing_time";

/// The kind of a metric.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    /// A count since the previous emission.
    Counter,
    /// A duration in seconds.
    Timer,
}

/// One metric point.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// counter or timer.
    #[serde(rename = "type")]
    pub kind: MetricType,
    /// The metric name.
    pub metric: &'static str,
    /// The value (a count, or seconds).
    pub value: Value,
    /// Tags such as `stream` and `status`.
    pub tags: Map<String, Value>,
}

impl Metric {
    /// A counter point.
    pub fn counter(metric: &'static str, value: u64, tags: Map<String, Value>) -> Self {
        Self {
            kind: MetricType::Counter,
            metric,
            value: Value::from(value),
            tags,
        }
    }

    /// A timer point.
    pub fn timer(metric: &'static str, elapsed: Duration, tags: Map<String, Value>) -> Self {
        let secs = elapsed.as_secs_f64();
        let value = serde_json::Number::from_f64(secs).map_or(Value::Null, Value::Number);
        Self {
            kind: MetricType::Timer,
            metric,
            value,
            tags,
        }
    }

    /// The `INFO METRIC: ...` line.
    pub fn to_line(&self) -> String {
        format!(
            "INFO METRIC: {}",
            serde_json::to_string(self).unwrap_or_default()
        )
    }

    /// Writes the line to stderr (errors are ignored: metrics never fail a run).
    pub fn emit(&self) {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(self.to_line().as_bytes());
        let _ = err.write_all(b"\n");
    }
}

/// Tags with one `stream` entry.
pub fn stream_tags(stream: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("stream".into(), Value::String(stream.to_string()));
    m
}

/// A record counter that emits at most once per interval, and at the end.
#[derive(Debug)]
pub struct RecordCounter {
    stream: String,
    pending: u64,
    total: u64,
    last: Instant,
    interval: Duration,
}

impl RecordCounter {
    /// A counter for `stream` that emits every `interval`.
    pub fn new(stream: &str, interval: Duration) -> Self {
        Self {
            stream: stream.to_string(),
            pending: 0,
            total: 0,
            last: Instant::now(),
            interval,
        }
    }

    /// Adds `n` records and emits if the interval has passed.
    pub fn add(&mut self, n: u64) {
        self.pending += n;
        self.total += n;
        if self.last.elapsed() >= self.interval {
            self.flush();
        }
    }

    /// Emits what is pending.
    pub fn flush(&mut self) {
        if self.pending > 0 {
            Metric::counter(RECORD_COUNT, self.pending, stream_tags(&self.stream)).emit();
            self.pending = 0;
        }
        self.last = Instant::now();
    }

    /// All records counted so far.
    pub fn total(&self) -> u64 {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shape() {
        let m = Metric::counter(RECORD_COUNT, 3, stream_tags("users"));
        assert_eq!(
            m.to_line(),
            r#"INFO METRIC: {"type":"counter","metric":"record_count","value":3,"tags":{"stream":"users"}}"#
        );
    }
}
