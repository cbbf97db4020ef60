//! Exact conversions of decimal and date/time text into PostgreSQL's binary representations.

/// Days from 0000-03-01-based civil calendar (proleptic Gregorian) to 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days between 1970-01-01 and 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS: i64 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;

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

fn parse_date(c: &mut Cursor<'_>) -> Option<(i64, u32, u32)> {
    let y = c.digits(4)?;
    if !c.eat(b'-') {
        return None;
    }
    let m = c.digits(2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.digits(2)?;
    let y = i64::from(y);
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

const BAD_TIMESTAMP: &str = "invalid or out-of-range date-time";

/// An RFC 3339 date-time (also with a space instead of `T`, without offset meaning UTC, or a
/// bare date meaning midnight UTC) → microseconds since 2000-01-01T00:00:00Z.
pub fn timestamp_micros(s: &str) -> Result<i64, String> {
    let mut c = Cursor {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let (y, m, d) = parse_date(&mut c).ok_or(BAD_TIMESTAMP)?;
    if y == 0 {
        return Err(BAD_TIMESTAMP.into());
    }
    let mut micros = 0;
    if !c.done() {
        if !(c.eat(b'T') || c.eat(b't') || c.eat(b' ')) {
            return Err(BAD_TIMESTAMP.into());
        }
        micros = parse_time(&mut c).ok_or(BAD_TIMESTAMP)?;
    }
    let offset = parse_offset(&mut c).ok_or(BAD_TIMESTAMP)?;
    if !c.done() {
        return Err(BAD_TIMESTAMP.into());
    }
    let days = days_from_civil(y, m, d) - PG_EPOCH_DAYS;
    Ok(days * MICROS_PER_DAY + micros - offset * 1_000_000)
}

/// `YYYY-MM-DD` (a date-time at midnight is accepted too) → days since 2000-01-01.
pub fn date_days(s: &str) -> Result<i32, String> {
    let mut c = Cursor {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let (y, m, d) = parse_date(&mut c).ok_or("invalid date")?;
    if !c.done() {
        let micros = timestamp_micros(s).map_err(|_| "invalid date")?;
        if micros.rem_euclid(MICROS_PER_DAY) != 0 {
            return Err("a date-time with a time of day cannot be stored as a date".into());
        }
    }
    i32::try_from(days_from_civil(y, m, d) - PG_EPOCH_DAYS).map_err(|_| "date out of range".into())
}

/// `HH:MM:SS[.ffffff]` → microseconds since midnight.
pub fn time_micros(s: &str) -> Result<i64, String> {
    let mut c = Cursor {
        s: s.trim().as_bytes(),
        i: 0,
    };
    let t = parse_time(&mut c).ok_or("invalid time of day (00:00:00 to 24:00:00)")?;
    if !c.done() {
        return Err("invalid time of day (00:00:00 to 24:00:00)".into());
    }
    Ok(t)
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
}
