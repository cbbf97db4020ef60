//! Dates, times of day and date-times read exactly from their text: RFC 3339, ISO 8601
//! expanded and astronomical years (see [`crate::dates`]), `infinity` / `-infinity`, and the
//! spellings databases write (a space for `T`, no offset meaning UTC). Shared by targets that
//! store binary dates (PostgreSQL, Arrow) and by the BATCH writers.

use crate::dates::split_year;

/// Days since 1970-01-01 of an astronomical year, month and day (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds in a day.
pub const MICROS_PER_DAY: i64 = 86_400_000_000;

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let part = self.s.get(self.i..self.i + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.i += n;
        Some(
            part.iter()
                .fold(0u32, |acc, b| acc * 10 + u32::from(b - b'0')),
        )
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn done(&self) -> bool {
        self.i == self.s.len()
    }
}

/// A year as [`split_year`] reads it (`2024`, `0000`, `+294276`, `-0043`: astronomical, year
/// 0 being 1 BC), the same years the SDK's `date` and `date-time` formats accept. At most
/// [`crate::dates::MAX_YEAR_DIGITS`] digits, so day and microsecond arithmetic on it
/// cannot overflow.
fn parse_year(c: &mut Cursor<'_>) -> Option<i64> {
    // The cursor only steps over ASCII, so what is left of the text is still UTF-8.
    let rest = std::str::from_utf8(&c.s[c.i..]).ok()?;
    let (y, after) = split_year(rest)?;
    c.i = c.s.len() - after.len();
    Some(y)
}

fn parse_date(c: &mut Cursor<'_>) -> Option<(i64, u32, u32)> {
    let y = parse_year(c)?;
    if !c.eat(b'-') {
        return None;
    }
    let m = c.digits(2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.digits(2)?;
    ((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)).then_some((y, m, d))
}

/// `HH:MM[:SS[.fraction]]` → microseconds; a fraction finer than a microsecond is rounded.
fn parse_time(c: &mut Cursor<'_>) -> Option<i64> {
    let h = c.digits(2)?;
    if !c.eat(b':') {
        return None;
    }
    let mi = c.digits(2)?;
    let mut s = 0;
    let mut micros: i64 = 0;
    if c.eat(b':') {
        s = c.digits(2)?;
        if c.eat(b'.') || c.eat(b',') {
            let start = c.i;
            while c.peek().is_some_and(|b| b.is_ascii_digit()) {
                c.i += 1;
            }
            let frac = &c.s[start..c.i];
            if frac.is_empty() {
                return None;
            }
            let mut scaled: i64 = 0;
            for k in 0..6 {
                scaled = scaled * 10 + frac.get(k).map_or(0, |b| i64::from(b - b'0'));
            }
            if frac.get(6).is_some_and(|b| *b >= b'5') {
                scaled += 1;
            }
            micros = scaled;
        }
    }
    if h > 24 || mi > 59 || s > 60 || (h == 24 && (mi > 0 || s > 0 || micros > 0)) {
        return None;
    }
    Some(((i64::from(h) * 60 + i64::from(mi)) * 60 + i64::from(s)) * 1_000_000 + micros)
}

/// `Z`, `+HH:MM`, `+HHMM`, `+HH` → seconds east of UTC; nothing means UTC.
fn parse_offset(c: &mut Cursor<'_>) -> Option<i64> {
    let _ = c.eat(b' ');
    match c.peek() {
        None => Some(0),
        Some(b'Z' | b'z') => {
            c.i += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) => {
            c.i += 1;
            let h = c.digits(2)?;
            let _ = c.eat(b':');
            let m = if c.done() { 0 } else { c.digits(2)? };
            if h > 23 || m > 59 {
                return None;
            }
            let secs = i64::from(h * 3600 + m * 60);
            Some(if sign == b'-' { -secs } else { secs })
        }
        Some(_) => None,
    }
}

/// A date or date-time as written, before range checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// `infinity` (`true`) or `-infinity` (`false`).
    Infinite(bool),
    /// A calendar day, and for a date-time its time of day as written and its UTC offset.
    Finite {
        /// Days since 1970-01-01.
        days: i64,
        /// Microseconds since midnight and seconds east of UTC.
        time: Option<(i64, i64)>,
    },
}

/// `infinity`, `-infinity`, a date (`2024-01-02`, `+5874897-12-31`, `-0043-03-15`) or a date
/// and time (`T`, `t` or a space between them) with an optional UTC offset.
pub fn parse_moment(s: &str) -> Option<Moment> {
    let s = s.trim();
    match s {
        "infinity" => return Some(Moment::Infinite(true)),
        "-infinity" => return Some(Moment::Infinite(false)),
        _ => {}
    }
    let mut c = Cursor {
        s: s.as_bytes(),
        i: 0,
    };
    let (y, m, d) = parse_date(&mut c)?;
    let days = days_from_civil(y, m, d);
    if c.done() {
        return Some(Moment::Finite { days, time: None });
    }
    if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
        return None;
    }
    let micros = parse_time(&mut c)?;
    let offset = parse_offset(&mut c)?;
    c.done().then_some(Moment::Finite {
        days,
        time: Some((micros, offset)),
    })
}

/// `HH:MM[:SS[.fraction]]` (00:00:00 to 24:00:00) → microseconds since midnight.
pub fn parse_time_of_day(s: &str) -> Option<i64> {
    let mut c = Cursor {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let t = parse_time(&mut c)?;
    c.done().then_some(t)
}

/// The astronomical year, month and day of a day since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A year as RFC 3339 writes it when it can (`2024`), else ISO 8601 expanded (`+294276`,
/// `-0043`; astronomical, 0 being 1 BC).
pub fn write_year(y: i64, out: &mut String) {
    use std::fmt::Write;
    let _ = if (0..=9999).contains(&y) {
        write!(out, "{y:04}")
    } else if y > 0 {
        write!(out, "+{y:04}")
    } else {
        write!(out, "-{:04}", -y)
    };
}

/// A day since 1970-01-01 as a date (`2024-01-02`, `-0043-03-15`).
pub fn write_date(days: i64, out: &mut String) {
    use std::fmt::Write;
    let (y, m, d) = civil_from_days(days);
    write_year(y, out);
    let _ = write!(out, "-{m:02}-{d:02}");
}

/// Microseconds since midnight as `HH:MM:SS.ffffff` (the fraction only when not zero).
pub fn write_time_of_day(micros: i64, out: &mut String) {
    use std::fmt::Write;
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let _ = write!(out, ".{frac:06}");
    }
}

/// Microseconds since 1970-01-01T00:00:00Z as an RFC 3339 date-time in UTC
/// (`2024-01-02T03:04:05.123456Z`; expanded years beyond 0000..9999).
pub fn write_date_time(micros: i64, out: &mut String) {
    let days = micros.div_euclid(MICROS_PER_DAY);
    write_date(days, out);
    out.push('T');
    write_time_of_day(micros.rem_euclid(MICROS_PER_DAY), out);
    out.push('Z');
}

/// A date-time → microseconds since 1970-01-01T00:00:00Z; `None` for text that is not one,
/// for `infinity`, and beyond the `i64` range.
pub fn unix_micros(s: &str) -> Option<i64> {
    match parse_moment(s)? {
        Moment::Infinite(_) => None,
        Moment::Finite { days, time } => {
            let (micros, offset) = time.unwrap_or((0, 0));
            let t = i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(micros)
                - i128::from(offset) * 1_000_000;
            i64::try_from(t).ok()
        }
    }
}

/// A date (or a date-time at midnight UTC) → days since 1970-01-01; `None` otherwise.
pub fn unix_days(s: &str) -> Option<i64> {
    match parse_moment(s)? {
        Moment::Infinite(_) => None,
        Moment::Finite { days, time } => match time {
            None => Some(days),
            Some((micros, offset)) => {
                let t = i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(micros)
                    - i128::from(offset) * 1_000_000;
                let per_day = i128::from(MICROS_PER_DAY);
                (t.rem_euclid(per_day) == 0).then(|| (t.div_euclid(per_day)) as i64)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        for d in [
            -2_451_545 - 10_957,
            -719_468,
            -1,
            0,
            1,
            19_723,
            2_932_896,
            2_145_042_905,
        ] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d, "{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-719_528), (0, 1, 1));
    }

    #[test]
    fn writes_what_it_reads() {
        for s in [
            "2024-01-02T03:04:05.123456Z",
            "1969-12-31T23:59:59Z",
            "+200000-12-31T23:59:59.999999Z",
            "-0043-03-15T12:00:00Z",
            "0000-02-29T00:00:00.000001Z",
        ] {
            let mut out = String::new();
            write_date_time(unix_micros(s).unwrap(), &mut out);
            assert_eq!(out, s);
        }
        let mut out = String::new();
        write_date(unix_days("-4713-11-24").unwrap(), &mut out);
        assert_eq!(out, "-4713-11-24");
        assert_eq!(unix_days("2000-01-02T00:00:00+00:00"), Some(10_958));
        assert_eq!(unix_days("2000-01-02T10:00:00Z"), None);
        assert_eq!(
            unix_micros("2000-01-01T01:00:00+01:00"),
            Some(946_684_800_000_000)
        );
        assert_eq!(unix_micros("infinity"), None);
        // Beyond ±292 277 years of microseconds since 1970.
        assert_eq!(unix_micros("+294276-12-31T23:59:59Z"), None);
        assert_eq!(parse_time_of_day("24:00:00"), Some(MICROS_PER_DAY));
        let mut t = String::new();
        write_time_of_day(3_723_000_001, &mut t);
        assert_eq!(t, "01:02:03.000001");
    }
}
