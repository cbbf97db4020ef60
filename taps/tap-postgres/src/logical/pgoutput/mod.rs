//! Decoder for PostgreSQL's built-in `pgoutput` logical replication
//! message format, protocol version 1.
//!
//! Each `XLogData` payload carries exactly one message: a one-byte tag
//! followed by big-endian integers, NUL-terminated UTF-8 strings and
//! length-prefixed byte strings (see the PostgreSQL documentation chapter
//! "Logical Replication Message Formats"). [`decode`] turns one payload into
//! a [`Message`]; column values are zero-copy slices of the input buffer.
//!
//! The decoder never panics: every read is bounds-checked and malformed
//! input (truncation, unknown tags, invalid UTF-8, negative lengths,
//! unexpected marker bytes, trailing garbage) yields a [`DecodeError`]
//! naming the message tag and the byte offset of the problem.

use std::fmt;

use bytes::Bytes;

/// Namespace reported by the server as the empty string.
const PG_CATALOG: &str = "pg_catalog";

/// One column of a [`Relation`] message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelColumn {
    /// Whether the column is part of the replica identity key (flags bit 1).
    pub(crate) key: bool,
    /// Column name.
    pub(crate) name: String,
    /// OID of the column's data type.
    pub(crate) type_oid: u32,
    /// Type modifier (`atttypmod`), `-1` when there is none.
    pub(crate) type_modifier: i32,
}

/// A relation (table) description, sent before the first change to a table
/// in a session and again whenever its definition changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Relation {
    /// Relation OID, referenced by later Insert/Update/Delete/Truncate messages.
    pub(crate) oid: u32,
    /// Schema name; the wire's empty string is mapped to `"pg_catalog"`.
    pub(crate) namespace: String,
    /// Relation name.
    pub(crate) name: String,
    /// Replica identity (`relreplident`): `b'd'` default, `b'n'` nothing,
    /// `b'f'` full, `b'i'` index.
    pub(crate) replica_identity: u8,
    /// Published columns, in attribute order (generated columns excluded).
    pub(crate) columns: Vec<RelColumn>,
}

/// One column value inside a [`Tuple`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// SQL `NULL` (`'n'`).
    Null,
    /// An unchanged TOASTed value whose content was not sent (`'u'`).
    UnchangedToast,
    /// Value in the type's text output format (`'t'`).
    Text(Bytes),
    /// Value in the type's binary send format (`'b'`, `binary 'true'` option).
    Binary(Bytes),
}

/// A row image: one [`Value`] per column of the relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tuple(pub(crate) Vec<Value>);

/// One decoded `pgoutput` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Start of a transaction (`'B'`).
    Begin {
        /// Final LSN of the transaction.
        final_lsn: u64,
        /// Commit time, microseconds since 2000-01-01 00:00:00 UTC.
        commit_time: i64,
        /// Transaction id.
        xid: u32,
    },
    /// End of a transaction (`'C'`).
    Commit {
        /// Flags; currently unused (0).
        flags: u8,
        /// LSN of the commit record.
        commit_lsn: u64,
        /// End LSN of the transaction.
        end_lsn: u64,
        /// Commit time, microseconds since 2000-01-01 00:00:00 UTC.
        commit_time: i64,
    },
    /// Replication origin of the transaction (`'O'`).
    Origin {
        /// LSN of the commit on the origin server.
        lsn: u64,
        /// Origin name.
        name: String,
    },
    /// Relation description (`'R'`).
    Relation(Relation),
    /// Description of a non-built-in data type (`'Y'`).
    Type {
        /// Type OID.
        oid: u32,
        /// Schema name; the wire's empty string is mapped to `"pg_catalog"`.
        namespace: String,
        /// Type name.
        name: String,
    },
    /// Inserted row (`'I'`).
    Insert {
        /// Relation OID.
        relation: u32,
        /// The new row.
        new: Tuple,
    },
    /// Updated row (`'U'`).
    Update {
        /// Relation OID.
        relation: u32,
        /// Full old row (`'O'`), sent with `REPLICA IDENTITY FULL`.
        old: Option<Tuple>,
        /// Old replica identity key (`'K'`), sent when the key changed.
        key: Option<Tuple>,
        /// The new row.
        new: Tuple,
    },
    /// Deleted row (`'D'`); exactly one of `old` and `key` is present.
    Delete {
        /// Relation OID.
        relation: u32,
        /// Full old row (`'O'`), sent with `REPLICA IDENTITY FULL`.
        old: Option<Tuple>,
        /// Old replica identity key (`'K'`).
        key: Option<Tuple>,
    },
    /// Truncated relations (`'T'`).
    Truncate {
        /// Option bits: 1 = `CASCADE`, 2 = `RESTART IDENTITY`.
        options: u8,
        /// OIDs of the truncated relations.
        relations: Vec<u32>,
    },
    /// Message emitted by `pg_logical_emit_message` (`'M'`).
    #[allow(clippy::enum_variant_names)] // name fixed by the module's API
    LogicalMessage {
        /// Whether the message was emitted transactionally (flags bit 1).
        transactional: bool,
        /// LSN of the message.
        lsn: u64,
        /// Message prefix.
        prefix: String,
        /// Message content (zero-copy slice of the input).
        content: Bytes,
    },
}

/// Why a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ErrorKind {
    /// The payload has no bytes at all.
    Empty,
    /// The first byte is not a known message tag.
    UnknownTag,
    /// A fixed-size field or byte string ran past the end.
    Truncated { wanted: usize },
    /// A string has no NUL terminator before the end of the payload.
    UnterminatedString,
    /// A string is not valid UTF-8.
    InvalidUtf8,
    /// A length prefix is negative.
    NegativeLength(i32),
    /// A tuple column has an unknown kind byte.
    UnknownValueKind(u8),
    /// A marker byte other than the expected ones.
    UnexpectedMarker { expected: &'static str, found: u8 },
    /// Bytes remain after a complete message.
    TrailingBytes { extra: usize },
}

/// Error returned by [`decode`]; its message names the message tag and the
/// byte offset at which decoding failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    tag: u8,
    offset: usize,
    kind: ErrorKind,
}

/// Displays a tag byte as `'X'` when printable, `'\xNN'` otherwise.
struct TagDisplay(u8);

impl fmt::Display for TagDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "'\\x{:02x}'", self.0)
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Empty => return f.write_str("pgoutput: empty message"),
            ErrorKind::UnknownTag => {
                return write!(
                    f,
                    "pgoutput: unknown message tag {} (0x{:02x}) at byte {}",
                    TagDisplay(self.tag),
                    self.tag,
                    self.offset
                );
            }
            _ => {}
        }
        write!(f, "pgoutput {} message: ", TagDisplay(self.tag))?;
        let at = self.offset;
        match &self.kind {
            ErrorKind::Empty | ErrorKind::UnknownTag => Ok(()),
            ErrorKind::Truncated { wanted } => {
                write!(f, "truncated at byte {at} (wanted {wanted} more)")
            }
            ErrorKind::UnterminatedString => {
                write!(f, "string starting at byte {at} has no NUL terminator")
            }
            ErrorKind::InvalidUtf8 => {
                write!(f, "string starting at byte {at} is not valid UTF-8")
            }
            ErrorKind::NegativeLength(len) => {
                write!(f, "negative length {len} at byte {at}")
            }
            ErrorKind::UnknownValueKind(kind) => write!(
                f,
                "unknown tuple value kind {} at byte {at}",
                TagDisplay(*kind)
            ),
            ErrorKind::UnexpectedMarker { expected, found } => write!(
                f,
                "expected {expected} at byte {at}, found {}",
                TagDisplay(*found)
            ),
            ErrorKind::TrailingBytes { extra } => {
                write!(f, "{extra} unexpected trailing bytes at byte {at}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Bounds-checked big-endian cursor over one message payload.
struct Reader<'a> {
    data: &'a Bytes,
    pos: usize,
    tag: u8,
}

impl<'a> Reader<'a> {
    /// Builds an error at byte `offset`.
    fn error(&self, offset: usize, kind: ErrorKind) -> DecodeError {
        DecodeError {
            tag: self.tag,
            offset,
            kind,
        }
    }

    /// Number of unread bytes.
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    /// Returns the end offset of an `n`-byte field at the cursor, or a
    /// truncation error.
    fn end_of(&self, n: usize) -> Result<usize, DecodeError> {
        self.pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or_else(|| self.error(self.pos, ErrorKind::Truncated { wanted: n }))
    }

    /// Reads exactly `N` bytes.
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let start = self.pos;
        let end = self.end_of(N)?;
        let bytes = self
            .data
            .get(start..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok())
            .ok_or_else(|| self.error(start, ErrorKind::Truncated { wanted: N }))?;
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_be_bytes)
    }

    /// Reads a NUL-terminated UTF-8 string, borrowing from the input.
    fn str(&mut self) -> Result<&'a str, DecodeError> {
        let start = self.pos;
        let data: &'a [u8] = self.data;
        let rest = data.get(start..).unwrap_or_default();
        let nul = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.error(start, ErrorKind::UnterminatedString))?;
        let raw = rest
            .get(..nul)
            .ok_or_else(|| self.error(start, ErrorKind::UnterminatedString))?;
        let s = std::str::from_utf8(raw).map_err(|_| self.error(start, ErrorKind::InvalidUtf8))?;
        self.pos = start + nul + 1;
        Ok(s)
    }

    /// Reads a namespace string, mapping `""` to `"pg_catalog"`.
    fn namespace(&mut self) -> Result<String, DecodeError> {
        let s = self.str()?;
        Ok(if s.is_empty() { PG_CATALOG } else { s }.to_owned())
    }

    /// Reads an `Int32` length followed by that many bytes, as a zero-copy
    /// slice of the input.
    fn len_prefixed(&mut self) -> Result<Bytes, DecodeError> {
        let at = self.pos;
        let len = self.i32()?;
        let len =
            usize::try_from(len).map_err(|_| self.error(at, ErrorKind::NegativeLength(len)))?;
        let start = self.pos;
        let end = self.end_of(len)?;
        self.pos = end;
        Ok(self.data.slice(start..end))
    }

    /// Reads a marker byte that must be one of `allowed`.
    fn marker(&mut self, allowed: &[u8], expected: &'static str) -> Result<u8, DecodeError> {
        let at = self.pos;
        let found = self.u8()?;
        if allowed.contains(&found) {
            Ok(found)
        } else {
            Err(self.error(at, ErrorKind::UnexpectedMarker { expected, found }))
        }
    }

    /// Reads a `TupleData` structure.
    fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let ncols = usize::from(self.u16()?);
        // Every column takes at least one byte; don't trust the count for
        // the allocation size beyond what the payload can hold.
        let mut values = Vec::with_capacity(ncols.min(self.remaining()));
        for _ in 0..ncols {
            let at = self.pos;
            let value = match self.u8()? {
                b'n' => Value::Null,
                b'u' => Value::UnchangedToast,
                b't' => Value::Text(self.len_prefixed()?),
                b'b' => Value::Binary(self.len_prefixed()?),
                other => return Err(self.error(at, ErrorKind::UnknownValueKind(other))),
            };
            values.push(value);
        }
        Ok(Tuple(values))
    }

    /// Fails unless the whole payload has been consumed.
    fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(self.error(self.pos, ErrorKind::TrailingBytes { extra })),
        }
    }
}

/// Decodes one `pgoutput` (protocol version 1) message.
///
/// `data` is the `XLogData` payload, starting with the message tag. Text
/// and binary column values and logical message content are returned as
/// zero-copy slices of `data`.
pub(crate) fn decode(data: &Bytes) -> Result<Message, DecodeError> {
    let Some(&tag) = data.first() else {
        return Err(DecodeError {
            tag: 0,
            offset: 0,
            kind: ErrorKind::Empty,
        });
    };
    let mut r = Reader { data, pos: 1, tag };
    let message = match tag {
        b'B' => Message::Begin {
            final_lsn: r.u64()?,
            commit_time: r.i64()?,
            xid: r.u32()?,
        },
        b'C' => Message::Commit {
            flags: r.u8()?,
            commit_lsn: r.u64()?,
            end_lsn: r.u64()?,
            commit_time: r.i64()?,
        },
        b'O' => Message::Origin {
            lsn: r.u64()?,
            name: r.str()?.to_owned(),
        },
        b'R' => decode_relation(&mut r)?,
        b'Y' => Message::Type {
            oid: r.u32()?,
            namespace: r.namespace()?,
            name: r.str()?.to_owned(),
        },
        b'I' => {
            let relation = r.u32()?;
            r.marker(b"N", "'N'")?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let (mut old, mut key) = (None, None);
            match r.marker(b"KON", "'K', 'O' or 'N'")? {
                b'K' => key = Some(r.tuple()?),
                b'O' => old = Some(r.tuple()?),
                _ => {}
            }
            if old.is_some() || key.is_some() {
                r.marker(b"N", "'N'")?;
            }
            Message::Update {
                relation,
                old,
                key,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let (mut old, mut key) = (None, None);
            if r.marker(b"KO", "'K' or 'O'")? == b'K' {
                key = Some(r.tuple()?);
            } else {
                old = Some(r.tuple()?);
            }
            Message::Delete { relation, old, key }
        }
        b'T' => {
            let count = r.u32()?;
            let options = r.u8()?;
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            let mut relations = Vec::with_capacity(count.min(r.remaining() / 4));
            for _ in 0..count {
                relations.push(r.u32()?);
            }
            Message::Truncate { options, relations }
        }
        b'M' => {
            let flags = r.u8()?;
            Message::LogicalMessage {
                transactional: flags & 1 != 0,
                lsn: r.u64()?,
                prefix: r.str()?.to_owned(),
                content: r.len_prefixed()?,
            }
        }
        _ => {
            return Err(DecodeError {
                tag,
                offset: 0,
                kind: ErrorKind::UnknownTag,
            });
        }
    };
    r.finish()?;
    Ok(message)
}

/// Decodes the body of a Relation (`'R'`) message.
fn decode_relation(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let oid = r.u32()?;
    let namespace = r.namespace()?;
    let name = r.str()?.to_owned();
    let replica_identity = r.u8()?;
    let ncols = usize::from(r.u16()?);
    // A column takes at least 10 bytes (flags, NUL, type OID, typmod).
    let mut columns = Vec::with_capacity(ncols.min(r.remaining() / 10));
    for _ in 0..ncols {
        let flags = r.u8()?;
        columns.push(RelColumn {
            key: flags & 1 != 0,
            name: r.str()?.to_owned(),
            type_oid: r.u32()?,
            type_modifier: r.i32()?,
        });
    }
    Ok(Message::Relation(Relation {
        oid,
        namespace,
        name,
        replica_identity,
        columns,
    }))
}

#[cfg(test)]
mod tests;
