//! `cargo xtask bench tap-postgres [--rows N] [--runs K] [--peers] [--flat] [--debug]`:
//! tap-postgres against the PostgreSQL client's own limit, FULL_TABLE and LOG_BASED.
//!
//! Creates a fresh database `bench_tap_pg` on the shared server with `public.mixed`: N rows
//! (default 1,000,000) generated in SQL, of a realistic mix of types (bigint key, int,
//! numeric(12,2), double, unicode text with quotes, tabs, newlines and backslashes (10% NULL),
//! varchar, timestamptz with microseconds, date (20% NULL), boolean, jsonb, uuid, bytea (25%
//! NULL), int[] and interval). Then:
//! 1. FULL_TABLE to /dev/null, K times each (default 3, medians reported): the raw limit `psql
//!    -c "COPY (SELECT …) TO STDOUT"`, the same COPY ordered by the key as the tap reads it,
//!    and `tap-postgres`; one more tap run is read back to check that every key arrives once;
//! 2. with `--peers`, pipelinewise-tap-postgres and meltanolabs-tap-postgres on the same table
//!    (at most 100,000 rows), their values compared with ours (see `bench_peers_pg`);
//! 3. LOG_BASED on a private server with `wal_level = logical` (see `bench_tap_pg_cdc`);
//! 4. with `--flat`, the tap's peak memory again at 5N rows.
//!
//! The Markdown report goes to `target/bench/tap-postgres/report.md`. `--debug` uses the debug
//! binaries as last built, like `bench e2e --debug`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;

use crate::bench::{flag_u64, median, psql_at};
use crate::bench_mysql::{Timing, timed_cpu};
use crate::process::Cmd;
use crate::{Result, services};

/// Every column of the table, in order: what the raw limit selects and the tap reads.
pub(crate) const COLUMNS: &str =
    "id, qty, price, ratio, note, label, created, day, active, doc, uid, blob, tags, wait";
/// The stream of `public.mixed`.
pub(crate) const STREAM: &str = "public-mixed";
/// The database of the FULL_TABLE runs on the shared server.
const DB: &str = "bench_tap_pg";
/// The peers' smaller table, when N is larger than they can read in reasonable time.
const PEER_DB: &str = "bench_tap_pg_peers";
const PEER_MAX_ROWS: u64 = 100_000;
/// Issue goals.
const RSS_GOAL_MB: f64 = 50.0;
pub(crate) const CDC_GOAL_ROWS_PER_S: f64 = 100_000.0;

/// A database holding `public.mixed`: its server's port on 127.0.0.1 and its name.
pub(crate) struct Source {
    pub(crate) port: u16,
    pub(crate) db: String,
}

impl Source {
    pub(crate) fn new(port: u16, db: &str) -> Self {
        Self {
            port,
            db: db.to_string(),
        }
    }

    pub(crate) fn psql(&self) -> Cmd {
        psql_at(self.port, &self.db)
    }

    /// Drops and creates the database, then `public.mixed` with `rows` rows.
    pub(crate) fn seed(&self, rows: u64) -> Result {
        step!("bench: creating database {} with {rows} rows", self.db);
        psql_at(self.port, "postgres")
            .arg("-c")
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
            .arg("-c")
            .arg(format!("CREATE DATABASE {}", self.db))
            .run()?;
        // Separate commands: VACUUM cannot run in the transaction of the others.
        self.psql()
            .arg("-c")
            .arg(seed_sql(rows))
            .args(["-c", "VACUUM (FREEZE, ANALYZE) public.mixed"])
            .run()
    }

    /// Drops the database.
    pub(crate) fn drop_database(&self) -> Result {
        psql_at(self.port, "postgres")
            .arg("-c")
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db))
            .run()
    }

    /// Writes tap-postgres's config and a catalog selecting `public.mixed` with `method`
    /// (`<name>.json`, `<name>-catalog.json` in `dir`); returns the argv of a run.
    pub(crate) fn tap_argv(
        &self,
        tap: &Path,
        dir: &Path,
        name: &str,
        method: &str,
    ) -> Result<Vec<String>> {
        let config = dir.join(format!("{name}.json"));
        let catalog = dir.join(format!("{name}-catalog.json"));
        write(
            &config,
            &format!(
                r#"{{"host":"127.0.0.1","port":{},"user":"postgres","dbname":"{}","filter_schemas":"public"}}"#,
                self.port, self.db
            ),
        )?;
        // A hand-written catalog: no properties listed means every column.
        write(
            &catalog,
            &format!(
                r#"{{"streams":[{{"tap_stream_id":"{STREAM}","stream":"mixed","table_name":"mixed",
  "schema":{{"type":"object","properties":{{}}}},
  "metadata":[{{"breadcrumb":[],"metadata":{{"selected":true,"replication-method":"{method}","schema-name":"public"}}}}]}}]}}"#
            ),
        )?;
        Ok(vec![
            tap.display().to_string(),
            "--config".into(),
            config.display().to_string(),
            "--catalog".into(),
            catalog.display().to_string(),
        ])
    }

    /// `psql -c "COPY (SELECT <columns> FROM public.mixed <order>) TO STDOUT"`.
    fn copy_argv(&self, order: &str) -> Vec<String> {
        let copy = format!("COPY (SELECT {COLUMNS} FROM public.mixed{order}) TO STDOUT");
        let mut argv: Vec<String> = ["psql", "-X", "-h", "127.0.0.1", "-U", "postgres"]
            .map(String::from)
            .to_vec();
        argv.extend([
            format!("--port={}", self.port),
            format!("--dbname={}", self.db),
            "-c".into(),
            copy,
        ]);
        argv
    }
}

/// The table and its rows. Values vary with the key so that no two rows are alike.
fn seed_sql(rows: u64) -> String {
    format!(
        r#"CREATE TABLE public.mixed (
  id bigint PRIMARY KEY, qty integer NOT NULL, price numeric(12,2) NOT NULL,
  ratio double precision NOT NULL, note text, label varchar(80) NOT NULL,
  created timestamptz NOT NULL, day date, active boolean NOT NULL, doc jsonb NOT NULL,
  uid uuid NOT NULL, blob bytea, tags integer[] NOT NULL, wait interval NOT NULL);
INSERT INTO public.mixed
SELECT g, (g * 7 % 100000)::int - 50000, (g * 37 % 10000000) / 100.0, g / 7.0,
  CASE WHEN g % 10 = 0 THEN NULL
       ELSE 'note ' || g || E' ünï 😀 "q" \t tab \\ back\nline ' || repeat('x', (g % 200)::int) END,
  'label ' || (g % 1000) || ' ß€',
  timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second' + (g % 1000000) * interval '1 microsecond',
  CASE WHEN g % 5 = 0 THEN NULL ELSE date '2000-01-01' + (g % 9000)::int END,
  g % 2 = 0,
  jsonb_build_object('k', g, 'tags', jsonb_build_array('a', g % 3), 'nested', jsonb_build_object('z', 1.5)),
  md5(g::text)::uuid,
  CASE WHEN g % 4 = 0 THEN NULL ELSE decode(md5(g::text), 'hex') END,
  ARRAY[(g % 10)::int, (g % 100)::int, -(g % 1000)::int],
  make_interval(days => (g % 30)::int, secs => (g % 86400) + 0.25)
FROM generate_series(1, {rows}) g"#
    )
}

/// The runs of one command: wall seconds, peak RSS and CPU seconds.
#[derive(Default)]
pub(crate) struct Runs(pub(crate) Vec<Timing>);

impl Runs {
    pub(crate) fn push(&mut self, t: Timing) {
        self.0.push(t);
    }
    pub(crate) fn secs(&self) -> f64 {
        median(&self.0.iter().map(|t| t.secs).collect::<Vec<_>>())
    }
    pub(crate) fn cpu(&self) -> f64 {
        median(&self.0.iter().map(|t| t.cpu_secs).collect::<Vec<_>>())
    }
    /// The largest peak RSS of the runs, in MB.
    pub(crate) fn rss_mb(&self) -> f64 {
        self.0.iter().map(|t| t.rss_kb).max().unwrap_or(0) as f64 / 1024.0
    }
}

pub(crate) fn run(args: &[String]) -> Result {
    let rows = flag_u64(args, "--rows", 1_000_000)?.max(1);
    let runs = flag_u64(args, "--runs", 3)?.max(1);
    let with_peers = args.iter().any(|a| a == "--peers");
    let flat = args.iter().any(|a| a == "--flat");
    let release = !args.iter().any(|a| a == "--debug");
    services::run()?;
    crate::bench::ensure_gnu_time()?;
    let (dir, bin) = crate::bench::prepare_profile("tap-postgres", &["tap-postgres"], release)?;
    let tap = bin.join("tap-postgres");
    let source = Source::new(5432, DB);
    source.seed(rows)?;
    let tap_argv = source.tap_argv(&tap, &dir, "tap", "FULL_TABLE")?;
    let mut report = format!(
        "# tap-postgres benchmark\n\n{}; tap-postgres {} build.\n\n",
        describe(&source, rows)?,
        if release { "release" } else { "debug" }
    );
    let (section, ours, raw_secs) = full_table(&source, &tap_argv, rows, runs)?;
    report.push_str(&section);

    if with_peers {
        let peer_rows = rows.min(PEER_MAX_ROWS);
        let peer_source = if peer_rows < rows {
            let s = Source::new(5432, PEER_DB);
            s.seed(peer_rows)?;
            s
        } else {
            Source::new(5432, DB)
        };
        report.push_str(&crate::bench_peers_pg::run(
            &dir,
            &tap,
            &peer_source,
            peer_rows,
            runs,
        )?);
        if peer_rows < rows {
            peer_source.drop_database()?;
        }
    }
    report.push_str(&crate::bench_tap_pg_cdc::run(&dir, &tap, rows, runs)?);
    if flat {
        report.push_str(&flat_memory(
            &source, &tap_argv, rows, runs, &ours, raw_secs,
        )?);
    }
    source.drop_database()?;

    let path = dir.join("report.md");
    write(&path, &report)?;
    println!("\n{report}");
    step!("bench: report written to {}", path.display());
    Ok(())
}

/// The server, the table and its size.
fn describe(source: &Source, rows: u64) -> Result<String> {
    let query = |sql: &str| source.psql().arg("-c").arg(sql).output();
    Ok(format!(
        "PostgreSQL {}; `public.mixed`: {rows} rows of bigint key, int, numeric(12,2), double, unicode text (quotes, tabs, newlines, backslashes; 10% NULL), varchar, timestamptz (µs), date (20% NULL), boolean, jsonb, uuid, bytea (25% NULL), int[] and interval; {} on disk",
        query("SHOW server_version")?,
        query("SELECT pg_size_pretty(pg_total_relation_size('public.mixed'))")?
    ))
}

/// K rounds of the raw limit, the raw limit in key order, and the tap; then a checked run.
/// Returns the report's section, the tap's runs and the raw limit's median seconds.
fn full_table(
    source: &Source,
    tap_argv: &[String],
    rows: u64,
    runs: u64,
) -> Result<(String, Runs, f64)> {
    let mut raw = Runs::default();
    let mut ordered = Runs::default();
    let mut ours = Runs::default();
    for i in 1..=runs {
        step!("bench: FULL_TABLE run {i}/{runs}: psql COPY, psql COPY ORDER BY id, tap-postgres");
        raw.push(timed_cpu(&source.copy_argv(""))?);
        ordered.push(timed_cpu(&source.copy_argv(" ORDER BY id"))?);
        ours.push(timed_cpu(tap_argv)?);
    }
    let output = check_run(tap_argv, rows, "FULL_TABLE")?;

    let mut out = String::new();
    let _ = writeln!(
        out,
        "## FULL_TABLE > /dev/null (shared server, database `{}`)\n\n| read of {rows} rows (median of {runs}) | seconds | rows/s | vs raw | client CPU s | peak RSS |\n|---|---|---|---|---|---|",
        source.db
    );
    let base = raw.secs();
    for (name, r, rss) in [
        ("raw limit: psql COPY (SELECT …) TO STDOUT", &raw, false),
        (
            "psql COPY (SELECT … ORDER BY id), the tap's order",
            &ordered,
            false,
        ),
        ("tap-postgres FULL_TABLE", &ours, true),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {:.2} | {:.0} | {:.0}% | {:.2} | {} |",
            r.secs(),
            rows as f64 / r.secs(),
            100.0 * base / r.secs(),
            r.cpu(),
            if rss {
                format!("{:.1} MB", r.rss_mb())
            } else {
                String::new()
            }
        );
    }
    let _ = writeln!(
        out,
        "\nGoals: rate ≥ psql COPY: {} ({:.0}%); peak RSS < {RSS_GOAL_MB:.0} MB: {} ({:.1} MB). The tap writes {:.0} bytes per row. Checked: a further run delivered ids 1..={rows} once each. Client CPU is user + system time of psql or of the tap (the server's COPY runs in its own backend).\n",
        met(ours.secs() <= base),
        100.0 * base / ours.secs(),
        met(ours.rss_mb() < RSS_GOAL_MB),
        ours.rss_mb(),
        output.bytes as f64 / rows as f64
    );
    Ok((out, ours, base))
}

/// `--flat`: the table again with 5N rows, one run of the raw limit and one of the tap.
fn flat_memory(
    source: &Source,
    tap_argv: &[String],
    rows: u64,
    runs: u64,
    ours: &Runs,
    raw_secs: f64,
) -> Result<String> {
    let big = rows * 5;
    source.seed(big)?;
    step!("bench: FULL_TABLE of {big} rows: psql COPY, tap-postgres");
    let raw_big = timed_cpu(&source.copy_argv(""))?;
    let tap_big = timed_cpu(tap_argv)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Peak memory from {rows} to {big} rows (`--flat`)\n\n| rows | psql COPY seconds | tap seconds | tap rows/s | vs raw | tap peak RSS |\n|---|---|---|---|---|---|\n| {rows} (median of {runs}; RSS the largest) | {raw_secs:.2} | {:.2} | {:.0} | {:.0}% | {:.1} MB |\n| {big} (one run) | {:.2} | {:.2} | {:.0} | {:.0}% | {:.1} MB |",
        ours.secs(),
        rows as f64 / ours.secs(),
        100.0 * raw_secs / ours.secs(),
        ours.rss_mb(),
        raw_big.secs,
        tap_big.secs,
        big as f64 / tap_big.secs,
        100.0 * raw_big.secs / tap_big.secs,
        tap_big.rss_kb as f64 / 1024.0,
    );
    let grown = tap_big.rss_kb as f64 / 1024.0 - ours.rss_mb();
    let _ = writeln!(
        out,
        "\nFlat (within 10% + 1 MB): {} (5x the rows, {grown:+.1} MB).\n",
        met(grown <= 0.1 * ours.rss_mb() + 1.0)
    );
    Ok(out)
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

pub(crate) fn write(path: &Path, text: &str) -> Result {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// What a checked run wrote.
pub(crate) struct Output {
    pub(crate) bytes: u64,
}

/// Runs the tap once more with stdout read back; fails unless ids 1..=`rows` each arrive in
/// exactly one RECORD.
pub(crate) fn check_run(argv: &[String], rows: u64, what: &str) -> Result<Output> {
    let (program, rest) = argv.split_first().ok_or("empty command")?;
    let (mut child, shown) = Cmd::new(program).args(rest).env("RUST_LOG", "warn").spawn(
        Stdio::null(),
        Stdio::piped(),
        Stdio::inherit(),
    )?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let checked = check_records(BufReader::new(out), rows);
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("`{shown}` failed ({status})"));
    }
    let output = checked.map_err(|e| format!("{what}: `{shown}`: {e}"))?;
    step!("bench: {what} checked: ids 1..={rows} arrived in one RECORD each");
    Ok(output)
}

/// Reads Singer messages and checks that the RECORDs carry ids 1..=`rows`, once each.
pub(crate) fn check_records(input: impl BufRead, rows: u64) -> Result<Output> {
    let mut seen = vec![false; usize::try_from(rows).map_err(|e| e.to_string())?];
    let mut records = 0u64;
    let mut bytes = 0u64;
    for line in input.lines() {
        let line = line.map_err(|e| e.to_string())?;
        bytes += line.len() as u64 + 1;
        if !line.starts_with(r#"{"type":"RECORD""#) {
            continue;
        }
        records += 1;
        let id = line
            .split_once(r#""record":{"id":"#)
            .and_then(|(_, rest)| {
                let end = rest.find(|c: char| !c.is_ascii_digit())?;
                rest[..end].parse::<u64>().ok()
            })
            .ok_or_else(|| format!("a RECORD without a leading id: {line:.200}"))?;
        match id
            .checked_sub(1)
            .and_then(|i| seen.get_mut(usize::try_from(i).ok()?))
        {
            Some(s) if !*s => *s = true,
            Some(_) => return Err(format!("id {id} arrived twice")),
            None => return Err(format!("id {id} is not in 1..={rows}")),
        }
    }
    if records != rows {
        return Err(format!("{records} RECORD lines, expected {rows}"));
    }
    Ok(Output { bytes })
}
