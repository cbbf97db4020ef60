//! LOG_BASED part of `cargo xtask bench tap-postgres`: change data capture from a `pgoutput`
//! slot, on a private server with `wal_level = logical` (see `pg_private`).
//!
//! 1. `public.mixed` with N rows in database `bench_cdc`;
//! 2. a first tap run (the slot's exported snapshot, timed) gives the state;
//! 3. `UPDATE … SET qty = qty + 1` of every row, 100,000 rows per transaction;
//! 4. K rounds of: the raw limit, `pg_recvlogical` (pgoutput) to /dev/null on a copy of the
//!    tap's slot (`pg_copy_logical_replication_slot`), up to the WAL position after the
//!    updates; then a timed tap run from that state to /dev/null, which reads the N changes
//!    again each time, as the tap confirms to the slot only the position of the state it
//!    started from;
//! 5. one more run from the state must deliver ids 1..=N in exactly N RECORDs.
//!
//! Beside the tap's own CPU time it reports the server's (the backends and walsender of each
//! run, which nothing else uses on this server) and how much of the decoded changes the server
//! spilled to disk.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::time::Instant;

use crate::Result;
use crate::bench_e2e::sh_pipefail;
use crate::bench_mysql::timed_cpu;
use crate::bench_tap_pg::{CDC_GOAL_ROWS_PER_S, Runs, Source, check_records, check_run, write};
use crate::pg_private::PrivatePg;

const DB: &str = "bench_cdc";
const UPDATE_BATCH: u64 = 100_000;
/// The copy of the tap's slot that the raw limit reads.
const RAW_SLOT: &str = "bench_raw_copy";

/// Settings of the private server: logical decoding, and no durability (a benchmark).
const SETTINGS: &[(&str, &str)] = &[
    ("wal_level", "logical"),
    ("max_wal_senders", "10"),
    ("max_replication_slots", "10"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
    ("max_wal_size", "4GB"),
    ("checkpoint_timeout", "30min"),
    ("shared_buffers", "256MB"),
    ("timezone", "UTC"),
];

/// Runs the CDC measurement; returns its section of the report.
pub(crate) fn run(dir: &Path, tap: &Path, rows: u64, runs: u64) -> Result<String> {
    let mut server = PrivatePg::start(SETTINGS)?;
    let source = Source::new(server.port, DB);
    source.seed(rows)?;
    let argv = source.tap_argv(tap, dir, "cdc", "LOG_BASED")?;

    step!("bench: LOG_BASED first run (snapshot) of {rows} rows");
    let snapshot_out = dir.join("cdc-snapshot.jsonl");
    let shell = |argv: &[String], out: &Path| {
        sh_pipefail(&format!("exec {} > {}", argv.join(" "), out.display()))
    };
    let cpu_before = server.exited_sessions_cpu_secs()?;
    let snapshot = timed_cpu(&shell(&argv, &snapshot_out))?;
    let snapshot_server_cpu = server.exited_sessions_cpu_secs()? - cpu_before;
    let file = std::fs::File::open(&snapshot_out).map_err(|e| e.to_string())?;
    check_records(BufReader::new(file), rows).map_err(|e| format!("LOG_BASED snapshot: {e}"))?;
    let state = dir.join("cdc-state.json");
    write(&state, &last_state(&snapshot_out)?)?;

    let lsn = |sql: &str| source.psql().arg("-c").arg(sql).output();
    let before = lsn("SELECT pg_current_wal_lsn()")?;
    let slot = format!("singer_{DB}");
    step!("bench: updating {rows} rows, {UPDATE_BATCH} per transaction");
    let started = Instant::now();
    let mut update = source.psql();
    let mut low = 0;
    while low < rows {
        update = update.arg("-c").arg(format!(
            "UPDATE public.mixed SET qty = qty + 1 WHERE id > {low} AND id <= {}",
            low + UPDATE_BATCH
        ));
        low += UPDATE_BATCH;
    }
    update.run()?;
    let update_secs = started.elapsed().as_secs_f64();
    let end = lsn("SELECT pg_current_wal_lsn()")?;
    let wal_mb: f64 = lsn(&format!(
        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '{before}') / 1048576.0"
    ))?
    .parse()
    .map_err(|e| format!("WAL size: {e}"))?;

    let mut with_state = argv.clone();
    with_state.extend(["--state".into(), state.display().to_string()]);
    let mut raw = Runs::default();
    let mut raw_server_cpu = Vec::new();
    let mut changes = Runs::default();
    let mut server_cpu = Vec::new();
    source
        .psql()
        .args(["-c", "SELECT pg_stat_reset_replication_slot(NULL)"])
        .output()?;
    for i in 1..=runs {
        step!("bench: LOG_BASED run {i}/{runs}: pg_recvlogical, then tap-postgres from the state");
        // The raw limit reads a copy of the slot, which it may consume: ours stays in place.
        source
            .psql()
            .arg("-c")
            .arg(format!(
                "SELECT pg_copy_logical_replication_slot('{slot}', '{RAW_SLOT}')"
            ))
            .output()?;
        let before = server.exited_sessions_cpu_secs()?;
        raw.push(timed_cpu(&recvlogical(server.port, &slot, &end))?);
        raw_server_cpu.push(server.exited_sessions_cpu_secs()? - before);
        source
            .psql()
            .arg("-c")
            .arg(format!("SELECT pg_drop_replication_slot('{RAW_SLOT}')"))
            .output()?;
        let before = server.exited_sessions_cpu_secs()?;
        changes.push(timed_cpu(&with_state)?);
        server_cpu.push(server.exited_sessions_cpu_secs()? - before);
    }
    check_run(&with_state, rows, "LOG_BASED changes")?;
    // Waits for the run's walsender to exit: it reports its slot's statistics as it does.
    server.exited_sessions_cpu_secs()?;
    // Decoded transactions larger than logical_decoding_work_mem are spilled to disk.
    let spill = source
        .psql()
        .arg("-c")
        .arg(format!(
            "SELECT round(coalesce(sum(spill_bytes), 0) / 1048576.0 / {}), \
             current_setting('logical_decoding_work_mem') FROM pg_stat_replication_slots",
            runs + 1
        ))
        .output()?;
    let (spill_mb, work_mem) = spill.split_once('|').unwrap_or((&spill, "?"));
    drop(server);

    let rate = rows as f64 / changes.secs();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## LOG_BASED (pgoutput), private server with wal_level = logical\n\n| {rows} rows | seconds | rows/s | client CPU s | server CPU s | peak RSS |\n|---|---|---|---|---|---|"
    );
    let _ = writeln!(
        out,
        "| raw limit: pg_recvlogical (pgoutput, binary) > /dev/null, median of {runs} | {:.2} | {:.0} | {:.2} | {:.2} | |",
        raw.secs(),
        rows as f64 / raw.secs(),
        raw.cpu(),
        crate::bench::median(&raw_server_cpu),
    );
    let _ = writeln!(
        out,
        "| tap-postgres, first run: snapshot exported by the new slot (to a file) | {:.2} | {:.0} | {:.2} | {snapshot_server_cpu:.2} | {:.1} MB |",
        snapshot.secs,
        rows as f64 / snapshot.secs,
        snapshot.cpu_secs,
        snapshot.rss_kb as f64 / 1024.0
    );
    let _ = writeln!(
        out,
        "| tap-postgres, second run: {rows} updates from the state > /dev/null, median of {runs} | {:.2} | {rate:.0} | {:.2} | {:.2} | {:.1} MB |",
        changes.secs(),
        changes.cpu(),
        crate::bench::median(&server_cpu),
        changes.rss_mb()
    );
    let _ = writeln!(
        out,
        "\nThe updates (`SET qty = qty + 1`, {UPDATE_BATCH} rows per transaction) took {update_secs:.1} s and wrote {wal_mb:.0} MB of WAL; decoding them, the server spilled {spill_mb} MB per run to disk (logical_decoding_work_mem = {work_mem}). Server CPU is that of the sessions (backends, walsender) the run opened. Goal ≥ {CDC_GOAL_ROWS_PER_S:.0} rows/s: {} ({rate:.0}). Checked: the snapshot and a further run from the state each delivered ids 1..={rows} in exactly {rows} RECORDs.\n",
        if rate >= CDC_GOAL_ROWS_PER_S {
            "met"
        } else {
            "**missed**"
        }
    );
    Ok(out)
}

/// `pg_recvlogical` streaming `slot` with pgoutput up to `end`, output discarded: what any
/// client of this server's walsender gets at best.
fn recvlogical(port: u16, slot: &str, end: &str) -> Vec<String> {
    // Every part is a single word: names, a port and an LSN.
    format!(
        "pg_recvlogical -h 127.0.0.1 -p {port} -U postgres -d {DB} --slot {RAW_SLOT} --start \
         --no-loop --endpos {end} -o proto_version=1 -o publication_names={slot} -f /dev/null"
    )
    .split_whitespace()
    .map(String::from)
    .collect()
}

/// The value of the last STATE message in a file of Singer messages.
fn last_state(path: &Path) -> Result<String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut last = None;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if let Some(value) = line
            .strip_prefix(r#"{"type":"STATE","value":"#)
            .and_then(|v| v.strip_suffix('}'))
        {
            last = Some(value.to_string());
        }
    }
    last.ok_or_else(|| format!("no STATE message in {}", path.display()))
}
