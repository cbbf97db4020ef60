//! `cargo xtask test`: the whole suite, as CI runs it (`.ci/run` calls exactly this).
//!
//! Services and interop venvs first (tests that need them fail rather than skip), then
//! formatting, clippy, the tests, and small runs of the benchmark harnesses (MariaDB to
//! PostgreSQL end to end, and the PostgreSQL source),
//! stopping at the first failing step.

use crate::{Result, bench_e2e, bench_tap_pg, cargo, interop, services};

const PG_URL: &str = "postgresql://postgres@127.0.0.1:5432/test";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

struct Options<'a> {
    lint: bool,
    runner_args: &'a [String],
}

fn parse(args: &[String]) -> Result<Options<'_>> {
    let mut options = Options {
        lint: true,
        runner_args: &[],
    };
    for (i, arg) in args.iter().enumerate() {
        match arg.as_str() {
            "--no-lint" => options.lint = false,
            "--" => {
                options.runner_args = &args[i + 1..];
                break;
            }
            other => {
                return Err(format!(
                    "unknown option `{other}` for `cargo xtask test`; \
                     put test-runner arguments after `--`"
                ));
            }
        }
    }
    Ok(options)
}

pub(crate) fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    let ci = std::env::var("CI").is_ok_and(|value| value == "true" || value == "1");
    services::run()?;
    let interop_env = interop::run()?;
    // CI builds a fresh clone once: incremental state would only cost time and disk.
    let incremental_off = ci && std::env::var_os("CARGO_INCREMENTAL").is_none();
    let cargo = || {
        if incremental_off {
            cargo().env("CARGO_INCREMENTAL", "0")
        } else {
            cargo()
        }
    };
    if options.lint {
        step!("test: cargo fmt --all --check");
        cargo()
            .args(["fmt", "--all", "--check"])
            .run()
            .map_err(|e| format!("{e}\nhint: run `cargo fmt --all` to fix formatting"))?;
        step!("test: cargo clippy --workspace --all-targets");
        cargo()
            .args(["clippy", "--workspace", "--all-targets", "--locked"])
            .args(["--", "-D", "warnings"])
            .run()?;
    }
    let runner = if cargo().args(["nextest", "--version"]).succeeds() {
        let profile: &[&str] = if ci { &["--profile", "ci"] } else { &[] };
        cargo()
            .args([
                "nextest",
                "run",
                "--workspace",
                "--locked",
                "--no-fail-fast",
            ])
            .args(profile)
    } else {
        step!("test: cargo-nextest not found, using cargo test");
        cargo().args(["test", "--workspace", "--locked", "--no-fail-fast"])
    };
    step!("test: running the tests");
    runner
        .args(options.runner_args)
        .env("SINGER_PG_URL", PG_URL)
        .env("SINGER_MYSQL_URL", MYSQL_URL)
        .env("SINGER_INTEROP_ENV", &interop_env)
        .run()?;
    // The benchmark harness end to end on a small table with the debug binaries the tests
    // built: every stage, ours and the Python peers', each load checked against MariaDB.
    step!("test: cargo xtask bench e2e --rows 2000 --runs 1 --peers --debug");
    let smoke: Vec<String> = ["--rows", "2000", "--runs", "1", "--peers", "--debug"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    bench_e2e::run(&smoke)?;
    // The PostgreSQL source the same way: FULL_TABLE against psql COPY, CDC from a private
    // wal_level=logical server, and the Python taps' values compared with ours.
    step!("test: cargo xtask bench tap-postgres --rows 2000 --runs 1 --peers --debug");
    bench_tap_pg::run(&smoke)?;
    step!("test: all steps passed");
    Ok(())
}
