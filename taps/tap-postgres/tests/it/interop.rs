//! tap-postgres output loaded by our target-postgres into another database and by
//! PipelineWise's target-postgres (Python, from PyPI, in the venv `cargo xtask interop`
//! makes), with identical values.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Map, Value, json};
use singer_core::testing::{interop_path, run_with_stdin};

use crate::types::fill;
use crate::{Db, Server, discover, run_tap, select, tempdir};

/// A binary of the workspace, built beside this tap.
fn sibling(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_tap-postgres")).with_file_name(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace (cargo build --workspace) first",
        p.display()
    );
    p
}

/// A number's exact value as `(negative, digits without leading or trailing zeros,
/// exponent of the last digit)`; other values as they are.
fn canonical(v: &Value) -> Value {
    match v {
        Value::Number(n) => {
            let t = n.to_string();
            let (neg, t) = match t.strip_prefix('-') {
                Some(r) => (true, r.to_string()),
                None => (false, t),
            };
            let (mant, exp) = match t.find(['e', 'E']) {
                Some(i) => (t[..i].to_string(), t[i + 1..].parse::<i64>().unwrap()),
                None => (t.clone(), 0),
            };
            let (int, frac) = mant.split_once('.').unwrap_or((&mant, ""));
            let digits = format!("{int}{frac}");
            let mut exp = exp - frac.len() as i64;
            let trimmed = digits.trim_end_matches('0');
            exp += (digits.len() - trimmed.len()) as i64;
            let trimmed = trimmed.trim_start_matches('0');
            if trimmed.is_empty() {
                return json!("0");
            }
            json!(format!("{}{trimmed}e{exp}", if neg { "-" } else { "" }))
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical).collect()),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect::<Map<_, _>>(),
        ),
        other => other.clone(),
    }
}

#[test]
fn our_target_loads_every_type_into_another_database_identically() {
    let server = Server::shared();
    let source = Db::create(&server, "iosrc");
    fill(&source);
    let dest = Db::create(&server, "iodst");
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &source.config()),
        &["public-every"],
        "FULL_TABLE",
        None,
    );
    let tap = run_tap(dir.path(), &source.config(), Some(&catalog), None);
    assert!(tap.ok, "{}", tap.stderr);

    let target_cfg = dir.path().join("target.json");
    std::fs::write(
        &target_cfg,
        json!({"host": dest.host, "port": dest.port, "user": dest.user, "database": dest.name,
               "validate_records": true})
        .to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(sibling("target-postgres"));
    cmd.arg("--config").arg(&target_cfg);
    let out = run_with_stdin(cmd, &tap.stdout);
    assert!(
        out.status.success(),
        "target-postgres failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echoed = String::from_utf8(out.stdout).unwrap();
    let last: Value = serde_json::from_str(echoed.lines().last().unwrap()).unwrap();
    assert_eq!(last, tap.last_state());

    // Read the loaded table back with the tap: every value it gives is the source's.
    let back_catalog = select(
        &discover(dir.path(), &dest.config()),
        &["public-every"],
        "FULL_TABLE",
        None,
    );
    let back = run_tap(dir.path(), &dest.config(), Some(&back_catalog), None);
    assert!(back.ok, "{}", back.stderr);
    let mut theirs = back.records("public-every");
    theirs.sort_by_key(|r| r["id"].as_i64());
    let ours = tap.records("public-every");
    assert_eq!(ours.len(), theirs.len());
    for (a, b) in ours.iter().zip(&theirs) {
        for (k, v) in a.as_object().unwrap() {
            assert_eq!(canonical(v), canonical(&b[k]), "row {} column {k}", a["id"]);
        }
    }
    // Types PostgreSQL can name are recreated as they were.
    let ty = |c: &str| {
        dest.scalar(&format!(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = 'public.every'::regclass AND attname = '{c}'"
        ))
    };
    assert_eq!(ty("tmtz"), "time with time zone");
    assert_eq!(ty("iv"), "interval");
    assert_eq!(ty("inet_"), "inet");
    assert_eq!(ty("bits"), "bit(4)");
    assert_eq!(ty("r"), "int4range");
    assert_eq!(ty("d"), "date");
}

#[test]
fn pipelinewise_target_postgres_loads_tap_postgres_output() {
    let server = Server::shared();
    let source = Db::create(&server, "iopw");
    source.exec(
        "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(50), amount numeric(12, 2),
           created timestamptz, doc jsonb, flag boolean, day date);
         INSERT INTO items VALUES
           (1, 'héllo 😀 \"q\"', 1234.56, '2024-01-02 03:04:05.123456+00',
            '{\"a\": [1, {\"b\": \"ü\"}]}', true, '2024-02-29'),
           (9223372036854775807, NULL, -0.01, NULL, NULL, false, NULL);",
    );
    let dest = Db::create(&server, "iopwdst");
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &source.config()),
        &["public-items"],
        "FULL_TABLE",
        None,
    );
    let tap = run_tap(dir.path(), &source.config(), Some(&catalog), None);
    assert!(tap.ok, "{}", tap.stderr);
    let target_cfg = dir.path().join("pw.json");
    std::fs::write(
        &target_cfg,
        json!({"host": dest.host, "port": dest.port, "user": dest.user, "password": "unused",
               "dbname": dest.name, "default_target_schema": "landing"})
        .to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(interop_path("target_postgres_py"));
    cmd.arg("--config").arg(&target_cfg);
    let out = run_with_stdin(cmd, &tap.stdout);
    assert!(
        out.status.success(),
        "pipelinewise target-postgres failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let echoed = String::from_utf8(out.stdout).unwrap();
    let last: Value = serde_json::from_str(echoed.lines().last().unwrap()).unwrap();
    assert_eq!(last, tap.last_state());
    let rows = dest.query(
        "SELECT id, name, amount, created, doc->'a'->1->>'b', flag, day FROM landing.items ORDER BY id",
    );
    assert_eq!(
        rows,
        [
            // PipelineWise makes timestamps `timestamp without time zone` (UTC wall clock).
            "1|héllo 😀 \"q\"|1234.56|2024-01-02 03:04:05.123456|ü|t|2024-02-29",
            "9223372036854775807||-0.01|||f|"
        ]
    );
}
