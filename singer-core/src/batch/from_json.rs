//! Records (raw JSON objects) into Arrow columns, exactly: see [`super::columns`] for the
//! types. A value a column cannot hold is an error naming the column; nothing is rounded.

use std::sync::Arc;

use arrow_array::builder::{
    ArrayBuilder, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Decimal256Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::i256;
use base64::Engine;
use serde_json::value::RawValue;

use super::columns::{BatchSchema, ColumnKind, UTC};
use crate::moment::{parse_time_of_day, unix_days, unix_micros};
use crate::record::RawFields;

/// A value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// The column.
    pub column: String,
    /// Why.
    pub message: String,
}

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "column `{}`: {}", self.column, self.message)
    }
}

impl std::error::Error for ValueError {}

enum Builder {
    Boolean(BooleanBuilder),
    Int16(Int16Builder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float64(Float64Builder),
    Decimal128(Decimal128Builder, u8, i8),
    Decimal256(Decimal256Builder, u8, i8),
    Utf8(StringBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Binary(BinaryBuilder),
}

impl Builder {
    fn new(kind: ColumnKind) -> Self {
        match kind {
            ColumnKind::Boolean => Builder::Boolean(BooleanBuilder::new()),
            ColumnKind::Int16 => Builder::Int16(Int16Builder::new()),
            ColumnKind::Int32 => Builder::Int32(Int32Builder::new()),
            ColumnKind::Int64 => Builder::Int64(Int64Builder::new()),
            ColumnKind::Float64 => Builder::Float64(Float64Builder::new()),
            ColumnKind::Decimal128(p, s) => Builder::Decimal128(
                Decimal128Builder::new()
                    .with_precision_and_scale(p, s)
                    .unwrap_or_default(),
                p,
                s,
            ),
            ColumnKind::Decimal256(p, s) => Builder::Decimal256(
                Decimal256Builder::new()
                    .with_precision_and_scale(p, s)
                    .unwrap_or_default(),
                p,
                s,
            ),
            ColumnKind::DecimalText | ColumnKind::Text | ColumnKind::Json => {
                Builder::Utf8(StringBuilder::new())
            }
            ColumnKind::Timestamp => {
                Builder::Timestamp(TimestampMicrosecondBuilder::new().with_timezone(UTC))
            }
            ColumnKind::Date => Builder::Date(Date32Builder::new()),
            ColumnKind::Time => Builder::Time(Time64MicrosecondBuilder::new()),
            ColumnKind::Base64 | ColumnKind::Base16 => Builder::Binary(BinaryBuilder::new()),
        }
    }

    fn null(&mut self) {
        match self {
            Builder::Boolean(b) => b.append_null(),
            Builder::Int16(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Decimal128(b, ..) => b.append_null(),
            Builder::Decimal256(b, ..) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int16(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Decimal128(b, ..) => Arc::new(b.finish()),
            Builder::Decimal256(b, ..) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish()),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Builder::Boolean(b) => b.len(),
            Builder::Int16(b) => b.len(),
            Builder::Int32(b) => b.len(),
            Builder::Int64(b) => b.len(),
            Builder::Float64(b) => b.len(),
            Builder::Decimal128(b, ..) => b.len(),
            Builder::Decimal256(b, ..) => b.len(),
            Builder::Utf8(b) => b.len(),
            Builder::Timestamp(b) => b.len(),
            Builder::Date(b) => b.len(),
            Builder::Time(b) => b.len(),
            Builder::Binary(b) => b.len(),
        }
    }

    /// Appends one non-null value given as raw JSON text.
    fn push(&mut self, kind: ColumnKind, raw: &str) -> Result<(), String> {
        match self {
            Builder::Boolean(b) => match raw {
                "true" => b.append_value(true),
                "false" => b.append_value(false),
                _ => return Err(format!("expected a boolean, got {}", clip(raw))),
            },
            Builder::Int16(b) => b.append_value(
                i16::try_from(integer(raw)?).map_err(|_| out_of_range(raw, "smallint"))?,
            ),
            Builder::Int32(b) => b.append_value(
                i32::try_from(integer(raw)?).map_err(|_| out_of_range(raw, "integer"))?,
            ),
            Builder::Int64(b) => b.append_value(
                i64::try_from(integer(raw)?).map_err(|_| out_of_range(raw, "bigint"))?,
            ),
            Builder::Float64(b) => b.append_value(exact_double(raw)?),
            Builder::Decimal128(b, p, s) => match plain_decimal(raw, *s, *p) {
                Some(v) => b.append_value(v),
                None => {
                    let digits = unscaled(number_text(raw)?, *s, *p)?;
                    b.append_value(digits.parse::<i128>().map_err(|e| e.to_string())?);
                }
            },
            Builder::Decimal256(b, p, s) => {
                let digits = unscaled(number_text(raw)?, *s, *p)?;
                b.append_value(digits.parse::<i256>().map_err(|e| e.to_string())?);
            }
            Builder::Utf8(b) => match kind {
                ColumnKind::Json => b.append_value(raw),
                ColumnKind::DecimalText => {
                    let t = number_text(raw)?;
                    if !is_decimal(t) {
                        return Err(format!("not a decimal: {}", clip(raw)));
                    }
                    b.append_value(t);
                }
                _ => b.append_value(&*string(raw)?),
            },
            Builder::Timestamp(b) => {
                let s = string(raw)?;
                b.append_value(unix_micros(&s).ok_or_else(|| {
                    format!(
                        "`{}` is not a date-time a 64-bit microsecond timestamp holds",
                        clip(&s)
                    )
                })?);
            }
            Builder::Date(b) => {
                let s = string(raw)?;
                let days = unix_days(&s)
                    .and_then(|d| i32::try_from(d).ok())
                    .ok_or_else(|| {
                        format!("`{}` is not a date a 32-bit day count holds", clip(&s))
                    })?;
                b.append_value(days);
            }
            Builder::Time(b) => {
                let s = string(raw)?;
                b.append_value(
                    parse_time_of_day(&s)
                        .ok_or_else(|| format!("`{}` is not a time of day", clip(&s)))?,
                );
            }
            Builder::Binary(b) => {
                let s = string(raw)?;
                let bytes = if kind == ColumnKind::Base16 {
                    hex(&s)
                } else {
                    base64::engine::general_purpose::STANDARD
                        .decode(s.as_bytes())
                        .map_err(|e| e.to_string())
                }
                .map_err(|e| format!("cannot decode binary content: {e}"))?;
                b.append_value(bytes);
            }
        }
        Ok(())
    }
}

fn clip(s: &str) -> String {
    if s.len() <= 60 {
        return s.to_string();
    }
    let mut end = 60;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn out_of_range(raw: &str, ty: &str) -> String {
    format!("{} is out of range for {ty}", clip(raw))
}

fn string(raw: &str) -> Result<std::borrow::Cow<'_, str>, String> {
    if !raw.starts_with('"') {
        return Err(format!("expected a string, got {}", clip(raw)));
    }
    if !raw.contains('\\') {
        return Ok(raw[1..raw.len() - 1].into());
    }
    serde_json::from_str::<String>(raw)
        .map(Into::into)
        .map_err(|e| e.to_string())
}

fn number_text(raw: &str) -> Result<&str, String> {
    // A JSON number, or a decimal carried as a string.
    let t = raw
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .unwrap_or(raw);
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return Err(format!("expected a number, got {}", clip(raw)));
    }
    Ok(t)
}

/// A decimal number in JSON's number syntax (`-12`, `1.50`, `1e-300`, `2.5E+7`), so it can be
/// written back into a record unquoted.
fn is_decimal(t: &str) -> bool {
    let t = t.strip_prefix('-').unwrap_or(t);
    let (mantissa, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e.strip_prefix(['-', '+']).unwrap_or(e))),
        None => (t, None),
    };
    let (int, frac) = match mantissa.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (mantissa, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(int)
        && (int == "0" || !int.starts_with('0'))
        && frac.is_none_or(digits)
        && exp.is_none_or(digits)
}

/// Appends the value of column `i` given as raw JSON text (`null` or a value).
fn push_value(
    schema: &BatchSchema,
    builder: &mut Builder,
    i: usize,
    raw: &str,
) -> Result<(), ValueError> {
    if raw == "null" {
        builder.null();
        return Ok(());
    }
    let column = &schema.columns[i];
    builder
        .push(column.kind, raw)
        .map_err(|message| ValueError {
            column: column.name.clone(),
            message,
        })
}

/// An integer (`12`, `-3`, `1.0`, `1e3`) as i128.
fn integer(raw: &str) -> Result<i128, String> {
    if let Some(v) = plain_decimal(raw, 0, 18) {
        return Ok(v);
    }
    let digits = unscaled(number_text(raw)?, 0, 39)
        .map_err(|_| format!("expected an integer, got {}", clip(raw)))?;
    digits
        .parse::<i128>()
        .map_err(|_| format!("integer {} is too large", clip(raw)))
}

/// The common spelling of a decimal, `-?digits(.digits)?` with at most `scale` digits after
/// the point and at most `precision` ≤ 38 significant digits, scaled by 10^scale without
/// allocating; `None` for any other text (quoted, exponent, too many digits), which
/// [`unscaled`] then decides.
fn plain_decimal(raw: &str, scale: i8, precision: u8) -> Option<i128> {
    let (negative, t) = match raw.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        b => (false, b),
    };
    let (int, frac) = match t.iter().position(|&b| b == b'.') {
        Some(i) => (&t[..i], &t[i + 1..]),
        None => (t, &t[..0]),
    };
    let pad = usize::try_from(scale).ok()?.checked_sub(frac.len())?;
    if int.is_empty() || precision > 38 {
        return None;
    }
    let mut v: i128 = 0;
    let mut significant = 0usize;
    for &b in int.iter().chain(frac) {
        if !b.is_ascii_digit() {
            return None;
        }
        if v != 0 || b != b'0' {
            significant += 1;
        }
        if significant > 38 {
            return None;
        }
        v = v * 10 + i128::from(b - b'0');
    }
    if v != 0 {
        significant += pad;
    }
    if significant > usize::from(precision) {
        return None;
    }
    for _ in 0..pad {
        v *= 10;
    }
    Some(if negative { -v } else { v })
}

/// The digits of a decimal text scaled by 10^scale, as an integer text (`"-1.5"`, scale 2 →
/// `"-150"`); an error when digits would be lost or more than `precision` digits are needed.
pub(crate) fn unscaled(text: &str, scale: i8, precision: u8) -> Result<String, String> {
    let (negative, t) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().map_err(|_| "bad exponent".to_string())?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(format!("not a decimal number: {}", clip(text)));
    }
    // value = digits × 10^(exp - frac.len()); we want digits × 10^(exp - frac.len() + scale).
    let shift = exp - frac.len() as i64 + i64::from(scale);
    let mut digits: String = int.chars().chain(frac.chars()).collect();
    if shift >= 0 {
        if shift > 200 {
            return Err(format!("{} has too many digits", clip(text)));
        }
        digits.extend(std::iter::repeat_n('0', shift as usize));
    } else {
        let cut = (-shift) as usize;
        let keep = digits.len().saturating_sub(cut);
        if digits[keep..].bytes().any(|b| b != b'0') {
            return Err(format!(
                "{} has more than {scale} digits after the point",
                clip(text)
            ));
        }
        digits.truncate(keep);
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > usize::from(precision) {
        return Err(format!(
            "{} does not fit a decimal of precision {precision}",
            clip(text)
        ));
    }
    Ok(match (negative && !digits.is_empty(), digits.is_empty()) {
        (_, true) => "0".to_string(),
        (true, false) => format!("-{digits}"),
        (false, false) => digits.to_string(),
    })
}

/// A number a double holds exactly (every decimal of at most 15 significant digits, and any
/// other whose shortest double spelling has the same digits).
fn exact_double(raw: &str) -> Result<f64, String> {
    let t = number_text(raw)?;
    let v: f64 = t
        .parse()
        .map_err(|_| format!("expected a number, got {}", clip(raw)))?;
    if !v.is_finite() {
        return Err(format!("{} is beyond a double's range", clip(raw)));
    }
    let sig = significant(t);
    // Up to 15 significant digits always survive a normal double; beyond, and for underflow
    // to zero or to a subnormal (fewer bits), compare the digits of the double's spelling.
    let check = sig.0.len() > 15 || v == 0.0 || !v.is_normal();
    if check && sig != significant(&format!("{v:e}")) {
        return Err(format!(
            "{} cannot be held exactly by a double (declare the column with a multipleOf to keep it as a decimal)",
            clip(raw)
        ));
    }
    Ok(v)
}

/// Significant digits and the decimal exponent of the first one.
fn significant(t: &str) -> (String, i64) {
    let t = t.trim_start_matches(['-', '+']);
    let (mantissa, exp) = match t.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i64>().unwrap_or(0)),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all: String = int.chars().chain(frac.chars()).collect();
    let lead = all.len() - all.trim_start_matches('0').len();
    let digits = all
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string();
    if digits.is_empty() {
        return (digits, 0); // every zero is the same zero
    }
    (digits, int.len() as i64 - lead as i64 + exp)
}

fn hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.strip_prefix("\\x").unwrap_or(s);
    if !s.len().is_multiple_of(2) {
        return Err("odd number of hex digits".into());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Where a record's member value sits in a chunk's text: it ends at `end` and starts where
/// the span before it in the chunk ended (see [`RowLocator::locate`]).
#[derive(Debug, Clone, Copy)]
pub struct Span {
    column: u32,
    end: u32,
}

/// Finds the column of each member of a record, so that the values can be converted later
/// (on another thread) from [`Span`]s: the first of repeated members counts, unknown members
/// are counted and skipped.
#[derive(Debug)]
pub struct RowLocator {
    schema: Arc<BatchSchema>,
    /// The column of each member position of the last record: records of a stream usually
    /// list their members in the same order, so a name comparison replaces a hash lookup.
    order: Vec<Option<usize>>,
    filled: Vec<bool>,
    unknown: u64,
}

impl RowLocator {
    /// A locator for a stream's columns.
    pub fn new(schema: Arc<BatchSchema>) -> Self {
        let filled = vec![false; schema.columns.len()];
        Self {
            schema,
            order: Vec::new(),
            filled,
            unknown: 0,
        }
    }

    /// Calls `found(column, raw)` for each member that fills a column, in input order.
    fn each<'a>(&mut self, fields: &RawFields<'a>, mut found: impl FnMut(usize, &'a str)) {
        self.filled.fill(false);
        for (j, (name, raw)) in fields.iter().enumerate() {
            let Some(i) = self.column_at(j, name) else {
                self.unknown += 1;
                continue;
            };
            if !std::mem::replace(&mut self.filled[i], true) {
                found(i, raw.get());
            }
        }
    }

    /// Copies the values of a record's members into `text`, one after the other, appending
    /// one span per column filled (members that are not columns are left out). Fails, leaving
    /// `text` and `spans` as they were, when `text` would outgrow 4 GiB.
    pub fn locate(
        &mut self,
        fields: &RawFields<'_>,
        text: &mut String,
        spans: &mut Vec<Span>,
    ) -> Result<(), ValueError> {
        let (len, count) = (text.len(), spans.len());
        let mut fits = true;
        self.each(fields, |column, raw| {
            text.push_str(raw);
            match (u32::try_from(column), u32::try_from(text.len())) {
                (Ok(column), Ok(end)) => spans.push(Span { column, end }),
                _ => fits = false,
            }
        });
        if fits {
            return Ok(());
        }
        text.truncate(len);
        spans.truncate(count);
        Err(ValueError {
            column: "*".into(),
            message: "a chunk of records outgrew 4 GiB".into(),
        })
    }

    /// Members seen that are not columns (ignored), in total.
    pub fn unknown_members(&self) -> u64 {
        self.unknown
    }

    /// The column of the member named `name` at position `j` of a record.
    fn column_at(&mut self, j: usize, name: &str) -> Option<usize> {
        match self.order.get(j) {
            Some(Some(i)) if self.schema.columns[*i].name == name => Some(*i),
            _ => {
                let found = self.schema.position(name);
                if j >= self.order.len() {
                    self.order.resize(j + 1, None);
                }
                self.order[j] = found;
                found
            }
        }
    }
}

/// Records into Arrow columns for one stream.
pub struct RowsBuilder {
    schema: Arc<BatchSchema>,
    builders: Vec<Builder>,
    filled: Vec<bool>,
    locator: RowLocator,
}

impl RowsBuilder {
    /// An empty builder for a stream's columns.
    pub fn new(schema: Arc<BatchSchema>) -> Self {
        let builders = schema
            .columns
            .iter()
            .map(|c| Builder::new(c.kind))
            .collect();
        let filled = vec![false; schema.columns.len()];
        Self {
            locator: RowLocator::new(schema.clone()),
            schema,
            builders,
            filled,
        }
    }

    /// The columns.
    pub fn schema(&self) -> &Arc<BatchSchema> {
        &self.schema
    }

    /// Appends a record's members. On error the builder is left inconsistent: drop it.
    pub fn push_fields(&mut self, fields: &RawFields<'_>) -> Result<(), ValueError> {
        let mut result = Ok(());
        self.filled.fill(false);
        let (builders, filled, schema) = (&mut self.builders, &mut self.filled, &self.schema);
        self.locator.each(fields, |i, raw| {
            if result.is_ok() {
                filled[i] = true;
                result = push_value(schema, &mut builders[i], i, raw);
            }
        });
        result?;
        self.fill_nulls();
        Ok(())
    }

    /// Appends a record located by [`RowLocator::locate`]: its values are `text` from `start`
    /// on, as `spans` cut it. Returns where the next record's values start. On error the
    /// builder is left inconsistent: drop it.
    pub fn push_spans(
        &mut self,
        text: &str,
        mut start: usize,
        spans: &[Span],
    ) -> Result<usize, ValueError> {
        self.filled.fill(false);
        for s in spans {
            let (i, end) = (s.column as usize, s.end as usize);
            let Some(raw) = text.get(start..end) else {
                return Err(ValueError {
                    column: self.schema.columns[i].name.clone(),
                    message: format!("no value at bytes {start}..{end} of its chunk"),
                });
            };
            start = end;
            self.filled[i] = true;
            push_value(&self.schema, &mut self.builders[i], i, raw)?;
        }
        self.fill_nulls();
        Ok(start)
    }

    fn fill_nulls(&mut self) {
        for (i, filled) in self.filled.iter().enumerate() {
            if !filled {
                self.builders[i].null();
            }
        }
    }

    /// Appends one record object.
    pub fn push(&mut self, record: &RawValue) -> Result<(), ValueError> {
        let fields = RawFields::parse(record).map_err(|e| ValueError {
            column: "*".into(),
            message: format!("malformed record: {e}"),
        })?;
        self.push_fields(&fields)
    }

    /// Rows appended since the last [`Self::finish`].
    pub fn len(&self) -> usize {
        self.builders.first().map_or(0, Builder::len)
    }

    /// True when no row is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Members seen that are not columns (ignored), in total.
    pub fn unknown_members(&self) -> u64 {
        self.locator.unknown_members()
    }

    /// The rows so far as a record batch; the builder starts empty again.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = self.builders.iter_mut().map(Builder::finish).collect();
        let rows = columns.first().map_or(0, |c| c.len());
        RecordBatch::try_new_with_options(
            self.schema.arrow.clone(),
            columns,
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .unwrap_or_else(|e| unreachable!("builders match their schema: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(unscaled("1.5", 2, 38).unwrap(), "150");
        assert_eq!(unscaled("-0.01", 2, 38).unwrap(), "-1");
        assert_eq!(unscaled("1e-30", 30, 38).unwrap(), "1");
        assert_eq!(unscaled("1.50", 1, 38).unwrap(), "15");
        assert_eq!(unscaled("-0", 2, 38).unwrap(), "0");
        assert!(unscaled("1.555", 2, 38).is_err());
        assert!(unscaled("1000", 0, 3).is_err());
        assert!(unscaled("1x", 0, 3).is_err());
    }

    #[test]
    fn the_fast_spelling_agrees_with_the_general_one() {
        let texts = [
            "0",
            "-0",
            "7",
            "-12",
            "1.5",
            "-0.01",
            "0.05",
            "1.50",
            "1.555",
            "999",
            "1000",
            "123456789012345678",
            "1234567890123456789",
            "99999999999999999999999999999999999999",
            "0.000",
            "00012.3",
            "1e3",
            "\"12\"",
            "1x",
            "-",
            ".5",
            "12.",
        ];
        for t in texts {
            for (scale, precision) in [(0, 3), (0, 18), (2, 10), (2, 4), (3, 38), (0, 38)] {
                let general = number_text(t)
                    .and_then(|n| unscaled(n, scale, precision))
                    .ok()
                    .and_then(|d| d.parse::<i128>().ok());
                if let Some(fast) = plain_decimal(t, scale, precision) {
                    assert_eq!(
                        Some(fast),
                        general,
                        "{t} scale {scale} precision {precision}"
                    );
                }
            }
        }
        assert_eq!(plain_decimal("-0.01", 2, 10), Some(-1));
        assert_eq!(plain_decimal("1.5", 2, 10), Some(150));
        assert_eq!(plain_decimal("1000", 0, 3), None);
        assert_eq!(plain_decimal("1.555", 2, 10), None);
    }

    #[test]
    fn decimal_text() {
        for ok in ["0.00001", "1e300", "-12.50", "2.5E+7", "0", "-0.0e-5"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in [
            "", ".", "1e", "1.2.3", "--1", "1x", "e5", ".5", "7.", "+1", "01",
        ] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }

    #[test]
    fn doubles_refuse_lost_digits() {
        assert_eq!(exact_double("0.1").unwrap(), 0.1);
        assert_eq!(exact_double("1e300").unwrap(), 1e300);
        assert_eq!(
            exact_double("0.30000000000000004").unwrap(),
            0.300_000_000_000_000_04
        );
        assert!(exact_double("12345678901234567890").is_err());
        assert!(exact_double("1e400").is_err());
        assert!(exact_double("1e-400").is_err());
        assert!(exact_double("1.2345678e-320").is_err());
        assert_eq!(exact_double("0").unwrap(), 0.0);
        assert_eq!(exact_double("-0.0").unwrap(), 0.0);
        assert_eq!(exact_double("5e-324").unwrap(), 5e-324);
        assert_eq!(
            exact_double("9007199254740992").unwrap(),
            9_007_199_254_740_992.0
        );
    }
}
