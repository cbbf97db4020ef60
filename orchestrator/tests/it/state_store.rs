//! The PostgreSQL state store: states and history in tables, runs locked with advisory locks.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Project, bin, fake_tap, pg_url, psql, stderr, tap_script, unique};

#[test]
fn postgres_store_keeps_states_and_locks_runs() {
    let schema = unique("state");
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let tap = fake_tap(
        &p,
        "tap.sh",
        &[
            r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{}},"key_properties":[]}"#,
            r#"{"type":"STATE","value":{"bookmarks":{"s":{"n":1}}}}"#,
        ],
        0,
    );
    let slow = tap_script(&p, "slow.sh", "sleep 3\n");
    p.write(&format!(
        r#"
[state]
backend = "postgres"
url = "{url}"
schema = "{schema}"
[taps.t]
executable = "{tap}"
[taps.slow]
executable = "{slow}"
[targets.j]
executable = "{target}"
[targets.j.config]
destination_path = "{dest}"
[pipelines.p]
tap = "t"
target = "j"
[pipelines.slow]
tap = "slow"
target = "j"
state_id = "p"
"#,
        url = pg_url(),
        tap = tap.display(),
        slow = slow.display(),
        target = bin("target-jsonl").display(),
        dest = out_dir.path().display()
    ));
    let out = p.singer(&["run", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        psql(&format!(
            "SELECT value::text FROM {schema}.state WHERE id = 'p'"
        )),
        r#"{"bookmarks": {"s": {"n": 1}}}"#
    );
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 1}}}));
    let history = String::from_utf8(p.singer(&["state", "history", "p"]).stdout).unwrap();
    assert_eq!(history.lines().count(), 1, "{history}");

    // Two pipelines sharing a state id never run at once, across processes (and machines).
    let mut first = p
        .command(&["run", "slow"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let held = psql(&format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND ((classid::bigint << 32) | objid::bigint) = hashtextextended('singer-run:\"{schema}\":p', 0)"
        ));
        if held != "0" {
            break;
        }
        assert!(Instant::now() < deadline, "no advisory lock was taken");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = p.singer(&["run", "p"]);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("advisory lock"),
        "{}",
        stderr(&second)
    );
    assert!(first.wait().unwrap().success());
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}
