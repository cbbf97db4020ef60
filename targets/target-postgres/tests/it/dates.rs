//! Dates and timestamps over PostgreSQL's whole range: BC, beyond 9999 and infinity, as a
//! PostgreSQL tap writes them (ISO 8601 expanded and astronomical years).

use serde_json::json;

use crate::{fresh_schema, load, ok, sql, stream};

/// (`date-time` value, `date` value, timestamptz text, date text, timestamp text)
const FORMS: [(&str, &str, &str, &str, &str); 8] = [
    (
        "2024-01-02T03:04:05.123456+00:00",
        "2024-01-02",
        "2024-01-02 03:04:05.123456+00",
        "2024-01-02",
        "2024-01-02 03:04:05.123456",
    ),
    (
        "+294276-12-31T23:59:59.999999+00:00",
        "+5874897-12-31",
        "294276-12-31 23:59:59.999999+00",
        "5874897-12-31",
        "294276-12-31 23:59:59.999999",
    ),
    (
        "-4713-11-24T00:00:00+00:00",
        "-4713-11-24",
        "4714-11-24 00:00:00+00 BC",
        "4714-11-24 BC",
        "4714-11-24 00:00:00 BC",
    ),
    (
        "-0043-03-15T12:30:00.5+00:00",
        "-0043-03-15",
        "0044-03-15 12:30:00.5+00 BC",
        "0044-03-15 BC",
        "0044-03-15 12:30:00.5 BC",
    ),
    (
        "0000-01-01T00:00:00+00:00",
        "0000-01-01",
        "0001-01-01 00:00:00+00 BC",
        "0001-01-01 BC",
        "0001-01-01 00:00:00 BC",
    ),
    (
        "-0004-02-29T23:59:59+00:00",
        "-0004-02-29",
        "0005-02-29 23:59:59+00 BC",
        "0005-02-29 BC",
        "0005-02-29 23:59:59 BC",
    ),
    ("infinity", "infinity", "infinity", "infinity", "infinity"),
    (
        "-infinity",
        "-infinity",
        "-infinity",
        "-infinity",
        "-infinity",
    ),
];

#[test]
fn bc_expanded_and_infinite_dates_load_exactly() {
    let s = fresh_schema("dates");
    let schema = json!({"type": "SCHEMA", "stream": "pg-days", "key_properties": ["id"], "schema": {
        "type": "object",
        "properties": {
            "id": {"type": "integer"},
            "at": {"type": ["null", "string"], "format": "date-time"},
            "day": {"type": ["null", "string"], "format": "date"},
            "wall": {"type": ["null", "string"], "format": "date-time", "x-sql-datatype": "timestamp"},
            "wall6": {"type": ["null", "string"], "format": "date-time", "x-sql-datatype": "timestamp(6) without time zone"}
        }
    }});
    let mut messages = vec![schema];
    for (id, (at, day, ..)) in FORMS.iter().enumerate() {
        messages.push(json!({"type": "RECORD", "stream": "pg-days", "record":
            {"id": id, "at": at, "day": day, "wall": at, "wall6": at}}));
    }
    messages.push(json!({"type": "STATE", "value": {"done": true}}));
    let input = stream(&messages);
    // The first load COPYs into the new table; the second merges every row again through
    // staging (and casts `timestamp(6)` from text), which must change nothing.
    for _ in 0..2 {
        let states = ok(&load(&s, json!({"validate_records": true}), &input));
        assert_eq!(states, vec![json!({"done": true})]);
        let rows = sql(&format!(
            "SELECT at::text, day::text, wall::text, wall6::text FROM \"{s}\".days ORDER BY id"
        ));
        let got: Vec<Vec<&str>> = rows
            .iter()
            .map(|r| r.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect())
            .collect();
        let want: Vec<Vec<&str>> = FORMS
            .iter()
            .map(|(_, _, tz, date, ts)| vec![*tz, *date, *ts, *ts])
            .collect();
        assert_eq!(got, want);
    }
    let types = sql(&format!(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = '{s}' AND table_name = 'days' AND column_name IN ('at', 'day', 'wall', 'wall6') ORDER BY column_name"
    ));
    let types: Vec<String> = types
        .iter()
        .map(|r| format!("{}={}", r[0].as_deref().unwrap(), r[1].as_deref().unwrap()))
        .collect();
    assert_eq!(
        types,
        vec![
            "at=timestamp with time zone",
            "day=date",
            "wall=timestamp without time zone",
            "wall6=timestamp without time zone",
        ]
    );
    // The binary infinities are PostgreSQL's own.
    let inf = sql(&format!(
        "SELECT isfinite(at), isfinite(day), at = 'infinity'::timestamptz, day = '-infinity'::date FROM \"{s}\".days WHERE id IN (6, 7) ORDER BY id"
    ));
    assert_eq!(
        inf,
        vec![
            vec![
                Some("f".into()),
                Some("f".into()),
                Some("t".into()),
                Some("f".into())
            ],
            vec![
                Some("f".into()),
                Some("f".into()),
                Some("f".into()),
                Some("t".into())
            ],
        ]
    );
}

#[test]
fn dates_beyond_postgres_range_are_clear_errors() {
    for (prop, value, why) in [
        (
            "at",
            "+294277-01-01T00:00:00+00:00",
            "date-time out of range",
        ),
        (
            "at",
            "-4713-11-23T23:59:59.999999+00:00",
            "date-time out of range",
        ),
        ("day", "+5874898-01-01", "date out of range"),
        ("day", "-4713-11-23", "date out of range"),
        ("day", "-0043-02-29", "invalid date"),
    ] {
        let s = fresh_schema("daterange");
        let input = stream(&[
            json!({"type": "SCHEMA", "stream": "t", "key_properties": ["id"], "schema": {"properties": {
                "id": {"type": "integer"},
                "at": {"type": ["null", "string"], "format": "date-time"},
                "day": {"type": ["null", "string"], "format": "date"}
            }}}),
            json!({"type": "RECORD", "stream": "t", "record": {"id": 1, prop: value}}),
            json!({"type": "STATE", "value": {"n": 1}}),
        ]);
        let out = load(&s, json!({}), &input);
        assert_eq!(out.status.code(), Some(1), "{value}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(why)
                && err.contains(&format!("column `{prop}`"))
                && err.contains("line 2"),
            "{value}: {err}"
        );
        assert!(out.stdout.is_empty(), "{value}");
    }
}
