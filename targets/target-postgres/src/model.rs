//! The table a stream loads into, and the plan that moves it to a new stream schema.
//!
//! The sink (which encodes rows) and the loader (which runs DDL) each keep a [`TableModel`]
//! and apply the same pure [`plan`] to every SCHEMA in the same order, so both agree on the
//! columns a batch holds without sharing state.
//!
//! Evolution rules: a new property adds a nullable column; a column whose type holds the new
//! type is kept (a `text` column takes integers); a column that can widen in place is altered
//! (`smallint` → `integer` → `bigint` → `numeric`, `varchar(n)` → longer or `text`,
//! `date` → `timestamptz`); any other change adds a typed variant column `<name>__<type>`
//! and leaves the existing column and its history untouched. Columns that leave the schema
//! are kept (and made nullable). Nothing is ever dropped.

use singer_core::StreamSchema;

use crate::names::{pg_name, qualified, quote};
use crate::types::{Binary, PgType, for_property};

/// Metadata columns written by the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    /// `_sdc_extracted_at`: the record's `time_extracted`.
    ExtractedAt,
    /// `_sdc_received_at`: when the target read the record.
    ReceivedAt,
    /// `_sdc_batched_at`: when the batch was committed (column default `now()`).
    BatchedAt,
    /// `_sdc_deleted_at`: set by log-based taps for deleted rows, or by ACTIVATE_VERSION.
    DeletedAt,
    /// `_sdc_sequence`: arrival order, increasing across runs.
    Sequence,
    /// `_sdc_table_version`: the record's `version`.
    TableVersion,
}

impl Meta {
    /// The column name.
    pub fn name(self) -> &'static str {
        match self {
            Meta::ExtractedAt => "_sdc_extracted_at",
            Meta::ReceivedAt => "_sdc_received_at",
            Meta::BatchedAt => "_sdc_batched_at",
            Meta::DeletedAt => "_sdc_deleted_at",
            Meta::Sequence => "_sdc_sequence",
            Meta::TableVersion => "_sdc_table_version",
        }
    }

    fn ty(self) -> PgType {
        match self {
            Meta::Sequence | Meta::TableVersion => PgType::BigInt,
            _ => PgType::Timestamptz,
        }
    }
}

/// Where the value of a loaded column comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A record property.
    Property(String),
    /// A metadata value.
    Meta(Meta),
}

/// A column of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its PostgreSQL name.
    pub name: String,
    /// Its type.
    pub ty: PgType,
}

/// A column a batch writes, in COPY order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// Column name.
    pub name: String,
    /// Column type (the encoder's type).
    pub ty: PgType,
    /// How strings are decoded for `bytea`.
    pub binary: Binary,
    /// The value's origin.
    pub source: Source,
}

/// What the target knows about a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableModel {
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Whether the table exists.
    pub exists: bool,
    /// Its columns.
    pub columns: Vec<Column>,
    /// Primary key constraint name and columns, if any.
    pub primary_key: Option<(String, Vec<String>)>,
}

/// Options that shape the table.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    /// Add the `_sdc_*` columns.
    pub metadata: bool,
}

/// The result of planning.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Statements to run, in order.
    pub ddl: Vec<String>,
    /// The table afterwards.
    pub model: TableModel,
    /// Columns each row of a batch holds, in order.
    pub active: Vec<Active>,
    /// Key columns (PostgreSQL names), empty for append-only streams.
    pub keys: Vec<String>,
}

impl TableModel {
    /// A table that does not exist yet.
    pub fn absent(schema: &str, table: &str) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            exists: false,
            columns: Vec::new(),
            primary_key: None,
        }
    }

    fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }

    /// `"schema"."table"`.
    pub fn qualified(&self) -> String {
        qualified(&self.schema, &self.table)
    }
}

/// Plans the DDL that makes `model` fit `schema`.
pub fn plan(model: &TableModel, schema: &StreamSchema, opts: PlanOptions) -> Plan {
    let mut m = model.clone();
    let table = m.qualified();
    let mut ddl = Vec::new();
    let mut active = Vec::new();
    let mut wanted: Vec<(String, PgType, Binary, Source)> = Vec::new();
    for p in &schema.properties {
        let (ty, binary) = for_property(p);
        wanted.push((
            pg_name(&p.name),
            ty,
            binary,
            Source::Property(p.name.clone()),
        ));
    }
    let metas: &[Meta] = if opts.metadata {
        &[
            Meta::ExtractedAt,
            Meta::ReceivedAt,
            Meta::BatchedAt,
            Meta::DeletedAt,
            Meta::Sequence,
            Meta::TableVersion,
        ]
    } else {
        &[Meta::TableVersion]
    };
    for meta in metas {
        if !wanted.iter().any(|(n, ..)| n == meta.name()) {
            wanted.push((
                meta.name().to_string(),
                meta.ty(),
                Binary::None,
                Source::Meta(*meta),
            ));
        }
    }
    let keys: Vec<String> = schema.key_properties.iter().map(|k| pg_name(k)).collect();

    if !m.exists {
        ddl.push(format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&m.schema)));
        let mut defs: Vec<String> = wanted
            .iter()
            .map(|(n, ty, _, src)| column_def(n, ty, src))
            .collect();
        if !keys.is_empty() {
            let cols: Vec<String> = keys.iter().map(|k| quote(k)).collect();
            defs.push(format!("PRIMARY KEY ({})", cols.join(", ")));
        }
        ddl.push(format!(
            "CREATE TABLE IF NOT EXISTS {table} ({})",
            defs.join(", ")
        ));
        m.exists = true;
        m.columns = wanted
            .iter()
            .map(|(n, ty, ..)| Column {
                name: n.clone(),
                ty: ty.clone(),
            })
            .collect();
        if !keys.is_empty() {
            m.primary_key = Some((format!("{}_pkey", m.table), keys.clone()));
        }
        for (n, ty, binary, src) in wanted {
            push_active(&mut active, n, ty, binary, src);
        }
        return Plan {
            ddl,
            model: m,
            active,
            keys,
        };
    }

    for (name, ty, binary, src) in wanted {
        let target = match m.column(&name).cloned() {
            None => {
                ddl.push(format!(
                    "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {}",
                    column_def(&name, &ty, &src)
                ));
                m.columns.push(Column {
                    name: name.clone(),
                    ty: ty.clone(),
                });
                Column {
                    name,
                    ty: ty.clone(),
                }
            }
            Some(col) if col.ty.holds(&ty) => col,
            Some(col) => match col.ty.widen_to(&ty) {
                Some(w) => {
                    ddl.push(format!(
                        "ALTER TABLE {table} ALTER COLUMN {c} TYPE {t} USING {c}::{t}",
                        c = quote(&col.name),
                        t = w.sql()
                    ));
                    if let Some(c) = m.column_mut(&col.name) {
                        c.ty = w.clone();
                    }
                    Column {
                        name: col.name,
                        ty: w,
                    }
                }
                None => {
                    let variant = pg_name(&format!("{}__{}", col.name, ty.suffix()));
                    match m.column(&variant).cloned() {
                        Some(v) if v.ty.holds(&ty) => v,
                        _ => {
                            ddl.push(format!(
                                "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {}",
                                quote(&variant),
                                ty.sql()
                            ));
                            m.columns.push(Column {
                                name: variant.clone(),
                                ty: ty.clone(),
                            });
                            Column { name: variant, ty }
                        }
                    }
                }
            },
        };
        let binary = if target.ty == PgType::Bytea {
            binary
        } else {
            Binary::None
        };
        push_active(&mut active, target.name, target.ty, binary, src);
    }
    // Columns that left the schema stay, nullable.
    for c in &m.columns {
        let in_use = active.iter().any(|a| a.name == c.name);
        let is_key = keys.contains(&c.name);
        if !in_use && !is_key && !c.name.starts_with("_sdc_") {
            ddl.push(format!(
                "ALTER TABLE {table} ALTER COLUMN {} DROP NOT NULL",
                quote(&c.name)
            ));
        }
    }
    let current_keys = m
        .primary_key
        .as_ref()
        .map(|(_, k)| k.clone())
        .unwrap_or_default();
    if current_keys != keys {
        if let Some((name, _)) = &m.primary_key {
            ddl.push(format!(
                "ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {}",
                quote(name)
            ));
        }
        m.primary_key = None;
        if !keys.is_empty() {
            let cols: Vec<String> = keys.iter().map(|k| quote(k)).collect();
            ddl.push(format!(
                "ALTER TABLE {table} ADD PRIMARY KEY ({})",
                cols.join(", ")
            ));
            m.primary_key = Some((format!("{}_pkey", m.table), keys.clone()));
        }
    }
    Plan {
        ddl,
        model: m,
        active,
        keys,
    }
}

fn column_def(name: &str, ty: &PgType, src: &Source) -> String {
    let default = if *src == Source::Meta(Meta::BatchedAt) {
        " DEFAULT now()"
    } else {
        ""
    };
    format!("{} {}{default}", quote(name), ty.sql())
}

/// `_sdc_batched_at` is filled by its default, not by the batch.
fn push_active(active: &mut Vec<Active>, name: String, ty: PgType, binary: Binary, source: Source) {
    if source != Source::Meta(Meta::BatchedAt) {
        active.push(Active {
            name,
            ty,
            binary,
            source,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema(props: serde_json::Value, keys: &[&str]) -> StreamSchema {
        let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        StreamSchema::compile("s", &json!({"properties": props}), &keys).unwrap()
    }

    const OPTS: PlanOptions = PlanOptions { metadata: true };

    #[test]
    fn create_then_evolve() {
        let s1 = schema(
            json!({"id": {"type": "integer", "minimum": 0, "maximum": 100}, "flag": {"type": "boolean"}, "n": {"type": "string", "maxLength": 5}}),
            &["id"],
        );
        let p1 = plan(&TableModel::absent("public", "t"), &s1, OPTS);
        assert!(p1.ddl[1].starts_with(r#"CREATE TABLE IF NOT EXISTS "public"."t" ("id" smallint, "flag" boolean, "n" varchar(5), "_sdc_extracted_at""#), "{}", p1.ddl[1]);
        assert!(p1.ddl[1].contains(r#""_sdc_batched_at" timestamptz DEFAULT now()"#));
        assert!(p1.ddl[1].ends_with(r#"PRIMARY KEY ("id"))"#));
        assert!(!p1.active.iter().any(|a| a.name == "_sdc_batched_at"));
        // Widen id and n, change flag to a date (variant), add a column, drop "n" later.
        let s2 = schema(
            json!({"id": {"type": "integer"}, "flag": {"type": "string", "format": "date"}, "n": {"type": "string"}, "new": {"type": "number"}}),
            &["id"],
        );
        let p2 = plan(&p1.model, &s2, OPTS);
        assert_eq!(
            p2.ddl,
            vec![
                r#"ALTER TABLE "public"."t" ALTER COLUMN "id" TYPE bigint USING "id"::bigint"#,
                r#"ALTER TABLE "public"."t" ADD COLUMN IF NOT EXISTS "flag__date" date"#,
                r#"ALTER TABLE "public"."t" ALTER COLUMN "n" TYPE text USING "n"::text"#,
                r#"ALTER TABLE "public"."t" ADD COLUMN IF NOT EXISTS "new" numeric"#,
                r#"ALTER TABLE "public"."t" ALTER COLUMN "flag" DROP NOT NULL"#,
            ]
        );
        assert_eq!(p2.active[1].name, "flag__date");
        // The same schema again plans nothing new.
        let p3 = plan(&p2.model, &s2, OPTS);
        assert_eq!(
            p3.ddl,
            vec![r#"ALTER TABLE "public"."t" ALTER COLUMN "flag" DROP NOT NULL"#]
        );
        assert_eq!(p3.active, p2.active);
        // A narrower type is written into the wider existing column.
        let s4 = schema(
            json!({"id": {"type": "integer", "minimum": 0, "maximum": 5}, "flag": {"type": "string", "format": "date"}}),
            &["id"],
        );
        let p4 = plan(&p3.model, &s4, OPTS);
        assert_eq!(p4.active[0].ty, PgType::BigInt);
    }

    #[test]
    fn key_change_replaces_the_primary_key() {
        let s1 = schema(
            json!({"id": {"type": "integer"}, "email": {"type": "string"}}),
            &["id"],
        );
        let p1 = plan(&TableModel::absent("public", "t"), &s1, OPTS);
        let s2 = schema(
            json!({"id": {"type": "integer"}, "email": {"type": "string"}}),
            &["email"],
        );
        let p2 = plan(&p1.model, &s2, OPTS);
        assert!(
            p2.ddl
                .iter()
                .any(|d| d.contains(r#"DROP CONSTRAINT IF EXISTS "t_pkey""#))
        );
        assert!(
            p2.ddl
                .iter()
                .any(|d| d.ends_with(r#"ADD PRIMARY KEY ("email")"#))
        );
    }
}
