//! `cargo xtask bench target-postgres [--rows N]`: target-postgres against the raw limit.
//!
//! Generates a reproducible mixed-type table (bigint key, int, enum-like string, decimal,
//! smallint, double, boolean, unicode text with quotes/tabs/newlines/backslashes, a JSON object,
//! two timestamps, a nullable date; about 650 bytes per RECORD line) as a Singer file and as
//! the same rows in COPY text format. Then, on the same server and table shape:
//! 1. the raw limit: `psql -c "COPY … FROM STDIN"` of the text file into an empty table;
//! 2. `target-postgres --input` of the Singer file into an empty schema.
//!
//! It then checks that row counts, sums and a digest of every row match, and prints a Markdown
//! table with rows per second, the ratio to the raw limit and the target's peak memory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bench::psql;
use crate::{Result, services, target_dir};

const STATUSES: [&str; 4] = ["new", "paid", "shipped", "returned"];

pub(crate) fn run(args: &[String]) -> Result {
    let rows = crate::bench::flag_u64(args, "--rows", 1_000_000)?;
    services::run()?;
    crate::bench::ensure_gnu_time()?;
    let (dir, _) = crate::bench::prepare("", &["target-postgres"])?;
    let (singer, tsv) = generate(&dir, rows)?;
    let raw = raw_copy(&tsv, rows)?;
    let (target, rss_kb) = target_load(&dir, &singer)?;
    verify()?;
    let rate = |secs: f64| rows as f64 / secs;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "| load of {rows} rows | seconds | rows/s | vs raw | peak RSS |\n|---|---|---|---|---|"
    );
    let _ = writeln!(
        report,
        "| raw limit: psql COPY text | {raw:.2} | {:.0} | 100% | |",
        rate(raw)
    );
    let _ = writeln!(
        report,
        "| target-postgres --input | {target:.2} | {:.0} | {:.0}% | {:.1} MB |",
        rate(target),
        100.0 * raw / target,
        rss_kb as f64 / 1024.0
    );
    print!("{report}");
    std::fs::write(dir.join("target-postgres.md"), &report).map_err(|e| e.to_string())?;
    Ok(())
}

fn table_ddl(schema: &str) -> String {
    format!(
        "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; CREATE TABLE {schema}.mixed (\
         id bigint PRIMARY KEY, qty integer, status varchar(16), price numeric, small smallint, ratio numeric, \
         active boolean, note varchar(255), attrs jsonb, created_at timestamptz, updated_at timestamptz, birthday date)"
    )
}

/// Row `i` of the table, as Singer JSON and as COPY text.
fn row(i: u64) -> (String, String) {
    let id = 1_000_000 + i;
    let qty = i * 7 % 100_000;
    let status = STATUSES[(i % 4) as usize];
    let price = format!("{}.{:02}", i % 1_000_000, i % 100);
    let small = (i % 60_000) as i64 - 30_000;
    let ratio = format!("{}.{:06}", i % 1000, (i * 7919) % 1_000_000);
    let active = i.is_multiple_of(3);
    let note = format!(
        "Ünïcødé «row {i}» with \"quotes\",\ttabs,\nnewlines and a back\\slash 🚀 lorem ipsum dolor sit amet, consectetur adipiscing elit {i}"
    );
    let attrs = format!(
        r#"{{"color":"{}","sizes":[{},{},{}],"nested":{{"k":"v{}","ok":true}}}}"#,
        STATUSES[(i % 3) as usize],
        i % 10,
        i % 11,
        i % 12,
        i % 97
    );
    let day = 1 + i % 28;
    let created = format!("2024-03-{day:02}T12:34:56.{:06}Z", i % 1_000_000);
    let updated = format!("2024-04-{day:02}T01:02:03Z");
    let birthday = (!i.is_multiple_of(5)).then(|| format!("1990-{:02}-{day:02}", 1 + i % 12));
    let json_note = note
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
        .replace('\t', "\\t");
    let singer = format!(
        r#"{{"type":"RECORD","stream":"bench-mixed","record":{{"id":{id},"qty":{qty},"status":"{status}","price":{price},"small":{small},"ratio":{ratio},"active":{active},"note":"{json_note}","attrs":{attrs},"created_at":"{created}","updated_at":"{updated}","birthday":{}}},"time_extracted":"2026-11-22T00:00:00.000000Z"}}"#,
        birthday
            .as_ref()
            .map_or("null".to_string(), |b| format!("\"{b}\""))
    );
    let copy_text = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\t', "\\t")
            .replace('\r', "\\r")
    };
    let tsv = [
        id.to_string(),
        qty.to_string(),
        status.to_string(),
        price,
        small.to_string(),
        ratio,
        active.to_string(),
        copy_text(&note),
        copy_text(&attrs),
        created,
        updated,
        birthday.unwrap_or_else(|| "\\N".into()),
    ]
    .join("\t");
    (singer, tsv)
}

fn generate(dir: &Path, rows: u64) -> Result<(PathBuf, PathBuf)> {
    let singer = dir.join(format!("mixed-{rows}.singer"));
    let tsv = dir.join(format!("mixed-{rows}.tsv"));
    if singer.exists() && tsv.exists() {
        return Ok((singer, tsv));
    }
    step!("bench: generating {rows} rows in {}", dir.display());
    let schema = r#"{"type":"SCHEMA","stream":"bench-mixed","schema":{"type":"object","properties":{"id":{"type":"integer","minimum":-9223372036854775808,"maximum":9223372036854775807},"qty":{"type":["null","integer"],"minimum":-2147483648,"maximum":2147483647},"status":{"type":["null","string"],"maxLength":16},"price":{"type":["null","number"],"multipleOf":0.01},"small":{"type":["null","integer"],"minimum":-32768,"maximum":32767},"ratio":{"type":["null","number"]},"active":{"type":["null","boolean"]},"note":{"type":["null","string"],"maxLength":255},"attrs":{"type":["null","object"]},"created_at":{"type":["null","string"],"format":"date-time"},"updated_at":{"type":["null","string"],"format":"date-time"},"birthday":{"type":["null","string"],"format":"date"}}},"key_properties":["id"]}"#;
    let mut s = std::io::BufWriter::new(std::fs::File::create(&singer).map_err(|e| e.to_string())?);
    let mut t = std::io::BufWriter::new(std::fs::File::create(&tsv).map_err(|e| e.to_string())?);
    use std::io::Write;
    let w = |e: std::io::Error| e.to_string();
    writeln!(s, "{schema}").map_err(w)?;
    for i in 0..rows {
        let (line, copy) = row(i);
        writeln!(s, "{line}").map_err(w)?;
        writeln!(t, "{copy}").map_err(w)?;
        if i % 100_000 == 99_999 {
            writeln!(
                s,
                r#"{{"type":"STATE","value":{{"bookmarks":{{"bench-mixed":{{"id":{}}}}}}}}}"#,
                1_000_000 + i
            )
            .map_err(w)?;
        }
    }
    writeln!(s, r#"{{"type":"STATE","value":{{"done":true}}}}"#).map_err(w)?;
    s.flush().map_err(w)?;
    t.flush().map_err(w)?;
    Ok((singer, tsv))
}

fn raw_copy(tsv: &Path, rows: u64) -> Result<f64> {
    psql().arg("-c").arg(table_ddl("bench_raw")).run()?;
    step!("bench: raw limit (psql COPY of {rows} rows)");
    let started = Instant::now();
    let file = std::fs::File::open(tsv).map_err(|e| e.to_string())?;
    let status = std::process::Command::new("psql")
        .args(crate::bench::PSQL_CONNECTION)
        .args(["-q", "-c", "COPY bench_raw.mixed FROM STDIN"])
        .stdin(file)
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("psql COPY failed".into());
    }
    Ok(started.elapsed().as_secs_f64())
}

fn target_load(dir: &Path, singer: &Path) -> Result<(f64, u64)> {
    psql()
        .arg("-c")
        .arg("DROP SCHEMA IF EXISTS bench_tp CASCADE")
        .run()?;
    let cfg = dir.join("target-postgres.json");
    std::fs::write(&cfg, r#"{"host":"127.0.0.1","user":"postgres","database":"test","default_target_schema":"bench_tp","sslmode":"disable"}"#)
        .map_err(|e| e.to_string())?;
    let bin = target_dir().join("release/target-postgres");
    step!("bench: target-postgres --input {}", singer.display());
    let started = Instant::now();
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(&bin)
        .arg("--config")
        .arg(&cfg)
        .arg("--input")
        .arg(singer)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| format!("cannot run /usr/bin/time (apt-get install time): {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("target-postgres failed: {stderr}"));
    }
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Ok((secs, rss))
}

fn verify() -> Result {
    let q = |schema: &str| {
        format!(
            "SELECT count(*), sum(price), sum(small), sum(ratio), count(birthday), md5(string_agg(note || attrs::text || created_at::text, '' ORDER BY id)) FROM {schema}.mixed"
        )
    };
    let raw = psql().arg("-c").arg(q("bench_raw")).output()?;
    let tp = psql().arg("-c").arg(q("bench_tp")).output()?;
    if raw != tp {
        return Err(format!("loaded data differs:\n raw: {raw}\n target: {tp}"));
    }
    step!(
        "bench: verified: count, sums, and a digest of every note, JSON and timestamp match ({})",
        raw.trim()
    );
    Ok(())
}
