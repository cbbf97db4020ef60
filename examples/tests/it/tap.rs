use serde_json::{Value, json};
use singer_core::check::check_stream;

use crate::{Api, records, tap, write_json};

#[test]
fn full_sync_conforms_and_bookmarks_the_newest_row() {
    let api = Api::start(&["--pages", "3", "--page-size", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(
        dir.path(),
        "c.json",
        &json!({"base_url": api.url, "page_size": 4}),
    );
    let out = tap(&cfg, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = check_stream(out.stdout.as_slice(), true).unwrap();
    assert_eq!(report.records["items"], 15);
    let state = report.final_state.unwrap();
    assert_eq!(
        state["bookmarks"]["items"]["updated_at"],
        "2024-01-01T15:00:00Z"
    );
    assert_eq!(state["currently_syncing"], Value::Null);
    // Numbers keep their text: 12 * 3 = 36 and 3 % 100 = 3 → 36.03.
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(r#""amount":36.03"#), "{text}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(r#"INFO METRIC: {"type":"counter","metric":"record_count","value":15"#),
        "{stderr}"
    );
}

#[test]
fn incremental_run_resumes_from_the_bookmark() {
    let api = Api::start(&["--pages", "2", "--page-size", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(
        dir.path(),
        "c.json",
        &json!({"base_url": api.url, "page_size": 3}),
    );
    let first = tap(&cfg, None);
    let state = check_stream(first.stdout.as_slice(), false)
        .unwrap()
        .final_state
        .unwrap();
    let state_file = write_json(dir.path(), "state.json", &state);
    // Nothing changed: only the boundary row (>= bookmark) comes again.
    let again = records(&tap(&cfg, Some(&state_file)).stdout);
    assert_eq!(
        again
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![10]
    );
    // Item 4 changes: it is read again.
    api.post("/touch?id=4");
    let changed = records(&tap(&cfg, Some(&state_file)).stdout);
    assert_eq!(
        changed
            .iter()
            .map(|r| r["id"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![10, 4]
    );
}

#[test]
fn transient_server_errors_are_retried() {
    let api = Api::start(&["--pages", "1", "--page-size", "3", "--fail-first", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(dir.path(), "c.json", &json!({"base_url": api.url}));
    let out = tap(&cfg, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(records(&out.stdout).len(), 3);
}

#[test]
fn discover_about_and_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(
        dir.path(),
        "c.json",
        &json!({"base_url": "http://127.0.0.1:9", "api_token": "s3cret-token"}),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tap-pages"))
        .arg("--config")
        .arg(&cfg)
        .arg("--discover")
        .output()
        .unwrap();
    assert!(out.status.success());
    let catalog: singer_core::Catalog = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(catalog.streams[0].key_properties(), vec!["id"]);
    let about = std::process::Command::new(env!("CARGO_BIN_EXE_tap-pages"))
        .arg("--about")
        .output()
        .unwrap();
    let about: Value = serde_json::from_slice(&about.stdout).unwrap();
    assert!(about["settings"]["properties"]["base_url"].is_object());
    assert!(
        about["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("state"))
    );
    // Unreachable server: fails with exit 1, and the token never shows.
    let out = tap(&cfg, None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CRITICAL") && !err.contains("s3cret-token"),
        "{err}"
    );
    // Unknown setting: exit 2 with the key named.
    let bad = write_json(
        dir.path(),
        "bad.json",
        &json!({"base_url": "http://x", "pagesize": 3}),
    );
    let out = tap(&bad, None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `pagesize`"));
}
