//! Discovery: every table, view, materialized view and foreign table with its columns in
//! two catalog queries, whatever the number of tables, and the catalog entry of each.

use std::collections::HashMap;

use serde_json::{Map, Value as Json, json};
use singer_core::CatalogEntry;
use singer_core::sdk::SdkError;
use tokio_postgres::Client;

use crate::connect::db_error;
use crate::kind::{Kind, PgType};

/// A column as the catalog describes it.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub(crate) name: String,
    /// `format_type` of the declared type, e.g. `numeric(12,2)`, `timestamp with time zone`.
    pub(crate) declared: String,
    pub(crate) kind: Kind,
    pub(crate) not_null: bool,
    /// The declared type is a built-in one (schema `pg_catalog`), so a PostgreSQL target
    /// can create the column with exactly that type.
    pub(crate) builtin: bool,
}

/// A table, view, materialized view or foreign table.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) schema: String,
    pub(crate) name: String,
    /// `r` table, `p` partitioned table, `v` view, `m` materialized view, `f` foreign table.
    pub(crate) relkind: char,
    pub(crate) columns: Vec<Column>,
    pub(crate) primary_key: Vec<String>,
    /// `pg_class.relreplident`: d default, n nothing, f full, i index.
    pub(crate) replica_identity: char,
    pub(crate) row_estimate: Option<i64>,
}

impl Table {
    /// `<schema>-<table>`.
    pub(crate) fn tap_stream_id(&self) -> String {
        format!("{}-{}", self.schema, self.name)
    }

    /// True for views and materialized views, which have no changes in the WAL.
    pub(crate) fn is_view(&self) -> bool {
        matches!(self.relkind, 'v' | 'm')
    }
}

/// Which relations to read.
pub(crate) struct Filter {
    pub(crate) schemas: Option<Vec<String>>,
    /// `table` or `schema.table`.
    pub(crate) tables: Option<Vec<String>>,
}

impl Filter {
    fn wants(&self, schema: &str, table: &str) -> bool {
        self.tables.as_ref().is_none_or(|ts| {
            ts.iter().any(|t| match t.split_once('.') {
                Some((s, n)) => s == schema && n == table,
                None => t == table,
            })
        })
    }
}

const COLUMNS: &str = "
SELECT n.nspname, c.relname, c.relkind::text, c.relreplident::text, c.reltuples::float8,
       a.attname, a.atttypid::int8, a.atttypmod, a.attndims, a.attnotnull,
       format_type(a.atttypid, a.atttypmod),
       (SELECT k.ord FROM unnest(i.indkey) WITH ORDINALITY AS k(att, ord)
         WHERE k.att = a.attnum)::int8
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast|temp_)'
  AND ($1::text[] IS NULL OR n.nspname = ANY($1))
ORDER BY n.nspname, c.relname, a.attnum";

/// Types that columns can have: everything but the row types of tables and their arrays.
const TYPES: &str = "
SELECT t.oid::int8, t.typname, t.typtype::text, t.typcategory::text, t.typelem::int8,
       t.typbasetype::int8, t.typtypmod, n.nspname
FROM pg_catalog.pg_type t
JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE t.typrelid = 0";

struct TypeRow {
    name: String,
    typtype: char,
    category: char,
    element: u32,
    base: u32,
    base_typmod: i32,
    builtin: bool,
}

/// Loads the relations that pass `filter`, in two queries.
pub(crate) async fn load_tables(client: &Client, filter: &Filter) -> Result<Vec<Table>, SdkError> {
    let types: HashMap<u32, TypeRow> = client
        .query(TYPES, &[])
        .await
        .map_err(|e| db_error("discovery: reading pg_type failed", e))?
        .iter()
        .map(|r| {
            let oid = u32::try_from(r.get::<_, i64>(0)).unwrap_or(0);
            let t = TypeRow {
                name: r.get(1),
                typtype: first_char(r.get(2)),
                category: first_char(r.get(3)),
                element: u32::try_from(r.get::<_, i64>(4)).unwrap_or(0),
                base: u32::try_from(r.get::<_, i64>(5)).unwrap_or(0),
                base_typmod: r.get(6),
                builtin: r.get::<_, String>(7) == "pg_catalog",
            };
            (oid, t)
        })
        .collect();
    let rows = client
        .query(COLUMNS, &[&filter.schemas])
        .await
        .map_err(|e| db_error("discovery: reading pg_attribute failed", e))?;
    let mut tables: Vec<Table> = Vec::new();
    let mut keys: Vec<(i64, String)> = Vec::new();
    for r in &rows {
        let schema: String = r.get(0);
        let name: String = r.get(1);
        if !filter.wants(&schema, &name) {
            continue;
        }
        let new_table = tables
            .last()
            .is_none_or(|t| t.schema != schema || t.name != name);
        if new_table {
            finish_keys(tables.last_mut(), &mut keys);
            let estimate: f64 = r.get(4);
            tables.push(Table {
                schema,
                name,
                relkind: first_char(r.get(2)),
                replica_identity: first_char(r.get(3)),
                row_estimate: (estimate >= 0.0).then_some(estimate as i64),
                columns: Vec::new(),
                primary_key: Vec::new(),
            });
        }
        let Some(table) = tables.last_mut() else {
            continue;
        };
        let column: String = r.get(5);
        let oid = u32::try_from(r.get::<_, i64>(6)).unwrap_or(0);
        let typmod: i32 = r.get(7);
        let dims: i32 = r.get(8);
        let pg = resolve(&types, oid, typmod, 0);
        if let Some(pos) = r.get::<_, Option<i64>>(11) {
            keys.push((pos, column.clone()));
        }
        table.columns.push(Column {
            kind: Kind::of(&pg, dims),
            name: column,
            declared: r.get(10),
            not_null: r.get(9),
            builtin: types.get(&oid).is_some_and(|t| t.builtin),
        });
    }
    finish_keys(tables.last_mut(), &mut keys);
    Ok(tables)
}

fn finish_keys(table: Option<&mut Table>, keys: &mut Vec<(i64, String)>) {
    if let Some(t) = table {
        keys.sort();
        t.primary_key = keys.drain(..).map(|(_, n)| n).collect();
    }
    keys.clear();
}

fn first_char(s: String) -> char {
    s.chars().next().unwrap_or(' ')
}

/// The type behind `oid`, with domains resolved to their base type.
fn resolve(types: &HashMap<u32, TypeRow>, oid: u32, typmod: i32, depth: u8) -> PgType {
    let Some(t) = types.get(&oid) else {
        return PgType {
            name: format!("type {oid}"),
            typtype: 'c',
            category: ' ',
            element: None,
            typmod,
        };
    };
    if t.typtype == 'd' && depth < 16 {
        let m = if typmod >= 0 { typmod } else { t.base_typmod };
        return resolve(types, t.base, m, depth + 1);
    }
    let element = (t.category == 'A' && t.element != 0)
        .then(|| Box::new(resolve(types, t.element, typmod, depth + 1)));
    PgType {
        name: t.name.clone(),
        typtype: t.typtype,
        category: t.category,
        element,
        // An array column's typmod applies to its elements.
        typmod: if t.category == 'A' { -1 } else { typmod },
    }
}

impl Column {
    /// The property's JSON Schema; built-in types whose JSON form is a string also name their
    /// SQL type (`x-sql-datatype`), so a PostgreSQL target recreates them exactly.
    pub(crate) fn json_schema(&self, key: bool) -> Json {
        let mut s = self.kind.json_schema(!(self.not_null || key));
        if self.builtin
            && matches!(self.kind, Kind::Verbatim)
            && let Json::Object(m) = &mut s
        {
            m.insert("x-sql-datatype".into(), json!(self.declared));
        }
        s
    }
}

/// The catalog entry of a table.
pub(crate) fn catalog_entry(table: &Table, dbname: &str) -> CatalogEntry {
    let mut props = Map::new();
    let mut replication_keys = Vec::new();
    for c in &table.columns {
        let key = table.primary_key.contains(&c.name);
        match &c.kind {
            Kind::Unsupported(why) => {
                props.insert(
                    c.name.clone(),
                    json!({"description": format!("unsupported: {why}")}),
                );
            }
            kind => {
                props.insert(c.name.clone(), c.json_schema(key));
                if kind.orders_exactly() {
                    replication_keys.push(c.name.clone());
                }
            }
        }
    }
    let schema = json!({"type": "object", "properties": props});
    let mut e = CatalogEntry::new(table.tap_stream_id(), table.name.clone(), schema);
    e.table_name = Some(table.name.clone());
    e.set_stream_metadata("selected-by-default", json!(false));
    e.set_stream_metadata("database-name", json!(dbname));
    e.set_stream_metadata("schema-name", json!(table.schema));
    e.set_stream_metadata("is-view", json!(table.is_view()));
    if let Some(n) = table.row_estimate {
        e.set_stream_metadata("row-count", json!(n));
    }
    e.set_stream_metadata("table-key-properties", json!(table.primary_key));
    e.set_stream_metadata("valid-replication-keys", json!(replication_keys));
    for c in &table.columns {
        let unsupported = matches!(c.kind, Kind::Unsupported(_));
        let inclusion = if unsupported {
            "unsupported"
        } else if table.primary_key.contains(&c.name) {
            "automatic"
        } else {
            "available"
        };
        e.set_property_metadata(&c.name, "inclusion", json!(inclusion));
        e.set_property_metadata(&c.name, "selected-by-default", json!(!unsupported));
        e.set_property_metadata(&c.name, "sql-datatype", json!(c.declared));
        if let Kind::Unsupported(why) = &c.kind {
            e.set_property_metadata(&c.name, "unsupported-description", json!(why));
        }
    }
    e
}

/// Reads the relations named by `(schema, table)` pairs.
pub(crate) async fn load_named(
    client: &Client,
    names: &[(String, String)],
) -> Result<Vec<Table>, SdkError> {
    let mut schemas: Vec<String> = names.iter().map(|(s, _)| s.clone()).collect();
    schemas.sort();
    schemas.dedup();
    let filter = Filter {
        schemas: Some(schemas),
        tables: Some(names.iter().map(|(s, t)| format!("{s}.{t}")).collect()),
    };
    load_tables(client, &filter).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_bare_and_qualified_names() {
        let f = Filter {
            schemas: None,
            tables: Some(vec!["orders".into(), "sales.items".into()]),
        };
        assert!(f.wants("public", "orders"));
        assert!(f.wants("sales", "items"));
        assert!(!f.wants("public", "items"));
    }
}
