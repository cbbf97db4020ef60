//! The sync: which streams, in what order, by which method.

use serde_json::{Value as Json, json};
use singer_core::catalog::ReplicationMethod;
use singer_core::sdk::SdkError;
use singer_core::sdk::full_table::{FULL_TABLE_COMPLETE, LAST_PK, MAX_PK};
use singer_core::sdk::tap::TapContext;
use singer_core::{Catalog, CatalogEntry};

use crate::binlog::{self, LogStream};
use crate::column::KindOptions;
use crate::config::Config;
use crate::connect::{self, Connector};
use crate::discover::{self, Filter, Table};
use crate::full_table;
use crate::incremental;
use crate::stream::StreamPlan;

struct Selected {
    entry: CatalogEntry,
    table: Table,
    method: ReplicationMethod,
}

pub(crate) async fn run(
    config: &Config,
    connector: &Connector,
    ctx: &mut TapContext,
    catalog: Catalog,
) -> Result<(), SdkError> {
    let entries = catalog.sync_order(ctx.state());
    if entries.is_empty() {
        tracing::warn!("no stream is selected in the catalog; nothing to do");
        return Ok(());
    }
    let mut conn = connector.connect().await?;
    let info = connect::server_info(&mut conn, config.engine).await?;
    tracing::info!(version = %info.version, engine = ?info.engine, "connected");
    let opts = KindOptions {
        tinyint1_as_boolean: config.tinyint1_as_boolean,
    };

    let mut dbs: Vec<String> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for e in &entries {
        let db = e
            .database_name()
            .map(str::to_string)
            .or_else(|| e.tap_stream_id.split_once('-').map(|(d, _)| d.to_string()));
        let Some(db) = db else {
            return Err(SdkError::Config(format!(
                "stream `{}` has no database-name metadata",
                e.tap_stream_id
            )));
        };
        if !dbs.contains(&db) {
            dbs.push(db);
        }
        let t = table_name(e);
        if !names.contains(&t) {
            names.push(t);
        }
    }
    let filter = Filter {
        databases: Some(dbs),
        tables: Some(names),
    };
    let tables = discover::load_tables(&mut conn, info.engine, &filter).await?;

    let mut selected = Vec::new();
    for entry in entries {
        let db = entry
            .database_name()
            .map(str::to_string)
            .unwrap_or_else(|| {
                entry
                    .tap_stream_id
                    .split_once('-')
                    .map(|(d, _)| d.to_string())
                    .unwrap_or_default()
            });
        let name = table_name(&entry);
        let Some(table) = tables
            .iter()
            .find(|t| t.database == db && t.name == name)
            .cloned()
        else {
            return Err(SdkError::Config(format!(
                "stream `{}`: table {db}.{name} does not exist",
                entry.tap_stream_id
            )));
        };
        for c in discover::unsupported_selected(&entry, &table, opts) {
            tracing::warn!(stream = %entry.tap_stream_id, column = %c, "selected column has an unsupported type and is not read");
        }
        let method = match entry.replication_method() {
            Some(m) => m,
            None => {
                tracing::warn!(stream = %entry.tap_stream_id, "no replication-method in the catalog; using FULL_TABLE");
                ReplicationMethod::FullTable
            }
        };
        if method == ReplicationMethod::LogBased && table.is_view {
            return Err(SdkError::Config(format!(
                "stream `{}` is a view; views have no binlog events, use FULL_TABLE or INCREMENTAL",
                entry.tap_stream_id
            )));
        }
        selected.push(Selected {
            entry,
            table,
            method,
        });
    }
    if selected
        .iter()
        .any(|s| s.method == ReplicationMethod::LogBased)
    {
        binlog::check_server(&mut conn).await?;
    }

    let every = config.state_every_rows.max(1);
    let batch = config.batch_config.as_ref();
    let mut log_streams = Vec::new();
    for s in selected {
        let id = s.entry.tap_stream_id.clone();
        let log_based = s.method == ReplicationMethod::LogBased;
        let mut plan = StreamPlan::new(&s.entry, &s.table, opts, config.invalid_values, log_based)?;
        match s.method {
            ReplicationMethod::FullTable => {
                ctx.begin_stream(&id);
                ctx.write_schema_message(plan.schema_message())?;
                full_table::snapshot(&mut conn, ctx, &mut plan, every, FULL_TABLE_COMPLETE, batch)
                    .await?;
                ctx.end_stream(&id, &id)?;
            }
            ReplicationMethod::Incremental => {
                ctx.begin_stream(&id);
                ctx.write_schema_message(plan.schema_message())?;
                incremental::sync(&mut conn, ctx, &mut plan, every).await?;
                ctx.end_stream(&id, &id)?;
            }
            ReplicationMethod::LogBased => {
                let bookmark = ctx.state().bookmark(&id).cloned().unwrap_or_default();
                let complete = bookmark
                    .get(binlog::INITIAL_COMPLETE)
                    .and_then(Json::as_bool)
                    .unwrap_or(false)
                    && bookmark.contains_key(binlog::LOG_FILE);
                if !complete {
                    ctx.begin_stream(&id);
                    ctx.write_schema_message(plan.schema_message())?;
                    if !bookmark.contains_key(binlog::LOG_FILE) {
                        // The position is taken before the snapshot: replaying from it can
                        // repeat rows but never miss a change.
                        let (pos, gtid) = binlog::master_position(&mut conn, info.engine).await?;
                        let st = ctx.state_mut();
                        // A fresh position: a key left by an interrupted copy made before it
                        // (say, an earlier FULL_TABLE run) must not be resumed from, or the
                        // changes between that copy and the position would be missed.
                        for key in [MAX_PK, LAST_PK, binlog::INITIAL_COMPLETE] {
                            st.clear_bookmark_value(&id, key);
                        }
                        st.set_bookmark_value(&id, binlog::LOG_FILE, json!(pos.file));
                        st.set_bookmark_value(&id, binlog::LOG_POS, json!(pos.pos));
                        if let Some(g) = gtid {
                            st.set_bookmark_value(&id, binlog::GTID, json!(g));
                        }
                    }
                    full_table::snapshot(
                        &mut conn,
                        ctx,
                        &mut plan,
                        every,
                        binlog::INITIAL_COMPLETE,
                        batch,
                    )
                    .await?;
                    ctx.end_stream(&id, &id)?;
                }
                let bookmark = ctx.state().bookmark(&id).cloned().unwrap_or_default();
                let ls =
                    LogStream::from_state(s.entry, s.table, plan, &bookmark).ok_or_else(|| {
                        SdkError::Config(format!("stream `{id}`: bookmark has no binlog position"))
                    })?;
                log_streams.push(ls);
            }
        }
    }
    drop(conn);
    let settings = binlog::Settings {
        engine: info.engine,
        server_id: config.server_id.unwrap_or_else(default_server_id),
        use_gtid: config.use_gtid,
        continuous: config.continuous,
        state_every: every,
        opts,
        policy: config.invalid_values,
    };
    binlog::sync(connector, ctx, log_streams, &settings).await
}

fn table_name(e: &CatalogEntry) -> String {
    e.table_name.clone().unwrap_or_else(|| {
        e.tap_stream_id
            .split_once('-')
            .map_or(e.stream.clone(), |(_, t)| t.to_string())
    })
}

/// A replication client id unlikely to clash with real replicas or another tap.
fn default_server_id() -> u32 {
    0x5E00_0000 | (std::process::id() & 0xFFFF)
}
