use serde_json::json;

use crate::{fresh_schema, load, ok, scalar, sql, stream};

fn schema_msg(stream_name: &str, props: serde_json::Value, keys: &[&str]) -> serde_json::Value {
    json!({"type": "SCHEMA", "stream": stream_name, "schema": {"type": "object", "properties": props}, "key_properties": keys})
}

fn rec(stream_name: &str, r: serde_json::Value) -> serde_json::Value {
    json!({"type": "RECORD", "stream": stream_name, "record": r})
}

#[test]
fn every_type_lands_exactly() {
    let s = fresh_schema("types");
    let props = json!({
        "id": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64},
        "small": {"type": ["null", "integer"], "minimum": -32768, "maximum": 32767},
        "price": {"type": ["null", "number"], "multipleOf": 0.01},
        "ratio": {"type": ["null", "number"]},
        "flag": {"type": ["null", "boolean"]},
        "name": {"type": ["null", "string"], "maxLength": 20},
        "at": {"type": ["null", "string"], "format": "date-time"},
        "day": {"type": ["null", "string"], "format": "date"},
        "clock": {"type": ["null", "string"], "format": "time"},
        "uid": {"type": ["null", "string"], "format": "uuid"},
        "blob": {"type": ["null", "string"], "contentEncoding": "base64"},
        "hex": {"type": ["null", "string"], "contentEncoding": "base16"},
        "doc": {"type": ["null", "object"]},
        "tags": {"type": ["null", "array"], "items": {"type": "string"}},
        "any": {},
        "d65": {"type": ["null", "string"], "format": "x-singer.decimal", "x-sql-datatype": "numeric(65,30)"}
    });
    let line = r#"{"type":"RECORD","stream":"db-mixed","record":{"id":18446744073709551615,"small":-32768,"price":1234567890.12,"ratio":0.1428571428571428,"flag":true,"name":"Ünï \"q\" 🚀","at":"2024-03-01T12:34:56.123456+02:00","day":"2024-02-29","clock":"23:59:59.999999","uid":"123e4567-e89b-12d3-a456-426614174000","blob":"AAEC/w==","hex":"00ff10","doc":{"a":[1,2,{"b":null}],"n":1.50},"tags":["x","y"],"any":42,"d65":"12345678901234567890123456789012345.123456789012345678901234567890"},"time_extracted":"2024-03-01T00:00:00Z","version":7}"#;
    let input = stream(&[schema_msg("db-mixed", props, &["id"])]) + line + "\n";
    ok(&load(&s, json!({}), &input));
    let row = &sql(&format!(
        "SELECT id::text, pg_typeof(id)::text, small, price, ratio, flag, name, at, day, clock, uid, encode(blob,'hex'), encode(hex,'hex'), doc::text, tags::text, \"any\"::text, d65, _sdc_extracted_at, _sdc_table_version, _sdc_batched_at IS NOT NULL, _sdc_received_at IS NOT NULL, _sdc_sequence > 0 FROM \"{s}\".mixed"
    ))[0];
    let got: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
    assert_eq!(
        got,
        vec![
            "18446744073709551615",
            "numeric",
            "-32768",
            "1234567890.12",
            "0.1428571428571428",
            "t",
            "Ünï \"q\" 🚀",
            "2024-03-01 10:34:56.123456+00",
            "2024-02-29",
            "23:59:59.999999",
            "123e4567-e89b-12d3-a456-426614174000",
            "000102ff",
            "00ff10",
            r#"{"a": [1, 2, {"b": null}], "n": 1.50}"#,
            r#"["x", "y"]"#,
            "42",
            "12345678901234567890123456789012345.123456789012345678901234567890",
            "2024-03-01 00:00:00+00",
            "7",
            "t",
            "t",
            "t",
        ]
    );
    let types = sql(&format!(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = '{s}' AND table_name = 'mixed' AND column_name IN ('small','price','name','at','doc','d65') ORDER BY column_name"
    ));
    let types: Vec<String> = types
        .iter()
        .map(|r| format!("{}={}", r[0].as_deref().unwrap(), r[1].as_deref().unwrap()))
        .collect();
    assert_eq!(
        types,
        vec![
            "at=timestamp with time zone",
            "d65=numeric",
            "doc=jsonb",
            "name=character varying",
            "price=numeric",
            "small=smallint"
        ]
    );
}

#[test]
fn schema_evolution_widens_adds_and_never_loses_data() {
    let s = fresh_schema("evolve");
    let v1 = schema_msg(
        "t",
        json!({"id": {"type": "integer", "minimum": 0, "maximum": 100}, "code": {"type": "string", "maxLength": 3}, "flag": {"type": "boolean"}, "gone": {"type": "string"}}),
        &["id"],
    );
    let v2 = schema_msg(
        "t",
        json!({"id": {"type": "integer"}, "code": {"type": "string", "maxLength": 10}, "flag": {"type": "string", "format": "date"}, "extra": {"type": "number"}}),
        &["id"],
    );
    let input = stream(&[
        v1,
        rec(
            "t",
            json!({"id": 1, "code": "abc", "flag": true, "gone": "x"}),
        ),
        v2,
        rec(
            "t",
            json!({"id": 5000000000i64, "code": "abcdefghij", "flag": "2024-01-01", "extra": 1.5}),
        ),
    ]);
    ok(&load(&s, json!({"batch_size_rows": 1}), &input));
    let rows = sql(&format!(
        "SELECT id, code, flag::text, flag__date::text, extra::text, gone FROM \"{s}\".t ORDER BY id"
    ));
    assert_eq!(
        rows,
        vec![
            vec![
                Some("1".into()),
                Some("abc".into()),
                Some("true".into()),
                None,
                None,
                Some("x".into())
            ],
            vec![
                Some("5000000000".into()),
                Some("abcdefghij".into()),
                None,
                Some("2024-01-01".into()),
                Some("1.5".into()),
                None
            ],
        ]
    );
    assert_eq!(scalar(&format!("SELECT data_type FROM information_schema.columns WHERE table_schema='{s}' AND table_name='t' AND column_name='id'")).as_deref(), Some("bigint"));
}

#[test]
fn data_that_outgrows_a_column_widens_it() {
    let s = fresh_schema("grow");
    let input = stream(&[
        schema_msg(
            "t",
            json!({"id": {"type": "integer"}, "n": {"type": "string", "maxLength": 2}}),
            &[],
        ),
        rec("t", json!({"id": 1, "n": "ab"})),
        json!({"type": "RECORD", "stream": "t", "record": {"id": 2, "n": "abcdef"}}),
    ]) + "{\"type\":\"RECORD\",\"stream\":\"t\",\"record\":{\"id\":18446744073709551616,\"n\":null}}\n";
    ok(&load(&s, json!({}), &input));
    let rows = sql(&format!("SELECT id::text, n FROM \"{s}\".t ORDER BY t.id"));
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[2][0].as_deref(), Some("18446744073709551616"));
    assert_eq!(rows[1][1].as_deref(), Some("abcdef"));
}

#[test]
fn upserts_keep_the_last_record_and_append_without_keys() {
    let s = fresh_schema("upsert");
    let mut msgs = vec![
        schema_msg(
            "k",
            json!({"id": {"type": "integer"}, "v": {"type": "string"}}),
            &["id"],
        ),
        schema_msg(
            "a",
            json!({"id": {"type": "integer"}, "v": {"type": "string"}}),
            &[],
        ),
    ];
    for i in 0..10 {
        msgs.push(rec("k", json!({"id": i % 3, "v": format!("v{i}")})));
        msgs.push(rec("a", json!({"id": i % 3, "v": format!("v{i}")})));
    }
    for rows in [4, 100] {
        let input = stream(&msgs);
        ok(&load(&s, json!({"batch_size_rows": rows}), &input));
    }
    let keyed = sql(&format!("SELECT id, v FROM \"{s}\".k ORDER BY id"));
    assert_eq!(
        keyed,
        vec![
            vec![Some("0".into()), Some("v9".into())],
            vec![Some("1".into()), Some("v7".into())],
            vec![Some("2".into()), Some("v8".into())],
        ]
    );
    assert_eq!(
        scalar(&format!("SELECT count(*) FROM \"{s}\".a")).as_deref(),
        Some("20")
    );
}

#[test]
fn activate_version_retires_only_older_versions() {
    for hard in [false, true] {
        let s = fresh_schema("version");
        let av = |v: i64| json!({"type": "ACTIVATE_VERSION", "stream": "t", "version": v});
        let vrec = |id: i64, v: i64| json!({"type": "RECORD", "stream": "t", "record": {"id": id}, "version": v});
        let sch = schema_msg("t", json!({"id": {"type": "integer"}}), &["id"]);
        ok(&load(
            &s,
            json!({"hard_delete": hard}),
            &stream(&[
                sch.clone(),
                av(1),
                vrec(1, 1),
                vrec(2, 1),
                vrec(3, 1),
                av(1),
            ]),
        ));
        // Version 2 drops id 3; batches of one row so ACTIVATE_VERSION follows many commits.
        ok(&load(
            &s,
            json!({"hard_delete": hard, "batch_size_rows": 1}),
            &stream(&[sch, av(2), vrec(1, 2), vrec(2, 2), av(2)]),
        ));
        let rows = sql(&format!(
            "SELECT id, _sdc_table_version, _sdc_deleted_at IS NOT NULL FROM \"{s}\".t ORDER BY id"
        ));
        let got: Vec<Vec<Option<String>>> = rows;
        if hard {
            assert_eq!(got.len(), 2, "{got:?}");
        } else {
            assert_eq!(got.len(), 3);
            assert_eq!(
                got[2],
                vec![Some("3".into()), Some("1".into()), Some("t".into())]
            );
        }
        assert_eq!(got[0][2].as_deref(), Some("f"));
        // Sent again unchanged, id 2 keeps the version that last changed it (the side table
        // of sent keys spares it, tests/it/versions.rs).
        assert_eq!(got[1][1].as_deref(), Some("1"));
        assert_eq!(got[1][2].as_deref(), Some("f"));
    }
}

#[test]
fn an_activate_version_before_its_records_waits_for_them() {
    let s = fresh_schema("version_defer");
    let av = |v: i64| json!({"type": "ACTIVATE_VERSION", "stream": "t", "version": v});
    let vrec = |id: i64, v: i64| json!({"type": "RECORD", "stream": "t", "record": {"id": id}, "version": v});
    let sch = schema_msg("t", json!({"id": {"type": "integer"}}), &["id"]);
    let deleted = || {
        sql(&format!(
            "SELECT id FROM \"{s}\".t WHERE _sdc_deleted_at IS NOT NULL ORDER BY id"
        ))
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect::<Vec<_>>()
    };
    let records: Vec<_> = (1..=4).map(|id| vrec(id, 1)).collect();
    ok(&load(
        &s,
        json!({}),
        &stream(&[vec![sch.clone(), av(1)], records, vec![av(1)]].concat()),
    ));
    // A copy that starts (ACTIVATE_VERSION 2) and stops after two rows, with no closing
    // message: at the end of input the activation applies, as it would have at once.
    let cut = [sch.clone(), av(2), vrec(1, 2), vrec(2, 2)];
    let out = load(&s, json!({"batch_size_rows": 1}), &stream(&cut));
    ok(&out);
    assert_eq!(deleted(), ["3", "4"]);
    // A copy of an emptied table: the activation at the start and the one at the end.
    ok(&load(&s, json!({}), &stream(&[sch.clone(), av(3), av(3)])));
    assert_eq!(deleted(), ["1", "2", "3", "4"]);
    // Only a closing activation, after no records (a resumed copy with nothing left).
    ok(&load(
        &s,
        json!({"hard_delete": true}),
        &stream(&[sch, av(4)]),
    ));
    assert_eq!(
        scalar(&format!("SELECT count(*) FROM \"{s}\".t")).as_deref(),
        Some("0")
    );
}

#[test]
fn log_based_deletes_soft_and_hard() {
    for hard in [false, true] {
        let s = fresh_schema("deletes");
        let sch = schema_msg(
            "t",
            json!({"id": {"type": "integer"}, "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"}}),
            &["id"],
        );
        let input = stream(&[
            sch,
            rec("t", json!({"id": 1})),
            rec("t", json!({"id": 2})),
            rec(
                "t",
                json!({"id": 2, "_sdc_deleted_at": "2024-01-01T00:00:00Z"}),
            ),
        ]);
        ok(&load(&s, json!({"hard_delete": hard}), &input));
        let rows = sql(&format!(
            "SELECT id, _sdc_deleted_at FROM \"{s}\".t ORDER BY id"
        ));
        if hard {
            assert_eq!(rows, vec![vec![Some("1".into()), None]]);
        } else {
            assert_eq!(
                rows[1],
                vec![Some("2".into()), Some("2024-01-01 00:00:00+00".into())]
            );
        }
    }
}

#[test]
fn streams_route_to_schemas_and_long_names_stay_distinct() {
    let s = fresh_schema("route");
    let long_a = format!("{}_a", "c".repeat(70));
    let long_b = format!("{}_b", "c".repeat(70));
    let input = stream(&[
        schema_msg(
            "src-Orders",
            json!({"id": {"type": "integer"}, long_a.clone(): {"type": "string"}, long_b.clone(): {"type": "string"}}),
            &["id"],
        ),
        rec("src-Orders", json!({"id": 1, long_a: "a", long_b: "b"})),
    ]);
    let mapping = json!({"schema_mapping": {"src": {"target_schema": s.clone()}}, "default_target_schema": null});
    ok(&load(&s, mapping, &input));
    let cols = sql(&format!(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = '{s}' AND table_name = 'Orders' AND column_name LIKE 'ccc%'"
    ));
    assert_eq!(cols[0][0].as_deref(), Some("2"));
}
