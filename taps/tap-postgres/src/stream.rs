//! One selected stream: its columns, the SCHEMA it emits, and the encoder that turns a row of
//! text values into the JSON of a RECORD.

use serde_json::{Map, Value as Json, json};
use singer_core::CatalogEntry;
use singer_core::message::SchemaMessage;
use singer_core::sdk::SdkError;

use crate::config::NonFinite;
use crate::connect::{ident, table_ref};
use crate::discover::{Column, Table};
use crate::kind::Kind;
use crate::value::{self, Invalid};

/// Column added to log-based streams for deleted rows.
pub(crate) const DELETED_AT: &str = "_sdc_deleted_at";

/// A column that is read.
#[derive(Debug, Clone)]
pub(crate) struct PlanColumn {
    pub(crate) column: Column,
    /// `"name":`, escaped.
    key: Vec<u8>,
    invalid_count: u64,
}

/// A value of a row as the encoder sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cell<'a> {
    Null,
    Text(&'a [u8]),
    /// Left out of the record (an unchanged TOASTed value of a logical update).
    Absent,
}

/// What is synced of one table.
#[derive(Debug)]
pub(crate) struct StreamPlan {
    pub(crate) tap_stream_id: String,
    pub(crate) table: Table,
    pub(crate) columns: Vec<PlanColumn>,
    pub(crate) key_properties: Vec<String>,
    pub(crate) replication_key: Option<String>,
    pub(crate) log_based: bool,
    policy: NonFinite,
}

impl StreamPlan {
    /// Plans a stream from its catalog entry and the table as it is now. Columns the catalog
    /// does not know (added since discovery) are read, as discovery would select them.
    pub(crate) fn new(
        entry: &CatalogEntry,
        table: Table,
        policy: NonFinite,
        log_based: bool,
    ) -> Result<Self, SdkError> {
        let id = entry.tap_stream_id.clone();
        let names: Vec<&str> = table.columns.iter().map(|c| c.name.as_str()).collect();
        let missing = entry.selected_properties_missing(&names);
        if !missing.is_empty() {
            tracing::warn!(stream = %id, "selected columns no longer exist in the table: {missing:?}");
        }
        let key_properties = if table.primary_key.is_empty() {
            entry.key_properties()
        } else {
            table.primary_key.clone()
        };
        let mut columns: Vec<PlanColumn> = Vec::new();
        for c in &table.columns {
            if !entry.reads_column(&c.name, &key_properties) {
                continue;
            }
            if let Kind::Unsupported(why) = &c.kind {
                tracing::warn!(stream = %id, column = %c.name, "not read: {why}");
                continue;
            }
            let mut key = Vec::new();
            value::write_str(&mut key, &c.name);
            key.push(b':');
            columns.push(PlanColumn {
                column: c.clone(),
                key,
                invalid_count: 0,
            });
        }
        if columns.is_empty() {
            return Err(SdkError::Config(format!(
                "stream `{id}` has no readable selected columns"
            )));
        }
        Ok(Self {
            tap_stream_id: id,
            table,
            columns,
            key_properties,
            replication_key: entry.replication_key().map(str::to_string),
            log_based,
            policy,
        })
    }

    /// How NaN and infinities are handled.
    pub(crate) fn policy(&self) -> NonFinite {
        self.policy
    }

    /// The SCHEMA message of the stream.
    pub(crate) fn schema_message(&self) -> SchemaMessage {
        let mut props = Map::new();
        for c in &self.columns {
            let key = self.key_properties.contains(&c.column.name);
            props.insert(c.column.name.clone(), c.column.json_schema(key));
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

    /// `"schema"."table"`.
    pub(crate) fn table_ref(&self) -> String {
        table_ref(&self.table.schema, &self.table.name)
    }

    /// The column list of a SELECT.
    pub(crate) fn select_list(&self) -> String {
        self.columns
            .iter()
            .map(|c| ident(&c.column.name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Index (in `columns`) of a column by name.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.column.name == name)
    }

    /// Encodes one row as a JSON object into `out` (cleared first). `get(i)` is the value of
    /// `columns[i]`; `extra` is appended verbatim (e.g. `,"_sdc_deleted_at":"..."`).
    pub(crate) fn encode<'v>(
        &mut self,
        out: &mut Vec<u8>,
        get: impl Fn(usize) -> Cell<'v>,
        extra: &[u8],
    ) -> Result<(), SdkError> {
        out.clear();
        out.push(b'{');
        let mut first = true;
        for i in 0..self.columns.len() {
            let cell = get(i);
            if matches!(cell, Cell::Absent) {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&self.columns[i].key);
            let Cell::Text(text) = cell else {
                out.extend_from_slice(b"null");
                continue;
            };
            let mark = out.len();
            if let Err(why) = value::write_json(out, &self.columns[i].column.kind, text) {
                out.truncate(mark);
                self.on_invalid(i, why, &get)?;
                out.extend_from_slice(b"null");
            }
        }
        if !extra.is_empty() {
            out.extend_from_slice(if first { &extra[1..] } else { extra });
        }
        out.push(b'}');
        Ok(())
    }

    fn on_invalid<'v>(
        &mut self,
        i: usize,
        why: Invalid,
        get: &impl Fn(usize) -> Cell<'v>,
    ) -> Result<(), SdkError> {
        let key = self.describe_key(get);
        let col = &mut self.columns[i];
        let (what, tolerable) = match why {
            Invalid::NonFinite(v) => (format!("{v} has no JSON number form"), true),
            Invalid::Malformed(m) => (m, false),
        };
        let msg = format!(
            "stream `{}` column `{}` ({}) row {key}: {what}",
            self.tap_stream_id, col.column.name, col.column.declared
        );
        if !tolerable || self.policy == NonFinite::Error {
            let hint = if tolerable {
                "set nonfinite_numbers to `null` to emit such values as null"
            } else {
                "please report this value"
            };
            return Err(SdkError::fatal(msg, std::io::Error::other(hint)));
        }
        col.invalid_count += 1;
        if col.invalid_count == 1 {
            tracing::warn!(
                "{msg}; emitted as null (nonfinite_numbers = null); further ones are counted"
            );
        }
        Ok(())
    }

    fn describe_key<'v>(&self, get: &impl Fn(usize) -> Cell<'v>) -> String {
        let parts: Vec<String> = self
            .key_properties
            .iter()
            .filter_map(|k| {
                let i = self.position(k)?;
                let v = match get(i) {
                    Cell::Text(t) => String::from_utf8_lossy(t).into_owned(),
                    _ => "null".into(),
                };
                Some(format!("{k}={v}"))
            })
            .collect();
        if parts.is_empty() {
            "(no key)".into()
        } else {
            parts.join(", ")
        }
    }

    /// Logs how many values of each column were emitted as null.
    pub(crate) fn report_invalid(&self) {
        for c in &self.columns {
            if c.invalid_count > 0 {
                tracing::warn!(
                    stream = %self.tap_stream_id, column = %c.column.name, count = c.invalid_count,
                    "NaN or infinite values were emitted as null"
                );
            }
        }
    }

    /// The JSON of the value of `columns[i]` given as text (for bookmarks).
    pub(crate) fn value_json(&self, i: usize, text: &[u8]) -> Json {
        let mut out = Vec::new();
        match value::write_json(&mut out, &self.columns[i].column.kind, text) {
            Ok(()) => serde_json::from_slice(&out).unwrap_or(Json::Null),
            Err(_) => Json::String(String::from_utf8_lossy(text).into_owned()),
        }
    }
}
