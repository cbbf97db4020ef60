//! Exact conversions of decimal and date/time text into PostgreSQL's binary representations.

use singer_core::dates::split_year;
use singer_core::moment::{
    MICROS_PER_DAY, Moment, parse_moment as parse_unix_moment, parse_time_of_day,
};

/// [`parse_unix_moment`] with days counted from PostgreSQL's epoch.
fn parse_moment(s: &str) -> Option<Moment> {
    Some(match parse_unix_moment(s)? {
        Moment::Finite { days, time } => Moment::Finite {
            days: days - PG_EPOCH_DAYS,
            time,
        },
        infinite => infinite,
    })
}

/// Days between 1970-01-01 and 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;

/// PostgreSQL's first timestamp, 4714-11-24 00:00:00 BC (astronomical year -4713), in
/// microseconds since 2000-01-01 (`MIN_TIMESTAMP`).
pub const TIMESTAMP_MIN: i64 = -211_813_488_000_000_000;
/// The first microsecond after PostgreSQL's last timestamp, 294277-01-01 00:00:00
/// (`END_TIMESTAMP`).
pub const TIMESTAMP_END: i64 = 9_223_371_331_200_000_000;
/// PostgreSQL's first date, 4714-11-24 BC (Julian day 0), in days since 2000-01-01.
pub const DATE_MIN: i32 = -2_451_545;
/// PostgreSQL's last date, 5874897-12-31, in days since 2000-01-01.
pub const DATE_MAX: i32 = 2_145_031_948;

const BAD_TIMESTAMP: &str = "invalid date-time";
const TIMESTAMP_RANGE: &str = "date-time out of range: PostgreSQL timestamps go from \
    4714-11-24 00:00:00 BC to 294276-12-31 23:59:59.999999 (UTC)";
const BAD_DATE: &str = "invalid date";
const DATE_RANGE: &str =
    "date out of range: PostgreSQL dates go from 4714-11-24 BC to 5874897-12-31";

/// A date-time → microseconds since 2000-01-01T00:00:00Z, as PostgreSQL's binary timestamp.
///
/// Accepts RFC 3339 (also with a space instead of `T`, without offset meaning UTC, or a bare
/// date meaning midnight UTC), ISO 8601 expanded and astronomical years (`+294276-…`,
/// `-4713-…`, `0000` = 1 BC), and `infinity` / `-infinity` (`i64::MAX` / `i64::MIN`).
pub fn timestamp_micros(s: &str) -> Result<i64, String> {
    match parse_moment(s).ok_or(BAD_TIMESTAMP)? {
        Moment::Infinite(true) => Ok(i64::MAX),
        Moment::Infinite(false) => Ok(i64::MIN),
        Moment::Finite { days, time } => {
            let (micros, offset) = time.unwrap_or((0, 0));
            let t = i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(micros)
                - i128::from(offset) * 1_000_000;
            i64::try_from(t)
                .ok()
                .filter(|t| (TIMESTAMP_MIN..TIMESTAMP_END).contains(t))
                .ok_or_else(|| TIMESTAMP_RANGE.into())
        }
    }
}

/// A date → days since 2000-01-01, as PostgreSQL's binary date; the same forms as
/// [`timestamp_micros`] (a date-time must fall on midnight UTC), `infinity` / `-infinity`
/// being `i32::MAX` / `i32::MIN`.
pub fn date_days(s: &str) -> Result<i32, String> {
    match parse_moment(s).ok_or(BAD_DATE)? {
        Moment::Infinite(true) => Ok(i32::MAX),
        Moment::Infinite(false) => Ok(i32::MIN),
        Moment::Finite { days, time } => {
            if let Some((micros, offset)) = time
                && (micros - offset * 1_000_000).rem_euclid(MICROS_PER_DAY) != 0
            {
                return Err("a date-time with a time of day cannot be stored as a date".into());
            }
            i32::try_from(days)
                .ok()
                .filter(|d| (DATE_MIN..=DATE_MAX).contains(d))
                .ok_or_else(|| DATE_RANGE.into())
        }
    }
}

/// A date or date-time with an expanded or astronomical year (`+294276-12-31T…`,
/// `-0043-03-15`, `0000-01-01`), which PostgreSQL's text input rejects, rewritten the way it
/// reads them (`294276-12-31 …`, `0044-03-15 BC`, `0001-01-01 BC`); the time and offset stay
/// as written (a `T` becomes a space, a decimal comma a point). `None` for any other text,
/// which PostgreSQL reads as it is.
pub fn pg_datetime_text(s: &str) -> Option<String> {
    let t = s.trim();
    if !(t.starts_with(['+', '-']) || t.starts_with("0000-")) {
        return None;
    }
    parse_moment(t)?;
    let (y, rest) = split_year(t)?;
    let rest = rest.replacen(['T', 't'], " ", 1).replace(',', ".");
    Some(if y <= 0 {
        format!("{:04}{rest} BC", 1 - y)
    } else {
        format!("{y:04}{rest}")
    })
}

/// `HH:MM:SS[.ffffff]` → microseconds since midnight.
pub fn time_micros(s: &str) -> Result<i64, String> {
    parse_time_of_day(s).ok_or_else(|| "invalid time of day (00:00:00 to 24:00:00)".into())
}

/// Writes a decimal string (optionally signed, with fraction and exponent) as a binary
/// `numeric`, keeping every digit and the scale (`2.50` keeps scale 2).
pub fn decimal_to_numeric(text: &str, out: &mut Vec<u8>) -> Result<(), String> {
    const BAD: &str = "expected a decimal number";
    let t = text.trim();
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i64>().map_err(|_| BAD)?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
    {
        return Err(BAD.into());
    }
    // All digits, and where the decimal point falls after applying the exponent.
    let digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|b| b - b'0').collect();
    let point = int.len() as i64 + exp;
    let scale = (frac.len() as i64 - exp).max(0);
    if scale > 0x3FFF || point > 131_072 {
        return Err("number out of range for numeric".into());
    }
    // Align to base-10000 groups: digit k (0-based) sits at decimal position point - 1 - k.
    let first_pos = point - 1; // position of digits[0] (10^first_pos)
    let group_of = |pos: i64| pos.div_euclid(4);
    let top = group_of(first_pos);
    let last_pos = first_pos - digits.len() as i64 + 1;
    let bottom = group_of(last_pos);
    let mut groups: Vec<i16> = vec![0; (top - bottom + 1).max(0) as usize];
    for (k, dgt) in digits.iter().enumerate() {
        let pos = first_pos - k as i64;
        let g = (top - group_of(pos)) as usize;
        let within = pos.rem_euclid(4);
        groups[g] += i16::from(*dgt) * [1, 10, 100, 1000][within as usize];
    }
    // Strip leading and trailing zero groups.
    let mut weight = top;
    let lead = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..lead);
    weight -= lead as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let weight = i16::try_from(weight).map_err(|_| "number out of range for numeric")?;
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    let sign: u16 = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as i16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

/// Microseconds since 1970-01-01T00:00:00Z (an Arrow timestamp) → PostgreSQL's binary
/// timestamp, within its range (as [`timestamp_micros`] reads the same instant).
pub fn timestamp_from_unix(micros: i64) -> Result<i64, String> {
    i64::try_from(i128::from(micros) - i128::from(PG_EPOCH_DAYS) * i128::from(MICROS_PER_DAY))
        .ok()
        .filter(|t| (TIMESTAMP_MIN..TIMESTAMP_END).contains(t))
        .ok_or_else(|| TIMESTAMP_RANGE.into())
}

/// Days since 1970-01-01 (an Arrow date) → PostgreSQL's binary date, within its range.
pub fn date_from_unix(days: i64) -> Result<i32, String> {
    i32::try_from(days - PG_EPOCH_DAYS)
        .ok()
        .filter(|d| (DATE_MIN..=DATE_MAX).contains(d))
        .ok_or_else(|| DATE_RANGE.into())
}

/// Days since 1970-01-01 (an Arrow date) → PostgreSQL's binary timestamp of its midnight UTC.
pub fn date_timestamp_from_unix(days: i64) -> Result<i64, String> {
    let t = (i128::from(days) - i128::from(PG_EPOCH_DAYS)) * i128::from(MICROS_PER_DAY);
    i64::try_from(t)
        .ok()
        .filter(|t| (TIMESTAMP_MIN..TIMESTAMP_END).contains(t))
        .ok_or_else(|| TIMESTAMP_RANGE.into())
}

/// Microseconds since midnight (an Arrow time), checked as [`time_micros`] reads it.
pub fn time_of_day(micros: i64) -> Result<i64, String> {
    if (0..=MICROS_PER_DAY).contains(&micros) {
        Ok(micros)
    } else {
        Err("invalid time of day (00:00:00 to 24:00:00)".into())
    }
}

/// Writes `digits` (the ASCII decimal digits of an unscaled integer, an Arrow decimal's
/// value) × 10^-`scale` as a binary `numeric` of display scale `scale`: the same bytes
/// [`decimal_to_numeric`] writes for that decimal's text, without building it.
pub fn unscaled_to_numeric(
    negative: bool,
    digits: &[u8],
    scale: i8,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    const BAD: &str = "expected a decimal number";
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(BAD.into());
    }
    let lead = digits.iter().take_while(|d| **d == b'0').count();
    let digits = &digits[lead..];
    let dscale = i16::from(scale.max(0));
    // Base-10000 groups, most significant first; digit k sits at decimal position
    // (len - 1 - k) - scale, in group floor(position / 4).
    let mut groups = [0i16; 64];
    let mut count = 0usize;
    let mut weight = 0i64;
    if let Some(last) = digits.len().checked_sub(1) {
        let top_pos = last as i64 - i64::from(scale);
        let top = top_pos.div_euclid(4);
        let bottom = (-i64::from(scale)).div_euclid(4);
        count = usize::try_from(top - bottom + 1).unwrap_or(usize::MAX);
        if count > groups.len() {
            return Err("number out of range for numeric".into());
        }
        for (k, d) in digits.iter().enumerate() {
            let pos = top_pos - k as i64;
            let g = (top - pos.div_euclid(4)) as usize;
            groups[g] += i16::from(d - b'0') * [1, 10, 100, 1000][pos.rem_euclid(4) as usize];
        }
        weight = top;
        while count > 0 && groups[count - 1] == 0 {
            count -= 1;
        }
    }
    let weight = i16::try_from(weight).map_err(|_| "number out of range for numeric")?;
    out.extend_from_slice(&(count as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    let sign: u16 = if negative && count > 0 { 0x4000 } else { 0 };
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&dscale.to_be_bytes());
    for g in &groups[..count] {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(s: &str) -> (i16, i16, u16, i16, Vec<i16>) {
        let mut out = Vec::new();
        decimal_to_numeric(s, &mut out).unwrap();
        let w = |i: usize| i16::from_be_bytes([out[i], out[i + 1]]);
        let n = w(0) as usize;
        (
            w(0),
            w(2),
            w(4) as u16,
            w(6),
            (0..n).map(|k| w(8 + 2 * k)).collect(),
        )
    }

    #[test]
    fn numeric_encoding() {
        assert_eq!(numeric("12345.678"), (3, 1, 0, 3, vec![1, 2345, 6780]));
        assert_eq!(numeric("-0.0001"), (1, -1, 0x4000, 4, vec![1]));
        assert_eq!(numeric("2.50"), (2, 0, 0, 2, vec![2, 5000]));
        assert_eq!(numeric("0"), (0, 0, 0, 0, vec![]));
        assert_eq!(numeric("1e+2"), (1, 0, 0, 0, vec![100]));
        assert_eq!(numeric("1.5e-7"), (1, -2, 0, 8, vec![15]));
        assert_eq!(numeric("10000"), (1, 1, 0, 0, vec![1]));
        assert_eq!(
            numeric("18446744073709551616").4,
            vec![1844, 6744, 737, 955, 1616]
        );
        let mut out = Vec::new();
        assert!(decimal_to_numeric("1x", &mut out).is_err());
        assert!(decimal_to_numeric(".", &mut out).is_err());
    }

    #[test]
    fn unscaled_decimals_match_their_text() {
        let mut n: u128 = 1;
        let mut cases = vec![(false, "0".to_string(), 0i8), (true, "0".into(), 3)];
        for k in 0..39 {
            n = n.wrapping_mul(7).wrapping_add(k);
            for scale in [0i8, 1, 2, 3, 4, 5, 8, 30, 38, 76, -1, -4] {
                cases.push((k % 2 == 0, n.to_string(), scale));
                cases.push((false, format!("{}", 10u128.pow(k as u32 % 38)), scale));
            }
        }
        cases.push((true, "9".repeat(76), 76));
        for (negative, digits, scale) in cases {
            let text = {
                let s = usize::try_from(scale).unwrap_or(0);
                let padded = format!("{digits:0>width$}", width = s + 1);
                let (int, frac) = padded.split_at(padded.len() - s);
                let zeros = "0".repeat(usize::try_from(-i64::from(scale)).unwrap_or(0));
                let sign = if negative { "-" } else { "" };
                match s {
                    0 => format!("{sign}{int}{zeros}"),
                    _ => format!("{sign}{int}.{frac}"),
                }
            };
            let (mut direct, mut via) = (Vec::new(), Vec::new());
            unscaled_to_numeric(negative, digits.as_bytes(), scale, &mut direct).unwrap();
            decimal_to_numeric(&text, &mut via).unwrap();
            assert_eq!(direct, via, "{text}");
        }
        let mut out = Vec::new();
        assert!(unscaled_to_numeric(false, b"", 0, &mut out).is_err());
        assert!(unscaled_to_numeric(false, b"1x", 0, &mut out).is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(timestamp_micros("2000-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(timestamp_micros("2000-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(timestamp_micros("2000-01-01 00:00:00.0000015").unwrap(), 2);
        assert_eq!(timestamp_micros("1999-12-31").unwrap(), -MICROS_PER_DAY);
        assert_eq!(
            timestamp_micros("2024-02-29T12:00:00-0530").unwrap(),
            timestamp_micros("2024-02-29T17:30:00Z").unwrap()
        );
        assert!(timestamp_micros("0000-00-00 00:00:00").is_err());
        assert!(timestamp_micros("2022-11-00T20:59:22Z").is_err());
        assert!(timestamp_micros("2023-02-29T00:00:00Z").is_err());
        assert!(timestamp_micros("2024-01-01T25:00:00Z").is_err());
        assert_eq!(date_days("2000-01-02").unwrap(), 1);
        assert!(date_days("2000-01-02T10:00:00Z").is_err());
        assert_eq!(time_micros("24:00:00").unwrap(), MICROS_PER_DAY);
        assert!(time_micros("-01:00:00").is_err());
    }

    use singer_core::moment::days_from_civil;

    /// Days since 2000-01-01 of an astronomical year, month and day.
    fn days(y: i64, m: u32, d: u32) -> i64 {
        days_from_civil(y, m, d) - PG_EPOCH_DAYS
    }

    fn ts(s: &str) -> i64 {
        timestamp_micros(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn date(s: &str) -> i32 {
        date_days(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn civil_days_match_postgres_julian_days() {
        // PostgreSQL's Julian day 0 (4714-11-24 BC) is its first date, 2000-01-01 is day 2451545.
        assert_eq!(days(-4713, 11, 24), i64::from(DATE_MIN));
        assert_eq!(days(-4713, 11, 24), -2_451_545);
        assert_eq!(days(5_874_897, 12, 31), i64::from(DATE_MAX));
        // DATE_END_JULIAN = 2147483494 (5874898-01-01), exclusive.
        assert_eq!(days(5_874_898, 1, 1) + 2_451_545, 2_147_483_494);
        assert_eq!(days(-4713, 11, 24) * MICROS_PER_DAY, TIMESTAMP_MIN);
        assert_eq!(days(294_277, 1, 1) * MICROS_PER_DAY, TIMESTAMP_END);
        // Astronomical years: 1 BC (year 0) and 5 BC (year -4) are leap years.
        assert_eq!(days(1, 1, 1) - days(0, 1, 1), 366);
        assert_eq!(days(-3, 1, 1) - days(-4, 1, 1), 366);
        assert_eq!(days(-42, 1, 1) - days(-43, 1, 1), 365);
        assert_eq!(days(0, 12, 31) + 1, days(1, 1, 1));
    }

    #[test]
    fn ordinary_forms_keep_their_meaning() {
        assert_eq!(
            ts("2024-01-02T03:04:05.123456+00:00"),
            ts("2024-01-02T03:04:05.123456Z")
        );
        assert_eq!(
            ts("2024-01-02T03:04:05.123456+00:00"),
            days(2024, 1, 2) * MICROS_PER_DAY + 11_045_123_456
        );
        assert_eq!(date("2024-01-02"), 8767);
        assert_eq!(
            ts("9999-12-31T23:59:59.999999Z"),
            days(10_000, 1, 1) * MICROS_PER_DAY - 1
        );
        assert_eq!(
            ts("0001-01-01T00:00:00+01:00"),
            days(1, 1, 1) * MICROS_PER_DAY - 3_600_000_000
        );
        assert_eq!(date("0001-01-01"), days(1, 1, 1) as i32);
        assert_eq!(date(" 2000-01-01T00:00:00Z "), 0);
    }

    #[test]
    fn expanded_and_bc_years() {
        // The last timestamp and date, and each form the tap writes.
        assert_eq!(ts("+294276-12-31T23:59:59.999999+00:00"), TIMESTAMP_END - 1);
        assert_eq!(date("+5874897-12-31"), DATE_MAX);
        assert_eq!(ts("-4713-11-24T00:00:00+00:00"), TIMESTAMP_MIN);
        assert_eq!(date("-4713-11-24"), DATE_MIN);
        assert_eq!(date("-0043-03-15"), days(-43, 3, 15) as i32);
        assert_eq!(
            ts("-0043-03-15T12:00:00+00:00"),
            days(-43, 3, 15) * MICROS_PER_DAY + 43_200_000_000
        );
        assert_eq!(date("0000-01-01"), days(0, 1, 1) as i32);
        assert_eq!(
            ts("0000-01-01T00:00:00+00:00"),
            days(0, 1, 1) * MICROS_PER_DAY
        );
        assert_eq!(date("0000-02-29"), days(0, 2, 29) as i32);
        assert_eq!(date("-0004-02-29"), days(-4, 2, 29) as i32);
        // A sign on a four-digit year, and a date-time into a date.
        assert_eq!(date("+2024-01-02"), date("2024-01-02"));
        assert_eq!(date("-0043-03-15T00:00:00+00:00"), date("-0043-03-15"));
        assert_eq!(date("+5874897-12-31T00:00:00Z"), DATE_MAX);
        assert_eq!(ts("+10000-01-01"), days(10_000, 1, 1) * MICROS_PER_DAY);
    }

    #[test]
    fn infinities() {
        assert_eq!(ts("infinity"), i64::MAX);
        assert_eq!(ts("-infinity"), i64::MIN);
        assert_eq!(date("infinity"), i32::MAX);
        assert_eq!(date("-infinity"), i32::MIN);
        assert_eq!(ts(" infinity "), i64::MAX);
        for bad in [
            "Infinity",
            "+infinity",
            "inf",
            "infinity1",
            "-infinityZ",
            "--infinity",
        ] {
            assert!(timestamp_micros(bad).is_err(), "{bad}");
            assert!(date_days(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn range_limits_are_exact() {
        let range = |r: Result<i64, String>| r.unwrap_err().starts_with("date-time out of range");
        // One microsecond beyond either end, also through an offset.
        assert!(range(timestamp_micros("+294277-01-01T00:00:00Z")));
        assert!(range(timestamp_micros("+294276-12-31T23:59:59.9999995Z")));
        assert!(range(timestamp_micros("+294276-12-31T23:00:00-01:00")));
        assert_eq!(
            ts("+294276-12-31T23:59:59.999999+01:00"),
            TIMESTAMP_END - 1 - 3_600_000_000
        );
        assert!(range(timestamp_micros("-4713-11-23T23:59:59.999999Z")));
        assert!(range(timestamp_micros("-4713-11-24T00:00:00+00:01")));
        assert_eq!(ts("-4713-11-24T00:00:00-00:01"), TIMESTAMP_MIN + 60_000_000);
        assert!(range(timestamp_micros("+5874897-12-31")));
        assert!(range(timestamp_micros("-999999999999-01-01T00:00:00Z")));
        let range = |r: Result<i32, String>| r.unwrap_err().starts_with("date out of range");
        assert!(range(date_days("+5874898-01-01")));
        assert!(range(date_days("-4713-11-23")));
        // Finite dates never reach the binary infinities.
        assert!(range(date_days("+5879610-07-11")));
        assert!(range(date_days("-5877641-06-23")));
        assert!(range(date_days("+999999999999-12-31")));
    }

    #[test]
    fn malformed_dates_are_rejected() {
        for bad in [
            "",
            "-0000-01-01",
            "+123-01-01",
            "-43-03-15",
            "12345-01-01",
            "+1234567890123-01-01",
            "++2024-01-01",
            "+-043-03-15",
            "- 0043-03-15",
            "-0043-3-15",
            "-0043-02-29",
            "+294277-02-29",
            "-0043-03-15X",
            "-0043-03-15T",
            "-0043-03-15T25:00:00Z",
            "2024-01-02T03:04:05+00:00junk",
        ] {
            assert!(
                timestamp_micros(bad).is_err_and(|e| e == "invalid date-time"),
                "{bad}"
            );
            assert!(date_days(bad).is_err_and(|e| e == "invalid date"), "{bad}");
        }
        assert!(date_days("-0043-03-15T01:00:00Z").is_err_and(|e| e.contains("time of day")));
    }

    #[test]
    fn binary_values_read_back_as_written() {
        // Microseconds and days back to astronomical calendar fields, as PostgreSQL prints them.
        fn civil(days: i64) -> (i64, u32, u32) {
            let z = days + PG_EPOCH_DAYS + 719_468;
            let era = z.div_euclid(146_097);
            let doe = z.rem_euclid(146_097);
            let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
            let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
            let mp = (5 * doy + 2) / 153;
            let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
            let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
            let y = yoe + era * 400 + i64::from(m <= 2);
            (y, m, d)
        }
        for (text, y, m, d, micros) in [
            (
                "+294276-12-31T23:59:59.999999+00:00",
                294_276,
                12,
                31,
                MICROS_PER_DAY - 1,
            ),
            ("-4713-11-24T00:00:00+00:00", -4713, 11, 24, 0),
            ("-0043-03-15T06:07:08.5+00:00", -43, 3, 15, 22_028_500_000),
            (
                "0000-12-31T23:59:59Z",
                0,
                12,
                31,
                MICROS_PER_DAY - 1_000_000,
            ),
            ("2024-02-29T00:00:00.000001Z", 2024, 2, 29, 1),
        ] {
            let t = ts(text);
            assert_eq!(civil(t.div_euclid(MICROS_PER_DAY)), (y, m, d), "{text}");
            assert_eq!(t.rem_euclid(MICROS_PER_DAY), micros, "{text}");
        }
        for (text, y, m, d) in [
            ("+5874897-12-31", 5_874_897, 12, 31),
            ("-4713-11-24", -4713, 11, 24),
            ("-0043-03-15", -43, 3, 15),
            ("0000-01-01", 0, 1, 1),
        ] {
            assert_eq!(civil(i64::from(date(text))), (y, m, d), "{text}");
        }
    }

    #[test]
    fn postgres_text_for_custom_types() {
        assert_eq!(
            pg_datetime_text("+294276-12-31T23:59:59.999999+00:00").as_deref(),
            Some("294276-12-31 23:59:59.999999+00:00")
        );
        assert_eq!(
            pg_datetime_text("-0043-03-15").as_deref(),
            Some("0044-03-15 BC")
        );
        assert_eq!(
            pg_datetime_text("-4713-11-24T00:00:00,5Z").as_deref(),
            Some("4714-11-24 00:00:00.5Z BC")
        );
        assert_eq!(
            pg_datetime_text("0000-01-01").as_deref(),
            Some("0001-01-01 BC")
        );
        assert_eq!(
            pg_datetime_text("+2024-01-02").as_deref(),
            Some("2024-01-02")
        );
        for as_is in [
            "2024-01-02",
            "infinity",
            "-infinity",
            "Jan 2 2024",
            "-0043-02-29",
            "+12-01-01",
        ] {
            assert_eq!(pg_datetime_text(as_is), None, "{as_is}");
        }
    }
}
