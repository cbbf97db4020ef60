//! The command line.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};
use serde_json::Value;

use crate::project::{self, Project};
use crate::run::{self, Env, RunError, RunOptions, println_stdout, process};
use crate::store::Store;
use crate::{init, schedule, spool};

#[derive(Parser)]
#[command(
    name = "singer",
    version,
    about = "Run Singer pipelines: taps into targets, with state, schedules and a spool"
)]
struct Cli {
    /// The project file (default: $SINGER_PROJECT, else ./singer.toml).
    #[arg(long, global = true, env = "SINGER_PROJECT")]
    project: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write a commented starter project file.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Print the JSON Schema of the project file.
    Schema,
    /// Run a pipeline once.
    Run {
        pipeline: String,
        /// Ignore the stored state (the confirmed states of this run are stored as usual).
        #[arg(long)]
        full_refresh: bool,
        /// Select streams (globs over tap_stream_id), replacing the pipeline's `select`.
        #[arg(long)]
        select: Vec<String>,
        /// Exclude streams (globs), replacing the pipeline's `exclude`.
        #[arg(long)]
        exclude: Vec<String>,
        /// Keep state under this id instead of the pipeline's.
        #[arg(long)]
        state_id: Option<String>,
        /// Print what would run (commands, streams, state) and stop.
        #[arg(long)]
        dry_run: bool,
        /// Longest the run may take (e.g. 30m).
        #[arg(long, value_parser = project::parse_duration)]
        timeout: Option<std::time::Duration>,
        /// Discover again instead of using the cached catalog.
        #[arg(long)]
        refresh_catalog: bool,
        #[command(flatten)]
        metrics: crate::metrics::RunArgs,
    },
    /// Print a tap's catalog (cached unless --refresh).
    Discover {
        tap: String,
        #[arg(long)]
        refresh: bool,
    },
    /// Check a Singer message stream (a file, or stdin) against the spec.
    Check { file: Option<PathBuf> },
    /// Read and change stored states.
    State {
        #[command(subcommand)]
        action: StateAction,
    },
    /// Manage the spool of a pipeline.
    Spool {
        #[command(subcommand)]
        action: SpoolAction,
    },
    /// Run pipelines at their cron times until stopped (SIGTERM or Ctrl-C).
    Schedule {
        /// Stop after this many runs have finished.
        #[arg(long)]
        exit_after: Option<u64>,
        /// Serve Prometheus metrics (/metrics) and a health check (/healthz) on this address,
        /// e.g. 127.0.0.1:9464 (port 0: a free one, logged).
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<String>,
    },
    /// Print crontab lines for the scheduled pipelines.
    Cron,
    /// Render Kubernetes manifests: a CronJob per scheduled pipeline, a ConfigMap, a Secret
    /// template.
    K8s(crate::k8s::K8sArgs),
    /// List past runs.
    Runs {
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum StateAction {
    /// List state ids.
    List,
    /// Print a state.
    Get { id: String },
    /// Replace a state with the JSON in FILE (`-` for stdin).
    Set { id: String, file: PathBuf },
    /// Remove a state (the next run starts from scratch).
    Clear { id: String },
    /// Print every change of a state.
    History { id: String },
}

#[derive(Subcommand)]
enum SpoolAction {
    /// List a pipeline's spooled batches.
    List { pipeline: String },
    /// Load the spooled batches into the target now.
    Replay { pipeline: String },
    /// Delete the spooled batches (their data is extracted again by the next run).
    Prune { pipeline: String },
}

/// Exit codes: 0 ok, 1 a run failed, 2 usage or config, 3 the pipeline is already running.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            if !msg.is_empty() {
                eprintln_err(&msg);
            }
            ExitCode::from(code)
        }
    }
}

fn eprintln_err(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "error: {msg}");
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.compact().init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

type CliResult = Result<(), (u8, String)>;

fn config_err(e: impl std::fmt::Display) -> (u8, String) {
    (2, e.to_string())
}

fn project_path(cli_path: Option<PathBuf>) -> PathBuf {
    cli_path.unwrap_or_else(|| PathBuf::from(project::FILE_NAME))
}

struct Loaded {
    project: Project,
    dir: PathBuf,
    home: PathBuf,
    path: PathBuf,
}

fn load(path: &Path) -> Result<Loaded, (u8, String)> {
    let project = project::load(path).map_err(config_err)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let home = match &project.home {
        Some(h) => dir.join(h),
        None => dir.join(".singer"),
    };
    std::fs::create_dir_all(&home).map_err(|e| config_err(format!("{}: {e}", home.display())))?;
    Ok(Loaded {
        project,
        dir,
        home,
        path: path.to_path_buf(),
    })
}

fn dispatch(cli: Cli) -> CliResult {
    let path = project_path(cli.project);
    match cli.command {
        Command::Init { force } => {
            if path.exists() && !force {
                return Err(config_err(format!(
                    "{} exists (use --force to overwrite)",
                    path.display()
                )));
            }
            std::fs::write(&path, init::STARTER)
                .map_err(|e| config_err(format!("{}: {e}", path.display())))?;
            eprintln_info(&format!("wrote {}", path.display()));
            Ok(())
        }
        Command::Schema => {
            let schema = schemars::schema_for!(Project);
            println_stdout(&serde_json::to_string_pretty(&schema).unwrap_or_default());
            Ok(())
        }
        Command::Check { file } => check(file),
        Command::Run {
            pipeline,
            full_refresh,
            select,
            exclude,
            state_id,
            dry_run,
            timeout,
            refresh_catalog,
            metrics,
        } => {
            let l = load(&path)?;
            let store = Store::open(&l.project.state, &l.home).map_err(config_err)?;
            let shutdown = signal_flag();
            let server = metrics
                .serve(&l.project, &l.home, &pipeline, &shutdown)
                .map_err(config_err)?;
            let env = Env {
                project: &l.project,
                project_dir: &l.dir,
                home: &l.home,
                store: &store,
                shutdown,
            };
            let opts = RunOptions {
                full_refresh,
                select,
                exclude,
                state_id,
                dry_run,
                timeout,
                refresh_catalog,
            };
            let result = match run::run(&env, &pipeline, &opts) {
                Ok(rec) => {
                    if !dry_run {
                        summary(&rec);
                    }
                    Ok(())
                }
                Err(RunError::Failed(rec)) => {
                    summary(&rec);
                    Err((1, String::new()))
                }
                Err(e) => {
                    let code = e.exit_code();
                    let msg = match e {
                        RunError::Config(m) | RunError::Busy(m) => m,
                        RunError::Failed(_) => String::new(),
                    };
                    Err((code, msg))
                }
            };
            if let Some(s) = &server {
                s.linger(metrics.metrics_linger);
            }
            result
        }
        Command::Discover { tap, refresh } => {
            let l = load(&path)?;
            let plugin = l
                .project
                .taps
                .get(&tap)
                .ok_or_else(|| config_err(format!("no tap named `{tap}`")))?;
            let cfg = project::resolve_config(&plugin.config).map_err(config_err)?;
            let tmp = tempfile::Builder::new()
                .prefix("singer-discover")
                .tempdir()
                .map_err(config_err)?;
            let cfg_path = tmp.path().join("config.json");
            std::fs::write(&cfg_path, cfg.to_string()).map_err(config_err)?;
            let store = Store::open(&l.project.state, &l.home).map_err(config_err)?;
            let env = Env {
                project: &l.project,
                project_dir: &l.dir,
                home: &l.home,
                store: &store,
                shutdown: Arc::new(AtomicBool::new(false)),
            };
            let tap_env = project::resolve_env(&plugin.env).map_err(config_err)?;
            let program = env.program(plugin);
            let cmd = crate::catalog::TapCommand {
                program: &program,
                args: &plugin.args,
                env: &tap_env,
                config: &cfg,
                config_path: &cfg_path,
            };
            let catalog =
                crate::catalog::discover(&l.home, &tap, &cmd, refresh).map_err(|e| (1, e))?;
            println_stdout(&serde_json::to_string_pretty(&catalog).unwrap_or_default());
            Ok(())
        }
        Command::State { action } => {
            let l = load(&path)?;
            let store = Store::open(&l.project.state, &l.home).map_err(config_err)?;
            state(&store, action)
        }
        Command::Spool { action } => {
            let l = load(&path)?;
            spool_cmd(&l, action)
        }
        Command::Schedule {
            exit_after,
            metrics_addr,
        } => {
            let l = load(&path)?;
            let shutdown = signal_flag();
            let _server = metrics_addr
                .map(|a| {
                    crate::metrics::serve(&a, &l.project, &l.home, None, Arc::clone(&shutdown))
                })
                .transpose()
                .map_err(config_err)?;
            let project = l.project.clone();
            let dir = l.dir.clone();
            let home = l.home.clone();
            let state_cfg = l.project.state.clone();
            let flag = Arc::clone(&shutdown);
            let runner: schedule::Runner = Arc::new(move |name: &str| {
                let store = match Store::open(&state_cfg, &home) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(pipeline = name, "state store: {e}");
                        return schedule::Tick::Ran(false);
                    }
                };
                let env = Env {
                    project: &project,
                    project_dir: &dir,
                    home: &home,
                    store: &store,
                    shutdown: Arc::clone(&flag),
                };
                match run::run(&env, name, &RunOptions::default()) {
                    Ok(rec) => {
                        summary(&rec);
                        schedule::Tick::Ran(true)
                    }
                    Err(RunError::Failed(rec)) => {
                        summary(&rec);
                        schedule::Tick::Ran(false)
                    }
                    Err(RunError::Busy(m)) => {
                        // Running elsewhere (another scheduler or host, or a one-off run):
                        // not a failure; recorded so `singer runs` shows the skipped time.
                        run::record_skipped(&home, &project, name, &m);
                        schedule::Tick::Busy(m)
                    }
                    Err(RunError::Config(m)) => {
                        tracing::error!(pipeline = name, "{m}");
                        schedule::Tick::Ran(false)
                    }
                }
            });
            schedule::run_loop(&l.project, runner, shutdown, exit_after).map_err(config_err)
        }
        Command::K8s(args) => crate::k8s::command(&path, &args).map_err(config_err),
        Command::Cron => {
            let l = load(&path)?;
            let exe = std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "singer".into());
            let file = std::fs::canonicalize(&l.path).unwrap_or(l.path.clone());
            let text = schedule::crontab(&l.project, &exe, &file.display().to_string())
                .map_err(config_err)?;
            println_stdout(text.trim_end());
            Ok(())
        }
        Command::Runs {
            pipeline,
            limit,
            json,
        } => {
            let l = load(&path)?;
            let mut runs = run::read_runs(&l.home);
            if let Some(p) = &pipeline {
                runs.retain(|r| &r.pipeline == p);
            }
            let runs = &runs[runs.len().saturating_sub(limit)..];
            for r in runs {
                if json {
                    println_stdout(&serde_json::to_string(r).unwrap_or_default());
                } else {
                    let records: u64 = r.streams.values().map(|s| s.records).sum();
                    println_stdout(&format!(
                        "{}  {:<16} {:<10} {:>10} records  {:>8}  state {}{}",
                        r.started_at,
                        r.pipeline,
                        r.outcome,
                        records,
                        r.duration_secs().map_or("-".into(), |d| format!("{d:.1}s")),
                        if r.state_advanced {
                            "advanced"
                        } else {
                            "unchanged"
                        },
                        r.error
                            .as_ref()
                            .or(r.note.as_ref())
                            .map_or(String::new(), |e| format!("  ({e})")),
                    ));
                }
            }
            Ok(())
        }
    }
}

fn eprintln_info(msg: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The end-of-run summary, on stderr (a table on a terminal, one JSON event otherwise).
fn summary(rec: &run::RunRecord) {
    let secs = rec.duration_secs().unwrap_or(0.0);
    if std::io::stderr().is_terminal() {
        let mut text = format!(
            "\n{} `{}` in {secs:.1}s (tap {}, target {}); state {}\n",
            rec.outcome,
            rec.pipeline,
            rec.tap_exit,
            rec.target_exit,
            if rec.state_advanced {
                "advanced"
            } else {
                "unchanged"
            }
        );
        for (s, c) in &rec.streams {
            let rate = if secs > 0.0 {
                c.records as f64 / secs
            } else {
                0.0
            };
            text.push_str(&format!(
                "  {s:<40} {:>12} records {:>12.0}/s {:>12} bytes\n",
                c.records, rate, c.bytes
            ));
        }
        if let Some(e) = &rec.error {
            text.push_str(&format!("error: {e}\n"));
        }
        for (role, lines) in [("tap", &rec.tap_stderr), ("target", &rec.target_stderr)] {
            if !lines.is_empty() {
                text.push_str(&format!("last lines of the {role}'s stderr:\n"));
                for l in lines {
                    text.push_str(&format!("  {l}\n"));
                }
            }
        }
        eprintln_info(text.trim_end());
    } else {
        // One JSON line, with the record as an object (not a string), for log collectors.
        let line = serde_json::json!({
            "timestamp": chrono::Utc::now().to_rfc3339(),
            "level": match rec.outcome.as_str() { "succeeded" => "INFO", "stopped" => "WARN", _ => "ERROR" },
            "message": "run finished",
            "run": rec,
        });
        eprintln_info(&line.to_string());
    }
}

fn check(file: Option<PathBuf>) -> CliResult {
    let result = match &file {
        Some(p) => {
            let f =
                std::fs::File::open(p).map_err(|e| config_err(format!("{}: {e}", p.display())))?;
            singer_core::check::check_stream(std::io::BufReader::new(f), true)
        }
        None => singer_core::check::check_stream(std::io::stdin().lock(), true),
    };
    match result {
        Ok(report) => {
            let summary = serde_json::json!({
                "valid": true, "messages": report.messages,
                "records": report.records, "final_state": report.final_state,
            });
            println_stdout(&summary.to_string());
            Ok(())
        }
        Err(v) => {
            let summary = serde_json::json!({
                "valid": false, "kind": v.kind, "line": v.line, "message": v.message,
            });
            println_stdout(&summary.to_string());
            Err((1, v.to_string()))
        }
    }
}

fn state(store: &Store, action: StateAction) -> CliResult {
    match action {
        StateAction::List => {
            for e in store.list().map_err(config_err)? {
                println_stdout(&format!("{}\t{}", e.id, e.updated_at.unwrap_or_default()));
            }
        }
        StateAction::Get { id } => match store.get(&id).map_err(config_err)? {
            Some(v) => println_stdout(&serde_json::to_string_pretty(&v).unwrap_or_default()),
            None => return Err((1, format!("no state stored for `{id}`"))),
        },
        StateAction::Set { id, file } => {
            let mut text = String::new();
            if file.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .map_err(config_err)?;
            } else {
                text = std::fs::read_to_string(&file)
                    .map_err(|e| config_err(format!("{}: {e}", file.display())))?;
            }
            let v: Value =
                serde_json::from_str(&text).map_err(|e| config_err(format!("not JSON: {e}")))?;
            if !v.is_object() {
                return Err(config_err("a state must be a JSON object"));
            }
            store.set(&id, &v, "singer state set").map_err(config_err)?;
        }
        StateAction::Clear { id } => {
            if !store.clear(&id, "singer state clear").map_err(config_err)? {
                return Err((1, format!("no state stored for `{id}`")));
            }
        }
        StateAction::History { id } => {
            for h in store.history(&id).map_err(config_err)? {
                println_stdout(&h.to_string());
            }
        }
    }
    Ok(())
}

fn spool_cmd(l: &Loaded, action: SpoolAction) -> CliResult {
    let dir_of = |name: &str| -> Result<(PathBuf, Option<String>), (u8, String)> {
        let p = l.project.pipeline(name).map_err(config_err)?;
        let root = p.spool.as_ref().and_then(|s| s.root.clone());
        let dir = l
            .home
            .join("spool")
            .join(crate::store::file_name(p.state_id(name)));
        Ok((dir, root))
    };
    match action {
        SpoolAction::List { pipeline } => {
            let (dir, root) = dir_of(&pipeline)?;
            for b in spool::list(&dir, root.as_deref()).map_err(|e| (1, e))? {
                println_stdout(&serde_json::to_string(&b).unwrap_or_default());
            }
            Ok(())
        }
        SpoolAction::Prune { pipeline } => {
            let (dir, root) = dir_of(&pipeline)?;
            spool::attach(&dir, root.as_deref()).map_err(|e| (1, e))?;
            spool::loaded_all(&dir);
            Ok(())
        }
        SpoolAction::Replay { pipeline } => {
            let store = Store::open(&l.project.state, &l.home).map_err(config_err)?;
            let env = Env {
                project: &l.project,
                project_dir: &l.dir,
                home: &l.home,
                store: &store,
                shutdown: Arc::new(AtomicBool::new(false)),
            };
            run::replay_pipeline(&env, &pipeline).map_err(|e| (1, e))
        }
    }
}

/// A flag set on SIGTERM or SIGINT: running pipelines stop their tap and let the target
/// commit what it received (see `run`). A second signal ends `singer` at once, with 128 + its
/// number, but not before every tap and target it started got SIGTERM and, if still running
/// [`process::FORCE_GRACE`] later, SIGKILL: they run in process groups of their own, and would
/// otherwise outlive it.
fn signal_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&flag);
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
                return;
            };
            loop {
                let (name, number) = tokio::select! {
                    _ = term.recv() => ("SIGTERM", 15),
                    _ = int.recv() => ("SIGINT", 2),
                };
                if f.swap(true, Ordering::SeqCst) {
                    tracing::warn!(signal = name, "stopping now: the taps and targets are stopped, then singer exits");
                    // The run keeps storing what targets confirm while they stop.
                    process::stop_all(process::FORCE_GRACE);
                    std::process::exit(128 + number);
                }
                tracing::warn!(signal = name, "stopping: the taps stop, the targets commit what they received and confirm it (signal again to stop everything now)");
            }
        });
    });
    flag
}
