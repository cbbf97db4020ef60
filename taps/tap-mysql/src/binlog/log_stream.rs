//! One LOG_BASED stream in the binlog reader: its bookmark, how binlog rows line up with its
//! columns, and turning row events into records.

use std::collections::HashMap;

use mysql_async::Conn;
use mysql_async::Value;
use mysql_async::binlog::events::{OptionalMetadataField, RowsEventData, TableMapEvent};
use serde_json::Value as Json;
use singer_core::CatalogEntry;
use singer_core::sdk::SdkError;
use singer_core::sdk::tap::TapContext;

use super::position::BinlogPos;
use super::{GTID, LOG_FILE, LOG_POS, Settings, decode};
use crate::discover::{self, Filter, Table};
use crate::stream::{DELETED_AT, StreamPlan};

/// A LOG_BASED stream whose initial snapshot is complete.
pub(crate) struct LogStream {
    pub(crate) entry: CatalogEntry,
    pub(crate) table: Table,
    pub(crate) plan: StreamPlan,
    pub(super) pos: BinlogPos,
    pub(super) gtid: Option<String>,
    pub(super) version: Option<i64>,
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
/// What a row event does.
#[derive(Clone, Copy, PartialEq)]
enum Change {
    Upsert,
    Delete,
}
/// What [`emit`] needs besides the stream and the event.
pub(super) struct Emit<'a> {
    pub(super) side: &'a mut Conn,
    pub(super) ctx: &'a mut TapContext,
    pub(super) settings: &'a Settings,
    pub(super) buf: &'a mut Vec<u8>,
}

/// Writes the records of one row event of `s`'s table; returns how many.
pub(super) async fn emit(
    s: &mut LogStream,
    rows: &RowsEventData<'_>,
    tme: &TableMapEvent<'_>,
    timestamp: u32,
    e: Emit<'_>,
) -> Result<u64, SdkError> {
    let Emit {
        side,
        ctx,
        settings,
        buf,
    } = e;
    let change = match rows {
        RowsEventData::DeleteRowsEvent(_) | RowsEventData::DeleteRowsEventV1(_) => Change::Delete,
        _ => Change::Upsert,
    };
    let mapping = ensure_mapping(s, rows.table_id(), tme, side, ctx, settings).await?;
    let ts = chrono::DateTime::from_timestamp(i64::from(timestamp), 0)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S+00:00")
        .to_string();
    let extra = match change {
        Change::Delete => format!(",\"{DELETED_AT}\":\"{ts}\""),
        Change::Upsert => format!(",\"{DELETED_AT}\":null"),
    };
    let id = s.plan.tap_stream_id.clone();
    let mut written = 0;
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
        s.plan.encode(buf, |i| vals.get(i), extra.as_bytes())?;
        ctx.write_record_json(&id, buf, s.version, Some(&ts))?;
        written += 1;
    }
    Ok(written)
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
