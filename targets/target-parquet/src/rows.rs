//! Rows into Arrow record batches of a stream's file schema: records gathered as [`RawRows`]
//! on the input thread and converted by [`ChunkBuilder`] (exact JSON → Arrow through
//! [`RowsBuilder`]) on the encoder's, Parquet BATCH rows column by column without JSON, each
//! with the `_sdc_*` columns the target fills.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{ArrayBuilder, Int64Builder, TimestampMicrosecondBuilder};
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray, new_null_array,
};
use arrow_schema::DataType;
use singer_core::batch::RowsBuilder;
use singer_core::batch::columns::UTC;
use singer_core::batch::from_json::{RowLocator, Span, ValueError};
use singer_core::record::RawFields;
use singer_core::sdk::target::ArrowRows;

use crate::columns::FileColumns;

/// The `_sdc_*` values of one row (`_sdc_batched_at` is set per chunk).
#[derive(Debug, Clone, Copy)]
pub struct RowMeta {
    /// `time_extracted` in microseconds since 1970 UTC.
    pub extracted_at: Option<i64>,
    /// When the record was read, in microseconds.
    pub received_at: i64,
    /// The row's sequence number.
    pub sequence: i64,
    /// The record's table version.
    pub version: Option<i64>,
}

struct MetaBuilders {
    extracted: TimestampMicrosecondBuilder,
    received: TimestampMicrosecondBuilder,
    sequence: Int64Builder,
    version: Int64Builder,
}

impl MetaBuilders {
    fn new() -> Self {
        Self {
            extracted: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            received: TimestampMicrosecondBuilder::new().with_timezone(UTC),
            sequence: Int64Builder::new(),
            version: Int64Builder::new(),
        }
    }

    fn push(&mut self, m: &RowMeta) {
        self.extracted.append_option(m.extracted_at);
        self.received.append_value(m.received_at);
        self.sequence.append_value(m.sequence);
        self.version.append_option(m.version);
    }

    /// The filled columns in [`crate::columns::FILLED`] order.
    fn finish(&mut self, batched_at: i64) -> [ArrayRef; 5] {
        let rows = self.sequence.len();
        [
            Arc::new(self.extracted.finish()),
            Arc::new(self.received.finish()),
            timestamps(batched_at, rows),
            Arc::new(self.sequence.finish()),
            Arc::new(self.version.finish()),
        ]
    }
}

fn timestamps(micros: i64, rows: usize) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_value(micros, rows).with_timezone(UTC))
}

/// One record of a [`RawRows`] chunk.
#[derive(Debug, Clone, Copy)]
struct RawRow {
    /// End of the record's spans.
    spans_end: usize,
    line: u64,
    meta: RowMeta,
}

/// Records of one stream as their members' raw JSON values, gathered on the input thread
/// (parsing the members and finding their columns) for [`ChunkBuilder`] to convert on the
/// encoder's.
#[derive(Debug)]
pub struct RawRows {
    columns: Arc<FileColumns>,
    text: String,
    spans: Vec<Span>,
    rows: Vec<RawRow>,
}

impl RawRows {
    /// An empty chunk of `columns`, with room for about `rows` records of `text_bytes`.
    pub fn new(columns: Arc<FileColumns>, rows: usize, text_bytes: usize) -> Self {
        let members = columns.records.columns.len();
        Self {
            columns,
            text: String::with_capacity(text_bytes),
            spans: Vec::with_capacity(rows * members),
            rows: Vec::with_capacity(rows),
        }
    }

    /// Empties a converted chunk for records of `columns`, keeping its buffers.
    pub fn reuse(mut self, columns: Arc<FileColumns>) -> Self {
        self.text.clear();
        self.spans.clear();
        self.rows.clear();
        self.columns = columns;
        self
    }

    /// Appends a record read on `line`; `locator` must be of the same columns.
    pub fn push(
        &mut self,
        locator: &mut RowLocator,
        fields: &RawFields<'_>,
        line: u64,
        meta: RowMeta,
    ) -> Result<(), ValueError> {
        locator.locate(fields, &mut self.text, &mut self.spans)?;
        self.rows.push(RawRow {
            spans_end: self.spans.len(),
            line,
            meta,
        });
        Ok(())
    }

    /// Records waiting.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when no record waits.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Bytes of raw values held.
    pub fn text_bytes(&self) -> usize {
        self.text.len()
    }

    /// The columns of the records.
    pub fn columns(&self) -> &Arc<FileColumns> {
        &self.columns
    }
}

/// A value of a [`RawRows`] chunk that does not fit its column, with the record's line.
#[derive(Debug)]
pub struct RowError {
    /// The record's input line.
    pub line: u64,
    /// The column and why.
    pub error: ValueError,
}

/// Records of one stream into record batches of its file schema.
pub struct ChunkBuilder {
    columns: Arc<FileColumns>,
    records: RowsBuilder,
    meta: Option<MetaBuilders>,
}

impl ChunkBuilder {
    /// An empty builder for `columns`.
    pub fn new(columns: Arc<FileColumns>) -> Self {
        Self {
            records: RowsBuilder::new(columns.records.clone()),
            meta: columns.metadata.then(MetaBuilders::new),
            columns,
        }
    }

    /// The columns it builds.
    pub fn columns(&self) -> &Arc<FileColumns> {
        &self.columns
    }

    /// Converts a chunk of records of the same columns. On error the builder is inconsistent:
    /// the run stops.
    pub fn push_raw(&mut self, rows: &RawRows) -> Result<(), RowError> {
        let (mut first, mut text_at) = (0, 0);
        for row in &rows.rows {
            let spans = &rows.spans[first..row.spans_end];
            first = row.spans_end;
            text_at = self
                .records
                .push_spans(&rows.text, text_at, spans)
                .map_err(|error| RowError {
                    line: row.line,
                    error,
                })?;
            if let Some(m) = &mut self.meta {
                m.push(&row.meta);
            }
        }
        Ok(())
    }

    /// The rows so far; the builder starts empty again.
    pub fn finish(&mut self, batched_at: i64) -> Result<RecordBatch, String> {
        let mut columns = self.records.finish().columns().to_vec();
        if let Some(m) = &mut self.meta {
            columns.extend(m.finish(batched_at));
        }
        RecordBatch::try_new(self.columns.arrow.clone(), columns).map_err(|e| e.to_string())
    }
}

/// Rows of a Parquet BATCH file as a record batch of the file schema: each record column is
/// the file's column of the same name (a timestamp's UTC spelling normalised), or nulls when
/// the file has none. `sequence` numbers the first row.
pub fn from_arrow(
    rows: &ArrowRows<'_>,
    columns: &FileColumns,
    received_at: i64,
    sequence: i64,
) -> Result<RecordBatch, String> {
    let n = rows.batch.num_rows();
    let by_name: HashMap<&str, usize> = rows
        .positions
        .iter()
        .enumerate()
        .filter_map(|(i, &p)| rows.schema.columns.get(p).map(|c| (c.name.as_str(), i)))
        .collect();
    let mut out: Vec<ArrayRef> = Vec::with_capacity(columns.arrow.fields().len());
    for (column, field) in columns
        .records
        .columns
        .iter()
        .zip(columns.records.arrow.fields())
    {
        let want = field.data_type();
        let Some(&i) = by_name.get(column.name.as_str()) else {
            out.push(new_null_array(want, n));
            continue;
        };
        let array = rows.batch.column(i);
        out.push(match (array.data_type(), want) {
            (got, want) if got == want => array.clone(),
            (DataType::Timestamp(u1, _), DataType::Timestamp(u2, Some(_))) if u1 == u2 => {
                let ts = array
                    .as_any()
                    .downcast_ref::<TimestampMicrosecondArray>()
                    .ok_or_else(|| {
                        format!("column `{}`: not a microsecond timestamp", column.name)
                    })?;
                Arc::new(ts.clone().with_timezone(UTC))
            }
            (got, want) => {
                return Err(format!(
                    "column `{}` is {got} in the file but {want} in the stream's files",
                    column.name
                ));
            }
        });
    }
    if columns.metadata {
        let end = sequence.saturating_add(n as i64);
        out.extend([
            new_null_array(&singer_core::batch::ColumnKind::Timestamp.data_type(), n),
            timestamps(received_at, n),
            timestamps(received_at, n),
            Arc::new(Int64Array::from_iter_values(sequence..end)) as ArrayRef,
            Arc::new(Int64Array::from(vec![rows.version; n])),
        ]);
    }
    RecordBatch::try_new(columns.arrow.clone(), out).map_err(|e| e.to_string())
}
