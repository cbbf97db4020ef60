//! Connections: options from the config, session statements, and what the server is.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{ClientIdentity, Conn, Opts, OptsBuilder, SslOpts};
use singer_core::sdk::SdkError;

use crate::config::{Config, Engine};

/// How to reach the server; cheap to clone, never prints the password.
#[derive(Clone)]
pub(crate) struct Connector {
    opts: Opts,
    session_sqls: Vec<String>,
    timeout: Duration,
    target: String,
}

impl Connector {
    pub(crate) fn new(config: &Config) -> Result<Self, SdkError> {
        let mut b = OptsBuilder::default()
            .ip_or_hostname(config.host.clone())
            .tcp_port(config.port)
            .user(Some(config.user.clone()))
            .pass(config.password.as_ref().map(|p| p.expose().to_string()))
            .db_name(config.database.clone())
            .prefer_socket(false)
            .stmt_cache_size(64);
        if config.ssl || config.ssl_ca.is_some() || config.ssl_client_identity.is_some() {
            let mut ssl = SslOpts::default()
                .with_danger_skip_domain_validation(!config.check_hostname)
                .with_danger_accept_invalid_certs(!config.ssl_verify);
            if let Some(ca) = &config.ssl_ca {
                ssl = ssl
                    .with_root_certs(vec![std::path::PathBuf::from(ca).into()])
                    .with_disable_built_in_roots(true);
            }
            if let Some(id) = &config.ssl_client_identity {
                let mut ident = ClientIdentity::new(std::path::PathBuf::from(id).into());
                if let Some(p) = &config.ssl_client_identity_password {
                    ident = ident.with_password(p.expose().to_string());
                }
                ssl = ssl.with_client_identity(Some(ident));
            }
            b = b.ssl_opts(ssl);
        }
        Ok(Self {
            opts: Opts::from(b),
            session_sqls: config.session_sqls(),
            timeout: Duration::from_secs(config.connect_timeout.max(1)),
            target: format!("{}@{}:{}", config.user, config.host, config.port),
        })
    }

    /// Opens a connection and runs the session statements.
    pub(crate) async fn connect(&self) -> Result<Conn, SdkError> {
        let what = format!("cannot connect to MySQL as {}", self.target);
        let mut conn = tokio::time::timeout(self.timeout, Conn::new(self.opts.clone()))
            .await
            .map_err(|_| SdkError::fatal(what.clone(), std::io::Error::other("timed out")))?
            .map_err(|e| SdkError::fatal(what, e))?;
        for sql in &self.session_sqls {
            conn.query_drop(sql)
                .await
                .map_err(|e| SdkError::fatal(format!("session statement `{sql}` failed"), e))?;
        }
        Ok(conn)
    }
}

/// What the server is.
#[derive(Debug, Clone)]
pub(crate) struct ServerInfo {
    pub(crate) engine: Engine,
    pub(crate) version: String,
}

pub(crate) async fn server_info(
    conn: &mut Conn,
    configured: Option<Engine>,
) -> Result<ServerInfo, SdkError> {
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(|e| SdkError::fatal("SELECT VERSION() failed", e))?;
    let version = version.unwrap_or_default();
    let engine = configured.unwrap_or(if version.to_ascii_lowercase().contains("mariadb") {
        Engine::Mariadb
    } else {
        Engine::Mysql
    });
    Ok(ServerInfo { engine, version })
}

/// Reads one server variable as text.
pub(crate) async fn variable(conn: &mut Conn, name: &str) -> Result<Option<String>, SdkError> {
    let row: Option<(String, Option<String>)> = conn
        .exec_first("SHOW GLOBAL VARIABLES WHERE Variable_name = ?", (name,))
        .await
        .map_err(|e| SdkError::fatal(format!("cannot read server variable {name}"), e))?;
    Ok(row.and_then(|(_, v)| v))
}
