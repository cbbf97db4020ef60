//! `singer run`: one pipeline run. The tap's stdout flows into the target through a bounded
//! buffer (or through the spool); every state the target confirms is stored at once; a failure
//! on either side stops the other and keeps the last confirmed state.
//!
//! Stopping early (SIGTERM or Ctrl-C to `singer`, or the run's timeout) goes through the tap:
//! its process group gets SIGTERM (SIGKILL [`GRACE`] later if it is still there), the target
//! gets end of input as at the end of any run, commits what it received and confirms it, and
//! every state it confirms is stored. The target is never signalled first: a Python target
//! dies on SIGTERM without committing. Only if it is still running `stop_grace` after the tap
//! was signalled does it get SIGTERM, then SIGKILL [`GRACE`] later. A run stopped by a signal
//! that drained cleanly (tap stopped by our SIGTERM, target exit 0, every confirmed state
//! stored) is `stopped`, which is not a failure.

pub(crate) mod inspect;
pub(crate) mod process;
pub(crate) mod pump;
mod record;
mod splice;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::catalog::{self, Selection};
use crate::lock::{self, LockError};
use crate::project::{self, Pipeline, Plugin, Project};
use crate::spool;
use crate::store::{self, Store};
use process::{Proc, describe};
use pump::{PipeSink, PumpEnd, SharedFlow};
pub(crate) use record::{RunRecord, read_runs};

/// Default bytes buffered between tap and target.
pub(crate) const DEFAULT_BUFFER: u64 = 16 << 20;
/// Capacity asked for the pipes to and from the children (Linux allows 1 MiB unprivileged).
const PIPE_BYTES: usize = 1 << 20;
/// How long a process group gets between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_secs(10);
/// Default `stop_grace`: how long a stopping run lets the target commit after the tap was
/// signalled, before signalling the target. Longer than target-postgres's default
/// `drain_timeout_seconds` (30 s), the time our targets allow themselves for a last commit.
pub(crate) const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(60);

/// Options of one run.
#[derive(Debug, Default, Clone)]
pub(crate) struct RunOptions {
    pub(crate) full_refresh: bool,
    pub(crate) select: Vec<String>,
    pub(crate) exclude: Vec<String>,
    pub(crate) state_id: Option<String>,
    pub(crate) dry_run: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) refresh_catalog: bool,
}

/// Why a run did not succeed.
#[derive(Debug)]
pub(crate) enum RunError {
    /// The project or the options are wrong (exit 2).
    Config(String),
    /// Another run of the same state id is going on (exit 3).
    Busy(String),
    /// The run started and failed (exit 1); the record says how.
    Failed(Box<RunRecord>),
}

impl RunError {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            RunError::Config(_) => 2,
            RunError::Busy(_) => 3,
            RunError::Failed(_) => 1,
        }
    }
}

/// Everything a run needs from the project.
pub(crate) struct Env<'a> {
    pub(crate) project: &'a Project,
    pub(crate) project_dir: &'a Path,
    pub(crate) home: &'a Path,
    pub(crate) store: &'a Store,
    /// Set to stop the run gracefully (the tap is stopped, the target finishes).
    pub(crate) shutdown: Arc<AtomicBool>,
}

impl Env<'_> {
    pub(crate) fn program(&self, plugin: &Plugin) -> PathBuf {
        let p = Path::new(&plugin.executable);
        if p.components().count() > 1 {
            self.project_dir.join(p)
        } else {
            p.to_path_buf()
        }
    }

    fn pg_url(&self) -> Option<String> {
        match &self.project.state {
            project::StateStoreConfig::Postgres { url, .. } => project::interpolate_str(url).ok(),
            project::StateStoreConfig::Local => None,
        }
    }
}

/// Runs a pipeline, retrying failed attempts as configured; returns the last attempt's record.
pub(crate) fn run(env: &Env<'_>, name: &str, opts: &RunOptions) -> Result<RunRecord, RunError> {
    let pipeline = env.project.pipeline(name).map_err(RunError::Config)?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match run_once(env, name, pipeline, opts, attempt) {
            Err(RunError::Failed(rec))
                if attempt <= pipeline.retries && !env.shutdown.load(Ordering::SeqCst) =>
            {
                let wait = Duration::from_secs(2 * u64::from(attempt));
                tracing::warn!(
                    pipeline = name,
                    attempt,
                    "run failed ({}); retrying from the last confirmed state in {}s",
                    rec.error.as_deref().unwrap_or("unknown"),
                    wait.as_secs()
                );
                std::thread::sleep(wait);
            }
            other => {
                if let Err(e) = &other {
                    crate::metrics::run_not_started(name, e);
                }
                return other;
            }
        }
    }
}

fn run_once(
    env: &Env<'_>,
    name: &str,
    pipeline: &Pipeline,
    opts: &RunOptions,
    attempt: u32,
) -> Result<RunRecord, RunError> {
    let state_id = opts
        .state_id
        .clone()
        .unwrap_or_else(|| pipeline.state_id(name).to_string());
    let tap = &env.project.taps[&pipeline.tap];
    let target = &env.project.targets[&pipeline.target];
    let run_lock = if opts.dry_run {
        None
    } else {
        Some(
            lock::acquire(env.home, env.store, env.pg_url().as_deref(), &state_id).map_err(
                |e| match e {
                    LockError::Busy(m) => RunError::Busy(m),
                    LockError::Failed(m) => RunError::Config(m),
                },
            )?,
        )
    };
    let started = chrono::Utc::now();
    let run_id = format!(
        "{}-{}",
        started.format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id()
    );
    let run_dir = env.home.join("runs").join(&run_id);
    let _cleanup = RunDir::create(&run_dir).map_err(RunError::Config)?;

    // Configs (secrets resolved from the environment) live only as long as the run.
    let tap_cfg = project::resolve_config(&tap.config)
        .map_err(|e| RunError::Config(format!("tap `{}`: {e}", pipeline.tap)))?;
    let target_cfg = project::resolve_config(&target.config)
        .map_err(|e| RunError::Config(format!("target `{}`: {e}", pipeline.target)))?;
    let tap_cfg_path = run_dir.join("tap.json");
    let target_cfg_path = run_dir.join("target.json");
    write_private(&tap_cfg_path, &tap_cfg).map_err(RunError::Config)?;
    write_private(&target_cfg_path, &target_cfg).map_err(RunError::Config)?;

    let tap_program = env.program(tap);
    let mut cat = match &tap.catalog {
        Some(file) => catalog::read_fixed(&env.project_dir.join(file)).map_err(RunError::Config)?,
        None => {
            let tap_env = project::resolve_env(&tap.env).map_err(RunError::Config)?;
            let cmd = catalog::TapCommand {
                program: &tap_program,
                args: &tap.args,
                env: &tap_env,
                config: &tap_cfg,
                config_path: &tap_cfg_path,
            };
            catalog::discover(env.home, &pipeline.tap, &cmd, opts.refresh_catalog)
                .map_err(RunError::Config)?
        }
    };
    let selected = catalog::apply(
        &mut cat,
        &Selection::of(pipeline, &opts.select, &opts.exclude),
    );
    if selected.is_empty() {
        return Err(RunError::Config(format!(
            "pipeline `{name}` selects no stream (check `select`, `exclude` and the catalog)"
        )));
    }
    let catalog_path = run_dir.join("catalog.json");
    catalog::write_atomic(&catalog_path, cat.to_string().as_bytes()).map_err(RunError::Config)?;

    let previous = if opts.full_refresh {
        None
    } else {
        env.store
            .get(&state_id)
            .map_err(|e| RunError::Config(e.to_string()))?
    };
    let mut tap_args = tap.args.clone();
    tap_args.extend(["--config".into(), path_arg(&tap_cfg_path)]);
    let catalog_arg = tap
        .catalog_arg
        .clone()
        .unwrap_or_else(|| "--catalog".into());
    tap_args.extend([catalog_arg, path_arg(&catalog_path)]);
    if let Some(state) = &previous {
        let state_path = run_dir.join("state.json");
        write_private(&state_path, state).map_err(RunError::Config)?;
        tap_args.extend(["--state".into(), path_arg(&state_path)]);
    }
    let mut target_args = target.args.clone();
    target_args.extend(["--config".into(), path_arg(&target_cfg_path)]);

    if opts.dry_run {
        let plan = json!({
            "pipeline": name, "state_id": state_id,
            "tap": {"executable": tap_program, "args": tap.args},
            "target": {"executable": env.program(target), "args": target.args},
            "selected_streams": selected, "state": previous,
            "spool": pipeline.spool.is_some(),
        });
        println_stdout(&serde_json::to_string_pretty(&plan).unwrap_or_default());
        return Ok(RunRecord::dry(name, &state_id, &run_id));
    }

    let mut rec = RunRecord::start(name, &state_id, &run_id, attempt, started);
    let usage_at_start = record::Usage::now();
    let flow = SharedFlow::default();
    let _metrics = crate::metrics::track_run(name, &state_id, &flow);
    let watcher = watch::Watcher::start(Arc::clone(&flow), selected);
    let metrics = Arc::new(Mutex::new(record::Metrics::default()));
    let buffer = pipeline.buffer.unwrap_or(DEFAULT_BUFFER);
    let spool_dir = env.home.join("spool").join(store::file_name(&state_id));

    // With a spool in object storage, the local folder follows the store first.
    if let Some(cfg) = &pipeline.spool
        && let Err(e) = spool::attach(&spool_dir, cfg.root.as_deref())
    {
        let failed = rec.clone().failed(e);
        record::append(env.home, &failed);
        return Err(RunError::Failed(Box::new(failed)));
    }
    // With a spool, what an earlier run left unloaded goes first, without re-extracting.
    let mut base = previous;
    if pipeline.spool.is_some() && !opts.full_refresh && spool::has_pending(&spool_dir) {
        let replayed = replay(
            env,
            target,
            &target_args,
            &spool_dir,
            &state_id,
            &run_id,
            base.clone(),
        )
        .map_err(|e| {
            let failed = rec.clone().failed(e);
            record::append(env.home, &failed);
            RunError::Failed(Box::new(failed))
        })?;
        if let Some(s) = replayed {
            // The tap resumes from what the replay confirmed.
            let state_path = run_dir.join("state.json");
            write_private(&state_path, &s).map_err(RunError::Config)?;
            if let Some(i) = tap_args.iter().position(|a| a == "--state") {
                tap_args.truncate(i);
            }
            tap_args.extend(["--state".into(), path_arg(&state_path)]);
            base = Some(s);
        }
    }

    if env.shutdown.load(Ordering::SeqCst) {
        // Asked to stop during discovery or a spool replay: nothing is started.
        tracing::warn!(pipeline = name, "stopped before the tap and target started");
        rec.outcome = "stopped".into();
        rec.ended_at = Some(chrono::Utc::now().to_rfc3339());
        record::append(env.home, &rec);
        return Ok(rec);
    }
    let tap_env = project::resolve_env(&tap.env).map_err(RunError::Config)?;
    let target_env = project::resolve_env(&target.env).map_err(RunError::Config)?;
    let mut target_proc = Proc::spawn(
        "target",
        &env.program(target),
        &target_args,
        &target_env,
        env.project_dir,
        true,
        watch::stderr_sink(Arc::clone(&metrics), watcher.printer()),
    )
    .map_err(RunError::Config)?;
    let states_rx = watch::read_states(target_proc.child.stdout.take());
    let target_in = target_proc.child.stdin.take();
    let mut tap_proc = match Proc::spawn(
        "tap",
        &tap_program,
        &tap_args,
        &tap_env,
        env.project_dir,
        false,
        watch::stderr_sink(Arc::clone(&metrics), watcher.printer()),
    ) {
        Ok(p) => p,
        Err(e) => {
            target_proc.terminate(GRACE);
            return Err(RunError::Config(e));
        }
    };
    let tap_out = tap_proc.child.stdout.take();
    // Larger pipes on both sides: the tap and the target block less often.
    let pipe_bytes = std::env::var("SINGER_PIPE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PIPE_BYTES);
    if pipe_bytes > 0 {
        if let Some(o) = &tap_out {
            pump::enlarge_pipe(o, pipe_bytes);
        }
        if let Some(i) = &target_in {
            pump::enlarge_pipe(i, pipe_bytes);
        }
    }
    let pump = match (tap_out, target_in, &pipeline.spool) {
        // Without a buffer size the pipes are the buffer, and bytes move without copies.
        (Some(out), Some(inp), None) if pipeline.buffer.is_none() && pipe_bytes > 0 => {
            splice::start(out, inp, Arc::clone(&flow))
        }
        (Some(out), Some(inp), None) => {
            pump::start(out, PipeSink(Some(inp)), buffer, Arc::clone(&flow))
        }
        (Some(out), Some(inp), Some(cfg)) => {
            let sink = spool::SpoolSink::create(&spool_dir, cfg, inp).map_err(RunError::Config)?;
            pump::start(out, sink, buffer, Arc::clone(&flow))
        }
        _ => return Err(RunError::Config("child processes have no pipes".into())),
    };

    // Supervise: store confirmed states as they arrive, stop the other side on failure.
    let deadline = opts
        .timeout
        .or(pipeline.timeout)
        .map(|t| Instant::now() + t);
    let mut tap_status;
    let mut target_status;
    let mut timed_out = false;
    let mut stopped = false;
    // Why the run lock was lost during the run (its PostgreSQL session ended), if it was.
    let mut lock_lost: Option<String> = None;
    // When the run began to stop early (signal or timeout): the tap's SIGTERM.
    let mut stopping_since: Option<Instant> = None;
    let stop_grace = pipeline.stop_grace.unwrap_or(DEFAULT_STOP_GRACE);
    let spool_for_confirm = pipeline.spool.as_ref().map(|_| spool_dir.as_path());
    let mut confirmed = Confirmed::new(
        env.store,
        &state_id,
        &run_id,
        base.as_ref(),
        spool_for_confirm,
    );
    let mut states_open = true;
    loop {
        if states_open {
            match states_rx.recv_timeout(Duration::from_millis(50)) {
                Ok(v) => {
                    confirmed.save(v);
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => states_open = false,
            }
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        // Non-blocking: states keep being stored while either side stops.
        tap_status = tap_proc.poll();
        target_status = target_proc.poll();
        if let Some(s) = target_status
            && tap_status.is_none()
            && (pipeline.spool.is_none() || pump.is_finished())
            && (!s.success() || pump.is_finished())
        {
            // The target is gone: the tap's output has nowhere to go. With a spool it goes on
            // into the spool, so a replay loads it without extracting it again.
            tap_proc.ask_to_stop(GRACE);
        }
        if !timed_out && deadline.is_some_and(|d| Instant::now() > d) {
            timed_out = true;
            tracing::warn!(
                pipeline = name,
                "timed out: stopping the tap; the target commits what it received"
            );
        }
        if !stopped && env.shutdown.load(Ordering::SeqCst) {
            stopped = true;
        }
        if lock_lost.is_none()
            && let Some(why) = run_lock.as_ref().and_then(lock::RunLock::lost)
        {
            // Another run may take the lock now: stop extracting; no more states are stored.
            tracing::error!(pipeline = name, "{why}; stopping the run");
            lock_lost = Some(why);
        }
        if (timed_out || stopped || lock_lost.is_some()) && stopping_since.is_none() {
            // Stop extracting; the target gets end of input and commits what it has.
            stopping_since = Some(Instant::now());
            tap_proc.ask_to_stop(GRACE);
        }
        if target_status.is_none()
            && !target_proc.stop_asked()
            && stopping_since.is_some_and(|t| t.elapsed() >= stop_grace)
        {
            tracing::warn!(
                pipeline = name,
                "the target did not finish within stop_grace ({} s) of the stop",
                stop_grace.as_secs_f64()
            );
            target_proc.ask_to_stop(GRACE);
        }
        if tap_status.is_some() && target_status.is_some() && !states_open {
            break;
        }
        if tap_status.is_some() && target_status.is_some() && states_open {
            // Drain the last confirmations.
            while let Ok(v) = states_rx.recv_timeout(Duration::from_millis(200)) {
                confirmed.save(v);
            }
            break;
        }
    }
    let pump_end = pump
        .join()
        .unwrap_or(PumpEnd::ReadFailed("the pump panicked".into()));
    let tap_status = tap_proc.wait().ok().or(tap_status);
    let target_status = target_proc.wait().ok().or(target_status);
    watcher.finish();

    rec.tap_exit = describe(tap_status);
    rec.target_exit = describe(target_status);
    rec.streams = flow.lock().map(|f| f.streams.clone()).unwrap_or_default();
    rec.states_confirmed = confirmed.count;
    rec.state_advanced = confirmed.count > 0;
    rec.metrics = metrics.lock().map(|m| m.summary()).unwrap_or_default();
    rec.ended_at = Some(chrono::Utc::now().to_rfc3339());
    let usage = record::Usage::now();
    rec.orchestrator_cpu_secs = usage.cpu_secs - usage_at_start.cpu_secs;
    rec.children_cpu_secs = usage.children_cpu_secs - usage_at_start.children_cpu_secs;
    rec.orchestrator_max_rss_kb = record::max_rss_kb();
    rec.children_max_rss_kb = record::children_max_rss_kb();
    let mut errors = Vec::new();
    if let Some(e) = &confirmed.store_error {
        errors.push(format!("storing a confirmed state failed: {e}"));
    }
    if let Some(why) = &lock_lost {
        errors.push(why.clone());
    }
    if timed_out {
        errors.push("the run timed out".to_string());
    }
    let tap_done = tap_status.is_some_and(|s| s.success());
    if tap_proc.was_killed() {
        errors.push(format!(
            "tap `{}` did not stop within {} s of SIGTERM and was killed",
            pipeline.tap,
            GRACE.as_secs()
        ));
        rec.tap_stderr = tap_proc.stderr_tail();
    } else if !(tap_done || tap_proc.stop_asked() && ended_by_sigterm(tap_status)) {
        // A tap that ended on the SIGTERM it was sent did what it was asked.
        errors.push(format!("tap `{}` failed ({})", pipeline.tap, rec.tap_exit));
        rec.tap_stderr = tap_proc.stderr_tail();
    }
    if !target_status.is_some_and(|s| s.success()) {
        if target_proc.stop_asked() {
            errors.push(format!(
                "target `{}` did not finish within stop_grace ({} s) of the stop",
                pipeline.target,
                stop_grace.as_secs_f64()
            ));
        }
        errors.push(format!(
            "target `{}` failed ({})",
            pipeline.target, rec.target_exit
        ));
        rec.target_stderr = target_proc.stderr_tail();
    }
    match &pump_end {
        PumpEnd::Drained => {}
        PumpEnd::SinkFailed(e) | PumpEnd::ReadFailed(e) => errors.push(e.clone()),
    }
    if errors.is_empty() && pipeline.spool.is_some() {
        spool::loaded_all(&spool_dir);
    }
    if errors.is_empty() {
        // Stopped by a signal and drained cleanly: the target confirmed, and we stored, every
        // state it could; the next run resumes from there.
        rec.outcome = if stopped && !tap_done {
            "stopped"
        } else {
            "succeeded"
        }
        .into();
        record::append(env.home, &rec);
        Ok(rec)
    } else {
        if stopped {
            errors.push("the run was stopped (shutdown)".to_string());
        }
        rec.outcome = "failed".into();
        rec.error = Some(errors.join("; "));
        record::append(env.home, &rec);
        Err(RunError::Failed(Box::new(rec)))
    }
}

/// Whether a process ended on the SIGTERM it was sent: killed by it (the default action), or
/// exited with 143 (128 + 15, as our taps do once they stopped at a message boundary).
fn ended_by_sigterm(status: Option<std::process::ExitStatus>) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.is_some_and(|s| s.code() == Some(143) || s.signal() == Some(15))
}

/// Stores the states the target confirms during a run.
struct Confirmed<'a> {
    store: &'a Store,
    state_id: &'a str,
    run_id: &'a str,
    /// The state the run started from; confirmations are laid over it.
    base: Option<&'a Value>,
    /// The spool to trim as states are confirmed, if the run spools.
    spool: Option<&'a Path>,
    count: u64,
    store_error: Option<String>,
}

impl<'a> Confirmed<'a> {
    fn new(
        store: &'a Store,
        state_id: &'a str,
        run_id: &'a str,
        base: Option<&'a Value>,
        spool: Option<&'a Path>,
    ) -> Self {
        Self {
            store,
            state_id,
            run_id,
            base,
            spool,
            count: 0,
            store_error: None,
        }
    }

    /// Stores one confirmed state; returns it merged over the base.
    fn save(&mut self, value: Value) -> Value {
        let merged = store::merge(self.base, &value);
        match self.store.set(self.state_id, &merged, self.run_id) {
            Ok(()) => {
                self.count += 1;
                crate::metrics::state_confirmed(self.state_id);
            }
            Err(e) => {
                tracing::error!("cannot store the confirmed state: {e}");
                self.store_error = Some(e.to_string());
            }
        }
        if let Some(dir) = self.spool {
            spool::confirmed(dir, &value);
        }
        merged
    }
}

/// Feeds what the spool holds to a fresh target; returns the last state it confirmed.
fn replay(
    env: &Env<'_>,
    target: &Plugin,
    target_args: &[String],
    spool_dir: &Path,
    state_id: &str,
    run_id: &str,
    base: Option<Value>,
) -> Result<Option<Value>, String> {
    tracing::info!(spool = %spool_dir.display(), "replaying spooled batches into the target");
    let target_env = project::resolve_env(&target.env)?;
    let mut proc = Proc::spawn(
        "target",
        &env.program(target),
        target_args,
        &target_env,
        env.project_dir,
        true,
        Box::new(|role, line| tracing::info!(source = role, "{line}")),
    )?;
    let states = watch::read_states(proc.child.stdout.take());
    let input = proc.child.stdin.take();
    let feeder = {
        let dir = spool_dir.to_path_buf();
        std::thread::spawn(move || match input {
            Some(w) => spool::feed_all(&dir, w),
            None => Err("the target has no stdin".into()),
        })
    };
    let mut last = None;
    let mut confirmed = Confirmed::new(env.store, state_id, run_id, base.as_ref(), Some(spool_dir));
    for v in states.iter() {
        last = Some(confirmed.save(v));
    }
    let fed = feeder
        .join()
        .unwrap_or_else(|_| Err("the spool feeder panicked".into()));
    let status = proc.wait()?;
    if let Err(e) = fed {
        return Err(format!("replaying the spool failed: {e}"));
    }
    if !status.success() {
        return Err(format!(
            "the target failed while replaying the spool ({}): {}",
            describe(Some(status)),
            proc.stderr_tail().join(" | ")
        ));
    }
    spool::loaded_all(spool_dir);
    Ok(last)
}

/// Records in `runs.jsonl` that a scheduled time of `name` was skipped: another run of its
/// state id held the lock (`why`).
pub(crate) fn record_skipped(home: &Path, project: &Project, name: &str, why: &str) {
    let state_id = project
        .pipeline(name)
        .map_or(name, |p| p.state_id(name))
        .to_string();
    record::append_skipped(home, &RunRecord::skipped(name, &state_id, why));
}

/// A directory holding a run's config files; removed when the run ends.
struct RunDir(PathBuf);

impl RunDir {
    fn create(path: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a JSON file only the owner can read (configs hold secrets).
fn write_private(path: &Path, value: &Value) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(value.to_string().as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn path_arg(p: &Path) -> String {
    p.display().to_string()
}

/// Prints a line on stdout (the orchestrator's own output channel).
pub(crate) fn println_stdout(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.write_all(b"\n");
}

/// `singer spool replay`: loads what the spool of `name` holds into its target, storing the
/// states the target confirms.
pub(crate) fn replay_pipeline(env: &Env<'_>, name: &str) -> Result<(), String> {
    let pipeline = env.project.pipeline(name)?;
    let state_id = pipeline.state_id(name).to_string();
    let _lock = lock::acquire(env.home, env.store, env.pg_url().as_deref(), &state_id)
        .map_err(|e| e.to_string())?;
    let spool_dir = env.home.join("spool").join(store::file_name(&state_id));
    if let Some(cfg) = &pipeline.spool {
        spool::attach(&spool_dir, cfg.root.as_deref())?;
    }
    if !spool::has_pending(&spool_dir) {
        tracing::info!(pipeline = name, "the spool is empty");
        return Ok(());
    }
    let target = &env.project.targets[&pipeline.target];
    let run_id = format!(
        "replay-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        std::process::id()
    );
    let run_dir = env.home.join("runs").join(&run_id);
    let _cleanup = RunDir::create(&run_dir)?;
    let cfg = project::resolve_config(&target.config)?;
    let cfg_path = run_dir.join("target.json");
    write_private(&cfg_path, &cfg)?;
    let mut args = target.args.clone();
    args.extend(["--config".into(), path_arg(&cfg_path)]);
    let base = env.store.get(&state_id).map_err(|e| e.to_string())?;
    replay(env, target, &args, &spool_dir, &state_id, &run_id, base).map(|_| ())
}
