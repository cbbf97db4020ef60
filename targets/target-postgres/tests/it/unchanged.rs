//! A keyed row is left as it is when a record brings the values it already has
//! (`skip_unchanged_rows`, on by default): re-syncing unchanged data writes no new row
//! versions, and the `_sdc_*` columns tell the load that last changed the row.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::{fresh_schema, load, ok, sql, stream};

fn schema_msg() -> Value {
    json!({"type": "SCHEMA", "stream": "t", "key_properties": ["id"], "schema": {"type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": ["null", "string"]},
            "doc": {"type": ["null", "object"]}, "p": {"type": ["null", "string"]},
            "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"}}}})
}

fn rec(id: u32, name: &str, doc: Value, extracted: &str) -> Value {
    json!({"type": "RECORD", "stream": "t", "time_extracted": extracted,
        "record": {"id": id, "name": name, "doc": doc, "p": "(1,2)"}})
}

/// Every row's transaction id (`xmin`): it changes exactly when the row is rewritten.
fn versions(s: &str) -> BTreeMap<u32, String> {
    sql(&format!("SELECT id, xmin::text FROM \"{s}\".t"))
        .into_iter()
        .map(|r| {
            (
                r[0].as_deref().unwrap().parse().unwrap(),
                r[1].clone().unwrap(),
            )
        })
        .collect()
}

fn records(extracted: &str, changed: impl Fn(u32) -> (String, Value)) -> Vec<Value> {
    let mut msgs = vec![schema_msg()];
    for id in 1..=50 {
        let (name, doc) = changed(id);
        msgs.push(rec(id, &name, doc, extracted));
    }
    msgs.push(json!({"type": "STATE", "value": {"at": extracted}}));
    msgs
}

fn base(id: u32) -> (String, Value) {
    (format!("n{id}"), json!({"a": id, "b": [1, 2]}))
}

fn run(s: &str, extra: Value, msgs: &[Value]) {
    let states = ok(&load(s, extra, &stream(msgs)));
    assert_eq!(states.len(), 1);
}

fn check_unchanged_rows_kept(s: &str, extra: Value) {
    let first = "2026-01-01T00:00:00Z";
    let second = "2026-02-01T00:00:00Z";
    run(s, extra.clone(), &records(first, base));
    let before = versions(s);
    assert_eq!(before.len(), 50);

    // Again, extracted later: id 5 has a new name, id 6 the same document with its members in
    // another order (equal as a document), id 7 a changed document; id 51 is new.
    let mut msgs = records(second, |id| match id {
        5 => ("renamed".into(), base(5).1),
        6 => ("n6".into(), json!({"b": [1, 2], "a": 6})),
        7 => ("n7".into(), json!({"a": 7, "b": [2, 1]})),
        _ => base(id),
    });
    msgs.insert(51, rec(51, "n51", json!({}), second));
    run(s, extra, &msgs);
    let after = versions(s);
    assert_eq!(after.len(), 51);
    let rewritten: Vec<u32> = before
        .iter()
        .filter(|(id, x)| after[id] != **x)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(rewritten, vec![5, 7], "only the changed rows are rewritten");
    let rows = sql(&format!(
        "SELECT id, name, doc::text, _sdc_extracted_at = '{second}' FROM \"{s}\".t WHERE id IN (1, 5, 6, 7, 51) ORDER BY id"
    ));
    let row = |i: usize| -> Vec<&str> { rows[i].iter().map(|v| v.as_deref().unwrap()).collect() };
    assert_eq!(row(0)[1..], ["n1", r#"{"a": 1, "b": [1, 2]}"#, "f"]);
    assert_eq!(row(1)[1..], ["renamed", r#"{"a": 5, "b": [1, 2]}"#, "t"]);
    assert_eq!(row(2)[3], "f", "an equal document is no change");
    assert_eq!(row(3)[1..], ["n7", r#"{"a": 7, "b": [2, 1]}"#, "t"]);
    assert_eq!(row(4)[3], "t");
}

#[test]
fn only_rows_whose_values_change_are_rewritten() {
    let s = fresh_schema("unchanged");
    check_unchanged_rows_kept(&s, json!({}));
}

#[test]
fn unchanged_rows_are_found_over_several_connections_too() {
    let s = fresh_schema("unchanged_par");
    check_unchanged_rows_kept(&s, json!({"stream_connections": 3}));
}

#[test]
fn columns_without_equality_are_compared_as_text() {
    // A table the user made, with types that have no `=` (json, point): still merged, and
    // unchanged rows still left alone.
    let s = fresh_schema("unchanged_json");
    sql(&format!(
        "CREATE SCHEMA \"{s}\"; CREATE TABLE \"{s}\".t (id bigint PRIMARY KEY, name text, doc json, p point)"
    ));
    check_unchanged_rows_kept_json(&s);
}

fn check_unchanged_rows_kept_json(s: &str) {
    run(s, json!({}), &records("2026-01-01T00:00:00Z", base));
    let before = versions(s);
    let msgs = records("2026-02-01T00:00:00Z", |id| match id {
        5 => ("renamed".into(), base(5).1),
        _ => base(id),
    });
    run(s, json!({}), &msgs);
    let after = versions(s);
    let rewritten: Vec<u32> = before
        .iter()
        .filter(|(id, x)| after[id] != **x)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(rewritten, vec![5]);
}

#[test]
fn a_delete_is_a_change_a_new_table_version_alone_is_not() {
    let s = fresh_schema("unchanged_version");
    let at = "2026-01-01T00:00:00Z";
    let with = |version: i64, deleted: Option<&str>| -> Vec<Value> {
        let mut msgs = vec![schema_msg()];
        for id in 1..=3 {
            let mut r = rec(id, &format!("n{id}"), json!({}), at);
            r["version"] = json!(version);
            if id == 2
                && let Some(d) = deleted
            {
                r["record"]["_sdc_deleted_at"] = json!(d);
            }
            msgs.push(r);
        }
        msgs.push(json!({"type": "STATE", "value": {"v": version}}));
        msgs
    };
    run(&s, json!({}), &with(1, None));
    let v1 = versions(&s);
    run(&s, json!({}), &with(1, Some("2026-01-02T00:00:00Z")));
    let v2 = versions(&s);
    assert_eq!(
        v1.iter().filter(|(id, x)| v2[id] != **x).count(),
        1,
        "the deleted row is rewritten"
    );
    // A new table version with the same values rewrites nothing: the keys are recorded as
    // sent by version 2 instead (tests/it/versions.rs has the ACTIVATE_VERSION that follows).
    run(&s, json!({}), &with(2, Some("2026-01-02T00:00:00Z")));
    let v3 = versions(&s);
    assert_eq!(v2, v3, "a new table version alone rewrites no row");
    assert_eq!(
        sql(&format!(
            "SELECT count(*) FROM \"{s}\"._singer_sent_t WHERE _sdc_table_version = 2"
        ))[0][0]
            .as_deref(),
        Some("3")
    );
}

#[test]
fn turned_off_every_row_is_rewritten() {
    let s = fresh_schema("unchanged_off");
    let extra = json!({"skip_unchanged_rows": false});
    run(&s, extra.clone(), &records("2026-01-01T00:00:00Z", base));
    let before = versions(&s);
    run(&s, extra, &records("2026-02-01T00:00:00Z", base));
    let after = versions(&s);
    assert!(before.iter().all(|(id, x)| after[id] != *x));
}
