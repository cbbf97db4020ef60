//! The loader: one connection per stream; each batch is one transaction.
//!
//! - Append-only streams (no key properties): `COPY table FROM STDIN (FORMAT binary)`.
//! - Keyed streams: COPY into a temporary staging table, then one `INSERT … SELECT DISTINCT ON
//!   (keys) … ORDER BY keys, ctid DESC ON CONFLICT (keys) DO UPDATE`, so the last record of a
//!   key in the batch wins (a fresh temporary table filled by one COPY keeps input order in
//!   `ctid`); with `hard_delete`, rows whose `_sdc_deleted_at` is set are then deleted, in the
//!   same transaction.
//! - Fast path: while a keyed table was empty when the run started, a batch is first COPYed
//!   straight into it inside a savepoint. The first key conflict (a duplicate in the batch or
//!   a key loaded earlier) rolls back to the savepoint and switches the stream to the staging
//!   merge for the rest of the run.
//! - ACTIVATE_VERSION v marks (or with `hard_delete` removes) rows whose `_sdc_table_version`
//!   is below v or null. It runs after every batch before it committed, so rows of version v
//!   are never touched, whatever the batching.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::SinkExt;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::{Loader, StreamSpec};
use tokio_postgres::Client;

use crate::connect::db_error;
use crate::encode::{COPY_HEADER, COPY_TRAILER};
use crate::model::{Active, Meta, PlanOptions, TableModel, plan};
use crate::names::quote;
use crate::sink::{Batch, Part};
use crate::types::PgType;

/// `work_mem` for the merge of one batch: enough to sort a batch in memory.
const MERGE_WORK_MEM: &str = "64MB";

/// A stream's loader.
pub struct PgLoader {
    stream: String,
    client: Client,
    model: TableModel,
    keys: Vec<String>,
    opts: PlanOptions,
    hard_delete: bool,
    /// Keyed table that was empty at the start and has had no key conflict yet.
    direct: bool,
}

impl PgLoader {
    pub(crate) async fn open(
        stream: &str,
        client: Client,
        model: TableModel,
        spec: &StreamSpec,
        opts: PlanOptions,
        hard_delete: bool,
    ) -> Result<Self, SdkError> {
        let mut loader = Self {
            stream: stream.to_string(),
            client,
            model,
            keys: Vec::new(),
            opts,
            hard_delete,
            direct: false,
        };
        loader.apply(spec).await?;
        let empty = format!(
            "SELECT NOT EXISTS (SELECT 1 FROM {})",
            loader.model.qualified()
        );
        let row = loader
            .client
            .query_one(&empty, &[])
            .await
            .map_err(|e| db_error(format!("stream `{stream}`: {empty}"), e))?;
        loader.direct = !loader.keys.is_empty() && row.get::<_, bool>(0);
        Ok(loader)
    }

    async fn apply(&mut self, spec: &StreamSpec) -> Result<(), SdkError> {
        let p = plan(&self.model, &spec.schema, self.opts);
        for stmt in &p.ddl {
            tracing::info!(stream = %self.stream, ddl = %stmt, "schema change");
            self.client
                .batch_execute(stmt)
                .await
                .map_err(|e| db_error(format!("stream `{}`: {stmt}", self.stream), e))?;
        }
        self.model = p.model;
        self.keys = p.keys;
        Ok(())
    }

    fn context(&self, batch: &Batch, what: &str) -> String {
        let (first, last) = batch.line_range();
        format!(
            "stream `{}`: {what} of the batch of input lines {first}-{last} failed",
            self.stream
        )
    }

    /// Maps "COPY x, line N" in a server error to the input line of that part's row.
    fn part_error(
        &self,
        batch: &Batch,
        part: &Part,
        what: &str,
        e: tokio_postgres::Error,
    ) -> SdkError {
        let mut context = self.context(batch, what);
        let copy_line = e
            .as_db_error()
            .and_then(|d| d.where_())
            .and_then(|w| w.split(", line ").nth(1))
            .and_then(|r| r.split([',', ' ']).next())
            .and_then(|n| n.parse::<usize>().ok());
        if let Some(line) = copy_line.and_then(|n| part.lines.get(n.saturating_sub(1))) {
            context.push_str(&format!(" (input line {line})"));
        }
        db_error(context, e)
    }

    fn error(&self, batch: &Batch, what: &str, e: tokio_postgres::Error) -> SdkError {
        db_error(self.context(batch, what), e)
    }

    async fn copy(
        &self,
        table: &str,
        columns: &[Active],
        part: &Part,
    ) -> Result<(), tokio_postgres::Error> {
        let cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        let stmt = format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            cols.join(", ")
        );
        let sink = self.client.copy_in::<_, Bytes>(&stmt).await?;
        futures_util::pin_mut!(sink);
        sink.send(Bytes::from_static(COPY_HEADER)).await?;
        // Slices of the batch (no copies), so the connection's write buffer stays small.
        let mut at = 0;
        while at < part.data.len() {
            let end = (at + (1 << 20)).min(part.data.len());
            sink.send(part.data.slice(at..end)).await?;
            at = end;
        }
        sink.send(Bytes::from_static(COPY_TRAILER)).await?;
        sink.finish().await?;
        Ok(())
    }

    async fn load_batch(&mut self, batch: &Batch) -> Result<(), SdkError> {
        self.client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| db_error(format!("stream `{}`: BEGIN", self.stream), e))?;
        let result = self.load_in_transaction(batch).await;
        if result.is_err() {
            // Best effort: the run stops on this error anyway.
            let _ = self.client.batch_execute("ROLLBACK").await;
            return result;
        }
        self.client
            .batch_execute("COMMIT")
            .await
            .map_err(|e| self.error(batch, "COMMIT", e))
    }

    async fn load_in_transaction(&mut self, batch: &Batch) -> Result<(), SdkError> {
        for part in &batch.parts {
            self.widen_for(batch, part).await?;
            self.load_part(batch, part).await?;
        }
        Ok(())
    }

    /// Alters columns the sink widened because data outgrew them (inside the transaction).
    async fn widen_for(&mut self, batch: &Batch, part: &Part) -> Result<(), SdkError> {
        let table = self.model.qualified();
        for col in part.columns.iter() {
            let Some(idx) = self.model.columns.iter().position(|c| c.name == col.name) else {
                continue;
            };
            let existing = &self.model.columns[idx].ty;
            if *existing != col.ty && existing.widen_to(&col.ty).as_ref() == Some(&col.ty) {
                let sql = format!(
                    "ALTER TABLE {table} ALTER COLUMN {c} TYPE {t} USING {c}::{t}",
                    c = quote(&col.name),
                    t = col.ty.sql()
                );
                tracing::info!(stream = %self.stream, ddl = %sql, "widening a column for the data");
                self.client
                    .batch_execute(&sql)
                    .await
                    .map_err(|e| db_error(self.context(batch, "widening"), e))?;
                self.model.columns[idx].ty = col.ty.clone();
            }
        }
        Ok(())
    }

    async fn load_part(&mut self, batch: &Batch, part: &Part) -> Result<(), SdkError> {
        let table = self.model.qualified();
        let columns = &part.columns;
        let custom = columns.iter().any(|c| matches!(c.ty, PgType::Custom(_)));
        let deletes = columns.iter().any(|c| c.name == Meta::DeletedAt.name());
        if self.keys.is_empty() && !custom {
            return self
                .copy(&table, columns, part)
                .await
                .map_err(|e| self.part_error(batch, part, "COPY", e));
        }
        if self.direct && !custom && !(self.hard_delete && deletes) {
            self.client
                .batch_execute("SAVEPOINT singer_direct")
                .await
                .map_err(|e| self.error(batch, "SAVEPOINT", e))?;
            match self.copy(&table, columns, part).await {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                    self.client
                        .batch_execute("ROLLBACK TO SAVEPOINT singer_direct")
                        .await
                        .map_err(|e| self.error(batch, "ROLLBACK", e))?;
                    tracing::debug!(stream = %self.stream, "key conflict: switching to staged merges");
                }
                Err(e) => return Err(self.part_error(batch, part, "COPY", e)),
            }
        }
        self.direct = false;
        let stage = quote("_singer_stage");
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                let ty = if matches!(c.ty, PgType::Custom(_)) {
                    "text".to_string()
                } else {
                    c.ty.sql()
                };
                format!("{} {ty}", quote(&c.name))
            })
            .collect();
        let create = format!(
            "DROP TABLE IF EXISTS {stage}; CREATE TEMP TABLE {stage} ({}) ON COMMIT DROP",
            defs.join(", ")
        );
        self.client
            .batch_execute(&create)
            .await
            .map_err(|e| self.error(batch, "staging", e))?;
        self.copy(&stage, columns, part)
            .await
            .map_err(|e| self.part_error(batch, part, "COPY", e))?;
        // The merge sorts the batch by key; let it sort in memory (a batch is a few MiB).
        let merge = format!(
            "SET LOCAL work_mem = '{MERGE_WORK_MEM}'; {}",
            self.merge_sql(&table, &stage, columns)
        );
        self.client
            .batch_execute(&merge)
            .await
            .map_err(|e| self.error(batch, "merge", e))?;
        if self.hard_delete && deletes && !self.keys.is_empty() {
            let on: Vec<String> = self
                .keys
                .iter()
                .map(|k| format!("t.{k} = s.{k}", k = quote(k)))
                .collect();
            let sql = format!(
                "DELETE FROM {table} t USING {stage} s WHERE {} AND t.{d} IS NOT NULL",
                on.join(" AND "),
                d = quote(Meta::DeletedAt.name())
            );
            self.client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.error(batch, "hard delete", e))?;
        }
        Ok(())
    }

    fn merge_sql(&self, table: &str, stage: &str, columns: &[Active]) -> String {
        let mut insert_cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        let mut select: Vec<String> = columns
            .iter()
            .map(|c| match &c.ty {
                PgType::Custom(t) => format!("{}::{t}", quote(&c.name)),
                _ => quote(&c.name),
            })
            .collect();
        if self.opts.metadata {
            insert_cols.push(quote(Meta::BatchedAt.name()));
            select.push("now()".into());
        }
        let keys: Vec<String> = self.keys.iter().map(|k| quote(k)).collect();
        if keys.is_empty() {
            return format!(
                "INSERT INTO {table} ({}) SELECT {} FROM {stage}",
                insert_cols.join(", "),
                select.join(", ")
            );
        }
        let updates: Vec<String> = insert_cols
            .iter()
            .filter(|c| !keys.contains(c))
            .map(|c| format!("{c} = EXCLUDED.{c}"))
            .collect();
        let conflict = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        format!(
            "INSERT INTO {table} ({cols}) SELECT DISTINCT ON ({k}) {sel} FROM {stage} ORDER BY {k}, ctid DESC ON CONFLICT ({k}) {conflict}",
            cols = insert_cols.join(", "),
            k = keys.join(", "),
            sel = select.join(", "),
        )
    }
}

impl Loader for PgLoader {
    type Batch = Batch;

    async fn load(&mut self, batch: Batch) -> Result<(), SdkError> {
        self.load_batch(&batch).await
    }

    async fn update_schema(&mut self, spec: Arc<StreamSpec>) -> Result<(), SdkError> {
        self.apply(&spec).await
    }

    async fn activate_version(&mut self, version: i64) -> Result<(), SdkError> {
        let table = self.model.qualified();
        let v = quote(Meta::TableVersion.name());
        let d = quote(Meta::DeletedAt.name());
        let older = format!("({v} IS NULL OR {v} < $1)");
        let sql = if self.hard_delete {
            format!("DELETE FROM {table} WHERE {older}")
        } else {
            self.client
                .batch_execute(&format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {d} timestamptz"
                ))
                .await
                .map_err(|e| db_error(format!("stream `{}`: ACTIVATE_VERSION", self.stream), e))?;
            format!("UPDATE {table} SET {d} = now() WHERE {older} AND {d} IS NULL")
        };
        let n = self.client.execute(&sql, &[&version]).await.map_err(|e| {
            db_error(
                format!("stream `{}`: ACTIVATE_VERSION {version}", self.stream),
                e,
            )
        })?;
        tracing::info!(stream = %self.stream, version, rows = n, hard = self.hard_delete, "older table versions retired");
        Ok(())
    }
}

/// Reads a table's columns and primary key; an absent table gives an absent model.
pub(crate) async fn introspect(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<TableModel, SdkError> {
    let err = |e| db_error(format!("cannot read the definition of {schema}.{table}"), e);
    let rows = client
        .query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) \
             FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            &[&schema, &table],
        )
        .await
        .map_err(err)?;
    let mut model = TableModel::absent(schema, table);
    if rows.is_empty() {
        return Ok(model);
    }
    model.exists = true;
    model.columns = rows
        .iter()
        .map(|r| crate::model::Column {
            name: r.get(0),
            ty: PgType::parse(r.get::<_, &str>(1)),
        })
        .collect();
    let pk = client
        .query_opt(
            "SELECT con.conname::text, array_agg(a.attname::text ORDER BY k.ord) \
             FROM pg_constraint con \
             CROSS JOIN LATERAL unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord) \
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum \
             WHERE con.conrelid = to_regclass(format('%I.%I', $1::text, $2::text)) AND con.contype = 'p' \
             GROUP BY con.conname",
            &[&schema, &table],
        )
        .await
        .map_err(err)?;
    model.primary_key = pk.map(|r| (r.get(0), r.get(1)));
    Ok(model)
}
