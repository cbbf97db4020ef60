//! The metric families, what updates them, and how a scrape renders them (prometheus-client,
//! OpenMetrics text).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Watched;
use crate::run::pump::{SharedFlow, StreamCount};

/// A gauge of seconds (or of a Unix time in seconds).
type Seconds = Gauge<f64, AtomicU64>;

/// The outcomes counted by `singer_runs_total`, each shown from 0 for every watched pipeline.
pub(crate) const OUTCOMES: [&str; 4] = ["succeeded", "failed", "stopped", "skipped"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabels {
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamLabels {
    pipeline: String,
    stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    pipeline: String,
    outcome: String,
}

fn of(pipeline: &str) -> PipelineLabels {
    PipelineLabels {
        pipeline: pipeline.to_string(),
    }
}

/// Every metric of the endpoint, and the live runs they are read from.
pub(crate) struct Exporter {
    registry: Registry,
    records: Family<StreamLabels, Counter>,
    bytes: Family<StreamLabels, Counter>,
    runs: Family<OutcomeLabels, Counter>,
    in_progress: Family<PipelineLabels, Gauge>,
    states: Family<PipelineLabels, Counter>,
    confirmed_at: Family<PipelineLabels, Seconds>,
    lag: Family<PipelineLabels, Seconds>,
    spool_batches: Family<PipelineLabels, Gauge>,
    spool_bytes: Family<PipelineLabels, Gauge>,
    next_run: Family<PipelineLabels, Seconds>,
    last_tick: Seconds,
    watched: Vec<Watched>,
    live: Mutex<Live>,
}

#[derive(Default)]
struct Live {
    next_id: u64,
    runs: BTreeMap<u64, Active>,
    /// State id → pipeline: the watched pipelines' ids, and those of the runs seen.
    pipelines: BTreeMap<String, String>,
    /// When each pipeline's last confirmed state was stored.
    confirmed: BTreeMap<String, DateTime<Utc>>,
    last_tick: Option<DateTime<Utc>>,
}

/// A run in progress: its flow, and how much of it the counters already hold.
struct Active {
    pipeline: String,
    flow: SharedFlow,
    counted: BTreeMap<String, StreamCount>,
}

impl Exporter {
    /// The families of `singer run` or, with `schedule`, of `singer schedule` (which adds the
    /// next run times and the loop's last tick).
    pub(crate) fn new(watched: Vec<Watched>, schedule: bool) -> Self {
        let mut registry = Registry::with_prefix("singer");
        let e = Self {
            registry: Registry::default(),
            records: Family::default(),
            bytes: Family::default(),
            runs: Family::default(),
            in_progress: Family::default(),
            states: Family::default(),
            confirmed_at: Family::default(),
            lag: Family::default(),
            spool_batches: Family::default(),
            spool_bytes: Family::default(),
            next_run: Family::default(),
            last_tick: Seconds::default(),
            watched,
            live: Mutex::new(Live::default()),
        };
        registry.register(
            "stream_records",
            "RECORD messages the tap wrote, per stream (live during a run)",
            e.records.clone(),
        );
        registry.register(
            "stream_bytes",
            "bytes of the RECORD and SCHEMA lines the tap wrote, per stream (live during a run)",
            e.bytes.clone(),
        );
        registry.register(
            "runs",
            "runs (attempts) ended, by outcome: succeeded, failed, stopped or skipped",
            e.runs.clone(),
        );
        registry.register(
            "runs_in_progress",
            "runs going on now",
            e.in_progress.clone(),
        );
        registry.register(
            "states_confirmed",
            "states the target confirmed and the store kept",
            e.states.clone(),
        );
        registry.register(
            "state_confirmed_timestamp_seconds",
            "Unix time at which the last confirmed state was stored",
            e.confirmed_at.clone(),
        );
        registry.register(
            "state_lag_seconds",
            "seconds since the last confirmed state was stored",
            e.lag.clone(),
        );
        registry.register(
            "spool_pending_batches",
            "spooled batches not yet confirmed by the target (the backlog)",
            e.spool_batches.clone(),
        );
        registry.register(
            "spool_pending_bytes",
            "bytes of Singer lines in the spooled batches not yet confirmed",
            e.spool_bytes.clone(),
        );
        if schedule {
            registry.register(
                "schedule_next_run_timestamp_seconds",
                "Unix time of the next scheduled run",
                e.next_run.clone(),
            );
            registry.register(
                "schedule_last_tick_timestamp_seconds",
                "Unix time at which the scheduler loop last went round",
                e.last_tick.clone(),
            );
        }
        {
            let mut live = e.lock();
            for w in &e.watched {
                live.pipelines
                    .insert(w.state_id.clone(), w.pipeline.clone());
                // Every series from 0, so a first increase shows as one.
                for outcome in OUTCOMES {
                    drop(e.runs.get_or_create(&OutcomeLabels {
                        pipeline: w.pipeline.clone(),
                        outcome: outcome.into(),
                    }));
                }
                drop(e.in_progress.get_or_create(&of(&w.pipeline)));
                drop(e.states.get_or_create(&of(&w.pipeline)));
            }
        }
        Self { registry, ..e }
    }

    fn lock(&self) -> MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn run_started(&self, pipeline: &str, state_id: &str, flow: SharedFlow) -> u64 {
        let mut live = self.lock();
        live.next_id += 1;
        let id = live.next_id;
        live.pipelines
            .insert(state_id.to_string(), pipeline.to_string());
        live.runs.insert(
            id,
            Active {
                pipeline: pipeline.to_string(),
                flow,
                counted: BTreeMap::new(),
            },
        );
        self.in_progress.get_or_create(&of(pipeline)).inc();
        id
    }

    pub(crate) fn run_finished(&self, id: u64) {
        let mut live = self.lock();
        if let Some(mut run) = live.runs.remove(&id) {
            self.count_flow(&mut run);
            self.in_progress.get_or_create(&of(&run.pipeline)).dec();
        }
    }

    pub(crate) fn run_ended(&self, pipeline: &str, outcome: &str) {
        self.runs
            .get_or_create(&OutcomeLabels {
                pipeline: pipeline.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    pub(crate) fn state_confirmed(&self, state_id: &str, at: DateTime<Utc>) {
        let mut live = self.lock();
        let Some(pipeline) = live.pipelines.get(state_id).cloned() else {
            return;
        };
        self.states.get_or_create(&of(&pipeline)).inc();
        live.confirmed.insert(pipeline, at);
    }

    /// The store's time for `state_id`, unless this process saw a later confirmation.
    pub(crate) fn seed_confirmed(&self, state_id: &str, at: DateTime<Utc>) {
        let mut live = self.lock();
        let Some(pipeline) = live.pipelines.get(state_id).cloned() else {
            return;
        };
        let known = live.confirmed.entry(pipeline).or_insert(at);
        *known = (*known).max(at);
    }

    pub(crate) fn next_run(&self, pipeline: &str, at: DateTime<Utc>) {
        self.next_run.get_or_create(&of(pipeline)).set(unix(at));
    }

    pub(crate) fn tick(&self, at: DateTime<Utc>) {
        self.lock().last_tick = Some(at);
        self.last_tick.set(unix(at));
    }

    /// When the scheduler loop last went round.
    pub(crate) fn last_tick(&self) -> Option<DateTime<Utc>> {
        self.lock().last_tick
    }

    /// Brings every metric up to `now` and encodes them.
    pub(crate) fn render(&self, now: DateTime<Utc>) -> String {
        {
            let mut live = self.lock();
            for run in live.runs.values_mut() {
                self.count_flow(run);
            }
            for (pipeline, at) in &live.confirmed {
                self.confirmed_at
                    .get_or_create(&of(pipeline))
                    .set(unix(*at));
                let lag = (now - *at).num_milliseconds().max(0) as f64 / 1000.0;
                self.lag.get_or_create(&of(pipeline)).set(lag);
            }
        }
        for w in &self.watched {
            let Some(dir) = &w.spool_dir else { continue };
            let m = crate::spool::read_manifest(dir);
            let bytes: u64 = m.batches.iter().map(|b| b.bytes).sum();
            self.spool_batches
                .get_or_create(&of(&w.pipeline))
                .set(i64::try_from(m.batches.len()).unwrap_or(i64::MAX));
            self.spool_bytes
                .get_or_create(&of(&w.pipeline))
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("metrics: encoding failed: {e}");
        }
        out
    }

    /// Adds what flowed in `run` since it was last counted.
    fn count_flow(&self, run: &mut Active) {
        let Ok(flow) = run.flow.lock() else { return };
        for (stream, now) in &flow.streams {
            let counted = run.counted.entry(stream.clone()).or_default();
            let labels = StreamLabels {
                pipeline: run.pipeline.clone(),
                stream: stream.clone(),
            };
            self.records
                .get_or_create(&labels)
                .inc_by(now.records.saturating_sub(counted.records));
            self.bytes
                .get_or_create(&labels)
                .inc_by(now.bytes.saturating_sub(counted.bytes));
            *counted = now.clone();
        }
    }
}

/// A time as Unix seconds.
fn unix(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::pump::account;

    #[test]
    fn flow_counts_move_during_a_run_and_add_up_across_runs() {
        let e = Exporter::new(
            vec![Watched {
                pipeline: "p".into(),
                state_id: "p".into(),
                spool_dir: None,
            }],
            false,
        );
        let text = e.render(Utc::now());
        assert!(
            text.contains("singer_runs_total{pipeline=\"p\",outcome=\"skipped\"} 0"),
            "{text}"
        );
        let line = b"{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{}}\n";
        for _ in 0..2 {
            let flow = SharedFlow::default();
            let id = e.run_started("p", "p", std::sync::Arc::clone(&flow));
            account(line, &flow);
            let during = e.render(Utc::now());
            assert!(during.contains("singer_runs_in_progress{pipeline=\"p\"} 1"));
            account(line, &flow);
            e.run_finished(id);
            e.run_ended("p", "succeeded");
        }
        e.state_confirmed("p", Utc::now() - chrono::Duration::seconds(5));
        let text = e.render(Utc::now());
        for expected in [
            "singer_stream_records_total{pipeline=\"p\",stream=\"s\"} 4",
            &format!(
                "singer_stream_bytes_total{{pipeline=\"p\",stream=\"s\"}} {}",
                4 * line.len()
            ),
            "singer_runs_total{pipeline=\"p\",outcome=\"succeeded\"} 2",
            "singer_runs_in_progress{pipeline=\"p\"} 0",
            "singer_states_confirmed_total{pipeline=\"p\"} 1",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        let lag: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("singer_state_lag_seconds{pipeline=\"p\"} "))
            .unwrap()
            .parse()
            .unwrap();
        assert!((5.0..60.0).contains(&lag), "{lag}");
        assert!(!text.contains("schedule_next_run"), "{text}");
    }
}
