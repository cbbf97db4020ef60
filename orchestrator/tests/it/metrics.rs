//! Prometheus metrics on `--metrics-addr`, scraped with a real HTTP client and parsed as
//! exposition text: records and bytes per stream move during a `singer run`, the outcome, the
//! confirmed-state lag and the spool backlog are there after it (`--metrics-linger` keeps the
//! endpoint up until that final scrape); `singer schedule` counts runs over several ticks and
//! its `/healthz` turns 503 (or closes) after SIGTERM.
//!
//! Each test asks for `127.0.0.1:0` and reads the bound address from the `metrics endpoint
//! listening` log line, so tests never race for a port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{Project, bin, fake_tap, stderr, tap_script};

/// One sample of the exposition text.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed scrape: the `# TYPE` of each family and every sample.
#[derive(Debug)]
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses OpenMetrics / Prometheus text; panics on a malformed line.
    fn parse(text: &str) -> Self {
        assert!(text.ends_with("# EOF\n"), "no `# EOF` at the end: {text}");
        let mut types = BTreeMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, ty) = rest.split_once(' ').unwrap();
                types.insert(name.to_string(), ty.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            samples.push(parse_sample(line));
        }
        Self { types, samples }
    }

    /// The value of the one sample `name{labels}` (labels must match exactly).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .collect();
        assert!(found.len() <= 1, "{name}{want:?} twice: {found:?}");
        found.first().map(|s| s.value)
    }

    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in {:#?}", self.samples))
    }
}

fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).unwrap();
    let name = line[..name_end].to_string();
    assert!(
        name.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "bad metric name in `{line}`"
    );
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        loop {
            let (i, c) = chars.next().unwrap();
            if c == '}' {
                rest = &body[i + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            // key="value" with \\, \" and \n escapes.
            let mut key = String::from(c);
            for (_, c) in chars.by_ref() {
                if c == '=' {
                    break;
                }
                key.push(c);
            }
            assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "`{line}`");
            let mut value = String::new();
            loop {
                match chars.next().unwrap().1 {
                    '\\' => match chars.next().unwrap().1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    '"' => break,
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = rest.split_whitespace().next().unwrap();
    Sample {
        name,
        labels,
        value: value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in `{line}`")),
    }
}

/// `GET http://addr/path` with a real client (no proxy): status and body.
fn get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        let r = client
            .get(format!("http://{addr}{path}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = r.status().as_u16();
        if path == "/metrics" {
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
        }
        Ok((status, r.text().await.map_err(|e| e.to_string())?))
    })
}

fn scrape(addr: &str) -> Scrape {
    let (status, body) = get(addr, "/metrics").unwrap();
    assert_eq!(status, 200, "{body}");
    Scrape::parse(&body)
}

/// A `singer` process with its stderr collected, and the metrics address it logged.
struct Running {
    child: Child,
    addr: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Running {
    fn start(p: &Project, args: &[&str]) -> Self {
        let mut child = p.command(args).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let addr_rx = collect_stderr(&mut child, Arc::clone(&log));
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no metrics address logged: {:?}", log.lock().unwrap()));
        Self { child, addr, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Scrapes until `cond` holds; returns that scrape.
    fn scrape_until(&self, what: &str, secs: u64, cond: impl Fn(&Scrape) -> bool) -> Scrape {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = scrape(&self.addr);
            if cond(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {:#?}\n{}",
                s.samples,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keeps every stderr line; sends the address of the `metrics endpoint listening` line.
fn collect_stderr(child: &mut Child, log: Arc<Mutex<Vec<String>>>) -> Receiver<String> {
    let (tx, rx) = channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            if line.contains("metrics endpoint listening") {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                let _ = tx.send(v["addr"].as_str().unwrap().to_string());
            }
            log.lock().unwrap().push(line);
        }
    });
    rx
}

fn project_toml(tap: &std::path::Path, target: &std::path::Path, dest: &std::path::Path) -> String {
    format!(
        r#"
[taps.t]
executable = "{}"
[targets.j]
executable = "{}"
[targets.j.config]
destination_path = "{}"
"#,
        tap.display(),
        target.display(),
        dest.display()
    )
}

fn schema(stream: &str) -> String {
    format!(
        r#"{{"type":"SCHEMA","stream":"{stream}","schema":{{"type":"object","properties":{{"i":{{"type":"integer"}}}}}},"key_properties":["i"]}}"#
    )
}

fn rec(stream: &str, i: u32) -> String {
    format!(r#"{{"type":"RECORD","stream":"{stream}","record":{{"i":{i}}}}}"#)
}

fn now_secs() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Records per stream move while the run goes on; after it, the final scrape has the outcome,
/// the exact counts and bytes, and the lag of the state the target confirmed; that scrape
/// ends `--metrics-linger`.
#[test]
fn run_metrics_move_during_the_run_and_the_final_scrape_has_the_outcome() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let go = p.path().join("go");
    // Three records of `a` and two of `b`, a state; then, once `go` exists, one more of `a`.
    let first = [
        schema("a"),
        rec("a", 1),
        rec("a", 2),
        rec("a", 3),
        schema("b"),
        rec("b", 1),
        rec("b", 2),
        r#"{"type":"STATE","value":{"n":1}}"#.to_string(),
    ];
    let last = [
        rec("a", 4),
        r#"{"type":"STATE","value":{"n":2}}"#.to_string(),
    ];
    let mut body = String::new();
    for l in &first {
        body.push_str(&format!("printf '%s\\n' '{l}'\n"));
    }
    body.push_str(&format!(
        "while [ ! -e '{}' ]; do sleep 0.1; done\n",
        go.display()
    ));
    for l in &last {
        body.push_str(&format!("printf '%s\\n' '{l}'\n"));
    }
    let tap = tap_script(&p, "tap.sh", &body);
    p.write(&format!(
        "{}[pipelines.p]\ntap = \"t\"\ntarget = \"j\"\n[pipelines.other]\ntap = \"t\"\ntarget = \"j\"\n",
        project_toml(&tap, &bin("target-jsonl"), out_dir.path())
    ));

    let started = Instant::now();
    let mut run = Running::start(
        &p,
        &[
            "run",
            "p",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "60s",
        ],
    );
    let stream = |s: &'static str| [("pipeline", "p"), ("stream", s)];
    let during = run.scrape_until("the first records", 30, |s| {
        s.get("singer_stream_records_total", &stream("a")) == Some(3.0)
            && s.get("singer_stream_records_total", &stream("b")) == Some(2.0)
    });
    assert_eq!(during.types["singer_stream_records"], "counter");
    assert_eq!(during.types["singer_stream_bytes"], "counter");
    assert_eq!(during.types["singer_runs"], "counter");
    assert_eq!(during.types["singer_runs_in_progress"], "gauge");
    assert_eq!(
        during.value("singer_runs_in_progress", &[("pipeline", "p")]),
        1.0
    );
    for outcome in ["succeeded", "failed", "stopped", "skipped"] {
        assert_eq!(
            during.value(
                "singer_runs_total",
                &[("pipeline", "p"), ("outcome", outcome)]
            ),
            0.0
        );
    }
    assert!(
        during
            .samples
            .iter()
            .all(|s| s.labels.get("pipeline").is_none_or(|p| p == "p")),
        "only the pipeline being run: {:#?}",
        during.samples
    );
    assert!(
        during
            .types
            .keys()
            .all(|t| !t.starts_with("singer_schedule")),
        "{:?}",
        during.types
    );
    let (status, text) = get(&run.addr, "/healthz").unwrap();
    assert_eq!((status, text.as_str()), (200, "ok\n"));
    assert_eq!(get(&run.addr, "/nothing").unwrap().0, 404);

    // Let the tap finish; scrape until the outcome shows, then until `singer` exits.
    std::fs::write(&go, "").unwrap();
    let mut last_scrape = run.scrape_until("the outcome", 30, |s| {
        s.get(
            "singer_runs_total",
            &[("pipeline", "p"), ("outcome", "succeeded")],
        ) == Some(1.0)
    });
    let status = loop {
        if let Some(status) = run.child.try_wait().unwrap() {
            break status;
        }
        if let Ok((200, body)) = get(&run.addr, "/metrics") {
            last_scrape = Scrape::parse(&body);
        }
        assert!(
            started.elapsed() < Duration::from_secs(50),
            "--metrics-linger did not end on the final scrape: {}",
            run.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{}", run.log());
    let s = last_scrape;
    let a_lines = [
        schema("a"),
        rec("a", 1),
        rec("a", 2),
        rec("a", 3),
        rec("a", 4),
    ];
    let b_lines = [schema("b"), rec("b", 1), rec("b", 2)];
    let bytes = |lines: &[String]| lines.iter().map(|l| l.len() + 1).sum::<usize>() as f64;
    assert_eq!(s.value("singer_stream_records_total", &stream("a")), 4.0);
    assert_eq!(s.value("singer_stream_records_total", &stream("b")), 2.0);
    assert_eq!(
        s.value("singer_stream_bytes_total", &stream("a")),
        bytes(&a_lines[..])
    );
    assert_eq!(
        s.value("singer_stream_bytes_total", &stream("b")),
        bytes(&b_lines[..])
    );
    assert_eq!(
        s.value("singer_runs_in_progress", &[("pipeline", "p")]),
        0.0
    );
    assert_eq!(
        s.value(
            "singer_runs_total",
            &[("pipeline", "p"), ("outcome", "failed")]
        ),
        0.0
    );
    assert!(s.value("singer_states_confirmed_total", &[("pipeline", "p")]) >= 1.0);
    let confirmed = s.value(
        "singer_state_confirmed_timestamp_seconds",
        &[("pipeline", "p")],
    );
    assert!(
        (now_secs() - 60.0..=now_secs()).contains(&confirmed),
        "{confirmed}"
    );
    let lag = s.value("singer_state_lag_seconds", &[("pipeline", "p")]);
    assert!((0.0..60.0).contains(&lag), "{lag}");
    // The same counts as the run record.
    let runs = p.runs();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["streams"]["a"]["records"], 4);
    assert_eq!(runs[0]["streams"]["a"]["bytes"], bytes(&a_lines[..]) as u64);
}

/// A failed run with a spool: the final scrape counts it `failed` and shows the batches the
/// target never confirmed as the backlog, as `singer spool list` does.
#[test]
fn a_failed_spooled_run_shows_the_backlog() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let mut lines = vec![schema("s")];
    for i in 1..=6 {
        lines.push(rec("s", i));
        if i % 2 == 0 {
            lines.push(format!(r#"{{"type":"STATE","value":{{"n":{i}}}}}"#));
        }
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let tap = fake_tap(&p, "tap.sh", &lines, 0);
    // Reads everything, confirms nothing, fails.
    let target = p.script("target.sh", "#!/bin/sh\ncat > /dev/null\nexit 1\n");
    p.write(&format!(
        "{}[pipelines.p]\ntap = \"t\"\ntarget = \"j\"\n[pipelines.p.spool]\nmax_records = 2\n",
        project_toml(&tap, &target, out_dir.path())
    ));
    let run = Running::start(
        &p,
        &[
            "run",
            "p",
            "--metrics-addr",
            "127.0.0.1:0",
            "--metrics-linger",
            "60s",
        ],
    );
    let s = run.scrape_until("the failure", 30, |s| {
        s.get(
            "singer_runs_total",
            &[("pipeline", "p"), ("outcome", "failed")],
        ) == Some(1.0)
    });
    let list = p.singer(&["spool", "list", "p"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let batches: Vec<serde_json::Value> = String::from_utf8(list.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!batches.is_empty(), "{}", run.log());
    let spooled: u64 = batches.iter().map(|b| b["bytes"].as_u64().unwrap()).sum();
    let pipeline = [("pipeline", "p")];
    assert_eq!(s.types["singer_spool_pending_batches"], "gauge");
    assert_eq!(
        s.value("singer_spool_pending_batches", &pipeline),
        batches.len() as f64
    );
    assert_eq!(
        s.value("singer_spool_pending_bytes", &pipeline),
        spooled as f64
    );
    assert_eq!(s.value("singer_states_confirmed_total", &pipeline), 0.0);
    assert_eq!(s.get("singer_state_lag_seconds", &pipeline), None);
}

/// `singer schedule` on a seconds schedule: runs are counted over several ticks, the next run
/// time and the loop's tick are there, `/healthz` is 200; after SIGTERM it is 503 (or the
/// endpoint is gone) and the scheduler exits 0.
#[test]
fn schedule_metrics_count_runs_and_health_follows_the_loop() {
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let tap = fake_tap(
        &p,
        "tap.sh",
        &[
            schema("s").as_str(),
            rec("s", 1).as_str(),
            r#"{"type":"STATE","value":{"ok":true}}"#,
        ],
        0,
    );
    p.write(&format!(
        "{}[pipelines.every_second]\ntap = \"t\"\ntarget = \"j\"\nschedule = \"* * * * * *\"\n\
         [pipelines.unscheduled]\ntap = \"t\"\ntarget = \"j\"\n",
        project_toml(&tap, &bin("target-jsonl"), out_dir.path())
    ));
    let run = Running::start(&p, &["schedule", "--metrics-addr", "127.0.0.1:0"]);
    let pipeline = [("pipeline", "every_second")];
    let succeeded = [("pipeline", "every_second"), ("outcome", "succeeded")];
    let s = run.scrape_until("three scheduled runs", 60, |s| {
        s.get("singer_runs_total", &succeeded)
            .is_some_and(|n| n >= 3.0)
    });
    let runs = s.value("singer_runs_total", &succeeded);
    let records = s.value(
        "singer_stream_records_total",
        &[("pipeline", "every_second"), ("stream", "s")],
    );
    // One record per run; the run in progress may have sent its record already.
    assert!(records >= runs && records <= runs + 1.0, "{records} {runs}");
    assert_eq!(
        s.types["singer_schedule_next_run_timestamp_seconds"],
        "gauge"
    );
    let next = s.value("singer_schedule_next_run_timestamp_seconds", &pipeline);
    assert!(
        (now_secs() - 5.0..=now_secs() + 5.0).contains(&next),
        "{next}"
    );
    let tick = s.value("singer_schedule_last_tick_timestamp_seconds", &[]);
    assert!((now_secs() - 5.0..=now_secs()).contains(&tick), "{tick}");
    assert!(s.get("singer_state_lag_seconds", &pipeline).is_some());
    assert!(
        s.samples
            .iter()
            .all(|x| x.labels.get("pipeline").is_none_or(|p| p == "every_second")),
        "only scheduled pipelines: {:#?}",
        s.samples
    );
    let (status, text) = get(&run.addr, "/healthz").unwrap();
    assert_eq!((status, text.as_str()), (200, "ok\n"));

    let term = std::process::Command::new("kill")
        .args(["-s", "TERM", &run.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match get(&run.addr, "/healthz") {
            Ok((503, text)) => {
                assert_eq!(text, "shutting down\n");
                break;
            }
            Err(_) => break,
            Ok(other) => assert!(Instant::now() < deadline, "still {other:?} after SIGTERM"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut run = run;
    let status = loop {
        if let Some(s) = run.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the scheduler did not exit");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{}", run.log());
    assert!(get(&run.addr, "/healthz").is_err(), "the endpoint is gone");
}

/// An address that cannot be bound is a usage error naming the option.
#[test]
fn a_bad_metrics_address_is_a_usage_error() {
    let p = Project::new(
        "[taps.t]\nexecutable = \"tap\"\n[targets.j]\nexecutable = \"target\"\n\
         [pipelines.p]\ntap = \"t\"\ntarget = \"j\"\n",
    );
    let out = p.singer(&["run", "p", "--metrics-addr", "not-an-address"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--metrics-addr `not-an-address`"),
        "{}",
        stderr(&out)
    );
    let out = p.singer(&["run", "p", "--metrics-linger", "5s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
