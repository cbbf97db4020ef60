//! Developer tasks for the workspace, run as `cargo xtask <command>`.
//!
//! The two commands a new contributor needs are `cargo xtask demo` and `cargo xtask test`: each
//! one first runs `services`, which installs (from Debian's packages) and starts what the
//! workspace needs, so a fresh Debian 12 machine needs no other setup. All logic lives here, in
//! Rust, not in shell scripts; `.ci/run` only calls `cargo xtask test`.
//!
//! Modules:
//! - [`process`]: running external commands with readable errors
//! - [`apt`]: Debian package checks and installs
//! - [`services`]: build prerequisites plus [`postgres`] and [`mariadb`]
//! - [`interop`]: Python virtualenvs with reference Singer connectors for interop tests
//! - [`test`], [`demo`] (with [`demo_pg`]), [`bench`]: the user-facing tasks
//! - [`pg_private`]: a private PostgreSQL instance for benchmarks that need `wal_level=logical`
//! - [`fresh_check`] (with [`fresh_root`]): the README's commands on a bare Debian root
//! - [`json`]: the little JSON this crate writes

// xtask is a developer tool whose job is to print reports (stdout) and progress (stderr).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;

/// Prints one progress line to stderr, prefixed with `xtask:`.
macro_rules! step {
    ($($arg:tt)*) => {
        eprintln!("xtask: {}", format_args!($($arg)*))
    };
}

mod apt;
mod bench;
mod bench_e2e;
mod bench_lake;
mod bench_mysql;
mod bench_peers;
mod bench_peers_pg;
mod bench_pg;
mod bench_pipeline;
mod bench_pipeline_py;
mod bench_tap_pg;
mod bench_tap_pg_cdc;
mod demo;
mod demo_pg;
mod fresh_check;
mod fresh_root;
mod interop;
mod json;
mod mariadb;
mod pg_private;
mod postgres;
mod process;
mod services;
mod test;

/// Errors are user-facing messages; each one says what failed and, where it can, what to do.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

const HELP: &str = "\
Usage: cargo xtask <COMMAND> [ARGS]

Commands:
  services   Install (apt) and start PostgreSQL and MariaDB, and check build prerequisites
  interop    Create the Python virtualenvs used by interop tests under target/interop/
  test       services + interop, then fmt, clippy and the whole test suite
               --no-lint     skip `cargo fmt --check` and clippy
               -- ARGS       passed to the test runner (e.g. a test filter)
  demo       services, then `singer run` a seeded MariaDB shop and a seeded PostgreSQL shop into
             PostgreSQL and show the result (run it again for an incremental run)
  bench      Run the singer-core reader benchmark; ARGS are passed to `cargo bench`
  bench target-postgres [--rows N]
             Load N mixed-type rows (default 1,000,000) with psql COPY (the raw limit) and
             with target-postgres; verify the data and report rows/s and peak memory
  bench tap-mysql [--rows N] [--runs K]
             Read N mixed-type rows from MariaDB with `mariadb --quick` (the raw limit) and
             with tap-mysql FULL_TABLE, K times each; report medians and peak memory
  bench pipeline [--rows N] [--runs K] [--python]
             `singer run` against the shell pipe tap-mysql | target-postgres on the same
             table; report rows/s and the orchestrator's own CPU and memory. --python:
             pipelinewise-tap-mysql | pipelinewise-target-postgres instead (default 200,000
             rows), the shell pipe against `singer run` with and without a buffer
  bench e2e [--rows N] [--runs K] [--peers] [--debug]
             Every stage of MariaDB -> PostgreSQL on the same data against the raw limit
             (mariadb | psql COPY), each load verified against the source; Markdown report.
             --peers also runs pipelinewise-tap-mysql, pipelinewise-target-postgres and
             meltanolabs-target-postgres (installed from PyPI into target/interop);
             --debug uses the debug binaries as last built (the test suite runs it so)
  bench tap-postgres [--rows N] [--runs K] [--peers] [--flat] [--debug]
             Read N mixed-type rows (default 1,000,000) from PostgreSQL FULL_TABLE with psql
             COPY (the raw limit) and with tap-postgres, K times each; then LOG_BASED: N
             updates read from a pgoutput slot on a private server (wal_level=logical).
             Reports medians, CPU and peak memory (Markdown report). --peers also runs
             pipelinewise-tap-postgres and meltanolabs-tap-postgres (PyPI, target/interop)
             on min(N, 100,000) rows and lists every value that differs from ours;
             --flat measures peak memory again at 5N rows; --debug as for bench e2e
  fresh-check [--skip-test] [--rebuild-root] [--again CMD]
             Run the README's commands on a bare Debian 12 root (debootstrap, cached under
             target/fresh-check/) in its own network, mount and PID namespaces, with only the
             host's Rust toolchain: proves the install path of `services` and `interop`.
             Reports each step's wall time in target/fresh-check/logs/report.md. Needs root.
             --skip-test runs all but `cargo xtask test`; --rebuild-root re-runs debootstrap;
             --again CMD runs CMD in the root the last run left, its clone moved to HEAD
             (to look into a failure or try a fix without building again; not a fresh check)
  help       Print this help
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "services" => no_args(command, rest).and_then(|()| services::run()),
        "interop" => no_args(command, rest).and_then(|()| interop::run().map(drop)),
        "test" => test::run(rest),
        "demo" => no_args(command, rest).and_then(|()| demo::run()),
        "fresh-check" => fresh_check::run(rest),
        "bench" => match rest.split_first() {
            Some((what, more)) if what == "target-postgres" => bench_pg::run(more),
            Some((what, more)) if what == "tap-mysql" => bench_mysql::run(more),
            Some((what, more)) if what == "pipeline" && more.iter().any(|a| a == "--python") => {
                bench_pipeline_py::run(more)
            }
            Some((what, more)) if what == "pipeline" => bench_pipeline::run(more),
            Some((what, more)) if what == "e2e" => bench_e2e::run(more),
            Some((what, more)) if what == "tap-postgres" => bench_tap_pg::run(more),
            _ => bench::run(rest),
        },
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => {
            eprintln!("error: unknown command `{other}`\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn no_args(command: &str, rest: &[String]) -> Result {
    match rest.first() {
        None => Ok(()),
        Some(arg) => Err(format!(
            "`cargo xtask {command}` takes no arguments, got `{arg}`"
        )),
    }
}

/// The workspace root: the parent of this crate's directory.
pub(crate) fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or(manifest_dir.clone(), PathBuf::from)
}

/// Cargo's target directory: `CARGO_TARGET_DIR` when set, else `<repo>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("target"),
    }
}

/// The cargo that runs this task (set by `cargo run`), so nested builds use the same toolchain.
pub(crate) fn cargo() -> process::Cmd {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    process::Cmd::new(program).current_dir(repo_root())
}
