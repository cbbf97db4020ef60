//! SIGTERM and SIGINT stop the tap at a message boundary: its stdout ends on a whole line, it
//! exits 128 + the signal, and its last STATE resumes the copy with nothing lost. A second
//! signal exits at once, even with stdout blocked.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use singer_core::testing::tap::{stop_tap_when, tap_command};

use crate::{Db, TAP, discover, run_tap, select};

const ROWS: i64 = 6000;

/// A table whose rows are 0 to 6 KB wide, so that lines straddle every write buffer.
fn wide_table(tag: &str) -> Db {
    let db = Db::shared(tag);
    db.exec(&format!(
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO t SELECT seq, REPEAT(CHAR(97 + seq MOD 26), (seq * 7919) MOD 6000) \
         FROM seq_1_to_{ROWS}"
    ));
    db
}

fn ids(records: &[Value]) -> Vec<i64> {
    records.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[test]
fn a_stop_signal_mid_copy_ends_on_a_whole_line_and_its_last_state_resumes() {
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let db = wide_table(&format!("sig{signal}"));
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = db.config();
        cfg["state_every_rows"] = json!(250);
        let id = db.stream("t");
        let catalog = select(&discover(dir.path(), &cfg), &[&id], "FULL_TABLE", None);
        let cmd = tap_command(
            std::path::Path::new(TAP),
            dir.path(),
            &cfg,
            Some(&catalog),
            None,
        );
        let mut states = 0;
        let stopped = stop_tap_when(cmd, signal, |m| {
            states += usize::from(m["type"] == "STATE");
            states == 4
        });
        assert_eq!(
            stopped.status.code(),
            Some(code),
            "SIG{signal}: {}",
            stopped.stderr
        );
        assert!(
            stopped.stderr.contains(&format!("stopped by SIG{signal}")),
            "{}",
            stopped.stderr
        );
        assert!(!stopped.stderr.contains("CRITICAL"), "{}", stopped.stderr);
        let before = ids(&stopped.records(&id));
        let last = stopped.states().pop().unwrap();
        let cut = last["bookmarks"][&id]["last_pk_fetched"]["id"]
            .as_i64()
            .unwrap_or_else(|| panic!("the copy was not cut: {last}"));
        assert!(cut < ROWS, "the copy was not cut: {last}");
        // Nothing half-done: the copy's closing ACTIVATE_VERSION was not sent.
        let activates = stopped
            .messages
            .iter()
            .filter(|m| m["type"] == "ACTIVATE_VERSION")
            .count();
        assert_eq!(activates, 1, "only the first copy's opening one");
        // Every row up to the state's key was written before it, in order.
        assert_eq!(
            before[..usize::try_from(cut).unwrap()],
            (1..=cut).collect::<Vec<_>>()
        );

        let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(&last));
        assert!(resumed.ok, "{}", resumed.stderr);
        assert_eq!(
            ids(&resumed.records(&id)),
            (cut + 1..=ROWS).collect::<Vec<_>>(),
            "the resumed copy reads exactly the rows after the state's key"
        );
        assert_eq!(
            resumed.last_state()["bookmarks"][&id]["initial_full_table_complete"],
            json!(true)
        );
    }
}

#[test]
fn a_second_signal_exits_at_once_even_with_stdout_blocked() {
    let db = wide_table("sig2");
    let dir = tempfile::tempdir().unwrap();
    let cfg = db.config();
    let id = db.stream("t");
    let catalog = select(&discover(dir.path(), &cfg), &[&id], "FULL_TABLE", None);
    // Nobody reads stdout: the tap blocks on the full pipe and cannot finish its stop.
    let mut child = tap_command(
        std::path::Path::new(TAP),
        dir.path(),
        &cfg,
        Some(&catalog),
        None,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let pid = child.id().to_string();
    let kill = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args(["-s", sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    };
    kill("TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "a blocked tap cannot finish its stop"
    );
    let started = Instant::now();
    kill("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the second signal did not end it"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(143));
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exiting at once"), "{stderr}");
}
