//! `singer schedule`: starts pipelines at their cron times, one run per pipeline at a time.
//!
//! Missed times are not caught up: when a run is still going at its next time, or the
//! scheduler was not running, that time is skipped (and logged) and the pipeline runs at the
//! next time after now. On SIGTERM or SIGINT no new run starts; running pipelines stop their
//! tap, let the target commit and confirm what it has, and the scheduler exits.
//!
//! Several schedulers (on one host or many) can share one PostgreSQL state store: at each
//! time they all try the pipeline's run lock, one runs it, and the others log the time as
//! skipped because it runs elsewhere (with the lock's holder), at INFO: it is how they share
//! the work, not a failure, and it is not retried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::project::Project;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    cron: Cron,
    tz: chrono_tz::Tz,
    /// True when the expression has a seconds field (crontab cannot express it).
    pub(crate) has_seconds: bool,
}

/// Parses a 5-field (minute first) or 6-field (second first) expression in a time zone.
pub(crate) fn parse(expr: &str, tz: Option<&str>) -> Result<Schedule, String> {
    let parser = CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build();
    let cron = parser.parse(expr).map_err(|e| e.to_string())?;
    let tz: chrono_tz::Tz = match tz {
        None => chrono_tz::UTC,
        Some(name) => name.parse().map_err(|_| {
            format!("unknown time zone `{name}` (use an IANA name such as Europe/Paris)")
        })?,
    };
    Ok(Schedule {
        cron,
        tz,
        has_seconds: expr.split_whitespace().count() == 6,
    })
}

impl Schedule {
    /// The first time strictly after `t`.
    pub(crate) fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(&self.tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// How one scheduled time of a pipeline went.
#[derive(Debug)]
pub(crate) enum Tick {
    /// It ran; `true` if it succeeded.
    Ran(bool),
    /// Another run of its state id held the run lock (another scheduler, on this host or
    /// another, or a one-off `singer run`); the message names the holder. Nothing ran.
    Busy(String),
}

/// Runs one pipeline; supplied by the caller so tests and `main` share the loop.
pub(crate) type Runner = Arc<dyn Fn(&str) -> Tick + Send + Sync>;

/// The scheduler loop. Returns after `shutdown` is set (and running pipelines finished), or
/// after `exit_after` runs have finished (times skipped because the pipeline ran elsewhere do
/// not count).
pub(crate) fn run_loop(
    project: &Project,
    runner: Runner,
    shutdown: Arc<AtomicBool>,
    exit_after: Option<u64>,
) -> Result<(), String> {
    let mut schedules = BTreeMap::new();
    for (name, p) in &project.pipelines {
        if let Some(expr) = &p.schedule {
            schedules.insert(name.clone(), parse(expr, p.timezone.as_deref())?);
        }
    }
    if schedules.is_empty() {
        return Err("no pipeline has a `schedule`".into());
    }
    let mut next: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    let now = Utc::now();
    for (name, s) in &schedules {
        if let Some(t) = s.next_after(now) {
            tracing::info!(pipeline = %name, next = %t.to_rfc3339(), "scheduled");
            next.insert(name.clone(), t);
            crate::metrics::next_run(name, t);
        }
    }
    let mut running: BTreeMap<String, JoinHandle<Tick>> = BTreeMap::new();
    let mut finished: u64 = 0;
    loop {
        crate::metrics::scheduler_tick();
        // Collect finished runs.
        let done: Vec<String> = running
            .iter()
            .filter(|(_, h)| h.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in done {
            if let Some(h) = running.remove(&name) {
                match h.join().unwrap_or(Tick::Ran(false)) {
                    Tick::Ran(ok) => {
                        finished += 1;
                        tracing::info!(pipeline = %name, ok, "scheduled run finished");
                    }
                    Tick::Busy(why) => tracing::info!(
                        pipeline = %name,
                        next = %next.get(&name).map_or_else(|| "none".into(), |t| t.to_rfc3339()),
                        "skipped: the pipeline is running elsewhere ({why})"
                    ),
                }
            }
        }
        if shutdown.load(Ordering::SeqCst) || exit_after.is_some_and(|n| finished >= n) {
            if !running.is_empty() {
                tracing::info!(
                    running = running.len(),
                    "waiting for running pipelines to reach a checkpoint"
                );
            }
            for (_, h) in std::mem::take(&mut running) {
                let _ = h.join();
            }
            return Ok(());
        }
        let now = Utc::now();
        for (name, s) in &schedules {
            let Some(due) = next.get(name).copied() else {
                continue;
            };
            if due > now {
                continue;
            }
            let following = s.next_after(now);
            if let Some(t) = following {
                next.insert(name.clone(), t);
                crate::metrics::next_run(name, t);
            }
            if running.contains_key(name) {
                crate::metrics::run_ended(name, "skipped");
                tracing::warn!(pipeline = %name, time = %due.to_rfc3339(), "skipped: the previous run is still going");
                continue;
            }
            tracing::info!(pipeline = %name, time = %due.to_rfc3339(), "starting a scheduled run");
            let r = Arc::clone(&runner);
            let n = name.clone();
            running.insert(name.clone(), std::thread::spawn(move || r(&n)));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Crontab lines for the scheduled pipelines.
pub(crate) fn crontab(
    project: &Project,
    singer: &str,
    project_file: &str,
) -> Result<String, String> {
    let mut out = String::from("# singer pipelines (generated by `singer cron`)\n");
    for (name, p) in &project.pipelines {
        let Some(expr) = &p.schedule else { continue };
        let s = parse(expr, p.timezone.as_deref())?;
        if s.has_seconds {
            out.push_str(&format!(
                "# {name}: `{expr}` has a seconds field, which cron cannot express; use `singer schedule`\n"
            ));
            continue;
        }
        if let Some(tz) = &p.timezone {
            out.push_str(&format!("CRON_TZ={tz}\n"));
        }
        out.push_str(&format!(
            "{expr} {singer} --project {project_file} run {name} >> /tmp/singer-{name}.log 2>&1\n"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_and_six_fields_in_a_time_zone() {
        let s = parse("30 2 * * *", Some("Europe/Paris")).unwrap();
        let t = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // 02:30 in Paris in winter is 01:30 UTC.
        assert_eq!(
            s.next_after(t).unwrap().to_rfc3339(),
            "2026-01-10T01:30:00+00:00"
        );
        let s = parse("*/10 * * * * *", None).unwrap();
        assert!(s.has_seconds);
        let t = DateTime::parse_from_rfc3339("2026-01-10T00:00:05Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            s.next_after(t).unwrap().to_rfc3339(),
            "2026-01-10T00:00:10+00:00"
        );
        assert!(parse("61 * * * *", None).is_err());
        assert!(parse("* * * * *", Some("Mars/Olympus")).is_err());
    }
}
