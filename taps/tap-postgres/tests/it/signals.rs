//! SIGTERM stops the tap at a message boundary: stdout ends on a whole line, the exit status is
//! 143, and the last STATE resumes with nothing lost: a FULL_TABLE copy from its last key, a
//! continuous LOG_BASED stream from its last position, with the slot acknowledged no further
//! than the state the tap was started with.

use serde_json::{Value, json};
use singer_core::testing::tap::stop_tap_when;

use crate::{Db, Server, discover, run_tap, select, tap_command, tempdir};

fn ids(records: &[Value]) -> Vec<i64> {
    records.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

#[test]
fn sigterm_mid_copy_ends_on_a_whole_line_and_its_last_state_resumes() {
    let server = Server::shared();
    let db = Db::create(&server, "sigft");
    // Rows 0 to 6 KB wide, so that lines straddle every write buffer.
    db.exec(
        "CREATE TABLE t (id bigint PRIMARY KEY, v text);
         INSERT INTO t SELECT i, repeat(chr(97 + i % 26), (i * 7919) % 6000)
         FROM generate_series(1, 6000) i;",
    );
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "FULL_TABLE",
        None,
    );
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(250);
    let mut states = 0;
    let stopped = stop_tap_when(
        tap_command(dir.path(), &cfg, Some(&catalog), None),
        "TERM",
        |m| {
            states += usize::from(m["type"] == "STATE");
            states == 4
        },
    );
    assert_eq!(stopped.status.code(), Some(143), "{}", stopped.stderr);
    assert!(
        stopped.stderr.contains("stopped by SIGTERM"),
        "{}",
        stopped.stderr
    );
    let last = stopped.states().pop().unwrap();
    let cut = last["bookmarks"]["public-t"]["last_pk_fetched"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("the copy was not cut: {last}"));
    assert!(cut < 6000);
    let before = ids(&stopped.records("public-t"));
    assert_eq!(
        before[..usize::try_from(cut).unwrap()],
        (1..=cut).collect::<Vec<_>>()
    );
    let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(&last));
    assert!(resumed.ok, "{}", resumed.stderr);
    assert_eq!(
        ids(&resumed.records("public-t")),
        (cut + 1..=6000).collect::<Vec<_>>()
    );
}

/// The slot's confirmed position.
fn confirmed(db: &Db) -> u64 {
    db.scalar(&format!(
        "SELECT (confirmed_flush_lsn - '0/0')::int8 FROM pg_replication_slots \
         WHERE slot_name = 'singer_{}'",
        db.name
    ))
    .parse()
    .unwrap()
}

fn lsn(state: &Value) -> u64 {
    state["bookmarks"]["public-t"]["lsn"].as_u64().unwrap()
}

#[test]
fn sigterm_during_continuous_cdc_acknowledges_nothing_past_the_last_state() {
    let server = Server::for_logical();
    let db = Db::create(&server, "sigcdc");
    db.exec("CREATE TABLE t (id int PRIMARY KEY, v text);");
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "LOG_BASED",
        None,
    );
    let first = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(first.ok, "{}", first.stderr);
    let start = first.last_state();
    let mut sql = String::new();
    for t in 0..200 {
        sql.push_str(&format!(
            "INSERT INTO t SELECT i, repeat('y', (i * 7919) % 3000) FROM generate_series({}, {}) i;",
            t * 100 + 1,
            t * 100 + 100
        ));
    }
    db.exec(&sql);
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(100);
    cfg["continuous"] = json!(true);
    let mut states = 0;
    let stopped = stop_tap_when(
        tap_command(dir.path(), &cfg, Some(&catalog), Some(&start)),
        "TERM",
        |m| {
            states += usize::from(m["type"] == "STATE");
            states == 20
        },
    );
    assert_eq!(stopped.status.code(), Some(143), "{}", stopped.stderr);
    let last = stopped.states().pop().unwrap();
    assert!(lsn(&last) > lsn(&start));
    // The slot was acknowledged only up to the state the run started from.
    assert!(
        confirmed(&db) <= lsn(&start),
        "the slot ran ahead of the states written"
    );
    let before = ids(&stopped.records("public-t"));
    assert!(before.len() < 20_000, "the stream was cut");
    let resumed = run_tap(dir.path(), &db.config(), Some(&catalog), Some(&last));
    assert!(resumed.ok, "{}", resumed.stderr);
    let after = ids(&resumed.records("public-t"));
    assert!(after.len() < 20_000, "resumed from the cut, not the start");
    let mut all = before;
    all.extend(after);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all, (1..=20_000).collect::<Vec<_>>());
    assert!(confirmed(&db) <= lsn(&last));
}

#[test]
fn sigterm_while_waiting_for_changes_stops_at_once() {
    let server = Server::for_logical();
    let db = Db::create(&server, "sigidle");
    db.exec("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);");
    let dir = tempdir();
    let catalog = select(
        &discover(dir.path(), &db.config()),
        &["public-t"],
        "LOG_BASED",
        None,
    );
    let first = run_tap(dir.path(), &db.config(), Some(&catalog), None);
    assert!(first.ok, "{}", first.stderr);
    db.exec("INSERT INTO t VALUES (2);");
    let mut cfg = db.config();
    cfg["continuous"] = json!(true);
    cfg["state_every_rows"] = json!(1);
    let started = std::time::Instant::now();
    // The change is read; then the stream is idle, and the tap waits on the server.
    let stopped = stop_tap_when(
        tap_command(dir.path(), &cfg, Some(&catalog), Some(&first.last_state())),
        "TERM",
        |m| m["type"] == "RECORD",
    );
    assert_eq!(stopped.status.code(), Some(143), "{}", stopped.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    assert_eq!(ids(&stopped.records("public-t")), [2]);
}
