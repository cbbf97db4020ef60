//! The server side of LOG_BASED: `wal_level`, the publication, the replication slot, and the
//! snapshots a slot exports so an initial copy meets the change stream with no gap and no
//! overlap.

use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, TlsConfig};
use singer_core::sdk::SdkError;
use tokio_postgres::Client;

use crate::config::{Config, SslMode};
use crate::connect::{SESSION_OPTIONS, db_error, ident, table_ref};

/// A replication slot as `pg_replication_slots` shows it.
pub(crate) struct SlotInfo {
    pub(crate) confirmed_flush: u64,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub(crate) wal_status: String,
}

/// What to do when a slot is gone or unusable, for error messages and the README.
pub(crate) const RECOVERY: &str = "to recover, remove the bookmarks of the LOG_BASED streams \
     from the state (or run without --state, or `singer run --full-refresh`): the tap then \
     creates the slot again and takes a new initial snapshot";

/// The error for a slot that is gone while streams still have positions in it.
pub(crate) fn missing(slot: &str, streams: &str) -> SdkError {
    SdkError::Config(format!(
        "replication slot `{slot}` does not exist (dropped?), so the changes since the state's \
         position are gone for {streams}; {RECOVERY}"
    ))
}

/// Fails unless the server can decode its WAL logically.
pub(crate) async fn check_server(client: &Client) -> Result<(), SdkError> {
    let level: String = client
        .query_one("SELECT current_setting('wal_level')", &[])
        .await
        .map_err(|e| db_error("cannot read wal_level", e))?
        .get(0);
    if level != "logical" {
        return Err(SdkError::Config(format!(
            "LOG_BASED needs wal_level = logical, the server has `{level}`; set it in \
             postgresql.conf (ALTER SYSTEM SET wal_level = logical) and restart the server"
        )));
    }
    Ok(())
}

/// The slot, if it exists.
pub(crate) async fn slot_info(client: &Client, slot: &str) -> Result<Option<SlotInfo>, SdkError> {
    let row = client
        .query_opt(
            "SELECT confirmed_flush_lsn::text, COALESCE(wal_status, 'reserved'), plugin::text \
             FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| db_error("cannot read pg_replication_slots", e))?;
    let Some(r) = row else {
        return Ok(None);
    };
    let plugin: Option<String> = r.get(2);
    if plugin.as_deref() != Some("pgoutput") {
        return Err(SdkError::Config(format!(
            "replication slot `{slot}` exists but is not a pgoutput logical slot (plugin {}); \
             choose another slot_name",
            plugin.unwrap_or_else(|| "none: a physical slot".into())
        )));
    }
    let confirmed_flush = r
        .get::<_, Option<String>>(0)
        .and_then(|s| Lsn::parse(&s).ok())
        .map_or(0, |l| l.0);
    Ok(Some(SlotInfo {
        confirmed_flush,
        wal_status: r.get(1),
    }))
}

/// Makes sure the publication exists and publishes every table in `tables`. Changes of
/// partitioned tables are published under the partitioned table's name
/// (`publish_via_partition_root`), so they reach its stream.
pub(crate) async fn ensure_publication(
    client: &Client,
    publication: &str,
    tables: &[(String, String)],
    partitioned: bool,
) -> Result<(), SdkError> {
    let err = |e| db_error(format!("cannot set up publication `{publication}`"), e);
    let row = client
        .query_opt(
            "SELECT puballtables, pubviaroot FROM pg_catalog.pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(err)?;
    let all: Option<bool> = row.as_ref().map(|r| r.get(0));
    if partitioned && row.as_ref().is_some_and(|r| !r.get::<_, bool>(1)) {
        tracing::info!(
            publication,
            "publishing partitioned tables under their own name"
        );
        let sql = format!(
            "ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
            ident(publication)
        );
        client.batch_execute(&sql).await.map_err(err)?;
    }
    let list = |ts: &[&(String, String)]| {
        ts.iter()
            .map(|(s, t)| table_ref(s, t))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match all {
        Some(true) => Ok(()),
        None => {
            let sql = format!(
                "CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)",
                ident(publication),
                list(&tables.iter().collect::<Vec<_>>())
            );
            tracing::info!(publication, "creating the publication");
            client.batch_execute(&sql).await.map_err(err)
        }
        Some(false) => {
            let present: Vec<(String, String)> = client
                .query(
                    "SELECT schemaname::text, tablename::text \
                     FROM pg_catalog.pg_publication_tables WHERE pubname = $1",
                    &[&publication],
                )
                .await
                .map_err(err)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let missing: Vec<&(String, String)> =
                tables.iter().filter(|t| !present.contains(t)).collect();
            if missing.is_empty() {
                return Ok(());
            }
            tracing::info!(
                publication,
                tables = missing.len(),
                "adding tables to the publication"
            );
            let sql = format!(
                "ALTER PUBLICATION {} ADD TABLE {}",
                ident(publication),
                list(&missing)
            );
            client.batch_execute(&sql).await.map_err(err)
        }
    }
}

/// The replication connection settings of `config`.
pub(crate) fn replication_config(config: &Config, start: u64) -> ReplicationConfig {
    let password = config
        .password
        .as_ref()
        .map(|p| p.expose().to_string())
        .unwrap_or_default();
    let tls = match config.ssl_mode() {
        SslMode::Disable => TlsConfig::disabled(),
        SslMode::Prefer | SslMode::Require => TlsConfig::require(),
        SslMode::VerifyCa => TlsConfig::verify_ca(config.ssl_root_cert.clone().map(Into::into)),
        SslMode::VerifyFull => TlsConfig::verify_full(config.ssl_root_cert.clone().map(Into::into)),
    };
    ReplicationConfig::new(
        config.host.clone(),
        config.user.clone(),
        password,
        config.dbname.clone(),
        config.slot(),
        config.publication(),
    )
    .with_port(config.port)
    .with_tls(tls)
    .with_options(SESSION_OPTIONS)
    .with_application_name("tap-postgres")
    .with_start_lsn(Lsn(start))
    .with_ack_lsn(Lsn(start))
}

/// A slot just created with an exported snapshot. The snapshot stays importable while this
/// value lives (the session that exported it must stay idle and open).
pub(crate) struct Exported {
    _session: ReplicationClient,
    /// The slot's consistent point: changes committed at or after it are streamed, earlier
    /// ones are in the snapshot.
    pub(crate) lsn: u64,
    pub(crate) snapshot: String,
}

/// Creates slot `name` (temporary: dropped when the session ends) and exports its snapshot.
pub(crate) async fn create_slot(
    config: &Config,
    name: &str,
    temporary: bool,
) -> Result<Exported, SdkError> {
    let mut cfg = replication_config(config, 0);
    cfg.slot = name.to_string();
    let what = format!(
        "cannot open a replication connection as {}@{}:{}/{} (the user needs the REPLICATION \
         attribute and pg_hba.conf a replication entry)",
        config.user, config.host, config.port, config.dbname
    );
    let mut session = ReplicationClient::connect_gated(cfg)
        .await
        .map_err(|e| SdkError::fatal(what.clone(), e))?;
    let sql = format!(
        "CREATE_REPLICATION_SLOT {}{} LOGICAL pgoutput (SNAPSHOT 'export')",
        ident(name),
        if temporary { " TEMPORARY" } else { "" }
    );
    let rows = session
        .simple_query(&sql)
        .await
        .map_err(|e| SdkError::fatal(format!("cannot create replication slot `{name}`"), e))?;
    let field = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i))
            .and_then(|v| v.as_ref())
            .map(|b| String::from_utf8_lossy(b).into_owned())
    };
    let (Some(point), Some(snapshot)) = (field(1), field(2)) else {
        return Err(SdkError::fatal(
            format!("replication slot `{name}`"),
            std::io::Error::other("CREATE_REPLICATION_SLOT returned no snapshot"),
        ));
    };
    let lsn = Lsn::parse(&point)
        .map_err(|e| SdkError::fatal(format!("slot `{name}`: bad consistent point"), e))?
        .0;
    tracing::info!(slot = name, lsn = %Lsn(lsn).to_pg_string(), temporary, "replication slot created");
    Ok(Exported {
        _session: session,
        lsn,
        snapshot,
    })
}
