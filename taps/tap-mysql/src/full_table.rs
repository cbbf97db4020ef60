//! FULL_TABLE (and the initial snapshot of LOG_BASED): one streaming read in primary-key order,
//! bounded by the largest key seen at start, resumable from the last key emitted.
//!
//! Rows go out as RECORD messages, with a STATE every `state_every_rows`, or, with
//! `batch_config`, into BATCH files, with a STATE after each file and never within one (see
//! [`crate::batch`]).

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};
use singer_core::batch::BatchConfig;
use singer_core::sdk::SdkError;
use singer_core::sdk::full_table::FullTableCopy;
use singer_core::sdk::tap::{TapContext, now_rfc3339};

use crate::batch::BatchOut;
use crate::sql::{self, KeyCol};
use crate::stream::StreamPlan;

/// Copies the whole table, as RECORDs or, with `batch`, into BATCH files. `complete_key` is
/// set in the bookmark when done; the caller writes the final state (`TapContext::end_stream`).
pub(crate) async fn snapshot(
    conn: &mut Conn,
    ctx: &mut TapContext,
    plan: &mut StreamPlan,
    state_every: u64,
    complete_key: &str,
    batch: Option<&BatchConfig>,
) -> Result<(), SdkError> {
    let id = plan.tap_stream_id.clone();
    let key_pos: Vec<usize> = plan
        .key_properties
        .iter()
        .filter_map(|k| plan.position(k))
        .collect();
    let resumable = !key_pos.is_empty() && key_pos.len() == plan.key_properties.len();
    let copy = FullTableCopy::new(
        ctx.state(),
        &id,
        &plan.key_properties,
        resumable,
        complete_key,
    );
    let version = copy.version();
    let table = sql::table_ref(&plan.database, &plan.table);
    let key_cols: Vec<KeyCol<'_>> = key_pos
        .iter()
        .map(|&i| KeyCol {
            name: &plan.columns[i].info.name,
            kind: &plan.columns[i].kind,
        })
        .collect();

    // The upper bound: the largest key now, or the one recorded by the interrupted run.
    let max: Option<Vec<Value>> = if !resumable {
        None
    } else if copy.is_resuming() {
        copy.resume_max().map(from_state)
    } else {
        let order = key_cols
            .iter()
            .map(|k| format!("{} DESC", sql::ident(k.name)))
            .collect::<Vec<_>>()
            .join(", ");
        let names = key_cols
            .iter()
            .map(|k| sql::ident(k.name))
            .collect::<Vec<_>>()
            .join(", ");
        let row: Option<mysql_async::Row> = conn
            .exec_first(
                format!("SELECT {names} FROM {table} ORDER BY {order} LIMIT 1"),
                Params::Empty,
            )
            .await
            .map_err(|e| {
                SdkError::fatal(format!("stream `{id}`: reading the largest key failed"), e)
            })?;
        row.map(|r| {
            (0..key_cols.len())
                .map(|i| r.as_ref(i).cloned().unwrap_or(Value::NULL))
                .collect()
        })
    };
    let last: Option<Vec<Value>> = copy.resume_last().map(from_state);
    let max_json: Option<Vec<serde_json::Value>> = max.as_deref().map(to_state);
    copy.start(ctx, max_json.as_deref())?;

    let mut where_parts = Vec::new();
    let mut params = Vec::new();
    if resumable && max.is_none() {
        where_parts.push("1 = 0".to_string());
    }
    if let Some(l) = &last {
        let (s, p) = sql::tuple_compare(&key_cols, l, ">", false);
        where_parts.push(s);
        params.extend(p);
    }
    if let Some(m) = &max {
        let (s, p) = sql::tuple_compare(&key_cols, m, "<", true);
        where_parts.push(s);
        params.extend(p);
    }
    let mut query = format!("SELECT {} FROM {table}", plan.select_list());
    if !where_parts.is_empty() {
        query.push_str(" WHERE ");
        query.push_str(&where_parts.join(" AND "));
    }
    if resumable {
        let order = key_cols
            .iter()
            .map(|k| sql::ident(k.name))
            .collect::<Vec<_>>()
            .join(", ");
        query.push_str(&format!(" ORDER BY {order}"));
    }
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    let mut files = match batch {
        Some(config) => Some(BatchOut::new(plan, config, version)?),
        None => None,
    };
    let extracted = now_rfc3339();
    let read_err = |e| SdkError::fatal(format!("stream `{id}`: reading rows failed"), e);
    let mut result = conn.exec_iter(query, params).await.map_err(read_err)?;
    let mut buf = Vec::with_capacity(4096);
    let mut rows: u64 = 0;
    while let Some(row) = result.next().await.map_err(read_err)? {
        plan.encode(&mut buf, |i| row.as_ref(i), b"")?;
        rows += 1;
        let checkpoint = match files.as_mut() {
            None => {
                ctx.write_record_json(&id, &buf, Some(version), Some(&extracted))?;
                resumable && rows.is_multiple_of(state_every)
            }
            // Only when this row completed a file (its BATCH message is out): a state then
            // covers no row that is still only in an unfinished file.
            Some(out) => out.write(ctx, &buf)?,
        };
        if !checkpoint {
            continue;
        }
        if resumable {
            let values: Vec<serde_json::Value> = key_pos
                .iter()
                .map(|&i| row.as_ref(i).map_or(serde_json::Value::Null, sql::to_state))
                .collect();
            copy.checkpoint(ctx, &values)?;
        } else {
            // Without a key there is nothing to resume from; the state still follows the file.
            ctx.write_state()?;
        }
    }
    drop(result);
    if let Some(out) = files {
        out.finish(ctx)?;
    }
    plan.report_invalid();
    copy.finish(ctx, rows)
}

/// Key values as kept in state.
fn to_state(values: &[Value]) -> Vec<serde_json::Value> {
    values.iter().map(sql::to_state).collect()
}

/// Key values read back from state.
fn from_state(values: &[serde_json::Value]) -> Vec<Value> {
    values.iter().map(sql::from_state).collect()
}
