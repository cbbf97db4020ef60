//! FULL_TABLE (and the initial snapshot of LOG_BASED): one streaming read in primary-key order,
//! bounded by the largest key seen at start, resumable from the last key emitted.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};
use serde_json::{Map, Value as Json, json};
use singer_core::sdk::SdkError;
use singer_core::sdk::tap::TapContext;

use crate::sql::{self, KeyCol};
use crate::stream::StreamPlan;

/// Bookmark keys, as singer-io's and PipelineWise's tap-mysql name them.
pub(crate) const VERSION: &str = "version";
pub(crate) const MAX_PK: &str = "max_pk_values";
pub(crate) const LAST_PK: &str = "last_pk_fetched";
/// Set once the first complete FULL_TABLE sync finished.
pub(crate) const FULL_TABLE_COMPLETE: &str = "initial_full_table_complete";

/// Copies the whole table. `complete_key` is set in the bookmark when done; the caller writes
/// the final state (`TapContext::end_stream`).
pub(crate) async fn snapshot(
    conn: &mut Conn,
    ctx: &mut TapContext,
    plan: &mut StreamPlan,
    state_every: u64,
    complete_key: &str,
) -> Result<(), SdkError> {
    let id = plan.tap_stream_id.clone();
    let bookmark = ctx.state().bookmark(&id).cloned().unwrap_or_default();
    let first_ever = !bookmark
        .get(complete_key)
        .and_then(Json::as_bool)
        .unwrap_or(false);
    let key_pos: Vec<usize> = plan
        .key_properties
        .iter()
        .filter_map(|k| plan.position(k))
        .collect();
    let resumable = !key_pos.is_empty() && key_pos.len() == plan.key_properties.len();
    let resuming = resumable && bookmark.contains_key(MAX_PK);
    let version = match bookmark.get(VERSION).and_then(Json::as_i64) {
        Some(v) if resuming => v,
        _ => chrono::Utc::now().timestamp_millis(),
    };
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
    } else if resuming {
        state_key(&bookmark, MAX_PK, &plan.key_properties)
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
    let last: Option<Vec<Value>> = if resuming {
        state_key(&bookmark, LAST_PK, &plan.key_properties)
    } else {
        None
    };

    {
        let st = ctx.state_mut();
        st.set_bookmark_value(&id, VERSION, json!(version));
        if !resuming {
            st.clear_bookmark_value(&id, LAST_PK);
            match &max {
                Some(m) => st.set_bookmark_value(&id, MAX_PK, key_object(&plan.key_properties, m)),
                None => st.clear_bookmark_value(&id, MAX_PK),
            }
        }
    }
    if resuming {
        tracing::info!(stream = %id, "resuming the interrupted full-table copy after the last key emitted");
    } else {
        ctx.write_state()?;
    }
    // On the very first copy an empty table must appear at once; later copies keep the old
    // rows visible until the final ACTIVATE_VERSION.
    if first_ever && !resuming {
        ctx.write_activate_version(&id, version)?;
    }

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
    let extracted = now_rfc3339();
    let key_names = plan.key_properties.clone();
    let read_err = |e| SdkError::fatal(format!("stream `{id}`: reading rows failed"), e);
    let mut result = conn.exec_iter(query, params).await.map_err(read_err)?;
    let mut buf = Vec::with_capacity(4096);
    let mut rows: u64 = 0;
    while let Some(row) = result.next().await.map_err(read_err)? {
        plan.encode(&mut buf, |i| row.as_ref(i), b"")?;
        ctx.write_record_json(&id, &buf, Some(version), Some(&extracted))?;
        rows += 1;
        if resumable && rows.is_multiple_of(state_every) {
            let values: Vec<Value> = key_pos
                .iter()
                .map(|&i| row.as_ref(i).cloned().unwrap_or(Value::NULL))
                .collect();
            ctx.state_mut()
                .set_bookmark_value(&id, LAST_PK, key_object(&key_names, &values));
            ctx.write_state()?;
        }
    }
    drop(result);
    plan.report_invalid();
    ctx.write_activate_version(&id, version)?;
    let st = ctx.state_mut();
    st.clear_bookmark_value(&id, LAST_PK);
    st.clear_bookmark_value(&id, MAX_PK);
    st.set_bookmark_value(&id, complete_key, json!(true));
    tracing::info!(stream = %id, rows, "full-table copy finished");
    Ok(())
}

/// `{"k1": v1, ...}` as kept in state.
fn key_object(names: &[String], values: &[Value]) -> Json {
    let mut m = Map::new();
    for (n, v) in names.iter().zip(values) {
        m.insert(n.clone(), sql::to_state(v));
    }
    Json::Object(m)
}

/// Reads a key object back, in key order; `None` if any part is missing.
fn state_key(bookmark: &Map<String, Json>, key: &str, names: &[String]) -> Option<Vec<Value>> {
    let obj = bookmark.get(key)?.as_object()?;
    names
        .iter()
        .map(|n| obj.get(n).map(sql::from_state))
        .collect()
}

/// The current time as RFC 3339 with microseconds, for `time_extracted`.
pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}
