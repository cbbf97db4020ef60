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

/// Most bytes moved per system call.
const STEP: usize = 1 << 20;

/// Starts forwarding; join the handle for the outcome.
pub(crate) fn start(
    tap: ChildStdout,
    target: ChildStdin,
    flow: SharedFlow,
) -> Result<JoinHandle<PumpEnd>, String> {
    Ok(std::thread::spawn(move || {
        let end = forward(tap, &target, &flow);
        drop(target);
        end
    }))
}

fn forward(mut tap: ChildStdout, target: &ChildStdin, flow: &SharedFlow) -> PumpEnd {
    let mut carry: Vec<u8> = Vec::with_capacity(2 * STEP);
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
        carry.extend_from_slice(&buf[..n]);
        if let Some(nl) = memchr::memrchr(b'\n', &carry) {
            account(&carry[..=nl], flow);
            carry.drain(..=nl);
        }
    };
    if !carry.is_empty() {
        account(&carry, flow);
    }
    end
}
