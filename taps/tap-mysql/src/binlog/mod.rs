//! LOG_BASED: reads ROW events of the selected tables from the binlog, from the oldest stream
//! bookmark up to the position captured when the read started (or on, with `continuous`).
//!
//! Bookmarks (`log_file`, `log_pos`, and `gtid`) only ever move to transaction
//! boundaries, and they move for every stream at each boundary, even when no selected table
//! changed, so an idle table never pins an old binlog file.

pub(crate) mod decode;
pub(crate) mod gtid;
pub(crate) mod position;

use std::collections::HashMap;

use futures_util::StreamExt;
use mysql_async::binlog::events::{EventData, OptionalMetadataField, RowsEventData, TableMapEvent};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStreamRequest, Conn, Value};
use serde_json::{Value as Json, json};
use singer_core::CatalogEntry;
use singer_core::sdk::SdkError;
use singer_core::sdk::tap::TapContext;

use crate::column::KindOptions;
use crate::config::{Engine, InvalidValuePolicy};
use crate::connect::{self, Connector};
use crate::discover::{self, Filter, Table};
use crate::stream::{DELETED_AT, StreamPlan};
use gtid::Gtid;
use position::BinlogPos;

pub(crate) const LOG_FILE: &str = "log_file";
pub(crate) const LOG_POS: &str = "log_pos";
pub(crate) const GTID: &str = "gtid";
pub(crate) const INITIAL_COMPLETE: &str = "initial_binlog_complete";

/// How often a `continuous` read emits STATE at a transaction boundary.
const CONTINUOUS_STATE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// MariaDB's GTID event type, which mysql_common does not decode.
const MARIADB_GTID_EVENT: u8 = 0xa2;

/// Fails unless the server writes a full row-based binlog.
pub(crate) async fn check_server(conn: &mut Conn) -> Result<(), SdkError> {
    let fix = "LOG_BASED replication needs the server started with log_bin, binlog_format=ROW \
               and binlog_row_image=FULL";
    let log_bin = connect::variable(conn, "log_bin")
        .await?
        .unwrap_or_default();
    if !log_bin.eq_ignore_ascii_case("ON") && log_bin != "1" {
        return Err(SdkError::Config(format!(
            "binary logging is off (log_bin={log_bin}); {fix}"
        )));
    }
    let format = connect::variable(conn, "binlog_format")
        .await?
        .unwrap_or_default();
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(SdkError::Config(format!(
            "binlog_format is {format}, not ROW; {fix}"
        )));
    }
    if let Some(image) = connect::variable(conn, "binlog_row_image").await?
        && !image.eq_ignore_ascii_case("FULL")
    {
        return Err(SdkError::Config(format!(
            "binlog_row_image is {image}, not FULL; {fix}"
        )));
    }
    Ok(())
}

/// The server's current binlog position and GTID position.
pub(crate) async fn master_position(
    conn: &mut Conn,
    engine: Engine,
) -> Result<(BinlogPos, Option<String>), SdkError> {
    // The GTID is read before the file position: a transaction committing in between then
    // lies after the GTID (replayed, at worst twice) and before the position (inside the
    // snapshot that follows), so nothing is skipped either way.
    let gtid_sql = match engine {
        Engine::Mariadb => "SELECT @@GLOBAL.gtid_binlog_pos",
        Engine::Mysql => "SELECT @@GLOBAL.gtid_executed",
    };
    let gtid: Option<String> = conn.query_first(gtid_sql).await.ok().flatten();
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        // MySQL 8.4 renamed the statement.
        Err(_) => conn
            .query_first("SHOW BINARY LOG STATUS")
            .await
            .map_err(|e| SdkError::fatal("cannot read the binlog position", e))?,
    };
    let row = row.ok_or_else(|| {
        SdkError::Config("SHOW MASTER STATUS returned nothing: binary logging is off".into())
    })?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or_default();
    Ok((BinlogPos { file, pos }, gtid.filter(|g| !g.is_empty())))
}

async fn binary_logs(conn: &mut Conn) -> Result<Vec<String>, SdkError> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| SdkError::fatal("SHOW BINARY LOGS failed", e))?;
    Ok(rows.iter().filter_map(|r| r.get::<String, _>(0)).collect())
}

fn purged_error(id: &str, pos: &BinlogPos, detail: &str) -> SdkError {
    SdkError::fatal(
        format!(
            "stream `{id}`: binlog position {pos} is no longer on the server ({detail}). \
             The changes since then are lost to the binlog. Recovery: remove the stream's \
             bookmark (bookmarks.{id}) from the state, or run without state, so the tap takes \
             a new initial snapshot; keep binlogs longer (binlog_expire_logs_seconds) than the \
             interval between runs"
        ),
        std::io::Error::other("binlog purged"),
    )
}

/// Settings of a binlog read.
pub(crate) struct Settings {
    pub(crate) engine: Engine,
    pub(crate) server_id: u32,
    pub(crate) use_gtid: bool,
    pub(crate) continuous: bool,
    pub(crate) state_every: u64,
    pub(crate) opts: KindOptions,
    pub(crate) policy: InvalidValuePolicy,
}

/// A LOG_BASED stream whose initial snapshot is complete.
pub(crate) struct LogStream {
    pub(crate) entry: CatalogEntry,
    pub(crate) table: Table,
    pub(crate) plan: StreamPlan,
    pos: BinlogPos,
    gtid: Option<String>,
    version: Option<i64>,
    /// Per table-map id: for each plan column, its index in the binlog row.
    mappings: HashMap<u64, Vec<Option<usize>>>,
}

impl LogStream {
    /// Builds the stream from its bookmark; `None` if the bookmark has no binlog position.
    pub(crate) fn from_state(
        entry: CatalogEntry,
        table: Table,
        plan: StreamPlan,
        bookmark: &serde_json::Map<String, Json>,
    ) -> Option<Self> {
        let file = bookmark.get(LOG_FILE)?.as_str()?.to_string();
        let pos = bookmark.get(LOG_POS)?.as_u64()?;
        Some(Self {
            entry,
            table,
            plan,
            pos: BinlogPos { file, pos },
            gtid: bookmark
                .get(GTID)
                .and_then(Json::as_str)
                .map(str::to_string),
            version: bookmark.get("version").and_then(Json::as_i64),
            mappings: HashMap::new(),
        })
    }
}

/// The GTID of the transaction being read, applied at its commit.
enum PendingGtid {
    Mariadb(u32, u32, u64),
    Mysql(String, u64),
}

/// What a row event does.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    Upsert,
    Delete,
}

/// Reads the binlog for `streams`.
pub(crate) async fn sync(
    connector: &Connector,
    ctx: &mut TapContext,
    mut streams: Vec<LogStream>,
    settings: &Settings,
) -> Result<(), SdkError> {
    if streams.is_empty() {
        return Ok(());
    }
    let mut side = connector.connect().await?;
    let (end, _) = master_position(&mut side, settings.engine).await?;
    let Some(first) = streams.iter().min_by(|a, b| a.pos.cmp(&b.pos)) else {
        return Ok(());
    };
    let start = first.pos.clone();
    let first_id = first.plan.tap_stream_id.clone();
    let start_gtid = first.gtid.clone();
    let files = binary_logs(&mut side).await?;
    if !files.contains(&start.file) {
        let oldest = files.first().cloned().unwrap_or_default();
        return Err(purged_error(
            &first_id,
            &start,
            &format!("the oldest binlog file is `{oldest}`"),
        ));
    }
    for s in &streams {
        ctx.write_schema_message(s.plan.schema_message())?;
    }
    let engine = settings.engine;
    let mut gtid = start_gtid
        .as_deref()
        .and_then(|g| Gtid::parse(engine, g))
        .unwrap_or_else(|| Gtid::empty(engine));
    if start >= end && !settings.continuous {
        advance_all(ctx, &mut streams, &end, &gtid);
        tracing::info!(position = %end, "binlog: no new events since the bookmarks");
        return ctx.write_state();
    }

    let mut conn = connector.connect().await?;
    let gtid_mode = settings.use_gtid && !gtid.is_empty();
    let mut req = BinlogStreamRequest::new(settings.server_id);
    let set = |e| SdkError::fatal("cannot prepare the binlog request", e);
    if settings.engine == Engine::Mariadb {
        // Announce GTID support, so MariaDB sends GTID events (else it sends BEGIN instead).
        conn.query_drop("SET @mariadb_slave_capability = 4")
            .await
            .map_err(set)?;
    }
    if gtid_mode && engine == Engine::Mariadb {
        conn.exec_drop("SET @slave_connect_state = ?", (gtid.to_string(),))
            .await
            .map_err(set)?;
        conn.query_drop("SET @slave_gtid_strict_mode = 0")
            .await
            .map_err(set)?;
    } else if gtid_mode {
        // MySQL: COM_BINLOG_DUMP_GTID with the executed set; the server sends the rest.
        req = req.with_gtid().with_gtid_set(gtid.mysql_sids());
    } else {
        req = req.with_filename(start.file.as_bytes()).with_pos(start.pos);
    }
    if !settings.continuous {
        req = req.with_non_blocking();
    }
    tracing::info!(from = %start, to = %end, gtid = gtid_mode, "reading the binlog");
    let mut bs = conn
        .get_binlog_stream(req)
        .await
        .map_err(|e| stream_error(&first_id, &start, e))?;

    let mut cur_file = start.file.clone();
    let mut committed = start.clone();
    let mut pending_gtid: Option<PendingGtid> = None;
    let mut since_state: u64 = 0;
    let mut since_flush: u64 = 0;
    let mut last_state = std::time::Instant::now();
    let mut total: u64 = 0;
    let mut buf = Vec::with_capacity(4096);
    while let Some(ev) = bs.next().await {
        let ev = ev.map_err(|e| stream_error(&first_id, &committed, e))?;
        let header = ev.header();
        let next_pos = u64::from(header.log_pos());
        if header.event_type_raw() == MARIADB_GTID_EVENT {
            if let Some((domain, seq)) = gtid::mariadb_event(ev.data()) {
                pending_gtid = Some(PendingGtid::Mariadb(domain, header.server_id(), seq));
            }
            continue;
        }
        let data = ev.read_data().map_err(|e| {
            SdkError::fatal(
                format!("cannot decode a binlog event at {cur_file}:{next_pos}"),
                e,
            )
        })?;
        let boundary = match data {
            Some(EventData::RotateEvent(r)) => {
                cur_file = position::rotate_file_name(r.name_raw(), &files);
                false
            }
            Some(EventData::XidEvent(_)) => true,
            Some(EventData::GtidEvent(g)) => {
                pending_gtid = Some(PendingGtid::Mysql(gtid::uuid_text(&g.sid()), g.gno()));
                false
            }
            Some(EventData::QueryEvent(q)) => q.query_raw() != b"BEGIN",
            Some(EventData::RowsEvent(rows)) => {
                let Some(tme) = bs.get_tme(rows.table_id()) else {
                    continue;
                };
                let db = tme.database_name();
                let tbl = tme.table_name();
                let Some(si) = streams
                    .iter()
                    .position(|s| s.plan.database == db && s.plan.table == tbl)
                else {
                    continue;
                };
                let at = BinlogPos {
                    file: cur_file.clone(),
                    pos: next_pos,
                };
                if at <= streams[si].pos {
                    continue;
                }
                let change = match &rows {
                    RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => {
                        Change::Delete
                    }
                    _ => Change::Upsert,
                };
                let mapping = ensure_mapping(
                    &mut streams[si],
                    rows.table_id(),
                    tme,
                    &mut side,
                    ctx,
                    settings,
                )
                .await?;
                let ts = chrono::DateTime::from_timestamp(i64::from(header.timestamp()), 0)
                    .unwrap_or_default()
                    .format("%Y-%m-%dT%H:%M:%S+00:00")
                    .to_string();
                let extra = match change {
                    Change::Delete => format!(",\"{DELETED_AT}\":\"{ts}\""),
                    Change::Upsert => format!(",\"{DELETED_AT}\":null"),
                };
                let s = &mut streams[si];
                let id = s.plan.tap_stream_id.clone();
                for r in rows.rows(tme) {
                    let (before, after) = r.map_err(|e| {
                        SdkError::fatal(format!("stream `{id}`: cannot decode a binlog row"), e)
                    })?;
                    let image = if change == Change::Delete {
                        before
                    } else {
                        after
                    };
                    let Some(image) = image else { continue };
                    let mut vals = Vec::with_capacity(s.plan.columns.len());
                    for (c, m) in s.plan.columns.iter().zip(&mapping) {
                        let v = match m.and_then(|i| image.as_ref(i)) {
                            Some(bv) => decode::normalize(&c.kind, bv).map_err(|why| {
                                SdkError::fatal(
                                    format!("stream `{id}` column `{}`: {why}", c.info.name),
                                    std::io::Error::other("unreadable binlog value"),
                                )
                            })?,
                            None => Value::NULL,
                        };
                        vals.push(v);
                    }
                    s.plan.encode(&mut buf, |i| vals.get(i), extra.as_bytes())?;
                    ctx.write_record_json(&id, &buf, s.version, Some(&ts))?;
                    since_state += 1;
                    since_flush += 1;
                    total += 1;
                }
                false
            }
            _ => false,
        };
        if boundary {
            committed = BinlogPos {
                file: cur_file.clone(),
                pos: next_pos,
            };
            match pending_gtid.take() {
                Some(PendingGtid::Mariadb(d, srv, seq)) => gtid.set_mariadb(d, srv, seq),
                Some(PendingGtid::Mysql(uuid, gno)) => gtid.add_mysql(&uuid, gno),
                None => {}
            }
            // Following the log, state also goes out every few seconds so an orchestrator
            // can checkpoint a quiet stream.
            let due = settings.continuous && last_state.elapsed() >= CONTINUOUS_STATE_EVERY;
            if since_state >= settings.state_every || due {
                last_state = std::time::Instant::now();
                advance_all(ctx, &mut streams, &committed, &gtid);
                ctx.write_state()?;
                since_state = 0;
            }
            if !settings.continuous && committed >= end {
                break;
            }
            if settings.continuous && since_flush > 0 {
                // Followers see each transaction as soon as it is read.
                ctx.flush()?;
                since_flush = 0;
            }
        }
    }
    drop(bs);
    if !settings.continuous && committed < end {
        // Non-blocking reads end at the end of the log; only events outside transactions
        // (rotations, checkpoints) can follow the last boundary.
        committed = end.clone();
    }
    advance_all(ctx, &mut streams, &committed, &gtid);
    for s in &streams {
        s.plan.report_invalid();
    }
    tracing::info!(rows = total, position = %committed, "binlog read finished");
    ctx.write_state()
}

fn stream_error(id: &str, pos: &BinlogPos, e: mysql_async::Error) -> SdkError {
    if let mysql_async::Error::Server(se) = &e
        && se.code == 1236
    {
        return purged_error(id, pos, &se.message);
    }
    SdkError::fatal(format!("reading the binlog from {pos} failed"), e)
}

/// Moves every stream's bookmark forward to `to`.
fn advance_all(ctx: &mut TapContext, streams: &mut [LogStream], to: &BinlogPos, gtid: &Gtid) {
    for s in streams.iter_mut() {
        if *to > s.pos {
            s.pos = to.clone();
        }
        let id = &s.plan.tap_stream_id;
        let st = ctx.state_mut();
        st.set_bookmark_value(id, LOG_FILE, json!(s.pos.file));
        st.set_bookmark_value(id, LOG_POS, json!(s.pos.pos));
        if !gtid.is_empty() {
            st.set_bookmark_value(id, GTID, json!(gtid.to_string()));
        }
    }
}

/// Column names carried by the table map (binlog_row_metadata=FULL), if any.
fn tme_names(tme: &TableMapEvent<'_>) -> Option<Vec<String>> {
    for f in tme.iter_optional_meta() {
        if let Ok(OptionalMetadataField::ColumnName(names)) = f {
            return Some(
                names
                    .iter_names()
                    .filter_map(Result::ok)
                    .map(|n| n.name().into_owned())
                    .collect(),
            );
        }
    }
    None
}

/// How a table map's columns line up with the plan; `None` when the table has columns the
/// plan does not know yet.
fn mapping_for(s: &LogStream, tme: &TableMapEvent<'_>) -> Option<Vec<Option<usize>>> {
    let n = tme.columns_count() as usize;
    if let Some(names) = tme_names(tme) {
        if names
            .iter()
            .any(|n| !s.table.columns.iter().any(|c| &c.name == n))
        {
            return None;
        }
        return Some(
            s.plan
                .columns
                .iter()
                .map(|c| names.iter().position(|n| *n == c.info.name))
                .collect(),
        );
    }
    if n > s.table.columns.len() {
        return None;
    }
    // Without names, a shorter row is taken to predate columns appended later.
    Some(
        s.plan
            .columns
            .iter()
            .map(|c| (c.ordinal < n).then_some(c.ordinal))
            .collect(),
    )
}

async fn ensure_mapping(
    s: &mut LogStream,
    table_id: u64,
    tme: &TableMapEvent<'_>,
    side: &mut Conn,
    ctx: &mut TapContext,
    settings: &Settings,
) -> Result<Vec<Option<usize>>, SdkError> {
    if let Some(m) = s.mappings.get(&table_id) {
        return Ok(m.clone());
    }
    if let Some(m) = mapping_for(s, tme) {
        s.mappings.insert(table_id, m.clone());
        return Ok(m);
    }
    // The table gained columns: read its definition again and announce the new schema.
    let filter = Filter {
        databases: Some(vec![s.plan.database.clone()]),
        tables: Some(vec![s.plan.table.clone()]),
    };
    let table = discover::load_tables(side, settings.engine, &filter)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| {
            SdkError::Config(format!(
                "stream `{}`: table {}.{} no longer exists",
                s.plan.tap_stream_id, s.plan.database, s.plan.table
            ))
        })?;
    let plan = StreamPlan::new(&s.entry, &table, settings.opts, settings.policy, true)?;
    tracing::info!(stream = %s.plan.tap_stream_id, "table definition changed in the binlog; emitting a new SCHEMA");
    s.table = table;
    s.plan = plan;
    s.mappings.clear();
    ctx.write_schema_message(s.plan.schema_message())?;
    let m = mapping_for(s, tme).ok_or_else(|| {
        SdkError::Config(format!(
            "stream `{}`: a binlog row has {} columns but the table has {}; they cannot be \
             matched without column names (set binlog_row_metadata=FULL on the server)",
            s.plan.tap_stream_id,
            tme.columns_count(),
            s.table.columns.len()
        ))
    })?;
    s.mappings.insert(table_id, m.clone());
    Ok(m)
}
