//! Failure of either side: the last confirmed state is kept, the other side is stopped, the
//! report names what failed; a killed load is replayed from the spool.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::{Project, bin, fake_tap, stderr, tap_script};

const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{"i":{"type":"integer"}}},"key_properties":["i"]}"#;

fn rec(i: u32) -> String {
    format!(r#"{{"type":"RECORD","stream":"s","record":{{"i":{i}}}}}"#)
}

fn state(n: u32) -> String {
    format!(r#"{{"type":"STATE","value":{{"bookmarks":{{"s":{{"n":{n}}}}}}}}}"#)
}

fn project(
    dest: &std::path::Path,
    tap: &std::path::Path,
    target: &std::path::Path,
    extra: &str,
) -> String {
    format!(
        r#"
[taps.t]
executable = "{tap}"
[targets.jsonl]
executable = "{target}"
[targets.jsonl.config]
destination_path = "{dest}"
[pipelines.p]
tap = "t"
target = "jsonl"
{extra}
"#,
        tap = tap.display(),
        target = target.display(),
        dest = dest.display()
    )
}

#[test]
fn a_failing_tap_keeps_the_last_confirmed_state() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let lines = [SCHEMA.to_string(), rec(1), state(1), rec(2)];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let tap = fake_tap(&p, "tap.sh", &lines, 3);
    p.write(&project(out_dir.path(), &tap, &bin("target-jsonl"), ""));
    let out = p.singer(&["run", "p"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("tap `t` failed (exit 3)"), "{err}");
    assert!(
        err.contains("tap says goodbye"),
        "the tap's last stderr lines are reported: {err}"
    );
    // The target committed what came before the failure and confirmed the state.
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 1}}}));
    let runs = p.runs();
    assert_eq!(runs[0]["outcome"], "failed");
    assert_eq!(runs[0]["tap_exit"], "exit 3");
    assert_eq!(runs[0]["target_exit"], "exit 0");
}

#[test]
fn a_failing_target_stops_the_tap_and_keeps_the_stored_state() {
    let p = Project::new("");
    // A tap that would run forever.
    let tap = tap_script(
        &p,
        "tap.sh",
        &format!(
            "printf '%s\\n' '{SCHEMA}'\nwhile true; do printf '%s\\n' '{}'; sleep 0.01; done\n",
            rec(1)
        ),
    );
    let target = p.script(
        "target.sh",
        "#!/bin/sh\nhead -n 3 > /dev/null\necho 'target: disk full' >&2\nexit 4\n",
    );
    p.write(&project(p.path(), &tap, &target, ""));
    let before = json!({"bookmarks": {"s": {"n": 0}}});
    let mut set = p.command(&["state", "set", "p", "-"]);
    set.stdin(std::process::Stdio::piped());
    let mut child = set.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(before.to_string().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let started = Instant::now();
    let out = p.singer(&["run", "p"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the tap was not stopped"
    );
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("target `jsonl` failed (exit 4)"), "{err}");
    assert!(err.contains("disk full"), "{err}");
    assert_eq!(p.state("p").unwrap(), before);
}

/// A target killed in the middle of a load leaves its confirmed state and a spool; the spool is
/// replayed into a working target without running the tap again.
#[test]
fn a_killed_target_leaves_a_replayable_spool() {
    killed_target_then_replay("[pipelines.p.spool]\nmax_records = 2\n");
}

/// The same with the spool's records in Parquet files, loaded through BATCH messages.
#[test]
fn a_parquet_spool_is_replayed_the_same() {
    killed_target_then_replay("[pipelines.p.spool]\nmax_records = 2\nformat = \"parquet\"\n");
}

fn killed_target_then_replay(spool: &str) {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let mut lines = vec![SCHEMA.to_string()];
    for i in 1..=10 {
        lines.push(rec(i));
        if i % 2 == 0 {
            lines.push(state(i));
        }
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let tap = fake_tap(&p, "tap.sh", &lines, 0);
    // Confirms the first two states it sees, then dies by SIGKILL.
    let killer = p.script(
        "killer.py",
        "#!/usr/bin/env python3\nimport json, os, signal, sys\nseen = 0\nfor line in sys.stdin:\n    m = json.loads(line)\n    if m['type'] == 'STATE':\n        print(json.dumps(m['value']), flush=True)\n        seen += 1\n        if seen == 2:\n            os.kill(os.getpid(), signal.SIGKILL)\n",
    );
    p.write(&project(out_dir.path(), &tap, &killer, spool));
    let out = p.singer(&["run", "p"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("killed by signal 9"),
        "{}",
        stderr(&out)
    );
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 4}}}));
    // The batches after the confirmed state are still spooled.
    let list = p.singer(&["spool", "list", "p"]);
    let batches: Vec<serde_json::Value> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!batches.is_empty());
    let spooled: u64 = batches.iter().map(|b| b["records"].as_u64().unwrap()).sum();
    assert_eq!(spooled, 6, "records 5..=10 wait in the spool: {batches:?}");
    let parquet = parquet_files(&p.path().join(".singer/spool"));
    assert_eq!(
        parquet > 0,
        spool.contains("parquet"),
        "{parquet} Parquet files in the spool"
    );

    // Point the pipeline at a working target and replay; the tap is not run again.
    std::fs::write(
        p.path().join("tap.sh"),
        "#!/bin/sh\necho 'the tap must not run' >&2\nexit 9\n",
    )
    .unwrap();
    p.write(&project(out_dir.path(), &tap, &bin("target-jsonl"), spool));
    let out = p.singer(&["spool", "replay", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        p.state("p").unwrap(),
        json!({"bookmarks": {"s": {"n": 10}}})
    );
    let loaded = std::fs::read_to_string(out_dir.path().join("s.jsonl")).unwrap();
    assert_eq!(loaded.lines().count(), 6, "{loaded}");
    let list = p.singer(&["spool", "list", "p"]);
    assert!(
        list.stdout.is_empty(),
        "the spool is empty after the replay"
    );
}

#[test]
fn two_runs_of_one_pipeline_do_not_overlap() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let tap = tap_script(&p, "tap.sh", "sleep 3\n");
    p.write(&project(out_dir.path(), &tap, &bin("target-jsonl"), ""));
    let mut first = p
        .command(&["run", "p"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = p.path().join(".singer/locks/p.lock");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&lock).is_ok_and(|t| t.contains("pid")) {
        assert!(
            Instant::now() < deadline,
            "the first run did not take its lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = p.singer(&["run", "p"]);
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("already being run (pid"),
        "{}",
        stderr(&second)
    );
    assert!(first.wait().unwrap().success());
    // Once the first finished, the pipeline runs again.
    let third = p.singer(&["run", "p"]);
    assert!(third.status.success(), "{}", stderr(&third));
}

/// SIGTERM stops extraction; the target commits and confirms what it has; the state up to
/// there is kept and the run is reported as stopped, which is not a failure (exit 0).
#[test]
fn sigterm_stops_the_run_at_a_checkpoint() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let tap = tap_script(
        &p,
        "tap.sh",
        &format!(
            "printf '%s\\n' '{SCHEMA}' '{}' '{}'\nsleep 60\n",
            rec(1),
            state(1)
        ),
    );
    // The target flushes (and confirms) after 100 ms, while the tap is still running.
    let toml = project(out_dir.path(), &tap, &bin("target-jsonl"), "").replace(
        "[pipelines.p]",
        "max_batch_age_seconds = 0.1\n[pipelines.p]",
    );
    p.write(&toml);
    let child = p
        .command(&["run", "p"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first state is confirmed, then ask the run to stop.
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.state("p").is_none() {
        assert!(Instant::now() < deadline, "no state was confirmed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id().to_string();
    let started = Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "the tap was not stopped"
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("stopped"), "{}", stderr(&out));
    assert_eq!(p.runs().pop().unwrap()["outcome"], "stopped");
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 1}}}));
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("s.jsonl"))
            .unwrap()
            .lines()
            .count(),
        1
    );
}

/// Parquet files under `dir`, at any depth.
fn parquet_files(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() {
                parquet_files(&p)
            } else {
                usize::from(p.extension().is_some_and(|x| x == "parquet"))
            }
        })
        .sum()
}
