//! Binlog row values into the values the snapshot reads, so one encoder serves both. The
//! binlog differs from the client protocol: unsigned and MEDIUMINT signs, TIMESTAMP as epoch
//! text, ENUM as an index, SET as a bitmask, UUID and INET6 as raw bytes.

use mysql_async::Value;
use mysql_async::binlog::value::BinlogValue;

use crate::column::Kind;

/// Converts one binlog value of a column of `kind`.
pub(crate) fn normalize(kind: &Kind, value: &BinlogValue<'_>) -> Result<Value, String> {
    let v = match value {
        BinlogValue::Value(v) => v.clone(),
        BinlogValue::Jsonb(_) => Value::try_from(value.clone()).map_err(|e| e.to_string())?,
        BinlogValue::JsonDiff(_) => {
            return Err(
                "partial JSON update in the binlog (set binlog_row_value_options='')".into(),
            );
        }
    };
    Ok(fix(kind, v))
}

fn fix(kind: &Kind, v: Value) -> Value {
    match (kind, v) {
        // mysql_common does not sign-extend 24-bit integers read from the binlog.
        (
            Kind::Int {
                bytes: 3,
                unsigned: false,
            },
            Value::Int(i),
        ) if i >= 1 << 23 => Value::Int(i - (1 << 24)),
        // Without binlog_row_metadata=FULL signedness is unknown and values arrive signed.
        (
            Kind::Int {
                bytes,
                unsigned: true,
            },
            Value::Int(i),
        ) if i < 0 => {
            let bits = u32::from(*bytes) * 8;
            let mask = if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            };
            Value::UInt(i as u64 & mask)
        }
        // The binlog carries text in the column's character set, not the session's.
        (Kind::Text { latin1: true }, Value::Bytes(b)) if !b.is_ascii() => {
            let s: String = b.iter().map(|&c| char::from(c)).collect();
            Value::Bytes(s.into_bytes())
        }
        (Kind::Timestamp, Value::Bytes(b)) => epoch_to_date(&b).unwrap_or(Value::Bytes(b)),
        (Kind::Enum { labels }, Value::Int(i)) => enum_label(labels, i),
        (Kind::Enum { labels }, Value::UInt(u)) => enum_label(labels, u as i64),
        (Kind::Set { labels }, Value::Bytes(b)) => {
            let mask = b
                .iter()
                .rev()
                .fold(0u64, |acc, x| (acc << 8) | u64::from(*x));
            set_labels(labels, mask)
        }
        (Kind::Set { labels }, Value::Int(i)) => set_labels(labels, i as u64),
        (Kind::Set { labels }, Value::UInt(u)) => set_labels(labels, u),
        // Fixed-length binary values lose their trailing zero bytes in the binlog.
        (Kind::Binary { fixed: Some(n) }, Value::Bytes(mut b)) => {
            let n = usize::try_from(*n).unwrap_or(0);
            if b.len() < n {
                b.resize(n, 0);
            }
            Value::Bytes(b)
        }
        (Kind::Inet { v6: true }, Value::Bytes(mut b)) if b.len() <= 16 => {
            b.resize(16, 0);
            let a: [u8; 16] = b.as_slice().try_into().unwrap_or([0; 16]);
            Value::Bytes(std::net::Ipv6Addr::from(a).to_string().into_bytes())
        }
        (Kind::Inet { v6: false }, Value::Bytes(mut b)) if b.len() <= 4 => {
            b.resize(4, 0);
            let a: [u8; 4] = b.as_slice().try_into().unwrap_or([0; 4]);
            Value::Bytes(std::net::Ipv4Addr::from(a).to_string().into_bytes())
        }
        (Kind::Uuid, Value::Bytes(mut b)) if b.len() <= 16 => {
            b.resize(16, 0);
            Value::Bytes(uuid_text(&b).into_bytes())
        }
        // YEAR 0000 is stored as 0 and decoded as 1900, which YEAR cannot hold otherwise.
        (Kind::Year, Value::Int(1900)) => Value::Int(0),
        (Kind::Year, Value::Bytes(b)) if b.as_slice() == b"1900" => Value::Int(0),
        (_, v) => v,
    }
}

fn enum_label(labels: &[String], index: i64) -> Value {
    // Index 0 is MySQL's empty "error" value.
    let label = usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| labels.get(i))
        .map_or("", String::as_str);
    Value::Bytes(label.as_bytes().to_vec())
}

fn set_labels(labels: &[String], mask: u64) -> Value {
    let chosen: Vec<&str> = labels
        .iter()
        .enumerate()
        .filter(|(i, _)| *i < 64 && mask & (1 << i) != 0)
        .map(|(_, l)| l.as_str())
        .collect();
    Value::Bytes(chosen.join(",").into_bytes())
}

/// `1704067200.123` (seconds since the epoch, UTC) into a date value; `0` is the zero date.
fn epoch_to_date(b: &[u8]) -> Option<Value> {
    let s = std::str::from_utf8(b).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().ok()?;
    let micros: u32 = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
        digits.parse().ok()?
    };
    if secs == 0 && micros == 0 {
        return Some(Value::Date(0, 0, 0, 0, 0, 0, 0));
    }
    let t = chrono::DateTime::from_timestamp(secs, micros * 1000)?;
    use chrono::{Datelike, Timelike};
    Some(Value::Date(
        u16::try_from(t.year()).ok()?,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
        micros,
    ))
}

/// MariaDB's UUID type stores its 16 bytes in text order.
fn uuid_text(b: &[u8]) -> String {
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mediumint_sign_is_restored() {
        let k = Kind::Int {
            bytes: 3,
            unsigned: false,
        };
        assert_eq!(fix(&k, Value::Int(16_777_215)), Value::Int(-1));
        assert_eq!(fix(&k, Value::Int(8_388_608)), Value::Int(-8_388_608));
        assert_eq!(fix(&k, Value::Int(5)), Value::Int(5));
    }

    #[test]
    fn unsigned_values_without_metadata() {
        let k = Kind::Int {
            bytes: 8,
            unsigned: true,
        };
        assert_eq!(fix(&k, Value::Int(-1)), Value::UInt(u64::MAX));
        let k = Kind::Int {
            bytes: 1,
            unsigned: true,
        };
        assert_eq!(fix(&k, Value::Int(-1)), Value::UInt(255));
    }

    #[test]
    fn timestamps_enums_and_sets() {
        assert_eq!(
            fix(&Kind::Timestamp, Value::Bytes(b"1704067200.123".to_vec())),
            Value::Date(2024, 1, 1, 0, 0, 0, 123_000)
        );
        let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        assert_eq!(
            fix(
                &Kind::Enum {
                    labels: labels.clone()
                },
                Value::Int(2)
            ),
            Value::Bytes(b"b".to_vec())
        );
        assert_eq!(
            fix(&Kind::Set { labels }, Value::Bytes(vec![5])),
            Value::Bytes(b"a,c".to_vec())
        );
    }
}
