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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Hand-rolled big-endian message builder.
    struct Buf(Vec<u8>);

    impl Buf {
        fn new(tag: u8) -> Self {
            Self(vec![tag])
        }
        fn u8(mut self, v: u8) -> Self {
            self.0.push(v);
            self
        }
        fn u16(mut self, v: u16) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u32(mut self, v: u32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i32(mut self, v: i32) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn u64(mut self, v: u64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn i64(mut self, v: i64) -> Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn str(mut self, s: &str) -> Self {
            self.0.extend_from_slice(s.as_bytes());
            self.0.push(0);
            self
        }
        fn raw(mut self, b: &[u8]) -> Self {
            self.0.extend_from_slice(b);
            self
        }
        fn text(self, s: &str) -> Self {
            let len = i32::try_from(s.len()).unwrap();
            self.u8(b't').i32(len).raw(s.as_bytes())
        }
        fn binary(self, b: &[u8]) -> Self {
            let len = i32::try_from(b.len()).unwrap();
            self.u8(b'b').i32(len).raw(b)
        }
        fn bytes(self) -> Bytes {
            Bytes::from(self.0)
        }
    }

    fn text(s: &str) -> Value {
        Value::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn relation_msg() -> Bytes {
        Buf::new(b'R')
            .u32(16384)
            .str("")
            .str("users")
            .u8(b'd')
            .u16(3)
            .u8(1)
            .str("id")
            .u32(23)
            .i32(-1)
            .u8(0)
            .str("name")
            .u32(1043)
            .i32(68)
            .u8(0)
            .str("bio")
            .u32(25)
            .i32(-1)
            .bytes()
    }

    fn insert_msg() -> Bytes {
        Buf::new(b'I')
            .u32(16384)
            .u8(b'N')
            .u16(4)
            .text("42")
            .u8(b'n')
            .u8(b'u')
            .binary(&[0, 0, 0, 7])
            .bytes()
    }

    fn update_key_msg() -> Bytes {
        Buf::new(b'U')
            .u32(7)
            .u8(b'K')
            .u16(2)
            .text("1")
            .u8(b'n')
            .u8(b'N')
            .u16(2)
            .text("2")
            .text("x")
            .bytes()
    }

    fn update_old_msg() -> Bytes {
        Buf::new(b'U')
            .u32(7)
            .u8(b'O')
            .u16(2)
            .text("1")
            .text("old")
            .u8(b'N')
            .u16(2)
            .text("1")
            .u8(b'u')
            .bytes()
    }

    fn update_plain_msg() -> Bytes {
        Buf::new(b'U').u32(7).u8(b'N').u16(1).text("").bytes()
    }

    fn delete_key_msg() -> Bytes {
        Buf::new(b'D')
            .u32(9)
            .u8(b'K')
            .u16(2)
            .text("5")
            .u8(b'n')
            .bytes()
    }

    fn delete_old_msg() -> Bytes {
        Buf::new(b'D').u32(9).u8(b'O').u16(1).text("5").bytes()
    }

    fn truncate_msg() -> Bytes {
        Buf::new(b'T')
            .u32(3)
            .u8(3)
            .u32(100)
            .u32(200)
            .u32(300)
            .bytes()
    }

    fn type_msg() -> Bytes {
        Buf::new(b'Y').u32(90001).str("public").str("mood").bytes()
    }

    fn origin_msg() -> Bytes {
        Buf::new(b'O').u64(0x1_0000_0001).str("node_a").bytes()
    }

    fn begin_msg() -> Bytes {
        Buf::new(b'B').u64(0x16_B374_D848).i64(-5).u32(734).bytes()
    }

    fn commit_msg() -> Bytes {
        Buf::new(b'C')
            .u8(0)
            .u64(0x16_B374_D848)
            .u64(0x16_B374_D878)
            .i64(1_000_000)
            .bytes()
    }

    fn logical_msg() -> Bytes {
        Buf::new(b'M')
            .u8(1)
            .u64(77)
            .str("wal2x")
            .i32(3)
            .raw(b"a\0b")
            .bytes()
    }

    fn all_valid() -> Vec<Bytes> {
        vec![
            relation_msg(),
            insert_msg(),
            update_key_msg(),
            update_old_msg(),
            update_plain_msg(),
            delete_key_msg(),
            delete_old_msg(),
            truncate_msg(),
            type_msg(),
            origin_msg(),
            begin_msg(),
            commit_msg(),
            logical_msg(),
            Buf::new(b'T').u32(0).u8(0).bytes(),
            Buf::new(b'I').u32(1).u8(b'N').u16(0).bytes(),
        ]
    }

    #[test]
    fn relation() {
        let msg = decode(&relation_msg()).unwrap();
        let expected = Message::Relation(Relation {
            oid: 16384,
            namespace: "pg_catalog".to_owned(),
            name: "users".to_owned(),
            replica_identity: b'd',
            columns: vec![
                RelColumn {
                    key: true,
                    name: "id".to_owned(),
                    type_oid: 23,
                    type_modifier: -1,
                },
                RelColumn {
                    key: false,
                    name: "name".to_owned(),
                    type_oid: 1043,
                    type_modifier: 68,
                },
                RelColumn {
                    key: false,
                    name: "bio".to_owned(),
                    type_oid: 25,
                    type_modifier: -1,
                },
            ],
        });
        assert_eq!(msg, expected);
    }

    #[test]
    fn relation_with_namespace() {
        let data = Buf::new(b'R')
            .u32(1)
            .str("sales")
            .str("orders")
            .u8(b'f')
            .u16(0)
            .bytes();
        let Message::Relation(rel) = decode(&data).unwrap() else {
            panic!("not a relation");
        };
        assert_eq!(rel.namespace, "sales");
        assert_eq!(rel.replica_identity, b'f');
        assert!(rel.columns.is_empty());
    }

    #[test]
    fn insert() {
        let data = insert_msg();
        let msg = decode(&data).unwrap();
        assert_eq!(
            msg,
            Message::Insert {
                relation: 16384,
                new: Tuple(vec![
                    text("42"),
                    Value::Null,
                    Value::UnchangedToast,
                    Value::Binary(Bytes::from_static(&[0, 0, 0, 7])),
                ]),
            }
        );
        // Values are zero-copy slices of the input buffer.
        let Message::Insert { new, .. } = msg else {
            panic!("not an insert");
        };
        let Some(Value::Text(v)) = new.0.first() else {
            panic!("not text");
        };
        let range = data.as_ptr_range();
        assert!(range.contains(&v.as_ptr()));
    }

    #[test]
    fn update_with_key() {
        assert_eq!(
            decode(&update_key_msg()).unwrap(),
            Message::Update {
                relation: 7,
                old: None,
                key: Some(Tuple(vec![text("1"), Value::Null])),
                new: Tuple(vec![text("2"), text("x")]),
            }
        );
    }

    #[test]
    fn update_with_old() {
        assert_eq!(
            decode(&update_old_msg()).unwrap(),
            Message::Update {
                relation: 7,
                old: Some(Tuple(vec![text("1"), text("old")])),
                key: None,
                new: Tuple(vec![text("1"), Value::UnchangedToast]),
            }
        );
    }

    #[test]
    fn update_without_old() {
        assert_eq!(
            decode(&update_plain_msg()).unwrap(),
            Message::Update {
                relation: 7,
                old: None,
                key: None,
                new: Tuple(vec![text("")]),
            }
        );
    }

    #[test]
    fn delete_with_key() {
        assert_eq!(
            decode(&delete_key_msg()).unwrap(),
            Message::Delete {
                relation: 9,
                old: None,
                key: Some(Tuple(vec![text("5"), Value::Null])),
            }
        );
    }

    #[test]
    fn delete_with_old() {
        assert_eq!(
            decode(&delete_old_msg()).unwrap(),
            Message::Delete {
                relation: 9,
                old: Some(Tuple(vec![text("5")])),
                key: None,
            }
        );
    }

    #[test]
    fn truncate() {
        assert_eq!(
            decode(&truncate_msg()).unwrap(),
            Message::Truncate {
                options: 3,
                relations: vec![100, 200, 300],
            }
        );
    }

    #[test]
    fn type_message() {
        assert_eq!(
            decode(&type_msg()).unwrap(),
            Message::Type {
                oid: 90001,
                namespace: "public".to_owned(),
                name: "mood".to_owned(),
            }
        );
        let data = Buf::new(b'Y').u32(5).str("").str("t").bytes();
        let Message::Type { namespace, .. } = decode(&data).unwrap() else {
            panic!("not a type");
        };
        assert_eq!(namespace, "pg_catalog");
    }

    #[test]
    fn origin() {
        assert_eq!(
            decode(&origin_msg()).unwrap(),
            Message::Origin {
                lsn: 0x1_0000_0001,
                name: "node_a".to_owned(),
            }
        );
    }

    #[test]
    fn begin() {
        assert_eq!(
            decode(&begin_msg()).unwrap(),
            Message::Begin {
                final_lsn: 0x16_B374_D848,
                commit_time: -5,
                xid: 734,
            }
        );
    }

    #[test]
    fn commit() {
        assert_eq!(
            decode(&commit_msg()).unwrap(),
            Message::Commit {
                flags: 0,
                commit_lsn: 0x16_B374_D848,
                end_lsn: 0x16_B374_D878,
                commit_time: 1_000_000,
            }
        );
    }

    #[test]
    fn logical_message() {
        assert_eq!(
            decode(&logical_msg()).unwrap(),
            Message::LogicalMessage {
                transactional: true,
                lsn: 77,
                prefix: "wal2x".to_owned(),
                content: Bytes::from_static(b"a\0b"),
            }
        );
        let data = Buf::new(b'M').u8(0).u64(1).str("p").i32(0).bytes();
        let Message::LogicalMessage {
            transactional,
            content,
            ..
        } = decode(&data).unwrap()
        else {
            panic!("not a logical message");
        };
        assert!(!transactional);
        assert!(content.is_empty());
    }

    #[test]
    fn every_truncation_is_an_error() {
        for full in all_valid() {
            assert!(decode(&full).is_ok(), "valid message {full:?} rejected");
            for len in 0..full.len() {
                let cut = full.slice(..len);
                assert!(decode(&cut).is_err(), "prefix {cut:?} accepted");
            }
        }
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        for full in all_valid() {
            let mut longer = full.to_vec();
            longer.push(0);
            let err = decode(&Bytes::from(longer)).unwrap_err();
            assert!(err.to_string().contains("trailing"), "{err}");
        }
    }

    #[test]
    fn truncation_message_names_tag_and_offset() {
        let full = update_key_msg();
        let err = decode(&full.slice(..3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pgoutput 'U' message: truncated at byte 1 (wanted 4 more)"
        );
        // Cut just before the first text value's payload ("1" at offset 13).
        let err = decode(&full.slice(..13)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pgoutput 'U' message: truncated at byte 13 (wanted 1 more)"
        );
    }

    #[test]
    fn unknown_tag() {
        let err = decode(&Bytes::from_static(b"Z\0\0")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pgoutput: unknown message tag 'Z' (0x5a) at byte 0"
        );
        let err = decode(&Bytes::from_static(&[0x01])).unwrap_err();
        assert!(err.to_string().contains("'\\x01' (0x01)"), "{err}");
        let err = decode(&Bytes::new()).unwrap_err();
        assert_eq!(err.to_string(), "pgoutput: empty message");
    }

    #[test]
    fn malformed_inputs() {
        let cases: Vec<(Bytes, &str)> = vec![
            (
                Buf::new(b'O').u64(1).raw(&[0xff, 0xfe, 0]).bytes(),
                "pgoutput 'O' message: string starting at byte 9 is not valid UTF-8",
            ),
            (
                Buf::new(b'O').u64(1).raw(b"abc").bytes(),
                "pgoutput 'O' message: string starting at byte 9 has no NUL terminator",
            ),
            (
                Buf::new(b'I')
                    .u32(1)
                    .u8(b'N')
                    .u16(1)
                    .u8(b't')
                    .i32(-1)
                    .bytes(),
                "pgoutput 'I' message: negative length -1 at byte 9",
            ),
            (
                Buf::new(b'I').u32(1).u8(b'N').u16(1).u8(b'x').bytes(),
                "pgoutput 'I' message: unknown tuple value kind 'x' at byte 8",
            ),
            (
                Buf::new(b'I').u32(1).u8(b'K').u16(0).bytes(),
                "pgoutput 'I' message: expected 'N' at byte 5, found 'K'",
            ),
            (
                Buf::new(b'U')
                    .u32(1)
                    .u8(b'K')
                    .u16(0)
                    .u8(b'K')
                    .u16(0)
                    .bytes(),
                "pgoutput 'U' message: expected 'N' at byte 8, found 'K'",
            ),
            (
                Buf::new(b'D').u32(1).u8(b'N').u16(0).bytes(),
                "pgoutput 'D' message: expected 'K' or 'O' at byte 5, found 'N'",
            ),
            (
                Buf::new(b'I')
                    .u32(1)
                    .u8(b'N')
                    .u16(1)
                    .u8(b't')
                    .i32(i32::MAX)
                    .bytes(),
                "pgoutput 'I' message: truncated at byte 13 (wanted 2147483647 more)",
            ),
            (
                Buf::new(b'T').u32(u32::MAX).u8(0).u32(1).bytes(),
                "pgoutput 'T' message: truncated at byte 10 (wanted 4 more)",
            ),
            (
                Buf::new(b'R')
                    .u32(1)
                    .str("")
                    .str("t")
                    .u8(b'd')
                    .u16(u16::MAX)
                    .bytes(),
                "pgoutput 'R' message: truncated at byte 11 (wanted 1 more)",
            ),
        ];
        for (data, expected) in cases {
            let err = decode(&data).unwrap_err();
            assert_eq!(err.to_string(), expected);
        }
    }

    #[test]
    fn error_trait() {
        let err: Box<dyn std::error::Error> = Box::new(decode(&Bytes::new()).unwrap_err());
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn random_mutations_never_panic() {
        // Deterministic xorshift so failures are reproducible.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = all_valid();
        for round in 0..20_000_u64 {
            let idx = usize::try_from(next() % u64::try_from(valid.len()).unwrap()).unwrap();
            let mut buf = valid.get(idx).unwrap().to_vec();
            let flips = 1 + next() % 4;
            for _ in 0..flips {
                if buf.is_empty() {
                    break;
                }
                let len = u64::try_from(buf.len()).unwrap();
                let pos = usize::try_from(next() % len).unwrap();
                let byte = u8::try_from(next() & 0xff).unwrap();
                if let Some(b) = buf.get_mut(pos) {
                    *b = byte;
                }
            }
            if round % 3 == 0 {
                let len = u64::try_from(buf.len()).unwrap();
                buf.truncate(usize::try_from(next() % (len + 1)).unwrap());
            }
            let _ = decode(&Bytes::from(buf));
        }
    }
}
