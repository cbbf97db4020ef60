//! Loading one part of a batch on one connection, inside the caller's transaction.
//!
//! - Append-only streams (no key properties): `COPY table FROM STDIN (FORMAT binary)`.
//! - Keyed streams: COPY into a temporary staging table, then one `INSERT … SELECT DISTINCT ON
//!   (keys) … ORDER BY keys, ctid DESC ON CONFLICT (keys) DO UPDATE`, so the last record of a
//!   key in the part wins (a fresh temporary table filled by one COPY keeps input order in
//!   `ctid`); with `hard_delete`, rows whose `_sdc_deleted_at` is set are then deleted.
//!   When no key repeats in the part and the table's primary key is the stream's key, a
//!   `MERGE` (PostgreSQL 15+) does the same work: unlike `ON CONFLICT … DO UPDATE … WHERE`,
//!   it neither locks nor writes WAL for the rows it leaves unchanged (on the bench's 1M-row
//!   table, 200 ms and 0.1 MB of WAL per 100,000 unchanged rows, against 290 ms and 39 MB).
//!   Should it meet a key another session inserted meanwhile, the part is merged again with
//!   `ON CONFLICT`.
//! - Direct path: while a keyed table was empty when the run started, a part is first COPYed
//!   straight into it inside a savepoint. A key conflict (a duplicate in the part or a key
//!   loaded earlier) rolls back to the savepoint and merges the part through staging instead.
//! - With a side table of the keys a versioned pass sent ([`crate::sent`]), a merge also
//!   records the part's keys there, and a row whose values are unchanged keeps its
//!   `_sdc_table_version`: only a change of values rewrites it.

use bytes::Bytes;
use futures_util::SinkExt;
use singer_core::sdk::SdkError;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::connect::db_error;
use crate::encode::{COPY_HEADER, COPY_TRAILER};
use crate::model::{Active, Meta, PlanOptions};
use crate::names::quote;
use crate::sent::SentKeys;
use crate::sink::{Batch, Part};
use crate::types::PgType;

/// `work_mem` for the merge of one part: enough to sort it in memory.
const MERGE_WORK_MEM: &str = "64MB";

/// What loading a part needs to know about its stream and table.
pub(crate) struct Stage<'a> {
    pub stream: &'a str,
    /// The quoted, schema-qualified table.
    pub table: String,
    pub keys: &'a [String],
    pub opts: PlanOptions,
    pub hard_delete: bool,
    /// Leave rows whose values would not change alone (the `skip_unchanged_rows` setting).
    pub skip_unchanged: bool,
    /// Where merged parts record their keys (with `skip_unchanged`, for versioned batches).
    pub sent: Option<&'a SentKeys>,
    /// Parts without a repeated key may use `MERGE`: PostgreSQL 15+, and the table's primary
    /// key is the stream's key (its index finds each staged row's match).
    pub merge_command: bool,
}

/// How a part was loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Path {
    /// COPY straight into the table.
    Direct,
    /// Through the staging table (or a plain COPY for append-only streams).
    Staged,
}

impl Stage<'_> {
    pub(crate) fn context_for(&self, batch: &Batch, what: &str) -> String {
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
        let mut context = self.context_for(batch, what);
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

    pub(crate) fn error(&self, batch: &Batch, what: &str, e: tokio_postgres::Error) -> SdkError {
        db_error(self.context_for(batch, what), e)
    }

    /// Loads `part` on `client`; `direct` allows the direct path.
    pub(crate) async fn load(
        &self,
        client: &Client,
        batch: &Batch,
        part: &Part,
        direct: bool,
    ) -> Result<Path, SdkError> {
        let columns = &part.columns;
        let custom = columns.iter().any(|c| matches!(c.ty, PgType::Custom(_)));
        let deletes = columns.iter().any(|c| c.name == Meta::DeletedAt.name());
        if self.keys.is_empty() && !custom {
            copy(client, &self.table, columns, part)
                .await
                .map_err(|e| self.part_error(batch, part, "COPY", e))?;
            return Ok(Path::Staged);
        }
        if direct && !custom && !(self.hard_delete && deletes) {
            client
                .batch_execute("SAVEPOINT singer_direct")
                .await
                .map_err(|e| self.error(batch, "SAVEPOINT", e))?;
            match copy(client, &self.table, columns, part).await {
                Ok(()) => return Ok(Path::Direct),
                Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT singer_direct")
                        .await
                        .map_err(|e| self.error(batch, "ROLLBACK", e))?;
                    tracing::debug!(stream = %self.stream, "key conflict: switching to staged merges");
                }
                Err(e) => return Err(self.part_error(batch, part, "COPY", e)),
            }
        }
        self.merge(client, batch, part).await?;
        Ok(Path::Staged)
    }

    async fn merge(&self, client: &Client, batch: &Batch, part: &Part) -> Result<(), SdkError> {
        let columns = &part.columns;
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
        client
            .batch_execute(&create)
            .await
            .map_err(|e| self.error(batch, "staging", e))?;
        copy(client, &stage, columns, part)
            .await
            .map_err(|e| self.part_error(batch, part, "COPY", e))?;
        self.merge_staged(client, batch, part, &stage).await?;
        if let Some(sent) = self.sent {
            client
                .batch_execute(&sent.record_sql(&stage, columns))
                .await
                .map_err(|e| self.error(batch, "recording the keys of the table version", e))?;
        }
        let deletes = columns.iter().any(|c| c.name == Meta::DeletedAt.name());
        if self.hard_delete && deletes && !self.keys.is_empty() {
            let on: Vec<String> = self
                .keys
                .iter()
                .map(|k| format!("t.{k} = s.{k}", k = quote(k)))
                .collect();
            let sql = format!(
                "DELETE FROM {} t USING {stage} s WHERE {} AND t.{d} IS NOT NULL",
                self.table,
                on.join(" AND "),
                d = quote(Meta::DeletedAt.name())
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.error(batch, "hard delete", e))?;
        }
        Ok(())
    }

    /// Merges the staged rows into the table. When the sink saw no key twice in the part, the
    /// rows go in as they are, without sorting them to pick the last row of each key (on the
    /// bench table, that sort took 150-180 ms of server time per 100,000-row part, reading
    /// the part 20-40 ms). Should the server still find a key twice
    /// (keys equal under a collation or type the sink's hash does not know, such as
    /// `char(n)` or a nondeterministic collation), the part is merged again the sorted way.
    async fn merge_staged(
        &self,
        client: &Client,
        batch: &Batch,
        part: &Part,
        stage: &str,
    ) -> Result<(), SdkError> {
        let columns = &part.columns;
        // The sorted merge sorts the part by key; let it sort in memory (a part is a few MiB).
        let sorted = format!(
            "SET LOCAL work_mem = '{MERGE_WORK_MEM}'; {}",
            self.merge_sql(stage, columns, true)
        );
        if part.unique_keys && !self.keys.is_empty() {
            let plain = if self.merge_command {
                // Each staged row finds its match through the primary key's index, as ON
                // CONFLICT would: without statistics on the staging table the planner may
                // otherwise hash the whole table for every part.
                format!(
                    "SAVEPOINT singer_merge; SET LOCAL enable_hashjoin = off; \
                     SET LOCAL enable_mergejoin = off; {}; \
                     SET LOCAL enable_hashjoin TO DEFAULT; SET LOCAL enable_mergejoin TO DEFAULT",
                    self.merge_command_sql(stage, columns)
                )
            } else {
                format!(
                    "SAVEPOINT singer_merge; {}",
                    self.merge_sql(stage, columns, false)
                )
            };
            let retry_sorted = [SqlState::CARDINALITY_VIOLATION, SqlState::UNIQUE_VIOLATION];
            match client.batch_execute(&plain).await {
                Ok(()) => return Ok(()),
                Err(e) if e.code().is_some_and(|c| retry_sorted.contains(c)) => {
                    tracing::debug!(stream = %self.stream, "a key twice in a part, or inserted meanwhile: merging it sorted");
                    client
                        .batch_execute("ROLLBACK TO SAVEPOINT singer_merge")
                        .await
                        .map_err(|e| self.error(batch, "ROLLBACK", e))?;
                }
                Err(e) => return Err(self.error(batch, "merge", e)),
            }
        }
        client
            .batch_execute(&sorted)
            .await
            .map_err(|e| self.error(batch, "merge", e))
    }

    /// The merge statement; `pick_last` keeps only the last staged row of each key.
    fn merge_sql(&self, stage: &str, columns: &[Active], pick_last: bool) -> String {
        let table = &self.table;
        let mut insert_cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        let mut select: Vec<String> = columns.iter().map(|c| staged_value(c, None)).collect();
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
        } else if let Some(changed) = self
            .skip_unchanged
            .then(|| changed(columns, self.sent.is_none(), "EXCLUDED"))
            .flatten()
        {
            format!("DO UPDATE SET {} WHERE {changed}", updates.join(", "))
        } else {
            format!("DO UPDATE SET {}", updates.join(", "))
        };
        let (cols, k, sel) = (insert_cols.join(", "), keys.join(", "), select.join(", "));
        if pick_last {
            format!(
                "INSERT INTO {table} AS {TARGET} ({cols}) SELECT DISTINCT ON ({k}) {sel} FROM {stage} ORDER BY {k}, ctid DESC ON CONFLICT ({k}) {conflict}"
            )
        } else {
            format!(
                "INSERT INTO {table} AS {TARGET} ({cols}) SELECT {sel} FROM {stage} ON CONFLICT ({k}) {conflict}"
            )
        }
    }
}

/// The alias of the table in a merge (for the unchanged-row test) and in ACTIVATE_VERSION's
/// statements.
pub(crate) const TARGET: &str = "_singer_t";

/// The alias of the staging table in a `MERGE`.
const SOURCE: &str = "_singer_s";

impl Stage<'_> {
    /// The `MERGE` of a part whose keys are all different.
    fn merge_command_sql(&self, stage: &str, columns: &[Active]) -> String {
        let value = |c: &Active| staged_value(c, Some(SOURCE));
        let mut insert_cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
        let mut values: Vec<String> = columns.iter().map(value).collect();
        let mut sets: Vec<String> = columns
            .iter()
            .filter(|c| !self.keys.contains(&c.name))
            .map(|c| format!("{} = {}", quote(&c.name), value(c)))
            .collect();
        if self.opts.metadata {
            let batched = quote(Meta::BatchedAt.name());
            insert_cols.push(batched.clone());
            values.push("now()".into());
            sets.push(format!("{batched} = now()"));
        }
        let on: Vec<String> = columns
            .iter()
            .filter(|c| self.keys.contains(&c.name))
            .map(|c| format!("{TARGET}.{} = {}", quote(&c.name), value(c)))
            .collect();
        let matched = if sets.is_empty() {
            String::new()
        } else {
            let when = self
                .skip_unchanged
                .then(|| changed(columns, self.sent.is_none(), SOURCE))
                .flatten()
                .map(|c| format!(" AND {c}"))
                .unwrap_or_default();
            format!("WHEN MATCHED{when} THEN UPDATE SET {} ", sets.join(", "))
        };
        format!(
            "MERGE INTO {} AS {TARGET} USING {stage} AS {SOURCE} ON {} {matched}\
             WHEN NOT MATCHED THEN INSERT ({}) VALUES ({})",
            self.table,
            on.join(" AND "),
            insert_cols.join(", "),
            values.join(", ")
        )
    }
}

/// The condition under which a conflicting row is updated: some column the part sets, other
/// than the ones that only say when a row was loaded, differs from the row in the table
/// (`None` when no such column is left). Types without an equality operator (`json`, `xml`,
/// `point`, …: any type this target did not create) are compared as text, where a different
/// spelling of an equal value counts as a change, never the other way round. A new
/// `_sdc_table_version` is a change unless `version_is_change` is false (the part's keys are
/// recorded in the side table instead). `source` names the incoming row (`EXCLUDED`, or the
/// staging table's alias in a `MERGE`).
fn changed(columns: &[Active], version_is_change: bool, source: &str) -> Option<String> {
    let mut loaded_at = vec![
        Meta::ExtractedAt.name(),
        Meta::ReceivedAt.name(),
        Meta::BatchedAt.name(),
        Meta::Sequence.name(),
    ];
    if !version_is_change {
        loaded_at.push(Meta::TableVersion.name());
    }
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for c in columns
        .iter()
        .filter(|c| !loaded_at.contains(&c.name.as_str()))
    {
        let name = quote(&c.name);
        match &c.ty {
            PgType::Custom(t) => {
                old.push(format!("{TARGET}.{name}::text"));
                // A staged value of such a type is its text; it takes the type's spelling.
                let cast = if source == "EXCLUDED" {
                    String::new()
                } else {
                    format!("::{t}")
                };
                new.push(format!("{source}.{name}{cast}::text"));
            }
            _ => {
                old.push(format!("{TARGET}.{name}"));
                new.push(format!("{source}.{name}"));
            }
        }
    }
    if old.is_empty() {
        return None;
    }
    Some(format!(
        "({}) IS DISTINCT FROM ({})",
        old.join(", "),
        new.join(", ")
    ))
}

/// A staged column's value in the table's type, qualified by `alias` if given: values of types
/// this target did not create are staged as text and cast (`"c"::type`).
pub(crate) fn staged_value(c: &Active, alias: Option<&str>) -> String {
    let name = quote(&c.name);
    let column = match alias {
        Some(a) => format!("{a}.{name}"),
        None => name,
    };
    match &c.ty {
        PgType::Custom(t) => format!("{column}::{t}"),
        _ => column,
    }
}

/// Binary COPY of a part's rows into `table`.
async fn copy(
    client: &Client,
    table: &str,
    columns: &[Active],
    part: &Part,
) -> Result<(), tokio_postgres::Error> {
    let cols: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let stmt = format!(
        "COPY {table} ({}) FROM STDIN (FORMAT binary)",
        cols.join(", ")
    );
    let sink = client.copy_in::<_, Bytes>(&stmt).await?;
    futures_util::pin_mut!(sink);
    sink.send(Bytes::from_static(COPY_HEADER)).await?;
    // Slices of the part (no copies), so the connection's write buffer stays small.
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
