//! `cargo xtask bench pipeline [--rows N] [--runs K]`: `singer run` against the best shell pipe of the same
//! tap and target (`tap-mysql | target-postgres`), on the table `bench tap-mysql` seeds.
//!
//! Reports wall time and rows per second of both, and, from the run record, the orchestrator's
//! own CPU time next to the tap's and target's, and its peak memory.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Instant;

use crate::bench::{median, psql};
use crate::process::Cmd;
use crate::{Result, bench_mysql, services};

const SCHEMA: &str = "bench_pipe";

pub(crate) fn run(args: &[String]) -> Result {
    let rows = crate::bench::flag_u64(args, "--rows", 1_000_000)?;
    let runs = crate::bench::flag_u64(args, "--runs", 3)?.max(1);
    services::run()?;
    let (dir, bin) =
        crate::bench::prepare("pipeline", &["singer", "tap-mysql", "target-postgres"])?;
    bench_mysql::seed(rows)?;
    let (tap_cfg, catalog) = bench_mysql::tap_files(&dir)?;
    let target_cfg = dir.join("target-postgres.json");
    std::fs::write(
        &target_cfg,
        format!(r#"{{"host":"127.0.0.1","user":"postgres","database":"test","default_target_schema":"{SCHEMA}"}}"#),
    )
    .map_err(|e| e.to_string())?;

    let project = dir.join("singer.toml");
    write_project(&project, &bin, &catalog)?;
    let mut pipe = Vec::new();
    let mut ours = Vec::new();
    let mut usage = Vec::new();
    for i in 1..=runs {
        // Alternate which goes first, so neither always meets a warmer server.
        let order = if i % 2 == 1 {
            [true, false]
        } else {
            [false, true]
        };
        for shell in order {
            drop_schema()?;
            if shell {
                step!("bench: run {i}/{runs}: tap-mysql | target-postgres (shell pipe)");
                pipe.push(shell_pipe(&bin, &tap_cfg, &catalog, &target_cfg)?);
            } else {
                step!("bench: run {i}/{runs}: singer run bench");
                let (secs, own, children, rss) = singer_run(&bin, &project)?;
                ours.push(secs);
                usage.push((own, children, rss));
            }
            verify(rows)?;
        }
    }
    let pipe_secs = median(&pipe);
    let singer_secs = median(&ours);
    let share: Vec<f64> = usage
        .iter()
        .map(|(o, c, _)| 100.0 * o / c.max(0.001))
        .collect();
    let own_share = median(&share);
    let rss_mb = usage.iter().map(|u| u.2).fold(0.0, f64::max) / 1024.0;
    let rate = |secs: f64| rows as f64 / secs;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "| {rows} rows, MariaDB → PostgreSQL (median of {runs}) | seconds | rows/s | vs pipe |\n|---|---|---|---|"
    );
    let _ = writeln!(
        report,
        "| shell pipe: tap-mysql \\| target-postgres | {pipe_secs:.2} | {:.0} | 100% |",
        rate(pipe_secs)
    );
    let _ = writeln!(
        report,
        "| singer run (zero-copy, 1 MiB pipes) | {singer_secs:.2} | {:.0} | {:.0}% |",
        rate(singer_secs),
        100.0 * pipe_secs / singer_secs
    );
    // Runs i of both were back to back: their difference cancels most of the drift in load.
    let diffs: Vec<f64> = ours.iter().zip(&pipe).map(|(o, p)| o - p).collect();
    let faster = diffs.iter().filter(|d| **d < 0.0).count();
    let _ = writeln!(
        report,
        "\npaired: singer run minus the pipe it ran beside, median {:+.2} s; singer run was faster in {faster} of {runs} pairs",
        median(&diffs)
    );
    let _ = writeln!(
        report,
        "\norchestrator: CPU {own_share:.1}% of the tap's and target's (median), peak RSS {rss_mb:.1} MB; runs: pipe {pipe:.2?} s, singer {ours:.2?} s"
    );
    let path = dir.join("report.md");
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("\n{report}");
    step!("bench: report written to {}", path.display());
    Ok(())
}

fn shell_pipe(
    bin: &std::path::Path,
    tap_cfg: &std::path::Path,
    catalog: &std::path::Path,
    target_cfg: &std::path::Path,
) -> Result<f64> {
    let pipe = format!(
        "{tap} --config {tc} --catalog {cat} | {target} --config {gc} > /dev/null",
        tap = bin.join("tap-mysql").display(),
        tc = tap_cfg.display(),
        cat = catalog.display(),
        target = bin.join("target-postgres").display(),
        gc = target_cfg.display(),
    );
    let started = Instant::now();
    let (mut child, shown) = Cmd::new("sh")
        .args(["-c", &pipe])
        .env("RUST_LOG", "warn")
        .spawn(Stdio::null(), Stdio::null(), Stdio::null())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("`{shown}` failed ({status})"));
    }
    Ok(started.elapsed().as_secs_f64())
}

/// Runs the pipeline; returns (seconds, orchestrator CPU s, tap+target CPU s, peak RSS KiB).
fn singer_run(bin: &std::path::Path, project: &std::path::Path) -> Result<(f64, f64, f64, f64)> {
    let started = Instant::now();
    let (mut child, shown) = Cmd::new(bin.join("singer"))
        .arg("--project")
        .arg(project)
        .args(["run", "bench"])
        .env("RUST_LOG", "warn")
        .spawn(Stdio::null(), Stdio::null(), Stdio::null())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("`{shown}` failed ({status})"));
    }
    let secs = started.elapsed().as_secs_f64();
    let record = Cmd::new(bin.join("singer"))
        .arg("--project")
        .arg(project)
        .args(["runs", "--json", "--limit", "1"])
        .output()?;
    let field = |name: &str| -> f64 {
        record
            .split(&format!("\"{name}\":"))
            .nth(1)
            .and_then(|r| r.split([',', '}']).next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    Ok((
        secs,
        field("orchestrator_cpu_secs"),
        field("children_cpu_secs"),
        field("orchestrator_max_rss_kb"),
    ))
}

fn write_project(
    project: &std::path::Path,
    bin: &std::path::Path,
    catalog: &std::path::Path,
) -> Result {
    let _ = std::fs::remove_dir_all(project.with_file_name(".singer"));
    std::fs::write(
        project,
        crate::bench::mysql_to_postgres_project(bin, catalog, SCHEMA, "bench"),
    )
    .map_err(|e| e.to_string())
}

fn drop_schema() -> Result {
    psql()
        .arg("-c")
        .arg(format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        .run()
}

fn verify(rows: u64) -> Result {
    let n = psql()
        .arg("-c")
        .arg(format!("SELECT count(*) FROM {SCHEMA}.mixed"))
        .output()?;
    if n != rows.to_string() {
        return Err(format!("{SCHEMA}.mixed holds {n} rows, expected {rows}"));
    }
    step!("bench: verified: {rows} rows landed");
    Ok(())
}
