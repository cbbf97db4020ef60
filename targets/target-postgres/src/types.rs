//! JSON Schema → PostgreSQL column types, and the widening rules between them.
//!
//! | JSON Schema | PostgreSQL |
//! |---|---|
//! | `integer` with bounds | `smallint`, `integer` or `bigint` by `minimum`/`maximum`; `numeric` beyond 64 bits |
//! | `integer` without bounds | `bigint` |
//! | `number`, `string` + `singer.decimal`/`x-singer.decimal` | `numeric` (exact, never rounded) |
//! | `boolean` | `boolean` |
//! | `string` + `date-time` / `date` / `time` / `uuid` | `timestamptz` / `date` / `time` / `uuid` |
//! | `string` + `contentEncoding` base16/base64 | `bytea` |
//! | `string` with `maxLength` n | `varchar(n)`; otherwise `text` |
//! | `object`, `array`, untyped | `jsonb` |
//! | several types | the narrowest type holding every member (ints → numeric, date → timestamptz, else `text`, or `jsonb` if a member is structured) |
//! | `x-sql-datatype` | that type (types outside this table are loaded as text and cast) |

use singer_core::schema::{ContentEncoding, JsonType, Property, StringFormat};

/// A column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgType {
    /// boolean
    Boolean,
    /// smallint
    SmallInt,
    /// integer
    Integer,
    /// bigint
    BigInt,
    /// numeric (unconstrained)
    Numeric,
    /// double precision
    Double,
    /// varchar(n)
    Varchar(u32),
    /// text
    Text,
    /// jsonb
    Jsonb,
    /// timestamp with time zone
    Timestamptz,
    /// timestamp without time zone
    Timestamp,
    /// date
    Date,
    /// time without time zone
    Time,
    /// uuid
    Uuid,
    /// bytea
    Bytea,
    /// Any other declared type; values are staged as text and cast.
    Custom(String),
}

const MAX_VARCHAR: u64 = 10_485_760;

impl PgType {
    /// The type in DDL.
    pub fn sql(&self) -> String {
        match self {
            PgType::Boolean => "boolean".into(),
            PgType::SmallInt => "smallint".into(),
            PgType::Integer => "integer".into(),
            PgType::BigInt => "bigint".into(),
            PgType::Numeric => "numeric".into(),
            PgType::Double => "double precision".into(),
            PgType::Varchar(n) => format!("varchar({n})"),
            PgType::Text => "text".into(),
            PgType::Jsonb => "jsonb".into(),
            PgType::Timestamptz => "timestamptz".into(),
            PgType::Timestamp => "timestamp".into(),
            PgType::Date => "date".into(),
            PgType::Time => "time".into(),
            PgType::Uuid => "uuid".into(),
            PgType::Bytea => "bytea".into(),
            PgType::Custom(s) => s.clone(),
        }
    }

    /// A short name for variant columns (`price__text`).
    pub fn suffix(&self) -> String {
        match self {
            PgType::Varchar(_) => "text".into(),
            PgType::Custom(s) => s.chars().filter(|c| c.is_ascii_alphanumeric()).collect(),
            other => other.sql().replace(' ', "_"),
        }
    }

    /// Parses a type as `format_type` or `x-sql-datatype` spells it.
    pub fn parse(declared: &str) -> PgType {
        let t = declared.trim().to_ascii_lowercase();
        let varchar = |rest: &str| {
            rest.trim_start_matches('(')
                .trim_end_matches(')')
                .trim()
                .parse()
                .ok()
        };
        match t.as_str() {
            "boolean" | "bool" => PgType::Boolean,
            "smallint" | "int2" => PgType::SmallInt,
            "integer" | "int" | "int4" => PgType::Integer,
            "bigint" | "int8" => PgType::BigInt,
            "numeric" | "decimal" => PgType::Numeric,
            "double precision" | "float8" | "double" => PgType::Double,
            "text" | "character varying" | "varchar" => PgType::Text,
            "jsonb" => PgType::Jsonb,
            "timestamp with time zone" | "timestamptz" => PgType::Timestamptz,
            "timestamp without time zone" | "timestamp" => PgType::Timestamp,
            "date" => PgType::Date,
            "time without time zone" | "time" => PgType::Time,
            "uuid" => PgType::Uuid,
            "bytea" => PgType::Bytea,
            _ => {
                for prefix in ["character varying", "varchar"] {
                    if let Some(n) = t.strip_prefix(prefix).and_then(varchar) {
                        return PgType::Varchar(n);
                    }
                }
                PgType::Custom(declared.trim().to_string())
            }
        }
    }

    fn int_rank(&self) -> Option<u8> {
        match self {
            PgType::SmallInt => Some(1),
            PgType::Integer => Some(2),
            PgType::BigInt => Some(3),
            PgType::Numeric => Some(4),
            _ => None,
        }
    }

    /// Whether a column of this type stores every value of `other` faithfully.
    pub fn holds(&self, other: &PgType) -> bool {
        if self == other {
            return true;
        }
        if let (Some(a), Some(b)) = (self.int_rank(), other.int_rank()) {
            return a >= b;
        }
        match (self, other) {
            (PgType::Numeric, PgType::Double) => true,
            (PgType::Text | PgType::Jsonb, _) => true,
            (PgType::Varchar(n), PgType::Varchar(m)) => n >= m,
            (PgType::Timestamptz, PgType::Date | PgType::Timestamp) => true,
            (PgType::Custom(s), t) if s.to_ascii_lowercase().starts_with("numeric") => {
                t.int_rank().is_some() || *t == PgType::Double
            }
            _ => false,
        }
    }

    /// The type an existing column can be altered to in place so that it also holds `other`,
    /// without changing how its existing values read.
    pub fn widen_to(&self, other: &PgType) -> Option<PgType> {
        if let (Some(a), Some(b)) = (self.int_rank(), other.int_rank()) {
            return Some(if a >= b { self.clone() } else { other.clone() });
        }
        match (self, other) {
            (t, PgType::Double) if t.int_rank().is_some() => Some(PgType::Numeric),
            (PgType::Varchar(n), PgType::Varchar(m)) => Some(PgType::Varchar(*n.max(m))),
            (PgType::Varchar(_), PgType::Text) => Some(PgType::Text),
            (PgType::Date, PgType::Timestamptz) => Some(PgType::Timestamptz),
            _ => None,
        }
    }
}

/// How string values of a column are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binary {
    /// Not binary.
    #[default]
    None,
    /// Hexadecimal.
    Base16,
    /// Base64.
    Base64,
}

/// The column type for a schema property, and how its binary strings are encoded.
pub fn for_property(p: &Property) -> (PgType, Binary) {
    if let Some(declared) = &p.sql_datatype {
        return (PgType::parse(declared), binary_of(&p.ty));
    }
    (for_json(&p.ty), binary_of(&p.ty))
}

fn binary_of(ty: &JsonType) -> Binary {
    match ty {
        JsonType::String {
            content_encoding: Some(ContentEncoding::Base16),
            ..
        } => Binary::Base16,
        JsonType::String {
            content_encoding: Some(ContentEncoding::Base64),
            ..
        } => Binary::Base64,
        _ => Binary::None,
    }
}

fn for_json(ty: &JsonType) -> PgType {
    match ty {
        JsonType::Integer { minimum, maximum } => {
            let lo = minimum.as_ref().map(|n| n.to_string());
            let hi = maximum.as_ref().map(|n| n.to_string());
            integer_type(lo.as_deref(), hi.as_deref())
        }
        JsonType::Number { .. } => PgType::Numeric,
        JsonType::Boolean => PgType::Boolean,
        JsonType::String {
            format,
            max_length,
            content_encoding,
            ..
        } => {
            if content_encoding.is_some() {
                return PgType::Bytea;
            }
            match format {
                Some(StringFormat::DateTime) => PgType::Timestamptz,
                Some(StringFormat::Date) => PgType::Date,
                Some(StringFormat::Time) => PgType::Time,
                Some(StringFormat::Uuid) => PgType::Uuid,
                Some(StringFormat::Decimal) => PgType::Numeric,
                _ => match max_length {
                    Some(n) if *n >= 1 && *n <= MAX_VARCHAR => PgType::Varchar(*n as u32),
                    _ => PgType::Text,
                },
            }
        }
        JsonType::Object { .. } | JsonType::Array { .. } | JsonType::Untyped => PgType::Jsonb,
        JsonType::Union(members) => {
            let mapped: Vec<PgType> = members.iter().map(for_json).collect();
            mapped.into_iter().reduce(union_of).unwrap_or(PgType::Jsonb)
        }
    }
}

/// The narrowest type that holds both.
fn union_of(a: PgType, b: PgType) -> PgType {
    if a.holds(&b) {
        return a;
    }
    if b.holds(&a) {
        return b;
    }
    if let Some(w) = a.widen_to(&b) {
        return w;
    }
    if a == PgType::Jsonb || b == PgType::Jsonb {
        PgType::Jsonb
    } else {
        PgType::Text
    }
}

/// The smallest integer type for the bounds; `numeric` beyond 64 bits, `bigint` unbounded.
fn integer_type(min: Option<&str>, max: Option<&str>) -> PgType {
    let parse = |s: Option<&str>| s.map(|s| s.parse::<i128>().ok());
    match (parse(min), parse(max)) {
        (Some(None), _) | (_, Some(None)) => PgType::Numeric,
        (Some(Some(lo)), Some(Some(hi))) => {
            if lo >= i128::from(i16::MIN) && hi <= i128::from(i16::MAX) {
                PgType::SmallInt
            } else if lo >= i128::from(i32::MIN) && hi <= i128::from(i32::MAX) {
                PgType::Integer
            } else if lo >= i128::from(i64::MIN) && hi <= i128::from(i64::MAX) {
                PgType::BigInt
            } else {
                PgType::Numeric
            }
        }
        (_, Some(Some(hi))) if hi > i128::from(i64::MAX) => PgType::Numeric,
        _ => PgType::BigInt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use singer_core::StreamSchema;

    fn ty(schema: serde_json::Value) -> PgType {
        let s = StreamSchema::compile("s", &json!({"properties": {"c": schema}}), &[]).unwrap();
        for_property(&s.properties[0]).0
    }

    #[test]
    fn mapping() {
        assert_eq!(
            ty(json!({"type": "integer", "minimum": -32768, "maximum": 32767})),
            PgType::SmallInt
        );
        assert_eq!(
            ty(json!({"type": "integer", "minimum": 0, "maximum": 4294967295u64})),
            PgType::BigInt
        );
        assert_eq!(
            ty(json!({"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64})),
            PgType::Numeric
        );
        assert_eq!(ty(json!({"type": ["null", "integer"]})), PgType::BigInt);
        assert_eq!(
            ty(json!({"type": "number", "multipleOf": 0.01})),
            PgType::Numeric
        );
        assert_eq!(
            ty(json!({"type": "string", "format": "date-time"})),
            PgType::Timestamptz
        );
        assert_eq!(
            ty(json!({"type": "string", "maxLength": 255})),
            PgType::Varchar(255)
        );
        assert_eq!(
            ty(json!({"type": "string", "contentEncoding": "base64"})),
            PgType::Bytea
        );
        assert_eq!(ty(json!({"type": ["integer", "number"]})), PgType::Numeric);
        assert_eq!(ty(json!({"type": ["integer", "string"]})), PgType::Text);
        assert_eq!(
            ty(
                json!({"anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}]})
            ),
            PgType::Timestamptz
        );
        assert_eq!(ty(json!({"type": ["object", "string"]})), PgType::Jsonb);
        assert_eq!(ty(json!({})), PgType::Jsonb);
        assert_eq!(
            ty(json!({"type": "string", "x-sql-datatype": "numeric(65,30)"})),
            PgType::Custom("numeric(65,30)".into())
        );
        assert_eq!(
            ty(json!({"type": "integer", "x-sql-datatype": "smallint"})),
            PgType::SmallInt
        );
    }

    #[test]
    fn widening() {
        assert_eq!(
            PgType::SmallInt.widen_to(&PgType::BigInt),
            Some(PgType::BigInt)
        );
        assert_eq!(
            PgType::Integer.widen_to(&PgType::Double),
            Some(PgType::Numeric)
        );
        assert_eq!(
            PgType::Varchar(10).widen_to(&PgType::Varchar(20)),
            Some(PgType::Varchar(20))
        );
        assert_eq!(
            PgType::Date.widen_to(&PgType::Timestamptz),
            Some(PgType::Timestamptz)
        );
        assert_eq!(PgType::Boolean.widen_to(&PgType::Date), None);
        assert!(PgType::Text.holds(&PgType::BigInt));
        assert!(!PgType::BigInt.holds(&PgType::Text));
        assert_eq!(PgType::parse("character varying(12)"), PgType::Varchar(12));
    }
}
