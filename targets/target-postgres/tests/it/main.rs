#![allow(clippy::unwrap_used)] // Tests panic on failure by design.

//! target-postgres against a real PostgreSQL (`SINGER_PG_URL`, default
//! `postgresql://postgres@127.0.0.1:5432/test`). Every test loads into a schema of its own.

mod batch;
mod batch_failures;
mod conformance;
mod dates;
mod failures;
mod live;
mod loading;
mod meltano_batch;
mod parallel;
mod proxy;
mod resilience;
mod sdk_streams;
mod signals;
mod tls;
mod unchanged;
mod versions;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

pub use singer_core::testing::run_with_stdin;

/// Connection settings of the test server.
pub struct Server {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
}

pub fn server() -> Server {
    let url = std::env::var("SINGER_PG_URL")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into());
    let rest = url.split("://").nth(1).unwrap();
    let (user, rest) = rest.split_once('@').unwrap();
    let (hostport, database) = rest.split_once('/').unwrap();
    let (host, port) = hostport.split_once(':').unwrap_or((hostport, "5432"));
    Server {
        host: host.into(),
        port: port.parse().unwrap(),
        user: user.into(),
        database: database.into(),
    }
}

/// A fresh, empty schema name for one test.
pub fn fresh_schema(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tp_{tag}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    sql(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
    name
}

/// Runs SQL and returns every row as text (NULL as None).
pub fn sql(query: &str) -> Vec<Vec<Option<String>>> {
    sql_in(&server().database, query)
}

/// A single value from database `db`.
pub fn scalar_in(db: &str, query: &str) -> Option<String> {
    sql_in(db, query)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
}

/// Runs SQL in database `db`, returning every row as text.
pub fn sql_in(db: &str, query: &str) -> Vec<Vec<Option<String>>> {
    let s = server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let conn = format!(
            "host={} port={} user={} dbname={db}",
            s.host, s.port, s.user
        );
        let (client, connection) = tokio_postgres::connect(&conn, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
        let mut rows = Vec::new();
        for msg in client.simple_query(query).await.unwrap() {
            if let tokio_postgres::SimpleQueryMessage::Row(r) = msg {
                rows.push((0..r.len()).map(|i| r.get(i).map(str::to_string)).collect());
            }
        }
        rows
    })
}

/// A single value.
pub fn scalar(query: &str) -> Option<String> {
    sql(query)
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .flatten()
}

/// Writes a config for the test server into a temp dir.
pub fn config(schema: &str, extra: serde_json::Value) -> (tempfile::TempDir, PathBuf) {
    let s = server();
    let mut c = serde_json::json!({
        "host": s.host, "port": s.port, "user": s.user, "database": s.database,
        "default_target_schema": schema, "sslmode": "disable"
    });
    if let serde_json::Value::Object(m) = extra {
        c.as_object_mut().unwrap().extend(m);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, c.to_string()).unwrap();
    (dir, path)
}

pub fn target(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_target-postgres"));
    cmd.arg("--config").arg(config);
    cmd
}

/// Loads `input` with extra config; returns the process output.
pub fn load(schema: &str, extra: serde_json::Value, input: &str) -> Output {
    let (_dir, cfg) = config(schema, extra);
    run_with_stdin(target(&cfg), input.as_bytes())
}

/// Asserts success and returns the echoed states.
pub fn ok(out: &Output) -> Vec<serde_json::Value> {
    assert!(
        out.status.success(),
        "target failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Builds a stream from message values.
pub fn stream(messages: &[serde_json::Value]) -> String {
    messages.iter().map(|m| m.to_string() + "\n").collect()
}
