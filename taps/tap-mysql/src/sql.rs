//! SQL text: quoted identifiers, typed placeholders, and key values as they are kept in state.
//! Values are always bound, never spliced.

use base64::Engine as _;
use mysql_async::Value;
use serde_json::{Value as Json, json};

use crate::column::Kind;

/// A backquoted identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `db`.`table`.
pub(crate) fn table_ref(db: &str, table: &str) -> String {
    format!("{}.{}", ident(db), ident(table))
}

/// A placeholder that compares exactly with a column of `kind`: decimals and times are cast
/// so MySQL does not compare them as floating point.
pub(crate) fn placeholder(kind: &Kind) -> &'static str {
    match kind {
        Kind::Decimal { .. } => "CAST(? AS DECIMAL(65,30))",
        Kind::DateTime | Kind::Timestamp => "CAST(? AS DATETIME(6))",
        Kind::Date => "CAST(? AS DATE)",
        _ => "?",
    }
}

/// A key column of a lexicographic comparison.
pub(crate) struct KeyCol<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: &'a Kind,
}

/// `(k1, k2, ...) <op> (v1, v2, ...)` written out lexicographically (`op` is `>` or `<`), with
/// equality allowed on all columns when `or_equal`. Returns the SQL and the bound values.
pub(crate) fn tuple_compare(
    cols: &[KeyCol<'_>],
    values: &[Value],
    op: &str,
    or_equal: bool,
) -> (String, Vec<Value>) {
    let mut terms = Vec::new();
    let mut params = Vec::new();
    for i in 0..cols.len() {
        let mut parts = Vec::new();
        for (c, v) in cols.iter().zip(values).take(i) {
            parts.push(format!("{} = {}", ident(c.name), placeholder(c.kind)));
            params.push(v.clone());
        }
        parts.push(format!(
            "{} {op} {}",
            ident(cols[i].name),
            placeholder(cols[i].kind)
        ));
        params.push(values[i].clone());
        terms.push(format!("({})", parts.join(" AND ")));
    }
    if or_equal {
        let mut parts = Vec::new();
        for (c, v) in cols.iter().zip(values) {
            parts.push(format!("{} = {}", ident(c.name), placeholder(c.kind)));
            params.push(v.clone());
        }
        terms.push(format!("({})", parts.join(" AND ")));
    }
    (format!("({})", terms.join(" OR ")), params)
}

/// A key value as kept in state: numbers as JSON numbers, temporal values in MySQL's own
/// literal form (so they bind back exactly), text as strings, other bytes as `{"base64": ..}`.
pub(crate) fn to_state(v: &Value) -> Json {
    match v {
        Value::NULL => Json::Null,
        Value::Int(i) => json!(i),
        Value::UInt(u) => json!(u),
        Value::Float(f) => json!(f),
        Value::Double(f) => json!(f),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => match s.parse::<serde_json::Number>() {
                // Decimal text stays an exact JSON number.
                Ok(n) if is_plain_number(s) => Json::Number(n),
                _ => json!(s),
            },
            Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(b)}),
        },
        Value::Date(y, mo, d, h, mi, s, us) => {
            json!(format!(
                "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}"
            ))
        }
        Value::Time(neg, days, h, m, s, us) => {
            let hours = u64::from(*days) * 24 + u64::from(*h);
            let sign = if *neg { "-" } else { "" };
            json!(format!("{sign}{hours:02}:{m:02}:{s:02}.{us:06}"))
        }
    }
}

fn is_plain_number(s: &str) -> bool {
    let body = s.strip_prefix('-').unwrap_or(s);
    !body.is_empty()
        && body.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        && !body.starts_with('.')
}

/// A state value back into a bindable value. ISO 8601 date-times as PipelineWise and the
/// Meltano SDK store them (`2024-01-02T03:04:05+00:00`) are turned into MySQL literals.
pub(crate) fn from_state(j: &Json) -> Value {
    match j {
        Json::Null => Value::NULL,
        Json::Bool(b) => Value::Int(i64::from(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Int(i)
            } else if let Some(u) = n.as_u64() {
                Value::UInt(u)
            } else {
                Value::Bytes(n.to_string().into_bytes())
            }
        }
        Json::String(s) => Value::Bytes(iso_to_mysql(s).into_bytes()),
        Json::Object(o) => match o.get("base64").and_then(Json::as_str) {
            Some(b) => Value::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_default(),
            ),
            None => Value::Bytes(j.to_string().into_bytes()),
        },
        Json::Array(_) => Value::Bytes(j.to_string().into_bytes()),
    }
}

/// `2024-01-02T03:04:05.5+00:00` (or `Z`) → `2024-01-02 03:04:05.5`; anything else unchanged.
/// Offsets other than zero are applied, since the session runs in UTC.
fn iso_to_mysql(s: &str) -> String {
    if s.len() < 19 || s.as_bytes().get(10) != Some(&b'T') {
        return s.to_string();
    }
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string(),
        Err(_) => s.replacen('T', " ", 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a`b"), "`a``b`");
    }

    #[test]
    fn tuple_comparison_is_lexicographic() {
        let k = Kind::Int {
            bytes: 4,
            unsigned: false,
        };
        let cols = [
            KeyCol {
                name: "a",
                kind: &k,
            },
            KeyCol {
                name: "b",
                kind: &k,
            },
        ];
        let (sql, params) = tuple_compare(&cols, &[Value::Int(1), Value::Int(2)], ">", false);
        assert_eq!(sql, "((`a` > ?) OR (`a` = ? AND `b` > ?))");
        assert_eq!(params.len(), 3);
        let (sql, _) = tuple_compare(&cols, &[Value::Int(1), Value::Int(2)], "<", true);
        assert!(sql.ends_with("OR (`a` = ? AND `b` = ?))"), "{sql}");
    }

    #[test]
    fn state_values_round_trip() {
        let d = Value::Date(2024, 1, 2, 3, 4, 5, 6);
        assert_eq!(to_state(&d), json!("2024-01-02 03:04:05.000006"));
        assert_eq!(
            to_state(&Value::Bytes(b"12.50".to_vec())).to_string(),
            "12.50"
        );
        assert_eq!(
            from_state(&json!("2024-01-02T03:04:05.5+00:00")),
            Value::Bytes(b"2024-01-02 03:04:05.500000".to_vec())
        );
        assert_eq!(from_state(&json!(u64::MAX)), Value::UInt(u64::MAX));
    }
}
