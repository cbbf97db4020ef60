//! tap-mysql piped into PipelineWise's target-postgres (Python, from PyPI, in the venv that
//! `cargo xtask interop` creates).

use std::process::{Command, Stdio};

use serde_json::json;
use singer_core::testing::{interop_path, run_with_stdin};

use crate::{Db, discover, run_tap, select};

fn psql(sql: &str) -> String {
    let url = std::env::var("SINGER_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
    let out = Command::new("psql")
        .args([
            url.as_str(),
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            sql,
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "psql failed: {sql}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim_end()
        .to_string()
}

#[test]
fn pipelinewise_target_postgres_loads_tap_mysql_output() {
    let db = Db::shared("interop");
    db.exec(
        "CREATE TABLE items (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(50), amount DECIMAL(12,2), \
         created DATETIME(6), doc JSON, flag TINYINT(1), day DATE); \
         INSERT INTO items VALUES \
         (1, 'héllo 😀 \"q\"', 1234.56, '2024-01-02 03:04:05.123456', '{\"a\": [1, {\"b\": \"ü\"}]}', 1, '2024-02-29'), \
         (18446744073709551615, NULL, -0.01, NULL, NULL, 0, NULL)",
    );
    let dir = tempfile::tempdir().unwrap();
    let id = db.stream("items");
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &[&id],
        "FULL_TABLE",
        None,
    );
    let tap = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(tap.ok, "{}", tap.stderr);

    let schema = format!("pw_{}", db.name);
    psql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
    let target_cfg = dir.path().join("target.json");
    std::fs::write(
        &target_cfg,
        json!({"host": "127.0.0.1", "port": 5432, "user": "postgres", "password": "unused",
               "dbname": "test", "default_target_schema": schema})
        .to_string(),
    )
    .unwrap();
    let mut cmd = Command::new(interop_path("target_postgres_py"));
    cmd.arg("--config").arg(&target_cfg);
    let out = run_with_stdin(cmd, &tap.stdout);
    assert!(
        out.status.success(),
        "target-postgres failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The target confirms the tap's final state.
    let echoed = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(echoed.lines().last().unwrap()).unwrap();
    assert_eq!(last, tap.last_state());

    let rows = psql(&format!(
        "SELECT id, name, amount, created, doc->'a'->1->>'b', flag, day FROM \"{schema}\".items ORDER BY id::numeric"
    ));
    assert_eq!(
        rows,
        "1|héllo 😀 \"q\"|1234.56|2024-01-02 03:04:05.123456|ü|t|2024-02-29\n\
         18446744073709551615||-0.01|||f|"
    );
    psql(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
}
