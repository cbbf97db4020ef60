//! Run records: one JSON line per run in `<home>/runs.jsonl`, listed by `singer runs`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::pump::StreamCount;

/// What happened in one run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    pub(crate) run_id: String,
    pub(crate) pipeline: String,
    pub(crate) state_id: String,
    pub(crate) attempt: u32,
    pub(crate) started_at: String,
    pub(crate) ended_at: Option<String>,
    /// `succeeded`, `stopped` (by a signal, drained cleanly), `failed`, `dry-run`, or
    /// `skipped` (a scheduled time at which another run of the state id held its lock).
    pub(crate) outcome: String,
    pub(crate) error: Option<String>,
    /// Why a run was `skipped` (who held the lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) note: Option<String>,
    pub(crate) tap_exit: String,
    pub(crate) target_exit: String,
    #[serde(default)]
    pub(crate) streams: BTreeMap<String, StreamCount>,
    pub(crate) states_confirmed: u64,
    pub(crate) state_advanced: bool,
    #[serde(default)]
    pub(crate) metrics: Vec<Value>,
    /// CPU seconds of the orchestrator itself during the run.
    #[serde(default)]
    pub(crate) orchestrator_cpu_secs: f64,
    /// CPU seconds of the tap and target (and anything they ran).
    #[serde(default)]
    pub(crate) children_cpu_secs: f64,
    /// Peak resident memory of the orchestrator process, in KiB.
    #[serde(default)]
    pub(crate) orchestrator_max_rss_kb: u64,
    /// Peak resident memory of the largest child (tap, target or one of theirs), in KiB: the
    /// kernel's `RUSAGE_CHILDREN` maximum; 0 in records written before it was measured.
    #[serde(default)]
    pub(crate) children_max_rss_kb: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) tap_stderr: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) target_stderr: Vec<String>,
}

impl RunRecord {
    pub(crate) fn start(
        pipeline: &str,
        state_id: &str,
        run_id: &str,
        attempt: u32,
        started: chrono::DateTime<chrono::Utc>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            pipeline: pipeline.into(),
            state_id: state_id.into(),
            attempt,
            started_at: started.to_rfc3339(),
            outcome: "running".into(),
            ..Self::default()
        }
    }

    pub(crate) fn dry(pipeline: &str, state_id: &str, run_id: &str) -> Self {
        Self {
            run_id: run_id.into(),
            pipeline: pipeline.into(),
            state_id: state_id.into(),
            outcome: "dry-run".into(),
            ..Self::default()
        }
    }

    /// A scheduled time skipped because another run held the lock (`why` says whose).
    pub(crate) fn skipped(pipeline: &str, state_id: &str, why: &str) -> Self {
        let now = chrono::Utc::now();
        Self {
            run_id: format!("skipped-{}", now.format("%Y%m%dT%H%M%S%.3fZ")),
            pipeline: pipeline.into(),
            state_id: state_id.into(),
            started_at: now.to_rfc3339(),
            ended_at: Some(now.to_rfc3339()),
            outcome: "skipped".into(),
            note: Some(why.into()),
            ..Self::default()
        }
    }

    pub(crate) fn failed(mut self, error: String) -> Self {
        self.outcome = "failed".into();
        self.error = Some(error);
        self.ended_at = Some(chrono::Utc::now().to_rfc3339());
        self
    }

    /// Seconds between start and end.
    pub(crate) fn duration_secs(&self) -> Option<f64> {
        let s = chrono::DateTime::parse_from_rfc3339(&self.started_at).ok()?;
        let e = chrono::DateTime::parse_from_rfc3339(self.ended_at.as_deref()?).ok()?;
        Some((e - s).num_milliseconds() as f64 / 1000.0)
    }
}

/// CPU use of this process and of its waited-for children, from `/proc/self/stat` (Linux).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Usage {
    pub(crate) cpu_secs: f64,
    pub(crate) children_cpu_secs: f64,
}

impl Usage {
    pub(crate) fn now() -> Self {
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return Self::default();
        };
        // Fields after the command name (which may contain spaces) start at `state`.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let f: Vec<f64> = rest
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(0.0))
            .collect();
        // utime, stime, cutime, cstime are fields 14..=17, i.e. 11..=14 after `state`.
        let ticks = 100.0; // USER_HZ, fixed at 100 for /proc on Linux
        let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / ticks;
        Self {
            cpu_secs: get(11) + get(12),
            children_cpu_secs: get(13) + get(14),
        }
    }
}

/// Peak resident memory of this process in KiB (`VmHWM`).
pub(crate) fn max_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Peak resident memory of the largest waited-for child of this process in KiB.
pub(crate) fn children_max_rss_kb() -> u64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .map_or(0, |u| u64::try_from(u.max_rss()).unwrap_or(0))
}

/// `INFO METRIC` lines of a run, summed per (source, metric, stream).
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    sums: BTreeMap<(String, String, String, String), f64>,
}

impl Metrics {
    pub(crate) fn add(&mut self, role: &str, metric: &Value) {
        let name = metric.get("metric").and_then(Value::as_str).unwrap_or("?");
        let ty = metric.get("type").and_then(Value::as_str).unwrap_or("?");
        let stream = metric
            .get("tags")
            .and_then(|t| t.get("stream").or_else(|| t.get("endpoint")))
            .and_then(Value::as_str)
            .unwrap_or("");
        let v = metric.get("value").and_then(Value::as_f64).unwrap_or(0.0);
        *self
            .sums
            .entry((role.into(), ty.into(), name.into(), stream.into()))
            .or_default() += v;
    }

    pub(crate) fn summary(&self) -> Vec<Value> {
        self.sums
            .iter()
            .map(|((role, ty, name, stream), v)| {
                serde_json::json!({"source": role, "type": ty, "metric": name, "stream": stream, "value": v})
            })
            .collect()
    }
}

/// Appends a record to `<home>/runs.jsonl`.
pub(crate) fn append(home: &Path, rec: &RunRecord) {
    crate::metrics::run_ended(&rec.pipeline, &rec.outcome);
    write_line(home, rec, "the run");
}

/// Records a skipped scheduled time in `<home>/runs.jsonl` (not counted as a run ended: the
/// run never started).
pub(crate) fn append_skipped(home: &Path, rec: &RunRecord) {
    write_line(home, rec, "the skipped run");
}

/// Appends `rec` as one line of `<home>/runs.jsonl`; a failure is a warning naming `what`.
fn write_line(home: &Path, rec: &RunRecord, what: &str) {
    let path = home.join("runs.jsonl");
    let line = serde_json::to_string(rec).unwrap_or_default();
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = res {
        tracing::warn!("cannot record {what} in {}: {e}", path.display());
    }
}

/// Every recorded run, oldest first.
pub(crate) fn read_runs(home: &Path) -> Vec<RunRecord> {
    std::fs::read_to_string(home.join("runs.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
