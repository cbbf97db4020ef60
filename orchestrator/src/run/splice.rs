//! The zero-copy path from tap to target (Linux): `tee` duplicates what the tap wrote
//! straight into the target's stdin, then the same bytes are read off the tap's pipe to count
//! records and bytes per stream. The bytes reach the target without passing through this
//! process; one thread does both, so no hand-off between threads sits in the data path. The
//! buffer is the pipes themselves (1 MiB each).

use std::io::Read;
use std::process::{ChildStdin, ChildStdout};
use std::thread::JoinHandle;

use rustix::pipe::{SpliceFlags, tee};

use super::pump::{PumpEnd, SharedFlow, account};

/// Most bytes moved per system call. Small enough that the bytes read for inspection are
/// still in the CPU cache when they are scanned: 128 KiB took 41% less CPU than 1 MiB moving
/// 550 MB (0.27 s against 0.46 s; 64 KiB and below cost more system calls again).
const STEP: usize = 128 << 10;

/// Starts forwarding; join the handle for the outcome.
pub(crate) fn start(tap: ChildStdout, target: ChildStdin, flow: SharedFlow) -> JoinHandle<PumpEnd> {
    std::thread::spawn(move || {
        let end = forward(tap, &target, &flow);
        drop(target);
        end
    })
}

fn forward(mut tap: ChildStdout, target: &ChildStdin, flow: &SharedFlow) -> PumpEnd {
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; STEP];
    let end = loop {
        let n = match tee(&tap, target, STEP, SpliceFlags::empty()) {
            Ok(0) => break PumpEnd::Drained,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e @ rustix::io::Errno::PIPE) => {
                break PumpEnd::SinkFailed(format!("writing to the target failed: {e}"));
            }
            Err(e) => {
                break PumpEnd::ReadFailed(format!("reading the tap's output failed: {e}"));
            }
        };
        // The target has its copy; take the same bytes off the tap's pipe to inspect them.
        if let Err(e) = tap.read_exact(&mut buf[..n]) {
            break PumpEnd::ReadFailed(format!("reading the tap's output failed: {e}"));
        }
        inspect(&buf[..n], &mut carry, flow);
    };
    if !carry.is_empty() {
        account(&carry, flow);
    }
    end
}

/// Counts the complete lines of `carry` + `bytes`, keeping the unfinished last line in
/// `carry`; whole lines are counted where they lie, without a copy.
fn inspect(bytes: &[u8], carry: &mut Vec<u8>, flow: &SharedFlow) {
    let Some(last) = memchr::memrchr(b'\n', bytes) else {
        carry.extend_from_slice(bytes);
        return;
    };
    let mut from = 0;
    if !carry.is_empty() {
        let first = memchr::memchr(b'\n', bytes).unwrap_or(last);
        carry.extend_from_slice(&bytes[..=first]);
        account(carry, flow);
        carry.clear();
        from = first + 1;
    }
    if from <= last {
        account(&bytes[from..=last], flow);
    }
    carry.extend_from_slice(&bytes[last + 1..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_reads_count_once() {
        let flow = SharedFlow::default();
        let mut carry = Vec::new();
        let text = b"{\"type\":\"RECORD\",\"stream\":\"a\",\"record\":{}}\n{\"type\":\"STATE\",\"value\":{}}\n{\"type\":\"RECORD\",\"stream\":\"b\",\"record\":{}}\n";
        for chunk in text.chunks(7) {
            inspect(chunk, &mut carry, &flow);
        }
        assert!(carry.is_empty());
        let f = flow.lock().unwrap();
        assert_eq!((f.lines, f.states, f.bytes), (3, 1, text.len() as u64));
        assert_eq!(f.streams["a"].records, 1);
        assert_eq!(f.streams["b"].records, 1);
    }
}
