//! INCREMENTAL: rows whose replication key is at or after the bookmark, in key order, up to the
//! largest key seen at start. The bookmark moves only after the rows it covers were written.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Value};
use singer_core::sdk::SdkError;
use singer_core::sdk::incremental::{self, REPLICATION_KEY_VALUE};
use singer_core::sdk::tap::{TapContext, now_rfc3339};

use crate::sql;
use crate::stream::StreamPlan;

pub(crate) async fn sync(
    conn: &mut Conn,
    ctx: &mut TapContext,
    plan: &mut StreamPlan,
    state_every: u64,
) -> Result<(), SdkError> {
    let id = plan.tap_stream_id.clone();
    let (rk, rk_pos) =
        incremental::key_column(&id, plan.replication_key.as_deref(), |k| plan.position(k))?;
    let kind = plan.columns[rk_pos].kind.clone();
    let start = incremental::start(ctx.state_mut(), &id, &rk).map(|v| sql::from_state(&v));
    let table = sql::table_ref(&plan.database, &plan.table);
    let col = sql::ident(&rk);
    let ph = sql::placeholder(&kind);
    let max: Option<Value> = conn
        .exec_first(format!("SELECT MAX({col}) FROM {table}"), Params::Empty)
        .await
        .map_err(|e| SdkError::fatal(format!("stream `{id}`: reading MAX({rk}) failed"), e))?;
    let max = max.filter(|v| *v != Value::NULL);
    let Some(max) = max else {
        tracing::info!(stream = %id, "table has no rows with a replication key");
        return Ok(());
    };
    let mut query = format!(
        "SELECT {} FROM {table} WHERE {col} <= {ph}",
        plan.select_list()
    );
    let mut params = vec![max];
    if let Some(s) = start {
        query.push_str(&format!(" AND {col} >= {ph}"));
        params.push(s);
    }
    query.push_str(&format!(" ORDER BY {col}"));
    let extracted = now_rfc3339();
    let read_err = |e| SdkError::fatal(format!("stream `{id}`: reading rows failed"), e);
    let mut result = conn
        .exec_iter(query, Params::Positional(params))
        .await
        .map_err(read_err)?;
    let mut buf = Vec::with_capacity(4096);
    let mut rows: u64 = 0;
    let mut last: Option<Value> = None;
    while let Some(row) = result.next().await.map_err(read_err)? {
        plan.encode(&mut buf, |i| row.as_ref(i), b"")?;
        ctx.write_record_json(&id, &buf, None, Some(&extracted))?;
        rows += 1;
        last = row.as_ref(rk_pos).cloned();
        if rows.is_multiple_of(state_every) {
            if let Some(v) = &last {
                ctx.state_mut()
                    .set_bookmark_value(&id, REPLICATION_KEY_VALUE, sql::to_state(v));
            }
            ctx.write_state()?;
        }
    }
    drop(result);
    plan.report_invalid();
    if let Some(v) = &last {
        ctx.state_mut()
            .set_bookmark_value(&id, REPLICATION_KEY_VALUE, sql::to_state(v));
    }
    tracing::info!(stream = %id, rows, "incremental read finished");
    Ok(())
}
