//! The JSON Schema subset Singer uses, compiled once into a typed model for targets.
//!
//! A stream's schema is compiled into [`StreamSchema`]: one [`Property`] per top-level property
//! with a [`JsonType`] and nullability. Targets map that model to storage types instead of
//! walking JSON on every record.
//!
//! Understood: `type` as a string or a list (with `"null"` for nullability), `anyOf`/`oneOf`
//! unions, `format` (`date-time`, `date`, `time`, `uuid`, `singer.decimal`, `x-singer.decimal`),
//! `multipleOf`, `minimum`/`maximum` (and the exclusive forms), `maxLength`,
//! `contentEncoding`, `x-sql-datatype`, nested `properties` and `items`, local `$ref`s
//! (`#/definitions/...`, `#/$defs/...`). A property with no type information is untyped.

use serde_json::{Map, Number, Value};

use crate::error::{Classify, ErrorClass};

/// A stream schema that cannot be used by a target.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The schema is not an object schema.
    #[error("schema of stream `{stream}` is not an object schema")]
    NotAnObject {
        /// The stream.
        stream: String,
    },
    /// The schema has no `properties`.
    #[error("schema of stream `{stream}` has no `properties`")]
    NoProperties {
        /// The stream.
        stream: String,
    },
    /// A key property is not among the properties.
    #[error("key property `{key}` of stream `{stream}` is not in its schema")]
    UnknownKey {
        /// The stream.
        stream: String,
        /// The key property.
        key: String,
    },
}

impl Classify for SchemaError {
    fn class(&self) -> ErrorClass {
        ErrorClass::Fatal
    }
}

/// The format of a string property, as far as targets care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringFormat {
    /// RFC 3339 date-time.
    DateTime,
    /// Calendar date.
    Date,
    /// Time of day (or a duration, as MySQL's TIME).
    Time,
    /// UUID.
    Uuid,
    /// A decimal number carried as a string (`singer.decimal`, `x-singer.decimal`).
    Decimal,
    /// Any other format, kept for reference.
    Other(String),
}

/// How binary content is encoded in a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// Hexadecimal.
    Base16,
    /// Base64.
    Base64,
}

/// The type of a value, without nullability.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonType {
    /// `integer`, with bounds when the source width is known.
    Integer {
        /// `minimum`, exact.
        minimum: Option<Number>,
        /// `maximum`, exact.
        maximum: Option<Number>,
    },
    /// `number`.
    Number {
        /// `multipleOf`, exact (e.g. `0.01` for a scale of 2).
        multiple_of: Option<Number>,
        /// `minimum`/`exclusiveMinimum`.
        minimum: Option<Number>,
        /// `maximum`/`exclusiveMaximum`.
        maximum: Option<Number>,
    },
    /// `boolean`.
    Boolean,
    /// `string`.
    String {
        /// `format`.
        format: Option<StringFormat>,
        /// `maxLength`.
        max_length: Option<u64>,
        /// `contentEncoding`.
        content_encoding: Option<ContentEncoding>,
        /// `minLength`/`maxLength` equal: a fixed-length string.
        fixed: bool,
    },
    /// `object`, with its properties when declared.
    Object {
        /// Declared properties (`None` when the schema has none: any object).
        properties: Option<Vec<Property>>,
    },
    /// `array`, with its item type when declared.
    Array {
        /// The item type.
        items: Option<Box<Property>>,
    },
    /// Several non-null types (`["integer","string"]`, `anyOf`).
    Union(Vec<JsonType>),
    /// No type information: any JSON value.
    Untyped,
}

/// A property of an object schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Property {
    /// The property name as given by the source.
    pub name: String,
    /// Its type.
    pub ty: JsonType,
    /// Whether `null` is allowed.
    pub nullable: bool,
    /// `x-sql-datatype`, if the tap asked for a specific storage type.
    pub sql_datatype: Option<String>,
}

/// A compiled stream schema.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSchema {
    /// The stream name.
    pub stream: String,
    /// Top-level properties in schema order.
    pub properties: Vec<Property>,
    /// Key properties.
    pub key_properties: Vec<String>,
}

const MAX_REF_DEPTH: usize = 32;

impl StreamSchema {
    /// Compiles a SCHEMA message's schema.
    pub fn compile(
        stream: &str,
        schema: &Value,
        key_properties: &[String],
    ) -> Result<Self, SchemaError> {
        let obj = schema.as_object().ok_or_else(|| SchemaError::NotAnObject {
            stream: stream.to_string(),
        })?;
        let types = type_names(obj);
        if !types.is_empty() && !types.iter().any(|t| t == "object") {
            return Err(SchemaError::NotAnObject {
                stream: stream.to_string(),
            });
        }
        let Some(Value::Object(props)) = obj.get("properties") else {
            return Err(SchemaError::NoProperties {
                stream: stream.to_string(),
            });
        };
        let ctx = Ctx { root: schema };
        let properties: Vec<Property> = props
            .iter()
            .map(|(name, s)| ctx.property(name, s, 0))
            .collect();
        for key in key_properties {
            if !properties.iter().any(|p| &p.name == key) {
                return Err(SchemaError::UnknownKey {
                    stream: stream.to_string(),
                    key: key.clone(),
                });
            }
        }
        Ok(Self {
            stream: stream.to_string(),
            properties,
            key_properties: key_properties.to_vec(),
        })
    }

    /// The property with this name.
    pub fn property(&self, name: &str) -> Option<&Property> {
        self.properties.iter().find(|p| p.name == name)
    }
}

fn type_names(obj: &Map<String, Value>) -> Vec<String> {
    match obj.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

fn number(obj: &Map<String, Value>, key: &str) -> Option<Number> {
    match obj.get(key) {
        Some(Value::Number(n)) => Some(n.clone()),
        _ => None,
    }
}

/// A bound: the draft-6+ numeric `exclusiveMinimum` wins over `minimum` (draft 4 used a
/// boolean `exclusiveMinimum` next to `minimum`, which keeps `minimum` as the bound).
fn bound(obj: &Map<String, Value>, plain: &str, exclusive: &str) -> Option<Number> {
    number(obj, exclusive).or_else(|| number(obj, plain))
}

struct Ctx<'a> {
    root: &'a Value,
}

impl Ctx<'_> {
    fn resolve<'v>(&'v self, schema: &'v Value, depth: usize) -> Option<&'v Value> {
        let reference = schema.get("$ref").and_then(Value::as_str);
        let Some(reference) = reference else {
            return Some(schema);
        };
        if depth >= MAX_REF_DEPTH {
            return None;
        }
        let pointer = reference.strip_prefix('#')?;
        let target = self.root.pointer(pointer)?;
        self.resolve(target, depth + 1)
    }

    fn property(&self, name: &str, schema: &Value, depth: usize) -> Property {
        let (ty, nullable) = self.type_of(schema, depth);
        let sql_datatype = schema
            .get("x-sql-datatype")
            .and_then(Value::as_str)
            .map(str::to_string);
        Property {
            name: name.to_string(),
            ty,
            nullable,
            sql_datatype,
        }
    }

    /// The type of a schema node and whether it admits null.
    fn type_of(&self, schema: &Value, depth: usize) -> (JsonType, bool) {
        let Some(resolved) = self.resolve(schema, depth) else {
            return (JsonType::Untyped, true);
        };
        let Some(obj) = resolved.as_object() else {
            return (JsonType::Untyped, true);
        };
        if depth > MAX_REF_DEPTH {
            return (JsonType::Untyped, true);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(members)) = obj.get(key) {
                let mut nullable = false;
                let mut types = Vec::new();
                for m in members {
                    let (t, n) = self.type_of(m, depth + 1);
                    nullable |= n;
                    if !(matches!(t, JsonType::Untyped) && is_null_only(m)) {
                        push_unique(&mut types, t);
                    }
                }
                return (collapse(types), nullable);
            }
        }
        let names = type_names(obj);
        if names.is_empty() {
            // `{}` or a schema with only `properties`: untyped unless it looks like an object.
            if obj.contains_key("properties") {
                return (self.object(obj, depth), true);
            }
            return (JsonType::Untyped, true);
        }
        let nullable = names.iter().any(|n| n == "null");
        let mut types = Vec::new();
        for n in names.iter().filter(|n| *n != "null") {
            push_unique(&mut types, self.single(n, obj, depth));
        }
        if types.is_empty() {
            return (JsonType::Untyped, true);
        }
        (collapse(types), nullable)
    }

    fn single(&self, name: &str, obj: &Map<String, Value>, depth: usize) -> JsonType {
        match name {
            "integer" => JsonType::Integer {
                minimum: bound(obj, "minimum", "exclusiveMinimum"),
                maximum: bound(obj, "maximum", "exclusiveMaximum"),
            },
            "number" => JsonType::Number {
                multiple_of: number(obj, "multipleOf"),
                minimum: bound(obj, "minimum", "exclusiveMinimum"),
                maximum: bound(obj, "maximum", "exclusiveMaximum"),
            },
            "boolean" => JsonType::Boolean,
            "string" => {
                let format = obj.get("format").and_then(Value::as_str).map(|f| match f {
                    "date-time" => StringFormat::DateTime,
                    "date" => StringFormat::Date,
                    "time" => StringFormat::Time,
                    "uuid" => StringFormat::Uuid,
                    "singer.decimal" | "x-singer.decimal" => StringFormat::Decimal,
                    other => StringFormat::Other(other.to_string()),
                });
                let content_encoding =
                    obj.get("contentEncoding")
                        .and_then(Value::as_str)
                        .and_then(|e| match e.to_ascii_lowercase().as_str() {
                            "base16" | "hex" => Some(ContentEncoding::Base16),
                            "base64" => Some(ContentEncoding::Base64),
                            _ => None,
                        });
                let max_length = obj.get("maxLength").and_then(Value::as_u64);
                let min_length = obj.get("minLength").and_then(Value::as_u64);
                JsonType::String {
                    format,
                    max_length,
                    content_encoding,
                    fixed: max_length.is_some() && max_length == min_length,
                }
            }
            "object" => self.object(obj, depth),
            "array" => JsonType::Array {
                items: obj
                    .get("items")
                    .filter(|i| i.is_object())
                    .map(|i| Box::new(self.property("items", i, depth + 1))),
            },
            _ => JsonType::Untyped,
        }
    }

    fn object(&self, obj: &Map<String, Value>, depth: usize) -> JsonType {
        let properties = match obj.get("properties") {
            Some(Value::Object(p)) if !p.is_empty() => Some(
                p.iter()
                    .map(|(n, s)| self.property(n, s, depth + 1))
                    .collect(),
            ),
            _ => None,
        };
        JsonType::Object { properties }
    }
}

fn is_null_only(schema: &Value) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "null",
        Some(Value::Array(ts)) => ts.iter().all(|t| t == "null"),
        _ => false,
    }
}

fn push_unique(types: &mut Vec<JsonType>, t: JsonType) {
    if let JsonType::Union(inner) = t {
        for i in inner {
            push_unique(types, i);
        }
    } else if !types.contains(&t) {
        types.push(t);
    }
}

fn collapse(mut types: Vec<JsonType>) -> JsonType {
    match types.len() {
        0 => JsonType::Untyped,
        1 => types.remove(0),
        _ => JsonType::Union(types),
    }
}

impl JsonType {
    /// For a number with a power-of-ten `multipleOf` (`0.01`), the decimal scale (`2`).
    pub fn decimal_scale(&self) -> Option<u32> {
        let JsonType::Number {
            multiple_of: Some(m),
            ..
        } = self
        else {
            return None;
        };
        scale_of_power_of_ten(&m.to_string())
    }
}

/// `"0.01"` → 2, `"1e-30"` → 30, `"1"` → 0; `None` when not a power of ten at or below 1.
pub fn scale_of_power_of_ten(text: &str) -> Option<u32> {
    let text = text.trim();
    if let Some((mantissa, exp)) = text.split_once(['e', 'E']) {
        let exp: i64 = exp.parse().ok()?;
        let m: f64 = mantissa.parse().ok()?;
        if m != 1.0 || exp > 0 {
            return None;
        }
        return u32::try_from(-exp).ok();
    }
    match text.split_once('.') {
        None => (text == "1").then_some(0),
        Some((int, frac)) => {
            if int != "0" && int != "1" {
                return None;
            }
            if int == "1" {
                return frac.bytes().all(|b| b == b'0').then_some(0);
            }
            let digits = frac.trim_end_matches('0');
            let (zeros, last) = digits.split_at(digits.len().checked_sub(1)?);
            (last == "1" && zeros.bytes().all(|b| b == b'0')).then_some(digits.len() as u32)
        }
    }
}

/// A JSON number from its exact decimal text (`null` when it is not one), for schema bounds
/// wider than any machine number.
pub fn exact_number(text: &str) -> Value {
    text.parse::<Number>()
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// The `multipleOf` of a decimal with `scale` digits after the point: a plain decimal while
/// short (`1`, `0.01`, up to ten places), an exponent beyond (`1e-30`). The inverse of
/// [`scale_of_power_of_ten`].
pub fn decimal_step(scale: u64) -> Value {
    let text = match scale {
        0 => "1".to_string(),
        s @ 1..=10 => format!("0.{}1", "0".repeat(s as usize - 1)),
        s => format!("1e-{s}"),
    };
    exact_number(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compiles_common_shapes() {
        let schema = json!({"type": "object", "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615u64},
            "price": {"type": ["null", "number"], "multipleOf": 0.01},
            "at": {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            "mixed": {"type": ["integer", "string"]},
            "blob": {"type": "string", "contentEncoding": "base64"},
            "any": {},
            "tags": {"type": "array", "items": {"type": "string"}},
            "obj": {"type": "object", "properties": {"a": {"type": "boolean"}}},
            "d": {"type": "string", "format": "x-singer.decimal", "x-sql-datatype": "numeric(65,30)"}
        }});
        let s = StreamSchema::compile("s", &schema, &["id".to_string()]).unwrap();
        let p = |n: &str| s.property(n).unwrap().clone();
        assert!(matches!(
            p("id").ty,
            JsonType::Integer {
                maximum: Some(_),
                ..
            }
        ));
        assert!(!p("id").nullable);
        assert!(p("price").nullable);
        assert_eq!(p("price").ty.decimal_scale(), Some(2));
        assert!(p("at").nullable);
        assert!(matches!(
            p("at").ty,
            JsonType::String {
                format: Some(StringFormat::DateTime),
                ..
            }
        ));
        assert!(matches!(p("mixed").ty, JsonType::Union(ref v) if v.len() == 2));
        assert!(matches!(
            p("blob").ty,
            JsonType::String {
                content_encoding: Some(ContentEncoding::Base64),
                ..
            }
        ));
        assert_eq!(p("any").ty, JsonType::Untyped);
        assert!(matches!(p("tags").ty, JsonType::Array { items: Some(_) }));
        assert_eq!(p("d").sql_datatype.as_deref(), Some("numeric(65,30)"));
    }

    #[test]
    fn rejects_non_object_schemas() {
        assert!(StreamSchema::compile("s", &json!({"type": "object"}), &[]).is_err());
        assert!(
            StreamSchema::compile("s", &json!({"type": "string", "properties": {}}), &[]).is_err()
        );
        let e = StreamSchema::compile("s", &json!({"properties": {"a": {}}}), &["b".into()]);
        assert!(matches!(e, Err(SchemaError::UnknownKey { .. })));
    }

    #[test]
    fn local_refs_resolve_and_recursion_stops() {
        let schema = json!({"definitions": {"n": {"type": "array", "items": {"$ref": "#/definitions/n"}}},
            "properties": {"a": {"$ref": "#/definitions/n"}}});
        let s = StreamSchema::compile("s", &schema, &[]).unwrap();
        assert!(matches!(s.properties[0].ty, JsonType::Array { .. }));
    }

    #[test]
    fn power_of_ten_scales() {
        assert_eq!(scale_of_power_of_ten("0.01"), Some(2));
        assert_eq!(scale_of_power_of_ten("1e-30"), Some(30));
        assert_eq!(scale_of_power_of_ten("1"), Some(0));
        assert_eq!(scale_of_power_of_ten("0.05"), None);
        assert_eq!(scale_of_power_of_ten("10"), None);
    }

    #[test]
    fn decimal_steps_are_exact_and_read_back() {
        assert_eq!(decimal_step(0).to_string(), "1");
        assert_eq!(decimal_step(2).to_string(), "0.01");
        assert_eq!(decimal_step(10).to_string(), "0.0000000001");
        assert_eq!(decimal_step(30).to_string(), "1e-30");
        for scale in 0..=40 {
            let step = decimal_step(scale).to_string();
            assert_eq!(scale_of_power_of_ten(&step), Some(scale as u32), "{step}");
        }
        assert_eq!(exact_number("-9999999999.99").to_string(), "-9999999999.99");
        assert_eq!(
            exact_number("340282366920938463463374607431768211455")
                .to_string()
                .len(),
            39
        );
        assert_eq!(exact_number("x"), Value::Null);
    }
}
