//! init, schema, check, state, dry-run and config errors.

use serde_json::{Value, json};
use singer_core::testing::stream_cases;

use crate::{Project, stderr};

#[test]
fn init_writes_a_project_that_loads_and_schema_describes_it() {
    let p = Project::new("");
    std::fs::remove_file(p.path().join("singer.toml")).unwrap();
    let out = p.singer(&["init"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !p.singer(&["init"]).status.success(),
        "init does not overwrite"
    );
    // The starter parses: its pipeline shows in a dry run plan up to discovery.
    let cron = p.singer(&["cron"]);
    assert!(cron.status.success(), "{}", stderr(&cron));
    assert!(String::from_utf8(cron.stdout).unwrap().contains("run shop"));
    let schema = p.singer(&["schema"]);
    let v: Value = serde_json::from_slice(&schema.stdout).unwrap();
    assert!(v["properties"]["pipelines"].is_object(), "{v}");
}

#[test]
fn config_errors_name_the_problem() {
    let p = Project::new(
        "[taps.a]\nexecutable = \"x\"\n[pipelines.p]\ntap = \"a\"\ntarget = \"missing\"\n",
    );
    let out = p.singer(&["run", "p"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("no target named `missing`"),
        "{}",
        stderr(&out)
    );
    let p = Project::new("[taps.a]\nexecutable = \"x\"\ncolour = 1\n");
    let out = p.singer(&["runs"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("colour"), "{}", stderr(&out));
    assert!(stderr(&out).contains("line 3"), "{}", stderr(&out));
    // A secret from the environment that is not set is named, never guessed.
    let p = Project::new(
        "[taps.a]\nexecutable = \"x\"\n[taps.a.config]\npassword = \"${SINGER_TEST_NO_SUCH_VAR}\"\n[targets.b]\nexecutable = \"y\"\n[pipelines.p]\ntap = \"a\"\ntarget = \"b\"\n",
    );
    let out = p.singer(&["run", "p"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("SINGER_TEST_NO_SUCH_VAR"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_agrees_with_the_conformance_corpus() {
    let p = Project::new("");
    let cases = stream_cases();
    assert!(cases.len() > 20);
    for case in cases {
        let valid = case.get("valid").and_then(Value::as_bool).unwrap_or(true);
        let out = p.singer(&["check", case.path.to_str().unwrap()]);
        let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            out.status.success(),
            valid,
            "{}: {}",
            case.name,
            stderr(&out)
        );
        assert_eq!(verdict["valid"], json!(valid), "{}", case.name);
        if valid {
            let want = case.get("final_state").cloned().unwrap_or(Value::Null);
            assert_eq!(verdict["final_state"], want, "{}", case.name);
        } else {
            assert_eq!(
                verdict["line"], case.expect["error"]["line"],
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn state_commands_and_dry_run() {
    let p = Project::new(
        "[taps.a]\nexecutable = \"tap-nowhere\"\ncatalog = \"c.json\"\n[targets.b]\nexecutable = \"target-nowhere\"\n[pipelines.p]\ntap = \"a\"\ntarget = \"b\"\n",
    );
    std::fs::write(
        p.path().join("c.json"),
        r#"{"streams":[{"tap_stream_id":"x","stream":"x","schema":{},"metadata":[{"breadcrumb":[],"metadata":{"selected-by-default":true}}]}]}"#,
    )
    .unwrap();
    std::fs::write(p.path().join("s.json"), r#"{"bookmarks":{"x":{"v":1}}}"#).unwrap();
    assert!(p.singer(&["state", "set", "p", "s.json"]).status.success());
    std::fs::write(p.path().join("s.json"), r#"{"bookmarks":{"x":{"v":2}}}"#).unwrap();
    assert!(p.singer(&["state", "set", "p", "s.json"]).status.success());
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"x": {"v": 2}}}));
    let list = String::from_utf8(p.singer(&["state", "list"]).stdout).unwrap();
    assert!(list.starts_with("p\t"), "{list}");
    let history = String::from_utf8(p.singer(&["state", "history", "p"]).stdout).unwrap();
    assert_eq!(history.lines().count(), 2);

    // A dry run shows the plan: streams and the state the tap would get, and starts nothing.
    let out = p.singer(&["run", "p", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["selected_streams"], json!(["x"]));
    assert_eq!(plan["state"], json!({"bookmarks": {"x": {"v": 2}}}));
    let out = p.singer(&["run", "p", "--dry-run", "--exclude", "x"]);
    assert_eq!(out.status.code(), Some(2), "nothing selected");

    assert!(p.singer(&["state", "clear", "p"]).status.success());
    assert!(p.state("p").is_none());
    assert_eq!(p.singer(&["state", "clear", "p"]).status.code(), Some(1));
}
