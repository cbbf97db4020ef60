//! The sync: which streams, in what order, by which method.

use serde_json::{Value as Json, json};
use singer_core::catalog::ReplicationMethod;
use singer_core::sdk::SdkError;
use singer_core::sdk::full_table::{FULL_TABLE_COMPLETE, LAST_PK, MAX_PK};
use singer_core::sdk::tap::TapContext;
use singer_core::{Catalog, CatalogEntry};

use crate::config::Config;
use crate::connect::Connector;
use crate::discover::{self, Table};
use crate::full_table;
use crate::incremental;
use crate::logical::{self, INITIAL_COMPLETE, LSN, LogStream, slot};
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
    let client = connector.connect().await?;
    let names: Vec<(String, String)> = entries.iter().map(schema_and_table).collect();
    let tables = discover::load_named(&client, &names).await?;
    let default_method = config
        .default_replication_method
        .as_deref()
        .and_then(ReplicationMethod::parse)
        .unwrap_or(ReplicationMethod::FullTable);
    let mut selected = Vec::new();
    for (entry, (schema, name)) in entries.into_iter().zip(names) {
        let Some(table) = tables
            .iter()
            .find(|t| t.schema == schema && t.name == name)
            .cloned()
        else {
            return Err(SdkError::Config(format!(
                "stream `{}`: table {schema}.{name} does not exist",
                entry.tap_stream_id
            )));
        };
        let method = entry.replication_method().unwrap_or_else(|| {
            tracing::warn!(stream = %entry.tap_stream_id, "no replication-method in the catalog; using {}", default_method.as_str());
            default_method
        });
        let no_identity = table.replica_identity == 'n'
            || (table.replica_identity == 'd' && table.primary_key.is_empty());
        if method == ReplicationMethod::LogBased && !table.is_view() && no_identity {
            return Err(SdkError::Config(format!(
                "stream `{}`: table {schema}.{name} has no replica identity (no primary key \
                 and REPLICA IDENTITY DEFAULT, or NOTHING); in a publication its UPDATEs and \
                 DELETEs would fail on the server. Add a primary key or run ALTER TABLE ... \
                 REPLICA IDENTITY FULL, or use FULL_TABLE or INCREMENTAL",
                entry.tap_stream_id
            )));
        }
        if method == ReplicationMethod::LogBased && table.is_view() {
            return Err(SdkError::Config(format!(
                "stream `{}` is a view; views have no changes in the WAL, use FULL_TABLE or \
                 INCREMENTAL",
                entry.tap_stream_id
            )));
        }
        selected.push(Selected {
            entry,
            table,
            method,
        });
    }

    let every = config.state_every_rows.max(1);
    let policy = config.nonfinite_numbers;
    let mut log_based = Vec::new();
    for s in selected {
        let id = s.entry.tap_stream_id.clone();
        match s.method {
            ReplicationMethod::FullTable => {
                let mut plan = StreamPlan::new(&s.entry, s.table, policy, false)?;
                ctx.begin_stream(&id);
                ctx.write_schema_message(plan.schema_message())?;
                full_table::snapshot(&client, ctx, &mut plan, every, FULL_TABLE_COMPLETE, None)
                    .await?;
                ctx.end_stream(&id, &id)?;
            }
            ReplicationMethod::Incremental => {
                let mut plan = StreamPlan::new(&s.entry, s.table, policy, false)?;
                ctx.begin_stream(&id);
                ctx.write_schema_message(plan.schema_message())?;
                incremental::sync(&client, ctx, &mut plan, every).await?;
                ctx.end_stream(&id, &id)?;
            }
            ReplicationMethod::LogBased => log_based.push(s),
        }
    }
    if log_based.is_empty() {
        return Ok(());
    }

    slot::check_server(&client).await?;
    let tables: Vec<(String, String)> = log_based
        .iter()
        .map(|s| (s.table.schema.clone(), s.table.name.clone()))
        .collect();
    let partitioned = log_based.iter().any(|s| s.table.relkind == 'p');
    slot::ensure_publication(&client, &config.publication(), &tables, partitioned).await?;
    let slot_name = config.slot();
    let slot = slot::slot_info(&client, &slot_name).await?;
    let bookmark =
        |ctx: &TapContext, id: &str| ctx.state().bookmark(id).cloned().unwrap_or_default();
    let positioned: Vec<&str> = log_based
        .iter()
        .filter(|s| logical::bookmark_lsn(&bookmark(ctx, &s.entry.tap_stream_id)).is_some())
        .map(|s| s.entry.tap_stream_id.as_str())
        .collect();
    if slot.is_none() && !positioned.is_empty() {
        return Err(slot::missing(&slot_name, &positioned.join(", ")));
    }
    // Streams without a position get a snapshot exported by a new slot: the stream's own slot
    // when it does not exist yet, else a temporary one whose consistent point becomes the
    // stream's position (changes committed before it are in the snapshot).
    let new: Vec<usize> = (0..log_based.len())
        .filter(|&i| {
            logical::bookmark_lsn(&bookmark(ctx, &log_based[i].entry.tap_stream_id)).is_none()
        })
        .collect();
    let exported = if new.is_empty() {
        None
    } else if slot.is_none() {
        Some(slot::create_slot(config, &slot_name, false).await?)
    } else {
        let temp: String = format!("{slot_name}_snap_{}", std::process::id())
            .chars()
            .take(63)
            .collect();
        Some(slot::create_slot(config, &temp, true).await?)
    };
    let mut streams = Vec::new();
    for (i, s) in log_based.into_iter().enumerate() {
        let id = s.entry.tap_stream_id.clone();
        let mut plan = StreamPlan::new(&s.entry, s.table, policy, true)?;
        let mark = bookmark(ctx, &id);
        let snapshot = match (&exported, new.contains(&i)) {
            (Some(e), true) => {
                // A fresh snapshot: a key left by an interrupted copy from another snapshot
                // (say, an earlier FULL_TABLE run) must not be resumed from.
                let st = ctx.state_mut();
                for key in [MAX_PK, LAST_PK, INITIAL_COMPLETE] {
                    st.clear_bookmark_value(&id, key);
                }
                st.set_bookmark_value(&id, LSN, json!(e.lsn));
                Some(e.snapshot.as_str())
            }
            _ => None,
        };
        let complete = mark.get(INITIAL_COMPLETE).and_then(Json::as_bool) == Some(true);
        ctx.write_schema_message(plan.schema_message())?;
        if snapshot.is_some() || !complete {
            ctx.begin_stream(&id);
            full_table::snapshot(&client, ctx, &mut plan, every, INITIAL_COMPLETE, snapshot)
                .await?;
            ctx.end_stream(&id, &id)?;
        }
        let lsn = logical::bookmark_lsn(&bookmark(ctx, &id)).unwrap_or(0);
        streams.push(LogStream {
            entry: s.entry,
            plan,
            lsn,
        });
    }
    drop(exported);
    let settings = logical::Settings {
        state_every: every,
        continuous: config.is_continuous(),
        max_run: config.max_run_seconds.map(std::time::Duration::from_secs),
        idle_stop: config
            .logical_poll_total_seconds
            .map(std::time::Duration::from_secs),
    };
    logical::sync(config, &client, ctx, streams, &settings).await
}

/// The schema and table of a catalog stream: from its metadata, else from `<schema>-<table>`.
fn schema_and_table(e: &CatalogEntry) -> (String, String) {
    let split = e.tap_stream_id.split_once('-');
    let schema = e
        .stream_metadata()
        .and_then(|m| m.get("schema-name"))
        .and_then(Json::as_str)
        .map(str::to_string)
        .or_else(|| split.map(|(s, _)| s.to_string()))
        .unwrap_or_else(|| "public".into());
    let table = e
        .table_name
        .clone()
        .unwrap_or_else(|| split.map_or(e.stream.clone(), |(_, t)| t.to_string()));
    (schema, table)
}
