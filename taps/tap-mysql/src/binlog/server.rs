//! What the server is and where its binlog stands: settings checks, positions, purged files.

use mysql_async::Conn;
use mysql_async::prelude::Queryable;
use singer_core::sdk::SdkError;

use super::position::BinlogPos;
use crate::config::Engine;
use crate::connect;

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

pub(super) async fn binary_logs(conn: &mut Conn) -> Result<Vec<String>, SdkError> {
    let rows: Vec<mysql_async::Row> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| SdkError::fatal("SHOW BINARY LOGS failed", e))?;
    Ok(rows.iter().filter_map(|r| r.get::<String, _>(0)).collect())
}

pub(super) fn purged_error(id: &str, pos: &BinlogPos, detail: &str) -> SdkError {
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
pub(super) fn stream_error(id: &str, pos: &BinlogPos, e: mysql_async::Error) -> SdkError {
    if let mysql_async::Error::Server(se) = &e
        && se.code == 1236
    {
        return purged_error(id, pos, &se.message);
    }
    SdkError::fatal(format!("reading the binlog from {pos} failed"), e)
}
