//! FULL_TABLE: versions, and resuming an interrupted copy from the last key emitted.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::{Db, discover, run_tap, select};

fn ids(records: &[Value], key: &str) -> Vec<String> {
    records.iter().map(|r| r[key].to_string()).collect()
}

#[test]
fn interrupted_copy_resumes_after_the_last_key() {
    let db = Db::shared("ft");
    // A composite key whose second column decides order within the first.
    db.exec(
        "CREATE TABLE t (g VARCHAR(5), n INT, v TEXT, PRIMARY KEY (g, n)); \
         INSERT INTO t SELECT CONCAT('g', seq DIV 10), seq MOD 10, CONCAT('v', seq) FROM seq_0_to_49",
    );
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = db.config();
    cfg["state_every_rows"] = json!(7);
    let id = db.stream("t");
    let catalog = select(&discover(dir.path(), &cfg), &[&id], "FULL_TABLE", None);

    let full = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(full.ok, "{}", full.stderr);
    let all = full.records(&id);
    assert_eq!(all.len(), 50);
    let av = full.of_type("ACTIVATE_VERSION");
    assert_eq!(av.len(), 2, "first ever copy: one before, one after");
    let version = av[0]["version"].clone();

    // Resume from every intermediate state, as if the run had been killed right after it.
    let states = full.states();
    let mid: Vec<&Value> = states
        .iter()
        .filter(|s| s["bookmarks"][&id].get("last_pk_fetched").is_some())
        .collect();
    assert_eq!(mid.len(), 7);
    for state in mid {
        let last = &state["bookmarks"][&id]["last_pk_fetched"];
        let resumed = run_tap(dir.path(), &cfg, Some(&catalog), Some(state));
        assert!(resumed.ok, "{}", resumed.stderr);
        let rest = resumed.records(&id);
        // Nothing before or at the bookmark is read again, nothing after it is missed.
        let pos = all
            .iter()
            .position(|r| r["g"] == last["g"] && r["n"] == last["n"])
            .unwrap();
        assert_eq!(
            ids(&rest, "v"),
            ids(&all[pos + 1..], "v"),
            "resumed from {last}"
        );
        // The same version continues; only the closing ACTIVATE_VERSION is sent.
        let av = resumed.of_type("ACTIVATE_VERSION");
        assert_eq!(av.len(), 1);
        assert_eq!(av[0]["version"], version);
        assert!(rest.iter().all(|_| true));
        let end = resumed.last_state();
        assert_eq!(
            end["bookmarks"][&id]["initial_full_table_complete"],
            json!(true)
        );
        assert!(end["bookmarks"][&id].get("last_pk_fetched").is_none());
    }

    // A later full copy keeps the old rows visible: no opening ACTIVATE_VERSION, a new version.
    let again = run_tap(dir.path(), &cfg, Some(&catalog), Some(&full.last_state()));
    assert!(again.ok, "{}", again.stderr);
    let av = again.of_type("ACTIVATE_VERSION");
    assert_eq!(av.len(), 1);
    assert_ne!(av[0]["version"], version);
    assert_eq!(again.records(&id).len(), 50);
    // Every record carries its table version.
    let versions: BTreeSet<String> = again
        .of_type("RECORD")
        .iter()
        .map(|m| m["version"].to_string())
        .collect();
    assert_eq!(versions.len(), 1);
}

#[test]
fn rows_added_during_a_copy_wait_for_the_next_one_and_tables_without_keys_are_copied() {
    let db = Db::shared("ftmax");
    db.exec(
        "CREATE TABLE k (id BIGINT UNSIGNED PRIMARY KEY, v INT); \
         INSERT INTO k VALUES (1, 1), (18446744073709551615, 2); \
         CREATE TABLE nokey (v INT); INSERT INTO nokey VALUES (1), (2), (3)",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = db.config();
    let (k, nk) = (db.stream("k"), db.stream("nokey"));
    let catalog = select(&discover(dir.path(), &cfg), &[&k, &nk], "FULL_TABLE", None);
    let run = run_tap(dir.path(), &cfg, Some(&catalog), None);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.records(&k).len(), 2);
    assert_eq!(run.records(&nk).len(), 3);
    // The upper bound is the largest key at start, kept exactly in state.
    let first = &run.states()[0];
    assert_eq!(
        first["bookmarks"][&k]["max_pk_values"]["id"].to_string(),
        "18446744073709551615"
    );
    // A resumed copy honours the recorded bound: a row with a larger key is not read.
    db.exec("DELETE FROM k WHERE id > 1; INSERT INTO k VALUES (5, 5)");
    let mut state = first.clone();
    state["bookmarks"][&k]["max_pk_values"] = json!({"id": 3});
    state["bookmarks"][&k]["last_pk_fetched"] = json!({"id": 0});
    state["currently_syncing"] = json!(k);
    let run = run_tap(dir.path(), &cfg, Some(&catalog), Some(&state));
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(ids(&run.records(&k), "id"), vec!["1"]);
    // The interrupted stream went first.
    let first_record = run.of_type("RECORD")[0];
    assert_eq!(first_record["stream"], json!(k));
}
