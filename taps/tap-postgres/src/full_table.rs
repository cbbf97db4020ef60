//! FULL_TABLE (and the initial snapshot of LOG_BASED): one streaming COPY in primary-key
//! order inside a repeatable-read transaction, bounded by the largest key seen at start,
//! resumable from the last key emitted. Key values are bound through transaction-local
//! settings (`set_config`), never spliced into the SQL.

use serde_json::Value as Json;
use singer_core::sdk::SdkError;
use singer_core::sdk::full_table::FullTableCopy;
use singer_core::sdk::tap::{TapContext, now_rfc3339};
use tokio_postgres::Client;

use crate::connect::{db_error, ident};
use crate::copy::copy_rows;
use crate::kind::Kind;
use crate::stream::StreamPlan;

/// Opens a read-only repeatable-read transaction, on an exported snapshot when given.
pub(crate) async fn begin(client: &Client, snapshot: Option<&str>) -> Result<(), SdkError> {
    let mut sql = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    if let Some(s) = snapshot {
        // The name comes from the server (CREATE_REPLICATION_SLOT); quoted all the same.
        sql.push_str(&format!(
            "; SET TRANSACTION SNAPSHOT '{}'",
            s.replace('\'', "''")
        ));
    }
    client
        .batch_execute(&sql)
        .await
        .map_err(|e| db_error("cannot open the snapshot transaction", e))
}

/// Ends the transaction opened by [`begin`].
pub(crate) async fn commit(client: &Client) -> Result<(), SdkError> {
    client
        .batch_execute("COMMIT")
        .await
        .map_err(|e| db_error("cannot end the snapshot transaction", e))
}

/// Binds `values` as transaction-local settings `singer.<prefix><i>` and returns the SQL
/// expressions that read them back as each column's type.
pub(crate) async fn bind(
    client: &Client,
    plan: &StreamPlan,
    positions: &[usize],
    values: &[Json],
    prefix: &str,
) -> Result<Vec<String>, SdkError> {
    let mut exprs = Vec::new();
    for (n, (&i, v)) in positions.iter().zip(values).enumerate() {
        let name = format!("singer.{prefix}{n}");
        let text = bind_text(v, &plan.columns[i].column.kind);
        client
            .execute("SELECT set_config($1, $2, true)", &[&name, &text])
            .await
            .map_err(|e| db_error("cannot bind a bookmark value", e))?;
        exprs.push(format!(
            "current_setting('{name}')::{}",
            plan.columns[i].column.declared
        ));
    }
    Ok(exprs)
}

/// A bookmark value as PostgreSQL input text: ISO 8601 expanded and astronomical years
/// (`+294276-...`, `-0043-...`, `0000-...`) go back to PostgreSQL's `AD`/`BC` forms.
fn bind_text(v: &Json, kind: &Kind) -> String {
    let s = match v {
        Json::String(s) => s,
        other => return other.to_string(),
    };
    if !matches!(kind, Kind::Date | Kind::Timestamp) {
        return s.clone();
    }
    if let Some(rest) = s.strip_prefix('+') {
        return rest.to_string();
    }
    let (negative, body) = match s.strip_prefix('-') {
        Some(b) if b.starts_with(|c: char| c.is_ascii_digit()) => (true, b),
        _ => (false, s.as_str()),
    };
    let digits = body.find('-').unwrap_or(0);
    let Ok(year) = body[..digits].parse::<i64>() else {
        return s.clone();
    };
    if !negative && year != 0 {
        return s.clone();
    }
    let bc_year = if negative { year + 1 } else { 1 };
    format!("{bc_year:04}{} BC", &body[digits..])
}

/// Copies the whole table in its own transaction (on the exported `snapshot` when given);
/// `complete_key` is set in the bookmark when done. The caller writes the final state.
pub(crate) async fn snapshot(
    client: &Client,
    ctx: &mut TapContext,
    plan: &mut StreamPlan,
    state_every: u64,
    complete_key: &str,
    snapshot: Option<&str>,
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
    begin(client, snapshot).await?;
    let table = plan.table_ref();
    let key_cols: Vec<String> = key_pos
        .iter()
        .map(|&i| ident(&plan.columns[i].column.name))
        .collect();
    let key_list = key_cols.join(", ");

    // The upper bound: the largest key now, or the one recorded by the interrupted run.
    let max: Option<Vec<Json>> = if !resumable {
        None
    } else if copy.is_resuming() {
        copy.resume_max().map(<[Json]>::to_vec)
    } else {
        // Aliased: `ORDER BY "id"` must sort the column, not its text.
        let texts = key_cols
            .iter()
            .enumerate()
            .map(|(n, k)| format!("{k}::text AS singer_key_{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let order = key_cols
            .iter()
            .map(|k| format!("{k} DESC"))
            .collect::<Vec<_>>()
            .join(", ");
        let row = client
            .query_opt(
                &format!("SELECT {texts} FROM {table} ORDER BY {order} LIMIT 1"),
                &[],
            )
            .await
            .map_err(|e| db_error(format!("stream `{id}`: reading the largest key failed"), e))?;
        row.map(|r| {
            key_pos
                .iter()
                .enumerate()
                .map(|(n, &i)| {
                    let t: Option<String> = r.get(n);
                    t.map_or(Json::Null, |t| plan.value_json(i, t.as_bytes()))
                })
                .collect()
        })
    };
    copy.start(ctx, max.as_deref())?;

    let mut where_parts = Vec::new();
    if resumable && max.is_none() {
        where_parts.push("false".to_string());
    }
    if let Some(l) = copy.resume_last() {
        let exprs = bind(client, plan, &key_pos, l, "last").await?;
        where_parts.push(format!("ROW({key_list}) > ROW({})", exprs.join(", ")));
    }
    if let Some(m) = &max {
        let exprs = bind(client, plan, &key_pos, m, "max").await?;
        where_parts.push(format!("ROW({key_list}) <= ROW({})", exprs.join(", ")));
    }
    let mut query = format!("SELECT {} FROM {table}", plan.select_list());
    if !where_parts.is_empty() {
        query.push_str(" WHERE ");
        query.push_str(&where_parts.join(" AND "));
    }
    if resumable {
        query.push_str(&format!(" ORDER BY {key_list}"));
    }
    let extracted = now_rfc3339();
    let mut buf = Vec::with_capacity(4096);
    let mut count: u64 = 0;
    let rows = copy_rows(client, &query, &id, |row| {
        plan.encode(&mut buf, |i| row.cell(i), b"")?;
        ctx.write_record_json(&id, &buf, Some(version), Some(&extracted))?;
        count += 1;
        if resumable && count.is_multiple_of(state_every) {
            let values: Vec<Json> = key_pos
                .iter()
                .map(|&i| row.text(i).map_or(Json::Null, |t| plan.value_json(i, t)))
                .collect();
            copy.checkpoint(ctx, &values)?;
        }
        Ok(())
    })
    .await?;
    commit(client).await?;
    plan.report_invalid();
    copy.finish(ctx, rows)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn bookmark_dates_go_back_to_postgres_eras() {
        let d = |s: &str| bind_text(&json!(s), &Kind::Date);
        assert_eq!(d("2024-01-02"), "2024-01-02");
        assert_eq!(d("-0043-03-15"), "0044-03-15 BC");
        assert_eq!(d("0000-01-01"), "0001-01-01 BC");
        assert_eq!(d("+294276-12-31"), "294276-12-31");
        assert_eq!(
            bind_text(&json!("-0043-03-15T01:02:03+00:00"), &Kind::Timestamp),
            "0044-03-15T01:02:03+00:00 BC"
        );
        assert_eq!(bind_text(&json!(1.50), &Kind::Float), "1.5");
        assert_eq!(
            bind_text(&json!("-x"), &Kind::Text { max_length: None }),
            "-x"
        );
    }
}
