//! A Meltano SDK tap (meltanolabs-tap-postgres) with `batch_config` emits BATCH messages
//! naming gzip JSONL files; target-postgres loads them exactly, and echoes the tap's state.

use serde_json::{Value, json};
use singer_core::testing::{interop_path, run_with_stdin};

use crate::{fresh_schema, ok, scalar, server, sql, target};

fn tap(config: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(interop_path("tap_postgres_meltano"));
    cmd.arg("--config").arg(config);
    cmd
}

#[test]
fn meltano_sdk_tap_batches_load_exactly() {
    let src = fresh_schema("mbsrc");
    let dst = fresh_schema("mbdst");
    sql(&format!(
        "CREATE SCHEMA \"{src}\";
         CREATE TABLE \"{src}\".items (id int PRIMARY KEY, name text, price numeric(12,2),
           at timestamptz, day date, ok boolean, doc jsonb);
         INSERT INTO \"{src}\".items
           SELECT i, CASE WHEN i % 7 = 0 THEN NULL ELSE 'näme ' || i || E'\\n\"q\"' END,
                  i * 1.25, '2024-02-29 12:00:00.123456+00'::timestamptz + i * interval '1 minute',
                  DATE '1999-12-31' + i, i % 2 = 0, jsonb_build_object('i', i, 'a', jsonb_build_array(i, 'x'))
           FROM generate_series(1, 2500) i;"
    ));
    let dir = tempfile::tempdir().unwrap();
    let s = server();
    for (compression, label) in [("gzip", "gz"), ("none", "plain")] {
        let root = dir.path().join(label);
        let config = json!({
            "host": s.host, "port": s.port, "user": s.user, "password": "",
            "database": s.database, "filter_schemas": [src],
            "batch_config": {
                "encoding": {"format": "jsonl", "compression": compression},
                "storage": {"root": format!("file://{}", root.display()), "prefix": "b-"},
                "batch_size": 1000
            }
        });
        let cfg = dir.path().join(format!("tap-{label}.json"));
        std::fs::write(&cfg, config.to_string()).unwrap();
        let discovered = tap(&cfg).arg("--discover").output().unwrap();
        assert!(
            discovered.status.success(),
            "{}",
            String::from_utf8_lossy(&discovered.stderr)
        );
        let mut catalog: Value = serde_json::from_slice(&discovered.stdout).unwrap();
        for stream in catalog["streams"].as_array_mut().unwrap() {
            for m in stream["metadata"].as_array_mut().unwrap() {
                if m["breadcrumb"] == json!([]) {
                    m["metadata"]["selected"] = json!(true);
                }
            }
        }
        let cat = dir.path().join(format!("catalog-{label}.json"));
        std::fs::write(&cat, catalog.to_string()).unwrap();
        let synced = tap(&cfg).arg("--catalog").arg(&cat).output().unwrap();
        assert!(
            synced.status.success(),
            "{}",
            String::from_utf8_lossy(&synced.stderr)
        );
        let messages = String::from_utf8(synced.stdout).unwrap();
        let batches = messages.lines().filter(|l| l.contains("\"BATCH\"")).count();
        assert!(batches >= 3, "2500 rows at 1000 per file: {messages}");
        assert!(
            !messages.contains("\"RECORD\""),
            "every row comes in a file"
        );

        let (_d, tcfg) = crate::config(&dst, json!({}));
        let out = run_with_stdin(target(&tcfg), messages.as_bytes());
        let states = ok(&out);
        assert!(
            !states.is_empty(),
            "the tap's state is echoed once its files are loaded"
        );
        let table = format!("\"{dst}\".items");
        assert_eq!(
            scalar(&format!("SELECT count(*) FROM {table}")).as_deref(),
            Some("2500")
        );
        let same = scalar(&format!(
            "SELECT count(*) FROM \"{src}\".items s JOIN {table} d USING (id)
             WHERE s.name IS NOT DISTINCT FROM d.name AND s.price = d.price AND s.at = d.at
               AND s.day = d.day::date AND s.ok = d.ok AND s.doc = d.doc::jsonb"
        ));
        assert_eq!(
            same.as_deref(),
            Some("2500"),
            "every value loads exactly ({label})"
        );
    }
}
