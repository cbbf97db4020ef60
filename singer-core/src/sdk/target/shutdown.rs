//! Stopping a target on SIGTERM or SIGINT without losing what it read.
//!
//! The first signal asks the driver to stop reading: it finishes the message it is on, cuts
//! every stream's buffer into a last batch, waits until every loader committed, echoes the
//! newest state those commits cover and exits 0. The tap's pipe may stay open: nothing more is
//! read from it.
//!
//! A second signal, or a drain longer than the target's [`Target::drain_timeout`], exits at
//! once with a non-zero status (128 + the signal's number, or 1 on the timeout). Transactions
//! still open die with the process, and no state is echoed from then on, so the last echoed
//! state still covers only committed records. SIGINT behaves as SIGTERM: in a shell pipeline
//! `tap | target`, Ctrl-C reaches both, and the target keeps what it read.
//!
//! [`Target::drain_timeout`]: super::Target::drain_timeout

use std::time::Duration;

use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};

pub(super) use crate::sdk::signal::StopFlag;
use crate::sdk::signal::{Sig, exit_now};

/// Installs the SIGTERM and SIGINT handlers (before any input is read, so no signal finds
/// the default action that would kill the process) and returns the flag the driver polls.
pub(super) fn listen(
    rt: &Runtime,
    name: &'static str,
    drain_timeout: Duration,
) -> std::io::Result<StopFlag> {
    let _guard = rt.enter();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let flag = StopFlag::default();
    let set = flag.clone();
    rt.spawn(async move {
        let first = tokio::select! {
            _ = term.recv() => Sig::Term,
            _ = int.recv() => Sig::Int,
        };
        set.set(first);
        tracing::warn!(
            signal = first.name(),
            "stopping: no more input is read; committing what was read (signal again to exit at once)"
        );
        let second = tokio::select! {
            _ = term.recv() => Some(Sig::Term),
            _ = int.recv() => Some(Sig::Int),
            () = tokio::time::sleep(drain_timeout) => None,
        };
        match second {
            Some(s) => exit_now(
                name,
                s.exit_code(),
                &format!(
                    "{} while committing after {}: exiting without echoing more state",
                    s.name(),
                    first.name()
                ),
            ),
            None => exit_now(
                name,
                1,
                &format!(
                    "what was read did not commit within {} s of {}: exiting without echoing more state",
                    drain_timeout.as_secs_f64(),
                    first.name()
                ),
            ),
        }
    });
    Ok(flag)
}
