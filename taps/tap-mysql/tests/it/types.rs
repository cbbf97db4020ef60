//! Every MySQL type with its edge values, read exactly.

use serde_json::{Value, json};

use crate::{Db, discover, run_tap, select};

/// A table with one column per type, and rows at the edges of each.
pub(crate) const TYPES_TABLE: &str = "
CREATE TABLE t (
 id INT PRIMARY KEY,
 ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
 mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
 b1 TINYINT(1), bit1 BIT(1), bit10 BIT(10), d DECIMAL(65,30), d2 DECIMAL(12,2), f FLOAT, dbl DOUBLE,
 dt DATE, dtm DATETIME(6), ts TIMESTAMP(6) NULL, tm TIME(6), y YEAR,
 c CHAR(10), vc VARCHAR(255), tx TEXT, lat VARCHAR(20) CHARACTER SET latin1,
 bn BINARY(4), vb VARBINARY(10), bl BLOB,
 e ENUM('a','b''q','c'), s SET('x','y','z'),
 j JSON, g GEOMETRY, p POINT, i6 INET6, u UUID
)";

pub(crate) const TYPES_ROWS: &str = "
INSERT INTO t VALUES
(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,
 -9223372036854775808, 18446744073709551615,
 1, b'1', b'1010101010', '-12345678901234567890123456789012345.123456789012345678901234567890',
 1234567890.12, 2.5, 2.718281828459045,
 '2024-02-29', '2024-02-29 23:59:58.123456', '2038-01-19 03:14:07.999999', '-838:59:59.000000', 2155,
 'héllo', 'emoji 😀 \"q\" \\t tab \\\\ back\\nnl', 'text', 'café',
 0x00FF10AB, 0x0102, 0xDEADBEEF, 'b''q', 'x,z', '{\"a\": [1, 2.50, {\"b\": null}], \"u\": \"ü\"}',
 ST_GeomFromText('POLYGON((0 0,1 0,1 1,0 0))'), POINT(1.5, -2.25), '2001:db8::1',
 '123e4567-e89b-12d3-a456-426614174000'),
(2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,
 0, b'0', b'0', '0.000000000000000000000000000001', -0.01, -1e38, 1.7976931348623157e308,
 '1000-01-01', '1000-01-01 00:00:00', '1970-01-01 00:00:01', '838:59:59.999999', 1901,
 '', '', NULL, '', 0x00, '', '', 'a', '', '[1,2]', NULL, NULL, '::',
 '00000000-0000-0000-0000-000000000000'),
(3, -1, NULL, NULL, NULL, -1, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, '0', NULL, NULL, NULL,
 '9999-12-31', '9999-12-31 23:59:59.999999', NULL, '00:00:00.5', NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '\"str\"', NULL, NULL, NULL, NULL)";

/// The records every path (snapshot and binlog) must produce for [`TYPES_ROWS`].
pub(crate) fn expected_records() -> Vec<Value> {
    let r1: Value = serde_json::from_str(
        r#"{"id":1,"ti":-128,"tiu":255,"si":-32768,"siu":65535,"mi":-8388608,"miu":16777215,
        "i":-2147483648,"iu":4294967295,"bi":-9223372036854775808,"biu":18446744073709551615,
        "b1":true,"bit1":true,"bit10":682,
        "d":-12345678901234567890123456789012345.123456789012345678901234567890,
        "d2":1234567890.12,"f":2.5,"dbl":2.718281828459045,
        "dt":"2024-02-29","dtm":"2024-02-29T23:59:58.123456+00:00",
        "ts":"2038-01-19T03:14:07.999999+00:00","tm":"-838:59:59","y":2155,
        "c":"héllo","vc":"emoji 😀 \"q\" \t tab \\ back\nnl","tx":"text","lat":"café",
        "bn":"AP8Qqw==","vb":"AQI=","bl":"3q2+7w==","e":"b'q","s":"x,z",
        "j":{"a":[1,2.50,{"b":null}],"u":"ü"},
        "g":{"type":"Polygon","coordinates":[[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,0.0]]]},
        "p":{"type":"Point","coordinates":[1.5,-2.25]},"i6":"2001:db8::1",
        "u":"123e4567-e89b-12d3-a456-426614174000"}"#,
    )
    .unwrap();
    let r2: Value = serde_json::from_str(
        r#"{"id":2,"ti":127,"tiu":0,"si":32767,"siu":0,"mi":8388607,"miu":0,"i":2147483647,
        "iu":0,"bi":9223372036854775807,"biu":0,"b1":false,"bit1":false,"bit10":0,
        "d":0.000000000000000000000000000001,"d2":-0.01,"f":-1e38,"dbl":1.7976931348623157e308,
        "dt":"1000-01-01","dtm":"1000-01-01T00:00:00+00:00","ts":"1970-01-01T00:00:01+00:00",
        "tm":"838:59:59.999999","y":1901,"c":"","vc":"","tx":null,"lat":"","bn":"AAAAAA==",
        "vb":"","bl":"","e":"a","s":"","j":[1,2],"g":null,"p":null,"i6":"::",
        "u":"00000000-0000-0000-0000-000000000000"}"#,
    )
    .unwrap();
    let r3: Value = serde_json::from_str(
        r#"{"id":3,"ti":-1,"tiu":null,"si":null,"siu":null,"mi":-1,"miu":null,"i":null,"iu":null,
        "bi":null,"biu":null,"b1":null,"bit1":null,"bit10":null,
        "d":0.000000000000000000000000000000,"d2":null,"f":null,"dbl":null,
        "dt":"9999-12-31","dtm":"9999-12-31T23:59:59.999999+00:00","ts":null,"tm":"00:00:00.500000",
        "y":null,"c":null,"vc":null,"tx":null,"lat":null,"bn":null,"vb":null,"bl":null,"e":null,
        "s":null,"j":"str","g":null,"p":null,"i6":null,"u":null}"#,
    )
    .unwrap();
    vec![r1, r2, r3]
}

/// Compares records field by field with exact number text (so 2.50 ≠ 2.5 and no float rounding).
pub(crate) fn assert_records(got: &[Value], want: &[Value]) {
    assert_eq!(got.len(), want.len(), "record count; got {got:?}");
    for (g, w) in got.iter().zip(want) {
        for (k, wv) in w.as_object().unwrap() {
            let gv = &g[k];
            assert_eq!(
                gv.to_string(),
                wv.to_string(),
                "record id={} column `{k}`",
                w["id"]
            );
        }
    }
}

#[test]
fn every_type_is_read_exactly() {
    let db = Db::shared("types");
    db.exec(TYPES_TABLE);
    db.exec(TYPES_ROWS);
    let dir = tempfile::tempdir().unwrap();
    let catalog = discover(dir.path(), &db.config());
    let id = db.stream("t");
    let run = run_tap(
        dir.path(),
        &db.config(),
        Some(&select(&catalog, &[&id], "FULL_TABLE", None)),
        None,
    );
    assert!(run.ok, "{}", run.stderr);
    assert_records(&run.records(&id), &expected_records());
    // The SCHEMA declares what the values are.
    let schema = &run.of_type("SCHEMA")[0]["schema"]["properties"];
    assert_eq!(schema["biu"]["maximum"].to_string(), "18446744073709551615");
    assert_eq!(schema["d"]["multipleOf"].to_string(), "1e-30");
    assert_eq!(schema["bl"]["contentEncoding"], "base64");
    assert_eq!(schema["dt"]["format"], "date");
    assert_eq!(schema["ts"]["format"], "date-time");
    assert_eq!(schema["u"]["format"], "uuid");
    assert_eq!(schema["b1"]["type"], json!(["null", "boolean"]));
    assert!(
        schema["tm"].get("format").is_none(),
        "TIME exceeds RFC 3339 time"
    );
}

#[test]
fn zero_dates_and_non_boolean_tinyint1_become_null_with_a_warning() {
    let db = Db::shared("invalid");
    db.exec(
        "CREATE TABLE z (id INT PRIMARY KEY, d DATE, dt DATETIME, ts TIMESTAMP NULL, b TINYINT(1))",
    );
    db.exec(
        "INSERT INTO z VALUES (1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', 127), \
         (2, '2022-11-00', '2022-11-00 20:59:22', NULL, -1), (3, '2022-02-28', NULL, NULL, 1)",
    );
    let dir = tempfile::tempdir().unwrap();
    let catalog = discover(dir.path(), &db.config());
    let id = db.stream("z");
    let sel = select(&catalog, &[&id], "FULL_TABLE", None);
    let run = run_tap(dir.path(), &db.config(), Some(&sel), None);
    assert!(run.ok, "{}", run.stderr);
    let recs = run.records(&id);
    assert_eq!(
        recs[0],
        json!({"id":1,"d":null,"dt":null,"ts":null,"b":null})
    );
    assert_eq!(
        recs[1],
        json!({"id":2,"d":null,"dt":null,"ts":null,"b":null})
    );
    assert_eq!(
        recs[2],
        json!({"id":3,"d":"2022-02-28","dt":null,"ts":null,"b":true})
    );
    assert!(
        run.stderr
            .contains("column `b` (tinyint(1)) row id=1: 127 is not a boolean"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("column=d count=2"), "{}", run.stderr);

    // The stored 127 and -1 survive as integers when TINYINT(1) is not read as boolean.
    let mut cfg = db.config();
    cfg["tinyint1_as_boolean"] = json!(false);
    let catalog = discover(dir.path(), &cfg);
    let run = run_tap(
        dir.path(),
        &cfg,
        Some(&select(&catalog, &[&id], "FULL_TABLE", None)),
        None,
    );
    assert!(run.ok, "{}", run.stderr);
    let b: Vec<Value> = run.records(&id).iter().map(|r| r["b"].clone()).collect();
    assert_eq!(b, vec![json!(127), json!(-1), json!(1)]);

    // With invalid_values = error the run fails, naming stream, column and row.
    let mut cfg = db.config();
    cfg["invalid_values"] = json!("error");
    let run = run_tap(dir.path(), &cfg, Some(&sel), None);
    assert!(!run.ok);
    assert!(
        run.stderr.contains(&format!(
            "stream `{id}` column `d` (date) row id=1: zero date"
        )),
        "{}",
        run.stderr
    );
}
