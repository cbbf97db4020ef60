//! `cargo xtask bench tap-mysql [--rows N] [--runs K]`: tap-mysql FULL_TABLE against the
//! MariaDB client's own limit.
//!
//! Seeds `bench_tap.mixed` on the local MariaDB (N rows, default 1,000,000, of the mixed shape
//! the target-postgres benchmark uses: unsigned auto-increment key, int, enum, decimal(12,2),
//! smallint, double, tinyint(1), unicode varchar with quotes, tabs, newlines and backslashes
//! (10% NULL), a nested JSON object, datetime(6), timestamp, nullable date). Then, K times each
//! (default 3), it times:
//! 1. the raw limit: `mariadb --quick --batch -e "SELECT …" > /dev/null`;
//! 2. `tap-mysql` (release) FULL_TABLE of the same table to /dev/null;
//!
//! and prints the medians (wall time, rows per second, ratio, peak RSS) as a Markdown table.
//! A last tap run is read back to check that every row arrived exactly once.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use crate::process::Cmd;
use crate::{Result, services, target_dir};

const COLUMNS: &str =
    "id, qty, status, price, small, ratio, active, note, doc, created, updated, day";

pub(crate) fn run(args: &[String]) -> Result {
    let rows = crate::bench::flag_u64(args, "--rows", 1_000_000)?;
    let runs = crate::bench::flag_u64(args, "--runs", 3)?.max(1);
    services::run()?;
    crate::bench::ensure_gnu_time()?;
    let (dir, _) = crate::bench::prepare("", &["tap-mysql"])?;
    seed(rows)?;
    let (config, catalog) = tap_files(&dir)?;
    let tap = target_dir().join("release/tap-mysql");
    let select = format!("SELECT {COLUMNS} FROM bench_tap.mixed");

    let mut raw = Vec::new();
    let mut ours = Vec::new();
    for i in 1..=runs {
        step!("bench: run {i}/{runs}: mariadb --quick --batch");
        let client = [
            "mariadb",
            "-uroot",
            "-h127.0.0.1",
            "--quick",
            "--batch",
            "-e",
            &select,
        ];
        raw.push(timed(&client.map(String::from))?);
        step!("bench: run {i}/{runs}: tap-mysql FULL_TABLE");
        let path = |p: &Path| p.display().to_string();
        ours.push(timed(&[
            path(&tap),
            "--config".into(),
            path(&config),
            "--catalog".into(),
            path(&catalog),
        ])?);
    }
    verify(&tap, &config, &catalog, rows)?;
    let (raw_s, raw_kb) = median(&raw);
    let (tap_s, tap_kb) = median(&ours);
    let rate = |secs: f64| rows as f64 / secs;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "| read of {rows} rows (median of {runs}) | seconds | rows/s | vs raw | peak RSS |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        report,
        "| raw limit: mariadb --quick --batch > /dev/null | {raw_s:.2} | {:.0} | 100% | {:.1} MB |",
        rate(raw_s),
        raw_kb as f64 / 1024.0
    );
    let _ = writeln!(
        report,
        "| tap-mysql FULL_TABLE > /dev/null | {tap_s:.2} | {:.0} | {:.0}% | {:.1} MB |",
        rate(tap_s),
        100.0 * raw_s / tap_s,
        tap_kb as f64 / 1024.0
    );
    let path = dir.join("tap-mysql.md");
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("\n{report}");
    step!("bench: report written to {}", path.display());
    Ok(())
}

/// Creates the table unless it already holds exactly `rows` rows.
pub(crate) fn seed(rows: u64) -> Result {
    let count = Cmd::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-N", "-B", "-e"])
        .arg("SELECT COUNT(*) FROM bench_tap.mixed")
        .output()
        .unwrap_or_default();
    if count == rows.to_string() {
        step!("bench: bench_tap.mixed already holds {rows} rows");
        return Ok(());
    }
    step!("bench: seeding bench_tap.mixed with {rows} rows");
    let sql = format!(
        "SET NAMES utf8mb4; SET time_zone = '+00:00';
DROP DATABASE IF EXISTS bench_tap; CREATE DATABASE bench_tap CHARACTER SET utf8mb4;
CREATE TABLE bench_tap.mixed (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, qty INT NOT NULL,
  status ENUM('new','paid','shipped','cancelled') NOT NULL, price DECIMAL(12,2) NOT NULL,
  small SMALLINT NOT NULL, ratio DOUBLE NOT NULL, active TINYINT(1) NOT NULL,
  note VARCHAR(255) NULL, doc JSON NOT NULL, created DATETIME(6) NOT NULL,
  updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, day DATE NULL);
INSERT INTO bench_tap.mixed (qty, status, price, small, ratio, active, note, doc, created, updated, day)
SELECT CAST(seq * 7 % 100000 AS SIGNED) - 50000, ELT(1 + seq % 4, 'new','paid','shipped','cancelled'),
  (seq * 37 % 10000000) / 100, CAST(seq % 65535 AS SIGNED) - 32767, seq / 7.0, seq % 2,
  IF(seq % 10 = 0, NULL, CONCAT('note ', seq, ' ünï 😀 \"q\" \\t tab \\\\ back\\nline ', REPEAT('x', seq % 200))),
  JSON_OBJECT('k', seq, 'tags', JSON_ARRAY('a', seq % 3), 'nested', JSON_OBJECT('z', 1.5)),
  TIMESTAMP('2020-01-01 00:00:00') + INTERVAL seq SECOND + INTERVAL (seq % 1000000) MICROSECOND,
  TIMESTAMP('2021-01-01 00:00:00') + INTERVAL seq SECOND,
  IF(seq % 5 = 0, NULL, DATE('2000-01-01') + INTERVAL (seq % 9000) DAY)
FROM bench_tap.seq_1_to_{rows};"
    );
    Cmd::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-e"])
        .arg(sql)
        .run()
}

pub(crate) fn tap_files(dir: &Path) -> Result<(std::path::PathBuf, std::path::PathBuf)> {
    let config = dir.join("tap-mysql.json");
    let catalog = dir.join("tap-mysql-catalog.json");
    let write =
        |p: &Path, text: &str| std::fs::write(p, text).map_err(|e| format!("{}: {e}", p.display()));
    write(
        &config,
        r#"{"host":"127.0.0.1","port":3306,"user":"root","filter_dbs":"bench_tap"}"#,
    )?;
    // A hand-written catalog: no properties listed means every column.
    write(
        &catalog,
        r#"{"streams":[{"tap_stream_id":"bench_tap-mixed","stream":"mixed","table_name":"mixed",
  "schema":{"type":"object","properties":{}},
  "metadata":[{"breadcrumb":[],"metadata":{"selected":true,"replication-method":"FULL_TABLE","database-name":"bench_tap"}}]}]}"#,
    )?;
    Ok((config, catalog))
}

/// Runs `argv` with stdout to /dev/null under GNU time; returns (seconds, peak RSS in KB).
pub(crate) fn timed(argv: &[String]) -> Result<(f64, u64)> {
    timed_cpu(argv).map(|t| (t.secs, t.rss_kb))
}

/// One run measured by [`timed_cpu`].
pub(crate) struct Timing {
    pub(crate) secs: f64,
    pub(crate) rss_kb: u64,
    /// User plus system CPU time of the command and the children it waited for.
    pub(crate) cpu_secs: f64,
}

/// [`timed`], with the CPU time the command used.
pub(crate) fn timed_cpu(argv: &[String]) -> Result<Timing> {
    let log = target_dir().join("bench/time.log");
    let started = Instant::now();
    let (mut child, shown) = Cmd::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M\ncpu_s=%U %S", "-o"])
        .arg(&log)
        .args(argv)
        .env("RUST_LOG", "warn")
        .spawn(Stdio::null(), Stdio::null(), Stdio::inherit())?;
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("`{shown}` failed ({status})"));
    }
    let secs = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let cpu_secs = text
        .lines()
        .find_map(|l| l.strip_prefix("cpu_s="))
        .map_or(0.0, |v| {
            v.split_whitespace()
                .filter_map(|x| x.parse::<f64>().ok())
                .sum()
        });
    Ok(Timing {
        secs,
        rss_kb: max_rss_kb(&log),
        cpu_secs,
    })
}

/// The peak RSS that `/usr/bin/time -f maxrss_kb=%M -o LOG` wrote to `log` (0 if absent).
pub(crate) fn max_rss_kb(log: &Path) -> u64 {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn median(samples: &[(f64, u64)]) -> (f64, u64) {
    let mut s: Vec<f64> = samples.iter().map(|x| x.0).collect();
    s.sort_by(f64::total_cmp);
    let mut m: Vec<u64> = samples.iter().map(|x| x.1).collect();
    m.sort_unstable();
    (s[s.len() / 2], m[m.len() / 2])
}

/// Reads one more tap run and checks every id from 1 to `rows` arrives exactly once, in order.
fn verify(tap: &Path, config: &Path, catalog: &Path, rows: u64) -> Result {
    let (mut child, shown) = Cmd::new(tap)
        .arg("--config")
        .arg(config)
        .arg("--catalog")
        .arg(catalog)
        .env("RUST_LOG", "warn")
        .spawn(Stdio::null(), Stdio::piped(), Stdio::inherit())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut next = 1u64;
    for line in BufReader::new(out).lines() {
        let line = line.map_err(|e| e.to_string())?;
        let Some(rest) =
            line.strip_prefix(r#"{"type":"RECORD","stream":"bench_tap-mixed","record":{"id":"#)
        else {
            continue;
        };
        let id: u64 = rest
            .split(',')
            .next()
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("unexpected record line: {line}"))?;
        if id != next {
            return Err(format!("expected id {next}, got {id}"));
        }
        next += 1;
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() || next != rows + 1 {
        return Err(format!(
            "`{shown}` delivered {} of {rows} rows ({status})",
            next - 1
        ));
    }
    step!("bench: verified: ids 1..={rows} arrived once each, in key order");
    Ok(())
}
