//! INCREMENTAL: rows whose replication key is at or after the bookmark, in key order, up to
//! the largest key seen at start, compared in the column's own type (exact for numeric and
//! timestamps). The bookmark moves only after the rows it covers were written.

use singer_core::sdk::SdkError;
use singer_core::sdk::incremental::{self, REPLICATION_KEY_VALUE};
use singer_core::sdk::tap::{TapContext, now_rfc3339};
use tokio_postgres::Client;

use crate::connect::{db_error, ident};
use crate::copy::copy_rows;
use crate::full_table::{begin, bind, commit};
use crate::stream::StreamPlan;

pub(crate) async fn sync(
    client: &Client,
    ctx: &mut TapContext,
    plan: &mut StreamPlan,
    state_every: u64,
) -> Result<(), SdkError> {
    let id = plan.tap_stream_id.clone();
    let (rk, rk_pos) =
        incremental::key_column(&id, plan.replication_key.as_deref(), |k| plan.position(k))?;
    if !plan.columns[rk_pos].column.kind.orders_exactly() {
        return Err(SdkError::Config(format!(
            "stream `{id}`: column `{rk}` ({}) cannot be a replication key",
            plan.columns[rk_pos].column.declared
        )));
    }
    let start = incremental::start(ctx.state_mut(), &id, &rk);
    begin(client, None).await?;
    let table = plan.table_ref();
    let col = ident(&rk);
    let max: Option<String> = client
        .query_one(&format!("SELECT MAX({col})::text FROM {table}"), &[])
        .await
        .map_err(|e| db_error(format!("stream `{id}`: reading MAX({rk}) failed"), e))?
        .get(0);
    let Some(max) = max else {
        commit(client).await?;
        tracing::info!(stream = %id, "table has no rows with a replication key");
        return Ok(());
    };
    let max = plan.value_json(rk_pos, max.as_bytes());
    let upper = bind(client, plan, &[rk_pos], &[max], "max").await?;
    let mut query = format!(
        "SELECT {} FROM {table} WHERE {col} <= {}",
        plan.select_list(),
        upper[0]
    );
    if let Some(s) = start {
        let lower = bind(client, plan, &[rk_pos], &[s], "start").await?;
        query.push_str(&format!(" AND {col} >= {}", lower[0]));
    }
    query.push_str(&format!(" ORDER BY {col}"));
    let extracted = now_rfc3339();
    let mut buf = Vec::with_capacity(4096);
    let mut last: Option<Vec<u8>> = None;
    let mut count: u64 = 0;
    copy_rows(client, &query, &id, |row| {
        plan.encode(&mut buf, |i| row.cell(i), b"")?;
        ctx.write_record_json(&id, &buf, None, Some(&extracted))?;
        count += 1;
        let key = row.text(rk_pos).unwrap_or_default();
        match &mut last {
            Some(l) => {
                l.clear();
                l.extend_from_slice(key);
            }
            None => last = Some(key.to_vec()),
        }
        if count.is_multiple_of(state_every) {
            let v = plan.value_json(rk_pos, key);
            ctx.state_mut()
                .set_bookmark_value(&id, REPLICATION_KEY_VALUE, v);
            ctx.write_state()?;
        }
        Ok(())
    })
    .await?;
    commit(client).await?;
    plan.report_invalid();
    if let Some(l) = &last {
        let v = plan.value_json(rk_pos, l);
        ctx.state_mut()
            .set_bookmark_value(&id, REPLICATION_KEY_VALUE, v);
    }
    tracing::info!(stream = %id, rows = count, "incremental read finished");
    Ok(())
}
