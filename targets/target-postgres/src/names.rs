//! Identifier rules for PostgreSQL.
//!
//! Source names are kept exactly (always quoted, so case and punctuation survive). PostgreSQL
//! truncates identifiers at 63 bytes; a longer name is shortened to its first 54 bytes (cut on
//! a character boundary) plus `_` and 8 hex digits of a hash of the full name, so two long
//! names that share a prefix never become one column.

/// The longest identifier PostgreSQL keeps.
pub const MAX_IDENT_BYTES: usize = 63;

/// The PostgreSQL name for a source name.
pub fn pg_name(source: &str) -> String {
    let clean: String = source
        .chars()
        .map(|c| if c == '\0' { '\u{FFFD}' } else { c })
        .collect();
    if clean.len() <= MAX_IDENT_BYTES {
        return clean;
    }
    let mut cut = 54;
    while !clean.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}_{:08x}", &clean[..cut], fnv1a(clean.as_bytes()) as u32)
}

/// Quotes an identifier: `a"b` → `"a""b"`.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote(schema), quote(table))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_stay_distinct() {
        let a = format!("{}_alpha", "x".repeat(70));
        let b = format!("{}_beta", "x".repeat(70));
        assert_ne!(pg_name(&a), pg_name(&b));
        assert!(pg_name(&a).len() <= MAX_IDENT_BYTES);
        let u = "é".repeat(40);
        assert!(pg_name(&u).len() <= MAX_IDENT_BYTES);
        assert_eq!(pg_name("CamelCase Name"), "CamelCase Name");
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(r#"a"b"#), r#""a""b""#);
        assert_eq!(qualified("s", "t"), r#""s"."t""#);
    }
}
