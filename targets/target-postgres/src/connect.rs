//! Connections: tokio-postgres with native TLS, session settings, classified errors.

use singer_core::sdk::SdkError;
use singer_core::{Classify, ErrorClass};
use tokio_postgres::Client;

use crate::config::{Config, SslMode};

/// A database error with its class: a lost connection, a server shutting down or starting, a
/// serialization failure and a deadlock are retriable (see [`retriable_sqlstate`]); data,
/// permission and every other error are fatal. It shows the server's message, SQLSTATE,
/// detail and context (which names the COPY line and column), never parameter values.
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
            None => match std::error::Error::source(&self.0) {
                // "error connecting to server: Connection refused (os error 111)".
                Some(cause) => write!(f, "{}: {cause}", self.0),
                None => write!(f, "{}", self.0),
            },
        }
    }
}

impl Classify for DbError {
    fn class(&self) -> ErrorClass {
        if let Some(code) = self.0.code() {
            return if retriable_sqlstate(code.code()) {
                ErrorClass::Retriable
            } else {
                ErrorClass::Fatal
            };
        }
        // No SQLSTATE: either the connection broke (closed, reset, refused, timed out) or the
        // driver refused a value, which no retry mends.
        let io = std::error::Error::source(&self.0).is_some_and(|c| c.is::<std::io::Error>());
        if self.0.is_closed() || io {
            ErrorClass::Retriable
        } else {
            ErrorClass::Fatal
        }
    }
}

/// SQLSTATEs worth a retry: connection exceptions (class 08), the server shutting down,
/// crashing or starting (57P01 admin_shutdown, what `pg_terminate_backend` sends; 57P02
/// crash_shutdown; 57P03 cannot_connect_now; 57P05 idle_session_timeout), a serialization
/// failure (40001) and a deadlock (40P01). 57P04 (database dropped) is fatal.
pub fn retriable_sqlstate(code: &str) -> bool {
    code.starts_with("08")
        || matches!(
            code,
            "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "57P05"
        )
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
        .connect_timeout(std::time::Duration::from_secs(30))
        // A peer that vanished without closing (a host or network failure) is noticed within
        // about 90 s of silence instead of the system's 2 hours, so the load can retry.
        .keepalives_idle(std::time::Duration::from_secs(60))
        .keepalives_interval(std::time::Duration::from_secs(10))
        .keepalives_retries(3);
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
    if cfg.compress_wal {
        compress_wal(&client).await;
    }
    Ok(client)
}

/// Turns on lz4 compression of the full-page images this session's writes put in the WAL,
/// when the server has it off, supports lz4, and lets this role set it (a superuser, or
/// `GRANT SET ON PARAMETER wal_compression`, PostgreSQL 15+). An upsert rewrites whole pages
/// that mostly went into the WAL as 8 KiB images: compressed, the 1M-row bench upsert wrote
/// 29% less WAL and ran 8% faster. Anything else leaves the server's setting alone.
async fn compress_wal(client: &Client) {
    let check = "SELECT current_setting('server_version_num')::int >= 150000 \
         AND setting = 'off' AND 'lz4' = ANY(enumvals) \
         AND (current_setting('is_superuser') = 'on' \
              OR has_parameter_privilege('wal_compression', 'SET')) \
         FROM pg_settings WHERE name = 'wal_compression'";
    // Older servers lack has_parameter_privilege: the query fails and nothing changes.
    let allowed = match client.query_opt(check, &[]).await {
        Ok(Some(row)) => row.get::<_, Option<bool>>(0).unwrap_or(false),
        _ => false,
    };
    if allowed {
        match client.batch_execute("SET wal_compression = lz4").await {
            Ok(()) => tracing::debug!("wal_compression = lz4 for this session"),
            Err(e) => tracing::debug!(error = %e, "wal_compression left as it is"),
        }
    }
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
