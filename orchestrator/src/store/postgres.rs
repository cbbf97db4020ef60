//! States in PostgreSQL, for pipelines run from several machines: `<schema>.state` holds the
//! current state per id, `<schema>.state_history` every change. Runs lock their state id with
//! a session advisory lock and write their states through its fence (`pg_lock`), recorded in
//! `<schema>.run_lock`.

use std::sync::Mutex;

use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

use super::pg_lock::{self, Fence, PgLock, Taken};
use super::{StateEntry, StoreError};

pub(crate) struct PgStore {
    rt: Runtime,
    client: Client,
    schema: String,
    /// The run lock this store's run took: its state writes go through the fence.
    fence: Mutex<Option<Fence>>,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError(format!("state store (PostgreSQL): {e}"))
}

/// Opens a connection on `rt`, driving it in the background.
fn open(rt: &Runtime, url: &str) -> Result<Client, StoreError> {
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.map_err(pg)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    })
}

impl PgStore {
    pub(crate) fn connect(url: &str, schema: &str) -> Result<Self, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError(format!("cannot start a runtime: {e}")))?;
        let client = open(&rt, url)?;
        let s = quote(schema);
        // Serialised per schema: two processes creating the same tables at once make one of
        // them fail (`IF NOT EXISTS` does not cover a concurrent creation).
        rt.block_on(client.batch_execute(&format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtextextended('singer-store-ddl:' || {lit}, 0));
             CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.state (id text PRIMARY KEY, value jsonb NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS {s}.state_history (id text NOT NULL, value jsonb,
                 source text NOT NULL, at timestamptz NOT NULL DEFAULT now());
             CREATE INDEX IF NOT EXISTS state_history_id ON {s}.state_history (id, at);
             CREATE TABLE IF NOT EXISTS {s}.run_lock (id text PRIMARY KEY,
                 generation bigint NOT NULL, holder text NOT NULL, since timestamptz NOT NULL,
                 session_pid integer NOT NULL);
             COMMIT",
            lit = literal(&s),
        )))
        .map_err(pg)?;
        Ok(Self {
            rt,
            client,
            schema: s,
            fence: Mutex::new(None),
        })
    }

    pub(crate) fn get(&self, id: &str) -> Result<Option<Value>, StoreError> {
        let sql = format!("SELECT value FROM {}.state WHERE id = $1", self.schema);
        let row = self
            .rt
            .block_on(self.client.query_opt(&sql, &[&id]))
            .map_err(pg)?;
        Ok(row.map(|r| r.get::<_, Value>(0)))
    }

    /// Stores a state. While this store's run holds the lock of `id`, only if it still does.
    pub(crate) fn set(&self, id: &str, value: &Value, source: &str) -> Result<(), StoreError> {
        let fence = self
            .fence
            .lock()
            .ok()
            .and_then(|f| f.clone())
            .filter(|f| f.id == id);
        let Some(fence) = fence else {
            self.write(id, value, source, None)?;
            return Ok(());
        };
        if let Some(why) = fence.lost() {
            return Err(StoreError(why));
        }
        if self.write(id, value, source, Some(fence.generation))? {
            return Ok(());
        }
        let now = self
            .rt
            .block_on(self.client.query_opt(
                &format!(
                    "SELECT generation, holder FROM {}.run_lock WHERE id = $1",
                    self.schema
                ),
                &[&id],
            ))
            .map_err(pg)?
            .map(|r| {
                format!(
                    ", now generation {} held by {}",
                    r.get::<_, i64>(0),
                    r.get::<_, String>(1)
                )
            })
            .unwrap_or_default();
        Err(StoreError(format!(
            "the run lock of state id `{id}` was taken over by another run (this run had \
             generation {}{now}); the state was not stored",
            fence.generation
        )))
    }

    /// Writes a state and its history line in one statement; with `generation`, only while
    /// `run_lock` has it (the row is locked until the write commits, so a newer holder reads
    /// the state after it). Returns whether it wrote.
    fn write(
        &self,
        id: &str,
        value: &Value,
        source: &str,
        generation: Option<i64>,
    ) -> Result<bool, StoreError> {
        let s = &self.schema;
        let n = match generation {
            None => {
                let sql = format!(
                    "WITH up AS (INSERT INTO {s}.state (id, value, updated_at) VALUES ($1, $2, now())
                       ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, updated_at = now())
                     INSERT INTO {s}.state_history (id, value, source) VALUES ($1, $2, $3)"
                );
                self.rt
                    .block_on(self.client.execute(&sql, &[&id, value, &source]))
                    .map_err(pg)?
            }
            Some(g) => {
                let sql = format!(
                    "WITH fence AS (SELECT id FROM {s}.run_lock
                       WHERE id = $1::text AND generation = $4::bigint FOR SHARE),
                     up AS (INSERT INTO {s}.state (id, value, updated_at)
                       SELECT id, $2::jsonb, now() FROM fence
                       ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
                       RETURNING id)
                     INSERT INTO {s}.state_history (id, value, source)
                       SELECT id, $2::jsonb, $3::text FROM up"
                );
                self.rt
                    .block_on(self.client.execute(&sql, &[&id, value, &source, &g]))
                    .map_err(pg)?
            }
        };
        Ok(n > 0)
    }

    pub(crate) fn clear(&self, id: &str, source: &str) -> Result<bool, StoreError> {
        let s = &self.schema;
        let sql = format!(
            "WITH del AS (DELETE FROM {s}.state WHERE id = $1 RETURNING id)
             INSERT INTO {s}.state_history (id, value, source) SELECT id, NULL, $2 FROM del"
        );
        let n = self
            .rt
            .block_on(self.client.execute(&sql, &[&id, &source]))
            .map_err(pg)?;
        Ok(n > 0)
    }

    pub(crate) fn list(&self) -> Result<Vec<StateEntry>, StoreError> {
        let sql = format!(
            "SELECT id, to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') FROM {}.state ORDER BY id",
            self.schema
        );
        let rows = self.rt.block_on(self.client.query(&sql, &[])).map_err(pg)?;
        Ok(rows
            .iter()
            .map(|r| StateEntry {
                id: r.get(0),
                updated_at: r.get(1),
            })
            .collect())
    }

    pub(crate) fn history(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        let sql = format!(
            "SELECT jsonb_build_object('at', to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), 'source', source, 'value', value)
             FROM {}.state_history WHERE id = $1 ORDER BY at",
            self.schema
        );
        let rows = self
            .rt
            .block_on(self.client.query(&sql, &[&id]))
            .map_err(pg)?;
        Ok(rows.iter().map(|r| r.get::<_, Value>(0)).collect())
    }

    /// Takes the run lock of `id` (per store schema) on a connection of its own; from then on
    /// this store's writes of `id` go through its fence. `Err` with who holds it if another
    /// run does.
    pub(crate) fn try_lock(
        &self,
        url: &str,
        id: &str,
    ) -> Result<Result<PgLock, String>, StoreError> {
        match pg_lock::try_lock(url, &self.schema, id)? {
            Taken::Held(lock) => {
                if let Ok(mut f) = self.fence.lock() {
                    *f = Some(lock.fence().clone());
                }
                Ok(Ok(lock))
            }
            Taken::Busy(who) => Ok(Err(who)),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::PgStore;

    fn url() -> String {
        std::env::var("SINGER_PG_URL")
            .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432/test".into())
    }

    /// The fence alone (the run has not noticed that its lock's session ended): once another
    /// run took the lock, a late write of the first stores nothing and says why.
    #[test]
    fn a_late_write_of_a_run_whose_lock_was_taken_over_stores_nothing() {
        let schema = format!("orc_fence_{}", std::process::id());
        let a = PgStore::connect(&url(), &schema).unwrap();
        let lock_a = a.try_lock(&url(), "p").unwrap().unwrap();
        a.set("p", &json!({"n": 1}), "run-a").unwrap();

        let b = PgStore::connect(&url(), &schema).unwrap();
        let Err(busy) = b.try_lock(&url(), "p").unwrap() else {
            panic!("a second run took the lock")
        };
        assert!(
            busy.contains("held by ") && busy.contains(" pid "),
            "{busy}"
        );

        // A's session ends without A noticing (dropping the lock closes it and marks nothing).
        drop(lock_a);
        let _lock_b = b.try_lock(&url(), "p").unwrap().unwrap();
        b.set("p", &json!({"n": 2}), "run-b").unwrap();

        assert!(
            !a.write("p", &json!({"n": 1, "late": true}), "run-a", Some(1))
                .unwrap()
        );
        let err = a
            .set("p", &json!({"n": 1, "late": true}), "run-a")
            .unwrap_err();
        assert!(
            err.0.contains("taken over by another run") && err.0.contains("generation 2"),
            "{err}"
        );
        assert_eq!(a.get("p").unwrap(), Some(json!({"n": 2})));
        let history: Vec<_> = a.history("p").unwrap();
        assert_eq!(history.len(), 2, "{history:?}");
        assert_eq!(history[1]["source"], "run-b");

        // Without a lock (`singer state set`), writes are not fenced.
        let c = PgStore::connect(&url(), &schema).unwrap();
        c.set("p", &json!({"n": 5}), "state set").unwrap();
        a.rt.block_on(
            a.client
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", a.schema)),
        )
        .unwrap();
    }
}
