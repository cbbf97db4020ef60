//! The spool and BATCH files in S3-compatible object storage, against a moto server on a free
//! loopback port per test (from the `venv-moto` that `cargo xtask interop` makes): batches a
//! run spooled on one machine are replayed from another home; an upload that fails (the
//! server stopped mid-run) fails the run without advancing the state, and the next run
//! uploads and loads the batch; tap-mysql's BATCH files in S3 load into target-postgres.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use singer_core::testing::interop_path;

use crate::{Project, bin, mariadb, pg_url, psql, stderr, tap_script, unique};

/// The secret key every test uses: it must never show in output.
const SECRET: &str = "s3cr3t-never-logged-7f1d";

/// A moto S3 server of this test's own.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    fn start() -> Self {
        let program = interop_path("moto_server");
        assert!(
            program.exists(),
            "{} is missing: run `cargo xtask interop` (it installs moto[server] in target/interop/venv-moto)",
            program.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        let moto = Self { child, port };
        let started = Instant::now();
        while moto.request("GET", "/").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto_server did not answer on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// One plain HTTP request (moto takes unsigned ones); the status line.
    fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer.lines().next().unwrap_or_default().to_string())
    }

    fn bucket(&self, name: &str) {
        let status = self.request("PUT", &format!("/{name}")).unwrap();
        assert!(status.contains(" 200"), "creating bucket {name}: {status}");
    }

    /// The server stops (SIGSTOP): connections are accepted and never answered.
    fn pause(&self) {
        self.signal("-STOP");
    }

    fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} moto_server");
    }

    /// The environment of every `singer` (and so of its taps and targets).
    fn env(&self, c: &mut Command) {
        c.env(
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", self.port),
        )
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test-key")
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1");
    }

    fn singer(&self, p: &Project, args: &[&str]) -> Output {
        let mut c = p.command(args);
        self.env(&mut c);
        let out = c.output().unwrap();
        assert_no_secret(&out);
        out
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_no_secret(out: &Output) {
    for text in [&out.stdout, &out.stderr] {
        assert!(
            !String::from_utf8_lossy(text).contains(SECRET),
            "the secret key was printed: {}",
            String::from_utf8_lossy(text)
        );
    }
}

const SCHEMA: &str = r#"{"type":"SCHEMA","stream":"s","schema":{"type":"object","properties":{"i":{"type":"integer"}}},"key_properties":["i"]}"#;

fn project(
    dest: &Path,
    tap: &Path,
    target: &Path,
    root: &str,
    state_schema: Option<&str>,
) -> String {
    let state = state_schema.map_or(String::new(), |schema| {
        format!(
            "[state]\nbackend = \"postgres\"\nurl = \"{}\"\nschema = \"{schema}\"\n",
            pg_url()
        )
    });
    format!(
        r#"
{state}
[taps.t]
executable = "{tap}"
[targets.jsonl]
executable = "{target}"
[targets.jsonl.config]
destination_path = "{dest}"
max_batch_age_seconds = 0.2
[pipelines.p]
tap = "t"
target = "jsonl"
[pipelines.p.spool]
max_records = 2
root = "{root}"
"#,
        tap = tap.display(),
        target = target.display(),
        dest = dest.display()
    )
}

fn list(moto: &Moto, p: &Project) -> Vec<Value> {
    let out = moto.singer(p, &["spool", "list", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The `i` of each loaded record, sorted.
fn loaded(dest: &Path) -> Vec<u64> {
    let text = std::fs::read_to_string(dest.join("s.jsonl")).unwrap_or_default();
    let mut ids: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["i"]
                .as_u64()
                .unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids
}

/// A run on machine A spools into S3 and its target dies after two confirmed states; machine
/// B (another home, the same project with a working target, the shared PostgreSQL state
/// store) lists and replays the rest in order; A then finds nothing left to load.
#[test]
fn spooled_batches_replay_from_object_storage_on_another_machine() {
    let moto = Moto::start();
    moto.bucket("spool");
    let root = "s3://spool/team/prod";
    let state_schema = unique("s3state");
    let out_dir = tempfile::tempdir().unwrap();
    let a = Project::new("");
    let mut lines = vec![SCHEMA.to_string()];
    for i in 1..=10 {
        lines.push(format!(
            r#"{{"type":"RECORD","stream":"s","record":{{"i":{i}}}}}"#
        ));
        if i % 2 == 0 {
            lines.push(format!(
                r#"{{"type":"STATE","value":{{"bookmarks":{{"s":{{"n":{i}}}}}}}}}"#
            ));
        }
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let tap = crate::fake_tap(&a, "tap.sh", &lines, 0);
    // Confirms the first two states it sees, then dies by SIGKILL.
    let killer = a.script(
        "killer.py",
        "#!/usr/bin/env python3\nimport json, os, signal, sys\nseen = 0\nfor line in sys.stdin:\n    m = json.loads(line)\n    if m['type'] == 'STATE':\n        print(json.dumps(m['value']), flush=True)\n        seen += 1\n        if seen == 2:\n            os.kill(os.getpid(), signal.SIGKILL)\n",
    );
    a.write(&project(
        out_dir.path(),
        &tap,
        &killer,
        root,
        Some(&state_schema),
    ));
    let out = moto.singer(&a, &["run", "p"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let n4 = json!({"bookmarks": {"s": {"n": 4}}});
    assert_eq!(a.state("p").unwrap(), n4);

    // Machine B: its own home, nothing local; the batches come from the store.
    let b = Project::new("");
    b.write(&project(
        out_dir.path(),
        &b.path().join("no-tap.sh"),
        &bin("target-jsonl"),
        root,
        Some(&state_schema),
    ));
    let batches = list(&moto, &b);
    let seqs: Vec<u64> = batches.iter().map(|b| b["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{batches:?}");
    let spooled: u64 = batches.iter().map(|b| b["records"].as_u64().unwrap()).sum();
    assert_eq!(spooled, 6, "records 5..=10 wait in the store: {batches:?}");
    assert!(batches.iter().all(|b| b.get("upload_pending").is_none()));
    let out = moto.singer(&b, &["spool", "replay", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        b.state("p").unwrap(),
        json!({"bookmarks": {"s": {"n": 10}}})
    );
    assert_eq!(loaded(out_dir.path()), (5..=10).collect::<Vec<_>>());
    assert!(list(&moto, &b).is_empty());

    // Back on A: its local copies of the batches B loaded are gone with them; the next run
    // loads nothing twice.
    assert!(list(&moto, &a).is_empty(), "A sees the store's manifest");
    let quiet = tap_script(&a, "quiet.sh", &format!("printf '%s\\n' '{SCHEMA}'\n"));
    a.write(&project(
        out_dir.path(),
        &quiet,
        &bin("target-jsonl"),
        root,
        Some(&state_schema),
    ));
    let out = moto.singer(&a, &["run", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(loaded(out_dir.path()), (5..=10).collect::<Vec<_>>());
    let left: Vec<_> = std::fs::read_dir(a.path().join(".singer/spool/p"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("batch-"))
        .collect();
    assert!(
        left.is_empty(),
        "stale local batches were removed: {left:?}"
    );
    psql(&format!("DROP SCHEMA {state_schema} CASCADE"));
}

/// A tap resuming after its state's `n`, records 1..=8, a STATE after every second one; it
/// waits for the file `go` before record 5.
fn resuming_tap(p: &Project) -> std::path::PathBuf {
    p.script(
        "tap.py",
        &format!(
            r#"#!/usr/bin/env python3
import json, os, sys, time
args = sys.argv[1:]
n = 0
if "--state" in args:
    n = json.load(open(args[args.index("--state") + 1]))["bookmarks"]["s"]["n"]
print({SCHEMA:?}, flush=True)
for i in range(n + 1, 9):
    if i == 5:
        while not os.path.exists("go"):
            time.sleep(0.05)
    print(json.dumps({{"type": "RECORD", "stream": "s", "record": {{"i": i}}}}), flush=True)
    if i % 2 == 0:
        print(json.dumps({{"type": "STATE", "value": {{"bookmarks": {{"s": {{"n": i}}}}}}}}), flush=True)
"#
        ),
    );
    tap_script(p, "tap.sh", "exec python3 ./tap.py \"$@\"\n")
}

/// The object store stops answering in the middle of a run: the batch being uploaded is
/// named in the error with its URL, the run fails, the state stays at what the target
/// confirmed; the next run uploads that batch, loads it, and resumes. Every record is loaded
/// exactly once.
#[test]
fn a_failed_upload_fails_the_run_and_the_next_run_loads_the_batch() {
    let moto = Moto::start();
    moto.bucket("spool");
    let root = "s3://spool/flaky";
    let out_dir = tempfile::tempdir().unwrap();
    let p = Project::new("");
    let tap = resuming_tap(&p);
    p.write(&project(
        out_dir.path(),
        &tap,
        &bin("target-jsonl"),
        root,
        None,
    ));
    let mut run = p.command(&["run", "p"]);
    moto.env(&mut run);
    // Fail fast once the server stops: 5 s per request, retried for 5 s.
    run.env("AWS_TIMEOUT", "5s")
        .env("SINGER_STORE_RETRY_TIMEOUT", "5")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = run.spawn().unwrap();
    let n4 = json!({"bookmarks": {"s": {"n": 4}}});
    let started = Instant::now();
    while p.state("p").as_ref() != Some(&n4) {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the first two batches were not loaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    moto.pause();
    std::fs::write(p.path().join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    moto.resume();
    assert_no_secret(&out);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("batch 3 could not be stored in s3://spool/flaky/p"),
        "{err}"
    );
    assert_eq!(p.state("p").unwrap(), n4, "the state did not advance");
    assert_eq!(loaded(out_dir.path()), [1, 2, 3, 4]);
    let waiting = list(&moto, &p);
    let records: u64 = waiting.iter().map(|b| b["records"].as_u64().unwrap()).sum();
    assert_eq!(records, 2, "batch 3 (records 5, 6) waits: {waiting:?}");

    // The server is back: batch 3 is uploaded and loaded first, then the tap resumes at 6.
    let out = moto.singer(&p, &["run", "p"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(p.state("p").unwrap(), json!({"bookmarks": {"s": {"n": 8}}}));
    assert_eq!(loaded(out_dir.path()), (1..=8).collect::<Vec<_>>());
    assert!(list(&moto, &p).is_empty());
}

/// tap-mysql writes its BATCH files into S3 (`batch_config.storage.root = "s3://…"`) and
/// target-postgres reads them from there; with a Parquet spool in the same store as well.
#[test]
fn tap_mysql_batches_in_s3_load_into_target_postgres() {
    let moto = Moto::start();
    moto.bucket("batches");
    let db = unique("s3b");
    let schema = unique("s3pg");
    mariadb(&format!(
        "CREATE DATABASE {db} CHARACTER SET utf8mb4; \
         CREATE TABLE {db}.orders (id INT PRIMARY KEY, note VARCHAR(20)); \
         INSERT INTO {db}.orders VALUES (1, 'héllo'), (2, 'b'), (3, 'c'), (4, 'd'), (5, 'e')"
    ));
    let url = pg_url();
    let rest = url.split("://").nth(1).unwrap();
    let (user, rest) = rest.split_once('@').unwrap();
    let pgdb = rest.split('/').nth(1).unwrap();
    let p = Project::new(&format!(
        r#"
[taps.mysql]
executable = "{tap}"
[taps.mysql.config]
host = "127.0.0.1"
user = "root"
filter_dbs = "{db}"
[taps.mysql.config.batch_config]
batch_size = 2
encoding = {{ format = "parquet" }}
storage = {{ root = "s3://batches/tap-mysql", prefix = "orders-" }}

[targets.pg]
executable = "{target}"
[targets.pg.config]
host = "127.0.0.1"
user = "{user}"
database = "{pgdb}"
default_target_schema = "{schema}"

[pipelines.orders]
tap = "mysql"
target = "pg"
select = ["{db}-orders"]
[pipelines.orders.spool]
format = "parquet"
root = "s3://batches/spool"
"#,
        tap = bin("tap-mysql").display(),
        target = bin("target-postgres").display(),
    ));
    let out = moto.singer(&p, &["run", "orders"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        psql(&format!("SELECT id, note FROM {schema}.orders ORDER BY id")),
        "1|héllo\n2|b\n3|c\n4|d\n5|e"
    );
    // The tap's files are in the store (listed through S3's ListObjectsV2).
    let mut s = TcpStream::connect(("127.0.0.1", moto.port)).unwrap();
    write!(
        s,
        "GET /batches?list-type=2&prefix=tap-mysql/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        moto.port
    )
    .unwrap();
    let mut listing = String::new();
    s.read_to_string(&mut listing).unwrap();
    assert_eq!(
        listing.matches("<Key>tap-mysql/orders-").count(),
        3,
        "5 rows in files of 2: {listing}"
    );
    psql(&format!("DROP SCHEMA {schema} CASCADE"));
    mariadb(&format!("DROP DATABASE {db}"));
}
