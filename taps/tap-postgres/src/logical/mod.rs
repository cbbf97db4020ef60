//! LOG_BASED: changes decoded by PostgreSQL's built-in `pgoutput` plugin from a logical
//! replication slot.
//!
//! Each stream keeps the WAL position (`lsn`) up to which its changes were emitted. A run
//! reads the slot from the smallest of them, emits a change of a stream only when its
//! transaction commits at or after that stream's own position, and acknowledges to the
//! server only the position of the state it was started with: the slot never forgets a
//! change that the target has not committed.

pub(crate) mod pgoutput;
pub(crate) mod slot;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pgwire_replication::{Lsn, ReplicationClient, ReplicationEvent};
use serde_json::{Value as Json, json};
use singer_core::CatalogEntry;
use singer_core::sdk::SdkError;
use singer_core::sdk::tap::{TapContext, now_rfc3339};
use tokio_postgres::Client;

use crate::config::Config;
use crate::discover;
use crate::logical::pgoutput::{Message, Relation, Tuple, Value};
use crate::stream::{Cell, DELETED_AT, StreamPlan};

/// Bookmark key of the WAL position, as PipelineWise's tap-postgres names it.
pub(crate) const LSN: &str = "lsn";
/// Set once a LOG_BASED stream's initial snapshot is complete.
pub(crate) const INITIAL_COMPLETE: &str = "initial_snapshot_complete";

/// What inserts and updates carry: the row is not deleted (any more).
const NOT_DELETED: &[u8] = b",\"_sdc_deleted_at\":null";

/// How often a run without changes of its streams writes its advancing position.
const IDLE_STATE_EVERY: Duration = Duration::from_secs(30);

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// A LOG_BASED stream whose initial snapshot is complete.
pub(crate) struct LogStream {
    pub(crate) entry: CatalogEntry,
    pub(crate) plan: StreamPlan,
    /// Changes of transactions committing before this position are already emitted.
    pub(crate) lsn: u64,
}

/// How the change stream runs.
pub(crate) struct Settings {
    pub(crate) state_every: u64,
    pub(crate) continuous: bool,
    pub(crate) max_run: Option<Duration>,
    pub(crate) idle_stop: Option<Duration>,
}

/// Where a relation's columns go.
struct RelMap {
    /// Index of the stream, `None` for relations no selected stream reads.
    stream: Option<usize>,
    /// For each plan column, its position in the relation's tuples.
    slots: Vec<Option<usize>>,
}

/// Reads changes of `streams` from the slot until the WAL position taken at start (or on,
/// when continuous).
pub(crate) async fn sync(
    config: &Config,
    client: &Client,
    ctx: &mut TapContext,
    mut streams: Vec<LogStream>,
    settings: &Settings,
) -> Result<(), SdkError> {
    if streams.is_empty() {
        return Ok(());
    }
    let slot_name = config.slot();
    let names = stream_names(&streams);
    let start = streams.iter().map(|s| s.lsn).min().unwrap_or(0);
    let info = slot::slot_info(client, &slot_name)
        .await?
        .ok_or_else(|| slot::missing(&slot_name, &names))?;
    if info.wal_status == "lost" {
        return Err(SdkError::Config(format!(
            "replication slot `{slot_name}` can no longer serve the state's position {} for \
             {names}: the server removed the WAL (wal_status {}, confirmed {}); {}",
            Lsn(start).to_pg_string(),
            info.wal_status,
            Lsn(info.confirmed_flush).to_pg_string(),
            slot::RECOVERY
        )));
    }
    if info.confirmed_flush > start {
        return Err(SdkError::Config(format!(
            "replication slot `{slot_name}` already confirmed {} but the state is at {} for \
             {names}: another consumer or an older state; the changes in between cannot be \
             read again; {}",
            Lsn(info.confirmed_flush).to_pg_string(),
            Lsn(start).to_pg_string(),
            slot::RECOVERY
        )));
    }
    let end: Option<u64> = if settings.continuous {
        None
    } else {
        let row = client
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .map_err(|e| crate::connect::db_error("cannot read the current WAL position", e))?;
        let text: String = row.get(0);
        Some(Lsn::parse(&text).map_or(0, |l| l.0))
    };
    if end.is_some_and(|e| e <= start) {
        tracing::info!(start = %Lsn(start).to_pg_string(), end = %end.map(|e| Lsn(e).to_pg_string()).unwrap_or_default(), "no WAL written since the state's position; nothing to read");
        return Ok(());
    }
    // A bounded queue of decoded changes: memory stays flat whatever the transaction size.
    let cfg = slot::replication_config(config, start)
        .with_buffer_size(2048)
        .with_status_interval(Duration::from_secs(1))
        .with_wakeup_interval(Duration::from_secs(1));
    tracing::info!(
        slot = %slot_name, from = %Lsn(start).to_pg_string(),
        to = %end.map_or("(continuous)".into(), |e| Lsn(e).to_pg_string()),
        "reading changes"
    );
    let mut repl = ReplicationClient::connect(cfg).await.map_err(|e| {
        SdkError::fatal(
            format!("cannot start replication from slot `{slot_name}`"),
            e,
        )
    })?;
    let mut reader = Reader {
        client,
        streams: &mut streams,
        relations: HashMap::new(),
        buf: Vec::with_capacity(4096),
        txn_lsn: None,
        deleted_extra: String::new(),
        extracted: String::new(),
        since_state: 0,
        state_every: settings.state_every.max(1),
    };
    let started = Instant::now();
    let result = reader
        .run(&mut repl, ctx, end, settings, started, &names)
        .await;
    repl.stop();
    result?;
    for s in reader.streams.iter() {
        s.plan.report_invalid();
    }
    reader.save_positions(ctx);
    ctx.write_state()
}

fn stream_names(streams: &[LogStream]) -> String {
    streams
        .iter()
        .map(|s| format!("`{}`", s.plan.tap_stream_id))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Reader<'a> {
    client: &'a Client,
    streams: &'a mut Vec<LogStream>,
    relations: HashMap<u32, RelMap>,
    buf: Vec<u8>,
    /// The commit position of the transaction being read.
    txn_lsn: Option<u64>,
    /// `,"_sdc_deleted_at":"<its commit time>"`, for deletes.
    deleted_extra: String,
    /// When it was read (`time_extracted`).
    extracted: String,
    since_state: u64,
    state_every: u64,
}

impl Reader<'_> {
    async fn run(
        &mut self,
        repl: &mut ReplicationClient,
        ctx: &mut TapContext,
        end: Option<u64>,
        settings: &Settings,
        started: Instant,
        names: &str,
    ) -> Result<(), SdkError> {
        let mut last_change = Instant::now();
        let mut last_state = Instant::now();
        let idle_limit = if end.is_some() {
            // A bounded run waits for the server's keepalive at the end of the WAL; this
            // only guards against a server that never sends one.
            Some(settings.idle_stop.unwrap_or(Duration::from_secs(60)))
        } else {
            settings.idle_stop
        };
        loop {
            if settings.max_run.is_some_and(|m| started.elapsed() >= m) && self.txn_lsn.is_none() {
                tracing::info!("max_run_seconds reached; stopping");
                return Ok(());
            }
            let event = match tokio::time::timeout(Duration::from_secs(1), repl.recv()).await {
                Err(_) => {
                    if idle_limit.is_some_and(|l| last_change.elapsed() >= l)
                        && self.txn_lsn.is_none()
                    {
                        tracing::info!("no change for a while; stopping");
                        return Ok(());
                    }
                    continue;
                }
                Ok(Ok(Some(ev))) => ev,
                Ok(Ok(None)) => return Ok(()),
                Ok(Err(e)) => {
                    return Err(SdkError::fatal(
                        format!("reading changes for {names} failed"),
                        e,
                    ));
                }
            };
            match event {
                ReplicationEvent::Begin {
                    final_lsn,
                    commit_time_micros,
                    ..
                } => {
                    self.txn_lsn = Some(final_lsn.0);
                    let at = rfc3339_micros(commit_time_micros + PG_EPOCH_MICROS);
                    self.deleted_extra = format!(",\"{DELETED_AT}\":\"{at}\"");
                    self.extracted = now_rfc3339();
                }
                ReplicationEvent::XLogData { data, .. } => {
                    let msg = pgoutput::decode(&data)
                        .map_err(|e| SdkError::fatal(format!("decoding changes for {names}"), e))?;
                    if self.apply(msg, ctx).await? {
                        last_change = Instant::now();
                    }
                }
                ReplicationEvent::Commit { end_lsn, .. } => {
                    self.txn_lsn = None;
                    self.advance(end_lsn.0);
                    if self.since_state >= self.state_every {
                        self.save_positions(ctx);
                        ctx.write_state()?;
                        self.since_state = 0;
                        last_state = Instant::now();
                    }
                    if end.is_some_and(|e| end_lsn.0 >= e) {
                        return Ok(());
                    }
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    if self.txn_lsn.is_none() {
                        // Everything before `wal_end` was decoded and sent: no change of
                        // ours lies before it any more.
                        self.advance(wal_end.0);
                        if end.is_some_and(|e| wal_end.0 >= e) {
                            return Ok(());
                        }
                        // A quiet continuous run still moves its state on, so the slot can
                        // release WAL once the target confirms it.
                        if last_state.elapsed() >= IDLE_STATE_EVERY {
                            self.save_positions(ctx);
                            ctx.write_state()?;
                            last_state = Instant::now();
                        }
                    }
                }
                ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
            }
        }
    }

    /// Moves every stream's position forward to `lsn`.
    fn advance(&mut self, lsn: u64) {
        for s in self.streams.iter_mut() {
            s.lsn = s.lsn.max(lsn);
        }
    }

    fn save_positions(&self, ctx: &mut TapContext) {
        for s in self.streams.iter() {
            ctx.state_mut()
                .set_bookmark_value(&s.plan.tap_stream_id, LSN, json!(s.lsn));
        }
    }

    /// Applies one decoded message; true when it was a change of a selected stream.
    async fn apply(&mut self, msg: Message, ctx: &mut TapContext) -> Result<bool, SdkError> {
        // `old` is the whole old row under REPLICA IDENTITY FULL ('O'), or only its key
        // columns ('K', the others null).
        let (relation, new, old, old_full) = match msg {
            Message::Relation(r) => {
                self.relation(r, ctx).await?;
                return Ok(false);
            }
            Message::Insert { relation, new } => (relation, Some(new), None, false),
            Message::Update {
                relation,
                old,
                key,
                new,
            } => {
                let full = old.is_some();
                (relation, Some(new), old.or(key), full)
            }
            Message::Delete { relation, old, key } => {
                let full = old.is_some();
                (relation, None, old.or(key), full)
            }
            Message::Truncate { relations, .. } => {
                for oid in relations {
                    if let Some(i) = self.relations.get(&oid).and_then(|r| r.stream) {
                        tracing::warn!(
                            stream = %self.streams[i].plan.tap_stream_id,
                            "the table was truncated; Singer has no message for that, so the \
                             deleted rows stay in the target (re-sync the stream to remove them)"
                        );
                    }
                }
                return Ok(false);
            }
            _ => return Ok(false),
        };
        let Some(map) = self.relations.get(&relation) else {
            return Err(SdkError::fatal(
                "decoding changes",
                std::io::Error::other(format!(
                    "a change of relation {relation} came before its Relation message"
                )),
            ));
        };
        let Some(i) = map.stream else {
            return Ok(false);
        };
        let txn = self.txn_lsn.unwrap_or(0);
        let s = &mut self.streams[i];
        if txn < s.lsn {
            // Committed before this stream's snapshot or position: already emitted.
            return Ok(false);
        }
        let slots = &map.slots;
        // An update that moved the row to another key: the old key's row is gone. A key
        // tuple ('K') comes only then; a whole old row ('O') says so by its key values.
        let moved = match (&new, &old) {
            (Some(n), Some(o)) => !old_full || key_changed(&s.plan, slots, n, o),
            _ => false,
        };
        if moved {
            let old_only = Change {
                slots,
                new: None,
                old: old.as_ref(),
                old_full,
            };
            old_only.write(&mut s.plan, &mut self.buf, self.deleted_extra.as_bytes())?;
            ctx.write_record_json(
                &s.plan.tap_stream_id,
                &self.buf,
                None,
                Some(&self.extracted),
            )?;
            self.since_state += 1;
        }
        let change = Change {
            slots,
            new: new.as_ref(),
            old: old.as_ref(),
            old_full,
        };
        let extra = if new.is_none() {
            self.deleted_extra.as_bytes()
        } else {
            NOT_DELETED
        };
        change.write(&mut s.plan, &mut self.buf, extra)?;
        ctx.write_record_json(
            &s.plan.tap_stream_id,
            &self.buf,
            None,
            Some(&self.extracted),
        )?;
        self.since_state += 1;
        Ok(true)
    }

    /// A Relation message: which stream the relation feeds and where its columns are. A
    /// column set that changed (ALTER TABLE) re-plans the stream and emits a new SCHEMA.
    async fn relation(&mut self, r: Relation, ctx: &mut TapContext) -> Result<(), SdkError> {
        let columns: Vec<String> = r.columns.iter().map(|c| c.name.clone()).collect();
        let stream = self
            .streams
            .iter()
            .position(|s| s.plan.table.schema == r.namespace && s.plan.table.name == r.name);
        let Some(i) = stream else {
            self.relations.insert(
                r.oid,
                RelMap {
                    stream: None,
                    slots: Vec::new(),
                },
            );
            return Ok(());
        };
        let s = &mut self.streams[i];
        let known = s
            .plan
            .columns
            .iter()
            .map(|c| c.column.name.clone())
            .collect::<Vec<_>>();
        let same = columns.len() == s.plan.table.columns.len()
            && columns
                .iter()
                .all(|n| s.plan.table.columns.iter().any(|c| &c.name == n));
        if !same {
            let names = [(r.namespace.clone(), r.name.clone())];
            let mut tables = discover::load_named(self.client, &names).await?;
            let Some(mut table) = tables.pop() else {
                return Err(SdkError::Config(format!(
                    "stream `{}`: table {}.{} changed and can no longer be read",
                    s.plan.tap_stream_id, r.namespace, r.name
                )));
            };
            table.columns.retain(|c| columns.contains(&c.name));
            let policy = s.plan.policy();
            let plan = StreamPlan::new(&s.entry, table, policy, true)?;
            let now = plan
                .columns
                .iter()
                .map(|c| c.column.name.clone())
                .collect::<Vec<_>>();
            tracing::info!(stream = %s.plan.tap_stream_id, before = ?known, after = ?now, "the table's columns changed; new SCHEMA");
            s.plan = plan;
            ctx.write_schema_message(s.plan.schema_message())?;
        }
        let slots = s
            .plan
            .columns
            .iter()
            .map(|c| columns.iter().position(|n| n == &c.column.name))
            .collect();
        self.relations.insert(
            r.oid,
            RelMap {
                stream: Some(i),
                slots,
            },
        );
        Ok(())
    }
}

/// One row change, as the relation's tuples carry it.
struct Change<'t> {
    /// For each plan column, its position in the tuples.
    slots: &'t [Option<usize>],
    /// The new row (inserts, updates).
    new: Option<&'t Tuple>,
    /// The old row: whole under REPLICA IDENTITY FULL (`old_full`), else its key columns.
    old: Option<&'t Tuple>,
    old_full: bool,
}

impl Change<'_> {
    /// Encodes the record: the new row, or for deletes the old one; `extra` closes it.
    fn write(
        &self,
        plan: &mut StreamPlan,
        buf: &mut Vec<u8>,
        extra: &[u8],
    ) -> Result<(), SdkError> {
        let old_value = |pos: usize| -> Cell<'_> {
            match self.old.and_then(|t| t.0.get(pos)) {
                Some(Value::Text(b)) => Cell::Text(b),
                Some(Value::Null) if self.old_full => Cell::Null,
                _ => Cell::Absent,
            }
        };
        let get = |c: usize| -> Cell<'_> {
            let Some(Some(pos)) = self.slots.get(c) else {
                return Cell::Absent;
            };
            let Some(new) = self.new else {
                return old_value(*pos);
            };
            match new.0.get(*pos) {
                Some(Value::Text(b)) => Cell::Text(b),
                Some(Value::Null) => Cell::Null,
                // An unchanged TOASTed value: the old row has it under REPLICA IDENTITY
                // FULL; otherwise it is left out of the record, never written as null.
                Some(Value::UnchangedToast) => match old_value(*pos) {
                    Cell::Text(b) => Cell::Text(b),
                    _ => Cell::Absent,
                },
                _ => Cell::Absent,
            }
        };
        plan.encode(buf, get, extra)
    }
}

/// True when the key columns of `old` differ from those of `new`.
fn key_changed(plan: &StreamPlan, slots: &[Option<usize>], new: &Tuple, old: &Tuple) -> bool {
    plan.key_properties.iter().any(|k| {
        let pos = plan
            .position(k)
            .and_then(|c| slots.get(c).copied().flatten());
        pos.is_some_and(|p| match (new.0.get(p), old.0.get(p)) {
            (Some(Value::Text(a)), Some(Value::Text(b))) => a != b,
            _ => false,
        })
    })
}

/// Microseconds since the Unix epoch as RFC 3339 UTC.
fn rfc3339_micros(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string())
        .unwrap_or_default()
}

/// The bookmark position of a stream, if it has one.
pub(crate) fn bookmark_lsn(bookmark: &serde_json::Map<String, Json>) -> Option<u64> {
    bookmark.get(LSN).and_then(Json::as_u64)
}
