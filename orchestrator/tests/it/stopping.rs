//! Stopping a run early: SIGTERM to `singer` stops the tap (its group gets SIGTERM), the target
//! commits at end of input and every state it confirms is stored, the run is `stopped` and
//! exits 0, no child is left, and the next run completes the data exactly once. A Python-style
//! target is never signalled. A second signal stops every child and exits at once; a target
//! that outlives `stop_grace` gets SIGTERM.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Project, bin, mariadb, pg_url, psql, stderr, tap_script, unique};

const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{"i":{"type":"integer"}}},"key_properties":["i"]}"#;

fn rec(i: u32) -> String {
    format!(r#"{{"type":"RECORD","stream":"s","record":{{"i":{i}}}}}"#)
}

fn state(n: u32) -> String {
    format!(r#"{{"type":"STATE","value":{{"bookmarks":{{"s":{{"n":{n}}}}}}}}}"#)
}

/// One process's pid, parent and group, from `/proc/<pid>/stat`; zombies are left out.
fn processes() -> Vec<(u32, u32, u32)> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 3 || f[0] == "Z" || f[0] == "X" {
            continue;
        }
        if let (Ok(ppid), Ok(pgrp)) = (f[1].parse(), f[2].parse()) {
            all.push((pid, ppid, pgrp));
        }
    }
    all
}

/// The process groups of `singer`'s children (each tap and target leads one).
fn child_groups(singer: u32) -> Vec<u32> {
    processes()
        .into_iter()
        .filter(|&(pid, ppid, pgrp)| ppid == singer && pgrp == pid)
        .map(|(pid, _, _)| pid)
        .collect()
}

/// Live processes in any of `groups`.
fn left_in(groups: &[u32]) -> Vec<(u32, u32, u32)> {
    processes()
        .into_iter()
        .filter(|p| groups.contains(&p.2))
        .collect()
}

fn kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {sig} {pid}");
}

/// Waits for `cond`, failing after `secs`.
fn wait_for(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `singer run p` in the background, its stderr kept.
fn start(p: &Project, args: &[&str]) -> Child {
    let mut all = vec!["run", "p"];
    all.extend_from_slice(args);
    p.command(&all).stderr(Stdio::piped()).spawn().unwrap()
}

/// A Python-style target: commits only at end of input, echoing the last state then; dies on
/// SIGTERM (writing `term.mark` first). Each line it reads is noted in `seen.log`. With
/// `linger`, it stays on after end of input (a commit that takes too long).
fn python_target(p: &Project, linger: bool) -> std::path::PathBuf {
    let dir = p.path().display().to_string();
    p.script(
        "target.py",
        &format!(
            r#"#!/usr/bin/env python3
import json, signal, sys, time
def term(*_):
    open("{dir}/term.mark", "w").write("SIGTERM")
    sys.exit(1)
signal.signal(signal.SIGTERM, term)
last = None
seen = open("{dir}/seen.log", "a")
for line in sys.stdin:
    m = json.loads(line)
    seen.write(m["type"] + "\n")
    seen.flush()
    if m["type"] == "STATE":
        last = m["value"]
if {linger}:
    time.sleep(600)
if last is not None:
    print(json.dumps(last), flush=True)
"#,
            linger = if linger { "True" } else { "False" }
        ),
    )
}

fn seen_lines(p: &Project) -> usize {
    std::fs::read_to_string(p.path().join("seen.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn project(tap: &Path, target: &Path, extra: &str) -> String {
    format!(
        "[taps.t]\nexecutable = \"{}\"\n[targets.py]\nexecutable = \"{}\"\n\
         [pipelines.p]\ntap = \"t\"\ntarget = \"py\"\n{extra}\n",
        tap.display(),
        target.display()
    )
}

/// A scripted tap: two records and two states, then a long wait (`trap` may ignore SIGTERM).
fn sleepy_tap(p: &Project, trap: &str) -> std::path::PathBuf {
    tap_script(
        p,
        "tap.sh",
        &format!(
            "{trap}printf '%s\\n' '{SCHEMA}' '{}' '{}' '{}' '{}'\nsleep 60\n",
            rec(1),
            state(1),
            rec(2),
            state(2)
        ),
    )
}

fn runs_last(p: &Project) -> Value {
    p.runs().pop().unwrap()
}

#[test]
fn sigterm_leaves_a_python_target_alone_and_stores_its_confirmation() {
    let p = Project::new("");
    let tap = sleepy_tap(&p, "");
    let target = python_target(&p, false);
    p.write(&project(&tap, &target, ""));
    let child = start(&p, &[]);
    wait_for("the target to read 5 lines", 30, || seen_lines(&p) == 5);
    let groups = child_groups(child.id());
    assert_eq!(groups.len(), 2, "a tap and a target");
    kill(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        !p.path().join("term.mark").exists(),
        "the target was signalled"
    );
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 2}}}));
    let run = runs_last(&p);
    assert_eq!(run["outcome"], "stopped", "{run}");
    assert_eq!(run["tap_exit"], "killed by signal 15");
    assert_eq!(run["target_exit"], "exit 0");
    assert!(left_in(&groups).is_empty(), "{:?}", left_in(&groups));
}

#[test]
fn a_timeout_stops_the_tap_and_lets_the_target_commit() {
    let p = Project::new("");
    let tap = sleepy_tap(&p, "");
    let target = python_target(&p, false);
    p.write(&project(&tap, &target, ""));
    let started = Instant::now();
    let out = p.singer(&["run", "p", "--timeout", "2s"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!p.path().join("term.mark").exists());
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 2}}}));
    let run = runs_last(&p);
    assert_eq!(run["target_exit"], "exit 0");
    // The tap ended on the SIGTERM it was sent: that alone is not reported as its failure.
    assert!(
        !run["error"].as_str().unwrap().contains("tap `t` failed"),
        "{run}"
    );
}

#[test]
fn a_target_that_outlives_stop_grace_gets_sigterm() {
    let p = Project::new("");
    let tap = sleepy_tap(&p, "");
    let target = python_target(&p, true);
    p.write(&project(&tap, &target, "stop_grace = \"1s\""));
    let child = start(&p, &[]);
    wait_for("the target to read 5 lines", 30, || seen_lines(&p) == 5);
    let groups = child_groups(child.id());
    kill(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("did not finish within stop_grace"),
        "{}",
        stderr(&out)
    );
    assert!(p.path().join("term.mark").exists());
    assert!(p.state("p").is_none(), "the target confirmed nothing");
    assert!(left_in(&groups).is_empty(), "{:?}", left_in(&groups));
}

#[test]
fn a_second_signal_stops_every_child_then_exits() {
    let p = Project::new("");
    // The tap ignores SIGTERM, so the first signal cannot end the run.
    let tap = sleepy_tap(&p, "trap '' TERM\n");
    let target = python_target(&p, false);
    p.write(&project(&tap, &target, ""));
    let child = start(&p, &[]);
    wait_for("the target to read 5 lines", 30, || seen_lines(&p) == 5);
    let groups = child_groups(child.id());
    assert_eq!(groups.len(), 2);
    kill(child.id(), "TERM");
    std::thread::sleep(Duration::from_millis(500));
    assert!(left_in(&groups).len() >= 2, "both still run");
    let second = Instant::now();
    kill(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(
        second.elapsed() < Duration::from_secs(9),
        "{:?}",
        second.elapsed()
    );
    assert!(left_in(&groups).is_empty(), "{:?}", left_in(&groups));
}

fn pg_user_db() -> (String, String) {
    let url = pg_url();
    let rest = url.split("://").nth(1).unwrap().to_string();
    let (user, rest) = rest.split_once('@').unwrap();
    let db = rest.split('/').nth(1).unwrap().to_string();
    (user.to_string(), db)
}

/// tap-mysql into target-postgres (through a wrapper that keeps a copy of every state the
/// target echoes), SIGTERM mid-run: the run stores exactly the states the target confirmed,
/// leaves no process behind, and a second run loads the rest, each row exactly once.
#[test]
fn sigterm_mid_run_stores_what_the_target_committed_and_a_rerun_completes_once() {
    const ROWS: u32 = 20_000;
    let db = unique("stop");
    let schema = unique("stoppg");
    mariadb(&format!(
        "CREATE DATABASE {db}; \
         CREATE TABLE {db}.t (id INT PRIMARY KEY, v TEXT); \
         INSERT INTO {db}.t SELECT seq, REPEAT(CHAR(97 + seq MOD 26), seq MOD 700) \
         FROM {db}.seq_1_to_{ROWS}"
    ));
    let (user, pgdb) = pg_user_db();
    let p = Project::new("");
    let echoed = p.path().join("echoed.jsonl");
    // About 4000 lines a second into the target, so that the run is still going when the
    // first state is stored: the tap blocks on its full pipe, in the middle of the table.
    let throttle = p.script(
        "throttle.py",
        "#!/usr/bin/env python3\nimport sys, time\nfor i, line in enumerate(sys.stdin.buffer):\n    \
         sys.stdout.buffer.write(line)\n    if i % 40 == 39:\n        sys.stdout.buffer.flush()\n        \
         time.sleep(0.01)\nsys.stdout.buffer.flush()\n",
    );
    let wrapper = p.script(
        "target.sh",
        &format!(
            "#!/bin/bash\n\"{}\" | \"{}\" \"$@\" | tee -a \"{}\"\nexit ${{PIPESTATUS[1]}}\n",
            throttle.display(),
            bin("target-postgres").display(),
            echoed.display()
        ),
    );
    p.write(&format!(
        r#"
[taps.mysql]
executable = "{tap}"
[taps.mysql.config]
host = "127.0.0.1"
user = "root"
filter_dbs = "{db}"
state_every_rows = 200

[targets.pg]
executable = "{wrapper}"
[targets.pg.config]
host = "127.0.0.1"
user = "{user}"
database = "{pgdb}"
default_target_schema = "{schema}"
batch_size_rows = 200

[pipelines.p]
tap = "mysql"
target = "pg"
select = ["{db}-t"]
"#,
        tap = bin("tap-mysql").display(),
        wrapper = wrapper.display(),
    ));
    let child = start(&p, &[]);
    wait_for("a first confirmed state", 60, || p.state("p").is_some());
    let groups = child_groups(child.id());
    assert_eq!(groups.len(), 2, "a tap and a target");
    kill(child.id(), "TERM");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run = runs_last(&p);
    assert_eq!(run["outcome"], "stopped", "{run}");
    assert_eq!(run["tap_exit"], "exit 143", "{run}");
    assert_eq!(run["target_exit"], "exit 0", "{run}");
    assert!(left_in(&groups).is_empty(), "{:?}", left_in(&groups));

    // Every state the target echoed was stored, in order, and nothing else.
    let echoed: Vec<Value> = std::fs::read_to_string(&echoed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let history = p.singer(&["state", "history", "p"]);
    assert!(history.status.success(), "{}", stderr(&history));
    let stored: Vec<Value> = String::from_utf8(history.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|h| h["value"].clone())
        .collect();
    assert_eq!(stored, echoed);
    let id = format!("{db}-t");
    let last = p.state("p").unwrap();
    assert_eq!(&last, echoed.last().unwrap());
    let cut = last["bookmarks"][&id]["last_pk_fetched"]["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("stopped before the copy's end: {last}"));
    // What the stored state covers is in the table.
    let covered = psql(&format!(
        "SELECT count(*) FROM {schema}.t WHERE id <= {cut}"
    ));
    assert_eq!(covered, cut.to_string());

    // The next run resumes after the stored key and completes the table, each row once.
    let out = p.singer(&["run", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let run = runs_last(&p);
    assert_eq!(
        run["streams"][&id]["records"],
        json!(u64::from(ROWS) - cut),
        "resumed from the stored state"
    );
    assert_eq!(
        psql(&format!(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(length(v)) FROM {schema}.t"
        )),
        mariadb(&format!(
            "SELECT count(*), count(DISTINCT id), min(id), max(id), sum(length(v)) FROM {db}.t"
        ))
        .trim()
        .replace('\t', "|")
    );
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
    mariadb(&format!("DROP DATABASE {db}"));
}
