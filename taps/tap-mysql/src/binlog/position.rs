//! Binlog coordinates: file names ordered by their number (so `mysql-bin.1000000` comes after
//! `mysql-bin.999999`), and MariaDB GTID positions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

/// A position in the binlog: the start of the next event to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BinlogPos {
    pub(crate) file: String,
    pub(crate) pos: u64,
}

impl BinlogPos {
    /// The base name and the numeric suffix of the file.
    fn file_key(&self) -> (&str, u64) {
        match self.file.rsplit_once('.') {
            Some((base, n)) => (base, n.parse().unwrap_or(0)),
            None => (self.file.as_str(), 0),
        }
    }
}

impl Ord for BinlogPos {
    fn cmp(&self, other: &Self) -> Ordering {
        self.file_key()
            .cmp(&other.file_key())
            .then(self.pos.cmp(&other.pos))
    }
}

impl PartialOrd for BinlogPos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Display for BinlogPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// A MariaDB GTID position: per replication domain, the last `server-seq` applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GtidPos {
    domains: BTreeMap<u32, (u32, u64)>,
}

impl GtidPos {
    /// Parses `0-1-5,1-2-9` (empty means no position).
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let mut domains = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let d = it.next()?.parse().ok()?;
            let srv = it.next()?.parse().ok()?;
            let seq = it.next()?.parse().ok()?;
            if it.next().is_some() {
                return None;
            }
            domains.insert(d, (srv, seq));
        }
        Some(Self { domains })
    }

    /// Records a transaction's GTID.
    pub(crate) fn set(&mut self, domain: u32, server: u32, seq: u64) {
        self.domains.insert(domain, (server, seq));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

impl std::fmt::Display for GtidPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .domains
            .iter()
            .map(|(d, (s, n))| format!("{d}-{s}-{n}"))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// The file name of a ROTATE event. The first (fake) rotation arrives before the format
/// description, so its name still carries the 4-byte checksum; the server's list of binlog
/// files tells where the name ends.
pub(crate) fn rotate_file_name(raw: &[u8], known: &[String]) -> String {
    if let Some(f) = known.iter().find(|f| f.as_bytes() == raw) {
        return f.clone();
    }
    if let Some(f) = known
        .iter()
        .filter(|f| raw.starts_with(f.as_bytes()))
        .max_by_key(|f| f.len())
    {
        return f.clone();
    }
    // A file created after the list was read: keep `<base>.<digits>`.
    let text = String::from_utf8_lossy(raw);
    match text.rsplit_once('.') {
        Some((base, tail)) => {
            let digits: String = tail.chars().take_while(char::is_ascii_digit).collect();
            format!("{base}.{digits}")
        }
        None => text.into_owned(),
    }
}

/// Decodes the body of a MariaDB GTID event (type 0xa2): `(domain, seq_no)`.
pub(crate) fn mariadb_gtid(body: &[u8]) -> Option<(u32, u64)> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    Some((domain, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(file: &str, pos: u64) -> BinlogPos {
        BinlogPos {
            file: file.into(),
            pos,
        }
    }

    #[test]
    fn files_are_ordered_numerically() {
        assert!(p("mysql-bin.999999", 900) < p("mysql-bin.1000000", 4));
        assert!(p("mysql-bin.000002", 4) > p("mysql-bin.000001", 99999));
        assert!(p("b.000001", 10) < p("b.000001", 11));
    }

    #[test]
    fn rotate_names_lose_their_checksum() {
        let known = vec!["b.000001".to_string(), "b.0000012".to_string()];
        assert_eq!(
            rotate_file_name(b"b.000001)\x01\x02\x03", &known[..1]),
            "b.000001"
        );
        assert_eq!(rotate_file_name(b"b.0000012", &known), "b.0000012");
        assert_eq!(rotate_file_name(b"b.000002", &known), "b.000002");
    }

    #[test]
    fn gtid_positions_round_trip() {
        let g = GtidPos::parse("1-2-9,0-1-5").unwrap();
        assert_eq!(g.to_string(), "0-1-5,1-2-9");
        assert!(GtidPos::parse("0-1").is_none());
        assert!(GtidPos::parse("").unwrap().is_empty());
    }
}
