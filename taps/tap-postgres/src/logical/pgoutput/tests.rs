//! Tests of the pgoutput decoder: every message kind, every truncation, random damage.

#![allow(clippy::unwrap_used)]

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
