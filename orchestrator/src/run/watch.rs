//! What the user sees during a run: live progress per stream on a terminal (indicatif), JSON
//! log lines otherwise; the children's stderr passed on; `INFO METRIC` lines collected; the
//! target's stdout read as confirmed states.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use super::process::StderrSink;
use super::pump::SharedFlow;
use super::record::Metrics;

/// Prints a line without tearing the progress bars.
#[derive(Clone)]
pub(crate) struct Printer(Option<MultiProgress>);

impl Printer {
    pub(crate) fn line(&self, role: &str, text: &str) {
        match &self.0 {
            Some(mp) => {
                let _ = mp.println(format!("[{role}] {text}"));
            }
            None => tracing::info!(source = role, "{text}"),
        }
    }
}

/// Live progress, refreshed from the pump's counts.
pub(crate) struct Watcher {
    mp: Option<MultiProgress>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub(crate) fn start(flow: SharedFlow, streams: Vec<String>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let mp = tty.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        let thread = {
            let stop = Arc::clone(&stop);
            let mp = mp.clone();
            std::thread::spawn(move || tick(flow, streams, mp, stop))
        };
        Self {
            mp,
            stop,
            thread: Some(thread),
        }
    }

    pub(crate) fn printer(&self) -> Printer {
        Printer(self.mp.clone())
    }

    pub(crate) fn finish(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn tick(flow: SharedFlow, streams: Vec<String>, mp: Option<MultiProgress>, stop: Arc<AtomicBool>) {
    let started = Instant::now();
    let mut bars: BTreeMap<String, ProgressBar> = BTreeMap::new();
    // indicatif's `{per_sec}` prints every digit of the float; whole records per second read
    // better.
    let style = ProgressStyle::with_template(
        "{spinner} {prefix:30} {human_pos:>12} records {rate:>14} {msg}",
    )
    .map(|s| {
        s.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{:.0}/s", state.per_sec());
            },
        )
    })
    .unwrap_or_else(|_| ProgressStyle::default_spinner());
    if let Some(mp) = &mp {
        for s in &streams {
            let pb = mp.add(
                ProgressBar::new_spinner()
                    .with_style(style.clone())
                    .with_prefix(s.clone()),
            );
            bars.insert(s.clone(), pb);
        }
    }
    let mut last_log = Instant::now();
    loop {
        let done = stop.load(Ordering::SeqCst);
        let snapshot: Vec<(String, u64, u64)> = flow
            .lock()
            .map(|f| {
                f.streams
                    .iter()
                    .map(|(k, v)| (k.clone(), v.records, v.bytes))
                    .collect()
            })
            .unwrap_or_default();
        match &mp {
            Some(mp) => {
                for (s, records, bytes) in &snapshot {
                    let pb = bars.entry(s.clone()).or_insert_with(|| {
                        mp.add(
                            ProgressBar::new_spinner()
                                .with_style(style.clone())
                                .with_prefix(s.clone()),
                        )
                    });
                    pb.set_position(*records);
                    pb.set_message(format!("{}", HumanBytes(*bytes)));
                    pb.tick();
                }
            }
            None => {
                if done || last_log.elapsed() >= Duration::from_secs(10) {
                    last_log = Instant::now();
                    for (s, records, bytes) in &snapshot {
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        tracing::info!(
                            stream = %s, records, bytes,
                            records_per_sec = (*records as f64 / secs).round() as u64,
                            "progress"
                        );
                    }
                }
            }
        }
        if done {
            for pb in bars.values() {
                pb.finish();
            }
            return;
        }
        std::thread::park_timeout(Duration::from_millis(200));
    }
}

/// Passes a child's stderr on and collects its `INFO METRIC` lines.
pub(crate) fn stderr_sink(metrics: Arc<Mutex<Metrics>>, printer: Printer) -> StderrSink {
    Box::new(move |role, line| {
        if let Some(json) = line.split_once("METRIC:").map(|(_, j)| j.trim())
            && let Ok(v) = serde_json::from_str::<Value>(json)
        {
            if let Ok(mut m) = metrics.lock() {
                m.add(role, &v);
            }
            return;
        }
        printer.line(role, line);
    })
}

/// Reads the target's stdout: every line is a state it confirmed.
pub(crate) fn read_states<R: Read + Send + 'static>(out: Option<R>) -> Receiver<Value> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let Some(out) = out else { return };
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(v @ Value::Object(_)) => {
                    if tx.send(v).is_err() {
                        break;
                    }
                }
                _ => {
                    tracing::warn!("the target wrote a line on stdout that is not a state; ignored")
                }
            }
        }
    });
    rx
}
