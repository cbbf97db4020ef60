//! Rows of Parquet BATCH files, given as Arrow columns, into the sink's COPY rows.
//!
//! A row loads exactly as the RECORD holding its values would: the same metadata (the
//! BATCH message's line for `_sdc_sequence`, its version for `_sdc_table_version`, no
//! `_sdc_extracted_at`), a null or absent key is an error, columns outgrown by data widen,
//! `validate_records` validates it, and columns the file lacks load as NULL. Errors name the
//! stream, the file, the row in the file (from 1) and the column.

use singer_core::message::ParseError;
use singer_core::sdk::SdkError;
use singer_core::sdk::target::ArrowRows;

use super::{PgSink, encode_meta};
use crate::encode;
use crate::encode_arrow::ArrowColumn;
use crate::model::Source;

impl PgSink {
    /// Adds the rows of one Arrow batch of a Parquet BATCH file read on input line `line`.
    pub(super) fn accept_rows(&mut self, rows: &ArrowRows<'_>, line: u64) -> Result<(), SdkError> {
        let first_row = self.first_row_of(rows, line);
        let mut names: Vec<&str> = Vec::with_capacity(rows.positions.len());
        let mut columns: Vec<ArrowColumn<'_>> = Vec::with_capacity(rows.positions.len());
        for (array, &p) in rows.batch.columns().iter().zip(rows.positions) {
            let Some(col) = rows.schema.columns.get(p) else {
                return Err(self.rows_error(rows, line, None, "*", "", "unknown column".into()));
            };
            let column = ArrowColumn::new(array.as_ref(), col.kind)
                .map_err(|why| self.rows_error(rows, line, None, &col.name, "", why))?;
            names.push(&col.name);
            columns.push(column);
        }
        // The file column of each loaded column (none: NULL), and of each key property.
        let source: Vec<Option<usize>> = self
            .columns
            .iter()
            .map(|c| match &c.source {
                Source::Property(p) => names.iter().position(|n| n == p),
                Source::Meta(_) => None,
            })
            .collect();
        let keys: Vec<(String, Option<usize>)> = self
            .key_properties
            .iter()
            .map(|k| (k.clone(), names.iter().position(|n| n == k)))
            .collect();
        if let Some(v) = rows.version
            && !self.versions.contains(&v)
        {
            self.versions.push(v);
        }
        let sequence = self.sequence_base + line as i64;
        for row in 0..rows.batch.num_rows() {
            let at = Some(first_row + row + 1);
            let missing = keys
                .iter()
                .find(|(_, j)| j.is_none_or(|j| columns[j].is_null(row)));
            if let Some((key, _)) = missing {
                let why = format!("key property `{key}` is null or absent");
                return Err(self.rows_error(rows, line, at, key, "", why));
            }
            self.validate_row(&columns, &names, row, line)?;
            self.make_room();
            loop {
                let encoded = self.encode_row(line, |s, out| {
                    s.encode_arrow_row(&columns, &source, row, rows.version, sequence, out)
                });
                let Err((i, why)) = encoded else { break };
                match self.widening_for(i, &why) {
                    Some(wider) => self.widen(i, wider),
                    None => {
                        let column = self.columns[i].name.clone();
                        let key = self.key_of(&columns, &keys, row);
                        return Err(self.rows_error(rows, line, at, &column, &key, why));
                    }
                }
            }
        }
        self.file_rows.2 += rows.batch.num_rows();
        Ok(())
    }

    /// Rows of the file read before these (a file's Arrow batches arrive one after another
    /// on the same line).
    fn first_row_of(&mut self, rows: &ArrowRows<'_>, line: u64) -> usize {
        if self.file_rows.0 != line || self.file_rows.1 != rows.file {
            self.file_rows = (line, rows.file.to_string(), 0);
        }
        self.file_rows.2
    }

    fn encode_arrow_row(
        &mut self,
        columns: &[ArrowColumn<'_>],
        source: &[Option<usize>],
        row: usize,
        version: Option<i64>,
        sequence: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), (usize, String)> {
        encode::begin_row(out, self.columns.len());
        for (i, col) in self.columns.iter().enumerate() {
            let file_column = source
                .get(i)
                .copied()
                .flatten()
                .and_then(|j| columns.get(j));
            let result = match (&col.source, file_column) {
                (Source::Property(_), Some(values)) => {
                    values.encode(row, &col.ty, col.binary, self.nul, &mut self.scratch, out)
                }
                (Source::Property(_), None) => {
                    encode::null(out);
                    Ok(())
                }
                (Source::Meta(meta), _) => encode_meta(*meta, None, version, sequence, out),
            };
            if let Err(why) = result {
                return Err((i, why));
            }
        }
        Ok(())
    }

    /// With `validate_records`, validates the row as the record `{"column": value, …}` of
    /// the file's columns (as the record the row stands for would be).
    fn validate_row(
        &mut self,
        columns: &[ArrowColumn<'_>],
        names: &[&str],
        row: usize,
        line: u64,
    ) -> Result<(), SdkError> {
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let text = &mut self.scratch;
        text.clear();
        text.push('{');
        for (j, (col, name)) in columns.iter().zip(names).enumerate() {
            if j > 0 {
                text.push(',');
            }
            text.push_str(&serde_json::to_string(name).unwrap_or_default());
            text.push(':');
            col.write_json(row, text);
        }
        text.push('}');
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| SdkError::Parse {
            line,
            source: ParseError::MalformedJson(e),
        })?;
        validator
            .validate(&self.stream, &value)
            .map_err(|source| SdkError::InvalidRecord { line, source })
    }

    /// Closes full shards into parts, so that one Arrow batch cannot grow a shard's buffer
    /// beyond its reserved capacity (the driver cuts the batch after it).
    fn make_room(&mut self) {
        if self.shards.iter().any(|s| s.data.len() >= self.max_bytes) {
            self.close_into_done();
        }
    }

    /// `, key {id=5}` for the key values of a row, as JSON.
    fn key_of(
        &mut self,
        columns: &[ArrowColumn<'_>],
        keys: &[(String, Option<usize>)],
        row: usize,
    ) -> String {
        if keys.is_empty() {
            return String::new();
        }
        let mut parts = Vec::with_capacity(keys.len());
        for (key, j) in keys {
            self.scratch.clear();
            match j.and_then(|j| columns.get(j)) {
                Some(col) => col.write_json(row, &mut self.scratch),
                None => self.scratch.push_str("null"),
            }
            parts.push(format!("{key}={}", self.scratch));
        }
        format!(", key {{{}}}", parts.join(", "))
    }

    /// An error naming the stream, the BATCH line, the file, the row and the column.
    fn rows_error(
        &self,
        rows: &ArrowRows<'_>,
        line: u64,
        row: Option<usize>,
        column: &str,
        key: &str,
        why: String,
    ) -> SdkError {
        let row = row.map(|r| format!(", row {r}")).unwrap_or_default();
        SdkError::fatal(
            format!(
                "line {line}: stream `{}`, BATCH file {}{row}, column `{column}`{key}",
                self.stream, rows.file
            ),
            std::io::Error::other(why),
        )
    }
}
