//! GTID positions in both flavours. MariaDB keeps, per replication domain, the last
//! `server-seq` applied (`0-1-5,1-2-9`). MySQL keeps the set of executed transactions per
//! source UUID as intervals (`3e11fa47-…:1-5:7-9,…`) and resumes with COM_BINLOG_DUMP_GTID.

use std::collections::BTreeMap;

use mysql_async::{GnoInterval, Sid};

use crate::config::Engine;

/// A GTID position of either flavour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gtid {
    Mariadb(BTreeMap<u32, (u32, u64)>),
    /// UUID text → closed intervals `[start, end]`, sorted and merged.
    Mysql(BTreeMap<String, Vec<(u64, u64)>>),
}

impl Gtid {
    pub(crate) fn empty(engine: Engine) -> Self {
        match engine {
            Engine::Mariadb => Gtid::Mariadb(BTreeMap::new()),
            Engine::Mysql => Gtid::Mysql(BTreeMap::new()),
        }
    }

    /// Parses the server's (or a bookmark's) text; `None` if it is not of this flavour.
    pub(crate) fn parse(engine: Engine, s: &str) -> Option<Self> {
        match engine {
            Engine::Mariadb => parse_mariadb(s).map(Gtid::Mariadb),
            Engine::Mysql => parse_mysql(s).map(Gtid::Mysql),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        match self {
            Gtid::Mariadb(m) => m.is_empty(),
            Gtid::Mysql(m) => m.is_empty(),
        }
    }

    /// Records a MariaDB transaction.
    pub(crate) fn set_mariadb(&mut self, domain: u32, server: u32, seq: u64) {
        if let Gtid::Mariadb(m) = self {
            m.insert(domain, (server, seq));
        }
    }

    /// Adds a MySQL transaction to the executed set.
    pub(crate) fn add_mysql(&mut self, uuid: &str, gno: u64) {
        let Gtid::Mysql(m) = self else { return };
        let list = m.entry(uuid.to_string()).or_default();
        list.push((gno, gno));
        merge(list);
    }

    /// The SIDs of a MySQL COM_BINLOG_DUMP_GTID request (intervals are half-open there).
    pub(crate) fn mysql_sids(&self) -> Vec<Sid<'static>> {
        let Gtid::Mysql(m) = self else {
            return Vec::new();
        };
        m.iter()
            .filter_map(|(uuid, list)| {
                let bytes = uuid_bytes(uuid)?;
                let intervals = list
                    .iter()
                    .map(|&(a, b)| GnoInterval::new(a, b + 1))
                    .collect();
                Some(Sid::new(bytes).with_intervals(intervals))
            })
            .collect()
    }
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = match self {
            Gtid::Mariadb(m) => m.iter().map(|(d, (s, n))| format!("{d}-{s}-{n}")).collect(),
            Gtid::Mysql(m) => m
                .iter()
                .map(|(uuid, list)| {
                    let ranges: Vec<String> = list
                        .iter()
                        .map(|&(a, b)| {
                            if a == b {
                                a.to_string()
                            } else {
                                format!("{a}-{b}")
                            }
                        })
                        .collect();
                    format!("{uuid}:{}", ranges.join(":"))
                })
                .collect(),
        };
        f.write_str(&parts.join(","))
    }
}

fn parse_mariadb(s: &str) -> Option<BTreeMap<u32, (u32, u64)>> {
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
    Some(domains)
}

fn parse_mysql(s: &str) -> Option<BTreeMap<String, Vec<(u64, u64)>>> {
    let mut sets = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut it = part.split(':');
        let uuid = it.next()?.trim().to_ascii_lowercase();
        uuid_bytes(&uuid)?;
        let list: &mut Vec<(u64, u64)> = sets.entry(uuid).or_default();
        for range in it {
            let (a, b) = match range.split_once('-') {
                Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                None => {
                    let n = range.trim().parse().ok()?;
                    (n, n)
                }
            };
            if a == 0 || b < a {
                return None;
            }
            list.push((a, b));
        }
        merge(list);
    }
    Some(sets)
}

fn merge(list: &mut Vec<(u64, u64)>) {
    list.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(list.len());
    for &(a, b) in list.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *list = out;
}

fn uuid_bytes(uuid: &str) -> Option<[u8; 16]> {
    let hex: String = uuid.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The UUID text of a MySQL GTID event's source id.
pub(crate) fn uuid_text(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Decodes the body of a MariaDB GTID event (type 0xa2): `(domain, seq_no)`.
pub(crate) fn mariadb_event(body: &[u8]) -> Option<(u32, u64)> {
    let seq = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(body.get(8..12)?.try_into().ok()?);
    Some((domain, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    const U: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";

    #[test]
    fn mariadb_positions_round_trip() {
        let g = Gtid::parse(Engine::Mariadb, "1-2-9,0-1-5").unwrap();
        assert_eq!(g.to_string(), "0-1-5,1-2-9");
        assert!(Gtid::parse(Engine::Mariadb, "0-1").is_none());
        assert!(Gtid::parse(Engine::Mariadb, "").unwrap().is_empty());
    }

    #[test]
    fn mysql_sets_parse_merge_and_grow() {
        let text = format!("{}:1-5:7, {U}:6\n", U.to_uppercase());
        let mut g = Gtid::parse(Engine::Mysql, &text).unwrap();
        assert_eq!(g.to_string(), format!("{U}:1-7"));
        g.add_mysql(U, 9);
        g.add_mysql(U, 8);
        g.add_mysql("00000000-0000-0000-0000-000000000001", 1);
        assert_eq!(
            g.to_string(),
            format!("00000000-0000-0000-0000-000000000001:1,{U}:1-9")
        );
        let sids = g.mysql_sids();
        assert_eq!(sids.len(), 2);
        assert_eq!(
            sids[1].intervals()[0].end(),
            10,
            "request intervals are half-open"
        );
        assert_eq!(uuid_text(&sids[1].uuid()), U);
        assert!(Gtid::parse(Engine::Mysql, "not-a-uuid:1-2").is_none());
        assert!(Gtid::parse(Engine::Mysql, &format!("{U}:5-2")).is_none());
    }
}
