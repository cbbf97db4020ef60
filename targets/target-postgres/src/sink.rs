//! The sink: turns records into binary COPY rows for the current table plan.
//!
//! Rows are split over `stream_connections` shards, each loaded on its own connection: by a
//! hash of the encoded key (so every change to a key stays on one shard, in input order), or
//! in turn for streams without a key.
//!
//! Rows of Parquet BATCH files arrive as Arrow columns and are encoded into the same rows
//! without JSON (`arrow`, with [`crate::encode_arrow`]).

mod arrow;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use singer_core::RecordRef;
use singer_core::record::RawFields;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::{ArrowRows, StreamSink, StreamSpec};
use singer_core::validate::RecordValidator;

use crate::Config;
use crate::buffers::BufferPool;
use crate::encode::{self, NulPolicy};
use crate::loader::PgLoader;
use crate::model::{Active, Meta, PlanOptions, Source, TableModel, plan};
use crate::types::PgType;
use crate::values::timestamp_micros;

/// Microseconds between 1970-01-01 and 2000-01-01.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// Rows encoded for one set of columns, on one shard.
pub struct Part {
    /// The shard (connection) the rows load on.
    pub shard: usize,
    /// The columns of every row, in order.
    pub columns: Arc<Vec<Active>>,
    /// Encoded rows (no COPY header or trailer).
    pub data: bytes::Bytes,
    /// Input line of each row, for error messages.
    pub lines: Vec<u64>,
    /// No two rows share a key, so a merge need not pick the last row of each key.
    pub unique_keys: bool,
}

/// One batch: usually one part per shard; a column widened by data mid-batch starts new parts.
pub struct Batch {
    /// The parts, in input order.
    pub parts: Vec<Part>,
    /// The distinct table versions of its records.
    pub versions: Vec<i64>,
}

impl Batch {
    /// First and last input line.
    pub fn line_range(&self) -> (u64, u64) {
        let first = self
            .parts
            .iter()
            .find_map(|p| p.lines.first().copied())
            .unwrap_or(0);
        let last = self
            .parts
            .iter()
            .rev()
            .find_map(|p| p.lines.last().copied())
            .unwrap_or(0);
        (first, last)
    }

    /// Encoded bytes in all parts.
    pub fn bytes(&self) -> usize {
        self.parts.iter().map(|p| p.data.len()).sum()
    }
}

/// Rows buffered for one shard.
#[derive(Default)]
struct Shard {
    data: Vec<u8>,
    lines: Vec<u64>,
    /// Hashes of the keys of its rows, while no two are alike.
    keys: HashSet<u64>,
    /// Two rows whose keys hash alike: maybe one key twice.
    repeated: bool,
}

impl Shard {
    /// Notes a row's key hash.
    fn key(&mut self, hash: u64) {
        if !self.repeated && !self.keys.insert(hash) {
            self.repeated = true;
            self.keys = HashSet::new();
        }
    }
}

/// A stream's sink.
pub struct PgSink {
    stream: String,
    /// COPY buffers, new or handed back by the loader.
    buffers: BufferPool,
    /// A shard holding this many bytes is closed into a part (`batch_size_bytes`).
    max_bytes: usize,
    model: TableModel,
    opts: PlanOptions,
    nul: NulPolicy,
    columns: Arc<Vec<Active>>,
    slot: HashMap<String, usize>,
    /// Positions of the key columns in `columns`.
    key_slots: Vec<usize>,
    shards: Vec<Shard>,
    /// Scratch row, when rows are split over several shards.
    row: Vec<u8>,
    /// Next shard of a stream without a key.
    turn: usize,
    done: Vec<Part>,
    done_bytes: usize,
    versions: Vec<i64>,
    sequence_base: i64,
    unknown_warned: bool,
    /// The stream's key properties.
    key_properties: Vec<String>,
    /// Validates rows of BATCH files given as Arrow columns (`validate_records`).
    validate: bool,
    validator: Option<RecordValidator>,
    /// Reused text space for Arrow values.
    scratch: String,
    /// Input line and file of the last Arrow rows, and the rows of that file before them.
    file_rows: (u64, String, usize),
}

impl PgSink {
    pub(crate) fn new(
        stream: &str,
        model: TableModel,
        opts: PlanOptions,
        config: &Config,
        spec: &StreamSpec,
        sequence_base: i64,
    ) -> Result<Self, SdkError> {
        // Reserve the whole batch up front: untouched pages cost no memory, and the buffer
        // never reallocates (doubling would briefly hold two copies).
        let capacity = config.batch_size_bytes.saturating_add(1 << 20);
        let buffers = BufferPool::new(capacity);
        // Unset, keyed streams merge over 2 connections; a stream without a key appends
        // over 1 (see `Config::stream_connections`).
        let connections =
            config
                .stream_connections
                .unwrap_or(if spec.message.key_properties.is_empty() {
                    1
                } else {
                    2
                });
        let shards = (0..connections.max(1))
            .map(|_| Shard {
                data: buffers.take(),
                ..Shard::default()
            })
            .collect();
        let mut sink = Self {
            buffers,
            max_bytes: config.batch_size_bytes,
            stream: stream.to_string(),
            model,
            opts,
            nul: config.nul_character_policy,
            columns: Arc::new(Vec::new()),
            slot: HashMap::new(),
            key_slots: Vec::new(),
            shards,
            row: Vec::new(),
            turn: 0,
            done: Vec::new(),
            done_bytes: 0,
            versions: Vec::new(),
            sequence_base,
            unknown_warned: false,
            key_properties: Vec::new(),
            validate: config.validate_records,
            validator: None,
            scratch: String::new(),
            file_rows: (0, String::new(), 0),
        };
        sink.replan(spec)?;
        Ok(sink)
    }

    /// The pool the loader hands committed buffers back to.
    pub(crate) fn buffers(&self) -> BufferPool {
        self.buffers.clone()
    }

    fn replan(&mut self, spec: &StreamSpec) -> Result<(), SdkError> {
        self.key_properties = spec.message.key_properties.clone();
        if self.validate {
            let v = RecordValidator::new(&self.stream, &spec.message.schema).map_err(|e| {
                SdkError::fatal(
                    format!("stream `{}`: cannot compile the schema", self.stream),
                    e,
                )
            })?;
            self.validator = Some(v);
        }
        let p = plan(&self.model, &spec.schema, self.opts);
        self.model = p.model;
        let columns = p.active;
        self.key_slots = p
            .keys
            .iter()
            .filter_map(|k| columns.iter().position(|c| &c.name == k))
            .collect();
        self.slot = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.source {
                Source::Property(p) => Some((p.clone(), i)),
                Source::Meta(_) => None,
            })
            .collect();
        self.columns = Arc::new(columns);
        Ok(())
    }

    /// Encodes one row into its shard with `encode`; on failure nothing is kept and the
    /// failing column is returned.
    fn encode_row(
        &mut self,
        line: u64,
        encode: impl FnOnce(&mut Self, &mut Vec<u8>) -> Result<(), (usize, String)>,
    ) -> Result<(), (usize, String)> {
        // One shard: straight into its buffer; several: into the scratch row, then its shard.
        let single = self.shards.len() == 1;
        let mut out = if single {
            std::mem::take(&mut self.shards[0].data)
        } else {
            std::mem::take(&mut self.row)
        };
        let row_start = out.len();
        let result = encode(self, &mut out);
        if result.is_err() {
            out.truncate(row_start);
        }
        if single {
            if result.is_ok() {
                if !self.key_slots.is_empty() {
                    let hash = self.key_hash(&out[row_start..]);
                    self.shards[0].key(hash);
                }
                self.shards[0].lines.push(line);
            }
            self.shards[0].data = out;
        } else {
            if result.is_ok() {
                let shard = self.shard_of(&out);
                self.shards[shard].data.extend_from_slice(&out);
                self.shards[shard].lines.push(line);
            }
            out.clear();
            self.row = out;
        }
        result
    }

    /// The shard of an encoded row: a hash of its key values, or the next in turn.
    fn shard_of(&mut self, row: &[u8]) -> usize {
        let n = self.shards.len();
        if self.key_slots.is_empty() {
            self.turn = (self.turn + 1) % n;
            return self.turn;
        }
        let hash = self.key_hash(row);
        let shard = (hash % n as u64) as usize;
        self.shards[shard].key(hash);
        shard
    }

    /// The hash of an encoded row's key values.
    fn key_hash(&self, row: &[u8]) -> u64 {
        let mut hash = KeyHash::new();
        for (i, value) in encode::fields(row).enumerate() {
            if self.key_slots.contains(&i) {
                hash.value(&self.columns[i].ty, value);
            }
        }
        hash.finish()
    }

    fn encode_into(
        &mut self,
        r: &RecordRef<'_>,
        fields: &RawFields<'_>,
        line: u64,
        out: &mut Vec<u8>,
    ) -> Result<(), (usize, String)> {
        let mut values: Vec<Option<&str>> = vec![None; self.columns.len()];
        for (name, raw) in fields.iter() {
            match self.slot.get(name) {
                Some(&i) => values[i] = Some(raw.get()),
                None if !self.unknown_warned => {
                    tracing::warn!(stream = %self.stream, line, "record has properties that are not in its schema; they are not loaded");
                    self.unknown_warned = true;
                }
                None => {}
            }
        }
        encode::begin_row(out, self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            let result = match &col.source {
                Source::Property(_) => encode::encode(
                    &col.ty,
                    col.binary,
                    values[i].unwrap_or("null"),
                    self.nul,
                    out,
                ),
                Source::Meta(meta) => encode_meta(
                    *meta,
                    r.time_extracted.as_deref(),
                    r.version,
                    self.sequence_base + line as i64,
                    out,
                ),
            };
            if let Err(why) = result {
                return Err((i, why));
            }
        }
        Ok(())
    }

    /// Data outgrew a column: integers beyond their type become `numeric`, text beyond
    /// `varchar(n)` becomes `text`.
    fn widening_for(&self, i: usize, why: &str) -> Option<PgType> {
        let col = &self.columns[i];
        if !matches!(col.source, Source::Property(_)) {
            return None;
        }
        match &col.ty {
            PgType::SmallInt | PgType::Integer | PgType::BigInt
                if why.starts_with("integer out of range") =>
            {
                Some(PgType::Numeric)
            }
            PgType::Varchar(_) if why.starts_with("text longer than") => Some(PgType::Text),
            _ => None,
        }
    }

    /// Moves every shard's rows into finished parts.
    fn close_parts(&mut self, into: &mut Vec<Part>) {
        for (shard, buf) in self.shards.iter_mut().enumerate() {
            if buf.lines.is_empty() {
                continue;
            }
            into.push(Part {
                shard,
                columns: self.columns.clone(),
                data: std::mem::replace(&mut buf.data, self.buffers.take()).into(),
                lines: std::mem::take(&mut buf.lines),
                unique_keys: !buf.repeated,
            });
            buf.keys.clear();
            buf.repeated = false;
        }
    }

    /// Moves every shard's rows into the finished parts of the batch.
    fn close_into_done(&mut self) {
        let mut done = std::mem::take(&mut self.done);
        self.close_parts(&mut done);
        self.done_bytes = done.iter().map(|p| p.data.len()).sum();
        self.done = done;
    }

    /// Closes the current parts and continues with column `i` widened.
    fn widen(&mut self, i: usize, wider: PgType) {
        self.close_into_done();
        let mut columns = (*self.columns).clone();
        let name = columns[i].name.clone();
        tracing::info!(stream = %self.stream, column = %name, to = %wider.sql(), "data outgrew its column; widening");
        columns[i].ty = wider.clone();
        if let Some(c) = self.model.columns.iter_mut().find(|c| c.name == name) {
            c.ty = wider;
        }
        self.columns = Arc::new(columns);
    }

    fn fail(
        &self,
        column: &str,
        fields: Option<&RawFields<'_>>,
        line: u64,
        why: String,
    ) -> SdkError {
        let key = fields.map(|f| key_text(&self.model, f)).unwrap_or_default();
        SdkError::fatal(
            format!(
                "line {line}: stream `{}`, column `{column}`{key}",
                self.stream
            ),
            std::io::Error::other(why),
        )
    }
}

/// Writes a metadata column's value for a row read on an input line of `sequence`.
fn encode_meta(
    meta: Meta,
    time_extracted: Option<&str>,
    version: Option<i64>,
    sequence: i64,
    out: &mut Vec<u8>,
) -> Result<(), String> {
    match meta {
        Meta::ExtractedAt => match time_extracted {
            Some(t) => return timestamp_micros(t).map(|m| encode::field(out, &m.to_be_bytes())),
            None => encode::null(out),
        },
        Meta::ReceivedAt => encode::field(out, &now_pg_micros().to_be_bytes()),
        Meta::Sequence => encode::field(out, &sequence.to_be_bytes()),
        Meta::TableVersion => match version {
            Some(v) => encode::field(out, &v.to_be_bytes()),
            None => encode::null(out),
        },
        Meta::DeletedAt | Meta::BatchedAt => encode::null(out),
    }
    Ok(())
}

fn key_text(model: &TableModel, fields: &RawFields<'_>) -> String {
    let Some((_, keys)) = &model.primary_key else {
        return String::new();
    };
    let parts: Vec<String> = keys
        .iter()
        .map(|k| format!("{k}={}", fields.get(k).map_or("null", |v| v.get())))
        .collect();
    format!(", key {{{}}}", parts.join(", "))
}

/// FNV-1a over the canonical bytes of key values: values PostgreSQL holds equal hash equal
/// (`numeric` without its display scale, `-0.0` as `0.0`).
struct KeyHash(u64);

impl KeyHash {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn value(&mut self, ty: &PgType, value: Option<&[u8]>) {
        match value {
            None => self.bytes(&[0xff]),
            // ndigits, weight, sign, dscale, digits: the display scale does not change the value,
            // and every zero is the same zero.
            Some(v) if *ty == PgType::Numeric && v.len() >= 8 => {
                let zero = v[..2] == [0, 0] && v[4..6] != [0xc0, 0];
                if !zero {
                    self.bytes(&v[..6]);
                    self.bytes(&v[8..]);
                }
            }
            Some(v) => {
                // -0.0 equals 0.0.
                let v = if *ty == PgType::Double && v == [0x80, 0, 0, 0, 0, 0, 0, 0] {
                    &[0; 8]
                } else {
                    v
                };
                self.bytes(&(v.len() as u32).to_be_bytes());
                self.bytes(v);
            }
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn now_pg_micros() -> i64 {
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    unix - PG_EPOCH_UNIX_MICROS
}

impl StreamSink for PgSink {
    type Batch = Batch;
    type Loader = PgLoader;
    const WANTS_FIELDS: bool = true;

    fn accept(
        &mut self,
        r: &RecordRef<'_>,
        fields: Option<&RawFields<'_>>,
        line: u64,
    ) -> Result<(), SdkError> {
        let Some(fields) = fields else {
            return Err(self.fail("*", None, line, "record members not parsed".into()));
        };
        if let Some(v) = r.version
            && !self.versions.contains(&v)
        {
            self.versions.push(v);
        }
        loop {
            match self.encode_row(line, |s, out| s.encode_into(r, fields, line, out)) {
                Ok(()) => return Ok(()),
                Err((i, why)) => {
                    let Some(wider) = self.widening_for(i, &why) else {
                        return Err(self.fail(
                            &self.columns[i].name.clone(),
                            Some(fields),
                            line,
                            why,
                        ));
                    };
                    self.widen(i, wider);
                }
            }
        }
    }

    fn buffered_rows(&self) -> usize {
        self.shards.iter().map(|s| s.lines.len()).sum::<usize>()
            + self.done.iter().map(|p| p.lines.len()).sum::<usize>()
    }

    fn buffered_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.data.len()).sum::<usize>() + self.done_bytes
    }

    fn take_batch(&mut self) -> Batch {
        let mut parts = std::mem::take(&mut self.done);
        self.done_bytes = 0;
        self.close_parts(&mut parts);
        Batch {
            parts,
            versions: std::mem::take(&mut self.versions),
        }
    }

    const ACCEPTS_ARROW: bool = true;

    fn accept_arrow(&mut self, rows: &ArrowRows<'_>, line: u64) -> Result<(), SdkError> {
        self.accept_rows(rows, line)
    }

    fn update_schema(&mut self, spec: Arc<StreamSpec>) -> Result<(), SdkError> {
        self.replan(&spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Binary;
    use singer_core::validate::RecordValidator;

    fn hash(ty: &PgType, raw: &str) -> u64 {
        let mut out = Vec::new();
        encode::encode(ty, Binary::default(), raw, NulPolicy::Replace, &mut out).unwrap();
        let mut h = KeyHash::new();
        h.value(
            ty,
            encode::fields(&[&[0, 1][..], &out].concat())
                .next()
                .flatten(),
        );
        h.finish()
    }

    /// Records with every date and date-time form load into the `date` and `timestamptz`
    /// columns the schema asks for: no value widens a column or fails the SDK's validation
    /// (`validate_records`, done by the SDK before a record reaches the sink).
    #[test]
    fn every_date_form_keeps_its_column_type() {
        let config: Config = serde_json::from_value(
            serde_json::json!({"validate_records": true, "stream_connections": 1}),
        )
        .unwrap();
        let message = singer_core::message::SchemaMessage {
            stream: "s".into(),
            schema: serde_json::json!({"type": "object", "properties": {
                "id": {"type": "integer"},
                "at": {"type": ["null", "string"], "format": "date-time"},
                "day": {"type": ["null", "string"], "format": "date"}
            }}),
            key_properties: vec!["id".into()],
            bookmark_properties: None,
        };
        let spec = StreamSpec {
            schema: singer_core::StreamSchema::compile(
                "s",
                &message.schema,
                &message.key_properties,
            )
            .unwrap(),
            message,
        };
        let validator = RecordValidator::new("s", &spec.message.schema).unwrap();
        let opts = PlanOptions { metadata: true };
        let mut sink =
            PgSink::new("s", TableModel::absent("p", "s"), opts, &config, &spec, 0).unwrap();
        let before = sink.columns.clone();
        let rows = [
            (r#""2024-01-02T03:04:05.123456+00:00""#, r#""2024-01-02""#),
            (
                r#""+294276-12-31T23:59:59.999999+00:00""#,
                r#""+5874897-12-31""#,
            ),
            (r#""-4713-11-24T00:00:00+00:00""#, r#""-4713-11-24""#),
            (r#""-0043-03-15T00:00:00+00:00""#, r#""-0043-03-15""#),
            (r#""0000-01-01T00:00:00+00:00""#, r#""0000-01-01""#),
            (r#""infinity""#, r#""infinity""#),
            (r#""-infinity""#, r#""-infinity""#),
        ];
        for (n, (at, day)) in rows.iter().enumerate() {
            let text = format!(r#"{{"id":{n},"at":{at},"day":{day}}}"#);
            let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&text).unwrap();
            let r = RecordRef {
                stream: "s".into(),
                record: &raw,
                version: None,
                time_extracted: Some("+294276-12-31T23:59:59.999999+00:00".into()),
            };
            let value: serde_json::Value = serde_json::from_str(raw.get()).unwrap();
            validator
                .validate("s", &value)
                .unwrap_or_else(|e| panic!("{text}: {e}"));
            let fields = RawFields::parse(&raw).unwrap();
            sink.accept(&r, Some(&fields), n as u64 + 1).unwrap();
        }
        assert_eq!(sink.columns, before);
        let types: Vec<(&str, &PgType)> = sink
            .columns
            .iter()
            .map(|c| (c.name.as_str(), &c.ty))
            .collect();
        assert!(types.contains(&("at", &PgType::Timestamptz)), "{types:?}");
        assert!(types.contains(&("day", &PgType::Date)), "{types:?}");
        assert_eq!(sink.buffered_rows(), rows.len());
        assert_eq!(sink.take_batch().parts.len(), 1);
        // Garbage still fails validation, and without it the sink refuses it too.
        let text = r#"{"id":9,"at":"+294276-13-01T00:00:00+00:00"}"#;
        let e = validator
            .validate("s", &serde_json::from_str(text).unwrap())
            .unwrap_err();
        assert_eq!(e.path, "/at");
        let raw: Box<serde_json::value::RawValue> = serde_json::from_str(text).unwrap();
        let r = RecordRef {
            stream: "s".into(),
            record: &raw,
            version: None,
            time_extracted: None,
        };
        let fields = RawFields::parse(&raw).unwrap();
        let e = sink.accept(&r, Some(&fields), 9).unwrap_err();
        assert!(e.to_string().contains("column `at`"), "{e}");
        assert_eq!(sink.columns, before);
    }

    #[test]
    fn equal_keys_hash_equal() {
        let n = PgType::Numeric;
        assert_eq!(hash(&n, "1"), hash(&n, "1.0"));
        assert_eq!(hash(&n, "1"), hash(&n, "\"1.000\""));
        assert_eq!(hash(&n, "0"), hash(&n, "0.00"));
        assert_ne!(hash(&n, "1"), hash(&n, "10"));
        assert_ne!(hash(&n, "1"), hash(&n, "-1"));
        let d = PgType::Double;
        assert_eq!(hash(&d, "0.0"), hash(&d, "-0.0"));
        assert_ne!(hash(&d, "1.0"), hash(&d, "-1.0"));
        let t = PgType::Text;
        assert_ne!(hash(&t, "\"a\""), hash(&t, "\"b\""));
        assert_ne!(hash(&t, "\"a\""), hash(&t, "null"));
    }
}
