//! Moves the tap's output to the target through a bounded buffer, so the tap keeps extracting
//! while the target flushes a batch, and looks at each line on the way (records and bytes per
//! stream). Chunks always end at a line boundary.

use std::collections::BTreeMap;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::inspect::{Line, classify};

/// Bytes read from the tap at a time: a pipe holds 64 KiB, so one read rarely returns more.
/// A chunk is what one read completed (whole lines), so chunks are about this size.
const CHUNK: usize = 64 << 10;

/// Largest chunk built from reads that found more input already waiting.
const BATCH: usize = 512 << 10;

/// The tap's output: a reader that can tell how many bytes wait unread.
pub(crate) trait Source: Read + Send + 'static {
    /// Bytes ready to read without blocking (0 when unknown).
    fn pending(&self) -> usize {
        0
    }
}

impl Source for std::process::ChildStdout {
    fn pending(&self) -> usize {
        rustix::io::ioctl_fionread(self).map_or(0, |n| usize::try_from(n).unwrap_or(0))
    }
}

impl Source for std::io::Cursor<Vec<u8>> {}

/// Makes a pipe hold `bytes` (Linux), so a fast writer stalls less often.
pub(crate) fn enlarge_pipe(fd: impl std::os::fd::AsFd, bytes: usize) {
    let _ = rustix::pipe::fcntl_setpipe_size(fd, bytes);
}

/// Counts of one stream.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct StreamCount {
    pub(crate) records: u64,
    pub(crate) bytes: u64,
}

/// What has flowed so far.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    pub(crate) streams: BTreeMap<String, StreamCount>,
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
    pub(crate) states: u64,
}

pub(crate) type SharedFlow = Arc<Mutex<Flow>>;

/// Where chunks go: the target's stdin, or the spool.
pub(crate) trait ChunkSink: Send + 'static {
    /// Takes one chunk of whole lines; `states` is how many STATE lines it holds.
    fn write_chunk(&mut self, chunk: &[u8], states: u64) -> std::io::Result<()>;
    /// No more chunks.
    fn finish(&mut self) -> std::io::Result<()>;
}

/// Plain pipe into a process.
pub(crate) struct PipeSink<W: Write + Send + 'static>(pub(crate) Option<W>);

impl<W: Write + Send + 'static> ChunkSink for PipeSink<W> {
    fn write_chunk(&mut self, chunk: &[u8], _states: u64) -> std::io::Result<()> {
        match &mut self.0 {
            Some(w) => w.write_all(chunk),
            None => Err(std::io::Error::other("sink closed")),
        }
    }
    fn finish(&mut self) -> std::io::Result<()> {
        if let Some(mut w) = self.0.take() {
            w.flush()?;
        }
        Ok(())
    }
}

/// How the pump ended.
#[derive(Debug)]
pub(crate) enum PumpEnd {
    /// The tap's output ended and everything was handed to the sink.
    Drained,
    /// The sink failed (the target went away); the rest of the tap's output was dropped.
    SinkFailed(String),
    /// Reading the tap failed.
    ReadFailed(String),
}

/// Starts the two pump threads; join the returned handle for the outcome.
pub(crate) fn start<R, S>(
    source: R,
    sink: S,
    buffer_bytes: u64,
    flow: SharedFlow,
) -> JoinHandle<PumpEnd>
where
    R: Source,
    S: ChunkSink,
{
    let queue = Arc::new(Queue::new(
        usize::try_from(buffer_bytes).unwrap_or(usize::MAX),
    ));
    let writer = {
        let q = Arc::clone(&queue);
        std::thread::spawn(move || write_loop(&q, sink))
    };
    std::thread::spawn(move || {
        let read = read_loop(source, &queue, &flow);
        queue.close();
        let wrote = writer
            .join()
            .unwrap_or_else(|_| Err("the writer thread panicked".into()));
        match (read, wrote) {
            (_, Err(e)) => PumpEnd::SinkFailed(e),
            (Err(e), Ok(())) => PumpEnd::ReadFailed(e),
            (Ok(()), Ok(())) => PumpEnd::Drained,
        }
    })
}

/// Chunks in flight, bounded by the memory they hold (their capacity, not only their length;
/// one chunk is always let through, however large, so a single huge line cannot deadlock).
struct Queue {
    inner: Mutex<QueueState>,
    changed: Condvar,
    limit: usize,
}

#[derive(Default)]
struct QueueState {
    chunks: VecDeque<(Vec<u8>, u64)>,
    bytes: usize,
    closed: bool,
    /// The writer stopped (the sink failed): the reader stops too.
    broken: bool,
}

impl Queue {
    fn new(limit: usize) -> Self {
        Self {
            inner: Mutex::new(QueueState::default()),
            changed: Condvar::new(),
            limit,
        }
    }

    /// Waits for room; false when the writer is gone.
    fn push(&self, chunk: Vec<u8>, states: u64) -> bool {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        while !st.broken && !st.chunks.is_empty() && st.bytes + chunk.capacity() > self.limit {
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.broken {
            return false;
        }
        st.bytes += chunk.capacity();
        st.chunks.push_back((chunk, states));
        self.changed.notify_all();
        true
    }

    /// The next chunk; `None` once closed and empty.
    fn pop(&self) -> Option<(Vec<u8>, u64)> {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(c) = st.chunks.pop_front() {
                st.bytes -= c.0.capacity();
                self.changed.notify_all();
                return Some(c);
            }
            if st.closed {
                return None;
            }
            st = self.changed.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn close(&self) {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        st.closed = true;
        self.changed.notify_all();
    }

    fn break_off(&self) {
        let mut st = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        st.broken = true;
        st.chunks.clear();
        st.bytes = 0;
        self.changed.notify_all();
    }
}

fn write_loop<S: ChunkSink>(q: &Queue, mut sink: S) -> Result<(), String> {
    while let Some((chunk, states)) = q.pop() {
        if let Err(e) = sink.write_chunk(&chunk, states) {
            q.break_off();
            return Err(format!("writing to the target failed: {e}"));
        }
    }
    sink.finish()
        .map_err(|e| format!("closing the target's input failed: {e}"))
}

fn read_loop<R: Source>(mut source: R, q: &Queue, flow: &SharedFlow) -> Result<(), String> {
    // Bytes are read straight into the chunk being built; only the partial last line is copied
    // into the next one.
    let mut carry: Vec<u8> = Vec::with_capacity(CHUNK);
    loop {
        let len = carry.len();
        carry.resize(len + CHUNK, 0);
        let n = loop {
            match source.read(&mut carry[len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(format!("reading the tap's output failed: {e}")),
            }
        };
        carry.truncate(len + n);
        if n == 0 {
            break;
        }
        // While more input already waits, keep filling this chunk: fewer, larger hand-offs.
        if carry.len() < BATCH && source.pending() > 0 {
            continue;
        }
        let Some(last_nl) = memchr::memrchr(b'\n', &carry) else {
            continue;
        };
        let chunk = seal(&mut carry, last_nl + 1);
        let states = account(&chunk, flow);
        if !q.push(chunk, states) {
            // The writer stopped: the sink failed.
            return Ok(());
        }
    }
    if !carry.is_empty() {
        // A last line without a newline: pass it on, terminated.
        carry.push(b'\n');
        let states = account(&carry, flow);
        let _ = q.push(carry, states);
    }
    Ok(())
}

/// Takes the first `end` bytes of `buf` (whole lines) as a chunk, leaving the rest in `buf`.
///
/// A well-filled buffer is handed over as it is. A short one (a tap that writes a few KiB at a
/// time) is copied out at its exact size and the buffer kept for the next read: handing it
/// over, or shrinking it in place, left about 64 KiB resident per queued chunk, and a 256 MiB
/// buffer measured 2-3 GB of RSS.
fn seal(buf: &mut Vec<u8>, end: usize) -> Vec<u8> {
    if end >= CHUNK / 2 {
        let tail = &buf[end..];
        let mut next = Vec::with_capacity(CHUNK + tail.len());
        next.extend_from_slice(tail);
        buf.truncate(end);
        return std::mem::replace(buf, next);
    }
    let chunk = buf[..end].to_vec();
    buf.drain(..end);
    chunk
}

/// Counts a chunk's lines into `flow`; returns how many STATE lines it holds.
pub(crate) fn account(chunk: &[u8], flow: &SharedFlow) -> u64 {
    let mut local: BTreeMap<&str, StreamCount> = BTreeMap::new();
    let (mut lines, mut states) = (0u64, 0u64);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', chunk) {
        let line = &chunk[start..end];
        start = end + 1;
        if line.is_empty() {
            continue;
        }
        lines += 1;
        match classify(line) {
            Line::Record(s) => {
                let c = local.entry(s).or_default();
                c.records += 1;
                c.bytes += line.len() as u64 + 1;
            }
            Line::Schema(s) => {
                local.entry(s).or_default().bytes += line.len() as u64 + 1;
            }
            Line::State => states += 1,
            Line::Other => {}
        }
    }
    if let Ok(mut f) = flow.lock() {
        for (s, c) in local {
            let e = f.streams.entry(s.to_string()).or_default();
            e.records += c.records;
            e.bytes += c.bytes;
        }
        f.lines += lines;
        f.bytes += chunk.len() as u64;
        f.states += states;
    }
    states
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Arc<Mutex<Vec<u8>>>);
    impl ChunkSink for Collect {
        fn write_chunk(&mut self, chunk: &[u8], _: u64) -> std::io::Result<()> {
            assert_eq!(chunk.last(), Some(&b'\n'), "chunks end at a line boundary");
            self.0.lock().unwrap().extend_from_slice(chunk);
            Ok(())
        }
        fn finish(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Hands out its input a few bytes per read, like a tap that flushes every line.
    struct Trickle(std::io::Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(100);
            self.0.read(&mut buf[..n])
        }
    }
    impl Source for Trickle {}

    #[test]
    fn small_reads_leave_small_chunks_and_the_queue_counts_memory() {
        let line = b"{\"type\":\"RECORD\",\"stream\":\"s\",\"record\":{\"i\":1}}\n";
        let input: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 1000)
            .collect();
        let q = Queue::new(usize::MAX);
        let flow = SharedFlow::default();
        read_loop(Trickle(std::io::Cursor::new(input.clone())), &q, &flow).unwrap();
        q.close();
        let mut held = 0;
        let mut out = Vec::new();
        {
            let st = q.inner.lock().unwrap();
            assert_eq!(
                st.bytes,
                st.chunks.iter().map(|c| c.0.capacity()).sum::<usize>()
            );
            for (chunk, _) in &st.chunks {
                assert!(
                    chunk.capacity() <= chunk.len() + chunk.len() / 4,
                    "{} of {}",
                    chunk.len(),
                    chunk.capacity()
                );
                held += chunk.capacity();
                out.extend_from_slice(chunk);
            }
        }
        assert_eq!(out, input);
        assert!(
            held < input.len() * 2,
            "{held} bytes held for {}",
            input.len()
        );
        assert_eq!(flow.lock().unwrap().lines, 1000);
    }

    #[test]
    fn passes_every_byte_and_counts_streams() {
        let mut input = Vec::new();
        for i in 0..50_000 {
            input.extend_from_slice(
                format!(
                    "{{\"type\":\"RECORD\",\"stream\":\"s{}\",\"record\":{{\"i\":{i}}}}}\n",
                    i % 3
                )
                .as_bytes(),
            );
        }
        input.extend_from_slice(b"{\"type\":\"STATE\",\"value\":{}}");
        let out = Arc::new(Mutex::new(Vec::new()));
        let flow = SharedFlow::default();
        let end = start(
            std::io::Cursor::new(input.clone()),
            Collect(Arc::clone(&out)),
            1 << 20,
            Arc::clone(&flow),
        )
        .join()
        .unwrap();
        assert!(matches!(end, PumpEnd::Drained), "{end:?}");
        input.push(b'\n');
        assert_eq!(*out.lock().unwrap(), input);
        let f = flow.lock().unwrap();
        assert_eq!(f.streams["s0"].records, 16_667);
        assert_eq!(f.states, 1);
        assert_eq!(f.lines, 50_001);
    }
}
