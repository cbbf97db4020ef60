//! Large batches load over several connections (`stream_connections`), rows split by key.

use serde_json::json;

use crate::{config, fresh_schema, ok, run_with_stdin, scalar, sql, stream, target};

fn schema_msg(stream_name: &str, key_type: &str, keys: &[&str]) -> serde_json::Value {
    json!({"type": "SCHEMA", "stream": stream_name, "key_properties": keys, "schema": {"type": "object",
        "properties": {"id": {"type": key_type}, "round": {"type": "integer"}, "pad": {"type": "string"}}}})
}

/// Records big enough that a 6,000-row batch passes the 1 MiB parallel threshold.
fn rec(stream_name: &str, id: serde_json::Value, round: u32) -> serde_json::Value {
    json!({"type": "RECORD", "stream": stream_name, "record": {"id": id, "round": round, "pad": "p".repeat(200)}})
}

fn run(schema: &str, connections: usize, input: &str) -> std::process::Output {
    let (_dir, cfg) = config(
        schema,
        json!({"stream_connections": connections, "batch_size_rows": 6000}),
    );
    let mut cmd = target(&cfg);
    cmd.env("RUST_LOG", "info");
    run_with_stdin(cmd, input.as_bytes())
}

#[test]
fn every_key_keeps_its_last_change_across_shards_and_batches() {
    let s = fresh_schema("parallel");
    let mut msgs = vec![
        schema_msg("k", "number", &["id"]),
        schema_msg("a", "integer", &[]),
    ];
    // 3,000 keys changed in five rounds; within a batch and across batches. Round 3 writes
    // each key as `N.0`: the same numeric key, so it must land on the same shard.
    for round in 0..5 {
        for id in 0..3000u32 {
            let key = if round == 3 {
                format!("{id}.0")
            } else {
                id.to_string()
            };
            let key: serde_json::Value = serde_json::from_str(&key).unwrap();
            msgs.push(rec("k", key, round));
            msgs.push(rec("a", json!(id), round));
        }
        msgs.push(json!({"type": "STATE", "value": {"round": round}}));
    }
    let input = stream(&msgs);
    for pass in 0..2 {
        let out = run(&s, 4, &input);
        let states = ok(&out);
        assert_eq!(states.last().unwrap()["round"], 4, "pass {pass}");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("loading over 4 connections"), "{log}");
    }
    assert_eq!(
        sql(&format!(
            "SELECT count(*), min(round), max(round), count(DISTINCT id) FROM \"{s}\".k"
        )),
        vec![vec![
            Some("3000".into()),
            Some("4".into()),
            Some("4".into()),
            Some("3000".into())
        ]]
    );
    assert_eq!(
        scalar(&format!("SELECT count(*) FROM \"{s}\".a")).as_deref(),
        Some("30000")
    );
}

#[test]
fn a_failing_shard_rolls_back_every_shard_and_echoes_no_state() {
    let s = fresh_schema("parallel_fail");
    crate::sql(&format!(
        "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".k (id bigint PRIMARY KEY, round bigint, pad text CHECK (round <> 7 OR id <> 4321))"
    ));
    let mut msgs = vec![schema_msg("k", "integer", &["id"])];
    for id in 0..5000u32 {
        msgs.push(rec("k", json!(id), 1));
    }
    msgs.push(json!({"type": "STATE", "value": {"at": 1}}));
    for id in 0..5000u32 {
        msgs.push(rec("k", json!(id), if id == 4321 { 7 } else { 2 }));
    }
    msgs.push(json!({"type": "STATE", "value": {"at": 2}}));
    let out = run(&s, 2, &stream(&msgs));
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("stream `k`") && log.contains("check constraint"),
        "{log}"
    );
    assert!(log.contains("loading over 2 connections"), "{log}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("\"at\":1") && !stdout.contains("\"at\":2"),
        "{stdout}"
    );
    // Batch one (rows 0-5999) committed; batch two (ids 1000-4999 of round 2) failed on one
    // shard and left nothing on any.
    assert_eq!(
        sql(&format!(
            "SELECT count(*), count(*) FILTER (WHERE round = 2), max(id) FILTER (WHERE round = 2) FROM \"{s}\".k"
        )),
        vec![vec![
            Some("5000".into()),
            Some("1000".into()),
            Some("999".into())
        ]]
    );
}

#[test]
fn a_first_load_copies_on_one_connection_and_merges_go_parallel() {
    let s = fresh_schema("parallel_first");
    let mut msgs = vec![schema_msg("k", "integer", &["id"])];
    for id in 0..12_000u32 {
        msgs.push(rec("k", json!(id), 1));
    }
    msgs.push(json!({"type": "STATE", "value": {"at": 1}}));
    let input = stream(&msgs);
    // Into the empty table: two large batches COPYed straight in, on one connection.
    let out = run(&s, 2, &input);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(!log.contains("loading over"), "{log}");
    // Again into the full table: every row a merge, over both connections.
    let out = run(&s, 2, &input);
    ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("loading over 2 connections"), "{log}");
    assert_eq!(
        scalar(&format!("SELECT count(*) FROM \"{s}\".k")).as_deref(),
        Some("12000")
    );
}
