//! The loop that reads messages, routes records to stream sinks, hands batches to loader
//! tasks and echoes states once they are safe. A stop signal ends the reading as the end of
//! input does, except that loaders hear the input was cut short ([`shutdown`]).
//!
//! Bookkeeping for the checkpoint rule: every message is identified by its input line number.
//! For each stream we know the line of the oldest record not yet durable (first in-flight
//! batch, else the first buffered record). A STATE read at line `s` is safe to echo when `s`
//! is below that line for every stream: then every record before it is committed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use serde_json::value::RawValue;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;

use super::shutdown::{self, StopFlag};
use super::{ArrowRows, BatchLimits, Loader, StreamSink, StreamSpec, Target};
use crate::batch::{BatchSchema, Rows, for_each_rows, to_json};
use crate::io::{ChunkReader, DEFAULT_MAX_LINE_BYTES, Line, MessageWriter, Next};
use crate::message::{
    BatchMessage, Message, MessageRef, ParseError, RecordRef, SchemaMessage, parse_line,
};
use crate::metrics::{self, Metric, RecordCounter};
use crate::record::RawFields;
use crate::schema::StreamSchema;
use crate::sdk::SdkError;
use crate::validate::RecordValidator;

const CHUNK_BYTES: usize = 1 << 20;
const IDLE_TICK: Duration = Duration::from_secs(1);

/// What a finished run did.
#[derive(Debug, Default, Clone)]
pub struct RunSummary {
    /// Records accepted.
    pub records: u64,
    /// States echoed on stdout.
    pub states_echoed: u64,
    /// The last state echoed.
    pub last_state: Option<Value>,
}

enum Cmd<B> {
    Load(B),
    Schema(Arc<StreamSpec>),
    Activate(i64),
    /// No more commands; `complete` is false when the input was cut short by a signal.
    Finish {
        complete: bool,
    },
}

struct Done {
    slot: usize,
    result: Result<(), SdkError>,
}

struct Slot<S: StreamSink> {
    name: String,
    sink: S,
    spec: Arc<StreamSpec>,
    validator: Option<RecordValidator>,
    tx: mpsc::Sender<Cmd<S::Batch>>,
    /// Line and arrival time of the oldest buffered record.
    buffered_since: Option<(u64, Instant)>,
    /// First line of each command sent and not yet acknowledged, in order.
    in_flight: VecDeque<u64>,
    counter: RecordCounter,
}

struct Driver<T: Target> {
    target: T,
    limits: BatchLimits,
    validate: bool,
    rt: Runtime,
    slots: Vec<Slot<T::Sink>>,
    by_name: HashMap<String, usize>,
    pending_states: VecDeque<(u64, Value)>,
    done_tx: std_mpsc::Sender<Done>,
    done_rx: std_mpsc::Receiver<Done>,
    out: MessageWriter<Box<dyn Write + Send>>,
    warned_types: HashSet<String>,
    summary: RunSummary,
    last_line: u64,
}

pub(super) fn run<T: Target>(
    mut target: T,
    input: Box<dyn Read + Send>,
    output: Box<dyn Write + Send>,
    signals: bool,
) -> Result<RunSummary, SdkError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| SdkError::fatal("cannot start the async runtime", e))?;
    let stop = if signals {
        let flag = shutdown::listen(&rt, T::NAME, target.drain_timeout())
            .map_err(|e| SdkError::fatal("cannot listen for SIGTERM and SIGINT", e))?;
        Some(flag)
    } else {
        None
    };
    let stopped = || stop.as_ref().is_some_and(StopFlag::requested);
    rt.block_on(target.setup())?;
    let (done_tx, done_rx) = std_mpsc::channel();
    let mut driver = Driver {
        limits: target.limits(),
        validate: target.validate_records(),
        target,
        rt,
        slots: Vec::new(),
        by_name: HashMap::new(),
        pending_states: VecDeque::new(),
        done_tx,
        done_rx,
        out: MessageWriter::new(output),
        warned_types: HashSet::new(),
        summary: RunSummary::default(),
        last_line: 0,
    };
    let reader = ChunkReader::spawn(input, DEFAULT_MAX_LINE_BYTES, CHUNK_BYTES);
    'input: while !stopped() {
        match reader.next(driver.next_deadline())? {
            Next::Chunk(chunk) => {
                for line in chunk.lines() {
                    if stopped() {
                        break 'input;
                    }
                    driver.handle_line(line)?;
                }
            }
            Next::Timeout => {}
            Next::End => break,
        }
        driver.cut_aged()?;
        driver.poll_done()?;
    }
    match stop.filter(StopFlag::requested) {
        Some(flag) => {
            tracing::warn!(
                signal = flag.signal().map_or("a signal", |s| s.name()),
                last_line = driver.last_line,
                "input stopped; committing every record read"
            );
            driver.finish(false)
        }
        None => driver.finish(true),
    }
}

/// A row of a BATCH file as a record of its stream.
fn batch_record<'a>(b: &'a BatchMessage, raw: &'a RawValue) -> RecordRef<'a> {
    RecordRef {
        stream: b.stream.as_str().into(),
        record: raw,
        version: b.version,
        time_extracted: None,
    }
}

impl<T: Target> Driver<T> {
    fn handle_line(&mut self, line: Line<'_>) -> Result<(), SdkError> {
        let n = line.number;
        self.last_line = n;
        let parsed =
            parse_line(line.bytes).map_err(|source| SdkError::Parse { line: n, source })?;
        match parsed {
            MessageRef::Record(r) => self.handle_record(&r, n),
            MessageRef::Other(Message::Schema(s)) => self.handle_schema(s, n),
            MessageRef::Other(Message::State(s)) => {
                self.pending_states.push_back((n, s.value));
                self.release()
            }
            MessageRef::Other(Message::ActivateVersion(a)) => {
                let Some(&idx) = self.by_name.get(&a.stream) else {
                    tracing::warn!(stream = %a.stream, line = n, "ACTIVATE_VERSION for a stream with no SCHEMA; ignored");
                    return Ok(());
                };
                self.cut(idx)?;
                self.send(idx, Cmd::Activate(a.version), n)
            }
            MessageRef::Other(Message::Batch(b)) => self.handle_batch(&b, n),
            MessageRef::Other(Message::Record(_)) => Ok(()),
            MessageRef::Unknown(ty) => {
                if self.warned_types.insert(ty.to_string()) {
                    tracing::warn!(message_type = %ty, line = n, "unknown message type; skipping messages of this type");
                }
                Ok(())
            }
        }
    }

    /// Loads every row of a BATCH message's files as if its records had arrived on its line.
    fn handle_batch(&mut self, b: &BatchMessage, line: u64) -> Result<(), SdkError> {
        let Some(&idx) = self.by_name.get(&b.stream) else {
            return Err(SdkError::RecordBeforeSchema {
                stream: b.stream.clone(),
                line,
            });
        };
        let schema = BatchSchema::new(&self.slots[idx].spec.schema);
        let result = for_each_rows(b, &schema, |file, rows| match rows {
            Rows::Json(raw) => self.handle_record(&batch_record(b, raw), line),
            Rows::Arrow { batch, positions } if <T::Sink as StreamSink>::ACCEPTS_ARROW => {
                let rows = ArrowRows {
                    batch,
                    schema: &schema,
                    positions,
                    version: b.version,
                    file,
                };
                self.handle_arrow(idx, &rows, line)
            }
            Rows::Arrow { batch, positions } => {
                to_json::for_each_row(batch, &schema, positions, |json| {
                    let raw: &RawValue =
                        serde_json::from_str(json).map_err(|e| SdkError::Parse {
                            line,
                            source: ParseError::MalformedJson(e),
                        })?;
                    self.handle_record(&batch_record(b, raw), line)
                })
            }
        });
        match result {
            Err(SdkError::Batch { source, .. }) => Err(SdkError::Batch { line, source }),
            other => other,
        }
    }

    fn handle_arrow(
        &mut self,
        idx: usize,
        rows: &ArrowRows<'_>,
        line: u64,
    ) -> Result<(), SdkError> {
        let slot = &mut self.slots[idx];
        slot.sink.accept_arrow(rows, line)?;
        let n = rows.batch.num_rows() as u64;
        if slot.buffered_since.is_none() && n > 0 {
            slot.buffered_since = Some((line, Instant::now()));
        }
        slot.counter.add(n);
        self.summary.records += n;
        if slot.sink.buffered_rows() >= self.limits.max_rows
            || slot.sink.buffered_bytes() >= self.limits.max_bytes
        {
            self.cut(idx)?;
            self.poll_done()?;
        }
        Ok(())
    }

    fn handle_record(&mut self, r: &RecordRef<'_>, line: u64) -> Result<(), SdkError> {
        let Some(&idx) = self.by_name.get(r.stream.as_ref()) else {
            return Err(SdkError::RecordBeforeSchema {
                stream: r.stream.to_string(),
                line,
            });
        };
        let slot = &mut self.slots[idx];
        let keys = &slot.spec.message.key_properties;
        let fields = if <T::Sink as StreamSink>::WANTS_FIELDS || !keys.is_empty() {
            let parsed = RawFields::parse(r.record).map_err(|e| SdkError::Parse {
                line,
                source: ParseError::MalformedJson(e),
            })?;
            if let Some(key) = keys.iter().find(|k| parsed.is_null_or_absent(k)) {
                return Err(SdkError::MissingKeyProperty {
                    stream: slot.name.clone(),
                    key: key.clone(),
                    line,
                });
            }
            Some(parsed)
        } else {
            None
        };
        if let Some(v) = &slot.validator {
            let value: Value =
                serde_json::from_str(r.record.get()).map_err(|e| SdkError::Parse {
                    line,
                    source: ParseError::MalformedJson(e),
                })?;
            v.validate(&slot.name, &value)
                .map_err(|source| SdkError::InvalidRecord { line, source })?;
        }
        slot.sink.accept(r, fields.as_ref(), line)?;
        if slot.buffered_since.is_none() {
            slot.buffered_since = Some((line, Instant::now()));
        }
        slot.counter.add(1);
        self.summary.records += 1;
        if slot.sink.buffered_rows() >= self.limits.max_rows
            || slot.sink.buffered_bytes() >= self.limits.max_bytes
        {
            self.cut(idx)?;
            self.poll_done()?;
        }
        Ok(())
    }

    fn handle_schema(&mut self, msg: SchemaMessage, line: u64) -> Result<(), SdkError> {
        if let Some(&idx) = self.by_name.get(&msg.stream)
            && self.slots[idx].spec.message == msg
        {
            return Ok(()); // Re-sent unchanged: nothing to do.
        }
        let schema = StreamSchema::compile(&msg.stream, &msg.schema, &msg.key_properties)
            .map_err(|source| SdkError::Schema { line, source })?;
        let validator = if self.validate {
            Some(RecordValidator::new(&msg.stream, &msg.schema).map_err(|e| {
                SdkError::fatal(format!("line {line}: cannot compile the schema"), e)
            })?)
        } else {
            None
        };
        let spec = Arc::new(StreamSpec {
            message: msg,
            schema,
        });
        if let Some(&idx) = self.by_name.get(&spec.message.stream) {
            self.cut(idx)?;
            let slot = &mut self.slots[idx];
            slot.sink.update_schema(spec.clone())?;
            slot.spec = spec.clone();
            slot.validator = validator;
            return self.send(idx, Cmd::Schema(spec), line);
        }
        let name = spec.message.stream.clone();
        let (sink, loader) = self.rt.block_on(self.target.open_stream(spec.clone()))?;
        let (tx, rx) = mpsc::channel(1);
        let idx = self.slots.len();
        self.rt
            .spawn(worker(loader, rx, self.done_tx.clone(), idx, name.clone()));
        self.slots.push(Slot {
            name: name.clone(),
            sink,
            spec,
            validator,
            tx,
            buffered_since: None,
            in_flight: VecDeque::new(),
            counter: RecordCounter::new(&name, crate::sdk::tap::METRIC_INTERVAL),
        });
        self.by_name.insert(name.clone(), idx);
        tracing::info!(stream = %name, "stream opened");
        Ok(())
    }

    /// Cuts a stream's buffer into a batch and hands it to its loader.
    fn cut(&mut self, idx: usize) -> Result<(), SdkError> {
        let slot = &mut self.slots[idx];
        let Some((first, _)) = slot.buffered_since.take() else {
            return Ok(());
        };
        let batch = slot.sink.take_batch();
        self.send(idx, Cmd::Load(batch), first)
    }

    fn send(
        &mut self,
        idx: usize,
        cmd: Cmd<<T::Sink as StreamSink>::Batch>,
        line: u64,
    ) -> Result<(), SdkError> {
        let slot = &mut self.slots[idx];
        slot.in_flight.push_back(line);
        if slot.tx.blocking_send(cmd).is_err() {
            // The loader stopped: it reported why on the done channel.
            return Err(self.wait_for_error());
        }
        Ok(())
    }

    fn wait_for_error(&mut self) -> SdkError {
        while let Ok(done) = self.done_rx.recv() {
            if let Err(e) = self.apply_done(done) {
                return e;
            }
        }
        SdkError::fatal(
            "a stream loader stopped",
            std::io::Error::other("loader task ended"),
        )
    }

    fn cut_aged(&mut self) -> Result<(), SdkError> {
        for idx in 0..self.slots.len() {
            let aged = self.slots[idx]
                .buffered_since
                .is_some_and(|(_, t)| t.elapsed() >= self.limits.max_age);
            if aged {
                self.cut(idx)?;
            }
        }
        Ok(())
    }

    fn next_deadline(&self) -> Duration {
        self.slots
            .iter()
            .filter_map(|s| s.buffered_since)
            .map(|(_, t)| self.limits.max_age.saturating_sub(t.elapsed()))
            .min()
            .unwrap_or(IDLE_TICK)
            .clamp(Duration::from_millis(1), IDLE_TICK)
    }

    fn apply_done(&mut self, done: Done) -> Result<(), SdkError> {
        if let Err(e) = done.result {
            // Before stopping, echo the newest state that is durable: the failed batch is
            // still in flight, so nothing at or after its first line is released.
            if let Err(out) = self.release() {
                tracing::error!(error = %out, "cannot echo the last committed state");
            }
            return Err(e);
        }
        self.slots[done.slot].in_flight.pop_front();
        Ok(())
    }

    fn poll_done(&mut self) -> Result<(), SdkError> {
        let mut any = false;
        while let Ok(done) = self.done_rx.try_recv() {
            self.apply_done(done)?;
            any = true;
        }
        if any { self.release() } else { Ok(()) }
    }

    /// Echoes the newest state whose every preceding record is durable.
    fn release(&mut self) -> Result<(), SdkError> {
        let low = self
            .slots
            .iter()
            .filter_map(|s| {
                s.in_flight
                    .front()
                    .copied()
                    .or(s.buffered_since.map(|(l, _)| l))
            })
            .min()
            .unwrap_or(u64::MAX);
        let mut newest = None;
        while self
            .pending_states
            .front()
            .is_some_and(|(line, _)| *line < low)
        {
            newest = self.pending_states.pop_front();
        }
        if let Some((_, value)) = newest {
            self.out
                .write_state_value(&value)
                .map_err(SdkError::Stdout)?;
            self.summary.states_echoed += 1;
            self.summary.last_state = Some(value);
        }
        Ok(())
    }

    /// Loads what is buffered, waits for every loader, echoes the last safe state. `complete`
    /// is false when a signal stopped the input before its end.
    fn finish(mut self, complete: bool) -> Result<RunSummary, SdkError> {
        let end = self.last_line + 1;
        for idx in 0..self.slots.len() {
            self.cut(idx)?;
            self.send(idx, Cmd::Finish { complete }, end)?;
        }
        while self.slots.iter().any(|s| !s.in_flight.is_empty()) {
            match self.done_rx.recv() {
                Ok(done) => self.apply_done(done)?,
                Err(_) => break,
            }
        }
        self.release()?;
        self.out.flush().map_err(SdkError::Stdout)?;
        for s in &mut self.slots {
            s.counter.flush();
        }
        Ok(self.summary)
    }
}

async fn worker<L: Loader>(
    mut loader: L,
    mut rx: mpsc::Receiver<Cmd<L::Batch>>,
    done: std_mpsc::Sender<Done>,
    slot: usize,
    stream: String,
) {
    while let Some(cmd) = rx.recv().await {
        let finish = matches!(cmd, Cmd::Finish { .. });
        let started = Instant::now();
        let (result, what) = match cmd {
            Cmd::Load(b) => (loader.load(b).await, "load"),
            Cmd::Schema(s) => (loader.update_schema(s).await, "schema"),
            Cmd::Activate(v) => (loader.activate_version(v).await, "activate_version"),
            Cmd::Finish { complete: true } => (loader.finish().await, "finish"),
            Cmd::Finish { complete: false } => (loader.finish_interrupted().await, "finish"),
        };
        if what == "load" && result.is_ok() {
            Metric::timer(
                metrics::BATCH_PROCESSING_TIME,
                started.elapsed(),
                metrics::stream_tags(&stream),
            )
            .emit();
        }
        let failed = result.is_err();
        if let Err(e) = &result {
            tracing::error!(stream = %stream, step = what, error = %crate::error::chain_to_string(e), "loader failed");
        }
        if done.send(Done { slot, result }).is_err() || failed || finish {
            break;
        }
    }
}
