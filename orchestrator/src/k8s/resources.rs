//! Container requests and limits from the run history (`runs.jsonl`).
//!
//! A run's peak memory is the orchestrator's own peak RSS plus twice the largest peak RSS of
//! its children (`children_max_rss_kb`, the kernel's `RUSAGE_CHILDREN` maximum: tap and target
//! run at the same time, and each peaked at most that high, so this bounds their sum). Runs
//! recorded before that field existed carry no children's peak and are not counted. Over the
//! pipeline's last [`WINDOW`] measured runs:
//!
//! - memory request = p95 of the peaks × 1.25, at least [`REQUEST_FLOOR_MIB`];
//! - memory limit = the largest peak × 1.5, at least [`LIMIT_FLOOR_MIB`] and the request;
//! - CPU request = p95 of the CPU seconds per wall second (orchestrator and children) × 1.25,
//!   at least [`CPU_FLOOR_MILLIS`]; no CPU limit (throttling a load only makes it slower).
//!
//! A pipeline without measured runs gets [`DEFAULT_REQUEST_MIB`] / [`DEFAULT_LIMIT_MIB`] and
//! [`DEFAULT_CPU_MILLIS`].

use crate::run::RunRecord;

/// How many of the latest measured runs count.
pub(super) const WINDOW: usize = 50;
pub(super) const REQUEST_FLOOR_MIB: u64 = 64;
pub(super) const LIMIT_FLOOR_MIB: u64 = 128;
pub(super) const CPU_FLOOR_MILLIS: u64 = 50;
pub(super) const DEFAULT_REQUEST_MIB: u64 = 256;
pub(super) const DEFAULT_LIMIT_MIB: u64 = 1024;
pub(super) const DEFAULT_CPU_MILLIS: u64 = 250;

/// Requests and limits for one pipeline's container.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Sizing {
    pub(super) memory_request_mib: u64,
    pub(super) memory_limit_mib: u64,
    pub(super) cpu_request_millis: u64,
    /// How they were found, for an annotation.
    pub(super) basis: String,
}

/// A run's peak memory in KiB, when the run measured its children.
fn peak_kb(r: &RunRecord) -> Option<u64> {
    (r.children_max_rss_kb > 0).then(|| r.orchestrator_max_rss_kb + 2 * r.children_max_rss_kb)
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn kib_to_mib_ceil(kib: f64) -> u64 {
    (kib / 1024.0).ceil() as u64
}

/// Sizing for `pipeline` from `runs` (the whole history, oldest first).
pub(super) fn size(runs: &[RunRecord], pipeline: &str) -> Sizing {
    let measured: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.pipeline == pipeline && peak_kb(r).is_some())
        .collect();
    let measured = &measured[measured.len().saturating_sub(WINDOW)..];
    if measured.is_empty() {
        return Sizing {
            memory_request_mib: DEFAULT_REQUEST_MIB,
            memory_limit_mib: DEFAULT_LIMIT_MIB,
            cpu_request_millis: DEFAULT_CPU_MILLIS,
            basis: "no measured runs in the history: defaults".into(),
        };
    }
    let mut peaks: Vec<f64> = measured
        .iter()
        .filter_map(|r| peak_kb(r))
        .map(|k| k as f64)
        .collect();
    peaks.sort_by(f64::total_cmp);
    let p95 = percentile(&peaks, 0.95);
    let max = peaks.last().copied().unwrap_or(0.0);
    let memory_request_mib = kib_to_mib_ceil(p95 * 1.25).max(REQUEST_FLOOR_MIB);
    let memory_limit_mib = kib_to_mib_ceil(max * 1.5)
        .max(LIMIT_FLOOR_MIB)
        .max(memory_request_mib);

    let mut cores: Vec<f64> = measured
        .iter()
        .filter_map(|r| {
            let secs = r.duration_secs().filter(|d| *d > 0.0)?;
            Some((r.orchestrator_cpu_secs + r.children_cpu_secs) / secs)
        })
        .collect();
    cores.sort_by(f64::total_cmp);
    let cpu_request_millis = if cores.is_empty() {
        DEFAULT_CPU_MILLIS
    } else {
        ((percentile(&cores, 0.95) * 1.25 * 1000.0).ceil() as u64).max(CPU_FLOOR_MILLIS)
    };
    Sizing {
        memory_request_mib,
        memory_limit_mib,
        cpu_request_millis,
        basis: format!(
            "{} measured runs: p95 peak {} MiB, max peak {} MiB; request = p95 x 1.25, limit = max x 1.5",
            measured.len(),
            kib_to_mib_ceil(p95),
            kib_to_mib_ceil(max),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pipeline: &str, orch_kb: u64, children_kb: u64) -> RunRecord {
        RunRecord {
            pipeline: pipeline.into(),
            outcome: "succeeded".into(),
            started_at: "2026-01-01T00:00:00+00:00".into(),
            ended_at: Some("2026-01-01T00:00:10+00:00".into()),
            children_cpu_secs: 5.0,
            orchestrator_max_rss_kb: orch_kb,
            children_max_rss_kb: children_kb,
            ..RunRecord::default()
        }
    }

    #[test]
    fn follows_the_history() {
        // 20 runs of 10 MiB + 2 × (50..=69 MiB): p95 is the 19th, max the 20th.
        let runs: Vec<RunRecord> = (0..20)
            .map(|i| run("p", 10 * 1024, (50 + i) * 1024))
            .chain([run("other", 1 << 30, 1 << 30), run("p", 1 << 30, 0)])
            .collect();
        let s = size(&runs, "p");
        let p95 = 10 + 2 * 68;
        let max = 10 + 2 * 69;
        assert_eq!(s.memory_request_mib, (p95 as f64 * 1.25).ceil() as u64);
        assert_eq!(s.memory_limit_mib, (max as f64 * 1.5).ceil() as u64);
        assert_eq!(s.cpu_request_millis, 625);
        assert!(s.basis.starts_with("20 measured runs"), "{}", s.basis);
    }

    #[test]
    fn floors_and_defaults() {
        let s = size(&[run("p", 1024, 1024)], "p");
        assert_eq!((s.memory_request_mib, s.memory_limit_mib), (64, 128));
        let d = size(&[], "p");
        assert_eq!((d.memory_request_mib, d.memory_limit_mib), (256, 1024));
    }
}
