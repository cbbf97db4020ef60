//! The loader: a stream's connections; each batch is one transaction on each of them.
//!
//! A large batch whose rows the sink split over several shards loads on one connection per
//! shard at once ([`crate::stage`] does the work of each). Every shard's transaction stays
//! open until all succeeded, then each commits; if one fails, all roll back. Small batches,
//! batches in which a column was widened, and batches COPYed straight into a table that was
//! empty load on the first connection alone.
//!
//! ACTIVATE_VERSION v marks (or with `hard_delete` removes) rows whose `_sdc_table_version`
//! is below v or null and that the pass of v did not send ([`crate::sent`]). It runs after
//! every batch before it committed, so rows of version v are never touched, whatever the
//! batching. One that arrives before any record of v (taps
//! send one when a full copy starts) is deferred to the next ACTIVATE_VERSION or the end of
//! input: applied at once, it would mark every row deleted only for the copy to unmark each
//! one again, doubling the writes of a re-copy and showing a table of deleted rows meanwhile.
//! When a signal cuts the input short, the deferred one is not applied: the copy it belongs to
//! may be incomplete.
//!
//! Retriable errors (a lost connection, a server restart, a serialization failure, a
//! deadlock) are retried after reconnecting; a COMMIT whose answer was lost is looked up by
//! transaction id before anything is loaded again ([`crate::retry`]).

use std::sync::Arc;

use futures_util::future::join_all;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::{Loader, StreamSpec};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::Client;

use crate::Config;
use crate::connect::{self, db_error};
use crate::model::{Active, Meta, PlanOptions, TableModel, plan};
use crate::names::quote;
use crate::retry::{self, Retry, RetryPolicy, Txn};
use crate::sent::{SentKeys, SentTracker};
use crate::sink::{Batch, Part};
use crate::stage::{Path, Stage, TARGET as RETIRED};
use crate::types::PgType;

/// Batches smaller than this load on one connection.
const PARALLEL_MIN_BYTES: usize = 1 << 20;

/// A stream's loader.
pub struct PgLoader {
    /// Where committed COPY buffers go back to the sink.
    buffers: Option<crate::buffers::BufferPool>,
    stream: String,
    config: Arc<Config>,
    client: Client,
    /// Connections for shards 1.., opened when the first large batch arrives.
    extra: Vec<Client>,
    model: TableModel,
    keys: Vec<String>,
    opts: PlanOptions,
    hard_delete: bool,
    /// Keyed table that was empty at the start and has had no key conflict yet.
    direct: bool,
    /// Which versions' merges record their keys in the side table ([`crate::sent`]).
    sent: SentTracker,
    /// The server has `MERGE` (PostgreSQL 15+) and no key column has a nondeterministic
    /// collation (whose equal values the sink could not tell apart).
    merge_ok: bool,
    /// Table versions of the records loaded in this run.
    loaded_versions: Vec<i64>,
    /// An ACTIVATE_VERSION that came before its records, applied later.
    deferred: Option<i64>,
    /// Retries after retriable errors.
    retry: RetryPolicy,
    /// Extra connections shared by the streams of a run without `stream_connections`, and
    /// those this stream holds.
    budget: Option<Arc<Semaphore>>,
    permits: Option<OwnedSemaphorePermit>,
}

impl PgLoader {
    pub(crate) async fn open(
        stream: &str,
        config: Arc<Config>,
        client: Client,
        model: TableModel,
        spec: &StreamSpec,
        opts: PlanOptions,
        retry: RetryPolicy,
    ) -> Result<Self, SdkError> {
        let hard_delete = config.hard_delete;
        let mut loader = Self {
            buffers: None,
            stream: stream.to_string(),
            config,
            client,
            extra: Vec::new(),
            model,
            keys: Vec::new(),
            opts,
            hard_delete,
            direct: false,
            sent: SentTracker::default(),
            merge_ok: false,
            loaded_versions: Vec::new(),
            deferred: None,
            retry,
            budget: None,
            permits: None,
        };
        let mut retry = Retry::new(retry, "opening the table");
        loop {
            let opened = async {
                loader.apply(spec).await?;
                loader.table_is_empty().await
            }
            .await;
            match opened {
                Ok(empty) => {
                    loader.direct = !loader.keys.is_empty() && empty;
                    return Ok(loader);
                }
                Err(e) => {
                    loader.recover_after(&mut retry, e, None).await?;
                }
            }
        }
    }

    /// Whether parts may be merged with `MERGE` ([`Self::merge_ok`]).
    async fn merge_allowed(&self) -> Result<bool, SdkError> {
        let sql = "SELECT current_setting('server_version_num')::int >= 150000 AND NOT EXISTS ( \
                   SELECT 1 FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation \
                   WHERE a.attrelid = to_regclass($1) AND a.attname = ANY($2) \
                   AND NOT c.collisdeterministic)";
        let row = self
            .client
            .query_one(sql, &[&self.model.qualified(), &self.keys])
            .await
            .map_err(|e| db_error(format!("stream `{}`: {sql}", self.stream), e))?;
        Ok(row.get::<_, bool>(0))
    }

    /// Whether this stream's parts may use `MERGE`: the server allows it, the table's
    /// primary key is the stream's key, and every key column has a type whose equal values
    /// the sink's key hash sees as equal (not `jsonb`, `double precision` or a type this
    /// target did not create), so a part it found free of repeated keys is free of them.
    fn merge_command(&self) -> bool {
        let pk_is_key = self.model.primary_key.as_ref().is_some_and(|(_, cols)| {
            cols.len() == self.keys.len() && cols.iter().all(|c| self.keys.contains(c))
        });
        let plain_types = self.keys.iter().all(|k| {
            self.model.columns.iter().any(|c| {
                c.name == *k && !matches!(c.ty, PgType::Jsonb | PgType::Double | PgType::Custom(_))
            })
        });
        self.merge_ok && pk_is_key && plain_types
    }

    async fn table_is_empty(&self) -> Result<bool, SdkError> {
        let empty = format!(
            "SELECT NOT EXISTS (SELECT 1 FROM {})",
            self.model.qualified()
        );
        let row = self
            .client
            .query_one(&empty, &[])
            .await
            .map_err(|e| db_error(format!("stream `{}`: {empty}", self.stream), e))?;
        Ok(row.get::<_, bool>(0))
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
        self.merge_ok = self.merge_allowed().await?;
        Ok(())
    }

    fn stage(&self) -> Stage<'_> {
        Stage {
            stream: &self.stream,
            table: self.model.qualified(),
            keys: &self.keys,
            opts: self.opts,
            hard_delete: self.hard_delete,
            skip_unchanged: self.config.skip_unchanged_rows,
            sent: self.sent.recording(),
            merge_command: self.merge_command(),
        }
    }

    async fn load_batch(&mut self, batch: &Batch) -> Result<(), SdkError> {
        if self.config.skip_unchanged_rows && !self.keys.is_empty() {
            let prepared = self
                .sent
                .prepare(&self.client, &self.model, &self.keys, &batch.versions)
                .await;
            prepared.map_err(|e| {
                db_error(
                    self.stage()
                        .context_for(batch, "finding the sent keys' table"),
                    e,
                )
            })?;
        }
        let shards = batch.parts.iter().map(|p| p.shard).max().unwrap_or(0) + 1;
        let one_shape = batch
            .parts
            .windows(2)
            .all(|w| Arc::ptr_eq(&w[0].columns, &w[1].columns));
        // COPY straight into an empty table gains nothing from more connections (measured
        // slower: they compete with the target for cores); merges do.
        if shards == 1 || !one_shape || batch.bytes() < PARALLEL_MIN_BYTES || self.direct {
            return self.load_serial(batch).await;
        }
        if let Some(first) = batch.parts.first() {
            self.widen_for(batch, &first.columns).await?;
        }
        if self.extra.len() + 1 < shards && !self.may_open_extra(shards - 1) {
            return self.load_serial(batch).await;
        }
        if self.extra.len() + 1 < shards {
            tracing::info!(stream = %self.stream, "loading over {shards} connections");
            while self.extra.len() + 1 < shards {
                let client = connect::connect(&self.config).await?;
                self.extra.push(client);
            }
        }
        self.load_parallel(batch, shards).await
    }

    /// Every part on the first connection, in order, in one transaction.
    async fn load_serial(&mut self, batch: &Batch) -> Result<(), SdkError> {
        let txn = retry::begin(&self.client, || format!("stream `{}`: BEGIN", self.stream)).await?;
        let mut result = Ok(());
        for part in &batch.parts {
            result = self.widen_for(batch, &part.columns).await;
            if result.is_ok() {
                match self
                    .stage()
                    .load(&self.client, batch, part, self.direct)
                    .await
                {
                    Ok(path) => self.direct = path == Path::Direct,
                    Err(e) => result = Err(e),
                }
            }
            if result.is_err() {
                break;
            }
        }
        if result.is_err() {
            // Best effort: the run stops on this error anyway.
            let _ = self.client.batch_execute("ROLLBACK").await;
            return result;
        }
        self.client.batch_execute("COMMIT").await.map_err(|e| {
            let context = self.stage().context_for(batch, "COMMIT");
            retry::commit_failed(context, e, txn, shards_of(batch), Vec::new())
        })
    }

    /// Each shard's parts on its own connection, at once; all commit or all roll back.
    async fn load_parallel(&mut self, batch: &Batch, shards: usize) -> Result<(), SdkError> {
        let stage = self.stage();
        let clients: Vec<&Client> = std::iter::once(&self.client)
            .chain(self.extra.iter())
            .take(shards)
            .collect();
        let direct = self.direct;
        let runs = clients.iter().enumerate().map(|(shard, client)| {
            let stage = &stage;
            let parts: Vec<&Part> = batch.parts.iter().filter(|p| p.shard == shard).collect();
            async move {
                let txn = retry::begin(client, || stage.context_for(batch, "BEGIN")).await?;
                let mut path = if direct { Path::Direct } else { Path::Staged };
                for part in parts {
                    path = stage
                        .load(client, batch, part, path == Path::Direct)
                        .await?;
                }
                Ok::<(Path, Txn), SdkError>((path, txn))
            }
        });
        // Every shard finishes before any commits or rolls back.
        let shard_runs: Result<Vec<(Path, Txn)>, SdkError> =
            join_all(runs).await.into_iter().collect();
        let (paths, txns): (Vec<Path>, Vec<Txn>) = match shard_runs {
            Ok(runs) => runs.into_iter().unzip(),
            Err(e) => {
                for client in &clients {
                    // Best effort: the run stops on this error anyway.
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                return Err(e);
            }
        };
        for (shard, client) in clients.iter().enumerate() {
            if let Err(e) = client.batch_execute("COMMIT").await {
                if shard > 0 {
                    tracing::warn!(stream = %self.stream, shard, "a shard failed to commit after others did: their rows are loaded, the state does not move past them until the other shards load");
                }
                for client in &clients[shard + 1..] {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                let context = stage.context_for(batch, "COMMIT");
                return Err(retry::commit_failed(
                    context,
                    e,
                    txns[shard],
                    vec![shard],
                    (0..shard).collect(),
                ));
            }
        }
        self.direct = paths.iter().all(|p| *p == Path::Direct);
        Ok(())
    }

    /// Alters columns the sink widened because data outgrew them.
    async fn widen_for(&mut self, batch: &Batch, columns: &[Active]) -> Result<(), SdkError> {
        let table = self.model.qualified();
        for col in columns {
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
                    .map_err(|e| db_error(self.stage().context_for(batch, "widening"), e))?;
                self.model.columns[idx].ty = col.ty.clone();
                if let Some(sql) = self
                    .sent
                    .table()
                    .and_then(|s| s.widen_sql(&col.name, &col.ty))
                {
                    self.client
                        .batch_execute(&sql)
                        .await
                        .map_err(|e| db_error(self.stage().context_for(batch, "widening"), e))?;
                }
            }
        }
        Ok(())
    }
}

impl Loader for PgLoader {
    type Batch = Batch;

    async fn load(&mut self, batch: Batch) -> Result<(), SdkError> {
        self.load_retrying(&batch).await?;
        for v in batch.versions {
            if !self.loaded_versions.contains(&v) {
                self.loaded_versions.push(v);
            }
        }
        if let Some(pool) = &self.buffers {
            for part in batch.parts {
                pool.give(part.data);
            }
        }
        Ok(())
    }

    async fn update_schema(&mut self, spec: Arc<StreamSpec>) -> Result<(), SdkError> {
        let mut retry = Retry::new(self.retry, "schema change");
        while let Err(e) = self.apply(&spec).await {
            self.recover_after(&mut retry, e, None).await?;
        }
        Ok(())
    }

    async fn activate_version(&mut self, version: i64) -> Result<(), SdkError> {
        if !self.loaded_versions.contains(&version) {
            tracing::debug!(stream = %self.stream, version, "ACTIVATE_VERSION before its records: deferred");
            self.deferred = self.deferred.max(Some(version));
            return Ok(());
        }
        if self.deferred.is_some_and(|d| d <= version) {
            self.deferred = None;
        }
        self.retire_retrying(version).await
    }

    async fn finish(&mut self) -> Result<(), SdkError> {
        match self.deferred.take() {
            Some(version) => self.retire_retrying(version).await,
            None => Ok(()),
        }
    }

    async fn finish_interrupted(&mut self) -> Result<(), SdkError> {
        if let Some(version) = self.deferred.take() {
            tracing::warn!(stream = %self.stream, version, "input stopped by a signal: ACTIVATE_VERSION not applied, its copy may be incomplete");
        }
        Ok(())
    }
}

impl PgLoader {
    /// Draws this stream's extra connections from `budget`, shared by the run's streams.
    pub(crate) fn with_budget(mut self, budget: Option<Arc<Semaphore>>) -> Self {
        self.budget = budget;
        self
    }

    /// Whether the stream may hold `n` extra connections: always with an explicit
    /// `stream_connections`, else while the run's shared budget has room for them. Once
    /// granted they stay with the stream; without room its batches load on one connection.
    fn may_open_extra(&mut self, n: usize) -> bool {
        let Some(budget) = &self.budget else {
            return true;
        };
        if self.permits.as_ref().is_some_and(|p| p.num_permits() >= n) {
            return true;
        }
        let Ok(n) = u32::try_from(n) else {
            return false;
        };
        match budget.clone().try_acquire_many_owned(n) {
            Ok(permit) => {
                self.permits = Some(permit);
                true
            }
            Err(_) => {
                tracing::debug!(stream = %self.stream, "no extra connection left in the run's budget: loading on one");
                false
            }
        }
    }

    /// Hands committed COPY buffers back to `pool` for the sink to refill.
    pub(crate) fn with_buffers(mut self, pool: crate::buffers::BufferPool) -> Self {
        self.buffers = Some(pool);
        self
    }

    /// Loads a batch, retrying retriable failures. After a lost COMMIT only the shards that did
    /// not commit are loaded again; the batch is loaded when every shard committed.
    async fn load_retrying(&mut self, batch: &Batch) -> Result<(), SdkError> {
        let mut retry = Retry::new(self.retry, "load");
        let mut committed: Vec<usize> = Vec::new();
        let mut rest: Option<Batch> = None;
        loop {
            let Err(e) = self.load_batch(rest.as_ref().unwrap_or(batch)).await else {
                return Ok(());
            };
            let lost =
                retry::lost_commit(&e).map(|c| (c.txn, c.shards.clone(), c.committed.clone()));
            let outcome = self
                .recover_after(&mut retry, e, lost.as_ref().map(|l| l.0))
                .await?;
            if let Some((txn, shards, before)) = lost {
                committed.extend(before);
                if outcome == Some(true) {
                    committed.extend(shards);
                }
                tracing::warn!(stream = %self.stream, xid = txn.xid, committed = outcome == Some(true), "the answer to a COMMIT was lost; the server says whether it committed");
            }
            if !committed.is_empty() {
                let left = retry::without_shards(batch, &committed);
                if left.parts.is_empty() {
                    return Ok(());
                }
                rest = Some(left);
            }
        }
    }

    /// Runs ACTIVATE_VERSION, retrying retriable failures (its statements are idempotent).
    async fn retire_retrying(&mut self, version: i64) -> Result<(), SdkError> {
        let mut retry = Retry::new(self.retry, "ACTIVATE_VERSION");
        while let Err(e) = self.retire(version).await {
            self.recover_after(&mut retry, e, None).await?;
        }
        Ok(())
    }

    /// After `err`: unless it is fatal or the retries are spent, waits, then makes the stream's
    /// connections usable again ([`Self::recover`]), waiting again whenever that fails.
    /// Returns whether `lost`, a transaction whose COMMIT answer was lost, committed.
    async fn recover_after(
        &mut self,
        retry: &mut Retry,
        err: SdkError,
        lost: Option<Txn>,
    ) -> Result<Option<bool>, SdkError> {
        let mut err = err;
        loop {
            retry.wait(&self.stream, err).await?;
            match self.recover(lost).await {
                Ok(outcome) => return Ok(outcome),
                Err(e) => err = e,
            }
        }
    }

    /// Reopens lost connections, learns whether `lost` committed, then re-reads the table's
    /// definition (a DDL statement or a widening may or may not have committed).
    async fn recover(&mut self, lost: Option<Txn>) -> Result<Option<bool>, SdkError> {
        if !usable(&self.client).await {
            self.client = connect::connect(&self.config).await?;
        }
        for i in 0..self.extra.len() {
            if !usable(&self.extra[i]).await {
                self.extra[i] = connect::connect(&self.config).await?;
            }
        }
        let outcome = match lost {
            Some(txn) => Some(retry::committed(&self.client, &self.stream, txn).await?),
            None => None,
        };
        let (schema, table) = (self.model.schema.clone(), self.model.table.clone());
        self.model = introspect(&self.client, &schema, &table).await?;
        Ok(outcome)
    }

    /// Marks or deletes the rows of versions older than `version` that its pass did not send,
    /// and forgets the keys that pass sent, in one transaction.
    async fn retire(&mut self, version: i64) -> Result<(), SdkError> {
        let context = || format!("stream `{}`: ACTIVATE_VERSION {version}", self.stream);
        self.client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| db_error(context(), e))?;
        let retired = self.retire_in_transaction(version).await;
        let done = match retired {
            Ok(n) => self.client.batch_execute("COMMIT").await.map(|()| n),
            Err(e) => {
                // Best effort: the error is reported (and retried) anyway.
                let _ = self.client.batch_execute("ROLLBACK").await;
                Err(e)
            }
        };
        let n = done.map_err(|e| db_error(context(), e))?;
        self.sent.activated(version);
        tracing::info!(stream = %self.stream, version, rows = n, hard = self.hard_delete, "older table versions retired");
        Ok(())
    }

    /// [`Self::retire`]'s statements; returns the rows retired.
    async fn retire_in_transaction(&self, version: i64) -> Result<u64, tokio_postgres::Error> {
        let table = self.model.qualified();
        let v = quote(Meta::TableVersion.name());
        let d = quote(Meta::DeletedAt.name());
        let sent = SentKeys::find(&self.client, &self.model).await?;
        let mut older = format!("({t}.{v} IS NULL OR {t}.{v} < $1)", t = RETIRED);
        if let Some(sent) = &sent {
            // Fresh statistics, so the planner sees a table of all the pass's keys.
            self.client
                .batch_execute(&format!("ANALYZE {}", sent.table))
                .await?;
            older = format!("{older} AND {}", sent.unsent(RETIRED));
        }
        if !self.hard_delete {
            // Only when missing: ALTER TABLE locks out readers even when it changes nothing.
            let has = |c: &crate::model::Column| c.name == Meta::DeletedAt.name();
            if !self.model.columns.iter().any(has) {
                self.client
                    .batch_execute(&format!(
                        "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {d} timestamptz"
                    ))
                    .await?;
            }
            older = format!("{older} AND {RETIRED}.{d} IS NULL");
        }
        // With a side table, most passes find nothing to retire, and a count may run in
        // parallel workers where the UPDATE or DELETE may not (on the bench's 1M rows, 340 ms
        // against 550 ms).
        let nothing = match &sent {
            Some(_) => {
                let count = format!("SELECT count(*) FROM {table} AS {RETIRED} WHERE {older}");
                self.client
                    .query_one(&count, &[&version])
                    .await?
                    .get::<_, i64>(0)
                    == 0
            }
            None => false,
        };
        let n = if nothing {
            0
        } else if self.hard_delete {
            let sql = format!("DELETE FROM {table} AS {RETIRED} WHERE {older}");
            self.client.execute(&sql, &[&version]).await?
        } else {
            let sql = format!("UPDATE {table} AS {RETIRED} SET {d} = now() WHERE {older}");
            self.client.execute(&sql, &[&version]).await?
        };
        if let Some(sent) = &sent {
            sent.activate(&self.client, version).await?;
        }
        Ok(n)
    }
}

/// The shards a batch's parts load on.
fn shards_of(batch: &Batch) -> Vec<usize> {
    let mut shards: Vec<usize> = batch.parts.iter().map(|p| p.shard).collect();
    shards.sort_unstable();
    shards.dedup();
    shards
}

/// Whether a connection still works. The failed step already rolled back what it had open on
/// it; a session left in a failed transaction fails the check and is replaced.
async fn usable(client: &Client) -> bool {
    !client.is_closed() && client.batch_execute("SELECT 1").await.is_ok()
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
