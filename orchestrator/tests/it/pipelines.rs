//! Whole pipelines with real connectors.

use serde_json::json;
use singer_core::testing::{SINGER_PYTHON_TAP, interop_path};

use crate::{Project, bin, mariadb, pg_url, psql, stderr, unique};

fn url_parts() -> (String, String) {
    // postgresql://user@host:port/db
    let url = pg_url();
    let rest = url.split("://").nth(1).unwrap().to_string();
    let (user, rest) = rest.split_once('@').unwrap();
    let db = rest.split('/').nth(1).unwrap().to_string();
    (user.to_string(), db)
}

#[test]
fn mysql_to_postgres_keeps_state_and_runs_incrementally() {
    let db = unique("inc");
    let schema = unique("pg");
    mariadb(&format!(
        "CREATE DATABASE {db} CHARACTER SET utf8mb4; \
         CREATE TABLE {db}.orders (id INT PRIMARY KEY, note VARCHAR(20), updated_at DATETIME(6)); \
         INSERT INTO {db}.orders VALUES (1, 'héllo 😀', '2024-01-01 00:00:00'), (2, 'b', '2024-01-02 00:00:00'); \
         CREATE TABLE {db}.skipped (id INT PRIMARY KEY)"
    ));
    let (user, pgdb) = url_parts();
    let p = Project::new(&format!(
        r#"
[taps.mysql]
executable = "{tap}"
[taps.mysql.config]
host = "127.0.0.1"
user = "root"
filter_dbs = "{db}"

[targets.pg]
executable = "{target}"
[targets.pg.config]
host = "127.0.0.1"
user = "{user}"
database = "{pgdb}"
default_target_schema = "{schema}"

[pipelines.orders]
tap = "mysql"
target = "pg"
select = ["{db}-*"]
exclude = ["*-skipped"]
[pipelines.orders.streams."{db}-orders"]
replication_method = "INCREMENTAL"
replication_key = "updated_at"
"#,
        tap = bin("tap-mysql").display(),
        target = bin("target-postgres").display(),
    ));
    let out = p.singer(&["run", "orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        psql(&format!("SELECT id, note FROM {schema}.orders ORDER BY id")),
        "1|héllo 😀\n2|b"
    );
    let state = p.state("orders").unwrap();
    let id = format!("{db}-orders");
    assert_eq!(
        state["bookmarks"][&id]["replication_key_value"],
        json!("2024-01-02 00:00:00.000000")
    );
    // The unselected table was not read.
    assert!(state["bookmarks"].get(format!("{db}-skipped")).is_none());

    // A second run reads from the bookmark: the boundary row again, and the new one.
    mariadb(&format!(
        "INSERT INTO {db}.orders VALUES (3, 'c', '2024-01-03 00:00:00')"
    ));
    let out = p.singer(&["run", "orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(psql(&format!("SELECT count(*) FROM {schema}.orders")), "3");
    let runs = p.runs();
    assert_eq!(runs.len(), 2);
    assert!(
        runs.iter()
            .all(|r| r["outcome"] == "succeeded" && r["state_advanced"] == true)
    );
    assert_eq!(runs[1]["streams"][&id]["records"], json!(2));
    // Metrics from the tap and the target are in the run record.
    assert!(
        runs[1]["metrics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["source"] == "target")
    );
    // Discovery is cached: the catalog was written once and reused.
    assert!(p.path().join(".singer/catalogs/mysql.json").exists());
    assert!(
        stderr(&out).contains("using the cached catalog"),
        "{}",
        stderr(&out)
    );

    // --full-refresh ignores the stored state.
    let out = p.singer(&["run", "orders", "--full-refresh"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.runs()[2]["streams"][&id]["records"], json!(3));

    psql(&format!("DROP SCHEMA {schema} CASCADE"));
    mariadb(&format!("DROP DATABASE {db}"));
}

#[test]
fn a_python_tap_feeds_our_target() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new(&format!(
        r#"
[taps.py]
executable = "{python}"
args = ["-c", {script}]
catalog = "catalog.json"        # singer-python scripts cannot discover

[targets.jsonl]
executable = "{target}"
[targets.jsonl.config]
destination_path = "{dest}"

[pipelines.py_to_rust]
tap = "py"
target = "jsonl"
"#,
        python = interop_path("python_jsonl").display(),
        script = toml_string(SINGER_PYTHON_TAP),
        target = bin("target-jsonl").display(),
        dest = out_dir.path().display(),
    ));
    std::fs::write(
        p.path().join("catalog.json"),
        json!({"streams": [{"tap_stream_id": "users", "stream": "users",
            "schema": {"type": "object", "properties": {}},
            "metadata": [{"breadcrumb": [], "metadata": {"selected": true}}]}]})
        .to_string(),
    )
    .unwrap();
    let out = p.singer(&["run", "py_to_rust"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(out_dir.path().join("users.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("12345678901234567890.123456789"), "{text}");
    assert_eq!(
        p.state("py_to_rust").unwrap(),
        json!({"bookmarks": {"users": {"updated_at": "2024-01-02T00:00:00Z"}}})
    );
}

#[test]
fn our_tap_feeds_a_python_target() {
    let db = unique("pyt");
    mariadb(&format!(
        "CREATE DATABASE {db} CHARACTER SET utf8mb4; \
         CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(20)); \
         INSERT INTO {db}.items VALUES (1, 'a'), (2, 'ü')"
    ));
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new(&format!(
        r#"
[taps.mysql]
executable = "{tap}"
[taps.mysql.config]
host = "127.0.0.1"
user = "root"
filter_dbs = "{db}"

[targets.pyjsonl]
executable = "{pytarget}"
[targets.pyjsonl.config]
destination_path = "{dest}"

[pipelines.to_python]
tap = "mysql"
target = "pyjsonl"
select = ["*"]
"#,
        tap = bin("tap-mysql").display(),
        pytarget = interop_path("target_jsonl_py").display(),
        dest = out_dir.path().display(),
    ));
    let out = p.singer(&["run", "to_python"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let files: Vec<_> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    let state = p.state("to_python").unwrap();
    assert_eq!(
        state["bookmarks"][format!("{db}-items")]["initial_full_table_complete"],
        json!(true)
    );
    mariadb(&format!("DROP DATABASE {db}"));
}

/// TOML basic string with the text escaped.
fn toml_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn the_example_tap_feeds_target_jsonl() {
    use std::io::BufRead;
    let mut api = std::process::Command::new(bin("demo-api"))
        .args(["--pages", "3", "--page-size", "4"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    std::io::BufReader::new(api.stdout.as_mut().unwrap())
        .read_line(&mut url)
        .unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new(&format!(
        r#"
[taps.pages]
executable = "{tap}"
[taps.pages.config]
base_url = "{url}"

[targets.jsonl]
executable = "{target}"
[targets.jsonl.config]
destination_path = "{dest}"

[pipelines.api]
tap = "pages"
target = "jsonl"
buffer = "4MiB"                 # the copying path with a user-space buffer
"#,
        tap = bin("tap-pages").display(),
        url = url.trim(),
        target = bin("target-jsonl").display(),
        dest = out_dir.path().display(),
    ));
    let out = p.singer(&["run", "api"]);
    let _ = api.kill();
    let _ = api.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(out_dir.path().join("items.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 12);
    let state = p.state("api").unwrap();
    assert!(
        state["bookmarks"]["items"]["updated_at"].is_string(),
        "{state}"
    );
    assert_eq!(p.runs()[0]["streams"]["items"]["records"], json!(12));
}
