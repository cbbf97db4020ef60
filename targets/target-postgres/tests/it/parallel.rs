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

/// Unset `stream_connections`: keyed streams merge over 2 connections, but only as many
/// streams as the run's budget of 2 extra connections allows (here 2 of 3); the third, and
/// streams without a key, load on one.
#[test]
fn by_default_keyed_merges_share_a_budget_of_extra_connections() {
    let s = fresh_schema("parallel_auto");
    let names = ["k1", "k2", "k3"];
    let mut msgs: Vec<serde_json::Value> = names
        .iter()
        .map(|n| schema_msg(n, "integer", &["id"]))
        .collect();
    msgs.push(schema_msg("a", "integer", &[]));
    for round in 0..3 {
        for id in 0..6000u32 {
            for n in names {
                msgs.push(rec(n, json!(id), round));
            }
            msgs.push(rec("a", json!(id), round));
        }
        msgs.push(json!({"type": "STATE", "value": {"round": round}}));
    }
    let (_dir, cfg) = config(&s, json!({"batch_size_rows": 6000}));
    let mut cmd = target(&cfg);
    cmd.env("RUST_LOG", "info");
    let out = run_with_stdin(cmd, stream(&msgs).as_bytes());
    let states = ok(&out);
    assert_eq!(states.last().unwrap()["round"], 2);
    let log = String::from_utf8_lossy(&out.stderr);
    let parallel = log
        .lines()
        .filter(|l| l.contains("loading over 2 connections"))
        .count();
    // Round 0 COPYs into the empty tables, round 1 meets its keys there and merges on one
    // connection, round 2 merges over 2 where the budget allows.
    assert_eq!(parallel, 2, "{log}");
    assert!(
        !log.lines()
            .any(|l| l.contains("loading over") && l.ends_with("stream=a")),
        "{log}"
    );
    for n in names {
        assert_eq!(
            sql(&format!(
                "SELECT count(*), min(round), count(DISTINCT id) FROM \"{s}\".{n}"
            )),
            vec![vec![
                Some("6000".into()),
                Some("2".into()),
                Some("6000".into())
            ]]
        );
    }
    assert_eq!(
        scalar(&format!("SELECT count(*) FROM \"{s}\".a")).as_deref(),
        Some("18000")
    );
}

/// A part whose keys all hash apart merges without sorting; keys the server holds equal
/// though their text differs (jsonb members in another order) fall back to the sorted merge,
/// where the last record wins.
#[test]
fn keys_equal_only_to_the_server_still_merge_last_wins() {
    let s = fresh_schema("parallel_equal");
    let msgs = vec![
        json!({"type": "SCHEMA", "stream": "k", "key_properties": ["id"], "schema": {"type": "object",
            "properties": {"id": {"type": "object"}, "v": {"type": "integer"}}}}),
        json!({"type": "RECORD", "stream": "k", "record": {"id": {"a": 1, "b": 2}, "v": 1}}),
        json!({"type": "RECORD", "stream": "k", "record": {"id": {"c": 3}, "v": 1}}),
        json!({"type": "RECORD", "stream": "k", "record": {"id": {"b": 2, "a": 1}, "v": 2}}),
        json!({"type": "STATE", "value": {"at": 1}}),
    ];
    let input = stream(&msgs);
    for pass in 0..2 {
        let (_dir, cfg) = config(&s, json!({}));
        let mut cmd = target(&cfg);
        cmd.env("RUST_LOG", "debug");
        let out = run_with_stdin(cmd, input.as_bytes());
        assert_eq!(ok(&out).last().unwrap()["at"], 1, "pass {pass}");
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("merging it sorted"), "pass {pass}: {log}");
    }
    assert_eq!(
        sql(&format!("SELECT id::text, v FROM \"{s}\".k ORDER BY 1")),
        vec![
            vec![Some(r#"{"a": 1, "b": 2}"#.into()), Some("2".into())],
            vec![Some(r#"{"c": 3}"#.into()), Some("1".into())],
        ]
    );
}

/// `compress_wal` (default on) sets lz4 WAL compression on the target's sessions when the
/// role may (the tests connect as a superuser); off, the server's setting is left alone.
#[test]
fn wal_compression_is_set_only_when_asked() {
    let s = fresh_schema("parallel_wal");
    let input = stream(&[
        schema_msg("k", "integer", &["id"]),
        rec("k", json!(1), 1),
        json!({"type": "STATE", "value": {"at": 1}}),
    ]);
    for (extra, expected) in [(json!({}), true), (json!({"compress_wal": false}), false)] {
        let (_dir, cfg) = config(&s, extra);
        let mut cmd = target(&cfg);
        cmd.env("RUST_LOG", "debug");
        let out = run_with_stdin(cmd, input.as_bytes());
        ok(&out);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            log.contains("wal_compression = lz4 for this session"),
            expected,
            "{log}"
        );
    }
}
