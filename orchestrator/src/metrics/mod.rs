//! Prometheus metrics of `singer run` and `singer schedule`, served on `--metrics-addr`
//! (`/metrics` in the OpenMetrics text format, `/healthz` for a liveness probe).
//!
//! Nothing is collected unless the endpoint was asked for: the hooks below (called by the run,
//! the run records, the state confirmations and the scheduler loop) do nothing until
//! [`serve`] installed the process-wide [`Exporter`]. Records and bytes per stream are read
//! from the run's live flow counts when a scrape comes, so they move during a run, not only at
//! its end; the spool backlog is read from the spool manifests at the same moment.
//!
//! Labels are pipeline names, stream names and outcomes: never configs, URLs or state values.

mod exporter;
mod server;

use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};

use crate::project::Project;
use crate::run::pump::SharedFlow;
use crate::store::Store;
use exporter::Exporter;
pub(crate) use server::{Server, serve};

/// The exporter of this process, once `--metrics-addr` started the endpoint.
static EXPORTER: OnceLock<Arc<Exporter>> = OnceLock::new();

fn exporter() -> Option<&'static Arc<Exporter>> {
    EXPORTER.get()
}

/// One pipeline the endpoint reports on.
#[derive(Debug, Clone)]
pub(crate) struct Watched {
    pub(crate) pipeline: String,
    pub(crate) state_id: String,
    /// `<home>/spool/<state id>` when the pipeline spools.
    pub(crate) spool_dir: Option<std::path::PathBuf>,
}

/// The pipelines the endpoint reports on: the one `singer run` runs, or every scheduled one.
pub(crate) fn scope(project: &Project, home: &std::path::Path, only: Option<&str>) -> Vec<Watched> {
    project
        .pipelines
        .iter()
        .filter(|(name, p)| match only {
            Some(o) => o == name.as_str(),
            None => p.schedule.is_some(),
        })
        .map(|(name, p)| {
            let state_id = p.state_id(name).to_string();
            Watched {
                pipeline: name.clone(),
                spool_dir: p
                    .spool
                    .as_ref()
                    .map(|_| home.join("spool").join(crate::store::file_name(&state_id))),
                state_id,
            }
        })
        .collect()
}

/// Seeds the time of the last confirmed state of each watched pipeline from the store (its
/// `updated_at`), so the lag is known before the first run of this process confirms one.
pub(crate) fn seed_confirmed(store: &Store) {
    let Some(e) = exporter() else { return };
    match store.list() {
        Ok(entries) => {
            for entry in entries {
                let at = entry
                    .updated_at
                    .as_deref()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
                if let Some(at) = at {
                    e.seed_confirmed(&entry.id, at.with_timezone(&Utc));
                }
            }
        }
        Err(err) => tracing::warn!("metrics: cannot list the stored states: {err}"),
    }
}

/// A run (one attempt) whose flow the endpoint follows while it lasts; dropping it folds the
/// run's last counts in and marks it no longer in progress.
pub(crate) struct RunTracker {
    id: Option<u64>,
}

/// Follows a run's flow (records and bytes per stream) and counts it in progress.
pub(crate) fn track_run(pipeline: &str, state_id: &str, flow: &SharedFlow) -> RunTracker {
    RunTracker {
        id: exporter().map(|e| e.run_started(pipeline, state_id, Arc::clone(flow))),
    }
}

impl Drop for RunTracker {
    fn drop(&mut self) {
        if let (Some(e), Some(id)) = (exporter(), self.id) {
            e.run_finished(id);
        }
    }
}

/// A run ended with `outcome` (`succeeded`, `failed`, `stopped` or `skipped`).
pub(crate) fn run_ended(pipeline: &str, outcome: &str) {
    if let Some(e) = exporter() {
        e.run_ended(pipeline, outcome);
    }
}

/// The target confirmed a state, and it was stored.
pub(crate) fn state_confirmed(state_id: &str) {
    if let Some(e) = exporter() {
        e.state_confirmed(state_id, Utc::now());
    }
}

/// The scheduler's next time for `pipeline`.
pub(crate) fn next_run(pipeline: &str, at: DateTime<Utc>) {
    if let Some(e) = exporter() {
        e.next_run(pipeline, at);
    }
}

/// The scheduler loop went round once (the health endpoint checks it keeps doing so).
pub(crate) fn scheduler_tick() {
    if let Some(e) = exporter() {
        e.tick(Utc::now());
    }
}

/// Counts a run that ended before it started: a project or usage error as `failed`, another
/// run of the same state id holding the lock as `skipped`. (Runs that started are counted by
/// their run record.)
pub(crate) fn run_not_started(pipeline: &str, error: &crate::run::RunError) {
    match error {
        crate::run::RunError::Config(_) => run_ended(pipeline, "failed"),
        crate::run::RunError::Busy(_) => run_ended(pipeline, "skipped"),
        crate::run::RunError::Failed(_) => {}
    }
}

/// The metrics options of `singer run`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RunArgs {
    /// Serve Prometheus metrics (/metrics) and a health check (/healthz) on this address
    /// during the run, e.g. 127.0.0.1:9464 (port 0: a free one, logged).
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_addr: Option<String>,
    /// After the run, keep serving /metrics until it is scraped once more (so the outcome is
    /// seen), at most this long, e.g. 60s.
    #[arg(
        long,
        value_name = "DURATION",
        value_parser = crate::project::parse_duration,
        default_value = "0s",
        requires = "metrics_addr"
    )]
    pub(crate) metrics_linger: std::time::Duration,
}

impl RunArgs {
    /// Starts the endpoint for `pipeline` if `--metrics-addr` was given.
    pub(crate) fn serve(
        &self,
        project: &Project,
        home: &std::path::Path,
        pipeline: &str,
        shutdown: &Arc<std::sync::atomic::AtomicBool>,
    ) -> Result<Option<Server>, String> {
        self.metrics_addr
            .as_deref()
            .map(|addr| serve(addr, project, home, Some(pipeline), Arc::clone(shutdown)))
            .transpose()
    }
}
