//! Discovery: catalog shape and metadata as PipelineWise and singer-io emit them.

use serde_json::json;

use crate::{Db, discover, metadata, run_tap, stream};

#[test]
fn catalog_has_streams_schemas_and_metadata() {
    let db = Db::shared("disc");
    db.exec(
        "CREATE TABLE orders (a INT NOT NULL, b VARCHAR(20) NOT NULL, total DECIMAL(10,3), \
         note VARCHAR(40), PRIMARY KEY (b, a)); \
         INSERT INTO orders VALUES (1, 'x', 1.5, NULL), (2, 'y', NULL, 'n'); \
         CREATE VIEW big_orders AS SELECT a, total FROM orders WHERE total > 1",
    );
    let dir = tempfile::tempdir().unwrap();
    let catalog = discover(dir.path(), &db.config());
    assert_eq!(catalog["streams"].as_array().unwrap().len(), 2);

    let orders = stream(&catalog, &db.stream("orders"));
    assert_eq!(orders["stream"], "orders");
    assert_eq!(orders["table_name"], "orders");
    let meta = metadata(orders, json!([]));
    // Composite keys keep their index order, not column order.
    assert_eq!(meta["table-key-properties"], json!(["b", "a"]));
    assert_eq!(meta["database-name"], json!(db.name));
    assert_eq!(meta["is-view"], json!(false));
    assert_eq!(meta["selected-by-default"], json!(false));
    assert!(meta["row-count"].is_u64());
    assert!(
        meta["valid-replication-keys"]
            .as_array()
            .unwrap()
            .contains(&json!("total"))
    );
    let props = &orders["schema"]["properties"];
    assert_eq!(props["b"], json!({"type": ["string"], "maxLength": 20}));
    assert_eq!(props["total"]["multipleOf"].to_string(), "0.001");
    let col_meta = orders["metadata"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["breadcrumb"] == json!(["properties", "a"]))
        .unwrap();
    assert_eq!(col_meta["metadata"]["inclusion"], "automatic");
    assert_eq!(col_meta["metadata"]["sql-datatype"], "int(11)");

    let view = stream(&catalog, &db.stream("big_orders"));
    let meta = metadata(view, json!([]));
    assert_eq!(meta["is-view"], json!(true));
    assert!(meta.get("table-key-properties").is_none());
}

#[test]
fn config_errors_are_clear_and_secrets_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_tap(
        dir.path(),
        &json!({"host": "127.0.0.1", "user": "root", "password": "hunter2", "colour": 1}),
        None,
        None,
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("colour"), "{}", run.stderr);
    // A refused login names the target but never the password.
    let run = run_tap(
        dir.path(),
        &json!({"host": "127.0.0.1", "port": 1, "user": "nobody", "password": "hunter2"}),
        None,
        None,
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("nobody@127.0.0.1:1"), "{}", run.stderr);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    let about = std::process::Command::new(env!("CARGO_BIN_EXE_tap-mysql"))
        .args(["--about", "--format", "json"])
        .output()
        .unwrap();
    assert!(about.status.success());
    let text = String::from_utf8(about.stdout).unwrap();
    assert!(
        text.contains("filter_dbs") && text.contains("log-based"),
        "{text}"
    );
}
