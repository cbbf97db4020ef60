//! `cargo xtask bench [ARGS]`: the singer-core line-reader benchmark; ARGS go to `cargo bench`
//! unchanged (e.g. `cargo xtask bench -- --save-baseline main`).

use std::path::{Path, PathBuf};

use crate::apt::Apt;
use crate::process::Cmd;
use crate::{Result, cargo, target_dir};

pub(crate) fn run(args: &[String]) -> Result {
    step!("bench: cargo bench -p singer-core --bench reader");
    cargo()
        .args(["bench", "-p", "singer-core", "--bench", "reader"])
        .args(args)
        .run()
}

/// The number after `--name` in `args`, or `default`.
pub(crate) fn flag_u64(args: &[String], name: &str, default: u64) -> Result<u64> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} takes a number")),
        None => Ok(default),
    }
}

/// The middle value (the upper middle of an even count).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(f64::NAN)
}

/// How psql reaches the test database, stopping at the first error.
pub(crate) const PSQL_CONNECTION: [&str; 8] = [
    "-h",
    "127.0.0.1",
    "-U",
    "postgres",
    "-d",
    "test",
    "-v",
    "ON_ERROR_STOP=1",
];

/// psql on the test database: quiet, unaligned, tuples only.
pub(crate) fn psql() -> Cmd {
    Cmd::new("psql").args(PSQL_CONNECTION).arg("-qAt")
}

/// psql as `postgres` on database `db` of the server on 127.0.0.1:`port`: no `~/.psqlrc`,
/// quiet, unaligned, tuples only, stopping at the first error.
pub(crate) fn psql_at(port: u16, db: &str) -> Cmd {
    Cmd::new("psql")
        .args([
            "-X",
            "-qAt",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--dbname={db}"))
        .env("PGOPTIONS", "-c client_min_messages=warning")
}

/// Installs GNU time (`/usr/bin/time`), which measures peak memory, if it is missing.
pub(crate) fn ensure_gnu_time() -> Result {
    if Apt::is_installed("time") {
        return Ok(());
    }
    Apt::new().install(&["time"], "GNU time measures peak memory")
}

/// Builds `bins` (release) and creates `target/bench/<subdir>`; returns that directory and
/// the directory of the binaries.
pub(crate) fn prepare(subdir: &str, bins: &[&str]) -> Result<(PathBuf, PathBuf)> {
    prepare_profile(subdir, bins, true)
}

/// [`prepare`], or, when `release` is false, with the debug binaries as the last build left
/// them: the test suite checks the harness that way, with the binaries its tests just built
/// (building them here would pick other dependency features and rebuild half the tree).
pub(crate) fn prepare_profile(
    subdir: &str,
    bins: &[&str],
    release: bool,
) -> Result<(PathBuf, PathBuf)> {
    let profile = if release { "release" } else { "debug" };
    if release {
        step!("bench: building {} (release)", bins.join(", "));
        let mut build = cargo().args(["build", "--release"]);
        for b in bins {
            build = build.args(["--bin", b]);
        }
        build.run()?;
    }
    for b in bins {
        let path = target_dir().join(profile).join(b);
        if !path.is_file() {
            return Err(format!(
                "{} is missing\nhint: `cargo build --bin {b}` builds it",
                path.display()
            ));
        }
    }
    let dir = target_dir().join("bench").join(subdir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok((dir, target_dir().join(profile)))
}

/// A `singer.toml` with one pipeline, `name`: tap-mysql on database `bench_tap` with the fixed
/// `catalog`, into target-postgres schema `schema` of database `test`.
pub(crate) fn mysql_to_postgres_project(
    bin: &Path,
    catalog: &Path,
    schema: &str,
    name: &str,
) -> String {
    format!(
        r#"[taps.mysql]
executable = "{tap}"
catalog = "{cat}"
[taps.mysql.config]
host = "127.0.0.1"
port = 3306
user = "root"
filter_dbs = "bench_tap"
[taps.mysql.env]
RUST_LOG = "warn"
[targets.pg]
executable = "{target}"
[targets.pg.config]
host = "127.0.0.1"
user = "postgres"
database = "test"
default_target_schema = "{schema}"
[targets.pg.env]
RUST_LOG = "warn"
[pipelines.{name}]
tap = "mysql"
target = "pg"
"#,
        tap = bin.join("tap-mysql").display(),
        cat = catalog.display(),
        target = bin.join("target-postgres").display(),
    )
}
