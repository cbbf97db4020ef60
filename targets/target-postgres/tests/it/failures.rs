use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;

use serde_json::json;

use crate::{config, fresh_schema, load, scalar, sql, target};

#[test]
fn a_value_that_does_not_fit_names_stream_column_key_and_line() {
    let s = fresh_schema("badvalue");
    let input = [
        r#"{"type":"SCHEMA","stream":"t","schema":{"properties":{"id":{"type":"integer"},"at":{"type":"string","format":"date-time"}}},"key_properties":["id"]}"#,
        r#"{"type":"RECORD","stream":"t","record":{"id":1,"at":"2024-01-01T00:00:00Z"}}"#,
        r#"{"type":"STATE","value":{"n":1}}"#,
        r#"{"type":"RECORD","stream":"t","record":{"id":2,"at":"0000-00-00 00:00:00"}}"#,
        r#"{"type":"STATE","value":{"n":2}}"#,
    ]
    .join("\n");
    let out = load(&s, json!({}), &input);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 4")
            && err.contains("stream `t`")
            && err.contains("column `at`")
            && err.contains("key {id=2}"),
        "{err}"
    );
    let echoed = String::from_utf8_lossy(&out.stdout);
    assert!(!echoed.contains(r#""n":2"#), "{echoed}");
}

#[test]
fn config_errors_never_show_the_password() {
    let s = fresh_schema("cfg");
    let out = load(&s, json!({"passwrd": "x"}), "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `passwrd`"));
    let out = load(&s, json!({"port": 1, "password": "hunter2-secret"}), "");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot connect") && !err.contains("hunter2-secret"),
        "{err}"
    );
    let about = std::process::Command::new(env!("CARGO_BIN_EXE_target-postgres"))
        .arg("--about")
        .output()
        .unwrap();
    let about: serde_json::Value = serde_json::from_slice(&about.stdout).unwrap();
    assert!(about["settings"]["properties"]["hard_delete"].is_object());
}

/// Kills the target with SIGKILL while input is still flowing, then checks every state it
/// echoed against the committed rows: a state saying "upto N" must have rows 1..=N committed.
#[test]
fn kill_9_never_leaves_an_echoed_state_ahead_of_the_data() {
    let s = fresh_schema("kill");
    let (_dir, cfg) = config(
        &s,
        json!({"batch_size_rows": 500, "max_batch_age_seconds": 0.05}),
    );
    let mut child = target(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    // Writes until the pipe breaks; returns the last id written.
    let writer = std::thread::spawn(move || {
        let header = r#"{"type":"SCHEMA","stream":"t","schema":{"properties":{"id":{"type":"integer"},"pad":{"type":"string"}}},"key_properties":["id"]}"#;
        if writeln!(stdin, "{header}").is_err() {
            return 0;
        }
        let pad = "x".repeat(200);
        let mut id = 0u64;
        loop {
            let mut chunk = String::new();
            for _ in 0..100 {
                id += 1;
                chunk.push_str(&format!("{{\"type\":\"RECORD\",\"stream\":\"t\",\"record\":{{\"id\":{id},\"pad\":\"{pad}\"}}}}\n"));
            }
            chunk.push_str(&format!(
                "{{\"type\":\"STATE\",\"value\":{{\"upto\":{id}}}}}\n"
            ));
            if stdin
                .write_all(chunk.as_bytes())
                .and_then(|()| stdin.flush())
                .is_err()
            {
                return id;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL, while the writer is still writing
    child.wait().unwrap();
    let written = writer.join().unwrap();
    let echoed = reader.join().unwrap();
    assert!(!echoed.is_empty(), "no state was echoed before the kill");
    let committed: u64 = scalar(&format!("SELECT count(*) FROM \"{s}\".t"))
        .unwrap()
        .parse()
        .unwrap();
    let max_contiguous: u64 = scalar(&format!(
        "SELECT coalesce(min(id) - 1, (SELECT max(id) FROM \"{s}\".t)) FROM generate_series(1, (SELECT coalesce(max(id), 0) FROM \"{s}\".t)) id WHERE id NOT IN (SELECT id FROM \"{s}\".t)"
    ))
    .map_or(0, |v| v.parse().unwrap());
    for line in &echoed {
        let upto = serde_json::from_str::<serde_json::Value>(line).unwrap()["upto"]
            .as_u64()
            .unwrap();
        assert!(
            upto <= max_contiguous,
            "state upto {upto} echoed but only ids 1..={max_contiguous} committed ({committed} rows)"
        );
    }
    assert!(
        committed < written,
        "all {written} rows were committed before the kill; the test proves nothing"
    );
    let _ = sql("SELECT 1");
}

#[test]
fn nul_policy_reject_fails_and_replace_loads() {
    let input = [
        r#"{"type":"SCHEMA","stream":"t","schema":{"properties":{"id":{"type":"integer"},"s":{"type":"string"},"j":{"type":"object"}}},"key_properties":["id"]}"#,
        r#"{"type":"RECORD","stream":"t","record":{"id":1,"s":"a\u0000b","j":{"k":"x\u0000y"}}}"#,
    ]
    .join("\n");
    let s = fresh_schema("nul");
    let out = load(&s, json!({"nul_character_policy": "reject"}), &input);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("column `s`") && err.contains("NUL"), "{err}");
    let out = load(&s, json!({}), &input);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = sql(&format!("SELECT s, j->>'k' FROM \"{s}\".t"));
    assert_eq!(
        row[0],
        vec![Some("a\u{FFFD}b".into()), Some("x\u{FFFD}y".into())]
    );
}

#[test]
fn a_number_beyond_numeric_range_names_its_column() {
    let s = fresh_schema("huge");
    let input = [
        r#"{"type":"SCHEMA","stream":"t","schema":{"properties":{"id":{"type":"integer"},"x":{"type":"number"}}},"key_properties":["id"]}"#,
        r#"{"type":"RECORD","stream":"t","record":{"id":7,"x":1e200000}}"#,
    ]
    .join("\n");
    let out = load(&s, json!({}), &input);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2")
            && err.contains("column `x`")
            && err.contains("key {id=7}")
            && err.contains("out of range"),
        "{err}"
    );
}

/// With retries off (`max_retries` 0), the server dropping the target's connections mid-run
/// makes the target exit 1 with a message naming the stream, and no echoed state runs ahead of
/// the committed rows. (With retries, see `resilience`.)
#[test]
fn a_dropped_connection_fails_cleanly() {
    // A database of its own, so terminating its connections touches no other test.
    let s = fresh_schema("drop");
    let db = s.clone();
    sql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
    sql(&format!("CREATE DATABASE \"{db}\""));
    let (_dir, cfg) = config(
        &s,
        json!({"database": db, "batch_size_rows": 200, "max_batch_age_seconds": 0.05,
            "max_retries": 0}),
    );
    let mut child = target(&cfg)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let writer = std::thread::spawn(move || {
        let header = r#"{"type":"SCHEMA","stream":"t","schema":{"properties":{"id":{"type":"integer"}}},"key_properties":["id"]}"#;
        let _ = writeln!(stdin, "{header}");
        let mut id = 0u64;
        loop {
            let mut chunk = String::new();
            for _ in 0..50 {
                id += 1;
                chunk.push_str(&format!(
                    "{{\"type\":\"RECORD\",\"stream\":\"t\",\"record\":{{\"id\":{id}}}}}\n"
                ));
            }
            chunk.push_str(&format!(
                "{{\"type\":\"STATE\",\"value\":{{\"upto\":{id}}}}}\n"
            ));
            if stdin
                .write_all(chunk.as_bytes())
                .and_then(|()| stdin.flush())
                .is_err()
                || id > 2_000_000
            {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    std::thread::sleep(std::time::Duration::from_millis(800));
    let killed = sql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' AND pid <> pg_backend_pid()"
    ));
    assert_ne!(
        killed[0][0].as_deref(),
        Some("0"),
        "no connection of the target was found"
    );
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let echoed = reader.join().unwrap();
    let err = errors.join().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("stream `t`"), "{err}");
    let committed: u64 = crate::scalar_in(&db, &format!("SELECT count(*) FROM \"{s}\".t"))
        .unwrap()
        .parse()
        .unwrap();
    for line in &echoed {
        let upto = serde_json::from_str::<serde_json::Value>(line).unwrap()["upto"]
            .as_u64()
            .unwrap();
        assert!(
            upto <= committed,
            "state upto {upto} echoed with {committed} rows committed"
        );
    }
    sql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
}
