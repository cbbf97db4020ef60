//! The catalog: streams, their schemas and metadata breadcrumbs (specs/catalog.md).
//!
//! A catalog is read from `--catalog` (or the legacy `--properties`) and written by
//! `--discover`. Selection is resolved the way the ecosystem does it: `inclusion: unsupported`
//! is never selected, `automatic` always is, then an explicit `selected`, then
//! `selected-by-default`, then the parent's selection. Key properties are never deselected.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Classify, ErrorClass};
use crate::state::State;

/// A whole catalog document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    /// The streams of the catalog.
    pub streams: Vec<CatalogEntry>,
}

/// One stream of a catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    /// The unique id of the stream (bookmarks are keyed by it).
    #[serde(default)]
    pub tap_stream_id: String,
    /// The stream name used in messages.
    pub stream: String,
    /// The source table, for database taps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// The JSON Schema of the stream's records.
    pub schema: Value,
    /// Metadata breadcrumbs.
    #[serde(default)]
    pub metadata: Vec<MetadataEntry>,
    /// Legacy: key properties at top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_properties: Option<Vec<String>>,
    /// Legacy: replication key at top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_key: Option<String>,
    /// Legacy: replication method at top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_method: Option<String>,
    /// Legacy: database name at top level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_name: Option<String>,
    /// Legacy: whether the source is a view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_view: Option<bool>,
    /// Legacy: approximate row count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count: Option<Value>,
    /// Legacy: an alternative stream name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_alias: Option<String>,
}

/// `{"breadcrumb": [...], "metadata": {...}}`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataEntry {
    /// `[]` for the stream, `["properties", "<name>"]` for a top-level property.
    pub breadcrumb: Vec<String>,
    /// The metadata keys of that node.
    pub metadata: Map<String, Value>,
}

/// A catalog that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file could not be read or parsed.
    #[error("cannot read catalog {path}")]
    File {
        /// The path given.
        path: String,
        /// What went wrong.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Two streams share a tap_stream_id.
    #[error("catalog has two streams with tap_stream_id `{0}`")]
    DuplicateStream(String),
    /// A stream's schema is not an object.
    #[error("catalog stream `{0}` has a schema that is not a JSON object")]
    BadSchema(String),
}

impl Classify for CatalogError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// The replication methods of the Singer convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReplicationMethod {
    /// Read everything on every run.
    FullTable,
    /// Read rows at or after the bookmark of a replication key.
    Incremental,
    /// Read the change log (binlog, WAL).
    LogBased,
}

impl ReplicationMethod {
    /// Parses a metadata value, case-insensitively.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_uppercase().as_str() {
            "FULL_TABLE" => Some(Self::FullTable),
            "INCREMENTAL" => Some(Self::Incremental),
            "LOG_BASED" => Some(Self::LogBased),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FullTable => "FULL_TABLE",
            Self::Incremental => "INCREMENTAL",
            Self::LogBased => "LOG_BASED",
        }
    }
}

/// Field inclusion as declared by the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inclusion {
    /// Always emitted.
    Automatic,
    /// Emitted when selected.
    Available,
    /// Never emitted.
    Unsupported,
}

impl Catalog {
    /// Reads a catalog (or legacy properties) file.
    pub fn from_file(path: &Path) -> Result<Self, CatalogError> {
        let file_err = |source: Box<dyn std::error::Error + Send + Sync>| CatalogError::File {
            path: path.display().to_string(),
            source,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_err(e.into()))?;
        let catalog: Catalog = serde_json::from_str(&text).map_err(|e| file_err(e.into()))?;
        catalog.normalized()
    }

    /// Fills defaults (tap_stream_id from stream) and checks invariants.
    pub fn normalized(mut self) -> Result<Self, CatalogError> {
        let mut seen = std::collections::HashSet::new();
        for s in &mut self.streams {
            if s.tap_stream_id.is_empty() {
                s.tap_stream_id = s.stream.clone();
            }
            if !s.schema.is_object() {
                return Err(CatalogError::BadSchema(s.tap_stream_id.clone()));
            }
            if !seen.insert(s.tap_stream_id.clone()) {
                return Err(CatalogError::DuplicateStream(s.tap_stream_id.clone()));
            }
        }
        Ok(self)
    }

    /// The stream with this tap_stream_id.
    pub fn stream(&self, tap_stream_id: &str) -> Option<&CatalogEntry> {
        self.streams
            .iter()
            .find(|s| s.tap_stream_id == tap_stream_id)
    }

    /// The stream with this tap_stream_id, mutably.
    pub fn stream_mut(&mut self, tap_stream_id: &str) -> Option<&mut CatalogEntry> {
        self.streams
            .iter_mut()
            .find(|s| s.tap_stream_id == tap_stream_id)
    }

    /// The selected streams, in catalog order.
    pub fn selected_streams(&self) -> impl Iterator<Item = &CatalogEntry> {
        self.streams.iter().filter(|s| s.is_selected())
    }

    /// The selected streams in the order a sync takes them: the stream a previous run was
    /// interrupted in (the state's `currently_syncing`) first, so that it is finished before
    /// others start, then the others in catalog order.
    pub fn sync_order(&self, state: &State) -> Vec<CatalogEntry> {
        let mut entries: Vec<CatalogEntry> = self.selected_streams().cloned().collect();
        if let Some(current) = state.currently_syncing()
            && let Some(i) = entries.iter().position(|e| e.tap_stream_id == current)
        {
            entries[..=i].rotate_right(1);
        }
        entries
    }
}

fn property_breadcrumb(name: &str) -> [&str; 2] {
    ["properties", name]
}

impl CatalogEntry {
    /// A new entry with standard metadata for a discovered stream.
    pub fn new(tap_stream_id: impl Into<String>, stream: impl Into<String>, schema: Value) -> Self {
        Self {
            tap_stream_id: tap_stream_id.into(),
            stream: stream.into(),
            table_name: None,
            schema,
            metadata: Vec::new(),
            key_properties: None,
            replication_key: None,
            replication_method: None,
            database_name: None,
            is_view: None,
            row_count: None,
            stream_alias: None,
        }
    }

    /// The metadata of a breadcrumb, if present.
    pub fn metadata_at(&self, breadcrumb: &[&str]) -> Option<&Map<String, Value>> {
        self.metadata
            .iter()
            .find(|m| {
                m.breadcrumb
                    .iter()
                    .map(String::as_str)
                    .eq(breadcrumb.iter().copied())
            })
            .map(|m| &m.metadata)
    }

    /// The metadata of a breadcrumb, created if absent.
    pub fn metadata_at_mut(&mut self, breadcrumb: &[&str]) -> &mut Map<String, Value> {
        let pos = self.metadata.iter().position(|m| {
            m.breadcrumb
                .iter()
                .map(String::as_str)
                .eq(breadcrumb.iter().copied())
        });
        let idx = match pos {
            Some(i) => i,
            None => {
                self.metadata.push(MetadataEntry {
                    breadcrumb: breadcrumb.iter().map(|s| s.to_string()).collect(),
                    metadata: Map::new(),
                });
                self.metadata.len() - 1
            }
        };
        &mut self.metadata[idx].metadata
    }

    /// Stream-level metadata (breadcrumb `[]`).
    pub fn stream_metadata(&self) -> Option<&Map<String, Value>> {
        self.metadata_at(&[])
    }

    /// Sets a stream-level metadata key.
    pub fn set_stream_metadata(&mut self, key: &str, value: Value) {
        self.metadata_at_mut(&[]).insert(key.to_string(), value);
    }

    /// Sets a property-level metadata key.
    pub fn set_property_metadata(&mut self, property: &str, key: &str, value: Value) {
        self.metadata_at_mut(&property_breadcrumb(property))
            .insert(key.to_string(), value);
    }

    fn stream_meta_str(&self, key: &str) -> Option<&str> {
        self.stream_metadata()?.get(key)?.as_str()
    }

    /// Key properties: `table-key-properties`, `view-key-properties` for views, or the legacy
    /// top-level `key_properties`.
    pub fn key_properties(&self) -> Vec<String> {
        let meta = self.stream_metadata();
        let from_meta = |key: &str| -> Option<Vec<String>> {
            let list = meta?.get(key)?.as_array()?;
            Some(
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
            )
        };
        from_meta("view-key-properties")
            .filter(|k| !k.is_empty())
            .or_else(|| from_meta("table-key-properties"))
            .or_else(|| self.key_properties.clone())
            .unwrap_or_default()
    }

    /// The replication method chosen by the user, else forced by the tap, else legacy.
    pub fn replication_method(&self) -> Option<ReplicationMethod> {
        self.stream_meta_str("replication-method")
            .or_else(|| self.stream_meta_str("forced-replication-method"))
            .or(self.replication_method.as_deref())
            .and_then(ReplicationMethod::parse)
    }

    /// The replication key chosen by the user (or the legacy top-level one).
    pub fn replication_key(&self) -> Option<&str> {
        self.stream_meta_str("replication-key")
            .or(self.replication_key.as_deref())
    }

    /// The database (or schema) name of the source.
    pub fn database_name(&self) -> Option<&str> {
        self.stream_meta_str("database-name")
            .or_else(|| self.stream_meta_str("schema-name"))
            .or(self.database_name.as_deref())
    }

    /// Whether the source is a view.
    pub fn is_view(&self) -> bool {
        self.stream_metadata()
            .and_then(|m| m.get("is-view"))
            .and_then(Value::as_bool)
            .or(self.is_view)
            .unwrap_or(false)
    }

    /// Whether the stream is selected.
    pub fn is_selected(&self) -> bool {
        let legacy = self.schema.get("selected").and_then(Value::as_bool);
        resolve(self.stream_metadata(), legacy, false)
    }

    /// The inclusion of a top-level property (`available` when unspecified).
    pub fn inclusion(&self, property: &str) -> Inclusion {
        let meta = self.metadata_at(&property_breadcrumb(property));
        match meta
            .and_then(|m| m.get("inclusion"))
            .and_then(Value::as_str)
        {
            Some("automatic") => Inclusion::Automatic,
            Some("unsupported") => Inclusion::Unsupported,
            _ => Inclusion::Available,
        }
    }

    /// Whether a top-level property is selected (given the stream is).
    pub fn is_property_selected(&self, property: &str) -> bool {
        if !self.is_selected() {
            return false;
        }
        let meta = self.metadata_at(&property_breadcrumb(property));
        let inclusion = self.inclusion(property);
        if inclusion == Inclusion::Unsupported {
            return false;
        }
        if inclusion == Inclusion::Automatic || self.key_properties().iter().any(|k| k == property)
        {
            return true;
        }
        if self.replication_key() == Some(property) {
            return true;
        }
        let legacy = self
            .schema
            .get("properties")
            .and_then(|p| p.get(property))
            .and_then(|p| p.get("selected"))
            .and_then(Value::as_bool);
        resolve(meta, legacy, true)
    }

    /// The selected top-level properties, in schema order.
    pub fn selected_properties(&self) -> Vec<String> {
        let Some(Value::Object(props)) = self.schema.get("properties") else {
            return Vec::new();
        };
        props
            .keys()
            .filter(|p| self.is_property_selected(p))
            .cloned()
            .collect()
    }

    /// Whether a sync reads a column of the source as it is now: when it is a selected
    /// property, one of `key_properties` (the source's key, which may differ from the
    /// catalog's), or a column the catalog's schema does not list (added since discovery, or a
    /// catalog written without properties), which discovery would have selected by default.
    pub fn reads_column(&self, column: &str, key_properties: &[String]) -> bool {
        let listed = self
            .schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key(column));
        !listed || key_properties.iter().any(|k| k == column) || self.is_property_selected(column)
    }

    /// The selected properties that are not among the source's `columns` (gone since
    /// discovery), in schema order.
    pub fn selected_properties_missing(&self, columns: &[&str]) -> Vec<String> {
        let mut missing = self.selected_properties();
        missing.retain(|p| !columns.contains(&p.as_str()));
        missing
    }

    /// The schema restricted to the selected properties (what the tap emits in SCHEMA).
    pub fn selected_schema(&self) -> Value {
        let mut schema = self.schema.clone();
        if let Some(Value::Object(props)) = schema.get_mut("properties") {
            let keep = self.selected_properties();
            props.retain(|k, _| keep.iter().any(|s| s == k));
        }
        if let Value::Object(m) = &mut schema {
            m.remove("selected");
        }
        schema
    }
}

/// Selection resolution for one node: inclusion, then explicit `selected`, then the legacy
/// schema flag, then `selected-by-default`, then the inherited value.
fn resolve(meta: Option<&Map<String, Value>>, legacy: Option<bool>, inherited: bool) -> bool {
    let get = |k: &str| meta.and_then(|m| m.get(k));
    match get("inclusion").and_then(Value::as_str) {
        Some("unsupported") => return false,
        Some("automatic") => return true,
        _ => {}
    }
    get("selected")
        .and_then(Value::as_bool)
        .or(legacy)
        .or_else(|| get("selected-by-default").and_then(Value::as_bool))
        .unwrap_or(inherited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry() -> CatalogEntry {
        serde_json::from_value(json!({
            "tap_stream_id": "db-t", "stream": "t",
            "schema": {"type": "object", "properties": {
                "id": {"type": "integer"}, "a": {"type": "string"},
                "b": {"type": "string"}, "c": {"type": "string"}, "bad": {}}},
            "metadata": [
                {"breadcrumb": [], "metadata": {"selected": true, "table-key-properties": ["id"],
                  "replication-method": "incremental", "replication-key": "a"}},
                {"breadcrumb": ["properties", "id"], "metadata": {"inclusion": "automatic", "selected": false}},
                {"breadcrumb": ["properties", "b"], "metadata": {"selected": false}},
                {"breadcrumb": ["properties", "c"], "metadata": {"selected-by-default": false}},
                {"breadcrumb": ["properties", "bad"], "metadata": {"inclusion": "unsupported", "selected": true}}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn an_interrupted_stream_is_synced_first() {
        let stream = |id: &str, selected: bool| {
            json!({"tap_stream_id": id, "stream": id, "schema": {"type": "object"},
                   "metadata": [{"breadcrumb": [], "metadata": {"selected": selected}}]})
        };
        let catalog: Catalog = serde_json::from_value(json!({"streams": [
            stream("a", true), stream("b", true), stream("off", false), stream("c", true)
        ]}))
        .unwrap();
        let order = |state: serde_json::Value| -> Vec<String> {
            let state = State::from_value(state).unwrap();
            catalog
                .sync_order(&state)
                .into_iter()
                .map(|e| e.tap_stream_id)
                .collect()
        };
        assert_eq!(order(json!({})), ["a", "b", "c"]);
        assert_eq!(order(json!({"currently_syncing": "c"})), ["c", "a", "b"]);
        assert_eq!(order(json!({"currently_syncing": "b"})), ["b", "a", "c"]);
        assert_eq!(order(json!({"currently_syncing": null})), ["a", "b", "c"]);
        // A stream no longer selected is not synced.
        assert_eq!(order(json!({"currently_syncing": "off"})), ["a", "b", "c"]);
    }

    #[test]
    fn selection_rules() {
        let e = entry();
        assert!(e.is_selected());
        assert_eq!(e.selected_properties(), vec!["id", "a"]);
        assert_eq!(e.replication_method(), Some(ReplicationMethod::Incremental));
        assert_eq!(e.key_properties(), vec!["id"]);
    }

    #[test]
    fn columns_read_are_the_selected_the_key_and_the_unknown() {
        let e = entry();
        let keys = ["b".to_string()];
        let read: Vec<&str> = ["id", "a", "b", "c", "bad", "added"]
            .into_iter()
            .filter(|c| e.reads_column(c, &keys))
            .collect();
        assert_eq!(read, ["id", "a", "b", "added"]);
        assert_eq!(e.selected_properties_missing(&["a", "b"]), ["id"]);
        assert!(e.selected_properties_missing(&["id", "a"]).is_empty());
    }

    #[test]
    fn unselected_stream_selects_nothing() {
        let mut e = entry();
        e.set_stream_metadata("selected", json!(false));
        assert!(!e.is_selected());
        assert!(e.selected_properties().is_empty());
    }

    #[test]
    fn legacy_fields_and_defaults() {
        let c: Catalog = serde_json::from_value(json!({"streams": [{
            "stream": "users", "key_properties": ["id"], "replication_method": "FULL_TABLE",
            "schema": {"selected": true, "properties": {"id": {"type": "integer"}}}
        }]}))
        .unwrap();
        let c = c.normalized().unwrap();
        let s = &c.streams[0];
        assert_eq!(s.tap_stream_id, "users");
        assert!(s.is_selected());
        assert_eq!(s.key_properties(), vec!["id"]);
        assert_eq!(s.replication_method(), Some(ReplicationMethod::FullTable));
    }

    #[test]
    fn duplicate_ids_rejected() {
        let c: Catalog = serde_json::from_value(json!({"streams": [
            {"tap_stream_id": "x", "stream": "x", "schema": {}},
            {"tap_stream_id": "x", "stream": "x", "schema": {}}]}))
        .unwrap();
        assert!(matches!(
            c.normalized(),
            Err(CatalogError::DuplicateStream(_))
        ));
    }
}
