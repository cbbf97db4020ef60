//! Discovery: every table and view of the chosen databases in four queries, whatever their
//! number, turned into catalog entries with the metadata PipelineWise and singer-io emit.

use std::collections::{BTreeMap, HashMap, HashSet};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, Value};
use serde_json::{Map, Value as Json, json};
use singer_core::CatalogEntry;
use singer_core::sdk::SdkError;

use crate::column::{ColumnInfo, Kind, KindOptions};
use crate::config::Engine;

/// A table or view.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) database: String,
    pub(crate) name: String,
    pub(crate) is_view: bool,
    pub(crate) row_count: Option<u64>,
    pub(crate) columns: Vec<ColumnInfo>,
    pub(crate) primary_key: Vec<String>,
}

impl Table {
    /// `<database>-<table>`, as PipelineWise and singer-io name streams.
    pub(crate) fn tap_stream_id(&self) -> String {
        format!("{}-{}", self.database, self.name)
    }
}

/// Which tables to read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) databases: Option<Vec<String>>,
    pub(crate) tables: Option<Vec<String>>,
}

const SYSTEM_DATABASES: &str = "('information_schema','performance_schema','mysql','sys')";

impl Filter {
    /// A WHERE clause over `<schema_col>` and `<table_col>`, with its bound values.
    fn clause(&self, schema_col: &str, table_col: &str) -> (String, Vec<Value>) {
        let mut params = Vec::new();
        let mut sql = match &self.databases {
            Some(dbs) => {
                params.extend(dbs.iter().map(|d| Value::from(d.as_str())));
                format!("{schema_col} IN ({})", placeholders(dbs.len()))
            }
            None => format!("{schema_col} NOT IN {SYSTEM_DATABASES}"),
        };
        if let Some(tables) = &self.tables {
            params.extend(tables.iter().map(|t| Value::from(t.as_str())));
            sql.push_str(&format!(
                " AND {table_col} IN ({})",
                placeholders(tables.len())
            ));
        }
        (sql, params)
    }
}

fn placeholders(n: usize) -> String {
    vec!["?"; n.max(1)].join(",")
}

async fn rows(conn: &mut Conn, sql: &str, params: Vec<Value>) -> Result<Vec<Row>, SdkError> {
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params)
    };
    conn.exec(sql, params)
        .await
        .map_err(|e| SdkError::fatal("reading information_schema failed", e))
}

fn text(row: &Row, i: usize) -> String {
    row.get::<Option<String>, _>(i)
        .flatten()
        .unwrap_or_default()
}

fn num(row: &Row, i: usize) -> Option<u64> {
    row.get::<Option<u64>, _>(i).flatten()
}

/// Reads the tables matching `filter`, with their columns and primary keys.
pub(crate) async fn load_tables(
    conn: &mut Conn,
    engine: Engine,
    filter: &Filter,
) -> Result<Vec<Table>, SdkError> {
    let (w, p) = filter.clause("TABLE_SCHEMA", "TABLE_NAME");
    let table_rows = rows(
        conn,
        &format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, TABLE_ROWS \
             FROM information_schema.TABLES WHERE {w} ORDER BY TABLE_SCHEMA, TABLE_NAME"
        ),
        p.clone(),
    )
    .await?;
    let column_rows = rows(
        conn,
        &format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, \
             CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE, CHARACTER_SET_NAME \
             FROM information_schema.COLUMNS WHERE {w} \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION"
        ),
        p.clone(),
    )
    .await?;
    let key_rows = rows(
        conn,
        &format!(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS \
             WHERE INDEX_NAME = 'PRIMARY' AND {w} ORDER BY TABLE_SCHEMA, TABLE_NAME, SEQ_IN_INDEX"
        ),
        p.clone(),
    )
    .await?;
    // MariaDB's JSON is LONGTEXT with a json_valid() check; MySQL has a real JSON type.
    let mut json_columns = HashSet::new();
    if engine == Engine::Mariadb {
        let (w, p) = filter.clause("CONSTRAINT_SCHEMA", "TABLE_NAME");
        let checks = rows(
            conn,
            &format!(
                "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE \
                 FROM information_schema.CHECK_CONSTRAINTS \
                 WHERE CHECK_CLAUSE LIKE 'json_valid(%' AND {w}"
            ),
            p,
        )
        .await?;
        for r in &checks {
            let clause = text(r, 2);
            let inner = clause
                .trim_start_matches("json_valid(")
                .trim_end_matches(')')
                .trim_matches('`')
                .replace("``", "`");
            json_columns.insert((text(r, 0), text(r, 1), inner));
        }
    }

    let mut keys: HashMap<(String, String), Vec<String>> = HashMap::new();
    for r in &key_rows {
        keys.entry((text(r, 0), text(r, 1)))
            .or_default()
            .push(text(r, 2));
    }
    let mut columns: BTreeMap<(String, String), Vec<ColumnInfo>> = BTreeMap::new();
    for r in &column_rows {
        let (db, table, name) = (text(r, 0), text(r, 1), text(r, 2));
        let pk = keys
            .get(&(db.clone(), table.clone()))
            .is_some_and(|k| k.contains(&name));
        let is_json_check = json_columns.contains(&(db.clone(), table.clone(), name.clone()));
        columns.entry((db, table)).or_default().push(ColumnInfo {
            name,
            data_type: text(r, 3).to_ascii_lowercase(),
            column_type: text(r, 4).to_ascii_lowercase(),
            char_max_length: num(r, 5),
            numeric_precision: num(r, 6),
            numeric_scale: num(r, 7),
            charset: r.get::<Option<String>, _>(8).flatten(),
            is_primary: pk,
            is_json_check,
        });
    }
    let mut tables = Vec::new();
    for r in &table_rows {
        let (db, name) = (text(r, 0), text(r, 1));
        let key = (db.clone(), name.clone());
        let Some(cols) = columns.remove(&key) else {
            continue;
        };
        tables.push(Table {
            is_view: text(r, 2).eq_ignore_ascii_case("VIEW"),
            row_count: num(r, 3),
            primary_key: keys.remove(&key).unwrap_or_default(),
            columns: cols,
            database: db,
            name,
        });
    }
    Ok(tables)
}

/// The catalog entry of a table.
pub(crate) fn catalog_entry(table: &Table, opts: KindOptions) -> CatalogEntry {
    let mut props = Map::new();
    let mut unsupported = Vec::new();
    let mut replication_keys = Vec::new();
    for c in &table.columns {
        let kind = c.kind(opts);
        match c.json_schema(&kind) {
            Some(s) => {
                props.insert(c.name.clone(), s);
            }
            None => {
                props.insert(
                    c.name.clone(),
                    json!({"description": format!("unsupported column type {}", c.column_type)}),
                );
                unsupported.push(c.name.as_str());
            }
        }
        if kind.is_replication_key_candidate() {
            replication_keys.push(c.name.clone());
        }
    }
    let schema = json!({"type": "object", "properties": props});
    let mut e = CatalogEntry::new(table.tap_stream_id(), table.name.clone(), schema);
    e.table_name = Some(table.name.clone());
    e.set_stream_metadata("selected-by-default", json!(false));
    e.set_stream_metadata("database-name", json!(table.database));
    e.set_stream_metadata("is-view", json!(table.is_view));
    if let Some(n) = table.row_count {
        e.set_stream_metadata("row-count", json!(n));
    }
    if !table.is_view {
        e.set_stream_metadata("table-key-properties", json!(table.primary_key));
    }
    e.set_stream_metadata("valid-replication-keys", json!(replication_keys));
    for c in &table.columns {
        let is_unsupported = unsupported.contains(&c.name.as_str());
        let inclusion = if is_unsupported {
            "unsupported"
        } else if c.is_primary {
            "automatic"
        } else {
            "available"
        };
        e.set_property_metadata(&c.name, "inclusion", json!(inclusion));
        e.set_property_metadata(&c.name, "selected-by-default", json!(!is_unsupported));
        e.set_property_metadata(&c.name, "sql-datatype", json!(c.column_type));
        e.set_property_metadata(&c.name, "datatype", json!(c.data_type));
    }
    e
}

/// Columns of `table` that a catalog selects but the tap cannot read, for a warning.
pub(crate) fn unsupported_selected(
    entry: &CatalogEntry,
    table: &Table,
    opts: KindOptions,
) -> Vec<String> {
    table
        .columns
        .iter()
        .filter(|c| c.kind(opts) == Kind::Unsupported)
        .filter(|c| {
            entry
                .metadata_at(&["properties", &c.name])
                .and_then(|m| m.get("selected"))
                .and_then(Json::as_bool)
                == Some(true)
        })
        .map(|c| c.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, data_type: &str, column_type: &str, pk: bool) -> ColumnInfo {
        ColumnInfo {
            name: name.into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            char_max_length: None,
            numeric_precision: None,
            numeric_scale: None,
            charset: None,
            is_primary: pk,
            is_json_check: false,
        }
    }

    #[test]
    fn unsupported_types_are_listed_not_skipped() {
        let table = Table {
            database: "db".into(),
            name: "t".into(),
            is_view: false,
            row_count: Some(7),
            columns: vec![
                col("id", "int", "int(11)", true),
                col("v", "vector", "vector(3)", false),
            ],
            primary_key: vec!["id".into()],
        };
        let opts = KindOptions {
            tinyint1_as_boolean: true,
        };
        let e = catalog_entry(&table, opts);
        assert_eq!(e.tap_stream_id, "db-t");
        let meta = e.metadata_at(&["properties", "v"]).unwrap();
        assert_eq!(meta["inclusion"], json!("unsupported"));
        assert_eq!(meta["selected-by-default"], json!(false));
        assert_eq!(meta["sql-datatype"], json!("vector(3)"));
        assert_eq!(
            e.schema["properties"]["v"]["description"],
            json!("unsupported column type vector(3)")
        );
        assert!(!e.selected_properties().contains(&"v".to_string()));
    }
}
