//! Every supported type, read exactly: the JSON Schema discovery gives it and the value a
//! FULL_TABLE sync emits.

use serde_json::json;

use crate::{Db, Server, discover, metadata, run_tap, select, stream, tempdir};

const TABLE: &str = r#"
CREATE EXTENSION IF NOT EXISTS hstore;
CREATE EXTENSION IF NOT EXISTS citext;
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN price AS numeric(12, 2) CHECK (VALUE >= 0);
CREATE DOMAIN prices AS price[];
CREATE TYPE pair AS (a int, b text);
CREATE TABLE every (
  id bigint PRIMARY KEY,
  i2 smallint, i4 integer, n numeric, n122 numeric(12, 2), f4 real, f8 double precision,
  m money, b boolean, vc varchar(5), ch char(3), t text, ci citext, u uuid,
  j json, jb jsonb, by bytea, d date, ts timestamp, tstz timestamptz(3), tm time,
  tmtz timetz, iv interval, bits bit(4), vbits varbit, inet_ inet, cidr_ cidr, mac macaddr,
  hs hstore, ia int[], iaa int[][], ta text[], mood_ mood, r int4range, dp price,
  dpa prices, pr pair
);
"#;

/// Creates the table of every type in `db` with three rows (every value, the infinities,
/// nulls); returns the 1000-digit numeric of row 1 without its sign.
pub(crate) fn fill(db: &Db) -> String {
    db.exec(TABLE);
    let big = format!("{}.{}", "9".repeat(600), "1".repeat(400));
    db.exec(&format!(
        r#"INSERT INTO every VALUES (1, -32768, 2147483647, -{big}, 1234567890.12, 1.5e-7,
        1.7976931348623157e308, -1234.56, true, 'héllo', 'ab', E'tab\there\nnew "q" \\ back',
        'MiXeD', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{{"a": [1, 2.5]}}',
        '{{"b": {{"c": null}}}}', '\x00ff0a', '0044-03-15 BC',
        '294276-12-31 23:59:59.999999', '2024-02-29 23:59:58.123+05:30', '23:59:59.999999',
        '12:00:00+05:30', '1 year 2 mons 3 days 04:05:06.5', B'1010', B'101',
        '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '"k"=>"v", "n"=>NULL',
        '{{1,NULL,3}}', '{{{{1,2}},{{3,4}}}}', '{{"a,b","c\"d",NULL}}', 'happy', '[1,5)', 9.99,
        '{{1.00,2.50}}', ROW(1, 'x'));
        INSERT INTO every (id, d, ts, tstz) VALUES (2, 'infinity', '-infinity', 'infinity');
        INSERT INTO every (id) VALUES (3);"#
    ));
    big
}

#[test]
fn discovery_describes_every_type() {
    let server = Server::shared();
    let db = Db::create(&server, "types");
    db.exec(TABLE);
    let dir = tempdir();
    let catalog = discover(dir.path(), &db.config());
    let s = stream(&catalog, "public-every");
    let p = &s["schema"]["properties"];
    assert_eq!(p["id"]["type"], json!(["integer"]));
    assert_eq!(p["i2"]["maximum"], json!(32767));
    assert_eq!(p["n122"]["multipleOf"], json!(0.01));
    assert_eq!(p["n"]["type"], json!(["null", "number"]));
    assert!(p["n"].get("multipleOf").is_none());
    assert_eq!(p["m"]["type"], json!(["null", "number"]));
    assert_eq!(p["vc"]["maxLength"], json!(5));
    assert_eq!(p["u"]["format"], json!("uuid"));
    assert_eq!(p["by"]["contentEncoding"], json!("base64"));
    assert_eq!(p["tstz"]["format"], json!("date-time"));
    assert_eq!(p["d"]["format"], json!("date"));
    assert_eq!(p["tmtz"]["x-sql-datatype"], json!("time with time zone"));
    assert_eq!(p["iv"]["x-sql-datatype"], json!("interval"));
    assert_eq!(p["bits"]["x-sql-datatype"], json!("bit(4)"));
    assert_eq!(p["hs"]["type"], json!(["null", "object"]));
    assert_eq!(
        p["iaa"]["items"]["items"]["type"],
        json!(["null", "integer"])
    );
    assert_eq!(p["ia"]["items"]["type"], json!(["null", "integer"]));
    assert_eq!(p["mood_"]["type"], json!(["null", "string"]));
    assert_eq!(p["r"]["type"], json!(["null", "string"]));
    // A domain is its base type, arrays of domains too.
    assert_eq!(p["dp"]["multipleOf"], json!(0.01));
    assert_eq!(p["dpa"]["items"]["multipleOf"], json!(0.01));
    let pr = metadata(s, json!(["properties", "pr"]));
    assert_eq!(pr["inclusion"], json!("unsupported"));
    assert!(
        pr["unsupported-description"]
            .as_str()
            .unwrap()
            .contains("composite"),
        "{pr}"
    );
    let id = metadata(s, json!(["properties", "id"]));
    assert_eq!(id["inclusion"], json!("automatic"));
    let top = metadata(s, json!([]));
    assert_eq!(top["table-key-properties"], json!(["id"]));
    assert_eq!(top["schema-name"], json!("public"));
}

#[test]
fn every_value_is_exact() {
    let server = Server::shared();
    let db = Db::create(&server, "values");
    let big = fill(&db);
    let dir = tempdir();
    let catalog = discover(dir.path(), &db.config());
    let catalog = select(&catalog, &["public-every"], "FULL_TABLE", None);
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(run.ok, "{}", run.stderr);
    // Compare the raw line: number text must be kept digit for digit.
    let line = String::from_utf8(run.stdout.clone()).unwrap();
    assert!(
        line.contains(&format!("\"n\":-{big}")),
        "long numeric lost digits"
    );
    let recs = run.records("public-every");
    assert_eq!(recs.len(), 3);
    let r = &recs[0];
    let expect = json!({
        "id": 1, "i2": -32768, "i4": 2147483647, "n122": 1234567890.12, "m": -1234.56, "b": true, "vc": "héllo", "ch": "ab ",
        "t": "tab\there\nnew \"q\" \\ back", "ci": "MiXeD",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": {"a": [1, 2.5]},
        "jb": {"b": {"c": null}}, "by": "AP8K", "d": "-0043-03-15",
        "ts": "+294276-12-31T23:59:59.999999+00:00", "tstz": "2024-02-29T18:29:58.123+00:00",
        "tm": "23:59:59.999999", "tmtz": "12:00:00+05:30", "iv": "P1Y2M3DT4H5M6.5S",
        "bits": "1010", "vbits": "101", "inet_": "192.168.0.1/24", "cidr_": "10.0.0.0/8",
        "mac": "08:00:2b:01:02:03", "hs": {"k": "v", "n": null}, "ia": [1, null, 3],
        "iaa": [[1, 2], [3, 4]], "ta": ["a,b", "c\"d", null], "mood_": "happy", "r": "[1,5)",
        "dp": 9.99
    });
    for (k, v) in expect.as_object().unwrap() {
        assert_eq!(&r[k], v, "column {k}: {}", r[k]);
    }
    assert!(r.get("pr").is_none(), "unsupported columns are not read");
    assert_eq!(recs[1]["d"], json!("infinity"));
    assert_eq!(recs[1]["ts"], json!("-infinity"));
    assert_eq!(recs[1]["tstz"], json!("infinity"));
    assert_eq!(recs[2]["t"], json!(null));
    // Number text as PostgreSQL prints it (shortest exact floats, scale kept).
    for raw in [
        "\"n122\":1234567890.12,",
        "\"f4\":1.5e-07,",
        "\"f8\":1.7976931348623157e+308,",
        "\"dpa\":[1.00,2.50]",
    ] {
        assert!(line.contains(raw), "{raw} not in {line}");
    }
}

#[test]
fn nan_is_an_error_unless_null_is_chosen() {
    let server = Server::shared();
    let db = Db::create(&server, "nan");
    db.exec(
        "CREATE TABLE f (id int PRIMARY KEY, x numeric, y float8);
             INSERT INTO f VALUES (1, 'NaN', 1), (2, 2, '-Infinity');",
    );
    let dir = tempdir();
    let catalog = discover(dir.path(), &db.config());
    let catalog = select(&catalog, &["public-f"], "FULL_TABLE", None);
    let run = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("stream `public-f` column `x`") && run.stderr.contains("id=1"),
        "{}",
        run.stderr
    );
    let mut cfg = db.config();
    cfg["nonfinite_numbers"] = json!("null");
    let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(run.ok, "{}", run.stderr);
    let recs = run.records("public-f");
    assert_eq!(recs[0]["x"], json!(null));
    assert_eq!(recs[1]["y"], json!(null));
    assert_eq!(recs[1]["x"], json!(2));
}
