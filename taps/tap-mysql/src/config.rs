//! Settings of tap-mysql. Key names follow pipelinewise-tap-mysql and singer-io's tap-mysql, so
//! their config files work unchanged; unknown keys are rejected.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use singer_core::Secret;
use singer_core::batch::BatchConfig;
use singer_core::sdk::config::{flex_bool, flex_port, flex_u64};

/// Session statements run on every connection unless `session_sqls` replaces them.
pub(crate) const DEFAULT_SESSION_SQLS: &[&str] = &[
    "SET time_zone = '+00:00'",
    "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
    "SET NAMES utf8mb4",
    "SET SESSION net_write_timeout = 3600",
    "SET SESSION net_read_timeout = 3600",
    "SET SESSION wait_timeout = 28800",
    "SET SESSION innodb_lock_wait_timeout = 3600",
];

/// Settings of tap-mysql.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Server host name or address.
    pub(crate) host: String,
    /// Server port.
    #[serde(default = "default_port", deserialize_with = "flex_port")]
    #[schemars(with = "u16")]
    pub(crate) port: u16,
    /// User name.
    pub(crate) user: String,
    /// Password (never logged).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) password: Option<Secret>,
    /// Database to connect to (optional; also limits discovery when `filter_dbs` is absent).
    #[serde(default)]
    pub(crate) database: Option<String>,
    /// Comma-separated databases to discover (default: every non-system database).
    #[serde(default)]
    pub(crate) filter_dbs: Option<String>,
    /// Comma-separated tables to discover (names without database).
    #[serde(default)]
    pub(crate) tables: Option<String>,
    /// Statements run on every new connection; replaces the defaults (UTC, safe sql_mode).
    #[serde(default)]
    pub(crate) session_sqls: Option<Vec<String>>,
    /// Use TLS.
    #[serde(default, deserialize_with = "flex_bool")]
    #[schemars(with = "bool")]
    pub(crate) ssl: bool,
    /// PEM file of the certificate authority to trust (implies `ssl`).
    #[serde(default)]
    pub(crate) ssl_ca: Option<String>,
    /// PKCS#12 client identity archive (native TLS; see README).
    #[serde(default)]
    pub(crate) ssl_client_identity: Option<String>,
    /// Password of the client identity archive (never logged).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub(crate) ssl_client_identity_password: Option<Secret>,
    /// Verify the server certificate's host name (default true).
    #[serde(default = "default_true", deserialize_with = "flex_bool")]
    #[schemars(with = "bool")]
    pub(crate) check_hostname: bool,
    /// Verify the server certificate at all (default true); PipelineWise's `verify_mode`.
    #[serde(
        default = "default_true",
        deserialize_with = "flex_bool",
        alias = "verify_mode"
    )]
    #[schemars(with = "bool")]
    pub(crate) ssl_verify: bool,
    /// Replication client id for LOG_BASED (default: a value derived from the process).
    #[serde(default, deserialize_with = "flex_opt_u32")]
    #[schemars(with = "Option<u32>")]
    pub(crate) server_id: Option<u32>,
    /// Keep and resume binlog positions as GTIDs.
    #[serde(default, deserialize_with = "flex_bool")]
    #[schemars(with = "bool")]
    pub(crate) use_gtid: bool,
    /// `mysql` or `mariadb`; detected from the server version when absent.
    #[serde(default)]
    pub(crate) engine: Option<Engine>,
    /// What to do with a value that has no faithful JSON form (zero dates, `2022-11-00`,
    /// a TINYINT(1) holding 127): `null` (default; counted and warned) or `error`.
    #[serde(default)]
    pub(crate) invalid_values: InvalidValuePolicy,
    /// Emit TINYINT(1) as boolean (MySQL convention; default true). When false it is an integer.
    #[serde(default = "default_true", deserialize_with = "flex_bool")]
    #[schemars(with = "bool")]
    pub(crate) tinyint1_as_boolean: bool,
    /// Emit a STATE message every this many rows (default 10000).
    #[serde(default = "default_state_every", deserialize_with = "flex_u64")]
    #[schemars(with = "u64")]
    pub(crate) state_every_rows: u64,
    /// Write FULL_TABLE copies and LOG_BASED initial snapshots into BATCH files (JSONL or
    /// Parquet) instead of RECORD messages, in the Meltano SDK's shape: `{"encoding":
    /// {"format", "compression"}, "storage": {"root", "prefix"}, "batch_size"}`. A STATE follows
    /// each file. INCREMENTAL streams and binlog changes are still RECORDs.
    #[serde(default, deserialize_with = "crate::batch::parse_config")]
    #[schemars(with = "Option<crate::batch::BatchConfigSchema>")]
    pub(crate) batch_config: Option<BatchConfig>,
    /// Keep following the binlog after the position captured at start (LOG_BASED only).
    #[serde(default, deserialize_with = "flex_bool")]
    #[schemars(with = "bool")]
    pub(crate) continuous: bool,
    /// Seconds to wait for a connection.
    #[serde(default = "default_connect_timeout", deserialize_with = "flex_u64")]
    #[schemars(with = "u64")]
    pub(crate) connect_timeout: u64,
    /// PipelineWise compatibility: rows per fetch (ignored; rows are streamed).
    #[serde(default)]
    #[schemars(skip)]
    #[allow(dead_code)]
    pub(crate) export_batch_rows: Option<serde_json::Value>,
    /// PipelineWise compatibility: the Python cursor class (ignored).
    #[serde(default)]
    #[schemars(skip)]
    #[allow(dead_code)]
    pub(crate) cursorclass: Option<serde_json::Value>,
    /// singer-io compatibility (ignored: stream ids always include the database).
    #[serde(default)]
    #[schemars(skip)]
    #[allow(dead_code)]
    pub(crate) include_schemas_in_destination_stream_name: Option<serde_json::Value>,
}

/// The server family; they differ in GTID format and binlog commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Engine {
    /// Oracle MySQL.
    Mysql,
    /// MariaDB.
    Mariadb,
}

/// How values without a faithful JSON form are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InvalidValuePolicy {
    /// Emit null, count it, and warn once per column with the count.
    #[default]
    Null,
    /// Fail the run, naming the stream, column and row key.
    Error,
}

impl Config {
    /// The session statements to run on each connection.
    pub(crate) fn session_sqls(&self) -> Vec<String> {
        match &self.session_sqls {
            Some(s) => s.clone(),
            None => DEFAULT_SESSION_SQLS.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Databases to discover, if limited.
    pub(crate) fn databases(&self) -> Option<Vec<String>> {
        let list = self.filter_dbs.as_deref().or(self.database.as_deref())?;
        Some(split_list(list))
    }

    /// Tables to discover, if limited.
    pub(crate) fn table_filter(&self) -> Option<Vec<String>> {
        self.tables.as_deref().map(split_list)
    }
}

fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn default_port() -> u16 {
    3306
}
fn default_true() -> bool {
    true
}
fn default_state_every() -> u64 {
    10_000
}
fn default_connect_timeout() -> u64 {
    30
}

/// A replication client id: a number or a numeric string that fits in 32 bits.
fn flex_opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let n = flex_u64(d)?;
    u32::try_from(n)
        .map(Some)
        .map_err(|_| serde::de::Error::custom("server_id must fit in 32 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: serde_json::Value) -> Result<Config, String> {
        serde_json::from_value(v).map_err(|e| e.to_string())
    }

    #[test]
    fn pipelinewise_config_is_accepted() {
        let c = parse(serde_json::json!({
            "host": "127.0.0.1", "port": "3306", "user": "root", "password": "pw",
            "filter_dbs": "a, b", "ssl": "false", "use_gtid": "true", "engine": "mariadb",
            "server_id": "42", "export_batch_rows": 50000, "cursorclass": "SSCursor"
        }))
        .unwrap();
        assert_eq!(c.port, 3306);
        assert_eq!(c.databases().unwrap(), vec!["a", "b"]);
        assert!(c.use_gtid && !c.ssl);
        assert_eq!(c.server_id, Some(42));
        assert_eq!(c.engine, Some(Engine::Mariadb));
    }

    #[test]
    fn batch_config_is_checked_naming_the_setting() {
        let base = serde_json::json!({"host": "h", "user": "u"});
        let mut ok = base.clone();
        ok["batch_config"] = serde_json::json!({
            "encoding": {"format": "parquet"}, "storage": {"root": "file:///tmp/b"}, "batch_size": 5
        });
        let c = parse(ok).unwrap();
        assert_eq!(c.batch_config.unwrap().rows_per_file, 5);
        for (bad, says) in [
            (
                serde_json::json!({"encoding": {"format": "csv"}, "storage": {"root": "/t"}}),
                "batch_config.encoding.format",
            ),
            (
                serde_json::json!({"encoding": {"format": "jsonl"}, "storage": {"root": "gs://x"}}),
                "batch_config.storage.root",
            ),
            (
                serde_json::json!({"encoding": {"format": "jsonl"}}),
                "batch_config",
            ),
        ] {
            let mut cfg = base.clone();
            cfg["batch_config"] = bad;
            let err = parse(cfg).unwrap_err();
            assert!(err.contains(says), "{err}");
        }
        assert!(parse(base).unwrap().batch_config.is_none());
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse(serde_json::json!({"host": "h", "user": "u", "colour": 1})).unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }
}
