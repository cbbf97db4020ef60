//! The tap side of the SDK.
//!
//! A tap implements [`Tap`] and calls [`run_tap`] from `main`. The SDK parses the command line,
//! merges config files, reads state and catalog, and hands the tap a [`TapContext`] through
//! which every message is written.
//!
//! Contract for implementors:
//! - emit a SCHEMA for a stream before any of its RECORDs ([`TapContext::write_schema`]);
//! - advance a bookmark only after the rows it covers were written, then call
//!   [`TapContext::write_state`]; a run resumed from any emitted state must lose nothing
//!   (duplicates at the boundary are allowed: delivery is at least once);
//! - never write to stdout directly;
//! - in a loop that may run long without writing or awaiting (a scan that filters most rows
//!   out in memory), call [`TapContext::check_stop`] now and then.
//!
//! Stopping ([`run_tap`]): on the first SIGTERM or SIGINT no new message is started. Every
//! `write_*` method refuses with [`SdkError::Interrupted`], and the sync future is dropped at
//! its next `.await` (so a tap waiting on its source stops too). What was written before goes
//! out whole: the writer hands stdout only complete lines, so the output ends at a message
//! boundary, and its last STATE is a valid resume point (TAP-14). The tap then exits with
//! 128 + the signal's number (143 for SIGTERM, 130 for SIGINT): the sync did not finish, and
//! a runner must not take it for a complete one; the state the target echoed stays valid. A
//! LOG_BASED tap acknowledges to its source only what the state it was started with covers,
//! so a stop never acknowledges past the last state written. A second signal exits at once
//! with 128 + its number, after the line being written (if any) is complete, or after 1 s.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::runtime::Runtime;

use super::cli::{self, AboutFormat, TapArgs};
use super::signal::{Sig, StopFlag, Stopping};
use super::{About, SdkError, config, logging};
use crate::catalog::{Catalog, CatalogEntry};
use crate::io::MessageWriter;
use crate::message::{ActivateVersionMessage, BatchMessage, Message, SchemaMessage};
use crate::metrics::{self, Metric, RecordCounter};
use crate::state::State;

/// How often record counts are reported on stderr.
pub const METRIC_INTERVAL: Duration = Duration::from_secs(60);

/// How long a stopped tap waits for the tasks its sync left behind (connections, replication
/// workers) before it exits anyway.
const STOP_SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// A Singer tap.
pub trait Tap: Sized + Send + 'static {
    /// Executable name, e.g. `tap-mysql`.
    const NAME: &'static str;
    /// Version printed by `--version`.
    const VERSION: &'static str;
    /// The typed config; reject unknown keys with `#[serde(deny_unknown_fields)]`.
    type Config: DeserializeOwned + Send;

    /// What `--about` prints.
    fn about() -> About;

    /// Builds the tap from its config. Pure: no network or file access here.
    fn new(config: Self::Config) -> Result<Self, SdkError>;

    /// Lists the available streams with their schemas and metadata.
    fn discover(&mut self) -> impl Future<Output = Result<Catalog, SdkError>> + Send;

    /// Emits SCHEMA, RECORD, STATE (and ACTIVATE_VERSION) messages for the selected streams.
    fn sync(
        &mut self,
        ctx: &mut TapContext,
        catalog: Catalog,
    ) -> impl Future<Output = Result<(), SdkError>> + Send;
}

/// What a tap writes through during a sync.
pub struct TapContext {
    writer: MessageWriter<Box<dyn Write + Send>>,
    state: State,
    counters: HashMap<String, RecordCounter>,
    timers: HashMap<String, Instant>,
    /// Set by a stop signal; from then on nothing new is written.
    stop: StopFlag,
}

impl TapContext {
    /// A context writing to `out`, starting from `state`.
    pub fn new(out: Box<dyn Write + Send>, state: State) -> Self {
        Self {
            writer: MessageWriter::new(out),
            state,
            counters: HashMap::new(),
            timers: HashMap::new(),
            stop: StopFlag::default(),
        }
    }

    /// Whether a stop signal arrived: the tap should return (any `write_*` call now fails with
    /// [`SdkError::Interrupted`], which `?` passes up). Whatever the sync then returns, the
    /// run ends as interrupted.
    pub fn stop_requested(&self) -> bool {
        self.stop.requested()
    }

    /// Fails with [`SdkError::Interrupted`] once a stop signal arrived: `ctx.check_stop()?` in
    /// a loop that may run long without writing a message.
    pub fn check_stop(&self) -> Result<(), SdkError> {
        if !self.stop.requested() {
            return Ok(());
        }
        Err(interrupted(self.stop.signal().unwrap_or(Sig::Term)))
    }

    /// The current state (as given by `--state`, then as updated by the tap).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The state, to update bookmarks; call [`Self::write_state`] to emit it.
    pub fn state_mut(&mut self) -> &mut State {
        &mut self.state
    }

    /// Writes the SCHEMA of a catalog stream, restricted to its selected properties.
    pub fn write_schema(&mut self, entry: &CatalogEntry) -> Result<(), SdkError> {
        let bookmark_properties = entry.replication_key().map(|k| vec![k.to_string()]);
        self.write_schema_message(SchemaMessage {
            stream: entry.stream.clone(),
            schema: entry.selected_schema(),
            key_properties: entry.key_properties(),
            bookmark_properties,
        })
    }

    /// Writes any SCHEMA message.
    pub fn write_schema_message(&mut self, msg: SchemaMessage) -> Result<(), SdkError> {
        self.check_stop()?;
        self.writer
            .write_message(&Message::Schema(msg))
            .map_err(SdkError::stdout)
    }

    /// Writes one RECORD.
    pub fn write_record<T: Serialize + ?Sized>(
        &mut self,
        stream: &str,
        record: &T,
    ) -> Result<(), SdkError> {
        self.write_record_full(stream, record, None, None)
    }

    /// Writes one RECORD with a table version and `time_extracted`.
    pub fn write_record_full<T: Serialize + ?Sized>(
        &mut self,
        stream: &str,
        record: &T,
        version: Option<i64>,
        time_extracted: Option<&str>,
    ) -> Result<(), SdkError> {
        self.check_stop()?;
        self.writer
            .write_record(stream, record, version, time_extracted)
            .map_err(SdkError::stdout)?;
        self.count(stream);
        Ok(())
    }

    /// Writes one RECORD whose record is already a JSON object (see
    /// [`MessageWriter::write_record_json`]: the bytes are trusted).
    pub fn write_record_json(
        &mut self,
        stream: &str,
        record_json: &[u8],
        version: Option<i64>,
        time_extracted: Option<&str>,
    ) -> Result<(), SdkError> {
        self.check_stop()?;
        self.writer
            .write_record_json(stream, record_json, version, time_extracted)
            .map_err(SdkError::stdout)?;
        self.count(stream);
        Ok(())
    }

    /// Writes a BATCH message whose files hold `rows` records, counted as the stream's
    /// records. The STATE covering those rows follows it (see [`crate::batch`]).
    pub fn write_batch(&mut self, msg: BatchMessage, rows: u64) -> Result<(), SdkError> {
        self.check_stop()?;
        let stream = msg.stream.clone();
        self.writer
            .write_message(&Message::Batch(msg))
            .map_err(SdkError::stdout)?;
        self.count_n(&stream, rows);
        Ok(())
    }

    fn count(&mut self, stream: &str) {
        self.count_n(stream, 1);
    }

    fn count_n(&mut self, stream: &str, n: u64) {
        match self.counters.get_mut(stream) {
            Some(c) => c.add(n),
            None => {
                let mut c = RecordCounter::new(stream, METRIC_INTERVAL);
                c.add(n);
                self.counters.insert(stream.to_string(), c);
            }
        }
    }

    /// Writes ACTIVATE_VERSION.
    pub fn write_activate_version(&mut self, stream: &str, version: i64) -> Result<(), SdkError> {
        self.check_stop()?;
        let msg = ActivateVersionMessage {
            stream: stream.to_string(),
            version,
        };
        self.writer
            .write_message(&Message::ActivateVersion(msg))
            .map_err(SdkError::stdout)
    }

    /// Writes the current state as a STATE message and flushes.
    pub fn write_state(&mut self) -> Result<(), SdkError> {
        self.check_stop()?;
        self.writer
            .write_state(&self.state.as_value())
            .map_err(SdkError::stdout)
    }

    /// Marks a stream as being synced (`currently_syncing`) and starts its timer.
    pub fn begin_stream(&mut self, tap_stream_id: &str) {
        self.state.set_currently_syncing(Some(tap_stream_id));
        self.timers
            .insert(tap_stream_id.to_string(), Instant::now());
        tracing::info!(stream = tap_stream_id, "sync started");
    }

    /// Clears `currently_syncing`, reports the stream's metrics, and writes state.
    pub fn end_stream(&mut self, tap_stream_id: &str, stream: &str) -> Result<(), SdkError> {
        self.state.set_currently_syncing(None);
        let rows = self.counters.get_mut(stream).map_or(0, |c| {
            c.flush();
            c.total()
        });
        if let Some(started) = self.timers.remove(tap_stream_id) {
            let mut tags = metrics::stream_tags(stream);
            tags.insert("status".into(), Value::from("succeeded"));
            Metric::timer(metrics::JOB_DURATION, started.elapsed(), tags).emit();
        }
        tracing::info!(stream = tap_stream_id, rows, "sync finished");
        self.write_state()
    }

    /// Flushes buffered output (whole messages only, also after a stop).
    pub fn flush(&mut self) -> Result<(), SdkError> {
        for c in self.counters.values_mut() {
            c.flush();
        }
        self.writer.flush().map_err(SdkError::stdout)
    }
}

/// The current time as RFC 3339 in UTC with microseconds, for `time_extracted`.
pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

/// Runs a tap as a process: parses the command line, dispatches, maps errors to exit codes.
/// SIGTERM and SIGINT stop it at a message boundary (see the module documentation).
pub fn run_tap<T: Tap>() -> ExitCode {
    logging::init();
    let args: TapArgs = cli::parse(T::NAME, T::VERSION);
    match run::<T>(args, Box::new(std::io::stdout()), true) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                SdkError::BrokenPipe => {}
                SdkError::Interrupted { .. } => tracing::warn!(
                    "{e}: the output ends at a message boundary; its last STATE is where the next run resumes"
                ),
                _ => logging::report_fatal(T::NAME, &e),
            }
            e.exit_status().into()
        }
    }
}

/// Runs a tap with parsed arguments, writing messages to `out` (used by tests). Signals are
/// left alone.
pub fn run_tap_with<T: Tap>(args: TapArgs, out: Box<dyn Write + Send>) -> Result<(), SdkError> {
    run::<T>(args, out, false)
}

fn run<T: Tap>(args: TapArgs, out: Box<dyn Write + Send>, signals: bool) -> Result<(), SdkError> {
    if args.common.about {
        return print_about(T::about(), args.common.format, out);
    }
    if args.common.config.is_empty() {
        return Err(SdkError::Usage("--config is required".into()));
    }
    let merged = config::merge_files(&args.common.config)?;
    let mut tap = T::new(config::parse(merged)?)?;
    let state = match &args.state {
        Some(p) => {
            State::from_file(p).map_err(|e| SdkError::Config(crate::error::chain_to_string(&e)))?
        }
        None => State::new(),
    };
    let catalog_path = args.catalog.as_ref().or(args.properties.as_ref());
    let catalog = match catalog_path {
        Some(p) if !args.discover => Some(
            Catalog::from_file(p)
                .map_err(|e| SdkError::Config(crate::error::chain_to_string(&e)))?,
        ),
        _ => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SdkError::fatal("cannot start the async runtime", e))?;
    let stop = if signals {
        listen::<T>(&runtime)
            .map_err(|e| SdkError::fatal("cannot listen for SIGTERM and SIGINT", e))?
    } else {
        StopFlag::default()
    };
    let result = runtime.block_on(async {
        // Completes on the first stop signal; never without signal handling.
        let stopped = || async {
            if signals {
                stop.stopped().await
            } else {
                std::future::pending().await
            }
        };
        if args.discover {
            let catalog = tokio::select! {
                biased;
                c = tap.discover() => c?,
                sig = stopped() => return Err(interrupted(sig)),
            };
            let mut out = out;
            let text = serde_json::to_string_pretty(&catalog).unwrap_or_default();
            out.write_all(text.as_bytes()).map_err(SdkError::stdout)?;
            out.write_all(b"\n").map_err(SdkError::stdout)?;
            return out.flush().map_err(SdkError::stdout);
        }
        let catalog = match catalog {
            Some(c) => c,
            None => tokio::select! {
                biased;
                c = tap.discover() => c?,
                sig = stopped() => return Err(interrupted(sig)),
            },
        };
        let mut ctx = TapContext::new(out, state);
        ctx.stop = stop.clone();
        let started = Instant::now();
        // Biased: a sync that is done is not cancelled.
        let result = tokio::select! {
            biased;
            r = tap.sync(&mut ctx, catalog) => r,
            sig = stopped() => Err(interrupted(sig)),
        };
        // Whatever ended the sync, the buffer holds whole messages only: write them out.
        let flushed = ctx.flush();
        // A stop that came before the sync returned counts, whatever it returned: a tap may
        // end early on `stop_requested` and return `Ok`, and its output is then incomplete.
        let result = match (result, stop.signal()) {
            (result, Some(sig)) => {
                if let Err(e) = result
                    && !matches!(e, SdkError::Interrupted { .. } | SdkError::BrokenPipe)
                {
                    tracing::warn!(error = %crate::error::chain_to_string(&e), "the sync also failed while stopping");
                }
                Err(interrupted(sig))
            }
            (result, None) => flushed.and(result),
        };
        let mut tags = serde_json::Map::new();
        tags.insert("job_type".into(), Value::from("sync"));
        let status = match &result {
            Ok(()) => "succeeded",
            Err(SdkError::Interrupted { .. }) => "interrupted",
            Err(_) => "failed",
        };
        tags.insert("status".into(), Value::from(status));
        Metric::timer(metrics::JOB_DURATION, started.elapsed(), tags).emit();
        result
    });
    if stop.requested() {
        // The dropped sync may have left connection tasks; they must not hold the exit up.
        runtime.shutdown_timeout(STOP_SHUTDOWN_WAIT);
    }
    result
}

fn interrupted(sig: Sig) -> SdkError {
    SdkError::Interrupted {
        signal: sig.name(),
        number: u8::try_from(sig.number()).unwrap_or(15),
    }
}

/// Installs the SIGTERM and SIGINT handlers before any source is touched. The first signal
/// sets the flag the context and [`run`] watch; the second exits at once.
fn listen<T: Tap>(rt: &Runtime) -> std::io::Result<StopFlag> {
    super::signal::listen(
        rt,
        Stopping {
            name: T::NAME,
            first: "stopping: no new message is started; what was written goes out whole (signal again to exit at once)",
            doing: "stopping",
            forced: "exiting at once",
            deadline: None,
        },
    )
}

pub(crate) fn print_about(
    about: About,
    format: AboutFormat,
    mut out: Box<dyn Write + Send>,
) -> Result<(), SdkError> {
    let text = match format {
        AboutFormat::Json => about.to_json(),
        AboutFormat::Markdown => about.to_markdown(),
        AboutFormat::Meltano => {
            // Absolute, so Meltano runs this very binary and needs no PATH or pip_url.
            let exe = std::env::current_exe()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_else(|_| about.name.clone());
            about.to_meltano(&exe)
        }
    };
    out.write_all(text.as_bytes()).map_err(SdkError::stdout)?;
    out.write_all(b"\n").map_err(SdkError::stdout)?;
    out.flush().map_err(SdkError::stdout)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Out(Arc<Mutex<Vec<u8>>>);

    impl Write for Out {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn after_a_stop_nothing_new_is_written_and_what_was_written_goes_out_whole() {
        let out = Out::default();
        let mut ctx = TapContext::new(Box::new(out.clone()), State::new());
        let schema = SchemaMessage {
            stream: "s".into(),
            schema: serde_json::json!({"type": "object"}),
            key_properties: vec![],
            bookmark_properties: None,
        };
        ctx.write_schema_message(schema.clone()).unwrap();
        ctx.write_record("s", &serde_json::json!({"i": 1})).unwrap();
        ctx.state_mut().set_bookmark_value("s", "i", Value::from(1));
        ctx.write_state().unwrap();
        ctx.write_record("s", &serde_json::json!({"i": 2})).unwrap();
        assert!(!ctx.stop_requested());

        ctx.stop.set(Sig::Term);
        assert!(ctx.stop_requested());
        let refused = [
            ctx.write_record("s", &serde_json::json!({"i": 3})),
            ctx.write_record_json("s", br#"{"i":3}"#, None, None),
            ctx.write_schema_message(schema),
            ctx.write_activate_version("s", 1),
            ctx.write_state(),
            ctx.check_stop(),
        ];
        for r in refused {
            assert!(
                matches!(
                    r,
                    Err(SdkError::Interrupted {
                        signal: "SIGTERM",
                        number: 15
                    })
                ),
                "{r:?}"
            );
        }
        ctx.flush().unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let types: Vec<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].to_string())
            .collect();
        assert_eq!(
            types,
            [r#""SCHEMA""#, r#""RECORD""#, r#""STATE""#, r#""RECORD""#]
        );
        assert!(text.ends_with('\n'));
        assert_eq!(
            SdkError::Interrupted {
                signal: "SIGINT",
                number: 2
            }
            .exit_status(),
            super::super::ExitStatus::Interrupted(2)
        );
    }
}
