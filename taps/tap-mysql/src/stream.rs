//! One selected stream: its live columns, the SCHEMA it emits, and the encoder that turns a
//! row into the JSON of a RECORD.

use mysql_async::Value;
use serde_json::{Map, Value as Json, json};
use singer_core::CatalogEntry;
use singer_core::message::SchemaMessage;
use singer_core::sdk::SdkError;

use crate::column::{ColumnInfo, Kind, KindOptions};
use crate::config::InvalidValuePolicy;
use crate::discover::Table;
use crate::value::{self, Invalid};

/// Column added to log-based streams for deleted rows.
pub(crate) const DELETED_AT: &str = "_sdc_deleted_at";

/// A selected column, ready to encode.
#[derive(Debug, Clone)]
pub(crate) struct PlanColumn {
    pub(crate) info: ColumnInfo,
    pub(crate) kind: Kind,
    /// Position in the table (0-based), for binlog rows which carry every column.
    pub(crate) ordinal: usize,
    /// `"name":` already escaped.
    key: Vec<u8>,
    invalid_count: u64,
}

/// What is synced of one table.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub(crate) tap_stream_id: String,
    pub(crate) database: String,
    pub(crate) table: String,
    pub(crate) columns: Vec<PlanColumn>,
    pub(crate) key_properties: Vec<String>,
    pub(crate) replication_key: Option<String>,
    pub(crate) log_based: bool,
    policy: InvalidValuePolicy,
}

impl StreamPlan {
    /// Plans a stream from its catalog entry and the table as it is now. Columns selected in
    /// the catalog but gone from the table are reported; columns the catalog does not know
    /// (added since discovery) are included, as discovery would select them by default.
    pub(crate) fn new(
        entry: &CatalogEntry,
        table: &Table,
        opts: KindOptions,
        policy: InvalidValuePolicy,
        log_based: bool,
    ) -> Result<Self, SdkError> {
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let missing = entry.selected_properties_missing(&names);
        if !missing.is_empty() {
            tracing::warn!(
                stream = %entry.tap_stream_id,
                "selected columns no longer exist in the table: {missing:?}"
            );
        }
        let key_properties = if table.is_view {
            entry.key_properties()
        } else {
            table.primary_key.clone()
        };
        let mut columns = Vec::new();
        for (ordinal, c) in table.columns.iter().enumerate() {
            if !entry.reads_column(&c.name, &key_properties) {
                continue;
            }
            let kind = c.kind(opts);
            if kind == Kind::Unsupported {
                tracing::warn!(
                    stream = %entry.tap_stream_id, column = %c.name,
                    "column type `{}` is not supported; the column is not read", c.column_type
                );
                continue;
            }
            columns.push(PlanColumn::new(c.clone(), kind, ordinal));
        }
        for c in columns.iter_mut().skip(1) {
            c.key.insert(0, b',');
        }
        if columns.is_empty() {
            return Err(SdkError::Config(format!(
                "stream `{}` has no readable selected columns",
                entry.tap_stream_id
            )));
        }
        Ok(Self {
            tap_stream_id: entry.tap_stream_id.clone(),
            database: table.database.clone(),
            table: table.name.clone(),
            columns,
            key_properties,
            replication_key: entry.replication_key().map(str::to_string),
            log_based,
            policy,
        })
    }

    /// The SCHEMA message of the stream.
    pub(crate) fn schema_message(&self) -> SchemaMessage {
        let mut props = Map::new();
        for c in &self.columns {
            if let Some(s) = c.info.json_schema(&c.kind) {
                props.insert(c.info.name.clone(), s);
            }
        }
        if self.log_based {
            props.insert(
                DELETED_AT.into(),
                json!({"type": ["null", "string"], "format": "date-time"}),
            );
        }
        SchemaMessage {
            stream: self.tap_stream_id.clone(),
            schema: json!({"type": "object", "properties": props}),
            key_properties: self.key_properties.clone(),
            bookmark_properties: self.replication_key.clone().map(|k| vec![k]),
        }
    }

    /// The column list of a SELECT.
    pub(crate) fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| crate::sql::ident(&c.info.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Index (in `columns`) of a column by name.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.info.name == name)
    }

    /// Encodes one row as a JSON object into `out` (cleared first). `get(i)` returns the value
    /// of `columns[i]`; `extra` is appended verbatim (e.g. `,"_sdc_deleted_at":"..."`).
    pub(crate) fn encode<'v>(
        &mut self,
        out: &mut Vec<u8>,
        get: impl Fn(usize) -> Option<&'v Value>,
        extra: &[u8],
    ) -> Result<(), SdkError> {
        out.clear();
        out.push(b'{');
        for i in 0..self.columns.len() {
            let col = &self.columns[i];
            out.extend_from_slice(&col.key);
            let v = get(i).unwrap_or(&Value::NULL);
            let mark = out.len();
            if let Err(Invalid(why)) = value::write_json(out, &col.kind, v) {
                out.truncate(mark);
                self.on_invalid(i, &why, &get)?;
                out.extend_from_slice(b"null");
            }
        }
        out.extend_from_slice(extra);
        out.push(b'}');
        Ok(())
    }

    fn on_invalid<'v>(
        &mut self,
        i: usize,
        why: &str,
        get: &impl Fn(usize) -> Option<&'v Value>,
    ) -> Result<(), SdkError> {
        let key = self.describe_key(get);
        let col = &mut self.columns[i];
        let msg = format!(
            "stream `{}` column `{}` ({}) row {key}: {why}",
            self.tap_stream_id, col.info.name, col.info.column_type
        );
        if self.policy == InvalidValuePolicy::Error {
            return Err(SdkError::fatal(
                msg,
                std::io::Error::other("invalid_values is `error`"),
            ));
        }
        col.invalid_count += 1;
        if col.invalid_count == 1 {
            tracing::warn!(
                "{msg}; emitted as null (invalid_values = null); further ones are counted"
            );
        }
        Ok(())
    }

    fn describe_key<'v>(&self, get: &impl Fn(usize) -> Option<&'v Value>) -> String {
        let parts: Vec<String> = self
            .key_properties
            .iter()
            .filter_map(|k| {
                let i = self.position(k)?;
                let v = get(i).map(crate::sql::to_state).unwrap_or(Json::Null);
                Some(format!("{k}={v}"))
            })
            .collect();
        if parts.is_empty() {
            "(no key)".into()
        } else {
            parts.join(", ")
        }
    }

    /// Logs how many values of each column were emitted as null because they were invalid.
    pub(crate) fn report_invalid(&self) {
        for c in &self.columns {
            if c.invalid_count > 0 {
                tracing::warn!(
                    stream = %self.tap_stream_id, column = %c.info.name, count = c.invalid_count,
                    "values without a faithful JSON form were emitted as null"
                );
            }
        }
    }
}

impl PlanColumn {
    fn new(info: ColumnInfo, kind: Kind, ordinal: usize) -> Self {
        let mut key = Vec::new();
        value::write_str(&mut key, &info.name);
        key.push(b':');
        Self {
            info,
            kind,
            ordinal,
            key,
            invalid_count: 0,
        }
    }
}
