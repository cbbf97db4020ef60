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

pub(super) use crate::sdk::signal::StopFlag;
use crate::sdk::signal::{self, Stopping};

/// Installs the SIGTERM and SIGINT handlers (before any input is read, so no signal finds
/// the default action that would kill the process) and returns the flag the driver polls.
pub(super) fn listen(
    rt: &Runtime,
    name: &'static str,
    drain_timeout: Duration,
) -> std::io::Result<StopFlag> {
    signal::listen(
        rt,
        Stopping {
            name,
            first: "stopping: no more input is read; committing what was read (signal again to exit at once)",
            doing: "committing",
            forced: "exiting without echoing more state",
            deadline: Some((drain_timeout, "what was read did not commit")),
        },
    )
}
