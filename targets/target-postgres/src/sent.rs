//! The keys a versioned FULL_TABLE pass sent, so that the rows it sends unchanged stay as they
//! are.
//!
//! With `skip_unchanged_rows`, a row that the pass of table version v sends with the values it
//! already holds is left alone, `_sdc_table_version` included (it keeps the version of the
//! pass that last changed it). ACTIVATE_VERSION v must still spare that row, so each merged
//! part also writes its keys and their version into a side table in the table's schema,
//! `_singer_sent_<table>`, inside the part's own transaction: it holds exactly the keys of
//! committed rows, whatever retries, `kill -9` or resumed passes came between. Every row a pass
//! sent is then either stamped with v or listed there, and ACTIVATE_VERSION v retires the rows
//! whose version is below v (or null) that the side table lists for no pass of v or later.
//! It then empties the side table of those passes and leaves one marker row, v with null
//! keys, saying that v was activated.
//!
//! The marker bounds the side table: records of an activated version (a LOG_BASED stream's
//! changes after its initial copy carry the copy's version for ever) record nothing and are
//! compared with their version, as without the side table. A version whose rows are already
//! in the table while the side table does not exist (a pass begun by an older target) is not
//! recorded either, and when a new pass starts, the keys of older passes never activated are
//! dropped (a late ACTIVATE_VERSION of such a pass may mark rows the new pass has not sent
//! yet; the new pass clears the mark when it sends them). A role that may not create tables in
//! the schema stamps every row as before, with a warning.

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::model::{Active, Meta, TableModel};
use crate::names::{pg_name, qualified, quote};
use crate::stage::staged_value;
use crate::types::PgType;

/// The side table of one table.
#[derive(Debug, Clone)]
pub(crate) struct SentKeys {
    /// `"schema"."_singer_sent_<table>"`.
    pub table: String,
    /// Its key columns (the table's key when it was made).
    keys: Vec<String>,
}

impl SentKeys {
    fn name(model: &TableModel) -> String {
        qualified(
            &model.schema,
            &pg_name(&format!("_singer_sent_{}", model.table)),
        )
    }

    /// The side table of `model`, when it exists.
    pub(crate) async fn find(
        client: &Client,
        model: &TableModel,
    ) -> Result<Option<Self>, tokio_postgres::Error> {
        let table = Self::name(model);
        let rows = client
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass($1) \
                 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&table],
            )
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let keys = rows
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|c| c != Meta::TableVersion.name())
            .collect();
        Ok(Some(Self { table, keys }))
    }

    /// Creates the side table of `model` (empty, with the key columns' types).
    async fn create(
        client: &Client,
        model: &TableModel,
        keys: &[String],
    ) -> Result<Self, tokio_postgres::Error> {
        let table = Self::name(model);
        let mut cols = vec![quote(Meta::TableVersion.name())];
        cols.extend(keys.iter().map(|k| quote(k)));
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {table} AS SELECT {} FROM {} WITH NO DATA",
                cols.join(", "),
                model.qualified()
            ))
            .await?;
        Ok(Self {
            table,
            keys: keys.to_vec(),
        })
    }

    fn version() -> String {
        quote(Meta::TableVersion.name())
    }

    /// The first key column: null only in marker rows.
    fn first_key(&self) -> String {
        self.keys.first().map(|k| quote(k)).unwrap_or_default()
    }

    /// The newest activated version its markers record.
    async fn activated(&self, client: &Client) -> Result<Option<i64>, tokio_postgres::Error> {
        let sql = format!(
            "SELECT max({}) FROM {} WHERE {} IS NULL",
            Self::version(),
            self.table,
            self.first_key()
        );
        Ok(client.query_one(&sql, &[]).await?.get(0))
    }

    /// Drops the keys of passes older than `version` that were never activated.
    async fn drop_older(&self, client: &Client, version: i64) -> Result<(), tokio_postgres::Error> {
        let sql = format!(
            "DELETE FROM {} WHERE {} < $1 AND {} IS NOT NULL",
            self.table,
            Self::version(),
            self.first_key()
        );
        client.execute(&sql, &[&version]).await.map(drop)
    }

    /// Records the versioned rows of staging table `stage` (columns `columns`).
    pub(crate) fn record_sql(&self, stage: &str, columns: &[Active]) -> String {
        let v = Self::version();
        let mut cols = vec![v.clone()];
        let mut select = vec![v.clone()];
        for k in &self.keys {
            let q = quote(k);
            let staged = columns.iter().find(|c| c.name == *k);
            select.push(staged.map_or_else(|| q.clone(), |c| staged_value(c, None)));
            cols.push(q);
        }
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM {stage} WHERE {v} IS NOT NULL",
            self.table,
            cols.join(", "),
            select.join(", ")
        )
    }

    /// The condition, on rows of the table aliased `alias`, that no pass of version `$1` or
    /// later sent the row.
    pub(crate) fn unsent(&self, alias: &str) -> String {
        let on: Vec<String> = self
            .keys
            .iter()
            .map(|k| format!("s.{k} = {alias}.{k}", k = quote(k)))
            .collect();
        format!(
            "NOT EXISTS (SELECT 1 FROM {} s WHERE s.{} >= $1 AND {})",
            self.table,
            Self::version(),
            on.join(" AND ")
        )
    }

    /// After ACTIVATE_VERSION `version` retired rows: forgets the keys of `version` and older
    /// and leaves the marker of `version`.
    pub(crate) async fn activate(
        &self,
        client: &Client,
        version: i64,
    ) -> Result<(), tokio_postgres::Error> {
        let v = Self::version();
        let newer = client
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM {} WHERE {v} > $1)",
                    self.table
                ),
                &[&version],
            )
            .await?
            .get::<_, bool>(0);
        if newer {
            let sql = format!("DELETE FROM {} WHERE {v} <= $1", self.table);
            client.execute(&sql, &[&version]).await?;
        } else {
            client
                .batch_execute(&format!("TRUNCATE {}", self.table))
                .await?;
        }
        let mark = format!("INSERT INTO {} ({v}) VALUES ($1)", self.table);
        client.execute(&mark, &[&version]).await.map(drop)
    }

    /// Widens key column `column` to `ty`, as the table's was.
    pub(crate) fn widen_sql(&self, column: &str, ty: &PgType) -> Option<String> {
        self.keys.iter().any(|k| k == column).then(|| {
            format!(
                "ALTER TABLE {} ALTER COLUMN {c} TYPE {t} USING {c}::{t}",
                self.table,
                c = quote(column),
                t = ty.sql()
            )
        })
    }
}

/// A stream's use of its side table: which versions' merges record their keys.
#[derive(Debug, Default)]
pub(crate) struct SentTracker {
    /// The side table once found or made.
    table: Option<SentKeys>,
    looked_up: bool,
    /// The newest version activated (from the markers, then this run's ACTIVATE_VERSIONs).
    activated: Option<i64>,
    /// Versions whose merges record their keys.
    recorded: Vec<i64>,
    /// Versions whose merges do not (rows compared with their version, as without the table).
    stamped: Vec<i64>,
}

impl SentTracker {
    /// Decides, for the versions of a batch, whether their merges record keys, finding or
    /// making the side table as needed.
    pub(crate) async fn prepare(
        &mut self,
        client: &Client,
        model: &TableModel,
        keys: &[String],
        versions: &[i64],
    ) -> Result<(), tokio_postgres::Error> {
        for &v in versions {
            if self.recorded.contains(&v) || self.stamped.contains(&v) {
                continue;
            }
            if !self.looked_up {
                self.table = SentKeys::find(client, model).await?;
                if let Some(t) = &self.table {
                    self.activated = t.activated(client).await?;
                }
                self.looked_up = true;
            }
            let usable = self.table.as_ref().is_none_or(|t| t.keys == keys);
            if self.activated.is_some_and(|a| a >= v) || !usable {
                self.stamped.push(v);
                continue;
            }
            if self.table.is_none() {
                if has_rows_of(client, model, v).await? {
                    self.stamped.push(v);
                    continue;
                }
                match SentKeys::create(client, model, keys).await {
                    Ok(t) => self.table = Some(t),
                    Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                        tracing::warn!(table = %model.qualified(), error = %e, "cannot create the table of the keys a pass sent (no CREATE on the schema): every row the pass sends is rewritten with its table version");
                        self.stamped.push(v);
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            if let Some(t) = &self.table {
                t.drop_older(client, v).await?;
            }
            self.recorded.push(v);
        }
        Ok(())
    }

    /// The side table merges record into, while a pass records its keys.
    pub(crate) fn recording(&self) -> Option<&SentKeys> {
        if self.recorded.is_empty() {
            None
        } else {
            self.table.as_ref()
        }
    }

    /// The side table, to widen its key column with the table's.
    pub(crate) fn table(&self) -> Option<&SentKeys> {
        self.table.as_ref()
    }

    /// After ACTIVATE_VERSION `version` committed.
    pub(crate) fn activated(&mut self, version: i64) {
        self.activated = self.activated.max(Some(version));
        self.recorded.retain(|v| *v > version);
    }
}

/// Whether `model`'s table holds rows of table version `v`.
async fn has_rows_of(
    client: &Client,
    model: &TableModel,
    v: i64,
) -> Result<bool, tokio_postgres::Error> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM {} WHERE {} = $1)",
        model.qualified(),
        SentKeys::version()
    );
    Ok(client.query_one(&sql, &[&v]).await?.get(0))
}
