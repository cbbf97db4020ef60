//! The columns of a stream's files: its record properties with their exact Arrow types
//! ([`singer_core::batch::columns`]), then the `_sdc_*` columns the target fills, and how
//! they change when a new SCHEMA arrives.
//!
//! Evolution within a run: a new property adds a column; a property that leaves the SCHEMA
//! stays as a column (null in new rows, filled when records still carry it), so every file
//! holds every column of the files before it; a column may widen (`Int16` → `Int32` →
//! `Int64`, to a decimal with as many integer digits and at least the scale, `Date32` →
//! timestamp); any other type change is written as the new type and logged as a warning,
//! since readers then need `union_by_name` (DuckDB) or a unified schema (pyarrow).

use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use singer_core::StreamSchema;
use singer_core::batch::{BatchSchema, ColumnKind};

/// `_sdc_extracted_at`: the record's `time_extracted`.
pub const EXTRACTED_AT: &str = "_sdc_extracted_at";
/// `_sdc_received_at`: when the target read the record.
pub const RECEIVED_AT: &str = "_sdc_received_at";
/// `_sdc_batched_at`: when the record's chunk of rows was handed to its file's encoder.
pub const BATCHED_AT: &str = "_sdc_batched_at";
/// `_sdc_deleted_at`: a record property (log-based deletes), kept as the record has it.
pub const DELETED_AT: &str = "_sdc_deleted_at";
/// `_sdc_sequence`: the run's start in nanoseconds plus the row's arrival number.
pub const SEQUENCE: &str = "_sdc_sequence";
/// `_sdc_table_version`: the record's `version`.
pub const TABLE_VERSION: &str = "_sdc_table_version";

/// The metadata columns the target fills, in file order (after the record columns).
pub const FILLED: [&str; 5] = [
    EXTRACTED_AT,
    RECEIVED_AT,
    BATCHED_AT,
    SEQUENCE,
    TABLE_VERSION,
];

/// What a new SCHEMA changed in the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new column.
    Added(String),
    /// A column that left the SCHEMA, still written (null unless records carry it).
    Kept(String),
    /// A column whose type widens: readers with `union_by_name` read old and new files.
    Widened(String, DataType, DataType),
    /// Any other type change: readers must unify the schemas (`union_by_name`).
    Retyped(String, DataType, DataType),
    /// A property named like a filled `_sdc_*` column: the target's value replaces it.
    Replaced(String),
}

/// The columns of the files of one stream.
#[derive(Debug, Clone)]
pub struct FileColumns {
    /// The record properties as written (the SCHEMA's, plus kept and `_sdc_deleted_at`).
    pub schema: StreamSchema,
    /// Their Arrow columns.
    pub records: Arc<BatchSchema>,
    /// Whether the filled `_sdc_*` columns follow.
    pub metadata: bool,
    /// The schema of the files.
    pub arrow: SchemaRef,
}

impl FileColumns {
    /// The columns for a stream's SCHEMA, evolving `previous` (the columns before it).
    pub fn new(
        spec: &StreamSchema,
        previous: Option<&FileColumns>,
        metadata: bool,
    ) -> (Self, Vec<Change>) {
        let mut changes = Vec::new();
        let mut schema = spec.clone();
        if metadata {
            schema.properties.retain(|p| {
                let filled = FILLED.contains(&p.name.as_str());
                if filled {
                    changes.push(Change::Replaced(p.name.clone()));
                }
                !filled
            });
            if !schema.properties.iter().any(|p| p.name == DELETED_AT) {
                schema.properties.extend(deleted_at_property());
            }
        }
        if let Some(prev) = previous {
            for p in &prev.schema.properties {
                if !schema.properties.iter().any(|q| q.name == p.name) {
                    changes.push(Change::Kept(p.name.clone()));
                    schema.properties.push(p.clone());
                }
            }
        }
        let records = Arc::new(BatchSchema::new(&schema));
        if let Some(prev) = previous {
            for (i, field) in records.arrow.fields().iter().enumerate() {
                let name = &records.columns[i].name;
                let Some(j) = prev.records.position(name) else {
                    changes.push(Change::Added(name.clone()));
                    continue;
                };
                let (from, to) = (prev.records.arrow.field(j).data_type(), field.data_type());
                if from != to {
                    let change = if widens(from, to) {
                        Change::Widened
                    } else {
                        Change::Retyped
                    };
                    changes.push(change(name.clone(), from.clone(), to.clone()));
                }
            }
        }
        let mut fields: Vec<Arc<Field>> = records.arrow.fields().iter().cloned().collect();
        if metadata {
            for name in FILLED {
                let ty = match name {
                    SEQUENCE | TABLE_VERSION => DataType::Int64,
                    _ => ColumnKind::Timestamp.data_type(),
                };
                fields.push(Arc::new(Field::new(name, ty, true)));
            }
        }
        let arrow = Arc::new(Schema::new(fields));
        (
            Self {
                schema,
                records,
                metadata,
                arrow,
            },
            changes,
        )
    }
}

/// `_sdc_deleted_at` as a nullable date-time property.
fn deleted_at_property() -> Option<singer_core::Property> {
    let json = serde_json::json!({"properties": {
        DELETED_AT: {"type": ["null", "string"], "format": "date-time"}
    }});
    StreamSchema::compile("_", &json, &[])
        .ok()
        .and_then(|s| s.properties.into_iter().next())
}

/// Whether every value of `from` is a value of `to`, as readers that unify types see it.
pub fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let int_digits = |t: &DataType| match t {
        Int16 => Some(5i16),
        Int32 => Some(10),
        Int64 => Some(19),
        _ => None,
    };
    let decimal = |t: &DataType| match t {
        Decimal128(p, s) => Some((i16::from(*p), i16::from(*s), false)),
        Decimal256(p, s) => Some((i16::from(*p), i16::from(*s), true)),
        _ => None,
    };
    match (from, to) {
        (Int16, Int32 | Int64) | (Int32, Int64) | (Date32, Timestamp(..)) => true,
        _ => match (int_digits(from), decimal(from), decimal(to)) {
            (Some(digits), _, Some((p, s, _))) => s >= 0 && p - s >= digits,
            (None, Some((p1, s1, wide1)), Some((p2, s2, wide2))) => {
                s2 >= s1 && p2 - s2 >= p1 - s1 && (wide2 || !wide1)
            }
            _ => false,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn compile(props: serde_json::Value) -> StreamSchema {
        StreamSchema::compile("s", &json!({ "properties": props }), &[]).unwrap()
    }

    fn names(c: &FileColumns) -> Vec<String> {
        c.arrow.fields().iter().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn metadata_columns_follow_the_record_columns() {
        let s = compile(json!({"id": {"type": "integer"}, "_sdc_sequence": {"type": "string"}}));
        let (c, changes) = FileColumns::new(&s, None, true);
        assert_eq!(
            names(&c),
            [
                "id",
                DELETED_AT,
                EXTRACTED_AT,
                RECEIVED_AT,
                BATCHED_AT,
                SEQUENCE,
                TABLE_VERSION
            ]
        );
        assert_eq!(changes, vec![Change::Replaced(SEQUENCE.into())]);
        let (c, changes) = FileColumns::new(&s, None, false);
        assert_eq!(names(&c), ["id", SEQUENCE]);
        assert!(changes.is_empty());
    }

    #[test]
    fn evolution_keeps_columns_and_classifies_types() {
        let v1 = compile(json!({
            "id": {"type": "integer", "minimum": 0, "maximum": 100},
            "gone": {"type": "string"},
            "amount": {"type": "number", "multipleOf": 0.01, "maximum": 99999999.99},
            "code": {"type": "integer"},
        }));
        let (c1, _) = FileColumns::new(&v1, None, false);
        let v2 = compile(json!({
            "id": {"type": "integer"},
            "amount": {"type": "number", "multipleOf": 0.01, "maximum": 1e18},
            "code": {"type": "string"},
            "new": {"type": "boolean"},
        }));
        let (c2, changes) = FileColumns::new(&v2, Some(&c1), false);
        assert_eq!(names(&c2), ["id", "amount", "code", "new", "gone"]);
        assert_eq!(
            changes,
            vec![
                Change::Kept("gone".into()),
                Change::Widened("id".into(), DataType::Int16, DataType::Int64),
                Change::Widened(
                    "amount".into(),
                    DataType::Decimal128(10, 2),
                    DataType::Decimal128(21, 2)
                ),
                Change::Retyped("code".into(), DataType::Int64, DataType::Utf8),
                Change::Added("new".into()),
            ]
        );
    }

    #[test]
    fn widening_rules() {
        use DataType::*;
        assert!(widens(&Int32, &Decimal128(10, 0)));
        assert!(!widens(&Int32, &Decimal128(10, 1)));
        assert!(widens(&Decimal128(38, 2), &Decimal256(40, 2)));
        assert!(!widens(&Decimal256(40, 2), &Decimal128(38, 2)));
        assert!(!widens(&Decimal128(10, 2), &Decimal128(10, 3)));
        assert!(!widens(&Int64, &Int32));
        assert!(!widens(&Int64, &Float64));
    }
}
