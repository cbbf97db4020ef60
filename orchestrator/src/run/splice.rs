//! The zero-copy path from tap to target (Linux): `tee` duplicates what the tap wrote into an
//! inspection pipe, then `splice` moves it into the target's stdin. The bytes never enter this
//! process on their way; a second thread reads the duplicate to count records and bytes per
//! stream. The buffer is the pipes themselves (1 MiB each).

use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::{ChildStdin, ChildStdout};
use std::thread::JoinHandle;

use rustix::pipe::{SpliceFlags, splice, tee};

use super::pump::{PumpEnd, SharedFlow, account, enlarge_pipe};

/// Most bytes moved per system call.
const STEP: usize = 1 << 20;

/// Starts forwarding; join the handle for the outcome.
pub(crate) fn start(
    tap: ChildStdout,
    target: ChildStdin,
    flow: SharedFlow,
    pipe_bytes: usize,
) -> Result<JoinHandle<PumpEnd>, String> {
    let (r, w) = rustix::pipe::pipe().map_err(|e| format!("cannot create a pipe: {e}"))?;
    enlarge_pipe(&w, pipe_bytes);
    let inspector = std::thread::spawn(move || inspect(r, &flow));
    Ok(std::thread::spawn(move || {
        let end = forward(&tap, &target, w);
        drop(target);
        let _ = inspector.join();
        end
    }))
}

fn forward(tap: &ChildStdout, target: &ChildStdin, copy: OwnedFd) -> PumpEnd {
    loop {
        let n = match tee(tap, &copy, STEP, SpliceFlags::empty()) {
            Ok(0) => return PumpEnd::Drained,
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return PumpEnd::ReadFailed(format!("reading the tap's output failed: {e}")),
        };
        let mut left = n;
        while left > 0 {
            match splice(tap, None, target, None, left, SpliceFlags::MOVE) {
                Ok(0) => return PumpEnd::ReadFailed("the tap's output ended early".into()),
                Ok(m) => left -= m,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return PumpEnd::SinkFailed(format!("writing to the target failed: {e}")),
            }
        }
    }
}

fn inspect(r: OwnedFd, flow: &SharedFlow) {
    let mut file = std::fs::File::from(r);
    let mut carry: Vec<u8> = Vec::with_capacity(STEP);
    let mut buf = vec![0u8; STEP];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carry.extend_from_slice(&buf[..n]);
        if let Some(nl) = memchr::memrchr(b'\n', &carry) {
            account(&carry[..=nl], flow);
            carry.drain(..=nl);
        }
    }
    if !carry.is_empty() {
        account(&carry, flow);
    }
}
