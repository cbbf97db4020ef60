//! A FULL_TABLE pass that sends a new table version rewrites only the rows whose values changed
//! (`skip_unchanged_rows`): the keys it sent go to the side table `_singer_sent_<table>` in the
//! same transactions, so ACTIVATE_VERSION still retires exactly the rows the pass did not send,
//! also when the pass was cut by `kill -9` and resumed by another process.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use crate::live::Running;
use crate::{config, fresh_schema, load, ok, sql, stream, target};

fn schema_msg() -> Value {
    json!({"type": "SCHEMA", "stream": "t", "key_properties": ["id"], "schema": {"type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}}})
}

fn av(v: i64) -> Value {
    json!({"type": "ACTIVATE_VERSION", "stream": "t", "version": v})
}

fn rec(id: u32, name: &str, v: i64) -> Value {
    json!({"type": "RECORD", "stream": "t", "record": {"id": id, "name": name}, "version": v})
}

/// A pass of version `v` over `ids`, names from `name`, a state every 10 rows.
fn pass(v: i64, ids: impl Iterator<Item = u32>, name: impl Fn(u32) -> String) -> Vec<Value> {
    let mut msgs = Vec::new();
    for id in ids {
        msgs.push(rec(id, &name(id), v));
        if id % 10 == 0 {
            msgs.push(json!({"type": "STATE", "value": {"v": v, "last": id}}));
        }
    }
    msgs
}

fn plain(id: u32) -> String {
    format!("n{id}")
}

/// id → (name, table version, marked deleted, xmin).
fn rows(s: &str) -> BTreeMap<u32, (String, String, bool, String)> {
    sql(&format!(
        "SELECT id, name, _sdc_table_version, _sdc_deleted_at IS NOT NULL, xmin::text FROM \"{s}\".t"
    ))
    .into_iter()
    .map(|r| {
        let f = |i: usize| r[i].clone().unwrap_or_default();
        (f(0).parse().unwrap(), (f(1), f(2), f(3) == "t", f(4)))
    })
    .collect()
}

/// The side table's rows: (version, id or None for a marker).
fn sent(s: &str) -> Vec<(String, Option<String>)> {
    sql(&format!(
        "SELECT _sdc_table_version, id FROM \"{s}\".\"_singer_sent_t\" ORDER BY 1, 2"
    ))
    .into_iter()
    .map(|r| (r[0].clone().unwrap(), r[1].clone()))
    .collect()
}

/// Loads pass 1 of ids 1..=60, activated.
fn first_pass(s: &str, extra: &Value) {
    let mut msgs = vec![schema_msg(), av(1)];
    msgs.extend(pass(1, 1..=60, plain));
    msgs.push(av(1));
    ok(&load(s, extra.clone(), &stream(&msgs)));
}

#[test]
fn a_new_version_rewrites_only_changed_rows_and_retires_the_unsent() {
    for (hard, extra) in [
        (false, json!({"batch_size_rows": 7})),
        (true, json!({"batch_size_rows": 7, "hard_delete": true})),
        (false, json!({"stream_connections": 3})),
    ] {
        let s = fresh_schema("versions");
        first_pass(&s, &extra);
        let before = rows(&s);
        assert_eq!(before.len(), 60);
        assert_eq!(
            sent(&s),
            [("1".to_string(), None)],
            "the marker of version 1"
        );
        // Pass 2: ids 1..=58 (59 and 60 are gone at the source), id 5 renamed, id 61 new.
        let mut msgs = vec![schema_msg(), av(2)];
        msgs.extend(pass(2, (1..=58).chain(61..=61), |id| match id {
            5 => "renamed".into(),
            _ => plain(id),
        }));
        msgs.push(av(2));
        ok(&load(&s, extra.clone(), &stream(&msgs)));
        let after = rows(&s);
        for id in 1..=58 {
            let (name, v, deleted, xmin) = &after[&id];
            assert!(!deleted, "id {id} was sent by pass 2 ({extra})");
            if id == 5 {
                assert_eq!((name.as_str(), v.as_str()), ("renamed", "2"));
                assert_ne!(*xmin, before[&id].3);
            } else {
                assert_eq!(v, "1", "id {id} is unchanged: it keeps its version");
                assert_eq!(*xmin, before[&id].3, "id {id} was rewritten ({extra})");
            }
        }
        assert_eq!(after[&61].1, "2");
        if hard {
            assert!(!after.contains_key(&59) && !after.contains_key(&60));
        } else {
            assert!(
                after[&59].2 && after[&60].2,
                "ids 59, 60 are marked deleted"
            );
        }
        assert_eq!(
            sent(&s),
            [("2".to_string(), None)],
            "only the marker is left"
        );

        // Pass 3 sends id 59 again: a soft-deleted row comes back, rewritten.
        if !hard {
            let mut msgs = vec![schema_msg()];
            msgs.extend(pass(3, (1..=59).chain(61..=61), |id| match id {
                5 => "renamed".into(),
                _ => plain(id),
            }));
            msgs.push(av(3));
            ok(&load(&s, extra.clone(), &stream(&msgs)));
            let third = rows(&s);
            assert!(!third[&59].2, "id 59 is back");
            assert_eq!(third[&59].1, "3");
            assert!(third[&60].2);
            assert_eq!(third[&1].1, "1");
            assert!(!third[&1].2);
        }
    }
}

/// A pass cut by `kill -9` after some of its states were echoed, then resumed from the last of
/// them by a new process: the rows the first process committed without rewriting them are
/// still known as sent, so ACTIVATE_VERSION retires only the row that is gone.
#[test]
fn a_pass_resumed_after_kill_9_retires_only_the_unsent_rows() {
    let s = fresh_schema("versions_kill");
    let extra = json!({"batch_size_rows": 10});
    first_pass(&s, &extra);
    let before = rows(&s);
    let (_dir, cfg) = config(&s, extra.clone());
    let mut run = Running::spawn(target(&cfg), |_| {});
    let mut msgs = vec![schema_msg(), av(2)];
    msgs.extend(pass(2, 1..=35, plain));
    assert!(run.write(&stream(&msgs)));
    let mut last = None;
    while let Some(state) = run.next_state(Duration::from_secs(30)) {
        let done = state["last"] == json!(30);
        last = Some(state);
        if done {
            break;
        }
    }
    assert_eq!(last, Some(json!({"v": 2, "last": 30})));
    run.signal("KILL");
    let _ = run.wait(Duration::from_secs(30));
    let committed = sent(&s);
    assert!(
        committed.iter().filter(|(_, id)| id.is_some()).count() >= 30,
        "the first 30 keys were committed with their rows: {committed:?}"
    );

    // The tap resumes after id 30; id 60 no longer exists.
    let mut msgs = vec![schema_msg()];
    msgs.extend(pass(2, 31..=59, plain));
    msgs.push(av(2));
    ok(&load(&s, extra, &stream(&msgs)));
    let after = rows(&s);
    for id in 1..=59 {
        assert!(!after[&id].2, "id {id} was sent by pass 2");
        assert_eq!(after[&id].3, before[&id].3, "id {id} was rewritten");
    }
    assert!(after[&60].2, "id 60 is marked deleted");
    assert_eq!(sent(&s), [("2".to_string(), None)]);
}

/// After its pass is activated, a version keeps coming with a LOG_BASED stream's changes: they
/// record no keys (the side table keeps only its marker) and stamp the rows they change.
#[test]
fn changes_after_the_activation_record_nothing() {
    let s = fresh_schema("versions_cdc");
    first_pass(&s, &json!({}));
    for round in 0..3 {
        let mut msgs = vec![schema_msg()];
        msgs.extend(pass(1, 1..=20, |id| format!("c{round}-{id}")));
        ok(&load(&s, json!({}), &stream(&msgs)));
    }
    assert_eq!(sent(&s), [("1".to_string(), None)]);
    assert_eq!(rows(&s)[&20].0, "c2-20");
}

/// A table whose rows of the pass in progress were loaded before the side table existed (by an
/// older target, or with `skip_unchanged_rows` off) is stamped row by row as before: no side
/// table is made for that version, and ACTIVATE_VERSION goes by the version alone.
#[test]
fn a_pass_begun_without_the_side_table_stamps_every_row() {
    let s = fresh_schema("versions_old");
    let off = json!({"skip_unchanged_rows": false});
    first_pass(&s, &off);
    let mut msgs = vec![schema_msg()];
    msgs.extend(pass(2, 1..=30, plain));
    ok(&load(&s, off, &stream(&msgs)));
    let mut msgs = vec![schema_msg()];
    msgs.extend(pass(2, 31..=59, plain));
    msgs.push(av(2));
    ok(&load(&s, json!({}), &stream(&msgs)));
    let after = rows(&s);
    assert!((1..=59).all(|id| after[&id].1 == "2" && !after[&id].2));
    assert!(after[&60].2);
    let side = sql(&format!(
        "SELECT to_regclass('\"{s}\".\"_singer_sent_t\"')::text"
    ));
    assert_eq!(side[0][0], None, "no side table was made");
}

/// A role that owns its table but may not create tables in the schema: no side table, every
/// row the pass sends is stamped as before (with a warning), and ACTIVATE_VERSION goes by the
/// version alone.
#[test]
fn a_role_that_cannot_create_tables_stamps_every_row() {
    let s = fresh_schema("versions_role");
    let role = format!("{s}_w");
    sql(&format!(
        "CREATE SCHEMA \"{s}\"; CREATE ROLE \"{role}\" LOGIN; \
         GRANT USAGE ON SCHEMA \"{s}\" TO \"{role}\"; \
         CREATE TABLE \"{s}\".t (id bigint PRIMARY KEY, name text); \
         ALTER TABLE \"{s}\".t OWNER TO \"{role}\""
    ));
    let extra = json!({"user": role});
    first_pass(&s, &extra);
    let mut msgs = vec![schema_msg(), av(2)];
    msgs.extend(pass(2, 1..=58, plain));
    msgs.push(av(2));
    let out = load(&s, extra, &stream(&msgs));
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot create the table of the keys"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = rows(&s);
    assert!((1..=58).all(|id| after[&id].1 == "2" && !after[&id].2));
    assert!(after[&59].2 && after[&60].2);
    let side = sql(&format!(
        "SELECT to_regclass('\"{s}\".\"_singer_sent_t\"')::text"
    ));
    assert_eq!(side[0][0], None);
    sql(&format!(
        "DROP SCHEMA \"{s}\" CASCADE; DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""
    ));
}
