//! Connections: tokio-postgres with native TLS for reads, the settings that make every value's
//! text form fixed (the same for COPY and for pgoutput), and errors that name what was done.

use std::time::Duration;

use singer_core::sdk::SdkError;
use tokio_postgres::Client;

use crate::config::{Config, SslMode};

/// Session settings of every connection, sent as the startup `options` so the replication
/// connection renders values exactly like the snapshot does: UTC, ISO dates, ISO 8601
/// intervals, shortest exact floats, hex bytea and `C` money.
pub(crate) const SESSION_OPTIONS: &str = "-c TimeZone=UTC -c DateStyle=ISO,YMD \
     -c IntervalStyle=iso_8601 -c extra_float_digits=1 -c bytea_output=hex -c lc_monetary=C \
     -c statement_timeout=0 -c idle_in_transaction_session_timeout=0";

/// A database error shown with the server's message, SQLSTATE and detail, never with
/// parameter values.
#[derive(Debug)]
pub(crate) struct DbError(pub(crate) tokio_postgres::Error);

impl std::error::Error for DbError {}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(f, "{} (SQLSTATE {})", db.message(), db.code().code())?;
                if let Some(d) = db.detail() {
                    write!(f, "; {d}")?;
                }
                if let Some(h) = db.hint() {
                    write!(f, "; hint: {h}")?;
                }
                Ok(())
            }
            None => write!(f, "{}", self.0),
        }
    }
}

/// Wraps a driver error with what was being done.
pub(crate) fn db_error(context: impl Into<String>, source: tokio_postgres::Error) -> SdkError {
    SdkError::fatal(context.into(), DbError(source))
}

/// How to reach the server; never prints the password.
#[derive(Clone)]
pub(crate) struct Connector {
    pg: tokio_postgres::Config,
    ssl: SslMode,
    root_cert: Option<String>,
    /// `user@host:port/db`, for messages.
    pub(crate) target: String,
}

impl Connector {
    pub(crate) fn new(config: &Config) -> Self {
        let mut pg = tokio_postgres::Config::new();
        pg.host(&config.host)
            .port(config.port)
            .user(&config.user)
            .dbname(&config.dbname)
            .application_name("tap-postgres")
            .options(SESSION_OPTIONS)
            .connect_timeout(Duration::from_secs(config.connect_timeout.max(1)));
        if let Some(p) = &config.password {
            pg.password(p.expose());
        }
        Self {
            pg,
            ssl: config.ssl_mode(),
            root_cert: config.ssl_root_cert.clone(),
            target: format!(
                "{}@{}:{}/{}",
                config.user, config.host, config.port, config.dbname
            ),
        }
    }

    /// Opens a connection whose I/O runs on its own task.
    pub(crate) async fn connect(&self) -> Result<Client, SdkError> {
        let what = || format!("cannot connect to PostgreSQL as {}", self.target);
        if self.ssl == SslMode::Disable {
            let (client, conn) = self
                .pg
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| db_error(what(), e))?;
            drive(conn);
            return Ok(client);
        }
        let mut pg = self.pg.clone();
        pg.ssl_mode(match self.ssl {
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let (client, conn) = pg
            .connect(self.tls()?)
            .await
            .map_err(|e| db_error(what(), e))?;
        drive(conn);
        Ok(client)
    }

    fn tls(&self) -> Result<postgres_native_tls::MakeTlsConnector, SdkError> {
        let mut b = native_tls::TlsConnector::builder();
        let verify = matches!(self.ssl, SslMode::VerifyCa | SslMode::VerifyFull);
        b.danger_accept_invalid_certs(!verify);
        b.danger_accept_invalid_hostnames(self.ssl != SslMode::VerifyFull);
        if let Some(root) = &self.root_cert {
            let pem = std::fs::read(root)
                .map_err(|e| SdkError::Config(format!("cannot read {root}: {e}")))?;
            let cert = native_tls::Certificate::from_pem(&pem)
                .map_err(|e| SdkError::Config(format!("ssl_root_cert {root}: {e}")))?;
            b.disable_built_in_roots(true);
            b.add_root_certificate(cert);
        }
        let connector = b
            .build()
            .map_err(|e| SdkError::Config(format!("TLS setup: {e}")))?;
        Ok(postgres_native_tls::MakeTlsConnector::new(connector))
    }
}

/// Runs a connection's I/O until it closes.
fn drive<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "connection closed");
        }
    });
}

/// A double-quoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub(crate) fn table_ref(schema: &str, table: &str) -> String {
    format!("{}.{}", ident(schema), ident(table))
}
