//! What a column's PostgreSQL type becomes: the encoder kind and the JSON Schema a Singer
//! target sees for it.

use serde_json::{Map, Value, json};
use singer_core::schema::{decimal_step, exact_number};

/// How a column's text form is written as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// smallint, integer, bigint, oid: digits as they are.
    Int {
        bits: u8,
    },
    /// numeric with its declared precision and scale, if any.
    Numeric {
        precision: Option<u32>,
        scale: Option<i32>,
    },
    /// real, double precision.
    Float,
    /// money, read with `lc_monetary = C` (`-$1,234.56`).
    Money,
    Bool,
    /// Text of any kind, with the declared maximum length.
    Text {
        max_length: Option<u32>,
    },
    /// Strings kept exactly as PostgreSQL prints them (inet, ranges, bit strings, intervals,
    /// times...); built-in ones name their SQL type in `x-sql-datatype`.
    Verbatim,
    Uuid,
    /// json and jsonb: the JSON text itself.
    Json,
    /// bytea, as base64.
    Bytea,
    Date,
    /// timestamp (wall clock, written with `+00:00`) and timestamptz (UTC).
    Timestamp,
    /// hstore, as an object of strings.
    Hstore,
    /// An array of elements of a kind; `dims` is the declared number of dimensions (at
    /// least 1).
    Array {
        element: Box<Kind>,
        dims: u8,
    },
    /// Not read; the reason is shown in the catalog.
    Unsupported(String),
}

/// A type as the catalog describes it, after domains are resolved to their base type.
#[derive(Debug, Clone)]
pub(crate) struct PgType {
    /// `pg_type.typname` of the base type.
    pub(crate) name: String,
    /// `pg_type.typtype`: b base, e enum, r range, m multirange, c composite, d domain, p
    /// pseudo.
    pub(crate) typtype: char,
    /// `pg_type.typcategory`.
    pub(crate) category: char,
    /// The element type of an array type.
    pub(crate) element: Option<Box<PgType>>,
    /// The type modifier in force (the column's, or the domain's).
    pub(crate) typmod: i32,
}

impl Kind {
    /// The kind of a column of type `t` declared with `dims` array dimensions.
    pub(crate) fn of(t: &PgType, dims: i32) -> Kind {
        if let Some(el) = &t.element {
            let element = Kind::of(el, 0);
            if let Kind::Unsupported(why) = element {
                return Kind::Unsupported(format!("array of an unsupported type: {why}"));
            }
            return Kind::Array {
                element: Box::new(element),
                dims: u8::try_from(dims.clamp(1, 6)).unwrap_or(1),
            };
        }
        let modifier = (t.typmod >= 4).then(|| t.typmod - 4);
        match t.typtype {
            'e' => return Kind::Text { max_length: None },
            'r' | 'm' => return Kind::Verbatim,
            'c' => return Kind::Unsupported(format!("composite type `{}`", t.name)),
            'p' => return Kind::Unsupported(format!("pseudo-type `{}`", t.name)),
            _ => {}
        }
        match t.name.as_str() {
            "int2" => Kind::Int { bits: 16 },
            "int4" => Kind::Int { bits: 32 },
            "int8" => Kind::Int { bits: 64 },
            "oid" | "xid" | "cid" => Kind::Int { bits: 33 },
            "numeric" => {
                let (precision, scale) = match modifier {
                    Some(m) => {
                        let p = u32::try_from((m >> 16) & 0xFFFF).ok();
                        // The scale is an 11-bit signed number since PostgreSQL 15.
                        let s = ((m & 0x7FF) ^ 1024) - 1024;
                        (p, Some(s))
                    }
                    None => (None, None),
                };
                Kind::Numeric { precision, scale }
            }
            "float4" | "float8" => Kind::Float,
            "money" => Kind::Money,
            "bool" => Kind::Bool,
            "varchar" | "bpchar" => Kind::Text {
                max_length: modifier.and_then(|m| u32::try_from(m).ok()),
            },
            "text" | "name" | "citext" | "char" | "xml" => Kind::Text { max_length: None },
            "uuid" => Kind::Uuid,
            "json" | "jsonb" => Kind::Json,
            "bytea" => Kind::Bytea,
            "date" => Kind::Date,
            "timestamp" | "timestamptz" => Kind::Timestamp,
            "hstore" => Kind::Hstore,
            // No `format: time`: RFC 3339 times need an offset, which `time` has not; the
            // SQL type goes in `x-sql-datatype` instead.
            "time" | "timetz" | "interval" | "bit" | "varbit" | "inet" | "cidr" | "macaddr"
            | "macaddr8" | "tsvector" | "tsquery" | "pg_lsn" | "point" | "line" | "lseg"
            | "box" | "path" | "polygon" | "circle" | "jsonpath" => Kind::Verbatim,
            _ if t.category == 'S' => Kind::Text { max_length: None },
            other => Kind::Unsupported(format!("type `{other}` has no JSON mapping")),
        }
    }

    /// The JSON Schema of the column's values; `nullable` adds `null` to the type.
    pub(crate) fn json_schema(&self, nullable: bool) -> Value {
        let ty = |t: &str| {
            if nullable {
                json!(["null", t])
            } else {
                json!([t])
            }
        };
        let mut s = Map::new();
        match self {
            Kind::Int { bits } => {
                s.insert("type".into(), ty("integer"));
                let (min, max): (i128, i128) = if *bits == 33 {
                    (0, i128::from(u32::MAX))
                } else {
                    (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
                };
                s.insert("minimum".into(), exact_number(&min.to_string()));
                s.insert("maximum".into(), exact_number(&max.to_string()));
            }
            Kind::Numeric { precision, scale } => {
                s.insert("type".into(), ty("number"));
                if let (Some(p), Some(sc)) = (precision, scale)
                    && *sc >= 0
                {
                    s.insert(
                        "multipleOf".into(),
                        decimal_step(u64::from(sc.unsigned_abs())),
                    );
                    // The largest value: p - s nines before the point, s after it.
                    let int_digits = usize::try_from(i64::from(*p) - i64::from(*sc)).unwrap_or(0);
                    let mut max = if int_digits == 0 {
                        "0".to_string()
                    } else {
                        "9".repeat(int_digits)
                    };
                    if *sc > 0 {
                        max.push('.');
                        max.push_str(&"9".repeat(*sc as usize));
                    }
                    s.insert("maximum".into(), exact_number(&max));
                    s.insert("minimum".into(), exact_number(&format!("-{max}")));
                }
            }
            Kind::Float => {
                s.insert("type".into(), ty("number"));
            }
            Kind::Money => {
                s.insert("type".into(), ty("number"));
                s.insert("multipleOf".into(), exact_number("0.01"));
            }
            Kind::Bool => {
                s.insert("type".into(), ty("boolean"));
            }
            Kind::Text { max_length } => {
                s.insert("type".into(), ty("string"));
                if let Some(n) = max_length {
                    s.insert("maxLength".into(), json!(n));
                }
            }
            Kind::Verbatim => {
                s.insert("type".into(), ty("string"));
            }
            Kind::Uuid => {
                s.insert("type".into(), ty("string"));
                s.insert("format".into(), json!("uuid"));
            }
            Kind::Json => {
                let mut t = vec!["object", "array", "string", "number", "boolean"];
                if nullable {
                    t.insert(0, "null");
                }
                s.insert("type".into(), json!(t));
            }
            Kind::Bytea => {
                s.insert("type".into(), ty("string"));
                s.insert("contentEncoding".into(), json!("base64"));
            }
            Kind::Date => {
                s.insert("type".into(), ty("string"));
                s.insert("format".into(), json!("date"));
            }
            Kind::Timestamp => {
                s.insert("type".into(), ty("string"));
                s.insert("format".into(), json!("date-time"));
            }
            Kind::Hstore => {
                s.insert("type".into(), ty("object"));
                s.insert(
                    "additionalProperties".into(),
                    json!({"type": ["null", "string"]}),
                );
            }
            Kind::Array { element, dims } => {
                let mut items = element.json_schema(true);
                for _ in 1..*dims {
                    items = json!({"type": ["null", "array"], "items": items});
                }
                s.insert("type".into(), ty("array"));
                s.insert("items".into(), items);
            }
            Kind::Unsupported(_) => {}
        }
        Value::Object(s)
    }

    /// True when `ORDER BY` and `>=` on this column make a usable replication key.
    pub(crate) fn orders_exactly(&self) -> bool {
        matches!(
            self,
            Kind::Int { .. }
                | Kind::Numeric { .. }
                | Kind::Float
                | Kind::Money
                | Kind::Text { .. }
                | Kind::Uuid
                | Kind::Date
                | Kind::Timestamp
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(name: &str, typmod: i32) -> PgType {
        PgType {
            name: name.into(),
            typtype: 'b',
            category: 'N',
            element: None,
            typmod,
        }
    }

    #[test]
    fn numeric_typmod_gives_precision_and_scale() {
        let k = Kind::of(&base("numeric", ((12 << 16) | 2) + 4), 0);
        assert_eq!(
            k,
            Kind::Numeric {
                precision: Some(12),
                scale: Some(2)
            }
        );
        let s = k.json_schema(true);
        assert_eq!(s["multipleOf"], json!(0.01));
        assert_eq!(s["maximum"].to_string(), "9999999999.99");
        assert_eq!(s["minimum"].to_string(), "-9999999999.99");
        // numeric(3,-2) (PostgreSQL 15): scale stored as an 11-bit signed number.
        let neg = Kind::of(&base("numeric", ((3 << 16) | (0x7FF & -2i32)) + 4), 0);
        assert_eq!(
            neg,
            Kind::Numeric {
                precision: Some(3),
                scale: Some(-2)
            }
        );
    }

    #[test]
    fn nested_arrays_nest_items() {
        let arr = PgType {
            element: Some(Box::new(base("int4", -1))),
            ..base("_int4", -1)
        };
        let s = Kind::of(&arr, 2).json_schema(false);
        assert_eq!(s["type"], json!(["array"]));
        assert_eq!(s["items"]["type"], json!(["null", "array"]));
        assert_eq!(s["items"]["items"]["type"], json!(["null", "integer"]));
    }

    #[test]
    fn composite_is_unsupported() {
        let mut t = base("address", -1);
        t.typtype = 'c';
        assert!(matches!(Kind::of(&t, 0), Kind::Unsupported(_)));
    }
}
