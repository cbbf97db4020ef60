//! Several schedulers and one-off runs, each with a home of its own (as on separate hosts),
//! sharing one PostgreSQL state store: a pipeline never runs twice at once, no state write is
//! lost, and a run whose lock's session ends stores nothing more.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Project, bin, pg_url, psql, stderr, tap_script, unique};

/// Shell lines setting `$n` to the counter of the state the tap was given (0 without one).
const READ_COUNTER: &str = r#"state=''
while [ $# -gt 0 ]; do
  case "$1" in --state) state="$2"; shift;; esac
  shift
done
n=''
[ -n "$state" ] && n=$(sed -n 's/.*"n":\([0-9]*\).*/\1/p' "$state")
[ -n "$n" ] || n=0
next=$((n + 1))
"#;

/// A project (a host) whose pipeline `p` (every second) runs `tap_body` into target-jsonl, its
/// states in `schema` of the shared PostgreSQL.
fn host(schema: &str, tap_body: &str) -> Project {
    let p = Project::new("");
    let tap = tap_script(&p, "tap.sh", &format!("{READ_COUNTER}{tap_body}"));
    p.write(&format!(
        r#"
[state]
backend = "postgres"
url = "{url}"
schema = "{schema}"
[taps.t]
executable = "{tap}"
[targets.j]
executable = "{target}"
[targets.j.config]
destination_path = "{dest}"
[pipelines.p]
tap = "t"
target = "j"
schedule = "* * * * * *"
"#,
        url = pg_url(),
        tap = tap.display(),
        target = bin("target-jsonl").display(),
        dest = p.path().join("out").display(),
    ));
    p
}

fn kill(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -s {sig} {pid}");
}

/// `singer schedule` in `p`, its stderr (JSON log lines) in `log`.
fn scheduler(p: &Project, log: &Path) -> Child {
    p.command(&["schedule"])
        .stderr(std::fs::File::create(log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

/// Every run record of a host (`singer runs` shows the last 20).
fn all_runs(p: &Project) -> Vec<Value> {
    std::fs::read_to_string(p.path().join(".singer/runs.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn log_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The counters of the states stored for `p`, in the order they were stored.
fn stored_counters(schema: &str) -> Vec<u64> {
    psql(&format!(
        "SELECT value->'bookmarks'->'s'->>'n' FROM {schema}.state_history WHERE id = 'p' \
         ORDER BY at"
    ))
    .lines()
    .map(|l| l.parse().unwrap())
    .collect()
}

#[test]
fn two_schedulers_and_one_off_runs_share_one_state_database() {
    let schema = unique("shared");
    let shared = tempfile::tempdir().unwrap();
    let dir = shared.path().display();
    // Each run: refuses to start while another run of `p` is inside (from any host), notes the
    // counter it emits, and stays inside long enough for the schedulers to collide. It ignores
    // SIGTERM, so stopping the schedulers lets a run that is going end normally.
    let body = format!(
        r#"trap '' TERM
if ! mkdir '{dir}/inside' 2>/dev/null; then
  echo "overlap: a run started from $n while another was inside" >> '{dir}/overlaps'
  echo 'another run of the pipeline is running' >&2
  exit 1
fi
sleep 0.25
printf '%s\n' '{{"type":"SCHEMA","stream":"s","schema":{{"type":"object","properties":{{"n":{{"type":"integer"}}}}}},"key_properties":[]}}'
printf '{{"type":"RECORD","stream":"s","record":{{"n":%d}}}}\n' "$next"
printf '{{"type":"STATE","value":{{"bookmarks":{{"s":{{"n":%d}}}}}}}}\n' "$next"
echo "$next" >> '{dir}/counters'
rmdir '{dir}/inside'
"#
    );
    let a = host(&schema, &body);
    let b = host(&schema, &body);
    let c = host(&schema, &body);
    let (log_a, log_b) = (shared.path().join("a.log"), shared.path().join("b.log"));
    let mut sched_a = scheduler(&a, &log_a);
    let mut sched_b = scheduler(&b, &log_b);

    // One-off runs from a third host in between: each runs, or finds `p` busy (exit 3).
    let until = Instant::now() + Duration::from_secs(25);
    let (mut one_off_ran, mut one_off_busy) = (0, 0);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1300));
        let out = c.singer(&["run", "p"]);
        match out.status.code() {
            Some(0) => one_off_ran += 1,
            Some(3) => {
                assert!(
                    stderr(&out).contains("already being run") && stderr(&out).contains(" pid "),
                    "{}",
                    stderr(&out)
                );
                one_off_busy += 1;
            }
            _ => panic!("one-off run: {:?}\n{}", out.status, stderr(&out)),
        }
    }
    // Stop them at a quiet moment: runs start on the second and by 0.6 s past it are in their
    // tap (which lets a stopping run end normally) or done. A run stopped between taking the
    // lock and starting its tap is recorded as `stopped` and counted below.
    let past = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_millis();
    std::thread::sleep(Duration::from_millis(u64::from((1600 - past) % 1000)));
    kill(sched_a.id(), "TERM");
    kill(sched_b.id(), "TERM");
    assert!(sched_a.wait().unwrap().success(), "{:?}", log_lines(&log_a));
    assert!(sched_b.wait().unwrap().success(), "{:?}", log_lines(&log_b));

    let overlaps = shared.path().join("overlaps");
    assert!(
        !overlaps.exists(),
        "{}",
        std::fs::read_to_string(&overlaps).unwrap_or_default()
    );
    // Every run started from the state the previous one stored: the counters the taps
    // emitted are 1, 2, 3, … with no repeat and no gap.
    let emitted: Vec<u64> = std::fs::read_to_string(shared.path().join("counters"))
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let runs = emitted.len() as u64;
    assert!(runs >= 20, "only {runs} runs");
    assert_eq!(emitted, (1..=runs).collect::<Vec<_>>());
    // Every state was stored, in order (monotone), and the last one is current.
    assert_eq!(stored_counters(&schema), (1..=runs).collect::<Vec<_>>());
    assert_eq!(
        a.state("p").unwrap(),
        json!({"bookmarks": {"s": {"n": runs}}})
    );

    // The hosts' records add up to the runs, none failed, and a time skipped because the
    // pipeline ran elsewhere is recorded as `skipped`, naming the holder.
    let mut recorded = 0;
    let mut skipped = 0;
    let mut stopped_before_tap = 0;
    for (p, name) in [(&a, "a"), (&b, "b"), (&c, "c")] {
        for r in all_runs(p) {
            match r["outcome"].as_str().unwrap() {
                "succeeded" => {
                    recorded += 1;
                    assert_eq!(r["attempt"], 1, "{r}");
                }
                "stopped" if r["tap_exit"] == "" || r["tap_exit"].is_null() => {
                    assert_eq!(r["state_advanced"], false, "{r}");
                    stopped_before_tap += 1;
                }
                "skipped" => {
                    assert!(name != "c", "a one-off run is not recorded as skipped: {r}");
                    let note = r["note"].as_str().unwrap();
                    assert!(note.contains("held by ") && note.contains(" pid "), "{r}");
                    assert!(r.get("error").is_none_or(Value::is_null), "{r}");
                    skipped += 1;
                }
                other => panic!("host {name}: a run {other}: {r}"),
            }
        }
    }
    assert_eq!(recorded, runs, "runs recorded by the hosts");
    assert!(skipped > 0, "the schedulers never collided");
    assert!(one_off_ran + one_off_busy > 10);
    // Each run took the lock once.
    assert_eq!(
        psql(&format!(
            "SELECT generation FROM {schema}.run_lock WHERE id = 'p'"
        )),
        (runs + stopped_before_tap).to_string()
    );
    // The schedulers logged skipped times as information, never as an error (a skipped time
    // whose scheduler was stopping is recorded but not logged).
    let mut skip_logs = 0;
    for log in [&log_a, &log_b] {
        for l in log_lines(log) {
            assert_ne!(l["level"], "ERROR", "{l}");
            if l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("skipped: the pipeline is running elsewhere"))
            {
                assert_eq!(l["level"], "INFO", "{l}");
                assert_eq!(l["pipeline"], "p", "{l}");
                skip_logs += 1;
            }
        }
    }
    assert!(
        skip_logs > 0 && skip_logs <= skipped,
        "{skip_logs} of {skipped}"
    );
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}

/// The pid of the session holding the run lock of `p` in `schema`, once there is one.
fn lock_session(schema: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let pid = psql(&format!(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND ((classid::bigint << 32) | objid::bigint) = \
             hashtextextended('singer-run:\"{schema}\":p', 0)"
        ));
        if !pid.is_empty() {
            return pid;
        }
        assert!(Instant::now() < deadline, "no advisory lock was taken");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_run_whose_lock_session_ends_stores_no_more_states() {
    let schema = unique("fence");
    let shared = tempfile::tempdir().unwrap();
    let go: PathBuf = shared.path().join("go");
    // Host A's tap: a state, then (ignoring the SIGTERM it gets) a late one once told to.
    let a = host(
        &schema,
        &format!(
            r#"trap '' TERM
printf '%s\n' '{{"type":"SCHEMA","stream":"s","schema":{{"type":"object","properties":{{}}}},"key_properties":[]}}'
printf '{{"type":"STATE","value":{{"bookmarks":{{"s":{{"n":%d}}}}}}}}\n' "$next"
i=0
while [ ! -e '{go}' ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
printf '{{"type":"STATE","value":{{"bookmarks":{{"s":{{"n":%d,"late":true}}}}}}}}\n' "$next"
"#,
            go = go.display()
        ),
    );
    let b = host(
        &schema,
        r#"printf '%s\n' '{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{}},"key_properties":[]}'
printf '{"type":"STATE","value":{"bookmarks":{"s":{"n":%d}}}}\n' "$next"
"#,
    );
    let run_a = a
        .command(&["run", "p"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let session = lock_session(&schema);
    wait_for("the first state", || {
        b.state("p") == Some(json!({"bookmarks": {"s": {"n": 1}}}))
    });

    // The lock's session ends (a restart, an idle timeout, a network cut) while A goes on.
    assert_eq!(
        psql(&format!("SELECT pg_terminate_backend({session})")),
        "t"
    );
    wait_for("the lock's release", || {
        psql(&format!(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = {session}"
        )) == "0"
    });
    // B, on another host, takes the lock and runs from A's stored state.
    let out = b.singer(&["run", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(b.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 2}}}));
    // A's late state is confirmed by its target but not stored.
    std::fs::write(&go, "").unwrap();
    let out = run_a.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("lost the run lock of state id `p`"),
        "{}",
        stderr(&out)
    );
    let runs = a.runs();
    assert_eq!(runs.len(), 1, "no retry: {runs:?}");
    assert_eq!(runs[0]["outcome"], "failed");
    assert!(
        runs[0]["error"]
            .as_str()
            .unwrap()
            .contains("lost the run lock of state id `p`"),
        "{}",
        runs[0]
    );
    assert_eq!(runs[0]["states_confirmed"], 1, "{}", runs[0]);

    assert_eq!(b.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 2}}}));
    assert_eq!(stored_counters(&schema), vec![1, 2]);
    assert_eq!(
        psql(&format!(
            "SELECT count(*) FROM {schema}.state_history WHERE value ? 'late' \
             OR value->'bookmarks'->'s' ? 'late'"
        )),
        "0"
    );
    assert_eq!(
        psql(&format!(
            "SELECT generation FROM {schema}.run_lock WHERE id = 'p'"
        )),
        "2"
    );
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
}
