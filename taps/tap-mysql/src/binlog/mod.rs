//! LOG_BASED: reads ROW events of the selected tables from the binlog, from the oldest stream
//! bookmark up to the position captured when the read started (or on, with `continuous`).
//!
//! Bookmarks (`log_file`, `log_pos`, and `gtid`) only ever move to transaction
//! boundaries, and they move for every stream at each boundary, even when no selected table
//! changed, so an idle table never pins an old binlog file.

pub(crate) mod decode;
pub(crate) mod gtid;
mod log_stream;
pub(crate) mod position;
mod server;

use futures_util::StreamExt;
use mysql_async::BinlogStreamRequest;
use mysql_async::binlog::events::EventData;
use mysql_async::prelude::Queryable;
use serde_json::json;
use singer_core::sdk::SdkError;
use singer_core::sdk::tap::TapContext;

use crate::column::KindOptions;
use crate::config::{Engine, InvalidValuePolicy};
use crate::connect::Connector;
use gtid::Gtid;
use log_stream::Emit;
pub(crate) use log_stream::LogStream;
use position::BinlogPos;
use server::{binary_logs, purged_error, stream_error};
pub(crate) use server::{check_server, master_position};

pub(crate) const LOG_FILE: &str = "log_file";
pub(crate) const LOG_POS: &str = "log_pos";
pub(crate) const GTID: &str = "gtid";
pub(crate) const INITIAL_COMPLETE: &str = "initial_binlog_complete";

/// How often a `continuous` read emits STATE at a transaction boundary.
const CONTINUOUS_STATE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// MariaDB's GTID event type, which mysql_common does not decode.
const MARIADB_GTID_EVENT: u8 = 0xa2;

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

/// The GTID of the transaction being read, applied at its commit.
enum PendingGtid {
    Mariadb(u32, u32, u64),
    Mysql(String, u64),
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
                let emit = Emit {
                    side: &mut side,
                    ctx,
                    settings,
                    buf: &mut buf,
                };
                let written =
                    log_stream::emit(&mut streams[si], &rows, tme, header.timestamp(), emit)
                        .await?;
                since_state += written;
                since_flush += written;
                total += written;
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
