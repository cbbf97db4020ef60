//! `cargo xtask bench e2e [--rows N] [--runs K]`: every stage of MariaDB → PostgreSQL on the
//! same data, against the raw database limit.
//!
//! Seeds `bench_tap.mixed` (N rows, the mixed shape of `bench tap-mysql`) and `bench_tap.small`
//! (10,000 rows, so runs have two streams). Then, K times each (median reported):
//! 1. the raw limit: `mariadb --quick --batch | psql COPY` into matching tables (NULLs as
//!    `NULL`, which the data never holds as text);
//! 2. tap-mysql FULL_TABLE to /dev/null;
//! 3. target-postgres from a file of the tap's output, and target-parquet from the same file
//!    (its rows counted back with pyarrow when the interop venv exists);
//! 4. the shell pipe `tap-mysql | target-postgres`;
//! 5. the same pipe with the tap writing BATCH files (`batch_config`: Parquet, zstd, 100,000
//!    rows per file, or a quarter of N when smaller so small runs write several files, in a
//!    directory under the bench's) that the target reads back;
//! 6. `singer run`;
//! 7. the same `singer run` again into the now-full tables (every row an upsert of the values
//!    it holds, with this sync's table version: target-postgres leaves the rows as they are
//!    and records their keys for ACTIVATE_VERSION, which must then retire none of them);
//! 8. after `qty` was changed on every row of `mixed` in MariaDB (not timed, undone after the
//!    stage), `singer run` again: every row an upsert that rewrites it.
//!
//! Both pipes report the peak RSS of each of their processes.
//!
//! With `--peers`, the Python connectors run the same way beside them (see `bench_peers`).
//!
//! After each load it checks row counts, sums, and sampled values (unicode text, decimals, JSON
//! members, microsecond timestamps) against MariaDB, and writes a Markdown report.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::bench::{flag_u64, psql};
use crate::bench_mysql::{max_rss_kb, seed, timed};
use crate::bench_peers::PeerBench;
use crate::process::Cmd;
use crate::{Result, services};

const LOAD_SCHEMA: &str = "bench_e2e";
const RAW_SCHEMA: &str = "bench_raw";
const MIXED_COLUMNS: &str =
    "id, qty, status, price, small, ratio, active, note, doc, created, updated, day";

/// One measured stage: its times, peak memory, and anything wrong with its loads.
pub(crate) struct Stage {
    name: String,
    pub(crate) secs: Vec<f64>,
    pub(crate) rss_kb: Vec<u64>,
    /// Peak RSS of each process of a pipe, by name, when measured one by one.
    processes: Vec<(&'static str, Vec<u64>)>,
    notes: Vec<String>,
}

impl Stage {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            secs: Vec::new(),
            rss_kb: Vec::new(),
            processes: Vec::new(),
            notes: Vec::new(),
        }
    }
    /// Records the peak RSS of each process of a [`measured_pipe`] run.
    fn process_rss(&mut self, logs: &PipeLogs) {
        for (name, log) in [("tap", &logs.tap), ("target", &logs.target)] {
            let kb = max_rss_kb(log);
            match self.processes.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(kb),
                None => self.processes.push((name, vec![kb])),
            }
        }
    }
    /// The peak memory column: each process of a pipe, else the largest process.
    fn rss_text(&self) -> String {
        if !self.processes.is_empty() {
            let mb = |v: &[u64]| v.iter().copied().max().unwrap_or(0) as f64 / 1024.0;
            return self
                .processes
                .iter()
                .map(|(n, v)| format!("{n} {:.1} MB", mb(v)))
                .collect::<Vec<_>>()
                .join(", ");
        }
        if self.rss_kb.is_empty() {
            String::new()
        } else {
            format!("{:.1} MB", self.max_rss_mb())
        }
    }
    /// Records a problem with a run (a peer's failed or inexact load).
    pub(crate) fn note(&mut self, text: String) {
        if !self.notes.contains(&text) {
            self.notes.push(text);
        }
    }
    fn median(&self) -> f64 {
        crate::bench::median(&self.secs)
    }
    fn max_rss_mb(&self) -> f64 {
        self.rss_kb.iter().copied().max().unwrap_or(0) as f64 / 1024.0
    }
}

pub(crate) fn run(args: &[String]) -> Result {
    let rows = flag_u64(args, "--rows", 1_000_000)?;
    let runs = flag_u64(args, "--runs", 3)?.max(1);
    let with_peers = args.iter().any(|a| a == "--peers");
    let release = !args.iter().any(|a| a == "--debug");
    services::run()?;
    // Every stage runs under GNU time, which a fresh Debian lacks.
    crate::bench::ensure_gnu_time()?;
    let (dir, bin) = crate::bench::prepare_profile(
        "e2e",
        &["singer", "tap-mysql", "target-postgres", "target-parquet"],
        release,
    )?;
    seed(rows)?;
    seed_small()?;
    let files = Files::write(&dir, &bin, rows)?;
    let lake = crate::bench_lake::Lake::write(&dir, &bin)?;
    let total = rows + 10_000;
    let mut peers = if with_peers {
        Some(PeerBench::prepare(&dir)?)
    } else {
        None
    };

    let mut raw = Stage::new("raw limit: mariadb --quick --batch | psql COPY");
    let mut tap = Stage::new("tap-mysql > /dev/null");
    let mut target = Stage::new("target-postgres --input (file of the tap's output)");
    let mut parquet = Stage::new("target-parquet --input (file of the tap's output)");
    let mut pipe = Stage::new("shell pipe: tap-mysql | target-postgres");
    let mut batch = Stage::new(format!(
        "shell pipe, BATCH: tap-mysql (Parquet, zstd, {} rows per file) | target-postgres",
        files.batch_size
    ));
    let logs = PipeLogs::new(&dir);
    let mut singer = Stage::new("singer run (first load)");
    let mut upsert = Stage::new("singer run again (every row an upsert)");
    let mut changed =
        Stage::new("singer run again, every row changed at the source (every row rewritten)");

    step!("bench: writing the tap's output once, for the target-from-file stage");
    let out = Cmd::new(bin.join("tap-mysql"))
        .arg("--config")
        .arg(&files.tap_config)
        .arg("--catalog")
        .arg(&files.catalog)
        .env("RUST_LOG", "warn");
    let tap_file = dir.join("tap-output.jsonl");
    let (mut child, shown) = out.spawn(
        std::process::Stdio::null(),
        std::process::Stdio::from(std::fs::File::create(&tap_file).map_err(|e| e.to_string())?),
        std::process::Stdio::inherit(),
    )?;
    if !child.wait().map_err(|e| e.to_string())?.success() {
        return Err(format!("`{shown}` failed"));
    }

    let mut batch_files = (0, 0);
    for i in 1..=runs {
        step!("bench: round {i}/{runs}");
        psql_c(&raw_ddl())?;
        let (s, _) = timed(&sh(&files.raw_command()))?;
        raw.secs.push(s);
        verify(RAW_SCHEMA, rows)?;

        let (s, kb) = timed(&files.tap_argv())?;
        tap.secs.push(s);
        tap.rss_kb.push(kb);

        drop_load_schema()?;
        let mut argv = files.target_argv();
        argv.extend(["--input".into(), tap_file.display().to_string()]);
        let (s, kb) = timed(&argv)?;
        target.secs.push(s);
        target.rss_kb.push(kb);
        verify(LOAD_SCHEMA, rows)?;

        let (s, kb) = timed(&lake.argv(&tap_file)?)?;
        parquet.secs.push(s);
        parquet.rss_kb.push(kb);
        match lake.count_rows()? {
            Some(n) if n == total => {}
            Some(n) => return Err(format!("target-parquet wrote {n} rows, not {total}")),
            None => parquet
                .note("rows not counted back: no pyarrow venv (`cargo xtask interop`)".into()),
        }

        drop_load_schema()?;
        let (s, _) = timed(&sh_pipefail(&measured_pipe(
            &files.tap_argv(),
            &files.target_argv(),
            &logs,
        )))?;
        pipe.secs.push(s);
        pipe.process_rss(&logs);
        verify(LOAD_SCHEMA, rows)?;

        drop_load_schema()?;
        files.clear_batch_dir()?;
        let (s, _) = timed(&sh_pipefail(&measured_pipe(
            &files.batch_tap_argv(),
            &files.target_argv(),
            &logs,
        )))?;
        batch.secs.push(s);
        batch.process_rss(&logs);
        verify(LOAD_SCHEMA, rows)?;
        batch_files = files.batch_files()?;

        drop_load_schema()?;
        let _ = std::fs::remove_dir_all(dir.join(".singer"));
        let (s, kb) = timed(&files.singer_argv())?;
        singer.secs.push(s);
        singer.rss_kb.push(kb);
        verify(LOAD_SCHEMA, rows)?;

        let _ = std::fs::remove_dir_all(dir.join(".singer"));
        let (s, kb) = timed(&files.singer_argv())?;
        upsert.secs.push(s);
        upsert.rss_kb.push(kb);
        verify(LOAD_SCHEMA, rows)?;
        none_retired()?;

        change_every_row(1)?;
        let _ = std::fs::remove_dir_all(dir.join(".singer"));
        let timed_run = timed(&files.singer_argv());
        // Checked against the changed source before the change is undone.
        let verified = match &timed_run {
            Ok(_) => verify(LOAD_SCHEMA, rows).and_then(|()| none_retired()),
            Err(_) => Ok(()),
        };
        change_every_row(-1)?;
        let (s, kb) = timed_run?;
        verified?;
        changed.secs.push(s);
        changed.rss_kb.push(kb);

        if let Some(p) = &mut peers {
            p.round(&files, rows)?;
        }
    }

    let base = raw.median();
    let mut report = String::new();
    let _ = writeln!(
        report,
        "| {total} rows ({rows} mixed + 10000 small), median of {runs} | seconds | rows/s | vs raw | peak RSS (largest process; our pipes: each process; the peers' pipes: the target) |\n|---|---|---|---|---|"
    );
    let mut stages = vec![
        &raw, &tap, &target, &parquet, &pipe, &batch, &singer, &upsert, &changed,
    ];
    if let Some(p) = &peers {
        stages.extend(p.stages.iter());
    }
    for st in &stages {
        if st.secs.is_empty() {
            let _ = writeln!(report, "| {} | failed | | | |", st.name.replace('|', "\\|"));
            continue;
        }
        let m = st.median();
        let rss = st.rss_text();
        let _ = writeln!(
            report,
            "| {} | {m:.2} | {:.0} | {:.0}% | {rss} |",
            st.name.replace('|', "\\|"),
            total as f64 / m,
            100.0 * base / m
        );
    }
    let _ = writeln!(
        report,
        "\nEvery load was checked against MariaDB: row counts, sums of qty, price and small, NULL counts, and sampled rows (text md5, JSON members, microsecond timestamps). Ours must match exactly (the bench stops otherwise); where a peer's load differs, the first difference is listed below."
    );
    let _ = writeln!(
        report,
        "\nThe BATCH pipe's tap wrote {} Parquet files, {:.1} MB in all (last round); the target read them from the manifests.",
        batch_files.0,
        batch_files.1 as f64 / 1e6
    );
    for st in stages.iter().filter(|st| !st.notes.is_empty()) {
        let _ = writeln!(report, "\n{}:", st.name);
        for n in &st.notes {
            let _ = writeln!(report, "- {}", n.replace('\n', " "));
        }
    }
    let path = dir.join("report.md");
    std::fs::write(&path, &report).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("\n{report}");
    step!("bench: report written to {}", path.display());
    Ok(())
}

/// After a re-sync: ACTIVATE_VERSION marked no row of the loaded tables deleted (every source
/// row was sent again, most of them unchanged, so they keep their old table version).
fn none_retired() -> Result {
    let retired = psql_out(&format!(
        "SELECT (SELECT count(*) FROM {LOAD_SCHEMA}.mixed WHERE _sdc_deleted_at IS NOT NULL) \
         + (SELECT count(*) FROM {LOAD_SCHEMA}.small WHERE _sdc_deleted_at IS NOT NULL)"
    ))?;
    if retired.trim() != "0" {
        return Err(format!(
            "{} rows of {LOAD_SCHEMA} were marked deleted by a re-sync of unchanged data",
            retired.trim()
        ));
    }
    Ok(())
}

/// Adds `by` to `qty` on every row of the mixed table in MariaDB (keeping `updated`).
fn change_every_row(by: i32) -> Result {
    Cmd::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-e"])
        .arg(format!(
            "UPDATE bench_tap.mixed SET qty = qty + ({by}), updated = updated"
        ))
        .run()
}

fn sh(cmd: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), cmd.into()]
}

/// Where the two processes of a [`measured_pipe`] write their peak RSS.
struct PipeLogs {
    tap: PathBuf,
    target: PathBuf,
}

impl PipeLogs {
    fn new(dir: &Path) -> Self {
        Self {
            tap: dir.join("pipe-tap.time"),
            target: dir.join("pipe-target.time"),
        }
    }
}

/// `tap | target > /dev/null`, each process under GNU time writing its peak RSS to `logs`.
fn measured_pipe(tap: &[String], target: &[String], logs: &PipeLogs) -> String {
    let _ = std::fs::remove_file(&logs.tap);
    let _ = std::fs::remove_file(&logs.target);
    format!(
        "/usr/bin/time -f maxrss_kb=%M -o {} {} | /usr/bin/time -f maxrss_kb=%M -o {} {} > /dev/null",
        logs.tap.display(),
        tap.join(" "),
        logs.target.display(),
        target.join(" ")
    )
}

/// `cmd` in bash, failing if any part of a pipe fails.
pub(crate) fn sh_pipefail(cmd: &str) -> Vec<String> {
    vec![
        "bash".into(),
        "-o".into(),
        "pipefail".into(),
        "-c".into(),
        cmd.into(),
    ]
}

/// The second, small table.
pub(crate) fn seed_small() -> Result {
    Cmd::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-e"])
        .arg(
            "SET NAMES utf8mb4; DROP TABLE IF EXISTS bench_tap.small;
             CREATE TABLE bench_tap.small (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL,
               amount DECIMAL(10,2), at DATETIME(6));
             INSERT INTO bench_tap.small SELECT seq, CONCAT('item ', seq, ' ñ'), seq / 4,
               TIMESTAMP('2022-01-01') + INTERVAL seq * 7 SECOND + INTERVAL seq MICROSECOND
             FROM bench_tap.seq_1_to_10000;",
        )
        .run()
}

pub(crate) struct Files {
    bin: PathBuf,
    tap_config: PathBuf,
    /// The tap's config with `batch_config`.
    batch_tap_config: PathBuf,
    /// Where the BATCH pipe's tap writes its files.
    batch_dir: PathBuf,
    /// Rows per BATCH file.
    batch_size: u64,
    catalog: PathBuf,
    target_config: PathBuf,
    project: PathBuf,
}

impl Files {
    fn write(dir: &Path, bin: &Path, rows: u64) -> Result<Self> {
        let w =
            |p: &Path, t: &str| std::fs::write(p, t).map_err(|e| format!("{}: {e}", p.display()));
        let tap_config = dir.join("tap.json");
        w(
            &tap_config,
            r#"{"host":"127.0.0.1","port":3306,"user":"root","filter_dbs":"bench_tap"}"#,
        )?;
        let batch_dir = dir.join("batch-files");
        let batch_size = (rows / 4).clamp(1, 100_000);
        let batch_tap_config = dir.join("tap-batch.json");
        w(
            &batch_tap_config,
            &format!(
                r#"{{"host":"127.0.0.1","port":3306,"user":"root","filter_dbs":"bench_tap",
                "batch_config":{{"encoding":{{"format":"parquet","compression":"zstd"}},
                "storage":{{"root":{}}},"batch_size":{batch_size}}}}}"#,
                crate::json::string(&batch_dir.display().to_string())
            ),
        )?;
        let catalog = dir.join("catalog.json");
        let stream = |t: &str| {
            format!(
                r#"{{"tap_stream_id":"bench_tap-{t}","stream":"{t}","table_name":"{t}","schema":{{"type":"object","properties":{{}}}},
                "metadata":[{{"breadcrumb":[],"metadata":{{"selected":true,"replication-method":"FULL_TABLE","database-name":"bench_tap"}}}}]}}"#
            )
        };
        w(
            &catalog,
            &format!(r#"{{"streams":[{},{}]}}"#, stream("mixed"), stream("small")),
        )?;
        let target_config = dir.join("target.json");
        w(
            &target_config,
            &format!(
                r#"{{"host":"127.0.0.1","user":"postgres","database":"test","default_target_schema":"{LOAD_SCHEMA}"}}"#
            ),
        )?;
        let project = dir.join("singer.toml");
        w(
            &project,
            &crate::bench::mysql_to_postgres_project(bin, &catalog, LOAD_SCHEMA, "e2e"),
        )?;
        Ok(Self {
            bin: bin.to_path_buf(),
            tap_config,
            batch_tap_config,
            batch_dir,
            batch_size,
            catalog,
            target_config,
            project,
        })
    }

    pub(crate) fn tap_argv(&self) -> Vec<String> {
        vec![
            self.bin.join("tap-mysql").display().to_string(),
            "--config".into(),
            self.tap_config.display().to_string(),
            "--catalog".into(),
            self.catalog.display().to_string(),
        ]
    }

    /// The tap writing BATCH files (`batch_config`).
    fn batch_tap_argv(&self) -> Vec<String> {
        vec![
            self.bin.join("tap-mysql").display().to_string(),
            "--config".into(),
            self.batch_tap_config.display().to_string(),
            "--catalog".into(),
            self.catalog.display().to_string(),
        ]
    }

    /// Empties the BATCH directory (files of an earlier round).
    fn clear_batch_dir(&self) -> Result {
        match std::fs::remove_dir_all(&self.batch_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("{}: {e}", self.batch_dir.display()))
            }
            _ => Ok(()),
        }
    }

    /// The BATCH files of the last run: how many, and their bytes. Fails if a run left an
    /// unfinished (`.partial`) file or none at all.
    fn batch_files(&self) -> Result<(usize, u64)> {
        let err = |e: std::io::Error| format!("{}: {e}", self.batch_dir.display());
        let (mut n, mut bytes) = (0, 0);
        for entry in std::fs::read_dir(&self.batch_dir).map_err(err)? {
            let entry = entry.map_err(err)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".partial") {
                return Err(format!("the BATCH pipe left an unfinished file: {name}"));
            }
            n += 1;
            bytes += entry.metadata().map_err(err)?.len();
        }
        if n == 0 {
            return Err(format!(
                "the BATCH pipe wrote no file in {}",
                self.batch_dir.display()
            ));
        }
        Ok((n, bytes))
    }

    fn target_argv(&self) -> Vec<String> {
        vec![
            self.bin.join("target-postgres").display().to_string(),
            "--config".into(),
            self.target_config.display().to_string(),
        ]
    }

    fn singer_argv(&self) -> Vec<String> {
        vec![
            self.bin.join("singer").display().to_string(),
            "--project".into(),
            self.project.display().to_string(),
            "run".into(),
            "e2e".into(),
        ]
    }

    fn raw_command(&self) -> String {
        let copy = |table: &str, select: &str| {
            format!(
                "mariadb -uroot -h127.0.0.1 --quick --batch -N --default-character-set=utf8mb4 \
                 --init-command=\"SET time_zone='+00:00'\" -e \"{select}\" \
                 | PGTZ=UTC psql -h 127.0.0.1 -U postgres -d test -q -v ON_ERROR_STOP=1 \
                 -c \"COPY {RAW_SCHEMA}.{table} FROM STDIN WITH (NULL 'NULL')\""
            )
        };
        format!(
            "{} && {}",
            copy(
                "mixed",
                &format!("SELECT {MIXED_COLUMNS} FROM bench_tap.mixed")
            ),
            copy("small", "SELECT id, name, amount, at FROM bench_tap.small")
        )
    }
}

fn raw_ddl() -> String {
    format!(
        "DROP SCHEMA IF EXISTS {RAW_SCHEMA} CASCADE; CREATE SCHEMA {RAW_SCHEMA};
         CREATE TABLE {RAW_SCHEMA}.mixed (id numeric PRIMARY KEY, qty integer, status varchar(16),
           price numeric(12,2), small smallint, ratio double precision, active boolean,
           note varchar(255), doc jsonb, created timestamptz, updated timestamptz, day date);
         CREATE TABLE {RAW_SCHEMA}.small (id integer PRIMARY KEY, name varchar(40), amount numeric(10,2),
           at timestamptz)"
    )
}

fn psql_c(sql: &str) -> Result {
    psql().arg("-c").arg(sql).run()
}

fn psql_out(sql: &str) -> Result<String> {
    psql()
        .args(["-F", "|", "-c"])
        .arg(sql)
        .env("PGTZ", "UTC")
        .output()
}

fn mariadb_out(sql: &str) -> Result<String> {
    Cmd::new("mariadb")
        .args([
            "-uroot",
            "-h127.0.0.1",
            "-N",
            "-B",
            "--default-character-set=utf8mb4",
            "-e",
        ])
        .arg(format!("SET time_zone = '+00:00'; {sql}"))
        .output()
        .map(|s| s.replace('\t', "|"))
}

fn drop_load_schema() -> Result {
    drop_schema(LOAD_SCHEMA)
}

pub(crate) fn drop_schema(schema: &str) -> Result {
    psql_c(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
}

/// Compares a loaded schema with the source.
pub(crate) fn verify(schema: &str, rows: u64) -> Result {
    let sample = format!("(1, 7, 10, 1000, {}, {rows})", rows / 2);
    let checks = [
        (
            "SELECT COUNT(*), SUM(qty), SUM(price), SUM(small), COUNT(note), COUNT(day) FROM bench_tap.mixed".to_string(),
            format!("SELECT count(*), sum(qty), sum(price), sum(small), count(note), count(day) FROM {schema}.mixed"),
        ),
        (
            format!(
                "SELECT MD5(GROUP_CONCAT(CONCAT_WS('~', id, IFNULL(note, '-'), status, price, active, \
                 DATE_FORMAT(created, '%Y-%m-%d %H:%i:%s.%f'), DATE_FORMAT(updated, '%Y-%m-%d %H:%i:%s'), \
                 JSON_VALUE(doc, '$.k'), JSON_VALUE(doc, '$.tags[1]'), JSON_VALUE(doc, '$.nested.z'), IFNULL(day, '-')) \
                 ORDER BY id SEPARATOR '#')) FROM bench_tap.mixed WHERE id IN {sample}"
            ),
            format!(
                "SELECT md5(string_agg(concat_ws('~', id, coalesce(note, '-'), status, price, \
                 CASE WHEN active THEN 1 ELSE 0 END, \
                 to_char(created AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), \
                 to_char(updated AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), \
                 doc->>'k', doc->'tags'->>1, doc->'nested'->>'z', coalesce(day::text, '-')), '#' ORDER BY id)) \
                 FROM {schema}.mixed WHERE id IN {sample}"
            ),
        ),
        (
            "SELECT COUNT(*), SUM(amount), MD5(GROUP_CONCAT(CONCAT_WS('~', id, name, DATE_FORMAT(at, '%Y-%m-%d %H:%i:%s.%f')) ORDER BY id SEPARATOR '#')) FROM bench_tap.small WHERE id <= 50".to_string(),
            format!(
                "SELECT count(*), sum(amount), md5(string_agg(concat_ws('~', id, name, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')), '#' ORDER BY id)) FROM {schema}.small WHERE id <= 50"
            ),
        ),
    ];
    for (source, loaded) in checks {
        let want = mariadb_out(&source)?;
        let got = psql_out(&loaded)?;
        if want != got {
            return Err(format!(
                "{schema} differs from MariaDB:\n  source: {want}\n  loaded: {got}\n  query: {loaded}"
            ));
        }
    }
    step!("bench: {schema} verified against MariaDB (counts, sums, sampled values)");
    Ok(())
}
