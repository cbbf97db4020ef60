//! Every column kind written from JSON and read back exactly with pyarrow and DuckDB.

use serde_json::{Value, json};
use singer_core::moment::{unix_days, unix_micros};

use crate::{echoed, parquet_files, python, run_ok};

/// Reads a dataset folder with pyarrow and with DuckDB and prints, per engine, each column's
/// type and its values in a form both engines can give exactly: timestamps and times as
/// microseconds, dates as days since 1970, decimals as text, binary as base64, doubles by
/// `repr`.
const READ_BOTH: &str = r#"
import base64, json, sys
import duckdb, pyarrow as pa, pyarrow.dataset as ds

path = sys.argv[1]

def arrow_values(col):
    ty = col.type
    if pa.types.is_timestamp(ty) or pa.types.is_time64(ty):
        return col.cast(pa.int64()).to_pylist()
    if pa.types.is_date32(ty):
        return col.cast(pa.int32()).to_pylist()
    vals = col.to_pylist()
    if pa.types.is_decimal(ty):
        return [None if v is None else str(v) for v in vals]
    if pa.types.is_binary(ty):
        return [None if v is None else base64.b64encode(v).decode() for v in vals]
    if pa.types.is_floating(ty):
        return [None if v is None else repr(v) for v in vals]
    return vals

table = ds.dataset(path).to_table().sort_by("id")
arrow = {
    "types": {f.name: str(f.type) for f in table.schema},
    "values": {n: arrow_values(table.column(n)) for n in table.column_names},
}

src = f"read_parquet('{path}/*.parquet')"
kinds = duckdb.sql(f"DESCRIBE SELECT * FROM {src}").fetchall()
exprs = []
for name, ty, *_ in kinds:
    q = '"' + name + '"'
    if ty.startswith("TIMESTAMP"):
        exprs.append(f"epoch_us({q})")
    elif ty == "DATE":
        exprs.append(f"({q} - DATE '1970-01-01')")
    elif ty.startswith("TIME"):
        exprs.append(f"epoch_us({q})")
    elif ty.startswith("DECIMAL"):
        exprs.append(f"CAST({q} AS VARCHAR)")
    elif ty == "BLOB":
        exprs.append(f"base64({q})")
    else:
        exprs.append(q)
rows = duckdb.sql(f"SELECT {', '.join(exprs)} FROM {src} ORDER BY id").fetchall()
def duck_value(v):
    return repr(v) if isinstance(v, float) else v
duck = {
    "types": {name: ty for name, ty, *_ in kinds},
    "values": {k[0]: [duck_value(r[i]) for r in rows] for i, k in enumerate(kinds)},
}
print(json.dumps({"pyarrow": arrow, "duckdb": duck}, default=str))
"#;

/// One column: its JSON Schema, three raw JSON values (rows 1..3), what readers give back,
/// the pyarrow type and the DuckDB type.
struct Col {
    name: &'static str,
    schema: Value,
    raw: [&'static str; 3],
    want: [Value; 3],
    arrow: &'static str,
    duck: &'static str,
}

fn micros(s: &str) -> Value {
    unix_micros(s).unwrap().into()
}

fn days(s: &str) -> Value {
    unix_days(s).unwrap().into()
}

fn columns() -> Vec<Col> {
    const D38: &str = "1234567890123456789012345678.9012345678";
    const D60: &str = "123456789012345678901234567890123456789012345678901234567890.25";
    const TEXT: &str = "123456789012345678901234567890.123456789012345678901234567890";
    const HUGE: &str = "1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890";
    vec![
        Col {
            name: "i16",
            schema: json!({"type": ["null", "integer"], "minimum": -32768, "maximum": 32767}),
            raw: ["-32768", "32767", "null"],
            want: [json!(-32768), json!(32767), Value::Null],
            arrow: "int16",
            duck: "SMALLINT",
        },
        Col {
            name: "i32",
            schema: json!({"type": ["null", "integer"], "minimum": -2147483648i64, "maximum": 2147483647}),
            raw: ["-2147483648", "2147483647", "null"],
            want: [json!(-2147483648i64), json!(2147483647), Value::Null],
            arrow: "int32",
            duck: "INTEGER",
        },
        Col {
            name: "i64",
            schema: json!({"type": ["null", "integer"]}),
            raw: ["-9223372036854775808", "9223372036854775807", "null"],
            want: [json!(i64::MIN), json!(i64::MAX), Value::Null],
            arrow: "int64",
            duck: "BIGINT",
        },
        Col {
            name: "u64",
            schema: json!({"type": ["null", "integer"], "minimum": 0, "maximum": 18446744073709551615u64}),
            raw: ["18446744073709551615", "0", "null"],
            want: [json!("18446744073709551615"), json!("0"), Value::Null],
            arrow: "decimal128(20, 0)",
            duck: "DECIMAL(20,0)",
        },
        Col {
            name: "d38",
            schema: json!({"type": ["null", "number"], "multipleOf": 1e-10}),
            raw: [D38, "-0.0000000001", "null"],
            want: [json!(D38), json!("-1E-10"), Value::Null],
            arrow: "decimal128(38, 10)",
            duck: "DECIMAL(38,10)",
        },
        Col {
            name: "d256",
            schema: json!({"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e60}),
            raw: [D60, "-1.5", "null"],
            want: [json!(D60), json!("-1.50"), Value::Null],
            arrow: "decimal256(63, 2)",
            duck: "DOUBLE",
        },
        Col {
            name: "dtext",
            schema: json!({"type": ["null", "number"], "x-sql-datatype": "numeric"}),
            raw: [TEXT, "-0.000", "null"],
            want: [json!(TEXT), json!("-0.000"), Value::Null],
            arrow: "string",
            duck: "VARCHAR",
        },
        Col {
            name: "dhuge",
            schema: json!({"type": ["null", "number"], "multipleOf": 1, "maximum": 1e100}),
            raw: [HUGE, "\"-7\"", "null"],
            want: [json!(HUGE), json!("-7"), Value::Null],
            arrow: "string",
            duck: "VARCHAR",
        },
        Col {
            name: "f",
            schema: json!({"type": ["null", "number"]}),
            raw: ["0.1", "1e300", "null"],
            want: [json!("0.1"), json!("1e+300"), Value::Null],
            arrow: "double",
            duck: "DOUBLE",
        },
        Col {
            name: "b",
            schema: json!({"type": ["null", "boolean"]}),
            raw: ["true", "false", "null"],
            want: [json!(true), json!(false), Value::Null],
            arrow: "bool",
            duck: "BOOLEAN",
        },
        Col {
            name: "ts",
            schema: json!({"type": ["null", "string"], "format": "date-time"}),
            raw: [
                "\"2024-01-02T03:04:05.123456+05:30\"",
                "\"-0043-03-15T12:00:00Z\"",
                "null",
            ],
            want: [
                micros("2024-01-01T21:34:05.123456Z"),
                micros("-0043-03-15T12:00:00Z"),
                Value::Null,
            ],
            arrow: "timestamp[us, tz=+00:00]",
            duck: "TIMESTAMP WITH TIME ZONE",
        },
        Col {
            name: "ts_far",
            schema: json!({"type": ["null", "string"], "format": "date-time"}),
            raw: [
                "\"+20000-01-01T00:00:00Z\"",
                "\"0001-01-01T00:00:00.000001Z\"",
                "null",
            ],
            want: [
                micros("+20000-01-01T00:00:00Z"),
                micros("0001-01-01T00:00:00.000001Z"),
                Value::Null,
            ],
            arrow: "timestamp[us, tz=+00:00]",
            duck: "TIMESTAMP WITH TIME ZONE",
        },
        Col {
            name: "d",
            schema: json!({"type": ["null", "string"], "format": "date"}),
            raw: ["\"2024-02-29\"", "\"-4713-11-24\"", "\"+200000-12-31\""],
            want: [
                days("2024-02-29"),
                days("-4713-11-24"),
                days("+200000-12-31"),
            ],
            arrow: "date32[day]",
            duck: "DATE",
        },
        Col {
            name: "t",
            schema: json!({"type": ["null", "string"], "format": "time"}),
            raw: ["\"23:59:59.999999\"", "\"00:00:00\"", "null"],
            want: [json!(86_399_999_999i64), json!(0), Value::Null],
            arrow: "time64[us]",
            duck: "TIME",
        },
        Col {
            name: "bin",
            schema: json!({"type": ["null", "string"], "contentEncoding": "base64"}),
            raw: ["\"AAEC/w==\"", "\"\"", "null"],
            want: [json!("AAEC/w=="), json!(""), Value::Null],
            arrow: "binary",
            duck: "BLOB",
        },
        Col {
            name: "obj",
            schema: json!({"type": ["null", "object"]}),
            raw: [r#"{"a":[1,2.50,{"b":null}],"u":"\u00e9"}"#, "{}", "null"],
            want: [
                json!(r#"{"a":[1,2.50,{"b":null}],"u":"\u00e9"}"#),
                json!("{}"),
                Value::Null,
            ],
            arrow: "string",
            duck: "VARCHAR",
        },
        Col {
            name: "arr",
            schema: json!({"type": ["null", "array"], "items": {"type": "integer"}}),
            raw: ["[1, 2, 3]", "[]", "null"],
            want: [json!("[1, 2, 3]"), json!("[]"), Value::Null],
            arrow: "string",
            duck: "VARCHAR",
        },
        Col {
            name: "s",
            schema: json!({"type": ["null", "string"]}),
            raw: [
                r#""h\u00e9llo \u2603 \ud83d\ude00 \"q\"\n""#,
                "\"\"",
                "null",
            ],
            want: [
                json!("h\u{e9}llo \u{2603} \u{1F600} \"q\"\n"),
                json!(""),
                Value::Null,
            ],
            arrow: "string",
            duck: "VARCHAR",
        },
        Col {
            name: "uuid",
            schema: json!({"type": ["null", "string"], "format": "uuid"}),
            raw: ["\"6f1c5a52-3c8e-4a5e-9d57-2d8c0e0a1b2c\"", "null", "null"],
            want: [
                json!("6f1c5a52-3c8e-4a5e-9d57-2d8c0e0a1b2c"),
                Value::Null,
                Value::Null,
            ],
            arrow: "string",
            duck: "VARCHAR",
        },
    ]
}

fn input(cols: &[Col]) -> Vec<String> {
    let mut props = serde_json::Map::new();
    props.insert("id".into(), json!({"type": "integer"}));
    for c in cols {
        props.insert(c.name.into(), c.schema.clone());
    }
    let mut lines = vec![crate::schema("all_types", Value::Object(props), &["id"])];
    for row in 0..3 {
        let members: Vec<String> = cols
            .iter()
            .map(|c| format!("\"{}\":{}", c.name, c.raw[row]))
            .collect();
        let extracted = if row == 0 {
            r#","time_extracted":"2024-06-01T10:00:00.5+02:00""#
        } else {
            ""
        };
        lines.push(format!(
            r#"{{"type":"RECORD","stream":"all_types","record":{{"id":{},{}}}{extracted}}}"#,
            row + 1,
            members.join(",")
        ));
    }
    lines.push(crate::state(json!({"done": true})));
    lines
}

#[test]
fn every_column_kind_round_trips_through_pyarrow_and_duckdb() {
    let dir = tempfile::tempdir().unwrap();
    let cols = columns();
    let out = run_ok(dir.path(), json!({}), &input(&cols));
    assert_eq!(echoed(&out), vec![json!({"done": true})]);
    let folder = dir.path().join("out/all_types");
    assert_eq!(parquet_files(&folder).len(), 1);
    let got = python(READ_BOTH, &[&folder.to_string_lossy()]);
    let mut failures = Vec::new();
    for engine in ["pyarrow", "duckdb"] {
        let e = &got[engine];
        for c in &cols {
            let ty = e["types"][c.name].as_str().unwrap_or("missing");
            let want_ty = if engine == "pyarrow" { c.arrow } else { c.duck };
            if ty != want_ty {
                failures.push(format!(
                    "{engine} {}: type {ty}, expected {want_ty}",
                    c.name
                ));
            }
            let values = e["values"][c.name].as_array().unwrap();
            for (row, want) in c.want.iter().enumerate() {
                // DuckDB reads decimals wider than 38 digits as DOUBLE: only check they are
                // close (the exact digits are pyarrow's).
                if engine == "duckdb" && c.name == "d256" {
                    let v: f64 = values[row]
                        .as_str()
                        .map_or(f64::NAN, |s| s.parse().unwrap());
                    let w: f64 = want.as_str().map_or(f64::NAN, |s| s.parse().unwrap());
                    if !(v.is_nan() && w.is_nan() || ((v - w) / w).abs() < 1e-12) {
                        failures.push(format!("{engine} {} row {row}: {v} vs {w}", c.name));
                    }
                    continue;
                }
                let want = if engine == "duckdb" && c.name == "d38" && row == 1 {
                    json!("-0.0000000001") // DuckDB writes decimals without exponent
                } else {
                    want.clone()
                };
                if values[row] != want {
                    failures.push(format!(
                        "{engine} {} row {}: got {}, expected {want}",
                        c.name,
                        row + 1,
                        values[row]
                    ));
                }
            }
        }
        // The _sdc_ columns.
        let v = &e["values"];
        assert_eq!(
            v["_sdc_extracted_at"],
            json!([unix_micros("2024-06-01T08:00:00.5Z").unwrap(), null, null]),
            "{engine}"
        );
        assert_eq!(v["_sdc_deleted_at"], json!([null, null, null]), "{engine}");
        assert_eq!(
            v["_sdc_table_version"],
            json!([null, null, null]),
            "{engine}"
        );
        let seq: Vec<i64> = v["_sdc_sequence"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_i64().unwrap())
            .collect();
        assert!(seq[0] < seq[1] && seq[1] < seq[2], "{engine}: {seq:?}");
        for col in ["_sdc_received_at", "_sdc_batched_at"] {
            assert!(
                v[col].as_array().unwrap().iter().all(Value::is_i64),
                "{engine} {col}"
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
