//! The column model: what information_schema says about a column, the kind of value it holds,
//! and the JSON Schema a Singer target sees for it.

use serde_json::{Map, Value, json};
use singer_core::schema::{decimal_step, exact_number};

/// A column as information_schema describes it.
#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub(crate) name: String,
    /// `DATA_TYPE`, lower case (`int`, `varchar`, `inet6`, ...).
    pub(crate) data_type: String,
    /// `COLUMN_TYPE`, lower case (`int(10) unsigned`, `enum('a','b')`, ...).
    pub(crate) column_type: String,
    pub(crate) char_max_length: Option<u64>,
    pub(crate) numeric_precision: Option<u64>,
    pub(crate) numeric_scale: Option<u64>,
    pub(crate) charset: Option<String>,
    pub(crate) is_primary: bool,
    /// True for a MariaDB LONGTEXT carrying a `json_valid()` check.
    pub(crate) is_json_check: bool,
}

/// How values of a column are read and written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Int {
        bytes: u8,
        unsigned: bool,
    },
    Bool,
    Bit {
        width: u32,
    },
    Decimal {
        scale: u64,
    },
    Float,
    Double,
    Date,
    DateTime,
    Timestamp,
    Time,
    Year,
    Text {
        latin1: bool,
    },
    /// `fixed`: the length of a BINARY(n), whose trailing zero bytes the binlog drops.
    Binary {
        fixed: Option<u64>,
    },
    Enum {
        labels: Vec<String>,
    },
    Set {
        labels: Vec<String>,
    },
    Json,
    Spatial,
    Uuid,
    Inet {
        v6: bool,
    },
    Unsupported,
}

/// Options that change how a column is modelled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KindOptions {
    pub(crate) tinyint1_as_boolean: bool,
}

impl ColumnInfo {
    /// The kind of value this column holds.
    pub(crate) fn kind(&self, opts: KindOptions) -> Kind {
        let unsigned = self.column_type.contains("unsigned");
        match self.data_type.as_str() {
            "tinyint" if opts.tinyint1_as_boolean && self.column_type.starts_with("tinyint(1)") => {
                Kind::Bool
            }
            "tinyint" => Kind::Int { bytes: 1, unsigned },
            "smallint" => Kind::Int { bytes: 2, unsigned },
            "mediumint" => Kind::Int { bytes: 3, unsigned },
            "int" | "integer" => Kind::Int { bytes: 4, unsigned },
            "bigint" => Kind::Int { bytes: 8, unsigned },
            "bit" => match self.numeric_precision.unwrap_or(1) {
                1 => Kind::Bool,
                w => Kind::Bit { width: w as u32 },
            },
            "decimal" | "numeric" => Kind::Decimal {
                scale: self.numeric_scale.unwrap_or(0),
            },
            "float" => Kind::Float,
            "double" | "real" => Kind::Double,
            "date" => Kind::Date,
            "datetime" => Kind::DateTime,
            "timestamp" => Kind::Timestamp,
            "time" => Kind::Time,
            "year" => Kind::Year,
            "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => {
                if self.is_json_check {
                    Kind::Json
                } else {
                    Kind::Text {
                        latin1: self.charset.as_deref() == Some("latin1"),
                    }
                }
            }
            "binary" => Kind::Binary {
                fixed: self.char_max_length,
            },
            "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => {
                Kind::Binary { fixed: None }
            }
            "enum" => Kind::Enum {
                labels: parse_labels(&self.column_type),
            },
            "set" => Kind::Set {
                labels: parse_labels(&self.column_type),
            },
            "json" => Kind::Json,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" | "geomcollection" => Kind::Spatial,
            "uuid" => Kind::Uuid,
            "inet4" => Kind::Inet { v6: false },
            "inet6" => Kind::Inet { v6: true },
            _ => Kind::Unsupported,
        }
    }

    /// The JSON Schema of the column's values, or `None` when the type is unsupported.
    pub(crate) fn json_schema(&self, kind: &Kind) -> Option<Value> {
        let nullable = !self.is_primary;
        let ty = |t: &str| {
            if nullable {
                json!(["null", t])
            } else {
                json!([t])
            }
        };
        let mut s = Map::new();
        match kind {
            Kind::Int { bytes, unsigned } => {
                let bits = u32::from(*bytes) * 8;
                let (min, max): (i128, i128) = if *unsigned {
                    (0, (1i128 << bits) - 1)
                } else {
                    (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
                };
                s.insert("type".into(), ty("integer"));
                s.insert("minimum".into(), exact_number(&min.to_string()));
                s.insert("maximum".into(), exact_number(&max.to_string()));
            }
            Kind::Bool => {
                s.insert("type".into(), ty("boolean"));
            }
            Kind::Bit { width } => {
                s.insert("type".into(), ty("integer"));
                s.insert("minimum".into(), json!(0));
                let max = (1u128 << width) - 1;
                s.insert("maximum".into(), exact_number(&max.to_string()));
            }
            Kind::Decimal { scale } => {
                s.insert("type".into(), ty("number"));
                s.insert("multipleOf".into(), decimal_step(*scale));
                // The bounds of DECIMAL(p, s), so a reader (a BATCH file's Arrow column, a
                // target's numeric type) knows the precision as well as the scale.
                if let Some(p) = self.numeric_precision {
                    let max = decimal_max(p, *scale);
                    let min = if self.column_type.contains("unsigned") {
                        "0".to_string()
                    } else {
                        format!("-{max}")
                    };
                    s.insert("minimum".into(), exact_number(&min));
                    s.insert("maximum".into(), exact_number(&max));
                }
            }
            Kind::Float | Kind::Double => {
                s.insert("type".into(), ty("number"));
            }
            Kind::Date => {
                s.insert("type".into(), ty("string"));
                s.insert("format".into(), json!("date"));
            }
            Kind::DateTime | Kind::Timestamp => {
                s.insert("type".into(), ty("string"));
                s.insert("format".into(), json!("date-time"));
            }
            Kind::Time => {
                // No `format: time`: MySQL TIME spans -838:59:59..838:59:59, which RFC 3339
                // partial-time cannot hold. Values are `[-]H+:MM:SS[.ffffff]`.
                s.insert("type".into(), ty("string"));
            }
            Kind::Year => {
                s.insert("type".into(), ty("integer"));
                s.insert("minimum".into(), json!(0));
                s.insert("maximum".into(), json!(2155));
            }
            Kind::Text { .. } | Kind::Enum { .. } | Kind::Set { .. } => {
                s.insert("type".into(), ty("string"));
                if let Some(n) = self.char_max_length {
                    s.insert("maxLength".into(), json!(n));
                }
            }
            Kind::Binary { .. } => {
                s.insert("type".into(), ty("string"));
                s.insert("contentEncoding".into(), json!("base64"));
            }
            Kind::Json => {
                let mut t = vec!["object", "array", "string", "number", "boolean"];
                if nullable {
                    t.insert(0, "null");
                }
                s.insert("type".into(), json!(t));
            }
            Kind::Spatial => {
                s.insert("type".into(), ty("object"));
                s.insert("format".into(), json!("geojson"));
            }
            Kind::Uuid => {
                s.insert("type".into(), ty("string"));
                s.insert("format".into(), json!("uuid"));
            }
            Kind::Inet { .. } => {
                s.insert("type".into(), ty("string"));
            }
            Kind::Unsupported => return None,
        }
        Some(Value::Object(s))
    }
}

impl Kind {
    /// True when `ORDER BY` and `>=` on this column make a usable replication key.
    pub(crate) fn is_replication_key_candidate(&self) -> bool {
        matches!(
            self,
            Kind::Int { .. }
                | Kind::Decimal { .. }
                | Kind::Date
                | Kind::DateTime
                | Kind::Timestamp
                | Kind::Year
                | Kind::Text { .. }
                | Kind::Float
                | Kind::Double
        )
    }
}

/// The largest DECIMAL(`precision`, `scale`): `p - s` nines, a point, `s` nines.
fn decimal_max(precision: u64, scale: u64) -> String {
    let int_digits = precision.saturating_sub(scale) as usize;
    let mut max = if int_digits == 0 {
        "0".to_string()
    } else {
        "9".repeat(int_digits)
    };
    if scale > 0 {
        max.push('.');
        max.push_str(&"9".repeat(scale as usize));
    }
    max
}

/// The labels of `enum('a','b''c')` or `set(...)`, unescaped.
pub(crate) fn parse_labels(column_type: &str) -> Vec<String> {
    let Some(start) = column_type.find('(') else {
        return Vec::new();
    };
    let body = &column_type[start + 1..];
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut label = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    label.push('\'');
                }
                '\'' => break,
                '\\' => {
                    if let Some(n) = chars.next() {
                        label.push(n);
                    }
                }
                c => label.push(c),
            }
        }
        labels.push(label);
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(data_type: &str, column_type: &str) -> ColumnInfo {
        ColumnInfo {
            name: "c".into(),
            data_type: data_type.into(),
            column_type: column_type.into(),
            char_max_length: None,
            numeric_precision: None,
            numeric_scale: None,
            charset: None,
            is_primary: false,
            is_json_check: false,
        }
    }
    const OPTS: KindOptions = KindOptions {
        tinyint1_as_boolean: true,
    };

    #[test]
    fn integer_bounds_follow_width_and_sign() {
        let c = col("bigint", "bigint(20) unsigned");
        let s = c.json_schema(&c.kind(OPTS)).unwrap();
        assert_eq!(s["maximum"].to_string(), "18446744073709551615");
        let c = col("mediumint", "mediumint(9)");
        let s = c.json_schema(&c.kind(OPTS)).unwrap();
        assert_eq!(s["minimum"].to_string(), "-8388608");
    }

    #[test]
    fn labels_are_unescaped() {
        assert_eq!(
            parse_labels("enum('a','b''c','d,e')"),
            vec!["a", "b'c", "d,e"]
        );
    }

    #[test]
    fn decimal_step_is_exact() {
        let mut c = col("decimal", "decimal(65,30)");
        c.numeric_scale = Some(30);
        c.numeric_precision = Some(65);
        let s = c.json_schema(&c.kind(OPTS)).unwrap();
        assert_eq!(s["multipleOf"].to_string(), "1e-30");
        let max = format!("{}.{}", "9".repeat(35), "9".repeat(30));
        assert_eq!(s["maximum"].to_string(), max);
        assert_eq!(s["minimum"].to_string(), format!("-{max}"));
        let mut c = col("decimal", "decimal(4,4) unsigned");
        c.numeric_scale = Some(4);
        c.numeric_precision = Some(4);
        let s = c.json_schema(&c.kind(OPTS)).unwrap();
        assert_eq!(s["maximum"].to_string(), "0.9999");
        assert_eq!(s["minimum"].to_string(), "0");
    }
}
