//! The sink: turns records into binary COPY rows for the current table plan.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use singer_core::RecordRef;
use singer_core::record::RawFields;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::{StreamSink, StreamSpec};

use crate::encode::{self, NulPolicy};
use crate::loader::PgLoader;
use crate::model::{Active, Meta, PlanOptions, Source, TableModel, plan};
use crate::types::PgType;
use crate::values::timestamp_micros;

/// Microseconds between 1970-01-01 and 2000-01-01.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// Rows encoded for one set of columns.
pub struct Part {
    /// The columns of every row, in order.
    pub columns: Arc<Vec<Active>>,
    /// Encoded rows (no COPY header or trailer).
    pub data: bytes::Bytes,
    /// Input line of each row, for error messages.
    pub lines: Vec<u64>,
}

/// One batch: usually one part; a column widened by data mid-batch starts a new part.
pub struct Batch {
    /// The parts, in input order.
    pub parts: Vec<Part>,
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
}

/// A stream's sink.
pub struct PgSink {
    stream: String,
    capacity: usize,
    model: TableModel,
    opts: PlanOptions,
    nul: NulPolicy,
    keyed: bool,
    columns: Arc<Vec<Active>>,
    slot: HashMap<String, usize>,
    data: Vec<u8>,
    lines: Vec<u64>,
    done: Vec<Part>,
    done_bytes: usize,
    sequence_base: i64,
    unknown_warned: bool,
}

impl PgSink {
    pub(crate) fn new(
        stream: &str,
        model: TableModel,
        opts: PlanOptions,
        nul: NulPolicy,
        spec: &StreamSpec,
        sequence_base: i64,
        batch_bytes: usize,
    ) -> Self {
        // Reserve the whole batch up front: untouched pages cost no memory, and the buffer
        // never reallocates (doubling would briefly hold two copies).
        let capacity = batch_bytes.saturating_add(1 << 20);
        let mut sink = Self {
            capacity,
            stream: stream.to_string(),
            model,
            opts,
            nul,
            keyed: false,
            columns: Arc::new(Vec::new()),
            slot: HashMap::new(),
            data: Vec::with_capacity(capacity),
            lines: Vec::new(),
            done: Vec::new(),
            done_bytes: 0,
            sequence_base,
            unknown_warned: false,
        };
        sink.replan(spec);
        sink
    }

    fn replan(&mut self, spec: &StreamSpec) {
        let p = plan(&self.model, &spec.schema, self.opts);
        self.model = p.model;
        self.keyed = !p.keys.is_empty();
        let columns = p.active;
        self.slot = columns
            .iter()
            .enumerate()
            .filter_map(|(i, c)| match &c.source {
                Source::Property(p) => Some((p.clone(), i)),
                Source::Meta(_) => None,
            })
            .collect();
        self.columns = Arc::new(columns);
    }

    /// Encodes one row; on failure the row is removed and the failing column returned.
    fn encode_row(
        &mut self,
        r: &RecordRef<'_>,
        fields: &RawFields<'_>,
        line: u64,
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
        let row_start = self.data.len();
        encode::begin_row(&mut self.data, self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            let out = &mut self.data;
            let result = match &col.source {
                Source::Property(_) => encode::encode(
                    &col.ty,
                    col.binary,
                    values[i].unwrap_or("null"),
                    self.nul,
                    out,
                ),
                Source::Meta(Meta::ExtractedAt) => match &r.time_extracted {
                    Some(t) => timestamp_micros(t).map(|m| encode::field(out, &m.to_be_bytes())),
                    None => {
                        encode::null(out);
                        Ok(())
                    }
                },
                Source::Meta(Meta::ReceivedAt) => {
                    encode::field(out, &now_pg_micros().to_be_bytes());
                    Ok(())
                }
                Source::Meta(Meta::Sequence) => {
                    encode::field(out, &(self.sequence_base + line as i64).to_be_bytes());
                    Ok(())
                }
                Source::Meta(Meta::TableVersion) => {
                    match r.version {
                        Some(v) => encode::field(out, &v.to_be_bytes()),
                        None => encode::null(out),
                    }
                    Ok(())
                }
                Source::Meta(Meta::DeletedAt | Meta::BatchedAt) => {
                    encode::null(out);
                    Ok(())
                }
            };
            if let Err(why) = result {
                self.data.truncate(row_start);
                return Err((i, why));
            }
        }
        self.lines.push(line);
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

    /// Closes the current part and continues with column `i` widened.
    fn widen(&mut self, i: usize, wider: PgType) {
        if !self.lines.is_empty() {
            self.done_bytes += self.data.len();
            self.done.push(Part {
                columns: self.columns.clone(),
                data: std::mem::replace(&mut self.data, Vec::with_capacity(self.capacity)).into(),
                lines: std::mem::take(&mut self.lines),
            });
        }
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
        loop {
            match self.encode_row(r, fields, line) {
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
        self.lines.len() + self.done.iter().map(|p| p.lines.len()).sum::<usize>()
    }

    fn buffered_bytes(&self) -> usize {
        self.data.len() + self.done_bytes
    }

    fn take_batch(&mut self) -> Batch {
        let mut parts = std::mem::take(&mut self.done);
        self.done_bytes = 0;
        if !self.lines.is_empty() {
            parts.push(Part {
                columns: self.columns.clone(),
                data: std::mem::replace(&mut self.data, Vec::with_capacity(self.capacity)).into(),
                lines: std::mem::take(&mut self.lines),
            });
        }
        Batch { parts }
    }

    fn update_schema(&mut self, spec: Arc<StreamSpec>) -> Result<(), SdkError> {
        self.replan(&spec);
        Ok(())
    }
}
