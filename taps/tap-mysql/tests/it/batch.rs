//! `batch_config`: FULL_TABLE copies and LOG_BASED snapshots written as BATCH files, each
//! followed by the STATE that covers its rows, read back equal to the RECORDs of a plain run;
//! resuming after a kill -9 mid-file; bad settings refused by name.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use singer_core::StreamSchema;
use singer_core::batch::to_json::for_each_row;
use singer_core::batch::{BatchError, BatchSchema, Rows, for_each_rows};
use singer_core::message::{BatchMessage, Message};
use singer_core::testing::tap::{TapRun, tap_command};

use crate::types::{TYPES_ROWS, TYPES_TABLE};
use crate::{Db, PrivateServer, TAP, discover, run_tap, select};

/// `batch_config` writing into `root`.
fn batch_config(root: &Path, format: &str, compression: &str, rows: u64) -> Value {
    json!({
        "encoding": {"format": format, "compression": compression},
        "storage": {"root": format!("file://{}", root.display()), "prefix": "t-"},
        "batch_size": rows
    })
}

/// The rows of each BATCH message of `stream` in `messages`, read back as JSON objects (the
/// stream's last SCHEMA before the BATCH gives the Parquet columns).
fn batch_rows(messages: &[Value], stream: &str) -> Vec<Vec<Value>> {
    let mut schema: Option<BatchSchema> = None;
    let mut out = Vec::new();
    for m in messages.iter().filter(|m| m["stream"] == stream) {
        if m["type"] == "SCHEMA" {
            let keys: Vec<String> = serde_json::from_value(m["key_properties"].clone()).unwrap();
            let compiled = StreamSchema::compile(stream, &m["schema"], &keys).unwrap();
            schema = Some(BatchSchema::new(&compiled));
        }
        if m["type"] != "BATCH" {
            continue;
        }
        let schema = schema.as_ref().expect("a SCHEMA precedes the BATCH");
        let msg = batch_message(m);
        let mut rows = Vec::new();
        for_each_rows::<BatchError>(&msg, schema, |_, r| {
            match r {
                Rows::Json(raw) => rows.push(serde_json::from_str(raw.get()).unwrap()),
                Rows::Arrow { batch, positions } => {
                    for_each_row::<BatchError>(batch, schema, positions, |text| {
                        rows.push(serde_json::from_str(text).unwrap());
                        Ok(())
                    })?;
                }
            }
            Ok(())
        })
        .unwrap();
        out.push(rows);
    }
    out
}

fn batch_message(m: &Value) -> BatchMessage {
    match Message::parse(m.to_string().as_bytes()).unwrap() {
        Some(Message::Batch(b)) => b,
        other => panic!("not a BATCH message: {other:?}"),
    }
}

/// Files in `root`: (complete, partial).
fn files(root: &Path) -> (Vec<String>, Vec<String>) {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.into_iter().partition(|n| !n.ends_with(".partial"))
}

/// Records equal as values: numbers by their exact text, date-times (`date_times`) as the
/// same instant (Parquet holds instants; they come back in UTC as `...Z`).
fn assert_same_rows(got: &[Value], want: &[Value], date_times: &[String]) {
    assert_eq!(got.len(), want.len(), "row count; got {got:?}");
    for (g, w) in got.iter().zip(want) {
        for (k, wv) in w.as_object().unwrap() {
            let gv = &g[k];
            if date_times.contains(k) && wv.is_string() {
                let t =
                    |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
                assert_eq!(t(gv), t(wv), "row id={} column `{k}`", w["id"]);
            } else {
                assert_eq!(
                    gv.to_string(),
                    wv.to_string(),
                    "row id={} column `{k}`",
                    w["id"]
                );
            }
        }
        assert_eq!(
            g.as_object().unwrap().len(),
            w.as_object().unwrap().len(),
            "columns of row id={}",
            w["id"]
        );
    }
}

/// Properties of the stream's SCHEMA with `format: date-time`.
fn date_time_columns(run: &TapRun, stream: &str) -> Vec<String> {
    let schema = run
        .of_type("SCHEMA")
        .into_iter()
        .find(|m| m["stream"] == stream)
        .unwrap();
    schema["schema"]["properties"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, p)| p["format"] == "date-time")
        .map(|(k, _)| k.clone())
        .collect()
}

/// Checks the message order of a batched copy of `stream`: no RECORD; every BATCH is followed
/// at once by a STATE, except the last, followed by the closing ACTIVATE_VERSION and then the
/// completion STATE; BATCH messages carry the copy's version. Returns the STATE after each
/// BATCH.
fn states_after_batches(run: &TapRun, stream: &str) -> Vec<Value> {
    let msgs: Vec<&Value> = run
        .messages
        .iter()
        .filter(|m| m.get("stream").is_none_or(|s| s == stream))
        .collect();
    assert!(msgs.iter().all(|m| m["type"] != "RECORD"), "{msgs:?}");
    let av = run.of_type("ACTIVATE_VERSION");
    let version = &av.last().unwrap()["version"];
    let batches: Vec<usize> = (0..msgs.len())
        .filter(|&i| msgs[i]["type"] == "BATCH")
        .collect();
    let mut states = Vec::new();
    for (n, &i) in batches.iter().enumerate() {
        assert_eq!(&msgs[i]["version"], version);
        if n + 1 < batches.len() {
            assert_eq!(msgs[i + 1]["type"], "STATE", "after BATCH {n}: {msgs:?}");
            states.push(msgs[i + 1]["value"].clone());
        } else {
            assert_eq!(msgs[i + 1]["type"], "ACTIVATE_VERSION", "{msgs:?}");
            assert_eq!(msgs[i + 2]["type"], "STATE", "{msgs:?}");
            states.push(msgs[i + 2]["value"].clone());
        }
    }
    states
}

#[test]
fn parquet_and_jsonl_batches_hold_exactly_the_records_of_a_plain_run() {
    let db = Db::shared("batchtypes");
    db.exec(TYPES_TABLE);
    db.exec(TYPES_ROWS);
    let dir = tempfile::tempdir().unwrap();
    let id = db.stream("t");
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &[&id],
        "FULL_TABLE",
        None,
    );
    let plain = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(plain.ok, "{}", plain.stderr);
    let records = plain.records(&id);
    assert_eq!(records.len(), 3);
    let date_times = date_time_columns(&plain, &id);
    assert!(date_times.contains(&"dtm".to_string()));

    for (format, compression) in [("parquet", "zstd"), ("jsonl", "gzip"), ("parquet", "none")] {
        let root = tempfile::tempdir().unwrap();
        let mut cfg = db.config();
        cfg["batch_config"] = batch_config(root.path(), format, compression, 2);
        let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
        assert!(run.ok, "{format}: {}", run.stderr);
        let per_file = batch_rows(&run.messages, &id);
        // Two rows per file: the third row is the last file.
        let sizes: Vec<usize> = per_file.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 1], "{format}");
        let rows: Vec<Value> = per_file.concat();
        if format == "jsonl" {
            assert_eq!(rows, records, "jsonl lines are the records as they are");
        } else {
            assert_same_rows(&rows, &records, &date_times);
        }
        let states = states_after_batches(&run, &id);
        assert_eq!(
            states[0]["bookmarks"][&id]["last_pk_fetched"],
            json!({"id": 2})
        );
        assert_eq!(
            states[1]["bookmarks"][&id]["initial_full_table_complete"],
            json!(true)
        );
        // Only complete files are left, each named by one BATCH message.
        let (complete, partial) = files(root.path());
        assert!(partial.is_empty(), "{partial:?}");
        assert_eq!(complete.len(), 2);
        assert!(complete.iter().all(|f| f.starts_with("t-")), "{complete:?}");
        let batch = &run.of_type("BATCH")[0];
        assert_eq!(batch["encoding"]["format"], format);
        assert_eq!(batch["encoding"]["compression"], compression);
    }
}

/// A STATE only after each file (none within one, whatever `state_every_rows` says), covering
/// exactly its rows; a run resumed from any of them writes the rest, each row once.
#[test]
fn a_state_follows_each_file_and_resuming_from_it_copies_the_rest() {
    let db = Db::shared("batchresume");
    db.exec(
        "CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR(20)); \
         INSERT INTO r SELECT seq, CONCAT('v', seq) FROM seq_1_to_25",
    );
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let id = db.stream("r");
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(3);
    cfg["batch_config"] = batch_config(root.path(), "jsonl", "zstd", 10);
    let catalog = select(&discover(dir.path(), &cfg), &[&id], "FULL_TABLE", None);
    let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(run.ok, "{}", run.stderr);
    let per_file = batch_rows(&run.messages, &id);
    let sizes: Vec<usize> = per_file.iter().map(Vec::len).collect();
    assert_eq!(sizes, [10, 10, 5]);
    let states = states_after_batches(&run, &id);
    let lasts: Vec<&Value> = states
        .iter()
        .map(|s| &s["bookmarks"][&id]["last_pk_fetched"])
        .collect();
    assert_eq!(
        lasts,
        [&json!({"id": 10}), &json!({"id": 20}), &Value::Null]
    );
    // STATEs: the copy's start, one per file but the last, the completion.
    assert_eq!(run.states().len(), 1 + 2 + 1);
    assert_eq!(
        run.states()[0]["bookmarks"][&id]["max_pk_values"],
        json!({"id": 25})
    );

    for (n, state) in states[..2].iter().enumerate() {
        let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(state));
        assert!(resumed.ok, "{}", resumed.stderr);
        let rest: Vec<Value> = batch_rows(&resumed.messages, &id).concat();
        let want: Vec<Value> = per_file[n + 1..].concat();
        assert_eq!(rest, want, "resumed after file {n}");
        // The same table version continues.
        assert_eq!(
            resumed.of_type("BATCH")[0]["version"],
            run.of_type("BATCH")[0]["version"]
        );
    }
}

#[test]
fn log_based_snapshot_is_batched_and_binlog_changes_are_records() {
    let server = PrivateServer::start(false);
    let db = server.db("batchlog");
    db.exec(
        "CREATE TABLE a (id INT PRIMARY KEY, v VARCHAR(10), at DATETIME(6)); \
         INSERT INTO a SELECT seq, CONCAT('v', seq), '2024-01-02 03:04:05.123456' FROM seq_1_to_7",
    );
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let id = db.stream("a");
    let mut cfg = db.config();
    cfg["batch_config"] = batch_config(root.path(), "parquet", "zstd", 3);
    let catalog = select(&discover(dir.path(), &cfg), &[&id], "LOG_BASED", None);
    let snap = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(snap.ok, "{}", snap.stderr);
    let per_file = batch_rows(&snap.messages, &id);
    let sizes: Vec<usize> = per_file.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    let rows = per_file.concat();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, (1..=7).collect::<Vec<_>>());
    assert_eq!(rows[0]["at"], "2024-01-02T03:04:05.123456Z");
    assert!(rows.iter().all(|r| r["_sdc_deleted_at"].is_null()));
    let states = states_after_batches(&snap, &id);
    assert_eq!(
        states[1]["bookmarks"][&id]["last_pk_fetched"],
        json!({"id": 6})
    );
    // Every state after a file keeps the binlog position taken before the snapshot.
    assert!(
        states
            .iter()
            .all(|s| s["bookmarks"][&id]["log_file"].is_string())
    );
    let end = snap.last_state();
    assert_eq!(
        end["bookmarks"][&id]["initial_binlog_complete"],
        json!(true)
    );

    db.exec("INSERT INTO a VALUES (8, 'eight', NULL); UPDATE a SET v = 'uno' WHERE id = 1; DELETE FROM a WHERE id = 2");
    let run = run_tap(dir.path(), &cfg, Some(&catalog), Some(&end));
    assert!(run.ok, "{}", run.stderr);
    assert!(run.of_type("BATCH").is_empty());
    let recs = run.records(&id);
    let ids: Vec<i64> = recs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [8, 1, 2]);
    assert_eq!(recs[1]["v"], "uno");
    assert!(recs[2]["_sdc_deleted_at"].is_string());
}

/// A tap killed (SIGKILL) in the middle of a file leaves it as an unnamed `.partial`; the run
/// resumed from the last STATE it wrote delivers the rest, and across both runs' files every
/// row arrives exactly once.
#[test]
fn kill_9_mid_file_then_resume_delivers_every_row_once() {
    const ROWS: i64 = 60_000;
    let db = Db::shared("batchkill");
    db.exec(&format!(
        "CREATE TABLE k (id INT PRIMARY KEY, v VARCHAR(200)); \
         INSERT INTO k SELECT seq, REPEAT('x', seq % 200) FROM seq_1_to_{ROWS}"
    ));
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let id = db.stream("k");
    let mut cfg = db.config();
    cfg["batch_config"] = batch_config(root.path(), "parquet", "zstd", 4_000);
    let catalog = select(&discover(dir.path(), &cfg), &[&id], "FULL_TABLE", None);

    let mut child = tap_command(Path::new(TAP), dir.path(), &cfg, Some(&catalog), None)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen: Vec<Value> = Vec::new();
    let mut batches = 0;
    while batches < 2 {
        let line = lines
            .next()
            .expect("the tap ended before two files")
            .unwrap();
        let m: Value = serde_json::from_str(&line).unwrap();
        if m["type"] == "BATCH" {
            batches += 1;
        }
        seen.push(m);
    }
    // Kill once a file is being written (the copy goes on while we read).
    let deadline = Instant::now() + Duration::from_secs(60);
    while files(root.path()).1.is_empty() {
        assert!(Instant::now() < deadline, "no file was being written");
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // What the tap wrote before it died is what a target saw.
    for line in lines {
        seen.push(serde_json::from_str(&line.unwrap()).unwrap());
    }
    let (_, partial) = files(root.path());
    assert!(!partial.is_empty(), "the kill left no unfinished file");
    // Only the opening ACTIVATE_VERSION of a first copy: the killed copy did not finish.
    let av = seen
        .iter()
        .filter(|m| m["type"] == "ACTIVATE_VERSION")
        .count();
    assert_eq!(av, 1, "{seen:?}");
    // The target commits up to the last STATE it saw; files announced after it are not
    // committed (the resumed run writes their rows again).
    let cut_at = seen.iter().rposition(|m| m["type"] == "STATE").unwrap();
    let cut = seen[cut_at]["value"].clone();
    assert!(
        cut["bookmarks"][&id]["last_pk_fetched"].is_object(),
        "{cut}"
    );
    let committed = &seen[..cut_at];

    let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(&cut));
    assert!(resumed.ok, "{}", resumed.stderr);
    let mut all: Vec<i64> = Vec::new();
    for rows in [
        batch_rows(committed, &id),
        batch_rows(&resumed.messages, &id),
    ] {
        all.extend(rows.concat().iter().map(|r| r["id"].as_i64().unwrap()));
    }
    let mut count: BTreeMap<i64, u32> = BTreeMap::new();
    for i in &all {
        *count.entry(*i).or_default() += 1;
    }
    assert_eq!(count.len() as i64, ROWS, "every row arrived");
    assert!(count.values().all(|&n| n == 1), "no row arrived twice");
    assert!(
        (batch_rows(&resumed.messages, &id).concat().len() as i64) < ROWS,
        "resumed from the cut, not the start"
    );
    // The orphan is never named by a manifest.
    let named: Vec<String> = committed
        .iter()
        .chain(&resumed.messages)
        .filter(|m| m["type"] == "BATCH")
        .flat_map(|m| m["manifest"].as_array().unwrap().clone())
        .map(|u| u.as_str().unwrap().to_string())
        .collect();
    assert!(
        partial
            .iter()
            .all(|p| named.iter().all(|n| !n.contains(p.as_str())))
    );
}

#[test]
fn a_bad_batch_config_is_refused_naming_the_setting() {
    let db = Db::shared("batchbad");
    let dir = tempfile::tempdir().unwrap();
    for (batch, says) in [
        (
            json!({"encoding": {"format": "csv"}, "storage": {"root": "/tmp/x"}}),
            "batch_config.encoding.format",
        ),
        (
            json!({"encoding": {"format": "jsonl"}, "storage": {"root": "gs://x"}}),
            "batch_config.storage.root",
        ),
        (
            json!({"encoding": {"format": "parquet"}, "storage": {"root": "/tmp/x"}, "batch_size": 0}),
            "batch_config.batch_size",
        ),
    ] {
        let mut cfg = db.config();
        cfg["batch_config"] = batch;
        let run = run_tap(dir.path(), &cfg, Some(&json!({"streams": []})), None);
        assert!(!run.ok);
        assert!(run.stderr.contains(says), "{}", run.stderr);
        assert!(run.stdout.is_empty(), "nothing on stdout");
    }
}
