//! Binlog coordinates: file names ordered by their number (so `mysql-bin.1000000` comes after
//! `mysql-bin.999999`).

use std::cmp::Ordering;

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
}
