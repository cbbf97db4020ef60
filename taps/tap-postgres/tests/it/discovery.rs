//! Discovery: what is listed, what is filtered, and that it costs the same queries however
//! many tables there are.

use serde_json::json;

use crate::{Db, Server, discover, metadata, stream, tempdir};

#[test]
fn tables_views_and_materialized_views_are_listed() {
    let server = Server::shared();
    let db = Db::create(&server, "disc");
    db.exec(
        "CREATE SCHEMA sales;
         CREATE TABLE sales.orders (a int, b text, PRIMARY KEY (b, a));
         CREATE VIEW sales.v AS SELECT a FROM sales.orders;
         CREATE MATERIALIZED VIEW public.mv AS SELECT 1 AS one;
         CREATE TABLE public.nokey (x int);",
    );
    let dir = tempdir();
    let catalog = discover(dir.path(), &db.config());
    let ids: Vec<&str> = catalog["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tap_stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["public-mv", "public-nokey", "sales-orders", "sales-v"]
    );
    let orders = stream(&catalog, "sales-orders");
    assert_eq!(orders["stream"], json!("orders"));
    let top = metadata(orders, json!([]));
    // Key columns in key order, not column order.
    assert_eq!(top["table-key-properties"], json!(["b", "a"]));
    assert_eq!(top["is-view"], json!(false));
    assert_eq!(top["database-name"], json!(db.name));
    assert_eq!(
        metadata(stream(&catalog, "sales-v"), json!([]))["is-view"],
        json!(true)
    );
    assert_eq!(
        metadata(stream(&catalog, "public-mv"), json!([]))["is-view"],
        json!(true)
    );

    let mut cfg = db.config();
    cfg["filter_schemas"] = json!("sales");
    let only = discover(dir.path(), &cfg);
    assert_eq!(only["streams"].as_array().unwrap().len(), 2);
    cfg["filter_tables"] = json!("sales.orders");
    let one = discover(dir.path(), &cfg);
    assert_eq!(one["streams"].as_array().unwrap().len(), 1);
}

/// Transactions a discovery of a database with `tables` tables commits.
fn discovery_transactions(tables: usize) -> i64 {
    let server = Server::shared();
    let db = Db::create(&server, "discn");
    let mut ddl = String::new();
    for i in 0..tables {
        ddl.push_str(&format!("CREATE TABLE t{i} (id int PRIMARY KEY, v text);"));
    }
    db.exec(&ddl);
    let commits = || -> i64 {
        // Sessions flush their statistics when they end; give the last one a moment.
        std::thread::sleep(std::time::Duration::from_millis(300));
        db.scalar(&format!(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = '{}'",
            db.name
        ))
        .parse()
        .unwrap()
    };
    let before = commits();
    let dir = tempdir();
    let catalog = discover(dir.path(), &db.config());
    assert_eq!(catalog["streams"].as_array().unwrap().len(), tables);
    commits() - before
}

#[test]
fn discovery_runs_a_fixed_number_of_queries() {
    let one = discovery_transactions(1);
    let many = discovery_transactions(300);
    assert_eq!(
        one, many,
        "discovery of 300 tables ran more statements than of one"
    );
}
