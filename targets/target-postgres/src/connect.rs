//! Connections: tokio-postgres with native TLS, session settings, classified errors.

use singer_core::sdk::SdkError;
use singer_core::{Classify, ErrorClass};
use tokio_postgres::Client;

use crate::config::{Config, SslMode};

/// A database error with its class: connection failures and serialization conflicts are
/// retriable, data errors are fatal. It shows the server's message, SQLSTATE, detail and
/// context (which names the COPY line and column), never parameter values.
#[derive(Debug)]
pub struct DbError(pub tokio_postgres::Error);

impl std::error::Error for DbError {}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(f, "{} (SQLSTATE {})", db.message(), db.code().code())?;
                if let Some(d) = db.detail() {
                    write!(f, "; {d}")?;
                }
                if let Some(w) = db.where_() {
                    write!(f, "; {w}")?;
                }
                Ok(())
            }
            None => write!(f, "{}", self.0),
        }
    }
}

impl Classify for DbError {
    fn class(&self) -> ErrorClass {
        match self.0.code().map(|c| c.code()) {
            None => ErrorClass::Retriable,
            Some(code)
                if code.starts_with("08")
                    || code == "40001"
                    || code == "40P01"
                    || code.starts_with("57P") =>
            {
                ErrorClass::Retriable
            }
            Some(_) => ErrorClass::Fatal,
        }
    }
}

/// Wraps a driver error with what was being done.
pub fn db_error(context: impl Into<String>, source: tokio_postgres::Error) -> SdkError {
    SdkError::connector(context.into(), DbError(source))
}

/// Opens a connection and sets the session up (UTC time zone).
pub async fn connect(cfg: &Config) -> Result<Client, SdkError> {
    let mut pg = tokio_postgres::Config::new();
    pg.host(&cfg.host)
        .port(cfg.port)
        .user(&cfg.user)
        .dbname(&cfg.database)
        .application_name("target-postgres")
        .connect_timeout(std::time::Duration::from_secs(30));
    if let Some(p) = &cfg.password {
        pg.password(p.expose());
    }
    let where_ = format!(
        "cannot connect to {}:{}/{} as {}",
        cfg.host, cfg.port, cfg.database, cfg.user
    );
    let client = if cfg.sslmode == SslMode::Disable {
        let (client, conn) = pg
            .connect(tokio_postgres::NoTls)
            .await
            .map_err(|e| db_error(where_.clone(), e))?;
        drive(conn);
        client
    } else {
        pg.ssl_mode(match cfg.sslmode {
            SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        let tls = tls_connector(cfg)?;
        let (client, conn) = pg
            .connect(tls)
            .await
            .map_err(|e| db_error(where_.clone(), e))?;
        drive(conn);
        client
    };
    client
        .batch_execute("SET TimeZone = 'UTC'; SET client_min_messages = warning")
        .await
        .map_err(|e| db_error("cannot set up the session", e))?;
    Ok(client)
}

/// Runs a connection's I/O on its own task until it closes.
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

fn tls_connector(cfg: &Config) -> Result<postgres_native_tls::MakeTlsConnector, SdkError> {
    let mut b = native_tls::TlsConnector::builder();
    let verify = matches!(cfg.sslmode, SslMode::VerifyCa | SslMode::VerifyFull);
    b.danger_accept_invalid_certs(!verify);
    b.danger_accept_invalid_hostnames(cfg.sslmode != SslMode::VerifyFull);
    let read =
        |p: &str| std::fs::read(p).map_err(|e| SdkError::Config(format!("cannot read {p}: {e}")));
    // As libpq: with a root certificate given, trust only it, not the system store.
    b.disable_built_in_roots(cfg.ssl_root_cert.is_some());
    if let Some(root) = &cfg.ssl_root_cert {
        let cert = native_tls::Certificate::from_pem(&read(root)?)
            .map_err(|e| SdkError::Config(format!("ssl_root_cert {root}: {e}")))?;
        b.add_root_certificate(cert);
    }
    if let (Some(cert), Some(key)) = (&cfg.ssl_client_cert, &cfg.ssl_client_key) {
        let id = native_tls::Identity::from_pkcs8(&read(cert)?, &read(key)?)
            .map_err(|e| SdkError::Config(format!("ssl_client_cert/ssl_client_key: {e}")))?;
        b.identity(id);
    }
    let connector = b
        .build()
        .map_err(|e| SdkError::Config(format!("TLS setup: {e}")))?;
    Ok(postgres_native_tls::MakeTlsConnector::new(connector))
}
