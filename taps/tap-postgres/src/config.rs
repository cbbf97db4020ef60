//! Settings of tap-postgres. Key names follow pipelinewise-tap-postgres and
//! meltanolabs-tap-postgres, so their config files work unchanged; unknown keys are rejected.

use schemars::JsonSchema;
use serde::Deserialize;
use singer_core::Secret;
use singer_core::sdk::config::{
    flex_bool, flex_list, flex_opt_bool, flex_opt_u64, flex_port, flex_u64,
};

/// Settings of tap-postgres.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Server host name or address.
    #[serde(default = "default_host")]
    pub(crate) host: String,
    /// Server port.
    #[serde(default = "default_port", deserialize_with = "flex_port")]
    #[schemars(with = "u16")]
    pub(crate) port: u16,
    /// User name (LOG_BASED needs the REPLICATION attribute or a superuser).
    #[serde(default = "default_user", alias = "username")]
    pub(crate) user: String,
    /// Password (never logged).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) password: Option<Secret>,
    /// Database to read (`database` is accepted too; required unless `sqlalchemy_url` names
    /// it).
    #[serde(default, alias = "database")]
    pub(crate) dbname: String,
    /// meltanolabs-tap-postgres: `postgresql://user:password@host:port/dbname`; its parts fill
    /// the settings above (never logged).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) sqlalchemy_url: Option<Secret>,
    /// Comma-separated schemas to discover (default: every schema but the system ones).
    #[serde(default, deserialize_with = "flex_list")]
    #[schemars(with = "Option<String>")]
    pub(crate) filter_schemas: Option<Vec<String>>,
    /// Comma-separated tables to discover (`table` or `schema.table`).
    #[serde(default, deserialize_with = "flex_list")]
    #[schemars(with = "Option<String>")]
    pub(crate) filter_tables: Option<Vec<String>>,
    /// TLS: `disable`, `prefer`, `require`, `verify-ca` or `verify-full` (`ssl: true` means
    /// `require`).
    #[serde(default, alias = "ssl_mode")]
    pub(crate) sslmode: Option<SslMode>,
    /// PipelineWise's switch for TLS (`require`).
    #[serde(default, deserialize_with = "flex_bool", alias = "ssl_enable")]
    #[schemars(with = "bool")]
    pub(crate) ssl: bool,
    /// PEM file of the certificate authority (verify-ca, verify-full).
    #[serde(default, alias = "ssl_certificate_authority")]
    pub(crate) ssl_root_cert: Option<String>,
    /// Replication slot of LOG_BASED streams (default `singer_<dbname>`, or
    /// `singer_<dbname>_<tap_id>` with `tap_id`).
    #[serde(default, alias = "replication_slot_name")]
    pub(crate) slot_name: Option<String>,
    /// Publication of LOG_BASED streams (default: the slot name).
    #[serde(default)]
    pub(crate) publication_name: Option<String>,
    /// PipelineWise: distinguishes slots of several taps reading one database.
    #[serde(default)]
    pub(crate) tap_id: Option<String>,
    /// Keep following the WAL after the position captured at start (LOG_BASED only). The
    /// default stops at the WAL position taken when the run started.
    #[serde(default, deserialize_with = "flex_bool")]
    #[schemars(with = "bool")]
    pub(crate) continuous: bool,
    /// PipelineWise: `false` keeps streaming past the start position, like `continuous`.
    #[serde(default, deserialize_with = "flex_opt_bool")]
    #[schemars(with = "Option<bool>")]
    pub(crate) break_at_end_lsn: Option<bool>,
    /// Stop a `continuous` run after this many seconds (PipelineWise's `max_run_seconds`).
    #[serde(default, deserialize_with = "flex_opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub(crate) max_run_seconds: Option<u64>,
    /// Stop after this many seconds without a change (PipelineWise's
    /// `logical_poll_total_seconds`; default: never when continuous).
    #[serde(default, deserialize_with = "flex_opt_u64")]
    #[schemars(with = "Option<u64>")]
    pub(crate) logical_poll_total_seconds: Option<u64>,
    /// Replication method of streams whose catalog sets none (default FULL_TABLE).
    #[serde(default)]
    pub(crate) default_replication_method: Option<String>,
    /// What to do with numeric or float `NaN`/`Infinity`, which JSON numbers cannot hold:
    /// `error` (default: fail naming stream, column and row) or `null` (emit null, counted
    /// and warned per column).
    #[serde(default)]
    pub(crate) nonfinite_numbers: NonFinite,
    /// Emit a STATE message every this many rows (default 10000).
    #[serde(default = "default_state_every", deserialize_with = "flex_u64")]
    #[schemars(with = "u64")]
    pub(crate) state_every_rows: u64,
    /// Seconds to wait for a connection.
    #[serde(default = "default_connect_timeout", deserialize_with = "flex_u64")]
    #[schemars(with = "u64")]
    pub(crate) connect_timeout: u64,
    /// PipelineWise compatibility: rows per fetch (ignored: rows are streamed).
    #[serde(default)]
    #[schemars(skip)]
    #[allow(dead_code)]
    pub(crate) itersize: Option<serde_json::Value>,
    /// PipelineWise compatibility (ignored).
    #[serde(default)]
    #[schemars(skip)]
    #[allow(dead_code)]
    pub(crate) debug_lsn: Option<serde_json::Value>,
    /// PipelineWise compatibility (ignored: reads go to `host`).
    #[serde(default)]
    #[schemars(skip)]
    #[allow(dead_code)]
    pub(crate) use_secondary: Option<serde_json::Value>,
}

/// TLS mode, as libpq names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, without verification.
    Prefer,
    /// TLS required, certificate not verified.
    Require,
    /// TLS required, certificate verified against `ssl_root_cert`.
    VerifyCa,
    /// As verify-ca, and the host name must match.
    VerifyFull,
}

/// How `NaN` and `±Infinity` are emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum NonFinite {
    /// Fail the run, naming the stream, column and row key.
    #[default]
    Error,
    /// Emit null, count it, and warn once per column with the count.
    Null,
}

impl Config {
    /// Applies `sqlalchemy_url` and checks that a database is named.
    pub(crate) fn resolve(mut self) -> Result<Self, String> {
        if let Some(url) = self.sqlalchemy_url.take() {
            let u = parse_url(url.expose())?;
            self.host = u.host;
            self.port = u.port.unwrap_or(self.port);
            if let Some(user) = u.user {
                self.user = user;
            }
            if let Some(p) = u.password {
                self.password = Some(Secret::new(p));
            }
            if let Some(db) = u.dbname {
                self.dbname = db;
            }
        }
        if self.dbname.is_empty() {
            return Err(
                "`dbname` (or `database`, or a database in `sqlalchemy_url`) is required".into(),
            );
        }
        Ok(self)
    }

    /// The TLS mode in force.
    pub(crate) fn ssl_mode(&self) -> SslMode {
        match self.sslmode {
            Some(m) => m,
            None if self.ssl => SslMode::Require,
            None => SslMode::Disable,
        }
    }

    /// The replication slot name.
    pub(crate) fn slot(&self) -> String {
        let base = match (&self.slot_name, &self.tap_id) {
            (Some(s), _) => return s.clone(),
            (None, Some(id)) => format!("singer_{}_{id}", self.dbname),
            (None, None) => format!("singer_{}", self.dbname),
        };
        // Slot names allow lower-case letters, digits and underscores only.
        base.chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_alphanumeric() { c } else { '_' }
            })
            .take(63)
            .collect()
    }

    /// The publication name.
    pub(crate) fn publication(&self) -> String {
        self.publication_name.clone().unwrap_or_else(|| self.slot())
    }

    /// Whether LOG_BASED keeps streaming past the start position.
    pub(crate) fn is_continuous(&self) -> bool {
        self.continuous || self.break_at_end_lsn == Some(false)
    }
}

/// The parts of a `postgresql://` URL.
struct UrlParts {
    host: String,
    port: Option<u16>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
}

/// Parses `postgresql[+driver]://[user[:password]@]host[:port][/dbname][?options]`. Errors
/// never repeat the URL, which holds the password.
fn parse_url(url: &str) -> Result<UrlParts, String> {
    let bad = |what: &str| format!("sqlalchemy_url: {what}");
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("expected scheme://..."))?;
    if !scheme.starts_with("postgres") {
        return Err(bad("the scheme must be postgresql"));
    }
    let rest = rest.split('?').next().unwrap_or(rest);
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (user, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((n, p)) => (Some(decode(n)?), Some(decode(p)?)),
            None => (Some(decode(u)?), None),
        },
        None => (None, None),
    };
    // `[::1]:5432` or `host:5432`.
    let (host, port) = match hostport.strip_prefix('[') {
        Some(v6) => {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("an unclosed ["))?;
            (h, after.strip_prefix(':'))
        }
        None => match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        },
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| bad("the port is not a number"))
        })
        .transpose()?;
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok(UrlParts {
        host: decode(host)?,
        port,
        user,
        password,
        dbname: (!path.is_empty()).then(|| decode(path)).transpose()?,
    })
}

/// Percent-decoding.
fn decode(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or("sqlalchemy_url: a bad % escape")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "sqlalchemy_url: a bad % escape")?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "sqlalchemy_url: not UTF-8 once decoded".into())
}

fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_port() -> u16 {
    5432
}
fn default_user() -> String {
    "postgres".into()
}
fn default_state_every() -> u64 {
    10_000
}
fn default_connect_timeout() -> u64 {
    30
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(v: serde_json::Value) -> Result<Config, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn pipelinewise_config_is_accepted() {
        let c = parse(serde_json::json!({
            "host": "127.0.0.1", "port": "5432", "user": "u", "password": "pw",
            "dbname": "shop", "filter_schemas": "public, sales", "ssl": "false",
            "logical_poll_total_seconds": 10, "break_at_end_lsn": true, "tap_id": "a",
            "itersize": 20000, "max_run_seconds": "43200", "debug_lsn": "false"
        }))
        .unwrap();
        assert_eq!(c.filter_schemas.clone().unwrap(), vec!["public", "sales"]);
        assert_eq!(c.ssl_mode(), SslMode::Disable);
        assert_eq!(c.slot(), "singer_shop_a");
        assert!(!c.is_continuous());
    }

    #[test]
    fn meltanolabs_config_is_accepted() {
        let c = parse(serde_json::json!({
            "host": "h", "port": 5432, "user": "u", "database": "Shop-DB",
            "filter_schemas": ["public"], "ssl_enable": true, "replication_slot_name": "s1"
        }))
        .unwrap();
        assert_eq!(c.dbname, "Shop-DB");
        assert_eq!(c.ssl_mode(), SslMode::Require);
        assert_eq!(c.slot(), "s1");
        let d = parse(serde_json::json!({"database": "Shop-DB"})).unwrap();
        assert_eq!(d.slot(), "singer_shop_db");
    }

    #[test]
    fn a_sqlalchemy_url_fills_the_connection_settings() {
        let c = parse(serde_json::json!({
            "sqlalchemy_url": "postgresql+psycopg2://us%40er:p%3Ass@db.example:6543/shop?sslmode=require"
        }))
        .unwrap()
        .resolve()
        .unwrap();
        assert_eq!((c.host.as_str(), c.port), ("db.example", 6543));
        assert_eq!(c.user, "us@er");
        assert_eq!(c.password.unwrap().expose(), "p:ss");
        assert_eq!(c.dbname, "shop");
        let e = parse(serde_json::json!({"sqlalchemy_url": "mysql://secret@h/d"}))
            .unwrap()
            .resolve()
            .unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert!(parse(serde_json::json!({})).unwrap().resolve().is_err());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse(serde_json::json!({"dbname": "d", "colour": 1})).unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }
}
