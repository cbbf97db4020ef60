use std::process::Command;

use serde_json::json;
use singer_core::testing::interop_path;

use crate::{Api, pipe_into, records, tap, write_json};

#[test]
fn python_target_jsonl_accepts_our_tap() {
    let api = Api::start(&["--pages", "2", "--page-size", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(dir.path(), "c.json", &json!({"base_url": api.url}));
    let out = tap(&cfg, None);
    assert!(out.status.success());
    let dest = dir.path().join("out");
    let tcfg = write_json(
        dir.path(),
        "t.json",
        &json!({"destination_path": dest, "do_timestamp_file": false}),
    );
    let mut target = Command::new(interop_path("target_jsonl_py"));
    target.arg("--config").arg(&tcfg);
    let res = pipe_into(target, &out.stdout);
    assert!(
        res.status.success(),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    let state: serde_json::Value = serde_json::from_slice(&res.stdout).unwrap();
    assert_eq!(
        state["bookmarks"]["items"]["updated_at"],
        "2024-01-01T10:00:00Z"
    );
    let written: Vec<serde_json::Value> = std::fs::read_to_string(dest.join("items.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(written, records(&out.stdout));
}

#[test]
fn our_target_jsonl_accepts_our_tap() {
    let api = Api::start(&["--pages", "2", "--page-size", "5"]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_json(dir.path(), "c.json", &json!({"base_url": api.url}));
    let out = tap(&cfg, None);
    let dest = dir.path().join("out");
    let tcfg = write_json(dir.path(), "t.json", &json!({"destination_path": dest}));
    // The target binary is built by the workspace next to ours.
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tap-pages")).with_file_name("target-jsonl");
    let mut target = Command::new(&bin);
    target.arg("--config").arg(&tcfg);
    let res = pipe_into(target, &out.stdout);
    assert!(
        res.status.success(),
        "{} ({})",
        String::from_utf8_lossy(&res.stderr),
        bin.display()
    );
    let text = std::fs::read_to_string(dest.join("items.jsonl")).unwrap();
    assert_eq!(text.lines().count(), 10);
}
