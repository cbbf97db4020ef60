//! Retriable database errors: connections killed by the server or cut by the network are
//! reopened and the work retried, with no row lost or loaded twice and no state echoed early;
//! a COMMIT whose answer was lost is looked up, not replayed blindly; retries are bounded.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::live::Running;
use crate::proxy::{Cut, Fate, Proxy};
use crate::{config, fresh_schema, ok, run_with_stdin, scalar, scalar_in, sql, sql_in, target};

fn schema_msg(stream: &str, keys: &[&str], extra: bool) -> String {
    let mut props = json!({"id": {"type": "integer"}, "v": {"type": "string"}});
    if extra {
        props["w"] = json!({"type": "string"});
    }
    json!({"type": "SCHEMA", "stream": stream, "key_properties": keys,
        "schema": {"type": "object", "properties": props}})
    .to_string()
        + "\n"
}

fn record(stream: &str, id: u64, extra: bool) -> String {
    let mut r = json!({"id": id, "v": format!("v{id}")});
    if extra {
        r["w"] = json!(format!("w{id}"));
    }
    json!({"type": "RECORD", "stream": stream, "record": r}).to_string() + "\n"
}

fn state(n: u64) -> String {
    json!({"type": "STATE", "value": {"n": n}}).to_string() + "\n"
}

/// Count, distinct ids, smallest and largest id, whether every `v` matches its id.
fn summary(db: &str, table: &str) -> Vec<Option<String>> {
    sql_in(
        db,
        &format!(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), bool_and(v = 'v' || id) FROM {table}"
        ),
    )
    .remove(0)
}

fn expect_rows(n: u64) -> Vec<Option<String>> {
    vec![
        Some(n.to_string()),
        Some(n.to_string()),
        Some("1".into()),
        Some(n.to_string()),
        Some("t".into()),
    ]
}

/// While a keyed and an append-only stream load in many batches, with a schema change half
/// way, another session terminates every connection of the target again and again. The load
/// completes with every row exactly once, and each state, checked the moment it is echoed, is
/// covered by committed rows.
#[test]
fn killed_connections_are_reopened_and_no_row_is_lost_or_doubled() {
    let db = fresh_schema("kills");
    sql(&format!("DROP DATABASE IF EXISTS \"{db}\""));
    sql(&format!("CREATE DATABASE \"{db}\" TEMPLATE template0"));
    let (_dir, cfg) = config(
        "s",
        json!({"database": db, "batch_size_rows": 250, "max_batch_age_seconds": 0.05,
            "max_retries": 30, "retry_backoff_seconds": 0.02}),
    );
    const N: u64 = 12_000;
    let started = Arc::new(AtomicBool::new(false));
    let early: Arc<Mutex<Vec<String>>> = Arc::default();
    let on_state = {
        let (db, started, early) = (db.clone(), Arc::clone(&started), Arc::clone(&early));
        move |s: &Value| {
            let n = s["n"].as_u64().unwrap();
            let counts = sql_in(
                &db,
                &format!(
                    "SELECT (SELECT count(*) FROM s.k WHERE id <= {n}), (SELECT count(*) FROM s.a WHERE id <= {n})"
                ),
            );
            let want = Some(n.to_string());
            if counts[0] != [want.clone(), want] {
                early
                    .lock()
                    .unwrap()
                    .push(format!("state {n} echoed with {:?} rows", counts[0]));
            }
            started.store(true, Ordering::SeqCst);
        }
    };
    let mut cmd = target(&cfg);
    cmd.env("RUST_LOG", "info");
    let mut run = Running::spawn(cmd, on_state);
    // Terminates the target's sessions every 120 ms once the first state was echoed.
    let stop = Arc::new(AtomicBool::new(false));
    let kills = Arc::new(AtomicU64::new(0));
    let killer = {
        let (db, stop, kills, started) = (
            db.clone(),
            Arc::clone(&stop),
            Arc::clone(&kills),
            Arc::clone(&started),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if started.load(Ordering::SeqCst) {
                    let n = scalar(&format!(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE datname = '{db}' AND application_name = 'target-postgres'"
                    ));
                    kills.fetch_add(n.unwrap().parse().unwrap(), Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(120));
            }
        })
    };
    let mut input = schema_msg("k", &["id"], false) + &schema_msg("a", &[], false);
    for i in 1..=N {
        let extra = i > N / 2;
        if i == N / 2 + 1 {
            // A schema change (a new column on both tables) while the kills go on.
            input += &schema_msg("k", &["id"], true);
            input += &schema_msg("a", &[], true);
        }
        input += &record("k", i, extra);
        input += &record("a", i, extra);
        if i % 200 == 0 {
            input += &state(i);
            assert!(run.write(&input), "the target stopped reading");
            input.clear();
            std::thread::sleep(Duration::from_millis(15));
        }
    }
    run.close_stdin();
    let end = run.wait(Duration::from_secs(240));
    stop.store(true, Ordering::SeqCst);
    killer.join().unwrap();
    assert!(end.status.success(), "{}", end.stderr);
    assert_eq!(end.states.last().unwrap()["n"], N, "{}", end.stderr);
    let early = early.lock().unwrap();
    assert!(
        early.is_empty(),
        "states echoed before their rows committed: {early:?}"
    );
    let kills = kills.load(Ordering::SeqCst);
    let retries = end.stderr.matches("reconnecting and retrying").count();
    assert!(
        kills >= 3 && retries >= 1,
        "{kills} sessions killed, {retries} retries: the test proves nothing\n{}",
        end.stderr
    );
    for table in ["s.k", "s.a"] {
        assert_eq!(summary(&db, table), expect_rows(N), "{table}");
        let with_w = scalar_in(
            &db,
            &format!(
                "SELECT count(*) FROM {table} WHERE w = 'w' || id AND id > {}",
                N / 2
            ),
        );
        assert_eq!(with_w, Some((N / 2).to_string()), "{table}");
    }
    sql(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"));
}

/// Runs `input` through a proxy that cuts the connection at `cut`; returns the output.
fn through(proxy: &Proxy, schema: &str, extra: Value, input: &str) -> std::process::Output {
    let mut settings = json!({"port": proxy.port, "batch_size_rows": 100,
        "max_retries": 5, "retry_backoff_seconds": 0.05});
    if let (Value::Object(s), Value::Object(e)) = (&mut settings, extra) {
        s.extend(e);
    }
    let (_dir, cfg) = config(schema, settings);
    let mut cmd = target(&cfg);
    cmd.env("RUST_LOG", "info");
    run_with_stdin(cmd, input.as_bytes())
}

fn is_commit(sql: &str) -> bool {
    sql == "COMMIT"
}

/// An append-only stream (where a replay would duplicate rows) in batches of 100: the second
/// batch's COMMIT either reaches the server and commits while its answer is lost, or never
/// arrives (the server's session closed, or left open holding the transaction, which the
/// target then ends). The target learns which from the server and loads each row exactly once.
#[test]
fn a_commit_whose_answer_was_lost_is_looked_up_not_replayed_blindly() {
    for fate in [Fate::Delivered, Fate::Dropped, Fate::Stranded] {
        let deliver = fate == Fate::Delivered;
        let s = fresh_schema("lostcommit");
        let proxy = Proxy::start(Some(Cut {
            matches: is_commit,
            nth: 2,
            fate,
        }));
        let mut input = schema_msg("a", &[], false);
        for i in 1..=300 {
            input += &record("a", i, false);
            if i % 100 == 0 {
                input += &state(i);
            }
        }
        let out = through(&proxy, &s, json!({}), &input);
        let states = ok(&out);
        let log = String::from_utf8_lossy(&out.stderr);
        assert_eq!(proxy.fired(), 1, "{log}");
        assert_eq!(states.last().unwrap()["n"], 300, "{log}");
        assert!(
            log.contains(&format!("committed={deliver}")),
            "{fate:?}: {log}"
        );
        if fate == Fate::Stranded {
            assert!(
                log.contains("still held the transaction; ended it"),
                "{log}"
            );
        }
        assert_eq!(
            summary(&crate::server().database, &format!("\"{s}\".a")),
            expect_rows(300),
            "{fate:?}: {log}"
        );
    }
}

/// A batch of 2 MB loads over two connections, each shard's transaction committing in turn;
/// the second shard's COMMIT is cut (committed with its answer lost, or never arrived). Only
/// a shard that did not commit is loaded again: an append-only stream ends with every row
/// once.
#[test]
fn a_lost_shard_commit_reloads_only_the_shards_that_did_not_commit() {
    for fate in [Fate::Delivered, Fate::Dropped] {
        let deliver = fate == Fate::Delivered;
        let s = fresh_schema("lostshard");
        let proxy = Proxy::start(Some(Cut {
            matches: is_commit,
            nth: 2,
            fate,
        }));
        let pad = "p".repeat(300);
        let mut input = json!({"type": "SCHEMA", "stream": "a", "key_properties": [],
            "schema": {"type": "object", "properties": {"id": {"type": "integer"},
            "v": {"type": "string"}, "pad": {"type": "string"}}}})
        .to_string()
            + "\n";
        for i in 1..=10_000u64 {
            input += &(json!({"type": "RECORD", "stream": "a",
                "record": {"id": i, "v": format!("v{i}"), "pad": pad}})
            .to_string()
                + "\n");
            if i % 5000 == 0 {
                input += &state(i);
            }
        }
        let out = through(
            &proxy,
            &s,
            json!({"stream_connections": 2, "batch_size_rows": 5000}),
            &input,
        );
        let states = ok(&out);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains("loading over 2 connections"), "{log}");
        assert_eq!(proxy.fired(), 1, "{log}");
        assert!(
            log.contains(&format!("committed={deliver}")),
            "deliver={deliver}: {log}"
        );
        assert_eq!(states.last().unwrap()["n"], 10_000, "{log}");
        assert_eq!(
            summary(&crate::server().database, &format!("\"{s}\".a")),
            expect_rows(10_000),
            "deliver={deliver}: {log}"
        );
    }
}

/// A batch whose data widened a column (`bigint` to `numeric`, inside the batch's transaction)
/// loses its COMMIT before the server saw it: the widening rolled back with it, and the
/// replay, planned from the table as it really is, widens again.
#[test]
fn a_widening_lost_with_its_batch_is_made_again() {
    let s = fresh_schema("lostwiden");
    let proxy = Proxy::start(Some(Cut {
        matches: is_commit,
        nth: 2,
        fate: Fate::Dropped,
    }));
    let mut input = json!({"type": "SCHEMA", "stream": "a", "key_properties": [],
        "schema": {"type": "object", "properties": {"id": {"type": "integer"}, "n": {"type": "integer"}}}})
    .to_string()
        + "\n";
    for i in 1..=200u64 {
        let n = if i == 150 {
            "100000000000000000000".to_string()
        } else {
            i.to_string()
        };
        input += &format!(
            "{{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":{{\"id\":{i},\"n\":{n}}}}}\n"
        );
        if i % 100 == 0 {
            input += &state(i);
        }
    }
    let out = through(&proxy, &s, json!({}), &input);
    let states = ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(proxy.fired(), 1, "{log}");
    assert_eq!(states.last().unwrap()["n"], 200, "{log}");
    assert_eq!(
        sql(&format!(
            "SELECT count(*), count(DISTINCT id), max(n)::text, pg_typeof(max(n))::text FROM \"{s}\".a"
        ))[0],
        [
            Some("200".into()),
            Some("200".into()),
            Some("100000000000000000000".into()),
            Some("numeric".into())
        ],
        "{log}"
    );
}

/// A schema change (new key properties: the primary key is dropped and added again) whose
/// ADD PRIMARY KEY ran on the server while its answer was lost: the retry plans the change
/// again from the table's real definition and the load goes on.
#[test]
fn a_schema_change_cut_after_it_ran_is_planned_again() {
    let s = fresh_schema("lostddl");
    let proxy = Proxy::start(Some(Cut {
        matches: |sql| sql.contains("ADD PRIMARY KEY"),
        nth: 1,
        fate: Fate::Delivered,
    }));
    let schema = |keys: &[&str]| {
        json!({"type": "SCHEMA", "stream": "t", "key_properties": keys,
            "schema": {"type": "object", "properties": {"id": {"type": "integer"},
            "k2": {"type": "integer"}, "v": {"type": "string"}}}})
        .to_string()
            + "\n"
    };
    let mut input = schema(&["id"]);
    for (k2, keys) in [(0, vec!["id"]), (1, vec!["id", "k2"])] {
        if k2 == 1 {
            input += &schema(&keys);
        }
        for id in 1..=50 {
            input += &(json!({"type": "RECORD", "stream": "t",
                "record": {"id": id, "k2": k2, "v": format!("v{id}")}})
            .to_string()
                + "\n");
        }
        input += &state(k2 + 1);
    }
    let out = through(&proxy, &s, json!({}), &input);
    let states = ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(proxy.fired(), 1, "{log}");
    assert_eq!(states.last().unwrap()["n"], 2, "{log}");
    assert_eq!(
        scalar(&format!("SELECT count(*) FROM \"{s}\".t")),
        Some("100".into())
    );
    let pk = scalar(&format!(
        "SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = '\"{s}\".t'::regclass AND i.indisprimary"
    ));
    assert_eq!(pk.as_deref(), Some("id,k2"), "{log}");
}

/// ACTIVATE_VERSION's UPDATE runs while its answer is lost: it runs again (it is idempotent)
/// and only the rows of the older version are marked deleted.
#[test]
fn activate_version_is_retried() {
    let s = fresh_schema("lostactivate");
    let proxy = Proxy::start(Some(Cut {
        matches: |sql| sql.starts_with("UPDATE") && sql.contains("_sdc_deleted_at"),
        nth: 1,
        fate: Fate::Delivered,
    }));
    let mut input = schema_msg("t", &["id"], false);
    for (version, ids) in [(1, 1..=10u64), (2, 1..=5)] {
        for id in ids {
            input += &(json!({"type": "RECORD", "stream": "t", "version": version,
                "record": {"id": id, "v": format!("v{id}")}})
            .to_string()
                + "\n");
        }
        input += &(json!({"type": "ACTIVATE_VERSION", "stream": "t", "version": version})
            .to_string()
            + "\n");
        input += &state(version);
    }
    let out = through(&proxy, &s, json!({}), &input);
    let states = ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(proxy.fired(), 1, "{log}");
    assert_eq!(states.last().unwrap()["n"], 2, "{log}");
    assert_eq!(
        scalar(&format!(
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM \"{s}\".t WHERE _sdc_deleted_at IS NOT NULL"
        )),
        Some("6,7,8,9,10".into()),
        "{log}"
    );
}

/// The database goes away for good mid-run: the target retries `max_retries` times, each
/// logged, then exits 1 naming the stream, within a bounded time, with no state echoed past
/// the committed rows.
#[test]
fn an_unreachable_database_fails_after_bounded_retries() {
    let s = fresh_schema("unreachable");
    let proxy = Proxy::start(None);
    let (_dir, cfg) = config(
        &s,
        json!({"port": proxy.port, "batch_size_rows": 100, "max_batch_age_seconds": 0.05,
            "max_retries": 3, "retry_backoff_seconds": 0.1}),
    );
    let mut run = Running::spawn(target(&cfg), |_| {});
    let mut input = schema_msg("t", &[], false);
    for i in 1..=100 {
        input += &record("t", i, false);
    }
    input += &state(100);
    assert!(run.write(&input));
    let first = run.next_state(Duration::from_secs(60));
    assert_eq!(first, Some(json!({"n": 100})));
    proxy.go_down();
    let mut input = String::new();
    for i in 101..=200 {
        input += &record("t", i, false);
    }
    input += &state(200);
    run.write(&input);
    run.close_stdin();
    let end = run.wait(Duration::from_secs(60));
    assert_eq!(end.status.code(), Some(1), "{}", end.stderr);
    assert!(
        end.waited < Duration::from_secs(20),
        "took {:?}",
        end.waited
    );
    assert_eq!(end.states, [json!({"n": 100})]);
    assert_eq!(
        end.stderr.matches("reconnecting and retrying").count(),
        3,
        "{}",
        end.stderr
    );
    assert!(
        end.stderr.lines().any(|l| l.starts_with("CRITICAL")
            && l.contains("stream `t`")
            && l.contains("gave up after 3 retries")),
        "{}",
        end.stderr
    );
    assert_eq!(
        scalar(&format!("SELECT count(*) FROM \"{s}\".t")),
        Some("100".into())
    );
}

/// An error that no retry mends (here a CHECK constraint the rows break) fails at once with
/// the server's message, without a retry.
#[test]
fn a_data_error_is_not_retried() {
    let s = fresh_schema("noretry");
    sql(&format!(
        "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".t (id bigint CHECK (id < 5), v text)"
    ));
    let mut input = schema_msg("t", &[], false);
    for i in 1..=10 {
        input += &record("t", i, false);
    }
    let (_dir, cfg) = config(&s, json!({"max_retries": 5, "retry_backoff_seconds": 5}));
    let started = std::time::Instant::now();
    let out = run_with_stdin(target(&cfg), input.as_bytes());
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains("SQLSTATE 23514") && log.contains("stream `t`"),
        "{log}"
    );
    assert!(!log.contains("retrying"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
