//! States in PostgreSQL, for pipelines run from several machines: `<schema>.state` holds the
//! current state per id, `<schema>.state_history` every change. Runs lock their state id with
//! a session advisory lock.

use serde_json::Value;
use tokio::runtime::Runtime;
use tokio_postgres::{Client, NoTls};

use super::{StateEntry, StoreError};

pub(crate) struct PgStore {
    rt: Runtime,
    client: Client,
    schema: String,
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
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
        rt.block_on(client.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.state (id text PRIMARY KEY, value jsonb NOT NULL,
                 updated_at timestamptz NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS {s}.state_history (id text NOT NULL, value jsonb,
                 source text NOT NULL, at timestamptz NOT NULL DEFAULT now());
             CREATE INDEX IF NOT EXISTS state_history_id ON {s}.state_history (id, at)"
        )))
        .map_err(pg)?;
        Ok(Self {
            rt,
            client,
            schema: s,
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

    pub(crate) fn set(&self, id: &str, value: &Value, source: &str) -> Result<(), StoreError> {
        let s = &self.schema;
        let sql = format!(
            "WITH up AS (INSERT INTO {s}.state (id, value, updated_at) VALUES ($1, $2, now())
               ON CONFLICT (id) DO UPDATE SET value = EXCLUDED.value, updated_at = now())
             INSERT INTO {s}.state_history (id, value, source) VALUES ($1, $2, $3)"
        );
        self.rt
            .block_on(self.client.execute(&sql, &[&id, value, &source]))
            .map_err(pg)?;
        Ok(())
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

    /// Takes the run lock of `id` (per store schema) on a connection of its own; `None` if
    /// another run holds it.
    pub(crate) fn try_lock(&self, url: &str, id: &str) -> Result<Option<PgLock>, StoreError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| StoreError(format!("cannot start a runtime: {e}")))?;
        let client = open(&rt, url)?;
        let got: bool = rt
            .block_on(client.query_one(
                "SELECT pg_try_advisory_lock(hashtextextended('singer-run:' || $1 || ':' || $2, 0))",
                &[&self.schema, &id],
            ))
            .map_err(pg)?
            .get(0);
        Ok(got.then_some(PgLock {
            _rt: rt,
            _client: client,
        }))
    }
}

/// A held advisory lock; released when the connection closes (on drop, or if this process
/// dies), so it cannot go stale.
pub(crate) struct PgLock {
    _rt: Runtime,
    _client: Client,
}
