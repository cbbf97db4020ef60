//! Settings of target-postgres.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use singer_core::Secret;

use crate::encode::NulPolicy;

/// TLS mode, as libpq names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, without verification (libpq's default).
    #[default]
    Prefer,
    /// TLS required, server certificate not verified.
    Require,
    /// TLS required, certificate verified against `ssl_root_cert`.
    VerifyCa,
    /// As verify-ca, and the host name must match the certificate.
    VerifyFull,
}

/// Where a source schema's streams land.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SchemaMapping {
    /// Target schema for streams named `<source schema>-<table>`.
    pub target_schema: String,
}

/// target-postgres settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Server host name or address.
    #[serde(default = "default_host")]
    pub host: String,
    /// Server port.
    #[serde(default = "default_port")]
    pub port: u16,
    /// User name.
    #[serde(default = "default_user")]
    pub user: String,
    /// Password (never logged).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub password: Option<Secret>,
    /// Database name (`dbname` is accepted too).
    #[serde(default = "default_database", alias = "dbname")]
    pub database: String,
    /// Schema for streams without a schema prefix and not in `schema_mapping`; when unset,
    /// a stream `<schema>-<table>` loads into `<schema>`, others into `public`.
    #[serde(default)]
    pub default_target_schema: Option<String>,
    /// Per source schema (the part of a stream name before the first `-`), the target schema.
    #[serde(default)]
    pub schema_mapping: BTreeMap<String, SchemaMapping>,
    /// TLS mode: disable, prefer, require, verify-ca, verify-full.
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of the certificate authority (verify-ca, verify-full).
    #[serde(default)]
    pub ssl_root_cert: Option<String>,
    /// PEM file of the client certificate.
    #[serde(default)]
    pub ssl_client_cert: Option<String>,
    /// PEM file of the client key (PKCS#8).
    #[serde(default)]
    pub ssl_client_key: Option<String>,
    /// Rows per batch (one transaction each).
    #[serde(default = "default_rows")]
    pub batch_size_rows: usize,
    /// Bytes of encoded rows a stream buffers before its batch is loaded.
    #[serde(default = "default_bytes")]
    pub batch_size_bytes: usize,
    /// A record waits at most this many seconds before its batch is loaded.
    #[serde(default = "default_age")]
    pub max_batch_age_seconds: f64,
    /// Connections each stream loads a large batch over, in parallel (1 to 16). Rows are split
    /// by a hash of their key, so all changes to one key stay on one connection, in order; a
    /// batch commits on every connection or on none. Unset: keyed streams merge over 2
    /// connections while the run holds fewer than 2 extra ones in all, and append-only streams
    /// load over 1.
    #[serde(default)]
    pub stream_connections: Option<usize>,
    /// Compress the full-page images in the WAL that this target's writes cause (lz4), when
    /// the server supports it, has it off, and lets this role set it for its session.
    #[serde(default = "default_true")]
    pub compress_wal: bool,
    /// Leave a keyed row as it is when a record brings the values it already has (compared on
    /// every column the record sets but `_sdc_extracted_at`, `_sdc_received_at`,
    /// `_sdc_batched_at`, `_sdc_sequence` and, while a versioned pass records the keys it sent
    /// in `_singer_sent_<table>` for ACTIVATE_VERSION, `_sdc_table_version`), so records that
    /// bring nothing new write almost nothing; a row's `_sdc_*` columns then tell the load
    /// that last changed it. false rewrites every row the records name.
    #[serde(default = "default_true")]
    pub skip_unchanged_rows: bool,
    /// Retries of a batch, schema change or ACTIVATE_VERSION after a retriable database error
    /// (connection lost, server shutting down or restarting, serialization failure, deadlock),
    /// each after reconnecting; 0 fails at once. The first connection is never retried.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Seconds before the first retry; each further retry waits twice as long, up to 30 s.
    #[serde(default = "default_retry_backoff")]
    pub retry_backoff_seconds: f64,
    /// After SIGTERM or SIGINT, seconds the target may take to commit what it read before it
    /// exits non-zero without it.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_seconds: f64,
    /// Delete rows instead of setting `_sdc_deleted_at` (ACTIVATE_VERSION and log-based deletes).
    #[serde(default)]
    pub hard_delete: bool,
    /// Add `_sdc_extracted_at`, `_sdc_received_at`, `_sdc_batched_at`, `_sdc_deleted_at`,
    /// `_sdc_sequence` (`_sdc_table_version` is always kept: ACTIVATE_VERSION needs it).
    #[serde(default = "default_true")]
    pub add_record_metadata: bool,
    /// Validate records against their JSON Schema before loading.
    #[serde(default)]
    pub validate_records: bool,
    /// What to do with NUL characters in text and JSON: replace (with U+FFFD), strip, reject.
    #[serde(default)]
    pub nul_character_policy: NulPolicy,
}

fn default_host() -> String {
    "localhost".into()
}
fn default_port() -> u16 {
    5432
}
fn default_user() -> String {
    "postgres".into()
}
fn default_database() -> String {
    "postgres".into()
}
fn default_rows() -> usize {
    100_000
}
fn default_bytes() -> usize {
    8 * 1024 * 1024
}
/// Extra connections that streams without a `stream_connections` setting share.
pub const AUTO_EXTRA_CONNECTIONS: usize = 2;
fn default_age() -> f64 {
    30.0
}
fn default_max_retries() -> u32 {
    8
}
fn default_retry_backoff() -> f64 {
    1.0
}
fn default_drain_timeout() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}

impl Config {
    /// The schema and table a stream loads into.
    pub fn route(&self, stream: &str) -> (String, String) {
        let (prefix, table) = match stream.split_once('-') {
            Some((s, t)) if !s.is_empty() && !t.is_empty() => (Some(s), t),
            _ => (None, stream),
        };
        if let Some(m) = prefix.and_then(|p| self.schema_mapping.get(p)) {
            return (m.target_schema.clone(), table.to_string());
        }
        match (&self.default_target_schema, prefix) {
            (Some(s), _) => (s.clone(), table.to_string()),
            (None, Some(p)) => (p.to_string(), table.to_string()),
            (None, None) => ("public".to_string(), stream.to_string()),
        }
    }
}
