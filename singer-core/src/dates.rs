//! The `date` and `date-time` formats as this SDK checks them: RFC 3339, widened to the dates
//! databases hold beyond it.
//!
//! JSON Schema's `date` and `date-time` are RFC 3339's `full-date` and `date-time`, whose
//! years run from 0000 to 9999. Sources hold more: PostgreSQL has dates from 4714 BC to
//! 5874897, timestamps to 294276, and `infinity` / `-infinity`, and a tap that writes them
//! faithfully (our tap-postgres does) needs every target to take them. So besides RFC 3339,
//! [`is_date`] and [`is_date_time`], the checks [`RecordValidator`](crate::validate::RecordValidator)
//! uses for those formats, accept:
//!
//! - `infinity` and `-infinity`, exactly so (lowercase, no `+`, nothing around them);
//! - an ISO 8601 expanded year: a sign and 4 to [`MAX_YEAR_DIGITS`] digits
//!   (`+294276-12-31T23:59:59.999999+00:00`, `+5874897-12-31`, `-4713-11-24`);
//! - astronomical year numbering, where `0000` is 1 BC, `-0001` is 2 BC and `-0043` is 44 BC
//!   (`-0000` is not a year).
//!
//! Everything after the year is checked exactly as strictly as RFC 3339 (the text is checked
//! with a four-digit year of the same leap status in its place), so `-0043-02-29` is
//! rejected and `-0004-02-29` accepted: years are proleptic Gregorian, and year 0 is a leap
//! year.

use std::sync::LazyLock;

use serde_json::{Value, json};

/// Most digits of an expanded year: far beyond any database's year, few enough that day and
/// microsecond arithmetic on it cannot overflow an `i64`/`i128` computation.
pub const MAX_YEAR_DIGITS: usize = 12;

/// Splits the year off the front of a date or date-time: four digits (`2024`, `0000`), or a
/// sign and 4 to [`MAX_YEAR_DIGITS`] digits (`+294276`, `-0043`). Returns the astronomical
/// year (0 is 1 BC, -1 is 2 BC) and the text after it; `None` when `s` does not start with a
/// year, or starts with `-0000`.
///
/// ```
/// use singer_core::dates::split_year;
/// assert_eq!(split_year("-0043-03-15"), Some((-43, "-03-15")));
/// assert_eq!(split_year("+294276-12-31T00:00:00Z"), Some((294_276, "-12-31T00:00:00Z")));
/// assert_eq!(split_year("12345-01-01"), None);
/// ```
pub fn split_year(s: &str) -> Option<(i64, &str)> {
    let (sign, body) = match s.as_bytes().first() {
        Some(b'+') => (Some(1), &s[1..]),
        Some(b'-') => (Some(-1), &s[1..]),
        _ => (None, s),
    };
    let n = body.bytes().take_while(u8::is_ascii_digit).count();
    let len_ok = match sign {
        None => n == 4,
        Some(_) => (4..=MAX_YEAR_DIGITS).contains(&n),
    };
    if !len_ok {
        return None;
    }
    let (digits, rest) = body.split_at(n);
    let y = digits
        .bytes()
        .fold(0i64, |acc, b| acc * 10 + i64::from(b - b'0'));
    match sign {
        Some(-1) if y == 0 => None,
        Some(-1) => Some((-y, rest)),
        _ => Some((y, rest)),
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// jsonschema's own (RFC 3339) check of one format.
fn rfc3339(format: &str) -> jsonschema::Validator {
    jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&json!({"format": format}))
        .unwrap_or_else(|e| panic!("the `{format}` format check must compile: {e}"))
}

static RFC3339_DATE: LazyLock<jsonschema::Validator> = LazyLock::new(|| rfc3339("date"));
static RFC3339_DATE_TIME: LazyLock<jsonschema::Validator> = LazyLock::new(|| rfc3339("date-time"));

/// The `date` format: an RFC 3339 `full-date` (`2024-01-02`), a date with an expanded or
/// astronomical year (`+5874897-12-31`, `-0043-03-15`, `0000-01-01`), or `infinity` /
/// `-infinity`.
pub fn is_date(s: &str) -> bool {
    widened(s, |t| RFC3339_DATE.is_valid(&Value::String(t.to_owned())))
}

/// The `date-time` format: an RFC 3339 `date-time` (`2024-01-02T03:04:05.123456+00:00`), one
/// with an expanded or astronomical year (`+294276-12-31T23:59:59.999999+00:00`,
/// `-0043-03-15T12:00:00Z`), or `infinity` / `-infinity`.
pub fn is_date_time(s: &str) -> bool {
    widened(s, |t| {
        RFC3339_DATE_TIME.is_valid(&Value::String(t.to_owned()))
    })
}

/// `strict` (RFC 3339) widened: `infinity` and `-infinity` pass; text starting with a sign or
/// the year `0000` passes when it starts with a year ([`split_year`]) and `strict` accepts it
/// with a four-digit year of the same leap status in that year's place. Any other text is
/// `strict`'s alone to judge.
fn widened(s: &str, strict: impl Fn(&str) -> bool) -> bool {
    if s == "infinity" || s == "-infinity" {
        return true;
    }
    if !(s.starts_with(['+', '-']) || s.starts_with("0000-")) {
        return strict(s);
    }
    let Some((y, rest)) = split_year(s) else {
        return false;
    };
    let stand_in = if is_leap(y) { "2000" } else { "2001" };
    strict(&format!("{stand_in}{rest}"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Date-times a tap may write, one of each form.
    pub(crate) const DATE_TIMES: [&str; 10] = [
        "2024-01-02T03:04:05.123456+00:00",
        "2024-01-02T03:04:05Z",
        "+294276-12-31T23:59:59.999999+00:00",
        "-4713-11-24T00:00:00+00:00",
        "-0043-03-15T12:00:00+00:00",
        "0000-01-01T00:00:00+00:00",
        "0000-02-29T00:00:00Z",
        "-0004-02-29T00:00:00Z",
        "infinity",
        "-infinity",
    ];

    /// Dates a tap may write, one of each form.
    pub(crate) const DATES: [&str; 8] = [
        "2024-01-02",
        "+5874897-12-31",
        "-0043-03-15",
        "-4713-11-24",
        "0000-01-01",
        "+294276-02-29",
        "infinity",
        "-infinity",
    ];

    #[test]
    fn formats_take_every_extended_form() {
        for s in DATE_TIMES {
            assert!(is_date_time(s), "{s}");
        }
        for s in DATES {
            assert!(is_date(s), "{s}");
        }
    }

    #[test]
    fn formats_still_reject_garbage() {
        for s in [
            "",
            "nope",
            "Infinity",
            "+infinity",
            "infinity ",
            "2024-01-02",
            "2024-01-02T03:04:05",
            "2024-01-02 03:04:05Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "+294276-12-31",
            "+294276-12-31T23:59:59",
            "+294276-12-31T24:00:01Z",
            "+294277-02-29T00:00:00Z",
            "-0001-02-29T00:00:00Z",
            "-0000-01-01T00:00:00Z",
            "+123-01-01T00:00:00Z",
            "+1234567890123-01-01T00:00:00Z",
            "12345-01-01T00:00:00Z",
            "--0043-03-15T00:00:00Z",
            "+-043-03-15T00:00:00Z",
            "-0043-03-15T00:00:00Zjunk",
        ] {
            assert!(!is_date_time(s), "{s}");
        }
        for s in [
            "",
            "2024-1-02",
            "2024-01-02T00:00:00Z",
            "+5874897-02-29",
            "-0043-02-29",
            "-0043-03-15 ",
            "0000-00-00",
            "-0000-01-01",
            "+12-01-01",
            "infinite",
        ] {
            assert!(!is_date(s), "{s}");
        }
    }

    #[test]
    fn years() {
        assert_eq!(split_year("2024-01-02"), Some((2024, "-01-02")));
        assert_eq!(split_year("0000-01-01"), Some((0, "-01-01")));
        assert_eq!(split_year("+2024-01-02"), Some((2024, "-01-02")));
        assert_eq!(split_year("-4713"), Some((-4713, "")));
        assert_eq!(
            split_year("+999999999999-12-31"),
            Some((999_999_999_999, "-12-31"))
        );
        for bad in [
            "",
            "+",
            "-0000-01-01",
            "+123-01-01",
            "123-01-01",
            "12345-01-01",
            "+1234567890123-01-01",
            "++2024-01-01",
            "- 0043-03-15",
            "infinity",
        ] {
            assert_eq!(split_year(bad), None, "{bad}");
        }
        // Astronomical leap years: 1 BC (0) and 5 BC (-4) are, 44 BC (-43) is not.
        assert!(is_leap(0) && is_leap(-4) && !is_leap(-43) && !is_leap(-100));
    }
}
